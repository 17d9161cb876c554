/*
 * store_scan.c - one light pass over every result (store.h
 * nas_store_result_scan), for the figures that summarize a whole history:
 * `nasctl status --db`, the live master's status figures at its start
 * (status_live.c), the fidelity rank correlations.
 *
 * nas_store_history reads each result whole: its architecture's text and
 * its parent's (copied into fixed 4 KB fields) and its learning curve
 * (parsed into floats).  A summary needs neither, and at 100,000 results
 * that copying and parsing was nearly all of the seconds a status took.
 */
#include "common/err.h"
#include "master/store_internal.h"

#include <math.h>
#include <string.h>

/* The fidelities of the rows, parsed once per fidelity id: a campaign has
 * one or two (one per rung with successive halving), so a few slots hold
 * them all; beyond that the last slot is parsed again when it changes. */
enum { FID_SLOTS = 8 };

typedef struct fid_cache {
    int64_t id[FID_SLOTS];
    nas_fidelity f[FID_SLOTS];
    int n;
} fid_cache;

static const nas_fidelity *fid_of(fid_cache *c, int64_t id, const char *json, char *err) {
    for (int i = 0; i < c->n; i++)
        if (c->id[i] == id) return &c->f[i];
    int slot = c->n < FID_SLOTS ? c->n++ : FID_SLOTS - 1;
    if (nas_store_fidelity_from_json(json, &c->f[slot], err) < 0) {
        c->n = slot; /* the slot holds nothing valid */
        return NULL;
    }
    c->id[slot] = id;
    return &c->f[slot];
}

/* The curve's length as nas_store_history's parse counts it.  The store
 * writes every curve itself ("[v,v,...]", each value a number printed by
 * %.9g, store_task.c), so the values are the commas plus one. */
static int curve_len(const unsigned char *json) {
    if (!json || json[0] != '[' || json[1] == ']') return 0;
    int n = 1;
    for (const unsigned char *c = json; *c; c++)
        n += *c == ',';
    return n;
}

static int stage_of(const unsigned char *s) {
    return s && strcmp((const char *)s, "final") == 0 ? NAS_STORE_STAGE_FINAL
                                                      : NAS_STORE_STAGE_SEARCH;
}

static int state_of(const unsigned char *s) {
    static const char *const names[] = {"queued", "leased", "done", "failed"};
    for (int i = 0; s && i < 4; i++)
        if (strcmp((const char *)s, names[i]) == 0) return i;
    return -1;
}

int nas_store_result_scan(nas_store *st, nas_store_result_fn fn, void *ctx, char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_RESULT_SCAN, err);
    if (!s) return NAS_EDB;
    fid_cache cache = {.n = 0};
    int rc = NAS_OK, step;
    while ((step = nas__store_step(st, s)) == SQLITE_ROW) {
        nas_store_result_row r = {
            .task_id = sqlite3_column_int64(s, 0),
            .seq = sqlite3_column_int64(s, 1),
            .stage = stage_of(sqlite3_column_text(s, 2)),
            .state = state_of(sqlite3_column_text(s, 3)),
            .arch_hash = nas__column_u64(s, 6),
            .accuracy = sqlite3_column_double(s, 7),
            .test_accuracy =
                sqlite3_column_type(s, 8) == SQLITE_NULL ? NAN : sqlite3_column_double(s, 8),
            .n_curve = curve_len(sqlite3_column_text(s, 9)),
            .finished_ms = sqlite3_column_int64(s, 10),
        };
        r.fidelity = fid_of(&cache, sqlite3_column_int64(s, 4),
                            (const char *)sqlite3_column_text(s, 5), err);
        if (!r.fidelity) {
            rc = NAS_EFORMAT;
            break;
        }
        if ((rc = fn(ctx, &r, err)) < 0) break;
    }
    sqlite3_reset(s);
    if (rc < 0) return rc;
    return step == SQLITE_DONE ? NAS_OK : nas__store_fail(st, step, "read results", err);
}
