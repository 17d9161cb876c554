// nas-test: label=e2e timeout=300
/*
 * test_ops_master.c - operating a campaign with real processes (issue 13):
 *  - one live master per store: a second nas-master on the same store
 *    exits at once naming the holder, also when given the store through a
 *    symbolic link, nasctl still reads the store, and a holder killed with
 *    SIGKILL does not block the next start (point 3);
 *  - a worker whose environment fails (data.dir /nonexistent) gives its
 *    task back uncounted and exits 1, the campaign waits and says so in
 *    status; fixed and resumed, it finishes exactly once (point 7);
 *  - --retry-failed re-queues tasks that failed for good (point 7);
 *  - a campaign is extended: more evaluations and another thread count on
 *    resume; fewer evaluations are refused (point 8);
 *  - the wall-time budget counts only the time a master ran (point 8);
 *  - final.fidelity inherits what `fidelity` sets (point 9).
 */
#include "common/alloc.h"
#include "tests/e2e_util.h"

#include <limits.h>

static pid_t master(const e2e_env *e, const char *cfg, const char *log, const char *more) {
    const char *extra[] = {"--synthetic", more, NULL};
    return e2e_start_master(log, NULL, cfg, extra);
}

static nas_store_counts counts(const char *db) {
    nas_store_counts s;
    e2e_counts(db, &s, NULL);
    return s;
}

// ---- point 3: one master per store --------------------------------------------------------

START_TEST(test_ops_second_master_refused_dead_holder_not) {
    e2e_env e;
    e2e_env_init(&e, 1);
    char cfg2[PATH_MAX], log2[PATH_MAX], log3[PATH_MAX], out[8192], cmd[PATH_MAX * 2];
    e2e_write_campaign(e.cfg, "lock", 8, e.port, "127.0.0.1", e.db, "");
    /* Same store, other ports: only the store is shared. */
    nas_path_join(cfg2, sizeof cfg2, e.dir, "other.yaml");
    e2e_write_campaign(cfg2, "lock", 8, e2e_port(2), "127.0.0.1", e.db, "");
    nas_path_join(log2, sizeof log2, e.dir, "master2.log");
    nas_path_join(log3, sizeof log3, e.dir, "master3.log");
    pid_t a = master(&e, e.cfg, e.mlog, NULL);
    ck_assert(e2e_wait_in_file(e.mlog, "listening for workers", 20000));
    int64_t t0 = nas_now_ms();
    pid_t b = master(&e, cfg2, log2, NULL);
    ck_assert_int_eq(e2e_wait_exit(b, 10000), 1);
    ck_assert_int_lt(nas_now_ms() - t0, 5000);
    char holder[64];
    snprintf(holder, sizeof holder, "pid %d on ", (int)a);
    ck_assert_int_eq(e2e_count_in_file(log2, "is in use by another nas-master"), 1);
    ck_assert_int_eq(e2e_count_in_file(log2, holder), 1);
    ck_assert_int_eq(e2e_count_in_file(log2, " since "), 1);
    /* The same store under another name, a symbolic link to its file: the
     * same lock (the lock lies beside the file, not beside the link). */
    char link[PATH_MAX], cfg3[PATH_MAX], log4[PATH_MAX];
    nas_path_join(link, sizeof link, e.dir, "link.db");
    ck_assert_int_eq(symlink(e.db, link), 0);
    nas_path_join(cfg3, sizeof cfg3, e.dir, "link.yaml");
    e2e_write_campaign(cfg3, "lock", 8, e2e_port(8), "127.0.0.1", link, "");
    nas_path_join(log4, sizeof log4, e.dir, "master4.log");
    pid_t b2 = master(&e, cfg3, log4, NULL);
    ck_assert_int_eq(e2e_wait_exit(b2, 10000), 1);
    ck_assert_int_eq(e2e_count_in_file(log4, "is in use by another nas-master"), 1);
    ck_assert_int_eq(e2e_count_in_file(log4, holder), 1);
    /* Readers are not masters: nasctl reads while the master holds it. */
    snprintf(cmd, sizeof cmd, "%s history --db %s", nas_bin("nasctl"), e.db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    /* A holder that dies without a word releases the store. */
    e2e_kill(a, SIGKILL);
    pid_t c = master(&e, cfg2, log3, NULL);
    ck_assert(e2e_wait_in_file(log3, "listening for workers", 20000));
    ck_assert_int_eq(e2e_count_in_file(log3, "in use"), 0);
    kill(c, SIGINT);
    ck_assert_int_eq(e2e_wait_exit(c, 20000), 0);
    nas_tmpdir_rm(e.dir);
}
END_TEST

// ---- point 7: the worker's environment is not the architecture's fault ---------------------

/* A real training campaign on tiny bar images; data.dir as given. */
static void write_train_campaign(const e2e_env *e, const char *data_dir, int budget) {
    e2e_write(e->cfg,
              "name: envfail\nseed: 3\n"
              "data:\n  set: mnist\n  dir: %s\n"
              "space:\n  kind: cell\n  blocks: 1\n  ops: [id, max3x3, conv1x1]\n"
              "strategy:\n  name: random\n"
              "budget:\n  evaluations: %d\n"
              "fidelity:\n  resolution: 14\n  train_subset: 0\n  val_size: 40\n  epochs: 1\n"
              "  batch: 16\n  channels: 4\n  cells: 1\n"
              "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n"
              "workers:\n  heartbeat_ms: 100\n  liveness: 5\n"
              "store: %s\n",
              data_dir, budget, e->port, e->port + 1, e->port + 2, e->db);
}

START_TEST(test_ops_environment_failure_keeps_attempts_then_resumes) {
    e2e_env e;
    e2e_env_init(&e, 3);
    e2e_write_bar_idx(e.dir, "train", 200);
    e2e_write_bar_idx(e.dir, "t10k", 20);
    write_train_campaign(&e, "/nonexistent/data", 2);
    const char *train[] = {"--log-level", "info", NULL};
    char wlog[PATH_MAX], wlog2[PATH_MAX], out[16384], cmd[PATH_MAX * 2];
    e2e_log_path(&e, "w1", wlog, sizeof wlog);
    e2e_log_path(&e, "w2", wlog2, sizeof wlog2);
    const char *no_syn[] = {NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, no_syn);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w1", "0", train);
    /* The worker says so loudly and leaves with status 1. */
    ck_assert_int_eq(e2e_wait_exit(w, 30000), 1);
    ck_assert_int_eq(e2e_count_in_file(wlog, "cannot evaluate tasks"), 2);
    ck_assert_int_ge(e2e_count_in_file(wlog, "/nonexistent/data"), 1);
    /* The campaign did not end on it: nothing failed, the master waits and
     * its status names the problem. */
    ck_assert(e2e_wait_in_file(e.mlog, "waiting for a worker that can evaluate", 10000));
    nas_sleep_ms(300);
    ck_assert_int_eq(e2e_wait(m, 0), -1);
    nas_store_counts s = counts(e.db);
    ck_assert_int_eq(s.failed, 0);
    ck_assert_int_eq(s.done, 0);
    ck_assert_int_ge(s.queued, 1);
    snprintf(cmd, sizeof cmd, "%s status --master %s", nas_bin("nasctl"), e.sts);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "problem"));
    ck_assert_ptr_nonnull(strstr(out, "waiting for a worker that can evaluate"));
    /* The task kept its attempts: nothing was counted against it. */
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_task_info *ti = NULL;
    int n = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, &ti, err);
    for (int i = 0; i < n; i++) {
        ck_assert_int_le(ti[i].attempt, 1);
        ck_assert_int_eq(ti[i].failure_kind, -1);
    }
    nas_free(ti);
    nas_store_close(&st);
    kill(m, SIGINT);
    ck_assert_int_eq(e2e_wait_exit(m, 20000), 0);
    /* Fixed and resumed: the campaign runs to its end, exactly once, and
     * the worker learns that it is done and leaves with 0. */
    write_train_campaign(&e, e.dir, 2);
    m = e2e_start_master(e.mlog, NULL, e.cfg, no_syn);
    w = e2e_start_worker(wlog2, NULL, e.ctl, "w2", "0", train);
    ck_assert_int_eq(e2e_wait_exit(m, 120000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    ck_assert_int_eq(e2e_count_in_file(wlog2, "campaign is done"), 1);
    e2e_check_exactly_once(e.db, 2);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* A benchmark table with a header and one row that no proposal names:
 * every lookup fails, which is the architecture's failure (not found). */
START_TEST(test_ops_retry_failed_requeues_on_resume) {
    e2e_env e;
    e2e_env_init(&e, 4);
    char small[PATH_MAX], wlog[PATH_MAX];
    nas_path_join(small, sizeof small, e.dir, "small.csv");
    e2e_write(small, "arch,val_acc\nnot-an-architecture,0.5\n");
    e2e_write_nb201_table(e.table);
    e2e_write_campaign(e.cfg, "retry", 4, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n  max_attempts: 1\n"
                       "evaluation:\n  mode: table\n  table: small.csv\n");
    e2e_log_path(&e, "w", wlog, sizeof wlog);
    const char *ws[] = {"--table", small, NULL};
    const char *none[] = {NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, none);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w", "0", ws);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    e2e_wait_exit(w, 10000);
    nas_store_counts s = counts(e.db);
    ck_assert_int_eq(s.failed, 4);
    ck_assert_int_eq(s.done, 0);
    /* The right table, and the failed tasks back in the queue. */
    const char *wf[] = {"--table", e.table, NULL};
    const char *retry[] = {"--retry-failed", NULL};
    m = e2e_start_master(e.mlog, NULL, e.cfg, retry);
    w = e2e_start_worker(wlog, NULL, e.ctl, "w", "0", wf);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "4 failed task(s) back in the queue"), 1);
    e2e_check_exactly_once(e.db, 4);
    nas_tmpdir_rm(e.dir);
}
END_TEST

// ---- point 8: extensions -------------------------------------------------------------------

/* The extension test's campaign: what changes between runs is given. */
static void write_extend(const e2e_env *e, int evaluations, int threads, int seed) {
    e2e_write(e->cfg,
              "name: extend\nseed: %d\nspace:\n  kind: nb201\n"
              "strategy:\n  name: evolution\n  population: 4\n  sample: 2\n"
              "budget:\n  evaluations: %d\n"
              "fidelity:\n  epochs: 2\n  threads: %d\n"
              "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n"
              "workers:\n  heartbeat_ms: 100\n  liveness: 3\n"
              "store: %s\n",
              seed, evaluations, threads, e->port, e->port + 1, e->port + 2, e->db);
}

START_TEST(test_ops_extend_budget_on_resume) {
    e2e_env e;
    e2e_env_init(&e, 5);
    char wlog[PATH_MAX], mlog2[PATH_MAX];
    e2e_log_path(&e, "w", wlog, sizeof wlog);
    nas_path_join(mlog2, sizeof mlog2, e.dir, "master2.log");
    write_extend(&e, 4, 1, 7);
    pid_t m = master(&e, e.cfg, e.mlog, NULL);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w", "0", NULL);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    e2e_check_exactly_once(e.db, 4);
    /* More evaluations and another thread count: the same campaign, longer. */
    write_extend(&e, 7, 2, 7);
    m = master(&e, e.cfg, mlog2, NULL);
    w = e2e_start_worker(wlog, NULL, e.ctl, "w", "0", NULL);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    ck_assert_int_eq(e2e_count_in_file(mlog2, "reopened"), 1);
    e2e_check_exactly_once(e.db, 7);
    /* Fewer evaluations than granted is not an extension. */
    write_extend(&e, 5, 2, 7);
    m = master(&e, e.cfg, mlog2, NULL);
    ck_assert_int_eq(e2e_wait_exit(m, 20000), 2);
    ck_assert_int_eq(e2e_count_in_file(mlog2, "can be raised on resume, not lowered"), 1);
    /* What decides the search is still identity. */
    write_extend(&e, 9, 2, 8);
    m = master(&e, e.cfg, mlog2, NULL);
    ck_assert_int_eq(e2e_wait_exit(m, 20000), 2);
    ck_assert_int_eq(e2e_count_in_file(mlog2, "stored 'seed: 7', given 'seed: 8'"), 1);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* wall_time counts the time a master ran: a campaign stopped for longer
 * than its budget still has the rest of it when resumed, and raising the
 * budget reopens a campaign whose time was spent. */
START_TEST(test_ops_wall_time_counts_running_time_only) {
    e2e_env e;
    e2e_env_init(&e, 6);
    char wlog[PATH_MAX];
    e2e_log_path(&e, "w", wlog, sizeof wlog);
    const char *common = "workers:\n  heartbeat_ms: 100\n  liveness: 3\n";
    e2e_write(e.cfg,
              "name: wall\nseed: 7\nspace:\n  kind: nb201\nstrategy:\n  name: random\n"
              "budget:\n  evaluations: 100000\n  wall_time: 3s\n"
              "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n%sstore: %s\n",
              e.port, e.port + 1, e.port + 2, common, e.db);
    /* One second of running, then four seconds down. */
    pid_t m = master(&e, e.cfg, e.mlog, NULL);
    ck_assert(e2e_wait_in_file(e.mlog, "listening for workers", 20000));
    nas_sleep_ms(1000);
    kill(m, SIGINT);
    ck_assert_int_eq(e2e_wait_exit(m, 20000), 0);
    nas_sleep_ms(4000);
    /* Resumed with a worker: about two seconds of budget are left, and
     * they are used (counting from creation, as before, nothing would be
     * left: the count would be 0; a loaded machine may do only a few). */
    m = master(&e, e.cfg, e.mlog, NULL);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w", "20", NULL);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    nas_store_counts s = counts(e.db);
    ck_assert_int_ge(s.done, 1);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "wall-time budget of 3 s spent"), 1);
    int64_t first = s.done;
    /* A larger wall time reopens the campaign. */
    e2e_write(e.cfg,
              "name: wall\nseed: 7\nspace:\n  kind: nb201\nstrategy:\n  name: random\n"
              "budget:\n  evaluations: 100000\n  wall_time: 5s\n"
              "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n%sstore: %s\n",
              e.port, e.port + 1, e.port + 2, common, e.db);
    m = master(&e, e.cfg, e.mlog, NULL);
    w = e2e_start_worker(wlog, NULL, e.ctl, "w", "20", NULL);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    s = counts(e.db);
    ck_assert_int_gt(s.done, first);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "reopened"), 1);
    nas_tmpdir_rm(e.dir);
}
END_TEST

// ---- point 9: final.fidelity inherits from fidelity ----------------------------------------

START_TEST(test_ops_final_fidelity_inherits) {
    e2e_env e;
    e2e_env_init(&e, 7);
    char wlog[PATH_MAX];
    e2e_log_path(&e, "w", wlog, sizeof wlog);
    e2e_write(e.cfg,
              "name: final\nseed: 7\nspace:\n  kind: nb201\nstrategy:\n  name: random\n"
              "budget:\n  evaluations: 3\n"
              "fidelity:\n  lr: 0.05\n  batch: 32\n  weight_decay: 0.001\n"
              "final:\n  top_k: 1\n  fidelity:\n    epochs: 3\n"
              "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n"
              "workers:\n  heartbeat_ms: 100\n  liveness: 3\nstore: %s\n",
              e.port, e.port + 1, e.port + 2, e.db);
    pid_t m = master(&e, e.cfg, e.mlog, NULL);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w", "0", NULL);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_task_info *ti = NULL;
    int n = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_FINAL, &ti, err);
    ck_assert_int_eq(n, 1);
    /* Set by fidelity, inherited: */
    ck_assert_float_eq_tol(ti[0].fidelity.lr, 0.05f, 1e-6f);
    ck_assert_int_eq(ti[0].fidelity.batch, 32);
    ck_assert_float_eq_tol(ti[0].fidelity.weight_decay, 0.001f, 1e-7f);
    /* Set by final.fidelity, and the final stage's own defaults: */
    ck_assert_int_eq(ti[0].fidelity.epochs, 3);
    ck_assert_int_eq(ti[0].fidelity.channels, 16);
    ck_assert_int_eq(ti[0].fidelity.test, 1);
    nas_free(ti);
    nas_store_close(&st);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("ops_master");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_ops_second_master_refused_dead_holder_not);
    tcase_add_test(tc, test_ops_environment_failure_keeps_attempts_then_resumes);
    tcase_add_test(tc, test_ops_retry_failed_requeues_on_resume);
    tcase_add_test(tc, test_ops_extend_budget_on_resume);
    tcase_add_test(tc, test_ops_wall_time_counts_running_time_only);
    tcase_add_test(tc, test_ops_final_fidelity_inherits);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
