/*
 * conv_internal.h - helpers shared by conv.c and conv_rows.c; not part of
 * the public API (see conv.h).
 */
#ifndef NAS_CONV_INTERNAL_H
#define NAS_CONV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/conv.h"

/* One image's bias, out (oc, ohw) += bias[o] row by row, and its gradient, dbias[o] += the sum of
 * dout's row o taken in order from zero: every conv path (and the pointwise kernels) adds its
 * bias and sums its gradient this one way. */
void nas__conv_bias_add(float *out, const float *bias, int oc, size_t ohw);
void nas__conv_bias_grad(float *dbias, const float *dout, int oc, size_t ohw);

/* Output columns [*lo, *hi) whose input column ox*stride + ix0 lies inside [0, w). */
void nas__conv_valid_cols(int ix0, int stride, int w, int ow, int *lo, int *hi);
/* Zero columns [0, lo) and [hi, ow) of rows [ylo, yhi) of a row-major (., ow) block. */
void nas__conv_zero_pad_cols(float *row, int ow, int ylo, int yhi, int lo, int hi);
/* img (c, H, W) += the column matrix col (c*KH*KW rows of ldc floats) of s, clobbering col. */
void nas__conv_col2im_add_ld(float *img, float *col, size_t ldc, int c, const nas_conv_shape *s);

/* The im2col variants: the row loops (every conv); for convs with a narrow strided output
 * (OW < 12) the table gather, plain or with AVX2 gathers; and for those the transposed columns
 * (OH*OW, C*KH*KW) the backward's weight gradient reads, plain or AVX2.
 * nas__conv_im2col_variant writes the columns of c channels of img through the given variant
 * (the transposed ones need c == C/groups), using tab (nas__conv_table_ints(s) int32 of
 * scratch) for the table; it returns 0 without writing when s has no table (or is too wide
 * for the permutes) or the CPU lacks AVX2 (AVX-512), else 1.  For tests: the conv dispatch picks
 * its own. */
enum {
    NAS__IM2COL_LOOPS,
    NAS__IM2COL_TABLE_PLAIN,
    NAS__IM2COL_TABLE_AVX2,
    NAS__IM2COLT_TABLE_PLAIN,
    NAS__IM2COLT_TABLE_AVX2,
    NAS__IM2COL_PERM_AVX512,  /* AVX-512 permutes of whole rows (OW <= 16, W <= 32, KW <= 16) */
    NAS__IM2COLT_PERM_AVX512, /* transposed, permutes (W <= 16, KH <= 4, KH*KW*OW <= 64) */
};
int nas__conv_im2col_variant(float *col, const float *img, int c, const nas_conv_shape *s,
                             int variant, int32_t *tab);
size_t nas__conv_table_ints(const nas_conv_shape *s);
/* img (c, H, W) += the columns col of s: the row loops (perm == 0, clobbering col) or, for the
 * convs the forward's permutes take, the AVX-512 inverse permutes (perm != 0; returns 0 without
 * writing when s does not qualify or the CPU lacks AVX-512).  For tests, as above. */
int nas__conv_col2im_variant(float *img, float *col, int c, const nas_conv_shape *s, int perm);

/* The AVX-512 permute kernels of conv_perm.c for the narrow strided convs: im2col (col, rows
 * of OH*OW), its transpose colT (OH*OW, C*KH*KW) of one group, and col2im adding into img
 * (col left intact).  conv.c checks the shape conditions and nas__conv_have_avx512() (0 in
 * builds without the intrinsics, whose kernels are stubs) before calling them. */
int nas__conv_have_avx512(void);
void nas__conv_im2col_perm(float *col, const float *img, int c, const nas_conv_shape *s);
void nas__conv_im2colt_perm(float *colt, const float *img, const nas_conv_shape *s);
void nas__conv_col2im_perm(float *img, const float *col, int c, const nas_conv_shape *s);

/* Whether s takes the kernel-row path, and the workspace floats it then needs. */
int nas__conv_rows_ok(const nas_conv_shape *s);
size_t nas__conv_rows_workspace(const nas_conv_shape *s);
/* nas_conv2d_forward and conv backward (store: overwrite dinp) on that path. */
void nas__conv_rows_forward(float *out, const float *inp, const float *weight, const float *bias,
                            const nas_conv_shape *s, float *ws);
void nas__conv_rows_backward(float *dinp, int store, float *dweight, float *dbias,
                             const float *dout, const float *inp, const float *weight,
                             const nas_conv_shape *s, float *ws);

/* The one-row path of conv_cols.c (1xK kernels, stride 1: see there): whether s takes it, its
 * workspace floats, and its forward and backward (store: overwrite dinp) at the pointwise.h
 * level isa (normally nas_simd_best(); every level computes the same bits, NAS__PW_REF the
 * reference loops' order). */
int nas__conv_cols_ok(const nas_conv_shape *s);
size_t nas__conv_cols_workspace(const nas_conv_shape *s);
void nas__conv_cols_forward(int isa, float *out, const float *inp, const float *weight,
                            const float *bias, const nas_conv_shape *s, float *ws);
void nas__conv_cols_backward(int isa, float *dinp, int store, float *dweight, float *dbias,
                             const float *dout, const float *inp, const float *weight,
                             const nas_conv_shape *s, float *ws);

#endif
