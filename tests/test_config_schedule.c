/*
 * test_config_schedule.c - the `schedule` and `early_stop` keys of a
 * campaign file: rungs laid over `fidelity` wherever it is in the file, the
 * fields a rung may not change, growing epochs, the scheduler's own limits,
 * early_stop's values, and the identity hash (unchanged for files without
 * these keys; changed by them).
 */
#include "master/config.h"

#include "common/err.h"
#include "tests/harness.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int parse(const char *text, nas_config *cfg, char *err) {
    return nas_config_parse(text, strlen(text), "s.yaml", cfg, err);
}

START_TEST(test_config_schedule_rungs_over_fidelity) {
    /* `fidelity` comes after the schedule: rungs still take its values. */
    static const char *yaml = "schedule:\n"
                              "  kind: asha\n"
                              "  eta: 4\n"
                              "  rungs:\n"
                              "    - {epochs: 1}\n"
                              "    - {epochs: 3, lr: 0.05}\n"
                              "    - epochs: 9\n"
                              "      train_subset: 0\n"
                              "early_stop:\n"
                              "  rule: extrapolate\n"
                              "  delta: 0.1\n"
                              "fidelity:\n"
                              "  batch: 64\n"
                              "  train_subset: 2000\n";
    nas_config c;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(parse(yaml, &c, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(c.schedule.kind, NAS_CONFIG_SCHEDULE_ASHA);
    ck_assert_int_eq(c.schedule.eta, 4);
    ck_assert_int_eq(c.schedule.n_rungs, 3);
    static const int epochs[] = {1, 3, 9}, subset[] = {2000, 2000, 0};
    for (int k = 0; k < 3; k++) {
        const nas_fidelity *f = &c.schedule.rungs[k];
        ck_assert_int_eq(f->epochs, epochs[k]);
        ck_assert_int_eq(f->batch, 64);
        ck_assert_int_eq(f->train_subset, subset[k]);
        ck_assert_int_eq(f->channels, c.fidelity.channels);
        ck_assert_int_eq(f->val_size, c.fidelity.val_size);
    }
    ck_assert_float_eq_tol(c.schedule.rungs[1].lr, 0.05f, 1e-7f);
    ck_assert_float_eq(c.schedule.rungs[2].lr, c.fidelity.lr);
    ck_assert_int_eq(c.early_stop.rule, NAS_CONFIG_STOP_EXTRAPOLATE);
    ck_assert_double_eq(c.early_stop.delta, 0.1);
    ck_assert_int_eq(c.early_stop.min_epochs, 2);
    ck_assert_ptr_nonnull(strstr(c.canonical, "schedule.kind: asha\n"));
    ck_assert_ptr_nonnull(strstr(c.canonical, "schedule.rungs[2].epochs: 9\n"));
    ck_assert_ptr_nonnull(strstr(c.canonical, "schedule.rungs[0].batch: 64\n"));
    ck_assert_ptr_nonnull(strstr(c.canonical, "early_stop.rule: extrapolate\n"));
    nas_config_fini(&c);
}
END_TEST

/* A file without the new keys keeps its canonical text (and so the hash
 * every existing store holds); with them the hash changes. */
START_TEST(test_config_schedule_identity) {
    nas_config a, b;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(parse("fidelity:\n  epochs: 2\n", &a, err), NAS_OK);
    ck_assert_ptr_null(strstr(a.canonical, "schedule"));
    ck_assert_ptr_null(strstr(a.canonical, "early_stop"));
    ck_assert_int_eq(parse("fidelity:\n  epochs: 2\nearly_stop: {rule: median}\n", &b, err),
                     NAS_OK);
    ck_assert_ptr_nonnull(strstr(b.canonical, "early_stop.rule: median\n"));
    ck_assert(a.hash != b.hash);
    nas_config_fini(&a);
    nas_config_fini(&b);
    /* Spelling out the defaults of an explicit "none" is still no schedule. */
    ck_assert_int_eq(parse("fidelity:\n  epochs: 2\nearly_stop: {rule: none}\n", &b, err),
                     NAS_OK);
    ck_assert_ptr_null(strstr(b.canonical, "early_stop"));
    nas_config_fini(&b);
    /* fidelity_check joins the identity only when set. */
    const char *sched = "fidelity:\n  epochs: 1\nschedule: {kind: asha, rungs: [{epochs: 1}, "
                        "{epochs: 3}]}\n";
    char text[256];
    ck_assert_int_eq(parse(sched, &a, err), NAS_OK);
    ck_assert_ptr_null(strstr(a.canonical, "fidelity_check"));
    snprintf(text, sizeof text, "%sfidelity_check: {samples: 4}\n", sched);
    ck_assert_int_eq(parse(text, &b, err), NAS_OK);
    ck_assert_ptr_nonnull(strstr(b.canonical, "fidelity_check.samples: 4\n"));
    ck_assert_int_eq(b.fidelity_check.samples, 4);
    ck_assert(a.hash != b.hash);
    nas_config_fini(&a);
    nas_config_fini(&b);
}
END_TEST

static const struct {
    const char *yaml;
    const char *message;
} bad[] = {
    {"schedule:\n  kind: asha\n  rungs:\n    - {epochs: 1}\n    - {epochs: 3, channels: 16}\n",
     "s.yaml:5: schedule.rungs[1].channels: may not differ from fidelity.channels"},
    {"schedule:\n  kind: sha\n  rungs:\n    - {epochs: 1}\n    - {epochs: 2, resolution: 0}\n",
     "s.yaml:5: schedule.rungs[1].resolution: may not differ from fidelity.resolution"},
    {"schedule:\n  kind: sha\n  rungs:\n    - {epochs: 3}\n    - {epochs: 3}\n",
     "s.yaml:5: schedule.rungs[1].epochs: must be above rung 0's (3), got 3"},
    {"schedule:\n  kind: asha\n  rungs:\n    - {epochs: 1}\n    - {val_size: 10}\n",
     "schedule.rungs[1].val_size: may not differ"},
    {"schedule:\n  kind: asha\n  rungs:\n    - {epochs: 1}\n    - {epoch: 3}\n",
     "s.yaml:5: schedule.rungs[1].epoch: unknown key; did you mean 'epochs'?"},
    {"schedule:\n  kind: asha\n  rungs:\n    - {epochs: 1}\n",
     "s.yaml:2: schedule.rungs: needs at least two rungs (cheapest first), got 1"},
    {"schedule:\n  eta: 3\n  rungs:\n    - {epochs: 1}\n    - {epochs: 2}\n",
     "s.yaml:1: schedule.kind: is required with other schedule keys"},
    {"schedule:\n  kind: asha\n  rungs: {epochs: 1}\n",
     "s.yaml:3: schedule.rungs: expected a list of fidelity mappings"},
    {"schedule:\n  kind: asha\n  rungs: [3, 4]\n", "schedule.rungs[0]: expected a mapping"},
    {"schedule:\n  kind: asha\n  eta: 1\n", "s.yaml:3: schedule.eta: must be >= 2, got 1"},
    {"schedule:\n  kind: asap\n", "s.yaml:2: schedule.kind: 'asap' is not allowed"},
    {"schedule:\n  kind: hyperband\n  eta: 10\n  rungs: [{epochs: 1}, {epochs: 2}, {epochs: 3}, "
     "{epochs: 4}, {epochs: 5}, {epochs: 6}, {epochs: 7}, {epochs: 8}]\n",
     "s.yaml:2: schedule: schedule: eta^(rungs-1) = 10^7 is above 1000000"},
    {"early_stop:\n  rule: median\n  delta: 2\n", "s.yaml:3: early_stop.delta: must be <= 1"},
    {"early_stop:\n  rule: mean\n", "s.yaml:2: early_stop.rule: 'mean' is not allowed"},
    {"fidelity_check:\n  samples: 3\n",
     "s.yaml:2: fidelity_check.samples: needs a schedule: its samples train at the top rung"},
    {"schedule:\n  kind: asha\n  rungs: [{epochs: 1}, {epochs: 3}]\nfidelity_check:\n"
     "  samples: -1\n",
     "s.yaml:5: fidelity_check.samples: must be >= 0"},
};

START_TEST(test_config_schedule_errors) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nas_config c;
        char err[NAS_ERR_LEN] = "";
        ck_assert_msg(parse(bad[i].yaml, &c, err) == NAS_ECONFIG, "accepted: %s", bad[i].yaml);
        ck_assert_msg(strstr(err, bad[i].message), "file %zu:\n%s\ngave: %s\nwant: %s", i,
                      bad[i].yaml, err, bad[i].message);
    }
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("config_schedule");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_config_schedule_rungs_over_fidelity);
    tcase_add_test(tc, test_config_schedule_identity);
    tcase_add_test(tc, test_config_schedule_errors);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
