/*
 * fuzz_targets.c - the decoders under fuzz, with their round-trip checks
 * (see fuzz_targets.h).
 *
 * Everything here is pure with respect to its input except the data set
 * targets, whose loaders only read files: they get the bytes through a
 * memfd and its /proc/self/fd path, so nothing touches the disk and a
 * crash cannot leave files behind.  A property violation calls
 * nas_abort(), which libFuzzer reports as a crash with the input saved.
 */
#include "tests/fuzz/fuzz_targets.h"

#include "common/alloc.h"
#include "common/dataset.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/safetensors.h"
#include "common/table.h"
#include "common/wire.h"
#include "master/config.h"
#include "proto/nas.pb-c.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zmq.h>

/* A broken property is a bug in the decoder or encoder, never bad input. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) nas_abort(__FILE__, __LINE__, __VA_ARGS__);                                   \
    } while (0)

// ----------------------------------------------------------------------------
// Wire

/* decode(bytes) accepted: encoding it must work, and decoding that
 * encoding must give a message that encodes to the very same bytes. */
static void wire_round_trip(const nas_wire_msg *m) {
    char err[NAS_ERR_LEN];
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    FUZZ_CHECK(nas_wire_validate(m, err) == NAS_OK, "decoded %s fails validate: %s",
               nas_wire_type_name(m->type), err);
    int rc = nas_wire_encode(m, &b1, &l1, err);
    FUZZ_CHECK(rc == NAS_OK, "decoded %s does not encode: %s", nas_wire_type_name(m->type), err);
    nas_wire_msg m2;
    rc = nas_wire_decode(b1, l1, &m2, err);
    FUZZ_CHECK(rc == NAS_OK, "re-encoded %s does not decode: %s", nas_wire_type_name(m->type), err);
    FUZZ_CHECK(m2.type == m->type && m2.seq == m->seq && m2.frames == m->frames,
               "envelope fields changed in a round trip");
    rc = nas_wire_encode(&m2, &b2, &l2, err);
    FUZZ_CHECK(rc == NAS_OK && l1 == l2 && memcmp(b1, b2, l1) == 0,
               "%s: encode(decode(encode(m))) differs from encode(m)", nas_wire_type_name(m->type));
    nas_wire_msg_fini(&m2);
    nas_free(b1);
    nas_free(b2);
}

int nas_fuzz_wire(const uint8_t *data, size_t size) {
    nas_wire_msg m;
    char err[NAS_ERR_LEN] = "";
    int rc = nas_wire_decode(data, size, &m, err);
    if (rc == NAS_OK) {
        wire_round_trip(&m);
        nas_wire_msg_fini(&m);
        return 1;
    }
    FUZZ_CHECK(rc < 0 && err[0] != '\0', "decode error %d without a message", rc);
    return 0;
}

/* The first byte picks the message type, the rest is the body: the fuzzer
 * then spends its time inside each message decoder instead of learning
 * the envelope first. */
int nas_fuzz_wire_body(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    Naspb__Envelope env = NASPB__ENVELOPE__INIT;
    env.has_protocol = 1;
    env.protocol = NAS_PROTOCOL_VERSION;
    env.has_type = 1;
    env.type = data[0] % (NAS_MSG_COUNT + 2); /* two values past the end */
    env.has_payload = 1;
    env.payload.data = (uint8_t *)(data + 1);
    env.payload.len = size - 1;
    size_t len = naspb__envelope__get_packed_size(&env);
    uint8_t *buf = nas_malloc(len ? len : 1);
    if (buf == NULL) return 0;
    naspb__envelope__pack(&env, buf);
    int ok = nas_fuzz_wire(buf, len);
    nas_free(buf);
    return ok;
}

// ----------------------------------------------------------------------------
// Genomes

/* g was accepted: its text form and JSON form must both re-parse to a
 * genome with the same text, and canonical hashing must be stable. */
static void genome_round_trip(const nas_genome *g) {
    char t1[NAS_GENOME_TEXT_MAX], t2[NAS_GENOME_TEXT_MAX], err[NAS_ERR_LEN];
    static char j1[8192], j2[8192], dot[65536]; /* far above the largest genome */
    int n = nas_genome_format(g, t1, sizeof t1);
    FUZZ_CHECK(n > 0, "accepted genome does not format (%d)", n);
    nas_genome back;
    FUZZ_CHECK(nas_genome_parse(t1, (size_t)n, &back, err) == NAS_OK,
               "formatted genome '%s' does not parse: %s", t1, err);
    FUZZ_CHECK(nas_genome_format(&back, t2, sizeof t2) == n && strcmp(t1, t2) == 0,
               "text round trip: '%s' became '%s'", t1, t2);
    FUZZ_CHECK(nas_genome_hash(g) == nas_genome_hash(&back), "hash differs after round trip");
    FUZZ_CHECK(nas_genome_equivalent(g, &back), "round trip not equivalent: '%s'", t1);
    nas_genome canon, canon2;
    nas_genome_canonical(g, &canon);
    nas_genome_canonical(&canon, &canon2);
    FUZZ_CHECK(nas_genome_hash(&canon) == nas_genome_hash(&canon2) &&
                   nas_genome_hash(&canon) == nas_genome_hash(g),
               "canonical form of '%s' is not a fixed point of the hash", t1);
    FUZZ_CHECK(nas_genome_to_dot(g, dot, sizeof dot) > 0, "no DOT form for '%s'", t1);
    int jn = nas_genome_to_json(g, j1, sizeof j1);
    FUZZ_CHECK(jn > 0, "accepted genome '%s' has no JSON form (%d)", t1, jn);
    nas_genome from_json;
    FUZZ_CHECK(nas_genome_from_json(j1, (size_t)jn, &from_json, err) == NAS_OK,
               "JSON of '%s' does not parse: %s", t1, err);
    FUZZ_CHECK(nas_genome_to_json(&from_json, j2, sizeof j2) == jn && strcmp(j1, j2) == 0,
               "JSON round trip changed '%s'", t1);
}

int nas_fuzz_genome_text(const uint8_t *data, size_t size) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    if (nas_genome_parse((const char *)data, size, &g, err) != NAS_OK) return 0;
    genome_round_trip(&g);
    return 1;
}

int nas_fuzz_genome_json(const uint8_t *data, size_t size) {
    nas_genome g;
    char err[NAS_ERR_LEN];
    if (nas_genome_from_json((const char *)data, size, &g, err) != NAS_OK) return 0;
    genome_round_trip(&g);
    return 1;
}

// ----------------------------------------------------------------------------
// JSON and YAML

static char *json_dump(const nas_json *v, size_t *len) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_value(&b, v);
    return nas_json_buf_take(&b, len);
}

int nas_fuzz_json(const uint8_t *data, size_t size) {
    nas_json *v = NULL, *v2 = NULL;
    char err[NAS_ERR_LEN];
    if (nas_json_parse((const char *)data, size, 0, &v, err) != NAS_OK) return 0;
    size_t l1 = 0, l2 = 0;
    char *s1 = json_dump(v, &l1);
    if (s1 != NULL) {
        FUZZ_CHECK(nas_json_parse(s1, l1, 0, &v2, err) == NAS_OK,
                   "serialised JSON does not parse: %s", err);
        char *s2 = json_dump(v2, &l2);
        FUZZ_CHECK(s2 != NULL && l1 == l2 && memcmp(s1, s2, l1) == 0,
                   "JSON write(parse(write(v))) differs from write(v)");
        nas_free(s2);
        nas_json_free(&v2);
    }
    nas_free(s1);
    nas_json_free(&v);
    return 1;
}

int nas_fuzz_config(const uint8_t *data, size_t size) {
    nas_config a = nas_config_default(), b = nas_config_default();
    char err[NAS_ERR_LEN] = "";
    int rc = nas_config_parse((const char *)data, size, "fuzz.yaml", &a, err);
    if (rc == NAS_OK) {
        /* Parsing is a function of the bytes: the same text gives the same
         * campaign identity. */
        FUZZ_CHECK(nas_config_parse((const char *)data, size, "fuzz.yaml", &b, err) == NAS_OK,
                   "second parse of an accepted config failed: %s", err);
        FUZZ_CHECK(a.hash == b.hash && strcmp(a.canonical, b.canonical) == 0,
                   "config identity is not deterministic");
        nas_config_fini(&b);
        rc = 1;
    } else {
        FUZZ_CHECK(err[0] != '\0', "config error %d without a message", rc);
    }
    nas_config_fini(&a);
    return rc == 1;
}

// ----------------------------------------------------------------------------
// Data sets, through memfds

/* A memfd holding bytes; path gets its /proc/self/fd name.  -1 on error. */
static int memfd_with(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("nas-fuzz", MFD_CLOEXEC);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* Every accepted set must be self-consistent. */
static void dataset_check(const nas_dataset *ds) {
    FUZZ_CHECK(ds->n > 0 && ds->c > 0 && ds->h > 0 && ds->w > 0, "empty dimensions accepted");
    size_t px = (size_t)ds->n * (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    for (size_t i = 0; i < px; i++)
        FUZZ_CHECK(ds->images[i] >= 0.0f && ds->images[i] <= 1.0f, "pixel %zu outside [0, 1]", i);
    for (int i = 0; i < ds->n; i++)
        FUZZ_CHECK(ds->labels[i] < ds->classes, "label %d of image %d >= classes %d", ds->labels[i],
                   i, ds->classes);
}

/* Input: u32 little-endian length of the image file, the image file, then
 * the label file (either may be gzip-compressed). */
int nas_fuzz_idx(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t split =
        (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    data += 4;
    size -= 4;
    if (split > size) split = size;
    char ipath[64], lpath[64], err[NAS_ERR_LEN];
    int ok = 0;
    int ifd = memfd_with(data, split, ipath, sizeof ipath);
    int lfd = memfd_with(data + split, size - split, lpath, sizeof lpath);
    if (ifd >= 0 && lfd >= 0) {
        nas_dataset ds;
        if (nas_dataset_load_idx(&ds, ipath, lpath, 10, 0, 0, err) == NAS_OK) {
            dataset_check(&ds);
            nas_dataset_fini(&ds);
            ok = 1;
        }
    }
    if (ifd >= 0) close(ifd);
    if (lfd >= 0) close(lfd);
    return ok;
}

int nas_fuzz_cifar(const uint8_t *data, size_t size) {
    char path[64], err[NAS_ERR_LEN];
    int fd = memfd_with(data, size, path, sizeof path);
    if (fd < 0) return 0;
    const char *paths[1] = {path};
    nas_dataset ds;
    int ok = 0;
    if (nas_dataset_load_cifar(&ds, paths, 1, err) == NAS_OK) {
        ok = 1;
        dataset_check(&ds);
        FUZZ_CHECK(ds.c == 3 && ds.h == 32 && ds.w == 32, "CIFAR set of shape %dx%dx%d", ds.c, ds.h,
                   ds.w);
        nas_dataset_fini(&ds);
    }
    close(fd);
    return ok;
}

// ----------------------------------------------------------------------------
// Safetensors, tables, keys

int nas_fuzz_safetensors(const uint8_t *data, size_t size) {
    nas_safetensors *st = NULL, *st2 = NULL;
    char err[NAS_ERR_LEN];
    if (nas_safetensors_parse(data, size, &st, err) != NAS_OK) return 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nas_safetensors_encode(st->tensors, st->count, st->meta, st->nmeta, &buf, &len, err);
    FUZZ_CHECK(rc == NAS_OK, "parsed safetensors does not encode: %s", err);
    FUZZ_CHECK(nas_safetensors_parse(buf, len, &st2, err) == NAS_OK,
               "re-encoded safetensors does not parse: %s", err);
    FUZZ_CHECK(st2->count == st->count && st2->nmeta == st->nmeta, "counts changed");
    for (size_t i = 0; i < st->count; i++) {
        const nas_safetensors_tensor *a = &st->tensors[i], *b = &st2->tensors[i];
        FUZZ_CHECK(strcmp(a->name, b->name) == 0 && a->ndim == b->ndim, "tensor %zu changed", i);
        int64_t n = nas_safetensors_numel(a);
        FUZZ_CHECK(n >= 0 && n == nas_safetensors_numel(b), "tensor %s size changed", a->name);
        FUZZ_CHECK(n == 0 || memcmp(a->data, b->data, (size_t)n * sizeof(float)) == 0,
                   "tensor %s data changed", a->name);
    }
    nas_free(buf);
    nas_safetensors_destroy(&st2);
    nas_safetensors_destroy(&st);
    return 1;
}

int nas_fuzz_table(const uint8_t *data, size_t size) {
    nas_table *t = NULL;
    char err[NAS_ERR_LEN];
    if (nas_table_parse(&t, (const char *)data, size, "arch", "fuzz.csv", err) != NAS_OK) return 0;
    int rows = nas_table_rows(t), cols = nas_table_cols(t), key = nas_table_column(t, "arch");
    FUZZ_CHECK(rows >= 0 && cols >= 1 && key >= 0 && key < cols, "bad table shape");
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            const char *cell = nas_table_cell(t, r, c);
            FUZZ_CHECK(cell != NULL, "cell %d,%d missing", r, c);
            double v;
            (void)nas_table_number(t, r, c, &v, err);
        }
        /* Keys are unique, so each row is found by its own key. */
        const char *k = nas_table_cell(t, r, key);
        FUZZ_CHECK(nas_table_find(t, k, strlen(k)) == r, "row %d not found by its key", r);
    }
    nas_table_destroy(&t);
    return 1;
}

int nas_fuzz_keys(const uint8_t *data, size_t size) {
    char out[NAS_KEY_Z85_LEN + 1], err[NAS_ERR_LEN];
    static const char *what[2] = {"public", "secret"};
    int ok = 0;
    for (int i = 0; i < 2; i++) {
        if (nas_keys_parse((const char *)data, size, what[i], "fuzz.key", out, err) != NAS_OK)
            continue;
        FUZZ_CHECK(strlen(out) == NAS_KEY_Z85_LEN &&
                       nas_keys_check_z85(out, NAS_KEY_Z85_LEN, err) == NAS_OK,
                   "accepted key is not a valid Z85 key");
        uint8_t bin[NAS_KEY_BIN_LEN];
        char z85[NAS_KEY_Z85_LEN + 1];
        FUZZ_CHECK(zmq_z85_decode(bin, out) != NULL && zmq_z85_encode(z85, bin, 32) != NULL &&
                       strcmp(z85, out) == 0,
                   "Z85 round trip changed an accepted key");
        ok = 1;
    }
    return ok;
}

// ----------------------------------------------------------------------------
// Table of targets

const nas_fuzz_target nas_fuzz_targets[] = {
    {"wire", nas_fuzz_wire},
    {"wire_body", nas_fuzz_wire_body},
    {"genome_text", nas_fuzz_genome_text},
    {"genome_json", nas_fuzz_genome_json},
    {"json", nas_fuzz_json},
    {"config", nas_fuzz_config},
    {"idx", nas_fuzz_idx},
    {"cifar", nas_fuzz_cifar},
    {"safetensors", nas_fuzz_safetensors},
    {"table", nas_fuzz_table},
    {"keys", nas_fuzz_keys},
    {NULL, NULL},
};

nas_fuzz_fn nas_fuzz_find(const char *name) {
    for (const nas_fuzz_target *t = nas_fuzz_targets; t->name != NULL; t++)
        if (strcmp(t->name, name) == 0) return t->fn;
    return NULL;
}
