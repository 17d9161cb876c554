/*
 * fidelity_rank.h - how well each fidelity of a campaign ranks
 * architectures the way the next one does, read from its store.
 *
 * A campaign's done tasks fall into fidelity groups: the search stage's
 * fidelities (one today; one per rung once schedules run) in the order
 * they first appear, then the final stage's.  For every adjacent pair of
 * search groups, and for every search group against every final group,
 * the architectures with results at both are paired and their validation
 * accuracies correlated (rankcorr.h); against a final group the test
 * accuracy is correlated too where it was measured.  Groups are told
 * apart by everything in the fidelity but the seed, the test flag and the
 * time limit, which do not change what is being measured.
 */
#ifndef NAS_FIDELITY_RANK_H
#define NAS_FIDELITY_RANK_H

#include "common/fidelity.h"
#include "common/json.h"
#include "master/rankcorr.h"
#include "master/store.h"

typedef struct nas_fidelity_group {
    int stage;             /* enum nas_store_stage */
    nas_fidelity fidelity; /* as its first task had it */
    int n;                 /* results at this fidelity */
} nas_fidelity_group;

typedef struct nas_fidelity_pair {
    int from, to;         /* group indices, `to` the more expensive */
    nas_rank_report val;  /* validation accuracy at `from` against at `to` */
    nas_rank_report test; /* against the test accuracy at `to` (n = 0: none measured) */
} nas_fidelity_pair;

typedef struct nas_fidelity_ranks {
    nas_fidelity_group *groups;
    int n_groups;
    nas_fidelity_pair *pairs;
    int n_pairs;
} nas_fidelity_ranks;

/* What the figures are computed from: every result's fidelity group,
 * architecture, validation and test accuracy.  nas_fidelity_ranks_read
 * fills one from a store; the live master keeps one up to date as results
 * are committed (status_live.h), so its status document costs no read of
 * the history. */
typedef struct nas_fidelity_acc nas_fidelity_acc;

int nas_fidelity_acc_new(nas_fidelity_acc **out); /* NAS_ENOMEM */
void nas_fidelity_acc_free(nas_fidelity_acc **a);

/* One result of task `task_id` (its stage and fidelity, as stored).  A NaN
 * accuracy is left out of the correlation it would belong to. */
int nas_fidelity_acc_add(nas_fidelity_acc *a, int64_t task_id, int stage, const nas_fidelity *f,
                         uint64_t arch, double val, double test, char *err);

/* Every result of the store into `a`, in one light read (store.h
 * nas_store_result_scan); fn (NULL: none) also sees each result, in task
 * order, before the accumulator does. */
typedef void (*nas_fidelity_acc_each)(void *ctx, const nas_store_result_row *r);
int nas_fidelity_acc_read(nas_fidelity_acc *a, nas_store *st, nas_fidelity_acc_each fn, void *ctx,
                          char *err);

/* The figures of what `a` holds (free with nas_fidelity_ranks_fini, also
 * after an error).  Groups and pairs do not depend on the order in which
 * results were added. */
int nas_fidelity_acc_ranks(const nas_fidelity_acc *a, nas_fidelity_ranks *out, char *err);

/* Read every done task of the store and fill *out (free with
 * nas_fidelity_ranks_fini, also after an error).  NAS_OK, or the store's
 * error (err names it), NAS_ENOMEM. */
int nas_fidelity_ranks_read(nas_store *st, nas_fidelity_ranks *out, char *err);
void nas_fidelity_ranks_fini(nas_fidelity_ranks *r);

/* A short label of a fidelity for people: "3 epochs, 14 px, F=8 N=1,
 * subset 2000" (only what is set). */
void nas_fidelity_label(const nas_fidelity *f, char *buf, size_t cap);

/* The figures as one JSON object: {threshold, min_n, groups[{stage,
 * fidelity, results}], pairs[{from, to, validation{n, spearman, kendall,
 * weak}, test{...}}]} (`nasctl fidelity --json`, the status document). */
void nas_fidelity_ranks_json(nas_json_buf *b, const nas_fidelity_ranks *fr);

#endif
