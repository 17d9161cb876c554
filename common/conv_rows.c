/*
 * conv_rows.c - the kernel-row path of stride-1 (and wide stride-2)
 * convolutions: no im2col column matrix and, for stride 1, no col2im.
 *
 * Called from conv.c's dispatch (nas__conv_rows_ok); the im2col path there
 * and the naive loops are its references in tests/test_conv.c.
 */
#include <stdint.h>
#include <string.h>

#include "common/conv.h"
#include "common/conv_internal.h"
#include "common/gemm.h"

static inline void zero_rows(float *p, long n) { memset(p, 0, sizeof(float) * n); }

// For a stride-1 conv, the im2col rows of tap (ki, kj) and of tap (0, kj) differ only by a
// shift of ki*dil output rows.  So only the KW column shifts of each channel are materialised,
// each over the OH + dil*(KH-1) input rows the output reads (padding rows included), and kernel
// row ki is a GEMM whose B matrix starts ki*dil*OW floats further into that buffer:
//     out (OC, OH*OW) = sum over ki of Wr_ki (OC, C*KW) . E_ki (C*KW, OH*OW)
// with Wr the weights reordered to (OC, KH, C, KW).  That writes KW/(KH*KW) of the im2col
// matrix (a third for 3x3), and OpenBLAS runs the KH GEMMs of depth C*KW faster than the one of
// depth C*KH*KW (measured 82 -> 112 GFLOP/s at ResNet-20's 16-channel shape).  The weight
// gradient is the same KH GEMMs transposed (into a reordered scratch, added to dweight once per
// call), and the input gradient, for stride 1 a convolution of dY with the weights transposed
// in their channels and rotated by 180 degrees (padding dil*(K-1) - pad), is computed the same
// way from an expanded buffer of dY: no column matrix and no col2im scatter at all.

// One side of such a conv: input planes of c channels (h, w) read into an output (oh, ow)
// through a kh x kw kernel with stride st (1 or 2), padding (ph, pw) and dilation dil.
//
// Stride 2 works the same way once the input rows are split by parity: output row oy reads
// through kernel row ki the input row st*oy + d with d = ki*dil - ph = st*a + q (0 <= q < st),
// i.e. row oy + a of the buffer of phase q, whose row R holds input row st*R + q.  For a 3x3
// stride-2 conv that is 2*OH + 1 rows per (channel, kj) instead of im2col's 3*OH.  Every phase
// block has the same rows (R = amin ..) and ld, so kernel row ki is still one GEMM at an offset.
typedef struct rows_geom {
    int c, h, w, oh, ow, kh, kw, ph, pw, dil, st;
    int amin, rows; /* first buffer row R, and rows per (phase, channel, kj) block */
    size_t ld;      /* floats per block, a multiple of 16 */
} rows_geom;

static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

static rows_geom rows_make(int c, int h, int w, int oh, int ow, int kh, int kw, int st, int ph,
                           int pw, int dil) {
    rows_geom g = {c, h, w, oh, ow, kh, kw, ph, pw, dil, st, 0, 0, 0};
    g.amin = floor_div(-ph, st);
    g.rows = oh + floor_div((kh - 1) * dil - ph, st) - g.amin;
    g.ld = ((size_t)g.rows * ow + 15) & ~(size_t)15;
    return g;
}

// Floats of the expanded buffer of g (all phases).
static size_t rows_efloats(const rows_geom *g) { return (size_t)g->st * g->c * g->kw * g->ld; }

// Offset into the expanded buffer of kernel row ki's B matrix.
static size_t rows_offset(const rows_geom *g, int ki) {
    int d = ki * g->dil - g->ph, a = floor_div(d, g->st), q = d - g->st * a;
    return (size_t)q * g->c * g->kw * g->ld + (size_t)(a - g->amin) * g->ow;
}

// The forward geometry of s (one group), and the geometry of its input gradient as a conv of dY
// (stride 1 only: see rows_flip_ok).
static rows_geom rows_fwd(const nas_conv_shape *s) {
    return rows_make(s->c / s->groups, s->h, s->w, s->oh, s->ow, s->kh, s->kw, s->stride,
                     s->pad_h, s->pad_w, s->dil);
}

static rows_geom rows_bwd(const nas_conv_shape *s) {
    return rows_make(s->oc / s->groups, s->oh, s->ow, s->h, s->w, s->kh, s->kw, 1,
                     s->dil * (s->kh - 1) - s->pad_h, s->dil * (s->kw - 1) - s->pad_w, s->dil);
}

// Stride 1, or stride 2 with an output at least 12 wide, a kernel more than one row high, and
// at least 4 input channels per group (the GEMM depth is channels * KW: a stem with one input
// channel keeps im2col).  Narrower stride-2 outputs (7x7, 4x4) have rows of a few floats, which
// the table im2col handles better (per layer: 62 vs 72 GFLOP/s forward at 4x4).
int nas__conv_rows_ok(const nas_conv_shape *s) {
    int depthwise = s->groups == s->c && s->oc == s->c && s->groups > 1;
    return (s->stride == 1 || (s->stride == 2 && s->ow >= 12)) && s->kh > 1 && !depthwise &&
           s->c / s->groups >= 4;
}

// The input gradient as a flipped conv needs stride 1, at least 4 output channels per group,
// and a padding no larger than the dilated kernel (so that its own padding is >= 0); otherwise
// it is a GEMM into a column matrix and col2im, as on the im2col path.
static int rows_flip_ok(const nas_conv_shape *s) {
    return s->stride == 1 && s->oc / s->groups >= 4 && s->pad_h <= s->dil * (s->kh - 1) &&
           s->pad_w <= s->dil * (s->kw - 1);
}

// Floats of one reordered weight array.
static size_t rows_wsize(const nas_conv_shape *s) {
    return (size_t)s->oc * (s->c / s->groups) * s->kh * s->kw;
}

// The expanded buffer: block (q, ch, kj), ld floats, holds rows t = 0 .. rows-1 of OW floats,
// row t column ox being input pixel (st*(t + amin) + q, st*ox + kj*dil - pw), zero in padding.
static void rows_expand(float *e, const float *img, const rows_geom *g) {
    size_t plane = (size_t)g->h * g->w;
    for (int q = 0; q < g->st; q++) {
        for (int ch = 0; ch < g->c; ch++) {
            const float *src = img + ch * plane;
            for (int kj = 0; kj < g->kw; kj++) {
                float *dst = e + (((size_t)q * g->c + ch) * g->kw + kj) * g->ld;
                int ix0 = kj * g->dil - g->pw, lo, hi;
                nas__conv_valid_cols(ix0, g->st, g->w, g->ow, &lo, &hi);
                // Rows [r0, r1) read the image, the others padding.
                int r0 = 0, r1 = g->rows;
                while (r0 < r1 && g->st * (r0 + g->amin) + q < 0) r0++;
                while (r1 > r0 && g->st * (r1 - 1 + g->amin) + q >= g->h) r1--;
                if (lo >= hi) r1 = r0;
                zero_rows(dst, (long)r0 * g->ow);
                zero_rows(dst + (size_t)r1 * g->ow, (long)(g->rows - r1) * g->ow);
                if (r0 == r1) continue;
                if (g->st == 1 && g->ow == g->w) {
                    // Same width: the valid rows are one contiguous span of the image (as in
                    // im2col_ld), then the padding columns the span crossed are zeroed.
                    long j0 = (long)r0 * g->ow + lo, j1 = (long)(r1 - 1) * g->ow + hi;
                    const float *sp = src + ((long)(r0 + g->amin) * g->w + ix0 + lo);
                    float *dp = dst + j0;
                    for (long j = 0; j < j1 - j0; j++) dp[j] = sp[j];
                } else {
                    for (int r = r0; r < r1; r++) {
                        float *d = dst + (size_t)r * g->ow + lo;
                        const float *sr =
                            src + ((long)(g->st * (r + g->amin) + q) * g->w + g->st * lo + ix0);
                        if (g->st == 2) {
                            // A constant stride lets the compiler vectorise the gather.
                            for (int i = 0; i < hi - lo; i++) d[i] = sr[2 * i];
                        } else {
                            for (int i = 0; i < hi - lo; i++) d[i] = sr[i];
                        }
                    }
                }
                nas__conv_zero_pad_cols(dst, g->ow, r0, r1, lo, hi);
            }
        }
    }
}

// wr (OC, KH, C/G, KW) from weight (OC, C/G, KH, KW): the A matrices of the forward's GEMMs.
static void rows_weights_fwd(float *wr, const float *weight, const nas_conv_shape *s) {
    int g_c = s->c / s->groups;
    for (int o = 0; o < s->oc; o++)
        for (int ci = 0; ci < g_c; ci++)
            for (int ki = 0; ki < s->kh; ki++)
                for (int kj = 0; kj < s->kw; kj++)
                    wr[(((size_t)o * s->kh + ki) * g_c + ci) * s->kw + kj] =
                        weight[(((size_t)o * g_c + ci) * s->kh + ki) * s->kw + kj];
}

// wf (C, KH, OC/G, KW): wf[g*C/G + ci][ki][o][kj] = weight[g*OC/G + o][ci][KH-1-ki][KW-1-kj],
// the A matrices of the input gradient's GEMMs.
static void rows_weights_bwd(float *wf, const float *weight, const nas_conv_shape *s) {
    int g_c = s->c / s->groups, g_oc = s->oc / s->groups;
    for (int g = 0; g < s->groups; g++)
        for (int o = 0; o < g_oc; o++)
            for (int ci = 0; ci < g_c; ci++)
                for (int ki = 0; ki < s->kh; ki++)
                    for (int kj = 0; kj < s->kw; kj++)
                        wf[((((size_t)g * g_c + ci) * s->kh + ki) * g_oc + o) * s->kw + kj] =
                            weight[((((size_t)g * g_oc + o) * g_c + ci) * s->kh + s->kh - 1 - ki) *
                                       s->kw +
                                   s->kw - 1 - kj];
}

// c_out (m, OH*OW) (+)= sum over ki of a_ki . E_ki: the KH GEMMs of one image group.  a is the
// (m, KH, c, KW) reordered weight block of the group, e its expanded buffer; the first GEMM
// overwrites when accumulate is 0.
static void rows_gemms(float *c_out, int m, const float *a, const float *e, const rows_geom *g,
                       int accumulate) {
    int kc = g->c * g->kw, n = g->oh * g->ow;
    for (int ki = 0; ki < g->kh; ki++)
        nas_gemm(0, 0, m, n, kc, 1.0f, a + (size_t)ki * kc, g->kh * kc, e + rows_offset(g, ki),
                 (int)g->ld, (ki || accumulate) ? 1.0f : 0.0f, c_out, n);
}

void nas__conv_rows_forward(float *out, const float *inp, const float *weight, const float *bias,
                            const nas_conv_shape *s, float *ws) {
    rows_geom g = rows_fwd(s);
    int g_oc = s->oc / s->groups, ohw = s->oh * s->ow;
    float *wr = ws + rows_efloats(&g);
    rows_weights_fwd(wr, weight, s);
    for (int b = 0; b < s->n; b++) {
        for (int gi = 0; gi < s->groups; gi++) {
            rows_expand(ws, inp + ((size_t)b * s->c + (size_t)gi * g.c) * s->h * s->w, &g);
            rows_gemms(out + ((size_t)b * s->oc + (size_t)gi * g_oc) * ohw, g_oc,
                       wr + (size_t)gi * g_oc * s->kh * g.c * s->kw, ws, &g, 0);
        }
        if (bias) nas__conv_bias_add(out + (size_t)b * s->oc * ohw, bias, s->oc, (size_t)ohw);
    }
}

// The workspace of the rows path: the expanded buffer (shared in turn by the input's, dY's, and
// the column matrix of a non-flipped input gradient), then two reordered weight arrays.
static size_t rows_region(const nas_conv_shape *s) {
    rows_geom gf = rows_fwd(s);
    size_t e = rows_efloats(&gf), d;
    if (rows_flip_ok(s)) {
        rows_geom gb = rows_bwd(s);
        d = rows_efloats(&gb);
    } else {
        d = (size_t)(s->c / s->groups) * s->kh * s->kw * s->oh * s->ow;
    }
    return e > d ? e : d;
}

void nas__conv_rows_backward(float *dinp, int store, float *dweight, float *dbias,
                             const float *dout, const float *inp, const float *weight,
                             const nas_conv_shape *s, float *ws) {
    rows_geom gf = rows_fwd(s), gb = rows_bwd(s);
    int g_c = gf.c, g_oc = s->oc / s->groups, ohw = s->oh * s->ow, hw = s->h * s->w;
    int kc = g_c * s->kw; /* columns of one kernel row's weight-gradient block */
    int flip = dinp && rows_flip_ok(s);
    float *wf = ws + rows_region(s), *dwr = wf + rows_wsize(s);
    if (flip) rows_weights_bwd(wf, weight, s);
    memset(dwr, 0, sizeof(float) * rows_wsize(s));
    for (int b = 0; b < s->n; b++) {
        for (int gi = 0; gi < s->groups; gi++) {
            const float *dout_g = dout + ((size_t)b * s->oc + (size_t)gi * g_oc) * ohw;
            rows_expand(ws, inp + ((size_t)b * s->c + (size_t)gi * g_c) * hw, &gf);
            // forward was out_g = sum_ki Wr_ki . E_ki, so dWr_ki += dout_g . E_ki^T
            float *dwr_g = dwr + (size_t)gi * g_oc * s->kh * kc;
            for (int ki = 0; ki < s->kh; ki++)
                nas_gemm(0, 1, g_oc, kc, ohw, 1.0f, dout_g, ohw, ws + rows_offset(&gf, ki),
                         (int)gf.ld, 1.0f, dwr_g + (size_t)ki * kc, s->kh * kc);
            if (!dinp) continue;
            float *dimg = dinp + ((size_t)b * s->c + (size_t)gi * g_c) * hw;
            if (flip) {
                rows_expand(ws, dout_g, &gb);
                rows_gemms(dimg, g_c, wf + (size_t)gi * g_c * s->kh * g_oc * s->kw, ws, &gb,
                           !store);
            } else {
                // dcol = W_g^T . dout_g, then scatter-add back into the image (clobbering dcol).
                int k = g_c * s->kh * s->kw;
                nas_gemm(1, 0, k, ohw, g_oc, 1.0f, weight + (size_t)gi * g_oc * k, k, dout_g, ohw,
                         0.0f, ws, ohw);
                if (store) memset(dimg, 0, sizeof(float) * g_c * hw);
                nas__conv_col2im_add_ld(dimg, ws, (size_t)ohw, g_c, s);
            }
        }
        if (dbias) nas__conv_bias_grad(dbias, dout + (size_t)b * s->oc * ohw, s->oc, (size_t)ohw);
    }
    // dweight (OC, C/G, KH, KW) += dWr (OC, KH, C/G, KW)
    for (int o = 0; o < s->oc; o++)
        for (int ci = 0; ci < g_c; ci++)
            for (int ki = 0; ki < s->kh; ki++)
                for (int kj = 0; kj < s->kw; kj++)
                    dweight[(((size_t)o * g_c + ci) * s->kh + ki) * s->kw + kj] +=
                        dwr[(((size_t)o * s->kh + ki) * g_c + ci) * s->kw + kj];
}

// The workspace of the path: the expanded-buffer region, then two reordered weight arrays.
size_t nas__conv_rows_workspace(const nas_conv_shape *s) {
    return rows_region(s) + 2 * rows_wsize(s);
}
