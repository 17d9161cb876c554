/*
 * test_nasctl.c - nasctl against a database written through the store API
 * (no master running): every command's output, its JSON, and the errors
 * that must name the problem and exit non-zero; `nasctl scale` on a tiny
 * generated data set.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/json.h"
#include "master/store.h"
#include "tests/e2e_util.h"
#include "tests/harness.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_db[PATH_MAX];
static const char *g_dir;

static const char *const archs[] = {
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|none~2|",
};
static const double accs[] = {0.91, 0.85, 0.70};
static const int64_t params[] = {5000, 1000, 3000};

/* A finished little campaign: three search results (the second is the
 * cheapest, the first the best; the third is dominated) and one final. */
static void make_db(void) {
    g_dir = nas_tmpdir_make();
    nas_path_join(g_db, sizeof g_db, g_dir, "c.db");
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, g_db, err), NAS_OK);
    nas_store_campaign c = {.name = "ctl",
                            .text = "name: ctl\n",
                            .canonical =
                                "name: ctl\nstrategy.name: random\nbudget.evaluations: 3\n",
                            .hash = 42,
                            .seed = 1};
    int created = 0;
    ck_assert_int_eq(nas_store_campaign_bind(st, &c, 1000, &created, err), NAS_OK);
    ck_assert_int_eq(nas_store_worker_seen(st, "w1", "hostx", 2, "0.1", 1500, err), NAS_OK);
    for (int i = 0; i < 4; i++) {
        int a = i < 3 ? i : 0;
        nas_genome g;
        ck_assert_int_eq(nas_genome_parse(archs[a], strlen(archs[a]), &g, err), NAS_OK);
        nas_store_new_task t = {.arch_hash = nas_genome_hash(&g),
                                .arch_text = archs[a],
                                .params = params[a],
                                .macs = params[a] * 10,
                                .stage = i < 3 ? NAS_STORE_STAGE_SEARCH : NAS_STORE_STAGE_FINAL,
                                .fidelity = nas_fidelity_default()};
        int64_t id;
        ck_assert_int_eq(nas_store_task_add(st, &t, NULL, 0, 2000 + i, &id, err), NAS_OK);
        ck_assert_int_eq(nas_store_task_lease(st, id, 1, "w1", "h1", "", 99999, 3000 + i, err),
                         NAS_OK);
        nas_store_result r = {.accuracy = accs[a],
                              .loss = 0.3,
                              .test_accuracy = i < 3 ? NAN : 0.905,
                              .params = params[a],
                              .macs = params[a] * 10,
                              .seconds = 1,
                              .worker = "w1"};
        ck_assert_int_ge(nas_store_put_result(st, id, 1, &r, NULL, 0, 4000 + 1000 * i, err), 0);
    }
    nas_store_close(&st);
}

static int ctl(const char *args, char *out, size_t cap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s", nas_bin("nasctl"), args);
    return nas_run_cmd(cmd, out, cap);
}

START_TEST(test_nasctl_history_best_pareto) {
    make_db();
    char args[PATH_MAX + 64], out[16384];
    snprintf(args, sizeof args, "history --db %s --csv", g_db);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    int lines = 0;
    for (char *p = out; (p = strchr(p, '\n')); p++)
        lines++;
    ck_assert_int_eq(lines, 4); /* header + three search results, not the final one */
    ck_assert_ptr_nonnull(strstr(out, archs[2]));

    snprintf(args, sizeof args, "best --db %s --k 1", g_db);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "0.9100"));
    ck_assert_ptr_nonnull(strstr(out, "0.9050")); /* the final stage's test accuracy */
    ck_assert_ptr_null(strstr(out, archs[1]));

    snprintf(args, sizeof args, "pareto --db %s", g_db);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "(2 of 3 results)"));
    ck_assert_ptr_nonnull(strstr(out, archs[0]));
    ck_assert_ptr_nonnull(strstr(out, archs[1]));
    ck_assert_ptr_null(strstr(out, archs[2]));
    nas_tmpdir_rm(g_dir);
}
END_TEST

START_TEST(test_nasctl_json_parses) {
    make_db();
    char args[PATH_MAX + 64], out[16384], err[NAS_ERR_LEN];
    const char *cmds[] = {"history --db %s --json", "best --db %s --json", "status --db %s --json"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, cmds[i], g_db);
        ck_assert_int_eq(ctl(args, out, sizeof out), 0);
        nas_json *doc = NULL;
        ck_assert_msg(nas_json_parse(out, strlen(out), 0, &doc, err) == NAS_OK, "%s: %s", out, err);
        if (i == 2) {
            ck_assert_str_eq(nas_json_get(doc, "source")->str, "database");
            ck_assert(nas_json_get(doc, "done")->number == 3);
            ck_assert(nas_json_get(doc, "budget")->number == 3);
            ck_assert_str_eq(nas_json_get(nas_json_get(doc, "best"), "arch")->str, archs[0]);
        }
        nas_json_free(&doc);
    }
    snprintf(args, sizeof args, "status --db %s", g_db);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "3/3 done"));
    ck_assert_ptr_nonnull(strstr(out, "w1"));
    nas_tmpdir_rm(g_dir);
}
END_TEST

/* history --json says of each result what the CSV's status column says:
 * "stopped" for a run an early-stopping rule ended (its task-stopped
 * event), "done" otherwise. */
START_TEST(test_nasctl_history_json_status) {
    make_db();
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, g_db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    ck_assert_int_eq(n, 3);
    int64_t stopped = r[1].task_id;
    nas_store_records_free(r, n);
    char text[128];
    snprintf(text, sizeof text, "task %lld stopped by the median rule at epoch 1/2",
             (long long)stopped);
    ck_assert_int_eq(nas_store_event_append(st, 5000, "task-stopped", text, err), NAS_OK);
    nas_store_close(&st);

    char args[PATH_MAX + 64], out[16384];
    snprintf(args, sizeof args, "history --db %s --json", g_db);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    nas_json *doc = NULL;
    ck_assert_msg(nas_json_parse(out, strlen(out), 0, &doc, err) == NAS_OK, "%s: %s", out, err);
    ck_assert_int_eq(doc->type, NAS_JSON_ARRAY);
    ck_assert_int_eq((int)doc->len, 3);
    int n_stopped = 0;
    for (size_t i = 0; i < doc->len; i++) {
        const nas_json *e = &doc->items[i];
        const nas_json *status = nas_json_get(e, "status");
        ck_assert_ptr_nonnull(status);
        int is_stopped = (int64_t)nas_json_get(e, "task")->number == stopped;
        ck_assert_str_eq(status->str, is_stopped ? "stopped" : "done");
        n_stopped += is_stopped;
    }
    ck_assert_int_eq(n_stopped, 1);
    nas_json_free(&doc);

    /* The CSV says the same of the same task. */
    snprintf(args, sizeof args, "history --db %s --csv", g_db);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    char *hit = strstr(out, ",stopped\r\n");
    ck_assert_ptr_nonnull(hit);
    ck_assert_ptr_null(strstr(hit + 1, ",stopped\r\n"));
    char *line = hit;
    while (line > out && line[-1] != '\n')
        line--;
    long long seq, task;
    ck_assert_int_eq(sscanf(line, "%lld,%lld,", &seq, &task), 2);
    ck_assert_int_eq(task, stopped);

    /* best --json keeps its shape: no status there. */
    snprintf(args, sizeof args, "best --db %s --json", g_db);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    ck_assert_ptr_null(strstr(out, "\"status\""));
    nas_tmpdir_rm(g_dir);
}
END_TEST

START_TEST(test_nasctl_dot) {
    char out[65536];
    ck_assert_int_eq(ctl("dot nasnet_a", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "digraph"));
    char args[600];
    snprintf(args, sizeof args, "dot '%s'", archs[0]);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "digraph"));
    ck_assert_int_ne(ctl("dot 'n=sep4x4:1+id:0'", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "neither a genome"));
}
END_TEST

START_TEST(test_nasctl_errors_name_the_problem) {
    char out[8192];
    ck_assert_int_eq(ctl("frobnicate", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown command 'frobnicate'"));
    ck_assert_int_eq(ctl("history", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--db FILE is required"));
    ck_assert_int_ne(ctl("history --db /nonexistent/x.db", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/x.db"));
    ck_assert_int_ne(ctl("best --db x.db --k zero", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "--k"));
    ck_assert_int_eq(ctl("keygen", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "a NAME is required"));
    ck_assert_int_eq(ctl("best --db x.db --key k", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--key does not apply to best (it belongs to status)"));
    ck_assert_int_eq(ctl("history --db x.db --force", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "belongs to keygen"));
    ck_assert_int_eq(ctl("status --key k --timeout-ms 300", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--key and --master-key go together"));
    ck_assert_int_ne(
        ctl("status --key /nonexistent/k --master-key /nonexistent/m.key", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/k"));
    /* Nothing listens there: a clear message, not a hang. */
    ck_assert_int_ne(ctl("status --master tcp://127.0.0.1:9 --timeout-ms 300", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "no answer from tcp://127.0.0.1:9"));
    ck_assert_int_eq(ctl("best --help", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: nasctl"));
}
END_TEST

/* One scaled-model row of `nasctl scale --train`: the numbers, and the
 * nas-train arguments on the line after it. */
typedef struct scale_row {
    double phi, depth, width, acc;
    int side;
    long long params, macs;
    char train_args[1024];
} scale_row;

static const char *scale_row_parse(const char *p, scale_row *r) {
    char genome[512];
    int n = sscanf(p, "%lf %lf %lf %d %lld %lld %lf %511s", &r->phi, &r->depth, &r->width, &r->side,
                   &r->params, &r->macs, &r->acc, genome);
    ck_assert_msg(n == 8, "row '%.80s'", p);
    const char *cmd = strstr(p, "nas-train ");
    ck_assert_ptr_nonnull(cmd);
    cmd += strlen("nas-train ");
    size_t len = strcspn(cmd, "\n");
    ck_assert_uint_lt(len, sizeof r->train_args);
    memcpy(r->train_args, cmd, len);
    r->train_args[len] = '\0';
    return cmd + len;
}

/* The grid search trains all 25 points and keeps the best; --train trains
 * each scaled model; the width goes through --width-mult (beta moves the
 * network even where the genome's 8-unit widths would round it away); and
 * the nas-train command printed for a model builds the network whose size
 * was printed. */
START_TEST(test_nasctl_scale) {
    const char *dir = nas_tmpdir_make();
    e2e_write_noisy_idx(dir, "train", 160, 1);
    static char out[65536];
    char args[2048];
    snprintf(args, sizeof args,
             "scale 'mbconv=stem16,mb3x4se-16r1s2,fu3x1-24r1s1,head32' --search --train "
             "--data %s --side 8 --channels 4 --epochs 1 --subset 0 --val-size 40 --phi 0,1",
             dir);
    ck_assert_msg(ctl(args, out, sizeof out) == 0, "%s", out);
    /* Step 1: 19 rows, and the chosen point is the first with the best accuracy. */
    const char *p = strstr(out, "val_acc\n");
    ck_assert_ptr_nonnull(p);
    p += strlen("val_acc\n");
    double best = -1, ba = 0, bb = 0, bg = 0;
    int rows = 0;
    for (;;) {
        double a, b, g, acc;
        int side;
        long long np, macs;
        if (sscanf(p, "%lf %lf %lf %d %lld %lld %lf", &a, &b, &g, &side, &np, &macs, &acc) != 7)
            break;
        rows++;
        if (acc > best) best = acc, ba = a, bb = b, bg = g;
        p = strchr(p, '\n') + 1;
    }
    ck_assert_int_eq(rows, 25);
    double ca, cb, cg;
    ck_assert_int_eq(sscanf(p, "chosen: alpha %lf beta %lf gamma %lf", &ca, &cb, &cg), 3);
    ck_assert(fabs(ca - ba) < 1e-9 && fabs(cb - bb) < 1e-9 && fabs(cg - bg) < 1e-9);
    /* Step 2: phi 0 is the base, phi 1 the chosen coefficients, each trained. */
    p = strstr(p, "genome\n");
    ck_assert_ptr_nonnull(p);
    scale_row r0, r1;
    p = scale_row_parse(p + strlen("genome\n"), &r0);
    scale_row_parse(p + 1, &r1);
    ck_assert(r0.phi == 0 && r0.width == 1 && r0.side == 8);
    ck_assert(r1.phi == 1 && fabs(r1.width - cb) < 1e-3 && fabs(r1.depth - ca) < 1e-3);
    ck_assert(r0.acc >= 0 && r0.acc <= 1 && r1.acc >= 0 && r1.acc <= 1);
    ck_assert_int_ge(r1.params, r0.params);
    char want[64];
    snprintf(want, sizeof want, "--width-mult %.9g ", (double)(float)cb);
    ck_assert_msg(strstr(r1.train_args, want) != NULL, "%s lacks %s", r1.train_args, want);
    /* The printed command trains the model counted. */
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "{ OPENBLAS_NUM_THREADS=1 %s %s --data fashion-mnist --data-dir %s --epochs 1 "
             "--train-subset 0 --val-size 40 --json 2>/dev/null; }",
             nas_bin("nas-train"), r1.train_args, dir);
    ck_assert_msg(nas_run_cmd(cmd, out, sizeof out) == 0, "%s: %s", cmd, out);
    char want_params[64];
    snprintf(want_params, sizeof want_params, "\"params\":%lld,", r1.params);
    ck_assert_msg(strstr(out, want_params) != NULL, "%s: %s", want_params, out);
    /* Beta alone, at 1.05: the genome's widths stay as written, the network grows. */
    ck_assert_int_eq(ctl("scale 'mbconv=stem16,mb3x4se-16r1s2,fu3x1-24r1s1,head32' --phi 0,1 "
                         "--alpha 1 --beta 1.05 --gamma 1",
                         out, sizeof out),
                     0);
    p = strstr(out, "genome\n");
    ck_assert_ptr_nonnull(p);
    long long params0, params1;
    ck_assert_int_eq(sscanf(p + 7, "%*f %*f %*f %*d %lld", &params0), 1);
    p = strstr(strstr(p + 7, "nas-train"), "\n") + 1;
    ck_assert_int_eq(sscanf(p, "%*f %*f %*f %*d %lld", &params1), 1);
    ck_assert_int_gt(params1, params0);
    ck_assert_ptr_nonnull(strstr(p, "mbconv=stem16,mb3x4se-16r1s2,fu3x1-24r1s1,head32"));
    /* --seeds 2: the mean of what nas-train gives with seeds 1 and 2. */
    snprintf(args, sizeof args,
             "scale 'mbconv=stem16,mb3x4se-16r1s2,fu3x1-24r1s1,head32' --train --seeds 2 "
             "--data %s --side 8 --channels 4 --epochs 1 --subset 0 --val-size 40 --phi 0",
             dir);
    ck_assert_msg(ctl(args, out, sizeof out) == 0, "%s", out);
    p = strstr(out, "genome\n");
    ck_assert_ptr_nonnull(p);
    scale_row m;
    scale_row_parse(p + strlen("genome\n"), &m);
    double seed_acc[2];
    for (int s = 1; s <= 2; s++) {
        snprintf(cmd, sizeof cmd,
                 "{ OPENBLAS_NUM_THREADS=1 %s %s --data fashion-mnist --data-dir %s --epochs 1 "
                 "--train-subset 0 --val-size 40 --seed %d --json 2>/dev/null; }",
                 nas_bin("nas-train"), m.train_args, dir, s);
        ck_assert_msg(nas_run_cmd(cmd, out, sizeof out) == 0, "%s: %s", cmd, out);
        const char *v = strstr(out, "\"val_acc\":");
        ck_assert_ptr_nonnull(v);
        seed_acc[s - 1] = strtod(v + strlen("\"val_acc\":"), NULL);
    }
    /* The seeds train differently here, so the mean is a check that both ran. */
    ck_assert_msg(seed_acc[0] != seed_acc[1], "seeds 1 and 2 both %.4f", seed_acc[0]);
    double mean = (seed_acc[0] + seed_acc[1]) / 2;
    ck_assert_msg(fabs(m.acc - mean) < 6e-5, "printed %.4f, mean %.6f", m.acc, mean);
    ck_assert_int_eq(
        ctl("scale 'mbconv=stem16,mb3x4se-16r1s2,head32' --train --classes 5", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--classes counts without training"));
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("nasctl");
    TCase *tc = tcase_create("commands");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_nasctl_history_best_pareto);
    tcase_add_test(tc, test_nasctl_json_parses);
    tcase_add_test(tc, test_nasctl_history_json_status);
    tcase_add_test(tc, test_nasctl_dot);
    tcase_add_test(tc, test_nasctl_errors_name_the_problem);
    suite_add_tcase(s, tc);
    TCase *scale = tcase_create("scale");
    tcase_set_timeout(scale, 600); /* 21 trainings, tiny, under sanitizers and load */
    tcase_add_test(scale, test_nasctl_scale);
    suite_add_tcase(s, scale);
    return s;
}

NAS_TEST_MAIN(make_suite)
