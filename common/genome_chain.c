/*
 * genome_chain.c - the chain-structured space (the survey's first space):
 * names, text form, validation, canonical form, sampling and mutation.
 *
 * A chain is a stem (conv3x3 F - BN - ReLU, writing h[0]) followed by 1..12
 * layers; layer k (1-based) reads h[k-1], applies its op and adds its skips
 * (h[j] for j < k, each through a 1x1 conv and a BN) before the ReLU, and
 * writes h[k].  GAP and a linear layer read the last h.  Widths are in
 * units of F/16 channels, so a chain scales with the fidelity's F as the
 * cell space does; 16 units are the stem's F channels.
 *
 * Text form (docs/GENOME.md has the grammar):
 *   chain=conv3x3/32,sep5x5/48+0,max3x3,conv3x3/64@7+1+3
 * a layer is `op[/width][@id](+j)*`: the width for conv and sep ops, the
 * layer's id when it is not its 0-based position, one `+j` per skip.
 *
 * Ids name a layer's parameters ("L<id>/conv/weight"), so that a layer
 * keeps its weights when a morphism inserts a layer before it; they are
 * names, not structure: the hash and equivalence ignore them.
 *
 * Canonical form: pool and id layers carry width 0; an `id` layer without
 * skips is the identity and is dropped (skips from its output then read
 * its input, unless that would add one tensor twice to a layer, in which
 * case the layer stays).
 */
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_internal.h"

#include <stdio.h>
#include <string.h>

static const char *const chain_op_names[NAS_CHAIN_OP_COUNT] = {
    "conv3x3", "conv5x5", "conv1x1", "sep3x3", "sep5x5", "max3x3", "avg3x3", "id",
};

/* Widths a sampled or mutated layer draws from (units; 16 = F channels). */
static const int chain_widths[] = {8, 16, 24, 32, 48, 64};
#define N_WIDTHS ((int)(sizeof chain_widths / sizeof chain_widths[0]))

const char *nas_chain_op_name(int op) {
    if (op < 0 || op >= NAS_CHAIN_OP_COUNT) return NULL;
    return chain_op_names[op];
}

int nas_chain_op_parse(const char *s, size_t len) {
    if (s == NULL) return -1;
    for (int i = 0; i < NAS_CHAIN_OP_COUNT; i++)
        if (strlen(chain_op_names[i]) == len && memcmp(chain_op_names[i], s, len) == 0) return i;
    return -1;
}

int nas_chain_op_has_width(int op) {
    return op >= NAS_CHAIN_CONV3X3 && op <= NAS_CHAIN_SEP5X5;
}

int nas_chain_channels(int units, int F) {
    return (units * F + 15) / 16;
}

void nas__chain_units(const nas_chain *c, int *units) {
    units[0] = 16;
    for (int k = 1; k <= c->n_layers; k++) {
        const nas_chain_layer *l = &c->layers[k - 1];
        units[k] = nas_chain_op_has_width(l->op) ? l->width : units[k - 1];
    }
}

static int popcount16(unsigned v) {
    return __builtin_popcount(v & 0xffffu);
}

// ---------------------------------------------------------------------------
// Validation

int nas__chain_validate(const nas_chain *c, char *err) {
    if (c->n_layers < 1 || c->n_layers > NAS_CHAIN_MAX_LAYERS)
        return nas_set_err(err, NAS_EGENOME, "chain has %d layers (needs 1..%d)", c->n_layers,
                           NAS_CHAIN_MAX_LAYERS);
    for (int i = 0; i < c->n_layers; i++) {
        const nas_chain_layer *l = &c->layers[i];
        if (l->op >= NAS_CHAIN_OP_COUNT)
            return nas_set_err(err, NAS_EGENOME, "chain layer %d: unknown op %d", i, l->op);
        if (nas_chain_op_has_width(l->op) && (l->width < 1 || l->width > NAS_CHAIN_MAX_WIDTH))
            return nas_set_err(err, NAS_EGENOME, "chain layer %d: %s width %d out of range (1..%d)",
                               i, chain_op_names[l->op], l->width, NAS_CHAIN_MAX_WIDTH);
        if (!nas_chain_op_has_width(l->op) && l->width != 0)
            return nas_set_err(err, NAS_EGENOME, "chain layer %d: %s has no width (got %d)", i,
                               chain_op_names[l->op], l->width);
        /* Layer i (0-based) writes h[i+1] and may read h[0..i]. */
        if (l->skips >> (i + 1))
            return nas_set_err(err, NAS_EGENOME,
                               "chain layer %d: skip from h[%d], which is not earlier (0..%d)", i,
                               31 - __builtin_clz(l->skips), i);
        if (popcount16(l->skips) > NAS_CHAIN_MAX_SKIPS)
            return nas_set_err(err, NAS_EGENOME, "chain layer %d: %d skips (max %d)", i,
                               popcount16(l->skips), NAS_CHAIN_MAX_SKIPS);
        for (int j = 0; j < i; j++)
            if (c->layers[j].id == l->id)
                return nas_set_err(err, NAS_EGENOME, "chain layers %d and %d share id %d", j, i,
                                   l->id);
    }
    return NAS_OK;
}

// ---------------------------------------------------------------------------
// Text form

static int is_digit(int ch) {
    return ch >= '0' && ch <= '9';
}

/* A decimal of at most 4 digits at s[*pos], or -1. */
static int read_num(const char *s, size_t len, size_t *pos) {
    int v = 0, n = 0;
    while (*pos < len && is_digit((unsigned char)s[*pos])) {
        if (++n > 4) return -1;
        v = v * 10 + (s[(*pos)++] - '0');
    }
    return n ? v : -1;
}

int nas__chain_parse(const char *s, size_t len, size_t *pos, nas_chain *out, char *err) {
    nas_chain c;
    memset(&c, 0, sizeof c);
    size_t p = *pos;
    for (;;) {
        if (c.n_layers == NAS_CHAIN_MAX_LAYERS)
            return nas_set_err(err, NAS_EGENOME, "at %zu: chain has too many layers (max %d)", p,
                               NAS_CHAIN_MAX_LAYERS);
        int k = c.n_layers;
        nas_chain_layer *l = &c.layers[k];
        size_t start = p;
        while (p < len && (s[p] == '_' || (s[p] >= 'a' && s[p] <= 'z') || is_digit(s[p])))
            p++;
        int op = nas_chain_op_parse(s + start, p - start);
        if (op < 0) {
            int shown = p - start > 40 ? 40 : (int)(p - start);
            return nas_set_err(err, NAS_EGENOME, "at %zu: unknown chain op '%.*s'", start, shown,
                               s + start);
        }
        l->op = (uint8_t)op;
        l->id = (uint8_t)k;
        if (nas_chain_op_has_width(op)) {
            if (p >= len || s[p] != '/')
                return nas_set_err(err, NAS_EGENOME, "at %zu: expected '/width' after %s", p,
                                   chain_op_names[op]);
            size_t at = ++p;
            int w = read_num(s, len, &p);
            if (w < 1 || w > NAS_CHAIN_MAX_WIDTH)
                return nas_set_err(err, NAS_EGENOME, "at %zu: width must be 1..%d", at,
                                   NAS_CHAIN_MAX_WIDTH);
            l->width = (uint16_t)w;
        }
        if (p < len && s[p] == '@') {
            size_t at = ++p;
            int id = read_num(s, len, &p);
            if (id < 0 || id > 255)
                return nas_set_err(err, NAS_EGENOME, "at %zu: layer id must be 0..255", at);
            l->id = (uint8_t)id;
        }
        while (p < len && s[p] == '+') {
            size_t at = ++p;
            int j = read_num(s, len, &p);
            if (j < 0 || j > k)
                return nas_set_err(err, NAS_EGENOME, "at %zu: layer %d may skip from h[0..%d] only",
                                   at, k, k);
            if (l->skips & (1u << j))
                return nas_set_err(err, NAS_EGENOME, "at %zu: skip from h[%d] given twice", at, j);
            l->skips |= (uint16_t)(1u << j);
        }
        c.n_layers++;
        if (p >= len || s[p] != ',') break;
        p++;
    }
    int rc = nas__chain_validate(&c, err);
    if (rc < 0) return rc;
    *pos = p;
    *out = c;
    return NAS_OK;
}

void nas__chain_format(const nas_chain *c, nas__text *o) {
    nas__text_put(o, "chain=");
    for (int k = 0; k < c->n_layers; k++) {
        const nas_chain_layer *l = &c->layers[k];
        nas__text_put(o, "%s%s", k ? "," : "", chain_op_names[l->op]);
        if (nas_chain_op_has_width(l->op)) nas__text_put(o, "/%d", l->width);
        if (l->id != k) nas__text_put(o, "@%d", l->id);
        for (int j = 0; j <= k; j++)
            if (l->skips & (1u << j)) nas__text_put(o, "+%d", j);
    }
}

// ---------------------------------------------------------------------------
// Canonical form and hash bytes

/* Remove layer k (0-based): skips from its output h[k+1] move to `to`
 * (an index of h, or -1 to drop them); later bits shift down by one. */
static void remove_layer(nas_chain *c, int k, int to) {
    for (int i = k + 1; i < c->n_layers; i++) {
        unsigned s = c->layers[i].skips;
        int had = (s >> (k + 1)) & 1u;
        unsigned low = s & ((1u << (k + 1)) - 1u), high = s >> (k + 2);
        s = low | (high << (k + 1));
        if (had && to >= 0) s |= 1u << to;
        c->layers[i].skips = (uint16_t)s;
    }
    memmove(&c->layers[k], &c->layers[k + 1],
            sizeof(nas_chain_layer) * (size_t)(c->n_layers - k - 1));
    c->n_layers--;
}

/* 1 if dropping the skip-less id layer k would give a later layer two
 * skips from one tensor (it skips from both h[k] and h[k+1]). */
static int drop_conflicts(const nas_chain *c, int k) {
    for (int i = k + 1; i < c->n_layers; i++) {
        unsigned s = c->layers[i].skips;
        if (((s >> (k + 1)) & 1u) && ((s >> k) & 1u)) return 1;
    }
    return 0;
}

void nas__chain_canonical(const nas_chain *in, nas_chain *out) {
    nas_chain c = *in;
    for (int k = 0; k < c.n_layers; k++)
        if (!nas_chain_op_has_width(c.layers[k].op)) c.layers[k].width = 0;
    for (int k = 0; k < c.n_layers && c.n_layers > 1;) {
        const nas_chain_layer *l = &c.layers[k];
        if (l->op == NAS_CHAIN_ID && l->skips == 0 && !drop_conflicts(&c, k)) {
            remove_layer(&c, k, k);
            k = 0; /* a drop may free an earlier conflict: rescan */
            continue;
        }
        k++;
    }
    for (int k = c.n_layers; k < NAS_CHAIN_MAX_LAYERS; k++)
        memset(&c.layers[k], 0, sizeof c.layers[k]);
    *out = c;
}

int nas__chain_encode(const nas_chain *c, uint8_t *buf) {
    int n = 0;
    buf[n++] = (uint8_t)c->n_layers;
    for (int k = 0; k < c->n_layers; k++) {
        const nas_chain_layer *l = &c->layers[k];
        buf[n++] = l->op;
        buf[n++] = (uint8_t)(l->width & 0xff);
        buf[n++] = (uint8_t)(l->width >> 8);
        buf[n++] = (uint8_t)(l->skips & 0xff);
        buf[n++] = (uint8_t)(l->skips >> 8);
    }
    return n;
}

// ---------------------------------------------------------------------------
// Sampling

static void chain_depth(const nas_space *sp, int *lo, int *hi) {
    *lo = sp->depth_min > 0 ? sp->depth_min : 2;
    *hi = sp->depth_max > 0 ? sp->depth_max : 8;
    if (*hi > NAS_CHAIN_MAX_LAYERS) *hi = NAS_CHAIN_MAX_LAYERS;
    if (*lo > *hi) *lo = *hi;
}

static int fresh_id(const nas_chain *c) {
    for (int id = 0; id < 256; id++) {
        int used = 0;
        for (int k = 0; k < c->n_layers && !used; k++)
            used = c->layers[k].id == id;
        if (!used) return id;
    }
    return 0; /* unreachable: at most 12 ids are in use */
}

static nas_chain_layer random_layer(const int *ops, int n_ops, nas_rng *rng) {
    nas_chain_layer l;
    memset(&l, 0, sizeof l);
    l.op = (uint8_t)ops[nas_rng_below(rng, (uint32_t)n_ops)];
    if (nas_chain_op_has_width(l.op))
        l.width = (uint16_t)chain_widths[nas_rng_below(rng, N_WIDTHS)];
    return l;
}

/* Each layer k skips from each earlier h[j] with probability 1/4 (at most
 * NAS_CHAIN_MAX_SKIPS), so short and long skips are both common. */
static uint16_t random_skips(int k, nas_rng *rng) {
    unsigned s = 0;
    for (int j = 0; j <= k; j++)
        if (popcount16(s) < NAS_CHAIN_MAX_SKIPS && nas_rng_below(rng, 4) == 0) s |= 1u << j;
    return (uint16_t)s;
}

int nas__chain_sample(const nas_space *sp, const int *ops, int n_ops, nas_rng *rng,
                      nas_genome *out) {
    int lo, hi;
    chain_depth(sp, &lo, &hi);
    nas_genome g;
    memset(&g, 0, sizeof g);
    g.space = NAS_SPACE_CHAIN;
    g.chain.n_layers = lo + (int)nas_rng_below(rng, (uint32_t)(hi - lo + 1));
    for (int k = 0; k < g.chain.n_layers; k++) {
        g.chain.layers[k] = random_layer(ops, n_ops, rng);
        g.chain.layers[k].id = (uint8_t)k;
        g.chain.layers[k].skips = random_skips(k, rng);
    }
    *out = g;
    return NAS_OK;
}

// ---------------------------------------------------------------------------
// Mutation: plain moves and morphisms

/* Insert layer l at position k (0-based): skips from h[j >= k+1] shift up. */
static void insert_layer(nas_chain *c, int k, nas_chain_layer l) {
    memmove(&c->layers[k + 1], &c->layers[k], sizeof(nas_chain_layer) * (size_t)(c->n_layers - k));
    c->layers[k] = l;
    c->n_layers++;
    for (int i = k + 1; i < c->n_layers; i++) {
        unsigned s = c->layers[i].skips;
        unsigned low = s & ((1u << (k + 1)) - 1u), high = s >> (k + 1);
        c->layers[i].skips = (uint16_t)(low | (high << (k + 2)));
    }
}

/* The width a widened layer gets: half again, rounded up to 8 units. */
int nas_chain_widen_width(int w) {
    int n = (w * 3 / 2 + 7) / 8 * 8;
    if (n <= w) n = w + 8;
    return n > NAS_CHAIN_MAX_WIDTH ? NAS_CHAIN_MAX_WIDTH : n;
}

/* Draw one move of the given kind on chain c (into m and child); 0 if the
 * kind has no move on this chain. */
static int chain_draw(const nas_chain *c, int kind, int lo, int hi, const int *ops, int n_ops,
                      nas_rng *rng, nas_mutation *m, nas_chain *child) {
    *child = *c;
    memset(m, 0, sizeof *m);
    m->kind = kind;
    int k = (int)nas_rng_below(rng, (uint32_t)c->n_layers);
    nas_chain_layer *l = &child->layers[k];
    m->block = k;
    int units[NAS_CHAIN_MAX_LAYERS + 1];
    nas__chain_units(c, units);
    switch (kind) {
    case NAS_MUTATION_OP: {
        nas_chain_layer r = random_layer(ops, n_ops, rng);
        if (r.op == l->op) return 0;
        m->old_val = l->op;
        m->new_val = r.op;
        l->op = r.op;
        /* A layer that gains a width keeps its input's, so the change is the op alone. */
        l->width = nas_chain_op_has_width(r.op)
                       ? (uint16_t)(nas_chain_op_has_width(c->layers[k].op) ? c->layers[k].width
                                                                            : units[k])
                       : 0;
        return 1;
    }
    case NAS_MUTATION_WIDTH:
    case NAS_MUTATION_WIDEN: {
        if (!nas_chain_op_has_width(l->op)) return 0;
        int w = kind == NAS_MUTATION_WIDEN ? nas_chain_widen_width(l->width)
                                           : chain_widths[nas_rng_below(rng, N_WIDTHS)];
        if (w == l->width) return 0;
        m->old_val = l->width;
        m->new_val = w;
        l->width = (uint16_t)w;
        return 1;
    }
    case NAS_MUTATION_SKIP:
    case NAS_MUTATION_ADD_SKIP: {
        int j = (int)nas_rng_below(rng, (uint32_t)(k + 1));
        int has = (l->skips >> j) & 1u;
        if (kind == NAS_MUTATION_ADD_SKIP && has) return 0;
        if (!has && popcount16(l->skips) >= NAS_CHAIN_MAX_SKIPS) return 0;
        l->skips ^= (uint16_t)(1u << j);
        m->old_val = j;
        m->new_val = !has;
        if (kind == NAS_MUTATION_ADD_SKIP) m->old_val = 0, m->new_val = j;
        return 1;
    }
    case NAS_MUTATION_INSERT:
    case NAS_MUTATION_DEEPEN: {
        if (c->n_layers >= hi) return 0;
        nas_chain_layer n;
        if (kind == NAS_MUTATION_DEEPEN) {
            /* Net2DeeperNet: an identity conv3x3 as wide as what it reads. */
            memset(&n, 0, sizeof n);
            n.op = NAS_CHAIN_CONV3X3;
            n.width = (uint16_t)units[k + 1];
            if (n.width > NAS_CHAIN_MAX_WIDTH) return 0;
            m->new_val = NAS_CHAIN_CONV3X3;
            n.id = (uint8_t)fresh_id(c);
            insert_layer(child, k + 1, n);
            return 1;
        }
        int at = (int)nas_rng_below(rng, (uint32_t)(c->n_layers + 1));
        n = random_layer(ops, n_ops, rng);
        n.id = (uint8_t)fresh_id(c);
        insert_layer(child, at, n);
        m->block = at;
        m->new_val = n.op;
        return 1;
    }
    case NAS_MUTATION_REMOVE:
        if (c->n_layers <= lo || c->n_layers <= 1) return 0;
        m->old_val = l->op;
        remove_layer(child, k, -1);
        return 1;
    default:
        return 0;
    }
}

int nas__chain_mutate(const nas_genome *parent, const nas_space *sp, const int *ops, int n_ops,
                      nas_rng *rng, nas_genome *child, nas_mutation *what) {
    static const int plain[] = {NAS_MUTATION_OP, NAS_MUTATION_WIDTH, NAS_MUTATION_SKIP,
                                NAS_MUTATION_INSERT, NAS_MUTATION_REMOVE};
    static const int morph[] = {NAS_MUTATION_WIDEN, NAS_MUTATION_DEEPEN, NAS_MUTATION_ADD_SKIP};
    const int *kinds = sp->morphisms ? morph : plain;
    int n_kinds = sp->morphisms ? 3 : 5;
    int lo, hi;
    chain_depth(sp, &lo, &hi);
    nas_genome pc;
    nas_genome_canonical(parent, &pc);
    /* Draws rarely fail (an op drawn equal to the old one, a full skip
     * set); 256 tries find a move whenever one exists in practice. */
    for (int attempt = 0; attempt < 256; attempt++) {
        nas_mutation m;
        nas_genome c = *parent;
        int kind = kinds[nas_rng_below(rng, (uint32_t)n_kinds)];
        if (!chain_draw(&parent->chain, kind, lo, hi, ops, n_ops, rng, &m, &c.chain)) continue;
        if (nas_genome_validate(&c, NULL) < 0 || nas_genome_equivalent(&c, &pc)) continue;
        *child = c;
        if (what) *what = m;
        return NAS_OK;
    }
    return NAS_EGENOME;
}

int nas__chain_mutation_format(const nas_mutation *m, char *buf, size_t cap) {
    const char *on = nas_chain_op_name(m->old_val), *nn = nas_chain_op_name(m->new_val);
    int w;
    switch (m->kind) {
    case NAS_MUTATION_OP:
        w = snprintf(buf, cap, "op: layer %d %s -> %s", m->block, on ? on : "?", nn ? nn : "?");
        break;
    case NAS_MUTATION_WIDTH:
        w = snprintf(buf, cap, "width: layer %d %d -> %d", m->block, m->old_val, m->new_val);
        break;
    case NAS_MUTATION_SKIP:
        w = snprintf(buf, cap, "skip: layer %d %s h[%d]", m->block, m->new_val ? "adds" : "drops",
                     m->old_val);
        break;
    case NAS_MUTATION_INSERT:
        w = snprintf(buf, cap, "insert: %s at layer %d", nn ? nn : "?", m->block);
        break;
    case NAS_MUTATION_REMOVE:
        w = snprintf(buf, cap, "remove: layer %d (%s)", m->block, on ? on : "?");
        break;
    case NAS_MUTATION_WIDEN:
        w = snprintf(buf, cap, "morph widen: layer %d %d -> %d", m->block, m->old_val, m->new_val);
        break;
    case NAS_MUTATION_DEEPEN:
        w = snprintf(buf, cap, "morph deepen: identity conv3x3 after layer %d", m->block);
        break;
    case NAS_MUTATION_ADD_SKIP:
        w = snprintf(buf, cap, "morph skip: h[%d] into layer %d", m->new_val, m->block);
        break;
    default:
        w = snprintf(buf, cap, "unknown mutation kind %d", m->kind);
        break;
    }
    if (w < 0 || (size_t)w >= cap) return NAS_ERANGE;
    return w;
}

// ---------------------------------------------------------------------------
// Lineage: what changed from a parent chain to a child, matched by layer id.

/* The name of h[j] of chain c: "stem" or "L<id>" of the layer that wrote it. */
static void h_name(const nas_chain *c, int j, char *buf, size_t cap) {
    if (j == 0)
        snprintf(buf, cap, "stem");
    else
        snprintf(buf, cap, "L%d", c->layers[j - 1].id);
}

/* Index (0-based) of the layer with `id` in c, or -1. */
static int find_id(const nas_chain *c, int id) {
    for (int k = 0; k < c->n_layers; k++)
        if (c->layers[k].id == id) return k;
    return -1;
}

void nas__chain_lineage(const nas_chain *p, const nas_chain *c, nas__text *o) {
    size_t start = o->n;
    int pu[NAS_CHAIN_MAX_LAYERS + 1], cu[NAS_CHAIN_MAX_LAYERS + 1];
    nas__chain_units(p, pu);
    nas__chain_units(c, cu);
#define SEP() nas__text_put(o, "%s", o->n > start ? "; " : "")
    for (int k = 0; k < p->n_layers; k++)
        if (find_id(c, p->layers[k].id) < 0) {
            SEP();
            nas__text_put(o, "remove: L%d (%s)", p->layers[k].id, chain_op_names[p->layers[k].op]);
        }
    for (int k = 0; k < c->n_layers; k++) {
        const nas_chain_layer *l = &c->layers[k];
        int pk = find_id(p, l->id);
        char prev[16];
        h_name(c, k, prev, sizeof prev);
        if (pk < 0) {
            SEP();
            /* Net2DeeperNet's layer: a conv3x3 as wide as what it reads. */
            if (l->op == NAS_CHAIN_CONV3X3 && l->width == cu[k] && l->skips == 0)
                nas__text_put(o, "morph deepen: identity conv3x3 L%d after %s", l->id, prev);
            else
                nas__text_put(o, "insert: %s L%d after %s", chain_op_names[l->op], l->id, prev);
            continue;
        }
        const nas_chain_layer *q = &p->layers[pk];
        if (q->op != l->op) {
            SEP();
            nas__text_put(o, "op: L%d %s -> %s", l->id, chain_op_names[q->op],
                          chain_op_names[l->op]);
        } else if (q->width != l->width) {
            SEP();
            nas__text_put(o, "%s: L%d %d -> %d",
                          l->width == nas_chain_widen_width(q->width) ? "morph widen" : "width",
                          l->id, q->width, l->width);
        }
        /* Skips compared by the id of their source (indices shift; the stem is -1). */
        int src[2][NAS_CHAIN_MAX_SKIPS + 1], n_src[2] = {0, 0};
        for (int side = 0; side < 2; side++) {
            const nas_chain *ch = side ? c : p;
            const nas_chain_layer *ll = side ? l : q;
            for (int j = 0; j <= (side ? k : pk); j++)
                if (ll->skips & (1u << j)) src[side][n_src[side]++] = j ? ch->layers[j - 1].id : -1;
        }
        for (int side = 0; side < 2; side++)
            for (int a = 0; a < n_src[side]; a++) {
                int found = 0, id = src[side][a];
                for (int b = 0; b < n_src[!side]; b++)
                    found |= src[!side][b] == id;
                /* A skip from a removed layer went with it (said above). */
                if (found || (!side && id >= 0 && find_id(c, id) < 0)) continue;
                char from[16] = "stem";
                if (id >= 0) snprintf(from, sizeof from, "L%d", id);
                SEP();
                nas__text_put(o, "%s: %s -> L%d", side ? "morph skip" : "skip dropped", from,
                              l->id);
            }
    }
#undef SEP
    if (o->n == start) nas__text_put(o, "same layers");
}
