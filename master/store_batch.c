/*
 * store_batch.c - group commit and the strategy's history in the store.
 *
 * Transactions: every store call that changes more than one row runs in
 * nas__store_begin() ... nas__store_commit(): BEGIN IMMEDIATE outside a
 * batch, a savepoint inside one.
 *
 * Group commit: the master's loop reads every message waiting on its
 * control socket (up to a bound) and handles them inside one SQLite
 * transaction, so a thousand results cost one WAL append and one commit
 * instead of a thousand.  Each store call inside the batch is a savepoint
 * (nas__store_begin below), so a refused call still changes nothing;
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

#include "common/clock.h"
#include "common/err.h"

#include <sqlite3.h>
#include <string.h>

// ---- transactions ------------------------------------------------------------------------------

/* Run one of the cached transaction-control statements.  They go through
 * the same fault injection as store.c's exec_sql(), and are prepared once
 * because a group-committed batch runs three of them per call (parsing
 * "SAVEPOINT" anew each time cost more than the INSERT it protects). */
static int exec_ctl(nas_store *st, int which, const char *what, char *err) {
    if (st->fail_after > 0 && --st->fail_after == 0)
        return nas__store_fail(st, SQLITE_IOERR, what, err);
    sqlite3_stmt *s = nas__store_stmt(st, which, err);
    if (!s) return NAS_EDB;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return nas__store_fail(st, rc, what, err);
    return NAS_OK;
}

/* A batch's transaction begins at its first statement, so a burst that
 * only carried heartbeats (or a timer that found nothing to do) costs no
 * transaction at all. */
int nas__store_batch_open(nas_store *st, char *err) {
    if (st->batch_open) {
        if (sqlite3_get_autocommit(st->db))
            return nas_set_err(err, NAS_EIO, "store %s: the group transaction was rolled back",
                               st->path);
        return NAS_OK;
    }
    st->batch_open = 1; /* first: exec_ctl's own statement must not recurse here */
    int rc = exec_ctl(st, NAS__ST_BEGIN, "begin group transaction", err);
    if (rc != NAS_OK) st->batch_open = 0;
    return rc;
}

/* Outside a batch every call is its own transaction.  Inside one (see
 * nas_store_batch_begin) a call is a savepoint of the batch's transaction:
 * it still applies all or nothing, but becomes durable only when the batch
 * commits.  SQLite rolls a whole transaction back by itself after some
 * errors (full disk, I/O); a call that finds the batch gone refuses to run
 * in autocommit mode, which would make it durable on its own. */
int nas__store_begin(nas_store *st, char *err) {
    if (!st->batch) return exec_ctl(st, NAS__ST_BEGIN, "begin transaction", err);
    int rc = nas__store_batch_open(st, err);
    if (rc != NAS_OK) return rc;
    if (st->whole) {
        /* No savepoint: remember the change count instead, so that a
         * rollback can tell whether this call wrote anything (below). */
        st->call_changes = sqlite3_total_changes64(st->db);
        st->in_call = 1;
        return NAS_OK;
    }
    rc = exec_ctl(st, NAS__ST_SAVEPOINT, "begin savepoint", err);
    if (rc == NAS_OK) st->in_call = 1;
    return rc;
}

const double nas_store_commit_bounds_s[NAS_STORE_COMMIT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};

static void count_commit(nas_store_commit_stats *c, double s) {
    c->count++;
    c->sum_s += s;
    if (s > c->max_s) c->max_s = s;
    for (int i = NAS_STORE_COMMIT_BUCKETS - 1; i >= 0 && s <= nas_store_commit_bounds_s[i]; i--)
        c->le[i]++;
}

void nas_store_commit_stats_get(const nas_store *st, nas_store_commit_stats *out) {
    *out = st->commits;
}

int nas__store_commit(nas_store *st, char *err) {
    int rc;
    if (st->batch && st->whole) {
        st->in_call = 0;
        return NAS_OK;
    }
    if (st->batch) {
        rc = exec_ctl(st, NAS__ST_RELEASE, "release savepoint", err);
        if (rc == NAS_OK) st->in_call = 0;
    } else {
        int64_t t0 = nas_now_ns();
        rc = exec_ctl(st, NAS__ST_COMMIT, "commit", err);
        if (rc == NAS_OK) {
            count_commit(&st->commits, (double)(nas_now_ns() - t0) / 1e9);
            st->results_pending = st->seq_checked = st->fid_pending = 0;
        }
    }
    if (rc != NAS_OK) nas__store_rollback(st);
    return rc;
}

/* A rollback may undo result numbers handed out from st->result_next, or
 * the fidelity row st->fid_id names; the next call then reads them back
 * from the file. */
static void forget_result_seq(nas_store *st) {
    if (st->results_pending) st->result_next = 0;
    if (st->fid_pending) st->fid_id = 0;
    st->results_pending = st->seq_checked = st->fid_pending = 0;
}

void nas__store_rollback(nas_store *st) {
    /* A whole batch undoes nothing here (see below); anything else does. */
    if (!(st->batch && st->whole)) forget_result_seq(st);
    /* SQLite already rolled back by itself after some errors (full disk,
     * I/O); a second ROLLBACK would only fail, so ask first. */
    if (sqlite3_get_autocommit(st->db)) {
        st->in_call = 0;
        return;
    }
    if (st->batch && st->whole) {
        /* Without a savepoint this call cannot be undone alone.  A call
         * refused before it wrote (a duplicate, a stale attempt, a bad
         * argument) changed nothing and leaves the batch as it was; one
         * that failed after writing poisons it: the commit will refuse and
         * roll back everything, so the partial call never becomes durable. */
        if (st->in_call && sqlite3_total_changes64(st->db) != st->call_changes) st->poisoned = 1;
        st->in_call = 0;
        return;
    }
    if (st->batch) {
        /* Undo this call only; the batch's earlier calls stay. */
        if (st->in_call) {
            sqlite3_exec(st->db, "ROLLBACK TO nas_call; RELEASE nas_call", NULL, NULL, NULL);
            st->in_call = 0;
        }
        return;
    }
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

// ---- group commit ------------------------------------------------------------------------------

/* Nothing is sent to SQLite yet: the transaction begins at the batch's
 * first statement (nas__store_batch_open), so an empty batch is free. */
static int batch_begin(nas_store *st, int whole, char *err) {
    if (st->batch)
        return nas_set_err(err, NAS_ESTATE, "store %s: a batch is already open", st->path);
    st->batch = 1;
    st->batch_open = 0;
    st->in_call = 0;
    st->whole = whole;
    st->poisoned = 0;
    return NAS_OK;
}

int nas_store_batch_begin(nas_store *st, char *err) {
    return batch_begin(st, 0, err);
}

/* The savepoint pair per call was 3-5 % of the master's instructions per
 * task; the campaign gives up the whole batch on any store error anyway. */
int nas_store_batch_begin_whole(nas_store *st, char *err) {
    return batch_begin(st, 1, err);
}

/* The batch flag is cleared first, so that nas__store_commit() runs a real
 * COMMIT, and its failure path a real ROLLBACK of everything. */
int nas_store_batch_commit(nas_store *st, char *err) {
    if (!st->batch) return nas_set_err(err, NAS_ESTATE, "store %s: no batch is open", st->path);
    int opened = st->batch_open, poisoned = st->poisoned;
    st->batch = st->batch_open = 0;
    st->in_call = st->whole = st->poisoned = 0;
    if (poisoned) {
        /* opened is 1: a call wrote before it failed. */
        nas__store_rollback(st);
        return nas_set_err(err, NAS_EIO,
                           "store %s: a call of the batch failed after writing; the whole "
                           "batch was rolled back",
                           st->path);
    }
    if (!opened) return NAS_OK; /* no statement ran: nothing to commit */
    if (sqlite3_get_autocommit(st->db)) {
        forget_result_seq(st);
        return nas_set_err(err, NAS_EIO,
                           "store %s: the group transaction was rolled back by an earlier error",
                           st->path);
    }
    return nas__store_commit(st, err);
}

void nas_store_batch_abort(nas_store *st) {
    if (!st || !st->batch) return;
    int opened = st->batch_open;
    st->batch = st->batch_open = 0;
    st->in_call = st->whole = st->poisoned = 0;
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
