/*
 * pointwise_kern.h - the body of the pointwise (1x1) conv kernels, included by pointwise.c once
 * per instruction set.  The includer defines the vector type VT of V lanes (1, 8 or 16), LD/ST,
 * the masked tails LDN/STN (the first n lanes; loads zero the rest), SET1, ZERO, ADD,
 * optionally RED4X4 (see pw_red4x4 in pointwise.c),
 * FMA(a, b, c) = a * b + c rounded once, the function attribute KATTR and the name suffix FN(x);
 * the file undefines them at its end.
 *
 * Both products read the images as they lie (NCHW: each channel's plane a contiguous row of
 * HW floats), so nothing is packed:
 * - pw_mm: out (M, HW) = A (M, K) . X (K, HW), stored or added to out.  pw_mmt is its form
 *   for one-row kernels (conv_cols.c): X's row q = c*taps + t is row c of a buffer read t
 *   columns further on.  The forward has
 *   A = the weights, X = the image; the input gradient A = the weights transposed (strides
 *   swapped), X = the output gradient.  Each output element sums its K products in order from
 *   zero, then is stored or added: the same operations at every V, so every level computes the
 *   bits of the reference loops.
 * - pw_dw: dW (OC, C) += sum over images and pixels of dout[o][p] * inp[c][p].  Each pair's sum
 *   runs in NL = 16 lanes, lane l taking the pixels p = l (mod 16) in order (V = 8 holds a lane
 *   set in two vectors, V = 1 in sixteen), over a group of images, then the lanes are summed in
 *   a fixed tree: the same bits at every level.
 */

#define NL 16       /* lanes of a weight-gradient sum, at every level */
#define NW (NL / V) /* vectors holding them */
#if V == 16
#define PW_ACC 16 /* accumulators of a pw_mm block (of 32 registers; AVX2 has 16) */
#define DWR    4  /* weight-gradient block: output channels x input channels */
#define DWC    4
#elif V == 8
#define PW_ACC 12
#define DWR    2
#define DWC    2
#else
#define PW_ACC 16
#define DWR    1
#define DWC    1
#endif

// One block of pw_mm: mr (<= 8) rows of out by nv (<= 4, mr * nv <= PW_ACC) vectors of pixels, the
// last holding tail pixels when tail != 0.  Always called with constant mr and nv, so that the
// accumulators live in registers.
KATTR __attribute__((always_inline)) static inline void
FN(pw_blk)(int mr, int nv, int tail, float *out, size_t ldo, const float *a, size_t sam, size_t sak,
           const float *x, size_t ldx, int k, int taps, int add) {
    VT acc[8][4];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nv; j++)
            acc[r][j] = ZERO();
    for (int c = 0, q = 0; c < k; c++)
        for (int t = 0; t < taps; t++, q++) {
            const float *xq = x + (size_t)c * ldx + t;
            VT xv[4];
            for (int j = 0; j < nv; j++)
                xv[j] = tail && j == nv - 1 ? LDN(xq + j * V, tail) : LD(xq + j * V);
            for (int r = 0; r < mr; r++) {
                VT av = SET1(a[r * sam + q * sak]);
                for (int j = 0; j < nv; j++)
                    acc[r][j] = FMA(av, xv[j], acc[r][j]);
            }
        }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nv; j++) {
            float *o = out + r * ldo + j * V;
            if (tail && j == nv - 1)
                STN(o, add ? ADD(LDN(o, tail), acc[r][j]) : acc[r][j], tail);
            else
                ST(o, add ? ADD(LD(o), acc[r][j]) : acc[r][j]);
        }
}

// Rows [0, m) of a column of NV (a constant) vectors: blocks of as many rows as PW_ACC
// accumulators allow (at most 8), then single rows.
#define PW_COL(NV)                                                                                 \
    do {                                                                                           \
        enum { BR = PW_ACC / (NV) > 8 ? 8 : PW_ACC / (NV) };                                       \
        int r = 0;                                                                                 \
        for (; r + BR <= m; r += BR)                                                               \
            FN(pw_blk)                                                                             \
        (BR, NV, tail, out + r * ldo + p0, ldo, a + r * sam, sam, sak, x + p0, ldx, k, taps, add); \
        for (; r < m; r++)                                                                         \
            FN(pw_blk)                                                                             \
        (1, NV, tail, out + r * ldo + p0, ldo, a + r * sam, sam, sak, x + p0, ldx, k, taps, add);  \
    } while (0)

// out (m, np) (+)= A (m, k*taps) . X (k*taps, np); A's element (i, q) at a[i*sam + q*sak], X's
// row q = c*taps + t at x + c*ldx + t (taps > 1: the taps of a one-row kernel, read at column
// offsets of one buffer row).  Inlined into pw_mm (taps 1, folded) and pw_mmt.
KATTR __attribute__((always_inline)) static inline void
FN(pw_mm_body)(float *out, size_t ldo, const float *a, size_t sam, size_t sak, const float *x,
               size_t ldx, int m, int k, int taps, int np, int add) {
    int full = np / (4 * V) * (4 * V), p0 = 0, tail = 0;
    for (; p0 < full; p0 += 4 * V)
        PW_COL(4);
    if (full == np) return;
    int rem = np - full, nv = (rem + V - 1) / V;
    tail = rem % V;
    if (nv == 1)
        PW_COL(1);
    else if (nv == 2)
        PW_COL(2);
    else if (nv == 3)
        PW_COL(3);
    else
        PW_COL(4);
}
#undef PW_COL

KATTR static void FN(pw_mm)(float *out, size_t ldo, const float *a, size_t sam, size_t sak,
                            const float *x, size_t ldx, int m, int k, int np, int add) {
    FN(pw_mm_body)(out, ldo, a, sam, sak, x, ldx, m, k, 1, np, add);
}

KATTR static void FN(pw_mmt)(float *out, size_t ldo, const float *a, size_t sam, size_t sak,
                             const float *x, size_t ldx, int m, int k, int taps, int np, int add) {
    FN(pw_mm_body)(out, ldo, a, sam, sak, x, ldx, m, k, taps, np, add);
}

// The lanes [l0, l0 + V) of a 16-pixel run starting at p whose first n pixels are real.
KATTR __attribute__((always_inline)) static inline VT FN(pw_lane_ld)(const float *p, int n) {
    return n >= V ? LD(p) : n <= 0 ? ZERO() : LDN(p, n);
}

// One block of pw_dw: nr (<= DWR) output channels by nc (<= DWC) input channels over images
// [0, nimg) of a group; adds each pair's tree-summed lanes into dw.
KATTR __attribute__((always_inline)) static inline void
FN(pw_dwblk)(int nr, int nc, float *dw, size_t ldw, const float *dout, const float *inp, int hw,
             size_t img_out, size_t img_in, int nimg) {
    VT acc[DWR][DWC][NW];
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++)
            for (int w = 0; w < NW; w++)
                acc[r][c][w] = ZERO();
    int full = hw / NL * NL;
    for (int b = 0; b < nimg; b++) {
        const float *d = dout + b * img_out, *x = inp + b * img_in;
        for (int p = 0; p < full; p += NL) {
            VT dv[DWR][NW], xv[DWC][NW];
            for (int w = 0; w < NW; w++) {
                for (int r = 0; r < nr; r++)
                    dv[r][w] = LD(d + (size_t)r * hw + p + w * V);
                for (int c = 0; c < nc; c++)
                    xv[c][w] = LD(x + (size_t)c * hw + p + w * V);
            }
            for (int r = 0; r < nr; r++)
                for (int c = 0; c < nc; c++)
                    for (int w = 0; w < NW; w++)
                        acc[r][c][w] = FMA(dv[r][w], xv[c][w], acc[r][c][w]);
        }
        if (full < hw) {
            VT dv[DWR][NW], xv[DWC][NW];
            for (int w = 0; w < NW; w++) {
                int n = hw - full - w * V;
                for (int r = 0; r < nr; r++)
                    dv[r][w] = FN(pw_lane_ld)(d + (size_t)r * hw + full + w * V, n);
                for (int c = 0; c < nc; c++)
                    xv[c][w] = FN(pw_lane_ld)(x + (size_t)c * hw + full + w * V, n);
            }
            for (int r = 0; r < nr; r++)
                for (int c = 0; c < nc; c++)
                    for (int w = 0; w < NW; w++)
                        acc[r][c][w] = FMA(dv[r][w], xv[c][w], acc[r][c][w]);
        }
    }
#ifdef RED4X4
    if (nr == 4 && nc == 4) {
        VT v[16];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                v[c * 4 + r] = acc[r][c][0];
        RED4X4(v, dw, ldw);
        return;
    }
#endif
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++) {
            float t[NL];
            for (int w = 0; w < NW; w++)
                ST(t + w * V, acc[r][c][w]);
            dw[r * ldw + c] += pw_tree16(t);
        }
}

// dW (oc, c) += the weight gradient of images [0, n), their sums taken per group of g images.
KATTR static void FN(pw_dw)(float *dw, const float *dout, const float *inp, int n, int oc, int c,
                            int hw, int g) {
    size_t img_out = (size_t)oc * hw, img_in = (size_t)c * hw;
    for (int b0 = 0; b0 < n; b0 += g) {
        int nimg = n - b0 < g ? n - b0 : g;
        const float *d = dout + b0 * img_out, *x = inp + b0 * img_in;
        for (int o0 = 0; o0 < oc; o0 += DWR) {
            int nr = oc - o0 < DWR ? oc - o0 : DWR;
            for (int c0 = 0; c0 < c; c0 += DWC) {
                int nc = c - c0 < DWC ? c - c0 : DWC;
                float *w = dw + (size_t)o0 * c + c0;
                const float *dd = d + (size_t)o0 * hw, *xx = x + (size_t)c0 * hw;
                if (nr == DWR && nc == DWC)
                    FN(pw_dwblk)(DWR, DWC, w, c, dd, xx, hw, img_out, img_in, nimg);
                else
                    FN(pw_dwblk)(nr, nc, w, c, dd, xx, hw, img_out, img_in, nimg);
            }
        }
    }
}

#undef NL
#undef NW
#undef DWR
#undef DWC
#undef PW_ACC
#undef KATTR
#undef FN
#undef VT
#undef V
#undef LD
#undef LDN
#undef ST
#undef STN
#undef SET1
#undef ZERO
#undef ADD
#undef FMA
#undef RED4X4
