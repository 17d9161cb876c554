/*
 * status_live.h - the figures of the live master's status document that a
 * read of the store would take O(results) to produce (status.h), kept up
 * to date as results are committed instead: search epochs spent, runs
 * stopped early, the best search result, the fidelity rank correlations
 * (fidelity_rank.h), and the task counts by stage and state.
 *
 * The status document is built on the master's event loop, which also
 * answers workers.  Read from the store, one document cost seconds at
 * 100,000 results, during which nothing was dispatched and heartbeats went
 * unanswered, so any client polling the status socket could stall a
 * campaign.  With these figures a document costs O(live tasks + fidelity
 * groups' results) in memory, and no read of the history.
 *
 * The figures are those nas_status_from_store computes from the same
 * store, by construction (one accumulator, fidelity_rank.h) or by a rule
 * the tests check (tests/test_status_live.c): the history is read once,
 * when the master opens its store, and each committed result or stop is
 * added after.
 */
#ifndef NAS_STATUS_LIVE_H
#define NAS_STATUS_LIVE_H

#include "common/fidelity.h"
#include "common/json.h"
#include "master/store.h"

#include <stdint.h>

typedef struct nas_status_live nas_status_live;

/* From the store's history (one light read of every result,
 * nas_store_result_scan) and its best search result.  NAS_OK, or the store's error with err filled.
 */
int nas_status_live_open(nas_status_live **out, nas_store *st, char *err);
void nas_status_live_free(nas_status_live **l);

/* A result the store applied (the first of its task), with the task's
 * stage and stored fidelity; val and test as given to the store (NaN:
 * none).  NAS_OK, NAS_ENOMEM or NAS_ERANGE (err filled). */
int nas_status_live_result(nas_status_live *l, int64_t task_id, int stage, const nas_fidelity *f,
                           uint64_t arch, double val, double test, int n_curve, char *err);

/* A task-stopped event was written (campaign_sched.c). */
void nas_status_live_stopped(nas_status_live *l);

/* Search epochs trained, all runs (what budget.epochs limits). */
int64_t nas_status_live_epochs(const nas_status_live *l);

/* Search evaluations per hour over the history read at open, its first
 * result to its last (in the order recorded): what a database tells of
 * earlier runs' time (nas_status_from_store).  0 below two results. */
double nas_status_live_rate(const nas_status_live *l);

/* Task counts by state for the search and the final stage.  oldest_live is
 * the lowest id of a task still queued or leased (INT64_MAX: none): every
 * task below it is done or failed for good and its counts are kept, so
 * only the tasks from there on are counted in the store. */
int nas_status_live_counts(nas_status_live *l, nas_store *st, int64_t oldest_live,
                           nas_store_counts *search, nas_store_counts *final, char *err);

/* The "best" key (status.h): the best search result, read from the store
 * by its task id only when a better one arrived since the last call. */
void nas_status_live_json_best(nas_status_live *l, nas_store *st, nas_json_buf *b);

/* The "resources" and "fidelity_ranks" keys (status_fidelity.h). */
void nas_status_live_json_fidelity(nas_status_live *l, nas_json_buf *b, int64_t epochs_budget,
                                   double wall_budget_s, int64_t created_ms, int64_t now_wall_ms);

#endif
