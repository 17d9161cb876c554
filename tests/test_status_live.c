// nas-test: label=e2e timeout=120
/*
 * test_status_live.c - the live master's status figures, kept up to date
 * as results are committed (master/status_live.h), against the same
 * figures computed from scratch from its store (nas_status_from_store on a
 * second, read-only connection to the same file): task counts by state,
 * the best result, epochs spent, runs stopped early and the fidelity rank
 * correlations.  A multi-fidelity campaign (two ASHA rungs, median early
 * stopping, a final stage) runs in-process with two synthetic workers; a
 * timer on the master's loop compares the two documents every few
 * milliseconds while it runs, and the master is then aborted (its leases
 * left in the store, as after kill -9) and a new one on the same file,
 * which builds its figures from that store, is compared to the end.
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "common/json.h"
#include "master/campaign_internal.h"
#include "master/status.h"
#include "tests/e2e_util.h"

#include <limits.h>

typedef struct checker {
    uv_timer_t timer;
    nas_campaign *c;
    nas_store *ro;    /* the same file, read-only: what nasctl status --db reads */
    int abort_after;  /* abort the master after this many results (0: run to the end) */
    int compared;     /* documents compared */
    int with_pairs;   /* ... of which had fidelity rank pairs */
    int with_stops;   /* ... and runs stopped early */
    int with_leases;  /* ... and tasks in flight */
    char first_diff[512];
} checker;

static void compare_now(checker *k) {
    char err[NAS_ERR_LEN];
    char *live = nas_campaign_status_json(k->c);
    char *scratch = nas_status_from_store(k->ro, nas_wall_ms(), err);
    ck_assert_ptr_nonnull(live);
    ck_assert_msg(scratch != NULL, "%s", err);
    nas_json *a = NULL, *b = NULL;
    ck_assert_int_eq(nas_json_parse(live, strlen(live), 0, &a, err), NAS_OK);
    ck_assert_int_eq(nas_json_parse(scratch, strlen(scratch), 0, &b, err), NAS_OK);
    static const char *const keys[] = {"done", "queued", "in_flight", "failed", "final_done",
                                       "best", "fidelity_ranks"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys && !k->first_diff[0]; i++)
        if (!nas_json_same(nas_json_get(a, keys[i]), nas_json_get(b, keys[i])))
            snprintf(k->first_diff, sizeof k->first_diff, "\"%s\" differs after %d result(s)",
                     keys[i], (int)nas_json_get(b, "done")->number);
    static const char *const res[] = {"epochs", "stopped"};
    for (size_t i = 0; i < 2 && !k->first_diff[0]; i++)
        if (!nas_json_same(nas_json_get(nas_json_get(a, "resources"), res[i]),
                           nas_json_get(nas_json_get(b, "resources"), res[i])))
            snprintf(k->first_diff, sizeof k->first_diff, "resources.%s differs", res[i]);
    if (k->first_diff[0]) {
        fprintf(stderr, "live:    %s\nscratch: %s\n", live, scratch);
    } else {
        k->compared++;
        const nas_json *pairs = nas_json_get(nas_json_get(b, "fidelity_ranks"), "pairs");
        k->with_pairs += pairs && pairs->len > 0;
        k->with_stops += nas_json_get(nas_json_get(b, "resources"), "stopped")->number > 0;
        k->with_leases += nas_json_get(b, "in_flight")->number > 0;
    }
    nas_json_free(&a);
    nas_json_free(&b);
    nas_free(live);
    nas_free(scratch);
}

/* Called on the master's loop between its batches: everything the live
 * figures counted is committed, so the read-only connection sees it too. */
static void on_check(uv_timer_t *h) {
    checker *k = h->data;
    if (!k->first_diff[0]) compare_now(k);
    if (k->first_diff[0] || (k->abort_after && k->c->n_done >= k->abort_after)) {
        k->abort_after = 0;
        uv_close((uv_handle_t *)h, NULL);
        nas_campaign_abort(k->c);
    }
}

/* One master on the file until it ends (done, or aborted after
 * abort_after results), compared all along; returns whether it is done. */
static int run_master(const nas_config *cfg, const char *db, int abort_after, checker *k) {
    char err[NAS_ERR_LEN];
    nas_campaign_options opt;
    nas_campaign_options_default(&opt);
    opt.eval_mode = NAS_EVAL_SYNTHETIC;
    opt.resume_grace_ms = 300;
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    nas_campaign *c = NULL;
    ck_assert_msg(nas_campaign_create(&c, cfg, &opt, &loop, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_store_open_ro(&k->ro, db, err), NAS_OK);
    k->c = c;
    k->abort_after = abort_after;
    /* The figures a restarted master built from the store, before any work. */
    compare_now(k);
    ck_assert_msg(nas_campaign_start(c, err) == NAS_OK, "%s", err);
    uv_timer_init(&loop, &k->timer);
    k->timer.data = k;
    uv_timer_start(&k->timer, on_check, 3, 3);
    uv_unref((uv_handle_t *)&k->timer); /* the campaign's handles keep the loop */
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    if (!uv_is_closing((uv_handle_t *)&k->timer)) {
        uv_close((uv_handle_t *)&k->timer, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    /* And once more at the end, every result in. */
    if (!k->first_diff[0]) compare_now(k);
    int done = nas_campaign_done(c);
    ck_assert_msg(nas_campaign_status(c, err) == NAS_OK, "%s", err);
    nas_campaign_destroy(&c);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    nas_store_close(&k->ro);
    return done;
}

START_TEST(test_status_live_equals_scratch_through_a_restart) {
    const char *dir = nas_tmpdir_make();
    char cfgp[PATH_MAX], db[PATH_MAX], ep[64];
    nas_path_join(cfgp, sizeof cfgp, dir, "c.yaml");
    nas_path_join(db, sizeof db, dir, "c.db");
    int port = e2e_port(0);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    e2e_write_campaign(cfgp, "live", 40, port, "127.0.0.1", db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n"
                       "schedule:\n  kind: asha\n  eta: 2\n  rungs: [{epochs: 1}, {epochs: 3}]\n"
                       "early_stop:\n  rule: median\n  min_epochs: 1\n  min_runs: 2\n"
                       "final:\n  top_k: 3\n  fidelity:\n    epochs: 2\n");
    nas_config cfg;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_config_load(cfgp, &cfg, err) == NAS_OK, "%s", err);
    e2e_agent a, b;
    e2e_agent_start(&a, ep, "live-a", 5);
    e2e_agent_start(&b, ep, "live-b", 8);
    checker k;
    memset(&k, 0, sizeof k);
    int done = run_master(&cfg, db, 15, &k);
    ck_assert_msg(!k.first_diff[0], "run 1: %s", k.first_diff);
    ck_assert_int_eq(done, 0);
    done = run_master(&cfg, db, 0, &k);
    ck_assert_msg(!k.first_diff[0], "run 2 (restarted on the store): %s", k.first_diff);
    ck_assert_int_eq(done, 1);
    e2e_agent_stop(&a);
    e2e_agent_stop(&b);
    /* The comparisons saw what they are for: rung and final pairs, early
     * stops, tasks in flight. */
    fprintf(stderr, "status_live: %d comparisons, %d with pairs, %d with stops, %d in flight\n",
            k.compared, k.with_pairs, k.with_stops, k.with_leases);
    ck_assert_int_ge(k.compared, 10);
    ck_assert_int_gt(k.with_pairs, 0);
    ck_assert_int_gt(k.with_leases, 0);
    nas_config_fini(&cfg);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("status_live");
    TCase *tc = tcase_create("inproc");
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, test_status_live_equals_scratch_through_a_restart);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
