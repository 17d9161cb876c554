/*
 * zmq_uv.c - ZMQ_FD -> uv_poll_t with bounded, edge-safe draining (see
 * zmq_uv.h for why each of the three handles exists).
 */
#include "master/zmq_uv.h"
#include "common/alloc.h"
#include "common/err.h"

#include <zmq.h>

struct nas_zmq_uv {
    uv_poll_t poll;       /* ZMQ_FD readable */
    uv_idle_t idle;       /* running while a batch was cut short */
    uv_prepare_t prepare; /* re-check before every poll phase */
    void *sock;
    int batch;
    nas_zmq_uv_read_fn read;
    nas_zmq_uv_batch_fn begin, end; /* around each burst of reads, may be NULL */
    void *data;
    int eager;        /* nas_zmq_uv_set_eager: read on until the reader reports empty */
    int empty;        /* the reader's last call found nothing (eager mode) */
    int open_handles; /* freed when the last one has closed */
    int closing;      /* close was called (maybe from the reader): read no more */
    nas_zmq_uv_stats stats;
};

/* Reading ZMQ_EVENTS also processes ZeroMQ's internal commands: it is the
 * only reliable readiness test, and it resets the ZMQ_FD signal. */
static int readable(void *sock) {
    int events = 0;
    size_t sz = sizeof events;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &events, &sz) != 0) return 0;
    return (events & ZMQ_POLLIN) != 0;
}

static void on_idle(uv_idle_t *h);

/* Read up to `batch` messages; leave the idle handle running if more wait.
 * A burst of at least one message is framed by the begin/end hooks; `end`
 * runs even when the reader closed the bridge (the memory lives until the
 * close callbacks), so a batch the reader opened is always closed.  In
 * eager mode ZMQ_EVENTS is asked only when the reader found the socket
 * empty, not before every message. */
static void drain(nas_zmq_uv *z) {
    int n = 0, capped = 0, begun = 0;
    while (!z->closing && readable(z->sock)) {
        do {
            if (n == z->batch) {
                capped = 1;
                break;
            }
            if (!begun && z->begin) z->begin(z->data);
            begun = 1;
            z->empty = 0;
            z->read(z, z->sock, z->data);
            if (z->empty) break;
            z->stats.messages++;
            n++;
        } while (z->eager && !z->closing);
        if (capped) break;
    }
    if (begun && z->end) z->end(z->data);
    if (capped) {
        z->stats.capped++;
        if (!z->closing) uv_idle_start(&z->idle, on_idle);
        return;
    }
    if (!z->closing) uv_idle_stop(&z->idle);
}

/* ZMQ_FD became readable: something may have changed, maybe not a message. */
static void on_poll(uv_poll_t *h, int status, int events) {
    nas_zmq_uv *z = h->data;
    z->stats.wakeups++;
    drain(z);
}

static void on_idle(uv_idle_t *h) {
    drain(h->data);
}

/* Runs just before libuv blocks in poll.  If a message waits without a
 * signal on ZMQ_FD (a send elsewhere consumed it), this finds it. */
static void on_prepare(uv_prepare_t *h) {
    nas_zmq_uv *z = h->data;
    /* Cheap when nothing waits: one getsockopt per loop turn. */
    if (readable(z->sock)) drain(z);
}

/* The idle handle is initialised but only started when a batch is cut
 * short; a running idle handle makes libuv poll with timeout 0. */
int nas_zmq_uv_create(nas_zmq_uv **out, uv_loop_t *loop, void *sock, int batch,
                      nas_zmq_uv_read_fn read, void *data, char *err) {
    if (!loop || !sock || !read || batch < 0)
        return nas_set_err(err, NAS_EINVAL, "zmq_uv: loop, socket and reader are required");
    int fd = -1;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) != 0)
        return nas_set_err(err, NAS_EIO, "zmq_uv: ZMQ_FD: %s", zmq_strerror(zmq_errno()));
    nas_zmq_uv *z = nas_calloc(1, sizeof *z);
    if (!z) return nas_set_err(err, NAS_ENOMEM, "zmq_uv: out of memory");
    z->sock = sock;
    z->batch = batch ? batch : 256;
    z->read = read;
    z->data = data;
    int rc = uv_poll_init(loop, &z->poll, fd);
    if (rc != 0) {
        nas_free(z);
        return nas_set_err(err, NAS_EIO, "zmq_uv: uv_poll_init: %s", uv_strerror(rc));
    }
    uv_idle_init(loop, &z->idle);
    uv_prepare_init(loop, &z->prepare);
    z->open_handles = 3;
    z->poll.data = z->idle.data = z->prepare.data = z;
    rc = uv_poll_start(&z->poll, UV_READABLE, on_poll);
    if (rc == 0) rc = uv_prepare_start(&z->prepare, on_prepare);
    if (rc != 0) {
        nas_set_err(err, NAS_EIO, "zmq_uv: cannot start: %s", uv_strerror(rc));
        nas_zmq_uv_close(&z);
        return NAS_EIO;
    }
    *out = z;
    return NAS_OK;
}

/* The struct holds three handles; it is freed when the last one closed. */
static void on_closed(uv_handle_t *h) {
    nas_zmq_uv *z = h->data;
    if (--z->open_handles == 0) nas_free(z);
}

void nas_zmq_uv_close(nas_zmq_uv **zp) {
    if (!zp || !*zp) return;
    nas_zmq_uv *z = *zp;
    /* The reader may be the caller: drain() checks this before every read,
     * and the memory lives until the close callbacks have run. */
    z->closing = 1;
    uv_close((uv_handle_t *)&z->poll, on_closed);
    uv_close((uv_handle_t *)&z->idle, on_closed);
    uv_close((uv_handle_t *)&z->prepare, on_closed);
    *zp = NULL;
}

void nas_zmq_uv_set_eager(nas_zmq_uv *z) {
    z->eager = 1;
}

void nas_zmq_uv_report_empty(nas_zmq_uv *z) {
    z->empty = 1;
}

void nas_zmq_uv_set_batch(nas_zmq_uv *z, nas_zmq_uv_batch_fn begin, nas_zmq_uv_batch_fn end) {
    z->begin = begin;
    z->end = end;
}

/* Start the idle handle: the next loop turn drains without blocking. */
void nas_zmq_uv_kick(nas_zmq_uv *z) {
    uv_idle_start(&z->idle, on_idle);
}

void nas_zmq_uv_stats_get(const nas_zmq_uv *z, nas_zmq_uv_stats *out) {
    *out = z->stats;
}
