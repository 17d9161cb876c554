/*
 * campaign.h - one search run inside nas-master: config -> store ->
 * strategy -> dispatcher -> workers, and back (ARCHITECTURE.md, The flow).
 *
 * The campaign glues the pieces and owns the order in which they change,
 * because that order is what makes a crash harmless:
 *
 *  - a proposal is written to the store (task row and the strategy state
 *    that made it, one transaction) before the dispatcher may lease it;
 *  - a result is observed by the strategy, the new strategy state is
 *    serialised, and result + state are committed in one transaction before
 *    the worker is acknowledged; a store failure stops the campaign
 *    cleanly (the worker keeps its result and delivers it to the next
 *    master);
 *  - a task that failed K times is observed as a failure (ok = 0) under
 *    the same rule.
 *
 * Resume: the store is reopened, the strategy blob loaded, queued tasks go
 * back to the dispatcher, and tasks that were leased when the previous
 * master died wait for a grace period so that their workers, which
 * reconnect on their own, can deliver them (or re-attach the lease) rather
 * than the work being done twice.  With one worker and a fixed seed the
 * resumed history equals an uninterrupted one.
 *
 * When the search budget (evaluations and/or wall time) is spent, the
 * final stage retrains the top-k architectures at the final fidelity and
 * records their test accuracy apart from the search results.  Then the
 * campaign is DONE and its handles close, so uv_run() returns.
 *
 * Everything runs on the caller's libuv loop; the only work sent to the
 * thread pool is the strategy's expensive step (nas_strategy_prepare).
 */
#ifndef NAS_CAMPAIGN_H
#define NAS_CAMPAIGN_H

#include "master/config.h"

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

typedef struct nas_campaign nas_campaign;

typedef struct nas_campaign_options {
    const char *db_path;     /* overrides cfg->store when not NULL */
    int cancel_on_stop;      /* 1: a graceful stop cancels leased tasks; 0: waits for them */
    int eval_mode;           /* -1: from the config; else an enum nas_eval_mode (synthetic
                                mode is for benchmarks and protocol tests only) */
    int insecure;            /* 1: allow non-loopback binds without CurveZMQ keys */
    const char *key_base;    /* CurveZMQ keypair BASE (.key_secret, .key); NULL: plaintext */
    const char *authorized;  /* directory of authorized client keys; required with key_base */
    int64_t resume_grace_ms; /* how long resumed leases wait for their workers; -1 = the
                                config's workers.lease_grace */
    int64_t tick_ms;         /* housekeeping period; 0 = heartbeat / 4 */
    int64_t checkpoint_ms;   /* period of the liveness checkpoint in the store; 0 = 5000 */
    int retry_failed;        /* 1: tasks failed for good go back to the queue on resume */
    const char *weights_advertise; /* the weight store's endpoint as workers reach it (NAT, a
                                      proxy, a DNS name); NULL: the bound listen.weights */
} nas_campaign_options;

void nas_campaign_options_default(nas_campaign_options *opt);

/* Open (or create) the store, bind it to the campaign (a different config
 * on an existing store is refused with NAS_ECONFIG naming the difference),
 * create or restore the strategy and prepare the resume.  Nothing is bound
 * and no handle is started yet.  `cfg` must outlive the campaign. */
int nas_campaign_create(nas_campaign **out, const nas_config *cfg, const nas_campaign_options *opt,
                        uv_loop_t *loop, char *err);

/* Bind the control, weights and status sockets, start the timers and fill
 * the queue.  A campaign already DONE in its store starts nothing and
 * returns NAS_OK (nas_campaign_done() is then 1). */
int nas_campaign_start(nas_campaign *c, char *err);

/* Graceful stop: no new leases or proposals; leased tasks are cancelled
 * (and put back in the queue of the store) or waited for, per the options.
 * The handles close once nothing is in flight.  Calling it twice is the
 * same as calling it once. */
void nas_campaign_stop(nas_campaign *c);

/* Close every handle now (second signal): whatever is in flight stays
 * leased in the store, which is consistent after any committed step. */
void nas_campaign_abort(nas_campaign *c);

/* 1 once the campaign has finished its final stage (state DONE). */
int nas_campaign_done(const nas_campaign *c);

/* NAS_OK, or the error that stopped the campaign (e.g. the store failed),
 * with its message in err. */
int nas_campaign_status(const nas_campaign *c, char *err);

/* Print the summary: best architecture (text, validation and test
 * accuracy, params, MACs), final-stage results, counts and the database. */
void nas_campaign_summary(nas_campaign *c, FILE *f);

/* The status document nasctl shows (JSON, malloc'd; free with nas_free). */
char *nas_campaign_status_json(nas_campaign *c);

/* Re-read the authorized-keys directory (SIGHUP).  Returns the number of
 * keys now in force; NAS_ESTATE when the campaign runs without keys; any
 * other error leaves the old key set in force (err says why). */
int nas_campaign_reload_auth(nas_campaign *c, char *err);

/* Free everything; the loop must have run until the handles closed. */
void nas_campaign_destroy(nas_campaign **cp);

#endif
