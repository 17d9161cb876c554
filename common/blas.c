/*
 * blas.c - OpenBLAS kernel set against the CPU: detection, restart, self-check.
 */
#include "common/blas.h"

#include "common/err.h"
#include "common/gemm.h"
#include "common/json.h"
#include "common/log.h"
#include "common/sgemm.h"

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

/* The kernel sets the engine asks for, strongest first; every restart
 * moves strictly down this list.  AVX-512 CPUs get SkylakeX: Cooperlake
 * and SapphireRapids add only BF16 kernels the engine does not call (same
 * sgemm), and OpenBLAS 0.3.21 does not accept either name in
 * OPENBLAS_CORETYPE.  Prescott, the generic set, is the last fallback. */
static const struct {
    const char *name;
    enum nas_isa_level level;
} LADDER[] = {
    {"SkylakeX", NAS_ISA_AVX512},
    {"Haswell", NAS_ISA_AVX2},
    {"Sandybridge", NAS_ISA_AVX},
    {"Prescott", NAS_ISA_SSE3},
};

enum nas_isa_level nas_blas_kernels_level(const char *corename) {
    if (!corename) return NAS_ISA_UNKNOWN;
    for (size_t i = 0; i < NAS_ARRAY_LEN(CORES); i++)
        if (strcasecmp(corename, CORES[i].name) == 0) return CORES[i].level;
    return NAS_ISA_UNKNOWN;
}

/* 1 if OPENBLAS_CORETYPE was set by someone other than the engine. */
static int user_chose(const nas_blas_state *s) {
    if (!s->env_coretype || !s->env_coretype[0] || s->misdetect) return 0;
    return !(s->env_engine && strcasecmp(s->env_engine, s->env_coretype) == 0);
}

const char *nas_blas_plan(const nas_cpu_info *cpu, const nas_blas_state *s) {
    enum nas_isa_level have = nas_blas_kernels_level(s->corename);
    if (!s->dynamic || have == NAS_ISA_UNKNOWN) return NULL;
    /* Kernels beyond the CPU die on their first instruction (SIGILL), so
     * no setting keeps them, not even an administrator's: a host image's
     * OPENBLAS_CORETYPE=Haswell reaching an older machine must not kill
     * its workers.  They are replaced like kernels that failed the check. */
    int down = s->check_failed || have > cpu->level;
    if (!down && (user_chose(s) || have >= cpu->level)) return NULL;
    /* Only sets below the engine's earlier choice: that one either ran
     * and failed the check, or did not take (a library that does not know
     * the name loads its own detection instead). */
    size_t from = 0;
    if (s->env_engine && !s->misdetect)
        for (size_t i = 0; i < NAS_ARRAY_LEN(LADDER); i++)
            if (strcasecmp(s->env_engine, LADDER[i].name) == 0) from = i + 1;
    for (size_t i = from; i < NAS_ARRAY_LEN(LADDER); i++) {
        enum nas_isa_level l = LADDER[i].level;
        if (down ? l < have && l <= cpu->level : l > have && l <= cpu->level)
            return LADDER[i].name;
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
    nas_gemm_describe(out->gemm, sizeof out->gemm);
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
    nas_json_buf_key(b, "threads"), nas_json_buf_i64(b, i.threads);
    nas_json_buf_obj_end(b);
    /* Which products run on the engine's own kernels instead (common/gemm.h). */
    nas_gemm_choice ch;
    nas_gemm_choice_get(&ch);
    nas_json_buf_key(b, "own_gemm");
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "kernels"), nas_json_buf_str(b, nas_sgemm_path_name(ch.path));
    nas_json_buf_key(b, "b_untransposed"), nas_json_buf_bool(b, ch.untransposed);
    nas_json_buf_key(b, "b_transposed"), nas_json_buf_bool(b, ch.transposed);
    nas_json_buf_key(b, "b_transposed_min_depth"), nas_json_buf_i64(b, ch.transposed_min_k);
    nas_json_buf_obj_end(b);
    nas_json_buf_key(b, "gemm"), nas_json_buf_str(b, i.gemm);
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
        nas_warn("OpenBLAS runs its %s (%s) kernels on a CPU with %s: %s; an OpenBLAS built with "
                 "DYNAMIC_ARCH whose %s kernels pass the check trains up to %s faster",
                 b->kernels, nas_isa_name(b->kernels_level), b->isa,
                 strcmp(b->source, "engine") == 0
                     ? "the stronger kernel sets failed the self-check or are not in this build"
                     : "nasd could not switch them (a build without DYNAMIC_ARCH?)",
                 b->cpu_level >= NAS_ISA_AVX512 ? "SkylakeX" : "Haswell", generic ? "3x" : "2x");
}

/* The two GEMMs nas_gemm() dispatches between, each checked on its own:
 * the kernel-set decision is about OpenBLAS, and our kernels must not hide
 * a wrong library (nor the library a wrong kernel of ours). */
static void openblas_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                          int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void own_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc) {
    nas_cpu_info cpu;
    nas_cpu_detect(&cpu);
    nas_sgemm(nas_sgemm_best(&cpu), ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* The same, wrong by 1 % everywhere, for NAS_BLAS_TEST_BREAK_ENV. */
static void broken_openblas_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                                 int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    openblas_gemm(ta, tb, m, n, k, alpha * 1.01f, a, lda, b, ldb, beta, c, ldc);
}

static void broken_own_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                            int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    own_gemm(ta, tb, m, n, k, alpha * 1.01f, a, lda, b, ldb, beta, c, ldc);
}

/* Put OPENBLAS_CORETYPE=want in the environment, marked as the engine's,
 * and start this binary again; returns only if that failed. */
static void restart_with(const char *want, char **argv) {
    if (!argv || !argv[0]) return;
    if (setenv("OPENBLAS_CORETYPE", want, 1) < 0 || setenv(NAS_BLAS_ENGINE_ENV, want, 1) < 0)
        return;
    unsetenv(NAS_BLAS_TEST_MISDETECT_ENV);
    fflush(NULL);
    execv("/proc/self/exe", argv);
}

int nas_blas_prepare(char **argv) {
    nas_cpu_info cpu;
    nas_cpu_detect(&cpu);
    const char *misdetect = getenv(NAS_BLAS_TEST_MISDETECT_ENV), *cfg = openblas_get_config();
    nas_blas_state st = {
        .corename = openblas_get_corename(),
        .dynamic = cfg && strstr(cfg, "DYNAMIC_ARCH") != NULL,
        .env_coretype = getenv("OPENBLAS_CORETYPE"),
        .env_engine = getenv(NAS_BLAS_ENGINE_ENV),
        .misdetect = misdetect && misdetect[0],
    };
    const char *core = st.corename ? st.corename : "unknown";
    const char *want = nas_blas_plan(&cpu, &st);
    if (want && nas_blas_kernels_level(core) > cpu.level)
        nas_warn("OpenBLAS chose its %s kernels (%s), which this CPU cannot run (it has %s%s); "
                 "restarting on %s",
                 core, nas_isa_name(nas_blas_kernels_level(core)), nas_isa_name(cpu.level),
                 st.env_coretype ? ", so OPENBLAS_CORETYPE is overridden" : "", want);
    if (want) {
        /* Nothing has run yet but the library's constructor: restarting
         * costs one exec and one library load (docs/PERFORMANCE.md). */
        restart_with(want, argv);
        nas_warn("could not restart with OPENBLAS_CORETYPE=%s to replace OpenBLAS's %s kernels",
                 want, core);
    }
    const char *brk = getenv(NAS_BLAS_TEST_BREAK_ENV);
    char why[NAS_ERR_LEN];
    /* Before nas_gemm() first runs (its choice reads NAS_GEMM_ENV once). */
    if (nas_gemm_selfcheck(brk && !strcasecmp(brk, "own") ? broken_own_gemm : own_gemm, why) < 0) {
        nas_warn("nasd's own %s GEMM kernels failed the self-check against the reference GEMM "
                 "(%s); every product runs on OpenBLAS",
                 nas_sgemm_path_name(nas_sgemm_best(&cpu)), why);
        setenv(NAS_GEMM_ENV, "openblas", 1);
    }
    nas_blas_info info;
    nas_blas_info_get(&info);
    int broken = brk && strcasecmp(brk, core) == 0;
    if (nas_gemm_selfcheck(broken ? broken_openblas_gemm : openblas_gemm, why) < 0) {
        st.check_failed = 1;
        want = nas_blas_plan(&cpu, &st);
        nas_warn("OpenBLAS %s with its %s kernels failed the self-check against the reference "
                 "GEMM (%s)%s%s",
                 info.version, core, why, want ? "; restarting on its weaker kernels " : "",
                 want ? want : "");
        if (want) restart_with(want, argv);
        nas_error("OpenBLAS %s computes wrong results with its %s kernels (%s) and no safer "
                  "kernel set is left: set OPENBLAS_CORETYPE to one that works on this CPU, or "
                  "install another OpenBLAS",
                  info.version, core, why);
        return NAS_EIO;
    }
    if (strcmp(info.source, "engine") == 0)
        nas_info("OpenBLAS %s: %s kernels for this %s CPU (chosen by nasd)", info.version, core,
                 info.isa);
    nas_gemm_choice ch;
    nas_gemm_choice_get(&ch);
    if (ch.untransposed) {
        char what[64];
        nas_info("GEMMs run on %s, not only OpenBLAS's %s", nas_gemm_describe(what, sizeof what),
                 core);
    }
    warn_weaker(&info);
    return NAS_OK;
}
