/*
 * test_log.c - level filtering, the one-line format, and the limit on lines.
 */
#include "common/log.h"
#include "common/err.h"
#include "tests/harness.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Capture what nas_log writes to stderr into buf. */
static void capture(char *buf, size_t cap, void (*fn)(void)) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    fn();
    dup2(saved, 2);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, cap - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fds[0]);
    close(saved);
}

static void emit(void) {
    nas_log_set_prog("unit");
    nas_log_set_level(NAS_LOG_WARN);
    nas_info("hidden %d", 1);
    nas_warn("shown %d", 2);
    nas_error("also %s", "shown");
}

START_TEST(test_log_filters_and_formats) {
    char buf[4096];
    capture(buf, sizeof buf, emit);
    ck_assert_ptr_null(strstr(buf, "hidden"));
    ck_assert_ptr_nonnull(strstr(buf, " W unit: shown 2\n"));
    ck_assert_ptr_nonnull(strstr(buf, " E unit: also shown\n"));
    /* ISO-8601 UTC timestamp with milliseconds opens each line. */
    ck_assert_int_eq(buf[4], '-');
    ck_assert_int_eq(buf[10], 'T');
    ck_assert_int_eq(buf[23], 'Z');
}
END_TEST

START_TEST(test_log_parse_level) {
    enum nas_log_level l;
    ck_assert_int_eq(nas_log_parse_level("DEBUG", &l), NAS_OK);
    ck_assert_int_eq(l, NAS_LOG_DEBUG);
    ck_assert_int_eq(nas_log_parse_level("warn", &l), NAS_OK);
    ck_assert_int_eq(l, NAS_LOG_WARN);
    ck_assert_int_eq(nas_log_parse_level("loud", &l), NAS_EINVAL);
    ck_assert_int_eq(nas_log_parse_level(NULL, &l), NAS_EINVAL);
}
END_TEST

static void limited(void) {
    nas_log_set_prog("unit");
    nas_log_set_level(NAS_LOG_INFO);
    nas_log_limit l = {0};
    int passed = 0;
    for (int i = 0; i < NAS_LOG_LIMIT_LINES + 5; i++)
        passed += nas_log_limit_pass(&l, 1000 + i, NAS_LOG_WARN, "junk");
    ck_assert_int_eq(passed, NAS_LOG_LIMIT_LINES);
    ck_assert_int_eq(l.held, 5);
    /* Still inside the window: held, and nothing said yet. */
    ck_assert_int_eq(
        nas_log_limit_pass(&l, 1000 + NAS_LOG_LIMIT_WINDOW_MS - 1, NAS_LOG_WARN, "junk"), 0);
    /* The next window reports what the last one held back, then passes. */
    ck_assert_int_eq(nas_log_limit_pass(&l, 1000 + NAS_LOG_LIMIT_WINDOW_MS, NAS_LOG_WARN, "junk"),
                     1);
    ck_assert_int_eq(l.held, 0);
    ck_assert_int_eq(l.lines, 1);
    /* A clock that went back starts a window too, and says nothing when
     * nothing was held. */
    ck_assert_int_eq(nas_log_limit_pass(&l, 5, NAS_LOG_WARN, "quiet"), 1);
}

START_TEST(test_log_limit_holds_back_and_reports) {
    char buf[4096];
    capture(buf, sizeof buf, limited);
    ck_assert_ptr_nonnull(strstr(buf, " W unit: junk: 6 more like these in 10 s not logged\n"));
    ck_assert_ptr_null(strstr(buf, "quiet"));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_log_filters_and_formats);
    tcase_add_test(tc, test_log_parse_level);
    tcase_add_test(tc, test_log_limit_holds_back_and_reports);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
