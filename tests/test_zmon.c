/*
 * test_zmon.c - handshake diagnostics (common/zmon.h) with real sockets.
 *
 * A CURVE server ROUTER whose context runs our ZAP handler (master/auth.h,
 * served from its thread) on tcp://127.0.0.1, and DEALER clients in a
 * context of their own, as a worker has: an unknown key is reported as
 * refused with ZAP status 400 and the fix; a wrong server key as a failed
 * CURVE handshake naming the key file; a plaintext client as a master
 * that requires CurveZMQ; and a refused client is admitted once its key is
 * authorized and the handler reloads (on its next socket, since libzmq
 * drops a refused connection for good).  The rate limit
 * is checked with events fed in at chosen times.  The log is captured by
 * pointing stderr at a file inside the forked test.
 */
#include "common/err.h"
#include "common/keys.h"
#include "common/zmon.h"
#include "master/auth.h"
#include "tests/curve_util.h"
#include "tests/harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct fixture {
    void *sctx, *cctx; /* server and client contexts, as on two machines */
    nas_test_curve c;  /* the CURVE server, its keys and the log */
    nas_keypair rogue; /* a key nobody authorized */
} fixture;

static fixture F;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void) {
    char err[NAS_ERR_LEN];
    memset(&F, 0, sizeof F);
    F.sctx = zmq_ctx_new();
    F.cctx = zmq_ctx_new();
    nas_test_curve_setup(&F.c, F.sctx);
    ck_assert_int_eq(nas_keys_generate(&F.rogue, err), NAS_OK);
    ck_assert_int_eq(nas_auth_start(F.c.auth, err), NAS_OK);
}

static void teardown(void) {
    nas_test_curve_teardown(&F.c);
    if (F.sctx) zmq_ctx_term(F.sctx);
    if (F.cctx) zmq_ctx_term(F.cctx);
}

static int log_count(const char *needle) {
    return nas_test_curve_log_count(&F.c, needle);
}

/* A client DEALER with the monitor attached; kp NULL for plaintext. */
typedef struct client {
    void *sock;
    nas_zmon *mon;
} client;

/* A fresh DEALER for the client, the monitor moved onto it (what the
 * agent does on every reconnect). */
static void client_socket(client *c, const nas_keypair *kp, const char *server_pub) {
    char err[NAS_ERR_LEN];
    if (c->sock) {
        nas_zmon_detach(c->mon);
        ck_assert_ptr_null(nas_zmon_socket(c->mon));
        zmq_close(c->sock);
    }
    c->sock = zmq_socket(F.cctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (kp) ck_assert_int_eq(nas_keys_curve_client(c->sock, kp, server_pub, err), NAS_OK);
    ck_assert_int_eq(nas_zmon_attach(c->mon, c->sock, F.c.endpoint, err), NAS_OK);
    ck_assert_ptr_nonnull(nas_zmon_socket(c->mon));
    ck_assert_int_eq(zmq_connect(c->sock, F.c.endpoint), 0);
}

static void client_open(client *c, const nas_keypair *kp, const char *server_pub) {
    char err[NAS_ERR_LEN];
    nas_zmon_config mc = {.what = "master",
                          .curve = kp != NULL,
                          .public_z85 = kp ? kp->public_z85 : NULL,
                          .key_file = "keys/w9.key",
                          .server_key_file = "keys/master.key",
                          .key_option = "--master-key",
                          .repeat_ms = 60000};
    ck_assert_int_eq(nas_zmon_create(&c->mon, F.cctx, &mc, err), NAS_OK);
    c->sock = NULL;
    client_socket(c, kp, server_pub);
}

static void client_close(client *c) {
    nas_zmon_destroy(&c->mon);
    zmq_close(c->sock);
}

/* Poll the monitor until the state is `want` or 3 s pass. */
static enum nas_zmon_state wait_state(client *c, enum nas_zmon_state want) {
    int64_t end = now_ms() + 3000;
    enum nas_zmon_state s = NAS_ZMON_NONE;
    while (now_ms() < end && s != want) {
        zmq_pollitem_t it = {nas_zmon_socket(c->mon), 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 50);
        s = nas_zmon_poll(c->mon, now_ms());
    }
    return s;
}

/* The refusal names the key by fingerprint, the ZAP status, the file and
 * the fix; a reload that authorizes the key admits the same socket. */
START_TEST(test_refused_then_admitted) {
    client c;
    char err[NAS_ERR_LEN];
    client_open(&c, &F.rogue, F.c.server.public_z85);
    ck_assert_int_eq(wait_state(&c, NAS_ZMON_REFUSED), NAS_ZMON_REFUSED);
    nas_zmon_stats st;
    nas_zmon_stats_get(c.mon, &st);
    ck_assert_uint_eq(st.zap_status, 400);
    char fp[NAS_KEY_FP_LEN], want[600];
    nas_keys_fingerprint(F.rogue.public_z85, fp);
    snprintf(want, sizeof want,
             "master %s refused this worker's key %s (ZAP status 400): add the public key in "
             "keys/w9.key to the master's --authorized directory",
             F.c.endpoint, fp);
    ck_assert_msg(strstr(st.message, want), "message: %s", st.message);
    ck_assert_int_eq(log_count(want), 1);

    /* libzmq gives up on a connection the ZAP handler refused (the
     * session ends on the protocol error), so the owner must reconnect
     * with a fresh socket, as the agent does; the monitor follows it. */
    client_socket(&c, &F.rogue, F.c.server.public_z85);
    /* The state is REFUSED already: wait for the second refusal itself. */
    int64_t end = now_ms() + 3000;
    do {
        zmq_pollitem_t it = {nas_zmon_socket(c.mon), 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 50);
        nas_zmon_poll(c.mon, now_ms());
        nas_zmon_stats_get(c.mon, &st);
    } while (st.failures < 2 && now_ms() < end);
    ck_assert_int_eq(st.state, NAS_ZMON_REFUSED);
    ck_assert_int_eq(st.failures, 2);
    ck_assert_int_eq(log_count("refused this worker's key"), 1); /* rate-limited */

    char base[4200];
    nas_path_join(base, sizeof base, F.c.dir, "authorized/rogue");
    nas_keypair pub = F.rogue;
    ck_assert_int_eq(nas_keys_save(&pub, base, 0, err), NAS_OK);
    char sec[4300];
    snprintf(sec, sizeof sec, "%s.key_secret", base);
    ck_assert_int_eq(unlink(sec), 0);
    ck_assert_int_eq(nas_auth_reload(F.c.auth, err), 2); /* keys in force */
    client_socket(&c, &F.rogue, F.c.server.public_z85);
    ck_assert_int_eq(wait_state(&c, NAS_ZMON_OK), NAS_ZMON_OK);
    nas_zmon_stats_get(c.mon, &st);
    ck_assert_int_eq(st.failures, 0);
    ck_assert_int_eq(st.total_failures, 2);
    ck_assert_int_eq(st.successes, 1);
    ck_assert_int_eq(log_count("admitted this worker after"), 1);
    client_close(&c);
}
END_TEST

/* The wrong server key: the server cannot even read our hello, so the
 * diagnosis points at the key file, not at authorization. */
START_TEST(test_wrong_server_key) {
    client c;
    client_open(&c, &F.c.worker, F.rogue.public_z85);
    enum nas_zmon_state s = NAS_ZMON_NONE;
    int64_t end = now_ms() + 3000;
    while (now_ms() < end && s != NAS_ZMON_DROPPED && s != NAS_ZMON_PROTOCOL)
        s = wait_state(&c, NAS_ZMON_DROPPED);
    ck_assert_msg(s == NAS_ZMON_DROPPED || s == NAS_ZMON_PROTOCOL, "state %s",
                  nas_zmon_state_name(s));
    const char *msg = nas_zmon_message(c.mon);
    ck_assert_msg(strstr(msg, "CURVE handshake with master") &&
                      strstr(msg, "is keys/master.key (--master-key) the master's public key"),
                  "message: %s", msg);
    ck_assert_ptr_null(strstr(msg, "refused"));
    client_close(&c);

    /* The authorized key with the right server key is admitted silently. */
    client_open(&c, &F.c.worker, F.c.server.public_z85);
    ck_assert_int_eq(wait_state(&c, NAS_ZMON_OK), NAS_ZMON_OK);
    ck_assert_str_eq(nas_zmon_message(c.mon), "");
    ck_assert_int_eq(log_count("admitted"), 0);
    client_close(&c);
}
END_TEST

/* A plaintext client of a CURVE master is told to give keys. */
START_TEST(test_plaintext_client) {
    client c;
    client_open(&c, NULL, NULL);
    enum nas_zmon_state s = NAS_ZMON_NONE;
    int64_t end = now_ms() + 3000;
    while (now_ms() < end && (s == NAS_ZMON_NONE || s == NAS_ZMON_OK))
        s = wait_state(&c, NAS_ZMON_PROTOCOL);
    ck_assert_int_ne(s, NAS_ZMON_OK);
    ck_assert_int_ne(s, NAS_ZMON_NONE);
    const char *msg = nas_zmon_message(c.mon);
    ck_assert_msg(strstr(msg, "requires CurveZMQ") && strstr(msg, "--key BASE"), "message: %s",
                  msg);
    client_close(&c);
}
END_TEST

/* Rate limit: the same cause once per repeat_ms with the count between; a
 * new cause at once; a success resets. */
START_TEST(test_rate_limit) {
    char err[NAS_ERR_LEN];
    nas_zmon *m = NULL;
    nas_zmon_config mc = {
        .what = "master", .curve = 1, .public_z85 = F.rogue.public_z85, .repeat_ms = 1000};
    ck_assert_int_eq(nas_zmon_create(&m, F.cctx, &mc, err), NAS_OK);
    ck_assert_int_eq(nas_zmon_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400, 0), NAS_ZMON_REFUSED);
    for (int t = 100; t < 1000; t += 100)
        nas_zmon_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400, t);
    ck_assert_int_eq(log_count("refused this worker's key"), 1);
    nas_zmon_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400, 1000);
    ck_assert_int_eq(log_count("refused this worker's key"), 2);
    ck_assert_int_eq(log_count("(10 more failed handshake(s) since the last report)"), 1);
    ck_assert_int_eq(nas_zmon_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104, 1100),
                     NAS_ZMON_DROPPED);
    ck_assert_int_eq(log_count("the master's public key"), 1);
    ck_assert_int_eq(nas_zmon_event(m, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0, 1200), NAS_ZMON_OK);
    ck_assert_int_eq(log_count("admitted this worker after 12 failed"), 1);
    ck_assert_int_eq(nas_zmon_failing(m), 0);

    /* One dropped handshake after a success is not worth an error (a
     * master restarting); the second in a row is. */
    ck_assert_int_eq(nas_zmon_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104, 1300),
                     NAS_ZMON_DROPPED);
    ck_assert_int_eq(nas_zmon_failing(m), 0);
    ck_assert_int_eq(log_count("the master's public key"), 1);
    nas_zmon_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104, 1400);
    ck_assert_int_eq(nas_zmon_failing(m), 1);
    ck_assert_int_eq(log_count("the master's public key"), 2);
    /* Other events leave the state alone. */
    ck_assert_int_eq(nas_zmon_event(m, ZMQ_EVENT_CONNECTED, 0, 1500), NAS_ZMON_DROPPED);
    nas_zmon_stats st;
    nas_zmon_stats_get(m, &st);
    ck_assert_int_eq(st.total_failures, 14);
    ck_assert_int_eq(st.failures, 2);
    nas_zmon_destroy(&m);
    ck_assert_ptr_null(m);

    /* CurveZMQ without our key is a bad config, not a crash. */
    mc.public_z85 = NULL;
    ck_assert_int_eq(nas_zmon_create(&m, F.cctx, &mc, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "public key"));
    ck_assert_int_eq(nas_zmon_create(&m, NULL, &mc, err), NAS_EINVAL);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("zmon");
    TCase *tc = tcase_create("handshake");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_refused_then_admitted);
    tcase_add_test(tc, test_wrong_server_key);
    tcase_add_test(tc, test_plaintext_client);
    tcase_add_test(tc, test_rate_limit);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
