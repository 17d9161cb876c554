/*
 * campaign_sched.c - the campaign's multi-fidelity search: the rung
 * scheduler (master/schedule.h) between the proposer and the dispatcher,
 * and early stopping from each run's learning curve (master/earlystop.h).
 * The campaign's own files only call in through a few narrow hooks
 * (campaign_internal.h, "campaign_sched.c").
 *
 * Candidates.  The scheduler numbers candidates 0, 1, 2, ...; this file
 * keeps each one's architecture hash and, for every task it created, the
 * candidate, the rung and whether the task is a promotion.  A new
 * candidate is an ordinary proposal of the strategy trained at its first
 * rung; a promotion is a search task of the same architecture at the next
 * rung that names the architecture itself as its parent, so the worker
 * pulls its own trained weights from the weight store (wherever it
 * trained before) and trains only the epochs the rung adds.  The store
 * records a promotion with the rung's whole fidelity (the epochs its
 * weights have seen in all), so results group by rung.
 *
 * What the proposer learns from: each candidate's first result, as an
 * ordinary observation (docs/CAMPAIGN.md, schedule).  Promotions are not
 * proposals: they are neither observed nor part of the strategy's history,
 * and on resume the history skips them by task id.
 *
 * Durability.  The scheduler's state and this file's tables travel with
 * the strategy's core blob, wrapped in one container (wrap / unwrap), so
 * a decision is committed in the same transaction as the task or result
 * that carries it: a promotion decided before a crash is neither taken
 * twice nor lost.  A decision the campaign cannot carry out (the proposer
 * has nothing now) is undone by reloading the state saved before it.
 *
 * Early stopping.  Each Progress adds an epoch to the running task's
 * curve; the rule (median or extrapolation) compares it with the curves of
 * finished runs at the same fidelity.  A stopped run is recorded as a
 * result (its last validation accuracy, the curve so far), with an event
 * naming the rule and the predicted final accuracy, and the worker gets
 * Cancel: the strategy sees a finished evaluation, the scheduler a stop
 * (never promoted).  Finished curves are kept in memory only: after a
 * restart the rule waits for min_runs new ones.  A run whose curve has a
 * hole (Progress lost while its worker reconnected) is not judged.
 */
#include "master/campaign_internal.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "master/earlystop.h"
#include "master/schedule.h"
#include "master/strategy_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define WRAP_MAGIC   0x4e534331u /* "NSC1": tasks without the check flag */
#define WRAP_MAGIC2  0x4e534332u /* "NSC2" */
#define MAX_TRACKED  8           /* running curves followed at once (one per worker) */

typedef struct stask {
    int64_t task_id;
    int64_t cand;
    int32_t rung;
    int32_t promoted;
    int32_t reported; /* 1: its result is in (value, NAN for a failure or a stop) */
    double value;
    int32_t check; /* 1: a fidelity_check sample, outside the scheduler */
} stask;

/* A finished run's curve, for the stopping rules. */
typedef struct done_curve {
    float *v;
    int n, rung;
    double final;
} done_curve;

typedef struct curve {
    int64_t task_id;
    int rung; /* -1: no schedule */
    int n;
    float v[NAS_WIRE_MAX_CURVE];
    uint8_t seen[NAS_WIRE_MAX_CURVE]; /* 1: epoch i + 1's Progress arrived */
} curve;

struct nas__csched {
    nas_sched *s; /* NULL: early stopping only */
    uint64_t *cand_hash;
    int64_t n_cand, cap_cand;
    stask *tasks;
    int64_t n_tasks, cap_tasks;
    /* Finished curves (early stopping), per rung (index 0 without a schedule). */
    done_curve *done;
    int64_t n_done, cap_done;
    curve running[MAX_TRACKED];
};

static int grow(void **arr, int64_t *cap, int64_t n, size_t size) {
    if (n < *cap) return NAS_OK;
    int64_t c = *cap ? *cap * 2 : 64;
    void *p = nas_realloc(*arr, (size_t)c * size);
    if (!p) return NAS_ENOMEM;
    *arr = p;
    *cap = c;
    return NAS_OK;
}

int nas__campaign_sched_open(nas_campaign *c, char *err) {
    const nas_config *cfg = c->cfg;
    if (!cfg->schedule.kind && !cfg->early_stop.rule) return NAS_OK;
    nas__csched *m = nas_calloc(1, sizeof *m);
    if (!m) return nas_set_err(err, NAS_ENOMEM, "schedule: out of memory");
    if (cfg->schedule.kind) {
        static const int kinds[] = {0, NAS_SCHED_ASHA, NAS_SCHED_HYPERBAND, NAS_SCHED_SHA};
        nas_sched_config sc = {kinds[cfg->schedule.kind], cfg->schedule.eta,
                               cfg->schedule.n_rungs, cfg->schedule.n0, cfg->schedule.max_open};
        int rc = nas_sched_create(&m->s, &sc, err);
        if (rc < 0) {
            nas_free(m);
            return rc;
        }
    }
    c->sched = m;
    return NAS_OK;
}

void nas__campaign_sched_close(nas_campaign *c) {
    nas__csched *m = c->sched;
    if (!m) return;
    nas_sched_destroy(&m->s);
    for (int64_t i = 0; i < m->n_done; i++)
        nas_free(m->done[i].v);
    nas_free(m->done);
    nas_free(m->cand_hash);
    nas_free(m->tasks);
    nas_free(m);
    c->sched = NULL;
}

static stask *find_task(const nas__csched *m, int64_t id) {
    if (!m) return NULL;
    for (int64_t i = m->n_tasks - 1; i >= 0; i--)
        if (m->tasks[i].task_id == id) return &m->tasks[i];
    return NULL;
}

// ---- proposing ----------------------------------------------------------------------------------

/* Put the scheduler back as saved before a decision the campaign could not
 * carry out. */
static void undo(nas__csched *m, const uint8_t *saved, size_t n) {
    char err[NAS_ERR_LEN];
    if (nas_sched_load(m->s, saved, n, err) < 0) nas_error("schedule: undo: %s", err);
}

/* Remember a task the scheduler created (task id, candidate, rung). */
static int note_task(nas__csched *m, int64_t id, int64_t cand, int rung, int promoted,
                     int check) {
    if (grow((void **)&m->tasks, &m->cap_tasks, m->n_tasks, sizeof *m->tasks)) return NAS_ENOMEM;
    m->tasks[m->n_tasks++] = (stask){id, cand, rung, promoted, 0, NAN, check};
    return NAS_OK;
}

/* A candidate's architecture, from the store's record of it. */
static int cand_genome(nas_campaign *c, int64_t cand, nas_genome *g, char *err) {
    const nas__csched *m = c->sched;
    if (cand < 0 || cand >= m->n_cand)
        return nas_set_err(err, NAS_EFORMAT, "schedule: unknown candidate %" PRId64, cand);
    nas_store_arch_info ai;
    int rc = nas_store_arch_get(c->store, m->cand_hash[cand], &ai, err);
    if (rc == NAS_OK) {
        rc = nas_genome_parse(ai.text, strlen(ai.text), g, err);
        nas_free(ai.genome);
    }
    return rc;
}

// ---- fidelity_check -----------------------------------------------------------------------------

/* The next candidate to sample, or -1: candidates in order, each once its
 * first result is in below the top rung, unless the scheduler has taken
 * it further (a promoted candidate is measured above anyway).  The
 * scheduler promotes the best of a rung, so the pairs it leaves span a
 * narrow range of the low fidelity; these span all of it. */
static int64_t check_due(const nas__csched *m, int samples, int top) {
    int64_t taken = 0;
    for (int64_t i = 0; i < m->n_tasks; i++)
        taken += m->tasks[i].check;
    if (taken >= samples) return -1;
    for (int64_t cand = 0; cand < m->n_cand; cand++) {
        int first_in = 0, other = 0, seen = 0;
        for (int64_t i = 0; i < m->n_tasks && !other; i++) {
            const stask *s = &m->tasks[i];
            if (s->cand != cand) continue;
            if (!seen++)
                first_in = !s->check && s->rung < top && s->reported && isfinite(s->value);
            else
                other = 1;
        }
        if (first_in && !other) return cand;
    }
    return -1;
}

/* fidelity_check: a sample trains from fresh weights at the top rung's
 * whole fidelity, the expensive fidelity's own evaluation, outside the
 * scheduler: its result reaches neither the scheduler nor the proposer
 * (the task counts as a promotion there), only the store, where it pairs
 * with the candidate's first result in the rank correlation (nasctl
 * fidelity, status).  1 a task was added, 0 none is due, < 0 failure. */
static int propose_check(nas_campaign *c, int64_t now_ms) {
    nas__csched *m = c->sched;
    int top = c->cfg->schedule.n_rungs - 1;
    int64_t cand = check_due(m, c->cfg->fidelity_check.samples, top);
    if (cand < 0) return 0;
    char err[NAS_ERR_LEN];
    nas_genome g;
    int64_t id = 0;
    int rc = cand_genome(c, cand, &g, err);
    if (rc == NAS_OK)
        rc = nas__campaign_add_rung(c, &g, &c->cfg->schedule.rungs[top], top, 1, 0, 0, &id, now_ms,
                                    err);
    if (rc == NAS_OK && note_task(m, id, cand, top, 1, 1) < 0)
        rc = nas_set_err(err, NAS_ENOMEM, "schedule: out of memory");
    if (rc < 0) {
        nas__campaign_fail(c, err);
        return rc;
    }
    c->state_dirty = 1;
    nas_info("schedule: task %" PRId64 ": fidelity check of candidate %" PRId64 " at rung %d", id,
             cand, top);
    return 1;
}

/* The first candidate of this architecture.  A strategy may propose an
 * architecture again (evolution's identity mutation, a small space); all
 * its candidates share one entry in the weight store.  A later candidate's
 * first run does not push (the entry may already hold a higher rung's
 * weights), and a promotion to a rung another candidate of the
 * architecture already trained takes that result (promote_twin), so each
 * architecture is trained at most once per rung above its first and a
 * continuation always pulls the weights of the rung below. */
static int64_t first_cand(const nas__csched *m, uint64_t hash) {
    for (int64_t i = 0; i < m->n_cand; i++)
        if (m->cand_hash[i] == hash) return i;
    return -1;
}

/* Another candidate of the same architecture at `rung`: its task when its
 * result is in (NULL otherwise), and *running when it is still training. */
static const stask *twin_at(const nas__csched *m, int64_t cand, int rung, int *running) {
    *running = 0;
    for (int64_t i = 0; i < m->n_tasks; i++) {
        const stask *s = &m->tasks[i];
        if (s->cand == cand || s->rung != rung || m->cand_hash[s->cand] != m->cand_hash[cand])
            continue;
        if (s->reported) return s;
        *running = 1;
    }
    return NULL;
}

/* A promotion of an architecture another candidate already trained at
 * that rung: the result is known (training is deterministic in the
 * fidelity's seed), so it is reported at once instead of trained again.
 * 1 done, 0 wait for the twin still training, < 0 failure. */
static int promote_twin(nas_campaign *c, const nas_sched_job *job, char *err) {
    nas__csched *m = c->sched;
    int running = 0;
    const stask *twin = twin_at(m, job->cand, job->rung, &running);
    if (!twin) return running ? 0 : 2;
    int rc = nas_sched_report(m->s, job->cand, job->rung, twin->value, err);
    if (rc < 0) return rc;
    c->state_dirty = 1;
    nas_debug("schedule: candidate %" PRId64 " promoted to rung %d with its twin's result %.4f",
              job->cand, job->rung, twin->value);
    return 1;
}

int nas__campaign_sched_propose(nas_campaign *c, int64_t now_ms) {
    nas__csched *m = c->sched;
    char err[NAS_ERR_LEN];
    if (c->cfg->fidelity_check.samples > 0) {
        int rc = propose_check(c, now_ms);
        if (rc != 0) return rc;
    }
    uint8_t *saved = NULL;
    size_t n_saved = 0;
    if (nas_sched_save(m->s, &saved, &n_saved) < 0) {
        nas__campaign_fail(c, "schedule: out of memory");
        return NAS_ENOMEM;
    }
    nas_sched_job job;
    int rc = nas_sched_next(m->s, &job);
    if (rc < 0 || job.action == NAS_SCHED_WAIT) {
        if (rc == NAS_OK) undo(m, saved, n_saved); /* nothing to record */
        nas_free(saved);
        return rc < 0 ? rc : 0;
    }
    nas_genome g;
    int has_parent = 0;
    uint64_t parent_hash = 0;
    int promoted = job.action == NAS_SCHED_PROMOTE;
    if (promoted && job.cand < m->n_cand) {
        rc = promote_twin(c, &job, err);
        if (rc != 2) {
            if (rc == 0) undo(m, saved, n_saved);
            nas_free(saved);
            if (rc < 0) nas__campaign_fail(c, err);
            return rc;
        }
        rc = NAS_OK;
    }
    if (promoted) {
        rc = cand_genome(c, job.cand, &g, err);
        has_parent = 1;
        parent_hash = job.cand < m->n_cand ? m->cand_hash[job.cand] : 0;
    } else {
        if (nas_strategy_done(c->strategy)) {
            undo(m, saved, n_saved);
            nas_free(saved);
            return 0;
        }
        nas_proposal p;
        rc = nas_strategy_propose(c->strategy, &p, err);
        if (rc == NAS_EAGAIN || rc == NAS_ESTATE) {
            undo(m, saved, n_saved);
            nas_free(saved);
            return 0;
        }
        g = p.genome;
        has_parent = p.has_parent;
        parent_hash = p.parent_hash;
    }
    nas_free(saved);
    if (rc < 0) {
        nas__campaign_fail(c, err);
        return rc;
    }
    c->state_dirty = 1;
    int64_t id = 0;
    rc = nas__campaign_add_rung(c, &g, &c->cfg->schedule.rungs[job.rung], job.rung, promoted,
                                has_parent, parent_hash, &id, now_ms, err);
    if (rc == NAS_OK && !promoted) {
        /* Candidates are numbered in order, so the new one is the next. */
        if (job.cand != m->n_cand ||
            grow((void **)&m->cand_hash, &m->cap_cand, m->n_cand, sizeof *m->cand_hash))
            rc = nas_set_err(err, NAS_ENOMEM, "schedule: candidate table out of step");
        else
            m->cand_hash[m->n_cand++] = nas_genome_hash(&g);
    }
    if (rc == NAS_OK && note_task(m, id, job.cand, job.rung, promoted, 0) < 0)
        rc = nas_set_err(err, NAS_ENOMEM, "schedule: out of memory");
    if (rc < 0) {
        nas__campaign_fail(c, err);
        return rc;
    }
    nas_debug("schedule: task %" PRId64 ": candidate %" PRId64 " %s rung %d", id, job.cand,
              promoted ? "promoted to" : "starts at", job.rung);
    return 1;
}

/* What the worker trains: the rung's fidelity, and for a promotion only
 * the epochs it adds to the rung below. */
void nas__campaign_sched_wire_fidelity(const nas_campaign *c, const nas__ctask *t,
                                       nas_fidelity *f) {
    *f = c->cfg->schedule.rungs[t->rung];
    /* A fidelity check is the one "promoted" task without a parent: it
     * trains the whole top fidelity from fresh weights. */
    if (t->promoted && t->has_parent) f->epochs -= c->cfg->schedule.rungs[t->rung - 1].epochs;
}

void nas__campaign_sched_resume_task(const nas_campaign *c, nas__ctask *t) {
    const stask *s = c->sched ? find_task(c->sched, t->id) : NULL;
    if (!s || !c->sched->s) return;
    t->scheduled = 1;
    t->rung = s->rung;
    t->promoted = s->promoted;
}

int nas__campaign_sched_skip(const nas_campaign *c, int64_t task_id) {
    const stask *s = c ? find_task(c->sched, task_id) : NULL;
    return s && s->promoted;
}

int nas__campaign_sched_pushes(const nas_campaign *c, const nas__ctask *t) {
    const nas__csched *m = c->sched;
    if (!m || !m->s || !t->scheduled || t->rung >= c->cfg->schedule.n_rungs - 1) return 0;
    if (t->promoted) return 1;
    /* A task being created is not in the table yet, nor is its candidate. */
    const stask *s = find_task(m, t->id);
    int64_t first = first_cand(m, t->hash);
    return first < 0 || (s && s->cand == first);
}

int nas__campaign_sched_keeps(const nas_campaign *c, uint64_t arch) {
    const nas__csched *m = c->sched;
    if (!m || !m->s) return 0;
    /* Any candidate below the top rung may still be promoted (ASHA never
     * closes a rung): keep its weights. */
    for (int64_t i = 0; i < m->n_tasks; i++)
        if (m->cand_hash[m->tasks[i].cand] == arch &&
            m->tasks[i].rung < c->cfg->schedule.n_rungs - 1)
            return 1;
    return 0;
}

// ---- results ------------------------------------------------------------------------------------

static void keep_curve(nas__csched *m, int rung, const float *v, int n, double final) {
    if (n <= 0 || grow((void **)&m->done, &m->cap_done, m->n_done, sizeof *m->done)) return;
    float *copy = nas_malloc((size_t)n * sizeof *copy);
    if (!copy) return;
    memcpy(copy, v, (size_t)n * sizeof *copy);
    m->done[m->n_done++] = (done_curve){copy, n, rung, final};
}

static curve *tracked(nas__csched *m, int64_t id, int take) {
    curve *free_slot = NULL;
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (m->running[i].task_id == id && id != 0) return &m->running[i];
        if (!free_slot && m->running[i].task_id == 0) free_slot = &m->running[i];
    }
    if (!take) return NULL;
    if (!free_slot) free_slot = &m->running[id % MAX_TRACKED]; /* forget the oldest guess */
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->task_id = id;
    return free_slot;
}

int nas__campaign_sched_result(nas_campaign *c, const nas__ctask *t, int ok, double value,
                               const float *curve_v, int n_curve, char *err) {
    nas__csched *m = c->sched;
    if (!m) return NAS_OK;
    curve *cv = tracked(m, t->id, 0);
    if (cv) cv->task_id = 0;
    if (ok && t->stage == NAS_STORE_STAGE_SEARCH)
        keep_curve(m, t->scheduled ? t->rung : 0, curve_v, n_curve, value);
    if (!m->s || !t->scheduled) return NAS_OK;
    stask *s = find_task(m, t->id);
    if (!s) return NAS_OK;
    s->reported = 1;
    s->value = ok ? value : NAN;
    if (s->check) {
        c->state_dirty = 1;
        return NAS_OK;
    }
    int rc = nas_sched_report(m->s, s->cand, s->rung, s->value, err);
    if (rc == NAS_ENOTFOUND) {
        nas_warn("%s (dropped)", err);
        return NAS_OK;
    }
    if (rc == NAS_OK) c->state_dirty = 1;
    return rc;
}

// ---- early stopping -----------------------------------------------------------------------------

/* The best finished result at the same rung: what a run must beat. */
static double best_done(const nas__csched *m, int rung) {
    double best = -INFINITY;
    for (int64_t i = 0; i < m->n_done; i++)
        if (m->done[i].rung == rung && m->done[i].final > best) best = m->done[i].final;
    return best;
}

void nas__campaign_sched_progress(void *ctx, const nas_wire_progress *p, const char *worker) {
    nas_campaign *c = ctx;
    nas__csched *m = c->sched;
    if (!m || !c->cfg->early_stop.rule || c->fatal) return;
    nas__ctask *t = nas__campaign_find(c, (int64_t)p->task_id);
    if (!t || t->stage != NAS_STORE_STAGE_SEARCH) return;
    curve *cv = tracked(m, t->id, 1);
    if (p->epoch < 1 || p->epoch > NAS_WIRE_MAX_CURVE) return;
    /* A promotion's epochs continue the rung below's: its curve is the
     * added part, compared with the added parts of its rung. */
    cv->rung = t->scheduled ? t->rung : 0;
    cv->v[p->epoch - 1] = (float)p->val_acc;
    cv->seen[p->epoch - 1] = 1;
    if (p->epoch > cv->n) cv->n = p->epoch;
    if (p->epoch >= p->epochs) return; /* its result is on the way */
    /* Progress is advisory: a worker drops what it reports while it is
     * disconnected from the master.  A curve with a hole is not evidence
     * (an unknown epoch is not an accuracy of 0), so such a run is not
     * judged; it trains to its end. */
    if (memchr(cv->seen, 0, (size_t)cv->n)) return;
    const nas_config *cfg = c->cfg;
    int stop = 0;
    double predicted = NAN;
    const char *rule = "median";
    if (cfg->early_stop.rule == NAS_CONFIG_STOP_MEDIAN) {
        const float **done = nas_malloc((size_t)(m->n_done + 1) * sizeof *done);
        int *len = nas_malloc((size_t)(m->n_done + 1) * sizeof *len);
        int n = 0;
        for (int64_t i = 0; done && len && i < m->n_done; i++)
            if (m->done[i].rung == cv->rung) {
                done[n] = m->done[i].v;
                len[n++] = m->done[i].n;
            }
        if (done && len)
            stop = nas_stop_median(done, len, n, cv->v, cv->n, cfg->early_stop.min_epochs,
                                   cfg->early_stop.min_runs) == 1;
        nas_free(done);
        nas_free(len);
    } else {
        rule = "extrapolate";
        double best = best_done(m, cv->rung);
        nas_curve_forecast fc = {0};
        if (cv->n >= cfg->early_stop.min_epochs && isfinite(best))
            stop = nas_stop_extrapolate(cv->v, cv->n, p->epochs, best, cfg->early_stop.delta,
                                        &fc) == 1;
        predicted = fc.n_models > 0 ? fc.mean : NAN;
    }
    if (!stop) return;
    char text[256], err[NAS_ERR_LEN];
    snprintf(text, sizeof text,
             "task %" PRIu64 " stopped by the %s rule at epoch %d/%d on %s: val_acc %.4f, "
             "predicted final %.4f",
             p->task_id, rule, p->epoch, p->epochs, worker, p->val_acc, predicted);
    nas_info("early stop: %s", text);
    nas_wire_result r;
    memset(&r, 0, sizeof r);
    r.task_id = p->task_id;
    r.attempt = p->attempt;
    r.val_acc = p->val_acc;
    r.val_loss = p->val_loss;
    r.n_curve = cv->n;
    memcpy(r.curve, cv->v, (size_t)cv->n * sizeof *r.curve);
    cv->task_id = 0;
    int64_t now = nas_now_ms();
    if (nas_store_event_append(c->store, nas_wall_ms(), "task-stopped", text, err) < 0) {
        nas__campaign_fail(c, err);
        return;
    }
    nas_status_live_stopped(c->live);
    /* Recorded as this run's result (the strategy observes it; the
     * scheduler gets a stop, never promoted), then the worker is told. */
    if (nas__campaign_record(c, &r, worker, 1) == NAS_OK)
        nas_dispatcher_cancel(c->disp, p->task_id, now);
}

// ---- durability ---------------------------------------------------------------------------------

int nas__campaign_sched_wrap(const nas_campaign *c, const uint8_t *core, size_t n, uint8_t **out,
                             size_t *out_n) {
    const nas__csched *m = c->sched;
    if (!m || !m->s) return NAS_ENOTFOUND;
    uint8_t *sb = NULL;
    size_t sn = 0;
    if (nas_sched_save(m->s, &sb, &sn) < 0) return NAS_ENOMEM;
    nas__wbuf w = {0};
    nas__w_u32(&w, WRAP_MAGIC2);
    nas__w_u64(&w, (uint64_t)n);
    nas__w_bytes(&w, core, n);
    nas__w_u64(&w, (uint64_t)sn);
    nas__w_bytes(&w, sb, sn);
    nas__w_u64(&w, (uint64_t)m->n_cand);
    for (int64_t i = 0; i < m->n_cand; i++)
        nas__w_u64(&w, m->cand_hash[i]);
    nas__w_u64(&w, (uint64_t)m->n_tasks);
    for (int64_t i = 0; i < m->n_tasks; i++) {
        nas__w_u64(&w, (uint64_t)m->tasks[i].task_id);
        nas__w_u64(&w, (uint64_t)m->tasks[i].cand);
        nas__w_i32(&w, m->tasks[i].rung);
        nas__w_u8(&w, (uint8_t)m->tasks[i].promoted);
        nas__w_u8(&w, (uint8_t)m->tasks[i].reported);
        nas__w_f64(&w, m->tasks[i].value);
        nas__w_u8(&w, (uint8_t)m->tasks[i].check);
    }
    nas_free(sb);
    if (w.oom) {
        nas_free(w.p);
        return NAS_ENOMEM;
    }
    *out = w.p;
    *out_n = w.n;
    return NAS_OK;
}

int nas__campaign_sched_unwrap(nas_campaign *c, const uint8_t *blob, size_t n,
                               const uint8_t **core, size_t *core_n, char *err) {
    nas__csched *m = c ? c->sched : NULL;
    uint32_t magic = 0;
    if (n >= 4) memcpy(&magic, blob, 4);
    if (magic != WRAP_MAGIC && magic != WRAP_MAGIC2) {
        *core = blob;
        *core_n = n;
        if (m && m->s)
            return nas_set_err(err, NAS_EFORMAT,
                               "the store's strategy state has no schedule state, but the campaign "
                               "has a schedule");
        return NAS_OK;
    }
    if (!m || !m->s)
        return nas_set_err(err, NAS_EFORMAT,
                           "the store's strategy state carries a schedule the campaign lacks");
    nas__rbuf r = {.p = blob, .n = n, .off = 4};
    uint64_t cn = nas__r_u64(&r, "core length");
    if (!r.bad && cn > n - r.off) nas__r_fail(&r, "core length");
    if (r.bad) return nas_set_err(err, NAS_EFORMAT, "schedule state: %s", r.err);
    *core = blob + r.off;
    *core_n = (size_t)cn;
    r.off += (size_t)cn;
    uint64_t sn = nas__r_u64(&r, "schedule length");
    if (!r.bad && sn > n - r.off) nas__r_fail(&r, "schedule length");
    if (r.bad) return nas_set_err(err, NAS_EFORMAT, "schedule state: %s", r.err);
    int rc = nas_sched_load(m->s, blob + r.off, (size_t)sn, err);
    if (rc < 0) return rc;
    r.off += (size_t)sn;
    uint64_t nc = nas__r_u64(&r, "candidates");
    if (!r.bad && nc > (n - r.off) / 8) nas__r_fail(&r, "candidates");
    for (uint64_t i = 0; !r.bad && i < nc; i++) {
        if (grow((void **)&m->cand_hash, &m->cap_cand, m->n_cand, sizeof *m->cand_hash))
            return nas_set_err(err, NAS_ENOMEM, "schedule: out of memory");
        m->cand_hash[m->n_cand++] = nas__r_u64(&r, "candidate");
    }
    uint64_t nt = nas__r_u64(&r, "tasks");
    int v2 = magic == WRAP_MAGIC2;
    if (!r.bad && nt > (n - r.off) / (30 + (uint64_t)v2)) nas__r_fail(&r, "tasks");
    for (uint64_t i = 0; !r.bad && i < nt; i++) {
        stask s;
        s.task_id = (int64_t)nas__r_u64(&r, "task id");
        s.cand = (int64_t)nas__r_u64(&r, "task candidate");
        s.rung = nas__r_i32(&r, 0, c->cfg->schedule.n_rungs - 1, "task rung");
        s.promoted = nas__r_u8(&r, "task kind") != 0;
        int reported = nas__r_u8(&r, "task reported") != 0;
        double value = nas__r_f64(&r, "task value");
        int check = v2 ? nas__r_u8(&r, "task check") != 0 : 0;
        if (!r.bad && (s.cand < 0 || s.cand >= m->n_cand)) nas__r_fail(&r, "task candidate");
        if (!r.bad && note_task(m, s.task_id, s.cand, s.rung, s.promoted, check) < 0)
            return nas_set_err(err, NAS_ENOMEM, "schedule: out of memory");
        if (!r.bad) m->tasks[m->n_tasks - 1].reported = reported;
        if (!r.bad) m->tasks[m->n_tasks - 1].value = value;
    }
    if (!r.bad && r.off != n) nas__r_fail(&r, "trailing bytes");
    if (r.bad) return nas_set_err(err, NAS_EFORMAT, "schedule state: %s", r.err);
    nas_info("schedule: state restored (%" PRId64 " candidates, %" PRId64 " tasks, %d running)",
             m->n_cand, m->n_tasks, nas_sched_running(m->s));
    return NAS_OK;
}

// ---- status -------------------------------------------------------------------------------------

void nas__campaign_sched_json(const nas_campaign *c, char *buf, size_t cap) {
    const nas__csched *m = c->sched;
    if (!m || !m->s) {
        snprintf(buf, cap, "null");
        return;
    }
    int64_t counts[NAS_SCHED_MAX_RUNGS] = {0};
    nas_sched_rung_counts(m->s, counts);
    size_t off = (size_t)snprintf(buf, cap, "{\"candidates\":%" PRId64 ",\"running\":%d,\"rungs\":[",
                                  nas_sched_candidates(m->s), nas_sched_running(m->s));
    for (int k = 0; k < c->cfg->schedule.n_rungs && off < cap; k++)
        off += (size_t)snprintf(buf + off, cap - off, "%s{\"epochs\":%d,\"results\":%" PRId64 "}",
                                k ? "," : "", c->cfg->schedule.rungs[k].epochs, counts[k]);
    if (off < cap) snprintf(buf + off, cap - off, "]}");
}
