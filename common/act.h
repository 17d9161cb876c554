/*
 * act.h - the smooth activations and the channel gate that MBConv blocks
 * need (EfficientNet's swish and squeeze-and-excitation), as forward/backward
 * kernel pairs over raw NCHW floats like common/ops.h.
 *
 * Backward kernels accumulate (+=) into every gradient they write.
 */
#ifndef NAS_ACT_H
#define NAS_ACT_H

// SiLU (swish): out = x * sigmoid(x) over n floats.  The backward reads the
// forward's input: d/dx = s * (1 + x * (1 - s)) with s = sigmoid(x).
void nas_silu_forward(float *out, const float *inp, long n);
void nas_silu_backward(float *dinp, const float *dout, const float *inp, long n);

// Logistic sigmoid over n floats; the backward reads the forward's output.
void nas_sigmoid_forward(float *out, const float *inp, long n);
void nas_sigmoid_backward(float *dinp, const float *dout, const float *out, long n);

// Channel scale: x (N,C,HW) times a per-image, per-channel gate s (N,C):
// out[b,c,i] = x[b,c,i] * s[b,c].  The backward writes both gradients
// (dx += dout * s, ds += sum over HW of dout * x); either may be NULL.
void nas_chscale_forward(float *out, const float *x, const float *s, int n, int c, int hw);
void nas_chscale_backward(float *dx, float *ds, const float *dout, const float *x, const float *s,
                          int n, int c, int hw);

#endif
