/*
 * test_weights_live.c - which weights the store may drop: regularized
 * evolution's population members are live parents and nothing else is
 * (master/strategy_live.c); a sweep with that predicate keeps exactly the
 * population's weights, and random search keeps nothing and pushes
 * nothing.
 */
#include "master/strategy.h"
#include "master/weights.h"
#include "tests/harness.h"
#include "tests/weights_fixtures.h"

#include <stdio.h>

static nas_strategy_config evo_config(const char *name) {
    nas_strategy_config c;
    nas_strategy_config_default(&c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.space.kind = NAS_SPACE_CELL;
    c.space.n_blocks = 2;
    c.space.shared = 1;
    c.budget = 40;
    c.population = 4;
    c.sample = 2;
    return c;
}

/* Propose and observe one at a time; every observed architecture gets
 * weights in the store (as if its worker had pushed). */
static void run_search(nas_strategy *s, nas_weights *w, int steps, uint64_t *seen, int *n_seen) {
    char err[NAS_ERR_LEN] = "";
    float data[4] = {1, 2, 3, 4};
    nas_safetensors_tensor t = {.name = "head/linear/bias", .ndim = 1, .shape = {4}, .data = data};
    for (int i = 0; i < steps; i++) {
        nas_proposal p;
        ck_assert_msg(nas_strategy_propose(s, &p, err) == NAS_OK, "%s", err);
        nas_observation o = {.genome = p.genome, .hash = nas_genome_hash(&p.genome), .ok = 1};
        o.accuracy = 0.5 + 0.01 * (double)(o.hash % 37);
        nas_wire_weights_msg m;
        nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PUSH);
        ck_assert_int_eq(nas_wire_weights_manifest(&m, &t, 1, data, NULL, err), NAS_OK);
        ck_assert_int_eq(nas_weights_put(w, o.hash, &m, data, i, err), NAS_OK);
        nas_wire_weights_msg_fini(&m);
        ck_assert_msg(nas_strategy_observe(s, &o, err) == NAS_OK, "%s", err);
        seen[(*n_seen)++] = o.hash;
    }
}

static int keep_live(void *ctx, uint64_t arch) {
    return nas_strategy_is_live_parent(ctx, arch);
}

START_TEST(test_weights_live_sweep_keeps_the_population) {
    nas_strategy_config c = evo_config("evolution");
    nas_strategy *s = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_strategy_create(&s, &c, 3, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_strategy_uses_parents(s), 1);
    nas_weights_config wc = {.dir = NULL, .memory_budget = 1 << 20};
    nas_weights *w = NULL;
    ck_assert_int_eq(nas_weights_create(&w, &wc, err), NAS_OK);
    uint64_t seen[64];
    int n_seen = 0;
    run_search(s, w, 12, seen, &n_seen);
    nas_observation pop[8];
    int n_pop = nas_strategy_population(s, pop, 8);
    ck_assert_int_eq(n_pop, 4);
    for (int i = 0; i < n_pop; i++)
        ck_assert(nas_strategy_is_live_parent(s, pop[i].hash));
    int dropped = nas_weights_sweep(w, keep_live, s, err);
    ck_assert_int_gt(dropped, 0);
    /* Exactly the population is left (distinct hashes). */
    uint64_t left[64];
    size_t n_left = nas_weights_list(w, left, 64);
    for (size_t k = 0; k < n_left; k++)
        ck_assert(nas_strategy_is_live_parent(s, left[k]));
    for (int i = 0; i < n_pop; i++)
        ck_assert(nas_weights_has(w, pop[i].hash));
    for (int i = 0; i < n_seen; i++)
        ck_assert_int_eq(nas_weights_has(w, seen[i]), nas_strategy_is_live_parent(s, seen[i]));
    ck_assert_int_eq(nas_weights_sweep(w, keep_live, s, err), 0);
    nas_weights_destroy(&w);
    nas_strategy_destroy(&s);
}
END_TEST

START_TEST(test_weights_live_random_search_has_no_parents) {
    nas_strategy_config c = evo_config("random");
    nas_strategy *s = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_strategy_create(&s, &c, 3, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_strategy_uses_parents(s), 0);
    nas_weights_config wc = {.dir = NULL, .memory_budget = 1 << 20};
    nas_weights *w = NULL;
    ck_assert_int_eq(nas_weights_create(&w, &wc, err), NAS_OK);
    uint64_t seen[16];
    int n_seen = 0;
    run_search(s, w, 3, seen, &n_seen);
    ck_assert(!nas_strategy_is_live_parent(s, seen[0]));
    size_t held = nas_weights_list(w, NULL, 0);
    ck_assert_uint_ge(held, 1);
    ck_assert_int_eq(nas_weights_sweep(w, keep_live, s, err), (int)held);
    ck_assert_uint_eq(nas_weights_list(w, NULL, 0), 0);
    ck_assert_int_eq(nas_strategy_uses_parents(NULL), 0);
    nas_weights_destroy(&w);
    nas_strategy_destroy(&s);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("weights_live");
    TCase *tc = tcase_create("live");
    tcase_add_test(tc, test_weights_live_sweep_keeps_the_population);
    tcase_add_test(tc, test_weights_live_random_search_has_no_parents);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
