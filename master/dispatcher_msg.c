/*
 * dispatcher_msg.c - what each message from a worker does to the
 * dispatcher's workers and leases (the rules are in dispatcher.h and
 * docs/PROTOCOL.md).
 */
#include "master/dispatcher_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A worker that reconnected (new socket, new identity) while running a
 * task still leased to its old, now silent, entry: move the lease to the
 * new entry and drop the old one at once.  Waiting for the old entry to
 * expire would re-queue the task, spend an attempt and start a duplicate
 * run elsewhere.  The same worker (nas_worker_same) with the very task the
 * old entry holds is the same process reconnected. */
static void take_over(nas_dispatcher *d, dtask *t, dworker *w, int64_t now_ms) {
    dworker *old = &d->workers[t->worker];
    if (old == w || !nas_worker_same(&old->who, &w->who)) return;
    t->worker = (int)(w - d->workers);
    w->lease_deadline = old->lease_deadline;
    w->joined = 1;
    old->has_task = 0; /* the lease has moved: removing old must not re-queue it */
    nas__dworker_remove(d, old, 0, "", "replaced");
    /* No on_lease: the lease (task, attempt, name, host, key) is the one
     * the store already holds; only the socket changed. */
    nas_info("dispatcher: worker %s reconnected; task %" PRIu64 " stays leased to it", w->who.name,
             t->id);
}

/* A lease resumed from a previous master (push_held) is held by nobody
 * here until its worker registers with it running: it becomes that
 * worker's lease, with no new Task sent. */
static void attach(nas_dispatcher *d, dtask *t, dworker *w, int64_t now_ms) {
    d->counts.held--;
    t->worker = (int)(w - d->workers);
    nas__dworker_set_state(d, w, NAS_WORKER_STATE_BUSY);
    w->has_task = 1;
    w->task = (nas_task_ref){t->id, t->attempt};
    w->lease_deadline = 0;
    if (t->spec && t->spec->fidelity.time_limit_s > 0)
        w->lease_deadline = now_ms + (int64_t)(t->spec->fidelity.time_limit_s * 1500.0) +
                            d->cfg.heartbeat_ms * d->cfg.liveness;
    nas__dtask_holder_add(t, t->attempt, &w->who, 0);
    nas__dworker_join(d, w);
    nas_info("dispatcher: task %" PRIu64 " attempt %u from the previous run is back with its "
             "worker %s",
             t->id, t->attempt, w->who.name);
    if (d->hooks.on_lease) d->hooks.on_lease(d->hooks.ctx, &w->task, &w->who, w->expiry);
}

/* Register says a task is still running on the worker.  Only a holder of
 * that (task, attempt) lease is believed: it gets the lease back if nobody
 * else has it (queued, or resumed and waiting for it), keeps it across
 * its own reconnection, or, as an earlier holder whose lease went to
 * another worker, may finish and deliver first.  Anyone else, and any
 * task that is over or unknown, is told to cancel. */
static void on_running(nas_dispatcher *d, dworker *w, nas_task_ref run, int64_t now_ms) {
    dtask *t = nas__dtask_find(d, run.task_id);
    if (!nas__dtask_live(t) || !nas__dtask_holder_is(t, run.attempt, &w->who)) {
        if (nas__dtask_live(t))
            NAS_PEER_LOG(d, now_ms, NAS_LOG_WARN,
                         "dispatcher: %s claims task %" PRIu64 " attempt %u, never leased to it; "
                         "told to cancel",
                         w->who.name, run.task_id, run.attempt);
        nas__dworker_send_ref(d, w, NAS_MSG_CANCEL, run, 0, now_ms);
        w->occupied = 1; /* its Failure or Result makes it idle */
        return;
    }
    if (t->state == NAS_DISPATCH_TASK_QUEUED) {
        nas__dtask_lease(d, t, w, now_ms);
        w->task = run;
    } else if (t->worker < 0) {
        attach(d, t, w, now_ms);
        w->task = run;
    } else {
        nas__dworker_set_state(d, w, NAS_WORKER_STATE_BUSY);
        w->has_task = 1;
        w->task = run;
        take_over(d, t, w, now_ms);
    }
}

/* Whether a Register says the task runs on the worker or its result is held. */
static int claims(const nas_wire_register *r, uint64_t task_id) {
    if (r->has_running && r->running.task_id == task_id) return 1;
    for (int k = 0; k < r->n_held; k++)
        if (r->held[k].task_id == task_id) return 1;
    return 0;
}

/* A lease given to worker w (its name, host and key) that its Register
 * neither runs nor holds the result of: w has lost it (a new process, or
 * one that gave it up while the master was away), and nothing will come
 * of it but its expiry.  It goes back to the head of the queue now,
 * uncounted (nothing was the task's fault), so that w, or the next idle
 * worker, trains it next.  Unless that keeps happening: a task that kills
 * the process training it (the kernel's out-of-memory killer in a worker's
 * cgroup, a crash) would otherwise go round forever between the worker and
 * its restarts under the same name (systemd, a container's restart
 * policy).  Past max_attempts such losses, each one counts as a failed
 * attempt. */
static void give_back_lost(nas_dispatcher *d, dtask *t, const dworker *w, const char *whose) {
    if (++t->lost <= d->cfg.max_attempts) {
        nas_info("dispatcher: %s came back without task %" PRIu64 " attempt %u %s; re-queued",
                 w->who.name, t->id, t->attempt, whose);
        nas__dtask_requeue(d, t, 0, NAS_ESTATE, "its worker came back without it");
        return;
    }
    char reason[200];
    snprintf(reason, sizeof reason,
             "its worker came back without it %d times (the process died training it: killed "
             "for its memory? see the worker host's kernel log)",
             t->lost);
    nas_warn("dispatcher: %s came back without task %" PRIu64 " attempt %u %s: %s; counted",
             w->who.name, t->id, t->attempt, whose, reason);
    nas__dtask_requeue(d, t, 1, NAS_ESTATE, reason);
}

/* The one rule of a worker that registers again, from a new socket: it
 * reconnected after the master was silent, or it is a new process under
 * the same name, host and key (restarted after kill -9, back after its
 * silence window, or after a master restart).  Every lease the master gave
 * that worker is looked at, wherever it lives: on an earlier entry of the
 * worker here (a live lease), or resumed from a previous master and held
 * for it (push_held, until it comes back or the grace ends).  A lease the
 * Register claims stays, for on_running to take over or re-attach, or for
 * its held result to count when it arrives; any other goes back at once
 * (give_back_lost).  An earlier entry of the worker goes with it (its
 * socket is gone), unless the Register claims its task: on_running then
 * moves a running one over (take_over), and one whose result is held
 * stays until the result counts or the entry expires.  Held leases exist
 * only after a restart, so that scan is rare. */
static void release_unclaimed(nas_dispatcher *d, const dworker *w, const nas_wire_register *r) {
    NAS__EACH_WORKER(d, i, nx) {
        dworker *o = &d->workers[i];
        if (o == w || !nas_worker_same(&o->who, &w->who)) continue;
        if (o->has_task && claims(r, o->task.task_id)) continue;
        if (o->incarnation && r->incarnation && o->incarnation != r->incarnation) {
            d->superseded[d->superseded_next] = o->incarnation;
            d->superseded_next = (d->superseded_next + 1) % NAS__SUPERSEDED_KEEP;
        }
        if (nas__dworker_holds_lease(d, o))
            give_back_lost(d, nas__dtask_find(d, o->task.task_id), w, "leased to it");
        nas__dworker_remove(d, o, 0, "", "replaced");
    }
    for (size_t i = 0; d->counts.held > 0 && i < d->cap_tasks; i++) {
        dtask *t = &d->tasks[i];
        if (t->used != 1 || t->state != NAS_DISPATCH_TASK_LEASED || t->worker >= 0 ||
            !nas__dtask_holder_is(t, t->attempt, &w->who) || claims(r, t->id))
            continue;
        give_back_lost(d, t, w, "from the previous run");
    }
}

/* A Register from a process that a newer one replaced (release_unclaimed
 * notes the incarnations it replaces), while that newer one is still
 * registered: two processes run as one worker, and each Register would
 * drop the other's lease.  The newer keeps the name; the older is refused
 * (NAS_EEXIST) and leaves.  A restarted worker is never refused: its old
 * process is gone and does not register again. */
static const dworker *name_in_use(const nas_dispatcher *d, const nas_wire_register *r,
                                  const char *key) {
    int replaced = 0;
    for (int k = 0; k < NAS__SUPERSEDED_KEEP && r->incarnation; k++)
        replaced |= d->superseded[k] == r->incarnation;
    if (!replaced) return NULL;
    nas_worker_ident who;
    snprintf(who.name, sizeof who.name, "%s", r->name);
    snprintf(who.host, sizeof who.host, "%s", r->host);
    snprintf(who.key, sizeof who.key, "%s", key);
    NAS__EACH_WORKER(d, i, nx) {
        const dworker *o = &d->workers[i];
        if (o->incarnation != r->incarnation && nas_worker_same(&o->who, &who)) return o;
    }
    return NULL;
}

/* A (re-)registration.  The heartbeat sent at the end tells the worker at
 * once that it has a live master, before its held results go out. */
static void on_register(nas_dispatcher *d, dworker *w, const uint8_t *id, size_t id_len,
                        const nas_wire_register *r, const char *key, int64_t now_ms) {
    if (nas__dworker_name_taken(d, r->name, key, now_ms)) {
        NAS_PEER_LOG(d, now_ms, NAS_LOG_WARN,
                     "dispatcher: Register as %s with key %s refused: the name belongs to "
                     "another key",
                     r->name, key);
        nas__dsend_error(d, id, id_len, NAS_EAUTH, "the name %s belongs to another key", r->name);
        return;
    }
    if (name_in_use(d, r, key)) {
        NAS_PEER_LOG(d, now_ms, NAS_LOG_WARN,
                     "dispatcher: worker %s (%s) refused: a newer process registered under that "
                     "name and runs",
                     r->name, r->host);
        nas__dsend_error(d, id, id_len, NAS_EEXIST,
                         "a newer worker process registered as %s on %s and runs", r->name,
                         r->host);
        if (w) nas__dworker_remove(d, w, 0, "its name went to a newer process", "replaced");
        return;
    }
    if (!w) {
        w = nas__dworker_slot_for_new(d);
        if (!w) {
            nas__dsend_error(d, id, id_len, NAS_ENOSPC, "master is full (%d workers)",
                             d->cfg.max_workers);
            return;
        }
    } else if (nas__dworker_holds_lease(d, w) &&
               (!r->has_running || r->running.task_id == w->task.task_id)) {
        /* The same socket registering again without naming another task:
         * its Register crossed the Task on the way (the agent registers
         * again when its heartbeats were answered "unregistered" before
         * its first Register arrived).  The lease stays; a Register that
         * says another task runs falls to the branch below. */
        w->last_seen = now_ms;
        w->expiry = now_ms + d->cfg.heartbeat_ms * d->cfg.liveness;
        nas_debug("dispatcher: %s registered again; task %" PRIu64 " stays leased to it",
                  w->who.name, w->task.task_id);
        nas_wire_msg hb;
        nas_wire_msg_init(&hb, NAS_MSG_HEARTBEAT);
        snprintf(hb.u.heartbeat.weights, sizeof hb.u.heartbeat.weights, "%s", d->weights_ep);
        nas__dworker_send(d, w, &hb, now_ms);
        return;
    } else if (w->has_task) {
        /* The same socket registering again forgot what it ran. */
        nas__dworker_remove(d, w, 0, "given back", "left");
        d->n_workers++;
    }
    if (w->used) { /* the same socket again: entered anew below */
        nas__dworker_map_del(d, w);
        nas__dworker_set_state(d, w, NAS_WORKER_STATE_REGISTERED);
    }
    int fresh = !w->used;
    memset(w, 0, sizeof *w);
    w->used = 1;
    if (fresh) nas__dworker_link(d, w);
    memcpy(w->id, id, id_len);
    w->id_len = id_len;
    nas__dworker_map_put(d, w);
    snprintf(w->who.name, sizeof w->who.name, "%s", r->name);
    snprintf(w->who.host, sizeof w->who.host, "%s", r->host);
    snprintf(w->who.key, sizeof w->who.key, "%s", key);
    snprintf(w->version, sizeof w->version, "%s", r->version);
    w->cores = r->cores;
    w->engine = r->engine;
    w->incarnation = r->incarnation;
    w->state = NAS_WORKER_STATE_REGISTERED;
    w->last_seen = now_ms;
    w->expiry = now_ms + d->cfg.heartbeat_ms * d->cfg.liveness;
    /* A worker coming back (it runs or holds something) is worth a line;
     * a bare registration only at debug level (floods). */
    if (r->has_running || r->n_held > 0)
        nas_info("dispatcher: worker %s (%s, %u cores) registered, holding %d result(s)",
                 w->who.name, w->who.host, w->cores, r->n_held);
    else
        nas_debug("dispatcher: worker %s (%s, %u cores) registered", w->who.name, w->who.host,
                  w->cores);
    release_unclaimed(d, w, r);
    if (r->has_running) on_running(d, w, r->running, now_ms);
    /* Answer at once so the worker knows it has a live master, and where
     * the weight store is (so workers need no --weights). */
    nas_wire_msg hb;
    nas_wire_msg_init(&hb, NAS_MSG_HEARTBEAT);
    snprintf(hb.u.heartbeat.weights, sizeof hb.u.heartbeat.weights, "%s", d->weights_ep);
    nas__dworker_send(d, w, &hb, now_ms);
}

/* After a Result or a Failure a worker is idle without saying Ready; so is
 * one that ran a task the master did not track (occupied).  A worker that
 * just registered and delivers held results says Ready afterwards. */
static void after_outcome(nas_dispatcher *d, dworker *w, int running_it, int64_t now_ms) {
    if (running_it || w->occupied) nas__dworker_set_idle(d, w, now_ms);
}

/* First result wins, among the task's lease holders (holder_is): a worker
 * that lost us may deliver a result for a lease we gave away since, but
 * a peer that never held the lease is refused whatever it claims. */
static void on_result(nas_dispatcher *d, dworker *w, const nas_wire_result *r, int64_t now_ms) {
    nas_task_ref ref = {r->task_id, r->attempt};
    int running_it = w->has_task && w->task.task_id == r->task_id;
    dtask *t = nas__dtask_find(d, r->task_id);
    if (!nas__dtask_live(t)) {
        NAS_PEER_LOG(d, now_ms, NAS_LOG_INFO,
                     "dispatcher: duplicate result for task %" PRIu64 " attempt %u from %s dropped",
                     r->task_id, r->attempt, w->who.name);
        nas__dworker_send_ref(d, w, NAS_MSG_ACK, ref, 1, now_ms);
        after_outcome(d, w, running_it, now_ms);
        return;
    }
    if (!nas__dtask_holder_is(t, r->attempt, &w->who)) {
        NAS_PEER_LOG(d, now_ms, NAS_LOG_WARN,
                     "dispatcher: result for task %" PRIu64 " attempt %u from %s refused: that "
                     "lease was never given to it",
                     r->task_id, r->attempt, w->who.name);
        nas__dsend_error(d, w->id, w->id_len, NAS_EAUTH,
                         "task %" PRIu64 " attempt %u was never leased to %s", r->task_id,
                         r->attempt, w->who.name);
        return;
    }
    if (t->state == NAS_DISPATCH_TASK_LEASED && t->worker < 0)
        nas_info("dispatcher: task %" PRIu64 " attempt %u from the previous run is back with its "
                 "worker %s, done",
                 t->id, r->attempt, w->who.name);
    if (d->hooks.on_result) {
        int rc = d->hooks.on_result(d->hooks.ctx, r, w->who.name);
        if (rc < 0) {
            nas__dsend_error(d, w->id, w->id_len, rc == NAS_ESTATE ? NAS_EIO : rc,
                             "result for task %" PRIu64 " not recorded: %s", r->task_id,
                             nas_strerror(rc));
            return;
        }
    }
    nas__dtask_finish(d, t, NAS_DISPATCH_TASK_DONE);
    w->tasks_done++;
    nas__dworker_send_ref(d, w, NAS_MSG_ACK, ref, 0, now_ms);
    after_outcome(d, w, running_it, now_ms);
    nas__dworker_cancel_others(d, r->task_id, w, now_ms);
}

/* Only the lease holder's Failure re-queues: a stale one (the task moved on,
 * or was cancelled) just frees the worker.  The attempt is not compared: a
 * worker re-attached after a reconnect runs an older attempt than the
 * lease's, and its Failure must still release the lease. */
static void on_failure(nas_dispatcher *d, dworker *w, const nas_wire_failure *f, int64_t now_ms) {
    int running_it = w->has_task && w->task.task_id == f->task_id;
    dtask *t = nas__dtask_find(d, f->task_id);
    if (t && t->state == NAS_DISPATCH_TASK_LEASED && t->worker == (int)(w - d->workers)) {
        nas_warn("dispatcher: task %" PRIu64 " attempt %u %s on %s: %s", f->task_id, f->attempt,
                 f->give_back ? "given back" : "failed", w->who.name, f->reason);
        nas__dtask_requeue(d, t, !f->give_back, f->code, f->give_back ? "given back" : f->reason);
    }
    if (running_it && f->give_back) {
        nas__dworker_set_state(d, w, NAS_WORKER_STATE_LEAVING);
        w->has_task = 0;
        return;
    }
    after_outcome(d, w, running_it, now_ms);
}

/* A worker answers a Task it cannot take (it is still busy with another,
 * which the master did not know about) with Error(NAS_ESTATE).  The lease
 * goes back to the queue uncounted, and the worker gets nothing more
 * until its Result or Failure shows it idle: a refused lease must never
 * sit on a worker that is not running it. */
static void on_refused(nas_dispatcher *d, dworker *w, int64_t now_ms) {
    (void)now_ms;
    if (!nas__dworker_holds_lease(d, w)) return;
    dtask *t = nas__dtask_find(d, w->task.task_id);
    nas_warn("dispatcher: %s refused task %" PRIu64 "; re-queued", w->who.name, t->id);
    nas__dtask_requeue(d, t, 0, NAS_ESTATE, "refused by worker");
    nas__dworker_set_state(d, w, NAS_WORKER_STATE_REGISTERED);
    w->has_task = 0;
    w->lease_deadline = 0;
    w->occupied = 1;
}

/* Progress counts from the lease holder of its task only (the scheduler
 * may stop a task on it): another worker still running the task, whose
 * lease moved on, or anyone else is dropped. */
static void on_progress(nas_dispatcher *d, dworker *w, const nas_wire_progress *p) {
    if (!nas__dworker_holds_lease(d, w) || w->task.task_id != p->task_id) return;
    w->epoch = p->epoch;
    w->epochs = p->epochs;
    if (d->hooks.on_progress) d->hooks.on_progress(d->hooks.ctx, p, w->who.name);
}

/* The document is sized from the worker count; names are escaped by
 * json_str, so the buffer bound is what matters. */
static void on_status(nas_dispatcher *d, const uint8_t *id, size_t id_len, int64_t now_ms) {
    /* A worker entry takes ~250 bytes before escaping; the reply must also
     * fit one envelope, so at most NAS_WIRE_MAX_ENVELOPE is tried. */
    size_t cap = 4096 + (size_t)d->n_workers * 1024;
    if (cap > NAS_WIRE_MAX_ENVELOPE - 64) cap = NAS_WIRE_MAX_ENVELOPE - 64;
    char *json = nas_malloc(cap);
    if (!json) {
        nas__dsend_error(d, id, id_len, NAS_ENOMEM, "status: out of memory");
        return;
    }
    if (nas_dispatcher_status_json(d, now_ms, json, cap) < 0) {
        nas_free(json);
        nas__dsend_error(d, id, id_len, NAS_ERANGE,
                         "status of %d workers does not fit one %u-byte message", d->n_workers,
                         NAS_WIRE_MAX_ENVELOPE);
        return;
    }
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_STATUS_REPLY);
    m.u.status_json = json;
    d->hooks.send(d->hooks.ctx, id, id_len, &m);
    nas_free(json);
}

/* Register and StatusRequest are the only messages a stranger may send;
 * everything else needs a registered identity, and refreshes its liveness.
 * `key` is the CurveZMQ key that sent it ("" without). */
static void on_message(nas_dispatcher *d, const uint8_t *id, size_t id_len, const char *key,
                       const nas_wire_msg *m, int64_t now_ms) {
    dworker *w = nas__dworker_find(d, id, id_len);
    if (m->type == NAS_MSG_REGISTER) {
        on_register(d, w, id, id_len, &m->u.reg, key, now_ms);
        nas__dispatch(d, now_ms);
        return;
    }
    if (m->type == NAS_MSG_STATUS_REQUEST) {
        on_status(d, id, id_len, now_ms);
        return;
    }
    if (!w) {
        if (m->type != NAS_MSG_DISCONNECT && m->type != NAS_MSG_ERROR)
            nas__dsend_error(d, id, id_len, NAS_ESTATE,
                             "%s from an unregistered peer: send Register",
                             nas_wire_type_name(m->type));
        return;
    }
    w->last_seen = now_ms;
    w->expiry = now_ms + d->cfg.heartbeat_ms * d->cfg.liveness;
    switch (m->type) {
    case NAS_MSG_READY:
        /* A worker says Ready right after its Register; one that arrives
         * while it holds a lease crossed the Task on the way and is stale
         * (a worker that drops a task says so with a Failure).  Taking it
         * at its word would give the task to a second worker while the
         * first runs it. */
        if (nas__dworker_holds_lease(d, w)) break;
        if (w->state != NAS_WORKER_STATE_IDLE) nas__dworker_set_idle(d, w, now_ms);
        break;
    case NAS_MSG_HEARTBEAT:
        break;
    case NAS_MSG_PROGRESS:
        on_progress(d, w, &m->u.progress);
        break;
    case NAS_MSG_RESULT:
        on_result(d, w, &m->u.result, now_ms);
        break;
    case NAS_MSG_FAILURE:
        on_failure(d, w, &m->u.failure, now_ms);
        break;
    case NAS_MSG_DISCONNECT:
        nas_info("dispatcher: worker %s disconnected: %s", w->who.name, m->u.disconnect);
        nas__dworker_remove(d, w, 1, "lease expired", "left");
        break;
    case NAS_MSG_ERROR:
        nas_warn("dispatcher: worker %s reports error %s: %s", w->who.name,
                 nas_err_name(m->u.error.code), m->u.error.message);
        if (m->u.error.code == NAS_ESTATE) on_refused(d, w, now_ms);
        break;
    default:
        nas__dsend_error(d, id, id_len, NAS_EPROTO, "a worker may not send %s",
                         nas_wire_type_name(m->type));
        break;
    }
    nas__dispatch(d, now_ms);
}

void nas_dispatcher_on_message(nas_dispatcher *d, const uint8_t *id, size_t id_len,
                               const nas_wire_msg *m, int64_t now_ms) {
    on_message(d, id, id_len, "", m, now_ms);
}

/* The peer is told what was wrong (the decoder's message names the field)
 * so a buggy worker can be fixed from its own log. */
void nas_dispatcher_on_packet(nas_dispatcher *d, const nas_wire_packet *pkt, int rc,
                              const char *err, int64_t now_ms) {
    if (rc == NAS_EAGAIN || rc == NAS_EIO) return;
    if (rc < 0) {
        nas_dispatcher_on_bad_message(d, pkt->identity, pkt->id_len, rc, err ? err : "", now_ms);
        return;
    }
    on_message(d, pkt->identity, pkt->id_len, pkt->user_id, &pkt->msg, now_ms);
}

void nas_dispatcher_on_bad_message(nas_dispatcher *d, const uint8_t *id, size_t id_len, int code,
                                   const char *why, int64_t now_ms) {
    dworker *w = nas__dworker_find(d, id, id_len);
    if (w) {
        w->last_seen = now_ms;
        w->expiry = now_ms + d->cfg.heartbeat_ms * d->cfg.liveness;
    }
    NAS_PEER_LOG(d, now_ms, NAS_LOG_WARN, "dispatcher: bad message from %s: %s",
                 w ? w->who.name : "unregistered peer", why);
    nas__dsend_error(d, id, id_len, code < 0 ? code : NAS_EPROTO, "%s", why);
}
