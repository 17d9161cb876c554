/*
 * dispatcher_internal.h - the dispatcher's state, shared by its three files
 * (not a public interface: dispatcher.h is):
 *  - dispatcher.c: the task map, the queue, leases and their holders, time;
 *  - dispatcher_workers.c: the worker table, sending, the status snapshot;
 *  - dispatcher_msg.c: what each inbound message does.
 *
 * Data layout.  Workers live in a slot array with stable indices (a slot
 * is reused after its worker leaves); the used slots are also linked in
 * slot order, and every scan (expiry, heartbeats, the idle worker longest
 * idle, cancelling a task's other runners) walks that list, so its cost
 * is the workers present now, not the most there ever were (a flood fills
 * every slot once and leaves).  Tasks live in an open-addressing hash map
 * keyed by task id.  A finished task keeps a small record (its spec is
 * freed) while it is among the last DONE_KEEP to finish, so its state can
 * still be asked and a late duplicate is named as such; older records are
 * deleted (tombstones, swept when the map is rebuilt), so the map holds
 * the live tasks plus a constant, not every task of the campaign.  A
 * result for a task no longer known is a duplicate all the same.  The
 * queue is a ring of task ids; an entry whose task is no longer QUEUED
 * (leased by a re-registering worker, cancelled, finished) is skipped when
 * popped, so removal from the middle is O(1).
 */
#ifndef NAS_DISPATCHER_INTERNAL_H
#define NAS_DISPATCHER_INTERNAL_H

#include "common/log.h"
#include "master/dispatcher.h"

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

/* Finished tasks whose record is kept (see the data layout above). */
#define DONE_KEEP 1024

typedef struct dtask {
    uint64_t id;
    int used;  /* 0 empty, 1 a task, 2 a deleted record (a tombstone: probes go on) */
    int state; /* enum nas_dispatch_task_state */
    uint32_t attempt;
    int worker;          /* slot of the lease holder, -1 if none (or a resumed lease) */
    nas_wire_task *spec; /* NULL once terminal */
    dholder *holders;    /* every lease given, newest last; NULL once terminal */
    int n_holders;
    int lost; /* times a worker came back without it (give_back_lost) */
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
    uint64_t incarnation; /* its Register's (random per process; 0 = not sent) */
} dworker;

/* Incarnations that a newer process registering under the same worker
 * (name, host, key) replaced: one of them registering again while that
 * newer process lives means two processes share the name. */
#define NAS__SUPERSEDED_KEEP 64

struct nas_dispatcher {
    nas_dispatcher_config cfg;
    nas_dispatcher_hooks hooks;
    dworker *workers; /* cfg.max_workers slots */
    int *lnext;       /* the used slots, linked in slot order (-1 ends) */
    int *lprev;
    int live_head, live_tail;
    int n_workers;
    int n_ready; /* workers idle or busy (nas__dworker_set_state keeps it) */
    /* Identity -> slot map (open addressing, linear probing; slot + 1, 0 =
     * empty), so that finding a message's sender costs O(1) instead of a
     * scan of every slot: at 64-256 workers that scan was a few percent of
     * the master's instructions per task. */
    int *wmap;
    size_t wmap_mask;
    dtask *tasks; /* hash map, cap_tasks a power of two */
    size_t cap_tasks, n_tasks, n_tomb;
    uint64_t *done_ring; /* the last DONE_KEEP tasks to finish, oldest at done_head */
    size_t done_head, done_len;
    uint64_t *queue; /* ring of task ids */
    size_t q_cap, q_head, q_len;
    nas_dispatcher_counts counts;
    int holding;        /* nas_dispatcher_hold: queued tasks are not given out */
    dbinding *bindings; /* cfg.max_workers entries, least recently used replaced */
    int n_bindings;
    char weights_ep[NAS_WIRE_NAME_MAX * 4]; /* announced in the answer to Register; "" = none */
    nas_log_limit peer_log; /* lines a peer's bad or refused messages may write (NAS_PEER_LOG) */
    uint64_t superseded[NAS__SUPERSEDED_KEEP]; /* a ring, oldest overwritten */
    int superseded_next;
};

/* Log a line that a peer's malformed or refused message caused, or the
 * departure of a peer that never took work, within d->peer_log's limit: a
 * peer can send such messages (or flood registrations) at will, and the
 * master's log must not grow with them (common/log.h). */
#define NAS_PEER_LOG(d, now_ms, level, ...)                                                        \
    do {                                                                                           \
        if (nas_log_limit_pass(&(d)->peer_log, (now_ms), NAS_LOG_WARN,                             \
                               "dispatcher: refused, malformed or vanished peers"))                \
            nas_log((level), __VA_ARGS__);                                                         \
    } while (0)

/* Every used worker slot i, in slot order; the body may remove the worker
 * at i (its successor nx was read first), but no other. */
#define NAS__EACH_WORKER(d, i, nx)                                                                 \
    for (int i = (d)->live_head, nx; i >= 0 && ((nx = (d)->lnext[i]), 1); i = nx)

// ---- dispatcher.c: tasks, leases and their holders ------------------------------------------

dtask *nas__dtask_find(const nas_dispatcher *d, uint64_t id);
int nas__dtask_live(const dtask *t);
void nas__dtask_holder_add(dtask *t, uint32_t attempt, const nas_worker_ident *who, int name_only);
int nas__dtask_holder_is(const dtask *t, uint32_t attempt, const nas_worker_ident *who);
void nas__dtask_finish(nas_dispatcher *d, dtask *t, int state);
void nas__dtask_requeue(nas_dispatcher *d, dtask *t, int counted, int code, const char *reason);
void nas__dtask_lease(nas_dispatcher *d, dtask *t, dworker *w, int64_t now_ms);
void nas__dispatch(nas_dispatcher *d, int64_t now_ms);

// ---- dispatcher_workers.c: the worker table and sending -------------------------------------

void nas__dworker_send(nas_dispatcher *d, dworker *w, const nas_wire_msg *m, int64_t now_ms);
void nas__dsend_error(nas_dispatcher *d, const uint8_t *id, size_t id_len, int code,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void nas__dworker_send_ref(nas_dispatcher *d, dworker *w, int type, nas_task_ref ref, int dup,
                           int64_t now_ms);
dworker *nas__dworker_find(nas_dispatcher *d, const uint8_t *id, size_t id_len);
void nas__dworker_map_put(nas_dispatcher *d, dworker *w);
void nas__dworker_map_del(nas_dispatcher *d, const dworker *w);
void nas__dworker_link(nas_dispatcher *d, const dworker *w);
void nas__dworker_event(nas_dispatcher *d, const dworker *w, const char *event);
void nas__dworker_join(nas_dispatcher *d, dworker *w);
int nas__dworker_holds_lease(const nas_dispatcher *d, const dworker *w);
void nas__dworker_set_state(nas_dispatcher *d, dworker *w, int state);
void nas__dworker_set_idle(nas_dispatcher *d, dworker *w, int64_t now_ms);
void nas__dworker_remove(nas_dispatcher *d, dworker *w, int counted, const char *reason,
                         const char *event);
void nas__dworker_cancel_others(nas_dispatcher *d, uint64_t task_id, const dworker *except,
                                int64_t now_ms);
int nas__dworker_name_taken(nas_dispatcher *d, const char *name, const char *key, int64_t now_ms);
dworker *nas__dworker_slot_for_new(nas_dispatcher *d);

#endif
