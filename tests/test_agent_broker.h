/*
 * test_agent_broker.h - a minimal scripted master for the worker tests: one ROUTER
 * socket on tcp://127.0.0.1, a receive-with-timeout that keeps the worker
 * alive with heartbeats and counts what arrives, and senders.  Header-only
 * (static functions) so that it stays private to the suites that include
 * it; it is test code, never product code.
 */
#ifndef NAS_TEST_BROKER_H
#define NAS_TEST_BROKER_H

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/keys.h"
#include "common/wire.h"
#include "master/auth.h"

#include <check.h>
#include <string.h>
#include <zmq.h>

typedef struct broker {
    void *zctx, *sock;
    char endpoint[256];
    uint8_t id[NAS_WIRE_ID_MAX]; /* identity of the last sender */
    size_t id_len;
    int keepalive; /* send heartbeats while waiting */
    int64_t hb_ms;
    int64_t hb_at;
    int counts[NAS_MSG_COUNT]; /* messages received, by type */
    int bad;                   /* undecodable messages received */
    nas_wire_packet pkt;       /* the message broker_wait() matched */
    nas_auth *auth;            /* ZAP handler, when opened with one */
} broker;

/* Bind a ROUTER; with curve != NULL it is a CurveZMQ server with that
 * keypair (no ZAP handler: any client knowing the public key is let in). */
static inline void broker_bind_curve(broker *b, const char *endpoint, const nas_keypair *curve) {
    b->sock = zmq_socket(b->zctx, ZMQ_ROUTER);
    ck_assert_ptr_nonnull(b->sock);
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_wire_socket_setup(b->sock, err), NAS_OK);
    if (curve) ck_assert_int_eq(nas_keys_curve_server(b->sock, curve, NULL, err), NAS_OK);
    int rc = -1;
    /* Rebinding a port just released may take a moment. */
    for (int i = 0; i < 100 && rc != 0; i++) {
        rc = zmq_bind(b->sock, endpoint);
        if (rc != 0) nas_sleep_ms(20);
    }
    ck_assert_int_eq(rc, 0);
    size_t n = sizeof b->endpoint;
    zmq_getsockopt(b->sock, ZMQ_LAST_ENDPOINT, b->endpoint, &n);
}

static inline void broker_bind(broker *b, const char *endpoint) {
    broker_bind_curve(b, endpoint, NULL);
}

static inline void broker_open_curve(broker *b, int64_t hb_ms, const nas_keypair *curve) {
    memset(b, 0, sizeof *b);
    b->zctx = zmq_ctx_new();
    b->hb_ms = hb_ms;
    b->keepalive = 1;
    broker_bind_curve(b, "tcp://127.0.0.1:*", curve);
}

static inline void broker_open(broker *b, int64_t hb_ms) {
    broker_open_curve(b, hb_ms, NULL);
}

/* A CurveZMQ broker that admits only the keys in authorized_dir (the
 * security branch's ZAP handler, on a thread of its own). */
static inline void broker_open_auth(broker *b, int64_t hb_ms, const nas_keypair *curve,
                                    const char *authorized_dir) {
    memset(b, 0, sizeof *b);
    b->zctx = zmq_ctx_new();
    b->hb_ms = hb_ms;
    b->keepalive = 1;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_auth_create(&b->auth, b->zctx, authorized_dir, NULL, err), NAS_OK);
    ck_assert_int_eq(nas_auth_start(b->auth, err), NAS_OK);
    broker_bind_curve(b, "tcp://127.0.0.1:*", curve);
}

static inline void broker_close_socket(broker *b) {
    zmq_close(b->sock);
    b->sock = NULL;
}

static inline void broker_close(broker *b) {
    nas_wire_packet_fini(&b->pkt);
    if (b->sock) zmq_close(b->sock);
    nas_auth_destroy(&b->auth);
    zmq_ctx_term(b->zctx);
}

static inline void broker_send(broker *b, const nas_wire_msg *m) {
    char err[NAS_ERR_LEN];
    int rc = nas_wire_send(b->sock, b->id, b->id_len, m, NULL, 0, 1, err);
    ck_assert_msg(rc == NAS_OK, "broker send: %s", err);
}

static inline void broker_send_type(broker *b, int type) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, type);
    broker_send(b, &m);
}

/* Send raw frames (identity first) to the last sender. */
static inline void broker_send_raw(broker *b, const void *data, size_t len) {
    zmq_send(b->sock, b->id, b->id_len, ZMQ_SNDMORE);
    zmq_send(b->sock, data, len, 0);
}

/* Receive until a message of `type` arrives (returned in b->pkt, 1) or
 * timeout_ms passes (0).  Every message is counted; heartbeats go out
 * every hb_ms while keepalive is set and a worker is known. */
static inline int broker_wait(broker *b, int type, int64_t timeout_ms) {
    int64_t end = nas_now_ms() + timeout_ms;
    nas_wire_packet_fini(&b->pkt);
    for (;;) {
        int64_t now = nas_now_ms();
        if (b->keepalive && b->id_len && now >= b->hb_at) {
            broker_send_type(b, NAS_MSG_HEARTBEAT);
            b->hb_at = now + b->hb_ms;
        }
        if (now >= end) return 0;
        int64_t wait = end - now;
        if (b->keepalive && wait > b->hb_ms) wait = b->hb_ms;
        zmq_pollitem_t it = {b->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)wait) <= 0) continue;
        char err[NAS_ERR_LEN];
        int rc = nas_wire_recv(b->sock, 1, 1, &b->pkt, err);
        if (rc == NAS_EAGAIN) continue;
        memcpy(b->id, b->pkt.identity, b->pkt.id_len);
        b->id_len = b->pkt.id_len;
        if (rc < 0) {
            b->bad++;
            continue;
        }
        b->counts[b->pkt.msg.type]++;
        if (b->pkt.msg.type == type) return 1;
        nas_wire_packet_fini(&b->pkt);
    }
}

static inline void broker_task(broker *b, uint64_t id, int epochs, int mode, const char *genome) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_TASK);
    m.u.task.task_id = id;
    m.u.task.attempt = 1;
    snprintf(m.u.task.genome, sizeof m.u.task.genome, "%s", genome);
    m.u.task.fidelity = nas_fidelity_default();
    m.u.task.fidelity.epochs = epochs;
    m.u.task.mode = mode;
    broker_send(b, &m);
}

#endif
