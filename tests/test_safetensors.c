/*
 * test_safetensors.c - bit-exact round trips (file and memory), atomic
 * replacement, and rejection of every kind of corrupted header by name.
 * The PyTorch interoperability check lives in test_data_slow.c.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/rng.h"
#include "common/safetensors.h"
#include "tests/harness.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Four tensors covering the awkward cases: a scalar, an empty tensor, a
 * 4-d weight and special float values (NaN payload, -0, inf, subnormal). */
static float g_w[2 * 3 * 2 * 2];
static float g_special[6];
static float g_scalar = 42.5f;

static size_t fixture(nas_safetensors_tensor *t) {
    for (size_t i = 0; i < NAS_ARRAY_LEN(g_w); i++)
        g_w[i] = (float)i * 0.25f - 3.0f;
    uint32_t nan_bits = 0x7fc12345u;
    memcpy(&g_special[0], &nan_bits, 4);
    g_special[1] = -0.0f;
    g_special[2] = INFINITY;
    g_special[3] = -INFINITY;
    g_special[4] = 1e-45f; /* smallest subnormal */
    g_special[5] = 3.4028235e38f;
    memset(t, 0, 4 * sizeof *t);
    t[0] = (nas_safetensors_tensor){
        .name = "cell3/block1/a/dw", .ndim = 4, .shape = {2, 3, 2, 2}, .data = g_w};
    t[1] =
        (nas_safetensors_tensor){.name = "special", .ndim = 2, .shape = {2, 3}, .data = g_special};
    t[2] = (nas_safetensors_tensor){.name = "scalar", .ndim = 0, .data = &g_scalar};
    t[3] = (nas_safetensors_tensor){.name = "empty", .ndim = 2, .shape = {0, 3}, .data = NULL};
    return 4;
}

static void check_same(const nas_safetensors *st, const nas_safetensors_tensor *t, size_t n) {
    ck_assert_uint_eq(st->count, n);
    for (size_t i = 0; i < n; i++) {
        const nas_safetensors_tensor *g = nas_safetensors_find(st, t[i].name);
        ck_assert_msg(g != NULL, "tensor %s missing", t[i].name);
        ck_assert_str_eq(st->tensors[i].name, t[i].name); /* header order kept */
        ck_assert_int_eq(g->ndim, t[i].ndim);
        for (int d = 0; d < g->ndim; d++)
            ck_assert_int_eq(g->shape[d], t[i].shape[d]);
        int64_t numel = nas_safetensors_numel(g);
        ck_assert_int_eq(numel, nas_safetensors_numel(&t[i]));
        if (numel) ck_assert_mem_eq(g->data, t[i].data, (size_t)numel * 4); /* bit-exact */
        ck_assert_uint_eq((uintptr_t)g->data % 64, 0);
    }
}

START_TEST(test_safetensors_round_trip_file) {
    nas_safetensors_tensor t[4];
    size_t n = fixture(t);
    nas_safetensors_meta meta[2] = {{"format", "pt"}, {"genome", "n=sep3x3:1+max3x3:0 \"q\""}};
    const char *dir = nas_tmpdir_make();
    char path[4096], err[NAS_ERR_LEN];
    nas_path_join(path, sizeof path, dir, "w.safetensors");
    ck_assert_msg(nas_safetensors_save(path, t, n, meta, 2, err) == 0, "%s", err);
    nas_safetensors *st = NULL;
    ck_assert_msg(nas_safetensors_load(path, &st, err) == 0, "%s", err);
    check_same(st, t, n);
    ck_assert_str_eq(nas_safetensors_meta_get(st, "genome"), meta[1].value);
    ck_assert_ptr_null(nas_safetensors_meta_get(st, "absent"));
    ck_assert_ptr_null(nas_safetensors_find(st, "absent"));
    ck_assert(st->tensors[2].data[0] == 42.5f);
    /* The header is padded so the data buffer is 8-byte aligned, and the
     * metadata comes first as in the reference writer. */
    size_t len;
    char *raw = nas_read_file(path, &len);
    uint64_t hlen;
    memcpy(&hlen, raw, 8);
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_eq(len, 8 + hlen + (24 + 6 + 1) * 4);
    ck_assert(strncmp(raw + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30) == 0);
    free(raw);
    nas_safetensors_destroy(&st);
    ck_assert_ptr_null(st);
    nas_safetensors_destroy(&st);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_safetensors_round_trip_memory) {
    nas_safetensors_tensor t[4];
    size_t n = fixture(t);
    uint8_t *buf;
    size_t len;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_safetensors_encode(t, n, NULL, 0, &buf, &len, err), 0);
    nas_safetensors *st = NULL;
    ck_assert_msg(nas_safetensors_parse(buf, len, &st, err) == 0, "%s", err);
    nas_free(buf);
    check_same(st, t, n);
    ck_assert_uint_eq(st->nmeta, 0);
    /* A loaded file can be written again unchanged. */
    ck_assert_int_eq(
        nas_safetensors_encode(st->tensors, st->count, st->meta, st->nmeta, &buf, &len, err), 0);
    nas_safetensors *st2 = NULL;
    ck_assert_int_eq(nas_safetensors_parse(buf, len, &st2, err), 0);
    check_same(st2, t, n);
    nas_free(buf);
    nas_safetensors_destroy(&st2);
    nas_safetensors_destroy(&st);
    /* No tensors at all is a valid (empty) file. */
    ck_assert_int_eq(nas_safetensors_encode(NULL, 0, NULL, 0, &buf, &len, err), 0);
    ck_assert_int_eq(nas_safetensors_parse(buf, len, &st, err), 0);
    ck_assert_uint_eq(st->count, 0);
    nas_safetensors_destroy(&st);
    nas_free(buf);
}
END_TEST

static void encode_bad(const nas_safetensors_tensor *t, size_t n, const nas_safetensors_meta *m,
                       size_t nm, const char *want) {
    uint8_t *buf = NULL;
    size_t len;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_safetensors_encode(t, n, m, nm, &buf, &len, err), NAS_EINVAL);
    ck_assert_ptr_null(buf);
    ck_assert_msg(strstr(err, want), "message \"%s\" lacks \"%s\"", err, want);
}

START_TEST(test_safetensors_find_many) {
    /* 500 tensors in an order unrelated to their names: every one is found
     * by name (binary search over the sorted index), absent names are not. */
    enum { N = 500 };
    static nas_safetensors_tensor t[N];
    static char names[N][32];
    static float vals[N];
    for (int i = 0; i < N; i++) {
        int k = (i * 7919) % N;
        snprintf(names[i], sizeof names[i], "cell%d/block%d/w", k % 17, k);
        vals[i] = (float)k;
        t[i] =
            (nas_safetensors_tensor){.name = names[i], .ndim = 1, .shape = {1}, .data = &vals[i]};
    }
    uint8_t *buf;
    size_t len;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_safetensors_encode(t, N, NULL, 0, &buf, &len, err), 0);
    nas_safetensors *st = NULL;
    ck_assert_int_eq(nas_safetensors_parse(buf, len, &st, err), 0);
    for (int i = 0; i < N; i++) {
        const nas_safetensors_tensor *g = nas_safetensors_find(st, names[i]);
        ck_assert_msg(g && g->data[0] == vals[i], "%s", names[i]);
        ck_assert_str_eq(st->tensors[i].name, names[i]);
    }
    ck_assert_ptr_null(nas_safetensors_find(st, "cell0/block0/x"));
    ck_assert_ptr_null(nas_safetensors_find(st, ""));
    ck_assert_ptr_null(nas_safetensors_find(st, "zzz"));
    nas_safetensors_destroy(&st);
    nas_free(buf);
}
END_TEST

START_TEST(test_safetensors_encode_rejects) {
    float x[4] = {0};
    nas_safetensors_tensor t[2] = {{.name = "a", .ndim = 1, .shape = {4}, .data = x},
                                   {.name = "a", .ndim = 1, .shape = {4}, .data = x}};
    encode_bad(t, 2, NULL, 0, "duplicate tensor name 'a'");
    t[1].name = "";
    encode_bad(t, 2, NULL, 0, "is empty");
    t[1].name = "__metadata__";
    encode_bad(t, 2, NULL, 0, "reserved");
    t[1].name = "b", t[1].shape[0] = -1;
    encode_bad(t, 2, NULL, 0, "'b': bad shape");
    t[1].shape[0] = 4, t[1].ndim = 9;
    encode_bad(t, 2, NULL, 0, "'b': bad shape");
    t[1].ndim = 1, t[1].data = NULL;
    encode_bad(t, 2, NULL, 0, "'b': NULL data");
    t[1].data = x;
    nas_safetensors_meta m[2] = {{"k", "1"}, {"k", "2"}};
    encode_bad(t, 2, m, 2, "duplicate metadata key 'k'");
    m[1].value = NULL;
    encode_bad(t, 2, m, 2, "metadata pair 1");
}
END_TEST

/* An image with the given header text and `dlen` data bytes (all 0x3f). */
static uint8_t *image(const char *header, size_t dlen, size_t *len) {
    size_t hl = strlen(header);
    *len = 8 + hl + dlen;
    uint8_t *b = malloc(*len);
    uint64_t h = hl;
    memcpy(b, &h, 8);
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, 0x3f, dlen);
    return b;
}

static void parse_bad(const char *header, size_t dlen, int code, const char *want) {
    size_t len;
    uint8_t *b = image(header, dlen, &len);
    nas_safetensors *st = NULL;
    char err[NAS_ERR_LEN] = "";
    int rc = nas_safetensors_parse(b, len, &st, err);
    ck_assert_msg(rc == code, "header %s: expected %d, got %d (%s)", header, code, rc, err);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(err, want), "message \"%s\" lacks \"%s\"", err, want);
    free(b);
}

#define T1(body) "{\"w\":{" body "}}"

START_TEST(test_safetensors_corrupt_headers) {
    const int F = NAS_EFORMAT;
    parse_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, F,
              "header (starts at offset 8): json: offset");
    parse_bad("[1,2]", 0, F, "header must be a JSON object (found array)");
    parse_bad("{\"w\":[1]}", 0, F, "tensor 'w': entry must be an object (found array)");
    parse_bad(T1("\"shape\":[2],\"data_offsets\":[0,8]"), 8, F,
              "'w': dtype: json: offset 5:"
              " missing key \"dtype\"");
    parse_bad(T1("\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]"), 4, NAS_EUNSUPPORTED,
              "'w': dtype F16 not supported (nasd reads F32 only)");
    parse_bad(T1("\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]"), 4, NAS_EUNSUPPORTED,
              "dtype BF16 not supported");
    parse_bad(T1("\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,4]"), 4, F,
              "dtype Q7 unknown");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]"), 8, F,
              "'w': shape must be an array");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]"), 4, F,
              "at most 8 dimensions");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]"), 8, F,
              "'w': shape: json: offset");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]"), 8, F, "whole number");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]"), 8,
              F, "'w': shape overflows");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 4, F,
              "'w': data_offsets [0, 8] outside the 4-byte data buffer");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]"), 8, F, "outside");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]"), 8, F,
              "data_offsets must be [begin, end]");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]"), 8, F,
              "data_offsets must be");
    parse_bad(T1("\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), 12, F,
              "'w': data_offsets hold 8 bytes but the shape needs 12");
    parse_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
              12, F, "tensors 'a' and 'b' overlap");
    parse_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              16, F, "duplicate key \"a\"");
    parse_bad("{\"__metadata__\":{\"k\":1}}", 0, F,
              "__metadata__ 'k' must be a string (found number)");
    parse_bad("{\"__metadata__\":[]}", 0, F, "__metadata__ must be an object (found array)");
    /* Found by fuzzing: a name the writer refuses must not parse either. */
    parse_bad("{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, F,
              "tensor name \"\" is empty or longer than");
}
END_TEST

START_TEST(test_safetensors_bad_lengths) {
    nas_safetensors *st = NULL;
    char err[NAS_ERR_LEN];
    uint8_t b[16] = {0};
    ck_assert_int_eq(nas_safetensors_parse(b, 5, &st, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "offset 0: 5 bytes, too short"));
    uint64_t h = 200ull << 20;
    memcpy(b, &h, 8);
    ck_assert_int_eq(nas_safetensors_parse(b, 16, &st, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "exceeds the 104857600-byte limit"));
    h = 9;
    memcpy(b, &h, 8);
    ck_assert_int_eq(nas_safetensors_parse(b, 16, &st, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "header length 9 runs past the end of the 16-byte input"));
    h = UINT64_MAX;
    memcpy(b, &h, 8);
    ck_assert_int_eq(nas_safetensors_parse(b, 16, &st, err), NAS_EFORMAT);
    h = 0;
    memcpy(b, &h, 8);
    ck_assert_int_eq(nas_safetensors_parse(b, 8, &st, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "unexpected end of input"));
    ck_assert_int_eq(nas_safetensors_parse(NULL, 3, &st, err), NAS_EINVAL);
    ck_assert_ptr_null(st);
}
END_TEST

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

START_TEST(test_safetensors_atomic_save) {
    const char *dir = nas_tmpdir_make();
    char path[4096], err[NAS_ERR_LEN];
    nas_path_join(path, sizeof path, dir, "w.safetensors");
    float a[3] = {1, 2, 3}, b[2] = {7, 8};
    nas_safetensors_tensor ta = {.name = "a", .ndim = 1, .shape = {3}, .data = a};
    nas_safetensors_tensor tb = {.name = "b", .ndim = 1, .shape = {2}, .data = b};
    ck_assert_int_eq(nas_safetensors_save(path, &ta, 1, NULL, 0, err), 0);
    /* Replacing leaves exactly one file: the new one. */
    ck_assert_int_eq(nas_safetensors_save(path, &tb, 1, NULL, 0, err), 0);
    ck_assert_int_eq(count_entries(dir), 1);
    nas_safetensors *st = NULL;
    ck_assert_int_eq(nas_safetensors_load(path, &st, err), 0);
    ck_assert_ptr_nonnull(nas_safetensors_find(st, "b"));
    ck_assert_ptr_null(nas_safetensors_find(st, "a"));
    nas_safetensors_destroy(&st);
    /* A failed encode never touches the existing file. */
    tb.shape[0] = -1;
    ck_assert_int_eq(nas_safetensors_save(path, &tb, 1, NULL, 0, err), NAS_EINVAL);
    ck_assert_int_eq(nas_safetensors_load(path, &st, err), 0);
    ck_assert(nas_safetensors_find(st, "b")->data[1] == 8.0f);
    nas_safetensors_destroy(&st);
    /* A directory that does not exist is an I/O error naming the path. */
    char bad[4096];
    nas_path_join(bad, sizeof bad, dir, "no/such/dir/w.safetensors");
    ck_assert_int_eq(nas_safetensors_save(bad, &ta, 1, NULL, 0, err), NAS_EIO);
    ck_assert_ptr_nonnull(strstr(err, "no/such/dir/w.safetensors.tmp"));
    ck_assert_int_eq(nas_safetensors_load(bad, &st, err), NAS_ENOTFOUND);
    ck_assert_int_eq(nas_safetensors_load(dir, &st, err), NAS_EIO);
    ck_assert_int_eq(count_entries(dir), 1);
    /* Load errors carry the path as a prefix. */
    FILE *f = fopen(path, "wb");
    fputs("garbage", f);
    fclose(f);
    ck_assert_int_eq(nas_safetensors_load(path, &st, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "w.safetensors: safetensors: offset 0: 7 bytes"));
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_safetensors_mutations_never_crash) {
    nas_safetensors_tensor t[4];
    size_t n = fixture(t);
    nas_safetensors_meta meta[1] = {{"k", "v"}};
    uint8_t *buf;
    size_t len;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_safetensors_encode(t, n, meta, 1, &buf, &len, err), 0);
    uint8_t *m = malloc(len);
    nas_rng r;
    nas_rng_init(&r, 11, 0);
    int ok = 0;
    for (int iter = 0; iter < 5000; iter++) {
        memcpy(m, buf, len);
        /* Mostly hit the header, where the structure is. */
        uint32_t span = nas_rng_below(&r, 4) ? 8 + 300 : (uint32_t)len;
        if (span > len) span = (uint32_t)len;
        for (int e = 0; e < 2; e++)
            m[nas_rng_below(&r, span)] = (uint8_t)nas_rng_u32(&r);
        size_t l = nas_rng_below(&r, 8) ? len : nas_rng_below(&r, (uint32_t)len + 1);
        nas_safetensors *st = NULL;
        int rc = nas_safetensors_parse(m, l, &st, err);
        if (rc == 0) {
            ok++;
            nas_safetensors_destroy(&st);
        } else {
            ck_assert(rc == NAS_EFORMAT || rc == NAS_EUNSUPPORTED);
        }
    }
    ck_assert_int_gt(ok, 0);
    free(m);
    nas_free(buf);
}
END_TEST

START_TEST(test_safetensors_oom_is_clean) {
    nas_safetensors_tensor t[4];
    size_t n = fixture(t);
    nas_safetensors_meta meta[1] = {{"k", "v"}};
    uint8_t *buf = NULL;
    size_t len;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_safetensors_encode(t, n, meta, 1, &buf, &len, err), 0);
    int parse_ok = 0, encode_ok = 0;
    for (long k = 1; k < 200 && !(parse_ok && encode_ok); k++) {
        nas_safetensors *st = NULL;
        uint8_t *b2 = NULL;
        size_t l2;
        nas_alloc_fail_after(k);
        int rc = nas_safetensors_parse(buf, len, &st, err);
        nas_alloc_fail_reset();
        ck_assert(rc == 0 || rc == NAS_ENOMEM);
        parse_ok |= rc == 0;
        nas_safetensors_destroy(&st);
        nas_alloc_fail_after(k);
        rc = nas_safetensors_encode(t, n, meta, 1, &b2, &l2, err);
        nas_alloc_fail_reset();
        ck_assert(rc == 0 || rc == NAS_ENOMEM);
        encode_ok |= rc == 0;
        nas_free(b2);
    }
    ck_assert(parse_ok && encode_ok);
    nas_free(buf);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_safetensors_round_trip_file);
    tcase_add_test(tc, test_safetensors_round_trip_memory);
    tcase_add_test(tc, test_safetensors_find_many);
    tcase_add_test(tc, test_safetensors_encode_rejects);
    tcase_add_test(tc, test_safetensors_corrupt_headers);
    tcase_add_test(tc, test_safetensors_bad_lengths);
    tcase_add_test(tc, test_safetensors_atomic_save);
    tcase_add_test(tc, test_safetensors_mutations_never_crash);
    tcase_add_test(tc, test_safetensors_oom_is_clean);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
