/*
 * test_json.c - the JSON reader accepts valid documents, rejects every kind
 * of malformed input with a message naming the byte offset, and the writer
 * produces text that reads back to the same values (floats bit-exact).
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"
#include "common/rng.h"
#include "tests/harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse a NUL-terminated literal; returns the tree or fails the test. */
static nas_json *parse_ok(const char *s) {
    nas_json *j = NULL;
    char err[NAS_ERR_LEN] = "";
    int rc = nas_json_parse(s, strlen(s), 0, &j, err);
    ck_assert_msg(rc == 0, "parse of %s failed: %s", s, err);
    return j;
}

/* Expect a parse failure with NAS_EFORMAT whose message contains `offset N`
 * and `what`. */
static void parse_bad(const char *s, size_t len, size_t offset, const char *what) {
    nas_json *j = NULL;
    char err[NAS_ERR_LEN] = "";
    int rc = nas_json_parse(s, len, 0, &j, err);
    ck_assert_msg(rc == NAS_EFORMAT, "expected NAS_EFORMAT for [%.*s], got %d", (int)len, s, rc);
    ck_assert_ptr_null(j);
    char want[64];
    snprintf(want, sizeof want, "offset %zu:", offset);
    ck_assert_msg(strstr(err, want), "message \"%s\" lacks \"%s\"", err, want);
    ck_assert_msg(strstr(err, what), "message \"%s\" lacks \"%s\"", err, what);
}

START_TEST(test_json_scalars) {
    nas_json *j = parse_ok("  -12.5e1 ");
    ck_assert_int_eq(j->type, NAS_JSON_NUMBER);
    ck_assert(j->number == -125.0);
    ck_assert_uint_eq(j->offset, 2);
    nas_json_free(&j);
    ck_assert_ptr_null(j);

    j = parse_ok("true");
    ck_assert_int_eq(j->type, NAS_JSON_BOOL);
    ck_assert_int_eq(j->boolean, 1);
    nas_json_free(&j);
    j = parse_ok("null");
    ck_assert_int_eq(j->type, NAS_JSON_NULL);
    nas_json_free(&j);
    j = parse_ok("0");
    ck_assert(j->number == 0.0);
    nas_json_free(&j);
    nas_json_free(&j); /* NULL is fine */
}
END_TEST

START_TEST(test_json_nested_document) {
    const char *doc = "{\"name\": \"cell3/block1/a/dw\", \"shape\": [3, 1, 5, 5],"
                      " \"nested\": {\"ok\": false, \"list\": [[], {}, null]}, \"x\": 1e-3}";
    nas_json *j = parse_ok(doc);
    ck_assert_int_eq(j->type, NAS_JSON_OBJECT);
    ck_assert_uint_eq(j->len, 4);
    const char *name;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_json_get_string(j, "name", &name, err), 0);
    ck_assert_str_eq(name, "cell3/block1/a/dw");
    const nas_json *shape = nas_json_get(j, "shape");
    ck_assert_ptr_nonnull(shape);
    ck_assert_uint_eq(shape->len, 4);
    ck_assert(nas_json_at(shape, 3)->number == 5.0);
    ck_assert_ptr_null(nas_json_at(shape, 4));
    const nas_json *nested = nas_json_get(j, "nested");
    int b = 1;
    ck_assert_int_eq(nas_json_get_bool(nested, "ok", &b, err), 0);
    ck_assert_int_eq(b, 0);
    const nas_json *list = nas_json_get(nested, "list");
    ck_assert_int_eq(nas_json_at(list, 0)->type, NAS_JSON_ARRAY);
    ck_assert_int_eq(nas_json_at(list, 1)->type, NAS_JSON_OBJECT);
    ck_assert_int_eq(nas_json_at(list, 2)->type, NAS_JSON_NULL);
    double x;
    ck_assert_int_eq(nas_json_get_number(j, "x", &x, err), 0);
    ck_assert(x == 1e-3);
    /* Typed getters name the key and the offset on a type mismatch. */
    int64_t i;
    ck_assert_int_eq(nas_json_get_int64(j, "name", &i, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "\"name\" has type string, expected number"));
    ck_assert_int_eq(nas_json_get_int64(j, "missing", &i, err), NAS_ENOTFOUND);
    ck_assert_int_eq(nas_json_get_int64(j, "x", &i, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "whole number"));
    nas_json_free(&j);
}
END_TEST

START_TEST(test_json_string_escapes) {
    nas_json *j = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\"");
    const char *want = "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    ck_assert_str_eq(j->str, want);
    ck_assert_uint_eq(j->len, strlen(want));
    nas_json_free(&j);
    /* Raw UTF-8 passes through unchanged. */
    j = parse_ok("\"caf\xc3\xa9\"");
    ck_assert_str_eq(j->str, "caf\xc3\xa9");
    nas_json_free(&j);
}
END_TEST

START_TEST(test_json_int64_bounds) {
    nas_json *j = parse_ok("[9007199254740992, -3, 2.5, 1e300]");
    int64_t v;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_json_to_int64(nas_json_at(j, 0), 0, INT64_MAX, "n", &v, err), 0);
    ck_assert_int_eq(v, 9007199254740992LL);
    ck_assert_int_eq(nas_json_to_int64(nas_json_at(j, 1), 0, 10, "n", &v, err), NAS_EFORMAT);
    ck_assert_int_eq(nas_json_to_int64(nas_json_at(j, 2), 0, 10, "n", &v, err), NAS_EFORMAT);
    ck_assert_int_eq(nas_json_to_int64(nas_json_at(j, 3), INT64_MIN, INT64_MAX, "n", &v, err),
                     NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "offset 28"));
    nas_json_free(&j);
}
END_TEST

START_TEST(test_json_truncated) {
    const char *full = "{\"a\": [1, 2.5e3, \"x\\u0041\", true], \"b\": null}";
    /* Every proper prefix is invalid and must be rejected, never crash. */
    for (size_t n = 0; n < strlen(full); n++) {
        nas_json *j = NULL;
        char err[NAS_ERR_LEN] = "";
        int rc = nas_json_parse(full, n, 0, &j, err);
        ck_assert_msg(rc == NAS_EFORMAT, "prefix of %zu bytes accepted", n);
        ck_assert_ptr_nonnull(strstr(err, "offset"));
    }
    parse_bad("", 0, 0, "unexpected end of input");
    parse_bad("[1, 2", 5, 5, "end of input in array");
    parse_bad("\"abc", 4, 0, "unterminated string");
    parse_bad("{\"a\"", 4, 4, "expected ':'");
    parse_bad("tru", 3, 0, "expected a value");
}
END_TEST

START_TEST(test_json_bad_escapes) {
    parse_bad("\"a\\qb\"", 6, 2, "invalid escape");
    parse_bad("\"\\u12G4\"", 8, 1, "4 hex digits");
    parse_bad("\"\\u12\"", 6, 1, "4 hex digits");
    parse_bad("\"\\ud83d\"", 8, 1, "not followed by a low surrogate");
    parse_bad("\"\\ude00\"", 8, 1, "lone low surrogate");
    parse_bad("\"a\\u0000b\"", 10, 2, "\\u0000 is not allowed");
    parse_bad("\"tab\there\"", 10, 4, "control character 0x09");
    parse_bad("\"\xc3\x28\"", 4, 1, "invalid UTF-8");
    parse_bad("\"\xed\xa0\x80\"", 5, 1, "invalid UTF-8"); /* encoded surrogate */
    parse_bad("\"\xc0\xaf\"", 4, 1, "invalid UTF-8");     /* overlong '/' */
}
END_TEST

START_TEST(test_json_bad_numbers) {
    parse_bad("01", 2, 0, "leading zero");
    parse_bad("-", 1, 1, "expected a digit");
    parse_bad("1.", 2, 2, "after '.'");
    parse_bad("1.e5", 4, 2, "after '.'");
    parse_bad("1e", 2, 2, "exponent");
    parse_bad("1e+", 3, 3, "exponent");
    parse_bad("+1", 2, 0, "unexpected '+'");
    parse_bad(".5", 2, 0, "unexpected '.'");
    parse_bad("0x10", 4, 1, "trailing 'x'");
    parse_bad("1e400", 5, 0, "out of range");
    parse_bad("[NaN]", 5, 1, "unexpected 'N'");
    parse_bad("-Infinity", 9, 1, "expected a digit");
    char longnum[700];
    memset(longnum, '1', sizeof longnum);
    parse_bad(longnum, sizeof longnum, 0, "longer than");
}
END_TEST

START_TEST(test_json_structure_errors) {
    parse_bad("[1 2]", 5, 3, "expected ',' or ']'");
    parse_bad("[1,]", 4, 3, "unexpected ']'");
    parse_bad("{\"a\":1,}", 8, 7, "expected a string key");
    parse_bad("{a:1}", 5, 1, "expected a string key");
    parse_bad("{\"a\" 1}", 7, 5, "expected ':'");
    parse_bad("{\"a\":1 \"b\":2}", 13, 7, "expected ',' or '}'");
    parse_bad("{\"a\":1,\"b\":2,\"a\":3}", 19, 13, "duplicate key \"a\"");
    parse_bad("{} {}", 5, 3, "trailing '{'");
    parse_bad("[1]x", 4, 3, "trailing 'x'");
    parse_bad("nul", 3, 0, "expected a value");
    parse_bad("nullx", 5, 4, "trailing 'x'");
}
END_TEST

START_TEST(test_json_embedded_nul) {
    /* A NUL byte is not JSON anywhere: the length, not a terminator, rules. */
    parse_bad("[1,\0 2]", 7, 3, "byte 0x00");
    parse_bad("\"a\0b\"", 5, 2, "control character 0x00");
    parse_bad("{}\0", 3, 2, "trailing byte 0x00");
    /* NULL buffer with a length is a caller error, not a format error. */
    nas_json *j = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_json_parse(NULL, 3, 0, &j, err), NAS_EINVAL);
}
END_TEST

START_TEST(test_json_depth_limit) {
    enum { N = 200 };
    char deep[2 * N];
    for (int i = 0; i < N; i++)
        deep[i] = '[', deep[2 * N - 1 - i] = ']';
    parse_bad(deep, sizeof deep, NAS_JSON_MAX_DEPTH, "nesting deeper than 64");
    nas_json *j = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_json_parse(deep, sizeof deep, N, &j, err), 0);
    nas_json_free(&j);
    ck_assert_int_eq(nas_json_parse(deep, sizeof deep, N - 1, &j, err), NAS_EFORMAT);
    ck_assert_int_eq(nas_json_parse(deep, sizeof deep, 100000, &j, err), NAS_EINVAL);
}
END_TEST

START_TEST(test_json_writer_round_trip) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    const float f = 0.1f, g = 3.4028235e38f, tiny = 1.17549435e-38f;
    const double d = 0.1 + 0.2;
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "name");
    nas_json_buf_str(&b, "q\"uote\\ \n\x01 caf\xc3\xa9");
    nas_json_buf_key(&b, "floats");
    nas_json_buf_arr_begin(&b);
    nas_json_buf_f32(&b, f);
    nas_json_buf_f32(&b, g);
    nas_json_buf_f32(&b, tiny);
    nas_json_buf_f32(&b, NAN);
    nas_json_buf_arr_end(&b);
    nas_json_buf_key(&b, "d");
    nas_json_buf_f64(&b, d);
    nas_json_buf_key(&b, "i");
    nas_json_buf_i64(&b, INT64_MIN + 1);
    nas_json_buf_key(&b, "u");
    nas_json_buf_u64(&b, 12345678901234ULL);
    nas_json_buf_key(&b, "t");
    nas_json_buf_bool(&b, 1);
    nas_json_buf_key(&b, "nil");
    nas_json_buf_str(&b, NULL);
    nas_json_buf_key(&b, "empty");
    nas_json_buf_obj_begin(&b);
    nas_json_buf_obj_end(&b);
    nas_json_buf_obj_end(&b);
    ck_assert_int_eq(nas_json_buf_status(&b), 0);
    size_t len;
    char *text = nas_json_buf_take(&b, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(len, strlen(text));

    nas_json *j = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_json_parse(text, len, 0, &j, err) == 0, "%s: %s", text, err);
    ck_assert_str_eq(nas_json_get(j, "name")->str, "q\"uote\\ \n\x01 caf\xc3\xa9");
    const nas_json *fl = nas_json_get(j, "floats");
    ck_assert(fl->len == 4);
    ck_assert((float)nas_json_at(fl, 0)->number == f);
    ck_assert((float)nas_json_at(fl, 1)->number == g);
    ck_assert((float)nas_json_at(fl, 2)->number == tiny);
    ck_assert_int_eq(nas_json_at(fl, 3)->type, NAS_JSON_NULL);
    ck_assert(nas_json_get(j, "d")->number == d);
    ck_assert_int_eq(nas_json_get(j, "t")->boolean, 1);
    ck_assert_int_eq(nas_json_get(j, "nil")->type, NAS_JSON_NULL);
    ck_assert_uint_eq(nas_json_get(j, "empty")->len, 0);

    /* Serialising the tree and parsing again gives the same text. */
    nas_json_buf b2;
    nas_json_buf_init(&b2);
    nas_json_buf_value(&b2, j);
    nas_json *j2 = NULL;
    ck_assert_int_eq(nas_json_parse(b2.data, b2.len, 0, &j2, err), 0);
    nas_json_buf b3;
    nas_json_buf_init(&b3);
    nas_json_buf_value(&b3, j2);
    ck_assert_str_eq(b2.data, b3.data);
    nas_json_buf_fini(&b2);
    nas_json_buf_fini(&b3);
    nas_json_free(&j2);
    nas_json_free(&j);
    nas_free(text);
}
END_TEST

START_TEST(test_json_float_round_trip_random) {
    /* %.9g / %.17g read back bit-exact for every finite value: check
     * random bit patterns, which cover subnormals and extreme exponents. */
    nas_rng r;
    nas_rng_init(&r, 2026, 0);
    char err[NAS_ERR_LEN];
    for (int i = 0; i < 5000; i++) {
        uint32_t fb = nas_rng_u32(&r);
        uint64_t db = nas_rng_u64(&r);
        float f;
        double d;
        memcpy(&f, &fb, 4);
        memcpy(&d, &db, 8);
        if (!isfinite(f) || !isfinite(d)) continue;
        nas_json_buf b;
        nas_json_buf_init(&b);
        nas_json_buf_arr_begin(&b);
        nas_json_buf_f32(&b, f);
        nas_json_buf_f64(&b, d);
        nas_json_buf_arr_end(&b);
        nas_json *j = NULL;
        ck_assert_msg(nas_json_parse(b.data, b.len, 0, &j, err) == 0, "%s: %s", b.data, err);
        float f2 = (float)nas_json_at(j, 0)->number;
        double d2 = nas_json_at(j, 1)->number;
        ck_assert_msg(memcmp(&f, &f2, 4) == 0, "float %a became %a via %s", (double)f, (double)f2,
                      b.data);
        ck_assert_msg(memcmp(&d, &d2, 8) == 0, "double %a became %a via %s", d, d2, b.data);
        nas_json_free(&j);
        nas_json_buf_fini(&b);
    }
}
END_TEST

START_TEST(test_json_writer_commas) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_arr_begin(&b);
    nas_json_buf_i64(&b, 1);
    nas_json_buf_arr_begin(&b);
    nas_json_buf_arr_end(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "k");
    nas_json_buf_arr_begin(&b);
    nas_json_buf_str(&b, "a");
    nas_json_buf_str(&b, "b");
    nas_json_buf_arr_end(&b);
    nas_json_buf_obj_end(&b);
    nas_json_buf_arr_end(&b);
    ck_assert_str_eq(b.data, "[1,[],{\"k\":[\"a\",\"b\"]}]");
    nas_json_buf_fini(&b);
}
END_TEST

START_TEST(test_json_oom_is_clean) {
    /* Every allocation failure point turns into NAS_ENOMEM without leaks
     * (ASan checks the leaks when the test process exits). */
    const char *doc = "{\"a\": [1, \"two\", {\"b\": [null, true]}], \"c\": \"d\", \"e\": {}}";
    int saw_ok = 0;
    for (long k = 1; k < 64 && !saw_ok; k++) {
        nas_json *j = NULL;
        char err[NAS_ERR_LEN];
        nas_alloc_fail_after(k);
        int rc = nas_json_parse(doc, strlen(doc), 0, &j, err);
        nas_alloc_fail_reset();
        if (rc == 0) {
            saw_ok = 1;
            nas_json_free(&j);
        } else {
            ck_assert_int_eq(rc, NAS_ENOMEM);
            ck_assert_ptr_null(j);
        }
    }
    ck_assert(saw_ok);
    /* The writer's status is sticky and take() returns NULL. */
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_alloc_fail_after(1);
    nas_json_buf_str(&b, "x");
    nas_alloc_fail_reset();
    nas_json_buf_str(&b, "y");
    ck_assert_int_eq(nas_json_buf_status(&b), NAS_ENOMEM);
    ck_assert_ptr_null(nas_json_buf_take(&b, NULL));
}
END_TEST

START_TEST(test_json_random_bytes_never_crash) {
    /* A poor man's fuzzer until the libFuzzer harness exists: mutate a
     * valid document byte by byte and parse every variant. */
    const char *seed = "{\"x\": [1.5e-3, -0, \"\\u00e9\\n\", true, false, null, {\"y\": []}]}";
    size_t n = strlen(seed);
    char buf[128];
    nas_rng r;
    nas_rng_init(&r, 7, 0);
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, seed, n);
        int edits = 1 + (int)nas_rng_below(&r, 3);
        for (int e = 0; e < edits; e++)
            buf[nas_rng_below(&r, (uint32_t)n)] = (char)nas_rng_u32(&r);
        size_t len = nas_rng_below(&r, (uint32_t)n + 1);
        nas_json *j = NULL;
        char err[NAS_ERR_LEN];
        int rc = nas_json_parse(buf, len, 0, &j, err);
        if (rc == 0) {
            accepted++;
            nas_json_free(&j);
        } else {
            ck_assert_int_eq(rc, NAS_EFORMAT);
            ck_assert_ptr_nonnull(strstr(err, "offset"));
        }
    }
    ck_assert_int_gt(accepted, 0);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_json_scalars);
    tcase_add_test(tc, test_json_nested_document);
    tcase_add_test(tc, test_json_string_escapes);
    tcase_add_test(tc, test_json_int64_bounds);
    tcase_add_test(tc, test_json_truncated);
    tcase_add_test(tc, test_json_bad_escapes);
    tcase_add_test(tc, test_json_bad_numbers);
    tcase_add_test(tc, test_json_structure_errors);
    tcase_add_test(tc, test_json_embedded_nul);
    tcase_add_test(tc, test_json_depth_limit);
    tcase_add_test(tc, test_json_writer_round_trip);
    tcase_add_test(tc, test_json_float_round_trip_random);
    tcase_add_test(tc, test_json_writer_commas);
    tcase_add_test(tc, test_json_oom_is_clean);
    tcase_add_test(tc, test_json_random_bytes_never_crash);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
