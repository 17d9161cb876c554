/*
 * pareto.h - multi-objective helpers (MnasNet, Tan et al. 2019): the
 * soft-constrained reward every strategy ranks by when a target is set,
 * and the Pareto front of (accuracy up, params down, MACs down) that
 * nasctl shows.
 */
#ifndef NAS_PARETO_H
#define NAS_PARETO_H

#include "master/strategy.h"

#include <stdint.h>

/* Which costs take part besides accuracy (bit set). */
enum nas_pareto_objective {
    NAS_PARETO_PARAMS = 1,
    NAS_PARETO_MACS = 2,
};

/* MnasNet reward: acc * (params / target_params)^w * (macs / target_macs)^w,
 * each factor only where its target is > 0 (and the cost known, > 0). */
double nas_pareto_reward(double accuracy, int64_t params, int64_t macs, int64_t target_params,
                         int64_t target_macs, double w);

/* 1 if a is at least as good as b in every selected objective and better in
 * one (accuracy higher, costs lower). Failed observations dominate nothing
 * and are dominated by every successful one. */
int nas_pareto_dominates(const nas_observation *a, const nas_observation *b, int objectives);

/* Indices (into obs) of the successful observations no other one
 * dominates, written into front (room for n), ordered by accuracy, best
 * first (ties: fewer params, then input order). Returns the count, or
 * NAS_EINVAL + err for bad arguments / NAS_ENOMEM. O(n^2), meant for a
 * campaign's history (thousands). */
int nas_pareto_front(const nas_observation *obs, int n, int objectives, int *front, char *err);

#endif
