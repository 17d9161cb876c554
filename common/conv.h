/*
 * conv.h - 2-D convolution kernels (NCHW, float32), forward/backward pairs.
 *
 * The optimized path works per image and group.  Stride-1 convs (and
 * stride-2 ones with outputs at least 12 wide) with 4+ input channels per
 * group skip im2col: each kernel row is one GEMM at an offset into a buffer
 * holding only the KW column shifts of the input, and a stride-1 conv's input
 * gradient is the flipped-weight conv of dY done the same way.  Other convs
 * lower to one GEMM through im2col (a table gather for narrow strided
 * outputs, whose weight gradient reads the transposed columns, gathered the
 * same way).  A conv whose kernel is one row high (1xK, stride 1, no row padding, 4-128
 * channels per group: the 1x7 of conv1x7_7x1) needs neither: each channel is copied once into
 * rows spaced by zeros (the padding), and the conv is one small product of pointwise.h over
 * the (channel, tap) pairs reading that buffer at the taps' column offsets, as are its input
 * gradient (of dY spaced the same way, the weights flipped) and weight gradient (conv_cols.c).
 * A 1x1 stride-1 unpadded conv of up to 64 channels (128 on planes of 14x14 and
 * more) runs the small products of pointwise.h on the images as they lie (wider ones go
 * straight to the GEMM), and a
 * depthwise conv, groups == C == OC, runs the vector loops of plane.h.  Every optimized
 * kernel keeps a _naive direct-loop twin that the tests compare against.
 * Backward kernels accumulate (+=) into dinp, dweight and dbias.
 */
#ifndef NAS_CONV_H
#define NAS_CONV_H

#include <stddef.h>

typedef struct nas_conv_shape {
    int n, c, h, w;             /* input batch, channels, height, width */
    int oc, kh, kw;             /* output channels and kernel size */
    int stride, dil, groups;
    int pad_h, pad_w;           /* zero rows above and below, zero columns left and right */
    int oh, ow;                 /* output size, filled by nas_conv_shape_init() */
    int relu;                   /* depthwise only: a ReLU fused in front (0 from init): the
                                   conv reads max(inp, 0), and the input gradient it writes
                                   is masked by inp > 0, so the ReLU needs no pass of its own */
} nas_conv_shape;

/* Fill s, padded by pad on all four sides, and compute the output size.  Returns NAS_OK, or
 * NAS_EINVAL with a message when a size is non-positive, groups does not divide the channel
 * counts, or the dilated kernel does not fit the padded input. */
int nas_conv_shape_init(nas_conv_shape *s, int n, int c, int h, int w, int oc, int kh, int kw,
                        int stride, int pad, int dil, int groups, char *err);
/* The same with a padding of its own for rows (pad_h) and columns (pad_w): a 1x7 conv that
 * keeps its input's size pads only columns, a 7x1 only rows. */
int nas_conv_shape_init_hw(nas_conv_shape *s, int n, int c, int h, int w, int oc, int kh, int kw,
                           int stride, int pad_h, int pad_w, int dil, int groups, char *err);

/* Floats of scratch nas_conv2d_forward/backward need (0 when none). */
size_t nas_conv_workspace(const nas_conv_shape *s);

/* out (N,OC,OH,OW) = conv(inp (N,C,H,W), weight (OC,C/G,KH,KW)) + bias (OC)
 * bias may be NULL.  ws has nas_conv_workspace(s) floats. */
void nas_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const nas_conv_shape *s, float *ws);
/* dinp (may be NULL), dweight, dbias (may be NULL) += gradients given
 * dout (N,OC,OH,OW). */
void nas_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, const nas_conv_shape *s, float *ws);
/* As nas_conv2d_backward, but dinp (when not NULL) is overwritten with the input gradient
 * instead of added to, so a caller whose dinp holds nothing yet need not zero it first
 * (dweight and dbias still accumulate). */
void nas_conv2d_backward_store(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const nas_conv_shape *s,
                               float *ws);

void nas_conv2d_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                              const nas_conv_shape *s);
void nas_conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const nas_conv_shape *s);

/* im2col of one image group: col (C*KH*KW, OH*OW) from img (C,H,W), with
 * C the channels of the group; and its adjoint, which adds into img. */
void nas_im2col(float *col, const float *img, int c, const nas_conv_shape *s);
void nas_col2im_add(float *img, const float *col, int c, const nas_conv_shape *s);

#endif
