/*
 * test_worker_evaluate.c - the worker's evaluator without the network:
 * tabular lookups (exact and canonical, percent tables, unknown
 * architectures), synthetic determinism and cancellation, and the
 * training mode's refusals naming what is missing.
 */
#include "common/err.h"
#include "common/genome.h"
#include "tests/e2e_util.h"
#include "tests/harness.h"
#include "worker/evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Two NB201 strings for the same network: node 1 feeds nothing, so the
 * edge into it is dead and the canonical form sets it to none. */
#define NB_A "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
#define NB_B "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"

static nas_wire_task task_of(int mode, const char *genome) {
    nas_wire_task t;
    memset(&t, 0, sizeof t);
    t.task_id = 5;
    t.attempt = 2;
    snprintf(t.genome, sizeof t.genome, "%s", genome);
    t.fidelity = nas_fidelity_default();
    t.mode = mode;
    return t;
}

static nas_evaluator *make_tabular(const char *dir, const char *csv, double scale, char *err) {
    char path[4096];
    nas_path_join(path, sizeof path, dir, "t.csv");
    ck_assert_int_eq(nas_write_file(path, csv, strlen(csv), 0), 0);
    nas_evaluator_config c;
    nas_evaluator_config_default(&c);
    c.table_path = path;
    c.acc_scale = scale;
    nas_evaluator *ev = NULL;
    if (nas_evaluator_create(&ev, &c, err) < 0) return NULL;
    return ev;
}

START_TEST(test_worker_evaluate_tabular_canonical_lookup) {
    nas_genome a, b;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_genome_parse(NB_A, strlen(NB_A), &a, err), NAS_OK);
    ck_assert_int_eq(nas_genome_parse(NB_B, strlen(NB_B), &b, err), NAS_OK);
    ck_assert(nas_genome_equivalent(&a, &b)); /* premise of the test */
    const char *dir = nas_tmpdir_make();
    nas_evaluator *ev =
        make_tabular(dir, "arch,val_acc,val_loss,test_acc\n" NB_A ",91.5,0.3,90\n", 0.01, err);
    ck_assert_msg(ev != NULL, "%s", err);
    nas_wire_task t = task_of(NAS_EVAL_TABULAR, NB_B);
    t.fidelity.test = 1;
    nas_wire_result r;
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_OK);
    ck_assert_double_eq_tol(r.val_acc, 0.915, 1e-12);
    ck_assert_double_eq_tol(r.val_loss, 0.3, 1e-12);
    ck_assert_int_eq(r.has_test, 1);
    ck_assert_double_eq_tol(r.test_acc, 0.9, 1e-12);
    ck_assert_uint_eq(r.task_id, 5);
    ck_assert_uint_eq(r.attempt, 2);
    t = task_of(NAS_EVAL_TABULAR, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|");
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "not in the table"));
    nas_evaluator_destroy(&ev);
    ck_assert_ptr_null(ev);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_worker_evaluate_tabular_refusals) {
    const char *dir = nas_tmpdir_make();
    char err[NAS_ERR_LEN] = "";
    /* Percent values without a scale are refused when looked up. */
    nas_evaluator *ev = make_tabular(dir, "arch,val_acc\nx,91.5\ny,abc\n", 1.0, err);
    ck_assert_ptr_nonnull(ev);
    nas_wire_task t = task_of(NAS_EVAL_TABULAR, "x");
    nas_wire_result r;
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "acc_scale"));
    t = task_of(NAS_EVAL_TABULAR, "y");
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "t.csv:3"));
    nas_evaluator_destroy(&ev);
    /* A table without the accuracy column is refused at start. */
    ck_assert_ptr_null(make_tabular(dir, "arch,acc\nx,0.5\n", 1.0, err));
    ck_assert_ptr_nonnull(strstr(err, "val_acc"));
    /* No table at all: a tabular task fails saying how to fix it. */
    nas_evaluator_config c;
    nas_evaluator_config_default(&c);
    ck_assert_int_eq(nas_evaluator_create(&ev, &c, err), NAS_OK);
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err, "--table"));
    nas_evaluator_destroy(&ev);
    nas_tmpdir_rm(dir);
}
END_TEST

typedef struct counter {
    int progress;
    int cancel_after;
} counter;

static void count_progress(void *ctx, const nas_wire_progress *p) {
    ((counter *)ctx)->progress++;
}
static int cancel_when(void *ctx) {
    counter *c = ctx;
    return c->cancel_after > 0 && c->progress >= c->cancel_after;
}

START_TEST(test_worker_evaluate_synthetic_is_deterministic_and_cancellable) {
    nas_evaluator_config c;
    nas_evaluator_config_default(&c);
    c.synthetic_epoch_ms = 2;
    nas_evaluator *ev = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_evaluator_create(&ev, &c, err), NAS_OK);
    nas_wire_task t = task_of(NAS_EVAL_SYNTHETIC, "n=sep3x3:0+id:1 r=max3x3:0+id:1");
    t.fidelity.epochs = 4;
    counter k = {0, 0};
    nas_eval_hooks h = {&k, count_progress, cancel_when, NULL};
    nas_wire_result r1, r2;
    ck_assert_int_eq(nas_evaluator_run(ev, &t, &h, &r1, err), NAS_OK);
    ck_assert_int_eq(k.progress, 4);
    ck_assert_int_eq(r1.n_curve, 4);
    ck_assert(r1.curve[0] < r1.curve[3]);
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r2, err), NAS_OK);
    ck_assert_double_eq(r1.val_acc, r2.val_acc);
    ck_assert_int_eq(r1.params, r2.params);
    /* Another genome, other numbers. */
    nas_wire_task u = task_of(NAS_EVAL_SYNTHETIC, "n=sep5x5:0+id:1 r=max3x3:0+id:1");
    u.fidelity.epochs = 4;
    ck_assert_int_eq(nas_evaluator_run(ev, &u, NULL, &r2, err), NAS_OK);
    ck_assert(r1.val_acc != r2.val_acc);
    k = (counter){0, 2};
    ck_assert_int_eq(nas_evaluator_run(ev, &t, &h, &r1, err), NAS_ECANCELED);
    ck_assert_int_eq(k.progress, 2);
    nas_evaluator_destroy(&ev);
}
END_TEST

START_TEST(test_worker_evaluate_train_refusals_name_the_problem) {
    nas_evaluator_config c;
    nas_evaluator_config_default(&c);
    nas_evaluator *ev = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_evaluator_create(&ev, &c, err), NAS_OK);
    nas_wire_result r;
    nas_wire_task t = task_of(NAS_EVAL_TRAIN, "n=sep3x3:0+nope:1");
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_EGENOME);
    ck_assert_ptr_nonnull(strstr(err, "nope"));
    t = task_of(NAS_EVAL_TRAIN, "n=sep3x3:0+id:1 r=max3x3:0+id:1");
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "data set"));
    t = task_of(NAS_EVAL_TRAIN, "small");
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "data set"));
    strcpy(t.dataset, "mnist");
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--data-dir"));
    const char *dir = nas_tmpdir_make();
    snprintf(t.data_dir, sizeof t.data_dir, "%s", dir);
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, dir));
    nas_tmpdir_rm(dir);
    nas_evaluator_destroy(&ev);
}
END_TEST

/* An evaluator reading data from dir, and a one-epoch small14 training
 * task on its "mnist" files. */
static nas_evaluator *make_trainer(const char *dir, nas_wire_task *t) {
    nas_evaluator_config c;
    nas_evaluator_config_default(&c);
    c.data_dir = dir;
    nas_evaluator *ev = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_evaluator_create(&ev, &c, err) == NAS_OK, "%s", err);
    *t = task_of(NAS_EVAL_TRAIN, "small14");
    strcpy(t->dataset, "mnist");
    t->fidelity.epochs = 1, t->fidelity.batch = 16, t->fidelity.val_size = 20;
    t->fidelity.train_subset = 0;
    return ev;
}

START_TEST(test_worker_evaluate_train_reads_data_files_once) {
    const char *dir = nas_tmpdir_make();
    e2e_write_bar_idx(dir, "train", 120);
    e2e_write_bar_idx(dir, "t10k", 30);
    nas_wire_task t;
    nas_evaluator *ev = make_trainer(dir, &t);
    char err[NAS_ERR_LEN];
    nas_wire_result r;
    ck_assert_msg(nas_evaluator_run(ev, &t, NULL, &r, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(r.has_test, 0);
    /* The training files are gone, yet another recipe (a subset, and the
     * test split, read now) is prepared from the copy in memory. */
    char path[4096];
    unlink(nas_path_join(path, sizeof path, dir, "train-images-idx3-ubyte"));
    unlink(nas_path_join(path, sizeof path, dir, "train-labels-idx1-ubyte"));
    t.fidelity.train_subset = 50;
    t.fidelity.test = 1;
    ck_assert_msg(nas_evaluator_run(ev, &t, NULL, &r, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(r.has_test, 1);
    ck_assert(r.test_acc >= 0 && r.test_acc <= 1);
    nas_evaluator_destroy(&ev);
    /* A fresh evaluator has to read the files, and says which is missing. */
    ev = make_trainer(dir, &t);
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "train-"));
    nas_evaluator_destroy(&ev);
    nas_tmpdir_rm(dir);
}
END_TEST

/* A net larger than the memory the worker may take fails its task with
 * the figures (the architecture's failure, counted), and the worker, whose
 * environment is sound, stays: at a batch that fits, the same net trains. */
START_TEST(test_worker_evaluate_train_net_too_large_fails_the_task) {
    const char *dir = nas_tmpdir_make();
    e2e_write_bar_idx(dir, "train", 120);
    nas_wire_task t;
    nas_evaluator *ev = make_trainer(dir, &t);
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(setenv("NAS_MEM_LIMIT", "64M", 1), 0);
    t.fidelity.batch = 8192;
    nas_wire_result r;
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_ERANGE);
    ck_assert_msg(strstr(err, "needs") && strstr(err, "64.0 MB") && strstr(err, "NAS_MEM_LIMIT"),
                  "%s", err);
    ck_assert_int_eq(nas_evaluator_env_failure(ev), 0);
    t.fidelity.batch = 16;
    ck_assert_msg(nas_evaluator_run(ev, &t, NULL, &r, err) == NAS_OK, "%s", err);
    /* A limit that is not a size is the worker's own error: it names the
     * variable, and every task would fail the same way. */
    ck_assert_int_eq(setenv("NAS_MEM_LIMIT", "lots", 1), 0);
    ck_assert_int_eq(nas_evaluator_run(ev, &t, NULL, &r, err), NAS_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "NAS_MEM_LIMIT"));
    ck_assert_int_eq(nas_evaluator_env_failure(ev), 1);
    unsetenv("NAS_MEM_LIMIT");
    nas_evaluator_destroy(&ev);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("worker_evaluate");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_worker_evaluate_tabular_canonical_lookup);
    tcase_add_test(tc, test_worker_evaluate_tabular_refusals);
    tcase_add_test(tc, test_worker_evaluate_synthetic_is_deterministic_and_cancellable);
    tcase_add_test(tc, test_worker_evaluate_train_refusals_name_the_problem);
    tcase_add_test(tc, test_worker_evaluate_train_reads_data_files_once);
    tcase_add_test(tc, test_worker_evaluate_train_net_too_large_fails_the_task);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
