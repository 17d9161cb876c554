/*
 * test_inherit.c - weight inheritance by path and shape (common/inherit.h):
 * a mutated child gets exactly its parent's matching tensors bit for bit,
 * keeps fresh weights where the mutation changed a shape, and bad input is
 * refused by name.
 */
#include "tests/harness.h"
#include "tests/weights_fixtures.h"

#include <stdio.h>
#include <string.h>

START_TEST(test_inherit_child_gets_matching_tensors_bit_for_bit) {
    nas_net *parent = fix_net(FIX_PARENT, 1);
    fix_scramble(parent, 9); /* "trained": values no initialiser makes */
    nas_net *child = fix_net(FIX_CHILD, 5);
    nas_net *fresh = fix_net(FIX_CHILD, 5); /* what the child would be without a parent */
    char err[NAS_ERR_LEN] = "";
    nas_safetensors_tensor *t = NULL;
    const void *base = NULL;
    int n = nas_inherit_collect(parent, &t, &base, err);
    ck_assert_int_eq(n, nas_net_param_n(parent));
    nas_inherit_stats st;
    int got = nas_inherit_apply(child, t, (size_t)n, &st, err);
    ck_assert_int_eq(got, st.matched);
    ck_assert_int_gt(st.matched, 10);
    ck_assert_int_gt(st.shape_mismatch, 0); /* the sep5x5 -> sep3x3 depthwise kernels */
    ck_assert_int_eq(st.matched + st.shape_mismatch + st.missing, st.child_tensors);
    int inherited = 0, kept_fresh = 0;
    for (int i = 0; i < nas_net_param_n(child); i++) {
        const nas_param *c = nas_net_param(child, i);
        const nas_param *p = nas_net_param_find(parent, c->name);
        int same_shape = p && p->ndim == c->ndim &&
                         memcmp(p->shape, c->shape, sizeof(int) * (size_t)c->ndim) == 0;
        if (same_shape) {
            ck_assert_msg(fix_same(child, parent, c->name), "%s not inherited", c->name);
            inherited++;
        } else {
            ck_assert_msg(fix_same(child, fresh, c->name), "%s not fresh", c->name);
            ck_assert_ptr_nonnull(strstr(c->name, "block1/a/"));
            kept_fresh++;
        }
    }
    ck_assert_int_eq(inherited, st.matched);
    ck_assert_int_eq(kept_fresh, st.shape_mismatch + st.missing);
    char line[160];
    nas_inherit_describe(&st, line, sizeof line);
    ck_assert_ptr_nonnull(strstr(line, "inherited"));
    nas_free(t);
    nas_net_destroy(&parent);
    nas_net_destroy(&child);
    nas_net_destroy(&fresh);
}
END_TEST

/* A different architecture shares the stem and the head but not the cell. */
START_TEST(test_inherit_unrelated_architecture_counts_unused) {
    nas_net *parent = fix_net(FIX_OTHER, 1);
    nas_net *child = fix_net(FIX_CHILD, 2);
    char err[NAS_ERR_LEN] = "";
    nas_safetensors_tensor *t = NULL;
    int n = nas_inherit_collect(parent, &t, NULL, err);
    nas_inherit_stats st;
    int got = nas_inherit_apply(child, t, (size_t)n, &st, err);
    ck_assert_int_ge(got, 1);
    ck_assert_msg(fix_same(child, parent, "stem/conv/weight"), "stem not inherited");
    ck_assert_int_gt(st.unused, 0);
    ck_assert_int_gt(st.missing, 0);
    nas_free(t);
    nas_net_destroy(&parent);
    nas_net_destroy(&child);
}
END_TEST

/* The collected tensors are the parameter block itself, back to back. */
START_TEST(test_inherit_collect_is_the_parameter_block) {
    nas_net *net = fix_net(FIX_PARENT, 3);
    char err[NAS_ERR_LEN] = "";
    nas_safetensors_tensor *t = NULL;
    const void *base = NULL;
    int n = nas_inherit_collect(net, &t, &base, err);
    size_t n_tr = 0, n_total = 0;
    float *block = nas_net_params_data(net, &n_tr, &n_total);
    ck_assert_ptr_eq(base, block);
    const float *at = block;
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_eq(t[i].data, at);
        at += nas_safetensors_numel(&t[i]);
    }
    ck_assert_ptr_eq(at, block + n_total);
    nas_free(t);
    nas_net_destroy(&net);
}
END_TEST

START_TEST(test_inherit_refuses_bad_input_by_name) {
    char err[NAS_ERR_LEN] = "";
    nas_net *raw = NULL;
    ck_assert_int_eq(nas_net_create(&raw, 1, 14, 14, err), NAS_OK);
    nas_safetensors_tensor one = {.name = "x", .ndim = 1, .shape = {1}, .data = NULL};
    ck_assert_int_eq(nas_inherit_apply(raw, &one, 1, NULL, err), NAS_ESTATE);
    ck_assert_ptr_nonnull(strstr(err, "not compiled"));
    nas_safetensors_tensor *t = NULL;
    ck_assert_int_eq(nas_inherit_collect(raw, &t, NULL, err), NAS_ESTATE);
    nas_net_destroy(&raw);

    nas_net *net = fix_net(FIX_PARENT, 1);
    const nas_param *p = nas_net_param_find(net, "stem/conv/weight");
    ck_assert_ptr_nonnull(p);
    nas_safetensors_tensor bad = {.name = p->name, .ndim = p->ndim, .data = NULL};
    for (int d = 0; d < p->ndim; d++)
        bad.shape[d] = p->shape[d];
    ck_assert_int_eq(nas_inherit_apply(net, &bad, 1, NULL, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "stem/conv/weight"));
    nas_safetensors_tensor twice[2] = {bad, bad};
    twice[0].data = twice[1].data = p->data;
    ck_assert_int_eq(nas_inherit_apply(net, twice, 2, NULL, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "twice"));
    nas_safetensors_tensor noname = {.name = NULL};
    ck_assert_int_eq(nas_inherit_apply(net, &noname, 1, NULL, err), NAS_EINVAL);
    nas_net_destroy(&net);
}
END_TEST

/* Source data may sit at any byte offset inside a received frame. */
START_TEST(test_inherit_reads_unaligned_sources) {
    nas_net *net = fix_net(FIX_PARENT, 1);
    const nas_param *p = nas_net_param_find(net, "stem/conv/weight");
    size_t bytes = p->size * sizeof(float);
    uint8_t *buf = nas_malloc(bytes + 1);
    for (size_t i = 0; i < bytes; i++)
        buf[i + 1] = (uint8_t)(i * 7 + 3);
    nas_safetensors_tensor t = {.name = p->name, .ndim = p->ndim};
    for (int d = 0; d < p->ndim; d++)
        t.shape[d] = p->shape[d];
    t.data = (const float *)(const void *)(buf + 1);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_inherit_apply(net, &t, 1, NULL, err), 1);
    ck_assert_int_eq(memcmp(p->data, buf + 1, bytes), 0);
    nas_free(buf);
    nas_net_destroy(&net);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("inherit");
    TCase *tc = tcase_create("inherit");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_inherit_child_gets_matching_tensors_bit_for_bit);
    tcase_add_test(tc, test_inherit_unrelated_architecture_counts_unused);
    tcase_add_test(tc, test_inherit_collect_is_the_parameter_block);
    tcase_add_test(tc, test_inherit_refuses_bad_input_by_name);
    tcase_add_test(tc, test_inherit_reads_unaligned_sources);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
