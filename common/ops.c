/*
 * ops.c - pooling, batch norm, ReLU, linear, softmax cross-entropy,
 * dropout and drop-path kernels.  See ops.h for shapes.
 */
#include "common/ops.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "common/gemm.h"

// ----------------------------------------------------------------------------
// max pool

void nas_maxpool_forward(float *out, const float *inp, int n, int c, int h, int w, int k,
                         int stride, int pad) {
    int oh = nas_pool_out(h, k, stride, pad), ow = nas_pool_out(w, k, stride, pad);
    for (long p = 0; p < (long)n * c; p++) {
        const float *in_p = inp + p * h * w;
        float *out_p = out + p * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float best = -FLT_MAX;
                for (int ki = 0; ki < k; ki++) {
                    int iy = oy * stride - pad + ki;
                    if (iy < 0 || iy >= h) continue;
                    for (int kj = 0; kj < k; kj++) {
                        int ix = ox * stride - pad + kj;
                        if (ix >= 0 && ix < w && in_p[iy * w + ix] > best) best = in_p[iy * w + ix];
                    }
                }
                out_p[oy * ow + ox] = best;
            }
    }
}

void nas_maxpool_backward(float *dinp, const float *dout, const float *inp, int n, int c, int h,
                          int w, int k, int stride, int pad) {
    int oh = nas_pool_out(h, k, stride, pad), ow = nas_pool_out(w, k, stride, pad);
    for (long p = 0; p < (long)n * c; p++) {
        const float *in_p = inp + p * h * w;
        float *din_p = dinp + p * h * w;
        const float *dout_p = dout + p * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                // forward was: out = max over the window; the gradient goes to the first arg-max.
                int arg = -1;
                float best = -FLT_MAX;
                for (int ki = 0; ki < k; ki++) {
                    int iy = oy * stride - pad + ki;
                    if (iy < 0 || iy >= h) continue;
                    for (int kj = 0; kj < k; kj++) {
                        int ix = ox * stride - pad + kj;
                        if (ix >= 0 && ix < w && (arg < 0 || in_p[iy * w + ix] > best)) {
                            best = in_p[iy * w + ix];
                            arg = iy * w + ix;
                        }
                    }
                }
                if (arg >= 0) din_p[arg] += dout_p[oy * ow + ox];
            }
    }
}

// ----------------------------------------------------------------------------
// average pool

// Number of window taps that fall inside the image (the divisor).
static int window_count(int oy, int ox, int h, int w, int k, int stride, int pad) {
    int y0 = oy * stride - pad, x0 = ox * stride - pad;
    int y1 = y0 + k > h ? h : y0 + k, x1 = x0 + k > w ? w : x0 + k;
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    int cnt = (y1 - y0) * (x1 - x0);
    return cnt > 0 ? cnt : 1;
}

void nas_avgpool_forward(float *out, const float *inp, int n, int c, int h, int w, int k,
                         int stride, int pad) {
    int oh = nas_pool_out(h, k, stride, pad), ow = nas_pool_out(w, k, stride, pad);
    for (long p = 0; p < (long)n * c; p++) {
        const float *in_p = inp + p * h * w;
        float *out_p = out + p * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float acc = 0.0f;
                for (int ki = 0; ki < k; ki++) {
                    int iy = oy * stride - pad + ki;
                    if (iy < 0 || iy >= h) continue;
                    for (int kj = 0; kj < k; kj++) {
                        int ix = ox * stride - pad + kj;
                        if (ix >= 0 && ix < w) acc += in_p[iy * w + ix];
                    }
                }
                out_p[oy * ow + ox] = acc / (float)window_count(oy, ox, h, w, k, stride, pad);
            }
    }
}

void nas_avgpool_backward(float *dinp, const float *dout, int n, int c, int h, int w, int k,
                          int stride, int pad) {
    int oh = nas_pool_out(h, k, stride, pad), ow = nas_pool_out(w, k, stride, pad);
    for (long p = 0; p < (long)n * c; p++) {
        float *din_p = dinp + p * h * w;
        const float *dout_p = dout + p * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                // forward was: out = sum(window) / count
                float g = dout_p[oy * ow + ox] / (float)window_count(oy, ox, h, w, k, stride, pad);
                for (int ki = 0; ki < k; ki++) {
                    int iy = oy * stride - pad + ki;
                    if (iy < 0 || iy >= h) continue;
                    for (int kj = 0; kj < k; kj++) {
                        int ix = ox * stride - pad + kj;
                        if (ix >= 0 && ix < w) din_p[iy * w + ix] += g;
                    }
                }
            }
    }
}

// ----------------------------------------------------------------------------
// global average pool

void nas_gap_forward(float *out, const float *inp, int n, int c, int hw) {
    for (long p = 0; p < (long)n * c; p++) {
        const float *in_p = inp + p * hw;
        float acc = 0.0f;
        for (int i = 0; i < hw; i++) acc += in_p[i];
        out[p] = acc / (float)hw;
    }
}

void nas_gap_backward(float *dinp, const float *dout, int n, int c, int hw) {
    for (long p = 0; p < (long)n * c; p++) {
        float g = dout[p] / (float)hw;
        float *din_p = dinp + p * hw;
        for (int i = 0; i < hw; i++) din_p[i] += g;
    }
}

// ----------------------------------------------------------------------------
// batch norm

void nas_bn_forward_train(float *out, float *mean, float *rstd, const float *inp,
                          const float *gamma, const float *beta, float *running_mean,
                          float *running_var, int n, int c, int hw, float momentum, float eps) {
    long m = (long)n * hw;
    for (int ch = 0; ch < c; ch++) {
        // Two passes in double: the mean first, then the centred second moment, so that a
        // large mean does not swamp the variance.
        double sum = 0.0;
        for (int b = 0; b < n; b++) {
            const float *x = inp + ((long)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) sum += x[i];
        }
        double mu = sum / (double)m, sq = 0.0;
        for (int b = 0; b < n; b++) {
            const float *x = inp + ((long)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) sq += ((double)x[i] - mu) * ((double)x[i] - mu);
        }
        double var = sq / (double)m;
        float rs = (float)(1.0 / sqrt(var + eps));
        mean[ch] = (float)mu;
        rstd[ch] = rs;
        float scale = gamma[ch] * rs, shift = beta[ch] - (float)mu * scale;
        for (int b = 0; b < n; b++) {
            const float *x = inp + ((long)b * c + ch) * hw;
            float *y = out + ((long)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) y[i] = x[i] * scale + shift;
        }
        double unbiased = m > 1 ? sq / (double)(m - 1) : var;
        running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * (float)mu;
        running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float)unbiased;
    }
}

void nas_bn_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, int n, int c, int hw,
                         float eps) {
    for (int ch = 0; ch < c; ch++) {
        float scale = gamma[ch] / sqrtf(running_var[ch] + eps);
        float shift = beta[ch] - running_mean[ch] * scale;
        for (int b = 0; b < n; b++) {
            const float *x = inp + ((long)b * c + ch) * hw;
            float *y = out + ((long)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) y[i] = x[i] * scale + shift;
        }
    }
}

void nas_bn_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                     const float *mean, const float *rstd, const float *gamma, int n, int c,
                     int hw) {
    long m = (long)n * hw;
    for (int ch = 0; ch < c; ch++) {
        // forward was: y = gamma * xhat + beta, xhat = (x - mean) * rstd
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        float mu = mean[ch], rs = rstd[ch];
        for (int b = 0; b < n; b++) {
            const float *x = inp + ((long)b * c + ch) * hw;
            const float *dy = dout + ((long)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) {
                sum_dy += dy[i];
                sum_dy_xhat += (double)dy[i] * ((x[i] - mu) * rs);
            }
        }
        dbeta[ch] += (float)sum_dy;
        dgamma[ch] += (float)sum_dy_xhat;
        // dx = gamma*rstd/M * (M*dy - sum(dy) - xhat*sum(dy*xhat))
        float k1 = gamma[ch] * rs, a = (float)(sum_dy / (double)m);
        float b2 = (float)(sum_dy_xhat / (double)m);
        for (int b = 0; b < n; b++) {
            const float *x = inp + ((long)b * c + ch) * hw;
            const float *dy = dout + ((long)b * c + ch) * hw;
            float *dx = dinp + ((long)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) dx[i] += k1 * (dy[i] - a - (x[i] - mu) * rs * b2);
        }
    }
}

// ----------------------------------------------------------------------------
// relu

void nas_relu_forward(float *out, const float *inp, long n) {
    for (long i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void nas_relu_backward(float *dinp, const float *dout, const float *out, long n) {
    // forward was: out = max(inp, 0), so the gradient passes where out > 0.
    for (long i = 0; i < n; i++)
        if (out[i] > 0.0f) dinp[i] += dout[i];
}

// ----------------------------------------------------------------------------
// linear

void nas_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n,
                        int in, int out_f) {
    // out (N,O) = inp (N,I) . weight^T (I,O) + bias
    nas_gemm(0, 1, n, out_f, in, 1.0f, inp, in, weight, in, 0.0f, out, out_f);
    if (bias)
        for (int b = 0; b < n; b++)
            for (int o = 0; o < out_f; o++) out[(long)b * out_f + o] += bias[o];
}

void nas_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int n, int in, int out_f) {
    // dinp (N,I) += dout (N,O) . weight (O,I);  dweight (O,I) += dout^T (O,N) . inp (N,I)
    if (dinp) nas_gemm(0, 0, n, in, out_f, 1.0f, dout, out_f, weight, in, 1.0f, dinp, in);
    nas_gemm(1, 0, out_f, in, n, 1.0f, dout, out_f, inp, in, 1.0f, dweight, in);
    if (dbias)
        for (int b = 0; b < n; b++)
            for (int o = 0; o < out_f; o++) dbias[o] += dout[(long)b * out_f + o];
}

// ----------------------------------------------------------------------------
// softmax cross-entropy

double nas_softmax_xent(float *dlogits, const float *logits, const uint8_t *labels, int n, int k,
                        float smoothing, int *correct) {
    double total = 0.0;
    int hits = 0;
    float off = smoothing / (float)k, on = 1.0f - smoothing + off;
    for (int b = 0; b < n; b++) {
        const float *z = logits + (long)b * k;
        float *dz = dlogits + (long)b * k;
        int arg = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[arg]) arg = j;
        if (arg == labels[b]) hits++;
        // log-sum-exp shifted by the max so exp() never overflows.
        double zmax = z[arg], sum = 0.0;
        for (int j = 0; j < k; j++) sum += exp((double)z[j] - zmax);
        double lse = zmax + log(sum);
        double loss = 0.0;
        for (int j = 0; j < k; j++) {
            double q = j == labels[b] ? on : off;
            double logp = (double)z[j] - lse;
            loss -= q * logp;
            dz[j] = (float)((exp(logp) - q) / n);
        }
        total += loss;
    }
    if (correct) *correct = hits;
    return total / n;
}

// ----------------------------------------------------------------------------
// dropout and drop-path

void nas_dropout_forward(float *out, float *mask, const float *inp, long n, float p, nas_rng *rng) {
    float keep = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) {
        mask[i] = nas_rng_uniform(rng) < p ? 0.0f : keep;
        out[i] = inp[i] * mask[i];
    }
}

void nas_dropout_backward(float *dinp, const float *dout, const float *mask, long n) {
    for (long i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

void nas_drop_path_forward(float *out, float *mask, const float *inp, int n, long per, float p,
                           nas_rng *rng) {
    float keep = 1.0f / (1.0f - p);
    for (int b = 0; b < n; b++) {
        mask[b] = nas_rng_uniform(rng) < p ? 0.0f : keep;
        for (long i = 0; i < per; i++) out[b * per + i] = inp[b * per + i] * mask[b];
    }
}

void nas_drop_path_backward(float *dinp, const float *dout, const float *mask, int n, long per) {
    for (int b = 0; b < n; b++)
        for (long i = 0; i < per; i++) dinp[b * per + i] += dout[b * per + i] * mask[b];
}
