/*
 * safetensors.c - see safetensors.h.
 *
 * Reading trusts nothing: every length, offset and shape from the file is
 * checked (with overflow-safe arithmetic) before any byte of tensor data
 * is touched, and a loaded file owns copies of everything, so the input
 * buffer can be a short-lived network frame.  Tensor data is converted
 * from little-endian explicitly, so a big-endian host reads the same
 * numbers (the copy is a memcpy on little-endian hosts).
 */
#define _XOPEN_SOURCE 700 /* mkstemp, fsync, fchmod */
#include "common/safetensors.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JSON_DEPTH 8           /* root -> tensor -> shape is 3 deep; allow slack */
#define MAX_EXACT      (1LL << 53) /* JSON numbers are doubles: larger integers are inexact */

// ----------------------------------------------------------------------------
// Byte order

/* The header length is little-endian on every host; assembling it byte by
 * byte also avoids an unaligned load from a network buffer. */
static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void store_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Copy n floats between host order and little-endian (an involution). */
static void copy_f32_le(void *dst, const void *src, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (size_t i = 0; i < n; i++, s += 4, d += 4)
        d[0] = s[3], d[1] = s[2], d[2] = s[1], d[3] = s[0];
#else
    if (n) memcpy(dst, src, n * 4);
#endif
}

/* The bound keeps numel * 4 (the byte count) representable in int64, so
 * callers can multiply by sizeof(float) without a second check. */
int64_t nas_safetensors_numel(const nas_safetensors_tensor *t) {
    if (t->ndim < 0 || t->ndim > NAS_SAFETENSORS_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        int64_t s = t->shape[d];
        if (s < 0) return -1;
        if (s != 0 && n > INT64_MAX / 4 / s) return -1; /* keeps n * 4 bytes representable */
        n *= s;
    }
    return n;
}

// ----------------------------------------------------------------------------
// Encode and save

/* Duplicate detection sorts pointers, O(n log n): a model can have
 * thousands of parameters and the pairwise check would be quadratic. */
static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort n strings in place and return one that occurs twice, or NULL. */
static const char *find_duplicate(const char **names, size_t n) {
    qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

/* 1 if `nm` may name a tensor: non-empty, at most NAS_SAFETENSORS_MAX_NAME
 * bytes, and not the reserved "__metadata__".  Writer and reader apply the
 * same rule, so whatever parses can be written back. */
static int name_ok(const char *nm) {
    size_t nl = nm ? strlen(nm) : 0;
    return nl > 0 && nl <= NAS_SAFETENSORS_MAX_NAME && strcmp(nm, "__metadata__") != 0;
}

/* Check every tensor and metadata pair before writing anything. */
static int validate_inputs(const nas_safetensors_tensor *t, size_t count,
                           const nas_safetensors_meta *meta, size_t nmeta, char *err) {
    size_t most = count > nmeta ? count : nmeta;
    const char **names = nas_malloc((most ? most : 1) * sizeof *names);
    if (!names) return nas_set_err(err, NAS_ENOMEM, "safetensors: out of memory");
    int rc = NAS_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const char *nm = t[i].name;
        if (!name_ok(nm)) {
            nas_set_err(err, rc,
                        "safetensors: tensor %zu: name \"%.64s\" is empty, longer than %d"
                        " bytes or reserved",
                        i, nm ? nm : "", NAS_SAFETENSORS_MAX_NAME);
            goto done;
        }
        int64_t numel = nas_safetensors_numel(&t[i]);
        if (numel < 0) {
            nas_set_err(err, rc,
                        "safetensors: tensor '%.100s': bad shape (ndim %d, negative or"
                        " overflowing dimensions)",
                        nm, t[i].ndim);
            goto done;
        }
        if (numel > 0 && !t[i].data) {
            nas_set_err(err, rc, "safetensors: tensor '%.100s': NULL data", nm);
            goto done;
        }
        names[i] = nm;
    }
    const char *dup = find_duplicate(names, count);
    if (dup) {
        nas_set_err(err, rc, "safetensors: duplicate tensor name '%.100s'", dup);
        goto done;
    }
    for (size_t i = 0; i < nmeta; i++) {
        if (!meta[i].key || !*meta[i].key || !meta[i].value) {
            nas_set_err(err, rc, "safetensors: metadata pair %zu has an empty key or NULL value",
                        i);
            goto done;
        }
        names[i] = meta[i].key;
    }
    if ((dup = find_duplicate(names, nmeta))) {
        nas_set_err(err, rc, "safetensors: duplicate metadata key '%.100s'", dup);
        goto done;
    }
    rc = 0;
done:
    nas_free(names);
    return rc;
}

int nas_safetensors_encode(const nas_safetensors_tensor *tensors, size_t count,
                           const nas_safetensors_meta *meta, size_t nmeta, uint8_t **out,
                           size_t *out_len, char *err) {
    int rc = validate_inputs(tensors, count, meta, nmeta, err);
    if (rc < 0) return rc;
    nas_json_buf jb;
    nas_json_buf_init(&jb);
    nas_json_buf_obj_begin(&jb);
    if (nmeta > 0) {
        /* Metadata first, as the reference writer does. */
        nas_json_buf_key(&jb, "__metadata__");
        nas_json_buf_obj_begin(&jb);
        for (size_t i = 0; i < nmeta; i++) {
            nas_json_buf_key(&jb, meta[i].key);
            nas_json_buf_str(&jb, meta[i].value);
        }
        nas_json_buf_obj_end(&jb);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < count; i++) {
        const nas_safetensors_tensor *t = &tensors[i];
        uint64_t bytes = (uint64_t)nas_safetensors_numel(t) * 4;
        nas_json_buf_key(&jb, t->name);
        nas_json_buf_obj_begin(&jb);
        nas_json_buf_key(&jb, "dtype");
        nas_json_buf_str(&jb, "F32");
        nas_json_buf_key(&jb, "shape");
        nas_json_buf_arr_begin(&jb);
        for (int d = 0; d < t->ndim; d++)
            nas_json_buf_i64(&jb, t->shape[d]);
        nas_json_buf_arr_end(&jb);
        nas_json_buf_key(&jb, "data_offsets");
        nas_json_buf_arr_begin(&jb);
        nas_json_buf_u64(&jb, off);
        nas_json_buf_u64(&jb, off + bytes);
        nas_json_buf_arr_end(&jb);
        nas_json_buf_obj_end(&jb);
        if (bytes > SIZE_MAX - off) {
            nas_json_buf_fini(&jb);
            return nas_set_err(err, NAS_EINVAL, "safetensors: total size overflows");
        }
        off += bytes;
    }
    nas_json_buf_obj_end(&jb);
    if (nas_json_buf_status(&jb) < 0) {
        nas_json_buf_fini(&jb);
        return nas_set_err(err, NAS_ENOMEM, "safetensors: out of memory building the header");
    }
    /* Pad with spaces so the data buffer starts 8-byte aligned. */
    size_t hlen = jb.len + (8 - jb.len % 8) % 8;
    size_t total = 8 + hlen + (size_t)off;
    if (total < off) {
        nas_json_buf_fini(&jb);
        return nas_set_err(err, NAS_EINVAL, "safetensors: total size overflows");
    }
    uint8_t *buf = nas_malloc(total);
    if (!buf) {
        nas_json_buf_fini(&jb);
        return nas_set_err(err, NAS_ENOMEM, "safetensors: out of memory for %zu bytes", total);
    }
    store_le64(buf, hlen);
    memcpy(buf + 8, jb.data, jb.len);
    memset(buf + 8 + jb.len, ' ', hlen - jb.len);
    nas_json_buf_fini(&jb);
    uint8_t *p = buf + 8 + hlen;
    for (size_t i = 0; i < count; i++) {
        size_t n = (size_t)nas_safetensors_numel(&tensors[i]);
        copy_f32_le(p, tensors[i].data, n);
        p += n * 4;
    }
    *out = buf;
    *out_len = total;
    return 0;
}

/* write() may write less than asked (signals, pipes, quotas); loop until
 * done so a short write is never mistaken for success. */
static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* fsync the directory holding `path`, so the rename itself is durable. */
static int sync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int nas_safetensors_save(const char *path, const nas_safetensors_tensor *tensors, size_t count,
                         const nas_safetensors_meta *meta, size_t nmeta, char *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nas_safetensors_encode(tensors, count, meta, nmeta, &buf, &len, err);
    if (rc < 0) return rc;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        nas_free(buf);
        return nas_set_err(err, NAS_EINVAL, "safetensors: path too long: %.200s", path);
    }
    const char *step = "create temporary file";
    int fd = mkstemp(tmp);
    if (fd < 0) goto io_fail;
    step = "chmod";
    if (fchmod(fd, 0644) < 0) goto io_fail;
    step = "write";
    if (write_all(fd, buf, len) < 0) goto io_fail;
    step = "fsync";
    if (fsync(fd) < 0) goto io_fail;
    step = "close";
    int cr = close(fd);
    fd = -1;
    if (cr < 0) goto io_fail;
    step = "rename";
    if (rename(tmp, path) < 0) goto io_fail;
    nas_free(buf);
    if (sync_parent_dir(path) < 0)
        return nas_set_err(err, NAS_EIO, "safetensors: %s: fsync of the directory: %s", path,
                           strerror(errno));
    return 0;
io_fail:
    rc = nas_set_err(err, NAS_EIO, "safetensors: %s: %s: %s", step, tmp, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp); /* harmless if mkstemp failed: the template names no file */
    nas_free(buf);
    return rc;
}

// ----------------------------------------------------------------------------
// Parse and load

/* What nas_safetensors.priv points to in a loaded file. */
typedef struct st_priv {
    void *blob;                             /* all tensor data, 64-byte aligned */
    const nas_safetensors_tensor **by_name; /* tensors sorted by name, for find() */
} st_priv;

typedef struct span {
    uint64_t begin, end;
    size_t index;
} span;

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const nas_safetensors_tensor *const *)a)->name,
                  (*(const nas_safetensors_tensor *const *)b)->name);
}

/* Order spans by start (then end) for the overlap sweep. */
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* dtype names of the format that nasd recognises but does not read. */
/* Telling "F16" (valid, not supported) from "Q7" (not safetensors at all)
 * lets the message say whether the file or nasd is the problem. */
static int is_known_dtype(const char *s) {
    static const char *const known[] = {"F64", "F16",  "BF16",    "I64",     "I32",
                                        "I16", "I8",   "U64",     "U32",     "U16",
                                        "U8",  "BOOL", "F8_E4M3", "F8_E5M2", "C64"};
    for (size_t i = 0; i < NAS_ARRAY_LEN(known); i++)
        if (strcmp(s, known[i]) == 0) return 1;
    return 0;
}

/* Validate one tensor entry of the header into t (shape) and sp (offsets). */
static int parse_entry(const nas_json_member *m, uint64_t dlen, nas_safetensors_tensor *t, span *sp,
                       char *err) {
    const char *nm = m->key;
    const nas_json *v = &m->value;
    char jerr[NAS_ERR_LEN];
    if (v->type != NAS_JSON_OBJECT)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: tensor '%.100s': entry must be an object"
                           " (found %s)",
                           nm, nas_json_type_name(v->type));
    if (m->key_len > NAS_SAFETENSORS_MAX_NAME)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: tensor '%.60s...': name longer than %d"
                           " bytes",
                           nm, NAS_SAFETENSORS_MAX_NAME);
    const char *dtype;
    if (nas_json_get_string(v, "dtype", &dtype, jerr) < 0)
        return nas_set_err(err, NAS_EFORMAT, "safetensors: tensor '%.100s': dtype: %s", nm, jerr);
    if (strcmp(dtype, "F32") != 0)
        return nas_set_err(err, is_known_dtype(dtype) ? NAS_EUNSUPPORTED : NAS_EFORMAT,
                           "safetensors: tensor '%.100s': dtype %.20s %s (nasd reads F32 only)", nm,
                           dtype, is_known_dtype(dtype) ? "not supported" : "unknown");
    const nas_json *shape = nas_json_get(v, "shape");
    if (!shape || shape->type != NAS_JSON_ARRAY || shape->len > NAS_SAFETENSORS_MAX_DIMS)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: tensor '%.100s': shape must be an"
                           " array of at most %d dimensions",
                           nm, NAS_SAFETENSORS_MAX_DIMS);
    t->ndim = (int)shape->len;
    for (size_t d = 0; d < shape->len; d++)
        if (nas_json_to_int64(&shape->items[d], 0, MAX_EXACT, "a dimension", &t->shape[d], jerr) <
            0)
            return nas_set_err(err, NAS_EFORMAT, "safetensors: tensor '%.100s': shape: %s", nm,
                               jerr);
    int64_t numel = nas_safetensors_numel(t);
    if (numel < 0)
        return nas_set_err(err, NAS_EFORMAT, "safetensors: tensor '%.100s': shape overflows", nm);
    const nas_json *offs = nas_json_get(v, "data_offsets");
    int64_t b, e;
    if (!offs || offs->type != NAS_JSON_ARRAY || offs->len != 2 ||
        nas_json_to_int64(&offs->items[0], 0, MAX_EXACT, "begin", &b, jerr) < 0 ||
        nas_json_to_int64(&offs->items[1], 0, MAX_EXACT, "end", &e, jerr) < 0)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: tensor '%.100s': data_offsets must be"
                           " [begin, end] with whole numbers >= 0",
                           nm);
    if (b > e || (uint64_t)e > dlen)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: tensor '%.100s': data_offsets [%lld,"
                           " %lld] outside the %llu-byte data buffer",
                           nm, (long long)b, (long long)e, (unsigned long long)dlen);
    if ((uint64_t)(e - b) != (uint64_t)numel * 4)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: tensor '%.100s': data_offsets hold %lld"
                           " bytes but the shape needs %lld",
                           nm, (long long)(e - b), (long long)numel * 4);
    sp->begin = (uint64_t)b, sp->end = (uint64_t)e;
    return 0;
}

/* Also the cleanup of a half-built result: counts are only advanced after
 * the thing counted is owned, so everything counted is freed exactly once. */
void nas_safetensors_destroy(nas_safetensors **stp) {
    if (!stp || !*stp) return;
    nas_safetensors *st = *stp;
    for (size_t i = 0; i < st->count; i++)
        nas_free((char *)st->tensors[i].name);
    for (size_t i = 0; i < st->nmeta; i++) {
        nas_free((char *)st->meta[i].key);
        nas_free((char *)st->meta[i].value);
    }
    nas_free(st->tensors);
    nas_free(st->meta);
    st_priv *pv = st->priv;
    if (pv) {
        nas_aligned_free(pv->blob);
        nas_free(pv->by_name);
        nas_free(pv);
    }
    nas_free(st);
    *stp = NULL;
}

/* Copy the "__metadata__" object (string values only) into st. */
static int parse_meta(const nas_json *v, nas_safetensors *st, char *err) {
    if (v->type != NAS_JSON_OBJECT)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: __metadata__ must be an object (found %s)",
                           nas_json_type_name(v->type));
    st->meta = nas_calloc(v->len ? v->len : 1, sizeof *st->meta);
    if (!st->meta) return nas_set_err(err, NAS_ENOMEM, "safetensors: out of memory");
    for (size_t i = 0; i < v->len; i++) {
        const nas_json_member *m = &v->members[i];
        if (m->value.type != NAS_JSON_STRING)
            return nas_set_err(err, NAS_EFORMAT,
                               "safetensors: __metadata__ '%.100s' must be a"
                               " string (found %s)",
                               m->key, nas_json_type_name(m->value.type));
        st->meta[i].key = nas_strdup(m->key);
        st->meta[i].value = nas_strdup(m->value.str);
        st->nmeta = i + 1; /* counted now so destroy frees a half-made pair */
        if (!st->meta[i].key || !st->meta[i].value)
            return nas_set_err(err, NAS_ENOMEM, "safetensors: out of memory");
    }
    return 0;
}

int nas_safetensors_parse(const void *buf, size_t len, nas_safetensors **out, char *err) {
    const uint8_t *b = buf;
    if (!b && len) return nas_set_err(err, NAS_EINVAL, "safetensors: NULL buffer");
    if (len < 8)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: offset 0: %zu bytes, too short for the"
                           " 8-byte header length",
                           len);
    uint64_t hlen = load_le64(b);
    if (hlen > NAS_SAFETENSORS_MAX_HEADER)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: offset 0: header length %llu exceeds"
                           " the %llu-byte limit",
                           (unsigned long long)hlen,
                           (unsigned long long)NAS_SAFETENSORS_MAX_HEADER);
    if (hlen > len - 8)
        return nas_set_err(err, NAS_EFORMAT,
                           "safetensors: offset 0: header length %llu runs past"
                           " the end of the %zu-byte input",
                           (unsigned long long)hlen, len);
    uint64_t dlen = len - 8 - hlen;
    const uint8_t *data = b + 8 + hlen;
    nas_json *root = NULL;
    nas_safetensors *st = NULL;
    span *spans = NULL;
    char jerr[NAS_ERR_LEN];
    int rc = nas_json_parse((const char *)b + 8, (size_t)hlen, MAX_JSON_DEPTH, &root, jerr);
    if (rc < 0) {
        /* JSON offsets count from the header's first byte, file offset 8. */
        nas_set_err(err, rc, "safetensors: header (starts at offset 8): %s", jerr);
        goto fail;
    }
    rc = NAS_EFORMAT;
    if (root->type != NAS_JSON_OBJECT) {
        nas_set_err(err, rc, "safetensors: header must be a JSON object (found %s)",
                    nas_json_type_name(root->type));
        goto fail;
    }
    rc = NAS_ENOMEM;
    st = nas_calloc(1, sizeof *st);
    if (!st || !(st->tensors = nas_calloc(root->len ? root->len : 1, sizeof *st->tensors)) ||
        !(spans = nas_calloc(root->len ? root->len : 1, sizeof *spans))) {
        nas_set_err(err, rc, "safetensors: out of memory");
        goto fail;
    }
    size_t nt = 0;
    for (size_t i = 0; i < root->len; i++) {
        const nas_json_member *m = &root->members[i];
        if (strcmp(m->key, "__metadata__") == 0) {
            if ((rc = parse_meta(&m->value, st, err)) < 0) goto fail;
            continue;
        }
        nas_safetensors_tensor *t = &st->tensors[nt];
        if (!name_ok(m->key)) {
            rc = nas_set_err(err, NAS_EFORMAT,
                             "safetensors: header: tensor name \"%.64s\" is empty or longer"
                             " than %d bytes",
                             m->key, NAS_SAFETENSORS_MAX_NAME);
            goto fail;
        }
        if ((rc = parse_entry(m, dlen, t, &spans[nt], err)) < 0) goto fail;
        spans[nt].index = nt;
        if (!(t->name = nas_strdup(m->key))) {
            rc = nas_set_err(err, NAS_ENOMEM, "safetensors: out of memory");
            goto fail;
        }
        st->count = ++nt;
    }
    /* Overlap check: sorted by begin, each tensor must start at or after the
     * end of the one before it.  Empty tensors overlap nothing. */
    qsort(spans, nt, sizeof *spans, cmp_span);
    uint64_t prev_end = 0;
    size_t prev = SIZE_MAX, blob = 0;
    for (size_t i = 0; i < nt; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (prev != SIZE_MAX && spans[i].begin < prev_end) {
            rc = nas_set_err(err, NAS_EFORMAT,
                             "safetensors: tensors '%.80s' and '%.80s' overlap"
                             " in the data buffer",
                             st->tensors[prev].name, st->tensors[spans[i].index].name);
            goto fail;
        }
        prev_end = spans[i].end, prev = spans[i].index;
    }
    /* One aligned blob; each tensor starts on a 64-byte boundary.  The sum
     * is bounded by len plus 64 per tensor, so it cannot overflow. */
    for (size_t i = 0; i < nt; i++)
        blob += nas_align_up((size_t)(spans[i].end - spans[i].begin));
    st_priv *pv = nas_calloc(1, sizeof *pv);
    st->priv = pv;
    if (!pv || !(pv->blob = nas_aligned_alloc(blob)) ||
        !(pv->by_name = nas_malloc((nt ? nt : 1) * sizeof *pv->by_name))) {
        rc = nas_set_err(err, NAS_ENOMEM, "safetensors: out of memory for %zu bytes", blob);
        goto fail;
    }
    size_t at = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t bytes = (size_t)(spans[i].end - spans[i].begin);
        float *dst = (float *)((uint8_t *)pv->blob + at);
        copy_f32_le(dst, data + spans[i].begin, bytes / 4);
        st->tensors[spans[i].index].data = dst;
        at += nas_align_up(bytes);
    }
    /* Names are unique (the JSON reader rejects duplicate keys), so a
     * sorted index gives find() in O(log n) for models with many tensors. */
    for (size_t i = 0; i < nt; i++)
        pv->by_name[i] = &st->tensors[i];
    qsort(pv->by_name, nt, sizeof *pv->by_name, cmp_tensor_name);
    nas_free(spans);
    nas_json_free(&root);
    *out = st;
    return 0;
fail:
    nas_free(spans);
    nas_json_free(&root);
    nas_safetensors_destroy(&st);
    return rc;
}

/* The whole file is read into memory: weight files are megabytes, and
 * parsing one buffer shares every check with the wire path. */
int nas_safetensors_load(const char *path, nas_safetensors **out, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return nas_set_err(err, errno == ENOENT ? NAS_ENOTFOUND : NAS_EIO, "%s: open: %s", path,
                           strerror(errno));
    uint8_t *buf = NULL;
    int rc;
    struct stat sb;
    if (fstat(fileno(f), &sb) < 0 || !S_ISREG(sb.st_mode)) {
        rc = nas_set_err(err, NAS_EIO, "%s: not a regular file", path);
        goto done;
    }
    size_t len = (size_t)sb.st_size;
    buf = nas_malloc(len ? len : 1);
    if (!buf) {
        rc = nas_set_err(err, NAS_ENOMEM, "%s: out of memory for %zu bytes", path, len);
        goto done;
    }
    if (fread(buf, 1, len, f) != len) {
        rc = nas_set_err(err, NAS_EIO, "%s: read: %s", path, ferror(f) ? strerror(errno) : "short");
        goto done;
    }
    char perr[NAS_ERR_LEN];
    rc = nas_safetensors_parse(buf, len, out, perr);
    if (rc < 0) nas_set_err(err, rc, "%s: %s", path, perr);
done:
    nas_free(buf);
    fclose(f);
    return rc;
}

/* Binary search over the sorted index: loading a model looks up every
 * parameter by name, which would be quadratic with a linear scan. */
const nas_safetensors_tensor *nas_safetensors_find(const nas_safetensors *st, const char *name) {
    if (!st || !name || !st->priv) return NULL;
    const st_priv *pv = st->priv;
    size_t lo = 0, hi = st->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(pv->by_name[mid]->name, name);
        if (c == 0) return pv->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *nas_safetensors_meta_get(const nas_safetensors *st, const char *key) {
    for (size_t i = 0; st && key && i < st->nmeta; i++)
        if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
    return NULL;
}
