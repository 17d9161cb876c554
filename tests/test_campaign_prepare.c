// nas-test: label=e2e timeout=180
/*
 * test_campaign_prepare.c - a search task that fails for good while the
 * PNAS strategy prepares its next level in the thread pool.  Nothing may
 * touch the strategy then, so the failure is held (campaign_hooks.c,
 * failed_later) and recorded when the step is done (prepare_done,
 * campaign_net.c); without that replay the task would stay outstanding
 * forever and the campaign would never end.
 *
 * The window is forced, not hoped for: the test process runs the master
 * in-process with libuv's thread pool cut to one thread, which a job of
 * the test occupies, so the strategy's step waits behind it for as long as
 * the test wants.  PNAS proposes under ASHA, whose promotions (three
 * epochs) are still running when a level's last one-epoch result starts
 * the step; when the window opens with one in flight, the real worker
 * process training it is killed with -9, its lease expires (one attempt
 * allowed: failed for good) inside the window, and only then is the step
 * let go.  The campaign must still end, exactly once per task.
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "master/campaign_internal.h"
#include "tests/e2e_util.h"

#include <limits.h>
#include <semaphore.h>
#include <stdlib.h>

typedef struct window {
    uv_timer_t timer;
    uv_work_t block;
    sem_t go;
    int queued;   /* a blocker job is queued or running */
    int blocking; /* ... and has not been let go */
    nas_campaign *c;
    const char *db;
    pid_t workers[3]; /* by name w0, w1, w2 */
    int waiting;      /* a worker was killed in this window: wait for its lease */
    int64_t deadline; /* abort the campaign then (it hangs without the replay) */
    int windows;      /* prepare windows seen */
    int held;         /* failures held in a window */
} window;

static void block_work(uv_work_t *w) {
    window *k = w->data;
    while (sem_wait(&k->go) != 0) {
    }
}

static void block_done(uv_work_t *w, int status) {
    (void)status;
    ((window *)w->data)->queued = 0;
}

/* Occupy the pool's one thread: the next prepare waits behind it. */
static void block(window *k, uv_loop_t *loop) {
    k->block.data = k;
    ck_assert_int_eq(uv_queue_work(loop, &k->block, block_work, block_done), 0);
    k->queued = k->blocking = 1;
}

/* Let the waiting prepare run (the tick blocks the pool again once it is
 * over, for the next level). */
static void release(window *k) {
    sem_post(&k->go);
    k->blocking = k->waiting = 0;
}

static void on_tick(uv_timer_t *h) {
    window *k = h->data;
    uv_loop_t *loop = h->loop;
    int over = nas_campaign_done(k->c) || nas_now_ms() > k->deadline;
    if (over) {
        /* The blocker would keep the loop running. */
        uv_close((uv_handle_t *)h, NULL);
        if (k->blocking) release(k);
        if (!nas_campaign_done(k->c)) nas_campaign_abort(k->c);
        return;
    }
    if (!k->c->preparing) {
        /* No step now: block the next one. */
        if (!k->queued) block(k, loop);
        return;
    }
    if (!k->blocking) return; /* a step let go, still running */
    if (k->c->n_failed_later > 0) {
        k->held += k->c->n_failed_later;
        release(k);
        return;
    }
    if (k->waiting) return; /* its lease is about to expire */
    k->windows++;
    /* A search task still in flight (a promotion), and who runs it; once
     * a failure was held, the later steps run freely. */
    char who[NAS_STORE_NAME_MAX] = "";
    if (k->held || e2e_leased_task(k->db, NULL, who, sizeof who) <= 0 || who[0] != 'w') {
        release(k);
        return;
    }
    int n = atoi(who + 1);
    ck_assert(n >= 0 && n < 3);
    k->waiting = 1;
    e2e_kill(k->workers[n], SIGKILL);
}

START_TEST(test_campaign_failure_while_pnas_prepares_is_recorded) {
    /* Before the pool's first use in this (forked) process. */
    setenv("UV_THREADPOOL_SIZE", "1", 1);
    e2e_reap_setup();
    e2e_env e;
    e2e_env_init(&e, 60);
    /* Three blocks over two operations: two steps between levels. */
    e2e_write(e.cfg,
              "name: window\nseed: 5\n"
              "space:\n  kind: cell\n  blocks: 3\n  ops: [id, max3x3]\n"
              "strategy:\n  name: pnas\n  beam: 3\n  ensemble: 2\n"
              "budget:\n  evaluations: 1000\n"
              "fidelity:\n  epochs: 1\n"
              "weights:\n  inherit: false\n"
              "schedule:\n  kind: asha\n  eta: 2\n  rungs: [{epochs: 1}, {epochs: 3}]\n"
              "listen:\n  control: %s\n  weights: tcp://127.0.0.1:%d\n  status: %s\n"
              "workers:\n  heartbeat_ms: 100\n  liveness: 3\n  max_attempts: 1\n"
              "store: %s\n",
              e.ctl, e.port + 1, e.sts, e.db);
    nas_config cfg;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_config_load(e.cfg, &cfg, err) == NAS_OK, "%s", err);
    nas_campaign_options opt;
    nas_campaign_options_default(&opt);
    opt.eval_mode = NAS_EVAL_SYNTHETIC;
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    window k;
    memset(&k, 0, sizeof k);
    ck_assert_int_eq(sem_init(&k.go, 0, 0), 0);
    ck_assert_msg(nas_campaign_create(&k.c, &cfg, &opt, &loop, err) == NAS_OK, "%s", err);
    k.db = e.db;
    k.deadline = nas_now_ms() + 60000;
    block(&k, &loop);
    ck_assert_msg(nas_campaign_start(k.c, err) == NAS_OK, "%s", err);
    /* One-epoch tasks take 40 ms, promotions 120 ms: when a level's last
     * result comes, another worker is most likely in a promotion. */
    for (int i = 0; i < 3; i++) {
        char name[8], log[PATH_MAX];
        snprintf(name, sizeof name, "w%d", i);
        e2e_log_path(&e, name, log, sizeof log);
        k.workers[i] = e2e_start_worker(log, NULL, e.ctl, name, "40", NULL);
    }
    uv_timer_init(&loop, &k.timer);
    k.timer.data = &k;
    uv_timer_start(&k.timer, on_tick, 1, 1);
    uv_unref((uv_handle_t *)&k.timer);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    if (!uv_is_closing((uv_handle_t *)&k.timer)) uv_close((uv_handle_t *)&k.timer, NULL);
    if (k.blocking) release(&k);
    uv_run(&loop, UV_RUN_DEFAULT);
    int done = nas_campaign_done(k.c);
    nas_campaign_destroy(&k.c);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    e2e_reap_all();
    fprintf(stderr, "prepare window: %d window(s), %d failure(s) held\n", k.windows, k.held);
    ck_assert_msg(k.held >= 1, "no failure landed in a prepare window (%d windows)", k.windows);
    ck_assert_msg(done, "the campaign did not end: a failure held in the window was lost");
    /* The failed promotion is recorded as failed, every other task done. */
    nas_store_counts s;
    e2e_counts(e.db, &s, NULL);
    ck_assert_int_eq(s.queued + s.leased, 0);
    ck_assert_int_ge(s.failed, 1);
    ck_assert_int_gt(s.done, 10);
    nas_config_fini(&cfg);
    sem_destroy(&k.go);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("campaign_prepare");
    TCase *tc = tcase_create("window");
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, test_campaign_failure_while_pnas_prepares_is_recorded);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
