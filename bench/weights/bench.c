/*
 * bench.c - weight transfer throughput over loopback TCP: the parameter
 * server (worker/ps_client.h against master/weights.h's serve loop) beside
 * a raw ZeroMQ DEALER/ROUTER moving the same bytes, in the same process,
 * the same run, the same thread layout (client in main, server in a
 * thread).
 *
 * Architectures are stacks of fully connected layers sized to about
 * 100 KB, 1 MB and 10 MB of float32 tensors.
 *   pull: the store holds the architecture in memory; one round trip is
 *         request -> manifest + frame -> client verifies every checksum.
 *         Raw: request -> one frame of the same size.
 *   push: collect the net, checksum the parameter block (XXH3) and lend
 *         it to ZeroMQ as the frame (no copy), the store verifies and
 *         keeps it, ACK, the client waits for ZeroMQ to release the block.
 *         Measured memory-only (the transfer) and with the write-through
 *         file (safetensors + fsync).  Raw: one frame of the same size
 *         (zmq_send, which copies it, as a user would write) -> 1-byte
 *         reply.
 * Each figure is the median MB/s over rounds of several transfers; every
 * round runs on new connections for both sides (see compare()).
 *
 * usage: bench ROUNDS [SIZE]  (SIZE: 100KB, 1MB or 10MB; all by default)
 * prints: case=... ours=... peer=... unit=MB/s ratio=...  and, for pull
 * and push, case=..._cpu ours=... peer=... unit=us/transfer (process CPU
 * time per transfer, every thread).
 */
#include "common/clock.h"
#include "common/err.h"
#include "common/inherit.h"
#include "common/log.h"
#include "common/wire.h"
#include "common/wire_weights.h"
#include "master/weights.h"
#include "worker/ps_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct srv {
    void *router;
    nas_weights *w; /* NULL: raw echo server */
    atomic_int stop;
    size_t raw_bytes; /* raw: bytes of a pull reply */
    uint8_t *raw_buf;
} srv;

/* Raw server: a 1-byte request gets raw_bytes back; a big message gets a
 * 1-byte reply. */
static void raw_serve(srv *s) {
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&id, s->router, ZMQ_DONTWAIT) < 0) return;
    zmq_msg_recv(&body, s->router, 0);
    size_t n = zmq_msg_size(&body);
    zmq_send(s->router, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
    if (n <= 1)
        zmq_send(s->router, s->raw_buf, s->raw_bytes, 0);
    else
        zmq_send(s->router, "k", 1, 0);
    zmq_msg_close(&id);
    zmq_msg_close(&body);
}

static void *srv_main(void *arg) {
    srv *s = arg;
    char err[NAS_ERR_LEN];
    while (!atomic_load(&s->stop)) {
        zmq_pollitem_t it = {s->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0) continue;
        if (s->w)
            while (nas_weights_serve_one(s->w, s->router, 0, err) == NAS_OK) {
            }
        else
            raw_serve(s);
    }
    return NULL;
}

/* Fully connected stack: `layers` of c -> c, then c -> 10. */
static nas_net *make_net(int c, int layers) {
    char err[NAS_ERR_LEN];
    nas_net *net = NULL;
    if (nas_net_create(&net, c, 1, 1, err) < 0) abort();
    int x = nas_net_input(net);
    char path[32];
    for (int i = 0; i < layers; i++) {
        snprintf(path, sizeof path, "fc%d", i);
        x = nas_net_linear(net, path, x, c);
    }
    x = nas_net_linear(net, "head", x, 10);
    if (nas_net_compile(net, x, 1, err) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    nas_inherit_init(net, 1);
    return net;
}

static size_t net_bytes(nas_net *net) {
    size_t tr, total;
    nas_net_params_data(net, &tr, &total);
    return total * sizeof(float);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void start(srv *s, void *ctx, nas_weights *w, char *ep, size_t cap, pthread_t *th) {
    memset(s, 0, sizeof *s);
    s->router = zmq_socket(ctx, ZMQ_ROUTER);
    char err[NAS_ERR_LEN];
    nas_wire_socket_setup(s->router, err);
    if (zmq_bind(s->router, "tcp://127.0.0.1:*") != 0) abort();
    size_t n = cap;
    zmq_getsockopt(s->router, ZMQ_LAST_ENDPOINT, ep, &n);
    s->w = w;
    pthread_create(th, NULL, srv_main, s);
}

static void stop(srv *s, pthread_t th) {
    atomic_store(&s->stop, 1);
    pthread_join(th, NULL);
    zmq_close(s->router);
}

/* MB/s of one round of `reps` transfers through the parameter server. */
static double run_ours(nas_ps_client *c, nas_net *net, int pull, int reps) {
    char err[NAS_ERR_LEN];
    size_t bytes = net_bytes(net);
    {
        int64_t t0 = nas_now_ns();
        for (int k = 0; k < reps; k++) {
            if (pull) {
                nas_ps_weights *w = NULL;
                if (nas_ps_client_pull(c, 1, &w, err) < 0) {
                    fprintf(stderr, "bench: pull: %s\n", err);
                    exit(1);
                }
                nas_ps_weights_destroy(&w);
            } else if (nas_ps_client_push(c, 1, net, err) < 0) {
                fprintf(stderr, "bench: push: %s\n", err);
                exit(1);
            }
        }
        double s = (double)(nas_now_ns() - t0) * 1e-9;
        return (double)bytes * reps / s / 1e6;
    }
}

/* The same round through a raw DEALER.  A push is zmq_send (ZeroMQ
 * copies the buffer, what a user would write), or with zc the buffer lent
 * as ours lends the net's block (zmq_msg_init_data; the buffer never
 * changes, so raw need not wait for its release). */
static double run_raw(void *dealer, uint8_t *buf, size_t bytes, int pull, int zc, int reps) {
    {
        int64_t t0 = nas_now_ns();
        for (int k = 0; k < reps; k++) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (pull) {
                zmq_send(dealer, "p", 1, 0);
            } else if (zc) {
                zmq_msg_t out;
                zmq_msg_init_data(&out, buf, bytes, NULL, NULL);
                zmq_msg_send(&out, dealer, 0);
            } else {
                zmq_send(dealer, buf, bytes, 0);
            }
            zmq_msg_recv(&m, dealer, 0);
            zmq_msg_close(&m);
        }
        double s = (double)(nas_now_ns() - t0) * 1e-9;
        return (double)bytes * reps / s / 1e6;
    }
}

/* Process CPU time (every thread: client, store, ZeroMQ's I/O threads),
 * in ns.  On a shared machine wall time includes run-queue waits; CPU
 * time per transfer does not, so it is the steadier figure. */
static int64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A raw DEALER connected to `ep`, as ours is (same context, same socket
 * options), or abort: the bench has no use for a half-built peer. */
static void *raw_dealer(void *ctx, const char *ep) {
    char err[NAS_ERR_LEN];
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    if (!d || nas_wire_socket_setup(d, err) < 0 || zmq_connect(d, ep) != 0) abort();
    return d;
}

/* Ours and raw alternate round by round, so a load spike on a shared
 * machine hits both sides alike; each side's median is reported, and the
 * CPU time per transfer of each side over all its rounds (cpu_*_us).
 *
 * Every round runs on a new connection for both sides, warmed by one
 * untimed transfer of the round's kind.  Why: loopback TCP here runs BBR
 * with the kernel's internal pacing, and a connection's pacing rate is
 * state that its history sets and that then persists; a connection that
 * carried 140 pulls and then pushes was measured at about twice the
 * kernel CPU per 1 MB push (I/O thread 340-450 us against 180-230 us on
 * a fresh one, the same syscall and context-switch counts), and which
 * side got such a connection depended on who had pushed first (ours had:
 * its warm-up push seeds the store).  Fresh connections give both sides
 * the same history on every round. */
static void compare(const char *name, nas_ps_client **c, void *ctx, const char *ep, const char *rep,
                    nas_net *net, uint8_t *buf, int pull, int rounds, int reps, double *ours_out,
                    double *peer_out, double *cpu_ours_us, double *cpu_peer_us, double *zc_out) {
    double o[64], p[64], z[64];
    size_t bytes = net_bytes(net);
    char err[NAS_ERR_LEN];
    int64_t co = 0, cp = 0;
    for (int r = 0; r < rounds; r++) {
        /* The new client before the old one goes: its handshake monitor
         * then gets an inproc address the old one's (closed by libzmq
         * asynchronously) is not still bound to. */
        nas_ps_client *fresh = NULL;
        if (nas_ps_client_create(&fresh, ctx, ep, 30000, err) < 0) abort();
        nas_ps_client_destroy(c);
        *c = fresh;
        run_ours(*c, net, pull, 1); /* warm-up: connects, untimed */
        int64_t t0 = cpu_ns();
        o[r] = run_ours(*c, net, pull, reps);
        int64_t t1 = cpu_ns();
        co += t1 - t0;
        if (rep) {
            void *d = raw_dealer(ctx, rep);
            run_raw(d, buf, bytes, pull, 0, 1);
            t1 = cpu_ns();
            p[r] = run_raw(d, buf, bytes, pull, 0, reps);
            cp += cpu_ns() - t1;
            zmq_close(d);
        }
        if (rep && zc_out) {
            /* A third side, informative only: raw ZeroMQ without its copy. */
            void *d = raw_dealer(ctx, rep);
            run_raw(d, buf, bytes, pull, 1, 1);
            z[r] = run_raw(d, buf, bytes, pull, 1, reps);
            zmq_close(d);
        }
    }
    *ours_out = median(o, rounds);
    if (rep) *peer_out = median(p, rounds);
    if (rep && zc_out) *zc_out = median(z, rounds);
    *cpu_ours_us = (double)co / 1e3 / (rounds * reps);
    if (rep) *cpu_peer_us = (double)cp / 1e3 / (rounds * reps);
    (void)name;
}

static void report(const char *name, double ours, double peer) {
    printf("case=%s ours=%.0f peer=%.0f unit=MB/s ratio=%.2f\n", name, ours, peer, ours / peer);
    fflush(stdout);
}

/* CPU time per transfer: lower is better, so the ratio is ours / raw as
 * for throughput but read the other way (1.2 = 20 % more CPU than raw). */
static void report_cpu(const char *name, double ours, double peer) {
    printf("case=%s_cpu ours=%.0f peer=%.0f unit=us/transfer ratio=%.2f\n", name, ours, peer,
           ours / peer);
    fflush(stdout);
}

/* The checksum alone: XXH3 (what is sent now) against FNV4 (the first
 * protocol's), GB/s of CPU time over one cached 1 MB buffer. */
static void bench_checksum(void) {
    size_t n = (size_t)1 << 20;
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 7);
    double gbs[2];
    uint64_t sink = 0;
    for (int kind = 0; kind < 2; kind++) {
        int64_t t0 = cpu_ns();
        for (int k = 0; k < 500; k++) {
            b[k] ^= 1;
            sink += nas_wire_weights_checksum(kind, b, n);
        }
        gbs[kind] = 500.0 * (double)n / (double)(cpu_ns() - t0);
    }
    printf("case=checksum_1MB(xxh3_vs_fnv4) ours=%.1f peer=%.1f unit=GB/s ratio=%.2f%s\n",
           gbs[NAS_CHECKSUM_XXH3], gbs[NAS_CHECKSUM_FNV4],
           gbs[NAS_CHECKSUM_XXH3] / gbs[NAS_CHECKSUM_FNV4], sink == 1 ? " " : "");
    free(b);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    if (rounds < 1 || rounds > 64) rounds = 7;
    nas_log_set_level(NAS_LOG_WARN);
    struct {
        const char *name;
        int c, layers, reps;
    } cases[3] = {{"100KB", 160, 1, 50}, {"1MB", 256, 4, 20}, {"10MB", 512, 10, 4}};
    char dir[] = "/tmp/nas-bench-weights.XXXXXX";
    if (!mkdtemp(dir)) abort();
    void *ctx = zmq_ctx_new();
    const char *only = argc > 2 ? argv[2] : NULL;
    if (!only) bench_checksum();
    for (int i = 0; i < 3; i++) {
        /* One size alone: for profiling a single case. */
        if (only && strcmp(only, cases[i].name) != 0) continue;
        nas_net *net = make_net(cases[i].c, cases[i].layers);
        size_t bytes = net_bytes(net);
        char err[NAS_ERR_LEN], ep[128], rep[128];
        /* ours: memory-only store for pull and push, then with files */
        nas_weights_config cfg = {.dir = NULL, .memory_budget = 1ll << 30};
        nas_weights *w = NULL;
        nas_weights_create(&w, &cfg, err);
        srv s, r;
        pthread_t th, rth;
        start(&s, ctx, w, ep, sizeof ep, &th);
        nas_ps_client *c = NULL;
        nas_ps_client_create(&c, ctx, ep, 30000, err);
        nas_ps_client_push(c, 1, net, err); /* warm-up, and the pull source */
        /* raw peer */
        uint8_t *buf = malloc(bytes);
        memset(buf, 7, bytes);
        start(&r, ctx, NULL, rep, sizeof rep, &rth);
        r.raw_bytes = bytes;
        r.raw_buf = buf;
        char name[64];
        double ours = 0, peer = 0, peer_push = 0, cpu_o = 0, cpu_p = 0;
        compare("pull", &c, ctx, ep, rep, net, buf, 1, rounds, cases[i].reps, &ours, &peer, &cpu_o,
                &cpu_p, NULL);
        snprintf(name, sizeof name, "pull_%s(%.2fMB)", cases[i].name, bytes / 1e6);
        report(name, ours, peer);
        snprintf(name, sizeof name, "pull_%s", cases[i].name);
        report_cpu(name, cpu_o, cpu_p);
        double peer_zc = 0;
        compare("push", &c, ctx, ep, rep, net, buf, 0, rounds, cases[i].reps, &ours, &peer_push,
                &cpu_o, &cpu_p, &peer_zc);
        snprintf(name, sizeof name, "push_%s", cases[i].name);
        report(name, ours, peer_push);
        report_cpu(name, cpu_o, cpu_p);
        snprintf(name, sizeof name, "push_%s(vs_raw_zero_copy)", cases[i].name);
        report(name, ours, peer_zc);
        peer = peer_push;
        nas_ps_client_destroy(&c);
        stop(&s, th);
        nas_weights_destroy(&w);
        /* push with the write-through file (safetensors, fsync, rename) */
        cfg.dir = dir;
        nas_weights_create(&w, &cfg, err);
        start(&s, ctx, w, ep, sizeof ep, &th);
        compare("push_disk", &c, ctx, ep, NULL, net, NULL, 0, rounds, cases[i].reps, &ours,
                &peer_push, &cpu_o, &cpu_p, NULL);
        snprintf(name, sizeof name, "push_disk_%s", cases[i].name);
        report(name, ours, peer);
        nas_ps_client_destroy(&c);
        stop(&s, th);
        nas_weights_drop(w, 1, err);
        nas_weights_destroy(&w);
        stop(&r, rth);
        free(buf);
        nas_net_destroy(&net);
    }
    zmq_ctx_term(ctx);
    rmdir(dir);
    return 0;
}
