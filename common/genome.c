/*
 * genome.c - op names, validation and the text form of both search spaces.
 *
 * The text form is the genome's primary serialisation: it is what a person
 * types on the command line (`nas-train --arch`), what the store keeps next
 * to the hash, and what logs print.  The grammar is in docs/GENOME.md.  The
 * parser is a clean function of (bytes, length): it never reads past `len`,
 * never needs a NUL, allocates nothing, and reports the 0-based character
 * position of the first problem, so a fuzz harness can drive it directly.
 *
 * Structural rules (shared by the parser and nas_genome_validate):
 *  - a cell has 1..NAS_MAX_BLOCKS blocks;
 *  - block k may read 0 (h[i-2]), 1 (h[i-1]) or j+2 for an earlier block j;
 *  - a block needs at least one half that is not `zero` (a block of two
 *    `zero` halves computes nothing and would leave its cell output empty);
 *  - in shared (PNAS) mode the reduction cell equals the normal cell.
 */
#include "common/genome.h"
#include "common/err.h"
#include "common/genome_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Op tables. The order is the enum's order, which is stored on disk and on
// the wire, so these arrays only ever grow at the end.

static const char *const cell_op_names[NAS_OP_COUNT] = {
    "id",     "avg3x3",      "max3x3",  "sep3x3",  "sep5x5", "sep7x7",
    "dil3x3", "conv1x7_7x1", "conv3x3", "conv1x1", "zero",
};

static const char *const nb201_op_names[NAS_NB201_OP_COUNT] = {
    "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3",
};

uint32_t nas_space_default_ops(int kind) {
    if (kind == NAS_SPACE_NB201) return (1u << NAS_NB201_OP_COUNT) - 1u;
    if (kind == NAS_SPACE_MBCONV) return 3u; /* MBConv and Fused-MBConv blocks */
    if (kind == NAS_SPACE_CHAIN) return (1u << NAS_CHAIN_OP_COUNT) - 1u;
    if (kind == NAS_SPACE_HIER) return (1u << NAS_HIER_OP_COUNT) - 1u;
    /* `zero` is a search-space option the user opts into, never a default. */
    return ((1u << NAS_OP_COUNT) - 1u) & ~(1u << NAS_OP_ZERO);
}

int nas_space_kind_parse(const char *s, int *kind) {
    if (s == NULL || kind == NULL) return NAS_EINVAL;
    if (strcmp(s, "cell") == 0) {
        *kind = NAS_SPACE_CELL;
        return NAS_OK;
    }
    if (strcmp(s, "nb201") == 0) {
        *kind = NAS_SPACE_NB201;
        return NAS_OK;
    }
    if (strcmp(s, "mbconv") == 0) {
        *kind = NAS_SPACE_MBCONV;
        return NAS_OK;
    }
    if (strcmp(s, "chain") == 0) {
        *kind = NAS_SPACE_CHAIN;
        return NAS_OK;
    }
    if (strcmp(s, "hierarchical") == 0) {
        *kind = NAS_SPACE_HIER;
        return NAS_OK;
    }
    return NAS_EINVAL;
}

const char *nas_space_kind_name(int kind) {
    return kind == NAS_SPACE_CELL    ? "cell"
           : kind == NAS_SPACE_NB201 ? "nb201"
           : kind == NAS_SPACE_MBCONV ? "mbconv"
           : kind == NAS_SPACE_CHAIN ? "chain"
           : kind == NAS_SPACE_HIER  ? "hierarchical"
                                     : NULL;
}

int nas_space_op_count(int kind) {
    return kind == NAS_SPACE_CELL    ? NAS_OP_COUNT
           : kind == NAS_SPACE_NB201 ? NAS_NB201_OP_COUNT
           : kind == NAS_SPACE_MBCONV ? 2 /* block kinds: the op_mask bits */
           : kind == NAS_SPACE_CHAIN ? NAS_CHAIN_OP_COUNT
           : kind == NAS_SPACE_HIER  ? NAS_HIER_OP_COUNT
                                     : 0;
}

const char *nas_space_op_name(int kind, int op) {
    return kind == NAS_SPACE_CELL    ? nas_op_name(op)
           : kind == NAS_SPACE_NB201 ? nas_nb201_op_name(op)
           : kind == NAS_SPACE_MBCONV ? (op == 0 ? "mbconv" : op == 1 ? "fused" : NULL)
           : kind == NAS_SPACE_CHAIN ? nas_chain_op_name(op)
           : kind == NAS_SPACE_HIER  ? nas_hier_op_name(op)
                                     : NULL;
}

const char *nas_op_name(int op) {
    if (op < 0 || op >= NAS_OP_COUNT) return NULL;
    return cell_op_names[op];
}

/* Exact, case-sensitive match of a length-delimited token against a table. */
static int table_parse(const char *const *names, int n, const char *s, size_t len) {
    if (s == NULL) return -1;
    for (int i = 0; i < n; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) return i;
    }
    return -1;
}

int nas_op_parse(const char *s, size_t len) {
    return table_parse(cell_op_names, NAS_OP_COUNT, s, len);
}

const char *nas_nb201_op_name(int op) {
    if (op < 0 || op >= NAS_NB201_OP_COUNT) return NULL;
    return nb201_op_names[op];
}

int nas_nb201_op_parse(const char *s, size_t len) {
    return table_parse(nb201_op_names, NAS_NB201_OP_COUNT, s, len);
}

// ---------------------------------------------------------------------------
// Validation

static const char *cell_label(int cell) {
    return cell == 0 ? "normal" : "reduce";
}

/* The one place that decides whether block k's input `in` is legal; the
 * message distinguishes the three ways it can be wrong, because "reads a
 * later block" and "reads itself" point at different mistakes. */
static int check_input(int in, int k, int n_blocks, const char *cell, char half, char *err,
                       const char *where) {
    if (in < k + 2) return NAS_OK;
    if (in == k + 2)
        return nas_set_err(err, NAS_EGENOME, "%s%s block %d %c: reads itself (input %d)", where,
                           cell, k, half, in);
    if (in < n_blocks + 2)
        return nas_set_err(err, NAS_EGENOME,
                           "%s%s block %d %c: reads later block %d (input %d); a block may read "
                           "0, 1 or an earlier block",
                           where, cell, k, half, in - 2, in);
    return nas_set_err(err, NAS_EGENOME, "%s%s block %d %c: input %d out of range (0..%d)", where,
                       cell, k, half, in, k + 1);
}

static int validate_cell(const nas_cell *c, int which, char *err) {
    const char *name = cell_label(which);
    if (c->n_blocks < 1)
        return nas_set_err(err, NAS_EGENOME, "%s cell is empty (needs 1..%d blocks)", name,
                           NAS_MAX_BLOCKS);
    if (c->n_blocks > NAS_MAX_BLOCKS)
        return nas_set_err(err, NAS_EGENOME, "%s cell has %d blocks, too many (max %d)", name,
                           c->n_blocks, NAS_MAX_BLOCKS);
    for (int k = 0; k < c->n_blocks; k++) {
        const nas_block *b = &c->blocks[k];
        if (b->op_a >= NAS_OP_COUNT)
            return nas_set_err(err, NAS_EGENOME, "%s block %d a: unknown op %d", name, k, b->op_a);
        if (b->op_b >= NAS_OP_COUNT)
            return nas_set_err(err, NAS_EGENOME, "%s block %d b: unknown op %d", name, k, b->op_b);
        int rc = check_input(b->in_a, k, c->n_blocks, name, 'a', err, "");
        if (rc < 0) return rc;
        rc = check_input(b->in_b, k, c->n_blocks, name, 'b', err, "");
        if (rc < 0) return rc;
        if (b->op_a == NAS_OP_ZERO && b->op_b == NAS_OP_ZERO)
            return nas_set_err(err, NAS_EGENOME, "%s block %d: both halves are zero", name, k);
    }
    return NAS_OK;
}

int nas__cell_equal(const nas_cell *a, const nas_cell *b) {
    if (a->n_blocks != b->n_blocks) return 0;
    for (int k = 0; k < a->n_blocks; k++) {
        if (memcmp(&a->blocks[k], &b->blocks[k], sizeof(nas_block)) != 0) return 0;
    }
    return 1;
}

int nas_genome_validate(const nas_genome *g, char *err) {
    if (g == NULL) return nas_set_err(err, NAS_EINVAL, "genome is NULL");
    if (g->space == NAS_SPACE_NB201) {
        for (int e = 0; e < NAS_NB201_EDGES; e++) {
            if (g->nb201[e] >= NAS_NB201_OP_COUNT)
                return nas_set_err(err, NAS_EGENOME, "nb201 edge %d: unknown op %d", e,
                                   g->nb201[e]);
        }
        return NAS_OK;
    }
    if (g->space == NAS_SPACE_MBCONV) return nas__mb_validate(&g->mb, err);
    if (g->space == NAS_SPACE_CHAIN) return nas__chain_validate(&g->chain, err);
    if (g->space == NAS_SPACE_HIER) return nas__hier_validate(&g->hier, err);
    if (g->space != NAS_SPACE_CELL)
        return nas_set_err(err, NAS_EGENOME, "unknown search space %d", g->space);
    if (g->shared != 0 && g->shared != 1)
        return nas_set_err(err, NAS_EGENOME, "shared flag must be 0 or 1, not %d", g->shared);
    int rc = validate_cell(&g->normal, 0, err);
    if (rc < 0) return rc;
    if (g->shared) {
        if (!nas__cell_equal(&g->normal, &g->reduce))
            return nas_set_err(err, NAS_EGENOME, "shared genome: reduce cell differs from normal");
        return NAS_OK;
    }
    return validate_cell(&g->reduce, 1, err);
}

// ---------------------------------------------------------------------------
// Text parser. A cursor over (text, len); every read checks the bound.

typedef struct cursor {
    const char *s;
    size_t len;
    size_t pos;
} cursor;

static int cur_peek(const cursor *c) {
    return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1;
}

/* White space is allowed around the genome and between the two cells, so
 * a text copied from a log line or a file with a trailing newline parses. */
static int is_space(int ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static void cur_skip_space(cursor *c) {
    while (is_space(cur_peek(c)))
        c->pos++;
}

/* Describe the character at the cursor for an error message.  Bytes that
 * are not printable ASCII are shown in hex: the input may be anything (a
 * fuzzer, a corrupted database row) and must not garble the log line. */
static void cur_describe(const cursor *c, char *buf, size_t cap) {
    int ch = cur_peek(c);
    if (ch < 0)
        snprintf(buf, cap, "end of input");
    else if (ch >= 0x20 && ch < 0x7f)
        snprintf(buf, cap, "'%c'", ch);
    else
        snprintf(buf, cap, "byte 0x%02x", ch);
}

static int cur_expect(cursor *c, char want, const char *what, char *err) {
    if (cur_peek(c) == (unsigned char)want) {
        c->pos++;
        return NAS_OK;
    }
    char got[32];
    cur_describe(c, got, sizeof got);
    return nas_set_err(err, NAS_EGENOME, "at %zu: expected '%c' %s, got %s", c->pos, want, what,
                       got);
}

/* Op tokens are read greedily over [A-Za-z0-9_] and then looked up, so a
 * misspelt name is reported whole ("unknown op 'sep4x4'") rather than as
 * a confusing error at the first character that differs. */
static int is_word(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* Read an op token [A-Za-z0-9_]+ and look it up with `lookup`. */
static int cur_op(cursor *c, int (*lookup)(const char *, size_t), int *op, char *err) {
    size_t start = c->pos;
    while (is_word(cur_peek(c)))
        c->pos++;
    size_t n = c->pos - start;
    if (n == 0) {
        char got[32];
        cur_describe(c, got, sizeof got);
        return nas_set_err(err, NAS_EGENOME, "at %zu: expected an op name, got %s", start, got);
    }
    int v = lookup(c->s + start, n);
    if (v < 0) {
        int shown = n > 40 ? 40 : (int)n;
        return nas_set_err(err, NAS_EGENOME, "at %zu: unknown op '%.*s'%s", start, shown,
                           c->s + start, n > 40 ? "..." : "");
    }
    *op = v;
    return NAS_OK;
}

/* Read a small decimal integer (at most 3 digits: no valid index needs more,
 * and the bound keeps the value far from int overflow on hostile input). */
static int cur_int(cursor *c, int *out, char *err) {
    size_t start = c->pos;
    int v = 0;
    while (cur_peek(c) >= '0' && cur_peek(c) <= '9') {
        if (c->pos - start >= 3)
            return nas_set_err(err, NAS_EGENOME, "at %zu: input index too long", start);
        v = v * 10 + (cur_peek(c) - '0');
        c->pos++;
    }
    if (c->pos == start) {
        char got[32];
        cur_describe(c, got, sizeof got);
        return nas_set_err(err, NAS_EGENOME, "at %zu: expected an input index, got %s", start, got);
    }
    *out = v;
    return NAS_OK;
}

/* half := op ':' index.  Records the index's position for later checks. */
static int parse_half(cursor *c, uint8_t *op, uint8_t *in, size_t *in_pos, char *err) {
    int o = 0, i = 0;
    int rc = cur_op(c, nas_op_parse, &o, err);
    if (rc < 0) return rc;
    if ((rc = cur_expect(c, ':', "after op", err)) < 0) return rc;
    *in_pos = c->pos;
    if ((rc = cur_int(c, &i, err)) < 0) return rc;
    if (i > 255) return nas_set_err(err, NAS_EGENOME, "at %zu: input %d out of range", *in_pos, i);
    *op = (uint8_t)o;
    *in = (uint8_t)i;
    return NAS_OK;
}

/* cell := block (',' block)*   block := half '+' half */
static int parse_cell(cursor *c, nas_cell *cell, int which, char *err) {
    size_t pos_a[NAS_MAX_BLOCKS], pos_b[NAS_MAX_BLOCKS], pos_blk[NAS_MAX_BLOCKS];
    const char *name = cell_label(which);
    memset(cell, 0, sizeof *cell);
    int ch = cur_peek(c);
    if (ch < 0 || is_space(ch))
        return nas_set_err(err, NAS_EGENOME, "at %zu: %s cell is empty (needs 1..%d blocks)",
                           c->pos, name, NAS_MAX_BLOCKS);
    for (;;) {
        if (cell->n_blocks == NAS_MAX_BLOCKS)
            return nas_set_err(err, NAS_EGENOME, "at %zu: %s cell has too many blocks (max %d)",
                               c->pos, name, NAS_MAX_BLOCKS);
        int k = cell->n_blocks;
        nas_block *b = &cell->blocks[k];
        pos_blk[k] = c->pos;
        int rc = parse_half(c, &b->op_a, &b->in_a, &pos_a[k], err);
        if (rc < 0) return rc;
        if ((rc = cur_expect(c, '+', "between the halves of a block", err)) < 0) return rc;
        if ((rc = parse_half(c, &b->op_b, &b->in_b, &pos_b[k], err)) < 0) return rc;
        cell->n_blocks++;
        if (cur_peek(c) != ',') break;
        c->pos++;
    }
    /* Inputs can only be judged once the block count is known ("later
     * block" versus "out of range"), so they are checked after the cell. */
    for (int k = 0; k < cell->n_blocks; k++) {
        const nas_block *b = &cell->blocks[k];
        char where[32];
        snprintf(where, sizeof where, "at %zu: ", pos_a[k]);
        int rc = check_input(b->in_a, k, cell->n_blocks, name, 'a', err, where);
        if (rc < 0) return rc;
        snprintf(where, sizeof where, "at %zu: ", pos_b[k]);
        rc = check_input(b->in_b, k, cell->n_blocks, name, 'b', err, where);
        if (rc < 0) return rc;
        if (b->op_a == NAS_OP_ZERO && b->op_b == NAS_OP_ZERO)
            return nas_set_err(err, NAS_EGENOME, "at %zu: %s block %d: both halves are zero",
                               pos_blk[k], name, k);
    }
    return NAS_OK;
}

/* Consume `p` if the input continues with it; never reads past len. */
static int cur_prefix(cursor *c, const char *p) {
    size_t n = strlen(p);
    if (c->len - c->pos >= n && memcmp(c->s + c->pos, p, n) == 0) {
        c->pos += n;
        return 1;
    }
    return 0;
}

static int parse_cell_genome(cursor *c, nas_genome *g, char *err) {
    int rc;
    if (cur_prefix(c, "c=")) {
        g->shared = 1;
        if ((rc = parse_cell(c, &g->normal, 0, err)) < 0) return rc;
        g->reduce = g->normal;
        return NAS_OK;
    }
    if (!cur_prefix(c, "n=")) {
        char got[32];
        cur_describe(c, got, sizeof got);
        return nas_set_err(err, NAS_EGENOME,
                           "at %zu: expected 'n=' (normal cell), 'c=' (shared cell), '|' "
                           "(nb201), 'chain=' or 'hier=', got %s",
                           c->pos, got);
    }
    if ((rc = parse_cell(c, &g->normal, 0, err)) < 0) return rc;
    if (!is_space(cur_peek(c))) {
        char got[32];
        cur_describe(c, got, sizeof got);
        return nas_set_err(err, NAS_EGENOME, "at %zu: expected ' r=' after the normal cell, got %s",
                           c->pos, got);
    }
    cur_skip_space(c);
    if (!cur_prefix(c, "r=")) {
        char got[32];
        cur_describe(c, got, sizeof got);
        return nas_set_err(err, NAS_EGENOME, "at %zu: expected 'r=' (reduction cell), got %s",
                           c->pos, got);
    }
    return parse_cell(c, &g->reduce, 1, err);
}

/* nb201 := ('|' (op '~' j '|')+ '+')* ... the benchmark's own string: node
 * i = 1..3 lists its i incoming edges from j = 0..i-1 in order. */
static int parse_nb201(cursor *c, nas_genome *g, char *err) {
    int e = 0, rc;
    for (int i = 1; i <= 3; i++) {
        if (i > 1 && (rc = cur_expect(c, '+', "between nodes", err)) < 0) return rc;
        if ((rc = cur_expect(c, '|', "to open a node", err)) < 0) return rc;
        for (int j = 0; j < i; j++) {
            int op = 0, from = 0;
            if ((rc = cur_op(c, nas_nb201_op_parse, &op, err)) < 0) return rc;
            if ((rc = cur_expect(c, '~', "after op", err)) < 0) return rc;
            size_t at = c->pos;
            if ((rc = cur_int(c, &from, err)) < 0) return rc;
            if (from != j)
                return nas_set_err(err, NAS_EGENOME,
                                   "at %zu: node %d edge %d must come from node %d, not %d", at, i,
                                   j, j, from);
            if ((rc = cur_expect(c, '|', "after an edge", err)) < 0) return rc;
            g->nb201[e++] = (uint8_t)op;
        }
    }
    return NAS_OK;
}

int nas_genome_parse(const char *text, size_t len, nas_genome *out, char *err) {
    if (out == NULL) return nas_set_err(err, NAS_EINVAL, "output genome is NULL");
    if (text == NULL && len > 0) return nas_set_err(err, NAS_EINVAL, "text is NULL");
    cursor c = {text, len, 0};
    nas_genome g;
    memset(&g, 0, sizeof g);
    cur_skip_space(&c);
    int rc;
    if (cur_peek(&c) == '|') {
        g.space = NAS_SPACE_NB201;
        rc = parse_nb201(&c, &g, err);
    } else if (c.len - c.pos >= 7 && memcmp(c.s + c.pos, "mbconv=", 7) == 0) {
        g.space = NAS_SPACE_MBCONV;
        c.pos += 7;
        rc = nas__mb_parse(c.s, c.len, &c.pos, &g.mb, err);
    } else if (cur_prefix(&c, "chain=")) {
        g.space = NAS_SPACE_CHAIN;
        rc = nas__chain_parse(c.s, c.len, &c.pos, &g.chain, err);
    } else if (cur_prefix(&c, "hier=")) {
        g.space = NAS_SPACE_HIER;
        rc = nas__hier_parse(c.s, c.len, &c.pos, &g.hier, err);
    } else {
        g.space = NAS_SPACE_CELL;
        rc = parse_cell_genome(&c, &g, err);
    }
    if (rc < 0) return rc;
    cur_skip_space(&c);
    if (c.pos != c.len) {
        char got[32];
        cur_describe(&c, got, sizeof got);
        return nas_set_err(err, NAS_EGENOME, "at %zu: unexpected %s after the genome", c.pos, got);
    }
    /* Everything validate checks was already checked with positions above;
     * running it again is cheap insurance that parse never returns a genome
     * the rest of the system would refuse. */
    if ((rc = nas_genome_validate(&g, err)) < 0) return rc;
    *out = g;
    return NAS_OK;
}

// ---------------------------------------------------------------------------
// Text writer: the exact inverse of the parser for valid genomes.

/* Append to buf with bounds tracking; *n counts what would have been
 * written, so an undersized buffer is detected once at the end (NAS_ERANGE)
 * instead of after every piece.  Hand-rolled rather than snprintf: the master
 * formats every proposed genome, and a format string per piece was a tenth of
 * its work per task. */
static void put_str(char *buf, size_t cap, size_t *n, const char *s) {
    size_t w = strlen(s);
    if (*n + w < cap) memcpy(buf + *n, s, w);
    *n += w;
}

// Decimal digits of v; inputs of valid genomes are small and non-negative.
static void put_int(char *buf, size_t cap, size_t *n, int v) {
    char tmp[16];
    int w = (int)sizeof tmp;
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    do tmp[--w] = (char)('0' + u % 10u);
    while ((u /= 10u) != 0);
    if (v < 0) tmp[--w] = '-';
    size_t len = sizeof tmp - (size_t)w;
    if (*n + len < cap) memcpy(buf + *n, tmp + w, len);
    *n += len;
}

static void format_cell(const nas_cell *c, char *buf, size_t cap, size_t *n) {
    for (int k = 0; k < c->n_blocks; k++) {
        const nas_block *b = &c->blocks[k];
        if (k > 0) put_str(buf, cap, n, ",");
        put_str(buf, cap, n, nas_op_name(b->op_a));
        put_str(buf, cap, n, ":");
        put_int(buf, cap, n, b->in_a);
        put_str(buf, cap, n, "+");
        put_str(buf, cap, n, nas_op_name(b->op_b));
        put_str(buf, cap, n, ":");
        put_int(buf, cap, n, b->in_b);
    }
}

/* Formatting validates first: op names come from a table indexed by the op,
 * and an out-of-range op would otherwise print "(null)" or worse. */
int nas_genome_format(const nas_genome *g, char *buf, size_t cap) {
    if (g == NULL || buf == NULL || cap == 0) return NAS_EINVAL;
    if (nas_genome_validate(g, NULL) < 0) return NAS_EGENOME;
    size_t n = 0;
    if (g->space == NAS_SPACE_MBCONV) {
        nas__text o = {buf, cap, 0};
        nas__mb_format(&g->mb, &o);
        return nas__text_finish(&o);
    }
    if (g->space == NAS_SPACE_CHAIN || g->space == NAS_SPACE_HIER) {
        nas__text o = {buf, cap, 0};
        if (g->space == NAS_SPACE_CHAIN)
            nas__chain_format(&g->chain, &o);
        else
            nas__hier_format(&g->hier, &o);
        return nas__text_finish(&o);
    }
    if (g->space == NAS_SPACE_NB201) {
        int e = 0;
        for (int i = 1; i <= 3; i++) {
            put_str(buf, cap, &n, i > 1 ? "+|" : "|");
            for (int j = 0; j < i; j++) {
                put_str(buf, cap, &n, nas_nb201_op_name(g->nb201[e++]));
                put_str(buf, cap, &n, "~");
                put_int(buf, cap, &n, j);
                put_str(buf, cap, &n, "|");
            }
        }
    } else if (g->shared) {
        put_str(buf, cap, &n, "c=");
        format_cell(&g->normal, buf, cap, &n);
    } else {
        put_str(buf, cap, &n, "n=");
        format_cell(&g->normal, buf, cap, &n);
        put_str(buf, cap, &n, " r=");
        format_cell(&g->reduce, buf, cap, &n);
    }
    if (n >= cap) {
        buf[0] = '\0';
        return NAS_ERANGE;
    }
    buf[n] = '\0';
    return (int)n;
}

// ---------------------------------------------------------------------------
// Mutation descriptions for logs.

int nas_mutation_format(const nas_mutation *m, const nas_genome *parent, char *buf, size_t cap) {
    if (m == NULL || buf == NULL || cap == 0) return NAS_EINVAL;
    int w;
    int nb = parent != NULL && parent->space == NAS_SPACE_NB201;
    if (m->kind == NAS_MUTATION_IDENTITY) {
        w = snprintf(buf, cap, "identity");
    } else if (parent != NULL && parent->space == NAS_SPACE_MBCONV) {
        return nas__mb_mutation_format(m, buf, cap);
    } else if (parent != NULL && parent->space == NAS_SPACE_CHAIN) {
        return nas__chain_mutation_format(m, buf, cap);
    } else if (parent != NULL && parent->space == NAS_SPACE_HIER) {
        return nas__hier_mutation_format(m, buf, cap);
    } else if (nb) {
        const char *o = nas_nb201_op_name(m->old_val), *n = nas_nb201_op_name(m->new_val);
        w = snprintf(buf, cap, "op: edge %d %s -> %s", m->block, o ? o : "?", n ? n : "?");
    } else if (m->kind == NAS_MUTATION_OP) {
        const char *o = nas_op_name(m->old_val), *n = nas_op_name(m->new_val);
        w = snprintf(buf, cap, "op: %s block %d %c %s -> %s", cell_label(m->cell), m->block,
                     m->half ? 'b' : 'a', o ? o : "?", n ? n : "?");
    } else if (m->kind == NAS_MUTATION_HIDDEN) {
        w = snprintf(buf, cap, "hidden: %s block %d %c input %d -> %d", cell_label(m->cell),
                     m->block, m->half ? 'b' : 'a', m->old_val, m->new_val);
    } else {
        w = snprintf(buf, cap, "unknown mutation kind %d", m->kind);
    }
    if (w < 0 || (size_t)w >= cap) return NAS_ERANGE;
    return w;
}

int nas_genome_lineage(const nas_genome *parent, const nas_genome *child, char *buf, size_t cap) {
    if (parent == NULL || child == NULL || buf == NULL || cap == 0) return NAS_EINVAL;
    if (nas_genome_validate(parent, NULL) < 0 || nas_genome_validate(child, NULL) < 0)
        return NAS_EGENOME;
    nas__text o = {buf, cap, 0};
    if (parent->space == NAS_SPACE_CHAIN && child->space == NAS_SPACE_CHAIN)
        nas__chain_lineage(&parent->chain, &child->chain, &o);
    else
        nas__text_put(&o, "mutation");
    return nas__text_finish(&o);
}

// ---------------------------------------------------------------------------
// Bounded appender shared by the JSON and DOT writers: it counts what it
// would have written, so an undersized buffer is found once, at the end.

void nas__text_put(nas__text *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->n < o->cap ? o->cap - o->n : 0;
    int w = vsnprintf(room ? o->buf + o->n : NULL, room, fmt, ap);
    va_end(ap);
    if (w > 0) o->n += (size_t)w;
}

int nas__text_finish(nas__text *o) {
    if (o->n >= o->cap) {
        if (o->cap) o->buf[0] = '\0';
        return NAS_ERANGE;
    }
    return (int)o->n;
}
