/*
 * test_ps_lend.c - the zero-copy push's lifetime contract with ZeroMQ, and
 * the weights protocol version (worker/ps_client.h, docs/PROTOCOL.md 7.1).
 *
 *  - a push lends the net's parameter block to ZeroMQ and returns only
 *    once ZeroMQ has released it, every time; what the store keeps is what
 *    the block held during the call, even when the net changes right after;
 *  - a push that gets no answer (no peer; a peer that accepts the TCP
 *    connection and never speaks ZMTP) returns NAS_ETIMEDOUT with the
 *    block released, and the client works again afterwards;
 *  - a master of the first release refuses a version-2 request with an
 *    Error it cannot give a seq: the push reports NAS_EVERSION by name;
 *  - a worker of the first release (version-1 envelopes, FNV4 only) is
 *    served a version-1 reply with FNV4 checksums and no checksum_kind,
 *    and its FNV4 push is stored and acknowledged;
 *  - the codec: versions 1 and 2 decode, 3 is refused by name, ACK and
 *    Error go out as version 1, a version-1 manifest of XXH3 checksums
 *    cannot be encoded, and one received (from the builds between XXH3
 *    and version 2) is read as XXH3.
 */
#include "common/clock.h"
#include "master/weights.h"
#include "proto/nas.pb-c.h"
#include "tests/harness.h"
#include "tests/weights_fixtures.h"
#include "worker/ps_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

static nas_ps_client *client(void *ctx, const char *endpoint, int timeout_ms) {
    nas_ps_client *c = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_ps_client_create(&c, ctx, endpoint, timeout_ms, err) == NAS_OK, "%s", err);
    return c;
}

/* The store's copy of arch equals net's parameters, tensor by tensor. */
static void expect_stored(nas_ps_client *c, uint64_t arch, const nas_net *net) {
    char err[NAS_ERR_LEN] = "";
    nas_ps_weights *w = NULL;
    ck_assert_msg(nas_ps_client_pull(c, arch, &w, err) == NAS_OK, "%s", err);
    size_t n = 0;
    const nas_safetensors_tensor *t = nas_ps_weights_tensors(w, &n);
    ck_assert_uint_eq(n, (size_t)nas_net_param_n(net));
    for (size_t i = 0; i < n; i++) {
        const nas_param *p = nas_net_param_find(net, t[i].name);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(memcmp(t[i].data, p->data, p->size * sizeof(float)) == 0, "%s differs",
                      t[i].name);
    }
    nas_ps_weights_destroy(&w);
}

// ---- the loan --------------------------------------------------------------------------

/* Many pushes in a row: after each, nothing is lent and exactly one more
 * loan has ended; the net is then changed at once (as training would) and
 * the store must still hold what was pushed. */
START_TEST(test_ps_lend_push_returns_after_release) {
    fix_server s;
    fix_server_start(&s, NULL, 64 << 20);
    void *ctx = zmq_ctx_new();
    nas_ps_client *c = client(ctx, s.endpoint, 5000);
    nas_net *net = fix_net(FIX_PARENT, 1), *copy = fix_net(FIX_PARENT, 1);
    char err[NAS_ERR_LEN] = "";
    for (int k = 0; k < 60; k++) {
        fix_scramble(net, (uint64_t)k);
        ck_assert_msg(nas_ps_client_push(c, 0xab, net, err) == NAS_OK, "push %d: %s", k, err);
        ck_assert_int_eq(nas_ps_client_block_lent(c), 0);
        ck_assert_uint_eq(nas_ps_client_block_releases(c), (uint64_t)k + 1);
        if (k % 20 == 19) {
            /* What was pushed, kept aside; then the net moves on. */
            for (int i = 0; i < nas_net_param_n(net); i++) {
                const nas_param *p = nas_net_param(net, i);
                memcpy(nas_net_param(copy, i)->data, p->data, p->size * sizeof(float));
            }
            fix_scramble(net, 1000u + (uint64_t)k);
            expect_stored(c, 0xab, copy);
        }
    }
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    fix_server_stop(&s);
    nas_net_destroy(&net);
    nas_net_destroy(&copy);
}
END_TEST

/* A loopback TCP port that accepts connections (the kernel's backlog) and
 * never reads or writes: ZeroMQ's handshake stalls, so a message sent to
 * it stays queued in the client. */
static int mute_listener(char *endpoint, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(endpoint, cap, "tcp://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    return fd;
}

/* A free loopback port: bound, then closed (nothing listens there). */
static void dead_endpoint(char *endpoint, size_t cap) {
    int fd = mute_listener(endpoint, cap);
    close(fd);
}

/* No answer, two ways: the push times out with its block released (and
 * the net freed at once after it, which ASan would catch if ZeroMQ still
 * read it), then the same client pushes to a live store. */
START_TEST(test_ps_lend_timeout_releases_block) {
    fix_server s;
    fix_server_start(&s, NULL, 64 << 20);
    void *ctx = zmq_ctx_new();
    char err[NAS_ERR_LEN] = "";
    for (int mode = 0; mode < 2; mode++) {
        char ep[64];
        int fd = -1;
        if (mode == 0)
            dead_endpoint(ep, sizeof ep);
        else
            fd = mute_listener(ep, sizeof ep);
        nas_ps_client *c = client(ctx, ep, 300);
        nas_net *net = fix_net(FIX_PARENT, 2);
        ck_assert_int_eq(nas_ps_client_push(c, 0x70, net, err), NAS_ETIMEDOUT);
        ck_assert_msg(strstr(err, "no answer") != NULL, "%s", err);
        ck_assert_int_eq(nas_ps_client_block_lent(c), 0);
        ck_assert_uint_eq(nas_ps_client_block_releases(c), 1);
        nas_net_destroy(&net); /* the caller may free the block now */
        /* The socket was replaced; the client still works. */
        net = fix_net(FIX_PARENT, 3);
        ck_assert_int_eq(nas_ps_client_set_endpoint(c, s.endpoint, err), NAS_OK);
        ck_assert_msg(nas_ps_client_push(c, 0x71, net, err) == NAS_OK, "%s", err);
        ck_assert_uint_eq(nas_ps_client_block_releases(c), 2);
        expect_stored(c, 0x71, net);
        nas_ps_client_destroy(&c);
        nas_net_destroy(&net);
        if (fd >= 0) close(fd);
    }
    zmq_ctx_term(ctx);
    fix_server_stop(&s);
}
END_TEST

START_TEST(test_ps_lend_empty_net_refused) {
    void *ctx = zmq_ctx_new();
    char ep[64], err[NAS_ERR_LEN] = "";
    dead_endpoint(ep, sizeof ep);
    nas_ps_client *c = client(ctx, ep, 300);
    /* Input -> global average pool: a compiled net without parameters. */
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 3, 4, 4, err), NAS_OK);
    int x = nas_net_gap(net, nas_net_input(net));
    ck_assert_msg(nas_net_compile(net, x, 1, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_ps_client_push(c, 1, net, err), NAS_EINVAL);
    ck_assert_msg(strstr(err, "no parameters") != NULL, "%s", err);
    ck_assert_uint_eq(nas_ps_client_block_releases(c), 0);
    nas_net_destroy(&net);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
}
END_TEST

// ---- protocol versions -----------------------------------------------------------------

/* A master of the first release: its decoder refuses anything but
 * protocol 1, and it answers a message it could not decode with an Error
 * whose seq is 0 (it never read one), sent as protocol 1. */
typedef struct old_master {
    void *ctx, *router;
    pthread_t th;
    char endpoint[64];
    int answered;
    int lose_first; /* 1: the first request is lost, as with a master killed holding it */
} old_master;

static void *old_master_main(void *arg) {
    old_master *o = arg;
    for (int k = 0; k < 2; k++) {
        zmq_msg_t id, part;
        zmq_msg_init(&id);
        zmq_msg_init(&part);
        if (zmq_msg_recv(&id, o->router, 0) < 0) break;
        zmq_msg_recv(&part, o->router, 0);
        Naspb__Envelope *env =
            naspb__envelope__unpack(NULL, zmq_msg_size(&part), zmq_msg_data(&part));
        char why[200];
        snprintf(why, sizeof why, "envelope.protocol = %u, this peer speaks 1",
                 env ? env->protocol : 0);
        if (env) naspb__envelope__free_unpacked(env, NULL);
        zmq_msg_close(&part);
        nas_wire_drain_parts(o->router);
        if (k == 0 && o->lose_first) {
            zmq_msg_close(&id);
            continue;
        }
        nas_wire_weights_msg e;
        nas_wire_weights_msg_init(&e, NAS_MSG_ERROR);
        e.code = NAS_EVERSION;
        snprintf(e.message, sizeof e.message, "%s", why);
        char err[NAS_ERR_LEN];
        if (nas_wire_weights_send(o->router, zmq_msg_data(&id), zmq_msg_size(&id), &e, NULL, 0,
                                  err) == NAS_OK)
            o->answered++;
        zmq_msg_close(&id);
    }
    return NULL;
}

/* Bind the old master on a free loopback port and start its thread. */
static void old_master_start(old_master *o) {
    char err[NAS_ERR_LEN] = "";
    o->ctx = zmq_ctx_new();
    o->router = zmq_socket(o->ctx, ZMQ_ROUTER);
    ck_assert_int_eq(nas_wire_socket_setup(o->router, err), NAS_OK);
    ck_assert_int_eq(zmq_bind(o->router, "tcp://127.0.0.1:*"), 0);
    size_t n = sizeof o->endpoint;
    zmq_getsockopt(o->router, ZMQ_LAST_ENDPOINT, o->endpoint, &n);
    ck_assert_int_eq(pthread_create(&o->th, NULL, old_master_main, o), 0);
}

/* After its thread was joined. */
static void old_master_close(old_master *o) {
    zmq_close(o->router);
    zmq_ctx_term(o->ctx);
}

START_TEST(test_ps_lend_old_master_names_version) {
    old_master o = {0};
    char err[NAS_ERR_LEN] = "";
    old_master_start(&o);
    void *ctx = zmq_ctx_new();
    nas_ps_client *c = client(ctx, o.endpoint, 5000);
    nas_net *net = fix_net(FIX_PARENT, 1);
    ck_assert_int_eq(nas_ps_client_push(c, 0x1, net, err), NAS_EVERSION);
    ck_assert_msg(strstr(err, "envelope.protocol = 2, this peer speaks 1") != NULL, "%s", err);
    ck_assert_int_eq(nas_ps_client_block_lent(c), 0);
    nas_ps_weights *w = NULL;
    ck_assert_int_eq(nas_ps_client_pull(c, 0x1, &w, err), NAS_EPROTO);
    ck_assert_msg(strstr(err, "protocol = 2") && strstr(err, "NAS_EVERSION"), "%s", err);
    pthread_join(o.th, NULL);
    ck_assert_int_eq(o.answered, 2);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    old_master_close(&o);
    nas_net_destroy(&net);
}
END_TEST

/* A pull whose request is lost (written to a master that died, or
 * dropped with its connection) is sent again after 1 s, and the answer to
 * the copy counts: the call ends long before its 10 s timeout. */
START_TEST(test_ps_pull_resent_after_lost_request) {
    old_master o = {0};
    o.lose_first = 1;
    char err[NAS_ERR_LEN] = "";
    old_master_start(&o);
    void *ctx = zmq_ctx_new();
    nas_ps_client *c = client(ctx, o.endpoint, 10000);
    nas_ps_weights *w = NULL;
    int64_t t0 = nas_now_ms();
    ck_assert_int_eq(nas_ps_client_pull(c, 0x1, &w, err), NAS_EPROTO);
    int64_t took = nas_now_ms() - t0;
    ck_assert_msg(took >= 900 && took < 6000, "pull took %lld ms: %s", (long long)took, err);
    pthread_join(o.th, NULL);
    ck_assert_int_eq(o.answered, 1);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    old_master_close(&o);
}
END_TEST

/* Receive one whole message on a DEALER as raw frames: envelope, then the
 * data frame if any (*data, nas_free). */
static Naspb__Envelope *recv_raw(void *d, uint8_t **data, size_t *len) {
    zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};
    ck_assert_int_eq(zmq_poll(&it, 1, 5000), 1);
    zmq_msg_t m;
    zmq_msg_init(&m);
    ck_assert_int_ge(zmq_msg_recv(&m, d, 0), 0);
    Naspb__Envelope *env = naspb__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    ck_assert_ptr_nonnull(env);
    *data = NULL;
    *len = 0;
    if (zmq_msg_more(&m)) {
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        ck_assert_int_ge(zmq_msg_recv(&m, d, 0), 0);
        *len = zmq_msg_size(&m);
        *data = nas_malloc(*len ? *len : 1);
        memcpy(*data, zmq_msg_data(&m), *len);
    }
    ck_assert(!zmq_msg_more(&m));
    zmq_msg_close(&m);
    return env;
}

/* A worker of the first release, byte for byte: it sends protocol 1 and
 * reads a reply only if it is protocol 1 with FNV4 checksums (the field
 * it does not know absent).  The store holds an XXH3 push of a current
 * worker. */
START_TEST(test_ps_lend_v1_worker_served_fnv4) {
    fix_server s;
    fix_server_start(&s, NULL, 64 << 20);
    void *ctx = zmq_ctx_new();
    char err[NAS_ERR_LEN] = "";
    nas_ps_client *c = client(ctx, s.endpoint, 5000);
    nas_net *net = fix_net(FIX_PARENT, 1);
    fix_scramble(net, 9);
    ck_assert_msg(nas_ps_client_push(c, 0x51, net, err) == NAS_OK, "%s", err);
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    nas_wire_socket_setup(d, err);
    ck_assert_int_eq(zmq_connect(d, s.endpoint), 0);
    /* Its pull. */
    nas_wire_weights_msg m;
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PULL);
    m.protocol = NAS_WEIGHTS_PROTOCOL_V1;
    m.seq = 3;
    m.arch = 0x51;
    ck_assert_int_eq(nas_wire_weights_send(d, NULL, 0, &m, NULL, 0, err), NAS_OK);
    uint8_t *data = NULL;
    size_t len = 0;
    Naspb__Envelope *env = recv_raw(d, &data, &len);
    ck_assert_uint_eq(env->protocol, 1);
    ck_assert_uint_eq(env->seq, 3);
    ck_assert_uint_eq(env->type, NAS_MSG_WEIGHTS_REPLY);
    Naspb__WeightsData *wd = naspb__weights_data__unpack(NULL, env->payload.len, env->payload.data);
    ck_assert_ptr_nonnull(wd);
    ck_assert_int_eq(wd->has_checksum_kind, 0);
    ck_assert(wd->found);
    ck_assert_uint_eq(wd->total_bytes, len);
    ck_assert_uint_eq(wd->n_tensors, (size_t)nas_net_param_n(net));
    for (size_t i = 0; i < wd->n_tensors; i++) {
        const Naspb__WeightsTensor *t = wd->tensors[i];
        const nas_param *p = nas_net_param_find(net, t->path);
        ck_assert_ptr_nonnull(p);
        size_t nb = p->size * sizeof(float);
        ck_assert_int_eq(memcmp(data + t->offset, p->data, nb), 0);
        ck_assert_msg(t->checksum == nas_wire_weights_checksum(NAS_CHECKSUM_FNV4, p->data, nb),
                      "%s: not its FNV4 checksum", t->path);
    }
    naspb__weights_data__free_unpacked(wd, NULL);
    naspb__envelope__free_unpacked(env, NULL);
    nas_free(data);
    /* Its push: FNV4, protocol 1; acknowledged as protocol 1, and a
     * current worker then pulls it with its FNV4 checksums verified. */
    nas_net *old = fix_net(FIX_CHILD, 4);
    const void *base = NULL;
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PUSH);
    m.checksum_kind = NAS_CHECKSUM_FNV4;
    m.protocol = NAS_WEIGHTS_PROTOCOL_V1;
    {
        nas_safetensors_tensor *t = NULL;
        int n = nas_inherit_collect(old, &t, &base, err);
        ck_assert_int_gt(n, 0);
        ck_assert_msg(nas_wire_weights_manifest(&m, t, (size_t)n, base, NULL, err) == NAS_OK, "%s",
                      err);
        nas_free(t);
    }
    m.type = NAS_MSG_WEIGHTS_PUSH;
    m.arch = 0x52;
    m.seq = 4;
    ck_assert_int_eq(nas_wire_weights_send(d, NULL, 0, &m, base, 0, err), NAS_OK);
    env = recv_raw(d, &data, &len);
    ck_assert_uint_eq(env->protocol, 1);
    ck_assert_uint_eq(env->type, NAS_MSG_WEIGHTS_ACK);
    ck_assert_uint_eq(env->seq, 4);
    naspb__envelope__free_unpacked(env, NULL);
    nas_free(data);
    expect_stored(c, 0x52, old);
    nas_wire_weights_msg_fini(&m);
    zmq_close(d);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    fix_server_stop(&s);
    nas_net_destroy(&net);
    nas_net_destroy(&old);
}
END_TEST

/* An envelope of protocol `version` around a pull body. */
static uint8_t *pull_envelope(uint32_t version, size_t *len) {
    Naspb__WeightsPull p = NASPB__WEIGHTS_PULL__INIT;
    p.has_arch_hash = 1;
    p.arch_hash = 7;
    uint8_t body[32];
    size_t blen = naspb__weights_pull__pack(&p, body);
    Naspb__Envelope e = NASPB__ENVELOPE__INIT;
    e.has_protocol = e.has_type = e.has_payload = e.has_frames = e.has_seq = 1;
    e.protocol = version;
    e.type = NAS_MSG_WEIGHTS_PULL;
    e.seq = 9;
    e.payload.data = body;
    e.payload.len = blen;
    *len = naspb__envelope__get_packed_size(&e);
    uint8_t *buf = nas_malloc(*len);
    naspb__envelope__pack(&e, buf);
    return buf;
}

/* The envelope's protocol of an encoded message. */
static uint32_t encoded_version(const nas_wire_weights_msg *m) {
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_wire_weights_encode(m, &buf, &len, err) == NAS_OK, "%s", err);
    Naspb__Envelope *e = naspb__envelope__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(e);
    uint32_t v = e->protocol;
    naspb__envelope__free_unpacked(e, NULL);
    nas_free(buf);
    return v;
}

START_TEST(test_ps_lend_codec_versions) {
    char err[NAS_ERR_LEN] = "";
    nas_wire_weights_msg m;
    for (uint32_t v = 0; v <= 3; v++) {
        size_t len = 0;
        uint8_t *buf = pull_envelope(v, &len);
        int rc = nas_wire_weights_decode(buf, len, &m, err);
        if (v == 1 || v == 2) {
            ck_assert_msg(rc == NAS_OK, "version %u: %s", v, err);
            ck_assert_int_eq(m.protocol, (int)v);
            ck_assert_uint_eq(m.seq, 9);
        } else {
            ck_assert_int_eq(rc, NAS_EVERSION);
            ck_assert_msg(strstr(err, "speaks weights protocol 1 and 2") != NULL, "%s", err);
            /* Kept so that the refusal is answered in a version the peer reads. */
            ck_assert_int_eq(m.protocol, (int)v);
        }
        nas_wire_weights_msg_fini(&m);
        nas_free(buf);
    }
    /* Requests in this peer's version; ACK and Error in version 1. */
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PULL);
    ck_assert_uint_eq(encoded_version(&m), NAS_WEIGHTS_PROTOCOL);
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_ACK);
    ck_assert_uint_eq(encoded_version(&m), NAS_WEIGHTS_PROTOCOL_V1);
    nas_wire_weights_msg_init(&m, NAS_MSG_ERROR);
    m.code = NAS_EFORMAT;
    ck_assert_uint_eq(encoded_version(&m), NAS_WEIGHTS_PROTOCOL_V1);
    /* A version-1 manifest of XXH3 checksums would be unverifiable. */
    nas_net *net = fix_net(FIX_OTHER, 1);
    const void *base = NULL;
    fix_manifest(net, 5, &m, &base);
    ck_assert_uint_eq(encoded_version(&m), NAS_WEIGHTS_PROTOCOL);
    m.protocol = NAS_WEIGHTS_PROTOCOL_V1;
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(nas_wire_weights_encode(&m, &buf, &len, err), NAS_EINVAL);
    ck_assert_msg(strstr(err, "protocol 1 carries fnv4 checksums only") != NULL, "%s", err);
    m.protocol = 3;
    ck_assert_int_eq(nas_wire_weights_encode(&m, &buf, &len, err), NAS_EINVAL);
    /* The builds between XXH3 and version 2 sent XXH3 pushes as version 1
     * with checksum_kind set: decoded as what the field says. */
    m.protocol = NAS_WEIGHTS_PROTOCOL;
    ck_assert_int_eq(nas_wire_weights_encode(&m, &buf, &len, err), NAS_OK);
    Naspb__Envelope *e = naspb__envelope__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(e);
    e->protocol = NAS_WEIGHTS_PROTOCOL_V1;
    size_t len1 = naspb__envelope__get_packed_size(e);
    uint8_t *buf1 = nas_malloc(len1);
    naspb__envelope__pack(e, buf1);
    naspb__envelope__free_unpacked(e, NULL);
    nas_wire_weights_msg d;
    ck_assert_msg(nas_wire_weights_decode(buf1, len1, &d, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(d.protocol, NAS_WEIGHTS_PROTOCOL_V1);
    ck_assert_int_eq(d.checksum_kind, NAS_CHECKSUM_XXH3);
    ck_assert_uint_eq(d.n, m.n);
    nas_wire_weights_msg_fini(&d);
    nas_free(buf1);
    nas_free(buf);
    nas_wire_weights_msg_fini(&m);
    nas_net_destroy(&net);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("ps_lend");
    TCase *tc = tcase_create("lend");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ps_lend_push_returns_after_release);
    tcase_add_test(tc, test_ps_lend_timeout_releases_block);
    tcase_add_test(tc, test_ps_lend_empty_net_refused);
    tcase_add_test(tc, test_ps_lend_old_master_names_version);
    tcase_add_test(tc, test_ps_pull_resent_after_lost_request);
    tcase_add_test(tc, test_ps_lend_v1_worker_served_fnv4);
    tcase_add_test(tc, test_ps_lend_codec_versions);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
