/*
 * store_internal.h - what the store's .c files share with each other (and
 * with tests/test_store.c), but not with the rest of the master.
 *
 * The store is split by concern: store.c opens the file, migrates the
 * schema and caches statements; store_schema.c holds the schema's SQL and
 * its migrations; store_batch.c runs transactions, group commit and the
 * strategy's history rows; store_task.c holds the task life cycle (add,
 * lease, result, failure); store_query.c reads things back and keeps
 * workers, events and the weights index; store_scan.c reads every result
 * lightly for the figures that summarize a history.
 */
#ifndef NAS_STORE_INTERNAL_H
#define NAS_STORE_INTERNAL_H

#include "master/store.h"

#include <sqlite3.h>

/* Every statement the store runs, prepared on first use and kept. */
enum nas__stmt {
    NAS__ST_CAMPAIGN_GET,
    NAS__ST_CAMPAIGN_INSERT,
    NAS__ST_CAMPAIGN_SET_STATE,
    NAS__ST_CAMPAIGN_REBIND,
    NAS__ST_CAMPAIGN_SET_RAN,
    NAS__ST_TASK_RETRY_FAILED,
    NAS__ST_STRATEGY_UPSERT,
    NAS__ST_STRATEGY_GET,
    NAS__ST_ARCH_UPSERT,
    NAS__ST_ARCH_GET,
    NAS__ST_TASK_INSERT,
    NAS__ST_TASK_STATE,
    NAS__ST_TASK_LEASE,
    NAS__ST_TASK_LEASE_NEXT,
    NAS__ST_TASK_EXTEND,
    NAS__ST_TASK_REQUEUE,
    NAS__ST_TASK_REQUEUE_ALL,
    NAS__ST_TASK_DONE,
    NAS__ST_TASK_RETRY,
    NAS__ST_TASK_FAIL,
    NAS__ST_RESULT_MAX,
    NAS__ST_DATA_VERSION,
    NAS__ST_FIDELITY_PUT,
    NAS__ST_FIDELITY_GET,
    NAS__ST_TASK_LIST,
    NAS__ST_TASK_GET,
    NAS__ST_TASK_COUNTS,
    NAS__ST_BEST,
    NAS__ST_HISTORY,
    NAS__ST_RESULT_GET,
    NAS__ST_WORKER_UPSERT,
    NAS__ST_WORKER_LIST,
    NAS__ST_WORKER_BIND,
    NAS__ST_WORKER_KEY,
    NAS__ST_EVENT_INSERT,
    NAS__ST_EVENT_LIST,
    NAS__ST_EVENT_HALT,
    NAS__ST_WEIGHTS_PUT,
    NAS__ST_WEIGHTS_GET,
    NAS__ST_WEIGHTS_DROP,
    NAS__ST_BEGIN,
    NAS__ST_COMMIT,
    NAS__ST_SAVEPOINT,
    NAS__ST_RELEASE,
    NAS__ST_TASK_OBSERVED,
    NAS__ST_PROPOSALS,
    NAS__ST_OBSERVATIONS,
    NAS__ST_RESULT_SCAN,
    NAS__ST_COUNT,
};

struct nas_store {
    sqlite3 *db;
    char *path;
    int readonly;
    int lock_fd;          /* STORE.lock held by nas_store_open_exclusive, or -1 (store_lock.c) */
    int fail_after;       /* fault injection: steps left before one fails; 0 = off */
    int batch;            /* 1 between nas_store_batch_begin and its commit or abort */
    int batch_open;       /* 1 once the batch's SQLite transaction began (at its first statement) */
    int in_call;          /* 1 while a call's savepoint is open inside the batch */
    int whole;            /* the batch takes no savepoints (nas_store_batch_begin_whole) */
    int poisoned;         /* whole batch: a call failed after writing; only abort is left */
    int64_t call_changes; /* whole batch: sqlite3_total_changes64() at the call's begin */
    sqlite3_stmt *stmt[NAS__ST_COUNT];
    /* The last fidelity a task was added with and its JSON: a campaign adds
     * thousands of tasks at one fidelity, and formatting its twenty fields
     * (floats at round-trip precision) cost more than the INSERT. */
    int fid_cached;
    nas_fidelity fid_last;
    char fid_json[1024];
    /* Its row in the fidelity table (schema v3), 0 = not known: looked up
     * (and added if new) at the next task.  Forgotten when the fidelity
     * changes, and when a rollback undid the row this handle added
     * (fid_pending). */
    int64_t fid_id;
    int fid_pending;
    /* The next result number (task.result_id, the order of completion),
     * kept here so that a result needs no max() query: 0 = not known, read
     * again.  It is forgotten when a transaction that wrote results rolls
     * back (results_pending) or another connection committed since it was
     * read (data_version, checked once per transaction: seq_checked). */
    int64_t result_next;
    int64_t data_version;
    int results_pending;
    int seq_checked;
    nas_store_commit_stats commits; /* store_batch.c: every COMMIT's time */
};

/* A schema migration: the SQL that takes user_version from index i to i+1. */
typedef struct nas__store_migration {
    const char *sql;
    /* Optional step run after `sql` in the same transaction, for what SQL
     * text alone cannot say (e.g. bumping schema_version to its value + 1). */
    int (*fn)(nas_store *st, char *err);
} nas__store_migration;

/* nas_store_open() with an explicit migration list, so tests can play a
 * future binary that knows a v2 against a v1 file. */
int nas__store_open_with(nas_store **out, const char *path, int readonly,
                         const nas__store_migration *migrations, int n_migrations, char *err);

/* The migrations this binary knows (NAS_STORE_SCHEMA_VERSION of them). */
const nas__store_migration *nas__store_migrations(int *n);

/* The cached statement `which`, reset and with its bindings cleared; NULL
 * with err set if it cannot be prepared. */
sqlite3_stmt *nas__store_stmt(nas_store *st, int which, char *err);

/* sqlite3_step() with fault injection; returns the SQLite code. */
int nas__store_step(nas_store *st, sqlite3_stmt *s);

/* Turn an SQLite code into a nas_err with a message naming the store file
 * and what was being done. */
int nas__store_fail(nas_store *st, int rc, const char *what, char *err);

/* store_lock.c: after sqlite3_open_v2 or a first statement failed with a
 * file-level error, say which of the usual causes it was (folder missing,
 * not writable, a read-only copy without its -wal); NAS_OK if none. */
int nas__store_diagnose(const char *path, int readonly, char *err);

/* STORE.lock beside the store, into buf. */
void nas__store_lock_path(const char *path, char *buf, size_t cap);

/* Take the master's exclusive lock on STORE.lock (*fd_out holds it until
 * closed); NAS_EEXIST naming the live holder when another process has it. */
int nas__store_lock_take(const char *path, int *fd_out, char *err);

/* Transactions: BEGIN IMMEDIATE takes the write lock up front, so two
 * writers never deadlock upgrading a read lock. */
int nas__store_begin(nas_store *st, char *err);
int nas__store_commit(nas_store *st, char *err);
void nas__store_rollback(nas_store *st);

/* Begin a batch's SQLite transaction if it has not begun yet (the first
 * statement of a batch does this); NAS_EIO if SQLite rolled it back. */
int nas__store_batch_open(nas_store *st, char *err);

/* Write the strategy blob (inside the caller's transaction). */
int nas__store_strategy_write(nas_store *st, const void *blob, size_t len, int64_t now_ms,
                              char *err);

/* Step a statement that returns no row; NAS_OK or the mapped error. */
int nas__store_exec_stmt(nas_store *st, sqlite3_stmt *s, const char *what, char *err);

/* Bind helpers: NULL text binds SQL NULL. */
void nas__bind_text(sqlite3_stmt *s, int i, const char *v);
/* The same without SQLite's copy, for a statement stepped and reset
 * before `v` goes away (nas__store_exec_stmt); the binding is cleared at
 * the statement's next use, before anything could read it again. */
void nas__bind_text_static(sqlite3_stmt *s, int i, const char *v);
void nas__bind_u64(sqlite3_stmt *s, int i, uint64_t v);
uint64_t nas__column_u64(sqlite3_stmt *s, int i);
/* Copy a text column into buf (cap bytes, always NUL-terminated). */
void nas__column_copy(sqlite3_stmt *s, int i, char *buf, size_t cap);

#endif
