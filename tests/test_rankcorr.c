/*
 * test_rankcorr.c - Spearman's rho and Kendall's tau-b with ties against
 * hand-worked values, against scipy.stats where Debian's python3-scipy is
 * installed (the case says so and passes when it is not), and the pairing
 * of two fidelities' results by architecture.
 */
#include "common/err.h"
#include "common/rng.h"
#include "master/rankcorr.h"
#include "tests/harness.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

START_TEST(test_rankcorr_midranks) {
    static const double x[] = {10, 20, 20, 5, 20};
    double r[5];
    ck_assert_int_eq(nas_rank_midranks(x, 5, r), NAS_OK);
    /* 5 -> 1, 10 -> 2, the three 20s share ranks 3, 4, 5 -> 4. */
    static const double want[] = {2, 4, 4, 1, 4};
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(r[i], want[i]);
    double bad[] = {1, NAN};
    ck_assert_int_eq(nas_rank_midranks(bad, 2, r), NAS_EINVAL);
}
END_TEST

/* x = 1..5, y = 5 6 7 8 7.  Ranks of y: 1 2 3.5 5 3.5.  Deviations from
 * the mean rank 3: x -2 -1 0 1 2, y -2 -1 0.5 2 0.5; sum of products 8,
 * sums of squares 10 and 9.5: rho = 8 / sqrt(95).  Pairs: 8 concordant,
 * 1 discordant (epochs 4, 5), 1 tied in y: tau-b = 7 / sqrt(10 * 9). */
START_TEST(test_rankcorr_by_hand_ties) {
    static const double x[] = {1, 2, 3, 4, 5}, y[] = {5, 6, 7, 8, 7};
    double rho, tau;
    ck_assert_int_eq(nas_rank_spearman(x, y, 5, &rho), NAS_OK);
    ck_assert_int_eq(nas_rank_kendall(x, y, 5, &tau), NAS_OK);
    ck_assert_double_eq_tol(rho, 8 / sqrt(95), 1e-12);
    ck_assert_double_eq_tol(tau, 7 / sqrt(90), 1e-12);
}
END_TEST

/* Ties on both sides: x 12 2 1 12 2, y 1 4 7 1 0.  Of the 10 pairs, 2 are
 * concordant ((0,4), (3,4)), 6 discordant, x ties (0,3) and (1,4), y ties
 * (0,3): tau-b = (2 - 6) / sqrt((10 - 2)(10 - 1)) = -4 / sqrt(72). */
START_TEST(test_rankcorr_by_hand_both_tied) {
    static const double x[] = {12, 2, 1, 12, 2}, y[] = {1, 4, 7, 1, 0};
    double tau, rho;
    ck_assert_int_eq(nas_rank_kendall(x, y, 5, &tau), NAS_OK);
    ck_assert_double_eq_tol(tau, -4 / sqrt(72), 1e-12);
    /* Ranks x: 4.5 2.5 1 4.5 2.5; y: 2.5 4 5 2.5 1; both mean 3.
     * Products of deviations: 1.5*-0.5 + -0.5*1 + -2*2 + 1.5*-0.5 + -0.5*-2
     * = -5; squares 9 + ... : sxx = 2.25+0.25+4+2.25+0.25 = 9,
     * syy = 0.25+1+4+0.25+4 = 9.5: rho = -5 / sqrt(85.5). */
    ck_assert_int_eq(nas_rank_spearman(x, y, 5, &rho), NAS_OK);
    ck_assert_double_eq_tol(rho, -5 / sqrt(85.5), 1e-12);
}
END_TEST

START_TEST(test_rankcorr_degenerate) {
    static const double x[] = {1, 2, 3}, c[] = {4, 4, 4};
    double v;
    ck_assert_int_eq(nas_rank_spearman(x, c, 3, &v), NAS_OK);
    ck_assert(isnan(v));
    ck_assert_int_eq(nas_rank_kendall(x, c, 3, &v), NAS_OK);
    ck_assert(isnan(v));
    ck_assert_int_eq(nas_rank_spearman(x, x, 1, &v), NAS_OK);
    ck_assert(isnan(v));
    ck_assert_int_eq(nas_rank_kendall(x, x, 3, &v), NAS_OK);
    ck_assert_double_eq(v, 1);
    static const double rev[] = {3, 2, 1}, nan_[] = {1, NAN, 2};
    ck_assert_int_eq(nas_rank_spearman(x, rev, 3, &v), NAS_OK);
    ck_assert_double_eq(v, -1);
    ck_assert_int_eq(nas_rank_spearman(x, nan_, 3, &v), NAS_EINVAL);
    ck_assert_int_eq(nas_rank_kendall(nan_, x, 3, &v), NAS_EINVAL);
}
END_TEST

/* Results paired by architecture: repeats averaged, unpaired dropped. */
START_TEST(test_rankcorr_compare_pairs) {
    static const nas_rank_obs lo[] = {{7, 0.50}, {3, 0.625}, {9, 0.75}, {3, 0.875},
                                      {1, 0.2},  {4, 0.9},   {5, 0.1},  {6, 0.3}};
    static const nas_rank_obs hi[] = {{3, 0.91}, {7, 0.85}, {9, 0.95}, {2, 0.99},
                                      {4, 0.97}, {5, 0.5},  {6, 0.6}};
    nas_rank_report r;
    ck_assert_int_eq(nas_rank_compare(lo, 8, hi, 7, &r), NAS_OK);
    /* Pairs (lo mean, hi): 3 (0.75, 0.91), 4 (0.9, 0.97), 5 (0.1, 0.5),
     * 6 (0.3, 0.6), 7 (0.5, 0.85), 9 (0.75, 0.95).  Arch 3 and 9 tie at 0.75
     * in lo: ranks lo 4.5 6 1 2 3 4.5, hi 4 6 1 2 3 5. */
    ck_assert_int_eq(r.n, 6);
    static const double x[] = {4.5, 6, 1, 2, 3, 4.5}, y[] = {4, 6, 1, 2, 3, 5};
    double rho;
    ck_assert_int_eq(nas_rank_spearman(x, y, 6, &rho), NAS_OK);
    ck_assert_double_eq_tol(r.rho, rho, 1e-12);
    /* 14 concordant of 15 pairs, one tied in lo: tau-b = 14 / sqrt(14 * 15). */
    ck_assert_double_eq_tol(r.tau, 14 / sqrt(14.0 * 15.0), 1e-12);
    ck_assert_int_eq(r.weak, 0);
    /* Reverse the high fidelity's order: a weak ranking, flagged. */
    nas_rank_obs rev[7];
    for (int i = 0; i < 7; i++)
        rev[i] = (nas_rank_obs){hi[i].arch, 1 - hi[i].value};
    ck_assert_int_eq(nas_rank_compare(lo, 8, rev, 7, &r), NAS_OK);
    ck_assert_double_lt(r.rho, 0);
    ck_assert_int_eq(r.weak, 1);
    /* Too few pairs to judge: never flagged. */
    ck_assert_int_eq(nas_rank_compare(lo, 3, rev, 7, &r), NAS_OK);
    ck_assert_int_lt(r.n, NAS_RANKCORR_MIN_N);
    ck_assert_int_eq(r.weak, 0);
    ck_assert_int_eq(nas_rank_compare(NULL, 0, hi, 7, &r), NAS_OK);
    ck_assert_int_eq(r.n, 0);
    ck_assert(isnan(r.rho));
}
END_TEST

/* scipy.stats.spearmanr / kendalltau (tau-b) on random data with many
 * ties, when /usr/bin/python3 has scipy. */
START_TEST(test_rankcorr_matches_scipy) {
    char out[4096];
    if (nas_run_cmd("/usr/bin/python3 -c 'import scipy.stats'", out, sizeof out) != 0) {
        fprintf(stderr, "test_rankcorr_matches_scipy: skipped, /usr/bin/python3 has no scipy "
                        "(apt-get install python3-scipy)\n");
        return;
    }
    nas_rng rng;
    nas_rng_init(&rng, 5, 0);
    for (int trial = 0; trial < 4; trial++) {
        enum { N = 40 };
        double x[N], y[N];
        char cmd[8192], *p = cmd;
        p += sprintf(p, "/usr/bin/python3 -c 'import scipy.stats as s; x=[");
        for (int i = 0; i < N; i++) {
            /* Few distinct values, so ties are common; y follows x loosely. */
            x[i] = (double)nas_rng_below(&rng, 8 + 8 * (uint32_t)trial);
            y[i] = x[i] + (double)nas_rng_below(&rng, 6);
            p += sprintf(p, "%g,", x[i]);
        }
        p += sprintf(p, "]; y=[");
        for (int i = 0; i < N; i++)
            p += sprintf(p, "%g,", y[i]);
        sprintf(p, "]; print(\"%%.15f %%.15f\" %% (s.spearmanr(x, y)[0], s.kendalltau(x, y)[0]))'");
        ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
        double want_rho, want_tau, rho, tau;
        ck_assert_int_eq(sscanf(out, "%lf %lf", &want_rho, &want_tau), 2);
        ck_assert_int_eq(nas_rank_spearman(x, y, N, &rho), NAS_OK);
        ck_assert_int_eq(nas_rank_kendall(x, y, N, &tau), NAS_OK);
        ck_assert_msg(fabs(rho - want_rho) < 1e-9, "rho %.12f, scipy %.12f", rho, want_rho);
        ck_assert_msg(fabs(tau - want_tau) < 1e-9, "tau %.12f, scipy %.12f", tau, want_tau);
    }
}
END_TEST

/* Kendall's tau-b pair by pair, as the definition reads: the reference
 * the O(n log n) count must equal exactly. */
static double kendall_pairs(const double *x, const double *y, int n) {
    double conc = 0, disc = 0, tx = 0, ty = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double dx = x[i] - x[j], dy = y[i] - y[j];
            tx += dx == 0;
            ty += dy == 0;
            if (dx == 0 || dy == 0) continue;
            if ((dx > 0) == (dy > 0))
                conc += 1;
            else
                disc += 1;
        }
    double n0 = 0.5 * (double)n * (double)(n - 1);
    double den = sqrt((n0 - tx) * (n0 - ty));
    if (den <= 0) return NAN;
    double t = (conc - disc) / den;
    return t > 1 ? 1 : t < -1 ? -1 : t;
}

/* The same double, bit for bit, on random data from no ties to nearly all
 * tied, both sides constant, reversed, and sizes around the merge's halves. */
START_TEST(test_rankcorr_kendall_equals_pairwise) {
    nas_rng rng;
    nas_rng_init(&rng, 11, 0);
    static double x[3000], y[3000];
    static const int sizes[] = {2, 3, 7, 64, 65, 999, 3000};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int n = sizes[si];
        for (uint32_t levels = 1; levels <= 4096; levels *= 8) {
            for (int i = 0; i < n; i++) {
                x[i] = (double)nas_rng_below(&rng, levels);
                /* Correlated, anti-correlated or independent by level. */
                uint32_t noise = nas_rng_below(&rng, levels);
                y[i] = levels % 3 == 0 ? x[i] + noise : levels % 3 == 1 ? -x[i] + noise : noise;
            }
            double tau;
            ck_assert_int_eq(nas_rank_kendall(x, y, n, &tau), NAS_OK);
            double want = kendall_pairs(x, y, n);
            ck_assert_msg((isnan(tau) && isnan(want)) || tau == want,
                          "n %d, %u levels: tau %.17g, pair by pair %.17g", n, levels, tau, want);
        }
    }
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("rankcorr");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_rankcorr_midranks);
    tcase_add_test(tc, test_rankcorr_by_hand_ties);
    tcase_add_test(tc, test_rankcorr_by_hand_both_tied);
    tcase_add_test(tc, test_rankcorr_degenerate);
    tcase_add_test(tc, test_rankcorr_compare_pairs);
    tcase_add_test(tc, test_rankcorr_matches_scipy);
    tcase_add_test(tc, test_rankcorr_kendall_equals_pairwise);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
