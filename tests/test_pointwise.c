// nas-test: label=unit timeout=300
/*
 * test_pointwise.c - the pointwise (1x1) conv kernels of common/pointwise.c at every instruction
 * set this CPU runs (scalar, AVX2, AVX-512, forced through the isa argument): forward and input
 * gradient (added and stored) bit-identical to the reference loops, the weight gradient
 * bit-identical across levels and close to the double-precision naive conv, bias gradients,
 * the backward against central finite differences, and conv.c's dispatch taking them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/conv.h"
#include "common/err.h"
#include "common/pointwise.h"
#include "common/simd.h"
#include "tests/gradcheck.h"
#include "tests/harness.h"

static const int LEVELS[] = {NAS_SIMD_SCALAR, NAS_SIMD_AVX2, NAS_SIMD_AVX512};

static float *alloc_f(size_t n) {
    return calloc(n ? n : 1, sizeof(float));
}

// The cells' shapes (8-40 channels on 14x14, 7x7 and 4x4 planes, 28x28 at the final size),
// channel counts off the kernels' blocks of 4 and 2, planes narrower than one vector, a 1x1
// map with bias (squeeze-excitation's convs), and batches the weight gradient's groups of images
// split (8 + 8 channels at 14x14: 15 images per group of 192 KB; 24 + 40 at 28x28: one).
typedef struct pw_case {
    int n, c, oc, h, w, bias;
} pw_case;

static const pw_case PW[] = {
    {2, 8, 8, 14, 14, 0}, {3, 16, 32, 7, 7, 0},   {2, 32, 16, 4, 4, 0},
    {2, 5, 7, 3, 5, 1},   {5, 24, 40, 28, 28, 0}, {3, 9, 3, 1, 1, 1},
    {2, 13, 6, 9, 11, 1}, {1, 1, 1, 17, 1, 0},    {20, 8, 8, 14, 14, 0},
};

typedef struct pw_ctx {
    nas_conv_shape s;
    float *inp, *w, *b, *out, *r;
} pw_ctx;

static double pw_loss(void *p) {
    pw_ctx *g = p;
    nas__pw_forward(nas_simd_best(), g->out, g->inp, g->w, g->b, &g->s);
    return nas_dot_d(g->out, g->r, (size_t)g->s.n * g->s.oc * g->s.oh * g->s.ow);
}

START_TEST(test_pw) {
    const pw_case *pc = &PW[_i];
    pw_ctx g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(
        nas_conv_shape_init(&g.s, pc->n, pc->c, pc->h, pc->w, pc->oc, 1, 1, 1, 0, 1, 1, err),
        NAS_OK);
    const nas_conv_shape *s = &g.s;
    ck_assert(nas__pw_ok(s));
    size_t n_in = (size_t)s->n * s->c * s->h * s->w, n_out = (size_t)s->n * s->oc * s->h * s->w;
    size_t n_w = (size_t)s->oc * s->c;
    nas_rng rng;
    nas_rng_init(&rng, 70 + (uint64_t)_i, 0);
    g.inp = alloc_f(n_in), g.w = alloc_f(n_w), g.b = pc->bias ? alloc_f(s->oc) : NULL;
    g.out = alloc_f(n_out), g.r = alloc_f(n_out);
    nas_fill_uniform(g.inp, n_in, -1, 1, &rng);
    nas_fill_uniform(g.w, n_w, -1, 1, &rng);
    if (g.b) nas_fill_uniform(g.b, s->oc, -1, 1, &rng);
    nas_fill_uniform(g.r, n_out, -1, 1, &rng);
    float *ref = alloc_f(n_out), *out = alloc_f(n_out), *naive = alloc_f(n_out);
    float *di0 = alloc_f(n_in), *dis0 = alloc_f(n_in), *di = alloc_f(n_in);
    float *dwn = alloc_f(n_w), *dbn = alloc_f(s->oc), *din = alloc_f(n_in);
    float *dw = alloc_f(n_w), *db = alloc_f(s->oc), *dw1 = alloc_f(n_w), *db1 = alloc_f(s->oc);
    nas__pw_forward(NAS__PW_REF, ref, g.inp, g.w, g.b, s);
    nas_conv2d_forward_naive(naive, g.inp, g.w, g.b, s);
    ck_assert(nas_allclose(ref, naive, n_out, 1e-5f, 1e-5f, "ref fwd"));
    // The input gradient's reference, added onto 0.5 and stored over garbage.
    for (size_t i = 0; i < n_in; i++)
        di0[i] = 0.5f, dis0[i] = 777.0f;
    nas__pw_backward(NAS__PW_REF, di0, 0, dw, NULL, g.r, g.inp, g.w, s);
    nas__pw_backward(NAS__PW_REF, dis0, 1, dw, NULL, g.r, g.inp, g.w, s);
    // The naive conv's gradients, added onto nonzero ones like the kernels must.
    for (size_t i = 0; i < n_in; i++)
        din[i] = 0.5f;
    for (size_t i = 0; i < n_w; i++)
        dwn[i] = -0.25f;
    nas_conv2d_backward_naive(din, dwn, dbn, g.r, g.inp, g.w, s);
    ck_assert(nas_allclose(di0, din, n_in, 1e-5f, 1e-5f, "ref dinp"));
    int ran = 0;
    for (size_t l = 0; l < NAS_ARRAY_LEN(LEVELS); l++) {
        if (LEVELS[l] > nas_simd_best()) continue;
        ran++;
        memset(out, 0xff, sizeof(float) * n_out);
        nas__pw_forward(LEVELS[l], out, g.inp, g.w, g.b, s);
        ck_assert_msg(memcmp(out, ref, sizeof(float) * n_out) == 0, "fwd isa %d", LEVELS[l]);
        for (size_t i = 0; i < n_in; i++)
            di[i] = 0.5f;
        for (size_t i = 0; i < n_w; i++)
            dw[i] = -0.25f;
        memset(db, 0, sizeof(float) * s->oc);
        nas__pw_backward(LEVELS[l], di, 0, dw, db, g.r, g.inp, g.w, s);
        ck_assert_msg(memcmp(di, di0, sizeof(float) * n_in) == 0, "dinp isa %d", LEVELS[l]);
        ck_assert(nas_allclose(dw, dwn, n_w, 1e-4f, 1e-5f, "dweight"));
        ck_assert(nas_allclose(db, dbn, s->oc, 1e-4f, 1e-5f, "dbias"));
        if (l == 0) {
            memcpy(dw1, dw, sizeof(float) * n_w), memcpy(db1, db, sizeof(float) * s->oc);
        } else {
            ck_assert_msg(memcmp(dw, dw1, sizeof(float) * n_w) == 0, "dweight isa %d", LEVELS[l]);
            ck_assert_msg(memcmp(db, db1, sizeof(float) * s->oc) == 0, "dbias isa %d", LEVELS[l]);
        }
        for (size_t i = 0; i < n_in; i++)
            di[i] = 12345.0f; /* store ignores what was there */
        nas__pw_backward(LEVELS[l], di, 1, dw, NULL, g.r, g.inp, g.w, s);
        ck_assert_msg(memcmp(di, dis0, sizeof(float) * n_in) == 0, "store isa %d", LEVELS[l]);
    }
    ck_assert_int_ge(ran, 1);
    // conv.c's dispatch runs these kernels at the best level: the same bits.
    memset(out, 0, sizeof(float) * n_out);
    nas_conv2d_forward(out, g.inp, g.w, g.b, s, NULL);
    ck_assert(memcmp(out, ref, sizeof(float) * n_out) == 0);
    for (size_t i = 0; i < n_in; i++)
        di[i] = 0.5f;
    for (size_t i = 0; i < n_w; i++)
        dw[i] = 0.0f;
    nas_conv2d_backward(di, dw, NULL, g.r, g.inp, g.w, s, NULL);
    ck_assert(memcmp(di, di0, sizeof(float) * n_in) == 0);
    // The backward against finite differences (small shapes: cost), from zeroed gradients.
    if (n_in <= 4096) {
        memset(di, 0, sizeof(float) * n_in), memset(dw, 0, sizeof(float) * n_w);
        memset(db, 0, sizeof(float) * s->oc);
        nas__pw_backward(nas_simd_best(), di, 0, dw, db, g.r, g.inp, g.w, s);
        ck_assert(nas_gradcheck(pw_loss, &g, g.inp, di, n_in, 1e-2f, 1e-3, 1e-3, 150, "dinp"));
        ck_assert(nas_gradcheck(pw_loss, &g, g.w, dw, n_w, 1e-2f, 1e-3, 1e-3, 150, "dw"));
        if (g.b) ck_assert(nas_gradcheck(pw_loss, &g, g.b, db, s->oc, 1e-2f, 1e-3, 1e-3, 50, "db"));
    }
    free(g.inp), free(g.w), free(g.b), free(g.out), free(g.r), free(ref), free(out), free(naive);
    free(di0), free(dis0), free(di), free(dwn), free(dbn), free(din), free(dw), free(db);
    free(dw1), free(db1);
}
END_TEST

// Which convs the kernels take: pointwise ones up to 64 channels, 128 on planes of 14x14 and
// more; not strided, padded, grouped or wider ones.
START_TEST(test_pw_ok) {
    char err[NAS_ERR_LEN];
    nas_conv_shape s;
    ck_assert_int_eq(nas_conv_shape_init(&s, 2, 64, 7, 7, 64, 1, 1, 1, 0, 1, 1, err), NAS_OK);
    ck_assert(nas__pw_ok(&s));
    ck_assert_int_eq(nas_conv_shape_init(&s, 2, 128, 7, 7, 128, 1, 1, 1, 0, 1, 1, err), NAS_OK);
    ck_assert(!nas__pw_ok(&s));
    ck_assert_int_eq(nas_conv_shape_init(&s, 2, 128, 14, 14, 128, 1, 1, 1, 0, 1, 1, err), NAS_OK);
    ck_assert(nas__pw_ok(&s));
    ck_assert_int_eq(nas_conv_shape_init(&s, 2, 129, 14, 14, 8, 1, 1, 1, 0, 1, 1, err), NAS_OK);
    ck_assert(!nas__pw_ok(&s));
    ck_assert_int_eq(nas_conv_shape_init(&s, 2, 16, 14, 14, 16, 1, 1, 2, 0, 1, 1, err), NAS_OK);
    ck_assert(!nas__pw_ok(&s));
    ck_assert_int_eq(nas_conv_shape_init(&s, 2, 16, 14, 14, 16, 1, 1, 1, 1, 1, 1, err), NAS_OK);
    ck_assert(!nas__pw_ok(&s));
    ck_assert_int_eq(nas_conv_shape_init(&s, 2, 16, 14, 14, 16, 1, 1, 1, 0, 1, 2, err), NAS_OK);
    ck_assert(!nas__pw_ok(&s));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("pointwise");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_pw, 0, (int)NAS_ARRAY_LEN(PW));
    tcase_add_test(tc, test_pw_ok);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
