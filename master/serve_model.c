/*
 * serve_model.c - the dashboard's in-memory copy of a campaign store,
 * refreshed incrementally from a read-only connection (serve_model.h).
 *
 * The store module opens the file (it knows how to refuse a file that is
 * not a nasd store or has a newer schema, and how to word SQLite's errors);
 * this module then reads the documented tables (docs/SCHEMA.md) through
 * that connection with statements of its own, because what it asks ("what
 * changed since the last look?") is not a question the master ever asks.
 */
#include "master/serve_model.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/genome.h"
#include "master/status.h"
#include "master/store.h"
#include "master/store_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { Q_VERSION, Q_CAMPAIGN, Q_TASKS, Q_WORKERS, Q_EVENTS, Q_WEIGHTS, Q_TASK, Q_COUNT };

static const char *const queries[Q_COUNT] = {
    [Q_VERSION] = "PRAGMA data_version",
    [Q_CAMPAIGN] = "SELECT name, state, config_canonical, created_ms FROM campaign WHERE id = 1",
    /* The in-flight window and everything after it; the join reads one
     * architecture row per new result only (the text is copied once). */
    [Q_TASKS] =
        "SELECT t.id, t.stage, t.state, t.result_id, t.accuracy, t.test_accuracy, t.loss, "
        "t.result_params, t.result_macs, t.seconds, t.result_worker, t.finished_ms, "
        "t.arch_hash, t.worker, t.result_attempt FROM task t WHERE t.id >= ?1 ORDER BY t.id",
    [Q_WORKERS] = "SELECT name, host, version, cores, first_seen_ms, last_seen_ms FROM worker",
    [Q_EVENTS] = "SELECT id, time_ms, kind, text FROM event WHERE id > ?1 ORDER BY id",
    [Q_WEIGHTS] = "SELECT count(*), coalesce(sum(bytes), 0) FROM weights",
    [Q_TASK] = "SELECT t.stage, t.state, t.attempt, t.worker, t.created_ms, t.finished_ms, "
               "t.failure_kind, t.failure, t.result_id, t.accuracy, t.test_accuracy, t.loss, "
               "t.curve, t.result_params, t.result_macs, t.seconds, t.result_worker, a.text, "
               "t.arch_hash, t.parent_hash, f.json FROM task t "
               "JOIN architecture a ON a.hash = t.arch_hash "
               "JOIN fidelity f ON f.id = t.fidelity_id WHERE t.id = ?1",
};

struct nas_serve_model {
    nas_store *st;
    sqlite3_stmt *q[Q_COUNT];
    sqlite3_stmt *arch; /* text of one architecture */
    char *campaign, *strategy, *state;
    char *halted; /* the circuit breaker's halt no master has lifted since, or NULL */
    int64_t budget, created_ms;
    int64_t data_version;
    int loaded;

    nas_serve_row *rows;
    int n_rows, cap_rows;
    char *text;
    size_t n_text, cap_text;
    int best;

    nas_serve_worker *workers;
    int n_workers, cap_workers;

    int64_t frontier;      /* lowest task id that may still change */
    int64_t fixed[2][4];   /* counts of the tasks below the frontier */
    int64_t counts[2][4];  /* all tasks, as of the last refresh */
    int64_t max_seq;       /* largest result_id seen */
    int64_t last_event_id; /* event-log rows read */
    int64_t weights_archs, weights_bytes;

    nas_serve_count failures[4];
    int n_failures;

    nas_serve_event ring[NAS_SERVE_EVENT_RING];
    int64_t next_event; /* id of the next stream event */
    int64_t refreshes;
    double last_refresh_ms;
    nas_serve_colcache columns;
};

static int stage_of(const char *s) {
    return s && strcmp(s, "final") == 0 ? 1 : 0;
}

static int state_of(const char *s) {
    static const char *const names[] = {"queued", "leased", "done", "failed"};
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return 0;
}

static char *col_dup(sqlite3_stmt *s, int i) {
    const char *t = (const char *)sqlite3_column_text(s, i);
    return nas_strdup(t ? t : "");
}

static double col_real(sqlite3_stmt *s, int i) {
    return sqlite3_column_type(s, i) == SQLITE_NULL ? NAN : sqlite3_column_double(s, i);
}

/* A statement of ours, reset for its next use. */
static sqlite3_stmt *stmt(nas_serve_model *m, int which) {
    sqlite3_reset(m->q[which]);
    sqlite3_clear_bindings(m->q[which]);
    return m->q[which];
}

/* ---- the event stream ------------------------------------------------------------------ */

/* Append an event (takes `json`; a result passes NULL and its row); the
 * ring drops the oldest. */
static void push_event_row(nas_serve_model *m, const char *kind, char *json, int row) {
    nas_serve_event *e = &m->ring[m->next_event % NAS_SERVE_EVENT_RING];
    nas_free(e->json);
    e->id = m->next_event++;
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    e->json = json;
    e->row = row;
}

static void push_event(nas_serve_model *m, const char *kind, char *json) {
    if (json) push_event_row(m, kind, json, -1);
}

const char *nas_serve_model_event_json(nas_serve_model *m, const nas_serve_event *e) {
    nas_serve_event *own = &m->ring[e->id % NAS_SERVE_EVENT_RING];
    if (!own->json && own->row >= 0 && own->row < m->n_rows) {
        nas_json_buf b;
        nas_json_buf_init(&b);
        nas_serve_row_json(m, &m->rows[own->row], &b);
        own->json = nas_json_buf_take(&b, NULL);
    }
    return own->json;
}

int nas_serve_model_events(const nas_serve_model *m, int64_t after, const nas_serve_event **out,
                           int cap, int *lost) {
    int64_t oldest = m->next_event - NAS_SERVE_EVENT_RING;
    if (oldest < 1) oldest = 1;
    *lost = after + 1 < oldest;
    int64_t from = after + 1 < oldest ? oldest : after + 1;
    int n = 0;
    for (int64_t id = from; id < m->next_event && n < cap; id++)
        out[n++] = &m->ring[id % NAS_SERVE_EVENT_RING];
    return n;
}

int64_t nas_serve_model_last_event(const nas_serve_model *m) {
    return m->next_event - 1;
}

/* ---- workers ----------------------------------------------------------------------------- */

/* The index of a worker by name, added (seen only in results) if new.
 * Names are few (one per machine), so a linear search with a one-entry
 * cache in the caller is enough. */
static int worker_index(nas_serve_model *m, const char *name) {
    if (!name) name = "";
    for (int i = 0; i < m->n_workers; i++)
        if (strcmp(m->workers[i].name, name) == 0) return i;
    if (m->n_workers == m->cap_workers) {
        int cap = m->cap_workers ? 2 * m->cap_workers : 16;
        nas_serve_worker *w = nas_realloc(m->workers, (size_t)cap * sizeof *w);
        if (!w) return -1;
        m->workers = w;
        m->cap_workers = cap;
    }
    nas_serve_worker *w = &m->workers[m->n_workers];
    memset(w, 0, sizeof *w);
    w->name = nas_strdup(name);
    w->host = nas_strdup("");
    w->version = nas_strdup("");
    w->task = -1;
    if (!w->name || !w->host || !w->version) {
        nas_free(w->name);
        nas_free(w->host);
        nas_free(w->version);
        return -1;
    }
    return m->n_workers++;
}

static int read_workers(nas_serve_model *m, char *err) {
    sqlite3_stmt *s = stmt(m, Q_WORKERS);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        int i = worker_index(m, name);
        if (i < 0) return nas_set_err(err, NAS_ENOMEM, "out of memory");
        nas_serve_worker *w = &m->workers[i];
        if (!w->in_table && m->loaded) {
            nas_json_buf b;
            nas_json_buf_init(&b);
            nas_json_buf_printf(&b, "{\"name\":");
            nas_json_buf_str(&b, name);
            nas_json_buf_raw(&b, "}", 1);
            push_event(m, "worker", nas_json_buf_take(&b, NULL));
        }
        w->in_table = 1;
        nas_free(w->host);
        nas_free(w->version);
        w->host = col_dup(s, 1);
        w->version = col_dup(s, 2);
        w->cores = sqlite3_column_int(s, 3);
        w->first_seen_ms = sqlite3_column_int64(s, 4);
        w->last_seen_ms = sqlite3_column_int64(s, 5);
        if (!w->host || !w->version) return nas_set_err(err, NAS_ENOMEM, "out of memory");
    }
    return rc == SQLITE_DONE ? NAS_OK : nas__store_fail(m->st, rc, "read workers", err);
}

/* ---- results ------------------------------------------------------------------------------ */

static int add_text(nas_serve_model *m, const char *t, uint32_t *off) {
    size_t n = strlen(t ? t : "") + 1;
    if (m->n_text + n > m->cap_text) {
        size_t cap = m->cap_text ? 2 * m->cap_text : 1 << 16;
        while (cap < m->n_text + n)
            cap *= 2;
        char *p = nas_realloc(m->text, cap);
        if (!p) return NAS_ENOMEM;
        m->text = p;
        m->cap_text = cap;
    }
    if (m->n_text + n > UINT32_MAX) return NAS_ERANGE;
    memcpy(m->text + m->n_text, t ? t : "", n);
    *off = (uint32_t)m->n_text;
    m->n_text += n;
    return NAS_OK;
}

static int by_seq(const void *a, const void *b) {
    const nas_serve_row *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Append the new results of one scan in order of completion, with their
 * genome text, and announce them on the stream. */
static int append_rows(nas_serve_model *m, nas_serve_row *fresh, int n, char *err) {
    if (n == 0) return NAS_OK;
    qsort(fresh, (size_t)n, sizeof *fresh, by_seq);
    if (m->n_rows + n > m->cap_rows) {
        int cap = m->cap_rows ? m->cap_rows : 1024;
        while (cap < m->n_rows + n)
            cap *= 2;
        nas_serve_row *r = nas_realloc(m->rows, (size_t)cap * sizeof *r);
        if (!r) return nas_set_err(err, NAS_ENOMEM, "out of memory");
        m->rows = r;
        m->cap_rows = cap;
    }
    for (int i = 0; i < n; i++) {
        nas_serve_row *r = &m->rows[m->n_rows];
        *r = fresh[i];
        sqlite3_reset(m->arch);
        nas__bind_u64(m->arch, 1, r->hash);
        int rc = sqlite3_step(m->arch);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return nas__store_fail(m->st, rc, "read architecture", err);
        if (add_text(m, rc == SQLITE_ROW ? (const char *)sqlite3_column_text(m->arch, 0) : "",
                     &r->text) < 0)
            return nas_set_err(err, NAS_ENOMEM, "out of memory");
        nas_serve_worker *w = &m->workers[r->worker];
        w->tasks_done++;
        w->busy_seconds += isnan(r->seconds) ? 0 : r->seconds;
        if (r->stage == 0 && (m->best < 0 || r->accuracy > m->rows[m->best].accuracy))
            m->best = m->n_rows;
        m->n_rows++;
        if (m->loaded) push_event_row(m, "result", NULL, m->n_rows - 1);
    }
    return NAS_OK;
}

/* Read the tasks from the frontier on: counts, leases, new results. */
static int scan_tasks(nas_serve_model *m, char *err) {
    sqlite3_stmt *s = stmt(m, Q_TASKS);
    sqlite3_bind_int64(s, 1, m->frontier);
    nas_serve_row *fresh = NULL;
    int n_fresh = 0, cap_fresh = 0, rc, wcache = -1;
    int64_t window[2][4] = {{0}}, lowest_open = -1, last_id = m->frontier - 1;
    for (int i = 0; i < m->n_workers; i++)
        m->workers[i].task = -1;
    /* Finished tasks seen before the first open one join the fixed counts. */
    int64_t settled[2][4] = {{0}};
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);
        int stage = stage_of((const char *)sqlite3_column_text(s, 1));
        int state = state_of((const char *)sqlite3_column_text(s, 2));
        last_id = id;
        window[stage][state]++;
        if (state <= NAS_STORE_TASK_LEASED && lowest_open < 0) lowest_open = id;
        if (lowest_open < 0) settled[stage][state]++;
        if (state == NAS_STORE_TASK_LEASED) {
            int w = worker_index(m, (const char *)sqlite3_column_text(s, 13));
            if (w >= 0) m->workers[w].task = id;
        }
        int64_t seq = sqlite3_column_int64(s, 3);
        if (state != NAS_STORE_TASK_DONE || seq <= m->max_seq) continue;
        if (n_fresh == cap_fresh) {
            cap_fresh = cap_fresh ? 2 * cap_fresh : 256;
            nas_serve_row *f = nas_realloc(fresh, (size_t)cap_fresh * sizeof *f);
            if (!f) {
                nas_free(fresh);
                return nas_set_err(err, NAS_ENOMEM, "out of memory");
            }
            fresh = f;
        }
        const char *wname = (const char *)sqlite3_column_text(s, 10);
        if (wcache < 0 || strcmp(m->workers[wcache].name, wname ? wname : "") != 0)
            wcache = worker_index(m, wname);
        if (wcache < 0) {
            nas_free(fresh);
            return nas_set_err(err, NAS_ENOMEM, "out of memory");
        }
        fresh[n_fresh++] = (nas_serve_row){
            .task = id,
            .seq = seq,
            .hash = nas__column_u64(s, 12),
            .accuracy = col_real(s, 4),
            .test_accuracy = col_real(s, 5),
            .loss = col_real(s, 6),
            .params = sqlite3_column_int64(s, 7),
            .macs = sqlite3_column_int64(s, 8),
            .seconds = col_real(s, 9),
            .finished_ms = sqlite3_column_int64(s, 11),
            .stage = stage,
            .attempt = sqlite3_column_int(s, 14),
            .worker = wcache,
        };
    }
    if (rc != SQLITE_DONE) {
        nas_free(fresh);
        return nas__store_fail(m->st, rc, "read tasks", err);
    }
    int64_t old_max = m->max_seq;
    for (int i = 0; i < n_fresh; i++)
        if (fresh[i].seq > m->max_seq) m->max_seq = fresh[i].seq;
    rc = append_rows(m, fresh, n_fresh, err);
    nas_free(fresh);
    if (rc < 0) {
        m->max_seq = old_max;
        return rc;
    }
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 4; k++) {
            /* The settled rows were counted in the window too. */
            m->fixed[g][k] += settled[g][k];
            m->counts[g][k] = m->fixed[g][k] + window[g][k] - settled[g][k];
        }
    m->frontier = lowest_open >= 0 ? lowest_open : last_id + 1;
    return NAS_OK;
}

/* ---- the event log --------------------------------------------------------------------- */

static void count_failure(nas_serve_model *m, const char *kind) {
    for (int i = 0; i < m->n_failures; i++)
        if (strcmp(m->failures[i].name, kind) == 0) {
            m->failures[i].n++;
            return;
        }
}

static int read_events(nas_serve_model *m, char *err) {
    sqlite3_stmt *s = stmt(m, Q_EVENTS);
    sqlite3_bind_int64(s, 1, m->last_event_id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        m->last_event_id = sqlite3_column_int64(s, 0);
        const char *kind = (const char *)sqlite3_column_text(s, 2);
        count_failure(m, kind ? kind : "");
        if (kind && strcmp(kind, NAS_STORE_EVENT_HALTED) == 0) {
            nas_free(m->halted);
            m->halted = col_dup(s, 3);
        } else if (kind && strcmp(kind, NAS_STORE_EVENT_RESUMED) == 0) {
            nas_free(m->halted);
            m->halted = NULL;
        }
        if (!m->loaded) continue;
        nas_json_buf b;
        nas_json_buf_init(&b);
        nas_json_buf_obj_begin(&b);
        nas_json_buf_key(&b, "id");
        nas_json_buf_i64(&b, m->last_event_id);
        nas_json_buf_key(&b, "time_ms");
        nas_json_buf_i64(&b, sqlite3_column_int64(s, 1));
        nas_json_buf_key(&b, "kind");
        nas_json_buf_str(&b, kind);
        nas_json_buf_key(&b, "text");
        nas_json_buf_str(&b, (const char *)sqlite3_column_text(s, 3));
        nas_json_buf_obj_end(&b);
        push_event(m, "log", nas_json_buf_take(&b, NULL));
    }
    return rc == SQLITE_DONE ? NAS_OK : nas__store_fail(m->st, rc, "read events", err);
}

/* ---- campaign ---------------------------------------------------------------------------- */

static int read_campaign(nas_serve_model *m, char *err) {
    sqlite3_stmt *s = stmt(m, Q_CAMPAIGN);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) return NAS_OK; /* a store the master has not bound yet */
    if (rc != SQLITE_ROW) return nas__store_fail(m->st, rc, "read campaign", err);
    const char *state = (const char *)sqlite3_column_text(s, 1);
    if (m->loaded && m->state && state && strcmp(m->state, state) != 0) {
        nas_json_buf b;
        nas_json_buf_init(&b);
        nas_json_buf_printf(&b, "{\"state\":");
        nas_json_buf_str(&b, state);
        nas_json_buf_raw(&b, "}", 1);
        push_event(m, "campaign", nas_json_buf_take(&b, NULL));
    }
    nas_free(m->state);
    m->state = col_dup(s, 1);
    if (!m->campaign) {
        const char *canon = (const char *)sqlite3_column_text(s, 2);
        m->campaign = col_dup(s, 0);
        char v[64];
        nas_status_canonical_value(canon, "strategy.name", v, sizeof v);
        m->strategy = nas_strdup(v);
        nas_status_canonical_value(canon, "budget.evaluations", v, sizeof v);
        m->budget = strtoll(v, NULL, 10);
        m->created_ms = sqlite3_column_int64(s, 3);
    }
    if (!m->state || !m->campaign || !m->strategy)
        return nas_set_err(err, NAS_ENOMEM, "out of memory");
    return NAS_OK;
}

static int read_weights(nas_serve_model *m, char *err) {
    sqlite3_stmt *s = stmt(m, Q_WEIGHTS);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) return nas__store_fail(m->st, rc, "read weights", err);
    m->weights_archs = sqlite3_column_int64(s, 0);
    m->weights_bytes = sqlite3_column_int64(s, 1);
    return NAS_OK;
}

/* ---- open, refresh, close ------------------------------------------------------------- */

int nas_serve_model_open(nas_serve_model **out, const char *path, char *err) {
    *out = NULL;
    nas_serve_model *m = nas_calloc(1, sizeof *m);
    if (!m) return nas_set_err(err, NAS_ENOMEM, "out of memory");
    m->best = -1;
    m->frontier = 0;
    m->next_event = 1;
    m->data_version = -1;
    static const char *const kinds[] = {"training", "lease-expired"};
    for (int i = 0; i < 2; i++)
        m->failures[m->n_failures++] = (nas_serve_count){kinds[i], 0};
    int rc = nas_store_open_ro(&m->st, path, err);
    for (int i = 0; rc == NAS_OK && i < Q_COUNT; i++) {
        int src = sqlite3_prepare_v3(m->st->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &m->q[i],
                                     NULL);
        if (src != SQLITE_OK) rc = nas__store_fail(m->st, src, "prepare a dashboard query", err);
    }
    if (rc == NAS_OK) {
        int src = sqlite3_prepare_v3(m->st->db, "SELECT text FROM architecture WHERE hash = ?1", -1,
                                     SQLITE_PREPARE_PERSISTENT, &m->arch, NULL);
        if (src != SQLITE_OK) rc = nas__store_fail(m->st, src, "prepare a dashboard query", err);
    }
    if (rc == NAS_OK) rc = nas_serve_model_refresh(m, 0, err);
    if (rc < 0) {
        nas_serve_model_close(&m);
        return rc;
    }
    m->loaded = 1;
    *out = m;
    return NAS_OK;
}

void nas_serve_model_close(nas_serve_model **mp) {
    nas_serve_model *m = *mp;
    if (!m) return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(m->q[i]);
    sqlite3_finalize(m->arch);
    nas_store_close(&m->st);
    nas_free(m->campaign);
    nas_free(m->strategy);
    nas_free(m->state);
    nas_free(m->halted);
    nas_free(m->rows);
    nas_free(m->text);
    for (int i = 0; i < m->n_workers; i++) {
        nas_free(m->workers[i].name);
        nas_free(m->workers[i].host);
        nas_free(m->workers[i].version);
    }
    nas_free(m->workers);
    for (int i = 0; i < NAS_SERVE_EVENT_RING; i++)
        nas_free(m->ring[i].json);
    for (int i = 0; i < NAS_SERVE_COLUMNS; i++)
        nas_json_buf_fini(&m->columns.col[i]);
    nas_free(m->columns.pareto);
    nas_free(m);
    *mp = NULL;
}

int nas_serve_model_refresh(nas_serve_model *m, int64_t now_ms, char *err) {
    (void)now_ms;
    sqlite3_stmt *s = stmt(m, Q_VERSION);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) return nas__store_fail(m->st, rc, "read data_version", err);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (v == m->data_version) return 0;
    int64_t t0 = nas_now_ns();
    /* One read transaction: every table as of the same commit.  A reader
     * on a WAL file takes no lock the writer waits for. */
    rc = sqlite3_exec(m->st->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return nas__store_fail(m->st, rc, "begin a read", err);
    rc = read_campaign(m, err);
    if (rc == NAS_OK) rc = read_workers(m, err);
    if (rc == NAS_OK) rc = scan_tasks(m, err);
    if (rc == NAS_OK) rc = read_events(m, err);
    if (rc == NAS_OK) rc = read_weights(m, err);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_reset(m->q[i]);
    sqlite3_reset(m->arch);
    sqlite3_exec(m->st->db, "COMMIT", NULL, NULL, NULL);
    if (rc < 0) return rc;
    m->data_version = v;
    m->refreshes++;
    m->last_refresh_ms = (double)(nas_now_ns() - t0) / 1e6;
    return 1;
}

/* ---- reading -------------------------------------------------------------------------------- */

void nas_serve_model_summary(const nas_serve_model *m, nas_serve_summary *s) {
    memset(s, 0, sizeof *s);
    s->campaign = m->campaign ? m->campaign : "";
    s->strategy = m->strategy ? m->strategy : "";
    s->state = m->state ? m->state : "unbound";
    s->halted = m->halted;
    s->path = nas_store_path(m->st);
    s->budget = m->budget;
    memcpy(s->counts, m->counts, sizeof s->counts);
    s->weights_archs = m->weights_archs;
    s->weights_bytes = m->weights_bytes;
    s->created_ms = m->created_ms;
    s->first_result_ms = m->n_rows ? m->rows[0].finished_ms : 0;
    s->last_result_ms = m->n_rows ? m->rows[m->n_rows - 1].finished_ms : 0;
    s->best = m->best;
    s->refreshes = m->refreshes;
    s->last_refresh_ms = m->last_refresh_ms;
}

int nas_serve_model_rows(const nas_serve_model *m, const nas_serve_row **rows) {
    *rows = m->rows;
    return m->n_rows;
}

const char *nas_serve_model_text(const nas_serve_model *m, const nas_serve_row *r) {
    return m->text + r->text;
}

nas_serve_colcache *nas_serve_model_colcache(nas_serve_model *m) {
    return &m->columns;
}

int nas_serve_model_workers(const nas_serve_model *m, const nas_serve_worker **w) {
    *w = m->workers;
    return m->n_workers;
}

int nas_serve_model_failures(const nas_serve_model *m, const nas_serve_count **c) {
    *c = m->failures;
    return m->n_failures;
}

double nas_serve_model_rate(const nas_serve_model *m, int64_t now_ms, int64_t window_ms) {
    int n = 0;
    for (int i = m->n_rows - 1; i >= 0 && m->rows[i].finished_ms > now_ms - window_ms; i--)
        n++;
    return window_ms > 0 ? (double)n * 1000.0 / (double)window_ms : 0;
}

/* A double that JSON can carry: NaN and infinities become null. */
static void json_num(nas_json_buf *b, double v) {
    if (isfinite(v))
        nas_json_buf_f64(b, v);
    else
        nas_json_buf_null(b);
}

void nas_serve_row_json(const nas_serve_model *m, const nas_serve_row *r, nas_json_buf *b) {
    /* The shape nasctl best/history and the status document use. */
    nas_store_record x;
    memset(&x, 0, sizeof x);
    x.task_id = r->task;
    x.seq = r->seq;
    x.arch_hash = r->hash;
    snprintf(x.arch_text, sizeof x.arch_text, "%s", nas_serve_model_text(m, r));
    x.stage = r->stage;
    x.attempt = r->attempt;
    x.accuracy = isfinite(r->accuracy) ? r->accuracy : 0;
    x.test_accuracy = r->test_accuracy;
    x.params = r->params;
    x.macs = r->macs;
    x.seconds = isfinite(r->seconds) ? r->seconds : 0;
    snprintf(x.worker, sizeof x.worker, "%s", m->workers[r->worker].name);
    x.finished_ms = r->finished_ms;
    nas_status_json_record(b, &x);
}

/* The genome's drawing; null when the text does not parse (a genome of
 * a space this binary does not know). */
static void json_dot(nas_json_buf *b, const char *text) {
    nas_genome g;
    char err[NAS_ERR_LEN], *dot = NULL;
    size_t cap = 1 << 16;
    if (text && nas_genome_parse(text, strlen(text), &g, err) == NAS_OK &&
        (dot = nas_malloc(cap)) && nas_genome_to_dot(&g, dot, cap) >= 0)
        nas_json_buf_str(b, dot);
    else
        nas_json_buf_null(b);
    nas_free(dot);
}

char *nas_serve_model_task_json(nas_serve_model *m, int64_t task, char *err) {
    sqlite3_stmt *s = stmt(m, Q_TASK);
    sqlite3_bind_int64(s, 1, task);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        nas_set_err(err, NAS_ENOTFOUND, "no task %lld", (long long)task);
        return NULL;
    }
    if (rc != SQLITE_ROW) {
        nas__store_fail(m->st, rc, "read a task", err);
        sqlite3_reset(s);
        return NULL;
    }
    char hex[20];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)nas__column_u64(s, 18));
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "task");
    nas_json_buf_i64(&b, task);
    static const char *const text_cols[][2] = {
        {"stage", "0"},   {"state", "1"},          {"worker", "3"}, {"failure_kind", "6"},
        {"failure", "7"}, {"result_worker", "16"}, {"arch", "17"}};
    for (size_t i = 0; i < sizeof text_cols / sizeof *text_cols; i++) {
        nas_json_buf_key(&b, text_cols[i][0]);
        nas_json_buf_str(&b, (const char *)sqlite3_column_text(s, atoi(text_cols[i][1])));
    }
    static const char *const int_cols[][2] = {{"attempt", "2"},     {"created_ms", "4"},
                                              {"finished_ms", "5"}, {"seq", "8"},
                                              {"params", "13"},     {"macs", "14"}};
    for (size_t i = 0; i < sizeof int_cols / sizeof *int_cols; i++) {
        int c = atoi(int_cols[i][1]);
        nas_json_buf_key(&b, int_cols[i][0]);
        if (sqlite3_column_type(s, c) == SQLITE_NULL)
            nas_json_buf_null(&b);
        else
            nas_json_buf_i64(&b, sqlite3_column_int64(s, c));
    }
    static const char *const real_cols[][2] = {
        {"accuracy", "9"}, {"test_accuracy", "10"}, {"loss", "11"}, {"seconds", "15"}};
    for (size_t i = 0; i < sizeof real_cols / sizeof *real_cols; i++) {
        nas_json_buf_key(&b, real_cols[i][0]);
        json_num(&b, col_real(s, atoi(real_cols[i][1])));
    }
    nas_json_buf_key(&b, "hash");
    nas_json_buf_str(&b, hex);
    nas_json_buf_key(&b, "parent");
    if (sqlite3_column_type(s, 19) == SQLITE_NULL) {
        nas_json_buf_null(&b);
    } else {
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)nas__column_u64(s, 19));
        nas_json_buf_str(&b, hex);
    }
    /* The curve and the fidelity are JSON already (the store wrote them);
     * they are parsed before being passed on, so a damaged row cannot
     * break the document. */
    static const char *const json_cols[][2] = {{"curve", "12"}, {"fidelity", "20"}};
    for (size_t i = 0; i < 2; i++) {
        const char *t = (const char *)sqlite3_column_text(s, atoi(json_cols[i][1]));
        nas_json *v = NULL;
        char jerr[NAS_ERR_LEN];
        nas_json_buf_key(&b, json_cols[i][0]);
        if (t && nas_json_parse(t, strlen(t), 0, &v, jerr) == NAS_OK)
            nas_json_buf_value(&b, v);
        else
            nas_json_buf_null(&b);
        nas_json_free(&v);
    }
    nas_json_buf_key(&b, "dot");
    json_dot(&b, (const char *)sqlite3_column_text(s, 17));
    nas_json_buf_obj_end(&b);
    sqlite3_reset(s);
    char *out = nas_json_buf_take(&b, NULL);
    if (!out) nas_set_err(err, NAS_ENOMEM, "out of memory");
    return out;
}
