/*
 * table.c - RFC 4180 CSV parsing into one string pool plus a hash index
 * on the key column (see table.h).
 *
 * Layout: every unescaped field is copied NUL-terminated into `pool`;
 * `cells[row * cols + col]` is its offset.  The header is row -1 and kept
 * separately.  The index is open addressing over row numbers, keyed by an
 * FNV-1a hash of the key text; an optional second index holds canonical
 * keys in a second pool.
 */
#include "common/table.h"
#include "common/alloc.h"
#include "common/err.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest canonical key the reindex keeps. */
#define CANON_MAX 1024

typedef struct kindex {
    int *slots; /* row + 1, 0 = empty */
    size_t cap; /* power of two */
} kindex;

struct nas_table {
    char *pool; /* all fields, NUL-terminated */
    size_t pool_len, pool_cap;
    size_t *header; /* offsets of the header fields */
    size_t *cells;  /* rows x cols offsets */
    int *lines;     /* source line of each row */
    int rows, cols, key;
    size_t cells_cap; /* rows the cells array has room for */
    kindex exact;
    kindex canon;
    nas_table_canon_fn canon_fn; /* set by nas_table_reindex */
    void *canon_ctx;
    char *canon_pool; /* canonical keys, `rows` slots of CANON_MAX */
    char name[256];
};

// ---- building ---------------------------------------------------------------------------

/* FNV-1a: simple, and good enough for architecture strings. */
static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* Fields are appended to one growing pool; offsets stay valid when the
 * pool moves, pointers would not. */
static int pool_put(nas_table *t, const char *s, size_t n, size_t *off) {
    if (t->pool_len + n + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap < t->pool_len + n + 1)
            cap *= 2;
        char *p = nas_realloc(t->pool, cap);
        if (!p) return NAS_ENOMEM;
        t->pool = p;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, s, n);
    t->pool[t->pool_len + n] = 0;
    *off = t->pool_len;
    t->pool_len += n + 1;
    return NAS_OK;
}

/* One record's fields while parsing. */
typedef struct record {
    size_t *offs;
    int n, cap;
} record;

/* The offsets of the record being parsed; reused for every record. */
static int record_add(record *r, size_t off) {
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        size_t *p = nas_realloc(r->offs, (size_t)cap * sizeof *p);
        if (!p) return NAS_ENOMEM;
        r->offs = p;
        r->cap = cap;
    }
    r->offs[r->n++] = off;
    return NAS_OK;
}

/* Parse one record starting at *pos; fields go to the pool and r.
 * Advances *pos past the line end and *line by the lines consumed. */
/* One RFC 4180 record.  Quoted fields may span lines, so a record's line
 * number is where it starts and *line advances past all it consumed.
 * scratch is at least as long as the input, so an unescaped field fits. */
static int parse_record(nas_table *t, const char *s, size_t len, size_t *pos, int *line, record *r,
                        char *scratch, char *err) {
    size_t i = *pos;
    r->n = 0;
    int start_line = *line;
    for (;;) {
        size_t n = 0;
        if (i < len && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= len)
                    return nas_set_err(err, NAS_EFORMAT, "%s:%d: quoted field is not closed",
                                       t->name, start_line);
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        scratch[n++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (s[i] == '\n') (*line)++;
                scratch[n++] = s[i++];
            }
            if (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r')
                return nas_set_err(err, NAS_EFORMAT, "%s:%d: text after a closing quote", t->name,
                                   *line);
        } else {
            while (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r') {
                if (s[i] == '"')
                    return nas_set_err(err, NAS_EFORMAT, "%s:%d: quote inside an unquoted field",
                                       t->name, *line);
                scratch[n++] = s[i++];
            }
        }
        size_t off;
        if (pool_put(t, scratch, n, &off) < 0 || record_add(r, off) < 0)
            return nas_set_err(err, NAS_ENOMEM, "%s: out of memory", t->name);
        if (i < len && s[i] == ',') {
            i++;
            continue;
        }
        if (i < len && s[i] == '\r') i++;
        if (i < len && s[i] == '\n') i++;
        (*line)++;
        *pos = i;
        return NAS_OK;
    }
}

/* At most half full, so probing always ends. */
static int index_build(kindex *ix, int rows) {
    size_t cap = 16;
    while (cap < (size_t)rows * 2 + 2)
        cap *= 2;
    ix->slots = nas_calloc(cap, sizeof *ix->slots);
    if (!ix->slots) return NAS_ENOMEM;
    ix->cap = cap;
    return NAS_OK;
}

/* Insert row with key text k; returns the existing row on a clash, else -1. */
/* The key text is read back through key_of, so the index stores row
 * numbers only. */
static int index_put(kindex *ix, const char *k, int row,
                     const char *(*key_of)(const nas_table *, int), const nas_table *t) {
    size_t n = strlen(k);
    for (size_t i = fnv1a(k, n) & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
        if (!ix->slots[i]) {
            ix->slots[i] = row + 1;
            return -1;
        }
        if (strcmp(key_of(t, ix->slots[i] - 1), k) == 0) return ix->slots[i] - 1;
    }
}

static int index_get(const kindex *ix, const char *k, size_t n,
                     const char *(*key_of)(const nas_table *, int), const nas_table *t) {
    if (!ix->slots) return NAS_ENOTFOUND;
    for (size_t i = fnv1a(k, n) & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
        if (!ix->slots[i]) return NAS_ENOTFOUND;
        const char *c = key_of(t, ix->slots[i] - 1);
        if (strlen(c) == n && memcmp(c, k, n) == 0) return ix->slots[i] - 1;
    }
}

static const char *exact_key(const nas_table *t, int row) {
    return t->pool + t->cells[(size_t)row * (size_t)t->cols + (size_t)t->key];
}

static const char *canon_key(const nas_table *t, int row) {
    return t->canon_pool + (size_t)row * CANON_MAX;
}

// ---- loading --------------------------------------------------------------------------------

/* Rows are appended; the line numbers are kept for error messages about
 * cells read later (nas_table_number). */
static int add_row(nas_table *t, const record *r, int line) {
    if ((size_t)t->rows == t->cells_cap) {
        size_t cap = t->cells_cap ? t->cells_cap * 2 : 64;
        size_t *c = nas_realloc(t->cells, cap * (size_t)t->cols * sizeof *c);
        if (!c) return NAS_ENOMEM;
        t->cells = c;
        int *l = nas_realloc(t->lines, cap * sizeof *l);
        if (!l) return NAS_ENOMEM;
        t->lines = l;
        t->cells_cap = cap;
    }
    memcpy(t->cells + (size_t)t->rows * (size_t)t->cols, r->offs, (size_t)t->cols * sizeof(size_t));
    t->lines[t->rows++] = line;
    return NAS_OK;
}

/* Header, then records, then the key index; duplicate keys are found while
 * indexing and reported with both lines. */
static int parse_all(nas_table *t, const char *s, size_t len, const char *key_col, char *scratch,
                     record *r, char *err) {
    size_t pos = 0;
    int line = 1;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    if (pos >= len)
        return nas_set_err(err, NAS_EFORMAT, "%s: empty file, expected a header row", t->name);
    int rc = parse_record(t, s, len, &pos, &line, r, scratch, err);
    if (rc < 0) return rc;
    t->cols = r->n;
    t->header = nas_malloc((size_t)t->cols * sizeof *t->header);
    if (!t->header) return nas_set_err(err, NAS_ENOMEM, "%s: out of memory", t->name);
    memcpy(t->header, r->offs, (size_t)t->cols * sizeof *t->header);
    t->key = nas_table_column(t, key_col);
    if (t->key < 0)
        return nas_set_err(err, NAS_ENOTFOUND, "%s:1: no column named '%s' in the header", t->name,
                           key_col);
    while (pos < len) {
        int at = line;
        /* Blank lines (including a trailing one) are skipped. */
        if (s[pos] == '\n' || (s[pos] == '\r' && pos + 1 < len && s[pos + 1] == '\n')) {
            pos += s[pos] == '\r' ? 2 : 1;
            line++;
            continue;
        }
        rc = parse_record(t, s, len, &pos, &line, r, scratch, err);
        if (rc < 0) return rc;
        if (r->n != t->cols)
            return nas_set_err(err, NAS_EFORMAT, "%s:%d: %d fields, the header has %d", t->name, at,
                               r->n, t->cols);
        if (t->pool[r->offs[t->key]] == 0)
            return nas_set_err(err, NAS_EFORMAT, "%s:%d: empty key in column '%s'", t->name, at,
                               key_col);
        if (add_row(t, r, at) < 0)
            return nas_set_err(err, NAS_ENOMEM, "%s: out of memory", t->name);
    }
    if (index_build(&t->exact, t->rows) < 0)
        return nas_set_err(err, NAS_ENOMEM, "%s: out of memory", t->name);
    for (int row = 0; row < t->rows; row++) {
        int prev = index_put(&t->exact, exact_key(t, row), row, exact_key, t);
        if (prev >= 0)
            return nas_set_err(err, NAS_EFORMAT, "%s:%d: duplicate key '%.64s' (first on line %d)",
                               t->name, t->lines[row], exact_key(t, row), t->lines[prev]);
    }
    return NAS_OK;
}

int nas_table_parse(nas_table **out, const char *text, size_t len, const char *key_col,
                    const char *name, char *err) {
    nas_table *t = nas_calloc(1, sizeof *t);
    char *scratch = nas_malloc(len + 1);
    record r = {0};
    int rc = NAS_ENOMEM;
    if (!t || !scratch) {
        nas_set_err(err, rc, "%s: out of memory", name);
        goto fail;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    rc = parse_all(t, text, len, key_col, scratch, &r, err);
    if (rc < 0) goto fail;
    nas_free(scratch);
    nas_free(r.offs);
    *out = t;
    return NAS_OK;
fail:
    nas_free(scratch);
    nas_free(r.offs);
    nas_table_destroy(&t);
    return rc;
}

/* The whole file is read into memory: benchmark tables are megabytes, and
 * parsing from one buffer keeps line tracking simple. */
int nas_table_load(nas_table **out, const char *path, const char *key_col, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return nas_set_err(err, NAS_EIO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = NAS_OK;
    for (;;) {
        if (len + 65536 > cap) {
            cap = cap ? cap * 2 : 1 << 20;
            char *p = nas_realloc(buf, cap);
            if (!p) {
                rc = nas_set_err(err, NAS_ENOMEM, "%s: out of memory", path);
                break;
            }
            buf = p;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) rc = nas_set_err(err, NAS_EIO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (rc == NAS_OK) rc = nas_table_parse(out, buf, len, key_col, path, err);
    nas_free(buf);
    return rc;
}

void nas_table_destroy(nas_table **tp) {
    if (!tp || !*tp) return;
    nas_table *t = *tp;
    nas_free(t->pool);
    nas_free(t->header);
    nas_free(t->cells);
    nas_free(t->lines);
    nas_free(t->exact.slots);
    nas_free(t->canon.slots);
    nas_free(t->canon_pool);
    nas_free(t);
    *tp = NULL;
}

// ---- queries ---------------------------------------------------------------------------------

int nas_table_rows(const nas_table *t) {
    return t->rows;
}
int nas_table_cols(const nas_table *t) {
    return t->cols;
}

int nas_table_column(const nas_table *t, const char *name) {
    for (int c = 0; c < t->cols; c++)
        if (strcmp(t->pool + t->header[c], name) == 0) return c;
    return NAS_ENOTFOUND;
}

const char *nas_table_header(const nas_table *t, int col) {
    NAS_ASSERT(col >= 0 && col < t->cols);
    return t->pool + t->header[col];
}

/* Exact text first (cheap, and what tabular benchmarks store), then the
 * canonical form of the query when a canonical index exists. */
int nas_table_find(const nas_table *t, const char *key, size_t len) {
    int row = index_get(&t->exact, key, len, exact_key, t);
    if (row >= 0 || !t->canon.slots || len >= CANON_MAX) return row;
    char q[CANON_MAX], c[CANON_MAX];
    memcpy(q, key, len);
    q[len] = 0;
    int n = t->canon_fn(q, c, sizeof c, t->canon_ctx);
    if (n < 0 || n >= CANON_MAX) return NAS_ENOTFOUND;
    return index_get(&t->canon, c, (size_t)n, canon_key, t);
}

const char *nas_table_cell(const nas_table *t, int row, int col) {
    NAS_ASSERT(row >= 0 && row < t->rows && col >= 0 && col < t->cols);
    return t->pool + t->cells[(size_t)row * (size_t)t->cols + (size_t)col];
}

/* Trailing blanks are allowed (spreadsheet exports); anything else after
 * the number is not. */
int nas_table_number(const nas_table *t, int row, int col, double *out, char *err) {
    const char *s = nas_table_cell(t, row, col);
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    while (end && (*end == ' ' || *end == '\t'))
        end++;
    if (end == s || !end || *end != 0 || errno == ERANGE || !isfinite(v))
        return nas_set_err(err, NAS_EFORMAT, "%s:%d: column '%s' holds '%.32s', not a number",
                           t->name, t->lines[row], nas_table_header(t, col), s);
    *out = v;
    return NAS_OK;
}

/* Canonical keys live in fixed slots of CANON_MAX bytes, one per row, so
 * the index can point at them by row number like the exact index. */
int nas_table_reindex(nas_table *t, nas_table_canon_fn canon, void *ctx) {
    nas_free(t->canon.slots);
    nas_free(t->canon_pool);
    t->canon.slots = NULL;
    t->canon_pool = nas_calloc((size_t)t->rows + 1, CANON_MAX);
    if (!t->canon_pool || index_build(&t->canon, t->rows) < 0) {
        nas_free(t->canon_pool);
        t->canon_pool = NULL;
        return NAS_ENOMEM;
    }
    t->canon_fn = canon;
    t->canon_ctx = ctx;
    int n = 0;
    for (int row = 0; row < t->rows; row++) {
        char *dst = t->canon_pool + (size_t)row * CANON_MAX;
        int len = canon(exact_key(t, row), dst, CANON_MAX, ctx);
        if (len < 0 || len >= CANON_MAX) {
            dst[0] = 0;
            continue;
        }
        dst[len] = 0;
        if (index_put(&t->canon, dst, row, canon_key, t) < 0) n++;
    }
    return n;
}
