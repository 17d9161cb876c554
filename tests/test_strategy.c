/*
 * test_strategy.c - random search, aging evolution and PNAS against a
 * synthetic evaluator, with fixed seeds: deduplication, aging, tournament,
 * parents, PNAS levels and budget, the MnasNet reward, and the state blob
 * (an interrupted search continues exactly as the uninterrupted one; a
 * damaged blob is refused, never crashes).
 */
#include "tests/harness.h"

#include "common/alloc.h"
#include "common/err.h"
#include "master/strategy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ---- a synthetic evaluator ------------------------------------------------------------

/* A smooth, deterministic "accuracy" of a genome: each op has a value,
 * convolutions best, `none`/`zero` worst, plus a small hash-derived term so
 * ties are rare. Always in [0.05, 0.95]. */
static double fake_accuracy(const nas_genome *g) {
    static const double cell_val[NAS_OP_COUNT] = {0.2,  0.3, 0.35, 0.8, 0.7, 0.6,
                                                  0.65, 0.5, 0.75, 0.4, 0.0};
    static const double nb_val[NAS_NB201_OP_COUNT] = {0.0, 0.4, 0.6, 1.0, 0.3};
    nas_genome c;
    nas_genome_canonical(g, &c);
    double s = 0.0, n = 0.0;
    if (c.space == NAS_SPACE_NB201) {
        for (int e = 0; e < NAS_NB201_EDGES; e++)
            s += nb_val[c.nb201[e]], n += 1.0;
    } else {
        for (int b = 0; b < c.normal.n_blocks; b++)
            s += cell_val[c.normal.blocks[b].op_a] + cell_val[c.normal.blocks[b].op_b], n += 2.0;
        s += 0.05 * c.normal.n_blocks, n += 0.2;
    }
    double jitter = (double)(nas_genome_hash(&c) % 1000) / 1000.0 * 0.02;
    return 0.05 + 0.88 * s / n + jitter;
}

static nas_observation observe_of(const nas_genome *g, double acc, int64_t params) {
    nas_observation o = {.genome = *g,
                         .hash = nas_genome_hash(g),
                         .ok = 1,
                         .accuracy = acc,
                         .params = params,
                         .macs = 1000};
    return o;
}

static nas_strategy_config nb201_config(const char *name, int budget) {
    nas_strategy_config c;
    nas_strategy_config_default(&c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.space.kind = NAS_SPACE_NB201;
    c.space.n_blocks = 3;
    c.budget = budget;
    c.ensemble = 2; /* small predictors keep the suite fast under sanitizers */
    c.beam = 8;
    return c;
}

/* Shared-cell PNAS space with four ops and B blocks. */
static nas_strategy_config cell_config(int blocks) {
    nas_strategy_config c;
    nas_strategy_config_default(&c);
    snprintf(c.name, sizeof c.name, "pnas");
    c.space.kind = NAS_SPACE_CELL;
    c.space.n_blocks = blocks;
    c.space.shared = 1;
    c.space.op_mask =
        (1u << NAS_OP_ID) | (1u << NAS_OP_MAX3X3) | (1u << NAS_OP_SEP3X3) | (1u << NAS_OP_CONV1X1);
    c.budget = 10000;
    c.ensemble = 2;
    return c;
}

static nas_strategy *make(const nas_strategy_config *c, uint64_t seed) {
    nas_strategy *s = NULL;
    char err[NAS_ERR_LEN] = "";
    int rc = nas_strategy_create(&s, c, seed, err);
    ck_assert_msg(rc == NAS_OK, "create %s: %s", c->name, err);
    return s;
}

/* Drive a strategy for up to `steps` proposals with up to `window` results
 * outstanding, observing the oldest first; records proposal hashes. */
static int drive(nas_strategy *s, int steps, int window, uint64_t *hashes) {
    nas_proposal pending[16];
    int n_pend = 0, made = 0;
    char err[NAS_ERR_LEN];
    while (made < steps) {
        nas_proposal p;
        int rc = n_pend < window ? nas_strategy_propose(s, &p, err) : NAS_EAGAIN;
        if (rc == NAS_OK) {
            if (hashes) hashes[made] = nas_genome_hash(&p.genome);
            made++;
            pending[n_pend++] = p;
            continue;
        }
        ck_assert_msg(rc == NAS_EAGAIN || rc == NAS_ESTATE, "propose: %s", err);
        if (n_pend == 0) break;
        nas_observation o = observe_of(&pending[0].genome, fake_accuracy(&pending[0].genome), 100);
        ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_OK);
        memmove(pending, pending + 1, sizeof *pending * (size_t)--n_pend);
    }
    for (int i = 0; i < n_pend; i++) {
        nas_observation o = observe_of(&pending[i].genome, fake_accuracy(&pending[i].genome), 100);
        ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_OK);
    }
    return made;
}

// ---- creation --------------------------------------------------------------------------

START_TEST(test_create_rejects) {
    nas_strategy_config c = nb201_config("annealing", 10);
    nas_strategy *s = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_strategy_create(&s, &c, 1, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "annealing"));
    c = nb201_config("evolution", 10);
    c.sample = c.population + 1;
    ck_assert_int_eq(nas_strategy_create(&s, &c, 1, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "sample"));
    c = nb201_config("random", 0);
    ck_assert_int_eq(nas_strategy_create(&s, &c, 1, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "budget"));
    c = nb201_config("random", 10);
    c.space.op_mask = 1u << NAS_NB201_NONE;
    ck_assert_int_eq(nas_strategy_create(&s, &c, 1, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "op mask"));
    c.space.op_mask = 1u << 7;
    ck_assert_int_eq(nas_strategy_create(&s, &c, 1, err), NAS_EINVAL);
    c = nb201_config("evolution", 10);
    c.n_seeds = 1;
    snprintf(c.seeds[0], sizeof c.seeds[0], "no_such_cell");
    ck_assert_int_eq(nas_strategy_create(&s, &c, 1, err), NAS_EINVAL);
    ck_assert_ptr_null(s);
}
END_TEST

// ---- random ----------------------------------------------------------------------------

START_TEST(test_random_never_repeats) {
    nas_strategy_config c = nb201_config("random", 400);
    nas_strategy *s = make(&c, 3);
    uint64_t h[400];
    ck_assert_int_eq(drive(s, 400, 4, h), 400);
    for (int i = 0; i < 400; i++)
        for (int j = 0; j < i; j++)
            ck_assert_msg(h[i] != h[j], "repeat at %d and %d", j, i);
    ck_assert(nas_strategy_done(s));
    nas_proposal p;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_strategy_propose(s, &p, err), NAS_ESTATE);
    nas_strategy_destroy(&s);
    ck_assert_ptr_null(s);
}
END_TEST

/* The MBConv space under random search and evolution: every proposal is a
 * valid MBConv genome with the configured stages, none repeats, and PNAS
 * (which needs levels) is refused at creation. */
START_TEST(test_mbconv_random_and_evolution) {
    for (int k = 0; k < 2; k++) {
        nas_strategy_config c;
        nas_strategy_config_default(&c);
        snprintf(c.name, sizeof c.name, "%s", k ? "evolution" : "random");
        c.space.kind = NAS_SPACE_MBCONV;
        c.space.n_blocks = 4;
        c.budget = 60;
        c.population = 8;
        c.sample = 3;
        nas_strategy *s = make(&c, 11);
        uint64_t h[60];
        ck_assert_int_eq(drive(s, 60, 4, h), 60);
        for (int i = 0; i < 60; i++)
            for (int j = 0; j < i; j++) ck_assert_msg(h[i] != h[j], "repeat at %d and %d", j, i);
        nas_strategy_destroy(&s);
    }
    nas_strategy_config c;
    nas_strategy_config_default(&c);
    snprintf(c.name, sizeof c.name, "pnas");
    c.space.kind = NAS_SPACE_MBCONV;
    c.space.n_blocks = 4;
    nas_strategy *s = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_strategy_create(&s, &c, 1, err), NAS_EINVAL);
    ck_assert_str_eq(err, "strategy: pnas needs levels; mbconv has none");
}
END_TEST

START_TEST(test_random_exhausts_small_space) {
    nas_strategy_config c;
    nas_strategy_config_default(&c);
    snprintf(c.name, sizeof c.name, "random");
    c.space.kind = NAS_SPACE_CELL;
    c.space.n_blocks = 1;
    c.space.shared = 1;
    c.space.op_mask = (1u << NAS_OP_ID) | (1u << NAS_OP_SEP3X3);
    c.budget = 200;
    nas_strategy *s = make(&c, 5);
    int made = drive(s, 200, 1, NULL);
    ck_assert_int_lt(made, 50);
    ck_assert_int_gt(made, 0);
    ck_assert(nas_strategy_done(s));
    char buf[256];
    ck_assert_int_gt(nas_strategy_describe(s, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "exhausted"));
    nas_strategy_destroy(&s);
}
END_TEST

// ---- evolution -------------------------------------------------------------------------

/* The first member is by far the best; aging still kills it after P more. */
START_TEST(test_evo_aging_kills_oldest) {
    nas_strategy_config c = nb201_config("evolution", 100);
    c.population = 5;
    c.sample = 2;
    nas_strategy *s = make(&c, 9);
    char err[NAS_ERR_LEN];
    uint64_t order[20];
    for (int i = 0; i < 11; i++) {
        nas_proposal p;
        ck_assert_int_eq(nas_strategy_propose(s, &p, err), NAS_OK);
        double acc = i == 0 ? 0.99 : 0.10 + 0.01 * i;
        nas_observation o = observe_of(&p.genome, acc, 100);
        order[i] = o.hash;
        ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_OK);
        nas_observation pop[8];
        int n = nas_strategy_population(s, pop, 8);
        ck_assert_int_eq(n, i + 1 < 5 ? i + 1 : 5);
        /* Oldest first: exactly the last min(i+1, P) results, in order. */
        for (int k = 0; k < n; k++)
            ck_assert(pop[k].hash == order[i + 1 - n + k]);
        if (i >= 5) ck_assert(pop[0].accuracy < 0.9); /* the best one died of age */
    }
    nas_strategy_destroy(&s);
}
END_TEST

/* With S = P the tournament sees everyone: the parent is always the best
 * member, and every child names it. */
START_TEST(test_evo_tournament_and_parent) {
    nas_strategy_config c = nb201_config("evolution", 60);
    c.population = 6;
    c.sample = 6;
    nas_strategy *s = make(&c, 21);
    char err[NAS_ERR_LEN];
    for (int i = 0; i < 40; i++) {
        nas_proposal p;
        ck_assert_int_eq(nas_strategy_propose(s, &p, err), NAS_OK);
        nas_observation pop[8];
        int n = nas_strategy_population(s, pop, 8);
        if (i < 6) {
            ck_assert_int_eq(p.has_parent, 0);
        } else {
            int best = 0;
            for (int k = 1; k < n; k++)
                if (pop[k].accuracy > pop[best].accuracy) best = k;
            ck_assert_int_eq(p.has_parent, 1);
            ck_assert(p.parent_hash == pop[best].hash);
            ck_assert(nas_genome_hash(&p.genome) != p.parent_hash);
        }
        nas_observation o = observe_of(&p.genome, fake_accuracy(&p.genome), 100);
        ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_OK);
    }
    nas_strategy_destroy(&s);
}
END_TEST

START_TEST(test_evo_failures_do_not_join) {
    nas_strategy_config c = nb201_config("evolution", 30);
    c.population = 4;
    c.sample = 2;
    nas_strategy *s = make(&c, 4);
    char err[NAS_ERR_LEN];
    for (int i = 0; i < 6; i++) {
        nas_proposal p;
        ck_assert_int_eq(nas_strategy_propose(s, &p, err), NAS_OK);
        nas_observation o = observe_of(&p.genome, 0.5, 100);
        o.ok = i % 2; /* every other evaluation fails */
        ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_OK);
        /* Until 4 members exist, every proposal is random (no parent). */
        ck_assert_int_eq(p.has_parent, 0);
    }
    ck_assert_int_eq(nas_strategy_population(s, NULL, 0), 3);
    nas_strategy_destroy(&s);
}
END_TEST

/* Seed presets come first, in order, as parentless proposals; a preset of
 * another space is refused at creation. */
START_TEST(test_evo_seeds) {
    nas_strategy_config c;
    nas_strategy_config_default(&c);
    c.population = 4;
    c.sample = 2;
    c.n_seeds = 2;
    snprintf(c.seeds[0], sizeof c.seeds[0], "nasnet_a");
    snprintf(c.seeds[1], sizeof c.seeds[1], "amoebanet_a");
    nas_strategy *s = make(&c, 6);
    char err[NAS_ERR_LEN];
    for (int i = 0; i < 3; i++) {
        nas_proposal p;
        ck_assert_int_eq(nas_strategy_propose(s, &p, err), NAS_OK);
        ck_assert_int_eq(p.has_parent, 0);
        if (i < 2) {
            nas_genome want;
            ck_assert_int_eq(nas_genome_preset(c.seeds[i], &want, err), NAS_OK);
            ck_assert(nas_genome_hash(&p.genome) == nas_genome_hash(&want));
        }
    }
    nas_strategy_destroy(&s);
    c = nb201_config("evolution", 10);
    c.n_seeds = 1;
    snprintf(c.seeds[0], sizeof c.seeds[0], "nasnet_a");
    ck_assert_int_eq(nas_strategy_create(&s, &c, 1, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "nb201"));
    snprintf(c.seeds[0], sizeof c.seeds[0], "nb201_resnet");
    s = make(&c, 1);
    nas_strategy_destroy(&s);
}
END_TEST

/* Asynchronous: with several proposals in flight the first population is
 * not over-filled, and children are proposed before all results are in. */
START_TEST(test_evo_async_inflight) {
    nas_strategy_config c = nb201_config("evolution", 30);
    c.population = 4;
    c.sample = 2;
    nas_strategy *s = make(&c, 8);
    char err[NAS_ERR_LEN];
    nas_proposal p[6];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(nas_strategy_propose(s, &p[i], err), NAS_OK);
    /* No member yet, 4 random ones in flight: one more is random as well. */
    ck_assert_int_eq(nas_strategy_propose(s, &p[4], err), NAS_OK);
    ck_assert_int_eq(p[4].has_parent, 0);
    nas_observation o = observe_of(&p[0].genome, 0.7, 100);
    ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_OK);
    /* 1 member + 4 random in flight >= P: a child of the one member. */
    ck_assert_int_eq(nas_strategy_propose(s, &p[5], err), NAS_OK);
    ck_assert_int_eq(p[5].has_parent, 1);
    ck_assert(p[5].parent_hash == o.hash);
    nas_strategy_destroy(&s);
}
END_TEST

/* MnasNet reward: a model far over the params target loses the tournament
 * to a slightly less accurate one on target. */
START_TEST(test_evo_multi_objective) {
    nas_strategy_config c = nb201_config("evolution", 30);
    c.population = 2;
    c.sample = 2;
    c.target_params = 1000;
    nas_strategy *s = make(&c, 2);
    char err[NAS_ERR_LEN];
    nas_proposal a, b, k;
    ck_assert_int_eq(nas_strategy_propose(s, &a, err), NAS_OK);
    ck_assert_int_eq(nas_strategy_propose(s, &b, err), NAS_OK);
    nas_observation oa = observe_of(&a.genome, 0.90, 100000); /* 0.90 * 100^-0.07 = 0.65 */
    nas_observation ob = observe_of(&b.genome, 0.85, 1000);   /* 0.85 */
    ck_assert_int_eq(nas_strategy_observe(s, &oa, err), NAS_OK);
    ck_assert_int_eq(nas_strategy_observe(s, &ob, err), NAS_OK);
    ck_assert_int_eq(nas_strategy_propose(s, &k, err), NAS_OK);
    ck_assert(k.parent_hash == ob.hash);
    nas_strategy_destroy(&s);
}
END_TEST

// ---- PNAS ------------------------------------------------------------------------------

START_TEST(test_pnas_levels_and_budget) {
    nas_strategy_config c = cell_config(3);
    c.beam = 6;
    c.max_blocks = 3;
    nas_strategy *s = make(&c, 12);
    nas_genome *l1 = NULL;
    int n1 = nas_genome_enumerate_level1(&c.space, &l1);
    nas_free(l1);
    ck_assert_int_gt(n1, 0);
    char err[NAS_ERR_LEN];
    nas_proposal p[4096];
    int n = 0;
    while (n < 4096 && nas_strategy_propose(s, &p[n], err) == NAS_OK)
        n++;
    /* Level 1 is exactly the enumeration; then it waits. */
    ck_assert_int_eq(n, n1);
    ck_assert_int_eq(nas_strategy_propose(s, &p[n], err), NAS_EAGAIN);
    ck_assert(isnan(nas_strategy_rank_correlation(s)));
    for (int i = 0; i < n; i++) {
        nas_observation o = observe_of(&p[i].genome, fake_accuracy(&p[i].genome), 100);
        ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_OK);
    }
    ck_assert_int_eq(nas_strategy_needs_prepare(s), 1);
    ck_assert_int_eq(nas_strategy_prepare(s, err), NAS_OK);
    ck_assert_int_eq(nas_strategy_needs_prepare(s), 0);
    int total = n1;
    for (int level = 2; level <= c.max_blocks; level++) {
        int m = 0;
        while (nas_strategy_propose(s, &p[m], err) == NAS_OK)
            m++;
        ck_assert_int_eq(m, c.beam); /* a 3-block cell has far more than K expansions */
        for (int i = 0; i < m; i++) {
            nas_observation o = observe_of(&p[i].genome, fake_accuracy(&p[i].genome), 100);
            ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_OK);
        }
        total += m;
        /* Measured on the level's results before the refit sees them. */
        ck_assert(!isnan(nas_strategy_rank_correlation(s)));
    }
    /* After level B it is done, having spent n1 + up to (B-1) K proposals. */
    ck_assert(nas_strategy_done(s));
    ck_assert_int_eq(total, n1 + (c.max_blocks - 1) * c.beam);
    ck_assert_int_eq(nas_strategy_propose(s, &p[0], err), NAS_ESTATE);
    char buf[256];
    ck_assert_int_gt(nas_strategy_describe(s, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "finished"));
    nas_strategy_destroy(&s);
}
END_TEST

/* The budget cuts a level short; done() once the last result is in. */
START_TEST(test_pnas_budget_cut) {
    nas_strategy_config c = nb201_config("pnas", 7);
    nas_strategy *s = make(&c, 1);
    ck_assert_int_eq(drive(s, 100, 3, NULL), 7);
    ck_assert(nas_strategy_done(s));
    nas_strategy_destroy(&s);
}
END_TEST

/* If every level-1 evaluation fails there is nothing to fit or expand: the
 * search ends instead of waiting forever. */
START_TEST(test_pnas_all_failed) {
    nas_strategy_config c = nb201_config("pnas", 1000);
    nas_strategy *s = make(&c, 2);
    char err[NAS_ERR_LEN];
    nas_proposal p;
    int n = 0;
    while (nas_strategy_propose(s, &p, err) == NAS_OK) {
        nas_observation o = observe_of(&p.genome, 0.0, 100);
        o.ok = 0;
        ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_OK);
        n++;
    }
    ck_assert_int_gt(n, 0);
    ck_assert(nas_strategy_done(s));
    ck_assert_int_eq(nas_strategy_propose(s, &p, err), NAS_ESTATE);
    nas_strategy_destroy(&s);
}
END_TEST

/* Shared-cell PNAS with a small op set and B = 2, results out of order. */
START_TEST(test_pnas_cell_space) {
    nas_strategy_config c = cell_config(2);
    c.beam = 5;
    nas_strategy *s = make(&c, 17);
    nas_genome *l1 = NULL;
    int n1 = nas_genome_enumerate_level1(&c.space, &l1);
    nas_free(l1);
    int made = drive(s, 1000, 4, NULL);
    ck_assert_int_gt(made, n1);
    ck_assert_int_le(made, n1 + c.beam);
    ck_assert(nas_strategy_done(s));
    nas_strategy_destroy(&s);
}
END_TEST

// ---- state blob ------------------------------------------------------------------------

/* Run `before` proposals, save, load into a fresh strategy, continue both
 * for `after`: the two continuations must propose the same genomes. */
static void check_resume(nas_strategy_config c, int before, int after, int window) {
    nas_strategy *a = make(&c, 77);
    uint64_t h1[600], h2[600];
    drive(a, before, window, NULL);
    uint8_t *blob = NULL;
    size_t n = 0;
    ck_assert_int_eq(nas_strategy_save(a, &blob, &n), NAS_OK);
    nas_strategy *b = make(&c, 77);
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_strategy_load(b, blob, n, err) == NAS_OK, "load: %s", err);
    /* Saving the loaded strategy reproduces the blob byte for byte. */
    uint8_t *blob2 = NULL;
    size_t n2 = 0;
    ck_assert_int_eq(nas_strategy_save(b, &blob2, &n2), NAS_OK);
    ck_assert_uint_eq(n, n2);
    ck_assert_int_eq(memcmp(blob, blob2, n), 0);
    int m1 = drive(a, after, window, h1);
    int m2 = drive(b, after, window, h2);
    ck_assert_int_eq(m1, m2);
    ck_assert_int_gt(m1, 0);
    for (int i = 0; i < m1; i++)
        ck_assert_msg(h1[i] == h2[i], "%s: step %d differs", c.name, i);
    nas_free(blob);
    nas_free(blob2);
    nas_strategy_destroy(&a);
    nas_strategy_destroy(&b);
}

START_TEST(test_resume_random) {
    check_resume(nb201_config("random", 300), 37, 100, 3);
}
END_TEST

START_TEST(test_resume_evolution) {
    nas_strategy_config c = nb201_config("evolution", 300);
    c.population = 10;
    c.sample = 3;
    check_resume(c, 41, 150, 3); /* mid-population-fill would be 7; 41 is well into evolution */
    check_resume(c, 7, 60, 3);
}
END_TEST

START_TEST(test_resume_pnas) {
    nas_strategy_config c = nb201_config("pnas", 300);
    nas_genome *l1 = NULL;
    int n1 = nas_genome_enumerate_level1(&c.space, &l1);
    nas_free(l1);
    /* Save mid level 1, then again in level 2 (after a predictor fit). */
    check_resume(c, n1 / 2, 300, 3);
    check_resume(c, n1 + 3, 300, 2);
    /* The cell space across the level 2 -> 3 boundary. */
    nas_strategy_config cc = cell_config(3);
    cc.beam = 4;
    n1 = nas_genome_enumerate_level1(&cc.space, &l1);
    nas_free(l1);
    check_resume(cc, n1 + 2, 300, 2);
}
END_TEST

/* Every truncation and a flipped byte anywhere are refused with a message. */
START_TEST(test_load_rejects_damage) {
    nas_strategy_config c = nb201_config("evolution", 100);
    c.population = 5;
    nas_strategy *a = make(&c, 5);
    drive(a, 20, 2, NULL);
    uint8_t *blob = NULL;
    size_t n = 0;
    ck_assert_int_eq(nas_strategy_save(a, &blob, &n), NAS_OK);
    nas_strategy *b = make(&c, 5);
    char err[NAS_ERR_LEN];
    for (size_t cut = 0; cut < n; cut += 1 + cut / 8) {
        err[0] = '\0';
        int rc = nas_strategy_load(b, blob, cut, err);
        ck_assert_msg(rc == NAS_EFORMAT, "cut %zu: rc %d", cut, rc);
        ck_assert(strlen(err) > 0);
    }
    for (size_t at = 0; at < n; at += 7) {
        blob[at] ^= 0x5a;
        int rc = nas_strategy_load(b, blob, n, err);
        ck_assert_msg(rc == NAS_EFORMAT || rc == NAS_EVERSION, "flip at %zu: rc %d", at, rc);
        blob[at] ^= 0x5a;
    }
    /* The untouched blob still loads; a refused blob afterwards leaves the
     * strategy as it was: it continues exactly like the original. */
    ck_assert_int_eq(nas_strategy_load(b, blob, n, err), NAS_OK);
    blob[n / 2] ^= 1;
    ck_assert_int_eq(nas_strategy_load(b, blob, n, err), NAS_EFORMAT);
    ck_assert_int_eq(nas_strategy_load(b, blob, n - 9, err), NAS_EFORMAT);
    blob[n / 2] ^= 1;
    uint64_t ha[30], hb[30];
    ck_assert_int_eq(drive(a, 30, 2, ha), 30);
    ck_assert_int_eq(drive(b, 30, 2, hb), 30);
    ck_assert_int_eq(memcmp(ha, hb, sizeof ha), 0);
    /* Another seed or another strategy is refused. */
    nas_strategy *d = make(&c, 6);
    ck_assert_int_eq(nas_strategy_load(d, blob, n, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "config"));
    nas_strategy_config rc = nb201_config("random", 100);
    nas_strategy *r = make(&rc, 5);
    ck_assert_int_eq(nas_strategy_load(r, blob, n, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "evolution"));
    nas_free(blob);
    nas_strategy_destroy(&a);
    nas_strategy_destroy(&b);
    nas_strategy_destroy(&d);
    nas_strategy_destroy(&r);
}
END_TEST

/* Observations that cannot be true are refused by name, not absorbed. */
START_TEST(test_observe_rejects) {
    nas_strategy_config c = nb201_config("evolution", 10);
    nas_strategy *s = make(&c, 1);
    char err[NAS_ERR_LEN];
    nas_proposal p;
    ck_assert_int_eq(nas_strategy_propose(s, &p, err), NAS_OK);
    nas_observation o = observe_of(&p.genome, 1.5, 100);
    ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "accuracy"));
    o = observe_of(&p.genome, NAN, 100);
    ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_EINVAL);
    o = observe_of(&p.genome, 0.5, 100);
    o.genome.nb201[2] = 9; /* no such op */
    ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_EINVAL);
    o = observe_of(&p.genome, 0.5, 100);
    o.genome.space = NAS_SPACE_CELL;
    o.genome.normal.n_blocks = 1;
    o.genome.reduce.n_blocks = 1;
    ck_assert_int_eq(nas_strategy_observe(s, &o, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "space"));
    /* The proposal is still in flight: not done. */
    ck_assert(!nas_strategy_done(s));
    nas_strategy_destroy(&s);
}
END_TEST

/* One search with every error returned, never asserted. */
static int scenario(const nas_strategy_config *c) {
    nas_strategy *s = NULL, *t = NULL;
    char err[NAS_ERR_LEN];
    int rc = nas_strategy_create(&s, c, 3, err);
    for (int i = 0; rc == NAS_OK && i < c->budget; i++) {
        nas_proposal p;
        rc = nas_strategy_propose(s, &p, err);
        if (rc == NAS_EAGAIN || rc == NAS_ESTATE) {
            rc = NAS_OK;
            break;
        }
        nas_observation o = observe_of(&p.genome, fake_accuracy(&p.genome), 100);
        if (rc == NAS_OK) rc = nas_strategy_observe(s, &o, err);
    }
    uint8_t *blob = NULL;
    size_t n = 0;
    if (rc == NAS_OK) rc = nas_strategy_save(s, &blob, &n);
    if (rc == NAS_OK) rc = nas_strategy_create(&t, c, 3, err);
    if (rc == NAS_OK) rc = nas_strategy_load(t, blob, n, err);
    nas_free(blob);
    nas_strategy_destroy(&s);
    nas_strategy_destroy(&t);
    return rc;
}

/* The Nth allocation fails, for N across the whole scenario: every failure
 * comes back as NAS_ENOMEM, without a crash or a leak (ASan checks). */
START_TEST(test_out_of_memory) {
    const char *names[] = {"random", "evolution", "pnas"};
    for (int k = 0; k < 3; k++) {
        nas_strategy_config c = nb201_config(names[k], 90);
        c.population = 8;
        c.sample = 3;
        c.beam = 4;
        c.ensemble = 1;
        c.use_lstm = 0;
        int clean = 0;
        for (long nth = 1; nth < 100000 && !clean; nth += 1 + nth / 6) {
            nas_alloc_fail_after(nth);
            int rc = scenario(&c);
            nas_alloc_fail_reset();
            ck_assert_msg(rc == NAS_OK || rc == NAS_ENOMEM, "%s, allocation %ld: rc %d", names[k],
                          nth, rc);
            clean = rc == NAS_OK;
        }
        ck_assert_msg(clean, "%s never completed", names[k]);
    }
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("strategy");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_create_rejects);
    tcase_add_test(tc, test_random_never_repeats);
    tcase_add_test(tc, test_random_exhausts_small_space);
    tcase_add_test(tc, test_mbconv_random_and_evolution);
    tcase_add_test(tc, test_evo_aging_kills_oldest);
    tcase_add_test(tc, test_evo_tournament_and_parent);
    tcase_add_test(tc, test_evo_failures_do_not_join);
    tcase_add_test(tc, test_evo_async_inflight);
    tcase_add_test(tc, test_evo_seeds);
    tcase_add_test(tc, test_evo_multi_objective);
    tcase_add_test(tc, test_pnas_levels_and_budget);
    tcase_add_test(tc, test_pnas_budget_cut);
    tcase_add_test(tc, test_pnas_all_failed);
    tcase_add_test(tc, test_pnas_cell_space);
    tcase_add_test(tc, test_resume_random);
    tcase_add_test(tc, test_resume_evolution);
    tcase_add_test(tc, test_resume_pnas);
    tcase_add_test(tc, test_load_rejects_damage);
    tcase_add_test(tc, test_observe_rejects);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
