/*
 * store_query.c - reading the store back (task lists, counts, best-k,
 * history, strategy state) and the small tables: workers, events, weights.
 *
 * Every read resets its statement before returning.  That matters under
 * WAL: a statement left mid-iteration keeps its read snapshot open, so a
 * reader such as nasctl would keep seeing old data and the writer could
 * never checkpoint the log back into the file.
 */
#include "master/store_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- names -------------------------------------------------------------------------------------

static const char *const stage_names[] = {"search", "final"};
static const char *const state_names[] = {"queued", "leased", "done", "failed"};

const char *nas_store_stage_name(int stage) {
    return stage >= 0 && stage < 2 ? stage_names[stage] : "any";
}

const char *nas_store_task_state_name(int state) {
    return state >= 0 && state < 4 ? state_names[state] : "any";
}

/* Map a stored word back to its enum value; -1 for anything unexpected. */
static int name_index(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (s && strcmp(s, names[i]) == 0) return i;
    return -1;
}

/* Bind a filter: NULL (matches all) for ANY, the name otherwise. */
static void bind_filter(sqlite3_stmt *s, int i, int v, const char *const *names, int n) {
    if (v >= 0 && v < n)
        sqlite3_bind_text(s, i, names[v], -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

// ---- fidelity as JSON --------------------------------------------------------------------------

enum { FT_INT, FT_FLOAT, FT_DOUBLE, FT_U64 };

/* Fields added after the first stores (`late`) are written only when they
 * are not zero, so a fidelity that does not use them keeps the JSON, and so
 * the fidelity row, it always had (a resumed campaign's groups stay whole). */
static const struct {
    const char *name;
    int type;
    size_t off;
    int late;
} fid_fields[] = {
#define F(name, type)                                                                              \
    { #name, type, offsetof(nas_fidelity, name), 0 }
#define LATE(name, type)                                                                           \
    { #name, type, offsetof(nas_fidelity, name), 1 }
    F(resolution, FT_INT),
    F(train_subset, FT_INT),
    F(val_size, FT_INT),
    F(epochs, FT_INT),
    F(batch, FT_INT),
    F(channels, FT_INT),
    F(cells, FT_INT),
    F(lr, FT_FLOAT),
    F(warmup_epochs, FT_FLOAT),
    F(momentum, FT_FLOAT),
    F(nesterov, FT_INT),
    F(weight_decay, FT_FLOAT),
    F(grad_clip, FT_FLOAT),
    F(label_smoothing, FT_FLOAT),
    F(drop_path, FT_FLOAT),
    F(augment, FT_INT),
    F(test, FT_INT),
    F(seed, FT_U64),
    F(time_limit_s, FT_DOUBLE),
    F(threads, FT_INT),
    LATE(cutout, FT_INT),
    LATE(aux_weight, FT_FLOAT),
    LATE(progressive_start, FT_INT),
    LATE(width_mult, FT_FLOAT),
#undef F
#undef LATE
};

/* Fields are written in table order with their C names, so a person (or
 * json_extract) reads the row without this code. */
int nas_store_fidelity_to_json(const nas_fidelity *f, char *buf, size_t cap) {
    size_t at = 0;
    const char *base = (const char *)f;
    for (size_t i = 0; i < NAS_ARRAY_LEN(fid_fields); i++) {
        const void *p = base + fid_fields[i].off;
        if (fid_fields[i].late && (fid_fields[i].type == FT_INT ? *(const int *)p == 0
                                                                : *(const float *)p == 0.0f))
            continue;
        const char *sep = i ? "," : "{";
        int n = 0;
        size_t room = at < cap ? cap - at : 0;
        switch (fid_fields[i].type) {
        case FT_INT:
            n = snprintf(buf + at, room, "%s\"%s\":%d", sep, fid_fields[i].name, *(const int *)p);
            break;
        /* %.9g and %.17g are the shortest widths that round-trip a float
         * and a double exactly, so a task trains with the fidelity it was
         * given, bit for bit. */
        case FT_FLOAT:
            n = snprintf(buf + at, room, "%s\"%s\":%.9g", sep, fid_fields[i].name,
                         (double)*(const float *)p);
            break;
        case FT_DOUBLE:
            n = snprintf(buf + at, room, "%s\"%s\":%.17g", sep, fid_fields[i].name,
                         *(const double *)p);
            break;
        default:
            n = snprintf(buf + at, room, "%s\"%s\":%llu", sep, fid_fields[i].name,
                         (unsigned long long)*(const uint64_t *)p);
            break;
        }
        at += (size_t)n;
        if (at >= cap) return NAS_ERANGE;
    }
    if (at + 2 > cap) return NAS_ERANGE;
    buf[at++] = '}';
    buf[at] = '\0';
    return (int)at;
}

/* The JSON reader accepts exactly what to_json writes plus whitespace: a
 * flat object of numbers.  It is not a general JSON parser. */
static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Store one number into the field named key (len bytes); unknown keys are
 * skipped so that rows written by a later nasd stay readable. */
static int set_fid_field(nas_fidelity *f, const char *key, size_t len, const char *num,
                         char **end) {
    /* Every field is numeric, so one strtod covers ints and floats; only
     * uint64 seeds above 2^53 need the integer parse below. */
    double d = strtod(num, end);
    if (*end == num) return -1;
    for (size_t i = 0; i < NAS_ARRAY_LEN(fid_fields); i++) {
        if (strlen(fid_fields[i].name) != len || memcmp(fid_fields[i].name, key, len) != 0)
            continue;
        void *p = (char *)f + fid_fields[i].off;
        switch (fid_fields[i].type) {
        case FT_INT:
            *(int *)p = (int)d;
            break;
        case FT_FLOAT:
            *(float *)p = (float)d;
            break;
        case FT_DOUBLE:
            *(double *)p = d;
            break;
        default:
            *(uint64_t *)p = strtoull(num, end, 10);
            break; /* exact above 2^53 */
        }
    }
    return 0;
}

int nas_store_fidelity_from_json(const char *json, nas_fidelity *f, char *err) {
    *f = nas_fidelity_default();
    const char *p = skip_ws(json ? json : "");
    if (*p++ != '{') goto bad;
    p = skip_ws(p);
    if (*p == '}') return NAS_OK;
    for (;;) {
        if (*p++ != '"') goto bad;
        const char *key = p;
        while (*p && *p != '"')
            p++;
        if (*p != '"') goto bad;
        size_t len = (size_t)(p - key);
        p = skip_ws(p + 1);
        if (*p++ != ':') goto bad;
        char *end = NULL;
        if (set_fid_field(f, key, len, skip_ws(p), &end) != 0) goto bad;
        p = skip_ws(end);
        if (*p == '}') return NAS_OK;
        if (*p++ != ',') goto bad;
        p = skip_ws(p);
    }
bad:
    return nas_set_err(err, NAS_EFORMAT, "fidelity JSON is malformed near offset %td",
                       json ? p - json : 0);
}

/* Parse "[0.5,0.61]" into a malloc'd array; NULL with *n = 0 for "[]".
 * The number of commas bounds the number of values, so one allocation
 * suffices; parsing stops at the first thing that is not a number. */
static int curve_from_json(const char *json, float **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!json || *json != '[' || json[1] == ']') return NAS_OK;
    int cap = 1;
    for (const char *c = json; *c; c++)
        cap += *c == ',';
    float *v = nas_malloc(sizeof *v * (size_t)cap);
    if (!v) return NAS_ENOMEM; /* never drop a curve silently */
    const char *p = json + 1;
    while (*n < cap) {
        char *end = NULL;
        double d = strtod(p, &end);
        if (end == p) break;
        v[(*n)++] = (float)d;
        p = skip_ws(end);
        if (*p != ',') break;
        p++;
    }
    if (*n == 0) {
        nas_free(v);
        v = NULL;
    }
    *out = v;
    return NAS_OK;
}

// ---- records as JSON ----------------------------------------------------------------------

typedef struct jbuf {
    char *p;
    size_t n, cap;
    int full;
} jbuf;

static void jput(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jput(jbuf *b, const char *fmt, ...) {
    if (b->full) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->n)
        b->full = 1;
    else
        b->n += (size_t)n;
}

/* Worker names come from the network: escape quotes, backslashes and
 * control bytes so the output stays one valid JSON value. */
static void jput_str(jbuf *b, const char *s) {
    jput(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            jput(b, "\\%c", *c);
        else if (*c < 0x20)
            jput(b, "\\u%04x", *c);
        else
            jput(b, "%c", *c);
    }
    jput(b, "\"");
}

/* JSON has no NaN or infinity; an absent number is null. */
static void jput_num(jbuf *b, double v) {
    if (isfinite(v))
        jput(b, "%.17g", v);
    else
        jput(b, "null");
}

int nas_store_record_to_json(const nas_store_record *r, char *buf, size_t cap) {
    if (cap == 0) return NAS_ERANGE;
    jbuf b = {buf, 0, cap, 0};
    jput(&b, "{\"task\":%lld,\"seq\":%lld,\"arch\":\"%016llx\",\"text\":", (long long)r->task_id,
         (long long)r->seq, (unsigned long long)r->arch_hash);
    jput_str(&b, r->arch_text);
    jput(&b, ",\"stage\":\"%s\",\"attempt\":%d,\"accuracy\":", nas_store_stage_name(r->stage),
         r->attempt);
    jput_num(&b, r->accuracy);
    jput(&b, ",\"loss\":");
    jput_num(&b, r->loss);
    jput(&b, ",\"test_accuracy\":");
    jput_num(&b, r->test_accuracy);
    jput(&b, ",\"curve\":[");
    for (int i = 0; i < r->n_curve; i++)
        jput(&b, "%s%.9g", i ? "," : "", (double)r->curve[i]);
    jput(&b, "],\"params\":%lld,\"macs\":%lld,\"seconds\":", (long long)r->params,
         (long long)r->macs);
    jput_num(&b, r->seconds);
    jput(&b, ",\"worker\":");
    jput_str(&b, r->worker);
    jput(&b, ",\"finished_ms\":%lld}", (long long)r->finished_ms);
    if (b.full) return NAS_ERANGE;
    return (int)b.n;
}

// ---- tasks -------------------------------------------------------------------------------------

/* Fill one task from a row of TASK_COLS.
 * Columns are read by position; TASK_COLS in store.c fixes the order. */
static int read_task(sqlite3_stmt *s, nas_store_task_info *t, char *err) {
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(s, 0);
    t->arch_hash = nas__column_u64(s, 1);
    nas__column_copy(s, 2, t->arch_text, sizeof t->arch_text);
    t->stage = name_index((const char *)sqlite3_column_text(s, 3), stage_names, 2);
    t->state = name_index((const char *)sqlite3_column_text(s, 4), state_names, 4);
    t->attempt = sqlite3_column_int(s, 5);
    nas__column_copy(s, 6, t->worker, sizeof t->worker);
    t->lease_expiry_ms = sqlite3_column_int64(s, 7);
    int rc =
        nas_store_fidelity_from_json((const char *)sqlite3_column_text(s, 8), &t->fidelity, err);
    t->has_parent = sqlite3_column_type(s, 9) != SQLITE_NULL;
    t->parent_hash = nas__column_u64(s, 9);
    t->created_ms = sqlite3_column_int64(s, 10);
    t->finished_ms = sqlite3_column_int64(s, 11);
    static const char *const kinds[] = {"training", "lease-expired"};
    t->failure_kind = name_index((const char *)sqlite3_column_text(s, 12), kinds, 2);
    nas__column_copy(s, 13, t->failure, sizeof t->failure);
    t->lease_ident_known = sqlite3_column_type(s, 14) != SQLITE_NULL;
    nas__column_copy(s, 14, t->lease_host, sizeof t->lease_host);
    nas__column_copy(s, 15, t->lease_key, sizeof t->lease_key);
    return rc;
}

/* Rows are collected into a growing array (doubling), then handed over;
 * on any failure the partial array is freed and *out stays NULL. */
int nas_store_task_list(nas_store *st, int state, int stage, nas_store_task_info **out, char *err) {
    *out = NULL;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_LIST, err);
    if (!s) return NAS_EDB;
    bind_filter(s, 1, state, state_names, 4);
    bind_filter(s, 2, stage, stage_names, 2);
    nas_store_task_info *arr = NULL;
    int n = 0, cap = 0, rc = NAS_OK, step;
    while ((step = nas__store_step(st, s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            nas_store_task_info *grown = nas_realloc(arr, sizeof *arr * (size_t)cap);
            if (!grown) {
                rc = nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", st->path);
                goto fail;
            }
            arr = grown;
        }
        rc = read_task(s, &arr[n++], err);
        if (rc != NAS_OK) goto fail;
    }
    if (step != SQLITE_DONE) {
        rc = nas__store_fail(st, step, "list tasks", err);
        goto fail;
    }
    sqlite3_reset(s);
    *out = arr;
    return n;
fail:
    sqlite3_reset(s);
    nas_free(arr);
    return rc;
}

int nas_store_task_get(nas_store *st, int64_t task_id, nas_store_task_info *out, char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_GET, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_int64(s, 1, task_id);
    int step = nas__store_step(st, s), rc;
    if (step == SQLITE_ROW)
        rc = read_task(s, out, err);
    else if (step == SQLITE_DONE)
        rc =
            nas_set_err(err, NAS_ENOTFOUND, "store %s: no task %lld", st->path, (long long)task_id);
    else
        rc = nas__store_fail(st, step, "read task", err);
    sqlite3_reset(s);
    return rc;
}

int nas_store_arch_get(nas_store *st, uint64_t hash, nas_store_arch_info *out, char *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_ARCH_GET, err);
    if (!s) return NAS_EDB;
    nas__bind_u64(s, 1, hash);
    int step = nas__store_step(st, s), rc = NAS_OK;
    if (step == SQLITE_ROW) {
        out->hash = hash;
        nas__column_copy(s, 0, out->text, sizeof out->text);
        size_t n = (size_t)sqlite3_column_bytes(s, 1);
        /* Copy out before the reset: SQLite's blob pointer dies with it. */
        if (sqlite3_column_type(s, 1) == SQLITE_BLOB && n > 0) {
            out->genome = nas_malloc(n);
            if (out->genome) {
                memcpy(out->genome, sqlite3_column_blob(s, 1), n);
                out->genome_len = n;
            } else {
                rc = nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", st->path);
            }
        }
        out->params = sqlite3_column_int64(s, 2);
        out->macs = sqlite3_column_int64(s, 3);
        out->created_ms = sqlite3_column_int64(s, 4);
    } else if (step == SQLITE_DONE) {
        rc = nas_set_err(err, NAS_ENOTFOUND, "store %s: no architecture %016llx", st->path,
                         (unsigned long long)hash);
    } else {
        rc = nas__store_fail(st, step, "read architecture", err);
    }
    sqlite3_reset(s);
    return rc;
}

/* One GROUP BY pass; states with no task keep their zero. */
int nas_store_task_counts(nas_store *st, int stage, nas_store_counts *out, char *err) {
    return nas_store_task_counts_range(st, stage, 0, INT64_MAX, out, err);
}

/* A range of ids is a range of the table's b-tree: only those rows are read. */
int nas_store_task_counts_range(nas_store *st, int stage, int64_t lo, int64_t hi,
                                nas_store_counts *out, char *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_TASK_COUNTS, err);
    if (!s) return NAS_EDB;
    bind_filter(s, 1, stage, stage_names, 2);
    sqlite3_bind_int64(s, 2, lo);
    sqlite3_bind_int64(s, 3, hi);
    /* One row, one column per state (NAS__ST_TASK_COUNTS). */
    int step = nas__store_step(st, s);
    if (step == SQLITE_ROW) {
        out->queued = sqlite3_column_int64(s, 0);
        out->leased = sqlite3_column_int64(s, 1);
        out->done = sqlite3_column_int64(s, 2);
        out->failed = sqlite3_column_int64(s, 3);
        step = SQLITE_DONE;
    }
    sqlite3_reset(s);
    return step == SQLITE_DONE ? NAS_OK : nas__store_fail(st, step, "count tasks", err);
}

// ---- results -----------------------------------------------------------------------------------

void nas_store_records_free(nas_store_record *recs, int n) {
    if (!recs) return;
    for (int i = 0; i < n; i++)
        nas_free(recs[i].curve);
    nas_free(recs);
}

/* Columns are read by position; RECORD_COLS in store.c fixes the order. */
static int read_record(sqlite3_stmt *s, nas_store_record *r) {
    memset(r, 0, sizeof *r);
    r->task_id = sqlite3_column_int64(s, 0);
    r->seq = sqlite3_column_int64(s, 1);
    r->arch_hash = nas__column_u64(s, 2);
    nas__column_copy(s, 3, r->arch_text, sizeof r->arch_text);
    r->stage = name_index((const char *)sqlite3_column_text(s, 4), stage_names, 2);
    r->attempt = sqlite3_column_int(s, 5);
    r->accuracy = sqlite3_column_double(s, 6);
    r->loss = sqlite3_column_type(s, 7) == SQLITE_NULL ? NAN : sqlite3_column_double(s, 7);
    r->test_accuracy = sqlite3_column_type(s, 8) == SQLITE_NULL ? NAN : sqlite3_column_double(s, 8);
    int rc = curve_from_json((const char *)sqlite3_column_text(s, 9), &r->curve, &r->n_curve);
    r->params = sqlite3_column_int64(s, 10);
    r->macs = sqlite3_column_int64(s, 11);
    r->seconds = sqlite3_column_double(s, 12);
    nas__column_copy(s, 13, r->worker, sizeof r->worker);
    r->finished_ms = sqlite3_column_int64(s, 14);
    r->has_parent = sqlite3_column_type(s, 15) != SQLITE_NULL;
    r->parent_hash = r->has_parent ? nas__column_u64(s, 15) : 0;
    nas__column_copy(s, 16, r->parent_text, sizeof r->parent_text);
    return rc;
}

/* Collect the rows of BEST or HISTORY (already bound). */
static int collect_records(nas_store *st, sqlite3_stmt *s, nas_store_record **out, char *err) {
    nas_store_record *arr = NULL;
    int n = 0, cap = 0, rc = NAS_OK, step;
    while ((step = nas__store_step(st, s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            nas_store_record *grown = nas_realloc(arr, sizeof *arr * (size_t)cap);
            if (!grown) {
                rc = nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", st->path);
                goto fail;
            }
            arr = grown;
        }
        if (read_record(s, &arr[n++]) != NAS_OK) {
            rc = nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", st->path);
            goto fail;
        }
    }
    if (step != SQLITE_DONE) {
        rc = nas__store_fail(st, step, "read results", err);
        goto fail;
    }
    sqlite3_reset(s);
    *out = arr;
    return n;
fail:
    sqlite3_reset(s);
    nas_store_records_free(arr, n);
    return rc;
}

/* Ties on accuracy go to the earlier result (result.id), so best-k is a
 * pure function of the history and never depends on SQLite's plan. */
int nas_store_best(nas_store *st, int stage, int k, nas_store_record **out, char *err) {
    *out = NULL;
    if (k < 0) return nas_set_err(err, NAS_EINVAL, "store: best-k needs k >= 0, got %d", k);
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_BEST, err);
    if (!s) return NAS_EDB;
    bind_filter(s, 1, stage, stage_names, 2);
    sqlite3_bind_int(s, 2, k);
    return collect_records(st, s, out, err);
}

int nas_store_result_get(nas_store *st, int64_t task_id, nas_store_record **out, char *err) {
    *out = NULL;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_RESULT_GET, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_null(s, 1);
    sqlite3_bind_int64(s, 2, task_id);
    return collect_records(st, s, out, err);
}

/* Completion order, not task order: it is the order in which the strategy
 * observed the results, which is what a resumed campaign replays. */
int nas_store_history(nas_store *st, int stage, nas_store_record **out, char *err) {
    *out = NULL;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_HISTORY, err);
    if (!s) return NAS_EDB;
    bind_filter(s, 1, stage, stage_names, 2);
    return collect_records(st, s, out, err);
}

// ---- workers and events ------------------------------------------------------------------------

/* An upsert: the first sighting sets first_seen, every later one only
 * moves last_seen and refreshes what the worker says about itself. */
int nas_store_worker_seen(nas_store *st, const char *name, const char *host, int cores,
                          const char *version, int64_t now_ms, char *err) {
    if (!name || !*name || strlen(name) >= NAS_STORE_NAME_MAX)
        return nas_set_err(err, NAS_EINVAL, "store %s: worker name must be 1..%d bytes", st->path,
                           NAS_STORE_NAME_MAX - 1);
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_WORKER_UPSERT, err);
    if (!s) return NAS_EDB;
    nas__bind_text(s, 1, name);
    nas__bind_text(s, 2, host);
    sqlite3_bind_int(s, 3, cores);
    nas__bind_text(s, 4, version);
    sqlite3_bind_int64(s, 5, now_ms);
    return nas__store_exec_stmt(st, s, "record worker", err);
}

int nas_store_worker_bind(nas_store *st, const char *name, const char *key, char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_WORKER_BIND, err);
    if (!s) return NAS_EDB;
    nas__bind_text(s, 1, name);
    nas__bind_text(s, 2, key);
    return nas__store_exec_stmt(st, s, "bind worker key", err);
}

int nas_store_worker_key(nas_store *st, const char *name, char *key, size_t cap, char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_WORKER_KEY, err);
    if (!s) return NAS_EDB;
    nas__bind_text(s, 1, name);
    int step = nas__store_step(st, s), rc = 0;
    if (step == SQLITE_ROW) {
        nas__column_copy(s, 0, key, cap);
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = nas__store_fail(st, step, "read worker key", err);
    }
    sqlite3_reset(s);
    return rc;
}

int nas_store_worker_list(nas_store *st, nas_store_worker_info **out, char *err) {
    *out = NULL;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_WORKER_LIST, err);
    if (!s) return NAS_EDB;
    nas_store_worker_info *arr = NULL;
    int n = 0, cap = 0, step;
    while ((step = nas__store_step(st, s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            nas_store_worker_info *grown = nas_realloc(arr, sizeof *arr * (size_t)cap);
            if (!grown) {
                sqlite3_reset(s);
                nas_free(arr);
                return nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", st->path);
            }
            arr = grown;
        }
        nas_store_worker_info *w = &arr[n++];
        nas__column_copy(s, 0, w->name, sizeof w->name);
        nas__column_copy(s, 1, w->host, sizeof w->host);
        w->cores = sqlite3_column_int(s, 2);
        nas__column_copy(s, 3, w->version, sizeof w->version);
        w->first_seen_ms = sqlite3_column_int64(s, 4);
        w->last_seen_ms = sqlite3_column_int64(s, 5);
        w->tasks_done = sqlite3_column_int64(s, 6);
    }
    sqlite3_reset(s);
    if (step != SQLITE_DONE) {
        nas_free(arr);
        return nas__store_fail(st, step, "list workers", err);
    }
    *out = arr;
    return n;
}

int nas_store_event_append(nas_store *st, int64_t now_ms, const char *kind, const char *text,
                           char *err) {
    if (!kind || !*kind || !text)
        return nas_set_err(err, NAS_EINVAL, "store %s: an event needs a kind and a text", st->path);
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_EVENT_INSERT, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_int64(s, 1, now_ms);
    nas__bind_text(s, 2, kind);
    nas__bind_text(s, 3, text);
    return nas__store_exec_stmt(st, s, "append event", err);
}

/* The log scanned from its end for the last breaker event: a campaign never halted reads it
 * whole, which is a few thousand rows at most (worker joins and leaves, stopped tasks). */
int nas_store_halted(nas_store *st, char *text, size_t cap, char *err) {
    if (cap) text[0] = '\0';
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_EVENT_HALT, err);
    if (!s) return NAS_EDB;
    int step = nas__store_step(st, s), halted = 0;
    if (step == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(s, 0);
        halted = kind && strcmp(kind, NAS_STORE_EVENT_HALTED) == 0;
        if (halted && cap) nas__column_copy(s, 1, text, cap);
    }
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return nas__store_fail(st, step, "read the halt", err);
    return halted;
}

/* Paging by id (after_id) lets nasctl follow the log without offsets that
 * shift while the master appends. */
int nas_store_event_list(nas_store *st, int64_t after_id, int limit, nas_store_event_info **out,
                         char *err) {
    *out = NULL;
    /* One allocation of `limit` entries: nasctl pages in small steps. */
    if (limit <= 0) return 0;
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_EVENT_LIST, err);
    if (!s) return NAS_EDB;
    sqlite3_bind_int64(s, 1, after_id);
    sqlite3_bind_int(s, 2, limit);
    nas_store_event_info *arr = nas_calloc((size_t)limit, sizeof *arr);
    if (!arr) {
        sqlite3_reset(s);
        return nas_set_err(err, NAS_ENOMEM, "store %s: out of memory", st->path);
    }
    int n = 0, step;
    while (n < limit && (step = nas__store_step(st, s)) == SQLITE_ROW) {
        arr[n].id = sqlite3_column_int64(s, 0);
        arr[n].time_ms = sqlite3_column_int64(s, 1);
        nas__column_copy(s, 2, arr[n].kind, sizeof arr[n].kind);
        nas__column_copy(s, 3, arr[n].text, sizeof arr[n].text);
        n++;
    }
    sqlite3_reset(s);
    if (n < limit && step != SQLITE_DONE) {
        nas_free(arr);
        return nas__store_fail(st, step, "list events", err);
    }
    *out = arr;
    return n;
}

// ---- weights index -----------------------------------------------------------------------------

int nas_store_weights_put(nas_store *st, uint64_t arch_hash, const char *path, int64_t bytes,
                          int64_t now_ms, char *err) {
    if (!path || !*path || bytes < 0)
        return nas_set_err(err, NAS_EINVAL, "store %s: weights need a path and a size >= 0",
                           st->path);
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_WEIGHTS_PUT, err);
    if (!s) return NAS_EDB;
    nas__bind_u64(s, 1, arch_hash);
    nas__bind_text(s, 2, path);
    sqlite3_bind_int64(s, 3, bytes);
    sqlite3_bind_int64(s, 4, now_ms);
    /* The architecture must exist (foreign key): weights of an unknown
     * architecture would be an orphan nobody can ever ask for. */
    return nas__store_exec_stmt(st, s, "index weights", err);
}

/* The path is copied into the caller's buffer, truncated if it must be. */
int nas_store_weights_get(nas_store *st, uint64_t arch_hash, char *path, size_t cap, int64_t *bytes,
                          char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_WEIGHTS_GET, err);
    if (!s) return NAS_EDB;
    nas__bind_u64(s, 1, arch_hash);
    int step = nas__store_step(st, s), rc = NAS_OK;
    if (step == SQLITE_ROW) {
        nas__column_copy(s, 0, path, cap);
        if (bytes) *bytes = sqlite3_column_int64(s, 1);
    } else if (step == SQLITE_DONE) {
        rc = nas_set_err(err, NAS_ENOTFOUND, "store %s: no weights for architecture %016llx",
                         st->path, (unsigned long long)arch_hash);
    } else {
        rc = nas__store_fail(st, step, "read weights index", err);
    }
    sqlite3_reset(s);
    return rc;
}

/* Dropping the index row does not delete the file; the weight store owns
 * files and drops the row after removing one. */
int nas_store_weights_drop(nas_store *st, uint64_t arch_hash, char *err) {
    sqlite3_stmt *s = nas__store_stmt(st, NAS__ST_WEIGHTS_DROP, err);
    if (!s) return NAS_EDB;
    nas__bind_u64(s, 1, arch_hash);
    return nas__store_exec_stmt(st, s, "drop weights", err);
}

/* A one-off statement rather than a cached one: nasctl asks once per run,
 * and the statement table stays as it is. */
int nas_store_weights_totals(nas_store *st, int64_t *archs, int64_t *bytes, char *err) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT count(*), coalesce(sum(bytes), 0) FROM weights", -1, &s,
                           NULL) != SQLITE_OK)
        return nas__store_fail(st, sqlite3_errcode(st->db), "weights totals", err);
    int step = nas__store_step(st, s), rc = NAS_OK;
    if (step == SQLITE_ROW) {
        *archs = sqlite3_column_int64(s, 0);
        *bytes = sqlite3_column_int64(s, 1);
    } else {
        rc = nas__store_fail(st, step, "weights totals", err);
    }
    sqlite3_finalize(s);
    return rc;
}

// ---- integrity -------------------------------------------------------------------------------

/* Each rule is a query that returns the first offending row id, if any.
 * They are run rarely, so they are prepared on the spot, not cached. */
static const struct {
    const char *sql;
    const char *rule;
} checks[] = {
    /* A result is the result_* columns of its task (schema v3): result_id
     * set exactly when the task is done. */
    {"SELECT id FROM task WHERE state = 'done' AND (result_id IS NULL OR accuracy IS NULL) "
     "LIMIT 1",
     "a done task has no result"},
    {"SELECT id FROM task WHERE state != 'done' AND result_id IS NOT NULL LIMIT 1",
     "a result belongs to a task that is not done"},
    {"SELECT id FROM task WHERE state = 'leased' AND (lease_expiry_ms IS NULL OR worker IS NULL "
     "OR attempt < 1) LIMIT 1",
     "a leased task lacks its worker, expiry or attempt"},
    {"SELECT id FROM task WHERE state != 'leased' AND lease_expiry_ms IS NOT NULL LIMIT 1",
     "a task that is not leased holds a lease expiry"},
    {"SELECT id FROM task WHERE result_id IS NOT NULL AND (result_attempt IS NULL "
     "OR result_attempt < 1 OR result_attempt > attempt) LIMIT 1",
     "a result names an attempt that was never leased"},
    {"SELECT min(id) FROM task WHERE result_id IS NOT NULL GROUP BY result_id "
     "HAVING count(*) > 1 LIMIT 1",
     "two results share one result number"},
    {"SELECT id FROM task WHERE state = 'failed' AND failure IS NULL LIMIT 1",
     "a failed task has no reason"},
};

/* Run one query; *row gets the first column of its first row, or -1. */
static int first_row(nas_store *st, const char *sql, const char *what, int64_t *row, char *text,
                     size_t cap, char *err) {
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) return nas__store_fail(st, rc, what, err);
    int step = sqlite3_step(s);
    *row = -1;
    if (text && cap) text[0] = '\0';
    if (step == SQLITE_ROW) {
        *row = sqlite3_column_int64(s, 0);
        if (text) nas__column_copy(s, 0, text, cap);
    }
    sqlite3_finalize(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE) return nas__store_fail(st, step, what, err);
    return NAS_OK;
}

int nas_store_check(nas_store *st, char *err) {
    int64_t row = -1;
    char text[128];
    int rc = first_row(st, "PRAGMA quick_check", "integrity check", &row, text, sizeof text, err);
    if (rc != NAS_OK) return rc;
    if (strcmp(text, "ok") != 0)
        return nas_set_err(err, NAS_EFORMAT, "store %s: SQLite integrity check: %s", st->path,
                           text);
    /* foreign_key_check returns (table, rowid, parent, fk index) per violation. */
    rc = first_row(st, "PRAGMA foreign_key_check", "foreign key check", &row, text, sizeof text,
                   err);
    if (rc != NAS_OK) return rc;
    if (text[0])
        return nas_set_err(err, NAS_EFORMAT,
                           "store %s: table %s has a row whose reference "
                           "points nowhere",
                           st->path, text);
    for (size_t i = 0; i < NAS_ARRAY_LEN(checks); i++) {
        rc = first_row(st, checks[i].sql, "consistency check", &row, NULL, 0, err);
        if (rc != NAS_OK) return rc;
        if (row >= 0)
            return nas_set_err(err, NAS_EFORMAT, "store %s: %s (task %lld)", st->path,
                               checks[i].rule, (long long)row);
    }
    return NAS_OK;
}
