/*
 * test_auth.c - CURVE + ZAP with real sockets (master/auth.h, common/keys.h).
 *
 * Each test builds a CURVE server ROUTER on tcp://127.0.0.1 in a context
 * whose ZAP handler is ours, then tries clients against it: an authorized
 * key gets through (and is named by its User-Id), an unknown key, a wrong
 * server key and a plaintext client never deliver a single message.  The
 * log is captured by pointing stderr at a file inside the forked test.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/keys.h"
#include "common/log.h"
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
    void *ctx;
    nas_test_curve c;   /* the CURVE server, its keys and the log */
    void *mon;          /* PAIR receiving the router's handshake events */
    int ev_ok;          /* ZMQ_EVENT_HANDSHAKE_SUCCEEDED */
    int ev_auth;        /* ZMQ_EVENT_HANDSHAKE_FAILED_AUTH (ZAP said no) */
    int ev_auth_status; /* its ZAP status code */
    int ev_proto;       /* ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL / _NO_DETAIL */
} fixture;

static fixture F;

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void) {
    memset(&F, 0, sizeof F);
    F.ctx = zmq_ctx_new();
    nas_test_curve_setup(&F.c, F.ctx);
    ck_assert_int_eq(nas_auth_key_count(F.c.auth), 1);
    int zero = 0;
    /* Handshake events give positive evidence of why a client failed,
     * beyond "no message arrived in time". */
    ck_assert_int_eq(zmq_socket_monitor(F.c.router, "inproc://auth-mon",
                                        ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL),
                     0);
    F.mon = zmq_socket(F.ctx, ZMQ_PAIR);
    zmq_setsockopt(F.mon, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_connect(F.mon, "inproc://auth-mon"), 0);
}

/* Count the monitor events waiting (frame 1: u16 event, u32 value). */
static void drain_monitor(void) {
    for (;;) {
        uint8_t ev[6];
        char addr[256];
        if (zmq_recv(F.mon, ev, sizeof ev, ZMQ_DONTWAIT) < 0) return;
        zmq_recv(F.mon, addr, sizeof addr, 0);
        uint16_t event;
        uint32_t value;
        memcpy(&event, ev, 2);
        memcpy(&value, ev + 2, 4);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) F.ev_ok++;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            F.ev_auth++;
            F.ev_auth_status = (int)value;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            F.ev_proto++;
    }
}

static void teardown(void) {
    if (F.mon) zmq_close(F.mon);
    nas_test_curve_teardown(&F.c);
    if (F.ctx) zmq_ctx_term(F.ctx);
}

static char *read_log(void) {
    size_t n = 0;
    char *s = nas_read_file(F.c.logpath, &n);
    ck_assert_ptr_nonnull(s);
    return s;
}

static int count_lines_with(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* A DEALER to the router; kp NULL = plaintext, server_key NULL = kp's. */
static void *client(const nas_keypair *kp, const char *server_key) {
    void *c = zmq_socket(F.ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(c, ZMQ_LINGER, &zero, sizeof zero);
    char err[NAS_ERR_LEN];
    if (kp != NULL) ck_assert_int_eq(nas_keys_curve_client(c, kp, server_key, err), NAS_OK);
    ck_assert_int_eq(zmq_connect(c, F.c.endpoint), 0);
    return c;
}

/* Serve ZAP (unless a thread does) and the router for up to ms; return
 * the number of messages the router received.  Each is echoed back, and
 * the User-Id of the last one is copied to user. */
static int pump(int serve_zap, long ms, int stop_after, char *user) {
    int got = 0;
    long deadline = now_ms() + ms;
    while (now_ms() < deadline && (stop_after == 0 || got < stop_after)) {
        zmq_pollitem_t items[2] = {{.socket = F.c.router, .events = ZMQ_POLLIN},
                                   {.socket = nas_auth_socket(F.c.auth), .events = ZMQ_POLLIN}};
        int rc = zmq_poll(items, serve_zap ? 2 : 1, 20);
        ck_assert_int_ge(rc, 0);
        if (serve_zap && (items[1].revents & ZMQ_POLLIN))
            ck_assert_int_ge(nas_auth_handle(F.c.auth), 1);
        if (items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t id, body;
            zmq_msg_init(&id);
            zmq_msg_init(&body);
            ck_assert_int_ge(zmq_msg_recv(&id, F.c.router, 0), 0);
            ck_assert_int_ge(zmq_msg_recv(&body, F.c.router, 0), 0);
            const char *u = zmq_msg_gets(&body, "User-Id");
            if (user != NULL) snprintf(user, 128, "%s", u != NULL ? u : "");
            zmq_msg_send(&id, F.c.router, ZMQ_SNDMORE);
            zmq_msg_send(&body, F.c.router, 0);
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            got++;
        }
        drain_monitor();
    }
    drain_monitor();
    return got;
}

/* Wait up to ms for the client to receive the echo. */
static int client_recv(void *c, long ms) {
    zmq_pollitem_t it = {.socket = c, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, ms) <= 0) return 0;
    char buf[64];
    return zmq_recv(c, buf, sizeof buf, 0) >= 0;
}

START_TEST(test_auth_authorized_client_exchanges) {
    void *c = client(&F.c.worker, F.c.server.public_z85);
    ck_assert_int_eq(zmq_send(c, "hello", 5, 0), 5);
    char user[128] = "";
    ck_assert_int_eq(pump(1, 5000, 1, user), 1);
    /* The key's file name is the identity the master sees. */
    ck_assert_str_eq(user, "worker1");
    ck_assert_int_eq(client_recv(c, 2000), 1);
    nas_auth_stats st;
    nas_auth_stats_get(F.c.auth, &st);
    ck_assert_int_eq(st.accepted, 1);
    ck_assert_int_eq(st.rejected, 0);
    ck_assert_int_eq(F.ev_ok, 1);
    ck_assert_int_eq(F.ev_auth + F.ev_proto, 0);
    zmq_close(c);
}
END_TEST

START_TEST(test_auth_unknown_key_rejected_and_logged) {
    nas_keypair stranger;
    char err[NAS_ERR_LEN], fp[NAS_KEY_FP_LEN];
    ck_assert_int_eq(nas_keys_generate(&stranger, err), NAS_OK);
    void *c = client(&stranger, F.c.server.public_z85);
    zmq_send(c, "let me in", 9, ZMQ_DONTWAIT);
    ck_assert_int_eq(pump(1, 600, 0, NULL), 0);
    ck_assert_int_eq(client_recv(c, 50), 0);
    nas_auth_stats st;
    nas_auth_stats_get(F.c.auth, &st);
    ck_assert_int_ge(st.rejected, 1);
    ck_assert_int_eq(st.accepted, 0);
    /* libzmq itself reports the handshake as refused by ZAP with 400. */
    ck_assert_int_ge(F.ev_auth, 1);
    ck_assert_int_eq(F.ev_auth_status, 400);
    ck_assert_int_eq(F.ev_ok, 0);
    char *log = read_log();
    nas_keys_fingerprint(stranger.public_z85, fp);
    ck_assert_msg(strstr(log, fp) != NULL, "fingerprint %s not in log:\n%s", fp, log);
    ck_assert_ptr_nonnull(strstr(log, "127.0.0.1"));
    ck_assert_ptr_nonnull(strstr(log, "not in the authorized directory"));
    free(log);
    zmq_close(c);
}
END_TEST

START_TEST(test_auth_wrong_server_key_cannot_connect) {
    nas_keypair impostor;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_keys_generate(&impostor, err), NAS_OK);
    /* An authorized client that trusts another server key: the handshake
     * fails before ZAP is even asked. */
    void *c = client(&F.c.worker, impostor.public_z85);
    zmq_send(c, "hello", 5, ZMQ_DONTWAIT);
    ck_assert_int_eq(pump(1, 600, 0, NULL), 0);
    ck_assert_int_eq(client_recv(c, 50), 0);
    nas_auth_stats st;
    nas_auth_stats_get(F.c.auth, &st);
    ck_assert_int_eq(st.accepted, 0);
    /* The server saw a handshake fail (crypto box or mechanism mismatch)
     * before any ZAP question, and never one succeed. */
    ck_assert_int_ge(F.ev_proto, 1);
    ck_assert_int_eq(F.ev_ok, 0);
    ck_assert_int_eq(st.rejected, 0);
    zmq_close(c);
}
END_TEST

START_TEST(test_auth_plaintext_client_gets_nothing) {
    void *c = client(NULL, NULL);
    zmq_send(c, "hello", 5, ZMQ_DONTWAIT);
    ck_assert_int_eq(pump(1, 600, 0, NULL), 0);
    ck_assert_int_eq(client_recv(c, 50), 0);
    nas_auth_stats st;
    nas_auth_stats_get(F.c.auth, &st);
    ck_assert_int_eq(st.accepted, 0);
    /* The server saw a handshake fail (crypto box or mechanism mismatch)
     * before any ZAP question, and never one succeed. */
    ck_assert_int_ge(F.ev_proto, 1);
    ck_assert_int_eq(F.ev_ok, 0);
    ck_assert_int_eq(st.rejected, 0);
    zmq_close(c);
}
END_TEST

START_TEST(test_auth_reload_admits_new_key) {
    char err[NAS_ERR_LEN], base[4200];
    nas_keypair w2;
    nas_path_join(base, sizeof base, F.c.dir, "worker2");
    ck_assert_int_eq(nas_keys_generate_files(base, 0, &w2, err), NAS_OK);
    void *c = client(&w2, F.c.server.public_z85);
    zmq_send(c, "one", 3, ZMQ_DONTWAIT);
    ck_assert_int_eq(pump(1, 400, 0, NULL), 0);
    zmq_close(c);

    /* A damaged file makes the reload fail and keeps the old set. */
    char bad[4300];
    nas_path_join(bad, sizeof bad, F.c.authdir, "broken.key");
    ck_assert_int_eq(nas_write_file(bad, "garbage\n", 8, 0), 0);
    ck_assert_int_eq(nas_auth_reload(F.c.auth, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "broken.key"));
    ck_assert_int_eq(nas_auth_key_count(F.c.auth), 1);
    unlink(bad);

    char pub[4300], dst[4300], cmd[9000];
    snprintf(pub, sizeof pub, "%s.key", base);
    nas_path_join(dst, sizeof dst, F.c.authdir, "worker2.key");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", pub, dst);
    ck_assert_int_eq(nas_run_cmd(cmd, NULL, 0), 0);
    ck_assert_int_eq(nas_auth_reload(F.c.auth, err), 2);
    c = client(&w2, F.c.server.public_z85);
    zmq_send(c, "two", 3, 0);
    char user[128] = "";
    ck_assert_int_eq(pump(1, 5000, 1, user), 1);
    ck_assert_str_eq(user, "worker2");
    zmq_close(c);
}
END_TEST

START_TEST(test_auth_thread_mode) {
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_auth_start(F.c.auth, err), NAS_OK);
    ck_assert_int_eq(nas_auth_start(F.c.auth, err), NAS_ESTATE);
    void *c = client(&F.c.worker, F.c.server.public_z85);
    zmq_send(c, "hi", 2, 0);
    ck_assert_int_eq(pump(0, 5000, 1, NULL), 1);
    ck_assert_int_eq(client_recv(c, 2000), 1);
    nas_keypair stranger;
    ck_assert_int_eq(nas_keys_generate(&stranger, err), NAS_OK);
    void *s = client(&stranger, F.c.server.public_z85);
    zmq_send(s, "x", 1, ZMQ_DONTWAIT);
    ck_assert_int_eq(pump(0, 500, 0, NULL), 0);
    nas_auth_stats st;
    nas_auth_stats_get(F.c.auth, &st);
    ck_assert_int_eq(st.accepted, 1);
    ck_assert_int_ge(st.rejected, 1);
    zmq_close(c);
    zmq_close(s);
}
END_TEST

START_TEST(test_auth_plain_local_socket_unaffected) {
    /* A plaintext socket without a ZAP domain in the same context (a
     * loopback-only status endpoint) is not subject to the CURVE policy:
     * libzmq asks ZAP about NULL-mechanism peers only when a domain is set. */
    void *plain = zmq_socket(F.ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(plain, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_bind(plain, "tcp://127.0.0.1:*"), 0);
    char ep[256];
    size_t len = sizeof ep;
    ck_assert_int_eq(zmq_getsockopt(plain, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    void *c = zmq_socket(F.ctx, ZMQ_DEALER);
    zmq_setsockopt(c, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_connect(c, ep), 0);
    ck_assert_int_eq(zmq_send(c, "status?", 7, 0), 7);
    zmq_pollitem_t items[2] = {{.socket = plain, .events = ZMQ_POLLIN},
                               {.socket = nas_auth_socket(F.c.auth), .events = ZMQ_POLLIN}};
    int got = 0;
    long deadline = now_ms() + 5000;
    while (!got && now_ms() < deadline) {
        ck_assert_int_ge(zmq_poll(items, 2, 20), 0);
        if (items[1].revents & ZMQ_POLLIN) nas_auth_handle(F.c.auth);
        if (items[0].revents & ZMQ_POLLIN) got = 1;
    }
    ck_assert_int_eq(got, 1);
    nas_auth_stats st;
    nas_auth_stats_get(F.c.auth, &st);
    ck_assert_int_eq(st.accepted + st.rejected + st.malformed, 0);
    zmq_close(c);
    zmq_close(plain);
}
END_TEST

/* Speak RFC 27 to the handler directly, as libzmq would. */
static void zap_request(void *req, const char *version, const char *domain, const char *mech,
                        const void *cred, size_t cred_len, int nframes) {
    const char *parts[6] = {version, "id-7", domain, "10.1.2.3", "", mech};
    for (int i = 0; i < nframes && i < 6; i++)
        ck_assert_int_ge(zmq_send(req, parts[i], strlen(parts[i]),
                                  i + 1 < nframes || cred != NULL ? ZMQ_SNDMORE : 0),
                         0);
    if (cred != NULL) ck_assert_int_ge(zmq_send(req, cred, cred_len, 0), 0);
}

/* Serve the request and read the 6-frame reply; returns the status code
 * and copies the request id and user id. */
static int zap_reply(void *req, char *reqid, char *user) {
    ck_assert_int_eq(nas_auth_handle(F.c.auth), 1);
    char frames[6][64];
    int more = 1;
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(more, 1);
        int n = zmq_recv(req, frames[i], 63, 0);
        ck_assert_int_ge(n, 0);
        frames[i][n] = '\0';
        size_t len = sizeof more;
        zmq_getsockopt(req, ZMQ_RCVMORE, &more, &len);
    }
    ck_assert_int_eq(more, 0);
    ck_assert_str_eq(frames[0], "1.0");
    snprintf(reqid, 64, "%s", frames[1]);
    snprintf(user, 64, "%s", frames[4]);
    return atoi(frames[2]);
}

START_TEST(test_auth_zap_protocol) {
    void *req = zmq_socket(F.ctx, ZMQ_REQ);
    ck_assert_int_eq(zmq_connect(req, NAS_AUTH_ENDPOINT), 0);
    uint8_t good[32], unknown[32];
    ck_assert_ptr_nonnull(zmq_z85_decode(good, F.c.worker.public_z85));
    memset(unknown, 0x5a, sizeof unknown);
    char id[64], user[64];

    zap_request(req, "1.0", "nasd", "CURVE", good, 32, 6);
    ck_assert_int_eq(zap_reply(req, id, user), 200);
    ck_assert_str_eq(id, "id-7");
    ck_assert_str_eq(user, "worker1");

    zap_request(req, "1.0", "nasd", "CURVE", unknown, 32, 6);
    ck_assert_int_eq(zap_reply(req, id, user), 400);
    ck_assert_str_eq(user, "");
    zap_request(req, "1.0", "other", "CURVE", good, 32, 6);
    ck_assert_int_eq(zap_reply(req, id, user), 400);
    zap_request(req, "1.0", "nasd", "NULL", NULL, 0, 6);
    ck_assert_int_eq(zap_reply(req, id, user), 400);
    zap_request(req, "1.0", "nasd", "CURVE", good, 31, 6);
    ck_assert_int_eq(zap_reply(req, id, user), 400);
    /* Malformed: wrong version, too few frames.  Still answered. */
    zap_request(req, "2.0", "nasd", "CURVE", good, 32, 6);
    ck_assert_int_eq(zap_reply(req, id, user), 500);
    zap_request(req, "1.0", "nasd", "CURVE", NULL, 0, 3);
    ck_assert_int_eq(zap_reply(req, id, user), 500);

    nas_auth_stats st;
    nas_auth_stats_get(F.c.auth, &st);
    ck_assert_int_eq(st.accepted, 1);
    ck_assert_int_eq(st.rejected, 4);
    ck_assert_int_eq(st.malformed, 2);
    ck_assert_int_eq(nas_auth_handle(F.c.auth), 0); /* nothing pending: no block */
    zmq_close(req);
}
END_TEST

START_TEST(test_auth_rejection_log_throttled) {
    void *req = zmq_socket(F.ctx, ZMQ_REQ);
    ck_assert_int_eq(zmq_connect(req, NAS_AUTH_ENDPOINT), 0);
    uint8_t unknown[32];
    memset(unknown, 0x33, sizeof unknown);
    char id[64], user[64];
    for (int i = 0; i < 9; i++) {
        zap_request(req, "1.0", "nasd", "CURVE", unknown, 32, 6);
        ck_assert_int_eq(zap_reply(req, id, user), 400);
    }
    /* Attempts 1, 2, 4 and 8 are logged: 4 lines for 9 attempts. */
    char *log = read_log();
    ck_assert_int_eq(count_lines_with(log, "10.1.2.3"), 4);
    ck_assert_ptr_nonnull(strstr(log, "(8 attempts so far)"));
    free(log);
    zmq_close(req);
}
END_TEST

START_TEST(test_auth_create_errors) {
    char err[NAS_ERR_LEN];
    nas_auth *a = NULL;
    /* A second handler in the same context cannot bind the endpoint. */
    ck_assert_int_eq(nas_auth_create(&a, F.ctx, F.c.authdir, NULL, err), NAS_EEXIST);
    ck_assert_ptr_null(a);
    void *ctx = zmq_ctx_new();
    char missing[4300];
    nas_path_join(missing, sizeof missing, F.c.dir, "nope");
    ck_assert_int_eq(nas_auth_create(&a, ctx, missing, NULL, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "nope"));
    /* An empty directory is allowed (and warned about). */
    char empty[4300];
    nas_path_join(empty, sizeof empty, F.c.dir, "empty");
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    ck_assert_int_eq(nas_auth_create(&a, ctx, empty, "d2", err), NAS_OK);
    ck_assert_int_eq(nas_auth_key_count(a), 0);
    nas_auth_destroy(&a);
    ck_assert_ptr_null(a);
    nas_auth_destroy(&a);
    zmq_ctx_term(ctx);
    char *log = read_log();
    ck_assert_ptr_nonnull(strstr(log, "no keys in"));
    free(log);
}
END_TEST

START_TEST(test_auth_create_out_of_memory) {
    /* Every allocation of create (the handler, the key array) may fail in
     * turn: each failure is NAS_ENOMEM with nothing leaked (LeakSanitizer
     * checks at exit) and nothing bound, so the next try can bind. */
    char err[NAS_ERR_LEN];
    void *ctx = zmq_ctx_new();
    int enomem = 0, ok = 0;
    for (long n = 1; n <= 8 && !ok; n++) {
        nas_auth *a = NULL;
        nas_alloc_fail_after(n);
        int rc = nas_auth_create(&a, ctx, F.c.authdir, NULL, err);
        nas_alloc_fail_reset();
        if (rc == NAS_ENOMEM) {
            enomem++;
            ck_assert_ptr_null(a);
        } else {
            ck_assert_int_eq(rc, NAS_OK);
            ck_assert_int_eq(nas_auth_key_count(a), 1);
            nas_auth_destroy(&a);
            ok = 1;
        }
    }
    ck_assert_int_ge(enomem, 2);
    ck_assert_int_eq(ok, 1);
    zmq_ctx_term(ctx);
}
END_TEST

START_TEST(test_auth_loopback_table) {
    static const struct {
        const char *ep;
        int local;
    } cases[] = {
        {"tcp://127.0.0.1:5555", 1},
        {"tcp://127.1.2.3:1", 1},
        {"tcp://127.0.0.1:*", 1},
        {"tcp://localhost:5555", 1},
        {"tcp://LOCALHOST:5555", 1},
        {"tcp://[::1]:5555", 1},
        {"ipc:///tmp/nasd.sock", 1},
        {"inproc://control", 1},
        {"tcp://*:5555", 0},
        {"tcp://0.0.0.0:5555", 0},
        {"tcp://[::]:5555", 0},
        {"tcp://192.168.1.10:5555", 0},
        {"tcp://eth0:5555", 0},
        {"tcp://127.0.0.1.evil.com:1", 0},
        {"tcp://127.0.0.256:1", 0},
        {"tcp://127.0.0:1", 0},
        {"tcp://1270.0.0.1:1", 0},
        {"tcp://128.0.0.1:1", 0},
        {"tcp://127.0.0.1", 0},
        {"tcp://127.0.0.1:", 0},
        {"tcp://[::1]", 0},
        {"tcp://[::1:5", 0},
        {"tcp://10.0.0.1;127.0.0.1:5", 0},
        {"udp://127.0.0.1:5", 0},
        {"TCP://127.0.0.1:5", 0},
        {"", 0},
        {"tcp://", 0},
        {"ws://127.0.0.1:5", 0},
    };
    for (size_t i = 0; i < NAS_ARRAY_LEN(cases); i++)
        ck_assert_msg(nas_auth_is_loopback(cases[i].ep) == cases[i].local, "%s: expected %d",
                      cases[i].ep, cases[i].local);
    ck_assert_int_eq(nas_auth_is_loopback(NULL), 0);

    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_auth_check_bind("tcp://127.0.0.1:5555", 0, 0, err), NAS_OK);
    ck_assert_int_eq(nas_auth_check_bind("tcp://*:5555", 1, 0, err), NAS_OK);
    ck_assert_int_eq(nas_auth_check_bind("tcp://*:5555", 0, 0, err), NAS_EAUTH);
    ck_assert_ptr_nonnull(strstr(err, "tcp://*:5555"));
    ck_assert_ptr_nonnull(strstr(err, "--insecure"));
    ck_assert_int_eq(nas_auth_check_bind("tcp://0.0.0.0:5555", 0, 1, err), NAS_OK);
    char *log = read_log();
    ck_assert_ptr_nonnull(strstr(log, "tcp://0.0.0.0:5555 without CURVE keys"));
    free(log);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_auth_authorized_client_exchanges);
    tcase_add_test(tc, test_auth_unknown_key_rejected_and_logged);
    tcase_add_test(tc, test_auth_wrong_server_key_cannot_connect);
    tcase_add_test(tc, test_auth_plaintext_client_gets_nothing);
    tcase_add_test(tc, test_auth_reload_admits_new_key);
    tcase_add_test(tc, test_auth_thread_mode);
    tcase_add_test(tc, test_auth_plain_local_socket_unaffected);
    tcase_add_test(tc, test_auth_zap_protocol);
    tcase_add_test(tc, test_auth_rejection_log_throttled);
    tcase_add_test(tc, test_auth_create_errors);
    tcase_add_test(tc, test_auth_create_out_of_memory);
    tcase_add_test(tc, test_auth_loopback_table);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
