/*
 * test_strategy_core.c - the incremental strategy state (format 2): a
 * strategy driven the way the campaign drives it (every proposal a search
 * task, every outcome a result or failure with its observation number, the
 * core blob written at the end of each batch) is rebuilt from the store
 * and must then be the same strategy as the one that kept running in
 * memory: the same core, the same proposals from there on, and the same
 * whole state (format 1, history included) at the end.  For random search,
 * regularized evolution and PNAS.  Also: the core does not grow with the
 * history, a core that disagrees with the store is refused with a message,
 * and a store holding a format-1 blob is moved to format 2 on load.
 */
#include "master/campaign_internal.h"
#include "master/store_internal.h"
#include "master/strategy.h"
#include "master/strategy_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "tests/harness.h"

#include <stdio.h>
#include <string.h>

static char tmp[4096], db_path[4096];

static void setup(void) {
    snprintf(tmp, sizeof tmp, "%s", nas_tmpdir_make());
    nas_path_join(db_path, sizeof db_path, tmp, "campaign.db");
}

static void teardown(void) {
    nas_tmpdir_rm(tmp);
}

static nas_strategy_config config_of(const char *name, int budget) {
    nas_strategy_config c;
    nas_strategy_config_default(&c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.space.kind = NAS_SPACE_NB201;
    c.space.n_blocks = 3;
    c.budget = budget;
    c.population = 6;
    c.sample = 3;
    c.ensemble = 1; /* small predictors keep the suite fast under sanitizers */
    c.use_lstm = 0;
    c.beam = 4;
    return c;
}

static nas_strategy *make(const nas_strategy_config *c) {
    nas_strategy *s = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_strategy_create(&s, c, 99, err) == NAS_OK, "create: %s", err);
    return s;
}

static nas_store *open_store(void) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = NULL;
    ck_assert_msg(nas_store_open(&st, db_path, err) == NAS_OK, "%s", err);
    nas_store_campaign c = {
        .name = "core", .text = "name: core\n", .canonical = "name: core\n", .hash = 5, .seed = 99};
    ck_assert_msg(nas_store_campaign_bind(st, &c, 1000, NULL, err) == NAS_OK, "%s", err);
    return st;
}

/* The evaluator: deterministic, one network in six fails. */
static int outcome(uint64_t hash, double *acc, int64_t *params) {
    *acc = 0.05 + (double)(hash % 900) / 1000.0;
    *params = 100 + (int64_t)(hash % 50);
    return hash % 6 != 0;
}

/* A campaign in miniature: proposals in flight (at most `window`), the
 * oldest observed first.  With `st` every step goes through the store as
 * the campaign does it (one batch per step, core written at its end);
 * without, the strategy runs in memory only.  Records proposal hashes. */
typedef struct sim {
    nas_strategy *s;
    nas_store *st;
    int window;
    nas_genome pend[8];
    int64_t pend_id[8];
    int n_pend;
    uint64_t made[400];
    int n_made;
} sim;

static void batch_end(sim *m, int version) {
    char err[NAS_ERR_LEN] = "";
    uint8_t *blob = NULL;
    size_t n = 0;
    if (version == 2)
        ck_assert_int_eq(nas_strategy_save_core(m->s, &blob, &n), NAS_OK);
    else
        ck_assert_int_eq(nas_strategy_save(m->s, &blob, &n), NAS_OK);
    ck_assert_msg(nas_store_strategy_save(m->st, blob, n, 3000, err) == NAS_OK, "%s", err);
    nas_free(blob);
    ck_assert_msg(nas_store_batch_commit(m->st, err) == NAS_OK, "%s", err);
}

/* One step: a proposal if the window allows and the strategy has one, else
 * an observation of the oldest. Returns 0 when nothing is left to do.
 * `version` 1 plays an old master (whole-history blob, no observation
 * numbers). */
static int sim_step(sim *m, int version) {
    char err[NAS_ERR_LEN] = "";
    if (m->st) ck_assert_msg(nas_store_batch_begin(m->st, err) == NAS_OK, "%s", err);
    nas_proposal p;
    int rc = m->n_pend < m->window ? nas_strategy_propose(m->s, &p, err) : NAS_EAGAIN;
    if (rc == NAS_OK) {
        nas_genome g;
        nas_genome_canonical(&p.genome, &g);
        int64_t id = 0;
        if (m->st) {
            char text[NAS_GENOME_TEXT_MAX];
            nas_genome_format(&g, text, sizeof text);
            nas_store_new_task t = {.arch_hash = nas_genome_hash(&g),
                                    .arch_text = text,
                                    .stage = NAS_STORE_STAGE_SEARCH,
                                    .fidelity = nas_fidelity_default(),
                                    .has_parent = p.has_parent,
                                    .parent_hash = p.parent_hash};
            ck_assert_msg(nas_store_task_add(m->st, &t, NULL, 0, 2000, &id, err) == NAS_OK, "%s",
                          err);
            ck_assert_int_eq(nas_store_task_lease(m->st, id, 1, "w1", "h1", "", 9000, 2000, err),
                             NAS_OK);
        }
        m->made[m->n_made++] = nas_genome_hash(&g);
        m->pend[m->n_pend] = g;
        m->pend_id[m->n_pend++] = id;
        if (m->st) batch_end(m, version);
        return 1;
    }
    ck_assert_msg(rc == NAS_EAGAIN || rc == NAS_ESTATE, "propose: %s", err);
    if (m->n_pend == 0) {
        if (m->st) nas_store_batch_abort(m->st);
        return 0;
    }
    nas_observation o = {.genome = m->pend[0], .hash = nas_genome_hash(&m->pend[0])};
    o.ok = outcome(o.hash, &o.accuracy, &o.params);
    if (!o.ok) o.accuracy = 0, o.params = 0;
    if (m->st) {
        if (o.ok) {
            /* As the campaign does: the number goes with the result. */
            nas_store_result r = {.accuracy = o.accuracy,
                                  .params = o.params,
                                  .worker = "w1",
                                  .observed = version == 2,
                                  .seq = nas_strategy_history_len(m->s)};
            ck_assert_int_eq(nas_store_put_result(m->st, m->pend_id[0], 1, &r, NULL, 0, 4000, err),
                             NAS_STORE_APPLIED);
        } else {
            ck_assert_int_eq(nas_store_put_failure(m->st, m->pend_id[0], 1, NAS_STORE_FAIL_TRAINING,
                                                   "nan", 1, NULL, 0, 4000, err),
                             NAS_STORE_FAILED_FINAL);
        }
    }
    ck_assert_msg(nas_strategy_observe(m->s, &o, err) == NAS_OK, "observe: %s", err);
    if (m->st && version == 2 && !o.ok)
        ck_assert_msg(nas_store_task_observed(m->st, m->pend_id[0],
                                              nas_strategy_history_len(m->s) - 1, o.ok,
                                              err) == NAS_OK,
                      "%s", err);
    memmove(m->pend, m->pend + 1, sizeof *m->pend * (size_t)(m->n_pend - 1));
    memmove(m->pend_id, m->pend_id + 1, sizeof *m->pend_id * (size_t)(m->n_pend - 1));
    m->n_pend--;
    if (m->st) batch_end(m, version);
    return 1;
}

static void assert_same_blob(nas_strategy *a, nas_strategy *b, int core) {
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    ck_assert_int_eq(core ? nas_strategy_save_core(a, &x, &nx) : nas_strategy_save(a, &x, &nx),
                     NAS_OK);
    ck_assert_int_eq(core ? nas_strategy_save_core(b, &y, &ny) : nas_strategy_save(b, &y, &ny),
                     NAS_OK);
    ck_assert_uint_eq(nx, ny);
    ck_assert_msg(memcmp(x, y, nx) == 0, "%s state differs", core ? "core" : "whole");
    nas_free(x);
    nas_free(y);
}

/* Drive `before` steps through the store (blob format `version`), rebuild
 * a second strategy from the store alone, then run both to the end. */
static void check_rebuild(const char *name, int budget, int before, int version) {
    nas_strategy_config c = config_of(name, budget);
    sim a = {.s = make(&c), .st = open_store(), .window = 3};
    for (int i = 0; i < before; i++)
        ck_assert(sim_step(&a, version));
    ck_assert_int_gt(a.n_pend, 0); /* something is in flight at the cut */

    sim b = a;
    b.s = make(&c);
    b.st = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas__campaign_state_load(a.st, b.s, err) == NAS_OK, "%s: %s", name, err);
    assert_same_blob(a.s, b.s, 1);
    assert_same_blob(a.s, b.s, 0);
    ck_assert_int_eq(nas_strategy_history_len(b.s), nas_strategy_history_len(a.s));
    nas_store_close(&a.st);

    int n0 = a.n_made;
    while (sim_step(&a, version) | sim_step(&b, version))
        ;
    ck_assert_int_eq(a.n_made, b.n_made);
    ck_assert_int_gt(a.n_made, n0); /* the continuation proposed something */
    for (int i = 0; i < a.n_made; i++)
        ck_assert_msg(a.made[i] == b.made[i], "%s: proposal %d differs", name, i);
    ck_assert(nas_strategy_done(a.s) && nas_strategy_done(b.s));
    assert_same_blob(a.s, b.s, 0);
    nas_strategy_destroy(&a.s);
    nas_strategy_destroy(&b.s);
}

/* A campaign's strategy keeps in memory only what it reads again
 * (nas_strategy_bound_history): it proposes exactly what a strategy with
 * its whole history proposes, a bounded strategy rebuilt from the store
 * is in the same state, and the history it holds stays at the size of the
 * population (evolution) or nothing (random) while results accumulate. */
static void check_bounded(const char *name, int budget, int before) {
    nas_strategy_config c = config_of(name, budget);
    sim a = {.s = make(&c), .st = open_store(), .window = 3};
    sim ref = {.s = make(&c), .window = 3};
    nas_strategy_bound_history(a.s);
    for (int i = 0; i < before; i++) {
        ck_assert(sim_step(&a, 2));
        ck_assert(sim_step(&ref, 2));
    }
    assert_same_blob(a.s, ref.s, 1);
    ck_assert_int_gt(a.s->hist_off, before / 4);
    ck_assert_int_le(a.s->n_hist - a.s->hist_off, 4 * c.population + 8);
    ck_assert_int_le(a.s->cap_hist, 8 * c.population + 32);
    uint8_t *blob = NULL;
    size_t n = 0;
    ck_assert_int_eq(nas_strategy_save(a.s, &blob, &n), NAS_ESTATE); /* no whole history here */
    nas_observation o;
    ck_assert_int_eq(nas_strategy_history_get(a.s, 0, &o), NAS_ERANGE);

    sim b = a;
    b.s = make(&c);
    b.st = NULL;
    nas_strategy_bound_history(b.s);
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas__campaign_state_load(a.st, b.s, err) == NAS_OK, "%s: %s", name, err);
    assert_same_blob(a.s, b.s, 1);
    ck_assert_int_le(b.s->cap_hist, 8 * c.population + 32); /* the loaded history was let go */
    nas_store_close(&a.st);
    while (sim_step(&a, 2) | sim_step(&b, 2) | sim_step(&ref, 2))
        ;
    ck_assert_int_eq(a.n_made, ref.n_made);
    ck_assert_int_eq(b.n_made, ref.n_made);
    for (int i = 0; i < ref.n_made; i++)
        ck_assert_msg(a.made[i] == ref.made[i] && b.made[i] == ref.made[i],
                      "%s: proposal %d differs", name, i);
    assert_same_blob(a.s, ref.s, 1);
    assert_same_blob(b.s, ref.s, 1);
    nas_strategy_destroy(&a.s);
    nas_strategy_destroy(&b.s);
    nas_strategy_destroy(&ref.s);
}

START_TEST(test_bounded_evolution) {
    check_bounded("evolution", 300, 200);
}
END_TEST

START_TEST(test_bounded_random) {
    check_bounded("random", 300, 200);
}
END_TEST

START_TEST(test_rebuild_random) {
    check_rebuild("random", 40, 25, 2);
}
END_TEST

START_TEST(test_rebuild_evolution) {
    check_rebuild("evolution", 60, 40, 2);
}
END_TEST

START_TEST(test_rebuild_pnas) {
    check_rebuild("pnas", 30, 17, 2);
}
END_TEST

/* A store an older master wrote (whole-history blobs, no observation
 * numbers) is numbered and moved to the core on load, and continues as if
 * nothing happened; the next load reads the core. */
START_TEST(test_rebuild_from_format1) {
    check_rebuild("evolution", 50, 30, 1);
    /* check_rebuild closed its store; the file now holds a core. */
    char err[NAS_ERR_LEN] = "";
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, db_path, err), NAS_OK);
    uint8_t *blob = NULL;
    size_t n = 0;
    ck_assert_int_eq(nas_store_strategy_load(st, &blob, &n, NULL, err), NAS_OK);
    ck_assert_int_eq(nas_strategy_blob_version(blob, n), 2);
    nas_free(blob);
    nas_store_close(&st);
}
END_TEST

/* O(population + in flight), not O(history): the core of evolution is the
 * same size after 20 proposals as after 150, with 3 in flight both times. */
START_TEST(test_core_size_constant) {
    nas_strategy_config c = config_of("evolution", 200);
    sim m = {.s = make(&c), .window = 3};
    size_t sizes[2] = {0, 0};
    int marks[2] = {20, 150}, k = 0;
    for (int i = 0; k < 2 && sim_step(&m, 2); i++) {
        if (m.n_made != marks[k] || m.n_pend != 3) continue;
        uint8_t *blob = NULL;
        ck_assert_int_eq(nas_strategy_save_core(m.s, &blob, &sizes[k]), NAS_OK);
        nas_free(blob);
        k++;
    }
    ck_assert_int_eq(k, 2);
    ck_assert_uint_eq(sizes[0], sizes[1]);
    uint8_t *whole = NULL;
    size_t nw = 0;
    ck_assert_int_eq(nas_strategy_save(m.s, &whole, &nw), NAS_OK);
    ck_assert_uint_gt(nw, 10 * sizes[1]); /* what format 1 wrote at every step */
    nas_free(whole);
    nas_strategy_destroy(&m.s);
}
END_TEST

/* A core and a history that disagree are refused with a message that says
 * so, and the strategy stays as it was; each format names the other. */
START_TEST(test_core_refuses_mismatch) {
    nas_strategy_config c = config_of("random", 30);
    sim m = {.s = make(&c), .window = 2};
    for (int i = 0; i < 9; i++)
        ck_assert(sim_step(&m, 2));
    uint8_t *core = NULL, *whole = NULL;
    size_t nc = 0, nw = 0;
    ck_assert_int_eq(nas_strategy_save_core(m.s, &core, &nc), NAS_OK);
    ck_assert_int_eq(nas_strategy_save(m.s, &whole, &nw), NAS_OK);
    /* One proposal short of what the core counts. */
    nas_proposal props[16];
    memset(props, 0, sizeof props);
    nas_strategy_history h = {.proposals = props, .n_proposals = m.n_made - 1};
    nas_strategy *t = make(&c);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_strategy_load_core(t, core, nc, &h, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "disagree"));
    ck_assert_int_eq(nas_strategy_history_len(t), 0);
    ck_assert_int_eq(nas_strategy_load_core(t, whole, nw, &h, err), NAS_EVERSION);
    ck_assert_ptr_nonnull(strstr(err, "nas_strategy_load"));
    ck_assert_int_eq(nas_strategy_load(t, core, nc, err), NAS_EVERSION);
    ck_assert_ptr_nonnull(strstr(err, "load_core"));
    core[nc / 2] ^= 0x40;
    ck_assert_int_eq(nas_strategy_load_core(t, core, nc, &h, err), NAS_EFORMAT);
    ck_assert_int_eq(nas_strategy_blob_version(core, 3), NAS_EFORMAT);
    nas_free(core);
    nas_free(whole);
    nas_strategy_destroy(&t);
    nas_strategy_destroy(&m.s);
}
END_TEST

/* The store's side of the history: observation numbers are unique and only
 * search tasks take them. */
START_TEST(test_store_observation_numbers) {
    nas_store *st = open_store();
    char err[NAS_ERR_LEN] = "";
    nas_store_new_task t = {.arch_hash = 7,
                            .arch_text = "n=sep3x3:0+id:0",
                            .stage = NAS_STORE_STAGE_SEARCH,
                            .fidelity = nas_fidelity_default()};
    int64_t a = 0, b = 0, f = 0;
    ck_assert_int_eq(nas_store_task_add(st, &t, NULL, 0, 1, &a, err), NAS_OK);
    ck_assert_int_eq(nas_store_task_add(st, &t, NULL, 0, 1, &b, err), NAS_OK);
    t.stage = NAS_STORE_STAGE_FINAL;
    ck_assert_int_eq(nas_store_task_add(st, &t, NULL, 0, 1, &f, err), NAS_OK);
    ck_assert_int_eq(nas_store_task_observed(st, a, 0, 0, err), NAS_OK);
    ck_assert_int_eq(nas_store_task_observed(st, b, 0, 0, err), NAS_ESTATE);
    ck_assert_ptr_nonnull(strstr(err, "already recorded"));
    ck_assert_int_eq(nas_store_task_observed(st, f, 1, 0, err), NAS_ENOTFOUND);
    ck_assert_int_eq(nas_store_task_observed(st, b, -1, 0, err), NAS_EINVAL);
    ck_assert_int_eq(nas_store_task_observed(st, b, 1, 1, err), NAS_OK);
    nas_store_close(&st);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("strategy_core");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rebuild_random);
    tcase_add_test(tc, test_rebuild_evolution);
    tcase_add_test(tc, test_rebuild_pnas);
    tcase_add_test(tc, test_rebuild_from_format1);
    tcase_add_test(tc, test_bounded_evolution);
    tcase_add_test(tc, test_bounded_random);
    tcase_add_test(tc, test_core_size_constant);
    tcase_add_test(tc, test_core_refuses_mismatch);
    tcase_add_test(tc, test_store_observation_numbers);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
