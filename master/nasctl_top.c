/*
 * nasctl_top.c - `nasctl top` (a live terminal view of a campaign) and
 * `nasctl watch` (its committed results and log events as they happen, as
 * lines or JSON).  Both read the store through the dashboard's model
 * (serve_model.h), so they cost the master nothing and see what the web
 * page sees.
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "master/serve.h"
#include "master/serve_live.h"
#include "master/serve_model.h"
#include "master/serve_source.h"
#include "master/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct opts {
    nas_serve_source src;
    long count;
    int json, once;
} opts;

static void top_usage(FILE *f) {
    fprintf(f, "usage: nasctl top --db FILE [--master EP [--key BASE --master-key FILE]]\n"
               "                  [--refresh-ms N] [--once]\n\n"
               "A live view of a campaign, redrawn in place: progress, rate, best,\n"
               "workers and the latest results.  --master adds what only the running\n"
               "master knows (each worker's epoch); --once prints one frame and exits.\n");
}

static void watch_usage(FILE *f) {
    fprintf(f, "usage: nasctl watch --db FILE [--json] [--count N] [--refresh-ms N]\n\n"
               "Follows a campaign: one line per committed result, log event (failures,\n"
               "lease expiries, workers joining and leaving) and campaign state change,\n"
               "from now on.  --json prints {\"event\": KIND, \"data\": {...}} lines;\n"
               "--count N exits after N events.\n");
}

/* The options top and watch add to the source options. */
static int take(void *ctx, int ch, const char *arg) {
    opts *o = ctx;
    if (ch == 'j')
        o->json = 1;
    else if (ch == 'o')
        o->once = 1;
    else
        return nas_serve_source_long("nasctl watch", "count", arg, 1, 100000000, &o->count);
    return 0;
}

/* Options of both commands; `which` picks the command's own. */
static int parse_opts(const char *which, int argc, char **argv, opts *o) {
    static const struct option top_own[] = {{"once", no_argument, NULL, 'o'}, {0, 0, 0, 0}};
    static const struct option watch_own[] = {{"json", no_argument, NULL, 'j'},
                                              {"count", required_argument, NULL, 'c'},
                                              {0, 0, 0, 0}};
    int top = strcmp(which, "top") == 0;
    memset(o, 0, sizeof *o);
    o->src.refresh_ms = top ? 1000 : 250;
    return nas_serve_source_parse(argc, argv, top ? "nasctl top" : "nasctl watch",
                                  top ? top_usage : watch_usage, top ? top_own : watch_own, take,
                                  o, &o->src);
}

// ---- watch ------------------------------------------------------------------------------------

/* One event as a line for people: the payload's most telling fields. */
static void print_line(const nas_serve_event *e, const char *json) {
    nas_json *v = NULL;
    char err[NAS_ERR_LEN];
    if (nas_json_parse(json, strlen(json), 0, &v, err) != NAS_OK) {
        printf("%s %s\n", e->kind, json);
        return;
    }
    double acc = NAN, task = 0, params = 0;
    const char *worker = "", *kind = "", *text = "", *state = "", *name = "";
    nas_json_get_number(v, "accuracy", &acc, err);
    nas_json_get_number(v, "task", &task, err);
    nas_json_get_number(v, "params", &params, err);
    nas_json_get_string(v, "worker", &worker, err);
    nas_json_get_string(v, "kind", &kind, err);
    nas_json_get_string(v, "text", &text, err);
    nas_json_get_string(v, "state", &state, err);
    nas_json_get_string(v, "name", &name, err);
    if (strcmp(e->kind, "result") == 0)
        printf("result task %.0f accuracy %.4f params %.0f worker %s\n", task, acc, params, worker);
    else if (strcmp(e->kind, "log") == 0)
        printf("log %s %s\n", kind, text);
    else if (strcmp(e->kind, "campaign") == 0)
        printf("campaign %s\n", state);
    else
        printf("%s %s\n", e->kind, name);
    nas_json_free(&v);
}

int nas_watch_main(int argc, char **argv) {
    opts o;
    int rc = parse_opts("watch", argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    nas_serve_model *m;
    if (nas_serve_source_open("nasctl watch", &o.src, &m, NULL)) return 1;
    char err[NAS_ERR_LEN];
    int64_t cursor = nas_serve_model_last_event(m), seen = 0;
    rc = 0;
    while (!o.count || seen < o.count) {
        nas_sleep_ms(o.src.refresh_ms);
        if (nas_serve_model_refresh(m, nas_wall_ms(), err) < 0) {
            fprintf(stderr, "nasctl watch: %s\n", err);
            rc = 1;
            break;
        }
        const nas_serve_event *ev[256];
        int lost, n;
        while ((n = nas_serve_model_events(m, cursor, ev, 256, &lost)) > 0) {
            for (int i = 0; i < n && (!o.count || seen < o.count); i++, seen++) {
                const char *json = nas_serve_model_event_json(m, ev[i]);
                if (!json)
                    continue; /* out of memory */
                else if (o.json)
                    printf("{\"event\":\"%s\",\"id\":%lld,\"data\":%s}\n", ev[i]->kind,
                           (long long)ev[i]->id, json);
                else
                    print_line(ev[i], json);
            }
            cursor = ev[n - 1]->id;
        }
        if (fflush(stdout) != 0) break; /* the reader went away (a closed pipe) */
    }
    nas_serve_model_close(&m);
    return rc;
}

// ---- top ---------------------------------------------------------------------------------------

static const char *live_state(const nas_json *doc, const char *name, double *epoch,
                              double *epochs) {
    const nas_json *ws = doc ? nas_json_get(nas_json_get(doc, "dispatcher"), "workers") : NULL;
    char err[NAS_ERR_LEN];
    for (size_t i = 0; ws && ws->type == NAS_JSON_ARRAY && i < ws->len; i++) {
        const char *n = NULL, *s = NULL;
        if (nas_json_get_string(&ws->items[i], "name", &n, err) == NAS_OK && strcmp(n, name) == 0) {
            nas_json_get_number(&ws->items[i], "epoch", epoch, err);
            nas_json_get_number(&ws->items[i], "epochs", epochs, err);
            return nas_json_get_string(&ws->items[i], "state", &s, err) == NAS_OK ? s : "?";
        }
    }
    return NULL;
}

static void frame(nas_serve_model *m, const nas_json *live, int clear) {
    nas_serve_summary s;
    nas_serve_model_summary(m, &s);
    const nas_serve_row *r;
    int n = nas_serve_model_rows(m, &r);
    int64_t now = nas_wall_ms();
    if (clear) printf("\x1b[H\x1b[2J");
    printf("campaign %s (%s)  state %s  %s\n", s.campaign, s.strategy, s.state,
           live ? "master: live" : "master: not followed");
    int64_t done = s.counts[0][NAS_STORE_TASK_DONE];
    printf("search %lld/%lld done  %lld leased  %lld queued  %lld failed   final %lld done\n",
           (long long)done, (long long)s.budget, (long long)s.counts[0][NAS_STORE_TASK_LEASED],
           (long long)s.counts[0][NAS_STORE_TASK_QUEUED],
           (long long)s.counts[0][NAS_STORE_TASK_FAILED],
           (long long)s.counts[1][NAS_STORE_TASK_DONE]);
    printf("rate %.2f/s (last minute)  %.2f/s (last 10 s)\n", nas_serve_model_rate(m, now, 60000),
           nas_serve_model_rate(m, now, 10000));
    if (s.best >= 0)
        printf("best task %lld accuracy %.4f params %lld  %s\n", (long long)r[s.best].task,
               r[s.best].accuracy, (long long)r[s.best].params,
               nas_serve_model_text(m, &r[s.best]));
    const nas_serve_worker *w;
    int nw = nas_serve_model_workers(m, &w);
    printf("\n%-20s %-8s %8s %6s %8s %10s\n", "WORKER", "STATE", "TASK", "EPOCH", "RESULTS",
           "BUSY s");
    for (int i = 0; i < nw; i++) {
        double ep = 0, eps = 0;
        const char *st = live_state(live, w[i].name, &ep, &eps);
        if (!st) st = live ? "gone" : w[i].task >= 0 ? "busy" : "seen";
        char task[24] = "-", epoch[24] = "-";
        if (w[i].task >= 0) snprintf(task, sizeof task, "%lld", (long long)w[i].task);
        if (eps > 0) snprintf(epoch, sizeof epoch, "%.0f/%.0f", ep, eps);
        printf("%-20.20s %-8.8s %8s %6s %8lld %10.1f\n", w[i].name, st, task, epoch,
               (long long)w[i].tasks_done, w[i].busy_seconds);
    }
    printf("\n%8s %8s %10s %-20s %s\n", "TASK", "ACC", "PARAMS", "WORKER", "ARCHITECTURE");
    for (int i = n - 1; i >= 0 && i >= n - 10; i--)
        printf("%8lld %8.4f %10lld %-20.20s %.60s\n", (long long)r[i].task, r[i].accuracy,
               (long long)r[i].params, w[r[i].worker].name, nas_serve_model_text(m, &r[i]));
    fflush(stdout);
}

int nas_top_main(int argc, char **argv) {
    opts o;
    int rc = parse_opts("top", argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    nas_serve_model *m;
    nas_serve_master *mc;
    if (nas_serve_source_open("nasctl top", &o.src, &m, &mc)) return 1;
    char err[NAS_ERR_LEN];
    nas_json *live = NULL;
    int64_t live_ms = 0;
    /* With --master, the first frame waits briefly for its answer. */
    for (int i = 0; mc && !live && i < 20; i++) {
        char *doc = nas_serve_master_poll(mc, nas_now_ms(), 1000);
        if (doc && nas_json_parse(doc, strlen(doc), 0, &live, err) == NAS_OK)
            live_ms = nas_now_ms();
        nas_free(doc);
        if (!live) nas_sleep_ms(50);
    }
    int tty = isatty(STDOUT_FILENO) && !o.once;
    for (;;) {
        if (nas_serve_model_refresh(m, nas_wall_ms(), err) < 0) {
            fprintf(stderr, "nasctl top: %s\n", err);
            rc = 1;
            break;
        }
        char *doc = mc ? nas_serve_master_poll(mc, nas_now_ms(), 1000) : NULL;
        nas_json *fresh = NULL;
        if (doc && nas_json_parse(doc, strlen(doc), 0, &fresh, err) == NAS_OK) {
            nas_json_free(&live);
            live = fresh;
            live_ms = nas_now_ms();
        } else if (live && nas_now_ms() - live_ms > 5000) {
            nas_json_free(&live);
        }
        nas_free(doc);
        frame(m, live, tty);
        if (o.once) break;
        nas_sleep_ms(o.src.refresh_ms);
    }
    nas_json_free(&live);
    nas_serve_master_close(&mc);
    nas_serve_model_close(&m);
    return rc;
}
