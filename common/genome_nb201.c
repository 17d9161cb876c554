/*
 * genome_nb201.c - the NAS-Bench-201 space: canonical form, levels,
 * sampling and expansion.
 *
 * The NB201 cell is a fixed DAG of 4 nodes; node 0 is the cell input, node
 * 3 its output, and every edge j->i (j < i) carries one op (none, skip,
 * conv1x1, conv3x3, avgpool3x3).  Node i sums its incoming edges.
 *
 * Equivalence (docs/GENOME.md): an edge whose source is not reachable from
 * node 0, or whose target cannot reach node 3, through non-`none` edges
 * computes nothing that reaches the output (a zero tensor stays zero
 * through ReLU-conv-BN with the benchmark's affine-free BN and through
 * average pooling), so it is written `none`.  When edge 1->2 is `none`,
 * nodes 1 and 2 are interchangeable; the form with the smaller byte
 * encoding is canonical.  We do not fold skip connections into their
 * neighbours (NB201's "unique string" does): a skip edge is a distinct
 * graph edge with its own parameter path, so weight inheritance tells it
 * apart.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_internal.h"

#include <string.h>

/* Edge indices in the benchmark's order. */
enum { E01 = 0, E02 = 1, E12 = 2, E03 = 3, E13 = 4, E23 = 5 };

/* Set every edge that cannot carry a signal from node 0 to node 3 to none. */
void nas__nb201_prune(const uint8_t in[NAS_NB201_EDGES], uint8_t out[NAS_NB201_EDGES]) {
    uint8_t e[NAS_NB201_EDGES];
    memcpy(e, in, NAS_NB201_EDGES);
    int from0[4], to3[4];
    from0[0] = 1;
    from0[1] = e[E01] != NAS_NB201_NONE;
    from0[2] = e[E02] != NAS_NB201_NONE || (e[E12] != NAS_NB201_NONE && from0[1]);
    to3[3] = 1;
    to3[2] = e[E23] != NAS_NB201_NONE;
    to3[1] = e[E13] != NAS_NB201_NONE || (e[E12] != NAS_NB201_NONE && to3[2]);
    static const int src[NAS_NB201_EDGES] = {0, 0, 1, 0, 1, 2};
    static const int dst[NAS_NB201_EDGES] = {1, 2, 2, 3, 3, 3};
    for (int i = 0; i < NAS_NB201_EDGES; i++) {
        if (!from0[src[i]] || (dst[i] != 3 && !to3[dst[i]])) e[i] = NAS_NB201_NONE;
    }
    memcpy(out, e, NAS_NB201_EDGES);
}

void nas__nb201_canonical(const uint8_t in[NAS_NB201_EDGES], uint8_t out[NAS_NB201_EDGES]) {
    uint8_t e[NAS_NB201_EDGES];
    nas__nb201_prune(in, e);
    if (e[E12] == NAS_NB201_NONE) {
        uint8_t s[NAS_NB201_EDGES];
        memcpy(s, e, NAS_NB201_EDGES);
        s[E01] = e[E02];
        s[E02] = e[E01];
        s[E13] = e[E23];
        s[E23] = e[E13];
        if (memcmp(s, e, NAS_NB201_EDGES) < 0) memcpy(e, s, NAS_NB201_EDGES);
    }
    memcpy(out, e, NAS_NB201_EDGES);
}

int nas__nb201_level(const uint8_t edges[NAS_NB201_EDGES]) {
    uint8_t e[NAS_NB201_EDGES];
    nas__nb201_prune(edges, e);
    int n1 = e[E01] != NAS_NB201_NONE; /* a live edge into a node means it is in use */
    int n2 = e[E02] != NAS_NB201_NONE || e[E12] != NAS_NB201_NONE;
    return n1 + n2;
}

int nas__nb201_sample(const int *ops, int n_ops, nas_rng *rng, nas_genome *out) {
    nas_genome g;
    memset(&g, 0, sizeof g);
    g.space = NAS_SPACE_NB201;
    for (int i = 0; i < NAS_NB201_EDGES; i++)
        g.nb201[i] = (uint8_t)ops[nas_rng_below(rng, (uint32_t)n_ops)];
    *out = g;
    return NAS_OK;
}

/* Every distinct genome at level `level_want` that keeps g's live edges
 * and adds ops on edges that are none in g's canonical form. */
int nas__nb201_expand(const nas_genome *g, const int *ops, int n_ops, int level_want,
                      nas_genome **children) {
    uint8_t base[NAS_NB201_EDGES];
    nas__nb201_canonical(g->nb201, base);
    int free_e[NAS_NB201_EDGES], n_free = 0;
    for (int i = 0; i < NAS_NB201_EDGES; i++)
        if (base[i] == NAS_NB201_NONE) free_e[n_free++] = i;
    /* n_ops^n_free <= 5^6 combinations; each is canonicalised and kept once. */
    long combos = 1;
    for (int i = 0; i < n_free; i++)
        combos *= n_ops;
    nas_genome *res = NULL;
    uint8_t(*seen)[NAS_NB201_EDGES] = NULL;
    int n = 0, rc;
    res = nas_malloc(sizeof(nas_genome) * (size_t)combos);
    seen = nas_malloc(NAS_NB201_EDGES * (size_t)combos);
    if (res == NULL || seen == NULL) {
        rc = NAS_ENOMEM;
        goto fail;
    }
    for (long c = 0; c < combos; c++) {
        nas_genome child;
        memset(&child, 0, sizeof child);
        child.space = NAS_SPACE_NB201;
        memcpy(child.nb201, base, NAS_NB201_EDGES);
        long r = c;
        for (int i = 0; i < n_free; i++) {
            child.nb201[free_e[i]] = (uint8_t)ops[r % n_ops];
            r /= n_ops;
        }
        if (nas__nb201_level(child.nb201) != level_want) continue;
        uint8_t canon[NAS_NB201_EDGES];
        nas__nb201_canonical(child.nb201, canon);
        /* The old live edges must survive unchanged in the child. */
        uint8_t pruned[NAS_NB201_EDGES];
        nas__nb201_prune(child.nb201, pruned);
        int keeps = 1;
        for (int i = 0; i < NAS_NB201_EDGES; i++)
            if (base[i] != NAS_NB201_NONE && pruned[i] != base[i]) keeps = 0;
        if (!keeps) continue;
        int dup = 0;
        for (int i = 0; i < n && !dup; i++)
            dup = memcmp(seen[i], canon, NAS_NB201_EDGES) == 0;
        if (dup) continue;
        memcpy(seen[n], canon, NAS_NB201_EDGES);
        memcpy(child.nb201, canon, NAS_NB201_EDGES);
        res[n++] = child;
    }
    nas_free(seen);
    if (n == 0) {
        nas_free(res);
        res = NULL;
    }
    *children = res;
    return n;
fail:
    nas_free(res);
    nas_free(seen);
    return rc;
}
