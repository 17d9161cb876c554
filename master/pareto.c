/*
 * pareto.c - MnasNet reward and the non-dominated set of a campaign's
 * results.
 *
 * The front is computed by direct pairwise comparison: a campaign holds at
 * most a few thousand results and nasctl asks rarely, so clarity wins over
 * the O(n log n) sweeps of Kung et al.
 */
#include "master/pareto.h"

#include "common/alloc.h"
#include "common/err.h"

#include <math.h>
#include <stdlib.h>

double nas_pareto_reward(double accuracy, int64_t params, int64_t macs, int64_t target_params,
                         int64_t target_macs, double w) {
    double r = accuracy;
    if (target_params > 0 && params > 0) r *= pow((double)params / (double)target_params, w);
    if (target_macs > 0 && macs > 0) r *= pow((double)macs / (double)target_macs, w);
    return r;
}

/* Dominance in the usual sense (no worse anywhere, better somewhere), so
 * two results with identical figures are both kept on the front: they are
 * different networks and a person choosing between them wants to see both. */
int nas_pareto_dominates(const nas_observation *a, const nas_observation *b, int objectives) {
    if (!a->ok) return 0;
    if (!b->ok) return 1;
    int better = 0;
    if (a->accuracy < b->accuracy) return 0;
    better |= a->accuracy > b->accuracy;
    if (objectives & NAS_PARETO_PARAMS) {
        if (a->params > b->params) return 0;
        better |= a->params < b->params;
    }
    if (objectives & NAS_PARETO_MACS) {
        if (a->macs > b->macs) return 0;
        better |= a->macs < b->macs;
    }
    return better;
}

typedef struct front_sort {
    const nas_observation *obs;
    int i;
} front_sort;

/* Best accuracy first, as nasctl lists it; the index breaks ties so the
 * order never depends on qsort's (unspecified) stability. */
static int front_cmp(const void *pa, const void *pb) {
    const front_sort *x = pa, *y = pb;
    const nas_observation *a = &x->obs[x->i], *b = &y->obs[y->i];
    if (a->accuracy != b->accuracy) return a->accuracy > b->accuracy ? -1 : 1;
    if (a->params != b->params) return a->params < b->params ? -1 : 1;
    return x->i - y->i;
}

int nas_pareto_front(const nas_observation *obs, int n, int objectives, int *front, char *err) {
    if (n < 0 || (n > 0 && (!obs || !front)))
        return nas_set_err(err, NAS_EINVAL, "pareto: bad arguments (n = %d)", n);
    if (objectives & ~(NAS_PARETO_PARAMS | NAS_PARETO_MACS))
        return nas_set_err(err, NAS_EINVAL, "pareto: unknown objective bits 0x%x", objectives);
    for (int i = 0; i < n; i++)
        if (obs[i].ok && !isfinite(obs[i].accuracy))
            return nas_set_err(err, NAS_EINVAL, "pareto: observation %d has accuracy %g", i,
                               obs[i].accuracy);
    front_sort *fs = nas_malloc(sizeof *fs * ((size_t)n + 1));
    if (!fs) return nas_set_err(err, NAS_ENOMEM, "pareto: out of memory");
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!obs[i].ok) continue;
        int dominated = 0;
        for (int j = 0; j < n && !dominated; j++)
            dominated = j != i && nas_pareto_dominates(&obs[j], &obs[i], objectives);
        if (!dominated) fs[m++] = (front_sort){obs, i};
    }
    qsort(fs, (size_t)m, sizeof *fs, front_cmp);
    for (int k = 0; k < m; k++)
        front[k] = fs[k].i;
    nas_free(fs);
    return m;
}
