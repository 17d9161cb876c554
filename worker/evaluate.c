/*
 * evaluate.c - tabular, synthetic and (once merged) training evaluation of
 * one task (see evaluate.h).
 */
#include "worker/evaluate.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/table.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct nas_evaluator {
    nas_evaluator_config cfg;
    nas_table *table;
    /* Column indexes in the table, -1 when absent. */
    int c_acc, c_loss, c_test, c_params, c_macs, c_seconds;
};

void nas_evaluator_config_default(nas_evaluator_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->key_col = "arch";
    cfg->acc_col = "val_acc";
    cfg->acc_scale = 1.0;
    cfg->threads = 1;
}

/* An optional column: the named one must exist when given explicitly; the
 * default name is used only if present. */
static int optional_col(const nas_table *t, const char *given, const char *dflt, int *out,
                        const char *path, char *err) {
    if (given) {
        *out = nas_table_column(t, given);
        if (*out < 0)
            return nas_set_err(err, NAS_ENOTFOUND, "%s: no column named '%s'", path, given);
        return NAS_OK;
    }
    *out = nas_table_column(t, dflt);
    if (*out < 0) *out = -1;
    return NAS_OK;
}

int nas_evaluator_create(nas_evaluator **out, const nas_evaluator_config *cfg, char *err) {
    if (!(cfg->acc_scale > 0) || cfg->synthetic_epoch_ms < 0)
        return nas_set_err(err, NAS_EINVAL, "evaluator: acc_scale must be > 0 and "
                           "synthetic_epoch_ms >= 0");
    nas_evaluator *ev = nas_calloc(1, sizeof *ev);
    if (!ev) return nas_set_err(err, NAS_ENOMEM, "evaluator: out of memory");
    ev->cfg = *cfg;
    int rc = NAS_OK;
    if (cfg->table_path) {
        const char *p = cfg->table_path;
        rc = nas_table_load(&ev->table, p, cfg->key_col ? cfg->key_col : "arch", err);
        if (rc < 0) goto fail;
        const char *acc = cfg->acc_col ? cfg->acc_col : "val_acc";
        ev->c_acc = nas_table_column(ev->table, acc);
        if (ev->c_acc < 0) {
            rc = nas_set_err(err, NAS_ENOTFOUND, "%s: no accuracy column named '%s'", p, acc);
            goto fail;
        }
        if ((rc = optional_col(ev->table, cfg->loss_col, "val_loss", &ev->c_loss, p, err)) < 0 ||
            (rc = optional_col(ev->table, cfg->test_col, "test_acc", &ev->c_test, p, err)) < 0 ||
            (rc = optional_col(ev->table, cfg->params_col, "params", &ev->c_params, p, err)) < 0 ||
            (rc = optional_col(ev->table, cfg->macs_col, "macs", &ev->c_macs, p, err)) < 0 ||
            (rc = optional_col(ev->table, cfg->seconds_col, "seconds", &ev->c_seconds, p, err)) < 0)
            goto fail;
        nas_info("evaluator: table %s: %d architectures", p, nas_table_rows(ev->table));
    }
    *out = ev;
    return NAS_OK;
fail:
    nas_evaluator_destroy(&ev);
    return rc;
}

void nas_evaluator_destroy(nas_evaluator **ep) {
    if (!ep || !*ep) return;
    nas_table_destroy(&(*ep)->table);
    nas_free(*ep);
    *ep = NULL;
}

static int cancelled(const nas_eval_hooks *h) { return h && h->cancelled && h->cancelled(h->ctx); }

static void progress(const nas_eval_hooks *h, const nas_wire_task *t, int epoch, int epochs,
                     double train_loss, double val_loss, double val_acc) {
    if (!h || !h->progress) return;
    nas_wire_progress p = {t->task_id, t->attempt, epoch, epochs, train_loss, val_loss, val_acc};
    h->progress(h->ctx, &p);
}

// ---- tabular -----------------------------------------------------------------------------

/* Read an optional number cell; absent columns leave *out alone. */
static int cell(const nas_evaluator *ev, int row, int col, double *out, char *err) {
    if (col < 0) return NAS_OK;
    return nas_table_number(ev->table, row, col, out, err);
}

static int run_tabular(nas_evaluator *ev, const nas_wire_task *t, const nas_eval_hooks *h,
                       nas_wire_result *r, char *err) {
    if (!ev->table)
        return nas_set_err(err, NAS_EUNSUPPORTED,
                           "tabular task but this worker has no table (start it with --table)");
    int row = nas_table_find(ev->table, t->genome, strlen(t->genome));
    if (row < 0)
        return nas_set_err(err, NAS_ENOTFOUND, "architecture not in the table: %.200s", t->genome);
    double acc = 0, loss = 0, test = -1, params = 0, macs = 0, secs = 0;
    int rc = cell(ev, row, ev->c_acc, &acc, err);
    if (rc == NAS_OK) rc = cell(ev, row, ev->c_loss, &loss, err);
    if (rc == NAS_OK) rc = cell(ev, row, ev->c_test, &test, err);
    if (rc == NAS_OK) rc = cell(ev, row, ev->c_params, &params, err);
    if (rc == NAS_OK) rc = cell(ev, row, ev->c_macs, &macs, err);
    if (rc == NAS_OK) rc = cell(ev, row, ev->c_seconds, &secs, err);
    if (rc < 0) return rc;
    acc *= ev->cfg.acc_scale;
    if (!(acc >= 0 && acc <= 1))
        return nas_set_err(err, NAS_EFORMAT, "table accuracy %g for %.100s is outside [0, 1] "
                           "(percent tables need acc_scale 0.01)", acc, t->genome);
    r->val_acc = acc;
    r->val_loss = loss >= 0 ? loss : 0;
    if (ev->c_test >= 0 && t->fidelity.test) {
        test *= ev->cfg.acc_scale;
        if (!(test >= 0 && test <= 1))
            return nas_set_err(err, NAS_EFORMAT, "table test accuracy %g is outside [0, 1]", test);
        r->has_test = 1;
        r->test_acc = test;
    }
    r->params = params > 0 ? (int64_t)params : 0;
    r->macs = macs > 0 ? (int64_t)macs : 0;
    r->seconds = secs > 0 ? secs : 0;
    r->n_curve = 1;
    r->curve[0] = (float)acc;
    progress(h, t, t->fidelity.epochs, t->fidelity.epochs, r->val_loss, r->val_loss, acc);
    return NAS_OK;
}

// ---- synthetic -----------------------------------------------------------------------------

static uint64_t text_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Deterministic pretend-training: the final accuracy is a function of the
 * genome text, reached along a saturating curve, one epoch per
 * synthetic_epoch_ms, checking for cancellation every few milliseconds. */
static int run_synthetic(nas_evaluator *ev, const nas_wire_task *t, const nas_eval_hooks *h,
                         nas_wire_result *r, char *err) {
    uint64_t hash = text_hash(t->genome);
    double final = 0.5 + 0.45 * (double)(hash % 10007) / 10007.0;
    int epochs = t->fidelity.epochs;
    int64_t start = nas_now_ms();
    for (int e = 1; e <= epochs; e++) {
        for (int waited = 0; waited < ev->cfg.synthetic_epoch_ms; waited += 5) {
            if (cancelled(h)) return nas_set_err(err, NAS_ECANCELED, "canceled at epoch %d", e);
            int step = ev->cfg.synthetic_epoch_ms - waited;
            nas_sleep_ms(step < 5 ? step : 5);
        }
        if (cancelled(h)) return nas_set_err(err, NAS_ECANCELED, "canceled at epoch %d", e);
        double acc = final * (1.0 - pow(0.5, e));
        double loss = -log(acc > 0.01 ? acc : 0.01);
        if (e <= NAS_WIRE_MAX_CURVE) r->curve[r->n_curve++] = (float)acc;
        progress(h, t, e, epochs, loss * 1.1, loss, acc);
        r->val_acc = acc;
        r->val_loss = loss;
    }
    r->params = 10000 + (int64_t)(hash % 1000000);
    r->macs = r->params * 40;
    r->seconds = (double)(nas_now_ms() - start) / 1000.0;
    if (t->fidelity.test) r->has_test = 1, r->test_acc = r->val_acc * 0.98;
    return NAS_OK;
}

// ---- entry ------------------------------------------------------------------------------------

int nas_evaluator_run(nas_evaluator *ev, const nas_wire_task *task, const nas_eval_hooks *hooks,
                      nas_wire_result *out, char *err) {
    memset(out, 0, sizeof *out);
    out->task_id = task->task_id;
    out->attempt = task->attempt;
    snprintf(out->worker, sizeof out->worker, "%s", ev->cfg.worker);
    int rc;
    switch (task->mode) {
    case NAS_EVAL_TABULAR: rc = run_tabular(ev, task, hooks, out, err); break;
    case NAS_EVAL_SYNTHETIC: rc = run_synthetic(ev, task, hooks, out, err); break;
    case NAS_EVAL_TRAIN:
        /* The engine (trainer, builder, data sets) lands on other branches;
         * this is where it will be called. */
        rc = nas_set_err(err, NAS_EUNSUPPORTED,
                         "training mode is not available in this build (engine not merged)");
        break;
    default: rc = nas_set_err(err, NAS_EINVAL, "unknown evaluation mode %d", task->mode); break;
    }
    if (rc == NAS_OK && out->seconds > 0 && !(out->images_per_s > 0) && task->fidelity.train_subset)
        out->images_per_s = (double)task->fidelity.train_subset * task->fidelity.epochs / out->seconds;
    return rc;
}
