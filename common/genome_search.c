/*
 * genome_search.c - identity (canonical form, hash) and search moves
 * (mutation, sampling, PNAS expansion) of the cell space; the NB201
 * counterparts live in genome_nb201.c and are dispatched from here.
 *
 * Equivalence of cells, exactly (docs/GENOME.md has the long form):
 *  1. the two halves of a block are unordered (their sum commutes);
 *  2. the order of independent blocks is free: any topological numbering
 *     builds the same network, and the output concatenation feeds a 1x1
 *     convolution, so its order is a permutation of that conv's weights;
 *  3. a `zero` half contributes nothing, so its input does not matter
 *     (written 0 in canonical form);
 *  4. a "dead" block, whose every consumer reads it through `zero`,
 *     contributes nothing either and is not built: it is dropped.  By the
 *     architecture rule a block that some later block reads, even through `zero`,
 *     is not part of the output concatenation, so dropping it keeps every
 *     other block's role.  Without `zero` in the op set no block is dead.
 * Identical blocks are NOT merged: each has its own weights and its own
 * channels in the concatenation, so the networks differ.
 *
 * The canonical numbering is a canonical labelling of a small DAG: blocks
 * are ordered by an isomorphism invariant (height, structural signature);
 * blocks tied on it are tried in every order and the lexicographically
 * smallest encoding wins.  Ties are rare and a cell has at most 8 blocks,
 * so the search is small; the result does not depend on the input order.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_internal.h"

#include <string.h>

// ---------------------------------------------------------------------------
// Canonical form of a cell

/* 64-bit mix of two values (splitmix finaliser over a combination).  It
 * only orders blocks for the canonical search, so collisions cost time
 * (a bigger tie group), never correctness. */
static uint64_t mix2(uint64_t a, uint64_t b) {
    return nas_mix64(a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull));
}

void nas__cell_live(const nas_cell *c, int *live, int *output) {
    int used_any[NAS_MAX_BLOCKS] = {0}, live_use[NAS_MAX_BLOCKS] = {0};
    for (int k = 0; k < c->n_blocks; k++) {
        if (c->blocks[k].in_a >= 2) used_any[c->blocks[k].in_a - 2] = 1;
        if (c->blocks[k].in_b >= 2) used_any[c->blocks[k].in_b - 2] = 1;
    }
    /* Walk backwards: a block's liveness is final once every later block
     * has been decided, and it then marks its non-zero inputs. */
    for (int k = c->n_blocks - 1; k >= 0; k--) {
        const nas_block *b = &c->blocks[k];
        live[k] = !used_any[k] || live_use[k];
        if (output) output[k] = !used_any[k];
        if (!live[k]) continue;
        if (b->op_a != NAS_OP_ZERO && b->in_a >= 2) live_use[b->in_a - 2] = 1;
        if (b->op_b != NAS_OP_ZERO && b->in_b >= 2) live_use[b->in_b - 2] = 1;
    }
}

/* Drop dead blocks and write zero halves' inputs as 0 (rules 3 and 4).
 * Returns the live cell in the original relative order. */
static void cell_prune(const nas_cell *in, nas_cell *out) {
    int n = in->n_blocks, live[NAS_MAX_BLOCKS];
    nas__cell_live(in, live, NULL);
    int remap[NAS_MAX_BLOCKS], m = 0;
    nas_cell c;
    memset(&c, 0, sizeof c);
    for (int k = 0; k < n; k++) {
        remap[k] = live[k] ? m : -1;
        if (!live[k]) continue;
        nas_block b = in->blocks[k];
        /* A live block's non-zero halves read only live blocks. */
        if (b.op_a == NAS_OP_ZERO)
            b.in_a = 0;
        else if (b.in_a >= 2)
            b.in_a = (uint8_t)(remap[b.in_a - 2] + 2);
        if (b.op_b == NAS_OP_ZERO)
            b.in_b = 0;
        else if (b.in_b >= 2)
            b.in_b = (uint8_t)(remap[b.in_b - 2] + 2);
        c.blocks[m++] = b;
    }
    c.n_blocks = m;
    *out = c;
}

/* State of the tie-breaking search: the candidate numberings are exactly the
 * orders that respect the sorted invariant keys; the smallest encoding wins. */
typedef struct canon_search {
    const nas_cell *cell;          /* pruned cell, original order */
    int n;                         /* blocks */
    int order[NAS_MAX_BLOCKS];     /* blocks sorted by (height, sig) */
    int group_end[NAS_MAX_BLOCKS]; /* for sorted position p: end of its tie group */
    int perm[NAS_MAX_BLOCKS];      /* current candidate: position -> block */
    int taken[NAS_MAX_BLOCKS];
    uint8_t swap_ok[NAS_MAX_BLOCKS][NAS_MAX_BLOCKS]; /* swapping i, j maps the cell onto itself */
    uint8_t best[NAS_MAX_BLOCKS * 4];
    int have_best;
} canon_search;

/* Encode the candidate numbering perm[] as bytes: per block its two halves
 * renumbered and ordered by (input, op). */
static void canon_encode(const canon_search *s, uint8_t *enc) {
    int pos[NAS_MAX_BLOCKS];
    for (int p = 0; p < s->n; p++)
        pos[s->perm[p]] = p;
    for (int p = 0; p < s->n; p++) {
        const nas_block *b = &s->cell->blocks[s->perm[p]];
        int ia = b->in_a < 2 ? b->in_a : pos[b->in_a - 2] + 2;
        int ib = b->in_b < 2 ? b->in_b : pos[b->in_b - 2] + 2;
        int oa = b->op_a, ob = b->op_b;
        if (ib < ia || (ib == ia && ob < oa)) {
            int t = ia;
            ia = ib;
            ib = t;
            t = oa;
            oa = ob;
            ob = t;
        }
        enc[4 * p + 0] = (uint8_t)ia;
        enc[4 * p + 1] = (uint8_t)oa;
        enc[4 * p + 2] = (uint8_t)ib;
        enc[4 * p + 3] = (uint8_t)ob;
    }
}

/* A block's two halves as one order-free key, for comparing blocks. */
static uint32_t block_key(int ia, int oa, int ib, int ob) {
    uint32_t x = (uint32_t)(ia << 8 | oa), y = (uint32_t)(ib << 8 | ob);
    return x < y ? x << 16 | y : y << 16 | x;
}

/* 1 if exchanging blocks x and y (and every reference to them) maps the
 * cell onto itself.  Then any numbering that puts x at a position has a
 * mirror image putting y there with the same encoding, so the search needs
 * to try only one of them: eight identical output blocks take one leaf
 * instead of 8! = 40,320. */
static int swap_is_automorphism(const nas_cell *c, int x, int y) {
    for (int k = 0; k < c->n_blocks; k++) {
        const nas_block *b = &c->blocks[k];
        int m = k == x ? y : k == y ? x : k; /* where block k's image must be */
        int ia = b->in_a, ib = b->in_b;
        ia = ia == x + 2 ? y + 2 : ia == y + 2 ? x + 2 : ia;
        ib = ib == x + 2 ? y + 2 : ib == y + 2 ? x + 2 : ib;
        const nas_block *t = &c->blocks[m];
        if (block_key(ia, b->op_a, ib, b->op_b) != block_key(t->in_a, t->op_a, t->in_b, t->op_b))
            return 0;
    }
    return 1;
}

/* Try every order of the blocks inside each tie group (positions are
 * filled left to right; a group occupies a contiguous run of positions),
 * skipping a candidate that is a mirror image of one already tried here. */
static void canon_try(canon_search *s, int p) {
    if (p == s->n) {
        uint8_t enc[NAS_MAX_BLOCKS * 4];
        canon_encode(s, enc);
        if (!s->have_best || memcmp(enc, s->best, (size_t)(4 * s->n)) < 0) {
            memcpy(s->best, enc, (size_t)(4 * s->n));
            s->have_best = 1;
        }
        return;
    }
    int start = p;
    while (start > 0 && s->group_end[start - 1] == s->group_end[p])
        start--;
    int tried[NAS_MAX_BLOCKS], n_tried = 0;
    for (int q = start; q < s->group_end[p]; q++) {
        int blk = s->order[q], mirror = 0;
        if (s->taken[blk]) continue;
        for (int t = 0; t < n_tried && !mirror; t++)
            mirror = s->swap_ok[tried[t]][blk];
        if (mirror) continue;
        tried[n_tried++] = blk;
        s->taken[blk] = 1;
        s->perm[p] = blk;
        canon_try(s, p + 1);
        s->taken[blk] = 0;
    }
}

void nas__cell_canonical(const nas_cell *in, nas_cell *out) {
    nas_cell c;
    cell_prune(in, &c);
    int n = c.n_blocks;
    uint64_t sig[NAS_MAX_BLOCKS + 2];
    int height[NAS_MAX_BLOCKS + 2];
    sig[0] = 0x1234567ull;
    sig[1] = 0x89abcdefull;
    height[0] = height[1] = 0;
    for (int k = 0; k < n; k++) {
        const nas_block *b = &c.blocks[k];
        uint64_t ha = mix2(b->op_a, sig[b->in_a]), hb = mix2(b->op_b, sig[b->in_b]);
        sig[k + 2] = ha < hb ? mix2(ha, hb) : mix2(hb, ha);
        int h = height[b->in_a] > height[b->in_b] ? height[b->in_a] : height[b->in_b];
        height[k + 2] = h + 1;
    }
    canon_search s;
    memset(&s, 0, sizeof s);
    s.cell = &c;
    s.n = n;
    /* Insertion sort by (height, sig): inputs always have a lower height,
     * so the sorted order is topological and so is any order within a tie. */
    for (int k = 0; k < n; k++)
        s.order[k] = k;
    for (int i = 1; i < n; i++) {
        int v = s.order[i], j = i - 1;
        while (j >= 0 &&
               (height[s.order[j] + 2] > height[v + 2] ||
                (height[s.order[j] + 2] == height[v + 2] && sig[s.order[j] + 2] > sig[v + 2]))) {
            s.order[j + 1] = s.order[j];
            j--;
        }
        s.order[j + 1] = v;
    }
    for (int p = n - 1; p >= 0; p--) {
        int same = p + 1 < n && height[s.order[p] + 2] == height[s.order[p + 1] + 2] &&
                   sig[s.order[p] + 2] == sig[s.order[p + 1] + 2];
        s.group_end[p] = same ? s.group_end[p + 1] : p + 1;
    }
    for (int p = 0; p < n; p++) { /* only blocks in one tie group can be mirrors */
        for (int q = p + 1; q < s.group_end[p]; q++) {
            int x = s.order[p], y = s.order[q];
            s.swap_ok[x][y] = s.swap_ok[y][x] = (uint8_t)swap_is_automorphism(&c, x, y);
        }
    }
    canon_try(&s, 0);
    nas_cell r;
    memset(&r, 0, sizeof r);
    r.n_blocks = n;
    for (int p = 0; p < n; p++) {
        r.blocks[p].in_a = s.best[4 * p + 0];
        r.blocks[p].op_a = s.best[4 * p + 1];
        r.blocks[p].in_b = s.best[4 * p + 2];
        r.blocks[p].op_b = s.best[4 * p + 3];
    }
    *out = r;
}

void nas_genome_canonical(const nas_genome *in, nas_genome *out) {
    /* The labelling indexes arrays by input values, so only a validated
     * genome may enter; anything else is passed through untouched (and
     * hashes to 0), which keeps "never crashes on any input" true. */
    if (nas_genome_validate(in, NULL) < 0) {
        if (out != in) *out = *in;
        return;
    }
    nas_genome g;
    memset(&g, 0, sizeof g);
    g.space = in->space;
    if (in->space == NAS_SPACE_NB201) {
        nas__nb201_canonical(in->nb201, g.nb201);
    } else if (in->space == NAS_SPACE_MBCONV) {
        nas__mb_canonical(&in->mb, &g.mb);
    } else if (in->space == NAS_SPACE_CHAIN) {
        nas__chain_canonical(&in->chain, &g.chain);
    } else if (in->space == NAS_SPACE_HIER) {
        nas__hier_canonical(&in->hier, &g.hier);
    } else {
        g.shared = in->shared;
        nas__cell_canonical(&in->normal, &g.normal);
        if (in->shared)
            g.reduce = g.normal;
        else
            nas__cell_canonical(&in->reduce, &g.reduce);
    }
    *out = g;
}

// ---------------------------------------------------------------------------
// Hash and equivalence

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv_cell(uint64_t h, const nas_cell *c) {
    uint8_t nb = (uint8_t)c->n_blocks;
    h = fnv(h, &nb, 1);
    for (int k = 0; k < c->n_blocks; k++) {
        const nas_block *b = &c->blocks[k];
        uint8_t bytes[4] = {b->in_a, b->op_a, b->in_b, b->op_b};
        h = fnv(h, bytes, 4);
    }
    return h;
}

/* Byte encoding: version 1, space, then either both cells (the shared flag
 * is left out: a shared genome and an unshared one with equal cells build
 * the same network) or the six NB201 edges. */
uint64_t nas_genome_hash(const nas_genome *g) {
    if (nas_genome_validate(g, NULL) < 0) return 0; /* FNV never yields 0 here in practice */
    nas_genome c;
    nas_genome_canonical(g, &c);
    uint8_t head[2] = {1, (uint8_t)c.space};
    uint64_t h = fnv(FNV_OFFSET, head, 2);
    if (c.space == NAS_SPACE_NB201) return fnv(h, c.nb201, NAS_NB201_EDGES);
    if (c.space == NAS_SPACE_MBCONV) {
        uint8_t bytes[5 + 8 * NAS_MB_MAX_STAGES];
        return fnv(h, bytes, (size_t)nas__mb_encode(&c.mb, bytes));
    }
    if (c.space == NAS_SPACE_CHAIN) {
        uint8_t enc[1 + 5 * NAS_CHAIN_MAX_LAYERS];
        return fnv(h, enc, (size_t)nas__chain_encode(&c.chain, enc));
    }
    if (c.space == NAS_SPACE_HIER) {
        uint8_t enc[NAS__HIER_ENC_MAX];
        return fnv(h, enc, (size_t)nas__hier_encode(&c.hier, enc));
    }
    h = fnv_cell(h, &c.normal);
    return fnv_cell(h, &c.reduce);
}

int nas_genome_equivalent(const nas_genome *a, const nas_genome *b) {
    if (nas_genome_validate(a, NULL) < 0 || nas_genome_validate(b, NULL) < 0) return 0;
    if (a->space != b->space) return 0;
    nas_genome ca, cb;
    nas_genome_canonical(a, &ca);
    nas_genome_canonical(b, &cb);
    if (ca.space == NAS_SPACE_NB201) return memcmp(ca.nb201, cb.nb201, NAS_NB201_EDGES) == 0;
    if (ca.space == NAS_SPACE_MBCONV) return memcmp(&ca.mb, &cb.mb, sizeof ca.mb) == 0;
    if (ca.space == NAS_SPACE_CHAIN) { /* layer ids are names, not structure */
        uint8_t ea[1 + 5 * NAS_CHAIN_MAX_LAYERS], eb[1 + 5 * NAS_CHAIN_MAX_LAYERS];
        int na = nas__chain_encode(&ca.chain, ea), nb = nas__chain_encode(&cb.chain, eb);
        return na == nb && memcmp(ea, eb, (size_t)na) == 0;
    }
    if (ca.space == NAS_SPACE_HIER) { /* unused motifs build nothing */
        uint8_t ea[NAS__HIER_ENC_MAX], eb[NAS__HIER_ENC_MAX];
        int na = nas__hier_encode(&ca.hier, ea), nb = nas__hier_encode(&cb.hier, eb);
        return na == nb && memcmp(ea, eb, (size_t)na) == 0;
    }
    return nas__cell_equal(&ca.normal, &cb.normal) && nas__cell_equal(&ca.reduce, &cb.reduce);
}

// ---------------------------------------------------------------------------
// Op sets

/* Ops of a space kind. */
static int kind_ops(int kind) {
    return kind == NAS_SPACE_NB201   ? NAS_NB201_OP_COUNT
           : kind == NAS_SPACE_CHAIN ? NAS_CHAIN_OP_COUNT
           : kind == NAS_SPACE_HIER  ? NAS_HIER_OP_COUNT
                                     : NAS_OP_COUNT;
}

uint32_t nas__space_ops(const nas_space *sp) {
    int n = kind_ops(sp->kind);
    uint32_t all = (1u << n) - 1u;
    uint32_t m = sp->op_mask ? sp->op_mask : nas_space_default_ops(sp->kind);
    return m & all;
}

int nas__mask_list(uint32_t mask, int n_ops, int *ops) {
    int n = 0;
    for (int i = 0; i < n_ops; i++)
        if (mask & (1u << i)) ops[n++] = i;
    return n;
}

/* Checks shared by sample/expand/enumerate: known kind, usable op set.
 * A mask with only `zero` (or only NB201 `none`) could never produce a
 * valid, non-trivial genome, so it is refused up front rather than looping. */
static int space_check(const nas_space *sp, int *ops, int *n_ops) {
    if (sp == NULL) return NAS_EINVAL;
    if (sp->kind != NAS_SPACE_CELL && sp->kind != NAS_SPACE_NB201 && sp->kind != NAS_SPACE_CHAIN &&
        sp->kind != NAS_SPACE_HIER)
        return NAS_EINVAL;
    int total = kind_ops(sp->kind);
    uint32_t m = nas__space_ops(sp);
    *n_ops = nas__mask_list(m, total, ops);
    /* A cell needs a non-zero op; NB201 needs something besides `none`. */
    uint32_t useful = sp->kind == NAS_SPACE_NB201 || sp->kind == NAS_SPACE_HIER ? m & ~1u
                      : sp->kind == NAS_SPACE_CHAIN ? m
                                                    : m & ~(1u << NAS_OP_ZERO);
    if (useful == 0) return NAS_EINVAL;
    return NAS_OK;
}

// ---------------------------------------------------------------------------
// Sampling

static void sample_cell(nas_cell *c, int n_blocks, const int *ops, int n_ops, nas_rng *rng) {
    memset(c, 0, sizeof *c);
    c->n_blocks = n_blocks;
    for (int k = 0; k < n_blocks; k++) {
        nas_block *b = &c->blocks[k];
        do { /* rejection keeps the draw uniform over valid blocks */
            b->in_a = (uint8_t)nas_rng_below(rng, (uint32_t)(k + 2));
            b->op_a = (uint8_t)ops[nas_rng_below(rng, (uint32_t)n_ops)];
            b->in_b = (uint8_t)nas_rng_below(rng, (uint32_t)(k + 2));
            b->op_b = (uint8_t)ops[nas_rng_below(rng, (uint32_t)n_ops)];
        } while (b->op_a == NAS_OP_ZERO && b->op_b == NAS_OP_ZERO);
    }
}

int nas__nb201_sample(const int *ops, int n_ops, nas_rng *rng, nas_genome *out);

int nas_genome_sample(const nas_space *sp, nas_rng *rng, nas_genome *out) {
    int ops[NAS_OP_COUNT], n_ops;
    if (rng == NULL || out == NULL) return NAS_EINVAL;
    if (sp != NULL && sp->kind == NAS_SPACE_MBCONV) return nas__mb_sample(sp, rng, out);
    int rc = space_check(sp, ops, &n_ops);
    if (rc < 0) return rc;
    nas_genome g;
    memset(&g, 0, sizeof g);
    if (sp->kind == NAS_SPACE_NB201) return nas__nb201_sample(ops, n_ops, rng, out);
    if (sp->kind == NAS_SPACE_CHAIN) return nas__chain_sample(sp, ops, n_ops, rng, out);
    if (sp->kind == NAS_SPACE_HIER) return nas__hier_sample(sp, ops, n_ops, rng, out);
    if (sp->n_blocks < 1 || sp->n_blocks > NAS_MAX_BLOCKS) return NAS_EINVAL;
    g.space = NAS_SPACE_CELL;
    g.shared = sp->shared ? 1 : 0;
    sample_cell(&g.normal, sp->n_blocks, ops, n_ops, rng);
    if (g.shared)
        g.reduce = g.normal;
    else
        sample_cell(&g.reduce, sp->n_blocks, ops, n_ops, rng);
    *out = g;
    return NAS_OK;
}

// ---------------------------------------------------------------------------
// Mutation (Real et al. 2019, "Regularized evolution", s2 and fig. 2)

/* Apply a described mutation to a copy of the parent. Returns 1 if the
 * child is valid and differs from the parent in canonical form.  Comparing
 * canonical forms matters: changing the input of a `zero` half, or the op
 * of a dead block, changes the encoding but not the network, and evolution
 * would waste a training run on a clone. */
static int mutation_apply(const nas_genome *parent, const nas_genome *pcanon, const nas_mutation *m,
                          nas_genome *child) {
    *child = *parent;
    if (parent->space == NAS_SPACE_NB201) {
        child->nb201[m->block] = (uint8_t)m->new_val;
    } else {
        nas_cell *c = m->cell == 0 ? &child->normal : &child->reduce;
        nas_block *b = &c->blocks[m->block];
        if (m->kind == NAS_MUTATION_OP) {
            if (m->half)
                b->op_b = (uint8_t)m->new_val;
            else
                b->op_a = (uint8_t)m->new_val;
        } else {
            if (m->half)
                b->in_b = (uint8_t)m->new_val;
            else
                b->in_a = (uint8_t)m->new_val;
        }
        if (child->shared) child->reduce = child->normal;
    }
    if (nas_genome_validate(child, NULL) < 0) return 0;
    nas_genome cc;
    nas_genome_canonical(child, &cc);
    return !nas_genome_equivalent(&cc, pcanon);
}

/* Every single mutation of the parent (both kinds), for the exhaustive
 * fallback; returns the count written to ms (cap entries at most).  At most
 * 2 cells x 8 blocks x 2 halves x (11 ops + 9 inputs) moves. */
static int mutation_list(const nas_genome *g, const int *ops, int n_ops, nas_mutation *ms,
                         int cap) {
    int n = 0;
    if (g->space == NAS_SPACE_NB201) {
        for (int e = 0; e < NAS_NB201_EDGES; e++)
            for (int i = 0; i < n_ops; i++)
                if (ops[i] != g->nb201[e] && n < cap)
                    ms[n++] = (nas_mutation){NAS_MUTATION_OP, 0, e, 0, g->nb201[e], ops[i]};
        return n;
    }
    int cells = g->shared ? 1 : 2;
    for (int ci = 0; ci < cells; ci++) {
        const nas_cell *c = ci == 0 ? &g->normal : &g->reduce;
        for (int k = 0; k < c->n_blocks; k++) {
            for (int h = 0; h < 2; h++) {
                int op = h ? c->blocks[k].op_b : c->blocks[k].op_a;
                int in = h ? c->blocks[k].in_b : c->blocks[k].in_a;
                for (int i = 0; i < n_ops; i++)
                    if (ops[i] != op && n < cap)
                        ms[n++] = (nas_mutation){NAS_MUTATION_OP, ci, k, h, op, ops[i]};
                for (int v = 0; v < k + 2; v++)
                    if (v != in && n < cap)
                        ms[n++] = (nas_mutation){NAS_MUTATION_HIDDEN, ci, k, h, in, v};
            }
        }
    }
    return n;
}

/* Draw one random mutation of the given kind; 0 if the kind has no move. */
static int mutation_draw(const nas_genome *g, int kind, const int *ops, int n_ops, nas_rng *rng,
                         nas_mutation *m) {
    memset(m, 0, sizeof *m);
    m->kind = kind;
    if (g->space == NAS_SPACE_NB201) {
        m->kind = NAS_MUTATION_OP; /* NB201 has fixed wiring: only ops change */
        m->block = (int)nas_rng_below(rng, NAS_NB201_EDGES);
        m->old_val = g->nb201[m->block];
        if (n_ops < 2 && ops[0] == m->old_val) return 0;
        do
            m->new_val = ops[nas_rng_below(rng, (uint32_t)n_ops)];
        while (m->new_val == m->old_val);
        return 1;
    }
    m->cell = g->shared ? 0 : (int)nas_rng_below(rng, 2);
    const nas_cell *c = m->cell == 0 ? &g->normal : &g->reduce;
    m->block = (int)nas_rng_below(rng, (uint32_t)c->n_blocks);
    m->half = (int)nas_rng_below(rng, 2);
    const nas_block *b = &c->blocks[m->block];
    if (kind == NAS_MUTATION_OP) {
        m->old_val = m->half ? b->op_b : b->op_a;
        if (n_ops == 1 && ops[0] == m->old_val) return 0;
        do
            m->new_val = ops[nas_rng_below(rng, (uint32_t)n_ops)];
        while (m->new_val == m->old_val);
    } else {
        m->old_val = m->half ? b->in_b : b->in_a;
        /* Any of 0, 1 and the earlier blocks: the cell stays acyclic. */
        m->new_val = (int)nas_rng_below(rng, (uint32_t)(m->block + 1));
        if (m->new_val >= m->old_val) m->new_val++;
    }
    return 1;
}

int nas_genome_mutate(const nas_genome *parent, const nas_space *sp, float p_identity, nas_rng *rng,
                      nas_genome *child, nas_mutation *what) {
    int ops[NAS_OP_COUNT], n_ops;
    if (parent == NULL || rng == NULL || child == NULL) return NAS_EINVAL;
    if (nas_genome_validate(parent, NULL) < 0) return NAS_EGENOME;
    if (sp != NULL && sp->kind == NAS_SPACE_MBCONV && parent->space == NAS_SPACE_MBCONV) {
        if (p_identity > 0 && nas_rng_uniform(rng) < p_identity) {
            *child = *parent;
            if (what) memset(what, 0, sizeof *what);
            return NAS_OK;
        }
        return nas__mb_mutate(parent, sp, rng, child, what);
    }
    int rc = space_check(sp, ops, &n_ops);
    if (rc < 0) return rc;
    if (sp->kind != parent->space) return NAS_EINVAL;
    nas_mutation m;
    memset(&m, 0, sizeof m);
    if (p_identity > 0 && nas_rng_uniform(rng) < p_identity) {
        *child = *parent;
        if (what) *what = m;
        return NAS_OK;
    }
    if (parent->space == NAS_SPACE_CHAIN)
        return nas__chain_mutate(parent, sp, ops, n_ops, rng, child, what);
    if (parent->space == NAS_SPACE_HIER)
        return nas__hier_mutate(parent, sp, ops, n_ops, rng, child, what);
    nas_genome pc, c;
    nas_genome_canonical(parent, &pc);
    /* Random draws almost always succeed at once; a change that leaves the
     * canonical form alone (a dead half, an op swapped into a mirror image)
     * is redrawn, and after 64 misses every move is listed instead. */
    for (int attempt = 0; attempt < 64; attempt++) {
        int kind = nas_rng_below(rng, 2) ? NAS_MUTATION_HIDDEN : NAS_MUTATION_OP;
        if (!mutation_draw(parent, kind, ops, n_ops, rng, &m)) continue;
        if (mutation_apply(parent, &pc, &m, &c)) goto done;
    }
    nas_mutation *all = nas_malloc(sizeof(nas_mutation) * 2 * NAS_MAX_BLOCKS * 2 *
                                   (NAS_OP_COUNT + NAS_MAX_BLOCKS + 2));
    if (all == NULL) return NAS_ENOMEM;
    int n = mutation_list(parent, ops, n_ops, all,
                          2 * NAS_MAX_BLOCKS * 2 * (NAS_OP_COUNT + NAS_MAX_BLOCKS + 2));
    int good = 0;
    for (int i = 0; i < n; i++) /* keep the ones that change the network */
        if (mutation_apply(parent, &pc, &all[i], &c)) all[good++] = all[i];
    if (good == 0) {
        nas_free(all);
        return NAS_EGENOME;
    }
    m = all[nas_rng_below(rng, (uint32_t)good)];
    nas_free(all);
    mutation_apply(parent, &pc, &m, &c);
done:
    *child = c;
    if (what) *what = m;
    return NAS_OK;
}

// ---------------------------------------------------------------------------
// PNAS expansion and level-1 enumeration

/* Growable genome list; the hash of each entry is kept beside it. */
typedef struct glist {
    nas_genome *g;
    uint64_t *h; /* hashes in insertion order */
    int n, cap;
} glist;

static int glist_push(glist *l, const nas_genome *g, uint64_t h) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 256;
        nas_genome *ng = nas_realloc(l->g, sizeof(nas_genome) * (size_t)nc);
        if (ng == NULL) return NAS_ENOMEM;
        l->g = ng;
        uint64_t *nh = nas_realloc(l->h, sizeof(uint64_t) * (size_t)nc);
        if (nh == NULL) return NAS_ENOMEM;
        l->h = nh;
        l->cap = nc;
    }
    l->g[l->n] = *g;
    l->h[l->n] = h;
    l->n++;
    return NAS_OK;
}

/* Open-addressing hash set of 64-bit hashes (0 is remapped, never stored).
 * Expansion of a 4-block cell tries ~3,600 ordered block pairs; a linear
 * scan per candidate would be quadratic in that. */
typedef struct hset {
    uint64_t *slot;
    size_t cap, n;
} hset;

static int hset_add(hset *s, uint64_t h) {
    if (h == 0) h = 1;
    if ((s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        uint64_t *ns = nas_calloc(nc, sizeof(uint64_t));
        if (ns == NULL) return NAS_ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            uint64_t v = s->slot[i];
            if (!v) continue;
            size_t j = v & (nc - 1);
            while (ns[j])
                j = (j + 1) & (nc - 1);
            ns[j] = v;
        }
        nas_free(s->slot);
        s->slot = ns;
        s->cap = nc;
    }
    size_t j = h & (s->cap - 1);
    while (s->slot[j]) {
        if (s->slot[j] == h) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slot[j] = h;
    s->n++;
    return 1;
}

/* All distinct canonical cells that extend `c` by one block (with zero
 * halves, only those that really keep every old block alive). */
static int cell_extensions(const nas_cell *c, const int *ops, int n_ops, glist *out) {
    int b = c->n_blocks, rc = NAS_OK;
    nas_cell base;
    nas__cell_canonical(c, &base);
    hset seen = {0};
    for (int ia = 0; ia < b + 2; ia++)
        for (int oa = 0; oa < n_ops; oa++)
            for (int ib = ia; ib < b + 2; ib++) /* halves unordered: ib >= ia */
                for (int ob = 0; ob < n_ops; ob++) {
                    nas_genome g;
                    memset(&g, 0, sizeof g);
                    g.space = NAS_SPACE_CELL;
                    g.normal = *c;
                    g.normal.blocks[b] =
                        (nas_block){(uint8_t)ia, (uint8_t)ops[oa], (uint8_t)ib, (uint8_t)ops[ob]};
                    g.normal.n_blocks = b + 1;
                    if (ops[oa] == NAS_OP_ZERO && ops[ob] == NAS_OP_ZERO) continue;
                    nas_cell canon;
                    nas__cell_canonical(&g.normal, &canon);
                    if (canon.n_blocks != base.n_blocks + 1) continue;
                    g.reduce = g.normal;
                    uint64_t h = nas_genome_hash(&g);
                    int added = hset_add(&seen, h);
                    if (added < 0) {
                        rc = added;
                        goto fail;
                    }
                    if (added && (rc = glist_push(out, &g, h)) < 0) goto fail;
                }
fail:
    nas_free(seen.slot);
    return rc;
}

#define NAS_EXPAND_MAX 1000000 /* children of one genome: beyond this, refuse */

int nas__nb201_expand(const nas_genome *g, const int *ops, int n_ops, int level_want,
                      nas_genome **children);

/* Children of (normal, reduce) pairs: the shared case has one cell list.
 * Unshared children are the product of the two cells' extensions; they are
 * distinct by construction because each factor list is already distinct. */
static int expand_cells(const nas_cell *normal, const nas_cell *reduce, int shared, const int *ops,
                        int n_ops, nas_genome **children) {
    glist ln = {0}, lr = {0}, res = {0};
    int rc = cell_extensions(normal, ops, n_ops, &ln);
    if (rc < 0) goto fail;
    if (!shared && (rc = cell_extensions(reduce, ops, n_ops, &lr)) < 0) goto fail;
    long total = shared ? ln.n : (long)ln.n * lr.n;
    if (total > NAS_EXPAND_MAX) {
        rc = NAS_ERANGE;
        goto fail;
    }
    if (shared) {
        for (int i = 0; i < ln.n; i++) {
            ln.g[i].shared = 1;
        }
        res = ln;
        ln = (glist){0};
    } else {
        for (int i = 0; i < ln.n; i++)
            for (int j = 0; j < lr.n; j++) {
                nas_genome g = ln.g[i];
                g.shared = 0;
                g.reduce = lr.g[j].normal;
                if ((rc = glist_push(&res, &g, 0)) < 0) goto fail;
            }
    }
    nas_free(ln.g);
    nas_free(ln.h);
    nas_free(lr.g);
    nas_free(lr.h);
    nas_free(res.h);
    if (res.n == 0) {
        nas_free(res.g);
        res.g = NULL;
    }
    *children = res.g;
    return res.n;
fail:
    nas_free(ln.g);
    nas_free(ln.h);
    nas_free(lr.g);
    nas_free(lr.h);
    nas_free(res.g);
    nas_free(res.h);
    return rc;
}

int nas_genome_expand(const nas_genome *g, const nas_space *sp, nas_genome **children) {
    int ops[NAS_OP_COUNT], n_ops;
    if (g == NULL || children == NULL) return NAS_EINVAL;
    *children = NULL;
    if (nas_genome_validate(g, NULL) < 0) return NAS_EGENOME;
    int rc = space_check(sp, ops, &n_ops);
    if (rc < 0) return rc;
    if (sp->kind != g->space) return NAS_EINVAL;
    if (g->space == NAS_SPACE_CHAIN || g->space == NAS_SPACE_HIER)
        return NAS_EUNSUPPORTED; /* no PNAS levels (GENOME.md s10, s11) */
    if (g->space == NAS_SPACE_NB201) {
        int lvl = nas__nb201_level(g->nb201);
        if (lvl >= 2) return 0;
        return nas__nb201_expand(g, ops, n_ops, lvl + 1, children);
    }
    int limit = sp->n_blocks >= 1 && sp->n_blocks <= NAS_MAX_BLOCKS ? sp->n_blocks : NAS_MAX_BLOCKS;
    if (g->normal.n_blocks >= limit || g->reduce.n_blocks >= limit) return 0;
    return expand_cells(&g->normal, &g->reduce, g->shared, ops, n_ops, children);
}

int nas_genome_level(const nas_genome *g) {
    if (g == NULL || nas_genome_validate(g, NULL) < 0) return NAS_EGENOME;
    if (g->space == NAS_SPACE_MBCONV || g->space == NAS_SPACE_HIER)
        return NAS_EINVAL; /* no PNAS levels (GENOME.md s8, s11) */
    if (g->space == NAS_SPACE_NB201) return nas__nb201_level(g->nb201);
    if (g->space == NAS_SPACE_CHAIN) return g->chain.n_layers;
    nas_genome c;
    nas_genome_canonical(g, &c);
    return c.normal.n_blocks > c.reduce.n_blocks ? c.normal.n_blocks : c.reduce.n_blocks;
}

int nas_genome_enumerate_level1(const nas_space *sp, nas_genome **out) {
    int ops[NAS_OP_COUNT], n_ops;
    if (out == NULL) return NAS_EINVAL;
    *out = NULL;
    int rc = space_check(sp, ops, &n_ops);
    if (rc < 0) return rc;
    if (sp->kind == NAS_SPACE_CHAIN || sp->kind == NAS_SPACE_HIER) return NAS_EUNSUPPORTED;
    if (sp->kind == NAS_SPACE_NB201) {
        nas_genome empty;
        memset(&empty, 0, sizeof empty);
        empty.space = NAS_SPACE_NB201;
        return nas__nb201_expand(&empty, ops, n_ops, 1, out);
    }
    nas_cell empty;
    memset(&empty, 0, sizeof empty);
    return expand_cells(&empty, &empty, sp->shared ? 1 : 0, ops, n_ops, out);
}
