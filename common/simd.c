/*
 * simd.c - the run-time choice of instruction set for the hand-vectorized
 * kernels (see simd.h).
 */
#include "common/simd.h"

// The CPU's features come from the compiler's own CPUID cache (__builtin_cpu_supports), so there
// is no state here.  AVX-512F alone suffices: the kernels use only 512-bit foundation ops and
// mask registers.
int nas_simd_best(void) {
#if NAS_SIMD_INTRIN
    if (__builtin_cpu_supports("avx512f")) return NAS_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2")) return NAS_SIMD_AVX2;
#endif
    return NAS_SIMD_SCALAR;
}
