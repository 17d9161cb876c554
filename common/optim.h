/*
 * optim.h - SGD with momentum (optionally Nesterov), decoupled weight decay,
 * global gradient-norm clipping, and the cosine learning-rate schedule with
 * linear warm-up.
 *
 * The optimizer works on the flat blocks of a compiled nas_net: parameters,
 * gradients and momentum share one layout, so a step is one loop over the
 * trainable prefix (llm.c's gpt2_update).  Buffers (BN running statistics)
 * sit after that prefix and are never touched.
 */
#ifndef NAS_OPTIM_H
#define NAS_OPTIM_H

#include <stddef.h>

typedef struct nas_sgd_config {
    float momentum;     /* 0 = plain SGD */
    int nesterov;       /* 1 = Nesterov momentum */
    float weight_decay; /* decoupled: p -= lr * wd * p, separate from the gradient */
    float grad_clip;    /* rescale gradients whose global L2 norm exceeds this; 0 = off */
} nas_sgd_config;

/* Global L2 norm of n gradients, accumulated in double. */
double nas_grad_norm(const float *grad, size_t n);

/* One SGD step at learning rate lr over n parameters:
 *     g = grad * min(1, clip / ||grad||)
 *     v = momentum * v + g
 *     p = p * (1 - lr * wd) - lr * (nesterov ? g + momentum * v : v)
 * Returns the gradient norm before clipping (callers log it; a non-finite
 * norm means the step was skipped and the caller should stop). */
double nas_sgd_step(float *param, const float *grad, float *mom, size_t n, float lr,
                    const nas_sgd_config *cfg);

/* Learning rate at step `step` (0-based) of `total`: linear warm-up from
 * peak/warmup to peak over `warmup` steps, then a cosine from peak to 0 over
 * the remaining steps. */
float nas_lr_cosine(float peak, long step, long total, long warmup);

#endif
