/*
 * wire_weights.c - codecs and socket helpers of the bulk weight messages
 * (common/wire_weights.h).
 *
 * The manifest is protobuf (small, a few hundred entries); the tensors are
 * one raw frame that is never re-encoded.  Validation is strict because
 * a worker applies these bytes to a network: offsets must run back to back
 * from 0 in manifest order, which makes overlaps and gaps impossible by
 * construction and lets one comparison (sum == frame length) bound every
 * read.
 */
#include "common/wire_weights.h"

#include "common/alloc.h"
#include "common/err.h"
#include "proto/nas.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#if defined(__x86_64__)
/* libxxhash's plain entry points are built for the baseline x86-64
 * (SSE2): about 15 GB/s here, slower than FNV4.  Its _dispatch entry
 * points pick AVX2 or AVX-512 at run time: about 40 GB/s, same values. */
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#define NAS_XXH3(p, n) XXH3_64bits_dispatch((p), (n))
#else
#define NAS_XXH3(p, n) XXH3_64bits((p), (n))
#endif
#include <zmq.h>

// ---- messages -----------------------------------------------------------------------

/* A zeroed message is a valid empty one of its type: no manifest, no
 * frame, so fini is always safe on it. */
void nas_wire_weights_msg_init(nas_wire_weights_msg *m, int type) {
    memset(m, 0, sizeof *m);
    m->type = type;
    m->checksum_kind = NAS_CHECKSUM_DEFAULT;
    m->protocol = NAS_WEIGHTS_PROTOCOL;
}

/* Names first, then the array: the manifest owns both, and n counts the
 * entries filled so far, so a decode that failed half way frees only what
 * it made. */
void nas_wire_weights_msg_fini(nas_wire_weights_msg *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n && m->tensors; i++)
        nas_free(m->tensors[i].name);
    nas_free(m->tensors);
    m->tensors = NULL;
    m->n = 0;
    m->total_bytes = 0;
}

/* Names used in every error message, so a refusal says which message it
 * was about ("weights-push of 1a2b...: ..."). */
static const char *type_name(int type) {
    switch (type) {
    case NAS_MSG_WEIGHTS_PULL:
        return "weights-pull";
    case NAS_MSG_WEIGHTS_REPLY:
        return "weights-reply";
    case NAS_MSG_WEIGHTS_PUSH:
        return "weights-push";
    case NAS_MSG_WEIGHTS_ACK:
        return "weights-ack";
    case NAS_MSG_ERROR:
        return "error";
    default:
        return "unknown";
    }
}

/* Bytes of a float32 tensor of this shape, or -1 for a negative size or a
 * product that would not fit in a frame. */
static int64_t shape_bytes(int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > NAS_SAFETENSORS_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return -1;
        if (shape[d] != 0 && n > (NAS_WIRE_MAX_FRAME / 4) / shape[d]) return -1;
        n *= shape[d];
    }
    return n * 4;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The checks every manifest passes, on both sides: on encode a bug shows
 * up locally, on decode a hostile peer gets a named refusal. */
static int validate_manifest(const nas_wire_weights_msg *m, char *err) {
    const char *tn = type_name(m->type);
    if (m->n > NAS_WIRE_WEIGHTS_MAX_TENSORS)
        return nas_set_err(err, NAS_EFORMAT, "%s: %zu tensors exceed %d", tn, m->n,
                           NAS_WIRE_WEIGHTS_MAX_TENSORS);
    if (m->n && !m->tensors) return nas_set_err(err, NAS_EINVAL, "%s: no tensor array", tn);
    if (m->checksum_kind < 0 || m->checksum_kind >= NAS_CHECKSUM_KINDS)
        return nas_set_err(err, NAS_EINVAL, "%s: unknown checksum kind %d", tn, m->checksum_kind);
    uint64_t at = 0;
    for (size_t i = 0; i < m->n; i++) {
        const nas_wire_weights_tensor *t = &m->tensors[i];
        if (!t->name || !t->name[0] || strlen(t->name) >= NAS_SAFETENSORS_MAX_NAME)
            return nas_set_err(err, NAS_EFORMAT, "%s: tensor %zu has an empty or too long path", tn,
                               i);
        int64_t b = shape_bytes(t->ndim, t->shape);
        if (b < 0)
            return nas_set_err(err, NAS_EFORMAT, "%s: tensor '%s' has an invalid shape", tn,
                               t->name);
        if ((uint64_t)b != t->nbytes)
            return nas_set_err(err, NAS_EFORMAT,
                               "%s: tensor '%s' claims %llu bytes, its shape holds %lld", tn,
                               t->name, (unsigned long long)t->nbytes, (long long)b);
        if (t->offset != at)
            return nas_set_err(err, NAS_EFORMAT,
                               "%s: tensor '%s' at byte %llu, but the tensors before it hold "
                               "%llu bytes (shapes and offsets disagree)",
                               tn, t->name, (unsigned long long)t->offset, (unsigned long long)at);
        at += t->nbytes;
        if (at > (uint64_t)NAS_WIRE_MAX_FRAME)
            return nas_set_err(err, NAS_EFORMAT, "%s: tensors exceed the %lld-byte frame limit", tn,
                               (long long)NAS_WIRE_MAX_FRAME);
    }
    if (at != m->total_bytes)
        return nas_set_err(err, NAS_EFORMAT, "%s: tensors hold %llu bytes, total_bytes says %llu",
                           tn, (unsigned long long)at, (unsigned long long)m->total_bytes);
    /* Duplicate paths would let one tensor silently override another:
     * sort the names and compare neighbours. */
    if (m->n < 2) return NAS_OK;
    const char **names = nas_malloc(m->n * sizeof *names);
    if (!names) return nas_set_err(err, NAS_ENOMEM, "%s: duplicate check", tn);
    for (size_t i = 0; i < m->n; i++)
        names[i] = m->tensors[i].name;
    qsort(names, m->n, sizeof *names, cmp_names);
    int rc = NAS_OK;
    for (size_t i = 1; i < m->n && rc == NAS_OK; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = nas_set_err(err, NAS_EFORMAT, "%s: tensor '%s' appears twice", tn, names[i]);
    nas_free(names);
    return rc;
}

/* Per type: what must hold before a message is encoded or after it is
 * decoded.  Pulls carry nothing to check beyond their hash; a reply may be
 * an empty "not found" but never tensors without being found. */
static int validate(const nas_wire_weights_msg *m, char *err) {
    if (m->protocol != NAS_WEIGHTS_PROTOCOL && m->protocol != NAS_WEIGHTS_PROTOCOL_V1)
        return nas_set_err(err, NAS_EINVAL, "%s: protocol %d is not one this peer speaks (%d, %d)",
                           type_name(m->type), m->protocol, NAS_WEIGHTS_PROTOCOL_V1,
                           NAS_WEIGHTS_PROTOCOL);
    switch (m->type) {
    case NAS_MSG_WEIGHTS_PULL:
        return NAS_OK;
    case NAS_MSG_ERROR:
        if (m->code >= 0) return nas_set_err(err, NAS_EFORMAT, "error: code %d >= 0", m->code);
        if (memchr(m->message, 0, sizeof m->message) == NULL)
            return nas_set_err(err, NAS_EINVAL, "error: message not terminated");
        return NAS_OK;
    case NAS_MSG_WEIGHTS_ACK:
        if (m->code > 0) return nas_set_err(err, NAS_EFORMAT, "weights-ack: code %d > 0", m->code);
        if (memchr(m->message, 0, sizeof m->message) == NULL)
            return nas_set_err(err, NAS_EINVAL, "weights-ack: message not terminated");
        return NAS_OK;
    case NAS_MSG_WEIGHTS_PUSH:
        if (!m->found) return nas_set_err(err, NAS_EFORMAT, "weights-push: found must be set");
        return validate_manifest(m, err);
    case NAS_MSG_WEIGHTS_REPLY:
        if (!m->found && m->n)
            return nas_set_err(err, NAS_EFORMAT, "weights-reply: 'not found' with tensors");
        return validate_manifest(m, err);
    default:
        return nas_set_err(err, NAS_EPROTO, "envelope.type = %d is not a weights message", m->type);
    }
}

// ---- checksum -----------------------------------------------------------------------

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

/* The tail and the lanes folded into one value, byte by byte, then the
 * length: shared by both entry points so their values cannot differ. */
static uint64_t checksum_finish(const uint64_t h[4], const uint8_t *tail, size_t n_tail,
                                size_t len) {
    uint64_t r = FNV_OFFSET;
    for (size_t i = 0; i < n_tail; i++)
        r = (r ^ tail[i]) * FNV_PRIME;
    for (int l = 0; l < 4; l++)
        for (int b = 0; b < 8; b++)
            r = (r ^ ((h[l] >> (8 * b)) & 0xff)) * FNV_PRIME;
    for (int b = 0; b < 8; b++)
        r = (r ^ (((uint64_t)len >> (8 * b)) & 0xff)) * FNV_PRIME;
    return r;
}

static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* Four lanes keep four independent multiply chains in flight; one FNV
 * chain over bytes would run at a fraction of memory speed.  Words are
 * read with memcpy, so any alignment is fine, and assembled little-endian
 * so the value is the same on every host. */
static uint64_t fnv4(const void *data, size_t len) {
    const uint8_t *p = data;
    uint64_t h[4] = {FNV_OFFSET, FNV_OFFSET ^ 1, FNV_OFFSET ^ 2, FNV_OFFSET ^ 3};
    size_t i = 0;
    for (; i + 32 <= len; i += 32)
        for (int l = 0; l < 4; l++)
            h[l] = (h[l] ^ load_le64(p + i + 8 * l)) * FNV_PRIME;
    return checksum_finish(h, p + i, len - i, len);
}

/* The four multiply chains are latency-bound (about 4 cycles per 32
 * bytes), which leaves room for the loads and stores of a copy in the
 * same loop. */
static uint64_t fnv4_copy(void *dst, const void *src, size_t len) {
    const uint8_t *p = src;
    uint8_t *d = dst;
    uint64_t h[4] = {FNV_OFFSET, FNV_OFFSET ^ 1, FNV_OFFSET ^ 2, FNV_OFFSET ^ 3};
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        memcpy(d + i, w, 32);
        for (int l = 0; l < 4; l++) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            w[l] = __builtin_bswap64(w[l]);
#endif
            h[l] = (h[l] ^ w[l]) * FNV_PRIME;
        }
    }
    memcpy(d + i, p + i, len - i);
    return checksum_finish(h, p + i, len - i, len);
}

/* XXH3 reads 64-byte stripes with SIMD, tens of GB/s, so it is no longer
 * the multiply latency that bounds a transfer but memory.  Its value is
 * defined on the bytes (little-endian reads inside the library), the same
 * on every host. */
uint64_t nas_wire_weights_checksum(int kind, const void *data, size_t len) {
    NAS_ASSERT(kind == NAS_CHECKSUM_XXH3 || kind == NAS_CHECKSUM_FNV4);
    if (kind == NAS_CHECKSUM_XXH3) return (uint64_t)NAS_XXH3(data, len);
    return fnv4(data, len);
}

/* The one comparison of every receiver: an unknown kind never matches,
 * so a caller that forgot to validate it refuses rather than trusts. */
int nas_wire_weights_verify(int kind, const void *data, size_t len, uint64_t want) {
    if (kind != NAS_CHECKSUM_XXH3 && kind != NAS_CHECKSUM_FNV4) return 0;
    return nas_wire_weights_checksum(kind, data, len) == want;
}

/* XXH3 cannot ride inside a copy loop as FNV4 did, and need not: at
 * about 40 GB/s it costs about as much as the copy itself.  The tensor is
 * hashed first, which brings it into cache for the copy (measured on
 * 1 MB: hash + copy 47 us, copy alone 23 us; copying and hashing 4-64 KB
 * chunks while they are in L1 was no faster, 49-55 us). */
uint64_t nas_wire_weights_checksum_copy(int kind, void *dst, const void *src, size_t len) {
    NAS_ASSERT(kind == NAS_CHECKSUM_XXH3 || kind == NAS_CHECKSUM_FNV4);
    if (kind == NAS_CHECKSUM_FNV4) return fnv4_copy(dst, src, len);
    uint64_t h = (uint64_t)NAS_XXH3(src, len);
    if (len) memcpy(dst, src, len);
    return h;
}

/* Names as the store's file metadata spells them. */
const char *nas_wire_weights_checksum_name(int kind) {
    switch (kind) {
    case NAS_CHECKSUM_FNV4:
        return "fnv4";
    case NAS_CHECKSUM_XXH3:
        return "xxh3";
    default:
        return "unknown";
    }
}

int nas_wire_weights_checksum_parse(const char *name) {
    for (int k = 0; k < NAS_CHECKSUM_KINDS; k++)
        if (name && strcmp(name, nas_wire_weights_checksum_name(k)) == 0) return k;
    return NAS_EFORMAT;
}

// ---- manifest from tensors ------------------------------------------------------------

/* The sender's side of the back-to-back rule: tensors are described in the
 * order they lie in memory, so the frame can be the memory itself.  A
 * tensor that is not where the previous one ended is a caller bug (a
 * manifest that would lie about the frame), refused before anything is
 * sent. */
int nas_wire_weights_manifest(nas_wire_weights_msg *m, const nas_safetensors_tensor *t, size_t n,
                              const void *base, const uint64_t *checksums, char *err) {
    if (n > NAS_WIRE_WEIGHTS_MAX_TENSORS)
        return nas_set_err(err, NAS_EINVAL, "%zu tensors exceed %d", n,
                           NAS_WIRE_WEIGHTS_MAX_TENSORS);
    if (m->checksum_kind < 0 || m->checksum_kind >= NAS_CHECKSUM_KINDS)
        return nas_set_err(err, NAS_EINVAL, "manifest: unknown checksum kind %d", m->checksum_kind);
    nas_wire_weights_tensor *arr = n ? nas_calloc(n, sizeof *arr) : NULL;
    if (n && !arr) return nas_set_err(err, NAS_ENOMEM, "manifest of %zu tensors", n);
    const uint8_t *b = base;
    uint64_t at = 0;
    int rc = NAS_OK;
    size_t i = 0;
    for (; i < n; i++) {
        int64_t bytes = shape_bytes(t[i].ndim, t[i].shape);
        if (!t[i].name || !t[i].name[0] || bytes < 0) {
            rc = nas_set_err(err, NAS_EINVAL, "tensor %zu ('%s'): bad name or shape", i,
                             t[i].name ? t[i].name : "");
            goto fail;
        }
        if (bytes && (const uint8_t *)t[i].data != b + at) {
            rc = nas_set_err(err, NAS_EINVAL, "tensor '%s' does not follow the previous one",
                             t[i].name);
            goto fail;
        }
        arr[i].name = nas_strdup(t[i].name);
        if (!arr[i].name) {
            rc = nas_set_err(err, NAS_ENOMEM, "manifest names");
            goto fail;
        }
        arr[i].ndim = t[i].ndim;
        memcpy(arr[i].shape, t[i].shape, sizeof arr[i].shape);
        arr[i].offset = at;
        arr[i].nbytes = (uint64_t)bytes;
        arr[i].checksum = checksums
                              ? checksums[i]
                              : nas_wire_weights_checksum(m->checksum_kind, b + at, (size_t)bytes);
        at += (uint64_t)bytes;
    }
    m->found = 1;
    m->n = n;
    m->tensors = arr;
    m->total_bytes = at;
    return NAS_OK;
fail:
    for (size_t k = 0; k <= i && k < n; k++)
        nas_free(arr[k].name);
    nas_free(arr);
    return rc;
}

// ---- encode / decode ------------------------------------------------------------------

/* Pack one body into the envelope's payload.  The protobuf views borrow
 * the message's strings; only the packed bytes are allocated. */
static int pack_body(const nas_wire_weights_msg *m, ProtobufCBinaryData *out, char *err) {
    size_t need = 0;
    uint8_t *buf = NULL;
    if (m->type == NAS_MSG_WEIGHTS_PULL) {
        Naspb__WeightsPull p = NASPB__WEIGHTS_PULL__INIT;
        p.has_arch_hash = 1;
        p.arch_hash = m->arch;
        need = naspb__weights_pull__get_packed_size(&p);
        if (!(buf = nas_malloc(need ? need : 1))) goto oom;
        naspb__weights_pull__pack(&p, buf);
    } else if (m->type == NAS_MSG_ERROR) {
        Naspb__Error e = NASPB__ERROR__INIT;
        e.has_code = 1;
        e.code = m->code;
        e.message = (char *)m->message;
        need = naspb__error__get_packed_size(&e);
        if (!(buf = nas_malloc(need ? need : 1))) goto oom;
        naspb__error__pack(&e, buf);
    } else if (m->type == NAS_MSG_WEIGHTS_ACK) {
        Naspb__WeightsAck a = NASPB__WEIGHTS_ACK__INIT;
        a.has_arch_hash = a.has_code = 1;
        a.arch_hash = m->arch;
        a.code = m->code;
        a.message = (char *)m->message;
        need = naspb__weights_ack__get_packed_size(&a);
        if (!(buf = nas_malloc(need ? need : 1))) goto oom;
        naspb__weights_ack__pack(&a, buf);
    } else {
        Naspb__WeightsData d = NASPB__WEIGHTS_DATA__INIT;
        d.has_arch_hash = d.has_found = d.has_total_bytes = 1;
        d.arch_hash = m->arch;
        d.found = m->found != 0;
        d.total_bytes = m->total_bytes;
        /* FNV4 is the value of an absent field, so a manifest of the old
         * kind (a file from before XXH3, served again) encodes exactly as
         * the first protocol did. */
        d.has_checksum_kind = m->checksum_kind != NAS_CHECKSUM_FNV4;
        d.checksum_kind = (uint32_t)m->checksum_kind;
        Naspb__WeightsTensor *ts = m->n ? nas_calloc(m->n, sizeof *ts) : NULL;
        Naspb__WeightsTensor **tp = m->n ? nas_calloc(m->n, sizeof *tp) : NULL;
        if (m->n && (!ts || !tp)) {
            nas_free(ts);
            nas_free(tp);
            goto oom;
        }
        for (size_t i = 0; i < m->n; i++) {
            naspb__weights_tensor__init(&ts[i]);
            ts[i].path = m->tensors[i].name;
            ts[i].n_shape = (size_t)m->tensors[i].ndim;
            ts[i].shape = (int64_t *)m->tensors[i].shape;
            ts[i].has_offset = ts[i].has_checksum = 1;
            ts[i].offset = m->tensors[i].offset;
            ts[i].checksum = m->tensors[i].checksum;
            tp[i] = &ts[i];
        }
        d.n_tensors = m->n;
        d.tensors = tp;
        need = naspb__weights_data__get_packed_size(&d);
        buf = nas_malloc(need ? need : 1);
        if (buf) naspb__weights_data__pack(&d, buf);
        nas_free(ts);
        nas_free(tp);
        if (!buf) goto oom;
    }
    out->data = buf;
    out->len = need;
    return NAS_OK;
oom:
    return nas_set_err(err, NAS_ENOMEM, "%s: out of memory packing the body", type_name(m->type));
}

/* Validate, pack the body, wrap it in the Envelope with frames = 1 when
 * there is data.  The envelope bound is checked here too: a manifest of
 * thousands of long paths must fail locally, not at the receiver. */
int nas_wire_weights_encode(const nas_wire_weights_msg *m, uint8_t **out, size_t *len, char *err) {
    int rc = validate(m, err);
    if (rc < 0) return rc;
    /* A version-1 receiver verifies FNV4 only.  (Decoding is lenient: the
     * builds between XXH3 and this version sent XXH3 as version 1 with
     * checksum_kind set, and the field says what it is.) */
    if (m->protocol == NAS_WEIGHTS_PROTOCOL_V1 && m->n && m->checksum_kind != NAS_CHECKSUM_FNV4)
        return nas_set_err(err, NAS_EINVAL, "%s: protocol 1 carries fnv4 checksums only, not %s",
                           type_name(m->type), nas_wire_weights_checksum_name(m->checksum_kind));
    ProtobufCBinaryData body = {0, NULL};
    rc = pack_body(m, &body, err);
    if (rc < 0) return rc;
    Naspb__Envelope env = NASPB__ENVELOPE__INIT;
    env.has_protocol = env.has_type = env.has_payload = env.has_seq = env.has_frames = 1;
    /* Only pulls, pushes and replies differ between the versions (a pull
     * announces that its sender reads checksum_kind); an ACK or Error is
     * the same in both and goes out as version 1, which every peer and the
     * control socket's decoder read. */
    env.protocol = m->type == NAS_MSG_WEIGHTS_ACK || m->type == NAS_MSG_ERROR
                       ? NAS_WEIGHTS_PROTOCOL_V1
                       : (uint32_t)m->protocol;
    env.type = (uint32_t)m->type;
    env.payload = body;
    env.seq = m->seq;
    env.frames = m->total_bytes ? 1 : 0;
    size_t need = naspb__envelope__get_packed_size(&env);
    if (need > NAS_WIRE_MAX_ENVELOPE) {
        nas_free(body.data);
        return nas_set_err(err, NAS_EINVAL, "%s: manifest of %zu bytes exceeds the envelope limit",
                           type_name(m->type), need);
    }
    uint8_t *buf = nas_malloc(need ? need : 1);
    if (!buf) {
        nas_free(body.data);
        return nas_set_err(err, NAS_ENOMEM, "%s: out of memory", type_name(m->type));
    }
    naspb__envelope__pack(&env, buf);
    nas_free(body.data);
    *out = buf;
    *len = need;
    return NAS_OK;
}

/* Copy a decoded WeightsData into m, refusing absent required fields. */
static int unpack_data(const Naspb__WeightsData *d, nas_wire_weights_msg *m, char *err) {
    const char *tn = type_name(m->type);
    if (!d->has_arch_hash) return nas_set_err(err, NAS_EFORMAT, "%s: arch_hash missing", tn);
    if (d->n_tensors > NAS_WIRE_WEIGHTS_MAX_TENSORS)
        return nas_set_err(err, NAS_EFORMAT, "%s: %zu tensors exceed %d", tn, d->n_tensors,
                           NAS_WIRE_WEIGHTS_MAX_TENSORS);
    m->arch = d->arch_hash;
    m->found = m->type == NAS_MSG_WEIGHTS_PUSH ? 1 : (d->has_found && d->found);
    m->total_bytes = d->total_bytes;
    /* Absent: a peer of the first protocol, whose checksums are FNV4. */
    if (d->has_checksum_kind && d->checksum_kind >= NAS_CHECKSUM_KINDS)
        return nas_set_err(err, NAS_EFORMAT,
                           "%s: checksum_kind = %u is not one this peer knows (0 fnv4, 1 xxh3)", tn,
                           d->checksum_kind);
    m->checksum_kind = d->has_checksum_kind ? (int)d->checksum_kind : NAS_CHECKSUM_FNV4;
    if (!d->n_tensors) return NAS_OK;
    m->tensors = nas_calloc(d->n_tensors, sizeof *m->tensors);
    if (!m->tensors) return nas_set_err(err, NAS_ENOMEM, "%s: manifest", tn);
    for (size_t i = 0; i < d->n_tensors; i++) {
        const Naspb__WeightsTensor *t = d->tensors[i];
        nas_wire_weights_tensor *o = &m->tensors[i];
        m->n = i + 1; /* fini frees what is filled so far */
        if (!t->path || !t->has_offset || !t->has_checksum)
            return nas_set_err(err, NAS_EFORMAT, "%s: tensor %zu lacks path, offset or checksum",
                               tn, i);
        if (t->n_shape > NAS_SAFETENSORS_MAX_DIMS)
            return nas_set_err(err, NAS_EFORMAT, "%s: tensor '%.64s' has %zu dimensions (max %d)",
                               tn, t->path, t->n_shape, NAS_SAFETENSORS_MAX_DIMS);
        if (strlen(t->path) >= NAS_SAFETENSORS_MAX_NAME)
            return nas_set_err(err, NAS_EFORMAT, "%s: tensor %zu path too long", tn, i);
        if (!(o->name = nas_strdup(t->path))) return nas_set_err(err, NAS_ENOMEM, "%s", tn);
        o->ndim = (int)t->n_shape;
        for (size_t k = 0; k < t->n_shape; k++)
            o->shape[k] = t->shape[k];
        o->offset = t->offset;
        o->checksum = t->checksum;
        int64_t b = shape_bytes(o->ndim, o->shape);
        o->nbytes = b < 0 ? UINT64_MAX : (uint64_t)b;
    }
    return NAS_OK;
}

/* One protobuf body per type.  Required fields are checked by presence,
 * not by value, because proto2 zero and absent differ and an absent hash
 * is a malformed message, not architecture 0. */
static int decode_body(const ProtobufCBinaryData *p, nas_wire_weights_msg *m, char *err) {
    const char *tn = type_name(m->type);
    if (m->type == NAS_MSG_WEIGHTS_PULL) {
        Naspb__WeightsPull *w = naspb__weights_pull__unpack(NULL, p->len, p->data);
        if (!w) return nas_set_err(err, NAS_EFORMAT, "%s: malformed body", tn);
        int ok = w->has_arch_hash;
        m->arch = w->arch_hash;
        naspb__weights_pull__free_unpacked(w, NULL);
        return ok ? NAS_OK : nas_set_err(err, NAS_EFORMAT, "%s: arch_hash missing", tn);
    }
    if (m->type == NAS_MSG_ERROR) {
        Naspb__Error *e = naspb__error__unpack(NULL, p->len, p->data);
        if (!e) return nas_set_err(err, NAS_EFORMAT, "%s: malformed body", tn);
        m->code = e->code;
        snprintf(m->message, sizeof m->message, "%s", e->message ? e->message : "");
        int ok = e->has_code;
        naspb__error__free_unpacked(e, NULL);
        return ok ? NAS_OK : nas_set_err(err, NAS_EFORMAT, "%s: code missing", tn);
    }
    if (m->type == NAS_MSG_WEIGHTS_ACK) {
        Naspb__WeightsAck *a = naspb__weights_ack__unpack(NULL, p->len, p->data);
        if (!a) return nas_set_err(err, NAS_EFORMAT, "%s: malformed body", tn);
        m->arch = a->arch_hash;
        m->code = a->code;
        snprintf(m->message, sizeof m->message, "%s", a->message ? a->message : "");
        int ok = a->has_arch_hash && a->has_code;
        naspb__weights_ack__free_unpacked(a, NULL);
        return ok ? NAS_OK : nas_set_err(err, NAS_EFORMAT, "%s: arch_hash or code missing", tn);
    }
    Naspb__WeightsData *d = naspb__weights_data__unpack(NULL, p->len, p->data);
    if (!d) return nas_set_err(err, NAS_EFORMAT, "%s: malformed body", tn);
    int rc = unpack_data(d, m, err);
    naspb__weights_data__free_unpacked(d, NULL);
    return rc;
}

/* The bulk decoder: the size bound before protobuf-c sees a byte, then
 * version, type (the four bulk types and Error), body, validation and the
 * announced frame count.  Pure: no clock, no socket. */
int nas_wire_weights_decode(const void *buf, size_t len, nas_wire_weights_msg *m, char *err) {
    memset(m, 0, sizeof *m);
    if (!buf || len == 0) return nas_set_err(err, NAS_EFORMAT, "empty envelope");
    if (len > NAS_WIRE_MAX_ENVELOPE)
        return nas_set_err(err, NAS_EFORMAT, "envelope of %zu bytes exceeds the %u-byte limit", len,
                           NAS_WIRE_MAX_ENVELOPE);
    Naspb__Envelope *env = naspb__envelope__unpack(NULL, len, buf);
    if (!env) return nas_set_err(err, NAS_EFORMAT, "envelope: truncated or malformed protobuf");
    int rc = NAS_OK;
    /* Version 1 (the first release) and 2 (checksum_kind) differ only in
     * that field, whose absence already means FNV4: one decoder reads both. */
    if (!env->has_protocol ||
        (env->protocol != NAS_WEIGHTS_PROTOCOL && env->protocol != NAS_WEIGHTS_PROTOCOL_V1))
        rc = nas_set_err(err, NAS_EVERSION,
                         "envelope.protocol = %u, this peer speaks weights protocol %d and %d",
                         env->protocol, NAS_WEIGHTS_PROTOCOL_V1, NAS_WEIGHTS_PROTOCOL);
    else if (env->has_type && env->type >= 1 && env->type < NAS_MSG_WEIGHTS_PULL &&
             env->type != NAS_MSG_ERROR)
        /* A worker pointed at this endpoint instead of the control one:
         * one answer, the same for every message it tries, that says so. */
        rc = nas_set_err(err, NAS_EPROTO,
                         "this is the master's weight store endpoint (listen.weights), which "
                         "takes no control or status messages; workers connect to its control "
                         "endpoint (listen.control), nasctl to its status endpoint "
                         "(listen.status)");
    else if (!env->has_type ||
             ((env->type < NAS_MSG_WEIGHTS_PULL || env->type > NAS_MSG_WEIGHTS_ACK) &&
              env->type != NAS_MSG_ERROR))
        rc = nas_set_err(err, NAS_EPROTO,
                         "envelope.type = %u is not a weights message (the bulk socket takes "
                         "pull and push, and answers with reply, ack or error)",
                         env->type);
    if (rc == NAS_OK) {
        m->type = (int)env->type;
        m->seq = env->seq;
        m->protocol = (int)env->protocol;
        ProtobufCBinaryData empty = {0, NULL};
        rc = decode_body(env->has_payload ? &env->payload : &empty, m, err);
        if (rc == NAS_OK) rc = validate(m, err);
        if (rc == NAS_OK && env->frames != (m->total_bytes ? 1u : 0u))
            rc = nas_set_err(err, NAS_EFORMAT, "%s: envelope announces %u frames, expected %d",
                             type_name(m->type), env->frames, m->total_bytes ? 1 : 0);
    }
    int version = env->has_protocol ? (int)env->protocol : 0;
    naspb__envelope__free_unpacked(env, NULL);
    if (rc < 0) {
        nas_wire_weights_msg_fini(m);
        memset(m, 0, sizeof *m);
        m->protocol = version;
    }
    return rc;
}

// ---- sockets --------------------------------------------------------------------------

/* Identity (ROUTER side), envelope, then the data frame straight from the
 * caller's memory: zmq_send copies it once into ZeroMQ's own message, and
 * that is the only copy on the sending side. */
int nas_wire_weights_send(void *sock, const void *identity, size_t id_len,
                          const nas_wire_weights_msg *m, const void *data, int dontwait,
                          char *err) {
    if (m->total_bytes && !data)
        return nas_set_err(err, NAS_EINVAL, "%s: %llu bytes announced, no data", type_name(m->type),
                           (unsigned long long)m->total_bytes);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nas_wire_weights_encode(m, &buf, &len, err);
    if (rc < 0) return rc;
    int dw = dontwait ? ZMQ_DONTWAIT : 0;
    int has_data = m->total_bytes > 0;
    /* Only the first part can meet a full pipe; after it ZeroMQ takes the
     * whole message or nothing. */
    if (identity) rc = nas_wire_send_frame(sock, identity, id_len, ZMQ_SNDMORE | dw, err);
    if (rc == NAS_OK)
        rc = nas_wire_send_frame(sock, buf, len, (has_data ? ZMQ_SNDMORE : 0) | dw, err);
    if (rc == NAS_OK && has_data)
        rc = nas_wire_send_frame(sock, data, (size_t)m->total_bytes, 0, err);
    nas_free(buf);
    return rc;
}

/* Every tensor's bytes against its checksum: the last check before a
 * worker applies them or the store keeps them. */
static int verify_data(const nas_wire_weights_msg *m, const uint8_t *data, size_t len, char *err) {
    if (len != m->total_bytes)
        return nas_set_err(err, NAS_EFORMAT,
                           "%s of %016llx: data frame has %zu bytes, manifest "
                           "says %llu",
                           type_name(m->type), (unsigned long long)m->arch, len,
                           (unsigned long long)m->total_bytes);
    for (size_t i = 0; i < m->n; i++) {
        const nas_wire_weights_tensor *t = &m->tensors[i];
        if (!nas_wire_weights_verify(m->checksum_kind, data + t->offset, (size_t)t->nbytes,
                                     t->checksum))
            return nas_set_err(err, NAS_EFORMAT,
                               "%s of %016llx: checksum mismatch in tensor '%s' (%s, manifest "
                               "%016llx)",
                               type_name(m->type), (unsigned long long)m->arch, t->name,
                               nas_wire_weights_checksum_name(m->checksum_kind),
                               (unsigned long long)t->checksum);
    }
    return NAS_OK;
}

/* The data frame is kept as a zmq_msg_t in the packet and read in place:
 * no heap copy of megabytes on the receiving side either (the store may
 * even adopt the frame, nas_weights_put_packet).  Order of checks: decode
 * the envelope, then the frame's presence and length, then every checksum,
 * then that nothing follows. */
int nas_wire_weights_recv(void *sock, int router, int dontwait, nas_wire_weights_packet *pkt,
                          char *err) {
    memset(pkt, 0, sizeof *pkt);
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, dontwait ? ZMQ_DONTWAIT : 0) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&part);
        if (e == EAGAIN) return NAS_EAGAIN;
        return nas_set_err(err, NAS_EIO, "zmq_recv: %s", zmq_strerror(e));
    }
    if (router) {
        size_t n = zmq_msg_size(&part);
        pkt->id_len = n < NAS_WIRE_ID_MAX ? n : NAS_WIRE_ID_MAX;
        memcpy(pkt->identity, zmq_msg_data(&part), pkt->id_len);
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        if (!nas_wire_more_parts(sock))
            return nas_set_err(err, NAS_EFORMAT, "message has no envelope");
        zmq_msg_recv(&part, sock, 0); /* the rest of a message is already here */
    }
    int rc = nas_wire_weights_decode(zmq_msg_data(&part), zmq_msg_size(&part), &pkt->msg, err);
    zmq_msg_close(&part);
    if (rc == NAS_OK && pkt->msg.total_bytes) {
        if (!nas_wire_more_parts(sock)) {
            rc = nas_set_err(err, NAS_EFORMAT, "%s: the announced data frame is missing",
                             type_name(pkt->msg.type));
        } else {
            zmq_msg_t *f = nas_malloc(sizeof *f);
            if (!f) {
                rc = nas_set_err(err, NAS_ENOMEM, "data frame");
            } else {
                zmq_msg_init(f);
                zmq_msg_recv(f, sock, 0);
                pkt->frame = f;
                pkt->data = zmq_msg_data(f);
                rc = verify_data(&pkt->msg, pkt->data, zmq_msg_size(f), err);
            }
        }
    }
    if (rc == NAS_OK && nas_wire_more_parts(sock))
        rc = nas_set_err(err, NAS_EFORMAT, "%s: more frames than announced",
                         type_name(pkt->msg.type));
    nas_wire_drain_parts(sock);
    if (rc < 0) {
        uint8_t id[NAS_WIRE_ID_MAX];
        size_t id_len = pkt->id_len;
        int version = pkt->msg.protocol;
        memcpy(id, pkt->identity, id_len);
        nas_wire_weights_packet_fini(pkt);
        memcpy(pkt->identity, id, id_len);
        pkt->id_len = id_len;
        pkt->msg.protocol = version;
    }
    return rc;
}

/* Close the adopted frame (if the store did not take it) and the
 * manifest; the packet is zeroed for reuse. */
void nas_wire_weights_packet_fini(nas_wire_weights_packet *pkt) {
    if (!pkt) return;
    if (pkt->frame) {
        zmq_msg_close(pkt->frame);
        nas_free(pkt->frame);
    }
    nas_wire_weights_msg_fini(&pkt->msg);
    memset(pkt, 0, sizeof *pkt);
}

/* A view, not a copy: the tensors point into the frame and live as long
 * as the packet. */
int nas_wire_weights_view(const nas_wire_weights_packet *pkt, nas_safetensors_tensor **out,
                          char *err) {
    size_t n = pkt->msg.n;
    nas_safetensors_tensor *t = nas_calloc(n ? n : 1, sizeof *t);
    if (!t) return nas_set_err(err, NAS_ENOMEM, "tensor view of %zu tensors", n);
    for (size_t i = 0; i < n; i++) {
        const nas_wire_weights_tensor *w = &pkt->msg.tensors[i];
        t[i].name = w->name;
        t[i].ndim = w->ndim;
        memcpy(t[i].shape, w->shape, sizeof t[i].shape);
        /* A pointer into the frame: consumers copy with memcpy, never
         * dereference as float, so alignment does not matter. */
        t[i].data = (const float *)(const void *)(pkt->data + w->offset);
    }
    *out = t;
    return NAS_OK;
}
