/*
 * campaign_hooks.c - what the campaign does with the dispatcher's events
 * (campaign.c keeps the order of every state change these follow): a
 * lease, a result, a re-queue, a failure for good, a worker that joined or
 * left, and a name's CurveZMQ key; also the housekeeping timer's work.
 */
#include "master/campaign_internal.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "master/status_fidelity.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

// ---- dispatcher hooks --------------------------------------------------------------------

/* Dispatcher hook: a lease was granted.  Recorded with the dispatcher's
 * attempt so that (task, attempt) names the same lease in memory and on
 * disk.  A refused lease (the task is not queued in the store) is only
 * logged: the result, if any, is still recorded by the first-wins rule. */
static void hook_lease(void *ctx, const nas_task_ref *ref, const nas_worker_ident *who,
                       int64_t expiry_ms) {
    nas_campaign *c = ctx;
    nas__ctask *t = nas__campaign_find(c, (int64_t)ref->task_id);
    if (!t || c->fatal) return;
    if (c->prelease_id != 0 && c->prelease_id == t->id) {
        /* add_task stored this lease with the row; it must be this one. */
        c->prelease_id = 0;
        if (ref->attempt != 1 || !nas_worker_same(who, &c->prelease_who)) {
            nas__campaign_fail(c, "the dispatcher leased a new task to another worker than the "
                                  "one the store recorded");
            return;
        }
        t->store_attempt = 1;
        t->wire_attempt = 1;
        return;
    }
    if (t->grace == 1) {
        /* A resumed lease came back with its worker (push_held): the row
         * is still leased to it, as the previous master wrote it. */
        t->grace = 0;
        return;
    }
    char err[NAS_ERR_LEN];
    int rc = nas_store_task_lease(c->store, t->id, (int)ref->attempt, who->name, who->host,
                                  who->key, nas__campaign_to_wall(expiry_ms), nas_wall_ms(), err);
    if (rc == NAS_OK) {
        t->store_attempt = (int)ref->attempt;
        t->wire_attempt = ref->attempt;
    } else {
        nas__campaign_store_error(c, rc, err);
    }
}

/* Dispatcher hook: the first result of a task.  The result is written
 * first; only a result the store takes (the first for its task) is
 * observed by the strategy, and its observation number goes into the same
 * batch.  Only a NAS_OK return lets the dispatcher acknowledge, and the
 * acknowledgement waits in the outbox until the batch has committed, so a
 * result that did not reach the disk stays with its worker.  While the
 * strategy is busy in the thread pool a search result is refused with
 * NAS_EAGAIN and the worker delivers it again. */
static int hook_result(void *ctx, const nas_wire_result *r, const char *worker) {
    return nas__campaign_record(ctx, r, worker, 0);
}

/* A result as hook_result takes it.  The scheduler hears of it (a stop is
 * never promoted); only a proposal's result is the strategy's
 * observation, a promotion's is not. */
int nas__campaign_record(nas_campaign *c, const nas_wire_result *r, const char *worker,
                         int stopped) {
    if (c->fatal) return NAS_EIO;
    nas__ctask *t = nas__campaign_find(c, (int64_t)r->task_id);
    if (!t) return NAS_ENOTFOUND;
    if (t->stage == NAS_STORE_STAGE_SEARCH && c->preparing) return NAS_EAGAIN;
    char err[NAS_ERR_LEN];
    int64_t params = r->params > 0 ? r->params : t->params;
    int64_t macs = r->macs > 0 ? r->macs : t->macs;
    nas_store_result sr = {
        .accuracy = r->val_acc,
        .loss = r->val_loss,
        .test_accuracy = r->has_test ? r->test_acc : NAN,
        .curve = r->curve,
        .n_curve = r->n_curve,
        .params = params,
        .macs = macs,
        .seconds = r->seconds,
        .worker = worker,
        /* A search result is the strategy's next observation, unless the
         * strategy already saw this task fail (--retry-failed) or it is a
         * promotion of an architecture it has seen (campaign_sched.c). */
        .observed = t->stage == NAS_STORE_STAGE_SEARCH && !t->observed && !t->promoted,
        .seq = nas_strategy_history_len(c->strategy),
    };
    nas__campaign_batch_begin(c);
    int att = t->store_attempt > 0 ? t->store_attempt : 1;
    int rc = nas_store_put_result(c->store, t->id, att, &sr, NULL, 0, nas_wall_ms(), err);
    if (rc == NAS_STORE_APPLIED && t->stage == NAS_STORE_STAGE_SEARCH && !t->observed &&
        !t->promoted)
        rc = nas__campaign_state_observe(c, t, 1, r->val_acc, params, macs, 1, err);
    if (rc == NAS_STORE_APPLIED)
        rc = nas__campaign_sched_result(c, t, !stopped, r->val_acc, r->curve, r->n_curve, err);
    if (rc < 0) {
        /* A refused result wrote nothing and was not observed: the worker
         * is told.  Any other error may have moved the in-memory strategy:
         * it must not go on. */
        nas__campaign_store_error(c, rc, err);
        nas__campaign_batch_end(c);
        return rc;
    }
    nas_info("campaign: task %" PRIu64 " (%s) on %s: val_acc %.4f%s", r->task_id,
             nas_store_stage_name(t->stage), worker, r->val_acc,
             rc == NAS_STORE_DUPLICATE ? " (duplicate, dropped)" : "");
    c->n_done++;
    if (rc == NAS_STORE_APPLIED) nas_breaker_result(&c->breaker);
    if (rc == NAS_STORE_APPLIED &&
        nas_status_live_result(c->live, t->id, t->stage, &t->final_fid, t->hash, sr.accuracy,
                               sr.test_accuracy, r->n_curve, err) < 0)
        nas_warn("campaign: status figures: %s", err);
    nas__campaign_task_drop(c, t);
    nas__campaign_weights_sweep(c);
    nas__campaign_batch_end(c);
    return c->fatal ? NAS_EIO : NAS_OK;
}

/* Dispatcher hook: a task went back to the queue.  A give-back keeps its
 * attempt (the store's lease is simply released); a failure or an expired
 * lease is recorded as a failed attempt that returns to the queue. */
static void hook_requeue(void *ctx, const nas_task_ref *next, const char *reason) {
    nas_campaign *c = ctx;
    nas__ctask *t = nas__campaign_find(c, (int64_t)next->task_id);
    if (!t || c->fatal) return;
    char err[NAS_ERR_LEN];
    int rc;
    if (next->attempt == t->wire_attempt) {
        rc = nas_store_task_requeue(c->store, t->id, t->store_attempt, nas_wall_ms(), err);
    } else {
        int kind = strcmp(reason, "lease expired") == 0 ? NAS_STORE_FAIL_LEASE_EXPIRED
                                                        : NAS_STORE_FAIL_TRAINING;
        /* The dispatcher decides when K is reached (on_failed); here the
         * attempt only goes back to the queue. */
        rc = nas_store_put_failure(c->store, t->id, t->store_attempt, kind, reason, INT_MAX, NULL,
                                   0, nas_wall_ms(), err);
    }
    t->wire_attempt = next->attempt;
    t->grace = 0; /* queued: no longer a lease resumed from the previous run */
    nas__campaign_store_error(c, rc, err);
}

/* A failure for good, held while the strategy prepared its next step. */
struct nas__cfailed {
    nas_task_ref ref;
    int code;
    char reason[NAS_ERR_LEN];
};

/* A failure for good counts towards workers.max_failed_in_a_row: at the
 * limit the dispatcher holds its queue and campaign_fill proposes nothing
 * more (the master stays up, halted, so that a service manager does not
 * restart it into the same failures).  The event log keeps the halt. */
static void breaker_failed(nas_campaign *c, const char *reason) {
    int was = c->breaker.tripped;
    if (!nas_breaker_failed(&c->breaker, reason)) {
        if (was) nas_warn("campaign: halted: %s", c->breaker.message);
        return;
    }
    c->halted_mono = nas_now_ms();
    nas_dispatcher_hold(c->disp, 1);
    nas_error("campaign: %s", c->breaker.message);
    char err[NAS_ERR_LEN];
    if (nas_store_event_append(c->store, nas_wall_ms(), NAS_STORE_EVENT_HALTED, c->breaker.message,
                               err) < 0)
        nas_warn("campaign: event not recorded: %s", err);
}

/* K attempts failed.  The strategy observes the failure (ok = 0, no cost:
 * the history does not keep one for failures) so it stops waiting for the
 * proposal, and the final failure is committed in the same batch as the
 * observation and the new core state. */
static void record_failed(nas_campaign *c, const nas_task_ref *ref, int code, const char *reason) {
    nas__ctask *t = nas__campaign_find(c, (int64_t)ref->task_id);
    if (!t || c->fatal) return;
    char err[NAS_ERR_LEN];
    int kind = strcmp(reason, "lease expired") == 0 ? NAS_STORE_FAIL_LEASE_EXPIRED
                                                    : NAS_STORE_FAIL_TRAINING;
    nas__campaign_batch_begin(c);
    int rc = nas_store_put_failure(c->store, t->id, t->store_attempt, kind, reason, 1, NULL, 0,
                                   nas_wall_ms(), err);
    /* A stale failure (the store no longer holds that lease) is still the
     * end of the task for this process: the strategy must stop waiting. */
    if (rc >= 0 && t->stage == NAS_STORE_STAGE_SEARCH && !t->observed && !t->promoted)
        rc = nas__campaign_state_observe(c, t, 0, 0, 0, 0, 0, err);
    if (rc >= 0) rc = nas__campaign_sched_result(c, t, 0, NAN, NULL, 0, err);
    if (nas__campaign_store_error(c, rc, err)) {
        nas__campaign_batch_end(c);
        return;
    }
    nas_warn("campaign: task %" PRIu64 " failed for good (%s): %s", ref->task_id,
             nas_err_name(code), reason);
    c->n_failed++;
    nas__campaign_task_drop(c, t);
    breaker_failed(c, reason);
    nas__campaign_batch_end(c);
}

/* Dispatcher hook: K attempts failed.  While the strategy prepares its next
 * step in the thread pool nothing may touch it, so a search task's failure
 * waits for the step to end (a result in that window is refused with
 * NAS_EAGAIN and sent again by its worker; a failure has no sender to ask):
 * a peer's failure must never stop the master. */
static void hook_failed(void *ctx, const nas_task_ref *ref, int code, const char *reason) {
    nas_campaign *c = ctx;
    nas__ctask *t = nas__campaign_find(c, (int64_t)ref->task_id);
    if (!t || c->fatal) return;
    if (t->stage == NAS_STORE_STAGE_SEARCH && c->preparing) {
        if (c->n_failed_later == c->cap_failed_later) {
            int cap = c->cap_failed_later ? 2 * c->cap_failed_later : 8;
            struct nas__cfailed *f = nas_realloc(c->failed_later, (size_t)cap * sizeof *f);
            if (!f) {
                nas__campaign_fail(c, "out of memory holding a failure until the strategy's "
                                      "step is done");
                return;
            }
            c->failed_later = f;
            c->cap_failed_later = cap;
        }
        struct nas__cfailed *f = &c->failed_later[c->n_failed_later++];
        f->ref = *ref;
        f->code = code;
        snprintf(f->reason, sizeof f->reason, "%s", reason);
        nas_info("campaign: task %" PRIu64 " failed for good while the strategy prepares its "
                 "next step; recorded when the step is done",
                 ref->task_id);
        return;
    }
    record_failed(c, ref, code, reason);
}

void nas__campaign_failed_replay(nas_campaign *c) {
    for (int i = 0; i < c->n_failed_later && !c->fatal; i++)
        record_failed(c, &c->failed_later[i].ref, c->failed_later[i].code,
                      c->failed_later[i].reason);
    c->n_failed_later = 0;
}

/* Dispatcher hook: joins, losses and departures go to the event log, which
 * is how an operator reconstructs what happened to a worker. */
static void hook_worker(void *ctx, const nas_worker_info *w, const char *event) {
    nas_campaign *c = ctx;
    if (c->fatal) return;
    char kind[NAS_STORE_NAME_MAX], err[NAS_ERR_LEN];
    /* A worker gets its row when it first takes work (not when it merely
     * registers), so the table holds the campaign's workers only. */
    if (strcmp(event, "joined") == 0 &&
        (nas_store_worker_seen(c->store, w->name, w->host, (int)w->cores, w->version,
                               nas_wall_ms(), err) < 0 ||
         (w->key[0] && nas_store_worker_bind(c->store, w->name, w->key, err) < 0)))
        nas_warn("campaign: worker %s not recorded: %s", w->name, err);
    snprintf(kind, sizeof kind, "worker-%s", event);
    if (nas_store_event_append(c->store, nas_wall_ms(), kind, w->name, err) < 0)
        nas_warn("campaign: event not recorded: %s", err);
}

/* Dispatcher hook: the key a worker name was bound to when it took work
 * for this campaign, in this run or an earlier one. */
static int hook_name_key(void *ctx, const char *name, char *key, size_t cap) {
    nas_campaign *c = ctx;
    char err[NAS_ERR_LEN];
    int rc = nas_store_worker_key(c->store, name, key, cap, err);
    if (rc < 0) nas_warn("campaign: %s", err);
    return rc;
}

/* What the campaign notes from a worker's message before the dispatcher
 * acts on it: a failure the worker blames on its environment (the task
 * goes back uncounted and the worker leaves) is shown in status until a
 * result arrives. */
void nas__campaign_note_message(nas_campaign *c, const nas_wire_msg *m) {
    if (m->type == NAS_MSG_RESULT) {
        c->env_problem[0] = '\0';
    } else if (m->type == NAS_MSG_FAILURE && m->u.failure.environment) {
        snprintf(c->env_problem, sizeof c->env_problem,
                 "a worker cannot evaluate (its environment, not the architecture): %.180s",
                 m->u.failure.reason);
        nas_warn("campaign: %s; task %" PRIu64 " goes back to the queue with its attempts kept; "
                 "waiting for a worker that can evaluate",
                 c->env_problem, m->u.failure.task_id);
    }
}

/* Timers: liveness, heartbeats and leases in the dispatcher; resumed leases
 * whose workers did not come back within the grace go back to the queue. */
void nas__campaign_housekeep(nas_campaign *c, int64_t now_ms) {
    if (c->closing) return;
    nas_dispatcher_tick(c->disp, now_ms);
    if (c->grace_until && now_ms >= c->grace_until) {
        c->grace_until = 0;
        for (int i = 0; i < c->n_tasks; i++) {
            nas__ctask *t = &c->tasks[i];
            if (!t->grace) continue;
            t->grace = 0;
            if (nas_dispatcher_release_held(c->disp, (uint64_t)t->id, now_ms))
                nas_info("campaign: task %lld leased before the restart was not delivered in "
                         "time; re-queued",
                         (long long)t->id);
        }
    }
    nas__campaign_fill(c, now_ms);
}

nas_dispatcher_hooks nas__campaign_hooks(nas_campaign *c) {
    return (nas_dispatcher_hooks){.ctx = c,
                                  .send = nas__campaign_send,
                                  .on_lease = hook_lease,
                                  .on_result = hook_result,
                                  .on_requeue = hook_requeue,
                                  .on_failed = hook_failed,
                                  .on_worker = hook_worker,
                                  .name_key = hook_name_key,
                                  .on_progress = nas__campaign_sched_progress};
}
