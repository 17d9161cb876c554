/*
 * strategy_core.c - the incremental strategy state (blob format 2).
 *
 * Format 1 (strategy.c) repeats the whole history in every blob, so a
 * campaign that saved it twice per task paid O(history) per task and its
 * write-ahead log grew with the square of the campaign.  Format 2 keeps
 * only what the history cannot say:
 *
 *   u64 rng state   u64 rng stream   i32 proposals   f64 rank correlation
 *   i32 observations (history length, a check against the store)
 *   i32 in-flight count, then per in-flight proposal, oldest first:
 *       u64 genome hash   u8 has parent   u64 parent hash
 *   the strategy's own section (as in format 1: evolution's population as
 *   history indices, PNAS's queue, beam and predictor, random's flag)
 *
 * inside the same frame (magic, version, strategy, fingerprint, length,
 * checksum).  load_core() takes the history from the caller (the campaign
 * reads it from its store), checks the counts against it, and rebuilds what
 * format 1 carried: the records with their rewards, the proposed-hash set
 * and the in-flight genomes.  The index of the best record is recomputed
 * (the first highest reward, as observe() keeps it).
 */
#include "master/strategy_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <string.h>

#define NAS_CORE_VERSION 2u

int nas_strategy_history_len(const nas_strategy *s) {
    return s ? s->n_hist : 0;
}

int nas_strategy_save_core(const nas_strategy *s, uint8_t **blob, size_t *n) {
    if (!s || !blob || !n) return NAS_EINVAL;
    nas__wbuf body = {0};
    nas__w_u64(&body, s->rng.state);
    nas__w_u64(&body, s->rng.inc);
    nas__w_i32(&body, s->proposed);
    nas__w_f64(&body, s->rank_corr);
    nas__w_i32(&body, s->n_hist);
    nas__w_i32(&body, s->n_inflight);
    for (int i = 0; i < s->n_inflight; i++) {
        nas__w_u64(&body, s->inflight_hash[i]);
        nas__w_u8(&body, (uint8_t)s->inflight[i].has_parent);
        nas__w_u64(&body, s->inflight[i].parent_hash);
    }
    s->vt->save(s, &body);
    return nas__strategy_frame(s, NAS_CORE_VERSION, &body, blob, n);
}

/* The latest proposal with this hash (in-flight proposals are recent, so
 * the scan from the end is short), or -1. */
static int find_proposal(const nas_strategy_history *h, const uint64_t *hashes, uint64_t hash) {
    for (int i = h->n_proposals - 1; i >= 0; i--)
        if (hashes[i] == hash) return i;
    return -1;
}

/* Rebuild the base bookkeeping of `t` (a fresh strategy) from the core
 * section in `r` and the history.  Every failure leaves a message in r. */
static int rebuild_base(nas_strategy *t, nas__rbuf *r, const nas_strategy_history *h) {
    nas_rng rng;
    rng.state = nas__r_u64(r, "rng state");
    rng.inc = nas__r_u64(r, "rng stream");
    if (!(rng.inc & 1)) nas__r_fail(r, "rng stream (must be odd)");
    int proposed = nas__r_i32(r, 0, t->cfg.budget, "proposal count");
    double rank_corr = nas__r_f64(r, "rank correlation");
    int n_hist = nas__r_i32(r, 0, proposed, "history length");
    int n_inf = nas__r_i32(r, 0, proposed, "in-flight count");
    if (r->bad) return NAS_EFORMAT;
    if (proposed != h->n_proposals || n_hist != h->n_observations) {
        nas_set_err(r->err, NAS_EFORMAT,
                    "strategy state: the core counts %d proposals and %d observations but the "
                    "history holds %d and %d (state and store disagree)",
                    proposed, n_hist, h->n_proposals, h->n_observations);
        r->bad = 1;
        return NAS_EFORMAT;
    }
    uint64_t *ph = nas_calloc((size_t)h->n_proposals + 1, sizeof *ph);
    t->hist = nas_calloc((size_t)n_hist + 1, sizeof *t->hist);
    t->inflight = nas_calloc((size_t)n_inf + 1, sizeof *t->inflight);
    t->inflight_hash = nas_calloc((size_t)n_inf + 1, sizeof *t->inflight_hash);
    int rc = NAS_OK;
    if (!ph || !t->hist || !t->inflight || !t->inflight_hash) {
        rc = NAS_ENOMEM;
        goto fail;
    }
    t->cap_hist = n_hist + 1;
    t->cap_inflight = n_inf + 1;
    /* Proposed hashes first, in order, as commit() added them; an
     * observation of a network nobody proposed adds its own below. */
    for (int i = 0; i < h->n_proposals; i++) {
        ph[i] = nas_genome_hash(&h->proposals[i].genome);
        if (nas__strategy_seen_add(t, ph[i]) < 0) {
            rc = NAS_ENOMEM;
            goto fail;
        }
    }
    for (int i = 0; i < n_hist; i++) {
        const nas_observation *o = &h->observations[i];
        char oerr[NAS_ERR_LEN];
        if (nas__strategy_check_observation(t, o, oerr) != NAS_OK) {
            nas_set_err(r->err, NAS_EFORMAT, "strategy state: observation %d: %s", i, oerr);
            r->bad = 1;
            rc = NAS_EFORMAT;
            goto fail;
        }
        uint64_t hash = nas_genome_hash(&o->genome);
        nas__strategy_record_fill(t, o, hash, &t->hist[i]);
        if (nas__strategy_seen_add(t, hash) < 0) {
            rc = NAS_ENOMEM;
            goto fail;
        }
        const nas__record *rec = &t->hist[i];
        if (rec->ok && (t->best < 0 || rec->reward > t->best_reward)) {
            t->best = i;
            t->best_reward = rec->reward;
        }
    }
    t->n_hist = n_hist;
    for (int i = 0; i < n_inf && !r->bad; i++) {
        uint64_t hash = nas__r_u64(r, "in-flight hash");
        int has_parent = nas__r_u8(r, "in-flight parent flag");
        uint64_t parent = nas__r_u64(r, "in-flight parent");
        if (has_parent > 1) nas__r_fail(r, "in-flight parent flag");
        int at = r->bad ? -1 : find_proposal(h, ph, hash);
        if (!r->bad && at < 0) {
            nas_set_err(r->err, NAS_EFORMAT,
                        "strategy state: in-flight network %016llx was never proposed",
                        (unsigned long long)hash);
            r->bad = 1;
        }
        if (r->bad) break;
        t->inflight[i].genome = h->proposals[at].genome;
        t->inflight[i].has_parent = has_parent;
        t->inflight[i].parent_hash = parent;
        t->inflight_hash[i] = hash;
    }
    if (r->bad) {
        rc = NAS_EFORMAT;
        goto fail;
    }
    t->n_inflight = n_inf;
    t->rng = rng;
    t->proposed = proposed;
    t->rank_corr = rank_corr;
    nas_free(ph);
    return NAS_OK;
fail:
    /* `t` is destroyed by the caller, which frees what was attached. */
    nas_free(ph);
    return rc;
}

/* Parse into a fresh strategy and swap it in only when everything loaded,
 * so a refused blob leaves `s` exactly as it was (as nas_strategy_load). */
int nas_strategy_load_core(nas_strategy *s, const uint8_t *blob, size_t n,
                           const nas_strategy_history *h, char *err) {
    nas_strategy_history none = {0};
    if (!h) h = &none;
    if (h->n_proposals < 0 || h->n_observations < 0 || (h->n_proposals && !h->proposals) ||
        (h->n_observations && !h->observations))
        return nas_set_err(err, NAS_EINVAL, "strategy: bad history argument");
    nas__rbuf r;
    int rc = nas__strategy_open_blob(s, blob, n, NAS_CORE_VERSION, &r, err);
    if (rc) return rc;
    nas_strategy *t = NULL;
    rc = nas_strategy_create(&t, &s->cfg, s->seed, err);
    if (rc) return rc;
    return nas__strategy_finish_load(s, t, &r, rebuild_base(t, &r, h), err);
}

/* For a campaign that moves a format-1 store onto format 2: it has to
 * learn which task each record of the loaded history was. */
int nas_strategy_history_get(const nas_strategy *s, int i, nas_observation *out) {
    if (!s || !out || i < 0 || i >= s->n_hist) return NAS_EINVAL;
    if (i < s->hist_off) return NAS_ERANGE; /* dropped from a bounded history */
    const nas__record *r = nas__hist(s, i);
    *out = (nas_observation){.genome = r->genome,
                             .hash = r->hash,
                             .ok = r->ok,
                             .accuracy = r->accuracy,
                             .params = r->params,
                             .macs = r->macs};
    return NAS_OK;
}
