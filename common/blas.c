/*
 * blas.c - OpenBLAS kernel set against the CPU: detection, restart, self-check.
 */
#include "common/blas.h"

#include "common/err.h"
#include "common/gemm.h"
#include "common/json.h"
#include "common/log.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* OpenBLAS's x86 core names and the ISA their kernels use.  Names not
 * listed (other architectures, future models) count as unknown, and an
 * unknown set is never replaced: we cannot tell whether it is weaker. */
static const struct {
    const char *name;
    enum nas_isa_level level;
} CORES[] = {
    {"Katmai", NAS_ISA_SSE2},       {"Coppermine", NAS_ISA_SSE2},  {"Northwood", NAS_ISA_SSE2},
    {"Athlon", NAS_ISA_SSE2},       {"Opteron", NAS_ISA_SSE2},     {"Banias", NAS_ISA_SSE2},
    {"Prescott", NAS_ISA_SSE3},     {"Core2", NAS_ISA_SSE3},       {"Penryn", NAS_ISA_SSE3},
    {"Dunnington", NAS_ISA_SSE3},   {"Nehalem", NAS_ISA_SSE3},     {"Atom", NAS_ISA_SSE3},
    {"Opteron_SSE3", NAS_ISA_SSE3}, {"Barcelona", NAS_ISA_SSE3},   {"Nano", NAS_ISA_SSE3},
    {"Bobcat", NAS_ISA_SSE3},       {"Sandybridge", NAS_ISA_AVX},  {"Bulldozer", NAS_ISA_AVX},
    {"Piledriver", NAS_ISA_AVX},    {"Steamroller", NAS_ISA_AVX},  {"Haswell", NAS_ISA_AVX2},
    {"Excavator", NAS_ISA_AVX2},    {"Zen", NAS_ISA_AVX2},         {"SkylakeX", NAS_ISA_AVX512},
    {"Cooperlake", NAS_ISA_AVX512}, {"SapphireRapids", NAS_ISA_AVX512},
};

/* What to ask for, strongest first.  Cooperlake is SkylakeX plus BF16
 * kernels (the same sgemm); it comes first where the CPU has BF16 so that
 * a library without the name falls through to SkylakeX on the next try. */
static const struct {
    const char *name;
    enum nas_isa_level level;
    int needs_bf16;
} WANT[] = {
    {"Cooperlake", NAS_ISA_AVX512, 1},
    {"SkylakeX", NAS_ISA_AVX512, 0},
    {"Haswell", NAS_ISA_AVX2, 0},
    {"Sandybridge", NAS_ISA_AVX, 0},
};

enum nas_isa_level nas_blas_kernels_level(const char *corename) {
    if (!corename) return NAS_ISA_UNKNOWN;
    for (size_t i = 0; i < NAS_ARRAY_LEN(CORES); i++)
        if (strcasecmp(corename, CORES[i].name) == 0) return CORES[i].level;
    return NAS_ISA_UNKNOWN;
}

/* 1 if OPENBLAS_CORETYPE was set by someone other than the engine. */
static int user_chose(const char *env_coretype, const char *env_engine, int misdetect) {
    if (!env_coretype || !env_coretype[0] || misdetect) return 0;
    return !(env_engine && strcasecmp(env_engine, env_coretype) == 0);
}

const char *nas_blas_plan(const nas_cpu_info *cpu, const char *corename, const char *env_coretype,
                          const char *env_engine, int misdetect) {
    if (user_chose(env_coretype, env_engine, misdetect)) return NULL;
    enum nas_isa_level have = nas_blas_kernels_level(corename);
    if (have == NAS_ISA_UNKNOWN || have >= cpu->level) return NULL;
    /* After a restart whose choice did not take (a library that does not
     * know the name loads its own detection instead), try the next one. */
    size_t from = 0;
    if (env_engine && !misdetect)
        for (size_t i = 0; i < NAS_ARRAY_LEN(WANT); i++)
            if (strcasecmp(env_engine, WANT[i].name) == 0) from = i + 1;
    for (size_t i = from; i < NAS_ARRAY_LEN(WANT); i++) {
        if (WANT[i].level > cpu->level || WANT[i].level <= have) continue;
        if (WANT[i].needs_bf16 && !cpu->avx512_bf16) continue;
        return WANT[i].name;
    }
    return NULL;
}

void nas_blas_info_get(nas_blas_info *out) {
    memset(out, 0, sizeof *out);
    nas_cpu_info cpu;
    nas_cpu_detect(&cpu);
    out->cpu_level = cpu.level;
    nas_cpu_isa_string(&cpu, out->isa, sizeof out->isa);
    /* "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64" */
    const char *cfg = openblas_get_config();
    if (sscanf(cfg ? cfg : "", "%31s %31s", out->library, out->version) < 2)
        snprintf(out->version, sizeof out->version, "unknown");
    if (!out->library[0]) snprintf(out->library, sizeof out->library, "OpenBLAS");
    const char *core = openblas_get_corename();
    snprintf(out->kernels, sizeof out->kernels, "%s", core ? core : "unknown");
    out->kernels_level = nas_blas_kernels_level(out->kernels);
    const char *env = getenv("OPENBLAS_CORETYPE"), *eng = getenv(NAS_BLAS_ENGINE_ENV);
    out->source = !env || !env[0]                    ? "detected"
                  : eng && strcasecmp(eng, env) == 0 ? "engine"
                                                     : "environment";
    out->threads = openblas_get_num_threads();
    out->gemm = nas_gemm_own_active() ? "own" : "openblas";
}

void nas_blas_info_json(struct nas_json_buf *b) {
    nas_blas_info i;
    nas_blas_info_get(&i);
    nas_json_buf_key(b, "blas");
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "library"), nas_json_buf_str(b, i.library);
    nas_json_buf_key(b, "version"), nas_json_buf_str(b, i.version);
    nas_json_buf_key(b, "kernels"), nas_json_buf_str(b, i.kernels);
    nas_json_buf_key(b, "kernels_isa"), nas_json_buf_str(b, nas_isa_name(i.kernels_level));
    nas_json_buf_key(b, "chosen_by"), nas_json_buf_str(b, i.source);
    nas_json_buf_key(b, "gemm"), nas_json_buf_str(b, i.gemm);
    nas_json_buf_key(b, "threads"), nas_json_buf_i64(b, i.threads);
    nas_json_buf_obj_end(b);
    nas_json_buf_key(b, "cpu_isa"), nas_json_buf_str(b, i.isa);
}

/* Say so when the kernels stay weaker than the CPU, naming the fix. */
static void warn_weaker(const nas_blas_info *b) {
    if (b->kernels_level == NAS_ISA_UNKNOWN || b->kernels_level >= b->cpu_level) return;
    int generic = b->kernels_level <= NAS_ISA_SSE3;
    if (strcmp(b->source, "environment") == 0)
        nas_log(generic ? NAS_LOG_WARN : NAS_LOG_DEBUG,
                "OpenBLAS runs its %s (%s) kernels on a CPU with %s because OPENBLAS_CORETYPE=%s "
                "is set; unset it to let nasd pick the %s kernels (training up to %s faster), "
                "unless it works around a library bug",
                b->kernels, nas_isa_name(b->kernels_level), b->isa, b->kernels,
                nas_isa_name(b->cpu_level), generic ? "3x" : "2x");
    else
        nas_warn("OpenBLAS runs its %s (%s) kernels on a CPU with %s and nasd could not switch "
                 "them; set OPENBLAS_CORETYPE=%s (or newer) for up to %s faster training",
                 b->kernels, nas_isa_name(b->kernels_level), b->isa,
                 b->cpu_level >= NAS_ISA_AVX512 ? "SkylakeX" : "Haswell", generic ? "3x" : "2x");
}

void nas_blas_prepare(char **argv) {
    nas_cpu_info cpu;
    nas_cpu_detect(&cpu);
    const char *env = getenv("OPENBLAS_CORETYPE"), *eng = getenv(NAS_BLAS_ENGINE_ENV);
    const char *misdetect = getenv(NAS_BLAS_TEST_MISDETECT_ENV);
    const char *core = openblas_get_corename();
    const char *want = nas_blas_plan(&cpu, core, env, eng, misdetect && misdetect[0]);
    if (want && argv && argv[0]) {
        /* Nothing has run yet but the library's constructor: restarting
         * costs one exec and one library load (docs/PERFORMANCE.md). */
        if (setenv("OPENBLAS_CORETYPE", want, 1) == 0 && setenv(NAS_BLAS_ENGINE_ENV, want, 1) == 0) {
            unsetenv(NAS_BLAS_TEST_MISDETECT_ENV);
            fflush(NULL);
            execv("/proc/self/exe", argv);
        }
        nas_warn("could not restart with OPENBLAS_CORETYPE=%s to replace OpenBLAS's %s kernels",
                 want, core ? core : "unknown");
    }
    nas_blas_info info;
    nas_blas_info_get(&info);
    char err[NAS_ERR_LEN];
    if (nas_gemm_selfcheck(nas_gemm_openblas, err) < 0) {
        nas_gemm_use_own(1);
        nas_warn("OpenBLAS %s with its %s kernels failed the self-check against the reference "
                 "GEMM (%s): nasd uses its own, slower kernels; set OPENBLAS_CORETYPE to a safer "
                 "kernel set (e.g. Haswell, or Prescott) or update OpenBLAS",
                 info.version, info.kernels, err);
        return;
    }
    if (strcmp(info.source, "engine") == 0)
        nas_info("OpenBLAS %s: %s kernels for this %s CPU (chosen by nasd; the library had picked "
                 "weaker ones)",
                 info.version, info.kernels, info.isa);
    warn_weaker(&info);
}
