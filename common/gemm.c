/*
 * gemm.c - row-major sgemm through OpenBLAS or the engine's own kernels (common/sgemm.h), the
 * naive reference, and the self-check between them.
 */
#include "common/gemm.h"

#include "common/blas.h"
#include "common/err.h"
#include "common/sgemm.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* C = beta * C, without reading C when beta is 0 (it may hold NaNs). */
static void scale_c(int m, int n, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float *cij = &c[(long)i * ldc + j];
            *cij = beta == 0.0f ? 0.0f : beta * *cij;
        }
}

/* The choice between OpenBLAS and our kernels depends only on the CPU, the kernel set OpenBLAS
 * loaded and the environment, all fixed for the life of the process, so it is made once (the
 * only state of this file, written once under pthread_once). */
static pthread_once_t choice_once = PTHREAD_ONCE_INIT;
static nas_gemm_choice choice;

/* Measured on conv shapes (docs/PERFORMANCE.md): our AVX-512 kernels beat OpenBLAS's AVX2
 * (Haswell) kernels on the untransposed-B products by 1.3-2x and match its AVX-512 ones.  With B
 * transposed the packed kernels pay for packing B and win only over the generic SSE3 kernels;
 * on AVX-512, C = A . B^T (the conv weight gradients) runs on a dot-product kernel from a depth
 * of NAS_SGEMM_DOT_MIN_K and on B transposed in registers below it, which beat the AVX2 kernels
 * 1.2-1.6x at depths 49 and 16 and 1.4-2.4x above: every such product goes to them. */
static void choose(void) {
    nas_cpu_info cpu;
    nas_cpu_detect(&cpu);
    enum nas_sgemm_path best = nas_sgemm_best(&cpu);
    enum nas_isa_level own = best == NAS_SGEMM_AVX512 ? NAS_ISA_AVX512
                             : best == NAS_SGEMM_AVX2 ? NAS_ISA_AVX2
                                                      : NAS_ISA_UNKNOWN;
    enum nas_isa_level blas = nas_blas_kernels_level(openblas_get_corename());
    const char *env = getenv(NAS_GEMM_ENV);
    choice.path = best;
    if (env && strcasecmp(env, "openblas") == 0) {
        choice.untransposed = choice.transposed = 0;
    } else if (env && strcasecmp(env, "own") == 0) {
        choice.untransposed = choice.transposed = 1;
    } else {
        // An unknown OpenBLAS set is kept: we cannot tell it is weaker.
        choice.untransposed = blas != NAS_ISA_UNKNOWN && own > blas;
        choice.transposed = choice.untransposed && blas <= NAS_ISA_SSE3;
        if (choice.untransposed && best == NAS_SGEMM_AVX512) choice.transposed_min_k = 1;
    }
}

void nas_gemm_choice_get(nas_gemm_choice *out) {
    pthread_once(&choice_once, choose);
    *out = choice;
}

char *nas_gemm_describe(char *out, size_t cap) {
    nas_gemm_choice ch;
    nas_gemm_choice_get(&ch);
    const char *path = nas_sgemm_path_name(ch.path);
    if (ch.untransposed && ch.transposed)
        snprintf(out, cap, "own %s", path);
    else if (ch.untransposed && ch.transposed_min_k > 0)
        snprintf(out, cap, "own %s (all but A^T . B^T) + OpenBLAS", path);
    else if (ch.untransposed || ch.transposed)
        snprintf(out, cap, "own %s (B %s) + OpenBLAS", path,
                 ch.untransposed ? "untransposed" : "transposed");
    else
        snprintf(out, cap, "OpenBLAS");
    return out;
}

void nas_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        // BLAS would still scale C by beta; do the same without touching A/B.
        scale_c(m, n, beta, c, ldc);
        return;
    }
    pthread_once(&choice_once, choose);
    int own = !trans_b ? choice.untransposed
                       : choice.transposed || (choice.transposed_min_k > 0 && !trans_a &&
                                               k >= choice.transposed_min_k);
    if (own) {
        nas_sgemm(choice.path, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void nas_gemm_naive(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++) {
                // A[i,p] and B[p,j] in the logical (op-applied) orientation.
                float av = trans_a ? a[(long)p * lda + i] : a[(long)i * lda + p];
                float bv = trans_b ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
                acc += (double)av * bv;
            }
            float *cij = &c[(long)i * ldc + j];
            *cij = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *cij));
        }
    }
}

int nas_gemm_selfcheck(nas_gemm_fn fn, char *err) {
    /* Odd sizes exercise every kernel's edge handling (M and N past and
     * short of the register blocks), K = 300 goes past the inner unrolls.
     * Inputs lie in [-1, 1], so a correct single-precision result is within
     * ~K * 2^-24 of the double reference, and a wrong kernel is off by O(1).
     * Kept small (2 M multiply-adds each side, a few ms): every nas-train
     * and nas-worker start runs it. */
    static const int shapes[][3] = {
        {1, 1, 1}, {7, 5, 3}, {37, 29, 71}, {33, 70, 17}, {19, 24, 300},
    };
    enum { CAP = 8192 }; /* floats: the largest matrix above, C's row gap included */
    float *a = malloc(sizeof(float) * CAP), *b = malloc(sizeof(float) * CAP);
    float *c = malloc(sizeof(float) * CAP), *r = malloc(sizeof(float) * CAP);
    int rc = a && b && c && r ? NAS_OK : nas_set_err(err, NAS_ENOMEM, "self-check: out of memory");
    uint32_t s = 12345u;
    for (int i = 0; rc == NAS_OK && i < CAP; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
        b[i] = (float)((s >> 12) & 0xffff) / 32768.0f - 1.0f;
        r[i] = (float)((s >> 4) & 0xff) / 128.0f - 1.0f;
    }
    for (size_t t = 0; rc == NAS_OK && t < sizeof shapes / sizeof shapes[0]; t++) {
        int m = shapes[t][0], n = shapes[t][1], k = shapes[t][2];
        for (int o = 0; rc == NAS_OK && o < 8; o++) {
            int ta = o & 1, tb = (o >> 1) & 1;
            float beta = (o & 4) ? 0.5f : 0.0f;
            int lda = ta ? m : k, ldb = tb ? k : n, ldc = n + 3; /* C with a row gap */
            for (int i = 0; i < m * ldc; i++) c[i] = r[i];
            fn(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, beta, c, ldc);
            nas_gemm_naive(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, beta, r, ldc);
            double worst = 0.0, tol = 1e-5 * (k + 4);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double d = fabs((double)c[(long)i * ldc + j] - r[(long)i * ldc + j]);
                    if (!(d <= worst)) worst = d; /* NaN counts as the worst */
                }
            if (!(worst <= tol)) {
                rc = nas_set_err(err, NAS_EIO, "%dx%dx%d %s%s beta %g: max error %.3g > %.3g", m, n,
                                 k, ta ? "T" : "N", tb ? "T" : "N", (double)beta, worst, tol);
            }
            /* Restore the reference's C for the next orientation's beta. */
            s = 777u * (unsigned)o + (unsigned)t;
            for (int i = 0; i < m * ldc; i++) {
                s = s * 1664525u + 1013904223u;
                r[i] = (float)((s >> 4) & 0xff) / 128.0f - 1.0f;
            }
        }
    }
    free(a), free(b), free(c), free(r);
    return rc;
}

void nas_gemm_set_threads(int threads) { openblas_set_num_threads(threads < 1 ? 1 : threads); }
