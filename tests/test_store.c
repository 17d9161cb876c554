/*
 * test_store.c - the SQLite campaign store on real files in a temporary
 * directory: schema creation, migration and refusal of foreign or future
 * files, refusing a different config, the task life cycle with duplicate
 * and stale results, and reading back (best-k, history, lists, workers,
 * events, weights).  Failures, crashes and concurrency are in
 * test_store_faults.c.
 */
#include "tests/store_fixtures.h"

#include <stdlib.h>

// ---- schema ------------------------------------------------------------------------------------

START_TEST(test_store_create_and_reopen) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = NULL;
    ck_assert_msg(nas_store_open(&st, db_path, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(pragma_int(st, "PRAGMA user_version"), NAS_STORE_SCHEMA_VERSION);
    ck_assert_int_eq(pragma_int(st, "PRAGMA foreign_keys"), 1);
    ck_assert_int_eq(pragma_int(st, "PRAGMA synchronous"), 1); /* NORMAL */
    ck_assert_int_eq(
        pragma_int(st, "SELECT COUNT(*) FROM sqlite_schema WHERE type IN ('table', 'view') AND "
                       "name IN ('campaign', 'architecture', 'task', 'result', "
                       "'strategy_state', 'worker', 'event', 'weights', 'fidelity')"),
        9);
    nas_store_campaign c = campaign_spec(0xfeedbeefcafe0001ull, "a: 1\n");
    int created = -1;
    ck_assert_int_eq(nas_store_campaign_bind(st, &c, 5, &created, err), NAS_OK);
    ck_assert_int_eq(created, 1);
    nas_store_close(&st);
    ck_assert_ptr_null(st);

    ck_assert_msg(nas_store_open(&st, db_path, err) == NAS_OK, "%s", err);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(st->db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    ck_assert_int_eq(nas_store_campaign_bind(st, &c, 6, &created, err), NAS_OK);
    ck_assert_int_eq(created, 0);
    nas_store_campaign_info info;
    ck_assert_int_eq(nas_store_campaign_get(st, &info, err), NAS_OK);
    ck_assert_str_eq(info.name, "test");
    ck_assert_str_eq(info.text, "name: test\n");
    /* The top bit survives the int64 round trip. */
    ck_assert(info.hash == 0xfeedbeefcafe0001ull);
    ck_assert(info.seed == 7);
    ck_assert_int_eq(info.state, NAS_STORE_CAMPAIGN_RUNNING);
    ck_assert_int_eq(info.created_ms, 5);
    nas_store_campaign_info_fini(&info);
    ck_assert_int_eq(nas_store_campaign_set_state(st, NAS_STORE_CAMPAIGN_DONE, 9, err), NAS_OK);
    ck_assert_int_eq(nas_store_campaign_get(st, &info, err), NAS_OK);
    ck_assert_int_eq(info.state, NAS_STORE_CAMPAIGN_DONE);
    ck_assert_int_eq(info.updated_ms, 9);
    nas_store_campaign_info_fini(&info);
    nas_store_close(&st);
    nas_store_close(&st); /* NULL is fine */
}
END_TEST

START_TEST(test_store_refuses_different_config) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    nas_store_close(&st);
    ck_assert_int_eq(nas_store_open(&st, db_path, err), NAS_OK);
    nas_store_campaign other = campaign_spec(0x9999, "name: test\nseed: 8\n");
    int created = -1;
    ck_assert_int_eq(nas_store_campaign_bind(st, &other, 1, &created, err), NAS_ECONFIG);
    ck_assert_int_eq(created, -1);
    ck_assert_ptr_nonnull(strstr(err, db_path));
    ck_assert_ptr_nonnull(strstr(err, "different config"));
    ck_assert_ptr_nonnull(strstr(err, "stored 'seed: 7'"));
    ck_assert_ptr_nonnull(strstr(err, "given 'seed: 8'"));
    ck_assert_ptr_nonnull(strstr(err, "no override"));
    /* The refusal changed nothing. */
    nas_store_campaign_info info;
    ck_assert_int_eq(nas_store_campaign_get(st, &info, err), NAS_OK);
    ck_assert(info.hash == 0x1234);
    nas_store_campaign_info_fini(&info);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_refuses_future_version) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    ck_assert_int_eq(sqlite3_exec(st->db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    nas_store_close(&st);
    ck_assert_int_eq(nas_store_open(&st, db_path, err), NAS_EVERSION);
    ck_assert_ptr_null(st);
    ck_assert_ptr_nonnull(strstr(err, "version 99"));
    ck_assert_ptr_nonnull(strstr(err, "newer nasd"));
    ck_assert_int_eq(nas_store_open_ro(&st, db_path, err), NAS_EVERSION);
}
END_TEST

START_TEST(test_store_migrates_v1_to_v2) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t id = add_task(st, 42, NAS_STORE_STAGE_SEARCH);
    complete(st, id, 0.8);
    nas_store_close(&st);

    /* Play a future binary whose next migration adds a column. */
    int n = 0;
    const nas__store_migration *cur = nas__store_migrations(&n);
    ck_assert_int_eq(n, NAS_STORE_SCHEMA_VERSION);
    nas__store_migration v2[NAS_STORE_SCHEMA_VERSION + 1];
    for (int i = 0; i < n; i++)
        v2[i] = cur[i];
    v2[n] = (nas__store_migration){.sql = "ALTER TABLE task ADD COLUMN note TEXT;"};
    ck_assert_msg(nas__store_open_with(&st, db_path, 0, v2, n + 1, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(pragma_int(st, "PRAGMA user_version"), n + 1);
    ck_assert_int_eq(pragma_int(st, "SELECT COUNT(note) + COUNT(*) FROM task"), 1);
    nas_store_record *recs = NULL;
    ck_assert_int_eq(nas_store_history(st, NAS_STORE_STAGE_ANY, &recs, err), 1);
    ck_assert_double_eq_tol(recs[0].accuracy, 0.8, 1e-12);
    nas_store_records_free(recs, 1);
    nas_store_close(&st);
    /* Reopening with v2 runs nothing again; the v1 binary now refuses it. */
    ck_assert_int_eq(nas__store_open_with(&st, db_path, 0, v2, n + 1, err), NAS_OK);
    nas_store_close(&st);
    ck_assert_int_eq(nas_store_open(&st, db_path, err), NAS_EVERSION);
}
END_TEST

/* A file written by the first release (version 1) is brought to version
 * 2: its rows survive, the task table gains the observation columns, and
 * its CHECK constraints are rewritten without IN lists but still refuse a
 * bad state. */
START_TEST(test_store_migrates_release_1) {
    char err[NAS_ERR_LEN] = "";
    int n = 0;
    const nas__store_migration *all = nas__store_migrations(&n);
    nas_store *st = NULL;
    ck_assert_msg(nas__store_open_with(&st, db_path, 0, all, 1, err) == NAS_OK, "%s", err);
    /* The row as that release wrote it (today's statements name columns
     * it did not have): created at 1 s, last checkpoint at 61 s. */
    ck_assert_int_eq(sqlite3_exec(st->db,
                                  "INSERT INTO campaign VALUES (1, 'test', 'name: test', "
                                  "'name: test\nseed: 7\n', 4660, 7, 'running', 1000, 61000)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(pragma_int(st, "PRAGMA user_version"), 1);
    nas_store_close(&st);
    st = open_bound(db_path);
    ck_assert_int_eq(pragma_int(st, "PRAGMA user_version"), NAS_STORE_SCHEMA_VERSION);
    /* Version 4: the time run so far is bounded by creation to checkpoint. */
    ck_assert_int_eq(pragma_int(st, "SELECT ran_ms FROM campaign"), 60000);
    ck_assert_int_eq(pragma_int(st, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'task' "
                                    "AND sql LIKE '% IN (%'"),
                     0);
    int64_t id = add_task(st, 42, NAS_STORE_STAGE_SEARCH);
    complete(st, id, 0.8);
    ck_assert_int_eq(nas_store_task_observed(st, id, 0, 1, err), NAS_OK);
    ck_assert_int_ne(sqlite3_exec(st->db, "UPDATE task SET state = 'lost'", NULL, NULL, NULL),
                     SQLITE_OK);
    ck_assert_int_ne(sqlite3_exec(st->db, "UPDATE task SET failure_kind = 'x'", NULL, NULL, NULL),
                     SQLITE_OK);
    ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_refuses_foreign_files) {
    char err[NAS_ERR_LEN] = "", path[4096];
    nas_store *st = NULL;
    nas_path_join(path, sizeof path, tmp, "junk.db");
    const char junk[] = "this is not an SQLite database, just some text of decent length......"
                        "................................................................";
    ck_assert_int_eq(nas_write_file(path, junk, sizeof junk, 0), 0);
    ck_assert_int_eq(nas_store_open(&st, path, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "junk.db"));

    nas_path_join(path, sizeof path, tmp, "other.db");
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(nas_store_open(&st, path, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "not a nasd store"));

    nas_path_join(path, sizeof path, tmp, "missing.db");
    ck_assert_int_eq(nas_store_open_ro(&st, path, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "missing.db does not exist"));
    ck_assert_int_eq(nas_store_open(&st, "", err), NAS_EINVAL);
}
END_TEST

// ---- task life cycle ---------------------------------------------------------------------------

START_TEST(test_store_result_once) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t id = add_task(st, 7, NAS_STORE_STAGE_SEARCH);
    ck_assert_int_eq(id, 1);
    int attempt = 0;
    ck_assert_int_eq(nas_store_task_lease(st, id, attempt = 1, "w1", "h1", "", 9000, 3000, err),
                     NAS_OK);
    ck_assert_int_eq(attempt, 1);
    nas_store_task_info t;
    ck_assert_int_eq(nas_store_task_get(st, id, &t, err), NAS_OK);
    ck_assert_int_eq(t.state, NAS_STORE_TASK_LEASED);
    ck_assert_str_eq(t.worker, "w1");
    ck_assert_int_eq(t.lease_expiry_ms, 9000);
    ck_assert_int_eq(nas_store_task_extend(st, id, 1, 12000, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_task_extend(st, id, 2, 12000, err), NAS_STORE_STALE);
    ck_assert_int_eq(nas_store_task_get(st, id, &t, err), NAS_OK);
    ck_assert_int_eq(t.lease_expiry_ms, 12000);

    nas_store_result r = result_of(0.9);
    const char blob1[] = "state-1", blob2[] = "state-2";
    ck_assert_int_eq(nas_store_put_result(st, id, 1, &r, blob1, sizeof blob1, 4000, err),
                     NAS_STORE_APPLIED);
    r.accuracy = 0.1;
    ck_assert_int_eq(nas_store_put_result(st, id, 1, &r, blob2, sizeof blob2, 4100, err),
                     NAS_STORE_DUPLICATE);
    /* The duplicate changed neither the result nor the strategy state. */
    nas_store_record *recs = NULL;
    ck_assert_int_eq(nas_store_history(st, NAS_STORE_STAGE_ANY, &recs, err), 1);
    ck_assert_double_eq_tol(recs[0].accuracy, 0.9, 1e-12);
    ck_assert_int_eq(recs[0].n_curve, 3);
    ck_assert_float_eq_tol(recs[0].curve[2], 0.75f, 1e-7f);
    ck_assert(isnan(recs[0].test_accuracy));
    ck_assert_str_eq(recs[0].worker, "w1");
    nas_store_records_free(recs, 1);
    uint8_t *blob = NULL;
    size_t len = 0;
    int64_t seq = 0;
    ck_assert_int_eq(nas_store_strategy_load(st, &blob, &len, &seq, err), NAS_OK);
    ck_assert_uint_eq(len, sizeof blob1);
    ck_assert_str_eq((char *)blob, blob1);
    ck_assert_int_eq(seq, 1);
    nas_free(blob);

    ck_assert_int_eq(nas_store_task_get(st, id, &t, err), NAS_OK);
    ck_assert_int_eq(t.state, NAS_STORE_TASK_DONE);
    ck_assert_int_eq(t.finished_ms, 4000);
    ck_assert_int_eq(t.lease_expiry_ms, 0);
    /* A done task cannot be leased again; an unknown one is not found. */
    ck_assert_int_eq(nas_store_task_lease(st, id, 2, "w2", "h1", "", 1, 1, err), NAS_ESTATE);
    ck_assert_ptr_nonnull(strstr(err, "done"));
    ck_assert_int_eq(nas_store_task_lease(st, 99, 1, "w2", "h1", "", 1, 1, err), NAS_ENOTFOUND);
    ck_assert_int_eq(nas_store_put_result(st, 99, 1, &r, NULL, 0, 1, err), NAS_ENOTFOUND);
    nas_store_close(&st);
}
END_TEST

/* A task proposed and leased in the same batch is written leased in one
 * statement; the row must read exactly as after add + lease. */
START_TEST(test_store_add_already_leased) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    nas_store_new_task nt = new_task(7, "n=sep3x3:0+id:1 r=max3x3:0+id:1", NAS_STORE_STAGE_SEARCH);
    nt.lease_worker = "w1";
    nt.lease_expiry_ms = 9000;
    int64_t id = 0;
    ck_assert_int_eq(nas_store_task_add(st, &nt, NULL, 0, 1000, &id, err), NAS_OK);
    nas_store_task_info t;
    ck_assert_int_eq(nas_store_task_get(st, id, &t, err), NAS_OK);
    ck_assert_int_eq(t.state, NAS_STORE_TASK_LEASED);
    ck_assert_int_eq(t.attempt, 1);
    ck_assert_str_eq(t.worker, "w1");
    ck_assert_int_eq(t.lease_expiry_ms, 9000);
    /* It is a lease like any other: attempt 1 may deliver, a second lease
     * of the leased task is refused, the check finds nothing wrong. */
    ck_assert_int_eq(nas_store_task_lease(st, id, 1, "w2", "h1", "", 1, 1, err), NAS_ESTATE);
    nas_store_result r = result_of(0.5);
    ck_assert_int_eq(nas_store_put_result(st, id, 1, &r, NULL, 0, 2000, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_check(st, err), NAS_OK);
    /* Without a worker the task is queued, as before. */
    nt.lease_worker = NULL;
    ck_assert_int_eq(nas_store_task_add(st, &nt, NULL, 0, 1000, &id, err), NAS_OK);
    ck_assert_int_eq(nas_store_task_get(st, id, &t, err), NAS_OK);
    ck_assert_int_eq(t.state, NAS_STORE_TASK_QUEUED);
    ck_assert_int_eq(t.attempt, 0);
    ck_assert_str_eq(t.worker, "");
    /* A bad worker name is refused before anything is written. */
    char longname[NAS_STORE_NAME_MAX + 8];
    memset(longname, 'w', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    nt.lease_worker = longname;
    ck_assert_int_eq(nas_store_task_add(st, &nt, NULL, 0, 1000, &id, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "worker name"));
    nt.lease_worker = "";
    ck_assert_int_eq(nas_store_task_add(st, &nt, NULL, 0, 1000, &id, err), NAS_EINVAL);
    nas_store_task_info *all = NULL;
    ck_assert_int_eq(nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_ANY, &all, err),
                     2);
    nas_free(all);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_first_result_wins) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t id = add_task(st, 7, NAS_STORE_STAGE_SEARCH);
    int attempt = 0;
    ck_assert_int_eq(nas_store_task_lease(st, id, attempt = 1, "slow", "h1", "", 5000, 3000, err),
                     NAS_OK);
    ck_assert_int_eq(nas_store_put_failure(st, id, 1, NAS_STORE_FAIL_LEASE_EXPIRED,
                                           "silent for 5 beats", 3, NULL, 0, 5001, err),
                     NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_task_lease(st, id, attempt = 2, "fast", "h1", "", 9000, 5002, err),
                     NAS_OK);
    ck_assert_int_eq(attempt, 2);
    /* The slow worker was not dead after all and finishes first. */
    nas_store_result r = result_of(0.7);
    r.worker = "slow";
    /* Attempts never leased are refused while the task is open too, and
     * leave it open (the done-UPDATE's own WHERE refuses them). */
    ck_assert_int_eq(nas_store_put_result(st, id, 0, &r, NULL, 0, 5900, err), NAS_EINVAL);
    ck_assert_int_eq(nas_store_put_result(st, id, 3, &r, NULL, 0, 5900, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "never leased"));
    ck_assert_int_eq(nas_store_put_result(st, id, 1, &r, NULL, 0, 6000, err), NAS_STORE_APPLIED);
    r.worker = "fast";
    ck_assert_int_eq(nas_store_put_result(st, id, 2, &r, NULL, 0, 6100, err), NAS_STORE_DUPLICATE);
    ck_assert_int_eq(nas_store_put_result(st, id, 3, &r, NULL, 0, 6100, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "never leased"));
    /* The fast worker's failure report for its lease is stale now. */
    ck_assert_int_eq(
        nas_store_put_failure(st, id, 2, NAS_STORE_FAIL_TRAINING, "x", 3, NULL, 0, 6200, err),
        NAS_STORE_STALE);
    nas_store_counts c;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &c, err), NAS_OK);
    ck_assert_int_eq(c.done, 1);
    ck_assert_int_eq(c.queued + c.leased + c.failed, 0);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_failure_after_max_attempts) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t id = add_task(st, 7, NAS_STORE_STAGE_SEARCH);
    int attempt = 0;
    ck_assert_int_eq(nas_store_task_lease(st, id, attempt = 1, "w1", "h1", "", 5000, 3000, err),
                     NAS_OK);
    ck_assert_int_eq(nas_store_put_failure(st, id, attempt, NAS_STORE_FAIL_TRAINING, "loss is NaN",
                                           2, "s", 1, 4000, err),
                     NAS_STORE_APPLIED);
    nas_store_task_info t;
    ck_assert_int_eq(nas_store_task_get(st, id, &t, err), NAS_OK);
    ck_assert_int_eq(t.state, NAS_STORE_TASK_QUEUED);
    ck_assert_int_eq(t.failure_kind, NAS_STORE_FAIL_TRAINING);
    ck_assert_str_eq(t.failure, "loss is NaN");
    /* A retry does not write the strategy state: the strategy still waits. */
    uint8_t *blob = NULL;
    size_t len = 0;
    ck_assert_int_eq(nas_store_strategy_load(st, &blob, &len, NULL, err), NAS_ENOTFOUND);

    ck_assert_int_eq(nas_store_task_lease(st, id, attempt = 2, "w2", "h1", "", 5000, 4001, err),
                     NAS_OK);
    ck_assert_int_eq(attempt, 2);
    ck_assert_int_eq(
        nas_store_put_failure(st, id, 1, NAS_STORE_FAIL_TRAINING, "old", 2, NULL, 0, 4500, err),
        NAS_STORE_STALE);
    ck_assert_int_eq(nas_store_put_failure(st, id, 2, NAS_STORE_FAIL_LEASE_EXPIRED,
                                           "worker w2 silent", 2, "s", 1, 5001, err),
                     NAS_STORE_FAILED_FINAL);
    ck_assert_int_eq(nas_store_task_get(st, id, &t, err), NAS_OK);
    ck_assert_int_eq(t.state, NAS_STORE_TASK_FAILED);
    ck_assert_int_eq(t.failure_kind, NAS_STORE_FAIL_LEASE_EXPIRED);
    ck_assert_str_eq(t.failure, "worker w2 silent");
    ck_assert_int_eq(t.finished_ms, 5001);
    ck_assert_int_eq(nas_store_strategy_load(st, &blob, &len, NULL, err), NAS_OK);
    nas_free(blob);
    nas_store_result r = result_of(0.5);
    ck_assert_int_eq(nas_store_put_result(st, id, 2, &r, NULL, 0, 6000, err), NAS_STORE_STALE);
    /* Both failures are in the event log, with their kinds. */
    nas_store_event_info *ev = NULL;
    ck_assert_int_eq(nas_store_event_list(st, 0, 10, &ev, err), 2);
    ck_assert_str_eq(ev[0].kind, "training");
    ck_assert_str_eq(ev[1].kind, "lease-expired");
    ck_assert_ptr_nonnull(strstr(ev[1].text, "failed for good"));
    nas_free(ev);
    ck_assert_int_eq(nas_store_put_failure(st, id, 2, 7, "x", 2, NULL, 0, 1, err), NAS_EINVAL);
    ck_assert_int_eq(nas_store_put_failure(st, id, 2, 0, "x", 0, NULL, 0, 1, err), NAS_EINVAL);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_requeue_on_resume) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int attempt = 0;
    for (int i = 0; i < 4; i++)
        add_task(st, 100 + (uint64_t)i, NAS_STORE_STAGE_SEARCH);
    ck_assert_int_eq(nas_store_task_lease(st, 1, attempt = 1, "w1", "h1", "", 5000, 3000, err),
                     NAS_OK);
    ck_assert_int_eq(nas_store_task_lease(st, 2, attempt = 1, "w2", "h1", "", 5000, 3000, err),
                     NAS_OK);
    ck_assert_int_eq(nas_store_task_requeue(st, 2, 1, 3100, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_task_requeue(st, 2, 1, 3100, err), NAS_STORE_STALE);
    /* A give-back does not count: the task is leased again as attempt 1. */
    ck_assert_int_eq(nas_store_task_lease(st, 2, 1, "w4", "h1", "", 5000, 3200, err), NAS_OK);
    ck_assert_int_eq(nas_store_task_requeue(st, 2, 1, 3300, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_task_lease(st, 2, 0, "w4", "h1", "", 5000, 3200, err), NAS_EINVAL);
    ck_assert_int_eq(nas_store_task_lease(st, 3, attempt = 1, "w3", "h1", "", 5000, 3000, err),
                     NAS_OK);
    nas_store_close(&st); /* the master dies with two leases out */

    st = open_bound(db_path);
    nas_store_task_info *leased = NULL;
    int n = nas_store_task_list(st, NAS_STORE_TASK_LEASED, NAS_STORE_STAGE_ANY, &leased, err);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(leased[0].id, 1);
    ck_assert_str_eq(leased[0].worker, "w1");
    ck_assert_int_eq(leased[1].id, 3);
    ck_assert_int_eq(leased[1].lease_expiry_ms, 5000);
    nas_free(leased);
    ck_assert_int_eq(nas_store_task_requeue_all(st, 7000, err), 2);
    ck_assert_int_eq(nas_store_task_requeue_all(st, 7000, err), 0);
    nas_store_counts c;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_SEARCH, &c, err), NAS_OK);
    ck_assert_int_eq(c.queued, 4);
    ck_assert_int_eq(c.leased, 0);
    /* Leasing again continues the attempt numbering, so old messages stay stale. */
    ck_assert_int_eq(nas_store_task_lease(st, 1, attempt = 2, "w9", "h1", "", 9000, 7001, err),
                     NAS_OK);
    /* Attempts never go down: an older one is refused and changes nothing. */
    ck_assert_int_eq(nas_store_task_requeue(st, 1, 2, 7002, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_task_lease(st, 1, 1, "w9", "h1", "", 9000, 7003, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "attempt 1 is older than its attempt 2"));
    nas_store_task_info t;
    ck_assert_int_eq(nas_store_task_get(st, 1, &t, err), NAS_OK);
    ck_assert_int_eq(t.state, NAS_STORE_TASK_QUEUED);
    ck_assert_int_eq(t.attempt, 2);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_lease_next) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t a = add_task(st, 1, NAS_STORE_STAGE_SEARCH);
    int64_t b = add_task(st, 2, NAS_STORE_STAGE_FINAL);
    int64_t c = add_task(st, 3, NAS_STORE_STAGE_SEARCH);
    int64_t id = 0;
    int attempt = 0;
    ck_assert_int_eq(
        nas_store_task_lease_next(st, NAS_STORE_STAGE_FINAL, "w1", 100, 1, &id, &attempt, err), 1);
    ck_assert_int_eq(id, b);
    ck_assert_int_eq(attempt, 1);
    ck_assert_int_eq(
        nas_store_task_lease_next(st, NAS_STORE_STAGE_FINAL, "w1", 100, 1, &id, &attempt, err), 0);
    ck_assert_int_eq(
        nas_store_task_lease_next(st, NAS_STORE_STAGE_ANY, "w2", 100, 1, &id, &attempt, err), 1);
    ck_assert_int_eq(id, a); /* oldest first */
    nas_store_task_info t;
    ck_assert_int_eq(nas_store_task_get(st, a, &t, err), NAS_OK);
    ck_assert_str_eq(t.worker, "w2");
    ck_assert_int_eq(t.lease_expiry_ms, 100);
    ck_assert_int_eq(
        nas_store_task_lease_next(st, NAS_STORE_STAGE_SEARCH, "w3", 100, 1, &id, &attempt, err), 1);
    ck_assert_int_eq(id, c);
    ck_assert_int_eq(
        nas_store_task_lease_next(st, NAS_STORE_STAGE_ANY, "w3", 100, 1, &id, &attempt, err), 0);
    ck_assert_int_eq(
        nas_store_task_lease_next(st, NAS_STORE_STAGE_ANY, "", 1, 1, &id, &attempt, err),
        NAS_EINVAL);

    /* Atomic at every statement: a failed call leaves the task queued. */
    ck_assert_int_eq(nas_store_task_requeue(st, a, 1, 2, err), NAS_STORE_APPLIED);
    int failures = 0;
    for (int n = 1; n < 20; n++) {
        id = -1;
        nas_store_fail_after(st, n);
        int rc =
            nas_store_task_lease_next(st, NAS_STORE_STAGE_ANY, "w4", 100, 3, &id, &attempt, err);
        nas_store_fail_after(st, 0);
        nas_store_counts k;
        ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &k, err), NAS_OK);
        if (rc < 0) {
            failures++;
            ck_assert_int_eq(k.queued, 1);
            ck_assert_int_eq(id, -1);
        } else {
            ck_assert_int_eq(rc, 1);
            ck_assert_int_eq(id, a);
            ck_assert_int_eq(attempt, 2);
            ck_assert_int_eq(k.queued, 0);
            break;
        }
    }
    ck_assert_int_ge(failures, 3); /* begin, step, step to the end, commit */
    nas_store_close(&st);
}
END_TEST

/* Every allocation of ours may fail: the caller gets NAS_ENOMEM, nothing
 * leaks (LeakSanitizer runs at exit) and outputs stay untouched. */
// ---- reading back ------------------------------------------------------------------------------

START_TEST(test_store_best_and_history_order) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    const double acc[6] = {0.5, 0.9, 0.7, 0.9, 0.1, 0.8};
    const int order[6] = {3, 0, 5, 1, 4, 2}; /* completion order differs from id order */
    int64_t ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = add_task(st, 1000 + (uint64_t)i, NAS_STORE_STAGE_SEARCH);
    int64_t fin = add_task(st, 1000, NAS_STORE_STAGE_FINAL);
    for (int i = 0; i < 6; i++)
        complete(st, ids[order[i]], acc[order[i]]);
    complete(st, fin, 0.99);

    nas_store_record *best = NULL;
    ck_assert_int_eq(nas_store_best(st, NAS_STORE_STAGE_SEARCH, 3, &best, err), 3);
    /* Two at 0.9: the one recorded first (task 4, completed first) leads. */
    ck_assert_int_eq(best[0].task_id, ids[3]);
    ck_assert_int_eq(best[1].task_id, ids[1]);
    ck_assert_int_eq(best[2].task_id, ids[5]);
    ck_assert(best[2].accuracy == 0.8);
    ck_assert_int_eq(best[0].stage, NAS_STORE_STAGE_SEARCH);
    nas_store_records_free(best, 3);
    ck_assert_int_eq(nas_store_best(st, NAS_STORE_STAGE_ANY, 1, &best, err), 1);
    ck_assert_int_eq(best[0].task_id, fin);
    nas_store_records_free(best, 1);
    ck_assert_int_eq(nas_store_best(st, NAS_STORE_STAGE_SEARCH, 0, &best, err), 0);
    nas_store_records_free(best, 0);
    ck_assert_int_eq(nas_store_best(st, NAS_STORE_STAGE_SEARCH, -1, &best, err), NAS_EINVAL);

    nas_store_record *hist = NULL;
    ck_assert_int_eq(nas_store_history(st, NAS_STORE_STAGE_SEARCH, &hist, err), 6);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(hist[i].task_id, ids[order[i]]);
        ck_assert_int_eq(hist[i].seq, i + 1);
    }
    nas_store_records_free(hist, 6);
    ck_assert_int_eq(nas_store_history(st, NAS_STORE_STAGE_FINAL, &hist, err), 1);
    ck_assert_int_eq(hist[0].task_id, fin);
    ck_assert_int_eq(hist[0].stage, NAS_STORE_STAGE_FINAL);
    nas_store_records_free(hist, 1);

    nas_store_counts c;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_SEARCH, &c, err), NAS_OK);
    ck_assert_int_eq(c.done, 6);
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_FINAL, &c, err), NAS_OK);
    ck_assert_int_eq(c.done, 1);
    /* Both tasks of hash 1000 share one architecture row. */
    ck_assert_int_eq(pragma_int(st, "SELECT COUNT(*) FROM architecture"), 6);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_task_list_roundtrip) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    nas_store_new_task t =
        new_task(0x8000000000000001ull, "n=sep5x5:1+max3x3:0", NAS_STORE_STAGE_FINAL);
    t.has_parent = 1;
    t.parent_hash = 0xffffffffffffffffull;
    t.fidelity.epochs = 17;
    t.fidelity.lr = 0.0123456789f;
    t.fidelity.seed = 0xfedcba9876543210ull;
    t.fidelity.time_limit_s = 1.0 / 3.0;
    int64_t id = 0;
    ck_assert_int_eq(nas_store_task_add(st, &t, NULL, 0, 55, &id, err), NAS_OK);
    nas_store_task_info *list = NULL;
    ck_assert_int_eq(nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_FINAL, &list, err),
                     1);
    ck_assert(list[0].arch_hash == 0x8000000000000001ull);
    ck_assert_str_eq(list[0].arch_text, "n=sep5x5:1+max3x3:0");
    ck_assert_int_eq(list[0].has_parent, 1);
    ck_assert(list[0].parent_hash == 0xffffffffffffffffull);
    ck_assert(fid_eq(&list[0].fidelity, &t.fidelity));
    ck_assert_int_eq(list[0].failure_kind, -1);
    ck_assert_int_eq(list[0].created_ms, 55);
    nas_free(list);
    nas_store_arch_info arch;
    ck_assert_int_eq(nas_store_arch_get(st, 0x8000000000000001ull, &arch, err), NAS_OK);
    ck_assert_str_eq(arch.text, "n=sep5x5:1+max3x3:0");
    ck_assert_uint_eq(arch.genome_len, 1);
    ck_assert_int_eq(arch.genome[0], 'g');
    ck_assert_int_eq(arch.params, 1000);
    ck_assert_int_eq(arch.created_ms, 55);
    nas_free(arch.genome);
    ck_assert_int_eq(nas_store_arch_get(st, 12345, &arch, err), NAS_ENOTFOUND);
    ck_assert_ptr_null(arch.genome);
    ck_assert_int_eq(
        nas_store_task_list(st, NAS_STORE_TASK_QUEUED, NAS_STORE_STAGE_SEARCH, &list, err), 0);
    nas_free(list);
    /* Bad tasks are refused before touching the file. */
    t.fidelity.epochs = -3;
    ck_assert_int_eq(nas_store_task_add(st, &t, NULL, 0, 55, &id, err), NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "epochs"));
    t = new_task(1, NULL, NAS_STORE_STAGE_SEARCH);
    ck_assert_int_eq(nas_store_task_add(st, &t, NULL, 0, 55, &id, err), NAS_EINVAL);
    t = new_task(1, "x", 5);
    ck_assert_int_eq(nas_store_task_add(st, &t, NULL, 0, 55, &id, err), NAS_EINVAL);
    nas_store_result r = result_of(1.5);
    ck_assert_int_eq(nas_store_put_result(st, id, 1, &r, NULL, 0, 1, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "1.5"));
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_fidelity_json) {
    char err[NAS_ERR_LEN] = "", buf[1024];
    nas_fidelity f = nas_fidelity_default(), g;
    f.weight_decay = 3e-5f;
    f.seed = 18446744073709551615ull;
    f.nesterov = 0;
    f.width_mult = 0.3f; /* not exact in binary: %.9g must still bring it back bit for bit */
    ck_assert_int_gt(nas_store_fidelity_to_json(&f, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "\"seed\":18446744073709551615"));
    ck_assert_int_eq(nas_store_fidelity_from_json(buf, &g, err), NAS_OK);
    ck_assert(fid_eq(&f, &g));
    ck_assert_int_eq(nas_store_fidelity_to_json(&f, buf, 20), NAS_ERANGE);
    /* Unknown keys are skipped, missing ones default. */
    ck_assert_int_eq(nas_store_fidelity_from_json("{\"epochs\":9,\"future\":1}", &g, err), NAS_OK);
    ck_assert_int_eq(g.epochs, 9);
    ck_assert_int_eq(g.batch, nas_fidelity_default().batch);
    ck_assert_int_eq(nas_store_fidelity_from_json("{\"epochs\":}", &g, err), NAS_EFORMAT);
    ck_assert_int_eq(nas_store_fidelity_from_json("[1]", &g, err), NAS_EFORMAT);
    ck_assert_int_eq(nas_store_fidelity_from_json("{\"a\":1", &g, err), NAS_EFORMAT);
}
END_TEST

// ---- workers, events, weights ------------------------------------------------------------------

START_TEST(test_store_workers_events_weights) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    ck_assert_int_eq(nas_store_worker_seen(st, "w1", "hostA", 2, "0.1", 100, err), NAS_OK);
    ck_assert_int_eq(nas_store_worker_seen(st, "w1", "hostB", 4, "0.2", 200, err), NAS_OK);
    ck_assert_int_eq(nas_store_worker_seen(st, "", "h", 1, "v", 1, err), NAS_EINVAL);
    int64_t id = add_task(st, 5, NAS_STORE_STAGE_SEARCH);
    complete(st, id, 0.5);
    nas_store_worker_info *w = NULL;
    ck_assert_int_eq(nas_store_worker_list(st, &w, err), 1);
    ck_assert_str_eq(w[0].host, "hostB");
    ck_assert_int_eq(w[0].cores, 4);
    ck_assert_int_eq(w[0].first_seen_ms, 100);
    ck_assert_int_eq(w[0].last_seen_ms, 200);
    ck_assert_int_eq(w[0].tasks_done, 1);
    nas_free(w);
    /* tasks_done is counted from the result rows: a second result counts
     * for w1, and a worker with none lists 0 (not missing from the join). */
    ck_assert_int_eq(nas_store_worker_seen(st, "w2", "hostC", 1, "0.2", 250, err), NAS_OK);
    complete(st, add_task(st, 50, NAS_STORE_STAGE_SEARCH), 0.6);
    ck_assert_int_eq(nas_store_worker_list(st, &w, err), 2);
    ck_assert_str_eq(w[0].name, "w1");
    ck_assert_int_eq(w[0].tasks_done, 2);
    ck_assert_str_eq(w[1].name, "w2");
    ck_assert_int_eq(w[1].tasks_done, 0);
    nas_free(w);
    /* A name's first key keeps it; a later key changes nothing. */
    char key[64] = "x";
    ck_assert_int_eq(nas_store_worker_key(st, "w1", key, sizeof key, err), 0);
    ck_assert_int_eq(nas_store_worker_key(st, "nobody", key, sizeof key, err), 0);
    ck_assert_int_eq(nas_store_worker_bind(st, "w1", "alice", err), NAS_OK);
    ck_assert_int_eq(nas_store_worker_bind(st, "w1", "mallory", err), NAS_OK);
    ck_assert_int_eq(nas_store_worker_key(st, "w1", key, sizeof key, err), 1);
    ck_assert_str_eq(key, "alice");
    ck_assert_int_eq(nas_store_worker_key(st, "w2", key, sizeof key, err), 0);

    for (int i = 0; i < 5; i++) {
        char text[32];
        snprintf(text, sizeof text, "event %d; DROP TABLE task; --", i);
        ck_assert_int_eq(nas_store_event_append(st, 300 + i, "note", text, err), NAS_OK);
    }
    nas_store_event_info *ev = NULL;
    ck_assert_int_eq(nas_store_event_list(st, 2, 2, &ev, err), 2);
    ck_assert_int_eq(ev[0].id, 3);
    ck_assert_str_eq(ev[0].text, "event 2; DROP TABLE task; --"); /* bound, never spliced */
    ck_assert_int_eq(ev[1].time_ms, 303);
    nas_free(ev);
    ck_assert_int_eq(nas_store_event_append(st, 1, NULL, "x", err), NAS_EINVAL);

    char path[256];
    int64_t bytes = 0;
    ck_assert_int_eq(nas_store_weights_get(st, 5, path, sizeof path, &bytes, err), NAS_ENOTFOUND);
    ck_assert_int_eq(nas_store_weights_put(st, 5, "w/5.safetensors", 4096, 10, err), NAS_OK);
    ck_assert_int_eq(nas_store_weights_put(st, 5, "w/5b.safetensors", 8192, 11, err), NAS_OK);
    ck_assert_int_eq(nas_store_weights_get(st, 5, path, sizeof path, &bytes, err), NAS_OK);
    ck_assert_str_eq(path, "w/5b.safetensors");
    ck_assert_int_eq(bytes, 8192);
    /* Weights of an architecture the store never saw break the foreign key. */
    ck_assert_int_eq(nas_store_weights_put(st, 6, "w/6", 1, 10, err), NAS_EDB);
    ck_assert_int_eq(nas_store_weights_drop(st, 5, err), NAS_OK);
    ck_assert_int_eq(nas_store_weights_get(st, 5, path, sizeof path, &bytes, err), NAS_ENOTFOUND);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_record_json) {
    float curve[2] = {0.5f, 0.75f};
    nas_store_record r = {.task_id = 3,
                          .seq = 1,
                          .arch_hash = 0xff,
                          .stage = 0,
                          .attempt = 2,
                          .accuracy = 0.5,
                          .loss = NAN,
                          .test_accuracy = NAN,
                          .curve = curve,
                          .n_curve = 2,
                          .params = 10,
                          .macs = 20,
                          .seconds = 1.5,
                          .finished_ms = 4000};
    snprintf(r.arch_text, sizeof r.arch_text, "n=id:0+id:1");
    snprintf(r.worker, sizeof r.worker, "w\"1\\\n");
    char buf[512];
    int n = nas_store_record_to_json(&r, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf, "{\"task\":3,\"seq\":1,\"arch\":\"00000000000000ff\",\"text\":"
                          "\"n=id:0+id:1\",\"stage\":\"search\",\"attempt\":2,\"accuracy\":0.5,"
                          "\"loss\":null,\"test_accuracy\":null,\"curve\":[0.5,0.75],"
                          "\"params\":10,\"macs\":20,\"seconds\":1.5,"
                          "\"worker\":\"w\\\"1\\\\\\u000a\",\"finished_ms\":4000}");
    ck_assert_int_eq((int)strlen(buf), n);
    ck_assert_int_eq(nas_store_record_to_json(&r, buf, (size_t)n), NAS_ERANGE);
    ck_assert_int_eq(nas_store_record_to_json(&r, buf, (size_t)n + 1), n);

    /* Python's json module agrees it is JSON, on a record read back from a store. */
    char err[NAS_ERR_LEN] = "", path[4096], cmd[8192], out[256];
    nas_store *st = open_bound(db_path);
    complete(st, add_task(st, 0xfedcba9876543210ull, NAS_STORE_STAGE_SEARCH), 0.25);
    nas_store_record *recs = NULL;
    ck_assert_int_eq(nas_store_history(st, NAS_STORE_STAGE_ANY, &recs, err), 1);
    n = nas_store_record_to_json(&recs[0], buf, sizeof buf);
    nas_store_records_free(recs, 1);
    nas_store_close(&st);
    ck_assert_int_gt(n, 0);
    nas_path_join(path, sizeof path, tmp, "r.json");
    ck_assert_int_eq(nas_write_file(path, buf, (size_t)n, 0), 0);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); "
             "print(r[\"arch\"], r[\"accuracy\"], r[\"curve\"][2])' %s",
             path);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_str_eq(out, "fedcba9876543210 0.25 0.75\n");
}
END_TEST

/* docs/SCHEMA.md names every column of every table, under the table's own
 * heading ("### `task`"), so the documentation cannot drift from the schema. */
START_TEST(test_store_schema_documented) {
    const char *src = getenv("NAS_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    char path[4096], err[NAS_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/docs/SCHEMA.md", src);
    size_t len = 0;
    char *doc = nas_read_file(path, &len);
    ck_assert_ptr_nonnull(doc);
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, ":memory:", err), NAS_OK);
    sqlite3_stmt *tables = NULL, *cols = NULL;
    ck_assert_int_eq(
        sqlite3_prepare_v2(st->db,
                           "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') "
                           "AND name NOT LIKE 'sqlite_%' ORDER BY name",
                           -1, &tables, NULL),
        SQLITE_OK);
    int n_tables = 0;
    while (sqlite3_step(tables) == SQLITE_ROW) {
        const char *table = (const char *)sqlite3_column_text(tables, 0);
        char heading[96];
        snprintf(heading, sizeof heading, "### `%s`", table);
        const char *sec = strstr(doc, heading);
        ck_assert_msg(sec != NULL, "SCHEMA.md has no section for table %s", table);
        const char *end = strstr(sec + 4, "\n##");
        size_t sec_len = end ? (size_t)(end - sec) : strlen(sec);
        ck_assert_int_eq(
            sqlite3_prepare_v2(st->db, "SELECT name FROM pragma_table_info(?1)", -1, &cols, NULL),
            SQLITE_OK);
        sqlite3_bind_text(cols, 1, table, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(cols) == SQLITE_ROW) {
            char want[96];
            snprintf(want, sizeof want, "`%s`", (const char *)sqlite3_column_text(cols, 0));
            const char *hit = strstr(sec, want);
            ck_assert_msg(hit && (size_t)(hit - sec) < sec_len, "SCHEMA.md: %s.%s undocumented",
                          table, want);
        }
        sqlite3_finalize(cols);
        n_tables++;
    }
    sqlite3_finalize(tables);
    ck_assert_int_eq(n_tables, 9);
    nas_store_close(&st);
    free(doc);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_store_create_and_reopen);
    tcase_add_test(tc, test_store_refuses_different_config);
    tcase_add_test(tc, test_store_refuses_future_version);
    tcase_add_test(tc, test_store_migrates_v1_to_v2);
    tcase_add_test(tc, test_store_migrates_release_1);
    tcase_add_test(tc, test_store_refuses_foreign_files);
    tcase_add_test(tc, test_store_result_once);
    tcase_add_test(tc, test_store_add_already_leased);
    tcase_add_test(tc, test_store_first_result_wins);
    tcase_add_test(tc, test_store_failure_after_max_attempts);
    tcase_add_test(tc, test_store_requeue_on_resume);
    tcase_add_test(tc, test_store_lease_next);
    tcase_add_test(tc, test_store_best_and_history_order);
    tcase_add_test(tc, test_store_task_list_roundtrip);
    tcase_add_test(tc, test_store_fidelity_json);
    tcase_add_test(tc, test_store_workers_events_weights);
    tcase_add_test(tc, test_store_record_json);
    tcase_add_test(tc, test_store_schema_documented);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
