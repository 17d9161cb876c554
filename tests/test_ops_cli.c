// nas-test: label=e2e timeout=300
/*
 * test_ops_cli.c - what the four binaries say and how they exit (issue 13):
 *  - a worker learns that the campaign is done and exits 0, or waits with
 *    --stay; one pointed at the status port, at a port where nothing
 *    listens, without tcp://, or refused by CurveZMQ says what is wrong
 *    once, not every second (point 10);
 *  - one option parser: --version everywhere, --db=FILE, exit codes 0 / 1
 *    / 2, conflicting or misplaced flags refused; RFC 4180 CSV; stores
 *    that cannot be opened for different reasons get different messages;
 *    a new store does not log a schema migration (point 12).
 */
#include "common/alloc.h"
#include "tests/e2e_util.h"

#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>

static int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t cap, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return nas_run_cmd(cmd, out, cap);
}

// ---- point 10: workers leave, and say once what is wrong -----------------------------------

START_TEST(test_ops_worker_leaves_when_done_or_stays) {
    e2e_env e;
    e2e_env_init(&e, 1);
    char l1[PATH_MAX], l2[PATH_MAX];
    e2e_log_path(&e, "leaver", l1, sizeof l1);
    e2e_log_path(&e, "stayer", l2, sizeof l2);
    e2e_write_campaign(e.cfg, "done", 4, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    const char *syn[] = {"--synthetic", NULL};
    const char *stay[] = {"--stay", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, syn);
    pid_t a = e2e_start_worker(l1, NULL, e.ctl, "leaver", "20", NULL);
    pid_t b = e2e_start_worker(l2, NULL, e.ctl, "stayer", "20", stay);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    ck_assert_int_eq(e2e_wait_exit(a, 10000), 0);
    ck_assert_int_eq(e2e_count_in_file(l1, "campaign is done"), 1);
    /* --stay: still there a while later, and a stop is still clean. */
    ck_assert(e2e_wait_in_file(l2, "waiting for the next one", 5000));
    nas_sleep_ms(1000);
    ck_assert_int_eq(e2e_wait(b, 0), -1);
    kill(b, SIGTERM);
    ck_assert_int_eq(e2e_wait_exit(b, 10000), 0);
    nas_tmpdir_rm(e.dir);
}
END_TEST

START_TEST(test_ops_worker_says_once_what_is_wrong) {
    e2e_env e;
    e2e_env_init(&e, 2);
    char l1[PATH_MAX], l2[PATH_MAX], l3[PATH_MAX], l4[PATH_MAX], out[8192], nothing[64], wts[64];
    e2e_log_path(&e, "status", l1, sizeof l1);
    e2e_log_path(&e, "weights", l4, sizeof l4);
    e2e_log_path(&e, "nothing", l2, sizeof l2);
    e2e_log_path(&e, "curve", l3, sizeof l3);
    e2e_write_campaign(e.cfg, "wrong", 4, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    /* A worker at the status port, one at the weights port, one where
     * nothing listens: three seconds is thirty heartbeats and a dozen
     * reconnects. */
    const char *syn[] = {"--synthetic", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, syn);
    ck_assert(e2e_wait_in_file(e.mlog, "listening for workers", 20000));
    snprintf(nothing, sizeof nothing, "tcp://127.0.0.1:%d", e2e_port(3));
    pid_t a = e2e_start_worker(l1, NULL, e.sts, "at-status", "0", NULL);
    pid_t b = e2e_start_worker(l2, NULL, nothing, "at-nothing", "0", NULL);
    snprintf(wts, sizeof wts, "tcp://127.0.0.1:%d", e.port + 1);
    pid_t d = e2e_start_worker(l4, NULL, wts, "at-weights", "0", NULL);
    nas_sleep_ms(3000);
    e2e_kill(a, SIGTERM);
    e2e_kill(b, SIGTERM);
    e2e_kill(d, SIGTERM);
    kill(m, SIGINT);
    ck_assert_int_eq(e2e_wait_exit(m, 20000), 0);
    ck_assert_int_eq(e2e_count_in_file(l1, "read-only status endpoint"), 1);
    ck_assert_int_eq(e2e_count_in_file(l4, "refuses this worker"), 1);
    ck_assert_int_eq(e2e_count_in_file(l4, "weight store endpoint (listen.weights)"), 1);
    ck_assert_int_eq(e2e_count_in_file(l2, "nothing answers at"), 1);
    ck_assert_int_eq(e2e_count_in_file(l2, "master silent"), 0);
    /* A master with keys that authorizes nobody. */
    char key[PATH_MAX], wkey[PATH_MAX], auth[PATH_MAX], mpub[PATH_MAX + 8];
    nas_path_join(key, sizeof key, e.dir, "master");
    nas_path_join(wkey, sizeof wkey, e.dir, "worker");
    nas_path_join(auth, sizeof auth, e.dir, "authorized");
    snprintf(mpub, sizeof mpub, "%s.key", key);
    ck_assert_int_eq(mkdir(auth, 0755), 0);
    ck_assert_int_eq(run(out, sizeof out, "%s keygen %s", nas_bin("nasctl"), key), 0);
    ck_assert_int_eq(run(out, sizeof out, "%s keygen %s", nas_bin("nasctl"), wkey), 0);
    const char *mx[] = {"--synthetic", "--key", key, "--authorized", auth, NULL};
    m = e2e_start_master(e.mlog, NULL, e.cfg, mx);
    ck_assert(e2e_wait_in_file(e.mlog, "CurveZMQ on every socket", 20000));
    const char *cx[] = {"--key", wkey, "--master-key", mpub, NULL};
    pid_t c = e2e_start_worker(l3, NULL, e.ctl, "w-curve", "0", cx);
    nas_sleep_ms(3000);
    e2e_kill(c, SIGTERM);
    kill(m, SIGINT);
    ck_assert_int_eq(e2e_wait_exit(m, 20000), 0);
    /* Said when it happened, and once more as the worker stops. */
    ck_assert_int_ge(e2e_count_in_file(l3, "refused"), 1);
    ck_assert_int_le(e2e_count_in_file(l3, "refused"), 2);
    ck_assert_int_eq(e2e_count_in_file(l3, "would block"), 0);
    /* An address without a transport is a usage error, named. */
    ck_assert_int_eq(run(out, sizeof out, "%s --master 127.0.0.1:5555", nas_bin("nas-worker")), 2);
    ck_assert_ptr_nonnull(strstr(out, "lacks a transport: write tcp://127.0.0.1:5555"));
    nas_tmpdir_rm(e.dir);
}
END_TEST

// ---- point 12: one option parser, one exit-code convention ---------------------------------

START_TEST(test_ops_cli_conventions) {
    static const char *bins[] = {"nas-master", "nas-worker", "nasctl", "nas-train"};
    char out[8192];
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(run(out, sizeof out, "%s --version", nas_bin(bins[i])), 0);
        ck_assert_ptr_nonnull(strstr(out, "(nasd) "));
        ck_assert_int_eq(run(out, sizeof out, "%s --no-such-option", nas_bin(bins[i])), 2);
    }
    const char *ctl = nas_bin("nasctl");
    ck_assert_int_eq(run(out, sizeof out, "%s best", ctl), 2);
    ck_assert_ptr_nonnull(strstr(out, "--db FILE is required"));
    ck_assert_int_eq(run(out, sizeof out, "%s dot --json small", ctl), 2);
    ck_assert_ptr_nonnull(strstr(out, "--json does not apply to dot"));
    ck_assert_int_eq(run(out, sizeof out, "%s history --db x.db --csv --json", ctl), 2);
    ck_assert_ptr_nonnull(strstr(out, "--csv and --json exclude each other"));
    ck_assert_int_eq(run(out, sizeof out, "%s pareto --db x.db --csv", ctl), 2);
    ck_assert_int_eq(run(out, sizeof out, "%s history --db=/nonexistent/x.db", ctl), 1);
    ck_assert_int_eq(run(out, sizeof out, "%s history --db", ctl), 2);
    ck_assert_ptr_nonnull(strstr(out, "nasctl history: --db needs a value"));
    ck_assert_int_eq(
        run(out, sizeof out, "%s --wait-on-stop --cancel-on-stop c.yaml", nas_bin("nas-master")),
        2);
    ck_assert_ptr_nonnull(strstr(out, "exclude each other"));
    ck_assert_int_eq(run(out, sizeof out, "%s --epochs=0", nas_bin("nas-train")), 2);
    ck_assert_ptr_nonnull(strstr(out, "--epochs"));
}
END_TEST

/* Split one RFC 4180 record off *p into fields; returns the field count. */
static int csv_record(const char **p, char fields[][128], int max) {
    int n = 0;
    const char *s = *p;
    for (;;) {
        char *f = fields[n < max ? n : max - 1];
        size_t k = 0;
        if (*s == '"') {
            for (s++; *s && !(*s == '"' && s[1] != '"'); s++) {
                if (*s == '"') s++;
                if (k < 127) f[k++] = *s;
            }
            if (*s == '"') s++;
        } else {
            while (*s && *s != ',' && *s != '\r' && *s != '\n')
                if (k < 127) f[k++] = *s++;
        }
        f[k] = '\0';
        n++;
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == '\r') s++;
        if (*s == '\n') s++;
        break;
    }
    *p = s;
    return n;
}

START_TEST(test_ops_csv_quoting_and_store_messages) {
    e2e_env e;
    e2e_env_init(&e, 4);
    char wlog[PATH_MAX], out[65536];
    e2e_log_path(&e, "w", wlog, sizeof wlog);
    e2e_write_campaign(e.cfg, "csv", 4, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    const char *name = "lab \"A\", node 1";
    char dbopt[PATH_MAX + 8];
    snprintf(dbopt, sizeof dbopt, "--db=%s", e.db);
    const char *mx[] = {"--synthetic", dbopt, NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, mx);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, name, "0", NULL);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    /* A brand-new store was created, not migrated. */
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "schema migrated"), 0);
    ck_assert_int_eq(run(out, sizeof out, "%s history --db=%s --csv", nas_bin("nasctl"), e.db), 0);
    const char *p = out;
    char fields[16][128];
    ck_assert_int_eq(csv_record(&p, fields, 16), 11);
    ck_assert_str_eq(fields[8], "worker");
    ck_assert_str_eq(fields[10], "status");
    int rows = 0;
    while (*p) {
        ck_assert_int_eq(csv_record(&p, fields, 16), 11);
        ck_assert_str_eq(fields[8], name);
        ck_assert_str_eq(fields[10], "done");
        rows++;
    }
    ck_assert_int_eq(rows, 4);

    /* Three stores that cannot be opened, three different messages. */
    char missing_dir[PATH_MAX], missing_file[PATH_MAX], ro[PATH_MAX], copy[PATH_MAX + 8];
    nas_path_join(missing_dir, sizeof missing_dir, e.dir, "no-such-folder/c.db");
    nas_path_join(missing_file, sizeof missing_file, e.dir, "absent.db");
    nas_path_join(ro, sizeof ro, e.dir, "ro");
    ck_assert_int_eq(mkdir(ro, 0755), 0);
    snprintf(copy, sizeof copy, "%s/c.db", ro);
    ck_assert_int_eq(run(out, sizeof out, "cp %s %s && chmod 0644 %s", e.db, copy, copy), 0);
    ck_assert_int_eq(run(out, sizeof out, "%s history --db %s", nas_bin("nasctl"), missing_dir), 1);
    ck_assert_ptr_nonnull(strstr(out, "no-such-folder does not exist"));
    ck_assert_int_eq(run(out, sizeof out, "%s history --db %s", nas_bin("nasctl"), missing_file),
                     1);
    ck_assert_ptr_nonnull(strstr(out, "absent.db does not exist"));
    /* Not writable: as root, through an unprivileged user. */
    const char *as = "";
    if (geteuid() == 0) {
        if (run(out, sizeof out, "command -v setpriv") != 0) {
            fprintf(stderr, "test_ops_cli: setpriv missing: read-only cases skipped\n");
            nas_tmpdir_rm(e.dir);
            return;
        }
        as = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
        ck_assert_int_eq(chmod(e.dir, 0755), 0);
    } else {
        ck_assert_int_eq(chmod(ro, 0555), 0);
    }
    ck_assert_int_eq(run(out, sizeof out, "%s%s history --db %s", as, nas_bin("nasctl"), copy), 1);
    ck_assert_ptr_nonnull(strstr(out, "without its -wal"));
    char cfg2[PATH_MAX], newdb[PATH_MAX + 8];
    nas_path_join(cfg2, sizeof cfg2, ro, "m.yaml");
    snprintf(newdb, sizeof newdb, "%s/new.db", ro);
    if (geteuid() != 0) chmod(ro, 0755);
    e2e_write_campaign(cfg2, "csv", 4, e.port, "127.0.0.1", newdb, "");
    chmod(cfg2, 0644);
    if (geteuid() != 0) chmod(ro, 0555);
    ck_assert_int_eq(run(out, sizeof out, "%s%s %s --synthetic", as, nas_bin("nas-master"), cfg2),
                     1);
    ck_assert_ptr_nonnull(strstr(out, "is not writable"));
    chmod(ro, 0755);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("ops_cli");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_ops_worker_leaves_when_done_or_stays);
    tcase_add_test(tc, test_ops_worker_says_once_what_is_wrong);
    tcase_add_test(tc, test_ops_cli_conventions);
    tcase_add_test(tc, test_ops_csv_quoting_and_store_messages);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
