// nas-test: label=slow timeout=120
/*
 * test_serve_http.c - the real `nasctl serve` process over real TCP: every
 * route answers with the right type, /metrics parses with the Prometheus
 * project's own parser (python3-prometheus-client) and a real Prometheus
 * server scrapes it, hostile requests (other methods, bodies, huge
 * headers, bad URLs and numbers, garbage, silent connections) get a clear
 * refusal and never stop the server or slow others, the event stream
 * delivers a result as it is committed and resumes after Last-Event-ID,
 * the token guards every route, the store file is never written, and
 * `nasctl watch` / `nasctl top` print what was committed.  A check whose
 * tool is missing here skips with a SKIP line naming it.
 */
#include "common/alloc.h"
#include "common/json.h"
#include "tests/e2e_util.h"
#include "tests/serve_fixtures.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static char g_db[PATH_MAX], g_log[PATH_MAX];
static const char *g_dir;
static pid_t g_pid = -1;

static void setup(void) {
    g_dir = nas_tmpdir_make();
    nas_path_join(g_db, sizeof g_db, g_dir, "c.db");
    nas_path_join(g_log, sizeof g_log, g_dir, "serve.log");
}

static void teardown(void) {
    fx_serve_stop(g_pid);
    g_pid = -1;
    nas_tmpdir_rm(g_dir);
}

#define BIG (1 << 20)

/* Whether /usr/bin/python3 can import a module. */
static int python_has(const char *module) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import %s' >/dev/null 2>&1", module);
    return access("/usr/bin/python3", X_OK) == 0 && nas_run_cmd(cmd, NULL, 0) == 0;
}

START_TEST(test_serve_http_routes) {
    nas_store *st = fx_store(g_db, 50);
    nas_store_close(&st);
    int port;
    g_pid = fx_serve_start(g_db, g_log, NULL, &port);
    char *out = nas_malloc(BIG);
    ck_assert_int_eq(fx_get(port, "/", "", out, BIG), 200);
    ck_assert_ptr_nonnull(strstr(out, "Content-Type: text/html"));
    ck_assert_ptr_nonnull(strstr(out, "Content-Security-Policy: default-src 'self'"));
    ck_assert_ptr_nonnull(strstr(fx_body(out), "<title>nasd dashboard</title>"));
    static const char *const assets[] = {"/app.js", "/plot.js", "/uplot.js", "/app.css"};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fx_get(port, assets[i], "", out, BIG) == 200, "%s", assets[i]);
    ck_assert_int_eq(fx_get(port, "/api/status", "", out, BIG), 200);
    ck_assert_ptr_nonnull(strstr(out, "Content-Type: application/json"));
    nas_json *doc = NULL;
    char err[NAS_ERR_LEN];
    const char *body = fx_body(out);
    ck_assert_msg(nas_json_parse(body, strlen(body), 0, &doc, err) == NAS_OK, "%s", err);
    ck_assert(nas_json_get(doc, "done")->number == 50);
    nas_json_free(&doc);
    ck_assert_int_eq(fx_get(port, "/api/history?sort=accuracy&order=desc&limit=3", "", out, BIG),
                     200);
    ck_assert_int_eq(fx_get(port, "/api/task/2", "", out, BIG), 200);
    ck_assert_ptr_nonnull(strstr(out, "digraph"));
    ck_assert_int_eq(fx_get(port, "/api/pareto", "", out, BIG), 200);
    ck_assert_int_eq(fx_get(port, "/api/workers", "", out, BIG), 200);
    ck_assert_int_eq(fx_get(port, "/api/columns?from=0", "", out, BIG), 200);
    ck_assert_int_eq(fx_get(port, "/nothing", "", out, BIG), 404);
    ck_assert_int_eq(fx_get(port, "/api/nothing", "", out, BIG), 404);

    ck_assert_int_eq(fx_get(port, "/metrics", "", out, BIG), 200);
    ck_assert_ptr_nonnull(strstr(out, "Content-Type: text/plain; version=0.0.4"));
    if (!python_has("prometheus_client")) {
        printf("SKIP test_serve_http_routes (parser): /usr/bin/python3 lacks prometheus_client "
               "(apt-get install python3-prometheus-client)\n");
    } else {
        /* The Prometheus project's parser must read every family, and
         * agree on a few values. */
        char path[PATH_MAX], cmd[PATH_MAX * 2], res[4096];
        nas_path_join(path, sizeof path, g_dir, "metrics.txt");
        body = fx_body(out);
        ck_assert_int_eq(nas_write_file(path, body, strlen(body), 0), 0);
        snprintf(
            cmd, sizeof cmd,
            "/usr/bin/python3 -c 'import sys\n"
            "from prometheus_client.parser import text_string_to_metric_families as p\n"
            "v = {s.name + str(sorted(s.labels.items())): s.value\n"
            "     for f in p(open(sys.argv[1]).read()) for s in f.samples}\n"
            "assert v[\"nasd_evaluations_total[]\"] == 50, v\n"
            "assert v[\"nasd_worker_tasks_total[(\\x27worker\\x27, \\x27w1\\x27)]\"] == 25, v\n"
            "assert v[\"nasd_failures_total[(\\x27reason\\x27, \\x27training\\x27)]\"] == 1, v\n"
            "print(\"parsed\", len(v))' %s 2>&1",
            path);
        int rc = nas_run_cmd(cmd, res, sizeof res);
        ck_assert_msg(rc == 0 && strstr(res, "parsed"), "prometheus_client: %s", res);
    }
    nas_free(out);
    ck_assert_int_eq(fx_serve_stop(g_pid), 0);
    g_pid = -1;
}
END_TEST

/* The store's bytes and modification time, to show nothing wrote it. */
static void file_state(const char *path, char **bytes, size_t *n, struct timespec *mtime) {
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    *mtime = sb.st_mtim;
    *bytes = nas_read_file(path, n);
    ck_assert_ptr_nonnull(*bytes);
}

START_TEST(test_serve_http_hostile) {
    nas_store *st = fx_store(g_db, 20);
    nas_store_close(&st);
    char *before, *after;
    size_t nb, na;
    struct timespec tb, ta;
    file_state(g_db, &before, &nb, &tb);
    int port;
    static const char *const fast[] = {"--idle-timeout", "1", NULL};
    g_pid = fx_serve_start(g_db, g_log, fast, &port);
    char *out = nas_malloc(BIG);

    /* Silent and half-sent connections first: each has its own thread, so
     * they must not delay the requests below, and the idle timeout ends
     * them. */
    int slow[8];
    for (int i = 0; i < 8; i++) {
        slow[i] = fx_connect(port);
        if (i % 2) ck_assert_int_gt(send(slow[i], "GET / HTTP/1.1\r\nHo", 18, MSG_NOSIGNAL), 0);
    }
    int64_t t0 = nas_now_ms();
    ck_assert_int_eq(fx_get(port, "/api/status", "", out, BIG), 200);
    ck_assert_int_lt(nas_now_ms() - t0, 900);

    /* Only GET and HEAD. */
    static const char post[] = "POST /api/status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               "Connection: close\r\n\r\nhello";
    int code = fx_http_raw(port, post, sizeof post - 1, out, BIG);
    ck_assert_msg(code == 405 || code == 413, "POST: %d", code);
    static const char del[] = "DELETE /api/task/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ck_assert_int_eq(fx_http_raw(port, del, sizeof del - 1, out, BIG), 405);
    static const char head[] = "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ck_assert_int_eq(fx_http_raw(port, head, sizeof head - 1, out, BIG), 200);
    ck_assert_str_eq(fx_body(out), "");

    /* A header far past the 32 KiB limit, and a huge URL: refused with a
     * 4xx or the connection closed, never a 200 and never a crash. */
    size_t hn = 200000;
    char *huge = nas_malloc(hn + 256);
    int k = snprintf(huge, 256, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(huge + k, 'a', hn);
    memcpy(huge + k + hn, "\r\nConnection: close\r\n\r\n", 24);
    code = fx_http_raw(port, huge, (size_t)k + hn + 23, out, BIG);
    ck_assert_msg(code == 0 || (code >= 400 && code < 500), "huge header: %d", code);
    k = snprintf(huge, 256, "GET /api/history?q=");
    memset(huge + k, 'b', hn);
    memcpy(huge + k + hn, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 42);
    code = fx_http_raw(port, huge, (size_t)k + hn + 41, out, BIG);
    ck_assert_msg(code == 0 || (code >= 400 && code < 500), "huge URL: %d", code);
    nas_free(huge);

    /* Bad paths and bad numbers. */
    static const char *const paths[][2] = {{"/../../../etc/passwd", "404"},
                                           {"/api/task/1x", "400"},
                                           {"/api/task/-1", "400"},
                                           {"/api/task/99999999999999999999", "404"},
                                           {"/api/history?offset=1e300", "400"},
                                           {"/api/history?limit=-1", "400"},
                                           {"/api/history?max_params=1e300", "400"},
                                           {"/api/columns?from=nan", "400"},
                                           {"/api/history?min_accuracy=abc", "400"},
                                           {"/%ff%fe", "404"},
                                           {"/events?after=9223372036854775807", "200"}};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        if (strncmp(paths[i][0], "/events", 7) == 0) {
            /* The stream answers at once and stays open: read its head. */
            int fd = fx_connect(port);
            char req[256];
            int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i][0]);
            ck_assert_int_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
            fx_read(fd, out, BIG, "nasd events", 3000);
            close(fd);
            ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s: %.80s", paths[i][0], out);
            continue;
        }
        code = fx_get(port, paths[i][0], "", out, BIG);
        ck_assert_msg(code == atoi(paths[i][1]), "%s: %d, want %s", paths[i][0], code, paths[i][1]);
    }
    /* Bytes that are not HTTP at all. */
    static const char junk[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 nonsense\r\n\r\n";
    code = fx_http_raw(port, junk, sizeof junk - 1, out, BIG);
    ck_assert_msg(code == 0 || code == 400, "junk: %d", code);

    /* The silent connections are gone after the idle timeout (1 s). */
    for (int i = 0; i < 8; i++) {
        char c[512];
        fx_read(slow[i], c, sizeof c, NULL, 4000);
        char probe;
        ck_assert_msg(recv(slow[i], &probe, 1, MSG_DONTWAIT) == 0, "slow client %d still open", i);
        close(slow[i]);
    }
    /* And the server still serves. */
    ck_assert_int_eq(fx_get(port, "/metrics", "", out, BIG), 200);
    ck_assert_int_eq(fx_serve_stop(g_pid), 0);
    g_pid = -1;
    file_state(g_db, &after, &na, &ta);
    ck_assert_int_eq(na, nb);
    ck_assert_msg(memcmp(before, after, nb) == 0, "the store file changed");
    ck_assert(ta.tv_sec == tb.tv_sec && ta.tv_nsec == tb.tv_nsec);
    free(before);
    free(after);
    nas_free(out);
}
END_TEST

START_TEST(test_serve_http_events) {
    nas_store *st = fx_store(g_db, 10);
    int port;
    static const char *const fast[] = {"--refresh-ms", "50", NULL};
    g_pid = fx_serve_start(g_db, g_log, fast, &port);
    int fd = fx_connect(port);
    static const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)sizeof req - 1);
    char buf[16384];
    fx_read(fd, buf, sizeof buf, "nasd events", 3000);
    ck_assert_ptr_nonnull(strstr(buf, "Content-Type: text/event-stream"));
    /* A commit now reaches the open stream. */
    int64_t id = fx_add(st, 500, "w2", 50000);
    fx_result(st, id, 500, "w2", 51000);
    int64_t t0 = nas_now_ms();
    fx_read(fd, buf, sizeof buf, "event: result", 5000);
    ck_assert_msg(strstr(buf, "event: result"), "no result event: %s", buf);
    ck_assert_int_lt(nas_now_ms() - t0, 3000);
    char want[64];
    snprintf(want, sizeof want, "\"task\":%lld", (long long)id);
    fx_read(fd, buf + strlen(buf), sizeof buf - strlen(buf), want, 2000);
    ck_assert_msg(strstr(buf, want), "event without %s: %s", want, buf);
    close(fd);
    /* A reconnecting browser sends Last-Event-ID: it gets what followed. */
    fd = fx_connect(port);
    static const char again[] = "GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0\r\n\r\n";
    ck_assert_int_eq(send(fd, again, sizeof again - 1, MSG_NOSIGNAL), (ssize_t)sizeof again - 1);
    fx_read(fd, buf, sizeof buf, want, 3000);
    ck_assert_msg(strstr(buf, want), "no replay after Last-Event-ID: %s", buf);
    close(fd);
    nas_store_close(&st);
    ck_assert_int_eq(fx_serve_stop(g_pid), 0);
    g_pid = -1;
}
END_TEST

/* The page's brief stream: a batch of results is one `results` event with
 * their count and the newest row, never a payload per result, while a
 * full stream opened beside it still gets every result's JSON. */
START_TEST(test_serve_http_events_brief) {
    nas_store *st = fx_store(g_db, 10);
    int port;
    static const char *const slow[] = {"--refresh-ms", "400", NULL};
    g_pid = fx_serve_start(g_db, g_log, slow, &port);
    int brief = fx_connect(port), full = fx_connect(port);
    static const char req_brief[] = "GET /events?brief=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char req_full[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(brief, req_brief, sizeof req_brief - 1, MSG_NOSIGNAL),
                     (ssize_t)sizeof req_brief - 1);
    ck_assert_int_eq(send(full, req_full, sizeof req_full - 1, MSG_NOSIGNAL),
                     (ssize_t)sizeof req_full - 1);
    static char buf[65536], fbuf[65536];
    fx_read(brief, buf, sizeof buf, "nasd events", 3000);
    fx_read(full, fbuf, sizeof fbuf, "nasd events", 3000);
    /* Five results, committed within one refresh period (400 ms) as far
     * as the machine allows; the counts must add up however they split. */
    int64_t last = 0;
    for (int k = 0; k < 5; k++) {
        last = fx_add(st, 600 + k, "w2", 60000 + k);
        fx_result(st, last, 600 + k, "w2", 61000 + k);
    }
    int got = 0, events = 0;
    size_t n = 0;
    int64_t end = nas_now_ms() + 5000;
    while (got < 5 && nas_now_ms() < end) {
        n += fx_read(brief, buf + n, sizeof buf - n, "}\n\n", 1000);
        got = events = 0;
        for (const char *p = buf; (p = strstr(p, "event: results\ndata: {\"n\":")); p++) {
            got += atoi(p + strlen("event: results\ndata: {\"n\":"));
            events++;
        }
    }
    ck_assert_msg(got == 5, "brief stream counted %d results: %s", got, buf);
    ck_assert_msg(events < 5, "no batch was folded (%d events): %s", events, buf);
    ck_assert_msg(!strstr(buf, "event: result\n"), "a result's own event: %s", buf);
    ck_assert_msg(!strstr(buf, "\"accuracy\""), "a result's payload: %s", buf);
    /* The full stream has each one with its payload. */
    char want[64];
    snprintf(want, sizeof want, "\"task\":%lld", (long long)last);
    fx_read(full, fbuf, sizeof fbuf, want, 5000);
    ck_assert_msg(strstr(fbuf, want), "full stream without %s: %s", want, fbuf);
    int results = 0;
    for (const char *p = fbuf; (p = strstr(p, "event: result\n")); p++)
        results++;
    ck_assert_int_eq(results, 5);
    close(brief);
    close(full);
    nas_store_close(&st);
    ck_assert_int_eq(fx_serve_stop(g_pid), 0);
    g_pid = -1;
}
END_TEST

START_TEST(test_serve_http_token) {
    nas_store *st = fx_store(g_db, 5);
    nas_store_close(&st);
    char cmd[PATH_MAX * 2], res[1024];
    snprintf(cmd, sizeof cmd, "env -u NASCTL_SERVE_TOKEN %s serve --db %s --listen 0.0.0.0:0 2>&1",
             nas_bin("nasctl"), g_db);
    ck_assert_int_eq(nas_run_cmd(cmd, res, sizeof res), 2);
    ck_assert_msg(strstr(res, "token"), "%s", res);
    snprintf(cmd, sizeof cmd, "%s serve --db %s/none.db 2>&1", nas_bin("nasctl"), g_dir);
    ck_assert_int_eq(nas_run_cmd(cmd, res, sizeof res), 1);
    ck_assert_msg(strstr(res, "none.db"), "%s", res);
    snprintf(cmd, sizeof cmd, "%s serve --db %s --listen nowhere 2>&1", nas_bin("nasctl"), g_db);
    ck_assert_int_eq(nas_run_cmd(cmd, res, sizeof res), 2);
    ck_assert_msg(strstr(res, "HOST:PORT"), "%s", res);

    int port;
    static const char *const tok[] = {"--token", "s3cret-token", NULL};
    g_pid = fx_serve_start(g_db, g_log, tok, &port);
    char out[65536];
    static const char *const routes[] = {"/", "/metrics", "/api/status", "/events"};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fx_get(port, routes[i], "", out, sizeof out) == 401, "%s", routes[i]);
    ck_assert_int_eq(
        fx_get(port, "/api/status", "Authorization: Bearer wrong\r\n", out, sizeof out), 401);
    ck_assert_int_eq(
        fx_get(port, "/api/status", "Authorization: Bearer s3cret-tokenX\r\n", out, sizeof out),
        401);
    ck_assert_int_eq(
        fx_get(port, "/api/status", "Authorization: Bearer s3cret-token\r\n", out, sizeof out),
        200);
    ck_assert_int_eq(fx_get(port, "/?token=s3cret-token", "", out, sizeof out), 200);
    ck_assert_ptr_nonnull(strstr(out, "Set-Cookie: nasd_token=s3cret-token; Path=/; HttpOnly"));
    ck_assert_int_eq(
        fx_get(port, "/metrics", "Cookie: nasd_token=s3cret-token\r\n", out, sizeof out), 200);
    ck_assert_int_eq(fx_serve_stop(g_pid), 0);
    g_pid = -1;
}
END_TEST

/* A free TCP port on loopback (bound, read, released). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

START_TEST(test_serve_prometheus_scrapes) {
    const char *prom = "/usr/bin/prometheus";
    if (access(prom, X_OK) != 0) {
        printf("SKIP test_serve_prometheus_scrapes: %s missing (apt-get install prometheus)\n",
               prom);
        return;
    }
    nas_store *st = fx_store(g_db, 30);
    nas_store_close(&st);
    int port;
    g_pid = fx_serve_start(g_db, g_log, NULL, &port);
    char cfg[PATH_MAX], data[PATH_MAX], plog[PATH_MAX];
    nas_path_join(cfg, sizeof cfg, g_dir, "prometheus.yml");
    nas_path_join(data, sizeof data, g_dir, "tsdb");
    nas_path_join(plog, sizeof plog, g_dir, "prometheus.log");
    char text[512];
    int n = snprintf(text, sizeof text,
                     "global:\n  scrape_interval: 1s\n"
                     "scrape_configs:\n  - job_name: nasd\n"
                     "    static_configs:\n      - targets: ['127.0.0.1:%d']\n",
                     port);
    ck_assert_int_eq(nas_write_file(cfg, text, (size_t)n, 0), 0);
    int pport = free_port();
    char flag_cfg[PATH_MAX + 32], flag_data[PATH_MAX + 32], flag_web[64];
    snprintf(flag_cfg, sizeof flag_cfg, "--config.file=%s", cfg);
    snprintf(flag_data, sizeof flag_data, "--storage.tsdb.path=%s", data);
    snprintf(flag_web, sizeof flag_web, "--web.listen-address=127.0.0.1:%d", pport);
    pid_t pp = fork();
    ck_assert_int_ge(pp, 0);
    if (pp == 0) {
        int fd = open(plog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(prom, prom, flag_cfg, flag_data, flag_web, (char *)NULL);
        _exit(127);
    }
    /* Prometheus's own query API must show the scraped value. */
    int found = 0;
    char out[65536];
    for (int64_t end = nas_now_ms() + 40000; !found && nas_now_ms() < end;) {
        usleep(500000);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pport)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (!up) continue;
        if (fx_get(pport, "/api/v1/query?query=nasd_evaluations_total", "", out, sizeof out) ==
                200 &&
            strstr(out, "\"30\"]"))
            found = 1;
    }
    kill(pp, SIGTERM);
    waitpid(pp, NULL, 0);
    char *plogtext = nas_read_file(plog, NULL);
    ck_assert_msg(found, "Prometheus never showed nasd_evaluations_total 30: %s\n%s", out,
                  plogtext ? plogtext : "");
    free(plogtext);
}
END_TEST

START_TEST(test_serve_watch_and_top) {
    nas_store *st = fx_store(g_db, 12);
    char out[PATH_MAX], cmd[PATH_MAX * 3];
    nas_path_join(out, sizeof out, g_dir, "watch.out");
    snprintf(cmd, sizeof cmd, "%s watch --db %s --json --count 3 --refresh-ms 20 > %s 2>&1 &",
             nas_bin("nasctl"), g_db, out);
    ck_assert_int_eq(nas_run_cmd(cmd, NULL, 0), 0);
    /* watch follows from now on, and how soon it has loaded depends on
     * the machine: commit one result at a time until three have been
     * printed (it exits then), so the ones before it loaded do not count. */
    int lines = 0;
    for (int k = 600; k < 900 && lines < 3; k++) {
        int64_t id = fx_add(st, k, "w1", 60000 + k);
        fx_result(st, id, k, "w1", 61000 + k);
        usleep(100000);
        char *text = nas_read_file(out, NULL);
        lines = 0;
        for (const char *p = text; p && (p = strstr(p, "{\"event\":\"result\"")); p++)
            lines++;
        free(text);
    }
    ck_assert_int_eq(lines, 3);
    char res[8192];
    snprintf(cmd, sizeof cmd, "%s top --db %s --once 2>&1", nas_bin("nasctl"), g_db);
    ck_assert_int_eq(nas_run_cmd(cmd, res, sizeof res), 0);
    ck_assert_msg(strstr(res, "campaign dash (evolution)"), "%s", res);
    ck_assert_msg(strstr(res, "/500 done"), "%s", res);
    ck_assert_msg(strstr(res, "best task"), "%s", res);
    ck_assert_msg(strstr(res, "w1") && strstr(res, "w2"), "%s", res);
    snprintf(cmd, sizeof cmd, "%s watch --db %s --count 0 2>&1", nas_bin("nasctl"), g_db);
    ck_assert_int_eq(nas_run_cmd(cmd, res, sizeof res), 2);
    nas_store_close(&st);
}
END_TEST

/* Against a live campaign: a real nas-master and nas-worker, and the
 * server following the master's status socket.  What only the master
 * knows reaches /metrics and /api/workers, and the master's commits reach
 * an open event stream. */
START_TEST(test_serve_live_master) {
    e2e_env e;
    e2e_env_init(&e, 6);
    e2e_write_campaign(e.cfg, "live", 400, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    const char *mextra[] = {"--synthetic", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, mextra);
    char wlog[PATH_MAX];
    e2e_log_path(&e, "w0", wlog, sizeof wlog);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w0", "20", NULL);
    ck_assert(e2e_wait_counts(e.db, 2, 0, 30000));
    char log[PATH_MAX];
    e2e_log_path(&e, "serve", log, sizeof log);
    const char *extra[] = {"--master", e.sts, "--refresh-ms", "50", NULL};
    int port;
    g_pid = fx_serve_start(e.db, log, extra, &port);
    int fd = fx_connect(port);
    static const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)sizeof req - 1);
    char *out = nas_malloc(BIG);
    int up = 0;
    for (int i = 0; i < 100 && !up; i++) {
        ck_assert_int_eq(fx_get(port, "/metrics", "", out, BIG), 200);
        up = strstr(out, "\nnasd_master_up 1\n") != NULL;
        if (!up) usleep(50000);
    }
    ck_assert_msg(up, "the master never answered: %s", out);
    /* The master timed its own commits: two results at least went
     * through them, and every commit falls in the +Inf bucket. */
    const char *cnt = strstr(out, "\nnasd_master_commit_seconds_count ");
    const char *inf = strstr(out, "\nnasd_master_commit_seconds_bucket{le=\"+Inf\"} ");
    ck_assert_msg(cnt && inf, "no commit latency from the master: %s", out);
    long n_commits = strtol(cnt + strlen("\nnasd_master_commit_seconds_count "), NULL, 10);
    ck_assert_msg(n_commits >= 2, "%s", out);
    ck_assert_int_eq(strtol(inf + strlen("\nnasd_master_commit_seconds_bucket{le=\"+Inf\"} "),
                            NULL, 10),
                     n_commits);
    ck_assert_int_eq(fx_get(port, "/api/workers", "", out, BIG), 200);
    ck_assert_msg(strstr(out, "\"name\":\"w0\"") && !strstr(out, "\"live\":null"), "%s", out);
    ck_assert_int_eq(fx_get(port, "/api/status", "", out, BIG), 200);
    ck_assert_msg(!strstr(out, "\"master\":null"), "%s", out);
    char buf[65536];
    fx_read(fd, buf, sizeof buf, "event: result", 10000);
    ck_assert_msg(strstr(buf, "event: result"), "no result from the live master: %s", buf);
    close(fd);
    nas_free(out);
    ck_assert_int_eq(fx_serve_stop(g_pid), 0);
    g_pid = -1;
    e2e_kill(w, SIGTERM);
    e2e_kill(m, SIGTERM);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("serve_http");
    TCase *tc = tcase_create("http");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_serve_http_routes);
    tcase_add_test(tc, test_serve_http_hostile);
    tcase_add_test(tc, test_serve_http_events);
    tcase_add_test(tc, test_serve_http_events_brief);
    tcase_add_test(tc, test_serve_http_token);
    tcase_add_test(tc, test_serve_prometheus_scrapes);
    tcase_add_test(tc, test_serve_watch_and_top);
    tcase_add_test(tc, test_serve_live_master);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
