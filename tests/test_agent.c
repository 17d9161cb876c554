/*
 * test_agent.c - the worker agent against a scripted master over real
 * ZeroMQ tcp sockets: register and heartbeat, task with progress while
 * heartbeats go on, cancel, reconnect when the master is silent, a result
 * held across a master restart, garbage answered with Error, and a stop
 * that gives the task back.  Heartbeats are 50 ms so each test takes well
 * under a second or two.
 */
#include "common/clock.h"
#include "common/err.h"
#include "tests/harness.h"
#include "tests/test_agent_broker.h"
#include "worker/agent.h"
#include "worker/evaluate.h"
#include "proto/nas.pb-c.h"

#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HB     50
#define GENOME "n=sep3x3:0+id:1 r=max3x3:0+id:1"

typedef struct running_agent {
    nas_evaluator *ev;
    nas_agent *agent;
    pthread_t thread;
    int rc;
    char err[NAS_ERR_LEN];
} running_agent;

static void *agent_main(void *arg) {
    running_agent *r = arg;
    r->rc = nas_agent_run(r->agent, r->err);
    return NULL;
}

static void start_agent_curve(running_agent *r, const char *endpoint, int epoch_ms,
                              const nas_keypair *keys, const char *server_key) {
    memset(r, 0, sizeof *r);
    nas_evaluator_config ec;
    nas_evaluator_config_default(&ec);
    ec.synthetic_epoch_ms = epoch_ms;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_evaluator_create(&r->ev, &ec, err), NAS_OK);
    nas_agent_config ac;
    nas_agent_config_default(&ac);
    ac.endpoint = endpoint;
    ac.name = "tw";
    ac.heartbeat_ms = HB;
    ac.liveness = 3;
    ac.reconnect_min_ms = 50;
    ac.reconnect_max_ms = 200;
    ac.eval = r->ev;
    ac.curve_keys = keys;
    ac.curve_server_key = server_key;
    ck_assert_int_eq(nas_agent_create(&r->agent, &ac, err), NAS_OK);
    ck_assert_int_eq(pthread_create(&r->thread, NULL, agent_main, r), 0);
}

static void start_agent(running_agent *r, const char *endpoint, int epoch_ms) {
    start_agent_curve(r, endpoint, epoch_ms, NULL, NULL);
}

/* Stop the agent and wait for run() to return; returns its status. */
static int stop_agent(running_agent *r, nas_agent_stats *stats) {
    nas_agent_request_stop(r->agent);
    pthread_join(r->thread, NULL);
    if (stats) nas_agent_stats_get(r->agent, stats);
    nas_agent_destroy(&r->agent);
    nas_evaluator_destroy(&r->ev);
    return r->rc;
}

/* Open a broker and wait for the agent's Register + Ready. */
static void handshake(broker *b) {
    ck_assert_int_eq(broker_wait(b, NAS_MSG_REGISTER, 2000), 1);
    ck_assert_str_eq(b->pkt.msg.u.reg.name, "tw");
    ck_assert_uint_eq(b->pkt.msg.u.reg.protocol, NAS_PROTOCOL_VERSION);
    ck_assert_int_eq(broker_wait(b, NAS_MSG_READY, 1000), 1);
}

// ---- tests --------------------------------------------------------------------------------

START_TEST(test_agent_registers_and_heartbeats) {
    broker b;
    broker_open(&b, HB);
    running_agent r;
    start_agent(&r, b.endpoint, 0);
    handshake(&b);
    memset(b.counts, 0, sizeof b.counts);
    broker_wait(&b, -1, 500);
    /* 500 ms at 50 ms: about 10 heartbeats; allow slack for a busy machine. */
    ck_assert_int_ge(b.counts[NAS_MSG_HEARTBEAT], 5);
    ck_assert_int_le(b.counts[NAS_MSG_HEARTBEAT], 14);
    ck_assert_int_eq(b.counts[NAS_MSG_REGISTER], 0); /* no reconnect while we answer */
    nas_agent_stats st;
    ck_assert_int_eq(stop_agent(&r, &st), NAS_OK);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_DISCONNECT, 15000), 1);
    ck_assert_int_eq(st.registrations, 1);
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_runs_task_with_progress_and_heartbeats) {
    broker b;
    broker_open(&b, HB);
    running_agent r;
    start_agent(&r, b.endpoint, 60);
    handshake(&b);
    memset(b.counts, 0, sizeof b.counts);
    broker_task(&b, 17, 5, NAS_EVAL_SYNTHETIC, GENOME);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 15000), 1);
    const nas_wire_result *res = &b.pkt.msg.u.result;
    ck_assert_uint_eq(res->task_id, 17);
    ck_assert_int_eq(res->n_curve, 5);
    ck_assert_str_eq(res->worker, "tw");
    ck_assert(res->val_acc > 0.25 && res->val_acc < 0.95);
    ck_assert_int_eq(b.counts[NAS_MSG_PROGRESS], 5);
    /* About 300 ms of training: heartbeats never stopped. */
    ck_assert_int_ge(b.counts[NAS_MSG_HEARTBEAT], 3);
    nas_wire_msg ack;
    nas_wire_msg_init(&ack, NAS_MSG_ACK);
    ack.u.ack = (nas_wire_ack){17, 1, 0};
    broker_send(&b, &ack);
    broker_wait(&b, -1, 150);
    nas_agent_stats st;
    ck_assert_int_eq(stop_agent(&r, &st), NAS_OK);
    ck_assert_int_eq(st.tasks, 1);
    ck_assert_int_eq(st.results_acked, 1);
    ck_assert_int_eq(st.held, 0);
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_cancel_stops_the_task) {
    broker b;
    broker_open(&b, HB);
    running_agent r;
    start_agent(&r, b.endpoint, 50);
    handshake(&b);
    broker_task(&b, 5, 1000, NAS_EVAL_SYNTHETIC, GENOME);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_PROGRESS, 15000), 1);
    nas_wire_msg c;
    nas_wire_msg_init(&c, NAS_MSG_CANCEL);
    c.u.cancel = (nas_task_ref){5, 1};
    int64_t t0 = nas_now_ms();
    broker_send(&b, &c);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_FAILURE, 15000), 1);
    ck_assert_int_lt(nas_now_ms() - t0, 5000); /* the task would run 50 s */
    ck_assert_int_eq(b.pkt.msg.u.failure.code, NAS_ECANCELED);
    ck_assert_int_eq(b.pkt.msg.u.failure.give_back, 0);
    /* Idle again: a new task runs. */
    broker_task(&b, 6, 1, NAS_EVAL_SYNTHETIC, GENOME);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 15000), 1);
    ck_assert_int_eq(stop_agent(&r, NULL), NAS_OK);
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_reconnects_when_master_is_silent) {
    broker b;
    broker_open(&b, HB);
    running_agent r;
    start_agent(&r, b.endpoint, 0);
    handshake(&b);
    uint8_t first[NAS_WIRE_ID_MAX];
    size_t first_len = b.id_len;
    memcpy(first, b.id, first_len);
    b.keepalive = 0; /* the master goes quiet */
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_REGISTER, 15000), 1);
    /* A fresh socket, so a fresh identity. */
    ck_assert(b.id_len != first_len || memcmp(b.id, first, first_len) != 0);
    b.keepalive = 1;
    nas_agent_stats st;
    ck_assert_int_eq(stop_agent(&r, &st), NAS_OK);
    ck_assert_int_ge(st.registrations, 2);
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_holds_result_across_master_restart) {
    broker b;
    broker_open(&b, HB);
    char endpoint[256];
    snprintf(endpoint, sizeof endpoint, "%s", b.endpoint);
    running_agent r;
    start_agent(&r, endpoint, 50);
    handshake(&b);
    broker_task(&b, 31, 4, NAS_EVAL_SYNTHETIC, GENOME);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_PROGRESS, 15000), 1);
    /* The master dies mid-training and comes back after the task ended. */
    broker_close_socket(&b);
    nas_sleep_ms(600);
    broker_bind(&b, endpoint);
    memset(b.counts, 0, sizeof b.counts);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_REGISTER, 15000), 1);
    ck_assert_int_eq(b.pkt.msg.u.reg.n_held, 1);
    ck_assert_uint_eq(b.pkt.msg.u.reg.held[0].task_id, 31);
    ck_assert_int_eq(b.pkt.msg.u.reg.has_running, 0);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 15000), 1);
    ck_assert_uint_eq(b.pkt.msg.u.result.task_id, 31);
    ck_assert_int_eq(b.pkt.msg.u.result.n_curve, 4);
    nas_wire_msg ack;
    nas_wire_msg_init(&ack, NAS_MSG_ACK);
    ack.u.ack = (nas_wire_ack){31, 1, 0};
    broker_send(&b, &ack);
    /* Once acknowledged it is not sent again (resends are every 150 ms). */
    memset(b.counts, 0, sizeof b.counts);
    broker_wait(&b, -1, 400);
    ck_assert_int_eq(b.counts[NAS_MSG_RESULT], 0);
    nas_agent_stats st;
    ck_assert_int_eq(stop_agent(&r, &st), NAS_OK);
    ck_assert_int_eq(st.results_acked, 1);
    ck_assert_int_eq(st.held, 0);
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_resends_unacknowledged_result) {
    broker b;
    broker_open(&b, HB);
    running_agent r;
    start_agent(&r, b.endpoint, 0);
    handshake(&b);
    broker_task(&b, 8, 1, NAS_EVAL_SYNTHETIC, GENOME);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 15000), 1);
    /* No Ack: it comes again after liveness x heartbeat. */
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 15000), 1);
    ck_assert_uint_eq(b.pkt.msg.u.result.task_id, 8);
    ck_assert_int_eq(stop_agent(&r, NULL), NAS_OK);
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_answers_garbage_with_error) {
    broker b;
    broker_open(&b, HB);
    running_agent r;
    start_agent(&r, b.endpoint, 0);
    handshake(&b);
    /* Garbage, a wrong version, an oversized and a truncated envelope. */
    broker_send_raw(&b, "\xff\xff\xff garbage", 11);
    uint8_t buf[256];
    Naspb__Envelope env = NASPB__ENVELOPE__INIT;
    env.has_protocol = env.has_type = 1;
    env.protocol = NAS_PROTOCOL_VERSION + 5;
    env.type = NAS_MSG_HEARTBEAT;
    broker_send_raw(&b, buf, naspb__envelope__pack(&env, buf));
    uint8_t *big = nas_calloc(1, NAS_WIRE_MAX_ENVELOPE + 100);
    broker_send_raw(&b, big, NAS_WIRE_MAX_ENVELOPE + 100);
    nas_free(big);
    nas_wire_msg t;
    nas_wire_msg_init(&t, NAS_MSG_TASK);
    t.u.task.task_id = 1, t.u.task.attempt = 1, t.u.task.fidelity = nas_fidelity_default();
    strcpy(t.u.task.genome, GENOME);
    uint8_t *enc;
    size_t len;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_wire_encode(&t, &enc, &len, err), NAS_OK);
    broker_send_raw(&b, enc, len - 3);
    nas_free(enc);
    memset(b.counts, 0, sizeof b.counts);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(broker_wait(&b, NAS_MSG_ERROR, 15000), 1);
    /* Real traffic goes on. */
    broker_task(&b, 2, 2, NAS_EVAL_SYNTHETIC, GENOME);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 15000), 1);
    nas_agent_stats st;
    ck_assert_int_eq(stop_agent(&r, &st), NAS_OK);
    ck_assert_int_eq(st.bad_in, 4);
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_reregisters_when_master_forgot_it) {
    broker b;
    broker_open(&b, HB);
    running_agent r;
    start_agent(&r, b.endpoint, 0);
    handshake(&b);
    nas_wire_msg e;
    nas_wire_msg_init(&e, NAS_MSG_ERROR);
    e.u.error.code = NAS_ESTATE;
    strcpy(e.u.error.message, "heartbeat from an unregistered peer: send Register");
    broker_send(&b, &e);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_REGISTER, 15000), 1);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_READY, 15000), 1);
    ck_assert_int_eq(stop_agent(&r, NULL), NAS_OK);
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_stop_gives_task_back) {
    broker b;
    broker_open(&b, HB);
    running_agent r;
    start_agent(&r, b.endpoint, 50);
    handshake(&b);
    broker_task(&b, 12, 1000, NAS_EVAL_SYNTHETIC, GENOME);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_PROGRESS, 15000), 1);
    int64_t t0 = nas_now_ms();
    ck_assert_int_eq(stop_agent(&r, NULL), NAS_OK);
    ck_assert_int_lt(nas_now_ms() - t0, 5000); /* the task would run 50 s */
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_FAILURE, 15000), 1);
    ck_assert_uint_eq(b.pkt.msg.u.failure.task_id, 12);
    ck_assert_int_eq(b.pkt.msg.u.failure.give_back, 1);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_DISCONNECT, 15000), 1);
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_curve_connection) {
    nas_keypair server, worker, other;
    char err[NAS_ERR_LEN];
    if (nas_keys_generate(&server, err) == NAS_EUNSUPPORTED) return; /* libzmq without CURVE */
    ck_assert_int_eq(nas_keys_generate(&worker, err), NAS_OK);
    ck_assert_int_eq(nas_keys_generate(&other, err), NAS_OK);
    broker b;
    broker_open_curve(&b, HB, &server);
    /* The right server key: registers and works over the encrypted link. */
    running_agent r;
    start_agent_curve(&r, b.endpoint, 0, &worker, server.public_z85);
    handshake(&b);
    broker_task(&b, 3, 2, NAS_EVAL_SYNTHETIC, GENOME);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 15000), 1);
    ck_assert_int_eq(stop_agent(&r, NULL), NAS_OK);
    /* A wrong server key: the handshake fails and nothing gets through. */
    memset(b.counts, 0, sizeof b.counts);
    start_agent_curve(&r, b.endpoint, 0, &worker, other.public_z85);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_REGISTER, 600), 0);
    ck_assert_int_eq(stop_agent(&r, NULL), NAS_OK);
    /* A bad key string is refused before anything starts. */
    nas_agent_config ac;
    nas_agent_config_default(&ac);
    ac.endpoint = b.endpoint;
    ac.eval = (nas_evaluator *)1; /* never used: create fails first */
    ac.curve_keys = &worker;
    ac.curve_server_key = "too-short";
    nas_agent *a = NULL;
    ck_assert_int_lt(nas_agent_create(&a, &ac, err), 0);
    ac.curve_server_key = NULL;
    ck_assert_int_eq(nas_agent_create(&a, &ac, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "public key"));
    broker_close(&b);
}
END_TEST

START_TEST(test_agent_zap_names_the_worker_key) {
    /* With the master's ZAP handler, every message carries the name of the
     * key that sent it; a key outside the authorized directory gets nowhere. */
    nas_keypair server, worker, stranger;
    char err[NAS_ERR_LEN];
    if (nas_keys_generate(&server, err) == NAS_EUNSUPPORTED) return;
    const char *dir = nas_tmpdir_make();
    char base[4096], authdir[4096];
    nas_path_join(authdir, sizeof authdir, dir, "authorized");
    ck_assert_int_eq(mkdir(authdir, 0755), 0);
    nas_path_join(base, sizeof base, authdir, "w7");
    ck_assert_int_eq(nas_keys_generate_files(base, 0, &worker, err), NAS_OK);
    ck_assert_int_eq(unlink(strcat(base, ".key_secret")), 0); /* only public keys there */
    ck_assert_int_eq(nas_keys_generate(&stranger, err), NAS_OK);
    broker b;
    broker_open_auth(&b, HB, &server, authdir);
    running_agent r;
    start_agent_curve(&r, b.endpoint, 0, &worker, server.public_z85);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_REGISTER, 15000), 1);
    ck_assert_str_eq(b.pkt.user_id, "w7");
    ck_assert_int_eq(stop_agent(&r, NULL), NAS_OK);
    memset(b.counts, 0, sizeof b.counts);
    start_agent_curve(&r, b.endpoint, 0, &stranger, server.public_z85);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_REGISTER, 600), 0);
    ck_assert_int_eq(stop_agent(&r, NULL), NAS_OK);
    broker_close(&b);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_agent_bad_config_is_refused) {
    nas_agent_config ac;
    nas_agent_config_default(&ac);
    nas_agent *a = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_agent_create(&a, &ac, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "endpoint"));
    nas_evaluator *ev = NULL;
    nas_evaluator_config ec;
    nas_evaluator_config_default(&ec);
    ck_assert_int_eq(nas_evaluator_create(&ev, &ec, err), NAS_OK);
    ac.endpoint = "bogus://nowhere";
    ac.eval = ev;
    ck_assert_int_eq(nas_agent_create(&a, &ac, err), NAS_OK);
    ck_assert_int_eq(nas_agent_run(a, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "bogus://nowhere"));
    nas_agent_destroy(&a);
    ck_assert_ptr_null(a);
    nas_evaluator_destroy(&ev);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("agent");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_agent_registers_and_heartbeats);
    tcase_add_test(tc, test_agent_runs_task_with_progress_and_heartbeats);
    tcase_add_test(tc, test_agent_cancel_stops_the_task);
    tcase_add_test(tc, test_agent_reconnects_when_master_is_silent);
    tcase_add_test(tc, test_agent_holds_result_across_master_restart);
    tcase_add_test(tc, test_agent_resends_unacknowledged_result);
    tcase_add_test(tc, test_agent_answers_garbage_with_error);
    tcase_add_test(tc, test_agent_reregisters_when_master_forgot_it);
    tcase_add_test(tc, test_agent_stop_gives_task_back);
    tcase_add_test(tc, test_agent_curve_connection);
    tcase_add_test(tc, test_agent_zap_names_the_worker_key);
    tcase_add_test(tc, test_agent_bad_config_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
