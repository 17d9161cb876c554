/*
 * agent.c - Paranoid Pirate worker client with a task thread (see agent.h).
 *
 * Threads.  The agent thread (the caller of nas_agent_run) owns the DEALER
 * socket and the agent end of the PAIR pipe; the task thread owns the
 * other end and the evaluator.  They share nothing else but the atomic
 * cancel flag, which the evaluator polls.  Messages on the pipe are wire
 * envelopes like any other: Task and Disconnect ($TERM) in, Progress,
 * Result and Failure out.
 *
 * Time.  The agent reads the monotonic clock once per loop iteration and
 * keeps absolute deadlines: next heartbeat, master-silence limit,
 * reconnect time, next resend of unacknowledged results.
 */
#include "worker/agent.h"
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
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

struct nas_agent {
    nas_agent_config cfg;
    char name[NAS_WIRE_NAME_MAX];
    char host[NAS_WIRE_HOST_MAX];
    char endpoint[512];
    char pipe_ep[64];
    void *zctx;
    int own_zctx;  /* 1: zctx is ours to terminate */
    void *sock;    /* DEALER to the master, NULL while disconnected */
    nas_zmon *mon; /* handshake diagnostics of sock */
    void *pipe;    /* agent end of the task pipe */
    pthread_t thread;
    int thread_started;
    int stop_pipe[2];  /* nas_agent_request_stop() writes a byte */
    atomic_int cancel; /* 1: the running task should stop */
    int busy;          /* a task is running on the task thread */
    nas_task_ref current;
    int stopping;     /* graceful stop under way */
    int stops;        /* stop requests seen */
    int curve;        /* 1: connect with CurveZMQ */
    nas_keypair keys; /* wiped on destroy */
    char server_key[NAS_KEY_Z85_LEN + 1];
    nas_wire_result *held; /* NAS_WIRE_MAX_HELD results awaiting an Ack */
    int n_held;
    int64_t backoff;
    int64_t heartbeat_at, silent_at, reconnect_at, resend_at;
    uint64_t seq;
    nas_agent_stats stats;
};

/* The zguide's Paranoid Pirate settings, with liveness 5 to match the
 * master (DESIGN s5): both sides give up on the other after the same time. */
void nas_agent_config_default(nas_agent_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->threads = 1;
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 5;
    cfg->reconnect_min_ms = 1000;
    cfg->reconnect_max_ms = 32000;
}

// ---- task thread -------------------------------------------------------------------------

typedef struct task_ctx {
    nas_agent *a;
    void *pipe;
} task_ctx;

/* The pipe is inproc and never full in practice (one task at a time, a
 * few messages per epoch), so a blocking send is fine on both ends. */
static void pipe_send(void *pipe, const nas_wire_msg *m) {
    char err[NAS_ERR_LEN];
    if (nas_wire_send(pipe, NULL, 0, m, NULL, 0, 0, err) < 0)
        nas_error("agent: task pipe: %s", err);
}

/* Runs on the task thread: hand the epoch's figures to the agent thread,
 * which owns the master socket. */
static void task_progress(void *ctx, const nas_wire_progress *p) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_PROGRESS);
    m.u.progress = *p;
    pipe_send(((task_ctx *)ctx)->pipe, &m);
}

static int task_cancelled(void *ctx) {
    return atomic_load(&((task_ctx *)ctx)->a->cancel);
}

/* Evaluate one task and send exactly one Result or Failure back.  The
 * message is on the heap: a Result carries a 4 KiB curve. */
static void run_one(task_ctx *tc, const nas_wire_task *task) {
    nas_eval_hooks hooks = {tc, task_progress, task_cancelled, &tc->a->cancel};
    char err[NAS_ERR_LEN] = "";
    nas_wire_msg *m = nas_malloc(sizeof *m);
    if (!m) {
        nas_error("agent: out of memory for a result");
        return;
    }
    nas_wire_msg_init(m, NAS_MSG_RESULT);
    int rc = nas_evaluator_run(tc->a->cfg.eval, task, &hooks, &m->u.result, err);
    snprintf(m->u.result.worker, sizeof m->u.result.worker, "%s", tc->a->name);
    /* An evaluator bug must become a failure here, not an Error there. */
    if (rc == NAS_OK && nas_wire_validate(m, err) < 0) rc = NAS_EFORMAT;
    if (rc < 0) {
        nas_wire_msg_init(m, NAS_MSG_FAILURE);
        m->u.failure.task_id = task->task_id;
        m->u.failure.attempt = task->attempt;
        m->u.failure.code = rc;
        snprintf(m->u.failure.reason, sizeof m->u.failure.reason, "%s", err);
    }
    pipe_send(tc->pipe, m);
    nas_free(m);
}

/* The task thread: wait for a Task, evaluate it, repeat; Disconnect ends
 * it.  It never touches the master socket (ZeroMQ sockets are not
 * thread-safe) and shares only the cancel flag with the agent. */
static void *task_main(void *arg) {
    nas_agent *a = arg;
    task_ctx tc = {a, zmq_socket(a->zctx, ZMQ_PAIR)};
    if (!tc.pipe || zmq_connect(tc.pipe, a->pipe_ep) != 0) {
        nas_error("agent: task thread cannot open its pipe: %s", zmq_strerror(zmq_errno()));
        if (tc.pipe) zmq_close(tc.pipe);
        return NULL;
    }
    /* Tell create() the pipe is connected (zactor's synchronous start). */
    nas_wire_msg hello;
    nas_wire_msg_init(&hello, NAS_MSG_HEARTBEAT);
    pipe_send(tc.pipe, &hello);
    nas_wire_packet *pkt = nas_malloc(sizeof *pkt);
    for (char err[NAS_ERR_LEN]; pkt;) {
        int rc = nas_wire_recv(tc.pipe, 0, 0, pkt, err);
        if (rc == NAS_EIO) break;
        if (rc < 0) continue;
        int type = pkt->msg.type;
        if (type == NAS_MSG_TASK) run_one(&tc, &pkt->msg.u.task);
        nas_wire_packet_fini(pkt);
        if (type == NAS_MSG_DISCONNECT) break;
    }
    nas_free(pkt);
    zmq_close(tc.pipe);
    return NULL;
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
    snprintf(a->endpoint, sizeof a->endpoint, "%s", cfg->endpoint);
    a->cfg.endpoint = a->endpoint;
    if (gethostname(a->host, sizeof a->host) != 0) snprintf(a->host, sizeof a->host, "unknown");
    a->host[sizeof a->host - 1] = 0;
    if (cfg->name)
        snprintf(a->name, sizeof a->name, "%s", cfg->name);
    else
        snprintf(a->name, sizeof a->name, "%.40s:%d", a->host, (int)getpid());
    a->cfg.name = a->name;
    snprintf(a->pipe_ep, sizeof a->pipe_ep, "inproc://nas-agent-%p", (void *)a);
    a->held = nas_calloc(NAS_WIRE_MAX_HELD, sizeof *a->held);
    a->own_zctx = !cfg->zmq_context;
    a->zctx = a->own_zctx ? zmq_ctx_new() : cfg->zmq_context;
    if (!a->held || !a->zctx || pipe2(a->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) goto fail;
    nas_zmon_config mc = {.what = "master",
                          .curve = a->curve,
                          .public_z85 = a->curve ? a->keys.public_z85 : NULL,
                          .key_file = cfg->curve_key_file,
                          .server_key_file = cfg->curve_server_key_file,
                          .key_option = "--master-key"};
    if (nas_zmon_create(&a->mon, a->zctx, &mc, err) < 0) goto fail;
    a->pipe = zmq_socket(a->zctx, ZMQ_PAIR);
    if (!a->pipe || zmq_bind(a->pipe, a->pipe_ep) != 0) goto fail;
    if (pthread_create(&a->thread, NULL, task_main, a) != 0) goto fail;
    a->thread_started = 1;
    /* Wait for the thread's hello, so that a stop right after create()
     * cannot reach the pipe before the thread listens. */
    int timeout = 5000, forever = -1;
    zmq_setsockopt(a->pipe, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    nas_wire_packet hello;
    if (nas_wire_recv(a->pipe, 0, 0, &hello, err) < 0) goto fail;
    nas_wire_packet_fini(&hello);
    zmq_setsockopt(a->pipe, ZMQ_RCVTIMEO, &forever, sizeof forever);
    *out = a;
    return NAS_OK;
fail:
    nas_set_err(err, NAS_EIO, "agent: cannot set up: %s", errno ? strerror(errno) : "zmq");
    nas_agent_destroy(&a);
    return NAS_EIO;
}

/* The cancel flag stops a running evaluation at its next check; the
 * Disconnect on the pipe then ends the thread, and join waits for it. */
void nas_agent_destroy(nas_agent **ap) {
    if (!ap || !*ap) return;
    nas_agent *a = *ap;
    if (a->thread_started) {
        atomic_store(&a->cancel, 1);
        nas_wire_msg m;
        nas_wire_msg_init(&m, NAS_MSG_DISCONNECT);
        /* The thread is connected (create waited for its hello) unless it
         * failed early and exited: never block here. */
        char err[NAS_ERR_LEN];
        nas_wire_send(a->pipe, NULL, 0, &m, NULL, 0, 1, err);
        pthread_join(a->thread, NULL);
    }
    nas_zmon_destroy(&a->mon); /* detaches: before the socket closes */
    if (a->sock) zmq_close(a->sock);
    if (a->pipe) zmq_close(a->pipe);
    if (a->zctx && a->own_zctx) zmq_ctx_term(a->zctx);
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
    if (rc < 0) nas_warn("agent: sending %s: %s", nas_wire_type_name(m->type), err);
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
    nas_info("agent: %s connecting to %s%s", a->name, a->endpoint, a->curve ? " (CurveZMQ)" : "");
    a->silent_at = now + a->cfg.heartbeat_ms * a->cfg.liveness;
    send_register(a, now);
    return NAS_OK;
}

/* Exponential backoff, as in the zguide's ppworker: a master that is down
 * for long is not hammered by every worker at once. */
static void drop_master(nas_agent *a, int64_t now, const char *why) {
    /* A known handshake failure was logged as an error already (rate
     * limited); a second line per reconnect would only bury it. */
    if (!nas_zmon_failing(a->mon))
        nas_warn("agent: %s; reconnecting in %lld ms", why, (long long)a->backoff);
    else
        nas_debug("agent: not admitted; reconnecting in %lld ms", (long long)a->backoff);
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
        pipe_send(a->pipe, m);
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
        nas_warn("agent: master says %s: %s", nas_err_name(m->u.error.code), m->u.error.message);
        /* NAS_ESTATE from the master means exactly one thing: it does not
         * know us (it restarted, or expired us), so register again. */
        if (m->u.error.code == NAS_ESTATE) send_register(a, now);
        return;
    case NAS_MSG_DISCONNECT:
        drop_master(a, now, "master disconnected");
        return;
    case NAS_MSG_HEARTBEAT:
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
    nas_wire_packet *pkt = nas_malloc(sizeof *pkt);
    char err[NAS_ERR_LEN];
    /* Bounded, so a flood from the master cannot starve the stop and task
     * pipes; what is left is read on the next turn. */
    for (int n = 0; pkt && a->sock && n < 1000; n++) {
        int rc = nas_wire_recv(a->sock, 0, 1, pkt, err);
        if (rc == NAS_EAGAIN || rc == NAS_EIO) break;
        /* Anything from the master, even garbage, shows it is alive. */
        a->silent_at = now + a->cfg.heartbeat_ms * a->cfg.liveness;
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
    nas_free(pkt);
}

/* Messages from the task thread.  While disconnected, progress is
 * dropped (it is advisory); the Result is held until acknowledged. */
static void drain_pipe(nas_agent *a, int64_t now) {
    nas_wire_packet *pkt = nas_malloc(sizeof *pkt);
    char err[NAS_ERR_LEN];
    while (pkt && nas_wire_recv(a->pipe, 0, 1, pkt, err) == NAS_OK) {
        nas_wire_msg *m = &pkt->msg;
        if (m->type == NAS_MSG_PROGRESS) {
            if (!a->stopping) to_master(a, m, now);
        } else if (m->type == NAS_MSG_RESULT || m->type == NAS_MSG_FAILURE) {
            a->busy = 0;
            /* After a give-back the master has already re-queued the task. */
            if (!a->stopping && m->type == NAS_MSG_RESULT) {
                nas_info("agent: task %" PRIu64 " done: val_acc %.4f", m->u.result.task_id,
                         m->u.result.val_acc);
                hold_result(a, &m->u.result);
                to_master(a, m, now);
                a->resend_at = now + a->cfg.heartbeat_ms * a->cfg.liveness;
            } else if (!a->stopping) {
                nas_warn("agent: task %" PRIu64 " failed: %s", m->u.failure.task_id,
                         m->u.failure.reason);
                to_master(a, m, now);
            }
        }
        nas_wire_packet_fini(pkt);
    }
    nas_free(pkt);
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

/* The agent loop: poll the stop pipe, the task pipe and the
 * master socket; then handle what arrived; then the timers. */
int nas_agent_run(nas_agent *a, char *err) {
    int64_t now = nas_now_ms();
    a->backoff = a->cfg.reconnect_min_ms;
    int rc = connect_master(a, now, err);
    if (rc < 0) return rc;
    for (;;) {
        /* The monitor pipe exists only while the socket does. */
        zmq_pollitem_t items[4] = {
            {NULL, a->stop_pipe[0], ZMQ_POLLIN, 0},
            {a->pipe, 0, ZMQ_POLLIN, 0},
            {a->sock, 0, ZMQ_POLLIN, 0},
            {nas_zmon_socket(a->mon), 0, ZMQ_POLLIN, 0},
        };
        int n_items = !a->sock ? 2 : items[3].socket ? 4 : 3;
        int64_t wait = next_deadline(a) - now;
        if (wait < 0) wait = 0;
        if (wait > a->cfg.heartbeat_ms) wait = a->cfg.heartbeat_ms;
        if (zmq_poll(items, n_items, (long)wait) < 0 && zmq_errno() != EINTR)
            return nas_set_err(err, NAS_EIO, "zmq_poll: %s", zmq_strerror(zmq_errno()));
        now = nas_now_ms();
        int stops = 0;
        if (items[0].revents & ZMQ_POLLIN) stops += read_stops(a);
        if (stops > 0) {
            a->stops += stops;
            if (a->stops >= 2 && a->stopping) {
                nas_warn("agent: second stop request: leaving at once");
                return NAS_ECANCELED;
            }
            if (!a->stopping) begin_stop(a, now);
            if (a->stops >= 2) return NAS_ECANCELED;
        }
        if (items[1].revents & ZMQ_POLLIN) drain_pipe(a, now);
        if (a->sock && (items[2].revents & ZMQ_POLLIN)) drain_master(a, now);
        if (n_items == 4 && (items[3].revents & ZMQ_POLLIN)) nas_zmon_poll(a->mon, now);
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
    }
}
