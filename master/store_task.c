/*
 * store_task.c - the life of a task in the store:
 *
 *     add -> queued -> lease -> leased -> result  -> done
 *                 ^                   \-> failure -> queued (attempts left)
 *                 |                   \-> failure -> failed (after max_attempts)
 *                 \---- requeue ------/
 *
 * Each arrow is one transaction.  The attempt counter goes up at every
 * lease, so (task id, attempt) names exactly one lease; late messages that
 * carry an older attempt are recognised and dropped, except a result, which
 * is accepted whenever the task has none yet (the first result wins).
 */
#include "master/store_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ---- helpers -----------------------------------------------------------------------------------

static const char *const failure_kinds[] = {"training", "lease-expired"};

/* Read a task's state, attempt and worker (inside the caller's transaction). */
static int task_state(nas_store *st, int64_t id, int *state, int *attempt, char *worker, size_t cap,
                      char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_STATE, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_int64(s, 1, id);
    int step = nas__store_step(st, s);
    if (step == SQLITE_DONE) {
        sqlite3_reset(s);
        return nas_set_err(err, NAS_ENOTFOUND, "store %s: no task %lld", st->path, (long long)id);
    }
    if (step != SQLITE_ROW) {
        sqlite3_reset(s);
        return nas__store_fail(st, step, "read task", err);
    }
    const char *name = (const char *)sqlite3_column_text(s, 0);
    *state = -1;
    for (int i = NAS_STORE_TASK_QUEUED; i <= NAS_STORE_TASK_FAILED; i++)
        if (name && strcmp(name, nas_store_task_state_name(i)) == 0) *state = i;
    *attempt = sqlite3_column_int(s, 1);
    if (worker) nas__column_copy(s, 2, worker, cap);
    sqlite3_reset(s);
    return NAS_OK;
}

/* "[0.5,0.61]" for a curve; malloc'd.
 * A learning curve is written as a JSON array so it can be read from the
 * sqlite3 shell or with json_each(); 18 bytes per value covers "%.9g,". */
static char *curve_to_json(const float *curve, int n) {
    size_t cap = 3 + (size_t)n * 18;
    char *buf = nas_malloc(cap);
    if (!buf) return NULL;
    size_t at = 0;
    buf[at++] = '[';
    /* Only the numbers go through snprintf (a third of this function's
     * cost was formatting the separators and the bracket). */
    for (int i = 0; i < n; i++) {
        if (i) buf[at++] = ',';
        at += (size_t)snprintf(buf + at, cap - at, "%.9g", (double)curve[i]);
    }
    buf[at++] = ']';
    buf[at] = '\0';
    return buf;
}

/* The event log is written inside the caller's transaction, so an event
 * exists exactly when the change it reports happened. */
static int append_event(nas_store *st, int64_t now_ms, const char *kind, const char *text,
                        char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_EVENT_INSERT, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_int64(s, 1, now_ms);
    nas__bind_text(s, 2, kind);
    nas__bind_text(s, 3, text);
    return nas__store_exec_stmt(st, s, "append event", err);
}

// ---- add and lease -----------------------------------------------------------------------------

/* Validate everything before the transaction starts: a bad task must not
 * even take the write lock. */
static int check_new_task(nas_store *st, const nas_store_new_task *t, char *err) {
    if (!t || !t->arch_text || !*t->arch_text)
        return nas_set_err(err, NAS_EINVAL, "store %s: task without architecture text", st->path);
    if (strlen(t->arch_text) >= NAS_STORE_TEXT_MAX)
        return nas_set_err(err, NAS_EINVAL,
                           "store %s: architecture text of %zu bytes is longer "
                           "than %d",
                           st->path, strlen(t->arch_text), NAS_STORE_TEXT_MAX - 1);
    if (t->stage != NAS_STORE_STAGE_SEARCH && t->stage != NAS_STORE_STAGE_FINAL)
        return nas_set_err(err, NAS_EINVAL, "store %s: task stage %d is not search or final",
                           st->path, t->stage);
    if (t->params < 0 || t->macs < 0)
        return nas_set_err(err, NAS_EINVAL, "store %s: negative params or MACs", st->path);
    if (t->lease_worker && (!*t->lease_worker || strlen(t->lease_worker) >= NAS_STORE_NAME_MAX))
        return nas_set_err(err, NAS_EINVAL, "store %s: lease needs a worker name of 1..%d bytes",
                           st->path, NAS_STORE_NAME_MAX - 1);
    return nas_fidelity_validate(&t->fidelity, err);
}

/* The fidelity row of st->fid_json (inside the caller's transaction):
 * added if new, then its id read.  Once per fidelity and handle, so two
 * statements that a campaign runs once or twice. */
static int fidelity_id(nas_store *st, char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_FIDELITY_PUT, err);
    if (!s) return NAS_EDB;
    nas__bind_text_static(s, 1, st->fid_json);
    int rc = nas__store_exec_stmt(st, s, "record fidelity", err);
    if (rc != NAS_OK) return rc;
    int added = sqlite3_changes(st->db) > 0;
    s = nas__store_stmt(st, NAS__ST_FIDELITY_GET, err);
    if (!s) return NAS_EDB;
    nas__bind_text_static(s, 1, st->fid_json);
    int step = nas__store_step(st, s);
    int64_t id = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (step != SQLITE_ROW) return nas__store_fail(st, step, "read fidelity id", err);
    st->fid_id = id;
    /* A row added in this transaction is gone if it rolls back. */
    if (added) st->fid_pending = 1;
    return NAS_OK;
}

/* The architecture row is an upsert (ON CONFLICT DO NOTHING): proposing a
 * genome twice yields two tasks sharing one architecture, which is what
 * the weight index and best-k joins expect. */
int nas_store_task_add(nas_store *st, const nas_store_new_task *t, const void *strategy_blob,
                       size_t blob_len, int64_t now_ms, int64_t *task_id, char *err) {
    int rc = check_new_task(st, t, err);
    if (rc != NAS_OK) return rc;
    /* Bitwise equal fidelities have equal JSON; a false "different" (padding
     * bytes) only costs a reformat. */
    if (!st->fid_cached || memcmp(&st->fid_last, &t->fidelity, sizeof t->fidelity) != 0) {
        rc = nas_store_fidelity_to_json(&t->fidelity, st->fid_json, sizeof st->fid_json);
        NAS_ASSERT(rc > 0); /* the buffer fits every field at full width */
        memcpy(&st->fid_last, &t->fidelity, sizeof t->fidelity);
        st->fid_cached = 1;
        st->fid_id = 0;
    }
    rc = nas__store_begin(st, err);
    if (rc != NAS_OK) return rc;
    if (st->fid_id == 0) {
        rc = fidelity_id(st, err);
        if (rc != NAS_OK) goto fail;
    }

    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_ARCH_UPSERT, err);
    if (!s) goto fail_db;
    nas__bind_u64(s, 1, t->arch_hash);
    nas__bind_text_static(s, 2, t->arch_text);
    if (t->genome && t->genome_len)
        sqlite3_bind_blob64(s, 3, t->genome, t->genome_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, t->params);
    sqlite3_bind_int64(s, 5, t->macs);
    sqlite3_bind_int64(s, 6, now_ms);
    rc = nas__store_exec_stmt(st, s, "record architecture", err);
    if (rc != NAS_OK) goto fail;

    s = nas__store_stmt(st, NAS__ST_TASK_INSERT, err);
    if (!s) goto fail_db;
    nas__bind_u64(s, 1, t->arch_hash);
    nas__bind_text_static(s, 2, nas_store_stage_name(t->stage));
    sqlite3_bind_int64(s, 3, st->fid_id);
    if (t->has_parent) nas__bind_u64(s, 4, t->parent_hash);
    sqlite3_bind_int64(s, 5, now_ms);
    if (t->lease_worker) {
        nas__bind_text_static(s, 6, t->lease_worker);
        sqlite3_bind_int64(s, 7, t->lease_expiry_ms);
        nas__bind_text_static(s, 8, t->lease_host);
        nas__bind_text_static(s, 9, t->lease_key);
    }
    rc = nas__store_exec_stmt(st, s, "add task", err);
    if (rc != NAS_OK) goto fail;
    /* last_insert_rowid is per connection, and we hold the write lock, so
     * this is our row. */
    int64_t id = sqlite3_last_insert_rowid(st->db);

    if (strategy_blob) {
        rc = nas__store_strategy_write(st, strategy_blob, blob_len, now_ms, err);
        if (rc != NAS_OK) goto fail;
    }
    rc = nas__store_commit(st, err);
    if (rc != NAS_OK) return rc;
    if (task_id) *task_id = id;
    return NAS_OK;
fail_db:
    rc = NAS_EDB;
fail:
    nas__store_rollback(st);
    return rc;
}

/* The UPDATE's WHERE clause (state = 'queued') is the whole concurrency
 * control: if it matched nothing, the task state read afterwards says why. */
int nas_store_task_lease(nas_store *st, int64_t task_id, int attempt, const char *worker,
                         const char *host, const char *key, int64_t expiry_ms, int64_t now_ms,
                         char *err) {
    (void)now_ms; /* the lease is defined by its expiry; now is kept for symmetry and logs */
    if (!worker || !*worker || strlen(worker) >= NAS_STORE_NAME_MAX)
        return nas_set_err(err, NAS_EINVAL, "store %s: lease needs a worker name of 1..%d bytes",
                           st->path, NAS_STORE_NAME_MAX - 1);
    if (attempt < 1)
        return nas_set_err(err, NAS_EINVAL, "store %s: attempts are numbered from 1, got %d",
                           st->path, attempt);
    /* The UPDATE is atomic by itself and writes nothing else; the
     * transaction only keeps the explaining read below consistent with it.
     * A group transaction already holds the write lock, so inside one the
     * lease needs no savepoint of its own. */
    int own = !st->batch;
    int rc = own ? nas__store_begin(st, err) : NAS_OK;
    if (rc != NAS_OK) return rc;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_LEASE, err);
    if (!s) {
        rc = NAS_EDB;
        goto fail;
    }
    sqlite3_bind_int64(s, 1, task_id);
    nas__bind_text(s, 2, worker);
    sqlite3_bind_int64(s, 3, expiry_ms);
    sqlite3_bind_int(s, 4, attempt);
    nas__bind_text(s, 5, host);
    nas__bind_text(s, 6, key);
    rc = nas__store_exec_stmt(st, s, "lease task", err);
    if (rc != NAS_OK) goto fail;
    if (sqlite3_changes(st->db) == 0) {
        /* Nothing matched: say whether the state or the attempt was wrong. */
        int state = -1, current = 0;
        rc = task_state(st, task_id, &state, &current, NULL, 0, err);
        if (rc != NAS_OK) goto fail;
        if (state != NAS_STORE_TASK_QUEUED)
            rc = nas_set_err(err, NAS_ESTATE,
                             "store %s: task %lld is %s, only a queued task can be leased",
                             st->path, (long long)task_id, nas_store_task_state_name(state));
        else
            rc = nas_set_err(err, NAS_EINVAL,
                             "store %s: task %lld: attempt %d is older than its attempt %d",
                             st->path, (long long)task_id, attempt, current);
        goto fail;
    }
    return own ? nas__store_commit(st, err) : NAS_OK;
fail:
    if (own) nas__store_rollback(st);
    return rc;
}

int nas_store_task_lease_next(nas_store *st, int stage, const char *worker, int64_t expiry_ms,
                              int64_t now_ms, int64_t *task_id, int *attempt, char *err) {
    (void)now_ms;
    if (!worker || !*worker || strlen(worker) >= NAS_STORE_NAME_MAX)
        return nas_set_err(err, NAS_EINVAL, "store %s: lease needs a worker name of 1..%d bytes",
                           st->path, NAS_STORE_NAME_MAX - 1);
    /* An explicit transaction: RETURNING makes its change at the first
     * step, so without one a failure after it could not be undone. */
    int rc = nas__store_begin(st, err);
    if (rc != NAS_OK) return rc;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_LEASE_NEXT, err);
    if (!s) {
        nas__store_rollback(st);
        return NAS_EDB;
    }
    nas__bind_text(s, 1, worker);
    sqlite3_bind_int64(s, 2, expiry_ms);
    if (stage == NAS_STORE_STAGE_SEARCH || stage == NAS_STORE_STAGE_FINAL)
        sqlite3_bind_text(s, 3, nas_store_stage_name(stage), -1, SQLITE_STATIC);
    int step = nas__store_step(st, s), found = 0;
    int64_t id = 0;
    int att = 0;
    if (step == SQLITE_ROW) {
        found = 1;
        id = sqlite3_column_int64(s, 0);
        att = sqlite3_column_int(s, 1);
        step = nas__store_step(st, s); /* at most one row: LIMIT 1 */
    }
    sqlite3_reset(s);
    if (step != SQLITE_DONE) {
        rc = nas__store_fail(st, step, "lease next task", err);
        nas__store_rollback(st);
        return rc;
    }
    rc = nas__store_commit(st, err);
    if (rc != NAS_OK) return rc;
    if (found && task_id) *task_id = id;
    if (found && attempt) *attempt = att;
    return found;
}

/* Run one "WHERE id AND attempt AND leased" update; STALE if it matched nothing.
 * Extend and requeue both apply only to the live lease; a message about
 * an older attempt changes nothing and is reported as stale. */
static int update_lease(nas_store *st, int which, int64_t task_id, int attempt, int64_t v,
                        const char *what, char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, which, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_int64(s, 1, task_id);
    sqlite3_bind_int(s, 2, attempt);
    if (which == NAS__ST_TASK_EXTEND) sqlite3_bind_int64(s, 3, v);
    int rc = nas__store_exec_stmt(st, s, what, err);
    if (rc != NAS_OK) return rc;
    return sqlite3_changes(st->db) ? NAS_STORE_APPLIED : NAS_STORE_STALE;
}

int nas_store_task_extend(nas_store *st, int64_t task_id, int attempt, int64_t expiry_ms,
                          char *err) {
    /* A single UPDATE is its own transaction. */
    return update_lease(st, NAS__ST_TASK_EXTEND, task_id, attempt, expiry_ms, "extend lease", err);
}

int nas_store_task_requeue(nas_store *st, int64_t task_id, int attempt, int64_t now_ms, char *err) {
    (void)now_ms;
    return update_lease(st, NAS__ST_TASK_REQUEUE, task_id, attempt, 0, "requeue task", err);
}

/* Leases cannot survive the master: the workers that held them talk to the
 * new process from scratch.  One event records how many were returned. */
int nas_store_task_requeue_all(nas_store *st, int64_t now_ms, char *err) {
    int rc = nas__store_begin(st, err);
    if (rc != NAS_OK) return rc;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_REQUEUE_ALL, err);
    if (!s) {
        rc = NAS_EDB;
        goto fail;
    }
    rc = nas__store_exec_stmt(st, s, "requeue leased tasks", err);
    if (rc != NAS_OK) goto fail;
    int n = sqlite3_changes(st->db);
    if (n > 0) {
        char text[96];
        snprintf(text, sizeof text, "%d leased task(s) requeued on resume", n);
        rc = append_event(st, now_ms, "resume", text, err);
        if (rc != NAS_OK) goto fail;
    }
    rc = nas__store_commit(st, err);
    return rc == NAS_OK ? n : rc;
fail:
    nas__store_rollback(st);
    return rc;
}

// ---- results and failures ----------------------------------------------------------------------

/* A result comes from the network; its numbers are checked here as well as
 * by the dispatcher, since a NaN accuracy would poison best-k forever. */
static int check_result(nas_store *st, const nas_store_result *r, char *err) {
    if (!r) return nas_set_err(err, NAS_EINVAL, "store %s: no result given", st->path);
    if (r->observed && r->seq < 0)
        return nas_set_err(err, NAS_EINVAL, "store %s: observation number %lld < 0", st->path,
                           (long long)r->seq);
    if (!(r->accuracy >= 0.0 && r->accuracy <= 1.0))
        return nas_set_err(err, NAS_EINVAL, "store %s: result accuracy %g is not in [0, 1]",
                           st->path, r->accuracy);
    if (!isnan(r->test_accuracy) && !(r->test_accuracy >= 0.0 && r->test_accuracy <= 1.0))
        return nas_set_err(err, NAS_EINVAL, "store %s: result test accuracy %g is not in [0, 1]",
                           st->path, r->test_accuracy);
    if (r->n_curve < 0 || r->n_curve > 100000 || (r->n_curve > 0 && !r->curve))
        return nas_set_err(err, NAS_EINVAL, "store %s: learning curve of %d points is invalid",
                           st->path, r->n_curve);
    if (r->params < 0 || r->macs < 0 || !(r->seconds >= 0.0))
        return nas_set_err(err, NAS_EINVAL, "store %s: negative params, MACs or seconds in result",
                           st->path);
    return NAS_OK;
}

/* Bind a result's numbers to the done-UPDATE (?6..?13).  Loss and test
 * accuracy are NULL when absent or not finite: SQLite has no NaN, and a
 * NULL reads back as NAN in nas_store_record. */
static void bind_result(sqlite3_stmt *s, const nas_store_result *r, const char *curve) {
    sqlite3_bind_double(s, 6, r->accuracy);
    if (isfinite(r->loss)) sqlite3_bind_double(s, 7, r->loss);
    if (!isnan(r->test_accuracy)) sqlite3_bind_double(s, 8, r->test_accuracy);
    nas__bind_text_static(s, 9, curve);
    sqlite3_bind_int64(s, 10, r->params);
    sqlite3_bind_int64(s, 11, r->macs);
    sqlite3_bind_double(s, 12, r->seconds);
    nas__bind_text_static(s, 13, r->worker);
}

/* The result number (order of completion) the next result gets.  Checked
 * against another connection's commits once per transaction; read from
 * the file only when not known (a new handle, a rollback, another writer). */
static int next_result_id(nas_store *st, int64_t *id, char *err) {
    sqlite3_stmt *s;
    if (!st->seq_checked) {
        s = nas__store_stmt(st, NAS__ST_DATA_VERSION, err);
        if (!s) return NAS_EDB;
        int step = nas__store_step(st, s);
        int64_t v = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        sqlite3_reset(s);
        if (step != SQLITE_ROW) return nas__store_fail(st, step, "read data version", err);
        if (v != st->data_version) st->result_next = 0;
        st->data_version = v;
        st->seq_checked = 1;
    }
    if (st->result_next == 0) {
        s = nas__store_stmt(st, NAS__ST_RESULT_MAX, err);
        if (!s) return NAS_EDB;
        int step = nas__store_step(st, s);
        int64_t max = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        sqlite3_reset(s);
        if (step != SQLITE_ROW) return nas__store_fail(st, step, "read last result number", err);
        st->result_next = max + 1;
    }
    *id = st->result_next;
    return NAS_OK;
}

/* Why the done-UPDATE of a result matched no row: no such task, an
 * attempt that was never leased (refused loudly: a confused or forged
 * message), or a task that already has its outcome (a later result is a
 * duplicate, one for a task failed for good is stale). */
static int refused_result(nas_store *st, int64_t task_id, int attempt, char *err) {
    int state = -1, current = 0;
    int rc = task_state(st, task_id, &state, &current, NULL, 0, err);
    if (rc != NAS_OK) return rc;
    if (attempt < 1 || attempt > current)
        return nas_set_err(err, NAS_EINVAL,
                           "store %s: task %lld was never leased as attempt %d "
                           "(attempts so far: %d)",
                           st->path, (long long)task_id, attempt, current);
    if (state == NAS_STORE_TASK_DONE) return NAS_STORE_DUPLICATE;
    if (state == NAS_STORE_TASK_FAILED) return NAS_STORE_STALE;
    return nas_set_err(err, NAS_EDB, "store %s: task %lld (%s) matched no row when done", st->path,
                       (long long)task_id, nas_store_task_state_name(state));
}

/* First result wins: any attempt that was ever leased may deliver it, as
 * long as the task has none yet.  ARCHITECTURE.md, The wire wants exactly-once
 * recording, and a worker presumed dead may simply have been slow. */
int nas_store_put_result(nas_store *st, int64_t task_id, int attempt, const nas_store_result *r,
                         const void *strategy_blob, size_t blob_len, int64_t now_ms, char *err) {
    int rc = check_result(st, r, err);
    if (rc != NAS_OK) return rc;
    rc = nas__store_begin(st, err);
    if (rc != NAS_OK) return rc;
    /* The conditional UPDATE comes first and decides: it matches only a
     * task without an outcome and an attempt that was leased.  Reading the
     * row before it, as this did, cost a statement per result for an
     * answer that is almost always "yes". */
    int64_t result_id = 0;
    rc = next_result_id(st, &result_id, err);
    if (rc != NAS_OK) goto fail;
    char *curve = curve_to_json(r->curve, r->n_curve);
    if (!curve) {
        rc = nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", st->path);
        goto fail;
    }
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_DONE, err);
    if (!s) {
        nas_free(curve);
        goto fail_db;
    }
    sqlite3_bind_int64(s, 1, task_id);
    sqlite3_bind_int64(s, 2, now_ms);
    if (r->observed) sqlite3_bind_int64(s, 3, r->seq);
    sqlite3_bind_int(s, 4, attempt);
    sqlite3_bind_int64(s, 5, result_id);
    bind_result(s, r, curve);
    rc = nas__store_exec_stmt(st, s, "record result", err);
    nas_free(curve);
    if (rc != NAS_OK) goto fail;
    if (sqlite3_changes(st->db) == 0) {
        rc = refused_result(st, task_id, attempt, err);
        goto fail;
    }
    st->result_next++;
    st->results_pending = 1;
    /* A worker's tasks_done is counted from task.result_worker when listed
     * (nas_store_worker_list), so nothing else is written here. */
    if (strategy_blob) {
        rc = nas__store_strategy_write(st, strategy_blob, blob_len, now_ms, err);
        if (rc != NAS_OK) goto fail;
    }
    rc = nas__store_commit(st, err);
    return rc == NAS_OK ? NAS_STORE_APPLIED : rc;
fail_db:
    rc = NAS_EDB;
fail:
    /* Also ends the transaction of a refused result, which wrote nothing. */
    nas__store_rollback(st);
    return rc;
}

/* Move a failed attempt's task on: back to the queue, or failed for good. */
static int apply_failure(nas_store *st, int64_t task_id, int final, int kind, const char *reason,
                         int64_t now_ms, char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, final ? NAS__ST_TASK_FAIL : NAS__ST_TASK_RETRY, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_int64(s, 1, task_id);
    nas__bind_text(s, 2, failure_kinds[kind]);
    nas__bind_text(s, 3, reason);
    if (final) sqlite3_bind_int64(s, 4, now_ms);
    return nas__store_exec_stmt(st, s, "record failure", err);
}

/* Only the live lease may fail a task: a failure report from an attempt
 * that was already superseded (requeued, re-leased) is stale news. */
int nas_store_put_failure(nas_store *st, int64_t task_id, int attempt, int kind, const char *reason,
                          int max_attempts, const void *strategy_blob, size_t blob_len,
                          int64_t now_ms, char *err) {
    if (kind != NAS_STORE_FAIL_TRAINING && kind != NAS_STORE_FAIL_LEASE_EXPIRED)
        return nas_set_err(err, NAS_EINVAL, "store %s: failure kind %d is unknown", st->path, kind);
    if (max_attempts < 1)
        return nas_set_err(err, NAS_EINVAL, "store %s: max_attempts must be >= 1, got %d", st->path,
                           max_attempts);
    char why[NAS_STORE_REASON_MAX];
    /* A reason from the network may be long; the column keeps a bounded
     * copy so one bad worker cannot bloat every row. */
    snprintf(why, sizeof why, "%s", reason && *reason ? reason : "no reason given");
    int rc = nas__store_begin(st, err);
    if (rc != NAS_OK) return rc;
    int state = -1, current = 0;
    char worker[NAS_STORE_NAME_MAX];
    rc = task_state(st, task_id, &state, &current, worker, sizeof worker, err);
    if (rc != NAS_OK) goto fail;
    if (state != NAS_STORE_TASK_LEASED || attempt != current) {
        nas__store_rollback(st);
        return NAS_STORE_STALE;
    }
    /* `current` attempts have now failed; the last one allowed ends it. */
    int final = current >= max_attempts;
    rc = apply_failure(st, task_id, final, kind, why, now_ms, err);
    if (rc != NAS_OK) goto fail;
    char text[NAS_STORE_REASON_MAX + 128];
    snprintf(text, sizeof text, "task %lld attempt %d on %s: %s%s", (long long)task_id, attempt,
             worker, why, final ? " (failed for good)" : " (requeued)");
    rc = append_event(st, now_ms, failure_kinds[kind], text, err);
    if (rc != NAS_OK) goto fail;
    if (final && strategy_blob) {
        rc = nas__store_strategy_write(st, strategy_blob, blob_len, now_ms, err);
        if (rc != NAS_OK) goto fail;
    }
    rc = nas__store_commit(st, err);
    if (rc != NAS_OK) return rc;
    return final ? NAS_STORE_FAILED_FINAL : NAS_STORE_APPLIED;
fail:
    nas__store_rollback(st);
    return rc;
}
