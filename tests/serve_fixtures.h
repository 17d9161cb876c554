/*
 * serve_fixtures.h - a real campaign store for the dashboard suites
 * (test_serve.c, test_serve_http.c), written through the store API as the
 * master writes it: NB201 genomes, results with learning curves, a worker,
 * failures, weights.  Functions are static inline so that a suite that
 * does not use one does not warn.
 */
#ifndef NAS_TEST_SERVE_FIXTURES_H
#define NAS_TEST_SERVE_FIXTURES_H

#include "common/err.h"
#include "common/genome.h"
#include "master/store.h"
#include "tests/harness.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The k-th NB201 cell (k < 4096) as text, and its hash.  No edge is
 * "none": a cell with a dead edge can be the same function (the same
 * hash) as another, and the store keeps one text per hash. */
static inline uint64_t fx_arch(int k, char *text, size_t cap) {
    static const char *const ops[] = {"skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                      "avg_pool_3x3"};
    ck_assert_int_lt(k, 4096);
    int e[6];
    for (int i = 0; i < 6; i++)
        e[i] = k % 4, k /= 4;
    snprintf(text, cap, "|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|", ops[e[0]], ops[e[1]], ops[e[2]],
             ops[e[3]], ops[e[4]], ops[e[5]]);
    nas_genome g;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_genome_parse(text, strlen(text), &g, err) == NAS_OK, "%s", err);
    return nas_genome_hash(&g);
}

/* Result i's accuracy and parameters: a spread with a known front. */
static inline double fx_acc(int i) {
    return 0.5 + 0.4 * (double)((i * 37) % 101) / 100.0;
}
static inline int64_t fx_params(int i) {
    return 1000 + (int64_t)((i * 53) % 97) * 100;
}

/* Add search task k (the k-th cell), optionally leased to `worker`. */
static inline int64_t fx_add(nas_store *st, int k, const char *worker, int64_t now) {
    char text[256], err[NAS_ERR_LEN];
    nas_store_new_task t = {.arch_hash = fx_arch(k, text, sizeof text),
                            .arch_text = text,
                            .params = fx_params(k),
                            .macs = fx_params(k) * 40,
                            .stage = NAS_STORE_STAGE_SEARCH,
                            .fidelity = nas_fidelity_default(),
                            .lease_worker = worker,
                            .lease_expiry_ms = now + 60000};
    int64_t id;
    ck_assert_msg(nas_store_task_add(st, &t, NULL, 0, now, &id, err) == NAS_OK, "%s", err);
    return id;
}

/* Record the result of leased task `id` (made by fx_add(st, k, worker)). */
static inline void fx_result(nas_store *st, int64_t id, int k, const char *worker, int64_t now) {
    char err[NAS_ERR_LEN];
    float curve[3] = {(float)fx_acc(k) * 0.5f, (float)fx_acc(k) * 0.8f, (float)fx_acc(k)};
    nas_store_result r = {.accuracy = fx_acc(k),
                          .loss = 0.5,
                          .test_accuracy = NAN,
                          .curve = curve,
                          .n_curve = 3,
                          .params = fx_params(k),
                          .macs = fx_params(k) * 40,
                          .seconds = 2.0,
                          .worker = worker};
    ck_assert_msg(nas_store_put_result(st, id, 1, &r, NULL, 0, now, err) == NAS_STORE_APPLIED, "%s",
                  err);
}

/* A store with `n` search results by w1 and w2 (alternating), one task
 * still leased to w1, one failed attempt (back in the queue), and a
 * weights file.  Returns the writer handle (the caller closes it). */
static inline nas_store *fx_store(const char *path, int n) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_msg(nas_store_open(&st, path, err) == NAS_OK, "%s", err);
    nas_store_campaign c = {.name = "dash",
                            .text = "name: dash\n",
                            .canonical = "name: dash\nstrategy.name: evolution\n"
                                         "budget.evaluations: 500\n",
                            .hash = 77,
                            .seed = 1};
    ck_assert_msg(nas_store_campaign_bind(st, &c, 1000, NULL, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(nas_store_worker_seen(st, "w1", "h1", 2, "0.1", 1000, err), NAS_OK);
    ck_assert_int_eq(nas_store_worker_seen(st, "w2", "h2", 4, "0.1", 1000, err), NAS_OK);
    ck_assert_int_eq(nas_store_batch_begin(st, err), NAS_OK);
    for (int i = 0; i < n; i++) {
        const char *w = i % 2 ? "w2" : "w1";
        int64_t id = fx_add(st, i, w, 2000 + i);
        fx_result(st, id, i, w, 3000 + i * 10);
    }
    ck_assert_int_eq(nas_store_batch_commit(st, err), NAS_OK);
    int64_t failing = fx_add(st, n, "w2", 9000);
    ck_assert_int_eq(nas_store_put_failure(st, failing, 1, NAS_STORE_FAIL_TRAINING, "NaN loss", 3,
                                           NULL, 0, 9100, err),
                     NAS_STORE_APPLIED);
    fx_add(st, n + 1, "w1", 9200);
    char text[256];
    ck_assert_int_eq(
        nas_store_weights_put(st, fx_arch(0, text, sizeof text), "/tmp/x.st", 4096, 9300, err),
        NAS_OK);
    return st;
}

#endif
