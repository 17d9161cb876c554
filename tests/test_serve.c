/*
 * test_serve.c - the dashboard's model and answers against a real store
 * file written through the store API: counts, results and workers as the
 * store holds them, incremental refreshes that see exactly the new
 * commits (and announce them on the event stream), /metrics values, the
 * history's filters, sort and paging, the Pareto front against a brute
 * force, one task with its curve and drawing, and a writer that commits
 * while a reader refreshes in a loop without ever waiting for it.
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "common/json.h"
#include "master/serve_api.h"
#include "master/serve_model.h"
#include "master/status.h"
#include "tests/serve_fixtures.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

static char g_db[PATH_MAX];
static const char *g_dir;

static void setup(void) {
    g_dir = nas_tmpdir_make();
    nas_path_join(g_db, sizeof g_db, g_dir, "c.db");
}

static void teardown(void) {
    nas_tmpdir_rm(g_dir);
}

/* Query arguments for nas_serve_api: "k=v&k=v" without escapes. */
static const char *arg(void *ctx, const char *key) {
    static char v[256];
    size_t kl = strlen(key);
    for (const char *p = ctx; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            snprintf(v, sizeof v, "%.*s", (int)(n - kl - 1), p + kl + 1);
            return v;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* GET path?query as the server would answer it; the body is returned
 * (nas_free) and the status checked. */
static char *get(nas_serve_model *m, const char *path, const char *query, int status) {
    nas_serve_answer a;
    ck_assert_int_eq(nas_serve_api(m, NULL, path, arg, (void *)query, 1000000, &a), NAS_OK);
    ck_assert_msg(a.status == status, "%s?%s: status %d: %s", path, query, a.status, a.body);
    return a.body;
}

static nas_json *get_json(nas_serve_model *m, const char *path, const char *query) {
    char *body = get(m, path, query, 200), err[NAS_ERR_LEN];
    nas_json *doc = NULL;
    ck_assert_msg(nas_json_parse(body, strlen(body), 0, &doc, err) == NAS_OK, "%s: %s", body, err);
    nas_free(body);
    return doc;
}

/* The value of a sample line "name{labels} value" in a metrics text. */
static double metric(const char *text, const char *sample) {
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s ", sample);
    const char *p = strstr(text, needle);
    ck_assert_msg(p != NULL, "no sample %s in:\n%s", sample, text);
    return strtod(p + strlen(needle), NULL);
}

START_TEST(test_serve_model_reads_the_store) {
    nas_store *st = fx_store(g_db, 40);
    char err[NAS_ERR_LEN];
    nas_serve_model *m = NULL;
    ck_assert_msg(nas_serve_model_open(&m, g_db, err) == NAS_OK, "%s", err);
    nas_serve_summary s;
    nas_serve_model_summary(m, &s);
    ck_assert_str_eq(s.campaign, "dash");
    ck_assert_str_eq(s.strategy, "evolution");
    ck_assert_int_eq(s.budget, 500);
    ck_assert_int_eq(s.counts[0][NAS_STORE_TASK_DONE], 40);
    ck_assert_int_eq(s.counts[0][NAS_STORE_TASK_QUEUED], 1); /* the failed attempt, requeued */
    ck_assert_int_eq(s.counts[0][NAS_STORE_TASK_LEASED], 1);
    ck_assert_int_eq(s.weights_bytes, 4096);
    const nas_serve_row *r;
    ck_assert_int_eq(nas_serve_model_rows(m, &r), 40);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(r[i].seq, i + 1);
        ck_assert(fabs(r[i].accuracy - fx_acc(i)) < 1e-12);
    }
    char text[256];
    fx_arch(7, text, sizeof text);
    ck_assert_str_eq(nas_serve_model_text(m, &r[7]), text);
    const nas_serve_worker *w;
    ck_assert_int_eq(nas_serve_model_workers(m, &w), 2);
    ck_assert_str_eq(w[0].name, "w1");
    ck_assert_int_eq(w[0].tasks_done, 20);
    ck_assert(fabs(w[1].busy_seconds - 40.0) < 1e-9);
    ck_assert_int_ge(w[0].task, 1); /* the task leased to w1 */
    const nas_serve_count *f;
    int nf = nas_serve_model_failures(m, &f);
    ck_assert_int_eq(nf, 2);
    ck_assert_str_eq(f[0].name, "training");
    ck_assert_int_eq(f[0].n, 1);
    ck_assert_int_eq(nas_serve_model_last_event(m), 0); /* history is not replayed */

    /* Nobody committed: a refresh is one PRAGMA and says so. */
    ck_assert_int_eq(nas_serve_model_refresh(m, 0, err), 0);
    nas_serve_model_close(&m);
    nas_store_close(&st);
}
END_TEST

/* Commits after the first load: the leased task finishes, new ones come
 * and go, another fails for good.  Each refresh must leave the model equal
 * to a fresh load, and announce each new result exactly once. */
START_TEST(test_serve_model_refresh_is_incremental) {
    nas_store *st = fx_store(g_db, 10);
    char err[NAS_ERR_LEN];
    nas_serve_model *m = NULL;
    ck_assert_int_eq(nas_serve_model_open(&m, g_db, err), NAS_OK);
    int64_t cursor = 0;
    int k = 100, announced = 0;
    for (int round = 0; round < 5; round++) {
        for (int j = 0; j < 3; j++, k++) {
            int64_t id = fx_add(st, k, "w2", 20000 + k);
            fx_result(st, id, k, "w2", 21000 + k);
        }
        int64_t stuck = fx_add(st, k++, "w1", 30000); /* stays leased: the frontier */
        ck_assert_int_gt(stuck, 0);
        ck_assert_int_eq(nas_serve_model_refresh(m, 0, err), 1);
        const nas_serve_event *ev[64];
        int lost, n = nas_serve_model_events(m, cursor, ev, 64, &lost);
        ck_assert_int_eq(lost, 0);
        for (int i = 0; i < n; i++) {
            if (strcmp(ev[i]->kind, "result") == 0) {
                /* Its payload is written when asked for, from its row. */
                ck_assert_ptr_null(ev[i]->json);
                const nas_serve_row *rows;
                nas_serve_model_rows(m, &rows);
                char want[48];
                snprintf(want, sizeof want, "\"task\":%lld", (long long)rows[ev[i]->row].task);
                const char *json = nas_serve_model_event_json(m, ev[i]);
                ck_assert_ptr_nonnull(json);
                ck_assert_msg(strstr(json, want), "%s without %s", json, want);
                ck_assert_ptr_eq(nas_serve_model_event_json(m, ev[i]), json); /* kept */
                announced++;
            }
            cursor = ev[i]->id;
        }
        nas_serve_model *fresh = NULL;
        ck_assert_int_eq(nas_serve_model_open(&fresh, g_db, err), NAS_OK);
        nas_serve_summary a, b;
        nas_serve_model_summary(m, &a);
        nas_serve_model_summary(fresh, &b);
        ck_assert_mem_eq(a.counts, b.counts, sizeof a.counts);
        const nas_serve_row *ra, *rb;
        int na = nas_serve_model_rows(m, &ra), nb = nas_serve_model_rows(fresh, &rb);
        ck_assert_int_eq(na, nb);
        for (int i = 0; i < na; i++) {
            ck_assert_int_eq(ra[i].task, rb[i].task);
            ck_assert_int_eq(ra[i].seq, rb[i].seq);
        }
        nas_serve_model_close(&fresh);
    }
    ck_assert_int_eq(announced, 15);
    /* The leased task of the fixture finishes now, below the frontier
     * the later tasks would have moved it to had it been finished. */
    nas_store_task_info *leased = NULL;
    int nl = nas_store_task_list(st, NAS_STORE_TASK_LEASED, NAS_STORE_STAGE_ANY, &leased, err);
    ck_assert_int_ge(nl, 1);
    fx_result(st, leased[0].id, 3, leased[0].worker, 50000);
    nas_free(leased);
    ck_assert_int_eq(nas_serve_model_refresh(m, 0, err), 1);
    const nas_serve_row *r;
    ck_assert_int_eq(nas_serve_model_rows(m, &r), 26);
    nas_serve_model_close(&m);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_serve_metrics_values) {
    nas_store *st = fx_store(g_db, 30);
    char err[NAS_ERR_LEN];
    nas_serve_model *m = NULL;
    ck_assert_int_eq(nas_serve_model_open(&m, g_db, err), NAS_OK);
    char *t = get(m, "/metrics", "", 200);
    ck_assert_int_eq(metric(t, "nasd_tasks{stage=\"search\",state=\"done\"}"), 30);
    ck_assert_int_eq(metric(t, "nasd_tasks{stage=\"search\",state=\"leased\"}"), 1);
    ck_assert_int_eq(metric(t, "nasd_evaluations_total"), 30);
    double best = 0;
    for (int i = 0; i < 30; i++)
        best = fmax(best, fx_acc(i));
    ck_assert(fabs(metric(t, "nasd_best_accuracy") - best) < 1e-6);
    ck_assert_int_eq(metric(t, "nasd_worker_tasks_total{worker=\"w2\"}"), 15);
    ck_assert_int_eq(metric(t, "nasd_failures_total{reason=\"training\"}"), 1);
    ck_assert_int_eq(metric(t, "nasd_failures_total{reason=\"lease-expired\"}"), 0);
    ck_assert_int_eq(metric(t, "nasd_weights_bytes"), 4096);
    ck_assert_int_eq(metric(t, "nasd_budget_evaluations"), 500);
    ck_assert_int_eq(metric(t, "nasd_master_up"), 0);
    ck_assert_int_eq(metric(t, "nasd_campaign_halted"), 0);
    /* A circuit-breaker halt in the log stands until a resume follows it. */
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(
            nas_store_event_append(
                st, 3100 + k, k ? NAS_STORE_EVENT_RESUMED : NAS_STORE_EVENT_HALTED, "test", err),
            NAS_OK);
        ck_assert_int_ge(nas_serve_model_refresh(m, 0, err), 0);
        char *h = get(m, "/metrics", "", 200);
        ck_assert_int_eq(metric(h, "nasd_campaign_halted"), !k);
        nas_free(h);
    }
    /* The fixture's results finished at 3000 + 10 i ms: at 3300 all 30
     * lie in the last minute. */
    nas_serve_answer a;
    ck_assert_int_eq(nas_serve_api(m, NULL, "/metrics", arg, "", 3300, &a), NAS_OK);
    ck_assert(fabs(metric(a.body, "nasd_evaluations_per_second") - 0.5) < 1e-9);
    nas_free(a.body);
    /* Every sample line has a HELP and a TYPE before it. */
    for (char *line = t; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line == '#') continue;
        char name[128];
        ck_assert_int_eq(sscanf(line, "%127[a-z_]", name), 1);
        char type[160];
        snprintf(type, sizeof type, "# TYPE %s ", name);
        ck_assert_msg(strstr(t, type) && strstr(t, type) < line, "no TYPE before %s", name);
    }
    nas_free(t);
    nas_serve_model_close(&m);
    nas_store_close(&st);
}
END_TEST

/* The master's commit latency: its store counts every real COMMIT (one
 * per group-committed batch, however many calls it held; one per call
 * outside a batch), and /metrics turns the master's "commits" document
 * into a Prometheus histogram whose buckets agree with the counts. */
START_TEST(test_serve_commit_latency) {
    nas_store *st = fx_store(g_db, 20);
    char err[NAS_ERR_LEN];
    nas_store_commit_stats c0, c1, c2;
    nas_store_commit_stats_get(st, &c0);
    ck_assert_int_ge(c0.count, 1);
    ck_assert_int_eq(nas_store_batch_begin(st, err), NAS_OK);
    for (int i = 0; i < 10; i++) {
        int64_t id = fx_add(st, 100 + i, "w1", 20000 + i);
        fx_result(st, id, 100 + i, "w1", 21000 + i);
    }
    nas_store_commit_stats_get(st, &c1);
    ck_assert_int_eq(c1.count, c0.count); /* nothing durable inside the batch */
    ck_assert_int_eq(nas_store_batch_commit(st, err), NAS_OK);
    nas_store_commit_stats_get(st, &c1);
    ck_assert_int_eq(c1.count, c0.count + 1);
    fx_add(st, 200, "w2", 30000); /* its own transaction */
    nas_store_commit_stats_get(st, &c2);
    ck_assert_int_eq(c2.count, c1.count + 1);
    ck_assert(c2.sum_s > c1.sum_s && c2.max_s > 0 && c2.max_s <= c2.sum_s);
    for (int i = 1; i < NAS_STORE_COMMIT_BUCKETS; i++)
        ck_assert_int_ge(c2.le[i], c2.le[i - 1]);
    ck_assert_int_le(c2.le[NAS_STORE_COMMIT_BUCKETS - 1], c2.count);
    /* A reader commits nothing. */
    nas_store *ro = NULL;
    ck_assert_int_eq(nas_store_open_ro(&ro, g_db, err), NAS_OK);
    nas_store_commit_stats_get(ro, &c1);
    ck_assert_int_eq(c1.count, 0);
    nas_store_close(&ro);

    /* The master's document, as nas_campaign_status_json writes it. */
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_status_json_commits(&b, &c2);
    nas_json_buf_obj_end(&b);
    char *text = nas_json_buf_take(&b, NULL);
    nas_json *doc = NULL;
    ck_assert_int_eq(nas_json_parse(text, strlen(text), 0, &doc, err), NAS_OK);
    nas_serve_model *m = NULL;
    ck_assert_int_eq(nas_serve_model_open(&m, g_db, err), NAS_OK);
    nas_serve_live live = {.doc = doc, .fetched_ms = 1000, .endpoint = "tcp://127.0.0.1:1"};
    nas_serve_answer a;
    ck_assert_int_eq(nas_serve_api(m, &live, "/metrics", arg, "", 1000000, &a), NAS_OK);
    ck_assert_int_eq(metric(a.body, "nasd_master_commit_seconds_count"), c2.count);
    ck_assert_int_eq(metric(a.body, "nasd_master_commit_seconds_bucket{le=\"+Inf\"}"), c2.count);
    ck_assert_int_eq(metric(a.body, "nasd_master_commit_seconds_bucket{le=\"0.001\"}"), c2.le[3]);
    ck_assert_int_eq(metric(a.body, "nasd_master_commit_seconds_bucket{le=\"1\"}"),
                     c2.le[NAS_STORE_COMMIT_BUCKETS - 1]);
    ck_assert(fabs(metric(a.body, "nasd_master_commit_seconds_sum") - c2.sum_s) < 1e-6);
    ck_assert(fabs(metric(a.body, "nasd_master_commit_max_seconds") - c2.max_s) < 1e-6);
    ck_assert_ptr_nonnull(strstr(a.body, "# TYPE nasd_master_commit_seconds histogram\n"));
    nas_free(a.body);
    /* Without a master nobody can know it: no such family at all. */
    char *t = get(m, "/metrics", "", 200);
    ck_assert_ptr_null(strstr(t, "nasd_master_commit"));
    nas_free(t);
    nas_json_free(&doc);
    nas_free(text);
    nas_serve_model_close(&m);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_serve_history_filter_sort_page) {
    nas_store *st = fx_store(g_db, 60);
    char err[NAS_ERR_LEN];
    nas_serve_model *m = NULL;
    ck_assert_int_eq(nas_serve_model_open(&m, g_db, err), NAS_OK);
    nas_json *d = get_json(m, "/api/history", "sort=accuracy&order=desc&limit=5&offset=2");
    ck_assert(nas_json_get(d, "total")->number == 60);
    ck_assert(nas_json_get(d, "matched")->number == 60);
    const nas_json *rows = nas_json_get(d, "rows");
    ck_assert_int_eq(rows->len, 5);
    double prev = 2;
    for (size_t i = 0; i < rows->len; i++) {
        double acc = nas_json_get(&rows->items[i], "accuracy")->number;
        ck_assert(acc <= prev);
        prev = acc;
    }
    /* Two skipped: the third best is the first of the page. */
    double sorted[60];
    for (int i = 0; i < 60; i++)
        sorted[i] = fx_acc(i);
    for (int i = 0; i < 60; i++)
        for (int j = i + 1; j < 60; j++)
            if (sorted[j] > sorted[i]) {
                double x = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = x;
            }
    ck_assert(fabs(nas_json_get(&rows->items[0], "accuracy")->number - sorted[2]) < 1e-12);
    nas_json_free(&d);

    /* The top of a page is selected, not fully sorted: it must equal the
     * same rows of a full sort (ties included: keys repeat here). */
    for (int desc = 0; desc < 2; desc++) {
        const char *qs[2][2] = {
            {"sort=params&order=asc&offset=3&limit=4", "sort=params&order=asc&limit=60"},
            {"sort=params&order=desc&offset=3&limit=4", "sort=params&order=desc&limit=60"}};
        nas_json *part = get_json(m, "/api/history", qs[desc][0]);
        nas_json *full = get_json(m, "/api/history", qs[desc][1]);
        const nas_json *pr = nas_json_get(part, "rows"), *fr = nas_json_get(full, "rows");
        ck_assert_int_eq(pr->len, 4);
        for (size_t i = 0; i < 4; i++)
            ck_assert(nas_json_get(&pr->items[i], "task")->number ==
                      nas_json_get(&fr->items[i + 3], "task")->number);
        nas_json_free(&part);
        nas_json_free(&full);
    }

    d = get_json(m, "/api/history", "worker=w2&min_accuracy=0.7&q=nor_conv_3x3&limit=1000");
    int expect = 0;
    char text[256];
    for (int i = 0; i < 60; i++) {
        fx_arch(i, text, sizeof text);
        expect += i % 2 == 1 && fx_acc(i) >= 0.7 && strstr(text, "nor_conv_3x3");
    }
    ck_assert_int_gt(expect, 0);
    ck_assert(nas_json_get(d, "matched")->number == expect);
    rows = nas_json_get(d, "rows");
    for (size_t i = 0; i < rows->len; i++)
        ck_assert_str_eq(nas_json_get(&rows->items[i], "worker")->str, "w2");
    nas_json_free(&d);

    char *bad = get(m, "/api/history", "sort=colour", 400);
    ck_assert_ptr_nonnull(strstr(bad, "sort"));
    nas_free(bad);
    bad = get(m, "/api/history", "limit=999999", 400);
    ck_assert_ptr_nonnull(strstr(bad, "limit"));
    nas_free(bad);
    nas_free(get(m, "/api/nothing", "", 404));
    nas_serve_answer a;
    ck_assert_int_eq(nas_serve_api(m, NULL, "/elsewhere", arg, "", 0, &a), NAS_ENOTFOUND);
    nas_serve_model_close(&m);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_serve_pareto_and_task) {
    nas_store *st = fx_store(g_db, 80);
    char err[NAS_ERR_LEN];
    nas_serve_model *m = NULL;
    ck_assert_int_eq(nas_serve_model_open(&m, g_db, err), NAS_OK);
    nas_json *d = get_json(m, "/api/pareto", "");
    /* Brute force: i is on the front when no j is at least as good on
     * both and better on one (ties of both: the earlier one stays). */
    int expect = 0;
    for (int i = 0; i < 80; i++) {
        int dominated = 0;
        for (int j = 0; j < 80 && !dominated; j++) {
            double ai = fx_acc(i), aj = fx_acc(j);
            int64_t pi = fx_params(i), pj = fx_params(j);
            dominated = j != i && aj >= ai && pj <= pi && (aj > ai || pj < pi || j < i);
        }
        expect += !dominated;
    }
    ck_assert_int_eq(d->len, expect);
    nas_json_free(&d);

    d = get_json(m, "/api/task/3", "");
    ck_assert_str_eq(nas_json_get(d, "state")->str, "done");
    const nas_json *curve = nas_json_get(d, "curve");
    ck_assert_int_eq(curve->len, 3);
    ck_assert(fabs(curve->items[2].number - fx_acc(2)) < 1e-6);
    ck_assert_ptr_nonnull(strstr(nas_json_get(d, "dot")->str, "digraph"));
    nas_json_free(&d);
    nas_free(get(m, "/api/task/99999", "", 404));
    nas_free(get(m, "/api/task/abc", "", 400));

    d = get_json(m, "/api/columns", "from=70");
    ck_assert(nas_json_get(d, "from")->number == 70);
    ck_assert_int_eq(nas_json_get(d, "task")->len, 10);
    ck_assert_int_eq(nas_json_get(d, "arch")->len, 10);
    nas_json_free(&d);
    d = get_json(m, "/api/status", "");
    ck_assert(nas_json_get(d, "done")->number == 80);
    ck_assert_int_eq(nas_json_get(d, "master")->type, NAS_JSON_NULL);
    nas_json_free(&d);
    d = get_json(m, "/api/workers", "");
    ck_assert_int_eq(d->len, 2);
    ck_assert_str_eq(nas_json_get(&d->items[0], "state")->str, "busy");
    nas_json_free(&d);
    /* Kept until results arrive, then computed again. */
    char *once = get(m, "/api/pareto", "", 200), *twice = get(m, "/api/pareto", "", 200);
    ck_assert_str_eq(once, twice);
    nas_free(once);
    nas_free(twice);
    int64_t best = fx_add(st, 4000, "w1", 90000);
    nas_store_result top = {.accuracy = 0.999,
                            .loss = 0.1,
                            .test_accuracy = NAN,
                            .params = 10,
                            .macs = 400,
                            .seconds = 1,
                            .worker = "w1"};
    ck_assert_int_eq(nas_store_put_result(st, best, 1, &top, NULL, 0, 91000, err),
                     NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_serve_model_refresh(m, 0, err), 1);
    d = get_json(m, "/api/pareto", "");
    ck_assert_int_eq(d->len, 1); /* the new result dominates all */
    nas_json_free(&d);
    nas_serve_model_close(&m);
    nas_store_close(&st);
}
END_TEST

/* The dashboard must never slow the master: a reader refreshing as fast
 * as it can while the writer commits one result per transaction.  Every
 * commit succeeds (no NAS_EAGAIN) and none waits anywhere near the busy
 * timeout. */
typedef struct reader {
    const char *db;
    volatile int stop;
    int refreshes;
} reader;

static void *read_loop(void *arg) {
    reader *r = arg;
    char err[NAS_ERR_LEN];
    nas_serve_model *m = NULL;
    ck_assert_int_eq(nas_serve_model_open(&m, r->db, err), NAS_OK);
    while (!r->stop) {
        ck_assert_int_ge(nas_serve_model_refresh(m, 0, err), 0);
        r->refreshes++;
    }
    nas_serve_model_close(&m);
    return NULL;
}

/* The whole-table answer comes from the column cache, which must follow
 * the rows as they are appended; a tail is formatted directly.  Both must
 * say the same as the rows. */
START_TEST(test_serve_columns_cache) {
    nas_store *st = fx_store(g_db, 20);
    char err[NAS_ERR_LEN];
    nas_serve_model *m = NULL;
    ck_assert_int_eq(nas_serve_model_open(&m, g_db, err), NAS_OK);
    for (int round = 0; round < 3; round++) {
        nas_json *d = get_json(m, "/api/columns", "from=0");
        const nas_serve_row *r;
        int n = nas_serve_model_rows(m, &r);
        const nas_json *acc = nas_json_get(d, "acc"), *task = nas_json_get(d, "task");
        const nas_json *sec = nas_json_get(d, "sec"), *arch = nas_json_get(d, "arch");
        ck_assert_int_eq(acc->len, n);
        ck_assert_int_eq(arch->len, n);
        for (int i = 0; i < n; i++) {
            ck_assert(fabs(acc->items[i].number - r[i].accuracy) < 1e-6);
            ck_assert(task->items[i].number == r[i].task);
            ck_assert(fabs(sec->items[i].number - r[i].seconds) < 0.051);
            ck_assert_str_eq(arch->items[i].str, nas_serve_model_text(m, &r[i]));
        }
        nas_json_free(&d);
        d = get_json(m, "/api/columns", "from=0&fields=numbers");
        ck_assert_ptr_null(nas_json_get(d, "arch"));
        ck_assert_int_eq(nas_json_get(d, "params")->len, n);
        nas_json_free(&d);
        d = get_json(m, "/api/columns", "from=3&fields=arch");
        ck_assert_ptr_null(nas_json_get(d, "acc"));
        ck_assert_int_eq(nas_json_get(d, "arch")->len, n - 3);
        nas_json_free(&d);
        /* The page's first screen (the newest rows), then the older ones
         * up to where it began: together every row once. */
        d = get_json(m, "/api/columns", "last=5&fields=numbers");
        ck_assert_int_eq((int)nas_json_get(d, "from")->number, n - 5);
        ck_assert_int_eq((int)nas_json_get(d, "to")->number, n);
        ck_assert_int_eq((int)nas_json_get(d, "total")->number, n);
        ck_assert_int_eq(nas_json_get(d, "task")->len, 5);
        ck_assert(nas_json_get(d, "task")->items[4].number == r[n - 1].task);
        nas_json_free(&d);
        d = get_json(m, "/api/columns", round ? "from=0&to=1000000" : "from=2&to=7");
        int lo = round ? 0 : 2, hi = round ? n : 7;
        ck_assert_int_eq(nas_json_get(d, "task")->len, hi - lo);
        ck_assert_int_eq(nas_json_get(d, "arch")->len, hi - lo);
        for (int i = lo; i < hi; i++)
            ck_assert(nas_json_get(d, "task")->items[i - lo].number == r[i].task);
        nas_json_free(&d);
        d = get_json(m, "/api/columns", "last=1000000");
        ck_assert_int_eq((int)nas_json_get(d, "from")->number, 0);
        nas_json_free(&d);
        for (int k = 0; k < 4; k++) {
            int64_t id = fx_add(st, 1000 + round * 10 + k, "w1", 80000);
            fx_result(st, id, 1000 + round * 10 + k, "w1", 81000);
        }
        ck_assert_int_eq(nas_serve_model_refresh(m, 0, err), 1);
    }
    nas_free(get(m, "/api/columns", "fields=colour", 400));
    nas_free(get(m, "/api/columns", "last=0", 400));
    nas_free(get(m, "/api/columns", "to=-1", 400));
    nas_serve_model_close(&m);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_serve_never_blocks_a_commit) {
    nas_store *st = fx_store(g_db, 2000);
    reader rd = {.db = g_db};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, read_loop, &rd), 0);
    int64_t worst = 0;
    for (int k = 3000; k < 3300; k++) {
        int64_t t0 = nas_now_ms();
        int64_t id = fx_add(st, k, "w1", 100000 + k);
        fx_result(st, id, k, "w1", 100000 + k);
        int64_t dt = nas_now_ms() - t0;
        if (dt > worst) worst = dt;
    }
    rd.stop = 1;
    pthread_join(th, NULL);
    ck_assert_int_gt(rd.refreshes, 10);
    ck_assert_msg(worst < 1000, "a commit waited %lld ms", (long long)worst);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_serve_refuses_bad_files) {
    char err[NAS_ERR_LEN], path[PATH_MAX];
    nas_serve_model *m = NULL;
    nas_path_join(path, sizeof path, g_dir, "missing.db");
    ck_assert_int_lt(nas_serve_model_open(&m, path, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "missing.db"));
    nas_path_join(path, sizeof path, g_dir, "junk.db");
    ck_assert_int_eq(nas_write_file(path, "not sqlite at all, not at all", 29, 0), 0);
    ck_assert_int_eq(nas_serve_model_open(&m, path, err), NAS_EFORMAT);
    ck_assert_ptr_null(m);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("serve");
    TCase *tc = tcase_create("model");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_serve_model_reads_the_store);
    tcase_add_test(tc, test_serve_model_refresh_is_incremental);
    tcase_add_test(tc, test_serve_metrics_values);
    tcase_add_test(tc, test_serve_commit_latency);
    tcase_add_test(tc, test_serve_history_filter_sort_page);
    tcase_add_test(tc, test_serve_pareto_and_task);
    tcase_add_test(tc, test_serve_columns_cache);
    tcase_add_test(tc, test_serve_never_blocks_a_commit);
    tcase_add_test(tc, test_serve_refuses_bad_files);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
