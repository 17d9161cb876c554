/*
 * scaling.h - EfficientNet's compound scaling of an MBConv genome (Tan & Le
 * 2019, s3.3): depth d = alpha^phi, width w = beta^phi and resolution
 * r = gamma^phi, with alpha * beta^2 * gamma^2 ~ 2 so that each step of phi
 * about doubles the FLOPs.  docs/GENOME.md s9.
 */
#ifndef NAS_SCALING_H
#define NAS_SCALING_H

#include "common/genome.h"

typedef struct nas_scale_coef {
    double alpha, beta, gamma; /* depth, width, resolution bases */
} nas_scale_coef;

/* EfficientNet's published coefficients (1.2, 1.1, 1.15). */
nas_scale_coef nas_scale_efficientnet(void);

/* Scale an MBConv genome by depth d and width w (both >= 1 or in (0, 1) to
 * shrink): each stage's repeats become ceil(repeats * d), and the stem,
 * stage and head widths round(width * w) to a multiple of 8 (at least 8),
 * each clamped to the space's range (docs/GENOME.md s9).  Strides and
 * block settings are kept.  NAS_EGENOME for a genome of another space,
 * NAS_EINVAL for a non-positive factor. */
int nas_scale_genome(const nas_genome *base, double d, double w, nas_genome *out, char *err);

/* A scaled model, as `nasctl scale` builds it: g is base with every stage's
 * repeats scaled by d (as nas_scale_genome does) and its widths as written;
 * *fid is *base_fid with width_mult multiplied by w (base_fid->width_mult 0
 * counts as 1), so every layer gets w times its channels, rounded to a whole
 * channel (EfficientNet's round_filters).  The genome's 8-unit steps would
 * swallow the small width factors of compound scaling (16 units x 1.1 rounds
 * back to 16), so width goes through the fidelity instead.  NAS_EGENOME for
 * a genome of another space, NAS_EINVAL for a non-positive factor or a
 * product past fidelity.width_mult's range (64). */
int nas_scale_model(const nas_genome *base, const nas_fidelity *base_fid, double d, double w,
                    nas_genome *g, nas_fidelity *fid, char *err);

/* The input side at phi: round(side * gamma^phi), at least 1. */
int nas_scale_side(int side, double gamma, double phi);

/* The small grid of the compound-scaling search: alpha in 1.0..1.4 and beta
 * in 1.0..1.2 by 0.1 and 0.05 steps, gamma = sqrt(2 / (alpha * beta^2))
 * rounded to 0.01 (so alpha * beta^2 * gamma^2 is within 2% of 2), kept
 * when gamma >= 1.  Writes up to cap points; returns the number. */
int nas_scale_grid(nas_scale_coef *out, int cap);

#endif
