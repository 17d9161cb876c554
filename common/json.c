/*
 * json.c - see json.h.
 *
 * The reader is a recursive-descent parser over (buf, len) with an explicit
 * position, so every access is bounds-checked against `len` and nothing
 * depends on a terminating NUL.  Recursion depth equals nesting depth,
 * which max_depth bounds, so hostile input cannot exhaust the stack.
 * Every failure path frees what it built and reports the byte offset.
 */
#include "common/json.h"

#include "common/alloc.h"
#include "common/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH_CAP  1024 /* the stack must hold this many nested frames */
#define JSON_NUMBER_MAX 512  /* longest number text we convert */

/* Parser state: the input span, the cursor and the error sink.  Nothing
 * else is global, so parses on different threads never interact. */
typedef struct parser {
    const char *buf; /* input, not NUL-terminated */
    size_t len;      /* bytes of input */
    size_t pos;      /* next byte to read; may equal len, never exceeds it */
    int max_depth;   /* nesting limit for arrays and objects */
    char *err;       /* caller's message buffer (may be NULL) */
} parser;

static void free_value(nas_json *v);
static int parse_value(parser *ps, nas_json *v, int depth);

// ----------------------------------------------------------------------------
// Errors

/* Describe the byte at `pos` for a message: 'x', 0x0A, or end of input. */
static void describe_at(const parser *ps, size_t pos, char *out, size_t n) {
    if (pos >= ps->len) {
        snprintf(out, n, "end of input");
        return;
    }
    unsigned char c = (unsigned char)ps->buf[pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf(out, n, "'%c'", c);
    else
        snprintf(out, n, "byte 0x%02X", c);
}

static int fail_at(parser *ps, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every syntax error goes through here, so every message has the same
 * "json: offset N: " prefix that callers (safetensors, genome) can wrap. */
static int fail_at(parser *ps, size_t pos, const char *fmt, ...) {
    char msg[NAS_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nas_set_err(ps->err, NAS_EFORMAT, "json: offset %zu: %s", pos, msg);
}

static int fail_oom(parser *ps) {
    return nas_set_err(ps->err, NAS_ENOMEM, "json: offset %zu: out of memory", ps->pos);
}

/* JSON whitespace is exactly these four bytes; form feeds and vertical tabs
 * are errors, as RFC 8259 says. */
static void skip_ws(parser *ps) {
    while (ps->pos < ps->len) {
        char c = ps->buf[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ps->pos++;
    }
}

// ----------------------------------------------------------------------------
// Strings

/* Four hex digits of a \u escape; the caller checked that 4 bytes exist. */
static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Encode a code point (already validated: no surrogates, <= U+10FFFF). */
static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence starting at s[0] (a byte >= 0x80),
 * or 0 if it is malformed, overlong, a surrogate or beyond U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    size_t n;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* Decode the escape at ps->pos (just after the backslash) into o; returns
 * bytes written or a negative error. */
static int parse_escape(parser *ps, char *o, size_t *wrote) {
    size_t at = ps->pos - 1; /* the backslash, for messages */
    if (ps->pos >= ps->len) return fail_at(ps, at, "unterminated escape at end of input");
    char c = ps->buf[ps->pos++];
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    const char *hit = c ? strchr(from, c) : NULL;
    if (hit) {
        o[0] = to[hit - from];
        *wrote = 1;
        return 0;
    }
    if (c != 'u') {
        char d[32];
        describe_at(ps, ps->pos - 1, d, sizeof d);
        return fail_at(ps, at, "invalid escape \\ followed by %s", d);
    }
    unsigned cp;
    if (ps->len - ps->pos < 4 || hex4(ps->buf + ps->pos, &cp) < 0)
        return fail_at(ps, at, "\\u must be followed by 4 hex digits");
    ps->pos += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_at(ps, at, "lone low surrogate \\u%04X", cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (ps->len - ps->pos < 6 || ps->buf[ps->pos] != '\\' || ps->buf[ps->pos + 1] != 'u' ||
            hex4(ps->buf + ps->pos + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
            return fail_at(ps, at, "high surrogate \\u%04X not followed by a low surrogate", cp);
        ps->pos += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0) return fail_at(ps, at, "\\u0000 is not allowed (strings are C strings)");
    *wrote = put_utf8(o, cp);
    return 0;
}

/* Parse a string starting at the opening quote.  The decoded form is never
 * longer than the raw span, which bounds the allocation up front. */
static int parse_string(parser *ps, char **out, size_t *out_len) {
    size_t start = ps->pos++;
    size_t end = ps->pos;
    while (end < ps->len && ps->buf[end] != '"')
        end += ps->buf[end] == '\\' ? 2 : 1;
    if (end >= ps->len) return fail_at(ps, start, "unterminated string");
    char *s = nas_malloc(end - ps->pos + 1);
    if (!s) return fail_oom(ps);
    size_t n = 0;
    int rc = 0;
    while (ps->pos < end) {
        unsigned char c = (unsigned char)ps->buf[ps->pos];
        if (c == '\\') {
            ps->pos++;
            size_t w = 0;
            if ((rc = parse_escape(ps, s + n, &w)) < 0) goto fail;
            n += w;
        } else if (c < 0x20) {
            rc = fail_at(ps, ps->pos, "control character 0x%02X in string must be escaped", c);
            goto fail;
        } else if (c < 0x80) {
            s[n++] = (char)c;
            ps->pos++;
        } else {
            size_t k = utf8_seq((const unsigned char *)ps->buf + ps->pos, end - ps->pos);
            if (k == 0) {
                rc = fail_at(ps, ps->pos, "invalid UTF-8 byte 0x%02X in string", c);
                goto fail;
            }
            memcpy(s + n, ps->buf + ps->pos, k);
            n += k, ps->pos += k;
        }
    }
    s[n] = 0;
    ps->pos = end + 1;
    *out = s;
    *out_len = n;
    return 0;
fail:
    nas_free(s);
    return rc;
}

// ----------------------------------------------------------------------------
// Numbers and literals

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Check the RFC 8259 number grammar by hand (strtod alone would accept hex,
 * "inf", leading '+' and leading zeros), then convert the exact span. */
static int parse_number(parser *ps, double *out) {
    const char *b = ps->buf;
    size_t start = ps->pos, p = ps->pos, n = ps->len;
    if (p < n && b[p] == '-') p++;
    if (p >= n || !is_digit(b[p])) return fail_at(ps, p, "invalid number: expected a digit");
    if (b[p] == '0') {
        p++;
        if (p < n && is_digit(b[p])) return fail_at(ps, start, "invalid number: leading zero");
    } else {
        while (p < n && is_digit(b[p]))
            p++;
    }
    if (p < n && b[p] == '.') {
        p++;
        if (p >= n || !is_digit(b[p]))
            return fail_at(ps, p, "invalid number: expected a digit after '.'");
        while (p < n && is_digit(b[p]))
            p++;
    }
    if (p < n && (b[p] == 'e' || b[p] == 'E')) {
        p++;
        if (p < n && (b[p] == '+' || b[p] == '-')) p++;
        if (p >= n || !is_digit(b[p]))
            return fail_at(ps, p, "invalid number: expected a digit in the exponent");
        while (p < n && is_digit(b[p]))
            p++;
    }
    size_t span = p - start;
    if (span >= JSON_NUMBER_MAX)
        return fail_at(ps, start, "number longer than %d characters", JSON_NUMBER_MAX - 1);
    char tmp[JSON_NUMBER_MAX];
    memcpy(tmp, b + start, span);
    tmp[span] = 0;
    double d = strtod(tmp, NULL);
    if (!isfinite(d)) return fail_at(ps, start, "number %s out of range", tmp);
    *out = d;
    ps->pos = p;
    return 0;
}

/* true, false or null; anything else starting a value is reported here,
 * which is why the message says "expected a value". */
static int parse_literal(parser *ps, nas_json *v) {
    static const struct {
        const char *word;
        nas_json_type type;
        int boolean;
    } lits[] = {
        {"true", NAS_JSON_BOOL, 1}, {"false", NAS_JSON_BOOL, 0}, {"null", NAS_JSON_NULL, 0}};
    for (size_t i = 0; i < NAS_ARRAY_LEN(lits); i++) {
        size_t wl = strlen(lits[i].word);
        if (ps->len - ps->pos >= wl && memcmp(ps->buf + ps->pos, lits[i].word, wl) == 0) {
            v->type = lits[i].type;
            v->boolean = lits[i].boolean;
            ps->pos += wl;
            return 0;
        }
    }
    char d[32];
    describe_at(ps, ps->pos, d, sizeof d);
    return fail_at(ps, ps->pos, "unexpected %s, expected a value", d);
}

// ----------------------------------------------------------------------------
// Arrays and objects

/* Elements are stored by value in one array that doubles as it grows:
 * one allocation per doubling rather than one per element. */
static int parse_array(parser *ps, nas_json *v, int depth) {
    size_t cap = 0;
    int rc;
    ps->pos++; /* '[' */
    v->type = NAS_JSON_ARRAY;
    skip_ws(ps);
    if (ps->pos < ps->len && ps->buf[ps->pos] == ']') {
        ps->pos++;
        return 0;
    }
    for (;;) {
        if (v->len == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            nas_json *ni = nas_realloc(v->items, ncap * sizeof *ni);
            if (!ni) return fail_oom(ps); /* the caller frees v */
            v->items = ni, cap = ncap;
        }
        nas_json *item = &v->items[v->len];
        memset(item, 0, sizeof *item);
        v->len++; /* counted before parsing so a partial item is freed too */
        rc = parse_value(ps, item, depth + 1);
        if (rc < 0) return rc;
        skip_ws(ps);
        if (ps->pos < ps->len && ps->buf[ps->pos] == ',') {
            ps->pos++;
            continue;
        }
        if (ps->pos < ps->len && ps->buf[ps->pos] == ']') {
            ps->pos++;
            return 0;
        }
        char d[32];
        describe_at(ps, ps->pos, d, sizeof d);
        return fail_at(ps, ps->pos, "unexpected %s in array, expected ',' or ']'", d);
    }
}

/* Order members by key, then by position, so that of two equal keys the
 * earlier one sorts first and the later one is reported. */
static int cmp_member(const void *a, const void *b) {
    const nas_json_member *x = *(const nas_json_member *const *)a;
    const nas_json_member *y = *(const nas_json_member *const *)b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->key_offset < y->key_offset ? -1 : 1;
}

/* Reject duplicate keys in O(n log n): sort pointers by key and compare
 * neighbours.  The later duplicate (in document order) is reported. */
static int check_duplicates(parser *ps, const nas_json *v) {
    if (v->len < 2) return 0;
    const nas_json_member **idx = nas_malloc(v->len * sizeof *idx);
    if (!idx) return fail_oom(ps);
    for (size_t i = 0; i < v->len; i++)
        idx[i] = &v->members[i];
    qsort(idx, v->len, sizeof *idx, cmp_member);
    int rc = 0;
    for (size_t i = 1; i < v->len; i++) {
        if (strcmp(idx[i - 1]->key, idx[i]->key) == 0) {
            rc = fail_at(ps, idx[i]->key_offset, "duplicate key \"%.64s\"", idx[i]->key);
            break;
        }
    }
    nas_free(idx);
    return rc;
}

/* Members keep document order (safetensors and genome readers report
 * problems in the order a person reads the file). */
static int parse_object(parser *ps, nas_json *v, int depth) {
    size_t cap = 0;
    int rc;
    ps->pos++; /* '{' */
    v->type = NAS_JSON_OBJECT;
    skip_ws(ps);
    if (ps->pos < ps->len && ps->buf[ps->pos] == '}') {
        ps->pos++;
        return 0;
    }
    for (;;) {
        skip_ws(ps);
        if (ps->pos >= ps->len || ps->buf[ps->pos] != '"') {
            char d[32];
            describe_at(ps, ps->pos, d, sizeof d);
            return fail_at(ps, ps->pos, "unexpected %s in object, expected a string key", d);
        }
        if (v->len == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            nas_json_member *nm = nas_realloc(v->members, ncap * sizeof *nm);
            if (!nm) return fail_oom(ps);
            v->members = nm, cap = ncap;
        }
        nas_json_member *m = &v->members[v->len];
        memset(m, 0, sizeof *m);
        m->key_offset = ps->pos;
        if ((rc = parse_string(ps, &m->key, &m->key_len)) < 0) return rc;
        v->len++; /* the key is owned from here on, so count it for free_value */
        skip_ws(ps);
        if (ps->pos >= ps->len || ps->buf[ps->pos] != ':') {
            char d[32];
            describe_at(ps, ps->pos, d, sizeof d);
            return fail_at(ps, ps->pos, "unexpected %s after key, expected ':'", d);
        }
        ps->pos++;
        if ((rc = parse_value(ps, &m->value, depth + 1)) < 0) return rc;
        skip_ws(ps);
        if (ps->pos < ps->len && ps->buf[ps->pos] == ',') {
            ps->pos++;
            continue;
        }
        if (ps->pos < ps->len && ps->buf[ps->pos] == '}') {
            ps->pos++;
            return check_duplicates(ps, v);
        }
        char d[32];
        describe_at(ps, ps->pos, d, sizeof d);
        return fail_at(ps, ps->pos, "unexpected %s in object, expected ',' or '}'", d);
    }
}

/* Parse one value into *v (zeroed by the caller).  On failure *v may hold a
 * partial tree, which the caller releases with free_value. */
static int parse_value(parser *ps, nas_json *v, int depth) {
    skip_ws(ps);
    v->offset = ps->pos;
    if (ps->pos >= ps->len)
        return fail_at(ps, ps->pos, "unexpected end of input, expected a value");
    char c = ps->buf[ps->pos];
    if (c == '[' || c == '{') {
        if (depth >= ps->max_depth)
            return fail_at(ps, ps->pos, "nesting deeper than %d levels", ps->max_depth);
        return c == '[' ? parse_array(ps, v, depth) : parse_object(ps, v, depth);
    }
    if (c == '"') {
        v->type = NAS_JSON_STRING;
        return parse_string(ps, &v->str, &v->len);
    }
    if (c == '-' || is_digit(c)) {
        v->type = NAS_JSON_NUMBER;
        return parse_number(ps, &v->number);
    }
    return parse_literal(ps, v);
}

/* Free what a value owns (not the value itself, which lives in its
 * parent's array).  Safe on a zeroed or partially parsed value. */
static void free_value(nas_json *v) {
    if (v->type == NAS_JSON_STRING) {
        nas_free(v->str);
    } else if (v->type == NAS_JSON_ARRAY) {
        for (size_t i = 0; i < v->len; i++)
            free_value(&v->items[i]);
        nas_free(v->items);
    } else if (v->type == NAS_JSON_OBJECT) {
        for (size_t i = 0; i < v->len; i++) {
            nas_free(v->members[i].key);
            free_value(&v->members[i].value);
        }
        nas_free(v->members);
    }
}

int nas_json_parse(const char *buf, size_t len, int max_depth, nas_json **out, char *err) {
    if ((!buf && len > 0) || !out)
        return nas_set_err(err, NAS_EINVAL, "json: NULL buffer or output");
    if (max_depth < 0 || max_depth > JSON_DEPTH_CAP)
        return nas_set_err(err, NAS_EINVAL, "json: max_depth %d outside 0..%d", max_depth,
                           JSON_DEPTH_CAP);
    parser ps = {buf, len, 0, max_depth ? max_depth : NAS_JSON_MAX_DEPTH, err};
    nas_json *root = nas_calloc(1, sizeof *root);
    if (!root) return fail_oom(&ps);
    int rc = parse_value(&ps, root, 0);
    if (rc == 0) {
        skip_ws(&ps);
        if (ps.pos < len) {
            char d[32];
            describe_at(&ps, ps.pos, d, sizeof d);
            rc = fail_at(&ps, ps.pos, "trailing %s after the document", d);
        }
    }
    if (rc < 0) {
        free_value(root);
        nas_free(root);
        return rc;
    }
    *out = root;
    return 0;
}

void nas_json_free(nas_json **root) {
    if (!root || !*root) return;
    free_value(*root);
    nas_free(*root);
    *root = NULL;
}

// ----------------------------------------------------------------------------
// Lookups

/* A linear scan: the objects nasd reads have a handful of keys (genomes,
 * config-like replies) or are walked in order anyway (safetensors). */
const nas_json *nas_json_get(const nas_json *obj, const char *key) {
    if (!obj || obj->type != NAS_JSON_OBJECT || !key) return NULL;
    for (size_t i = 0; i < obj->len; i++)
        if (strcmp(obj->members[i].key, key) == 0) return &obj->members[i].value;
    return NULL;
}

const nas_json *nas_json_at(const nas_json *arr, size_t i) {
    if (!arr || arr->type != NAS_JSON_ARRAY || i >= arr->len) return NULL;
    return &arr->items[i];
}

const char *nas_json_type_name(nas_json_type t) {
    static const char *const names[] = {"null", "bool", "number", "string", "array", "object"};
    return (unsigned)t < NAS_ARRAY_LEN(names) ? names[t] : "unknown";
}

/* Find `key` in `obj` and check its type; shared by the typed getters. */
static int get_typed(const nas_json *obj, const char *key, nas_json_type want, const nas_json **v,
                     char *err) {
    if (!obj || obj->type != NAS_JSON_OBJECT)
        return nas_set_err(err, NAS_EFORMAT, "json: looking up \"%s\" in a non-object", key);
    *v = nas_json_get(obj, key);
    if (!*v)
        return nas_set_err(err, NAS_ENOTFOUND, "json: offset %zu: missing key \"%s\"", obj->offset,
                           key);
    if ((*v)->type != want)
        return nas_set_err(err, NAS_EFORMAT, "json: offset %zu: \"%s\" has type %s, expected %s",
                           (*v)->offset, key, nas_json_type_name((*v)->type),
                           nas_json_type_name(want));
    return 0;
}

int nas_json_get_number(const nas_json *obj, const char *key, double *out, char *err) {
    const nas_json *v;
    int rc = get_typed(obj, key, NAS_JSON_NUMBER, &v, err);
    if (rc == 0) *out = v->number;
    return rc;
}

int nas_json_to_int64(const nas_json *v, int64_t lo, int64_t hi, const char *what, int64_t *out,
                      char *err) {
    if (!v || v->type != NAS_JSON_NUMBER)
        return nas_set_err(err, NAS_EFORMAT, "json: offset %zu: %s must be a number",
                           v ? v->offset : 0, what);
    double d = v->number;
    /* 2^63 is exactly representable; anything at or beyond it does not fit. */
    if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0 ||
        (int64_t)d < lo || (int64_t)d > hi)
        return nas_set_err(err, NAS_EFORMAT,
                           "json: offset %zu: %s must be a whole number in %lld..%lld, got %.17g",
                           v->offset, what, (long long)lo, (long long)hi, d);
    *out = (int64_t)d;
    return 0;
}

int nas_json_get_int64(const nas_json *obj, const char *key, int64_t *out, char *err) {
    const nas_json *v;
    int rc = get_typed(obj, key, NAS_JSON_NUMBER, &v, err);
    if (rc < 0) return rc;
    return nas_json_to_int64(v, INT64_MIN, INT64_MAX, key, out, err);
}

int nas_json_get_bool(const nas_json *obj, const char *key, int *out, char *err) {
    const nas_json *v;
    int rc = get_typed(obj, key, NAS_JSON_BOOL, &v, err);
    if (rc == 0) *out = v->boolean;
    return rc;
}

int nas_json_get_string(const nas_json *obj, const char *key, const char **out, char *err) {
    const nas_json *v;
    int rc = get_typed(obj, key, NAS_JSON_STRING, &v, err);
    if (rc == 0) *out = v->str;
    return rc;
}
