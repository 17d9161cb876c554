/*
 * final_size.c - F and N (or, for MBConv, the width multiplier) for the
 * final stage's size targets (final_size.h).
 */
#include "master/final_size.h"

#include "common/err.h"

#include <inttypes.h>

/* MBConv's multiplier is k / MB_MULT_DEN for an integer k: such values are
 * exact in a float, so the fidelity that goes over the wire and into the
 * store (%.9g) builds on the worker exactly the network counted here. */
#define MB_MULT_DEN 1024
#define MB_MULT_MAX (64 * MB_MULT_DEN) /* fidelity.width_mult's range */

static int fits(const nas_cost *c, int64_t tp, int64_t tm) {
    return (tp <= 0 || c->params <= tp) && (tm <= 0 || c->macs <= tm);
}

/* The size knob: F for every space but MBConv, width_mult = v / MB_MULT_DEN
 * (F = 16) for MBConv. */
static void set_knob(nas_fidelity *f, int mb, int v) {
    if (mb)
        f->width_mult = (float)v / MB_MULT_DEN;
    else
        f->channels = v;
}

/* Parameters and MACs grow with the knob (every layer's channels are
 * non-decreasing in it), so the largest value in 1..hi that fits is found by
 * bisection.  0 when even 1 does not fit. */
static int largest(const nas_genome *g, nas_fidelity *f, int mb, int hi_incl, int in_c, int side,
                   int classes, int64_t tp, int64_t tm, nas_cost *best, char *err) {
    nas_cost c;
    set_knob(f, mb, 1);
    int rc = nas_genome_cost(g, f, in_c, side, classes, &c, err);
    if (rc < 0) return rc;
    if (!fits(&c, tp, tm)) return 0;
    *best = c;
    int lo = 1, hi = hi_incl + 1; /* lo fits, hi does not (or is past the range) */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        set_knob(f, mb, mid);
        if ((rc = nas_genome_cost(g, f, in_c, side, classes, &c, err)) < 0) return rc;
        if (fits(&c, tp, tm)) {
            lo = mid;
            *best = c;
        } else {
            hi = mid;
        }
    }
    set_knob(f, mb, lo);
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
    if (g->space == NAS_SPACE_MBCONV) {
        /* N does not apply (the genome carries its depth); F = 16 makes the
         * multiplier EfficientNet's width coefficient on the genome as written. */
        f.channels = 16;
        int k = largest(g, &f, 1, MB_MULT_MAX, in_c, side, classes, target_params, target_macs, &c,
                        err);
        if (k < 0) return k;
        if (k > 0) {
            *out = f;
            if (cost) *cost = c;
            return NAS_OK;
        }
        set_knob(&f, 1, 1);
    } else {
        for (int n = base->cells; n >= 0; n--) {
            f.cells = n;
            int F =
                largest(g, &f, 0, 4096, in_c, side, classes, target_params, target_macs, &c, err);
            if (F < 0) return F;
            if (F == 0) continue;
            *out = f;
            if (cost) *cost = c;
            return NAS_OK;
        }
        f.cells = 0;
        f.channels = 1;
    }
    if (nas_genome_cost(g, &f, in_c, side, classes, &c, err) < 0) return NAS_EGENOME;
    return nas_set_err(err, NAS_ERANGE,
                       "final: no size fits the target (%" PRId64 " parameters, %" PRId64
                       " MACs; 0 = none): even %s has %" PRId64 " parameters and %" PRId64 " MACs",
                       target_params, target_macs,
                       g->space == NAS_SPACE_MBCONV ? "the narrowest width (4 channels a layer)"
                                                    : "F = 1, N = 0",
                       c.params, c.macs);
}
