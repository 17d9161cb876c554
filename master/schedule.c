/*
 * schedule.c - SHA, Hyperband and ASHA as one state machine (schedule.h).
 *
 * All three are brackets of candidates climbing a ladder of rungs; they
 * differ only in how a bracket starts and when a rung may take promotions:
 *   - an ASHA bracket is endless (it starts new candidates forever) and a
 *     rung takes a promotion whenever a result below it ranks in the top
 *     1/eta of its rung;
 *   - an SHA or Hyperband bracket starts a fixed number of candidates at
 *     its first rung, and rung k+1 opens only when every job of rung k has
 *     reported (the barrier), taking the top floor(m_k / eta) of them.
 * A bracket holds one entry per (candidate, rung) it has started: running,
 * done (reported) or promoted (done, and continued one rung up).  Finished
 * brackets are dropped (their result counts kept), so the state grows with
 * the jobs of the open brackets, not with the campaign; ASHA's one bracket
 * keeps every entry, since any old result may still be promoted.
 */
#include "master/schedule.h"

#include "common/alloc.h"
#include "common/err.h"
#include "master/strategy_internal.h"

#include <math.h>
#include <string.h>

enum { E_RUNNING = 0, E_DONE = 1, E_PROMOTED = 2 };

typedef struct sched_entry {
    int64_t cand;
    int32_t rung;
    uint8_t state;
    double value; /* NAN until reported, or when the run failed */
    int64_t seq;  /* report order: the tie-break */
} sched_entry;

typedef struct sched_bracket {
    int32_t id;      /* number in order of opening */
    int32_t base;    /* first rung */
    int32_t n_start; /* candidates it starts at `base`; -1: endless (ASHA) */
    sched_entry *e;
    int32_t n, cap;
} sched_bracket;

struct nas_sched {
    nas_sched_config cfg;
    int64_t next_cand, seq;
    int32_t next_bracket;
    int64_t results[NAS_SCHED_MAX_RUNGS]; /* per rung, brackets finished and open */
    sched_bracket *b;                     /* open brackets, oldest first */
    int32_t nb, bcap;
};

/* eta^k, or -1 past 2^31 (create() keeps every schedule below that). */
static int64_t ipow(int64_t eta, int k) {
    int64_t p = 1;
    for (int i = 0; i < k; i++) {
        p *= eta;
        if (p > INT32_MAX) return -1;
    }
    return p;
}

int nas_sched_hyperband_bracket(int eta, int n_rungs, int s, int *first_rung) {
    int s_max = n_rungs - 1;
    if (eta < 2 || s < 0 || s > s_max) return NAS_EINVAL;
    int64_t p = ipow(eta, s);
    if (p < 0) return NAS_ERANGE;
    /* n = ceil((s_max + 1) / (s + 1) * eta^s), in integers. */
    int64_t a = (int64_t)(s_max + 1) * p;
    if (first_rung) *first_rung = s_max - s;
    return (int)((a + s) / (s + 1));
}

int nas_sched_create(nas_sched **out, const nas_sched_config *cfg, char *err) {
    *out = NULL;
    if (cfg->kind < NAS_SCHED_ASHA || cfg->kind > NAS_SCHED_HYPERBAND)
        return nas_set_err(err, NAS_ECONFIG, "schedule.kind: unknown kind %d", cfg->kind);
    if (cfg->eta < 2 || cfg->eta > 100)
        return nas_set_err(err, NAS_ECONFIG, "schedule.eta: %d is outside 2..100", cfg->eta);
    if (cfg->n_rungs < 1 || cfg->n_rungs > NAS_SCHED_MAX_RUNGS)
        return nas_set_err(err, NAS_ECONFIG, "schedule.rungs: %d rungs, want 1..%d", cfg->n_rungs,
                           NAS_SCHED_MAX_RUNGS);
    /* Hyperband's largest bracket starts eta^(n_rungs-1) candidates (times a
     * small factor); refuse ladders whose brackets could never finish. */
    int64_t top = ipow(cfg->eta, cfg->n_rungs - 1);
    if (top < 0 || top > 1000000)
        return nas_set_err(err, NAS_ECONFIG,
                           "schedule: eta^(rungs-1) = %d^%d is above 1000000 candidates per "
                           "bracket; use fewer rungs or a smaller eta",
                           cfg->eta, cfg->n_rungs - 1);
    if (cfg->n0 < 0 || cfg->n0 > 1000000)
        return nas_set_err(err, NAS_ECONFIG, "schedule.n0: %d is outside 0..1000000", cfg->n0);
    if (cfg->max_open < 0 || cfg->max_open > 1000)
        return nas_set_err(err, NAS_ECONFIG, "schedule.max_open: %d is outside 0..1000",
                           cfg->max_open);
    nas_sched *s = nas_calloc(1, sizeof *s);
    if (!s) return nas_set_err(err, NAS_ENOMEM, "schedule: out of memory");
    s->cfg = *cfg;
    if (s->cfg.kind == NAS_SCHED_SHA && s->cfg.n0 == 0) s->cfg.n0 = (int)top;
    if (s->cfg.max_open == 0) s->cfg.max_open = s->cfg.n_rungs;
    *out = s;
    return NAS_OK;
}

static void bracket_free(sched_bracket *b) {
    nas_free(b->e);
    memset(b, 0, sizeof *b);
}

void nas_sched_destroy(nas_sched **sp) {
    if (!sp || !*sp) return;
    nas_sched *s = *sp;
    for (int i = 0; i < s->nb; i++)
        bracket_free(&s->b[i]);
    nas_free(s->b);
    nas_free(s);
    *sp = NULL;
}

// ---- bracket bookkeeping ------------------------------------------------------------------------

static int bracket_add(sched_bracket *b, int64_t cand, int rung) {
    if (b->n == b->cap) {
        int32_t cap = b->cap ? 2 * b->cap : 16;
        sched_entry *e = nas_realloc(b->e, (size_t)cap * sizeof *e);
        if (!e) return NAS_ENOMEM;
        b->e = e;
        b->cap = cap;
    }
    b->e[b->n++] = (sched_entry){cand, rung, E_RUNNING, NAN, 0};
    return NAS_OK;
}

/* Per-rung counts of one bracket. */
typedef struct rung_counts {
    int started[NAS_SCHED_MAX_RUNGS]; /* entries at the rung */
    int running[NAS_SCHED_MAX_RUNGS];
    int valid[NAS_SCHED_MAX_RUNGS]; /* reported with a value (not NAN) */
} rung_counts;

static void bracket_count(const sched_bracket *b, rung_counts *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < b->n; i++) {
        const sched_entry *e = &b->e[i];
        c->started[e->rung]++;
        if (e->state == E_RUNNING)
            c->running[e->rung]++;
        else if (!isnan(e->value))
            c->valid[e->rung]++;
    }
}

/* Does entry a rank above entry b in its rung?  Higher value first, then
 * the earlier report; failed runs (NAN) rank below everything. */
static int ranks_above(const sched_entry *a, const sched_entry *b) {
    if (isnan(b->value)) return !isnan(a->value);
    if (isnan(a->value)) return 0;
    if (a->value != b->value) return a->value > b->value;
    return a->seq < b->seq;
}

/* The best entry of `rung` that is reported, valid and not yet promoted,
 * and its place in the rung's ranking of reported results (0 = best); -1
 * when there is none. */
static int best_unpromoted(const sched_bracket *b, int rung, int *place) {
    int best = -1;
    for (int i = 0; i < b->n; i++) {
        const sched_entry *e = &b->e[i];
        if (e->rung != rung || e->state != E_DONE || isnan(e->value)) continue;
        if (best < 0 || ranks_above(e, &b->e[best])) best = i;
    }
    if (best >= 0 && place) {
        *place = 0;
        for (int i = 0; i < b->n; i++) {
            const sched_entry *e = &b->e[i];
            if (e->rung == rung && e->state != E_RUNNING && ranks_above(e, &b->e[best])) (*place)++;
        }
    }
    return best;
}

/* What a synchronous bracket is to run at each rung, as far as its
 * barriers allow: want[k] = jobs at rung k, -1 while rung k-1 has not
 * finished.  Rung k+1 takes floor(want[k] / eta) of rung k's jobs, or as
 * many as reported a value if fewer did. */
static void bracket_want(const nas_sched *s, const sched_bracket *b, const rung_counts *c,
                         int *want) {
    for (int k = 0; k < s->cfg.n_rungs; k++)
        want[k] = -1;
    want[b->base] = b->n_start;
    for (int k = b->base + 1; k < s->cfg.n_rungs; k++) {
        int p = k - 1;
        if (want[p] < 0 || c->started[p] < want[p] || c->running[p] > 0) break;
        int w = want[p] / s->cfg.eta;
        want[k] = w < c->valid[p] ? w : c->valid[p];
    }
}

/* A synchronous bracket is finished when every rung's jobs are known and
 * have reported. */
static int bracket_finished(const nas_sched *s, const sched_bracket *b) {
    if (b->n_start < 0) return 0;
    rung_counts c;
    int want[NAS_SCHED_MAX_RUNGS];
    bracket_count(b, &c);
    bracket_want(s, b, &c, want);
    for (int k = b->base; k < s->cfg.n_rungs; k++)
        if (want[k] < 0 || c.started[k] < want[k] || c.running[k] > 0) return 0;
    return 1;
}

// ---- deciding -----------------------------------------------------------------------------------

/* Promote entry i of bracket b one rung up. */
static int promote(sched_bracket *b, int i, nas_sched_job *job) {
    int64_t cand = b->e[i].cand;
    int rung = b->e[i].rung + 1;
    int rc = bracket_add(b, cand, rung);
    if (rc < 0) return rc;
    b->e[i].state = E_PROMOTED;
    *job = (nas_sched_job){NAS_SCHED_PROMOTE, cand, rung, b->id};
    return 1;
}

static int start_new(nas_sched *s, sched_bracket *b, nas_sched_job *job) {
    int rc = bracket_add(b, s->next_cand, b->base);
    if (rc < 0) return rc;
    *job = (nas_sched_job){NAS_SCHED_NEW, s->next_cand++, b->base, b->id};
    return 1;
}

/* ASHA's get_job: from the rung below the top down, promote the best
 * unpromoted result that lies in the top floor(m_k / eta) of rung k; else
 * grow the bottom rung. */
static int asha_work(nas_sched *s, sched_bracket *b, nas_sched_job *job) {
    rung_counts c;
    bracket_count(b, &c);
    for (int k = s->cfg.n_rungs - 2; k >= b->base; k--) {
        int reported = c.started[k] - c.running[k];
        int place, i = best_unpromoted(b, k, &place);
        if (i >= 0 && place < reported / s->cfg.eta) return promote(b, i, job);
    }
    return start_new(s, b, job);
}

/* A synchronous bracket's next job, deepest rung first; 0 when it waits. */
static int sync_work(nas_sched *s, sched_bracket *b, nas_sched_job *job) {
    rung_counts c;
    int want[NAS_SCHED_MAX_RUNGS];
    bracket_count(b, &c);
    bracket_want(s, b, &c, want);
    for (int k = s->cfg.n_rungs - 1; k > b->base; k--)
        if (want[k] > c.started[k]) return promote(b, best_unpromoted(b, k - 1, NULL), job);
    if (c.started[b->base] < b->n_start) return start_new(s, b, job);
    return 0;
}

/* Open the next bracket: Hyperband cycles s = s_max..0, SHA repeats its
 * one shape, ASHA has a single endless bracket. */
static int open_bracket(nas_sched *s) {
    if (s->nb == s->bcap) {
        int32_t cap = s->bcap ? 2 * s->bcap : 4;
        sched_bracket *nb = nas_realloc(s->b, (size_t)cap * sizeof *nb);
        if (!nb) return NAS_ENOMEM;
        s->b = nb;
        s->bcap = cap;
    }
    sched_bracket *b = &s->b[s->nb];
    memset(b, 0, sizeof *b);
    b->id = s->next_bracket;
    if (s->cfg.kind == NAS_SCHED_ASHA) {
        b->n_start = -1;
    } else if (s->cfg.kind == NAS_SCHED_SHA) {
        b->n_start = s->cfg.n0;
    } else {
        int s_max = s->cfg.n_rungs - 1;
        int sb = s_max - b->id % (s_max + 1), first = 0;
        b->n_start = nas_sched_hyperband_bracket(s->cfg.eta, s->cfg.n_rungs, sb, &first);
        b->base = first;
    }
    s->next_bracket++;
    s->nb++;
    return NAS_OK;
}

int nas_sched_next(nas_sched *s, nas_sched_job *job) {
    *job = (nas_sched_job){NAS_SCHED_WAIT, -1, -1, -1};
    if (s->nb == 0) {
        int rc = open_bracket(s);
        if (rc < 0) return rc;
    }
    if (s->cfg.kind == NAS_SCHED_ASHA) {
        int rc = asha_work(s, &s->b[0], job);
        return rc < 0 ? rc : NAS_OK;
    }
    for (int i = 0; i < s->nb; i++) {
        int rc = sync_work(s, &s->b[i], job);
        if (rc != 0) return rc < 0 ? rc : NAS_OK;
    }
    /* Every open bracket waits at a barrier: start another rather than
     * leave the worker idle, up to max_open brackets. */
    if (s->nb >= s->cfg.max_open) return NAS_OK;
    int rc = open_bracket(s);
    if (rc == NAS_OK) rc = sync_work(s, &s->b[s->nb - 1], job);
    return rc < 0 ? rc : NAS_OK;
}

int nas_sched_report(nas_sched *s, int64_t cand, int rung, double value, char *err) {
    if (rung < 0 || rung >= s->cfg.n_rungs)
        return nas_set_err(err, NAS_EINVAL, "schedule: rung %d is outside 0..%d", rung,
                           s->cfg.n_rungs - 1);
    for (int i = 0; i < s->nb; i++) {
        sched_bracket *b = &s->b[i];
        for (int j = 0; j < b->n; j++) {
            sched_entry *e = &b->e[j];
            if (e->cand != cand || e->rung != rung) continue;
            if (e->state != E_RUNNING) break;
            e->state = E_DONE;
            e->value = isfinite(value) ? value : NAN;
            e->seq = s->seq++;
            s->results[rung]++;
            if (bracket_finished(s, b)) {
                bracket_free(b);
                memmove(&s->b[i], &s->b[i + 1], (size_t)(s->nb - i - 1) * sizeof *s->b);
                s->nb--;
            }
            return NAS_OK;
        }
    }
    return nas_set_err(err, NAS_ENOTFOUND,
                       "schedule: candidate %lld is not running at rung %d (a duplicate or "
                       "already recorded result)",
                       (long long)cand, rung);
}

// ---- reading ------------------------------------------------------------------------------------

int nas_sched_running(const nas_sched *s) {
    int n = 0;
    for (int i = 0; i < s->nb; i++)
        for (int j = 0; j < s->b[i].n; j++)
            n += s->b[i].e[j].state == E_RUNNING;
    return n;
}

void nas_sched_rung_counts(const nas_sched *s, int64_t *out) {
    for (int k = 0; k < s->cfg.n_rungs; k++)
        out[k] = s->results[k];
}

int64_t nas_sched_candidates(const nas_sched *s) {
    return s->next_cand;
}

// ---- save / load --------------------------------------------------------------------------------

#define SCHED_MAGIC   0x4843534eu /* "NSCH" */
#define SCHED_VERSION 1u

int nas_sched_save(const nas_sched *s, uint8_t **blob, size_t *n) {
    nas__wbuf w = {0};
    nas__w_u32(&w, SCHED_MAGIC);
    nas__w_u32(&w, SCHED_VERSION);
    const nas_sched_config *c = &s->cfg;
    int32_t cfg[] = {c->kind, c->eta, c->n_rungs, c->n0, c->max_open};
    for (size_t i = 0; i < NAS_ARRAY_LEN(cfg); i++)
        nas__w_i32(&w, cfg[i]);
    nas__w_u64(&w, (uint64_t)s->next_cand);
    nas__w_u64(&w, (uint64_t)s->seq);
    nas__w_i32(&w, s->next_bracket);
    for (int k = 0; k < c->n_rungs; k++)
        nas__w_u64(&w, (uint64_t)s->results[k]);
    nas__w_i32(&w, s->nb);
    for (int i = 0; i < s->nb; i++) {
        const sched_bracket *b = &s->b[i];
        nas__w_i32(&w, b->id);
        nas__w_i32(&w, b->base);
        nas__w_i32(&w, b->n_start);
        nas__w_i32(&w, b->n);
        for (int j = 0; j < b->n; j++) {
            nas__w_u64(&w, (uint64_t)b->e[j].cand);
            nas__w_i32(&w, b->e[j].rung);
            nas__w_u8(&w, b->e[j].state);
            nas__w_f64(&w, b->e[j].value);
            nas__w_u64(&w, (uint64_t)b->e[j].seq);
        }
    }
    if (w.oom) {
        nas_free(w.p);
        return NAS_ENOMEM;
    }
    *blob = w.p;
    *n = w.n;
    return NAS_OK;
}

/* Read one bracket's entries into t, checking every field against the
 * schedule it must belong to. */
static void load_bracket(nas__rbuf *r, const nas_sched *t, sched_bracket *b) {
    int R = t->cfg.n_rungs;
    b->id = nas__r_i32(r, 0, t->next_bracket - 1 < 0 ? 0 : t->next_bracket - 1, "bracket id");
    b->base = nas__r_i32(r, 0, R - 1, "bracket rung");
    b->n_start = nas__r_i32(r, -1, 1000000, "bracket size");
    int32_t n = nas__r_i32(r, 0, INT32_MAX / 64, "bracket entries");
    if (r->bad) return;
    if ((size_t)n * 29 > r->n - r->off) { /* 29 bytes per entry */
        nas__r_fail(r, "bracket entries");
        return;
    }
    b->e = n ? nas_malloc((size_t)n * sizeof *b->e) : NULL;
    if (n && !b->e) {
        nas__r_fail(r, "memory");
        return;
    }
    b->n = b->cap = n;
    for (int j = 0; j < n; j++) {
        sched_entry *e = &b->e[j];
        e->cand = (int64_t)nas__r_u64(r, "candidate");
        e->rung = nas__r_i32(r, b->base, R - 1, "entry rung");
        e->state = nas__r_u8(r, "entry state");
        e->value = nas__r_f64(r, "entry value");
        e->seq = (int64_t)nas__r_u64(r, "entry order");
        if (e->cand < 0 || e->cand >= t->next_cand) nas__r_fail(r, "candidate");
        if (e->state > E_PROMOTED || (e->state == E_PROMOTED && e->rung == R - 1))
            nas__r_fail(r, "entry state");
        if (isinf(e->value)) nas__r_fail(r, "entry value");
    }
}

int nas_sched_load(nas_sched *s, const uint8_t *blob, size_t n, char *err) {
    nas__rbuf r = {.p = blob, .n = n};
    if (nas__r_u32(&r, "magic") != SCHED_MAGIC && !r.bad) nas__r_fail(&r, "magic");
    if (nas__r_u32(&r, "version") != SCHED_VERSION && !r.bad) nas__r_fail(&r, "version");
    const nas_sched_config *c = &s->cfg;
    int32_t want[] = {c->kind, c->eta, c->n_rungs, c->n0, c->max_open};
    for (size_t i = 0; i < NAS_ARRAY_LEN(want); i++)
        if (nas__r_i32(&r, INT32_MIN, INT32_MAX, "config") != want[i] && !r.bad) {
            if (err)
                nas_set_err(err, NAS_EFORMAT,
                            "schedule state: saved by a different schedule (kind, eta, rungs, "
                            "n0 or max_open differ); resume with the same schedule");
            return NAS_EFORMAT;
        }
    nas_sched t = {.cfg = s->cfg};
    t.next_cand = (int64_t)nas__r_u64(&r, "candidate count");
    t.seq = (int64_t)nas__r_u64(&r, "report count");
    t.next_bracket = nas__r_i32(&r, 0, INT32_MAX, "bracket count");
    for (int k = 0; k < c->n_rungs; k++)
        t.results[k] = (int64_t)nas__r_u64(&r, "rung count");
    if (t.next_cand < 0 || t.seq < 0) nas__r_fail(&r, "counters");
    int32_t nb = nas__r_i32(&r, 0, 1000, "open brackets");
    if (!r.bad && nb > 0 && !(t.b = nas_calloc((size_t)nb, sizeof *t.b))) nas__r_fail(&r, "memory");
    for (int i = 0; i < nb && !r.bad; i++) {
        load_bracket(&r, &t, &t.b[i]);
        t.nb = i + 1;
        t.bcap = nb;
    }
    if (!r.bad && r.off != r.n) nas__r_fail(&r, "trailing bytes");
    if (r.bad) {
        for (int i = 0; i < t.nb; i++)
            bracket_free(&t.b[i]);
        nas_free(t.b);
        /* The reader words its messages for the strategy state it was
         * written for; name the schedule instead. */
        const char *why = r.err;
        if (strncmp(why, "strategy state: ", 16) == 0) why += 16;
        return nas_set_err(err, NAS_EFORMAT, "schedule state: %s", why);
    }
    for (int i = 0; i < s->nb; i++)
        bracket_free(&s->b[i]);
    nas_free(s->b);
    *s = t;
    return NAS_OK;
}
