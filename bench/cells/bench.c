/*
 * bench.c - training throughput of the engine on the search's own nets:
 * a genome (preset name, genome text, or "sample:SEED" for a cell drawn
 * from the default space) built at a fidelity (side, F, N), or the
 * micro-net of the separable-conv ops ("micro:C").  Batch 128 of random
 * one-channel data, SGD momentum 0.9; one step = zero-grad, forward,
 * cross-entropy, backward, update.  Prints one line:
 *     <median img/s> <min> <max> <median img/CPU-s> <MACs/img> <params> <genome text>
 * The genome text lets the PyTorch peer (torch_cells.py) build the same
 * network.  With WINDOWS = 0 it only prints the line's last three fields.
 *
 * usage: bench ARCH SIDE F N THREADS WINDOWS STEPS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/builder.h"
#include "common/genome.h"
#include "common/net.h"
#include "bench/train_loop.h"

/* The micro-net of the issue: stem 3x3 conv to c channels, then four
 * times [ReLU -> depthwise 3x3 -> pointwise 1x1 -> BN, plus max-pool 3x3
 * s1, plus avg-pool 3x3 s1, summed], GAP, linear. */
static int build_micro(nas_net *net, int c) {
    int x = nas_net_conv(net, "stem", nas_net_input(net), c, 3, 3, 1, 1, 1, 1, 0);
    for (int i = 0; i < 4; i++) {
        char p[32];
        snprintf(p, sizeof p, "b%d/dw", i);
        int y = nas_net_conv(net, p, nas_net_relu(net, x), c, 3, 3, 1, 1, 1, c, 0);
        snprintf(p, sizeof p, "b%d/pw", i);
        y = nas_net_conv(net, p, y, c, 1, 1, 1, 0, 1, 1, 0);
        snprintf(p, sizeof p, "b%d/bn", i);
        y = nas_net_bn(net, p, y);
        int m = nas_net_maxpool(net, x, 3, 1, 1), a = nas_net_avgpool(net, x, 3, 1, 1);
        x = nas_net_add(net, nas_net_add(net, y, m), a);
    }
    return nas_net_linear(net, "head", nas_net_gap(net, x), 10);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: bench ARCH SIDE F N THREADS WINDOWS STEPS\n");
        return 2;
    }
    const char *arch = argv[1];
    int side = atoi(argv[2]), F = atoi(argv[3]), N = atoi(argv[4]), threads = atoi(argv[5]);
    int windows = atoi(argv[6]), steps = atoi(argv[7]), batch = 128, out = -1;
    char err[NAS_ERR_LEN], text[1024] = "-";
    nas_net *net = NULL;
    if (nas_net_create(&net, 1, side, side, err) < 0) goto fail;
    if (strncmp(arch, "micro:", 6) == 0) {
        out = build_micro(net, atoi(arch + 6));
        if (out < 0) {
            snprintf(err, sizeof err, "%s", nas_net_errmsg(net));
            goto fail;
        }
    } else {
        nas_genome g;
        nas_fidelity f;
        memset(&f, 0, sizeof f);
        f.channels = F, f.cells = N;
        if (strncmp(arch, "sample:", 7) == 0) {
            nas_rng r;
            nas_rng_init(&r, strtoull(arch + 7, NULL, 10), 0);
            nas_space sp = {.kind = NAS_SPACE_CELL, .n_blocks = 5};
            if (nas_genome_sample(&sp, &r, &g) < 0) {
                snprintf(err, sizeof err, "cannot sample a genome");
                goto fail;
            }
        } else if (nas_builder_resolve_genome(arch, &g, err) < 0) {
            goto fail;
        }
        if (nas_genome_format(&g, text, sizeof text) < 0) snprintf(text, sizeof text, "?");
        if (nas_builder_build(net, &g, &f, 10, &out, err) < 0) goto fail;
    }
    if (nas_net_compile(net, out, batch, err) < 0 || nas_net_set_threads(net, threads, err) < 0)
        goto fail;
    if (windows <= 0) {
        printf("%lld %lld %s\n", (long long)nas_net_macs(net),
               (long long)nas_net_param_count(net), text);
        nas_net_destroy(&net);
        return 0;
    }
    double *ips = malloc(sizeof(double) * windows), *cps = malloc(sizeof(double) * windows);
    bench_train(net, side, windows, steps, ips, cps);
    printf("%.1f %.1f %.1f %.1f %lld %lld %s\n", ips[windows / 2], ips[0], ips[windows - 1],
           cps[windows / 2], (long long)nas_net_macs(net), (long long)nas_net_param_count(net),
           text);
    free(ips), free(cps);
    nas_net_destroy(&net);
    return 0;
fail:
    fprintf(stderr, "bench: %s\n", err);
    nas_net_destroy(&net);
    return 1;
}
