/*
 * test_weights_discovery.c - workers find the weight store without
 * --weights: the master's answer to Register (a Heartbeat) names the
 * endpoint, which survives the wire and is absent from every other
 * heartbeat (an older peer sees an empty, valid Heartbeat); a wildcard
 * host becomes the host the worker reached the master on; and a client
 * created without an endpoint refuses by name until one is set from
 * another thread, then pulls from it.
 */
#include "common/alloc.h"
#include "common/wire.h"
#include "master/dispatcher.h"
#include "master/weights.h"
#include "tests/harness.h"
#include "tests/weights_fixtures.h"
#include "worker/ps_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <zmq.h>

START_TEST(test_weights_discovery_heartbeat_carries_the_endpoint) {
    char err[NAS_ERR_LEN] = "";
    nas_wire_msg m, back;
    nas_wire_msg_init(&m, NAS_MSG_HEARTBEAT);
    snprintf(m.u.heartbeat.weights, sizeof m.u.heartbeat.weights, "tcp://0.0.0.0:5556");
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_msg(nas_wire_encode(&m, &buf, &len, err) == NAS_OK, "%s", err);
    ck_assert_msg(nas_wire_decode(buf, len, &back, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(back.type, NAS_MSG_HEARTBEAT);
    ck_assert_str_eq(back.u.heartbeat.weights, "tcp://0.0.0.0:5556");
    nas_free(buf);
    /* A plain heartbeat (what an older master sends, and every beat after
     * the first) is empty and decodes to "". */
    nas_wire_msg_init(&m, NAS_MSG_HEARTBEAT);
    size_t plain = 0;
    ck_assert_int_eq(nas_wire_encode(&m, &buf, &plain, err), NAS_OK);
    ck_assert_uint_lt(plain, len);
    ck_assert_int_eq(nas_wire_decode(buf, plain, &back, err), NAS_OK);
    ck_assert_str_eq(back.u.heartbeat.weights, "");
    nas_free(buf);
}
END_TEST

typedef struct sent {
    int n;
    nas_wire_msg last;
} sent;

static int capture(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *m) {
    (void)id, (void)id_len;
    sent *s = ctx;
    s->n++;
    s->last = *m;
    return NAS_OK;
}

static void deliver(nas_dispatcher *d, const nas_wire_msg *m, int64_t now) {
    nas_dispatcher_on_message(d, (const uint8_t *)"w1", 2, m, now);
}

/* The dispatcher answers Register with the endpoint; later heartbeats
 * stay empty. */
START_TEST(test_weights_discovery_register_is_answered_with_it) {
    char err[NAS_ERR_LEN] = "";
    sent s = {0};
    nas_dispatcher_config dc;
    nas_dispatcher_config_default(&dc);
    nas_dispatcher_hooks h = {.ctx = &s, .send = capture};
    nas_dispatcher *d = NULL;
    ck_assert_int_eq(nas_dispatcher_create(&d, &dc, &h, err), NAS_OK);
    char longer[2048];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    ck_assert_int_eq(nas_dispatcher_set_weights_endpoint(d, longer, err), NAS_ERANGE);
    ck_assert_int_eq(nas_dispatcher_set_weights_endpoint(d, "tcp://10.0.0.5:5556", err), NAS_OK);
    nas_wire_msg reg;
    nas_wire_msg_init(&reg, NAS_MSG_REGISTER);
    snprintf(reg.u.reg.name, sizeof reg.u.reg.name, "w1");
    snprintf(reg.u.reg.host, sizeof reg.u.reg.host, "h");
    reg.u.reg.cores = 1;
    reg.u.reg.protocol = NAS_PROTOCOL_VERSION;
    deliver(d, &reg, 100);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(s.last.type, NAS_MSG_HEARTBEAT);
    ck_assert_str_eq(s.last.u.heartbeat.weights, "tcp://10.0.0.5:5556");
    /* Beats sent by tick carry nothing. */
    nas_dispatcher_tick(d, 100 + dc.heartbeat_ms * 2);
    ck_assert_int_ge(s.n, 2);
    ck_assert_int_eq(s.last.type, NAS_MSG_HEARTBEAT);
    ck_assert_str_eq(s.last.u.heartbeat.weights, "");
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_weights_discovery_wildcard_takes_the_master_host) {
    char out[256], err[NAS_ERR_LEN] = "";
    const char *m = "tcp://gpu-box.lan:5555";
    ck_assert_int_eq(nas_ps_endpoint_resolve("tcp://0.0.0.0:5556", m, out, sizeof out, err),
                     NAS_OK);
    ck_assert_str_eq(out, "tcp://gpu-box.lan:5556");
    ck_assert_int_eq(nas_ps_endpoint_resolve("tcp://*:7000", m, out, sizeof out, err), NAS_OK);
    ck_assert_str_eq(out, "tcp://gpu-box.lan:7000");
    ck_assert_int_eq(
        nas_ps_endpoint_resolve("tcp://[::]:5556", "tcp://[fe80::1]:5555", out, sizeof out, err),
        NAS_OK);
    ck_assert_str_eq(out, "tcp://[fe80::1]:5556");
    /* A concrete host is used as announced. */
    ck_assert_int_eq(nas_ps_endpoint_resolve("tcp://10.1.2.3:5556", m, out, sizeof out, err),
                     NAS_OK);
    ck_assert_str_eq(out, "tcp://10.1.2.3:5556");
    ck_assert_int_eq(nas_ps_endpoint_resolve("ipc:///tmp/w", m, out, sizeof out, err), NAS_OK);
    ck_assert_str_eq(out, "ipc:///tmp/w");
    /* A wildcard with nothing to replace it by is refused by name. */
    ck_assert_int_eq(nas_ps_endpoint_resolve("tcp://*:5556", "ipc:///tmp/c", out, sizeof out, err),
                     NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--weights"));
    ck_assert_int_eq(nas_ps_endpoint_resolve("", m, out, sizeof out, err), NAS_EINVAL);
    ck_assert_int_eq(nas_ps_endpoint_resolve("tcp://*:5556", m, out, 10, err), NAS_ERANGE);
}
END_TEST

typedef struct announcer {
    nas_ps_client *c;
    const char *ep;
    int rc;
} announcer;

static void *announce(void *arg) {
    announcer *a = arg;
    char err[NAS_ERR_LEN] = "";
    a->rc = nas_ps_client_set_endpoint(a->c, a->ep, err);
    return NULL;
}

/* A client without an endpoint says why it cannot pull; once another
 * thread (the agent, in a worker) sets one, the next pull uses it. */
START_TEST(test_weights_discovery_client_follows_the_announcement) {
    fix_server s;
    fix_server_bind(&s, NULL, 1 << 20, NULL);
    char err[NAS_ERR_LEN] = "";
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    nas_safetensors_tensor t = {.name = "head/linear/bias", .ndim = 1, .shape = {8}, .data = data};
    nas_wire_weights_msg m;
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PUSH);
    ck_assert_int_eq(nas_wire_weights_manifest(&m, &t, 1, data, NULL, err), NAS_OK);
    ck_assert_int_eq(nas_weights_put(s.w, 0x77, &m, data, 0, err), NAS_OK);
    nas_wire_weights_msg_fini(&m);
    fix_server_run(&s);

    void *ctx = zmq_ctx_new();
    nas_ps_client *c = NULL;
    ck_assert_int_eq(nas_ps_client_create(&c, ctx, NULL, 5000, err), NAS_OK);
    nas_ps_weights *pw = NULL;
    ck_assert_int_eq(nas_ps_client_pull(c, 0x77, &pw, err), NAS_ESTATE);
    ck_assert_ptr_nonnull(strstr(err, "no weight store endpoint yet"));
    ck_assert_int_eq(nas_ps_client_set_endpoint(c, "", err), NAS_EINVAL);
    announcer a = {.c = c, .ep = s.endpoint};
    pthread_t th;
    pthread_create(&th, NULL, announce, &a);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.rc, NAS_OK);
    ck_assert_msg(nas_ps_client_pull(c, 0x77, &pw, err) == NAS_OK, "%s", err);
    size_t nt = 0;
    const nas_safetensors_tensor *got = nas_ps_weights_tensors(pw, &nt);
    ck_assert_uint_eq(nt, 1);
    ck_assert_int_eq(memcmp(got[0].data, data, sizeof data), 0);
    nas_ps_weights_destroy(&pw);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    fix_server_stop(&s);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("weights_discovery");
    TCase *tc = tcase_create("discovery");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_weights_discovery_heartbeat_carries_the_endpoint);
    tcase_add_test(tc, test_weights_discovery_register_is_answered_with_it);
    tcase_add_test(tc, test_weights_discovery_wildcard_takes_the_master_host);
    tcase_add_test(tc, test_weights_discovery_client_follows_the_announcement);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
