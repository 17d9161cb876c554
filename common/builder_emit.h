/*
 * builder_emit.h - the layer calls the genome builder makes, with two
 * back ends: a real nas_net, or a counter that tracks shapes, parameters
 * and multiply-accumulates only.
 *
 * The builder's walk over a genome is written once against this interface;
 * nas_builder_build() runs it into a net and nas_genome_cost() runs it into
 * the counter.  The two therefore agree on the topology by construction,
 * and the counter's per-layer formulas mirror common/net.c (a test checks
 * both numbers on hundreds of genomes).  Internal to common/.
 */
#ifndef NAS_BUILDER_EMIT_H
#define NAS_BUILDER_EMIT_H

#include "common/fidelity.h"
#include "common/genome.h"
#include "common/net.h"

typedef struct nas__emit {
    nas_net *net;      /* real back end; NULL = count only */
    nas_shape *shapes; /* count mode: shape of every node id */
    int n, cap;        /* count mode: nodes so far */
    int64_t params;    /* count mode: trainable parameters */
    int64_t macs;      /* count mode: MACs per image */
    int status;        /* first error (sticky), 0 if none */
    char *err;         /* where the first error's message goes (may be NULL) */
} nas__emit;

/* Walk genome g at fidelity f from an input of shape `in` to `classes`
 * logits through the emitter. *logits receives the output node. */
int nas__builder_walk(nas__emit *e, const nas_genome *g, const nas_fidelity *f, nas_shape in,
                      int classes, int *logits);

/* Walks over other spaces, in their own files. */
int nas__walk_mbconv(nas__emit *e, const nas_genome *g, const nas_fidelity *f, int x);
int nas__walk_hier(nas__emit *e, const nas_genome *g, const nas_fidelity *f, int x);

/* Emitter calls for those walks (each like its nas_net_* namesake; paths
 * are read only by a real net).  nas__em_conv is a square k x k conv
 * padded by k/2, without bias. */
int nas__em_conv(nas__emit *e, const char *path, int x, int oc, int k, int stride, int groups);
int nas__em_bn(nas__emit *e, const char *path, int x);
int nas__em_add(nas__emit *e, int a, int b);
int nas__em_relu(nas__emit *e, int x);
int nas__em_pool(nas__emit *e, int max, int x, int k, int stride, int pad);
int nas__em_silu(nas__emit *e, int x);
int nas__em_se(nas__emit *e, const char *path, int x, int mid);
int nas__em_drop_path(nas__emit *e, int x);
nas_shape nas__em_shape(const nas__emit *e, int x);

#endif
