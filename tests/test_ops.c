/*
 * test_ops.c - pooling, batch norm, ReLU, linear, softmax cross-entropy,
 * dropout and drop-path: every backward against central finite
 * differences, plus the properties each forward promises.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/ops.h"
#include "tests/gradcheck.h"
#include "tests/harness.h"

enum { N = 2, C = 3, H = 7, W = 6 };

typedef struct ctx {
    int kind, k, stride, pad;
    float *inp, *out, *r, *gamma, *beta, *rm, *rv, *mean, *rstd, *weight, *bias;
    uint8_t labels[N];
    float smoothing;
} ctx;

enum { K_MAX, K_AVG, K_GAP, K_BN, K_RELU, K_LIN, K_XENT };

static size_t out_size(const ctx *g) {
    switch (g->kind) {
    case K_MAX:
    case K_AVG:
        return (size_t)N * C * nas_pool_out(H, g->k, g->stride, g->pad) *
               nas_pool_out(W, g->k, g->stride, g->pad);
    case K_GAP: return (size_t)N * C;
    case K_LIN: return (size_t)N * 5;
    case K_XENT: return 0;
    default: return (size_t)N * C * H * W;
    }
}

static double loss(void *p) {
    ctx *g = p;
    switch (g->kind) {
    case K_MAX: nas_maxpool_forward(g->out, g->inp, N, C, H, W, g->k, g->stride, g->pad); break;
    case K_AVG: nas_avgpool_forward(g->out, g->inp, N, C, H, W, g->k, g->stride, g->pad); break;
    case K_GAP: nas_gap_forward(g->out, g->inp, N, C, H * W); break;
    case K_BN:
        nas_bn_forward_train(g->out, g->mean, g->rstd, g->inp, g->gamma, g->beta, g->rm, g->rv, N,
                             C, H * W, 0.1f, 1e-5f, g->k);
        break;
    case K_RELU: nas_relu_forward(g->out, g->inp, (long)N * C * H * W); break;
    case K_LIN: nas_linear_forward(g->out, g->inp, g->weight, g->bias, N, C * H * W, 5); break;
    case K_XENT: {
        float d[N * 10];
        return nas_softmax_xent(d, g->inp, g->labels, N, 10, g->smoothing, NULL);
    }
    }
    return nas_dot_d(g->out, g->r, out_size(g));
}

static void setup(ctx *g, int kind, nas_rng *rng) {
    memset(g, 0, sizeof(*g));
    g->kind = kind;
    size_t n = (size_t)N * C * H * W;
    g->inp = calloc(n, sizeof(float)), g->out = calloc(n, sizeof(float));
    g->r = calloc(n, sizeof(float));
    g->gamma = calloc(C, sizeof(float)), g->beta = calloc(C, sizeof(float));
    g->rm = calloc(C, sizeof(float)), g->rv = calloc(C, sizeof(float));
    g->mean = calloc(C, sizeof(float)), g->rstd = calloc(C, sizeof(float));
    g->weight = calloc(n * 5, sizeof(float)), g->bias = calloc(5, sizeof(float));
    // Distinct values of magnitude >= 0.1 keep ReLU kinks and max ties out of reach of h.
    nas_fill_away_from_zero(g->inp, n, rng);
    nas_fill_uniform(g->r, n, -1, 1, rng);
    nas_fill_uniform(g->gamma, C, 0.5f, 1.5f, rng);
    nas_fill_uniform(g->beta, C, -0.5f, 0.5f, rng);
    nas_fill_uniform(g->weight, n * 5, -0.2f, 0.2f, rng);
    nas_fill_uniform(g->bias, 5, -1, 1, rng);
    for (int c = 0; c < C; c++) g->rv[c] = 1.0f;
}

static void teardown(ctx *g) {
    free(g->inp), free(g->out), free(g->r), free(g->gamma), free(g->beta), free(g->rm);
    free(g->rv), free(g->mean), free(g->rstd), free(g->weight), free(g->bias);
}

static const int POOL_CASES[][3] = {{3, 1, 1}, {3, 2, 1}, {3, 2, 0}, {2, 2, 0}};

START_TEST(test_pool_grad) {
    for (int kind = K_MAX; kind <= K_AVG; kind++) {
        nas_rng rng;
        nas_rng_init(&rng, 11 + (uint64_t)_i, 0);
        ctx g;
        setup(&g, kind, &rng);
        g.k = POOL_CASES[_i][0], g.stride = POOL_CASES[_i][1], g.pad = POOL_CASES[_i][2];
        size_t n = (size_t)N * C * H * W;
        float *din = calloc(n, sizeof(float));
        loss(&g);
        if (kind == K_MAX)
            nas_maxpool_backward(din, g.r, g.inp, N, C, H, W, g.k, g.stride, g.pad);
        else
            nas_avgpool_backward(din, g.r, N, C, H, W, g.k, g.stride, g.pad);
        ck_assert(nas_gradcheck(loss, &g, g.inp, din, n, 1e-3f, 1e-3, 1e-3, 0, "pool"));
        free(din);
        teardown(&g);
    }
}
END_TEST

START_TEST(test_avgpool_excludes_padding) {
    // A constant image averages to the constant everywhere, borders included,
    // only if padding is left out of the divisor.
    float inp[16], out[16];
    for (int i = 0; i < 16; i++) inp[i] = 2.0f;
    nas_avgpool_forward(out, inp, 1, 1, 4, 4, 3, 1, 1);
    for (int i = 0; i < 16; i++) ck_assert_float_eq_tol(out[i], 2.0f, 1e-6f);
    float mx[4];
    float img[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    nas_maxpool_forward(mx, img, 1, 1, 4, 4, 3, 2, 1);
    float want[4] = {6, 8, 14, 16};
    ck_assert(nas_allclose(mx, want, 4, 0, 0, "maxpool"));
}
END_TEST

START_TEST(test_gap_relu_linear_grad) {
    size_t n = (size_t)N * C * H * W;
    for (int kind = K_GAP; kind <= K_LIN; kind++) {
        if (kind == K_BN) continue;
        nas_rng rng;
        nas_rng_init(&rng, 21 + (uint64_t)kind, 0);
        ctx g;
        setup(&g, kind, &rng);
        float *din = calloc(n, sizeof(float)), *dw = calloc(n * 5, sizeof(float));
        float db[5] = {0};
        loss(&g);
        if (kind == K_GAP) nas_gap_backward(din, g.r, N, C, H * W);
        if (kind == K_RELU) nas_relu_backward(din, g.r, g.out, (long)n);
        if (kind == K_LIN)
            nas_linear_backward(din, dw, db, g.r, g.inp, g.weight, N, C * H * W, 5);
        ck_assert(nas_gradcheck(loss, &g, g.inp, din, n, 1e-3f, 1e-3, 1e-3, 0, "dinp"));
        if (kind == K_LIN) {
            ck_assert(nas_gradcheck(loss, &g, g.weight, dw, n * 5, 1e-2f, 1e-3, 1e-3, 300, "dw"));
            ck_assert(nas_gradcheck(loss, &g, g.bias, db, 5, 1e-2f, 1e-3, 1e-3, 0, "db"));
        }
        free(din), free(dw);
        teardown(&g);
    }
}
END_TEST

// Small planes (below 32 floats) take the channel-blocked BN walk: against a direct double
// evaluation of the same formulas, and a call split into channel ranges (as threads split it)
// gives the bits of the whole call.  Shapes: 4x4 planes of small14's last conv with an odd
// batch, 2x2 and 1x1 planes, and a channel count that is not a multiple of the block.
static const int BN_SMALL[][3] = {{9, 64, 16}, {5, 37, 4}, {3, 21, 1}, {130, 5, 16}};

START_TEST(test_bn_small_planes) {
    int n = BN_SMALL[_i][0], c = BN_SMALL[_i][1], hw = BN_SMALL[_i][2];
    size_t len = (size_t)n * c * hw;
    nas_rng rng;
    nas_rng_init(&rng, 77 + (uint64_t)_i, 0);
    float *x = malloc(sizeof(float) * len), *dy = malloc(sizeof(float) * len);
    float *y = malloc(sizeof(float) * len), *y2 = malloc(sizeof(float) * len);
    float *dx = malloc(sizeof(float) * len), *dx2 = malloc(sizeof(float) * len);
    float *pc = calloc(14 * (size_t)c, sizeof(float)); /* per-channel vectors below */
    float *gamma = pc, *beta = pc + c, *rm = pc + 2 * c, *rv = pc + 3 * c, *mean = pc + 4 * c;
    float *rstd = pc + 5 * c, *rm2 = pc + 6 * c, *rv2 = pc + 7 * c, *mean2 = pc + 8 * c;
    float *rstd2 = pc + 9 * c, *dg = pc + 10 * c, *db = pc + 11 * c, *dg2 = pc + 12 * c;
    float *db2 = pc + 13 * c;
    nas_fill_uniform(x, len, -1, 2, &rng);
    nas_fill_uniform(dy, len, -1, 1, &rng);
    nas_fill_uniform(gamma, c, 0.5f, 1.5f, &rng);
    nas_fill_uniform(beta, c, -0.5f, 0.5f, &rng);
    for (int ch = 0; ch < c; ch++) rv[ch] = rv2[ch] = 1.0f;
    nas_bn_forward_train_part(y, mean, rstd, x, gamma, beta, rm, rv, n, c, hw, 0.1f, 1e-5f, 1, 0,
                              c);
    int cut = c / 3 + 1;
    nas_bn_forward_train_part(y2, mean2, rstd2, x, gamma, beta, rm2, rv2, n, c, hw, 0.1f, 1e-5f, 1,
                              0, cut);
    nas_bn_forward_train_part(y2, mean2, rstd2, x, gamma, beta, rm2, rv2, n, c, hw, 0.1f, 1e-5f, 1,
                              cut, c);
    ck_assert(memcmp(y, y2, sizeof(float) * len) == 0);
    ck_assert(memcmp(rv, rv2, sizeof(float) * c) == 0);
    nas_bn_backward_part(dx, dg, db, dy, y, x, mean, rstd, gamma, n, c, hw, 1, 1, 0, c);
    nas_bn_backward_part(dx2, dg2, db2, dy, y, x, mean, rstd, gamma, n, c, hw, 1, 1, 0, cut);
    nas_bn_backward_part(dx2, dg2, db2, dy, y, x, mean, rstd, gamma, n, c, hw, 1, 1, cut, c);
    ck_assert(memcmp(dx, dx2, sizeof(float) * len) == 0);
    ck_assert(memcmp(dg, dg2, sizeof(float) * c) == 0);
    for (int ch = 0; ch < c; ch++) {
        double s1 = 0, s2 = 0, m = (double)n * hw;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < hw; i++) {
                double v = x[((size_t)b * c + ch) * hw + i];
                s1 += v, s2 += v * v;
            }
        double mu = s1 / m, var = s2 / m - mu * mu, rs = 1.0 / sqrt(var + 1e-5);
        ck_assert_double_eq_tol(mean[ch], mu, 1e-5);
        ck_assert_double_eq_tol(rstd[ch], rs, 1e-3 * rs);
        // Backward through relu(gamma * xhat + beta): g = dy where the output is positive.
        double sg = 0, sgx = 0;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < hw; i++) {
                size_t j = ((size_t)b * c + ch) * hw + i;
                double xh = (x[j] - mu) * rs, o = gamma[ch] * xh + beta[ch];
                ck_assert_double_eq_tol(y[j], o > 0 ? o : 0, 1e-4);
                double g = y[j] > 0 ? dy[j] : 0;
                sg += g, sgx += g * xh;
            }
        ck_assert_double_eq_tol(db[ch], sg, 1e-3);
        ck_assert_double_eq_tol(dg[ch], sgx, 1e-3);
        for (int b = 0; b < n; b++)
            for (int i = 0; i < hw; i++) {
                size_t j = ((size_t)b * c + ch) * hw + i;
                double xh = (x[j] - mu) * rs, g = y[j] > 0 ? dy[j] : 0;
                double want = gamma[ch] * rs / m * (m * g - sg - xh * sgx);
                ck_assert_double_eq_tol(dx[j], want, 1e-4);
            }
    }
    free(x), free(dy), free(y), free(y2), free(dx), free(dx2), free(pc);
}
END_TEST

START_TEST(test_bn_grad_and_stats) {
    nas_rng rng;
    nas_rng_init(&rng, 31, 0);
    ctx g;
    setup(&g, K_BN, &rng);
    size_t n = (size_t)N * C * H * W;
    loss(&g);
    // The normalised output has zero mean and unit variance per channel before the affine.
    for (int c = 0; c < C; c++) {
        double s = 0, s2 = 0;
        for (int b = 0; b < N; b++)
            for (int i = 0; i < H * W; i++) {
                double xh = (g.out[(b * C + c) * H * W + i] - g.beta[c]) / g.gamma[c];
                s += xh, s2 += xh * xh;
            }
        ck_assert_double_eq_tol(s / (N * H * W), 0.0, 1e-5);
        ck_assert_double_eq_tol(s2 / (N * H * W), 1.0, 1e-3);
        // One update with momentum 0.1 from (0, 1).
        ck_assert_float_eq_tol(g.rm[c], 0.1f * g.mean[c], 1e-6f);
    }
    float *din = calloc(n, sizeof(float)), dg[C] = {0}, dbt[C] = {0};
    nas_bn_backward(din, dg, dbt, g.r, g.out, g.inp, g.mean, g.rstd, g.gamma, N, C, H * W, 0);
    ck_assert(nas_gradcheck(loss, &g, g.inp, din, n, 1e-2f, 2e-3, 3e-3, 0, "bn dinp"));
    ck_assert(nas_gradcheck(loss, &g, g.gamma, dg, C, 1e-2f, 1e-3, 1e-3, 0, "bn dgamma"));
    ck_assert(nas_gradcheck(loss, &g, g.beta, dbt, C, 1e-2f, 1e-3, 1e-3, 0, "bn dbeta"));
    // Eval mode with running stats equal to the batch's reproduces the training output.
    float *out2 = calloc(n, sizeof(float)), rv2[C];
    for (int c = 0; c < C; c++) rv2[c] = 1.0f / (g.rstd[c] * g.rstd[c]) - 1e-5f;
    nas_bn_forward_train(g.out, g.mean, g.rstd, g.inp, g.gamma, g.beta, g.rm, g.rv, N, C, H * W,
                         0.1f, 1e-5f, 0);
    nas_bn_forward_eval(out2, g.inp, g.gamma, g.beta, g.mean, rv2, N, C, H * W, 1e-5f, 0);
    ck_assert(nas_allclose(g.out, out2, n, 1e-4f, 1e-4f, "bn eval"));
    // Fused BN+ReLU equals BN followed by ReLU, forward and backward.
    float *fused = calloc(n, sizeof(float)), *dfused = calloc(n, sizeof(float));
    float *drelu = calloc(n, sizeof(float)), *dsplit = calloc(n, sizeof(float));
    float dg2[C] = {0}, db2[C] = {0}, dg3[C] = {0}, db3[C] = {0};
    nas_bn_forward_eval(fused, g.inp, g.gamma, g.beta, g.mean, rv2, N, C, H * W, 1e-5f, 1);
    nas_relu_forward(out2, out2, (long)n);
    ck_assert(nas_allclose(fused, out2, n, 0, 0, "bn+relu eval"));
    nas_bn_forward_train(fused, g.mean, g.rstd, g.inp, g.gamma, g.beta, g.rm, g.rv, N, C, H * W,
                         0.1f, 1e-5f, 1);
    nas_relu_forward(out2, g.out, (long)n);
    ck_assert(nas_allclose(fused, out2, n, 0, 0, "bn+relu train"));
    nas_bn_backward(dfused, dg2, db2, g.r, fused, g.inp, g.mean, g.rstd, g.gamma, N, C, H * W, 1);
    nas_relu_backward(drelu, g.r, fused, (long)n);
    nas_bn_backward(dsplit, dg3, db3, drelu, NULL, g.inp, g.mean, g.rstd, g.gamma, N, C, H * W, 0);
    ck_assert(nas_allclose(dfused, dsplit, n, 1e-6f, 1e-5f, "bn+relu dinp"));
    ck_assert(nas_allclose(dg2, dg3, C, 1e-6f, 1e-5f, "bn+relu dgamma"));
    ck_assert(nas_allclose(db2, db3, C, 1e-6f, 1e-5f, "bn+relu dbeta"));
    g.k = 1; /* the gradient check of the fused kernel itself */
    loss(&g);
    memset(din, 0, sizeof(float) * n), memset(dg, 0, sizeof dg), memset(dbt, 0, sizeof dbt);
    nas_bn_backward(din, dg, dbt, g.r, g.out, g.inp, g.mean, g.rstd, g.gamma, N, C, H * W, 1);
    ck_assert(nas_gradcheck(loss, &g, g.inp, din, n, 1e-3f, 2e-3, 3e-3, 0, "bn+relu dinp"));
    ck_assert(nas_gradcheck(loss, &g, g.gamma, dg, C, 1e-3f, 1e-3, 1e-3, 0, "bn+relu dgamma"));
    free(din), free(out2), free(fused), free(dfused), free(drelu), free(dsplit);
    teardown(&g);
}
END_TEST

START_TEST(test_softmax_xent) {
    nas_rng rng;
    nas_rng_init(&rng, 41, 0);
    ctx g;
    setup(&g, K_XENT, &rng);
    g.labels[0] = 3, g.labels[1] = 9;
    for (int s = 0; s < 2; s++) {
        g.smoothing = s ? 0.1f : 0.0f;
        float d[N * 10];
        int correct = -1;
        double l = nas_softmax_xent(d, g.inp, g.labels, N, 10, g.smoothing, &correct);
        ck_assert(l > 0 && isfinite(l));
        ck_assert(correct >= 0 && correct <= N);
        ck_assert(nas_gradcheck(loss, &g, g.inp, d, N * 10, 1e-3f, 1e-4, 1e-3, 0, "xent"));
    }
    // Uniform logits give log(K) whatever the label; huge logits stay finite.
    float z[10] = {0}, d[10];
    uint8_t lab = 2;
    ck_assert_double_eq_tol(nas_softmax_xent(d, z, &lab, 1, 10, 0, NULL), log(10.0), 1e-9);
    z[2] = 1e30f;
    ck_assert(isfinite(nas_softmax_xent(d, z, &lab, 1, 10, 0, NULL)));
    teardown(&g);
}
END_TEST

START_TEST(test_dropout_and_drop_path) {
    nas_rng rng;
    nas_rng_init(&rng, 51, 0);
    enum { M = 4000 };
    float *x = malloc(M * sizeof(float)), *y = malloc(M * sizeof(float));
    float *mask = malloc(M * sizeof(float)), *dx = calloc(M, sizeof(float));
    for (int i = 0; i < M; i++) x[i] = 1.0f;
    nas_dropout_forward(y, mask, x, M, 0.25f, &rng);
    int zeros = 0;
    double sum = 0;
    for (int i = 0; i < M; i++) zeros += y[i] == 0.0f, sum += y[i];
    ck_assert(zeros > 850 && zeros < 1150);       /* about p*M */
    ck_assert(fabs(sum / M - 1.0) < 0.06);        /* inverted scaling keeps the mean */
    nas_dropout_backward(dx, x, mask, M);
    ck_assert(nas_allclose(dx, mask, M, 0, 0, "dropout backward"));
    // Drop-path masks whole images: each image is all zero or all 1/(1-p).
    float m2[40];
    nas_drop_path_forward(y, m2, x, 40, 100, 0.5f, &rng);
    int dropped = 0;
    for (int b = 0; b < 40; b++) {
        for (int i = 0; i < 100; i++) ck_assert_float_eq(y[b * 100 + i], m2[b]);
        ck_assert(m2[b] == 0.0f || m2[b] == 2.0f);
        dropped += m2[b] == 0.0f;
    }
    ck_assert(dropped > 5 && dropped < 35);
    memset(dx, 0, M * sizeof(float));
    nas_drop_path_backward(dx, x, m2, 40, 100);
    ck_assert(nas_allclose(dx, y, M, 0, 0, "drop-path backward"));
    free(x), free(y), free(mask), free(dx);
}
END_TEST

// The image-split BN kernels (threads owning ranges of the batch): partial sums over ranges,
// added in range order, then finish and apply/dx per range, against the channel kernels on the
// whole batch.  Shapes: small14's 4x4 and 7x7 layers, a 14x14 one, more channels than one pass
// of the split kernels holds (70 > 64), and a range with no images.
static const int BN_SPLIT[][4] = {
    {9, 64, 16, 2}, {7, 32, 49, 3}, {4, 16, 196, 2}, {5, 70, 9, 2}, {2, 8, 25, 3}};

START_TEST(test_bn_image_split) {
    int n = BN_SPLIT[_i][0], c = BN_SPLIT[_i][1], hw = BN_SPLIT[_i][2], parts = BN_SPLIT[_i][3];
    size_t len = (size_t)n * c * hw;
    long per = (long)c * hw;
    nas_rng rng;
    nas_rng_init(&rng, 91 + (uint64_t)_i, 0);
    float *x = malloc(sizeof(float) * len), *dy = malloc(sizeof(float) * len);
    float *y = malloc(sizeof(float) * len), *y2 = malloc(sizeof(float) * len);
    float *dx = calloc(len, sizeof(float)), *dx2 = malloc(sizeof(float) * len);
    float *pc = calloc(16 * (size_t)c, sizeof(float));
    float *gamma = pc, *beta = pc + c, *rm = pc + 2 * c, *rv = pc + 3 * c, *mean = pc + 4 * c;
    float *rstd = pc + 5 * c, *rm2 = pc + 6 * c, *rv2 = pc + 7 * c, *mean2 = pc + 8 * c;
    float *rstd2 = pc + 9 * c, *dg = pc + 10 * c, *db = pc + 11 * c, *dg2 = pc + 12 * c;
    float *db2 = pc + 13 * c, *coef = malloc(sizeof(float) * 4 * (size_t)c);
    double *part = malloc(sizeof(double) * 2 * (size_t)c),
           *tot = calloc(2 * (size_t)c, sizeof(double));
    nas_fill_uniform(x, len, -1, 2, &rng);
    nas_fill_uniform(dy, len, -1, 1, &rng);
    nas_fill_uniform(gamma, c, 0.5f, 1.5f, &rng);
    nas_fill_uniform(beta, c, -0.5f, 0.5f, &rng);
    for (int ch = 0; ch < c; ch++)
        rv[ch] = rv2[ch] = 1.0f;
    nas_bn_forward_train(y, mean, rstd, x, gamma, beta, rm, rv, n, c, hw, 0.1f, 1e-5f, 1);
    // Ranges as nas_workpool_split makes them; with n < parts some are empty.
    for (int t = 0; t < parts; t++) {
        long b0 = (long)n * t / parts, b1 = (long)n * (t + 1) / parts;
        nas_bn_stats_part(part, x + b0 * per, (int)(b1 - b0), c, hw);
        for (int k = 0; k < 2 * c; k++)
            tot[k] += part[k];
    }
    float *scale = coef, *shift = coef + c;
    nas_bn_finish_stats(scale, shift, mean2, rstd2, rm2, rv2, tot, gamma, beta, (long)n * hw, c,
                        0.1f, 1e-5f);
    for (int t = 0; t < parts; t++) {
        long b0 = (long)n * t / parts, b1 = (long)n * (t + 1) / parts;
        nas_bn_apply_part(y2 + b0 * per, x + b0 * per, scale, shift, (int)(b1 - b0), c, hw, 1);
    }
    ck_assert(nas_allclose(mean2, mean, c, 1e-6f, 1e-5f, "mean"));
    ck_assert(nas_allclose(rstd2, rstd, c, 1e-6f, 1e-5f, "rstd"));
    ck_assert(nas_allclose(rv2, rv, c, 1e-6f, 1e-5f, "running var"));
    ck_assert(nas_allclose(y2, y, len, 1e-5f, 1e-4f, "output"));
    // Backward: the ReLU mask comes from the forward's output; dx is stored (overwrite).
    nas_bn_backward(dx, dg, db, dy, y, x, mean, rstd, gamma, n, c, hw, 1);
    memset(tot, 0, sizeof(double) * 2 * (size_t)c);
    for (int t = 0; t < parts; t++) {
        long b0 = (long)n * t / parts, b1 = (long)n * (t + 1) / parts;
        nas_bn_backward_sums_part(part, dy + b0 * per, y + b0 * per, x + b0 * per, (int)(b1 - b0),
                                  c, hw, 1);
        for (int k = 0; k < 2 * c; k++)
            tot[k] += part[k];
    }
    nas_bn_finish_backward(coef, dg2, db2, tot, mean, rstd, gamma, (long)n * hw, c);
    for (int t = 0; t < parts; t++) {
        long b0 = (long)n * t / parts, b1 = (long)n * (t + 1) / parts;
        // Half the ranges add onto a prefilled gradient, checking the accumulating form too.
        if (t % 2) {
            for (long i = b0 * per; i < b1 * per; i++)
                dx2[i] = 1.0f;
            nas_bn_backward_dx_part(dx2 + b0 * per, dy + b0 * per, y + b0 * per, x + b0 * per, coef,
                                    (int)(b1 - b0), c, hw, 1, 0);
            for (long i = b0 * per; i < b1 * per; i++)
                dx2[i] -= 1.0f;
        } else {
            nas_bn_backward_dx_part(dx2 + b0 * per, dy + b0 * per, y + b0 * per, x + b0 * per, coef,
                                    (int)(b1 - b0), c, hw, 1, 1);
        }
    }
    ck_assert(nas_allclose(dg2, dg, c, 1e-4f, 1e-4f, "dgamma"));
    ck_assert(nas_allclose(db2, db, c, 1e-4f, 1e-4f, "dbeta"));
    ck_assert(nas_allclose(dx2, dx, len, 1e-5f, 1e-3f, "dx"));
    // One range (a single thread) sums in the channel kernels' order: the same bits as them.
    float *rm3 = calloc(2 * (size_t)c, sizeof(float)), *rv3 = rm3 + c;
    float *mean3 = malloc(sizeof(float) * 2 * (size_t)c), *rstd3 = mean3 + c;
    for (int ch = 0; ch < c; ch++) rv3[ch] = 1.0f;
    float *rm1 = calloc(2 * (size_t)c, sizeof(float)), *rv1 = rm1 + c;
    for (int ch = 0; ch < c; ch++) rv1[ch] = 1.0f;
    nas_bn_forward_train(y, mean, rstd, x, gamma, beta, rm1, rv1, n, c, hw, 0.1f, 1e-5f, 1);
    nas_bn_stats_part(tot, x, n, c, hw);
    nas_bn_finish_stats(scale, shift, mean3, rstd3, rm3, rv3, tot, gamma, beta, (long)n * hw, c,
                        0.1f, 1e-5f);
    nas_bn_apply_part(y2, x, scale, shift, n, c, hw, 1);
    ck_assert(memcmp(y, y2, sizeof(float) * len) == 0);
    ck_assert(memcmp(mean, mean3, sizeof(float) * c) == 0 && memcmp(rv1, rv3, sizeof(float) * c) == 0);
    memset(dg, 0, sizeof(float) * c), memset(dg2, 0, sizeof(float) * c);
    memset(db, 0, sizeof(float) * c), memset(db2, 0, sizeof(float) * c);
    nas_bn_backward_part(dx, dg, db, dy, y, x, mean, rstd, gamma, n, c, hw, 1, 1, 0, c);
    nas_bn_backward_sums_part(tot, dy, y, x, n, c, hw, 1);
    nas_bn_finish_backward(coef, dg2, db2, tot, mean, rstd, gamma, (long)n * hw, c);
    nas_bn_backward_dx_part(dx2, dy, y, x, coef, n, c, hw, 1, 1);
    ck_assert(memcmp(dx, dx2, sizeof(float) * len) == 0);
    ck_assert(memcmp(dg, dg2, sizeof(float) * c) == 0 && memcmp(db, db2, sizeof(float) * c) == 0);
    free(rm3), free(mean3), free(rm1);
    // Without the coefficient owner's flag, dgamma is left alone.
    float keep = dg2[0];
    nas_bn_finish_backward(coef, NULL, db2, tot, mean, rstd, gamma, (long)n * hw, c);
    ck_assert(dg2[0] == keep);
    free(x), free(dy), free(y), free(y2), free(dx), free(dx2), free(pc), free(coef), free(part);
    free(tot);
}
END_TEST

// The cloned ReLU kernels against their definitions, by memcmp, on lengths around the vectors.
START_TEST(test_relu_clones) {
    nas_rng rng;
    nas_rng_init(&rng, 29, 0);
    for (long n = 1; n < 70; n += 7) {
        float x[70], d[70], y[70], g[70], ref[70];
        nas_fill_uniform(x, n, -1, 1, &rng);
        nas_fill_uniform(d, n, -1, 1, &rng);
        nas_relu_forward(y, x, n);
        for (long i = 0; i < n; i++)
            ref[i] = x[i] > 0.0f ? x[i] : 0.0f;
        ck_assert(memcmp(y, ref, sizeof(float) * n) == 0);
        nas_relu_backward_store(g, d, y, n);
        for (long i = 0; i < n; i++)
            ref[i] = y[i] > 0.0f ? d[i] : 0.0f;
        ck_assert(memcmp(g, ref, sizeof(float) * n) == 0);
        nas_relu_backward(g, d, y, n);
        for (long i = 0; i < n; i++)
            ref[i] += y[i] > 0.0f ? d[i] : 0.0f;
        ck_assert(memcmp(g, ref, sizeof(float) * n) == 0);
    }
}
END_TEST

// BN's sums (nas_bn_stats_part, nas_bn_backward_sums_part without and with the ReLU mask)
// against their definition, by memcmp: per image and channel, lane l of 16 sums in float the
// elements p = l (mod 16) in order, the lanes are widened to double and added over the images,
// then folded in lane order.  Planes shorter than, equal to and longer than 16, with and
// without a tail.
static const int SUM_HW[] = {1, 9, 15, 16, 17, 31, 49, 196};

START_TEST(test_bn_sum_lanes) {
    int hw = SUM_HW[_i], n = 3, c = 5;
    size_t len = (size_t)n * c * hw;
    nas_rng rng;
    nas_rng_init(&rng, 23 + (uint64_t)_i, 0);
    float *x = malloc(sizeof(float) * 3 * len), *dy = x + len, *o = x + 2 * len;
    nas_fill_uniform(x, 3 * len, -1, 1, &rng);
    double got[10], ref[10];
    for (int kind = 0; kind < 3; kind++) { /* x and x^2; g and g*x; the same masked by o > 0 */
        if (kind == 0)
            nas_bn_stats_part(got, x, n, c, hw);
        else
            nas_bn_backward_sums_part(got, dy, o, x, n, c, hw, kind == 2);
        for (int ch = 0; ch < c; ch++) {
            double l1[16] = {0}, l2[16] = {0};
            for (int b = 0; b < n; b++) {
                float f1[16] = {0}, f2[16] = {0};
                size_t off = ((size_t)b * c + ch) * hw;
                for (int p = 0; p < hw; p++) {
                    float v = x[off + p], g = dy[off + p];
                    if (kind == 2 && !(o[off + p] > 0.0f)) g = 0.0f;
                    f1[p % 16] += kind ? g : v;
                    f2[p % 16] += kind ? g * v : v * v;
                }
                for (int j = 0; j < 16; j++)
                    l1[j] += (double)f1[j], l2[j] += (double)f2[j];
            }
            ref[2 * ch] = ref[2 * ch + 1] = 0.0;
            for (int j = 0; j < 16; j++)
                ref[2 * ch] += l1[j], ref[2 * ch + 1] += l2[j];
        }
        ck_assert_msg(memcmp(got, ref, sizeof ref) == 0, "hw %d kind %d", hw, kind);
    }
    free(x);
}
END_TEST

// The add that applies BNs on the way and sums up to three terms (nas_add_part): every
// combination of BN'd terms, two or three terms and the fused ReLU equals nas_bn_apply_part
// (training coefficients) or nas_bn_forward_eval_part (nas_bn_eval_coef's) followed by the adds
// one after another, bit for bit.
static const int ADD_CASES[][3] = {{3, 4, 49}, {2, 8, 16}, {2, 5, 9}, {1, 3, 196}, {4, 2, 1}};

START_TEST(test_add_bn) {
    int n = ADD_CASES[_i][0], c = ADD_CASES[_i][1], hw = ADD_CASES[_i][2];
    size_t len = (size_t)n * c * hw;
    nas_rng rng;
    nas_rng_init(&rng, 17 + (uint64_t)_i, 0);
    float *buf = malloc(sizeof(float) * 8 * len), *co = malloc(sizeof(float) * 10 * (size_t)c);
    const float *x[3] = {buf, buf + len, buf + 2 * len};
    float *y[3] = {buf + 3 * len, buf + 4 * len, buf + 5 * len};
    float *out = buf + 6 * len, *ref = buf + 7 * len, *s[3], *h[3];
    nas_fill_uniform(buf, 3 * len, -2, 2, &rng);
    nas_fill_uniform(co, 10 * (size_t)c, 0.1f, 1.5f, &rng);
    for (int k = 0; k < 3; k++) {
        s[k] = co + 2 * k * c, h[k] = co + (2 * k + 1) * c;
        for (int ch = 0; ch < c; ch++)
            h[k][ch] -= 0.8f; /* shifts of both signs */
    }
    for (int eval = 0; eval < 2; eval++) {
        // gamma, beta, running mean, running var in co + 6c
        const float *g = co + 6 * c, *be = co + 7 * c, *rm = co + 8 * c, *rv = co + 9 * c;
        for (int k = 0; k < 3; k++) {
            if (eval) {
                nas_bn_eval_coef(s[k], h[k], g, be, rm, rv, c, 1e-5f);
                nas_bn_forward_eval_part(y[k], x[k], g, be, rm, rv, n, c, hw, 1e-5f, 0, 0, c);
                nas_bn_apply_part(out, x[k], s[k], h[k], n, c, hw, 0);
                ck_assert(memcmp(y[k], out, sizeof(float) * len) == 0);
            }
            nas_bn_apply_part(y[k], x[k], s[k], h[k], n, c, hw, 0);
        }
        for (int key = 0; key < 32; key++) {
            int nt = key & 8 ? 3 : 2, relu = key & 16;
            const float *sc[3], *sh[3];
            for (int k = 0; k < 3; k++)
                sc[k] = key & (1 << k) ? s[k] : NULL, sh[k] = h[k];
            for (size_t i = 0; i < len; i++) {
                float t = (sc[0] ? y[0] : x[0])[i] + (sc[1] ? y[1] : x[1])[i];
                if (nt == 3) t = t + (sc[2] ? y[2] : x[2])[i];
                ref[i] = relu ? (t > 0.0f ? t : 0.0f) : t;
            }
            nas_add_part(out, (long)c * hw, nt, x, sc, sh, n, c, hw, relu);
            ck_assert_msg(memcmp(out, ref, sizeof(float) * len) == 0, "key %d, eval %d", key, eval);
            // Into every other image of a buffer twice the size, at 3 floats in (a concat's part).
            float *wide = malloc(sizeof(float) * (2 * len + 3));
            nas_add_part(wide + 3, 2L * c * hw, nt, x, sc, sh, n, c, hw, relu);
            for (int b = 0; b < n; b++)
                ck_assert(memcmp(wide + 3 + 2L * b * c * hw, ref + (long)b * c * hw,
                                 sizeof(float) * c * hw) == 0);
            free(wide);
        }
    }
    free(buf), free(co);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_pool_grad, 0, (int)(sizeof(POOL_CASES) / sizeof(POOL_CASES[0])));
    tcase_add_test(tc, test_avgpool_excludes_padding);
    tcase_add_test(tc, test_gap_relu_linear_grad);
    tcase_add_test(tc, test_bn_grad_and_stats);
    tcase_add_loop_test(tc, test_bn_small_planes, 0, (int)(sizeof BN_SMALL / sizeof BN_SMALL[0]));
    tcase_add_loop_test(tc, test_bn_image_split, 0, (int)(sizeof BN_SPLIT / sizeof BN_SPLIT[0]));
    tcase_add_test(tc, test_relu_clones);
    tcase_add_loop_test(tc, test_bn_sum_lanes, 0, (int)(sizeof SUM_HW / sizeof SUM_HW[0]));
    tcase_add_loop_test(tc, test_add_bn, 0, (int)(sizeof ADD_CASES / sizeof ADD_CASES[0]));
    tcase_add_test(tc, test_softmax_xent);
    tcase_add_test(tc, test_dropout_and_drop_path);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
