/*
 * search_nb201.c - simulate nasd's search strategies on NAS-Bench-201.
 *
 * Every evaluation is a table lookup, so thousands of complete searches
 * run in seconds and the comparison measures the strategies alone.  The
 * protocol is NAS-Bench-201's (Dong & Yang 2020), with the budget counted
 * in evaluations: search on the 12-epoch CIFAR-10 validation accuracy
 * (`cifar10valid_valid_12ep`), and report the 200-epoch CIFAR-10 test
 * accuracy (`CIFAR10TestAccuracy200Epochs`) of the architecture the search
 * would pick, i.e. the best one by the search signal among those it
 * evaluated.
 *
 * Output, one tab-separated line per (strategy, seed, budget):
 *   strategy  seed  budget  test_acc_of_pick  evals_to_94
 * where evals_to_94 is the first evaluation count at which the pick's test
 * accuracy is >= 94.0 (-1 if not within the budget).  bench/search_nb201/run
 * feeds this to peer_optuna.py, which runs the Optuna peers and prints the
 * comparison.  Timings of PNAS's between-level step go to stderr.
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/log.h"
#include "common/table.h"
#include "master/strategy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB201_ARCHS 15625 /* 5^6 */
#define MAX_BUDGETS 8

typedef struct bench {
    float valid[NB201_ARCHS]; /* search signal, percent */
    float test[NB201_ARCHS];  /* reported figure, percent */
    int budgets[MAX_BUDGETS];
    int n_budgets;
    int seeds;
    double advance_ms; /* total time in PNAS's between-level step */
    int advances;
} bench;

/* Dense index of an NB201 genome: its six edge ops as base-5 digits. */
static int arch_index(const nas_genome *g) {
    int idx = 0;
    for (int e = NAS_NB201_EDGES - 1; e >= 0; e--)
        idx = idx * NAS_NB201_OP_COUNT + g->nb201[e];
    return idx;
}

static int load_tables(bench *b, const char *dir, char *err) {
    char p12[4096], p200[4096];
    snprintf(p12, sizeof p12, "%s/nb201_12epoch_accs.csv", dir);
    snprintf(p200, sizeof p200, "%s/nats_bench.csv", dir);
    nas_table *t12 = NULL, *t200 = NULL;
    int rc = nas_table_load(&t12, p12, "arch_str", err);
    if (rc == NAS_OK) rc = nas_table_load(&t200, p200, "ArchitectureString", err);
    int cv = rc ? -1 : nas_table_column(t12, "cifar10valid_valid_12ep");
    int ct = rc ? -1 : nas_table_column(t200, "CIFAR10TestAccuracy200Epochs");
    if (rc == NAS_OK && (cv < 0 || ct < 0))
        rc = nas_set_err(err, NAS_ENOTFOUND, "%s: missing accuracy column", cv < 0 ? p12 : p200);
    int seen = 0;
    static char have[NB201_ARCHS];
    memset(have, 0, sizeof have);
    for (int r = 0; rc == NAS_OK && r < nas_table_rows(t12); r++) {
        const char *key = nas_table_cell(t12, r, nas_table_column(t12, "arch_str"));
        nas_genome g;
        char gerr[NAS_ERR_LEN];
        if (nas_genome_parse(key, strlen(key), &g, gerr) != NAS_OK) {
            rc = nas_set_err(err, NAS_EFORMAT, "%s row %d: %s", p12, r + 1, gerr);
            break;
        }
        int r2 = nas_table_find(t200, key, strlen(key));
        if (r2 < 0) {
            rc = nas_set_err(err, NAS_ENOTFOUND, "%s has no row for %s", p200, key);
            break;
        }
        double v, t;
        rc = nas_table_number(t12, r, cv, &v, err);
        if (rc == NAS_OK) rc = nas_table_number(t200, r2, ct, &t, err);
        int idx = arch_index(&g);
        b->valid[idx] = (float)v;
        b->test[idx] = (float)t;
        seen += !have[idx];
        have[idx] = 1;
    }
    if (rc == NAS_OK && seen != NB201_ARCHS)
        rc = nas_set_err(err, NAS_EFORMAT, "%s covers %d of the %d cells", p12, seen, NB201_ARCHS);
    nas_table_destroy(&t12);
    nas_table_destroy(&t200);
    return rc;
}

/* One search of `budget` evaluations; writes the pick's test accuracy at
 * each checkpoint budget <= budget, and the evaluations to reach 94. */
static int run_one(bench *b, const nas_strategy_config *cfg, uint64_t seed, double *at_budget,
                   int *evals94, double *rho) {
    nas_strategy *s = NULL;
    char err[NAS_ERR_LEN];
    int rc = nas_strategy_create(&s, cfg, seed, err);
    if (rc) {
        fprintf(stderr, "search_nb201: %s\n", err);
        return rc;
    }
    float best_valid = -1.0f, pick_test = 0.0f;
    int evals = 0, next_cp = 0;
    *evals94 = -1;
    while (evals < cfg->budget) {
        if (nas_strategy_needs_prepare(s)) {
            uint64_t t0 = nas_now_ms();
            rc = nas_strategy_prepare(s, err);
            b->advance_ms += (double)(nas_now_ms() - t0);
            b->advances++;
            if (rc) break;
        }
        nas_proposal p;
        rc = nas_strategy_propose(s, &p, err);
        if (rc == NAS_ESTATE) {
            rc = NAS_OK;
            break;
        }
        if (rc) break; /* sequential: EAGAIN cannot happen with nothing in flight */
        int idx = arch_index(&p.genome);
        nas_observation o = {.genome = p.genome,
                             .hash = nas_genome_hash(&p.genome),
                             .ok = 1,
                             .accuracy = b->valid[idx] / 100.0};
        rc = nas_strategy_observe(s, &o, err);
        if (rc) break;
        evals++;
        if (b->valid[idx] > best_valid) {
            best_valid = b->valid[idx];
            pick_test = b->test[idx];
        }
        if (*evals94 < 0 && pick_test >= 94.0f) *evals94 = evals;
        while (next_cp < b->n_budgets && b->budgets[next_cp] == evals)
            at_budget[next_cp++] = pick_test;
    }
    /* A search that stopped early (PNAS after its last level) keeps its pick. */
    for (; next_cp < b->n_budgets; next_cp++)
        at_budget[next_cp] = pick_test;
    *rho = nas_strategy_rank_correlation(s);
    if (rc)
        fprintf(stderr, "search_nb201: %s seed %llu: %s\n", cfg->name, (unsigned long long)seed,
                err);
    nas_strategy_destroy(&s);
    return rc;
}

static void emit(const char *label, int seed, int budget, double acc, int e94) {
    printf("%s\t%d\t%d\t%.4f\t%d\n", label, seed, budget, acc, e94);
}

static nas_strategy_config base_config(const char *name, int budget) {
    nas_strategy_config c;
    nas_strategy_config_default(&c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.space.kind = NAS_SPACE_NB201;
    c.space.n_blocks = 2;
    c.budget = budget;
    return c;
}

static int run_all(bench *b) {
    int maxb = b->budgets[b->n_budgets - 1];
    double acc[MAX_BUDGETS];
    int e94;
    /* Random and evolution propose the same sequence whatever the budget:
     * one search at the largest budget gives every checkpoint. */
    struct {
        const char *label, *name;
        int P, S;
    } plain[] = {{"random", "random", 20, 5},
                 {"evolution-p10s3", "evolution", 10, 3},
                 {"evolution-p20s5", "evolution", 20, 5}};
    for (size_t k = 0; k < NAS_ARRAY_LEN(plain); k++) {
        nas_strategy_config c = base_config(plain[k].name, maxb);
        c.population = plain[k].P;
        c.sample = plain[k].S;
        for (int seed = 0; seed < b->seeds; seed++) {
            double rho;
            if (run_one(b, &c, (uint64_t)seed, acc, &e94, &rho)) return 1;
            for (int i = 0; i < b->n_budgets; i++) {
                int e = e94 >= 0 && e94 <= b->budgets[i] ? e94 : -1;
                emit(plain[k].label, seed, b->budgets[i], acc[i], e);
            }
        }
    }
    /* PNAS sizes its beam to the budget: level 1 (every 1-node cell), then
     * the best K = budget - |level 1| expansions by the predictor. */
    nas_space sp = {.kind = NAS_SPACE_NB201, .n_blocks = 2};
    sp.op_mask = nas_space_default_ops(NAS_SPACE_NB201);
    nas_genome *l1 = NULL;
    int n1 = nas_genome_enumerate_level1(&sp, &l1);
    nas_free(l1);
    for (int i = 0; i < b->n_budgets; i++) {
        double rho_sum = 0.0;
        int rho_n = 0;
        nas_strategy_config c = base_config("pnas", b->budgets[i]);
        c.max_blocks = 2;
        c.beam = b->budgets[i] > n1 ? b->budgets[i] - n1 : 1;
        for (int seed = 0; seed < b->seeds; seed++) {
            double a[MAX_BUDGETS];
            bench one = *b;
            one.n_budgets = 1;
            one.budgets[0] = b->budgets[i];
            one.advance_ms = 0, one.advances = 0;
            double rho;
            if (run_one(&one, &c, (uint64_t)seed, a, &e94, &rho)) return 1;
            if (!isnan(rho)) rho_sum += rho, rho_n++; /* NAN until level 2 is complete */
            b->advance_ms += one.advance_ms;
            b->advances += one.advances;
            emit("pnas", seed, b->budgets[i], a[0], e94);
        }
        /* The predictor's Spearman correlation on level 2's results, measured
         * before it saw them (only where the budget completes level 2). */
        if (rho_n)
            fprintf(stderr,
                    "search_nb201: pnas@%d predictor rank correlation on level 2: %.3f "
                    "mean over %d seeds (K = %d)\n",
                    b->budgets[i], rho_sum / rho_n, rho_n, c.beam);
    }
    if (b->advances)
        fprintf(stderr,
                "search_nb201: pnas between-level step (refit + rank): %.1f ms mean over "
                "%d (level 1 = %d cells)\n",
                b->advance_ms / b->advances, b->advances, n1);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: search_nb201 --table DIR [--seeds N] [--budgets 50,100,200,500]\n"
               "  DIR holds nb201_12epoch_accs.csv and nats_bench.csv\n");
}

int main(int argc, char **argv) {
    static bench b;
    const char *dir = NULL;
    b.seeds = 100;
    int defaults[] = {50, 100, 200, 500};
    b.n_budgets = 4;
    memcpy(b.budgets, defaults, sizeof defaults);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--table") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            b.seeds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--budgets") == 0 && i + 1 < argc) {
            b.n_budgets = 0;
            for (char *tok = strtok(argv[++i], ","); tok && b.n_budgets < MAX_BUDGETS;
                 tok = strtok(NULL, ","))
                b.budgets[b.n_budgets++] = atoi(tok);
        } else {
            fprintf(stderr, "search_nb201: unknown or incomplete argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!dir || b.seeds < 1 || b.n_budgets < 1) {
        usage(stderr);
        return 2;
    }
    for (int i = 0; i < b.n_budgets; i++)
        if (b.budgets[i] < 1 || (i > 0 && b.budgets[i] <= b.budgets[i - 1])) {
            fprintf(stderr, "search_nb201: budgets must be positive and increasing\n");
            return 2;
        }
    nas_log_set_level(NAS_LOG_WARN);
    char err[NAS_ERR_LEN];
    if (load_tables(&b, dir, err) != NAS_OK) {
        fprintf(stderr, "search_nb201: %s\n", err);
        return 1;
    }
    return run_all(&b);
}
