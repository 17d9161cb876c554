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

/* Who was given one lease of a task: the attempt and the worker (name,
 * host, key) that a Result or a running task in Register must match.
 * name_only: a lease resumed from a store that kept only the name. */
typedef struct dholder {
    uint32_t attempt;
    int name_only;
    nas_worker_ident who;
} dholder;

/* The newest leases of a task that may still deliver: K attempts plus a
 * few give-backs; an older holder than these is a stranger. */
#define HOLDERS_MAX 8

typedef struct dtask {
    uint64_t id;
    int used;
    int state; /* enum nas_dispatch_task_state */
    uint32_t attempt;
    int worker;          /* slot of the lease holder, -1 if none (or a resumed lease) */
    nas_wire_task *spec; /* NULL once terminal */
    dholder *holders;    /* every lease given, newest last; NULL once terminal */
    int n_holders;
} dtask;

/* With CurveZMQ, the key that first registered a name owns it. */
typedef struct dbinding {
    char name[NAS_WIRE_NAME_MAX];
    char key[NAS_WIRE_NAME_MAX];
    int64_t used_ms;
} dbinding;

typedef struct dworker {
    int used;
    uint8_t id[NAS_WIRE_ID_MAX];
    size_t id_len;
    uint32_t id_hash; /* of id: its place in the identity map */
    nas_worker_ident who;
    char version[NAS_WIRE_NAME_MAX];
    uint32_t cores;
    int joined;   /* has held a lease: a worker of the campaign, not a mere visitor */
    int occupied; /* runs a task that is not ours to track (refused a Task, or told
                   * to cancel a claimed one): idle after its next Result or Failure,
                   * which it sends without a Ready */
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
    dbinding *bindings; /* cfg.max_workers entries, least recently used replaced */
    int n_bindings;
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
    d->bindings = nas_calloc((size_t)cfg->max_workers, sizeof *d->bindings);
    if (!d->workers || !d->wmap || !d->tasks || !d->queue || !d->bindings) goto fail;
    *out = d;
    return NAS_OK;
fail:
    if (d) {
        nas_free(d->workers);
        nas_free(d->wmap);
        nas_free(d->tasks);
        nas_free(d->queue);
        nas_free(d->bindings);
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
        dtask *t = task_find(d, id);
        if (t && t->state == NAS_DISPATCH_TASK_QUEUED) return t;
    }
    return NULL;
}

/* Move a task to a terminal state and free what it no longer needs. */
static void task_finish(nas_dispatcher *d, dtask *t, int state) {
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
static void holder_add(dtask *t, uint32_t attempt, const nas_worker_ident *who, int name_only) {
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
static int holder_is(const dtask *t, uint32_t attempt, const nas_worker_ident *who) {
    for (int i = 0; i < t->n_holders; i++)
        if (t->holders[i].attempt == attempt && holder_match(&t->holders[i], who)) return 1;
    return 0;
}

static int task_live(const dtask *t) {
    return t && (t->state == NAS_DISPATCH_TASK_QUEUED || t->state == NAS_DISPATCH_TASK_LEASED);
}

// ---- sending ------------------------------------------------------------------------------

/* Every message to a worker goes through here, so whatever we send pushes
 * back the next heartbeat: a busy master does not add heartbeat traffic. */
static void send_to(nas_dispatcher *d, dworker *w, const nas_wire_msg *m, int64_t now_ms) {
    int rc = d->hooks.send(d->hooks.ctx, w->id, w->id_len, m);
    if (rc < 0)
        nas_warn("dispatcher: sending %s to %s failed: %s", nas_wire_type_name(m->type),
                 w->who.name[0] ? w->who.name : "?", nas_strerror(rc));
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

static void info_fill(const dworker *w, nas_worker_info *o) {
    memcpy(o->name, w->who.name, sizeof o->name);
    memcpy(o->host, w->who.host, sizeof o->host);
    memcpy(o->key, w->who.key, sizeof o->key);
    memcpy(o->version, w->version, sizeof o->version);
    o->cores = w->cores;
    o->joined = w->joined;
    o->state = w->state;
    o->has_task = w->has_task;
    o->task = w->task;
    o->epoch = w->epoch;
    o->epochs = w->epochs;
    o->tasks_done = w->tasks_done;
    o->last_seen_ms = w->last_seen;
    o->engine = w->engine;
}

/* Only workers that took part (held a lease) are reported: a peer that
 * merely registered leaves no trace, so a flood of registrations writes
 * nothing to the store. */
static void worker_event(nas_dispatcher *d, const dworker *w, const char *event) {
    if (!d->hooks.on_worker || !w->joined) return;
    nas_worker_info info;
    info_fill(w, &info);
    d->hooks.on_worker(d->hooks.ctx, &info, event);
}

/* A worker's first lease makes it one of the campaign's workers: logged
 * and reported once (registrations alone are logged at debug level, so
 * that a flood of them cannot fill the log). */
static void join(nas_dispatcher *d, dworker *w) {
    if (w->joined) return;
    w->joined = 1;
    nas_info("dispatcher: worker %s (%s, %u cores) joined", w->who.name, w->who.host, w->cores);
    worker_event(d, w, "joined");
}

/* Does w hold a lease (not merely run a task whose lease moved on)? */
static int holds_lease(const nas_dispatcher *d, const dworker *w) {
    if (!w->has_task) return 0;
    const dtask *t = task_find(d, w->task.task_id);
    return t && t->state == NAS_DISPATCH_TASK_LEASED && t->worker == (int)(w - d->workers);
}

/* idle_since orders the idle workers: the one idle longest gets the next
 * task, which spreads work (and heat) across hosts. */
static void worker_set_idle(nas_dispatcher *d, dworker *w, int64_t now_ms) {
    w->state = NAS_WORKER_STATE_IDLE;
    w->has_task = 0;
    w->occupied = 0;
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
    if (t->state == NAS_DISPATCH_TASK_LEASED && t->worker < 0) d->counts.held--;
    if (counted) t->attempt++;
    t->state = NAS_DISPATCH_TASK_QUEUED;
    t->worker = -1;
    d->counts.queued++;
    if (queue_push(d, t->id, 1) < 0) {
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
    worker_event(d, w, event);
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
    holder_add(t, t->attempt, &w->who, 0);
    join(d, w);
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
int nas_dispatcher_peek_lease(const nas_dispatcher *d, nas_worker_ident *who, int64_t *expiry_ms) {
    if (d->counts.queued > 0) return 0;
    const dworker *w = idle_longest(d);
    if (!w) return 0;
    *who = w->who;
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
    dispatch(d, now_ms);
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
    if (task_find(d, task->task_id))
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
    holder_add(t, task->attempt, holder, name_only);
    return NAS_OK;
}

/* The grace of a resumed lease is over: back to the queue, uncounted (the
 * worker may simply have been slow to reconnect).  1 if it was still
 * waiting for its holder, else 0. */
int nas_dispatcher_release_held(nas_dispatcher *d, uint64_t task_id, int64_t now_ms) {
    dtask *t = task_find(d, task_id);
    if (!t || t->state != NAS_DISPATCH_TASK_LEASED || t->worker >= 0) return 0;
    task_requeue(d, t, 0, NAS_ETIMEDOUT, "not delivered in time");
    dispatch(d, now_ms);
    return 1;
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
 * run elsewhere.  The same worker (nas_worker_same) with the very task the
 * old entry holds is the same process reconnected. */
static void take_over(nas_dispatcher *d, dtask *t, dworker *w, int64_t now_ms) {
    dworker *old = &d->workers[t->worker];
    if (old == w || !nas_worker_same(&old->who, &w->who)) return;
    t->worker = (int)(w - d->workers);
    w->lease_deadline = old->lease_deadline;
    w->joined = 1;
    old->has_task = 0; /* the lease has moved: removing old must not re-queue it */
    worker_remove(d, old, 0, "", "replaced");
    nas_info("dispatcher: worker %s reconnected; task %" PRIu64 " stays leased to it", w->who.name,
             t->id);
    if (d->hooks.on_lease) d->hooks.on_lease(d->hooks.ctx, &w->task, &w->who, w->expiry);
}

/* A lease resumed from a previous master (push_held) is held by nobody
 * here until its worker registers with it running: it becomes that
 * worker's lease, with no new Task sent. */
static void attach(nas_dispatcher *d, dtask *t, dworker *w, int64_t now_ms) {
    d->counts.held--;
    t->worker = (int)(w - d->workers);
    w->state = NAS_WORKER_STATE_BUSY;
    w->has_task = 1;
    w->task = (nas_task_ref){t->id, t->attempt};
    w->lease_deadline = 0;
    if (t->spec && t->spec->fidelity.time_limit_s > 0)
        w->lease_deadline = now_ms + (int64_t)(t->spec->fidelity.time_limit_s * 1500.0) +
                            d->cfg.heartbeat_ms * d->cfg.liveness;
    holder_add(t, t->attempt, &w->who, 0);
    join(d, w);
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
    dtask *t = task_find(d, run.task_id);
    if (!task_live(t) || !holder_is(t, run.attempt, &w->who)) {
        if (task_live(t))
            nas_warn("dispatcher: %s claims task %" PRIu64 " attempt %u, never leased to it; "
                     "told to cancel",
                     w->who.name, run.task_id, run.attempt);
        send_ref(d, w, NAS_MSG_CANCEL, run, 0, now_ms);
        w->occupied = 1; /* its Failure or Result makes it idle */
        return;
    }
    if (t->state == NAS_DISPATCH_TASK_QUEUED) {
        lease(d, t, w, now_ms);
        w->task = run;
    } else if (t->worker < 0) {
        attach(d, t, w, now_ms);
        w->task = run;
    } else {
        w->state = NAS_WORKER_STATE_BUSY;
        w->has_task = 1;
        w->task = run;
        take_over(d, t, w, now_ms);
    }
}

/* A worker registering from a new socket has given up its old one (it
 * reconnects after the master was silent): the old entry goes now rather
 * than at its expiry, and a lease it held goes back to the head of the
 * queue uncounted (the worker never got the Task, or gave it up), unless
 * the worker says it still runs it (on_running takes it over) or holds
 * its result (which counts when it arrives). */
static void drop_replaced(nas_dispatcher *d, dworker *w, const nas_wire_register *r) {
    for (int i = 0; i < d->n_slots; i++) {
        dworker *o = &d->workers[i];
        if (!o->used || o == w || !nas_worker_same(&o->who, &w->who)) continue;
        int keep = r->has_running && o->has_task && o->task.task_id == r->running.task_id;
        for (int k = 0; k < r->n_held && o->has_task; k++)
            keep |= r->held[k].task_id == o->task.task_id;
        if (!keep) worker_remove(d, o, 0, "its worker registered again without it", "replaced");
    }
}

/* With CurveZMQ a name belongs to the first key that registered it, for
 * the life of this master (the most recent max_workers names are kept).
 * Returns 1 when `key` may not use `name`. */
static int name_taken(nas_dispatcher *d, const char *name, const char *key, int64_t now_ms) {
    if (!key[0]) return 0;
    dbinding *lru = NULL;
    for (int i = 0; i < d->n_bindings; i++) {
        dbinding *b = &d->bindings[i];
        if (strcmp(b->name, name) == 0) {
            if (strcmp(b->key, key) != 0) return 1;
            b->used_ms = now_ms;
            return 0;
        }
        if (!lru || b->used_ms < lru->used_ms) lru = b;
    }
    dbinding *b = d->n_bindings < d->cfg.max_workers ? &d->bindings[d->n_bindings++] : lru;
    snprintf(b->name, sizeof b->name, "%s", name);
    snprintf(b->key, sizeof b->key, "%s", key);
    b->used_ms = now_ms;
    return 0;
}

/* A free slot for a new registration.  When the table is full, the entry
 * heard from longest ago among those that never held a lease and run
 * nothing makes room: a registration flood recycles its own slots while
 * the workers doing the campaign's work are never evicted. */
static dworker *slot_for_new(nas_dispatcher *d) {
    dworker *victim = NULL;
    for (int i = 0; i < d->cfg.max_workers; i++) {
        dworker *w = &d->workers[i];
        if (!w->used) {
            if (i >= d->n_slots) d->n_slots = i + 1;
            d->n_workers++;
            return w;
        }
        if (!w->joined && w->state != NAS_WORKER_STATE_BUSY &&
            (!victim || w->last_seen < victim->last_seen))
            victim = w;
    }
    if (!victim) return NULL;
    nas_debug("dispatcher: %s evicted to make room for a new registration", victim->who.name);
    worker_remove(d, victim, 0, "", "evicted");
    d->n_workers++;
    return victim;
}

static void on_register(nas_dispatcher *d, dworker *w, const uint8_t *id, size_t id_len,
                        const nas_wire_register *r, const char *key, int64_t now_ms) {
    if (name_taken(d, r->name, key, now_ms)) {
        nas_warn("dispatcher: Register as %s with key %s refused: the name belongs to another "
                 "key",
                 r->name, key);
        send_error_id(d, id, id_len, NAS_EAUTH, "the name %s belongs to another key", r->name);
        return;
    }
    if (!w) {
        w = slot_for_new(d);
        if (!w) {
            send_error_id(d, id, id_len, NAS_ENOSPC, "master is full (%d workers)",
                          d->cfg.max_workers);
            return;
        }
    } else if (holds_lease(d, w) && (!r->has_running || r->running.task_id == w->task.task_id)) {
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
        send_to(d, w, &hb, now_ms);
        return;
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
    snprintf(w->who.name, sizeof w->who.name, "%s", r->name);
    snprintf(w->who.host, sizeof w->who.host, "%s", r->host);
    snprintf(w->who.key, sizeof w->who.key, "%s", key);
    snprintf(w->version, sizeof w->version, "%s", r->version);
    w->cores = r->cores;
    w->engine = r->engine;
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
    drop_replaced(d, w, r);
    if (r->has_running) on_running(d, w, r->running, now_ms);
    /* Answer at once so the worker knows it has a live master, and where
     * the weight store is (so workers need no --weights). */
    nas_wire_msg hb;
    nas_wire_msg_init(&hb, NAS_MSG_HEARTBEAT);
    snprintf(hb.u.heartbeat.weights, sizeof hb.u.heartbeat.weights, "%s", d->weights_ep);
    send_to(d, w, &hb, now_ms);
}

/* After a Result or a Failure a worker is idle without saying Ready; so is
 * one that ran a task the master did not track (occupied).  A worker that
 * just registered and delivers held results says Ready afterwards. */
static void after_outcome(nas_dispatcher *d, dworker *w, int running_it, int64_t now_ms) {
    if (running_it || w->occupied) worker_set_idle(d, w, now_ms);
}

/* First result wins, among the task's lease holders (holder_is): a worker
 * that lost us may deliver a result for a lease we gave away since, but
 * a peer that never held the lease is refused whatever it claims. */
static void on_result(nas_dispatcher *d, dworker *w, const nas_wire_result *r, int64_t now_ms) {
    nas_task_ref ref = {r->task_id, r->attempt};
    int running_it = w->has_task && w->task.task_id == r->task_id;
    dtask *t = task_find(d, r->task_id);
    if (!task_live(t)) {
        nas_info("dispatcher: duplicate result for task %" PRIu64 " attempt %u from %s dropped",
                 r->task_id, r->attempt, w->who.name);
        send_ref(d, w, NAS_MSG_ACK, ref, 1, now_ms);
        after_outcome(d, w, running_it, now_ms);
        return;
    }
    if (!holder_is(t, r->attempt, &w->who)) {
        nas_warn("dispatcher: result for task %" PRIu64 " attempt %u from %s refused: that lease "
                 "was never given to it",
                 r->task_id, r->attempt, w->who.name);
        send_error_id(d, w->id, w->id_len, NAS_EAUTH,
                      "task %" PRIu64 " attempt %u was never leased to %s", r->task_id, r->attempt,
                      w->who.name);
        return;
    }
    if (t->state == NAS_DISPATCH_TASK_LEASED && t->worker < 0)
        nas_info("dispatcher: task %" PRIu64 " attempt %u from the previous run is back with its "
                 "worker %s, done",
                 t->id, r->attempt, w->who.name);
    if (d->hooks.on_result) {
        int rc = d->hooks.on_result(d->hooks.ctx, r, w->who.name);
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
    after_outcome(d, w, running_it, now_ms);
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
                 f->give_back ? "given back" : "failed", w->who.name, f->reason);
        task_requeue(d, t, !f->give_back, f->code, f->give_back ? "given back" : f->reason);
    }
    if (running_it && f->give_back) {
        w->state = NAS_WORKER_STATE_LEAVING;
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
    if (!holds_lease(d, w)) return;
    dtask *t = task_find(d, w->task.task_id);
    nas_warn("dispatcher: %s refused task %" PRIu64 "; re-queued", w->who.name, t->id);
    task_requeue(d, t, 0, NAS_ESTATE, "refused by worker");
    w->state = NAS_WORKER_STATE_REGISTERED;
    w->has_task = 0;
    w->lease_deadline = 0;
    w->occupied = 1;
}

/* Progress counts from the lease holder of its task only (the scheduler
 * may stop a task on it): another worker still running the task, whose
 * lease moved on, or anyone else is dropped. */
static void on_progress(nas_dispatcher *d, dworker *w, const nas_wire_progress *p) {
    if (!holds_lease(d, w) || w->task.task_id != p->task_id) return;
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
 * everything else needs a registered identity, and refreshes its liveness.
 * `key` is the CurveZMQ key that sent it ("" without). */
static void on_message(nas_dispatcher *d, const uint8_t *id, size_t id_len, const char *key,
                       const nas_wire_msg *m, int64_t now_ms) {
    dworker *w = worker_find(d, id, id_len);
    if (m->type == NAS_MSG_REGISTER) {
        on_register(d, w, id, id_len, &m->u.reg, key, now_ms);
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
        /* A worker says Ready right after its Register; one that arrives
         * while it holds a lease crossed the Task on the way and is stale
         * (a worker that drops a task says so with a Failure).  Taking it
         * at its word would give the task to a second worker while the
         * first runs it. */
        if (holds_lease(d, w)) break;
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
        nas_info("dispatcher: worker %s disconnected: %s", w->who.name, m->u.disconnect);
        worker_remove(d, w, 1, "lease expired", "left");
        break;
    case NAS_MSG_ERROR:
        nas_warn("dispatcher: worker %s reports error %s: %s", w->who.name,
                 nas_err_name(m->u.error.code), m->u.error.message);
        if (m->u.error.code == NAS_ESTATE) on_refused(d, w, now_ms);
        break;
    default:
        send_error_id(d, id, id_len, NAS_EPROTO, "a worker may not send %s",
                      nas_wire_type_name(m->type));
        break;
    }
    dispatch(d, now_ms);
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
    dworker *w = worker_find(d, id, id_len);
    if (w) {
        w->last_seen = now_ms;
        w->expiry = now_ms + d->cfg.heartbeat_ms * d->cfg.liveness;
    }
    nas_warn("dispatcher: bad message from %s: %s", w ? w->who.name : "unregistered peer", why);
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
        /* The host says which of two workers of one name it was, and the
         * lease is named: its task is about to start again elsewhere. */
        if (holds_lease(d, w))
            nas_warn("dispatcher: lease of task %" PRIu64 " expired: worker %s on %s (attempt "
                     "%u) silent for %lld ms, removed",
                     w->task.task_id, w->who.name, w->who.host, w->task.attempt,
                     (long long)(now_ms - w->last_seen));
        else
            nas_warn("dispatcher: worker %s on %s silent for %lld ms, removed", w->who.name,
                     w->who.host, (long long)(now_ms - w->last_seen));
        worker_remove(d, w, 1, "lease expired", "lost");
    }
    for (int i = 0; i < d->n_slots; i++) {
        dworker *w = &d->workers[i];
        if (!w->used || !w->has_task || !w->lease_deadline || w->lease_deadline > now_ms) continue;
        w->lease_deadline = 0;
        dtask *t = task_find(d, w->task.task_id);
        if (!t || t->state != NAS_DISPATCH_TASK_LEASED || t->worker != i) continue;
        nas_warn("dispatcher: task %" PRIu64 " on %s ran past its time limit; cancelled", t->id,
                 w->who.name);
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

void nas_dispatcher_broadcast(nas_dispatcher *d, const nas_wire_msg *m, int64_t now_ms) {
    for (int i = 0; i < d->n_slots; i++)
        if (d->workers[i].used) send_to(d, &d->workers[i], m, now_ms);
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
        if (n < cap) info_fill(w, &out[n]);
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
        len = json_str(buf, cap, len, w->who.name);
        JSON_APPEND(",\"host\":");
        len = json_str(buf, cap, len, w->who.host);
        JSON_APPEND(",\"key\":");
        len = json_str(buf, cap, len, w->who.key);
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
