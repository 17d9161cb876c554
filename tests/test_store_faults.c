/*
 * test_store_faults.c - the store when things go wrong: every statement of
 * a state change failed in turn (atomicity), a constraint failing half-way,
 * a full disk, a read-only handle, a second writer and a reader alongside
 * the writer (WAL), allocation failures, a campaign killed after each store
 * call and resumed, and the integrity checker finding planted damage.
 */
#include "tests/store_fixtures.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

// ---- atomicity ---------------------------------------------------------------------------------

/* Fail each statement of put_result in turn: the file must show either
 * nothing of the call or all of it. */
START_TEST(test_store_put_result_atomic) {
    char err[NAS_ERR_LEN] = "";
    int failures = 0;
    for (int n = 1; n < 50; n++) {
        nas_store *st = NULL;
        ck_assert_int_eq(nas_store_open(&st, ":memory:", err), NAS_OK);
        nas_store_campaign c = campaign_spec(1, "x: 1\n");
        ck_assert_int_eq(nas_store_campaign_bind(st, &c, 1, NULL, err), NAS_OK);
        ck_assert_int_eq(nas_store_worker_seen(st, "w1", "h", 2, "0.1", 1, err), NAS_OK);
        ck_assert_int_eq(nas_store_strategy_save(st, "old", 3, 1, err), NAS_OK);
        int64_t id = add_task(st, 5, NAS_STORE_STAGE_SEARCH);
        int attempt = 0;
        ck_assert_int_eq(nas_store_task_lease(st, id, attempt = 1, "w1", "h1", "", 10, 2, err),
                         NAS_OK);

        nas_store_result r = result_of(0.6);
        nas_store_fail_after(st, n);
        int rc = nas_store_put_result(st, id, attempt, &r, "new", 3, 5, err);
        nas_store_fail_after(st, 0);
        nas_store_counts k;
        ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &k, err), NAS_OK);
        uint8_t *blob = NULL;
        size_t len = 0;
        int64_t seq = 0;
        ck_assert_int_eq(nas_store_strategy_load(st, &blob, &len, &seq, err), NAS_OK);
        nas_store_worker_info *w = NULL;
        ck_assert_int_eq(nas_store_worker_list(st, &w, err), 1);
        if (rc < 0) {
            failures++;
            ck_assert_int_eq(rc, NAS_EIO);
            ck_assert_int_eq(k.leased, 1);
            ck_assert_int_eq(k.done, 0);
            ck_assert_int_eq(memcmp(blob, "old", 3), 0);
            ck_assert_int_eq(seq, 1);
            ck_assert_int_eq(w[0].tasks_done, 0);
            ck_assert_int_eq(pragma_int(st, "SELECT COUNT(*) FROM result"), 0);
        } else {
            ck_assert_int_eq(rc, NAS_STORE_APPLIED);
            ck_assert_int_eq(k.done, 1);
            ck_assert_int_eq(memcmp(blob, "new", 3), 0);
            ck_assert_int_eq(seq, 2);
            ck_assert_int_eq(w[0].tasks_done, 1);
        }
        nas_free(blob);
        nas_free(w);
        ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
        nas_store_close(&st);
        if (rc >= 0) break;
    }
    /* begin, mark done (its WHERE decides), insert result, write state,
     * commit; the worker's tasks_done is counted from the result rows */
    ck_assert_int_ge(failures, 5);
}
END_TEST

START_TEST(test_store_task_add_atomic) {
    char err[NAS_ERR_LEN] = "";
    int failures = 0;
    nas_store *st = open_bound(db_path);
    for (int n = 1; n < 50; n++) {
        nas_store_new_task t = new_task(77, "n=id:0+id:1", NAS_STORE_STAGE_SEARCH);
        nas_store_fail_after(st, n);
        int64_t id = 0;
        int rc = nas_store_task_add(st, &t, "blob", 4, 10, &id, err);
        nas_store_fail_after(st, 0);
        int archs = pragma_int(st, "SELECT COUNT(*) FROM architecture");
        int tasks = pragma_int(st, "SELECT COUNT(*) FROM task");
        int states = pragma_int(st, "SELECT COUNT(*) FROM strategy_state");
        if (rc < 0) {
            failures++;
            ck_assert_int_eq(archs + tasks + states, 0);
            ck_assert_ptr_nonnull(strstr(err, db_path));
        } else {
            ck_assert_int_eq(archs + tasks + states, 3);
            break;
        }
    }
    ck_assert_int_ge(failures, 5);
    nas_store_close(&st);
}
END_TEST

/* A real constraint failure half-way (not an injected one) rolls back too:
 * a trigger makes the strategy-state write abort after the result went in. */
START_TEST(test_store_failing_statement_rolls_back) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t id = add_task(st, 5, NAS_STORE_STAGE_SEARCH);
    int attempt = 0;
    ck_assert_int_eq(nas_store_task_lease(st, id, attempt = 1, "w1", "h1", "", 10, 2, err), NAS_OK);
    ck_assert_int_eq(sqlite3_exec(st->db,
                                  "CREATE TRIGGER no_state BEFORE INSERT ON strategy_state "
                                  "BEGIN SELECT RAISE(ABORT, 'state refused'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    nas_store_result r = result_of(0.6);
    ck_assert_int_eq(nas_store_put_result(st, id, attempt, &r, "b", 1, 5, err), NAS_EDB);
    ck_assert_ptr_nonnull(strstr(err, "state refused"));
    ck_assert_int_eq(pragma_int(st, "SELECT COUNT(*) FROM result"), 0);
    nas_store_task_info t;
    ck_assert_int_eq(nas_store_task_get(st, id, &t, err), NAS_OK);
    ck_assert_int_eq(t.state, NAS_STORE_TASK_LEASED);
    /* Without the blob the same result goes through. */
    ck_assert_int_eq(nas_store_put_result(st, id, attempt, &r, NULL, 0, 5, err), NAS_STORE_APPLIED);
    nas_store_close(&st);
}
END_TEST

// ---- failure modes of the file -----------------------------------------------------------------

START_TEST(test_store_read_only_handle) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    add_task(st, 5, NAS_STORE_STAGE_SEARCH);
    nas_store_close(&st);
    ck_assert_msg(nas_store_open_ro(&st, db_path, err) == NAS_OK, "%s", err);
    nas_store_counts c;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &c, err), NAS_OK);
    ck_assert_int_eq(c.queued, 1);
    ck_assert_int_eq(nas_store_event_append(st, 1, "k", "t", err), NAS_EIO);
    ck_assert_ptr_nonnull(strstr(err, "read-only"));
    ck_assert_ptr_nonnull(strstr(err, db_path));
    ck_assert_int_eq(nas_store_task_lease(st, 1, 1, "w", "h1", "", 1, 1, err), NAS_EIO);
    ck_assert_ptr_nonnull(strstr(err, "read-only"));
    nas_store_close(&st);
}
END_TEST

START_TEST(test_store_full_disk) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int pages = pragma_int(st, "PRAGMA page_count");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %d", pages + 2);
    ck_assert_int_eq(sqlite3_exec(st->db, sql, NULL, NULL, NULL), SQLITE_OK);
    char text[400];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    int added = 0, rc = NAS_OK;
    for (int i = 0; i < 1000 && rc == NAS_OK; i++) {
        nas_store_new_task t = new_task(1 + (uint64_t)i, text, NAS_STORE_STAGE_SEARCH);
        rc = nas_store_task_add(st, &t, NULL, 0, 1, NULL, err);
        if (rc == NAS_OK) added++;
    }
    ck_assert_int_eq(rc, NAS_ENOSPC);
    ck_assert_ptr_nonnull(strstr(err, "full"));
    ck_assert_ptr_nonnull(strstr(err, db_path));
    /* What was committed before is all there and nothing half-written. */
    nas_store_counts c;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &c, err), NAS_OK);
    ck_assert_int_eq(c.queued, added);
    ck_assert_int_eq(pragma_int(st, "SELECT COUNT(*) FROM architecture"), added);
    ck_assert_int_gt(added, 0);
    nas_store_close(&st);
}
END_TEST

/* nasctl reads while nas-master writes: WAL gives the reader the last
 * committed snapshot and never blocks either side. */
START_TEST(test_store_reader_while_writing) {
    char err[NAS_ERR_LEN] = "";
    nas_store *writer = open_bound(db_path), *reader = NULL;
    int64_t id = add_task(writer, 5, NAS_STORE_STAGE_SEARCH);
    ck_assert_msg(nas_store_open_ro(&reader, db_path, err) == NAS_OK, "%s", err);

    /* Hold a write transaction open on the writer's connection. */
    ck_assert_int_eq(sqlite3_exec(writer->db,
                                  "BEGIN IMMEDIATE; INSERT INTO event (time_ms, "
                                  "kind, text) VALUES (1, 'k', 'uncommitted')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    nas_store_counts c;
    ck_assert_msg(nas_store_task_counts(reader, NAS_STORE_STAGE_ANY, &c, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(c.queued, 1);
    nas_store_event_info *ev = NULL;
    ck_assert_int_eq(nas_store_event_list(reader, 0, 10, &ev, err), 0);
    nas_free(ev);
    ck_assert_int_eq(sqlite3_exec(writer->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(nas_store_event_list(reader, 0, 10, &ev, err), 1);
    nas_free(ev);

    /* Interleave writes and reads: each read sees every commit before it. */
    complete(writer, id, 0.4);
    for (int i = 0; i < 5; i++) {
        int64_t t = add_task(writer, 10 + (uint64_t)i, NAS_STORE_STAGE_SEARCH);
        complete(writer, t, 0.5 + 0.01 * i);
        nas_store_record *h = NULL;
        ck_assert_int_eq(nas_store_history(reader, NAS_STORE_STAGE_SEARCH, &h, err), i + 2);
        nas_store_records_free(h, i + 2);
    }
    /* A second writer is turned away with a clear "locked" error after the
     * busy timeout rather than corrupting anything; keep the wait short. */
    nas_store *second = NULL;
    ck_assert_int_eq(nas_store_open(&second, db_path, err), NAS_OK);
    sqlite3_busy_timeout(second->db, 50);
    ck_assert_int_eq(sqlite3_exec(writer->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(nas_store_event_append(second, 1, "k", "t", err), NAS_EAGAIN);
    ck_assert_ptr_nonnull(strstr(err, "lock"));
    ck_assert_int_eq(sqlite3_exec(writer->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(nas_store_event_append(second, 1, "k", "t", err), NAS_OK);
    nas_store_close(&second);
    nas_store_close(&reader);
    nas_store_close(&writer);
}
END_TEST

START_TEST(test_store_out_of_memory) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = NULL;
    int failures = 0;
    for (int n = 1; n < 10; n++) {
        nas_alloc_fail_after(n);
        int rc = nas_store_open(&st, db_path, err);
        nas_alloc_fail_reset();
        if (rc == NAS_OK) break;
        failures++;
        ck_assert_int_eq(rc, NAS_ENOMEM);
        ck_assert_ptr_null(st);
    }
    ck_assert_int_ge(failures, 2);
    nas_store_close(&st);
    st = open_bound(db_path);
    for (int i = 0; i < 20; i++)
        complete(st, add_task(st, 10 + (uint64_t)i, 0), 0.5);
    nas_store_task_info *tasks = NULL;
    nas_store_record *recs = NULL;
    int fail_list = 0, fail_hist = 0, rt = NAS_ENOMEM, rh = NAS_ENOMEM;
    for (int n = 1; n < 100 && (rt < 0 || rh < 0); n++) {
        if (rt < 0) {
            nas_alloc_fail_after(n);
            rt = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_ANY, &tasks, err);
            nas_alloc_fail_reset();
            if (rt < 0) {
                fail_list++;
                ck_assert_int_eq(rt, NAS_ENOMEM);
                ck_assert_ptr_null(tasks);
            }
        }
        if (rh < 0) {
            nas_alloc_fail_after(n);
            rh = nas_store_history(st, NAS_STORE_STAGE_ANY, &recs, err);
            nas_alloc_fail_reset();
            if (rh < 0) {
                fail_hist++;
                ck_assert_int_eq(rh, NAS_ENOMEM);
                ck_assert_ptr_null(recs);
            }
        }
    }
    ck_assert_int_eq(rt, 20);
    ck_assert_int_eq(rh, 20);
    ck_assert_int_eq(fail_list, 2);  /* the array grows twice: 16, 32 */
    ck_assert_int_ge(fail_hist, 22); /* two growths and one curve per record */
    nas_free(tasks);
    nas_store_records_free(recs, rh);
    nas_store_close(&st);
}
END_TEST

// ---- resume ------------------------------------------------------------------------------------

/* A toy strategy, as a strategy would be seen by the store: an RNG, a
 * proposal count and what it has observed, saved as a blob. */
typedef struct toy {
    uint64_t rng;
    int proposed, observed;
    double sum;
} toy;

enum { TOY_BUDGET = 12 };

/* Run a one-worker campaign against the store at db_path until the budget
 * is spent, or until `crash_at` store calls have been made, then vanish
 * without closing anything (as a killed process would). */
static void toy_campaign(int crash_at) {
    char err[NAS_ERR_LEN] = "";
    int calls = 0;
#define STEP()                                                                                     \
    do {                                                                                           \
        if (crash_at && ++calls == crash_at) _exit(0);                                             \
    } while (0)
    nas_store *st = open_bound(db_path);
    ck_assert_int_ge(nas_store_task_requeue_all(st, 0, err), 0);
    toy t = {.rng = 42};
    uint8_t *blob = NULL;
    size_t len = 0;
    if (nas_store_strategy_load(st, &blob, &len, NULL, err) == NAS_OK) {
        ck_assert_uint_eq(len, sizeof t);
        memcpy(&t, blob, sizeof t);
        nas_free(blob);
    }
    for (;;) {
        int64_t id = 0;
        int attempt = 0;
        int got =
            nas_store_task_lease_next(st, NAS_STORE_STAGE_ANY, "w1", 1, 1, &id, &attempt, err);
        ck_assert_int_ge(got, 0);
        if (!got) {
            if (t.proposed == TOY_BUDGET) break;
            t.rng = t.rng * 6364136223846793005ull + 1442695040888963407ull;
            t.proposed++;
            char text[64];
            snprintf(text, sizeof text, "toy-%llu", (unsigned long long)(t.rng >> 40));
            nas_store_new_task nt = new_task(t.rng >> 1, text, NAS_STORE_STAGE_SEARCH);
            ck_assert_int_eq(nas_store_task_add(st, &nt, &t, sizeof t, 1, NULL, err), NAS_OK);
            STEP();
            continue;
        }
        STEP();
        nas_store_task_info info;
        ck_assert_int_eq(nas_store_task_get(st, id, &info, err), NAS_OK);
        nas_store_result r = result_of((double)(info.arch_hash % 1000) / 1000.0);
        t.observed++;
        t.sum += r.accuracy;
        ck_assert_int_eq(nas_store_put_result(st, id, attempt, &r, &t, sizeof t, 1, err),
                         NAS_STORE_APPLIED);
        STEP();
    }
#undef STEP
    ck_assert_int_eq(t.observed, TOY_BUDGET);
    nas_store_close(&st);
}

/* The history as (hash, accuracy) pairs in completion order. */
static int toy_history(uint64_t *hashes, double *accs) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db_path, err), NAS_OK);
    nas_store_record *recs = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &recs, err);
    ck_assert_int_eq(n, TOY_BUDGET);
    for (int i = 0; i < n; i++) {
        hashes[i] = recs[i].arch_hash;
        accs[i] = recs[i].accuracy;
    }
    nas_store_records_free(recs, n);
    nas_store_counts c;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &c, err), NAS_OK);
    ck_assert_int_eq(c.done, TOY_BUDGET); /* no task was proposed twice */
    nas_store_close(&st);
    return n;
}

/* ARCHITECTURE.md, The store: with one worker and a fixed seed, a campaign killed at any
 * point and resumed ends with the same history as one never interrupted.
 * The child process is killed (_exit, no close) after each store call in
 * turn; the parent resumes from the file. */
START_TEST(test_store_resume_same_history) {
    uint64_t want_h[TOY_BUDGET], got_h[TOY_BUDGET];
    double want_a[TOY_BUDGET], got_a[TOY_BUDGET];
    toy_campaign(0);
    toy_history(want_h, want_a);
    for (int crash_at = 1; crash_at <= 3 * TOY_BUDGET; crash_at += 5) {
        unlink(db_path);
        char side[4200];
        snprintf(side, sizeof side, "%s-wal", db_path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", db_path);
        unlink(side);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            toy_campaign(crash_at);
            _exit(3); /* crash_at beyond the campaign: should not happen */
        }
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "crash %d: status %d",
                      crash_at, status);
        char err[NAS_ERR_LEN] = "";
        nas_store *ro = NULL;
        ck_assert_int_eq(nas_store_open_ro(&ro, db_path, err), NAS_OK);
        ck_assert_msg(nas_store_check(ro, err) == NAS_OK, "crash %d: %s", crash_at, err);
        nas_store_close(&ro);
        toy_campaign(0);
        toy_history(got_h, got_a);
        for (int i = 0; i < TOY_BUDGET; i++) {
            ck_assert_msg(got_h[i] == want_h[i], "crash at %d: history differs at %d", crash_at, i);
            ck_assert(got_a[i] == want_a[i]);
        }
    }
}
END_TEST

/* A store written by the schema-2 code (tests/data/store_v2_toy.sql: the
 * dump of the file tests/data/make_store_v2.c made with main at 2ceebde,
 * kept as text so that it can be read and diffed: the toy campaign
 * stopped with five results and one task leased) is migrated to v3 when a
 * writer opens it, refused by a reader until then, keeps its results in
 * order, and resumes to the same history as a campaign never interrupted. */
START_TEST(test_store_resumes_v2_file) {
    char err[NAS_ERR_LEN] = "", fixture[4096];
    uint64_t want_h[TOY_BUDGET], got_h[TOY_BUDGET];
    double want_a[TOY_BUDGET], got_a[TOY_BUDGET];
    toy_campaign(0);
    toy_history(want_h, want_a);
    unlink(db_path);
    char side[4200];
    snprintf(side, sizeof side, "%s-wal", db_path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db_path);
    unlink(side);

    const char *src = getenv("NAS_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    nas_path_join(fixture, sizeof fixture, src, "tests/data/store_v2_toy.sql");
    size_t n = 0;
    char *sql = nas_read_file(fixture, &n);
    ck_assert_ptr_nonnull(sql);
    sqlite3 *raw = NULL;
    ck_assert_int_eq(sqlite3_open(db_path, &raw), SQLITE_OK);
    ck_assert_msg(sqlite3_exec(raw, sql, NULL, NULL, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(raw));
    ck_assert_int_eq(sqlite3_close(raw), SQLITE_OK);
    nas_free(sql);

    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db_path, err), NAS_EVERSION);
    ck_assert_msg(nas_store_open(&st, db_path, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(pragma_int(st, "PRAGMA user_version"), NAS_STORE_SCHEMA_VERSION);
    ck_assert_int_eq(pragma_int(st, "SELECT count(*) FROM sqlite_schema WHERE name = 'result' "
                                    "AND type = 'view'"),
                     1);
    ck_assert_int_eq(pragma_int(st, "SELECT count(*) FROM sqlite_sequence WHERE name = 'task'"), 0);
    /* The six tasks' fidelity text became one row they all name. */
    ck_assert_int_eq(pragma_int(st, "SELECT count(*) FROM fidelity"), 1);
    ck_assert_int_eq(pragma_int(st, "SELECT count(*) FROM task WHERE fidelity_id = 1"), 6);
    /* The view keeps v2's result columns, so SQL written for v2 still reads. */
    ck_assert_int_eq(pragma_int(st, "SELECT count(*) FROM result r JOIN task t ON t.id = r.task_id "
                                    "WHERE r.attempt = 1 AND r.params = 1000 AND r.macs = 20000 "
                                    "AND r.worker = 'w1' AND r.curve = '[0.25,0.5,0.75]' "
                                    "AND r.loss = 0.5 AND r.test_accuracy IS NULL "
                                    "AND r.created_ms = t.finished_ms AND r.seconds = 1.5"),
                     5);
    ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
    nas_store_record *recs = NULL;
    ck_assert_int_eq(nas_store_history(st, NAS_STORE_STAGE_SEARCH, &recs, err), 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(recs[i].seq, i + 1);
        ck_assert_int_eq(recs[i].task_id, i + 1);
        ck_assert(recs[i].arch_hash == want_h[i] && recs[i].accuracy == want_a[i]);
        ck_assert_int_eq(recs[i].n_curve, 3);
    }
    nas_store_records_free(recs, 5);
    nas_store_counts k;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &k, err), NAS_OK);
    ck_assert_int_eq(k.done, 5);
    ck_assert_int_eq(k.leased, 1);
    nas_store_close(&st);

    toy_campaign(0);
    toy_history(got_h, got_a);
    for (int i = 0; i < TOY_BUDGET; i++) {
        ck_assert_msg(got_h[i] == want_h[i], "history differs at %d", i);
        ck_assert(got_a[i] == want_a[i]);
    }
    /* New tasks continue the old ids, never reusing one (no AUTOINCREMENT). */
    ck_assert_int_eq(nas_store_open_ro(&st, db_path, err), NAS_OK);
    ck_assert_int_eq(pragma_int(st, "SELECT max(id) FROM task"), TOY_BUDGET);
    ck_assert_int_eq(pragma_int(st, "SELECT max(id) FROM result"), TOY_BUDGET);
    ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
    nas_store_close(&st);
}
END_TEST

/* The checker finds each broken invariant (planted with raw SQL). */
START_TEST(test_store_check_finds_damage) {
    char err[NAS_ERR_LEN] = "";
    static const struct {
        const char *sql, *want;
    } damage[] = {
        {"UPDATE task SET state = 'done' WHERE id = 2", "a done task has no result (task 2)"},
        {"UPDATE task SET state = 'queued' WHERE id = 1",
         "a result belongs to a task that is not done (task 1)"},
        {"UPDATE task SET state = 'leased', worker = NULL, lease_expiry_ms = 5 WHERE id = 2",
         "a leased task lacks its worker, expiry or attempt (task 2)"},
        {"UPDATE task SET lease_expiry_ms = 5 WHERE id = 2",
         "a task that is not leased holds a lease expiry (task 2)"},
        {"UPDATE task SET result_attempt = 7 WHERE id = 1",
         "a result names an attempt that was never leased (task 1)"},
        {"UPDATE task SET state = 'failed' WHERE id = 2", "a failed task has no reason (task 2)"},
        {"UPDATE task SET state = 'done', attempt = 1, result_attempt = 1, accuracy = 0.1, "
         "result_id = (SELECT result_id FROM task WHERE id = 1) WHERE id = 2",
         "two results share one result number (task 1)"},
        {"PRAGMA foreign_keys = OFF; UPDATE task SET arch_hash = 999 WHERE id = 2",
         "table task has a row whose reference points nowhere"},
    };
    for (size_t i = 0; i < NAS_ARRAY_LEN(damage); i++) {
        unlink(db_path);
        nas_store *st = open_bound(db_path);
        complete(st, add_task(st, 1, NAS_STORE_STAGE_SEARCH), 0.5);
        add_task(st, 2, NAS_STORE_STAGE_SEARCH);
        ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
        ck_assert_int_eq(sqlite3_exec(st->db, damage[i].sql, NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_eq(nas_store_check(st, err), NAS_EFORMAT);
        ck_assert_msg(strstr(err, damage[i].want) != NULL, "case %zu: %s", i, err);
        nas_store_close(&st);
    }
}
END_TEST

/* Two processes, as nas-master and nasctl would be: the writer commits
 * results while the reader polls.  Every snapshot the reader sees passes
 * the integrity check, and the history only grows. */
START_TEST(test_store_reader_process_alongside_writer) {
    char err[NAS_ERR_LEN] = "";
    enum { N = 60 };
    nas_store *st = open_bound(db_path);
    nas_store_close(&st);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        nas_store *w = open_bound(db_path);
        for (int i = 0; i < N; i++)
            complete(w, add_task(w, 100 + (uint64_t)i, 0), 0.5);
        nas_store_close(&w);
        _exit(0);
    }
    nas_store *r = NULL;
    ck_assert_msg(nas_store_open_ro(&r, db_path, err) == NAS_OK, "%s", err);
    int last = 0, polls = 0, status = 0;
    for (;;) {
        int done = waitpid(pid, &status, WNOHANG) == pid;
        nas_store_counts c;
        ck_assert_msg(nas_store_task_counts(r, NAS_STORE_STAGE_ANY, &c, err) == NAS_OK, "%s", err);
        ck_assert_int_ge(c.done, last);
        ck_assert_int_le(c.queued + c.leased, 1); /* one worker: at most one task open */
        last = (int)c.done;
        ck_assert_msg(nas_store_check(r, err) == NAS_OK, "poll %d: %s", polls, err);
        polls++;
        if (done) break;
    }
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    nas_store_counts c;
    ck_assert_int_eq(nas_store_task_counts(r, NAS_STORE_STAGE_ANY, &c, err), NAS_OK);
    ck_assert_int_eq(c.done, N);
    ck_assert_int_ge(polls, 2);
    nas_store_close(&r);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("store_faults");
    TCase *tc = tcase_create("store_faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_store_put_result_atomic);
    tcase_add_test(tc, test_store_task_add_atomic);
    tcase_add_test(tc, test_store_failing_statement_rolls_back);
    tcase_add_test(tc, test_store_read_only_handle);
    tcase_add_test(tc, test_store_full_disk);
    tcase_add_test(tc, test_store_reader_while_writing);
    tcase_add_test(tc, test_store_out_of_memory);
    tcase_add_test(tc, test_store_resume_same_history);
    tcase_add_test(tc, test_store_resumes_v2_file);
    tcase_add_test(tc, test_store_check_finds_damage);
    tcase_add_test(tc, test_store_reader_process_alongside_writer);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
