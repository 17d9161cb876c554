/*
 * test_conv.c - convolution kernels: the im2col/GEMM, kernel-row, one-row and depthwise paths
 * against the direct naive loops, and the naive backward (and the one-row path's own) against
 * central finite differences, over stride/padding/dilation/groups edge cases; the one-row path
 * bit-identical at every instruction-set level.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/conv.h"
#include "common/conv_internal.h"
#include "common/err.h"
#include "common/pointwise.h"
#include "common/simd.h"
#include "tests/gradcheck.h"
#include "tests/harness.h"

typedef struct conv_case {
    int n, c, h, w, oc, kh, kw, stride, pad, dil, groups, bias;
} conv_case;

// A case whose rows are padded by cc.pad and columns by pad_w.
typedef struct asym_case {
    conv_case cc;
    int pad_w;
} asym_case;

// The shape of cc with columns padded by pad_w (asserted valid).
static void case_shape(nas_conv_shape *s, const conv_case *cc, int pad_w, int n, int oc,
                       int groups) {
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_conv_shape_init_hw(s, n, cc->c, cc->h, cc->w, oc, cc->kh, cc->kw,
                                         cc->stride, cc->pad, pad_w, cc->dil, groups, err) ==
                      NAS_OK,
                  "%s", err);
}

static const conv_case CASES[] = {
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1},  /* plain 3x3 same */
    {2, 3, 7, 7, 5, 3, 3, 2, 1, 1, 1, 0},  /* stride 2, odd side */
    {2, 4, 5, 5, 6, 1, 1, 1, 0, 1, 1, 1},  /* pointwise: straight GEMM */
    {2, 4, 6, 5, 3, 1, 1, 2, 0, 1, 1, 0},  /* 1x1 stride 2 (factorized reduce) */
    {1, 2, 9, 8, 3, 3, 3, 1, 2, 2, 1, 1},  /* dilation 2 */
    {2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 2, 1},  /* groups 2 */
    {2, 4, 6, 7, 4, 3, 3, 1, 1, 1, 4, 0},  /* depthwise */
    {2, 3, 9, 9, 3, 5, 5, 2, 4, 2, 3, 1},  /* depthwise, stride 2, dilation 2 */
    {1, 2, 5, 6, 3, 1, 3, 1, 0, 1, 1, 1},  /* non-square kernel, no padding */
    {1, 1, 3, 3, 2, 3, 3, 3, 0, 1, 1, 1},  /* kernel covers the image: 1x1 output */
};

// conv1x7_7x1's halves, each padding only the axis its kernel spans, and other uneven paddings.
static const asym_case ASYM[] = {
    {{2, 4, 5, 6, 4, 1, 7, 1, 0, 1, 1, 0}, 3}, /* 1x7, columns padded (one-row path) */
    {{2, 4, 6, 5, 4, 7, 1, 1, 3, 1, 1, 0}, 0}, /* 7x1, rows padded (kernel-row path) */
    {{2, 4, 7, 6, 4, 7, 1, 2, 3, 1, 1, 1}, 0}, /* 7x1 stride 2 (table im2col) */
    {{1, 3, 6, 7, 3, 1, 3, 1, 0, 1, 3, 1}, 1}, /* depthwise 1x3 */
    {{1, 2, 5, 6, 3, 3, 3, 1, 2, 1, 1, 1}, 0}, /* 3x3 padded 2 rows, no columns */
};

typedef struct gc_ctx {
    nas_conv_shape s;
    float *inp, *weight, *bias, *out, *r;
} gc_ctx;

static double conv_loss(void *p) {
    gc_ctx *g = p;
    nas_conv2d_forward_naive(g->out, g->inp, g->weight, g->bias, &g->s);
    return nas_dot_d(g->out, g->r, (size_t)g->s.n * g->s.oc * g->s.oh * g->s.ow);
}

static float *alloc_f(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

// The optimized conv of cc (columns padded by pad_w) against the naive loops, and the naive
// backward against finite differences.
static void check_case(const conv_case *cc, int pad_w, uint64_t seed) {
    nas_rng rng;
    nas_rng_init(&rng, seed, 3);
    gc_ctx g;
    case_shape(&g.s, cc, pad_w, cc->n, cc->oc, cc->groups);
    const nas_conv_shape *s = &g.s;
    size_t n_in = (size_t)s->n * s->c * s->h * s->w, n_out = (size_t)s->n * s->oc * s->oh * s->ow;
    size_t n_w = (size_t)s->oc * (s->c / s->groups) * s->kh * s->kw;
    g.inp = alloc_f(n_in), g.weight = alloc_f(n_w), g.bias = cc->bias ? alloc_f(s->oc) : NULL;
    g.out = alloc_f(n_out), g.r = alloc_f(n_out);
    float *out2 = alloc_f(n_out), *ws = alloc_f(nas_conv_workspace(s));
    nas_fill_uniform(g.inp, n_in, -1, 1, &rng);
    nas_fill_uniform(g.weight, n_w, -1, 1, &rng);
    if (g.bias) nas_fill_uniform(g.bias, s->oc, -1, 1, &rng);
    nas_fill_uniform(g.r, n_out, -1, 1, &rng);

    // Forward: optimized path against the naive loops.
    nas_conv2d_forward(g.out, g.inp, g.weight, g.bias, s, ws);
    nas_conv2d_forward_naive(out2, g.inp, g.weight, g.bias, s);
    ck_assert(nas_allclose(g.out, out2, n_out, 1e-4f, 1e-4f, "conv fwd"));

    // Backward: both paths accumulate onto the same nonzero starting gradients.
    float *di1 = alloc_f(n_in), *di2 = alloc_f(n_in), *dw1 = alloc_f(n_w), *dw2 = alloc_f(n_w);
    float *db1 = alloc_f(s->oc), *db2 = alloc_f(s->oc);
    for (size_t i = 0; i < n_in; i++) di1[i] = di2[i] = 0.5f;
    for (size_t i = 0; i < n_w; i++) dw1[i] = dw2[i] = -0.25f;
    nas_conv2d_backward(di1, dw1, g.bias ? db1 : NULL, g.r, g.inp, g.weight, s, ws);
    nas_conv2d_backward_naive(di2, dw2, g.bias ? db2 : NULL, g.r, g.inp, g.weight, s);
    ck_assert(nas_allclose(di1, di2, n_in, 1e-4f, 1e-4f, "conv dinp"));
    ck_assert(nas_allclose(dw1, dw2, n_w, 1e-4f, 1e-4f, "conv dweight"));
    ck_assert(nas_allclose(db1, db2, s->oc, 1e-4f, 1e-4f, "conv dbias"));

    // Naive backward against finite differences (fresh, zeroed gradients).
    memset(di2, 0, sizeof(float) * n_in), memset(dw2, 0, sizeof(float) * n_w);
    memset(db2, 0, sizeof(float) * s->oc);
    nas_conv2d_backward_naive(di2, dw2, g.bias ? db2 : NULL, g.r, g.inp, g.weight, s);
    ck_assert(nas_gradcheck(conv_loss, &g, g.inp, di2, n_in, 1e-2f, 1e-3, 1e-3, 200, "dinp"));
    ck_assert(nas_gradcheck(conv_loss, &g, g.weight, dw2, n_w, 1e-2f, 1e-3, 1e-3, 200, "dw"));
    if (g.bias)
        ck_assert(nas_gradcheck(conv_loss, &g, g.bias, db2, s->oc, 1e-2f, 1e-3, 1e-3, 0, "db"));
    free(g.inp), free(g.weight), free(g.bias), free(g.out), free(g.r), free(out2), free(ws);
    free(di1), free(di2), free(dw1), free(dw2), free(db1), free(db2);
}

START_TEST(test_conv_cases) { check_case(&CASES[_i], CASES[_i].pad, 100 + (uint64_t)_i); }
END_TEST

START_TEST(test_conv_cases_asym) { check_case(&ASYM[_i].cc, ASYM[_i].pad_w, 150 + (uint64_t)_i); }
END_TEST

// Layer shapes of the reference nets (with odd batch sizes) and the span path of im2col/col2im
// (stride 1, output as wide as the input, dilated too).  Optimized against naive only: these are
// too big for gradchecks.
static const conv_case GROUPED[] = {
    {7, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 0},   /* ResNet-20 7x7 stage */
    {5, 32, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1}, /* 14x14 stage, with bias */
    {5, 32, 14, 14, 64, 3, 3, 2, 1, 1, 1, 0}, /* stride 2 into 7x7 */
    {3, 8, 4, 5, 6, 3, 3, 1, 1, 1, 2, 1},     /* channel groups, odd width */
    {3, 4, 6, 6, 5, 3, 3, 1, 2, 2, 1, 0},     /* dilated same-width conv (span path) */
    {3, 6, 5, 5, 4, 1, 1, 1, 0, 1, 2, 1},     /* pointwise, grouped (GEMM straight into dinp) */
    {2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 4, 0},     /* depthwise */
    // The stride-1 kernel-row path (expanded buffers, no im2col) and the edges of its choice:
    {3, 8, 9, 7, 6, 3, 3, 1, 0, 1, 1, 1},     /* valid conv: output narrower than the input */
    {2, 4, 8, 9, 5, 5, 3, 1, 1, 1, 1, 0},     /* 5x3 kernel: the input gradient pads 3 and 1 */
    {2, 8, 6, 6, 8, 3, 3, 1, 1, 1, 2, 0},     /* two groups of 4 channels */
    {2, 4, 7, 7, 4, 3, 3, 1, 3, 2, 1, 1},     /* dilated, output wider than the input */
    {2, 4, 5, 5, 4, 3, 3, 1, 3, 1, 1, 0},     /* padding beyond the kernel: dX via col2im */
    {2, 3, 6, 6, 5, 3, 3, 1, 1, 1, 1, 0},     /* 3 input channels: im2col path */
    {2, 4, 6, 6, 3, 3, 3, 1, 1, 1, 1, 0},     /* 3 output channels: dX via col2im */
    {2, 4, 25, 24, 6, 3, 3, 2, 1, 1, 1, 1},   /* stride 2 (two row phases), odd height */
    {2, 4, 27, 27, 4, 3, 3, 2, 2, 2, 1, 0},   /* stride 2, dilated: all taps in phase 0 */
    {2, 8, 24, 25, 8, 5, 5, 2, 2, 1, 2, 1},   /* stride 2, 5x5, two groups */
    {3, 4, 26, 26, 3, 3, 3, 2, 0, 1, 1, 0},   /* stride 2, no padding, 3 output channels */
    {3, 4, 8, 8, 3, 3, 3, 2, 1, 1, 1, 0},     /* stride 2, narrow output: table im2col */
    // small14's convs; narrow strided ones take the transposed-column weight gradient:
    {3, 1, 14, 14, 16, 3, 3, 1, 1, 1, 1, 0},  /* one-channel stem (loop im2col) */
    {3, 16, 14, 14, 32, 3, 3, 2, 1, 1, 1, 0}, /* 16-32 stride 2 into 7x7 */
    {3, 32, 7, 7, 64, 3, 3, 2, 1, 1, 1, 1},   /* 32-64 stride 2 into 4x4, with bias */
    {2, 6, 8, 8, 4, 3, 3, 2, 1, 1, 2, 1},     /* narrow stride 2, two groups of 3 channels */
};

// conv1x7_7x1 at the search's and the final fidelity's sides.
static const asym_case GROUPED_ASYM[] = {
    {{2, 16, 14, 14, 16, 1, 7, 1, 0, 1, 1, 0}, 3}, /* 1x7 (one-row path) */
    {{2, 64, 14, 14, 64, 1, 7, 1, 0, 1, 1, 0}, 3}, /* 1x7 at 64 channels (im2col) */
    {{2, 16, 14, 14, 16, 7, 1, 1, 3, 1, 1, 0}, 0}, /* 7x1 */
    {{2, 16, 14, 14, 16, 7, 1, 2, 3, 1, 1, 0}, 0}, /* 7x1 stride 2 into 7x7 (table) */
    {{2, 16, 28, 28, 16, 7, 1, 2, 3, 1, 1, 0}, 0}, /* 7x1 stride 2 into 14x14 (row phases) */
};

static void check_grouped(const conv_case *cc, int pad_w, uint64_t seed) {
    nas_rng rng;
    nas_rng_init(&rng, seed, 3);
    nas_conv_shape s;
    case_shape(&s, cc, pad_w, cc->n, cc->oc, cc->groups);
    size_t n_in = (size_t)s.n * s.c * s.h * s.w, n_out = (size_t)s.n * s.oc * s.oh * s.ow;
    size_t n_w = (size_t)s.oc * (s.c / s.groups) * s.kh * s.kw;
    float *inp = alloc_f(n_in), *w = alloc_f(n_w), *bias = cc->bias ? alloc_f(s.oc) : NULL;
    float *r = alloc_f(n_out), *o1 = alloc_f(n_out), *o2 = alloc_f(n_out);
    float *ws = alloc_f(nas_conv_workspace(&s));
    nas_fill_uniform(inp, n_in, -1, 1, &rng);
    nas_fill_uniform(w, n_w, -1, 1, &rng);
    if (bias) nas_fill_uniform(bias, s.oc, -1, 1, &rng);
    nas_fill_uniform(r, n_out, -1, 1, &rng);
    nas_conv2d_forward(o1, inp, w, bias, &s, ws);
    nas_conv2d_forward_naive(o2, inp, w, bias, &s);
    ck_assert(nas_allclose(o1, o2, n_out, 1e-3f, 1e-4f, "grouped fwd"));
    float *di1 = alloc_f(n_in), *di2 = alloc_f(n_in), *dw1 = alloc_f(n_w), *dw2 = alloc_f(n_w);
    float *db1 = alloc_f(s.oc), *db2 = alloc_f(s.oc);
    for (size_t i = 0; i < n_in; i++) di1[i] = di2[i] = 0.5f;
    nas_conv2d_backward(di1, dw1, bias ? db1 : NULL, r, inp, w, &s, ws);
    nas_conv2d_backward_naive(di2, dw2, bias ? db2 : NULL, r, inp, w, &s);
    ck_assert(nas_allclose(di1, di2, n_in, 1e-3f, 1e-4f, "grouped dinp"));
    ck_assert(nas_allclose(dw1, dw2, n_w, 1e-3f, 1e-4f, "grouped dweight"));
    ck_assert(nas_allclose(db1, db2, s.oc, 1e-3f, 1e-4f, "grouped dbias"));
    // The store form overwrites stale contents of dinp (and still accumulates dweight).
    for (size_t i = 0; i < n_in; i++) di1[i] = 1e6f, di2[i] = 0.0f;
    memcpy(dw1, dw2, sizeof(float) * n_w);
    nas_conv2d_backward_store(di1, dw1, NULL, r, inp, w, &s, ws);
    nas_conv2d_backward_naive(di2, dw2, NULL, r, inp, w, &s);
    ck_assert(nas_allclose(di1, di2, n_in, 1e-3f, 1e-4f, "store dinp"));
    ck_assert(nas_allclose(dw1, dw2, n_w, 1e-3f, 1e-4f, "store dweight"));
    free(inp), free(w), free(bias), free(r), free(o1), free(o2), free(ws);
    free(di1), free(di2), free(dw1), free(dw2), free(db1), free(db2);
}

START_TEST(test_conv_grouped) { check_grouped(&GROUPED[_i], GROUPED[_i].pad, 900 + (uint64_t)_i); }
END_TEST

START_TEST(test_conv_grouped_asym) {
    check_grouped(&GROUPED_ASYM[_i].cc, GROUPED_ASYM[_i].pad_w, 950 + (uint64_t)_i);
}
END_TEST

// The public col2im is the exact adjoint of im2col: <im2col(x), y> == <x, col2im(y)>, and it
// leaves its column argument untouched.
START_TEST(test_im2col_adjoint) {
    nas_conv_shape s;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_conv_shape_init(&s, 1, 3, 6, 7, 4, 3, 3, 1, 1, 1, 1, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 77, 1);
    size_t n_img = 3 * 6 * 7, n_col = nas_conv_workspace(&s);
    float *x = alloc_f(n_img), *y = alloc_f(n_col), *ycopy = alloc_f(n_col);
    float *cx = alloc_f(n_col), *ty = alloc_f(n_img);
    nas_fill_uniform(x, n_img, -1, 1, &rng);
    nas_fill_uniform(y, n_col, -1, 1, &rng);
    memcpy(ycopy, y, sizeof(float) * n_col);
    nas_im2col(cx, x, 3, &s);
    nas_col2im_add(ty, y, 3, &s);
    ck_assert_mem_eq(y, ycopy, sizeof(float) * n_col);
    double lhs = nas_dot_d(cx, y, n_col), rhs = nas_dot_d(x, ty, n_img);
    ck_assert_double_eq_tol(lhs, rhs, 1e-4);
    free(x), free(y), free(ycopy), free(cx), free(ty);
}
END_TEST

// Every im2col variant writes the same columns as the row loops: the table gather, plain (the
// path of CPUs without AVX2) and with AVX2 gathers where this CPU has them, the AVX-512 permutes
// (forward layout) where it has those, and the transposed columns of the backward's weight
// gradient, both ways.
static const conv_case IM2COL[] = {
    {1, 3, 8, 8, 1, 3, 3, 2, 1, 1, 1, 0},   /* 4x4 output, padding on one side only */
    {1, 2, 14, 14, 1, 3, 3, 2, 1, 1, 1, 0}, /* 7x7 output */
    {1, 2, 9, 11, 1, 5, 3, 2, 2, 1, 1, 0},  /* odd sizes, 5x3 kernel */
    {1, 2, 13, 13, 1, 3, 3, 3, 2, 2, 1, 0}, /* stride 3, dilated, padding past the kernel */
    {1, 1, 15, 15, 1, 1, 1, 2, 0, 1, 1, 0}, /* 1x1 stride 2 */
    {1, 4, 20, 20, 1, 3, 3, 2, 1, 1, 1, 0}, /* 10x10 output: input rows in two registers */
    {1, 3, 7, 7, 1, 3, 3, 2, 1, 1, 1, 0},   /* small14's 4x4 output from a 7x7 input */
};

// The same with rows and columns padded apart.
static const asym_case IM2COL_ASYM[] = {
    {{1, 2, 14, 14, 1, 7, 1, 2, 3, 1, 1, 0}, 0}, /* 7x1 stride 2, rows padded only */
    {{1, 2, 8, 8, 1, 1, 7, 2, 0, 1, 1, 0}, 3},   /* 1x7 stride 2, columns padded only */
};

// The case of index i of the im2col loops: IM2COL, then IM2COL_ASYM.
static const conv_case *im2col_case(int i, int *pad_w) {
    int n = (int)NAS_ARRAY_LEN(IM2COL);
    const conv_case *cc = i < n ? &IM2COL[i] : &IM2COL_ASYM[i - n].cc;
    *pad_w = i < n ? cc->pad : IM2COL_ASYM[i - n].pad_w;
    return cc;
}

START_TEST(test_im2col_variants) {
    int pad_w;
    const conv_case *cc = im2col_case(_i, &pad_w);
    nas_rng rng;
    nas_rng_init(&rng, 1200 + (uint64_t)_i, 3);
    nas_conv_shape s;
    case_shape(&s, cc, pad_w, 1, 1, 1);
    size_t n_in = (size_t)s.c * s.h * s.w, ohw = (size_t)s.oh * s.ow;
    size_t rows = (size_t)s.c * s.kh * s.kw, n_col = rows * ohw;
    float *img = alloc_f(n_in), *ref = alloc_f(n_col), *reft = alloc_f(n_col);
    float *col = alloc_f(n_col);
    ck_assert_uint_gt(nas__conv_table_ints(&s), 0);
    int32_t *tab = calloc(nas__conv_table_ints(&s), sizeof(int32_t));
    nas_fill_uniform(img, n_in, 0.5f, 1, &rng); /* nonzero, so a missed padding zero shows */
    ck_assert_int_eq(nas__conv_im2col_variant(ref, img, s.c, &s, NAS__IM2COL_LOOPS, tab), 1);
    for (size_t r = 0; r < rows; r++)
        for (size_t p = 0; p < ohw; p++) reft[p * rows + r] = ref[r * ohw + p];
    int ran = 0;
    for (int v = NAS__IM2COL_TABLE_PLAIN; v <= NAS__IM2COLT_PERM_AVX512; v++) {
        for (size_t i = 0; i < n_col; i++) col[i] = 7.0f; /* stale values must be overwritten */
        if (!nas__conv_im2col_variant(col, img, s.c, &s, v, tab)) continue;
        ran++;
        int transposed = v == NAS__IM2COLT_TABLE_PLAIN || v == NAS__IM2COLT_TABLE_AVX2 ||
                         v == NAS__IM2COLT_PERM_AVX512;
        const float *want = transposed ? reft : ref;
        ck_assert_msg(memcmp(want, col, sizeof(float) * n_col) == 0, "variant %d differs", v);
    }
    // These shapes all take the table, so at least the two plain gathers ran; on an AVX-512
    // CPU every variant runs where the rows fit the permutes.
    ck_assert_int_ge(ran, 2);
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NAS_NO_CLONES)
    if (__builtin_cpu_supports("avx512f") && s.w <= 16 && s.kh <= 4 && s.kh * s.kw * s.ow <= 64)
        ck_assert_int_eq(ran, 6);
    else if (__builtin_cpu_supports("avx512f") && s.w <= 32)
        ck_assert_int_eq(ran, 5);
#endif
    free(img), free(ref), free(reft), free(col), free(tab);
}
END_TEST

// The permute col2im of the backward adds the same bits as the row loops, onto a prefilled
// gradient (so the add order shows), on every im2col shape the forward's permutes take.
START_TEST(test_col2im_variants) {
    int pad_w;
    const conv_case *cc = im2col_case(_i, &pad_w);
    nas_rng rng;
    nas_rng_init(&rng, 1300 + (uint64_t)_i, 3);
    nas_conv_shape s;
    case_shape(&s, cc, pad_w, 1, 1, 1);
    size_t n_in = (size_t)s.c * s.h * s.w, n_col = (size_t)s.c * s.kh * s.kw * s.oh * s.ow;
    float *col = alloc_f(n_col), *col2 = alloc_f(n_col), *ref = alloc_f(n_in), *got = alloc_f(n_in);
    nas_fill_uniform(col, n_col, -1, 1, &rng);
    nas_fill_uniform(ref, n_in, -1, 1, &rng);
    memcpy(col2, col, sizeof(float) * n_col);
    memcpy(got, ref, sizeof(float) * n_in);
    ck_assert_int_eq(nas__conv_col2im_variant(ref, col, s.c, &s, 0), 1);
    int ran = nas__conv_col2im_variant(got, col2, s.c, &s, 1);
    if (ran) ck_assert_msg(memcmp(ref, got, sizeof(float) * n_in) == 0, "permute col2im differs");
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NAS_NO_CLONES)
    if (__builtin_cpu_supports("avx512f") && s.w <= 32) ck_assert_int_eq(ran, 1);
#endif
    free(col), free(col2), free(ref), free(got);
}
END_TEST

// The one-row path of conv_cols.c (1xK, stride 1): amoebanet_a's 1x7 at both fidelities,
// paddings from none (output narrower) to KW-1 (wider, the input gradient unpadded), groups, rows
// of more than one vector with tails, and channel counts off the kernels' blocks.
static const asym_case COLS[] = {
    {{2, 8, 14, 14, 8, 1, 7, 1, 0, 1, 1, 0}, 3},   /* search fidelity's 1x7 */
    {{2, 16, 28, 28, 24, 1, 7, 1, 0, 1, 1, 1}, 3}, /* final side, C != OC, bias */
    {{2, 4, 3, 9, 5, 1, 7, 1, 0, 1, 1, 1}, 0},     /* unpadded: 3 columns out of 9 */
    {{2, 4, 4, 3, 6, 1, 5, 1, 0, 1, 1, 0}, 4},     /* padding KW-1: 7 columns out of 3 */
    {{3, 8, 5, 7, 8, 1, 3, 1, 0, 1, 2, 1}, 1},     /* two groups of 4 channels */
    {{1, 5, 6, 17, 6, 1, 3, 1, 0, 1, 1, 0}, 1},    /* rows of 17: a tail past one vector */
    {{2, 6, 4, 33, 4, 1, 5, 1, 0, 1, 1, 0}, 2},    /* rows of 33 */
    {{1, 4, 2, 2, 4, 1, 3, 1, 0, 1, 1, 1}, 2},     /* 2x2 plane, padding wider than the row */
};

typedef struct cols_run {
    float *out, *di, *dis, *dw, *db;
} cols_run;

// One level's forward, backward onto prefilled gradients, and store backward of a COLS case.
static void cols_level(cols_run *r, int isa, const nas_conv_shape *s, const float *inp,
                       const float *w, const float *bias, const float *dy, float *ws) {
    size_t n_in = (size_t)s->n * s->c * s->h * s->w;
    size_t n_w = (size_t)s->oc * (s->c / s->groups) * s->kw;
    for (size_t i = 0; i < n_in; i++)
        r->di[i] = 0.5f, r->dis[i] = 1e6f;
    for (size_t i = 0; i < n_w; i++)
        r->dw[i] = -0.25f;
    for (int o = 0; o < s->oc; o++)
        r->db[o] = 0.125f;
    nas__conv_cols_forward(isa, r->out, inp, w, bias, s, ws);
    nas__conv_cols_backward(isa, r->di, 0, r->dw, bias ? r->db : NULL, dy, inp, w, s, ws);
    nas__conv_cols_backward(isa, r->dis, 1, r->dw, NULL, dy, inp, w, s, ws);
}

static void cols_alloc(cols_run *r, size_t n_out, size_t n_in, size_t n_w, int oc) {
    r->out = alloc_f(n_out), r->di = alloc_f(n_in), r->dis = alloc_f(n_in);
    r->dw = alloc_f(n_w), r->db = alloc_f((size_t)oc);
}

static void cols_free(cols_run *r) {
    free(r->out), free(r->di), free(r->dis), free(r->dw), free(r->db);
}

typedef struct cols_gc {
    nas_conv_shape s;
    float *inp, *weight, *bias, *out, *r, *ws;
} cols_gc;

static double cols_loss(void *p) {
    cols_gc *g = p;
    nas__conv_cols_forward(NAS__PW_REF, g->out, g->inp, g->weight, g->bias, &g->s, g->ws);
    return nas_dot_d(g->out, g->r, (size_t)g->s.n * g->s.oc * g->s.oh * g->s.ow);
}

// Every level (scalar, AVX2, AVX-512 where the CPU runs them) gives the bits of level 0, and the
// forward and input gradient those of the reference loops (NAS__PW_REF); all close to the naive
// conv; the store form overwrites stale dinp; conv.c dispatches the shape here; and the path's
// own backward matches central finite differences of its forward.
START_TEST(test_conv_cols) {
    const asym_case *ac = &COLS[_i];
    nas_rng rng;
    nas_rng_init(&rng, 1400 + (uint64_t)_i, 3);
    cols_gc g;
    case_shape(&g.s, &ac->cc, ac->pad_w, ac->cc.n, ac->cc.oc, ac->cc.groups);
    const nas_conv_shape *s = &g.s;
    ck_assert(nas__conv_cols_ok(s));
    size_t n_in = (size_t)s->n * s->c * s->h * s->w, n_out = (size_t)s->n * s->oc * s->oh * s->ow;
    size_t n_w = (size_t)s->oc * (s->c / s->groups) * s->kw;
    g.inp = alloc_f(n_in), g.weight = alloc_f(n_w), g.bias = ac->cc.bias ? alloc_f(s->oc) : NULL;
    g.out = alloc_f(n_out), g.r = alloc_f(n_out), g.ws = alloc_f(nas_conv_workspace(s));
    ck_assert_uint_eq(nas_conv_workspace(s), nas__conv_cols_workspace(s));
    nas_fill_uniform(g.inp, n_in, -1, 1, &rng);
    nas_fill_uniform(g.weight, n_w, -1, 1, &rng);
    if (g.bias) nas_fill_uniform(g.bias, s->oc, -1, 1, &rng);
    nas_fill_uniform(g.r, n_out, -1, 1, &rng);

    cols_run ref, lv0, lv;
    cols_alloc(&ref, n_out, n_in, n_w, s->oc), cols_alloc(&lv0, n_out, n_in, n_w, s->oc);
    cols_alloc(&lv, n_out, n_in, n_w, s->oc);
    cols_level(&ref, NAS__PW_REF, s, g.inp, g.weight, g.bias, g.r, g.ws);
    cols_level(&lv0, NAS_SIMD_SCALAR, s, g.inp, g.weight, g.bias, g.r, g.ws);
    ck_assert_mem_eq(lv0.out, ref.out, sizeof(float) * n_out);
    ck_assert_mem_eq(lv0.di, ref.di, sizeof(float) * n_in);
    ck_assert_mem_eq(lv0.dis, ref.dis, sizeof(float) * n_in);
    for (int isa = NAS_SIMD_AVX2; isa <= nas_simd_best(); isa++) {
        cols_level(&lv, isa, s, g.inp, g.weight, g.bias, g.r, g.ws);
        ck_assert_msg(memcmp(lv.out, lv0.out, sizeof(float) * n_out) == 0, "fwd isa %d", isa);
        ck_assert_msg(memcmp(lv.di, lv0.di, sizeof(float) * n_in) == 0, "dinp isa %d", isa);
        ck_assert_msg(memcmp(lv.dis, lv0.dis, sizeof(float) * n_in) == 0, "store isa %d", isa);
        ck_assert_msg(memcmp(lv.dw, lv0.dw, sizeof(float) * n_w) == 0, "dweight isa %d", isa);
        ck_assert_msg(memcmp(lv.db, lv0.db, sizeof(float) * s->oc) == 0, "dbias isa %d", isa);
    }
    // The naive conv, onto the same prefilled gradients (its dweight twice: add, then store).
    float *out2 = alloc_f(n_out), *di2 = alloc_f(n_in), *dis2 = alloc_f(n_in), *dw2 = alloc_f(n_w);
    float *db2 = alloc_f(s->oc);
    for (size_t i = 0; i < n_in; i++)
        di2[i] = 0.5f;
    for (size_t i = 0; i < n_w; i++)
        dw2[i] = -0.25f;
    for (int o = 0; o < s->oc; o++)
        db2[o] = 0.125f;
    nas_conv2d_forward_naive(out2, g.inp, g.weight, g.bias, s);
    nas_conv2d_backward_naive(di2, dw2, g.bias ? db2 : NULL, g.r, g.inp, g.weight, s);
    nas_conv2d_backward_naive(dis2, dw2, NULL, g.r, g.inp, g.weight, s);
    ck_assert(nas_allclose(lv0.out, out2, n_out, 1e-4f, 1e-4f, "cols fwd"));
    ck_assert(nas_allclose(lv0.di, di2, n_in, 1e-4f, 1e-4f, "cols dinp"));
    ck_assert(nas_allclose(lv0.dis, dis2, n_in, 1e-4f, 1e-4f, "cols store dinp"));
    ck_assert(nas_allclose(lv0.dw, dw2, n_w, 1e-4f, 1e-4f, "cols dweight"));
    ck_assert(nas_allclose(lv0.db, db2, s->oc, 1e-4f, 1e-4f, "cols dbias"));
    // conv.c's dispatch runs this path at the CPU's best level.
    nas_conv2d_forward(out2, g.inp, g.weight, g.bias, s, g.ws);
    ck_assert_mem_eq(out2, lv0.out, sizeof(float) * n_out);
    memcpy(di2, g.inp, sizeof(float) * n_in); /* stale */
    memset(dw2, 0, sizeof(float) * n_w);
    nas_conv2d_backward_store(di2, dw2, NULL, g.r, g.inp, g.weight, s, g.ws);
    ck_assert_mem_eq(di2, lv0.dis, sizeof(float) * n_in);

    // Finite differences of the path's forward against its backward, on the small cases.
    if (n_in <= 512) {
        memset(di2, 0, sizeof(float) * n_in), memset(dw2, 0, sizeof(float) * n_w);
        memset(db2, 0, sizeof(float) * s->oc);
        nas__conv_cols_backward(nas_simd_best(), di2, 0, dw2, g.bias ? db2 : NULL, g.r, g.inp,
                                g.weight, s, g.ws);
        ck_assert(nas_gradcheck(cols_loss, &g, g.inp, di2, n_in, 1e-2f, 2e-3, 2e-3, 200, "dinp"));
        ck_assert(nas_gradcheck(cols_loss, &g, g.weight, dw2, n_w, 1e-2f, 2e-3, 2e-3, 200, "dw"));
        if (g.bias)
            ck_assert(nas_gradcheck(cols_loss, &g, g.bias, db2, s->oc, 1e-2f, 2e-3, 2e-3, 0, "db"));
    }
    cols_free(&ref), cols_free(&lv0), cols_free(&lv);
    free(g.inp), free(g.weight), free(g.bias), free(g.out), free(g.r), free(g.ws);
    free(out2), free(di2), free(dis2), free(dw2), free(db2);
}
END_TEST

// Which shapes the one-row path takes: amoebanet_a's 1x7 (up to 32 channels, or 128 on planes
// of 28x28 and more, per group); not stride 2, dilation, row padding, a padding past the kernel,
// 3 channels, depthwise, 64 channels on 14x14, or a 1x1.
static const struct {
    conv_case cc;
    int pad_w, ok;
} COLS_CHOICE[] = {
    {{1, 8, 14, 14, 8, 1, 7, 1, 0, 1, 1, 0}, 3, 1},
    {{1, 8, 14, 14, 8, 1, 7, 2, 0, 1, 1, 0}, 3, 0},
    {{1, 8, 14, 14, 8, 1, 3, 1, 0, 2, 1, 0}, 2, 0},
    {{1, 8, 14, 14, 8, 1, 7, 1, 1, 1, 1, 0}, 3, 0},
    {{1, 8, 14, 14, 8, 1, 3, 1, 0, 1, 1, 0}, 3, 0},
    {{1, 3, 14, 14, 8, 1, 7, 1, 0, 1, 1, 0}, 3, 0},
    {{1, 8, 14, 14, 8, 1, 7, 1, 0, 1, 8, 0}, 3, 0},
    {{1, 8, 14, 14, 8, 1, 1, 1, 0, 1, 1, 0}, 0, 0},
    {{1, 32, 7, 7, 32, 1, 7, 1, 0, 1, 1, 0}, 3, 1},
    {{1, 64, 14, 14, 64, 1, 7, 1, 0, 1, 1, 0}, 3, 0},
    {{1, 64, 14, 14, 64, 1, 7, 1, 0, 1, 2, 0}, 3, 1},
    {{1, 64, 28, 28, 64, 1, 7, 1, 0, 1, 1, 0}, 3, 1},
};

START_TEST(test_conv_cols_choice) {
    nas_conv_shape s;
    const conv_case *cc = &COLS_CHOICE[_i].cc;
    case_shape(&s, cc, COLS_CHOICE[_i].pad_w, cc->n, cc->oc, cc->groups);
    ck_assert_int_eq(nas__conv_cols_ok(&s), COLS_CHOICE[_i].ok);
}
END_TEST

START_TEST(test_conv_shape_errors) {
    nas_conv_shape s;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_conv_shape_init(&s, 1, 3, 8, 8, 4, 3, 3, 1, 1, 1, 2, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "groups"));
    ck_assert_int_eq(nas_conv_shape_init(&s, 1, 3, 2, 2, 4, 5, 5, 1, 0, 1, 1, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "does not fit"));
    ck_assert_int_eq(nas_conv_shape_init(&s, 1, 3, 8, 8, 4, 3, 3, 0, 1, 1, 1, err), NAS_EINVAL);
    ck_assert_int_eq(nas_conv_shape_init(&s, 1, 3, 8, 8, 4, 3, 3, 2, 1, 1, 1, err), NAS_OK);
    ck_assert_int_eq(s.oh, 4);
    ck_assert_int_eq(s.ow, 4);
    // Rows and columns padded apart: a 1x7 padded (0, 3) keeps the side; a 7x1 padded (0, 3)
    // loses 6 rows and gains 6 columns; a negative padding of either axis is refused by name.
    ck_assert_int_eq(nas_conv_shape_init_hw(&s, 1, 3, 8, 9, 4, 1, 7, 1, 0, 3, 1, 1, err), NAS_OK);
    ck_assert_int_eq(s.oh, 8);
    ck_assert_int_eq(s.ow, 9);
    ck_assert_int_eq(nas_conv_shape_init_hw(&s, 1, 3, 8, 9, 4, 7, 1, 1, 0, 3, 1, 1, err), NAS_OK);
    ck_assert_int_eq(s.oh, 2);
    ck_assert_int_eq(s.ow, 15);
    ck_assert_int_eq(nas_conv_shape_init_hw(&s, 1, 3, 8, 8, 4, 3, 3, 1, 1, -1, 1, 1, err),
                     NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "pad=1x-1"));
    ck_assert_int_eq(nas_conv_shape_init_hw(&s, 1, 3, 4, 8, 4, 7, 1, 1, 1, 3, 1, 1, err),
                     NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "does not fit the padded input 6x14"));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_conv_cases, 0, (int)NAS_ARRAY_LEN(CASES));
    tcase_add_loop_test(tc, test_conv_cases_asym, 0, (int)NAS_ARRAY_LEN(ASYM));
    tcase_add_loop_test(tc, test_conv_grouped, 0, (int)NAS_ARRAY_LEN(GROUPED));
    tcase_add_loop_test(tc, test_conv_grouped_asym, 0, (int)NAS_ARRAY_LEN(GROUPED_ASYM));
    tcase_add_test(tc, test_im2col_adjoint);
    int n_im2col = (int)(NAS_ARRAY_LEN(IM2COL) + NAS_ARRAY_LEN(IM2COL_ASYM));
    tcase_add_loop_test(tc, test_im2col_variants, 0, n_im2col);
    tcase_add_loop_test(tc, test_col2im_variants, 0, n_im2col);
    tcase_add_test(tc, test_conv_shape_errors);
    tcase_add_loop_test(tc, test_conv_cols, 0, (int)NAS_ARRAY_LEN(COLS));
    tcase_add_loop_test(tc, test_conv_cols_choice, 0, (int)NAS_ARRAY_LEN(COLS_CHOICE));
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
