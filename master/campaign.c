/*
 * campaign.c - the campaign's core: open or resume, keep the dispatcher's
 * queue filled with proposals, and turn the dispatcher's events into store
 * transactions and strategy observations in a crash-safe order.
 *
 * The order of every state change (campaign.h explains why it is safe):
 *   propose:  strategy.propose -> strategy.save -> store.task_add(task, blob)
 *             -> dispatcher.push
 *   result:   strategy.observe -> strategy.save -> store.put_result(result,
 *             blob) -> Ack (by the dispatcher, after the hook returns OK)
 *   failure:  the same with ok = 0 and store.put_failure(final)
 * A crash between any two arrows leaves the store either before or after
 * the step; the strategy is always reloaded from the blob committed with
 * the last step, so nothing is counted twice or lost.
 *
 * Attempts are the dispatcher's (failures counted, give-backs not); the
 * store records the attempt of each lease as given.  The campaign keeps the
 * attempt the store last saw (store_attempt) apart from the dispatcher's
 * current one (wire_attempt) because a re-queue changes the second first.
 */
#include "master/campaign_internal.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "master/status_fidelity.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

/* Defaults that defer to the campaign file: evaluation mode and resume
 * grace come from it unless the command line overrides them. */
void nas_campaign_options_default(nas_campaign_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->eval_mode = -1;
    opt->resume_grace_ms = -1;
}

// ---- outstanding tasks --------------------------------------------------------------------

/* Outstanding tasks are few (about one per worker), so a flat array with
 * linear search is both the simplest and, at this size, the fastest
 * structure; it also keeps no order that could matter for determinism. */
nas__ctask *nas__campaign_find(nas_campaign *c, int64_t id) {
    for (int i = 0; i < c->n_tasks; i++)
        if (c->tasks[i].id == id) return &c->tasks[i];
    return NULL;
}

/* Append a zeroed record, growing the array by doubling; NULL on OOM (the
 * caller reports it, nothing was changed). */
static nas__ctask *task_new(nas_campaign *c) {
    if (c->n_tasks == c->cap_tasks) {
        int cap = c->cap_tasks ? c->cap_tasks * 2 : 64;
        nas__ctask *t = nas_realloc(c->tasks, (size_t)cap * sizeof *t);
        if (!t) return NULL;
        c->tasks = t;
        c->cap_tasks = cap;
    }
    nas__ctask *t = &c->tasks[c->n_tasks++];
    memset(t, 0, sizeof *t);
    return t;
}

/* Forget a finished task (swap-remove: order does not matter here). */
void nas__campaign_task_drop(nas_campaign *c, nas__ctask *t) {
    *t = c->tasks[--c->n_tasks];
}

/* Tasks of one stage not yet finished: the search is over only when this
 * reaches 0 for the search stage, whatever the strategy thinks. */
static int outstanding(const nas_campaign *c, int stage) {
    int n = 0;
    for (int i = 0; i < c->n_tasks; i++)
        n += c->tasks[i].stage == stage;
    return n;
}

/* The one rule for what a store error means.  The store refuses a request
 * whose content is wrong (NAS_EINVAL, NAS_ESTATE, NAS_ENOTFOUND, NAS_EEXIST)
 * without writing anything: that is the peer's or the message's fault,
 * logged and refused, and the campaign goes on.  Anything else (the disk,
 * the file, memory) is the master's own failure and stops it. */
int nas__campaign_store_error(nas_campaign *c, int rc, const char *err) {
    if (rc >= 0) return 0;
    if (rc == NAS_EINVAL || rc == NAS_ESTATE || rc == NAS_ENOTFOUND || rc == NAS_EEXIST) {
        nas_warn("campaign: refused: %s", err);
        return 0;
    }
    nas__campaign_fail(c, err);
    return 1;
}

/* A store failure: nothing after this point may be trusted to reach the
 * disk, so stop taking work; the workers keep what they hold. */
void nas__campaign_fail(nas_campaign *c, const char *msg) {
    if (!c->fatal) {
        c->fatal = 1;
        snprintf(c->fatal_msg, sizeof c->fatal_msg, "%s", msg);
        nas_error("campaign: %s; stopping (the database stays consistent)", msg);
    }
    nas__campaign_net_close(c);
}

// ---- tasks out -------------------------------------------------------------------------------

/* Input shape of the configured data set, for counting params and MACs. */
void nas__campaign_data_shape(const nas_config *cfg, int *ch, int *side) {
    *ch = strcmp(cfg->data.set, "cifar10") == 0 ? 3 : 1;
    *side = *ch == 3 ? 32 : 28;
}

/* snprintf("%s")'s truncating copy without its format parser, which cost
 * a few thousand instructions per dispatched task (three strings each). */
static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The Task message for a record: the canonical genome text (so that the
 * worker, the table lookup and the store all see one spelling), the
 * stage's fidelity and the campaign's data set and evaluation mode. */
static void wire_task_fill(const nas_campaign *c, const nas__ctask *t, const nas_fidelity *f,
                           nas_wire_task *w) {
    memset(w, 0, sizeof *w);
    w->task_id = (uint64_t)t->id;
    w->attempt = t->wire_attempt;
    copy_str(w->genome, sizeof w->genome, t->text);
    w->fidelity = *f;
    copy_str(w->dataset, sizeof w->dataset, c->cfg->data.set);
    copy_str(w->data_dir, sizeof w->data_dir, c->cfg->data.dir);
    w->mode = c->eval_mode;
    nas__campaign_weights_task(c, t, w);
}

/* Search tasks train at the search fidelity, final tasks at their own (the final one sized
 * and seeded for them; the threads are the configuration's, which a resume may change). */
static nas_fidelity task_fidelity(const nas_campaign *c, const nas__ctask *t) {
    if (t->stage != NAS_STORE_STAGE_FINAL) return c->cfg->fidelity;
    nas_fidelity f = t->final_fid;
    f.threads = c->cfg->final.fidelity.threads;
    return f;
}

/* Hand a stored task to the dispatcher with its current attempt.  Clears
 * the grace flag: from here on the dispatcher owns its lease. */
static int push(nas_campaign *c, nas__ctask *t, int64_t now_ms, char *err) {
    nas_wire_task w;
    nas_fidelity f = task_fidelity(c, t);
    if (t->scheduled) nas__campaign_sched_wire_fidelity(c, t, &f);
    wire_task_fill(c, t, &f, &w);
    t->grace = 0;
    return nas_dispatcher_push(c->disp, &w, now_ms, err);
}

/* The dispatcher keeps monotonic deadlines; the store keeps wall-clock
 * times for people and for nasctl, so lease expiries are converted. */
int64_t nas__campaign_to_wall(int64_t mono_ms) {
    return nas_wall_ms() + (mono_ms - nas_now_ms());
}

/* Write a new task (and the strategy state that proposed it) to the store,
 * then hand it to the dispatcher: the store always knows a task first.
 * When an idle worker will take it at once (nas_dispatcher_peek_lease),
 * the row is written already leased to that worker: the task insert and
 * the lease update were two of the five statements a task cost, and the
 * file ends up exactly as after both. */
static int add_task(nas_campaign *c, const nas_genome *g, int stage, const nas_fidelity *f,
                    int has_parent, uint64_t parent_hash, const void *blob, size_t blob_len,
                    int64_t now_ms, const nas__ctask *rung, int64_t *id, char *err) {
    nas__ctask *t = task_new(c);
    if (!t) return nas_set_err(err, NAS_ENOMEM, "campaign: out of memory");
    t->has_parent = has_parent;
    t->parent_hash = parent_hash;
    t->final_fid = *f;
    if (rung) {
        t->scheduled = 1;
        t->rung = rung->rung;
        t->promoted = rung->promoted;
    }
    nas_genome_canonical(g, &t->genome);
    t->hash = nas_genome_hash(&t->genome);
    t->stage = stage;
    t->wire_attempt = 1;
    char *text = t->text;
    nas_genome_format(&t->genome, text, sizeof t->text);
    int ch, side;
    nas__campaign_data_shape(c->cfg, &ch, &side);
    nas_cost cost = {0, 0};
    char cerr[NAS_ERR_LEN];
    if (nas_genome_cost(&t->genome, f, ch, side, 10, &cost, cerr) == NAS_OK) {
        t->params = cost.params;
        t->macs = cost.macs;
    }
    nas_store_new_task nt = {
        .arch_hash = t->hash,
        .arch_text = text,
        .params = t->params,
        .macs = t->macs,
        .stage = stage,
        .fidelity = *f,
        .has_parent = has_parent,
        .parent_hash = parent_hash,
    };
    int64_t expiry;
    if (nas_dispatcher_peek_lease(c->disp, &c->prelease_who, &expiry)) {
        nt.lease_worker = c->prelease_who.name;
        nt.lease_host = c->prelease_who.host;
        nt.lease_key = c->prelease_who.key;
        nt.lease_expiry_ms = nas__campaign_to_wall(expiry);
    }
    int rc = nas_store_task_add(c->store, &nt, blob, blob_len, nas_wall_ms(), &t->id, err);
    if (rc < 0) {
        c->n_tasks--;
        return rc;
    }
    if (id) *id = t->id;
    if (nt.lease_worker) {
        t->store_attempt = 1;
        c->prelease_id = t->id;
    }
    rc = push(c, t, now_ms, err);
    if (rc < 0)
        nas_error("campaign: task %lld stored but not dispatched: %s", (long long)t->id, err);
    if (c->prelease_id != 0) {
        /* The store says leased, the dispatcher did not lease it: the two
         * disagree, and going on would make the file lie. */
        c->prelease_id = 0;
        if (rc >= 0)
            nas__campaign_fail(c, "a task stored as leased was not leased by the dispatcher");
    }
    return NAS_OK;
}

int nas__campaign_add_task(nas_campaign *c, const nas_genome *g, int stage, const nas_fidelity *f,
                           const void *blob, size_t blob_len, int64_t now_ms, char *err) {
    return add_task(c, g, stage, f, 0, 0, blob, blob_len, now_ms, NULL, NULL, err);
}

int nas__campaign_add_rung(nas_campaign *c, const nas_genome *g, const nas_fidelity *f, int rung,
                           int promoted, int has_parent, uint64_t parent_hash, int64_t *id,
                           int64_t now_ms, char *err) {
    nas__ctask r = {.rung = rung, .promoted = promoted};
    return add_task(c, g, NAS_STORE_STAGE_SEARCH, f, has_parent, parent_hash, NULL, 0, now_ms, &r,
                    id, err);
}

int nas__campaign_add_child(nas_campaign *c, const nas_genome *g, int has_parent,
                            uint64_t parent_hash, const void *blob, size_t blob_len, int64_t now_ms,
                            char *err) {
    return add_task(c, g, NAS_STORE_STAGE_SEARCH, &c->cfg->fidelity, has_parent, parent_hash, blob,
                    blob_len, now_ms, NULL, NULL, err);
}

/* Whether to propose another task: until one task per worker that is
 * ready or busy can be given out (a peer that only registered is not
 * counted), and one at least (ready before the first worker comes).  With
 * a single worker this makes the campaign strictly sequential (propose,
 * evaluate, observe, propose), which is what makes an interrupted run
 * replay exactly.  The leases resumed from the previous run that still
 * wait for their worker (push_held) belong to no worker of this run: they
 * count towards that one (a restarted master proposes nothing new while its
 * worker may bring the task back, which keeps a one-worker resume exact),
 * not towards the ready workers' tasks, or a worker that came back without
 * its task would stay idle for the whole grace period. */
static int wants_proposal(const nas_campaign *c) {
    int held = (int)nas_dispatcher_held_count(c->disp);
    return c->n_tasks < 1 || c->n_tasks - held < nas_dispatcher_ready_count(c->disp);
}

/* The wall-time budget counts the time masters ran the campaign (kept in
 * the store at every checkpoint), so a resumed campaign neither gets a
 * fresh budget nor loses the time its master was down. */
int64_t nas__campaign_ran_ms(const nas_campaign *c) {
    /* A master halted by its circuit breaker waits for a person, not for
     * the search: that wait is not the search's time. */
    int64_t end = c->breaker.tripped ? c->halted_mono : nas_now_ms();
    return c->ran_before + (end - c->started_mono);
}

static int wall_budget_spent(const nas_campaign *c) {
    double limit = c->cfg->budget.wall_time_s;
    return limit > 0 && (double)nas__campaign_ran_ms(c) >= limit * 1000.0;
}

/* The search cannot go on: its strategy is done or its time is spent. */
int nas__campaign_search_over(const nas_campaign *c) {
    return nas_strategy_done(c->strategy) || wall_budget_spent(c);
}

/* Record the run time with the state (an error stops the campaign). */
static int save_ran(nas_campaign *c, char *err) {
    return nas_store_campaign_set_ran(c->store, nas__campaign_ran_ms(c), err);
}

/* One proposal into the store and the dispatcher.  Returns 1 if a task was
 * added, 0 if the strategy has nothing now, negative on a store failure.
 * The task row is the proposal's record in the history, and the strategy's
 * core state is written at the end of the same batch (campaign_state.c):
 * a crash after the commit resumes with the proposal known to both; a
 * crash before it resumes as if it was never made, and the restored RNG
 * makes the same proposal again. */
static int propose_one(nas_campaign *c, int64_t now_ms) {
    if (nas_strategy_needs_prepare(c->strategy)) {
        nas__campaign_start_prepare(c);
        return 0;
    }
    if (c->cfg->schedule.kind) return nas__campaign_sched_propose(c, now_ms);
    nas_proposal p;
    char err[NAS_ERR_LEN];
    int rc = nas_strategy_propose(c->strategy, &p, err);
    if (rc == NAS_EAGAIN || rc == NAS_ESTATE) return 0;
    if (rc < 0) {
        nas__campaign_fail(c, err);
        return rc;
    }
    c->state_dirty = 1;
    rc = nas__campaign_add_child(c, &p.genome, p.has_parent, p.parent_hash, NULL, 0, now_ms, err);
    if (rc < 0) {
        nas__campaign_fail(c, err);
        return rc;
    }
    return 1;
}

/* Keep the queue filled, move on to the final stage when the search is
 * over, and finish when the final stage is. */
void nas__campaign_fill(nas_campaign *c, int64_t now_ms) {
    if (c->closing || c->fatal) return;
    if (c->stopping) {
        /* No new leases while stopping: queued tasks stay queued in the store. */
        for (int i = 0; i < c->n_tasks; i++) {
            uint32_t att;
            if (nas_dispatcher_task_state(c->disp, (uint64_t)c->tasks[i].id, &att) ==
                NAS_DISPATCH_TASK_QUEUED)
                nas_dispatcher_cancel(c->disp, (uint64_t)c->tasks[i].id, now_ms);
        }
        nas_dispatcher_counts k;
        nas_dispatcher_counts_get(c->disp, &k);
        /* Resumed leases whose worker has not come back are not waited
         * for: they stay leased in the store for the next run's grace. */
        if (k.leased == k.held) {
            char err[NAS_ERR_LEN];
            if (save_ran(c, err) < 0) nas_warn("campaign: %s", err);
            nas_info("campaign: stopped; %d task(s) stay queued in %s for the next run", c->n_tasks,
                     c->db_path);
            nas__campaign_net_close(c);
        }
        return;
    }
    /* Halted by the circuit breaker: no proposal and no change of phase
     * until a restart; the leases out end and are recorded as usual. */
    if (c->breaker.tripped) return;
    if (c->phase == NAS__PHASE_SEARCH) {
        if (!c->search_closed && wall_budget_spent(c)) {
            nas_info("campaign: wall-time budget of %.0f s spent; no more proposals",
                     c->cfg->budget.wall_time_s);
            c->search_closed = 1;
        }
        if (!c->search_closed && c->cfg->budget.epochs > 0 &&
            nas_status_live_epochs(c->live) >= c->cfg->budget.epochs) {
            nas_info("campaign: budget of %d epochs spent; no more proposals",
                     c->cfg->budget.epochs);
            c->search_closed = 1;
        }
        while (!c->search_closed && !c->preparing && wants_proposal(c)) {
            int rc = propose_one(c, now_ms);
            if (rc <= 0) break;
        }
        if (c->fatal) return;
        int over = c->search_closed || nas_strategy_done(c->strategy);
        if (over && !c->preparing && outstanding(c, NAS_STORE_STAGE_SEARCH) == 0) {
            char err[NAS_ERR_LEN];
            if (nas__campaign_enter_final(c, now_ms, err) < 0) nas__campaign_fail(c, err);
        }
    }
    if (c->phase == NAS__PHASE_FINAL && c->n_tasks == 0) {
        char err[NAS_ERR_LEN];
        if (save_ran(c, err) < 0 || nas_store_campaign_set_state(c->store, NAS_STORE_CAMPAIGN_DONE,
                                                                 nas_wall_ms(), err) < 0) {
            nas__campaign_fail(c, err);
            return;
        }
        c->phase = NAS__PHASE_DONE;
        nas_info("campaign: done");
        /* Workers learn it and leave (nas-worker --stay waits instead).
         * The message waits in the outbox for this batch's commit; the
         * control socket lingers so closing it does not drop it. */
        nas_wire_msg bye;
        nas_wire_msg_init(&bye, NAS_MSG_DISCONNECT);
        snprintf(bye.u.disconnect, sizeof bye.u.disconnect, "campaign %s is done", c->cfg->name);
        bye.u.disconnect_done = 1;
        nas_dispatcher_broadcast(c->disp, &bye, now_ms);
        int linger = 1000;
        if (c->sock_ctl) zmq_setsockopt(c->sock_ctl, ZMQ_LINGER, &linger, sizeof linger);
        nas__campaign_net_close(c);
    }
}

// ---- create and resume ---------------------------------------------------------------------

/* Bring back the outstanding tasks of a previous run.  Queued tasks are
 * marked grace = 2 (pushed at start), leased ones grace = 1: they enter
 * the dispatcher still leased to their worker (nas_dispatcher_push_held)
 * until it returns or the grace period ends.  The genome is
 * parsed back from the canonical text the store holds, which is what the
 * uninterrupted run used too, so observations are identical. */
int nas__campaign_resume_tasks(nas_campaign *c, const int64_t *retried, int n_retried, char *err) {
    nas_store_task_info *ti = NULL;
    int n = nas_store_task_list(c->store, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_ANY, &ti, err);
    if (n < 0) return n;
    int rc = NAS_OK, leased = 0, queued = 0, finals = 0;
    for (int i = 0; i < n && rc == NAS_OK; i++) {
        if (ti[i].stage == NAS_STORE_STAGE_FINAL) finals++;
        if (ti[i].state != NAS_STORE_TASK_QUEUED && ti[i].state != NAS_STORE_TASK_LEASED) continue;
        nas__ctask *t = task_new(c);
        if (!t) {
            rc = nas_set_err(err, NAS_ENOMEM, "campaign: out of memory");
            break;
        }
        t->id = ti[i].id;
        t->stage = ti[i].stage;
        t->store_attempt = ti[i].attempt;
        t->wire_attempt = ti[i].attempt > 0 ? (uint32_t)ti[i].attempt : 1;
        t->grace = 1;
        rc = nas_genome_parse(ti[i].arch_text, strlen(ti[i].arch_text), &t->genome, err);
        snprintf(t->text, sizeof t->text, "%s", ti[i].arch_text);
        t->hash = nas_genome_hash(&t->genome);
        t->has_parent = ti[i].has_parent;
        t->parent_hash = ti[i].parent_hash;
        t->final_fid = ti[i].fidelity;
        if (rc < 0) break;
        /* A failed search task re-queued by --retry-failed was observed
         * (as a failure) by the strategy already: its result must not be
         * observed a second time. */
        for (int j = 0; j < n_retried; j++)
            t->observed |= retried[j] == t->id && t->stage == NAS_STORE_STAGE_SEARCH;
        nas__campaign_sched_resume_task(c, t);
        if (ti[i].state == NAS_STORE_TASK_LEASED && ti[i].worker[0]) {
            /* The lease stays the old worker's, in the dispatcher and in the
             * store, until the grace ends: no other worker may start it
             * meanwhile, and a master killed during the grace finds it
             * still leased.  Its worker re-attaches it by registering with
             * it running, or delivers its result. */
            nas_wire_task w;
            nas_fidelity f = task_fidelity(c, t);
            wire_task_fill(c, t, &f, &w);
            nas_worker_ident holder;
            snprintf(holder.name, sizeof holder.name, "%s", ti[i].worker);
            snprintf(holder.host, sizeof holder.host, "%s", ti[i].lease_host);
            snprintf(holder.key, sizeof holder.key, "%s", ti[i].lease_key);
            rc = nas_dispatcher_push_held(c->disp, &w, &holder, !ti[i].lease_ident_known, err);
            leased++;
        } else {
            /* Queued tasks need no grace: nobody holds them. */
            t->grace = 2;
            queued++;
        }
    }
    nas_free(ti);
    if (rc < 0) return rc;
    /* Final tasks mean the search was over, unless the campaign has been
     * extended since: then the search goes on and the final stage is
     * entered again (adding the new winners) when it ends. */
    if (finals > 0 && nas__campaign_search_over(c)) c->phase = NAS__PHASE_FINAL;
    nas_info("campaign: resuming with %d queued task(s) and %d leased by the previous run", queued,
             leased);
    return NAS_OK;
}

/* A new campaign starts its strategy from the seed; a resumed one loads
 * its state from the store (campaign_state.c). */
static int open_strategy(nas_campaign *c, int created, char *err) {
    int rc = nas_strategy_create(&c->strategy, &c->cfg->strategy, c->cfg->seed, err);
    if (rc == NAS_OK) rc = nas__campaign_sched_open(c, err);
    if (rc == NAS_OK && !created) rc = nas__campaign_state_restore(c, err);
    /* The history is in the store: memory keeps only what the search reads
     * again, so it does not grow with the campaign's results. */
    if (rc == NAS_OK) nas_strategy_bound_history(c->strategy);
    return rc;
}

/* The master's CurveZMQ keypair (docs/SECURITY.md s2).  A keypair without
 * an authorized directory, or the reverse, is refused: the first would
 * admit nobody, the second would have nothing to serve the keys with. */
static int load_keys(nas_campaign *c, char *err) {
    if (!c->opt.key_base && !c->opt.authorized) return NAS_OK;
    if (!c->opt.key_base)
        return nas_set_err(err, NAS_EINVAL,
                           "an authorized-keys directory (%s) needs the master's own keypair "
                           "(--key BASE)",
                           c->opt.authorized);
    if (!c->opt.authorized)
        return nas_set_err(err, NAS_EINVAL,
                           "the master keypair %s needs a directory of authorized client keys "
                           "(--authorized DIR)",
                           c->opt.key_base);
    /* The directory is read for real when the sockets start; a wrong path
     * is caught here, before the store is created for nothing. */
    struct stat st;
    if (stat(c->opt.authorized, &st) != 0)
        return nas_set_err(err, NAS_ENOTFOUND, "authorized-keys directory %s: %s",
                           c->opt.authorized, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return nas_set_err(err, NAS_EINVAL, "authorized-keys directory %s: not a directory",
                           c->opt.authorized);
    int rc = nas_keys_load_pair(c->opt.key_base, &c->keys, err);
    if (rc < 0) return rc;
    c->curve = 1;
    char fp[NAS_KEY_FP_LEN];
    nas_keys_fingerprint(c->keys.public_z85, fp);
    nas_info("campaign: CurveZMQ on every socket, master key %s (%s.key)", fp, c->opt.key_base);
    return NAS_OK;
}

int nas_campaign_create(nas_campaign **out, const nas_config *cfg, const nas_campaign_options *opt,
                        uv_loop_t *loop, char *err) {
    if (!out || !cfg || !loop) return nas_set_err(err, NAS_EINVAL, "campaign: NULL argument");
    nas_campaign *c = nas_calloc(1, sizeof *c);
    if (!c) return nas_set_err(err, NAS_ENOMEM, "campaign: out of memory");
    c->cfg = cfg;
    c->loop = loop;
    if (opt)
        c->opt = *opt;
    else
        nas_campaign_options_default(&c->opt);
    snprintf(c->db_path, sizeof c->db_path, "%s",
             c->opt.db_path && *c->opt.db_path ? c->opt.db_path : cfg->store);
    c->eval_mode = c->opt.eval_mode >= 0                           ? c->opt.eval_mode
                   : cfg->evaluation.mode == NAS_CONFIG_EVAL_TABLE ? NAS_EVAL_TABULAR
                                                                   : NAS_EVAL_TRAIN;
    c->started_mono = nas_now_ms();
    c->started_wall = nas_wall_ms();
    /* A restart starts the count from zero: the operator restarts after
     * fixing the cause, and the failures before it are the cause's. */
    nas_breaker_init(&c->breaker, cfg->workers.max_failed_in_a_row);
    /* Keys are read before the store is touched, so a wrong path or an
     * exposed secret stops the master before it changes anything. */
    int rc = load_keys(c, err);
    if (rc < 0) goto fail;
    rc = nas__campaign_open_store(c, err);
    if (rc < 0) goto fail;
    int created = rc;
    /* The status figures read the history once, here, never again. */
    if ((rc = nas_status_live_open(&c->live, c->store, err)) < 0) goto fail;
    rc = open_strategy(c, created, err);
    if (rc < 0) goto fail;
    if ((rc = nas__campaign_weights_open(c, err)) < 0) goto fail;
    nas_dispatcher_config dc;
    nas_dispatcher_config_default(&dc);
    dc.heartbeat_ms = cfg->workers.heartbeat_ms;
    dc.liveness = cfg->workers.liveness;
    dc.max_attempts = cfg->workers.max_attempts;
    nas_dispatcher_hooks hk = nas__campaign_hooks(c);
    rc = nas_dispatcher_create(&c->disp, &dc, &hk, err);
    if (rc < 0) goto fail;
    if (!created) {
        rc = nas__campaign_reopen(c, err);
        if (rc < 0) goto fail;
    }
    /* Counting the tasks now also keeps the counts of the finished ones, so
     * the first status request does not scan them on the loop. */
    nas_store_counts k, kf;
    if (nas__campaign_status_counts(c, &k, &kf, err) == NAS_OK) c->done_at_start = k.done;
    *out = c;
    return NAS_OK;
fail:
    nas_status_live_free(&c->live);
    nas_dispatcher_destroy(&c->disp);
    nas__campaign_weights_close(c);
    nas__campaign_sched_close(c);
    nas_strategy_destroy(&c->strategy);
    nas_store_close(&c->store);
    nas_free(c->tasks);
    explicit_bzero(&c->keys, sizeof c->keys);
    nas_free(c);
    return rc;
}

int nas_campaign_start(nas_campaign *c, char *err) {
    if (c->phase == NAS__PHASE_DONE) {
        nas_info("campaign %s is already complete in %s", c->cfg->name, c->db_path);
        return NAS_OK;
    }
    int rc = nas__campaign_net_start(c, err);
    if (rc < 0) return rc;
    int64_t now = nas_now_ms();
    /* Tasks queued by the previous run go back at once; leased ones wait. */
    int64_t grace =
        c->opt.resume_grace_ms >= 0 ? c->opt.resume_grace_ms : c->cfg->workers.lease_grace_ms;
    int waiting = 0;
    for (int i = 0; i < c->n_tasks; i++) {
        nas__ctask *t = &c->tasks[i];
        if (t->grace == 2) {
            rc = push(c, t, now, err);
            if (rc < 0) return rc;
        } else if (t->grace) {
            waiting++;
        }
    }
    /* A crash while the final tasks were being added leaves some missing;
     * entering the final stage again adds exactly those. */
    if (c->phase == NAS__PHASE_FINAL) {
        rc = nas__campaign_enter_final(c, now, err);
        if (rc < 0) return rc;
    }
    if (waiting) {
        /* At least the liveness window: a worker that was training keeps
         * reconnecting, and is heard within it once the master is up. */
        int64_t window = (int64_t)c->cfg->workers.heartbeat_ms * c->cfg->workers.liveness;
        if (grace < window) grace = window;
        c->grace_until = now + grace;
        nas_info("campaign: %d task(s) leased before the restart wait up to %lld ms for their "
                 "workers",
                 waiting, (long long)grace);
    }
    nas__campaign_batch_begin(c);
    nas__campaign_fill(c, now);
    nas__campaign_batch_end(c);
    return c->fatal ? nas_set_err(err, NAS_EDB, "%s", c->fatal_msg) : NAS_OK;
}

void nas_campaign_stop(nas_campaign *c) {
    if (c->stopping || c->closing) return;
    c->stopping = 1;
    int64_t now = nas_now_ms();
    char err[NAS_ERR_LEN];
    nas_dispatcher_counts k;
    nas_dispatcher_counts_get(c->disp, &k);
    if (c->opt.cancel_on_stop) {
        for (int i = 0; i < c->n_tasks; i++) {
            nas__ctask *t = &c->tasks[i];
            uint32_t att;
            if (nas_dispatcher_task_state(c->disp, (uint64_t)t->id, &att) !=
                NAS_DISPATCH_TASK_LEASED)
                continue;
            nas_dispatcher_cancel(c->disp, (uint64_t)t->id, now);
            if (nas_store_task_requeue(c->store, t->id, t->store_attempt, nas_wall_ms(), err) < 0)
                nas_warn("campaign: %s", err);
        }
        nas_info("campaign: stopping; leased tasks cancelled and re-queued in the store");
    } else {
        nas_info("campaign: stopping; waiting for %zu leased task(s) (signal again to exit now)",
                 k.leased - k.held);
    }
    nas__campaign_batch_begin(c);
    nas__campaign_fill(c, now);
    nas__campaign_batch_end(c);
}

/* Second signal: close now.  Every committed step is on disk; what was in
 * flight stays leased and the next run's grace period handles it. */
void nas_campaign_abort(nas_campaign *c) {
    nas_warn("campaign: exiting at once; leased tasks stay leased in %s", c->db_path);
    nas__campaign_net_close(c);
}

int nas_campaign_done(const nas_campaign *c) {
    return c->phase == NAS__PHASE_DONE;
}

int nas_campaign_status(const nas_campaign *c, char *err) {
    if (c->fatal) return nas_set_err(err, NAS_EDB, "%s", c->fatal_msg);
    return NAS_OK;
}

void nas_campaign_destroy(nas_campaign **cp) {
    if (!cp || !*cp) return;
    nas_campaign *c = *cp;
    nas__campaign_net_free(c);
    nas_status_live_free(&c->live);
    nas_dispatcher_destroy(&c->disp);
    nas__campaign_weights_close(c);
    nas__campaign_sched_close(c);
    nas_strategy_destroy(&c->strategy);
    nas_store_close(&c->store);
    nas_free(c->tasks);
    nas_free(c->failed_later);
    nas__campaign_outbox_free(c);
    explicit_bzero(&c->keys, sizeof c->keys); /* the secret key dies with the campaign */
    nas_free(c);
    *cp = NULL;
}
