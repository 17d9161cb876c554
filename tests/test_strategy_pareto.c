/*
 * test_strategy_pareto.c - the MnasNet reward and the Pareto front of
 * (accuracy up, params down, MACs down) on hand-checked examples.
 */
#include "tests/harness.h"

#include "common/err.h"
#include "master/pareto.h"

#include <math.h>
#include <string.h>

static nas_observation point(int ok, double acc, int64_t params, int64_t macs) {
    nas_observation o;
    memset(&o, 0, sizeof o);
    o.ok = ok, o.accuracy = acc, o.params = params, o.macs = macs;
    return o;
}

START_TEST(test_reward) {
    /* At the target the reward is the accuracy; twice the target costs
     * 1 - 2^-0.07 = 4.7%; a zero target switches the term off. */
    ck_assert_double_eq_tol(nas_pareto_reward(0.9, 1000, 5, 1000, 0, -0.07), 0.9, 1e-12);
    ck_assert_double_eq_tol(nas_pareto_reward(0.9, 2000, 5, 1000, 0, -0.07), 0.9 * pow(2.0, -0.07),
                            1e-12);
    ck_assert_double_eq_tol(nas_pareto_reward(0.9, 2000, 4000, 1000, 1000, -0.07),
                            0.9 * pow(2.0, -0.07) * pow(4.0, -0.07), 1e-12);
    /* Smaller than the target earns a bonus with a negative w. */
    ck_assert(nas_pareto_reward(0.9, 500, 5, 1000, 0, -0.07) > 0.9);
}
END_TEST

START_TEST(test_front) {
    nas_observation o[7] = {
        point(1, 0.90, 1000, 100), /* 0: most accurate */
        point(1, 0.85, 500, 100),  /* 1: smaller */
        point(1, 0.80, 600, 100),  /* 2: dominated by 1 */
        point(1, 0.70, 100, 900),  /* 3: smallest params, but many MACs */
        point(0, 0.99, 1, 1),      /* 4: failed: never on the front */
        point(1, 0.85, 500, 100),  /* 5: a tie with 1: neither dominates */
        point(1, 0.60, 200, 50),   /* 6: dominated in (acc, params) by 3? no: 3 has 100 params */
    };
    int front[7];
    char err[NAS_ERR_LEN];
    /* Accuracy and params: 6 (0.60, 200) is dominated by 3 (0.70, 100). */
    int n = nas_pareto_front(o, 7, NAS_PARETO_PARAMS, front, err);
    ck_assert_int_eq(n, 4);
    int want[4] = {0, 1, 5, 3};
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(front[i], want[i]);
    /* With MACs too, 6 (fewest MACs) joins the front. */
    n = nas_pareto_front(o, 7, NAS_PARETO_PARAMS | NAS_PARETO_MACS, front, err);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(front[4], 6);
    /* Accuracy alone: the best successful one (the failed 0.99 does not count). */
    n = nas_pareto_front(o, 7, 0, front, err);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(front[0], 0);
    ck_assert(nas_pareto_dominates(&o[1], &o[2], NAS_PARETO_PARAMS));
    ck_assert(!nas_pareto_dominates(&o[1], &o[5], NAS_PARETO_PARAMS));
    ck_assert(!nas_pareto_dominates(&o[4], &o[0], 0));
}
END_TEST

START_TEST(test_front_rejects) {
    nas_observation o[2] = {point(1, NAN, 1, 1), point(1, 0.5, 1, 1)};
    int front[2];
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_pareto_front(o, 2, NAS_PARETO_PARAMS, front, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "observation 0"));
    ck_assert_int_eq(nas_pareto_front(o + 1, 1, 8, front, err), NAS_EINVAL);
    ck_assert_int_eq(nas_pareto_front(NULL, 0, 0, NULL, err), 0);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("strategy_pareto");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_reward);
    tcase_add_test(tc, test_front);
    tcase_add_test(tc, test_front_rejects);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
