/*
 * test_builder.c - genomes become networks: counted params and MACs equal
 * the built network's exactly, a forward pass gives [batch, classes] at
 * 28 and 14 pixels, parameter paths follow the documented scheme, and the
 * --arch resolver tries reference nets, presets, then genome text.
 */
#include "common/alloc.h"
#include "common/builder.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/net.h"
#include "tests/harness.h"

#include <math.h>
#include <string.h>

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

static nas_fidelity tiny(int F, int N) {
    nas_fidelity f = nas_fidelity_default();
    f.channels = F;
    f.cells = N;
    return f;
}

/* Build g, compare with the counted cost, optionally run a forward pass;
 * returns the params of the built network. */
static int64_t build_check(const nas_genome *g, const nas_fidelity *f, int side, int classes,
                           int forward) {
    char err[NAS_ERR_LEN] = "", text[NAS_GENOME_TEXT_MAX];
    nas_genome_format(g, text, sizeof text);
    nas_net *net = NULL;
    REQUIRE(nas_net_create(&net, 1, side, side, err) == NAS_OK, "create: %s", err);
    int logits = -1;
    int rc = nas_builder_build(net, g, f, classes, &logits, err);
    REQUIRE(rc == NAS_OK, "build %s at %d: %s", text, side, err);
    nas_cost cost;
    rc = nas_genome_cost(g, f, 1, side, classes, &cost, err);
    REQUIRE(rc == NAS_OK, "cost %s: %s", text, err);
    REQUIRE(cost.params == nas_net_param_count(net), "%s at %d: counted %lld params, built %lld",
            text, side, (long long)cost.params, (long long)nas_net_param_count(net));
    REQUIRE(cost.macs == nas_net_macs(net), "%s at %d: counted %lld MACs, built %lld", text, side,
            (long long)cost.macs, (long long)nas_net_macs(net));
    if (forward) {
        const int batch = 2;
        REQUIRE(nas_net_compile(net, logits, batch, err) == NAS_OK, "compile %s: %s", text, err);
        REQUIRE(nas_net_classes(net) == classes, "classes");
        float *x = nas_malloc(sizeof(float) * (size_t)(batch * side * side));
        for (int i = 0; i < batch * side * side; i++)
            x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
        const float *out = nas_net_forward(net, x, batch, 0, NULL);
        REQUIRE(out != NULL, "forward %s", text);
        for (int i = 0; i < batch * classes; i++)
            REQUIRE(isfinite(out[i]), "logit %d of %s", i, text);
        nas_free(x);
    }
    int64_t p = nas_net_param_count(net);
    nas_net_destroy(&net);
    return p;
}

START_TEST(test_builder_presets_build_and_count) {
    const char *const *names = nas_genome_preset_names();
    int n = 0;
    for (; names[n] != NULL; n++) {
        nas_genome g;
        char err[NAS_ERR_LEN];
        ck_assert_int_eq(nas_genome_preset(names[n], &g, err), NAS_OK);
        nas_fidelity f = tiny(4, 1);
        ck_assert_int_gt(build_check(&g, &f, 28, 10, 1), 0);
        ck_assert_int_gt(build_check(&g, &f, 14, 10, 1), 0);
    }
    ck_assert_int_ge(n, 4);
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_preset("nasnet", &g, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "nasnet_a"));
}
END_TEST

START_TEST(test_builder_random_genomes_count_exactly) {
    nas_rng rng;
    nas_rng_init(&rng, 11, 4);
    int built = 0;
    for (int i = 0; i < 300; i++) {
        nas_space sp = {.kind = i % 5 == 4 ? NAS_SPACE_NB201 : NAS_SPACE_CELL};
        sp.n_blocks = 1 + (int)nas_rng_below(&rng, 5);
        sp.shared = i % 2;
        if (i % 3 == 0 && sp.kind == NAS_SPACE_CELL)
            sp.op_mask = nas_space_default_ops(NAS_SPACE_CELL) | (1u << NAS_OP_ZERO);
        nas_genome g;
        ck_assert_int_eq(nas_genome_sample(&sp, &rng, &g), NAS_OK);
        nas_fidelity f = tiny(2 + (int)nas_rng_below(&rng, 3), (int)nas_rng_below(&rng, 2));
        if (i % 7 == 0) f.drop_path = 0.2f; /* drop-path nodes: no parameters, same count */
        int side = i % 2 ? 28 : 14;
        /* Tiny fidelity (F 2..4, N 0..1) keeps 300 forward passes fast under ASan. */
        build_check(&g, &f, side, 10, 1);
        built++;
    }
    ck_assert_int_eq(built, 300);
}
END_TEST

START_TEST(test_builder_equivalent_genomes_same_params) {
    nas_fidelity f = tiny(4, 1);
    nas_genome a, b, c;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse("c=sep3x3:0+id:1,max3x3:2+sep5x5:1", 33, &a, err), NAS_OK);
    ck_assert_int_eq(nas_genome_parse("c=id:1+sep3x3:0,sep5x5:1+max3x3:2", 33, &b, err), NAS_OK);
    ck_assert_int_eq(nas_genome_parse("c=sep3x3:0+id:1,max3x3:2+sep7x7:1", 33, &c, err), NAS_OK);
    int64_t pa = build_check(&a, &f, 14, 10, 0), pb = build_check(&b, &f, 14, 10, 0);
    ck_assert_int_eq(pa, pb);
    ck_assert_int_ne(pa, build_check(&c, &f, 14, 10, 0));
    /* A dead block is not built: the pruned genome has the same count. */
    nas_genome d, e;
    ck_assert_int_eq(nas_genome_parse("c=sep3x3:0+id:1,max3x3:1+zero:2", 31, &d, err), NAS_OK);
    ck_assert_int_eq(nas_genome_parse("c=max3x3:1+zero:0", 17, &e, err), NAS_OK);
    ck_assert_int_eq(build_check(&d, &f, 14, 10, 1), build_check(&e, &f, 14, 10, 0));
}
END_TEST

START_TEST(test_builder_param_paths) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    const char *t = "n=sep3x3:1+id:0,conv1x7_7x1:2+dil3x3:0 r=id:0+conv3x3:1";
    ck_assert_int_eq(nas_genome_parse(t, strlen(t), &g, err), NAS_OK);
    nas_fidelity f = tiny(4, 1);
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 14, 14, err), NAS_OK);
    int logits;
    ck_assert_int_eq(nas_builder_build(net, &g, &f, 10, &logits, err), NAS_OK);
    const char *want[] = {
        "stem/conv/weight",
        "stem/bn/weight",
        "cell0/pre0/conv/weight",
        "cell0/pre1/bn/bias",
        "cell0/block0/a/dw1/weight",
        "cell0/block0/a/pw2/weight",
        "cell0/block1/a/conv1x7/weight",
        "cell0/block1/a/conv7x1/weight",
        "cell0/block1/b/dw/weight",
        "cell0/out/conv/weight",
        "cell1/block0/a/conv1/weight", /* reduction: strided id */
        "cell1/block0/b/conv/weight",
        "cell2/pre0/conv1/weight", /* h[i-2] is bigger: FR */
        "head/linear/weight",
    };
    for (size_t i = 0; i < NAS_ARRAY_LEN(want); i++)
        ck_assert_msg(nas_net_param_find(net, want[i]) != NULL, "missing %s", want[i]);
    /* id with stride 1 has no parameters. */
    ck_assert_ptr_null(nas_net_param_find(net, "cell0/block0/b/conv1/weight"));
    const nas_param *dw = nas_net_param_find(net, "cell4/block0/a/dw1/weight");
    ck_assert_ptr_nonnull(dw);
    ck_assert_int_eq(dw->shape[0], 16); /* cell4 is in the third stage: 4F channels */
    ck_assert_int_eq(dw->shape[1], 1);  /* depthwise */
    nas_net_destroy(&net);
}
END_TEST

START_TEST(test_builder_arch_resolution) {
    nas_fidelity f = tiny(4, 1);
    char err[NAS_ERR_LEN];
    const char *ok[] = {
        "small", "nasnet_a", "resnet", "c=sep3x3:0+id:1",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"};
    int genome_expected[] = {0, 1, 1, 1, 1};
    for (size_t i = 0; i < NAS_ARRAY_LEN(ok); i++) {
        nas_net *net = NULL;
        ck_assert_int_eq(nas_net_create(&net, 1, 28, 28, err), NAS_OK);
        int logits, is_genome = -1;
        nas_genome g;
        int rc = nas_builder_build_arch(net, ok[i], &f, 10, &logits, &g, &is_genome, err);
        ck_assert_msg(rc == NAS_OK, "%s: %s", ok[i], err);
        ck_assert_int_eq(is_genome, genome_expected[i]);
        ck_assert_int_eq(nas_net_compile(net, logits, 1, err), NAS_OK);
        nas_net_destroy(&net);
    }
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 28, 28, err), NAS_OK);
    int logits;
    ck_assert_int_eq(nas_builder_build_arch(net, "amoeba", &f, 10, &logits, NULL, NULL, err),
                     NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "amoebanet_a"));
    ck_assert_ptr_nonnull(strstr(err, "small"));
    ck_assert_int_eq(
        nas_builder_build_arch(net, "c=sep3x3:0+id:7", &f, 10, &logits, NULL, NULL, err),
        NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "out of range"));
    nas_net_destroy(&net);
}
END_TEST

START_TEST(test_builder_bad_arguments) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_preset("resnet", &g, err), NAS_OK);
    nas_fidelity f = tiny(4, 1);
    nas_cost c;
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 28, 1, &c, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "classes"));
    ck_assert_int_eq(nas_genome_cost(&g, &f, 0, 28, 10, &c, err), NAS_EINVAL);
    f.channels = 0;
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 28, 10, &c, err), NAS_EINVAL);
    f = tiny(4, 1);
    g.normal.blocks[0].in_a = 9;
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 28, 10, &c, err), NAS_EGENOME);
    /* The largest fidelity the walk accepts is counted or refused, never
     * overflowed (UBSan watches the arithmetic). */
    nas_genome big;
    ck_assert_int_eq(nas_genome_preset("amoebanet_a", &big, err), NAS_OK);
    nas_fidelity huge = tiny(4096, 64);
    int rc = nas_genome_cost(&big, &huge, 3, 4096, 1000, &c, err);
    ck_assert_msg(rc == NAS_ERANGE || (rc == NAS_OK && c.params > 0 && c.macs > 0), "rc %d", rc);
    huge = tiny(64, 2);
    ck_assert_int_eq(nas_genome_cost(&big, &huge, 3, 224, 1000, &c, err), NAS_OK);
    ck_assert_int_gt(c.macs, c.params);
    /* A net that already has nodes is refused. */
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 28, 28, err), NAS_OK);
    ck_assert_int_eq(nas_genome_preset("resnet", &g, err), NAS_OK);
    int logits;
    ck_assert_int_eq(nas_builder_build(net, &g, &f, 10, &logits, err), NAS_OK);
    ck_assert_int_eq(nas_builder_build(net, &g, &f, 10, &logits, err), NAS_EINVAL);
    nas_net_destroy(&net);
}
END_TEST

/* One genome counted by hand (docs/GENOME.md s5 skeleton), so the walk's
 * topology is checked, not just the agreement of its two back ends.
 * c=conv1x1:1+zero:0, F=2, N=0, 1x28x28 input, 10 classes:
 *   stem conv 1->2 3x3 (18) + bn (4)                               22
 *   cell0 (reduction, C=4, inputs 2ch@28): pre0 8+8, pre1 8+8,
 *     block0 conv1x1/2 16+8, out conv 16+8                        80
 *   cell1 (reduction, C=8, h[i-2] 2ch@28, h[i-1] 4ch@14):
 *     pre0 factorized 8+8+16, pre1 32+16, block0 64+16, out 64+16  240
 *   head linear 8->10                                              90  = 432
 * MACs: stem 2*784*9 = 14112; cell0 6272+6272+3136+3136 = 18816;
 *   cell1 1568+1568+6272+3136+3136 = 15680; head 80;  total 48688. */
// The genome text counted (F=2, N=0, 1x28x28, 10 classes) and built with the given counts.
static void hand_check(const char *text, int64_t params, int64_t macs) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(text, strlen(text), &g, err), NAS_OK);
    nas_fidelity f = tiny(2, 0);
    nas_cost c;
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 28, 10, &c, err), NAS_OK);
    ck_assert_int_eq(c.params, params);
    ck_assert_int_eq(c.macs, macs);
    ck_assert_int_eq(build_check(&g, &f, 28, 10, 1), params);
}

START_TEST(test_builder_hand_counted) { hand_check("c=conv1x1:1+zero:0", 432, 48688); }
END_TEST

/* The same skeleton with conv1x7_7x1 in place of conv1x1: the 1x7 conv pads only columns and
 * the 7x1 only rows, so neither computes rows the other does not read.
 *   cell0 (C=4, 28 -> 14): 1x7 112 weights x 784 = 87808 MACs, 7x1 stride 2 112 x 196 = 21952
 *     (conv1x1 was 16 weights, 3136 MACs);
 *   cell1 (C=8, 14 -> 7): 1x7 448 x 196 = 87808, 7x1 448 x 49 = 21952 (conv1x1 64, 3136).
 * params 432 + (224 - 16) + (896 - 64) = 1472; MACs 48688 + 2 * (109760 - 3136) = 261936.
 * (Padded by 3 on all four sides, the 1x7 conv would have run 34 rows instead of 28.) */
START_TEST(test_builder_conv1x7_counted) { hand_check("c=conv1x7_7x1:1+zero:0", 1472, 261936); }
END_TEST

/* A genome network trains: a training-mode forward, loss and backward give
 * finite gradients, and some are non-zero in every cell's first block. */
START_TEST(test_builder_backward_runs) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_preset("amoebanet_a", &g, err), NAS_OK);
    nas_fidelity f = tiny(4, 1);
    f.drop_path = 0.1f;
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 14, 14, err), NAS_OK);
    int logits;
    ck_assert_int_eq(nas_builder_build(net, &g, &f, 10, &logits, err), NAS_OK);
    ck_assert_int_eq(nas_net_compile(net, logits, 4, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 1, 2);
    nas_net_init_params(net, &rng);
    float x[4 * 14 * 14];
    for (size_t i = 0; i < NAS_ARRAY_LEN(x); i++)
        x[i] = nas_rng_normal(&rng);
    uint8_t labels[4] = {1, 3, 5, 7};
    nas_net_zero_grad(net);
    ck_assert_ptr_nonnull(nas_net_forward(net, x, 4, 1, &rng));
    float loss = nas_net_loss(net, labels, 4, 0.0f, NULL);
    ck_assert(isfinite(loss) && loss > 0.0f);
    nas_net_backward(net);
    const char *names[] = {"stem/conv/weight", "cell2/block1/a/dw1/weight",
                           "cell1/block1/b/dw1/weight", "head/linear/weight",
                           "cell0/out/conv/weight"};
    int checked = 0;
    for (size_t i = 0; i < NAS_ARRAY_LEN(names); i++) {
        const nas_param *p = nas_net_param_find(net, names[i]);
        if (p == NULL) continue;
        double norm = 0;
        for (size_t k = 0; k < p->size; k++) {
            ck_assert(isfinite(p->grad[k]));
            norm += (double)p->grad[k] * p->grad[k];
        }
        ck_assert_msg(norm > 0, "no gradient reaches %s", names[i]);
        checked++;
    }
    ck_assert_int_eq(checked, 5);
    nas_net_destroy(&net);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("builder");
    TCase *tc = tcase_create("builder");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_builder_presets_build_and_count);
    tcase_add_test(tc, test_builder_random_genomes_count_exactly);
    tcase_add_test(tc, test_builder_equivalent_genomes_same_params);
    tcase_add_test(tc, test_builder_param_paths);
    tcase_add_test(tc, test_builder_arch_resolution);
    tcase_add_test(tc, test_builder_bad_arguments);
    tcase_add_test(tc, test_builder_hand_counted);
    tcase_add_test(tc, test_builder_conv1x7_counted);
    tcase_add_test(tc, test_builder_backward_runs);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
