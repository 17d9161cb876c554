/*
 * status_fidelity.h - the multi-fidelity part of the status document
 * (status.h): the resources a campaign has spent against its budgets, and
 * the rank correlation between its fidelities (fidelity_rank.h), both read
 * from the store so the live master and `nasctl status --db` agree.
 *
 * Keys written: "resources" {epochs, epochs_budget, wall_s, wall_budget_s,
 * stopped} (a budget of 0: none; from the database alone the budgets are
 * unknown and null; stopped: search runs stopped early) and
 * "fidelity_ranks" (nas_fidelity_ranks_json's object).
 */
#ifndef NAS_STATUS_FIDELITY_H
#define NAS_STATUS_FIDELITY_H

#include "common/json.h"
#include "master/fidelity_rank.h"
#include "master/store.h"

#include <stdint.h>
#include <stdio.h>

/* Epochs one result counts for: its learning curve's length (a stopped
 * run counts what it trained, a promotion the epochs it added), or 1 for
 * a result without a curve (a table lookup). */
int64_t nas_status_epochs_of(int n_curve);

/* Search epochs trained so far, summed over the store's search results. */
int nas_status_epochs_spent(nas_store *st, int64_t *epochs, char *err);

/* The search tasks an early-stopping rule stopped, read from their
 * task-stopped events (campaign_sched.c writes one per stop, in the same
 * commit as the run's result): their ids in ascending order into *ids
 * (nas_free; NULL when none).  Returns the count or a negative error.  A
 * stopped run is a result like any other in the store; only its event
 * tells it from a run that trained all its epochs. */
int nas_status_stopped_tasks(nas_store *st, int64_t **ids, char *err);

/* 1 when `task` is in the sorted ids. */
int nas_status_is_stopped(const int64_t *ids, int n, int64_t task);

/* Write the two keys into an open object from figures already known
 * (the live master's, status_live.h): epochs spent, budgets and the
 * stopped count < 0 are written null, and so is fr when NULL. */
void nas_status_json_fidelity_of(nas_json_buf *b, int64_t epochs, int64_t epochs_budget,
                                 double wall_budget_s, int64_t created_ms, int64_t now_wall_ms,
                                 int64_t stopped, const nas_fidelity_ranks *fr);

/* The same from the store (every result read): budgets < 0 are written null. */
void nas_status_json_fidelity(nas_json_buf *b, nas_store *st, int64_t epochs_budget,
                              double wall_budget_s, int64_t created_ms, int64_t now_wall_ms);

/* Print them for people (nothing when absent), with a warning when a
 * fidelity ranks poorly against the next. */
void nas_status_print_fidelity(const nas_json *doc, FILE *f);

#endif
