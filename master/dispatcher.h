/*
 * dispatcher.h - the master's broker: which worker evaluates which task.
 *
 * A pure state machine (STYLE rules 9 and 16).  It reads no clock and owns
 * no socket: the caller feeds it decoded messages with the time they
 * arrived (nas_dispatcher_on_message) and calls nas_dispatcher_tick()
 * regularly; the dispatcher answers through hooks: `send` for every message
 * to a worker, and persistence hooks for the campaign (lease, result,
 * re-queue, permanent failure, progress, worker events).  Tests drive it
 * with a fake clock and scripted messages.
 *
 * Rules (docs/PROTOCOL.md has the sequence diagrams):
 *  - Liveness: any inbound message from a worker counts as a heartbeat; a
 *    worker silent for `liveness` heartbeat intervals is dead and removed.
 *    The dispatcher heartbeats each worker it has not sent anything to for
 *    one interval.
 *  - Leases: a task is leased as (task id, attempt) to one idle worker at
 *    a time, in push order, to the worker idle the longest.
 *  - A dead worker's lease, or a Failure, re-queues the task with
 *    attempt + 1 ("lease expired" / the failure reason); when attempt K
 *    fails the task is failed for good (on_failed).  A give-back (worker
 *    shutting down) re-queues with the same attempt, not counted.
 *  - A task with a time limit whose lease is still held at 1.5 x the
 *    limit plus the liveness window is stuck: the worker gets Cancel and
 *    the task is re-queued as a counted attempt.
 *  - The first Result for a task that is queued or leased wins, whatever
 *    its attempt (a worker that lost its master delivers after it
 *    re-registers); it is recorded once through on_result, acknowledged,
 *    and any other worker still running the task is cancelled.  A Result
 *    for a finished, failed, cancelled or unknown task is acknowledged as
 *    a duplicate and dropped.
 *  - Messages other than Register / StatusRequest from an identity that
 *    has not registered are answered with Error(NAS_ESTATE), which tells
 *    the worker to register again (e.g. after a master restart).  The
 *    dispatcher sends NAS_ESTATE for nothing else.
 */
#ifndef NAS_DISPATCHER_H
#define NAS_DISPATCHER_H

#include "common/wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct nas_dispatcher nas_dispatcher;
struct nas_worker_info;

/* Who a worker is: its registered name, its host and the CurveZMQ key it
 * connected with (the ZAP User-Id, "" without CurveZMQ).  A lease belongs
 * to these three together, never to a name alone: two processes may
 * register one name, and only the one given the lease may keep it, claim
 * it after a restart or deliver its result. */
typedef struct nas_worker_ident {
    char name[NAS_WIRE_NAME_MAX];
    char host[NAS_WIRE_HOST_MAX];
    char key[NAS_WIRE_NAME_MAX];
} nas_worker_ident;

/* The one identity rule: 1 when a and b are the same worker (all three equal). */
int nas_worker_same(const nas_worker_ident *a, const nas_worker_ident *b);

typedef struct nas_dispatcher_config {
    int64_t heartbeat_ms; /* heartbeat interval, default 1000 */
    int liveness;         /* silent intervals before a worker is dead, default 5 */
    int max_attempts;     /* K: counted attempts before a task fails for good, default 3 */
    int max_workers;      /* registrations beyond this are refused, default 4096 */
} nas_dispatcher_config;

void nas_dispatcher_config_default(nas_dispatcher_config *cfg);

/* Hooks the dispatcher calls; any may be NULL but `send`.  `worker` is the
 * worker's registered name.  Hooks must not call back into the dispatcher. */
typedef struct nas_dispatcher_hooks {
    void *ctx;
    /* Deliver m to the worker with this ROUTER identity.  Errors are
     * logged; the liveness rules recover from a lost message. */
    int (*send)(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *m);
    /* A task was leased (persist: state leased, who holds it, attempt, expiry). */
    void (*on_lease)(void *ctx, const nas_task_ref *ref, const nas_worker_ident *who,
                     int64_t expiry_ms);
    /* The first result of a task.  Return NAS_OK once it is durable; a
     * negative return refuses it: the worker is sent an Error and keeps the
     * result to deliver again, and the task stays where it was. */
    int (*on_result)(void *ctx, const nas_wire_result *r, const char *worker);
    /* A task went back to the queue as `next` (same attempt for a
     * give-back), with the reason ("lease expired", "given back", or the
     * worker's failure reason). */
    void (*on_requeue)(void *ctx, const nas_task_ref *next, const char *reason);
    /* A task failed for good after K attempts. */
    void (*on_failed)(void *ctx, const nas_task_ref *ref, int code, const char *reason);
    /* One epoch of a leased task finished (early stopping, nasctl). */
    void (*on_progress)(void *ctx, const nas_wire_progress *p, const char *worker);
    /* A worker "joined" (took its first lease), was "lost" (expired), "left"
     * (Disconnect) or "evicted" (its slot went to a new registration), or
     * was "replaced" by its own reconnection (which took over its lease).
     * Only for workers that joined: a peer that merely registered leaves
     * no trace (registration floods write nothing). */
    void (*on_worker)(void *ctx, const struct nas_worker_info *w, const char *event);
    /* With CurveZMQ: the key a name was bound to before this master knew
     * it (an earlier run), into key[cap]: 1 bound, 0 free, negative when
     * it cannot tell (the name is refused then). */
    int (*name_key)(void *ctx, const char *name, char *key, size_t cap);
} nas_dispatcher_hooks;

/* Create a dispatcher.  NAS_EINVAL + err for a bad config or missing send
 * hook, NAS_ENOMEM. */
int nas_dispatcher_create(nas_dispatcher **out, const nas_dispatcher_config *cfg,
                          const nas_dispatcher_hooks *hooks, char *err);
void nas_dispatcher_destroy(nas_dispatcher **dp);

/* Queue a task (its id, attempt >= 1 and everything the worker needs),
 * behind those already queued.  NAS_EEXIST if the id was ever pushed,
 * NAS_EINVAL if the task does not validate. Leases at once when a worker
 * is idle. */
int nas_dispatcher_push(nas_dispatcher *d, const nas_wire_task *task, int64_t now_ms, char *err);

/* Who a task pushed now would be leased to at once: 1 with that worker
 * (*who) and its lease expiry (the time base of now_ms) when no task is
 * queued and a worker is idle, else 0.  The next push(),
 * with nothing in between, then leases its task to exactly that worker
 * (on_lease fires with it), so the campaign can store the task already
 * leased: one write instead of an insert and a lease update. */
int nas_dispatcher_peek_lease(const nas_dispatcher *d, nas_worker_ident *who, int64_t *expiry_ms);

/* Stop (hold = 1) giving out queued tasks, or start again (0): queued and
 * re-queued tasks wait in the queue, leases already out go on and end as
 * usual.  The campaign's circuit breaker (master/breaker.h). */
void nas_dispatcher_hold(nas_dispatcher *d, int hold);

/* A lease granted by a previous master to `holder` (after a restart): the
 * task is leased to nobody here and waits for its holder, whose Register
 * with the task running re-attaches the lease and whose Result counts;
 * no other worker is given it until nas_dispatcher_release_held().
 * `name_only`: the store knew only the holder's name (a lease written
 * before it kept hosts and keys), and any worker of that name matches.
 * Errors as push(). */
int nas_dispatcher_push_held(nas_dispatcher *d, const nas_wire_task *task,
                             const nas_worker_ident *holder, int name_only, char *err);

/* Re-queue a held lease whose holder has not come back (uncounted, reason
 * "not delivered in time"); 1 if it was waiting, 0 if not (its holder
 * came back, or it is over). */
int nas_dispatcher_release_held(nas_dispatcher *d, uint64_t task_id, int64_t now_ms);

/* Cancel a task: dropped from the queue, or Cancel sent to the worker
 * running it; results arriving later are acknowledged as duplicates.
 * NAS_ENOTFOUND for an unknown id, NAS_ESTATE if it already finished. */
int nas_dispatcher_cancel(nas_dispatcher *d, uint64_t task_id, int64_t now_ms);

/* Handle one decoded message from the peer with this identity. */
void nas_dispatcher_on_message(nas_dispatcher *d, const uint8_t *id, size_t id_len,
                               const nas_wire_msg *m, int64_t now_ms);

/* Feed one nas_wire_recv() outcome: NAS_OK goes to on_message (and a
 * Register's ZAP User-Id, the name of the CurveZMQ key that sent it, is
 * kept as the worker's key), a decode error to on_bad_message with err;
 * NAS_EAGAIN and NAS_EIO are ignored.  One call per receive for the loop. */
void nas_dispatcher_on_packet(nas_dispatcher *d, const nas_wire_packet *pkt, int rc,
                              const char *err, int64_t now_ms);

/* A message from this identity failed to decode (code, why): it still
 * counts as a heartbeat from a known worker; the peer gets an Error. */
void nas_dispatcher_on_bad_message(nas_dispatcher *d, const uint8_t *id, size_t id_len, int code,
                                   const char *why, int64_t now_ms);

/* Expire silent workers (re-queueing their leases), send due heartbeats,
 * and lease queued tasks to idle workers. Call at least every heartbeat. */
void nas_dispatcher_tick(nas_dispatcher *d, int64_t now_ms);

/* The earliest time tick() has something to do (a heartbeat or expiry). */
int64_t nas_dispatcher_next_deadline(const nas_dispatcher *d);

// ---- status -----------------------------------------------------------------------

enum nas_worker_state {
    NAS_WORKER_STATE_REGISTERED = 0, /* registered, not yet Ready */
    NAS_WORKER_STATE_IDLE = 1,
    NAS_WORKER_STATE_BUSY = 2,
    NAS_WORKER_STATE_LEAVING = 3, /* gave its task back, shutting down */
};
const char *nas_worker_state_name(int state);

typedef struct nas_worker_info {
    char name[NAS_WIRE_NAME_MAX];
    char host[NAS_WIRE_HOST_MAX];
    char key[NAS_WIRE_NAME_MAX]; /* CurveZMQ key name (ZAP User-Id), "" without */
    char version[NAS_WIRE_NAME_MAX];
    uint32_t cores;
    int joined; /* has held a lease of this master */
    int state;  /* enum nas_worker_state */
    int has_task;
    nas_task_ref task; /* when has_task */
    int epoch, epochs; /* last progress of that task (0 before any) */
    int tasks_done;    /* results accepted from this worker */
    int64_t last_seen_ms;
    nas_wire_engine engine; /* what it computes on, from its Register */
} nas_worker_info;

typedef struct nas_dispatcher_counts {
    int workers, idle, busy;
    size_t queued, leased, done, failed, cancelled;
    size_t held; /* of the leased: resumed leases waiting for their worker (push_held) */
} nas_dispatcher_counts;

void nas_dispatcher_counts_get(const nas_dispatcher *d, nas_dispatcher_counts *out);

/* How many workers want or do work (idle after their Ready, or busy), in
 * O(1): the campaign keeps that many proposals in flight, and asks before
 * every proposal (counts_get walks all slots).  A peer that only
 * registered does not count, so a flood of registrations cannot make the
 * campaign propose thousands of tasks that no worker will take. */
int nas_dispatcher_ready_count(const nas_dispatcher *d);

/* Resumed leases still waiting for their worker (counts.held), in O(1). */
size_t nas_dispatcher_held_count(const nas_dispatcher *d);

/* Send m to every registered worker (the campaign's end: Disconnect with
 * done set, so workers leave instead of waiting for the next task). */
void nas_dispatcher_broadcast(nas_dispatcher *d, const nas_wire_msg *m, int64_t now_ms);

/* Copy up to cap workers into out; returns how many workers there are. */
int nas_dispatcher_workers(const nas_dispatcher *d, nas_worker_info *out, int cap);

/* The snapshot as a JSON document {"workers":[...],"queue":{...}} in buf.
 * Returns the length, or NAS_ERANGE if cap is too small. */
int nas_dispatcher_status_json(const nas_dispatcher *d, int64_t now_ms, char *buf, size_t cap);

/* The weight store's endpoint, announced in the Heartbeat that answers
 * every Register (NULL or "": announce none).  NAS_ERANGE if too long. */
int nas_dispatcher_set_weights_endpoint(nas_dispatcher *d, const char *endpoint, char *err);

/* State of one task: 0 unknown, else 1 queued, 2 leased, 3 done, 4 failed,
 * 5 cancelled (enum nas_dispatch_task_state); *attempt gets its attempt. */
enum nas_dispatch_task_state {
    NAS_DISPATCH_TASK_UNKNOWN = 0,
    NAS_DISPATCH_TASK_QUEUED = 1,
    NAS_DISPATCH_TASK_LEASED = 2,
    NAS_DISPATCH_TASK_DONE = 3,
    NAS_DISPATCH_TASK_FAILED = 4,
    NAS_DISPATCH_TASK_CANCELLED = 5,
};
int nas_dispatcher_task_state(const nas_dispatcher *d, uint64_t task_id, uint32_t *attempt);

#endif
