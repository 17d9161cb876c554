/*
 * gemm.h - the one wrapper every matrix multiply in nasd goes through.
 *
 * All BLAS calls are funnelled through nas_gemm() so the backend (OpenBLAS,
 * or the engine's own kernels where OpenBLAS runs weaker ones) is chosen in
 * one place.  Matrices are row-major.  nas_gemm_naive() is the plain triple loop kept beside it as the reference the tests and
 * the start-up self-check (common/blas.h) compare against.
 */
#ifndef NAS_GEMM_H
#define NAS_GEMM_H

#include <stddef.h>

/* Every GEMM of this file has this signature. */
typedef void (*nas_gemm_fn)(int trans_a, int trans_b, int m, int n, int k, float alpha,
                            const float *a, int lda, const float *b, int ldb, float beta, float *c,
                            int ldc);

/* C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, row-major.
 * op(X) is X, or X transposed when trans_x != 0; lda/ldb/ldc are the row
 * strides of the matrices as stored. */
void nas_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* Which products nas_gemm() runs on the engine's own kernels (common/sgemm.h) instead of
 * OpenBLAS: those with B untransposed, and those with B transposed, on path.  Our kernels are
 * used where OpenBLAS's kernel set is weaker than the CPU (see gemm.c for the measured rule);
 * NAS_GEMM_ENV = "openblas" or "own" forces either side for every product (benchmarks). */
#define NAS_GEMM_ENV "NAS_GEMM"
typedef struct nas_gemm_choice {
    int path; /* enum nas_sgemm_path */
    int untransposed, transposed;
    /* Products with B transposed and untransposed A of depth k >= this run on our kernels too
     * even where `transposed` is 0 (0: none; 1 on AVX-512: every depth, where sgemm.c's
     * dot-product kernel and its in-register transpose of B beat OpenBLAS's AVX2 kernels). */
    int transposed_min_k;
} nas_gemm_choice;

void nas_gemm_choice_get(nas_gemm_choice *out);

/* The choice in words, as a worker's Register and nasctl status carry it: "own avx512" (every
 * product on our kernels), "own avx512 (all but A^T . B^T) + OpenBLAS", "own avx2 (B
 * untransposed) + OpenBLAS" or "OpenBLAS"; at most 63 bytes.  Returns out. */
char *nas_gemm_describe(char *out, size_t cap);

/* Same contract, computed with a plain loop in double precision. */
void nas_gemm_naive(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Compare fn with nas_gemm_naive() on odd shapes in all four orientations,
 * with and without beta.  NAS_OK, or NAS_EIO with err naming the first
 * case out of tolerance and its error (NAS_ENOMEM if scratch fails). */
int nas_gemm_selfcheck(nas_gemm_fn fn, char *err);

/* Number of threads OpenBLAS may use inside one call (>= 1). */
void nas_gemm_set_threads(int threads);

#endif
