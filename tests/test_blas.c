/*
 * test_blas.c - the kernel-set decision of common/blas.c as a pure
 * function over (CPU features, OpenBLAS's core name, environment), so no
 * assertion depends on the machine's CPU; the GEMM self-check (it passes
 * OpenBLAS and catches injected wrong GEMMs); what nas_blas_info reports.
 * The end-to-end correction of a mis-detected CPU and the fallback after a
 * failed check, through real restarts of nas-train, are in
 * test_train_cli.c.
 */
#include <stdlib.h>
#include <string.h>

#include "common/blas.h"
#include "common/err.h"
#include "common/gemm.h"
#include "tests/harness.h"

static nas_cpu_info cpu_of(enum nas_isa_level level, int bf16) {
    nas_cpu_info c;
    memset(&c, 0, sizeof c);
    c.level = level, c.avx512_bf16 = bf16;
    return c;
}

static int same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

START_TEST(test_blas_kernel_levels) {
    ck_assert_int_eq(nas_blas_kernels_level("Prescott"), NAS_ISA_SSE3);
    ck_assert_int_eq(nas_blas_kernels_level("HASWELL"), NAS_ISA_AVX2);
    ck_assert_int_eq(nas_blas_kernels_level("Zen"), NAS_ISA_AVX2);
    ck_assert_int_eq(nas_blas_kernels_level("SkylakeX"), NAS_ISA_AVX512);
    ck_assert_int_eq(nas_blas_kernels_level("Cooperlake"), NAS_ISA_AVX512);
    ck_assert_int_eq(nas_blas_kernels_level("neoversen1"), NAS_ISA_UNKNOWN);
    ck_assert_int_eq(nas_blas_kernels_level(NULL), NAS_ISA_UNKNOWN);
}
END_TEST

/* The plan for a DYNAMIC_ARCH library that chose `core`, with the given
 * OPENBLAS_CORETYPE and engine mark; flags: 1 = the misdetect hook,
 * 2 = the self-check failed, 4 = a build without DYNAMIC_ARCH. */
static const char *plan(const nas_cpu_info *cpu, const char *core, const char *env,
                        const char *engine, int flags) {
    nas_blas_state s = {.corename = core,
                        .dynamic = !(flags & 4),
                        .env_coretype = env,
                        .env_engine = engine,
                        .misdetect = flags & 1,
                        .check_failed = (flags & 2) != 0};
    return nas_blas_plan(cpu, &s);
}

START_TEST(test_blas_plan_upgrades_weaker_kernels) {
    nas_cpu_info emr = cpu_of(NAS_ISA_AVX512, 1), hsw = cpu_of(NAS_ISA_AVX2, 0);
    nas_cpu_info snb = cpu_of(NAS_ISA_AVX, 0), old = cpu_of(NAS_ISA_SSE3, 0);
    // The library fell back to generic kernels on its own: pick by features.
    ck_assert(same(plan(&emr, "Prescott", NULL, NULL, 0), "SkylakeX"));
    ck_assert(same(plan(&hsw, "Prescott", NULL, NULL, 0), "Haswell"));
    ck_assert(same(plan(&snb, "Nehalem", NULL, NULL, 0), "Sandybridge"));
    ck_assert(same(plan(&emr, "Zen", NULL, NULL, 0), "SkylakeX"));
    // Kernels as strong as the CPU, a CPU with nothing better, a name we
    // do not know, or a library that cannot switch: nothing to do.
    ck_assert(same(plan(&emr, "SkylakeX", NULL, NULL, 0), NULL));
    ck_assert(same(plan(&emr, "Cooperlake", NULL, NULL, 0), NULL));
    ck_assert(same(plan(&hsw, "Haswell", NULL, NULL, 0), NULL));
    ck_assert(same(plan(&old, "Prescott", NULL, NULL, 0), NULL));
    ck_assert(same(plan(&emr, "armv8", NULL, NULL, 0), NULL));
    ck_assert(same(plan(&emr, "Prescott", NULL, NULL, 4), NULL));
    // A user's or administrator's OPENBLAS_CORETYPE is respected, even weak
    // (this is the CI machine's case: Haswell on an AVX-512 CPU).
    ck_assert(same(plan(&emr, "Haswell", "Haswell", NULL, 0), NULL));
    ck_assert(same(plan(&emr, "Prescott", "Prescott", NULL, 0), NULL));
    ck_assert(same(plan(&emr, "Prescott", "Prescott", "SkylakeX", 0), NULL));
    // The engine's own earlier choice did not take (a library without the
    // name loads its detection): the next one is tried, and the list ends.
    ck_assert(same(plan(&emr, "Prescott", "SkylakeX", "SkylakeX", 0), "Haswell"));
    ck_assert(same(plan(&emr, "Prescott", "Haswell", "Haswell", 0), "Sandybridge"));
    ck_assert(same(plan(&emr, "Prescott", "Sandybridge", "Sandybridge", 0), NULL));
    // Kernels the CPU cannot run are replaced whoever chose them: the
    // strongest set the CPU can run, however the library or the
    // administrator named them.
    ck_assert(same(plan(&old, "Haswell", "Haswell", NULL, 0), "Prescott"));
    ck_assert(same(plan(&snb, "Haswell", "Haswell", NULL, 0), "Sandybridge"));
    ck_assert(same(plan(&hsw, "SkylakeX", "SkylakeX", NULL, 0), "Haswell"));
    ck_assert(same(plan(&hsw, "Cooperlake", NULL, NULL, 0), "Haswell"));
    // The test hook makes an OPENBLAS_CORETYPE count as the library's detection.
    ck_assert(same(plan(&emr, "Prescott", "Prescott", NULL, 1), "SkylakeX"));
}
END_TEST

START_TEST(test_blas_plan_falls_back_after_failed_check) {
    nas_cpu_info emr = cpu_of(NAS_ISA_AVX512, 1);
    // Wrong results move down the list, whoever chose the kernels: safety
    // comes before a user's choice.
    ck_assert(same(plan(&emr, "SkylakeX", NULL, NULL, 2), "Haswell"));
    ck_assert(same(plan(&emr, "Cooperlake", NULL, NULL, 2), "Haswell"));
    ck_assert(same(plan(&emr, "Haswell", "Haswell", NULL, 2), "Sandybridge"));
    ck_assert(same(plan(&emr, "SkylakeX", "SkylakeX", "SkylakeX", 2), "Haswell"));
    ck_assert(same(plan(&emr, "Zen", NULL, NULL, 2), "Sandybridge"));
    ck_assert(same(plan(&emr, "Sandybridge", "Sandybridge", "Sandybridge", 2), "Prescott"));
    // Nothing below the generic kernels, nothing for an unknown set, and
    // nothing a library without DYNAMIC_ARCH could load.
    ck_assert(same(plan(&emr, "Prescott", "Prescott", "Prescott", 2), NULL));
    ck_assert(same(plan(&emr, "Prescott", NULL, NULL, 2), NULL));
    ck_assert(same(plan(&emr, "armv8", NULL, NULL, 2), NULL));
    ck_assert(same(plan(&emr, "SkylakeX", NULL, NULL, 2 | 4), NULL));
    // A name below the engine's last choice but not yet tried is never
    // above it: a library that ignores the name cannot make it loop.
    ck_assert(same(plan(&emr, "SkylakeX", "Sandybridge", "Sandybridge", 2), "Prescott"));
}
END_TEST

/* Right everywhere except when K is large, like a kernel whose K-loop
 * remainder handling is broken. */
static void broken_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc) {
    nas_gemm_naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (k > 200) c[(long)(m / 2) * ldc + n / 2] += 0.01f;
}

/* Right except that C's old value is ignored when beta is not zero. */
static void beta_blind_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                            int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    (void)beta;
    nas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc);
}

START_TEST(test_blas_selfcheck) {
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_gemm_selfcheck(nas_gemm, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_gemm_selfcheck(broken_gemm, err), NAS_EIO);
    ck_assert_msg(strstr(err, "19x24x300") && strstr(err, "max error"), "%s", err);
    ck_assert_int_eq(nas_gemm_selfcheck(beta_blind_gemm, err), NAS_EIO);
    ck_assert_msg(strstr(err, "beta 0.5"), "%s", err);
}
END_TEST

START_TEST(test_blas_info_names_the_library) {
    nas_blas_info info;
    nas_blas_info_get(&info);
    ck_assert_str_eq(info.library, "OpenBLAS");
    ck_assert(info.version[0] && info.kernels[0] && info.isa[0] && info.threads >= 1);
    nas_cpu_info cpu;
    nas_cpu_detect(&cpu);
    ck_assert_int_eq(info.cpu_level, cpu.level);
    ck_assert_str_eq(nas_isa_name(NAS_ISA_AVX512), "avx512");
    char isa[48];
    nas_cpu_info extras = cpu_of(NAS_ISA_AVX512, 1);
    extras.amx = 1;
    ck_assert_str_eq(nas_cpu_isa_string(&extras, isa, sizeof isa), "avx512+bf16+amx");
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_blas_kernel_levels);
    tcase_add_test(tc, test_blas_plan_upgrades_weaker_kernels);
    tcase_add_test(tc, test_blas_plan_falls_back_after_failed_check);
    tcase_add_test(tc, test_blas_selfcheck);
    tcase_add_test(tc, test_blas_info_names_the_library);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
