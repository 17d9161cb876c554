/*
 * test_ps.c - the parameter server over real sockets and processes:
 * worker/ps_client.h against master/weights.h's serve loop on loopback
 * TCP.
 *
 *  - a child pulls its parent's tensors and gets exactly the matching ones
 *    bit for bit, fresh weights elsewhere;
 *  - a parent the store does not hold, a corrupted frame, a manifest
 *    whose shape does not match its bytes, and an answer for the wrong
 *    architecture all end in fresh weights with the reason named;
 *  - a corrupted push is refused with an ACK naming the tensor, and the
 *    store keeps nothing of it;
 *  - after kill -9 of the serving process, a new one on the same directory
 *    serves the same tensors from disk.
 */
#include "master/weights.h"
#include "proto/nas.pb-c.h"
#include "tests/harness.h"
#include "tests/weights_fixtures.h"
#include "worker/ps_client.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

// ---- sockets (the serving thread is weights_fixtures.h's fix_server) --------------------

/* Bind a ROUTER on an ephemeral loopback port; `endpoint` gets its name. */
static void *bind_router(void *ctx, const char *where, char *endpoint, size_t cap) {
    void *r = zmq_socket(ctx, ZMQ_ROUTER);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_wire_socket_setup(r, err), NAS_OK);
    ck_assert_msg(zmq_bind(r, where) == 0, "bind %s: %s", where, zmq_strerror(zmq_errno()));
    size_t n = cap;
    zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, endpoint, &n);
    return r;
}

static nas_ps_client *client(void *ctx, const char *endpoint, int timeout_ms) {
    nas_ps_client *c = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_ps_client_create(&c, ctx, endpoint, timeout_ms, err) == NAS_OK, "%s", err);
    return c;
}

/* Every child tensor equals the parent's where path and shape agree and
 * the fresh child's elsewhere. */
static void expect_inherited(const nas_net *child, const nas_net *parent, const nas_net *fresh) {
    for (int i = 0; i < nas_net_param_n(child); i++) {
        const nas_param *c = nas_net_param(child, i);
        const nas_param *p = nas_net_param_find(parent, c->name);
        int match = p && p->ndim == c->ndim &&
                    memcmp(p->shape, c->shape, sizeof(int) * (size_t)c->ndim) == 0;
        ck_assert_msg(fix_same(child, match ? parent : fresh, c->name), "%s: expected %s", c->name,
                      match ? "the parent's bytes" : "fresh weights");
    }
}

static void expect_fresh(const nas_net *net, const nas_net *fresh) {
    for (int i = 0; i < nas_net_param_n(net); i++)
        ck_assert(fix_same(net, fresh, nas_net_param(net, i)->name));
}

// ---- tests ---------------------------------------------------------------------------------

START_TEST(test_ps_child_inherits_parent_over_tcp) {
    const char *dir = nas_tmpdir_make();
    fix_server s;
    fix_server_start(&s, dir, 64 << 20);
    void *ctx = zmq_ctx_new();
    nas_ps_client *c = client(ctx, s.endpoint, 5000);
    nas_net *parent = fix_net(FIX_PARENT, 1);
    fix_scramble(parent, 3);
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_ps_client_push(c, 0xfeed, parent, err) == NAS_OK, "%s", err);
    nas_net *child = fix_net(FIX_CHILD, 99); /* inherit re-initialises from the task seed */
    nas_net *fresh = fix_net(FIX_CHILD, 7);
    nas_inherit_stats st;
    int got = nas_ps_client_inherit(c, 0xfeed, child, 7, &st, err);
    ck_assert_msg(got > 0, "%s", err);
    ck_assert_int_eq(got, st.matched);
    ck_assert_int_gt(st.shape_mismatch, 0);
    expect_inherited(child, parent, fresh);
    /* A raw pull returns the parent's whole block, bit for bit. */
    nas_ps_weights *w = NULL;
    ck_assert_int_eq(nas_ps_client_pull(c, 0xfeed, &w, err), NAS_OK);
    size_t n = 0;
    const nas_safetensors_tensor *t = nas_ps_weights_tensors(w, &n);
    ck_assert_uint_eq(n, (size_t)nas_net_param_n(parent));
    for (size_t i = 0; i < n; i++) {
        const nas_param *p = nas_net_param_find(parent, t[i].name);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(memcmp(t[i].data, p->data, p->size * sizeof(float)), 0);
    }
    nas_ps_weights_destroy(&w);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    fix_server_stop(&s);
    nas_net_destroy(&parent);
    nas_net_destroy(&child);
    nas_net_destroy(&fresh);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_ps_unknown_parent_trains_fresh) {
    const char *dir = nas_tmpdir_make();
    fix_server s;
    fix_server_start(&s, dir, 64 << 20);
    void *ctx = zmq_ctx_new();
    nas_ps_client *c = client(ctx, s.endpoint, 5000);
    nas_net *child = fix_net(FIX_CHILD, 1), *fresh = fix_net(FIX_CHILD, 4);
    fix_scramble(child, 1);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_ps_client_inherit(c, 0x404, child, 4, NULL, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "no longer holds 0000000000000404"));
    expect_fresh(child, fresh);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    fix_server_stop(&s);
    nas_net_destroy(&child);
    nas_net_destroy(&fresh);
    nas_tmpdir_rm(dir);
}
END_TEST

/* A push whose bytes were damaged in flight is refused by the store with
 * the tensor named, and nothing is kept. */
START_TEST(test_ps_corrupted_push_refused) {
    const char *dir = nas_tmpdir_make();
    fix_server s;
    fix_server_start(&s, dir, 64 << 20);
    void *ctx = zmq_ctx_new();
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    char err[NAS_ERR_LEN] = "";
    nas_wire_socket_setup(d, err);
    ck_assert_int_eq(zmq_connect(d, s.endpoint), 0);
    nas_net *net = fix_net(FIX_PARENT, 1);
    nas_wire_weights_msg m;
    const void *base = NULL;
    fix_manifest(net, 0xbad, &m, &base);
    m.seq = 5;
    size_t len = m.total_bytes;
    uint8_t *copy = nas_malloc(len);
    memcpy(copy, base, len);
    copy[len / 2] ^= 0x10;
    ck_assert_int_eq(nas_wire_weights_send(d, NULL, 0, &m, copy, 0, err), NAS_OK);
    nas_wire_weights_packet pkt;
    zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};
    ck_assert_int_eq(zmq_poll(&it, 1, 5000), 1);
    ck_assert_int_eq(nas_wire_weights_recv(d, 0, 0, &pkt, err), NAS_OK);
    ck_assert_int_eq(pkt.msg.type, NAS_MSG_ERROR);
    ck_assert_int_eq(pkt.msg.code, NAS_EFORMAT);
    ck_assert_msg(strstr(pkt.msg.message, "checksum mismatch in tensor '") != NULL, "%s",
                  pkt.msg.message);
    nas_wire_weights_packet_fini(&pkt);
    /* A good push after it is stored: the socket is still in step. */
    nas_ps_client *c = client(ctx, s.endpoint, 5000);
    ck_assert_int_eq(nas_ps_client_push(c, 0x600d, net, err), NAS_OK);
    nas_ps_weights *w = NULL;
    ck_assert_int_eq(nas_ps_client_pull(c, 0xbad, &w, err), NAS_ENOTFOUND);
    ck_assert_int_eq(nas_ps_client_pull(c, 0x600d, &w, err), NAS_OK);
    nas_ps_weights_destroy(&w);
    nas_ps_client_destroy(&c);
    nas_free(copy);
    nas_wire_weights_msg_fini(&m);
    zmq_close(d);
    zmq_ctx_term(ctx);
    fix_server_stop(&s);
    nas_net_destroy(&net);
    nas_tmpdir_rm(dir);
}
END_TEST

// ---- a rogue store: answers every pull with a chosen defect ------------------------------

enum defect { DEFECT_FLIP, DEFECT_SHAPE, DEFECT_ARCH, DEFECT_COUNT };

typedef struct rogue {
    void *router;
    const nas_net *net;
    enum defect defect;
    pthread_t th;
} rogue;

static void *rogue_main(void *arg) {
    rogue *r = arg;
    nas_wire_weights_packet req;
    char err[NAS_ERR_LEN] = "";
    if (nas_wire_weights_recv(r->router, 1, 0, &req, err) != NAS_OK) return NULL;
    nas_wire_weights_msg m;
    const void *base = NULL;
    fix_manifest(r->net, req.msg.arch, &m, &base);
    m.type = NAS_MSG_WEIGHTS_REPLY;
    m.seq = req.msg.seq;
    size_t len = m.total_bytes;
    uint8_t *data = nas_malloc(len);
    memcpy(data, base, len);
    uint8_t *env = NULL;
    size_t env_len = 0;
    if (r->defect == DEFECT_FLIP) data[len - 3] ^= 0x01;
    if (r->defect == DEFECT_ARCH) m.arch ^= 1;
    nas_wire_weights_encode(&m, &env, &env_len, err);
    if (r->defect == DEFECT_SHAPE) {
        /* Claim a shape whose bytes differ from the manifest's offsets:
         * re-encode by hand after changing the first tensor's first dim. */
        nas_free(env);
        m.tensors[0].shape[0] += 1;
        m.tensors[0].nbytes = 0; /* the encoder's check is bypassed below */
        Naspb__WeightsTensor *ts = nas_calloc(m.n, sizeof *ts);
        Naspb__WeightsTensor **tp = nas_calloc(m.n, sizeof *tp);
        for (size_t i = 0; i < m.n; i++) {
            naspb__weights_tensor__init(&ts[i]);
            ts[i].path = m.tensors[i].name;
            ts[i].n_shape = (size_t)m.tensors[i].ndim;
            ts[i].shape = m.tensors[i].shape;
            ts[i].has_offset = ts[i].has_checksum = 1;
            ts[i].offset = m.tensors[i].offset;
            ts[i].checksum = m.tensors[i].checksum;
            tp[i] = &ts[i];
        }
        Naspb__WeightsData dd = NASPB__WEIGHTS_DATA__INIT;
        dd.has_arch_hash = dd.has_found = dd.has_total_bytes = 1;
        dd.arch_hash = m.arch;
        dd.found = 1;
        dd.total_bytes = m.total_bytes;
        dd.n_tensors = m.n;
        dd.tensors = tp;
        size_t bl = naspb__weights_data__get_packed_size(&dd);
        uint8_t *body = nas_malloc(bl);
        naspb__weights_data__pack(&dd, body);
        Naspb__Envelope e = NASPB__ENVELOPE__INIT;
        e.has_protocol = e.has_type = e.has_payload = e.has_frames = e.has_seq = 1;
        e.protocol = NAS_PROTOCOL_VERSION;
        e.type = NAS_MSG_WEIGHTS_REPLY;
        e.seq = m.seq;
        e.payload.data = body;
        e.payload.len = bl;
        e.frames = 1;
        env_len = naspb__envelope__get_packed_size(&e);
        env = nas_malloc(env_len);
        naspb__envelope__pack(&e, env);
        nas_free(body);
        nas_free(ts);
        nas_free(tp);
    }
    zmq_send(r->router, req.identity, req.id_len, ZMQ_SNDMORE);
    zmq_send(r->router, env, env_len, ZMQ_SNDMORE);
    zmq_send(r->router, data, len, 0);
    nas_free(env);
    nas_free(data);
    nas_wire_weights_msg_fini(&m);
    nas_wire_weights_packet_fini(&req);
    return NULL;
}

START_TEST(test_ps_corrupted_reply_falls_back_to_fresh) {
    static const char *const expect[DEFECT_COUNT] = {
        "checksum mismatch", "shapes and offsets disagree", "asked for 0000000000000abc"};
    void *ctx = zmq_ctx_new();
    nas_net *parent = fix_net(FIX_PARENT, 1);
    fix_scramble(parent, 2);
    for (int d = 0; d < DEFECT_COUNT; d++) {
        char ep[128];
        rogue r = {.router = bind_router(ctx, "tcp://127.0.0.1:*", ep, sizeof ep),
                   .net = parent,
                   .defect = (enum defect)d};
        pthread_create(&r.th, NULL, rogue_main, &r);
        nas_ps_client *c = client(ctx, ep, 5000);
        nas_net *child = fix_net(FIX_CHILD, 1), *fresh = fix_net(FIX_CHILD, 8);
        char err[NAS_ERR_LEN] = "";
        ck_assert_int_eq(nas_ps_client_inherit(c, 0xabc, child, 8, NULL, err), 0);
        ck_assert_msg(strstr(err, expect[d]) != NULL, "defect %d: %s", d, err);
        expect_fresh(child, fresh);
        pthread_join(r.th, NULL);
        nas_ps_client_destroy(&c);
        zmq_close(r.router);
        nas_net_destroy(&child);
        nas_net_destroy(&fresh);
    }
    nas_net_destroy(&parent);
    zmq_ctx_term(ctx);
}
END_TEST

START_TEST(test_ps_silent_master_times_out) {
    void *ctx = zmq_ctx_new();
    char ep[128];
    void *r = bind_router(ctx, "tcp://127.0.0.1:*", ep, sizeof ep); /* never answers */
    nas_ps_client *c = client(ctx, ep, 200);
    nas_net *child = fix_net(FIX_CHILD, 1);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_ps_client_inherit(c, 1, child, 1, NULL, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "within 200 ms"));
    ck_assert_int_eq(nas_ps_client_push(c, 1, child, err), NAS_ETIMEDOUT);
    nas_ps_client_destroy(&c);
    nas_net_destroy(&child);
    zmq_close(r);
    zmq_ctx_term(ctx);
}
END_TEST

// ---- kill -9 and resume ----------------------------------------------------------------------

/* A serving process on `dir`; binds `where` and writes the endpoint to
 * the pipe.  Runs until killed. */
static pid_t spawn_server(const char *dir, const char *where, char *endpoint, size_t cap) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        void *ctx = zmq_ctx_new();
        char ep[128] = "";
        void *r = zmq_socket(ctx, ZMQ_ROUTER);
        if (zmq_bind(r, where) != 0) _exit(2);
        size_t n = sizeof ep;
        zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &n);
        nas_weights_config cfg = {.dir = dir, .memory_budget = 1 << 20};
        nas_weights *w = NULL;
        char err[NAS_ERR_LEN];
        if (nas_weights_create(&w, &cfg, err) != NAS_OK) _exit(3);
        if (write(fds[1], ep, strlen(ep) + 1) < 0) _exit(4);
        close(fds[1]);
        for (;;) {
            zmq_pollitem_t it = {r, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, 100) > 0)
                while (nas_weights_serve_one(w, r, 0, err) == NAS_OK) {
                }
        }
    }
    close(fds[1]);
    ssize_t got = read(fds[0], endpoint, cap - 1);
    close(fds[0]);
    ck_assert_int_gt(got, 0);
    endpoint[got] = 0;
    return pid;
}

START_TEST(test_ps_weights_survive_kill_9) {
    const char *dir = nas_tmpdir_make();
    char ep[128];
    pid_t pid = spawn_server(dir, "tcp://127.0.0.1:*", ep, sizeof ep);
    void *ctx = zmq_ctx_new();
    nas_ps_client *c = client(ctx, ep, 10000);
    nas_net *parent = fix_net(FIX_PARENT, 1);
    fix_scramble(parent, 5);
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_ps_client_push(c, 0xd15c, parent, err) == NAS_OK, "%s", err);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* The same endpoint, a new process, the same directory: the client's
     * DEALER reconnects by itself. */
    char ep2[128];
    pid = spawn_server(dir, ep, ep2, sizeof ep2);
    nas_net *child = fix_net(FIX_CHILD, 1), *fresh = fix_net(FIX_CHILD, 6);
    nas_inherit_stats st;
    int got = nas_ps_client_inherit(c, 0xd15c, child, 6, &st, err);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_assert_msg(got > 0, "%s", err);
    expect_inherited(child, parent, fresh);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    nas_net_destroy(&parent);
    nas_net_destroy(&child);
    nas_net_destroy(&fresh);
    nas_tmpdir_rm(dir);
}
END_TEST

/* Over CurveZMQ the client pulls with its key pair; a plaintext client is
 * never answered (the handshake fails) and trains fresh after its timeout. */
START_TEST(test_ps_curve) {
    const char *dir = nas_tmpdir_make();
    char err[NAS_ERR_LEN] = "";
    nas_keypair server_kp, client_kp;
    ck_assert_int_eq(nas_keys_generate(&server_kp, err), NAS_OK);
    ck_assert_int_eq(nas_keys_generate(&client_kp, err), NAS_OK);
    fix_server s;
    fix_server_bind(&s, dir, 1 << 20, &server_kp);
    fix_server_run(&s);
    void *ctx = zmq_ctx_new();
    nas_ps_client *c = NULL;
    ck_assert_int_eq(nas_ps_client_create_curve(&c, ctx, s.endpoint, 5000, &client_kp,
                                                server_kp.public_z85, err),
                     NAS_OK);
    nas_net *net = fix_net(FIX_PARENT, 1);
    ck_assert_msg(nas_ps_client_push(c, 0xc0, net, err) == NAS_OK, "%s", err);
    nas_ps_weights *w = NULL;
    ck_assert_int_eq(nas_ps_client_pull(c, 0xc0, &w, err), NAS_OK);
    nas_ps_weights_destroy(&w);
    nas_ps_client *plain = client(ctx, s.endpoint, 300);
    /* Never answered, and told why by the handshake rather than the
     * timeout (common/zmon.h). */
    ck_assert_int_eq(nas_ps_client_pull(plain, 0xc0, &w, err), NAS_EAUTH);
    ck_assert_msg(strstr(err, "requires CurveZMQ"), "%s", err);
    nas_ps_client *none = NULL;
    ck_assert_int_eq(nas_ps_client_create_curve(&none, ctx, s.endpoint, 10, NULL, NULL, err),
                     NAS_EINVAL);
    ck_assert_ptr_null(none);
    nas_ps_client_destroy(&plain);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    fix_server_stop(&s);
    nas_net_destroy(&net);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("ps");
    TCase *tc = tcase_create("ps");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ps_child_inherits_parent_over_tcp);
    tcase_add_test(tc, test_ps_unknown_parent_trains_fresh);
    tcase_add_test(tc, test_ps_corrupted_push_refused);
    tcase_add_test(tc, test_ps_corrupted_reply_falls_back_to_fresh);
    tcase_add_test(tc, test_ps_silent_master_times_out);
    tcase_add_test(tc, test_ps_weights_survive_kill_9);
    tcase_add_test(tc, test_ps_curve);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
