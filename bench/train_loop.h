/*
 * train_loop.h - the timed training loop the engine's throughput benchmarks
 * share (bench/train_vs_torch, bench/cells): parameters from seed 1, batch
 * 128 of random data shaped like the net's one-channel input and random
 * labels of 10 classes, SGD momentum 0.9; one step = zero-grad, forward,
 * cross-entropy, backward, update.  A warm-up window, then `windows` timed
 * windows of `steps` steps each.
 */
#ifndef NAS_BENCH_TRAIN_LOOP_H
#define NAS_BENCH_TRAIN_LOOP_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "common/clock.h"
#include "common/net.h"
#include "common/optim.h"

static double bench_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Train the compiled net (batch 128, input side x side) and fill ips and cps (windows entries
 * each, sorted ascending) with images per wall-clock and per process-CPU second. */
static void bench_train(nas_net *net, int side, int windows, int steps, double *ips, double *cps) {
    int batch = 128;
    nas_rng rng;
    nas_rng_init(&rng, 1, 0);
    nas_net_init_params(net, &rng);
    float *x = malloc(sizeof(float) * batch * side * side);
    uint8_t *y = malloc(batch);
    for (int i = 0; i < batch * side * side; i++) x[i] = nas_rng_uniform(&rng);
    for (int i = 0; i < batch; i++) y[i] = (uint8_t)nas_rng_below(&rng, 10);
    size_t n_tr;
    float *p = nas_net_params_data(net, &n_tr, NULL);
    nas_sgd_config sgd = {.momentum = 0.9f};
    for (int w = -1; w < windows; w++) { /* window -1 is the warm-up */
        int64_t t0 = nas_now_ns();
        double c0 = bench_cpu_seconds();
        for (int s = 0; s < steps; s++) {
            nas_net_zero_grad(net);
            nas_net_forward(net, x, batch, 1, &rng);
            nas_net_loss(net, y, batch, 0.0f, NULL);
            nas_net_backward(net);
            nas_sgd_step(p, nas_net_grads_data(net), nas_net_optim_state(net), n_tr, 0.01f, &sgd);
        }
        if (w >= 0) {
            ips[w] = (double)steps * batch / ((nas_now_ns() - t0) * 1e-9);
            cps[w] = (double)steps * batch / (bench_cpu_seconds() - c0);
        }
    }
    qsort(ips, windows, sizeof(double), bench_cmp_double);
    qsort(cps, windows, sizeof(double), bench_cmp_double);
    free(x), free(y);
}

#endif
