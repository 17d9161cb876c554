/*
 * test_genome.c - the genome's forms, validation, identity and search moves
 * on hand-written cases: every malformed input names its problem, known
 * equivalences hash equal, and the level-1 counts match docs/GENOME.md.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_proto.h"
#include "tests/harness.h"

#include <stdio.h>
#include <string.h>

static nas_genome parse_ok(const char *text) {
    nas_genome g;
    char err[NAS_ERR_LEN] = "";
    int rc = nas_genome_parse(text, strlen(text), &g, err);
    ck_assert_msg(rc == NAS_OK, "parse '%s': %s", text, err);
    return g;
}

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

// ---------------------------------------------------------------------------

START_TEST(test_genome_ops_named_both_ways) {
    for (int op = 0; op < NAS_OP_COUNT; op++) {
        const char *n = nas_op_name(op);
        ck_assert_ptr_nonnull(n);
        ck_assert_int_eq(nas_op_parse(n, strlen(n)), op);
    }
    for (int op = 0; op < NAS_NB201_OP_COUNT; op++) {
        const char *n = nas_nb201_op_name(op);
        ck_assert_int_eq(nas_nb201_op_parse(n, strlen(n)), op);
    }
    ck_assert_ptr_null(nas_op_name(NAS_OP_COUNT));
    ck_assert_ptr_null(nas_op_name(-1));
    ck_assert_int_eq(nas_op_parse("sep3x", 5), -1);
    ck_assert_int_eq(nas_op_parse("sep3x3x", 7), -1);
    ck_assert_uint_eq(nas_space_default_ops(NAS_SPACE_CELL) & (1u << NAS_OP_ZERO), 0);
    int k = -1;
    ck_assert_int_eq(nas_space_kind_parse("nb201", &k), NAS_OK);
    ck_assert_int_eq(k, NAS_SPACE_NB201);
    ck_assert_int_eq(nas_space_kind_parse("darts", &k), NAS_EINVAL);
}
END_TEST

START_TEST(test_genome_text_round_trip) {
    const char *texts[] = {
        "n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1",
        "c=sep3x3:0+sep5x5:1,conv1x7_7x1:2+dil3x3:2,zero:3+conv1x1:0",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    };
    for (size_t i = 0; i < NAS_ARRAY_LEN(texts); i++) {
        nas_genome g = parse_ok(texts[i]);
        char buf[NAS_GENOME_TEXT_MAX];
        int n = nas_genome_format(&g, buf, sizeof buf);
        ck_assert_int_eq(n, (int)strlen(texts[i]));
        ck_assert_str_eq(buf, texts[i]);
    }
    nas_genome g = parse_ok("n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1");
    ck_assert_int_eq(g.space, NAS_SPACE_CELL);
    ck_assert_int_eq(g.normal.n_blocks, 2);
    ck_assert_int_eq(g.normal.blocks[1].op_a, NAS_OP_SEP5X5);
    ck_assert_int_eq(g.normal.blocks[1].in_a, 2);
    ck_assert_int_eq(g.reduce.blocks[0].op_b, NAS_OP_SEP3X3);
    /* Surrounding white space and several separating spaces are accepted. */
    nas_genome h = parse_ok("  n=sep3x3:1+max3x3:0,sep5x5:2+id:0   r=avg3x3:0+sep3x3:1\n");
    ck_assert(genome_same(&g, &h));
    char small[10];
    ck_assert_int_eq(nas_genome_format(&g, small, sizeof small), NAS_ERANGE);
    /* The longest text of any valid genome fits NAS_GENOME_TEXT_MAX: eight
     * blocks of the longest op name reading two-digit-free inputs, twice. */
    nas_genome big = {.space = NAS_SPACE_CELL};
    big.normal.n_blocks = big.reduce.n_blocks = NAS_MAX_BLOCKS;
    for (int k = 0; k < NAS_MAX_BLOCKS; k++)
        big.normal.blocks[k] = big.reduce.blocks[k] =
            (nas_block){(uint8_t)(k + 1), NAS_OP_CONV1X7_7X1, (uint8_t)(k + 1), NAS_OP_CONV1X7_7X1};
    char buf2[NAS_GENOME_TEXT_MAX];
    int len = nas_genome_format(&big, buf2, sizeof buf2);
    ck_assert_int_gt(len, 400);
    ck_assert_int_lt(len, NAS_GENOME_TEXT_MAX);
    char jbuf[NAS_GENOME_JSON_MAX], dbuf[NAS_GENOME_DOT_MAX];
    ck_assert_int_gt(nas_genome_to_json(&big, jbuf, sizeof jbuf), 0);
    ck_assert_int_gt(nas_genome_to_dot(&big, dbuf, sizeof dbuf), 0);
}
END_TEST

/* Each malformed input, and a fragment its error message must contain. */
static const struct {
    const char *text;
    const char *want;
} bad_inputs[] = {
    {"", "expected 'n='"},
    {"   ", "expected 'n='"},
    {"x=sep3x3:0+id:1", "at 0: expected 'n='"},
    {"n=", "normal cell is empty"},
    {"n= r=id:0+id:1", "normal cell is empty"},
    {"n=id:0+id:1 r=", "reduce cell is empty"},
    {"n=id:0+id:1", "expected ' r='"},
    {"n=id:0+id:1 x=id:0+id:1", "expected 'r='"},
    {"n=sep4x4:0+id:1 r=id:0+id:1", "at 2: unknown op 'sep4x4'"},
    {"n=id:0+id:1 r=id:0+SEP3X3:1", "unknown op 'SEP3X3'"},
    {"n=id0+id:1 r=id:0+id:1", "unknown op 'id0'"},
    {"n=id:0 r=id:0+id:1", "expected '+'"},
    {"n=id:0+ r=id:0+id:1", "expected an op name"},
    {"n=id:+id:1 r=id:0+id:1", "at 5: expected an input index"},
    {"n=id:x+id:1 r=id:0+id:1", "expected an input index"},
    {"n=id:0+id:1, r=id:0+id:1", "expected an op name"},
    {"n=id:0+id:1,,id:0+id:1 r=id:0+id:1", "expected an op name"},
    {"n=id:2+id:1 r=id:0+id:1", "at 5: normal block 0 a: reads itself"},
    {"n=id:3+id:1,id:0+id:1 r=id:0+id:1", "reads later block 1"},
    {"n=id:0+id:9 r=id:0+id:1", "normal block 0 b: input 9 out of range (0..1)"},
    {"n=id:0+id:1 r=id:0+id:1,id:0+id:7", "reduce block 1 b: input 7 out of range (0..2)"},
    {"n=id:0+id:1234 r=id:0+id:1", "input index too long"},
    {"n=id:0+id:1 r=id:0+id:1 extra", "unexpected 'e' after the genome"},
    {"n=id:0+id:1 r=id:0+id:1;", "unexpected ';'"},
    {"n=zero:0+zero:1 r=id:0+id:1", "both halves are zero"},
    {"c=id:0+id:1 r=id:0+id:1", "unexpected 'r'"},
    {"c=id:0+id:1,id:0+id:1,id:0+id:1,id:0+id:1,id:0+id:1,id:0+id:1,id:0+id:1,id:0+id:1,id:0+id:1",
     "too many blocks (max 8)"},
    {"n=id\x01:0+id:1 r=id:0+id:1", "expected ':' after op, got byte 0x01"},
    {"n=id:0-id:1 r=id:0+id:1", "expected '+' between the halves"},
    {"|nor_conv_3x3~0|", "expected '+' between nodes"},
    {"|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~2|+|skip_connect~0|none~1|nor_conv_1x1~2|",
     "node 2 edge 1 must come from node 1, not 2"},
    {"|conv~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
     "at 1: unknown op 'conv'"},
    {"|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|",
     "expected an op name"},
    {"|nor_conv_3x3~0+|nor_conv_3x3~0|", "expected '|' after an edge"},
    {"|nor_conv_3x3:0|", "expected '~' after op"},
    {"n=sep3x3:0+sep3x3:1 r=avg3x3:0+sep3x3:1\0junk", "unexpected byte 0x00"},
};

START_TEST(test_genome_malformed_inputs_named) {
    ck_assert_uint_ge(NAS_ARRAY_LEN(bad_inputs), 30);
    for (size_t i = 0; i < NAS_ARRAY_LEN(bad_inputs); i++) {
        const char *t = bad_inputs[i].text;
        size_t len = strlen(t);
        if (strstr(bad_inputs[i].want, "0x00")) len += 5; /* the embedded NUL case */
        nas_genome g;
        memset(&g, 0x5a, sizeof g);
        nas_genome before = g;
        char err[NAS_ERR_LEN] = "";
        int rc = nas_genome_parse(t, len, &g, err);
        ck_assert_msg(rc == NAS_EGENOME, "case %zu '%s' gave %d", i, t, rc);
        ck_assert_msg(strstr(err, bad_inputs[i].want) != NULL, "case %zu '%s': got '%s', want '%s'",
                      i, t, err, bad_inputs[i].want);
        /* A failed parse leaves the output alone. */
        ck_assert(memcmp(&g, &before, sizeof g) == 0);
    }
    /* A length shorter than the string: only the prefix is read. */
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse("n=id:0+id:1 r=id:0+id:1", 11, &g, err), NAS_EGENOME);
    ck_assert_int_eq(nas_genome_parse(NULL, 0, &g, err), NAS_EGENOME);
    ck_assert_int_eq(nas_genome_parse(NULL, 5, &g, err), NAS_EINVAL);
}
END_TEST

START_TEST(test_genome_validate_structs) {
    nas_genome g = parse_ok("n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1");
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_validate(&g, err), NAS_OK);
    nas_genome b = g;
    b.normal.blocks[1].op_b = 42;
    ck_assert_int_eq(nas_genome_validate(&b, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "normal block 1 b: unknown op 42"));
    b = g;
    b.reduce.n_blocks = 0;
    ck_assert_int_eq(nas_genome_validate(&b, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "reduce cell is empty"));
    b = g;
    b.normal.n_blocks = 9;
    ck_assert_int_eq(nas_genome_validate(&b, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "too many"));
    b = g;
    b.shared = 1;
    ck_assert_int_eq(nas_genome_validate(&b, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "reduce cell differs"));
    b = g;
    b.space = 7;
    ck_assert_int_eq(nas_genome_validate(&b, err), NAS_EGENOME);
    b = g;
    b.normal.blocks[0].in_a = 2;
    ck_assert_int_eq(nas_genome_validate(&b, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "reads itself"));
    ck_assert_int_eq(nas_genome_validate(NULL, err), NAS_EINVAL);
    char buf[NAS_GENOME_TEXT_MAX];
    ck_assert_int_eq(nas_genome_format(&b, buf, sizeof buf), NAS_EGENOME);
}
END_TEST

START_TEST(test_genome_equivalences_hash_equal) {
    /* Swapped halves. */
    nas_genome a = parse_ok("c=sep3x3:1+max3x3:0,sep5x5:2+id:0");
    nas_genome b = parse_ok("c=max3x3:0+sep3x3:1,id:0+sep5x5:2");
    ck_assert_uint_eq(nas_genome_hash(&a), nas_genome_hash(&b));
    ck_assert(nas_genome_equivalent(&a, &b));
    /* Renumbered independent blocks, with a consumer following them. */
    a = parse_ok("c=sep3x3:0+id:1,max3x3:1+avg3x3:0,conv3x3:2+sep5x5:3");
    b = parse_ok("c=max3x3:1+avg3x3:0,sep3x3:0+id:1,sep5x5:2+conv3x3:3");
    ck_assert_uint_eq(nas_genome_hash(&a), nas_genome_hash(&b));
    /* A block read only through `zero` is dead; dropping it is equivalent. */
    a = parse_ok("c=sep3x3:0+id:1,max3x3:1+zero:2");
    b = parse_ok("c=max3x3:1+zero:0");
    ck_assert(nas_genome_equivalent(&a, &b));
    nas_genome ca;
    nas_genome_canonical(&a, &ca);
    ck_assert_int_eq(ca.normal.n_blocks, 1);
    /* Zero's input does not matter. */
    a = parse_ok("c=sep3x3:0+zero:1");
    b = parse_ok("c=sep3x3:0+zero:0");
    ck_assert(nas_genome_equivalent(&a, &b));
    /* Shared vs unshared with equal cells build the same network. */
    a = parse_ok("c=sep3x3:0+id:1");
    b = parse_ok("n=sep3x3:0+id:1 r=id:1+sep3x3:0");
    ck_assert_uint_eq(nas_genome_hash(&a), nas_genome_hash(&b));
    /* Genuinely different networks differ: an op, an input, the wiring. */
    const char *distinct[] = {
        "c=sep3x3:0+id:1",
        "c=sep3x3:1+id:1",
        "c=sep3x3:0+id:0",
        "c=sep5x5:0+id:1",
        "c=sep3x3:0+id:1,sep3x3:0+id:1", /* two identical blocks, both outputs */
        "c=sep3x3:0+id:1,id:2+id:2",     /* a block read twice */
        "c=sep3x3:0+id:1,sep3x3:0+id:1,id:2+id:3",
        "c=sep3x3:0+id:1,sep3x3:0+id:1,id:2+id:2",
        "n=sep3x3:0+id:1 r=sep3x3:0+id:0",
    };
    uint64_t h[NAS_ARRAY_LEN(distinct)];
    for (size_t i = 0; i < NAS_ARRAY_LEN(distinct); i++) {
        nas_genome g = parse_ok(distinct[i]);
        h[i] = nas_genome_hash(&g);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(h[i] != h[j], "'%s' and '%s' hash equal", distinct[i], distinct[j]);
    }
}
END_TEST

START_TEST(test_genome_tie_groups_resolved) {
    /* Two identical blocks A1, A2 and two consumers: "each reads both" and
     * "each reads one twice" have equal multisets of block structures but
     * differ as graphs; the canonical labelling must tell them apart and
     * still identify every renumbering of each. */
    nas_genome cross1 =
        parse_ok("c=sep3x3:0+id:1,sep3x3:0+id:1,max3x3:2+avg3x3:3,max3x3:2+avg3x3:3");
    nas_genome cross2 =
        parse_ok("c=sep3x3:0+id:1,sep3x3:0+id:1,max3x3:3+avg3x3:2,avg3x3:2+max3x3:3");
    nas_genome twice =
        parse_ok("c=sep3x3:0+id:1,sep3x3:0+id:1,max3x3:2+avg3x3:2,max3x3:3+avg3x3:3");
    nas_genome twice2 =
        parse_ok("c=sep3x3:0+id:1,sep3x3:0+id:1,max3x3:3+avg3x3:3,avg3x3:2+max3x3:2");
    ck_assert(nas_genome_equivalent(&cross1, &cross2));
    ck_assert(nas_genome_equivalent(&twice, &twice2));
    ck_assert(!nas_genome_equivalent(&cross1, &twice));
    ck_assert_uint_ne(nas_genome_hash(&cross1), nas_genome_hash(&twice));
}
END_TEST

START_TEST(test_genome_canonical_idempotent_and_valid) {
    nas_genome g =
        parse_ok("n=sep3x3:1+max3x3:0,sep5x5:2+id:0,zero:3+conv3x3:0 r=avg3x3:0+sep3x3:1");
    nas_genome c1, c2;
    nas_genome_canonical(&g, &c1);
    nas_genome_canonical(&c1, &c2);
    ck_assert(genome_same(&c1, &c2));
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_validate(&c1, err), NAS_OK);
    /* In place works too. */
    nas_genome_canonical(&g, &g);
    ck_assert(genome_same(&g, &c1));
    /* The hash is pinned: it is stored in databases. */
    nas_genome p = parse_ok("c=sep3x3:0+id:1");
    ck_assert_uint_eq(nas_genome_hash(&p), nas_genome_hash(&p));
    char buf[NAS_GENOME_TEXT_MAX];
    nas_genome_canonical(&p, &p);
    nas_genome_format(&p, buf, sizeof buf);
    ck_assert_str_eq(buf, "c=sep3x3:0+id:1");
}
END_TEST

START_TEST(test_genome_level1_counts) {
    /* docs/GENOME.md derives these: a 1-block cell is an unordered pair of
     * halves, each (op, input in {0,1}). */
    nas_space sp = {.kind = NAS_SPACE_CELL, .n_blocks = 5, .op_mask = 0, .shared = 1};
    nas_genome *gs = NULL;
    int n = nas_genome_enumerate_level1(&sp, &gs);
    ck_assert_int_eq(n, 210); /* 20 halves: C(20,2) + 20 */
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(nas_genome_validate(&gs[i], NULL), NAS_OK);
        ck_assert_int_eq(gs[i].normal.n_blocks, 1);
        for (int j = 0; j < i; j++)
            ck_assert(!nas_genome_equivalent(&gs[i], &gs[j]));
    }
    nas_free(gs);
    /* PNAS's own 8 ops. */
    sp.op_mask = (1u << NAS_OP_ID) | (1u << NAS_OP_SEP3X3) | (1u << NAS_OP_SEP5X5) |
                 (1u << NAS_OP_SEP7X7) | (1u << NAS_OP_CONV1X7_7X1) | (1u << NAS_OP_DIL3X3) |
                 (1u << NAS_OP_AVG3X3) | (1u << NAS_OP_MAX3X3);
    n = nas_genome_enumerate_level1(&sp, &gs);
    ck_assert_int_eq(n, 136); /* 16 halves: C(16,2) + 16 */
    nas_free(gs);
    /* With zero allowed: 21 distinct halves (zero's input is irrelevant),
     * minus the zero+zero block. */
    sp.op_mask = nas_space_default_ops(NAS_SPACE_CELL) | (1u << NAS_OP_ZERO);
    n = nas_genome_enumerate_level1(&sp, &gs);
    ck_assert_int_eq(n, 230);
    nas_free(gs);
    /* Unshared: one normal and one reduction block, independently. */
    sp.op_mask = 0;
    sp.shared = 0;
    n = nas_genome_enumerate_level1(&sp, &gs);
    ck_assert_int_eq(n, 210 * 210);
    nas_free(gs);
    /* NB201: one intermediate node in use = 4 x 4 ops on its path times 5
     * on the direct edge (node 1 vs node 2 is a symmetry). */
    nas_space nb = {.kind = NAS_SPACE_NB201};
    n = nas_genome_enumerate_level1(&nb, &gs);
    ck_assert_int_eq(n, 80);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(nas_genome_level(&gs[i]), 1);
    /* ... and each expands to level 2 only. */
    nas_genome *up = NULL;
    int nu = nas_genome_expand(&gs[0], &nb, &up);
    ck_assert_int_gt(nu, 0);
    for (int i = 0; i < nu; i++)
        ck_assert_int_eq(nas_genome_level(&up[i]), 2);
    nas_genome *none = NULL;
    ck_assert_int_eq(nas_genome_expand(&up[0], &nb, &none), 0); /* level 2 is the top */
    ck_assert_ptr_null(none);
    nas_free(up);
    nas_free(gs);
    nas_genome d = parse_ok("c=sep3x3:0+id:1,max3x3:1+zero:2");
    ck_assert_int_eq(nas_genome_level(&d), 1); /* the dead block does not count */
    d = parse_ok("n=sep3x3:0+id:1 r=sep3x3:0+id:1,id:2+id:2");
    ck_assert_int_eq(nas_genome_level(&d), 2);
    d.normal.n_blocks = 0;
    ck_assert_int_eq(nas_genome_level(&d), NAS_EGENOME);
}
END_TEST

START_TEST(test_genome_expand_one_block) {
    nas_space sp = {.kind = NAS_SPACE_CELL, .n_blocks = 5, .shared = 1};
    nas_genome g = parse_ok("c=sep3x3:0+id:1");
    nas_genome *ch = NULL;
    int n = nas_genome_expand(&g, &sp, &ch);
    /* Block 1 reads 0, 1 or 2: 30 halves, unordered pairs C(30,2) + 30. */
    ck_assert_int_eq(n, 465);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(ch[i].normal.n_blocks, 2);
        ck_assert(nas_genome_equivalent(&(nas_genome){.space = 0,
                                                      .shared = 1,
                                                      .normal = {1, {ch[i].normal.blocks[0]}},
                                                      .reduce = {1, {ch[i].normal.blocks[0]}}},
                                        &g));
    }
    nas_free(ch);
    sp.n_blocks = 1;
    ck_assert_int_eq(nas_genome_expand(&g, &sp, &ch), 0);
    ck_assert_ptr_null(ch);
}
END_TEST

START_TEST(test_genome_mutation_recorded) {
    nas_space sp = {.kind = NAS_SPACE_CELL, .n_blocks = 2, .shared = 0};
    nas_genome g = parse_ok("n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1");
    nas_rng rng;
    nas_rng_init(&rng, 5, 0);
    for (int i = 0; i < 200; i++) {
        nas_genome c;
        nas_mutation m;
        ck_assert_int_eq(nas_genome_mutate(&g, &sp, 0.0f, &rng, &c, &m), NAS_OK);
        ck_assert(m.kind == NAS_MUTATION_OP || m.kind == NAS_MUTATION_HIDDEN);
        ck_assert(!nas_genome_equivalent(&g, &c));
        const nas_cell *cell = m.cell ? &c.reduce : &c.normal;
        const nas_block *b = &cell->blocks[m.block];
        int now =
            m.kind == NAS_MUTATION_OP ? (m.half ? b->op_b : b->op_a) : (m.half ? b->in_b : b->in_a);
        ck_assert_int_eq(now, m.new_val);
        ck_assert_int_ne(m.old_val, m.new_val);
        char buf[128];
        ck_assert_int_gt(nas_mutation_format(&m, &g, buf, sizeof buf), 0);
    }
    nas_genome c;
    nas_mutation m;
    ck_assert_int_eq(nas_genome_mutate(&g, &sp, 1.0f, &rng, &c, &m), NAS_OK);
    ck_assert_int_eq(m.kind, NAS_MUTATION_IDENTITY);
    ck_assert(genome_same(&g, &c));
    nas_mutation op = {NAS_MUTATION_OP, 0, 1, 1, NAS_OP_ID, NAS_OP_SEP3X3};
    char buf[128];
    nas_mutation_format(&op, &g, buf, sizeof buf);
    ck_assert_str_eq(buf, "op: normal block 1 b id -> sep3x3");
    /* A space that cannot change anything is refused, not looped on. */
    nas_genome one = parse_ok("c=id:0+id:0");
    nas_space only_id = {.kind = NAS_SPACE_CELL, .n_blocks = 1, .shared = 1, .op_mask = 1u};
    ck_assert_int_eq(nas_genome_mutate(&one, &only_id, 0.0f, &rng, &c, &m), NAS_OK);
    ck_assert_int_eq(m.kind, NAS_MUTATION_HIDDEN);
    nas_genome nbg = parse_ok("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
    nas_space nb = {.kind = NAS_SPACE_NB201, .op_mask = 1u};
    ck_assert_int_eq(nas_genome_mutate(&nbg, &nb, 0.0f, &rng, &c, &m), NAS_EINVAL);
}
END_TEST

START_TEST(test_genome_nb201_canonical) {
    /* Node 2 reaches nothing: its edges are none in canonical form. */
    nas_genome a = parse_ok(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|");
    nas_genome b =
        parse_ok("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|");
    ck_assert(nas_genome_equivalent(&a, &b));
    /* Node 1 and node 2 swap when 1->2 is none. */
    a = parse_ok(
        "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|");
    b = parse_ok(
        "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|");
    ck_assert_uint_eq(nas_genome_hash(&a), nas_genome_hash(&b));
    /* ... but not when 1->2 is used. */
    a.nb201[2] = NAS_NB201_SKIP;
    b.nb201[2] = NAS_NB201_SKIP;
    ck_assert(!nas_genome_equivalent(&a, &b));
    /* Unreachable from the input: 0->1 none makes 1->3 dead. */
    a = parse_ok("|none~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|");
    b = parse_ok("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|");
    ck_assert(nas_genome_equivalent(&a, &b));
    /* Over the whole space: canonical is idempotent and the classes are
     * fewer than the 15625 raw cells. */
    int classes = 0;
    uint64_t *seen = nas_calloc(15625, sizeof(uint64_t));
    for (int c = 0; c < 15625; c++) {
        nas_genome g = {.space = NAS_SPACE_NB201};
        int r = c;
        for (int e = 0; e < 6; e++, r /= 5)
            g.nb201[e] = (uint8_t)(r % 5);
        nas_genome c1, c2;
        nas_genome_canonical(&g, &c1);
        nas_genome_canonical(&c1, &c2);
        ck_assert(memcmp(c1.nb201, c2.nb201, 6) == 0);
        if (memcmp(c1.nb201, g.nb201, 6) == 0) seen[classes++] = nas_genome_hash(&g);
    }
    ck_assert_int_lt(classes, 15625);
    ck_assert_int_gt(classes, 5000);
    nas_free(seen);
}
END_TEST

START_TEST(test_genome_json_forms) {
    nas_genome g = parse_ok("n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1");
    char buf[1024];
    int n = nas_genome_to_json(&g, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(
        buf, "{\"space\":\"cell\",\"shared\":false,\"normal\":[[1,\"sep3x3\",0,"
             "\"max3x3\"],[2,\"sep5x5\",0,\"id\"]],\"reduce\":[[0,\"avg3x3\",1,\"sep3x3\"]]}");
    nas_genome s = parse_ok("c=sep3x3:0+id:1");
    nas_genome_to_json(&s, buf, sizeof buf);
    ck_assert_str_eq(buf,
                     "{\"space\":\"cell\",\"shared\":true,\"normal\":[[0,\"sep3x3\",1,\"id\"]]}");
    nas_genome nb = parse_ok(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|");
    nas_genome_to_json(&nb, buf, sizeof buf);
    ck_assert_str_eq(buf, "{\"space\":\"nb201\",\"edges\":[\"nor_conv_3x3\",\"nor_conv_3x3\","
                          "\"avg_pool_3x3\",\"skip_connect\",\"none\",\"nor_conv_1x1\"]}");
    ck_assert_int_eq(nas_genome_to_json(&g, buf, 20), NAS_ERANGE);
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"", "json: offset 0"},
        {"[]", "a genome must be an object"},
        {"{}", "missing key \"space\""},
        {"{\"space\":\"darts\"}",
         "\"space\" must be \"cell\", \"nb201\", \"mbconv\", \"chain\" or \"hierarchical\""},
        {"{\"space\":\"cell\",\"normal\":[[0,\"id\",1,\"id\"]]}", "missing key \"reduce\""},
        {"{\"space\":\"cell\",\"shared\":1,\"normal\":[]}", "\"shared\" must be a boolean"},
        {"{\"space\":\"cell\",\"shared\":true,\"normal\":[]}", "normal cell is empty"},
        {"{\"space\":\"cell\",\"shared\":true,\"normal\":[[0,\"id\",1]]}",
         "normal block 0 must be"},
        {"{\"space\":\"cell\",\"shared\":true,\"normal\":[[0.5,\"id\",1,\"id\"]]}",
         "input must be an integer"},
        {"{\"space\":\"cell\",\"shared\":true,\"normal\":[[1e300,\"id\",1,\"id\"]]}",
         "input must be an integer"},
        {"{\"space\":\"cell\",\"shared\":true,\"normal\":[[0,\"id\",-1,\"id\"]]}",
         "normal block 0 b: input must be an integer"},
        {"{\"space\":\"cell\",\"shared\":true,\"normal\":[[0,\"idd\",1,\"id\"]]}",
         "unknown op 'idd'"},
        {"{\"space\":\"cell\",\"shared\":true,\"normal\":[[0,\"id\",5,\"id\"]]}",
         "input 5 out of range"},
        {"{\"space\":\"cell\",\"shared\":true,\"normal\":[[0,\"id\",1,\"id\"]],\"x\":1}",
         "unknown key \"x\""},
        {"{\"space\":\"cell\",\"shared\":true,\"normal\":[[0,\"id\",1,\"id\"]],\"reduce\":[]}",
         "has no \"reduce\""},
        {"{\"space\":\"nb201\",\"edges\":[\"none\"]}", "must be an array of 6"},
        {"{\"space\":\"nb201\",\"edges\":[\"none\",\"none\",\"none\",\"none\",\"none\",\"conv\"]}",
         "edge 5: unknown nb201 op"},
        {"{\"space\":\"cell\",\"space\":\"cell\"}", "json: offset"},
    };
    for (size_t i = 0; i < NAS_ARRAY_LEN(bad); i++) {
        char err[NAS_ERR_LEN] = "";
        nas_genome o;
        int rc = nas_genome_from_json(bad[i].json, strlen(bad[i].json), &o, err);
        ck_assert_msg(rc == NAS_EGENOME, "json case %zu gave %d", i, rc);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "json case %zu: got '%s', want '%s'", i,
                      err, bad[i].want);
    }
}
END_TEST

START_TEST(test_genome_proto_forms) {
    nas_genome g = parse_ok("n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1"), back;
    char err[NAS_ERR_LEN];
    nas_genome_pb pb;
    ck_assert_int_eq(nas_genome_to_proto(&g, &pb), NAS_OK);
    ck_assert_uint_eq(pb.msg.n_normal, 2);
    ck_assert_uint_eq(pb.msg.normal[1]->op_a, NAS_OP_SEP5X5);
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &back, err), NAS_OK);
    /* Every way a message can be wrong is named. */
    pb.msg.normal[1]->has_op_b = 0;
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &back, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "normal block 1: missing op_b"));
    nas_genome_to_proto(&g, &pb);
    pb.msg.normal[0]->op_a = 99;
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &back, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "unknown op 99"));
    nas_genome_to_proto(&g, &pb);
    pb.msg.normal[0]->in_a = 1000;
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &back, err), NAS_EGENOME);
    nas_genome_to_proto(&g, &pb);
    pb.msg.normal[1]->in_b = 3;
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &back, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "reads itself"));
    nas_genome_to_proto(&g, &pb);
    pb.msg.version = 2;
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &back, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "version 2"));
    nas_genome_to_proto(&g, &pb);
    pb.msg.n_reduce = 0;
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &back, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "reduce cell is empty"));
    /* Garbage bytes are refused, never trusted. */
    uint8_t junk[64];
    nas_rng rng;
    nas_rng_init(&rng, 9, 9);
    int refused = 0;
    for (int t = 0; t < 2000; t++) {
        size_t n = nas_rng_below(&rng, sizeof junk);
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)nas_rng_u32(&rng);
        if (nas_genome_unpack(junk, n, &back, err) != NAS_OK)
            refused++;
        else
            ck_assert_int_eq(nas_genome_validate(&back, NULL), NAS_OK);
    }
    ck_assert_int_gt(refused, 1900);
    uint8_t small[4];
    ck_assert_int_eq(nas_genome_pack(&g, small, sizeof small), NAS_ERANGE);
}
END_TEST

START_TEST(test_genome_dot_form) {
    nas_genome g = parse_ok("n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1");
    char buf[4096];
    ck_assert_int_gt(nas_genome_to_dot(&g, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "digraph genome {"));
    ck_assert_ptr_nonnull(strstr(buf, "normal_b0 -> normal_b1 [label=\"sep5x5\"]"));
    ck_assert_ptr_nonnull(strstr(buf, "normal_b1 -> normal_out"));
    ck_assert_ptr_null(strstr(buf, "normal_b0 -> normal_out"));
    ck_assert_int_eq(nas_genome_to_dot(&g, buf, 16), NAS_ERANGE);
    /* Read back, and read an edited drawing: relabel an op, rewire an edge. */
    int n = nas_genome_to_dot(&g, buf, sizeof buf);
    nas_genome back;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_from_dot(buf, (size_t)n, &back, err), NAS_OK);
    char *at = strstr(buf, "[label=\"sep5x5\"]");
    ck_assert_ptr_nonnull(at);
    memcpy(at + 8, "sep7x7", 6);
    ck_assert_int_eq(nas_genome_from_dot(buf, strlen(buf), &back, err), NAS_OK);
    ck_assert_int_eq(back.normal.blocks[1].op_a, NAS_OP_SEP7X7);
    static const struct {
        const char *from, *to, *want;
    } edits[] = {
        {"[label=\"sep7x7\"]", "[label=\"sep9x9\"]", "unknown op 'sep9x9'"},
        {"normal_b1 -> normal_out;", "normal_b0 -> normal_out;", "concat edge"},
        {"normal_in0 -> normal_b0", "normal_in0 -> reduce_b0", "edge between two cells"},
        {"normal_b0 -> normal_b1", "normal_b1 -> normal_b1", "reads itself"},
        {"rankdir=LR;", "rankdir=LR;\n  edge [color=red];", "line 3: unexpected statement"},
        {"subgraph cluster_reduce", "subgraph cluster_other", "unknown cluster"},
    };
    char orig[4096];
    memcpy(orig, buf, sizeof orig);
    for (size_t i = 0; i < NAS_ARRAY_LEN(edits); i++) {
        char ed[4200];
        const char *p = strstr(orig, edits[i].from);
        ck_assert_ptr_nonnull(p);
        size_t pre = (size_t)(p - orig);
        snprintf(ed, sizeof ed, "%.*s%s%s", (int)pre, orig, edits[i].to, p + strlen(edits[i].from));
        int rc = nas_genome_from_dot(ed, strlen(ed), &back, err);
        ck_assert_msg(rc == NAS_EGENOME && strstr(err, edits[i].want), "edit %zu: %d '%s'", i, rc,
                      err);
    }
    nas_genome nb = parse_ok(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|");
    n = nas_genome_to_dot(&nb, buf, sizeof buf);
    ck_assert_int_eq(nas_genome_from_dot(buf, (size_t)n, &back, err), NAS_OK);
    ck_assert(memcmp(back.nb201, nb.nb201, 6) == 0);
    ck_assert_int_eq(nas_genome_from_dot("digraph genome {\n}\n", 18, &back, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "no genome clusters"));
}
END_TEST

START_TEST(test_genome_hash_pinned) {
    /* These values are stored in databases: FNV-1a 64 over the canonical
     * encoding of docs/GENOME.md. The first was checked by hand: bytes
     * 01 00 | 01 00 03 01 00 | 01 00 03 01 00. */
    static const struct {
        const char *text;
        uint64_t hash;
    } pinned[] = {
        {"c=sep3x3:0+id:1", 0x46bacca6201b1ef2ull},
        {"c=id:1+sep3x3:0", 0x46bacca6201b1ef2ull},
        {"n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1", 0x394f5a48b4bcd3d2ull},
        {"|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
         0x56d4fc78bf58baa8ull},
    };
    for (size_t i = 0; i < NAS_ARRAY_LEN(pinned); i++) {
        nas_genome g = parse_ok(pinned[i].text);
        ck_assert_msg(nas_genome_hash(&g) == pinned[i].hash, "%s: 0x%016llx", pinned[i].text,
                      (unsigned long long)nas_genome_hash(&g));
    }
}
END_TEST

/* Random damage to valid texts, JSON and DOT: every result is either a
 * valid genome or NAS_EGENOME with a message; nothing crashes (ASan). */
START_TEST(test_genome_damaged_inputs_never_crash) {
    static char dot_cell[2048], dot_nb[1024];
    nas_genome dg = parse_ok("n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1");
    ck_assert_int_gt(nas_genome_to_dot(&dg, dot_cell, sizeof dot_cell), 0);
    dg = parse_ok("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|"
                  "nor_conv_1x1~2|");
    ck_assert_int_gt(nas_genome_to_dot(&dg, dot_nb, sizeof dot_nb), 0);
    const char *seeds[] = {
        "n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1",
        "c=conv1x7_7x1:0+dil3x3:1,zero:2+conv1x1:0",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
        "{\"space\":\"cell\",\"shared\":false,\"normal\":[[1,\"sep3x3\",0,\"max3x3\"]],"
        "\"reduce\":[[0,\"avg3x3\",1,\"sep3x3\"]]}",
        dot_cell,
        dot_nb,
    };
    static const char alphabet[] = "nrc=:+,|~ 0123456789_abdefimopsvxz{}[]\"\x01\xff\n->;";
    nas_rng rng;
    nas_rng_init(&rng, 31337, 0);
    int ok = 0, refused = 0;
    for (int t = 0; t < 30000; t++) {
        int kind = t % (int)NAS_ARRAY_LEN(seeds); /* 0-2 text, 3 JSON, 4-5 DOT */
        const char *seed = seeds[kind];
        char buf[2048];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)nas_rng_below(&rng, 3);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = nas_rng_below(&rng, (uint32_t)n);
            switch (nas_rng_below(&rng, 3)) {
            case 0:
                buf[at] = alphabet[nas_rng_below(&rng, sizeof alphabet - 1)];
                break;
            case 1:
                n = at;
                break; /* truncate */
            default:
                if (n < sizeof buf - 1) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = alphabet[nas_rng_below(&rng, sizeof alphabet - 1)];
                    n++;
                }
            }
        }
        nas_genome g;
        char err[NAS_ERR_LEN] = "";
        int rc = kind == 3  ? nas_genome_from_json(buf, n, &g, err)
                 : kind > 3 ? nas_genome_from_dot(buf, n, &g, err)
                            : nas_genome_parse(buf, n, &g, err);
        if (rc == NAS_OK) {
            if (nas_genome_validate(&g, NULL) != NAS_OK) ck_abort_msg("accepted an invalid genome");
            ok++;
        } else {
            if (rc != NAS_EGENOME || err[0] == '\0') ck_abort_msg("rc %d, err '%s'", rc, err);
            refused++;
        }
    }
    ck_assert_int_gt(ok, 50); /* damage that keeps a valid genome (a digit or op swapped) */
    ck_assert_int_gt(refused, 15000);
}
END_TEST

/* Every allocation failure inside expansion, enumeration and costing turns
 * into NAS_ENOMEM without a leak (LeakSanitizer checks each forked test). */
START_TEST(test_genome_alloc_failures) {
    nas_space shared = {.kind = NAS_SPACE_CELL, .n_blocks = 3, .shared = 1};
    nas_space nb = {.kind = NAS_SPACE_NB201};
    nas_genome g = parse_ok("c=sep3x3:0+id:1");
    nas_fidelity f = nas_fidelity_default();
    f.cells = 2;
    int failures = 0;
    for (int which = 0; which < 4; which++) {
        for (long n = 1;; n++) {
            nas_genome *out = NULL;
            nas_cost cost;
            nas_alloc_fail_after(n);
            int rc;
            switch (which) {
            case 0:
                rc = nas_genome_enumerate_level1(&shared, &out);
                break;
            case 1:
                rc = nas_genome_expand(&g, &shared, &out);
                break;
            case 2:
                rc = nas_genome_enumerate_level1(&nb, &out);
                break;
            default:
                rc = nas_genome_cost(&g, &f, 1, 28, 10, &cost, NULL);
                break;
            }
            nas_alloc_fail_reset();
            nas_free(out);
            if (rc >= 0) break;
            ck_assert_int_eq(rc, NAS_ENOMEM);
            ck_assert_int_lt(n, 100);
            failures++;
        }
    }
    ck_assert_int_gt(failures, 4);
}
END_TEST

/* Identity functions on garbage structs: no crash, hash 0, never equivalent. */
START_TEST(test_genome_identity_on_garbage) {
    nas_rng rng;
    nas_rng_init(&rng, 4, 4);
    for (int t = 0; t < 5000; t++) {
        nas_genome g;
        uint8_t *p = (uint8_t *)&g;
        for (size_t i = 0; i < sizeof g; i++)
            p[i] = (uint8_t)nas_rng_u32(&rng);
        if (t % 2) { /* plausible headers reach deeper code paths */
            g.space = (int)nas_rng_below(&rng, 2);
            g.shared = 0;
            g.normal.n_blocks = 1 + (int)nas_rng_below(&rng, 8);
            g.reduce.n_blocks = 1 + (int)nas_rng_below(&rng, 8);
        }
        nas_genome c;
        nas_genome_canonical(&g, &c);
        uint64_t h = nas_genome_hash(&g);
        if (nas_genome_validate(&g, NULL) != NAS_OK) {
            if (h != 0) ck_abort_msg("invalid genome hashed to %llx", (unsigned long long)h);
            if (nas_genome_equivalent(&g, &g)) ck_abort_msg("invalid genome equivalent");
        }
        char buf[NAS_GENOME_TEXT_MAX];
        nas_genome_format(&g, buf, sizeof buf);
        nas_genome_to_json(&g, buf, sizeof buf);
        nas_genome_to_dot(&g, buf, sizeof buf);
        nas_space sp = {.kind = g.space == 1 ? 1 : 0, .n_blocks = 3};
        nas_genome child;
        nas_genome_mutate(&g, &sp, 0.0f, &rng, &child, NULL);
    }
}
END_TEST

/* Sampling is uniform: ops over the mask, inputs over 0..k+1, for every
 * block; zero+zero blocks never appear. Counts within 5 sigma. */
START_TEST(test_genome_sample_uniform) {
    nas_space sp = {.kind = NAS_SPACE_CELL,
                    .n_blocks = 3,
                    .shared = 0,
                    .op_mask = (1u << NAS_OP_SEP3X3) | (1u << NAS_OP_MAX3X3) | (1u << NAS_OP_ZERO)};
    nas_rng rng;
    nas_rng_init(&rng, 8, 1);
    enum { N = 30000 };
    int ops[NAS_OP_COUNT] = {0}, inputs[3][5] = {{0}};
    for (int i = 0; i < N; i++) {
        nas_genome g;
        ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_OK);
        for (int k = 0; k < 3; k++) {
            const nas_block *b = &g.reduce.blocks[k];
            if (b->op_a == NAS_OP_ZERO && b->op_b == NAS_OP_ZERO) ck_abort_msg("zero+zero sampled");
            ops[b->op_a]++;
            inputs[k][b->in_b]++;
        }
    }
    /* op_a over 3 ops with the 1/9 zero+zero pairs rejected: zero has
     * probability (1/3 * 2/3) / (8/9) = 1/4, the others 3/8 each. */
    double n = 3.0 * N;
    double want[3] = {n * 3 / 8, n * 3 / 8, n / 4};
    int got[3] = {ops[NAS_OP_SEP3X3], ops[NAS_OP_MAX3X3], ops[NAS_OP_ZERO]};
    for (int i = 0; i < 3; i++)
        ck_assert_msg(got[i] > want[i] - 5 * 150 && got[i] < want[i] + 5 * 150, "op %d: %d vs %.0f",
                      i, got[i], want[i]);
    for (int k = 0; k < 3; k++) {
        for (int v = 0; v < k + 2; v++) {
            double w = (double)N / (k + 2), sd = 120;
            ck_assert_msg(inputs[k][v] > w - 5 * sd && inputs[k][v] < w + 5 * sd,
                          "block %d input %d: %d vs %.0f", k, v, inputs[k][v], w);
        }
        for (int v = k + 2; v < 5; v++)
            ck_assert_int_eq(inputs[k][v], 0);
    }
    /* Unshared level 1 with two ops: h = 4 halves, 10 blocks per cell. */
    nas_space two = {.kind = NAS_SPACE_CELL,
                     .n_blocks = 2,
                     .shared = 0,
                     .op_mask = (1u << NAS_OP_SEP3X3) | (1u << NAS_OP_ID)};
    nas_genome *gs = NULL;
    ck_assert_int_eq(nas_genome_enumerate_level1(&two, &gs), 100);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(gs[i].shared, 0);
    nas_free(gs);
    /* Bad spaces are refused, not looped on. */
    nas_genome g;
    nas_space only_zero = {.kind = NAS_SPACE_CELL, .n_blocks = 2, .op_mask = 1u << NAS_OP_ZERO};
    ck_assert_int_eq(nas_genome_sample(&only_zero, &rng, &g), NAS_EINVAL);
    nas_space too_big = {.kind = NAS_SPACE_CELL, .n_blocks = 9};
    ck_assert_int_eq(nas_genome_sample(&too_big, &rng, &g), NAS_EINVAL);
    nas_space bad_kind = {.kind = 5, .n_blocks = 2};
    ck_assert_int_eq(nas_genome_sample(&bad_kind, &rng, &g), NAS_EINVAL);
    ck_assert_int_eq(nas_genome_enumerate_level1(&bad_kind, &gs), NAS_EINVAL);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("genome");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_genome_ops_named_both_ways);
    tcase_add_test(tc, test_genome_text_round_trip);
    tcase_add_test(tc, test_genome_malformed_inputs_named);
    tcase_add_test(tc, test_genome_validate_structs);
    tcase_add_test(tc, test_genome_equivalences_hash_equal);
    tcase_add_test(tc, test_genome_tie_groups_resolved);
    tcase_add_test(tc, test_genome_canonical_idempotent_and_valid);
    tcase_add_test(tc, test_genome_level1_counts);
    tcase_add_test(tc, test_genome_expand_one_block);
    tcase_add_test(tc, test_genome_mutation_recorded);
    tcase_add_test(tc, test_genome_nb201_canonical);
    tcase_add_test(tc, test_genome_json_forms);
    tcase_add_test(tc, test_genome_proto_forms);
    tcase_add_test(tc, test_genome_dot_form);
    tcase_add_test(tc, test_genome_hash_pinned);
    tcase_add_test(tc, test_genome_damaged_inputs_never_crash);
    tcase_add_test(tc, test_genome_alloc_failures);
    tcase_add_test(tc, test_genome_identity_on_garbage);
    tcase_add_test(tc, test_genome_sample_uniform);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
