/*
 * test_net.c - the network graph: shapes, builder errors, parameter
 * layout and counts, memory planning, and whole-network gradients against
 * finite differences through every node type.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/builder.h"
#include "common/net.h"
#include "common/net_internal.h"
#include "common/refnets.h"
#include "tests/gradcheck.h"
#include "tests/harness.h"

enum { B = 3, CLS = 5 };

// A graph touching every op: conv (grouped, dilated, depthwise, a 1x7 and a 7x1 padded only
// along their kernels), BN, ReLU, pools, concat, add,
// factorized reduce, zero, drop-path, dropout (p = 0 here), GAP, linear, and each fusion: BN+ReLU,
// add+ReLU, ReLU+depthwise conv, and adds handing their gradient buffer to their inputs.
static int build_zoo(nas_net *net) {
    int x = nas_net_input(net);
    int a = nas_net_conv(net, "stem", x, 4, 3, 3, 1, 1, 1, 1, 0);
    a = nas_net_bn(net, "stem_bn", a);
    int r = nas_net_relu(net, a);
    int dw = nas_net_conv(net, "dw", r, 4, 3, 3, 1, 2, 2, 4, 0);
    int pw = nas_net_conv(net, "pw", dw, 4, 1, 1, 1, 0, 1, 2, 1);
    int mp = nas_net_maxpool(net, r, 3, 1, 1);
    int ap = nas_net_avgpool(net, r, 3, 1, 1);
    // ReLUs read by one depthwise conv each, fused into it (the separable convs' pattern).
    int dw2 = nas_net_conv(net, "dw2", nas_net_relu(net, mp), 4, 5, 5, 1, 2, 1, 4, 0);
    int dw3 = nas_net_conv(net, "dw3", nas_net_relu(net, dw), 4, 3, 3, 1, 2, 2, 4, 1);
    int c17 = nas_net_conv_hw(net, "c1x7", r, 4, 1, 7, 1, 0, 3, 1, 1, 0);
    int c71 = nas_net_conv_hw(net, "c7x1", c17, 4, 7, 1, 1, 3, 0, 1, 1, 0);
    int s1 = nas_net_add(net, nas_net_add(net, nas_net_add(net, pw, mp), dw2), dw3);
    s1 = nas_net_add(net, s1, c71);
    int dp = nas_net_drop_path(net, s1);
    int parts[3] = {dp, ap, a};
    int cat = nas_net_concat(net, parts, 3);
    int fr = nas_net_factorized_reduce(net, "reduce", cat, 6);
    int p2 = nas_net_maxpool(net, cat, 3, 2, 1);
    int c2 = nas_net_conv(net, "c2", p2, 6, 1, 1, 1, 0, 1, 1, 0);
    c2 = nas_net_relu(net, nas_net_bn(net, "c2_bn", c2)); /* fused BN+ReLU */
    int z = nas_net_zero(net, cat, 2);
    int zc = nas_net_conv(net, "zc", z, 6, 1, 1, 1, 0, 1, 1, 0);
    int sum = nas_net_add(net, nas_net_add(net, fr, c2), zc);
    int d = nas_net_dropout(net, nas_net_relu(net, sum), 0.0f);
    int g = nas_net_gap(net, d);
    return nas_net_linear(net, "fc", g, CLS);
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

// Every parameter's gradient of a net on two-channel 7x7 images against finite differences.
static void check_gradients(nas_net *net, int out) {
    char err[NAS_ERR_LEN];
    ck_assert_msg(out >= 0, "%s", nas_net_errmsg(net));
    nas_shape s = nas_net_shape(net, out);
    ck_assert_int_eq(s.c, CLS);
    ck_assert_int_eq(nas_net_compile(net, out, B, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 5, 0);
    nas_net_init_params(net, &rng);
    // Nonzero biases and BN shifts make every parameter matter.
    size_t n_tr, n_all;
    float *params = nas_net_params_data(net, &n_tr, &n_all);
    ck_assert_int_eq((int)n_tr, (int)nas_net_param_count(net));
    for (int i = 0; i < nas_net_param_n(net); i++) {
        const nas_param *p = nas_net_param(net, i);
        if (p->trainable && p->ndim == 1) nas_fill_uniform(p->data, p->size, 0.2f, 0.8f, &rng);
    }
    gctx g = {.net = net, .x = malloc(sizeof(float) * B * 2 * 7 * 7), .labels = {0, 3, 4}};
    nas_fill_uniform(g.x, B * 2 * 7 * 7, -1, 1, &rng);
    nas_net_zero_grad(net);
    net_loss(&g);
    nas_net_backward(net);
    float *grads = malloc(sizeof(float) * n_tr);
    memcpy(grads, nas_net_grads_data(net), sizeof(float) * n_tr);
    // Every named tensor gets checked on a few elements.
    for (int i = 0; i < nas_net_param_n(net); i++) {
        const nas_param *p = nas_net_param(net, i);
        if (!p->trainable) continue;
        // Float activations limit a whole-network check: a small step drowns in rounding, a
        // large one crosses ReLU/max-pool kinks or feels BN's curvature.  An element passes
        // when any of three steps agrees; wiring bugs are off at every step.
        size_t step = p->size > 12 ? p->size / 12 : 1;
        for (size_t e = 0; e < p->size; e += step) {
            int ok = 0;
            static const float hs[3] = {3e-4f, 1e-3f, 3e-3f};
            for (int k = 0; k < 3 && !ok; k++)
                ok = nas_gradcheck(net_loss, &g, p->data + e, grads + p->offset + e, 1, hs[k], 2e-4,
                                   2e-2, 0, p->name);
            ck_assert_msg(ok, "%s[%zu]", p->name, e);
        }
    }
    // Backward accumulates: a second pass without zeroing doubles the gradients.
    net_loss(&g);
    nas_net_backward(net);
    for (size_t i = 0; i < n_tr; i++) grads[i] *= 2.0f;
    ck_assert(nas_allclose(nas_net_grads_data(net), grads, n_tr, 1e-5f, 1e-4f, "accumulate"));
    ck_assert(params == nas_net_param(net, 0)->data);
    free(g.x), free(grads);
}

START_TEST(test_net_gradients) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, 2, 7, 7, err), NAS_OK);
    check_gradients(net, build_zoo(net));
    nas_net_destroy(&net);
    ck_assert_ptr_null(net);
}
END_TEST

START_TEST(test_net_builder_errors) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_net_create(&net, 0, 8, 8, err), NAS_EINVAL);
    ck_assert_int_eq(nas_net_create(&net, 3, 8, 8, err), NAS_OK);
    int x = nas_net_input(net);
    ck_assert_int_eq(x, 0);
    int bad = nas_net_conv(net, "cell0/op1", x, 4, 3, 3, 1, 1, 1, 2, 0); /* 3 % 2 != 0 */
    ck_assert_int_eq(bad, NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(nas_net_errmsg(net), "cell0/op1"));
    // Errors are sticky: later calls propagate them and compile reports the first.
    int y = nas_net_relu(net, bad);
    ck_assert_int_eq(y, NAS_EINVAL);
    int g = nas_net_gap(net, nas_net_conv(net, "ok", x, 4, 3, 3, 1, 1, 1, 1, 0));
    int out = nas_net_linear(net, "fc", g, 10);
    ck_assert_int_ge(out, 0);
    ck_assert_int_eq(nas_net_compile(net, out, 4, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "groups"));
    nas_net_destroy(&net);

    ck_assert_int_eq(nas_net_create(&net, 3, 8, 8, err), NAS_OK);
    x = nas_net_input(net);
    int a = nas_net_conv(net, "a", x, 4, 3, 3, 1, 1, 1, 1, 0);
    ck_assert_int_eq(nas_net_conv(net, "a", x, 4, 3, 3, 1, 1, 1, 1, 0), NAS_EEXIST);
    nas_net_destroy(&net);

    ck_assert_int_eq(nas_net_create(&net, 3, 8, 8, err), NAS_OK);
    x = nas_net_input(net);
    a = nas_net_conv(net, "a", x, 4, 3, 3, 2, 1, 1, 1, 0);
    ck_assert_int_eq(nas_net_add(net, a, x), NAS_EINVAL);               /* shape mismatch */
    ck_assert_int_eq(nas_net_relu(net, 99), NAS_EINVAL);                 /* sticky anyway */
    nas_net_destroy(&net);

    ck_assert_int_eq(nas_net_create(&net, 3, 8, 8, err), NAS_OK);
    x = nas_net_input(net);
    ck_assert_int_eq(nas_net_relu(net, 7), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(nas_net_errmsg(net), "does not exist"));
    nas_net_destroy(&net);

    ck_assert_int_eq(nas_net_create(&net, 3, 8, 8, err), NAS_OK);
    x = nas_net_input(net);
    a = nas_net_conv(net, "a", x, 4, 3, 3, 1, 1, 1, 1, 0);
    ck_assert_int_eq(nas_net_compile(net, a, 4, err), NAS_EINVAL);       /* not (K,1,1) */
    ck_assert_ptr_nonnull(strstr(err, "(K,1,1)"));
    ck_assert_int_eq(nas_net_maxpool(net, a, 9, 1, 0), NAS_EINVAL);      /* window too big */
    nas_net_destroy(&net);
    nas_net_destroy(&net); /* NULL is fine */
}
END_TEST

START_TEST(test_refnet_counts) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    int out;
    ck_assert_int_eq(nas_net_create(&net, 1, 28, 28, err), NAS_OK);
    ck_assert_int_eq(nas_refnet_build(net, "small", 10, &out, err), NAS_OK);
    // The counts PERF-ANCHORS.md derived by hand for the same network.
    ck_assert_int_eq((int)nas_net_macs(net), 112896 + 903168 + 903168 + 640);
    ck_assert_int_eq((int)nas_net_param_count(net), 144 + 32 + 4608 + 64 + 18432 + 128 + 650);
    nas_net_destroy(&net);

    ck_assert_int_eq(nas_net_create(&net, 1, 28, 28, err), NAS_OK);
    ck_assert_int_eq(nas_refnet_build(net, "resnet20", 10, &out, err), NAS_OK);
    ck_assert(llabs(nas_net_macs(net) - 31020000LL) < 20000);  /* 31.02 M */
    ck_assert(llabs(nas_net_param_count(net) - 272000LL) < 2000); /* 0.272 M */
    ck_assert_int_eq(nas_net_compile(net, out, 8, err), NAS_OK);
    ck_assert_int_eq(nas_net_classes(net), 10);
    ck_assert_ptr_nonnull(nas_net_param_find(net, "stage2/block1/proj/conv/weight"));
    ck_assert_ptr_nonnull(nas_net_param_find(net, "stage3/block3/b/bn/running_var"));
    ck_assert_ptr_null(nas_net_param_find(net, "stage1/block1/proj/conv/weight"));
    nas_net_destroy(&net);

    ck_assert_int_eq(nas_net_create(&net, 1, 28, 28, err), NAS_OK);
    ck_assert_int_eq(nas_refnet_build(net, "vgg", 10, &out, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "vgg"));
    nas_net_destroy(&net);
}
END_TEST

START_TEST(test_net_layout_and_determinism) {
    float out1[4 * 10], out2[4 * 10];
    nas_rng drng;
    nas_rng_init(&drng, 9, 9);
    float *x = malloc(sizeof(float) * 4 * 28 * 28);
    nas_fill_uniform(x, 4 * 28 * 28, 0, 1, &drng);
    for (int rep = 0; rep < 2; rep++) {
        nas_net *net = NULL;
        char err[NAS_ERR_LEN];
        int out;
        ck_assert_int_eq(nas_net_create(&net, 1, 28, 28, err), NAS_OK);
        ck_assert_int_eq(nas_refnet_build(net, "resnet20", 10, &out, err), NAS_OK);
        ck_assert_int_eq(nas_net_compile(net, out, 4, err), NAS_OK);
        ck_assert_int_eq(nas_net_compile(net, out, 4, err), NAS_ESTATE);
        nas_rng rng;
        nas_rng_init(&rng, 42, 0);
        nas_net_init_params(net, &rng);
        // Trainable tensors tile the prefix of the block, buffers follow.
        size_t n_tr, n_all, seen = 0;
        nas_net_params_data(net, &n_tr, &n_all);
        for (int i = 0; i < nas_net_param_n(net); i++) {
            const nas_param *p = nas_net_param(net, i);
            ck_assert(p->trainable ? p->offset + p->size <= n_tr : p->offset >= n_tr);
            ck_assert_int_eq(((uintptr_t)p->data) % 4 == 0, 1);
            seen += p->size;
        }
        ck_assert_uint_eq(seen, n_all);
        const float *y = nas_net_forward(net, x, 4, 0, NULL);
        memcpy(rep ? out2 : out1, y, sizeof out1);
        // Eval on a partial batch matches the first images of a full one. Not to the bit:
        // the GEMMs' column count changes with the batch, and some BLAS kernel sets
        // (OpenBLAS's Haswell ones) then sum in another order (6e-6 relative seen on
        // ResNet-20's logits); a wrong image or a stale buffer differs by far more.
        const float *y3 = nas_net_forward(net, x, 3, 0, NULL);
        ck_assert(nas_allclose(y3, rep ? out2 : out1, 30, 1e-4f, 1e-4f, "partial batch"));
        nas_net_destroy(&net);
    }
    ck_assert(memcmp(out1, out2, sizeof out1) == 0);
    free(x);
}
END_TEST

// Forward + backward of the zoo net at a thread count (unfused: every ReLU a pass of its own);
// returns logits and gradients.
static void zoo_step_fuse(int threads, int n, int fuse, float *logits, float **grads,
                          size_t *n_tr) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, 2, 7, 7, err), NAS_OK);
    int out = build_zoo(net);
    net->no_fusion = !fuse;
    ck_assert_int_eq(nas_net_compile(net, out, 7, err), NAS_OK);
    int fused_dw = 0, handed = 0, adds = 0, both = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const nas__node *nd = &net->nodes[i];
        fused_dw += nd->relu_node != 0;
        if (!nd->live || nd->op != NAS__OP_ADD) continue;
        int h = 0;
        for (int k = 0; k < 2; k++)
            h += net->nodes[nd->in[k]].grad_off == nd->grad_off;
        // Fused, every add but the add+ReLU hands its gradient buffer to an input, or to both
        // where neither has another reader; unfused, none does.
        ck_assert_int_eq(h > 0, fuse && !nd->fused);
        adds++, handed += h > 0, both += h == 2;
    }
    ck_assert_int_eq(fused_dw, fuse ? 2 : 0);
    ck_assert_int_eq(adds, 6);
    ck_assert_int_eq(handed, fuse ? 5 : 0);
    ck_assert_int_eq(both > 0, fuse);
    ck_assert_int_eq(nas_net_set_threads(net, threads, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 5, 0);
    nas_net_init_params(net, &rng);
    float x[7 * 2 * 7 * 7];
    uint8_t labels[7] = {0, 1, 2, 3, 4, 0, 1};
    nas_fill_uniform(x, NAS_ARRAY_LEN(x), -1, 1, &rng);
    nas_net_set_drop_path(net, 0.3f);
    memcpy(logits, nas_net_forward(net, x, n, 1, &rng), sizeof(float) * n * CLS);
    nas_net_loss(net, labels, n, 0.1f, NULL);
    nas_net_zero_grad(net);
    nas_net_backward(net);
    nas_net_params_data(net, n_tr, NULL);
    *grads = malloc(sizeof(float) * *n_tr);
    memcpy(*grads, nas_net_grads_data(net), sizeof(float) * *n_tr);
    // Eval on the same images after the step: BN's running statistics moved the same way.
    memcpy(logits + n * CLS, nas_net_forward(net, x, n, 0, NULL), sizeof(float) * n * CLS);
    nas_net_destroy(&net);
}

static void zoo_step_n(int threads, int n, float *logits, float **grads, size_t *n_tr) {
    zoo_step_fuse(threads, n, 1, logits, grads, n_tr);
}

static void zoo_step(int threads, float *logits, float **grads, size_t *n_tr) {
    zoo_step_n(threads, 7, logits, grads, n_tr);
}

START_TEST(test_net_threads) {
    float l1[14 * CLS], l2[14 * CLS], l3[14 * CLS], l2b[14 * CLS];
    float *g1, *g2, *g3, *g2b;
    size_t n;
    zoo_step(1, l1, &g1, &n);
    zoo_step(2, l2, &g2, &n);
    zoo_step(3, l3, &g3, &n);
    zoo_step(2, l2b, &g2b, &n);
    // Members own ranges of images for the whole pass; BN adds their partial sums, and conv
    // weight gradients their shadows, in member order, so thread counts differ by rounding.
    ck_assert(nas_allclose(l2, l1, NAS_ARRAY_LEN(l1), 1e-6f, 1e-5f, "2 threads logits"));
    ck_assert(nas_allclose(l3, l1, NAS_ARRAY_LEN(l1), 1e-6f, 1e-5f, "3 threads logits"));
    ck_assert(nas_allclose(g2, g1, n, 1e-6f, 1e-4f, "2 threads"));
    ck_assert(nas_allclose(g3, g1, n, 1e-6f, 1e-4f, "3 threads"));
    // A given thread count reproduces itself bit for bit.
    ck_assert(memcmp(l2, l2b, sizeof l2) == 0 && memcmp(g2, g2b, sizeof(float) * n) == 0);
    // Repeats at 3 and 4 threads: a missing barrier between members shows up as a wrong
    // gradient only now and then (a reused gradient buffer zeroed while still being read).
    for (int rep = 0; rep < 12; rep++) {
        float lr[14 * CLS], *gr;
        zoo_step(3 + rep % 2, lr, &gr, &n);
        ck_assert(nas_allclose(gr, g1, n, 1e-6f, 1e-4f, "repeat"));
        free(gr);
    }
    free(g1), free(g2), free(g3), free(g2b);
}
END_TEST

// The fused ReLUs (into BN, add and depthwise convs) compute the very bits of the unfused
// graph, forward and backward, at one thread and at two.
START_TEST(test_net_fusion_bitwise) {
    for (int threads = 1; threads <= 2; threads++) {
        float lf[14 * CLS], lu[14 * CLS];
        float *gf, *gu;
        size_t n;
        zoo_step_fuse(threads, 7, 1, lf, &gf, &n);
        zoo_step_fuse(threads, 7, 0, lu, &gu, &n);
        ck_assert_msg(memcmp(lf, lu, sizeof lf) == 0, "logits, %d threads", threads);
        ck_assert_msg(memcmp(gf, gu, sizeof(float) * n) == 0, "gradients, %d threads", threads);
        free(gf), free(gu);
    }
}
END_TEST

// Adds handing their gradient buffer over (net_compile.c, add_hands_over), both ways: t and u
// share theirs with both inputs (each read by that add only), s, whose inputs have other
// readers that run later, gives its buffer to a alone (b gets a copy); pa and pb then add into
// a's and b's.  A step, its gradients and a second step's logits match the unfused net bit for
// bit at 1 and 2 threads.
// Two SGD steps (learning rate 0.1) on five images: their logits, then gradients, one after
// the other; *n_gr trainable floats.
static void sgd_steps(nas_net *net, const float *xs, const uint8_t *labels, nas_rng *rng,
                      float *logits, float *grads, size_t *n_gr) {
    for (int step = 0; step < 2; step++) {
        memcpy(logits, nas_net_forward(net, xs, 5, 1, rng), sizeof(float) * 5 * CLS);
        nas_net_loss(net, labels, 5, 0.0f, NULL);
        nas_net_zero_grad(net);
        nas_net_backward(net);
        float *p = nas_net_params_data(net, n_gr, NULL);
        memcpy(grads + step * *n_gr, nas_net_grads_data(net), sizeof(float) * *n_gr);
        for (size_t i = 0; i < *n_gr; i++)
            p[i] -= 0.1f * grads[step * *n_gr + i];
        logits += 5 * CLS;
    }
}

static void handover_step(int threads, int fuse, float *logits, float *grads, size_t n_gr) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, 2, 6, 6, err), NAS_OK);
    int x = nas_net_input(net);
    int a = nas_net_conv(net, "a", x, 4, 3, 3, 1, 1, 1, 1, 0);
    int b = nas_net_conv(net, "b", x, 4, 1, 1, 1, 0, 1, 1, 0);
    int pa = nas_net_conv(net, "pa", a, 4, 1, 1, 1, 0, 1, 1, 0);
    int pb = nas_net_avgpool(net, b, 3, 1, 1);
    int s = nas_net_add(net, a, b);
    int c = nas_net_conv(net, "c", s, 4, 1, 1, 1, 0, 1, 1, 0);
    int t = nas_net_add(net, c, pa);
    int u = nas_net_add(net, t, pb);
    int out = nas_net_linear(net, "fc", nas_net_gap(net, u), CLS);
    net->no_fusion = !fuse;
    ck_assert_int_eq(nas_net_compile(net, out, 5, err), NAS_OK);
    const nas__node *nd = net->nodes;
    ck_assert_int_eq(nd[u].grad_off == nd[t].grad_off && nd[u].grad_off == nd[pb].grad_off, fuse);
    ck_assert_int_eq(nd[t].grad_off == nd[c].grad_off && nd[t].grad_off == nd[pa].grad_off, fuse);
    ck_assert_int_eq(nd[s].grad_off == nd[a].grad_off, fuse);
    ck_assert(nd[s].grad_off != nd[b].grad_off);
    ck_assert_int_eq(nas_net_set_threads(net, threads, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 9, 0);
    nas_net_init_params(net, &rng);
    float xs[5 * 2 * 6 * 6];
    uint8_t labels[5] = {0, 1, 2, 3, 4};
    nas_fill_uniform(xs, NAS_ARRAY_LEN(xs), -1, 1, &rng);
    size_t n;
    sgd_steps(net, xs, labels, &rng, logits, grads, &n);
    ck_assert_uint_eq(n, n_gr);
    nas_net_destroy(&net);
}

START_TEST(test_net_add_handover) {
    size_t n_gr = 4 * 2 * 9 + 4 * 2 + 2 * 4 * 4 + 4 * CLS + CLS; /* a, b, pa, c, fc */
    for (int threads = 1; threads <= 2; threads++) {
        float lf[2 * 5 * CLS], lu[2 * 5 * CLS];
        float *gf = malloc(sizeof(float) * 2 * n_gr), *gu = malloc(sizeof(float) * 2 * n_gr);
        handover_step(threads, 1, lf, gf, n_gr);
        handover_step(threads, 0, lu, gu, n_gr);
        ck_assert_msg(memcmp(lf, lu, sizeof lf) == 0, "logits, %d threads", threads);
        ck_assert_msg(memcmp(gf, gu, sizeof(float) * 2 * n_gr) == 0, "gradients, %d threads",
                      threads);
        free(gf), free(gu);
    }
}
END_TEST

// BNs applied by the add that reads them and adds summed by the add that reads them
// (net_compile.c, fuse_bn_add, fuse_add_add): a micro-net block (a pointwise conv's BN, plus a
// max-pool, plus an average pool: one pass), an add of two BNs, an add+ReLU
// of a BN, and a BN with a second reader, which keeps its output; then concat(x, u, x), whose
// backward stores the first part of x's gradient and adds the second, and into which the add u
// writes its output (fuse_add_cat), when cat (a whole-net finite-difference check on it is
// too noisy).  Returns the output; bns[5] is u.
static int build_bn_adds(nas_net *net, int *bns, int cat) {
    int x = nas_net_conv(net, "c0", nas_net_input(net), 4, 3, 3, 1, 1, 1, 1, 0);
    bns[0] = nas_net_bn(net, "bn1", nas_net_conv(net, "p", x, 4, 1, 1, 1, 0, 1, 1, 0));
    int s = nas_net_add(net, bns[0], nas_net_maxpool(net, x, 3, 1, 1));
    s = nas_net_add(net, s, nas_net_avgpool(net, x, 3, 1, 1));
    bns[1] = nas_net_bn(net, "bn2", nas_net_conv(net, "q", s, 4, 1, 1, 1, 0, 1, 1, 0));
    bns[2] = nas_net_bn(net, "bn3", nas_net_conv(net, "r", s, 4, 3, 3, 1, 1, 1, 4, 0));
    s = nas_net_add(net, bns[1], bns[2]);
    bns[3] = nas_net_bn(net, "bn4", nas_net_conv(net, "t", s, 4, 1, 1, 1, 0, 1, 1, 1));
    s = nas_net_relu(net, nas_net_add(net, s, bns[3])); /* add+ReLU */
    bns[4] = nas_net_bn(net, "bn5", nas_net_conv(net, "u", s, 4, 1, 1, 1, 0, 1, 1, 0));
    s = nas_net_add(net, nas_net_add(net, bns[4], s), nas_net_avgpool(net, bns[4], 3, 1, 1));
    if (cat) {
        int u =
            nas_net_add(net, nas_net_avgpool(net, s, 3, 1, 1), nas_net_avgpool(net, s, 5, 1, 2));
        int parts[3] = {s, u, s}; /* its backward copies into s's gradient, then adds */
        s = nas_net_concat(net, parts, 3);
        bns[5] = u;
    }
    return nas_net_linear(net, "fc", nas_net_gap(net, s), CLS);
}

// Two training steps of that net, then an inference forward: logits and gradients.
static void bn_add_step(int threads, int fuse, float *logits, float *grads, size_t *n_gr) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, 2, 7, 7, err), NAS_OK);
    int bns[6], out = build_bn_adds(net, bns, 1);
    net->no_fusion = !fuse;
    ck_assert_int_eq(nas_net_compile(net, out, 5, err), NAS_OK);
    for (int k = 0; k < 5; k++) { /* bn5 has two readers */
        int into = net->nodes[bns[k]].bn_into;
        ck_assert_int_eq(into != 0, fuse && k < 4);
        if (into) ck_assert(net->nodes[into].op == NAS__OP_ADD);
    }
    // Summed in their reader's pass: the block's add of the BN and the max-pool, and bn5's add.
    int inner = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const nas__node *nd = &net->nodes[i];
        if (nd->op != NAS__OP_ADD || !nd->add_into) continue;
        ck_assert(net->nodes[nd->add_into].in[net->nodes[nd->add_into].add_in - 1] == i);
        inner++;
    }
    ck_assert_int_eq(inner, fuse ? 2 : 0);
    ck_assert_int_eq(net->nodes[bns[5]].cat_into, fuse ? out - 2 : 0); /* concat, GAP, linear */
    for (int i = 0; i < net->n_nodes; i++) /* u alone: s has two places in the concat */
        ck_assert(net->nodes[i].cat_into == 0 || i == bns[5]);
    ck_assert_int_eq(nas_net_set_threads(net, threads, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 9, 0);
    nas_net_init_params(net, &rng);
    for (int i = 0; i < nas_net_param_n(net); i++) { /* BN shifts that matter */
        const nas_param *p = nas_net_param(net, i);
        if (p->trainable && p->ndim == 1) nas_fill_uniform(p->data, p->size, -0.5f, 0.5f, &rng);
    }
    float xs[5 * 2 * 7 * 7];
    uint8_t labels[5] = {0, 1, 2, 3, 4};
    nas_fill_uniform(xs, NAS_ARRAY_LEN(xs), -1, 1, &rng);
    sgd_steps(net, xs, labels, &rng, logits, grads, n_gr);
    memcpy(logits + 2 * 5 * CLS, nas_net_forward(net, xs, 5, 0, NULL), sizeof(float) * 5 * CLS);
    nas_net_destroy(&net);
}

START_TEST(test_net_bn_add) {
    for (int threads = 1; threads <= 2; threads++) {
        float lf[3 * 5 * CLS], lu[3 * 5 * CLS], gf[2 * 1024], gu[2 * 1024];
        size_t nf, nu;
        bn_add_step(threads, 1, lf, gf, &nf);
        bn_add_step(threads, 0, lu, gu, &nu);
        ck_assert(nf == nu && 2 * nf <= NAS_ARRAY_LEN(gf));
        ck_assert_msg(memcmp(lf, lu, sizeof lf) == 0, "logits, %d threads", threads);
        ck_assert_msg(memcmp(gf, gu, sizeof(float) * 2 * nf) == 0, "gradients, %d threads",
                      threads);
    }
    // Against finite differences, fused, without the concat (which changes only where the
    // forward's floats are written; its bits against no_fusion are checked above).
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    int bns[6];
    ck_assert_int_eq(nas_net_create(&net, 2, 7, 7, err), NAS_OK);
    check_gradients(net, build_bn_adds(net, bns, 0));
    ck_assert(net->nodes[bns[0]].bn_into != 0);
    nas_net_destroy(&net);
}
END_TEST

// The training forward runs in phases with one barrier each (net_run.c): BNs on parallel
// branches share a phase, a BN's output comes a phase after its sums, a serial op (the linear)
// gets a phase of its own after everything created before it, and drop-path works by image
// ranges like any other op (its masks are drawn before the pass).  (That the phases compute the bits of a
// given thread count, and the numbers of one thread, test_net_threads checks.)
START_TEST(test_net_forward_phases) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, 2, 6, 6, err), NAS_OK);
    int x = nas_net_input(net);
    int a = nas_net_bn(net, "a_bn", nas_net_conv(net, "a", x, 4, 3, 3, 1, 1, 1, 1, 0));
    int b = nas_net_bn(net, "b_bn", nas_net_conv(net, "b", x, 4, 1, 1, 1, 0, 1, 1, 0));
    int c = nas_net_bn(net, "c_bn", nas_net_add(net, a, b));
    int d = nas_net_drop_path(net, c);
    int e = nas_net_bn(net, "e_bn", nas_net_conv(net, "e", x, 4, 1, 1, 1, 0, 1, 1, 0));
    int out = nas_net_linear(net, "fc", nas_net_gap(net, nas_net_add(net, d, e)), CLS);
    ck_assert_int_eq(nas_net_compile(net, out, 4, err), NAS_OK);
    ck_assert_int_eq(nas_net_set_threads(net, 2, err), NAS_OK);
    const nas__node *nd = net->nodes;
    ck_assert_int_eq(nd[a].fwd_phase, 0);
    ck_assert_int_eq(nd[b].fwd_phase, 0); /* beside a: one barrier for both */
    ck_assert_int_eq(nd[c].fwd_phase, 1);
    ck_assert_int_eq(nd[d].fwd_phase, 2); /* c's output; its mask was drawn before the pass */
    ck_assert_int_eq(nd[e].fwd_phase, 0); /* beside a and b */
    ck_assert_int_eq(nd[out].fwd_phase, 3); /* alone, after everything before it */
    ck_assert_int_ne(nd[a].bn_off, nd[b].bn_off); /* their sums lie apart */
    nas_net_destroy(&net);
}
END_TEST

// The backward runs in phases too (net_run.c): a node comes after every step that writes its
// output gradient, a BN's input gradient a phase after its sums, so the BNs of parallel branches
// share a barrier; only the linear stays serial (drop-path's backward is per image).  On the net
// above: 6 barriers for 4 BNs, where one per BN plus the linear's pair and the last made 7.
START_TEST(test_net_backward_phases) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_net_create(&net, 2, 6, 6, err), NAS_OK);
    int x = nas_net_input(net);
    int ca = nas_net_conv(net, "a", x, 4, 3, 3, 1, 1, 1, 1, 0), a = nas_net_bn(net, "a_bn", ca);
    int b = nas_net_bn(net, "b_bn", nas_net_conv(net, "b", x, 4, 1, 1, 1, 0, 1, 1, 0));
    int sum = nas_net_add(net, a, b), c = nas_net_bn(net, "c_bn", sum);
    int d = nas_net_drop_path(net, c);
    int e = nas_net_bn(net, "e_bn", nas_net_conv(net, "e", x, 4, 1, 1, 1, 0, 1, 1, 0));
    int out = nas_net_linear(net, "fc", nas_net_gap(net, nas_net_add(net, d, e)), CLS);
    ck_assert_int_eq(nas_net_compile(net, out, 4, err), NAS_OK);
    const nas__node *nd = net->nodes;
    ck_assert_int_eq(nd[out].bwd_phase, 0); /* the linear, alone */
    ck_assert_int_eq(nd[d].bwd_phase, 1);   /* not serial in backward */
    ck_assert_int_eq(nd[c].bwd_phase, 1);
    ck_assert_int_eq(nd[e].bwd_phase, 1); /* beside c: one barrier for both sums */
    ck_assert_int_eq(nd[sum].bwd_phase, 2); /* after c's input gradient */
    ck_assert_int_eq(nd[a].bwd_phase, 2);
    ck_assert_int_eq(nd[b].bwd_phase, 2);
    ck_assert_int_eq(nd[ca].bwd_phase, 3);
    ck_assert_int_eq(net->bwd_last, 3);
    ck_assert_int_ne(nd[a].bn_off, nd[b].bn_off); /* their sums lie apart */
    // The gradient buffers follow this order: c's input gradient is written (by c, in phase 2)
    // before a's and b's sums read theirs, which the add writes first.
    ck_assert_int_eq(nd[sum].zero_at, c);
    ck_assert_int_eq(nd[a].zero_at, sum);
    nas_net_destroy(&net);
}
END_TEST

// A searched cell net (NASNet-A: parallel separable-conv branches, BN everywhere, pools,
// concatenations, drop-path) at 2-4 threads: close to one thread, and each thread count
// reproduces its own bits.  Cell nets have many more gradient buffers reused across phases than
// the zoo, which is where a missing barrier would show.
static float *cell_step(int threads, float *logits, size_t *n_tr) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    nas_fidelity f = {.channels = 4, .cells = 1, .drop_path = 0.2f};
    int out;
    ck_assert_int_eq(nas_net_create(&net, 1, 8, 8, err), NAS_OK);
    int rc = nas_builder_build_arch(net, "nasnet_a", &f, CLS, &out, NULL, NULL, err);
    ck_assert_int_eq(rc, NAS_OK);
    ck_assert_int_eq(nas_net_compile(net, out, 6, err), NAS_OK);
    ck_assert_int_eq(nas_net_set_threads(net, threads, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 9, 0);
    nas_net_init_params(net, &rng);
    float x[6 * 8 * 8];
    uint8_t labels[6] = {0, 1, 2, 3, 4, 0};
    nas_fill_uniform(x, NAS_ARRAY_LEN(x), -1, 1, &rng);
    nas_net_set_drop_path(net, 0.2f);
    memcpy(logits, nas_net_forward(net, x, 6, 1, &rng), sizeof(float) * 6 * CLS);
    nas_net_loss(net, labels, 6, 0.0f, NULL);
    nas_net_zero_grad(net);
    nas_net_backward(net);
    nas_net_params_data(net, n_tr, NULL);
    float *g = malloc(sizeof(float) * *n_tr);
    memcpy(g, nas_net_grads_data(net), sizeof(float) * *n_tr);
    nas_net_destroy(&net);
    return g;
}

START_TEST(test_net_cell_threads) {
    float l1[6 * CLS], l2[6 * CLS], lr[6 * CLS];
    size_t n;
    float *g1 = cell_step(1, l1, &n), *g2 = cell_step(2, l2, &n);
    ck_assert(nas_allclose(l2, l1, NAS_ARRAY_LEN(l1), 1e-6f, 1e-5f, "2 threads logits"));
    ck_assert(nas_allclose(g2, g1, n, 1e-5f, 1e-3f, "2 threads"));
    for (int rep = 0; rep < 6; rep++) {
        int t = 2 + rep % 3;
        float *gr = cell_step(t, lr, &n);
        ck_assert(nas_allclose(gr, g1, n, 1e-5f, 1e-3f, "repeat"));
        if (t == 2)
            ck_assert(memcmp(gr, g2, sizeof(float) * n) == 0 && memcmp(lr, l2, sizeof lr) == 0);
        free(gr);
    }
    free(g1), free(g2);
}
END_TEST

// Batches smaller than the pool: members with no images still take part in every barrier.
START_TEST(test_net_threads_small_batch) {
    for (int n = 1; n <= 2; n++) {
        float l1[14 * CLS], l3[14 * CLS];
        float *g1, *g3;
        size_t nt;
        zoo_step_n(1, n, l1, &g1, &nt);
        zoo_step_n(3, n, l3, &g3, &nt);
        ck_assert(nas_allclose(l3, l1, 2 * (size_t)n * CLS, 1e-6f, 1e-5f, "logits"));
        ck_assert(nas_allclose(g3, g1, nt, 1e-6f, 1e-4f, "gradients"));
        free(g1), free(g3);
    }
}
END_TEST

static nas_net *small_net(int classes, uint64_t seed) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    int out;
    ck_assert_int_eq(nas_net_create(&net, 1, 14, 14, err), NAS_OK);
    ck_assert_int_eq(nas_refnet_build(net, "small14", classes, &out, err), NAS_OK);
    ck_assert_int_eq(nas_net_compile(net, out, 2, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, seed, 0);
    nas_net_init_params(net, &rng);
    return net;
}

START_TEST(test_net_save_load) {
    const char *dir = nas_tmpdir_make();
    char path[4096], err[NAS_ERR_LEN];
    nas_path_join(path, sizeof path, dir, "w.safetensors");
    nas_net *a = small_net(10, 1), *b = small_net(10, 2), *c = small_net(5, 3);
    // Give the BN buffers non-default values so that they round-trip too.
    nas_net_param_find(a, "conv2/bn/running_var")->data[3] = 7.0f;
    ck_assert_int_eq(nas_net_save(a, path, "small14", err), NAS_OK);
    ck_assert_int_eq(nas_net_load(b, path, err), NAS_OK);
    size_t n_all;
    float *pa = nas_net_params_data(a, NULL, &n_all), *pb = nas_net_params_data(b, NULL, NULL);
    ck_assert(memcmp(pa, pb, sizeof(float) * n_all) == 0);
    // A different head does not fit: the error names the tensor and c keeps its weights.
    float keep = nas_net_param_find(c, "fc/weight")->data[0];
    ck_assert_int_eq(nas_net_load(c, path, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "fc/weight"));
    ck_assert_float_eq(nas_net_param_find(c, "fc/weight")->data[0], keep);
    nas_net *r = NULL;
    int out;
    ck_assert_int_eq(nas_net_create(&r, 1, 14, 14, err), NAS_OK);
    ck_assert_int_eq(nas_refnet_build(r, "resnet20", 10, &out, err), NAS_OK);
    ck_assert_int_eq(nas_net_compile(r, out, 2, err), NAS_OK);
    ck_assert_int_eq(nas_net_load(r, path, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "stem/conv/weight"));
    nas_path_join(path, sizeof path, dir, "absent.safetensors");
    ck_assert_int_lt(nas_net_load(r, path, err), 0);
    nas_net_destroy(&a), nas_net_destroy(&b), nas_net_destroy(&c), nas_net_destroy(&r);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_net_out_of_memory) {
    // Fail every allocation in turn: each attempt ends in NAS_OK or NAS_ENOMEM and frees
    // everything (LeakSanitizer checks at exit).
    int saw_enomem = 0, ok = 0;
    for (long k = 1; k < 400 && !ok; k++) {
        nas_net *net = NULL;
        char err[NAS_ERR_LEN] = "";
        int out = -1;
        nas_alloc_fail_after(k);
        int rc = nas_net_create(&net, 2, 7, 7, err);
        if (rc == NAS_OK) {
            out = build_zoo(net);
            rc = out < 0 ? out : nas_net_compile(net, out, 3, err);
            if (rc == NAS_OK) rc = nas_net_set_threads(net, 2, err);
        }
        nas_alloc_fail_reset();
        ck_assert_msg(rc == NAS_OK || rc == NAS_ENOMEM, "k=%ld rc=%d %s", k, rc, err);
        saw_enomem |= rc == NAS_ENOMEM;
        ok = rc == NAS_OK;
        nas_net_destroy(&net);
    }
    ck_assert(saw_enomem && ok);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_net_gradients);
    tcase_add_test(tc, test_net_builder_errors);
    tcase_add_test(tc, test_refnet_counts);
    tcase_add_test(tc, test_net_layout_and_determinism);
    tcase_add_test(tc, test_net_save_load);
    tcase_add_test(tc, test_net_threads);
    tcase_add_test(tc, test_net_threads_small_batch);
    tcase_add_test(tc, test_net_forward_phases);
    tcase_add_test(tc, test_net_backward_phases);
    tcase_add_test(tc, test_net_cell_threads);
    tcase_add_test(tc, test_net_fusion_bitwise);
    tcase_add_test(tc, test_net_add_handover);
    tcase_add_test(tc, test_net_bn_add);
    tcase_add_test(tc, test_net_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
