/*
 * test_earlystop.c - the median stopping rule on hand-worked curves, and
 * learning-curve extrapolation on synthetic curves of known asymptote
 * (each family recovers its own; the combined forecast finds the final
 * value of noisy curves; the stop rule says stop only for hopeless runs).
 */
#include "common/err.h"
#include "common/rng.h"
#include "master/earlystop.h"
#include "tests/harness.h"

#include <math.h>

// ---- median rule --------------------------------------------------------------------------------

START_TEST(test_earlystop_median_by_hand) {
    /* Three finished runs (values exact in binary, so "strictly below" is
     * tested at equality); their running averages over epochs 1..2 are
     * 0.375, 0.625 and 0.875 (median 0.625), over 1..3 0.5, 0.7083 and
     * 0.9167 (median 0.7083). */
    static const float a[] = {0.25f, 0.5f, 0.75f}, b[] = {0.5f, 0.75f, 0.875f},
                       c[] = {0.75f, 1.0f, 1.0f};
    const float *done[] = {a, b, c};
    const int len[] = {3, 3, 3};
    static const float slow[] = {0.25f, 0.5f, 0.5f}, ok[] = {0.25f, 0.625f, 0.6875f};
    /* Epoch 2: best 0.5 < 0.625 stops; best 0.625 is not strictly below. */
    ck_assert_int_eq(nas_stop_median(done, len, 3, slow, 2, 1, 3), 1);
    ck_assert_int_eq(nas_stop_median(done, len, 3, ok, 2, 1, 3), 0);
    /* Epoch 3: best 0.6875 < 0.7083. */
    ck_assert_int_eq(nas_stop_median(done, len, 3, ok, 3, 1, 3), 1);
    /* The guards: too early, too few finished runs reaching epoch t. */
    ck_assert_int_eq(nas_stop_median(done, len, 3, slow, 2, 3, 3), 0);
    ck_assert_int_eq(nas_stop_median(done, len, 3, slow, 2, 1, 4), 0);
    /* b reaches only epoch 1: a and c are left at epoch 2, median 0.625. */
    const int short_len[] = {3, 1, 3};
    ck_assert_int_eq(nas_stop_median(done, short_len, 3, slow, 2, 1, 3), 0);
    ck_assert_int_eq(nas_stop_median(done, short_len, 3, slow, 2, 1, 2), 1);
    /* Even count: the median of a and b at epoch 2 is (0.375 + 0.625) / 2. */
    static const float meh[] = {0.25f, 0.4375f};
    ck_assert_int_eq(nas_stop_median(done, len, 2, ok, 2, 1, 2), 0);
    ck_assert_int_eq(nas_stop_median(done, len, 2, meh, 2, 1, 2), 1);
}
END_TEST

START_TEST(test_earlystop_median_nan_and_args) {
    static const float a[] = {0.5f, NAN}, b[] = {0.5f, 0.6f}, c[] = {0.6f, 0.7f};
    const float *done[] = {a, b, c};
    const int len[] = {2, 2, 2};
    static const float cur[] = {0.5f, 0.58f}, bad[] = {0.9f, NAN};
    /* The diverged finished run is skipped: median of 0.55 and 0.65 is 0.6. */
    ck_assert_int_eq(nas_stop_median(done, len, 3, cur, 2, 1, 2), 1);
    ck_assert_int_eq(nas_stop_median(done, len, 3, cur, 2, 1, 3), 0);
    /* A running run that diverged stops whatever the others did. */
    ck_assert_int_eq(nas_stop_median(done, len, 3, bad, 2, 1, 3), 1);
    ck_assert_int_eq(nas_stop_median(done, len, 3, cur, 0, 1, 3), NAS_EINVAL);
    ck_assert_int_eq(nas_stop_median(NULL, NULL, 0, cur, 2, 1, 1), 0);
}
END_TEST

// ---- fitting each family ------------------------------------------------------------------------

static void sample(int model, const double *p, int n, float *y) {
    for (int i = 0; i < n; i++)
        y[i] = (float)nas_curve_model_eval(model, p, i + 1);
}

/* Noiseless curves of each family: 12 epochs of it, fitted by the same
 * family, forecast epoch 200 to within 0.005 of the truth. */
START_TEST(test_earlystop_fit_recovers_asymptote) {
    static const double truth[NAS_CURVE_N_MODELS][4] = {
        {0.92, 0.6, 0.8, 0},    /* pow3: c - a x^-alpha, asymptote 0.92 */
        {0.88, 1.0, -1.5, 0},   /* log-power: asymptote 0.88 */
        {0.9, -0.5, 0.25, 0},   /* exp3: c - exp(b - a x), asymptote 0.9 */
        {0.85, 0.1, 0.15, 1.1}, /* Janoschek: asymptote 0.85 */
    };
    for (int m = 0; m < NAS_CURVE_N_MODELS; m++) {
        float y[12];
        sample(m, truth[m], 12, y);
        double p[NAS_CURVE_MAX_PARAMS], sse;
        ck_assert_int_eq(nas_curve_fit(m, y, 12, p, &sse), NAS_OK);
        double want = nas_curve_model_eval(m, truth[m], 200);
        double got = nas_curve_model_eval(m, p, 200);
        ck_assert_msg(fabs(got - want) < 0.005, "%s: forecast %.4f, truth %.4f (sse %g)",
                      nas_curve_model_name(m), got, want, sse);
        ck_assert_msg(sse < 1e-8, "%s: sse %g", nas_curve_model_name(m), sse);
    }
}
END_TEST

START_TEST(test_earlystop_fit_args) {
    float y[3] = {0.1f, 0.2f, 0.3f};
    double p[4], sse;
    ck_assert_int_eq(nas_curve_fit(NAS_CURVE_POW3, y, 3, p, &sse), NAS_EINVAL);
    ck_assert_int_eq(nas_curve_fit(9, y, 3, p, &sse), NAS_EINVAL);
    nas_curve_forecast f;
    ck_assert_int_eq(nas_curve_extrapolate(y, 3, 10, 0.5, 0, 1, &f), NAS_EINVAL);
    float z[6] = {0.1f, 0.2f, NAN, 0.3f, 0.3f, 0.3f};
    ck_assert_int_eq(nas_curve_extrapolate(z, 6, 10, 0.5, 0, 1, &f), NAS_EINVAL);
    ck_assert_int_eq(nas_curve_extrapolate(z, 2, 2, 0.5, 0, 1, &f), NAS_EINVAL);
}
END_TEST

// ---- the combined forecast ----------------------------------------------------------------------

/* Noisy curves (sd 0.004) of every family: from 15 epochs the forecast of
 * epoch 60 lands within 0.03 of the true value, and its sd covers the
 * miss within three sds. */
START_TEST(test_earlystop_forecast_noisy) {
    static const double truth[NAS_CURVE_N_MODELS][4] = {
        {0.92, 0.6, 0.8, 0},
        {0.88, 1.0, -1.5, 0},
        {0.9, -0.5, 0.25, 0},
        {0.85, 0.1, 0.15, 1.1},
    };
    nas_rng rng;
    nas_rng_init(&rng, 42, 3);
    for (int m = 0; m < NAS_CURVE_N_MODELS; m++) {
        float y[15];
        sample(m, truth[m], 15, y);
        for (int i = 0; i < 15; i++)
            y[i] += 0.004f * nas_rng_normal(&rng);
        double want = nas_curve_model_eval(m, truth[m], 60);
        nas_curve_forecast f;
        ck_assert_int_eq(nas_curve_extrapolate(y, 15, 60, 0.5, 0, 1, &f), NAS_OK);
        ck_assert_int_ge(f.n_models, 1);
        ck_assert_msg(fabs(f.mean - want) < 0.03, "%s curve: forecast %.4f +- %.4f, truth %.4f",
                      nas_curve_model_name(m), f.mean, f.sd, want);
        ck_assert_msg(fabs(f.mean - want) < 3 * f.sd + 0.005, "%s: sd %.4f too small for miss %.4f",
                      nas_curve_model_name(m), f.sd, fabs(f.mean - want));
        /* Best far below the forecast: sure to be beaten. */
        ck_assert_double_gt(f.p_exceed, 0.99);
    }
}
END_TEST

/* Domhan's rule on a pow3 curve heading for 0.80: stop it when the best
 * so far is 0.90, keep it when the best is 0.76 (epoch 50 is at 0.768), and keep a curve too
 * short to fit. */
START_TEST(test_earlystop_stop_rule) {
    static const double p[] = {0.80, 0.5, 0.7};
    float y[10];
    sample(NAS_CURVE_POW3, p, 10, y);
    nas_curve_forecast f;
    ck_assert_int_eq(nas_stop_extrapolate(y, 10, 50, 0.90, 0.05, &f), 1);
    ck_assert_double_lt(f.p_exceed, 0.05);
    ck_assert_double_lt(fabs(f.mean - nas_curve_model_eval(NAS_CURVE_POW3, p, 50)), 0.02);
    ck_assert_int_eq(nas_stop_extrapolate(y, 10, 50, 0.76, 0.05, &f), 0);
    ck_assert_double_gt(f.p_exceed, 0.5);
    ck_assert_int_eq(nas_stop_extrapolate(y, 4, 50, 0.99, 0.05, &f), 0);
    ck_assert_int_eq(f.n_models, 0);
}
END_TEST

/* A curve that falls (say a diverging run) matches no family: no
 * forecast, and no stop on that evidence alone. */
START_TEST(test_earlystop_falling_curve_no_forecast) {
    float y[8] = {0.6f, 0.55f, 0.5f, 0.45f, 0.4f, 0.35f, 0.3f, 0.25f};
    nas_curve_forecast f;
    ck_assert_int_eq(nas_curve_extrapolate(y, 8, 40, 0.9, 0, 1, &f), NAS_ERANGE);
    ck_assert_int_eq(nas_stop_extrapolate(y, 8, 40, 0.9, 0.05, &f), 0);
}
END_TEST

// ---- gradient statistics ------------------------------------------------------------------------

/* b per-example gradients per coordinate, drawn around mean mu with sd 1:
 * the batch mean and the examples' variance, as a worker would send. */
static double eb_of(double mu, int b, nas_rng *rng) {
    enum { D = 2000 };
    static float g[D], var[D];
    for (int k = 0; k < D; k++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < b; i++) {
            double x = mu + nas_rng_normal(rng);
            s += x;
            s2 += x * x;
        }
        g[k] = (float)(s / b);
        var[k] = (float)((s2 - s * s / b) / (b - 1));
    }
    return nas_stop_eb_criterion(g, var, D, b);
}

/* Under the null (no true gradient) b g^2 / var is F(1, b-1)-distributed
 * with mean (b-1)/(b-3), so EB sits near -2/(b-3); a real gradient of 0.5
 * sd drives it to about -b/4.  Zero-variance coordinates are left out. */
START_TEST(test_earlystop_eb_criterion) {
    nas_rng rng;
    nas_rng_init(&rng, 11, 4);
    double null = eb_of(0, 32, &rng);
    ck_assert_msg(fabs(null - (-2.0 / 29)) < 0.08, "EB under the null: %f", null);
    double real = eb_of(0.5, 32, &rng);
    ck_assert_msg(real < -6 && real > -11, "EB with a real gradient: %f", real);
    static const float g[] = {0.1f, 5.0f}, var[] = {0.01f, 0.0f};
    ck_assert_double_eq_tol(nas_stop_eb_criterion(g, var, 2, 4), 1 - 4 * 1.0, 1e-6);
    ck_assert(isnan(nas_stop_eb_criterion(g + 1, var + 1, 1, 4)));
    ck_assert(isnan(nas_stop_eb_criterion(g, var, 2, 1)));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("earlystop");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_earlystop_median_by_hand);
    tcase_add_test(tc, test_earlystop_median_nan_and_args);
    tcase_add_test(tc, test_earlystop_fit_recovers_asymptote);
    tcase_add_test(tc, test_earlystop_fit_args);
    tcase_add_test(tc, test_earlystop_forecast_noisy);
    tcase_add_test(tc, test_earlystop_stop_rule);
    tcase_add_test(tc, test_earlystop_falling_curve_no_forecast);
    tcase_add_test(tc, test_earlystop_eb_criterion);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
