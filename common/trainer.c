/*
 * trainer.c - the training loop: batches, schedule, clipping, evaluation,
 * cancellation, time limit and divergence detection.
 *
 * Random streams derived from fid.seed (stream ids are fixed, so adding a
 * consumer never shifts another's draws):
 *   1  parameter initialisation
 *   2  dropout / drop-path masks
 *   the data iterator's shuffle and augmentation from nas_mix64(seed ^ 3)
 */
#include "common/trainer.h"

#include <math.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/optim.h"

nas_train_config nas_train_config_default(void) {
    nas_train_config c;
    memset(&c, 0, sizeof(c));
    c.fid = nas_fidelity_default();
    c.init_params = 1;
    return c;
}

void nas_train_result_fini(nas_train_result *res) {
    if (!res) return;
    nas_free(res->train_loss_curve);
    nas_free(res->val_loss_curve);
    nas_free(res->val_acc_curve);
    memset(res, 0, sizeof(*res));
}

// A data set is usable by the net if its image shape matches the input and its labels fit.
static int check_data(const nas_net *net, const nas_dataset *ds, const char *what, char *err) {
    nas_shape in = nas_net_shape(net, 0);
    if (ds->c != in.c || ds->h != in.h || ds->w != in.w)
        return nas_set_err(err, NAS_EINVAL,
                           "trainer: %s images are %dx%dx%d but the network expects %dx%dx%d", what,
                           ds->c, ds->h, ds->w, in.c, in.h, in.w);
    int k = nas_net_classes(net);
    for (int i = 0; i < ds->n; i++)
        if (ds->labels[i] >= k)
            return nas_set_err(err, NAS_EINVAL, "trainer: %s label %d of image %d >= %d classes",
                               what, ds->labels[i], i, k);
    return NAS_OK;
}

int nas_trainer_evaluate(nas_net *net, const nas_dataset *ds, float *loss, float *acc, char *err) {
    int rc = check_data(net, ds, "evaluation", err);
    if (rc < 0) return rc;
    double total = 0.0;
    long hits = 0;
    int b = nas_net_batch(net);
    for (int i = 0; i < ds->n; i += b) {
        int n = ds->n - i < b ? ds->n - i : b, correct = 0;
        // Images are contiguous NCHW, so a batch is a pointer into the set.
        nas_net_forward(net, nas_dataset_image(ds, i), n, 0, NULL);
        total += (double)nas_net_loss(net, ds->labels + i, n, 0.0f, &correct) * n;
        hits += correct;
    }
    *loss = ds->n ? (float)(total / ds->n) : NAN;
    *acc = ds->n ? (float)hits / (float)ds->n : NAN;
    return NAS_OK;
}

// Everything the loop relies on is checked before any state changes, so a misconfigured task
// fails with a message and an untouched net.
static int validate(nas_net *net, const nas_train_config *cfg, char *err) {
    int rc = nas_fidelity_validate(&cfg->fid, err);
    if (rc < 0) return rc;
    if (nas_net_batch(net) < cfg->fid.batch)
        return nas_set_err(err, NAS_EINVAL, "trainer: network compiled for batch %d < fidelity batch %d",
                           nas_net_batch(net), cfg->fid.batch);
    if (!cfg->train || cfg->train->n < 1)
        return nas_set_err(err, NAS_EINVAL, "trainer: the training set is empty");
    if ((rc = check_data(net, cfg->train, "training", err)) < 0) return rc;
    if (cfg->val && cfg->val->n > 0 && (rc = check_data(net, cfg->val, "validation", err)) < 0)
        return rc;
    if (cfg->fid.test && cfg->test && cfg->test->n > 0 &&
        (rc = check_data(net, cfg->test, "test", err)) < 0)
        return rc;
    int start = cfg->fid.progressive_start, side = cfg->train->h;
    if (start > 0 && (start >= side || cfg->train->w != side || !cfg->build))
        return nas_set_err(err, NAS_EINVAL,
                           "trainer: progressive_start = %d needs square images larger than it "
                           "(%dx%d) and a builder for the smaller nets",
                           start, cfg->train->h, cfg->train->w);
    return NAS_OK;
}

// ---- progressive resizing ------------------------------------------------------------------

/* Side of epoch e: start at the first epoch, growing linearly to end at the last. */
static int progressive_side(int start, int end, int e, int epochs) {
    if (start <= 0 || epochs < 2) return end;
    return start + (int)lround((double)(end - start) * e / (epochs - 1));
}

/* One side's training state: a net (the main one at the last side) and
 * the training images downsampled to it. */
typedef struct side_state {
    nas_net *net;     /* the net trained this epoch */
    nas_net *own;     /* a smaller net the trainer built (NULL for the main one) */
    nas_dataset data; /* the images at that side (unused for the main one) */
    int side;
} side_state;

static void side_fini(side_state *s) {
    nas_net_destroy(&s->own);
    nas_dataset_fini(&s->data);
}

/* Copy every tensor (parameters and running statistics) and the momentum
 * from one net to another of the same layout. */
static void copy_state(nas_net *from, nas_net *to) {
    size_t n_tr, n_all;
    const float *p = nas_net_params_data(from, &n_tr, &n_all);
    memcpy(nas_net_params_data(to, NULL, NULL), p, sizeof(float) * n_all);
    memcpy(nas_net_optim_state(to), nas_net_optim_state(from), sizeof(float) * n_tr);
}

/* Build the architecture at `side`, check its tensors match the main net's
 * one for one, and downsample the training images to it. */
static int side_open(side_state *s, nas_net *main_net, const nas_train_config *cfg, int side,
                     char *err) {
    const nas_dataset *tr = cfg->train;
    int logits = 0, rc = nas_net_create(&s->own, tr->c, side, side, err);
    if (rc < 0) return rc;
    if ((rc = cfg->build(cfg->build_user, s->own, &logits, err)) < 0 ||
        (rc = nas_net_compile(s->own, logits, cfg->fid.batch, err)) < 0 ||
        (rc = nas_net_set_threads(s->own, cfg->fid.threads, err)) < 0)
        return rc;
    int n = nas_net_param_n(main_net);
    for (int i = 0; i < n || i < nas_net_param_n(s->own); i++) {
        const nas_param *a = i < n ? nas_net_param(main_net, i) : NULL;
        const nas_param *b = i < nas_net_param_n(s->own) ? nas_net_param(s->own, i) : NULL;
        if (!a || !b || strcmp(a->name, b->name) != 0 || a->size != b->size ||
            a->offset != b->offset)
            return nas_set_err(err, NAS_EINVAL,
                               "trainer: progressive resizing needs parameters that do not depend "
                               "on the input side, but %s differs at %d px",
                               a ? a->name : b->name, side);
    }
    if ((rc = nas_dataset_copy(&s->data, tr, err)) < 0) return rc;
    if ((rc = nas_dataset_resize(&s->data, side, side, err)) < 0) return rc;
    s->net = s->own;
    s->side = side;
    return NAS_OK;
}

// Random-crop padding for the augmentation: 2 px at 28, 4 at 32, scaled for smaller sides.
static int crop_pad(int side) { return side >= 32 ? side / 8 : side / 14; }

// Per-epoch curves are sized for the planned epochs up front: the loop must not allocate.
static int alloc_curves(nas_train_result *res, int epochs) {
    res->train_loss_curve = nas_calloc((size_t)epochs, sizeof(float));
    res->val_loss_curve = nas_calloc((size_t)epochs, sizeof(float));
    res->val_acc_curve = nas_calloc((size_t)epochs, sizeof(float));
    return res->train_loss_curve && res->val_loss_curve && res->val_acc_curve ? NAS_OK : NAS_ENOMEM;
}

// The loop: per epoch, reseed the iterator from (seed, epoch), ramp drop-path, then per batch
// check cancel and time, forward, loss (NaN/Inf stops the run), backward, one SGD step at the
// scheduled rate.  Validation runs after each epoch and its numbers go to the callback.
int nas_trainer_run(nas_net *net, const nas_train_config *cfg, nas_train_result *res, char *err) {
    memset(res, 0, sizeof(*res));
    res->val_acc = res->val_loss = res->test_acc = res->test_loss = NAN;
    int rc = validate(net, cfg, err);
    if (rc < 0) return rc;
    const nas_fidelity *f = &cfg->fid;
    const nas_dataset *tr = cfg->train;
    int64_t t0 = nas_now_ns();
    res->params = nas_net_param_count(net);
    res->macs = nas_net_macs(net);
    if ((rc = nas_net_set_threads(net, f->threads, err)) < 0) return rc;

    nas_rng init_rng, drop_rng;
    nas_rng_init(&init_rng, f->seed, 1);
    nas_rng_init(&drop_rng, f->seed, 2);
    if (cfg->init_params) nas_net_init_params(net, &init_rng);

    nas_dataset_iter it;
    memset(&it, 0, sizeof(it));
    side_state cur = {.net = net, .side = tr->h}; /* progressive resizing's current side */
    float *x = NULL;
    uint8_t *y = NULL;
    nas_dataset_iter_config ic = {
        .batch = f->batch,
        .shuffle = 1,
        .drop_last = tr->n > f->batch, /* a tiny last batch would upset batch norm */
        .pad = f->augment ? crop_pad(tr->h) : 0,
        .flip = f->augment && cfg->flip,
        .cutout = f->cutout,
        .seed = nas_mix64(f->seed ^ 3),
    };
    if ((rc = nas_dataset_iter_init(&it, tr, &ic, err)) < 0) return rc;
    x = nas_aligned_alloc(sizeof(float) * (size_t)f->batch * tr->c * tr->h * tr->w);
    y = nas_malloc((size_t)f->batch);
    if (!x || !y || alloc_curves(res, f->epochs) < 0) {
        rc = nas_set_err(err, NAS_ENOMEM, "trainer: out of memory for batch buffers");
        goto fail;
    }

    size_t n_tr;
    float *params = nas_net_params_data(net, &n_tr, NULL);
    float *grads = nas_net_grads_data(net), *mom = nas_net_optim_state(net);
    nas_sgd_config sgd = {f->momentum, f->nesterov, f->weight_decay, f->grad_clip};
    long steps_per_epoch = nas_dataset_iter_batches(&it);
    long total = steps_per_epoch * f->epochs, warmup = lround(f->warmup_epochs * steps_per_epoch);
    long step = 0, images = 0;
    int64_t train_ns = 0;
    for (int e = 0; e < f->epochs; e++) {
        int64_t te = nas_now_ns();
        int side = progressive_side(f->progressive_start, tr->h, e, f->epochs);
        if (side != cur.side) { /* train this epoch on a net and images of another side */
            side_state next = {.net = net, .side = tr->h};
            if (side != tr->h && (rc = side_open(&next, net, cfg, side, err)) < 0) {
                side_fini(&next);
                goto fail;
            }
            copy_state(cur.net, next.net);
            side_fini(&cur);
            cur = next;
            ic.pad = f->augment ? crop_pad(side) : 0;
            nas_dataset_iter_fini(&it);
            if ((rc = nas_dataset_iter_init(&it, cur.own ? &cur.data : tr, &ic, err)) < 0)
                goto fail;
            params = nas_net_params_data(cur.net, NULL, NULL);
            grads = nas_net_grads_data(cur.net);
            mom = nas_net_optim_state(cur.net);
        }
        // Drop-path grows linearly to its configured probability over training (DARTS).
        nas_net_set_drop_path(cur.net, f->drop_path * (float)e / (float)f->epochs);
        nas_dataset_iter_begin_epoch(&it, e);
        double loss_sum = 0.0;
        long hits = 0, seen = 0;
        float lr = 0.0f;
        for (int s = 0;; s++) {
            if (cfg->cancel && atomic_load(cfg->cancel)) {
                rc = nas_set_err(err, NAS_ECANCELED, "trainer: canceled at epoch %d, step %d", e, s);
                goto fail;
            }
            if (f->time_limit_s > 0 && (nas_now_ns() - t0) * 1e-9 > f->time_limit_s) {
                rc = nas_set_err(err, NAS_ETIMEDOUT, "trainer: time limit of %.1f s reached at epoch %d, step %d",
                                 f->time_limit_s, e, s);
                goto fail;
            }
            int n = nas_dataset_iter_next(&it, x, y);
            if (n == 0) break;
            int correct = 0;
            nas_net_forward(cur.net, x, n, 1, &drop_rng);
            float loss = nas_net_loss(cur.net, y, n, f->label_smoothing, &correct);
            if (!isfinite(loss)) {
                rc = nas_set_err(err, NAS_EDIVERGED, "diverged at epoch %d, step %d (loss %g)", e, s,
                                 (double)loss);
                goto fail;
            }
            nas_net_zero_grad(cur.net);
            nas_net_backward(cur.net);
            lr = nas_lr_cosine(f->lr, step, total, warmup);
            double norm = nas_sgd_step(params, grads, mom, n_tr, lr, &sgd);
            if (!isfinite(norm)) {
                rc = nas_set_err(err, NAS_EDIVERGED, "diverged at epoch %d, step %d (gradient norm %g)",
                                 e, s, norm);
                goto fail;
            }
            loss_sum += (double)loss * n;
            hits += correct;
            seen += n;
            step++;
        }
        images += seen;
        train_ns += nas_now_ns() - te;
        if (cur.own) copy_state(cur.net, net); /* validation runs on the main net */
        nas_train_epoch ep = {.epoch = e, .epochs = f->epochs, .lr = lr, .val_loss = NAN,
                              .val_acc = NAN, .side = side};
        ep.train_loss = seen ? (float)(loss_sum / seen) : NAN;
        ep.train_acc = seen ? (float)hits / (float)seen : NAN;
        if (cfg->val && cfg->val->n > 0)
            nas_trainer_evaluate(net, cfg->val, &ep.val_loss, &ep.val_acc, NULL);
        ep.seconds = (nas_now_ns() - t0) * 1e-9;
        res->train_loss_curve[e] = ep.train_loss;
        res->val_loss_curve[e] = ep.val_loss;
        res->val_acc_curve[e] = ep.val_acc;
        res->val_loss = ep.val_loss;
        res->val_acc = ep.val_acc;
        res->epochs_done = e + 1;
        res->images_per_s = train_ns > 0 ? images / (train_ns * 1e-9) : 0.0;
        res->seconds = ep.seconds;
        if (cfg->on_epoch && cfg->on_epoch(cfg->user, &ep) != 0) {
            rc = nas_set_err(err, NAS_ECANCELED, "trainer: canceled by the epoch callback after epoch %d", e);
            goto fail;
        }
    }
    if (f->test && cfg->test && cfg->test->n > 0)
        nas_trainer_evaluate(net, cfg->test, &res->test_loss, &res->test_acc, NULL);
    res->seconds = (nas_now_ns() - t0) * 1e-9;
    rc = NAS_OK;
fail:
    // The result keeps the epochs finished so far on every outcome; only buffers go.
    res->seconds = (nas_now_ns() - t0) * 1e-9;
    if (cur.own) copy_state(cur.net, net); /* a stopped run leaves its weights in net */
    side_fini(&cur);
    nas_dataset_iter_fini(&it);
    nas_aligned_free(x);
    nas_free(y);
    return rc;
}
