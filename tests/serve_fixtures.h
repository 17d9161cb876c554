/*
 * serve_fixtures.h - a real campaign store for the dashboard suites
 * (test_serve.c, test_serve_http.c, test_serve_browser.c), written through
 * the store API as the master writes it: NB201 genomes, results with
 * learning curves, workers, a failure, weights.  And the real server: a
 * `nasctl serve` child process on a port the kernel picks, and a raw HTTP
 * client over a TCP socket (no library between the test and the bytes, so
 * malformed requests can be sent as they are).  Functions are static
 * inline so that a suite that does not use one does not warn.
 */
#ifndef NAS_TEST_SERVE_FIXTURES_H
#define NAS_TEST_SERVE_FIXTURES_H

#include "common/clock.h"
#include "common/err.h"
#include "common/genome.h"
#include "master/store.h"
#include "tests/harness.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The k-th NB201 cell (k < 4096) as text, and its hash.  No edge is
 * "none": a cell with a dead edge can be the same function (the same
 * hash) as another, and the store keeps one text per hash. */
static inline uint64_t fx_arch(int k, char *text, size_t cap) {
    static const char *const ops[] = {"skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                      "avg_pool_3x3"};
    ck_assert_int_lt(k, 4096);
    int e[6];
    for (int i = 0; i < 6; i++)
        e[i] = k % 4, k /= 4;
    snprintf(text, cap, "|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|", ops[e[0]], ops[e[1]], ops[e[2]],
             ops[e[3]], ops[e[4]], ops[e[5]]);
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_genome_parse(text, strlen(text), &g, err) == NAS_OK, "%s", err);
    return nas_genome_hash(&g);
}

/* Result i's accuracy and parameters: a spread with a known front. */
static inline double fx_acc(int i) {
    return 0.5 + 0.4 * (double)((i * 37) % 101) / 100.0;
}
static inline int64_t fx_params(int i) {
    return 1000 + (int64_t)((i * 53) % 97) * 100;
}

/* Add search task k (the k-th cell), optionally leased to `worker`. */
static inline int64_t fx_add(nas_store *st, int k, const char *worker, int64_t now) {
    char text[256], err[NAS_ERR_LEN];
    nas_store_new_task t = {.arch_hash = fx_arch(k, text, sizeof text),
                            .arch_text = text,
                            .params = fx_params(k),
                            .macs = fx_params(k) * 40,
                            .stage = NAS_STORE_STAGE_SEARCH,
                            .fidelity = nas_fidelity_default(),
                            .lease_worker = worker,
                            .lease_expiry_ms = now + 60000};
    int64_t id;
    ck_assert_msg(nas_store_task_add(st, &t, NULL, 0, now, &id, err) == NAS_OK, "%s", err);
    return id;
}

/* Record the result of leased task `id` (made by fx_add(st, k, worker)). */
static inline void fx_result(nas_store *st, int64_t id, int k, const char *worker, int64_t now) {
    char err[NAS_ERR_LEN];
    float curve[3] = {(float)fx_acc(k) * 0.5f, (float)fx_acc(k) * 0.8f, (float)fx_acc(k)};
    nas_store_result r = {.accuracy = fx_acc(k),
                          .loss = 0.5,
                          .test_accuracy = NAN,
                          .curve = curve,
                          .n_curve = 3,
                          .params = fx_params(k),
                          .macs = fx_params(k) * 40,
                          .seconds = 2.0,
                          .worker = worker};
    ck_assert_msg(nas_store_put_result(st, id, 1, &r, NULL, 0, now, err) == NAS_STORE_APPLIED, "%s",
                  err);
}

/* A store with `n` search results by w1 and w2 (alternating), one task
 * still leased to w1, one failed attempt (back in the queue), and a
 * weights file.  Returns the writer handle (the caller closes it). */
static inline nas_store *fx_store(const char *path, int n) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_msg(nas_store_open(&st, path, err) == NAS_OK, "%s", err);
    nas_store_campaign c = {.name = "dash",
                            .text = "name: dash\n",
                            .canonical = "name: dash\nstrategy.name: evolution\n"
                                         "budget.evaluations: 500\n",
                            .hash = 77,
                            .seed = 1};
    ck_assert_msg(nas_store_campaign_bind(st, &c, 1000, NULL, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_store_worker_seen(st, "w1", "h1", 2, "0.1", 1000, err), NAS_OK);
    ck_assert_int_eq(nas_store_worker_seen(st, "w2", "h2", 4, "0.1", 1000, err), NAS_OK);
    ck_assert_int_eq(nas_store_batch_begin(st, err), NAS_OK);
    for (int i = 0; i < n; i++) {
        const char *w = i % 2 ? "w2" : "w1";
        int64_t id = fx_add(st, i, w, 2000 + i);
        fx_result(st, id, i, w, 3000 + i * 10);
    }
    ck_assert_int_eq(nas_store_batch_commit(st, err), NAS_OK);
    int64_t failing = fx_add(st, n, "w2", 9000);
    ck_assert_int_eq(nas_store_put_failure(st, failing, 1, NAS_STORE_FAIL_TRAINING, "NaN loss", 3,
                                           NULL, 0, 9100, err),
                     NAS_STORE_APPLIED);
    fx_add(st, n + 1, "w1", 9200);
    char text[256];
    ck_assert_int_eq(
        nas_store_weights_put(st, fx_arch(0, text, sizeof text), "/tmp/x.st", 4096, 9300, err),
        NAS_OK);
    return st;
}

// ---- the server as a process -------------------------------------------------------------

/* `nasctl serve --db db --listen 127.0.0.1:0 EXTRA...` with its output in
 * `log`; waits for the line that names the port (into *port).  Returns
 * the pid (the caller ends it with fx_serve_stop). */
static inline pid_t fx_serve_start(const char *db, const char *log, const char *const *extra,
                                   int *port) {
    char nasctl[4096];
    snprintf(nasctl, sizeof nasctl, "%s", nas_bin("nasctl"));
    char *argv[32] = {nasctl, "serve", "--db", (char *)db, "--listen", "127.0.0.1:0"};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (f) dup2(fileno(f), 2);
        execv(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        char *text = nas_read_file(log, NULL);
        const char *p = text ? strstr(text, "http://127.0.0.1:") : NULL;
        if (p) {
            *port = atoi(p + strlen("http://127.0.0.1:"));
            free(text);
            return pid;
        }
        free(text);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) ck_abort_msg("nasctl serve exited at start");
        usleep(25000);
    }
    kill(pid, SIGKILL);
    ck_abort_msg("nasctl serve did not announce its port");
    return -1;
}

/* SIGTERM and reap; the exit status (the server's clean stop is 0). */
static inline int fx_serve_stop(pid_t pid) {
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < 400; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        usleep(25000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

// ---- raw HTTP ----------------------------------------------------------------------------------

static inline int fx_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Read what arrives on fd into out (NUL-terminated) until the peer closes,
 * `until` appears (when not NULL) or timeout_ms passes.  Returns bytes. */
static inline size_t fx_read(int fd, char *out, size_t cap, const char *until, int timeout_ms) {
    size_t n = 0;
    out[0] = 0;
    int64_t end = nas_now_ms() + timeout_ms;
    while (n + 1 < cap && nas_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(end - nas_now_ms())) <= 0) break;
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
        out[n] = 0;
        if (until && strstr(out, until)) break;
    }
    return n;
}

/* Send `req` as it is and read the answer until the server closes (every
 * request carries Connection: close).  Returns the status code, 0 when no
 * status line came back; the whole answer is in out. */
static inline int fx_http_raw(int port, const char *req, size_t len, char *out, size_t cap) {
    int fd = fx_connect(port);
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may refuse a huge request early */
        off += (size_t)w;
    }
    fx_read(fd, out, cap, NULL, 10000);
    close(fd);
    int status = 0;
    if (strncmp(out, "HTTP/1.", 7) == 0) status = atoi(out + 9);
    return status;
}

/* GET path with extra header lines (each ending in \r\n, or ""). */
static inline int fx_get(int port, const char *path, const char *headers, char *out, size_t cap) {
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n", path,
                     headers);
    return fx_http_raw(port, req, (size_t)n, out, cap);
}

/* The body of an answer (after the blank line), or "" */
static inline const char *fx_body(const char *answer) {
    const char *p = strstr(answer, "\r\n\r\n");
    return p ? p + 4 : "";
}

#endif
