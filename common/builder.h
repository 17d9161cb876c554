/*
 * builder.h - genome -> network: the macro skeleton of ARCHITECTURE.md, Search space built
 * with the engine's graph API (common/net.h).
 *
 * Cell space.  stem (3x3 conv F + BN) -> [N normal cells -> reduction cell]
 * x 2 -> N normal cells -> global average pool -> linear.  A stage's
 * channel count C is F, 2F, 4F (doubled by each reduction cell).  A cell
 * first brings h[i-2] and h[i-1] to C channels (ReLU-1x1conv-BN; a
 * factorized reduction for h[i-2] when it is twice h[i-1]'s side), then
 * computes its blocks, concatenates the blocks no later block reads and
 * maps them to C channels with a 1x1 conv + BN.  In a reduction cell the
 * ops that read inputs 0 and 1 use stride 2.  Dead blocks (read only
 * through `zero`) and `zero` halves are not built.
 *
 * NB201.  stem (3x3 conv F + BN) -> 3 stages of N cells at F, 2F, 4F with
 * a residual reduction block between stages -> BN-ReLU -> GAP -> linear.
 *
 * Parameter paths (stable, the weight store keys on them; docs/GENOME.md):
 *   stem/conv, stem/bn                      the stem
 *   cell<i>/pre0/{conv,bn}                  preprocessing of h[i-2]
 *   cell<i>/pre0/{conv1,conv2,bn}           ... as a factorized reduction
 *   cell<i>/pre1/{conv,bn}                  preprocessing of h[i-1]
 *   cell<i>/block<k>/<a|b>/...              one half's op:
 *       sepKxK: dw1 pw1 bn1 dw2 pw2 bn2;  dil3x3: dw pw bn;
 *       conv1x7_7x1: conv1x7 conv7x1 bn;  conv3x3/conv1x1: conv bn;
 *       id with stride 2: conv1 conv2 bn (factorized reduction)
 *   cell<i>/out/{conv,bn}                   the output 1x1 conv
 *   NB201: cell<i>/edge<j><k>/{conv,bn}, res<s>/{a,b}/{conv,bn}, res<s>/short/conv,
 *          lastbn
 *   head/linear                             the classifier
 * Cells are numbered from 0 in build order, reduction cells included.
 */
#ifndef NAS_BUILDER_H
#define NAS_BUILDER_H

#include "common/fidelity.h"
#include "common/genome.h"
#include "common/net.h"

/* Build genome g at fidelity f (f->channels = F, f->cells = N,
 * f->drop_path > 0 adds drop-path after every non-identity half) into the
 * empty net `net`, whose input shape is the image shape, with `classes`
 * outputs.  *logits receives the output node.  Returns NAS_OK, NAS_EGENOME
 * for an invalid genome, NAS_EINVAL for bad sizes, or the net's error. */
int nas_builder_build(nas_net *net, const nas_genome *g, const nas_fidelity *f, int classes,
                      int *logits, char *err);

/* Resolve an architecture string for `nas-train --arch`, in this order: a
 * reference net name (common/refnets.h), a preset (nas_genome_preset), the
 * genome text form.  On success builds it like nas_builder_build; *g_out
 * (may be NULL) receives the genome, and *is_genome says whether it was a
 * genome (0 for a reference net). Unknown strings get an error that lists
 * what was tried. */
int nas_builder_build_arch(nas_net *net, const char *arch, const nas_fidelity *f, int classes,
                           int *logits, nas_genome *g_out, int *is_genome, char *err);

/* An architecture to build again at another input side, for
 * nas_train_config.build (progressive resizing): pass nas_builder_arch_cb
 * with a pointer to this. */
typedef struct nas_builder_arch {
    const char *arch; /* as for nas_builder_build_arch */
    nas_fidelity fid;
    int classes;
} nas_builder_arch;
int nas_builder_arch_cb(void *arch, nas_net *net, int *logits, char *err);

/* Resolve an architecture string to a genome only (presets, then text). */
int nas_builder_resolve_genome(const char *arch, nas_genome *out, char *err);

#endif
