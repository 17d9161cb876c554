/*
 * strategy_blob.c - the bounds-checked writer and reader of the strategy
 * state blob (the frame and format are described in strategy.c): integers,
 * floats and genomes of every search space as fixed little-endian bytes.
 */
#include "master/strategy_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <string.h>

// ---- blob writer -------------------------------------------------------------------

/* Append n bytes, doubling the buffer as needed.  An allocation failure is
 * sticky (`oom`), so a save path writes everything and checks once. */
void nas__w_bytes(nas__wbuf *w, const void *src, size_t n) {
    if (w->oom || n == 0) return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->n + n)
            cap *= 2;
        uint8_t *p = nas_realloc(w->p, cap);
        if (!p) {
            w->oom = 1;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}

void nas__w_u8(nas__wbuf *w, uint8_t v) {
    nas__w_bytes(w, &v, 1);
}

/* Integers are written byte by byte, least significant first, so the blob
 * reads the same on any host whatever its endianness. */
void nas__w_u64(nas__wbuf *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    nas__w_bytes(w, b, 8);
}

void nas__w_u32(nas__wbuf *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    nas__w_bytes(w, b, 4);
}

void nas__w_i32(nas__wbuf *w, int32_t v) {
    nas__w_u32(w, (uint32_t)v);
}

/* Floats travel as their IEEE-754 bit patterns: exact, NaN included (the
 * rank correlation is NAN until measured). */
void nas__w_f32(nas__wbuf *w, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    nas__w_u32(w, u);
}

void nas__w_f64(nas__wbuf *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    nas__w_u64(w, u);
}

/* A genome as fixed bytes: space, shared, then both cells (count and four
 * bytes per block, padded to NAS_MAX_BLOCKS), then the six NB201 edges;
 * then, for an MBConv genome, its stage count, stem and head widths and
 * eight bytes per stage, for a chain its layer count and six bytes per
 * layer, and for a hierarchical genome its motif count and, per motif and
 * then the top, its node count and one byte per edge. */
void nas__w_genome(nas__wbuf *w, const nas_genome *g) {
    nas__w_u8(w, (uint8_t)g->space);
    nas__w_u8(w, (uint8_t)g->shared);
    const nas_cell *cells[2] = {&g->normal, &g->reduce};
    for (int c = 0; c < 2; c++) {
        nas__w_u8(w, (uint8_t)cells[c]->n_blocks);
        for (int b = 0; b < NAS_MAX_BLOCKS; b++) {
            const nas_block *k = &cells[c]->blocks[b];
            uint8_t v[4] = {k->in_a, k->op_a, k->in_b, k->op_b};
            nas__w_bytes(w, v, 4);
        }
    }
    nas__w_bytes(w, g->nb201, NAS_NB201_EDGES);
    if (g->space == NAS_SPACE_MBCONV) { /* then the stages */
        nas__w_u8(w, (uint8_t)g->mb.n_stages);
        uint16_t ends[2] = {g->mb.stem, g->mb.head};
        for (int e = 0; e < 2; e++) nas__w_u8(w, (uint8_t)(ends[e] & 0xff)), nas__w_u8(w, ends[e] >> 8);
        for (int k = 0; k < g->mb.n_stages; k++) {
            const nas_mb_stage *s = &g->mb.stages[k];
            uint8_t v[8] = {s->fused,  s->kernel, s->expand, s->se, s->repeats, s->stride,
                            (uint8_t)(s->width & 0xff), (uint8_t)(s->width >> 8)};
            nas__w_bytes(w, v, 8);
        }
        return;
    }
    if (g->space == NAS_SPACE_HIER) {
        nas__w_u8(w, (uint8_t)g->hier.n_motifs);
        for (int m = 0; m <= g->hier.n_motifs; m++) {
            const nas_hier_motif *mo = m < g->hier.n_motifs ? &g->hier.motifs[m] : &g->hier.top;
            nas__w_u8(w, mo->n_nodes);
            nas__w_bytes(w, mo->ops, (size_t)(mo->n_nodes * (mo->n_nodes - 1) / 2));
        }
        return;
    }
    if (g->space != NAS_SPACE_CHAIN) return; /* cell and NB201 blobs stay as they were */
    nas__w_u8(w, (uint8_t)g->chain.n_layers);
    for (int k = 0; k < g->chain.n_layers; k++) {
        const nas_chain_layer *l = &g->chain.layers[k];
        uint8_t v[6] = {l->op, l->id, (uint8_t)(l->width & 0xff), (uint8_t)(l->width >> 8),
                        (uint8_t)(l->skips & 0xff), (uint8_t)(l->skips >> 8)};
        nas__w_bytes(w, v, 6);
    }
}

// ---- blob reader -------------------------------------------------------------------

/* Record the first failure only: the first message is the one that names
 * the real problem; later reads fail as a consequence. */
void nas__r_fail(nas__rbuf *r, const char *what) {
    if (r->bad) return;
    r->bad = 1;
    nas_set_err(r->err, NAS_EFORMAT, "strategy state: bad %s at byte %zu", what, r->off);
}

/* Copy n bytes or, past the end, zero-fill dst and mark the reader bad:
 * callers never see uninitialised memory whatever the blob holds. */
void nas__r_bytes(nas__rbuf *r, void *dst, size_t n, const char *what) {
    if (r->bad || n > r->n - r->off) {
        if (!r->bad) {
            r->bad = 1;
            nas_set_err(r->err, NAS_EFORMAT, "strategy state: truncated reading %s at byte %zu",
                        what, r->off);
        }
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p + r->off, n);
    r->off += n;
}

uint8_t nas__r_u8(nas__rbuf *r, const char *what) {
    uint8_t v;
    nas__r_bytes(r, &v, 1, what);
    return v;
}

uint64_t nas__r_u64(nas__rbuf *r, const char *what) {
    uint8_t b[8];
    nas__r_bytes(r, b, 8, what);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

uint32_t nas__r_u32(nas__rbuf *r, const char *what) {
    uint8_t b[4];
    nas__r_bytes(r, b, 4, what);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Every count and index in a blob is range-checked where it is read, before
 * it sizes an allocation or indexes an array. */
int32_t nas__r_i32(nas__rbuf *r, int32_t lo, int32_t hi, const char *what) {
    int32_t v = (int32_t)nas__r_u32(r, what);
    if (r->bad) return lo;
    if (v < lo || v > hi) {
        nas__r_fail(r, what);
        return lo;
    }
    return v;
}

float nas__r_f32(nas__rbuf *r, const char *what) {
    uint32_t u = nas__r_u32(r, what);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

double nas__r_f64(nas__rbuf *r, const char *what) {
    uint64_t u = nas__r_u64(r, what);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* A genome from a blob goes through the same validation as one from a
 * user, so a corrupted byte cannot smuggle an out-of-range op into a
 * mutation or an encoding. */
void nas__r_genome(nas__rbuf *r, nas_genome *g, const char *what) {
    memset(g, 0, sizeof *g);
    g->space = nas__r_u8(r, what);
    g->shared = nas__r_u8(r, what);
    nas_cell *cells[2] = {&g->normal, &g->reduce};
    for (int c = 0; c < 2; c++) {
        cells[c]->n_blocks = nas__r_u8(r, what);
        for (int b = 0; b < NAS_MAX_BLOCKS; b++) {
            uint8_t v[4];
            nas__r_bytes(r, v, 4, what);
            cells[c]->blocks[b] = (nas_block){v[0], v[1], v[2], v[3]};
        }
    }
    nas__r_bytes(r, g->nb201, NAS_NB201_EDGES, what);
    if (g->space == NAS_SPACE_MBCONV) { /* then the stages */
        int n = nas__r_u8(r, what);
        if (n > NAS_MB_MAX_STAGES) nas__r_fail(r, what);
        uint8_t ends[4];
        nas__r_bytes(r, ends, 4, what);
        g->mb.stem = (uint16_t)(ends[0] | ends[1] << 8), g->mb.head = (uint16_t)(ends[2] | ends[3] << 8);
        for (int k = 0; k < n && !r->bad; k++) {
            uint8_t v[8];
            nas__r_bytes(r, v, 8, what);
            g->mb.stages[k] = (nas_mb_stage){v[0], v[1], v[2], v[3], v[4], v[5],
                                             (uint16_t)(v[6] | v[7] << 8)};
        }
        g->mb.n_stages = n;
    }
    if (g->space == NAS_SPACE_CHAIN) { /* then the layers */
        int n = nas__r_u8(r, what);
        if (n > NAS_CHAIN_MAX_LAYERS) nas__r_fail(r, what);
        for (int k = 0; k < n && !r->bad; k++) {
            uint8_t v[6];
            nas__r_bytes(r, v, 6, what);
            g->chain.layers[k] = (nas_chain_layer){v[0], v[1], (uint16_t)(v[2] | v[3] << 8),
                                                   (uint16_t)(v[4] | v[5] << 8)};
        }
        g->chain.n_layers = n;
    }
    if (g->space == NAS_SPACE_HIER) { /* then the motifs and the top */
        int n = nas__r_u8(r, what);
        if (n > NAS_HIER_MAX_MOTIFS) nas__r_fail(r, what);
        g->hier.n_motifs = n;
        for (int m = 0; m <= n && !r->bad; m++) {
            nas_hier_motif *mo = m < n ? &g->hier.motifs[m] : &g->hier.top;
            mo->n_nodes = nas__r_u8(r, what);
            if (mo->n_nodes > NAS_HIER_MAX_NODES) nas__r_fail(r, what);
            if (!r->bad && mo->n_nodes >= 2)
                nas__r_bytes(r, mo->ops, (size_t)(mo->n_nodes * (mo->n_nodes - 1) / 2), what);
        }
    }
    if (r->bad) return;
    char gerr[NAS_ERR_LEN];
    if (nas_genome_validate(g, gerr) != NAS_OK) {
        r->bad = 1;
        nas_set_err(r->err, NAS_EFORMAT, "strategy state: invalid %s before byte %zu: %s", what,
                    r->off, gerr);
    }
}
