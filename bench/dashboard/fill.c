/*
 * fill.c - bench/dashboard's store: a campaign with N search results
 * written through the store API as the master writes them (task, lease,
 * result with a learning curve), in batches of 1000 per transaction, by 16
 * workers, on NB201 cells (a cell may be evaluated more than once: the
 * space has 15,625), with accuracies and parameter counts spread so that
 * the Pareto front and the best-so-far curve have shape.
 *
 *   bench-dashboard-fill --db FILE [--results N]
 */
#include "common/err.h"
#include "common/fidelity.h"
#include "common/genome.h"
#include "master/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ < 0) {                                                                             \
            fprintf(stderr, "fill: %s: %s\n", #expr, err);                                         \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    const char *db = NULL;
    long n = 100000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--db") == 0) db = argv[i + 1];
        if (strcmp(argv[i], "--results") == 0) n = strtol(argv[i + 1], NULL, 10);
    }
    if (!db || n < 1) {
        fprintf(stderr, "usage: bench-dashboard-fill --db FILE [--results N]\n");
        return 2;
    }
    static const char *const ops[] = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                      "avg_pool_3x3"};
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    CHECK(nas_store_open(&st, db, err));
    nas_store_campaign c = {.name = "dash100k",
                            .text = "name: dash100k\n",
                            .canonical = "name: dash100k\nstrategy.name: evolution\n"
                                         "budget.evaluations: 100000\n",
                            .hash = 1,
                            .seed = 1};
    CHECK(nas_store_campaign_bind(st, &c, 1000, NULL, err));
    char workers[16][16];
    for (int w = 0; w < 16; w++) {
        snprintf(workers[w], sizeof workers[w], "w%02d", w);
        CHECK(nas_store_worker_seen(st, workers[w], "host", 2, "0.1", 1000, err));
    }
    int64_t t = 1700000000000LL;
    uint64_t rng = 88172645463325252ULL;
    for (long i = 0; i < n; i++) {
        if (i % 1000 == 0) CHECK(nas_store_batch_begin(st, err));
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int k = (int)(rng % 15625), e[6], kk = k;
        for (int j = 0; j < 6; j++)
            e[j] = kk % 5, kk /= 5;
        char text[256];
        snprintf(text, sizeof text, "|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|", ops[e[0]], ops[e[1]],
                 ops[e[2]], ops[e[3]], ops[e[4]], ops[e[5]]);
        nas_genome g;
        CHECK(nas_genome_parse(text, strlen(text), &g, err));
        /* Accuracy rises with the convolutions and with time (a search
         * that learns), with noise; parameters follow the convolutions. */
        int convs = 0;
        for (int j = 0; j < 6; j++)
            convs += e[j] == 2 || e[j] == 3;
        double noise = (double)(rng >> 40) / (double)(1ULL << 24);
        double acc = 0.5 + 0.04 * convs + 0.08 * (double)i / (double)n + 0.1 * noise;
        int64_t params = 20000 + 9000 * convs + (int64_t)(rng % 5000);
        const char *w = workers[i % 16];
        t += 7;
        nas_store_new_task nt = {.arch_hash = nas_genome_hash(&g),
                                 .arch_text = text,
                                 .params = params,
                                 .macs = params * 40,
                                 .stage = NAS_STORE_STAGE_SEARCH,
                                 .fidelity = nas_fidelity_default(),
                                 .lease_worker = w,
                                 .lease_expiry_ms = t + 60000};
        int64_t id;
        CHECK(nas_store_task_add(st, &nt, NULL, 0, t, &id, err));
        float curve[12];
        for (int j = 0; j < 12; j++)
            curve[j] = (float)(acc * (1.0 - exp(-0.4 * (j + 1))));
        nas_store_result r = {.accuracy = acc,
                              .loss = 1.0 - acc,
                              .test_accuracy = NAN,
                              .curve = curve,
                              .n_curve = 12,
                              .params = params,
                              .macs = params * 40,
                              .seconds = 30.0 + (double)(rng % 600) / 10.0,
                              .worker = w};
        if (nas_store_put_result(st, id, 1, &r, NULL, 0, t + 5, err) != NAS_STORE_APPLIED) {
            fprintf(stderr, "fill: result %ld: %s\n", i, err);
            return 1;
        }
        if (i % 1000 == 999 || i == n - 1) CHECK(nas_store_batch_commit(st, err));
    }
    nas_store_close(&st);
    printf("fill: %ld results in %s\n", n, db);
    return 0;
}
