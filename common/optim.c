/*
 * optim.c - SGD step, gradient norm and the learning-rate schedule.
 */
#include "common/optim.h"

#include <math.h>

double nas_grad_norm(const float *grad, size_t n) {
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)grad[i] * grad[i];
    return sqrt(acc);
}

// One fused loop: clip scale, momentum update, Nesterov look-ahead and decoupled decay are
// all applied per element, so parameters, gradients and momentum stream through once.
double nas_sgd_step(float *param, const float *grad, float *mom, size_t n, float lr,
                    const nas_sgd_config *cfg) {
    double norm = nas_grad_norm(grad, n);
    if (!isfinite(norm)) return norm;
    float scale = 1.0f;
    if (cfg->grad_clip > 0.0f && norm > cfg->grad_clip) scale = (float)(cfg->grad_clip / norm);
    float mu = cfg->momentum, decay = 1.0f - lr * cfg->weight_decay;
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * scale;
        float v = mu * mom[i] + g;
        mom[i] = v;
        float d = cfg->nesterov ? g + mu * v : v;
        param[i] = param[i] * decay - lr * d;
    }
    return norm;
}

// Warm-up starts at peak/warmup rather than 0 so the first step is never wasted.
float nas_lr_cosine(float peak, long step, long total, long warmup) {
    if (step < 0) step = 0;
    if (warmup > 0 && step < warmup) return peak * (float)(step + 1) / (float)warmup;
    long span = total - warmup;
    if (span <= 0) return peak;
    double t = (double)(step - warmup) / (double)span;
    if (t > 1.0) t = 1.0;
    return (float)(0.5 * peak * (1.0 + cos(M_PI * t)));
}
