/*
 * alloc.h - allocation helpers.
 *
 * nas_malloc/nas_calloc/nas_realloc/nas_free wrap libc so that tests can
 * make the Nth allocation fail (fault injection, as SQLite's faultsim does)
 * and check that every caller turns it into NAS_ENOMEM without leaking.
 * nas_aligned_alloc returns 64-byte aligned memory (a cache line, and an
 * AVX-512 register) for tensors; free it with nas_aligned_free.
 */
#ifndef NAS_ALLOC_H
#define NAS_ALLOC_H

#include <stddef.h>

#define NAS_ALIGN 64

void *nas_malloc(size_t n);
void *nas_calloc(size_t count, size_t size);
void *nas_realloc(void *p, size_t n);
void nas_free(void *p);
char *nas_strdup(const char *s);

/* 64-byte aligned, zero-filled; n may be 0 (returns a valid unique pointer). */
void *nas_aligned_alloc(size_t n);
void nas_aligned_free(void *p);

/* Round n up to a multiple of NAS_ALIGN bytes. */
static inline size_t nas_align_up(size_t n) { return (n + NAS_ALIGN - 1) & ~(size_t)(NAS_ALIGN - 1); }

/* Fault injection for tests: the `n`-th allocation from now (1-based) and
 * every one after it fails, until nas_alloc_fail_reset(). n == 0 disables.
 * This counter is process-global and meant for single-threaded tests only. */
void nas_alloc_fail_after(long n);
void nas_alloc_fail_reset(void);

/* size-overflow-checked multiply: returns 0 and sets *out, or -1 on overflow. */
int nas_mul_size(size_t a, size_t b, size_t *out);

#endif
