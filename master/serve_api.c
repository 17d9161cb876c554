/*
 * serve_api.c - metrics and JSON answers of `nasctl serve` (serve_api.h).
 *
 * Everything is computed from the in-memory model, so an answer costs a
 * pass over the results at most (the history's sort, the Pareto front) and
 * never a query that scans the store.
 */
#include "master/serve_api.h"

#include "common/alloc.h"
#include "common/err.h"
#include "master/store.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_MAX_LIMIT 10000
#define RATE_WINDOW_MS    60000

static void answer_json(nas_serve_answer *a, int status, nas_json_buf *b) {
    a->status = status;
    a->ctype = "application/json";
    a->body = nas_json_buf_take(b, &a->len);
    if (!a->body) {
        a->status = 500;
        a->body = nas_strdup("{\"error\":\"out of memory\"}");
        a->len = a->body ? strlen(a->body) : 0;
    }
}

static void answer_error(nas_serve_answer *a, int status, const char *fmt, ...) {
    char msg[NAS_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "error");
    nas_json_buf_str(&b, msg);
    nas_json_buf_obj_end(&b);
    answer_json(a, status, &b);
}

/* A live worker object by name from the master's document, or NULL. */
static const nas_json *live_worker(const nas_serve_live *live, const char *name) {
    const nas_json *ws =
        live && live->doc ? nas_json_get(nas_json_get(live->doc, "dispatcher"), "workers") : NULL;
    for (size_t i = 0; ws && ws->type == NAS_JSON_ARRAY && i < ws->len; i++) {
        const char *n = NULL;
        char err[NAS_ERR_LEN];
        if (nas_json_get_string(&ws->items[i], "name", &n, err) == NAS_OK && strcmp(n, name) == 0)
            return &ws->items[i];
    }
    return NULL;
}

/* A worker's state: the master's word when it answers, else what the
 * store shows (a lease means busy). */
static const char *worker_state(const nas_serve_worker *w, const nas_serve_live *live) {
    const nas_json *lw = live_worker(live, w->name);
    const char *s = NULL;
    char err[NAS_ERR_LEN];
    if (lw && nas_json_get_string(lw, "state", &s, err) == NAS_OK) return s;
    if (live && live->doc) return "gone"; /* the master no longer knows it */
    return w->task >= 0 ? "busy" : "seen";
}

// ---- /metrics ---------------------------------------------------------------------------------

/* A label value in the text format: backslash, quote and newline escaped. */
static void label(nas_json_buf *b, const char *v) {
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\' || *p == '"')
            nas_json_buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            nas_json_buf_raw(b, "\\n", 2);
        else
            nas_json_buf_raw(b, p, 1);
    }
}

static void help(nas_json_buf *b, const char *name, const char *type, const char *text) {
    nas_json_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* The master's commit latency (its status document's "commits", written
 * by nas_status_json_commits) as a Prometheus histogram; nothing when no
 * master answers, since only the master can time its own commits. */
static void commit_histogram(nas_json_buf *b, const nas_serve_live *live) {
    const nas_json *c = live && live->doc ? nas_json_get(live->doc, "commits") : NULL;
    const nas_json *count = c ? nas_json_get(c, "count") : NULL;
    const nas_json *sum = c ? nas_json_get(c, "sum_seconds") : NULL;
    const nas_json *max = c ? nas_json_get(c, "max_seconds") : NULL;
    const nas_json *buckets = c ? nas_json_get(c, "buckets") : NULL;
    if (!count || count->type != NAS_JSON_NUMBER || !sum || sum->type != NAS_JSON_NUMBER ||
        !buckets || buckets->type != NAS_JSON_ARRAY)
        return;
    help(b, "nasd_master_commit_seconds", "histogram",
         "Time the master's store commits take (from the master).");
    for (size_t i = 0; i < buckets->len; i++) {
        const nas_json *p = &buckets->items[i];
        if (p->type != NAS_JSON_ARRAY || p->len != 2 || p->items[0].type != NAS_JSON_NUMBER ||
            p->items[1].type != NAS_JSON_NUMBER)
            continue;
        nas_json_buf_printf(b, "nasd_master_commit_seconds_bucket{le=\"%.6g\"} %.0f\n",
                            p->items[0].number, p->items[1].number);
    }
    nas_json_buf_printf(b, "nasd_master_commit_seconds_bucket{le=\"+Inf\"} %.0f\n", count->number);
    nas_json_buf_printf(b, "nasd_master_commit_seconds_sum %.9g\n", sum->number);
    nas_json_buf_printf(b, "nasd_master_commit_seconds_count %.0f\n", count->number);
    if (max && max->type == NAS_JSON_NUMBER) {
        help(b, "nasd_master_commit_max_seconds", "gauge",
             "The longest store commit of the running master (from the master).");
        nas_json_buf_printf(b, "nasd_master_commit_max_seconds %.9g\n", max->number);
    }
}

static void metrics(nas_serve_model *m, const nas_serve_live *live, int64_t now_ms,
                    nas_serve_answer *a) {
    nas_serve_summary s;
    nas_serve_model_summary(m, &s);
    const nas_serve_row *rows;
    int n = nas_serve_model_rows(m, &rows);
    nas_json_buf b;
    nas_json_buf_init(&b);
    help(&b, "nasd_campaign_info", "gauge", "The campaign this server reads (value 1).");
    nas_json_buf_printf(&b, "nasd_campaign_info{campaign=\"");
    label(&b, s.campaign);
    nas_json_buf_printf(&b, "\",strategy=\"");
    label(&b, s.strategy);
    nas_json_buf_printf(&b, "\",state=\"");
    label(&b, s.state);
    nas_json_buf_printf(&b, "\"} 1\n");
    help(&b, "nasd_budget_evaluations", "gauge", "Search evaluations the campaign may run.");
    nas_json_buf_printf(&b, "nasd_budget_evaluations %lld\n", (long long)s.budget);
    help(&b, "nasd_campaign_halted", "gauge",
         "1 while the circuit breaker's halt stands (workers.max_failed_in_a_row).");
    nas_json_buf_printf(&b, "nasd_campaign_halted %d\n", s.halted ? 1 : 0);
    help(&b, "nasd_tasks", "gauge", "Tasks by stage and state.");
    static const char *const states[] = {"queued", "leased", "done", "failed"};
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 4; k++)
            nas_json_buf_printf(&b, "nasd_tasks{stage=\"%s\",state=\"%s\"} %lld\n",
                                nas_store_stage_name(g), states[k], (long long)s.counts[g][k]);
    help(&b, "nasd_evaluations_total", "counter", "Results recorded (both stages).");
    nas_json_buf_printf(&b, "nasd_evaluations_total %d\n", n);
    help(&b, "nasd_evaluations_per_second", "gauge", "Results per second over the last minute.");
    nas_json_buf_printf(&b, "nasd_evaluations_per_second %.6g\n",
                        nas_serve_model_rate(m, now_ms, RATE_WINDOW_MS));
    help(&b, "nasd_best_accuracy", "gauge", "Best validation accuracy of the search stage.");
    nas_json_buf_printf(&b, "nasd_best_accuracy %.9g\n", s.best >= 0 ? rows[s.best].accuracy : 0);
    const nas_serve_worker *w;
    int nw = nas_serve_model_workers(m, &w);
    help(&b, "nasd_workers", "gauge", "Workers by state.");
    const char *seen[16];
    int64_t seen_n[16];
    int ns = 0;
    for (int i = 0; i < nw; i++) {
        const char *st = worker_state(&w[i], live);
        int j = 0;
        while (j < ns && strcmp(seen[j], st) != 0)
            j++;
        if (j == ns && ns < 16) {
            seen[ns] = st;
            seen_n[ns++] = 0;
        }
        if (j < ns) seen_n[j]++;
    }
    for (int j = 0; j < ns; j++) {
        nas_json_buf_printf(&b, "nasd_workers{state=\"");
        label(&b, seen[j]);
        nas_json_buf_printf(&b, "\"} %lld\n", (long long)seen_n[j]);
    }
    static const char *const per_worker[][3] = {
        {"nasd_worker_tasks_total", "counter", "Results trained by each worker."},
        {"nasd_worker_busy_seconds_total", "counter", "Training seconds of each worker."}};
    for (int k = 0; k < 2; k++) {
        help(&b, per_worker[k][0], per_worker[k][1], per_worker[k][2]);
        for (int i = 0; i < nw; i++) {
            nas_json_buf_printf(&b, "%s{worker=\"", per_worker[k][0]);
            label(&b, w[i].name);
            if (k == 0)
                nas_json_buf_printf(&b, "\"} %lld\n", (long long)w[i].tasks_done);
            else
                nas_json_buf_printf(&b, "\"} %.6g\n", w[i].busy_seconds);
        }
    }
    const nas_serve_count *f;
    int nf = nas_serve_model_failures(m, &f);
    help(&b, "nasd_failures_total", "counter",
         "Failed attempts by reason (lease-expired: the worker went silent).");
    for (int i = 0; i < nf; i++)
        nas_json_buf_printf(&b, "nasd_failures_total{reason=\"%s\"} %lld\n", f[i].name,
                            (long long)f[i].n);
    help(&b, "nasd_weights_bytes", "gauge", "Bytes of trained weights kept on disk.");
    nas_json_buf_printf(&b, "nasd_weights_bytes %lld\n", (long long)s.weights_bytes);
    help(&b, "nasd_weights_archs", "gauge", "Architectures with weights on disk.");
    nas_json_buf_printf(&b, "nasd_weights_archs %lld\n", (long long)s.weights_archs);
    double rc = NAN;
    if (live && live->doc) {
        const nas_json *v = nas_json_get(live->doc, "rank_correlation");
        if (v && v->type == NAS_JSON_NUMBER) rc = v->number;
    }
    if (!isnan(rc)) {
        help(&b, "nasd_fidelity_rank_correlation", "gauge",
             "Spearman correlation of search and final accuracy (from the master).");
        nas_json_buf_printf(&b, "nasd_fidelity_rank_correlation %.6g\n", rc);
    }
    commit_histogram(&b, live);
    help(&b, "nasd_master_up", "gauge", "1 when the followed master answered its status request.");
    nas_json_buf_printf(&b, "nasd_master_up %d\n", live && live->doc ? 1 : 0);
    help(&b, "nasd_serve_refresh_seconds", "gauge", "Time of the last store refresh.");
    nas_json_buf_printf(&b, "nasd_serve_refresh_seconds %.6g\n", s.last_refresh_ms / 1000.0);
    answer_json(a, 200, &b);
    a->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

// ---- JSON ---------------------------------------------------------------------------------------

static void status_doc(nas_serve_model *m, const nas_serve_live *live, int64_t now_ms,
                       nas_serve_answer *a) {
    nas_serve_summary s;
    nas_serve_model_summary(m, &s);
    const nas_serve_row *rows;
    nas_serve_model_rows(m, &rows);
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "campaign");
    nas_json_buf_str(&b, s.campaign);
    nas_json_buf_key(&b, "strategy");
    nas_json_buf_str(&b, s.strategy);
    nas_json_buf_key(&b, "state");
    nas_json_buf_str(&b, s.state);
    nas_json_buf_key(&b, "halted");
    if (s.halted)
        nas_json_buf_str(&b, s.halted);
    else
        nas_json_buf_null(&b);
    nas_json_buf_key(&b, "db");
    nas_json_buf_str(&b, s.path);
    nas_json_buf_key(&b, "budget");
    nas_json_buf_i64(&b, s.budget);
    static const char *const keys[][3] = {{"done", "0", "2"},           {"queued", "0", "0"},
                                          {"in_flight", "0", "1"},      {"failed", "0", "3"},
                                          {"final_done", "1", "2"},     {"final_queued", "1", "0"},
                                          {"final_in_flight", "1", "1"}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        nas_json_buf_key(&b, keys[i][0]);
        nas_json_buf_i64(&b, s.counts[atoi(keys[i][1])][atoi(keys[i][2])]);
    }
    nas_json_buf_key(&b, "evaluations_per_second");
    nas_json_buf_f64(&b, nas_serve_model_rate(m, now_ms, RATE_WINDOW_MS));
    static const char *const times[] = {"created_ms", "first_result_ms", "last_result_ms"};
    const int64_t tv[] = {s.created_ms, s.first_result_ms, s.last_result_ms};
    for (int i = 0; i < 3; i++) {
        nas_json_buf_key(&b, times[i]);
        nas_json_buf_i64(&b, tv[i]);
    }
    nas_json_buf_key(&b, "now_ms");
    nas_json_buf_i64(&b, now_ms);
    nas_json_buf_key(&b, "best");
    if (s.best >= 0)
        nas_serve_row_json(m, &rows[s.best], &b);
    else
        nas_json_buf_null(&b);
    nas_json_buf_key(&b, "weights");
    nas_json_buf_printf(&b, "{\"archs\":%lld,\"bytes\":%lld}", (long long)s.weights_archs,
                        (long long)s.weights_bytes);
    nas_json_buf_key(&b, "last_event");
    nas_json_buf_i64(&b, nas_serve_model_last_event(m));
    nas_json_buf_key(&b, "master");
    if (live && live->doc)
        nas_json_buf_value(&b, live->doc);
    else
        nas_json_buf_null(&b);
    nas_json_buf_obj_end(&b);
    answer_json(a, 200, &b);
}

static void workers_doc(nas_serve_model *m, const nas_serve_live *live, int64_t now_ms,
                        nas_serve_answer *a) {
    const nas_serve_worker *w;
    int nw = nas_serve_model_workers(m, &w);
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_arr_begin(&b);
    for (int i = 0; i < nw; i++) {
        nas_json_buf_obj_begin(&b);
        nas_json_buf_key(&b, "name");
        nas_json_buf_str(&b, w[i].name);
        nas_json_buf_key(&b, "host");
        nas_json_buf_str(&b, w[i].host);
        nas_json_buf_key(&b, "version");
        nas_json_buf_str(&b, w[i].version);
        nas_json_buf_key(&b, "cores");
        nas_json_buf_i64(&b, w[i].cores);
        nas_json_buf_key(&b, "state");
        nas_json_buf_str(&b, worker_state(&w[i], live));
        nas_json_buf_key(&b, "task");
        if (w[i].task >= 0)
            nas_json_buf_i64(&b, w[i].task);
        else
            nas_json_buf_null(&b);
        nas_json_buf_key(&b, "tasks_done");
        nas_json_buf_i64(&b, w[i].tasks_done);
        nas_json_buf_key(&b, "busy_seconds");
        nas_json_buf_f64(&b, w[i].busy_seconds);
        nas_json_buf_key(&b, "last_seen_ms_ago");
        nas_json_buf_i64(&b, w[i].in_table ? now_ms - w[i].last_seen_ms : -1);
        /* What only the master knows (epoch, kernel set, ...), as it says it. */
        nas_json_buf_key(&b, "live");
        const nas_json *lw = live_worker(live, w[i].name);
        if (lw)
            nas_json_buf_value(&b, lw);
        else
            nas_json_buf_null(&b);
        nas_json_buf_obj_end(&b);
    }
    nas_json_buf_arr_end(&b);
    answer_json(a, 200, &b);
}

static const char *const column_names[NAS_SERVE_COLUMNS] = {
    "task", "seq", "acc", "params", "macs", "sec", "worker", "t", "stage", "arch"};

/* Integers without printf: a million of them make the whole table. */
static void put_i64(nas_json_buf *b, int64_t v) {
    char tmp[24], *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    nas_json_buf_raw(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* A value with `digits` decimals (trailing zeros dropped): accuracy to
 * 1e-6, seconds to 0.1, as the page shows them. */
static void put_fixed(nas_json_buf *b, double v, int digits) {
    if (!isfinite(v) || fabs(v) > 1e12) v = 0;
    int64_t scale = 1;
    for (int i = 0; i < digits; i++)
        scale *= 10;
    int64_t q = (int64_t)llround(fabs(v) * (double)scale);
    if (v < 0 && q) nas_json_buf_raw(b, "-", 1);
    put_i64(b, q / scale);
    int64_t frac = q % scale;
    if (!frac) return;
    char d[16];
    int n = digits;
    while (frac % 10 == 0)
        frac /= 10, n--;
    for (int i = n - 1; i >= 0; i--, frac /= 10)
        d[i] = (char)('0' + frac % 10);
    nas_json_buf_raw(b, ".", 1);
    nas_json_buf_raw(b, d, (size_t)n);
}

static void put_column(nas_json_buf *b, const nas_serve_model *m, const nas_serve_row *x, int c) {
    switch (c) {
    case 0:
        put_i64(b, x->task);
        break;
    case 1:
        put_i64(b, x->seq);
        break;
    case 2:
        put_fixed(b, x->accuracy, 6);
        break;
    case 3:
        put_i64(b, x->params);
        break;
    case 4:
        put_i64(b, x->macs);
        break;
    case 5:
        put_fixed(b, x->seconds, 1);
        break;
    case 6:
        put_i64(b, x->worker);
        break;
    case 7:
        put_i64(b, x->finished_ms);
        break;
    case 8:
        put_i64(b, x->stage);
        break;
    default:
        nas_json_buf_str(b, nas_serve_model_text(m, x));
        break;
    }
}

void nas_serve_api_prepare(nas_serve_model *m) {
    nas_serve_colcache *cc = nas_serve_model_colcache(m);
    const nas_serve_row *r;
    int n = nas_serve_model_rows(m, &r);
    for (int c = 0; c < NAS_SERVE_COLUMNS; c++)
        for (int i = cc->n; i < n; i++) {
            if (i) nas_json_buf_raw(&cc->col[c], ",", 1);
            put_column(&cc->col[c], m, &r[i], c);
        }
    cc->n = n;
    for (int c = 0; c < NAS_SERVE_COLUMNS; c++)
        if (nas_json_buf_status(&cc->col[c]) != 0) {
            /* Out of memory: start over next time (answers build directly). */
            for (int k = 0; k < NAS_SERVE_COLUMNS; k++)
                nas_json_buf_fini(&cc->col[k]);
            cc->n = 0;
            break;
        }
}

/* The results in rows [from, to), one array per column: the page's table
 * in a fraction of the bytes of one object per row.  `last` > 0 asks for
 * the newest `last` rows instead (from = n - last): what a page shows
 * first, so that it is interactive before the rest arrives.  The page
 * loads the numbers first and the genome texts (half the bytes) after.
 * The whole table (from 0 to the end) is copied from the column cache;
 * anything else (a tail for each live update, the older rows behind the
 * first screen) is formatted. */
static void columns_doc(nas_serve_model *m, int64_t from, int64_t to, int64_t last, int fields,
                        nas_serve_answer *a) {
    const nas_serve_row *r;
    int n = nas_serve_model_rows(m, &r);
    if (to < 0 || to > n) to = n;
    if (last > 0) from = to > last ? to - last : 0;
    if (from < 0 || from > to) from = to;
    const nas_serve_worker *w;
    int nw = nas_serve_model_workers(m, &w);
    nas_serve_colcache *cc = nas_serve_model_colcache(m);
    if (from == 0) nas_serve_api_prepare(m);
    int cached = from == 0 && to == n && cc->n == n;
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_printf(&b, "{\"from\":%lld,\"to\":%lld,\"total\":%d,\"workers\":",
                        (long long)from, (long long)to, n);
    nas_json_buf_arr_begin(&b);
    for (int i = 0; i < nw; i++)
        nas_json_buf_str(&b, w[i].name);
    nas_json_buf_arr_end(&b);
    for (int c = 0; c < NAS_SERVE_COLUMNS; c++) {
        /* fields: 1 the numbers, 2 the genome texts, 3 both. */
        if (!(fields & (c == NAS_SERVE_COLUMNS - 1 ? 2 : 1))) continue;
        nas_json_buf_printf(&b, ",\"%s\":[", column_names[c]);
        if (cached && cc->col[c].len) {
            nas_json_buf_raw(&b, cc->col[c].data, cc->col[c].len);
        } else {
            for (int64_t i = from; i < to; i++) {
                if (i > from) nas_json_buf_raw(&b, ",", 1);
                put_column(&b, m, &r[i], c);
            }
        }
        nas_json_buf_raw(&b, "]", 1);
    }
    nas_json_buf_raw(&b, "}", 1);
    answer_json(a, 200, &b);
}

// ---- history: filter, sort, page -----------------------------------------------------------

typedef struct history_q {
    int stage, worker; /* -1: any */
    double min_acc;
    int64_t max_params;
    const char *q;
    int key, desc;
} history_q;

static const char *const sort_keys[] = {"seq",  "task",    "accuracy",   "params",
                                        "macs", "seconds", "finished_ms"};

static double sort_value(const nas_serve_row *r, int key) {
    switch (key) {
    case 1:
        return (double)r->task;
    case 2:
        return r->accuracy;
    case 3:
        return (double)r->params;
    case 4:
        return (double)r->macs;
    case 5:
        return r->seconds;
    case 6:
        return (double)r->finished_ms;
    default:
        return (double)r->seq;
    }
}

/* Sort the picked row indices by one key; ties keep completion order. */
typedef struct keyed {
    double v;
    int i;
} keyed;

static int keyed_asc(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i - y->i;
}

static int keyed_desc(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->i - y->i;
}

/* Move the k first rows by cmp (a total order) to p[0..k), in any order:
 * quickselect, expected linear time. */
static void select_first(keyed *p, int n, int k, int (*cmp)(const void *, const void *)) {
    int lo = 0, hi = n - 1;
    while (k > 0 && lo < hi) {
        keyed pivot = p[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp(&p[i], &pivot) < 0)
                i++;
            while (cmp(&p[j], &pivot) > 0)
                j--;
            if (i <= j) {
                keyed t = p[i];
                p[i++] = p[j];
                p[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
}

static int parse_num(const char *s, double *out) {
    char *end;
    if (!s || !*s) return 0;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 1;
}

static void history_doc(nas_serve_model *m, nas_serve_arg_fn arg, void *ctx, nas_serve_answer *a) {
    history_q hq = {.stage = -1, .worker = -1, .min_acc = -INFINITY, .max_params = INT64_MAX};
    double offset = 0, limit = 100, v;
    const char *bad = NULL;
    /* Bounds before any cast: a double beyond int64_t's range does not
     * convert (a hostile ?offset=1e300 must get a 400, not undefined
     * behaviour). */
    if (parse_num(arg(ctx, "offset"), &offset) < 0 || offset < 0 || offset > 1e15) bad = "offset";
    if (parse_num(arg(ctx, "limit"), &limit) < 0 || limit < 0 || limit > HISTORY_MAX_LIMIT)
        bad = "limit";
    if (parse_num(arg(ctx, "min_accuracy"), &hq.min_acc) < 0) bad = "min_accuracy";
    int pm = parse_num(arg(ctx, "max_params"), &v);
    if (pm < 0 || (pm > 0 && fabs(v) > 1e18))
        bad = "max_params";
    else if (pm > 0)
        hq.max_params = (int64_t)v;
    const char *s = arg(ctx, "sort");
    if (s) {
        hq.key = -1;
        for (int k = 0; k < (int)(sizeof sort_keys / sizeof *sort_keys); k++)
            if (strcmp(s, sort_keys[k]) == 0) hq.key = k;
        if (hq.key < 0) bad = "sort";
    }
    s = arg(ctx, "order");
    if (s && strcmp(s, "asc") != 0 && strcmp(s, "desc") != 0) bad = "order";
    hq.desc = s && strcmp(s, "desc") == 0;
    s = arg(ctx, "stage");
    if (s && strcmp(s, "any") != 0) {
        hq.stage = strcmp(s, "search") == 0 ? 0 : strcmp(s, "final") == 0 ? 1 : -2;
        if (hq.stage == -2) bad = "stage";
    }
    const nas_serve_worker *w;
    int nw = nas_serve_model_workers(m, &w);
    s = arg(ctx, "worker");
    if (s) {
        hq.worker = -2; /* a worker no result names: nothing matches */
        for (int i = 0; i < nw; i++)
            if (strcmp(w[i].name, s) == 0) hq.worker = i;
    }
    hq.q = arg(ctx, "q");
    if (bad) {
        answer_error(a, 400,
                     "bad value for %s (history takes offset, limit <= %d, sort, order, "
                     "stage, worker, min_accuracy, max_params, q)",
                     bad, HISTORY_MAX_LIMIT);
        return;
    }
    const nas_serve_row *r;
    int n = nas_serve_model_rows(m, &r);
    keyed *pick = n ? nas_malloc((size_t)n * sizeof *pick) : NULL;
    if (n && !pick) {
        answer_error(a, 500, "out of memory");
        return;
    }
    int np = 0;
    for (int i = 0; i < n; i++) {
        if ((hq.stage >= 0 && r[i].stage != hq.stage) ||
            (hq.worker != -1 && r[i].worker != hq.worker) || !(r[i].accuracy >= hq.min_acc) ||
            r[i].params > hq.max_params ||
            (hq.q && *hq.q && !strstr(nas_serve_model_text(m, &r[i]), hq.q)))
            continue;
        pick[np++] = (keyed){sort_value(&r[i], hq.key), i};
    }
    /* A page near the top (the usual question: the best 100) needs only
     * the first offset + limit rows in order: select them, then sort those. */
    int (*cmp)(const void *, const void *) = hq.desc ? keyed_desc : keyed_asc;
    int64_t need = (int64_t)offset + (int64_t)limit;
    if (need * 8 < np) {
        select_first(pick, np, (int)need, cmp);
        if (need > 1) qsort(pick, (size_t)need, sizeof *pick, cmp);
    } else if (np > 1) {
        qsort(pick, (size_t)np, sizeof *pick, cmp);
    }
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_printf(&b, "{\"total\":%d,\"matched\":%d,\"offset\":%lld,\"rows\":[", n, np,
                        (long long)offset);
    for (int64_t i = (int64_t)offset; i < np && i < (int64_t)(offset + limit); i++) {
        if (i > (int64_t)offset) nas_json_buf_raw(&b, ",", 1);
        nas_serve_row_json(m, &r[pick[i].i], &b);
    }
    nas_json_buf_raw(&b, "]}", 2);
    nas_free(pick);
    answer_json(a, 200, &b);
}

/* The front of (accuracy up, parameters down) over the search results:
 * by parameters ascending (accuracy descending among equals), a result is
 * on the front when it beats every smaller one.  O(n log n), where the
 * strategies' nas_pareto_front (which also weighs genomes) is quadratic. */
static void pareto_doc(nas_serve_model *m, nas_serve_answer *a) {
    const nas_serve_row *r;
    int n = nas_serve_model_rows(m, &r);
    /* The front changes only when results arrive: kept until then. */
    nas_serve_colcache *cc = nas_serve_model_colcache(m);
    if (cc->pareto && cc->pareto_n == n) {
        a->status = 200;
        a->ctype = "application/json";
        a->body = nas_malloc(cc->pareto_len + 1);
        if (a->body) {
            memcpy(a->body, cc->pareto, cc->pareto_len + 1);
            a->len = cc->pareto_len;
            return;
        }
    }
    keyed *k = n ? nas_malloc((size_t)n * sizeof *k) : NULL;
    if (n && !k) {
        answer_error(a, 500, "out of memory");
        return;
    }
    int nk = 0;
    for (int i = 0; i < n; i++)
        if (r[i].stage == 0 && isfinite(r[i].accuracy))
            k[nk++] = (keyed){(double)r[i].params - r[i].accuracy * 1e-3, i};
    if (nk > 1) qsort(k, (size_t)nk, sizeof *k, keyed_asc);
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_arr_begin(&b);
    double best = -INFINITY;
    for (int i = 0; i < nk; i++) {
        const nas_serve_row *x = &r[k[i].i];
        if (x->accuracy <= best) continue;
        best = x->accuracy;
        nas_serve_row_json(m, x, &b);
    }
    nas_json_buf_arr_end(&b);
    nas_free(k);
    answer_json(a, 200, &b);
    nas_free(cc->pareto);
    cc->pareto = a->status == 200 ? nas_malloc(a->len + 1) : NULL;
    if (cc->pareto) {
        memcpy(cc->pareto, a->body, a->len + 1);
        cc->pareto_len = a->len;
        cc->pareto_n = n;
    }
}

int nas_serve_api(nas_serve_model *m, const nas_serve_live *live, const char *path,
                  nas_serve_arg_fn arg, void *ctx, int64_t now_ms, nas_serve_answer *a) {
    memset(a, 0, sizeof *a);
    if (strcmp(path, "/metrics") == 0)
        metrics(m, live, now_ms, a);
    else if (strcmp(path, "/api/status") == 0)
        status_doc(m, live, now_ms, a);
    else if (strcmp(path, "/api/workers") == 0)
        workers_doc(m, live, now_ms, a);
    else if (strcmp(path, "/api/history") == 0)
        history_doc(m, arg, ctx, a);
    else if (strcmp(path, "/api/pareto") == 0)
        pareto_doc(m, a);
    else if (strcmp(path, "/api/columns") == 0) {
        double from = 0, to = -1, last = 0;
        const char *f = arg(ctx, "fields");
        int fields = !f || strcmp(f, "all") == 0 ? 3
                     : strcmp(f, "numbers") == 0 ? 1
                     : strcmp(f, "arch") == 0    ? 2
                                                 : 0;
        /* Each value is read before the next arg() call may reuse it. */
        int has = parse_num(arg(ctx, "to"), &to);
        int bad_to = has < 0 || (has && (to < 0 || to > 1e15));
        has = parse_num(arg(ctx, "last"), &last);
        int bad_last = has < 0 || (has && (last < 1 || last > 1e15));
        if (parse_num(arg(ctx, "from"), &from) < 0 || from < 0 || from > 1e15)
            answer_error(a, 400, "bad value for from (a row number)");
        else if (bad_to)
            answer_error(a, 400, "bad value for to (a row number)");
        else if (bad_last)
            answer_error(a, 400, "bad value for last (a number of rows >= 1)");
        else if (!fields)
            answer_error(a, 400, "bad value for fields (all, numbers or arch)");
        else
            columns_doc(m, (int64_t)from, (int64_t)to, (int64_t)last, fields, a);
    } else if (strncmp(path, "/api/task/", 10) == 0) {
        char *end, err[NAS_ERR_LEN];
        long long id = strtoll(path + 10, &end, 10);
        if (*end || end == path + 10 || id < 0) {
            answer_error(a, 400, "bad task id '%s'", path + 10);
            return NAS_OK;
        }
        char *doc = nas_serve_model_task_json(m, id, err);
        if (!doc) {
            answer_error(a, strstr(err, "no task") ? 404 : 500, "%s", err);
            return NAS_OK;
        }
        a->status = 200;
        a->ctype = "application/json";
        a->body = doc;
        a->len = strlen(doc);
    } else if (strncmp(path, "/api/", 5) == 0) {
        answer_error(a, 404, "no such API route '%s'", path);
    } else {
        return NAS_ENOTFOUND;
    }
    return NAS_OK;
}
