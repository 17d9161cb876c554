/*
 * act.c - SiLU, sigmoid and the channel scale of squeeze-and-excitation.
 *
 * The sigmoid is computed from exp(-|x|) so it never overflows: for x < 0,
 * 1 / (1 + e^-x) = e^x / (1 + e^x), and e^x <= 1 there.
 *
 * exp is our own (sigmoid_v below), not libm's expf: a call per element kept
 * these loops scalar, and SiLU alone took 40 % of an MBConv net's training
 * time (perf, search fidelity).  Written as plain branch-free C, the loops
 * vectorise in every NAS_CLONES clone and compute the same bits in each
 * (common/simd.h: no FMA contraction, the same operations per element).
 */
#include "common/act.h"
#include "common/simd.h"

#include <stdint.h>
#include <string.h>

// 16 lanes as one GCC vector (one AVX-512 register, two AVX2 ones), as common/ops.c does for
// BN: every clone computes the same bits, and the tail runs through the same code in a padded
// vector.  Vectors go by pointer (by value their ABI depends on the ISA, -Wpsabi).
#define ACT_LANES 16
typedef float act_vf __attribute__((vector_size(ACT_LANES * sizeof(float))));
typedef int32_t act_vi __attribute__((vector_size(ACT_LANES * sizeof(int32_t))));

/* sigmoid of 16 lanes.  e = e^-|x| is computed for -|x| >= -87 (below it,
 * where e^x nears the smallest normal float, e^-87 stands in: it vanishes
 * in every sum it joins here) to within 2 ulp: -|x| = n ln2 + r with
 * |r| <= ln2/2, n rounded by adding 1.5 * 2^23 (which leaves it in the low
 * mantissa bits), ln2 split in two so that n ln2 is exact, e^r the minimax
 * polynomial of the Cephes library's expf, and 2^n built in the exponent
 * field (n >= -126: a normal float). */
__attribute__((always_inline)) static inline void sigmoid_v(act_vf *out, const act_vf *in) {
    act_vf x = *in;
    act_vf a = (act_vf)((act_vi)x & 0x7fffffff); /* |x| */
    act_vi big = a > 87.0f;
    act_vf v = (act_vf)(((act_vi)a & ~big) | ((act_vi)(a - a + 87.0f) & big));
    v = -v;
    act_vf t = v * 1.44269504088896341f + 12582912.0f;
    act_vf fn = t - 12582912.0f;
    act_vf r = v - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    act_vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    act_vi bits = ((act_vi)t - 0x4B400000 + 127) << 23; /* t's mantissa holds n + 2^22 */
    act_vf e = p * (act_vf)bits;
    /* x >= 0: 1 / (1 + e); x < 0: e / (1 + e) (= e^x / (1 + e^x)). */
    act_vi pos = x >= 0.0f;
    act_vf num = (act_vf)(((act_vi)(e - e + 1.0f) & pos) | ((act_vi)e & ~pos));
    *out = num / (1.0f + e);
}

/* m (1..16) floats of p into v, zeros past them; and back. */
__attribute__((always_inline)) static inline void ld(act_vf *v, const float *p, long m) {
    if (m == ACT_LANES) {
        memcpy(v, p, sizeof *v);
        return;
    }
    float t[ACT_LANES] = {0};
    memcpy(t, p, (size_t)m * sizeof(float));
    memcpy(v, t, sizeof *v);
}

__attribute__((always_inline)) static inline void st(float *p, const act_vf *v, long m) {
    if (m == ACT_LANES) {
        memcpy(p, v, sizeof *v);
        return;
    }
    float t[ACT_LANES];
    memcpy(t, v, sizeof *v);
    memcpy(p, t, (size_t)m * sizeof(float));
}

static inline long lanes(long n, long i) {
    return n - i < ACT_LANES ? n - i : ACT_LANES;
}

/* out = sigmoid(x), times x when `silu`: one loop for both forwards. */
__attribute__((always_inline)) static inline void forward(float *out, const float *inp, long n,
                                                          int silu) {
    for (long i = 0; i < n; i += ACT_LANES) {
        long m = lanes(n, i);
        act_vf x, s;
        ld(&x, inp + i, m);
        sigmoid_v(&s, &x);
        if (silu) s = x * s;
        st(out + i, &s, m);
    }
}

NAS_CLONES void nas_silu_forward(float *out, const float *inp, long n) {
    forward(out, inp, n, 1);
}

NAS_CLONES void nas_silu_backward(float *dinp, const float *dout, const float *inp, long n) {
    for (long i = 0; i < n; i += ACT_LANES) {
        long m = lanes(n, i);
        act_vf x, s, g, d;
        ld(&x, inp + i, m);
        ld(&g, dout + i, m);
        ld(&d, dinp + i, m);
        sigmoid_v(&s, &x);
        d += g * s * (1.0f + x * (1.0f - s));
        st(dinp + i, &d, m);
    }
}

NAS_CLONES void nas_sigmoid_forward(float *out, const float *inp, long n) {
    forward(out, inp, n, 0);
}

void nas_sigmoid_backward(float *dinp, const float *dout, const float *out, long n) {
    for (long i = 0; i < n; i++) dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
}

void nas_chscale_forward(float *out, const float *x, const float *s, int n, int c, int hw) {
    for (long p = 0; p < (long)n * c; p++) {
        float g = s[p];
        const float *xp = x + p * hw;
        float *op = out + p * hw;
        for (int i = 0; i < hw; i++) op[i] = xp[i] * g;
    }
}

// The gate's gradient is summed in double: it adds up a whole plane of products.
void nas_chscale_backward(float *dx, float *ds, const float *dout, const float *x, const float *s,
                          int n, int c, int hw) {
    for (long p = 0; p < (long)n * c; p++) {
        const float *dp = dout + p * hw, *xp = x + p * hw;
        if (dx) {
            float g = s[p];
            float *dxp = dx + p * hw;
            for (int i = 0; i < hw; i++) dxp[i] += dp[i] * g;
        }
        if (ds) {
            double acc = 0.0;
            for (int i = 0; i < hw; i++) acc += (double)dp[i] * xp[i];
            ds[p] += (float)acc;
        }
    }
}
