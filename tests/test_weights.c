/*
 * test_weights.c - the master's weight store (master/weights.h): bit-exact
 * put/get, the memory budget (never exceeded by more than one
 * architecture), LRU spill and reload from disk, restart from the
 * directory, drop everywhere, a damaged file treated as absent, files of
 * the first (FNV4) checksum still loading, and the
 * SQLite index refusing architectures the campaign does not know.
 */
#include "master/weights.h"
#include "tests/harness.h"
#include "tests/store_fixtures.h"
#include "tests/weights_fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* A synthetic architecture: three tensors, `kb` KiB in all, values a
 * function of (arch, index) so any mix-up shows. */
typedef struct fake_arch {
    float *data;
    size_t floats;
    nas_wire_weights_msg man;
} fake_arch;

static void fake_make(fake_arch *f, uint64_t arch, size_t kb) {
    size_t total = kb * 256; /* floats */
    size_t a = total / 2, b = total / 4, c = total - a - b;
    f->floats = total;
    f->data = nas_malloc(total * sizeof(float));
    for (size_t i = 0; i < total; i++)
        f->data[i] = (float)(arch % 1000) + (float)i * 1e-3f;
    nas_safetensors_tensor t[3] = {
        {.name = "stem/conv/weight", .ndim = 2, .shape = {(int64_t)a, 1}, .data = f->data},
        {.name = "cell0/block0/a/dw1/weight",
         .ndim = 1,
         .shape = {(int64_t)b},
         .data = f->data + a},
        {.name = "head/linear/bias", .ndim = 1, .shape = {(int64_t)c}, .data = f->data + a + b},
    };
    char err[NAS_ERR_LEN] = "";
    nas_wire_weights_msg_init(&f->man, NAS_MSG_WEIGHTS_PUSH);
    f->man.arch = arch;
    ck_assert_msg(nas_wire_weights_manifest(&f->man, t, 3, f->data, NULL, err) == NAS_OK, "%s",
                  err);
}

static void fake_free(fake_arch *f) {
    nas_wire_weights_msg_fini(&f->man);
    nas_free(f->data);
}

static void expect_view(const nas_weights_view *v, const fake_arch *f) {
    ck_assert_uint_eq(v->total_bytes, f->floats * sizeof(float));
    ck_assert_uint_eq(v->n, 3);
    ck_assert_int_eq(memcmp(v->data, f->data, f->floats * sizeof(float)), 0);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(v->tensors[i].name, f->man.tensors[i].name);
        ck_assert_uint_eq(v->tensors[i].checksum, f->man.tensors[i].checksum);
    }
}

static nas_weights *open_store(const char *dir, int64_t budget, nas_store *st) {
    nas_weights_config cfg = {.dir = dir, .memory_budget = budget, .store = st};
    nas_weights *w = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_weights_create(&w, &cfg, err) == NAS_OK, "%s", err);
    return w;
}

START_TEST(test_weights_put_get_round_trip) {
    const char *dir = nas_tmpdir_make();
    char wdir[4096];
    nas_path_join(wdir, sizeof wdir, dir, "weights");
    nas_weights *w = open_store(wdir, 1 << 20, NULL);
    fake_arch f;
    fake_make(&f, 0xabc, 16);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_weights_put(w, 0xabc, &f.man, f.data, 10, err), NAS_OK);
    nas_weights_view v;
    ck_assert_int_eq(nas_weights_get(w, 0xabc, &v, err), NAS_OK);
    expect_view(&v, &f);
    ck_assert_int_eq(nas_weights_get(w, 0xdef, &v, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "0000000000000def"));
    nas_weights_stats s;
    nas_weights_stats_get(w, &s);
    ck_assert_int_eq(s.hits, 1);
    ck_assert_int_eq(s.misses, 1);
    ck_assert_int_eq(s.not_found, 1);
    ck_assert_int_eq(s.bytes_memory, 16 * 1024);
    ck_assert_int_gt(s.bytes_disk, 16 * 1024);
    ck_assert(nas_weights_has(w, 0xabc));
    char json[512];
    nas_weights_stats_json(w, json, sizeof json);
    ck_assert_ptr_nonnull(strstr(json, "\"bytes_memory\":16384"));
    ck_assert_ptr_nonnull(strstr(json, "\"hits\":1"));
    /* An empty manifest is refused by name. */
    nas_wire_weights_msg empty;
    nas_wire_weights_msg_init(&empty, NAS_MSG_WEIGHTS_PUSH);
    ck_assert_int_eq(nas_weights_put(w, 1, &empty, NULL, 10, err), NAS_EINVAL);
    fake_free(&f);
    nas_weights_destroy(&w);
    ck_assert_ptr_null(w);
    nas_tmpdir_rm(dir);
}
END_TEST

/* The budget holds after every operation, within one architecture, and
 * whatever left memory comes back from disk bit for bit. */
START_TEST(test_weights_budget_holds_and_spills_lru) {
    const char *dir = nas_tmpdir_make();
    const int64_t budget = 100 * 1024;
    nas_weights *w = open_store(dir, budget, NULL);
    enum { N = 12 };
    fake_arch f[N];
    int64_t largest = 0;
    char err[NAS_ERR_LEN] = "";
    nas_weights_stats s;
    for (int i = 0; i < N; i++) {
        fake_make(&f[i], 100 + (uint64_t)i, (size_t)(8 + 7 * i)); /* 8..85 KiB */
        ck_assert_int_eq(nas_weights_put(w, 100 + (uint64_t)i, &f[i].man, f[i].data, i, err),
                         NAS_OK);
        if ((int64_t)f[i].man.total_bytes > largest) largest = (int64_t)f[i].man.total_bytes;
        nas_weights_stats_get(w, &s);
        ck_assert_int_le(s.bytes_memory, budget + largest);
    }
    nas_weights_stats_get(w, &s);
    ck_assert_int_gt(s.evictions, 0);
    ck_assert_int_eq(s.archs_disk, N);
    /* The oldest left memory first; reading it back is a miss served from
     * disk, the next read a hit. */
    nas_weights_view v;
    int64_t reads = s.disk_reads;
    ck_assert_int_eq(nas_weights_get(w, 100, &v, err), NAS_OK);
    expect_view(&v, &f[0]);
    nas_weights_stats_get(w, &s);
    ck_assert_int_eq(s.disk_reads, reads + 1);
    ck_assert_int_eq(nas_weights_get(w, 100, &v, err), NAS_OK);
    nas_weights_stats_get(w, &s);
    ck_assert_int_eq(s.disk_reads, reads + 1);
    /* Random access keeps the bound too. */
    for (int k = 0; k < 40; k++) {
        int i = (k * 7) % N;
        ck_assert_int_eq(nas_weights_get(w, 100 + (uint64_t)i, &v, err), NAS_OK);
        expect_view(&v, &f[i]);
        nas_weights_stats_get(w, &s);
        ck_assert_int_le(s.bytes_memory, budget + largest);
    }
    /* The most recently used stays in memory: a get right after is a hit. */
    int64_t hits = s.hits;
    ck_assert_int_eq(nas_weights_get(w, 100 + (uint64_t)((39 * 7) % N), &v, err), NAS_OK);
    nas_weights_stats_get(w, &s);
    ck_assert_int_eq(s.hits, hits + 1);
    for (int i = 0; i < N; i++)
        fake_free(&f[i]);
    nas_weights_destroy(&w);
    nas_tmpdir_rm(dir);
}
END_TEST

/* A budget of zero still serves: it keeps exactly the one in use. */
START_TEST(test_weights_zero_budget_keeps_one) {
    const char *dir = nas_tmpdir_make();
    nas_weights *w = open_store(dir, 0, NULL);
    fake_arch a, b;
    fake_make(&a, 1, 4);
    fake_make(&b, 2, 4);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_weights_put(w, 1, &a.man, a.data, 0, err), NAS_OK);
    ck_assert_int_eq(nas_weights_put(w, 2, &b.man, b.data, 0, err), NAS_OK);
    nas_weights_stats s;
    nas_weights_stats_get(w, &s);
    ck_assert_int_eq(s.archs_memory, 1);
    ck_assert_int_eq(s.bytes_memory, 4096);
    nas_weights_view v;
    ck_assert_int_eq(nas_weights_get(w, 1, &v, err), NAS_OK);
    expect_view(&v, &a);
    fake_free(&a);
    fake_free(&b);
    nas_weights_destroy(&w);
    nas_tmpdir_rm(dir);
}
END_TEST

/* What was put survives the process: a new store on the same directory
 * counts the files and serves them. */
START_TEST(test_weights_restart_serves_from_disk) {
    const char *dir = nas_tmpdir_make();
    nas_weights *w = open_store(dir, 1 << 20, NULL);
    fake_arch f;
    fake_make(&f, 0x77, 32);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_weights_put(w, 0x77, &f.man, f.data, 0, err), NAS_OK);
    nas_weights_destroy(&w);
    w = open_store(dir, 1 << 20, NULL);
    nas_weights_stats s;
    nas_weights_stats_get(w, &s);
    ck_assert_int_eq(s.archs_disk, 1);
    ck_assert_int_eq(s.archs_memory, 0);
    ck_assert(nas_weights_has(w, 0x77));
    uint64_t list[4];
    ck_assert_uint_eq(nas_weights_list(w, list, 4), 1);
    ck_assert_uint_eq(list[0], 0x77);
    nas_weights_view v;
    ck_assert_int_eq(nas_weights_get(w, 0x77, &v, err), NAS_OK);
    expect_view(&v, &f);
    fake_free(&f);
    nas_weights_destroy(&w);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_weights_drop_forgets_everywhere) {
    const char *dir = nas_tmpdir_make();
    nas_weights *w = open_store(dir, 1 << 20, NULL);
    fake_arch f;
    fake_make(&f, 0x55, 8);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_weights_put(w, 0x55, &f.man, f.data, 0, err), NAS_OK);
    char path[4096];
    nas_path_join(path, sizeof path, dir, "0000000000000055.safetensors");
    ck_assert_int_eq(access(path, F_OK), 0);
    ck_assert_int_eq(nas_weights_drop(w, 0x55, err), 1);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(nas_weights_drop(w, 0x55, err), 0);
    nas_weights_view v;
    ck_assert_int_eq(nas_weights_get(w, 0x55, &v, err), NAS_ENOTFOUND);
    nas_weights_stats s;
    nas_weights_stats_get(w, &s);
    ck_assert_int_eq(s.bytes_memory, 0);
    ck_assert_int_eq(s.bytes_disk, 0);
    ck_assert_int_eq(s.drops, 1);
    fake_free(&f);
    nas_weights_destroy(&w);
    nas_tmpdir_rm(dir);
}
END_TEST

/* A flipped byte in a file on disk is caught by the stored checksums:
 * the architecture counts as absent (the child trains fresh). */
START_TEST(test_weights_damaged_file_is_absent) {
    const char *dir = nas_tmpdir_make();
    nas_weights *w = open_store(dir, 0, NULL);
    fake_arch a, b;
    fake_make(&a, 0x10, 8);
    fake_make(&b, 0x20, 8);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_weights_put(w, 0x10, &a.man, a.data, 0, err), NAS_OK);
    ck_assert_int_eq(nas_weights_put(w, 0x20, &b.man, b.data, 0, err), NAS_OK); /* evicts 0x10 */
    char path[4096];
    nas_path_join(path, sizeof path, dir, "0000000000000010.safetensors");
    size_t n = 0;
    char *bytes = nas_read_file(path, &n);
    ck_assert_ptr_nonnull(bytes);
    bytes[n - 100] ^= 0x01; /* inside the last tensor's data */
    ck_assert_int_eq(nas_write_file(path, bytes, n, 0), 0);
    free(bytes);
    nas_weights_view v;
    ck_assert_int_eq(nas_weights_get(w, 0x10, &v, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "checksum"));
    ck_assert_ptr_nonnull(strstr(err, "head/linear/bias"));
    fake_free(&a);
    fake_free(&b);
    nas_weights_destroy(&w);
    nas_tmpdir_rm(dir);
}
END_TEST

/* With the campaign's store the weights are indexed; weights of an
 * architecture the campaign never proposed are refused and leave no file. */
START_TEST(test_weights_index_in_store) {
    const char *dir = nas_tmpdir_make();
    char db[4096], wdir[4096];
    nas_path_join(db, sizeof db, dir, "c.db");
    nas_path_join(wdir, sizeof wdir, dir, "weights");
    nas_store *st = open_bound(db);
    add_task(st, 0x4242, NAS_STORE_STAGE_SEARCH);
    nas_weights *w = open_store(wdir, 1 << 20, st);
    fake_arch f;
    fake_make(&f, 0x4242, 8);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_weights_put(w, 0x4242, &f.man, f.data, 5, err), NAS_OK);
    char path[4096];
    int64_t bytes = 0;
    ck_assert_int_eq(nas_store_weights_get(st, 0x4242, path, sizeof path, &bytes, err), NAS_OK);
    ck_assert_ptr_nonnull(strstr(path, "0000000000004242.safetensors"));
    ck_assert_int_gt(bytes, 8192);
    ck_assert_int_eq(nas_weights_put(w, 0x9999, &f.man, f.data, 5, err), NAS_EDB);
    char stray[4096];
    nas_path_join(stray, sizeof stray, wdir, "0000000000009999.safetensors");
    ck_assert_int_ne(access(stray, F_OK), 0);
    ck_assert(!nas_weights_has(w, 0x9999));
    ck_assert_int_eq(nas_weights_drop(w, 0x4242, err), 1);
    ck_assert_int_eq(nas_store_weights_get(st, 0x4242, path, sizeof path, &bytes, err),
                     NAS_ENOTFOUND);
    fake_free(&f);
    nas_weights_destroy(&w);
    nas_store_close(&st);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_weights_bad_config_refused) {
    nas_weights *w = NULL;
    char err[NAS_ERR_LEN] = "";
    nas_weights_config cfg = {.dir = NULL, .memory_budget = -1};
    ck_assert_int_eq(nas_weights_create(&w, &cfg, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "budget"));
    cfg = (nas_weights_config){.dir = "/proc/nasd-cannot-exist/w", .memory_budget = 1};
    ck_assert_int_eq(nas_weights_create(&w, &cfg, err), NAS_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/proc/nasd-cannot-exist/w"));
    ck_assert_ptr_null(w);
    /* Memory only: no directory, nothing spilled, eviction forgets. */
    cfg = (nas_weights_config){.dir = NULL, .memory_budget = 0};
    ck_assert_int_eq(nas_weights_create(&w, &cfg, err), NAS_OK);
    fake_arch a, b;
    fake_make(&a, 1, 4);
    fake_make(&b, 2, 4);
    ck_assert_int_eq(nas_weights_put(w, 1, &a.man, a.data, 0, err), NAS_OK);
    ck_assert_int_eq(nas_weights_put(w, 2, &b.man, b.data, 0, err), NAS_OK);
    ck_assert(!nas_weights_has(w, 1));
    ck_assert(nas_weights_has(w, 2));
    fake_free(&a);
    fake_free(&b);
    nas_weights_destroy(&w);
}
END_TEST

/* A file written before XXH3: metadata "arch" and "checksums" only, the
 * checksums FNV4 (pinned hex, as the first store wrote them).  It still
 * loads, keeps its kind, and is served with it: a pull over a real socket
 * verifies with FNV4 on the receiving side. */
START_TEST(test_weights_old_fnv4_file_still_loads) {
    const char *dir = nas_tmpdir_make();
    float d[20];
    for (int i = 0; i < 20; i++)
        d[i] = (float)i * 0.25f - 1.0f;
    nas_safetensors_tensor t[2] = {
        {.name = "a/weight", .ndim = 2, .shape = {3, 5}, .data = d},
        {.name = "a/bias", .ndim = 1, .shape = {5}, .data = d + 15},
    };
    nas_safetensors_meta meta[2] = {{"arch", "00000000000000f4"},
                                    {"checksums", "03fa8a86c6de4274,3ce57ea712d497c9"}};
    char path[4096], err[NAS_ERR_LEN] = "";
    nas_path_join(path, sizeof path, dir, "00000000000000f4.safetensors");
    ck_assert_int_eq(nas_safetensors_save(path, t, 2, meta, 2, err), NAS_OK);
    nas_weights *w = open_store(dir, 1 << 20, NULL);
    nas_weights_view v;
    ck_assert_msg(nas_weights_get(w, 0xf4, &v, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(v.checksum_kind, NAS_CHECKSUM_FNV4);
    ck_assert_uint_eq(v.n, 2);
    ck_assert_uint_eq(v.tensors[1].checksum, 0x3ce57ea712d497c9ull);
    ck_assert_int_eq(memcmp(v.data, d, sizeof d), 0);

    /* Served as it is: the reply carries FNV4 and the receiver verifies it. */
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER), *dealer = zmq_socket(ctx, ZMQ_DEALER);
    ck_assert_int_eq(zmq_bind(router, "inproc://old"), 0);
    ck_assert_int_eq(zmq_connect(dealer, "inproc://old"), 0);
    nas_wire_weights_msg pull;
    nas_wire_weights_msg_init(&pull, NAS_MSG_WEIGHTS_PULL);
    pull.arch = 0xf4;
    pull.seq = 3;
    ck_assert_int_eq(nas_wire_weights_send(dealer, NULL, 0, &pull, NULL, 0, err), NAS_OK);
    zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
    ck_assert_int_eq(zmq_poll(&it, 1, 5000), 1);
    ck_assert_int_eq(nas_weights_serve_one(w, router, 0, err), NAS_OK);
    nas_wire_weights_packet pkt;
    ck_assert_msg(nas_wire_weights_recv(dealer, 0, 0, &pkt, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(pkt.msg.type, NAS_MSG_WEIGHTS_REPLY);
    ck_assert_int_eq(pkt.msg.checksum_kind, NAS_CHECKSUM_FNV4);
    ck_assert_int_eq(memcmp(pkt.data, d, sizeof d), 0);
    nas_wire_weights_packet_fini(&pkt);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);

    /* A kind this store does not know is refused by name (counts as absent). */
    nas_weights_destroy(&w);
    nas_safetensors_meta odd[3] = {meta[0], meta[1], {"checksum_kind", "crc9"}};
    ck_assert_int_eq(nas_safetensors_save(path, t, 2, odd, 3, err), NAS_OK);
    w = open_store(dir, 1 << 20, NULL);
    ck_assert_int_eq(nas_weights_get(w, 0xf4, &v, err), NAS_ENOTFOUND);
    ck_assert_msg(strstr(err, "unknown checksum_kind 'crc9'") != NULL, "%s", err);
    nas_weights_destroy(&w);
    nas_tmpdir_rm(dir);
}
END_TEST

/* New files say which function made their checksums. */
START_TEST(test_weights_new_file_names_xxh3) {
    const char *dir = nas_tmpdir_make();
    nas_weights *w = open_store(dir, 1 << 20, NULL);
    fake_arch f;
    fake_make(&f, 0x31, 4);
    char err[NAS_ERR_LEN] = "", path[4096];
    ck_assert_int_eq(nas_weights_put(w, 0x31, &f.man, f.data, 0, err), NAS_OK);
    nas_path_join(path, sizeof path, dir, "0000000000000031.safetensors");
    nas_safetensors *st = NULL;
    ck_assert_int_eq(nas_safetensors_load(path, &st, err), NAS_OK);
    ck_assert_str_eq(nas_safetensors_meta_get(st, "checksum_kind"), "xxh3");
    nas_safetensors_destroy(&st);
    fake_free(&f);
    nas_weights_destroy(&w);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("weights");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_weights_put_get_round_trip);
    tcase_add_test(tc, test_weights_budget_holds_and_spills_lru);
    tcase_add_test(tc, test_weights_zero_budget_keeps_one);
    tcase_add_test(tc, test_weights_restart_serves_from_disk);
    tcase_add_test(tc, test_weights_drop_forgets_everywhere);
    tcase_add_test(tc, test_weights_damaged_file_is_absent);
    tcase_add_test(tc, test_weights_old_fnv4_file_still_loads);
    tcase_add_test(tc, test_weights_new_file_names_xxh3);
    tcase_add_test(tc, test_weights_index_in_store);
    tcase_add_test(tc, test_weights_bad_config_refused);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
