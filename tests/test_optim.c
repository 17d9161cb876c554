/*
 * test_optim.c - SGD update rule (plain, momentum, Nesterov, decoupled
 * weight decay, clipping) against hand-computed values, the learning-rate
 * schedule's shape, and convergence on a quadratic.
 */
#include <math.h>

#include "common/optim.h"
#include "tests/harness.h"

START_TEST(test_sgd_rules) {
    // Two steps by hand: p = 1, g = 0.5, mu = 0.9, lr = 0.1.
    float p = 1.0f, g = 0.5f, v = 0.0f;
    nas_sgd_config c = {.momentum = 0.9f};
    nas_sgd_step(&p, &g, &v, 1, 0.1f, &c);
    ck_assert_float_eq_tol(p, 1.0f - 0.05f, 1e-7f);           /* v = 0.5 */
    nas_sgd_step(&p, &g, &v, 1, 0.1f, &c);
    ck_assert_float_eq_tol(v, 0.95f, 1e-7f);                  /* v = 0.9*0.5 + 0.5 */
    ck_assert_float_eq_tol(p, 0.95f - 0.095f, 1e-7f);
    // Nesterov: first step moves by lr * (g + mu * v) = 0.1 * (0.5 + 0.45).
    p = 1.0f, v = 0.0f, c.nesterov = 1;
    nas_sgd_step(&p, &g, &v, 1, 0.1f, &c);
    ck_assert_float_eq_tol(p, 1.0f - 0.095f, 1e-7f);
    // Decoupled weight decay with a zero gradient shrinks p by lr * wd only.
    float z = 0.0f;
    p = 2.0f, v = 0.0f;
    nas_sgd_config d = {.weight_decay = 0.5f};
    nas_sgd_step(&p, &z, &v, 1, 0.1f, &d);
    ck_assert_float_eq_tol(p, 2.0f * 0.95f, 1e-7f);
    // Clipping rescales the whole vector to the clip norm: (3,4) has norm 5.
    float pp[2] = {0, 0}, gg[2] = {3, 4}, vv[2] = {0, 0};
    nas_sgd_config cl = {.grad_clip = 1.0f};
    double norm = nas_sgd_step(pp, gg, vv, 2, 1.0f, &cl);
    ck_assert_double_eq_tol(norm, 5.0, 1e-9);
    ck_assert_float_eq_tol(pp[0], -0.6f, 1e-6f);
    ck_assert_float_eq_tol(pp[1], -0.8f, 1e-6f);
    // A non-finite gradient is reported and leaves parameters alone.
    gg[0] = NAN;
    ck_assert(!isfinite(nas_sgd_step(pp, gg, vv, 2, 1.0f, &cl)));
    ck_assert_float_eq_tol(pp[0], -0.6f, 1e-6f);
}
END_TEST

START_TEST(test_lr_schedule) {
    ck_assert_float_eq_tol(nas_lr_cosine(0.1f, 0, 100, 10), 0.01f, 1e-7f);
    ck_assert_float_eq_tol(nas_lr_cosine(0.1f, 9, 100, 10), 0.1f, 1e-7f);
    ck_assert_float_eq_tol(nas_lr_cosine(0.1f, 10, 100, 10), 0.1f, 1e-7f);
    ck_assert_float_eq_tol(nas_lr_cosine(0.1f, 55, 100, 10), 0.05f, 1e-6f);
    ck_assert_float_eq_tol(nas_lr_cosine(0.1f, 100, 100, 10), 0.0f, 1e-7f);
    float prev = 1.0f;
    for (long s = 10; s < 100; s++) {
        float lr = nas_lr_cosine(0.1f, s, 100, 10);
        ck_assert(lr <= prev);
        prev = lr;
    }
    ck_assert_float_eq_tol(nas_lr_cosine(0.1f, 0, 100, 0), 0.1f, 1e-7f);
}
END_TEST

START_TEST(test_sgd_converges) {
    // Minimise sum((p - t)^2 * k_i) with badly conditioned curvature.
    float p[4] = {5, -3, 2, 0}, t[4] = {1, 2, -1, 0.5f}, k[4] = {1, 10, 0.5f, 4}, v[4] = {0};
    for (int nest = 0; nest < 2; nest++) {
        nas_sgd_config c = {.momentum = 0.9f, .nesterov = nest, .grad_clip = 10.0f};
        for (int it = 0; it < 400; it++) {
            float g[4];
            for (int i = 0; i < 4; i++) g[i] = 2 * k[i] * (p[i] - t[i]);
            nas_sgd_step(p, g, v, 4, 0.02f, &c);
        }
        for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(p[i], t[i], 1e-3f);
    }
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_sgd_rules);
    tcase_add_test(tc, test_lr_schedule);
    tcase_add_test(tc, test_sgd_converges);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
