/*
 * test_nasctl.c - nasctl against a database written through the store API
 * (no master running): every command's output, its JSON, and the errors
 * that must name the problem and exit non-zero.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/json.h"
#include "master/store.h"
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
    return s;
}

NAS_TEST_MAIN(make_suite)
