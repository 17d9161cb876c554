/*
 * test_genome_props.c - properties over many random genomes: every sample
 * is valid, every form round-trips exactly, canonical is idempotent and
 * blind to renumbering and half order, mutations are valid and different,
 * expansions are valid and unique.  Seeds are fixed so a failure repeats.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_proto.h"
#include "tests/harness.h"

#include <string.h>

#define N_RANDOM 10000

/* Check writes a location record for every passing ck_assert; in loops of
 * millions that dominates the run, so hot loops check with this instead. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

static int genome_same(const nas_genome *a, const nas_genome *b) {
    if (a->space != b->space) return 0;
    if (a->space == NAS_SPACE_NB201) return memcmp(a->nb201, b->nb201, NAS_NB201_EDGES) == 0;
    if (a->shared != b->shared || a->normal.n_blocks != b->normal.n_blocks ||
        a->reduce.n_blocks != b->reduce.n_blocks)
        return 0;
    return memcmp(a->normal.blocks, b->normal.blocks,
                  sizeof(nas_block) * (size_t)a->normal.n_blocks) == 0 &&
           memcmp(a->reduce.blocks, b->reduce.blocks,
                  sizeof(nas_block) * (size_t)a->reduce.n_blocks) == 0;
}

/* The i-th random space: both spaces, 1..8 blocks, shared or not, with and
 * without `zero`, and sometimes a narrow op set. */
static nas_space space_for(int i, nas_rng *rng) {
    nas_space sp = {0};
    if (i % 10 == 9) {
        sp.kind = NAS_SPACE_NB201;
        return sp;
    }
    sp.kind = NAS_SPACE_CELL;
    sp.n_blocks = 1 + (int)nas_rng_below(rng, NAS_MAX_BLOCKS);
    sp.shared = (int)nas_rng_below(rng, 2);
    switch (nas_rng_below(rng, 4)) {
    case 0:
        sp.op_mask = 0;
        break;
    case 1:
        sp.op_mask = nas_space_default_ops(NAS_SPACE_CELL) | (1u << NAS_OP_ZERO);
        break;
    case 2:
        sp.op_mask = (1u << NAS_OP_ZERO) | (1u << NAS_OP_ID) | (1u << NAS_OP_SEP3X3);
        break;
    default:
        sp.op_mask = (1u << NAS_OP_MAX3X3) | (1u << NAS_OP_SEP3X3);
        break;
    }
    return sp;
}

/* Renumber a cell in a random topological order and swap random halves:
 * the network is unchanged, so the hash must be. */
static void cell_scramble(const nas_cell *in, nas_cell *out, nas_rng *rng) {
    int n = in->n_blocks, placed[NAS_MAX_BLOCKS] = {0}, newpos[NAS_MAX_BLOCKS],
        order[NAS_MAX_BLOCKS];
    for (int p = 0; p < n; p++) {
        int ready[NAS_MAX_BLOCKS], nr = 0;
        for (int k = 0; k < n; k++) {
            if (placed[k]) continue;
            const nas_block *b = &in->blocks[k];
            int ok = (b->in_a < 2 || placed[b->in_a - 2]) && (b->in_b < 2 || placed[b->in_b - 2]);
            if (ok) ready[nr++] = k;
        }
        REQUIRE((nr) > (0), "nr > 0");
        int k = ready[nas_rng_below(rng, (uint32_t)nr)];
        placed[k] = 1;
        newpos[k] = p;
        order[p] = k;
    }
    nas_cell c = {0};
    c.n_blocks = n;
    for (int p = 0; p < n; p++) {
        nas_block b = in->blocks[order[p]];
        if (b.in_a >= 2) b.in_a = (uint8_t)(newpos[b.in_a - 2] + 2);
        if (b.in_b >= 2) b.in_b = (uint8_t)(newpos[b.in_b - 2] + 2);
        if (nas_rng_below(rng, 2)) b = (nas_block){b.in_b, b.op_b, b.in_a, b.op_a};
        c.blocks[p] = b;
    }
    *out = c;
}

START_TEST(test_genome_props_random) {
    nas_rng rng;
    nas_rng_init(&rng, 2024, 1);
    char err[NAS_ERR_LEN];
    int mutated_hidden = 0, mutated_op = 0;
    for (int i = 0; i < N_RANDOM; i++) {
        nas_space sp = space_for(i, &rng);
        nas_genome g;
        REQUIRE((nas_genome_sample(&sp, &rng, &g)) == (NAS_OK),
                "nas_genome_sample(&sp, &rng, &g) == NAS_OK");
        REQUIRE(nas_genome_validate(&g, err) == NAS_OK, "sample %d: %s", i, err);
        if (sp.kind == NAS_SPACE_CELL)
            REQUIRE((g.normal.n_blocks) == (sp.n_blocks), "g.normal.n_blocks == sp.n_blocks");

        /* Text round trip, exact. */
        char text[NAS_GENOME_TEXT_MAX];
        int n = nas_genome_format(&g, text, sizeof text);
        REQUIRE((n) > (0), "n > 0");
        nas_genome back;
        REQUIRE(nas_genome_parse(text, (size_t)n, &back, err) == NAS_OK, "%s: %s", text, err);
        REQUIRE(genome_same(&g, &back), "text round trip of %s", text);

        /* JSON and protobuf round trips, exact. */
        char json[2048];
        int jn = nas_genome_to_json(&g, json, sizeof json);
        REQUIRE(jn > 0, "to_json %s: %d", text, jn);
        REQUIRE(nas_genome_from_json(json, (size_t)jn, &back, err) == NAS_OK, "%s: %s", json, err);
        REQUIRE(genome_same(&g, &back), "json round trip of %s", json);
        uint8_t pb[256];
        int pn = nas_genome_pack(&g, pb, sizeof pb);
        REQUIRE(pn > 0, "pack %s: %d", text, pn);
        REQUIRE(nas_genome_unpack(pb, (size_t)pn, &back, err) == NAS_OK, "unpack %s: %s", text,
                err);
        REQUIRE(genome_same(&g, &back), "proto round trip of %s", text);
        char dot[8192];
        int dn = nas_genome_to_dot(&g, dot, sizeof dot);
        REQUIRE(dn > 0, "dot of %s", text);
        REQUIRE(nas_genome_from_dot(dot, (size_t)dn, &back, err) == NAS_OK, "%s: %s", dot, err);
        REQUIRE(genome_same(&g, &back), "dot round trip of %s", text);

        /* Canonical: valid, idempotent, same hash, equivalent. */
        nas_genome c1, c2;
        nas_genome_canonical(&g, &c1);
        REQUIRE(nas_genome_validate(&c1, err) == NAS_OK, "canonical of %s: %s", text, err);
        nas_genome_canonical(&c1, &c2);
        REQUIRE(genome_same(&c1, &c2), "canonical not idempotent for %s", text);
        uint64_t h = nas_genome_hash(&g);
        REQUIRE((h) == (nas_genome_hash(&c1)), "h == nas_genome_hash(&c1)");

        /* Scrambled numbering and halves: same hash. */
        if (g.space == NAS_SPACE_CELL) {
            nas_genome s = g;
            cell_scramble(&g.normal, &s.normal, &rng);
            if (g.shared)
                s.reduce = s.normal;
            else
                cell_scramble(&g.reduce, &s.reduce, &rng);
            REQUIRE((nas_genome_validate(&s, NULL)) == (NAS_OK),
                    "nas_genome_validate(&s, NULL) == NAS_OK");
            REQUIRE(nas_genome_hash(&s) == h, "scrambled %s hashes differently", text);
            nas_genome cs;
            nas_genome_canonical(&s, &cs);
            REQUIRE(genome_same(&cs, &c1), "scrambled %s: canonical differs", text);
        }

        /* A mutation: valid, different, recorded. */
        nas_genome child;
        nas_mutation m;
        int rc = nas_genome_mutate(&g, &sp, 0.0f, &rng, &child, &m);
        REQUIRE(rc == NAS_OK, "mutate %s: %d", text, rc);
        REQUIRE((nas_genome_validate(&child, NULL)) == (NAS_OK),
                "nas_genome_validate(&child, NULL) == NAS_OK");
        REQUIRE(!nas_genome_equivalent(&g, &child), "mutation of %s changed nothing", text);
        REQUIRE((nas_genome_hash(&child)) != (h), "nas_genome_hash(&child) != h");
        REQUIRE((m.old_val) != (m.new_val), "m.old_val != m.new_val");
        mutated_hidden += m.kind == NAS_MUTATION_HIDDEN;
        mutated_op += m.kind == NAS_MUTATION_OP;
    }
    /* Both kinds are drawn, at roughly equal rates for the cell space. */
    REQUIRE((mutated_hidden) > (N_RANDOM / 4), "mutated_hidden > N_RANDOM / 4");
    REQUIRE((mutated_op) > (N_RANDOM / 4), "mutated_op > N_RANDOM / 4");
}
END_TEST

START_TEST(test_genome_props_expand) {
    nas_rng rng;
    nas_rng_init(&rng, 77, 3);
    for (int i = 0; i < 40; i++) {
        nas_space sp = {.kind = i % 4 == 3 ? NAS_SPACE_NB201 : NAS_SPACE_CELL, .shared = 1};
        sp.n_blocks = 1 + (int)nas_rng_below(&rng, 3);
        if (i % 2) sp.op_mask = nas_space_default_ops(NAS_SPACE_CELL) | (1u << NAS_OP_ZERO);
        if (sp.kind == NAS_SPACE_NB201) sp.op_mask = 0;
        nas_genome g;
        REQUIRE((nas_genome_sample(&sp, &rng, &g)) == (NAS_OK),
                "nas_genome_sample(&sp, &rng, &g) == NAS_OK");
        nas_space grow = sp;
        grow.n_blocks = sp.n_blocks + 1;
        nas_genome *ch = NULL;
        int n = nas_genome_expand(&g, &grow, &ch);
        REQUIRE((n) >= (0), "n >= 0");
        nas_genome pc;
        nas_genome_canonical(&g, &pc);
        uint64_t *hs = nas_calloc((size_t)n + 1, sizeof(uint64_t));
        for (int j = 0; j < n; j++) {
            REQUIRE(nas_genome_validate(&ch[j], NULL) == NAS_OK, "child %d invalid", j);
            nas_genome cc;
            nas_genome_canonical(&ch[j], &cc);
            if (sp.kind == NAS_SPACE_CELL)
                REQUIRE(cc.normal.n_blocks == pc.normal.n_blocks + 1, "child %d has %d blocks", j,
                        cc.normal.n_blocks);
            hs[j] = nas_genome_hash(&ch[j]);
            for (int k = 0; k < j; k++)
                REQUIRE(hs[j] != hs[k], "children %d and %d equal", j, k);
        }
        nas_free(hs);
        nas_free(ch);
    }
}
END_TEST

/* Reference canonical form by definition: the smallest encoding over every
 * topological numbering (no invariants, no pruning). Slow, so small cells. */
static void brute_try(const nas_cell *c, int p, int *perm, int *pos, int *placed, uint8_t *best,
                      int *have) {
    int n = c->n_blocks;
    if (p == n) {
        uint8_t enc[4 * NAS_MAX_BLOCKS];
        for (int q = 0; q < n; q++) {
            const nas_block *b = &c->blocks[perm[q]];
            int ia = b->in_a < 2 ? b->in_a : pos[b->in_a - 2] + 2;
            int ib = b->in_b < 2 ? b->in_b : pos[b->in_b - 2] + 2;
            int oa = b->op_a, ob = b->op_b;
            if (ib < ia || (ib == ia && ob < oa)) {
                int t = ia;
                ia = ib, ib = t, t = oa, oa = ob, ob = t;
            }
            enc[4 * q] = (uint8_t)ia, enc[4 * q + 1] = (uint8_t)oa;
            enc[4 * q + 2] = (uint8_t)ib, enc[4 * q + 3] = (uint8_t)ob;
        }
        if (!*have || memcmp(enc, best, (size_t)(4 * n)) < 0) memcpy(best, enc, (size_t)(4 * n));
        *have = 1;
        return;
    }
    for (int k = 0; k < n; k++) {
        const nas_block *b = &c->blocks[k];
        if (placed[k] || (b->in_a >= 2 && !placed[b->in_a - 2]) ||
            (b->in_b >= 2 && !placed[b->in_b - 2]))
            continue;
        placed[k] = 1, perm[p] = k, pos[k] = p;
        brute_try(c, p + 1, perm, pos, placed, best, have);
        placed[k] = 0;
    }
}

/* The canonical labelling (invariant order, tie search, mirror pruning)
 * must induce exactly the equivalence of the definitional brute force, on
 * cells built to have many structurally identical blocks. */
START_TEST(test_genome_props_canonical_matches_brute_force) {
    enum { N_CELLS = 600 };
    static uint8_t mine[N_CELLS][4 * NAS_MAX_BLOCKS + 1], brute[N_CELLS][4 * NAS_MAX_BLOCKS + 1];
    nas_rng rng;
    nas_rng_init(&rng, 5150, 2);
    memset(mine, 0, sizeof mine);
    memset(brute, 0, sizeof brute);
    for (int i = 0; i < N_CELLS; i++) {
        nas_cell c = {0};
        c.n_blocks = 2 + (int)nas_rng_below(&rng, 5);
        for (int k = 0; k < c.n_blocks; k++) { /* two ops, inputs biased to 0/1: many ties */
            nas_block *b = &c.blocks[k];
            b->in_a = (uint8_t)(nas_rng_below(&rng, 3) ? nas_rng_below(&rng, 2)
                                                       : nas_rng_below(&rng, (uint32_t)(k + 2)));
            b->in_b = (uint8_t)nas_rng_below(&rng, (uint32_t)(k + 2));
            b->op_a = nas_rng_below(&rng, 2) ? NAS_OP_SEP3X3 : NAS_OP_ID;
            b->op_b = nas_rng_below(&rng, 4) ? NAS_OP_SEP3X3 : NAS_OP_ID;
        }
        nas_genome g = {.space = NAS_SPACE_CELL, .shared = 1, .normal = c, .reduce = c}, cg;
        nas_genome_canonical(&g, &cg);
        mine[i][0] = (uint8_t)cg.normal.n_blocks;
        memcpy(mine[i] + 1, cg.normal.blocks, sizeof(nas_block) * (size_t)cg.normal.n_blocks);
        int perm[NAS_MAX_BLOCKS], pos[NAS_MAX_BLOCKS], placed[NAS_MAX_BLOCKS] = {0}, have = 0;
        brute[i][0] = (uint8_t)c.n_blocks;
        brute_try(&c, 0, perm, pos, placed, brute[i] + 1, &have);
    }
    int classes_equal = 0;
    for (int i = 0; i < N_CELLS; i++)
        for (int j = 0; j < i; j++) {
            int a = memcmp(mine[i], mine[j], sizeof mine[i]) == 0;
            int b = memcmp(brute[i], brute[j], sizeof brute[i]) == 0;
            if (a != b)
                ck_abort_msg("cells %d and %d: canonical says %d, brute force %d", i, j, a, b);
            classes_equal += a;
        }
    /* The generator must produce real collisions for this to mean much. */
    ck_assert_int_gt(classes_equal, 30);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("genome_props");
    TCase *tc = tcase_create("props");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_genome_props_random);
    tcase_add_test(tc, test_genome_props_expand);
    tcase_add_test(tc, test_genome_props_canonical_matches_brute_force);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
