/*
 * rng.h - explicit-state pseudo-random numbers (PCG32, XSH-RR variant).
 *
 * Every random choice in nasd (initialisation, shuffling, augmentation,
 * mutation, sampling) draws from a nas_rng passed in by the caller, seeded
 * from the campaign or task seed.  The generator is pure integer
 * arithmetic, so a seed gives the same stream on every machine, compiler
 * and build.  The state is two uint64_t and may be stored and restored
 * byte for byte (resume).
 */
#ifndef NAS_RNG_H
#define NAS_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct nas_rng {
    uint64_t state; /* current position in the sequence */
    uint64_t inc;   /* stream selector, always odd */
} nas_rng;

/* Seed a generator. Different `stream` values give independent sequences
 * for the same seed (e.g. one per data loader, one per initialiser). */
void nas_rng_init(nas_rng *r, uint64_t seed, uint64_t stream);

uint32_t nas_rng_u32(nas_rng *r);
uint64_t nas_rng_u64(nas_rng *r);

/* Uniform integer in [0, bound), without modulo bias. bound must be > 0. */
uint32_t nas_rng_below(nas_rng *r, uint32_t bound);

/* Uniform float in [0, 1) with 24 bits of randomness. */
float nas_rng_uniform(nas_rng *r);

/* Uniform double in [0, 1) with 53 bits of randomness. */
double nas_rng_uniform_d(nas_rng *r);

/* Standard normal deviate (Box-Muller; consumes two draws per call). */
float nas_rng_normal(nas_rng *r);

/* Fisher-Yates shuffle of n ints. */
void nas_rng_shuffle_int(nas_rng *r, int *a, size_t n);

/* 64-bit mixing function (splitmix64 finaliser): derives well-spread seeds
 * from structured inputs such as (seed, task id). */
uint64_t nas_mix64(uint64_t x);

#endif
