/*
 * test_morph.c - network morphisms keep the function: a parent chain is
 * trained for a few SGD steps (so BN running statistics and weights are
 * far from their initial values), each morphism's child gets its weights
 * through nas_morph_apply, and the child's eval-mode logits equal the
 * parent's within 1e-4 relative to the largest logit (float rounding; the
 * symmetry-breaking noise sums to zero over copies).  Also: chains of
 * morphisms, a plain (non-morphism) child still inherits what matches,
 * and malformed input is refused.
 */
#include "common/alloc.h"
#include "common/builder.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/inherit.h"
#include "common/morph.h"
#include "common/net.h"
#include "common/optim.h"
#include "tests/harness.h"

#include <math.h>
#include <string.h>

#define SIDE  12
#define BATCH 8
#define F     8

static nas_net *build(const nas_genome *g, uint64_t seed) {
    char err[NAS_ERR_LEN] = "";
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, SIDE, SIDE, err), NAS_OK);
    nas_fidelity f = nas_fidelity_default();
    f.channels = F;
    int logits;
    ck_assert_msg(nas_builder_build(net, g, &f, 10, &logits, err) == NAS_OK, "%s", err);
    ck_assert_msg(nas_net_compile(net, logits, BATCH, err) == NAS_OK, "%s", err);
    nas_inherit_init(net, seed);
    return net;
}

static void inputs(float *x, uint8_t *y, nas_rng *rng) {
    for (int i = 0; i < BATCH * SIDE * SIDE; i++)
        x[i] = nas_rng_uniform(rng) * 2.0f - 1.0f;
    for (int i = 0; i < BATCH; i++)
        y[i] = (uint8_t)nas_rng_below(rng, 10);
}

/* A few SGD steps in train mode: weights move, BN running stats fill in. */
static void train(nas_net *net, int steps) {
    nas_rng rng;
    nas_rng_init(&rng, 5, 5);
    float x[BATCH * SIDE * SIDE];
    uint8_t y[BATCH];
    nas_sgd_config cfg = {.momentum = 0.9f, .grad_clip = 5.0f};
    size_t nt = 0, nall = 0;
    for (int s = 0; s < steps; s++) {
        inputs(x, y, &rng);
        nas_net_zero_grad(net);
        ck_assert_ptr_nonnull(nas_net_forward(net, x, BATCH, 1, &rng));
        nas_net_loss(net, y, BATCH, 0, NULL);
        nas_net_backward(net);
        float *p = nas_net_params_data(net, &nt, &nall);
        nas_sgd_step(p, nas_net_grads_data(net), nas_net_optim_state(net), nt, 0.05f, &cfg);
    }
}

/* Largest |child - parent| logit difference over a batch, relative to the
 * largest parent logit, in eval mode. */
static double logit_gap(nas_net *parent, nas_net *child) {
    nas_rng rng;
    nas_rng_init(&rng, 9, 9);
    float x[BATCH * SIDE * SIDE];
    uint8_t y[BATCH];
    inputs(x, y, &rng);
    float a[BATCH * 10];
    memcpy(a, nas_net_forward(parent, x, BATCH, 0, NULL), sizeof a);
    const float *b = nas_net_forward(child, x, BATCH, 0, NULL);
    double gap = 0, top = 0;
    for (int i = 0; i < BATCH * 10; i++) {
        gap = fmax(gap, fabs((double)a[i] - b[i]));
        top = fmax(top, fabs((double)a[i]));
    }
    ck_assert(top > 1e-3); /* a parent that outputs zeros would prove nothing */
    return gap / top;
}

/* Child net of g with the parent's weights through the morphism rule. */
static nas_net *morph_child(nas_net *parent, const nas_genome *g, float noise,
                            nas_morph_stats *ms) {
    nas_net *child = build(g, 77);
    nas_safetensors_tensor *t = NULL;
    const void *base = NULL;
    char err[NAS_ERR_LEN] = "";
    int n = nas_inherit_collect(parent, &t, &base, err);
    ck_assert_int_gt(n, 0);
    int rc = nas_morph_apply(child, g, F, t, (size_t)n, 1234, noise, NULL, ms, err);
    ck_assert_msg(rc > 0, "morph: %d %s", rc, err);
    nas_free(t);
    return child;
}

static const char *const PARENT = "chain=conv3x3/16,sep3x3/24+0,max3x3,conv1x1/32+1+3,id+2";

/* Draw morphism children until one of `kind` comes up. */
static void child_of_kind(const nas_genome *p, int kind, nas_genome *child, nas_mutation *m) {
    nas_space sp = {.kind = NAS_SPACE_CHAIN, .depth_min = 1, .depth_max = 12, .morphisms = 1};
    nas_rng rng;
    nas_rng_init(&rng, (uint64_t)kind, 3);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(nas_genome_mutate(p, &sp, 0, &rng, child, m), NAS_OK);
        if (m->kind == kind) return;
    }
    ck_abort_msg("no mutation of kind %d", kind);
}

START_TEST(test_morph_each_kind_keeps_logits) {
    static const int kinds[] = {NAS_MUTATION_WIDEN, NAS_MUTATION_DEEPEN, NAS_MUTATION_ADD_SKIP};
    nas_genome p;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(PARENT, strlen(PARENT), &p, err), NAS_OK);
    nas_net *parent = build(&p, 1);
    train(parent, 30);
    for (int i = 0; i < 3; i++) {
        for (int noisy = 0; noisy < 2; noisy++) {
            nas_genome c;
            nas_mutation m;
            child_of_kind(&p, kinds[i], &c, &m);
            nas_morph_stats ms;
            nas_net *child = morph_child(parent, &c, noisy ? 0.05f : 0.0f, &ms);
            double gap = logit_gap(parent, child);
            char desc[128], text[NAS_GENOME_TEXT_MAX];
            nas_mutation_format(&m, &p, desc, sizeof desc);
            nas_genome_format(&c, text, sizeof text);
            ck_assert_msg(gap < 1e-4, "%s (%s, noise %d): relative logit gap %g", desc, text, noisy,
                          gap);
            if (kinds[i] == NAS_MUTATION_WIDEN) ck_assert_int_gt(ms.widened, 0);
            if (kinds[i] == NAS_MUTATION_DEEPEN) ck_assert_int_eq(ms.identity, 5);
            if (kinds[i] == NAS_MUTATION_ADD_SKIP) ck_assert_int_eq(ms.zeroed, 4);
            nas_net_destroy(&child);
        }
    }
    nas_net_destroy(&parent);
}
END_TEST

/* Widening every weighted layer, the last one (read by the head) too. */
START_TEST(test_morph_widen_every_layer) {
    nas_genome p;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(PARENT, strlen(PARENT), &p, err), NAS_OK);
    nas_net *parent = build(&p, 2);
    train(parent, 20);
    for (int k = 0; k < p.chain.n_layers; k++) {
        if (!nas_chain_op_has_width(p.chain.layers[k].op)) continue;
        nas_genome c = p;
        c.chain.layers[k].width = (uint16_t)nas_chain_widen_width(c.chain.layers[k].width);
        nas_morph_stats ms;
        nas_net *child = morph_child(parent, &c, 0.01f, &ms);
        double gap = logit_gap(parent, child);
        ck_assert_msg(gap < 1e-4, "widen layer %d: relative logit gap %g", k, gap);
        nas_net_destroy(&child);
    }
    nas_net_destroy(&parent);
}
END_TEST

/* Ten morphisms in a row, each child trained a little before it becomes
 * the next parent: every step keeps the function of its own parent. */
START_TEST(test_morph_chain_of_morphisms) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    const char *t = "chain=conv3x3/8,max3x3";
    ck_assert_int_eq(nas_genome_parse(t, strlen(t), &g, err), NAS_OK);
    nas_net *parent = build(&g, 3);
    train(parent, 10);
    nas_space sp = {.kind = NAS_SPACE_CHAIN, .depth_min = 1, .depth_max = 8, .morphisms = 1};
    nas_rng rng;
    nas_rng_init(&rng, 10, 10);
    for (int step = 0; step < 10; step++) {
        nas_genome c;
        nas_mutation m;
        ck_assert_int_eq(nas_genome_mutate(&g, &sp, 0, &rng, &c, &m), NAS_OK);
        nas_genome_canonical(&c, &c); /* what the master sends */
        nas_morph_stats ms;
        nas_net *child = morph_child(parent, &c, 0.02f, &ms);
        double gap = logit_gap(parent, child);
        char text[NAS_GENOME_TEXT_MAX];
        nas_genome_format(&c, text, sizeof text);
        ck_assert_msg(gap < 1e-4, "step %d (%s): relative logit gap %g", step, text, gap);
        train(child, 3);
        nas_net_destroy(&parent);
        parent = child;
        g = c;
    }
    nas_net_destroy(&parent);
}
END_TEST

/* A plain mutation is no morphism: what matches is still inherited, the
 * rest stays fresh, nothing crashes.  Bad arguments are refused. */
START_TEST(test_morph_plain_child_and_errors) {
    nas_genome p, c;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(PARENT, strlen(PARENT), &p, err), NAS_OK);
    const char *ct = "chain=conv3x3/16,conv5x5/24@1+0,max3x3,conv1x1/16@3+1+3";
    ck_assert_int_eq(nas_genome_parse(ct, strlen(ct), &c, err), NAS_OK);
    nas_net *parent = build(&p, 4);
    nas_net *child = build(&c, 5);
    nas_safetensors_tensor *t = NULL;
    const void *base = NULL;
    int n = nas_inherit_collect(parent, &t, &base, err);
    nas_morph_stats ms;
    int rc = nas_morph_apply(child, &c, F, t, (size_t)n, 1, 0, NULL, &ms, err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_gt(ms.copied, 0);
    ck_assert_int_gt(ms.fresh, 0);
    nas_genome cell;
    ck_assert_int_eq(nas_genome_preset("resnet", &cell, err), NAS_OK);
    ck_assert_int_eq(nas_morph_apply(child, &cell, F, t, (size_t)n, 1, 0, NULL, &ms, err),
                     NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not a valid chain"));
    /* A parent tensor with a fitting shape and no data is refused by name. */
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, "L0/conv/weight") == 0) t[i].data = NULL;
    rc = nas_morph_apply(child, &c, F, t, (size_t)n, 1, 0, NULL, &ms, err);
    ck_assert_int_eq(rc, NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "L0/conv/weight"));
    nas_free(t);
    nas_net_destroy(&child);
    nas_net_destroy(&parent);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("morph");
    TCase *tc = tcase_create("morph");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_morph_each_kind_keeps_logits);
    tcase_add_test(tc, test_morph_widen_every_layer);
    tcase_add_test(tc, test_morph_chain_of_morphisms);
    tcase_add_test(tc, test_morph_plain_child_and_errors);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
