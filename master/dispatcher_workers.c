/*
 * dispatcher_workers.c - the dispatcher's worker table (an identity map
 * over stable slots), everything it sends, and the status snapshot.
 */
#include "master/dispatcher_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Every message to a worker goes through here, so whatever we send pushes
 * back the next heartbeat: a busy master does not add heartbeat traffic. */
void nas__dworker_send(nas_dispatcher *d, dworker *w, const nas_wire_msg *m, int64_t now_ms) {
    int rc = d->hooks.send(d->hooks.ctx, w->id, w->id_len, m);
    if (rc < 0)
        nas_warn("dispatcher: sending %s to %s failed: %s", nas_wire_type_name(m->type),
                 w->who.name[0] ? w->who.name : "?", nas_strerror(rc));
    w->heartbeat_at = now_ms + d->cfg.heartbeat_ms;
}

void nas__dsend_error(nas_dispatcher *d, const uint8_t *id, size_t id_len, int code,
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
void nas__dworker_send_ref(nas_dispatcher *d, dworker *w, int type, nas_task_ref ref, int dup,
                           int64_t now_ms) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, type);
    if (type == NAS_MSG_ACK)
        m.u.ack = (nas_wire_ack){ref.task_id, ref.attempt, dup};
    else
        m.u.cancel = ref;
    nas__dworker_send(d, w, &m, now_ms);
}

/* Workers are keyed by ROUTER identity, not by name: two processes may
 * share a name, and a reconnecting worker has a new identity anyway. */
/* FNV-1a of a ZeroMQ identity. */
static uint32_t id_hash(const uint8_t *id, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ id[i]) * 16777619u;
    return h;
}

dworker *nas__dworker_find(nas_dispatcher *d, const uint8_t *id, size_t id_len) {
    for (size_t i = id_hash(id, id_len) & d->wmap_mask;; i = (i + 1) & d->wmap_mask) {
        if (d->wmap[i] == 0) return NULL;
        dworker *w = &d->workers[d->wmap[i] - 1];
        if (w->id_len == id_len && memcmp(w->id, id, id_len) == 0) return w;
    }
}

/* Enter a used slot (its id set) into the map.  The map holds exactly the
 * used slots, and has room: it is twice the slot count. */
void nas__dworker_map_put(nas_dispatcher *d, dworker *w) {
    w->id_hash = id_hash(w->id, w->id_len);
    size_t i = w->id_hash & d->wmap_mask;
    while (d->wmap[i] != 0)
        i = (i + 1) & d->wmap_mask;
    d->wmap[i] = (int)(w - d->workers) + 1;
}

/* Take a slot out of the map (no-op if absent), then close the gap by
 * moving back every later entry of the run that may not stay behind it
 * (linear probing's deletion without tombstones). */
void nas__dworker_map_del(nas_dispatcher *d, const dworker *w) {
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

/* Link a slot that just became used into the list of used slots, in slot
 * order.  New registrations take the lowest free slot, which while a flood
 * fills the table is past every used one: appending is the common case. */
void nas__dworker_link(nas_dispatcher *d, const dworker *w) {
    int i = (int)(w - d->workers), prev = d->live_tail;
    while (prev > i)
        prev = d->lprev[prev];
    int next = prev >= 0 ? d->lnext[prev] : d->live_head;
    d->lprev[i] = prev;
    d->lnext[i] = next;
    if (prev >= 0)
        d->lnext[prev] = i;
    else
        d->live_head = i;
    if (next >= 0)
        d->lprev[next] = i;
    else
        d->live_tail = i;
}

static void unlink_slot(nas_dispatcher *d, int i) {
    int prev = d->lprev[i], next = d->lnext[i];
    if (prev >= 0)
        d->lnext[prev] = next;
    else
        d->live_head = next;
    if (next >= 0)
        d->lprev[next] = prev;
    else
        d->live_tail = prev;
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
void nas__dworker_event(nas_dispatcher *d, const dworker *w, const char *event) {
    if (!d->hooks.on_worker || !w->joined) return;
    nas_worker_info info;
    info_fill(w, &info);
    d->hooks.on_worker(d->hooks.ctx, &info, event);
}

/* A worker's first lease makes it one of the campaign's workers: logged
 * and reported once (registrations alone are logged at debug level, so
 * that a flood of them cannot fill the log). */
void nas__dworker_join(nas_dispatcher *d, dworker *w) {
    if (w->joined) return;
    w->joined = 1;
    nas_info("dispatcher: worker %s (%s, %u cores) joined", w->who.name, w->who.host, w->cores);
    nas__dworker_event(d, w, "joined");
}

/* Does w hold a lease (not merely run a task whose lease moved on)? */
int nas__dworker_holds_lease(const nas_dispatcher *d, const dworker *w) {
    if (!w->has_task) return 0;
    const dtask *t = nas__dtask_find(d, w->task.task_id);
    return t && t->state == NAS_DISPATCH_TASK_LEASED && t->worker == (int)(w - d->workers);
}

static int ready_state(int state) {
    return state == NAS_WORKER_STATE_IDLE || state == NAS_WORKER_STATE_BUSY;
}

/* Every change of a worker's state goes through here (a slot is cleared
 * only after its state went back to REGISTERED), so n_ready stays exact. */
void nas__dworker_set_state(nas_dispatcher *d, dworker *w, int state) {
    d->n_ready += ready_state(state) - ready_state(w->state);
    w->state = state;
}

/* idle_since orders the idle workers: the one idle longest gets the next
 * task, which spreads work (and heat) across hosts. */
void nas__dworker_set_idle(nas_dispatcher *d, dworker *w, int64_t now_ms) {
    nas__dworker_set_state(d, w, NAS_WORKER_STATE_IDLE);
    w->has_task = 0;
    w->occupied = 0;
    w->lease_deadline = 0;
    w->epoch = w->epochs = 0;
    w->idle_since = now_ms;
}

/* Remove a worker; a lease it held goes back to the queue. */
/* The lease is re-queued only if this worker still holds it: after a late
 * result or a re-attach another worker may hold the task by now. */
void nas__dworker_remove(nas_dispatcher *d, dworker *w, int counted, const char *reason,
                         const char *event) {
    if (w->has_task) {
        dtask *t = nas__dtask_find(d, w->task.task_id);
        if (t && t->state == NAS_DISPATCH_TASK_LEASED && t->worker == (int)(w - d->workers))
            nas__dtask_requeue(d, t, counted, NAS_ETIMEDOUT, reason);
    }
    nas__dworker_event(d, w, event);
    nas__dworker_map_del(d, w);
    nas__dworker_set_state(d, w, NAS_WORKER_STATE_REGISTERED);
    unlink_slot(d, (int)(w - d->workers));
    memset(w, 0, sizeof *w);
    d->n_workers--;
}

/* Cancel every worker other than `except` still running task_id. */
/* Used when a task ends while other workers still run it (first result
 * wins, or the campaign cancelled it): they stop wasting time on it. */
void nas__dworker_cancel_others(nas_dispatcher *d, uint64_t task_id, const dworker *except,
                                int64_t now_ms) {
    NAS__EACH_WORKER(d, i, nx) {
        dworker *o = &d->workers[i];
        if (o != except && o->has_task && o->task.task_id == task_id)
            nas__dworker_send_ref(d, o, NAS_MSG_CANCEL, o->task, 0, now_ms);
    }
}

/* With CurveZMQ a name belongs to the first key that registered it.  The
 * most recent max_workers names are kept here; a name that took work is
 * also bound in the store (the name_key hook), which outlives this master
 * and this table's evictions.  Returns 1 when `key` may not use `name`. */
int nas__dworker_name_taken(nas_dispatcher *d, const char *name, const char *key, int64_t now_ms) {
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
    char owner[NAS_WIRE_NAME_MAX] = "";
    int bound = d->hooks.name_key ? d->hooks.name_key(d->hooks.ctx, name, owner, sizeof owner) : 0;
    if (bound < 0) return 1;
    dbinding *b = d->n_bindings < d->cfg.max_workers ? &d->bindings[d->n_bindings++] : lru;
    snprintf(b->name, sizeof b->name, "%s", name);
    snprintf(b->key, sizeof b->key, "%s", bound ? owner : key);
    b->used_ms = now_ms;
    return strcmp(b->key, key) != 0;
}

/* A free slot for a new registration.  When the table is full, the entry
 * heard from longest ago among those that never held a lease and run
 * nothing makes room: a registration flood recycles its own slots while
 * the workers doing the campaign's work are never evicted. */
dworker *nas__dworker_slot_for_new(nas_dispatcher *d) {
    dworker *victim = NULL;
    for (int i = 0; i < d->cfg.max_workers; i++) {
        dworker *w = &d->workers[i];
        if (!w->used) {
            d->n_workers++;
            return w;
        }
        if (!w->joined && w->state != NAS_WORKER_STATE_BUSY &&
            (!victim || w->last_seen < victim->last_seen))
            victim = w;
    }
    if (!victim) return NULL;
    nas_debug("dispatcher: %s evicted to make room for a new registration", victim->who.name);
    nas__dworker_remove(d, victim, 0, "", "evicted");
    d->n_workers++;
    return victim;
}

/* Task counts are kept incrementally; worker counts are counted here. */
void nas_dispatcher_counts_get(const nas_dispatcher *d, nas_dispatcher_counts *out) {
    *out = d->counts;
    out->workers = d->n_workers;
    out->idle = out->busy = 0;
    NAS__EACH_WORKER(d, i, nx) {
        out->idle += d->workers[i].state == NAS_WORKER_STATE_IDLE;
        out->busy += d->workers[i].state == NAS_WORKER_STATE_BUSY;
    }
}

void nas_dispatcher_broadcast(nas_dispatcher *d, const nas_wire_msg *m, int64_t now_ms) {
    NAS__EACH_WORKER(d, i, nx) {
        nas__dworker_send(d, &d->workers[i], m, now_ms);
    }
}

int nas_dispatcher_ready_count(const nas_dispatcher *d) {
    return d->n_ready;
}

size_t nas_dispatcher_held_count(const nas_dispatcher *d) {
    return d->counts.held;
}

/* Slot order, which is registration order until slots are reused. */
int nas_dispatcher_workers(const nas_dispatcher *d, nas_worker_info *out, int cap) {
    int n = 0;
    NAS__EACH_WORKER(d, i, nx) {
        const dworker *w = &d->workers[i];
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

/* "engine":{"blas":..,"blas_kernels":..,"isa":..,"blas_threads":N,"gemm":..}: what a
 * worker computes on, as its Register said (empty strings: an older worker). */
static size_t engine_json(char *buf, size_t cap, size_t len, const nas_wire_engine *e) {
    JSON_APPEND("\"engine\":{\"blas\":");
    len = json_str(buf, cap, len, e->blas);
    JSON_APPEND(",\"blas_kernels\":");
    len = json_str(buf, cap, len, e->blas_kernels);
    JSON_APPEND(",\"isa\":");
    len = json_str(buf, cap, len, e->isa);
    JSON_APPEND(",\"blas_threads\":%u,\"gemm\":", e->blas_threads);
    len = json_str(buf, cap, len, e->gemm);
    JSON_APPEND("}");
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
    NAS__EACH_WORKER(d, i, nx) {
        const dworker *w = &d->workers[i];
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
