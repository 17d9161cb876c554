// nas-test: label=e2e timeout=300
/*
 * test_breaker.c - the campaign's circuit breaker (workers.max_failed_in_a_row):
 *  - the key: default 10, 0 turns it off, negatives and non-integers are
 *    refused naming it, and it is not part of the campaign's identity;
 *  - the rule: failures for good in a row trip it at the limit, a result
 *    between them starts the count again, 0 never trips;
 *  - a campaign whose every task fails, with real nas-master and nas-worker
 *    processes over TCP and a SQLite file: it halts after exactly N failed
 *    tasks with the budget unspent, says so in the log and in `nasctl
 *    status` (text and --json), stays up; stopped, the store still says
 *    halted (`nasctl status --db`, the dashboard's model); fixed and
 *    restarted, it resumes, the log says so, and it finishes with every
 *    task recorded exactly once;
 *  - the log's rule: the last halt or resume event decides;
 *  - a campaign where half the tasks fail: results between failures start
 *    the count again, and it halts exactly at the first run of N failures.
 */
#include "common/alloc.h"
#include "master/breaker.h"
#include "master/serve_model.h"
#include "tests/e2e_util.h"

#include <limits.h>

// ---- the key ---------------------------------------------------------------------------------

static int parse(const char *yaml, nas_config *cfg, char *err) {
    return nas_config_parse(yaml, strlen(yaml), "b.yaml", cfg, err);
}

START_TEST(test_breaker_key) {
    char err[NAS_ERR_LEN] = "";
    nas_config cfg;
    ck_assert_msg(parse("name: b\n", &cfg, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(cfg.workers.max_failed_in_a_row, 10);
    uint64_t plain = cfg.hash;
    nas_config_fini(&cfg);
    ck_assert_msg(parse("name: b\nworkers:\n  max_failed_in_a_row: 3\n", &cfg, err) == NAS_OK, "%s",
                  err);
    ck_assert_int_eq(cfg.workers.max_failed_in_a_row, 3);
    /* A restart after the fix may change it: not the campaign's identity. */
    ck_assert_uint_eq(cfg.hash, plain);
    nas_config_fini(&cfg);
    ck_assert_msg(parse("name: b\nworkers:\n  max_failed_in_a_row: 0\n", &cfg, err) == NAS_OK, "%s",
                  err);
    ck_assert_int_eq(cfg.workers.max_failed_in_a_row, 0);
    nas_config_fini(&cfg);
    static const char *const bad[] = {"-1", "2.5", "many", "[3]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char y[128];
        snprintf(y, sizeof y, "name: b\nworkers:\n  max_failed_in_a_row: %s\n", bad[i]);
        err[0] = '\0';
        ck_assert_msg(parse(y, &cfg, err) < 0, "%s accepted", bad[i]);
        ck_assert_msg(strstr(err, "max_failed_in_a_row") != NULL, "%s: %s", bad[i], err);
    }
}
END_TEST

// ---- the rule --------------------------------------------------------------------------------

START_TEST(test_breaker_result_resets_count) {
    nas_breaker b;
    nas_breaker_init(&b, 3);
    ck_assert_int_eq(nas_breaker_failed(&b, "diverged"), 0);
    ck_assert_int_eq(nas_breaker_failed(&b, "diverged"), 0);
    nas_breaker_result(&b); /* a success between failures */
    ck_assert_int_eq(nas_breaker_failed(&b, "diverged"), 0);
    ck_assert_int_eq(nas_breaker_failed(&b, "diverged"), 0);
    ck_assert_int_eq(b.tripped, 0);
    ck_assert_int_eq(nas_breaker_failed(&b, "too large"), 1);
    ck_assert_int_eq(b.tripped, 1);
    ck_assert_ptr_nonnull(strstr(b.message, "3 tasks failed in a row"));
    ck_assert_ptr_nonnull(strstr(b.message, "the last failure: too large"));
    ck_assert_ptr_nonnull(strstr(b.message, "restart the master"));
    /* A lease that was out fails too: counted, named, but trips once. */
    ck_assert_int_eq(nas_breaker_failed(&b, "late"), 0);
    ck_assert_ptr_nonnull(strstr(b.message, "4 tasks failed in a row"));
    /* Latched: a late success resets the count, not the halt. */
    nas_breaker_result(&b);
    ck_assert_int_eq(b.tripped, 1);
    /* 0: off. */
    nas_breaker_init(&b, 0);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(nas_breaker_failed(&b, "x"), 0);
    ck_assert_int_eq(b.tripped, 0);
}
END_TEST

// ---- a campaign whose every task fails -------------------------------------------------------

/* The halt the dashboard's model reads from the log, copied ("" when none stands). */
static void model_halt(const char *db, char *out, size_t cap) {
    char err[NAS_ERR_LEN];
    nas_serve_model *m = NULL;
    ck_assert_msg(nas_serve_model_open(&m, db, err) == NAS_OK, "%s", err);
    ck_assert_msg(nas_serve_model_refresh(m, nas_wall_ms(), err) >= 0, "%s", err);
    nas_serve_summary s;
    nas_serve_model_summary(m, &s);
    snprintf(out, cap, "%s", s.halted ? s.halted : "");
    nas_serve_model_close(&m);
}

/* Events of one kind in the log. */
static int count_events(const char *db, const char *kind) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_event_info *ev = NULL;
    int n = nas_store_event_list(st, 0, 1000, &ev, err), k = 0;
    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n; i++)
        k += strcmp(ev[i].kind, kind) == 0;
    nas_free(ev);
    nas_store_close(&st);
    return k;
}

static nas_store_counts counts(const char *db) {
    nas_store_counts s;
    e2e_counts(db, &s, NULL);
    return s;
}

/* A tabular campaign on `table` (the workers get theirs with --table). */
static void write_campaign(const e2e_env *e, const char *name, int budget, int attempts, int limit,
                           const char *table) {
    char extra[512];
    snprintf(extra, sizeof extra,
             "workers:\n  heartbeat_ms: 100\n  liveness: 3\n  max_attempts: %d\n"
             "  max_failed_in_a_row: %d\n"
             "evaluation:\n  mode: table\n  table: %s\n",
             attempts, limit, table);
    e2e_write_campaign(e->cfg, name, budget, e->port, "127.0.0.1", e->db, extra);
}

START_TEST(test_breaker_halts_then_resumes) {
    enum { BUDGET = 8, LIMIT = 3 };
    e2e_env e;
    e2e_env_init(&e, 1);
    char small[PATH_MAX], wlog[PATH_MAX], mlog2[PATH_MAX], out[16384], cmd[PATH_MAX * 2];
    /* A table no proposal is in: every lookup fails, the architecture's
     * failure (counted), as a batch too large for every net would be. */
    nas_path_join(small, sizeof small, e.dir, "small.csv");
    e2e_write(small, "arch,val_acc\nnot-an-architecture,0.5\n");
    e2e_write_nb201_table(e.table);
    write_campaign(&e, "breaker", BUDGET, 2, LIMIT, "small.csv");
    e2e_log_path(&e, "w", wlog, sizeof wlog);
    nas_path_join(mlog2, sizeof mlog2, e.dir, "master2.log");
    const char *bad[] = {"--table", small, NULL};
    const char *none[] = {NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, none);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w", "0", bad);
    ck_assert(e2e_wait_in_file(e.mlog, "tasks failed in a row", 30000));
    /* Nothing more is proposed or given out, and the master stays up. */
    nas_sleep_ms(500);
    ck_assert_int_eq(e2e_wait(m, 0), -1);
    nas_store_counts s = counts(e.db);
    ck_assert_int_eq(s.failed, LIMIT);
    ck_assert_int_eq(s.done, 0);
    ck_assert_int_eq(s.queued + s.leased, 0);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "3 tasks failed in a row"), 1);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "the last failure: architecture not in the table"),
                     1);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "then restart the master"), 1);
    /* Each task had its two attempts: the limit counts tasks, not attempts. */
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_task_info *ti = NULL;
    int n = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_ANY, &ti, err);
    ck_assert_int_eq(n, LIMIT);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(ti[i].state, NAS_STORE_TASK_FAILED);
        ck_assert_int_eq(ti[i].attempt, 2);
    }
    nas_free(ti);
    nas_store_close(&st);
    /* Status, live from the master: text and JSON. */
    snprintf(cmd, sizeof cmd, "%s status --master %s", nas_bin("nasctl"), e.sts);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "halted        3 tasks failed in a row") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "restart the master") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s status --json --master %s", nas_bin("nasctl"), e.sts);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"halted\":\"3 tasks failed in a row") != NULL, "%s", out);
    /* Stopped (the unit's stop), the halted master exits 0 and the worker
     * with the wrong table goes. */
    kill(m, SIGTERM);
    ck_assert_int_eq(e2e_wait_exit(m, 20000), 0);
    e2e_kill(w, SIGTERM);
    /* With no master to ask, the store still tells the halt: nasctl status
     * --db (text and JSON) and the dashboard's model read the log. */
    snprintf(cmd, sizeof cmd, "%s status --db %s", nas_bin("nasctl"), e.db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "halted        3 tasks failed in a row") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s status --json --db %s", nas_bin("nasctl"), e.db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"halted\":\"3 tasks failed in a row") != NULL, "%s", out);
    model_halt(e.db, out, sizeof out);
    ck_assert_msg(strncmp(out, "3 tasks failed in a row", 23) == 0, "%s", out);
    /* The cause removed (the right table), restarted: the failed tasks stay
     * failed, the count starts from zero, the rest of the budget is spent
     * on results. */
    const char *good[] = {"--table", e.table, NULL};
    m = e2e_start_master(mlog2, NULL, e.cfg, none);
    w = e2e_start_worker(wlog, NULL, e.ctl, "w", "0", good);
    ck_assert_int_eq(e2e_wait_exit(m, 60000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    ck_assert_int_eq(e2e_count_in_file(mlog2, "failed in a row"), 0);
    ck_assert_int_eq(e2e_count_in_file(mlog2, "campaign: done"), 1);
    /* The restart lifted the halt in the log: one halt, one resume, and
     * nothing halted in what the store says now. */
    ck_assert_int_eq(count_events(e.db, NAS_STORE_EVENT_HALTED), 1);
    ck_assert_int_eq(count_events(e.db, NAS_STORE_EVENT_RESUMED), 1);
    snprintf(cmd, sizeof cmd, "%s status --json --db %s", nas_bin("nasctl"), e.db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"halted\"") == NULL, "%s", out);
    model_halt(e.db, out, sizeof out);
    ck_assert_str_eq(out, "");
    st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    ti = NULL;
    n = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, &ti, err);
    ck_assert_int_eq(n, BUDGET);
    int failed = 0, done = 0;
    for (int i = 0; i < n; i++) {
        failed += ti[i].state == NAS_STORE_TASK_FAILED;
        done += ti[i].state == NAS_STORE_TASK_DONE;
        for (int j = i + 1; j < n; j++)
            ck_assert_int_ne(ti[i].id, ti[j].id);
    }
    ck_assert_int_eq(failed, LIMIT);
    ck_assert_int_eq(done, BUDGET - LIMIT);
    nas_store_record *r = NULL;
    int nr = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    ck_assert_int_eq(nr, BUDGET - LIMIT);
    for (int i = 0; i < nr; i++)
        for (int j = i + 1; j < nr; j++)
            ck_assert_int_ne(r[i].task_id, r[j].task_id);
    nas_store_records_free(r, nr);
    nas_free(ti);
    nas_store_close(&st);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* Half the architectures in the table: with one worker the campaign runs
 * one task at a time, so task order is the order results and failures
 * came in.  Every result between failures starts the count again: the
 * campaign halts exactly at the first run of LIMIT failures, and not
 * before, however many failed in all. */
START_TEST(test_breaker_results_between_failures_reset_the_count) {
    enum { BUDGET = 24, LIMIT = 3 };
    e2e_env e;
    e2e_env_init(&e, 2);
    char half[PATH_MAX], wlog[PATH_MAX];
    e2e_write_nb201_table(e.table);
    nas_path_join(half, sizeof half, e.dir, "half.csv");
    char *all = nas_read_file(e.table, NULL);
    ck_assert_ptr_nonnull(all);
    FILE *f = fopen(half, "w");
    ck_assert_ptr_nonnull(f);
    int line = 0;
    for (char *p = all, *nl; *p; p = nl + 1, line++) {
        nl = strchr(p, '\n');
        if (!nl) break;
        if (line == 0 || line % 2 == 1) fwrite(p, 1, (size_t)(nl - p + 1), f);
    }
    fclose(f);
    free(all);
    write_campaign(&e, "reset", BUDGET, 1, LIMIT, "half.csv");
    e2e_log_path(&e, "w", wlog, sizeof wlog);
    const char *ws[] = {"--table", half, NULL};
    const char *none[] = {NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, none);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w", "0", ws);
    int halted = 0, ended = 0;
    for (int64_t end = nas_now_ms() + 60000; !halted && !ended && nas_now_ms() < end;) {
        halted = e2e_count_in_file(e.mlog, "tasks failed in a row") > 0;
        ended = e2e_wait(m, 50) >= 0;
    }
    ck_assert(halted || ended);
    if (halted) nas_sleep_ms(300); /* the log line comes just before the commit */
    /* Runs of failures in task order. */
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_task_info *ti = NULL;
    int n = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, &ti, err);
    int run = 0, longest = 0, failed = 0, resets = 0;
    for (int i = 0; i < n; i++) {
        ck_assert(i == 0 || ti[i].id > ti[i - 1].id);
        if (ti[i].state == NAS_STORE_TASK_FAILED) {
            failed++;
            run++;
            ck_assert_msg(run <= LIMIT, "task %lld: %d failed in a row, the limit is %d",
                          (long long)ti[i].id, run, LIMIT);
            if (run > longest) longest = run;
        } else {
            ck_assert_int_eq(ti[i].state, NAS_STORE_TASK_DONE);
            resets += run > 0;
            run = 0;
        }
    }
    nas_free(ti);
    nas_store_close(&st);
    fprintf(stderr, "reset: %d tasks, %d failed, longest run %d, %d reset(s), %s\n", n, failed,
            longest, resets, halted ? "halted" : "done");
    /* It halts exactly when the last LIMIT tasks failed, and only then. */
    ck_assert_int_eq(halted, longest == LIMIT);
    ck_assert_int_eq(halted, run == LIMIT);
    /* More failures than the limit in all: only the resets kept it going. */
    ck_assert_int_gt(failed, LIMIT);
    ck_assert_int_gt(resets, 0);
    if (halted) {
        kill(m, SIGTERM);
        ck_assert_int_eq(e2e_wait_exit(m, 20000), 0);
    } else {
        ck_assert_int_eq(n, BUDGET);
    }
    e2e_kill(w, SIGTERM);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* The log's last breaker event decides, whatever else was logged between; a store that
 * never halted reads 0. */
START_TEST(test_breaker_log_rule) {
    char dir[PATH_MAX], db[PATH_MAX], err[NAS_ERR_LEN], text[NAS_STORE_REASON_MAX];
    snprintf(dir, sizeof dir, "%s", nas_tmpdir_make());
    nas_path_join(db, sizeof db, dir, "log.db");
    nas_store *st = NULL;
    ck_assert_msg(nas_store_open(&st, db, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_store_halted(st, text, sizeof text, err), 0);
    ck_assert_str_eq(text, "");
    static const char *const steps[][2] = {
        {"worker-joined", "w1"}, {NAS_STORE_EVENT_HALTED, "first"},
        {"worker-left", "w1"},   {NAS_STORE_EVENT_RESUMED, "restarted"},
        {"worker-joined", "w2"}, {NAS_STORE_EVENT_HALTED, "second"},
    };
    static const int expect[] = {0, 1, 1, 0, 0, 1};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(nas_store_event_append(st, 1000 + i, steps[i][0], steps[i][1], err),
                         NAS_OK);
        ck_assert_int_eq(nas_store_halted(st, text, sizeof text, err), expect[i]);
        ck_assert_str_eq(text, expect[i] ? (i < 3 ? "first" : "second") : "");
    }
    nas_store_close(&st);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_breaker_key);
    tcase_add_test(tc, test_breaker_result_resets_count);
    tcase_add_test(tc, test_breaker_log_rule);
    tcase_add_test(tc, test_breaker_halts_then_resumes);
    tcase_add_test(tc, test_breaker_results_between_failures_reset_the_count);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
