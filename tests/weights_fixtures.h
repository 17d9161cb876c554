/*
 * weights_fixtures.h - networks and manifests shared by the weight-store
 * suites (test_inherit.c, test_weights.c, test_ps.c), and a store served
 * from a thread over loopback TCP (test_ps.c, test_weights_discovery.c).
 *
 * The parent and child genomes differ by one op mutation (block 1, half a:
 * sep5x5 -> sep3x3), so the child keeps every path of the parent and has
 * exactly the mutated half's depthwise kernels in a different shape: the
 * case inheritance exists for.
 */
#ifndef NAS_TEST_WEIGHTS_FIXTURES_H
#define NAS_TEST_WEIGHTS_FIXTURES_H

#include "common/alloc.h"
#include "common/builder.h"
#include "common/err.h"
#include "common/fidelity.h"
#include "common/inherit.h"
#include "common/keys.h"
#include "common/net.h"
#include "common/rng.h"
#include "common/wire_weights.h"
#include "master/weights.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <zmq.h>

#define FIX_PARENT "c=sep3x3:1+max3x3:0,sep5x5:2+id:0"
#define FIX_CHILD  "c=sep3x3:1+max3x3:0,sep3x3:2+id:0"
#define FIX_OTHER  "c=conv3x3:1+avg3x3:0"

/* Build and compile a genome at a tiny fidelity (F = 4, N = 1, 14x14
 * inputs, batch 8), initialised from `seed` as the trainer would. */
static inline nas_net *fix_net(const char *text, uint64_t seed) {
    char err[NAS_ERR_LEN] = "";
    nas_genome g;
    ck_assert_msg(nas_genome_parse(text, strlen(text), &g, err) == NAS_OK, "%s", err);
    nas_fidelity f = nas_fidelity_default();
    f.channels = 4;
    f.cells = 1;
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 14, 14, err), NAS_OK);
    int logits = -1;
    ck_assert_msg(nas_builder_build(net, &g, &f, 10, &logits, err) == NAS_OK, "%s", err);
    ck_assert_msg(nas_net_compile(net, logits, 8, err) == NAS_OK, "%s", err);
    nas_inherit_init(net, seed);
    return net;
}

/* Perturb every tensor so a net is distinguishable from any fresh one
 * (a stand-in for training: values no initialiser produces). */
static inline void fix_scramble(nas_net *net, uint64_t seed) {
    nas_rng r;
    nas_rng_init(&r, seed, 77);
    for (int i = 0; i < nas_net_param_n(net); i++) {
        const nas_param *p = nas_net_param(net, i);
        for (size_t k = 0; k < p->size; k++)
            p->data[k] += nas_rng_normal(&r) + 0.5f;
    }
}

/* A push manifest of a whole net (the data lie from *base). */
static inline void fix_manifest(const nas_net *net, uint64_t arch, nas_wire_weights_msg *m,
                                const void **base) {
    char err[NAS_ERR_LEN] = "";
    nas_safetensors_tensor *t = NULL;
    int n = nas_inherit_collect(net, &t, base, err);
    ck_assert_msg(n > 0, "%s", err);
    nas_wire_weights_msg_init(m, NAS_MSG_WEIGHTS_PUSH);
    m->arch = arch;
    ck_assert_msg(nas_wire_weights_manifest(m, t, (size_t)n, *base, NULL, err) == NAS_OK, "%s",
                  err);
    m->type = NAS_MSG_WEIGHTS_PUSH;
    nas_free(t);
}

/* 1 when two nets hold bit-identical data in the tensor called name. */
static inline int fix_same(const nas_net *a, const nas_net *b, const char *name) {
    const nas_param *pa = nas_net_param_find(a, name), *pb = nas_net_param_find(b, name);
    if (!pa || !pb || pa->size != pb->size) return 0;
    return memcmp(pa->data, pb->data, pa->size * sizeof(float)) == 0;
}

/* A weight store served by a thread over loopback TCP: the master's loop
 * stand-in, making the real nas_weights_serve_one call. */
typedef struct fix_server {
    void *ctx, *router;
    nas_weights *w;
    pthread_t th;
    atomic_int stop;
    char endpoint[128];
} fix_server;

static inline void *fix_serve_main(void *arg) {
    fix_server *s = arg;
    while (!atomic_load(&s->stop)) {
        zmq_pollitem_t it = {s->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0) continue;
        char err[NAS_ERR_LEN] = "";
        while (nas_weights_serve_one(s->w, s->router, 0, err) == NAS_OK) {
        }
    }
    return NULL;
}

/* Create the store (dir NULL: memory only) and bind its ROUTER on an
 * ephemeral loopback port, as a CurveZMQ server when kp is given; nothing
 * is served until fix_server_run, so a test may fill the store first. */
static inline void fix_server_bind(fix_server *s, const char *dir, int64_t budget,
                                   const nas_keypair *kp) {
    char err[NAS_ERR_LEN] = "";
    memset(s, 0, sizeof *s);
    s->ctx = zmq_ctx_new();
    s->router = zmq_socket(s->ctx, ZMQ_ROUTER);
    ck_assert_int_eq(nas_wire_socket_setup(s->router, err), NAS_OK);
    if (kp) ck_assert_int_eq(nas_keys_curve_server(s->router, kp, NULL, err), NAS_OK);
    ck_assert_msg(zmq_bind(s->router, "tcp://127.0.0.1:*") == 0, "bind: %s",
                  zmq_strerror(zmq_errno()));
    size_t n = sizeof s->endpoint;
    zmq_getsockopt(s->router, ZMQ_LAST_ENDPOINT, s->endpoint, &n);
    nas_weights_config cfg = {.dir = dir, .memory_budget = budget};
    ck_assert_msg(nas_weights_create(&s->w, &cfg, err) == NAS_OK, "%s", err);
}

static inline void fix_server_run(fix_server *s) {
    ck_assert_int_eq(pthread_create(&s->th, NULL, fix_serve_main, s), 0);
}

static inline void fix_server_start(fix_server *s, const char *dir, int64_t budget) {
    fix_server_bind(s, dir, budget, NULL);
    fix_server_run(s);
}

static inline void fix_server_stop(fix_server *s) {
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    nas_weights_destroy(&s->w);
    zmq_close(s->router);
    zmq_ctx_term(s->ctx);
}

#endif
