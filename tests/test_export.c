// nas-test: label=e2e timeout=420
/*
 * test_export.c - `nasctl export` (master/export.h) on a real campaign: an
 * in-process master (libuv loop, SQLite file, weight store) and a worker
 * agent on a thread that really trains every genome on tiny MNIST-format
 * data, with a final stage.  Checked:
 *  - the final stage keeps its winner's weights even with inheritance off,
 *    and `--best` exports it: genome files, weights.safetensors with its
 *    metadata, model.py, check.safetensors;
 *  - the final recipe end to end: the winner sized to final.target_params,
 *    trained with two seeds, cutout, drop-path, label smoothing and an
 *    auxiliary head; the first seed's weights are the kept ones, and the
 *    export leaves the auxiliary head out;
 *  - Debian's python3-torch loads the export with no nasd code and gets
 *    nasd's logits on the check images (model.py --check, tolerance 1e-3
 *    of the largest logit) and nasd's test accuracy on the whole test set;
 *    the ONNX file passes python3-onnx's checker (skipped, with the reason,
 *    where /usr/bin/python3 lacks them);
 *  - a task whose weights were not kept is refused with the nas-train
 *    command that makes them, and that file exported with --weights;
 *  - the command line: usage errors exit 2, failures 1.
 */
#include "common/alloc.h"
#include "master/campaign_internal.h"
#include "master/export.h"
#include "common/genome.h"
#include "tests/e2e_util.h"

#include <limits.h>
#include <math.h>
#include <sys/stat.h>

static const char *const PY = "/usr/bin/python3";
enum { TARGET_PARAMS = 4000 }; /* final.target_params of the campaign */

/* The campaign of every test here, run once (unchecked fixture). */
static char dir[PATH_MAX], db[PATH_MAX];
static int has_torch, has_onnx; /* what /usr/bin/python3 imports, asked once */

/* 1 when /usr/bin/python3 imports `module`; else prints why the checks
 * that need it are skipped. */
static int python_has(const char *module) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s -c 'import %s' 2>/dev/null", PY, module);
    if (access(PY, X_OK) == 0 && nas_run_cmd(cmd, NULL, 0) == 0) return 1;
    fprintf(stderr, "test_export: SKIPPED the checks that need %s: %s cannot import it "
                    "(Debian: apt-get install python3-%s)\n", module, PY, module);
    return 0;
}

static void campaign_main(void) {
    char cfgp[PATH_MAX];
    nas_path_join(cfgp, sizeof cfgp, dir, "c.yaml");
    e2e_write_bar_idx(dir, "train", 200);
    e2e_write_bar_idx(dir, "t10k", 40);
    int port = e2e_port(7);
    e2e_write(cfgp,
              "name: export\nseed: 3\n"
              "data:\n  set: mnist\n  dir: %s\n"
              "space:\n  kind: cell\n  blocks: 2\n"
              "  ops: [id, max3x3, avg3x3, sep3x3, dil3x3, conv1x1]\n"
              "strategy:\n  name: random\n"
              "budget:\n  evaluations: 3\n"
              "fidelity:\n  resolution: 14\n  train_subset: 0\n  val_size: 40\n  epochs: 1\n"
              "  batch: 16\n  channels: 4\n  cells: 1\n"
              "final:\n  top_k: 1\n  seeds: 2\n  target_params: %d\n"
              "  fidelity:\n    resolution: 14\n    train_subset: 0\n"
              "    val_size: 40\n    epochs: 2\n    batch: 16\n    channels: 6\n    cells: 1\n"
              "    augment: false\n    test: true\n    cutout: 4\n    aux_weight: 0.4\n"
              "    drop_path: 0.2\n    label_smoothing: 0.1\n"
              "weights:\n  inherit: false\n"
              "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n"
              "workers:\n  heartbeat_ms: 200\n  liveness: 10\n"
              "store: %s\n",
              dir, TARGET_PARAMS, port, port + 1, port + 2, db);
    e2e_inproc r;
    e2e_inproc_run(&r, cfgp, dir, "w-export");
    e2e_inproc_close(&r);
}

/* The campaign runs in a child process: libuv's thread pool must not be
 * what the forked tests inherit (their exit would join threads they lack). */
static void run_campaign(void) {
    snprintf(dir, sizeof dir, "%s", nas_tmpdir_make());
    nas_path_join(db, sizeof db, dir, "c.db");
    has_torch = python_has("torch");
    has_onnx = has_torch && python_has("onnx");
    pid_t pid = fork();
    if (pid == 0) {
        campaign_main();
        _exit(0);
    }
    ck_assert_int_eq(e2e_wait(pid, 360000), 0);
}

static void remove_campaign(void) {
    if (!getenv("KEEP")) nas_tmpdir_rm(dir);
}

static int file_exists(const char *d, const char *name) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", d, name);
    struct stat sb;
    return stat(p, &sb) == 0 && sb.st_size > 0;
}

/* A JSON number after `"key": ` in a line model.py printed. */
static double json_number(const char *out, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(out, k);
    ck_assert_msg(p != NULL, "no %s in: %s", key, out);
    return strtod(p + strlen(k), NULL);
}

START_TEST(test_export_best_is_the_kept_final_winner_and_torch_reproduces_it) {
    char out[PATH_MAX], err[NAS_ERR_LEN] = "";
    nas_path_join(out, sizeof out, dir, "best");
    nas_export_options o;
    nas_export_options_default(&o);
    o.db = db;
    o.out_dir = out;
    o.check_images = 8;
    if (!has_torch) o.python = NULL;
    nas_export_report r;
    ck_assert_msg(nas_export(&o, &r, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(r.stage, NAS_STORE_STAGE_FINAL);
    ck_assert(!isnan(r.test_accuracy));
    ck_assert_int_gt(r.params, 0);
    ck_assert_ptr_nonnull(strstr(r.weights_from, ".weights/"));
    const char *files[] = {"genome.txt", "genome.json", "weights.safetensors", "model.py",
                           "check.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        ck_assert_msg(file_exists(out, files[i]), "%s not written", files[i]);

    /* The metadata names the genome the store has for the task. */
    char wpath[PATH_MAX + 32];
    snprintf(wpath, sizeof wpath, "%s/weights.safetensors", out);
    size_t n = 0;
    char *blob = nas_read_file(wpath, &n);
    ck_assert_ptr_nonnull(blob);
    ck_assert_ptr_nonnull(memmem(blob, n, "nasd-export-1", 13));
    ck_assert_ptr_nonnull(memmem(blob, n, "\"normalisation\"", 15));
    nas_free(blob);
    nas_store_task_info ti;
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    ck_assert_int_eq(nas_store_task_get(st, r.task_id, &ti, err), NAS_OK);
    nas_store_close(&st);
    ck_assert_str_eq(r.arch, ti.arch_text);

    if (!has_torch) return;
    ck_assert_msg(r.onnx == 1, "model.onnx: %s", r.onnx_note);
    /* One interpreter run (PyTorch takes seconds to import): nasd's logits
     * on the check images, nasd's accuracy on the whole test set (resized
     * as nasd does), and the ONNX checker. */
    char cmd[PATH_MAX * 4], res[4096] = "", onnx[PATH_MAX + 32] = "";
    if (has_onnx) snprintf(onnx, sizeof onnx, "--check-onnx %s/model.onnx", out);
    snprintf(cmd, sizeof cmd, "%s %s/model.py --check --eval %s %s", PY, out, dir, onnx);
    ck_assert_msg(nas_run_cmd(cmd, res, sizeof res) == 0, "%s", res);
    ck_assert_msg(strstr(res, "\"ok\": true") != NULL, "%s", res);
    ck_assert(json_number(res, "images") == 8);
    ck_assert_msg(strstr(res, "{\"images\": 40, \"test_accuracy\"") != NULL, "%s", res);
    ck_assert_msg(fabs(json_number(res, "test_accuracy") - r.test_accuracy) < 0.001, "%s", res);
    if (has_onnx) ck_assert_msg(strstr(res, "\"checker\": \"ok\"") != NULL, "%s", res);
}
END_TEST

/* The final recipe: one architecture, two seeds, the same F and N chosen for the size target
 * (the largest F under it), trained with the auxiliary head, whose tensors are in the kept
 * weights but not in the export. */
START_TEST(test_export_final_recipe_sizes_seeds_and_aux_head) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_task_info *ti = NULL;
    int n = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_FINAL, &ti, err);
    ck_assert_int_eq(n, 2);
    ck_assert(ti[0].arch_hash == ti[1].arch_hash);
    ck_assert_int_eq((int)(ti[0].fidelity.seed + ti[1].fidelity.seed), 1 + 2);
    ck_assert_int_eq(ti[0].fidelity.channels, ti[1].fidelity.channels);
    ck_assert_int_eq(ti[0].fidelity.cutout, 4);
    ck_assert_float_eq(ti[0].fidelity.aux_weight, 0.4f);
    nas_genome g;
    ck_assert_int_eq(nas_genome_parse(ti[0].arch_text, strlen(ti[0].arch_text), &g, err), NAS_OK);
    nas_fidelity f = ti[0].fidelity;
    nas_cost at, above;
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 14, 10, &at, err), NAS_OK);
    f.channels++;
    ck_assert_int_eq(nas_genome_cost(&g, &f, 1, 14, 10, &above, err), NAS_OK);
    ck_assert_int_le(at.params, TARGET_PARAMS);
    ck_assert_int_gt(above.params, TARGET_PARAMS);
    nas_store_record *r = NULL;
    int nr = nas_store_history(st, NAS_STORE_STAGE_FINAL, &r, err);
    ck_assert_int_eq(nr, 2);
    for (int i = 0; i < nr; i++) {
        ck_assert_int_eq(r[i].params, at.params); /* the deployed network: no auxiliary head */
        ck_assert(!isnan(r[i].test_accuracy));
    }
    nas_store_records_free(r, nr);
    /* The kept file has the auxiliary head; the export of the first seed's run does not. */
    char wfile[PATH_MAX + 64];
    snprintf(wfile, sizeof wfile, "%s.weights/%016llx.safetensors", db,
             (unsigned long long)ti[0].arch_hash);
    size_t len = 0;
    char *blob = nas_read_file(wfile, &len);
    ck_assert_ptr_nonnull(blob);
    ck_assert_ptr_nonnull(memmem(blob, len, "aux/conv/weight", 15));
    nas_free(blob);
    int64_t first = ti[0].fidelity.seed == 1 ? ti[0].id : ti[1].id;
    nas_free(ti);
    nas_store_close(&st);
    char out[PATH_MAX];
    nas_path_join(out, sizeof out, dir, "recipe");
    nas_export_options o;
    nas_export_options_default(&o);
    o.db = db;
    o.out_dir = out;
    o.python = NULL;
    nas_export_report rep;
    ck_assert_msg(nas_export(&o, &rep, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(rep.task_id, first);
    snprintf(wfile, sizeof wfile, "%s/weights.safetensors", out);
    blob = nas_read_file(wfile, &len);
    ck_assert_ptr_nonnull(blob);
    ck_assert_ptr_null(memmem(blob, len, "aux/", 4));
    nas_free(blob);
}
END_TEST

/* A search task's weights were not kept: the error gives the nas-train
 * command; the file it writes exports with --weights. */
START_TEST(test_export_unkept_weights_name_the_retraining) {
    nas_store *st = NULL;
    char err[NAS_ERR_LEN] = "", out[PATH_MAX];
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_record *rec = NULL;
    int n = nas_store_best(st, NAS_STORE_STAGE_SEARCH, 3, &rec, err);
    ck_assert_int_ge(n, 2);
    int64_t id = rec[n - 1].task_id; /* not the final stage's architecture */
    nas_store_records_free(rec, n);
    nas_store_close(&st);
    nas_path_join(out, sizeof out, dir, "search");
    nas_export_options o;
    nas_export_options_default(&o);
    o.db = db;
    o.task_id = id;
    o.out_dir = out;
    o.python = NULL;
    nas_export_report r;
    ck_assert_int_eq(nas_export(&o, &r, err), NAS_ENOTFOUND);
    ck_assert_msg(strstr(err, "nas-train") && strstr(err, "--weights"), "%s", err);
    ck_assert_msg(strncmp(r.retrain, "nas-train --arch", 16) == 0, "%s", r.retrain);

    /* Run the command it gives (with the binary's path and a real file). */
    char wfile[PATH_MAX + 32], line[6 * PATH_MAX], res[4096] = "";
    snprintf(wfile, sizeof wfile, "%s/w.safetensors", dir);
    const char *end = strstr(r.retrain, " --save-weights W.safetensors && nasctl export");
    ck_assert_ptr_nonnull(end);
    snprintf(line, sizeof line, "%s%.*s --save-weights %s", nas_bin("nas-train"),
             (int)(end - r.retrain - 9), r.retrain + 9, wfile);
    ck_assert_msg(nas_run_cmd(line, res, sizeof res) == 0, "%s\n%s", line, res);
    o.weights = wfile;
    ck_assert_msg(nas_export(&o, &r, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(r.stage, NAS_STORE_STAGE_SEARCH);
    ck_assert_str_eq(r.weights_from, wfile);
    ck_assert(file_exists(out, "model.py"));
}
END_TEST

/* Every operation of the genome space, both cells (a stride-2 id is the
 * factorized reduction, a stride-2 zero keeps only its output side). */
static const char *const EVERY_OP = "n=sep5x5:1+sep7x7:0,dil3x3:0+conv1x7_7x1:1,"
                                    "conv3x3:2+zero:0,conv1x1:3+avg3x3:1 "
                                    "r=max3x3:0+id:1,avg3x3:1+sep3x3:0,zero:1+id:2";

/* A database with one finished task of EVERY_OP (as a campaign would leave
 * it); returns the task id. */
static int64_t every_op_task(const char *path, const nas_fidelity *f) {
    char err[NAS_ERR_LEN] = "", text[PATH_MAX + 64];
    snprintf(text, sizeof text, "name: ops\ndata:\n  set: mnist\n  dir: %s\n", dir);
    nas_store *st = NULL;
    ck_assert_msg(nas_store_open(&st, path, err) == NAS_OK, "%s", err);
    nas_store_campaign c = {.name = "ops", .text = text, .canonical = text, .hash = 9, .seed = 1};
    ck_assert_msg(nas_store_campaign_bind(st, &c, 1000, NULL, err) == NAS_OK, "%s", err);
    nas_genome g;
    ck_assert_msg(nas_genome_parse(EVERY_OP, strlen(EVERY_OP), &g, err) == NAS_OK, "%s", err);
    nas_store_new_task t = {.arch_hash = nas_genome_hash(&g), .arch_text = EVERY_OP,
                            .params = 1, .macs = 1, .stage = NAS_STORE_STAGE_SEARCH,
                            .fidelity = *f};
    int64_t id = 0;
    ck_assert_msg(nas_store_task_add(st, &t, NULL, 0, 2000, &id, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_store_task_lease(st, id, 1, "w1", "h1", "", 9000, 3000, err), NAS_OK);
    nas_store_result r = {.accuracy = 0.5, .test_accuracy = NAN, .params = 1, .macs = 1,
                          .seconds = 1, .worker = "w1"};
    ck_assert_int_eq(nas_store_put_result(st, id, 1, &r, NULL, 0, 4000, err), NAS_STORE_APPLIED);
    nas_store_close(&st);
    return id;
}

START_TEST(test_export_every_op_matches_torch) {
    nas_fidelity f = nas_fidelity_default();
    f.resolution = 14, f.train_subset = 0, f.val_size = 40, f.epochs = 1, f.batch = 16;
    f.channels = 4, f.cells = 1, f.seed = 5;
    char odb[PATH_MAX + 16], out[PATH_MAX + 16], wfile[PATH_MAX + 16], err[NAS_ERR_LEN] = "";
    snprintf(odb, sizeof odb, "%s/ops.db", dir);
    snprintf(out, sizeof out, "%s/ops", dir);
    snprintf(wfile, sizeof wfile, "%s/ops.safetensors", dir);
    int64_t id = every_op_task(odb, &f);
    char cmd[4 * PATH_MAX], res[4096] = "";
    snprintf(cmd, sizeof cmd,
             "%s --arch '%s' --data mnist --data-dir %s --resolution 14 --train-subset 0 "
             "--val-size 40 --epochs 1 --batch 16 --channels 4 --cells 1 --seed 5 "
             "--save-weights %s",
             nas_bin("nas-train"), EVERY_OP, dir, wfile);
    ck_assert_msg(nas_run_cmd(cmd, res, sizeof res) == 0, "%s\n%s", cmd, res);
    nas_export_options o;
    nas_export_options_default(&o);
    o.db = odb;
    o.task_id = id;
    o.out_dir = out;
    o.weights = wfile;
    o.python = NULL;
    nas_export_report r;
    ck_assert_msg(nas_export(&o, &r, err) == NAS_OK, "%s", err);
    char *model = nas_read_file(strcat(strcpy(cmd, out), "/model.py"), NULL);
    ck_assert_ptr_nonnull(model);
    const char *ops[] = {"\"conv\"", "\"bn\"", "\"relu\"", "\"add\"", "\"concat\"", "\"maxpool\"",
                         "\"avgpool\"", "\"gap\"", "\"linear\"", "\"shift\"", "\"zero\""};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        ck_assert_msg(strstr(model, ops[i]) != NULL, "no %s node in the graph", ops[i]);
    nas_free(model);
    if (!has_torch) return;
    snprintf(cmd, sizeof cmd, "%s %s/model.py --check", PY, out);
    ck_assert_msg(nas_run_cmd(cmd, res, sizeof res) == 0, "%s", res);
    ck_assert_msg(strstr(res, "\"ok\": true") != NULL, "%s", res);
}
END_TEST

static int nasctl(const char *args, char *out, size_t cap) {
    char cmd[PATH_MAX * 3];
    snprintf(cmd, sizeof cmd, "%s export %s", nas_bin("nasctl"), args);
    return nas_run_cmd(cmd, out, cap);
}

START_TEST(test_export_command_line) {
    char out[4096], args[PATH_MAX * 2 + 64];
    ck_assert_int_eq(nasctl("--help", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "--best"));
    ck_assert_int_eq(nasctl("--db x.db", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--out"));
    ck_assert_int_eq(nasctl("--db x.db --out d --task zero", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "zero"));
    ck_assert_int_eq(nasctl("--db x.db --out d --task 1 --best", out, sizeof out), 2);
    ck_assert_int_eq(nasctl("--db x.db --out d --bogus", out, sizeof out), 2);
    snprintf(args, sizeof args, "--db %s --task 999 --out %s/x --no-onnx", db, dir);
    ck_assert_int_eq(nasctl(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "999") != NULL, "%s", out);
    snprintf(args, sizeof args, "--db %s/missing.db --best --out %s/x", dir, dir);
    ck_assert_int_eq(nasctl(args, out, sizeof out), 1);
    snprintf(args, sizeof args, "--db %s --best --out %s/cli --no-onnx", db, dir);
    ck_assert_msg(nasctl(args, out, sizeof out) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "final stage"));
    ck_assert_ptr_nonnull(strstr(out, "not asked for"));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("export");
    TCase *tc = tcase_create("export");
    tcase_set_timeout(tc, 280);
    tcase_add_unchecked_fixture(tc, run_campaign, remove_campaign);
    tcase_add_test(tc, test_export_best_is_the_kept_final_winner_and_torch_reproduces_it);
    tcase_add_test(tc, test_export_final_recipe_sizes_seeds_and_aux_head);
    tcase_add_test(tc, test_export_unkept_weights_name_the_retraining);
    tcase_add_test(tc, test_export_every_op_matches_torch);
    tcase_add_test(tc, test_export_command_line);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
