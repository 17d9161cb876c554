/*
 * json.h - a small, bounded JSON reader and a JSON writer.
 *
 * The reader is a pure function of (bytes, length): it never reads past
 * `len`, never trusts a NUL terminator, limits nesting depth, and reports
 * the first problem with its byte offset ("json: offset 17: invalid escape
 * '\q'").  It accepts exactly RFC 8259 JSON with three deliberate
 * restrictions that keep callers safe: duplicate object keys are rejected,
 * strings must be valid UTF-8 and may not contain U+0000 (so every decoded
 * string is an ordinary C string), and numbers must be finite doubles.
 * Numbers are converted with strtod, so the process must stay in the "C"
 * numeric locale (nasd never calls setlocale).
 *
 * Users: genome JSON, safetensors headers, `--json` output, status replies.
 *
 * The writer appends to a growable buffer.  Keys and values written through
 * the nas_json_buf_* value functions get their separating commas
 * automatically; floats are printed so that they read back bit-exact
 * (%.9g for float, %.17g for double); NaN and infinities, which JSON cannot
 * express, are written as null.  Errors (out of memory) are sticky and
 * reported once by nas_json_buf_status(), so a writer can emit a whole
 * document and check once at the end.
 */
#ifndef NAS_JSON_H
#define NAS_JSON_H

#include <stddef.h>
#include <stdint.h>

#define NAS_JSON_MAX_DEPTH 64 /* default nesting limit; genomes need ~4, safetensors 3 */

typedef enum nas_json_type {
    NAS_JSON_NULL = 0,
    NAS_JSON_BOOL = 1,
    NAS_JSON_NUMBER = 2,
    NAS_JSON_STRING = 3,
    NAS_JSON_ARRAY = 4,
    NAS_JSON_OBJECT = 5,
} nas_json_type;

typedef struct nas_json nas_json;
typedef struct nas_json_member nas_json_member;

/* One parsed value.  The tree is read-only for users; it is owned by the
 * root returned from nas_json_parse() and freed with nas_json_free(). */
struct nas_json {
    nas_json_type type;
    size_t offset;            /* byte offset of the value's first character */
    int boolean;              /* NAS_JSON_BOOL: 0 or 1 */
    double number;            /* NAS_JSON_NUMBER: always finite */
    char *str;                /* NAS_JSON_STRING: decoded UTF-8, NUL-terminated */
    size_t len;               /* string length in bytes, or element/member count */
    nas_json *items;          /* NAS_JSON_ARRAY: len elements */
    nas_json_member *members; /* NAS_JSON_OBJECT: len members, in document order */
};

struct nas_json_member {
    char *key;         /* decoded, NUL-terminated, unique within the object */
    size_t key_len;    /* bytes */
    size_t key_offset; /* byte offset of the key's opening quote */
    nas_json value;
};

/* ---------------------------------------------------------------------------
 * Reader
 */

/* Parse exactly one JSON value from buf[0..len) (surrounding whitespace
 * allowed, anything else after it is an error).  max_depth bounds nesting
 * of arrays and objects (0 means NAS_JSON_MAX_DEPTH).  On success *out owns
 * the tree and 0 is returned; on failure *out is untouched, err names the
 * byte offset and the problem, and NAS_EFORMAT (or NAS_ENOMEM / NAS_EINVAL
 * for a NULL buffer with len > 0) is returned. */
int nas_json_parse(const char *buf, size_t len, int max_depth, nas_json **out, char *err);

/* Free a tree returned by nas_json_parse and null the pointer; NULL is fine. */
void nas_json_free(nas_json **root);

/* Member `key` of an object, or NULL if absent or `obj` is not an object. */
const nas_json *nas_json_get(const nas_json *obj, const char *key);

/* Element i of an array, or NULL if out of range or not an array. */
const nas_json *nas_json_at(const nas_json *arr, size_t i);

/* Short name of a type ("object", "number", ...) for error messages. */
const char *nas_json_type_name(nas_json_type t);

/* Typed lookups of object members, for config-like documents.  Each
 * returns 0 and sets *out, NAS_ENOTFOUND if the key is absent (err set,
 * *out untouched, so a caller may treat it as "use the default"), or
 * NAS_EFORMAT if the member has the wrong type or (for integers) is not a
 * whole number within range; err names the key and its byte offset. */
int nas_json_get_number(const nas_json *obj, const char *key, double *out, char *err);
int nas_json_get_int64(const nas_json *obj, const char *key, int64_t *out, char *err);
int nas_json_get_bool(const nas_json *obj, const char *key, int *out, char *err);
int nas_json_get_string(const nas_json *obj, const char *key, const char **out, char *err);

/* The number `v` as an int64 if it is integral and within [lo, hi];
 * returns 0 or NAS_EFORMAT (err names `what` and the offset). */
int nas_json_to_int64(const nas_json *v, int64_t lo, int64_t hi, const char *what, int64_t *out,
                      char *err);

/* ---------------------------------------------------------------------------
 * Writer
 */

typedef struct nas_json_buf {
    char *data; /* NUL-terminated once anything was written; owned */
    size_t len; /* bytes written, excluding the NUL */
    size_t cap; /* allocated bytes */
    int status; /* 0 or the first error (NAS_ENOMEM); sticky */
} nas_json_buf;

/* Start an empty buffer (allocates nothing yet). */
void nas_json_buf_init(nas_json_buf *b);
/* Free the buffer's memory and reset it to empty. */
void nas_json_buf_fini(nas_json_buf *b);
/* 0 if every append so far succeeded, else the first error. */
int nas_json_buf_status(const nas_json_buf *b);
/* Hand the text to the caller (free with nas_free) and reset the buffer;
 * returns NULL if an append failed (the buffer is then freed). */
char *nas_json_buf_take(nas_json_buf *b, size_t *len);

/* Append raw text as is: no escaping, no automatic comma. */
void nas_json_buf_raw(nas_json_buf *b, const char *s, size_t n);
/* Append printf-formatted raw text (no escaping, no automatic comma). */
void nas_json_buf_printf(nas_json_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Structure and values.  Each of these first writes a ',' when the buffer
 * ends in a completed value, so `obj_begin, key, i64, key, str, obj_end`
 * produces {"a":1,"b":"x"} with no bookkeeping by the caller. */
void nas_json_buf_obj_begin(nas_json_buf *b);
void nas_json_buf_obj_end(nas_json_buf *b);
void nas_json_buf_arr_begin(nas_json_buf *b);
void nas_json_buf_arr_end(nas_json_buf *b);
void nas_json_buf_key(nas_json_buf *b, const char *key); /* "key": */
void nas_json_buf_str(nas_json_buf *b, const char *s);   /* quoted, escaped; NULL -> null */
void nas_json_buf_strn(nas_json_buf *b, const char *s, size_t n);
void nas_json_buf_i64(nas_json_buf *b, int64_t v);
void nas_json_buf_u64(nas_json_buf *b, uint64_t v);
void nas_json_buf_f32(nas_json_buf *b, float v);  /* %.9g: round-trips a float */
void nas_json_buf_f64(nas_json_buf *b, double v); /* %.17g: round-trips a double */
void nas_json_buf_bool(nas_json_buf *b, int v);
void nas_json_buf_null(nas_json_buf *b);

/* Serialise a parsed tree (compact form); numbers use %.17g. */
void nas_json_buf_value(nas_json_buf *b, const nas_json *v);

#endif
