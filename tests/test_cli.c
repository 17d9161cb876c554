/*
 * test_cli.c - every binary answers --help with exit 0 and rejects an
 * unknown option with a message naming it and a non-zero exit.
 */
#include "tests/harness.h"

#include <stdio.h>
#include <string.h>

static const char *binaries[] = {"nas-master", "nas-worker", "nasctl", "nas-train"};

START_TEST(test_cli_help_exits_zero) {
    char cmd[4200], out[8192];
    snprintf(cmd, sizeof cmd, "%s --help", nas_bin(binaries[_i]));
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage:"));
    ck_assert_ptr_nonnull(strstr(out, binaries[_i]));
}
END_TEST

START_TEST(test_cli_bad_option_fails) {
    char cmd[4200], out[8192];
    snprintf(cmd, sizeof cmd, "%s --no-such-option-xyz", nas_bin(binaries[_i]));
    int rc = nas_run_cmd(cmd, out, sizeof out);
    ck_assert_int_ne(rc, 0);
    ck_assert_int_gt((int)strlen(out), 0);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_cli_help_exits_zero, 0, 4);
    tcase_add_loop_test(tc, test_cli_bad_option_fails, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
