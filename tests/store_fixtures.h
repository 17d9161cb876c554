/*
 * store_fixtures.h - helpers shared by the store suites (test_store.c and
 * test_store_faults.c): a temporary directory per test, a store bound to a
 * campaign, tasks, results.  Functions are static inline so that a suite
 * that does not use one does not warn.
 */
#ifndef NAS_TEST_STORE_FIXTURES_H
#define NAS_TEST_STORE_FIXTURES_H

#include "master/store.h"
#include "master/store_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/wire.h"
#include "tests/harness.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

// ---- fixtures ----------------------------------------------------------------------------------

static char tmp[4096], db_path[4096];

static inline void setup(void) {
    snprintf(tmp, sizeof tmp, "%s", nas_tmpdir_make());
    nas_path_join(db_path, sizeof db_path, tmp, "campaign.db");
}

static inline void teardown(void) {
    nas_tmpdir_rm(tmp);
}

static inline nas_store_campaign campaign_spec(uint64_t hash, const char *canonical) {
    nas_store_campaign c = {
        .name = "test", .text = "name: test\n", .canonical = canonical, .hash = hash, .seed = 7};
    return c;
}

/* A store bound to a campaign, ready for tasks. */
static inline nas_store *open_bound(const char *path) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = NULL;
    ck_assert_msg(nas_store_open(&st, path, err) == NAS_OK, "%s", err);
    nas_store_campaign c = campaign_spec(0x1234, "name: test\nseed: 7\n");
    ck_assert_msg(nas_store_campaign_bind(st, &c, 1000, NULL, err) == NAS_OK, "%s", err);
    return st;
}

static inline nas_store_new_task new_task(uint64_t hash, const char *text, int stage) {
    nas_store_new_task t = {.arch_hash = hash,
                            .arch_text = text,
                            .genome = "g",
                            .genome_len = 1,
                            .params = 1000,
                            .macs = 20000,
                            .stage = stage,
                            .fidelity = nas_fidelity_default()};
    return t;
}

static inline int64_t add_task(nas_store *st, uint64_t hash, int stage) {
    char err[NAS_ERR_LEN] = "", text[64];
    snprintf(text, sizeof text, "n=sep3x3:%llu+id:0", (unsigned long long)(hash % 2));
    nas_store_new_task t = new_task(hash, text, stage);
    int64_t id = 0;
    ck_assert_msg(nas_store_task_add(st, &t, NULL, 0, 2000, &id, err) == NAS_OK, "%s", err);
    return id;
}

static inline nas_store_result result_of(double acc) {
    static const float curve[3] = {0.25f, 0.5f, 0.75f};
    nas_store_result r = {.accuracy = acc,
                          .loss = 0.5,
                          .test_accuracy = NAN,
                          .curve = curve,
                          .n_curve = 3,
                          .params = 1000,
                          .macs = 20000,
                          .seconds = 1.5,
                          .worker = "w1"};
    return r;
}

/* Lease task `id` and record a result with accuracy acc. */
static inline void complete(nas_store *st, int64_t id, double acc) {
    char err[NAS_ERR_LEN] = "";
    int attempt = 0;
    ck_assert_msg(nas_store_task_lease(st, id, attempt = 1, "w1", "h1", "", 9000, 3000, err) ==
                      NAS_OK,
                  "%s", err);
    nas_store_result r = result_of(acc);
    ck_assert_int_eq(nas_store_put_result(st, id, attempt, &r, NULL, 0, 4000, err),
                     NAS_STORE_APPLIED);
}

/* Field by field (memcmp would also compare padding bytes): every field,
 * the late ones included, as the wire compares them. */
static inline int fid_eq(const nas_fidelity *a, const nas_fidelity *b) {
    return nas_wire_fidelity_equal(a, b);
}

static inline int pragma_int(nas_store *st, const char *sql) {
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(st->db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    int v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

#endif
