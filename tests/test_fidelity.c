/*
 * test_fidelity.c - defaults are valid and every field is range-checked by name.
 */
#include "common/err.h"
#include "common/fidelity.h"
#include "tests/harness.h"

#include <math.h>
#include <string.h>

START_TEST(test_fidelity_default_is_valid) {
    nas_fidelity f = nas_fidelity_default();
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_fidelity_validate(&f, err), NAS_OK);
    ck_assert_int_eq(f.threads, 1);
    ck_assert_int_ge(f.epochs, 1);
}
END_TEST

START_TEST(test_fidelity_bad_fields_named) {
    char err[NAS_ERR_LEN];
    nas_fidelity f = nas_fidelity_default();
    f.epochs = -3;
    ck_assert_int_eq(nas_fidelity_validate(&f, err), NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "epochs"));

    f = nas_fidelity_default();
    f.batch = 0;
    ck_assert_int_eq(nas_fidelity_validate(&f, err), NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "batch"));

    f = nas_fidelity_default();
    f.lr = NAN;
    ck_assert_int_eq(nas_fidelity_validate(&f, err), NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "lr"));

    f = nas_fidelity_default();
    f.resolution = 2;
    ck_assert_int_eq(nas_fidelity_validate(&f, err), NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "resolution"));

    f = nas_fidelity_default();
    f.threads = 0;
    ck_assert_int_eq(nas_fidelity_validate(&f, err), NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "threads"));

    f = nas_fidelity_default();
    f.momentum = 1.5f;
    ck_assert_int_eq(nas_fidelity_validate(&f, err), NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "momentum"));

    /* MBConv's width multiplier: 0 (off) or up to 64, never negative or NaN. */
    f = nas_fidelity_default();
    ck_assert_float_eq(f.width_mult, 0.0f);
    f.width_mult = 64.0f;
    ck_assert_int_eq(nas_fidelity_validate(&f, err), NAS_OK);
    static const float bad[] = {-0.5f, 64.5f, NAN};
    for (int i = 0; i < 3; i++) {
        f.width_mult = bad[i];
        ck_assert_int_eq(nas_fidelity_validate(&f, err), NAS_ERANGE);
        ck_assert_ptr_nonnull(strstr(err, "width_mult"));
    }
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("fidelity");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fidelity_default_is_valid);
    tcase_add_test(tc, test_fidelity_bad_fields_named);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
