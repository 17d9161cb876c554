/*
 * fidelity.h - how cheaply (or thoroughly) one architecture is trained.
 *
 * A task carries its fidelity (ARCHITECTURE.md, Fidelity).  The search stage uses
 * a low fidelity (data subset, downsampled images, few epochs, fewer
 * channels and cells); the final stage retrains the best architectures at a
 * high one.  The same genome at the same fidelity (seed included) and the
 * same thread count trains to bit-identical numbers on every worker.
 */
#ifndef NAS_FIDELITY_H
#define NAS_FIDELITY_H

#include <stdint.h>

typedef struct nas_fidelity {
    int resolution;        /* input side after area downsampling (e.g. 28 -> 14); 0 = native */
    int train_subset;      /* training images used per epoch (0 = all not held out) */
    int val_size;          /* images held out of the training set for validation */
    int epochs;            /* >= 1 */
    int batch;             /* >= 1 */
    int channels;          /* F: channels of the first stage, doubled at each reduction */
    int cells;             /* N: normal cells per stage */
    float lr;              /* peak learning rate (cosine schedule with warm-up) */
    float warmup_epochs;   /* linear warm-up length, may be fractional */
    float momentum;        /* SGD momentum */
    int nesterov;          /* 1 = Nesterov momentum */
    float weight_decay;    /* decoupled weight decay */
    float grad_clip;       /* global gradient-norm clip, 0 = off */
    float label_smoothing; /* 0 = plain cross-entropy */
    float drop_path;       /* drop-path probability at the last cell, 0 = off */
    int augment;           /* 1 = random crop (pad 2 at 28 px, 4 at 32 px) + flip where it applies */
    int test;              /* 1 = evaluate the test set once at the end */
    uint64_t seed;         /* every random choice of the training run derives from it */
    double time_limit_s;   /* wall-time limit, 0 = none */
    int threads;           /* compute threads (OpenBLAS and ours), default 1 */
    int cutout;            /* side of the square zeroed at a random place per image, 0 = off */
    float aux_weight;      /* weight of the auxiliary head's loss, 0 = no auxiliary head */
    int progressive_start; /* progressive resizing: the first epoch's side, growing to the
                              resolution by the last (EfficientNetV2); 0 = off */
    float width_mult;      /* MBConv only: a continuous width multiplier (EfficientNet's width
                              coefficient), channels rounded to whole channels; 0 = off, the
                              coarse 4-channel steps of F alone (docs/GENOME.md s8) */
} nas_fidelity;

/* The campaign's default low fidelity for search on Fashion-MNIST. */
nas_fidelity nas_fidelity_default(void);

/* Range-check every field; on failure names the field in err and returns
 * NAS_ERANGE. */
int nas_fidelity_validate(const nas_fidelity *f, char *err);

#endif
