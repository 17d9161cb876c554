/*
 * strategy_evo.c - regularized ("aging") evolution, Real et al. 2019.
 *
 * The population is a FIFO of at most P evaluated architectures, oldest
 * first.  Until P members exist (counting random proposals still in
 * flight) the strategy proposes the configured seed presets and then
 * uniformly random genomes.  After that each proposal samples S distinct
 * members uniformly, mutates the best of the sample (by reward) and names
 * it as the child's parent.  When a result arrives it joins the population
 * and, if that makes P + 1, the OLDEST member dies, whatever its accuracy:
 * this is what distinguishes aging evolution from tournament selection
 * that kills the worst, and it is what keeps the search from settling on
 * an architecture that was lucky once.  Failed evaluations never join.
 *
 * The search is asynchronous: a proposal uses whatever results are in, so
 * any number of proposals may be in flight.  A mutated child that is a
 * network already proposed is re-drawn a bounded number of times, so the
 * budget is not spent re-evaluating known networks (Real et al. retrain
 * duplicates; with tabular or deterministic training that is pure waste).
 */
#include "master/strategy_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

/* Re-draws of a duplicate child before the strategy accepts it anyway. */
#define NAS_EVO_MUTATE_TRIES 64
/* Random samples tried for a fresh member of the first population. */
#define NAS_EVO_SAMPLE_TRIES 500

typedef struct evo_state {
    int *pop;       /* indices into the history, oldest first */
    int n_pop;      /* <= population + 1 transiently, == population at most after observe */
    int seeds_used; /* seed presets proposed so far */
} evo_state;

static int evo_init(nas_strategy *s, char *err) {
    evo_state *st = nas_calloc(1, sizeof *st);
    if (st) st->pop = nas_calloc((size_t)s->cfg.population + 1, sizeof *st->pop);
    if (!st || !st->pop) {
        nas_free(st);
        return nas_set_err(err, NAS_ENOMEM, "strategy evolution: out of memory");
    }
    s->impl = st;
    return NAS_OK;
}

static void evo_fini(nas_strategy *s) {
    evo_state *st = s->impl;
    if (!st) return;
    nas_free(st->pop);
    nas_free(st);
}

/* Random (parentless) proposals still in flight: members-to-be of the
 * first population. */
static int inflight_random(const nas_strategy *s) {
    int n = 0;
    for (int i = 0; i < s->n_inflight; i++)
        n += !s->inflight[i].has_parent;
    return n;
}

/* Tournament: S distinct members uniformly at random (a partial
 * Fisher-Yates over the population), the one with the highest reward wins;
 * a tie goes to the first drawn. Returns a history index. */
static int evo_tournament(nas_strategy *s, evo_state *st) {
    int idx[st->n_pop];
    for (int i = 0; i < st->n_pop; i++)
        idx[i] = st->pop[i];
    int k = s->cfg.sample < st->n_pop ? s->cfg.sample : st->n_pop;
    int best = -1;
    for (int i = 0; i < k; i++) {
        int j = i + (int)nas_rng_below(&s->rng, (uint32_t)(st->n_pop - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        if (best < 0 || nas__hist(s, idx[i])->reward > nas__hist(s, best)->reward) best = idx[i];
    }
    return best;
}

static int evo_propose_child(nas_strategy *s, evo_state *st, nas_proposal *out, char *err) {
    int parent = evo_tournament(s, st);
    const nas__record *p = nas__hist(s, parent);
    nas_mutation what = {0};
    for (int t = 0; t < NAS_EVO_MUTATE_TRIES; t++) {
        int rc = nas_genome_mutate(&p->genome, &s->cfg.space, s->cfg.p_identity, &s->rng,
                                   &out->genome, &what);
        if (rc) return nas_set_err(err, rc, "strategy evolution: mutation failed");
        if (!nas__strategy_seen(s, nas_genome_hash(&out->genome))) break;
    }
    char desc[160];
    if (nas_mutation_format(&what, &p->genome, desc, sizeof desc) < 0) desc[0] = '\0';
    nas_debug("strategy evolution: parent %016llx (%.4f) -> %s", (unsigned long long)p->hash,
              p->reward, desc);
    out->has_parent = 1;
    out->parent_hash = p->hash;
    return NAS_OK;
}

static int evo_propose(nas_strategy *s, nas_proposal *out, char *err) {
    evo_state *st = s->impl;
    int filling = st->n_pop + inflight_random(s) < s->cfg.population;
    /* Seed presets first, skipping any that are the same network. */
    while (filling && st->seeds_used < s->cfg.n_seeds) {
        char perr[NAS_ERR_LEN];
        int rc = nas_genome_preset(s->cfg.seeds[st->seeds_used++], &out->genome, perr);
        if (rc) return nas_set_err(err, rc, "strategy evolution: %s", perr);
        if (out->genome.space != s->cfg.space.kind)
            return nas_set_err(err, NAS_EINVAL,
                               "strategy evolution: seed '%s' is not in the "
                               "search space",
                               s->cfg.seeds[st->seeds_used - 1]);
        if (nas__strategy_seen(s, nas_genome_hash(&out->genome))) continue;
        goto commit;
    }
    if (filling || st->n_pop == 0) {
        int rc = nas__strategy_sample_new(s, NAS_EVO_SAMPLE_TRIES, &out->genome);
        if (rc == NAS_OK) goto commit;
        if (rc != NAS_ENOTFOUND) return nas_set_err(err, rc, "strategy evolution: cannot sample");
        /* The space has (almost) no unseen network left: evolve what exists. */
        if (st->n_pop == 0)
            return nas_set_err(err, NAS_EAGAIN,
                               "strategy evolution: no new random genome and "
                               "no population yet");
    }
    int rc = evo_propose_child(s, st, out, err);
    if (rc) return rc;
commit:
    if (nas__strategy_commit(s, out))
        return nas_set_err(err, NAS_ENOMEM, "strategy: out of memory");
    return NAS_OK;
}

static int evo_observe(nas_strategy *s, int idx, int was_inflight, char *err) {
    evo_state *st = s->impl;
    if (!nas__hist(s, idx)->ok) return NAS_OK;
    st->pop[st->n_pop++] = idx;
    if (st->n_pop > s->cfg.population) {
        /* Aging: the oldest dies, not the worst. */
        nas_debug("strategy evolution: member %016llx (%.4f) dies of age",
                  (unsigned long long)nas__hist(s, st->pop[0])->hash,
                  nas__hist(s, st->pop[0])->reward);
        memmove(st->pop, st->pop + 1, (size_t)(st->n_pop - 1) * sizeof *st->pop);
        st->n_pop--;
    }
    return NAS_OK;
}

/* Only the population is read again (tournaments, parents): records older
 * than its oldest member are never needed. */
static int evo_keep_from(const nas_strategy *s) {
    const evo_state *st = s->impl;
    return st->n_pop > 0 ? st->pop[0] : s->n_hist;
}

static int evo_finished(const nas_strategy *s) {
    return 0;
}

static void evo_save(const nas_strategy *s, nas__wbuf *w) {
    const evo_state *st = s->impl;
    nas__w_i32(w, st->seeds_used);
    nas__w_i32(w, st->n_pop);
    for (int i = 0; i < st->n_pop; i++)
        nas__w_i32(w, st->pop[i]);
}

static int evo_load(nas_strategy *s, nas__rbuf *r) {
    evo_state *st = s->impl;
    int seeds_used = nas__r_i32(r, 0, s->cfg.n_seeds, "evolution seed count");
    int n_pop = nas__r_i32(r, 0, s->cfg.population, "evolution population size");
    int pop[n_pop > 0 ? n_pop : 1];
    for (int i = 0; i < n_pop && !r->bad; i++) {
        pop[i] = nas__r_i32(r, 0, s->n_hist - 1, "evolution member index");
        /* Members are kept in age order, and only successful ones join. */
        if (!r->bad && ((i > 0 && pop[i] <= pop[i - 1]) || !nas__hist(s, pop[i])->ok))
            nas__r_fail(r, "evolution member order");
    }
    if (r->bad) return NAS_EFORMAT;
    st->seeds_used = seeds_used;
    st->n_pop = n_pop;
    memcpy(st->pop, pop, (size_t)n_pop * sizeof *pop);
    return NAS_OK;
}

static int evo_describe(const nas_strategy *s, char *buf, size_t cap) {
    const evo_state *st = s->impl;
    return snprintf(buf, cap, "evolution: population %d/%d, sample %d", st->n_pop,
                    s->cfg.population, s->cfg.sample);
}

int nas__strategy_evo_population(const nas_strategy *s, nas_observation *out, int cap) {
    const evo_state *st = s->impl;
    int n = 0;
    for (; n < st->n_pop && n < cap; n++) {
        const nas__record *r = nas__hist(s, st->pop[n]);
        out[n] = (nas_observation){.genome = r->genome,
                                   .hash = r->hash,
                                   .ok = r->ok,
                                   .accuracy = r->accuracy,
                                   .params = r->params,
                                   .macs = r->macs};
    }
    return st->n_pop;
}

const nas__strategy_vtable nas__strategy_evo_vt = {
    .name = "evolution",
    .init = evo_init,
    .fini = evo_fini,
    .propose = evo_propose,
    .observe = evo_observe,
    .keep_from = evo_keep_from,
    .finished = evo_finished,
    .save = evo_save,
    .load = evo_load,
    .describe = evo_describe,
};
