/*
 * blas.h - which kernel set OpenBLAS runs, and making sure it is the right one.
 *
 * OpenBLAS picks its kernels (its "core type") once, when the library
 * loads, from its own table of CPU models.  A model newer than the library
 * falls back to the generic Prescott (SSE3) kernels, 3-4x slower than an
 * AVX-512 CPU allows.  nas_blas_prepare(), the first call in the main() of
 * every binary that trains, compares the kernel set with the CPU's ISA
 * level (common/cpu.h); where the library chose a weaker set on its own, it
 * restarts the binary (execv of /proc/self/exe, same argv) with
 * OPENBLAS_CORETYPE naming the right set, because the library reads that
 * variable only while it loads.  An OPENBLAS_CORETYPE that the user or the
 * administrator set is respected: some OpenBLAS builds compute wrong
 * results on some processors, which is why machines set it.
 *
 * Whatever set runs, a numeric self-check against the naive GEMM
 * (common/gemm.h) runs before any training.  On a mismatch the binary
 * restarts the same way on the next weaker kernel set, saying so, down to
 * the generic Prescott kernels; when even those fail (or the library
 * cannot switch), nas_blas_prepare() fails and the binary refuses to train
 * rather than train on wrong numbers.  One mechanism serves both
 * directions, and no process-wide switch of our own is needed: the kernel
 * choice stays the library's, made where it is made, at load.
 */
#ifndef NAS_BLAS_H
#define NAS_BLAS_H

#include "common/cpu.h"

/* Set by nas_blas_prepare() on the restart it causes: the core type it
 * chose, so the restarted process knows the variable is the engine's and
 * not the user's (and never restarts twice for the same choice). */
#define NAS_BLAS_ENGINE_ENV "NAS_BLAS_CORETYPE_BY_ENGINE"

/* Tests only: the OPENBLAS_CORETYPE in this environment stands in for the
 * library's own (mis)detection rather than for a user's choice.  OpenBLAS
 * really loads the named kernels; only who chose them is simulated, so a
 * test can reproduce a mis-detected CPU on any machine. */
#define NAS_BLAS_TEST_MISDETECT_ENV "NAS_TEST_BLAS_MISDETECT"

/* Tests only: the self-check examines a deliberately wrong GEMM instead of
 * OpenBLAS while the library runs the kernel set this variable names, so a
 * test can drive the fallback on any machine; "own" breaks the engine's own
 * GEMM kernels (common/sgemm.h) instead. */
#define NAS_BLAS_TEST_BREAK_ENV "NAS_TEST_BLAS_BREAK"

/* What the decision of nas_blas_prepare() looks at, besides the CPU. */
typedef struct nas_blas_state {
    const char *corename;     /* openblas_get_corename() */
    int dynamic;              /* built with DYNAMIC_ARCH: OPENBLAS_CORETYPE can switch kernels */
    const char *env_coretype; /* OPENBLAS_CORETYPE, NULL when unset */
    const char *env_engine;   /* NAS_BLAS_ENGINE_ENV, NULL when unset */
    int misdetect;            /* NAS_BLAS_TEST_MISDETECT_ENV is set */
    int check_failed;         /* the self-check failed on corename's kernels */
} nas_blas_state;

typedef struct nas_blas_info {
    char library[32];   /* "OpenBLAS" */
    char version[32];   /* "0.3.21" */
    char kernels[32];   /* the core type in use, e.g. "Haswell" */
    enum nas_isa_level kernels_level;
    char isa[48];       /* the CPU's, e.g. "avx512+bf16" */
    enum nas_isa_level cpu_level;
    const char *source; /* who chose the kernels: "detected", "environment" or "engine" */
    int threads;        /* OpenBLAS threads per call */
    char gemm[64];      /* what runs nas_gemm()'s products, nas_gemm_describe() */
} nas_blas_info;

/* The ISA level an OpenBLAS core name's kernels use (case-insensitive);
 * NAS_ISA_UNKNOWN for a name it does not know. */
enum nas_isa_level nas_blas_kernels_level(const char *corename);

/* The decision of nas_blas_prepare(), as a pure function: the kernel set
 * to restart with, or NULL to keep what runs.  With check_failed, the
 * next weaker set (NULL: none is left).  Otherwise a stronger set where the
 * library's own choice is weaker than the CPU, and none where the user or
 * the administrator set OPENBLAS_CORETYPE.  Each restart moves strictly
 * down one list, so restarts end whatever the library does with a name. */
const char *nas_blas_plan(const nas_cpu_info *cpu, const nas_blas_state *s);

/* The start-up step described above; argv is main()'s.  Returns NAS_OK
 * when no restart is needed or a restart to better kernels failed (logged),
 * after the self-check passed; NAS_EIO, logged as an error, when the
 * kernels compute wrong results and no fallback is left.  Logs a warning
 * when the kernels stay weaker than the CPU. */
int nas_blas_prepare(char **argv);

/* What runs now. */
void nas_blas_info_get(nas_blas_info *out);

struct nas_json_buf;

/* Append "blas": {library, version, kernels, kernels_isa, chosen_by,
 * threads} and "cpu_isa" to an open JSON object (nas-train --json). */
void nas_blas_info_json(struct nas_json_buf *b);

#endif
