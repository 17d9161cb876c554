/*
 * workpool.c - fork-join thread team on pthreads (see workpool.h).
 *
 * A job is published by bumping `generation` under the mutex; members wait
 * for a generation they have not run, run their share, and the last one to
 * finish signals `done`.
 *
 * The barrier inside a job is a counter and a generation in atomics: the
 * last member to arrive resets the counter and bumps the generation, the
 * others wait for the bump.  A job with several barriers (a whole forward
 * pass split by images) waits a few microseconds at each, far less than a
 * condition-variable round trip, so waiters spin for a while; after that
 * they sleep on a condition variable, since the machines are shared and a
 * descheduled member would otherwise leave its partner burning a core.
 */
#include "common/workpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

struct nas_workpool {
    int n;                  /* members, including the caller */
    pthread_t *threads;     /* n - 1 helpers */
    pthread_mutex_t mu;
    pthread_cond_t start;   /* a new generation was published, or stop */
    pthread_cond_t done;    /* the last member of a job finished */
    unsigned long generation;
    int pending;            /* helpers still running the current job */
    int stop;
    nas_work_fn fn;
    void *ctx;
    atomic_int bar_count;    /* members arrived at the current barrier */
    atomic_uint bar_gen;     /* barriers completed */
    atomic_int bar_sleepers; /* members blocked on bar_cv */
    pthread_cond_t bar_cv;   /* a barrier completed (for members done spinning) */
};

/* Spins of a barrier waiter before it sleeps: a pause is about 140 cycles on this machine's
 * CPU, so some 200 microseconds.  That covers the usual skew of members between two BN
 * barriers; with 10 microseconds, a waiter often went to sleep, and the futex wake-up and
 * rescheduling latency (tens of microseconds or more) then made the members take turns: a
 * 2-thread ResNet-20 step ran at the 1-thread speed. */
#define BARRIER_SPINS 4096

typedef struct member_arg {
    nas_workpool *p;
    int tid;
} member_arg;

// A helper waits for a generation it has not run yet, runs its share outside the lock, and the
// last helper to finish wakes the caller.  Checking `stop` first lets destroy end idle members.
static void *member_main(void *arg) {
    member_arg a = *(member_arg *)arg;
    nas_free(arg);
    nas_workpool *p = a.p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->start, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        nas_work_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, a.tid, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int nas_workpool_create(nas_workpool **out, int nthreads, char *err) {
    if (nthreads < 1) return nas_set_err(err, NAS_EINVAL, "workpool: %d threads", nthreads);
    nas_workpool *p = nas_calloc(1, sizeof(*p));
    if (!p) return nas_set_err(err, NAS_ENOMEM, "workpool: out of memory");
    p->n = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    pthread_cond_init(&p->bar_cv, NULL);
    p->threads = nas_calloc((size_t)nthreads, sizeof(pthread_t));
    if (!p->threads) goto fail_mem;
    for (int t = 1; t < nthreads; t++) {
        member_arg *a = nas_malloc(sizeof(*a));
        if (!a) goto fail_mem;
        a->p = p, a->tid = t;
        int rc = pthread_create(&p->threads[t - 1], NULL, member_main, a);
        if (rc != 0) {
            nas_free(a);
            nas_workpool_destroy(&p);
            return nas_set_err(err, NAS_EIO, "workpool: starting thread %d: %s", t, strerror(rc));
        }
        p->n = t + 1; /* members started so far; destroy joins exactly these */
    }
    *out = p;
    return NAS_OK;
fail_mem:
    nas_workpool_destroy(&p);
    return nas_set_err(err, NAS_ENOMEM, "workpool: out of memory");
}

void nas_workpool_destroy(nas_workpool **pp) {
    if (!pp || !*pp) return;
    nas_workpool *p = *pp;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->n; t++) pthread_join(p->threads[t - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->bar_cv);
    nas_free(p->threads);
    nas_free(p);
    *pp = NULL;
}

// The caller runs share 0 itself instead of idling, so n members need only n-1 helpers.
void nas_workpool_run(nas_workpool *p, nas_work_fn fn, void *ctx) {
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn, p->ctx = ctx;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int nas_workpool_size(const nas_workpool *p) { return p->n; }

void nas_workpool_barrier(nas_workpool *p) {
    if (p->n == 1) return;
    // The generation cannot move before this member arrives, so reading it first is safe.
    unsigned gen = atomic_load(&p->bar_gen);
    if (atomic_fetch_add(&p->bar_count, 1) == p->n - 1) {
        atomic_store_explicit(&p->bar_count, 0, memory_order_relaxed);
        atomic_store(&p->bar_gen, gen + 1);
        // Sequentially consistent: either a sleeper's count is seen here, or it sees the new
        // generation before it waits (it counts itself, then rechecks under the mutex).
        if (atomic_load(&p->bar_sleepers) > 0) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->bar_cv);
            pthread_mutex_unlock(&p->mu);
        }
        return;
    }
    for (int spins = 0; spins < BARRIER_SPINS; spins++) {
        if (atomic_load_explicit(&p->bar_gen, memory_order_acquire) != gen) return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->bar_sleepers, 1);
    while (atomic_load(&p->bar_gen) == gen)
        pthread_cond_wait(&p->bar_cv, &p->mu);
    atomic_fetch_sub(&p->bar_sleepers, 1);
    pthread_mutex_unlock(&p->mu);
}
