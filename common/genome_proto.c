/*
 * genome_proto.c - genome <-> protobuf (proto/genome.proto).
 *
 * The reader trusts nothing: protobuf-c accepts any field values, so every
 * count, index and op is range-checked before it is narrowed to the
 * genome's uint8_t fields, and the result goes through nas_genome_validate.
 */
#include "common/genome_proto.h"
#include "common/err.h"
#include "common/genome_internal.h"

#include <string.h>

/* Point ptrs[k] at blocks[k] filled from the cell: protobuf-c wants an
 * array of message pointers, and the storage struct owns both arrays. */
static void fill_cell(const nas_cell *c, Naspb__Block *blocks, Naspb__Block **ptrs) {
    for (int k = 0; k < c->n_blocks; k++) {
        Naspb__Block *b = &blocks[k];
        naspb__block__init(b);
        b->has_in_a = b->has_op_a = b->has_in_b = b->has_op_b = 1;
        b->in_a = c->blocks[k].in_a;
        b->op_a = c->blocks[k].op_a;
        b->in_b = c->blocks[k].in_b;
        b->op_b = c->blocks[k].op_b;
        ptrs[k] = b;
    }
}

static void mb_fill(const nas_mbconv *mb, nas_genome_pb *pb) {
    Naspb__Genome *m = &pb->msg;
    m->has_mb_stem = m->has_mb_head = 1;
    m->mb_stem = mb->stem;
    m->mb_head = mb->head;
    for (int i = 0; i < mb->n_stages; i++) {
        const nas_mb_stage *s = &mb->stages[i];
        Naspb__MbStage *p = &pb->mb[i];
        naspb__mb_stage__init(p);
        p->has_fused = p->has_kernel = p->has_expand = p->has_se = 1;
        p->has_repeats = p->has_stride = p->has_width = 1;
        p->fused = s->fused, p->kernel = s->kernel, p->expand = s->expand, p->se = s->se;
        p->repeats = s->repeats, p->stride = s->stride, p->width = s->width;
        pb->mb_ptrs[i] = p;
    }
    m->n_mb_stages = (size_t)mb->n_stages;
    m->mb_stages = pb->mb_ptrs;
}

/* Every field present and in its type's range before narrowing; the value
 * ranges are nas_genome_validate's, so the messages match the other forms. */
static int mb_read(const Naspb__Genome *m, nas_mbconv *mb, char *err) {
    if (m->n_normal || m->n_reduce || m->n_nb201)
        return nas_set_err(err, NAS_EGENOME, "proto: mbconv genome with cell blocks or edges");
    if (!m->has_mb_stem || !m->has_mb_head || m->mb_stem > 65535 || m->mb_head > 65535)
        return nas_set_err(err, NAS_EGENOME, "proto: mbconv: missing or bad stem/head width");
    if (m->n_mb_stages < 1 || m->n_mb_stages > NAS_MB_MAX_STAGES)
        return nas_set_err(err, NAS_EGENOME, "proto: mbconv: %zu stages (1..%d)", m->n_mb_stages,
                           NAS_MB_MAX_STAGES);
    mb->stem = (uint16_t)m->mb_stem;
    mb->head = (uint16_t)m->mb_head;
    mb->n_stages = (int)m->n_mb_stages;
    for (size_t i = 0; i < m->n_mb_stages; i++) {
        const Naspb__MbStage *p = m->mb_stages[i];
        if (p == NULL || !p->has_fused || !p->has_kernel || !p->has_expand || !p->has_se ||
            !p->has_repeats || !p->has_stride || !p->has_width)
            return nas_set_err(err, NAS_EGENOME, "proto: mbconv stage %zu: missing field", i);
        if (p->fused > 255 || p->kernel > 255 || p->expand > 255 || p->se > 255 ||
            p->repeats > 255 || p->stride > 255 || p->width > 65535)
            return nas_set_err(err, NAS_EGENOME, "proto: mbconv stage %zu: value out of range", i);
        mb->stages[i] = (nas_mb_stage){(uint8_t)p->fused,   (uint8_t)p->kernel, (uint8_t)p->expand,
                                       (uint8_t)p->se,      (uint8_t)p->repeats,
                                       (uint8_t)p->stride,  (uint16_t)p->width};
    }
    return NAS_OK;
}

static void hier_fill(const nas_hier *h, nas_genome_pb *pb) {
    for (int m = 0; m <= h->n_motifs; m++) {
        nas__text o = {pb->hier_text[m], NAS_HIER_TOKEN_MAX, 0};
        nas__hier_format_motif(m < h->n_motifs ? &h->motifs[m] : &h->top, m < h->n_motifs ? 2 : 3,
                               &o);
        if (m < h->n_motifs) pb->hier_motifs[m] = pb->hier_text[m];
    }
    pb->msg.n_hier_motifs = (size_t)h->n_motifs;
    pb->msg.hier_motifs = pb->hier_motifs;
    pb->msg.hier_top = pb->hier_text[h->n_motifs];
}

/* The tokens go through the text form's motif parser: one grammar, one set of messages. */
static int hier_read(const Naspb__Genome *m, nas_hier *h, char *err) {
    if (m->n_normal || m->n_reduce || m->n_nb201 || m->n_chain)
        return nas_set_err(err, NAS_EGENOME, "proto: hierarchical genome with another space's "
                                             "fields");
    if (m->n_hier_motifs < 1 || m->n_hier_motifs > NAS_HIER_MAX_MOTIFS || m->hier_top == NULL)
        return nas_set_err(err, NAS_EGENOME, "proto: hierarchical: %zu motifs (1..%d) and %s top",
                           m->n_hier_motifs, NAS_HIER_MAX_MOTIFS, m->hier_top ? "a" : "no");
    h->n_motifs = (int)m->n_hier_motifs;
    char merr[NAS_ERR_LEN];
    for (size_t i = 0; i <= m->n_hier_motifs; i++) {
        int top = i == m->n_hier_motifs;
        const char *s = top ? m->hier_top : m->hier_motifs[i];
        if (s == NULL) return nas_set_err(err, NAS_EGENOME, "proto: motif %zu is null", i);
        if (nas__hier_parse_motif(s, strlen(s), 0, top ? 3 : 2, h->n_motifs,
                                  top ? &h->top : &h->motifs[i], merr) < 0) {
            if (top) return nas_set_err(err, NAS_EGENOME, "proto: top: %s", merr);
            return nas_set_err(err, NAS_EGENOME, "proto: motif %zu: %s", i, merr);
        }
    }
    return NAS_OK;
}

int nas_genome_to_proto(const nas_genome *g, nas_genome_pb *pb) {
    if (g == NULL || pb == NULL) return NAS_EINVAL;
    if (nas_genome_validate(g, NULL) < 0) return NAS_EGENOME;
    memset(pb, 0, sizeof *pb);
    naspb__genome__init(&pb->msg);
    Naspb__Genome *m = &pb->msg;
    m->has_version = m->has_space = 1;
    m->version = NAS_GENOME_PB_VERSION;
    m->space = (uint32_t)g->space;
    if (g->space == NAS_SPACE_MBCONV) {
        mb_fill(&g->mb, pb);
        return NAS_OK;
    }
    if (g->space == NAS_SPACE_HIER) {
        hier_fill(&g->hier, pb);
        return NAS_OK;
    }
    if (g->space == NAS_SPACE_NB201) {
        for (int e = 0; e < NAS_NB201_EDGES; e++)
            pb->nb201[e] = g->nb201[e];
        m->n_nb201 = NAS_NB201_EDGES;
        m->nb201 = pb->nb201;
        return NAS_OK;
    }
    if (g->space == NAS_SPACE_CHAIN) {
        for (int k = 0; k < g->chain.n_layers; k++) {
            Naspb__ChainLayer *l = &pb->layers[k];
            naspb__chain_layer__init(l);
            l->has_op = l->has_width = l->has_id = l->has_skips = 1;
            l->op = g->chain.layers[k].op;
            l->width = g->chain.layers[k].width;
            l->id = g->chain.layers[k].id;
            l->skips = g->chain.layers[k].skips;
            pb->chain[k] = l;
        }
        m->n_chain = (size_t)g->chain.n_layers;
        m->chain = pb->chain;
        return NAS_OK;
    }
    m->has_shared = 1;
    m->shared = g->shared ? 1 : 0;
    fill_cell(&g->normal, pb->blocks, pb->normal);
    m->n_normal = (size_t)g->normal.n_blocks;
    m->normal = pb->normal;
    if (!g->shared) {
        fill_cell(&g->reduce, pb->blocks + NAS_MAX_BLOCKS, pb->reduce);
        m->n_reduce = (size_t)g->reduce.n_blocks;
        m->reduce = pb->reduce;
    }
    return NAS_OK;
}

/* Fields are checked for presence (proto2 optional: a peer that forgot
 * one must not read as input 0 / op `id`) and for range before the values
 * are narrowed to uint8_t, where 256 would silently become 0. */
static int read_cell(Naspb__Block *const *blocks, size_t n, nas_cell *c, const char *name,
                     char *err) {
    if (n == 0) return nas_set_err(err, NAS_EGENOME, "proto: %s cell is empty", name);
    if (n > NAS_MAX_BLOCKS)
        return nas_set_err(err, NAS_EGENOME, "proto: %s cell has %zu blocks, too many (max %d)",
                           name, n, NAS_MAX_BLOCKS);
    c->n_blocks = (int)n;
    for (size_t k = 0; k < n; k++) {
        const Naspb__Block *b = blocks[k];
        if (b == NULL) return nas_set_err(err, NAS_EGENOME, "proto: %s block %zu is null", name, k);
        if (!b->has_in_a || !b->has_op_a || !b->has_in_b || !b->has_op_b)
            return nas_set_err(err, NAS_EGENOME, "proto: %s block %zu: missing %s", name, k,
                               !b->has_in_a   ? "in_a"
                               : !b->has_op_a ? "op_a"
                               : !b->has_in_b ? "in_b"
                                              : "op_b");
        if (b->op_a >= NAS_OP_COUNT || b->op_b >= NAS_OP_COUNT)
            return nas_set_err(err, NAS_EGENOME, "proto: %s block %zu: unknown op %u", name, k,
                               b->op_a >= NAS_OP_COUNT ? b->op_a : b->op_b);
        if (b->in_a > 255 || b->in_b > 255)
            return nas_set_err(err, NAS_EGENOME, "proto: %s block %zu: input %u out of range", name,
                               k, b->in_a > 255 ? b->in_a : b->in_b);
        c->blocks[k] =
            (nas_block){(uint8_t)b->in_a, (uint8_t)b->op_a, (uint8_t)b->in_b, (uint8_t)b->op_b};
    }
    return NAS_OK;
}

int nas_genome_from_proto(const Naspb__Genome *m, nas_genome *out, char *err) {
    if (m == NULL || out == NULL) return nas_set_err(err, NAS_EINVAL, "proto: NULL argument");
    /* An absent version reads as 1: that is what every writer so far sends. */
    if (m->has_version && m->version != NAS_GENOME_PB_VERSION)
        return nas_set_err(err, NAS_EGENOME, "proto: genome encoding version %u, expected %d",
                           m->version, NAS_GENOME_PB_VERSION);
    nas_genome g;
    memset(&g, 0, sizeof g);
    if (!m->has_space) return nas_set_err(err, NAS_EGENOME, "proto: missing space");
    if (m->space != NAS_SPACE_MBCONV && m->n_mb_stages)
        return nas_set_err(err, NAS_EGENOME, "proto: mbconv stages in a space %u genome", m->space);
    if (m->space != NAS_SPACE_HIER && (m->n_hier_motifs || m->hier_top))
        return nas_set_err(err, NAS_EGENOME, "proto: hierarchical motifs in a space %u genome",
                           m->space);
    if (m->space == NAS_SPACE_NB201) {
        g.space = NAS_SPACE_NB201;
        if (m->n_nb201 != NAS_NB201_EDGES)
            return nas_set_err(err, NAS_EGENOME, "proto: nb201 needs %d edges, got %zu",
                               NAS_NB201_EDGES, m->n_nb201);
        for (int e = 0; e < NAS_NB201_EDGES; e++) {
            if (m->nb201[e] >= NAS_NB201_OP_COUNT)
                return nas_set_err(err, NAS_EGENOME, "proto: nb201 edge %d: unknown op %u", e,
                                   m->nb201[e]);
            g.nb201[e] = (uint8_t)m->nb201[e];
        }
        if (m->n_normal || m->n_reduce || m->n_chain)
            return nas_set_err(err, NAS_EGENOME, "proto: nb201 genome with cell blocks");
    } else if (m->space == NAS_SPACE_CHAIN) {
        g.space = NAS_SPACE_CHAIN;
        if (m->n_nb201 || m->n_normal || m->n_reduce)
            return nas_set_err(err, NAS_EGENOME, "proto: chain genome with cell fields");
        if (m->n_chain < 1 || m->n_chain > NAS_CHAIN_MAX_LAYERS)
            return nas_set_err(err, NAS_EGENOME, "proto: chain has %zu layers (needs 1..%d)",
                               m->n_chain, NAS_CHAIN_MAX_LAYERS);
        g.chain.n_layers = (int)m->n_chain;
        for (size_t k = 0; k < m->n_chain; k++) {
            const Naspb__ChainLayer *l = m->chain[k];
            if (l == NULL || !l->has_op || !l->has_width || !l->has_id || !l->has_skips)
                return nas_set_err(err, NAS_EGENOME, "proto: chain layer %zu: missing a field", k);
            if (l->op >= NAS_CHAIN_OP_COUNT || l->width > NAS_CHAIN_MAX_WIDTH || l->id > 255 ||
                l->skips > 0xffffu)
                return nas_set_err(err, NAS_EGENOME, "proto: chain layer %zu: value out of range",
                                   k);
            g.chain.layers[k] = (nas_chain_layer){(uint8_t)l->op, (uint8_t)l->id,
                                                  (uint16_t)l->width, (uint16_t)l->skips};
        }
    } else if (m->space == NAS_SPACE_CELL) {
        g.space = NAS_SPACE_CELL;
        g.shared = m->has_shared && m->shared ? 1 : 0;
        if (m->n_chain)
            return nas_set_err(err, NAS_EGENOME, "proto: cell genome with chain layers");
        if (m->n_nb201) return nas_set_err(err, NAS_EGENOME, "proto: cell genome with nb201 edges");
        int rc = read_cell(m->normal, m->n_normal, &g.normal, "normal", err);
        if (rc < 0) return rc;
        if (g.shared) {
            if (m->n_reduce)
                return nas_set_err(err, NAS_EGENOME, "proto: shared genome with a reduce cell");
            g.reduce = g.normal;
        } else if ((rc = read_cell(m->reduce, m->n_reduce, &g.reduce, "reduce", err)) < 0) {
            return rc;
        }
    } else if (m->space == NAS_SPACE_MBCONV) {
        g.space = NAS_SPACE_MBCONV;
        int rc = mb_read(m, &g.mb, err);
        if (rc < 0) return rc;
    } else if (m->space == NAS_SPACE_HIER) {
        g.space = NAS_SPACE_HIER;
        int rc = hier_read(m, &g.hier, err);
        if (rc < 0) return rc;
    } else {
        return nas_set_err(err, NAS_EGENOME, "proto: unknown space %u", m->space);
    }
    char verr[NAS_ERR_LEN];
    if (nas_genome_validate(&g, verr) < 0) return nas_set_err(err, NAS_EGENOME, "proto: %s", verr);
    *out = g;
    return NAS_OK;
}

int nas_genome_pack(const nas_genome *g, uint8_t *buf, size_t cap) {
    nas_genome_pb pb;
    int rc = nas_genome_to_proto(g, &pb);
    if (rc < 0) return rc;
    size_t n = naspb__genome__get_packed_size(&pb.msg);
    if (buf == NULL || n > cap) return NAS_ERANGE;
    return (int)naspb__genome__pack(&pb.msg, buf);
}

int nas_genome_unpack(const uint8_t *buf, size_t len, nas_genome *out, char *err) {
    if (buf == NULL && len > 0) return nas_set_err(err, NAS_EINVAL, "proto: NULL buffer");
    Naspb__Genome *m = naspb__genome__unpack(NULL, len, buf);
    if (m == NULL)
        return nas_set_err(err, NAS_EGENOME, "proto: malformed Genome message (%zu bytes)", len);
    int rc = nas_genome_from_proto(m, out, err);
    naspb__genome__free_unpacked(m, NULL);
    return rc;
}
