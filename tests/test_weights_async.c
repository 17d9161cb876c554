/*
 * test_weights_async.c - the weight store with a loop (master/weights.h):
 * a pushed architecture's file is written in the loop's thread pool, so
 * the loop keeps answering (pulls of the very weights being written are
 * served from memory) while a large spill is written and fsync'd; the ACK
 * and the index row come only after the rename; a drop while the write is
 * in flight leaves no file; and destroying the store finishes its writes
 * first, so a new store on the directory serves them from disk.
 *
 * Everything goes through real sockets: a DEALER pushes to the store's
 * ROUTER, which the loop reads through nas_zmq_uv as the master does.
 */
#include "common/clock.h"
#include "master/weights.h"
#include "master/zmq_uv.h"
#include "tests/harness.h"
#include "tests/store_fixtures.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* 32 MB: large enough that writing and fsync'ing it takes many
 * milliseconds on any disk, so a synchronous write would be seen. */
#define BIG_FLOATS (8u << 20)

typedef struct rig {
    uv_loop_t loop;
    void *zctx, *router, *dealer;
    nas_zmq_uv *z;
    nas_weights *w;
    uv_timer_t timer;
    /* what the timer saw */
    int ticks_pending;   /* timer ticks while a write was pending */
    int replies_pending; /* pull replies received while a write was pending */
    int pull_out;        /* a pull is outstanding */
    int acks, ack_code;
    uint64_t seq;
    uint64_t pull_arch;
} rig;

static void serve(nas_zmq_uv *z, void *sock, void *data) {
    (void)z;
    rig *r = data;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_ne(nas_weights_serve_one(r->w, sock, 7, err), NAS_EIO);
}

static void rig_open(rig *r, const char *dir, nas_store *st, int64_t budget) {
    memset(r, 0, sizeof *r);
    ck_assert_int_eq(uv_loop_init(&r->loop), 0);
    char err[NAS_ERR_LEN] = "";
    nas_weights_config cfg = {.dir = dir, .memory_budget = budget, .store = st, .loop = &r->loop};
    ck_assert_msg(nas_weights_create(&r->w, &cfg, err) == NAS_OK, "%s", err);
    r->zctx = zmq_ctx_new();
    r->router = zmq_socket(r->zctx, ZMQ_ROUTER);
    r->dealer = zmq_socket(r->zctx, ZMQ_DEALER);
    ck_assert_int_eq(nas_wire_socket_setup(r->router, err), NAS_OK);
    ck_assert_int_eq(nas_wire_socket_setup(r->dealer, err), NAS_OK);
    ck_assert_int_eq(zmq_bind(r->router, "inproc://weights-async"), 0);
    ck_assert_int_eq(zmq_connect(r->dealer, "inproc://weights-async"), 0);
    ck_assert_int_eq(nas_zmq_uv_create(&r->z, &r->loop, r->router, 16, serve, r, err), NAS_OK);
    r->seq = 100;
}

static void rig_close(rig *r) {
    nas_zmq_uv_close(&r->z);
    if (uv_is_active((uv_handle_t *)&r->timer) || r->timer.data)
        uv_close((uv_handle_t *)&r->timer, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    nas_weights_destroy(&r->w);
    zmq_close(r->dealer);
    zmq_close(r->router);
    zmq_ctx_term(r->zctx);
    ck_assert_int_eq(uv_loop_close(&r->loop), 0);
}

/* A push of `floats` values, two tensors, from the DEALER; the values
 * are a function of (salt, index), so two pushes of one architecture
 * can be told apart. */
static void push(rig *r, uint64_t arch, size_t floats, float *data, int salt) {
    for (size_t i = 0; i < floats; i++)
        data[i] = (float)salt + (float)(i % 1013) * 1e-3f;
    size_t a = floats / 2;
    nas_safetensors_tensor t[2] = {
        {.name = "stem/conv/weight", .ndim = 2, .shape = {(int64_t)a, 1}, .data = data},
        {.name = "head/linear/bias", .ndim = 1, .shape = {(int64_t)(floats - a)}, .data = data + a},
    };
    nas_wire_weights_msg m;
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PUSH);
    char err[NAS_ERR_LEN] = "";
    ck_assert_msg(nas_wire_weights_manifest(&m, t, 2, data, NULL, err) == NAS_OK, "%s", err);
    m.type = NAS_MSG_WEIGHTS_PUSH;
    m.arch = arch;
    m.seq = ++r->seq;
    ck_assert_msg(nas_wire_weights_send(r->dealer, NULL, 0, &m, data, 0, err) == NAS_OK, "%s", err);
    nas_wire_weights_msg_fini(&m);
}

static int64_t pending(const rig *r) {
    nas_weights_stats s;
    nas_weights_stats_get(r->w, &s);
    return s.writes_pending;
}

/* Everything that arrived on the DEALER: pull replies and push ACKs. */
static void drain_dealer(rig *r) {
    for (;;) {
        nas_wire_weights_packet pkt;
        char err[NAS_ERR_LEN] = "";
        int rc = nas_wire_weights_recv(r->dealer, 0, 1, &pkt, err);
        if (rc == NAS_EAGAIN) return;
        ck_assert_msg(rc == NAS_OK, "%s", err);
        if (pkt.msg.type == NAS_MSG_WEIGHTS_REPLY) {
            ck_assert(pkt.msg.found);
            ck_assert_uint_eq(pkt.msg.arch, r->pull_arch);
            r->pull_out = 0;
            if (pending(r)) r->replies_pending++;
        } else {
            r->acks++;
            r->ack_code = pkt.msg.code;
        }
        nas_wire_weights_packet_fini(&pkt);
    }
}

/* A 1 ms heartbeat: while a write is pending it counts itself and keeps
 * one pull of the architecture being written in flight. */
static void on_tick(uv_timer_t *h) {
    rig *r = h->data;
    drain_dealer(r);
    if (!pending(r)) return;
    r->ticks_pending++;
    if (r->pull_out) return;
    nas_wire_weights_msg m;
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PULL);
    m.arch = r->pull_arch;
    m.seq = ++r->seq;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_wire_weights_send(r->dealer, NULL, 0, &m, NULL, 0, err), NAS_OK);
    r->pull_out = 1;
}

/* Run the loop until `acks` ACKs arrived (bounded: 20 s). */
static void run_until_acks(rig *r, int acks) {
    int64_t deadline = nas_now_ms() + 20000;
    while (r->acks < acks && nas_now_ms() < deadline) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        drain_dealer(r);
        usleep(200);
    }
    ck_assert_int_eq(r->acks, acks);
}

/* Turn the loop until `n` writes are pending (bounded: 20 s). */
static void run_until_pending(rig *r, int64_t n) {
    int64_t deadline = nas_now_ms() + 20000;
    while (pending(r) < n && nas_now_ms() < deadline) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    ck_assert_int_eq(pending(r), n);
}

static void file_of(char *buf, size_t cap, const char *dir, uint64_t arch) {
    snprintf(buf, cap, "%s/%016llx.safetensors", dir, (unsigned long long)arch);
}

START_TEST(test_weights_async_loop_keeps_answering_during_a_spill) {
    const char *dir = nas_tmpdir_make();
    char db[4096], wdir[4096], path[4200];
    nas_path_join(db, sizeof db, dir, "c.db");
    nas_path_join(wdir, sizeof wdir, dir, "weights");
    nas_store *st = open_bound(db);
    add_task(st, 0xb16, NAS_STORE_STAGE_SEARCH);
    rig r;
    rig_open(&r, wdir, st, 1 << 20);
    float *data = nas_malloc(BIG_FLOATS * sizeof(float));
    r.pull_arch = 0xb16;
    push(&r, 0xb16, BIG_FLOATS, data, 1);
    /* Take the push off the socket on the loop: it is verified and queued
     * for the thread pool, and the serve call returns without writing. */
    run_until_pending(&r, 1);
    /* Not acknowledged and not indexed before the file is in place: the
     * completion runs on this thread, which has not run it yet. */
    char err[NAS_ERR_LEN] = "", got[4096];
    int64_t bytes = 0;
    ck_assert_int_eq(nas_store_weights_get(st, 0xb16, got, sizeof got, &bytes, err), NAS_ENOTFOUND);
    drain_dealer(&r);
    ck_assert_int_eq(r.acks, 0);
    ck_assert(nas_weights_has(r.w, 0xb16));
    nas_weights_stats s;
    nas_weights_stats_get(r.w, &s);
    ck_assert_int_eq(s.bytes_memory, (int64_t)(BIG_FLOATS * sizeof(float)));
    /* The heartbeat timer and pulls keep going while the file is written. */
    uv_timer_init(&r.loop, &r.timer);
    r.timer.data = &r;
    uv_timer_start(&r.timer, on_tick, 1, 1);
    run_until_acks(&r, 1);
    ck_assert_int_eq(r.ack_code, NAS_OK);
    ck_assert_int_ge(r.ticks_pending, 1);
    ck_assert_int_ge(r.replies_pending, 1);
    /* Now on disk, indexed, and in memory. */
    ck_assert_int_eq(pending(&r), 0);
    file_of(path, sizeof path, wdir, 0xb16);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_gt(sb.st_size, (off_t)(BIG_FLOATS * sizeof(float)));
    ck_assert_int_eq(nas_store_weights_get(st, 0xb16, got, sizeof got, &bytes, err), NAS_OK);
    ck_assert_int_eq(bytes, (int64_t)sb.st_size);
    nas_weights_stats_get(r.w, &s);
    ck_assert_int_eq(s.puts, 1);
    ck_assert_int_eq(s.archs_disk, 1);
    ck_assert_int_eq(s.archs_memory, 1);
    ck_assert_int_eq(s.bytes_memory, (int64_t)(BIG_FLOATS * sizeof(float)));
    nas_weights_view v;
    ck_assert_int_eq(nas_weights_get(r.w, 0xb16, &v, err), NAS_OK);
    ck_assert_int_eq(memcmp(v.data, data, BIG_FLOATS * sizeof(float)), 0);
    nas_free(data);
    rig_close(&r);
    nas_store_close(&st);
    nas_tmpdir_rm(dir);
}
END_TEST

/* An architecture the index refuses: the file written in the pool is
 * removed, the pusher gets the refusal, nothing is kept. */
START_TEST(test_weights_async_index_refusal_reaches_the_pusher) {
    const char *dir = nas_tmpdir_make();
    char db[4096], wdir[4096], path[4200];
    nas_path_join(db, sizeof db, dir, "c.db");
    nas_path_join(wdir, sizeof wdir, dir, "weights");
    nas_store *st = open_bound(db);
    rig r;
    rig_open(&r, wdir, st, 1 << 20);
    float data[256];
    push(&r, 0x9999, 256, data, 1);
    run_until_acks(&r, 1);
    ck_assert_int_eq(r.ack_code, NAS_EDB);
    file_of(path, sizeof path, wdir, 0x9999);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert(!nas_weights_has(r.w, 0x9999));
    nas_weights_stats s;
    nas_weights_stats_get(r.w, &s);
    ck_assert_int_eq(s.bytes_memory, 0);
    ck_assert_int_eq(s.writes_pending, 0);
    rig_close(&r);
    nas_store_close(&st);
    nas_tmpdir_rm(dir);
}
END_TEST

/* A drop while the file is being written wins: once the write is done
 * the file goes, and the pusher was still told its push arrived. */
START_TEST(test_weights_async_drop_during_write_leaves_nothing) {
    const char *dir = nas_tmpdir_make();
    char wdir[4096], path[4200];
    nas_path_join(wdir, sizeof wdir, dir, "weights");
    rig r;
    rig_open(&r, wdir, NULL, 0);
    float *data = nas_malloc((1u << 18) * sizeof(float));
    push(&r, 0xd0, 1u << 18, data, 1);
    run_until_pending(&r, 1);
    uint64_t list[4];
    ck_assert_uint_eq(nas_weights_list(r.w, list, 4), 1);
    ck_assert_uint_eq(list[0], 0xd0);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_weights_drop(r.w, 0xd0, err), 1);
    ck_assert(!nas_weights_has(r.w, 0xd0));
    run_until_acks(&r, 1);
    ck_assert_int_eq(r.ack_code, NAS_OK);
    file_of(path, sizeof path, wdir, 0xd0);
    ck_assert_int_ne(access(path, F_OK), 0);
    nas_weights_stats s;
    nas_weights_stats_get(r.w, &s);
    ck_assert_int_eq(s.bytes_memory, 0);
    ck_assert_int_eq(s.archs_disk, 0);
    ck_assert_uint_eq(nas_weights_list(r.w, list, 4), 0);
    nas_free(data);
    rig_close(&r);
    nas_tmpdir_rm(dir);
}
END_TEST

/* Shutdown finishes the writes: destroying the store with a write in
 * flight completes it, and the next store on the directory serves it.
 * Two pushes of one architecture land in arrival order. */
START_TEST(test_weights_async_destroy_waits_and_order_holds) {
    const char *dir = nas_tmpdir_make();
    char wdir[4096];
    nas_path_join(wdir, sizeof wdir, dir, "weights");
    rig r;
    rig_open(&r, wdir, NULL, 1 << 20);
    size_t n = 1u << 16;
    float *first = nas_malloc(n * sizeof(float)), *second = nas_malloc(n * sizeof(float));
    push(&r, 0x5a, n, first, 1);
    push(&r, 0x5a, n, second, 2);
    run_until_pending(&r, 2);
    nas_zmq_uv_close(&r.z);
    nas_weights_destroy(&r.w); /* runs the loop until both files are renamed */
    nas_weights_config cfg = {.dir = wdir, .memory_budget = 1 << 20};
    nas_weights *w2 = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_weights_create(&w2, &cfg, err), NAS_OK);
    nas_weights_view v;
    ck_assert_int_eq(nas_weights_get(w2, 0x5a, &v, err), NAS_OK);
    ck_assert_uint_eq(v.total_bytes, n * sizeof(float));
    ck_assert_int_eq(memcmp(v.data, second, n * sizeof(float)), 0); /* the newer push */
    nas_weights_destroy(&w2);
    nas_free(first);
    nas_free(second);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    zmq_close(r.dealer);
    zmq_close(r.router);
    zmq_ctx_term(r.zctx);
    ck_assert_int_eq(uv_loop_close(&r.loop), 0);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("weights_async");
    TCase *tc = tcase_create("async");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_weights_async_loop_keeps_answering_during_a_spill);
    tcase_add_test(tc, test_weights_async_index_refusal_reaches_the_pusher);
    tcase_add_test(tc, test_weights_async_drop_during_write_leaves_nothing);
    tcase_add_test(tc, test_weights_async_destroy_waits_and_order_holds);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
