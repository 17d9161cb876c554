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
#include "master/store.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct opts {
    const char *db, *master, *key, *master_key;
    long refresh_ms, count;
    int json, once;
} opts;

/* Options of both commands; `which` names the command in messages. */
static int parse_opts(const char *which, int argc, char **argv, opts *o) {
    static const struct option longs[] = {{"db", required_argument, 0, 'd'},
                                          {"master", required_argument, 0, 'm'},
                                          {"key", required_argument, 0, 'k'},
                                          {"master-key", required_argument, 0, 'K'},
                                          {"refresh-ms", required_argument, 0, 'r'},
                                          {"count", required_argument, 0, 'c'},
                                          {"json", no_argument, 0, 'j'},
                                          {"once", no_argument, 0, 'o'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->refresh_ms = strcmp(which, "top") == 0 ? 1000 : 250;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'd':
            o->db = optarg;
            break;
        case 'm':
            o->master = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'K':
            o->master_key = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'o':
            o->once = 1;
            break;
        case 'r':
        case 'c': {
            long v = strtol(optarg, &end, 10);
            if (*end || v < (ch == 'r' ? 10 : 1) || v > 100000000) {
                fprintf(stderr, "nasctl %s: --%s wants a positive integer, got '%s'\n", which,
                        ch == 'r' ? "refresh-ms" : "count", optarg);
                return 2;
            }
            *(ch == 'r' ? &o->refresh_ms : &o->count) = v;
            break;
        }
        case 'h':
            if (strcmp(which, "top") == 0)
                printf("usage: nasctl top --db FILE [--master EP [--key BASE --master-key FILE]]\n"
                       "                  [--refresh-ms N] [--once]\n\n"
                       "A live view of a campaign, redrawn in place: progress, rate, best,\n"
                       "workers and the latest results.  --master adds what only the running\n"
                       "master knows (each worker's epoch); --once prints one frame and exits.\n");
            else
                printf("usage: nasctl watch --db FILE [--json] [--count N] [--refresh-ms N]\n\n"
                       "Follows a campaign: one line per committed result, log event (failures,\n"
                       "lease expiries, workers joining and leaving) and campaign state change,\n"
                       "from now on.  --json prints {\"event\": KIND, \"data\": {...}} lines;\n"
                       "--count N exits after N events.\n");
            return -1;
        default:
            fprintf(stderr, "nasctl %s: unknown option or missing value '%s' (try --help)\n", which,
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nasctl %s: unexpected argument '%s'\n", which, argv[optind]);
        return 2;
    }
    if (!o->db) {
        fprintf(stderr, "nasctl %s: --db FILE is required\n", which);
        return 2;
    }
    return 0;
}

static int open_model(const char *which, const opts *o, nas_serve_model **m) {
    char err[NAS_ERR_LEN];
    if (nas_serve_model_open(m, o->db, err) < 0) {
        fprintf(stderr, "nasctl %s: %s\n", which, err);
        return 1;
    }
    return 0;
}

// ---- watch ------------------------------------------------------------------------------------

/* One event as a line for people: the payload's most telling fields. */
static void print_line(const nas_serve_event *e) {
    nas_json *v = NULL;
    char err[NAS_ERR_LEN];
    if (nas_json_parse(e->json, strlen(e->json), 0, &v, err) != NAS_OK) {
        printf("%s %s\n", e->kind, e->json);
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
    if (open_model("watch", &o, &m)) return 1;
    char err[NAS_ERR_LEN];
    int64_t cursor = nas_serve_model_last_event(m), seen = 0;
    rc = 0;
    while (!o.count || seen < o.count) {
        nas_sleep_ms(o.refresh_ms);
        if (nas_serve_model_refresh(m, nas_wall_ms(), err) < 0) {
            fprintf(stderr, "nasctl watch: %s\n", err);
            rc = 1;
            break;
        }
        const nas_serve_event *ev[256];
        int lost, n;
        while ((n = nas_serve_model_events(m, cursor, ev, 256, &lost)) > 0) {
            for (int i = 0; i < n && (!o.count || seen < o.count); i++, seen++) {
                if (o.json)
                    printf("{\"event\":\"%s\",\"id\":%lld,\"data\":%s}\n", ev[i]->kind,
                           (long long)ev[i]->id, ev[i]->json);
                else
                    print_line(ev[i]);
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
    if (open_model("top", &o, &m)) return 1;
    char err[NAS_ERR_LEN];
    nas_serve_master *mc = NULL;
    if (o.master && nas_serve_master_open(&mc, o.master, o.key, o.master_key, err) < 0) {
        fprintf(stderr, "nasctl top: %s\n", err);
        nas_serve_model_close(&m);
        return 1;
    }
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
        nas_sleep_ms(o.refresh_ms);
    }
    nas_json_free(&live);
    nas_serve_master_close(&mc);
    nas_serve_model_close(&m);
    return rc;
}
