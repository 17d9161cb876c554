/*
 * final_size.h - the final stage's size targets: choose F (first-stage
 * channels) and N (normal cells per stage) for one architecture so that the
 * retrained network has at most final.target_params parameters and
 * final.target_macs multiply-accumulates (docs/CAMPAIGN.md, `final`).
 *
 * N stays the configured final.fidelity.cells while some F fits, and F is the
 * largest that does: the network then lands as close under the target as one
 * channel allows.  Only when even F = 1 is too big does N shrink.  Counts are
 * those of nas_genome_cost (the deployed network: an auxiliary head is not
 * counted).
 */
#ifndef NAS_FINAL_SIZE_H
#define NAS_FINAL_SIZE_H

#include "common/genome.h"

#include <stdint.h>

/* Fit g at `base` for inputs of in_c x side x side and `classes` outputs.
 * A target of 0 is no limit; with both 0, *out = *base.  *out is base with
 * channels and cells replaced, *cost its counts (may be NULL).  Returns NAS_OK,
 * NAS_ERANGE when no N >= 0 with F >= 1 fits (err names the smallest network's
 * size), or the counter's error for an invalid genome. */
int nas_final_fit_size(const nas_genome *g, const nas_fidelity *base, int in_c, int side,
                       int classes, int64_t target_params, int64_t target_macs,
                       nas_fidelity *out, nas_cost *cost, char *err);

#endif
