/*
 * workpool.h - a fixed team of threads that runs one function on every
 * member at once (fork-join), for splitting a batch's images or a layer's
 * channels across cores.
 *
 * The caller is member 0 and does its share; nas_workpool_run() returns when
 * every member has finished.  Work is partitioned by (tid, nthreads) alone,
 * so results do not depend on scheduling.  Members sleep on a condition
 * variable between jobs instead of spinning: the machines are shared.
 */
#ifndef NAS_WORKPOOL_H
#define NAS_WORKPOOL_H

typedef struct nas_workpool nas_workpool;

typedef void (*nas_work_fn)(void *ctx, int tid, int nthreads);

/* Start a pool of nthreads members (nthreads - 1 new threads).  Returns
 * NAS_OK, NAS_EINVAL (nthreads < 1), NAS_ENOMEM or NAS_EIO (thread start
 * failed; err says why). */
int nas_workpool_create(nas_workpool **out, int nthreads, char *err);

/* Stop and join the threads; accepts NULL and nulls *pp. */
void nas_workpool_destroy(nas_workpool **pp);

/* Run fn(ctx, tid, n) for tid in [0, n) concurrently, the caller taking
 * tid 0, and wait for all.  Not reentrant: one job at a time. */
void nas_workpool_run(nas_workpool *p, nas_work_fn fn, void *ctx);

int nas_workpool_size(const nas_workpool *p);

/* Inside a job: wait until every member of the pool has called it (the
 * generation of barriers is shared, so every member must call it the same
 * number of times per job).  Writes before it are visible to every member
 * after it.  Members spin briefly, then sleep until the last one arrives. */
void nas_workpool_barrier(nas_workpool *p);

/* [*lo, *hi): member tid's contiguous share of n items. */
static inline void nas_workpool_split(long n, int tid, int nthreads, long *lo, long *hi) {
    *lo = n * tid / nthreads;
    *hi = n * (tid + 1) / nthreads;
}

#endif
