/*
 * test_blas.c - the kernel-set decision of common/blas.c as a pure
 * function, the GEMM self-check (it passes OpenBLAS and the engine's own
 * kernels and catches a wrong one), and the nas_gemm() fallback switch.
 * The end-to-end correction of a mis-detected CPU, through a real restart
 * of nas-train, is in test_train_cli.c.
 */
#include <stdlib.h>
#include <string.h>

#include "common/blas.h"
#include "common/err.h"
#include "common/gemm.h"
#include "common/rng.h"
#include "tests/gradcheck.h"
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

START_TEST(test_blas_plan) {
    nas_cpu_info emr = cpu_of(NAS_ISA_AVX512, 1), skx = cpu_of(NAS_ISA_AVX512, 0);
    nas_cpu_info hsw = cpu_of(NAS_ISA_AVX2, 0), old = cpu_of(NAS_ISA_SSE3, 0);
    // The library fell back to generic kernels on its own: pick by features.
    ck_assert(same(nas_blas_plan(&emr, "Prescott", NULL, NULL, 0), "Cooperlake"));
    ck_assert(same(nas_blas_plan(&skx, "Prescott", NULL, NULL, 0), "SkylakeX"));
    ck_assert(same(nas_blas_plan(&hsw, "Prescott", NULL, NULL, 0), "Haswell"));
    ck_assert(same(nas_blas_plan(&emr, "Zen", NULL, NULL, 0), "Cooperlake"));
    // Kernels as strong as the CPU, a CPU with nothing better, or a name we
    // do not know: nothing to do.
    ck_assert(same(nas_blas_plan(&emr, "SkylakeX", NULL, NULL, 0), NULL));
    ck_assert(same(nas_blas_plan(&hsw, "Haswell", NULL, NULL, 0), NULL));
    ck_assert(same(nas_blas_plan(&old, "Prescott", NULL, NULL, 0), NULL));
    ck_assert(same(nas_blas_plan(&emr, "armv8", NULL, NULL, 0), NULL));
    // A user's or administrator's OPENBLAS_CORETYPE is respected, even weak.
    ck_assert(same(nas_blas_plan(&emr, "Haswell", "Haswell", NULL, 0), NULL));
    ck_assert(same(nas_blas_plan(&emr, "Prescott", "Prescott", NULL, 0), NULL));
    ck_assert(same(nas_blas_plan(&emr, "Prescott", "Prescott", "Cooperlake", 0), NULL));
    // The engine's own earlier choice did not take (a library without the
    // name): the next one is tried, and the list ends.
    ck_assert(same(nas_blas_plan(&emr, "Prescott", "Cooperlake", "Cooperlake", 0), "SkylakeX"));
    ck_assert(same(nas_blas_plan(&emr, "Prescott", "SkylakeX", "SkylakeX", 0), "Haswell"));
    ck_assert(same(nas_blas_plan(&emr, "Prescott", "Sandybridge", "Sandybridge", 0), NULL));
    // The test hook makes an OPENBLAS_CORETYPE count as the library's detection.
    ck_assert(same(nas_blas_plan(&emr, "Prescott", "Prescott", NULL, 1), "Cooperlake"));
}
END_TEST

/* Right everywhere except when K is large, like a kernel whose K-loop
 * remainder handling is broken. */
static void broken_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc) {
    nas_gemm_naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (k > 200) c[(long)(m / 2) * ldc + n / 2] += 0.01f;
}

START_TEST(test_blas_selfcheck) {
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_gemm_selfcheck(nas_gemm_openblas, err) == NAS_OK, "%s", err);
    ck_assert_msg(nas_gemm_selfcheck(nas_gemm_own, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_gemm_selfcheck(broken_gemm, err), NAS_EIO);
    ck_assert_msg(strstr(err, "96x40x300") && strstr(err, "max error"), "%s", err);
}
END_TEST

START_TEST(test_blas_fallback_routes_gemm) {
    nas_rng r;
    nas_rng_init(&r, 3, 0);
    enum { M = 19, N = 23, K = 37 };
    float a[K * M], b[N * K], c1[M * N], c2[M * N];
    nas_fill_uniform(a, K * M, -1, 1, &r);
    nas_fill_uniform(b, N * K, -1, 1, &r);
    ck_assert_int_eq(nas_gemm_own_active(), 0);
    nas_gemm_use_own(1);
    ck_assert_int_eq(nas_gemm_own_active(), 1);
    nas_blas_info info;
    nas_blas_info_get(&info);
    ck_assert_str_eq(info.gemm, "own");
    for (int i = 0; i < M * N; i++) c1[i] = c2[i] = (float)i;
    nas_gemm(1, 1, M, N, K, 0.5f, a, M, b, K, 0.25f, c1, N);
    nas_gemm_naive(1, 1, M, N, K, 0.5f, a, M, b, K, 0.25f, c2, N);
    ck_assert(nas_allclose(c1, c2, M * N, 1e-5f, 1e-5f, "own TT"));
    nas_gemm_use_own(0);
    nas_blas_info_get(&info);
    ck_assert_str_eq(info.gemm, "openblas");
    ck_assert_str_eq(info.library, "OpenBLAS");
    ck_assert(info.version[0] && info.kernels[0] && info.isa[0] && info.threads >= 1);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_blas_kernel_levels);
    tcase_add_test(tc, test_blas_plan);
    tcase_add_test(tc, test_blas_selfcheck);
    tcase_add_test(tc, test_blas_fallback_routes_gemm);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
