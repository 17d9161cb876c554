/*
 * strategy_util.h - a check the search-space suites share: evolution over a
 * space saves its whole state, and a copy restored from that blob proposes
 * exactly what the original does (what a resumed campaign depends on).
 */
#ifndef NAS_TEST_STRATEGY_UTIL_H
#define NAS_TEST_STRATEGY_UTIL_H

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/genome.h"
#include "master/strategy.h"
#include "tests/harness.h"

static inline void strategy_save_load_check(nas_space space) {
    nas_strategy_config cfg;
    nas_strategy_config_default(&cfg);
    snprintf(cfg.name, sizeof cfg.name, "evolution");
    cfg.space = space;
    cfg.budget = 30;
    cfg.population = 4;
    cfg.sample = 2;
    char err[NAS_ERR_LEN] = "";
    nas_strategy *a = NULL, *b = NULL;
    ck_assert_msg(nas_strategy_create(&a, &cfg, 9, err) == NAS_OK, "%s", err);
    for (int i = 0; i < 8; i++) {
        nas_proposal p;
        ck_assert_msg(nas_strategy_propose(a, &p, err) == NAS_OK, "%s", err);
        nas_observation o = {.genome = p.genome,
                             .hash = nas_genome_hash(&p.genome),
                             .ok = 1,
                             .accuracy = 0.1 * (i % 5)};
        ck_assert_msg(nas_strategy_observe(a, &o, err) == NAS_OK, "%s", err);
    }
    uint8_t *blob = NULL;
    size_t n = 0;
    ck_assert_int_eq(nas_strategy_save(a, &blob, &n), NAS_OK);
    ck_assert_int_eq(nas_strategy_create(&b, &cfg, 9, err), NAS_OK);
    ck_assert_msg(nas_strategy_load(b, blob, n, err) == NAS_OK, "%s", err);
    for (int i = 0; i < 6; i++) {
        nas_proposal pa, pb;
        char ta[1024], tb[1024];
        ck_assert_int_eq(nas_strategy_propose(a, &pa, err), NAS_OK);
        ck_assert_int_eq(nas_strategy_propose(b, &pb, err), NAS_OK);
        ck_assert_int_eq(pa.genome.space, space.kind);
        ck_assert_int_ge(nas_genome_format(&pa.genome, ta, sizeof ta), 0);
        ck_assert_int_ge(nas_genome_format(&pb.genome, tb, sizeof tb), 0);
        ck_assert_str_eq(ta, tb);
    }
    nas_free(blob);
    nas_strategy_destroy(&a);
    nas_strategy_destroy(&b);
}

#endif
