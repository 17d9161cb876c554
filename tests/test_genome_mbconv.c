// nas-test: label=unit timeout=300
/*
 * test_genome_mbconv.c - the MBConv space: the text grammar and its
 * errors, round trips of every form, canonical form and hash, mutation
 * validity, sampling coverage, the presets, cost equal to the built
 * network on 300 random genomes (each run forward), and parameter paths.
 */
#include "common/alloc.h"
#include "common/builder.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_proto.h"
#include "common/net.h"
#include "common/scaling.h"
#include "common/wire.h"
#include "tests/genome_check.h"
#include "tests/harness.h"
#include "tests/strategy_util.h"

#include <math.h>
#include <string.h>

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

static const char *B0 = "mbconv=stem32,mb3x1se-16r1s1,mb3x6se-24r2s2,mb5x6se-40r2s2,"
                        "mb3x6se-80r3s2,mb5x6se-112r3s1,mb5x6se-192r4s2,mb3x6se-320r1s1,head1280";

static int same(const nas_genome *a, const nas_genome *b) {
    return a->space == b->space && memcmp(&a->mb, &b->mb, sizeof a->mb) == 0;
}

START_TEST(test_mb_text) {
    nas_genome g, p;
    char err[NAS_ERR_LEN], buf[NAS_GENOME_TEXT_MAX];
    ck_assert_int_eq(nas_genome_parse(B0, strlen(B0), &g, err), NAS_OK);
    ck_assert_int_eq(g.space, NAS_SPACE_MBCONV);
    ck_assert_int_eq(g.mb.n_stages, 7);
    ck_assert_int_eq(g.mb.stem, 32);
    ck_assert_int_eq(g.mb.head, 1280);
    const nas_mb_stage *s = &g.mb.stages[2];
    ck_assert(s->fused == 0 && s->kernel == 5 && s->expand == 6 && s->se == 1 && s->width == 40 &&
              s->repeats == 2 && s->stride == 2);
    ck_assert_int_eq(nas_genome_format(&g, buf, sizeof buf), (int)strlen(B0));
    ck_assert_str_eq(buf, B0);
    ck_assert_int_eq(nas_genome_preset("efficientnet_b0", &p, err), NAS_OK);
    ck_assert(same(&g, &p));
    ck_assert_int_eq(nas_genome_preset("efficientnetv2_s", &p, err), NAS_OK);
    ck_assert(p.mb.stages[0].fused == 1 && p.mb.stages[0].expand == 1 && p.mb.stages[5].repeats == 15);
    // A fused stage without SE, and surrounding white space.
    const char *t = "  mbconv=stem16,fu5x4-48r3s1,head64 ";
    ck_assert_int_eq(nas_genome_parse(t, strlen(t), &g, err), NAS_OK);
    ck_assert(g.mb.stages[0].fused == 1 && g.mb.stages[0].se == 0 && g.mb.n_stages == 1);
    // Errors name the position and the problem; the output is left alone.
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"mbconv=stem16,head64", "at 18: mbconv genome without a stage"},
        {"mbconv=stem12,mb3x6-24r1s1,head64", "at 11: stem width 12 is not a multiple of 8"},
        {"mbconv=stem16,mb4x6-24r1s1,head64", "at 16: kernel 4 (3, 5 or 7)"},
        {"mbconv=stem16,mb3x9-24r1s1,head64", "at 18: expansion 9 out of range (1..8)"},
        {"mbconv=stem16,mb3x6-20r1s1,head64", "at 20: width 20 is not a multiple of 8"},
        {"mbconv=stem16,mb3x6-24r0s1,head64", "at 23: repeats 0 out of range (1..16)"},
        {"mbconv=stem16,mb3x6-24r1s3,head64", "at 25: stride 3 out of range (1..2)"},
        {"mbconv=stem16,mb3x6-24r1s1", "at 26: expected ',', got the end"},
        {"mbconv=stem16,xx3x6-24r1s1,head64", "at 14: expected a stage (mb... or fu...) or head, got 'x'"},
        {"mbconv=stem16,mb3x6-24r1s1,head64;", "at 33: unexpected ';' after the genome"},
        {"mbconv=stem16,mb3x6-24r1s1,mb3x6-24r1s1,mb3x6-24r1s1,mb3x6-24r1s1,mb3x6-24r1s1,"
         "mb3x6-24r1s1,mb3x6-24r1s1,mb3x6-24r1s1,head64",
         "at 105: more than 7 stages"},
    };
    g.mb.stem = 99;
    for (size_t i = 0; i < NAS_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        ck_assert_int_eq(nas_genome_parse(bad[i].text, strlen(bad[i].text), &g, err), NAS_EGENOME);
        ck_assert_msg(strcmp(err, bad[i].msg) == 0, "%s: got '%s', want '%s'", bad[i].text, err,
                      bad[i].msg);
    }
    ck_assert_int_eq(g.mb.stem, 99);
    // validate catches what the value type can hold but the space does not.
    ck_assert_int_eq(nas_genome_parse(B0, strlen(B0), &g, err), NAS_OK);
    g.mb.stages[3].stride = 3;
    ck_assert_int_eq(nas_genome_validate(&g, err), NAS_EGENOME);
    ck_assert_str_eq(err, "mbconv stage 3: bad stride (1, 2)");
    ck_assert_int_eq(nas_genome_format(&g, buf, sizeof buf), NAS_EGENOME);
    ck_assert(nas_genome_hash(&g) == 0);
}
END_TEST

START_TEST(test_mb_json_proto_errors) {
    nas_genome g;
    char err[NAS_ERR_LEN], json[NAS_GENOME_JSON_MAX];
    ck_assert_int_eq(nas_genome_parse(B0, strlen(B0), &g, err), NAS_OK);
    int n = nas_genome_to_json(&g, json, sizeof json);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(json, "{\"space\":\"mbconv\",\"stem\":32,\"stages\":[\"mb3x1se-16r1s1\","
                           "\"mb3x6se-24r2s2\",\"mb5x6se-40r2s2\",\"mb3x6se-80r3s2\",\"mb5x6se-"
                           "112r3s1\",\"mb5x6se-192r4s2\",\"mb3x6se-320r1s1\"],\"head\":1280}");
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"space\":\"mbconv\",\"stem\":16,\"stages\":[\"mb3x6-24r1s1\"]}",
         "json: offset 0: missing key \"head\""},
        {"{\"space\":\"mbconv\",\"stem\":16,\"stages\":[],\"head\":64}",
         "json: offset 37: \"stages\" must be an array of 1..7 stage strings"},
        {"{\"space\":\"mbconv\",\"stem\":16,\"stages\":[\"mb3x6-24r1\"],\"head\":64}",
         "json: offset 38: stage 0: at 10: expected 's' before the stride, got the end"},
        {"{\"space\":\"mbconv\",\"stem\":16.5,\"stages\":[\"mb3x6-24r1s1\"],\"head\":64}",
         "json: offset 25: \"stem\" must be an integer width"},
        {"{\"space\":\"mbconv\",\"stem\":16,\"stages\":[\"mb3x6-24r1s1\"],\"head\":64,\"x\":1}",
         "json: offset 68: unknown key \"x\" for space mbconv"},
        {"{\"space\":\"mbconv\",\"stem\":4,\"stages\":[\"mb3x6-24r1s1\"],\"head\":64}",
         "json: mbconv: stem width 4 (a multiple of 8, 8..1024)"},
    };
    for (size_t i = 0; i < NAS_ARRAY_LEN(bad); i++) {
        ck_assert_int_eq(nas_genome_from_json(bad[i].json, strlen(bad[i].json), &g, err),
                         NAS_EGENOME);
        ck_assert_msg(strcmp(err, bad[i].msg) == 0, "%s: got '%s'", bad[i].json, err);
    }
    // Protobuf: a stage without its width, and stages in a cell genome.
    ck_assert_int_eq(nas_genome_parse(B0, strlen(B0), &g, err), NAS_OK);
    nas_genome_pb pb;
    ck_assert_int_eq(nas_genome_to_proto(&g, &pb), NAS_OK);
    pb.mb[4].has_width = 0;
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &g, err), NAS_EGENOME);
    ck_assert_str_eq(err, "proto: mbconv stage 4: missing field");
    pb.mb[4].has_width = 1;
    pb.mb[4].kernel = 4;
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &g, err), NAS_EGENOME);
    ck_assert_str_eq(err, "proto: mbconv stage 4: bad kernel (3, 5, 7)");
    pb.mb[4].kernel = 5;
    pb.msg.space = NAS_SPACE_CELL;
    ck_assert_int_eq(nas_genome_from_proto(&pb.msg, &g, err), NAS_EGENOME);
    ck_assert_str_eq(err, "proto: mbconv stages in a space 0 genome");
}
END_TEST

/* The i-th random space: 1..7 stages, both block kinds or one. */
static nas_space space_for(int i) {
    nas_space sp = {.kind = NAS_SPACE_MBCONV, .n_blocks = 1 + i % 7};
    sp.op_mask = (uint32_t)(i / 7) % 4; /* 0 (both), MBConv only, fused only, both */
    return sp;
}

START_TEST(test_mb_props_random) {
    nas_rng rng;
    nas_rng_init(&rng, 77, 3);
    char err[NAS_ERR_LEN];
    int fields[NAS_MB_FIELD_COUNT] = {0};
    for (int i = 0; i < 2000; i++) {
        nas_space sp = space_for(i);
        nas_genome g, back;
        REQUIRE(nas_genome_sample(&sp, &rng, &g) == NAS_OK, "sample %d", i);
        REQUIRE(nas_genome_validate(&g, err) == NAS_OK, "sample %d: %s", i, err);
        REQUIRE(g.mb.n_stages == sp.n_blocks, "stages");
        char text[NAS_GENOME_TEXT_MAX], json[NAS_GENOME_JSON_MAX], dot[NAS_GENOME_DOT_MAX];
        int n = nas_genome_format(&g, text, sizeof text);
        REQUIRE(n > 0 && nas_genome_parse(text, (size_t)n, &back, err) == NAS_OK, "%s", text);
        REQUIRE(same(&g, &back), "text round trip of %s", text);
        n = nas_genome_to_json(&g, json, sizeof json);
        REQUIRE(n > 0 && nas_genome_from_json(json, (size_t)n, &back, err) == NAS_OK, "%s: %s",
                json, err);
        REQUIRE(same(&g, &back), "json round trip of %s", json);
        uint8_t pb[512];
        n = nas_genome_pack(&g, pb, sizeof pb);
        REQUIRE(n > 0 && nas_genome_unpack(pb, (size_t)n, &back, err) == NAS_OK, "proto %s", text);
        REQUIRE(same(&g, &back), "proto round trip of %s", text);
        n = nas_genome_to_dot(&g, dot, sizeof dot);
        REQUIRE(n > 0, "dot of %s", text);
        // The drawing is not read back (no DOT reader for this space): a clear error, no genome.
        REQUIRE(nas_genome_from_dot(dot, (size_t)n, &back, err) == NAS_EGENOME, "dot read");
        // Canonical: idempotent; stage slots past n_stages do not reach the hash.
        nas_genome c1, c2, junk = g;
        nas_genome_canonical(&g, &c1);
        nas_genome_canonical(&c1, &c2);
        REQUIRE(same(&c1, &c2) && same(&c1, &g), "canonical of %s", text);
        if (g.mb.n_stages < NAS_MB_MAX_STAGES) junk.mb.stages[NAS_MB_MAX_STAGES - 1].kernel = 99;
        uint64_t h = nas_genome_hash(&g);
        REQUIRE(h != 0 && nas_genome_hash(&junk) == h, "unused slots change the hash of %s", text);
        REQUIRE(nas_genome_equivalent(&g, &junk), "equivalent");
        // Mutation: valid, one field of one stage changed, strides kept, a new hash.
        nas_genome child;
        nas_mutation m;
        REQUIRE(nas_genome_mutate(&g, &sp, 0.0f, &rng, &child, &m) == NAS_OK, "mutate %s", text);
        REQUIRE(nas_genome_validate(&child, err) == NAS_OK, "child of %s: %s", text, err);
        REQUIRE(m.kind == NAS_MUTATION_OP && m.old_val != m.new_val, "recorded");
        int changed = 0;
        for (int s = 0; s < g.mb.n_stages; s++) {
            changed += memcmp(&g.mb.stages[s], &child.mb.stages[s], sizeof(nas_mb_stage)) != 0;
            REQUIRE(g.mb.stages[s].stride == child.mb.stages[s].stride, "stride mutated");
        }
        REQUIRE(changed == 1 && memcmp(&g.mb.stages[m.block], &child.mb.stages[m.block],
                                       sizeof(nas_mb_stage)) != 0,
                "mutation of %s changed %d stages", text, changed);
        REQUIRE(nas_genome_hash(&child) != h && !nas_genome_equivalent(&g, &child), "same hash");
        if (sp.op_mask == 1 || sp.op_mask == 2)
            REQUIRE(child.mb.stages[m.block].fused == sp.op_mask - 1, "kind outside the mask");
        fields[m.half]++;
        char what[96];
        REQUIRE(nas_mutation_format(&m, &g, what, sizeof what) > 0, "format");
        // No PNAS levels: expansion and levels are refused, not faked.
        nas_genome *kids = NULL;
        REQUIRE(nas_genome_expand(&g, &sp, &kids) == NAS_EINVAL && kids == NULL, "expand");
        REQUIRE(nas_genome_level(&g) == NAS_EINVAL, "level");
    }
    for (int f = 0; f < NAS_MB_FIELD_COUNT; f++)
        ck_assert_msg(fields[f] > 100, "field %d mutated %d times", f, fields[f]);
    // Identity with probability 1 returns the parent.
    nas_space sp = space_for(3);
    nas_genome g, child;
    nas_genome_sample(&sp, &rng, &g);
    ck_assert_int_eq(nas_genome_mutate(&g, &sp, 1.0f, &rng, &child, NULL), NAS_OK);
    ck_assert(same(&g, &child));
    // A cell-space request on an MBConv parent is refused.
    nas_space cell = {.kind = NAS_SPACE_CELL, .n_blocks = 2};
    ck_assert_int_eq(nas_genome_mutate(&g, &cell, 0.0f, &rng, &child, NULL), NAS_EINVAL);
    nas_genome *kids;
    ck_assert_int_eq(nas_genome_enumerate_level1(&sp, &kids), NAS_EINVAL);
}
END_TEST

START_TEST(test_mb_sampling_coverage) {
    nas_rng rng;
    nas_rng_init(&rng, 5, 5);
    nas_space sp = {.kind = NAS_SPACE_MBCONV, .n_blocks = 5};
    int fused[2] = {0}, k[8] = {0}, e[9] = {0}, se[2] = {0}, r[4] = {0}, w[4][4] = {{0}};
    for (int i = 0; i < 3000; i++) {
        nas_genome g;
        ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_OK);
        ck_assert(g.mb.stem == 16 && g.mb.head == 128);
        for (int s = 0; s < 5; s++) {
            const nas_mb_stage *st = &g.mb.stages[s];
            ck_assert_int_eq(st->stride, s % 2 ? 2 : 1);
            fused[st->fused]++, k[st->kernel]++, e[st->expand]++, se[st->se]++, r[st->repeats]++;
            // Stage 0: base 16 -> {8,16,24,32}; stages 1-2: 32; stages 3-4: 64.
            int base = s == 0 ? 16 : s < 3 ? 32 : 64;
            ck_assert_int_eq(st->width % (base / 2), 0);
            ck_assert(st->width >= base / 2 && st->width <= 2 * base);
            w[s == 0 ? 0 : s < 3 ? 1 : 2][st->width / (base / 2) - 1]++;
        }
    }
    // Every choice turns up, roughly uniformly (15,000 stage draws).
    ck_assert(fused[0] > 6500 && fused[1] > 6500);
    ck_assert(k[3] > 6500 && k[5] > 6500 && k[3] + k[5] == 15000);
    ck_assert(e[1] > 4300 && e[4] > 4300 && e[6] > 4300);
    ck_assert(se[0] > 6500 && se[1] > 6500);
    ck_assert(r[1] > 4300 && r[2] > 4300 && r[3] > 4300);
    for (int b = 0; b < 3; b++)
        for (int j = 0; j < 4; j++) ck_assert_msg(w[b][j] > 500, "width %d of group %d", j, b);
    // One kind only.
    sp.op_mask = 2;
    nas_genome g;
    ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_OK);
    for (int s = 0; s < 5; s++) ck_assert_int_eq(g.mb.stages[s].fused, 1);
    sp.n_blocks = 8;
    ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_EINVAL);
}
END_TEST

START_TEST(test_mb_cost_equals_built) {
    nas_rng rng;
    nas_rng_init(&rng, 19, 1);
    for (int i = 0; i < 300; i++) {
        nas_space sp = space_for(i);
        nas_genome g;
        ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_OK);
        // Tiny: F 2..4 (4-16 channel stages) at 6..9 pixels keeps 300 forwards fast.
        nas_fidelity f = nas_fidelity_default();
        f.channels = 2 + (int)nas_rng_below(&rng, 3);
        if (i % 5 == 0) f.drop_path = 0.2f;
        genome_build_check(&g, &f, 6 + (int)nas_rng_below(&rng, 4));
    }
    // The presets, counted only (full width), and B0 against its published size: 5.29M
    // parameters with 1000 classes at 224 px (ours at 10 classes: the head differs by
    // 1280 x 990 + 990; SE biases and BN match the reference implementation).
    nas_genome g;
    nas_cost c;
    char err[NAS_ERR_LEN];
    nas_fidelity f = nas_fidelity_default();
    f.channels = 16;
    ck_assert_int_eq(nas_genome_preset("efficientnet_b0", &g, err), NAS_OK);
    ck_assert_int_eq(nas_genome_cost(&g, &f, 3, 224, 1000, &c, err), NAS_OK);
    ck_assert_msg(c.params == 5288548, "B0 params %lld", (long long)c.params);
    ck_assert_int_eq(nas_genome_preset("efficientnetv2_s", &g, err), NAS_OK);
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 28, 10, &c, err), NAS_OK);
    ck_assert_int_gt(c.params, 19000000);
}
END_TEST

START_TEST(test_mb_param_paths) {
    const char *t = "mbconv=stem16,mb3x1se-16r2s1,fu5x4-24r1s2,fu3x1-24r1s1,mb5x6-32r1s2,head64";
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(t, strlen(t), &g, err), NAS_OK);
    nas_fidelity f = nas_fidelity_default();
    f.channels = 16;
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 12, 12, err), NAS_OK);
    int logits;
    ck_assert_int_eq(nas_builder_build(net, &g, &f, 10, &logits, err), NAS_OK);
    static const struct {
        const char *name;
        int d0, d1, d2;
    } want[] = {
        {"stem/conv/weight", 16, 1, 3},
        {"stem/bn/weight", 16, 0, 0},
        {"stage0/block0/dw/conv/weight", 16, 1, 3},   /* e = 1: no expand conv */
        {"stage0/block0/se/reduce/weight", 4, 16, 1}, /* C/4 */
        {"stage0/block0/se/expand/bias", 16, 0, 0},
        {"stage0/block1/project/conv/weight", 16, 16, 1},
        {"stage1/block0/fused/conv/weight", 64, 16, 5},
        {"stage1/block0/project/conv/weight", 24, 64, 1},
        {"stage2/block0/fused/conv/weight", 24, 24, 3}, /* e = 1: no projection */
        {"stage3/block0/expand/conv/weight", 144, 24, 1},
        {"stage3/block0/dw/conv/weight", 144, 1, 5},
        {"head/conv/weight", 64, 32, 1},
        {"head/linear/weight", 10, 64, 0},
    };
    for (size_t i = 0; i < NAS_ARRAY_LEN(want); i++) {
        const nas_param *p = nas_net_param_find(net, want[i].name);
        ck_assert_msg(p != NULL, "missing %s", want[i].name);
        ck_assert_int_eq(p->shape[0], want[i].d0);
        if (want[i].d1) ck_assert_int_eq(p->shape[1], want[i].d1);
        if (want[i].d2) ck_assert_int_eq(p->shape[2], want[i].d2);
    }
    ck_assert_ptr_null(nas_net_param_find(net, "stage0/block0/expand/conv/weight"));
    ck_assert_ptr_null(nas_net_param_find(net, "stage2/block0/project/conv/weight"));
    ck_assert_ptr_null(nas_net_param_find(net, "stage3/block0/se/reduce/weight"));
    nas_net_destroy(&net);
}
END_TEST

START_TEST(test_mb_compound_scaling) {
    nas_genome g, b;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(B0, strlen(B0), &b, err), NAS_OK);
    // EfficientNet's phi = 1 step: depth 1.2 (repeats rounded up), width 1.1 (to multiples of 8).
    ck_assert_int_eq(nas_scale_genome(&b, 1.2, 1.1, &g, err), NAS_OK);
    ck_assert_int_eq(nas_genome_validate(&g, err), NAS_OK);
    static const int reps[7] = {2, 3, 3, 4, 4, 5, 2}, widths[7] = {16, 24, 48, 88, 120, 208, 352};
    for (int i = 0; i < 7; i++) {
        ck_assert_int_eq(g.mb.stages[i].repeats, reps[i]);
        ck_assert_int_eq(g.mb.stages[i].width, widths[i]);
        ck_assert_int_eq(g.mb.stages[i].stride, b.mb.stages[i].stride);
        ck_assert_int_eq(g.mb.stages[i].kernel, b.mb.stages[i].kernel);
    }
    ck_assert(g.mb.stem == 32 && g.mb.head == 1408);
    // Exact products do not round up; shrinking keeps at least one block and 8 units.
    ck_assert_int_eq(nas_scale_genome(&b, 1.5, 1.0, &g, err), NAS_OK);
    ck_assert_int_eq(g.mb.stages[1].repeats, 3);
    ck_assert_int_eq(nas_scale_genome(&b, 0.1, 0.1, &g, err), NAS_OK);
    ck_assert(g.mb.stages[0].repeats == 1 && g.mb.stages[0].width == 8);
    // Clamped to the space: 16 repeats, 1024 units.
    ck_assert_int_eq(nas_scale_genome(&b, 8.0, 8.0, &g, err), NAS_OK);
    ck_assert(g.mb.stages[5].repeats == 16 && g.mb.stages[6].width == 1024 && g.mb.head == 4096);
    ck_assert_int_eq(nas_genome_validate(&g, err), NAS_OK);
    // Bigger factors never shrink the network.
    nas_fidelity f = nas_fidelity_default();
    f.channels = 16;
    nas_cost c0, c1;
    ck_assert_int_eq(nas_genome_cost(&b, &f, 1, 14, 10, &c0, err), NAS_OK);
    ck_assert_int_eq(nas_scale_genome(&b, 1.2, 1.1, &g, err), NAS_OK);
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 14, 10, &c1, err), NAS_OK);
    ck_assert(c1.params > c0.params && c1.macs > c0.macs);
    // Errors: another space, a bad factor.
    nas_genome cell;
    ck_assert_int_eq(nas_genome_preset("resnet", &cell, err), NAS_OK);
    ck_assert_int_eq(nas_scale_genome(&cell, 1.2, 1.1, &g, err), NAS_EGENOME);
    ck_assert_str_eq(err, "scale: compound scaling needs an mbconv genome");
    ck_assert_int_eq(nas_scale_genome(&b, 0.0, 1.1, &g, err), NAS_EINVAL);
    // Sides and the grid: every point keeps alpha * beta^2 * gamma^2 within 3% of 2.
    ck_assert_int_eq(nas_scale_side(224, 1.15, 1.0), 258);
    ck_assert_int_eq(nas_scale_side(14, 1.15, 0.0), 14);
    nas_scale_coef grid[64];
    int n = nas_scale_grid(grid, 64);
    ck_assert_int_eq(n, 25); /* 5 x 5, every gamma rounds to >= 1 */
    int has_effnet_like = 0;
    for (int i = 0; i < n; i++) {
        double flops = grid[i].alpha * grid[i].beta * grid[i].beta * grid[i].gamma * grid[i].gamma;
        ck_assert_msg(fabs(flops - 2.0) < 0.06, "point %d: %g", i, flops);
        ck_assert(grid[i].alpha >= 1.0 && grid[i].beta >= 1.0 && grid[i].gamma >= 1.0);
        has_effnet_like |= fabs(grid[i].alpha - 1.2) < 1e-9 && fabs(grid[i].beta - 1.1) < 1e-9;
    }
    ck_assert(has_effnet_like);
    ck_assert_int_eq(nas_scale_grid(grid, 3), 3);
}
END_TEST

/* nas_scale_model: depth in the genome, width through the fidelity's
 * multiplier, so a width factor the 8-unit genome widths round away (B0's
 * 16-unit first stage x 1.05) still widens every layer, and the MACs grow
 * by about w^2 at a fixed depth. */
START_TEST(test_mb_scale_model) {
    nas_genome b, g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(B0, strlen(B0), &b, err), NAS_OK);
    nas_fidelity f0 = nas_fidelity_default(), f;
    f0.channels = 16;
    ck_assert_int_eq(nas_scale_model(&b, &f0, 1.2, 1.05, &g, &f, err), NAS_OK);
    ck_assert_float_eq(f.width_mult, 1.05f);
    for (int i = 0; i < 7; i++) {
        ck_assert_int_eq(g.mb.stages[i].width, b.mb.stages[i].width);
        ck_assert_int_eq(g.mb.stages[i].repeats, (b.mb.stages[i].repeats * 6 + 4) / 5);
    }
    f.width_mult = 0; /* everything else of the fidelity is kept */
    ck_assert(nas_wire_fidelity_equal(&f, &f0));
    nas_genome wide;
    ck_assert_int_eq(nas_scale_genome(&b, 1.0, 1.05, &wide, err), NAS_OK);
    ck_assert_int_eq(wide.mb.stages[0].width, 16); /* rounded away in the genome */
    nas_cost c0, c1;
    ck_assert_int_eq(nas_genome_cost(&b, &f0, 1, 14, 10, &c0, err), NAS_OK);
    for (int k = 1; k <= 4; k++) {
        double w = 1.0 + 0.05 * k;
        ck_assert_int_eq(nas_scale_model(&b, &f0, 1.0, w, &g, &f, err), NAS_OK);
        ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 14, 10, &c1, err), NAS_OK);
        double r = (double)c1.macs / (double)c0.macs;
        ck_assert_msg(fabs(r - w * w) < 0.03 * w * w, "width %g: MACs x%.4f", w, r);
    }
    /* A base multiplier composes; out of range is refused. */
    f0.width_mult = 0.5f;
    ck_assert_int_eq(nas_scale_model(&b, &f0, 1.0, 2.0, &g, &f, err), NAS_OK);
    ck_assert_float_eq(f.width_mult, 1.0f);
    ck_assert_int_eq(nas_scale_model(&b, &f0, 1.0, 200.0, &g, &f, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "outside (0, 64]"));
}
END_TEST

/* Evolution over MBConv stages saves its whole state and a restored copy
 * proposes exactly what the original does (a resumed campaign depends on it). */
START_TEST(test_mb_strategy_save_load) {
    strategy_save_load_check((nas_space){.kind = NAS_SPACE_MBCONV, .n_blocks = 4});
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("genome_mbconv");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_mb_text);
    tcase_add_test(tc, test_mb_json_proto_errors);
    tcase_add_test(tc, test_mb_props_random);
    tcase_add_test(tc, test_mb_sampling_coverage);
    tcase_add_test(tc, test_mb_cost_equals_built);
    tcase_add_test(tc, test_mb_param_paths);
    tcase_add_test(tc, test_mb_scale_model);
    tcase_add_test(tc, test_mb_compound_scaling);
    tcase_add_test(tc, test_mb_strategy_save_load);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
