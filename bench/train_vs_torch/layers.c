/*
 * layers.c - achieved GFLOP/s of each convolution shape of the reference
 * nets (batch 128) beside OpenBLAS sgemm alone on the same GEMM shapes, so
 * the cost of everything around the GEMMs (im2col, col2im, zeroing, bias)
 * is visible per layer type.  For each shape it times, per CPU-second of
 * this process, over the whole batch:
 *   fwd      nas_conv2d_forward
 *   bwd      nas_conv2d_backward_store (weight and input gradients)
 *   gemm_f   the forward's per-image sgemm calls alone (column matrix prepared once)
 *   gemm_b   the backward's per-image sgemm calls alone, as the im2col path issues them
 *            (dW += dY col^T, dcol = W^T dY)
 * Each figure is the best of several repeats (the least disturbed one on a shared machine).
 *
 * usage: layers [REPEATS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/conv.h"
#include "common/err.h"
#include "common/gemm.h"
#include "common/rng.h"

typedef struct shape_case {
    const char *name;
    int c, h, oc, k, stride;
} shape_case;

static const shape_case CASES[] = {
    {"r20 stem 1-16 3x3 28", 1, 28, 16, 3, 1},      {"r20 16-16 3x3 28", 16, 28, 16, 3, 1},
    {"r20 16-32 3x3/2 28", 16, 28, 32, 3, 2},       {"r20 16-32 1x1/2 28", 16, 28, 32, 1, 2},
    {"r20 32-32 3x3 14", 32, 14, 32, 3, 1},         {"r20 32-64 3x3/2 14", 32, 14, 64, 3, 2},
    {"r20 64-64 3x3 7", 64, 7, 64, 3, 1},           {"small14 1-16 3x3 14", 1, 14, 16, 3, 1},
    {"small14 16-32 3x3/2 14", 16, 14, 32, 3, 2},   {"small14 32-64 3x3/2 7", 32, 7, 64, 3, 2},
};

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fill(float *p, size_t n, nas_rng *rng) {
    for (size_t i = 0; i < n; i++) p[i] = nas_rng_uniform(rng) - 0.5f;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5, batch = 128;
    nas_rng rng;
    nas_rng_init(&rng, 7, 0);
    printf("%-24s %8s %8s %8s %8s %8s  (GFLOP/s per CPU-second, batch %d)\n", "layer", "fwd",
           "gemm_f", "bwd", "gemm_b", "bwd/gmb", batch);
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        const shape_case *sc = &CASES[ci];
        nas_conv_shape s;
        char err[NAS_ERR_LEN];
        if (nas_conv_shape_init(&s, batch, sc->c, sc->h, sc->h, sc->oc, sc->k, sc->k, sc->stride,
                                sc->k / 2, 1, 1, err) < 0) {
            fprintf(stderr, "layers: %s\n", err);
            return 1;
        }
        size_t nin = (size_t)batch * s.c * s.h * s.w, nout = (size_t)batch * s.oc * s.oh * s.ow;
        int kk = s.c * s.kh * s.kw, ohw = s.oh * s.ow;
        size_t nw = (size_t)s.oc * kk, nws = nas_conv_workspace(&s) + 1;
        size_t ncol = (size_t)kk * ohw;
        float *in = nas_aligned_alloc(sizeof(float) * nin);
        float *out = nas_aligned_alloc(sizeof(float) * nout);
        float *din = nas_aligned_alloc(sizeof(float) * nin);
        float *dout = nas_aligned_alloc(sizeof(float) * nout);
        float *w = nas_aligned_alloc(sizeof(float) * nw);
        float *dw = nas_aligned_alloc(sizeof(float) * nw);
        float *ws = nas_aligned_alloc(sizeof(float) * nws);
        float *col = nas_aligned_alloc(sizeof(float) * ncol);
        if (!in || !out || !din || !dout || !w || !dw || !ws || !col) {
            fprintf(stderr, "layers: out of memory\n");
            return 1;
        }
        fill(in, nin, &rng), fill(dout, nout, &rng), fill(w, nw, &rng), fill(col, ncol, &rng);
        memset(dw, 0, sizeof(float) * nw);
        double flops = 2.0 * batch * (double)s.oc * kk * ohw; /* one GEMM's worth */
        double best[4] = {0, 0, 0, 0};
        for (int r = 0; r < reps; r++) {
            double t[4];
            double c0 = cpu_now();
            nas_conv2d_forward(out, in, w, NULL, &s, ws);
            t[0] = cpu_now() - c0;
            c0 = cpu_now();
            for (int b = 0; b < batch; b++)
                nas_gemm(0, 0, s.oc, ohw, kk, 1.0f, w, kk, col, ohw, 0.0f,
                         out + (size_t)b * s.oc * ohw, ohw);
            t[1] = cpu_now() - c0;
            c0 = cpu_now();
            nas_conv2d_backward_store(s.c > 1 ? din : NULL, dw, NULL, dout, in, w, &s, ws);
            t[2] = cpu_now() - c0;
            c0 = cpu_now();
            for (int b = 0; b < batch; b++) {
                const float *dy = dout + (size_t)b * s.oc * ohw;
                nas_gemm(0, 1, s.oc, kk, ohw, 1.0f, dy, ohw, col, ohw, 1.0f, dw, kk);
                if (s.c > 1) nas_gemm(1, 0, kk, ohw, s.oc, 1.0f, w, kk, dy, ohw, 0.0f, col, ohw);
            }
            t[3] = cpu_now() - c0;
            double f[4] = {flops, flops, flops * (s.c > 1 ? 2 : 1), flops * (s.c > 1 ? 2 : 1)};
            for (int i = 0; i < 4; i++)
                if (f[i] / t[i] * 1e-9 > best[i]) best[i] = f[i] / t[i] * 1e-9;
        }
        printf("%-24s %8.1f %8.1f %8.1f %8.1f %8.2f\n", sc->name, best[0], best[1], best[2],
               best[3], best[2] / best[3]);
        nas_aligned_free(in), nas_aligned_free(out), nas_aligned_free(din), nas_aligned_free(dout);
        nas_aligned_free(w), nas_aligned_free(dw), nas_aligned_free(ws), nas_aligned_free(col);
    }
    return 0;
}
