/*
 * test_act.c - SiLU, sigmoid and squeeze-and-excitation: each kernel's
 * backward against finite differences, known values, and a whole network
 * with an SE block whose every parameter gradient is checked the same way
 * and whose threaded passes equal the single-threaded one.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/act.h"
#include "common/net.h"
#include "tests/gradcheck.h"
#include "tests/harness.h"

enum { N = 2, C = 3, HW = 5 };

typedef struct kctx {
    int which; /* 0 silu, 1 sigmoid, 2 chscale */
    float x[N * C * HW], s[N * C], out[N * C * HW], r[N * C * HW];
} kctx;

static double kloss(void *p) {
    kctx *k = p;
    long n = N * C * HW;
    if (k->which == 0) nas_silu_forward(k->out, k->x, n);
    if (k->which == 1) nas_sigmoid_forward(k->out, k->x, n);
    if (k->which == 2) nas_chscale_forward(k->out, k->x, k->s, N, C, HW);
    return nas_dot_d(k->out, k->r, (size_t)n);
}

START_TEST(test_act_kernel_grads) {
    kctx k;
    k.which = _i;
    nas_rng rng;
    nas_rng_init(&rng, 7, (uint64_t)_i);
    long n = N * C * HW;
    // Wide inputs reach both tails of the sigmoid, where a naive exp overflows.
    nas_fill_uniform(k.x, (size_t)n, -6.0f, 6.0f, &rng);
    nas_fill_uniform(k.s, N * C, -1.5f, 1.5f, &rng);
    nas_fill_uniform(k.r, (size_t)n, -1.0f, 1.0f, &rng);
    kloss(&k);
    float dx[N * C * HW], ds[N * C];
    // Backward accumulates: start from a known offset and subtract it after.
    for (long i = 0; i < n; i++) dx[i] = 0.5f;
    for (int i = 0; i < N * C; i++) ds[i] = 0.5f;
    if (_i == 0) nas_silu_backward(dx, k.r, k.x, n);
    if (_i == 1) nas_sigmoid_backward(dx, k.r, k.out, n);
    if (_i == 2) nas_chscale_backward(dx, ds, k.r, k.x, k.s, N, C, HW);
    for (long i = 0; i < n; i++) dx[i] -= 0.5f;
    for (int i = 0; i < N * C; i++) ds[i] -= 0.5f;
    ck_assert(nas_gradcheck(kloss, &k, k.x, dx, (size_t)n, 1e-3f, 1e-4, 2e-3, 0, "dx"));
    if (_i == 2) ck_assert(nas_gradcheck(kloss, &k, k.s, ds, N * C, 1e-3f, 1e-4, 2e-3, 0, "ds"));
}
END_TEST

START_TEST(test_act_values) {
    float x[5] = {-100.0f, -1.0f, 0.0f, 1.0f, 100.0f}, y[5];
    nas_sigmoid_forward(y, x, 5);
    ck_assert_float_eq(y[2], 0.5f);
    ck_assert(fabsf(y[3] - 0.7310586f) < 1e-6f && fabsf(y[1] - 0.2689414f) < 1e-6f);
    ck_assert(y[0] >= 0.0f && y[0] < 1e-30f && y[4] == 1.0f); /* no NaN from exp overflow */
    nas_silu_forward(y, x, 5);
    ck_assert_float_eq(y[2], 0.0f);
    ck_assert(fabsf(y[3] - 0.7310586f) < 1e-6f && fabsf(y[1] + 0.2689414f) < 1e-6f);
    ck_assert(y[0] <= 0.0f && y[0] > -1e-30f && y[4] == 100.0f);
}
END_TEST

// The vectorised sigmoid against double precision over [-80, 80] (where neither clamps), and
// every tail length computing what the full vectors compute for the same elements.
START_TEST(test_act_sigmoid_accuracy_and_tails) {
    enum { NX = 400001 };
    float *x = malloc(NX * sizeof *x), *y = malloc(NX * sizeof *y), *z = malloc(NX * sizeof *z);
    ck_assert(x && y && z);
    for (long i = 0; i < NX; i++)
        x[i] = -80.0f + 160.0f * (float)i / (NX - 1);
    nas_sigmoid_forward(y, x, NX);
    nas_silu_forward(z, x, NX);
    double worst = 0.0, worst_silu = 0.0;
    for (long i = 0; i < NX; i++) {
        double s = 1.0 / (1.0 + exp(-(double)x[i]));
        double rel = fabs(y[i] - s) / s;
        if (rel > worst) worst = rel;
        double si = x[i] * s;
        if (fabs(si) > 1e-30) {
            double r2 = fabs(z[i] - si) / fabs(si);
            if (r2 > worst_silu) worst_silu = r2;
        }
    }
    ck_assert_msg(worst < 3e-7, "sigmoid relative error %g", worst);
    ck_assert_msg(worst_silu < 4e-7, "silu relative error %g", worst_silu);
    for (int n = 1; n <= 33; n++) {
        float one[40], dx[40] = {0}, g[40];
        for (int i = 0; i < n; i++)
            g[i] = 0.25f * (float)(i % 5) - 0.5f;
        nas_silu_forward(one, x + 1000 * n, n);
        nas_silu_backward(dx, g, x + 1000 * n, n);
        for (int i = 0; i < n; i++) {
            float a, d = 0.0f;
            nas_silu_forward(&a, x + 1000 * n + i, 1);
            nas_silu_backward(&d, g + i, x + 1000 * n + i, 1);
            ck_assert_msg(memcmp(&a, &one[i], sizeof a) == 0, "n %d element %d", n, i);
            ck_assert_msg(memcmp(&d, &dx[i], sizeof d) == 0, "n %d element %d (backward)", n, i);
        }
    }
    free(x), free(y), free(z);
}
END_TEST

enum { B = 3, CLS = 4, IC = 2, SIDE = 6 };

// conv -> BN -> SiLU -> SE -> residual add -> GAP -> linear: every new op, with the SE's input
// reused by the add (two consumers of one gradient).
static int build_se_net(nas_net *net) {
    int x = nas_net_input(net);
    int a = nas_net_silu(net, nas_net_bn(net, "stem/bn", nas_net_conv(net, "stem/conv", x, 4, 3, 3,
                                                                      1, 1, 1, 1, 0)));
    int se = nas_net_se(net, "se", a, 2);
    int sum = nas_net_add(net, se, a);
    return nas_net_linear(net, "fc", nas_net_gap(net, sum), CLS);
}

typedef struct gctx {
    nas_net *net;
    float *x;
    uint8_t labels[B];
} gctx;

static double net_loss(void *p) {
    gctx *g = p;
    nas_rng rng;
    nas_rng_init(&rng, 1, 1);
    nas_net_forward(g->net, g->x, B, 1, &rng);
    return nas_net_loss(g->net, g->labels, B, 0.0f, NULL);
}

static nas_net *make_se_net(int threads) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, IC, SIDE, SIDE, err), NAS_OK);
    int out = build_se_net(net);
    ck_assert_msg(out >= 0, "%s", nas_net_errmsg(net));
    ck_assert_int_eq(nas_net_compile(net, out, B, err), NAS_OK);
    ck_assert_int_eq(nas_net_set_threads(net, threads, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 5, 0);
    nas_net_init_params(net, &rng);
    for (int i = 0; i < nas_net_param_n(net); i++) {
        const nas_param *p = nas_net_param(net, i);
        if (p->trainable && p->ndim == 1) nas_fill_uniform(p->data, p->size, 0.2f, 0.8f, &rng);
    }
    return net;
}

START_TEST(test_se_net_gradients) {
    nas_net *net = make_se_net(1);
    // The SE's parameters are named under its path; the gate is 4 -> 2 -> 4 with biases.
    ck_assert_ptr_nonnull(nas_net_param_find(net, "se/reduce/weight"));
    ck_assert_ptr_nonnull(nas_net_param_find(net, "se/reduce/bias"));
    ck_assert_ptr_nonnull(nas_net_param_find(net, "se/expand/bias"));
    ck_assert_int_eq(nas_net_param_find(net, "se/expand/weight")->shape[1], 2);
    nas_rng rng;
    nas_rng_init(&rng, 9, 0);
    gctx g = {.net = net, .x = malloc(sizeof(float) * B * IC * SIDE * SIDE), .labels = {0, 3, 1}};
    nas_fill_uniform(g.x, B * IC * SIDE * SIDE, -1, 1, &rng);
    nas_net_zero_grad(net);
    net_loss(&g);
    nas_net_backward(net);
    size_t n_tr, n_all;
    nas_net_params_data(net, &n_tr, &n_all);
    float *grads = malloc(sizeof(float) * n_tr);
    memcpy(grads, nas_net_grads_data(net), sizeof(float) * n_tr);
    for (int i = 0; i < nas_net_param_n(net); i++) {
        const nas_param *p = nas_net_param(net, i);
        if (!p->trainable) continue;
        for (size_t e = 0; e < p->size; e++) {
            int ok = 0;
            static const float hs[3] = {3e-4f, 1e-3f, 3e-3f};
            for (int k = 0; k < 3 && !ok; k++)
                ok = nas_gradcheck(net_loss, &g, p->data + e, grads + p->offset + e, 1, hs[k], 2e-4,
                                   2e-2, 0, p->name);
            ck_assert_msg(ok, "%s[%zu]", p->name, e);
        }
    }
    // The same net on two threads computes the same logits and gradients.
    nas_net *net2 = make_se_net(2);
    gctx g2 = {.net = net2, .x = g.x, .labels = {0, 3, 1}};
    nas_net_zero_grad(net);
    nas_net_zero_grad(net2);
    net_loss(&g);
    nas_net_backward(net);
    net_loss(&g2);
    nas_net_backward(net2);
    ck_assert(nas_allclose(nas_net_grads_data(net2), nas_net_grads_data(net), n_tr, 1e-5f, 1e-4f,
                           "threads"));
    free(g.x), free(grads);
    nas_net_destroy(&net);
    nas_net_destroy(&net2);
}
END_TEST

START_TEST(test_se_builder_errors) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, IC, SIDE, SIDE, err), NAS_OK);
    int x = nas_net_input(net);
    int c = nas_net_conv(net, "c", x, 4, 1, 1, 1, 0, 1, 1, 0);
    ck_assert_int_lt(nas_net_scale(net, c, c), 0); /* gate must be (C,1,1) */
    ck_assert_str_eq(nas_net_errmsg(net), "net: scale: gate is 4x6x6, not (4,1,1)");
    nas_net_destroy(&net);
    ck_assert_int_eq(nas_net_create(&net, IC, SIDE, SIDE, err), NAS_OK);
    x = nas_net_input(net);
    ck_assert_int_lt(nas_net_se(net, "se", x, 0), 0);
    ck_assert_str_eq(nas_net_errmsg(net), "net: se: squeeze to 0 channels");
    nas_net_destroy(&net);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("act");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_act_kernel_grads, 0, 3);
    tcase_add_test(tc, test_act_values);
    tcase_add_test(tc, test_act_sigmoid_accuracy_and_tails);
    tcase_add_test(tc, test_se_net_gradients);
    tcase_add_test(tc, test_se_builder_errors);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
