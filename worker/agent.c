/*
 * agent.c - Paranoid Pirate worker client with a task thread (see agent.h).
 *
 * Threads.  The agent thread (the caller of nas_agent_run) owns the DEALER
 * socket; the task thread owns the evaluator.  They share a mailbox under
 * a mutex (one Task slot in; the task's Progress queue and its Result or
 * Failure out) and the atomic cancel flag, which the evaluator polls.  The
 * task thread sleeps on a condition variable; the agent thread learns of
 * new output from an eventfd that it polls with its sockets.  (This was an
 * inproc PAIR pipe carrying wire envelopes: every task then cost a
 * protobuf encode and decode each way, and every loop turn one more
 * ZeroMQ socket to poll, a few system calls each.)
 *
 * The task thread's side is agent_task.c; what both sides share is in
 * agent_internal.h.
 *
 * Time.  The agent reads the monotonic clock once per loop iteration and
 * keeps absolute deadlines: next heartbeat, master-silence limit,
 * reconnect time, next resend of unacknowledged results.
 */
#include "worker/agent.h"
#include "worker/agent_internal.h"
#include "common/blas.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/zmon.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>
#include <zmq.h>

/* The zguide's Paranoid Pirate settings, with liveness 5 to match the
 * master (ARCHITECTURE.md, The wire): both sides give up on the other after the same time. */
void nas_agent_config_default(nas_agent_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->threads = 1;
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 5;
    cfg->reconnect_min_ms = 1000;
    cfg->reconnect_max_ms = 32000;
}

// ---- lifecycle -----------------------------------------------------------------------------

/* Each agent has its own ZeroMQ context unless given one to share; either
 * way several agents can live in one process, since the inproc endpoints
 * are unique per agent (and per monitor). */
int nas_agent_create(nas_agent **out, const nas_agent_config *cfg, char *err) {
    if (!cfg->endpoint || !*cfg->endpoint || strlen(cfg->endpoint) >= 512)
        return nas_set_err(err, NAS_EINVAL, "agent: a master endpoint is required");
    if (!cfg->eval) return nas_set_err(err, NAS_EINVAL, "agent: no evaluator");
    if (cfg->heartbeat_ms < 1 || cfg->liveness < 1 || cfg->reconnect_min_ms < 1 ||
        cfg->reconnect_max_ms < cfg->reconnect_min_ms || cfg->threads < 1)
        return nas_set_err(err, NAS_EINVAL,
                           "agent: heartbeat, liveness, threads and reconnect "
                           "times must be positive, with max >= min");
    if (cfg->name && strlen(cfg->name) >= NAS_WIRE_NAME_MAX)
        return nas_set_err(err, NAS_EINVAL, "agent: name longer than %d bytes",
                           NAS_WIRE_NAME_MAX - 1);
    if (!cfg->curve_keys != !cfg->curve_server_key)
        return nas_set_err(err, NAS_EINVAL,
                           "agent: CurveZMQ needs both this worker's keypair and the master's "
                           "public key");
    if (cfg->curve_server_key) {
        int rc = nas_keys_check_z85(cfg->curve_server_key, strlen(cfg->curve_server_key), err);
        if (rc < 0) return rc;
    }
    nas_agent *a = nas_calloc(1, sizeof *a);
    if (!a) return nas_set_err(err, NAS_ENOMEM, "agent: out of memory");
    a->cfg = *cfg;
    if (cfg->curve_keys) {
        a->curve = 1;
        a->keys = *cfg->curve_keys;
        snprintf(a->server_key, sizeof a->server_key, "%s", cfg->curve_server_key);
    }
    a->cfg.curve_keys = NULL;
    a->cfg.curve_server_key = NULL;
    a->cfg.curve_key_file = NULL; /* borrowed strings: zmon keeps copies */
    a->cfg.curve_server_key_file = NULL;
    a->stop_pipe[0] = a->stop_pipe[1] = -1;
    /* Only distinctness matters: getrandom, else the clock and the pid. */
    if (getrandom(&a->incarnation, sizeof a->incarnation, GRND_NONBLOCK) !=
        (ssize_t)sizeof a->incarnation)
        a->incarnation = (uint64_t)nas_wall_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    a->incarnation |= 1; /* never 0, which means "not sent" */
    snprintf(a->endpoint, sizeof a->endpoint, "%s", cfg->endpoint);
    a->cfg.endpoint = a->endpoint;
    if (gethostname(a->host, sizeof a->host) != 0) snprintf(a->host, sizeof a->host, "unknown");
    a->host[sizeof a->host - 1] = 0;
    if (cfg->name)
        snprintf(a->name, sizeof a->name, "%s", cfg->name);
    else
        snprintf(a->name, sizeof a->name, "%.40s:%d", a->host, (int)getpid());
    a->cfg.name = a->name;
    a->wake_fd = -1;
    a->held = nas_calloc(NAS_WIRE_MAX_HELD, sizeof *a->held);
    a->own_zctx = !cfg->zmq_context;
    a->zctx = a->own_zctx ? zmq_ctx_new() : cfg->zmq_context;
    a->mb.task = nas_malloc(sizeof *a->mb.task);
    a->mb.end = nas_malloc(sizeof *a->mb.end);
    a->running = nas_malloc(sizeof *a->running);
    a->result = nas_malloc(sizeof *a->result);
    a->end_taken = nas_malloc(sizeof *a->end_taken);
    a->pkt = nas_malloc(sizeof *a->pkt);
    if (!a->held || !a->zctx || !a->mb.task || !a->mb.end || !a->running || !a->result ||
        !a->end_taken || !a->pkt || pipe2(a->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        goto fail;
    a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->wake_fd < 0) goto fail;
    if (pthread_mutex_init(&a->mb.mu, NULL) != 0) goto fail;
    if (pthread_cond_init(&a->mb.cv, NULL) != 0) {
        pthread_mutex_destroy(&a->mb.mu);
        goto fail;
    }
    a->mb_init = 1;
    nas_zmon_config mc = {.what = "master",
                          .curve = a->curve,
                          .public_z85 = a->curve ? a->keys.public_z85 : NULL,
                          .key_file = cfg->curve_key_file,
                          .server_key_file = cfg->curve_server_key_file,
                          .key_option = "--master-key"};
    if (nas_zmon_create(&a->mon, a->zctx, &mc, err) < 0) goto fail;
    /* The mailbox exists before the thread does: nothing to wait for. */
    if (pthread_create(&a->thread, NULL, nas__agent_task_main, a) != 0) goto fail;
    a->thread_started = 1;
    *out = a;
    return NAS_OK;
fail:
    nas_set_err(err, NAS_EIO, "agent: cannot set up: %s", errno ? strerror(errno) : "zmq");
    nas_agent_destroy(&a);
    return NAS_EIO;
}

/* The cancel flag stops a running evaluation at its next check; the quit
 * flag then ends the thread, and join waits for it. */
void nas_agent_destroy(nas_agent **ap) {
    if (!ap || !*ap) return;
    nas_agent *a = *ap;
    if (a->thread_started) {
        atomic_store(&a->cancel, 1);
        pthread_mutex_lock(&a->mb.mu);
        a->mb.quit = 1;
        pthread_cond_signal(&a->mb.cv);
        pthread_mutex_unlock(&a->mb.mu);
        pthread_join(a->thread, NULL);
    }
    if (a->mb_init) {
        pthread_cond_destroy(&a->mb.cv);
        pthread_mutex_destroy(&a->mb.mu);
    }
    nas_zmon_destroy(&a->mon); /* detaches: before the socket closes */
    if (a->sock) zmq_close(a->sock);
    if (a->zctx && a->own_zctx) zmq_ctx_term(a->zctx);
    if (a->wake_fd >= 0) close(a->wake_fd);
    nas_free(a->mb.task);
    nas_free(a->mb.end);
    nas_free(a->mb.prog);
    nas_free(a->running);
    nas_free(a->result);
    nas_free(a->prog_taken);
    nas_free(a->end_taken);
    nas_free(a->pkt);
    if (a->stop_pipe[0] >= 0) close(a->stop_pipe[0]);
    if (a->stop_pipe[1] >= 0) close(a->stop_pipe[1]);
    nas_free(a->held);
    explicit_bzero(&a->keys, sizeof a->keys); /* the secret key dies with the agent */
    nas_free(a);
    *ap = NULL;
}

/* write() is async-signal-safe and the pipe is non-blocking: a full pipe
 * (never in practice) only loses requests that
 * could not add anything (the agent is stopping already). */
void nas_agent_request_stop(nas_agent *a) {
    char c = 's';
    ssize_t n = write(a->stop_pipe[1], &c, 1);
    (void)n;
}

void nas_agent_stats_get(const nas_agent *a, nas_agent_stats *out) {
    *out = a->stats;
    out->held = a->n_held;
    nas_zmon_stats ms;
    nas_zmon_stats_get(a->mon, &ms);
    out->handshake_state = (int)ms.state;
    out->handshake_failures = ms.total_failures;
}

/* The text lives in the monitor's stats; a success clears its meaning. */
const char *nas_agent_handshake_problem(const nas_agent *a) {
    static const char none[] = "";
    return nas_zmon_failing(a->mon) ? nas_zmon_message(a->mon) : none;
}

// ---- talking to the master --------------------------------------------------------------------

/* Non-blocking: a master that does not read must not stall the heartbeat
 * loop.  Anything sent counts as our heartbeat. */
static void to_master(nas_agent *a, nas_wire_msg *m, int64_t now) {
    if (!a->sock) return;
    char err[NAS_ERR_LEN];
    m->seq = ++a->seq;
    int rc = nas_wire_send(a->sock, NULL, 0, m, NULL, 0, 1, err);
    /* Would-block means no connection can take the message (a refused
     * handshake dropped it): the reason is said once elsewhere, and what
     * matters is sent again on the next connection. */
    if (rc == NAS_EAGAIN)
        nas_debug("agent: sending %s: %s", nas_wire_type_name(m->type), err);
    else if (rc < 0)
        nas_warn("agent: sending %s: %s", nas_wire_type_name(m->type), err);
    a->heartbeat_at = now + a->cfg.heartbeat_ms;
}

static void send_simple(nas_agent *a, int type, int64_t now) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, type);
    to_master(a, &m, now);
}

/* Results stay held until acknowledged, so a lost Result (master crash
 * between receive and commit) is delivered again. */
static void send_held(nas_agent *a, int64_t now) {
    nas_wire_msg *m = nas_malloc(sizeof *m);
    if (!m) return;
    for (int i = 0; i < a->n_held; i++) {
        nas_wire_msg_init(m, NAS_MSG_RESULT);
        m->u.result = a->held[i];
        to_master(a, m, now);
    }
    nas_free(m);
    a->resend_at = now + a->cfg.heartbeat_ms * a->cfg.liveness;
}

/* Register, deliver held results, and ask for work if idle. */
/* A busy worker does not send Ready: it reports its running task instead,
 * and becomes idle when that task's Result or Failure is sent. */
static void send_register(nas_agent *a, int64_t now) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_REGISTER);
    nas_wire_register *r = &m.u.reg;
    snprintf(r->name, sizeof r->name, "%s", a->name);
    snprintf(r->host, sizeof r->host, "%s", a->host);
    snprintf(r->version, sizeof r->version, "%s", NAS_VERSION);
    r->cores = (uint32_t)a->cfg.threads;
    r->protocol = NAS_PROTOCOL_VERSION;
    r->incarnation = a->incarnation;
    nas_blas_info bi;
    nas_blas_info_get(&bi);
    snprintf(r->engine.blas, sizeof r->engine.blas, "%s %s", bi.library, bi.version);
    snprintf(r->engine.blas_kernels, sizeof r->engine.blas_kernels, "%s", bi.kernels);
    snprintf(r->engine.isa, sizeof r->engine.isa, "%s", bi.isa);
    r->engine.blas_threads = (uint32_t)bi.threads;
    snprintf(r->engine.gemm, sizeof r->engine.gemm, "%s", bi.gemm);
    r->n_held = a->n_held;
    for (int i = 0; i < a->n_held; i++)
        r->held[i] = (nas_task_ref){a->held[i].task_id, a->held[i].attempt};
    if (a->busy && !a->stopping) r->has_running = 1, r->running = a->current;
    to_master(a, &m, now);
    a->stats.registrations++;
    send_held(a, now);
    if (!a->busy && !a->stopping) send_simple(a, NAS_MSG_READY, now);
}

/* A fresh socket per connection: ZeroMQ would reconnect the old one by
 * itself, but a fresh one drops whatever was queued for a dead master and
 * gives the master a new identity to register. */
static int connect_master(nas_agent *a, int64_t now, char *err) {
    a->sock = zmq_socket(a->zctx, ZMQ_DEALER);
    if (!a->sock) return nas_set_err(err, NAS_EIO, "zmq_socket: %s", zmq_strerror(zmq_errno()));
    int rc = nas_wire_socket_setup(a->sock, err);
    /* Curve options must be set before connect: the handshake uses them. */
    if (rc == NAS_OK && a->curve) rc = nas_keys_curve_client(a->sock, &a->keys, a->server_key, err);
    /* The monitor too, or the first handshake goes unseen.  Without it the
     * worker still works, it only cannot say why it is not admitted. */
    char merr[NAS_ERR_LEN];
    a->mon_armed = NULL; /* a new monitor socket, maybe at a freed one's address */
    if (rc == NAS_OK && nas_zmon_attach(a->mon, a->sock, a->endpoint, merr) < 0)
        nas_warn("agent: no handshake diagnostics: %s", merr);
    if (rc == NAS_OK && zmq_connect(a->sock, a->endpoint) != 0)
        rc = nas_set_err(err, NAS_EINVAL, "cannot connect to %s: %s", a->endpoint,
                         zmq_strerror(zmq_errno()));
    if (rc < 0) {
        nas_zmon_detach(a->mon);
        zmq_close(a->sock);
        a->sock = NULL;
        return rc;
    }
    if (!a->said[0])
        nas_info("agent: %s connecting to %s%s", a->name, a->endpoint,
                 a->curve ? " (CurveZMQ)" : "");
    nas_zmon_stats ms;
    nas_zmon_stats_get(a->mon, &ms);
    a->handshakes = ms.successes;
    a->heard = 0;
    a->silent_at = now + a->cfg.heartbeat_ms * a->cfg.liveness;
    send_register(a, now);
    return NAS_OK;
}

/* Exponential backoff, as in the zguide's ppworker: a master that is down
 * for long is not hammered by every worker at once. */
static void drop_master(nas_agent *a, int64_t now, const char *why) {
    /* A known handshake failure was logged as an error already (rate
     * limited); a second line per reconnect would only bury it.  Silence
     * from a peer that never completed a handshake is nobody listening,
     * which is said once, like every other problem, until it changes. */
    nas_zmon_stats ms;
    nas_zmon_stats_get(a->mon, &ms);
    char msg[sizeof a->said];
    if (!a->heard && ms.successes == a->handshakes && strcmp(why, "master silent") == 0)
        snprintf(msg, sizeof msg,
                 "nothing answers at %.500s: no nas-master listens there (or the network drops the "
                 "connection); retrying every %lld ms at most",
                 a->endpoint, (long long)a->cfg.reconnect_max_ms);
    else
        snprintf(msg, sizeof msg, "%s; reconnecting", why);
    if (nas_zmon_failing(a->mon))
        nas_debug("agent: not admitted; reconnecting in %lld ms", (long long)a->backoff);
    else if (strcmp(msg, a->said) != 0)
        nas_warn("agent: %s", msg);
    else
        nas_debug("agent: %s (again)", msg);
    snprintf(a->said, sizeof a->said, "%s", msg);
    nas_zmon_detach(a->mon);
    zmq_close(a->sock);
    a->sock = NULL;
    a->reconnect_at = now + a->backoff;
    a->backoff =
        a->backoff * 2 > a->cfg.reconnect_max_ms ? a->cfg.reconnect_max_ms : a->backoff * 2;
}

/* Bounded: a worker cut off for a very long time keeps its newest results. */
static void hold_result(nas_agent *a, const nas_wire_result *r) {
    if (a->n_held == NAS_WIRE_MAX_HELD) {
        nas_warn("agent: %d results unacknowledged; dropping the oldest (task %" PRIu64 ")",
                 NAS_WIRE_MAX_HELD, a->held[0].task_id);
        memmove(a->held, a->held + 1, (size_t)(NAS_WIRE_MAX_HELD - 1) * sizeof *a->held);
        a->n_held--;
    }
    a->held[a->n_held++] = *r;
}

/* A duplicate Ack also releases the result: the master has one already. */
static void on_ack(nas_agent *a, const nas_wire_ack *ack) {
    for (int i = 0; i < a->n_held; i++) {
        if (a->held[i].task_id != ack->task_id || a->held[i].attempt != ack->attempt) continue;
        memmove(a->held + i, a->held + i + 1, (size_t)(a->n_held - i - 1) * sizeof *a->held);
        a->n_held--;
        a->stats.results_acked++;
        return;
    }
}

/* Everything the master may send.  A Task while busy is a master bug or a
 * race after a re-attach; it is refused, not queued. */
static void on_master_msg(nas_agent *a, const nas_wire_msg *m, int64_t now) {
    switch (m->type) {
    case NAS_MSG_TASK:
        if (a->busy || a->stopping) {
            nas_wire_msg e;
            nas_wire_msg_init(&e, NAS_MSG_ERROR);
            e.u.error.code = NAS_ESTATE;
            snprintf(e.u.error.message, sizeof e.u.error.message, "busy with task %" PRIu64,
                     a->current.task_id);
            to_master(a, &e, now);
            return;
        }
        a->busy = 1;
        a->current = (nas_task_ref){m->u.task.task_id, m->u.task.attempt};
        atomic_store(&a->cancel, 0);
        a->stats.tasks++;
        nas_info("agent: task %" PRIu64 " attempt %u (%s)", a->current.task_id, a->current.attempt,
                 nas_eval_mode_name(m->u.task.mode));
        pthread_mutex_lock(&a->mb.mu);
        memcpy(a->mb.task, &m->u.task, sizeof *a->mb.task);
        a->mb.task_ready = 1;
        pthread_cond_signal(&a->mb.cv);
        pthread_mutex_unlock(&a->mb.mu);
        return;
    case NAS_MSG_CANCEL:
        if (a->busy && a->current.task_id == m->u.cancel.task_id) {
            nas_info("agent: task %" PRIu64 " canceled by the master", a->current.task_id);
            atomic_store(&a->cancel, 1);
        }
        return;
    case NAS_MSG_ACK:
        on_ack(a, &m->u.ack);
        return;
    case NAS_MSG_ERROR:
        a->stats.errors_in++;
        /* A peer that refuses everything (the status port, a master that
         * refuses this worker) answers every heartbeat: say it once. */
        {
            char msg[sizeof a->said];
            snprintf(msg, sizeof msg, "%.500s refuses this worker: %s: %s", a->endpoint,
                     nas_err_name(m->u.error.code), m->u.error.message);
            if (strcmp(msg, a->said) != 0)
                nas_warn("agent: %s", msg);
            else
                nas_debug("agent: %s (again)", msg);
            snprintf(a->said, sizeof a->said, "%s", msg);
        }
        /* NAS_ESTATE from the master means exactly one thing: it does not
         * know us (it restarted, or expired us), so register again. */
        if (m->u.error.code == NAS_ESTATE) send_register(a, now);
        /* NAS_EEXIST: a newer process registered under our name on this
         * host, and it still runs.  Two workers cannot share a name (each
         * would drop the other's leases), and retrying cannot cure it. */
        if (m->u.error.code == NAS_EEXIST) {
            snprintf(a->leave_why, sizeof a->leave_why,
                     "another worker process runs as %.64s on this host and the master keeps "
                     "the newer one: give each its own --name",
                     a->name);
            a->leave_rc = NAS_EEXIST;
        }
        return;
    case NAS_MSG_DISCONNECT:
        if (m->u.disconnect_done && !a->cfg.stay) {
            nas_info("agent: the master says the campaign is done (%s); leaving", m->u.disconnect);
            a->done = 1;
            return;
        }
        if (m->u.disconnect_done)
            nas_info("agent: the campaign is done; --stay: waiting for the next one");
        drop_master(a, now, m->u.disconnect_done ? "campaign done" : "master disconnected");
        return;
    case NAS_MSG_HEARTBEAT:
        a->heard = 1;
        if (a->said[0]) {
            nas_info("agent: %s answers; registered", a->endpoint);
            a->said[0] = '\0';
        }
        /* The answer to Register names the weight store. */
        if (m->u.heartbeat.weights[0] && a->cfg.on_weights)
            a->cfg.on_weights(a->cfg.weights_ctx, m->u.heartbeat.weights);
        return;
    default:
        return; /* heartbeats; anything else is ignored */
    }
}

/* Read everything waiting (non-blocking) before going back to poll. */
static void drain_master(nas_agent *a, int64_t now) {
    nas_wire_packet *pkt = a->pkt;
    char err[NAS_ERR_LEN];
    /* Bounded, so a flood from the master cannot starve the stop and task
     * pipes; what is left is read on the next turn. */
    for (int n = 0; pkt && a->sock && n < 1000; n++) {
        int rc = nas_wire_recv(a->sock, 0, 1, pkt, err);
        if (rc == NAS_EAGAIN || rc == NAS_EIO) break;
        /* Anything from the master, even garbage, shows it is alive. */
        a->silent_at = now + a->cfg.heartbeat_ms * a->cfg.liveness;
        a->heard_at = now;
        a->backoff = a->cfg.reconnect_min_ms;
        if (rc < 0) {
            a->stats.bad_in++;
            nas_warn("agent: bad message from the master: %s", err);
            nas_wire_msg e;
            nas_wire_msg_init(&e, NAS_MSG_ERROR);
            e.u.error.code = rc;
            snprintf(e.u.error.message, sizeof e.u.error.message, "%s", err);
            to_master(a, &e, now);
            continue;
        }
        on_master_msg(a, &pkt->msg, now);
        nas_wire_packet_fini(pkt);
    }
}

/* Output of the task thread.  While disconnected, progress is dropped
 * (it is advisory); the Result is held until acknowledged.  Everything is
 * taken under the lock in one go (the Progress queue by swapping arrays)
 * and sent after it, so the task thread never waits for the network. */
static void drain_pipe(nas_agent *a, int64_t now) {
    uint64_t count;
    ssize_t r = read(a->wake_fd, &count, sizeof count); /* resets the eventfd */
    (void)r;
    pthread_mutex_lock(&a->mb.mu);
    nas_wire_progress *prog = a->mb.prog;
    int n_prog = a->mb.n_prog, cap_prog = a->mb.cap_prog;
    a->mb.prog = a->prog_taken;
    a->mb.cap_prog = a->cap_taken;
    a->mb.n_prog = 0;
    a->prog_taken = prog;
    a->cap_taken = cap_prog;
    int has_end = a->mb.has_end;
    if (has_end) memcpy(a->end_taken, a->mb.end, sizeof *a->end_taken);
    a->mb.has_end = 0;
    a->mb.signaled = 0;
    pthread_mutex_unlock(&a->mb.mu);

    nas_wire_msg m;
    for (int i = 0; i < n_prog && !a->stopping; i++) {
        nas_wire_msg_init(&m, NAS_MSG_PROGRESS);
        m.u.progress = prog[i];
        to_master(a, &m, now);
    }
    if (!has_end) return;
    nas_wire_msg *e = a->end_taken;
    a->busy = 0;
    /* After a give-back the master has already re-queued the task. */
    if (a->stopping) return;
    if (e->type == NAS_MSG_RESULT) {
        nas_info("agent: task %" PRIu64 " done: val_acc %.4f", e->u.result.task_id,
                 e->u.result.val_acc);
        hold_result(a, &e->u.result);
        to_master(a, e, now);
        a->resend_at = now + a->cfg.heartbeat_ms * a->cfg.liveness;
    } else if (e->u.failure.environment) {
        /* Every task would fail here the same way: give this one back
         * uncounted and leave, so the campaign waits for a worker that can
         * evaluate instead of burning its budget on this one. */
        nas_error("agent: this worker cannot evaluate tasks: %s; task %" PRIu64
                  " goes back to the master with its attempts kept, and the worker stops "
                  "(fix its environment, e.g. the data directory, and start it again)",
                  e->u.failure.reason, e->u.failure.task_id);
        to_master(a, e, now);
        snprintf(a->leave_why, sizeof a->leave_why, "cannot evaluate tasks here: %.200s",
                 e->u.failure.reason);
        a->leave_rc = NAS_EIO;
        nas_wire_msg d;
        nas_wire_msg_init(&d, NAS_MSG_DISCONNECT);
        snprintf(d.u.disconnect, sizeof d.u.disconnect, "worker environment failed");
        to_master(a, &d, now);
        a->stopping = 1;
    } else {
        nas_warn("agent: task %" PRIu64 " failed: %s", e->u.failure.task_id, e->u.failure.reason);
        to_master(a, e, now);
    }
}

// ---- stopping --------------------------------------------------------------------------------

/* Each byte on the stop pipe is one stop request (see
 * nas_agent_request_stop; main() calls it from its signal handler). */
static int read_stops(nas_agent *a) {
    char buf[16];
    ssize_t n = read(a->stop_pipe[0], buf, sizeof buf);
    return n > 0 ? (int)n : 0;
}

/* Give the task back at once rather than after it stops: the master can
 * re-lease it while our task thread is still winding down. */
static void begin_stop(nas_agent *a, int64_t now) {
    a->stopping = 1;
    if (a->busy) {
        nas_info("agent: stopping: giving task %" PRIu64 " back", a->current.task_id);
        atomic_store(&a->cancel, 1);
        nas_wire_msg m;
        nas_wire_msg_init(&m, NAS_MSG_FAILURE);
        m.u.failure.task_id = a->current.task_id;
        m.u.failure.attempt = a->current.attempt;
        m.u.failure.code = NAS_ECANCELED;
        m.u.failure.give_back = 1;
        snprintf(m.u.failure.reason, sizeof m.u.failure.reason, "worker %s shutting down", a->name);
        to_master(a, &m, now);
    }
    nas_wire_msg d;
    nas_wire_msg_init(&d, NAS_MSG_DISCONNECT);
    snprintf(d.u.disconnect, sizeof d.u.disconnect, "worker shutting down");
    to_master(a, &d, now);
}

// ---- main loop ---------------------------------------------------------------------------------

/* The poll timeout: the earliest of the deadlines that apply in the
 * current state, capped at one heartbeat by the caller. */
static int64_t next_deadline(const nas_agent *a) {
    int64_t t = a->heartbeat_at;
    if (a->sock && a->silent_at < t) t = a->silent_at;
    /* A stopping agent does not reconnect: that deadline would spin. */
    if (!a->sock && !a->stopping && a->reconnect_at < t) t = a->reconnect_at;
    if (a->sock && a->n_held && a->resend_at < t) t = a->resend_at;
    return t;
}

/* ZMQ_EVENTS says whether a message waits, and processes the socket's
 * pending commands, which is what re-arms its ZMQ_FD: after a check
 * that says "nothing", the descriptor signals the next arrival. */
static int zsock_readable(void *sock) {
    int events = 0;
    size_t sz = sizeof events;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &events, &sz) == 0 && (events & ZMQ_POLLIN);
}

static int zsock_fd(void *sock) {
    int fd = -1;
    size_t sz = sizeof fd;
    return zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) == 0 ? fd : -1;
}

/* The agent loop: poll the stop pipe, the task thread's eventfd, the
 * master socket and its monitor; then handle what arrived; then the
 * timers.  The sockets are polled through their ZMQ_FD descriptors in one
 * poll() (zmq_poll made two passes with a ZMQ_EVENTS check per socket
 * each, a dozen system calls a turn): the master socket is checked with
 * ZMQ_EVENTS before every wait, since a send may have taken its signal.
 * The monitor is only read, so its descriptor can be trusted once
 * ZMQ_EVENTS said "nothing" after the last read (it is then armed): it is
 * checked when new (after a connect), after it had events, when its
 * descriptor fires, and when a wait times out. */
int nas_agent_run(nas_agent *a, char *err) {
    int64_t now = nas_now_ms();
    a->backoff = a->cfg.reconnect_min_ms;
    int rc = connect_master(a, now, err);
    if (rc < 0) return rc;
    for (;;) {
        int sock_ready = a->sock && zsock_readable(a->sock);
        struct pollfd p[4] = {{a->stop_pipe[0], POLLIN, 0}, {a->wake_fd, POLLIN, 0}};
        int n = 2, i_sock = -1, i_mon = -1;
        if (a->sock && (p[n].fd = zsock_fd(a->sock)) >= 0) p[n].events = POLLIN, i_sock = n++;
        /* The monitor exists only while the socket does. */
        void *mon = a->sock ? nas_zmon_socket(a->mon) : NULL;
        if (mon && (p[n].fd = zsock_fd(mon)) >= 0) p[n].events = POLLIN, i_mon = n++;
        int64_t wait = next_deadline(a) - now;
        if (wait < 0 || sock_ready) wait = 0;
        if (wait > a->cfg.heartbeat_ms) wait = a->cfg.heartbeat_ms;
        int pr = poll(p, (nfds_t)n, (int)wait);
        if (pr < 0 && errno != EINTR) return nas_set_err(err, NAS_EIO, "poll: %s", strerror(errno));
        now = nas_now_ms();
        int stops = 0;
        if (pr > 0 && (p[0].revents & POLLIN)) stops += read_stops(a);
        if (stops > 0) {
            a->stops += stops;
            if (a->stops >= 2 && a->stopping) {
                nas_warn("agent: second stop request: leaving at once");
                return NAS_ECANCELED;
            }
            if (!a->stopping) begin_stop(a, now);
            if (a->stops >= 2) return NAS_ECANCELED;
        }
        if (pr > 0 && (p[1].revents & POLLIN)) drain_pipe(a, now);
        if (!sock_ready && i_sock >= 0 && p[i_sock].revents) sock_ready = zsock_readable(a->sock);
        if (a->sock && sock_ready) drain_master(a, now);
        if (i_mon >= 0 && a->sock && (a->mon_armed != mon || pr == 0 || p[i_mon].revents)) {
            /* Reading may take the descriptor's signal: re-check next turn. */
            a->mon_armed = mon;
            if (zsock_readable(mon)) {
                nas_zmon_poll(a->mon, now);
                a->mon_armed = NULL;
            }
        }
        if (a->leave_rc) {
            /* A give-back must reach the master, or the task would come
             * back as a lost lease with an attempt spent. */
            int linger = 2000;
            if (a->sock) zmq_setsockopt(a->sock, ZMQ_LINGER, &linger, sizeof linger);
            return nas_set_err(err, a->leave_rc, "%s", a->leave_why);
        }
        if (a->done) return NAS_OK;
        if (a->stopping && !a->busy) {
            nas_info("agent: stopped");
            return NAS_OK;
        }
        if (a->sock && now >= a->silent_at) drop_master(a, now, "master silent");
        if (!a->sock && now >= a->reconnect_at && !a->stopping) {
            rc = connect_master(a, now, err);
            if (rc < 0) return rc;
        }
        if (a->sock && a->n_held && now >= a->resend_at) send_held(a, now);
        if (a->sock && now >= a->heartbeat_at) send_simple(a, NAS_MSG_HEARTBEAT, now);
        if (!a->sock && now >= a->heartbeat_at) a->heartbeat_at = now + a->cfg.heartbeat_ms;
        if (a->cfg.on_alive && now >= a->alive_at) {
            a->alive_at = now + a->cfg.heartbeat_ms;
            a->cfg.on_alive(a->cfg.alive_ctx, a->sock && a->heard && now < a->silent_at, a->busy,
                            a->heard_at ? now - a->heard_at : -1);
        }
    }
}
