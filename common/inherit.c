/*
 * inherit.c - apply a parent's tensors to a child net by path and shape,
 * and describe a net's tensors for a push (common/inherit.h).
 *
 * Matching is by exact path and exact shape.  A partial copy of a tensor
 * whose shape changed (Net2Net's widening) would need to know what the
 * dimensions mean and would change the function the layer computes; a
 * mutation in this search space changes one op or one input, which renames
 * or reshapes the touched block's tensors only, so exact matching already
 * keeps everything the mutation did not touch.
 */
#include "common/inherit.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/rng.h"

#include <stdio.h>
#include <string.h>

// ---- fresh initialisation ----------------------------------------------------------------

/* Stream 1 of fid.seed is the trainer's initialisation stream
 * (common/trainer.c header); using the same one means an inherited child
 * and a fresh child of the same seed share every tensor they do not
 * inherit. */
void nas_inherit_init(nas_net *net, uint64_t seed) {
    nas_rng r;
    nas_rng_init(&r, seed, 1);
    nas_net_init_params(net, &r);
}

// ---- apply ---------------------------------------------------------------------------------

/* Shapes agree when the ranks agree and every dimension does.  The net's
 * shapes are ints, the wire's int64: compare in 64 bits. */
static int same_shape(const nas_param *p, const nas_safetensors_tensor *t) {
    if (p->ndim != t->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if ((int64_t)p->shape[d] != t->shape[d]) return 0;
    return 1;
}

int nas_inherit_apply(nas_net *net, const nas_safetensors_tensor *src, size_t n,
                      nas_inherit_stats *st, char *err) {
    nas_inherit_stats s;
    memset(&s, 0, sizeof s);
    if (nas_net_batch(net) <= 0)
        return nas_set_err(err, NAS_ESTATE, "inherit: the child net is not compiled");
    if (n && !src) return nas_set_err(err, NAS_EINVAL, "inherit: no source tensors");
    int np = nas_net_param_n(net);
    s.child_tensors = np;
    /* Marks which child tensors were filled, to count the fresh ones. */
    unsigned char *hit = nas_calloc(np ? (size_t)np : 1, 1);
    if (!hit) return nas_set_err(err, NAS_ENOMEM, "inherit: %d tensors", np);
    int rc = NAS_OK;
    for (size_t i = 0; i < n; i++) {
        const nas_safetensors_tensor *t = &src[i];
        if (!t->name) {
            rc = nas_set_err(err, NAS_EINVAL, "inherit: source tensor %zu has no name", i);
            goto fail;
        }
        const nas_param *p = nas_net_param_find(net, t->name);
        if (!p) {
            s.unused++;
            continue;
        }
        if (!same_shape(p, t)) {
            s.shape_mismatch++;
            continue;
        }
        if (p->size && !t->data) {
            rc = nas_set_err(err, NAS_EINVAL, "inherit: tensor '%s' has no data", t->name);
            goto fail;
        }
        int idx = (int)(p - nas_net_param(net, 0));
        if (idx >= 0 && idx < np) {
            if (hit[idx]) {
                rc = nas_set_err(err, NAS_EINVAL, "inherit: tensor '%s' given twice", t->name);
                goto fail;
            }
            hit[idx] = 1;
        }
        /* memcpy, not a float loop: the source may sit unaligned inside a
         * received frame. */
        memcpy(p->data, t->data, p->size * sizeof(float));
        s.matched++;
        s.bytes += p->size * sizeof(float);
    }
    for (int i = 0; i < np; i++)
        if (!hit[i]) s.missing++;
    /* Shape mismatches are also child tensors left fresh; count them once. */
    s.missing -= s.shape_mismatch;
    if (s.missing < 0) s.missing = 0;
    nas_free(hit);
    if (st) *st = s;
    return s.matched;
fail:
    nas_free(hit);
    return rc;
}

// ---- collect -------------------------------------------------------------------------------

int nas_inherit_collect(const nas_net *net, nas_safetensors_tensor **out, const void **base,
                        char *err) {
    if (nas_net_batch(net) <= 0)
        return nas_set_err(err, NAS_ESTATE, "collect: the net is not compiled");
    int np = nas_net_param_n(net);
    nas_safetensors_tensor *t = nas_calloc(np ? (size_t)np : 1, sizeof *t);
    if (!t) return nas_set_err(err, NAS_ENOMEM, "collect: %d tensors", np);
    /* Block order, not creation order: the net lays out trainable tensors
     * first, then buffers (common/net.c compile), each group in creation
     * order, back to back.  A push sends the block as it is. */
    int k = 0;
    for (int pass = 1; pass >= 0; pass--)
        for (int i = 0; i < np; i++) {
            const nas_param *p = nas_net_param(net, i);
            if ((p->trainable != 0) != pass) continue;
            t[k].name = p->name;
            t[k].ndim = p->ndim;
            for (int d = 0; d < p->ndim; d++)
                t[k].shape[d] = p->shape[d];
            t[k].data = p->data;
            k++;
        }
    if (base) {
        const nas_param *p0 = np ? nas_net_param(net, 0) : NULL;
        *base = p0 ? (const void *)(p0->data - p0->offset) : NULL;
    }
    *out = t;
    return np;
}

void nas_inherit_describe(const nas_inherit_stats *st, char *buf, size_t cap) {
    snprintf(buf, cap, "inherited %d/%d tensors (%.2f MB), %d shape mismatches, %d new, %d unused",
             st->matched, st->child_tensors, (double)st->bytes / 1e6, st->shape_mismatch,
             st->missing, st->unused);
}
