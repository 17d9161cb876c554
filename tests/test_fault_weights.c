// nas-test: label=e2e timeout=400
/*
 * test_fault_weights.c - the one-worker exact-resume promise with weight
 * inheritance on (USER-GUIDE.md s3), when the master dies while a worker
 * pushes the weights of the task it just trained.
 *
 * Real nas-master and nas-worker, real training on a small IDX data set:
 * the master is stopped (SIGSTOP) while the worker trains task K, so that
 * the push that follows the training gets no answer, then killed with -9
 * and started again.  The worker's result must wait until the weights are
 * on the new master's disk: the campaign then ends with exactly the
 * history of an uninterrupted run, and no child trains from fresh
 * weights for want of its parent.
 */
#include "common/alloc.h"
#include "tests/e2e_util.h"

#include <limits.h>

#define BUDGET 6

/* Bytes received and not yet read on the established TCP connections
 * whose local port is `port` (/proc/net/tcp and tcp6). */
static long unread_bytes(int port) {
    static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    long total = 0;
    for (int f = 0; f < 2; f++) {
        FILE *fp = fopen(files[f], "r");
        char line[512];
        while (fp && fgets(line, sizeof line, fp)) {
            char local[128];
            unsigned st = 0;
            unsigned long tx = 0, rx = 0;
            if (sscanf(line, " %*d: %127s %*s %x %lx:%lx", local, &st, &tx, &rx) != 4) continue;
            const char *colon = strrchr(local, ':');
            if (colon && strtol(colon + 1, NULL, 16) == port && st == 1) total += (long)rx;
        }
        if (fp) fclose(fp);
    }
    return total;
}

static pid_t start_master(const char *cfg, const char *db, const char *log) {
    const char *extra[] = {"--db", db, NULL};
    return e2e_start_master(log, NULL, cfg, extra);
}

static pid_t start_worker(const char *ctl, const char *log) {
    char *argv[] = {(char *)nas_bin("nas-worker"),
                    "--master",
                    (char *)ctl,
                    "--name",
                    "solo",
                    "--heartbeat-ms",
                    "100",
                    "--liveness",
                    "5",
                    "--reconnect-min-ms",
                    "50",
                    "--reconnect-max-ms",
                    "200",
                    NULL};
    return e2e_spawn(log, NULL, argv);
}

START_TEST(test_fault_weights_kill_during_push_resumes_exactly) {
    e2e_reap_setup();
    e2e_env e;
    e2e_env_init(&e, 90);
    e2e_write_bar_idx(e.dir, "train", 200);
    e2e_write_bar_idx(e.dir, "t10k", 20);
    char ref[PATH_MAX], rlog[PATH_MAX], wlog[PATH_MAX], m2log[PATH_MAX], wrlog[PATH_MAX];
    nas_path_join(ref, sizeof ref, e.dir, "reference.db");
    nas_path_join(rlog, sizeof rlog, e.dir, "reference.log");
    nas_path_join(wrlog, sizeof wrlog, e.dir, "wref.log");
    nas_path_join(m2log, sizeof m2log, e.dir, "master2.log");
    nas_path_join(wlog, sizeof wlog, e.dir, "worker.log");
    e2e_write(e.cfg,
              "name: pushkill\nseed: 3\n"
              "data:\n  set: mnist\n  dir: %s\n"
              "space:\n  kind: cell\n  blocks: 2\n  ops: [id, max3x3, sep3x3, conv1x1]\n"
              "strategy:\n  name: evolution\n  population: 3\n  sample: 2\n"
              "budget:\n  evaluations: %d\n"
              "fidelity:\n  resolution: 14\n  train_subset: 0\n  val_size: 40\n  epochs: 1\n"
              "  batch: 16\n  channels: 4\n  cells: 1\n"
              "weights:\n  inherit: true\n"
              "listen:\n  control: %s\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n"
              "workers:\n  heartbeat_ms: 100\n  liveness: 5\n  lease_grace: 1s\n"
              "store: %s\n",
              e.dir, BUDGET, e.ctl, e.port + 1, e.port + 2, e.db);

    /* The uninterrupted run. */
    pid_t w = start_worker(e.ctl, wrlog);
    pid_t m = start_master(e.cfg, ref, rlog);
    ck_assert_int_eq(e2e_wait(m, 120000), 0);
    e2e_kill(w, SIGTERM);
    e2e_history want;
    e2e_read_history(ref, &want);
    ck_assert_int_eq(want.n, BUDGET);
    ck_assert_int_ge(e2e_count_in_file(wrlog, "inherit: parent"), 1);

    /* Interrupted: a child of the first population is leased (its parent's
     * weights are on disk), the master stops answering while the worker
     * trains it, and dies while the worker pushes its weights. */
    w = start_worker(e.ctl, wlog);
    m = start_master(e.cfg, e.db, e.mlog);
    ck_assert(e2e_wait_counts(e.db, 3, 1, 120000));
    /* Task K is a child: once it has pulled its parent, stop the master,
     * and wait until the push of K's weights sits unread in the master's
     * socket (the weights port's receive queue): the worker has trained K
     * and waits for the acknowledgement that will never come. */
    ck_assert(e2e_wait_in_file(wlog, "inherit: parent", 60000));
    kill(m, SIGSTOP);
    int64_t end = nas_now_ms() + 120000;
    while (unread_bytes(e.port + 1) == 0 && nas_now_ms() < end)
        nas_sleep_ms(50);
    ck_assert_msg(unread_bytes(e.port + 1) > 0, "no push arrived");
    e2e_kill(m, SIGKILL);
    m = start_master(e.cfg, e.db, m2log);
    ck_assert_int_eq(e2e_wait(m, 180000), 0);
    e2e_kill(w, SIGTERM);

    e2e_check_exactly_once(e.db, BUDGET);
    e2e_history got;
    e2e_read_history(e.db, &got);
    ck_assert_int_eq(got.n, BUDGET);
    int at = e2e_history_diff(&got, &want);
    ck_assert_msg(at == -1, "result %d differs from the uninterrupted run's", at);
    /* The kill did land during a push, and no child lost its parent. */
    ck_assert_int_ge(e2e_count_in_file(wlog, "not pushed yet"), 1);
    ck_assert_int_eq(e2e_count_in_file(wlog, "not pushed:"), 0);
    ck_assert_int_eq(e2e_count_in_file(wlog, "training from fresh weights"), 0);
    e2e_reap_all();
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("fault_weights");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 400);
    tcase_add_test(tc, test_fault_weights_kill_during_push_resumes_exactly);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
