/*
 * ops.c - pooling, batch norm, ReLU, linear, softmax cross-entropy,
 * dropout and drop-path kernels.  See ops.h for shapes.
 */
#include "common/ops.h"

#include <math.h>
#include <string.h>

#include "common/gemm.h"
#include "common/plane.h"
#include "common/simd.h"

// ----------------------------------------------------------------------------
// max and average pool: vector loops over padded planes in plane.c

void nas_maxpool_forward(float *out, const float *inp, int n, int c, int h, int w, int k,
                         int stride, int pad) {
    nas__pool_forward(nas_simd_best(), NAS__POOL_MAX, out, inp, n, c, h, w, k, stride, pad, NULL);
}

void nas_maxpool_backward(float *dinp, const float *dout, const float *inp, int n, int c, int h,
                          int w, int k, int stride, int pad) {
    nas_pool_backward(1, 0, dinp, dout, inp, n, c, h, w, k, stride, pad);
}

void nas_avgpool_forward(float *out, const float *inp, int n, int c, int h, int w, int k,
                         int stride, int pad) {
    nas__pool_forward(nas_simd_best(), NAS__POOL_AVG, out, inp, n, c, h, w, k, stride, pad, NULL);
}

void nas_avgpool_backward(float *dinp, const float *dout, int n, int c, int h, int w, int k,
                          int stride, int pad) {
    nas_pool_backward(0, 0, dinp, dout, NULL, n, c, h, w, k, stride, pad);
}

void nas_pool_backward(int max, int store, float *dinp, const float *dout, const float *inp, int n,
                       int c, int h, int w, int k, int stride, int pad) {
    nas_pool_backward_ws(max, store, dinp, dout, inp, n, c, h, w, k, stride, pad, NULL);
}

size_t nas_pool_workspace(int h, int w, int k, int stride, int pad) {
    return nas__pool_workspace(h, w, k, stride, pad);
}

void nas_pool_forward_ws(int max, float *out, const float *inp, int n, int c, int h, int w, int k,
                         int stride, int pad, float *ws) {
    nas__pool_forward(nas_simd_best(), max ? NAS__POOL_MAX : NAS__POOL_AVG, out, inp, n, c, h, w, k,
                      stride, pad, ws);
}

void nas_pool_backward_ws(int max, int store, float *dinp, const float *dout, const float *inp,
                          int n, int c, int h, int w, int k, int stride, int pad, float *ws) {
    nas__pool_backward(nas_simd_best(), max ? NAS__POOL_MAX : NAS__POOL_AVG, dinp, store, dout,
                       max ? inp : NULL, n, c, h, w, k, stride, pad, ws);
}

// ----------------------------------------------------------------------------
// global average pool

// Global average pool reduces each (image, channel) plane to its mean; the accumulation order
// is fixed, which keeps results reproducible.
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

// Reductions are written with NAS_LANES independent partial sums: C forbids reassociating one
// float accumulator, so a single-sum loop runs scalar; lanes let the hardware use SIMD while the
// order (and so the result) stays fixed.  The lanes are one GCC vector of 16 floats: the
// compiler's own vectorisation of a 16-element array accumulator spilled to the stack and
// shuffled (perf: the BN backward reduction was 17-19% of a small-net step).  A 64-byte vector
// is one AVX-512 register, two AVX2 or four SSE ones, with identical results.
#define NAS_LANES 16
typedef float nas_vf __attribute__((vector_size(NAS_LANES * sizeof(float))));
typedef int nas_vi __attribute__((vector_size(NAS_LANES * sizeof(int))));

// The helpers below are always inlined so that each NAS_CLONES clone of the BN functions gets
// its own ISA's copy (left to itself GCC called one baseline SSE2 version from every clone).
// Unaligned loads through memcpy (a plain load after inlining).  Vectors are passed by pointer:
// by value, a 64-byte vector's ABI depends on the ISA (-Wpsabi).
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(nas_vf))

typedef double nas_vd __attribute__((vector_size(NAS_LANES * sizeof(double))));

// Per image and channel the lanes (plus the tail elements t, lane j taking tail element j) are
// widened to double and added to a per-channel double accumulator; the lanes are folded once
// per channel.  Folding 16 lanes serially per image cost more than the data for 7x7 and 4x4
// planes (BN backward was 14% of a small14 step), and double across images keeps the one-pass
// variance as precise as before.
__attribute__((always_inline)) static inline void lanes_acc(nas_vd *acc, const nas_vf *v,
                                                            const float *t) {
    nas_vf tv;
    VLOAD(tv, t);
    *acc += __builtin_convertvector(*v + tv, nas_vd);
}

__attribute__((always_inline)) static inline double lanes_fold(const nas_vd *v) {
    double l[NAS_LANES], r = 0.0;
    memcpy(l, v, sizeof l);
    for (int j = 0; j < NAS_LANES; j++) r += l[j];
    return r;
}

// The t (0 < t < NAS_LANES) floats before end in lanes 0 .. t-1, zeros above: the tail of a
// plane of at least NAS_LANES floats, read by one full load ending at end (in bounds) whose
// lanes are rotated into place.  Filling an array element by element instead and loading it
// stalled on store forwarding, once per plane and array (perf: a fifth of BN's sums at 7x7).
// The rotation is one vpermps on AVX-512; on two AVX2 halves GCC builds it from many more
// instructions (callgrind: the sums' instructions +50 %), so other clones keep the array
// (tail_rotates), as do the channel-split kernels, which the net does not run.  Both give the
// same lanes.
__attribute__((always_inline)) static inline void tail_load(nas_vf *v, const float *end, int t) {
    const nas_vi idx = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    nas_vf w;
    VLOAD(w, end - NAS_LANES);
    w = __builtin_shuffle(w, (idx + (NAS_LANES - t)) & (NAS_LANES - 1));
    *v = (nas_vf)((nas_vi)w & (idx < t));
}

// Whether n floats' tail goes through tail_load: planes of 16 floats or more, on CPUs with
// AVX-512 (which are the ones that run the avx512f clones).
__attribute__((always_inline)) static inline int tail_rotates(int n) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    return n >= NAS_LANES && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

// *d1 += lanes of sum(x), *d2 += lanes of sum(x*x) over n floats; rot: tail_rotates(n).
__attribute__((always_inline)) static inline void sum_sq(const float *x, int n, nas_vd *d1,
                                                         nas_vd *d2, int rot) {
    nas_vf a = {0}, b = {0};
    int i = 0;
    for (; i + NAS_LANES <= n; i += NAS_LANES) {
        nas_vf v;
        VLOAD(v, x + i);
        a += v, b += v * v;
    }
    if (rot) { /* the tail, if any, as one vector: the same lanes as below */
        nas_vf tv = {0};
        if (i < n) tail_load(&tv, x + n, n - i);
        nas_vf sq = tv * tv;
        lanes_acc(d1, &a, (const float *)&tv), lanes_acc(d2, &b, (const float *)&sq);
        return;
    }
    float ta[NAS_LANES] = {0}, tb[NAS_LANES] = {0};
    for (int j = 0; i < n; i++, j++) ta[j] = x[i], tb[j] = x[i] * x[i];
    lanes_acc(d1, &a, ta), lanes_acc(d2, &b, tb);
}

// With g = (mask == NULL || mask > 0) ? dy : 0: *d1 += lanes of sum(g), *d2 += of sum(g * x).
__attribute__((always_inline)) static inline void sum_dot_masked(const float *dy, const float *x,
                                                                 const float *mask, int n,
                                                                 nas_vd *d1, nas_vd *d2, int rot) {
    nas_vf a = {0}, b = {0}, zero = {0};
    int i = 0;
    for (; i + NAS_LANES <= n; i += NAS_LANES) {
        nas_vf g, xv, m;
        VLOAD(g, dy + i);
        VLOAD(xv, x + i);
        if (mask) {
            VLOAD(m, mask + i);
            g = (nas_vf)((nas_vi)g & (m > zero)); /* the compare is all-ones where kept */
        }
        a += g, b += g * xv;
    }
    if (rot) { /* the tail as one vector (tail_load), as sum_sq */
        nas_vf g = {0}, xv = {0};
        if (i < n) {
            tail_load(&g, dy + n, n - i), tail_load(&xv, x + n, n - i);
            if (mask) {
                nas_vf m;
                tail_load(&m, mask + n, n - i);
                g = (nas_vf)((nas_vi)g & (m > zero));
            }
        }
        nas_vf gx = g * xv;
        lanes_acc(d1, &a, (const float *)&g), lanes_acc(d2, &b, (const float *)&gx);
        return;
    }
    float ta[NAS_LANES] = {0}, tb[NAS_LANES] = {0};
    for (int j = 0; i < n; i++, j++) {
        float g = (!mask || mask[i] > 0.0f) ? dy[i] : 0.0f;
        ta[j] = g, tb[j] = g * x[i];
    }
    lanes_acc(d1, &a, ta), lanes_acc(d2, &b, tb);
}

// Channels per block of the BN passes below.  A channel's planes lie C*HW floats apart, one per
// image: for 4x4 planes with 64 channels that is one 64-byte line every 4 KB, so a per-channel
// walk over the batch hits one L1 set again and again (every array at the same 4 KB alias) and
// ran at 2.2 ns per element, four times the 14x14 layers' rate.  Walking a block of channels
// per image reads consecutive lines instead; the block is sized so that its part of the batch
// (BLOCK_FLOATS per array) stays in L2 between the statistics pass and the apply pass.  Each
// channel's sums still run over the images in order, so the results are the same bits as a
// per-channel walk, for any block size and any channel split between threads.
// Planes of BN_BLOCK_HW floats or more keep the per-channel walk, which measured faster there
// (its accumulators stay in registers).
#define BN_BLOCK_MAX 16
#define BN_BLOCK_FLOATS 16384
#define BN_BLOCK_HW 32

// Channels per block for (n, hw), or 1: walk channel by channel.
static int bn_block(int n, int hw) {
    long per = (long)n * hw;
    if (hw >= BN_BLOCK_HW || per >= BN_BLOCK_FLOATS) return 1;
    long cb = BN_BLOCK_FLOATS / per;
    return cb > BN_BLOCK_MAX ? BN_BLOCK_MAX : (int)cb;
}

// One plane of the BN input gradient, dx = k1 * (g - a - (x - mu) * b2), where g is dy masked
// by out > 0 when ReLU was fused (o != NULL).  Overwriting (when this is the gradient's first
// writer) saves reading dx and the caller's zeroing pass over it.
__attribute__((always_inline)) static inline void
bn_dx_plane(float *dx, const float *dy, const float *x, const float *o, int hw, float k1, float a,
            float b2, float mu, int overwrite) {
    if (o && overwrite) {
        for (int i = 0; i < hw; i++) {
            float d = dy[i]; /* loaded unconditionally so the select vectorises */
            float g = o[i] > 0.0f ? d : 0.0f;
            dx[i] = k1 * (g - a - (x[i] - mu) * b2);
        }
    } else if (o) {
        for (int i = 0; i < hw; i++) {
            float d = dy[i];
            float g = o[i] > 0.0f ? d : 0.0f;
            dx[i] += k1 * (g - a - (x[i] - mu) * b2);
        }
    } else if (overwrite) {
        for (int i = 0; i < hw; i++) dx[i] = k1 * (dy[i] - a - (x[i] - mu) * b2);
    } else {
        for (int i = 0; i < hw; i++) dx[i] += k1 * (dy[i] - a - (x[i] - mu) * b2);
    }
}

// One plane of y = x * sc + sh (then ReLU): the apply step of every training BN kernel.
__attribute__((always_inline)) static inline void bn_apply_plane(float *y, const float *x, int hw,
                                                                 float sc, float sh, int relu) {
    if (relu) {
        for (int i = 0; i < hw; i++) {
            float v = x[i] * sc + sh;
            y[i] = v > 0.0f ? v : 0.0f;
        }
    } else {
        for (int i = 0; i < hw; i++) y[i] = x[i] * sc + sh;
    }
}

// nas_bn_forward_train_part for planes below BN_BLOCK_HW floats, cbs channels at a time.
__attribute__((always_inline)) static inline void
bn_forward_blocked(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                   const float *beta, float *running_mean, float *running_var, int n, int c, int hw,
                   float momentum, float eps, int relu, int c0, int c1, int cbs) {
    const int rot = 0; /* the element-by-element tail (the same lanes) */
    long m = (long)n * hw;
    for (int cb = c0; cb < c1; cb += cbs) {
        int nc = c1 - cb < cbs ? c1 - cb : cbs;
        // One pass of sum and sum of squares, in double: activations are O(1) and m is at
        // most a few million, so E[x^2] - E[x]^2 keeps ample precision and saves a pass.
        nas_vd d1[BN_BLOCK_MAX], d2[BN_BLOCK_MAX];
        float scale[BN_BLOCK_MAX], shift[BN_BLOCK_MAX];
        memset(d1, 0, sizeof(nas_vd) * nc), memset(d2, 0, sizeof(nas_vd) * nc);
        for (int b = 0; b < n; b++)
            for (int j = 0; j < nc; j++)
                sum_sq(inp + ((long)b * c + cb + j) * hw, hw, &d1[j], &d2[j], rot);
        double sums[2 * BN_BLOCK_MAX];
        for (int j = 0; j < nc; j++) {
            sums[2 * j] = lanes_fold(&d1[j]);
            sums[2 * j + 1] = lanes_fold(&d2[j]);
        }
        nas_bn_finish_stats(scale, shift, mean + cb, rstd + cb, running_mean + cb,
                            running_var + cb, sums, gamma + cb, beta + cb, m, nc, momentum, eps);
        for (int b = 0; b < n; b++)
            for (int j = 0; j < nc; j++) {
                long off = ((long)b * c + cb + j) * hw;
                bn_apply_plane(out + off, inp + off, hw, scale[j], shift[j], relu);
            }
    }
}

// nas_bn_backward_part for planes below BN_BLOCK_HW floats, cbs channels at a time.
__attribute__((always_inline)) static inline void
bn_backward_blocked(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *out,
                    const float *inp, const float *mean, const float *rstd, const float *gamma,
                    int n, int c, int hw, int relu, int overwrite, int c0, int c1, int cbs) {
    const int rot = 0; /* the element-by-element tail (the same lanes) */
    long m = (long)n * hw;
    for (int cb = c0; cb < c1; cb += cbs) {
        int nc = c1 - cb < cbs ? c1 - cb : cbs;
        // forward was: y = gamma * xhat + beta, xhat = (x - mean) * rstd, then out = max(y, 0)
        // when relu is fused, so the gradient reaching y is dout masked by out > 0.
        nas_vd d1[BN_BLOCK_MAX], d2[BN_BLOCK_MAX];
        float k1v[BN_BLOCK_MAX], av[BN_BLOCK_MAX], b2v[BN_BLOCK_MAX];
        memset(d1, 0, sizeof(nas_vd) * nc), memset(d2, 0, sizeof(nas_vd) * nc);
        for (int b = 0; b < n; b++)
            for (int j = 0; j < nc; j++) {
                long off = ((long)b * c + cb + j) * hw;
                sum_dot_masked(dout + off, inp + off, relu ? out + off : NULL, hw, &d1[j], &d2[j],
                               rot);
            }
        for (int j = 0; j < nc; j++) {
            int ch = cb + j;
            float rs = rstd[ch];
            double sum_dy = lanes_fold(&d1[j]), sum_dy_x = lanes_fold(&d2[j]);
            // sum(dy * xhat) = rstd * (sum(dy * x) - mean * sum(dy))
            double sum_dy_xhat = rs * (sum_dy_x - mean[ch] * sum_dy);
            dbeta[ch] += (float)sum_dy;
            dgamma[ch] += (float)sum_dy_xhat;
            // dx = gamma*rstd/M * (M*dy - sum(dy) - xhat*sum(dy*xhat))
            k1v[j] = gamma[ch] * rs, av[j] = (float)(sum_dy / (double)m);
            b2v[j] = (float)(sum_dy_xhat / (double)m) * rs;
        }
        for (int b = 0; b < n; b++)
            for (int j = 0; j < nc; j++) {
                long off = ((long)b * c + cb + j) * hw;
                const float *x = inp + off, *dy = dout + off, *o = relu ? out + off : NULL;
                float *dx = dinp + off;
                float k1 = k1v[j], a = av[j], b2 = b2v[j], mu = mean[cb + j];
                bn_dx_plane(dx, dy, x, o, hw, k1, a, b2, mu, overwrite);
            }
    }
}

NAS_CLONES void nas_bn_forward_train_part(float *out, float *mean, float *rstd, const float *inp,
                               const float *gamma, const float *beta, float *running_mean,
                               float *running_var, int n, int c, int hw, float momentum, float eps,
                               int relu, int c0, int c1) {
    const int rot = 0; /* the element-by-element tail (the same lanes) */
    int cbs = bn_block(n, hw);
    if (cbs > 1) {
        bn_forward_blocked(out, mean, rstd, inp, gamma, beta, running_mean, running_var, n, c, hw,
                           momentum, eps, relu, c0, c1, cbs);
        return;
    }
    long m = (long)n * hw;
    for (int ch = c0; ch < c1; ch++) {
        // One pass of sum and sum of squares, in double: activations are O(1) and m is at
        // most a few million, so E[x^2] - E[x]^2 keeps ample precision and saves a pass.
        nas_vd d1 = {0}, d2 = {0};
        for (int b = 0; b < n; b++)
            sum_sq(inp + ((long)b * c + ch) * hw, hw, &d1, &d2, rot);
        double sums[2] = {lanes_fold(&d1), lanes_fold(&d2)};
        float scale, shift;
        nas_bn_finish_stats(&scale, &shift, mean + ch, rstd + ch, running_mean + ch,
                            running_var + ch, sums, gamma + ch, beta + ch, m, 1, momentum, eps);
        for (int b = 0; b < n; b++) {
            long off = ((long)b * c + ch) * hw;
            bn_apply_plane(out + off, inp + off, hw, scale, shift, relu);
        }
    }
}

// An inference BN's per-channel y = x * scale + shift, from the running statistics.
static inline void bn_eval_coef(float *scale, float *shift, float gamma, float beta, float mean,
                                float var, float eps) {
    *scale = gamma / sqrtf(var + eps);
    *shift = beta - mean * *scale;
}

void nas_bn_eval_coef(float *scale, float *shift, const float *gamma, const float *beta,
                      const float *running_mean, const float *running_var, int c, float eps) {
    for (int ch = 0; ch < c; ch++)
        bn_eval_coef(scale + ch, shift + ch, gamma[ch], beta[ch], running_mean[ch], running_var[ch],
                     eps);
}

NAS_CLONES void nas_bn_forward_eval_part(float *out, const float *inp, const float *gamma,
                              const float *beta, const float *running_mean,
                              const float *running_var, int n, int c, int hw, float eps, int relu,
                              int c0, int c1) {
    for (int ch = c0; ch < c1; ch++) {
        float scale, shift;
        bn_eval_coef(&scale, &shift, gamma[ch], beta[ch], running_mean[ch], running_var[ch], eps);
        for (int b = 0; b < n; b++) {
            const float *x = inp + ((long)b * c + ch) * hw;
            float *y = out + ((long)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) {
                float v = x[i] * scale + shift;
                y[i] = relu && v < 0.0f ? 0.0f : v;
            }
        }
    }
}

NAS_CLONES void nas_bn_backward_part(float *dinp, float *dgamma, float *dbeta, const float *dout,
                          const float *out, const float *inp, const float *mean, const float *rstd,
                          const float *gamma, int n, int c, int hw, int relu, int overwrite, int c0,
                          int c1) {
    const int rot = 0; /* the element-by-element tail (the same lanes) */
    int cbs = bn_block(n, hw);
    if (cbs > 1) {
        bn_backward_blocked(dinp, dgamma, dbeta, dout, out, inp, mean, rstd, gamma, n, c, hw, relu,
                            overwrite, c0, c1, cbs);
        return;
    }
    long m = (long)n * hw;
    for (int ch = c0; ch < c1; ch++) {
        // forward was: y = gamma * xhat + beta, xhat = (x - mean) * rstd, then out = max(y, 0)
        // when relu is fused, so the gradient reaching y is dout masked by out > 0.
        float mu = mean[ch], rs = rstd[ch];
        nas_vd d1 = {0}, d2 = {0};
        for (int b = 0; b < n; b++) {
            long off = ((long)b * c + ch) * hw;
            sum_dot_masked(dout + off, inp + off, relu ? out + off : NULL, hw, &d1, &d2, rot);
        }
        double sum_dy = lanes_fold(&d1), sum_dy_x = lanes_fold(&d2);
        // sum(dy * xhat) = rstd * (sum(dy * x) - mean * sum(dy))
        double sum_dy_xhat = rs * (sum_dy_x - mu * sum_dy);
        dbeta[ch] += (float)sum_dy;
        dgamma[ch] += (float)sum_dy_xhat;
        // dx = gamma*rstd/M * (M*dy - sum(dy) - xhat*sum(dy*xhat))
        float k1 = gamma[ch] * rs, a = (float)(sum_dy / (double)m);
        float b2 = (float)(sum_dy_xhat / (double)m) * rs;
        for (int b = 0; b < n; b++) {
            long off = ((long)b * c + ch) * hw;
            const float *x = inp + off, *dy = dout + off, *o = relu ? out + off : NULL;
            float *dx = dinp + off;
            bn_dx_plane(dx, dy, x, o, hw, k1, a, b2, mu, overwrite);
        }
    }
}

// ----------------------------------------------------------------------------
// batch norm split by images (threads that each own a range of the batch)

// Channels whose lane accumulators one pass of the image-range kernels keeps: 2 x 64 vectors of
// 16 doubles is 16 KB of stack, and walking up to 64 planes of an image reads consecutive memory.
#define BN_PART_CH 64

// The image-range kernels' bodies, with rot (tail_rotates) a constant at each call, so that each
// path gets its own loops (one body with rot a variable cost the avx2 clones' sums 4-9 %
// more instructions, callgrind).
__attribute__((always_inline)) static inline void stats_part(double *part, const float *inp, int nb,
                                                             int c, int hw, int rot) {
    for (int cb = 0; cb < c; cb += BN_PART_CH) {
        int nc = c - cb < BN_PART_CH ? c - cb : BN_PART_CH;
        nas_vd d1[BN_PART_CH], d2[BN_PART_CH];
        memset(d1, 0, sizeof(nas_vd) * nc), memset(d2, 0, sizeof(nas_vd) * nc);
        for (int b = 0; b < nb; b++)
            for (int j = 0; j < nc; j++)
                sum_sq(inp + ((long)b * c + cb + j) * hw, hw, &d1[j], &d2[j], rot);
        for (int j = 0; j < nc; j++) {
            part[2 * (cb + j)] = lanes_fold(&d1[j]);
            part[2 * (cb + j) + 1] = lanes_fold(&d2[j]);
        }
    }
}

NAS_CLONES void nas_bn_stats_part(double *part, const float *inp, int nb, int c, int hw) {
    if (tail_rotates(hw))
        stats_part(part, inp, nb, c, hw, 1);
    else
        stats_part(part, inp, nb, c, hw, 0);
}

void nas_bn_finish_stats(float *scale, float *shift, float *mean, float *rstd, float *running_mean,
                         float *running_var, const double *sums, const float *gamma,
                         const float *beta, long m, int c, float momentum, float eps) {
    for (int ch = 0; ch < c; ch++) {
        // The same formulas as the channel-split kernels: one-pass variance in double.
        double mu = sums[2 * ch] / (double)m, var = sums[2 * ch + 1] / (double)m - mu * mu;
        if (var < 0.0) var = 0.0;
        float rs = (float)(1.0 / sqrt(var + eps));
        scale[ch] = gamma[ch] * rs, shift[ch] = beta[ch] - (float)mu * scale[ch];
        if (!mean) continue;
        mean[ch] = (float)mu;
        rstd[ch] = rs;
        double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
        running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * (float)mu;
        running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float)unbiased;
    }
}

NAS_CLONES void nas_bn_apply_part(float *out, const float *inp, const float *scale,
                                  const float *shift, int nb, int c, int hw, int relu) {
    for (int b = 0; b < nb; b++)
        for (int ch = 0; ch < c; ch++) {
            long off = ((long)b * c + ch) * hw;
            bn_apply_plane(out + off, inp + off, hw, scale[ch], shift[ch], relu);
        }
}

__attribute__((always_inline)) static inline void sums_part(double *part, const float *dout,
                                                            const float *out, const float *inp,
                                                            int nb, int c, int hw, int relu,
                                                            int rot) {
    for (int cb = 0; cb < c; cb += BN_PART_CH) {
        int nc = c - cb < BN_PART_CH ? c - cb : BN_PART_CH;
        nas_vd d1[BN_PART_CH], d2[BN_PART_CH];
        memset(d1, 0, sizeof(nas_vd) * nc), memset(d2, 0, sizeof(nas_vd) * nc);
        for (int b = 0; b < nb; b++)
            for (int j = 0; j < nc; j++) {
                long off = ((long)b * c + cb + j) * hw;
                sum_dot_masked(dout + off, inp + off, relu ? out + off : NULL, hw, &d1[j], &d2[j],
                               rot);
            }
        for (int j = 0; j < nc; j++) {
            part[2 * (cb + j)] = lanes_fold(&d1[j]);
            part[2 * (cb + j) + 1] = lanes_fold(&d2[j]);
        }
    }
}

NAS_CLONES void nas_bn_backward_sums_part(double *part, const float *dout, const float *out,
                                          const float *inp, int nb, int c, int hw, int relu) {
    if (tail_rotates(hw))
        sums_part(part, dout, out, inp, nb, c, hw, relu, 1);
    else
        sums_part(part, dout, out, inp, nb, c, hw, relu, 0);
}

void nas_bn_finish_backward(float *coef, float *dgamma, float *dbeta, const double *sums,
                            const float *mean, const float *rstd, const float *gamma, long m,
                            int c) {
    for (int ch = 0; ch < c; ch++) {
        float rs = rstd[ch];
        double sum_dy = sums[2 * ch];
        // sum(dy * xhat) = rstd * (sum(dy * x) - mean * sum(dy)), as in nas_bn_backward_part.
        double sum_dy_xhat = rs * (sums[2 * ch + 1] - mean[ch] * sum_dy);
        if (dgamma) {
            dbeta[ch] += (float)sum_dy;
            dgamma[ch] += (float)sum_dy_xhat;
        }
        coef[4 * ch] = gamma[ch] * rs;
        coef[4 * ch + 1] = (float)(sum_dy / (double)m);
        coef[4 * ch + 2] = (float)(sum_dy_xhat / (double)m) * rs;
        coef[4 * ch + 3] = mean[ch];
    }
}

NAS_CLONES void nas_bn_backward_dx_part(float *dinp, const float *dout, const float *out,
                                        const float *inp, const float *coef, int nb, int c, int hw,
                                        int relu, int overwrite) {
    for (int b = 0; b < nb; b++)
        for (int ch = 0; ch < c; ch++) {
            const float *k = coef + 4 * ch;
            long off = ((long)b * c + ch) * hw;
            bn_dx_plane(dinp + off, dout + off, inp + off, relu ? out + off : NULL, hw, k[0], k[1],
                        k[2], k[3], overwrite);
        }
}

void nas_bn_forward_train(float *out, float *mean, float *rstd, const float *inp,
                          const float *gamma, const float *beta, float *running_mean,
                          float *running_var, int n, int c, int hw, float momentum, float eps,
                          int relu) {
    nas_bn_forward_train_part(out, mean, rstd, inp, gamma, beta, running_mean, running_var, n, c,
                              hw, momentum, eps, relu, 0, c);
}

void nas_bn_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, int n, int c, int hw,
                         float eps, int relu) {
    nas_bn_forward_eval_part(out, inp, gamma, beta, running_mean, running_var, n, c, hw, eps, relu,
                             0, c);
}

void nas_bn_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *out,
                     const float *inp, const float *mean, const float *rstd, const float *gamma,
                     int n, int c, int hw, int relu) {
    nas_bn_backward_part(dinp, dgamma, dbeta, dout, out, inp, mean, rstd, gamma, n, c, hw, relu, 0,
                         0, c);
}

// ----------------------------------------------------------------------------
// add

// One plane of y = (t0 + t1) + t2 (t2 only when three), then ReLU, each term t_k being x_k or,
// when a BN is applied on the way (bn & 1 << k), x_k * s_k + h_k: the expressions of
// bn_apply_plane and of the adds one after another, so the same bits.  The flags are constants
// at each call (ADD_CASE), so every combination is its own vector loop.
__attribute__((always_inline)) static inline void add_plane(float *y, const float *const *x,
                                                            const float *s, const float *h,
                                                            long off, long n, int bn, int three,
                                                            int relu) {
    const float *x0 = x[0] + off, *x1 = x[1] + off, *x2 = three ? x[2] + off : NULL;
    for (long i = 0; i < n; i++) {
        float t0 = (bn & 1) ? x0[i] * s[0] + h[0] : x0[i];
        float t1 = (bn & 2) ? x1[i] * s[1] + h[1] : x1[i];
        float v = t0 + t1;
        if (three) v = v + ((bn & 4) ? x2[i] * s[2] + h[2] : x2[i]);
        y[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

#define ADD_CASE(k)                                                                                \
    case k:                                                                                        \
        add_plane(out + ooff, x, s, h, off, n, (k)&7, (k)&8, (k)&16);                              \
        break;
#define ADD_CASE4(k) ADD_CASE(k) ADD_CASE(k + 1) ADD_CASE(k + 2) ADD_CASE(k + 3)

NAS_CLONES void nas_add_part(float *out, long ldo, int nt, const float *const *x,
                             const float *const *sc, const float *const *sh, int nb, int c, int hw,
                             int relu) {
    int bn = 0;
    for (int k = 0; k < nt; k++)
        bn |= sc[k] ? 1 << k : 0;
    long per = (long)c * hw, planes = (long)nb * c, n = hw;
    if (!bn) planes = ldo == per ? 1 : nb, n = ldo == per ? nb * per : per; /* whole images */
    int key = bn | (nt == 3 ? 8 : 0) | (relu ? 16 : 0);
    for (long p = 0; p < planes; p++) {
        long off = p * n, ooff = bn ? p / c * ldo + p % c * hw : p * ldo;
        int ch = bn ? (int)(p % c) : 0;
        float s[3] = {0}, h[3] = {0};
        for (int k = 0; k < nt; k++)
            if (sc[k]) s[k] = sc[k][ch], h[k] = sh[k][ch];
        switch (key) {
            ADD_CASE4(0)
            ADD_CASE4(4)
            ADD_CASE4(8)
            ADD_CASE4(12)
            ADD_CASE4(16)
            ADD_CASE4(20)
            ADD_CASE4(24)
            ADD_CASE4(28)
        }
    }
}

#undef ADD_CASE4
#undef ADD_CASE

// ----------------------------------------------------------------------------
// relu

// Cloned per ISA like BN: on the cells' unfused ReLUs (before their 1x1 and 1x7 convs) the
// baseline SSE2 loops were 1.5 % of a step.
NAS_CLONES void nas_relu_forward(float *out, const float *inp, long n) {
    for (long i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

NAS_CLONES void nas_relu_backward(float *dinp, const float *dout, const float *out, long n) {
    // forward was: out = max(inp, 0), so the gradient passes where out > 0.
    // Branch-free so that it vectorises: the mask is unpredictable.
    for (long i = 0; i < n; i++) {
        float d = dout[i];
        dinp[i] += out[i] > 0.0f ? d : 0.0f;
    }
}

NAS_CLONES void nas_relu_backward_store(float *dinp, const float *dout, const float *out, long n) {
    for (long i = 0; i < n; i++) {
        float d = dout[i];
        dinp[i] = out[i] > 0.0f ? d : 0.0f;
    }
}

// ----------------------------------------------------------------------------
// linear

// Linear layers are single GEMMs over the whole batch; they are tiny in these networks.
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

// The loss and its gradient come from one pass per row: softmax in double via log-sum-exp, so
// huge logits neither overflow nor lose the small probabilities.  The gradient is already
// divided by n because the loss is a mean over the batch.
double nas_softmax_xent(float *dlogits, const float *logits, const uint8_t *labels, int n, int k,
                        float smoothing, int *correct) {
    double total = 0.0;
    int hits = 0;
    float off = smoothing / (float)k, on = 1.0f - smoothing + off;
    for (int b = 0; b < n; b++) {
        const float *z = logits + (long)b * k;
        float *dz = dlogits ? dlogits + (long)b * k : NULL;
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
            if (dz) dz[j] = (float)((exp(logp) - q) / n);
        }
        total += loss;
    }
    if (correct) *correct = hits;
    return total / n;
}

// ----------------------------------------------------------------------------
// dropout and drop-path

// Inverted dropout: kept activations are scaled by 1/(1-p) in training so that evaluation is
// the identity.  Draws happen in element order from the caller's stream (reproducible).
void nas_drop_mask(float *mask, long n, float p, nas_rng *rng) {
    float keep = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) mask[i] = nas_rng_uniform(rng) < p ? 0.0f : keep;
}

void nas_dropout_forward(float *out, float *mask, const float *inp, long n, float p, nas_rng *rng) {
    nas_drop_mask(mask, n, p, rng);
    for (long i = 0; i < n; i++) out[i] = inp[i] * mask[i];
}

void nas_dropout_backward(float *dinp, const float *dout, const float *mask, long n) {
    for (long i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

// Drop-path removes a whole branch for an image, so one draw per image suffices.
void nas_drop_path_forward(float *out, float *mask, const float *inp, int n, long per, float p,
                           nas_rng *rng) {
    nas_drop_mask(mask, n, p, rng);
    nas_drop_path_apply(out, mask, inp, n, per);
}

void nas_drop_path_apply(float *out, const float *mask, const float *inp, int n, long per) {
    for (int b = 0; b < n; b++)
        for (long i = 0; i < per; i++) out[b * per + i] = inp[b * per + i] * mask[b];
}

void nas_drop_path_backward(float *dinp, const float *dout, const float *mask, int n, long per) {
    for (int b = 0; b < n; b++)
        for (long i = 0; i < per; i++) dinp[b * per + i] += dout[b * per + i] * mask[b];
}
