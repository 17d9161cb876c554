/*
 * conv.c - convolution: im2col + GEMM, naive references (depthwise convs run in plane.c);
 * the kernel-row path of stride-1/2 convs is in conv_rows.c, the one-row (1xK) path in
 * conv_cols.c.
 *
 * Index conventions used throughout: input pixel (iy, ix) feeding output
 * pixel (oy, ox) through kernel tap (ki, kj) is
 *     iy = oy*stride - pad_h + ki*dil,   ix = ox*stride - pad_w + kj*dil
 * and taps falling outside the image read zero (padding).
 */
#include "common/conv.h"
#include "common/conv_internal.h"

#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "common/gemm.h"
#include "common/plane.h"
#include "common/pointwise.h"
#include "common/simd.h"

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
int nas_conv_shape_init_hw(nas_conv_shape *s, int n, int c, int h, int w, int oc, int kh, int kw,
                           int stride, int pad_h, int pad_w, int dil, int groups, char *err) {
    if (n < 1 || c < 1 || h < 1 || w < 1 || oc < 1 || kh < 1 || kw < 1 || stride < 1 ||
        pad_h < 0 || pad_w < 0 || dil < 1 || groups < 1)
        return nas_set_err(err, NAS_EINVAL,
                           "conv: sizes must be positive (n=%d c=%d h=%d w=%d oc=%d k=%dx%d "
                           "stride=%d pad=%dx%d dilation=%d groups=%d)",
                           n, c, h, w, oc, kh, kw, stride, pad_h, pad_w, dil, groups);
    if (c % groups != 0 || oc % groups != 0)
        return nas_set_err(err, NAS_EINVAL, "conv: groups=%d does not divide channels %d -> %d",
                           groups, c, oc);
    int eff_h = dil * (kh - 1) + 1, eff_w = dil * (kw - 1) + 1;
    if (h + 2 * pad_h < eff_h || w + 2 * pad_w < eff_w)
        return nas_set_err(err, NAS_EINVAL,
                           "conv: dilated kernel %dx%d does not fit the padded input %dx%d", eff_h,
                           eff_w, h + 2 * pad_h, w + 2 * pad_w);
    *s = (nas_conv_shape){.n = n, .c = c, .h = h, .w = w, .oc = oc, .kh = kh, .kw = kw,
                          .stride = stride, .pad_h = pad_h, .pad_w = pad_w, .dil = dil,
                          .groups = groups};
    s->oh = (h + 2 * pad_h - eff_h) / stride + 1;
    s->ow = (w + 2 * pad_w - eff_w) / stride + 1;
    return NAS_OK;
}

int nas_conv_shape_init(nas_conv_shape *s, int n, int c, int h, int w, int oc, int kh, int kw,
                        int stride, int pad, int dil, int groups, char *err) {
    return nas_conv_shape_init_hw(s, n, c, h, w, oc, kh, kw, stride, pad, pad, dil, groups, err);
}

void nas__conv_bias_add(float *out, const float *bias, int oc, size_t ohw) {
    for (int o = 0; o < oc; o++) {
        float *row = out + (size_t)o * ohw;
        for (size_t i = 0; i < ohw; i++)
            row[i] += bias[o];
    }
}

void nas__conv_bias_grad(float *dbias, const float *dout, int oc, size_t ohw) {
    for (int o = 0; o < oc; o++) {
        const float *row = dout + (size_t)o * ohw;
        float acc = 0.0f;
        for (size_t i = 0; i < ohw; i++)
            acc += row[i];
        dbias[o] += acc;
    }
}

// A 1x1, stride-1, unpadded conv reads the image itself as its column matrix.
static int is_pointwise(const nas_conv_shape *s) {
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad_h == 0 && s->pad_w == 0;
}

static int is_depthwise(const nas_conv_shape *s) {
    return s->groups == s->c && s->oc == s->c && s->groups > 1;
}

// ----------------------------------------------------------------------------
// im2col / col2im

// Output columns [*lo, *hi) whose input column ox*stride + ix0 lies inside [0, w); the
// rest read padding.  Depends only on the kernel column, so it is hoisted out of the rows.
void nas__conv_valid_cols(int ix0, int stride, int w, int ow, int *lo, int *hi) {
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
void nas__conv_zero_pad_cols(float *row, int ow, int ylo, int yhi, int lo, int hi) {
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
        int iy0 = ki * s->dil - s->pad_h, ylo, yhi;
        nas__conv_valid_cols(iy0, s->stride, s->h, s->oh, &ylo, &yhi);
        for (int kj = 0; kj < s->kw; kj++) {
            int ix0 = kj * s->dil - s->pad_w, lo, hi;
            nas__conv_valid_cols(ix0, s->stride, s->w, s->ow, &lo, &hi);
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
void nas__conv_col2im_add_ld(float *img, float *col, size_t ldc, int c, const nas_conv_shape *s) {
    int ow = s->ow, span = span_ok(s);
    size_t plane = (size_t)s->h * s->w, tap_rows = (size_t)s->kh * s->kw * ldc;
    for (int ki = 0; ki < s->kh; ki++) {
        int iy0 = ki * s->dil - s->pad_h, ylo, yhi;
        nas__conv_valid_cols(iy0, s->stride, s->h, s->oh, &ylo, &yhi);
        for (int kj = 0; kj < s->kw; kj++) {
            int ix0 = kj * s->dil - s->pad_w, lo, hi;
            nas__conv_valid_cols(ix0, s->stride, s->w, s->ow, &lo, &hi);
            if (ylo >= yhi || lo >= hi) continue;
            float *row0 = col + (size_t)(ki * s->kw + kj) * ldc;
            for (int ch = 0; ch < c; ch++) {
                float *row = row0 + ch * tap_rows;
                float *img_c = img + ch * plane;
                if (span) {
                    nas__conv_zero_pad_cols(row, ow, ylo, yhi, lo, hi);
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
                int iy = oy * s->stride - s->pad_h + ki * s->dil;
                for (int ox = 0; ox < s->ow; ox++, j++) {
                    int ix = ox * s->stride - s->pad_w + kj * s->dil;
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

// The same columns from register permutes (AVX-512), for the forward: an input row of up to 32
// floats is two masked loads, and each tap's output row (OW <= 16 floats) is one two-source
// permute of them, with zeros where the tap reads padding, and one masked store.  The hardware
// gathers above ran at 0.5-0.7 ns per float on this machine, no faster than the plain loop
// (probably microcoded under the Gather Data Sampling mitigation); the permutes ran at
// 0.24-0.39, and the forward's column building fell from about 9.5% to 5.8% of a small14 step
// (perf).  The transposed columns of the weight gradient have their own.  The kernels are in
// conv_perm.c.
static int perm_ok(const nas_conv_shape *s) {
    return table_ok(s) && s->w <= 32 && s->ow <= 16 && s->kw <= 16;
}

// Whether the transposed permutes (nas__conv_im2colt_perm) take s.
static int permt_ok(const nas_conv_shape *s) {
    return table_ok(s) && s->w <= 16 && s->kh <= 4 && s->kh * s->kw * s->ow <= 64;
}

// Whether the conv dispatch takes the permute im2col for s.
static int use_perm(const nas_conv_shape *s) {
    return perm_ok(s) && nas__conv_have_avx512();
}

// im2col of c channels through the gather table; a channel's KH*KW rows are contiguous in col,
// so each channel is one gather over the table.
// avx2 chooses the hardware gathers (only where the CPU has them; see gather_avx2).
static void im2col_tab(float *col, const float *img, int c, const nas_conv_shape *s,
                       const int32_t *g, int avx2) {
    size_t plane = (size_t)s->h * s->w, len = tab_len(s);
    const int32_t *pad = g + len + 1;
    int32_t npad = g[len];
    for (int ch = 0; ch < c; ch++) {
        float *dst = col + ch * len;
        gather(dst, img + ch * plane, g, len, avx2);
        for (int32_t p = 0; p < npad; p++) dst[pad[p]] = 0.0f;
    }
}

// The weight gradient dW (OC, K) += dY (OC, OHW) . col^T of a narrow strided conv is a GEMM
// that OpenBLAS runs through its packing path (its small-matrix kernels refuse a transposed
// operand when the result has more than about 1200 entries): 75-79 GFLOP/s against 100-108 for
// the same product as dY . colT with colT (OHW, K) in memory, measured alone on small14's two
// strided shapes.  So the backward gathers colT directly, through a second table that lists,
// for each output pixel and then each (channel, tap) row of the column matrix, the input offset
// (channel included), then the padding count and positions as in tab_build.
static size_t tabt_len(const nas_conv_shape *s) { return (size_t)(s->c / s->groups) * tab_len(s); }

static size_t tabt_floats(const nas_conv_shape *s) { return 2 * tabt_len(s) + 1; }

static void tabt_build(int32_t *t, const nas_conv_shape *s) {
    int c = s->c / s->groups, plane = s->h * s->w;
    size_t len = tabt_len(s), j = 0;
    int32_t *pad = t + len + 1, npad = 0;
    for (int oy = 0; oy < s->oh; oy++)
        for (int ox = 0; ox < s->ow; ox++)
            for (int ch = 0; ch < c; ch++)
                for (int ki = 0; ki < s->kh; ki++) {
                    int iy = oy * s->stride - s->pad_h + ki * s->dil;
                    for (int kj = 0; kj < s->kw; kj++, j++) {
                        int ix = ox * s->stride - s->pad_w + kj * s->dil;
                        int inside = iy >= 0 && iy < s->h && ix >= 0 && ix < s->w;
                        t[j] = inside ? ch * plane + iy * s->w + ix : 0;
                        if (!inside) pad[npad++] = (int32_t)j;
                    }
                }
    t[len] = npad;
}

// colT (OH*OW, C*KH*KW) of one image group: the transpose of its im2col, in one gather.
static void im2colt_tab(float *colt, const float *img, const nas_conv_shape *s, const int32_t *t,
                        int avx2) {
    size_t len = tabt_len(s);
    const int32_t *pad = t + len + 1;
    gather(colt, img, t, len, avx2);
    for (int32_t p = 0; p < t[len]; p++) colt[pad[p]] = 0.0f;
}

// Whether this CPU runs the AVX2 gathers (0 in builds without them).
static int have_avx2(void) {
#if NAS_GATHER_AVX2
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

// The tests call each im2col variant by name, so the plain gather loop, which the dispatch only
// takes on CPUs without AVX2, is checked on this machine too.
int nas__conv_im2col_variant(float *col, const float *img, int c, const nas_conv_shape *s,
                             int variant, int32_t *tab) {
    int avx2 = variant == NAS__IM2COL_TABLE_AVX2 || variant == NAS__IM2COLT_TABLE_AVX2;
    if (variant == NAS__IM2COL_LOOPS) {
        im2col_ld(col, (size_t)s->oh * s->ow, img, c, s);
        return 1;
    }
    if (variant == NAS__IM2COL_PERM_AVX512 || variant == NAS__IM2COLT_PERM_AVX512) {
        int t = variant == NAS__IM2COLT_PERM_AVX512;
        if (!(t ? permt_ok(s) : perm_ok(s)) || !nas__conv_have_avx512()) return 0;
        if (t) {
            NAS_ASSERT(c == s->c / s->groups);
            nas__conv_im2colt_perm(col, img, s);
        } else {
            nas__conv_im2col_perm(col, img, c, s);
        }
        return 1;
    }
    if (!table_ok(s) || (avx2 && !have_avx2())) return 0;
    if (variant == NAS__IM2COLT_TABLE_PLAIN || variant == NAS__IM2COLT_TABLE_AVX2) {
        NAS_ASSERT(c == s->c / s->groups);
        tabt_build(tab, s);
        im2colt_tab(col, img, s, tab, avx2);
        return 1;
    }
    tab_build(tab, s);
    im2col_tab(col, img, c, s, tab, avx2);
    return 1;
}

int nas__conv_col2im_variant(float *img, float *col, int c, const nas_conv_shape *s, int perm) {
    if (!perm) {
        nas__conv_col2im_add_ld(img, col, (size_t)s->oh * s->ow, c, s);
        return 1;
    }
    if (!perm_ok(s) || !nas__conv_have_avx512()) return 0;
    nas__conv_col2im_perm(img, col, c, s);
    return 1;
}

size_t nas__conv_table_ints(const nas_conv_shape *s) {
    return table_ok(s) ? (tab_floats(s) > tabt_floats(s) ? tab_floats(s) : tabt_floats(s)) : 0;
}

// Exactly the transpose of nas_im2col.  This public form must leave col intact, so it adds
// row by row instead of taking the clobbering span path the conv backward uses.
void nas_col2im_add(float *img, const float *col, int c, const nas_conv_shape *s) {
    int ohw = s->oh * s->ow;
    for (int ch = 0; ch < c; ch++) {
        float *img_c = img + (size_t)ch * s->h * s->w;
        for (int ki = 0; ki < s->kh; ki++) {
            int iy0 = ki * s->dil - s->pad_h, ylo, yhi;
            nas__conv_valid_cols(iy0, s->stride, s->h, s->oh, &ylo, &yhi);
            for (int kj = 0; kj < s->kw; kj++) {
                const float *row = col + ((size_t)(ch * s->kh + ki) * s->kw + kj) * ohw;
                int ix0 = kj * s->dil - s->pad_w, lo, hi;
                nas__conv_valid_cols(ix0, s->stride, s->w, s->ow, &lo, &hi);
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
// general conv: per image, per group GEMM

// One image-group's column matrix: the GEMMs run per image, so the scratch does not grow with
// the batch and stays near L2 size for the layers of these networks.  (Several images side by
// side in one wider GEMM for 7x7 and 14x14 planes was tried and measured no faster: the
// gather/scatter copies ate what OpenBLAS gained; see docs/PERFORMANCE.md.)
size_t nas_conv_workspace(const nas_conv_shape *s) {
    if (is_depthwise(s)) return nas__dw_workspace(s); /* the plane kernels' scratch */
    if (is_pointwise(s)) return 0;
    if (nas__conv_rows_ok(s)) return nas__conv_rows_workspace(s);
    if (nas__conv_cols_ok(s)) return nas__conv_cols_workspace(s);
    size_t col = (size_t)(s->c / s->groups) * s->kh * s->kw * s->oh * s->ow;
    /* the tables after the columns: im2col's, then the backward's transposed one */
    return table_ok(s) ? col + tab_floats(s) + tabt_floats(s) : col;
}

// The offset table of a conv that uses one (NULL otherwise), built in ws after the
// column matrix once per call, for all the images of the call.
static const int32_t *conv_table(const nas_conv_shape *s, float *ws) {
    if (!table_ok(s) || use_perm(s)) return NULL;
    int32_t *tab = (int32_t *)(ws + (size_t)(s->c / s->groups) * s->kh * s->kw * s->oh * s->ow);
    tab_build(tab, s);
    return tab;
}

// im2col of one image group, through the table when the conv has one.
static void conv_im2col(float *col, const float *img, int c, const nas_conv_shape *s,
                        const int32_t *tab) {
    if (use_perm(s)) {
        nas__conv_im2col_perm(col, img, c, s);
        return;
    }
    if (tab)
        im2col_tab(col, img, c, s, tab, have_avx2());
    else
        im2col_ld(col, (size_t)s->oh * s->ow, img, c, s);
}

// Dispatch: depthwise to the direct loop, everything else per image and per group through
// one GEMM, with pointwise convs reading the image itself as the column matrix.
void nas_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const nas_conv_shape *s, float *ws) {
    // Depthwise convs have one input channel per filter, so im2col + GEMM would multiply a 1 x K
    // by K x HW matrix per channel: all overhead.  plane.c runs them as direct vector loops.
    if (is_depthwise(s)) {
        nas__dw_forward(nas_simd_best(), out, inp, weight, bias, s, ws);
        return;
    }
    NAS_ASSERT(!s->relu); /* fused ReLUs are for depthwise convs only (conv.h) */
    // The cells' pointwise convs are too small for a GEMM call per image (pointwise.h).
    if (nas__pw_ok(s)) {
        nas__pw_forward(nas_simd_best(), out, inp, weight, bias, s);
        return;
    }
    if (nas__conv_rows_ok(s)) {
        nas__conv_rows_forward(out, inp, weight, bias, s, ws);
        return;
    }
    if (nas__conv_cols_ok(s)) {
        nas__conv_cols_forward(nas_simd_best(), out, inp, weight, bias, s, ws);
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
        if (bias) nas__conv_bias_add(out + (size_t)b * s->oc * ohw, bias, s->oc, (size_t)ohw);
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
        nas__dw_backward(nas_simd_best(), dinp, store, dweight, dbias, dout, inp, weight, s, ws);
        return;
    }
    NAS_ASSERT(!s->relu);
    if (nas__pw_ok(s)) {
        nas__pw_backward(nas_simd_best(), dinp, store, dweight, dbias, dout, inp, weight, s);
        return;
    }
    if (nas__conv_rows_ok(s)) {
        nas__conv_rows_backward(dinp, store, dweight, dbias, dout, inp, weight, s, ws);
        return;
    }
    if (nas__conv_cols_ok(s)) {
        nas__conv_cols_backward(nas_simd_best(), dinp, store, dweight, dbias, dout, inp, weight, s,
                                ws);
        return;
    }
    int g_c = s->c / s->groups, g_oc = s->oc / s->groups;
    int k = g_c * s->kh * s->kw, ohw = s->oh * s->ow;
    int pw = is_pointwise(s), avx2 = have_avx2();
    // Convs with a table gather the transposed columns instead (see tabt_build).
    int32_t *tabt = NULL;
    int colt = !pw && table_ok(s), perm = colt && permt_ok(s) && nas__conv_have_avx512();
    if (colt && !perm) {
        tabt = (int32_t *)(ws + (size_t)k * ohw + tab_floats(s));
        tabt_build(tabt, s);
    }
    const int32_t *tab = pw || colt ? NULL : conv_table(s, ws);
    for (int b = 0; b < s->n; b++) {
        for (int g = 0; g < s->groups; g++) {
            const float *img = inp + ((size_t)b * s->c + (size_t)g * g_c) * s->h * s->w;
            const float *dout_g = dout + ((size_t)b * s->oc + (size_t)g * g_oc) * ohw;
            const float *w_g = weight + (size_t)g * g_oc * k;
            float *dw_g = dweight + (size_t)g * g_oc * k;
            if (colt) {
                // forward was out_g = W_g . col, so dW_g += dout_g . colT
                if (perm)
                    nas__conv_im2colt_perm(ws, img, s);
                else
                    im2colt_tab(ws, img, s, tabt, avx2);
                nas_gemm(0, 0, g_oc, k, ohw, 1.0f, dout_g, ohw, ws, k, 1.0f, dw_g, k);
            } else {
                const float *col = img;
                if (!pw) {
                    conv_im2col(ws, img, g_c, s, tab);
                    col = ws;
                }
                // forward was out_g = W_g . col, so dW_g += dout_g . col^T
                nas_gemm(0, 1, g_oc, k, ohw, 1.0f, dout_g, ohw, col, ohw, 1.0f, dw_g, k);
            }
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
                if (use_perm(s))
                    nas__conv_col2im_perm(dimg, ws, g_c, s);
                else
                    nas__conv_col2im_add_ld(dimg, ws, (size_t)ohw, g_c, s);
            }
        }
        if (dbias) nas__conv_bias_grad(dbias, dout + (size_t)b * s->oc * ohw, s->oc, (size_t)ohw);
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
                                int iy = oy * s->stride - s->pad_h + ki * s->dil;
                                int ix = ox * s->stride - s->pad_w + kj * s->dil;
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
                                int iy = oy * s->stride - s->pad_h + ki * s->dil;
                                int ix = ox * s->stride - s->pad_w + kj * s->dil;
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
