/*
 * serve.c - `nasctl serve`: a read-only HTTP server for one campaign, as a
 * process of its own so that the master exposes nothing new.
 *
 * Threads: libmicrohttpd runs a thread per connection (a dashboard has a
 * handful; the limit is NAS_SERVE_MAX_CONN), and the main thread refreshes
 * the in-memory model every --refresh-ms and asks the master (--master)
 * for its status.  One mutex guards the model and the live document; a
 * request holds it while it renders its answer (milliseconds at 100k
 * results), and the event stream's threads sleep on a condition variable
 * that a refresh with news signals.  The store is read through a
 * read-only connection (serve_model.h), so nothing here can slow a commit.
 *
 * Access: the server binds 127.0.0.1:8080 unless told otherwise.  Off
 * loopback it refuses to start without a token (--token, or the
 * NASCTL_SERVE_TOKEN environment variable, which keeps it out of `ps`);
 * with a token every request must carry it as `Authorization: Bearer T`,
 * as the cookie the page gets, or once as ?token=T on the page's address
 * (which sets that cookie).  TLS is a reverse proxy's job
 * (docs/USER-GUIDE.md).
 */
#include "master/serve.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "master/serve_api.h"
#include "master/serve_assets.h"
#include "master/serve_live.h"
#include "master/serve_model.h"
#include "master/serve_source.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nas_serve_command(const char *cmd, int argc, char **argv) {
    if (strcmp(cmd, "serve") == 0) return nas_serve_main(argc, argv);
    if (strcmp(cmd, "top") == 0) return nas_top_main(argc, argv);
    return nas_watch_main(argc, argv);
}

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: nasctl serve --db FILE [--listen HOST:PORT] [--token T]\n"
        "                    [--master tcp://HOST:PORT [--key BASE --master-key FILE]]\n"
        "                    [--refresh-ms N] [--idle-timeout S]\n"
        "\n"
        "Serves a campaign read-only over HTTP: the dashboard (/), Prometheus metrics\n"
        "(/metrics), a JSON API (/api/status, /api/history, /api/columns, /api/task/ID,\n"
        "/api/pareto, /api/workers) and an event stream of committed results (/events).\n"
        "\n"
        "  --db FILE          the campaign's store (opened read-only; the master keeps writing)\n"
        "  --listen HOST:PORT where to listen (default 127.0.0.1:8080; port 0 picks one)\n"
        "  --token T          required of every request; needed off loopback (or set\n"
        "                     NASCTL_SERVE_TOKEN, which keeps it out of the process list)\n"
        "  --master EP        also follow a live master's status endpoint (workers' epochs)\n"
        "  --key, --master-key  CurveZMQ for a master with keys (as for nasctl status)\n"
        "  --refresh-ms N     how often to look for commits (default 250)\n"
        "  --idle-timeout S   drop a connection silent for S seconds (default 15); at most\n"
        "                     64 connections, 32 KiB of request headers each\n");
}

#ifndef NAS_HAVE_MHD

int nas_serve_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    fprintf(stderr, "nasctl serve: this nasctl was built without libmicrohttpd; install it "
                    "(apt-get install libmicrohttpd-dev) and build again\n");
    return 1;
}

#else

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#define NAS_SERVE_MAX_CONN    64
#define NAS_SERVE_REQUEST_MAX 32768 /* bytes of request line and headers per connection */
#define NAS_SERVE_LIVE_STALE  5000  /* ms after which a master's document is dropped */

typedef struct server {
    nas_serve_model *model;
    pthread_mutex_t mu;
    pthread_cond_t news;
    int stop;
    nas_json *live_doc;
    int64_t live_ms;
    const char *master;
    const char *token;
    int keepalive_ms; /* between comments on an idle event stream */
} server;

typedef struct opts {
    nas_serve_source src; /* --db, --master, --key, --master-key, --refresh-ms */
    const char *listen, *token;
    long idle_s;
} opts;

// ---- helpers ------------------------------------------------------------------------------

/* Compare without an early exit, so a wrong token's timing says nothing
 * about how much of it was right. */
static int token_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

static int authorized(const server *s, struct MHD_Connection *c, int *set_cookie) {
    *set_cookie = 0;
    if (!s->token) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (h && strncmp(h, "Bearer ", 7) == 0 && token_equal(h + 7, s->token)) return 1;
    const char *k = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "nasd_token");
    if (k && token_equal(k, s->token)) return 1;
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    if (q && token_equal(q, s->token)) {
        *set_cookie = 1;
        return 1;
    }
    return 0;
}

static const char *arg_of(void *ctx, const char *key) {
    return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, key);
}

static enum MHD_Result send_buf(struct MHD_Connection *c, int status, const char *ctype, void *body,
                                size_t len, int owned, const server *s, int set_cookie) {
    struct MHD_Response *r =
        owned ? MHD_create_response_from_buffer_with_free_callback(len, body, nas_free)
              : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned) nas_free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    /* The page loads nothing from anywhere else, and says so. */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self' "
                            "'unsafe-inline'");
    if (set_cookie) {
        char cookie[512];
        snprintf(cookie, sizeof cookie, "nasd_token=%s; Path=/; HttpOnly; SameSite=Strict",
                 s->token);
        MHD_add_response_header(r, "Set-Cookie", cookie);
    }
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *msg) {
    return send_buf(c, status, "text/plain; charset=utf-8", (void *)msg, strlen(msg), 0, NULL, 0);
}

// ---- the event stream ---------------------------------------------------------------------

typedef struct sse {
    server *srv;
    int64_t cursor; /* last event id sent */
    int brief;      /* ?brief=1: one `results` event per batch of results */
    char *buf;      /* formatted, not yet sent */
    size_t len, off;
} sse;

/* Format the events after the cursor into the stream's buffer (under the
 * mutex).  A client that fell behind the ring gets a `reset` event and
 * reloads.  A brief stream (the page's: it reads the rows themselves from
 * /api/columns) folds each run of results into one `results` event with
 * their count and the newest row, so a page on a campaign committing
 * thousands of results a second is woken once per refresh, not once per
 * result, and no result's JSON is written for it. */
static void sse_fill(sse *e) {
    const nas_serve_event *ev[256];
    int lost = 0;
    nas_serve_model *m = e->srv->model;
    int n = nas_serve_model_events(m, e->cursor, ev, e->brief ? 256 : 64, &lost);
    nas_json_buf b;
    nas_json_buf_init(&b);
    if (lost) nas_json_buf_printf(&b, "event: reset\ndata: {}\n\n");
    int folded = 0;
    for (int i = 0; i < n; i++) {
        int result = strcmp(ev[i]->kind, "result") == 0;
        e->cursor = ev[i]->id;
        if (e->brief && result) {
            folded++;
            if (i + 1 < n && strcmp(ev[i + 1]->kind, "result") == 0) continue;
            nas_json_buf_printf(&b, "id: %lld\nevent: results\ndata: {\"n\":%d,\"row\":%d}\n\n",
                                (long long)ev[i]->id, folded, ev[i]->row);
            folded = 0;
            continue;
        }
        const char *json = nas_serve_model_event_json(m, ev[i]);
        if (!json) continue; /* out of memory: this one is skipped */
        nas_json_buf_printf(&b, "id: %lld\nevent: %s\ndata: ", (long long)ev[i]->id, ev[i]->kind);
        nas_json_buf_raw(&b, json, strlen(json));
        nas_json_buf_raw(&b, "\n\n", 2);
    }
    nas_free(e->buf);
    e->buf = nas_json_buf_take(&b, &e->len);
    e->off = 0;
    if (!e->buf) e->len = 0;
}

/* libmicrohttpd asks for the next bytes; with a thread per connection it
 * may wait here, so an idle stream sleeps on the condition variable until
 * a refresh brings news, the keep-alive is due, or the server stops. */
static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    sse *e = cls;
    server *s = e->srv;
    if (e->off == e->len) {
        pthread_mutex_lock(&s->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += s->keepalive_ms / 1000;
        until.tv_nsec += (long)(s->keepalive_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int timed_out = 0;
        while (!s->stop && nas_serve_model_last_event(s->model) <= e->cursor && !timed_out)
            timed_out = pthread_cond_timedwait(&s->news, &s->mu, &until) != 0;
        int stop = s->stop;
        if (!stop && !timed_out) sse_fill(e);
        pthread_mutex_unlock(&s->mu);
        if (stop) return MHD_CONTENT_READER_END_OF_STREAM;
        if (timed_out) {
            static const char ping[] = ": keep-alive\n\n";
            size_t n = sizeof ping - 1 < max ? sizeof ping - 1 : max;
            memcpy(out, ping, n);
            return (ssize_t)n;
        }
        if (e->len == 0) return MHD_CONTENT_READER_END_WITH_ERROR; /* out of memory */
    }
    size_t n = e->len - e->off < max ? e->len - e->off : max;
    memcpy(out, e->buf + e->off, n);
    e->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    sse *e = cls;
    nas_free(e->buf);
    nas_free(e);
}

static enum MHD_Result events(server *s, struct MHD_Connection *c) {
    sse *e = nas_calloc(1, sizeof *e);
    if (!e) return MHD_NO;
    e->srv = s;
    const char *brief = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "brief");
    e->brief = brief && strcmp(brief, "0") != 0;
    /* Resume after Last-Event-ID (the browser sends it on reconnecting),
     * else ?after=N, else from now on. */
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    if (!last) last = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
    pthread_mutex_lock(&s->mu);
    int64_t newest = nas_serve_model_last_event(s->model);
    e->cursor = last ? strtoll(last, NULL, 10) : newest;
    /* An id from a hostile or stale client stays within what exists. */
    if (e->cursor < 0 || e->cursor > newest) e->cursor = newest;
    pthread_mutex_unlock(&s->mu);
    /* A first comment line opens the stream at once, so the client's
     * `open` fires before the first event. */
    e->buf = nas_strdup(": nasd events\nretry: 1000\n\n");
    e->len = e->buf ? strlen(e->buf) : 0;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, e, sse_free);
    if (!r) {
        sse_free(e);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

// ---- requests ---------------------------------------------------------------------------------

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
    (void)version;
    (void)upload;
    server *s = cls;
    /* A request that is not a bodiless GET is refused at the first call,
     * before libmicrohttpd reads any body (it then closes the connection
     * rather than read what was announced). */
    if (!*con_cls) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return send_text(c, 405, "nasctl serve: read-only; GET only\n");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if ((cl && strcmp(cl, "0") != 0) ||
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding"))
            return send_text(c, 413, "nasctl serve: request bodies are not accepted\n");
        *con_cls = s;
        return MHD_YES;
    }
    if (*upload_size) return send_text(c, 413, "nasctl serve: request bodies are not accepted\n");
    int set_cookie;
    if (!authorized(s, c, &set_cookie))
        return send_text(c, 401,
                         "nasctl serve: a token is required (Authorization: Bearer T, "
                         "or open the page once as /?token=T)\n");
    if (strcmp(url, "/events") == 0) return events(s, c);
    for (int i = 0; i < nas_serve_n_assets; i++)
        if (strcmp(url, nas_serve_assets[i].path) == 0 ||
            (strcmp(url, "/") == 0 && strcmp(nas_serve_assets[i].path, "/index.html") == 0))
            return send_buf(c, 200, nas_serve_assets[i].ctype, (void *)nas_serve_assets[i].data,
                            nas_serve_assets[i].len, 0, s, set_cookie);
    nas_serve_answer a;
    pthread_mutex_lock(&s->mu);
    nas_serve_live live = {s->live_doc, s->live_ms, s->master};
    int rc = nas_serve_api(s->model, &live, url, arg_of, c, nas_wall_ms(), &a);
    pthread_mutex_unlock(&s->mu);
    if (rc == NAS_ENOTFOUND) return send_text(c, 404, "nasctl serve: not found\n");
    if (!a.body) return send_text(c, 500, "nasctl serve: out of memory\n");
    return send_buf(c, a.status, a.ctype, a.body, a.len, 1, s, set_cookie);
}

// ---- options, startup, the refresh loop ----------------------------------------------------

static int parse_listen(const char *spec, struct sockaddr_in *sa, char *err) {
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host)
        return nas_set_err(err, NAS_EINVAL, "--listen wants HOST:PORT (an IPv4 address), got '%s'",
                           spec);
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
    if (*end || end == colon + 1 || port < 0 || port > 65535 ||
        inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return nas_set_err(err, NAS_EINVAL, "--listen wants HOST:PORT (an IPv4 address), got '%s'",
                           spec);
    sa->sin_port = htons((uint16_t)port);
    return NAS_OK;
}

/* serve's own options, beside the source options (serve_source.h). */
static int take(void *ctx, int ch, const char *arg) {
    opts *o = ctx;
    if (ch == 'l')
        o->listen = arg;
    else if (ch == 't')
        o->token = arg;
    else
        return nas_serve_source_long("nasctl serve", "idle-timeout", arg, 1, 3600, &o->idle_s);
    return 0;
}

static int parse_opts(int argc, char **argv, opts *o) {
    static const struct option own[] = {{"listen", required_argument, NULL, 'l'},
                                        {"token", required_argument, NULL, 't'},
                                        {"idle-timeout", required_argument, NULL, 'i'},
                                        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:8080";
    o->src.refresh_ms = 250;
    o->idle_s = 15;
    o->token = getenv("NASCTL_SERVE_TOKEN");
    int rc = nas_serve_source_parse(argc, argv, "nasctl serve", usage, own, take, o, &o->src);
    if (rc) return rc;
    if (o->token && !*o->token) o->token = NULL;
    return 0;
}

/* Take the master's newest document, or drop a stale one (under the mutex). */
static void follow_master(server *s, nas_serve_master *mc, int64_t now) {
    char *doc = mc ? nas_serve_master_poll(mc, now, 1000) : NULL;
    nas_json *parsed = NULL;
    char err[NAS_ERR_LEN];
    if (doc && nas_json_parse(doc, strlen(doc), 0, &parsed, err) != NAS_OK) parsed = NULL;
    nas_free(doc);
    if (parsed) {
        nas_json_free(&s->live_doc);
        s->live_doc = parsed;
        s->live_ms = now;
    } else if (s->live_doc && now - s->live_ms > NAS_SERVE_LIVE_STALE) {
        nas_json_free(&s->live_doc);
    }
}

/* The main thread: refresh, follow the master, wait for a signal. */
static int run(server *s, nas_serve_master *mc, long refresh_ms, const sigset_t *sigs) {
    char err[NAS_ERR_LEN];
    int rc = 0;
    for (;;) {
        struct timespec ts = {refresh_ms / 1000, (refresh_ms % 1000) * 1000000L};
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) break;
        pthread_mutex_lock(&s->mu);
        int changed = nas_serve_model_refresh(s->model, nas_wall_ms(), err);
        follow_master(s, mc, nas_wall_ms());
        /* The whole-table cache (nas_serve_api_prepare) is extended when a
         * page asks for the table, not here: a refresh costs what reading
         * the new rows costs, whether or not anyone is looking. */
        if (changed > 0) pthread_cond_broadcast(&s->news);
        pthread_mutex_unlock(&s->mu);
        /* A store that went away or broke is reported; the last good copy
         * stays served, and the next refresh tries again. */
        if (changed < 0) nas_warn("nasctl serve: %s", err);
    }
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->news);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* libmicrohttpd's own messages, at debug level: what a user must know
 * (the address cannot be bound, a client misbehaved) nasctl says itself,
 * and the library's wording can mislead ("bind to port 0" for a port in
 * use). */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    nas_debug("serve: libmicrohttpd: %s", line);
}

int nas_serve_main(int argc, char **argv) {
    opts o;
    int prc = parse_opts(argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;
    char err[NAS_ERR_LEN];
    struct sockaddr_in sa;
    if (parse_listen(o.listen, &sa, err) < 0) {
        fprintf(stderr, "nasctl serve: %s\n", err);
        return 2;
    }
    int loopback = (ntohl(sa.sin_addr.s_addr) >> 24) == 127;
    if (!loopback && !o.token) {
        fprintf(stderr,
                "nasctl serve: listening on %s (not loopback) needs a token: give --token "
                "T or set NASCTL_SERVE_TOKEN (and put TLS in front, docs/USER-GUIDE.md)\n",
                o.listen);
        return 2;
    }
    server s;
    memset(&s, 0, sizeof s);
    s.token = o.token;
    s.master = o.src.master;
    /* An event stream speaks at least three times per idle timeout, so
     * only clients that really went silent are dropped. */
    s.keepalive_ms = (int)(o.idle_s * 1000 / 3);
    nas_serve_master *mc;
    if (nas_serve_source_open("nasctl serve", &o.src, &s.model, &mc)) return 1;
    nas_serve_api_prepare(s.model);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.news, NULL);
    /* Signals go to the main thread's sigtimedwait only: block them before
     * libmicrohttpd starts its threads, which inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, handle, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)NAS_SERVE_MAX_CONN, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)o.idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)NAS_SERVE_REQUEST_MAX,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    int rc = 1;
    if (!d) {
        fprintf(stderr,
                "nasctl serve: cannot listen on %s (in use, or not an address of this "
                "machine?)\n",
                o.listen);
    } else {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        char host[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
        printf("nasctl serve: http://%s:%u/ serving %s%s\n", host,
               info ? (unsigned)info->port : (unsigned)ntohs(sa.sin_port), o.src.db,
               o.token ? " (token required)" : "");
        fflush(stdout);
        rc = run(&s, mc, o.src.refresh_ms, &sigs);
        MHD_stop_daemon(d);
    }
    nas_serve_master_close(&mc);
    nas_json_free(&s.live_doc);
    nas_serve_model_close(&s.model);
    pthread_cond_destroy(&s.news);
    pthread_mutex_destroy(&s.mu);
    return rc;
}

#endif
