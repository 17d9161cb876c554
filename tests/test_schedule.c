/*
 * test_schedule.c - the rung schedulers' decisions on hand-worked cases:
 * Hyperband's bracket table for R = 81, eta = 3 (Li et al. 2018, Table 1),
 * ASHA's promotion rule step by step, SHA's barriers, failures, and exact
 * resume from a saved blob at every point of a run.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/rng.h"
#include "master/schedule.h"
#include "tests/harness.h"

#include <math.h>
#include <string.h>

static nas_sched *make(int kind, int eta, int n_rungs, int n0, int max_open) {
    nas_sched_config c = {kind, eta, n_rungs, n0, max_open};
    nas_sched *s = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_sched_create(&s, &c, err) == NAS_OK, "%s", err);
    return s;
}

static nas_sched_job next(nas_sched *s) {
    nas_sched_job j;
    ck_assert_int_eq(nas_sched_next(s, &j), NAS_OK);
    return j;
}

static void report(nas_sched *s, int64_t cand, int rung, double v) {
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_sched_report(s, cand, rung, v, err) == NAS_OK, "%s", err);
}

/* The next decision, which must be `action` for candidate `cand` at `rung`. */
static nas_sched_job expect(nas_sched *s, int action, int64_t cand, int rung) {
    nas_sched_job j = next(s);
    ck_assert_int_eq(j.action, action);
    ck_assert_int_eq(j.cand, cand);
    ck_assert_int_eq(j.rung, rung);
    return j;
}

/* expect(), then the job's result. */
static void step(nas_sched *s, int action, int64_t cand, int rung, double v) {
    expect(s, action, cand, rung);
    report(s, cand, rung, v);
}

/* A value per candidate that does not depend on the rung, so the survivors
 * of a bracket are known in advance: a fixed scramble of the number. */
static double value_of(int64_t cand) {
    return (double)(nas_mix64((uint64_t)cand + 1) % 100000) / 100000.0;
}

// ---- Hyperband ----------------------------------------------------------------------------------

START_TEST(test_schedule_hyperband_table) {
    /* Li et al. 2018, Table 1: R = 81, eta = 3, s_max = 4. */
    static const int n[] = {5, 8, 15, 34, 81}; /* indexed by s */
    for (int s = 0; s <= 4; s++) {
        int first = -1;
        ck_assert_int_eq(nas_sched_hyperband_bracket(3, 5, s, &first), n[s]);
        ck_assert_int_eq(first, 4 - s);
    }
    ck_assert_int_eq(nas_sched_hyperband_bracket(3, 5, 5, NULL), NAS_EINVAL);
}
END_TEST

/* One worker: run a whole Hyperband cycle and count the jobs of each
 * bracket at each rung; they must be the table's n_i = floor(n eta^-i). */
START_TEST(test_schedule_hyperband_cycle) {
    nas_sched *s = make(NAS_SCHED_HYPERBAND, 3, 5, 0, 1);
    static const int want[5][5] = {
        {81, 27, 9, 3, 1}, /* bracket 0 is s = 4, first rung 0 */
        {0, 34, 11, 3, 1}, /* s = 3 */
        {0, 0, 15, 5, 1},  /* s = 2 */
        {0, 0, 0, 8, 2},   /* s = 1 */
        {0, 0, 0, 0, 5},   /* s = 0 */
    };
    int got[5][5];
    memset(got, 0, sizeof got);
    double best0 = -1;
    int64_t top0 = -1, winner0 = -1;
    for (;;) {
        nas_sched_job j = next(s);
        ck_assert_int_ne(j.action, NAS_SCHED_WAIT); /* one job at a time never waits */
        if (j.bracket == 5) break;                  /* the cycle is over */
        got[j.bracket][j.rung]++;
        if (j.bracket == 0 && j.rung == 0 && value_of(j.cand) > best0) {
            best0 = value_of(j.cand);
            top0 = j.cand;
        }
        if (j.bracket == 0 && j.rung == 4) winner0 = j.cand;
        if (j.action == NAS_SCHED_NEW) ck_assert_int_eq(j.rung, j.bracket); /* s = 4 - b */
        report(s, j.cand, j.rung, value_of(j.cand));
    }
    for (int b = 0; b < 5; b++)
        for (int k = 0; k < 5; k++)
            ck_assert_msg(got[b][k] == want[b][k], "bracket %d rung %d: %d jobs, want %d", b, k,
                          got[b][k], want[b][k]);
    /* Values do not change with the rung, so the one candidate to reach
     * R in the first bracket is the best of its 81. */
    ck_assert_int_eq(winner0, top0);
    ck_assert_int_eq(nas_sched_candidates(s), 81 + 34 + 15 + 8 + 5 + 1);
    nas_sched_destroy(&s);
}
END_TEST

// ---- ASHA ---------------------------------------------------------------------------------------

/* ASHA, eta = 3, three rungs, one worker: each step worked by hand from
 * the rule "promote the best unpromoted result of rung k if it is in the
 * top floor(m_k / 3) of rung k's m_k results, top rung first; else start a
 * new candidate at rung 0". */
START_TEST(test_schedule_asha_by_hand) {
    nas_sched *s = make(NAS_SCHED_ASHA, 3, 3, 0, 0);
    step(s, NAS_SCHED_NEW, 0, 0, 0.5);
    step(s, NAS_SCHED_NEW, 1, 0, 0.9);
    /* m0 = 2: floor(2/3) = 0, nothing can be promoted yet. */
    step(s, NAS_SCHED_NEW, 2, 0, 0.7);
    /* m0 = 3: the top 1 is candidate 1 (0.9). */
    step(s, NAS_SCHED_PROMOTE, 1, 1, 0.95);
    /* m1 = 1 -> none; m0 = 3, top 1 already promoted -> new. */
    step(s, NAS_SCHED_NEW, 3, 0, 0.8);
    /* m0 = 4, top 1 is still candidate 1: candidate 3 (second) waits. */
    step(s, NAS_SCHED_NEW, 4, 0, 0.1);
    step(s, NAS_SCHED_NEW, 5, 0, 0.85);
    /* m0 = 6: the top 2 are 1 (0.9, promoted) and 5 (0.85). */
    step(s, NAS_SCHED_PROMOTE, 5, 1, 0.6);
    step(s, NAS_SCHED_NEW, 6, 0, 0.2);
    step(s, NAS_SCHED_NEW, 7, 0, 0.3);
    step(s, NAS_SCHED_NEW, 8, 0, 0.4);
    /* m0 = 9: the top 3 are 1, 5 and 3 (0.8): promote 3. */
    step(s, NAS_SCHED_PROMOTE, 3, 1, 0.99);
    /* m1 = 3: the top 1 is candidate 3 (0.99): promote it to the top rung
     * before anything else. */
    step(s, NAS_SCHED_PROMOTE, 3, 2, 0.99);
    /* Nothing promotes from the top rung: a new candidate. */
    expect(s, NAS_SCHED_NEW, 9, 0);
    int64_t counts[3];
    nas_sched_rung_counts(s, counts);
    ck_assert_int_eq(counts[0], 9);
    ck_assert_int_eq(counts[1], 3);
    ck_assert_int_eq(counts[2], 1);
    ck_assert_int_eq(nas_sched_running(s), 1);
    nas_sched_destroy(&s);
}
END_TEST

/* ASHA never waits: with jobs still running at rung 0, a promotion goes
 * ahead as soon as eta results are in. */
START_TEST(test_schedule_asha_no_barrier) {
    nas_sched *s = make(NAS_SCHED_ASHA, 2, 2, 0, 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(next(s).action, NAS_SCHED_NEW);
    report(s, 2, 0, 0.4);
    report(s, 0, 0, 0.6); /* m0 = 2: top 1 = candidate 0; 1 and 3 still run */
    expect(s, NAS_SCHED_PROMOTE, 0, 1);
    ck_assert_int_eq(nas_sched_running(s), 3);
    /* A failed run is counted in its rung but never promoted. */
    report(s, 1, 0, NAN);
    report(s, 3, 0, NAN); /* m0 = 4: top 2 = 0 (promoted) and 2 (0.4) */
    expect(s, NAS_SCHED_PROMOTE, 2, 1);
    nas_sched_destroy(&s);
}
END_TEST

// ---- SHA ----------------------------------------------------------------------------------------

START_TEST(test_schedule_sha_barrier) {
    /* eta 2, 3 rungs, 4 candidates per bracket, one bracket open at once. */
    nas_sched *s = make(NAS_SCHED_SHA, 2, 3, 4, 1);
    for (int i = 0; i < 4; i++)
        expect(s, NAS_SCHED_NEW, i, 0);
    ck_assert_int_eq(next(s).action, NAS_SCHED_WAIT);
    report(s, 0, 0, 0.3);
    report(s, 1, 0, 0.8);
    report(s, 3, 0, 0.5);
    ck_assert_int_eq(next(s).action, NAS_SCHED_WAIT); /* candidate 2 still trains */
    report(s, 2, 0, 0.5);                             /* ties candidate 3, reported later */
    /* The top floor(4/2) = 2: candidate 1, then 3 (0.5, the earlier report). */
    expect(s, NAS_SCHED_PROMOTE, 1, 1);
    expect(s, NAS_SCHED_PROMOTE, 3, 1);
    ck_assert_int_eq(next(s).action, NAS_SCHED_WAIT);
    report(s, 3, 1, 0.9);
    report(s, 1, 1, 0.7);
    expect(s, NAS_SCHED_PROMOTE, 3, 2);
    ck_assert_int_eq(next(s).action, NAS_SCHED_WAIT);
    report(s, 3, 2, 0.95);
    /* The bracket is over: the next one starts. */
    nas_sched_job j = expect(s, NAS_SCHED_NEW, 4, 0);
    ck_assert_int_eq(j.bracket, 1);
    nas_sched_destroy(&s);
}
END_TEST

START_TEST(test_schedule_sha_second_bracket_fills_barrier) {
    nas_sched *s = make(NAS_SCHED_SHA, 2, 2, 2, 2);
    expect(s, NAS_SCHED_NEW, 0, 0);
    expect(s, NAS_SCHED_NEW, 1, 0);
    /* Bracket 0 waits for its two runs: bracket 1 takes the worker. */
    nas_sched_job j = expect(s, NAS_SCHED_NEW, 2, 0);
    ck_assert_int_eq(j.bracket, 1);
    expect(s, NAS_SCHED_NEW, 3, 0);
    ck_assert_int_eq(next(s).action, NAS_SCHED_WAIT); /* max_open = 2 */
    report(s, 2, 0, 0.1);
    report(s, 3, 0, 0.2);
    j = expect(s, NAS_SCHED_PROMOTE, 3, 1);
    ck_assert_int_eq(j.bracket, 1);
    nas_sched_destroy(&s);
}
END_TEST

/* Failed runs still close a barrier, and only runs with a value climb: of
 * four with one value, one is promoted (not floor(4/2) = 2). */
START_TEST(test_schedule_sha_failures) {
    nas_sched *s = make(NAS_SCHED_SHA, 2, 3, 4, 1);
    for (int i = 0; i < 4; i++)
        next(s);
    report(s, 0, 0, NAN);
    report(s, 1, 0, INFINITY); /* not finite: a failure too */
    report(s, 2, 0, 0.4);
    report(s, 3, 0, NAN);
    expect(s, NAS_SCHED_PROMOTE, 2, 1);
    ck_assert_int_eq(next(s).action, NAS_SCHED_WAIT);
    report(s, 2, 1, 0.5);
    /* floor(1/2) = 0 go on to rung 2: the bracket is over. */
    nas_sched_job j = expect(s, NAS_SCHED_NEW, 4, 0);
    ck_assert_int_eq(j.bracket, 1);
    nas_sched_destroy(&s);
}
END_TEST

START_TEST(test_schedule_report_errors) {
    nas_sched *s = make(NAS_SCHED_ASHA, 3, 2, 0, 0);
    char err[NAS_ERR_LEN] = "";
    next(s);
    ck_assert_int_eq(nas_sched_report(s, 0, 2, 0.5, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "rung 2"));
    ck_assert_int_eq(nas_sched_report(s, 7, 0, 0.5, err), NAS_ENOTFOUND);
    report(s, 0, 0, 0.5);
    /* The same result again (a worker's resend) is not a second result. */
    ck_assert_int_eq(nas_sched_report(s, 0, 0, 0.5, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "candidate 0"));
    nas_sched_destroy(&s);
}
END_TEST

START_TEST(test_schedule_config_errors) {
    nas_sched *s = NULL;
    char err[NAS_ERR_LEN];
    nas_sched_config c = {NAS_SCHED_ASHA, 1, 3, 0, 0};
    ck_assert_int_eq(nas_sched_create(&s, &c, err), NAS_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "eta"));
    c = (nas_sched_config){NAS_SCHED_HYPERBAND, 3, 0, 0, 0};
    ck_assert_int_eq(nas_sched_create(&s, &c, err), NAS_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "rungs"));
    c = (nas_sched_config){NAS_SCHED_HYPERBAND, 10, 9, 0, 0};
    ck_assert_int_eq(nas_sched_create(&s, &c, err), NAS_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "1000000"));
    c = (nas_sched_config){7, 3, 3, 0, 0};
    ck_assert_int_eq(nas_sched_create(&s, &c, err), NAS_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "kind"));
    ck_assert_ptr_null(s);
}
END_TEST

// ---- resume -------------------------------------------------------------------------------------

/* A campaign's view of a run: W workers, each result arriving in an order
 * the rng picks; every decision and report is logged as one number. */
#define W_MAX 8
typedef struct sim {
    nas_sched_job run[W_MAX];
    int n_run;
    nas_rng rng;
    int64_t log[4096];
    int n_log;
} sim;

/* One step: fill free workers, else deliver one result.  Returns 0 when
 * the schedule only waits and nothing runs (cannot happen here). */
static void sim_step(nas_sched *s, sim *m, int workers) {
    if (m->n_run < workers) {
        nas_sched_job j = next(s);
        m->log[m->n_log++] = j.action * 1000000 + j.cand * 100 + j.rung;
        if (j.action != NAS_SCHED_WAIT) {
            m->run[m->n_run++] = j;
            return;
        }
    }
    ck_assert_int_gt(m->n_run, 0);
    int i = (int)nas_rng_below(&m->rng, (uint32_t)m->n_run);
    nas_sched_job j = m->run[i];
    m->run[i] = m->run[--m->n_run];
    /* Some runs fail, the rest score by candidate and a little by rung. */
    double v = j.cand % 7 == 3 ? NAN : value_of(j.cand) + 0.01 * j.rung;
    report(s, j.cand, j.rung, v);
    m->log[m->n_log++] = -(j.cand * 100 + j.rung) - 1;
}

/* For every step p of a run: save after step p, load into a new schedule
 * (the crash), carry on, and the log must equal the uninterrupted run's. */
static void check_resume(int kind, int eta, int rungs, int n0, int max_open, int workers) {
    enum { STEPS = 300 };
    sim ref = {.n_log = 0};
    nas_rng_init(&ref.rng, 7, 1);
    nas_sched *s = make(kind, eta, rungs, n0, max_open);
    for (int i = 0; i < STEPS; i++)
        sim_step(s, &ref, workers);
    nas_sched_destroy(&s);
    for (int p = 0; p < STEPS; p += 7) {
        sim m = {.n_log = 0};
        nas_rng_init(&m.rng, 7, 1);
        s = make(kind, eta, rungs, n0, max_open);
        for (int i = 0; i < p; i++)
            sim_step(s, &m, workers);
        uint8_t *blob = NULL;
        size_t n = 0;
        ck_assert_int_eq(nas_sched_save(s, &blob, &n), NAS_OK);
        nas_sched_destroy(&s);
        s = make(kind, eta, rungs, n0, max_open);
        char err[NAS_ERR_LEN] = "";
        ck_assert_msg(nas_sched_load(s, blob, n, err) == NAS_OK, "%s", err);
        nas_free(blob);
        /* The leased jobs live on in the store and report after the resume. */
        ck_assert_int_eq(nas_sched_running(s), m.n_run);
        for (int i = p; i < STEPS; i++)
            sim_step(s, &m, workers);
        ck_assert_int_eq(m.n_log, ref.n_log);
        for (int i = 0; i < ref.n_log; i++)
            ck_assert_msg(m.log[i] == ref.log[i], "crash at step %d: entry %d is %lld, want %lld",
                          p, i, (long long)m.log[i], (long long)ref.log[i]);
        nas_sched_destroy(&s);
    }
}

START_TEST(test_schedule_resume_asha) {
    check_resume(NAS_SCHED_ASHA, 3, 4, 0, 0, 4);
}
END_TEST

START_TEST(test_schedule_resume_hyperband) {
    check_resume(NAS_SCHED_HYPERBAND, 3, 4, 0, 2, 5);
}
END_TEST

START_TEST(test_schedule_resume_sha) {
    check_resume(NAS_SCHED_SHA, 2, 4, 6, 0, 3);
}
END_TEST

/* A promotion decided and saved is not decided again, nor forgotten. */
START_TEST(test_schedule_resume_promotion_once) {
    nas_sched *s = make(NAS_SCHED_ASHA, 2, 2, 0, 0);
    next(s), next(s);
    report(s, 0, 0, 0.9), report(s, 1, 0, 0.1);
    expect(s, NAS_SCHED_PROMOTE, 0, 1);
    uint8_t *blob;
    size_t n;
    ck_assert_int_eq(nas_sched_save(s, &blob, &n), NAS_OK);
    nas_sched_destroy(&s);
    s = make(NAS_SCHED_ASHA, 2, 2, 0, 0);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_sched_load(s, blob, n, err), NAS_OK);
    nas_free(blob);
    expect(s, NAS_SCHED_NEW, 2, 0); /* not candidate 0 again */
    report(s, 0, 1, 0.95);          /* the promoted job is still known */
    nas_sched_destroy(&s);
}
END_TEST

START_TEST(test_schedule_load_refuses_bad_blobs) {
    nas_sched *s = make(NAS_SCHED_HYPERBAND, 3, 3, 0, 0);
    for (int i = 0; i < 12; i++) {
        nas_sched_job j = next(s);
        if (i % 2) report(s, j.cand, j.rung, value_of(j.cand));
    }
    uint8_t *blob;
    size_t n;
    ck_assert_int_eq(nas_sched_save(s, &blob, &n), NAS_OK);
    char err[NAS_ERR_LEN];
    /* Every truncation is refused, and the schedule is left as it was. */
    nas_sched *t = make(NAS_SCHED_HYPERBAND, 3, 3, 0, 0);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_eq(nas_sched_load(t, blob, k, err), NAS_EFORMAT);
    ck_assert_int_eq(nas_sched_candidates(t), 0);
    /* A blob of another schedule is named as such. */
    nas_sched *u = make(NAS_SCHED_HYPERBAND, 2, 3, 0, 0);
    ck_assert_int_eq(nas_sched_load(u, blob, n, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "different schedule"));
    /* A rung out of range in the last entry (cand 8, rung 4, state 1,
     * value 8, order 8 bytes) is refused by name. */
    blob[n - 8 - 8 - 1 - 4] = 0x7f; /* its rung's low byte */
    ck_assert_int_eq(nas_sched_load(t, blob, n, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "schedule state: bad entry rung"));
    nas_free(blob);
    nas_sched_destroy(&s);
    nas_sched_destroy(&t);
    nas_sched_destroy(&u);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("schedule");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_schedule_hyperband_table);
    tcase_add_test(tc, test_schedule_hyperband_cycle);
    tcase_add_test(tc, test_schedule_asha_by_hand);
    tcase_add_test(tc, test_schedule_asha_no_barrier);
    tcase_add_test(tc, test_schedule_sha_barrier);
    tcase_add_test(tc, test_schedule_sha_second_bracket_fills_barrier);
    tcase_add_test(tc, test_schedule_sha_failures);
    tcase_add_test(tc, test_schedule_report_errors);
    tcase_add_test(tc, test_schedule_config_errors);
    tcase_add_test(tc, test_schedule_resume_asha);
    tcase_add_test(tc, test_schedule_resume_hyperband);
    tcase_add_test(tc, test_schedule_resume_sha);
    tcase_add_test(tc, test_schedule_resume_promotion_once);
    tcase_add_test(tc, test_schedule_load_refuses_bad_blobs);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
