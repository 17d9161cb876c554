/*
 * pointwise.c - pointwise conv kernels (see pointwise.h): the reference loops, one
 * instantiation of pointwise_kern.h per instruction set, and the dispatch.
 */
#include "common/pointwise.h"

#include <math.h>
#include <string.h>

#include "common/conv_internal.h"
#include "common/simd.h"

#if NAS_SIMD_INTRIN
#include <immintrin.h>
#endif

// The sum of a weight gradient's 16 lanes, the same at every level: halves added pairwise.
static inline float pw_tree16(const float *t) {
    float h[8];
    for (int l = 0; l < 8; l++)
        h[l] = t[l] + t[l + 8];
    for (int l = 0; l < 4; l++)
        h[l] = h[l] + h[l + 4];
    for (int l = 0; l < 2; l++)
        h[l] = h[l] + h[l + 2];
    return h[0] + h[1];
}

#define KATTR
#define FN(x)        x##_scalar
#define VT           float
#define V            1
#define LD(p)        (*(p))
#define LDN(p, n)    ((void)(n), *(p))
#define ST(p, v)     (*(p) = (v))
#define STN(p, v, n) ((void)(n), *(p) = (v))
#define SET1(x)      (x)
#define ZERO()       0.0f
#define ADD(a, b)    ((a) + (b))
#define FMA(a, b, c) fmaf(a, b, c)
#include "common/pointwise_kern.h"

#if NAS_SIMD_INTRIN
// The weight gradient's 16 lane sums of a 4 x 4 block of pairs, v[c*4 + r] for output channel
// r and input channel c, added into dw (row r at dw + r*ldw): pw_tree16's tree for all sixteen
// at once, each step adding two vectors' halves (256-bit, then 128-bit blocks, then pairs and
// single lanes within blocks).  Block b of the last vector holds row b's four sums.
__attribute__((target("avx512f"))) static inline void pw_red4x4(__m512 v[16], float *dw,
                                                                size_t ldw) {
    __m512 t[8];
    for (int j = 0; j < 8; j++) /* lanes l + (l + 8) of v[2j] and of v[2j+1] */
        t[j] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], 0xee));
    for (int j = 0; j < 4; j++) /* l + (l + 4): block b holds v[4j + b]'s four */
        v[j] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * j], t[2 * j + 1], 0x88),
                             _mm512_shuffle_f32x4(t[2 * j], t[2 * j + 1], 0xdd));
    for (int j = 0; j < 2; j++) /* l + (l + 2) within each block */
        t[j] = _mm512_add_ps(_mm512_shuffle_ps(v[2 * j], v[2 * j + 1], 0x44),
                             _mm512_shuffle_ps(v[2 * j], v[2 * j + 1], 0xee));
    __m512 s =
        _mm512_add_ps(_mm512_shuffle_ps(t[0], t[1], 0x88), _mm512_shuffle_ps(t[0], t[1], 0xdd));
    float out[16];
    _mm512_storeu_ps(out, s);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            dw[r * ldw + c] += out[r * 4 + c];
}

#define RED4X4(v, dw, ldw) pw_red4x4(v, dw, ldw)
#define KATTR              __attribute__((target("avx512f")))
#define FN(x)              x##_avx512
#define VT                 __m512
#define V                  16
#define LD(p)              _mm512_loadu_ps(p)
#define LDN(p, n)          _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), p)
#define ST(p, v)           _mm512_storeu_ps(p, v)
#define STN(p, v, n)       _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1), v)
#define SET1(x)            _mm512_set1_ps(x)
#define ZERO()             _mm512_setzero_ps()
#define ADD(a, b)          _mm512_add_ps(a, b)
#define FMA(a, b, c)       _mm512_fmadd_ps(a, b, c)
#include "common/pointwise_kern.h"

// A mask of the first n of 8 lanes, for AVX2's masked loads and stores.
__attribute__((target("avx2"))) static inline __m256i pw_lanes8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define KATTR        __attribute__((target("avx2,fma")))
#define FN(x)        x##_avx2
#define VT           __m256
#define V            8
#define LD(p)        _mm256_loadu_ps(p)
#define LDN(p, n)    _mm256_maskload_ps(p, pw_lanes8(n))
#define ST(p, v)     _mm256_storeu_ps(p, v)
#define STN(p, v, n) _mm256_maskstore_ps(p, pw_lanes8(n), v)
#define SET1(x)      _mm256_set1_ps(x)
#define ZERO()       _mm256_setzero_ps()
#define ADD(a, b)    _mm256_add_ps(a, b)
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#include "common/pointwise_kern.h"
#endif

// ----------------------------------------------------------------------------
// reference loops: the forward's and the input gradient's order of operations, plainly

// out (m, np) (+)= A (m, k*taps) . X (k*taps, np), X's row c*taps + t at x + c*ldx + t, each
// element's products fused-multiply-added from zero in the order of q = c*taps + t.
static void pw_mm_ref(float *out, size_t ldo, const float *a, size_t sam, size_t sak,
                      const float *x, size_t ldx, int m, int k, int taps, int np, int add) {
    for (int i = 0; i < m; i++)
        for (int p = 0; p < np; p++) {
            float acc = 0.0f;
            for (int q = 0; q < k * taps; q++)
                acc = fmaf(a[i * sam + q * sak], x[(q / taps) * ldx + q % taps + p], acc);
            out[i * ldo + p] = add ? out[i * ldo + p] + acc : acc;
        }
}

static void pw_dw_ref(float *dw, const float *dout, const float *inp, int n, int oc, int c,
                      int hw) {
    for (int o = 0; o < oc; o++)
        for (int ci = 0; ci < c; ci++) {
            double acc = 0.0;
            for (int b = 0; b < n; b++) {
                const float *d = dout + ((size_t)b * oc + o) * hw;
                const float *x = inp + ((size_t)b * c + ci) * hw;
                for (int p = 0; p < hw; p++)
                    acc += (double)d[p] * x[p];
            }
            dw[(size_t)o * c + ci] += (float)acc;
        }
}

// ----------------------------------------------------------------------------
// dispatch

#define DISPATCH NAS_SIMD_DISPATCH

// The AVX2 level needs FMA as well (every AVX2 CPU but a few early VIA ones has it).
static int pick(int isa) {
    int best = nas_simd_best();
#if NAS_SIMD_INTRIN
    if (best == NAS_SIMD_AVX2 && !__builtin_cpu_supports("fma")) best = NAS_SIMD_SCALAR;
#endif
    return isa > best ? best : isa;
}

// Measured against OpenBLAS's small-matrix kernels (docs/PERFORMANCE.md, round 5): faster or
// equal up to 64 channels each way on every plane, and up to 128 on planes of 14x14 and more
// (at 7x7, 128 x 128 channels ran 20-40 % slower); wider convs keep the GEMM.
int nas__pw_ok(const nas_conv_shape *s) {
    int lim = s->h * s->w >= 196 ? 128 : 64;
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad_h == 0 && s->pad_w == 0 &&
           s->dil == 1 && s->groups == 1 && !s->relu && s->c <= lim && s->oc <= lim;
}

// Images per weight-gradient group: as many as keep their output gradients and inputs within
// about 192 KB (L2), so that every channel block re-reads them from there.
static int dw_group(const nas_conv_shape *s) {
    long per = (long)(s->oc + s->c) * s->h * s->w;
    long g = 192L * 1024 / 4 / (per > 0 ? per : 1);
    return g < 1 ? 1 : (int)g;
}

void nas__pw_forward(int isa, float *out, const float *inp, const float *weight, const float *bias,
                     const nas_conv_shape *s) {
    int hw = s->h * s->w;
    if (isa >= 0) isa = pick(isa);
    for (int b = 0; b < s->n; b++) {
        float *o = out + (size_t)b * s->oc * hw;
        const float *x = inp + (size_t)b * s->c * hw;
        if (isa < 0)
            pw_mm_ref(o, hw, weight, s->c, 1, x, hw, s->oc, s->c, 1, hw, 0);
        else
            DISPATCH(isa, pw_mm, o, hw, weight, s->c, 1, x, hw, s->oc, s->c, hw, 0);
        if (bias) nas__conv_bias_add(o, bias, s->oc, (size_t)hw);
    }
}

void nas__pw_backward(int isa, float *dinp, int store, float *dweight, float *dbias,
                      const float *dout, const float *inp, const float *weight,
                      const nas_conv_shape *s) {
    int hw = s->h * s->w;
    if (isa >= 0) isa = pick(isa);
    if (isa < 0) pw_dw_ref(dweight, dout, inp, s->n, s->oc, s->c, hw);
    // Group by group: the input gradients of a group's images read the output gradients the
    // group's weight gradient just brought into L2, instead of a second pass over the batch.
    int g = dw_group(s);
    for (int b0 = 0; b0 < s->n; b0 += g) {
        int b1 = s->n - b0 < g ? s->n : b0 + g;
        if (isa >= 0)
            DISPATCH(isa, pw_dw, dweight, dout + (size_t)b0 * s->oc * hw,
                     inp + (size_t)b0 * s->c * hw, b1 - b0, s->oc, s->c, hw, g);
        for (int b = b0; b < b1; b++) {
            const float *d = dout + (size_t)b * s->oc * hw;
            if (dinp) {
                // dinp (C, HW) (+)= W^T (C, OC) . dout (OC, HW): W's element (c, o) at o*C + c.
                float *di = dinp + (size_t)b * s->c * hw;
                if (isa < 0)
                    pw_mm_ref(di, hw, weight, 1, s->c, d, hw, s->c, s->oc, 1, hw, !store);
                else
                    DISPATCH(isa, pw_mm, di, hw, weight, 1, s->c, d, hw, s->c, s->oc, hw, !store);
            }
            if (dbias) nas__conv_bias_grad(dbias, d, s->oc, (size_t)hw);
        }
    }
}

void nas__pw_mmt(int isa, float *out, size_t ldo, const float *a, size_t sam, size_t sak,
                 const float *x, size_t ldx, int m, int k, int taps, int np, int add) {
    if (isa < 0) {
        pw_mm_ref(out, ldo, a, sam, sak, x, ldx, m, k, taps, np, add);
        return;
    }
    DISPATCH(pick(isa), pw_mmt, out, ldo, a, sam, sak, x, ldx, m, k, taps, np, add);
}

void nas__pw_dw(int isa, float *dw, const float *dout, const float *inp, int oc, int c, int hw) {
    if (isa < 0) {
        pw_dw_ref(dw, dout, inp, 1, oc, c, hw);
        return;
    }
    DISPATCH(pick(isa), pw_dw, dw, dout, inp, 1, oc, c, hw, 1);
}
