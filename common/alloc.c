/*
 * alloc.c - see alloc.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "common/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Test-only fault injection countdown: 0 = off; otherwise allocations fail
 * once it reaches 1. Atomic so that a stray allocation from another thread
 * cannot corrupt it. */
static atomic_long g_fail_countdown;

static int should_fail(void) {
    long c = atomic_load_explicit(&g_fail_countdown, memory_order_relaxed);
    if (c == 0) return 0;
    if (c == 1) return 1;
    atomic_fetch_sub_explicit(&g_fail_countdown, 1, memory_order_relaxed);
    return 0;
}

void nas_alloc_fail_after(long n) { atomic_store(&g_fail_countdown, n < 0 ? 0 : n); }
void nas_alloc_fail_reset(void) { atomic_store(&g_fail_countdown, 0); }

void *nas_malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }

void *nas_calloc(size_t count, size_t size) {
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *nas_realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }

void nas_free(void *p) { free(p); }

char *nas_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = nas_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void *nas_aligned_alloc(size_t n) {
    if (should_fail()) return NULL;
    size_t sz = nas_align_up(n ? n : 1);
    if (sz < n) return NULL; /* overflow */
    void *p = NULL;
    if (posix_memalign(&p, NAS_ALIGN, sz) != 0) return NULL;
    memset(p, 0, sz);
    return p;
}

void nas_aligned_free(void *p) { free(p); }

int nas_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > (size_t)-1 / a) return -1;
    *out = a * b;
    return 0;
}
