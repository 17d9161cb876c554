/*
 * simd.h - function multiversioning for the engine's hot non-BLAS loops.
 *
 * The build is portable (x86-64 baseline, SSE2), so loops the compiler
 * vectorises would otherwise never use AVX2 or AVX-512 on the machines that
 * have them.  NAS_CLONES compiles a function once per listed ISA and picks
 * the clone at load time (GCC target_clones, an ifunc).  The code is plain C
 * either way; because the build is ISO C (-std=c11, so no implicit FMA
 * contraction) and the reductions use fixed lanes, every clone computes the
 * same bits.  Define NAS_NO_CLONES to compile a single baseline version.
 */
#ifndef NAS_SIMD_H
#define NAS_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NAS_NO_CLONES)
#define NAS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NAS_CLONES
#endif

/* The instruction sets the hand-vectorized kernels (common/plane.c) are built for.  Each kernel
 * is compiled once per level with __attribute__((target)), so the build needs no -march flag;
 * nas_simd_best() names the widest one this CPU runs.  Every level computes the same bits
 * (no FMA contraction, the same order of operations per output element), so a worker's results
 * do not depend on its CPU; tests force each level through the kernels' isa argument. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NAS_NO_CLONES)
#define NAS_SIMD_INTRIN 1
#else
#define NAS_SIMD_INTRIN 0
#endif

enum { NAS_SIMD_SCALAR = 0, NAS_SIMD_AVX2 = 1, NAS_SIMD_AVX512 = 2 };

/* The widest level this CPU and build support (NAS_SIMD_SCALAR where NAS_SIMD_INTRIN is 0). */
int nas_simd_best(void);

/* Run the kernel fn##_avx512, fn##_avx2 or fn##_scalar of level isa (the scalar one only in
 * builds without the intrinsics). */
#if NAS_SIMD_INTRIN
#define NAS_SIMD_DISPATCH(isa, fn, ...)                                                            \
    do {                                                                                           \
        if ((isa) == NAS_SIMD_AVX512)                                                              \
            fn##_avx512(__VA_ARGS__);                                                              \
        else if ((isa) == NAS_SIMD_AVX2)                                                           \
            fn##_avx2(__VA_ARGS__);                                                                \
        else                                                                                       \
            fn##_scalar(__VA_ARGS__);                                                              \
    } while (0)
#else
#define NAS_SIMD_DISPATCH(isa, fn, ...) fn##_scalar(__VA_ARGS__)
#endif

#endif
