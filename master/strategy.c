/*
 * strategy.c - the strategy front door: defaults and validation, creation by
 * name, the bookkeeping every strategy shares (history, proposed hashes,
 * in-flight list, budget, best), and the versioned state blob.
 *
 * Blob formats (little-endian; docs/STRATEGIES.md has the table).  Version
 * 1, the whole state, is what nas_strategy_save() writes; version 2, the
 * core without the history, is strategy_core.c's.  Both share the frame:
 *   "NASS"  u32 version  u8 strategy id  u64 config fingerprint
 *   u64 payload length   payload          u64 FNV-1a of all preceding bytes
 * The payload is the base section (RNG, counters, history, in-flight
 * proposals, proposed hashes) followed by the strategy's own section.
 * load() checks magic, version, strategy, fingerprint, length and checksum
 * before it parses anything, and parses with a bounds-checked reader, so a
 * truncated or corrupted blob is refused with a message and never crashes.
 */
#include "master/strategy_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "master/pareto.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NAS_BLOB_MAGIC   "NASS"
#define NAS_BLOB_VERSION 1u
#define NAS_FNV_OFFSET   0xcbf29ce484222325ULL
#define NAS_FNV_PRIME    0x100000001b3ULL

static const nas__strategy_vtable *const kinds[] = {
    &nas__strategy_random_vt,
    &nas__strategy_evo_vt,
    &nas__strategy_pnas_vt,
};

// ---- hash set ----------------------------------------------------------------------

/* Canonical hashes are already FNV-1a outputs, but the low bits of FNV are
 * its weakest; a splitmix finaliser spreads them before masking. */
static size_t hashset_slot(uint64_t key, size_t cap) {
    return (size_t)nas_mix64(key) & (cap - 1);
}

/* Linear probing: an empty slot (0) ends the search.  The key 0 cannot be
 * stored in a slot, so it lives in a flag of its own. */
int nas__hashset_has(const nas__hashset *h, uint64_t key) {
    if (key == 0) return h->has_zero;
    if (h->cap == 0) return 0;
    for (size_t i = hashset_slot(key, h->cap);; i = (i + 1) & (h->cap - 1)) {
        if (h->slot[i] == key) return 1;
        if (h->slot[i] == 0) return 0;
    }
}

int nas__hashset_add(nas__hashset *h, uint64_t key) {
    if (key == 0) {
        int added = !h->has_zero;
        h->has_zero = 1;
        return added;
    }
    if (nas__hashset_has(h, key)) return 0;
    /* Keep the load under one half so probes stay short. */
    if ((h->count + 1) * 2 > h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        uint64_t *slot = nas_calloc(cap, sizeof *slot);
        if (!slot) return NAS_ENOMEM;
        for (size_t i = 0; i < h->cap; i++) {
            if (!h->slot[i]) continue;
            size_t j = hashset_slot(h->slot[i], cap);
            while (slot[j])
                j = (j + 1) & (cap - 1);
            slot[j] = h->slot[i];
        }
        nas_free(h->slot);
        h->slot = slot;
        h->cap = cap;
    }
    size_t j = hashset_slot(key, h->cap);
    while (h->slot[j])
        j = (j + 1) & (h->cap - 1);
    h->slot[j] = key;
    h->count++;
    return 1;
}

void nas__hashset_free(nas__hashset *h) {
    nas_free(h->slot);
    memset(h, 0, sizeof *h);
}

// ---- shared helpers ----------------------------------------------------------------

/* Grow an array of `size`-byte elements to hold at least `need`. */
static int grow(void **p, int *cap, int need, size_t size) {
    if (need <= *cap) return NAS_OK;
    int c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = nas_realloc(*p, (size_t)c * size);
    if (!q) return NAS_ENOMEM;
    *p = q;
    *cap = c;
    return NAS_OK;
}

double nas__strategy_reward(const nas_strategy_config *cfg, const nas_observation *obs) {
    /* MnasNet's soft constraint: a model at the target scores its accuracy,
     * a model twice as large loses about 5% of it at w = -0.07. */
    return nas_pareto_reward(obs->accuracy, obs->params, obs->macs, cfg->target_params,
                             cfg->target_macs, cfg->mo_weight);
}

/* Both proposals and observations enter the set: a network the campaign
 * evaluated for any reason is never proposed again. */
int nas__strategy_seen(const nas_strategy *s, uint64_t hash) {
    return nas__hashset_has(&s->seen, hash);
}

int nas__strategy_seen_add(nas_strategy *s, uint64_t hash) {
    int rc = nas__hashset_add(&s->seen, hash);
    if (rc <= 0) return rc;
    if (s->bounded) return NAS_OK; /* the list only serves format 1 */
    if (grow((void **)&s->seen_list, &s->cap_seen, s->n_seen + 1, sizeof(uint64_t)))
        return NAS_ENOMEM;
    s->seen_list[s->n_seen++] = hash;
    return NAS_OK;
}

/* The in-flight arrays grow together so that their indices stay aligned;
 * the capacity is updated only when both reallocations succeeded. */
int nas__strategy_commit(nas_strategy *s, const nas_proposal *p) {
    if (s->n_inflight + 1 > s->cap_inflight) {
        int c = s->cap_inflight ? s->cap_inflight * 2 : 16;
        nas_proposal *q = nas_realloc(s->inflight, (size_t)c * sizeof *q);
        if (!q) return NAS_ENOMEM;
        s->inflight = q;
        uint64_t *h = nas_realloc(s->inflight_hash, (size_t)c * sizeof *h);
        if (!h) return NAS_ENOMEM;
        s->inflight_hash = h;
        s->cap_inflight = c;
    }
    uint64_t h = nas_genome_hash(&p->genome);
    if (nas__strategy_seen_add(s, h) < 0) return NAS_ENOMEM;
    /* The in-flight copy is kept canonical, which is the form the campaign
     * stores and a rebuilt state (strategy_core.c) gets back. */
    s->inflight[s->n_inflight] = *p;
    nas_genome_canonical(&p->genome, &s->inflight[s->n_inflight].genome);
    s->inflight_hash[s->n_inflight++] = h;
    s->proposed++;
    return NAS_OK;
}

/* Rejection sampling keeps the distribution uniform over the unseen
 * networks of the space (up to the sampler's own uniformity). */
int nas__strategy_sample_new(nas_strategy *s, int tries, nas_genome *out) {
    for (int t = 0; t < tries; t++) {
        if (nas_genome_sample(&s->cfg.space, &s->rng, out) != NAS_OK) return NAS_EINVAL;
        if (!nas__strategy_seen(s, nas_genome_hash(out))) return NAS_OK;
    }
    return NAS_ENOTFOUND;
}

// ---- config and lifecycle ------------------------------------------------------------

/* Defaults follow the papers: P = 20 and S = 5 are in the range Real et al.
 * found robust (their large runs use P = 100, S = 25, for budgets in the
 * tens of thousands); K = 16 is the PNAS beam at which Liu et al. report
 * their cell; -0.07 is MnasNet's soft-constraint exponent.  B defaults to
 * the space's block count (0 here means "derive it at creation"). */
void nas_strategy_config_default(nas_strategy_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->name, sizeof cfg->name, "evolution");
    cfg->space.kind = NAS_SPACE_CELL;
    cfg->space.n_blocks = 5;
    cfg->space.op_mask = 0; /* the space's default ops */
    cfg->space.shared = 0;
    cfg->budget = 100;
    cfg->population = 20;
    cfg->sample = 5;
    cfg->p_identity = 0.0f;
    cfg->beam = 16;
    cfg->max_blocks = 0;
    cfg->ensemble = 5;
    cfg->use_lstm = 1;
    cfg->mo_weight = -0.07f;
}

/* Range-check a config and fill derived defaults (max_blocks, op_mask). */
static int config_check(nas_strategy_config *c, char *err) {
    if (c->space.kind == NAS_SPACE_MBCONV) {
        /* Stages and block kinds (genome.h); no levels, so no PNAS. */
        if (c->space.n_blocks < 1 || c->space.n_blocks > NAS_MB_MAX_STAGES)
            return nas_set_err(err, NAS_EINVAL, "strategy: mbconv stages %d not in 1..%d",
                               c->space.n_blocks, NAS_MB_MAX_STAGES);
        if (c->space.op_mask == 0) c->space.op_mask = nas_space_default_ops(c->space.kind);
        if (c->space.op_mask > 3u)
            return nas_set_err(err, NAS_EINVAL, "strategy: mbconv block kinds 0x%x (bits 0, 1)",
                               c->space.op_mask);
        if (strcmp(c->name, "pnas") == 0)
            return nas_set_err(err, NAS_EINVAL, "strategy: pnas needs levels; mbconv has none");
    } else if (nas_space_kind_name(c->space.kind) == NULL) {
        return nas_set_err(err, NAS_EINVAL, "strategy: unknown space kind %d", c->space.kind);
    }
    if (c->space.kind == NAS_SPACE_CELL &&
        (c->space.n_blocks < 1 || c->space.n_blocks > NAS_MAX_BLOCKS))
        return nas_set_err(err, NAS_EINVAL, "strategy: space n_blocks %d not in 1..%d",
                           c->space.n_blocks, NAS_MAX_BLOCKS);
    if (c->space.op_mask == 0) c->space.op_mask = nas_space_default_ops(c->space.kind);
    /* A mask naming no op that computes anything would make sampling fail
     * on the first proposal; say so now, at configuration time. */
    int n_ops = nas_space_op_count(c->space.kind);
    uint32_t useless = c->space.kind == NAS_SPACE_NB201   ? 1u << NAS_NB201_NONE
                       : c->space.kind == NAS_SPACE_HIER  ? 1u << NAS_HIER_NONE
                       : c->space.kind == NAS_SPACE_CELL ? 1u << NAS_OP_ZERO
                                                          : 0u; /* chain, mbconv: every op works */
    if ((c->space.op_mask >> n_ops) != 0 || (c->space.op_mask & ~useless) == 0)
        return nas_set_err(
            err, NAS_EINVAL, "strategy: op mask 0x%x names no usable op of the %s space (%d ops)",
            c->space.op_mask, nas_space_kind_name(c->space.kind), n_ops);
    if (c->budget < 1) return nas_set_err(err, NAS_EINVAL, "strategy: budget %d < 1", c->budget);
    if (c->population < 2 || c->population > 4096)
        return nas_set_err(err, NAS_EINVAL, "strategy: population %d not in 2..4096",
                           c->population);
    if (c->sample < 1 || c->sample > c->population)
        return nas_set_err(err, NAS_EINVAL, "strategy: sample %d not in 1..population (%d)",
                           c->sample, c->population);
    if (!(c->p_identity >= 0.0f && c->p_identity <= 1.0f))
        return nas_set_err(err, NAS_EINVAL, "strategy: p_identity %g not in [0, 1]",
                           (double)c->p_identity);
    if (c->n_seeds < 0 || c->n_seeds > 8)
        return nas_set_err(err, NAS_EINVAL, "strategy: n_seeds %d not in 0..8", c->n_seeds);
    for (int i = 0; i < c->n_seeds; i++) {
        nas_genome g;
        char perr[NAS_ERR_LEN];
        c->seeds[i][sizeof c->seeds[i] - 1] = '\0';
        if (nas_genome_preset(c->seeds[i], &g, perr) != NAS_OK)
            return nas_set_err(err, NAS_EINVAL, "strategy: seed %d: %s", i, perr);
        if (g.space != c->space.kind)
            return nas_set_err(err, NAS_EINVAL, "strategy: seed '%s' is not in the %s space",
                               c->seeds[i], nas_space_kind_name(c->space.kind));
    }
    /* max_blocks bounds PNAS's levels: a cell's blocks, or the intermediate
     * nodes an NB201 cell uses (1 or 2; genome.h).  PNAS refuses the chain
     * and hierarchical spaces, which have no levels, so there the only
     * valid value is 1. */
    int no_levels = c->space.kind == NAS_SPACE_CHAIN || c->space.kind == NAS_SPACE_HIER;
    int max_b = c->space.kind == NAS_SPACE_NB201 ? 2 : no_levels ? 1 : c->space.n_blocks;
    if (c->max_blocks == 0) c->max_blocks = max_b;
    if (c->max_blocks < 1 || c->max_blocks > max_b)
        return nas_set_err(err, NAS_EINVAL, "strategy: max_blocks %d not in 1..%d", c->max_blocks,
                           max_b);
    if (c->beam < 1 || c->beam > 100000)
        return nas_set_err(err, NAS_EINVAL, "strategy: beam %d not in 1..100000", c->beam);
    if (c->ensemble < 0 || c->ensemble > 32 || (c->use_lstm != 0 && c->use_lstm != 1) ||
        c->ensemble + c->use_lstm < 1)
        return nas_set_err(err, NAS_EINVAL,
                           "strategy: predictor needs ensemble in 0..32 and use_lstm 0/1, "
                           "at least one model (ensemble %d, use_lstm %d)",
                           c->ensemble, c->use_lstm);
    if (c->target_params < 0 || c->target_macs < 0)
        return nas_set_err(err, NAS_EINVAL, "strategy: negative params or MACs target");
    if (!isfinite(c->mo_weight) || c->mo_weight > 0.0f || c->mo_weight < -10.0f)
        return nas_set_err(err, NAS_EINVAL, "strategy: mo_weight %g not in [-10, 0]",
                           (double)c->mo_weight);
    return NAS_OK;
}

/* Hash of everything that shapes the search, so load() refuses a blob made
 * under another config or seed instead of continuing a different search.
 * The budget says how long the search goes on, not what it is, so it is
 * left out (a campaign may be extended); blobs written before that
 * included it, which `with_budget` reproduces for them. */
uint64_t nas__strategy_fingerprint_v(const nas_strategy *s, int with_budget) {
    const nas_strategy_config *c = &s->cfg;
    nas__wbuf w = {0};
    nas__w_bytes(&w, c->name, strlen(c->name));
    nas__w_i32(&w, c->space.kind);
    nas__w_i32(&w, c->space.n_blocks);
    nas__w_u32(&w, c->space.op_mask);
    nas__w_i32(&w, c->space.shared);
    int32_t ints[] = {c->budget, c->population, c->sample,   c->n_seeds,
                      c->beam,   c->max_blocks, c->ensemble, c->use_lstm};
    for (size_t i = with_budget ? 0 : 1; i < NAS_ARRAY_LEN(ints); i++)
        nas__w_i32(&w, ints[i]);
    for (int i = 0; i < c->n_seeds; i++)
        nas__w_bytes(&w, c->seeds[i], strlen(c->seeds[i]));
    nas__w_f32(&w, c->p_identity);
    nas__w_f32(&w, c->mo_weight);
    nas__w_u64(&w, (uint64_t)c->target_params);
    nas__w_u64(&w, (uint64_t)c->target_macs);
    nas__w_u64(&w, s->seed);
    uint64_t h = NAS_FNV_OFFSET;
    for (size_t i = 0; i < w.n; i++)
        h = (h ^ w.p[i]) * NAS_FNV_PRIME;
    nas_free(w.p);
    return h;
}

int nas_strategy_create(nas_strategy **out, const nas_strategy_config *cfg, uint64_t seed,
                        char *err) {
    if (!out || !cfg) return nas_set_err(err, NAS_EINVAL, "strategy: NULL argument");
    *out = NULL;
    const nas__strategy_vtable *vt = NULL;
    for (size_t i = 0; i < NAS_ARRAY_LEN(kinds); i++)
        if (strncmp(cfg->name, kinds[i]->name, sizeof cfg->name) == 0) vt = kinds[i];
    if (!vt)
        return nas_set_err(err, NAS_EINVAL,
                           "strategy: unknown name '%.31s' (known: random, evolution, pnas)",
                           cfg->name);
    nas_strategy_config c = *cfg;
    int rc = config_check(&c, err);
    if (rc) return rc;
    nas_strategy *s = nas_calloc(1, sizeof *s);
    if (!s) return nas_set_err(err, NAS_ENOMEM, "strategy: out of memory");
    s->vt = vt;
    s->cfg = c;
    s->seed = seed;
    s->best = -1;
    s->rank_corr = NAN;
    nas_rng_init(&s->rng, seed, 0x5742);
    rc = vt->init(s, err);
    if (rc) {
        nas_free(s);
        return rc;
    }
    *out = s;
    return NAS_OK;
}

void nas_strategy_destroy(nas_strategy **sp) {
    if (!sp || !*sp) return;
    nas_strategy *s = *sp;
    s->vt->fini(s);
    nas_free(s->hist);
    nas_free(s->inflight);
    nas_free(s->inflight_hash);
    nas_free(s->seen_list);
    nas__hashset_free(&s->seen);
    nas_free(s);
    *sp = NULL;
}

const char *nas_strategy_name(const nas_strategy *s) {
    return s->vt->name;
}

// ---- propose / observe -----------------------------------------------------------------

/* Done needs both conditions: a campaign must not finish while a result it
 * paid for is still on its way. */
int nas_strategy_done(const nas_strategy *s) {
    return s->n_inflight == 0 && (s->proposed >= s->cfg.budget || s->vt->finished(s));
}

/* The budget is enforced here, once, for every strategy; the strategies
 * only decide what to propose. */
int nas_strategy_propose(nas_strategy *s, nas_proposal *out, char *err) {
    if (!s || !out) return nas_set_err(err, NAS_EINVAL, "strategy: NULL argument");
    if (s->proposed >= s->cfg.budget || s->vt->finished(s)) {
        if (nas_strategy_done(s))
            return nas_set_err(err, NAS_ESTATE, "strategy %s: done (%d proposals)", s->vt->name,
                               s->proposed);
        return nas_set_err(err, NAS_EAGAIN, "strategy %s: %s, %d results outstanding", s->vt->name,
                           s->proposed >= s->cfg.budget ? "budget spent"
                                                        : "nothing left to propose",
                           s->n_inflight);
    }
    memset(out, 0, sizeof *out);
    return s->vt->propose(s, out, err);
}

/* Validate first (an observation comes from a worker, i.e. the outside
 * world), then record it in the shared history, then let the strategy
 * react.  The reward is computed once here, so every strategy ranks by the
 * same signal. */
int nas__strategy_check_observation(const nas_strategy *s, const nas_observation *obs,
                                    char *err) {
    char gerr[NAS_ERR_LEN];
    if (nas_genome_validate(&obs->genome, gerr) != NAS_OK)
        return nas_set_err(err, NAS_EINVAL, "strategy: observed genome: %s", gerr);
    if (obs->genome.space != s->cfg.space.kind)
        return nas_set_err(err, NAS_EINVAL, "strategy: observed genome is not in the %s space",
                           s->cfg.space.kind == NAS_SPACE_NB201 ? "nb201" : "cell");
    if (obs->ok && !(obs->accuracy >= 0.0 && obs->accuracy <= 1.0))
        return nas_set_err(err, NAS_EINVAL, "strategy: observed accuracy %g not in [0, 1]",
                           obs->accuracy);
    if (obs->params < 0 || obs->macs < 0)
        return nas_set_err(err, NAS_EINVAL, "strategy: observed negative params or MACs");
    return NAS_OK;
}

/* One history record from a checked observation; the reward is computed
 * here, once, so every strategy ranks by the same signal. */
void nas__strategy_record_fill(const nas_strategy *s, const nas_observation *obs, uint64_t hash,
                               nas__record *r) {
    memset(r, 0, sizeof *r);
    r->genome = obs->genome;
    r->hash = hash;
    r->ok = obs->ok != 0;
    r->accuracy = r->ok ? obs->accuracy : 0.0;
    r->reward = r->ok ? nas__strategy_reward(&s->cfg, obs) : 0.0;
    r->params = obs->params;
    r->macs = obs->macs;
}

static void trim_history(nas_strategy *s);

int nas_strategy_observe(nas_strategy *s, const nas_observation *obs, char *err) {
    if (!s || !obs) return nas_set_err(err, NAS_EINVAL, "strategy: NULL argument");
    int rc = nas__strategy_check_observation(s, obs, err);
    if (rc) return rc;
    uint64_t h = nas_genome_hash(&obs->genome);
    if (grow((void **)&s->hist, &s->cap_hist, s->n_hist - s->hist_off + 1, sizeof *s->hist))
        return nas_set_err(err, NAS_ENOMEM, "strategy: out of memory");
    /* The result of a proposal leaves the in-flight list; a result nobody
     * proposed (a resumed campaign's re-queued task) is still recorded. */
    int was_inflight = 0;
    for (int i = 0; i < s->n_inflight; i++) {
        if (s->inflight_hash[i] != h) continue;
        memmove(&s->inflight[i], &s->inflight[i + 1],
                (size_t)(s->n_inflight - i - 1) * sizeof *s->inflight);
        memmove(&s->inflight_hash[i], &s->inflight_hash[i + 1],
                (size_t)(s->n_inflight - i - 1) * sizeof *s->inflight_hash);
        s->n_inflight--;
        was_inflight = 1;
        break;
    }
    if (nas__strategy_seen_add(s, h) < 0)
        return nas_set_err(err, NAS_ENOMEM, "strategy: out of memory");
    nas__record *r = &s->hist[s->n_hist - s->hist_off];
    nas__strategy_record_fill(s, obs, h, r);
    int idx = s->n_hist++;
    if (r->ok && (s->best < 0 || r->reward > s->best_reward)) {
        s->best = idx;
        s->best_reward = r->reward;
    }
    rc = s->vt->observe(s, idx, was_inflight, err);
    if (rc == NAS_OK) trim_history(s);
    return rc;
}

/* A bounded history drops the records older than the strategy's
 * keep_from(), once they are at least as many as those kept (so the
 * move is amortised O(1) per observation), and gives memory back when the
 * array is mostly empty (after a resume loaded the whole history). */
static void trim_history(nas_strategy *s) {
    if (!s->bounded || !s->vt->keep_from) return;
    int from = s->vt->keep_from(s);
    int drop = from - s->hist_off, kept = s->n_hist - from;
    if (drop <= 0 || drop < kept) return;
    memmove(s->hist, s->hist + drop, (size_t)kept * sizeof *s->hist);
    s->hist_off = from;
    if (s->cap_hist > 4 * kept + 64) {
        int cap = 2 * kept + 16;
        nas__record *h = nas_realloc(s->hist, (size_t)cap * sizeof *h);
        if (h) {
            s->hist = h;
            s->cap_hist = cap;
        }
    }
}

/* Campaigns keep their history in the store; in memory only what the
 * search reads again.  The proposed-hash set stays whole (16 bytes or so
 * per network: it is what keeps the search from proposing one twice). */
void nas_strategy_bound_history(nas_strategy *s) {
    if (!s || s->bounded) return;
    s->bounded = 1;
    nas_free(s->seen_list);
    s->seen_list = NULL;
    s->n_seen = s->cap_seen = 0;
    trim_history(s);
}

// ---- state blob ------------------------------------------------------------------------

/* The base section: everything the shared bookkeeping needs to continue.
 * The hash set itself is not written; it is rebuilt from the list. */
static void save_base(const nas_strategy *s, nas__wbuf *w) {
    nas__w_u64(w, s->rng.state);
    nas__w_u64(w, s->rng.inc);
    nas__w_i32(w, s->proposed);
    nas__w_i32(w, s->best);
    nas__w_f64(w, s->rank_corr);
    nas__w_i32(w, s->n_hist);
    for (int i = 0; i < s->n_hist; i++) {
        const nas__record *r = &s->hist[i];
        nas__w_genome(w, &r->genome);
        nas__w_u8(w, (uint8_t)r->ok);
        nas__w_f64(w, r->accuracy);
        nas__w_f64(w, r->reward);
        nas__w_u64(w, (uint64_t)r->params);
        nas__w_u64(w, (uint64_t)r->macs);
    }
    nas__w_i32(w, s->n_inflight);
    for (int i = 0; i < s->n_inflight; i++) {
        nas__w_genome(w, &s->inflight[i].genome);
        nas__w_u8(w, (uint8_t)s->inflight[i].has_parent);
        nas__w_u64(w, s->inflight[i].parent_hash);
    }
    nas__w_i32(w, s->n_seen);
    for (int i = 0; i < s->n_seen; i++)
        nas__w_u64(w, s->seen_list[i]);
}

/* The payload is built first so its length can precede it, and the
 * checksum covers the header too: a flipped fingerprint byte is caught by
 * the fingerprint check, a flipped payload byte by the checksum. */
int nas_strategy_save(const nas_strategy *s, uint8_t **blob, size_t *n) {
    if (!s || !blob || !n) return NAS_EINVAL;
    if (s->bounded) return NAS_ESTATE; /* the whole history is in the store, not here */
    nas__wbuf body = {0};
    save_base(s, &body);
    s->vt->save(s, &body);
    return nas__strategy_frame(s, NAS_BLOB_VERSION, &body, blob, n);
}

/* Frame a payload (and free it): header, length, payload, checksum. */
int nas__strategy_frame(const nas_strategy *s, uint32_t version, nas__wbuf *body_in,
                        uint8_t **blob, size_t *n) {
    nas__wbuf body = *body_in, w = {0};
    nas__w_bytes(&w, NAS_BLOB_MAGIC, 4);
    nas__w_u32(&w, version);
    nas__w_u8(&w, (uint8_t)nas__strategy_kind_id(s));
    nas__w_u64(&w, nas__strategy_fingerprint(s));
    nas__w_u64(&w, (uint64_t)body.n);
    nas__w_bytes(&w, body.p, body.n);
    uint64_t h = NAS_FNV_OFFSET;
    for (size_t i = 0; i < w.n && !w.oom; i++)
        h = (h ^ w.p[i]) * NAS_FNV_PRIME;
    nas__w_u64(&w, h);
    int oom = body.oom || w.oom;
    nas_free(body.p);
    if (oom) {
        nas_free(w.p);
        return NAS_ENOMEM;
    }
    *blob = w.p;
    *n = w.n;
    return NAS_OK;
}

/* Restore the base section into fresh arrays; on success swap them in. */
static int load_base(nas_strategy *s, nas__rbuf *r) {
    nas_rng rng;
    rng.state = nas__r_u64(r, "rng state");
    rng.inc = nas__r_u64(r, "rng stream");
    if (!(rng.inc & 1)) nas__r_fail(r, "rng stream (must be odd)");
    int proposed = nas__r_i32(r, 0, s->cfg.budget, "proposal count");
    int n_hist_max = (int)((r->n - r->off) / 100); /* a record takes more than 100 bytes */
    int best = nas__r_i32(r, -1, n_hist_max, "best index");
    double rank_corr = nas__r_f64(r, "rank correlation");
    int n_hist = nas__r_i32(r, 0, n_hist_max, "history length");
    if (best >= n_hist) nas__r_fail(r, "best index");
    if (r->bad) return NAS_EFORMAT;
    nas__record *hist = nas_calloc((size_t)n_hist + 1, sizeof *hist);
    if (!hist) return NAS_ENOMEM;
    for (int i = 0; i < n_hist && !r->bad; i++) {
        nas__r_genome(r, &hist[i].genome, "history genome");
        hist[i].hash = nas_genome_hash(&hist[i].genome);
        hist[i].ok = nas__r_u8(r, "history ok") != 0;
        hist[i].accuracy = nas__r_f64(r, "history accuracy");
        hist[i].reward = nas__r_f64(r, "history reward");
        hist[i].params = (int64_t)nas__r_u64(r, "history params");
        hist[i].macs = (int64_t)nas__r_u64(r, "history macs");
    }
    int n_inf = nas__r_i32(r, 0, proposed, "in-flight count");
    nas_proposal *inf = nas_calloc((size_t)n_inf + 1, sizeof *inf);
    uint64_t *inf_h = nas_calloc((size_t)n_inf + 1, sizeof *inf_h);
    for (int i = 0; inf && inf_h && i < n_inf && !r->bad; i++) {
        nas__r_genome(r, &inf[i].genome, "in-flight genome");
        inf_h[i] = nas_genome_hash(&inf[i].genome);
        inf[i].has_parent = nas__r_u8(r, "in-flight parent flag") != 0;
        inf[i].parent_hash = nas__r_u64(r, "in-flight parent");
    }
    int n_seen = nas__r_i32(r, 0, (int)((r->n - r->off) / 8), "proposed-hash count");
    nas__hashset set = {0};
    uint64_t *seen = nas_calloc((size_t)n_seen + 1, sizeof *seen);
    int rc = (!inf || !inf_h || !seen) ? NAS_ENOMEM : NAS_OK;
    for (int i = 0; !rc && i < n_seen && !r->bad; i++) {
        seen[i] = nas__r_u64(r, "proposed hash");
        if (nas__hashset_add(&set, seen[i]) < 0) rc = NAS_ENOMEM;
    }
    if (!rc && r->bad) rc = NAS_EFORMAT;
    if (rc) {
        nas_free(hist);
        nas_free(inf);
        nas_free(inf_h);
        nas_free(seen);
        nas__hashset_free(&set);
        return rc;
    }
    nas_free(s->hist);
    nas_free(s->inflight);
    nas_free(s->inflight_hash);
    nas_free(s->seen_list);
    nas__hashset_free(&s->seen);
    s->rng = rng;
    s->proposed = proposed;
    s->best = best;
    s->best_reward = best >= 0 ? hist[best].reward : 0.0;
    s->rank_corr = rank_corr;
    s->hist = hist;
    s->n_hist = n_hist;
    s->cap_hist = n_hist + 1;
    s->inflight = inf;
    s->inflight_hash = inf_h;
    s->n_inflight = n_inf;
    s->cap_inflight = n_inf + 1;
    s->seen_list = seen;
    s->n_seen = n_seen;
    s->cap_seen = n_seen + 1;
    s->seen = set;
    return NAS_OK;
}

/* The format version of a blob, without checking the rest. */
int nas_strategy_blob_version(const uint8_t *blob, size_t n) {
    if (!blob || n < 4 + 4 + 1 + 8 + 8 + 8 || memcmp(blob, NAS_BLOB_MAGIC, 4) != 0)
        return NAS_EFORMAT;
    nas__rbuf r = {.p = blob, .n = n, .off = 4};
    return (int)(nas__r_u32(&r, "version") & 0x7fffffffu);
}

int nas__strategy_kind_id(const nas_strategy *s) {
    for (size_t i = 0; i < NAS_ARRAY_LEN(kinds); i++)
        if (kinds[i] == s->vt) return (int)i;
    return 0;
}

/* Checks go from cheapest and most informative (magic, version, which
 * strategy, which config) to the checksum, so the message says what is
 * wrong rather than only that something is. */
int nas__strategy_open_blob(const nas_strategy *s, const uint8_t *blob, size_t n,
                            uint32_t want, nas__rbuf *out, char *err) {
    if (!s || (!blob && n)) return nas_set_err(err, NAS_EINVAL, "strategy: NULL argument");
    if (n < 4 + 4 + 1 + 8 + 8 + 8 || memcmp(blob, NAS_BLOB_MAGIC, 4) != 0)
        return nas_set_err(err, NAS_EFORMAT, "strategy state: not a strategy blob (%zu bytes)", n);
    nas__rbuf r = {.p = blob, .n = n, .off = 4};
    uint32_t version = nas__r_u32(&r, "version");
    if (version != want)
        return nas_set_err(err, NAS_EVERSION,
                           "strategy state: format version %u, this call reads version %u (%s)",
                           version, want,
                           want == NAS_BLOB_VERSION
                               ? "a core-only state needs the history: nas_strategy_load_core"
                               : "a whole-history state: nas_strategy_load");
    uint8_t id = nas__r_u8(&r, "strategy id");
    if (id >= NAS_ARRAY_LEN(kinds) || kinds[id] != s->vt)
        return nas_set_err(err, NAS_EFORMAT, "strategy state: saved by strategy %s, not %s",
                           id < NAS_ARRAY_LEN(kinds) ? kinds[id]->name : "?", s->vt->name);
    uint64_t fp = nas__r_u64(&r, "fingerprint");
    if (fp != nas__strategy_fingerprint(s) && fp != nas__strategy_fingerprint_v(s, 1))
        return nas_set_err(err, NAS_EFORMAT,
                           "strategy state: saved under a different config or seed");
    uint64_t body = nas__r_u64(&r, "payload length");
    if (body != n - r.off - 8)
        return nas_set_err(err, NAS_EFORMAT,
                           "strategy state: payload of %llu bytes but %zu present (truncated?)",
                           (unsigned long long)body, n - r.off >= 8 ? n - r.off - 8 : 0);
    uint64_t h = NAS_FNV_OFFSET;
    for (size_t i = 0; i < n - 8; i++)
        h = (h ^ blob[i]) * NAS_FNV_PRIME;
    nas__rbuf tail = {.p = blob, .n = n, .off = n - 8};
    if (nas__r_u64(&tail, "checksum") != h)
        return nas_set_err(err, NAS_EFORMAT, "strategy state: checksum mismatch (corrupted)");
    r.n = n - 8;
    *out = r;
    return NAS_OK;
}

/* A whole-history (format 1) blob: the history comes from the blob. */
int nas_strategy_load(nas_strategy *s, const uint8_t *blob, size_t n, char *err) {
    nas__rbuf r;
    int rc = nas__strategy_open_blob(s, blob, n, NAS_BLOB_VERSION, &r, err);
    if (rc) return rc;
    /* Parse into a fresh strategy and swap it in only when everything
     * loaded, so a refused blob leaves `s` exactly as it was. */
    nas_strategy *t = NULL;
    rc = nas_strategy_create(&t, &s->cfg, s->seed, err);
    if (rc) return rc;
    return nas__strategy_finish_load(s, t, &r, load_base(t, &r), err);
}

/* Both blob formats end alike: the strategy's own part, no trailing
 * bytes, then `t` swapped into `s` (or dropped, `s` untouched). */
int nas__strategy_finish_load(nas_strategy *s, nas_strategy *t, nas__rbuf *r, int rc, char *err) {
    if (rc == NAS_OK) rc = t->vt->load(t, r);
    if (rc == NAS_OK && r->off != r->n) nas__r_fail(r, "trailing bytes");
    if (r->bad && rc != NAS_ENOMEM) rc = NAS_EFORMAT;
    if (rc) {
        nas_strategy_destroy(&t);
        if (rc == NAS_ENOMEM) return nas_set_err(err, rc, "strategy state: out of memory");
        return nas_set_err(err, rc, "%s", r->bad ? r->err : "strategy state: invalid");
    }
    int bounded = s->bounded;
    nas_strategy tmp = *s;
    *s = *t;
    *t = tmp;
    nas_strategy_destroy(&t);
    if (bounded) nas_strategy_bound_history(s);
    return NAS_OK;
}

// ---- status ----------------------------------------------------------------------------

/* The strategy's own words, then the shared counters. */
int nas_strategy_describe(const nas_strategy *s, char *buf, size_t cap) {
    if (!s || !buf || cap == 0) return NAS_EINVAL;
    int n = s->vt->describe(s, buf, cap);
    if (n < 0 || (size_t)n >= cap) return NAS_ERANGE;
    int m;
    if (s->best >= 0)
        m = snprintf(buf + n, cap - (size_t)n, ", %d/%d proposed, best %.4f", s->proposed,
                     s->cfg.budget, s->best_reward);
    else
        m = snprintf(buf + n, cap - (size_t)n, ", %d/%d proposed, no result yet", s->proposed,
                     s->cfg.budget);
    if (m < 0 || (size_t)m >= cap - (size_t)n) return NAS_ERANGE;
    return n + m;
}

double nas_strategy_rank_correlation(const nas_strategy *s) {
    return s ? s->rank_corr : NAN;
}

int nas_strategy_needs_prepare(const nas_strategy *s) {
    return s && s->vt == &nas__strategy_pnas_vt && nas__strategy_pnas_needs_prepare(s);
}

int nas_strategy_prepare(nas_strategy *s, char *err) {
    if (!s) return nas_set_err(err, NAS_EINVAL, "strategy: NULL argument");
    if (s->vt != &nas__strategy_pnas_vt) return NAS_OK;
    return nas__strategy_pnas_prepare(s, err);
}

int nas_strategy_population(const nas_strategy *s, nas_observation *out, int cap) {
    if (!s || (!out && cap > 0) || cap < 0) return NAS_EINVAL;
    if (s->vt != &nas__strategy_evo_vt) return 0;
    return nas__strategy_evo_population(s, out, cap);
}
