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

#endif
