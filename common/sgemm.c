/*
 * sgemm.c - blocked single-precision GEMM with AVX-512, AVX2 + FMA and plain C micro-kernels
 * (see sgemm.h).
 *
 * The loop nest is the usual one for blocked GEMM: the depth K in blocks of KC, M in blocks of MC
 * rows, N in panels of NR columns; the micro-kernel multiplies MR rows of op(A) by KC x NR of
 * op(B) into an MR x NR tile held in registers.  Both operands are read in place where they can
 * be: op(A) through row and depth strides (broadcast one element at a time), an untransposed B as
 * rows of NR floats at stride ldb.  The engine's convs multiply a few output channels (M = 8..64)
 * by wide column matrices, where packing either operand cost as much as the products (packing A
 * showed at 7 % of a ResNet-20 step).  A transposed B is copied into a zero-padded panel, as is
 * the last panel narrower than NR on paths without masked loads; on AVX-512, C = A . B^T with A
 * untransposed runs on a dot-product kernel instead (below), or at small depths on B transposed
 * in registers.
 *
 * The first depth block writes C = alpha * acc + beta * C (C unread when beta is 0), later ones
 * C = alpha * acc + C, each as a rounded product then a rounded sum, and edge tiles (past M or
 * N) are computed whole into a scratch tile and copied out with the same arithmetic, so every
 * element of C sees the same operations in the same order whether or not it lies on an edge.
 */
#include "common/sgemm.h"

#include <string.h>

#include "common/simd.h"

#if NAS_SIMD_INTRIN
#include <immintrin.h>
#endif

/* KC x NR of B (24 KB at NR = 32) fits L1 beside the A rows; MC x KC of A (48 KB) fits L2.  MC
 * is a multiple of every MR (8, 4). */
enum { KC = 192, MC = 64, MR_MAX = 8, NR_MAX = 32 };

/* Like OpenBLAS, which they stand in for, the kernels and the packing are not instrumented by
 * AddressSanitizer: instrumented, the sanitizer build's training tests ran 25 % longer.  They
 * read only within the matrices the caller describes (the tests check every path against the
 * naive GEMM, and C's row gaps untouched). */
#if defined(__SANITIZE_ADDRESS__)
#define KERN_ATTR __attribute__((no_sanitize_address))
#else
#define KERN_ATTR
#endif

/* How a tile's products combine with C. */
enum { SET, BETA, ACC };

/* Where the kernels read op(A), in place: element (r, p) of a tile is a[ro[r] + p * ps] (rows
 * past the edge of A repeat its last row).  Packing A into panels cost as much as the products at
 * the 7x7 convs' 49 columns. */
typedef struct a_tile {
    const float *a;
    long ro[MR_MAX], ps;
} a_tile;

/* The kernel multiplies kc steps of an A tile by a B panel whose rows lie bs floats apart, of
 * which the first `cols` columns are read (the rest count as zeros; only kernels whose
 * path_desc says tail_in_place are given cols < nr). */
typedef void (*kern_fn)(int kc, const a_tile *at, const float *bp, long bs, int cols, float *c,
                        long ldc, float alpha, float beta, int mode);

// One element of the update, in scalar arithmetic: the vector kernels do the same two roundings.
static inline float update1(float acc, float cold, float alpha, float beta, int mode) {
    float t = alpha * acc;
    if (mode == SET) return t;
    if (mode == BETA) return t + beta * cold;
    return t + cold;
}

// The plain C kernel: a 4 x 8 tile, a product and a sum per step (no fused multiply-add).
enum { S_MR = 4, S_NR = 8 };
KERN_ATTR static void kern_scalar(int kc, const a_tile *at, const float *bp, long bs, int cols,
                                  float *c, long ldc, float alpha, float beta, int mode) {
    (void)cols;
    float acc[S_MR][S_NR] = {{0}};
    const float *ap = at->a;
    for (int p = 0; p < kc; p++, ap += at->ps, bp += bs)
        for (int r = 0; r < S_MR; r++)
            for (int j = 0; j < S_NR; j++)
                acc[r][j] += ap[at->ro[r]] * bp[j];
    for (int r = 0; r < S_MR; r++)
        for (int j = 0; j < S_NR; j++) {
            float *cj = &c[r * ldc + j];
            *cj = update1(acc[r][j], mode == SET ? 0.0f : *cj, alpha, beta, mode);
        }
}

#if NAS_SIMD_INTRIN
// AVX2 + FMA: a 4 x 24 tile in 12 accumulators, three B loads and four broadcasts per step.
enum { A2_MR = 4, A2_NR = 24 };
KERN_ATTR __attribute__((target("avx2,fma"))) static void
kern_avx2(int kc, const a_tile *at, const float *bp, long bs, int cols, float *c, long ldc,
          float alpha, float beta, int mode) {
    (void)cols;
    __m256 acc[A2_MR][3];
    for (int r = 0; r < A2_MR; r++)
        acc[r][0] = acc[r][1] = acc[r][2] = _mm256_setzero_ps();
    const float *ap = at->a;
    long ro[A2_MR], ps = at->ps;
    for (int r = 0; r < A2_MR; r++)
        ro[r] = at->ro[r];
    for (int p = 0; p < kc; p++, ap += ps, bp += bs) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8),
               b2 = _mm256_loadu_ps(bp + 16);
#pragma GCC unroll 4
        for (int r = 0; r < A2_MR; r++) {
            __m256 a = _mm256_broadcast_ss(ap + ro[r]);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(a, b2, acc[r][2]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 4
    for (int r = 0; r < A2_MR; r++)
        for (int q = 0; q < 3; q++) {
            float *cq = c + r * ldc + 8 * q;
            __m256 t = _mm256_mul_ps(va, acc[r][q]);
            if (mode == BETA) t = _mm256_add_ps(t, _mm256_mul_ps(vb, _mm256_loadu_ps(cq)));
            if (mode == ACC) t = _mm256_add_ps(t, _mm256_loadu_ps(cq));
            _mm256_storeu_ps(cq, t);
        }
}

// AVX-512: an 8 x 32 tile in 16 accumulators, two B loads and eight broadcasts per step.
enum { A5_MR = 8, A5_NR = 32 };
KERN_ATTR __attribute__((target("avx512f"))) static void
kern_avx512(int kc, const a_tile *at, const float *bp, long bs, int cols, float *c, long ldc,
            float alpha, float beta, int mode) {
    // Named registers, not arrays: with arrays GCC stored the accumulators every step.
    const float *ap = at->a;
    long ps = at->ps, o0 = at->ro[0], o1 = at->ro[1], o2 = at->ro[2], o3 = at->ro[3],
         o4 = at->ro[4], o5 = at->ro[5], o6 = at->ro[6], o7 = at->ro[7];
    __m512 z = _mm512_setzero_ps(), c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z,
           c31 = z, c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
    // A last panel narrower than 32 columns is read in place too, through masks (zeros beyond).
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1u);
    __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1u);
#define A5_ROW(r)                                                                                  \
    do {                                                                                           \
        __m512 a = _mm512_set1_ps(ap[o##r]);                                                       \
        c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                                                 \
        c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                                                 \
    } while (0)
    for (int p = 0; p < kc; p++, ap += ps, bp += bs) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, bp), b1 = _mm512_maskz_loadu_ps(m1, bp + 16);
        A5_ROW(0);
        A5_ROW(1);
        A5_ROW(2);
        A5_ROW(3);
        A5_ROW(4);
        A5_ROW(5);
        A5_ROW(6);
        A5_ROW(7);
    }
#undef A5_ROW
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#define A5_OUT(r, q)                                                                               \
    do {                                                                                           \
        float *cq = c + r * ldc + 16 * q;                                                          \
        __m512 t = _mm512_mul_ps(va, c##r##q);                                                     \
        if (mode == BETA) t = _mm512_add_ps(t, _mm512_mul_ps(vb, _mm512_loadu_ps(cq)));            \
        if (mode == ACC) t = _mm512_add_ps(t, _mm512_loadu_ps(cq));                                \
        _mm512_storeu_ps(cq, t);                                                                   \
    } while (0)
    A5_OUT(0, 0);
    A5_OUT(0, 1);
    A5_OUT(1, 0);
    A5_OUT(1, 1);
    A5_OUT(2, 0);
    A5_OUT(2, 1);
    A5_OUT(3, 0);
    A5_OUT(3, 1);
    A5_OUT(4, 0);
    A5_OUT(4, 1);
    A5_OUT(5, 0);
    A5_OUT(5, 1);
    A5_OUT(6, 0);
    A5_OUT(6, 1);
    A5_OUT(7, 0);
    A5_OUT(7, 1);
#undef A5_OUT
}

/* With B transposed (C = A . B^T: the weight gradients, dW += dY . cols^T), rows of A and rows of
 * B both run along the depth, so each element of C is a dot product of two contiguous rows.  This
 * kernel takes 4 rows of A and 4 of B straight from the operands, nothing packed, keeps the 16
 * dot products in 16 vector accumulators over the whole depth (a masked load for its last < 16
 * floats), and folds them into one vector of 16 sums at the end.  Packing B instead (the path
 * above) cost as much as the products at the convs' 16-64 output channels. */
enum { D_MR = 4, D_NR = 4 };

/* The fold at the end of the dot kernel pairs the 16 accumulators by quarters, then by halves of
 * quarters: lane 4q + j of its result holds the sum of the lanes of the accumulator of tile row
 * DOT_ROW_AT[q] and column j, the rows coming out in the order 0, 2, 1, 3. */
static const int DOT_ROW_AT[4] = {0, 2, 1, 3};

#define FOLD_Q(x, y, lo, hi)                                                                       \
    _mm512_add_ps(_mm512_shuffle_f32x4(x, y, lo), _mm512_shuffle_f32x4(x, y, hi))
#define FOLD_L(x, y) _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y))

/* The 4 x 4 tile c (row stride ldc) of sums over p < k of a_r[p] * b_j[p], combined with c as
 * mode says, with the two roundings of update1(). */
KERN_ATTR __attribute__((target("avx512f"))) static void
kern_dot_avx512(int k, const float *const ar[D_MR], const float *const br[D_NR], float *c,
                long ldc, float alpha, float beta, int mode) {
    // Named registers throughout: GCC kept arrays of vectors on the stack.
    const float *a0 = ar[0], *a1 = ar[1], *a2 = ar[2], *a3 = ar[3];
    const float *b0 = br[0], *b1 = br[1], *b2 = br[2], *b3 = br[3];
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0,
           c8 = c0, c9 = c0, c10 = c0, c11 = c0, c12 = c0, c13 = c0, c14 = c0, c15 = c0;
#define DOT_STEP(LOAD)                                                                             \
    do {                                                                                           \
        __m512 va0 = LOAD(a0 + p), va1 = LOAD(a1 + p), va2 = LOAD(a2 + p), va3 = LOAD(a3 + p);     \
        __m512 vb0 = LOAD(b0 + p), vb1 = LOAD(b1 + p), vb2 = LOAD(b2 + p), vb3 = LOAD(b3 + p);     \
        c0 = _mm512_fmadd_ps(va0, vb0, c0), c1 = _mm512_fmadd_ps(va0, vb1, c1);                   \
        c2 = _mm512_fmadd_ps(va0, vb2, c2), c3 = _mm512_fmadd_ps(va0, vb3, c3);                   \
        c4 = _mm512_fmadd_ps(va1, vb0, c4), c5 = _mm512_fmadd_ps(va1, vb1, c5);                   \
        c6 = _mm512_fmadd_ps(va1, vb2, c6), c7 = _mm512_fmadd_ps(va1, vb3, c7);                   \
        c8 = _mm512_fmadd_ps(va2, vb0, c8), c9 = _mm512_fmadd_ps(va2, vb1, c9);                   \
        c10 = _mm512_fmadd_ps(va2, vb2, c10), c11 = _mm512_fmadd_ps(va2, vb3, c11);               \
        c12 = _mm512_fmadd_ps(va3, vb0, c12), c13 = _mm512_fmadd_ps(va3, vb1, c13);               \
        c14 = _mm512_fmadd_ps(va3, vb2, c14), c15 = _mm512_fmadd_ps(va3, vb3, c15);               \
    } while (0)
    int p = 0;
    for (; p + 16 <= k; p += 16) DOT_STEP(_mm512_loadu_ps);
    if (p < k) {
        __mmask16 mask = (__mmask16)((1u << (k - p)) - 1u);
#define DOT_MASKED(x) _mm512_maskz_loadu_ps(mask, (x))
        DOT_STEP(DOT_MASKED);
#undef DOT_MASKED
    }
#undef DOT_STEP
    __m512 w0 = FOLD_Q(c0, c8, 0x44, 0xEE), w1 = FOLD_Q(c1, c9, 0x44, 0xEE),
           w2 = FOLD_Q(c2, c10, 0x44, 0xEE), w3 = FOLD_Q(c3, c11, 0x44, 0xEE),
           w4 = FOLD_Q(c4, c12, 0x44, 0xEE), w5 = FOLD_Q(c5, c13, 0x44, 0xEE),
           w6 = FOLD_Q(c6, c14, 0x44, 0xEE), w7 = FOLD_Q(c7, c15, 0x44, 0xEE);
    __m512 x0 = FOLD_Q(w0, w4, 0x88, 0xDD), x1 = FOLD_Q(w1, w5, 0x88, 0xDD),
           x2 = FOLD_Q(w2, w6, 0x88, 0xDD), x3 = FOLD_Q(w3, w7, 0x88, 0xDD);
    __m512 y0 = FOLD_L(x0, x2), y1 = FOLD_L(x1, x3);
    __m512 t = _mm512_mul_ps(_mm512_set1_ps(alpha), FOLD_L(y0, y1));
    __m128 vb = _mm_set1_ps(beta);
#define DOT_ROW(q)                                                                                 \
    do {                                                                                           \
        float *cq = c + DOT_ROW_AT[q] * ldc;                                                       \
        __m128 tq = _mm512_extractf32x4_ps(t, q);                                                  \
        if (mode == BETA) tq = _mm_add_ps(tq, _mm_mul_ps(vb, _mm_loadu_ps(cq)));                   \
        if (mode == ACC) tq = _mm_add_ps(tq, _mm_loadu_ps(cq));                                    \
        _mm_storeu_ps(cq, tq);                                                                     \
    } while (0)
    DOT_ROW(0);
    DOT_ROW(1);
    DOT_ROW(2);
    DOT_ROW(3);
#undef DOT_ROW
}
#undef FOLD_Q
#undef FOLD_L

/* C = alpha * A . B^T + beta * C with untransposed A on the dot kernel.  Rows past the edge of
 * A or B repeat its last row and are not written, so an edge element is computed exactly as an
 * interior one. */
static void sgemm_dot_avx512(int m, int n, int k, float alpha, const float *a, int lda,
                             const float *b, int ldb, float beta, float *c, int ldc) {
    int mode = beta == 0.0f ? SET : BETA;
    float s[D_MR * D_NR];
    for (int i0 = 0; i0 < m; i0 += D_MR) {
        const float *ar[D_MR];
        for (int r = 0; r < D_MR; r++)
            ar[r] = a + (long)(i0 + r < m ? i0 + r : m - 1) * lda;
        for (int j0 = 0; j0 < n; j0 += D_NR) {
            const float *br[D_NR];
            for (int j = 0; j < D_NR; j++)
                br[j] = b + (long)(j0 + j < n ? j0 + j : n - 1) * ldb;
            float *ct = c + (long)i0 * ldc + j0;
            if (i0 + D_MR <= m && j0 + D_NR <= n) {
                kern_dot_avx512(k, ar, br, ct, ldc, alpha, beta, mode);
                continue;
            }
            kern_dot_avx512(k, ar, br, s, D_NR, 1.0f, 0.0f, SET);
            for (int r = 0; r < D_MR && i0 + r < m; r++)
                for (int j = 0; j < D_NR && j0 + j < n; j++) {
                    float *cj = &c[(long)(i0 + r) * ldc + j0 + j];
                    *cj = update1(s[r * D_NR + j], mode == SET ? 0.0f : *cj, alpha, beta, mode);
                }
        }
    }
}
#endif

typedef struct path_desc {
    int mr, nr;
    kern_fn kern;
    int tail_in_place; /* reads a last B panel narrower than nr in place (else it is copied) */
} path_desc;

static path_desc describe(enum nas_sgemm_path path) {
#if NAS_SIMD_INTRIN
    if (path == NAS_SGEMM_AVX512) return (path_desc){A5_MR, A5_NR, kern_avx512, 1};
    if (path == NAS_SGEMM_AVX2) return (path_desc){A2_MR, A2_NR, kern_avx2, 0};
#endif
    (void)path;
    return (path_desc){S_MR, S_NR, kern_scalar, 0};
}

enum nas_sgemm_path nas_sgemm_best(const nas_cpu_info *cpu) {
#if NAS_SIMD_INTRIN
    if (cpu->level >= NAS_ISA_AVX512) return NAS_SGEMM_AVX512;
    if (cpu->level >= NAS_ISA_AVX2) return NAS_SGEMM_AVX2;
#endif
    (void)cpu;
    return NAS_SGEMM_SCALAR;
}

const char *nas_sgemm_path_name(enum nas_sgemm_path path) {
    return path == NAS_SGEMM_AVX512 ? "avx512" : path == NAS_SGEMM_AVX2 ? "avx2" : "scalar";
}

// op(B) depth [p0, p0 + kb) by columns [j0, j0 + nb) into panels of nr columns, zero-padded:
// element (p, j) of panel q lands at q * nr * kb + p * nr + (j - q * nr).
KERN_ATTR NAS_CLONES static void pack_b(float *bp, const float *b, int ldb, int tb, int p0, int kb,
                                        int j0, int nb, int nr) {
    for (int q = 0; q < nb; q += nr, bp += (size_t)nr * kb) {
        int cols = nb - q < nr ? nb - q : nr;
        if (tb) {
            if (cols < nr) memset(bp, 0, sizeof(float) * (size_t)nr * kb);
            for (int j = 0; j < cols; j++) {
                const float *src = b + (long)(j0 + q + j) * ldb + p0;
                for (int p = 0; p < kb; p++)
                    bp[p * nr + j] = src[p];
            }
        } else {
            // A loop the clones vectorise: memcpy of 100-odd bytes went to rep movs, slower.
            for (int p = 0; p < kb; p++) {
                const float *src = b + (long)(p0 + p) * ldb + j0 + q;
                float *dst = bp + p * nr;
                for (int j = 0; j < cols; j++)
                    dst[j] = src[j];
                for (int j = cols; j < nr; j++)
                    dst[j] = 0.0f;
            }
        }
    }
}

static void blocked(path_desc d, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc);

#if NAS_SIMD_INTRIN
/* C = alpha * A . B^T + beta * C with untransposed A and a depth under NAS_SGEMM_DOT_MIN_K (the
 * weight gradients of planes up to 13x13, 7x7's 49 the most common): the dot kernel's fold and
 * masked tail weigh on so few steps (it ran at 52-72 GFLOP/s at depth 49, OpenBLAS's AVX2
 * kernels at 80-95), so B is transposed, SH_NB rows at a time, 16 x 16 in registers, into a K x
 * SH_NB block on the stack (at most 48 KB) that the AVX-512 kernels read in place like any
 * untransposed B (100-135 GFLOP/s).  Each element of C sees the operations of the blocked path
 * with that B untransposed. */
enum { SH_NB = 64 };
static const int TRANSPOSE16_ROW[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};

/* Rows [0, 16) (the last `rows` valid, later ones repeating it) by depth [0, kk) of src (row stride
 * ld), kk <= 16, into dst[p * SH_NB + j]: a 16 x 16 transpose in registers, four rounds of
 * unpacks and lane shuffles. */
KERN_ATTR __attribute__((target("avx512f"))) static void transpose16(float *dst, const float *src,
                                                                     long ld, int rows, int kk) {
    __mmask16 mask = (__mmask16)(kk >= 16 ? 0xffffu : (1u << kk) - 1u);
    __m512 r[16], t[16];
    for (int j = 0; j < 16; j++)
        r[j] = _mm512_maskz_loadu_ps(mask, src + (j < rows ? j : rows - 1) * ld);
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
    for (int j = 0; j < 16; j += 4)
        for (int h = 0; h < 2; h++) {
            __m512d x = _mm512_castps_pd(t[j + h]), y = _mm512_castps_pd(t[j + 2 + h]);
            r[j + h] = _mm512_castpd_ps(_mm512_unpacklo_pd(x, y));
            r[j + 2 + h] = _mm512_castpd_ps(_mm512_unpackhi_pd(x, y));
        }
    for (int j = 0; j < 16; j += 8)
        for (int h = 0; h < 4; h++) {
            t[j + h] = _mm512_shuffle_f32x4(r[j + h], r[j + 4 + h], 0x88);
            t[j + 4 + h] = _mm512_shuffle_f32x4(r[j + h], r[j + 4 + h], 0xDD);
        }
    for (int h = 0; h < 8; h++) {
        r[h] = _mm512_shuffle_f32x4(t[h], t[h + 8], 0x88);
        r[h + 8] = _mm512_shuffle_f32x4(t[h], t[h + 8], 0xDD);
    }
    // Register q now holds depth TRANSPOSE16_ROW[q] of the 16 rows, in row order.
    for (int q = 0; q < 16; q++) {
        int p = TRANSPOSE16_ROW[q];
        if (p < kk) _mm512_storeu_ps(dst + p * SH_NB, r[q]);
    }
}

KERN_ATTR static void sgemm_nt_shallow(int m, int n, int k, float alpha, const float *a, int lda,
                                       const float *b, int ldb, float beta, float *c, int ldc) {
    _Alignas(64) float bt[NAS_SGEMM_DOT_MIN_K * SH_NB];
    for (int j0 = 0; j0 < n; j0 += SH_NB) {
        int nb = n - j0 < SH_NB ? n - j0 : SH_NB;
        for (int j = 0; j < nb; j += 16)
            for (int p = 0; p < k; p += 16)
                transpose16(bt + p * SH_NB + j, b + (long)(j0 + j) * ldb + p, ldb,
                            nb - j < 16 ? nb - j : 16, k - p < 16 ? k - p : 16);
        blocked(describe(NAS_SGEMM_AVX512), 0, 0, m, nb, k, alpha, a, lda, bt, SH_NB, beta,
                c + j0, ldc);
    }
}
#endif

void nas_sgemm(enum nas_sgemm_path path, int ta, int tb, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        // No products: C = beta * C, not reading C when beta is 0.
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float *cij = &c[(long)i * ldc + j];
                *cij = beta == 0.0f ? 0.0f : beta * *cij;
            }
        return;
    }
#if NAS_SIMD_INTRIN
    if (path == NAS_SGEMM_AVX512 && tb && !ta && k >= NAS_SGEMM_DOT_MIN_K) {
        sgemm_dot_avx512(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (path == NAS_SGEMM_AVX512 && tb && !ta) {
        sgemm_nt_shallow(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#endif
    blocked(describe(path), ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The blocked loops of the file comment on the kernels of d.
static void blocked(path_desc d, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    // Panels live on the stack (24 KB): a heap block per call cost more than small products.
    _Alignas(64) float bpanel[KC * NR_MAX], tile[MR_MAX * NR_MAX];
    long rs = ta ? 1 : lda, ps = ta ? lda : 1; /* op(A)[i][p] = a[i * rs + p * ps] */
    for (int pc = 0; pc < k; pc += KC) {
        int kb = k - pc < KC ? k - pc : KC;
        int mode = pc > 0 ? ACC : beta == 0.0f ? SET : BETA;
        for (int ic = 0; ic < m; ic += MC) {
            int mb = m - ic < MC ? m - ic : MC;
            for (int jr = 0; jr < n; jr += d.nr) {
                int cols = n - jr < d.nr ? n - jr : d.nr;
                // The kernel reads an untransposed B's rows where they lie; a transposed B, or
                // a last panel narrower than the kernel, is copied (zero-padded) first.
                const float *bq = b + (long)pc * ldb + jr;
                long bs = ldb;
                if (tb || (cols < d.nr && !d.tail_in_place)) {
                    pack_b(bpanel, b, ldb, tb, pc, kb, jr, cols, d.nr);
                    bq = bpanel, bs = d.nr;
                }
                for (int ir = 0; ir < mb; ir += d.mr) {
                    int rows = mb - ir < d.mr ? mb - ir : d.mr;
                    a_tile at = {a + (long)pc * ps, {0}, ps};
                    for (int r = 0; r < d.mr; r++)
                        at.ro[r] = (long)(ic + ir + (r < rows ? r : rows - 1)) * rs;
                    float *ct = c + (long)(ic + ir) * ldc + jr;
                    if (rows == d.mr && cols == d.nr) {
                        d.kern(kb, &at, bq, bs, cols, ct, ldc, alpha, beta, mode);
                        continue;
                    }
                    d.kern(kb, &at, bq, bs, cols, tile, d.nr, 1.0f, 0.0f, SET);
                    for (int r = 0; r < rows; r++)
                        for (int j = 0; j < cols; j++) {
                            float *cj = &ct[(long)r * ldc + j];
                            *cj = update1(tile[r * d.nr + j], mode == SET ? 0.0f : *cj, alpha, beta,
                                          mode);
                        }
                }
            }
        }
    }
}
