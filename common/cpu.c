/*
 * cpu.c - CPUID feature bits to an ISA level.
 */
#include "common/cpu.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>

/* XCR0, the register state the OS saves on a context switch.  A CPU with
 * AVX-512 under an OS (or hypervisor) that does not save ZMM registers
 * must not run AVX-512 code, whatever CPUID says. */
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

void nas_cpu_detect(nas_cpu_info *out) {
    memset(out, 0, sizeof *out);
    unsigned int a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned int max_leaf = a;
    memcpy(out->vendor, &b, 4), memcpy(out->vendor + 4, &d, 4), memcpy(out->vendor + 8, &c, 4);
    out->level = NAS_ISA_SSE2;
    __cpuid(1, a, b, c, d);
    int fam = (int)((a >> 8) & 0xf), mod = (int)((a >> 4) & 0xf);
    if (fam == 0xf) fam += (int)((a >> 20) & 0xff);
    if (fam == 0x6 || fam >= 0xf) mod += (int)((a >> 16) & 0xf) << 4;
    out->family = fam, out->model = mod;
    if (c & bit_SSE3) out->level = NAS_ISA_SSE3;
    int osxsave = (c & bit_OSXSAVE) != 0;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int ymm_ok = (xcr0 & 0x6) == 0x6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
    int tile_ok = (xcr0 & 0x60000) == 0x60000;
    if (!(c & bit_AVX) || !ymm_ok) return;
    out->level = NAS_ISA_AVX;
    int fma = (c & bit_FMA) != 0;
    if (max_leaf < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned int b7 = b, d7 = d;
    if (!(b7 & bit_AVX2) || !fma) return;
    out->level = NAS_ISA_AVX2;
    unsigned int need = bit_AVX512F | bit_AVX512CD | bit_AVX512DQ | bit_AVX512BW | bit_AVX512VL;
    if ((b7 & need) != need || !zmm_ok) return;
    out->level = NAS_ISA_AVX512;
    out->avx512_fp16 = (d7 >> 23) & 1;
    out->amx = ((d7 >> 24) & 1) && tile_ok; /* AMX-TILE */
    __cpuid_count(7, 1, a, b, c, d);
    out->avx512_bf16 = (a >> 5) & 1;
}
#else
void nas_cpu_detect(nas_cpu_info *out) { memset(out, 0, sizeof *out); }
#endif

const char *nas_isa_name(enum nas_isa_level level) {
    switch (level) {
    case NAS_ISA_SSE2: return "sse2";
    case NAS_ISA_SSE3: return "sse3";
    case NAS_ISA_AVX: return "avx";
    case NAS_ISA_AVX2: return "avx2";
    case NAS_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

char *nas_cpu_isa_string(const nas_cpu_info *c, char *out, size_t cap) {
    snprintf(out, cap, "%s%s%s%s", nas_isa_name(c->level), c->avx512_bf16 ? "+bf16" : "",
             c->avx512_fp16 ? "+fp16" : "", c->amx ? "+amx" : "");
    return out;
}
