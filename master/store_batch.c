/*
 * store_batch.c - group commit and the strategy's history in the store.
 *
 * Group commit: the master's loop reads every message waiting on its
 * control socket (up to a bound) and handles them inside one SQLite
 * transaction, so a thousand results cost one WAL append and one commit
 * instead of a thousand.  Each store call inside the batch is a savepoint
 * (store.c: nas__store_begin), so a refused call still changes nothing;
 * the batch as a whole becomes durable at nas_store_batch_commit(), and
 * the caller sends the acknowledgements only after it.
 *
 * History: the strategy's state blob holds only its small core
 * (master/strategy.h, format 2); the proposals and observations it used to
 * repeat are rebuilt from the task, architecture and result rows, which are
 * written in the same transactions anyway.  The `observed` column says in
 * which order the strategy saw the outcomes (results and failures
 * interleave, and a result's id alone would not place the failures).
 */
#include "master/store_internal.h"

#include "common/err.h"

#include <string.h>

// ---- group commit ------------------------------------------------------------------------------

/* Nothing is sent to SQLite yet: the transaction begins at the batch's
 * first statement (nas__store_batch_open), so an empty batch is free. */
int nas_store_batch_begin(nas_store *st, char *err) {
    if (st->batch)
        return nas_set_err(err, NAS_ESTATE, "store %s: a batch is already open", st->path);
    st->batch = 1;
    st->batch_open = 0;
    st->in_call = 0;
    return NAS_OK;
}

/* The batch flag is cleared first, so that nas__store_commit() runs a real
 * COMMIT, and its failure path a real ROLLBACK of everything. */
int nas_store_batch_commit(nas_store *st, char *err) {
    if (!st->batch) return nas_set_err(err, NAS_ESTATE, "store %s: no batch is open", st->path);
    int opened = st->batch_open;
    st->batch = st->batch_open = 0;
    st->in_call = 0;
    if (!opened) return NAS_OK; /* no statement ran: nothing to commit */
    if (sqlite3_get_autocommit(st->db))
        return nas_set_err(err, NAS_EIO,
                           "store %s: the group transaction was rolled back by an earlier error",
                           st->path);
    return nas__store_commit(st, err);
}

void nas_store_batch_abort(nas_store *st) {
    if (!st || !st->batch) return;
    int opened = st->batch_open;
    st->batch = st->batch_open = 0;
    st->in_call = 0;
    if (opened) nas__store_rollback(st);
}

int nas_store_in_batch(const nas_store *st) {
    return st && st->batch;
}

// ---- history -----------------------------------------------------------------------------------

/* A single UPDATE: inside a batch it belongs to the batch, outside it is
 * its own transaction.  The unique index refuses a number given twice. */
int nas_store_task_observed(nas_store *st, int64_t task_id, int64_t seq, int ok, char *err) {
    if (seq < 0)
        return nas_set_err(err, NAS_EINVAL, "store %s: observation number %lld < 0", st->path,
                           (long long)seq);
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_OBSERVED, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_int64(s, 1, task_id);
    sqlite3_bind_int64(s, 2, seq);
    sqlite3_bind_int(s, 3, ok != 0);
    int step = nas__store_step(st, s);
    sqlite3_reset(s);
    if (step == SQLITE_CONSTRAINT)
        return nas_set_err(err, NAS_ESTATE,
                           "store %s: observation %lld is already recorded for another task",
                           st->path, (long long)seq);
    if (step != SQLITE_DONE) return nas__store_fail(st, step, "mark task observed", err);
    if (sqlite3_changes(st->db) == 0)
        return nas_set_err(err, NAS_ENOTFOUND, "store %s: no search task %lld to mark observed",
                           st->path, (long long)task_id);
    return NAS_OK;
}

int nas_store_search_each(nas_store *st, int observed, nas_store_search_fn fn, void *ctx,
                          char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, observed ? NAS__ST_OBSERVATIONS : NAS__ST_PROPOSALS, err);
    if (!s) return NAS_EDB;
    int rc = NAS_OK, step;
    while ((step = nas__store_step(st, s)) == SQLITE_ROW) {
        nas_store_search_row row;
        memset(&row, 0, sizeof row);
        row.task_id = sqlite3_column_int64(s, 0);
        row.arch_hash = nas__column_u64(s, 1);
        row.text = (const char *)sqlite3_column_text(s, 2);
        row.has_parent = sqlite3_column_type(s, 3) != SQLITE_NULL;
        row.parent_hash = row.has_parent ? nas__column_u64(s, 3) : 0;
        if (observed) {
            row.seq = sqlite3_column_int64(s, 4);
            row.ok = sqlite3_column_int(s, 5) != 0;
            row.has_result = sqlite3_column_type(s, 6) != SQLITE_NULL;
            row.accuracy = sqlite3_column_double(s, 6);
            row.params = sqlite3_column_int64(s, 7);
            row.macs = sqlite3_column_int64(s, 8);
        }
        if (!row.text) {
            rc = nas_set_err(err, NAS_EFORMAT, "store %s: task %lld has no architecture text",
                             st->path, (long long)row.task_id);
            break;
        }
        rc = fn(ctx, &row, err);
        if (rc < 0) break;
    }
    if (rc >= 0 && step != SQLITE_DONE) rc = nas__store_fail(st, step, "read search history", err);
    sqlite3_reset(s);
    return rc < 0 ? rc : NAS_OK;
}
