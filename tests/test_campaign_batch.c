// nas-test: label=e2e timeout=180
/*
 * test_campaign_batch.c - group commit seen from the workers: a campaign
 * with three real agents (synthetic evaluation, so a batch often holds
 * several results) whose store fails at a chosen statement, for several
 * choices, including the batch's COMMIT.  Whatever statement fails:
 *  - no worker was ever acknowledged a result the file does not hold (the
 *    acknowledgements wait for the commit);
 *  - the file is consistent, and the strategy state it holds loads with
 *    the history its rows give (state and rows committed together).
 */
#include "common/alloc.h"
#include "master/campaign_internal.h"
#include "tests/e2e_util.h"
#include "worker/agent.h"

#include <limits.h>
#include <pthread.h>

/* Arms the store's fault injection once `after` results are recorded. */
typedef struct injector {
    uv_timer_t timer;
    nas_campaign *c;
    int after, step, injected;
} injector;

static void inject(uv_timer_t *h) {
    injector *in = h->data;
    if (in->injected || in->c->n_done < in->after) return;
    nas_store_fail_after(in->c->store, in->step);
    in->injected = 1;
    uv_close((uv_handle_t *)h, NULL);
}

/* One campaign whose store fails at the `step`-th statement after three
 * results; returns 1 if the failure stopped it (0: it finished first). */
static int run_failing(int slot, int step) {
    const char *dir = nas_tmpdir_make();
    char cfgp[PATH_MAX], db[PATH_MAX], ep[64], err[NAS_ERR_LEN] = "";
    nas_path_join(cfgp, sizeof cfgp, dir, "c.yaml");
    nas_path_join(db, sizeof db, dir, "c.db");
    int port = e2e_port(slot);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    e2e_write_campaign(cfgp, "batch", 40, port, "127.0.0.1", db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    nas_config cfg;
    ck_assert_msg(nas_config_load(cfgp, &cfg, err) == NAS_OK, "%s", err);
    nas_campaign_options opt;
    nas_campaign_options_default(&opt);
    opt.eval_mode = NAS_EVAL_SYNTHETIC;
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    nas_campaign *c = NULL;
    ck_assert_int_eq(nas_campaign_create(&c, &cfg, &opt, &loop, err), NAS_OK);
    ck_assert_int_eq(nas_campaign_start(c, err), NAS_OK);
    injector in = {.c = c, .after = 3, .step = step};
    uv_timer_init(&loop, &in.timer);
    in.timer.data = &in;
    uv_timer_start(&in.timer, inject, 1, 1);
    e2e_agent a[3];
    char name[3][16];
    for (int i = 0; i < 3; i++) {
        snprintf(name[i], sizeof name[i], "batch-%d", i);
        e2e_agent_start(&a[i], ep, name[i], 2);
    }
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    int failed = nas_campaign_status(c, err) < 0;
    if (!in.injected) uv_close((uv_handle_t *)&in.timer, NULL);
    nas_campaign_destroy(&c);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    int acked = 0;
    for (int i = 0; i < 3; i++)
        acked += e2e_agent_stop(&a[i]);

    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, db, err), NAS_OK);
    ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
    nas_store_counts k;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_SEARCH, &k, err), NAS_OK);
    ck_assert_msg(acked <= k.done, "step %d: %d results acknowledged, %lld in the store", step,
                  acked, (long long)k.done);
    nas_strategy *s = NULL;
    ck_assert_int_eq(nas_strategy_create(&s, &cfg.strategy, cfg.seed, err), NAS_OK);
    ck_assert_msg(nas__campaign_state_load(st, s, err) == NAS_OK, "step %d: %s", step, err);
    ck_assert_int_eq(nas_strategy_history_len(s), (int)(k.done + k.failed));
    nas_strategy_destroy(&s);
    nas_store_close(&st);
    nas_config_fini(&cfg);
    nas_tmpdir_rm(dir);
    return failed;
}

/* Steps 1-14 after the third result cover every kind of statement of a
 * batch: its BEGIN, a result's savepoint and writes, a proposal's, the
 * strategy state and the COMMIT.  (Sending acknowledgements straight from
 * the hook instead of the outbox fails here: an Ack for a result whose
 * batch then failed reaches its worker.) */
START_TEST(test_campaign_batch_acks_follow_commit) {
    int stopped = 0;
    for (int step = 1; step <= 14; step++)
        stopped += run_failing(step, step);
    ck_assert_int_ge(stopped, 10); /* the failures did hit running campaigns */
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("campaign_batch");
    TCase *tc = tcase_create("batch");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_campaign_batch_acks_follow_commit);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
