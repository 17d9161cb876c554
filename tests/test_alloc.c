/*
 * test_alloc.c - alignment, zero fill, overflow checks, fault injection.
 */
#include "common/alloc.h"
#include "tests/harness.h"

#include <stdint.h>

START_TEST(test_alloc_aligned_64_and_zeroed) {
    for (size_t n = 0; n < 1000; n += 37) {
        unsigned char *p = nas_aligned_alloc(n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % NAS_ALIGN, 0);
        for (size_t i = 0; i < n; i++) ck_assert_uint_eq(p[i], 0);
        nas_aligned_free(p);
    }
}
END_TEST

START_TEST(test_alloc_align_up) {
    ck_assert_uint_eq(nas_align_up(0), 0);
    ck_assert_uint_eq(nas_align_up(1), 64);
    ck_assert_uint_eq(nas_align_up(64), 64);
    ck_assert_uint_eq(nas_align_up(65), 128);
}
END_TEST

START_TEST(test_alloc_mul_overflow) {
    size_t out;
    ck_assert_int_eq(nas_mul_size(1000, 1000, &out), 0);
    ck_assert_uint_eq(out, 1000000);
    ck_assert_int_eq(nas_mul_size(SIZE_MAX / 2, 3, &out), -1);
    ck_assert_ptr_null(nas_aligned_alloc(SIZE_MAX - 10));
}
END_TEST

START_TEST(test_alloc_fault_injection) {
    nas_alloc_fail_after(3);
    void *a = nas_malloc(8), *b = nas_malloc(8);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_null(nas_malloc(8));
    ck_assert_ptr_null(nas_aligned_alloc(8));
    ck_assert_ptr_null(nas_strdup("x"));
    nas_alloc_fail_reset();
    void *c = nas_calloc(2, 4);
    ck_assert_ptr_nonnull(c);
    nas_free(a);
    nas_free(b);
    nas_free(c);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_alloc_aligned_64_and_zeroed);
    tcase_add_test(tc, test_alloc_align_up);
    tcase_add_test(tc, test_alloc_mul_overflow);
    tcase_add_test(tc, test_alloc_fault_injection);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
