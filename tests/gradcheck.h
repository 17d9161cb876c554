/*
 * gradcheck.h - header-only finite-difference gradient checker for the
 * kernel and network suites.
 *
 * The caller wraps its forward pass as a function returning a scalar in
 * double (typically sum(out * r) for a fixed random r, so that dout = r);
 * nas_gradcheck() perturbs each checked element of x by +-h, takes the
 * central difference, and compares with the analytic gradient.  Float
 * forwards limit precision, so h around 1e-2..1e-3 and a relative
 * tolerance of a few 1e-3 are appropriate.
 */
#ifndef NAS_TEST_GRADCHECK_H
#define NAS_TEST_GRADCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "common/rng.h"

typedef double (*nas_gc_fn)(void *ctx);

/* Check up to max_checks elements of x (spread evenly).  Returns 1 when
 * every |num - ana| <= atol + rtol * max(|num|, |ana|); otherwise prints
 * the first offender and returns 0. */
static inline int nas_gradcheck(nas_gc_fn f, void *ctx, float *x, const float *grad, size_t n,
                                float h, double atol, double rtol, size_t max_checks,
                                const char *label) {
    size_t step = (max_checks && n > max_checks) ? n / max_checks : 1;
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + h;
        double up = f(ctx);
        x[i] = keep - h;
        double down = f(ctx);
        x[i] = keep;
        double num = (up - down) / (2.0 * (double)h);
        double ana = grad[i];
        double scale = fabs(num) > fabs(ana) ? fabs(num) : fabs(ana);
        if (fabs(num - ana) > atol + rtol * scale) {
            fprintf(stderr, "gradcheck %s[%zu]: numeric %.6g analytic %.6g\n", label, i, num, ana);
            return 0;
        }
    }
    return 1;
}

/* Fill n floats with uniform values in [lo, hi). */
static inline void nas_fill_uniform(float *x, size_t n, float lo, float hi, nas_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * nas_rng_uniform(r);
}

/* Fill n floats with values of magnitude in [0.1, 1) and random sign, so
 * that ReLU kinks and max-pool ties are at least 0.1/h steps away. */
static inline void nas_fill_away_from_zero(float *x, size_t n, nas_rng *r) {
    for (size_t i = 0; i < n; i++) {
        float v = 0.1f + 0.9f * nas_rng_uniform(r);
        x[i] = (nas_rng_u32(r) & 1) ? v : -v;
    }
}

/* sum(out * r) in double: the scalar whose d/d(out) is r. */
static inline double nas_dot_d(const float *out, const float *r, size_t n) {
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)out[i] * r[i];
    return acc;
}

#endif
