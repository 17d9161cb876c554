/*
 * conv_perm.c - AVX-512 register-permute kernels for the narrow strided
 * convolutions of conv.c (outputs under 12 wide: small14's 7x7 and 4x4
 * planes, ResNet-20's last stage): im2col in both layouts and the
 * backward's col2im.  conv.c decides which shapes qualify (perm_ok,
 * permt_ok) and calls these only where nas__conv_have_avx512() says so;
 * builds without the intrinsics get stubs that are never called.  Every
 * kernel copies or adds exactly what the row loops do, in their order, so
 * the results are the same bits (test_conv compares them).
 */
#include <stdint.h>
#include <string.h>

#include "common/conv_internal.h"
#include "common/err.h"

// As in conv.c: x86-64 GCC builds may call AVX-512 code chosen at run time; NAS_NO_CLONES
// (common/simd.h) turns that off as it does the clones.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NAS_NO_CLONES)
#define NAS_PERM_AVX512 1
#include <immintrin.h>
#else
#define NAS_PERM_AVX512 0
#endif

int nas__conv_have_avx512(void) {
#if NAS_PERM_AVX512
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

#if NAS_PERM_AVX512
// Permute indices and lane mask of one tap column kj over output columns ox: lane ox reads
// input column ox*stride + kj*dil - pad, or is zeroed when that is padding.
static void perm_taps(const nas_conv_shape *s, int kj, int32_t *idx, uint32_t *valid) {
    for (int ox = 0; ox < s->ow; ox++) {
        int ix = ox * s->stride + kj * s->dil - s->pad_w, lane = ox;
        int in = ix >= 0 && ix < s->w;
        idx[lane] = in ? ix : 0;
        if (in) *valid |= 1u << lane;
    }
}

// One input row of up to 32 floats in two registers (zeros past w).
__attribute__((target("avx512f"))) static inline void perm_row(const float *r, int w, __m512 *a,
                                                               __m512 *b) {
    __mmask16 ma = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1);
    __mmask16 mb = (__mmask16)(w <= 16 ? 0 : w >= 32 ? 0xffff : (1u << (w - 16)) - 1);
    *a = _mm512_maskz_loadu_ps(ma, r);
    *b = _mm512_maskz_loadu_ps(mb, r + 16);
}

// im2col: per channel, kernel row and output row, the input row in two registers gives each
// tap column's output row with one two-source permute (padding taps masked to zero) and one
// masked store of OW floats.
__attribute__((target("avx512f"))) void nas__conv_im2col_perm(float *col, const float *img, int c,
                                                              const nas_conv_shape *s) {
    int kw = s->kw, ow = s->ow;
    size_t ohw = (size_t)s->oh * ow, plane = (size_t)s->h * s->w;
    int32_t idx[16][16] = {{0}}; /* per tap column (kw <= 16) */
    uint32_t valid[16] = {0};
    for (int kj = 0; kj < kw; kj++)
        perm_taps(s, kj, idx[kj], &valid[kj]);
    __mmask16 out = (__mmask16)((1u << ow) - 1);
    for (int ch = 0; ch < c; ch++)
        for (int ki = 0; ki < s->kh; ki++) {
            float *d = col + (size_t)(ch * s->kh + ki) * kw * ohw;
            for (int oy = 0; oy < s->oh; oy++) {
                int iy = oy * s->stride + ki * s->dil - s->pad_h;
                __m512 a = _mm512_setzero_ps(), b = a;
                int row_in = iy >= 0 && iy < s->h;
                if (row_in) perm_row(img + ch * plane + (size_t)iy * s->w, s->w, &a, &b);
                for (int kj = 0; kj < kw; kj++) {
                    __m512i ix = _mm512_loadu_si512(idx[kj]);
                    __mmask16 m = (__mmask16)(row_in ? valid[kj] : 0);
                    __m512 v = _mm512_maskz_permutex2var_ps(m, a, ix, b);
                    _mm512_mask_storeu_ps(d + kj * ohw + (size_t)oy * ow, out, v);
                }
            }
        }
}

// colT of one image group from permutes: for one output row oy and one channel, the KH input
// rows (W <= 16 floats each, KH <= 4) sit in KH registers, and the KH*KW taps of every output
// pixel of the row form KH*KW consecutive lanes of at most four vectors (pixel ox at lanes
// ox*KH*KW...), in colT's own order, so each pixel's taps of that channel are one or two
// masked stores at the pixel's row.  A lane picks from rows (0, 1) or (2, 3) with one
// two-source permute each and a blend; padding taps are masked to zero.
__attribute__((target("avx512f"))) void nas__conv_im2colt_perm(float *colt, const float *img,
                                                               const nas_conv_shape *s) {
    int kh = s->kh, kw = s->kw, kk = kh * kw, ow = s->ow, c = s->c / s->groups;
    int nv = (kk * ow + 15) / 16;
    size_t plane = (size_t)s->h * s->w, k = (size_t)c * kk;
    int32_t idx[4][16] = {{0}};
    uint32_t m01[4] = {0}, m23[4] = {0};
    for (int ox = 0; ox < ow; ox++)
        for (int ki = 0; ki < kh; ki++)
            for (int kj = 0; kj < kw; kj++) {
                int lane = ox * kk + ki * kw + kj, q = lane / 16, l = lane % 16;
                int ix = ox * s->stride + kj * s->dil - s->pad_w;
                if (ix < 0 || ix >= s->w) continue; /* stays zero */
                idx[q][l] = ix + (ki & 1) * 16;     /* the second row of a pair is source b */
                if (ki < 2)
                    m01[q] |= 1u << l;
                else
                    m23[q] |= 1u << l;
            }
    __m512i iv[4];
    for (int q = 0; q < nv; q++)
        iv[q] = _mm512_loadu_si512(idx[q]);
    __mmask16 row_m = (__mmask16)((1u << s->w) - 1);
    for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < s->oh; oy++) {
            float *px0 = colt + (size_t)oy * ow * k;
            __m512 r[4];
            for (int ki = 0; ki < 4; ki++) {
                int iy = oy * s->stride + ki * s->dil - s->pad_h;
                r[ki] = ki < kh && iy >= 0 && iy < s->h
                            ? _mm512_maskz_loadu_ps(row_m, img + ch * plane + (size_t)iy * s->w)
                            : _mm512_setzero_ps();
            }
            __m512 v[4];
            for (int q = 0; q < nv; q++) {
                v[q] = _mm512_maskz_permutex2var_ps((__mmask16)m01[q], r[0], iv[q], r[1]);
                if (m23[q])
                    v[q] = _mm512_mask_mov_ps(
                        v[q], (__mmask16)m23[q],
                        _mm512_maskz_permutex2var_ps((__mmask16)m23[q], r[2], iv[q], r[3]));
            }
            // Pixel ox's lanes [ox*kk, ox*kk + kk) go to its row at column ch*kk; each store's
            // base is moved back by the lane offset within its vector.
            uintptr_t dst = (uintptr_t)(px0 + (size_t)ch * kk);
            for (int ox = 0; ox < ow; ox++, dst += k * sizeof(float)) {
                int j0 = ox * kk, j1 = j0 + kk, q = j0 / 16,
                    e = j1 < 16 * (q + 1) ? j1 : 16 * (q + 1);
                uint32_t lanes = ((1u << (e - 16 * q)) - 1) & ~((1u << (j0 - 16 * q)) - 1);
                _mm512_mask_storeu_ps((void *)(dst - sizeof(float) * (size_t)(j0 - 16 * q)),
                                      (__mmask16)lanes, v[q]);
                if (e < j1)
                    _mm512_mask_storeu_ps((void *)(dst + sizeof(float) * (size_t)(e - j0)),
                                          (__mmask16)((1u << (j1 - e)) - 1), v[q + 1]);
            }
        }
}

// The adjoint of im2col_perm for the backward's column gradient: per channel, kernel row and
// output row, the input-gradient row (W <= 32 floats, two registers) takes each tap column's
// OW floats through the inverse permute, added only in the lanes that tap reaches.  Every
// element receives its (ki, kj) terms in the order of the row loops' col2im, one add each,
// so the results are the same bits.
__attribute__((target("avx512f"))) void nas__conv_col2im_perm(float *img, const float *col, int c,
                                                              const nas_conv_shape *s) {
    int kw = s->kw, ow = s->ow, w = s->w;
    size_t ohw = (size_t)s->oh * ow, plane = (size_t)s->h * w;
    int32_t inv[16][32] = {{0}}; /* per tap column: input column -> output column */
    uint32_t reach[16] = {0};
    for (int kj = 0; kj < kw; kj++)
        for (int ox = 0; ox < ow; ox++) {
            int ix = ox * s->stride + kj * s->dil - s->pad_w;
            if (ix < 0 || ix >= w) continue;
            inv[kj][ix] = ox;
            reach[kj] |= 1u << ix;
        }
    __m512i ia[16], ib[16];
    for (int kj = 0; kj < kw; kj++) {
        ia[kj] = _mm512_loadu_si512(inv[kj]);
        ib[kj] = _mm512_loadu_si512(inv[kj] + 16);
    }
    __mmask16 ma = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1);
    __mmask16 mb = (__mmask16)(w <= 16 ? 0 : w >= 32 ? 0xffff : (1u << (w - 16)) - 1);
    __mmask16 in = (__mmask16)((1u << ow) - 1);
    for (int ch = 0; ch < c; ch++)
        for (int ki = 0; ki < s->kh; ki++) {
            const float *src0 = col + (size_t)(ch * s->kh + ki) * kw * ohw;
            for (int oy = 0; oy < s->oh; oy++) {
                int iy = oy * s->stride + ki * s->dil - s->pad_h;
                if (iy < 0 || iy >= s->h) continue;
                float *row = img + ch * plane + (size_t)iy * w;
                __m512 a = _mm512_maskz_loadu_ps(ma, row), b = _mm512_maskz_loadu_ps(mb, row + 16);
                for (int kj = 0; kj < kw; kj++) {
                    __m512 v = _mm512_maskz_loadu_ps(in, src0 + kj * ohw + (size_t)oy * ow);
                    a = _mm512_mask_add_ps(a, (__mmask16)reach[kj], a,
                                           _mm512_permutexvar_ps(ia[kj], v));
                    if (mb)
                        b = _mm512_mask_add_ps(b, (__mmask16)(reach[kj] >> 16), b,
                                               _mm512_permutexvar_ps(ib[kj], v));
                }
                _mm512_mask_storeu_ps(row, ma, a);
                if (mb) _mm512_mask_storeu_ps(row + 16, mb, b);
            }
        }
}

#else
void nas__conv_im2col_perm(float *col, const float *img, int c, const nas_conv_shape *s) {
    (void)col, (void)img, (void)c, (void)s;
    NAS_ASSERT(!"no AVX-512 permutes in this build");
}

void nas__conv_im2colt_perm(float *colt, const float *img, const nas_conv_shape *s) {
    (void)colt, (void)img, (void)s;
    NAS_ASSERT(!"no AVX-512 permutes in this build");
}

void nas__conv_col2im_perm(float *img, const float *col, int c, const nas_conv_shape *s) {
    (void)img, (void)col, (void)c, (void)s;
    NAS_ASSERT(!"no AVX-512 permutes in this build");
}
#endif
