/*
 * json_write.c - the JSON writer of json.h (nas_json_buf).
 *
 * A growable, NUL-terminated buffer with a sticky status: the first failed
 * allocation is remembered and every later append becomes a no-op, so a
 * caller emits a whole document and checks nas_json_buf_status() once
 * (the pattern of the network builder's sticky errors).  Separators are
 * derived from the last byte written, which is enough state for JSON:
 * after '{', '[', ':' or ',' a value needs nothing, after anything else
 * (a closing bracket, a quote, a digit, a letter of true/false/null) it
 * needs a comma.  That rule is why nas_json_buf_raw() output must be a
 * complete value or structural text.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Buffer

void nas_json_buf_init(nas_json_buf *b) {
    memset(b, 0, sizeof *b);
}

void nas_json_buf_fini(nas_json_buf *b) {
    nas_free(b->data);
    memset(b, 0, sizeof *b);
}

int nas_json_buf_status(const nas_json_buf *b) {
    return b->status;
}

/* Ownership of the text moves to the caller; the buffer is left empty and
 * reusable, so a status reply loop can build one document after another. */
char *nas_json_buf_take(nas_json_buf *b, size_t *len) {
    if (b->status < 0) {
        nas_json_buf_fini(b);
        return NULL;
    }
    if (!b->data) nas_json_buf_raw(b, "", 0); /* an empty document is "" */
    if (b->status < 0) {
        nas_json_buf_fini(b);
        return NULL;
    }
    char *s = b->data;
    if (len) *len = b->len;
    memset(b, 0, sizeof *b);
    return s;
}

/* Make room for n more bytes plus the NUL; sets the sticky status on OOM.
 * Capacity doubles, so building a document of n bytes costs O(n) copies. */
static int buf_reserve(nas_json_buf *b, size_t n) {
    if (b->status < 0) return -1;
    if (b->len + n + 1 <= b->cap && b->data) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
        if (cap > SIZE_MAX / 2) {
            b->status = NAS_ENOMEM;
            return -1;
        }
        cap *= 2;
    }
    char *d = nas_realloc(b->data, cap);
    if (!d) {
        b->status = NAS_ENOMEM;
        return -1;
    }
    b->data = d, b->cap = cap;
    return 0;
}

void nas_json_buf_raw(nas_json_buf *b, const char *s, size_t n) {
    if (buf_reserve(b, n) < 0) return;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void nas_json_buf_printf(nas_json_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) < 0) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

// ----------------------------------------------------------------------------
// Structure and values

/* Write a ',' when the previous byte ends a value, so that consecutive
 * values and key/value pairs are separated without caller bookkeeping. */
static void buf_sep(nas_json_buf *b) {
    if (b->len == 0 || b->status < 0) return;
    char last = b->data[b->len - 1];
    if (last != '{' && last != '[' && last != ':' && last != ',') nas_json_buf_raw(b, ",", 1);
}

void nas_json_buf_obj_begin(nas_json_buf *b) {
    buf_sep(b);
    nas_json_buf_raw(b, "{", 1);
}

void nas_json_buf_obj_end(nas_json_buf *b) {
    nas_json_buf_raw(b, "}", 1);
}

void nas_json_buf_arr_begin(nas_json_buf *b) {
    buf_sep(b);
    nas_json_buf_raw(b, "[", 1);
}

void nas_json_buf_arr_end(nas_json_buf *b) {
    nas_json_buf_raw(b, "]", 1);
}

/* Quoted, escaped string: the two characters JSON requires (quote and
 * backslash) and every control character; other bytes pass through, so
 * the caller supplies UTF-8. */
static void buf_quoted(nas_json_buf *b, const char *s, size_t n) {
    if (buf_reserve(b, n + 2) < 0) return;
    nas_json_buf_raw(b, "\"", 1);
    size_t run = 0; /* start of the current run of plain bytes */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        nas_json_buf_raw(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            nas_json_buf_raw(b, "\\\"", 2);
            break;
        case '\\':
            nas_json_buf_raw(b, "\\\\", 2);
            break;
        case '\n':
            nas_json_buf_raw(b, "\\n", 2);
            break;
        case '\r':
            nas_json_buf_raw(b, "\\r", 2);
            break;
        case '\t':
            nas_json_buf_raw(b, "\\t", 2);
            break;
        case '\b':
            nas_json_buf_raw(b, "\\b", 2);
            break;
        case '\f':
            nas_json_buf_raw(b, "\\f", 2);
            break;
        default:
            nas_json_buf_printf(b, "\\u%04x", c);
            break;
        }
    }
    nas_json_buf_raw(b, s + run, n - run);
    nas_json_buf_raw(b, "\"", 1);
}

void nas_json_buf_key(nas_json_buf *b, const char *key) {
    buf_sep(b);
    buf_quoted(b, key, strlen(key));
    nas_json_buf_raw(b, ":", 1);
}

void nas_json_buf_strn(nas_json_buf *b, const char *s, size_t n) {
    buf_sep(b);
    buf_quoted(b, s, n);
}

void nas_json_buf_str(nas_json_buf *b, const char *s) {
    if (!s) {
        nas_json_buf_null(b);
        return;
    }
    nas_json_buf_strn(b, s, strlen(s));
}

void nas_json_buf_i64(nas_json_buf *b, int64_t v) {
    buf_sep(b);
    nas_json_buf_printf(b, "%lld", (long long)v);
}

void nas_json_buf_u64(nas_json_buf *b, uint64_t v) {
    buf_sep(b);
    nas_json_buf_printf(b, "%llu", (unsigned long long)v);
}

/* %.9g and %.17g are the shortest fixed precisions that always read back
 * to the same float and double (FLT_DECIMAL_DIG and DBL_DECIMAL_DIG): a
 * learning rate or loss written to JSON and read back compares equal. */
void nas_json_buf_f32(nas_json_buf *b, float v) {
    if (!isfinite(v)) {
        nas_json_buf_null(b);
        return;
    }
    buf_sep(b);
    nas_json_buf_printf(b, "%.9g", (double)v);
}

void nas_json_buf_f64(nas_json_buf *b, double v) {
    if (!isfinite(v)) {
        nas_json_buf_null(b);
        return;
    }
    buf_sep(b);
    nas_json_buf_printf(b, "%.17g", v);
}

void nas_json_buf_bool(nas_json_buf *b, int v) {
    buf_sep(b);
    nas_json_buf_raw(b, v ? "true" : "false", v ? 4 : 5);
}

void nas_json_buf_null(nas_json_buf *b) {
    buf_sep(b);
    nas_json_buf_raw(b, "null", 4);
}

/* Recursion depth is the tree's depth, which the parser bounded. */
void nas_json_buf_value(nas_json_buf *b, const nas_json *v) {
    switch (v->type) {
    case NAS_JSON_NULL:
        nas_json_buf_null(b);
        break;
    case NAS_JSON_BOOL:
        nas_json_buf_bool(b, v->boolean);
        break;
    case NAS_JSON_NUMBER:
        nas_json_buf_f64(b, v->number);
        break;
    case NAS_JSON_STRING:
        nas_json_buf_strn(b, v->str, v->len);
        break;
    case NAS_JSON_ARRAY:
        nas_json_buf_arr_begin(b);
        for (size_t i = 0; i < v->len; i++)
            nas_json_buf_value(b, &v->items[i]);
        nas_json_buf_arr_end(b);
        break;
    case NAS_JSON_OBJECT:
        nas_json_buf_obj_begin(b);
        for (size_t i = 0; i < v->len; i++) {
            nas_json_buf_key(b, v->members[i].key);
            nas_json_buf_value(b, &v->members[i].value);
        }
        nas_json_buf_obj_end(b);
        break;
    }
}
