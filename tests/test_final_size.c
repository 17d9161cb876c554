/*
 * test_final_size.c - the final stage's size targets (master/final_size.h):
 * the chosen F and N fit the target, land within one channel of it, and an
 * impossible target is refused by name.
 */
#include <string.h>

#include "common/err.h"
#include "common/genome.h"
#include "master/final_size.h"
#include "tests/harness.h"

static nas_fidelity base(int cells) {
    nas_fidelity f = nas_fidelity_default();
    f.resolution = 0;
    f.channels = 16;
    f.cells = cells;
    return f;
}

static nas_cost cost_at(const nas_genome *g, nas_fidelity f, int F, int N) {
    nas_cost c;
    char err[NAS_ERR_LEN];
    f.channels = F;
    f.cells = N;
    ck_assert_msg(nas_genome_cost(g, &f, 1, 28, 10, &c, err) == NAS_OK, "%s", err);
    return c;
}

/* For each preset and target: within the target, the largest F at the configured N (F + 1
 * exceeds it), and so within a few per cent of it for targets this size. */
START_TEST(test_final_size_params) {
    static const char *const presets[] = {"nasnet_a", "amoebanet_a", "pnasnet5"};
    static const int64_t targets[] = {100000, 1000000};
    char err[NAS_ERR_LEN];
    for (size_t p = 0; p < NAS_ARRAY_LEN(presets); p++) {
        nas_genome g;
        ck_assert_int_eq(nas_genome_preset(presets[p], &g, err), NAS_OK);
        for (size_t t = 0; t < NAS_ARRAY_LEN(targets); t++) {
            nas_fidelity b = base(2), out;
            nas_cost c;
            int rc = nas_final_fit_size(&g, &b, 1, 28, 10, targets[t], 0, &out, &c, err);
            ck_assert_msg(rc == NAS_OK, "%s: %s", presets[p], err);
            ck_assert_int_eq(out.cells, 2);
            ck_assert_int_le(c.params, targets[t]);
            nas_cost again = cost_at(&g, b, out.channels, out.cells);
            ck_assert_int_eq(again.params, c.params); /* the reported cost is the chosen one's */
            ck_assert_int_gt(cost_at(&g, b, out.channels + 1, 2).params, targets[t]);
            ck_assert_msg(c.params >= targets[t] * 75 / 100, "%s: %lld of %lld", presets[p],
                          (long long)c.params, (long long)targets[t]);
            /* Everything else of the fidelity is kept. */
            out.channels = b.channels;
            ck_assert_mem_eq(&out, &b, sizeof out);
        }
    }
}
END_TEST

START_TEST(test_final_size_macs_and_both) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_preset("nasnet_a", &g, err), NAS_OK);
    nas_fidelity b = base(2), out;
    nas_cost c;
    ck_assert_int_eq(nas_final_fit_size(&g, &b, 1, 28, 10, 0, 20000000, &out, &c, err), NAS_OK);
    ck_assert_int_le(c.macs, 20000000);
    ck_assert_int_gt(cost_at(&g, b, out.channels + 1, 2).macs, 20000000);
    /* Both targets: the tighter one decides, and both hold. */
    nas_cost c2;
    ck_assert_int_eq(nas_final_fit_size(&g, &b, 1, 28, 10, 50000, 20000000, &out, &c2, err),
                     NAS_OK);
    ck_assert_int_le(c2.params, 50000);
    ck_assert_int_le(c2.macs, 20000000);
    nas_cost next = cost_at(&g, b, out.channels + 1, 2);
    ck_assert(next.params > 50000 || next.macs > 20000000);
    /* No target: the fidelity as configured. */
    ck_assert_int_eq(nas_final_fit_size(&g, &b, 1, 28, 10, 0, 0, &out, &c, err), NAS_OK);
    ck_assert_mem_eq(&out, &b, sizeof out);
    ck_assert_int_eq(c.params, cost_at(&g, b, 16, 2).params);
}
END_TEST

/* Fewer cells only when even one channel is too wide; nothing at all is refused. */
START_TEST(test_final_size_shrinks_cells_then_refuses) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_preset("nasnet_a", &g, err), NAS_OK);
    nas_fidelity b = base(6), out;
    nas_cost at6 = cost_at(&g, b, 1, 6), at0 = cost_at(&g, b, 1, 0);
    ck_assert_int_lt(at0.params, at6.params);
    int64_t target = (at0.params + at6.params) / 2;
    nas_cost c;
    ck_assert_int_eq(nas_final_fit_size(&g, &b, 1, 28, 10, target, 0, &out, &c, err), NAS_OK);
    ck_assert_int_lt(out.cells, 6);
    ck_assert_int_le(c.params, target);
    ck_assert_int_eq(nas_final_fit_size(&g, &b, 1, 28, 10, at0.params - 1, 0, &out, &c, err),
                     NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "no size fits the target"));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("final_size");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_final_size_params);
    tcase_add_test(tc, test_final_size_macs_and_both);
    tcase_add_test(tc, test_final_size_shrinks_cells_then_refuses);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
