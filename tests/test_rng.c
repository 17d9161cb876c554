/*
 * test_rng.c - the generator is reproducible, portable and well spread.
 */
#include "common/rng.h"
#include "tests/harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_rng_same_seed_same_stream) {
    nas_rng a, b;
    nas_rng_init(&a, 42, 7);
    nas_rng_init(&b, 42, 7);
    for (int i = 0; i < 10000; i++) ck_assert_uint_eq(nas_rng_u32(&a), nas_rng_u32(&b));
}
END_TEST

START_TEST(test_rng_known_values) {
    /* Pinned outputs: a change here changes every seeded run in every
     * stored campaign, so it must be deliberate. The PCG32 reference demo
     * (seed 42, stream 54) starts 0xa15c02b7 0x7b47f409 0xba1d3330. */
    nas_rng r;
    nas_rng_init(&r, 42, 54);
    ck_assert_uint_eq(nas_rng_u32(&r), 0xa15c02b7u);
    ck_assert_uint_eq(nas_rng_u32(&r), 0x7b47f409u);
    ck_assert_uint_eq(nas_rng_u32(&r), 0xba1d3330u);
}
END_TEST

START_TEST(test_rng_streams_differ) {
    nas_rng a, b;
    nas_rng_init(&a, 1, 1);
    nas_rng_init(&b, 1, 2);
    int same = 0;
    for (int i = 0; i < 1000; i++) same += nas_rng_u32(&a) == nas_rng_u32(&b);
    ck_assert_int_lt(same, 3);
}
END_TEST

START_TEST(test_rng_state_restores) {
    nas_rng a, saved;
    nas_rng_init(&a, 99, 0);
    for (int i = 0; i < 37; i++) nas_rng_u32(&a);
    memcpy(&saved, &a, sizeof a);
    uint32_t next[5];
    for (int i = 0; i < 5; i++) next[i] = nas_rng_u32(&a);
    for (int i = 0; i < 5; i++) ck_assert_uint_eq(nas_rng_u32(&saved), next[i]);
}
END_TEST

START_TEST(test_rng_below_is_uniform) {
    nas_rng r;
    nas_rng_init(&r, 3, 0);
    int counts[7] = {0};
    const int n = 70000;
    for (int i = 0; i < n; i++) {
        uint32_t x = nas_rng_below(&r, 7);
        ck_assert_uint_lt(x, 7);
        counts[x]++;
    }
    for (int i = 0; i < 7; i++) ck_assert_int_lt(abs(counts[i] - n / 7), 400); /* ~4 sigma */
}
END_TEST

START_TEST(test_rng_uniform_and_normal_moments) {
    nas_rng r;
    nas_rng_init(&r, 5, 0);
    double s = 0, s2 = 0, us = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = nas_rng_uniform(&r);
        ck_assert(u >= 0.0f && u < 1.0f);
        us += u;
        double z = nas_rng_normal(&r);
        s += z;
        s2 += z * z;
    }
    ck_assert(fabs(us / n - 0.5) < 0.005);
    ck_assert(fabs(s / n) < 0.01);
    ck_assert(fabs(s2 / n - 1.0) < 0.02);
}
END_TEST

START_TEST(test_rng_shuffle_is_permutation) {
    nas_rng r;
    nas_rng_init(&r, 11, 0);
    int a[100], seen[100] = {0};
    for (int i = 0; i < 100; i++) a[i] = i;
    nas_rng_shuffle_int(&r, a, 100);
    int moved = 0;
    for (int i = 0; i < 100; i++) {
        seen[a[i]]++;
        moved += a[i] != i;
    }
    for (int i = 0; i < 100; i++) ck_assert_int_eq(seen[i], 1);
    ck_assert_int_gt(moved, 80);
}
END_TEST

START_TEST(test_rng_mix64_spreads) {
    ck_assert_uint_ne(nas_mix64(0), nas_mix64(1));
    ck_assert_uint_eq(nas_mix64(12345), nas_mix64(12345));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_rng_same_seed_same_stream);
    tcase_add_test(tc, test_rng_known_values);
    tcase_add_test(tc, test_rng_streams_differ);
    tcase_add_test(tc, test_rng_state_restores);
    tcase_add_test(tc, test_rng_below_is_uniform);
    tcase_add_test(tc, test_rng_uniform_and_normal_moments);
    tcase_add_test(tc, test_rng_shuffle_is_permutation);
    tcase_add_test(tc, test_rng_mix64_spreads);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
