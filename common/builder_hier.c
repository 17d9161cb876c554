/*
 * builder_hier.c - the hierarchical space's network (docs/GENOME.md s11),
 * walked through the emitter of builder_emit.h like the other spaces, so
 * nas_genome_cost() counts exactly what nas_builder_build() creates.
 *
 * Skeleton (Liu et al.'s CIFAR model, with our stride-1 stem): stem/conv
 * 3x3 -> F, stem/bn, ReLU; three stages at C = F, 2F, 4F of N cells each
 * (N = fidelity.cells); between stages a separable 3x3 conv of stride 2
 * doubles the channels (red<s>/dw, red<s>/pw, red<s>/bn, ReLU); then the
 * common GAP and head/linear.  A cell is the level-3 motif: node 0 is the
 * cell's input, every other node the sum of its edges, and the last node
 * the output.  Edge j->i of the cell applies a level-2 motif, itself a DAG
 * of primitives, under "cell<c>/e<j>_<i>"; its primitive edge a->b under
 * ".../e<a>_<b>" (conv1x1: conv bn; dw3x3: dw bn; sep3x3: dw pw bn).  Every
 * use of a motif has its own weights.  Edges that carry no signal from a
 * motif's input to its output are not built.
 */
#include "common/builder_emit.h"
#include "common/err.h"
#include "common/genome_internal.h"

#include <stdio.h>

/* Paths are formatted for a real net only (the counter never reads them). */
static const char *hpath(const nas__emit *e, char *buf, size_t cap, const char *at,
                         const char *what) {
    buf[0] = '\0';
    if (e->net != NULL) snprintf(buf, cap, "%s/%s", at, what);
    return buf;
}

/* A primitive on x (C channels in and out): conv, BN, ReLU for the
 * weighted ones, stride-1 pools, the identity. */
static int primitive(nas__emit *e, const char *at, int op, int x) {
    char p[128], q[128];
    int c = nas__em_shape(e, x).c;
    switch (op) {
    case NAS_HIER_ID:
        return x;
    case NAS_HIER_CONV1X1:
        x = nas__em_conv(e, hpath(e, p, sizeof p, at, "conv"), x, c, 1, 1, 1);
        break;
    case NAS_HIER_DW3X3:
        x = nas__em_conv(e, hpath(e, p, sizeof p, at, "dw"), x, c, 3, 1, c);
        break;
    case NAS_HIER_SEP3X3:
        x = nas__em_conv(e, hpath(e, p, sizeof p, at, "dw"), x, c, 3, 1, c);
        x = nas__em_conv(e, hpath(e, q, sizeof q, at, "pw"), x, c, 1, 1, 1);
        break;
    case NAS_HIER_MAX3X3:
    case NAS_HIER_AVG3X3:
        return nas__em_pool(e, op == NAS_HIER_MAX3X3, x, 3, 1, 1);
    default:
        return NAS_EGENOME;
    }
    return nas__em_relu(e, nas__em_bn(e, hpath(e, q, sizeof q, at, "bn"), x));
}

/* One motif on x under path `at`: level 2 applies primitives on its edges,
 * level 3 applies the level-2 motifs of h. */
static int motif(nas__emit *e, const nas_hier *h, const nas_hier_motif *raw, int level,
                 const char *at, int x) {
    nas_hier_motif m;
    nas__hier_prune(raw, &m);
    int node[NAS_HIER_MAX_NODES];
    node[0] = x;
    for (int i = 1; i < m.n_nodes; i++) {
        node[i] = -1;
        for (int j = 0; j < i; j++) {
            int op = m.ops[NAS_HIER_EDGE(j, i)];
            if (op == 0) continue;
            char p[128];
            p[0] = '\0';
            if (e->net != NULL) snprintf(p, sizeof p, "%s/e%d_%d", at, j, i);
            int y = level == 3 ? motif(e, h, &h->motifs[op - 1], 2, p, node[j])
                               : primitive(e, p, op, node[j]);
            if (y < 0) return y;
            node[i] = node[i] < 0 ? y : nas__em_add(e, node[i], y);
        }
    }
    /* A valid motif reaches its output; a pruned node that nothing reads stays -1. */
    return node[m.n_nodes - 1] >= 0 ? node[m.n_nodes - 1] : NAS_EGENOME;
}

int nas__walk_hier(nas__emit *e, const nas_genome *g, const nas_fidelity *f, int x) {
    int c = f->channels, idx = 0;
    char p[128], q[128];
    x = nas__em_conv(e, "stem/conv", x, c, 3, 1, 1);
    x = nas__em_relu(e, nas__em_bn(e, "stem/bn", x));
    for (int stage = 0; stage < 3; stage++) {
        if (stage > 0) {
            char red[16];
            snprintf(red, sizeof red, "red%d", stage);
            x = nas__em_conv(e, hpath(e, p, sizeof p, red, "dw"), x, c, 3, 2, c);
            c *= 2;
            x = nas__em_conv(e, hpath(e, p, sizeof p, red, "pw"), x, c, 1, 1, 1);
            x = nas__em_relu(e, nas__em_bn(e, hpath(e, q, sizeof q, red, "bn"), x));
        }
        for (int i = 0; i < f->cells && x >= 0; i++) {
            char cell[16];
            snprintf(cell, sizeof cell, "cell%d", idx++);
            x = motif(e, &g->hier, &g->hier.top, 3, cell, x);
        }
    }
    if (x < 0 && e->status == 0) /* only an invalid genome gets here; validate runs first */
        e->status = nas_set_err(e->err, NAS_EGENOME, "hier: a motif computes nothing");
    return x;
}
