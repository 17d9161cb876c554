/*
 * test_err.c - every error code has a distinct name and message.
 */
#include "common/err.h"
#include "tests/harness.h"

#include <string.h>

static const int all_codes[] = {
#define XX(name, value, msg) NAS_##name,
    NAS_ERR_MAP(XX)
#undef XX
};

START_TEST(test_err_names_and_messages_distinct) {
    size_t n = NAS_ARRAY_LEN(all_codes);
    ck_assert_int_ge(n, 10);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_le(all_codes[i], 0);
        ck_assert_str_ne(nas_err_name(all_codes[i]), "NAS_UNKNOWN");
        ck_assert_str_ne(nas_strerror(all_codes[i]), "unknown error");
        for (size_t j = i + 1; j < n; j++) {
            ck_assert_int_ne(all_codes[i], all_codes[j]);
            ck_assert_str_ne(nas_err_name(all_codes[i]), nas_err_name(all_codes[j]));
            ck_assert_str_ne(nas_strerror(all_codes[i]), nas_strerror(all_codes[j]));
        }
    }
}
END_TEST

START_TEST(test_err_known_strings) {
    ck_assert_str_eq(nas_err_name(NAS_OK), "NAS_OK");
    ck_assert_str_eq(nas_err_name(NAS_EIO), "NAS_EIO");
    ck_assert_str_eq(nas_strerror(NAS_ENOMEM), "out of memory");
    ck_assert_str_eq(nas_strerror(NAS_EDIVERGED), "training diverged");
}
END_TEST

START_TEST(test_err_unknown_code) {
    ck_assert_str_eq(nas_strerror(-9999), "unknown error");
    ck_assert_str_eq(nas_err_name(12345), "NAS_UNKNOWN");
}
END_TEST

START_TEST(test_err_set_err_formats_and_returns_code) {
    char err[NAS_ERR_LEN];
    int rc = nas_set_err(err, NAS_EFORMAT, "%s: bad magic at offset %d", "x.idx", 0);
    ck_assert_int_eq(rc, NAS_EFORMAT);
    ck_assert_str_eq(err, "x.idx: bad magic at offset 0");
    ck_assert_int_eq(nas_set_err(NULL, NAS_EIO, "ignored"), NAS_EIO);
    /* Long messages are truncated, never overflow. */
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    nas_set_err(err, NAS_EINVAL, "%s", big);
    ck_assert_uint_eq(strlen(err), NAS_ERR_LEN - 1);
}
END_TEST

static void do_abort(void) { NAS_ASSERT(1 + 1 == 3); }

START_TEST(test_err_assert_aborts) { do_abort(); }
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_err_names_and_messages_distinct);
    tcase_add_test(tc, test_err_known_strings);
    tcase_add_test(tc, test_err_unknown_code);
    tcase_add_test(tc, test_err_set_err_formats_and_returns_code);
    tcase_add_test_raise_signal(tc, test_err_assert_aborts, 6 /* SIGABRT */);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
