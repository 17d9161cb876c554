/*
 * test_genome_chain.c - the chain-structured space: every form round-trips
 * exactly, the canonical hash ignores layer ids and skip-less id layers,
 * mutations (plain and morphisms) are valid and change the network,
 * sampling covers every op, width and depth of the space, counted cost
 * equals the built network's, 300 random chains build and run forward, and
 * parameter paths follow the documented scheme.  Seeds are fixed.
 */
#include "common/alloc.h"
#include "common/builder.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_proto.h"
#include "common/net.h"
#include "master/config.h"
#include "master/strategy.h"
#include "tests/genome_check.h"
#include "tests/harness.h"
#include "tests/strategy_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

static int chain_same(const nas_genome *a, const nas_genome *b) {
    if (a->space != b->space || a->chain.n_layers != b->chain.n_layers) return 0;
    return memcmp(a->chain.layers, b->chain.layers,
                  sizeof(nas_chain_layer) * (size_t)a->chain.n_layers) == 0;
}

static nas_space chain_space(int i, nas_rng *rng) {
    nas_space sp = {.kind = NAS_SPACE_CHAIN};
    sp.depth_min = 1 + (int)nas_rng_below(rng, 4);
    sp.depth_max = sp.depth_min + (int)nas_rng_below(rng, NAS_CHAIN_MAX_LAYERS - sp.depth_min + 1);
    if (i % 4 == 1) sp.op_mask = (1u << NAS_CHAIN_ID) | (1u << NAS_CHAIN_CONV1X1);
    if (i % 4 == 2) sp.op_mask = (1u << NAS_CHAIN_MAX3X3) | (1u << NAS_CHAIN_SEP3X3);
    sp.morphisms = i % 3 == 0;
    return sp;
}

/* The same chain with its layer ids permuted (names only). */
static void rename_ids(const nas_genome *g, nas_genome *out, nas_rng *rng) {
    *out = *g;
    int ids[256];
    for (int i = 0; i < 256; i++)
        ids[i] = i;
    nas_rng_shuffle_int(rng, ids, 256);
    for (int k = 0; k < g->chain.n_layers; k++)
        out->chain.layers[k].id = (uint8_t)ids[g->chain.layers[k].id];
}

START_TEST(test_chain_props_random) {
    nas_rng rng;
    nas_rng_init(&rng, 19, 2);
    char err[NAS_ERR_LEN];
    int kinds[16] = {0};
    for (int i = 0; i < 5000; i++) {
        nas_space sp = chain_space(i, &rng);
        nas_genome g;
        REQUIRE(nas_genome_sample(&sp, &rng, &g) == NAS_OK, "sample %d", i);
        REQUIRE(nas_genome_validate(&g, err) == NAS_OK, "sample %d: %s", i, err);
        REQUIRE(g.chain.n_layers >= sp.depth_min && g.chain.n_layers <= sp.depth_max, "depth");
        char text[NAS_GENOME_TEXT_MAX];
        uint64_t h = genome_forms_check(&g, chain_same, text);

        /* Ids are names: renamed layers hash and compare equal. */
        nas_genome r;
        rename_ids(&g, &r, &rng);
        REQUIRE(nas_genome_validate(&r, NULL) == NAS_OK, "renamed");
        REQUIRE(nas_genome_hash(&r) == h && nas_genome_equivalent(&r, &g), "renamed %s", text);

        /* A skip-less id layer inserted anywhere is the identity. */
        if (g.chain.n_layers < NAS_CHAIN_MAX_LAYERS) {
            int at = (int)nas_rng_below(&rng, (uint32_t)g.chain.n_layers + 1);
            char t2[NAS_GENOME_TEXT_MAX + 16];
            /* Text edit: layers before `at` are unchanged, later skips shift. */
            nas_genome d = g;
            memmove(&d.chain.layers[at + 1], &d.chain.layers[at],
                    sizeof(nas_chain_layer) * (size_t)(g.chain.n_layers - at));
            d.chain.layers[at] = (nas_chain_layer){NAS_CHAIN_ID, 200, 0, 0};
            d.chain.n_layers++;
            for (int k = at + 1; k < d.chain.n_layers; k++) {
                unsigned s = d.chain.layers[k].skips, low = s & ((1u << (at + 1)) - 1u);
                d.chain.layers[k].skips = (uint16_t)(low | ((s >> (at + 1)) << (at + 2)));
            }
            nas_genome_format(&d, t2, sizeof t2);
            REQUIRE(nas_genome_validate(&d, err) == NAS_OK, "%s: %s", t2, err);
            REQUIRE(nas_genome_hash(&d) == h, "id layer at %d: %s vs %s", at, t2, text);
        }

        /* A mutation: valid, different, recorded, of the mode's kinds. */
        nas_genome child;
        nas_mutation m;
        int rc = nas_genome_mutate(&g, &sp, 0.0f, &rng, &child, &m);
        if (rc == NAS_EGENOME) continue; /* e.g. a full-depth chain with only morphisms left */
        REQUIRE(rc == NAS_OK, "mutate %s: %d", text, rc);
        REQUIRE(nas_genome_validate(&child, err) == NAS_OK, "child of %s: %s", text, err);
        REQUIRE(!nas_genome_equivalent(&g, &child), "mutation of %s changed nothing", text);
        REQUIRE(nas_genome_hash(&child) != h, "child hash");
        REQUIRE(sp.morphisms == (m.kind >= NAS_MUTATION_WIDEN), "kind %d in mode %d", m.kind,
                sp.morphisms);
        char desc[160];
        REQUIRE(nas_mutation_format(&m, &g, desc, sizeof desc) > 0, "describe");
        REQUIRE(strstr(desc, "unknown") == NULL, "%s", desc);
        kinds[m.kind]++;
    }
    for (int k = NAS_MUTATION_OP; k <= NAS_MUTATION_ADD_SKIP; k++)
        if (k != NAS_MUTATION_HIDDEN)
            REQUIRE(kinds[k] > 100, "mutation kind %d drawn %d", k, kinds[k]);
}
END_TEST

/* Sampling covers the space: every op, width and depth, skips from every
 * distance, and no two of a few hundred samples are the same network. */
START_TEST(test_chain_sampling_coverage) {
    nas_rng rng;
    nas_rng_init(&rng, 7, 1);
    nas_space sp = {.kind = NAS_SPACE_CHAIN, .depth_min = 3, .depth_max = 9};
    int ops[NAS_CHAIN_OP_COUNT] = {0}, depth[NAS_CHAIN_MAX_LAYERS + 1] = {0}, widths[65] = {0};
    int skip_dist[NAS_CHAIN_MAX_LAYERS + 1] = {0};
    uint64_t seen[400];
    for (int i = 0; i < 400; i++) {
        nas_genome g;
        ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_OK);
        depth[g.chain.n_layers]++;
        for (int k = 0; k < g.chain.n_layers; k++) {
            const nas_chain_layer *l = &g.chain.layers[k];
            ops[l->op]++;
            if (l->width <= 64) widths[l->width]++;
            for (int j = 0; j <= k; j++)
                if (l->skips & (1u << j)) skip_dist[k + 1 - j]++;
        }
        seen[i] = nas_genome_hash(&g);
        for (int j = 0; j < i; j++)
            ck_assert_uint_ne(seen[j], seen[i]);
    }
    for (int o = 0; o < NAS_CHAIN_OP_COUNT; o++)
        ck_assert_int_gt(ops[o], 50);
    for (int d = 3; d <= 9; d++)
        ck_assert_int_gt(depth[d], 20);
    ck_assert_int_eq(depth[2] + depth[10], 0);
    static const int w[] = {8, 16, 24, 32, 48, 64};
    for (int i = 0; i < 6; i++)
        ck_assert_int_gt(widths[w[i]], 20);
    for (int d = 1; d <= 6; d++)
        ck_assert_int_gt(skip_dist[d], 10);
}
END_TEST

START_TEST(test_chain_build_300_random) {
    nas_rng rng;
    nas_rng_init(&rng, 300, 3);
    for (int i = 0; i < 300; i++) {
        nas_space sp = {.kind = NAS_SPACE_CHAIN, .depth_min = 1, .depth_max = 12};
        nas_genome g;
        ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_OK);
        /* Tiny widths (F 1..3 turns 64 units into at most 12 channels) and
         * 8..16 pixels keep 300 forward passes fast under ASan. */
        nas_fidelity f = nas_fidelity_default();
        f.channels = 1 + (int)nas_rng_below(&rng, 3);
        genome_build_check(&g, &f, 8 + (int)nas_rng_below(&rng, 9));
    }
}
END_TEST

START_TEST(test_chain_paths_and_shapes) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    const char *t = "chain=conv3x3/32,sep5x5/16@9+0,max3x3,conv1x1/48+1+3";
    ck_assert_int_eq(nas_genome_parse(t, strlen(t), &g, err), NAS_OK);
    char back[NAS_GENOME_TEXT_MAX];
    ck_assert_int_gt(nas_genome_format(&g, back, sizeof back), 0);
    ck_assert_str_eq(back, t);
    nas_fidelity f = nas_fidelity_default();
    f.channels = 8; /* 16 units = 8 channels: widths halve */
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 12, 12, err), NAS_OK);
    int logits;
    ck_assert_int_eq(nas_builder_build(net, &g, &f, 10, &logits, err), NAS_OK);
    static const struct {
        const char *name;
        int d0, d1;
    } want[] = {
        {"stem/conv/weight", 8, 1},
        {"L0/conv/weight", 16, 8},
        {"L9/dw/weight", 16, 1},
        {"L9/pw/weight", 8, 16},
        {"L9/fromstem/conv/weight", 8, 8},
        {"L3/conv/weight", 24, 8},
        {"L3/from0/conv/weight", 24, 16},
        {"L3/from2/conv/weight", 24, 8},
        {"L3/from2/bn/running_var", 24, 0},
        {"head/linear/weight", 10, 24},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const nas_param *p = nas_net_param_find(net, want[i].name);
        ck_assert_msg(p != NULL, "no %s", want[i].name);
        ck_assert_int_eq(p->shape[0], want[i].d0);
        if (want[i].d1) ck_assert_int_eq(p->shape[1], want[i].d1);
    }
    /* The skip from h[1] (12 px) into layer 3 (after the pool, 6 px) strides. */
    const nas_param *p = nas_net_param_find(net, "L3/from0/conv/weight");
    ck_assert_int_eq(p->shape[2], 1);
    nas_net_destroy(&net);
}
END_TEST

START_TEST(test_chain_bad_text) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"chain=", "unknown chain op ''"},
        {"chain=conv4x4/8", "unknown chain op 'conv4x4'"},
        {"chain=conv3x3", "expected '/width'"},
        {"chain=conv3x3/0", "width must be 1..512"},
        {"chain=max3x3/8", "unexpected '/'"},
        {"chain=conv3x3/8+1", "may skip from h[0..0] only"},
        {"chain=conv3x3/8+0+0", "given twice"},
        {"chain=conv3x3/8@1,id@1", "share id 1"},
        {"chain=id,id,id,id,id+0+1+2+3+4", "5 skips (max 4)"},
        {"chain=id,id,id,id,id,id,id,id,id,id,id,id,id", "too many layers"},
        {"chain=conv3x3/8@256", "layer id must be 0..255"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nas_genome g;
        char err[NAS_ERR_LEN] = "";
        int rc = nas_genome_parse(cases[i].text, strlen(cases[i].text), &g, err);
        ck_assert_int_eq(rc, NAS_EGENOME);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "%s: got '%s', want '%s'", cases[i].text,
                      err, cases[i].want);
    }
    /* JSON and protobuf refuse what the text form refuses. */
    nas_genome g;
    char err[NAS_ERR_LEN] = "";
    const char *j = "{\"space\":\"chain\",\"layers\":[[\"conv3x3\",8,0,[1]]]}";
    ck_assert_int_eq(nas_genome_from_json(j, strlen(j), &g, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "a skip must be an integer 0..0"));
    j = "{\"space\":\"chain\",\"layers\":[[\"max3x3\",8,0,[]]]}";
    ck_assert_int_eq(nas_genome_from_json(j, strlen(j), &g, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "max3x3 has no width"));
    /* PNAS has no levels in this space: a clear refusal, never a crash. */
    nas_space sp = {.kind = NAS_SPACE_CHAIN};
    nas_genome *kids = NULL;
    ck_assert_int_eq(nas_genome_enumerate_level1(&sp, &kids), NAS_EUNSUPPORTED);
}
END_TEST

/* Campaign files: the chain space and morphism mode parse, and the
 * combinations that cannot work are refused naming the key. */
START_TEST(test_chain_config) {
    nas_config cfg;
    char err[NAS_ERR_LEN] = "";
    const char *ok = "space:\n  kind: chain\n  depth_min: 2\n  depth_max: 6\n"
                     "  ops: [conv3x3, sep3x3, max3x3, id]\n"
                     "strategy:\n  name: evolution\n  mutations: morphism\n";
    ck_assert_msg(nas_config_parse(ok, strlen(ok), "c.yaml", &cfg, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(cfg.strategy.space.kind, NAS_SPACE_CHAIN);
    ck_assert_int_eq(cfg.strategy.space.morphisms, 1);
    ck_assert_int_eq(cfg.strategy.space.depth_max, 6);
    ck_assert_uint_eq(cfg.strategy.space.op_mask,
                      (1u << NAS_CHAIN_CONV3X3) | (1u << NAS_CHAIN_SEP3X3) |
                          (1u << NAS_CHAIN_MAX3X3) | (1u << NAS_CHAIN_ID));
    nas_config_fini(&cfg);
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"strategy:\n  mutations: morphism\n",
         "c.yaml:2: strategy.mutations: morphism needs space.kind: chain"},
        {"space:\n  kind: chain\nstrategy:\n  name: pnas\n",
         "strategy.name: pnas needs a space with levels"},
        {"space:\n  kind: chain\n  depth_min: 5\n  depth_max: 3\n",
         "c.yaml:3: space.depth_min: must be <= space.depth_max (3), got 5"},
        {"space:\n  kind: chain\n  ops: [sep3x3, zero]\n",
         "c.yaml:3: space.ops: 'zero' is not an op of the chain space"},
        {"strategy:\n  mutations: morph\n", "'morph' is not allowed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = nas_config_parse(bad[i].yaml, strlen(bad[i].yaml), "c.yaml", &cfg, err);
        ck_assert_int_ne(rc, NAS_OK);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "got '%s', want '%s'", err, bad[i].want);
    }
}
END_TEST

/* Evolution over chains saves its whole state (format 1) and a restored
 * copy proposes exactly what the original does. */
START_TEST(test_chain_strategy_save_load) {
    strategy_save_load_check((nas_space){.kind = NAS_SPACE_CHAIN, .depth_max = 6, .morphisms = 1});
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("genome_chain");
    TCase *tc = tcase_create("chain");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_chain_props_random);
    tcase_add_test(tc, test_chain_sampling_coverage);
    tcase_add_test(tc, test_chain_build_300_random);
    tcase_add_test(tc, test_chain_paths_and_shapes);
    tcase_add_test(tc, test_chain_bad_text);
    tcase_add_test(tc, test_chain_config);
    tcase_add_test(tc, test_chain_strategy_save_load);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
