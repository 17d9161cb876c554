/*
 * test_weights_wire.c - the bulk messages (common/wire_weights.h): round
 * trips, the checksum, and refusal by name of every way a manifest or a
 * data frame can be wrong (hand-packed protobuf, so the encoder's own
 * checks cannot hide a decoder gap), over real ZeroMQ sockets.
 */
#include "common/wire.h"
#include "proto/nas.pb-c.h"
#include "tests/harness.h"
#include "tests/weights_fixtures.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

static float g_data[64];

/* Two tensors back to back over g_data: a (4, 8) weight and a (32) bias. */
static void two_tensors(nas_wire_weights_msg *m, int type) {
    for (int i = 0; i < 64; i++)
        g_data[i] = (float)i - 20.5f;
    nas_safetensors_tensor t[2] = {
        {.name = "cell0/block0/a/pw1/weight", .ndim = 2, .shape = {4, 8}, .data = g_data},
        {.name = "cell0/block0/a/bn1/bias", .ndim = 1, .shape = {32}, .data = g_data + 32},
    };
    char err[NAS_ERR_LEN] = "";
    nas_wire_weights_msg_init(m, type);
    m->arch = 0x1122334455667788ull;
    m->seq = 9;
    ck_assert_msg(nas_wire_weights_manifest(m, t, 2, g_data, NULL, err) == NAS_OK, "%s", err);
    m->type = type;
}

/* Pack an envelope around a hand-made WeightsData (no validation). */
static uint8_t *pack_raw(int type, uint32_t protocol, uint32_t frames, Naspb__WeightsTensor **ts,
                         size_t n, uint64_t total, size_t *len) {
    Naspb__WeightsData d = NASPB__WEIGHTS_DATA__INIT;
    d.has_arch_hash = d.has_found = d.has_total_bytes = 1;
    d.arch_hash = 7;
    d.found = 1;
    d.total_bytes = total;
    d.n_tensors = n;
    d.tensors = ts;
    size_t bl = naspb__weights_data__get_packed_size(&d);
    uint8_t *body = nas_malloc(bl + 1);
    naspb__weights_data__pack(&d, body);
    Naspb__Envelope env = NASPB__ENVELOPE__INIT;
    env.has_protocol = env.has_type = env.has_payload = env.has_frames = 1;
    env.protocol = protocol;
    env.type = (uint32_t)type;
    env.payload.data = body;
    env.payload.len = bl;
    env.frames = frames;
    *len = naspb__envelope__get_packed_size(&env);
    uint8_t *out = nas_malloc(*len + 1);
    naspb__envelope__pack(&env, out);
    nas_free(body);
    return out;
}

static int decode_raw(Naspb__WeightsTensor **ts, size_t n, uint64_t total, uint32_t frames,
                      char *err) {
    size_t len = 0;
    uint8_t *buf = pack_raw(NAS_MSG_WEIGHTS_PUSH, NAS_PROTOCOL_VERSION, frames, ts, n, total, &len);
    nas_wire_weights_msg m;
    int rc = nas_wire_weights_decode(buf, len, &m, err);
    nas_wire_weights_msg_fini(&m);
    nas_free(buf);
    return rc;
}

START_TEST(test_weights_wire_round_trip) {
    nas_wire_weights_msg m, d;
    two_tensors(&m, NAS_MSG_WEIGHTS_PUSH);
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_wire_weights_encode(&m, &buf, &len, err), NAS_OK);
    ck_assert_int_eq(nas_wire_weights_decode(buf, len, &d, err), NAS_OK);
    ck_assert_int_eq(d.type, NAS_MSG_WEIGHTS_PUSH);
    ck_assert_uint_eq(d.arch, m.arch);
    ck_assert_uint_eq(d.seq, 9);
    ck_assert_uint_eq(d.n, 2);
    ck_assert_uint_eq(d.total_bytes, 256);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_str_eq(d.tensors[i].name, m.tensors[i].name);
        ck_assert_int_eq(d.tensors[i].ndim, m.tensors[i].ndim);
        ck_assert_uint_eq(d.tensors[i].offset, m.tensors[i].offset);
        ck_assert_uint_eq(d.tensors[i].checksum, m.tensors[i].checksum);
    }
    nas_free(buf);
    nas_wire_weights_msg_fini(&d);
    nas_wire_weights_msg_fini(&m);
    /* Pull, ack, error and a 'not found' reply; an Error also decodes with
     * the control decoder (any peer can read a refusal). */
    int types[4] = {NAS_MSG_WEIGHTS_PULL, NAS_MSG_WEIGHTS_ACK, NAS_MSG_ERROR,
                    NAS_MSG_WEIGHTS_REPLY};
    for (int k = 0; k < 4; k++) {
        nas_wire_weights_msg_init(&m, types[k]);
        m.arch = types[k] == NAS_MSG_ERROR ? 0 : 42;
        m.code = types[k] == NAS_MSG_WEIGHTS_ACK || types[k] == NAS_MSG_ERROR ? NAS_EFORMAT : 0;
        snprintf(m.message, sizeof m.message, "why");
        ck_assert_int_eq(nas_wire_weights_encode(&m, &buf, &len, err), NAS_OK);
        ck_assert_int_eq(nas_wire_weights_decode(buf, len, &d, err), NAS_OK);
        ck_assert_int_eq(d.type, types[k]);
        ck_assert_uint_eq(d.arch, types[k] == NAS_MSG_ERROR ? 0 : 42);
        if (types[k] == NAS_MSG_ERROR) {
            nas_wire_msg cm;
            ck_assert_int_eq(nas_wire_decode(buf, len, &cm, err), NAS_OK);
            ck_assert_int_eq(cm.u.error.code, NAS_EFORMAT);
            ck_assert_str_eq(cm.u.error.message, "why");
            nas_wire_msg_fini(&cm);
        }
        ck_assert_int_eq(d.found, 0);
        ck_assert_int_eq(d.code, m.code);
        nas_free(buf);
    }
}
END_TEST

/* Every bit of a tensor matters to its checksum, and so does its length,
 * whichever function made it. */
START_TEST(test_weights_wire_checksum_sees_every_bit) {
    for (int kind = 0; kind < NAS_CHECKSUM_KINDS; kind++) {
        uint8_t buf[77];
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)(i * 31 + 1);
        uint64_t base = nas_wire_weights_checksum(kind, buf, sizeof buf);
        ck_assert(nas_wire_weights_verify(kind, buf, sizeof buf, base));
        for (size_t i = 0; i < sizeof buf; i++)
            for (int b = 0; b < 8; b++) {
                buf[i] ^= (uint8_t)(1u << b);
                ck_assert_uint_ne(nas_wire_weights_checksum(kind, buf, sizeof buf), base);
                ck_assert(!nas_wire_weights_verify(kind, buf, sizeof buf, base));
                buf[i] ^= (uint8_t)(1u << b);
            }
        uint8_t zeros[64] = {0};
        ck_assert_uint_ne(nas_wire_weights_checksum(kind, zeros, 32),
                          nas_wire_weights_checksum(kind, zeros, 64));
        ck_assert_uint_eq(nas_wire_weights_checksum(kind, buf, sizeof buf), base);
    }
    /* The two functions differ, and an unknown kind never verifies. */
    uint8_t z[16] = {0};
    ck_assert_uint_ne(nas_wire_weights_checksum(NAS_CHECKSUM_FNV4, z, 16),
                      nas_wire_weights_checksum(NAS_CHECKSUM_XXH3, z, 16));
    ck_assert(!nas_wire_weights_verify(7, z, 16, nas_wire_weights_checksum(0, z, 16)));
    ck_assert(!nas_wire_weights_verify(-1, z, 16, nas_wire_weights_checksum(0, z, 16)));
}
END_TEST

/* Known answers.  FNV4's are the values files on disk from before XXH3
 * were written with (pinned since the first protocol; they must never
 * change).  XXH3's empty-input value is the one the xxHash specification
 * gives; the others pin the library's output, so a libxxhash that changed
 * XXH3 (it is declared stable since 0.8.0) would be caught here. */
START_TEST(test_weights_wire_checksum_known_answers) {
    uint8_t src[200];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 31 + 1);
    ck_assert_uint_eq(nas_wire_weights_checksum(NAS_CHECKSUM_FNV4, src, 77), 0x088d6a3c3c91f057ull);
    ck_assert_uint_eq(nas_wire_weights_checksum(NAS_CHECKSUM_FNV4, src, 32), 0xacb6ca6ae85c5efeull);
    ck_assert_uint_eq(nas_wire_weights_checksum(NAS_CHECKSUM_FNV4, src, 0), 0x6f5ca67cf47c745dull);
    ck_assert_uint_eq(nas_wire_weights_checksum(NAS_CHECKSUM_XXH3, src, 0), 0x2d06800538d394c2ull);
    ck_assert_uint_eq(nas_wire_weights_checksum(NAS_CHECKSUM_XXH3, src, 32), 0x6a8fc88d916579f2ull);
    ck_assert_uint_eq(nas_wire_weights_checksum(NAS_CHECKSUM_XXH3, src, 77), 0xeb5dd797fe194d91ull);
    ck_assert_uint_eq(nas_wire_weights_checksum(NAS_CHECKSUM_XXH3, src, 200),
                      0x011eec14a4209fe6ull);
    /* A long input goes through the SIMD kernel the library picks at run
     * time (AVX2/AVX-512 here); the value, from the library's baseline
     * SSE2 entry point, must not depend on which. */
    size_t n = 100003;
    uint8_t *big = nas_malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 31 + 1 + (i >> 9));
    ck_assert_uint_eq(nas_wire_weights_checksum(NAS_CHECKSUM_XXH3, big, n), 0x250c070eebbbb5d7ull);
    nas_free(big);
    ck_assert_str_eq(nas_wire_weights_checksum_name(NAS_CHECKSUM_XXH3), "xxh3");
    ck_assert_int_eq(nas_wire_weights_checksum_parse("fnv4"), NAS_CHECKSUM_FNV4);
    ck_assert_int_eq(nas_wire_weights_checksum_parse("xxh3"), NAS_CHECKSUM_XXH3);
    ck_assert_int_eq(nas_wire_weights_checksum_parse("crc32"), NAS_EFORMAT);
    ck_assert_int_eq(nas_wire_weights_checksum_parse(NULL), NAS_EFORMAT);
}
END_TEST

/* The copying checksum is the same value for every kind, length and
 * alignment, and copies exactly: small lengths (XXH3's short paths) and
 * long ones with ragged ends (its SIMD path). */
START_TEST(test_weights_wire_checksum_copy_matches) {
    enum { BIG = 3 * 16384 + 1001 };
    uint8_t *src = nas_malloc(BIG + 16), *dst = nas_malloc(BIG + 24);
    for (size_t i = 0; i < BIG + 16; i++)
        src[i] = (uint8_t)(i * 31 + 1 + (i >> 9));
    const size_t big[] = {16383, 16384, 16385, 2 * 16384, BIG};
    for (int kind = 0; kind < NAS_CHECKSUM_KINDS; kind++)
        for (size_t off = 0; off < 8; off++) {
            for (size_t k = 0; k < 29 + 5; k++) {
                size_t len = k < 29 ? k * 7 : big[k - 29];
                memset(dst, 0xee, BIG + 24);
                uint64_t c = nas_wire_weights_checksum_copy(kind, dst + (7 - off), src + off, len);
                ck_assert_uint_eq(c, nas_wire_weights_checksum(kind, src + off, len));
                ck_assert_int_eq(memcmp(dst + (7 - off), src + off, len), 0);
                ck_assert_uint_eq(dst[7 - off + len], 0xee); /* nothing past the end */
            }
        }
    nas_free(src);
    nas_free(dst);
}
END_TEST

/* The kind travels: a new manifest is XXH3 and says so on the wire; an
 * FNV4 manifest (a file from before XXH3, served again) encodes without
 * the field, exactly as the first protocol did, and decodes back to FNV4;
 * a kind this peer does not know is refused by name. */
START_TEST(test_weights_wire_checksum_kind_travels) {
    nas_wire_weights_msg m, d;
    two_tensors(&m, NAS_MSG_WEIGHTS_REPLY);
    ck_assert_int_eq(m.checksum_kind, NAS_CHECKSUM_XXH3);
    ck_assert_uint_eq(m.tensors[0].checksum,
                      nas_wire_weights_checksum(NAS_CHECKSUM_XXH3, g_data, 128));
    char err[NAS_ERR_LEN] = "";
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(nas_wire_weights_encode(&m, &buf, &len, err), NAS_OK);
    ck_assert_int_eq(nas_wire_weights_decode(buf, len, &d, err), NAS_OK);
    ck_assert_int_eq(d.checksum_kind, NAS_CHECKSUM_XXH3);
    nas_wire_weights_msg_fini(&d);
    nas_free(buf);

    /* FNV4: no checksum_kind field in the packed body. */
    nas_wire_weights_msg o;
    nas_wire_weights_msg_init(&o, NAS_MSG_WEIGHTS_REPLY);
    o.checksum_kind = NAS_CHECKSUM_FNV4;
    o.arch = m.arch;
    nas_safetensors_tensor t = {.name = "w", .ndim = 1, .shape = {64}, .data = g_data};
    ck_assert_int_eq(nas_wire_weights_manifest(&o, &t, 1, g_data, NULL, err), NAS_OK);
    ck_assert_uint_eq(o.tensors[0].checksum,
                      nas_wire_weights_checksum(NAS_CHECKSUM_FNV4, g_data, 256));
    ck_assert_int_eq(nas_wire_weights_encode(&o, &buf, &len, err), NAS_OK);
    Naspb__Envelope *env = naspb__envelope__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(env);
    Naspb__WeightsData *wd = naspb__weights_data__unpack(NULL, env->payload.len, env->payload.data);
    ck_assert_ptr_nonnull(wd);
    ck_assert_int_eq(wd->has_checksum_kind, 0);
    naspb__weights_data__free_unpacked(wd, NULL);
    naspb__envelope__free_unpacked(env, NULL);
    ck_assert_int_eq(nas_wire_weights_decode(buf, len, &d, err), NAS_OK);
    ck_assert_int_eq(d.checksum_kind, NAS_CHECKSUM_FNV4);
    nas_wire_weights_msg_fini(&d);
    nas_free(buf);
    nas_wire_weights_msg_fini(&o);

    /* Unknown kinds: refused locally on encode and by name on decode. */
    m.checksum_kind = 9;
    ck_assert_int_eq(nas_wire_weights_encode(&m, &buf, &len, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "checksum kind 9"));
    Naspb__WeightsTensor a = NASPB__WEIGHTS_TENSOR__INIT, *ap = &a;
    int64_t shape[1] = {4};
    a.path = "w";
    a.n_shape = 1;
    a.shape = shape;
    a.has_offset = a.has_checksum = 1;
    Naspb__WeightsData raw = NASPB__WEIGHTS_DATA__INIT;
    raw.has_arch_hash = raw.has_found = raw.has_total_bytes = raw.has_checksum_kind = 1;
    raw.found = 1;
    raw.total_bytes = 16;
    raw.checksum_kind = 9;
    raw.n_tensors = 1;
    raw.tensors = &ap;
    uint8_t body[256];
    Naspb__Envelope e = NASPB__ENVELOPE__INIT;
    e.has_protocol = e.has_type = e.has_payload = e.has_frames = 1;
    e.protocol = NAS_PROTOCOL_VERSION;
    e.type = NAS_MSG_WEIGHTS_PUSH;
    e.frames = 1;
    e.payload.len = naspb__weights_data__pack(&raw, body);
    e.payload.data = body;
    uint8_t packed[512];
    len = naspb__envelope__pack(&e, packed);
    ck_assert_int_eq(nas_wire_weights_decode(packed, len, &d, err), NAS_EFORMAT);
    ck_assert_msg(strstr(err, "checksum_kind = 9") != NULL, "%s", err);
    m.checksum_kind = NAS_CHECKSUM_XXH3;
    nas_wire_weights_msg_fini(&m);
}
END_TEST

START_TEST(test_weights_wire_refuses_bad_manifests_by_name) {
    char err[NAS_ERR_LEN] = "";
    Naspb__WeightsTensor a = NASPB__WEIGHTS_TENSOR__INIT, b = NASPB__WEIGHTS_TENSOR__INIT;
    int64_t sa[2] = {4, 8}, sb[1] = {32};
    a.path = "w";
    a.n_shape = 2;
    a.shape = sa;
    a.has_offset = a.has_checksum = 1;
    a.offset = 0;
    b.path = "b";
    b.n_shape = 1;
    b.shape = sb;
    b.has_offset = b.has_checksum = 1;
    b.offset = 128;
    Naspb__WeightsTensor *ts[2] = {&a, &b};
    ck_assert_int_eq(decode_raw(ts, 2, 256, 1, err), NAS_OK);
    /* A gap between tensors. */
    b.offset = 132;
    ck_assert_int_eq(decode_raw(ts, 2, 260, 1, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "'b'"));
    ck_assert_ptr_nonnull(strstr(err, "shapes and offsets disagree"));
    b.offset = 128;
    /* The shape holds more than the manifest has room for. */
    sb[0] = 33;
    ck_assert_int_eq(decode_raw(ts, 2, 256, 1, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "total_bytes"));
    sb[0] = -1;
    ck_assert_int_eq(decode_raw(ts, 2, 256, 1, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "invalid shape"));
    sb[0] = 32;
    /* Overflowing product. */
    int64_t big[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
    a.shape = big;
    ck_assert_int_eq(decode_raw(ts, 2, 256, 1, err), NAS_EFORMAT);
    a.shape = sa;
    /* The same path twice. */
    b.path = "w";
    ck_assert_int_eq(decode_raw(ts, 2, 256, 1, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "twice"));
    b.path = "b";
    /* Missing checksum, empty path. */
    b.has_checksum = 0;
    ck_assert_int_eq(decode_raw(ts, 2, 256, 1, err), NAS_EFORMAT);
    b.has_checksum = 1;
    b.path = "";
    ck_assert_int_eq(decode_raw(ts, 2, 256, 1, err), NAS_EFORMAT);
    b.path = "b";
    /* Frames announced must match the data. */
    ck_assert_int_eq(decode_raw(ts, 2, 256, 0, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "frames"));
    /* Another protocol version, a control-socket type, garbage. */
    size_t len = 0;
    nas_wire_weights_msg m;
    uint8_t *buf = pack_raw(NAS_MSG_WEIGHTS_PUSH, 99, 1, ts, 2, 256, &len);
    ck_assert_int_eq(nas_wire_weights_decode(buf, len, &m, err), NAS_EVERSION);
    nas_free(buf);
    buf = pack_raw(NAS_MSG_TASK, NAS_PROTOCOL_VERSION, 1, ts, 2, 256, &len);
    /* (an Error is the one control type the bulk socket speaks: refusals) */
    ck_assert_int_eq(nas_wire_weights_decode(buf, len, &m, err), NAS_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "weight store endpoint (listen.weights)"));
    ck_assert_int_eq(nas_wire_weights_decode(buf, 5, &m, err), NAS_EFORMAT);
    nas_free(buf);
    buf = pack_raw(NAS_MSG_WEIGHTS_ACK + 7, NAS_PROTOCOL_VERSION, 1, ts, 2, 256, &len);
    ck_assert_int_eq(nas_wire_weights_decode(buf, len, &m, err), NAS_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "not a weights message"));
    nas_free(buf);
    ck_assert_int_eq(nas_wire_weights_decode(NULL, 0, &m, err), NAS_EFORMAT);
}
END_TEST

/* A manifest whose tensors are not back to back in memory is a caller
 * bug reported as such, not sent. */
START_TEST(test_weights_wire_manifest_needs_contiguous_tensors) {
    float d[8] = {0};
    nas_safetensors_tensor t[2] = {
        {.name = "a", .ndim = 1, .shape = {2}, .data = d},
        {.name = "b", .ndim = 1, .shape = {2}, .data = d + 3},
    };
    nas_wire_weights_msg m;
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PUSH);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_wire_weights_manifest(&m, t, 2, d, NULL, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "'b'"));
    ck_assert_ptr_null(m.tensors);
}
END_TEST

/* Real sockets: a frame whose bytes do not match the manifest is refused
 * with the tensor named; the next message on the socket is unaffected. */
START_TEST(test_weights_wire_recv_verifies_frames) {
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER), *dealer = zmq_socket(ctx, ZMQ_DEALER);
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_wire_socket_setup(router, err), NAS_OK);
    ck_assert_int_eq(nas_wire_socket_setup(dealer, err), NAS_OK);
    ck_assert_int_eq(zmq_bind(router, "inproc://ww"), 0);
    ck_assert_int_eq(zmq_connect(dealer, "inproc://ww"), 0);
    nas_wire_weights_msg m;
    two_tensors(&m, NAS_MSG_WEIGHTS_PUSH);
    uint8_t *env = NULL;
    size_t env_len = 0;
    ck_assert_int_eq(nas_wire_weights_encode(&m, &env, &env_len, err), NAS_OK);
    uint8_t bad[256];
    memcpy(bad, g_data, sizeof bad);
    bad[200] ^= 0x40; /* inside the bias */
    /* 1: corrupted bytes; 2: a short frame; 3: no frame; 4: one too many; 5: good. */
    zmq_send(dealer, env, env_len, ZMQ_SNDMORE);
    zmq_send(dealer, bad, sizeof bad, 0);
    zmq_send(dealer, env, env_len, ZMQ_SNDMORE);
    zmq_send(dealer, g_data, 200, 0);
    zmq_send(dealer, env, env_len, 0);
    zmq_send(dealer, env, env_len, ZMQ_SNDMORE);
    zmq_send(dealer, g_data, 256, ZMQ_SNDMORE);
    zmq_send(dealer, "x", 1, 0);
    ck_assert_int_eq(nas_wire_weights_send(dealer, NULL, 0, &m, g_data, 0, err), NAS_OK);
    nas_wire_weights_packet pkt;
    ck_assert_int_eq(nas_wire_weights_recv(router, 1, 0, &pkt, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "checksum mismatch in tensor 'cell0/block0/a/bn1/bias'"));
    ck_assert_uint_gt(pkt.id_len, 0); /* the sender can be answered */
    ck_assert_int_eq(nas_wire_weights_recv(router, 1, 0, &pkt, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "200 bytes"));
    ck_assert_int_eq(nas_wire_weights_recv(router, 1, 0, &pkt, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "missing"));
    ck_assert_int_eq(nas_wire_weights_recv(router, 1, 0, &pkt, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "more frames"));
    ck_assert_int_eq(nas_wire_weights_recv(router, 1, 0, &pkt, err), NAS_OK);
    ck_assert_int_eq(memcmp(pkt.data, g_data, 256), 0);
    nas_safetensors_tensor *view = NULL;
    ck_assert_int_eq(nas_wire_weights_view(&pkt, &view, err), NAS_OK);
    ck_assert_int_eq(memcmp(view[1].data, g_data + 32, 128), 0);
    nas_free(view);
    nas_wire_weights_packet_fini(&pkt);
    /* A peer of the first protocol: FNV4 checksums and no checksum_kind.
     * Verified with FNV4; the same checksums claimed as XXH3 are not. */
    nas_wire_weights_msg o;
    nas_wire_weights_msg_init(&o, NAS_MSG_WEIGHTS_PUSH);
    o.checksum_kind = NAS_CHECKSUM_FNV4;
    o.arch = 5;
    nas_safetensors_tensor t = {.name = "w", .ndim = 1, .shape = {64}, .data = g_data};
    ck_assert_int_eq(nas_wire_weights_manifest(&o, &t, 1, g_data, NULL, err), NAS_OK);
    ck_assert_int_eq(nas_wire_weights_send(dealer, NULL, 0, &o, g_data, 0, err), NAS_OK);
    o.checksum_kind = NAS_CHECKSUM_XXH3;
    ck_assert_int_eq(nas_wire_weights_send(dealer, NULL, 0, &o, g_data, 0, err), NAS_OK);
    ck_assert_int_eq(nas_wire_weights_recv(router, 1, 0, &pkt, err), NAS_OK);
    ck_assert_int_eq(pkt.msg.checksum_kind, NAS_CHECKSUM_FNV4);
    nas_wire_weights_packet_fini(&pkt);
    ck_assert_int_eq(nas_wire_weights_recv(router, 1, 0, &pkt, err), NAS_EFORMAT);
    ck_assert_msg(strstr(err, "checksum mismatch in tensor 'w' (xxh3") != NULL, "%s", err);
    nas_wire_weights_msg_fini(&o);
    ck_assert_int_eq(nas_wire_weights_recv(router, 1, 1, &pkt, err), NAS_EAGAIN);
    nas_free(env);
    nas_wire_weights_msg_fini(&m);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("weights_wire");
    TCase *tc = tcase_create("wire");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_weights_wire_round_trip);
    tcase_add_test(tc, test_weights_wire_checksum_sees_every_bit);
    tcase_add_test(tc, test_weights_wire_checksum_known_answers);
    tcase_add_test(tc, test_weights_wire_checksum_copy_matches);
    tcase_add_test(tc, test_weights_wire_checksum_kind_travels);
    tcase_add_test(tc, test_weights_wire_refuses_bad_manifests_by_name);
    tcase_add_test(tc, test_weights_wire_manifest_needs_contiguous_tensors);
    tcase_add_test(tc, test_weights_wire_recv_verifies_frames);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
