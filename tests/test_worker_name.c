// nas-test: label=e2e timeout=180
/*
 * test_worker_name.c - a worker name started twice on one host, with real
 * nas-master and nas-worker processes.  Two live processes under one name
 * would each drop the other's lease at every Register; the master keeps
 * the name for the newer process and refuses the older one, which exits 1
 * saying to give each worker its own --name.  A worker restarted under its
 * name after kill -9 is not refused: its old process never registers
 * again.  Every result is recorded once throughout.
 */
#include "tests/e2e_util.h"

#include <limits.h>

#define BUDGET 24

START_TEST(test_worker_name_second_process_refuses_the_first) {
    e2e_env e;
    e2e_env_init(&e, 0);
    e2e_write_campaign(e.cfg, "twice", BUDGET, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    const char *mx[] = {"--synthetic", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, mx);
    char l1[PATH_MAX], l2[PATH_MAX], l3[PATH_MAX];
    e2e_log_path(&e, "first", l1, sizeof l1);
    e2e_log_path(&e, "second", l2, sizeof l2);
    e2e_log_path(&e, "restarted", l3, sizeof l3);
    const char *info[] = {"--log-level", "info", NULL};
    pid_t w1 = e2e_start_worker(l1, NULL, e.ctl, "same", "200", info);
    /* The first process is working before the second one starts. */
    ck_assert(e2e_wait_counts(e.db, 1, 1, 30000));
    pid_t w2 = e2e_start_worker(l2, NULL, e.ctl, "same", "200", info);

    /* The older process is refused and leaves on its own, exit status 1,
     * its last words naming the fix; the newer keeps the name. */
    ck_assert_int_eq(e2e_wait_exit(w1, 15000), 1);
    ck_assert_int_ge(e2e_count_in_file(l1, "give each its own --name"), 1);
    ck_assert_int_ge(e2e_count_in_file(e.mlog, "a newer process registered under that name"), 1);
    ck_assert_int_eq(e2e_count_in_file(l2, "give each its own --name"), 0);

    /* A restart under the same name is a restart, not a second process. */
    nas_store_counts before;
    e2e_counts(e.db, &before, NULL);
    ck_assert(e2e_wait_counts(e.db, before.done + 2, 0, 30000));
    int refusals = e2e_count_in_file(e.mlog, "a newer process registered under that name");
    e2e_kill(w2, SIGKILL);
    pid_t w3 = e2e_start_worker(l3, NULL, e.ctl, "same", "200", info);

    ck_assert_int_eq(e2e_wait_exit(m, 90000), 0);
    ck_assert_int_eq(e2e_wait_exit(w3, 15000), 0);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "a newer process registered under that name"),
                     refusals);
    ck_assert_int_eq(e2e_count_in_file(l3, "give each its own --name"), 0);
    e2e_check_exactly_once(e.db, BUDGET);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("worker_name");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 150);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_worker_name_second_process_refuses_the_first);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
