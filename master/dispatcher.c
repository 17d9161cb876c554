/*
 * dispatcher.c - worker table, task queue and leases (see dispatcher.h).
 *
 * Data layout.  Workers live in a slot array with stable indices (a slot
 * is reused after its worker leaves); the table is scanned linearly, which
 * is cheap at the few thousand workers a campaign may have and keeps
 * expiry and idle selection obvious.  Tasks live in an open-addressing
 * hash map keyed by task id that never deletes: a finished task keeps a
 * small record (its spec is freed) so a late duplicate is recognised.  The
 * queue is a ring of task ids; an entry whose task is no longer QUEUED
 * (leased by a re-registering worker, cancelled, finished) is skipped when
 * popped, so removal from the middle is O(1).
 */
#include "master/dispatcher.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

// ---- types -------------------------------------------------------------------------

typedef struct dtask {
    uint64_t id;
    int used;
    int state; /* enum nas_dispatch_task_state */
    uint32_t attempt;
    int worker;          /* slot of the lease holder, -1 if none */
    nas_wire_task *spec; /* NULL once terminal */
} dtask;

typedef struct dworker {
    int used;
    uint8_t id[NAS_WIRE_ID_MAX];
    size_t id_len;
    uint32_t id_hash; /* of id: its place in the identity map */
    char name[NAS_WIRE_NAME_MAX];
    char host[NAS_WIRE_HOST_MAX];
    char key[NAS_WIRE_NAME_MAX];
    uint32_t cores;
    int state;    /* enum nas_worker_state */
    int has_task; /* running task (a lease, or a task it still runs) */
    nas_task_ref task;
    int epoch, epochs;
    int tasks_done;
    int64_t last_seen, expiry, heartbeat_at, idle_since;
    int64_t lease_deadline; /* stuck-task limit of its lease, 0 = none */
    nas_wire_engine engine;
} dworker;

struct nas_dispatcher {
    nas_dispatcher_config cfg;
    nas_dispatcher_hooks hooks;
    dworker *workers; /* cfg.max_workers slots */
    int n_slots;      /* slots ever used: every scan stops here */
    int n_workers;
    /* Identity -> slot map (open addressing, linear probing; slot + 1, 0 =
     * empty), so that finding a message's sender costs O(1) instead of a
     * scan of every slot: at 64-256 workers that scan was a few percent of
     * the master's instructions per task. */
    int *wmap;
    size_t wmap_mask;
    dtask *tasks; /* hash map, cap_tasks a power of two */
    size_t cap_tasks, n_tasks;
    uint64_t *queue; /* ring of task ids */
    size_t q_cap, q_head, q_len;
    nas_dispatcher_counts counts;
    char weights_ep[NAS_WIRE_NAME_MAX * 4]; /* announced in the answer to Register; "" = none */
};

/* The campaign learns the bound endpoint after the dispatcher exists, so
 * this is a setter rather than a config field. */
int nas_dispatcher_set_weights_endpoint(nas_dispatcher *d, const char *endpoint, char *err) {
    const char *ep = endpoint ? endpoint : "";
    if (strlen(ep) >= sizeof d->weights_ep)
        return nas_set_err(err, NAS_ERANGE, "dispatcher: weights endpoint '%s' is too long", ep);
    snprintf(d->weights_ep, sizeof d->weights_ep, "%s", ep);
    return NAS_OK;
}

/* Paranoid Pirate numbers: 1 s beats, dead after 5 silent beats (DESIGN s5),
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

// ---- lifecycle -------------------------------------------------------------------------

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
    if (!d->workers || !d->wmap || !d->tasks || !d->queue) goto fail;
    *out = d;
    return NAS_OK;
fail:
    if (d) {
        nas_free(d->workers);
        nas_free(d->wmap);
        nas_free(d->tasks);
        nas_free(d->queue);
        nas_free(d);
    }
    return nas_set_err(err, NAS_ENOMEM, "dispatcher: out of memory");
}

/* Nothing is sent on destroy: the campaign decides whether workers are told
 * (Disconnect) before the master goes away. */
void nas_dispatcher_destroy(nas_dispatcher **dp) {
    if (!dp || !*dp) return;
    nas_dispatcher *d = *dp;
    for (size_t i = 0; i < d->cap_tasks; i++)
        nas_free(d->tasks[i].spec);
    nas_free(d->tasks);
    nas_free(d->workers);
    nas_free(d->wmap);
    nas_free(d->queue);
    nas_free(d);
    *dp = NULL;
}

// ---- task map and queue ----------------------------------------------------------------

/* Fibonacci hashing: campaign task ids are sequential, and the multiply
 * spreads consecutive ids over the table instead of clustering them. */
static size_t slot_of(uint64_t id, size_t cap) {
    uint64_t h = id * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 20) & (cap - 1);
}

/* Linear probing; the table is never more than half full, so the probe
 * sequence always reaches an empty slot. */
static dtask *task_find(const nas_dispatcher *d, uint64_t id) {
    for (size_t i = slot_of(id, d->cap_tasks);; i = (i + 1) & (d->cap_tasks - 1)) {
        dtask *t = &d->tasks[i];
        if (!t->used) return NULL;
        if (t->id == id) return t;
    }
}

/* Insert a new id (the caller checked it is absent); grows at half load. */
static dtask *task_insert(nas_dispatcher *d, uint64_t id) {
    if ((d->n_tasks + 1) * 2 > d->cap_tasks) {
        size_t cap = d->cap_tasks * 2;
        dtask *tab = nas_calloc(cap, sizeof *tab);
        if (!tab) return NULL;
        for (size_t i = 0; i < d->cap_tasks; i++) {
            if (!d->tasks[i].used) continue;
            size_t j = slot_of(d->tasks[i].id, cap);
            while (tab[j].used)
                j = (j + 1) & (cap - 1);
            tab[j] = d->tasks[i];
        }
        nas_free(d->tasks);
        d->tasks = tab;
        d->cap_tasks = cap;
    }
    size_t i = slot_of(id, d->cap_tasks);
    while (d->tasks[i].used)
        i = (i + 1) & (d->cap_tasks - 1);
    d->tasks[i] = (dtask){.id = id, .used = 1, .worker = -1};
    d->n_tasks++;
    return &d->tasks[i];
}

/* The ring doubles when full, unrolled into the new buffer in queue order. */
static int queue_push(nas_dispatcher *d, uint64_t id) {
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
    d->queue[(d->q_head + d->q_len) % d->q_cap] = id;
    d->q_len++;
    return NAS_OK;
}

/* Next task still QUEUED, or NULL; stale entries are dropped on the way. */
static dtask *queue_pop(nas_dispatcher *d) {
    while (d->q_len) {
        uint64_t id = d->queue[d->q_head];
        d->q_head = (d->q_head + 1) % d->q_cap;
        d->q_len--;
        dtask *t = task_find(d, id);
        if (t && t->state == NAS_DISPATCH_TASK_QUEUED) return t;
    }
    return NULL;
}

/* Move a task to a terminal state and free what it no longer needs. */
static void task_finish(nas_dispatcher *d, dtask *t, int state) {
    if (t->state == NAS_DISPATCH_TASK_QUEUED) d->counts.queued--;
    if (t->state == NAS_DISPATCH_TASK_LEASED) d->counts.leased--;
    t->state = state;
    t->worker = -1;
    nas_free(t->spec);
    t->spec = NULL;
    if (state == NAS_DISPATCH_TASK_DONE) d->counts.done++;
    if (state == NAS_DISPATCH_TASK_FAILED) d->counts.failed++;
    if (state == NAS_DISPATCH_TASK_CANCELLED) d->counts.cancelled++;
}

// ---- sending ------------------------------------------------------------------------------

/* Every message to a worker goes through here, so whatever we send pushes
 * back the next heartbeat: a busy master does not add heartbeat traffic. */
static void send_to(nas_dispatcher *d, dworker *w, const nas_wire_msg *m, int64_t now_ms) {
    int rc = d->hooks.send(d->hooks.ctx, w->id, w->id_len, m);
    if (rc < 0)
        nas_warn("dispatcher: sending %s to %s failed: %s", nas_wire_type_name(m->type),
                 w->name[0] ? w->name : "?", nas_strerror(rc));
    w->heartbeat_at = now_ms + d->cfg.heartbeat_ms;
}

static void send_error_id(nas_dispatcher *d, const uint8_t *id, size_t id_len, int code,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void send_error_id(nas_dispatcher *d, const uint8_t *id, size_t id_len, int code,
                          const char *fmt, ...) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_ERROR);
    m.u.error.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.u.error.message, sizeof m.u.error.message, fmt, ap);
    va_end(ap);
    d->hooks.send(d->hooks.ctx, id, id_len, &m);
}

/* Ack and Cancel carry only a (task id, attempt) pair. */
static void send_ref(nas_dispatcher *d, dworker *w, int type, nas_task_ref ref, int dup,
                     int64_t now_ms) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, type);
    if (type == NAS_MSG_ACK)
        m.u.ack = (nas_wire_ack){ref.task_id, ref.attempt, dup};
    else
        m.u.cancel = ref;
    send_to(d, w, &m, now_ms);
}

// ---- workers --------------------------------------------------------------------------------

/* Workers are keyed by ROUTER identity, not by name: two processes may
 * share a name, and a reconnecting worker has a new identity anyway. */
/* FNV-1a of a ZeroMQ identity. */
static uint32_t id_hash(const uint8_t *id, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ id[i]) * 16777619u;
    return h;
}

static dworker *worker_find(nas_dispatcher *d, const uint8_t *id, size_t id_len) {
    for (size_t i = id_hash(id, id_len) & d->wmap_mask;; i = (i + 1) & d->wmap_mask) {
        if (d->wmap[i] == 0) return NULL;
        dworker *w = &d->workers[d->wmap[i] - 1];
        if (w->id_len == id_len && memcmp(w->id, id, id_len) == 0) return w;
    }
}

/* Enter a used slot (its id set) into the map.  The map holds exactly the
 * used slots, and has room: it is twice the slot count. */
static void wmap_put(nas_dispatcher *d, dworker *w) {
    w->id_hash = id_hash(w->id, w->id_len);
    size_t i = w->id_hash & d->wmap_mask;
    while (d->wmap[i] != 0)
        i = (i + 1) & d->wmap_mask;
    d->wmap[i] = (int)(w - d->workers) + 1;
}

/* Take a slot out of the map (no-op if absent), then close the gap by
 * moving back every later entry of the run that may not stay behind it
 * (linear probing's deletion without tombstones). */
static void wmap_del(nas_dispatcher *d, const dworker *w) {
    int want = (int)(w - d->workers) + 1;
    size_t i = w->id_hash & d->wmap_mask;
    while (d->wmap[i] != want) {
        if (d->wmap[i] == 0) return;
        i = (i + 1) & d->wmap_mask;
    }
    for (size_t j = (i + 1) & d->wmap_mask; d->wmap[j] != 0; j = (j + 1) & d->wmap_mask) {
        size_t home = d->workers[d->wmap[j] - 1].id_hash & d->wmap_mask;
        /* The entry at j may move to i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        d->wmap[i] = d->wmap[j];
        i = j;
    }
    d->wmap[i] = 0;
}

/* idle_since orders the idle workers: the one idle longest gets the next
 * task, which spreads work (and heat) across hosts. */
static void worker_set_idle(nas_dispatcher *d, dworker *w, int64_t now_ms) {
    w->state = NAS_WORKER_STATE_IDLE;
    w->has_task = 0;
    w->lease_deadline = 0;
    w->epoch = w->epochs = 0;
    w->idle_since = now_ms;
}

/* Put a leased task back in the queue.  counted != 0 spends an attempt
 * (and may fail the task for good); a give-back keeps the attempt. */
static void task_requeue(nas_dispatcher *d, dtask *t, int counted, int code, const char *reason) {
    nas_task_ref ref = {t->id, t->attempt};
    if (counted && (int)t->attempt >= d->cfg.max_attempts) {
        nas_warn("dispatcher: task %" PRIu64 " failed for good after %u attempts: %s", t->id,
                 t->attempt, reason);
        task_finish(d, t, NAS_DISPATCH_TASK_FAILED);
        if (d->hooks.on_failed) d->hooks.on_failed(d->hooks.ctx, &ref, code, reason);
        return;
    }
    if (t->state == NAS_DISPATCH_TASK_LEASED) d->counts.leased--;
    if (counted) t->attempt++;
    t->state = NAS_DISPATCH_TASK_QUEUED;
    t->worker = -1;
    d->counts.queued++;
    if (queue_push(d, t->id) < 0) {
        /* Without room to queue it the task cannot run again: fail it
         * visibly rather than lose it. */
        task_finish(d, t, NAS_DISPATCH_TASK_FAILED);
        if (d->hooks.on_failed) d->hooks.on_failed(d->hooks.ctx, &ref, NAS_ENOMEM, "queue full");
        return;
    }
    ref.attempt = t->attempt;
    if (d->hooks.on_requeue) d->hooks.on_requeue(d->hooks.ctx, &ref, reason);
}

/* Remove a worker; a lease it held goes back to the queue. */
/* The lease is re-queued only if this worker still holds it: after a late
 * result or a re-attach another worker may hold the task by now. */
static void worker_remove(nas_dispatcher *d, dworker *w, int counted, const char *reason,
                          const char *event) {
    if (w->has_task) {
        dtask *t = task_find(d, w->task.task_id);
        if (t && t->state == NAS_DISPATCH_TASK_LEASED && t->worker == (int)(w - d->workers))
            task_requeue(d, t, counted, NAS_ETIMEDOUT, reason);
    }
    if (d->hooks.on_worker) d->hooks.on_worker(d->hooks.ctx, w->name, event);
    wmap_del(d, w);
    memset(w, 0, sizeof *w);
    d->n_workers--;
}

/* Cancel every worker other than `except` still running task_id. */
/* Used when a task ends while other workers still run it (first result
 * wins, or the campaign cancelled it): they stop wasting time on it. */
static void cancel_others(nas_dispatcher *d, uint64_t task_id, const dworker *except,
                          int64_t now_ms) {
    for (int i = 0; i < d->n_slots; i++) {
        dworker *o = &d->workers[i];
        if (o->used && o != except && o->has_task && o->task.task_id == task_id)
            send_ref(d, o, NAS_MSG_CANCEL, o->task, 0, now_ms);
    }
}

// ---- leasing ------------------------------------------------------------------------------

static dworker *idle_longest(const nas_dispatcher *d) {
    dworker *best = NULL;
    for (int i = 0; i < d->n_slots; i++) {
        dworker *w = &d->workers[i];
        if (w->used && w->state == NAS_WORKER_STATE_IDLE &&
            (!best || w->idle_since < best->idle_since))
            best = w;
    }
    return best;
}

/* Bookkeeping of one lease; the caller sends the Task (or, for a
 * re-attached worker, nothing: it is running the task already). */
static void lease(nas_dispatcher *d, dtask *t, dworker *w, int64_t now_ms) {
    d->counts.queued--;
    d->counts.leased++;
    t->state = NAS_DISPATCH_TASK_LEASED;
    t->worker = (int)(w - d->workers);
    w->state = NAS_WORKER_STATE_BUSY;
    w->has_task = 1;
    w->task = (nas_task_ref){t->id, t->attempt};
    w->epoch = w->epochs = 0;
    /* The trainer stops itself at the fidelity's time limit (NAS_ETIMEDOUT),
     * so a lease still running at 1.5 x the limit plus the liveness window
     * has a worker that heartbeats but whose task is stuck. */
    w->lease_deadline = 0;
    if (t->spec && t->spec->fidelity.time_limit_s > 0)
        w->lease_deadline = now_ms + (int64_t)(t->spec->fidelity.time_limit_s * 1500.0) +
                            d->cfg.heartbeat_ms * d->cfg.liveness;
    if (d->hooks.on_lease) d->hooks.on_lease(d->hooks.ctx, &w->task, w->name, w->expiry);
}

/* Match queued tasks with idle workers.  Called after every event that can
 * free a worker or queue a task, so a lease never waits for the next tick. */
static void dispatch(nas_dispatcher *d, int64_t now_ms) {
    while (d->counts.queued > 0) {
        dworker *w = idle_longest(d);
        if (!w) return;
        dtask *t = queue_pop(d);
        if (!t) return;
        lease(d, t, w, now_ms);
        nas_wire_msg m;
        nas_wire_msg_init(&m, NAS_MSG_TASK);
        m.u.task = *t->spec;
        m.u.task.attempt = t->attempt;
        send_to(d, w, &m, now_ms);
    }
}

/* push() leases a new task at once exactly when nothing is queued ahead
 * of it and a worker is idle: dispatch() pops the queue's head (the new
 * task) for idle_longest(), the worker named here. */
int nas_dispatcher_peek_lease(const nas_dispatcher *d, char *worker, size_t cap,
                              int64_t *expiry_ms) {
    if (d->counts.queued > 0) return 0;
    const dworker *w = idle_longest(d);
    if (!w || strlen(w->name) >= cap) return 0;
    memcpy(worker, w->name, strlen(w->name) + 1);
    *expiry_ms = w->expiry;
    return 1;
}

/* Validated here, at the campaign's door, with the wire rules: a task the
 * worker would refuse must fail where the campaign can see why. */
int nas_dispatcher_push(nas_dispatcher *d, const nas_wire_task *task, int64_t now_ms, char *err) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_TASK);
    m.u.task = *task;
    int rc = nas_wire_validate(&m, err);
    if (rc < 0) return rc;
    if (task_find(d, task->task_id))
        return nas_set_err(err, NAS_EEXIST, "task %" PRIu64 " was already pushed", task->task_id);
    nas_wire_task *spec = nas_malloc(sizeof *spec);
    if (!spec) return nas_set_err(err, NAS_ENOMEM, "dispatcher: out of memory");
    dtask *t = task_insert(d, task->task_id);
    if (!t || queue_push(d, task->task_id) < 0) {
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
    dispatch(d, now_ms);
    return NAS_OK;
}

/* A cancelled task is terminal at once; the worker's confirming Failure
 * finds it so and is not counted. */
int nas_dispatcher_cancel(nas_dispatcher *d, uint64_t task_id, int64_t now_ms) {
    dtask *t = task_find(d, task_id);
    if (!t) return NAS_ENOTFOUND;
    if (t->state != NAS_DISPATCH_TASK_QUEUED && t->state != NAS_DISPATCH_TASK_LEASED)
        return NAS_ESTATE;
    task_finish(d, t, NAS_DISPATCH_TASK_CANCELLED);
    cancel_others(d, task_id, NULL, now_ms);
    return NAS_OK;
}

// ---- inbound messages ------------------------------------------------------------------------

/* A (re-)registration.  The heartbeat sent at the end tells the worker at
 * once that it has a live master, before its held results go out. */
/* A worker that reconnected (new socket, new identity) while running a
 * task still leased to its old, now silent, entry: move the lease to the
 * new entry and drop the old one at once.  Waiting for the old entry to
 * expire would re-queue the task, spend an attempt and start a duplicate
 * run elsewhere.  Same name and host, and the very task the old entry
 * holds, make it the same worker. */
static void take_over(nas_dispatcher *d, dtask *t, dworker *w, int64_t now_ms) {
    dworker *old = &d->workers[t->worker];
    if (old == w || strcmp(old->name, w->name) != 0 || strcmp(old->host, w->host) != 0) return;
    t->worker = (int)(w - d->workers);
    w->lease_deadline = old->lease_deadline;
    old->has_task = 0; /* the lease has moved: removing old must not re-queue it */
    worker_remove(d, old, 0, "", "replaced");
    nas_info("dispatcher: worker %s reconnected; task %" PRIu64 " stays leased to it", w->name,
             t->id);
    if (d->hooks.on_lease) d->hooks.on_lease(d->hooks.ctx, &w->task, w->name, w->expiry);
}

static void on_register(nas_dispatcher *d, dworker *w, const uint8_t *id, size_t id_len,
                        const nas_wire_register *r, int64_t now_ms) {
    if (!w) {
        for (int i = 0; i < d->cfg.max_workers && !w; i++)
            if (!d->workers[i].used) w = &d->workers[i];
        if (w && w - d->workers >= d->n_slots) d->n_slots = (int)(w - d->workers) + 1;
        if (!w) {
            send_error_id(d, id, id_len, NAS_ENOSPC, "master is full (%d workers)",
                          d->cfg.max_workers);
            return;
        }
        d->n_workers++;
    } else if (w->has_task) {
        /* The same socket registering again forgot what it ran. */
        worker_remove(d, w, 0, "given back", "left");
        d->n_workers++;
    }
    if (w->used) wmap_del(d, w); /* the same socket again: entered anew below */
    memset(w, 0, sizeof *w);
    w->used = 1;
    memcpy(w->id, id, id_len);
    w->id_len = id_len;
    wmap_put(d, w);
    snprintf(w->name, sizeof w->name, "%s", r->name);
    snprintf(w->host, sizeof w->host, "%s", r->host);
    w->cores = r->cores;
    w->engine = r->engine;
    w->state = NAS_WORKER_STATE_REGISTERED;
    w->last_seen = now_ms;
    w->expiry = now_ms + d->cfg.heartbeat_ms * d->cfg.liveness;
    nas_info("dispatcher: worker %s (%s, %u cores) registered, holding %d result(s)", w->name,
             w->host, w->cores, r->n_held);
    if (d->hooks.on_worker) d->hooks.on_worker(d->hooks.ctx, w->name, "joined");
    if (r->has_running) {
        /* Still evaluating a task from before it lost us: re-attach the lease
         * if the task waits in the queue, cancel it if it is over. */
        dtask *t = task_find(d, r->running.task_id);
        w->state = NAS_WORKER_STATE_BUSY;
        w->has_task = 1;
        w->task = r->running;
        if (t && t->state == NAS_DISPATCH_TASK_QUEUED) {
            t->attempt = r->running.attempt > t->attempt ? r->running.attempt : t->attempt;
            lease(d, t, w, now_ms);
        } else if (!t || t->state != NAS_DISPATCH_TASK_LEASED) {
            send_ref(d, w, NAS_MSG_CANCEL, r->running, 0, now_ms);
        } else {
            take_over(d, t, w, now_ms);
        }
    }
    /* Answer at once so the worker knows it has a live master, and where
     * the weight store is (so workers need no --weights). */
    nas_wire_msg hb;
    nas_wire_msg_init(&hb, NAS_MSG_HEARTBEAT);
    snprintf(hb.u.heartbeat.weights, sizeof hb.u.heartbeat.weights, "%s", d->weights_ep);
    send_to(d, w, &hb, now_ms);
}

/* First result wins.  The task record, not the worker's lease, decides:
 * a worker that lost us may deliver a result for a lease we gave away. */
static void on_result(nas_dispatcher *d, dworker *w, const nas_wire_result *r, int64_t now_ms) {
    nas_task_ref ref = {r->task_id, r->attempt};
    int running_it = w->has_task && w->task.task_id == r->task_id;
    dtask *t = task_find(d, r->task_id);
    if (!t || (t->state != NAS_DISPATCH_TASK_QUEUED && t->state != NAS_DISPATCH_TASK_LEASED)) {
        nas_info("dispatcher: duplicate result for task %" PRIu64 " attempt %u from %s dropped",
                 r->task_id, r->attempt, w->name);
        send_ref(d, w, NAS_MSG_ACK, ref, 1, now_ms);
        if (running_it) worker_set_idle(d, w, now_ms);
        return;
    }
    if (d->hooks.on_result) {
        int rc = d->hooks.on_result(d->hooks.ctx, r, w->name);
        if (rc < 0) {
            send_error_id(d, w->id, w->id_len, rc == NAS_ESTATE ? NAS_EIO : rc,
                          "result for task %" PRIu64 " not recorded: %s", r->task_id,
                          nas_strerror(rc));
            return;
        }
    }
    task_finish(d, t, NAS_DISPATCH_TASK_DONE);
    w->tasks_done++;
    send_ref(d, w, NAS_MSG_ACK, ref, 0, now_ms);
    if (running_it) worker_set_idle(d, w, now_ms);
    cancel_others(d, r->task_id, w, now_ms);
}

/* Only the lease holder's Failure re-queues: a stale one (the task moved on,
 * or was cancelled) just frees the worker.  The attempt is not compared: a
 * worker re-attached after a reconnect runs an older attempt than the
 * lease's, and its Failure must still release the lease. */
static void on_failure(nas_dispatcher *d, dworker *w, const nas_wire_failure *f, int64_t now_ms) {
    int running_it = w->has_task && w->task.task_id == f->task_id;
    dtask *t = task_find(d, f->task_id);
    if (t && t->state == NAS_DISPATCH_TASK_LEASED && t->worker == (int)(w - d->workers)) {
        nas_warn("dispatcher: task %" PRIu64 " attempt %u %s on %s: %s", f->task_id, f->attempt,
                 f->give_back ? "given back" : "failed", w->name, f->reason);
        task_requeue(d, t, !f->give_back, f->code, f->give_back ? "given back" : f->reason);
    }
    if (running_it) {
        if (f->give_back) {
            w->state = NAS_WORKER_STATE_LEAVING;
            w->has_task = 0;
        } else {
            worker_set_idle(d, w, now_ms);
        }
    }
}

/* Progress for anything but the worker's current task is stale: dropped. */
static void on_progress(nas_dispatcher *d, dworker *w, const nas_wire_progress *p) {
    if (!w->has_task || w->task.task_id != p->task_id) return;
    w->epoch = p->epoch;
    w->epochs = p->epochs;
    if (d->hooks.on_progress) d->hooks.on_progress(d->hooks.ctx, p, w->name);
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
        send_error_id(d, id, id_len, NAS_ENOMEM, "status: out of memory");
        return;
    }
    if (nas_dispatcher_status_json(d, now_ms, json, cap) < 0) {
        nas_free(json);
        send_error_id(d, id, id_len, NAS_ERANGE,
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
 * everything else needs a registered identity, and refreshes its liveness. */
void nas_dispatcher_on_message(nas_dispatcher *d, const uint8_t *id, size_t id_len,
                               const nas_wire_msg *m, int64_t now_ms) {
    dworker *w = worker_find(d, id, id_len);
    if (m->type == NAS_MSG_REGISTER) {
        on_register(d, w, id, id_len, &m->u.reg, now_ms);
        dispatch(d, now_ms);
        return;
    }
    if (m->type == NAS_MSG_STATUS_REQUEST) {
        on_status(d, id, id_len, now_ms);
        return;
    }
    if (!w) {
        if (m->type != NAS_MSG_DISCONNECT && m->type != NAS_MSG_ERROR)
            send_error_id(d, id, id_len, NAS_ESTATE, "%s from an unregistered peer: send Register",
                          nas_wire_type_name(m->type));
        return;
    }
    w->last_seen = now_ms;
    w->expiry = now_ms + d->cfg.heartbeat_ms * d->cfg.liveness;
    switch (m->type) {
    case NAS_MSG_READY:
        if (w->state == NAS_WORKER_STATE_BUSY) {
            /* Ready while holding a lease: the worker no longer runs it. */
            dtask *t = task_find(d, w->task.task_id);
            if (t && t->state == NAS_DISPATCH_TASK_LEASED && t->worker == (int)(w - d->workers))
                task_requeue(d, t, 0, NAS_ESTATE, "worker dropped it");
        }
        if (w->state != NAS_WORKER_STATE_IDLE) worker_set_idle(d, w, now_ms);
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
        nas_info("dispatcher: worker %s disconnected: %s", w->name, m->u.disconnect);
        worker_remove(d, w, 1, "lease expired", "left");
        break;
    case NAS_MSG_ERROR:
        nas_warn("dispatcher: worker %s reports error %s: %s", w->name,
                 nas_err_name(m->u.error.code), m->u.error.message);
        break;
    default:
        send_error_id(d, id, id_len, NAS_EPROTO, "a worker may not send %s",
                      nas_wire_type_name(m->type));
        break;
    }
    dispatch(d, now_ms);
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
    nas_dispatcher_on_message(d, pkt->identity, pkt->id_len, &pkt->msg, now_ms);
    if (pkt->msg.type == NAS_MSG_REGISTER && pkt->user_id[0]) {
        dworker *w = worker_find(d, pkt->identity, pkt->id_len);
        if (w) snprintf(w->key, sizeof w->key, "%s", pkt->user_id);
    }
}

void nas_dispatcher_on_bad_message(nas_dispatcher *d, const uint8_t *id, size_t id_len, int code,
                                   const char *why, int64_t now_ms) {
    dworker *w = worker_find(d, id, id_len);
    if (w) {
        w->last_seen = now_ms;
        w->expiry = now_ms + d->cfg.heartbeat_ms * d->cfg.liveness;
    }
    nas_warn("dispatcher: bad message from %s: %s", w ? w->name : "unregistered peer", why);
    send_error_id(d, id, id_len, code < 0 ? code : NAS_EPROTO, "%s", why);
}

// ---- time
// ----------------------------------------------------------------------------------------

/* Order matters: expire first, so a dead worker's lease is queued before
 * dispatch looks for idle workers, and no heartbeat goes to the dead. */
void nas_dispatcher_tick(nas_dispatcher *d, int64_t now_ms) {
    for (int i = 0; i < d->n_slots; i++) {
        dworker *w = &d->workers[i];
        if (!w->used || w->expiry > now_ms) continue;
        nas_warn("dispatcher: worker %s silent for %lld ms, removed", w->name,
                 (long long)(now_ms - w->last_seen));
        worker_remove(d, w, 1, "lease expired", "lost");
    }
    for (int i = 0; i < d->n_slots; i++) {
        dworker *w = &d->workers[i];
        if (!w->used || !w->has_task || !w->lease_deadline || w->lease_deadline > now_ms) continue;
        w->lease_deadline = 0;
        dtask *t = task_find(d, w->task.task_id);
        if (!t || t->state != NAS_DISPATCH_TASK_LEASED || t->worker != i) continue;
        nas_warn("dispatcher: task %" PRIu64 " on %s ran past its time limit; cancelled", t->id,
                 w->name);
        send_ref(d, w, NAS_MSG_CANCEL, w->task, 0, now_ms);
        task_requeue(d, t, 1, NAS_ETIMEDOUT, "lease deadline passed (task stuck)");
    }
    for (int i = 0; i < d->n_slots; i++) {
        dworker *w = &d->workers[i];
        if (!w->used || w->heartbeat_at > now_ms) continue;
        nas_wire_msg hb;
        nas_wire_msg_init(&hb, NAS_MSG_HEARTBEAT);
        send_to(d, w, &hb, now_ms);
    }
    dispatch(d, now_ms);
}

/* For the campaign's timer: with no workers there is nothing to wait for. */
int64_t nas_dispatcher_next_deadline(const nas_dispatcher *d) {
    int64_t next = INT64_MAX;
    for (int i = 0; i < d->n_slots; i++) {
        const dworker *w = &d->workers[i];
        if (!w->used) continue;
        if (w->expiry < next) next = w->expiry;
        if (w->heartbeat_at < next) next = w->heartbeat_at;
        if (w->lease_deadline && w->lease_deadline < next) next = w->lease_deadline;
    }
    return next;
}

// ---- status
// ---------------------------------------------------------------------------------------

/* Task counts are kept incrementally; worker counts are counted here. */
void nas_dispatcher_counts_get(const nas_dispatcher *d, nas_dispatcher_counts *out) {
    *out = d->counts;
    out->workers = d->n_workers;
    out->idle = out->busy = 0;
    for (int i = 0; i < d->n_slots; i++) {
        if (!d->workers[i].used) continue;
        out->idle += d->workers[i].state == NAS_WORKER_STATE_IDLE;
        out->busy += d->workers[i].state == NAS_WORKER_STATE_BUSY;
    }
}

int nas_dispatcher_worker_count(const nas_dispatcher *d) {
    return d->n_workers;
}

/* Slot order, which is registration order until slots are reused. */
int nas_dispatcher_workers(const nas_dispatcher *d, nas_worker_info *out, int cap) {
    int n = 0;
    for (int i = 0; i < d->n_slots; i++) {
        const dworker *w = &d->workers[i];
        if (!w->used) continue;
        if (n < cap) {
            nas_worker_info *o = &out[n];
            memcpy(o->name, w->name, sizeof o->name);
            memcpy(o->host, w->host, sizeof o->host);
            memcpy(o->key, w->key, sizeof o->key);
            o->cores = w->cores;
            o->state = w->state;
            o->has_task = w->has_task;
            o->task = w->task;
            o->epoch = w->epoch;
            o->epochs = w->epochs;
            o->tasks_done = w->tasks_done;
            o->last_seen_ms = w->last_seen;
            o->engine = w->engine;
        }
        n++;
    }
    return n;
}

/* Append a JSON string literal (names come from peers: escape them). */
static size_t json_str(char *buf, size_t cap, size_t len, const char *s) {
    len += (size_t)snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            len += (size_t)snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0,
                                    "\\%c", c);
        else if (c < 0x20)
            len += (size_t)snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0,
                                    "\\u%04x", c);
        else
            len +=
                (size_t)snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0, "%c", c);
    }
    return len + (size_t)snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0, "\"");
}

#define JSON_APPEND(...)                                                                           \
    (len += (size_t)snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0, __VA_ARGS__))

/* "engine":{"blas":..,"blas_kernels":..,"isa":..,"blas_threads":N}: what a
 * worker computes on, as its Register said (empty strings: an older worker). */
static size_t engine_json(char *buf, size_t cap, size_t len, const nas_wire_engine *e) {
    JSON_APPEND("\"engine\":{\"blas\":");
    len = json_str(buf, cap, len, e->blas);
    JSON_APPEND(",\"blas_kernels\":");
    len = json_str(buf, cap, len, e->blas_kernels);
    JSON_APPEND(",\"isa\":");
    len = json_str(buf, cap, len, e->isa);
    JSON_APPEND(",\"blas_threads\":%u}", e->blas_threads);
    return len;
}

/* snprintf-style: the length is counted even past cap, so a caller can
 * retry with a buffer of the right size. */
int nas_dispatcher_status_json(const nas_dispatcher *d, int64_t now_ms, char *buf, size_t cap) {
    size_t len = 0;
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    JSON_APPEND("{\"workers\":[");
    int first = 1;
    for (int i = 0; i < d->n_slots; i++) {
        const dworker *w = &d->workers[i];
        if (!w->used) continue;
        JSON_APPEND("%s{\"name\":", first ? "" : ",");
        len = json_str(buf, cap, len, w->name);
        JSON_APPEND(",\"host\":");
        len = json_str(buf, cap, len, w->host);
        JSON_APPEND(",\"key\":");
        len = json_str(buf, cap, len, w->key);
        JSON_APPEND(",\"cores\":%u,\"state\":\"%s\",", w->cores, nas_worker_state_name(w->state));
        if (w->has_task)
            JSON_APPEND("\"task\":%" PRIu64 ",\"attempt\":%u,\"epoch\":%d,\"epochs\":%d,",
                        w->task.task_id, w->task.attempt, w->epoch, w->epochs);
        else
            JSON_APPEND("\"task\":null,");
        JSON_APPEND("\"tasks_done\":%d,\"last_seen_ms_ago\":%lld,", w->tasks_done,
                    (long long)(now_ms - w->last_seen));
        len = engine_json(buf, cap, len, &w->engine);
        JSON_APPEND("}");
        first = 0;
    }
    JSON_APPEND("],\"queue\":{\"queued\":%zu,\"leased\":%zu,\"done\":%zu,\"failed\":%zu,"
                "\"cancelled\":%zu},\"idle\":%d,\"busy\":%d}",
                c.queued, c.leased, c.done, c.failed, c.cancelled, c.idle, c.busy);
    if (len >= cap) return NAS_ERANGE;
    return (int)len;
}

int nas_dispatcher_task_state(const nas_dispatcher *d, uint64_t task_id, uint32_t *attempt) {
    const dtask *t = task_find(d, task_id);
    if (!t) return NAS_DISPATCH_TASK_UNKNOWN;
    if (attempt) *attempt = t->attempt;
    return t->state;
}
