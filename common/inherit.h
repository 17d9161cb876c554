/*
 * inherit.h - weight inheritance between architectures (ARCHITECTURE.md, Weight store):
 * a child network starts from its parent's trained tensors wherever the
 * parameter path and shape agree, and from fresh initialisation elsewhere.
 *
 * This is the weight-sharing speed-up of evolutionary NAS (Real et al.'s
 * large-scale evolution lets children inherit their parents' weights; a
 * mutation changes one op or one input, so most of the network is the
 * same).  Stable parameter paths (common/net.h: "cell3/block1/a/pw/weight")
 * make the match a string comparison: a mutated block gets new paths or
 * new shapes and is left fresh, every untouched layer keeps what the
 * parent learned.  Batch-norm running statistics travel with their
 * layers; optimizer momentum does not (it starts at zero, as for a fresh
 * network).
 *
 * The functions here know nothing of the wire or the store: tensors are
 * described as nas_safetensors_tensor (name, shape, data), which is what a
 * safetensors file, a received weights frame and a net all provide.
 */
#ifndef NAS_INHERIT_H
#define NAS_INHERIT_H

#include "common/net.h"
#include "common/safetensors.h"

#include <stddef.h>
#include <stdint.h>

/* What one application did. */
typedef struct nas_inherit_stats {
    int matched;        /* child tensors copied from the parent */
    int shape_mismatch; /* same path, different shape: left fresh */
    int missing;        /* child tensors the parent does not have: left fresh */
    int unused;         /* parent tensors the child does not have */
    size_t bytes;       /* bytes copied */
    int child_tensors;  /* tensors of the child, for the ratio */
} nas_inherit_stats;

/* Fresh initialisation exactly as the trainer does it for fid.seed
 * (common/trainer.c, stream 1), so that a child trained with
 * init_params = 0 after nas_inherit_init + nas_inherit_apply differs from a
 * fresh child only where it inherited. */
void nas_inherit_init(nas_net *net, uint64_t seed);

/* Copy every tensor of src (n entries) whose name is a tensor of the
 * compiled net with the same shape into the net; count the rest in *st
 * (may be NULL).  Data is read with memcpy, so it may be unaligned.  A
 * source tensor with NULL data and a non-zero size is refused.  Returns
 * the number of tensors copied (>= 0), NAS_ESTATE for a net that is not
 * compiled, or NAS_EINVAL with err naming the tensor; on error the net
 * may be partly updated, so the caller re-initialises it (fresh). */
int nas_inherit_apply(nas_net *net, const nas_safetensors_tensor *src, size_t n,
                      nas_inherit_stats *st, char *err);

/* Describe every tensor of a compiled net (parameters and buffers) in the
 * order of its parameter block: trainable tensors first, then buffers,
 * back to back from *base, so the block can be sent as it is.  *out is a
 * nas_malloc'd array of nas_net_param_n(net) entries whose names and data
 * are borrowed from the net.  Returns the count (>= 0), NAS_ESTATE (not
 * compiled) or NAS_ENOMEM. */
int nas_inherit_collect(const nas_net *net, nas_safetensors_tensor **out, const void **base,
                        char *err);

/* A one-line summary for logs: "inherited 41/52 tensors (1.2 MB), 3 shape
 * mismatches, 8 new". */
void nas_inherit_describe(const nas_inherit_stats *st, char *buf, size_t cap);

#endif
