/*
 * weights_serve.c - the weight store's side of the bulk socket: answer
 * pulls, accept pushes (master/weights.h nas_weights_serve_one).
 *
 * The bulk ROUTER is separate from the control ROUTER so that a 10 MB
 * reply never sits in front of a heartbeat.  Every request gets exactly
 * one answer addressed to its sender: a REPLY for a pull, an ACK for a
 * push, and an Error (the control protocol's) for anything refused, so a worker
 * waiting on its DEALER learns why instead of timing out.  Answers are
 * sent with ZMQ_DONTWAIT: a peer that stopped reading loses its answer
 * (and retries or trains fresh) rather than blocking the master's loop.
 */
#include "master/weights.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* A stored push gets an ACK (code 0); every refusal an Error (code < 0),
 * the control protocol's own refusal, which any peer can decode.
 * Refusals are logged once per message; the sender learns the reason
 * from the answer. */
static void answer_to(void *router, const uint8_t *id, size_t id_len, uint64_t seq, uint64_t arch,
                      int code, const char *text) {
    nas_wire_weights_msg ack;
    nas_wire_weights_msg_init(&ack, code < 0 ? NAS_MSG_ERROR : NAS_MSG_WEIGHTS_ACK);
    ack.seq = seq;
    ack.arch = arch;
    ack.code = code;
    snprintf(ack.message, sizeof ack.message, "%s", text ? text : "");
    char err[NAS_ERR_LEN] = "";
    if (nas_wire_weights_send(router, id, id_len, &ack, NULL, 1, err) < 0)
        nas_warn("weights: could not answer a peer: %s", err);
}

static void answer_ack(void *router, const nas_wire_weights_packet *pkt, uint64_t arch, int code,
                       const char *text) {
    answer_to(router, pkt->identity, pkt->id_len, pkt->msg.seq, arch, code, text);
}

/* Who to acknowledge once a push's file is written in the thread pool:
 * the packet is gone by then, so its identity and sequence are kept. */
typedef struct pending_ack {
    void *router;
    uint8_t id[NAS_WIRE_ID_MAX];
    size_t id_len;
    uint64_t seq;
    size_t n;
    double mb;
} pending_ack;

/* The write's outcome, on the loop thread: the ACK is what tells the
 * worker its weights survive the master, so it is sent only now. */
static void push_done(void *ctx, uint64_t arch, int rc, const char *msg) {
    pending_ack *a = ctx;
    if (rc < 0)
        nas_warn("weights: push of %016" PRIx64 " not stored: %s", arch, msg);
    else
        nas_debug("weights: stored %016" PRIx64 " (%zu tensors, %.2f MB)", arch, a->n, a->mb);
    answer_to(a->router, a->id, a->id_len, a->seq, arch, rc < 0 ? rc : NAS_OK, msg);
    nas_free(a);
}

/* A version-1 worker verifies FNV4 only, and the store keeps the
 * checksums the weights arrived with (XXH3 from current workers): its
 * reply gets a manifest of FNV4 checksums made here, one pass over the
 * data per pull, paid only by workers of the first release.  *out is a
 * copy of the view's manifest whose names are borrowed (free the array
 * only). */
static int fnv4_manifest(const nas_weights_view *v, nas_wire_weights_tensor **out, char *err) {
    nas_wire_weights_tensor *t = nas_calloc(v->n ? v->n : 1, sizeof *t);
    if (!t) return nas_set_err(err, NAS_ENOMEM, "weights: a version-1 manifest");
    for (size_t i = 0; i < v->n; i++) {
        t[i] = v->tensors[i];
        t[i].checksum = nas_wire_weights_checksum(NAS_CHECKSUM_FNV4, v->data + t[i].offset,
                                                  (size_t)t[i].nbytes);
    }
    *out = t;
    return NAS_OK;
}

static void serve_pull(nas_weights *w, void *router, const nas_wire_weights_packet *pkt) {
    nas_wire_weights_msg rep;
    nas_wire_weights_msg_init(&rep, NAS_MSG_WEIGHTS_REPLY);
    rep.protocol = pkt->msg.protocol;
    rep.seq = pkt->msg.seq;
    rep.arch = pkt->msg.arch;
    nas_weights_view v;
    nas_wire_weights_tensor *v1 = NULL;
    char err[NAS_ERR_LEN] = "";
    int rc = nas_weights_get(w, pkt->msg.arch, &v, err);
    if (rc == NAS_OK) {
        /* The view's manifest is sent as it is: the checksums were verified
         * when the weights arrived (or were read from disk), never
         * recomputed per pull (except for a version-1 peer, below). */
        rep.found = 1;
        rep.n = v.n;
        rep.tensors = (nas_wire_weights_tensor *)v.tensors;
        rep.total_bytes = v.total_bytes;
        rep.checksum_kind = v.checksum_kind;
        if (rep.protocol == NAS_WEIGHTS_PROTOCOL_V1 && v.checksum_kind != NAS_CHECKSUM_FNV4) {
            if ((rc = fnv4_manifest(&v, &v1, err)) < 0) {
                answer_ack(router, pkt, pkt->msg.arch, rc, err);
                return;
            }
            rep.tensors = v1;
            rep.checksum_kind = NAS_CHECKSUM_FNV4;
        }
    } else if (rc != NAS_ENOTFOUND) {
        answer_ack(router, pkt, pkt->msg.arch, rc, err);
        return;
    } else {
        nas_info("weights: pull of %016" PRIx64 ": not held, the child trains fresh",
                 pkt->msg.arch);
    }
    if (rep.protocol == NAS_WEIGHTS_PROTOCOL_V1 && !rep.found)
        rep.checksum_kind = NAS_CHECKSUM_FNV4;
    rc = nas_wire_weights_send(router, pkt->identity, pkt->id_len, &rep, rep.found ? v.data : NULL,
                               1, err);
    if (rc < 0) nas_warn("weights: reply for %016" PRIx64 " not sent: %s", pkt->msg.arch, err);
    /* rep borrowed the view's manifest (or v1's array, whose names are the
     * view's): only that array is ours. */
    nas_free(v1);
}

static void serve_push(nas_weights *w, void *router, nas_wire_weights_packet *pkt, int64_t now_ms) {
    char err[NAS_ERR_LEN] = "";
    uint64_t arch = pkt->msg.arch, seq = pkt->msg.seq;
    size_t n = pkt->msg.n;
    double mb = (double)pkt->msg.total_bytes / 1e6;
    /* The store adopts the frame; the packet keeps its identity for the ACK,
     * and a write queued in the thread pool gets a copy of it. */
    pending_ack *a = nas_calloc(1, sizeof *a);
    int rc = NAS_ENOMEM;
    if (a) {
        a->router = router;
        a->id_len = pkt->id_len;
        memcpy(a->id, pkt->identity, pkt->id_len);
        a->seq = seq;
        a->n = n;
        a->mb = mb;
        rc = nas_weights_put_packet_async(w, pkt, now_ms, push_done, a, err);
        if (rc == 1) return; /* push_done answers and frees a */
        nas_free(a);
    } else {
        nas_set_err(err, rc, "weights: out of memory");
    }
    pkt->msg.seq = seq;
    if (rc < 0) {
        nas_warn("weights: push of %016" PRIx64 " refused: %s", arch, err);
        answer_ack(router, pkt, arch, rc, err);
        return;
    }
    nas_debug("weights: stored %016" PRIx64 " (%zu tensors, %.2f MB)", arch, n, mb);
    answer_ack(router, pkt, arch, NAS_OK, "stored");
}

int nas_weights_serve_one(nas_weights *w, void *router, int64_t now_ms, char *err) {
    nas_wire_weights_packet pkt;
    char why[NAS_ERR_LEN] = "";
    int rc = nas_wire_weights_recv(router, 1, 1, &pkt, why);
    if (rc == NAS_EAGAIN) return NAS_EAGAIN;
    if (rc == NAS_EIO) return nas_set_err(err, NAS_EIO, "%s", why);
    if (rc < 0) {
        /* A malformed or corrupted message: refused by name, never used. */
        if (nas_log_limit_pass(nas__weights_peer_log(w), now_ms, NAS_LOG_WARN,
                               "weights: refused messages"))
            nas_warn("weights: refused a message: %s", why);
        if (pkt.id_len) answer_ack(router, &pkt, 0, rc, why);
        nas_wire_weights_packet_fini(&pkt);
        return NAS_OK;
    }
    switch (pkt.msg.type) {
    case NAS_MSG_WEIGHTS_PULL:
        serve_pull(w, router, &pkt);
        break;
    case NAS_MSG_WEIGHTS_PUSH:
        serve_push(w, router, &pkt, now_ms);
        break;
    default:
        answer_ack(router, &pkt, pkt.msg.arch, NAS_EPROTO,
                   "the weight store takes pulls and pushes only");
        break;
    }
    nas_wire_weights_packet_fini(&pkt);
    return NAS_OK;
}
