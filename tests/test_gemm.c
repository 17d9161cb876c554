/*
 * test_gemm.c - nas_gemm (OpenBLAS) against the naive reference, for every
 * transpose combination, padded leading dimensions and alpha/beta.
 */
#include <stdlib.h>

#include "common/gemm.h"
#include "common/rng.h"
#include "tests/gradcheck.h"
#include "tests/harness.h"

START_TEST(test_gemm_matches_naive) {
    nas_rng r;
    nas_rng_init(&r, 7, 1);
    int m = 13, n = 17, k = 11, pad = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            // Stored shapes depend on the transpose flags; pad every row by `pad`.
            int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
            int rows_a = ta ? k : m, rows_b = tb ? n : k;
            float *a = malloc(sizeof(float) * rows_a * lda);
            float *b = malloc(sizeof(float) * rows_b * ldb);
            float *c1 = malloc(sizeof(float) * m * ldc), *c2 = malloc(sizeof(float) * m * ldc);
            nas_fill_uniform(a, (size_t)rows_a * lda, -1, 1, &r);
            nas_fill_uniform(b, (size_t)rows_b * ldb, -1, 1, &r);
            nas_fill_uniform(c1, (size_t)m * ldc, -1, 1, &r);
            for (int i = 0; i < m * ldc; i++) c2[i] = c1[i];
            nas_gemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c1, ldc);
            nas_gemm_naive(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c2, ldc);
            ck_assert(nas_allclose(c1, c2, (size_t)m * ldc, 1e-5f, 1e-5f, "gemm"));
            // beta = 0 must ignore C entirely, even NaNs left in it.
            for (int i = 0; i < m * ldc; i++) c1[i] = c2[i] = NAN;
            nas_gemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c1, ldc);
            nas_gemm_naive(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c2, ldc);
            for (int i = 0; i < m; i++)
                ck_assert(nas_allclose(c1 + i * ldc, c2 + i * ldc, n, 1e-5f, 1e-5f, "gemm b0"));
            free(a), free(b), free(c1), free(c2);
        }
}
END_TEST

START_TEST(test_gemm_known_product) {
    // [1 2; 3 4] . [5 6; 7 8] = [19 22; 43 50]
    float a[] = {1, 2, 3, 4}, b[] = {5, 6, 7, 8}, c[4], want[] = {19, 22, 43, 50};
    nas_gemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    ck_assert(nas_allclose(c, want, 4, 0, 0, "2x2"));
    // k == 0 only scales C by beta.
    float c0[] = {1, 2, 3, 4}, want0[] = {2, 4, 6, 8};
    nas_gemm(0, 0, 2, 2, 0, 1.0f, a, 2, b, 2, 2.0f, c0, 2);
    ck_assert(nas_allclose(c0, want0, 4, 0, 0, "k0"));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_gemm_matches_naive);
    tcase_add_test(tc, test_gemm_known_product);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
