/*
 * test_ps_evaluate.c - inheritance inside the worker's evaluator
 * (worker/evaluate.c with worker/ps_client.h) against the real serve loop
 * over loopback TCP: a task flagged push_weights stores its trained
 * weights under its canonical hash; a child naming that parent trains
 * from them (a different result than fresh); a child naming a parent the
 * store does not hold trains exactly as a fresh child (bit-identical
 * figures), so the fallback really is fresh initialisation.
 */
#include "master/weights.h"
#include "tests/e2e_util.h"
#include "tests/harness.h"
#include "tests/weights_fixtures.h"
#include "worker/evaluate.h"
#include "worker/ps_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct server {
    void *router;
    nas_weights *w;
    atomic_int stop;
} server;

static void *serve_main(void *arg) {
    server *s = arg;
    char err[NAS_ERR_LEN];
    while (!atomic_load(&s->stop)) {
        zmq_pollitem_t it = {s->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) > 0)
            while (nas_weights_serve_one(s->w, s->router, 0, err) == NAS_OK) {
            }
    }
    return NULL;
}

static nas_wire_task train_task(uint64_t id, const char *genome, const char *dir) {
    nas_wire_task t;
    memset(&t, 0, sizeof t);
    t.task_id = id;
    t.attempt = 1;
    t.mode = NAS_EVAL_TRAIN;
    snprintf(t.genome, sizeof t.genome, "%s", genome);
    snprintf(t.dataset, sizeof t.dataset, "mnist");
    snprintf(t.data_dir, sizeof t.data_dir, "%s", dir);
    t.fidelity = nas_fidelity_default();
    t.fidelity.resolution = 14;
    t.fidelity.channels = 4;
    t.fidelity.cells = 1;
    t.fidelity.epochs = 1;
    t.fidelity.batch = 16;
    t.fidelity.val_size = 40;
    t.fidelity.train_subset = 0;
    t.fidelity.seed = 3;
    return t;
}

static uint64_t hash_of(const char *text) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(text, strlen(text), &g, err), NAS_OK);
    return nas_genome_hash(&g);
}

START_TEST(test_ps_evaluate_inherits_and_falls_back_to_fresh) {
    const char *dir = nas_tmpdir_make();
    e2e_write_bar_idx(dir, "train", 160);
    e2e_write_bar_idx(dir, "t10k", 20);
    void *ctx = zmq_ctx_new();
    server s = {.router = zmq_socket(ctx, ZMQ_ROUTER)};
    char err[NAS_ERR_LEN] = "", ep[128];
    ck_assert_int_eq(zmq_bind(s.router, "tcp://127.0.0.1:*"), 0);
    size_t n = sizeof ep;
    zmq_getsockopt(s.router, ZMQ_LAST_ENDPOINT, ep, &n);
    nas_weights_config wc = {.dir = NULL, .memory_budget = 1 << 24};
    ck_assert_int_eq(nas_weights_create(&s.w, &wc, err), NAS_OK);
    pthread_t th;
    pthread_create(&th, NULL, serve_main, &s);
    nas_ps_client *ps = NULL;
    ck_assert_int_eq(nas_ps_client_create(&ps, ctx, ep, 5000, err), NAS_OK);
    nas_evaluator_config c;
    nas_evaluator_config_default(&c);
    c.ps = ps;
    nas_evaluator *ev = NULL;
    ck_assert_int_eq(nas_evaluator_create(&ev, &c, err), NAS_OK);

    /* The parent trains and pushes. */
    nas_wire_task t = train_task(1, FIX_PARENT, dir);
    t.push_weights = 1;
    nas_wire_result parent, fresh, inherited, fallback;
    ck_assert_msg(nas_evaluator_run(ev, &t, NULL, &parent, err) == NAS_OK, "%s", err);
    uint64_t ph = hash_of(FIX_PARENT);
    nas_ps_weights *pw = NULL;
    ck_assert_int_eq(nas_ps_client_pull(ps, ph, &pw, err), NAS_OK);
    size_t nt = 0;
    nas_ps_weights_tensors(pw, &nt);
    ck_assert_uint_gt(nt, 10);
    nas_ps_weights_destroy(&pw);

    /* The child: fresh, inherited, and naming a parent nobody holds. */
    t = train_task(2, FIX_CHILD, dir);
    ck_assert_msg(nas_evaluator_run(ev, &t, NULL, &fresh, err) == NAS_OK, "%s", err);
    t.has_parent = 1;
    t.parent_hash = ph;
    ck_assert_msg(nas_evaluator_run(ev, &t, NULL, &inherited, err) == NAS_OK, "%s", err);
    t.parent_hash = ph ^ 0x5555;
    ck_assert_msg(nas_evaluator_run(ev, &t, NULL, &fallback, err) == NAS_OK, "%s", err);
    ck_assert(fresh.val_loss != inherited.val_loss);
    ck_assert(fresh.val_loss == fallback.val_loss);
    ck_assert(fresh.val_acc == fallback.val_acc);
    /* Without the flag nothing was pushed for the child. */
    ck_assert_int_eq(nas_ps_client_pull(ps, hash_of(FIX_CHILD), &pw, err), NAS_ENOTFOUND);
    nas_weights_stats st;
    atomic_store(&s.stop, 1);
    pthread_join(th, NULL);
    nas_weights_stats_get(s.w, &st);
    ck_assert_int_eq(st.puts, 1);
    ck_assert_int_ge(st.hits, 2); /* the test's pull and the child's */
    nas_evaluator_destroy(&ev);
    nas_ps_client_destroy(&ps);
    nas_weights_destroy(&s.w);
    zmq_close(s.router);
    zmq_ctx_term(ctx);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("ps_evaluate");
    TCase *tc = tcase_create("evaluate");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ps_evaluate_inherits_and_falls_back_to_fresh);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
