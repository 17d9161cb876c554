/*
 * final_size.c - F and N for the final stage's size targets (final_size.h).
 */
#include "master/final_size.h"

#include "common/err.h"

#include <inttypes.h>

static int fits(const nas_cost *c, int64_t tp, int64_t tm) {
    return (tp <= 0 || c->params <= tp) && (tm <= 0 || c->macs <= tm);
}

/* Parameters and MACs grow with F at a fixed N, so the largest F that fits is
 * found by bisection over 1..4096 (the fidelity's range). */
static int largest_f(const nas_genome *g, nas_fidelity *f, int in_c, int side, int classes,
                     int64_t tp, int64_t tm, nas_cost *best, char *err) {
    nas_cost c;
    f->channels = 1;
    int rc = nas_genome_cost(g, f, in_c, side, classes, &c, err);
    if (rc < 0) return rc;
    if (!fits(&c, tp, tm)) return 0;
    *best = c;
    int lo = 1, hi = 4097; /* lo fits, hi does not (or is past the range) */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        f->channels = mid;
        if ((rc = nas_genome_cost(g, f, in_c, side, classes, &c, err)) < 0) return rc;
        if (fits(&c, tp, tm)) {
            lo = mid;
            *best = c;
        } else {
            hi = mid;
        }
    }
    return lo;
}

int nas_final_fit_size(const nas_genome *g, const nas_fidelity *base, int in_c, int side,
                       int classes, int64_t target_params, int64_t target_macs,
                       nas_fidelity *out, nas_cost *cost, char *err) {
    nas_fidelity f = *base;
    nas_cost c = {0, 0};
    if (target_params <= 0 && target_macs <= 0) {
        *out = f;
        if (cost) return nas_genome_cost(g, &f, in_c, side, classes, cost, err);
        return NAS_OK;
    }
    for (int n = base->cells; n >= 0; n--) {
        f.cells = n;
        int F = largest_f(g, &f, in_c, side, classes, target_params, target_macs, &c, err);
        if (F < 0) return F;
        if (F == 0) continue;
        f.channels = F;
        *out = f;
        if (cost) *cost = c;
        return NAS_OK;
    }
    f.cells = 0;
    f.channels = 1;
    if (nas_genome_cost(g, &f, in_c, side, classes, &c, err) < 0) return NAS_EGENOME;
    return nas_set_err(err, NAS_ERANGE,
                       "final: no size fits the target (%" PRId64 " parameters, %" PRId64
                       " MACs; 0 = none): even F = 1, N = 0 has %" PRId64 " parameters and %" PRId64
                       " MACs",
                       target_params, target_macs, c.params, c.macs);
}
