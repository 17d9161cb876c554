/*
 * serve_live.c - the non-blocking status client of `nasctl serve` and
 * `nasctl top` (serve_live.h).  nasctl status asks once and waits; these
 * ask repeatedly from a loop that must keep serving, so the socket lives as
 * long as the command and an unanswered request is simply asked again.
 */
#include "master/serve_live.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/keys.h"
#include "common/wire.h"

#include <string.h>
#include <zmq.h>

struct nas_serve_master {
    void *ctx, *sock;
    int64_t asked_ms; /* when the last request went out; 0 before any */
    int waiting;      /* a request is unanswered */
};

int nas_serve_master_open(nas_serve_master **out, const char *endpoint, const char *key_base,
                          const char *master_key, char *err) {
    *out = NULL;
    if (!key_base != !master_key)
        return nas_set_err(err, NAS_EINVAL, "--key and --master-key go together");
    nas_serve_master *m = nas_calloc(1, sizeof *m);
    if (!m) return nas_set_err(err, NAS_ENOMEM, "out of memory");
    int rc = NAS_OK;
    m->ctx = zmq_ctx_new();
    m->sock = m->ctx ? zmq_socket(m->ctx, ZMQ_DEALER) : NULL;
    if (!m->sock) rc = nas_set_err(err, NAS_EIO, "zmq: %s", zmq_strerror(zmq_errno()));
    if (rc == NAS_OK) rc = nas_wire_socket_setup(m->sock, err);
    if (rc == NAS_OK && key_base) {
        nas_keypair kp;
        char pub[NAS_KEY_Z85_LEN + 1];
        rc = nas_keys_load_pair(key_base, &kp, err);
        if (rc == NAS_OK) rc = nas_keys_load_public(master_key, pub, err);
        if (rc == NAS_OK) rc = nas_keys_curve_client(m->sock, &kp, pub, err);
        explicit_bzero(&kp, sizeof kp);
    }
    /* A request left over from a master that went away must not block
     * the exit: linger 0. */
    int zero = 0;
    if (rc == NAS_OK) zmq_setsockopt(m->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (rc == NAS_OK && zmq_connect(m->sock, endpoint) != 0)
        rc = nas_set_err(err, NAS_EINVAL, "cannot connect to %s: %s", endpoint,
                         zmq_strerror(zmq_errno()));
    if (rc < 0) {
        nas_serve_master_close(&m);
        return rc;
    }
    *out = m;
    return NAS_OK;
}

void nas_serve_master_close(nas_serve_master **mp) {
    nas_serve_master *m = *mp;
    if (!m) return;
    if (m->sock) zmq_close(m->sock);
    if (m->ctx) zmq_ctx_term(m->ctx);
    nas_free(m);
    *mp = NULL;
}

char *nas_serve_master_poll(nas_serve_master *m, int64_t now_ms, int64_t period_ms) {
    char err[NAS_ERR_LEN], *doc = NULL;
    zmq_pollitem_t it = {m->sock, 0, ZMQ_POLLIN, 0};
    while (zmq_poll(&it, 1, 0) > 0 && (it.revents & ZMQ_POLLIN)) {
        nas_wire_packet pkt;
        if (nas_wire_recv(m->sock, 0, 1, &pkt, err) != NAS_OK) break;
        if (pkt.msg.type == NAS_MSG_STATUS_REPLY && pkt.msg.u.status_json) {
            nas_free(doc);
            doc = nas_strdup(pkt.msg.u.status_json);
            m->waiting = 0;
        }
        nas_wire_packet_fini(&pkt);
    }
    /* A DEALER queues a request while the master is away, so an
     * unanswered one is not repeated until a period has passed: the queue
     * holds at most one per period (and the high-water mark bounds it). */
    if (now_ms - m->asked_ms >= period_ms &&
        (!m->waiting || now_ms - m->asked_ms >= 3 * period_ms)) {
        nas_wire_msg msg;
        nas_wire_msg_init(&msg, NAS_MSG_STATUS_REQUEST);
        if (nas_wire_send(m->sock, NULL, 0, &msg, NULL, 0, 1, err) == NAS_OK) {
            m->asked_ms = now_ms;
            m->waiting = 1;
        }
    }
    return doc;
}
