/*
 * test_workpool.c - the fork-join pool: every member runs each job once
 * with its own tid, and the in-job barrier orders the members' writes
 * (each member reads what all others wrote before the barrier, many
 * barriers in a row, with one slow member to make a race visible).
 */
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/workpool.h"
#include "tests/harness.h"

#define ROUNDS 300
#define MAXT   4

typedef struct bctx {
    nas_workpool *p;
    long slot[MAXT];
    long seen[MAXT]; /* per member: sum of all slots after each barrier, over the rounds */
    int bad;         /* a member read a slot that was not yet written */
} bctx;

// Each round: every member writes its slot, waits, checks all slots, waits again (so no one
// overwrites a slot another is still reading).  Member 1 sleeps now and then.
static void barrier_job(void *ctx, int tid, int nt) {
    bctx *c = ctx;
    for (long r = 1; r <= ROUNDS; r++) {
        if (tid == 1 && r % 50 == 0) nanosleep(&(struct timespec){0, 200000}, NULL);
        c->slot[tid] = r * (tid + 1);
        nas_workpool_barrier(c->p);
        long sum = 0;
        for (int t = 0; t < nt; t++) {
            if (c->slot[t] != r * (t + 1)) __atomic_store_n(&c->bad, 1, __ATOMIC_RELAXED);
            sum += c->slot[t];
        }
        c->seen[tid] += sum;
        nas_workpool_barrier(c->p);
    }
}

START_TEST(test_workpool_barrier) {
    for (int n = 1; n <= 3; n++) {
        char err[NAS_ERR_LEN];
        bctx c;
        memset(&c, 0, sizeof c);
        ck_assert_int_eq(nas_workpool_create(&c.p, n, err), NAS_OK);
        ck_assert_int_eq(nas_workpool_size(c.p), n);
        // Two jobs in a row: the barrier's state carries over between jobs.
        for (int job = 0; job < 2; job++)
            nas_workpool_run(c.p, barrier_job, &c);
        ck_assert_int_eq(c.bad, 0);
        long want = 0;
        for (long r = 1; r <= ROUNDS; r++)
            want += r * (long)n * (n + 1) / 2;
        for (int t = 0; t < n; t++)
            ck_assert_int_eq(c.seen[t], 2 * want);
        nas_workpool_destroy(&c.p);
        ck_assert_ptr_null(c.p);
    }
}
END_TEST

START_TEST(test_workpool_bad_size) {
    char err[NAS_ERR_LEN];
    nas_workpool *p = NULL;
    ck_assert_int_eq(nas_workpool_create(&p, 0, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "0 threads"));
    ck_assert_ptr_null(p);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("workpool");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_workpool_barrier);
    tcase_add_test(tc, test_workpool_bad_size);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
