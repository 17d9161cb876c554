/*
 * schedule.h - rung-based multi-fidelity scheduling: synchronous successive
 * halving (SHA), Hyperband and asynchronous successive halving (ASHA), as a
 * pure state machine over any proposer.
 *
 * A schedule has a ladder of rungs 0..n_rungs-1, each a fidelity the
 * campaign defines (rung k+1 trains eta times longer than rung k, say).  The
 * scheduler knows only candidates (numbered by it, 0, 1, 2, ...), rungs and
 * one number per result (higher is better: validation accuracy).  The
 * campaign asks nas_sched_next() what to run on a free worker:
 *   - NAS_SCHED_NEW: ask the proposer (random search, evolution, PNAS) for a
 *     new architecture and train it at `rung` as candidate `cand`;
 *   - NAS_SCHED_PROMOTE: train candidate `cand` further, at `rung` (one above
 *     its last result), continuing from its own weights;
 *   - NAS_SCHED_WAIT: nothing may start now (a synchronous rung barrier);
 *     ask again after the next result.
 * and tells it each result with nas_sched_report().  Every decision is
 * recorded when it is made, so the blob saved right after it (to be
 * committed with the task that carries the decision) resumes to exactly the
 * same schedule: a promotion decided before a crash is neither taken twice
 * nor lost.  There is no clock and no randomness: the decisions follow from
 * the order of calls alone.
 *
 * The three kinds:
 *   - ASHA (Li et al., "A System for Massively Parallel Hyperparameter
 *     Tuning", 2020, Algorithm 2 with s = 0): from the top rung down, the
 *     best result of rung k not yet promoted is promoted if it is among the
 *     top floor(m_k / eta) of the m_k results rung k holds; if none is, a
 *     new candidate starts at rung 0.  No worker ever waits.
 *   - SHA: brackets of n0 candidates started at rung 0; rung k+1 of a
 *     bracket takes the top floor(m_k / eta) of its m_k candidates once all
 *     of them have reported.  While a bracket waits at a barrier the next
 *     bracket starts, so workers do not idle either.
 *   - Hyperband (Li et al., JMLR 2018): brackets s = s_max..0 in turn,
 *     s_max = n_rungs - 1; bracket s starts n = ceil((s_max+1) eta^s /
 *     (s+1)) candidates at rung s_max - s and halves them synchronously as
 *     SHA does; then the cycle repeats.  With rung k = R eta^(k - s_max)
 *     resource this is the paper's table (R = 81, eta = 3: 81/34/15/8/5).
 *
 * A failed or stopped run is reported with value NAN: it fills its place
 * in the rung (a barrier does not wait for it forever) and is never
 * promoted.  Ties in value go to the earlier report.
 */
#ifndef NAS_SCHEDULE_H
#define NAS_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#define NAS_SCHED_MAX_RUNGS 16

enum nas_sched_kind {
    NAS_SCHED_ASHA = 0,
    NAS_SCHED_SHA = 1,
    NAS_SCHED_HYPERBAND = 2,
};

typedef struct nas_sched_config {
    int kind;    /* enum nas_sched_kind */
    int eta;     /* reduction factor, >= 2 */
    int n_rungs; /* 1..NAS_SCHED_MAX_RUNGS */
    int n0;      /* SHA: candidates per bracket at rung 0 (0: eta^(n_rungs-1)); ignored otherwise */
    int max_open; /* SHA, Hyperband: brackets open at once (0: n_rungs); a new one opens only
                     while every open one waits at a barrier, and with max_open open the
                     answer is NAS_SCHED_WAIT.  Ignored by ASHA (one endless bracket). */
} nas_sched_config;

enum nas_sched_action {
    NAS_SCHED_NEW = 0,
    NAS_SCHED_PROMOTE = 1,
    NAS_SCHED_WAIT = 2,
};

typedef struct nas_sched_job {
    int action;   /* enum nas_sched_action */
    int64_t cand; /* the candidate (NEW: a fresh number) */
    int rung;     /* the rung to train it at */
    int bracket;  /* the bracket's number (0, 1, ...; ASHA: always 0) */
} nas_sched_job;

typedef struct nas_sched nas_sched;

/* A new schedule; NAS_ECONFIG with a message naming the bad field. */
int nas_sched_create(nas_sched **out, const nas_sched_config *cfg, char *err);
void nas_sched_destroy(nas_sched **s);

/* Decide what a free worker runs next and record the decision (the job is
 * then running until reported).  NAS_OK or NAS_ENOMEM. */
int nas_sched_next(nas_sched *s, nas_sched_job *job);

/* The result of a running job: candidate `cand` at `rung` reached `value`
 * (NAN: failed or stopped, never promoted).  NAS_ENOTFOUND when no such job
 * is running (a duplicate result, or one from before a resume that the
 * blob had already recorded: the caller drops it), NAS_EINVAL for a rung
 * out of range. */
int nas_sched_report(nas_sched *s, int64_t cand, int rung, double value, char *err);

/* Hyperband's bracket s (0..n_rungs-1) in the paper's terms: candidates at
 * its first rung and its first rung.  For tests and for people. */
int nas_sched_hyperband_bracket(int eta, int n_rungs, int s, int *first_rung);

/* Counts for status: jobs running, results held per rung (out[0..n_rungs)),
 * candidates started so far. */
int nas_sched_running(const nas_sched *s);
void nas_sched_rung_counts(const nas_sched *s, int64_t *out);
int64_t nas_sched_candidates(const nas_sched *s);

/* The whole state as a blob (malloc'd, nas_free), and back.  A load into a
 * schedule of another configuration, or of a corrupt blob, is refused with
 * NAS_EFORMAT naming the problem and leaves `s` as it was. */
int nas_sched_save(const nas_sched *s, uint8_t **blob, size_t *n);
int nas_sched_load(nas_sched *s, const uint8_t *blob, size_t n, char *err);

#endif
