/*
 * campaign_net.c - the campaign's side of the event loop: three ROUTER
 * sockets watched through the zmq_uv bridge, the housekeeping and
 * checkpoint timers, and the strategy's expensive step in the thread pool.
 *
 *  - control (workers): every message is decoded and validated by
 *    nas_wire_recv(); a bad one is logged and answered with an Error
 *    through the dispatcher (it still counts as a heartbeat from a known
 *    worker); a good one goes to the dispatcher with its CurveZMQ key.
 *  - status (nasctl): read-only; StatusRequest gets the campaign's JSON
 *    document, anything else an Error.
 *  - weights: the parameter server's bulk socket; its reader lives in
 *    campaign_weights.c (pulls answered, pushes stored, refusals answered
 *    with an Error).
 *
 * With a keypair (--key/--authorized) all three are CurveZMQ servers and
 * the ZAP handler (master/auth.h) answers libzmq's questions about each
 * client from this same loop, through a fourth bridge.  The handler exists
 * before the first bind: a CURVE socket whose context has no ZAP handler
 * would admit anyone who knows the master's public key.  Without keys the
 * loopback rule applies: a bind other machines can reach needs --insecure.
 *
 * Closing is two-phase (libuv rule): handles are closed, and the sockets
 * and context are released in nas_campaign_destroy() after the loop has
 * run the close callbacks.
 */
#include "master/campaign_internal.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "master/auth.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <zmq.h>

/* The dispatcher's send hook: non-blocking, because a worker that stopped
 * reading must never stall the loop; a dropped message is recovered by
 * the liveness rules (the worker re-registers, the master re-sends). */
int nas__campaign_send(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *m) {
    nas_campaign *c = ctx;
    if (!c->sock_ctl) return NAS_ESTATE;
    /* Inside a batch a message may depend on what the batch writes (a
     * task, an acknowledgement): it waits for the commit. */
    if (c->batch_depth > 0) return nas__campaign_outbox_put(c, id, id_len, m);
    char err[NAS_ERR_LEN];
    int rc = nas_wire_send(c->sock_ctl, id, id_len, m, NULL, 0, 1, err);
    if (rc < 0) nas_debug("campaign: send %s: %s", nas_wire_type_name(m->type), err);
    return rc;
}

/* Answer a peer of a side socket with an Error. */
static void send_error(void *sock, const uint8_t *id, size_t id_len, int code, const char *msg) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_ERROR);
    m.u.error.code = code < 0 ? code : NAS_EPROTO;
    snprintf(m.u.error.message, sizeof m.u.error.message, "%s", msg);
    char err[NAS_ERR_LEN];
    if (nas_wire_send(sock, id, id_len, &m, NULL, 0, 1, err) < 0)
        nas_debug("campaign: error reply not sent: %s", err);
}

// ---- readers -------------------------------------------------------------------------------

/* Reader of the control socket: one message per call (zmq_uv's contract),
 * inside the batch the bridge opened for the burst (control_begin).
 * Every message, good or bad, is followed by a fill, because a result or a
 * new worker is exactly when new work can be leased. */
static void read_control(nas_zmq_uv *z, void *sock, void *data) {
    nas_campaign *c = data;
    nas_wire_packet pkt;
    char err[NAS_ERR_LEN];
    int rc = nas_wire_recv(sock, 1, 1, &pkt, err);
    if (rc == NAS_EAGAIN || rc == NAS_EIO) {
        /* Nothing was taken off the socket: the bridge, which reads
         * eagerly (below), asks ZMQ_EVENTS again before the next read. */
        nas_zmq_uv_report_empty(z);
        if (rc == NAS_EIO) nas_warn("control: receive failed: %s", err);
        return;
    }
    int64_t now = nas_now_ms();
    if (rc < 0) {
        if (pkt.id_len > 0) {
            /* The dispatcher logs it (within its limit, naming the peer)
             * and answers with Error. */
            nas_dispatcher_on_bad_message(c->disp, pkt.identity, pkt.id_len, rc, err, now);
        } else {
            nas_warn("control: receive failed: %s", err);
        }
    } else if (!c->closing) {
        /* on_packet: the ZAP User-Id (CurveZMQ key) goes with the message,
         * which binds a worker's name to its key (dispatcher.h). */
        nas__campaign_note_message(c, &pkt.msg);
        nas_dispatcher_on_packet(c->disp, &pkt, rc, err, now);
        nas__campaign_fill(c, now);
    }
    nas_wire_packet_fini(&pkt);
}

/* Group commit around a burst of control messages: everything read in one
 * turn shares one transaction, committed before any reply goes out. */
static void control_begin(void *data) {
    nas__campaign_batch_begin(data);
}

static void control_end(void *data) {
    nas__campaign_batch_end(data);
}

/* A status document is built on the loop that answers workers.  Its
 * figures are kept as results come (status_live.h), so one costs O(live
 * tasks + workers), well under a millisecond at 100,000 results; built
 * from the store for every request, it once cost seconds, and a dashboard
 * following the master kept the workers waiting (docs/PERFORMANCE.md).
 * The last document is still answered again while it is younger than
 * NAS_STATUS_REUSE times what it cost to build (capped at
 * NAS_STATUS_REUSE_MAX_MS), so that clients polling back to back take
 * about a tenth of the loop at most, whatever a document costs. */
#define NAS_STATUS_REUSE        10
#define NAS_STATUS_REUSE_MAX_MS 60000

static const char *status_doc(nas_campaign *c) {
    int64_t now = nas_now_ms(), age = now - c->status_doc_ms;
    int64_t keep = c->status_cost_ms * NAS_STATUS_REUSE;
    if (keep > NAS_STATUS_REUSE_MAX_MS) keep = NAS_STATUS_REUSE_MAX_MS;
    if (c->status_doc && age < keep) return c->status_doc;
    char *json = nas_campaign_status_json(c);
    if (!json) return c->status_doc; /* out of memory: the older one, if any */
    nas_free(c->status_doc);
    c->status_doc = json;
    c->status_doc_ms = nas_now_ms();
    c->status_cost_ms = c->status_doc_ms - now;
    return json;
}

/* Reader of the status socket.  Read-only by construction: the only
 * request it acts on is StatusRequest, which changes nothing. */
static void read_status(nas_zmq_uv *z, void *sock, void *data) {
    (void)z;
    nas_campaign *c = data;
    nas_wire_packet pkt;
    char err[NAS_ERR_LEN];
    int rc = nas_wire_recv(sock, 1, 1, &pkt, err);
    if (rc == NAS_EAGAIN) return;
    if (rc < 0) {
        if (nas_log_limit_pass(&c->status_log, nas_now_ms(), NAS_LOG_WARN,
                               "status: malformed requests"))
            nas_warn("status: bad message (%s): %s", nas_err_name(rc), err);
        if (pkt.id_len) send_error(sock, pkt.identity, pkt.id_len, rc, err);
    } else if (pkt.msg.type != NAS_MSG_STATUS_REQUEST) {
        nas_debug("status: %s refused: the status endpoint is read-only",
                  nas_wire_type_name(pkt.msg.type));
        send_error(sock, pkt.identity, pkt.id_len, NAS_EPROTO,
                   "this is the master's read-only status endpoint (listen.status); workers "
                   "connect to its control endpoint (listen.control)");
    } else {
        const char *json = status_doc(c);
        nas_wire_msg m;
        nas_wire_msg_init(&m, NAS_MSG_STATUS_REPLY);
        m.u.status_json = (char *)json;
        if (!json)
            send_error(sock, pkt.identity, pkt.id_len, NAS_ENOMEM, "status: out of memory");
        else if (nas_wire_send(sock, pkt.identity, pkt.id_len, &m, NULL, 0, 1, err) < 0)
            nas_warn("status: reply not sent: %s", err);
    }
    nas_wire_packet_fini(&pkt);
}

/* Reader of the ZAP socket: answers every waiting request without
 * blocking (one call drains the socket, which the bridge's contract of
 * "at least one message per call" allows). */
static void read_auth(nas_zmq_uv *z, void *sock, void *data) {
    (void)z;
    (void)sock;
    nas_campaign *c = data;
    if (nas_auth_handle(c->auth) < 0) nas_warn("auth: the ZAP socket failed; handshakes stall");
}

int nas_campaign_reload_auth(nas_campaign *c, char *err) {
    if (!c->auth)
        return nas_set_err(err, NAS_ESTATE,
                           "the master runs without CurveZMQ keys: there is nothing to reload");
    int n = nas_auth_reload(c->auth, err);
    if (n >= 0) nas_info("auth: %d authorized key(s) in force after reload", n);
    return n;
}

// ---- timers and the thread pool --------------------------------------------------------------

/* Housekeeping timer: liveness and heartbeats in the dispatcher, the end of
 * the resume grace, the wall-time budget, and the queue fill. */
static void on_tick(uv_timer_t *h) {
    nas_campaign *c = h->data;
    nas__campaign_batch_begin(c);
    nas__campaign_housekeep(c, nas_now_ms());
    nas__campaign_batch_end(c);
}

/* Every few seconds: refresh the workers' last-seen time in the store
 * (heartbeats are not written one by one) and touch the campaign row so a
 * reader can tell a live master from a dead one. */
static void on_checkpoint(uv_timer_t *h) {
    nas_campaign *c = h->data;
    if (c->closing || c->fatal) return;
    char err[NAS_ERR_LEN];
    nas__campaign_batch_begin(c);
    int n = nas_dispatcher_workers(c->disp, NULL, 0);
    nas_worker_info *w = n > 0 ? nas_malloc((size_t)n * sizeof *w) : NULL;
    if (w) {
        n = nas_dispatcher_workers(c->disp, w, n);
        for (int i = 0; i < n; i++)
            if (w[i].joined) /* visitors get no row (dispatcher.h, on_worker) */
                nas_store_worker_seen(c->store, w[i].name, w[i].host, (int)w[i].cores,
                                      w[i].version, nas_wall_ms(), err);
        nas_free(w);
    }
    int state =
        c->phase == NAS__PHASE_SEARCH ? NAS_STORE_CAMPAIGN_RUNNING : NAS_STORE_CAMPAIGN_DRAINING;
    if (nas_store_campaign_set_state(c->store, state, nas_wall_ms(), err) < 0 ||
        nas_store_campaign_set_ran(c->store, nas__campaign_ran_ms(c), err) < 0)
        nas__campaign_fail(c, err);
    nas__campaign_batch_end(c);
    /* A registration flood leaves megabytes of freed connection buffers in
     * the arena of ZeroMQ's I/O thread, which glibc keeps mapped (free()
     * returns memory only from the top of a heap, and live buffers of the
     * real workers sit above the freed ones): the master's RSS grew at
     * every flood of bench/soak with under 1 MB of it in use there.  Whole
     * free pages go back to the kernel here (in bench/soak, under 0.1 % of
     * the master's own CPU time). */
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* Thread-pool side of the strategy's expensive step; the loop does not
 * touch the strategy until prepare_done() runs on it. */
static void prepare_work(uv_work_t *w) {
    nas_campaign *c = w->data;
    c->prepare_rc = nas_strategy_prepare(c->strategy, c->prepare_err);
}

/* Loop side: the step is over, proposals may continue. */
static void prepare_done(uv_work_t *w, int status) {
    nas_campaign *c = w->data;
    c->preparing = 0;
    if (status == UV_ECANCELED) return;
    if (c->prepare_rc < 0) {
        nas__campaign_fail(c, c->prepare_err);
        return;
    }
    nas_info("campaign: strategy step prepared in the thread pool");
    nas__campaign_batch_begin(c);
    nas__campaign_failed_replay(c);
    nas__campaign_fill(c, nas_now_ms());
    nas__campaign_batch_end(c);
}

/* Run the strategy's expensive step (PNAS predictor fit and ranking) off
 * the loop; nothing touches the strategy until prepare_done(). */
void nas__campaign_start_prepare(nas_campaign *c) {
    if (c->preparing || c->closing) return;
    c->preparing = 1;
    c->work.data = c;
    if (uv_queue_work(c->loop, &c->work, prepare_work, prepare_done) != 0) {
        c->preparing = 0;
        char err[NAS_ERR_LEN];
        c->prepare_rc = nas_strategy_prepare(c->strategy, err);
        if (c->prepare_rc < 0) nas__campaign_fail(c, err);
    }
}

// ---- start and close ---------------------------------------------------------------------------

/* Create, limit, check against the loopback rule, bind and watch one
 * ROUTER socket.  The socket is stored before anything can fail so that
 * nas_campaign_destroy() releases it in every case.  `max_frame` is the
 * largest frame a peer may announce: ZeroMQ allocates a frame's whole
 * announced size as its header arrives, so the control and status sockets,
 * whose messages are one envelope, take a few envelopes' worth at most
 * (NAS_WIRE_MAX_CONTROL_FRAME), and only the weights socket takes weight
 * frames. */
static int bind_router(nas_campaign *c, void **sock, const char *ep, const char *what,
                       int64_t max_frame, nas_zmq_uv **z, nas_zmq_uv_read_fn fn, char *err) {
    *sock = zmq_socket(c->zctx, ZMQ_ROUTER);
    if (!*sock) return nas_set_err(err, NAS_EIO, "%s socket: %s", what, zmq_strerror(zmq_errno()));
    int rc = nas_wire_socket_setup(*sock, err);
    if (rc < 0) return rc;
    if (zmq_setsockopt(*sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame) != 0)
        return nas_set_err(err, NAS_EIO, "%s socket: zmq_setsockopt: %s", what,
                           zmq_strerror(zmq_errno()));
    /* Options before bind: the CURVE server role applies to every
     * connection the socket accepts. */
    if (c->curve) {
        rc = nas_keys_curve_server(*sock, &c->keys, NULL, err);
        if (rc < 0) return rc;
    }
    /* The loopback rule (ARCHITECTURE.md, Security): off the loopback only with keys or
     * --insecure. */
    rc = nas_auth_check_bind(ep, c->curve, c->opt.insecure, err);
    if (rc < 0) return rc;
    if (zmq_bind(*sock, ep) != 0)
        return nas_set_err(err, NAS_EIO, "cannot listen for %s on %s: %s", what, ep,
                           zmq_strerror(zmq_errno()));
    nas_info("listening for %s on %s%s", what, ep, c->curve ? " (CurveZMQ)" : "");
    int rc2 = nas_zmq_uv_create(z, c->loop, *sock, 256, fn, c, err);
    if (rc2 == NAS_OK && fn == read_control) {
        nas_zmq_uv_set_batch(*z, control_begin, control_end);
        nas_zmq_uv_set_eager(*z);
    }
    return rc2;
}

/* Bind the three endpoints and start the timers.  On failure the caller
 * aborts the campaign, which closes whatever was started. */
int nas__campaign_net_start(nas_campaign *c, char *err) {
    const nas_config *cfg = c->cfg;
    /* Timers first, so that a failed bind below still closes cleanly. */
    uv_timer_init(c->loop, &c->tick);
    uv_timer_init(c->loop, &c->checkpoint);
    uv_timer_init(c->loop, &c->closer);
    c->tick.data = c->checkpoint.data = c->closer.data = c;
    c->handles_open = 1;
    c->zctx = zmq_ctx_new();
    if (!c->zctx) return nas_set_err(err, NAS_EIO, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    int rc = NAS_OK;
    if (c->curve) {
        rc = nas_auth_create(&c->auth, c->zctx, c->opt.authorized, NULL, err);
        if (rc == NAS_OK)
            rc = nas_zmq_uv_create(&c->z_auth, c->loop, nas_auth_socket(c->auth), 64, read_auth, c,
                                   err);
        if (rc < 0) return rc;
    }
    rc = bind_router(c, &c->sock_ctl, cfg->listen.control, "workers", NAS_WIRE_MAX_CONTROL_FRAME,
                     &c->z_ctl, read_control, err);
    if (rc == NAS_OK)
        rc = bind_router(c, &c->sock_sts, cfg->listen.status, "status", NAS_WIRE_MAX_CONTROL_FRAME,
                         &c->z_sts, read_status, err);
    if (rc == NAS_OK)
        rc = bind_router(c, &c->sock_wts, cfg->listen.weights, "weights", NAS_WIRE_MAX_FRAME,
                         &c->z_wts, nas__campaign_weights_read, err);
    if (rc < 0) return rc;
    nas__campaign_weights_advertise(c);
    int64_t tick = c->opt.tick_ms > 0 ? c->opt.tick_ms : cfg->workers.heartbeat_ms / 4;
    if (tick < 5) tick = 5;
    int64_t ckpt = c->opt.checkpoint_ms > 0 ? c->opt.checkpoint_ms : 5000;
    uv_timer_start(&c->tick, on_tick, (uint64_t)tick, (uint64_t)tick);
    uv_timer_start(&c->checkpoint, on_checkpoint, (uint64_t)ckpt, (uint64_t)ckpt);
    return NAS_OK;
}

/* Close the handles from a timer callback of their own, never from inside
 * a reader: the bridge may still be draining the socket that asked. */
static void do_close(uv_timer_t *h) {
    nas_campaign *c = h->data;
    nas_zmq_uv_close(&c->z_ctl);
    nas_zmq_uv_close(&c->z_sts);
    nas_zmq_uv_close(&c->z_wts);
    nas_zmq_uv_close(&c->z_auth);
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_close((uv_handle_t *)&c->checkpoint, NULL);
    uv_close((uv_handle_t *)&c->closer, NULL);
    c->handles_open = 0;
}

void nas__campaign_net_close(nas_campaign *c) {
    if (c->closing) return;
    c->closing = 1;
    if (c->handles_open) uv_timer_start(&c->closer, do_close, 0, 0);
}

/* Called from nas_campaign_destroy() once the loop has closed the handles. */
void nas__campaign_net_free(nas_campaign *c) {
    nas_free(c->status_doc);
    c->status_doc = NULL;
    if (c->sock_ctl) zmq_close(c->sock_ctl);
    if (c->sock_sts) zmq_close(c->sock_sts);
    if (c->sock_wts) zmq_close(c->sock_wts);
    c->sock_ctl = c->sock_sts = c->sock_wts = NULL;
    /* The ZAP handler's socket belongs to the context too: it goes before
     * zmq_ctx_term(), which would otherwise wait for it forever. */
    nas_auth_destroy(&c->auth);
    if (c->zctx) zmq_ctx_term(c->zctx);
    c->zctx = NULL;
}
