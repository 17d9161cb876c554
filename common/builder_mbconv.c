/*
 * builder_mbconv.c - the MBConv space's network (docs/GENOME.md s8), walked
 * through the emitter of builder_emit.h like the other spaces, so
 * nas_genome_cost() counts exactly what nas_builder_build() creates.
 *
 * Skeleton: stem/conv 3x3 (stride 1: our images are small) + stem/bn +
 * SiLU; the stages' blocks; head/conv 1x1 + head/bn + SiLU; then the
 * common GAP and head/linear.  Block j of stage i lives under
 * "stage<i>/block<j>", so a child that changes one stage keeps every other
 * stage's parameter paths and shapes, and the weight store can hand them
 * over.  A block (Tan & Le 2019, 2021):
 *
 *   MBConv:       [expand: 1x1 conv to C*e, BN, SiLU]  (absent when e = 1)
 *                 dw: depthwise kxk conv (the stage's stride on block 0), BN, SiLU
 *                 [se]  project: 1x1 conv to the stage width, BN
 *   Fused-MBConv: fused: kxk conv to C*e (the stride), BN, SiLU
 *                 [se]  project: 1x1 conv, BN        (when e > 1)
 *                 with e = 1 the fused conv goes straight to the stage width
 *                 and has no projection (EfficientNetV2's first stages).
 *
 * The SE squeezes to max(1, C/4) channels of the block's input C, as
 * EfficientNet does.  A block whose stride is 1 and whose input and output
 * widths agree adds its input (the inverted residual); with drop-path on,
 * the branch passes a drop-path node first.
 */
#include "common/builder_emit.h"
#include "common/genome_internal.h"

#include <stdio.h>

/* Paths are formatted for a real net only (the counter never reads them). */
static const char *mb_path(const nas__emit *e, char *buf, size_t cap, const char *block,
                           const char *what) {
    buf[0] = '\0';
    if (e->net != NULL) snprintf(buf, cap, "%s%s%s", block, what[0] ? "/" : "", what);
    return buf;
}

static int conv_bn(nas__emit *e, const char *block, const char *name, int x, int oc, int k,
                   int stride, int groups, int act) {
    char p[96], b[96];
    mb_path(e, b, sizeof b, block, name);
    x = nas__em_conv(e, mb_path(e, p, sizeof p, b, "conv"), x, oc, k, stride, groups);
    x = nas__em_bn(e, mb_path(e, p, sizeof p, b, "bn"), x);
    return act ? nas__em_silu(e, x) : x;
}

static int block(nas__emit *e, const char *name, int x, const nas_mb_stage *s, int stride, int out,
                 int drop_path) {
    int in = nas__em_shape(e, x).c, mid = in * s->expand, y;
    if (s->fused) {
        int single = s->expand == 1;
        y = conv_bn(e, name, "fused", x, single ? out : mid, s->kernel, stride, 1, 1);
    } else {
        y = s->expand == 1 ? x : conv_bn(e, name, "expand", x, mid, 1, 1, 1, 1);
        y = conv_bn(e, name, "dw", y, mid, s->kernel, stride, mid, 1);
    }
    if (s->se) {
        char p[96];
        y = nas__em_se(e, mb_path(e, p, sizeof p, name, "se"), y, in / 4 > 1 ? in / 4 : 1);
    }
    if (!s->fused || s->expand > 1) y = conv_bn(e, name, "project", y, out, 1, 1, 1, 0);
    if (stride != 1 || in != out) return y;
    if (drop_path) y = nas__em_drop_path(e, y);
    return nas__em_add(e, y, x);
}

int nas__walk_mbconv(nas__emit *e, const nas_genome *g, const nas_fidelity *f, int x) {
    const nas_mbconv *m = &g->mb;
    x = conv_bn(e, "stem", "", x, nas__mb_channels(m->stem, f), 3, 1, 1, 1);
    for (int i = 0; i < m->n_stages; i++) {
        const nas_mb_stage *s = &m->stages[i];
        for (int j = 0; j < s->repeats; j++) {
            char name[48];
            snprintf(name, sizeof name, "stage%d/block%d", i, j);
            x = block(e, name, x, s, j == 0 ? s->stride : 1, nas__mb_channels(s->width, f),
                      f->drop_path > 0);
        }
    }
    return conv_bn(e, "head", "", x, nas__mb_channels(m->head, f), 1, 1, 1, 1);
}
