// nas-test: label=unit timeout=300
/*
 * test_plane.c - the vectorized depthwise-conv and pooling kernels of
 * common/plane.c at every instruction set this CPU runs (scalar, AVX2,
 * AVX-512, forced through the isa argument): forwards bit-identical to the
 * reference loops, every level's backward bit-identical to the others and
 * close to the reference's (depthwise convs and pools in both layouts: along rows and with
 * planes interleaved one per lane), backward against central finite differences,
 * max-pool ties routed to the first arg-max; the depthwise conv with a ReLU fused
 * in front bit-identical to the unfused pair; the scratch in a planned (dirty) workspace
 * the same bits as allocated per call.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/conv.h"
#include "common/err.h"
#include "common/ops.h"
#include "common/plane.h"
#include "common/simd.h"
#include "tests/gradcheck.h"
#include "tests/harness.h"

// The depthwise and pool kernels at every level in both layouts (along rows, planes interleaved
// by lane): all must compute the same bits.
static const int DWV[] = {
    NAS_SIMD_SCALAR | NAS__PLANE_ROWS, NAS_SIMD_SCALAR | NAS__PLANE_LANES,
    NAS_SIMD_AVX2 | NAS__PLANE_ROWS,   NAS_SIMD_AVX2 | NAS__PLANE_LANES,
    NAS_SIMD_AVX512 | NAS__PLANE_ROWS, NAS_SIMD_AVX512 | NAS__PLANE_LANES,
};

static float *alloc_f(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

// A planned workspace of n floats as the call before would leave it: every bit set (NaNs), so a
// kernel that read scratch it did not set up would show it.
static float *dirty_ws(float *ws, size_t n) {
    memset(ws, 0xff, sizeof(float) * (n ? n : 1));
    return ws;
}

// Depthwise shapes of the NAS ops (sep 3x3/5x5/7x7 at stride 1 and 2, dil 3x3 and 5x5) at the
// search's plane sizes, planes wider than one and two AVX-512 vectors with odd heights, and
// 1xK and Kx1 kernels padded only where they reach (rows and columns padded differently), and
// kernels of 1, 2, 3, 5 and 8 taps: with 7, 9, 15, 25 and 49 taps above, every size of the last
// group of taps that the row layout's weight gradient sums in one pass over the rows (up to 9).
typedef struct dw_case {
    int n, c, h, w, kh, kw, stride, dil, bias;
} dw_case;

static const dw_case DW[] = {
    {2, 3, 14, 14, 3, 3, 1, 1, 1}, {2, 3, 14, 14, 5, 5, 1, 1, 0}, {2, 2, 14, 14, 7, 7, 1, 1, 1},
    {2, 3, 14, 14, 3, 3, 2, 1, 0}, {2, 3, 15, 13, 5, 5, 2, 1, 1}, {2, 2, 14, 14, 7, 7, 2, 1, 0},
    {2, 3, 14, 14, 3, 3, 1, 2, 1}, {2, 3, 28, 28, 5, 5, 1, 2, 0}, {1, 2, 7, 7, 3, 3, 2, 2, 1},
    {1, 2, 37, 33, 3, 3, 1, 1, 1}, {1, 2, 9, 41, 5, 5, 2, 1, 0},  {1, 1, 4, 4, 7, 7, 1, 1, 1},
    {2, 3, 14, 14, 1, 7, 1, 1, 1}, {2, 2, 14, 13, 7, 1, 2, 1, 0}, {1, 2, 9, 20, 3, 5, 1, 2, 1},
    {1, 2, 9, 19, 1, 1, 1, 1, 1},  {1, 2, 12, 30, 2, 1, 1, 1, 0}, {1, 2, 10, 19, 1, 3, 2, 1, 0},
    {1, 2, 9, 20, 1, 5, 1, 1, 1},  {1, 2, 11, 18, 2, 4, 1, 1, 0},
};

// The "same" depthwise conv of dc: each axis padded by half its dilated kernel.
static void dw_shape(nas_conv_shape *s, const dw_case *dc) {
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_conv_shape_init_hw(s, dc->n, dc->c, dc->h, dc->w, dc->c, dc->kh, dc->kw,
                                            dc->stride, (dc->kh - 1) * dc->dil / 2,
                                            (dc->kw - 1) * dc->dil / 2, dc->dil, dc->c, err),
                     NAS_OK);
}

typedef struct dw_ctx {
    nas_conv_shape s;
    int isa;
    float *inp, *w, *b, *out, *r;
} dw_ctx;

static double dw_loss(void *p) {
    dw_ctx *g = p;
    nas__dw_forward(g->isa, g->out, g->inp, g->w, g->b, &g->s, NULL);
    return nas_dot_d(g->out, g->r, (size_t)g->s.n * g->s.c * g->s.oh * g->s.ow);
}

START_TEST(test_dw) {
    const dw_case *dc = &DW[_i];
    dw_ctx g;
    dw_shape(&g.s, dc);
    const nas_conv_shape *s = &g.s;
    size_t n_in = (size_t)s->n * s->c * s->h * s->w, n_out = (size_t)s->n * s->c * s->oh * s->ow;
    size_t n_w = (size_t)s->c * s->kh * s->kw;
    nas_rng rng;
    nas_rng_init(&rng, 40 + (uint64_t)_i, 0);
    g.inp = alloc_f(n_in), g.w = alloc_f(n_w), g.b = dc->bias ? alloc_f(s->c) : NULL;
    g.out = alloc_f(n_out), g.r = alloc_f(n_out);
    nas_fill_uniform(g.inp, n_in, -1, 1, &rng);
    nas_fill_uniform(g.w, n_w, -1, 1, &rng);
    if (g.b) nas_fill_uniform(g.b, s->c, -1, 1, &rng);
    nas_fill_uniform(g.r, n_out, -1, 1, &rng);
    float *ref = alloc_f(n_out), *out = alloc_f(n_out);
    float *di0 = alloc_f(n_in), *dw0 = alloc_f(n_w), *db0 = alloc_f(s->c);
    float *di1 = alloc_f(n_in), *dw1 = alloc_f(n_w), *db1 = alloc_f(s->c);
    float *di = alloc_f(n_in), *dw = alloc_f(n_w), *db = alloc_f(s->c), *dis = alloc_f(n_in);
    nas__dw_forward(NAS__PLANE_REF, ref, g.inp, g.w, g.b, s, NULL);
    // The reference adds onto nonzero gradients like the kernels must.
    for (size_t i = 0; i < n_in; i++) di0[i] = 0.5f;
    for (size_t i = 0; i < n_w; i++) dw0[i] = -0.25f;
    nas__dw_backward(NAS__PLANE_REF, di0, 0, dw0, g.b ? db0 : NULL, g.r, g.inp, g.w, s, NULL);
    int ran = 0;
    for (size_t l = 0; l < NAS_ARRAY_LEN(DWV); l++) {
        if ((DWV[l] & ~NAS__PLANE_LAYOUT) > nas_simd_best()) continue;
        ran++;
        memset(out, 0xff, sizeof(float) * n_out);
        nas__dw_forward(DWV[l], out, g.inp, g.w, g.b, s, NULL);
        ck_assert_msg(memcmp(out, ref, sizeof(float) * n_out) == 0, "dw fwd isa %d", DWV[l]);
        for (size_t i = 0; i < n_in; i++) di[i] = 0.5f, dis[i] = 12345.0f;
        for (size_t i = 0; i < n_w; i++) dw[i] = -0.25f;
        memset(db, 0, sizeof(float) * s->c);
        nas__dw_backward(DWV[l], di, 0, dw, g.b ? db : NULL, g.r, g.inp, g.w, s, NULL);
        ck_assert(nas_allclose(di, di0, n_in, 1e-5f, 1e-5f, "dw dinp"));
        ck_assert(nas_allclose(dw, dw0, n_w, 1e-4f, 1e-5f, "dw dweight"));
        ck_assert(nas_allclose(db, db0, s->c, 1e-5f, 1e-5f, "dw dbias"));
        // store overwrites dinp (old contents ignored) with the same gradient less the 0.5.
        memset(dw, 0, sizeof(float) * n_w);
        nas__dw_backward(DWV[l], dis, 1, dw, NULL, g.r, g.inp, g.w, s, NULL);
        for (size_t i = 0; i < n_in; i++) dis[i] += 0.5f;
        ck_assert(nas_allclose(dis, di, n_in, 1e-6f, 1e-6f, "dw store"));
    }
    ck_assert_int_ge(ran, 1);
    // Every level, fresh zeroed gradients: the same bits.
    for (size_t l = 0; l < NAS_ARRAY_LEN(DWV); l++) {
        if ((DWV[l] & ~NAS__PLANE_LAYOUT) > nas_simd_best()) continue;
        memset(di, 0, sizeof(float) * n_in), memset(dw, 0, sizeof(float) * n_w);
        memset(db, 0, sizeof(float) * s->c);
        nas__dw_backward(DWV[l], di, 0, dw, db, g.r, g.inp, g.w, s, NULL);
        if (l == 0) {
            memcpy(di1, di, sizeof(float) * n_in), memcpy(dw1, dw, sizeof(float) * n_w);
            memcpy(db1, db, sizeof(float) * s->c);
            continue;
        }
        ck_assert_msg(memcmp(di, di1, sizeof(float) * n_in) == 0, "dinp isa %d", DWV[l]);
        ck_assert_msg(memcmp(dw, dw1, sizeof(float) * n_w) == 0, "dweight isa %d", DWV[l]);
        ck_assert_msg(memcmp(db, db1, sizeof(float) * s->c) == 0, "dbias isa %d", DWV[l]);
    }
    // At the best level with the scratch in a planned workspace (which nas_conv_workspace gives
    // the net for a depthwise conv): the same bits as allocated per call.
    size_t n_ws = nas__dw_workspace(s);
    if (s->c > 1) ck_assert_uint_eq(n_ws, nas_conv_workspace(s));
    float *ws = alloc_f(n_ws);
    nas__dw_forward(nas_simd_best(), out, g.inp, g.w, g.b, s, dirty_ws(ws, n_ws));
    ck_assert(memcmp(out, ref, sizeof(float) * n_out) == 0);
    memset(di, 0, sizeof(float) * n_in), memset(dw, 0, sizeof(float) * n_w);
    memset(db, 0, sizeof(float) * s->c);
    nas__dw_backward(nas_simd_best(), di, 0, dw, db, g.r, g.inp, g.w, s, dirty_ws(ws, n_ws));
    ck_assert(memcmp(di, di1, sizeof(float) * n_in) == 0);
    ck_assert(memcmp(dw, dw1, sizeof(float) * n_w) == 0);
    ck_assert(memcmp(db, db1, sizeof(float) * s->c) == 0);
    free(ws);
    // The backward (the same bits in every variant) against finite differences of the best
    // level's forward in both layouts (small planes only: cost).
    for (int lay = NAS__PLANE_ROWS; n_in <= 4096 && lay <= NAS__PLANE_LANES; lay += 0x100) {
        g.isa = nas_simd_best() | lay;
        ck_assert(nas_gradcheck(dw_loss, &g, g.inp, di1, n_in, 1e-2f, 1e-3, 1e-3, 150, "dinp"));
        ck_assert(nas_gradcheck(dw_loss, &g, g.w, dw1, n_w, 1e-2f, 1e-3, 1e-3, 150, "dw"));
    }
    free(g.inp), free(g.w), free(g.b), free(g.out), free(g.r), free(ref), free(out);
    free(di0), free(dw0), free(db0), free(di1), free(dw1), free(db1), free(di), free(dw);
    free(db), free(dis);
}
END_TEST

// A ReLU fused in front of the depthwise conv (conv.h's relu): at every level, forward and
// backward (added and stored) the same bits as the unfused pair (nas_relu_forward, the conv on
// its output, the conv's input gradient stored, nas_relu_backward), and the fused backward
// against finite differences, inputs kept 0.1 away from the ReLU's kink.
START_TEST(test_dw_relu) {
    const dw_case *dc = &DW[_i];
    dw_ctx g;
    dw_shape(&g.s, dc);
    nas_conv_shape s1 = g.s, *s = &g.s;
    s->relu = 1;
    size_t n_in = (size_t)s->n * s->c * s->h * s->w, n_out = (size_t)s->n * s->c * s->oh * s->ow;
    size_t n_w = (size_t)s->c * s->kh * s->kw;
    nas_rng rng;
    nas_rng_init(&rng, 90 + (uint64_t)_i, 0);
    g.inp = alloc_f(n_in), g.w = alloc_f(n_w), g.b = dc->bias ? alloc_f(s->c) : NULL;
    g.out = alloc_f(n_out), g.r = alloc_f(n_out);
    nas_fill_away_from_zero(g.inp, n_in, &rng);
    nas_fill_uniform(g.w, n_w, -1, 1, &rng);
    if (g.b) nas_fill_uniform(g.b, s->c, -1, 1, &rng);
    nas_fill_uniform(g.r, n_out, -1, 1, &rng);
    float *rl = alloc_f(n_in), *ref = alloc_f(n_out), *out = alloc_f(n_out);
    float *dr = alloc_f(n_in), *di0 = alloc_f(n_in), *dw0 = alloc_f(n_w), *db0 = alloc_f(s->c);
    float *di = alloc_f(n_in), *dw = alloc_f(n_w), *db = alloc_f(s->c);
    nas_relu_forward(rl, g.inp, (long)n_in);
    for (size_t l = 0; l < NAS_ARRAY_LEN(DWV); l++) {
        if ((DWV[l] & ~NAS__PLANE_LAYOUT) > nas_simd_best()) continue;
        nas__dw_forward((DWV[l] & ~NAS__PLANE_LAYOUT) | NAS__PLANE_ROWS, ref, rl, g.w, g.b, &s1,
                        NULL);
        memset(out, 0xff, sizeof(float) * n_out);
        nas__dw_forward(DWV[l], out, g.inp, g.w, g.b, s, NULL);
        ck_assert_msg(memcmp(out, ref, sizeof(float) * n_out) == 0, "fwd isa %d", DWV[l]);
        for (int store = 0; store <= 1; store++) {
            // Unfused: the conv's gradient stored into dr, then the ReLU's added into di0.
            for (size_t i = 0; i < n_in; i++) di0[i] = store ? 0.0f : 0.5f, di[i] = 0.5f;
            memset(dw0, 0, sizeof(float) * n_w), memset(db0, 0, sizeof(float) * s->c);
            memset(dw, 0, sizeof(float) * n_w), memset(db, 0, sizeof(float) * s->c);
            nas__dw_backward((DWV[l] & ~NAS__PLANE_LAYOUT) | NAS__PLANE_ROWS, dr, 1, dw0, db0, g.r,
                             rl, g.w, &s1, NULL);
            nas_relu_backward(di0, dr, rl, (long)n_in);
            nas__dw_backward(DWV[l], di, store, dw, db, g.r, g.inp, g.w, s, NULL);
            ck_assert_msg(memcmp(di, di0, sizeof(float) * n_in) == 0, "dinp isa %d store %d",
                          DWV[l], store);
            ck_assert_msg(memcmp(dw, dw0, sizeof(float) * n_w) == 0, "dweight isa %d", DWV[l]);
            ck_assert_msg(memcmp(db, db0, sizeof(float) * s->c) == 0, "dbias isa %d", DWV[l]);
        }
    }
    // The reference loops' fused pair agrees too.
    nas__dw_forward(NAS__PLANE_REF, out, g.inp, g.w, g.b, s, NULL);
    ck_assert(nas_allclose(out, ref, n_out, 1e-5f, 1e-5f, "ref fwd"));
    memset(dr, 0, sizeof(float) * n_in), memset(dw0, 0, sizeof(float) * n_w);
    nas__dw_backward(NAS__PLANE_REF, dr, 1, dw0, NULL, g.r, g.inp, g.w, s, NULL);
    ck_assert(nas_allclose(dr, di, n_in, 1e-5f, 1e-5f, "ref dinp"));
    ck_assert(nas_allclose(dw0, dw, n_w, 1e-4f, 1e-5f, "ref dweight"));
    if (n_in <= 4096) {
        g.isa = nas_simd_best() | NAS__PLANE_LANES; /* rows: test_dw */
        ck_assert(nas_gradcheck(dw_loss, &g, g.inp, di, n_in, 1e-2f, 1e-3, 1e-3, 150, "dinp"));
        ck_assert(nas_gradcheck(dw_loss, &g, g.w, dw, n_w, 1e-2f, 1e-3, 1e-3, 150, "dw"));
    }
    free(g.inp), free(g.w), free(g.b), free(g.out), free(g.r), free(rl), free(ref), free(out);
    free(dr), free(di0), free(dw0), free(db0), free(di), free(dw), free(db);
}
END_TEST

// Pools of the NAS ops (3x3 stride 1 and 2, padding 1) on search-size and odd planes, an
// unpadded 3x3/2 and a 2x2/2 (NB201's shortcut pool shapes), and a plane wider than 32.
static const int POOL[][5] = {
    /* h, w, k, stride, pad */
    {14, 14, 3, 1, 1}, {14, 14, 3, 2, 1}, {7, 7, 3, 1, 1}, {7, 7, 3, 2, 1}, {15, 13, 3, 2, 0},
    {8, 8, 2, 2, 0},   {28, 28, 3, 1, 1}, {9, 37, 3, 1, 1}, {4, 4, 3, 2, 1},
};

typedef struct pool_ctx {
    int kind, isa, n, c;
    const int *p;
    float *inp, *out, *r;
} pool_ctx;

static double pool_loss(void *v) {
    pool_ctx *g = v;
    const int *p = g->p;
    nas__pool_forward(g->isa, g->kind, g->out, g->inp, g->n, g->c, p[0], p[1], p[2], p[3], p[4],
                      NULL);
    return nas_dot_d(g->out, g->r,
                     (size_t)g->n * g->c * nas_pool_out(p[0], p[2], p[3], p[4]) *
                         nas_pool_out(p[1], p[2], p[3], p[4]));
}

START_TEST(test_pool) {
    const int *p = POOL[_i / 2];
    int ties = _i % 2, n = 2, c = 9; /* 18 planes: a full group of 16 lanes and a partial one */
    int oh = nas_pool_out(p[0], p[2], p[3], p[4]), ow = nas_pool_out(p[1], p[2], p[3], p[4]);
    size_t n_in = (size_t)n * c * p[0] * p[1], n_out = (size_t)n * c * oh * ow;
    nas_rng rng;
    nas_rng_init(&rng, 70 + (uint64_t)_i, 0);
    pool_ctx g = {.n = n, .c = c, .p = p};
    g.inp = alloc_f(n_in), g.out = alloc_f(n_out), g.r = alloc_f(n_out);
    if (ties) {
        // Small integers: maxima tie often and every gradient sum is exact, so the levels
        // must match the reference bit for bit, the first arg-max of each window included.
        // Every other zero is -0.0, which ties with +0.0: the first of the two keeps the
        // arg-max and the maximum's sign.
        for (size_t i = 0; i < n_in; i++) {
            g.inp[i] = (float)nas_rng_below(&rng, 4);
            if (g.inp[i] == 0.0f && (i & 1)) g.inp[i] = -0.0f;
        }
        for (size_t i = 0; i < n_out; i++) g.r[i] = (float)nas_rng_below(&rng, 8) - 4.0f;
    } else {
        // Distinct values 0.02 apart in scrambled order keep every maximum clear of the others
        // by more than the finite difference's step.
        for (size_t i = 0; i < n_in; i++)
            g.inp[i] = ((float)((i * 7919) % n_in) - (float)n_in / 2) * 0.02f;
        nas_fill_uniform(g.r, n_out, -1, 1, &rng);
    }
    float *ref = alloc_f(n_out), *out = alloc_f(n_out), *d0 = alloc_f(n_in), *d = alloc_f(n_in);
    float *d1 = alloc_f(n_in);
    for (int kind = NAS__POOL_MAX; kind <= NAS__POOL_AVG; kind++) {
        const float *in = kind == NAS__POOL_MAX ? g.inp : NULL;
        nas__pool_forward(NAS__PLANE_REF, kind, ref, g.inp, n, c, p[0], p[1], p[2], p[3], p[4],
                          NULL);
        for (size_t i = 0; i < n_in; i++) d0[i] = 1.0f;
        nas__pool_backward(NAS__PLANE_REF, kind, d0, 0, g.r, in, n, c, p[0], p[1], p[2], p[3], p[4],
                           NULL);
        for (size_t l = 0; l < NAS_ARRAY_LEN(DWV); l++) {
            if ((DWV[l] & ~NAS__PLANE_LAYOUT) > nas_simd_best()) continue;
            memset(out, 0xff, sizeof(float) * n_out);
            nas__pool_forward(DWV[l], kind, out, g.inp, n, c, p[0], p[1], p[2], p[3], p[4], NULL);
            ck_assert_msg(memcmp(out, ref, sizeof(float) * n_out) == 0, "pool %d fwd isa %d",
                          kind, DWV[l]);
            for (size_t i = 0; i < n_in; i++) d[i] = 1.0f;
            nas__pool_backward(DWV[l], kind, d, 0, g.r, in, n, c, p[0], p[1], p[2], p[3], p[4],
                               NULL);
            if (ties && kind == NAS__POOL_MAX)
                ck_assert_msg(memcmp(d, d0, sizeof(float) * n_in) == 0, "max ties isa %d",
                              DWV[l]);
            ck_assert(nas_allclose(d, d0, n_in, 1e-5f, 1e-5f, "pool bwd"));
            if (l == 0)
                memcpy(d1, d, sizeof(float) * n_in);
            else
                ck_assert_msg(memcmp(d, d1, sizeof(float) * n_in) == 0, "pool %d bwd isa %d",
                              kind, DWV[l]);
        }
        // The best level with the scratch in a planned workspace: the same bits.
        size_t n_ws = nas__pool_workspace(p[0], p[1], p[2], p[3], p[4]);
        float *ws = alloc_f(n_ws);
        nas__pool_forward(nas_simd_best(), kind, out, g.inp, n, c, p[0], p[1], p[2], p[3], p[4],
                          dirty_ws(ws, n_ws));
        ck_assert(memcmp(out, ref, sizeof(float) * n_out) == 0);
        for (size_t i = 0; i < n_in; i++)
            d[i] = 1.0f;
        nas__pool_backward(nas_simd_best(), kind, d, 0, g.r, in, n, c, p[0], p[1], p[2], p[3], p[4],
                           dirty_ws(ws, n_ws));
        ck_assert(memcmp(d, d1, sizeof(float) * n_in) == 0);
        free(ws);
        // Finite differences on the planes small enough for float sums to stay accurate.
        for (int lay = NAS__PLANE_ROWS; !ties && n_in <= 3600 && lay <= NAS__PLANE_LANES;
             lay += 0x100) {
            g.kind = kind, g.isa = nas_simd_best() | lay;
            for (size_t i = 0; i < n_in; i++) d[i] = 777.0f; /* store ignores what was there */
            nas__pool_backward(g.isa, kind, d, 1, g.r, in, n, c, p[0], p[1], p[2], p[3], p[4],
                               NULL);
            ck_assert(nas_gradcheck(pool_loss, &g, g.inp, d, n_in, 5e-3f, 1e-3, 1e-3, 300,
                                    "pool"));
        }
    }
    free(g.inp), free(g.out), free(g.r), free(ref), free(out), free(d0), free(d), free(d1);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("plane");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_dw, 0, (int)NAS_ARRAY_LEN(DW));
    tcase_add_loop_test(tc, test_dw_relu, 0, (int)NAS_ARRAY_LEN(DW));
    tcase_add_loop_test(tc, test_pool, 0, 2 * (int)NAS_ARRAY_LEN(POOL));
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
