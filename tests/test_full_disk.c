/*
 * test_full_disk.c - a campaign whose disk really fills: the store lives on
 * a tmpfs of 256 KiB, so SQLite's write-ahead log runs out of room after a
 * few results.  nas-master must stop with exit status 1 and an error that
 * says the disk is full and that the database is consistent; its workers
 * wait.  Once the administrator makes room (the tmpfs grows), the same
 * master resumes the campaign with the same workers, and it ends with every
 * task done exactly once: the result that could not be committed is sent
 * again by its worker, and nothing is lost or counted twice.
 *
 * Mounting needs root and a kernel that lets this process mount; elsewhere
 * the suite skips, saying why.
 */
// nas-test: label=e2e timeout=300
#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "tests/e2e_util.h"

enum { BUDGET = 120 };

START_TEST(test_full_disk_stops_cleanly_and_resumes_exactly_once) {
    e2e_env e;
    e2e_env_init(&e, 0);
    char mnt[PATH_MAX];
    nas_path_join(mnt, sizeof mnt, e.dir, "disk");
    ck_assert_int_eq(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k") != 0) {
        printf("SKIP: cannot mount a small tmpfs here (%s): needs root and a kernel that "
               "allows it\n",
               strerror(errno));
        nas_tmpdir_rm(e.dir);
        return;
    }
    char db[PATH_MAX];
    nas_path_join(db, sizeof db, mnt, "campaign.db");
    e2e_write_campaign(e.cfg, "full", BUDGET, e.port, "127.0.0.1", db, NULL);
    const char *synthetic[] = {"--synthetic", NULL};

    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, synthetic);
    char wlog[2][PATH_MAX];
    pid_t w[2];
    for (int i = 0; i < 2; i++) {
        char name[8];
        snprintf(name, sizeof name, "w%d", i);
        e2e_log_path(&e, name, wlog[i], sizeof wlog[i]);
        w[i] = e2e_start_worker(wlog[i], NULL, e.ctl, name, "1", NULL);
    }
    ck_assert_int_eq(e2e_wait_exit(m, 120000), 1);
    ck_assert_msg(e2e_count_in_file(e.mlog, "the disk or the database is full") > 0 &&
                      e2e_count_in_file(e.mlog, "the database stays consistent") > 0,
                  "see %s", e.mlog);
    nas_store_counts c;
    e2e_counts(db, &c, NULL);
    ck_assert_msg(c.done > 0 && c.done < BUDGET, "%lld done before the disk filled",
                  (long long)c.done);

    // The administrator makes room; the workers are still waiting.
    ck_assert_int_eq(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=64m"), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(e2e_wait(w[i], 0), -1);
    m = e2e_start_master(e.mlog, NULL, e.cfg, synthetic);
    ck_assert_int_eq(e2e_wait_exit(m, 180000), 0);
    e2e_check_exactly_once(db, BUDGET);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(e2e_wait_exit(w[i], 30000), 0);

    ck_assert_int_eq(umount(mnt), 0);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("full_disk");
    TCase *tc = tcase_create("core");
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_set_timeout(tc, 280);
    tcase_add_test(tc, test_full_disk_stops_cleanly_and_resumes_exactly_once);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
