/*
 * genome_mbconv.c - the MBConv / Fused-MBConv space (MnasNet, EfficientNet,
 * EfficientNetV2): validation, the text grammar, sampling, mutation, the
 * hash encoding and the DOT drawing.  docs/GENOME.md s8 has the grammar.
 *
 * A genome is a stem width, 1..7 stages and a head width.  Every field of a
 * stage changes the built network (the kind, kernel, expansion, SE,
 * width, repeats and stride all change some layer's shape or presence), so
 * two different valid genomes never build the same network: the canonical
 * form only clears the unused stage slots, and mutation always yields a new
 * network.  The stride pattern is part of the genome (so EfficientNet-B0
 * can be written down) but a search keeps the one sampling chose: MnasNet
 * and EfficientNet fix where a network downsamples and search the rest.
 */
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Choices of sampling and mutation (a preset may use others in range). */
static const int KERNELS[] = {3, 5};
static const int EXPANDS[] = {1, 4, 6};
static const int REPEATS[] = {1, 2, 3};
#define MB_SAMPLE_STEM 16
#define MB_SAMPLE_HEAD 128

/* F alone moves every width in steps of F/16 and rounds to 4 channels, which
 * search fidelities want (F = 8 and 16 give the genome's widths exactly) but
 * which sizes a network only coarsely: at the few channels a small parameter
 * target leaves, one step of F can double it.  The final stage's size target
 * therefore scales by width_mult, continuously, and rounds to whole channels
 * (EfficientNet's round_filters rounds to 8, at ImageNet's widths; at ours,
 * rounding to 2 left the 100K target's picks 6 % under it on average, to 1
 * about 2 %).  The product is formed in double from a float multiplier, so
 * every machine rounds it the same way. */
int nas__mb_channels(int units, const nas_fidelity *f) {
    int ch;
    if (f->width_mult > 0.0f) {
        ch = (int)lround((double)units * f->channels * (double)f->width_mult / 16.0);
    } else {
        ch = (int)(((int64_t)units * f->channels + 32) / 64) * 4;
    }
    return ch < 4 ? 4 : ch;
}

static int width_ok(int w, int hi) { return w >= 8 && w <= hi && w % 8 == 0; }

int nas__mb_validate(const nas_mbconv *m, char *err) {
    if (m->n_stages < 1 || m->n_stages > NAS_MB_MAX_STAGES)
        return nas_set_err(err, NAS_EGENOME, "mbconv: %d stages (1..%d)", m->n_stages,
                           NAS_MB_MAX_STAGES);
    if (!width_ok(m->stem, 1024))
        return nas_set_err(err, NAS_EGENOME, "mbconv: stem width %d (a multiple of 8, 8..1024)",
                           m->stem);
    if (!width_ok(m->head, 4096))
        return nas_set_err(err, NAS_EGENOME, "mbconv: head width %d (a multiple of 8, 8..4096)",
                           m->head);
    for (int i = 0; i < m->n_stages; i++) {
        const nas_mb_stage *s = &m->stages[i];
        const char *bad = s->fused > 1                                   ? "fused flag (0/1)"
                          : (s->kernel != 3 && s->kernel != 5 && s->kernel != 7) ? "kernel (3, 5, 7)"
                          : (s->expand < 1 || s->expand > 8)             ? "expansion (1..8)"
                          : s->se > 1                                    ? "se flag (0/1)"
                          : (s->repeats < 1 || s->repeats > 16)          ? "repeats (1..16)"
                          : (s->stride != 1 && s->stride != 2)           ? "stride (1, 2)"
                          : !width_ok(s->width, 1024) ? "width (a multiple of 8, 8..1024)"
                                                      : NULL;
        if (bad) return nas_set_err(err, NAS_EGENOME, "mbconv stage %d: bad %s", i, bad);
    }
    return NAS_OK;
}

// ---------------------------------------------------------------------------
// Text: mbconv=stem16,mb3x6se-24r2s2,...,head128 (the "mbconv=" is read by the caller)

typedef struct rd {
    const char *s;
    size_t len, pos;
    char *err;
} rd;

static int rd_fail(rd *r, const char *what) {
    if (r->pos < r->len && r->s[r->pos] >= 0x21 && r->s[r->pos] < 0x7f)
        return nas_set_err(r->err, NAS_EGENOME, "at %zu: expected %s, got '%c'", r->pos, what,
                           r->s[r->pos]);
    if (r->pos < r->len)
        return nas_set_err(r->err, NAS_EGENOME, "at %zu: expected %s, got byte 0x%02x", r->pos,
                           what, (unsigned char)r->s[r->pos]);
    return nas_set_err(r->err, NAS_EGENOME, "at %zu: expected %s, got the end", r->pos, what);
}

static int rd_lit(rd *r, const char *lit) {
    size_t n = strlen(lit);
    if (r->len - r->pos < n || memcmp(r->s + r->pos, lit, n) != 0) return 0;
    r->pos += n;
    return 1;
}

/* A decimal in [lo, hi] of at most 5 digits (no sign, no leading zeros). */
static int rd_int(rd *r, int lo, int hi, const char *what, int *out) {
    size_t start = r->pos;
    long v = 0;
    while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9' && r->pos - start < 5)
        v = v * 10 + (r->s[r->pos++] - '0');
    if (r->pos == start) return rd_fail(r, what);
    if ((r->s[start] == '0' && r->pos - start > 1) || v < lo || v > hi) {
        r->pos = start;
        return nas_set_err(r->err, NAS_EGENOME, "at %zu: %s %ld out of range (%d..%d)", start,
                           what, v, lo, hi);
    }
    *out = (int)v;
    return NAS_OK;
}

/* stage := ("mb" | "fu") K "x" E ["se"] "-" W "r" R "s" S */
static int rd_stage(rd *r, nas_mb_stage *st) {
    int k, e, w, rep, str, rc;
    memset(st, 0, sizeof *st);
    if (rd_lit(r, "fu"))
        st->fused = 1;
    else if (!rd_lit(r, "mb"))
        return rd_fail(r, "a stage (mb... or fu...) or head");
    size_t at = r->pos;
    if ((rc = rd_int(r, 3, 7, "kernel", &k)) < 0) return rc;
    if (k != 3 && k != 5 && k != 7)
        return nas_set_err(r->err, NAS_EGENOME, "at %zu: kernel %d (3, 5 or 7)", at, k);
    if (!rd_lit(r, "x")) return rd_fail(r, "'x' before the expansion ratio");
    if ((rc = rd_int(r, 1, 8, "expansion", &e)) < 0) return rc;
    st->se = (uint8_t)rd_lit(r, "se");
    if (!rd_lit(r, "-")) return rd_fail(r, "'-' before the width");
    at = r->pos;
    if ((rc = rd_int(r, 8, 1024, "width", &w)) < 0) return rc;
    if (w % 8) return nas_set_err(r->err, NAS_EGENOME, "at %zu: width %d is not a multiple of 8", at, w);
    if (!rd_lit(r, "r")) return rd_fail(r, "'r' before the repeats");
    if ((rc = rd_int(r, 1, 16, "repeats", &rep)) < 0) return rc;
    if (!rd_lit(r, "s")) return rd_fail(r, "'s' before the stride");
    if ((rc = rd_int(r, 1, 2, "stride", &str)) < 0) return rc;
    st->kernel = (uint8_t)k;
    st->expand = (uint8_t)e;
    st->width = (uint16_t)w;
    st->repeats = (uint8_t)rep;
    st->stride = (uint8_t)str;
    return NAS_OK;
}

static int rd_width(rd *r, const char *what, int hi, uint16_t *out) {
    size_t at = r->pos;
    int w, rc;
    if ((rc = rd_int(r, 8, hi, what, &w)) < 0) return rc;
    if (w % 8) return nas_set_err(r->err, NAS_EGENOME, "at %zu: %s %d is not a multiple of 8", at, what, w);
    *out = (uint16_t)w;
    return NAS_OK;
}

int nas__mb_parse(const char *s, size_t len, size_t *pos, nas_mbconv *out, char *err) {
    rd r = {s, len, *pos, err};
    nas_mbconv m;
    memset(&m, 0, sizeof m);
    int rc;
    if (!rd_lit(&r, "stem")) return rd_fail(&r, "'stem'");
    if ((rc = rd_width(&r, "stem width", 1024, &m.stem)) < 0) return rc;
    for (;;) {
        if (!rd_lit(&r, ",")) return rd_fail(&r, "','");
        if (rd_lit(&r, "head")) break;
        if (m.n_stages == NAS_MB_MAX_STAGES)
            return nas_set_err(err, NAS_EGENOME, "at %zu: more than %d stages", r.pos,
                               NAS_MB_MAX_STAGES);
        if ((rc = rd_stage(&r, &m.stages[m.n_stages])) < 0) return rc;
        m.n_stages++;
    }
    if (m.n_stages == 0)
        return nas_set_err(err, NAS_EGENOME, "at %zu: mbconv genome without a stage", r.pos);
    if ((rc = rd_width(&r, "head width", 4096, &m.head)) < 0) return rc;
    *out = m;
    *pos = r.pos;
    return NAS_OK;
}

int nas__mb_parse_stage(const char *s, size_t len, nas_mb_stage *out, char *err) {
    rd r = {s, len, 0, err};
    int rc = rd_stage(&r, out);
    if (rc < 0) return rc;
    if (r.pos != len) return rd_fail(&r, "the end of the stage");
    return NAS_OK;
}

void nas__mb_format_stage(const nas_mb_stage *st, nas__text *o) {
    nas__text_put(o, "%s%dx%d%s-%dr%ds%d", st->fused ? "fu" : "mb", st->kernel, st->expand,
                  st->se ? "se" : "", st->width, st->repeats, st->stride);
}

void nas__mb_format(const nas_mbconv *m, nas__text *o) {
    nas__text_put(o, "mbconv=stem%d", m->stem);
    for (int i = 0; i < m->n_stages; i++) {
        nas__text_put(o, ",");
        nas__mb_format_stage(&m->stages[i], o);
    }
    nas__text_put(o, ",head%d", m->head);
}

// ---------------------------------------------------------------------------
// Identity

void nas__mb_canonical(const nas_mbconv *in, nas_mbconv *out) {
    nas_mbconv m;
    memset(&m, 0, sizeof m);
    m.n_stages = in->n_stages;
    m.stem = in->stem;
    m.head = in->head;
    memcpy(m.stages, in->stages, sizeof(nas_mb_stage) * (size_t)in->n_stages);
    *out = m;
}

/* Fixed little-endian bytes: stages, stem, head, then 8 bytes per stage. */
int nas__mb_encode(const nas_mbconv *m, uint8_t *buf) {
    int n = 0;
    buf[n++] = (uint8_t)m->n_stages;
    buf[n++] = (uint8_t)(m->stem & 0xff);
    buf[n++] = (uint8_t)(m->stem >> 8);
    buf[n++] = (uint8_t)(m->head & 0xff);
    buf[n++] = (uint8_t)(m->head >> 8);
    for (int i = 0; i < m->n_stages; i++) {
        const nas_mb_stage *s = &m->stages[i];
        uint8_t b[8] = {s->fused,  s->kernel, s->expand, s->se, s->repeats,
                        s->stride, (uint8_t)(s->width & 0xff), (uint8_t)(s->width >> 8)};
        memcpy(buf + n, b, 8);
        n += 8;
    }
    return n;
}

// ---------------------------------------------------------------------------
// Search moves

/* The block kinds the space allows: bit 0 MBConv, bit 1 Fused-MBConv. */
static int kinds(const nas_space *sp, int *out) {
    uint32_t m = sp->op_mask ? sp->op_mask & 3u : 3u;
    int n = 0;
    for (int i = 0; i < 2; i++)
        if (m & (1u << i)) out[n++] = i;
    return n;
}

/* The width choices of stage i: {1/2, 1, 3/2, 2} x a base that starts at 16
 * units and doubles with every stride-2 stage up to and including i, so
 * the network widens as it downsamples, as MnasNet's and EfficientNet's do. */
static int widths(const nas_mbconv *m, int i, int *out) {
    int base = 16;
    for (int j = 0; j <= i; j++)
        if (m->stages[j].stride == 2 && base < 512) base *= 2;
    for (int k = 1; k <= 4; k++) out[k - 1] = base * k / 2;
    return 4;
}

static int pick(const int *set, int n, nas_rng *rng) { return set[nas_rng_below(rng, (uint32_t)n)]; }

int nas__mb_sample(const nas_space *sp, nas_rng *rng, nas_genome *out) {
    int ks[2], nk = kinds(sp, ks);
    if (nk == 0 || sp->n_blocks < 1 || sp->n_blocks > NAS_MB_MAX_STAGES) return NAS_EINVAL;
    nas_genome g;
    memset(&g, 0, sizeof g);
    g.space = NAS_SPACE_MBCONV;
    nas_mbconv *m = &g.mb;
    m->n_stages = sp->n_blocks;
    m->stem = MB_SAMPLE_STEM;
    m->head = MB_SAMPLE_HEAD;
    for (int i = 0; i < m->n_stages; i++) {
        nas_mb_stage *s = &m->stages[i];
        s->stride = (uint8_t)(i % 2 ? 2 : 1); /* downsample at stages 1, 3, 5 */
        int ws[4], nw = widths(m, i, ws);
        s->fused = (uint8_t)pick(ks, nk, rng);
        s->kernel = (uint8_t)pick(KERNELS, 2, rng);
        s->expand = (uint8_t)pick(EXPANDS, 3, rng);
        s->se = (uint8_t)nas_rng_below(rng, 2);
        s->width = (uint16_t)pick(ws, nw, rng);
        s->repeats = (uint8_t)pick(REPEATS, 3, rng);
    }
    *out = g;
    return NAS_OK;
}

static int field_get(const nas_mb_stage *s, int f) {
    switch (f) {
    case NAS_MB_FIELD_FUSED: return s->fused;
    case NAS_MB_FIELD_KERNEL: return s->kernel;
    case NAS_MB_FIELD_EXPAND: return s->expand;
    case NAS_MB_FIELD_SE: return s->se;
    case NAS_MB_FIELD_WIDTH: return s->width;
    default: return s->repeats;
    }
}

static void field_set(nas_mb_stage *s, int f, int v) {
    switch (f) {
    case NAS_MB_FIELD_FUSED: s->fused = (uint8_t)v; break;
    case NAS_MB_FIELD_KERNEL: s->kernel = (uint8_t)v; break;
    case NAS_MB_FIELD_EXPAND: s->expand = (uint8_t)v; break;
    case NAS_MB_FIELD_SE: s->se = (uint8_t)v; break;
    case NAS_MB_FIELD_WIDTH: s->width = (uint16_t)v; break;
    default: s->repeats = (uint8_t)v; break;
    }
}

/* The values field f of stage i may take, but its current one. */
static int field_moves(const nas_mbconv *m, int i, int f, const nas_space *sp, int *out) {
    int set[4], n = 0, cur = field_get(&m->stages[i], f);
    static const int BOOL[] = {0, 1};
    switch (f) {
    case NAS_MB_FIELD_FUSED: n = kinds(sp, set); break;
    case NAS_MB_FIELD_KERNEL: n = 2, memcpy(set, KERNELS, sizeof KERNELS); break;
    case NAS_MB_FIELD_EXPAND: n = 3, memcpy(set, EXPANDS, sizeof EXPANDS); break;
    case NAS_MB_FIELD_SE: n = 2, memcpy(set, BOOL, sizeof BOOL); break;
    case NAS_MB_FIELD_WIDTH: n = widths(m, i, set); break;
    default: n = 3, memcpy(set, REPEATS, sizeof REPEATS); break;
    }
    int k = 0;
    for (int j = 0; j < n; j++)
        if (set[j] != cur) out[k++] = set[j];
    return k;
}

/* One stage, one field, a new value from the field's choices (MnasNet's
 * per-block search dimensions).  Every field change is a new network. */
int nas__mb_mutate(const nas_genome *parent, const nas_space *sp, nas_rng *rng, nas_genome *child,
                   nas_mutation *what) {
    int ks[2];
    if (kinds(sp, ks) == 0) return NAS_EINVAL;
    const nas_mbconv *m = &parent->mb;
    int n = 0;
    for (int i = 0; i < m->n_stages; i++)
        for (int f = 0; f < NAS_MB_FIELD_COUNT; f++) {
            int vals[4];
            n += field_moves(m, i, f, sp, vals);
        }
    if (n == 0) return NAS_EGENOME; /* cannot happen with the fixed choices; kept for safety */
    /* Stage, then field, then value uniformly: draw among the fields with a move. */
    int i, f, nv, vals[4];
    do {
        i = (int)nas_rng_below(rng, (uint32_t)m->n_stages);
        f = (int)nas_rng_below(rng, NAS_MB_FIELD_COUNT);
        nv = field_moves(m, i, f, sp, vals);
    } while (nv == 0);
    nas_mutation mu = {NAS_MUTATION_OP, 0, i, f, field_get(&m->stages[i], f), pick(vals, nv, rng)};
    *child = *parent;
    field_set(&child->mb.stages[i], f, mu.new_val);
    if (what) *what = mu;
    return NAS_OK;
}

static const char *const FIELD_NAMES[NAS_MB_FIELD_COUNT] = {"fused", "kernel", "expand",
                                                            "se",    "width",  "repeats"};

int nas__mb_mutation_format(const nas_mutation *m, char *buf, size_t cap) {
    const char *f = m->half >= 0 && m->half < NAS_MB_FIELD_COUNT ? FIELD_NAMES[m->half] : "?";
    int w = snprintf(buf, cap, "%s: stage %d %d -> %d", f, m->block, m->old_val, m->new_val);
    if (w < 0 || (size_t)w >= cap) return NAS_ERANGE;
    return w;
}

// ---------------------------------------------------------------------------
// DOT: a chain of stage boxes (drawing only; there is no DOT reader for this space)

void nas__mb_dot(const nas_mbconv *m, nas__text *o) {
    nas__text_put(o, "digraph genome {\n  rankdir=LR;\n  subgraph cluster_mbconv {\n"
                     "    label=\"mbconv\";\n    stem [shape=box,label=\"stem %d\"];\n",
                  m->stem);
    for (int i = 0; i < m->n_stages; i++) {
        nas__text_put(o, "    s%d [shape=box,label=\"", i);
        nas__mb_format_stage(&m->stages[i], o);
        if (i == 0)
            nas__text_put(o, "\"];\n    stem -> s0;\n");
        else
            nas__text_put(o, "\"];\n    s%d -> s%d;\n", i - 1, i);
    }
    nas__text_put(o, "    head [shape=box,label=\"head %d\"];\n    s%d -> head;\n  }\n}\n",
                  m->head, m->n_stages - 1);
}
