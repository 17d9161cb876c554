/*
 * test_conv.c - convolution kernels: the im2col/GEMM and depthwise paths
 * against the direct naive loops, and the naive backward against central
 * finite differences, over stride/padding/dilation/groups edge cases.
 */
#include <stdlib.h>
#include <string.h>

#include "common/conv.h"
#include "common/err.h"
#include "tests/gradcheck.h"
#include "tests/harness.h"

typedef struct conv_case {
    int n, c, h, w, oc, kh, kw, stride, pad, dil, groups, bias;
} conv_case;

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

START_TEST(test_conv_cases) {
    const conv_case *cc = &CASES[_i];
    nas_rng rng;
    nas_rng_init(&rng, 100 + (uint64_t)_i, 3);
    gc_ctx g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_conv_shape_init(&g.s, cc->n, cc->c, cc->h, cc->w, cc->oc, cc->kh, cc->kw,
                                         cc->stride, cc->pad, cc->dil, cc->groups, err),
                     NAS_OK);
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
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_conv_cases, 0, (int)NAS_ARRAY_LEN(CASES));
    tcase_add_test(tc, test_conv_shape_errors);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
