/*
 * plane.c - depthwise conv and pooling kernels (see plane.h): the padded
 * plane buffers they share, the reference loops, one instantiation of
 * plane_kern.h and plane_lanes.h per instruction set, and the dispatch.
 *
 * Each input plane is first copied into a buffer with its padding around it
 * (zeros for convs and averages, -inf for maxima), its columns split by
 * phase modulo the stride, so that every tap of every output row reads one
 * contiguous run of the buffer: the inner loops have no bounds tests, and a
 * stride-2 conv loads as plainly as a stride-1 one.  The input gradient is
 * added into a buffer of the same layout and drained into dinp once per plane.
 * Planes are small (the search's are 7x7 to 32x32), so both buffers stay in L1.
 * Depthwise convs whose output rows fill at most half a vector (7x7 and 4x4 planes under
 * AVX-512) run instead on planes interleaved one per vector lane (plane_lanes.h).
 */
#include "common/plane.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/ops.h"
#include "common/simd.h"

#if NAS_SIMD_INTRIN
#include <immintrin.h>
#endif

// The padded plane layout: padded row r = iy + p, padded column pc = ix + q (p and q the row
// and column padding) stored at
// phase pc % s, row r, position pc / s: buf[((pc % s) * rows + r) * wq + pc / s].  Rows have wq
// floats, enough for the widest vector past the last output column of every tap.
//
// The backward kernels read the output gradient from a second layout: dout spread out by the
// stride (output (oy, ox) at row oy*s + p2, column ox*s + q2, zeros between) in rows2 rows of
// wq2 floats, with p2 = (KH-1)*dil - p and q2 = (KW-1)*dil - q.  The input gradient is then the
// stride-1 correlation of that plane with the flipped kernel, computed like a forward, with no
// scatter and no read-modify-write of a buffer.  It needs p2, q2 >= 0 (pad <= (K-1)*dil, true of
// every "same" conv and pool); other shapes take the reference loops.
typedef struct pgeom {
    int h, w, oh, ow, kh, kw, s, p, q, d; /* p, q: padding of rows and of columns */
    int rows, wq, owv; /* padded rows, floats per phase row, OW rounded up to 16 */
    size_t len;        /* floats of one padded plane */
    int p2, q2, rows2, wq2;
    size_t len2; /* floats of one spread gradient plane */
} pgeom;

static int round16(int x) { return (x + 15) / 16 * 16; }

static void geom_init(pgeom *g, int h, int w, int oh, int ow, int kh, int kw, int s, int p, int q,
                      int d) {
    *g = (pgeom){.h = h, .w = w, .oh = oh, .ow = ow, .kh = kh, .kw = kw, .s = s, .p = p, .q = q,
                 .d = d};
    g->rows = h + 2 * p;
    g->owv = round16(ow);
    int need = g->owv + (kw - 1) * d / s, cols = (w + 2 * q + s - 1) / s;
    g->wq = round16(need > cols ? need : cols);
    g->len = (size_t)s * g->rows * g->wq;
    g->p2 = (kh - 1) * d - p, g->q2 = (kw - 1) * d - q;
    g->rows2 = h + (kh - 1) * d;
    g->wq2 = round16(w) + round16((kw - 1) * d);
    g->len2 = (size_t)g->rows2 * g->wq2;
}

// Whether the backward kernels take g (see pgeom).
static int geom_bwd_ok(const pgeom *g) { return g->p2 >= 0 && g->q2 >= 0; }

// Offset in the input buffer of tap t = ki*KW + kj for output (0, 0), where output (oy, ox)
// adds oy*s*wq + ox; and in the spread gradient plane of tap t for input pixel (0, 0).
static void geom_offsets(const pgeom *g, int *off, int *offt) {
    for (int ki = 0; ki < g->kh; ki++)
        for (int kj = 0; kj < g->kw; kj++) {
            int pc = kj * g->d;
            off[ki * g->kw + kj] = ((pc % g->s) * g->rows + ki * g->d) * g->wq + pc / g->s;
            offt[ki * g->kw + kj] = ki * g->d * g->wq2 + kj * g->d;
        }
}

// Copy one input plane into the interior of buf; the padding and slack keep what the caller
// filled them with once per call.  A strided plane is copied phase by phase, so the inner loop
// has no division.
static void plane_fill(const pgeom *g, float *buf, const float *in) {
    for (int iy = 0; iy < g->h; iy++) {
        const float *src = in + (size_t)iy * g->w;
        float *row = buf + (size_t)(iy + g->p) * g->wq;
        if (g->s == 1) {
            memcpy(row + g->q, src, sizeof(float) * g->w);
            continue;
        }
        for (int ph = 0; ph < g->s; ph++) {
            int ix0 = ((ph - g->q) % g->s + g->s) % g->s, q = (ix0 + g->q) / g->s;
            float *dst = row + (size_t)ph * g->rows * g->wq;
            for (int ix = ix0; ix < g->w; ix += g->s) dst[q++] = src[ix];
        }
    }
}

// Spread an OH x OW plane (rows ld floats apart) into the gradient layout of pgeom, divided
// by the window counts cnt when given; the zeros between stay from the scratch's set-up.
static void gpad_spread(const pgeom *g, float *dst, const float *src, int ld, const float *cnt) {
    for (int oy = 0; oy < g->oh; oy++) {
        float *row = dst + (size_t)(oy * g->s + g->p2) * g->wq2 + g->q2;
        const float *sr = src + (size_t)oy * ld;
        if (cnt) {
            const float *cr = cnt + (size_t)oy * g->owv;
            for (int ox = 0; ox < g->ow; ox++) row[ox * g->s] = sr[ox] / cr[ox];
        } else if (g->s == 1) {
            memcpy(row, sr, sizeof(float) * g->ow);
        } else {
            for (int ox = 0; ox < g->ow; ox++) row[ox * g->s] = sr[ox];
        }
    }
}

// Sum of n floats in order: the same at every instruction set.
static float plane_sum(const float *x, int n) {
    float a = 0.0f;
    for (int i = 0; i < n; i++) a += x[i];
    return a;
}

// The divisor of an average window: its real pixels only (count_include_pad off), so border
// pixels are averages of real pixels, as DARTS' pooling ops expect.
static int window_count(int oy, int ox, int h, int w, int k, int stride, int pad) {
    int y0 = oy * stride - pad, x0 = ox * stride - pad;
    int y1 = y0 + k > h ? h : y0 + k, x1 = x0 + k > w ? w : x0 + k;
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    int cnt = (y1 - y0) * (x1 - x0);
    return cnt > 0 ? cnt : 1;
}

// The scratch of one call: the input buffer xb (padding set to the border value), the spread
// gradient gb and arg-max sb planes, the weight-gradient lanes or the arg-max rows acc, the
// divisors cnt of an average pool (OH rows of owv, slack 1), the tap offsets off and offt, the
// flipped taps wt and unit taps.
typedef struct scratch {
    float *mem, *xb, *gb, *sb, *acc, *cnt, *wt, *ones;
    int *off, *offt;
    int owned; /* mem was allocated here (no workspace given) */
} scratch;

// Zeroed scratch of n floats: the caller's workspace ws when given (planned once by the net, so
// that no call pays for malloc, page faults and the kernel's page clearing), else calloc'd.
static float *scratch_mem(float *ws, size_t n, int *owned) {
    *owned = ws == NULL;
    if (!ws) return calloc(n, sizeof(float));
    memset(ws, 0, sizeof(float) * n);
    return ws;
}

static size_t scratch_floats(const pgeom *g) {
    size_t nt = (size_t)g->kh * g->kw, owv = (size_t)g->owv, cnt = (size_t)g->oh * owv;
    size_t acc = nt * owv > cnt ? nt * owv : cnt;
    return g->len + 2 * g->len2 + acc + cnt + 2 * nt + nt + nt;
}

// Set up sc for g in ws (NULL: allocated); 0 when malloc fails (the caller then runs the
// reference loops).
static int scratch_init(scratch *sc, const pgeom *g, float border, float *ws) {
    size_t nt = (size_t)g->kh * g->kw, owv = (size_t)g->owv, cnt = (size_t)g->oh * owv;
    size_t acc = nt * owv > cnt ? nt * owv : cnt;
    sc->mem = scratch_mem(ws, scratch_floats(g), &sc->owned);
    if (!sc->mem) return 0;
    sc->xb = sc->mem, sc->gb = sc->xb + g->len, sc->sb = sc->gb + g->len2;
    sc->acc = sc->sb + g->len2, sc->cnt = sc->acc + acc, sc->wt = sc->cnt + cnt;
    sc->ones = sc->wt + nt;
    sc->off = (int *)(void *)(sc->ones + nt), sc->offt = sc->off + nt;
    for (size_t i = 0; i < g->len; i++) sc->xb[i] = border;
    geom_offsets(g, sc->off, sc->offt);
    for (size_t t = 0; t < nt; t++)
        sc->ones[t] = 1.0f;
    for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->owv; ox++)
            sc->cnt[(size_t)oy * g->owv + ox] =
                ox < g->ow ? (float)window_count(oy, ox, g->h, g->w, g->kh, g->s, g->p) : 1.0f;
    return 1;
}

// The geometry of the lane-interleaved depthwise kernels (plane_lanes.h): buffers of pixels
// of V floats, one lane per plane.  xb is the input padded by p rows and q columns (rows x
// cols pixels); gb the output gradient spread by the stride at (oy*s + p2, ox*s + q2) in rows2
// x cols2 pixels, zeros between; the input gradient is its flipped correlation, as in pgeom.
typedef struct lgeom {
    int h, w, oh, ow, kh, kw, s, p, q, d;
    int rows, cols, p2, q2, rows2, cols2;
} lgeom;

static void lgeom_set(lgeom *g, int h, int w, int oh, int ow, int kh, int kw, int s, int p, int q,
                      int d) {
    *g = (lgeom){.h = h, .w = w, .oh = oh, .ow = ow, .kh = kh, .kw = kw, .s = s, .p = p, .q = q,
                 .d = d};
    g->rows = g->h + 2 * g->p, g->cols = g->w + 2 * g->q;
    g->p2 = (g->kh - 1) * g->d - g->p, g->q2 = (g->kw - 1) * g->d - g->q;
    g->rows2 = g->h + (g->kh - 1) * g->d, g->cols2 = g->w + (g->kw - 1) * g->d;
}

static void lgeom_init(lgeom *g, const nas_conv_shape *cs) {
    lgeom_set(g, cs->h, cs->w, cs->oh, cs->ow, cs->kh, cs->kw, cs->stride, cs->pad_h, cs->pad_w,
              cs->dil);
}

// Output pixel (y, x)'s first tap in the input buffer of v-lane pixels.
static inline size_t lanes_at(const lgeom *g, int y, int x, int v) {
    return ((size_t)y * g->s * g->cols + (size_t)x * g->s) * v;
}

// The scratch of one call at v lanes: xb and gb (the gaps of the spread stay zero as set up
// and xb's padding holds border: each group of planes writes only the same interior), the
// interleaved output ob, the per-lane weights wv (nt vectors; ones for a pool) and biases or
// sums bv, the weight gradient's per-lane sums wacc (nt + 3 vectors), and the taps' offsets in
// xb (off, three spare copies of off[0] past nt: see dwl_wgrad) and in gb (offt), in floats.  A
// pool (pool set) also has the spread arg-max plane sb and each output pixel's divisor cnt.
typedef struct lscratch {
    float *mem, *xb, *gb, *ob, *wv, *bv, *wacc, *sb, *cnt;
    int *off, *offt, *ch; /* ch: the channel of each lane's plane */
    int owned;
} lscratch;

static size_t lscratch_floats(const lgeom *g, int v, int pool) {
    size_t nt = (size_t)g->kh * g->kw, nx = (size_t)g->rows * g->cols * v;
    size_t ng = (size_t)g->rows2 * g->cols2 * v, ohw = (size_t)g->oh * g->ow;
    size_t no = (ohw > (size_t)g->h * g->w ? ohw : (size_t)g->h * g->w) * v;
    size_t extra = pool ? ng + ohw : 0;
    return nx + ng + no + nt * v + v + (nt + 3) * v + 2 * nt + 3 + v + extra;
}

static int lscratch_init(lscratch *sc, const lgeom *g, int v, int pool, float border, float *ws) {
    size_t nt = (size_t)g->kh * g->kw, nx = (size_t)g->rows * g->cols * v;
    size_t ng = (size_t)g->rows2 * g->cols2 * v, ohw = (size_t)g->oh * g->ow;
    size_t no = (ohw > (size_t)g->h * g->w ? ohw : (size_t)g->h * g->w) * v;
    sc->mem = scratch_mem(ws, lscratch_floats(g, v, pool), &sc->owned);
    if (!sc->mem) return 0;
    sc->xb = sc->mem, sc->gb = sc->xb + nx, sc->ob = sc->gb + ng, sc->wv = sc->ob + no;
    sc->bv = sc->wv + nt * v, sc->wacc = sc->bv + v;
    sc->off = (int *)(void *)(sc->wacc + (nt + 3) * v), sc->offt = sc->off + nt + 3;
    sc->ch = sc->offt + nt;
    sc->sb = pool ? (float *)(void *)(sc->ch + v) : NULL, sc->cnt = pool ? sc->sb + ng : NULL;
    for (int ki = 0; ki < g->kh; ki++)
        for (int kj = 0; kj < g->kw; kj++) {
            sc->off[ki * g->kw + kj] = (ki * g->d * g->cols + kj * g->d) * v;
            sc->offt[ki * g->kw + kj] = (ki * g->d * g->cols2 + kj * g->d) * v;
        }
    for (size_t t = nt; t < nt + 3; t++) sc->off[t] = sc->off[0];
    if (!pool) return 1;
    for (size_t i = 0; i < nx; i++) sc->xb[i] = border;
    for (size_t i = 0; i < nt * v; i++) sc->wv[i] = 1.0f;
    for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++)
            sc->cnt[(size_t)oy * g->ow + ox] =
                (float)window_count(oy, ox, g->h, g->w, g->kh, g->s, g->p);
    return 1;
}

// ----------------------------------------------------------------------------
// one instantiation of plane_kern.h and plane_lanes.h per instruction set

#define KATTR
#define FN(x) x##_scalar
#define VT float
#define V 1
#define LD(p) (*(p))
#define LDN(p, n) ((void)(n), *(p))
#define ST(p, v) (*(p) = (v))
#define STN(p, v, n) ((void)(n), *(p) = (v))
#define SET1(x) (x)
#define ZERO() 0.0f
#define ADD(a, b) ((a) + (b))
#define MUL(a, b) ((a) * (b))
#define DIV(a, b) ((a) / (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MT int
#define EQ(a, b) ((a) == (b))
#define GTZ(v) ((v) > 0.0f)
#define GT(a, b)       ((a) > (b))
#define BLEND(m, a, b) ((m) ? (a) : (b))
#define MSEL(m, v)     ((m) ? (v) : 0.0f)
#define TR(r) ((void)(r))
#include "common/plane_lanes.h"
#include "common/plane_kern.h"

#if NAS_SIMD_INTRIN
// Transpose the 16 x 16 floats of r in registers: unpacks pair rows, 128-bit shuffles gather
// four rows' columns, two rounds of 128-bit block shuffles place the blocks.
__attribute__((target("avx512f"))) static inline void tr16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // r[4i + k], 128-bit block b: rows 4i..4i+3 of column 4b + k.
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int k = 0; k < 4; k++) {
        t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);
        t[4 + k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xdd);
        t[8 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
        t[12 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xdd);
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
        r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xdd);
        r[4 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0x88);
        r[12 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0xdd);
    }
}

#define KATTR __attribute__((target("avx512f")))
#define FN(x) x##_avx512
#define VT __m512
#define V 16
#define LD(p) _mm512_loadu_ps(p)
#define LDN(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), p)
#define ST(p, v) _mm512_storeu_ps(p, v)
#define STN(p, v, n) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1), v)
#define SET1(x) _mm512_set1_ps(x)
#define ZERO() _mm512_setzero_ps()
#define ADD(a, b) _mm512_add_ps(a, b)
#define MUL(a, b) _mm512_mul_ps(a, b)
#define DIV(a, b) _mm512_div_ps(a, b)
#define MAX(a, b) _mm512_max_ps(a, b)
#define MT __mmask16
#define EQ(a, b) _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define GTZ(v) _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ)
#define GT(a, b)       _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define BLEND(m, a, b) _mm512_mask_blend_ps(m, b, a)
#define MSEL(m, v)     _mm512_maskz_mov_ps(m, v)
#define TR(r) tr16(r)
#include "common/plane_lanes.h"
#include "common/plane_kern.h"

// A mask of the first n of 8 lanes, for AVX2's masked loads and stores.
__attribute__((target("avx2"))) static inline __m256i lanes8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Transpose the 8 x 8 floats of r in registers (as tr16, then one round of 128-bit halves).
__attribute__((target("avx2"))) static inline void tr8(__m256 r[8]) {
    __m256 t[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // r[4i + k], half b: rows 4i..4i+3 of column 4b + k.
    for (int i = 0; i < 2; i++) {
        r[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int k = 0; k < 4; k++) {
        t[k] = _mm256_permute2f128_ps(r[k], r[4 + k], 0x20);
        t[4 + k] = _mm256_permute2f128_ps(r[k], r[4 + k], 0x31);
    }
    for (int k = 0; k < 8; k++) r[k] = t[k];
}

#define KATTR __attribute__((target("avx2")))
#define FN(x) x##_avx2
#define VT __m256
#define V 8
#define LD(p) _mm256_loadu_ps(p)
#define LDN(p, n) _mm256_maskload_ps(p, lanes8(n))
#define ST(p, v) _mm256_storeu_ps(p, v)
#define STN(p, v, n) _mm256_maskstore_ps(p, lanes8(n), v)
#define SET1(x) _mm256_set1_ps(x)
#define ZERO() _mm256_setzero_ps()
#define ADD(a, b) _mm256_add_ps(a, b)
#define MUL(a, b) _mm256_mul_ps(a, b)
#define DIV(a, b) _mm256_div_ps(a, b)
#define MAX(a, b) _mm256_max_ps(a, b)
#define MT __m256
#define EQ(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define GTZ(v) _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ)
#define GT(a, b)       _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define BLEND(m, a, b) _mm256_blendv_ps(b, a, m)
#define MSEL(m, v)     _mm256_and_ps(m, v)
#define TR(r) tr8(r)
#include "common/plane_lanes.h"
#include "common/plane_kern.h"
#endif

// ----------------------------------------------------------------------------
// reference loops: direct, with a bounds test per tap

static void dw_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                           const nas_conv_shape *s) {
    for (long p = 0; p < (long)s->n * s->c; p++) {
        int ch = (int)(p % s->c);
        const float *in_c = inp + p * s->h * s->w, *w_c = weight + (size_t)ch * s->kh * s->kw;
        float *out_c = out + p * s->oh * s->ow;
        float bv = bias ? bias[ch] : 0.0f;
        for (int i = 0; i < s->oh * s->ow; i++) out_c[i] = bv;
        for (int ki = 0; ki < s->kh; ki++)
            for (int kj = 0; kj < s->kw; kj++) {
                float wv = w_c[ki * s->kw + kj];
                for (int oy = 0; oy < s->oh; oy++) {
                    int iy = oy * s->stride - s->pad_h + ki * s->dil;
                    if (iy < 0 || iy >= s->h) continue;
                    for (int ox = 0; ox < s->ow; ox++) {
                        int ix = ox * s->stride - s->pad_w + kj * s->dil;
                        if (ix < 0 || ix >= s->w) continue;
                        float x = in_c[iy * s->w + ix];
                        if (s->relu) x = x > 0.0f ? x : 0.0f;
                        out_c[oy * s->ow + ox] += wv * x;
                    }
                }
            }
    }
}

// With a fused ReLU the reference is the unfused pair: the conv's backward on relu(inp) into a
// scratch gradient, then the ReLU's backward into dinp.
static void dw_backward_ref(float *dinp, int store, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight,
                            const nas_conv_shape *s) {
    size_t n_in = (size_t)s->n * s->c * s->h * s->w;
    if (s->relu) {
        nas_conv_shape s1 = *s;
        s1.relu = 0;
        float *r = malloc(sizeof(float) * n_in), *dr = dinp ? calloc(n_in, sizeof(float)) : NULL;
        NAS_ASSERT(r && (dr || !dinp));
        nas_relu_forward(r, inp, (long)n_in);
        dw_backward_ref(dr, 0, dweight, dbias, dout, r, weight, &s1);
        if (dinp && store) memset(dinp, 0, sizeof(float) * n_in);
        if (dinp) nas_relu_backward(dinp, dr, r, (long)n_in);
        free(r), free(dr);
        return;
    }
    if (dinp && store) memset(dinp, 0, sizeof(float) * n_in);
    for (long p = 0; p < (long)s->n * s->c; p++) {
        int ch = (int)(p % s->c), nt = s->kh * s->kw;
        const float *in_c = inp + p * s->h * s->w, *g = dout + p * s->oh * s->ow;
        float *din_c = dinp ? dinp + p * s->h * s->w : NULL;
        if (dbias) dbias[ch] += plane_sum(g, s->oh * s->ow);
        for (int ki = 0; ki < s->kh; ki++)
            for (int kj = 0; kj < s->kw; kj++) {
                // forward was: out[oy, ox] += w[ki, kj] * inp[iy, ix]
                float wv = weight[(size_t)ch * nt + ki * s->kw + kj], dwv = 0.0f;
                for (int oy = 0; oy < s->oh; oy++) {
                    int iy = oy * s->stride - s->pad_h + ki * s->dil;
                    if (iy < 0 || iy >= s->h) continue;
                    for (int ox = 0; ox < s->ow; ox++) {
                        int ix = ox * s->stride - s->pad_w + kj * s->dil;
                        if (ix < 0 || ix >= s->w) continue;
                        float d = g[oy * s->ow + ox];
                        dwv += d * in_c[iy * s->w + ix];
                        if (din_c) din_c[iy * s->w + ix] += wv * d;
                    }
                }
                dweight[(size_t)ch * nt + ki * s->kw + kj] += dwv;
            }
    }
}

// Pool reference loops: window (oy, ox) covers the real pixels [y0, y1) x [x0, x1).
static void window_range(const pgeom *g, int oy, int ox, int *y0, int *y1, int *x0, int *x1) {
    *y0 = oy * g->s - g->p, *x0 = ox * g->s - g->q;
    *y1 = *y0 + g->kh > g->h ? g->h : *y0 + g->kh, *x1 = *x0 + g->kw > g->w ? g->w : *x0 + g->kw;
    if (*y0 < 0) *y0 = 0;
    if (*x0 < 0) *x0 = 0;
}

static void pool_forward_ref(int kind, float *out, const float *inp, long planes, const pgeom *g) {
    for (long p = 0; p < planes; p++) {
        const float *in_p = inp + p * g->h * g->w;
        float *out_p = out + p * g->oh * g->ow;
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                int y0, y1, x0, x1;
                window_range(g, oy, ox, &y0, &y1, &x0, &x1);
                float best = -INFINITY, acc = 0.0f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        float x = in_p[iy * g->w + ix];
                        acc += x;
                        if (x > best) best = x;
                    }
                out_p[oy * g->ow + ox] =
                    kind == NAS__POOL_MAX
                        ? best
                        : acc / (float)window_count(oy, ox, g->h, g->w, g->kh, g->s, g->p);
            }
    }
}

static void pool_backward_ref(int kind, float *dinp, const float *dout, const float *inp,
                              long planes, const pgeom *g) {
    for (long p = 0; p < planes; p++) {
        const float *in_p = inp ? inp + p * g->h * g->w : NULL;
        float *din_p = dinp + p * g->h * g->w;
        const float *dout_p = dout + p * g->oh * g->ow;
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                // max: the gradient goes to the first arg-max; avg: spread over the window.
                float d = dout_p[oy * g->ow + ox];
                int y0, y1, x0, x1, arg = -1;
                window_range(g, oy, ox, &y0, &y1, &x0, &x1);
                if (kind == NAS__POOL_AVG)
                    d /= (float)window_count(oy, ox, g->h, g->w, g->kh, g->s, g->p);
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        int i = iy * g->w + ix;
                        if (kind == NAS__POOL_AVG)
                            din_p[i] += d;
                        else if (arg < 0 || in_p[i] > in_p[arg])
                            arg = i;
                    }
                if (arg >= 0) din_p[arg] += d;
            }
    }
}

// ----------------------------------------------------------------------------
// dispatch

static int pick(int isa) {
    int best = nas_simd_best();
    return isa > best ? best : isa;
}

#define DISPATCH NAS_SIMD_DISPATCH

static void dw_geom(pgeom *g, const nas_conv_shape *s) {
    geom_init(g, s->h, s->w, s->oh, s->ow, s->kh, s->kw, s->stride, s->pad_h,
              s->pad_w, s->dil);
}

static int lanes_of(int isa) {
    return isa == NAS_SIMD_AVX512 ? 16 : isa == NAS_SIMD_AVX2 ? 8 : 1;
}

// Whether a depthwise conv or pool runs on interleaved lanes (plane_lanes.h) rather than along
// rows (plane_kern.h): when an output row is at most 16 pixels wide and the level has vectors.  Per
// layer at batch 128 (AVX-512, in-register transposes): lanes 1.05-2x faster at 4x4, 7x7 and
// 14x14 outputs, rows 1.3x faster at 28x28.  3x3 pools, forward + backward, 16 channels: lanes
// 1.4-4x faster at 7x7 and 14x14 outputs; at 28x28 stride 1 max 1.1x faster, average 1.2x
// slower.  Both layouts give the same bits.
// layout (NAS__PLANE_ROWS or _LANES, from the isa argument) forces one, for the tests.
static int use_lanes(int isa, int layout, const nas_conv_shape *s) {
    if (layout) return layout == NAS__PLANE_LANES;
    return lanes_of(isa) > 1 && s->ow <= 16;
}

void nas__dw_forward(int isa, float *out, const float *inp, const float *weight, const float *bias,
                     const nas_conv_shape *s, float *ws) {
    int layout = isa < 0 ? 0 : isa & NAS__PLANE_LAYOUT;
    isa = pick(isa < 0 ? isa : isa & ~NAS__PLANE_LAYOUT);
    if (isa >= 0 && use_lanes(isa, layout, s)) {
        lgeom g;
        lscratch sc;
        lgeom_init(&g, s);
        if (lscratch_init(&sc, &g, lanes_of(isa), 0, 0.0f, ws)) {
            DISPATCH(isa, dwl_fwd, &g, &sc, out, inp, weight, bias, (long)s->n * s->c, s->c,
                     s->relu);
            if (sc.owned) free(sc.mem);
            return;
        }
    }
    pgeom g;
    scratch sc;
    dw_geom(&g, s);
    if (isa < 0 || !scratch_init(&sc, &g, 0.0f, ws)) {
        dw_forward_ref(out, inp, weight, bias, s);
        return;
    }
    DISPATCH(isa, dw_fwd, &g, &sc, out, inp, weight, bias, (long)s->n * s->c, s->c, s->relu);
    if (sc.owned) free(sc.mem);
}

void nas__dw_backward(int isa, float *dinp, int store, float *dweight, float *dbias,
                      const float *dout, const float *inp, const float *weight,
                      const nas_conv_shape *s, float *ws) {
    int layout = isa < 0 ? 0 : isa & NAS__PLANE_LAYOUT;
    isa = pick(isa < 0 ? isa : isa & ~NAS__PLANE_LAYOUT);
    pgeom g;
    dw_geom(&g, s);
    if (isa >= 0 && geom_bwd_ok(&g) && use_lanes(isa, layout, s)) {
        lgeom lg;
        lscratch lsc;
        lgeom_init(&lg, s);
        if (lscratch_init(&lsc, &lg, lanes_of(isa), 0, 0.0f, ws)) {
            DISPATCH(isa, dwl_bwd, &lg, &lsc, dinp, store, dweight, dbias, dout, inp, weight,
                     (long)s->n * s->c, s->c, s->relu);
            if (lsc.owned) free(lsc.mem);
            return;
        }
    }
    scratch sc;
    if (isa < 0 || !geom_bwd_ok(&g) || !scratch_init(&sc, &g, 0.0f, ws)) {
        dw_backward_ref(dinp, store, dweight, dbias, dout, inp, weight, s);
        return;
    }
    DISPATCH(isa, dw_bwd, &g, &sc, dinp, store, dweight, dbias, dout, inp, weight,
             (long)s->n * s->c, s->c, s->relu);
    if (sc.owned) free(sc.mem);
}

static void pool_geom(pgeom *g, int h, int w, int k, int stride, int pad) {
    geom_init(g, h, w, nas_pool_out(h, k, stride, pad), nas_pool_out(w, k, stride, pad), k, k,
              stride, pad, pad, 1);
}

// Run a pool on lanes when use_lanes picks them for its output width; 0 when it did not run.
static int pool_lanes(int isa, int layout, int kind, float *dinp_or_out, int bwd, int store,
                      const float *dout, const float *inp, int n, int c, int h, int w, int k,
                      int stride, int pad, float *ws) {
    nas_conv_shape s = {.ow = nas_pool_out(w, k, stride, pad)};
    if (isa < 0 || !use_lanes(isa, layout, &s) || pad > k - 1) return 0;
    lgeom g;
    lscratch sc;
    lgeom_set(&g, h, w, nas_pool_out(h, k, stride, pad), s.ow, k, k, stride, pad, pad, 1);
    if (!lscratch_init(&sc, &g, lanes_of(isa), 1, kind == NAS__POOL_MAX ? -INFINITY : 0.0f, ws))
        return 0;
    if (bwd)
        DISPATCH(isa, pooll_bwd, kind, &g, &sc, dinp_or_out, store, dout, inp, (long)n * c);
    else
        DISPATCH(isa, pooll_fwd, kind, &g, &sc, dinp_or_out, inp, (long)n * c);
    if (sc.owned) free(sc.mem);
    return 1;
}

void nas__pool_forward(int isa, int kind, float *out, const float *inp, int n, int c, int h, int w,
                       int k, int stride, int pad, float *ws) {
    int layout = isa < 0 ? 0 : isa & NAS__PLANE_LAYOUT;
    isa = pick(isa < 0 ? isa : isa & ~NAS__PLANE_LAYOUT);
    if (pool_lanes(isa, layout, kind, out, 0, 0, NULL, inp, n, c, h, w, k, stride, pad, ws)) return;
    pgeom g;
    scratch sc;
    pool_geom(&g, h, w, k, stride, pad);
    if (isa < 0 || !scratch_init(&sc, &g, kind == NAS__POOL_MAX ? -INFINITY : 0.0f, ws)) {
        pool_forward_ref(kind, out, inp, (long)n * c, &g);
        return;
    }
    DISPATCH(isa, pool_fwd, kind, &g, &sc, out, inp, (long)n * c);
    if (sc.owned) free(sc.mem);
}

void nas__pool_backward(int isa, int kind, float *dinp, int store, const float *dout,
                        const float *inp, int n, int c, int h, int w, int k, int stride, int pad,
                        float *ws) {
    int layout = isa < 0 ? 0 : isa & NAS__PLANE_LAYOUT;
    isa = pick(isa < 0 ? isa : isa & ~NAS__PLANE_LAYOUT);
    if (pool_lanes(isa, layout, kind, dinp, 1, store, dout, inp, n, c, h, w, k, stride, pad, ws))
        return;
    pgeom g;
    scratch sc;
    pool_geom(&g, h, w, k, stride, pad);
    if (isa < 0 || !geom_bwd_ok(&g) ||
        !scratch_init(&sc, &g, kind == NAS__POOL_MAX ? -INFINITY : 0.0f, ws)) {
        if (store) memset(dinp, 0, sizeof(float) * n * c * h * w);
        pool_backward_ref(kind, dinp, dout, inp, (long)n * c, &g);
        return;
    }
    DISPATCH(isa, pool_bwd, kind, &g, &sc, dinp, store, dout, inp, (long)n * c);
    if (sc.owned) free(sc.mem);
}

// The floats of workspace the kernels above take at the best level for these shapes: the larger
// of the layouts' scratch (the row layout also serves a lanes kernel's fallback).
size_t nas__dw_workspace(const nas_conv_shape *s) {
    int isa = nas_simd_best();
    pgeom g;
    dw_geom(&g, s);
    size_t n = scratch_floats(&g);
    if (use_lanes(isa, 0, s)) {
        lgeom lg;
        lgeom_init(&lg, s);
        size_t nl = lscratch_floats(&lg, lanes_of(isa), 0);
        if (nl > n) n = nl;
    }
    return n;
}

size_t nas__pool_workspace(int h, int w, int k, int stride, int pad) {
    int isa = nas_simd_best();
    pgeom g;
    pool_geom(&g, h, w, k, stride, pad);
    size_t n = scratch_floats(&g);
    nas_conv_shape s = {.ow = g.ow};
    if (use_lanes(isa, 0, &s)) {
        lgeom lg;
        lgeom_set(&lg, h, w, g.oh, g.ow, k, k, stride, pad, pad, 1);
        size_t nl = lscratch_floats(&lg, lanes_of(isa), 1);
        if (nl > n) n = nl;
    }
    return n;
}
