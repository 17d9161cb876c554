/*
 * act.c - SiLU, sigmoid and the channel scale of squeeze-and-excitation.
 *
 * The sigmoid is computed from exp(-|x|) so it never overflows: for x < 0,
 * 1 / (1 + e^-x) = e^x / (1 + e^x), and e^x <= 1 there.
 */
#include "common/act.h"

#include <math.h>

static inline float sigmoid(float x) {
    float e = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

void nas_silu_forward(float *out, const float *inp, long n) {
    for (long i = 0; i < n; i++) out[i] = inp[i] * sigmoid(inp[i]);
}

void nas_silu_backward(float *dinp, const float *dout, const float *inp, long n) {
    for (long i = 0; i < n; i++) {
        float x = inp[i], s = sigmoid(x);
        dinp[i] += dout[i] * s * (1.0f + x * (1.0f - s));
    }
}

void nas_sigmoid_forward(float *out, const float *inp, long n) {
    for (long i = 0; i < n; i++) out[i] = sigmoid(inp[i]);
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
