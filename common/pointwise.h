/*
 * pointwise.h - pointwise (1x1, stride 1, unpadded, one group) convolutions, forward and
 * backward, as small products over the images as they lie (NCHW), hand-vectorized for AVX-512
 * and AVX2 with a scalar twin.  The cells' pointwise convs have 8-64 channels on 4x4 to 28x28
 * planes: as one GEMM call per image, each paid the library's per-call work for a product of a
 * few thousand multiply-adds.
 * conv.c dispatches the shapes nas__pw_ok() takes; contracts are those of conv.h (backward
 * kernels add into dweight and dbias; dinp is added to, or overwritten with store).
 *
 * isa is a NAS_SIMD_* level (common/simd.h), normally nas_simd_best(); a level the CPU lacks
 * falls back to the best it has, and NAS__PW_REF runs the plain loops the tests compare with.
 * Forward and input gradient: every level computes the bits of the reference loops.  Weight
 * gradient: every level computes the same bits (16 fixed lanes summed in a fixed tree), close
 * to the reference's.
 */
#ifndef NAS_POINTWISE_H
#define NAS_POINTWISE_H

#include "common/conv.h"

enum { NAS__PW_REF = -1 };

/* Whether s is a pointwise conv these kernels take. */
int nas__pw_ok(const nas_conv_shape *s);

void nas__pw_forward(int isa, float *out, const float *inp, const float *weight, const float *bias,
                     const nas_conv_shape *s);
void nas__pw_backward(int isa, float *dinp, int store, float *dweight, float *dbias,
                      const float *dout, const float *inp, const float *weight,
                      const nas_conv_shape *s);

/* The products themselves, for the one-row convs of conv_cols.c (same levels, same bits as
 * above; isa NAS__PW_REF runs the reference loops).
 * nas__pw_mmt: out (m, np) (+, add) = A (m, k*taps) . X, A's element (i, q) at a[i*sam + q*sak]
 * and X's row q = c*taps + t (c < k, t < taps) at x + c*ldx + t; each element sums its products
 * from zero in the order of q.  nas__pw_dw: dw (oc, c) += dout (oc, hw) . inp (c, hw)^T, both
 * with rows of hw floats, each sum in pw_dw's fixed 16 lanes and tree. */
void nas__pw_mmt(int isa, float *out, size_t ldo, const float *a, size_t sam, size_t sak,
                 const float *x, size_t ldx, int m, int k, int taps, int np, int add);
void nas__pw_dw(int isa, float *dw, const float *dout, const float *inp, int oc, int c, int hw);

#endif
