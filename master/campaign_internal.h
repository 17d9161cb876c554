/*
 * campaign_internal.h - the campaign's state, shared by campaign.c (the
 * store/strategy/dispatcher glue), campaign_net.c (sockets, timers,
 * signals of the loop) and campaign_final.c (final stage, summary, status
 * document).  Not part of any public API.
 */
#ifndef NAS_CAMPAIGN_INTERNAL_H
#define NAS_CAMPAIGN_INTERNAL_H

#include "common/err.h"
#include "common/genome.h"
#include "common/keys.h"
#include "common/wire.h"
#include "master/campaign.h"
#include "master/auth.h"
#include "master/breaker.h"
#include "master/dispatcher.h"
#include "master/status_live.h"
#include "master/store.h"
#include "master/strategy.h"
#include "master/weights.h"
#include "master/zmq_uv.h"

/* A task the campaign has written to the store and not yet seen finish. */
typedef struct nas__ctask {
    int64_t id;
    int stage;             /* enum nas_store_stage */
    int store_attempt;     /* attempt of the task's last lease in the store (0: none) */
    uint32_t wire_attempt; /* the dispatcher's attempt (counted failures + 1) */
    int grace;             /* 1: leased by a previous master, not yet in the dispatcher */
    nas_genome genome;     /* canonical */
    char text[NAS_GENOME_TEXT_MAX]; /* its canonical text, formatted once */
    uint64_t hash;
    int64_t params, macs;
    int has_parent;       /* weight inheritance: the proposal's parent */
    uint64_t parent_hash;
    int observed;         /* the strategy saw it fail before --retry-failed re-queued it */
    int scheduled;        /* 1: created by the rung scheduler (campaign_sched.c) */
    int rung;             /* its rung */
    int promoted;         /* 1: continues its own weights from the rung below */
    nas_fidelity final_fid; /* final stage: the task's own fidelity (size, seed) */
} nas__ctask;

/* A message to a worker held back until the batch that produced it has
 * committed (campaign_state.c): its identity and its encoded envelope. */
typedef struct nas__outmsg {
    uint8_t id[256]; /* ZeroMQ routing ids are at most 255 bytes */
    size_t id_len;
    uint8_t *buf;
    size_t len;
} nas__outmsg;

enum nas__phase {
    NAS__PHASE_SEARCH = 0,
    NAS__PHASE_FINAL = 1,
    NAS__PHASE_DONE = 2,
};

struct nas_campaign {
    const nas_config *cfg;
    nas_campaign_options opt;
    uv_loop_t *loop;
    char db_path[NAS_CONFIG_PATH_MAX];

    nas_store *store;
    nas_strategy *strategy;
    nas_dispatcher *disp;
    nas_weights *weights; /* parameter server (campaign_weights.c) */
    struct nas__csched *sched; /* schedule and early stopping (campaign_sched.c); NULL: none */

    /* Outstanding tasks (queued, leased or in grace), unordered. */
    nas__ctask *tasks;
    int n_tasks, cap_tasks;

    int phase;         /* enum nas__phase */
    int search_closed; /* wall-time budget spent: no more proposals */
    int stopping;      /* graceful stop requested */
    int closing;       /* handles are being closed */
    int fatal;         /* a store failure stopped the campaign */
    char fatal_msg[NAS_ERR_LEN];
    int eval_mode;        /* enum nas_eval_mode sent with every task */
    int64_t grace_until;  /* monotonic ms; resumed leases are pushed after it */
    int64_t created_wall; /* campaign creation, wall ms */
    int64_t ran_before;   /* ms earlier masters ran the campaign (the wall-time budget) */
    /* The last failure a worker blamed on its environment, for status;
     * cleared by the next result (some worker can evaluate again). */
    char env_problem[NAS_ERR_LEN];
    int64_t started_mono; /* this process's start, monotonic ms */
    /* Failures for good in a row (workers.max_failed_in_a_row): once
     * tripped, nothing new is proposed or given out until a restart, and
     * the wall-time budget stops counting at halted_mono (monotonic ms). */
    nas_breaker breaker;
    int64_t halted_mono;
    /* The last status document and what it cost (campaign_net.c): reused
     * while younger than NAS_STATUS_REUSE times its cost, so that clients
     * polling the status socket cannot take the loop from the workers. */
    char *status_doc;
    int64_t status_doc_ms, status_cost_ms; /* monotonic */
    nas_log_limit status_log;              /* malformed status requests (common/log.h) */
    int64_t started_wall;
    int64_t done_at_start;    /* search results already in the store at start */
    int64_t n_done, n_failed; /* results/failures recorded by this process */
    /* Search epochs spent (budget.epochs) and every other figure of the
     * status document that a read of the store would cost O(results). */
    nas_status_live *live;
    int preparing;            /* strategy prepare running in the thread pool */
    int prepare_rc;
    char prepare_err[NAS_ERR_LEN];
    /* Search tasks that failed for good while the strategy was preparing
     * (it may not be touched then): recorded when the step is done. */
    struct nas__cfailed *failed_later;
    int n_failed_later, cap_failed_later;

    /* Group commit (campaign_state.c): depth of nested batches, whether the
     * strategy changed since the core state was last written, and the
     * messages waiting for the commit. */
    int batch_depth;
    int state_dirty;
    /* A task stored already leased (add_task): its id and the worker the
     * dispatcher is about to lease it to; hook_lease then writes nothing.
     * 0: none pending. */
    int64_t prelease_id;
    nas_worker_ident prelease_who;
    nas__outmsg *outbox;
    int n_out, cap_out;

    /* Sockets and handles (campaign_net.c). */
    void *zctx;
    void *sock_ctl, *sock_wts, *sock_sts;
    nas_zmq_uv *z_ctl, *z_wts, *z_sts;
    /* CurveZMQ (docs/SECURITY.md): the master's keypair, wiped on destroy,
     * and the ZAP handler, served from the loop through z_auth. */
    int curve;
    nas_keypair keys;
    nas_auth *auth;
    nas_zmq_uv *z_auth;
    uv_timer_t tick, checkpoint, closer;
    uv_work_t work;
    int handles_open;
};

/* campaign.c */
nas__ctask *nas__campaign_find(nas_campaign *c, int64_t id);
/* Forget a finished task. */
void nas__campaign_task_drop(nas_campaign *c, nas__ctask *t);
/* A monotonic deadline as wall-clock time (what the store keeps). */
int64_t nas__campaign_to_wall(int64_t mono_ms);
void nas__campaign_fill(nas_campaign *c, int64_t now_ms);
void nas__campaign_fail(nas_campaign *c, const char *msg);

/* campaign_hooks.c */
nas_dispatcher_hooks nas__campaign_hooks(nas_campaign *c);
void nas__campaign_housekeep(nas_campaign *c, int64_t now_ms);
/* Record the failures held back while the strategy prepared (hook_failed). */
void nas__campaign_failed_replay(nas_campaign *c);
void nas__campaign_note_message(nas_campaign *c, const nas_wire_msg *m);
int nas__campaign_store_error(nas_campaign *c, int rc, const char *err);
/* Channels and native side of the campaign's data set's images. */
void nas__campaign_data_shape(const nas_config *cfg, int *ch, int *side);
int nas__campaign_add_task(nas_campaign *c, const nas_genome *g, int stage, const nas_fidelity *f,
                           const void *blob, size_t blob_len, int64_t now_ms, char *err);
/* Same, naming the architecture whose weights the child inherits. */
int nas__campaign_add_child(nas_campaign *c, const nas_genome *g, int has_parent,
                            uint64_t parent_hash, const void *blob, size_t blob_len,
                            int64_t now_ms, char *err);

/* A task of the rung scheduler: the architecture at rung `rung` (the
 * store records `f`, the rung's fidelity), a promotion continuing from its
 * own weights when `promoted`; *id gets the task's id. */
int nas__campaign_add_rung(nas_campaign *c, const nas_genome *g, const nas_fidelity *f, int rung,
                           int promoted, int has_parent, uint64_t parent_hash, int64_t *id,
                           int64_t now_ms, char *err);
/* Record a search or final result as hook_result does; `stopped`: an
 * early stop decided by the master (the scheduler never promotes it). */
int nas__campaign_record(nas_campaign *c, const nas_wire_result *r, const char *worker,
                         int stopped);

/* campaign_sched.c: NULL-safe hooks of the multi-fidelity search. */
typedef struct nas__csched nas__csched;
int nas__campaign_sched_open(nas_campaign *c, char *err);
void nas__campaign_sched_close(nas_campaign *c);
/* Like propose_one: 1 a task was added, 0 nothing now, < 0 failure. */
int nas__campaign_sched_propose(nas_campaign *c, int64_t now_ms);
void nas__campaign_sched_wire_fidelity(const nas_campaign *c, const nas__ctask *t,
                                       nas_fidelity *f);
void nas__campaign_sched_resume_task(const nas_campaign *c, nas__ctask *t);
/* 1: the task is a promotion, not one of the strategy's proposals. */
int nas__campaign_sched_skip(const nas_campaign *c, int64_t task_id);
/* 1: the task's worker pushes its weights (a rung below the top: a
 * promotion, or the first run of an architecture's first candidate). */
int nas__campaign_sched_pushes(const nas_campaign *c, const nas__ctask *t);
/* 1: the architecture's weights may still be continued. */
int nas__campaign_sched_keeps(const nas_campaign *c, uint64_t arch);
int nas__campaign_sched_result(nas_campaign *c, const nas__ctask *t, int ok, double value,
                               const float *curve, int n_curve, char *err);
void nas__campaign_sched_progress(void *ctx, const nas_wire_progress *p, const char *worker);
/* The strategy core wrapped with the schedule's state (NAS_ENOTFOUND: no
 * schedule, store the core as it is), and back. */
int nas__campaign_sched_wrap(const nas_campaign *c, const uint8_t *core, size_t n, uint8_t **out,
                             size_t *out_n);
int nas__campaign_sched_unwrap(nas_campaign *c, const uint8_t *blob, size_t n,
                               const uint8_t **core, size_t *core_n, char *err);
void nas__campaign_sched_json(const nas_campaign *c, char *buf, size_t cap);

/* campaign_state.c */
/* Restore `s` (fresh, same config and seed) from the store: core blob plus
 * the history in the task rows; a format-1 blob is moved to format 2.
 * NAS_OK with `s` untouched when the store holds no state yet. */
int nas__campaign_state_load(nas_store *st, nas_strategy *s, char *err);
/* The same for the campaign's strategy, with its schedule (campaign_sched.c). */
int nas__campaign_state_restore(nas_campaign *c, char *err);
int nas__campaign_state_observe(nas_campaign *c, const nas__ctask *t, int ok, double acc,
                                int64_t params, int64_t macs, int numbered, char *err);
void nas__campaign_batch_begin(nas_campaign *c);
void nas__campaign_batch_end(nas_campaign *c);
int nas__campaign_outbox_put(nas_campaign *c, const uint8_t *id, size_t id_len,
                             const nas_wire_msg *m);
void nas__campaign_outbox_free(nas_campaign *c);

/* campaign_weights.c */
int nas__campaign_weights_open(nas_campaign *c, char *err);
void nas__campaign_weights_close(nas_campaign *c);
void nas__campaign_weights_task(const nas_campaign *c, const nas__ctask *t, nas_wire_task *w);
void nas__campaign_weights_read(nas_zmq_uv *z, void *sock, void *data);
/* After the bulk socket is bound: workers learn its endpoint from the
 * answer to their Register. */
void nas__campaign_weights_advertise(nas_campaign *c);
void nas__campaign_weights_sweep(nas_campaign *c);
void nas__campaign_weights_json(const nas_campaign *c, char *buf, size_t cap);

/* campaign_final.c */
/* Task counts by state of both stages, as the status document gives them
 * (nas_status_live_counts, from the oldest live task on). */
int nas__campaign_status_counts(nas_campaign *c, nas_store_counts *s, nas_store_counts *fin,
                                char *err);
int nas__campaign_enter_final(nas_campaign *c, int64_t now_ms, char *err);

/* campaign_net.c */
int nas__campaign_net_start(nas_campaign *c, char *err);
void nas__campaign_net_close(nas_campaign *c);
void nas__campaign_net_free(nas_campaign *c);
void nas__campaign_start_prepare(nas_campaign *c);
int nas__campaign_send(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *m);

/* How long masters have run this campaign, this run included (ms). */
int64_t nas__campaign_ran_ms(const nas_campaign *c);
/* 1 when the search cannot go on: its strategy is done or its time spent. */
int nas__campaign_search_over(const nas_campaign *c);
/* Bring a resumed campaign's outstanding tasks back; `retried` lists the
 * search tasks --retry-failed re-queued (the strategy saw them fail). */
int nas__campaign_resume_tasks(nas_campaign *c, const int64_t *retried, int n_retried, char *err);

/* campaign_open.c: take and bind the store (1 created, 0 resumed, or an
 * error), and on a resume reopen the campaign. */
int nas__campaign_open_store(nas_campaign *c, char *err);
int nas__campaign_reopen(nas_campaign *c, char *err);

#endif
