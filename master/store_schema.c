/*
 * store_schema.c - the campaign store's schema: the SQL of every version
 * and the append-only list of migrations that takes a file from one to the
 * next (docs/SCHEMA.md, "Migrations").  store.c runs them when it opens a
 * file; a released migration is never edited, a change is a new one.
 */
#include "master/store_internal.h"

#include "common/err.h"

#include <stdio.h>

// ---- schema ------------------------------------------------------------------------------------

/* Version 1.  Hashes are uint64 stored as the int64 with the same bits
 * (SQLite integers are signed 64-bit); states are short words so that a
 * person reading the file with the sqlite3 shell understands it. */
static const char schema_v1[] =
    "CREATE TABLE campaign ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  name TEXT NOT NULL,"
    "  config_text TEXT NOT NULL,"
    "  config_canonical TEXT NOT NULL,"
    "  config_hash INTEGER NOT NULL,"
    "  seed INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('running', 'draining', 'done')),"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE TABLE architecture ("
    "  hash INTEGER PRIMARY KEY,"
    "  text TEXT NOT NULL,"
    "  genome BLOB,"
    "  params INTEGER NOT NULL,"
    "  macs INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE task ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  arch_hash INTEGER NOT NULL REFERENCES architecture(hash),"
    "  stage TEXT NOT NULL CHECK (stage IN ('search', 'final')),"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'leased', 'done', 'failed')),"
    "  attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),"
    "  worker TEXT,"
    "  lease_expiry_ms INTEGER,"
    "  fidelity TEXT NOT NULL,"
    "  parent_hash INTEGER,"
    "  created_ms INTEGER NOT NULL,"
    "  finished_ms INTEGER,"
    "  failure_kind TEXT CHECK (failure_kind IN ('training', 'lease-expired')),"
    "  failure TEXT);"
    "CREATE INDEX task_by_state ON task(state, stage, id);"
    "CREATE TABLE result ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  task_id INTEGER NOT NULL UNIQUE REFERENCES task(id),"
    "  attempt INTEGER NOT NULL,"
    "  accuracy REAL NOT NULL,"
    "  loss REAL,"
    "  test_accuracy REAL,"
    "  curve TEXT NOT NULL DEFAULT '[]',"
    "  params INTEGER NOT NULL,"
    "  macs INTEGER NOT NULL,"
    "  seconds REAL NOT NULL,"
    "  worker TEXT,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX result_by_accuracy ON result(accuracy DESC, id);"
    "CREATE TABLE strategy_state ("
    "  campaign_id INTEGER PRIMARY KEY REFERENCES campaign(id),"
    "  seq INTEGER NOT NULL,"
    "  blob BLOB NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE TABLE worker ("
    "  name TEXT PRIMARY KEY,"
    "  host TEXT,"
    "  cores INTEGER,"
    "  version TEXT,"
    "  first_seen_ms INTEGER NOT NULL,"
    "  last_seen_ms INTEGER NOT NULL,"
    "  tasks_done INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE event ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  text TEXT NOT NULL);"
    "CREATE TABLE weights ("
    "  arch_hash INTEGER PRIMARY KEY REFERENCES architecture(hash),"
    "  path TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL);";

/* Append only: a released migration is never edited, a change is a new one. */
/* Version 2 (incremental strategy state, docs/SCHEMA.md): a task the
 * strategy observed carries the observation's number (its index in the
 * strategy's history) and whether it counted as a success, written in the
 * same transaction as the result or failure.  With the proposals (search
 * tasks in id order) this is the whole history, so the strategy blob no
 * longer has to repeat it.  The partial unique index keeps the numbers
 * distinct and reads them back in order. */
static const char schema_v2[] = "ALTER TABLE task ADD COLUMN observed INTEGER;"
                                "ALTER TABLE task ADD COLUMN observed_ok INTEGER;"
                                "CREATE UNIQUE INDEX task_by_observed ON task(observed) "
                                "WHERE observed IS NOT NULL;";

/* Also in version 2: the task table's CHECK constraints say `x = 'a' OR x
 * = 'b'` instead of `x IN ('a', 'b')`.  Same meaning, but SQLite builds an
 * ephemeral index for an IN list each time it checks a row, and that was
 * a quarter of the master's instructions per task (every task row is
 * written four times).  A CHECK constraint does not touch the stored rows,
 * so the table definition is edited in place, as SQLite documents for
 * constraint changes (https://sqlite.org/lang_altertable.html, "making
 * other kinds of table schema changes"): writable_schema, the new text,
 * schema_version + 1 so that every connection re-reads the schema. */
static int rewrite_task_checks(nas_store *st, char *err) {
    static const char *const from[] = {
        "CHECK (stage IN ('search', 'final'))",
        "CHECK (state IN ('queued', 'leased', 'done', 'failed'))",
        "CHECK (failure_kind IN ('training', 'lease-expired'))",
    };
    static const char *const to[] = {
        "CHECK (stage = 'search' OR stage = 'final')",
        "CHECK (state = 'queued' OR state = 'leased' OR state = 'done' OR state = 'failed')",
        "CHECK (failure_kind = 'training' OR failure_kind = 'lease-expired')",
    };
    sqlite3_stmt *s = NULL;
    int version = 0, rc = sqlite3_prepare_v2(st->db, "PRAGMA schema_version", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) return nas__store_fail(st, rc, "read schema_version", err);
    rc = sqlite3_exec(st->db, "PRAGMA writable_schema = ON", NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < NAS_ARRAY_LEN(from); i++) {
        rc = sqlite3_prepare_v2(st->db,
                                "UPDATE sqlite_schema SET sql = replace(sql, ?1, ?2) "
                                "WHERE type = 'table' AND name = 'task'",
                                -1, &s, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(s, 1, from[i], -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, to[i], -1, SQLITE_STATIC);
            rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(st->db);
        }
        sqlite3_finalize(s);
    }
    char bump[64];
    snprintf(bump, sizeof bump, "PRAGMA schema_version = %d", version + 1);
    if (rc == SQLITE_OK) rc = sqlite3_exec(st->db, bump, NULL, NULL, NULL);
    /* Off in every case: a connection left writable could damage the file. */
    int off = sqlite3_exec(st->db, "PRAGMA writable_schema = OFF", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = off;
    if (rc != SQLITE_OK) return nas__store_fail(st, rc, "rewrite task constraints", err);
    return NAS_OK;
}

/* Version 3 (docs/SCHEMA.md, "Version 3"): a task's result lives in its
 * own row.  Recording a result was a task UPDATE plus a result INSERT that
 * wrote three more B-trees (the result table, its task_id and accuracy
 * indexes) and sqlite_sequence; it is now the one UPDATE that marks the task
 * done.  The queue index covers queued tasks only (a partial index), so a
 * task that is added already leased and then finished never touches it,
 * and neither table is AUTOINCREMENT any more: rows are never deleted, so
 * SQLite's max(rowid) + 1 already never reuses an id, without the
 * sqlite_sequence write per insert.  The old result table becomes a view
 * of the same name and columns, for people and scripts reading the file.
 * A task names its fidelity by id in a table of distinct fidelity JSON
 * texts (a campaign has one or two): the 300-byte text in every task row
 * made the rows four times longer, and each commit wrote that many more
 * WAL pages (64 workers: 17 % of the master's pwrite calls).
 *
 * The task table is rebuilt (new table, copy, drop, rename), the way
 * SQLite documents for changes ALTER TABLE cannot make.  Nothing refers to
 * the task table but the result table, which is dropped first, so the
 * foreign keys stay checked throughout. */
static const char schema_v3[] =
    "CREATE TABLE fidelity ("
    "  id INTEGER PRIMARY KEY,"
    "  json TEXT NOT NULL UNIQUE);"
    "INSERT INTO fidelity (json) SELECT fidelity FROM task GROUP BY fidelity ORDER BY min(id);"
    "CREATE TABLE task_v3 ("
    "  id INTEGER PRIMARY KEY,"
    "  arch_hash INTEGER NOT NULL REFERENCES architecture(hash),"
    "  stage TEXT NOT NULL CHECK (stage = 'search' OR stage = 'final'),"
    "  state TEXT NOT NULL CHECK (state = 'queued' OR state = 'leased' OR state = 'done' "
    "    OR state = 'failed'),"
    "  attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),"
    "  worker TEXT,"
    "  lease_expiry_ms INTEGER,"
    "  fidelity_id INTEGER NOT NULL REFERENCES fidelity(id),"
    "  parent_hash INTEGER,"
    "  created_ms INTEGER NOT NULL,"
    "  finished_ms INTEGER,"
    "  failure_kind TEXT CHECK (failure_kind = 'training' OR failure_kind = 'lease-expired'),"
    "  failure TEXT,"
    "  observed INTEGER,"
    "  observed_ok INTEGER,"
    "  result_id INTEGER,"
    "  result_attempt INTEGER,"
    "  accuracy REAL,"
    "  loss REAL,"
    "  test_accuracy REAL,"
    "  curve TEXT,"
    "  result_params INTEGER,"
    "  result_macs INTEGER,"
    "  seconds REAL,"
    "  result_worker TEXT);"
    "INSERT INTO task_v3 SELECT t.id, t.arch_hash, t.stage, t.state, t.attempt, t.worker, "
    "  t.lease_expiry_ms, (SELECT f.id FROM fidelity f WHERE f.json = t.fidelity), "
    "  t.parent_hash, t.created_ms, t.finished_ms, "
    "  t.failure_kind, t.failure, t.observed, t.observed_ok, r.id, r.attempt, r.accuracy, "
    "  r.loss, r.test_accuracy, r.curve, r.params, r.macs, r.seconds, r.worker "
    "  FROM task t LEFT JOIN result r ON r.task_id = t.id ORDER BY t.id;"
    "DROP TABLE result;"
    "DROP TABLE task;"
    "ALTER TABLE task_v3 RENAME TO task;"
    "DELETE FROM sqlite_sequence WHERE name = 'task' OR name = 'result';"
    "CREATE INDEX task_queued ON task(id) WHERE state = 'queued';"
    "CREATE UNIQUE INDEX task_by_observed ON task(observed) WHERE observed IS NOT NULL;"
    "CREATE VIEW result AS SELECT result_id AS id, id AS task_id, result_attempt AS attempt, "
    "  accuracy, loss, test_accuracy, curve, result_params AS params, result_macs AS macs, "
    "  seconds, result_worker AS worker, finished_ms AS created_ms "
    "  FROM task WHERE result_id IS NOT NULL;";

/* Version 4: the time masters have run the campaign, which the wall-time
 * budget counts (a master that is down spends none of it).  A store from
 * before knows only its creation and its last checkpoint; the span between
 * them is the best bound it has. */
static const char schema_v4[] = "ALTER TABLE campaign ADD COLUMN ran_ms INTEGER NOT NULL DEFAULT 0;"
                                "UPDATE campaign SET ran_ms = max(0, updated_ms - created_ms);";

/* Version 5: who holds a lease is its worker's name, host and CurveZMQ key
 * together (two workers may share a name), and a master that resumes a
 * lease must know all three to give it back to its holder only.  Leases
 * written before keep a NULL host: only their name is known. */
static const char schema_v5[] = "ALTER TABLE task ADD COLUMN lease_host TEXT;"
                                "ALTER TABLE task ADD COLUMN lease_key TEXT;";

/* Version 6: with CurveZMQ a worker name belongs to the key that first
 * took work under it, and a restarted master must still know whose it is:
 * otherwise another authorized key could take the name over while its
 * worker is away.  NULL: bound to no key (taken without CurveZMQ, or
 * written before v6). */
static const char schema_v6[] = "ALTER TABLE worker ADD COLUMN key TEXT;";

static const nas__store_migration migrations[] = {
    {schema_v1, NULL}, {schema_v2, rewrite_task_checks}, {schema_v3, NULL}, {schema_v4, NULL},
    {schema_v5, NULL}, {schema_v6, NULL},
};

_Static_assert(NAS_ARRAY_LEN(migrations) == NAS_STORE_SCHEMA_VERSION,
               "a new migration must bump NAS_STORE_SCHEMA_VERSION in store.h");

const nas__store_migration *nas__store_migrations(int *n) {
    *n = (int)NAS_ARRAY_LEN(migrations);
    return migrations;
}
