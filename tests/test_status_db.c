/*
 * test_status_db.c - `nasctl status --db` answers from one light read of
 * the results (nas_store_result_scan, through status_live.c) instead of
 * reading every result whole.  Its document must say what the full read
 * said: here every figure is computed again the old way, from
 * nas_store_history and nas_store_task_list (every row, every field), on a
 * small store with tasks in every state, two search fidelities and a final
 * stage, a tie for the best accuracy, curves of 0 to 9 values (with a NaN),
 * results recorded out of task order and runs stopped early, and the two
 * are compared key by key; and nasctl's text and --json output of the file
 * carry the same numbers.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"
#include "master/fidelity_rank.h"
#include "master/status.h"
#include "master/status_fidelity.h"
#include "master/store.h"
#include "tests/harness.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_db[PATH_MAX];
static const char *g_dir;

/* A task of architecture `arch` at `epochs` (the fidelity) in `stage`. */
static int64_t add_task(nas_store *st, int arch, int stage, int epochs, int64_t now) {
    char err[NAS_ERR_LEN] = "", text[32];
    snprintf(text, sizeof text, "arch%d", arch);
    nas_store_new_task t = {.arch_hash = 500 + (uint64_t)arch,
                            .arch_text = text,
                            .params = 1000 + arch,
                            .macs = 10000,
                            .stage = stage,
                            .fidelity = nas_fidelity_default()};
    t.fidelity.epochs = epochs;
    t.fidelity.seed = 1 + (uint64_t)arch; /* seeds differ: still one fidelity group */
    int64_t id;
    ck_assert_msg(nas_store_task_add(st, &t, NULL, 0, now, &id, err) == NAS_OK, "%s", err);
    return id;
}

static void lease(nas_store *st, int64_t id, int attempt, const char *worker, int64_t now) {
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_store_task_lease(st, id, attempt, worker, "h1", "", now + 99999, now, err) ==
                      NAS_OK,
                  "%s", err);
}

static void result(nas_store *st, int64_t id, const char *worker, double acc, double test,
                   int n_curve, int64_t now) {
    char err[NAS_ERR_LEN] = "";
    float curve[16];
    for (int i = 0; i < n_curve; i++)
        curve[i] = (float)(acc * (i + 1) / n_curve);
    if (n_curve > 2) curve[1] = NAN; /* printed "nan": a value all the same */
    lease(st, id, 1, worker, now);
    nas_store_result r = {.accuracy = acc,
                          .loss = 0.3,
                          .test_accuracy = test,
                          .curve = n_curve ? curve : NULL,
                          .n_curve = n_curve,
                          .params = 1000,
                          .macs = 10000,
                          .seconds = 1,
                          .worker = worker};
    ck_assert_msg(nas_store_put_result(st, id, 1, &r, NULL, 0, now + 1, err) >= 0, "%s", err);
}

/* Every state, both stages, two search rungs; results in another order
 * than their tasks'. */
static void make_db(void) {
    g_dir = nas_tmpdir_make();
    nas_path_join(g_db, sizeof g_db, g_dir, "c.db");
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, g_db, err), NAS_OK);
    nas_store_campaign c = {.name = "mixed",
                            .text = "name: mixed\n",
                            .canonical = "name: mixed\nstrategy.name: pnas\n"
                                         "budget.evaluations: 40\n",
                            .hash = 9,
                            .seed = 1};
    ck_assert_int_eq(nas_store_campaign_bind(st, &c, 1000, NULL, err), NAS_OK);
    static const char *const workers[] = {"w1", "w2", "w3"};
    for (int w = 0; w < 3; w++)
        ck_assert_int_eq(nas_store_worker_seen(st, workers[w], "h1", 2, "0.1", 1500, err), NAS_OK);
    int64_t now = 2000, rung1[12], rung2[8];
    for (int i = 0; i < 12; i++)
        rung1[i] = add_task(st, i, NAS_STORE_STAGE_SEARCH, 1, now += 10);
    for (int i = 0; i < 8; i++)
        rung2[i] = add_task(st, i, NAS_STORE_STAGE_SEARCH, 3, now += 10);
    /* Rung 1 finishes backwards (seq against task order), task 4 ties
     * with task 9 for the best (the earlier result wins); curves of 0 to 5
     * values. */
    for (int i = 9; i >= 0; i--)
        result(st, rung1[i], workers[i % 3], 0.40 + 0.03 * (i == 4 ? 9 : i), NAN, i % 6,
               now += 1000);
    /* Task 10: failed for good; task 11: failed once, back in the queue. */
    lease(st, rung1[10], 1, "w1", now += 10);
    ck_assert_int_eq(nas_store_put_failure(st, rung1[10], 1, 0, "diverged", 1, NULL, 0, now, err),
                     NAS_STORE_FAILED_FINAL);
    lease(st, rung1[11], 1, "w2", now += 10);
    ck_assert_int_ge(nas_store_put_failure(st, rung1[11], 1, 0, "oom", 3, NULL, 0, now, err), 0);
    for (int i = 0; i < 6; i++)
        result(st, rung2[i], workers[i % 2], 0.55 + 0.02 * ((i * 5) % 6), NAN, 3, now += 1000);
    lease(st, rung2[6], 1, "w3", now += 10); /* in flight on w3; rung2[7] queued */
    /* The final stage: two done with test accuracies, one leased, one queued. */
    for (int i = 0; i < 4; i++) {
        int64_t id = add_task(st, i, NAS_STORE_STAGE_FINAL, 9, now += 10);
        if (i < 2) result(st, id, "w1", 0.8 + 0.05 * i, 0.79 + 0.04 * i, 9, now += 1000);
        if (i == 2) lease(st, id, 1, "w2", now += 10);
    }
    ck_assert_int_eq(
        nas_store_event_append(st, now, "task-stopped", "task 3 stopped at epoch 2", err), NAS_OK);
    ck_assert_int_eq(
        nas_store_event_append(st, now, "task-stopped", "task 5 stopped at epoch 1", err), NAS_OK);
    ck_assert_int_eq(nas_store_event_append(st, now, "worker-joined", "w1", err), NAS_OK);
    nas_store_close(&st);
}

static int cmp_task(const void *pa, const void *pb) {
    const nas_store_record *a = pa, *b = pb;
    return a->task_id < b->task_id ? -1 : a->task_id > b->task_id;
}

/* The document's figures as the full read computed them before the
 * light scan (status.c and status_fidelity.c up to 2026-12): counts from
 * every task row, the rate from the first and last result recorded, the
 * epochs from every parsed curve, the rank figures from the done tasks
 * merged with their results. */
static char *reference(nas_store *st, int64_t created_ms, int64_t now) {
    char err[NAS_ERR_LEN] = "";
    nas_store_task_info *t = NULL;
    int nt = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_ANY, &t, err);
    ck_assert_msg(nt >= 0, "%s", err);
    int64_t k[2][4] = {{0}};
    for (int i = 0; i < nt; i++)
        k[t[i].stage][t[i].state]++;
    nas_store_record *r = NULL;
    int nr = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    ck_assert_int_ge(nr, 2);
    double h = (double)(r[nr - 1].finished_ms - r[0].finished_ms) / 3600000.0;
    double rate = (double)(nr - 1) / h;
    int64_t epochs = 0;
    for (int i = 0; i < nr; i++)
        epochs += nas_status_epochs_of(r[i].n_curve);
    nas_store_records_free(r, nr);
    nr = nas_store_history(st, NAS_STORE_STAGE_ANY, &r, err);
    qsort(r, (size_t)nr, sizeof *r, cmp_task);
    nas_fidelity_acc *acc = NULL;
    ck_assert_int_eq(nas_fidelity_acc_new(&acc), NAS_OK);
    for (int i = 0, j = 0; i < nt && j < nr;) {
        if (t[i].id < r[j].task_id) {
            i++;
        } else if (t[i].id > r[j].task_id) {
            j++;
        } else {
            if (t[i].state == NAS_STORE_TASK_DONE)
                ck_assert_int_eq(nas_fidelity_acc_add(acc, t[i].id, t[i].stage, &t[i].fidelity,
                                                      t[i].arch_hash, r[j].accuracy,
                                                      r[j].test_accuracy, err),
                                 NAS_OK);
            i++;
            j++;
        }
    }
    nas_store_records_free(r, nr);
    nas_free(t);
    nas_fidelity_ranks fr;
    ck_assert_msg(nas_fidelity_acc_ranks(acc, &fr, err) == NAS_OK, "%s", err);
    nas_fidelity_acc_free(&acc);
    int64_t *stopped = NULL;
    int n_stopped = nas_status_stopped_tasks(st, &stopped, err);
    nas_free(stopped);
    nas_store_record *best = NULL;
    ck_assert_int_eq(nas_store_best(st, NAS_STORE_STAGE_SEARCH, 1, &best, err), 1);

    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    static const char *const keys[] = {"done", "queued", "in_flight", "failed", "final_done"};
    int64_t v[] = {k[0][NAS_STORE_TASK_DONE], k[0][0] + k[1][0], k[0][1] + k[1][1],
                   k[0][3] + k[1][3], k[1][NAS_STORE_TASK_DONE]};
    for (int i = 0; i < 5; i++) {
        nas_json_buf_key(&b, keys[i]);
        nas_json_buf_i64(&b, v[i]);
    }
    nas_json_buf_key(&b, "evaluations_per_hour");
    nas_json_buf_f64(&b, rate);
    nas_json_buf_key(&b, "best");
    nas_status_json_record(&b, best);
    nas_status_json_fidelity_of(&b, epochs, -1, -1, created_ms, now, n_stopped, &fr);
    nas_json_buf_obj_end(&b);
    nas_store_records_free(best, 1);
    nas_fidelity_ranks_fini(&fr);
    return nas_json_buf_take(&b, NULL);
}

START_TEST(test_status_db_matches_full_read) {
    make_db();
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, g_db, err), NAS_OK);
    nas_store_campaign_info info;
    ck_assert_int_eq(nas_store_campaign_get(st, &info, err), NAS_OK);
    int64_t created = info.created_ms;
    nas_store_campaign_info_fini(&info);
    char *doc = nas_status_from_store(st, 90000, err);
    ck_assert_msg(doc != NULL, "%s", err);
    char *ref = reference(st, created, 90000);
    nas_store_close(&st);
    nas_json *a = NULL, *b = NULL;
    ck_assert_int_eq(nas_json_parse(doc, strlen(doc), 0, &a, err), NAS_OK);
    ck_assert_int_eq(nas_json_parse(ref, strlen(ref), 0, &b, err), NAS_OK);
    for (size_t i = 0; i < b->len; i++)
        ck_assert_msg(nas_json_same(nas_json_get(a, b->members[i].key), &b->members[i].value),
                      "\"%s\" differs from the full read:\n%s\n%s", b->members[i].key, doc, ref);
    /* The store is what it was meant to be: every state, two rungs and a
     * final stage with a pair of figures, two stopped runs. */
    ck_assert_msg(strstr(doc, "\"done\":16,\"queued\":3,\"in_flight\":2,\"failed\":1,"
                              "\"final_done\":2"),
                  "%s", doc);
    ck_assert_int_eq(nas_json_get(b, "fidelity_ranks") ? 1 : 0, 1);
    ck_assert_int_eq((int)nas_json_get(nas_json_get(b, "fidelity_ranks"), "groups")->len, 3);
    ck_assert_int_eq((int)nas_json_get(nas_json_get(a, "resources"), "stopped")->number, 2);
    /* w3 holds the leased search task, w2 the final one. */
    ck_assert_msg(strstr(doc, "\"name\":\"w3\",\"host\":\"h1\",\"cores\":2,\"state\":\"busy\""),
                  "%s", doc);
    nas_json_free(&a);
    nas_json_free(&b);
    nas_free(ref);

    /* nasctl on the file: the same counts and epochs, text and --json. */
    char cmd[2 * PATH_MAX], out[16384];
    snprintf(cmd, sizeof cmd, "%s status --db %s --json", nas_bin("nasctl"), g_db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"source\":\"database\""), "%s", out);
    char *epochs = strstr(doc, "\"resources\":{\"epochs\":");
    ck_assert_ptr_nonnull(epochs);
    ck_assert_msg(strncmp(strstr(out, "\"resources\":{\"epochs\":"), epochs, 28) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s status --db %s", nas_bin("nasctl"), g_db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "evaluations   16/40 done, 3 queued, 2 in flight, 1 failed; "
                              "final stage 2 done"),
                  "%s", out);
    ck_assert_msg(strstr(out, "(2 run(s) stopped early)"), "%s", out);
    nas_free(doc);
    nas_tmpdir_rm(g_dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("status_db");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_status_db_matches_full_read);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
