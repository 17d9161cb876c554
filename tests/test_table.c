/*
 * test_table.c - the CSV lookup table: quoting, CRLF, lookups by exact and
 * canonical key, numbers, and a clear error with a line number for every
 * kind of malformed file.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/table.h"
#include "tests/harness.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nas_table *parse_ok(const char *csv) {
    nas_table *t = NULL;
    char err[NAS_ERR_LEN] = "";
    int rc = nas_table_parse(&t, csv, strlen(csv), "arch", "t.csv", err);
    ck_assert_msg(rc == NAS_OK, "parse: %s", err);
    return t;
}

static void parse_bad(const char *csv, int code, const char *needle) {
    nas_table *t = NULL;
    char err[NAS_ERR_LEN] = "";
    int rc = nas_table_parse(&t, csv, strlen(csv), "arch", "t.csv", err);
    ck_assert_int_eq(rc, code);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
}

START_TEST(test_table_quoted_fields_and_lookup) {
    const char *csv =
        "\xEF\xBB\xBF"
        "arch,val_acc,note\r\n"
        "\"n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1\",0.91,\"say \"\"hi\"\"\"\r\n"
        "|nor_conv_3x3~0|+|skip_connect~0|none~1|,0.5,\"two\nlines\"\n"
        "\n";
    nas_table *t = parse_ok(csv);
    ck_assert_int_eq(nas_table_rows(t), 2);
    ck_assert_int_eq(nas_table_cols(t), 3);
    ck_assert_int_eq(nas_table_column(t, "val_acc"), 1);
    ck_assert_int_eq(nas_table_column(t, "nope"), NAS_ENOTFOUND);
    const char *k = "n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1";
    int row = nas_table_find(t, k, strlen(k));
    ck_assert_int_eq(row, 0);
    ck_assert_str_eq(nas_table_cell(t, 0, 2), "say \"hi\"");
    ck_assert_str_eq(nas_table_cell(t, 1, 2), "two\nlines");
    double v;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_table_number(t, 1, 1, &v, err), NAS_OK);
    ck_assert_double_eq(v, 0.5);
    ck_assert_int_eq(nas_table_number(t, 0, 2, &v, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "t.csv:2"));
    ck_assert_ptr_nonnull(strstr(err, "note"));
    ck_assert_int_eq(nas_table_find(t, "|none~0|", 8), NAS_ENOTFOUND);
    /* A prefix of a key is not the key. */
    ck_assert_int_eq(nas_table_find(t, k, 5), NAS_ENOTFOUND);
    nas_table_destroy(&t);
    ck_assert_ptr_null(t);
}
END_TEST

/* A stand-in canonicaliser: lower-case and drop spaces. */
static int lower_nospace(const char *key, char *buf, size_t cap, void *ctx) {
    size_t n = 0;
    for (; *key; key++) {
        if (*key == ' ') continue;
        if (n + 1 >= cap) return NAS_ERANGE;
        buf[n++] = (char)tolower((unsigned char)*key);
    }
    buf[n] = 0;
    return (int)n;
}

START_TEST(test_table_canonical_lookup) {
    nas_table *t = parse_ok("arch,val_acc\nAB C,0.1\nxyz,0.2\n");
    ck_assert_int_eq(nas_table_find(t, "abc", 3), NAS_ENOTFOUND);
    ck_assert_int_eq(nas_table_reindex(t, lower_nospace, NULL), 2);
    ck_assert_int_eq(nas_table_find(t, "abc", 3), 0);
    ck_assert_int_eq(nas_table_find(t, "A b c", 5), 0);
    ck_assert_int_eq(nas_table_find(t, "XYZ", 3), 1);
    ck_assert_int_eq(nas_table_find(t, "q", 1), NAS_ENOTFOUND);
    nas_table_destroy(&t);
}
END_TEST

START_TEST(test_table_malformed_files_name_the_line) {
    parse_bad("", NAS_EFORMAT, "empty");
    parse_bad("id,val\nx,1\n", NAS_ENOTFOUND, "'arch'");
    parse_bad("arch,val\na,1\nb,2,3\n", NAS_EFORMAT, "t.csv:3: 3 fields, the header has 2");
    parse_bad("arch,val\na,1\nb\n", NAS_EFORMAT, "t.csv:3: 1 fields");
    parse_bad("arch,val\n\"a,1\n", NAS_EFORMAT, "t.csv:2: quoted field is not closed");
    parse_bad("arch,val\na\"b,1\n", NAS_EFORMAT, "t.csv:2: quote inside");
    parse_bad("arch,val\n\"a\"x,1\n", NAS_EFORMAT, "t.csv:2: text after a closing quote");
    parse_bad("arch,val\na,1\nc,2\na,3\n", NAS_EFORMAT,
              "t.csv:4: duplicate key 'a' (first on line 2)");
    parse_bad("arch,val\n,1\n", NAS_EFORMAT, "t.csv:2: empty key");
}
END_TEST

START_TEST(test_table_load_file_and_missing_file) {
    const char *dir = nas_tmpdir_make();
    char path[4096];
    nas_path_join(path, sizeof path, dir, "bench.csv");
    /* Enough rows to grow every buffer several times. */
    size_t cap = 1 << 20, len = 0;
    char *csv = malloc(cap);
    len += (size_t)snprintf(csv + len, cap - len, "arch,val_acc\n");
    for (int i = 0; i < 5000; i++)
        len += (size_t)snprintf(csv + len, cap - len, "arch%d,%.4f\n", i, i / 5000.0);
    ck_assert_int_eq(nas_write_file(path, csv, len, 0), 0);
    free(csv);
    nas_table *t = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_table_load(&t, path, "arch", err), NAS_OK);
    ck_assert_int_eq(nas_table_rows(t), 5000);
    int row = nas_table_find(t, "arch4321", 8);
    ck_assert_int_eq(row, 4321);
    double v;
    ck_assert_int_eq(nas_table_number(t, row, 1, &v, err), NAS_OK);
    ck_assert_double_eq_tol(v, 0.8642, 1e-9);
    nas_table_destroy(&t);
    nas_path_join(path, sizeof path, dir, "missing.csv");
    ck_assert_int_eq(nas_table_load(&t, path, "arch", err), NAS_EIO);
    ck_assert_ptr_nonnull(strstr(err, "missing.csv"));
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_table_allocation_failures_are_errors) {
    char csv[8192];
    size_t len = (size_t)snprintf(csv, sizeof csv, "arch,val_acc\n");
    for (int i = 0; i < 300; i++)
        len += (size_t)snprintf(csv + len, sizeof csv - len, "\"a,%d\",0.%d\n", i, i % 10);
    int enomem = 0;
    for (long n = 1;; n++) {
        nas_table *t = NULL;
        char err[NAS_ERR_LEN];
        nas_alloc_fail_after(n);
        int rc = nas_table_parse(&t, csv, len, "arch", "t.csv", err);
        nas_alloc_fail_reset();
        if (rc == NAS_OK) {
            ck_assert_int_eq(nas_table_rows(t), 300);
            nas_table_destroy(&t);
            break;
        }
        ck_assert_int_eq(rc, NAS_ENOMEM);
        ck_assert_ptr_null(t);
        enomem++;
    }
    ck_assert_int_gt(enomem, 3);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("table");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_table_quoted_fields_and_lookup);
    tcase_add_test(tc, test_table_canonical_lookup);
    tcase_add_test(tc, test_table_malformed_files_name_the_line);
    tcase_add_test(tc, test_table_load_file_and_missing_file);
    tcase_add_test(tc, test_table_allocation_failures_are_errors);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
