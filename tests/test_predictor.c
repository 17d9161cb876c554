/*
 * test_predictor.c - the PNAS predictor: gradients of both models against
 * finite differences, a fit of a known synthetic function judged on
 * held-out data, determinism, serialisation, and Spearman's correlation.
 */
#include "tests/harness.h"

#include "common/alloc.h"
#include "common/err.h"
#include "master/predictor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Random one-hot token sequences: token k of sample i picks one of D
 * categories; len varies in [T/2, T] when with_len is set. */
static void make_tokens(nas_rng *rng, int n, int T, int D, float *x, int *len, int with_len) {
    memset(x, 0, sizeof(float) * (size_t)n * T * D);
    for (int i = 0; i < n; i++) {
        len[i] = with_len ? T / 2 + (int)nas_rng_below(rng, (uint32_t)(T - T / 2 + 1)) : T;
        if (len[i] < 1) len[i] = 1;
        for (int k = 0; k < len[i]; k++)
            x[((size_t)i * T + k) * D + nas_rng_below(rng, D)] = 1.0f;
    }
}

/* The synthetic "accuracy": each category has a value, later tokens weigh
 * more, and one pair of categories interacts. Values land in (0.3, 0.9). */
static float synthetic(const float *x, int T, int D) {
    static const float value[6] = {0.0f, 0.3f, -0.2f, 0.5f, 0.1f, -0.4f};
    float s = 0.0f;
    int has1 = 0, has3 = 0;
    for (int k = 0; k < T; k++)
        for (int c = 0; c < D; c++)
            if (x[k * D + c] > 0.5f) {
                s += value[c] * (1.0f + 0.3f * k);
                has1 |= c == 1, has3 |= c == 3;
            }
    if (has1 && has3) s += 0.6f;
    return 0.6f + 0.3f * tanhf(s / 2.0f);
}

/* Finite differences in double around a float model: check the relative
 * error of a sample of coordinates. */
static void gradcheck(int kind) {
    enum { N = 6, T = 3, D = 5, H = 4 };
    nas_rng rng;
    nas_rng_init(&rng, 7, kind);
    float x[N * T * D];
    int len[N];
    make_tokens(&rng, N, T, D, x, len, kind == NAS_PREDICTOR_LSTM);
    float t[N];
    for (int i = 0; i < N; i++)
        t[i] = nas_rng_uniform(&rng);
    nas_predictor_data d = {.n = N, .T = T, .D = D, .x = x, .len = len};
    size_t nw = nas_predictor_model_size(kind, T, D, H);
    float *w = nas_malloc(sizeof(float) * nw), *g = nas_malloc(sizeof(float) * nw);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(g);
    nas_predictor_model_init(kind, T, D, H, &rng, w);
    /* Larger weights so every gate and ReLU sees a non-trivial slope. */
    for (size_t k = 0; k < nw; k++)
        w[k] *= 2.0f;
    double loss;
    ck_assert_int_eq(nas_predictor_model_eval(kind, H, w, &d, t, NULL, g, &loss), NAS_OK);
    int checked = 0;
    for (size_t k = 0; k < nw; k += 1 + nw / 60) {
        float save = w[k];
        double lp, lm;
        const float eps = 5e-4f;
        w[k] = save + eps;
        nas_predictor_model_eval(kind, H, w, &d, t, NULL, NULL, &lp);
        w[k] = save - eps;
        nas_predictor_model_eval(kind, H, w, &d, t, NULL, NULL, &lm);
        w[k] = save;
        double num = (lp - lm) / (2.0 * eps);
        /* Relative error, with an absolute floor for tiny gradients where the
         * float loss's rounding (about 1e-8 / eps) dominates. */
        double diff = fabs(num - g[k]);
        if (diff > 0.05 * (fabs(num) + fabs(g[k])) + 2e-5)
            ck_abort_msg("kind %d weight %zu: analytic %g numeric %g", kind, k, (double)g[k], num);
        checked++;
    }
    ck_assert_int_ge(checked, 30);
    nas_free(w);
    nas_free(g);
}

START_TEST(test_gradcheck_mlp) {
    gradcheck(NAS_PREDICTOR_MLP);
}
END_TEST

START_TEST(test_gradcheck_lstm) {
    gradcheck(NAS_PREDICTOR_LSTM);
}
END_TEST

/* Fit on 160 samples of the synthetic function, rank 200 held-out ones. */
START_TEST(test_fit_synthetic) {
    enum { NTR = 160, NTE = 200, T = 4, D = 6 };
    nas_rng rng;
    nas_rng_init(&rng, 11, 0);
    float *x = nas_malloc(sizeof(float) * (NTR + NTE) * T * D);
    int len[NTR + NTE];
    float y[NTR + NTE];
    make_tokens(&rng, NTR + NTE, T, D, x, len, 0);
    for (int i = 0; i < NTR + NTE; i++)
        y[i] = synthetic(x + (size_t)i * T * D, T, D);
    nas_predictor_config cfg;
    nas_predictor_config_default(&cfg);
    cfg.n_mlp = 3;
    nas_predictor_data tr = {.n = NTR, .T = T, .D = D, .x = x, .len = len, .y = y};
    nas_predictor *p = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_predictor_fit(&p, &cfg, &tr, 5, err), NAS_OK);
    nas_predictor_data te = {
        .n = NTE, .T = T, .D = D, .x = x + (size_t)NTR * T * D, .len = len + NTR};
    float pred[NTE];
    ck_assert_int_eq(nas_predictor_predict(p, &te, pred, err), NAS_OK);
    double a[NTE], b[NTE];
    for (int i = 0; i < NTE; i++)
        a[i] = pred[i], b[i] = y[NTR + i];
    double rho = nas_predictor_spearman(a, b, NTE);
    printf("predictor: held-out Spearman %.3f\n", rho);
    ck_assert_msg(rho > 0.9, "held-out rank correlation %.3f <= 0.9", rho);

    /* The same seed gives the same predictor, bit for bit. */
    nas_predictor *q = NULL;
    ck_assert_int_eq(nas_predictor_fit(&q, &cfg, &tr, 5, err), NAS_OK);
    float pred2[NTE];
    ck_assert_int_eq(nas_predictor_predict(q, &te, pred2, err), NAS_OK);
    ck_assert_int_eq(memcmp(pred, pred2, sizeof pred), 0);

    /* Export / import keeps predictions; damaged blobs are refused. */
    uint8_t *blob;
    size_t n;
    ck_assert_int_eq(nas_predictor_export(p, &blob, &n), NAS_OK);
    nas_predictor *r = NULL;
    ck_assert_int_eq(nas_predictor_import(&r, blob, n, err), NAS_OK);
    ck_assert_int_eq(nas_predictor_predict(r, &te, pred2, err), NAS_OK);
    ck_assert_int_eq(memcmp(pred, pred2, sizeof pred), 0);
    nas_predictor_destroy(&r);
    ck_assert_int_eq(nas_predictor_import(&r, blob, n - 3, err), NAS_EFORMAT);
    ck_assert_ptr_null(r);
    blob[8] = 200; /* T = 200 is impossible */
    ck_assert_int_eq(nas_predictor_import(&r, blob, n, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "dimensions"));
    nas_free(blob);
    nas_predictor_destroy(&p);
    nas_predictor_destroy(&q);
    nas_free(x);
}
END_TEST

START_TEST(test_fit_rejects_bad_data) {
    float x[2 * 2] = {1, 0, 0, 1};
    float y[2] = {0.5f, NAN};
    int len[2] = {1, 3};
    nas_predictor_config cfg;
    nas_predictor_config_default(&cfg);
    nas_predictor *p = NULL;
    char err[NAS_ERR_LEN];
    nas_predictor_data d = {.n = 2, .T = 1, .D = 2, .x = x, .y = y};
    ck_assert_int_eq(nas_predictor_fit(&p, &cfg, &d, 1, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "target 1"));
    y[1] = 0.6f;
    d.len = len;
    ck_assert_int_eq(nas_predictor_fit(&p, &cfg, &d, 1, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "tokens"));
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_spearman) {
    double a[5] = {1, 2, 3, 4, 5}, b[5] = {10, 20, 30, 40, 50}, c[5] = {5, 4, 3, 2, 1};
    ck_assert_double_eq_tol(nas_predictor_spearman(a, b, 5), 1.0, 1e-12);
    ck_assert_double_eq_tol(nas_predictor_spearman(a, c, 5), -1.0, 1e-12);
    /* Ties take the average rank: ranks of d are 1.5 1.5 3 4 5. */
    double d[5] = {7, 7, 8, 9, 10};
    double rho = nas_predictor_spearman(a, d, 5);
    ck_assert(rho > 0.97 && rho < 1.0);
    double k[5] = {3, 3, 3, 3, 3};
    ck_assert(isnan(nas_predictor_spearman(a, k, 5)));
    ck_assert(isnan(nas_predictor_spearman(a, b, 1)));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("predictor");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gradcheck_mlp);
    tcase_add_test(tc, test_gradcheck_lstm);
    tcase_add_test(tc, test_fit_synthetic);
    tcase_add_test(tc, test_fit_rejects_bad_data);
    tcase_add_test(tc, test_spearman);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
