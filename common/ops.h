/*
 * ops.h - the non-convolution layers as forward/backward kernel pairs over
 * raw float arrays (NCHW), in the manner of llm.c.
 *
 * Shapes are in the comment above each pair.  Backward kernels accumulate
 * (+=) into every gradient they write.  Pooling output sides follow
 * nas_pool_out(): (side + 2*pad - k) / stride + 1.
 */
#ifndef NAS_OPS_H
#define NAS_OPS_H

#include <stdint.h>

#include "common/rng.h"

/* Output side of a k-wide window with stride and padding (may be <= 0 when
 * the window does not fit; callers validate). */
static inline int nas_pool_out(int side, int k, int stride, int pad) {
    return (side + 2 * pad - k) / stride + 1;
}

// max pool: inp (N,C,H,W) -> out (N,C,OH,OW); padding never wins the max.
void nas_maxpool_forward(float *out, const float *inp, int n, int c, int h, int w, int k,
                         int stride, int pad);
// The arg-max is recomputed from inp (first maximum wins, as in forward).
void nas_maxpool_backward(float *dinp, const float *dout, const float *inp, int n, int c, int h,
                          int w, int k, int stride, int pad);

// average pool: padding is not counted in the divisor (count_include_pad off).
void nas_avgpool_forward(float *out, const float *inp, int n, int c, int h, int w, int k,
                         int stride, int pad);
void nas_avgpool_backward(float *dinp, const float *dout, int n, int c, int h, int w, int k,
                          int stride, int pad);
// Either pool's backward (max != 0: max pool, which reads inp); with store, dinp is overwritten
// instead of added to, so a first writer of a gradient need not zero it.
void nas_pool_backward(int max, int store, float *dinp, const float *dout, const float *inp, int n,
                       int c, int h, int w, int k, int stride, int pad);
// The pools with the kernels' scratch in ws (nas_pool_workspace() floats, planned once by the
// caller) instead of allocated per call; max selects the kind as above.
size_t nas_pool_workspace(int h, int w, int k, int stride, int pad);
void nas_pool_forward_ws(int max, float *out, const float *inp, int n, int c, int h, int w, int k,
                         int stride, int pad, float *ws);
void nas_pool_backward_ws(int max, int store, float *dinp, const float *dout, const float *inp,
                          int n, int c, int h, int w, int k, int stride, int pad, float *ws);

// global average pool: inp (N,C,HW) -> out (N,C)
void nas_gap_forward(float *out, const float *inp, int n, int c, int hw);
void nas_gap_backward(float *dinp, const float *dout, int n, int c, int hw);

// batch norm, training mode: inp (N,C,HW); mean, rstd (C) are saved for the
// backward pass; running_mean/var (C) move toward the batch statistics by
// `momentum` (the running variance uses the unbiased estimate, as torch).
// relu != 0 fuses a following ReLU: out = max(bn(inp), 0).
void nas_bn_forward_train(float *out, float *mean, float *rstd, const float *inp,
                          const float *gamma, const float *beta, float *running_mean,
                          float *running_var, int n, int c, int hw, float momentum, float eps,
                          int relu);
// batch norm, eval mode: normalises with the running statistics.
void nas_bn_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, int n, int c, int hw,
                         float eps, int relu);
// backward of the training forward; out (the forward's output) is read only
// when relu is fused, as the ReLU mask.
void nas_bn_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *out,
                     const float *inp, const float *mean, const float *rstd, const float *gamma,
                     int n, int c, int hw, int relu);

// The same three kernels restricted to channels [c0, c1): channels are
// independent, so threads may split them.  overwrite != 0 makes the
// backward store dinp instead of adding to it (for its first writer).
void nas_bn_forward_train_part(float *out, float *mean, float *rstd, const float *inp,
                               const float *gamma, const float *beta, float *running_mean,
                               float *running_var, int n, int c, int hw, float momentum, float eps,
                               int relu, int c0, int c1);
void nas_bn_forward_eval_part(float *out, const float *inp, const float *gamma,
                              const float *beta, const float *running_mean,
                              const float *running_var, int n, int c, int hw, float eps, int relu,
                              int c0, int c1);
void nas_bn_backward_part(float *dinp, float *dgamma, float *dbeta, const float *dout,
                          const float *out, const float *inp, const float *mean, const float *rstd,
                          const float *gamma, int n, int c, int hw, int relu, int overwrite,
                          int c0, int c1);

// Batch norm split by images instead of channels, for threads that each own a
// range of the batch (the net runs a whole pass per range).  Training forward:
// each range's per-channel sums of x and x^2 (nas_bn_stats_part, part[2*ch]
// and part[2*ch+1] over its nb images), added over the ranges in a fixed order
// by the caller; nas_bn_finish_stats turns the totals over m = N*HW elements
// into per-channel scale and shift (and, when mean != NULL, stores mean, rstd
// and moves the running statistics: one caller only); nas_bn_apply_part
// writes out = x*scale + shift (max'ed with 0 when relu) for a range.
// Backward: nas_bn_backward_sums_part gives part[2*ch] = sum(g) and
// part[2*ch+1] = sum(g*x), g being dout masked by out > 0 when relu;
// nas_bn_finish_backward turns the totals into four coefficients per channel
// (coef, 4*C floats) and, when dgamma != NULL, adds to dgamma/dbeta (one
// caller only); nas_bn_backward_dx_part writes (overwrite) or adds dinp for a
// range.  Inputs and outputs of the _part kernels point at the range's first
// image.  With one range (the whole batch) the results are the same bits as
// the channel-split kernels'; with several, they match them to rounding (the
// ranges' double sums are added in another order), the same bits for the same
// ranges.
void nas_bn_stats_part(double *part, const float *inp, int nb, int c, int hw);
void nas_bn_finish_stats(float *scale, float *shift, float *mean, float *rstd, float *running_mean,
                         float *running_var, const double *sums, const float *gamma,
                         const float *beta, long m, int c, float momentum, float eps);
void nas_bn_apply_part(float *out, const float *inp, const float *scale, const float *shift, int nb,
                       int c, int hw, int relu);
void nas_bn_backward_sums_part(double *part, const float *dout, const float *out, const float *inp,
                               int nb, int c, int hw, int relu);
void nas_bn_finish_backward(float *coef, float *dgamma, float *dbeta, const double *sums,
                            const float *mean, const float *rstd, const float *gamma, long m,
                            int c);
void nas_bn_backward_dx_part(float *dinp, const float *dout, const float *out, const float *inp,
                             const float *coef, int nb, int c, int hw, int relu, int overwrite);

// An inference BN's per-channel coefficients, y = x * scale + shift, from the running
// statistics (the bits nas_bn_forward_eval_part applies).
void nas_bn_eval_coef(float *scale, float *shift, const float *gamma, const float *beta,
                      const float *running_mean, const float *running_var, int c, float eps);

// out = (t0 + t1) + t2 (t2 only when nt == 3; then max(., 0) when relu) over nb images of c
// planes of hw floats (out's images ldo floats apart, c * hw or more), where term k is x[k] as is
// (sc[k] == NULL) or a BN applied on the way, x[k] * sc[k][ch] + sh[k][ch] with the coefficients of
// nas_bn_finish_stats or nas_bn_eval_coef: the bits of nas_bn_apply_part then the adds one after
// another.  The net's adds, with the BNs and the inner add whose only reader they are
// (net_compile.c).
void nas_add_part(float *out, long ldo, int nt, const float *const *x, const float *const *sc,
                  const float *const *sh, int nb, int c, int hw, int relu);

// relu over n floats; the backward uses the forward's output as the mask.
void nas_relu_forward(float *out, const float *inp, long n);
void nas_relu_backward(float *dinp, const float *dout, const float *out, long n);
// The same, storing dinp (its first writer) instead of adding.
void nas_relu_backward_store(float *dinp, const float *dout, const float *out, long n);

// linear: inp (N,I), weight (O,I), bias (O) -> out (N,O); bias may be NULL.
void nas_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n,
                        int in, int out_f);
void nas_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int n, int in, int out_f);

// softmax cross-entropy, fused: logits (N,K), labels (N) in [0,K).  Writes
// dlogits (N,K) = (softmax - target) / N (overwritten, not accumulated) and
// returns the mean loss; target puts 1-eps+eps/K on the label and eps/K
// elsewhere.  *correct (may be NULL) gets the number of arg-max hits.  dlogits may be NULL
// (the loss only).
double nas_softmax_xent(float *dlogits, const float *logits, const uint8_t *labels, int n, int k,
                        float smoothing, int *correct);

// dropout: out = inp * mask, mask[i] in {0, 1/(1-p)} drawn from rng.
void nas_dropout_forward(float *out, float *mask, const float *inp, long n, float p, nas_rng *rng);
void nas_dropout_backward(float *dinp, const float *dout, const float *mask, long n);

// drop-path: one mask value per image (N) over `per` floats each.
void nas_drop_path_forward(float *out, float *mask, const float *inp, int n, long per, float p,
                           nas_rng *rng);
// The forward's two halves, the draws (in image order) and the product: the engine draws every
// mask of a pass first, in node order, and applies them by image ranges on its threads.  A mask
// of n values drawn for p (n * per for dropout, one per element) equals the forward's.
void nas_drop_mask(float *mask, long n, float p, nas_rng *rng);
void nas_drop_path_apply(float *out, const float *mask, const float *inp, int n, long per);
void nas_drop_path_backward(float *dinp, const float *dout, const float *mask, int n, long per);

#endif
