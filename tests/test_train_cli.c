/*
 * test_train_cli.c - the nas-train binary end to end on a tiny generated
 * IDX data set: it trains, reports JSON, is deterministic, and rejects bad
 * usage and missing data with a message and a non-zero status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/blas.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/json.h"
#include "common/sgemm.h"
#include "tests/e2e_util.h"
#include "tests/harness.h"

static char OUT[65536];

static int train(const char *dir, const char *extra) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "{ OPENBLAS_NUM_THREADS=1 %s --data mnist --data-dir %s --epochs 6 --batch 16 --lr 0.2 "
             "--train-subset 0 --val-size 60 --json %s 2>/dev/null; }",
             nas_bin("nas-train"), dir, extra);
    return nas_run_cmd(cmd, OUT, sizeof OUT);
}

START_TEST(test_train_cli_trains) {
    const char *dir = nas_tmpdir_make();
    e2e_write_noisy_idx(dir, "train", 400, 1);
    e2e_write_noisy_idx(dir, "t10k", 60, 2);
    ck_assert_int_eq(train(dir, "--test --seed 5"), 0);
    nas_json *j = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_json_parse(OUT, strlen(OUT), 16, &j, err) == 0, "%s: %s", err, OUT);
    double val_acc, test_acc, params, macs;
    ck_assert_int_eq(nas_json_get_number(j, "val_acc", &val_acc, err), 0);
    ck_assert_int_eq(nas_json_get_number(j, "test_acc", &test_acc, err), 0);
    ck_assert_int_eq(nas_json_get_number(j, "params", &params, err), 0);
    ck_assert_int_eq(nas_json_get_number(j, "macs", &macs, err), 0);
    ck_assert_msg(val_acc > 0.8, "val_acc %g", val_acc);
    ck_assert(test_acc > 0.7);
    ck_assert_double_eq(params, 24058);
    ck_assert_double_eq(macs, 1919872);
    const nas_json *curve = nas_json_get(j, "loss_curve");
    ck_assert_ptr_nonnull(nas_json_at(curve, 5));
    nas_json_free(&j);
    // The same seed reproduces the output apart from timings.
    char first[65536];
    memcpy(first, OUT, sizeof first);
    ck_assert_int_eq(train(dir, "--test --seed 5"), 0);
    char *a = strstr(first, "\"seconds\""), *b = strstr(OUT, "\"seconds\"");
    ck_assert(a && b && a - first == b - OUT);
    ck_assert(strncmp(first, OUT, (size_t)(a - first)) == 0);
    // Saved weights reload: one epoch at learning rate 0 starts from the trained accuracy.
    char extra[4200], wpath[4096];
    nas_path_join(wpath, sizeof wpath, dir, "w.safetensors");
    snprintf(extra, sizeof extra, "--seed 5 --save-weights %s", wpath);
    ck_assert_int_eq(train(dir, extra), 0);
    snprintf(extra, sizeof extra, "--seed 6 --epochs 1 --lr 0 --load-weights %s", wpath);
    ck_assert_int_eq(train(dir, extra), 0);
    ck_assert_msg(nas_json_parse(OUT, strlen(OUT), 16, &j, err) == 0, "%s: %s", err, OUT);
    ck_assert_int_eq(nas_json_get_number(j, "val_acc", &val_acc, err), 0);
    ck_assert_msg(val_acc > 0.8, "reloaded val_acc %g", val_acc);
    nas_json_free(&j);
    nas_tmpdir_rm(dir);
}
END_TEST

/* A genome preset trains through the builder, and the params and MACs the
 * built network reports equal the genome's counted cost (issue: counting
 * without building must match what is built). */
START_TEST(test_train_cli_trains_genome_preset_with_counted_cost) {
    const char *dir = nas_tmpdir_make();
    e2e_write_noisy_idx(dir, "train", 120, 1);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "{ OPENBLAS_NUM_THREADS=1 %s --data mnist --data-dir %s --arch pnasnet5 --epochs 1 "
             "--batch 16 --train-subset 0 --val-size 40 --resolution 14 --channels 4 --cells 1 "
             "--json 2>/dev/null; }",
             nas_bin("nas-train"), dir);
    ck_assert_int_eq(nas_run_cmd(cmd, OUT, sizeof OUT), 0);
    nas_json *j = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_json_parse(OUT, strlen(OUT), 16, &j, err) == 0, "%s: %s", err, OUT);
    double params, macs, val_acc;
    ck_assert_int_eq(nas_json_get_number(j, "params", &params, err), 0);
    ck_assert_int_eq(nas_json_get_number(j, "macs", &macs, err), 0);
    ck_assert_int_eq(nas_json_get_number(j, "val_acc", &val_acc, err), 0);
    nas_json_free(&j);

    nas_genome g;
    ck_assert_int_eq(nas_genome_preset("pnasnet5", &g, err), 0);
    nas_fidelity f = nas_fidelity_default();
    f.resolution = 14, f.channels = 4, f.cells = 1;
    nas_cost cost;
    ck_assert_msg(nas_genome_cost(&g, &f, 1, 14, 10, &cost, err) == 0, "%s", err);
    ck_assert_double_eq(params, (double)cost.params);
    ck_assert_double_eq(macs, (double)cost.macs);
    ck_assert(val_acc >= 0.0 && val_acc <= 1.0);

    /* Genome text works too; a malformed one is refused with its position. */
    snprintf(cmd, sizeof cmd,
             "%s --data mnist --data-dir %s --arch 'n=sep3x3:1+bogus:0 r=id:0+id:1' --val-size 40",
             nas_bin("nas-train"), dir);
    ck_assert_int_eq(nas_run_cmd(cmd, OUT, sizeof OUT), 1);
    ck_assert_msg(strstr(OUT, "bogus") != NULL, "%s", OUT);
    nas_tmpdir_rm(dir);
}
END_TEST

/* One short run of nas-train under `env` (variables to set first, the
 * engine's own and the test hooks cleared); its exit status, its output in
 * OUT with stderr after stdout when `with_stderr`. */
static int blas_cmd(const char *dir, const char *env, int with_stderr) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "{ env -u OPENBLAS_CORETYPE -u " NAS_BLAS_ENGINE_ENV " -u " NAS_BLAS_TEST_MISDETECT_ENV
             " -u " NAS_BLAS_TEST_BREAK_ENV " %s OPENBLAS_NUM_THREADS=1 %s --data mnist "
             "--data-dir %s --epochs 1 --batch 16 --train-subset 0 --val-size 20 --json %s; }",
             env, nas_bin("nas-train"), dir, with_stderr ? "2>&1" : "2>/dev/null");
    return nas_run_cmd(cmd, OUT, sizeof OUT);
}

/* blas_cmd() that must succeed; the "blas" object of its --json output:
 * kernels and chosen_by, 64 bytes each. */
static void blas_run(const char *dir, const char *env, char *kernels, char *by) {
    ck_assert_int_eq(blas_cmd(dir, env, 0), 0);
    nas_json *j = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_json_parse(OUT, strlen(OUT), 16, &j, err) == 0, "%s: %s", err, OUT);
    const nas_json *k = nas_json_get(nas_json_get(j, "blas"), "kernels");
    const nas_json *b = nas_json_get(nas_json_get(j, "blas"), "chosen_by");
    ck_assert_msg(k && k->type == NAS_JSON_STRING && b && b->type == NAS_JSON_STRING,
                  "no blas.kernels or blas.chosen_by in %s", OUT);
    snprintf(kernels, 64, "%s", k->str);
    snprintf(by, 64, "%s", b->str);
    nas_json_free(&j);
}

/* A CPU that OpenBLAS mis-detects runs on the kernels it supports.  The
 * mis-detection is simulated, the same on any machine: OPENBLAS_CORETYPE=
 * Prescott makes OpenBLAS really load its generic SSE3 kernels (what
 * Debian's 0.3.21 picks on an Emerald Rapids Xeon it does not know), and
 * NAS_TEST_BLAS_MISDETECT=1 marks that choice as the library's own rather
 * than a user's.  nas-train must restart itself with kernels as strong as
 * this CPU's ISA level; the same variable without the mark is a user's
 * choice and is kept. */
START_TEST(test_train_cli_corrects_misdetected_blas) {
    const char *dir = nas_tmpdir_make();
    e2e_write_noisy_idx(dir, "train", 60, 1);
    nas_cpu_info cpu;
    nas_cpu_detect(&cpu);
    char kernels[64], by[64];
    const char *misdetected = "OPENBLAS_CORETYPE=Prescott " NAS_BLAS_TEST_MISDETECT_ENV "=1";
    blas_run(dir, misdetected, kernels, by);
    if (cpu.level >= NAS_ISA_AVX) {
        ck_assert_msg(nas_blas_kernels_level(kernels) == cpu.level,
                      "a %s CPU runs OpenBLAS's %s kernels", nas_isa_name(cpu.level), kernels);
        ck_assert_str_eq(by, "engine");
    } else {
        ck_assert_str_eq(kernels, "Prescott"); /* nothing better exists on this CPU */
    }
    blas_run(dir, "OPENBLAS_CORETYPE=Prescott", kernels, by);
    ck_assert_str_eq(kernels, "Prescott");
    ck_assert_str_eq(by, "environment");
    /* Kept generic kernels leave every product to the engine's own, and --json says so. */
    char gemm[64];
    snprintf(gemm, sizeof gemm, "\"gemm\":\"own %s\"",
             nas_sgemm_path_name(nas_sgemm_best(&cpu)));
    if (cpu.level >= NAS_ISA_AVX2) ck_assert_msg(strstr(OUT, gemm), "no %s in %s", gemm, OUT);
    nas_tmpdir_rm(dir);
}
END_TEST

/* Kernels that fail the self-check are never trusted.  A wrong GEMM is
 * injected into the real start-up check while OpenBLAS runs the kernel set
 * NAS_TEST_BLAS_BREAK names: nas-train restarts on the next weaker set and
 * says so, and refuses to train when no weaker set is left. */
START_TEST(test_train_cli_blas_selfcheck_falls_back) {
    const char *dir = nas_tmpdir_make();
    e2e_write_noisy_idx(dir, "train", 60, 1);
    nas_cpu_info cpu;
    nas_cpu_detect(&cpu);
    if (cpu.level >= NAS_ISA_AVX2) { /* Haswell's kernels need AVX2 + FMA */
        char kernels[64], by[64];
        blas_run(dir, "OPENBLAS_CORETYPE=Haswell " NAS_BLAS_TEST_BREAK_ENV "=Haswell", kernels, by);
        ck_assert_str_eq(kernels, "Sandybridge");
        ck_assert_str_eq(by, "engine");
        ck_assert_int_eq(blas_cmd(dir, "OPENBLAS_CORETYPE=Haswell " NAS_BLAS_TEST_BREAK_ENV
                                       "=Haswell", 1), 0);
        ck_assert_msg(strstr(OUT, "Haswell kernels failed the self-check") &&
                          strstr(OUT, "restarting on its weaker kernels Sandybridge"),
                      "%s", OUT);
    }
    // Our own GEMM kernels failing the check leave every product to OpenBLAS.
    ck_assert_int_eq(blas_cmd(dir, "OPENBLAS_CORETYPE=Prescott " NAS_BLAS_TEST_BREAK_ENV "=own", 1),
                     0);
    ck_assert_msg(strstr(OUT, "own") && strstr(OUT, "GEMM kernels failed the self-check") &&
                      strstr(OUT, "\"b_untransposed\":false") &&
                      strstr(OUT, "\"b_transposed\":false"),
                  "%s", OUT);
    ck_assert_int_eq(blas_cmd(dir, "OPENBLAS_CORETYPE=Prescott " NAS_BLAS_TEST_BREAK_ENV
                                   "=Prescott", 1), 1);
    ck_assert_msg(strstr(OUT, "computes wrong results with its Prescott kernels") &&
                      strstr(OUT, "no safer kernel set is left") && !strstr(OUT, "\"blas\""),
                  "%s", OUT);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_train_cli_errors) {
    const char *dir = nas_tmpdir_make();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s --help", nas_bin("nas-train"));
    ck_assert_int_eq(nas_run_cmd(cmd, OUT, sizeof OUT), 0);
    ck_assert_ptr_nonnull(strstr(OUT, "--arch"));
    snprintf(cmd, sizeof cmd, "%s --epochs zero", nas_bin("nas-train"));
    ck_assert_int_eq(nas_run_cmd(cmd, OUT, sizeof OUT), 2);
    ck_assert_ptr_nonnull(strstr(OUT, "--epochs"));
    snprintf(cmd, sizeof cmd, "%s --frobnicate", nas_bin("nas-train"));
    ck_assert_int_eq(nas_run_cmd(cmd, OUT, sizeof OUT), 2);
    ck_assert_ptr_nonnull(strstr(OUT, "--frobnicate"));
    snprintf(cmd, sizeof cmd, "%s --data-dir %s/none", nas_bin("nas-train"), dir);
    ck_assert_int_eq(nas_run_cmd(cmd, OUT, sizeof OUT), 1);
    ck_assert_ptr_nonnull(strstr(OUT, "train-images-idx3-ubyte"));
    e2e_write_noisy_idx(dir, "train", 100, 1);
    snprintf(cmd, sizeof cmd, "%s --data mnist --data-dir %s --arch vgg --val-size 10", nas_bin("nas-train"), dir);
    ck_assert_int_eq(nas_run_cmd(cmd, OUT, sizeof OUT), 1);
    ck_assert_ptr_nonnull(strstr(OUT, "vgg"));
    // A net larger than the memory it may take is refused with its size before its arenas are
    // zeroed, not killed by the kernel a minute later (resnet20 at batch 4096: about 6 GB).
    snprintf(cmd, sizeof cmd,
             "NAS_MEM_LIMIT=256M %s --data mnist --data-dir %s --arch resnet20 --batch 4096 "
             "--val-size 10",
             nas_bin("nas-train"), dir);
    ck_assert_int_eq(nas_run_cmd(cmd, OUT, sizeof OUT), 1);
    ck_assert_msg(strstr(OUT, "net (batch 4096) needs") && strstr(OUT, "NAS_MEM_LIMIT") &&
                      strstr(OUT, "lower the batch"),
                  "%s", OUT);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("train_cli");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, test_train_cli_trains);
    tcase_add_test(tc, test_train_cli_trains_genome_preset_with_counted_cost);
    tcase_add_test(tc, test_train_cli_errors);
    tcase_add_test(tc, test_train_cli_corrects_misdetected_blas);
    tcase_add_test(tc, test_train_cli_blas_selfcheck_falls_back);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
