/*
 * genome_cost.c - parameters and MACs of a genome at a fidelity, without
 * building the network.
 *
 * The count runs the builder's own walk (builder.c) through the emitter's
 * counting back end, so it sees exactly the layers nas_builder_build()
 * would create; only shapes are tracked, no tensor is allocated.
 */
#include "common/alloc.h"
#include "common/builder_emit.h"
#include "common/err.h"
#include "common/genome.h"

#include <string.h>

int nas_genome_cost(const nas_genome *g, const nas_fidelity *f, int in_channels, int side,
                    int classes, nas_cost *out, char *err) {
    if (g == NULL || f == NULL || out == NULL)
        return nas_set_err(err, NAS_EINVAL, "genome cost: NULL argument");
    if (side <= 0) side = f->resolution;
    if (side <= 0 || side > 4096 || in_channels < 1 || in_channels > 4096)
        return nas_set_err(err, NAS_EINVAL, "genome cost: input %d x %d x %d out of range",
                           in_channels, side, side);
    nas__emit e;
    memset(&e, 0, sizeof e);
    e.err = err;
    int logits;
    int rc = nas__builder_walk(&e, g, f, (nas_shape){in_channels, side, side}, classes, &logits);
    nas_free(e.shapes);
    if (rc < 0) return rc;
    out->params = e.params;
    out->macs = e.macs;
    return NAS_OK;
}
