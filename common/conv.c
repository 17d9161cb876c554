/*
 * conv.c - convolution: im2col + GEMM, direct depthwise, naive references.
 *
 * Index conventions used throughout: input pixel (iy, ix) feeding output
 * pixel (oy, ox) through kernel tap (ki, kj) is
 *     iy = oy*stride - pad + ki*dil,   ix = ox*stride - pad + kj*dil
 * and taps falling outside the image read zero (padding).
 */
#include "common/conv.h"

#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "common/gemm.h"

// x86-64 GCC builds may call AVX2 gathers in functions compiled for AVX2 alone, chosen at run
// time; NAS_NO_CLONES (common/simd.h) turns that off as it does the clones.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NAS_NO_CLONES)
#define NAS_GATHER_AVX2 1
#include <immintrin.h>
#else
#define NAS_GATHER_AVX2 0
#endif

// Every conv in nasd, from builders and tests alike, passes through this check, so an
// impossible geometry is a clear NAS_EINVAL before any memory is sized from it.
int nas_conv_shape_init(nas_conv_shape *s, int n, int c, int h, int w, int oc, int kh, int kw,
                        int stride, int pad, int dil, int groups, char *err) {
    if (n < 1 || c < 1 || h < 1 || w < 1 || oc < 1 || kh < 1 || kw < 1 || stride < 1 || pad < 0 ||
        dil < 1 || groups < 1)
        return nas_set_err(err, NAS_EINVAL,
                           "conv: sizes must be positive (n=%d c=%d h=%d w=%d oc=%d k=%dx%d "
                           "stride=%d pad=%d dilation=%d groups=%d)",
                           n, c, h, w, oc, kh, kw, stride, pad, dil, groups);
    if (c % groups != 0 || oc % groups != 0)
        return nas_set_err(err, NAS_EINVAL, "conv: groups=%d does not divide channels %d -> %d",
                           groups, c, oc);
    int eff_h = dil * (kh - 1) + 1, eff_w = dil * (kw - 1) + 1;
    if (h + 2 * pad < eff_h || w + 2 * pad < eff_w)
        return nas_set_err(err, NAS_EINVAL,
                           "conv: dilated kernel %dx%d does not fit the padded input %dx%d", eff_h,
                           eff_w, h + 2 * pad, w + 2 * pad);
    *s = (nas_conv_shape){.n = n, .c = c, .h = h, .w = w, .oc = oc, .kh = kh, .kw = kw,
                          .stride = stride, .pad = pad, .dil = dil, .groups = groups};
    s->oh = (h + 2 * pad - eff_h) / stride + 1;
    s->ow = (w + 2 * pad - eff_w) / stride + 1;
    return NAS_OK;
}

// A 1x1, stride-1, unpadded conv reads the image itself as its column matrix.
static int is_pointwise(const nas_conv_shape *s) {
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

static int is_depthwise(const nas_conv_shape *s) {
    return s->groups == s->c && s->oc == s->c && s->groups > 1;
}

// ----------------------------------------------------------------------------
// im2col / col2im

// Output columns [*lo, *hi) whose input column ox*stride + ix0 lies inside [0, w); the
// rest read padding.  Depends only on the kernel column, so it is hoisted out of the rows.
static void valid_cols(int ix0, int stride, int w, int ow, int *lo, int *hi) {
    int l = ix0 < 0 ? (-ix0 + stride - 1) / stride : 0;
    int h = w - ix0 <= 0 ? 0 : (w - ix0 + stride - 1) / stride;
    if (h > ow) h = ow;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

// A stride-1 conv whose output is as wide as its input ("same" width) maps output index
// j = oy*OW + ox of tap (ki, kj) to input index j + (iy0*W + ix0) for every valid pixel, so the
// valid part of a whole tap row is one contiguous span of the image: it is copied (or added
// back) in one long vectorised loop instead of OH short ones, and the few padding columns that
// the span crosses are fixed afterwards.
static int span_ok(const nas_conv_shape *s) { return s->stride == 1 && s->ow == s->w; }

static inline void zero_floats(float *p, long n) { memset(p, 0, sizeof(float) * n); }

// Zero columns [0, lo) and [hi, ow) of rows [ylo, yhi) of a tap row.  Walked column by column
// (a strided loop) because a per-row loop of one or two floats is turned into a memset call per
// row by the compiler, which made memset 8% of a ResNet-20 step.
static void zero_pad_cols(float *row, int ow, int ylo, int yhi, int lo, int hi) {
    for (int ox = 0; ox < ow; ox++) {
        if (ox == lo) ox = hi;
        if (ox >= ow) break;
        for (int oy = ylo; oy < yhi; oy++) row[(size_t)oy * ow + ox] = 0.0f;
    }
}

// Zero everything of a tap row outside rows [ylo, yhi) x columns [lo, hi), column by column
// for the same reason: the padding rows of small strided layers are a few floats each, and two
// memset calls per tap and channel were 5% of a small14 step.
static void zero_outside(float *row, int ow, int oh, int ylo, int yhi, int lo, int hi) {
    for (int ox = 0; ox < ow; ox++) {
        float *colp = row + ox;
        if (ox >= lo && ox < hi) {
            for (int oy = 0; oy < ylo; oy++) colp[(size_t)oy * ow] = 0.0f;
            for (int oy = yhi; oy < oh; oy++) colp[(size_t)oy * ow] = 0.0f;
        } else {
            for (int oy = 0; oy < oh; oy++) colp[(size_t)oy * ow] = 0.0f;
        }
    }
}

// im2col with a row stride: row r of col starts at col + r*ldc (ldc >= OH*OW), so a caller can
// lay the columns of one image into a wider matrix.  Taps are the outer loops and channels the
// inner one: the valid ranges of a tap (two integer divisions each) are then computed KH*KW
// times per image instead of C*KH*KW times, which mattered for small strided layers.
static void im2col_ld(float *col, size_t ldc, const float *img, int c, const nas_conv_shape *s) {
    int ow = s->ow, ohw = s->oh * s->ow, span = span_ok(s);
    size_t plane = (size_t)s->h * s->w, tap_rows = (size_t)s->kh * s->kw * ldc;
    for (int ki = 0; ki < s->kh; ki++) {
        int iy0 = ki * s->dil - s->pad, ylo, yhi;
        valid_cols(iy0, s->stride, s->h, s->oh, &ylo, &yhi);
        for (int kj = 0; kj < s->kw; kj++) {
            int ix0 = kj * s->dil - s->pad, lo, hi;
            valid_cols(ix0, s->stride, s->w, s->ow, &lo, &hi);
            float *row0 = col + (size_t)(ki * s->kw + kj) * ldc;
            for (int ch = 0; ch < c; ch++) {
                float *row = row0 + ch * tap_rows;
                const float *img_c = img + ch * plane;
                if (ylo >= yhi || lo >= hi) {
                    zero_floats(row, ohw);
                    continue;
                }
                if (span) {
                    long j0 = (long)ylo * ow + lo, j1 = (long)(yhi - 1) * ow + hi;
                    const float *src = img_c + ((long)iy0 * s->w + ix0 + j0);
                    float *dst = row + j0;
                    for (long j = 0; j < j1 - j0; j++) dst[j] = src[j];
                } else {
                    for (int oy = ylo; oy < yhi; oy++) {
                        float *dst = row + (size_t)oy * ow;
                        const float *src = img_c + (size_t)(oy * s->stride + iy0) * s->w + ix0;
                        if (s->stride == 2) {
                            // A constant stride lets the compiler vectorise the gather.
                            for (int ox = lo; ox < hi; ox++) dst[ox] = src[2 * ox];
                        } else {
                            for (int ox = lo; ox < hi; ox++) dst[ox] = src[ox * s->stride];
                        }
                    }
                }
                // Padding rows, and padding columns of the valid rows (the span also wrote
                // across those).
                zero_outside(row, ow, s->oh, ylo, yhi, lo, hi);
            }
        }
    }
}

// Row r = (ch*KH + ki)*KW + kj of col holds, for every output pixel, the input value tap
// (ki, kj) of channel ch reads; the GEMM with the (OC, C*KH*KW) weight matrix is then the conv.
void nas_im2col(float *col, const float *img, int c, const nas_conv_shape *s) {
    im2col_ld(col, (size_t)s->oh * s->ow, img, c, s);
}

// The adjoint of im2col_ld: every column entry is added back to the input pixel it was copied
// from.  It clobbers col: on the span path the entries of padding taps are zeroed first so the
// one long add over the span drops them.  Loop order as in im2col_ld.
static void col2im_add_ld(float *img, float *col, size_t ldc, int c, const nas_conv_shape *s) {
    int ow = s->ow, span = span_ok(s);
    size_t plane = (size_t)s->h * s->w, tap_rows = (size_t)s->kh * s->kw * ldc;
    for (int ki = 0; ki < s->kh; ki++) {
        int iy0 = ki * s->dil - s->pad, ylo, yhi;
        valid_cols(iy0, s->stride, s->h, s->oh, &ylo, &yhi);
        for (int kj = 0; kj < s->kw; kj++) {
            int ix0 = kj * s->dil - s->pad, lo, hi;
            valid_cols(ix0, s->stride, s->w, s->ow, &lo, &hi);
            if (ylo >= yhi || lo >= hi) continue;
            float *row0 = col + (size_t)(ki * s->kw + kj) * ldc;
            for (int ch = 0; ch < c; ch++) {
                float *row = row0 + ch * tap_rows;
                float *img_c = img + ch * plane;
                if (span) {
                    zero_pad_cols(row, ow, ylo, yhi, lo, hi);
                    long j0 = (long)ylo * ow + lo, j1 = (long)(yhi - 1) * ow + hi;
                    float *dst = img_c + ((long)iy0 * s->w + ix0 + j0);
                    const float *src = row + j0;
                    for (long j = 0; j < j1 - j0; j++) dst[j] += src[j];
                    continue;
                }
                for (int oy = ylo; oy < yhi; oy++) {
                    const float *src = row + (size_t)oy * ow;
                    float *dst = img_c + (size_t)(oy * s->stride + iy0) * s->w + ix0;
                    // The adjoint of the copy above: padding taps are dropped.
                    if (s->stride == 2) {
                        for (int ox = lo; ox < hi; ox++) dst[2 * ox] += src[ox];
                    } else {
                        for (int ox = lo; ox < hi; ox++) dst[ox * s->stride] += src[ox];
                    }
                }
            }
        }
    }
}

// A strided conv with a narrow output (OW < 12: the 7x7 and 4x4 planes of small14 and of
// ResNet-20's last stage) has rows of only a few floats: the loops above spend more on bounds
// and padding than on copying.  There, one table per conv call maps each (tap, output pixel)
// to the input offset it reads, and im2col of a channel is one flat gather over KH*KW*OH*OW
// entries.  It copies the same values, so results are bit-identical.  Measured per layer
// (bench/train_vs_torch/layers.c): forward +15-20% at 4x4 and 7x7 outputs, but -10% at 14x14,
// where the row loops vectorise; a flat scatter-add for col2im was slower at every size, so
// col2im keeps its loops.
static int table_ok(const nas_conv_shape *s) { return !span_ok(s) && s->ow < 12; }

// Entries of the table of s: KH*KW*OH*OW.
static size_t tab_len(const nas_conv_shape *s) { return (size_t)s->kh * s->kw * s->oh * s->ow; }

// Floats of workspace the table takes: the offsets, the padding count and the padding list.
static size_t tab_floats(const nas_conv_shape *s) { return 2 * tab_len(s) + 1; }

// The table of s in g: g[(ki*KW + kj)*OH*OW + oy*OW + ox] = iy*W + ix, the input offset that
// output pixel (oy, ox) reads through tap (ki, kj), with padding entries reading offset 0;
// then g[len] = the number of padding entries and their positions.  im2col gathers
// unconditionally, without a branch per entry, and then zeroes the padding positions.
static void tab_build(int32_t *g, const nas_conv_shape *s) {
    size_t len = tab_len(s), j = 0;
    int32_t *pad = g + len + 1, npad = 0;
    for (int ki = 0; ki < s->kh; ki++)
        for (int kj = 0; kj < s->kw; kj++)
            for (int oy = 0; oy < s->oh; oy++) {
                int iy = oy * s->stride - s->pad + ki * s->dil;
                for (int ox = 0; ox < s->ow; ox++, j++) {
                    int ix = ox * s->stride - s->pad + kj * s->dil;
                    int inside = iy >= 0 && iy < s->h && ix >= 0 && ix < s->w;
                    g[j] = inside ? iy * s->w + ix : 0;
                    if (!inside) pad[npad++] = (int32_t)j;
                }
            }
    g[len] = npad;
}

// dst[j] = src[g[j]] for j < len: the plain loop, and an AVX2 one with hardware gathers (GCC
// does not emit gathers itself under its generic tuning).  Measured alone on a 7x7-output
// table: 0.56 ns per float plain, 0.38 with gathers.  Both copy the same floats.
static void gather_plain(float *dst, const float *src, const int32_t *g, size_t len) {
    for (size_t j = 0; j < len; j++) dst[j] = src[g[j]];
}

#if NAS_GATHER_AVX2
__attribute__((target("avx2"))) static void gather_avx2(float *dst, const float *src,
                                                        const int32_t *g, size_t len) {
    size_t j = 0;
    for (; j + 8 <= len; j += 8) {
        __m256i idx = _mm256_loadu_si256((const __m256i *)(const void *)(g + j));
        _mm256_storeu_ps(dst + j, _mm256_i32gather_ps(src, idx, 4));
    }
    for (; j < len; j++) dst[j] = src[g[j]];
}
#endif

static void gather(float *dst, const float *src, const int32_t *g, size_t len, int avx2) {
#if NAS_GATHER_AVX2
    if (avx2) {
        gather_avx2(dst, src, g, len);
        return;
    }
#endif
    (void)avx2;
    gather_plain(dst, src, g, len);
}

// im2col of c channels through the gather table; a channel's KH*KW rows are contiguous in col,
// so each channel is one gather over the table.
static void im2col_tab(float *col, const float *img, int c, const nas_conv_shape *s,
                       const int32_t *g) {
    size_t plane = (size_t)s->h * s->w, len = tab_len(s);
    const int32_t *pad = g + len + 1;
    int32_t npad = g[len];
    int avx2 = 0;
#if NAS_GATHER_AVX2
    avx2 = __builtin_cpu_supports("avx2");
#endif
    for (int ch = 0; ch < c; ch++) {
        float *dst = col + ch * len;
        gather(dst, img + ch * plane, g, len, avx2);
        for (int32_t p = 0; p < npad; p++) dst[pad[p]] = 0.0f;
    }
}

// Exactly the transpose of nas_im2col.  This public form must leave col intact, so it adds
// row by row instead of taking the clobbering span path the conv backward uses.
void nas_col2im_add(float *img, const float *col, int c, const nas_conv_shape *s) {
    int ohw = s->oh * s->ow;
    for (int ch = 0; ch < c; ch++) {
        float *img_c = img + (size_t)ch * s->h * s->w;
        for (int ki = 0; ki < s->kh; ki++) {
            int iy0 = ki * s->dil - s->pad, ylo, yhi;
            valid_cols(iy0, s->stride, s->h, s->oh, &ylo, &yhi);
            for (int kj = 0; kj < s->kw; kj++) {
                const float *row = col + ((size_t)(ch * s->kh + ki) * s->kw + kj) * ohw;
                int ix0 = kj * s->dil - s->pad, lo, hi;
                valid_cols(ix0, s->stride, s->w, s->ow, &lo, &hi);
                for (int oy = ylo; oy < yhi; oy++) {
                    const float *src = row + (size_t)oy * s->ow;
                    float *dst = img_c + (size_t)(oy * s->stride + iy0) * s->w + ix0;
                    for (int ox = lo; ox < hi; ox++) dst[ox * s->stride] += src[ox];
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------
// depthwise: one filter per channel, direct loops

// Depthwise convs have one input channel per filter, so im2col + GEMM would multiply a 1 x K
// by K x HW matrix per channel: all overhead.  The direct loop walks each tap across rows.
static void dw_forward(float *out, const float *inp, const float *weight, const float *bias,
                       const nas_conv_shape *s) {
    // out (N,C,OH,OW), inp (N,C,H,W), weight (C,1,KH,KW)
    for (int b = 0; b < s->n; b++) {
        for (int ch = 0; ch < s->c; ch++) {
            const float *in_c = inp + ((size_t)b * s->c + ch) * s->h * s->w;
            const float *w_c = weight + (size_t)ch * s->kh * s->kw;
            float *out_c = out + ((size_t)b * s->c + ch) * s->oh * s->ow;
            float bv = bias ? bias[ch] : 0.0f;
            for (int i = 0; i < s->oh * s->ow; i++) out_c[i] = bv;
            for (int ki = 0; ki < s->kh; ki++) {
                for (int kj = 0; kj < s->kw; kj++) {
                    float wv = w_c[ki * s->kw + kj];
                    for (int oy = 0; oy < s->oh; oy++) {
                        int iy = oy * s->stride - s->pad + ki * s->dil;
                        if (iy < 0 || iy >= s->h) continue;
                        const float *src = in_c + (size_t)iy * s->w;
                        float *dst = out_c + oy * s->ow;
                        int ix0 = kj * s->dil - s->pad;
                        for (int ox = 0; ox < s->ow; ox++) {
                            int ix = ox * s->stride + ix0;
                            if (ix >= 0 && ix < s->w) dst[ox] += wv * src[ix];
                        }
                    }
                }
            }
        }
    }
}

static void dw_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const nas_conv_shape *s) {
    // forward was: out[b,c,oy,ox] += w[c,ki,kj] * inp[b,c,iy,ix]
    for (int b = 0; b < s->n; b++) {
        for (int ch = 0; ch < s->c; ch++) {
            const float *in_c = inp + ((size_t)b * s->c + ch) * s->h * s->w;
            float *din_c = dinp ? dinp + ((size_t)b * s->c + ch) * s->h * s->w : NULL;
            const float *w_c = weight + (size_t)ch * s->kh * s->kw;
            float *dw_c = dweight + (size_t)ch * s->kh * s->kw;
            const float *dout_c = dout + ((size_t)b * s->c + ch) * s->oh * s->ow;
            if (dbias) {
                float acc = 0.0f;
                for (int i = 0; i < s->oh * s->ow; i++) acc += dout_c[i];
                dbias[ch] += acc;
            }
            for (int ki = 0; ki < s->kh; ki++) {
                for (int kj = 0; kj < s->kw; kj++) {
                    float wv = w_c[ki * s->kw + kj];
                    float dwv = 0.0f;
                    for (int oy = 0; oy < s->oh; oy++) {
                        int iy = oy * s->stride - s->pad + ki * s->dil;
                        if (iy < 0 || iy >= s->h) continue;
                        const float *src = in_c + (size_t)iy * s->w;
                        const float *g = dout_c + oy * s->ow;
                        int ix0 = kj * s->dil - s->pad;
                        for (int ox = 0; ox < s->ow; ox++) {
                            int ix = ox * s->stride + ix0;
                            if (ix < 0 || ix >= s->w) continue;
                            dwv += g[ox] * src[ix];
                            if (din_c) din_c[(size_t)iy * s->w + ix] += wv * g[ox];
                        }
                    }
                    dw_c[ki * s->kw + kj] += dwv;
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------
// stride-1 convs: kernel rows as offsets into one expanded buffer

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
    return rows_make(s->c / s->groups, s->h, s->w, s->oh, s->ow, s->kh, s->kw, s->stride, s->pad,
                     s->pad, s->dil);
}

static rows_geom rows_bwd(const nas_conv_shape *s) {
    return rows_make(s->oc / s->groups, s->oh, s->ow, s->h, s->w, s->kh, s->kw, 1,
                     s->dil * (s->kh - 1) - s->pad, s->dil * (s->kw - 1) - s->pad, s->dil);
}

// Stride 1, or stride 2 with an output at least 12 wide, a kernel more than one row high, and
// at least 4 input channels per group (the GEMM depth is channels * KW: a stem with one input
// channel keeps im2col).  Narrower stride-2 outputs (7x7, 4x4) have rows of a few floats, which
// the table im2col handles better (per layer: 62 vs 72 GFLOP/s forward at 4x4).
static int rows_ok(const nas_conv_shape *s) {
    return (s->stride == 1 || (s->stride == 2 && s->ow >= 12)) && s->kh > 1 &&
           !is_depthwise(s) && s->c / s->groups >= 4;
}

// The input gradient as a flipped conv needs stride 1, at least 4 output channels per group,
// and a padding no larger than the dilated kernel (so that its own padding is >= 0); otherwise
// it is a GEMM into a column matrix and col2im, as on the im2col path.
static int rows_flip_ok(const nas_conv_shape *s) {
    return s->stride == 1 && s->oc / s->groups >= 4 && s->pad <= s->dil * (s->kh - 1) &&
           s->pad <= s->dil * (s->kw - 1);
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
                valid_cols(ix0, g->st, g->w, g->ow, &lo, &hi);
                // Rows [r0, r1) read the image, the others padding.
                int r0 = 0, r1 = g->rows;
                while (r0 < r1 && g->st * (r0 + g->amin) + q < 0) r0++;
                while (r1 > r0 && g->st * (r1 - 1 + g->amin) + q >= g->h) r1--;
                if (lo >= hi) r1 = r0;
                zero_floats(dst, (long)r0 * g->ow);
                zero_floats(dst + (size_t)r1 * g->ow, (long)(g->rows - r1) * g->ow);
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
                zero_pad_cols(dst, g->ow, r0, r1, lo, hi);
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

static void rows_forward(float *out, const float *inp, const float *weight, const float *bias,
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
        if (bias) {
            for (int o = 0; o < s->oc; o++) {
                float *row = out + ((size_t)b * s->oc + o) * ohw;
                for (int i = 0; i < ohw; i++) row[i] += bias[o];
            }
        }
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

static void rows_backward(float *dinp, int store, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, const nas_conv_shape *s,
                          float *ws) {
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
                col2im_add_ld(dimg, ws, (size_t)ohw, g_c, s);
            }
        }
        if (dbias) {
            for (int o = 0; o < s->oc; o++) {
                const float *row = dout + ((size_t)b * s->oc + o) * ohw;
                float acc = 0.0f;
                for (int i = 0; i < ohw; i++) acc += row[i];
                dbias[o] += acc;
            }
        }
    }
    // dweight (OC, C/G, KH, KW) += dWr (OC, KH, C/G, KW)
    for (int o = 0; o < s->oc; o++)
        for (int ci = 0; ci < g_c; ci++)
            for (int ki = 0; ki < s->kh; ki++)
                for (int kj = 0; kj < s->kw; kj++)
                    dweight[(((size_t)o * g_c + ci) * s->kh + ki) * s->kw + kj] +=
                        dwr[(((size_t)o * s->kh + ki) * g_c + ci) * s->kw + kj];
}

// ----------------------------------------------------------------------------
// general conv: per image, per group GEMM

// One image-group's column matrix: the GEMMs run per image, so the scratch does not grow with
// the batch and stays near L2 size for the layers of these networks.  (Several images side by
// side in one wider GEMM for 7x7 and 14x14 planes was tried and measured no faster: the
// gather/scatter copies ate what OpenBLAS gained; see docs/PERFORMANCE.md.)
size_t nas_conv_workspace(const nas_conv_shape *s) {
    if (is_pointwise(s) || is_depthwise(s)) return 0;
    if (rows_ok(s)) return rows_region(s) + 2 * rows_wsize(s);
    size_t col = (size_t)(s->c / s->groups) * s->kh * s->kw * s->oh * s->ow;
    return table_ok(s) ? col + tab_floats(s) : col; /* the table after the columns */
}

// The offset table of a conv that uses one (NULL otherwise), built in ws after the
// column matrix once per call, for all the images of the call.
static const int32_t *conv_table(const nas_conv_shape *s, float *ws) {
    if (!table_ok(s)) return NULL;
    int32_t *tab = (int32_t *)(ws + (size_t)(s->c / s->groups) * s->kh * s->kw * s->oh * s->ow);
    tab_build(tab, s);
    return tab;
}

// im2col of one image group, through the table when the conv has one.
static void conv_im2col(float *col, const float *img, int c, const nas_conv_shape *s,
                        const int32_t *tab) {
    if (tab)
        im2col_tab(col, img, c, s, tab);
    else
        im2col_ld(col, (size_t)s->oh * s->ow, img, c, s);
}

// Dispatch: depthwise to the direct loop, everything else per image and per group through
// one GEMM, with pointwise convs reading the image itself as the column matrix.
void nas_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const nas_conv_shape *s, float *ws) {
    if (is_depthwise(s)) {
        dw_forward(out, inp, weight, bias, s);
        return;
    }
    if (rows_ok(s)) {
        rows_forward(out, inp, weight, bias, s, ws);
        return;
    }
    int g_c = s->c / s->groups, g_oc = s->oc / s->groups;
    int k = g_c * s->kh * s->kw, ohw = s->oh * s->ow, pw = is_pointwise(s);
    const int32_t *tab = pw ? NULL : conv_table(s, ws);
    for (int b = 0; b < s->n; b++) {
        for (int g = 0; g < s->groups; g++) {
            const float *img = inp + ((size_t)b * s->c + (size_t)g * g_c) * s->h * s->w;
            const float *col = img;
            if (!pw) {
                conv_im2col(ws, img, g_c, s, tab);
                col = ws;
            }
            // out_g (OCg, OHW) = W_g (OCg, K) . col (K, OHW)
            float *out_g = out + ((size_t)b * s->oc + (size_t)g * g_oc) * ohw;
            nas_gemm(0, 0, g_oc, ohw, k, 1.0f, weight + (size_t)g * g_oc * k, k, col, ohw, 0.0f,
                     out_g, ohw);
        }
        if (bias) {
            for (int o = 0; o < s->oc; o++) {
                float *row = out + ((size_t)b * s->oc + o) * ohw;
                for (int i = 0; i < ohw; i++) row[i] += bias[o];
            }
        }
    }
}

// Backward recomputes im2col instead of keeping the forward's columns: storing them for a
// whole batch would cost more memory than every activation of the net together.  With store,
// each image's dinp is zeroed just before its own col2im (or written by the GEMM with beta 0),
// while it is about to be in cache anyway, instead of in a separate pass over the whole batch.
static void conv_backward(float *dinp, int store, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, const nas_conv_shape *s,
                          float *ws) {
    if (is_depthwise(s)) {
        if (dinp && store) memset(dinp, 0, sizeof(float) * s->n * s->c * s->h * s->w);
        dw_backward(dinp, dweight, dbias, dout, inp, weight, s);
        return;
    }
    if (rows_ok(s)) {
        rows_backward(dinp, store, dweight, dbias, dout, inp, weight, s, ws);
        return;
    }
    int g_c = s->c / s->groups, g_oc = s->oc / s->groups;
    int k = g_c * s->kh * s->kw, ohw = s->oh * s->ow;
    int pw = is_pointwise(s);
    const int32_t *tab = pw ? NULL : conv_table(s, ws);
    for (int b = 0; b < s->n; b++) {
        for (int g = 0; g < s->groups; g++) {
            const float *img = inp + ((size_t)b * s->c + (size_t)g * g_c) * s->h * s->w;
            const float *dout_g = dout + ((size_t)b * s->oc + (size_t)g * g_oc) * ohw;
            const float *w_g = weight + (size_t)g * g_oc * k;
            const float *col = img;
            if (!pw) {
                conv_im2col(ws, img, g_c, s, tab);
                col = ws;
            }
            // forward was out_g = W_g . col, so dW_g += dout_g . col^T
            nas_gemm(0, 1, g_oc, k, ohw, 1.0f, dout_g, ohw, col, ohw, 1.0f,
                     dweight + (size_t)g * g_oc * k, k);
            if (!dinp) continue;
            float *dimg = dinp + ((size_t)b * s->c + (size_t)g * g_c) * s->h * s->w;
            if (pw) {
                // dcol is dinp itself: dinp_g += W_g^T . dout_g
                nas_gemm(1, 0, k, ohw, g_oc, 1.0f, w_g, k, dout_g, ohw, store ? 0.0f : 1.0f, dimg,
                         ohw);
            } else {
                // dcol = W_g^T . dout_g, then scatter-add back into the image (clobbering dcol).
                nas_gemm(1, 0, k, ohw, g_oc, 1.0f, w_g, k, dout_g, ohw, 0.0f, ws, ohw);
                if (store) memset(dimg, 0, sizeof(float) * g_c * s->h * s->w);
                col2im_add_ld(dimg, ws, (size_t)ohw, g_c, s);
            }
        }
        if (dbias) {
            for (int o = 0; o < s->oc; o++) {
                const float *row = dout + ((size_t)b * s->oc + o) * ohw;
                float acc = 0.0f;
                for (int i = 0; i < ohw; i++) acc += row[i];
                dbias[o] += acc;
            }
        }
    }
}

void nas_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, const nas_conv_shape *s, float *ws) {
    conv_backward(dinp, 0, dweight, dbias, dout, inp, weight, s, ws);
}

void nas_conv2d_backward_store(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const nas_conv_shape *s,
                               float *ws) {
    conv_backward(dinp, 1, dweight, dbias, dout, inp, weight, s, ws);
}

// ----------------------------------------------------------------------------
// naive references: direct 7-deep loops, double accumulation

void nas_conv2d_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                              const nas_conv_shape *s) {
    int g_c = s->c / s->groups, g_oc = s->oc / s->groups;
    for (int b = 0; b < s->n; b++)
        for (int o = 0; o < s->oc; o++) {
            int g = o / g_oc;
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int ci = 0; ci < g_c; ci++)
                        for (int ki = 0; ki < s->kh; ki++)
                            for (int kj = 0; kj < s->kw; kj++) {
                                int iy = oy * s->stride - s->pad + ki * s->dil;
                                int ix = ox * s->stride - s->pad + kj * s->dil;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                int ch = g * g_c + ci;
                                acc += (double)inp[(((size_t)b * s->c + ch) * s->h + iy) * s->w + ix] *
                                       weight[(((size_t)o * g_c + ci) * s->kh + ki) * s->kw + kj];
                            }
                    out[(((size_t)b * s->oc + o) * s->oh + oy) * s->ow + ox] = (float)acc;
                }
        }
}

void nas_conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const nas_conv_shape *s) {
    int g_c = s->c / s->groups, g_oc = s->oc / s->groups;
    for (int b = 0; b < s->n; b++)
        for (int o = 0; o < s->oc; o++) {
            int g = o / g_oc;
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    float d = dout[(((size_t)b * s->oc + o) * s->oh + oy) * s->ow + ox];
                    if (dbias) dbias[o] += d;
                    for (int ci = 0; ci < g_c; ci++)
                        for (int ki = 0; ki < s->kh; ki++)
                            for (int kj = 0; kj < s->kw; kj++) {
                                int iy = oy * s->stride - s->pad + ki * s->dil;
                                int ix = ox * s->stride - s->pad + kj * s->dil;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                int ch = g * g_c + ci;
                                size_t ii = (((size_t)b * s->c + ch) * s->h + iy) * s->w + ix;
                                size_t wi = (((size_t)o * g_c + ci) * s->kh + ki) * s->kw + kj;
                                // forward was: out += inp[ii] * weight[wi]
                                dweight[wi] += d * inp[ii];
                                if (dinp) dinp[ii] += d * weight[wi];
                            }
                }
        }
}
