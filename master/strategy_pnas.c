/*
 * strategy_pnas.c - progressive neural architecture search (Liu et al.
 * 2018): grow cells one block at a time, and at each level train only the
 * K expansions a learned predictor ranks highest.
 *
 * Level 1 trains every distinct 1-block genome (nas_genome_enumerate_level1).
 * When every result of level b is in, the strategy
 *   1. measures the predictor's Spearman correlation on level b's results
 *      against what it predicted for them before seeing them (level >= 2),
 *   2. keeps the top K of level b (by reward) as the beam,
 *   3. refits the predictor on every successful result so far,
 *   4. expands each beam member by one block (nas_genome_expand), drops
 *      networks already proposed, scores the rest with the predictor and
 *      queues the best K as level b + 1.
 * Steps 2-4 ("the advance") are the one expensive operation of any
 * strategy: see nas_strategy_prepare() and docs/STRATEGIES.md for its cost
 * and where the campaign runs it.  propose() returns NAS_EAGAIN while a
 * level's results are outstanding, and the search ends after level B.
 *
 * Genome encoding for the predictor: one token per block, the one-hot
 * fields (in_a, op_a, in_b, op_b) with inputs 0..B and ops 0..NAS_OP_COUNT-1,
 * padded to B blocks (normal then reduction cell when not shared); NB201:
 * one token per edge, the one-hot op.
 */
#include "master/strategy_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "master/predictor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PNAS_PENDING = 0, PNAS_PROPOSED = 1, PNAS_OBSERVED = 2, PNAS_SKIPPED = 3 };

typedef struct pnas_entry {
    nas_genome genome;
    uint64_t hash;
    double pred; /* the predictor's score when queued; NAN at level 1 */
    int state;   /* PNAS_* */
    int hist;    /* index of its result in the history, -1 until observed */
} pnas_entry;

typedef struct pnas_state {
    int level;         /* 1..max_blocks: the level being trained */
    int finished;      /* 1 after the last level, or when nothing is left to expand */
    int needs_advance; /* 1 when the level is complete and the next one is not built */
    pnas_entry *queue; /* this level's genomes in proposal order */
    int n_queue, next; /* next: first queue entry not yet proposed or skipped */
    nas_genome *beam;  /* top K of the previous level */
    int n_beam;
    double corr[NAS_MAX_BLOCKS + 1]; /* Spearman per level (NAN where not measured) */
    nas_predictor *pred;             /* last fitted predictor, NULL before level 2 */
} pnas_state;

// ---- encoding ----------------------------------------------------------------------

/* Tokens and floats per token of the encoding (see the file comment).  The
 * shape depends only on the config, so every fit of a campaign has the same
 * input layout and a saved predictor stays usable after a resume. */
static void pnas_shape(const nas_strategy *s, int *T, int *D) {
    if (s->cfg.space.kind == NAS_SPACE_NB201) {
        *T = NAS_NB201_EDGES;
        *D = NAS_NB201_OP_COUNT;
        return;
    }
    int B = s->cfg.max_blocks;
    *T = s->cfg.space.shared ? B : 2 * B;
    *D = 2 * (B + 1 + NAS_OP_COUNT);
}

/* Write the canonical form of g as T tokens of D floats; returns len. */
/* Encoding the canonical form gives equivalent genomes one encoding, so
 * the predictor never has to learn that two spellings are one network. */
static int pnas_encode(const nas_strategy *s, const nas_genome *g, float *x) {
    int T, D;
    pnas_shape(s, &T, &D);
    memset(x, 0, sizeof(float) * (size_t)T * D);
    nas_genome c;
    nas_genome_canonical(g, &c);
    if (c.space == NAS_SPACE_NB201) {
        for (int e = 0; e < NAS_NB201_EDGES; e++)
            if (c.nb201[e] < NAS_NB201_OP_COUNT) x[e * D + c.nb201[e]] = 1.0f;
        return T;
    }
    int B = s->cfg.max_blocks, ncell = s->cfg.space.shared ? 1 : 2;
    const nas_cell *cells[2] = {&c.normal, &c.reduce};
    int len = 1;
    for (int ci = 0; ci < ncell; ci++) {
        const nas_cell *cell = cells[ci];
        for (int b = 0; b < cell->n_blocks && b < B; b++) {
            float *tok = x + (size_t)(ci * B + b) * D;
            const nas_block *k = &cell->blocks[b];
            int half = B + 1 + NAS_OP_COUNT;
            if (k->in_a <= B) tok[k->in_a] = 1.0f;
            if (k->op_a < NAS_OP_COUNT) tok[B + 1 + k->op_a] = 1.0f;
            if (k->in_b <= B) tok[half + k->in_b] = 1.0f;
            if (k->op_b < NAS_OP_COUNT) tok[half + B + 1 + k->op_b] = 1.0f;
            if (ci * B + b + 1 > len) len = ci * B + b + 1;
        }
    }
    return len;
}

// ---- lifecycle -----------------------------------------------------------------------

/* Replace the level's queue; the old one is freed only once the new one
 * exists, so a failed allocation leaves the state intact. */
static int pnas_set_queue(pnas_state *st, const nas_genome *g, const double *pred, int n) {
    pnas_entry *q = nas_calloc((size_t)n + 1, sizeof *q);
    if (!q) return NAS_ENOMEM;
    for (int i = 0; i < n; i++) {
        q[i].genome = g[i];
        q[i].hash = nas_genome_hash(&g[i]);
        q[i].pred = pred ? pred[i] : NAN;
        q[i].hist = -1;
    }
    nas_free(st->queue);
    st->queue = q;
    st->n_queue = n;
    st->next = 0;
    return NAS_OK;
}

static int pnas_init(nas_strategy *s, char *err) {
    pnas_state *st = nas_calloc(1, sizeof *st);
    if (!st) return nas_set_err(err, NAS_ENOMEM, "strategy pnas: out of memory");
    s->impl = st;
    for (int i = 0; i <= NAS_MAX_BLOCKS; i++)
        st->corr[i] = NAN;
    nas_genome *l1 = NULL;
    int n = nas_genome_enumerate_level1(&s->cfg.space, &l1);
    if (n <= 0) {
        nas_free(l1);
        nas_free(st);
        s->impl = NULL;
        if (n < 0)
            return nas_set_err(err, n, "strategy pnas: enumerating level 1: %s", nas_strerror(n));
        return nas_set_err(err, NAS_EINVAL, "strategy pnas: the space has no 1-block genome");
    }
    int rc = pnas_set_queue(st, l1, NULL, n);
    nas_free(l1);
    if (rc) {
        nas_free(st);
        s->impl = NULL;
        return nas_set_err(err, rc, "strategy pnas: out of memory");
    }
    st->level = 1;
    nas_info("strategy pnas: level 1 has %d genomes, then %d more levels of %d", n,
             s->cfg.max_blocks - 1, s->cfg.beam);
    return NAS_OK;
}

static void pnas_fini(nas_strategy *s) {
    pnas_state *st = s->impl;
    if (!st) return;
    nas_free(st->queue);
    nas_free(st->beam);
    nas_predictor_destroy(&st->pred);
    nas_free(st);
}

// ---- the advance: beam, refit, expand, score -------------------------------------------

typedef struct scored {
    double v;
    int i;
} scored;

/* Descending by value; ties keep their original order so results do not
 * depend on qsort's stability. */
static int scored_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return x->i - y->i;
}

/* Beam: the level's successful results, best K by reward. */
/* Failed evaluations cannot be in the beam: they have no accuracy. */
static int pnas_make_beam(nas_strategy *s, pnas_state *st) {
    scored *sc = nas_malloc(sizeof *sc * ((size_t)st->n_queue + 1));
    nas_genome *beam = nas_malloc(sizeof *beam * ((size_t)s->cfg.beam + 1));
    if (!sc || !beam) {
        nas_free(sc);
        nas_free(beam);
        return NAS_ENOMEM;
    }
    int n = 0;
    for (int i = 0; i < st->n_queue; i++) {
        const pnas_entry *e = &st->queue[i];
        if (e->state == PNAS_OBSERVED && nas__hist(s, e->hist)->ok)
            sc[n++] = (scored){nas__hist(s, e->hist)->reward, i};
    }
    qsort(sc, (size_t)n, sizeof *sc, scored_desc);
    st->n_beam = n < s->cfg.beam ? n : s->cfg.beam;
    for (int i = 0; i < st->n_beam; i++)
        beam[i] = st->queue[sc[i].i].genome;
    nas_free(st->beam);
    st->beam = beam;
    nas_free(sc);
    return NAS_OK;
}

/* Fit a predictor on every successful result so far. */
/* The fit's seed mixes the campaign seed with the level, so a resumed
 * campaign refits to the same weights without storing RNG state for it. */
static int pnas_fit(nas_strategy *s, pnas_state *st, char *err) {
    int T, D;
    pnas_shape(s, &T, &D);
    float *x = nas_calloc((size_t)s->n_hist * T * D + 1, sizeof *x);
    float *y = nas_malloc(sizeof *y * ((size_t)s->n_hist + 1));
    int *len = nas_malloc(sizeof *len * ((size_t)s->n_hist + 1));
    int rc = NAS_ENOMEM, n = 0;
    if (!x || !y || !len) goto out;
    for (int i = 0; i < s->n_hist; i++) {
        if (!nas__hist(s, i)->ok || nas__hist(s, i)->genome.space != s->cfg.space.kind) continue;
        len[n] = pnas_encode(s, &nas__hist(s, i)->genome, x + (size_t)n * T * D);
        y[n++] = (float)nas__hist(s, i)->reward;
    }
    if (n < 2) {
        rc = nas_set_err(err, NAS_ESTATE, "strategy pnas: %d successful results, need 2 to fit", n);
        goto out;
    }
    nas_predictor_config pc;
    nas_predictor_config_default(&pc);
    pc.n_mlp = s->cfg.ensemble;
    pc.use_lstm = s->cfg.use_lstm;
    nas_predictor_data d = {.n = n, .T = T, .D = D, .x = x, .len = len, .y = y};
    nas_predictor *p = NULL;
    rc = nas_predictor_fit(&p, &pc, &d, nas_mix64(s->seed ^ (uint64_t)st->level), err);
    if (rc == NAS_OK) {
        nas_predictor_destroy(&st->pred);
        st->pred = p;
    }
out:
    if (rc == NAS_ENOMEM) nas_set_err(err, rc, "strategy pnas: out of memory");
    nas_free(x);
    nas_free(y);
    nas_free(len);
    return rc;
}

/* All distinct, never-proposed expansions of the beam. */
/* Two beam members often share children (add block X to A, or A to X), so
 * candidates are deduplicated by canonical hash before they are scored. */
static int pnas_expand_beam(nas_strategy *s, pnas_state *st, nas_genome **out, int *n_out) {
    nas_genome *cand = NULL;
    int n = 0, cap = 0;
    nas__hashset fresh = {0};
    int rc = NAS_OK;
    for (int b = 0; b < st->n_beam && rc == NAS_OK; b++) {
        nas_genome *kids = NULL;
        int nk = nas_genome_expand(&st->beam[b], &s->cfg.space, &kids);
        if (nk < 0) rc = nk;
        for (int k = 0; k < nk && rc == NAS_OK; k++) {
            uint64_t h = nas_genome_hash(&kids[k]);
            if (nas__strategy_seen(s, h)) continue;
            int added = nas__hashset_add(&fresh, h);
            if (added < 0) rc = NAS_ENOMEM;
            if (added <= 0) continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                nas_genome *c = nas_realloc(cand, sizeof *c * (size_t)cap);
                if (!c) {
                    rc = NAS_ENOMEM;
                    break;
                }
                cand = c;
            }
            cand[n++] = kids[k];
        }
        nas_free(kids);
    }
    nas__hashset_free(&fresh);
    if (rc) {
        nas_free(cand);
        return rc;
    }
    *out = cand;
    *n_out = n;
    return NAS_OK;
}

/* Build level + 1 from the complete level. The expensive step. */
/* The candidates are scored in one batch (one predict call per ensemble
 * member), then sorted; only the K best are kept with their scores, which
 * become the "before" half of the next level's rank correlation.  On any
 * failure the level stays as it was and needs_advance stays set, so a
 * later call can try again. */
static int pnas_advance(nas_strategy *s, char *err) {
    pnas_state *st = s->impl;
    int rc = pnas_make_beam(s, st);
    if (rc) return nas_set_err(err, rc, "strategy pnas: out of memory");
    rc = pnas_fit(s, st, err);
    if (rc == NAS_ESTATE) {
        /* Nearly every evaluation failed: there is nothing to learn from or
         * to expand, and waiting would stall the campaign for good. */
        nas_warn("%s after level %d; search ends", err, st->level);
        st->finished = 1;
        st->needs_advance = 0;
        return NAS_OK;
    }
    if (rc) return rc;
    nas_genome *cand = NULL;
    int n = 0;
    rc = pnas_expand_beam(s, st, &cand, &n);
    if (rc) return nas_set_err(err, rc, "strategy pnas: expanding the beam failed");
    if (n == 0) {
        nas_info("strategy pnas: level %d has no new expansion; search ends", st->level + 1);
        st->finished = 1;
        st->needs_advance = 0;
        nas_free(cand);
        return NAS_OK;
    }
    int T, D;
    pnas_shape(s, &T, &D);
    float *x = nas_calloc((size_t)n * T * D, sizeof *x);
    int *len = nas_malloc(sizeof *len * (size_t)n);
    float *pred = nas_malloc(sizeof *pred * (size_t)n);
    scored *sc = nas_malloc(sizeof *sc * (size_t)n);
    nas_genome *pick = nas_malloc(sizeof *pick * (size_t)n);
    double *pv = nas_malloc(sizeof *pv * (size_t)n);
    rc = (!x || !len || !pred || !sc || !pick || !pv) ? NAS_ENOMEM : NAS_OK;
    if (rc == NAS_OK) {
        for (int i = 0; i < n; i++)
            len[i] = pnas_encode(s, &cand[i], x + (size_t)i * T * D);
        nas_predictor_data d = {.n = n, .T = T, .D = D, .x = x, .len = len};
        rc = nas_predictor_predict(st->pred, &d, pred, err);
    }
    if (rc == NAS_OK) {
        for (int i = 0; i < n; i++)
            sc[i] = (scored){pred[i], i};
        qsort(sc, (size_t)n, sizeof *sc, scored_desc);
        int k = n < s->cfg.beam ? n : s->cfg.beam;
        for (int i = 0; i < k; i++)
            pick[i] = cand[sc[i].i], pv[i] = sc[i].v;
        rc = pnas_set_queue(st, pick, pv, k);
        if (rc == NAS_OK) {
            st->level++;
            st->needs_advance = 0;
            nas_info("strategy pnas: level %d: %d candidates from a beam of %d, training the "
                     "best %d (predicted %.4f..%.4f)",
                     st->level, n, st->n_beam, k, pv[0], pv[k - 1]);
        }
    }
    if (rc == NAS_ENOMEM) nas_set_err(err, rc, "strategy pnas: out of memory");
    nas_free(cand);
    nas_free(x);
    nas_free(len);
    nas_free(pred);
    nas_free(sc);
    nas_free(pick);
    nas_free(pv);
    return rc;
}

int nas__strategy_pnas_needs_prepare(const nas_strategy *s) {
    const pnas_state *st = s->impl;
    return st->needs_advance && s->proposed < s->cfg.budget;
}

int nas__strategy_pnas_prepare(nas_strategy *s, char *err) {
    if (!nas__strategy_pnas_needs_prepare(s)) return NAS_OK;
    return pnas_advance(s, err);
}

// ---- propose / observe -------------------------------------------------------------------

static void pnas_check_complete(nas_strategy *s, pnas_state *st);

static int pnas_propose(nas_strategy *s, nas_proposal *out, char *err) {
    pnas_state *st = s->impl;
    for (;;) {
        if (st->needs_advance) {
            int rc = pnas_advance(s, err);
            if (rc) return rc;
        }
        if (st->finished)
            return nas_set_err(err, nas_strategy_done(s) ? NAS_ESTATE : NAS_EAGAIN,
                               "strategy pnas: search finished");
        while (st->next < st->n_queue) {
            pnas_entry *e = &st->queue[st->next++];
            /* A network proposed before (another level reached it, or an
             * external result) is not trained twice. */
            if (nas__strategy_seen(s, e->hash)) {
                e->state = PNAS_SKIPPED;
                continue;
            }
            out->genome = e->genome;
            out->has_parent = 0;
            if (nas__strategy_commit(s, out))
                return nas_set_err(err, NAS_ENOMEM, "strategy: out of memory");
            e->state = PNAS_PROPOSED;
            return NAS_OK;
        }
        /* Skipped entries at the end may have completed the level. */
        pnas_check_complete(s, st);
        if (!st->needs_advance && !st->finished) break;
    }
    return nas_set_err(err, NAS_EAGAIN, "strategy pnas: level %d has %d results outstanding",
                       st->level, s->n_inflight);
}

/* Spearman correlation between what the predictor said and what training
 * found, over the level's successful results. */
static void pnas_measure(nas_strategy *s, pnas_state *st) {
    if (st->level < 2) return;
    /* Level 1 of a non-shared cell space holds tens of thousands of
     * entries, so the pairs live on the heap, not the stack. */
    double *a = nas_malloc(sizeof *a * 2 * ((size_t)st->n_queue + 1));
    if (!a) {
        nas_warn("strategy pnas: level %d: no memory to measure the predictor", st->level);
        return;
    }
    double *b = a + st->n_queue + 1;
    int n = 0;
    for (int i = 0; i < st->n_queue; i++) {
        const pnas_entry *e = &st->queue[i];
        if (e->state != PNAS_OBSERVED || !nas__hist(s, e->hist)->ok) continue;
        a[n] = e->pred;
        b[n++] = nas__hist(s, e->hist)->reward;
    }
    double rho = nas_predictor_spearman(a, b, n);
    nas_free(a);
    st->corr[st->level] = rho;
    s->rank_corr = rho;
    nas_info("strategy pnas: level %d predictor rank correlation %.3f over %d results", st->level,
             rho, n);
}

/* A result is matched to the level's queue by canonical hash; a result of
 * a genome the level did not propose (a re-queued task of an earlier
 * campaign) still feeds the predictor through the history. */
static int pnas_observe(nas_strategy *s, int idx, int was_inflight, char *err) {
    pnas_state *st = s->impl;
    const nas__record *r = nas__hist(s, idx);
    for (int i = 0; i < st->n_queue; i++) {
        pnas_entry *e = &st->queue[i];
        if (e->state == PNAS_PROPOSED && e->hash == r->hash) {
            e->state = PNAS_OBSERVED;
            e->hist = idx;
            break;
        }
    }
    pnas_check_complete(s, st);
    return NAS_OK;
}

/* When every entry of the level is proposed and observed (or skipped):
 * measure the predictor and either finish or ask for the advance. */
static void pnas_check_complete(nas_strategy *s, pnas_state *st) {
    if (st->needs_advance || st->finished || st->next < st->n_queue) return;
    for (int i = 0; i < st->n_queue; i++)
        if (st->queue[i].state == PNAS_PROPOSED) return;
    pnas_measure(s, st);
    if (st->level >= s->cfg.max_blocks) {
        st->finished = 1;
        nas_info("strategy pnas: level %d (the last) complete", st->level);
    } else {
        st->needs_advance = 1;
    }
}

static int pnas_finished(const nas_strategy *s) {
    const pnas_state *st = s->impl;
    return st->finished;
}

// ---- state -------------------------------------------------------------------------------

/* The queue is saved with every entry's state, so a resumed campaign knows
 * which of the level's genomes are in flight, done or still to propose.
 * The predictor is saved although the next advance refits it: describe()
 * and a future "score this genome" query need the current one. */
static void pnas_save(const nas_strategy *s, nas__wbuf *w) {
    const pnas_state *st = s->impl;
    nas__w_i32(w, st->level);
    nas__w_u8(w, (uint8_t)st->finished);
    nas__w_u8(w, (uint8_t)st->needs_advance);
    nas__w_i32(w, st->n_queue);
    nas__w_i32(w, st->next);
    for (int i = 0; i < st->n_queue; i++) {
        const pnas_entry *e = &st->queue[i];
        nas__w_genome(w, &e->genome);
        nas__w_f64(w, e->pred);
        nas__w_u8(w, (uint8_t)e->state);
        nas__w_i32(w, e->hist);
    }
    nas__w_i32(w, st->n_beam);
    for (int i = 0; i < st->n_beam; i++)
        nas__w_genome(w, &st->beam[i]);
    for (int i = 0; i <= NAS_MAX_BLOCKS; i++)
        nas__w_f64(w, st->corr[i]);
    uint8_t *blob = NULL;
    size_t n = 0;
    if (st->pred && nas_predictor_export(st->pred, &blob, &n) != NAS_OK) w->oom = 1;
    nas__w_u64(w, (uint64_t)n);
    nas__w_bytes(w, blob, n);
    nas_free(blob);
}

/* Besides ranges, the queue's states must agree with its position (entries
 * before `next` were handled, entries after it are pending) and an observed
 * entry must point at a result: a blob that passes these checks cannot make
 * propose() or observe() index out of bounds. */
static int pnas_load(nas_strategy *s, nas__rbuf *r) {
    pnas_state *st = s->impl;
    int level = nas__r_i32(r, 1, s->cfg.max_blocks, "pnas level");
    int finished = nas__r_u8(r, "pnas finished flag");
    int needs = nas__r_u8(r, "pnas advance flag");
    if (finished > 1 || needs > 1) nas__r_fail(r, "pnas flags");
    int nq = nas__r_i32(r, 0, (int)((r->n - r->off) / 80), "pnas queue length");
    int next = nas__r_i32(r, 0, nq, "pnas queue position");
    if (r->bad) return NAS_EFORMAT;
    pnas_entry *q = nas_calloc((size_t)nq + 1, sizeof *q);
    if (!q) return NAS_ENOMEM;
    for (int i = 0; i < nq && !r->bad; i++) {
        nas__r_genome(r, &q[i].genome, "pnas queue genome");
        q[i].hash = nas_genome_hash(&q[i].genome);
        q[i].pred = nas__r_f64(r, "pnas prediction");
        q[i].state = nas__r_u8(r, "pnas entry state");
        q[i].hist = nas__r_i32(r, -1, s->n_hist - 1, "pnas entry result");
        if (q[i].state > PNAS_SKIPPED || (q[i].state == PNAS_OBSERVED) != (q[i].hist >= 0) ||
            (i >= next) != (q[i].state == PNAS_PENDING))
            nas__r_fail(r, "pnas entry state");
    }
    int nb = nas__r_i32(r, 0, s->cfg.beam, "pnas beam size");
    nas_genome *beam = nas_calloc((size_t)nb + 1, sizeof *beam);
    for (int i = 0; beam && i < nb && !r->bad; i++)
        nas__r_genome(r, &beam[i], "pnas beam genome");
    double corr[NAS_MAX_BLOCKS + 1];
    for (int i = 0; i <= NAS_MAX_BLOCKS; i++)
        corr[i] = nas__r_f64(r, "pnas correlation");
    uint64_t pn = nas__r_u64(r, "pnas predictor size");
    nas_predictor *pred = NULL;
    if (!r->bad && pn > r->n - r->off) nas__r_fail(r, "pnas predictor size");
    if (!r->bad && pn > 0) {
        char perr[NAS_ERR_LEN];
        if (nas_predictor_import(&pred, r->p + r->off, (size_t)pn, perr) != NAS_OK) {
            r->bad = 1;
            nas_set_err(r->err, NAS_EFORMAT, "strategy state: pnas predictor: %s", perr);
        }
        r->off += (size_t)pn;
    }
    if (r->bad || !beam) {
        nas_free(q);
        nas_free(beam);
        nas_predictor_destroy(&pred);
        return r->bad ? NAS_EFORMAT : NAS_ENOMEM;
    }
    nas_free(st->queue);
    nas_free(st->beam);
    nas_predictor_destroy(&st->pred);
    st->level = level, st->finished = finished, st->needs_advance = needs;
    st->queue = q, st->n_queue = nq, st->next = next;
    st->beam = beam, st->n_beam = nb;
    memcpy(st->corr, corr, sizeof corr);
    st->pred = pred;
    return NAS_OK;
}

/* For nasctl: where the search stands and how far the predictor is trusted. */
static int pnas_describe(const nas_strategy *s, char *buf, size_t cap) {
    const pnas_state *st = s->impl;
    int done = 0;
    for (int i = 0; i < st->n_queue; i++)
        done += st->queue[i].state == PNAS_OBSERVED;
    return snprintf(buf, cap, "pnas: level %d/%d, %d/%d trained, predictor rho %.3f%s", st->level,
                    s->cfg.max_blocks, done, st->n_queue, s->rank_corr,
                    st->finished ? ", finished" : "");
}

const nas__strategy_vtable nas__strategy_pnas_vt = {
    .name = "pnas",
    .init = pnas_init,
    .fini = pnas_fini,
    .propose = pnas_propose,
    .observe = pnas_observe,
    .finished = pnas_finished,
    .save = pnas_save,
    .load = pnas_load,
    .describe = pnas_describe,
};
