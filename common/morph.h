/*
 * morph.h - network morphisms on the chain space (docs/GENOME.md s10): the
 * child's weights computed from its parent's so that the child computes
 * the parent's function at birth.
 *
 * The child genome alone says what to do, because chain layers keep their
 * ids (parameter paths "L<id>/...") across a morphism:
 *  - a tensor whose path and shape the parent has is copied;
 *  - a layer whose output has more channels than the parent's
 *    (Net2WiderNet, Chen et al. 2016) gets its units from the parent's:
 *    unit v < w copies unit v, a new unit copies a random old one, and
 *    BN weights and running statistics go with the units; every consumer
 *    of that output (the next layer, skips from it, the head) divides the
 *    weights it reads from a copied unit by the number of copies;
 *  - a conv3x3 layer the parent lacks, as wide as its input, starts as
 *    the identity (Net2DeeperNet): a centred unit kernel and a BN that is
 *    the identity in eval mode (gamma 1, beta 0, running mean 0, running
 *    variance 1 - eps), followed by the ReLU of a non-negative tensor;
 *  - a skip the parent lacks gets a BN with gamma = beta = 0: it adds zeros.
 * Anything else keeps its fresh initialisation.
 *
 * Symmetry breaking: copied units that read the same inputs and are read
 * through divided weights stay equal under SGD forever.  With noise > 0,
 * each group of copies of one input unit gets noise * |w| * N(0,1) added
 * to the weights that read it, minus the group's mean, so the sum over the
 * group (and the function) is unchanged up to rounding.
 *
 * Exactness holds in eval mode (BN with running statistics).  In train
 * mode a deepened layer's BN normalises with the batch's statistics and is
 * not the identity; widening and new skips are exact in both modes.
 */
#ifndef NAS_MORPH_H
#define NAS_MORPH_H

#include "common/genome.h"
#include "common/inherit.h"
#include "common/net.h"
#include "common/safetensors.h"

#include <stddef.h>
#include <stdint.h>

/* What one application did, beside the nas_inherit_stats totals. */
typedef struct nas_morph_stats {
    int copied;   /* tensors copied as they are */
    int widened;  /* tensors built from the parent's by unit copies and division */
    int identity; /* tensors of inserted layers set to the identity */
    int zeroed;   /* BN tensors of new skips set to add zeros */
    int fresh;    /* tensors left as initialised */
} nas_morph_stats;

/* Apply the parent's tensors (src, n) to the compiled, freshly initialised
 * net built from chain genome `child` at F channels, as described above;
 * `seed` picks the copied units, `noise` breaks symmetry (0: none).
 * Returns the number of tensors set from the parent (>= 0), NAS_EINVAL for
 * a genome that is not a chain or malformed tensors (err names it), or
 * NAS_ESTATE for a net that is not compiled. */
int nas_morph_apply(nas_net *net, const nas_genome *child, int F, const nas_safetensors_tensor *src,
                    size_t n, uint64_t seed, float noise, nas_inherit_stats *st,
                    nas_morph_stats *ms, char *err);

/* A one-line summary for logs ("morph: 20 copied, 6 widened, ..."). */
void nas_morph_describe(const nas_morph_stats *ms, char *buf, size_t cap);

#endif
