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

#include "common/blas.h"
#include "common/clock.h"
#include "common/gemm.h"
#include "common/net.h"
#include "common/optim.h"
#include "common/refnets.h"
#include "common/sgemm.h"
#include "bench/train_loop.h"

int main(int argc, char **argv) {
    if (nas_blas_prepare(argv) < 0) return 1;
    nas_blas_info bi;
    nas_blas_info_get(&bi);
    if (argc == 2 && strcmp(argv[1], "--kernels") == 0) {
        printf("%s %s %s kernels (%s, chosen by %s), CPU %s; GEMMs on %s\n", bi.library,
               bi.version, bi.kernels, nas_isa_name(bi.kernels_level), bi.source, bi.isa, bi.gemm);
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
    double *ips = malloc(sizeof(double) * windows), *cps = malloc(sizeof(double) * windows);
    bench_train(net, side, windows, steps, ips, cps);
    printf("%.1f %.1f %.1f %.1f %.1f %s:%s(%s)\n", ips[windows / 2], ips[0], ips[windows - 1],
           cps[windows / 2], cps[windows - 1], bi.library, bi.kernels, bi.source);
    free(ips), free(cps);
    nas_net_destroy(&net);
    return 0;
}
