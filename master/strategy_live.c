/*
 * strategy_live.c - which architectures a strategy may still use as
 * parents (master/strategy.h, weight inheritance).
 *
 * Only regularized evolution mutates evaluated architectures; its
 * tournament samples from the current population, so membership is
 * exactly "may still be a parent".  Random search and PNAS propose
 * children of nothing: nothing is live, nothing needs pushing.  The answer
 * is read through nas_strategy_population(), the strategy's own public
 * view, so no strategy file changes.
 */
#include "master/strategy.h"

#include "common/alloc.h"
#include "common/err.h"

#include <string.h>

int nas_strategy_uses_parents(const nas_strategy *s) {
    const char *name = s ? nas_strategy_name(s) : NULL;
    return name && strcmp(name, "evolution") == 0;
}

/* A population is tens to a few hundred members: a linear scan of a
 * snapshot costs microseconds, once per observed result. */
int nas_strategy_is_live_parent(const nas_strategy *s, uint64_t hash) {
    if (!nas_strategy_uses_parents(s)) return 0;
    int n = nas_strategy_population(s, NULL, 0);
    if (n <= 0) return 0;
    nas_observation *pop = nas_malloc((size_t)n * sizeof *pop);
    if (!pop) return 1; /* out of memory: keep the weights, dropping is the risky side */
    int got = nas_strategy_population(s, pop, n);
    int live = 0;
    for (int i = 0; i < got && !live; i++)
        live = pop[i].hash == hash;
    nas_free(pop);
    return live;
}
