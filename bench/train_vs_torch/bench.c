/*
 * bench.c - training throughput of the engine on the reference nets:
 * batch 128 of random Fashion-MNIST-shaped data, SGD momentum 0.9, one
 * step = zero-grad, forward, cross-entropy, backward, update.  Prints the
 * median images/s over several timed windows after a warm-up, then the
 * median per CPU-second (process CPU time), which is steadier than wall
 * time on a shared machine, and last the best window per CPU-second (the
 * least disturbed one, for before/after comparisons of small changes), and
 * the OpenBLAS kernel set it ran on.  It starts the way nas-train and
 * nas-worker do (nas_blas_prepare), so it runs the kernels a user's run
 * gets on this machine.
 *
 * usage: bench NET THREADS WINDOWS STEPS_PER_WINDOW
 *        bench --kernels    (the kernel set only)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/blas.h"
#include "common/clock.h"
#include "common/gemm.h"
#include "common/net.h"
#include "common/optim.h"
#include "common/refnets.h"

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (nas_blas_prepare(argv) < 0) return 1;
    nas_blas_info bi;
    nas_blas_info_get(&bi);
    if (argc == 2 && strcmp(argv[1], "--kernels") == 0) {
        printf("%s %s %s kernels (%s, chosen by %s), CPU %s\n", bi.library, bi.version, bi.kernels,
               nas_isa_name(bi.kernels_level), bi.source, bi.isa);
        return 0;
    }
    if (argc != 5) {
        fprintf(stderr, "usage: bench NET THREADS WINDOWS STEPS\n");
        return 2;
    }
    const char *name = argv[1];
    int threads = atoi(argv[2]), windows = atoi(argv[3]), steps = atoi(argv[4]);
    int side = nas_refnet_resolution(name), batch = 128;
    char err[NAS_ERR_LEN];
    nas_net *net = NULL;
    int out;
    if (nas_net_create(&net, 1, side, side, err) < 0 ||
        nas_refnet_build(net, name, 10, &out, err) < 0 || nas_net_compile(net, out, batch, err) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    if (nas_net_set_threads(net, threads, err) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
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
    double *ips = malloc(sizeof(double) * windows), *cps = malloc(sizeof(double) * windows);
    for (int w = -1; w < windows; w++) { /* window -1 is the warm-up */
        int64_t t0 = nas_now_ns();
        double c0 = cpu_seconds();
        for (int s = 0; s < steps; s++) {
            nas_net_zero_grad(net);
            nas_net_forward(net, x, batch, 1, &rng);
            nas_net_loss(net, y, batch, 0.0f, NULL);
            nas_net_backward(net);
            nas_sgd_step(p, nas_net_grads_data(net), nas_net_optim_state(net), n_tr, 0.01f, &sgd);
        }
        if (w >= 0) {
            ips[w] = (double)steps * batch / ((nas_now_ns() - t0) * 1e-9);
            cps[w] = (double)steps * batch / (cpu_seconds() - c0);
        }
    }
    qsort(ips, windows, sizeof(double), cmp_double);
    qsort(cps, windows, sizeof(double), cmp_double);
    printf("%.1f %.1f %.1f %.1f %.1f %s:%s(%s)\n", ips[windows / 2], ips[0], ips[windows - 1],
           cps[windows / 2], cps[windows - 1], bi.library, bi.kernels, bi.source);
    free(ips), free(cps), free(x), free(y);
    nas_net_destroy(&net);
    return 0;
}
