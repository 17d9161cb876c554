/*
 * test_weights_status.c - the weight store's figures in `nasctl status`
 * with the master down: read from the database's weights index (bytes on
 * disk, architectures stored), marked as not live, in the text output
 * and in --json, where the memory figures are null because only a running
 * master has them; and the live document says "live": true.
 */
#include "common/json.h"
#include "master/status.h"
#include "master/weights.h"
#include "tests/harness.h"
#include "tests/store_fixtures.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static int ctl(const char *args, char *out, size_t cap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s", nas_bin("nasctl"), args);
    return nas_run_cmd(cmd, out, cap);
}

/* A campaign database whose index holds two architectures' files (the
 * index is what is read; the files themselves are not needed). */
static void make_db(const char *db) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db);
    add_task(st, 0xa1, NAS_STORE_STAGE_SEARCH);
    add_task(st, 0xa2, NAS_STORE_STAGE_SEARCH);
    add_task(st, 0xa3, NAS_STORE_STAGE_SEARCH);
    ck_assert_int_eq(nas_store_weights_put(st, 0xa1, "/w/a1.safetensors", 1500000, 10, err),
                     NAS_OK);
    ck_assert_int_eq(nas_store_weights_put(st, 0xa2, "/w/a2.safetensors", 2500000, 11, err),
                     NAS_OK);
    nas_store_close(&st);
}

START_TEST(test_weights_status_from_the_database) {
    char db[PATH_MAX], args[PATH_MAX + 64], out[16384], err[NAS_ERR_LEN] = "";
    nas_path_join(db, sizeof db, tmp, "c.db");
    make_db(db);
    snprintf(args, sizeof args, "status --db %s --json", db);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    nas_json *doc = NULL;
    ck_assert_msg(nas_json_parse(out, strlen(out), 0, &doc, err) == NAS_OK, "%s: %s", out, err);
    const nas_json *w = nas_json_get(doc, "weights");
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->type, NAS_JSON_OBJECT);
    ck_assert_int_eq(nas_json_get(w, "live")->type, NAS_JSON_BOOL);
    ck_assert(!nas_json_get(w, "live")->boolean);
    ck_assert(nas_json_get(w, "bytes_disk")->number == 4000000);
    ck_assert(nas_json_get(w, "archs_disk")->number == 2);
    ck_assert_int_eq(nas_json_get(w, "bytes_memory")->type, NAS_JSON_NULL);
    ck_assert_int_eq(nas_json_get(w, "archs_memory")->type, NAS_JSON_NULL);
    nas_json_free(&doc);

    snprintf(args, sizeof args, "status --db %s", db);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "2 architecture(s), 4.0 MB on disk") != NULL, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "only while a master runs"));

    /* A drop shows at once: the index is the truth for a stopped master. */
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, db, err), NAS_OK);
    ck_assert_int_eq(nas_store_weights_drop(st, 0xa1, err), NAS_OK);
    nas_store_close(&st);
    ck_assert_int_eq(ctl(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "1 architecture(s), 2.5 MB on disk") != NULL, "%s", out);
}
END_TEST

/* An empty index is zeros, not an error; the live store's document says
 * it is live and prints its memory figures. */
START_TEST(test_weights_status_empty_and_live) {
    char db[PATH_MAX], err[NAS_ERR_LEN] = "";
    nas_path_join(db, sizeof db, tmp, "e.db");
    nas_store *st = open_bound(db);
    char *json = nas_status_from_store(st, 5000, err);
    ck_assert_msg(json != NULL, "%s", err);
    ck_assert_ptr_nonnull(strstr(json, "\"weights\":{\"live\":false,\"bytes_disk\":0,"
                                       "\"archs_disk\":0"));
    nas_free(json);
    nas_store_close(&st);

    nas_weights_config cfg = {.dir = NULL, .memory_budget = 3000000};
    nas_weights *w = NULL;
    ck_assert_int_eq(nas_weights_create(&w, &cfg, err), NAS_OK);
    char wj[512], doc[1024];
    nas_weights_stats_json(w, wj, sizeof wj);
    ck_assert_ptr_nonnull(strstr(wj, "\"live\":true"));
    ck_assert_ptr_nonnull(strstr(wj, "\"writes_pending\":0"));
    snprintf(doc, sizeof doc, "{\"campaign\":\"x\",\"weights\":%s}", wj);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(nas_status_print(doc, f, err), NAS_OK);
    fclose(f);
    ck_assert_msg(strstr(text, "0.0 MB in memory (budget 3.0 MB)") != NULL, "%s", text);
    free(text);
    nas_weights_destroy(&w);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("weights_status");
    TCase *tc = tcase_create("status");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_weights_status_from_the_database);
    tcase_add_test(tc, test_weights_status_empty_and_live);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
