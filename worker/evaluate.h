/*
 * evaluate.h - how a worker turns a Task into a Result, behind one call.
 *
 * Three modes, chosen per task (nas_wire_task.mode):
 *  - tabular: look the architecture up in a benchmark CSV loaded once
 *    (common/table.h); an unknown architecture is a failure saying so.
 *  - train: build the genome with the builder (common/builder.h; the
 *    fidelity's channels and cells size it) and train it with the
 *    engine's trainer (common/trainer.h) on the task's data set, prepared
 *    once per data recipe and kept for later tasks.  The architecture
 *    string may also name a preset or a reference net (refnets.h), as
 *    for nas-train.  This file is the only place of the worker that
 *    depends on the engine.
 *  - synthetic: metrics derived from a hash of the genome text, with an
 *    optional simulated epoch time; used by bench/dispatch and by protocol
 *    tests, never by a real campaign.
 *
 * Tabular lookups try the exact architecture string, then its canonical
 * form (common/genome.h), so an NB201 string that builds the same network
 * as a table row finds that row.
 *
 * The evaluator is used by one thread at a time (the worker's task
 * thread).  It streams one Progress per epoch through hooks->progress and
 * polls hooks->cancelled between epochs (synthetic: every few ms).
 */
#ifndef NAS_EVALUATE_H
#define NAS_EVALUATE_H

/* Data recipes (data set + resolution + split + subset + seed) kept
 * prepared in memory; the least recently used one is dropped beyond this. */
#define NAS_EVAL_DATA_CACHE 4

#include "common/wire.h"

#include <stdatomic.h>

typedef struct nas_evaluator nas_evaluator;

typedef struct nas_evaluator_config {
    /* tabular */
    const char *table_path;  /* CSV to load once; NULL: tabular tasks fail */
    const char *key_col;     /* architecture column, default "arch" */
    const char *acc_col;     /* validation accuracy (search signal), default "val_acc" */
    const char *loss_col;    /* optional validation loss column, default "val_loss" if present */
    const char *test_col;    /* optional test accuracy column, default "test_acc" if present */
    const char *params_col;  /* optional, default "params" if present */
    const char *macs_col;    /* optional, default "macs" if present */
    const char *seconds_col; /* optional simulated training time, default "seconds" if present */
    double acc_scale;        /* multiply accuracies (0.01 for percent tables), default 1 */
    /* train */
    const char *data_dir; /* default data directory */
    struct nas_ps_client *ps; /* parameter server (worker/ps_client.h), borrowed; NULL: children
                                 train fresh and nothing is pushed */
    /* synthetic */
    int synthetic_epoch_ms;         /* simulated time per epoch, default 0 */
    char worker[NAS_WIRE_NAME_MAX]; /* name written into results */
} nas_evaluator_config;

void nas_evaluator_config_default(nas_evaluator_config *cfg);

/* Create an evaluator; loads the table if one is named (errors name the
 * file, line and column: a missing accuracy column is refused here). */
int nas_evaluator_create(nas_evaluator **out, const nas_evaluator_config *cfg, char *err);
void nas_evaluator_destroy(nas_evaluator **ep);

typedef struct nas_eval_hooks {
    void *ctx;
    void (*progress)(void *ctx, const nas_wire_progress *p); /* may be NULL */
    int (*cancelled)(void *ctx);                             /* may be NULL */
    atomic_int *cancel; /* may be NULL; lets training stop between batches */
} nas_eval_hooks;

/* Evaluate one task into *out (task id, attempt and worker filled in).
 * Returns NAS_OK, or a negative error with the failure reason in err:
 * NAS_ENOTFOUND (architecture not in the table), NAS_ECANCELED,
 * NAS_EUNSUPPORTED (mode not available), NAS_EFORMAT (bad table cell). */
int nas_evaluator_run(nas_evaluator *ev, const nas_wire_task *task, const nas_eval_hooks *hooks,
                      nas_wire_result *out, char *err);

/* 1 when the last run failed because of this worker's environment rather
 * than the architecture: its data set missing or unreadable (any failure
 * before the data is in memory), out of memory, an I/O error, a mode it
 * cannot serve (no --table).  Every other task would fail the same way
 * here, so the agent gives the task back and stops (docs/PROTOCOL.md). */
int nas_evaluator_env_failure(const nas_evaluator *ev);

#endif
