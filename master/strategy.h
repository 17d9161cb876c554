/*
 * strategy.h - the one interface every search strategy implements
 * (ARCHITECTURE.md, Strategies): random search, regularized evolution, PNAS.
 *
 * The campaign asks for a proposal whenever a worker is free (search is
 * asynchronous: nobody waits for a whole generation), and hands every
 * finished evaluation back through observe().  The strategy's core state
 * (population with ages, PNAS level and beam, predictor weights, RNG,
 * in-flight proposals) is serialised by save_core() into a blob that the
 * store writes in the same SQLite transaction as the result that changed
 * it; with the history the store keeps anyway, load_core() after a crash
 * continues exactly where the search stood.
 *
 * A strategy never touches the network, the database or the clock.
 */
#ifndef NAS_STRATEGY_H
#define NAS_STRATEGY_H

#include "common/genome.h"

#include <stddef.h>
#include <stdint.h>

/* Parameters of every strategy, filled from the campaign file. */
typedef struct nas_strategy_config {
    char name[32];         /* "random", "evolution", "pnas" */
    nas_space space;       /* the search space */
    int budget;            /* evaluations the search may spend (>= 1) */
    /* regularized evolution (Real et al. 2019) */
    int population;        /* P, default 20 */
    int sample;            /* S, tournament size, default 5 */
    float p_identity;      /* probability of the identity mutation, default 0 */
    char seeds[8][32];     /* optional preset names seeding the first population */
    int n_seeds;
    /* PNAS (Liu et al. 2018) */
    int beam;              /* K, architectures trained per level, default 16 */
    int max_blocks;        /* B, last level, default space.n_blocks */
    int ensemble;          /* MLPs in the predictor ensemble, default 5 */
    int use_lstm;          /* 1 = add the LSTM predictor to the ensemble, default 1 */
    /* multi-objective (MnasNet): reward = acc * (x / target)^w, 0 = off */
    int64_t target_params;
    int64_t target_macs;
    float mo_weight;       /* w, default -0.07 */
} nas_strategy_config;

void nas_strategy_config_default(nas_strategy_config *cfg);

/* A genome the strategy wants evaluated. */
typedef struct nas_proposal {
    nas_genome genome;
    int has_parent;        /* 1 if derived from an evaluated architecture */
    uint64_t parent_hash;  /* its canonical hash (the weight store keys on it) */
} nas_proposal;

/* A finished evaluation. */
typedef struct nas_observation {
    nas_genome genome;
    uint64_t hash;         /* nas_genome_hash(&genome) */
    int ok;                /* 0 = the task failed for good (no accuracy) */
    double accuracy;       /* validation accuracy in [0, 1] (the search signal) */
    int64_t params;
    int64_t macs;
} nas_observation;

typedef struct nas_strategy nas_strategy;

/* Create a strategy by cfg->name, seeded with `seed`. NAS_EINVAL + err for
 * an unknown name or impossible parameters. */
int nas_strategy_create(nas_strategy **out, const nas_strategy_config *cfg, uint64_t seed,
                        char *err);
void nas_strategy_destroy(nas_strategy **sp);

const char *nas_strategy_name(const nas_strategy *s);

/* Next genome to evaluate.  Returns NAS_OK, NAS_EAGAIN when the strategy
 * must see outstanding results first (e.g. PNAS between levels, evolution
 * before its population is full and nothing is left to sample), or
 * NAS_ESTATE once done().  Proposals are counted against the budget. */
int nas_strategy_propose(nas_strategy *s, nas_proposal *out, char *err);

/* Hand back a result of a proposal (in any order). */
int nas_strategy_observe(nas_strategy *s, const nas_observation *obs, char *err);

/* A proposal that will never be evaluated (task failed for good, or
 * abandoned): lets the strategy stop waiting for it. Same as observe with
 * ok = 0. */

/* 1 when the budget is spent and every proposal has been observed. */
int nas_strategy_done(const nas_strategy *s);

/* Serialise the whole state including the history (format 1; malloc'd
 * blob, free with nas_free) / restore it into a strategy created with the
 * same config and seed.  Self-contained, for tests, exports and stores
 * written before format 2; a campaign saves the core (below). */
int nas_strategy_save(const nas_strategy *s, uint8_t **blob, size_t *n);
int nas_strategy_load(nas_strategy *s, const uint8_t *blob, size_t n, char *err);

/* ---- incremental state (format 2) -------------------------------------------------
 *
 * A campaign does not rewrite the whole history at every step: the core
 * blob holds only what the history does not say (RNG, counters, in-flight
 * proposals by hash, the population / PNAS level and beam, the predictor),
 * so its size and its cost are O(population + in-flight), not O(history).
 * The history itself (every proposal and every observation, in order) is
 * what the campaign's store already holds; load_core() takes it back from
 * there and rebuilds the history, the proposed-hash set and the in-flight
 * genomes exactly as they were. */

/* The proposals and observations made so far, each in its own order. */
typedef struct nas_strategy_history {
    const nas_proposal *proposals; /* every proposal, in the order made (genomes only
                                      are used; the parent comes from the core) */
    int n_proposals;
    const nas_observation *observations; /* every observation, in the order observed */
    int n_observations;
} nas_strategy_history;

/* The core state (format 2), malloc'd (nas_free). */
int nas_strategy_save_core(const nas_strategy *s, uint8_t **blob, size_t *n);

/* Restore a core blob together with the history it was saved after, into
 * a strategy created with the same config and seed.  NAS_EFORMAT with a
 * message when the blob is damaged or does not match the history (other
 * counts, an in-flight hash nobody proposed); NAS_EVERSION for a
 * whole-history (format 1) blob, which nas_strategy_load() reads.  On
 * failure `s` is unchanged. */
int nas_strategy_load_core(nas_strategy *s, const uint8_t *blob, size_t n,
                           const nas_strategy_history *h, char *err);

/* The format version of a blob (1 whole history, 2 core), NAS_EFORMAT if
 * it is not a strategy blob. */
int nas_strategy_blob_version(const uint8_t *blob, size_t n);

/* Observations recorded so far: the last observe() was number len - 1,
 * which is what the campaign stores as its observation number. */
int nas_strategy_history_len(const nas_strategy *s);
/* Observation i of the history (0 = oldest). NAS_EINVAL out of range,
 * NAS_ERANGE when a bounded history has dropped it. */
int nas_strategy_history_get(const nas_strategy *s, int i, nas_observation *out);

/* Keep in memory only the observations the search will read again
 * (evolution: its population; random search: none; PNAS: all, its
 * predictor is fitted on every one), not the whole history, so that a
 * campaign's memory does not grow with its results.  For callers that
 * keep the history elsewhere (the campaign's store, which load_core()
 * reads back): afterwards nas_strategy_save() (format 1, the whole
 * history) answers NAS_ESTATE and history_get() NAS_ERANGE for a dropped
 * observation.  What the strategy proposes is unchanged.  It stays
 * bounded across load_core(). */
void nas_strategy_bound_history(nas_strategy *s);

/* A short human-readable status ("population 20/20, best 0.912") and, for
 * PNAS, the last measured predictor rank correlation (NAN if none). */
int nas_strategy_describe(const nas_strategy *s, char *buf, size_t cap);
double nas_strategy_rank_correlation(const nas_strategy *s);

/* The one expensive step of any strategy, split out so the campaign can
 * keep its event loop responsive: PNAS, between levels, refits its
 * predictor and ranks the next level's candidates (docs/STRATEGIES.md gives
 * the cost).  needs_prepare() is 1 when the next propose() would do that
 * work first; the campaign may then run nas_strategy_prepare() on a worker
 * thread (uv_queue_work), calling nothing else on this strategy until it
 * returns.  A caller that does not bother gets the same result: propose()
 * runs the step inline.  Strategies without such a step always answer 0
 * and prepare() is a no-op. */
int nas_strategy_needs_prepare(const nas_strategy *s);
int nas_strategy_prepare(nas_strategy *s, char *err);

/* Regularized evolution's current population, oldest first: writes up to
 * `cap` members into out and returns the population size (0 for the other
 * strategies). For nasctl and for tests of aging. */
int nas_strategy_population(const nas_strategy *s, nas_observation *out, int cap);

/* Weight inheritance (master/weights.h; implemented in master/strategy_live.c).
 * uses_parents(): 1 when proposals name parents whose trained weights a
 * child may start from (regularized evolution), so the campaign asks
 * workers to push their trained weights; 0 for random search and PNAS.
 * is_live_parent(): 1 while `hash` may still be chosen as a parent
 * (evolution: it is in the population), 0 once it can never be again
 * (evolution: it aged out or never got in; every hash for the others), so
 * the weight store may drop it. */
int nas_strategy_uses_parents(const nas_strategy *s);
int nas_strategy_is_live_parent(const nas_strategy *s, uint64_t hash);

#endif
