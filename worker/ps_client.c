/*
 * ps_client.c - pull and push over the bulk DEALER (worker/ps_client.h).
 *
 * One request at a time: send, then poll for the answer with the call's
 * timeout, dropping answers whose sequence number belongs to an earlier
 * call that gave up.  The received frame is verified by
 * nas_wire_weights_recv (manifest, lengths, checksums) before this file
 * looks at it; here only the architecture is checked against the request.
 */
#include "worker/ps_client.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/wire_weights.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define NAS_PS_DEFAULT_TIMEOUT_MS 30000

struct nas_ps_client {
    void *sock;
    uint64_t seq;
    int timeout_ms;
    char endpoint[256];
};

struct nas_ps_weights {
    nas_wire_weights_packet pkt;
    nas_safetensors_tensor *tensors;
};

/* Keys go on the socket before connect: CurveZMQ is negotiated in the
 * handshake, so a master that requires it never sees a plaintext frame. */
static int create(nas_ps_client **out, void *zctx, const char *endpoint, int timeout_ms,
                  const nas_keypair *keys, const char *server_key, char *err) {
    if (!zctx || !endpoint || !endpoint[0])
        return nas_set_err(err, NAS_EINVAL, "ps client: a context and an endpoint are required");
    nas_ps_client *c = nas_calloc(1, sizeof *c);
    if (!c) return nas_set_err(err, NAS_ENOMEM, "ps client: out of memory");
    int rc = NAS_OK;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : NAS_PS_DEFAULT_TIMEOUT_MS;
    c->seq = 1;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    c->sock = zmq_socket(zctx, ZMQ_DEALER);
    if (!c->sock) {
        rc = nas_set_err(err, NAS_EIO, "ps client: zmq_socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if ((rc = nas_wire_socket_setup(c->sock, err)) < 0) goto fail;
    if (keys && (rc = nas_keys_curve_client(c->sock, keys, server_key, err)) < 0) goto fail;
    if (zmq_connect(c->sock, endpoint) != 0) {
        rc = nas_set_err(err, NAS_EIO, "ps client: connect %s: %s", endpoint,
                         zmq_strerror(zmq_errno()));
        goto fail;
    }
    *out = c;
    return NAS_OK;
fail:
    nas_ps_client_destroy(&c);
    return rc;
}

/* Plaintext: for loopback and tests (the agent warns about non-loopback
 * plaintext already). */
int nas_ps_client_create(nas_ps_client **out, void *zctx, const char *endpoint, int timeout_ms,
                         char *err) {
    return create(out, zctx, endpoint, timeout_ms, NULL, NULL, err);
}

int nas_ps_client_create_curve(nas_ps_client **out, void *zctx, const char *endpoint,
                               int timeout_ms, const nas_keypair *keys, const char *server_key,
                               char *err) {
    if (!keys || !server_key)
        return nas_set_err(err, NAS_EINVAL,
                           "ps client: CurveZMQ needs a key pair and the "
                           "master's public key");
    return create(out, zctx, endpoint, timeout_ms, keys, server_key, err);
}

/* The socket has linger 0 (nas_wire_socket_setup): an unsent push never
 * holds up the worker's exit. */
void nas_ps_client_destroy(nas_ps_client **cp) {
    if (!cp || !*cp) return;
    if ((*cp)->sock) zmq_close((*cp)->sock);
    nas_free(*cp);
    *cp = NULL;
}

/* Wait for the answer to request `seq`: stale answers are dropped, a
 * malformed one is an error naming the problem. */
static int await(nas_ps_client *c, uint64_t seq, nas_wire_weights_packet *pkt, char *err) {
    int64_t deadline = nas_now_ms() + c->timeout_ms;
    for (;;) {
        int64_t left = deadline - nas_now_ms();
        if (left <= 0) break;
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, (long)left);
        if (n < 0) {
            if (zmq_errno() == EINTR) continue;
            return nas_set_err(err, NAS_EIO, "ps client: poll: %s", zmq_strerror(zmq_errno()));
        }
        if (n == 0) break;
        int rc = nas_wire_weights_recv(c->sock, 0, 1, pkt, err);
        if (rc == NAS_EAGAIN) continue;
        /* A refused frame may be a stale answer; only a current one counts. */
        if (rc < 0) return rc;
        if (pkt->msg.seq == seq) return NAS_OK;
        nas_debug("ps client: dropped a stale answer (seq %" PRIu64 ")", pkt->msg.seq);
        nas_wire_weights_packet_fini(pkt);
    }
    return nas_set_err(err, NAS_ETIMEDOUT, "ps client: no answer from %s within %d ms", c->endpoint,
                       c->timeout_ms);
}

/* Send the pull, wait for its answer, and check what the receive could
 * not: that it is a reply (not a refusal), for the architecture asked, and
 * found.  The packet (and its frame) then lives in the returned weights. */
int nas_ps_client_pull(nas_ps_client *c, uint64_t arch, nas_ps_weights **out, char *err) {
    nas_wire_weights_msg req;
    nas_wire_weights_msg_init(&req, NAS_MSG_WEIGHTS_PULL);
    req.seq = ++c->seq;
    req.arch = arch;
    int rc = nas_wire_weights_send(c->sock, NULL, 0, &req, NULL, 0, err);
    if (rc < 0) return rc;
    nas_ps_weights *w = nas_calloc(1, sizeof *w);
    if (!w) return nas_set_err(err, NAS_ENOMEM, "ps client: out of memory");
    if ((rc = await(c, req.seq, &w->pkt, err)) < 0) goto fail;
    const nas_wire_weights_msg *m = &w->pkt.msg;
    if (m->type == NAS_MSG_ERROR || m->type == NAS_MSG_WEIGHTS_ACK) {
        rc = nas_set_err(err, NAS_EPROTO,
                         "ps client: the master refused the pull of %016" PRIx64 ": %s (%s)", arch,
                         m->message, nas_err_name(m->code));
        goto fail;
    }
    if (m->type != NAS_MSG_WEIGHTS_REPLY) {
        rc = nas_set_err(err, NAS_EPROTO, "ps client: a pull was answered with type %d", m->type);
        goto fail;
    }
    /* The fourth check of a transfer (paths, shapes and checksums were
     * checked on receipt): the tensors are the architecture we asked for. */
    if (m->arch != arch) {
        rc = nas_set_err(err, NAS_EPROTO, "ps client: asked for %016" PRIx64 ", got %016" PRIx64,
                         arch, m->arch);
        goto fail;
    }
    if (!m->found) {
        rc = nas_set_err(err, NAS_ENOTFOUND, "ps client: the master no longer holds %016" PRIx64,
                         arch);
        goto fail;
    }
    if ((rc = nas_wire_weights_view(&w->pkt, &w->tensors, err)) < 0) goto fail;
    *out = w;
    return NAS_OK;
fail:
    nas_ps_weights_destroy(&w);
    return rc;
}

/* Borrowed views into the received frame. */
const nas_safetensors_tensor *nas_ps_weights_tensors(const nas_ps_weights *w, size_t *n) {
    *n = w->pkt.msg.n;
    return w->tensors;
}

void nas_ps_weights_destroy(nas_ps_weights **wp) {
    if (!wp || !*wp) return;
    nas_wire_weights_packet_fini(&(*wp)->pkt);
    nas_free((*wp)->tensors);
    nas_free(*wp);
    *wp = NULL;
}

/* The net's parameter block is described in block order and sent as it
 * lies; the checksums are computed once here and verified once by the
 * store. */
int nas_ps_client_push(nas_ps_client *c, uint64_t arch, const nas_net *net, char *err) {
    nas_safetensors_tensor *t = NULL;
    const void *base = NULL;
    int n = nas_inherit_collect(net, &t, &base, err);
    if (n < 0) return n;
    nas_wire_weights_msg m;
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PUSH);
    m.seq = ++c->seq;
    m.arch = arch;
    int rc = nas_wire_weights_manifest(&m, t, (size_t)n, base, NULL, err);
    nas_free(t);
    if (rc < 0) return rc;
    m.type = NAS_MSG_WEIGHTS_PUSH;
    /* The parameter block is the frame: no staging copy on our side. */
    rc = nas_wire_weights_send(c->sock, NULL, 0, &m, base, 0, err);
    nas_wire_weights_msg_fini(&m);
    if (rc < 0) return rc;
    nas_wire_weights_packet pkt;
    if ((rc = await(c, m.seq, &pkt, err)) < 0) return rc;
    if (pkt.msg.type != NAS_MSG_WEIGHTS_ACK && pkt.msg.type != NAS_MSG_ERROR)
        rc = nas_set_err(err, NAS_EPROTO, "ps client: a push was answered with type %d",
                         pkt.msg.type);
    else if (pkt.msg.code < 0)
        rc = nas_set_err(err, pkt.msg.code,
                         "ps client: the master refused the push of %016" PRIx64 ": %s", arch,
                         pkt.msg.message);
    nas_wire_weights_packet_fini(&pkt);
    return rc;
}

/* Fresh first, then the parent: whatever goes wrong after the first line,
 * the net is a valid fresh initialisation for the task's seed. */
int nas_ps_client_inherit(nas_ps_client *c, uint64_t parent, nas_net *net, uint64_t seed,
                          nas_inherit_stats *st, char *err) {
    if (st) memset(st, 0, sizeof *st);
    if (nas_net_batch(net) <= 0)
        return nas_set_err(err, NAS_ESTATE, "inherit: the child net is not compiled");
    nas_inherit_init(net, seed);
    nas_ps_weights *w = NULL;
    char why[NAS_ERR_LEN] = "";
    int rc = nas_ps_client_pull(c, parent, &w, why);
    if (rc < 0) {
        nas_info("inherit: parent %016" PRIx64 " unavailable, training from fresh weights: %s",
                 parent, why);
        nas_set_err(err, rc, "%s", why);
        return 0;
    }
    size_t n = 0;
    const nas_safetensors_tensor *t = nas_ps_weights_tensors(w, &n);
    nas_inherit_stats s;
    rc = nas_inherit_apply(net, t, n, &s, why);
    nas_ps_weights_destroy(&w);
    if (rc < 0) {
        /* A partial application would mix two networks: start over fresh. */
        nas_inherit_init(net, seed);
        nas_warn("inherit: parent %016" PRIx64 " not applied, training from fresh weights: %s",
                 parent, why);
        nas_set_err(err, rc, "%s", why);
        return 0;
    }
    char line[160];
    nas_inherit_describe(&s, line, sizeof line);
    nas_info("inherit: parent %016" PRIx64 ": %s", parent, line);
    if (st) *st = s;
    if (rc == 0) nas_set_err(err, NAS_OK, "parent %016" PRIx64 " shares no tensor", parent);
    return rc;
}
