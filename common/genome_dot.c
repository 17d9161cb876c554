/*
 * genome_dot.c - the Graphviz DOT form of a genome, written and read back.
 *
 * The writer draws one digraph with a cluster per cell: the two cell inputs
 * as boxes, each block as a "+" node whose two incoming edges carry the op
 * names (half a first, then half b), and a "concat" box fed by the blocks
 * no later block reads.  NB201 cells are drawn as their 4-node DAG with one
 * labelled edge per non-`none` op.
 *
 * The reader accepts exactly the dialect the writer produces (one statement
 * per line, our node names), which is enough for the form to round-trip and
 * for a person to edit a drawn cell (change a label, rewire an edge) and
 * load it again.  It is not a general DOT parser: anything else is an error
 * naming the line.  The concat edges are redundant with the blocks and are
 * checked, not trusted.
 */
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_internal.h"

#include <stdio.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Writer

static void dot_cell(nas__text *o, const nas_cell *c, const char *id, const char *label) {
    nas__text_put(o, "  subgraph cluster_%s {\n    label=\"%s\";\n", id, label);
    nas__text_put(o, "    %s_in0 [label=\"h[i-2]\", shape=box];\n", id);
    nas__text_put(o, "    %s_in1 [label=\"h[i-1]\", shape=box];\n", id);
    int used[NAS_MAX_BLOCKS] = {0};
    for (int k = 0; k < c->n_blocks; k++) {
        const nas_block *b = &c->blocks[k];
        nas__text_put(o, "    %s_b%d [label=\"+ %d\", shape=circle];\n", id, k, k);
        for (int h = 0; h < 2; h++) {
            int in = h ? b->in_b : b->in_a, op = h ? b->op_b : b->op_a;
            if (in >= 2) used[in - 2] = 1;
            if (in < 2)
                nas__text_put(o, "    %s_in%d -> %s_b%d [label=\"%s\"];\n", id, in, id, k,
                              nas_op_name(op));
            else
                nas__text_put(o, "    %s_b%d -> %s_b%d [label=\"%s\"];\n", id, in - 2, id, k,
                              nas_op_name(op));
        }
    }
    nas__text_put(o, "    %s_out [label=\"concat\", shape=box];\n", id);
    for (int k = 0; k < c->n_blocks; k++)
        if (!used[k]) nas__text_put(o, "    %s_b%d -> %s_out;\n", id, k, id);
    nas__text_put(o, "  }\n");
}

static const int nb_src[NAS_NB201_EDGES] = {0, 0, 1, 0, 1, 2};
static const int nb_dst[NAS_NB201_EDGES] = {1, 2, 2, 3, 3, 3};

int nas_genome_to_dot(const nas_genome *g, char *buf, size_t cap) {
    if (g == NULL || buf == NULL || cap == 0) return NAS_EINVAL;
    if (nas_genome_validate(g, NULL) < 0) return NAS_EGENOME;
    nas__text o = {buf, cap, 0};
    if (g->space == NAS_SPACE_MBCONV || g->space == NAS_SPACE_HIER) {
        if (g->space == NAS_SPACE_MBCONV)
            nas__mb_dot(&g->mb, &o);
        else
            nas__hier_dot(&g->hier, &o); /* drawn only, as the chain is */
        return nas__text_finish(&o);
    }
    nas__text_put(&o, "digraph genome {\n  rankdir=LR;\n");
    if (g->space == NAS_SPACE_CHAIN) { /* drawn only; nas_genome_from_dot reads cells back */
        nas__text_put(&o, "  \"h0\" [label=\"stem\"];\n");
        for (int k = 0; k < g->chain.n_layers; k++) {
            const nas_chain_layer *l = &g->chain.layers[k];
            nas__text_put(&o, "  \"h%d\" [label=\"%s", k + 1, nas_chain_op_name(l->op));
            if (nas_chain_op_has_width(l->op)) nas__text_put(&o, "/%d", l->width);
            nas__text_put(&o, "\"];\n  \"h%d\" -> \"h%d\";\n", k, k + 1);
            for (int j = 0; j <= k; j++)
                if (l->skips & (1u << j))
                    nas__text_put(&o, "  \"h%d\" -> \"h%d\" [style=dashed];\n", j, k + 1);
        }
        nas__text_put(&o, "}\n");
        return nas__text_finish(&o);
    }
    if (g->space == NAS_SPACE_NB201) {
        nas__text_put(&o, "  subgraph cluster_nb201 {\n    label=\"nb201 cell\";\n");
        for (int i = 0; i < 4; i++)
            nas__text_put(&o, "    n%d [label=\"%d\", shape=circle];\n", i, i);
        for (int e = 0; e < NAS_NB201_EDGES; e++)
            if (g->nb201[e] != NAS_NB201_NONE)
                nas__text_put(&o, "    n%d -> n%d [label=\"%s\"];\n", nb_src[e], nb_dst[e],
                              nas_nb201_op_name(g->nb201[e]));
        nas__text_put(&o, "  }\n");
    } else if (g->shared) {
        dot_cell(&o, &g->normal, "cell", "cell (normal and reduction)");
    } else {
        dot_cell(&o, &g->normal, "normal", "normal cell");
        dot_cell(&o, &g->reduce, "reduce", "reduction cell");
    }
    nas__text_put(&o, "}\n");
    return nas__text_finish(&o);
}

// ---------------------------------------------------------------------------
// Reader: one line at a time over (text, len).

/* A node name of our dialect: cell input, block, concat, or NB201 node. */
typedef struct dot_node {
    int cell;  /* 0 normal, 1 reduce, 2 shared cell, 3 nb201 */
    int kind;  /* 0 input, 1 block, 2 out, 3 nb201 node */
    int index; /* input 0/1, block k, or nb201 node 0..3 */
} dot_node;

/* Parse a node name at s[0..n); returns the characters consumed or 0. */
static size_t dot_parse_node(const char *s, size_t n, dot_node *out) {
    static const char *const cells[3] = {"normal_", "reduce_", "cell_"};
    if (n >= 2 && s[0] == 'n' && s[1] >= '0' && s[1] <= '3' &&
        (n == 2 || s[2] == ' ' || s[2] == ';')) {
        *out = (dot_node){3, 3, s[1] - '0'};
        return 2;
    }
    for (int c = 0; c < 3; c++) {
        size_t p = strlen(cells[c]);
        if (n < p || memcmp(s, cells[c], p) != 0) continue;
        if (n >= p + 3 && memcmp(s + p, "out", 3) == 0) {
            *out = (dot_node){c, 2, 0};
            return p + 3;
        }
        if (n >= p + 3 && memcmp(s + p, "in", 2) == 0 && (s[p + 2] == '0' || s[p + 2] == '1')) {
            *out = (dot_node){c, 0, s[p + 2] - '0'};
            return p + 3;
        }
        if (n >= p + 2 && s[p] == 'b' && s[p + 1] >= '0' && s[p + 1] <= '9') {
            *out = (dot_node){c, 1, s[p + 1] - '0'};
            return p + 2;
        }
    }
    return 0;
}

typedef struct dot_state {
    nas_genome g;
    int seen_cell[4];                /* cluster opened, per cell id */
    int halves[2][NAS_MAX_BLOCKS];   /* edges read into each block */
    int out_edge[2][NAS_MAX_BLOCKS]; /* block -> concat edge present */
} dot_state;

static int starts(const char *s, size_t n, const char *p) {
    size_t m = strlen(p);
    return n >= m && memcmp(s, p, m) == 0;
}

/* One statement line (trimmed, non-empty). */
static int dot_line(dot_state *st, const char *s, size_t n, int line, char *err) {
    if (starts(s, n, "digraph genome {") || starts(s, n, "rankdir=") || starts(s, n, "label=") ||
        (n == 1 && s[0] == '}'))
        return NAS_OK;
    if (starts(s, n, "subgraph cluster_")) {
        const char *id = s + 17;
        size_t m = n - 17;
        int c = starts(id, m, "normal ")   ? 0
                : starts(id, m, "reduce ") ? 1
                : starts(id, m, "cell ")   ? 2
                : starts(id, m, "nb201 ")  ? 3
                                           : -1;
        if (c < 0) return nas_set_err(err, NAS_EGENOME, "dot: line %d: unknown cluster", line);
        st->seen_cell[c] = 1;
        return NAS_OK;
    }
    dot_node a, b;
    size_t used = dot_parse_node(s, n, &a);
    if (used == 0) return nas_set_err(err, NAS_EGENOME, "dot: line %d: unexpected statement", line);
    const char *rest = s + used;
    size_t rn = n - used;
    if (starts(rest, rn, " [label=")) { /* a node declaration */
        if (a.kind == 1 && a.index >= NAS_MAX_BLOCKS)
            return nas_set_err(err, NAS_EGENOME, "dot: line %d: block %d, too many (max %d)", line,
                               a.index, NAS_MAX_BLOCKS);
        return NAS_OK; /* blocks are defined by their edges */
    }
    if (!starts(rest, rn, " -> "))
        return nas_set_err(err, NAS_EGENOME, "dot: line %d: expected '->' or a node label", line);
    rest += 4, rn -= 4;
    size_t u2 = dot_parse_node(rest, rn, &b);
    if (u2 == 0) return nas_set_err(err, NAS_EGENOME, "dot: line %d: unknown edge target", line);
    rest += u2, rn -= u2;
    char op[24] = "";
    if (starts(rest, rn, " [label=\"")) {
        const char *q = memchr(rest + 9, '"', rn - 9);
        size_t on = q ? (size_t)(q - (rest + 9)) : 0;
        if (q == NULL || on == 0 || on >= sizeof op || !starts(q, rn - (size_t)(q - rest), "\"];"))
            return nas_set_err(err, NAS_EGENOME, "dot: line %d: bad edge label", line);
        memcpy(op, rest + 9, on);
    } else if (!(rn == 1 && rest[0] == ';')) {
        return nas_set_err(err, NAS_EGENOME, "dot: line %d: expected ';' or a label", line);
    }
    if (a.cell == 3 || b.cell == 3) { /* NB201 edge nJ -> nI */
        if (a.cell != 3 || b.cell != 3)
            return nas_set_err(err, NAS_EGENOME, "dot: line %d: mixed node kinds", line);
        int e = -1;
        for (int i = 0; i < NAS_NB201_EDGES; i++)
            if (nb_src[i] == a.index && nb_dst[i] == b.index) e = i;
        int v = nas_nb201_op_parse(op, strlen(op));
        if (e < 0 || v < 0)
            return nas_set_err(err, NAS_EGENOME, "dot: line %d: bad nb201 edge n%d -> n%d '%s'",
                               line, a.index, b.index, op);
        st->g.nb201[e] = (uint8_t)v;
        return NAS_OK;
    }
    if (a.cell != b.cell)
        return nas_set_err(err, NAS_EGENOME, "dot: line %d: edge between two cells", line);
    int ci = a.cell == 1;
    if (b.kind == 2) { /* block -> concat: recorded, checked at the end */
        if (a.kind != 1 || op[0] != '\0')
            return nas_set_err(err, NAS_EGENOME, "dot: line %d: bad concat edge", line);
        st->out_edge[ci][a.index] = 1;
        return NAS_OK;
    }
    if (b.kind != 1 || a.kind == 2 || b.index >= NAS_MAX_BLOCKS)
        return nas_set_err(err, NAS_EGENOME, "dot: line %d: an edge must end at a block", line);
    int v = nas_op_parse(op, strlen(op));
    if (v < 0) return nas_set_err(err, NAS_EGENOME, "dot: line %d: unknown op '%s'", line, op);
    int k = b.index, h = st->halves[ci][k]++;
    if (h >= 2)
        return nas_set_err(err, NAS_EGENOME, "dot: line %d: block %d has more than two inputs",
                           line, k);
    nas_cell *c = ci ? &st->g.reduce : &st->g.normal;
    nas_block *blk = &c->blocks[k];
    int in = a.kind == 0 ? a.index : a.index + 2;
    if (h == 0)
        blk->in_a = (uint8_t)in, blk->op_a = (uint8_t)v;
    else
        blk->in_b = (uint8_t)in, blk->op_b = (uint8_t)v;
    if (k + 1 > c->n_blocks) c->n_blocks = k + 1;
    return NAS_OK;
}

/* Every block has exactly two halves (checked before validation, which
 * would otherwise judge the zero-filled gaps). */
static int dot_check_halves(const dot_state *st, int ci, const char *name, char *err) {
    const nas_cell *c = ci ? &st->g.reduce : &st->g.normal;
    for (int k = 0; k < c->n_blocks; k++) {
        if (st->halves[ci][k] != 2)
            return nas_set_err(err, NAS_EGENOME, "dot: %s block %d has %d inputs, needs 2", name, k,
                               st->halves[ci][k]);
    }
    return NAS_OK;
}

/* The concat edges are exactly the unread blocks (checked after validation,
 * so a structural mistake is reported as such, not as its side effect). */
static int dot_check_concat(const dot_state *st, int ci, const char *name, char *err) {
    const nas_cell *c = ci ? &st->g.reduce : &st->g.normal;
    int used[NAS_MAX_BLOCKS] = {0};
    for (int k = 0; k < c->n_blocks; k++) {
        if (c->blocks[k].in_a >= 2) used[c->blocks[k].in_a - 2] = 1; /* valid: in range */
        if (c->blocks[k].in_b >= 2) used[c->blocks[k].in_b - 2] = 1;
    }
    for (int k = 0; k < NAS_MAX_BLOCKS; k++) {
        int want = k < c->n_blocks && !used[k];
        if (st->out_edge[ci][k] != want)
            return nas_set_err(err, NAS_EGENOME, "dot: %s block %d: concat edge %s", name, k,
                               want ? "missing" : "where none belongs");
    }
    return NAS_OK;
}

int nas_genome_from_dot(const char *text, size_t len, nas_genome *out, char *err) {
    if (out == NULL) return nas_set_err(err, NAS_EINVAL, "output genome is NULL");
    if (text == NULL && len > 0) return nas_set_err(err, NAS_EINVAL, "text is NULL");
    dot_state st;
    memset(&st, 0, sizeof st);
    size_t pos = 0;
    for (int line = 1; pos < len; line++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t a = pos, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\t'))
            a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r'))
            b--;
        if (b > a) {
            int rc = dot_line(&st, text + a, b - a, line, err);
            if (rc < 0) return rc;
        }
        pos = end + 1;
    }
    nas_genome g = st.g;
    int rc;
    if (st.seen_cell[3]) {
        g.space = NAS_SPACE_NB201;
        if (st.seen_cell[0] || st.seen_cell[1] || st.seen_cell[2])
            return nas_set_err(err, NAS_EGENOME, "dot: nb201 and cell clusters mixed");
    } else if (st.seen_cell[2]) {
        if (st.seen_cell[0] || st.seen_cell[1])
            return nas_set_err(err, NAS_EGENOME, "dot: shared cell mixed with normal/reduce");
        g.space = NAS_SPACE_CELL;
        g.shared = 1;
        if ((rc = dot_check_halves(&st, 0, "cell", err)) < 0) return rc;
        g.reduce = g.normal;
    } else if (st.seen_cell[0] && st.seen_cell[1]) {
        g.space = NAS_SPACE_CELL;
        if ((rc = dot_check_halves(&st, 0, "normal", err)) < 0) return rc;
        if ((rc = dot_check_halves(&st, 1, "reduce", err)) < 0) return rc;
    } else {
        return nas_set_err(err, NAS_EGENOME,
                           "dot: no genome clusters (need normal and reduce, "
                           "cell, or nb201)");
    }
    char verr[NAS_ERR_LEN];
    if (nas_genome_validate(&g, verr) < 0) return nas_set_err(err, NAS_EGENOME, "dot: %s", verr);
    if (g.space == NAS_SPACE_CELL) {
        if ((rc = dot_check_concat(&st, 0, g.shared ? "cell" : "normal", err)) < 0) return rc;
        if (!g.shared && (rc = dot_check_concat(&st, 1, "reduce", err)) < 0) return rc;
    }
    *out = g;
    return NAS_OK;
}
