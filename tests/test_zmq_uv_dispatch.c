/*
 * test_zmq_uv_dispatch.c - the master's control path as the campaign will
 * wire it: a ROUTER socket read through the zmq_uv bridge inside a libuv
 * loop, the dispatcher fed from it and ticked by a uv timer, sends made
 * from both the reader and the timer.  Three real agents over tcp evaluate
 * 60 tasks; every result is recorded exactly once and the loop never
 * stalls.  This file doubles as the reference for that wiring.
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "master/dispatcher.h"
#include "master/zmq_uv.h"
#include "tests/harness.h"
#include "worker/agent.h"

#include <pthread.h>
#include <string.h>
#include <uv.h>
#include <zmq.h>

#define HB      50
#define TASKS   60
#define WORKERS 3

typedef struct master {
    uv_loop_t loop;
    uv_timer_t tick, guard;
    void *zctx, *router;
    char endpoint[256];
    nas_zmq_uv *bridge;
    nas_dispatcher *d;
    nas_wire_packet *pkt;
    int results;
    int seen[TASKS + 1];
    int timed_out;
} master;

/* The dispatcher's send hook: non-blocking, then a kick so a reply that
 * arrives while we were sending is not left behind. */
static int m_send(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *msg) {
    master *m = ctx;
    char err[NAS_ERR_LEN];
    int rc = nas_wire_send(m->router, id, id_len, msg, NULL, 0, 1, err);
    if (m->bridge) nas_zmq_uv_kick(m->bridge);
    return rc;
}

static int m_result(void *ctx, const nas_wire_result *r, const char *worker) {
    master *m = ctx;
    m->results++;
    if (r->task_id <= TASKS) m->seen[r->task_id]++;
    return NAS_OK;
}

/* The bridge's reader: exactly one message per call. */
static void m_read(nas_zmq_uv *z, void *sock, void *data) {
    master *m = data;
    char err[NAS_ERR_LEN];
    int64_t now = nas_now_ms();
    int rc = nas_wire_recv(sock, 1, 1, m->pkt, err);
    nas_dispatcher_on_packet(m->d, m->pkt, rc, err, now);
    nas_wire_packet_fini(m->pkt);
    if (m->results == TASKS) uv_stop(&m->loop);
}

static void m_tick(uv_timer_t *t) {
    master *m = t->data;
    nas_dispatcher_tick(m->d, nas_now_ms());
}

static void m_guard(uv_timer_t *t) {
    master *m = t->data;
    m->timed_out = 1;
    uv_stop(&m->loop);
}

typedef struct agent_thread {
    nas_evaluator *ev;
    nas_agent *agent;
    pthread_t th;
} agent_thread;

static void *agent_main(void *arg) {
    agent_thread *a = arg;
    char err[NAS_ERR_LEN];
    nas_agent_run(a->agent, err);
    return NULL;
}

START_TEST(test_zmq_uv_dispatch_campaign_wiring) {
    master m;
    memset(&m, 0, sizeof m);
    char err[NAS_ERR_LEN];
    m.pkt = nas_malloc(sizeof *m.pkt);
    ck_assert_int_eq(uv_loop_init(&m.loop), 0);
    m.zctx = zmq_ctx_new();
    m.router = zmq_socket(m.zctx, ZMQ_ROUTER);
    ck_assert_int_eq(nas_wire_socket_setup(m.router, err), NAS_OK);
    ck_assert_int_eq(zmq_bind(m.router, "tcp://127.0.0.1:*"), 0);
    size_t n = sizeof m.endpoint;
    zmq_getsockopt(m.router, ZMQ_LAST_ENDPOINT, m.endpoint, &n);
    nas_dispatcher_config cfg;
    nas_dispatcher_config_default(&cfg);
    cfg.heartbeat_ms = HB;
    nas_dispatcher_hooks hooks = {.ctx = &m, .send = m_send, .on_result = m_result};
    ck_assert_int_eq(nas_dispatcher_create(&m.d, &cfg, &hooks, err), NAS_OK);
    ck_assert_int_eq(nas_zmq_uv_create(&m.bridge, &m.loop, m.router, 16, m_read, &m, err), NAS_OK);
    uv_timer_init(&m.loop, &m.tick);
    uv_timer_init(&m.loop, &m.guard);
    m.tick.data = m.guard.data = &m;
    uv_timer_start(&m.tick, m_tick, HB / 2, HB / 2);
    uv_timer_start(&m.guard, m_guard, 60000, 0);

    for (int i = 1; i <= TASKS; i++) {
        nas_wire_task t;
        memset(&t, 0, sizeof t);
        t.task_id = (uint64_t)i;
        t.attempt = 1;
        snprintf(t.genome, sizeof t.genome, "n=sep3x3:0+id:1 r=max3x3:0+id:%d", i % 2);
        t.fidelity = nas_fidelity_default();
        t.mode = NAS_EVAL_SYNTHETIC;
        ck_assert_int_eq(nas_dispatcher_push(m.d, &t, nas_now_ms(), err), NAS_OK);
    }
    agent_thread a[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        nas_evaluator_config ec;
        nas_evaluator_config_default(&ec);
        ec.synthetic_epoch_ms = 1;
        ck_assert_int_eq(nas_evaluator_create(&a[i].ev, &ec, err), NAS_OK);
        nas_agent_config ac;
        nas_agent_config_default(&ac);
        ac.endpoint = m.endpoint;
        ac.name = i == 0 ? "a0" : i == 1 ? "a1" : "a2";
        ac.heartbeat_ms = HB;
        ac.eval = a[i].ev;
        ck_assert_int_eq(nas_agent_create(&a[i].agent, &ac, err), NAS_OK);
        pthread_create(&a[i].th, NULL, agent_main, &a[i]);
    }

    uv_run(&m.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(m.timed_out, 0);
    ck_assert_int_eq(m.results, TASKS);
    for (int i = 1; i <= TASKS; i++)
        ck_assert_int_eq(m.seen[i], 1);
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(m.d, &c);
    ck_assert_int_eq(c.workers, WORKERS);
    ck_assert_uint_eq(c.done, TASKS);
    nas_zmq_uv_stats st;
    nas_zmq_uv_stats_get(m.bridge, &st);
    ck_assert_uint_ge(st.messages, TASKS * 2); /* at least a Result and a Progress each */

    for (int i = 0; i < WORKERS; i++) {
        nas_agent_request_stop(a[i].agent);
        pthread_join(a[i].th, NULL);
        nas_agent_destroy(&a[i].agent);
        nas_evaluator_destroy(&a[i].ev);
    }
    nas_zmq_uv_close(&m.bridge);
    uv_close((uv_handle_t *)&m.tick, NULL);
    uv_close((uv_handle_t *)&m.guard, NULL);
    uv_run(&m.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&m.loop), 0);
    nas_dispatcher_destroy(&m.d);
    zmq_close(m.router);
    zmq_ctx_term(m.zctx);
    nas_free(m.pkt);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("zmq_uv_dispatch");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_zmq_uv_dispatch_campaign_wiring);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
