/*
 * dispatcher.c - the task map, the queue, leases and who holds them, and
 * the dispatcher's clock (see dispatcher.h; the data layout is described
 * in dispatcher_internal.h).
 */
#include "master/dispatcher_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The campaign learns the bound endpoint after the dispatcher exists, so
 * this is a setter rather than a config field. */
int nas_dispatcher_set_weights_endpoint(nas_dispatcher *d, const char *endpoint, char *err) {
    const char *ep = endpoint ? endpoint : "";
    if (strlen(ep) >= sizeof d->weights_ep)
        return nas_set_err(err, NAS_ERANGE, "dispatcher: weights endpoint '%s' is too long", ep);
    snprintf(d->weights_ep, sizeof d->weights_ep, "%s", ep);
    return NAS_OK;
}

/* Paranoid Pirate numbers: 1 s beats, dead after 5 silent beats (ARCHITECTURE.md, The wire),
 * and K = 3 attempts, enough to ride out one crashed host without letting a
 * genome that always diverges eat the budget. */
void nas_dispatcher_config_default(nas_dispatcher_config *cfg) {
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 5;
    cfg->max_attempts = 3;
    cfg->max_workers = 4096;
}

const char *nas_worker_state_name(int state) {
    static const char *const names[] = {"registered", "idle", "busy", "leaving"};
    return state >= 0 && state < (int)NAS_ARRAY_LEN(names) ? names[state] : "unknown";
}

/* The worker table is allocated at its maximum size up front: slots are
 * referenced by index from leases, so they must never move. */
int nas_dispatcher_create(nas_dispatcher **out, const nas_dispatcher_config *cfg,
                          const nas_dispatcher_hooks *hooks, char *err) {
    if (!hooks || !hooks->send) return nas_set_err(err, NAS_EINVAL, "dispatcher: no send hook");
    if (cfg->heartbeat_ms < 1 || cfg->liveness < 1 || cfg->max_attempts < 1 ||
        cfg->max_workers < 1 || cfg->max_workers > 1000000)
        return nas_set_err(err, NAS_EINVAL,
                           "dispatcher: heartbeat_ms, liveness, max_attempts and max_workers "
                           "must be positive (got %lld, %d, %d, %d)",
                           (long long)cfg->heartbeat_ms, cfg->liveness, cfg->max_attempts,
                           cfg->max_workers);
    nas_dispatcher *d = nas_calloc(1, sizeof *d);
    if (!d) goto fail;
    d->cfg = *cfg;
    d->hooks = *hooks;
    d->workers = nas_calloc((size_t)cfg->max_workers, sizeof *d->workers);
    /* At most half full, so probes stay short. */
    size_t wcap = 16;
    while (wcap < 2 * (size_t)cfg->max_workers)
        wcap *= 2;
    d->wmap = nas_calloc(wcap, sizeof *d->wmap);
    d->wmap_mask = wcap - 1;
    d->cap_tasks = 1024;
    d->tasks = nas_calloc(d->cap_tasks, sizeof *d->tasks);
    d->q_cap = 1024;
    d->queue = nas_calloc(d->q_cap, sizeof *d->queue);
    d->bindings = nas_calloc((size_t)cfg->max_workers, sizeof *d->bindings);
    d->lnext = nas_malloc((size_t)cfg->max_workers * sizeof *d->lnext);
    d->lprev = nas_malloc((size_t)cfg->max_workers * sizeof *d->lprev);
    d->live_head = d->live_tail = -1;
    d->done_ring = nas_calloc(DONE_KEEP, sizeof *d->done_ring);
    if (!d->workers || !d->wmap || !d->tasks || !d->queue || !d->bindings || !d->lnext ||
        !d->lprev || !d->done_ring)
        goto fail;
    *out = d;
    return NAS_OK;
fail:
    if (d) {
        nas_free(d->workers);
        nas_free(d->wmap);
        nas_free(d->tasks);
        nas_free(d->queue);
        nas_free(d->bindings);
        nas_free(d->lnext);
        nas_free(d->lprev);
        nas_free(d->done_ring);
        nas_free(d);
    }
    return nas_set_err(err, NAS_ENOMEM, "dispatcher: out of memory");
}

/* Nothing is sent on destroy: the campaign decides whether workers are told
 * (Disconnect) before the master goes away. */
void nas_dispatcher_destroy(nas_dispatcher **dp) {
    if (!dp || !*dp) return;
    nas_dispatcher *d = *dp;
    for (size_t i = 0; i < d->cap_tasks; i++) {
        nas_free(d->tasks[i].spec);
        nas_free(d->tasks[i].holders);
    }
    nas_free(d->tasks);
    nas_free(d->bindings);
    nas_free(d->workers);
    nas_free(d->wmap);
    nas_free(d->lnext);
    nas_free(d->lprev);
    nas_free(d->done_ring);
    nas_free(d->queue);
    nas_free(d);
    *dp = NULL;
}

/* Fibonacci hashing: campaign task ids are sequential, and the multiply
 * spreads consecutive ids over the table instead of clustering them. */
static size_t slot_of(uint64_t id, size_t cap) {
    uint64_t h = id * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 20) & (cap - 1);
}

/* Linear probing over tasks and tombstones; the two together never fill
 * more than half the table, so the probe sequence always reaches an empty
 * slot. */
dtask *nas__dtask_find(const nas_dispatcher *d, uint64_t id) {
    for (size_t i = slot_of(id, d->cap_tasks);; i = (i + 1) & (d->cap_tasks - 1)) {
        dtask *t = &d->tasks[i];
        if (!t->used) return NULL;
        if (t->used == 1 && t->id == id) return t;
    }
}

/* Insert a new id (the caller checked it is absent).  At half load the
 * table is rebuilt without its tombstones, twice as large only when the
 * tasks alone fill a quarter of it: under steady churn (a task in, an old
 * record out) it keeps its size.  Records move only here, never while a
 * caller holds a dtask pointer across a finish. */
static dtask *task_insert(nas_dispatcher *d, uint64_t id) {
    if ((d->n_tasks + d->n_tomb + 1) * 2 > d->cap_tasks) {
        size_t cap = (d->n_tasks + 1) * 4 > d->cap_tasks ? d->cap_tasks * 2 : d->cap_tasks;
        dtask *tab = nas_calloc(cap, sizeof *tab);
        if (!tab) return NULL;
        for (size_t i = 0; i < d->cap_tasks; i++) {
            if (d->tasks[i].used != 1) continue;
            size_t j = slot_of(d->tasks[i].id, cap);
            while (tab[j].used)
                j = (j + 1) & (cap - 1);
            tab[j] = d->tasks[i];
        }
        nas_free(d->tasks);
        d->tasks = tab;
        d->cap_tasks = cap;
        d->n_tomb = 0;
    }
    size_t i = slot_of(id, d->cap_tasks);
    while (d->tasks[i].used == 1)
        i = (i + 1) & (d->cap_tasks - 1);
    if (d->tasks[i].used == 2) d->n_tomb--;
    d->tasks[i] = (dtask){.id = id, .used = 1, .worker = -1};
    d->n_tasks++;
    return &d->tasks[i];
}

/* A task just finished joins the ring of recent ones; the oldest there
 * leaves the map (a tombstone keeps the probe sequences of others whole,
 * and no record moves, so the caller's pointers stay valid). */
static void done_keep(nas_dispatcher *d, uint64_t id) {
    if (d->done_len == DONE_KEEP) {
        dtask *old = nas__dtask_find(d, d->done_ring[d->done_head]);
        if (old) {
            *old = (dtask){.used = 2, .worker = -1};
            d->n_tasks--;
            d->n_tomb++;
        }
        d->done_head = (d->done_head + 1) % DONE_KEEP;
        d->done_len--;
    }
    d->done_ring[(d->done_head + d->done_len) % DONE_KEEP] = id;
    d->done_len++;
}

/* The ring doubles when full, unrolled into the new buffer in queue order.
 * `front`: a task that comes back goes ahead of those queued after it was
 * first given out, so that one worker sees the order an uninterrupted run
 * sees (the exact-resume promise, USER-GUIDE.md s3). */
static int queue_push(nas_dispatcher *d, uint64_t id, int front) {
    if (d->q_len == d->q_cap) {
        uint64_t *q = nas_malloc(d->q_cap * 2 * sizeof *q);
        if (!q) return NAS_ENOMEM;
        for (size_t i = 0; i < d->q_len; i++)
            q[i] = d->queue[(d->q_head + i) % d->q_cap];
        nas_free(d->queue);
        d->queue = q;
        d->q_cap *= 2;
        d->q_head = 0;
    }
    if (front) {
        d->q_head = (d->q_head + d->q_cap - 1) % d->q_cap;
        d->queue[d->q_head] = id;
    } else {
        d->queue[(d->q_head + d->q_len) % d->q_cap] = id;
    }
    d->q_len++;
    return NAS_OK;
}

/* Next task still QUEUED, or NULL; stale entries are dropped on the way. */
static dtask *queue_pop(nas_dispatcher *d) {
    while (d->q_len) {
        uint64_t id = d->queue[d->q_head];
        d->q_head = (d->q_head + 1) % d->q_cap;
        d->q_len--;
        dtask *t = nas__dtask_find(d, id);
        if (t && t->state == NAS_DISPATCH_TASK_QUEUED) return t;
    }
    return NULL;
}

/* Move a task to a terminal state and free what it no longer needs. */
void nas__dtask_finish(nas_dispatcher *d, dtask *t, int state) {
    if (t->state == NAS_DISPATCH_TASK_LEASED && t->worker < 0) d->counts.held--;
    if (t->state == NAS_DISPATCH_TASK_QUEUED) d->counts.queued--;
    if (t->state == NAS_DISPATCH_TASK_LEASED) d->counts.leased--;
    t->state = state;
    t->worker = -1;
    nas_free(t->spec);
    t->spec = NULL;
    nas_free(t->holders);
    t->holders = NULL;
    t->n_holders = 0;
    if (state == NAS_DISPATCH_TASK_DONE) d->counts.done++;
    if (state == NAS_DISPATCH_TASK_FAILED) d->counts.failed++;
    if (state == NAS_DISPATCH_TASK_CANCELLED) d->counts.cancelled++;
    done_keep(d, t->id);
}

int nas_worker_same(const nas_worker_ident *a, const nas_worker_ident *b) {
    return strcmp(a->name, b->name) == 0 && strcmp(a->host, b->host) == 0 &&
           strcmp(a->key, b->key) == 0;
}

/* Does holder h stand for worker `who`? */
static int holder_match(const dholder *h, const nas_worker_ident *who) {
    return h->name_only ? strcmp(h->who.name, who->name) == 0 : nas_worker_same(&h->who, who);
}

/* Remember that `who` was given lease `attempt` of t.  The oldest record
 * goes when the list is full; out of memory, the holder is simply not
 * remembered and a late result of it is refused (it is resent and refused
 * again, never counted twice). */
void nas__dtask_holder_add(dtask *t, uint32_t attempt, const nas_worker_ident *who, int name_only) {
    for (int i = 0; i < t->n_holders; i++)
        if (t->holders[i].attempt == attempt && t->holders[i].name_only == name_only &&
            holder_match(&t->holders[i], who))
            return;
    if (!t->holders) t->holders = nas_calloc(HOLDERS_MAX, sizeof *t->holders);
    if (!t->holders) return;
    if (t->n_holders == HOLDERS_MAX) {
        memmove(t->holders, t->holders + 1, (HOLDERS_MAX - 1) * sizeof *t->holders);
        t->n_holders--;
    }
    dholder *h = &t->holders[t->n_holders++];
    h->attempt = attempt;
    h->name_only = name_only;
    h->who = *who;
}

/* The one ownership rule: a Result, or a task a Register says is still
 * running, counts only from the worker (nas_worker_same) that was given that
 * very (task, attempt) lease: the holder now, or an earlier holder whose
 * lease expired and was given to another.  Nobody else, whatever it
 * claims, and a name alone proves nothing. */
int nas__dtask_holder_is(const dtask *t, uint32_t attempt, const nas_worker_ident *who) {
    for (int i = 0; i < t->n_holders; i++)
        if (t->holders[i].attempt == attempt && holder_match(&t->holders[i], who)) return 1;
    return 0;
}

int nas__dtask_live(const dtask *t) {
    return t && (t->state == NAS_DISPATCH_TASK_QUEUED || t->state == NAS_DISPATCH_TASK_LEASED);
}

/* Put a leased task back in the queue.  counted != 0 spends an attempt
 * (and may fail the task for good); a give-back keeps the attempt. */
void nas__dtask_requeue(nas_dispatcher *d, dtask *t, int counted, int code, const char *reason) {
    nas_task_ref ref = {t->id, t->attempt};
    if (counted && (int)t->attempt >= d->cfg.max_attempts) {
        nas_warn("dispatcher: task %" PRIu64 " failed for good after %u attempts: %s", t->id,
                 t->attempt, reason);
        nas__dtask_finish(d, t, NAS_DISPATCH_TASK_FAILED);
        if (d->hooks.on_failed) d->hooks.on_failed(d->hooks.ctx, &ref, code, reason);
        return;
    }
    if (t->state == NAS_DISPATCH_TASK_LEASED) d->counts.leased--;
    if (t->state == NAS_DISPATCH_TASK_LEASED && t->worker < 0) d->counts.held--;
    if (counted) t->attempt++;
    t->state = NAS_DISPATCH_TASK_QUEUED;
    t->worker = -1;
    d->counts.queued++;
    if (queue_push(d, t->id, 1) < 0) {
        /* Without room to queue it the task cannot run again: fail it
         * visibly rather than lose it. */
        nas__dtask_finish(d, t, NAS_DISPATCH_TASK_FAILED);
        if (d->hooks.on_failed) d->hooks.on_failed(d->hooks.ctx, &ref, NAS_ENOMEM, "queue full");
        return;
    }
    ref.attempt = t->attempt;
    if (d->hooks.on_requeue) d->hooks.on_requeue(d->hooks.ctx, &ref, reason);
}

/* Of equals, the first in slot order. */
static dworker *idle_longest(const nas_dispatcher *d) {
    dworker *best = NULL;
    NAS__EACH_WORKER(d, i, nx) {
        dworker *w = &d->workers[i];
        if (w->state == NAS_WORKER_STATE_IDLE && (!best || w->idle_since < best->idle_since))
            best = w;
    }
    return best;
}

/* Bookkeeping of one lease; the caller sends the Task (or, for a
 * re-attached worker, nothing: it is running the task already). */
void nas__dtask_lease(nas_dispatcher *d, dtask *t, dworker *w, int64_t now_ms) {
    d->counts.queued--;
    d->counts.leased++;
    t->state = NAS_DISPATCH_TASK_LEASED;
    t->worker = (int)(w - d->workers);
    nas__dworker_set_state(d, w, NAS_WORKER_STATE_BUSY);
    w->has_task = 1;
    w->task = (nas_task_ref){t->id, t->attempt};
    w->epoch = w->epochs = 0;
    nas__dtask_holder_add(t, t->attempt, &w->who, 0);
    nas__dworker_join(d, w);
    /* The trainer stops itself at the fidelity's time limit (NAS_ETIMEDOUT),
     * so a lease still running at 1.5 x the limit plus the liveness window
     * has a worker that heartbeats but whose task is stuck. */
    w->lease_deadline = 0;
    if (t->spec && t->spec->fidelity.time_limit_s > 0)
        w->lease_deadline = now_ms + (int64_t)(t->spec->fidelity.time_limit_s * 1500.0) +
                            d->cfg.heartbeat_ms * d->cfg.liveness;
    if (d->hooks.on_lease) d->hooks.on_lease(d->hooks.ctx, &w->task, &w->who, w->expiry);
}

/* Match queued tasks with idle workers.  Called after every event that can
 * free a worker or queue a task, so a lease never waits for the next tick. */
void nas__dispatch(nas_dispatcher *d, int64_t now_ms) {
    while (d->counts.queued > 0 && !d->holding) {
        dworker *w = idle_longest(d);
        if (!w) return;
        dtask *t = queue_pop(d);
        if (!t) return;
        nas__dtask_lease(d, t, w, now_ms);
        nas_wire_msg m;
        nas_wire_msg_init(&m, NAS_MSG_TASK);
        m.u.task = *t->spec;
        m.u.task.attempt = t->attempt;
        nas__dworker_send(d, w, &m, now_ms);
    }
}

/* push() leases a new task at once exactly when nothing is queued ahead
 * of it and a worker is idle: nas__dispatch() pops the queue's head (the new
 * task) for idle_longest(), the worker named here. */
int nas_dispatcher_peek_lease(const nas_dispatcher *d, nas_worker_ident *who, int64_t *expiry_ms) {
    if (d->counts.queued > 0 || d->holding) return 0;
    const dworker *w = idle_longest(d);
    if (!w) return 0;
    *who = w->who;
    *expiry_ms = w->expiry;
    return 1;
}

void nas_dispatcher_hold(nas_dispatcher *d, int hold) {
    d->holding = hold != 0;
}

/* Validated here, at the campaign's door, with the wire rules: a task the
 * worker would refuse must fail where the campaign can see why. */
int nas_dispatcher_push(nas_dispatcher *d, const nas_wire_task *task, int64_t now_ms, char *err) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_TASK);
    m.u.task = *task;
    int rc = nas_wire_validate(&m, err);
    if (rc < 0) return rc;
    if (nas__dtask_find(d, task->task_id))
        return nas_set_err(err, NAS_EEXIST, "task %" PRIu64 " was already pushed", task->task_id);
    nas_wire_task *spec = nas_malloc(sizeof *spec);
    if (!spec) return nas_set_err(err, NAS_ENOMEM, "dispatcher: out of memory");
    dtask *t = task_insert(d, task->task_id);
    if (!t || queue_push(d, task->task_id, 0) < 0) {
        /* An inserted record without a queue entry stays as a QUEUED ghost
         * only if we leave it; mark it failed instead. */
        if (t) t->state = NAS_DISPATCH_TASK_FAILED;
        nas_free(spec);
        return nas_set_err(err, NAS_ENOMEM, "dispatcher: out of memory");
    }
    *spec = *task;
    t->spec = spec;
    t->attempt = task->attempt;
    t->state = NAS_DISPATCH_TASK_QUEUED;
    d->counts.queued++;
    nas__dispatch(d, now_ms);
    return NAS_OK;
}

/* A lease from a previous master: the task enters leased to nobody here,
 * with `holder` remembered as the holder of its attempt, and is given to
 * no other worker until nas_dispatcher_release_held() (the campaign's
 * grace ends) or its holder comes back: Register with it running
 * re-attaches it, and the holder's Result counts. */
int nas_dispatcher_push_held(nas_dispatcher *d, const nas_wire_task *task,
                             const nas_worker_ident *holder, int name_only, char *err) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_TASK);
    m.u.task = *task;
    int rc = nas_wire_validate(&m, err);
    if (rc < 0) return rc;
    if (!holder || !holder->name[0])
        return nas_set_err(err, NAS_EINVAL, "task %" PRIu64 ": a held lease needs its holder",
                           task->task_id);
    if (nas__dtask_find(d, task->task_id))
        return nas_set_err(err, NAS_EEXIST, "task %" PRIu64 " was already pushed", task->task_id);
    nas_wire_task *spec = nas_malloc(sizeof *spec);
    dtask *t = spec ? task_insert(d, task->task_id) : NULL;
    if (!t) {
        nas_free(spec);
        return nas_set_err(err, NAS_ENOMEM, "dispatcher: out of memory");
    }
    *spec = *task;
    t->spec = spec;
    t->attempt = task->attempt;
    t->state = NAS_DISPATCH_TASK_LEASED;
    t->worker = -1;
    d->counts.leased++;
    d->counts.held++;
    nas__dtask_holder_add(t, task->attempt, holder, name_only);
    return NAS_OK;
}

/* The grace of a resumed lease is over: back to the queue, uncounted (the
 * worker may simply have been slow to reconnect).  1 if it was still
 * waiting for its holder, else 0. */
int nas_dispatcher_release_held(nas_dispatcher *d, uint64_t task_id, int64_t now_ms) {
    dtask *t = nas__dtask_find(d, task_id);
    if (!t || t->state != NAS_DISPATCH_TASK_LEASED || t->worker >= 0) return 0;
    nas__dtask_requeue(d, t, 0, NAS_ETIMEDOUT, "not delivered in time");
    nas__dispatch(d, now_ms);
    return 1;
}

/* A cancelled task is terminal at once; the worker's confirming Failure
 * finds it so and is not counted. */
int nas_dispatcher_cancel(nas_dispatcher *d, uint64_t task_id, int64_t now_ms) {
    dtask *t = nas__dtask_find(d, task_id);
    if (!t) return NAS_ENOTFOUND;
    if (t->state != NAS_DISPATCH_TASK_QUEUED && t->state != NAS_DISPATCH_TASK_LEASED)
        return NAS_ESTATE;
    nas__dtask_finish(d, t, NAS_DISPATCH_TASK_CANCELLED);
    nas__dworker_cancel_others(d, task_id, NULL, now_ms);
    return NAS_OK;
}

/* Order matters: expire first, so a dead worker's lease is queued before
 * dispatch looks for idle workers, and no heartbeat goes to the dead. */
void nas_dispatcher_tick(nas_dispatcher *d, int64_t now_ms) {
    NAS__EACH_WORKER(d, i, nx) {
        dworker *w = &d->workers[i];
        if (w->expiry > now_ms) continue;
        /* The host says which of two workers of one name it was, and the
         * lease is named: its task is about to start again elsewhere. */
        if (nas__dworker_holds_lease(d, w))
            nas_warn("dispatcher: worker %s silent for %lld ms (host %s), removed; its lease of "
                     "task %" PRIu64 " expired (attempt %u)",
                     w->who.name, (long long)(now_ms - w->last_seen), w->who.host, w->task.task_id,
                     w->task.attempt);
        else if (w->joined)
            nas_warn("dispatcher: worker %s silent for %lld ms (host %s), removed", w->who.name,
                     (long long)(now_ms - w->last_seen), w->who.host);
        else /* a visitor that never took work: a flood writes one each */
            NAS_PEER_LOG(d, now_ms, NAS_LOG_INFO,
                         "dispatcher: worker %s silent for %lld ms (host %s), removed", w->who.name,
                         (long long)(now_ms - w->last_seen), w->who.host);
        nas__dworker_remove(d, w, 1, "lease expired", "lost");
    }
    NAS__EACH_WORKER(d, i, nx) {
        dworker *w = &d->workers[i];
        if (!w->has_task || !w->lease_deadline || w->lease_deadline > now_ms) continue;
        w->lease_deadline = 0;
        dtask *t = nas__dtask_find(d, w->task.task_id);
        if (!t || t->state != NAS_DISPATCH_TASK_LEASED || t->worker != i) continue;
        nas_warn("dispatcher: task %" PRIu64 " on %s ran past its time limit; cancelled", t->id,
                 w->who.name);
        nas__dworker_send_ref(d, w, NAS_MSG_CANCEL, w->task, 0, now_ms);
        nas__dtask_requeue(d, t, 1, NAS_ETIMEDOUT, "lease deadline passed (task stuck)");
    }
    NAS__EACH_WORKER(d, i, nx) {
        dworker *w = &d->workers[i];
        if (w->heartbeat_at > now_ms) continue;
        nas_wire_msg hb;
        nas_wire_msg_init(&hb, NAS_MSG_HEARTBEAT);
        nas__dworker_send(d, w, &hb, now_ms);
    }
    nas__dispatch(d, now_ms);
}

/* For the campaign's timer: with no workers there is nothing to wait for. */
int64_t nas_dispatcher_next_deadline(const nas_dispatcher *d) {
    int64_t next = INT64_MAX;
    NAS__EACH_WORKER(d, i, nx) {
        const dworker *w = &d->workers[i];
        if (w->expiry < next) next = w->expiry;
        if (w->heartbeat_at < next) next = w->heartbeat_at;
        if (w->lease_deadline && w->lease_deadline < next) next = w->lease_deadline;
    }
    return next;
}

int nas_dispatcher_task_state(const nas_dispatcher *d, uint64_t task_id, uint32_t *attempt) {
    const dtask *t = nas__dtask_find(d, task_id);
    if (!t) return NAS_DISPATCH_TASK_UNKNOWN;
    if (attempt) *attempt = t->attempt;
    return t->state;
}
