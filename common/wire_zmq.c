/*
 * wire_zmq.c - nasd messages on ZeroMQ sockets (wire.h): socket limits,
 * and the multipart framing of an encoded Envelope (wire.c) with the
 * ROUTER identity before it and any raw frames (weights) after it, sent
 * and received whole or not at all.
 */
#include "common/wire.h"
#include "common/alloc.h"
#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

/* ZMQ_MAXMSGSIZE makes ZeroMQ itself drop a peer that sends an oversized
 * frame before it is buffered; linger 0 keeps zmq_ctx_term from waiting
 * for a peer that is gone. */
int nas_wire_socket_setup(void *sock, char *err) {
    int64_t max = NAS_WIRE_MAX_FRAME;
    int linger = 0;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0 ||
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0)
        return nas_set_err(err, NAS_EIO, "zmq_setsockopt: %s", zmq_strerror(zmq_errno()));
    return NAS_OK;
}

int nas_wire_send_frame(void *sock, const void *data, size_t len, int flags, char *err) {
    if (zmq_send(sock, data, len, flags) < 0) {
        int e = zmq_errno();
        if (e == EAGAIN) return nas_set_err(err, NAS_EAGAIN, "send would block");
        return nas_set_err(err, NAS_EIO, "zmq_send: %s", zmq_strerror(e));
    }
    return NAS_OK;
}

/* The caller's message is copied so that the frame count can be set from
 * nframes without touching what the caller owns. */
int nas_wire_send(void *sock, const void *identity, size_t id_len, const nas_wire_msg *m,
                  const nas_wire_frame *frames, size_t nframes, int dontwait, char *err) {
    if (nframes > NAS_WIRE_MAX_FRAMES)
        return nas_set_err(err, NAS_ERANGE, "%zu raw frames exceed %d", nframes,
                           NAS_WIRE_MAX_FRAMES);
    nas_wire_msg copy = *m;
    copy.frames = (uint32_t)nframes;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nas_wire_encode(&copy, &buf, &len, err);
    if (rc < 0) return rc;
    int dw = dontwait ? ZMQ_DONTWAIT : 0;
    /* Once the first frame is queued ZeroMQ delivers all or nothing, so only
     * the first send can fail with EAGAIN. */
    if (identity) rc = nas_wire_send_frame(sock, identity, id_len, ZMQ_SNDMORE | dw, err);
    if (rc == NAS_OK)
        rc = nas_wire_send_frame(sock, buf, len, (nframes ? ZMQ_SNDMORE : 0) | dw, err);
    for (size_t i = 0; rc == NAS_OK && i < nframes; i++)
        rc = nas_wire_send_frame(sock, frames[i].data, frames[i].len,
                                 i + 1 < nframes ? ZMQ_SNDMORE : 0, err);
    nas_free(buf);
    return rc;
}

int nas_wire_more_parts(void *sock) {
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    return more;
}

void nas_wire_drain_parts(void *sock) {
    while (nas_wire_more_parts(sock)) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        zmq_msg_recv(&part, sock, 0);
        zmq_msg_close(&part);
    }
}

/* Identity first (ROUTER), then the envelope, then exactly the announced
 * number of raw frames, copied to the heap so the packet outlives the
 * zmq_msg_t parts. */
int nas_wire_recv(void *sock, int router, int dontwait, nas_wire_packet *pkt, char *err) {
    memset(pkt, 0, sizeof *pkt);
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, dontwait ? ZMQ_DONTWAIT : 0) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&part);
        if (e == EAGAIN) return NAS_EAGAIN;
        return nas_set_err(err, NAS_EIO, "zmq_recv: %s", zmq_strerror(e));
    }
    int rc = NAS_OK;
    if (router) {
        size_t n = zmq_msg_size(&part);
        pkt->id_len = n < NAS_WIRE_ID_MAX ? n : NAS_WIRE_ID_MAX;
        memcpy(pkt->identity, zmq_msg_data(&part), pkt->id_len);
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        if (!nas_wire_more_parts(sock))
            return nas_set_err(err, NAS_EFORMAT, "message has no envelope frame");
        /* The rest of a message is already here: these reads never block. */
        zmq_msg_recv(&part, sock, 0);
    }
    /* Under CurveZMQ the ZAP handler names the key that sent this; the
     * master trusts that name over what Register claims. */
    const char *uid = zmq_msg_gets(&part, "User-Id");
    if (uid) snprintf(pkt->user_id, sizeof pkt->user_id, "%s", uid);
    rc = nas_wire_decode(zmq_msg_data(&part), zmq_msg_size(&part), &pkt->msg, err);
    zmq_msg_close(&part);
    while (rc == NAS_OK && nas_wire_more_parts(sock)) {
        if (pkt->n_frames >= pkt->msg.frames) {
            rc = nas_set_err(err, NAS_EPROTO, "%s: more raw frames than the %u announced",
                             nas_wire_type_name(pkt->msg.type), pkt->msg.frames);
            break;
        }
        zmq_msg_init(&part);
        zmq_msg_recv(&part, sock, 0);
        size_t n = zmq_msg_size(&part);
        void *copy = nas_malloc(n ? n : 1);
        if (!copy)
            rc = nas_set_err(err, NAS_ENOMEM, "raw frame of %zu bytes: out of memory", n);
        else
            memcpy(copy, zmq_msg_data(&part), n);
        zmq_msg_close(&part);
        if (rc < 0) break;
        pkt->frame_data[pkt->n_frames] = copy;
        pkt->frame_len[pkt->n_frames++] = n;
    }
    nas_wire_drain_parts(sock);
    if (rc == NAS_OK && pkt->n_frames != pkt->msg.frames)
        rc = nas_set_err(err, NAS_EPROTO, "%s: %zu raw frames, %u announced",
                         nas_wire_type_name(pkt->msg.type), pkt->n_frames, pkt->msg.frames);
    if (rc < 0) {
        /* Keep the identity so the caller can answer; drop everything else. */
        uint8_t id[NAS_WIRE_ID_MAX];
        char user_id[NAS_WIRE_NAME_MAX];
        size_t id_len = pkt->id_len;
        memcpy(id, pkt->identity, id_len);
        memcpy(user_id, pkt->user_id, sizeof user_id);
        nas_wire_packet_fini(pkt);
        memcpy(pkt->identity, id, id_len);
        memcpy(pkt->user_id, user_id, sizeof user_id);
        pkt->id_len = id_len;
    }
    return rc;
}

/* Frees the raw frames and the message body, and zeroes the packet so it
 * can be reused for the next recv. */
void nas_wire_packet_fini(nas_wire_packet *pkt) {
    if (!pkt) return;
    for (size_t i = 0; i < pkt->n_frames; i++)
        nas_free(pkt->frame_data[i]);
    nas_wire_msg_fini(&pkt->msg);
    memset(pkt, 0, sizeof *pkt);
}
