/*
 * evaluate.c - tabular, synthetic and training evaluation of one task
 * (see evaluate.h).
 *
 * Training keeps data in two levels: each data set's files are read once
 * and kept as loaded (raw), and a few prepared recipes (resolution,
 * validation size, subset, test split, seed) are kept on top, prepared
 * from memory: the search stage sends many tasks with one fidelity, and
 * the final stage's other fidelity costs a prepare, not a reload.
 */
#include "worker/evaluate.h"
#include "common/alloc.h"
#include "common/builder.h"
#include "common/clock.h"
#include "common/dataset.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/log.h"
#include "common/net.h"
#include "common/refnets.h"
#include "common/table.h"
#include "common/trainer.h"
#include "worker/ps_client.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* One data set as loaded from its files (train split, test split once a
 * task asks for it), kept for the life of the worker. */
typedef struct raw_entry {
    int used;
    char name[NAS_WIRE_NAME_MAX];
    char dir[NAS_WIRE_PATH_MAX];
    nas_dataset train, test;
    int has_test;
} raw_entry;

/* One prepared data recipe. */
typedef struct data_entry {
    int used;
    char name[NAS_WIRE_NAME_MAX];
    char dir[NAS_WIRE_PATH_MAX];
    nas_dataset_config key; /* name/dir point at the arrays above */
    nas_dataset_splits splits;
    uint64_t last_use;
} data_entry;

struct nas_evaluator {
    nas_evaluator_config cfg;
    nas_table *table;
    raw_entry raw[NAS_EVAL_DATA_CACHE];
    data_entry data[NAS_EVAL_DATA_CACHE];
    uint64_t uses;
    /* Column indexes in the table, -1 when absent. */
    int c_acc, c_loss, c_test, c_params, c_macs, c_seconds;
    /* The last run failed because of this worker, not the architecture
     * (nas_evaluator_env_failure); data_failed marks the data stage. */
    int env, data_failed;
};

/* Column names follow the common benchmark exports (arch, val_acc, ...). */
void nas_evaluator_config_default(nas_evaluator_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->key_col = "arch";
    cfg->acc_col = "val_acc";
    cfg->acc_scale = 1.0;
}

/* An optional column: the named one must exist when given explicitly; the
 * default name is used only if present. */
/* A column named explicitly must exist (a typo must not silently drop a
 * metric); a default name is used only when the table has it. */
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

/* The canonical text of a genome (table keys and queries alike); keys
 * that are not genomes are found by their exact text only. */
static int canon_key(const char *key, char *buf, size_t cap, void *ctx) {
    nas_genome g, c;
    if (nas_genome_parse(key, strlen(key), &g, NULL) < 0) return NAS_EGENOME;
    nas_genome_canonical(&g, &c);
    return nas_genome_format(&c, buf, cap);
}

int nas_evaluator_create(nas_evaluator **out, const nas_evaluator_config *cfg, char *err) {
    if (!(cfg->acc_scale > 0) || cfg->synthetic_epoch_ms < 0)
        return nas_set_err(err, NAS_EINVAL,
                           "evaluator: acc_scale must be > 0 and "
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
        int canon = nas_table_reindex(ev->table, canon_key, NULL);
        if (canon < 0) {
            rc = nas_set_err(err, canon, "%s: out of memory", p);
            goto fail;
        }
        nas_info("evaluator: table %s: %d architectures (%d with a canonical form)", p,
                 nas_table_rows(ev->table), canon);
    }
    *out = ev;
    return NAS_OK;
fail:
    nas_evaluator_destroy(&ev);
    return rc;
}

void nas_evaluator_destroy(nas_evaluator **ep) {
    if (!ep || !*ep) return;
    for (int i = 0; i < NAS_EVAL_DATA_CACHE; i++) {
        nas_dataset_splits_fini(&(*ep)->data[i].splits);
        nas_dataset_fini(&(*ep)->raw[i].train);
        nas_dataset_fini(&(*ep)->raw[i].test);
    }
    nas_table_destroy(&(*ep)->table);
    nas_free(*ep);
    *ep = NULL;
}

/* Hooks are optional so the evaluator can be driven directly in tests. */
static int cancelled(const nas_eval_hooks *h) {
    return h && h->cancelled && h->cancelled(h->ctx);
}

static void progress(const nas_eval_hooks *h, const nas_wire_task *t, int epoch, int epochs,
                     double train_loss, double val_loss, double val_acc) {
    if (!h || !h->progress) return;
    nas_wire_progress p = {t->task_id, t->attempt, epoch, epochs, train_loss, val_loss, val_acc};
    h->progress(h->ctx, &p);
}

// ---- tabular -----------------------------------------------------------------------------

/* Read an optional number cell; absent columns leave *out alone. */
/* A cell that is not a number fails the task with the file and line. */
static int cell(const nas_evaluator *ev, int row, int col, double *out, char *err) {
    if (col < 0) return NAS_OK;
    return nas_table_number(ev->table, row, col, out, err);
}

/* Tabular: one lookup, one Progress for the whole run (the table holds
 * final figures only), and a one-point curve. */
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
        return nas_set_err(err, NAS_EFORMAT,
                           "table accuracy %g for %.100s is outside [0, 1] "
                           "(percent tables need acc_scale 0.01)",
                           acc, t->genome);
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

/* FNV-1a over the text: stable across machines and builds. */
static uint64_t text_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
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

// ---- training ------------------------------------------------------------------------------

/* Everything nas_dataset_prepare uses is part of the key (val_random is
 * always 0 here: nas_dataset_config_from_fidelity). */
static int same_recipe(const data_entry *e, const nas_dataset_config *k) {
    return e->used && strcmp(e->name, k->name) == 0 && strcmp(e->dir, k->dir) == 0 &&
           e->key.resolution == k->resolution && e->key.val_size == k->val_size &&
           e->key.train_subset == k->train_subset && e->key.load_test == k->load_test &&
           e->key.seed == k->seed;
}

/* The files of data set (name, dir), read once: the train split on first
 * use, the test split on the first task that evaluates it.  A worker
 * serves one or two data sets, so a full table is an operator error. */
static int get_raw(nas_evaluator *ev, const nas_dataset_config *k, const raw_entry **out,
                   char *err) {
    raw_entry *e = NULL;
    for (int i = 0; i < NAS_EVAL_DATA_CACHE && !e; i++)
        if (ev->raw[i].used && strcmp(ev->raw[i].name, k->name) == 0 &&
            strcmp(ev->raw[i].dir, k->dir) == 0)
            e = &ev->raw[i];
    for (int i = 0; i < NAS_EVAL_DATA_CACHE && !e; i++) {
        if (ev->raw[i].used) continue;
        e = &ev->raw[i];
        int rc = nas_dataset_load(&e->train, k->name, k->dir, NAS_SPLIT_TRAIN, err);
        if (rc < 0) return rc;
        e->used = 1;
        snprintf(e->name, sizeof e->name, "%s", k->name);
        snprintf(e->dir, sizeof e->dir, "%s", k->dir);
        nas_info("evaluator: loaded %s from %s: %d training images", k->name, k->dir, e->train.n);
    }
    if (!e)
        return nas_set_err(err, NAS_ENOSPC, "this worker already keeps %d data sets in memory",
                           NAS_EVAL_DATA_CACHE);
    if (k->load_test && !e->has_test) {
        int rc = nas_dataset_load(&e->test, k->name, k->dir, NAS_SPLIT_TEST, err);
        if (rc < 0) return rc;
        e->has_test = 1;
    }
    *out = e;
    return NAS_OK;
}

/* The prepared data of a recipe, from the cache or prepared now from the
 * data set in memory.  The least recently used recipe is replaced; a
 * failed prepare leaves its slot empty. */
static int get_data(nas_evaluator *ev, const nas_dataset_config *k, const nas_dataset_splits **out,
                    char *err) {
    data_entry *slot = &ev->data[0];
    for (int i = 0; i < NAS_EVAL_DATA_CACHE; i++) {
        data_entry *e = &ev->data[i];
        if (same_recipe(e, k)) {
            e->last_use = ++ev->uses;
            *out = &e->splits;
            return NAS_OK;
        }
        if (!e->used || (slot->used && e->last_use < slot->last_use)) slot = e;
    }
    const raw_entry *raw = NULL;
    int rc = get_raw(ev, k, &raw, err);
    if (rc < 0) return rc;
    nas_dataset_splits_fini(&slot->splits);
    memset(slot, 0, sizeof *slot);
    rc = nas_dataset_prepare_from(&slot->splits, k, &raw->train, raw->has_test ? &raw->test : NULL,
                                  err);
    if (rc < 0) return rc;
    snprintf(slot->name, sizeof slot->name, "%s", k->name);
    snprintf(slot->dir, sizeof slot->dir, "%s", k->dir);
    slot->key = *k;
    slot->key.name = slot->name;
    slot->key.dir = slot->dir;
    slot->used = 1;
    slot->last_use = ++ev->uses;
    nas_info("evaluator: prepared %s from %s: %d train / %d val images of %dx%d", k->name, k->dir,
             slot->splits.train.n, slot->splits.val.n, slot->splits.train.h, slot->splits.train.w);
    *out = &slot->splits;
    return NAS_OK;
}

typedef struct train_ctx {
    const nas_eval_hooks *hooks;
    const nas_wire_task *task;
} train_ctx;

/* The trainer counts epochs from 0 and reports NaN without a validation
 * set; the wire counts from 1 and refuses NaN. */
static int on_epoch(void *user, const nas_train_epoch *e) {
    train_ctx *c = user;
    double vl = isfinite(e->val_loss) && e->val_loss >= 0 ? e->val_loss : 0;
    double va = isfinite(e->val_acc) ? e->val_acc : 0;
    double tl = isfinite(e->train_loss) && e->train_loss >= 0 ? e->train_loss : 0;
    progress(c->hooks, c->task, e->epoch + 1, e->epochs, tl, vl, va);
    return cancelled(c->hooks);
}

/* Which network a training task builds.  Returns NAS_OK for a reference
 * net; genomes wait for the builder. */
/* Check the architecture before any data is loaded, so that a broken
 * genome fails at once and is reported as what it is.  Returns 1 for a
 * reference net, 0 for a genome (or preset), or a negative error. */
static int check_arch(const nas_wire_task *t, char *err) {
    for (const char *const *n = nas_refnet_names(); *n; n++)
        if (strcmp(*n, t->genome) == 0) return 1;
    nas_genome g;
    char gerr[NAS_ERR_LEN];
    if (nas_builder_resolve_genome(t->genome, &g, gerr) < 0)
        return nas_set_err(err, NAS_EGENOME, "%s", gerr);
    return 0;
}

static void copy_train_result(const nas_train_result *tr, const nas_wire_task *t,
                              nas_wire_result *r) {
    r->val_acc = tr->val_acc;
    r->val_loss = tr->val_loss;
    if (t->fidelity.test && isfinite(tr->test_acc)) r->has_test = 1, r->test_acc = tr->test_acc;
    for (int e = 0; e < tr->epochs_done && r->n_curve < NAS_WIRE_MAX_CURVE; e++)
        r->curve[r->n_curve++] = isfinite(tr->val_acc_curve[e]) ? tr->val_acc_curve[e] : 0.0f;
    r->params = tr->params;
    r->macs = tr->macs;
    r->seconds = tr->seconds;
    r->images_per_s = isfinite(tr->images_per_s) && tr->images_per_s > 0 ? tr->images_per_s : 0;
}

/* Push a trained child to the weight store under its canonical hash (the
 * key the strategy's parent_hash uses).  The task's result goes out only
 * after the push is acknowledged, which means the weights are on the
 * master's disk: the master observes the result and proposes children of
 * it only then, and every child finds its parent, however a master kill
 * falls (USER-GUIDE.md s3: a resumed campaign's history is the
 * uninterrupted run's).  So a push that got no answer (the master died or
 * is restarting) is made again, after a pause that grows to
 * PUSH_RETRY_MAX_MS, until it is acknowledged or the task is cancelled.  A
 * push the master refuses, or one that cannot be built, costs a future
 * child its head start, never this task its result: logged only. */
#define PUSH_RETRY_MAX_MS 5000
static void push_weights(struct nas_ps_client *ps, const nas_wire_task *t, const nas_net *net,
                         const nas_eval_hooks *h) {
    nas_genome g;
    char err[NAS_ERR_LEN] = "";
    if (nas_builder_resolve_genome(t->genome, &g, err) < 0) return; /* a reference net */
    uint64_t arch = nas_genome_hash(&g);
    int64_t pause = 100;
    for (;;) {
        int rc = nas_ps_client_push(ps, arch, net, err);
        if (rc == NAS_OK) return;
        int lost = rc == NAS_ETIMEDOUT || rc == NAS_EAGAIN || rc == NAS_EIO;
        if (!lost || cancelled(h)) {
            nas_warn("evaluator: weights of task %llu not pushed: %s",
                     (unsigned long long)t->task_id, err);
            return;
        }
        nas_warn("evaluator: weights of task %llu not pushed yet (%s); the result waits for them, "
                 "trying again in %lld ms",
                 (unsigned long long)t->task_id, err, (long long)pause);
        for (int64_t slept = 0; slept < pause && !cancelled(h); slept += 20)
            nas_sleep_ms(20);
        pause = pause < PUSH_RETRY_MAX_MS / 2 ? pause * 2 : PUSH_RETRY_MAX_MS;
    }
}

/* Symmetry-breaking noise of morphism children, relative to each copied
 * weight; it sums to zero over the copies, so the function is kept. */
#define MORPH_NOISE 0.01f

/* Train one task: data from the cache, a fresh net per task built by the
 * genome builder (nets do not share weights until inheritance lands), the trainer with the task's
 * fidelity, and a last check that the figures can travel. */
static int run_train(nas_evaluator *ev, const nas_wire_task *t, const nas_eval_hooks *h,
                     nas_wire_result *r, char *err) {
    int rc = check_arch(t, err);
    if (rc < 0) return rc;
    int is_refnet = rc;
    const char *dir = t->data_dir[0] ? t->data_dir : ev->cfg.data_dir;
    if (!t->dataset[0]) return nas_set_err(err, NAS_EINVAL, "training task without a data set");
    ev->data_failed = 1; /* until the data is in memory */
    if (!dir || !*dir)
        return nas_set_err(err, NAS_EINVAL,
                           "no data directory: the task names none and the "
                           "worker was started without --data-dir");
    if (t->fidelity.val_size < 1)
        return nas_set_err(err, NAS_EINVAL,
                           "fidelity.val_size = 0: a search task needs a "
                           "validation set to report an accuracy");
    nas_fidelity f = t->fidelity;
    if (f.resolution == 0 && is_refnet) f.resolution = nas_refnet_resolution(t->genome);
    /* The campaign-wide recipe: the last val_size images validate, so every
     * task is scored on the same images whatever its seed. */
    nas_dataset_config k = nas_dataset_config_from_fidelity(&f, t->dataset, dir);
    const nas_dataset_splits *data = NULL;
    rc = get_data(ev, &k, &data, err);
    /* The campaign's data.dir (every task names one) is looked in first; a
     * host that keeps the data set elsewhere names that folder with the
     * worker's --data-dir, which is looked in when the files are not there. */
    const char *own = ev->cfg.data_dir;
    if (rc == NAS_ENOTFOUND && dir == t->data_dir && own && *own && strcmp(own, dir) != 0) {
        k = nas_dataset_config_from_fidelity(&f, t->dataset, own);
        rc = get_data(ev, &k, &data, err);
    }
    if (rc < 0) return rc;
    ev->data_failed = 0;
    nas_net *net = NULL;
    nas_train_result tr;
    memset(&tr, 0, sizeof tr);
    const nas_dataset *train = &data->train;
    int logits = 0;
    if ((rc = nas_net_create(&net, train->c, train->h, train->w, err)) < 0) goto done;
    nas_genome g;
    int is_genome = 0;
    rc = nas_builder_build_arch(net, t->genome, &f, train->classes, &logits, &g, &is_genome, err);
    if (rc < 0) goto done;
    if ((rc = nas_net_compile(net, logits, f.batch, err)) < 0) goto done;
    train_ctx c = {h, t};
    nas_train_config tc = nas_train_config_default();
    /* Weight inheritance (ARCHITECTURE.md, Weight store): fresh init, then the parent's
     * matching tensors; any failure leaves the net fresh and is logged. */
    if (ev->cfg.ps && t->has_parent) {
        char why[NAS_ERR_LEN] = "";
        /* A chain inherits through the morphism rule (common/morph.h): a
         * morphism child starts computing its parent's function. */
        if (is_genome && g.space == NAS_SPACE_CHAIN) {
            int got = nas_ps_client_inherit_chain(ev->cfg.ps, t->parent_hash, net, &g, f.channels,
                                                  f.seed, MORPH_NOISE, NULL, why);
            /* What the child computes at birth, for the log: after a
             * morphism it is the parent's final validation accuracy. */
            float bl = 0, ba = 0;
            if (got > 0 && nas_trainer_evaluate(net, &data->val, &bl, &ba, why) == NAS_OK)
                nas_info("inherit: chain child of %016llx at birth: val acc %.6f",
                         (unsigned long long)t->parent_hash, (double)ba);
        } else
            nas_ps_client_inherit(ev->cfg.ps, t->parent_hash, net, f.seed, NULL, why);
        tc.init_params = 0;
    }
    tc.fid = f;
    tc.train = train;
    tc.val = &data->val;
    tc.test = &data->test;
    tc.flip = nas_dataset_default_flip(t->dataset); /* a mirrored digit is another digit */
    tc.on_epoch = on_epoch;
    tc.user = &c;
    tc.cancel = h ? h->cancel : NULL;
    nas_builder_arch again = {t->genome, f, train->classes}; /* progressive resizing */
    tc.build = nas_builder_arch_cb;
    tc.build_user = &again;
    rc = nas_trainer_run(net, &tc, &tr, err);
    if (rc == NAS_OK && !(tr.val_acc >= 0 && tr.val_acc <= 1 && isfinite(tr.val_loss)))
        rc = nas_set_err(err, NAS_EDIVERGED, "validation accuracy %g / loss %g are not usable",
                         (double)tr.val_acc, (double)tr.val_loss);
    if (rc == NAS_OK) copy_train_result(&tr, t, r);
    if (rc == NAS_OK && ev->cfg.ps && t->push_weights) push_weights(ev->cfg.ps, t, net, h);
done:
    nas_train_result_fini(&tr);
    nas_net_destroy(&net);
    return rc;
}

// ---- entry ------------------------------------------------------------------------------------

/* Identity fields are filled before the mode runs so that even a failed
 * evaluation's partial result names its task. */
int nas_evaluator_run(nas_evaluator *ev, const nas_wire_task *task, const nas_eval_hooks *hooks,
                      nas_wire_result *out, char *err) {
    memset(out, 0, sizeof *out);
    out->task_id = task->task_id;
    out->attempt = task->attempt;
    snprintf(out->worker, sizeof out->worker, "%s", ev->cfg.worker);
    ev->data_failed = 0;
    int rc;
    switch (task->mode) {
    case NAS_EVAL_TABULAR:
        rc = run_tabular(ev, task, hooks, out, err);
        break;
    case NAS_EVAL_SYNTHETIC:
        rc = run_synthetic(ev, task, hooks, out, err);
        break;
    case NAS_EVAL_TRAIN:
        rc = run_train(ev, task, hooks, out, err);
        break;
    default:
        rc = nas_set_err(err, NAS_EINVAL, "unknown evaluation mode %d", task->mode);
        break;
    }
    /* Data that cannot be found or read, memory, I/O, a mode this worker
     * cannot serve, its own settings (NAS_MEM_LIMIT): every architecture
     * would fail here the same way.  A net larger than the memory limit
     * (NAS_ERANGE) is the architecture's failure. */
    ev->env = rc < 0 && (ev->data_failed || rc == NAS_ENOMEM || rc == NAS_EIO ||
                         rc == NAS_EUNSUPPORTED || rc == NAS_ENOSPC || rc == NAS_ECONFIG);
    if (rc == NAS_OK && out->seconds > 0 && !(out->images_per_s > 0) && task->fidelity.train_subset)
        out->images_per_s =
            (double)task->fidelity.train_subset * task->fidelity.epochs / out->seconds;
    return rc;
}

int nas_evaluator_env_failure(const nas_evaluator *ev) {
    return ev->env;
}
