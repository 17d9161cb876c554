/*
 * rng.c - PCG32 (O'Neill 2014): a 64-bit LCG whose output is permuted by an
 * xorshift and a data-dependent rotation.  Small, fast, statistically good
 * and, above all for us, specified exactly, so streams are portable.
 */
#include "common/rng.h"
#include "common/err.h"

#include <math.h>

#define PCG_MULT 6364136223846793005ULL /* the LCG multiplier of the PCG paper */

void nas_rng_init(nas_rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1) | 1u;
    nas_rng_u32(r);
    r->state += seed;
    nas_rng_u32(r);
}

uint32_t nas_rng_u32(nas_rng *r) {
    uint64_t old = r->state;
    r->state = old * PCG_MULT + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint64_t nas_rng_u64(nas_rng *r) {
    uint64_t hi = nas_rng_u32(r);
    return (hi << 32) | nas_rng_u32(r);
}

uint32_t nas_rng_below(nas_rng *r, uint32_t bound) {
    NAS_ASSERT(bound > 0);
    /* Reject the low values that would make the modulo uneven. */
    uint32_t threshold = (-bound) % bound;
    for (;;) {
        uint32_t x = nas_rng_u32(r);
        if (x >= threshold) return x % bound;
    }
}

float nas_rng_uniform(nas_rng *r) { return (float)(nas_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double nas_rng_uniform_d(nas_rng *r) {
    return (double)(nas_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

float nas_rng_normal(nas_rng *r) {
    /* 1 - u keeps the argument of log() in (0, 1]. */
    double u1 = 1.0 - nas_rng_uniform_d(r);
    double u2 = nas_rng_uniform_d(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void nas_rng_shuffle_int(nas_rng *r, int *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = nas_rng_below(r, (uint32_t)i);
        int t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

uint64_t nas_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
