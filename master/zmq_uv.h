/*
 * zmq_uv.h - the one bridge between a ZeroMQ socket and a libuv loop
 * (STYLE rule 17).
 *
 * ZMQ_FD is edge-triggered: it signals that ZMQ_EVENTS may have changed,
 * not that a message waits, and any zmq call on the socket (a send in a
 * timer, say) may consume the signal while messages are still queued.
 * The bridge therefore (1) watches ZMQ_FD with a uv_poll_t and, when it
 * fires, calls the reader while ZMQ_EVENTS has ZMQ_POLLIN, at most `batch`
 * messages at a time so timers and other handles still run during a
 * burst; (2) keeps a uv_idle_t running while a batch was cut short, so
 * the loop does not block in poll with messages waiting; and (3) re-checks
 * ZMQ_EVENTS in a uv_prepare_t before every poll phase, so a signal
 * consumed by a send elsewhere can never strand a message.
 *
 * The reader callback must take exactly one whole message off the socket
 * with ZMQ_DONTWAIT (e.g. nas_wire_recv(sock, ..., dontwait=1, ...)).
 */
#ifndef NAS_ZMQ_UV_H
#define NAS_ZMQ_UV_H

#include <stddef.h>
#include <uv.h>

typedef struct nas_zmq_uv nas_zmq_uv;

/* Read one message from sock (ZMQ_DONTWAIT). */
typedef void (*nas_zmq_uv_read_fn)(nas_zmq_uv *z, void *sock, void *data);

/* Start watching sock on loop.  batch: messages per turn of the loop
 * (default 256 when 0).  NAS_EIO + err if ZMQ_FD cannot be read or a
 * handle cannot start. */
int nas_zmq_uv_create(nas_zmq_uv **out, uv_loop_t *loop, void *sock, int batch,
                      nas_zmq_uv_read_fn read, void *data, char *err);

/* Hooks around each burst: begin(data) before the first message a turn
 * reads, end(data) after the last (at most `batch` of them), so a reader
 * can handle a burst as one unit, e.g. one database transaction that
 * commits before any reply is sent.  Either may be NULL. */
typedef void (*nas_zmq_uv_batch_fn)(void *data);
void nas_zmq_uv_set_batch(nas_zmq_uv *z, nas_zmq_uv_batch_fn begin, nas_zmq_uv_batch_fn end);

/* Eager reading, for a reader that says when its receive found nothing:
 * after set_eager, drain() calls the reader again and again without
 * asking ZMQ_EVENTS before each message (a system call each time, two
 * per task in the master) until the reader calls report_empty from its
 * callback (its ZMQ_DONTWAIT receive returned EAGAIN); then ZMQ_EVENTS is
 * asked once, which also re-arms ZMQ_FD.  A reader that never reports
 * would be called forever within a batch: only set this for one that
 * does.  The call that found nothing is not counted as a message. */
void nas_zmq_uv_set_eager(nas_zmq_uv *z);
void nas_zmq_uv_report_empty(nas_zmq_uv *z);

/* Stop watching and release the bridge; may be called from the reader
 * itself, which is then not called again.  The memory is freed from libuv
 * close callbacks, so the loop must run (e.g. uv_run(loop,
 * UV_RUN_DEFAULT) until it returns) before the loop is closed.  The socket
 * stays open and is the caller's. */
void nas_zmq_uv_close(nas_zmq_uv **zp);

/* Schedule a re-check on the next loop turn (optional: the prepare handle
 * re-checks anyway; useful after sending from another handle). */
void nas_zmq_uv_kick(nas_zmq_uv *z);

typedef struct nas_zmq_uv_stats {
    size_t messages; /* reader calls that took a message */
    size_t capped;   /* turns that stopped at `batch` with more waiting */
    size_t wakeups;  /* uv_poll callbacks */
} nas_zmq_uv_stats;

void nas_zmq_uv_stats_get(const nas_zmq_uv *z, nas_zmq_uv_stats *out);

#endif
