/*
 * scaling.c - compound scaling of MBConv genomes (see scaling.h).
 *
 * Widths round to multiples of 8 as the space requires (EfficientNet rounds
 * channels to 8 the same way); depth rounds up, so a stage never loses a
 * block when it is scaled up.
 */
#include "common/scaling.h"

#include "common/err.h"

#include <math.h>
#include <string.h>

nas_scale_coef nas_scale_efficientnet(void) { return (nas_scale_coef){1.2, 1.1, 1.15}; }

static uint16_t scale_width(int units, double w, int hi) {
    long v = lround(units * w / 8.0) * 8;
    if (v < 8) v = 8;
    if (v > hi) v = hi;
    return (uint16_t)v;
}

int nas_scale_genome(const nas_genome *base, double d, double w, nas_genome *out, char *err) {
    if (base == NULL || out == NULL) return nas_set_err(err, NAS_EINVAL, "scale: NULL argument");
    if (nas_genome_validate(base, err) < 0) return NAS_EGENOME;
    if (base->space != NAS_SPACE_MBCONV)
        return nas_set_err(err, NAS_EGENOME, "scale: compound scaling needs an mbconv genome");
    if (!(d > 0 && d < 16) || !(w > 0 && w < 128))
        return nas_set_err(err, NAS_EINVAL, "scale: depth %g and width %g must be positive", d, w);
    nas_genome g = *base;
    g.mb.stem = scale_width(base->mb.stem, w, 1024);
    g.mb.head = scale_width(base->mb.head, w, 4096);
    for (int i = 0; i < g.mb.n_stages; i++) {
        nas_mb_stage *s = &g.mb.stages[i];
        /* 1e-9 keeps an exact product (2 x 1.5 = 3) from rounding up to 4. */
        long r = (long)ceil(base->mb.stages[i].repeats * d - 1e-9);
        s->repeats = (uint8_t)(r < 1 ? 1 : r > 16 ? 16 : r);
        s->width = scale_width(base->mb.stages[i].width, w, 1024);
    }
    *out = g;
    return NAS_OK;
}

int nas_scale_model(const nas_genome *base, const nas_fidelity *base_fid, double d, double w,
                    nas_genome *g, nas_fidelity *fid, char *err) {
    if (base_fid == NULL || fid == NULL)
        return nas_set_err(err, NAS_EINVAL, "scale: NULL argument");
    double wm = (base_fid->width_mult > 0.0f ? (double)base_fid->width_mult : 1.0) * w;
    if (!(wm > 0 && wm <= 64))
        return nas_set_err(err, NAS_EINVAL, "scale: width multiplier %g is outside (0, 64]", wm);
    int rc = nas_scale_genome(base, d, 1.0, g, err);
    if (rc < 0) return rc;
    *fid = *base_fid;
    fid->width_mult = (float)wm;
    return NAS_OK;
}

int nas_scale_side(int side, double gamma, double phi) {
    long v = lround(side * pow(gamma, phi));
    return v < 1 ? 1 : (int)v;
}

int nas_scale_grid(nas_scale_coef *out, int cap) {
    int n = 0;
    for (int a = 0; a <= 4; a++)
        for (int b = 0; b <= 4; b++) {
            double alpha = 1.0 + 0.1 * a, beta = 1.0 + 0.05 * b;
            double gamma = round(sqrt(2.0 / (alpha * beta * beta)) * 100.0) / 100.0;
            if (gamma < 1.0) continue;
            if (n < cap) out[n] = (nas_scale_coef){alpha, beta, gamma};
            n++;
        }
    return n < cap ? n : cap;
}
