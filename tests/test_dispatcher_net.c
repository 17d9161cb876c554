/*
 * test_dispatcher_net.c - the dispatcher behind a real ROUTER socket with
 * real agents on tcp://127.0.0.1: every task is evaluated and recorded
 * exactly once while a rogue peer sends garbage, a wrong protocol version,
 * an oversized and a truncated envelope, each answered with an Error; and
 * a worker that disappears mid-task has its task finished by another.
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "master/dispatcher.h"
#include "proto/nas.pb-c.h"
#include "tests/harness.h"
#include "worker/agent.h"

#include <pthread.h>
#include <string.h>
#include <zmq.h>

#define HB 50

typedef struct net {
    void *zctx, *router;
    char endpoint[256];
    nas_dispatcher *d;
    int results;
    int seen[200]; /* results recorded per task id */
    int lost;      /* workers lost */
} net;

static int net_send(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *m) {
    net *n = ctx;
    char err[NAS_ERR_LEN];
    return nas_wire_send(n->router, id, id_len, m, NULL, 0, 1, err);
}

static int net_result(void *ctx, const nas_wire_result *r, const char *worker) {
    net *n = ctx;
    n->results++;
    if (r->task_id < 200) n->seen[r->task_id]++;
    return NAS_OK;
}

static void net_worker(void *ctx, const nas_worker_info *w, const char *event) {
    (void)w;
    if (strcmp(event, "lost") == 0) ((net *)ctx)->lost++;
}

static void net_open(net *n) {
    memset(n, 0, sizeof *n);
    n->zctx = zmq_ctx_new();
    n->router = zmq_socket(n->zctx, ZMQ_ROUTER);
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_wire_socket_setup(n->router, err), NAS_OK);
    ck_assert_int_eq(zmq_bind(n->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof n->endpoint;
    zmq_getsockopt(n->router, ZMQ_LAST_ENDPOINT, n->endpoint, &len);
    nas_dispatcher_config cfg;
    nas_dispatcher_config_default(&cfg);
    cfg.heartbeat_ms = HB;
    cfg.liveness = 4;
    nas_dispatcher_hooks h = {
        .ctx = n, .send = net_send, .on_result = net_result, .on_worker = net_worker};
    ck_assert_int_eq(nas_dispatcher_create(&n->d, &cfg, &h, err), NAS_OK);
}

/* Serve the control socket for up to ms, or until `done` results. */
static void net_serve(net *n, int64_t ms, int done) {
    int64_t end = nas_now_ms() + ms;
    nas_wire_packet *pkt = nas_malloc(sizeof *pkt);
    while (nas_now_ms() < end && n->results < done) {
        zmq_pollitem_t it = {n->router, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 10);
        char err[NAS_ERR_LEN];
        for (;;) {
            int rc = nas_wire_recv(n->router, 1, 1, pkt, err);
            if (rc == NAS_EAGAIN || rc == NAS_EIO) break;
            if (rc < 0) {
                nas_dispatcher_on_bad_message(n->d, pkt->identity, pkt->id_len, rc, err,
                                              nas_now_ms());
            } else {
                nas_dispatcher_on_message(n->d, pkt->identity, pkt->id_len, &pkt->msg,
                                          nas_now_ms());
            }
            nas_wire_packet_fini(pkt);
        }
        nas_dispatcher_tick(n->d, nas_now_ms());
    }
    nas_free(pkt);
}

static void net_close(net *n) {
    nas_dispatcher_destroy(&n->d);
    zmq_close(n->router);
    zmq_ctx_term(n->zctx);
}

typedef struct worker_thread {
    nas_evaluator *ev;
    nas_agent *agent;
    pthread_t th;
} worker_thread;

static void *run_agent(void *arg) {
    worker_thread *w = arg;
    char err[NAS_ERR_LEN];
    nas_agent_run(w->agent, err);
    return NULL;
}

static void worker_start(worker_thread *w, const char *endpoint, const char *name, int epoch_ms) {
    char err[NAS_ERR_LEN];
    nas_evaluator_config ec;
    nas_evaluator_config_default(&ec);
    ec.synthetic_epoch_ms = epoch_ms;
    ck_assert_int_eq(nas_evaluator_create(&w->ev, &ec, err), NAS_OK);
    nas_agent_config ac;
    nas_agent_config_default(&ac);
    ac.endpoint = endpoint;
    ac.name = name;
    ac.heartbeat_ms = HB;
    ac.liveness = 4;
    ac.reconnect_min_ms = 50;
    ac.eval = w->ev;
    ck_assert_int_eq(nas_agent_create(&w->agent, &ac, err), NAS_OK);
    pthread_create(&w->th, NULL, run_agent, w);
}

static void worker_stop(worker_thread *w) {
    nas_agent_request_stop(w->agent);
    pthread_join(w->th, NULL);
    nas_agent_destroy(&w->agent);
    nas_evaluator_destroy(&w->ev);
}

static void push_tasks(net *n, int first, int count, int epochs) {
    for (int i = first; i < first + count; i++) {
        nas_wire_task t;
        memset(&t, 0, sizeof t);
        t.task_id = (uint64_t)i;
        t.attempt = 1;
        snprintf(t.genome, sizeof t.genome, "n=sep3x3:0+id:1 r=max3x3:%d+id:1", i % 2);
        t.fidelity = nas_fidelity_default();
        t.fidelity.epochs = epochs;
        t.mode = NAS_EVAL_SYNTHETIC;
        char err[NAS_ERR_LEN];
        ck_assert_int_eq(nas_dispatcher_push(n->d, &t, nas_now_ms(), err), NAS_OK);
    }
}

START_TEST(test_dispatcher_net_tasks_complete_while_rogue_peer_is_refused) {
    net n;
    net_open(&n);
    worker_thread w1, w2;
    worker_start(&w1, n.endpoint, "w1", 5);
    worker_start(&w2, n.endpoint, "w2", 5);
    push_tasks(&n, 1, 40, 2);
    /* The rogue peer. */
    void *rogue = zmq_socket(n.zctx, ZMQ_DEALER);
    ck_assert_int_eq(zmq_connect(rogue, n.endpoint), 0);
    zmq_send(rogue, "\x01\x02garbage", 9, 0);
    uint8_t buf[64];
    Naspb__Envelope env = NASPB__ENVELOPE__INIT;
    env.has_protocol = env.has_type = 1;
    env.protocol = 99;
    env.type = NAS_MSG_HEARTBEAT;
    zmq_send(rogue, buf, naspb__envelope__pack(&env, buf), 0);
    uint8_t *big = nas_calloc(1, NAS_WIRE_MAX_ENVELOPE + 1);
    zmq_send(rogue, big, NAS_WIRE_MAX_ENVELOPE + 1, 0);
    nas_free(big);
    nas_wire_msg hb;
    nas_wire_msg_init(&hb, NAS_MSG_RESULT);
    hb.u.result.task_id = 1, hb.u.result.attempt = 1, hb.u.result.val_acc = 0.5;
    uint8_t *enc;
    size_t len;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_wire_encode(&hb, &enc, &len, err), NAS_OK);
    zmq_send(rogue, enc, len / 2, 0);
    nas_free(enc);

    net_serve(&n, 10000, 40);
    ck_assert_int_eq(n.results, 40);
    for (int i = 1; i <= 40; i++)
        ck_assert_int_eq(n.seen[i], 1);
    /* Four Errors came back to the rogue peer, each naming its problem. */
    int errors = 0;
    nas_wire_packet pkt;
    while (nas_wire_recv(rogue, 0, 1, &pkt, err) == NAS_OK) {
        errors += pkt.msg.type == NAS_MSG_ERROR;
        nas_wire_packet_fini(&pkt);
    }
    ck_assert_int_eq(errors, 4);
    nas_worker_info info[4];
    ck_assert_int_eq(nas_dispatcher_workers(n.d, info, 4), 2);
    ck_assert_int_gt(info[0].tasks_done, 0);
    ck_assert_int_gt(info[1].tasks_done, 0);
    zmq_close(rogue);
    worker_stop(&w1);
    worker_stop(&w2);
    net_close(&n);
}
END_TEST

START_TEST(test_dispatcher_net_dead_worker_task_finishes_elsewhere) {
    net n;
    net_open(&n);
    /* A worker that takes a task and then dies without a word: a raw
     * DEALER that registers, says Ready, and is closed. */
    char err[NAS_ERR_LEN];
    void *doomed = zmq_socket(n.zctx, ZMQ_DEALER);
    ck_assert_int_eq(nas_wire_socket_setup(doomed, err), NAS_OK);
    ck_assert_int_eq(zmq_connect(doomed, n.endpoint), 0);
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_REGISTER);
    strcpy(m.u.reg.name, "doomed");
    m.u.reg.protocol = NAS_PROTOCOL_VERSION;
    ck_assert_int_eq(nas_wire_send(doomed, NULL, 0, &m, NULL, 0, 0, err), NAS_OK);
    nas_wire_msg_init(&m, NAS_MSG_READY);
    ck_assert_int_eq(nas_wire_send(doomed, NULL, 0, &m, NULL, 0, 0, err), NAS_OK);
    nas_dispatcher_counts c = {0};
    for (int i = 0; i < 100 && c.idle == 0; i++) {
        net_serve(&n, 20, 1);
        nas_dispatcher_counts_get(n.d, &c);
    }
    ck_assert_int_eq(c.idle, 1);
    push_tasks(&n, 1, 1, 2);
    net_serve(&n, 100, 1);
    ck_assert_int_eq(nas_dispatcher_task_state(n.d, 1, NULL), NAS_DISPATCH_TASK_LEASED);
    zmq_close(doomed);
    worker_thread w2;
    worker_start(&w2, n.endpoint, "w2", 0);
    net_serve(&n, 3000, 1);
    ck_assert_int_eq(n.results, 1);
    ck_assert_int_eq(n.seen[1], 1);
    ck_assert_int_eq(n.lost, 1);
    uint32_t attempt = 0;
    ck_assert_int_eq(nas_dispatcher_task_state(n.d, 1, &attempt), NAS_DISPATCH_TASK_DONE);
    ck_assert_uint_eq(attempt, 2); /* the lost lease counted */
    worker_stop(&w2);
    net_close(&n);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("dispatcher_net");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_dispatcher_net_tasks_complete_while_rogue_peer_is_refused);
    tcase_add_test(tc, test_dispatcher_net_dead_worker_task_finishes_elsewhere);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
