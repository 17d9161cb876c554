/*
 * cpu.h - what the processor offers, read from CPUID, as an ISA level.
 *
 * The engine's dense math runs in OpenBLAS, whose kernel set is chosen by
 * its own CPU detection; a library that does not know a new model falls
 * back to generic SSE3 kernels three times slower than the CPU allows.
 * This module answers the question the detection can get wrong, from the
 * feature bits alone (and the OS's XSAVE state, without which AVX and
 * AVX-512 registers cannot be used), so common/blas.c can compare the two.
 */
#ifndef NAS_CPU_H
#define NAS_CPU_H

#include <stddef.h>

/* Vector ISA levels, weakest first; each includes the ones before it. */
enum nas_isa_level {
    NAS_ISA_UNKNOWN = 0, /* not x86-64, or CPUID unreadable */
    NAS_ISA_SSE2,        /* the x86-64 baseline */
    NAS_ISA_SSE3,        /* SSE3/SSSE3/SSE4: OpenBLAS's generic Prescott..Nehalem kernels */
    NAS_ISA_AVX,
    NAS_ISA_AVX2,   /* AVX2 + FMA */
    NAS_ISA_AVX512, /* AVX-512 F, CD, DQ, BW and VL, with the OS saving ZMM state */
};

typedef struct nas_cpu_info {
    enum nas_isa_level level;
    int avx512_bf16, avx512_fp16, amx; /* extras beyond the level, reported only */
    char vendor[13];                   /* "GenuineIntel", "AuthenticAMD", "" */
    int family, model;                 /* display family and model */
} nas_cpu_info;

/* Read this CPU's features (cheap; call whenever needed). */
void nas_cpu_detect(nas_cpu_info *out);

/* "avx512", "avx2", ...; "unknown" for NAS_ISA_UNKNOWN. */
const char *nas_isa_name(enum nas_isa_level level);

/* The level followed by the extras, e.g. "avx512+bf16+fp16"; returns out. */
char *nas_cpu_isa_string(const nas_cpu_info *c, char *out, size_t cap);

#endif
