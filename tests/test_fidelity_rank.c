/*
 * test_fidelity_rank.c - rank correlation between a campaign's fidelities
 * read from a real store file (master/fidelity_rank.h), and the nasctl
 * commands that show it and a task's learning curve (`nasctl fidelity`,
 * `nasctl curve`), text and JSON, with their errors.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "master/fidelity_rank.h"
#include "master/status.h"
#include "master/store.h"
#include "tests/harness.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_db[PATH_MAX];
static const char *g_dir;

/* Eight architectures at a 1-epoch search fidelity, the first six again
 * at 3 epochs (a second rung), and the first six at a 9-epoch final. */
static const double acc1[] = {0.50, 0.60, 0.55, 0.70, 0.65, 0.40, 0.30, 0.45};
static const double acc3[] = {0.62, 0.70, 0.66, 0.80, 0.71, 0.50};
static const double acc9[] = {0.80, 0.85, 0.70, 0.90, 0.88, 0.75};
static const double test9[] = {0.79, 0.84, 0.71, 0.89, 0.86, 0.74};

static int64_t add_done(nas_store *st, int arch, int stage, int epochs, uint64_t seed, double acc,
                        double test, const float *curve, int n_curve, int64_t now) {
    char err[NAS_ERR_LEN] = "", text[32];
    snprintf(text, sizeof text, "arch%d", arch);
    nas_store_new_task t = {.arch_hash = 100 + (uint64_t)arch,
                            .arch_text = text,
                            .params = 1000,
                            .macs = 10000,
                            .stage = stage,
                            .fidelity = nas_fidelity_default()};
    t.fidelity.epochs = epochs;
    t.fidelity.seed = seed;
    int64_t id;
    ck_assert_msg(nas_store_task_add(st, &t, NULL, 0, now, &id, err) == NAS_OK, "%s", err);
    if (acc < 0) return id; /* left queued */
    ck_assert_msg(nas_store_task_lease(st, id, 1, "w1", "h1", "", now + 99999, now, err) == NAS_OK,
                  "%s", err);
    nas_store_result r = {.accuracy = acc,
                          .loss = 0.3,
                          .test_accuracy = test,
                          .curve = curve,
                          .n_curve = n_curve,
                          .params = 1000,
                          .macs = 10000,
                          .seconds = 1,
                          .worker = "w1"};
    ck_assert_int_ge(nas_store_put_result(st, id, 1, &r, NULL, 0, now + 1, err), 0);
    return id;
}

/* The campaign above; `reverse` turns the final ranking upside down. */
static void make_db(int reverse) {
    g_dir = nas_tmpdir_make();
    nas_path_join(g_db, sizeof g_db, g_dir, "c.db");
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, g_db, err), NAS_OK);
    nas_store_campaign c = {
        .name = "fid", .text = "name: fid\n", .canonical = "name: fid\n", .hash = 9, .seed = 1};
    ck_assert_int_eq(nas_store_campaign_bind(st, &c, 1000, NULL, err), NAS_OK);
    static const float curve[] = {0.25f, 0.5f, 0.625f};
    int64_t now = 2000;
    for (int i = 0; i < 8; i++) /* seeds differ per task: still one fidelity */
        add_done(st, i, NAS_STORE_STAGE_SEARCH, 1, 1 + (uint64_t)i, acc1[i], NAN, curve, 1,
                 now += 10);
    for (int i = 0; i < 6; i++)
        add_done(st, i, NAS_STORE_STAGE_SEARCH, 3, 7, acc3[i], NAN, curve, 3, now += 10);
    for (int i = 0; i < 6; i++)
        add_done(st, i, NAS_STORE_STAGE_FINAL, 9, 7, reverse ? 1 - acc9[i] : acc9[i],
                 reverse ? 1 - test9[i] : test9[i], curve, 3, now += 10);
    add_done(st, 7, NAS_STORE_STAGE_FINAL, 9, 7, -1, NAN, NULL, 0, now += 10); /* queued */
    nas_store_close(&st);
}

static void obs_of(const double *v, int n, nas_rank_obs *o) {
    for (int i = 0; i < n; i++)
        o[i] = (nas_rank_obs){100 + (uint64_t)i, v[i]};
}

START_TEST(test_fidelity_rank_groups_and_pairs) {
    make_db(0);
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, g_db, err), NAS_OK);
    nas_fidelity_ranks fr;
    ck_assert_msg(nas_fidelity_ranks_read(st, &fr, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(fr.n_groups, 3);
    ck_assert_int_eq(fr.groups[0].stage, NAS_STORE_STAGE_SEARCH);
    ck_assert_int_eq(fr.groups[0].fidelity.epochs, 1);
    ck_assert_int_eq(fr.groups[0].n, 8);
    ck_assert_int_eq(fr.groups[1].fidelity.epochs, 3);
    ck_assert_int_eq(fr.groups[1].n, 6);
    ck_assert_int_eq(fr.groups[2].stage, NAS_STORE_STAGE_FINAL);
    ck_assert_int_eq(fr.groups[2].n, 6); /* the queued one has no result */
    /* Adjacent rungs 0 -> 1, then each search fidelity against the final. */
    ck_assert_int_eq(fr.n_pairs, 3);
    static const int from[] = {0, 0, 1}, to[] = {1, 2, 2};
    nas_rank_obs o1[8], o3[6], o9[6], t9[6];
    obs_of(acc1, 8, o1), obs_of(acc3, 6, o3), obs_of(acc9, 6, o9), obs_of(test9, 6, t9);
    const nas_rank_obs *lo[] = {o1, o1, o3}, *hi[] = {o3, o9, o9};
    const int nlo[] = {8, 8, 6};
    for (int i = 0; i < 3; i++) {
        const nas_fidelity_pair *p = &fr.pairs[i];
        ck_assert_int_eq(p->from, from[i]);
        ck_assert_int_eq(p->to, to[i]);
        nas_rank_report want;
        ck_assert_int_eq(nas_rank_compare(lo[i], nlo[i], hi[i], 6, &want), NAS_OK);
        ck_assert_int_eq(p->val.n, 6);
        ck_assert_double_eq_tol(p->val.rho, want.rho, 1e-12);
        ck_assert_double_eq_tol(p->val.tau, want.tau, 1e-12);
        if (to[i] == 2) {
            ck_assert_int_eq(nas_rank_compare(lo[i], nlo[i], t9, 6, &want), NAS_OK);
            ck_assert_int_eq(p->test.n, 6);
            ck_assert_double_eq_tol(p->test.rho, want.rho, 1e-12);
        } else {
            ck_assert_int_eq(p->test.n, 0); /* no test accuracy at a search rung */
        }
    }
    /* Hand check of one: 1 epoch vs 3 epochs over archs 0..5 orders
     * 5 0 2 1 4 3 against 5 0 2 1 4 3: identical rankings. */
    ck_assert_double_eq_tol(fr.pairs[0].val.rho, 1.0, 1e-12);
    ck_assert_int_eq(fr.pairs[0].val.weak, 0);
    nas_fidelity_ranks_fini(&fr);
    nas_store_close(&st);
    nas_tmpdir_rm(g_dir);
}
END_TEST

START_TEST(test_fidelity_rank_empty_store) {
    g_dir = nas_tmpdir_make();
    nas_path_join(g_db, sizeof g_db, g_dir, "e.db");
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, g_db, err), NAS_OK);
    nas_fidelity_ranks fr;
    ck_assert_int_eq(nas_fidelity_ranks_read(st, &fr, err), NAS_OK);
    ck_assert_int_eq(fr.n_groups, 0);
    ck_assert_int_eq(fr.n_pairs, 0);
    nas_fidelity_ranks_fini(&fr);
    nas_store_close(&st);
    nas_tmpdir_rm(g_dir);
}
END_TEST

// ---- nasctl -------------------------------------------------------------------------------------

static int ctl(const char *fmt, const char *arg, char *out, size_t cap) {
    char args[PATH_MAX + 128], cmd[PATH_MAX + 4096];
    snprintf(args, sizeof args, fmt, arg);
    snprintf(cmd, sizeof cmd, "%s %s", nas_bin("nasctl"), args);
    return nas_run_cmd(cmd, out, cap);
}

START_TEST(test_fidelity_rank_nasctl_fidelity) {
    make_db(0);
    char out[16384];
    ck_assert_int_eq(ctl("fidelity --db %s", g_db, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "[0] -> [1] validation") && strstr(out, "+1.000"), "%s", out);
    ck_assert_msg(strstr(out, "[1] -> [2] test"), "%s", out);
    ck_assert_msg(strstr(out, "3 epochs") && strstr(out, "no warning"), "%s", out);
    ck_assert_int_eq(ctl("fidelity --db %s --json", g_db, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"pairs\":[{\"from\":0,\"to\":1,\"validation\":{\"n\":6,"
                              "\"spearman\":1,"),
                  "%s", out);
    ck_assert_msg(strstr(out, "\"threshold\":0.59999") && strstr(out, "\"min_n\":5"), "%s", out);
    nas_tmpdir_rm(g_dir);
    /* The final stage ranks the other way round: warned, by name. */
    make_db(1);
    ck_assert_int_eq(ctl("fidelity --db %s", g_db, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "warning: fidelity [0] ranks architectures poorly against [2]"), "%s",
                  out);
    ck_assert_msg(!strstr(out, "fidelity [0] ranks architectures poorly against [1]"), "%s", out);
    ck_assert_int_eq(ctl("fidelity --db %s --json", g_db, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"weak\":true"), "%s", out);
    nas_tmpdir_rm(g_dir);
}
END_TEST

START_TEST(test_fidelity_rank_nasctl_curve) {
    make_db(0);
    char out[16384];
    /* Task 9 is the first 3-epoch search task (8 one-epoch tasks before it). */
    ck_assert_int_eq(ctl("curve 9 --db %s", g_db, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "task 9 (search, done; 3 epochs"), "%s", out);
    ck_assert_msg(strstr(out, "    1  0.2500\n    2  0.5000\n    3  0.6250\n"), "%s", out);
    ck_assert_msg(strstr(out, "final validation accuracy 0.6200"), "%s", out);
    ck_assert_int_eq(ctl("curve 9 --db %s --json", g_db, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"task\":9,\"stage\":\"search\",\"state\":\"done\",\"text\":"
                              "\"arch0\",\"epochs\":3,\"curve\":[0.25,0.5,0.625]"),
                  "%s", out);
    /* A final task shows its test accuracy. */
    ck_assert_int_eq(ctl("curve 15 --db %s", g_db, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "test accuracy 0.7900"), "%s", out);
    /* The queued task (21) has no curve yet, and says why. */
    ck_assert_int_eq(ctl("curve 21 --db %s", g_db, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "queued") && strstr(out, "no curve yet"), "%s", out);
    ck_assert_int_eq(ctl("curve 21 --db %s --json", g_db, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"curve\":[],\"accuracy\":null"), "%s", out);
    /* Errors: unknown task, no task, a task that is not a number, no --db. */
    ck_assert_int_eq(ctl("curve 99 --db %s", g_db, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "has no task 99"), "%s", out);
    ck_assert_int_eq(ctl("curve --db %s", g_db, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "TASK id"), "%s", out);
    ck_assert_int_eq(ctl("curve x7 --db %s", g_db, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "got 'x7'"), "%s", out);
    ck_assert_int_eq(ctl("curve 9%s", "", out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--db FILE is required"), "%s", out);
    ck_assert_int_eq(ctl("fidelity --db %s --bogus", g_db, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "'--bogus'"), "%s", out);
    ck_assert_int_eq(ctl("fidelity --db %s/none.db", g_dir, out, sizeof out), 1);
    nas_tmpdir_rm(g_dir);
}
END_TEST

/* The status document carries the epochs spent and the figures, and its
 * rendering warns about the reversed final ranking, not the good rungs. */
START_TEST(test_fidelity_rank_in_status) {
    make_db(1);
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, g_db, err), NAS_OK);
    char *doc = nas_status_from_store(st, 5000, err);
    ck_assert_msg(doc != NULL, "%s", err);
    nas_store_close(&st);
    /* 8 one-epoch curves and 6 three-epoch ones; no budget known here. */
    ck_assert_msg(strstr(doc, "\"resources\":{\"epochs\":26,\"epochs_budget\":null"), "%s", doc);
    ck_assert_ptr_nonnull(strstr(doc, "\"fidelity_ranks\":{\"threshold\":"));
    char path[PATH_MAX];
    nas_path_join(path, sizeof path, g_dir, "status.txt");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(nas_status_print(doc, f, err), NAS_OK);
    fclose(f);
    nas_free(doc);
    size_t n = 0;
    char *text = nas_read_file(path, &n);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "resources     26 epochs trained"), "%s", text);
    ck_assert_msg(strstr(text, "fidelity rank 1 epoch"), "%s", text);
    ck_assert_msg(strstr(text, "3 epochs, 14 px") || strstr(text, "3 epochs"), "%s", text);
    /* Rungs agree (rho > 0.6); both search fidelities rank the final
     * stage backwards: two warnings. */
    int warnings = 0;
    for (const char *p = text; (p = strstr(p, "ranks poorly")); p++)
        warnings++;
    ck_assert_int_eq(warnings, 2);
    free(text);
    nas_tmpdir_rm(g_dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("fidelity_rank");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fidelity_rank_groups_and_pairs);
    tcase_add_test(tc, test_fidelity_rank_empty_store);
    tcase_add_test(tc, test_fidelity_rank_nasctl_fidelity);
    tcase_add_test(tc, test_fidelity_rank_nasctl_curve);
    tcase_add_test(tc, test_fidelity_rank_in_status);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
