/*
 * test_wire.c - the wire protocol: every message round-trips, every bad
 * envelope (wrong version, unknown type, truncated, oversized, bad field)
 * is refused with an error naming the problem, and multipart framing on
 * real ZeroMQ sockets carries identity, envelope and raw frames.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/rng.h"
#include "common/wire.h"
#include "proto/nas.pb-c.h"
#include "tests/harness.h"

#include <math.h>
#include <string.h>
#include <zmq.h>

// ---- helpers -------------------------------------------------------------------

static nas_wire_msg sample_result(void) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_RESULT);
    nas_wire_result *r = &m.u.result;
    r->task_id = 42;
    r->attempt = 2;
    r->val_acc = 0.875;
    r->val_loss = 0.31;
    r->has_test = 1;
    r->test_acc = 0.86;
    r->n_curve = 3;
    r->curve[0] = 0.5f, r->curve[1] = 0.75f, r->curve[2] = 0.875f;
    r->params = 123456;
    r->macs = 9876543;
    r->seconds = 12.5;
    r->images_per_s = 800.0;
    strcpy(r->worker, "w1");
    return m;
}

static nas_wire_msg sample_task(void) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_TASK);
    nas_wire_task *t = &m.u.task;
    t->task_id = 7;
    t->attempt = 1;
    strcpy(t->genome, "n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1");
    t->fidelity = nas_fidelity_default();
    t->fidelity.epochs = 5;
    t->fidelity.lr = 0.025f;
    t->fidelity.seed = 0xdeadbeefcafeULL;
    t->fidelity.time_limit_s = 60.5;
    t->fidelity.augment = 1;
    t->fidelity.width_mult = 437.0f / 1024; /* a final-stage MBConv width (final_size.c) */
    strcpy(t->dataset, "fashion-mnist");
    strcpy(t->data_dir, "/data/fm");
    t->has_parent = 1;
    t->parent_hash = 0x1234567890abcdefULL;
    t->mode = NAS_EVAL_TABULAR;
    return m;
}

/* Encode, decode, and return the decoded copy (asserting both succeed). */
static nas_wire_msg roundtrip(const nas_wire_msg *in) {
    char err[NAS_ERR_LEN] = "";
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nas_wire_encode(in, &buf, &len, err);
    ck_assert_msg(rc == NAS_OK, "encode: %s", err);
    nas_wire_msg out;
    rc = nas_wire_decode(buf, len, &out, err);
    ck_assert_msg(rc == NAS_OK, "decode: %s", err);
    nas_free(buf);
    return out;
}

/* Encode an envelope by hand, with any protocol/type/payload. */
static size_t raw_envelope(uint8_t *out, uint32_t protocol, uint32_t type, const uint8_t *payload,
                           size_t plen) {
    Naspb__Envelope env = NASPB__ENVELOPE__INIT;
    env.has_protocol = 1, env.protocol = protocol;
    env.has_type = 1, env.type = type;
    env.has_payload = 1, env.payload.data = (uint8_t *)payload, env.payload.len = plen;
    return naspb__envelope__pack(&env, out);
}

// ---- round trips -----------------------------------------------------------------

START_TEST(test_wire_result_roundtrip) {
    nas_wire_msg in = sample_result();
    in.seq = 99;
    nas_wire_msg out = roundtrip(&in);
    ck_assert_int_eq(out.type, NAS_MSG_RESULT);
    ck_assert_uint_eq(out.seq, 99);
    ck_assert_uint_eq(out.u.result.task_id, 42);
    ck_assert_uint_eq(out.u.result.attempt, 2);
    ck_assert_double_eq(out.u.result.val_acc, 0.875);
    ck_assert_int_eq(out.u.result.has_test, 1);
    ck_assert_double_eq(out.u.result.test_acc, 0.86);
    ck_assert_int_eq(out.u.result.n_curve, 3);
    ck_assert_float_eq(out.u.result.curve[2], 0.875f);
    ck_assert_int_eq(out.u.result.params, 123456);
    ck_assert_int_eq(out.u.result.macs, 9876543);
    ck_assert_str_eq(out.u.result.worker, "w1");
    /* test accuracy absent stays absent */
    in.u.result.has_test = 0;
    out = roundtrip(&in);
    ck_assert_int_eq(out.u.result.has_test, 0);
}
END_TEST

START_TEST(test_wire_task_roundtrip_keeps_every_fidelity_field) {
    nas_wire_msg in = sample_task();
    nas_wire_msg out = roundtrip(&in);
    ck_assert_int_eq(out.type, NAS_MSG_TASK);
    ck_assert_str_eq(out.u.task.genome, in.u.task.genome);
    ck_assert_str_eq(out.u.task.dataset, "fashion-mnist");
    ck_assert_str_eq(out.u.task.data_dir, "/data/fm");
    ck_assert_int_eq(out.u.task.has_parent, 1);
    ck_assert_uint_eq(out.u.task.parent_hash, 0x1234567890abcdefULL);
    ck_assert_int_eq(out.u.task.mode, NAS_EVAL_TABULAR);
    ck_assert(nas_wire_fidelity_equal(&out.u.task.fidelity, &in.u.task.fidelity));
}
END_TEST

START_TEST(test_wire_every_small_message_roundtrips) {
    nas_wire_msg m, out;
    nas_wire_msg_init(&m, NAS_MSG_REGISTER);
    strcpy(m.u.reg.name, "w7");
    strcpy(m.u.reg.host, "node3");
    strcpy(m.u.reg.version, NAS_VERSION);
    m.u.reg.cores = 8;
    m.u.reg.protocol = NAS_PROTOCOL_VERSION;
    m.u.reg.n_held = 2;
    m.u.reg.held[0] = (nas_task_ref){5, 1};
    m.u.reg.held[1] = (nas_task_ref){6, 3};
    m.u.reg.has_running = 1;
    m.u.reg.running = (nas_task_ref){9, 2};
    strcpy(m.u.reg.engine.blas, "OpenBLAS 0.3.21");
    strcpy(m.u.reg.engine.blas_kernels, "SkylakeX");
    strcpy(m.u.reg.engine.isa, "avx512+bf16");
    m.u.reg.engine.blas_threads = 1;
    strcpy(m.u.reg.engine.gemm, "own avx512 (B untransposed) + OpenBLAS");
    out = roundtrip(&m);
    ck_assert_str_eq(out.u.reg.engine.gemm, "own avx512 (B untransposed) + OpenBLAS");
    ck_assert_str_eq(out.u.reg.engine.blas, "OpenBLAS 0.3.21");
    ck_assert_str_eq(out.u.reg.engine.blas_kernels, "SkylakeX");
    ck_assert_str_eq(out.u.reg.engine.isa, "avx512+bf16");
    ck_assert_uint_eq(out.u.reg.engine.blas_threads, 1);
    ck_assert_str_eq(out.u.reg.name, "w7");
    ck_assert_str_eq(out.u.reg.host, "node3");
    ck_assert_uint_eq(out.u.reg.cores, 8);
    ck_assert_int_eq(out.u.reg.n_held, 2);
    ck_assert_uint_eq(out.u.reg.held[1].task_id, 6);
    ck_assert_uint_eq(out.u.reg.held[1].attempt, 3);
    ck_assert_int_eq(out.u.reg.has_running, 1);
    ck_assert_uint_eq(out.u.reg.running.task_id, 9);

    nas_wire_msg_init(&m, NAS_MSG_PROGRESS);
    m.u.progress = (nas_wire_progress){3, 1, 2, 5, 0.9, 0.7, 0.66};
    out = roundtrip(&m);
    ck_assert_int_eq(out.u.progress.epoch, 2);
    ck_assert_double_eq(out.u.progress.val_acc, 0.66);

    nas_wire_msg_init(&m, NAS_MSG_FAILURE);
    m.u.failure.task_id = 4, m.u.failure.attempt = 1, m.u.failure.code = NAS_EDIVERGED;
    m.u.failure.give_back = 1;
    strcpy(m.u.failure.reason, "loss became NaN at epoch 2");
    out = roundtrip(&m);
    ck_assert_int_eq(out.u.failure.code, NAS_EDIVERGED);
    ck_assert_int_eq(out.u.failure.give_back, 1);
    ck_assert_str_eq(out.u.failure.reason, "loss became NaN at epoch 2");

    nas_wire_msg_init(&m, NAS_MSG_ACK);
    m.u.ack = (nas_wire_ack){8, 2, 1};
    out = roundtrip(&m);
    ck_assert_int_eq(out.u.ack.duplicate, 1);
    ck_assert_uint_eq(out.u.ack.task_id, 8);

    nas_wire_msg_init(&m, NAS_MSG_CANCEL);
    m.u.cancel = (nas_task_ref){11, 4};
    out = roundtrip(&m);
    ck_assert_uint_eq(out.u.cancel.attempt, 4);

    nas_wire_msg_init(&m, NAS_MSG_ERROR);
    m.u.error.code = NAS_EPROTO;
    strcpy(m.u.error.message, "nope");
    out = roundtrip(&m);
    ck_assert_int_eq(out.u.error.code, NAS_EPROTO);
    ck_assert_str_eq(out.u.error.message, "nope");

    int empties[] = {NAS_MSG_READY, NAS_MSG_HEARTBEAT, NAS_MSG_DISCONNECT, NAS_MSG_STATUS_REQUEST};
    for (size_t i = 0; i < NAS_ARRAY_LEN(empties); i++) {
        nas_wire_msg_init(&m, empties[i]);
        out = roundtrip(&m);
        ck_assert_int_eq(out.type, empties[i]);
    }

    nas_wire_msg_init(&m, NAS_MSG_STATUS_REPLY);
    m.u.status_json = "{\"workers\":[]}";
    out = roundtrip(&m);
    ck_assert_str_eq(out.u.status_json, "{\"workers\":[]}");
    nas_wire_msg_fini(&out);
    nas_wire_msg_fini(&out); /* twice is safe */
}
END_TEST

// ---- refusals --------------------------------------------------------------------

/* Encoding must refuse what decoding would refuse; check both halves. */
static void expect_invalid(nas_wire_msg *m, const char *field) {
    char err[NAS_ERR_LEN] = "";
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nas_wire_encode(m, &buf, &len, err);
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_null(buf);
    ck_assert_msg(strstr(err, field) != NULL, "error '%s' does not name '%s'", err, field);
}

START_TEST(test_wire_bad_numbers_are_refused_naming_the_field) {
    nas_wire_msg m = sample_result();
    m.u.result.val_acc = 1.5;
    expect_invalid(&m, "result.val_acc");
    m = sample_result();
    m.u.result.val_acc = NAN;
    expect_invalid(&m, "result.val_acc");
    m = sample_result();
    m.u.result.val_loss = -1;
    expect_invalid(&m, "result.val_loss");
    m = sample_result();
    m.u.result.curve[1] = INFINITY;
    expect_invalid(&m, "result.curve[1]");
    m = sample_result();
    m.u.result.params = -3;
    expect_invalid(&m, "result.params");
    m = sample_result();
    m.u.result.attempt = 0;
    expect_invalid(&m, "result.attempt");

    nas_wire_msg_init(&m, NAS_MSG_PROGRESS);
    m.u.progress = (nas_wire_progress){3, 1, -1, 5, 0.9, 0.7, 0.66};
    expect_invalid(&m, "progress.epoch");
    m.u.progress.epoch = 6;
    expect_invalid(&m, "progress.epoch");
    m.u.progress.epoch = 1;
    m.u.progress.train_loss = NAN;
    expect_invalid(&m, "progress.train_loss");

    m = sample_task();
    m.u.task.fidelity.epochs = 0;
    expect_invalid(&m, "epochs");
    m = sample_task();
    m.u.task.genome[0] = 0;
    expect_invalid(&m, "task.genome");
    m = sample_task();
    m.u.task.mode = 7;
    expect_invalid(&m, "task.mode");
    m = sample_task();
    memset(m.u.task.dataset, 'x', sizeof m.u.task.dataset);
    expect_invalid(&m, "task.dataset");
}
END_TEST

START_TEST(test_wire_bad_field_from_peer_is_refused_on_decode) {
    /* A peer that skips validation: pack a Result with val_acc 2 directly. */
    Naspb__Result r = NASPB__RESULT__INIT;
    r.has_task_id = r.has_attempt = r.has_val_acc = 1;
    r.task_id = 1, r.attempt = 1, r.val_acc = 2.0;
    uint8_t payload[256], buf[512];
    size_t plen = naspb__result__pack(&r, payload);
    size_t len = raw_envelope(buf, NAS_PROTOCOL_VERSION, NAS_MSG_RESULT, payload, plen);
    nas_wire_msg m;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_wire_decode(buf, len, &m, err), NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "result.val_acc"));

    /* A missing required field is named too. */
    r.has_val_acc = 0;
    plen = naspb__result__pack(&r, payload);
    len = raw_envelope(buf, NAS_PROTOCOL_VERSION, NAS_MSG_RESULT, payload, plen);
    ck_assert_int_eq(nas_wire_decode(buf, len, &m, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "result.val_acc is missing"));
}
END_TEST

START_TEST(test_wire_wrong_version_and_unknown_type) {
    uint8_t buf[64];
    nas_wire_msg m;
    char err[NAS_ERR_LEN] = "";
    size_t len = raw_envelope(buf, NAS_PROTOCOL_VERSION + 1, NAS_MSG_HEARTBEAT, NULL, 0);
    ck_assert_int_eq(nas_wire_decode(buf, len, &m, err), NAS_EVERSION);
    ck_assert_ptr_nonnull(strstr(err, "protocol"));
    len = raw_envelope(buf, NAS_PROTOCOL_VERSION, 77, NULL, 0);
    ck_assert_int_eq(nas_wire_decode(buf, len, &m, err), NAS_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "77"));
    len = raw_envelope(buf, NAS_PROTOCOL_VERSION, 0, NULL, 0);
    ck_assert_int_eq(nas_wire_decode(buf, len, &m, err), NAS_EPROTO);
}
END_TEST

START_TEST(test_wire_every_truncation_is_refused_or_valid) {
    /* Cut a valid Task envelope at every length: each prefix must decode to
     * an error (never crash, never leak) except the whole message. */
    nas_wire_msg in = sample_task();
    char err[NAS_ERR_LEN];
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(nas_wire_encode(&in, &buf, &len, err), NAS_OK);
    int refused = 0;
    for (size_t n = 0; n < len; n++) {
        nas_wire_msg m;
        int rc = nas_wire_decode(buf, n, &m, err);
        if (rc < 0)
            refused++;
        else
            nas_wire_msg_fini(&m);
    }
    ck_assert_int_eq(refused, (int)len);
    /* Garbage bytes too. */
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    nas_wire_msg m;
    ck_assert_int_lt(nas_wire_decode(junk, sizeof junk, &m, err), 0);
    nas_free(buf);
}
END_TEST

START_TEST(test_wire_oversized_envelope_is_refused) {
    size_t n = NAS_WIRE_MAX_ENVELOPE + 1;
    uint8_t *big = nas_calloc(1, n);
    nas_wire_msg m;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_wire_decode(big, n, &m, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "limit"));
    nas_free(big);
}
END_TEST

START_TEST(test_wire_mutated_envelopes_never_crash_and_stay_consistent) {
    /* Flip, insert and cut bytes of valid envelopes of every kind.  The
     * decoder must never crash, and whatever it accepts the encoder must
     * accept too (one set of rules on both sides). */
    nas_wire_msg seeds[4];
    seeds[0] = sample_task();
    seeds[1] = sample_result();
    nas_wire_msg_init(&seeds[2], NAS_MSG_REGISTER);
    strcpy(seeds[2].u.reg.name, "w");
    seeds[2].u.reg.protocol = NAS_PROTOCOL_VERSION;
    seeds[2].u.reg.n_held = 1;
    seeds[2].u.reg.held[0] = (nas_task_ref){1, 1};
    nas_wire_msg_init(&seeds[3], NAS_MSG_PROGRESS);
    seeds[3].u.progress = (nas_wire_progress){3, 1, 2, 5, 0.9, 0.7, 0.66};
    nas_rng rng;
    nas_rng_init(&rng, 42, 0);
    int accepted = 0, refused = 0;
    char err[NAS_ERR_LEN];
    for (int s = 0; s < 4; s++) {
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(nas_wire_encode(&seeds[s], &buf, &len, err), NAS_OK);
        uint8_t mut[4096];
        for (int it = 0; it < 3000; it++) {
            size_t n = len;
            memcpy(mut, buf, len);
            int edits = 1 + (int)nas_rng_below(&rng, 4);
            for (int e = 0; e < edits; e++) {
                uint32_t op = nas_rng_below(&rng, 3);
                size_t at = nas_rng_below(&rng, (uint32_t)n);
                if (op == 0)
                    mut[at] ^= (uint8_t)(1u << nas_rng_below(&rng, 8));
                else if (op == 1)
                    mut[at] = (uint8_t)nas_rng_u32(&rng);
                else
                    n = at + 1;
            }
            nas_wire_msg m;
            if (nas_wire_decode(mut, n, &m, err) == NAS_OK) {
                accepted++;
                uint8_t *again;
                size_t alen;
                ck_assert_msg(nas_wire_encode(&m, &again, &alen, err) == NAS_OK,
                              "decoded but not encodable: %s", err);
                nas_free(again);
                nas_wire_msg_fini(&m);
            } else {
                refused++;
            }
        }
        nas_free(buf);
    }
    ck_assert_int_gt(refused, 1000);
    ck_assert_int_gt(accepted, 10);
}
END_TEST

// ---- sockets ------------------------------------------------------------------------

START_TEST(test_wire_router_dealer_with_raw_frames) {
    char err[NAS_ERR_LEN] = "";
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    ck_assert_int_eq(nas_wire_socket_setup(router, err), NAS_OK);
    ck_assert_int_eq(nas_wire_socket_setup(dealer, err), NAS_OK);
    ck_assert_int_eq(zmq_bind(router, "inproc://wire-test"), 0);
    ck_assert_int_eq(zmq_connect(dealer, "inproc://wire-test"), 0);

    nas_wire_msg m = sample_result();
    const char w1[] = "weights-1", w2[] = "w2";
    nas_wire_frame frames[2] = {{w1, sizeof w1}, {w2, sizeof w2}};
    ck_assert_int_eq(nas_wire_send(dealer, NULL, 0, &m, frames, 2, 0, err), NAS_OK);
    nas_wire_packet pkt;
    ck_assert_int_eq(nas_wire_recv(router, 1, 0, &pkt, err), NAS_OK);
    ck_assert_int_gt((int)pkt.id_len, 0);
    ck_assert_int_eq(pkt.msg.type, NAS_MSG_RESULT);
    ck_assert_uint_eq(pkt.n_frames, 2);
    ck_assert_str_eq(pkt.frame_data[0], "weights-1");
    ck_assert_uint_eq(pkt.frame_len[1], sizeof w2);

    /* Reply through the identity. */
    nas_wire_msg ack;
    nas_wire_msg_init(&ack, NAS_MSG_ACK);
    ack.u.ack = (nas_wire_ack){42, 2, 0};
    ck_assert_int_eq(nas_wire_send(router, pkt.identity, pkt.id_len, &ack, NULL, 0, 0, err),
                     NAS_OK);
    nas_wire_packet_fini(&pkt);
    ck_assert_int_eq(nas_wire_recv(dealer, 0, 0, &pkt, err), NAS_OK);
    ck_assert_int_eq(pkt.msg.type, NAS_MSG_ACK);
    ck_assert_uint_eq(pkt.msg.u.ack.task_id, 42);
    nas_wire_packet_fini(&pkt);

    /* Garbage is refused but the identity survives for the Error reply,
     * and the next message is read cleanly (nothing left half-read). */
    zmq_send(dealer, "\xff\xfe garbage", 10, ZMQ_SNDMORE);
    zmq_send(dealer, "extra", 5, 0);
    ck_assert_int_eq(nas_wire_recv(router, 1, 0, &pkt, err), NAS_EFORMAT);
    ck_assert_int_gt((int)pkt.id_len, 0);
    nas_wire_packet_fini(&pkt);
    /* Frames not announced by the envelope are refused. */
    nas_wire_msg hb;
    nas_wire_msg_init(&hb, NAS_MSG_HEARTBEAT);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(nas_wire_encode(&hb, &buf, &len, err), NAS_OK);
    zmq_send(dealer, buf, len, ZMQ_SNDMORE);
    zmq_send(dealer, "x", 1, 0);
    nas_free(buf);
    ck_assert_int_eq(nas_wire_recv(router, 1, 0, &pkt, err), NAS_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "raw frames"));
    nas_wire_packet_fini(&pkt);
    ck_assert_int_eq(nas_wire_send(dealer, NULL, 0, &hb, NULL, 0, 0, err), NAS_OK);
    ck_assert_int_eq(nas_wire_recv(router, 1, 0, &pkt, err), NAS_OK);
    ck_assert_int_eq(pkt.msg.type, NAS_MSG_HEARTBEAT);
    nas_wire_packet_fini(&pkt);
    ck_assert_int_eq(nas_wire_recv(router, 1, 1, &pkt, err), NAS_EAGAIN);

    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_wire_result_roundtrip);
    tcase_add_test(tc, test_wire_task_roundtrip_keeps_every_fidelity_field);
    tcase_add_test(tc, test_wire_every_small_message_roundtrips);
    tcase_add_test(tc, test_wire_bad_numbers_are_refused_naming_the_field);
    tcase_add_test(tc, test_wire_bad_field_from_peer_is_refused_on_decode);
    tcase_add_test(tc, test_wire_wrong_version_and_unknown_type);
    tcase_add_test(tc, test_wire_every_truncation_is_refused_or_valid);
    tcase_add_test(tc, test_wire_oversized_envelope_is_refused);
    tcase_add_test(tc, test_wire_mutated_envelopes_never_crash_and_stay_consistent);
    tcase_add_test(tc, test_wire_router_dealer_with_raw_frames);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
