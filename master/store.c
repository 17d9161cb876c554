/*
 * store.c - opening the campaign database and migrating it (the schema
 * itself is in store_schema.c), the statement cache, and the campaign and
 * strategy-state rows (transactions are in store_batch.c).
 *
 * The schema is versioned by PRAGMA user_version.  Migration i takes the
 * file from version i to i + 1 and runs in one transaction together with
 * the user_version bump, so a crash mid-migration leaves the old version
 * intact and the next open simply runs it again.  A file whose version is
 * newer than every migration we know was written by a newer nasd and is
 * refused rather than guessed at.
 */
#include "master/store_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

// ---- statements --------------------------------------------------------------------------------

#define TASK_COLS                                                                                  \
    "t.id, t.arch_hash, a.text, t.stage, t.state, t.attempt, t.worker, t.lease_expiry_ms, "        \
    "f.json, t.parent_hash, t.created_ms, t.finished_ms, t.failure_kind, t.failure, "              \
    "t.lease_host, t.lease_key "
/* A result is the result_* columns of its task's row (schema v3). */
#define RECORD_COLS                                                                                \
    "t.id, t.result_id, t.arch_hash, a.text, t.stage, t.result_attempt, t.accuracy, t.loss, "      \
    "t.test_accuracy, t.curve, t.result_params, t.result_macs, t.seconds, t.result_worker, "       \
    "t.finished_ms, t.parent_hash, pa.text "
/* The parent's text comes along so that a child's lineage (what changed,
 * e.g. a morphism) can be shown from the two genomes. */
#define RECORD_FROM                                                                                \
    "FROM task t JOIN architecture a ON a.hash = t.arch_hash "                                     \
    "LEFT JOIN architecture pa ON pa.hash = t.parent_hash "                                        \
    "WHERE t.result_id IS NOT NULL AND (?1 IS NULL OR t.stage = ?1) "

/* Indexed by enum nas__stmt; the order must match it (checked at open). */
static const struct {
    int id;
    const char *sql;
} stmt_sql[NAS__ST_COUNT] = {
    {NAS__ST_CAMPAIGN_GET, "SELECT name, config_text, config_canonical, config_hash, seed, state, "
                           "created_ms, updated_ms, ran_ms FROM campaign WHERE id = 1"},
    {NAS__ST_CAMPAIGN_INSERT,
     "INSERT INTO campaign (id, name, config_text, config_canonical, config_hash, seed, state, "
     "created_ms, updated_ms) VALUES (1, ?1, ?2, ?3, ?4, ?5, 'running', ?6, ?6)"},
    {NAS__ST_CAMPAIGN_SET_STATE, "UPDATE campaign SET state = ?1, updated_ms = ?2 WHERE id = 1"},
    {NAS__ST_CAMPAIGN_REBIND,
     "UPDATE campaign SET config_text = ?1, config_canonical = ?2, config_hash = ?3, "
     "updated_ms = ?4 WHERE id = 1"},
    {NAS__ST_CAMPAIGN_SET_RAN, "UPDATE campaign SET ran_ms = ?1 WHERE id = 1"},
    {NAS__ST_TASK_RETRY_FAILED,
     "UPDATE task SET state = 'queued', attempt = 0, worker = NULL, lease_expiry_ms = NULL, "
     "finished_ms = NULL, failure_kind = NULL, failure = NULL WHERE state = 'failed'"},
    {NAS__ST_STRATEGY_UPSERT,
     "INSERT INTO strategy_state (campaign_id, seq, blob, updated_ms) VALUES (1, 1, ?1, ?2) "
     "ON CONFLICT (campaign_id) DO UPDATE SET seq = seq + 1, blob = excluded.blob, "
     "updated_ms = excluded.updated_ms"},
    {NAS__ST_STRATEGY_GET, "SELECT blob, seq FROM strategy_state WHERE campaign_id = 1"},
    {NAS__ST_ARCH_UPSERT, "INSERT INTO architecture (hash, text, genome, params, macs, created_ms) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (hash) DO NOTHING"},
    {NAS__ST_ARCH_GET,
     "SELECT text, genome, params, macs, created_ms FROM architecture WHERE hash = ?1"},
    /* ?6 NULL: a queued task; a worker name: leased to it (host ?8, key ?9)
     * as attempt 1 until ?7 (proposed and leased in the same batch). */
    {NAS__ST_TASK_INSERT,
     "INSERT INTO task (arch_hash, stage, state, attempt, worker, lease_expiry_ms, fidelity_id, "
     "parent_hash, created_ms, lease_host, lease_key) VALUES (?1, ?2, CASE WHEN ?6 IS NULL THEN "
     "'queued' ELSE 'leased' END, ?6 IS NOT NULL, ?6, ?7, ?3, ?4, ?5, ?8, ?9)"},
    {NAS__ST_TASK_STATE, "SELECT state, attempt, worker FROM task WHERE id = ?1"},
    {NAS__ST_TASK_LEASE, "UPDATE task SET state = 'leased', attempt = ?4, worker = ?2, "
                         "lease_host = ?5, lease_key = ?6, lease_expiry_ms = ?3 "
                         "WHERE id = ?1 AND state = 'queued' AND attempt <= ?4"},
    /* One statement picks and leases the oldest queued task, so two callers
     * can never lease the same one (RETURNING needs SQLite 3.35). */
    {NAS__ST_TASK_LEASE_NEXT,
     "UPDATE task SET state = 'leased', attempt = attempt + 1, worker = ?1, lease_host = NULL, "
     "lease_key = NULL, lease_expiry_ms = ?2 "
     "WHERE id = (SELECT id FROM task WHERE state = 'queued' AND (?3 IS NULL OR stage = ?3) "
     "ORDER BY id LIMIT 1) RETURNING id, attempt"},
    {NAS__ST_TASK_EXTEND, "UPDATE task SET lease_expiry_ms = ?3 "
                          "WHERE id = ?1 AND attempt = ?2 AND state = 'leased'"},
    {NAS__ST_TASK_REQUEUE, "UPDATE task SET state = 'queued', lease_expiry_ms = NULL "
                           "WHERE id = ?1 AND attempt = ?2 AND state = 'leased'"},
    {NAS__ST_TASK_REQUEUE_ALL,
     "UPDATE task SET state = 'queued', lease_expiry_ms = NULL WHERE state = 'leased'"},
    /* ?3: the strategy's observation number when it observed the result
     * (NULL: not observed, the column keeps its value).  The WHERE clause
     * is first-result-wins itself: only a task without an outcome, and only
     * an attempt that was leased (1..attempt), matches; nas_store_put_result
     * reads the row only when nothing matched, to say why.  The result
     * itself goes into the same row (schema v3): one statement per result. */
    {NAS__ST_TASK_DONE, "UPDATE task SET state = 'done', lease_expiry_ms = NULL, "
                        "finished_ms = ?2, observed = coalesce(?3, observed), "
                        "observed_ok = CASE WHEN ?3 IS NULL THEN observed_ok ELSE 1 END, "
                        "result_id = ?5, result_attempt = ?4, accuracy = ?6, loss = ?7, "
                        "test_accuracy = ?8, curve = ?9, result_params = ?10, result_macs = ?11, "
                        "seconds = ?12, result_worker = ?13 "
                        "WHERE id = ?1 AND (state = 'queued' OR state = 'leased') "
                        "AND ?4 >= 1 AND attempt >= ?4"},
    {NAS__ST_TASK_RETRY, "UPDATE task SET state = 'queued', lease_expiry_ms = NULL, "
                         "failure_kind = ?2, failure = ?3 WHERE id = ?1"},
    {NAS__ST_TASK_FAIL, "UPDATE task SET state = 'failed', lease_expiry_ms = NULL, "
                        "failure_kind = ?2, failure = ?3, finished_ms = ?4 WHERE id = ?1"},
    /* The last result's number, read once per handle (and again after a
     * rollback or another connection's write): a full scan, but rare. */
    {NAS__ST_RESULT_MAX, "SELECT coalesce(max(result_id), 0) FROM task"},
    /* Changes only when another connection committed (SQLite's own
     * counter), so the cached result number is still ours if it did not. */
    {NAS__ST_DATA_VERSION, "PRAGMA data_version"},
    /* A fidelity's id, its row added if new; run only when the fidelity
     * of the task added differs from the last one (store_task.c). */
    {NAS__ST_FIDELITY_PUT, "INSERT INTO fidelity (json) VALUES (?1) ON CONFLICT (json) DO NOTHING"},
    {NAS__ST_FIDELITY_GET, "SELECT id FROM fidelity WHERE json = ?1"},
    {NAS__ST_TASK_LIST,
     "SELECT " TASK_COLS "FROM task t JOIN architecture a ON a.hash = t.arch_hash "
     "JOIN fidelity f ON f.id = t.fidelity_id "
     "WHERE (?1 IS NULL OR t.state = ?1) AND (?2 IS NULL OR t.stage = ?2) "
     "ORDER BY t.id"},
    {NAS__ST_TASK_GET,
     "SELECT " TASK_COLS "FROM task t JOIN architecture a ON a.hash = t.arch_hash "
     "JOIN fidelity f ON f.id = t.fidelity_id "
     "WHERE t.id = ?1"},
    /* One pass over the table without a sorter: since v3 no index covers
     * done tasks (the queue index holds queued ones only), and a GROUP BY
     * sorted every row's state. */
    {NAS__ST_TASK_COUNTS,
     "SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'leased'), "
     "count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed') "
     "FROM task WHERE (?1 IS NULL OR stage = ?1) AND id >= ?2 AND id < ?3"},
    /* The k best are picked from the task table alone (a bounded sort of
     * the numbers), and only they are joined with their architecture and
     * read whole: no index on accuracy is kept up at every result (v3). */
    {NAS__ST_BEST, "SELECT " RECORD_COLS RECORD_FROM
                   "AND t.id IN (SELECT id FROM task WHERE result_id IS NOT NULL "
                   "AND (?1 IS NULL OR stage = ?1) ORDER BY accuracy DESC, result_id ASC LIMIT ?2) "
                   "ORDER BY t.accuracy DESC, t.result_id ASC"},
    {NAS__ST_HISTORY, "SELECT " RECORD_COLS RECORD_FROM "ORDER BY t.result_id ASC"},
    {NAS__ST_RESULT_GET, "SELECT " RECORD_COLS RECORD_FROM "AND t.id = ?2"},
    {NAS__ST_WORKER_UPSERT,
     "INSERT INTO worker (name, host, cores, version, first_seen_ms, last_seen_ms, tasks_done) "
     "VALUES (?1, ?2, ?3, ?4, ?5, ?5, 0) ON CONFLICT (name) DO UPDATE SET host = excluded.host, "
     "cores = excluded.cores, version = excluded.version, last_seen_ms = excluded.last_seen_ms"},
    /* tasks_done is counted from the results, not kept in the worker row:
     * a counter there cost every result commit one more statement and one
     * more page (the worker table's) for a figure only nasctl shows.  The
     * column stays in the schema (v1) and is no longer written. */
    {NAS__ST_WORKER_LIST,
     "SELECT w.name, w.host, w.cores, w.version, w.first_seen_ms, w.last_seen_ms, "
     "coalesce(c.n, 0) FROM worker w LEFT JOIN (SELECT result_worker AS worker, count(*) AS n "
     "FROM task WHERE result_id IS NOT NULL GROUP BY result_worker) c ON c.worker = w.name "
     "ORDER BY w.name"},
    {NAS__ST_WORKER_BIND, "UPDATE worker SET key = ?2 WHERE name = ?1 AND key IS NULL"},
    {NAS__ST_WORKER_KEY, "SELECT key FROM worker WHERE name = ?1 AND key IS NOT NULL"},
    {NAS__ST_EVENT_INSERT, "INSERT INTO event (time_ms, kind, text) VALUES (?1, ?2, ?3)"},
    {NAS__ST_EVENT_LIST,
     "SELECT id, time_ms, kind, text FROM event WHERE id > ?1 ORDER BY id LIMIT ?2"},
    {NAS__ST_EVENT_HALT, "SELECT kind, text FROM event WHERE kind IN ('" NAS_STORE_EVENT_HALTED
                         "', '" NAS_STORE_EVENT_RESUMED "') ORDER BY id DESC LIMIT 1"},
    {NAS__ST_WEIGHTS_PUT,
     "INSERT INTO weights (arch_hash, path, bytes, created_ms) VALUES (?1, ?2, ?3, ?4) "
     "ON CONFLICT (arch_hash) DO UPDATE SET path = excluded.path, bytes = excluded.bytes, "
     "created_ms = excluded.created_ms"},
    {NAS__ST_WEIGHTS_GET, "SELECT path, bytes FROM weights WHERE arch_hash = ?1"},
    {NAS__ST_WEIGHTS_DROP, "DELETE FROM weights WHERE arch_hash = ?1"},
    {NAS__ST_BEGIN, "BEGIN IMMEDIATE"},
    {NAS__ST_COMMIT, "COMMIT"},
    {NAS__ST_SAVEPOINT, "SAVEPOINT nas_call"},
    {NAS__ST_RELEASE, "RELEASE nas_call"},
    {NAS__ST_TASK_OBSERVED,
     "UPDATE task SET observed = ?2, observed_ok = ?3 WHERE id = ?1 AND stage = 'search'"},
    {NAS__ST_PROPOSALS,
     "SELECT t.id, t.arch_hash, a.text, t.parent_hash FROM task t "
     "JOIN architecture a ON a.hash = t.arch_hash WHERE t.stage = 'search' ORDER BY t.id"},
    {NAS__ST_OBSERVATIONS,
     "SELECT t.id, t.arch_hash, a.text, t.parent_hash, t.observed, t.observed_ok, t.accuracy, "
     "t.result_params, t.result_macs FROM task t JOIN architecture a ON a.hash = t.arch_hash "
     "WHERE t.observed IS NOT NULL ORDER BY t.observed"},
    /* The rowid order needs no sorter; the fidelity table has a row or two. */
    {NAS__ST_RESULT_SCAN,
     "SELECT t.id, t.result_id, t.stage, t.state, t.fidelity_id, f.json, t.arch_hash, "
     "t.accuracy, t.test_accuracy, t.curve, t.finished_ms FROM task t "
     "JOIN fidelity f ON f.id = t.fidelity_id WHERE t.result_id IS NOT NULL ORDER BY t.id"},
};

/* Statements are prepared lazily: a handle that only reads (nasctl) never
 * compiles the write statements, and the SQL text is checked against the
 * enum once, at first use, by the assertion below. */
sqlite3_stmt *nas__store_stmt(nas_store *st, int which, char *err) {
    NAS_ASSERT(which >= 0 && which < NAS__ST_COUNT && stmt_sql[which].id == which);
    /* Inside a batch, any statement but transaction control opens it. */
    if (st->batch && !st->batch_open && which != NAS__ST_BEGIN && which != NAS__ST_COMMIT &&
        which != NAS__ST_SAVEPOINT && which != NAS__ST_RELEASE && nas__store_batch_open(st, err))
        return NULL;
    sqlite3_stmt *s = st->stmt[which];
    if (!s) {
        /* PERSISTENT tells SQLite the statement lives long, so it does not
         * take it from the lookaside pool meant for short-lived ones. */
        int rc = sqlite3_prepare_v3(st->db, stmt_sql[which].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    &st->stmt[which], NULL);
        if (rc != SQLITE_OK) {
            nas__store_fail(st, rc, "prepare", err);
            return NULL;
        }
        s = st->stmt[which];
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Every step goes through here so that fault injection can fail any
 * statement of any transaction; the statement itself never runs then, as
 * if the disk had refused the write. */
int nas__store_step(nas_store *st, sqlite3_stmt *s) {
    if (st->fail_after > 0 && --st->fail_after == 0) return SQLITE_IOERR;
    return sqlite3_step(s);
}

void nas_store_fail_after(nas_store *st, int n) {
    st->fail_after = n > 0 ? n : 0;
}

/* Step a write statement once and reset it at once: a statement left
 * un-reset would keep its transaction (or, for reads, its snapshot) open. */
int nas__store_exec_stmt(nas_store *st, sqlite3_stmt *s, const char *what, char *err) {
    int rc = nas__store_step(st, s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return nas__store_fail(st, rc, what, err);
    return NAS_OK;
}

/* SQLITE_TRANSIENT makes SQLite copy the text: the caller's buffers may be
 * stack arrays that are gone before the statement is reset. */
void nas__bind_text(sqlite3_stmt *s, int i, const char *v) {
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

/* Hashes use all 64 bits; SQLite integers are signed.  memcpy keeps the
 * bit pattern exactly, where a cast above INT64_MAX would be
 * implementation-defined. */
void nas__bind_u64(sqlite3_stmt *s, int i, uint64_t v) {
    int64_t bits;
    memcpy(&bits, &v, sizeof bits); /* same bits, no implementation-defined conversion */
    sqlite3_bind_int64(s, i, bits);
}

void nas__bind_text_static(sqlite3_stmt *s, int i, const char *v) {
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

uint64_t nas__column_u64(sqlite3_stmt *s, int i) {
    int64_t bits = sqlite3_column_int64(s, i);
    uint64_t v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

void nas__column_copy(sqlite3_stmt *s, int i, char *buf, size_t cap) {
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(buf, cap, "%s", t ? (const char *)t : "");
}

// ---- errors and transactions -------------------------------------------------------------------

int nas__store_fail(nas_store *st, int rc, const char *what, char *err) {
    const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    const char *path = st->path ? st->path : "(store)";
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return nas_set_err(err, NAS_ENOSPC, "store %s: %s: the disk or the database is full (%s)",
                           path, what, msg);
    case SQLITE_READONLY:
        return nas_set_err(err, NAS_EIO, "store %s: %s: the store is read-only (%s)", path, what,
                           msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return nas_set_err(err, NAS_EAGAIN,
                           "store %s: %s: another process holds the database lock (%s)", path, what,
                           msg);
    case SQLITE_NOMEM:
        return nas_set_err(err, NAS_ENOMEM, "store %s: %s: out of memory", path, what);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return nas_set_err(err, NAS_EFORMAT, "store %s: %s: not a valid database file (%s)", path,
                           what, msg);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
        /* The generic text, not errmsg: an injected fault never reached
         * SQLite, whose last message would then be "not an error". */
        return nas_set_err(err, NAS_EIO, "store %s: %s: %s", path, what, sqlite3_errstr(rc));
    default:
        return nas_set_err(err, NAS_EDB, "store %s: %s: %s", path, what, msg);
    }
}

/* Run a literal SQL script (no user data ever reaches this). */
static int exec_sql(nas_store *st, const char *sql, const char *what, char *err) {
    if (st->fail_after > 0 && --st->fail_after == 0)
        return nas__store_fail(st, SQLITE_IOERR, what, err);
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return nas__store_fail(st, rc, what, err);
    return NAS_OK;
}

// ---- opening -----------------------------------------------------------------------------------

/* user_version is an integer in the database header: 0 for a file no one
 * has migrated (including a brand-new one). */
static int read_version(nas_store *st, int *version, char *err) {
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(s, 0);
        sqlite3_finalize(s);
        return NAS_OK;
    }
    sqlite3_finalize(s);
    return nas__store_fail(st, rc, "read schema version", err);
}

/* A version-0 file with tables in it was made by something else; we must
 * not run CREATE TABLE over someone's database. */
static int count_tables(nas_store *st, int *n, char *err) {
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "SELECT COUNT(*) FROM sqlite_schema", -1, &s, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *n = sqlite3_column_int(s, 0);
        sqlite3_finalize(s);
        return NAS_OK;
    }
    sqlite3_finalize(s);
    return nas__store_fail(st, rc, "read schema", err);
}

/* Bring the file from its version to n: one transaction per step. */
static int migrate(nas_store *st, const nas__store_migration *mig, int n, char *err) {
    /* A brand-new file walks every step too, but there is nothing to tell
     * its user: only a file that held a schema before was migrated. */
    int first = -1;
    for (;;) {
        int rc = nas__store_begin(st, err);
        if (rc != NAS_OK) return rc;
        /* Re-read inside the write lock: another process may have migrated
         * the file between our first look and now. */
        int v = 0;
        rc = read_version(st, &v, err);
        if (rc != NAS_OK) goto fail;
        if (v >= n) return nas__store_commit(st, err);
        if (first < 0) first = v;
        rc = exec_sql(st, mig[v].sql, "migrate schema", err);
        if (rc == NAS_OK && mig[v].fn) rc = mig[v].fn(st, err);
        if (rc != NAS_OK) goto fail;
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        rc = exec_sql(st, bump, "set schema version", err);
        if (rc != NAS_OK) goto fail;
        rc = nas__store_commit(st, err);
        if (rc != NAS_OK) return rc;
        if (first > 0) nas_info("store %s: schema migrated to version %d", st->path, v + 1);
        continue;
    fail:
        nas__store_rollback(st);
        return rc;
    }
}

/* Check the file's version against what we know; migrate if writable. */
static int check_schema(nas_store *st, const nas__store_migration *mig, int n, char *err) {
    int version = 0, rc = read_version(st, &version, err);
    if (rc != NAS_OK) return rc;
    if (version > n)
        return nas_set_err(err, NAS_EVERSION,
                           "store %s has schema version %d but this nasd knows versions up to %d: "
                           "it was written by a newer nasd; upgrade nasd to open it",
                           st->path, version, n);
    if (version == 0) {
        int tables = 0;
        rc = count_tables(st, &tables, err);
        if (rc != NAS_OK) return rc;
        if (tables > 0)
            return nas_set_err(err, NAS_EFORMAT,
                               "store %s is an SQLite database with %d schema objects but no nasd "
                               "schema version: it is not a nasd store",
                               st->path, tables);
        if (st->readonly)
            return nas_set_err(err, NAS_EFORMAT, "store %s is empty: not a nasd store", st->path);
    }
    /* Older than us: migrate, unless we may not write. */
    if (version == n) return NAS_OK;
    if (st->readonly)
        return nas_set_err(err, NAS_EVERSION,
                           "store %s has schema version %d, this nasd reads version %d: open it "
                           "once with nas-master to migrate it",
                           st->path, version, n);
    return migrate(st, mig, n, err);
}

static int set_pragmas(nas_store *st, char *err) {
    sqlite3_busy_timeout(st->db, NAS_STORE_BUSY_TIMEOUT_MS);
    int rc = exec_sql(st, "PRAGMA foreign_keys = ON", "enable foreign keys", err);
    if (rc != NAS_OK || st->readonly) return rc;
    /* WAL lets nasctl read while the master writes, and makes a commit one
     * append instead of a rewrite.  Journal mode is a property of the file,
     * so a reader inherits it; ":memory:" silently stays in "memory". */
    rc = exec_sql(st, "PRAGMA journal_mode = WAL", "enable WAL", err);
    if (rc != NAS_OK) return rc;
    /* NORMAL under WAL syncs at checkpoints, not at every commit.  A crash
     * of the process loses nothing; a power cut may lose the last few
     * commits but never corrupts the file.  Those lost results belong to
     * tasks that are then simply re-leased and retrained, which costs far
     * less than an fsync per result costs every campaign. */
    rc = exec_sql(st, "PRAGMA synchronous = NORMAL", "set synchronous", err);
    if (rc != NAS_OK) return rc;
    /* A small page cache, 512 KiB (SQLite's default is 2 MiB): the pages a
     * commit touches are the B-trees' right edges and their interior
     * nodes, and a leaf it misses is a pread from the OS's cache.  Bigger
     * caches only hold the campaign's history, so the master's memory grew
     * with it (about 200 bytes per result up to the cap): the one-hour soak
     * grew 14.9 % with 16 MiB.  bench/dispatch, 64 workers, 100,000 tasks:
     * 52.6-57.0 us of master CPU per task with 16 MiB, 50.9-54.6 with
     * 512 KiB (docs/PERFORMANCE.md, Soak). */
    return exec_sql(st, "PRAGMA cache_size = -512", "set cache size", err);
}

/* Open, refuse files we cannot write or understand, set the connection
 * up, and migrate.  Every failure path closes what was opened through
 * nas_store_close(), which copes with a half-built handle. */
int nas__store_open_with(nas_store **out, const char *path, int readonly,
                         const nas__store_migration *mig, int n_mig, char *err) {
    if (!out || !path || !*path) return nas_set_err(err, NAS_EINVAL, "store: no path given");
    nas_store *st = nas_calloc(1, sizeof *st);
    if (!st) return nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", path);
    st->readonly = readonly;
    st->lock_fd = -1;
    st->path = nas_strdup(path);
    int rc = NAS_ENOMEM;
    if (!st->path) {
        nas_set_err(err, rc, "store %s: out of memory", path);
        goto fail;
    }
    /* nasctl must never create an empty store by mistyping a path, so only
     * the writer may create. */
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    /* A handle belongs to one thread at a time (store.h), so the
     * connection's own mutex only costs: SQLite took it around every API
     * call, about 5 % of the master's instructions per task. */
    flags |= SQLITE_OPEN_NOMUTEX;
    int src = sqlite3_open_v2(path, &st->db, flags, NULL);
    if (src != SQLITE_OK) {
        rc = nas__store_diagnose(path, readonly, err);
        if (rc == NAS_OK)
            rc = nas__store_fail(st, src, readonly ? "open for reading" : "open", err);
        goto fail;
    }
    /* SQLite quietly falls back to read-only when the file is not writable;
     * the master would then fail at its first result, far from the cause. */
    if (!readonly && sqlite3_db_readonly(st->db, "main") == 1) {
        rc = nas_set_err(err, NAS_EIO,
                         "store %s: cannot open for writing (file or folder permissions); "
                         "nas-master must write its store, nasctl can read it",
                         path);
        goto fail;
    }
    rc = set_pragmas(st, err);
    if (rc == NAS_OK) rc = check_schema(st, mig, n_mig, err);
    /* SQLite opens lazily: a folder it may not write, or a copy without
     * its -wal, shows only at the first statement. */
    if (rc == NAS_EIO) {
        char why[NAS_ERR_LEN];
        if (nas__store_diagnose(path, readonly, why) < 0) snprintf(err, NAS_ERR_LEN, "%s", why);
    }
    if (rc != NAS_OK) goto fail;
    *out = st;
    return NAS_OK;
fail:
    nas_store_close(&st);
    return rc;
}

int nas_store_open(nas_store **out, const char *path, char *err) {
    int n = 0;
    const nas__store_migration *mig = nas__store_migrations(&n);
    return nas__store_open_with(out, path, 0, mig, n, err);
}

int nas_store_open_ro(nas_store **out, const char *path, char *err) {
    int n = 0;
    const nas__store_migration *mig = nas__store_migrations(&n);
    return nas__store_open_with(out, path, 1, mig, n, err);
}

void nas_store_close(nas_store **stp) {
    if (!stp || !*stp) return;
    nas_store *st = *stp;
    /* finalize(NULL) is a no-op, so statements never prepared need no test. */
    for (int i = 0; i < NAS__ST_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    /* close_v2 never fails with BUSY: we finalized every statement above. */
    if (st->db) sqlite3_close_v2(st->db);
    /* Last: the lock covers the store until its connection is closed. */
    if (st->lock_fd >= 0) close(st->lock_fd);
    nas_free(st->path);
    nas_free(st);
    *stp = NULL;
}

const char *nas_store_path(const nas_store *st) {
    return st->path;
}

// ---- campaign ----------------------------------------------------------------------------------

static const char *const campaign_states[] = {"running", "draining", "done"};

static int campaign_state_parse(const char *s) {
    for (int i = 0; i < (int)NAS_ARRAY_LEN(campaign_states); i++)
        if (s && strcmp(s, campaign_states[i]) == 0) return i;
    return -1;
}

/* The next line of a canonical text that is identity (not extensible);
 * its length into *len, NULL at the end. */
static const char *identity_line(const char *p, int (*extensible)(const char *, size_t),
                                 size_t *len) {
    while (*p) {
        size_t n = strcspn(p, "\n");
        if (!extensible || !extensible(p, n)) {
            *len = n;
            return p;
        }
        p += n + (p[n] == '\n');
    }
    return NULL;
}

/* 0 when two canonical texts agree on every identity line; else 1 and the
 * first difference in buf, as "stored 'x: 1', given 'x: 2'", so the
 * refusal names the key. */
static int first_difference(const char *a, const char *b, int (*extensible)(const char *, size_t),
                            char *buf, size_t cap) {
    for (;;) {
        size_t la = 0, lb = 0;
        a = identity_line(a, extensible, &la);
        b = identity_line(b, extensible, &lb);
        if (!a && !b) return 0;
        if (!a || !b || la != lb || memcmp(a, b, la) != 0) {
            if (!a) a = "", la = 0;
            if (!b) b = "", lb = 0;
            snprintf(buf, cap, "stored '%.*s', given '%.*s'", (int)(la > 40 ? 40 : la), a,
                     (int)(lb > 40 ? 40 : lb), b);
            return 1;
        }
        a += la + (a[la] == '\n');
        b += lb + (b[lb] == '\n');
    }
}

int nas_store_campaign_bind(nas_store *st, const nas_store_campaign *c, int64_t now_ms,
                            int *created, char *err) {
    if (!c || !c->name || !c->text || !c->canonical)
        return nas_set_err(err, NAS_EINVAL, "store %s: campaign without name or config text",
                           st->path);
    int rc = nas__store_begin(st, err);
    if (rc != NAS_OK) return rc;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_CAMPAIGN_GET, err);
    if (!s) {
        rc = NAS_EDB;
        goto fail;
    }
    /* Read and insert under one write lock, so two masters started on the
     * same file at once cannot both record a campaign. */
    int step = nas__store_step(st, s);
    if (step == SQLITE_ROW) {
        uint64_t have = nas__column_u64(s, 3);
        const char *stored = (const char *)sqlite3_column_text(s, 2);
        stored = stored ? stored : "";
        char diff[200];
        /* Identity lines decide; the hash only says nothing changed at all. */
        int same = have == c->hash && strcmp(stored, c->canonical) == 0;
        if (!same && first_difference(stored, c->canonical, c->extensible, diff, sizeof diff)) {
            /* The most useful part first: err holds NAS_ERR_LEN bytes. */
            rc = nas_set_err(err, NAS_ECONFIG,
                             "store %s holds a campaign made by a different config (%s); no "
                             "override exists: resume with that config or use a new store file "
                             "(hashes %016llx, %016llx)",
                             st->path, diff, (unsigned long long)have, (unsigned long long)c->hash);
            sqlite3_reset(s);
            goto fail;
        }
        sqlite3_reset(s);
        if (created) *created = 0;
        /* Same campaign: a resume.  An extension (a larger budget, another
         * thread count) is recorded, so status and the next resume see it. */
        if (!same) {
            s = nas__store_stmt(st, NAS__ST_CAMPAIGN_REBIND, err);
            if (!s) {
                rc = NAS_EDB;
                goto fail;
            }
            nas__bind_text(s, 1, c->text);
            nas__bind_text(s, 2, c->canonical);
            nas__bind_u64(s, 3, c->hash);
            sqlite3_bind_int64(s, 4, now_ms);
            rc = nas__store_exec_stmt(st, s, "record the extended campaign", err);
            if (rc != NAS_OK) goto fail;
        }
        return nas__store_commit(st, err);
    }
    sqlite3_reset(s);
    if (step != SQLITE_DONE) {
        rc = nas__store_fail(st, step, "read campaign", err);
        goto fail;
    }
    s = nas__store_stmt(st, NAS__ST_CAMPAIGN_INSERT, err);
    if (!s) {
        rc = NAS_EDB;
        goto fail;
    }
    nas__bind_text(s, 1, c->name);
    nas__bind_text(s, 2, c->text);
    nas__bind_text(s, 3, c->canonical);
    nas__bind_u64(s, 4, c->hash);
    nas__bind_u64(s, 5, c->seed);
    sqlite3_bind_int64(s, 6, now_ms);
    rc = nas__store_exec_stmt(st, s, "record campaign", err);
    if (rc != NAS_OK) goto fail;
    rc = nas__store_commit(st, err);
    if (rc == NAS_OK && created) *created = 1;
    return rc;
fail:
    nas__store_rollback(st);
    return rc;
}

/* A NULL column reads as "", so callers never have to test for NULL. */
static char *column_dup(sqlite3_stmt *s, int i) {
    const unsigned char *t = sqlite3_column_text(s, i);
    return nas_strdup(t ? (const char *)t : "");
}

/* One SELECT; the strings are copied out before the reset invalidates
 * SQLite's column pointers. */
int nas_store_campaign_get(nas_store *st, nas_store_campaign_info *out, char *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_CAMPAIGN_GET, err);
    if (!s) return NAS_EDB;
    int step = nas__store_step(st, s);
    if (step == SQLITE_DONE) {
        sqlite3_reset(s);
        return nas_set_err(err, NAS_ENOTFOUND, "store %s holds no campaign yet", st->path);
    }
    if (step != SQLITE_ROW) {
        sqlite3_reset(s);
        return nas__store_fail(st, step, "read campaign", err);
    }
    out->name = column_dup(s, 0);
    out->text = column_dup(s, 1);
    out->canonical = column_dup(s, 2);
    out->hash = nas__column_u64(s, 3);
    out->seed = nas__column_u64(s, 4);
    out->state = campaign_state_parse((const char *)sqlite3_column_text(s, 5));
    out->created_ms = sqlite3_column_int64(s, 6);
    out->updated_ms = sqlite3_column_int64(s, 7);
    out->ran_ms = sqlite3_column_int64(s, 8);
    sqlite3_reset(s);
    if (!out->name || !out->text || !out->canonical) {
        nas_store_campaign_info_fini(out);
        return nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", st->path);
    }
    return NAS_OK;
}

void nas_store_campaign_info_fini(nas_store_campaign_info *info) {
    if (!info) return;
    nas_free(info->name);
    nas_free(info->text);
    nas_free(info->canonical);
    info->name = info->text = info->canonical = NULL;
}

/* A single UPDATE is atomic by itself; no explicit transaction. */
int nas_store_campaign_set_state(nas_store *st, int state, int64_t now_ms, char *err) {
    if (state < 0 || state >= (int)NAS_ARRAY_LEN(campaign_states))
        return nas_set_err(err, NAS_EINVAL, "store %s: campaign state %d is not a state", st->path,
                           state);
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_CAMPAIGN_SET_STATE, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_text(s, 1, campaign_states[state], -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now_ms);
    int rc = nas__store_exec_stmt(st, s, "set campaign state", err);
    if (rc == NAS_OK && sqlite3_changes(st->db) == 0)
        return nas_set_err(err, NAS_ENOTFOUND, "store %s holds no campaign yet", st->path);
    return rc;
}

int nas_store_campaign_set_ran(nas_store *st, int64_t ran_ms, char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_CAMPAIGN_SET_RAN, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_int64(s, 1, ran_ms);
    return nas__store_exec_stmt(st, s, "record the campaign's run time", err);
}

int nas_store_task_retry_failed(nas_store *st, int64_t now_ms, char *err) {
    (void)now_ms;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_RETRY_FAILED, err);
    if (!s) return NAS_EDB;
    int rc = nas__store_exec_stmt(st, s, "re-queue failed tasks", err);
    return rc < 0 ? rc : sqlite3_changes(st->db);
}

// ---- strategy state ----------------------------------------------------------------------------

int nas__store_strategy_write(nas_store *st, const void *blob, size_t len, int64_t now_ms,
                              char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_STRATEGY_UPSERT, err);
    if (!s) return NAS_EDB;
    /* A zero-length blob is still a state (a strategy with nothing to say);
     * bind_blob with NULL would store SQL NULL and break NOT NULL. */
    if (len == 0)
        sqlite3_bind_zeroblob(s, 1, 0);
    else
        sqlite3_bind_blob64(s, 1, blob, len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, now_ms);
    return nas__store_exec_stmt(st, s, "write strategy state", err);
}

/* The standalone write, for when no result or task accompanies it. */
int nas_store_strategy_save(nas_store *st, const void *blob, size_t len, int64_t now_ms,
                            char *err) {
    int rc = nas__store_begin(st, err);
    if (rc != NAS_OK) return rc;
    rc = nas__store_strategy_write(st, blob, len, now_ms, err);
    if (rc != NAS_OK) {
        nas__store_rollback(st);
        return rc;
    }
    return nas__store_commit(st, err);
}

/* The blob is copied into our allocator's memory so the caller frees it
 * with nas_free() like every other store output. */
int nas_store_strategy_load(nas_store *st, uint8_t **blob, size_t *len, int64_t *seq, char *err) {
    *blob = NULL;
    *len = 0;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_STRATEGY_GET, err);
    if (!s) return NAS_EDB;
    int step = nas__store_step(st, s);
    if (step != SQLITE_ROW) {
        sqlite3_reset(s);
        if (step == SQLITE_DONE)
            return nas_set_err(err, NAS_ENOTFOUND, "store %s holds no strategy state yet",
                               st->path);
        return nas__store_fail(st, step, "read strategy state", err);
    }
    size_t n = (size_t)sqlite3_column_bytes(s, 0);
    uint8_t *copy = nas_malloc(n ? n : 1);
    if (!copy) {
        sqlite3_reset(s);
        return nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", st->path);
    }
    if (n) memcpy(copy, sqlite3_column_blob(s, 0), n);
    if (seq) *seq = sqlite3_column_int64(s, 1);
    sqlite3_reset(s);
    *blob = copy;
    *len = n;
    return NAS_OK;
}
