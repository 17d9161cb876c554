// nas-test: label=e2e timeout=300
/*
 * test_e2e.c - whole campaigns with real processes: one nas-master, real
 * nas-worker processes over TCP on 127.0.0.1, a real SQLite file, then the
 * database checked for exactly-once recording, and nasctl run against the
 * live master and the finished database.
 */
#include "common/alloc.h"
#include "common/gemm.h"
#include "common/sgemm.h"
#include "tests/e2e_util.h"

#include <limits.h>

/* A worker with info logs, optionally with the benchmark table. */
static pid_t start_worker(const e2e_env *e, const char *name, const char *epoch_ms,
                          const char *table) {
    char log[PATH_MAX];
    e2e_log_path(e, name, log, sizeof log);
    const char *extra[] = {"--log-level", "info", table ? "--table" : NULL, table, NULL};
    return e2e_start_worker(log, NULL, e->ctl, name, epoch_ms, extra);
}

static pid_t start_master(const e2e_env *e, int synthetic) {
    const char *extra[] = {"--log-level", "info", synthetic ? "--synthetic" : NULL, NULL};
    return e2e_start_master(e->mlog, NULL, e->cfg, extra);
}

/* 1 master + 3 workers finish a 30-task campaign (synthetic evaluation of
 * 2 x 20 ms epochs, so that all three take part); every task is recorded
 * exactly once, the three workers share the work, the final stage
 * retrains the top 2 with a test accuracy, and nasctl reads it all. */
START_TEST(test_e2e_three_workers_thirty_tasks) {
    e2e_env e;
    e2e_env_init(&e, 0);
    e2e_write_campaign(e.cfg, "e2e3", 30, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n"
                       "final:\n  top_k: 2\n  fidelity:\n    epochs: 1\n");
    pid_t m = start_master(&e, 1);
    pid_t w[3];
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i);
        w[i] = start_worker(&e, name, "20", NULL);
    }
    /* While it runs, the status endpoint answers nasctl. */
    ck_assert(e2e_wait_counts(e.db, 3, 0, 30000));
    char cmd[8192], out[16384];
    snprintf(cmd, sizeof cmd, "%s status --master tcp://127.0.0.1:%d --json", nas_bin("nasctl"),
             e.port + 2);
    int rc = nas_run_cmd(cmd, out, sizeof out);
    int m_rc = e2e_wait(m, 60000);
    for (int i = 0; i < 3; i++)
        e2e_kill(w[i], SIGTERM);
    ck_assert_msg(rc == 0 || m_rc == 0, "nasctl status failed: %s", out);
    if (rc == 0) ck_assert_ptr_nonnull(strstr(out, "\"source\":\"master\""));
    /* Each real worker said what it computes on. */
    if (rc == 0)
        ck_assert_msg(strstr(out, "\"blas\":\"OpenBLAS ") && !strstr(out, "\"blas_kernels\":\"\""),
                      "%s", out);
    ck_assert_int_eq(m_rc, 0);
    e2e_check_exactly_once(e.db, 30);

    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    int used[3] = {0};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            char name[16];
            snprintf(name, sizeof name, "w%d", k);
            used[k] |= strcmp(r[i].worker, name) == 0;
        }
    ck_assert_int_ge(used[0] + used[1] + used[2], 2);
    nas_store_records_free(r, n);
    n = nas_store_history(st, NAS_STORE_STAGE_FINAL, &r, err);
    ck_assert_int_eq(n, 2);
    for (int i = 0; i < n; i++)
        ck_assert(r[i].test_accuracy >= 0 && r[i].test_accuracy <= 1);
    nas_store_records_free(r, n);
    nas_store_close(&st);

    /* The master is down now: nasctl falls back to the database. */
    snprintf(cmd, sizeof cmd, "%s status --db %s", nas_bin("nasctl"), e.db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "30/30 done"));
    snprintf(cmd, sizeof cmd, "%s history --db %s --csv | wc -l", nas_bin("nasctl"), e.db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_int_eq(atoi(out), 31);
    snprintf(cmd, sizeof cmd, "%s best --db %s --k 3", nas_bin("nasctl"), e.db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "final stage"));
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* What each real worker computes on travels in its Register to the master and out through
 * nasctl status, per worker: two workers forced onto different GEMM paths (NAS_GEMM, the
 * benchmarks' switch, common/gemm.h) must each be shown with their own. */
START_TEST(test_e2e_status_shows_each_workers_gemm) {
    e2e_env e;
    e2e_env_init(&e, 8);
    e2e_write_campaign(e.cfg, "e2egemm", 400, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    pid_t m = start_master(&e, 1);
    setenv(NAS_GEMM_ENV, "openblas", 1);
    pid_t wb = start_worker(&e, "wblas", "50", NULL);
    setenv(NAS_GEMM_ENV, "own", 1);
    pid_t wo = start_worker(&e, "wown", "50", NULL);
    unsetenv(NAS_GEMM_ENV);
    nas_cpu_info cpu;
    nas_cpu_detect(&cpu);
    char own[64], cmd[4096], out[16384];
    snprintf(cmd, sizeof cmd, "%s status --master tcp://127.0.0.1:%d", nas_bin("nasctl"),
             e.port + 2);
    /* Until both have registered (a worker's line, then its engine line under it). */
    int64_t until = nas_now_ms() + 30000;
    const char *lb = NULL, *lo = NULL;
    while (nas_now_ms() < until) {
        if (nas_run_cmd(cmd, out, sizeof out) == 0 && (lb = strstr(out, "wblas")) &&
            (lo = strstr(out, "wown")))
            break;
        lb = lo = NULL;
        usleep(100 * 1000);
    }
    e2e_kill(wb, SIGTERM);
    e2e_kill(wo, SIGTERM);
    e2e_kill(m, SIGTERM);
    ck_assert_msg(lb && lo, "both workers in nasctl status: %s", out);
    /* Each worker's engine line is the line after its own. */
    const char *eb = strchr(lb, '\n'), *eo = strchr(lo, '\n');
    ck_assert_msg(eb && eo, "%s", out);
    char line_b[512], line_o[512];
    snprintf(line_b, sizeof line_b, "%.*s", (int)strcspn(eb + 1, "\n"), eb + 1);
    snprintf(line_o, sizeof line_o, "%.*s", (int)strcspn(eo + 1, "\n"), eo + 1);
    ck_assert_msg(strstr(line_b, "OpenBLAS ") && strstr(line_b, ", GEMMs on OpenBLAS"), "%s", out);
    snprintf(own, sizeof own, ", GEMMs on own %s", nas_sgemm_path_name(nas_sgemm_best(&cpu)));
    ck_assert_msg(strstr(line_o, own), "want '%s' in the line under wown: %s", own, out);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* The tabular path: workers look architectures up in a generated
 * NAS-Bench-201 table; the recorded accuracies are the table's. */
START_TEST(test_e2e_tabular_campaign) {
    e2e_env e;
    e2e_env_init(&e, 1);
    e2e_write_nb201_table(e.table);
    char extra[PATH_MAX + 256];
    snprintf(extra, sizeof extra,
             "workers:\n  heartbeat_ms: 100\n  liveness: 3\n"
             "evaluation:\n  mode: table\n  table: %s\n",
             e.table);
    e2e_write_campaign(e.cfg, "e2etab", 12, e.port, "127.0.0.1", e.db, extra);
    pid_t w = start_worker(&e, "tab", "0", e.table);
    pid_t m = start_master(&e, 0);
    int m_rc = e2e_wait(m, 60000);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(m_rc, 0);
    e2e_check_exactly_once(e.db, 12);
    /* Every accuracy is the table's entry for the architecture. */
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    char *table = nas_read_file(e.table, NULL);
    for (int i = 0; i < n; i++) {
        char row[600];
        snprintf(row, sizeof row, "%s,%.4f,", r[i].arch_text, r[i].accuracy);
        ck_assert_msg(strstr(table, row) != NULL, "%s not in the table", row);
    }
    free(table);
    nas_store_records_free(r, n);
    nas_store_close(&st);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* A second master on a finished campaign says so and exits 0; a different
 * config (or a lowered budget) on the same database is refused with a
 * message naming it. */
START_TEST(test_e2e_resume_refuses_other_config) {
    e2e_env e;
    e2e_env_init(&e, 2);
    e2e_write_campaign(e.cfg, "e2eid", 5, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n");
    pid_t w = start_worker(&e, "id", "0", NULL);
    pid_t m = start_master(&e, 1);
    ck_assert_int_eq(e2e_wait(m, 60000), 0);
    e2e_kill(w, SIGTERM);
    char cmd[8192], out[8192];
    snprintf(cmd, sizeof cmd, "%s %s --synthetic", nas_bin("nas-master"), e.cfg);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "already complete"));
    /* What is searched is identity; the budget is not (an extension, see
     * test_ops_master), but it is never lowered. */
    e2e_write_campaign(e.cfg, "e2eid", 5, e.port, "127.0.0.1", e.db, "final:\n  top_k: 1\n");
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "stored 'final.top_k: 0', given 'final.top_k: 1'") != NULL,
                  "message: %s", out);
    e2e_write_campaign(e.cfg, "e2eid", 4, e.port, "127.0.0.1", e.db, "");
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "raised on resume, not lowered") != NULL, "message: %s", out);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* SIGTERM: with --wait-on-stop (the default) the master stops leasing,
 * records the task in flight when it arrives, and exits 0 with nothing
 * leased; with --cancel-on-stop it hands the task back to the queue at
 * once; a second signal exits at once (130) and the next run resumes. */
START_TEST(test_e2e_signals_stop_gracefully) {
    e2e_env e;
    e2e_env_init(&e, 3 + _i);
    e2e_write_campaign(e.cfg, "sig", 8, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    pid_t w = start_worker(&e, "sig", "300", NULL);
    const char *extra[] = {"--synthetic", _i == 1 ? "--cancel-on-stop" : "--wait-on-stop", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, extra);
    ck_assert(e2e_wait_counts(e.db, 1, 1, 30000));
    kill(m, SIGTERM);
    if (_i == 2) {
        nas_sleep_ms(50);
        kill(m, SIGTERM);
    }
    int rc = e2e_wait(m, 30000);
    nas_store_counts s;
    e2e_counts(e.db, &s, NULL);
    if (_i == 0) {
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(s.leased, 0);
        ck_assert_int_ge(s.done, 2); /* the task in flight was waited for */
    } else if (_i == 1) {
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(s.leased, 0);
        ck_assert_int_ge(s.queued, 1); /* handed back */
    } else {
        ck_assert_int_eq(rc, 130);
    }
    ck_assert_int_lt(s.done, 8);
    /* Whatever the stop, the next run finishes the campaign exactly once. */
    m = start_master(&e, 1);
    ck_assert_int_eq(e2e_wait(m, 60000), 0);
    e2e_kill(w, SIGTERM);
    e2e_check_exactly_once(e.db, 8);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* PNAS: the predictor fit between levels runs in libuv's thread pool, not
 * on the loop, and the campaign goes on to the next level and finishes. */
START_TEST(test_e2e_pnas_prepares_off_the_loop) {
    e2e_env e;
    e2e_env_init(&e, 6);
    /* NB201 PNAS: level 1 has 80 cells, then one level of beam 4. */
    char cfg[PATH_MAX + 1024];
    snprintf(cfg, sizeof cfg,
             "name: pn\nseed: 2\nspace:\n  kind: nb201\n"
             "strategy:\n  name: pnas\n  beam: 4\n  ensemble: 2\n"
             "budget:\n  evaluations: 84\n"
             "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
             "  status: tcp://127.0.0.1:%d\n"
             "workers:\n  heartbeat_ms: 100\nstore: %s\n",
             e.port, e.port + 1, e.port + 2, e.db);
    ck_assert_int_eq(nas_write_file(e.cfg, cfg, strlen(cfg), 0), 0);
    pid_t w = start_worker(&e, "pnas", "2", NULL);
    pid_t m = start_master(&e, 1);
    int rc = e2e_wait(m, 120000);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(e.db, 84);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "prepared in the thread pool"), 1);
    ck_assert_int_ge(e2e_count_in_file(e.mlog, "rank correlation"), 1);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* The wall-time budget stops proposals (counted from the campaign's
 * creation), the tasks in flight still finish, and the final stage runs on
 * what was evaluated. */
START_TEST(test_e2e_wall_time_budget) {
    e2e_env e;
    e2e_env_init(&e, 7);
    e2e_write_campaign(e.cfg, "wall", 100, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n"
                       "final:\n  top_k: 1\n");
    /* The campaign file's budget section comes first; add the wall time. */
    char *text = nas_read_file(e.cfg, NULL);
    char *at = strstr(text, "  evaluations: 100\n");
    ck_assert_ptr_nonnull(at);
    char cfg[PATH_MAX + 2048];
    snprintf(cfg, sizeof cfg, "%.*s  evaluations: 100\n  wall_time: 2s\n%s", (int)(at - text), text,
             at + strlen("  evaluations: 100\n"));
    free(text);
    ck_assert_int_eq(nas_write_file(e.cfg, cfg, strlen(cfg), 0), 0);
    pid_t w = start_worker(&e, "wall", "100", NULL);
    int64_t t0 = nas_now_ms();
    pid_t m = start_master(&e, 1);
    int rc = e2e_wait(m, 60000);
    int64_t took = nas_now_ms() - t0;
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_lt(took, 30000);
    nas_store_counts s, fin;
    e2e_counts(e.db, &s, &fin);
    ck_assert_int_ge(s.done, 2);
    ck_assert_int_lt(s.done, 100);
    ck_assert_int_eq(s.queued + s.leased, 0);
    ck_assert_int_eq(fin.done, 1);
    ck_assert_int_ge(e2e_count_in_file(e.mlog, "wall-time budget"), 1);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("e2e");
    TCase *tc = tcase_create("campaign");
    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_e2e_three_workers_thirty_tasks);
    tcase_add_test(tc, test_e2e_tabular_campaign);
    tcase_add_test(tc, test_e2e_status_shows_each_workers_gemm);
    tcase_add_test(tc, test_e2e_resume_refuses_other_config);
    tcase_add_loop_test(tc, test_e2e_signals_stop_gracefully, 0, 3);
    tcase_add_test(tc, test_e2e_pnas_prepares_off_the_loop);
    tcase_add_test(tc, test_e2e_wall_time_budget);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
