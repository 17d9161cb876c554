/*
 * plane.h - the per-plane kernels of NAS cells: depthwise convolution (any
 * kernel, stride and dilation) and max/average pooling, forward and backward,
 * hand-vectorized for AVX-512 and AVX2 with a scalar twin.  conv.c and ops.c
 * dispatch to them; shapes and accumulation rules are those of conv.h and
 * ops.h (backward kernels add into their gradients; dinp of the depthwise
 * backward is overwritten instead when store is set).
 *
 * isa is a NAS_SIMD_* level (common/simd.h), normally nas_simd_best(); a level
 * the CPU lacks falls back to the best it has.  NAS__PLANE_REF runs the plain
 * reference loops instead, which the tests compare against.  Every SIMD level
 * computes the same bits; the forwards also match the reference bit for bit.
 */
#ifndef NAS_PLANE_H
#define NAS_PLANE_H

#include "common/conv.h"

enum { NAS__PLANE_REF = -1 };
/* OR'ed into the isa of a depthwise or pool kernel, these force its layout (the tests run both
 * on one shape): vectors along each plane's rows, or planes interleaved one per lane.  Without,
 * the kernel picks by the output's width. */
enum { NAS__PLANE_ROWS = 0x100, NAS__PLANE_LANES = 0x200, NAS__PLANE_LAYOUT = 0x300 };
enum { NAS__POOL_MAX, NAS__POOL_AVG };

/* Every kernel's scratch is ws, of at least the floats nas__dw_workspace() or
 * nas__pool_workspace() give (they size it for the best level), or allocated per call when ws is
 * NULL (a level forced by the tests, or a caller without a plan). */

/* Depthwise conv: groups == C == OC (see conv.h). */
void nas__dw_forward(int isa, float *out, const float *inp, const float *weight, const float *bias,
                     const nas_conv_shape *s, float *ws);
void nas__dw_backward(int isa, float *dinp, int store, float *dweight, float *dbias,
                      const float *dout, const float *inp, const float *weight,
                      const nas_conv_shape *s, float *ws);
size_t nas__dw_workspace(const nas_conv_shape *s);

/* Pooling of kind NAS__POOL_MAX or NAS__POOL_AVG, k x k windows (see ops.h); inp is only read
 * by the max backward; the backward backward adds into dinp or, with store, overwrites it. */
void nas__pool_forward(int isa, int kind, float *out, const float *inp, int n, int c, int h, int w,
                       int k, int stride, int pad, float *ws);
void nas__pool_backward(int isa, int kind, float *dinp, int store, const float *dout,
                        const float *inp, int n, int c, int h, int w, int k, int stride, int pad,
                        float *ws);
size_t nas__pool_workspace(int h, int w, int k, int stride, int pad);

#endif
