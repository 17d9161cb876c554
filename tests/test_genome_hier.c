/*
 * test_genome_hier.c - the hierarchical space (docs/GENOME.md s11): every
 * form round-trips exactly, the canonical hash is invariant under what
 * builds the same network (motif renumbering, node renumbering, unused and
 * duplicated motifs, dead edges), mutations are valid and change the
 * network, sampling covers every primitive and motif reference, counted
 * cost equals the built network's, 300 random genomes build and run
 * forward, and parameter paths follow the documented scheme.  Seeds are fixed.
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
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

static int hier_same(const nas_genome *a, const nas_genome *b) {
    if (a->space != b->space || a->hier.n_motifs != b->hier.n_motifs) return 0;
    if (memcmp(&a->hier.top, &b->hier.top, sizeof a->hier.top) != 0) return 0;
    return memcmp(a->hier.motifs, b->hier.motifs,
                  sizeof(nas_hier_motif) * (size_t)a->hier.n_motifs) == 0;
}

static nas_space hier_space(int i, nas_rng *rng) {
    nas_space sp = {.kind = NAS_SPACE_HIER};
    sp.motifs = 1 + (int)nas_rng_below(rng, NAS_HIER_MAX_MOTIFS);
    sp.motif_nodes = 2 + (int)nas_rng_below(rng, 5);
    sp.top_nodes = 2 + (int)nas_rng_below(rng, 5);
    if (i % 5 == 1) sp.op_mask = (1u << NAS_HIER_ID) | (1u << NAS_HIER_CONV1X1);
    if (i % 5 == 2) sp.op_mask = (1u << NAS_HIER_NONE) | (1u << NAS_HIER_MAX3X3);
    if (i % 7 == 3) sp.motif_nodes = 11;
    return sp;
}

/* The same motif with its nodes renumbered in a random topological order
 * of its non-none edges (Kahn's algorithm with random choices). */
static void renumber(nas_hier_motif *m, nas_rng *rng) {
    int n = m->n_nodes, indeg[NAS_HIER_MAX_NODES] = {0}, order[NAS_HIER_MAX_NODES], pos[16];
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++)
            indeg[i] += m->ops[NAS_HIER_EDGE(j, i)] != 0;
    int done[NAS_HIER_MAX_NODES] = {0};
    order[0] = 0, done[0] = 1;
    for (int i = 1; i < n; i++)
        indeg[i] -= m->ops[NAS_HIER_EDGE(0, i)] != 0;
    for (int k = 1; k < n - 1; k++) {
        int ready[NAS_HIER_MAX_NODES], nr = 0;
        for (int i = 1; i < n - 1; i++)
            if (!done[i] && indeg[i] == 0) ready[nr++] = i;
        int v = ready[nas_rng_below(rng, (uint32_t)nr)];
        order[k] = v, done[v] = 1;
        for (int i = v + 1; i < n; i++)
            indeg[i] -= m->ops[NAS_HIER_EDGE(v, i)] != 0;
    }
    order[n - 1] = n - 1;
    for (int k = 0; k < n; k++)
        pos[order[k]] = k;
    nas_hier_motif r;
    memset(&r, 0, sizeof r);
    r.n_nodes = m->n_nodes;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            int op = m->ops[NAS_HIER_EDGE(j, i)];
            if (op) r.ops[NAS_HIER_EDGE(pos[j], pos[i])] = (uint8_t)op;
        }
    *m = r;
}

/* 1 if the cell uses motif m on an edge that carries a signal (the test's
 * own reachability, independent of the library's). */
static int top_uses(const nas_hier *h, int m) {
    const nas_hier_motif *t = &h->top;
    int n = t->n_nodes, fwd[NAS_HIER_MAX_NODES] = {1}, bwd[NAS_HIER_MAX_NODES] = {0};
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++)
            if (fwd[j] && t->ops[NAS_HIER_EDGE(j, i)]) fwd[i] = 1;
    bwd[n - 1] = 1;
    for (int j = n - 2; j >= 0; j--)
        for (int i = j + 1; i < n; i++)
            if (bwd[i] && t->ops[NAS_HIER_EDGE(j, i)]) bwd[j] = 1;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++)
            if (fwd[j] && bwd[i] && t->ops[NAS_HIER_EDGE(j, i)] == 1 + m) return 1;
    return 0;
}

START_TEST(test_hier_props_random) {
    nas_rng rng;
    nas_rng_init(&rng, 11, 4);
    char err[NAS_ERR_LEN];
    int levels[4] = {0};
    for (int i = 0; i < 3000; i++) {
        nas_space sp = hier_space(i, &rng);
        nas_genome g;
        REQUIRE(nas_genome_sample(&sp, &rng, &g) == NAS_OK, "sample %d", i);
        REQUIRE(nas_genome_validate(&g, err) == NAS_OK, "sample %d: %s", i, err);
        REQUIRE(g.hier.n_motifs == sp.motifs && g.hier.top.n_nodes == sp.top_nodes, "sizes");
        char text[NAS_GENOME_TEXT_MAX];
        uint64_t h = genome_forms_check(&g, hier_same, text);

        /* What builds the same network hashes the same: motifs renumbered
         * (with the cell's references), nodes renumbered, unused motifs
         * changed, a used motif copied into a new slot and referenced. */
        nas_genome r = g;
        int perm[NAS_HIER_MAX_MOTIFS];
        for (int m = 0; m < g.hier.n_motifs; m++)
            perm[m] = m;
        nas_rng_shuffle_int(&rng, perm, g.hier.n_motifs);
        for (int m = 0; m < g.hier.n_motifs; m++)
            r.hier.motifs[perm[m]] = g.hier.motifs[m];
        for (int e = 0; e < NAS_HIER_MAX_EDGES; e++)
            if (g.hier.top.ops[e]) r.hier.top.ops[e] = (uint8_t)(1 + perm[g.hier.top.ops[e] - 1]);
        for (int m = 0; m < r.hier.n_motifs; m++)
            renumber(&r.hier.motifs[m], &rng);
        renumber(&r.hier.top, &rng);
        REQUIRE(nas_genome_validate(&r, err) == NAS_OK, "renumbered %s: %s", text, err);
        REQUIRE(nas_genome_hash(&r) == h && nas_genome_equivalent(&r, &g), "renumbered %s", text);
        nas_genome u = g;
        for (int m = 0; m < u.hier.n_motifs; m++)
            if (!top_uses(&u.hier, m)) u.hier.motifs[m] = g.hier.motifs[(m + 1) % g.hier.n_motifs];
        if (u.hier.n_motifs < NAS_HIER_MAX_MOTIFS) {
            int used = 0;
            while (!top_uses(&u.hier, used))
                used++;
            int slot = u.hier.n_motifs++;
            u.hier.motifs[slot] = u.hier.motifs[used];
            for (int e = 0; e < NAS_HIER_MAX_EDGES; e++)
                if (u.hier.top.ops[e] == 1 + used && nas_rng_below(&rng, 2))
                    u.hier.top.ops[e] = (uint8_t)(1 + slot);
        }
        REQUIRE(nas_genome_validate(&u, err) == NAS_OK, "%s", err);
        REQUIRE(nas_genome_hash(&u) == h, "unused or copied motifs change the hash of %s", text);

        /* A mutation: valid, different, recorded. */
        nas_genome child;
        nas_mutation mu;
        int rc = nas_genome_mutate(&g, &sp, 0.0f, &rng, &child, &mu);
        if (rc == NAS_EGENOME) continue; /* a space too small to change (one op, 2 nodes) */
        REQUIRE(rc == NAS_OK, "mutate %s: %d", text, rc);
        REQUIRE(nas_genome_validate(&child, err) == NAS_OK, "child of %s: %s", text, err);
        REQUIRE(!nas_genome_equivalent(&g, &child), "mutation of %s changed nothing", text);
        REQUIRE(nas_genome_hash(&child) != h, "child hash");
        REQUIRE(mu.kind == NAS_MUTATION_OP && (mu.cell == 2 || mu.cell == 3), "kind");
        char desc[160];
        REQUIRE(nas_mutation_format(&mu, &g, desc, sizeof desc) > 0, "describe");
        REQUIRE(strstr(desc, "unknown") == NULL && strstr(desc, "?") == NULL, "%s", desc);
        levels[mu.cell]++;
    }
    REQUIRE(levels[2] > 500 && levels[3] > 500, "levels mutated: 2: %d, 3: %d", levels[2],
            levels[3]);
}
END_TEST

/* Sampling covers the space: every primitive, every motif reference, none,
 * and no two of a few hundred samples are the same network. */
START_TEST(test_hier_sampling_coverage) {
    nas_rng rng;
    nas_rng_init(&rng, 7, 1);
    nas_space sp = {.kind = NAS_SPACE_HIER}; /* defaults: 6 motifs of 4 nodes, 5-node cell */
    int prim[NAS_HIER_OP_COUNT] = {0}, refs[NAS_HIER_MAX_MOTIFS + 1] = {0};
    uint64_t seen[400];
    for (int i = 0; i < 400; i++) {
        nas_genome g;
        ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_OK);
        ck_assert_int_eq(g.hier.n_motifs, 6);
        ck_assert_int_eq(g.hier.top.n_nodes, 5);
        for (int m = 0; m < 6; m++) {
            ck_assert_int_eq(g.hier.motifs[m].n_nodes, 4);
            for (int e = 0; e < 6; e++)
                prim[g.hier.motifs[m].ops[e]]++;
        }
        for (int e = 0; e < 10; e++)
            refs[g.hier.top.ops[e]]++;
        seen[i] = nas_genome_hash(&g);
        for (int j = 0; j < i; j++)
            ck_assert_uint_ne(seen[j], seen[i]);
    }
    for (int o = 0; o < NAS_HIER_OP_COUNT; o++)
        ck_assert_int_gt(prim[o], 1000);
    for (int r = 0; r <= NAS_HIER_MAX_MOTIFS; r++)
        ck_assert_int_gt(refs[r], 300);
    /* The flat representation: one 11-node motif used once by a 2-node cell. */
    nas_space flat = {.kind = NAS_SPACE_HIER, .motifs = 1, .motif_nodes = 11, .top_nodes = 2};
    for (int i = 0; i < 50; i++) {
        nas_genome g, child;
        nas_mutation mu;
        ck_assert_int_eq(nas_genome_sample(&flat, &rng, &g), NAS_OK);
        ck_assert_int_eq(g.hier.top.ops[0], 1);
        ck_assert_int_eq(nas_genome_mutate(&g, &flat, 0.0f, &rng, &child, &mu), NAS_OK);
        ck_assert_int_eq(mu.cell, 2); /* the cell's one edge cannot change */
    }
}
END_TEST

START_TEST(test_hier_build_300_random) {
    nas_rng rng;
    nas_rng_init(&rng, 300, 3);
    for (int i = 0; i < 300; i++) {
        nas_space sp = hier_space(i, &rng);
        sp.motif_nodes = sp.motif_nodes > 6 ? 6 : sp.motif_nodes; /* keep 300 nets quick */
        nas_genome g;
        ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_OK);
        nas_fidelity f = nas_fidelity_default();
        f.channels = 1 + (int)nas_rng_below(&rng, 3);
        f.cells = 1 + (int)nas_rng_below(&rng, 2);
        genome_build_check(&g, &f, 8 + (int)nas_rng_below(&rng, 9));
    }
}
END_TEST

static const char *const EXAMPLE = "hier=c/sd/i-m,s/-c/dai;0/1-/-01";

START_TEST(test_hier_paths_and_shapes) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(EXAMPLE, strlen(EXAMPLE), &g, err), NAS_OK);
    char back[NAS_GENOME_TEXT_MAX];
    ck_assert_int_gt(nas_genome_format(&g, back, sizeof back), 0);
    ck_assert_str_eq(back, EXAMPLE);
    nas_fidelity f = nas_fidelity_default();
    f.channels = 8;
    f.cells = 1;
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 12, 12, err), NAS_OK);
    int logits;
    ck_assert_int_eq(nas_builder_build(net, &g, &f, 10, &logits, err), NAS_OK);
    static const struct {
        const char *name;
        int d0, d1;
    } want[] = {
        {"stem/conv/weight", 8, 1},
        {"cell0/e0_1/e0_1/conv/weight", 8, 8}, /* cell edge 0->1 is motif 0; its 0->1 is c */
        {"cell0/e0_1/e0_2/dw/weight", 8, 1},   /* motif 0's 0->2 is s */
        {"cell0/e0_1/e0_2/pw/weight", 8, 8},
        {"cell0/e0_1/e1_2/dw/weight", 8, 1},   /* motif 0's 1->2 is d */
        {"cell0/e0_2/e1_2/conv/weight", 8, 8}, /* cell edge 0->2 is motif 1 */
        {"cell0/e1_3/e0_1/conv/weight", 8, 8}, /* cell edge 1->3 is motif 0 again */
        {"cell0/e2_3/e0_3/dw/weight", 8, 1},   /* cell edge 2->3 is motif 1; its 0->3 is d */
        {"red1/dw/weight", 8, 1},
        {"red1/pw/weight", 16, 8},
        {"cell1/e0_1/e0_1/conv/weight", 16, 16},
        {"red2/pw/weight", 32, 16},
        {"cell2/e2_3/e0_3/bn/running_var", 32, 0},
        {"head/linear/weight", 10, 32},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const nas_param *p = nas_net_param_find(net, want[i].name);
        ck_assert_msg(p != NULL, "no %s", want[i].name);
        ck_assert_int_eq(p->shape[0], want[i].d0);
        if (want[i].d1) ck_assert_int_eq(p->shape[1], want[i].d1);
    }
    ck_assert_ptr_null(nas_net_param_find(net, "cell0/e0_3/e0_1/conv/weight")); /* a none edge */
    nas_net_destroy(&net);
}
END_TEST

/* Hand-checked identities of the example, and its pinned hash. */
START_TEST(test_hier_canonical_by_hand) {
    static const char *const same[] = {
        "hier=s/-c/dai,c/sd/i-m;1/0-/-10",          /* motifs swapped */
        "hier=c/sd/i-m,s/-c/dai;1/0-/-10",          /* cell nodes 1 and 2 swapped: same network */
        "hier=c/sd/i-m,s/-c/dai,m;0/1-/-01",        /* an unused motif */
        "hier=c/sd/i-m,s/-c/dai,c/sd/i-m;0/1-/-21", /* a copy of motif 0 used once */
        "hier=c/sd/i-m,s/-c/dai;0/1-/---/-010",     /* a node nothing reaches */
    };
    static const char *const differ[] = {
        "hier=c/sd/i-m,s/-c/dai;0/1-/-00", /* another motif on an edge */
        "hier=c/sd/i-a,s/-c/dai;0/1-/-01", /* another primitive */
        "hier=c/sd/i-m,s/-c/dai;0/1-/001", /* one more edge */
    };
    nas_genome g, o;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(EXAMPLE, strlen(EXAMPLE), &g, err), NAS_OK);
    uint64_t h = nas_genome_hash(&g);
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        ck_assert_msg(nas_genome_parse(same[i], strlen(same[i]), &o, err) == NAS_OK, "%s", err);
        ck_assert_msg(nas_genome_hash(&o) == h, "%s", same[i]);
    }
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
        ck_assert_msg(nas_genome_parse(differ[i], strlen(differ[i]), &o, err) == NAS_OK, "%s", err);
        ck_assert_msg(nas_genome_hash(&o) != h, "%s", differ[i]);
    }
    /* The encoding is stored: a change to it must be deliberate. */
    ck_assert_uint_eq(h, 0x22e7b3ee73caa6d3ull);
}
END_TEST

START_TEST(test_hier_bad_text) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"hier=", "at 5: empty motif"},
        {"hier=c/s;0", "at 7: node 2 lists 1 edges, needs 2"},
        {"hier=x;0", "at 5: unknown primitive 'x'"},
        {"hier=c;1", "at 7: top edge '1' is not '-' or a motif index 0..0"},
        {"hier=c", "expected ',' or ';'"},
        {"hier=-;0", "hier motif 0: no path from the input (node 0) to the output (node 1)"},
        {"hier=c;-/--", "hier top: no path from the input"},
        {"hier=c,c,c,c,c,c,c;0", "more than 6 motifs"},
        {"hier=c/cc/ccc/cccc/ccccc/cccccc/ccccccc/cccccccc/ccccccccc/cccccccccc/ccccccccccc;0",
         "more than 11 nodes"},
        {"hier=c;0 x", "unexpected 'x' after the genome"},
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
    const char *j = "{\"space\":\"hierarchical\",\"motifs\":[\"c\"],\"top\":\"3\"}";
    ck_assert_int_eq(nas_genome_from_json(j, strlen(j), &g, err), NAS_EGENOME);
    ck_assert_msg(strstr(err, "top: at 0: top edge '3'") != NULL, "%s", err);
    j = "{\"space\":\"hierarchical\",\"motifs\":[\"c\"],\"cell\":\"0\"}";
    ck_assert_int_eq(nas_genome_from_json(j, strlen(j), &g, err), NAS_EGENOME);
    ck_assert_msg(strstr(err, "unknown key \"cell\"") != NULL, "%s", err);
    Naspb__Genome m;
    naspb__genome__init(&m);
    char motif[] = "c", top[] = "7", *motifs[1] = {motif};
    m.has_space = 1;
    m.space = NAS_SPACE_HIER;
    m.n_hier_motifs = 1;
    m.hier_motifs = motifs;
    m.hier_top = top;
    ck_assert_int_eq(nas_genome_from_proto(&m, &g, err), NAS_EGENOME);
    ck_assert_msg(strstr(err, "proto: top: at 0: top edge '7'") != NULL, "%s", err);
    m.hier_top = NULL;
    ck_assert_int_eq(nas_genome_from_proto(&m, &g, err), NAS_EGENOME);
    ck_assert_msg(strstr(err, "and no top") != NULL, "%s", err);
    /* PNAS has no levels in this space: a clear refusal, never a crash. */
    nas_space sp = {.kind = NAS_SPACE_HIER};
    nas_genome *kids = NULL;
    ck_assert_int_eq(nas_genome_enumerate_level1(&sp, &kids), NAS_EUNSUPPORTED);
    ck_assert_int_eq(nas_genome_parse(EXAMPLE, strlen(EXAMPLE), &g, err), NAS_OK);
    ck_assert_int_eq(nas_genome_level(&g), NAS_EINVAL);
}
END_TEST

/* The largest genome fits every form's documented bound, and nasctl draws it. */
START_TEST(test_hier_largest_fits) {
    char text[NAS_GENOME_TEXT_MAX + 64] = "hier=";
    const char *row = "sssssssssss";
    for (int m = 0; m <= NAS_HIER_MAX_MOTIFS; m++) {
        if (m) strcat(text, m == NAS_HIER_MAX_MOTIFS ? ";" : ",");
        for (int i = 1; i < NAS_HIER_MAX_NODES; i++) {
            if (i > 1) strcat(text, "/");
            strncat(text, m == NAS_HIER_MAX_MOTIFS ? "55555555555" : row, (size_t)i);
        }
    }
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_genome_parse(text, strlen(text), &g, err) == NAS_OK, "%s", err);
    char buf[NAS_GENOME_TEXT_MAX], json[NAS_GENOME_JSON_MAX], *dot = nas_malloc(NAS_GENOME_DOT_MAX);
    ck_assert_int_gt(nas_genome_format(&g, buf, sizeof buf), 0);
    ck_assert_int_gt(nas_genome_to_json(&g, json, sizeof json), 0);
    ck_assert_int_gt(nas_genome_to_dot(&g, dot, NAS_GENOME_DOT_MAX), 0);
    nas_free(dot);
    uint8_t pb[1024];
    ck_assert_int_gt(nas_genome_pack(&g, pb, sizeof pb), 0);
    char cmd[700], out[65536];
    snprintf(cmd, sizeof cmd, "%s dot '%s'", nas_bin("nasctl"), EXAMPLE);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "cluster_top"));
    ck_assert_ptr_nonnull(strstr(out, "t1 -> t3 [label=\"motif 0\"]"));
    ck_assert_ptr_nonnull(strstr(out, "m0_0 -> m0_2 [label=\"sep3x3\"]"));
}
END_TEST

/* Campaign files: the space and its keys parse, and what cannot work is
 * refused naming the key. */
START_TEST(test_hier_config) {
    nas_config cfg;
    char err[NAS_ERR_LEN] = "";
    const char *ok = "space:\n  kind: hierarchical\n  motifs: 3\n  motif_nodes: 5\n"
                     "  top_nodes: 4\n  ops: [none, id, sep3x3, max3x3]\n"
                     "strategy:\n  name: evolution\n";
    ck_assert_msg(nas_config_parse(ok, strlen(ok), "c.yaml", &cfg, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(cfg.strategy.space.kind, NAS_SPACE_HIER);
    ck_assert_int_eq(cfg.strategy.space.motifs, 3);
    ck_assert_int_eq(cfg.strategy.space.motif_nodes, 5);
    ck_assert_int_eq(cfg.strategy.space.top_nodes, 4);
    ck_assert_uint_eq(cfg.strategy.space.op_mask, (1u << NAS_HIER_NONE) | (1u << NAS_HIER_ID) |
                                                      (1u << NAS_HIER_SEP3X3) |
                                                      (1u << NAS_HIER_MAX3X3));
    nas_config_fini(&cfg);
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"space:\n  kind: hierarchical\nstrategy:\n  name: pnas\n",
         "pnas needs a space with levels (cell or nb201), not hierarchical"},
        {"space:\n  kind: hierarchical\n  ops: [none]\n",
         "c.yaml:3: space.ops: needs at least one op other than none"},
        {"space:\n  kind: hierarchical\n  motif_nodes: 12\n", "c.yaml:3: space.motif_nodes"},
        {"space:\n  kind: hierarchical\n  ops: [sep3x3, zero]\n",
         "'zero' is not an op of the hierarchical space"},
        {"space:\n  kind: hierarchical\nstrategy:\n  mutations: morphism\n",
         "morphism needs space.kind: chain"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = nas_config_parse(bad[i].yaml, strlen(bad[i].yaml), "c.yaml", &cfg, err);
        ck_assert_int_ne(rc, NAS_OK);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "got '%s', want '%s'", err, bad[i].want);
    }
}
END_TEST

START_TEST(test_hier_strategy_save_load) {
    strategy_save_load_check((nas_space){.kind = NAS_SPACE_HIER, .motifs = 3, .top_nodes = 4});
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("genome_hier");
    TCase *tc = tcase_create("hier");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hier_props_random);
    tcase_add_test(tc, test_hier_sampling_coverage);
    tcase_add_test(tc, test_hier_build_300_random);
    tcase_add_test(tc, test_hier_paths_and_shapes);
    tcase_add_test(tc, test_hier_canonical_by_hand);
    tcase_add_test(tc, test_hier_bad_text);
    tcase_add_test(tc, test_hier_largest_fits);
    tcase_add_test(tc, test_hier_config);
    tcase_add_test(tc, test_hier_strategy_save_load);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
