/*
 * sgemm.h - the engine's own single-precision GEMM: blocked loops and a
 * register-blocked micro-kernel per instruction set (AVX-512, AVX2 + FMA,
 * plain C).
 *
 * OpenBLAS picks its kernels from its own CPU table or from an
 * OPENBLAS_CORETYPE an administrator set; either may leave an AVX-512 CPU
 * on AVX2 or generic SSE3 kernels.  These kernels are chosen from the CPU's
 * own feature bits (common/cpu.h) instead, so their speed does not depend
 * on the library's detection.  common/gemm.c decides between them and
 * OpenBLAS.  Every path sums each output element in the same fixed order
 * on every call (depth in blocks of NAS_SGEMM_KC, ascending), so a given
 * path always gives the same bits; different paths round differently.
 */
#ifndef NAS_SGEMM_H
#define NAS_SGEMM_H

#include "common/cpu.h"

/* The micro-kernel paths, weakest first. */
enum nas_sgemm_path {
    NAS_SGEMM_SCALAR = 0, /* plain C, any CPU */
    NAS_SGEMM_AVX2,       /* AVX2 + FMA, 4 x 24 register tile */
    NAS_SGEMM_AVX512,     /* AVX-512F, 8 x 32 register tile */
};

/* On AVX-512, C = A . B^T (A untransposed) runs on a dot-product kernel from this depth on, and
 * below it on the blocked kernels after transposing B (sgemm.c). */
enum { NAS_SGEMM_DOT_MIN_K = 192 };

/* The strongest path this CPU (and this build) runs. */
enum nas_sgemm_path nas_sgemm_best(const nas_cpu_info *cpu);

/* "avx512", "avx2", "scalar". */
const char *nas_sgemm_path_name(enum nas_sgemm_path path);

/* Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, the contract of nas_gemm()
 * (common/gemm.h), on the given path; a path the CPU lacks must not be asked for.  C is not read
 * when beta is 0.  Uses about 25 KB of stack for its panels. */
void nas_sgemm(enum nas_sgemm_path path, int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

#endif
