/*
 * trainer.h - train a compiled nas_net on a data set at one fidelity.
 *
 * One run is epochs x batches of forward, softmax cross-entropy, backward,
 * clip and SGD step, with the cosine schedule over all steps.  After each
 * epoch the validation set is evaluated (eval-mode BN, no dropout) and the
 * figures are handed to a callback; after the last, the test set is
 * evaluated once when fidelity.test asks for it.
 *
 * Progressive resizing trains early epochs on smaller images (see
 * nas_train_config.build).
 *
 * Determinism: initialisation, shuffling, augmentation and drop-path draw
 * from streams derived from fidelity.seed, and every reduction runs in a
 * fixed order, so the same net + fidelity + seed + thread count gives
 * bit-identical results.
 */
#ifndef NAS_TRAINER_H
#define NAS_TRAINER_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/dataset.h"
#include "common/fidelity.h"
#include "common/net.h"

/* What the callback sees after each epoch. */
typedef struct nas_train_epoch {
    int epoch;        /* 0-based */
    int epochs;       /* total planned */
    float train_loss; /* mean training loss over the epoch's batches */
    float train_acc;  /* training accuracy (augmented, train-mode) */
    float val_loss;   /* NAN when there is no validation set */
    float val_acc;    /* NAN when there is no validation set */
    float lr;         /* learning rate of the epoch's last step */
    double seconds;   /* wall time since the run started */
    int side;         /* the training images' side this epoch (progressive resizing) */
} nas_train_epoch;

/* Return nonzero to cancel the run (nas_trainer_run returns NAS_ECANCELED). */
typedef int (*nas_train_epoch_fn)(void *user, const nas_train_epoch *e);

typedef struct nas_train_config {
    nas_fidelity fid;           /* epochs, batch, lr, seed, threads, ... */
    const nas_dataset *train;   /* required; images must match the net's input */
    const nas_dataset *val;     /* may be NULL or empty */
    const nas_dataset *test;    /* evaluated when fid.test and non-empty */
    int flip;                   /* augmentation may flip horizontally (not for digits) */
    int init_params;            /* 1 = He-initialise from fid.seed first; 0 = keep weights */
    nas_train_epoch_fn on_epoch;
    void *user;
    atomic_int *cancel;         /* may be NULL; nonzero stops between batches */
    /* Progressive resizing (fid.progressive_start > 0; EfficientNetV2): the
     * side of the training images grows linearly from progressive_start at
     * the first epoch to the net's own side at the last.  `build` builds
     * the trained architecture into an empty net of a smaller input (not
     * compiled); the trainer trains those epochs on it with the images
     * downsampled by area, carrying every tensor and the momentum across,
     * and validates on the main net.  The architecture's parameters must
     * not depend on the input side (global pooling before the classifier). */
    int (*build)(void *user, nas_net *net, int *logits, char *err);
    void *build_user;
} nas_train_config;

typedef struct nas_train_result {
    float val_acc, val_loss;    /* after the last epoch (NAN without a validation set) */
    float test_acc, test_loss;  /* NAN unless the test set was evaluated */
    int epochs_done;
    float *train_loss_curve;    /* epochs_done values, owned */
    float *val_loss_curve;      /* epochs_done values, owned */
    float *val_acc_curve;       /* epochs_done values, owned */
    int64_t params, macs;       /* trainable parameters, MACs per image */
    double seconds;             /* wall time of the whole run */
    double images_per_s;        /* training images per second (evaluation excluded) */
} nas_train_result;

/* Defaults: no data, fidelity from nas_fidelity_default(), init_params 1. */
nas_train_config nas_train_config_default(void);

/* Train `net` (compiled for batch >= fid.batch) as configured.  Returns
 * NAS_OK; NAS_EINVAL/NAS_ERANGE for a bad configuration (err names it:
 * data shape vs net input, labels vs classes, fidelity field);
 * NAS_EDIVERGED ("diverged at epoch E, step S"); NAS_ECANCELED (flag or
 * callback); NAS_ETIMEDOUT (fid.time_limit_s passed); NAS_ENOMEM.  On
 * every outcome after validation *res holds the epochs completed so far
 * and must be released with nas_train_result_fini(). */
int nas_trainer_run(nas_net *net, const nas_train_config *cfg, nas_train_result *res, char *err);

void nas_train_result_fini(nas_train_result *res);

/* Evaluate net on ds in eval mode in batches of the net's size; writes the
 * mean loss and accuracy.  Returns NAS_OK or NAS_EINVAL (shape mismatch). */
int nas_trainer_evaluate(nas_net *net, const nas_dataset *ds, float *loss, float *acc, char *err);

#endif
