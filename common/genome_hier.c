/*
 * genome_hier.c - the hierarchical space (Liu et al. 2018, "Hierarchical
 * Representations for Efficient Architecture Search"): names, text form,
 * validation, canonical form, sampling and mutation.  docs/GENOME.md s11.
 *
 * Level 1 is the engine's primitives (enum nas_hier_op, `none` meaning no
 * edge).  A level-2 motif is a small DAG whose edges carry primitives; the
 * level-3 motif (the cell) is a DAG whose edges carry level-2 motifs.  A
 * node sums what its edges bring (the paper concatenates; a sum keeps every
 * tensor of a cell at the stage's channel count, as NB201 and DARTS do).
 *
 * Text form: a motif lists, for node i = 1..n-1, the ops of its edges from
 * nodes 0..i-1, one character each, nodes separated by '/':
 *   hier=c/sd/i-m,s/-c/dai;0/1-/-01
 * is two 4-node level-2 motifs and a 4-node level-3 motif whose edges name
 * motifs by their index (0..5) or '-'.
 *
 * Canonical form (what builds the same network hashes the same): edges
 * that carry no signal from a motif's input to its output are none; the
 * intermediate nodes of every motif are renumbered canonically (a key
 * invariant under renumbering, ties tried exhaustively); level-2 motifs
 * that build the same network are one motif; the used motifs come first, in
 * the order of their encodings.  Motifs the cell does not use build nothing
 * and do not enter the hash.
 */
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_internal.h"

#include <stdio.h>
#include <string.h>

static const char *const hier_op_names[NAS_HIER_OP_COUNT] = {
    "none", "id", "conv1x1", "dw3x3", "sep3x3", "max3x3", "avg3x3",
};
static const char hier_op_chars[NAS_HIER_OP_COUNT + 1] = "-icdsma";

const char *nas_hier_op_name(int op) {
    if (op < 0 || op >= NAS_HIER_OP_COUNT) return NULL;
    return hier_op_names[op];
}

static int n_edges(int n_nodes) {
    return n_nodes * (n_nodes - 1) / 2;
}

static const char *motif_label(int level, int m, char *buf, size_t cap) {
    if (level == 3)
        snprintf(buf, cap, "hier top");
    else
        snprintf(buf, cap, "hier motif %d", m);
    return buf;
}

// ---------------------------------------------------------------------------
// Reachability, validation

/* fwd[i]: node i is reachable from the input; bwd[i]: the output is
 * reachable from node i (through edges that are not none). */
static void reach(const nas_hier_motif *m, int *fwd, int *bwd) {
    int n = m->n_nodes;
    fwd[0] = 1;
    for (int i = 1; i < n; i++) {
        fwd[i] = 0;
        for (int j = 0; j < i && !fwd[i]; j++)
            fwd[i] = fwd[j] && m->ops[NAS_HIER_EDGE(j, i)] != 0;
    }
    bwd[n - 1] = 1;
    for (int j = n - 2; j >= 0; j--) {
        bwd[j] = 0;
        for (int i = j + 1; i < n && !bwd[j]; i++)
            bwd[j] = bwd[i] && m->ops[NAS_HIER_EDGE(j, i)] != 0;
    }
}

void nas__hier_prune(const nas_hier_motif *in, nas_hier_motif *out) {
    int fwd[NAS_HIER_MAX_NODES], bwd[NAS_HIER_MAX_NODES];
    nas_hier_motif m = *in;
    reach(in, fwd, bwd);
    for (int i = 1; i < m.n_nodes; i++)
        for (int j = 0; j < i; j++)
            if (!fwd[j] || !bwd[i]) m.ops[NAS_HIER_EDGE(j, i)] = 0;
    *out = m;
}

static int validate_motif(const nas_hier_motif *m, int level, int idx, int n_motifs, char *err) {
    char name[32];
    motif_label(level, idx, name, sizeof name);
    if (m->n_nodes < 2 || m->n_nodes > NAS_HIER_MAX_NODES)
        return nas_set_err(err, NAS_EGENOME, "%s has %d nodes (needs 2..%d)", name, m->n_nodes,
                           NAS_HIER_MAX_NODES);
    int limit = level == 3 ? n_motifs + 1 : NAS_HIER_OP_COUNT, e = n_edges(m->n_nodes);
    for (int i = 1; i < m->n_nodes; i++)
        for (int j = 0; j < i; j++) {
            int op = m->ops[NAS_HIER_EDGE(j, i)];
            if (op >= limit && level == 3)
                return nas_set_err(err, NAS_EGENOME, "%s: edge %d->%d uses motif %d (0..%d)", name,
                                   j, i, op - 1, n_motifs - 1);
            if (op >= limit)
                return nas_set_err(err, NAS_EGENOME, "%s: edge %d->%d: unknown op %d", name, j, i,
                                   op);
        }
    for (int k = e; k < NAS_HIER_MAX_EDGES; k++)
        if (m->ops[k] != 0)
            return nas_set_err(err, NAS_EGENOME, "%s: op set past its %d edges", name, e);
    int fwd[NAS_HIER_MAX_NODES], bwd[NAS_HIER_MAX_NODES];
    reach(m, fwd, bwd);
    if (!fwd[m->n_nodes - 1])
        return nas_set_err(err, NAS_EGENOME,
                           "%s: no path from the input (node 0) to the output "
                           "(node %d)",
                           name, m->n_nodes - 1);
    return NAS_OK;
}

int nas__hier_validate(const nas_hier *h, char *err) {
    if (h->n_motifs < 1 || h->n_motifs > NAS_HIER_MAX_MOTIFS)
        return nas_set_err(err, NAS_EGENOME, "hier genome has %d motifs (needs 1..%d)", h->n_motifs,
                           NAS_HIER_MAX_MOTIFS);
    for (int m = 0; m < h->n_motifs; m++) {
        int rc = validate_motif(&h->motifs[m], 2, m, h->n_motifs, err);
        if (rc < 0) return rc;
    }
    return validate_motif(&h->top, 3, 0, h->n_motifs, err);
}

// ---------------------------------------------------------------------------
// Text form

static int op_of_char(int ch, int level, int n_motifs) {
    if (ch == '-') return 0;
    if (level == 3) return ch >= '0' && ch < '0' + n_motifs ? 1 + (ch - '0') : -1;
    const char *p = ch ? strchr(hier_op_chars, ch) : NULL;
    return p ? (int)(p - hier_op_chars) : -1;
}

int nas__hier_parse_motif(const char *s, size_t len, size_t base, int level, int n_motifs,
                          nas_hier_motif *out, char *err) {
    nas_hier_motif m;
    memset(&m, 0, sizeof m);
    if (len == 0) return nas_set_err(err, NAS_EGENOME, "at %zu: empty motif", base);
    size_t p = 0;
    int i = 1;
    for (;;) {
        if (i >= NAS_HIER_MAX_NODES)
            return nas_set_err(err, NAS_EGENOME, "at %zu: motif has more than %d nodes", base + p,
                               NAS_HIER_MAX_NODES);
        size_t start = p;
        while (p < len && s[p] != '/')
            p++;
        if ((int)(p - start) != i)
            return nas_set_err(err, NAS_EGENOME,
                               "at %zu: node %d lists %zu edges, needs %d (one per earlier node)",
                               base + start, i, p - start, i);
        for (int j = 0; j < i; j++) {
            int ch = (unsigned char)s[start + (size_t)j];
            int op = op_of_char(ch, level, n_motifs);
            if (op < 0 && level == 3)
                return nas_set_err(
                    err, NAS_EGENOME, "at %zu: top edge '%c' is not '-' or a motif index 0..%d",
                    base + start + (size_t)j, ch >= 0x20 && ch < 0x7f ? ch : '?', n_motifs - 1);
            if (op < 0)
                return nas_set_err(err, NAS_EGENOME, "at %zu: unknown primitive '%c' (one of %s)",
                                   base + start + (size_t)j, ch >= 0x20 && ch < 0x7f ? ch : '?',
                                   hier_op_chars);
            m.ops[NAS_HIER_EDGE(j, i)] = (uint8_t)op;
        }
        i++;
        if (p >= len) break;
        p++; /* the '/' */
    }
    m.n_nodes = (uint8_t)i;
    *out = m;
    return NAS_OK;
}

int nas__hier_parse(const char *s, size_t len, size_t *pos, nas_hier *out, char *err) {
    nas_hier h;
    memset(&h, 0, sizeof h);
    size_t p = *pos;
    for (;;) {
        if (h.n_motifs == NAS_HIER_MAX_MOTIFS)
            return nas_set_err(err, NAS_EGENOME, "at %zu: more than %d motifs", p,
                               NAS_HIER_MAX_MOTIFS);
        size_t start = p;
        while (p < len && s[p] != ',' && s[p] != ';' && s[p] != ' ' && s[p] != '\n')
            p++;
        int rc =
            nas__hier_parse_motif(s + start, p - start, start, 2, 0, &h.motifs[h.n_motifs], err);
        if (rc < 0) return rc;
        h.n_motifs++;
        if (p < len && s[p] == ',') {
            p++;
            continue;
        }
        if (p >= len || s[p] != ';')
            return nas_set_err(err, NAS_EGENOME,
                               "at %zu: expected ',' or ';' (then the level-3 "
                               "motif) after a motif",
                               p);
        p++;
        break;
    }
    size_t start = p;
    while (p < len && s[p] != ' ' && s[p] != '\n' && s[p] != '\t' && s[p] != '\r')
        p++;
    int rc = nas__hier_parse_motif(s + start, p - start, start, 3, h.n_motifs, &h.top, err);
    if (rc < 0) return rc;
    if ((rc = nas__hier_validate(&h, err)) < 0) return rc;
    *pos = p;
    *out = h;
    return NAS_OK;
}

void nas__hier_format_motif(const nas_hier_motif *m, int level, nas__text *o) {
    char buf[NAS_HIER_TOKEN_MAX];
    size_t n = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        if (i > 1) buf[n++] = '/';
        for (int j = 0; j < i; j++) {
            int op = m->ops[NAS_HIER_EDGE(j, i)];
            buf[n++] = op == 0 ? '-' : level == 3 ? (char)('0' + op - 1) : hier_op_chars[op];
        }
    }
    buf[n] = '\0';
    nas__text_put(o, "%s", buf);
}

void nas__hier_format(const nas_hier *h, nas__text *o) {
    nas__text_put(o, "hier=");
    for (int m = 0; m < h->n_motifs; m++) {
        if (m) nas__text_put(o, ",");
        nas__hier_format_motif(&h->motifs[m], 2, o);
    }
    nas__text_put(o, ";");
    nas__hier_format_motif(&h->top, 3, o);
}

// ---------------------------------------------------------------------------
// Canonical form

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct node_key {
    int depth;
    uint64_t in, out;
} node_key;

static int key_cmp(const node_key *a, const node_key *b) {
    if (a->depth != b->depth) return a->depth < b->depth ? -1 : 1;
    if (a->in != b->in) return a->in < b->in ? -1 : 1;
    if (a->out != b->out) return a->out < b->out ? -1 : 1;
    return 0;
}

/* The op on the edge between old nodes a and b, in the new order (0 when
 * they are not ordered a < b, which for a pruned motif is never an edge). */
static int old_op(const nas_hier_motif *m, int a, int b) {
    return a < b ? m->ops[NAS_HIER_EDGE(a, b)] : 0;
}

static void relabel(const nas_hier_motif *m, const int *old_of, nas_hier_motif *out) {
    memset(out, 0, sizeof *out);
    out->n_nodes = m->n_nodes;
    for (int i = 1; i < m->n_nodes; i++)
        for (int j = 0; j < i; j++)
            out->ops[NAS_HIER_EDGE(j, i)] = (uint8_t)old_op(m, old_of[j], old_of[i]);
}

/* Next permutation of v[0..n) in lexicographic order; 0 (and v sorted) after the last. */
static int next_perm(int *v, int n) {
    int i = n - 2;
    while (i >= 0 && v[i] >= v[i + 1])
        i--;
    if (i < 0) {
        for (int a = 0, b = n - 1; a < b; a++, b--) {
            int t = v[a];
            v[a] = v[b];
            v[b] = t;
        }
        return 0;
    }
    int j = n - 1;
    while (v[j] <= v[i])
        j--;
    int t = v[i];
    v[i] = v[j];
    v[j] = t;
    for (int a = i + 1, b = n - 1; a < b; a++, b--) {
        t = v[a];
        v[a] = v[b];
        v[b] = t;
    }
    return 1;
}

/* Tied orderings tried per motif at most (7!); beyond, ties keep their old order. */
#define TIE_LIMIT 5040

/* Canonical numbering of one motif whose ops are compared as values (a
 * level-3 motif's are motif classes).  Live intermediate nodes are sorted
 * by (longest path from the input, a hash of what flows in, a hash of
 * where it flows out), which is a topological order and invariant under
 * renumbering; nodes tied on it are tried in every order and the smallest
 * op array wins; dead nodes go last, just before the output. */
static void motif_canonical(const nas_hier_motif *in, nas_hier_motif *out) {
    nas_hier_motif m;
    nas__hier_prune(in, &m);
    int n = m.n_nodes, fwd[NAS_HIER_MAX_NODES], bwd[NAS_HIER_MAX_NODES];
    reach(&m, fwd, bwd);
    node_key key[NAS_HIER_MAX_NODES];
    for (int i = 0; i < n; i++) {
        key[i].depth = 0;
        key[i].in = 1;
        for (int j = 0; j < i; j++) {
            int op = m.ops[NAS_HIER_EDGE(j, i)];
            if (!op) continue;
            if (key[j].depth + 1 > key[i].depth) key[i].depth = key[j].depth + 1;
            key[i].in += mix(key[j].in * 31u + (uint64_t)op);
        }
        key[i].in = mix(key[i].in);
    }
    for (int j = n - 1; j >= 0; j--) {
        key[j].out = 2;
        for (int i = j + 1; i < n; i++) {
            int op = m.ops[NAS_HIER_EDGE(j, i)];
            if (op) key[j].out += mix(key[i].out * 37u + (uint64_t)op);
        }
        key[j].out = mix(key[j].out);
    }
    /* Live intermediates by key (insertion sort: at most 9), then dead ones. */
    int live[NAS_HIER_MAX_NODES], n_live = 0, dead[NAS_HIER_MAX_NODES], n_dead = 0;
    for (int i = 1; i < n - 1; i++) {
        if (!(fwd[i] && bwd[i])) {
            dead[n_dead++] = i;
            continue;
        }
        int k = n_live++;
        while (k > 0 && key_cmp(&key[live[k - 1]], &key[i]) > 0) {
            live[k] = live[k - 1];
            k--;
        }
        live[k] = i;
    }
    int old_of[NAS_HIER_MAX_NODES];
    old_of[0] = 0;
    for (int k = 0; k < n_dead; k++)
        old_of[1 + n_live + k] = dead[k];
    old_of[n - 1] = n - 1;
    /* Tie groups [gs[g], gs[g+1]) of equal keys; each starts sorted by old index. */
    int gs[NAS_HIER_MAX_NODES + 1], n_groups = 0;
    long orders = 1;
    for (int k = 0; k < n_live; k++) {
        if (k == 0 || key_cmp(&key[live[k - 1]], &key[live[k]]) != 0) gs[n_groups++] = k;
        int size = k + 1 - gs[n_groups - 1];
        if (orders <= TIE_LIMIT) orders *= size;
    }
    gs[n_groups] = n_live;
    for (int g = 0; g < n_groups; g++) /* sort each group by old index for next_perm */
        for (int a = gs[g] + 1; a < gs[g + 1]; a++)
            for (int b = a; b > gs[g] && live[b - 1] > live[b]; b--) {
                int t = live[b];
                live[b] = live[b - 1];
                live[b - 1] = t;
            }
    nas_hier_motif best, cand;
    int have = 0;
    for (;;) {
        for (int k = 0; k < n_live; k++)
            old_of[1 + k] = live[k];
        relabel(&m, old_of, &cand);
        if (!have || memcmp(cand.ops, best.ops, sizeof cand.ops) < 0) best = cand;
        have = 1;
        if (orders > TIE_LIMIT) break;
        int g = n_groups - 1;
        while (g >= 0 && !next_perm(live + gs[g], gs[g + 1] - gs[g]))
            g--;
        if (g < 0) break;
    }
    *out = best;
}

/* Live nodes of a canonical motif: the input, the live intermediates (first
 * after it) and the output.  Writes [count, ops among them] into buf. */
static int live_encode(const nas_hier_motif *m, uint8_t *buf) {
    int fwd[NAS_HIER_MAX_NODES], bwd[NAS_HIER_MAX_NODES], idx[NAS_HIER_MAX_NODES], n = 0;
    reach(m, fwd, bwd);
    for (int i = 0; i < m->n_nodes; i++)
        if (fwd[i] && bwd[i]) idx[n++] = i;
    int w = 0;
    buf[w++] = (uint8_t)n;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++)
            buf[w++] = m->ops[NAS_HIER_EDGE(idx[j], idx[i])];
    return w;
}

static int enc_cmp(const uint8_t *a, int na, const uint8_t *b, int nb) {
    if (na != nb) return na < nb ? -1 : 1;
    return memcmp(a, b, (size_t)na);
}

void nas__hier_canonical(const nas_hier *in, nas_hier *out) {
    nas_hier h;
    memset(&h, 0, sizeof h);
    h.n_motifs = in->n_motifs;
    nas_hier_motif c[NAS_HIER_MAX_MOTIFS];
    uint8_t enc[NAS_HIER_MAX_MOTIFS][1 + NAS_HIER_MAX_EDGES];
    int len[NAS_HIER_MAX_MOTIFS], used[NAS_HIER_MAX_MOTIFS] = {0};
    for (int m = 0; m < in->n_motifs; m++) {
        motif_canonical(&in->motifs[m], &c[m]);
        len[m] = live_encode(&c[m], enc[m]);
    }
    nas_hier_motif top;
    nas__hier_prune(&in->top, &top);
    for (int e = 0; e < n_edges(top.n_nodes); e++)
        if (top.ops[e]) used[top.ops[e] - 1] = 1;
    /* Classes: distinct encodings of the used motifs, in encoding order;
     * rep[k] is the first motif of class k. */
    int cls[NAS_HIER_MAX_MOTIFS], rep[NAS_HIER_MAX_MOTIFS], n_cls = 0;
    for (int m = 0; m < in->n_motifs; m++) {
        cls[m] = -1;
        if (!used[m]) continue;
        for (int k = 0; k < n_cls && cls[m] < 0; k++)
            if (enc_cmp(enc[m], len[m], enc[rep[k]], len[rep[k]]) == 0) cls[m] = k;
        if (cls[m] >= 0) continue;
        int k = n_cls++;
        while (k > 0 && enc_cmp(enc[rep[k - 1]], len[rep[k - 1]], enc[m], len[m]) > 0) {
            rep[k] = rep[k - 1];
            k--;
        }
        rep[k] = m;
        for (int q = 0; q < m; q++) /* classes after the insertion point moved up */
            if (cls[q] >= k) cls[q]++;
        cls[m] = k;
    }
    for (int e = 0; e < n_edges(top.n_nodes); e++)
        if (top.ops[e]) top.ops[e] = (uint8_t)(1 + cls[top.ops[e] - 1]);
    motif_canonical(&top, &h.top);
    int k = 0;
    for (; k < n_cls; k++)
        h.motifs[k] = c[rep[k]];
    for (int m = 0; m < in->n_motifs; m++) { /* the rest, in their old order */
        int is_rep = 0;
        for (int q = 0; q < n_cls; q++)
            is_rep |= rep[q] == m;
        if (!is_rep) h.motifs[k++] = c[m];
    }
    *out = h;
}

int nas__hier_encode(const nas_hier *h, uint8_t *buf) {
    int used[NAS_HIER_MAX_MOTIFS] = {0}, n_used = 0, w = 1;
    for (int e = 0; e < n_edges(h->top.n_nodes); e++)
        if (h->top.ops[e]) used[h->top.ops[e] - 1] = 1;
    w += live_encode(&h->top, buf + w);
    for (int m = 0; m < h->n_motifs; m++)
        if (used[m]) {
            n_used++;
            w += live_encode(&h->motifs[m], buf + w);
        }
    buf[0] = (uint8_t)n_used;
    return w;
}

// ---------------------------------------------------------------------------
// Sampling

/* Sizes of sampled genomes: the space's, or 6 motifs of 4 nodes and a
 * 5-node cell. */
static int hier_sizes(const nas_space *sp, int *motifs, int *nodes, int *top) {
    *motifs = sp->motifs ? sp->motifs : 6;
    *nodes = sp->motif_nodes ? sp->motif_nodes : 4;
    *top = sp->top_nodes ? sp->top_nodes : 5;
    if (*motifs < 1 || *motifs > NAS_HIER_MAX_MOTIFS || *nodes < 2 || *nodes > NAS_HIER_MAX_NODES ||
        *top < 2 || *top > NAS_HIER_MAX_NODES)
        return NAS_EINVAL;
    return NAS_OK;
}

/* Values an edge may take: the allowed primitives (level 2), or none when
 * allowed and every motif (level 3). */
static int edge_values(int level, const int *ops, int n_ops, int n_motifs, int *vals) {
    if (level == 2) {
        memcpy(vals, ops, sizeof(int) * (size_t)n_ops);
        return n_ops;
    }
    int n = 0, none = 0;
    for (int i = 0; i < n_ops; i++)
        none |= ops[i] == NAS_HIER_NONE;
    if (none) vals[n++] = 0;
    for (int m = 0; m < n_motifs; m++)
        vals[n++] = 1 + m;
    return n;
}

/* A uniformly random connected motif (rejection: draws that leave the
 * output unreachable are redrawn; edges are rarely all none). */
static int sample_motif(int n_nodes, const int *vals, int n_vals, nas_rng *rng,
                        nas_hier_motif *out) {
    for (int attempt = 0; attempt < 100000; attempt++) {
        memset(out, 0, sizeof *out);
        out->n_nodes = (uint8_t)n_nodes;
        for (int e = 0; e < n_edges(n_nodes); e++)
            out->ops[e] = (uint8_t)vals[nas_rng_below(rng, (uint32_t)n_vals)];
        int fwd[NAS_HIER_MAX_NODES], bwd[NAS_HIER_MAX_NODES];
        reach(out, fwd, bwd);
        if (fwd[n_nodes - 1]) return NAS_OK;
    }
    return NAS_EINVAL;
}

int nas__hier_sample(const nas_space *sp, const int *ops, int n_ops, nas_rng *rng,
                     nas_genome *out) {
    int motifs, nodes, top;
    int rc = hier_sizes(sp, &motifs, &nodes, &top);
    if (rc < 0) return rc;
    nas_genome g;
    memset(&g, 0, sizeof g);
    g.space = NAS_SPACE_HIER;
    g.hier.n_motifs = motifs;
    int vals[NAS_HIER_OP_COUNT + NAS_HIER_MAX_MOTIFS];
    int nv = edge_values(2, ops, n_ops, motifs, vals);
    for (int m = 0; m < motifs; m++)
        if ((rc = sample_motif(nodes, vals, nv, rng, &g.hier.motifs[m])) < 0) return rc;
    nv = edge_values(3, ops, n_ops, motifs, vals);
    if ((rc = sample_motif(top, vals, nv, rng, &g.hier.top)) < 0) return rc;
    *out = g;
    return NAS_OK;
}

// ---------------------------------------------------------------------------
// Mutation (Liu et al. s2.3): a level, a motif of it, an edge of that motif,
// and another op for the edge.

static nas_hier_motif *motif_at(nas_hier *h, int level, int m) {
    return level == 3 ? &h->top : &h->motifs[m];
}

/* Apply m to a copy of the parent; 1 if the child is valid and builds another network. */
static int hier_apply(const nas_genome *parent, const nas_mutation *m, nas_genome *child) {
    *child = *parent;
    motif_at(&child->hier, m->cell, m->block)->ops[m->half] = (uint8_t)m->new_val;
    return nas_genome_validate(child, NULL) == NAS_OK && !nas_genome_equivalent(child, parent);
}

int nas__hier_mutate(const nas_genome *parent, const nas_space *sp, const int *ops, int n_ops,
                     nas_rng *rng, nas_genome *child, nas_mutation *what) {
    (void)sp;
    const nas_hier *h = &parent->hier;
    int vals[NAS_HIER_OP_COUNT + NAS_HIER_MAX_MOTIFS];
    nas_mutation m;
    nas_genome c;
    for (int attempt = 0; attempt < 256; attempt++) {
        memset(&m, 0, sizeof m);
        m.kind = NAS_MUTATION_OP;
        m.cell = 2 + (int)nas_rng_below(rng, 2);
        m.block = m.cell == 2 ? (int)nas_rng_below(rng, (uint32_t)h->n_motifs) : 0;
        const nas_hier_motif *mo = m.cell == 3 ? &h->top : &h->motifs[m.block];
        m.half = (int)nas_rng_below(rng, (uint32_t)n_edges(mo->n_nodes));
        m.old_val = mo->ops[m.half];
        int nv = edge_values(m.cell, ops, n_ops, h->n_motifs, vals);
        m.new_val = vals[nas_rng_below(rng, (uint32_t)nv)];
        if (m.new_val != m.old_val && hier_apply(parent, &m, &c)) goto done;
    }
    /* Rare (a nearly frozen genome): list every move and draw a good one. */
    static const int levels[2] = {2, 3};
    int n_good = 0;
    nas_mutation pick;
    memset(&pick, 0, sizeof pick);
    for (int l = 0; l < 2; l++) {
        int n_m = levels[l] == 2 ? h->n_motifs : 1;
        for (int b = 0; b < n_m; b++) {
            const nas_hier_motif *mo = levels[l] == 3 ? &h->top : &h->motifs[b];
            int nv = edge_values(levels[l], ops, n_ops, h->n_motifs, vals);
            for (int e = 0; e < n_edges(mo->n_nodes); e++)
                for (int v = 0; v < nv; v++) {
                    m = (nas_mutation){NAS_MUTATION_OP, levels[l], b, e, mo->ops[e], vals[v]};
                    if (vals[v] == mo->ops[e] || !hier_apply(parent, &m, &c)) continue;
                    /* Reservoir sampling: each good move is kept with probability 1/n_good. */
                    if (nas_rng_below(rng, (uint32_t)++n_good) == 0) pick = m;
                }
        }
    }
    if (n_good == 0) return NAS_EGENOME;
    m = pick;
    hier_apply(parent, &m, &c);
done:
    *child = c;
    if (what) *what = m;
    return NAS_OK;
}

int nas__hier_mutation_format(const nas_mutation *m, char *buf, size_t cap) {
    int i = 1;
    while (i < NAS_HIER_MAX_NODES && NAS_HIER_EDGE(0, i + 1) <= m->half)
        i++;
    int j = m->half - NAS_HIER_EDGE(0, i), w;
    if (m->kind != NAS_MUTATION_OP)
        w = snprintf(buf, cap, "unknown mutation kind %d", m->kind);
    else if (m->cell == 3) {
        char a[24] = "none", b[24] = "none";
        if (m->old_val) snprintf(a, sizeof a, "motif %d", m->old_val - 1);
        if (m->new_val) snprintf(b, sizeof b, "motif %d", m->new_val - 1);
        w = snprintf(buf, cap, "op: level 3 edge %d->%d %s -> %s", j, i, a, b);
    } else {
        const char *a = nas_hier_op_name(m->old_val), *b = nas_hier_op_name(m->new_val);
        w = snprintf(buf, cap, "op: level 2 motif %d edge %d->%d %s -> %s", m->block, j, i,
                     a ? a : "?", b ? b : "?");
    }
    if (w < 0 || (size_t)w >= cap) return NAS_ERANGE;
    return w;
}

// ---------------------------------------------------------------------------
// DOT: a cluster per motif with its primitives on the edges, and the cell
// with the motifs on its edges.  Drawn only.

static void dot_motif(nas__text *o, const nas_hier_motif *m, int level, int idx) {
    char id[8] = "t";
    if (level == 2) snprintf(id, sizeof id, "m%d_", idx);
    if (level == 3)
        nas__text_put(o, "  subgraph cluster_top {\n    label=\"level 3 (cell)\";\n");
    else
        nas__text_put(o, "  subgraph cluster_m%d {\n    label=\"motif %d\";\n", idx, idx);
    for (int i = 0; i < m->n_nodes; i++)
        nas__text_put(o, "    %s%d [label=\"%d\", shape=circle];\n", id, i, i);
    for (int i = 1; i < m->n_nodes; i++)
        for (int j = 0; j < i; j++) {
            int op = m->ops[NAS_HIER_EDGE(j, i)];
            if (op == 0) continue;
            if (level == 3)
                nas__text_put(o, "    %s%d -> %s%d [label=\"motif %d\"];\n", id, j, id, i, op - 1);
            else
                nas__text_put(o, "    %s%d -> %s%d [label=\"%s\"];\n", id, j, id, i,
                              hier_op_names[op]);
        }
    nas__text_put(o, "  }\n");
}

void nas__hier_dot(const nas_hier *h, nas__text *o) {
    nas__text_put(o, "digraph genome {\n  rankdir=LR;\n");
    for (int m = 0; m < h->n_motifs; m++)
        dot_motif(o, &h->motifs[m], 2, m);
    dot_motif(o, &h->top, 3, 0);
    nas__text_put(o, "}\n");
}
