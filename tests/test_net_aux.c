/*
 * test_net_aux.c - the final-stage recipe's network pieces: the auxiliary
 * head (its loss's gradient against finite differences, the same with two
 * threads, left out of the deployed counts) and drop-path at the network
 * level (the identity in evaluation, whole images dropped or scaled by
 * 1/(1-p) in training).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/builder.h"
#include "common/genome.h"
#include "common/net.h"
#include "tests/gradcheck.h"
#include "tests/harness.h"

enum { B = 4, CLS = 5, C = 2, S = 7 };

/* stem conv-BN, an auxiliary head on it (ReLU, 5x5/3 pool, 1x1 conv, BN, ReLU, GAP, linear),
 * then the trunk: ReLU, conv, GAP, linear. */
static int build_aux(nas_net *net, float weight) {
    int x = nas_net_input(net);
    int a = nas_net_bn(net, "stem/bn", nas_net_conv(net, "stem/conv", x, 4, 3, 3, 1, 1, 1, 1, 0));
    nas_net_set_train_only(net, 1);
    int h = nas_net_avgpool(net, nas_net_relu(net, a), 5, 3, 0);
    h = nas_net_relu(net, nas_net_bn(net, "aux/bn", nas_net_conv(net, "aux/conv", h, 3, 1, 1, 1,
                                                                   0, 1, 1, 0)));
    h = nas_net_linear(net, "aux/linear", nas_net_gap(net, h), CLS);
    nas_net_set_train_only(net, 0);
    int t = nas_net_aux_loss(net, a, h, weight);
    t = nas_net_conv(net, "trunk/conv", nas_net_relu(net, t), 6, 3, 3, 1, 1, 1, 1, 1);
    return nas_net_linear(net, "head/linear", nas_net_gap(net, t), CLS);
}

typedef struct gctx {
    nas_net *net;
    float *x;
    uint8_t labels[B];
    float smoothing;
} gctx;

/* The loss the gradients belong to: the main loss plus the weighted auxiliary one. */
static double total_loss(void *p) {
    gctx *g = p;
    nas_rng rng;
    nas_rng_init(&rng, 1, 1);
    nas_net_forward(g->net, g->x, B, 1, &rng);
    double main = nas_net_loss(g->net, g->labels, B, g->smoothing, NULL);
    return main + nas_net_aux_loss_value(g->net);
}

static nas_net *make_aux(float weight, int threads, float **x) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, C, S, S, err), NAS_OK);
    int out = build_aux(net, weight);
    ck_assert_msg(out >= 0, "%s", nas_net_errmsg(net));
    ck_assert_int_eq(nas_net_compile(net, out, B, err), NAS_OK);
    ck_assert_int_eq(nas_net_set_threads(net, threads, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 7, 0);
    nas_net_init_params(net, &rng);
    for (int i = 0; i < nas_net_param_n(net); i++) {
        const nas_param *p = nas_net_param(net, i);
        if (p->trainable && p->ndim == 1) nas_fill_uniform(p->data, p->size, 0.2f, 0.8f, &rng);
    }
    *x = malloc(sizeof(float) * B * C * S * S);
    nas_fill_uniform(*x, B * C * S * S, -1, 1, &rng);
    return net;
}

START_TEST(test_aux_head_gradients) {
    float *x;
    nas_net *net = make_aux(0.4f, 1, &x);
    gctx g = {.net = net, .x = x, .labels = {0, 3, 4, 1}, .smoothing = 0.1f};
    nas_net_zero_grad(net);
    double l = total_loss(&g);
    ck_assert(nas_net_aux_loss_value(net) > 0.0f);
    ck_assert(l > nas_net_aux_loss_value(net));
    nas_net_backward(net);
    size_t n_tr;
    nas_net_params_data(net, &n_tr, NULL);
    float *grads = malloc(sizeof(float) * n_tr);
    memcpy(grads, nas_net_grads_data(net), sizeof(float) * n_tr);
    int aux_checked = 0;
    for (int i = 0; i < nas_net_param_n(net); i++) {
        const nas_param *p = nas_net_param(net, i);
        if (!p->trainable) continue;
        size_t step = p->size > 8 ? p->size / 8 : 1;
        for (size_t e = 0; e < p->size; e += step) {
            int ok = 0;
            static const float hs[3] = {3e-4f, 1e-3f, 3e-3f};
            for (int k = 0; k < 3 && !ok; k++)
                ok = nas_gradcheck(total_loss, &g, p->data + e, grads + p->offset + e, 1, hs[k],
                                   2e-4, 2e-2, 0, p->name);
            ck_assert_msg(ok, "%s[%zu]", p->name, e);
            aux_checked += p->train_only;
        }
    }
    ck_assert_int_gt(aux_checked, 0);
    /* The head's gradient reaches the stem: with weight 0.4 against a tiny weight the stem's
     * gradient differs, so the auxiliary loss is really in the backward pass. */
    nas_net *quiet = NULL;
    float *x2;
    quiet = make_aux(1e-6f, 1, &x2);
    gctx g2 = {.net = quiet, .x = x, .labels = {0, 3, 4, 1}, .smoothing = 0.1f};
    nas_net_zero_grad(quiet);
    total_loss(&g2);
    nas_net_backward(quiet);
    const nas_param *w1 = nas_net_param_find(net, "stem/conv/weight");
    const nas_param *w2 = nas_net_param_find(quiet, "stem/conv/weight");
    double diff = 0.0;
    for (size_t i = 0; i < w1->size; i++)
        diff += fabs((double)grads[w1->offset + i] - (double)w2->grad[i]);
    ck_assert(diff > 1e-4);
    free(grads), free(x), free(x2);
    nas_net_destroy(&net);
    nas_net_destroy(&quiet);
}
END_TEST

/* Two threads split the batch; the auxiliary gradient of each image range is averaged over
 * the whole batch, so the sums agree with one thread's. */
START_TEST(test_aux_head_threads) {
    float *x1, *x2;
    nas_net *a = make_aux(0.4f, 1, &x1), *b = make_aux(0.4f, 2, &x2);
    gctx ga = {.net = a, .x = x1, .labels = {2, 0, 1, 4}};
    gctx gb = {.net = b, .x = x2, .labels = {2, 0, 1, 4}};
    nas_net_zero_grad(a);
    nas_net_zero_grad(b);
    ck_assert(fabs(total_loss(&ga) - total_loss(&gb)) < 1e-5);
    nas_net_backward(a);
    nas_net_backward(b);
    size_t n;
    nas_net_params_data(a, &n, NULL);
    ck_assert(nas_allclose(nas_net_grads_data(b), nas_net_grads_data(a), n, 1e-5f, 1e-4f,
                           "aux grads, 2 threads"));
    free(x1), free(x2);
    nas_net_destroy(&a);
    nas_net_destroy(&b);
}
END_TEST

/* The head is trained but not deployed: counts leave it out; evaluation is unchanged by it. */
START_TEST(test_aux_head_counts_and_eval) {
    float *x;
    nas_net *net = make_aux(0.4f, 1, &x);
    int64_t all = 0, head = 0;
    for (int i = 0; i < nas_net_param_n(net); i++) {
        const nas_param *p = nas_net_param(net, i);
        if (!p->trainable) continue;
        all += (int64_t)p->size;
        if (p->train_only) {
            head += (int64_t)p->size;
            ck_assert_ptr_nonnull(strstr(p->name, "aux/"));
        }
    }
    /* aux/conv 4*3, aux/bn 2*3, aux/linear 3*5+5 */
    ck_assert_int_eq(head, 12 + 6 + 20);
    ck_assert_int_eq(nas_net_param_count(net), all - head);
    /* MACs: stem 4*2*9*49, trunk conv 6*4*9*49, head/linear 6*5 (the head's are not here). */
    ck_assert_int_eq(nas_net_macs(net), 4 * 2 * 9 * 49 + 6 * 4 * 9 * 49 + 6 * 5);
    /* Evaluation through the auxiliary node is the trunk alone: a second forward with the
     * head's weights scrambled gives the same logits. */
    float logits[B * CLS];
    memcpy(logits, nas_net_forward(net, x, B, 0, NULL), sizeof logits);
    const nas_param *w = nas_net_param_find(net, "aux/conv/weight");
    for (size_t i = 0; i < w->size; i++)
        w->data[i] = 3.0f;
    ck_assert_mem_eq(nas_net_forward(net, x, B, 0, NULL), logits, sizeof logits);
    free(x);
    nas_net_destroy(&net);
}
END_TEST

START_TEST(test_aux_head_bad_input) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, C, S, S, err), NAS_OK);
    int x = nas_net_input(net);
    int a = nas_net_conv(net, "c", x, 4, 3, 3, 1, 1, 1, 1, 0);
    ck_assert_int_eq(nas_net_aux_loss(net, a, a, 0.4f), NAS_EINVAL); /* not (K,1,1) */
    ck_assert_ptr_nonnull(strstr(nas_net_errmsg(net), "auxiliary logits"));
    nas_net_destroy(&net);
    ck_assert_int_eq(nas_net_create(&net, C, S, S, err), NAS_OK);
    x = nas_net_input(net);
    a = nas_net_conv(net, "c", x, 4, 3, 3, 1, 1, 1, 1, 0);
    int l = nas_net_linear(net, "l", nas_net_gap(net, a), CLS);
    ck_assert_int_eq(nas_net_aux_loss(net, a, l, 0.0f), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(nas_net_errmsg(net), "weight"));
    nas_net_destroy(&net);
}
END_TEST

/* Drop-path in a network: evaluation is the identity whatever p; in training each image's
 * branch is either zero or scaled by 1/(1-p).  conv (no bias) -> drop-path -> GAP -> linear
 * (zero bias after init) makes the logits linear in the branch, so each image's training
 * logits are 0 or 1/(1-p) times its evaluation logits. */
START_TEST(test_drop_path_in_net) {
    enum { N = 64 };
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, 1, 5, 5, err), NAS_OK);
    int x = nas_net_input(net);
    int d = nas_net_drop_path(net, nas_net_conv(net, "c", x, 3, 3, 3, 1, 1, 1, 1, 0));
    int out = nas_net_linear(net, "fc", nas_net_gap(net, d), CLS);
    ck_assert_int_eq(nas_net_compile(net, out, N, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 3, 0);
    nas_net_init_params(net, &rng);
    float *in = malloc(sizeof(float) * N * 25), *ev = malloc(sizeof(float) * N * CLS);
    nas_fill_uniform(in, N * 25, -1, 1, &rng);
    nas_net_set_drop_path(net, 0.0f);
    memcpy(ev, nas_net_forward(net, in, N, 0, NULL), sizeof(float) * N * CLS);
    nas_net_set_drop_path(net, 0.5f);
    ck_assert_mem_eq(nas_net_forward(net, in, N, 0, NULL), ev, sizeof(float) * N * CLS);
    const float *tr = nas_net_forward(net, in, N, 1, &rng);
    int dropped = 0;
    for (int b = 0; b < N; b++) {
        int zero = 1, twice = 1;
        for (int k = 0; k < CLS; k++) {
            float e = ev[b * CLS + k], t = tr[b * CLS + k];
            zero &= t == 0.0f;
            twice &= fabsf(t - 2.0f * e) <= 1e-5f * (1.0f + fabsf(e));
        }
        ck_assert_msg(zero || twice, "image %d neither dropped nor scaled by 2", b);
        dropped += zero;
    }
    ck_assert(dropped > 12 && dropped < 52); /* about half of 64 */
    free(in), free(ev);
    nas_net_destroy(&net);
}
END_TEST

/* The builder attaches the head after the second reduction cell only in a real net: the
 * counter (nas_genome_cost) and the net's deployed counts agree, with or without it. */
START_TEST(test_builder_aux_head) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_preset("nasnet_a", &g, err), NAS_OK);
    nas_fidelity f = nas_fidelity_default();
    f.channels = 4;
    f.cells = 1;
    nas_cost plain, with;
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 14, 10, &plain, err), NAS_OK);
    f.aux_weight = 0.4f;
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 14, 10, &with, err), NAS_OK);
    ck_assert_int_eq(with.params, plain.params);
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 14, 14, err), NAS_OK);
    int logits;
    ck_assert_msg(nas_builder_build(net, &g, &f, 10, &logits, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_net_compile(net, logits, 2, err), NAS_OK);
    ck_assert_int_eq(nas_net_param_count(net), plain.params);
    ck_assert_int_eq(nas_net_macs(net), plain.macs);
    const nas_param *w = nas_net_param_find(net, "aux/conv/weight");
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->shape[0], 4 * f.channels); /* the third stage's C */
    ck_assert(w->train_only);
    nas_net_destroy(&net);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("net_aux");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_aux_head_gradients);
    tcase_add_test(tc, test_aux_head_threads);
    tcase_add_test(tc, test_aux_head_counts_and_eval);
    tcase_add_test(tc, test_aux_head_bad_input);
    tcase_add_test(tc, test_drop_path_in_net);
    tcase_add_test(tc, test_builder_aux_head);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
