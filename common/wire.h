/*
 * wire.h - the nasd wire protocol in C terms: typed messages, their
 * encoding into protobuf Envelopes (proto/nas.proto), and multipart
 * send/receive on ZeroMQ sockets.  docs/PROTOCOL.md describes the
 * exchanges; this header is the contract of the bytes.
 *
 * The rest of nasd never touches protobuf-c: it fills a nas_wire_msg and
 * calls nas_wire_encode(), or receives one from nas_wire_decode(), which
 * has already checked everything (protocol version, known type, required
 * fields, finite and in-range numbers, string lengths).  A decoded message
 * can be used without further checks.
 *
 * Invariants:
 *  - Decoding is a pure function of (bytes, length): no clock, no globals.
 *  - Every string in a decoded message is NUL-terminated and shorter than
 *    its buffer; the one variable-size field (StatusReply.json) is on the
 *    heap and freed by nas_wire_msg_fini().
 *  - Encoding refuses a message that decoding would refuse, so a bug on
 *    one side shows up as a local error, not as a remote one.
 *
 * The socket helpers link against libzmq, which every binary that links
 * libnascommon already links through libnasmaster or libnasworker.
 */
#ifndef NAS_WIRE_H
#define NAS_WIRE_H

#include "common/fidelity.h"

#include <stddef.h>
#include <stdint.h>

#define NAS_PROTOCOL_VERSION 1

/* Largest envelope accepted (1 MiB): a Task or Result is a few KiB, a
 * status document well under this. */
#define NAS_WIRE_MAX_ENVELOPE (1u << 20)
/* Largest single frame a socket accepts (ZMQ_MAXMSGSIZE, 256 MiB): room for
 * weight frames; anything bigger makes ZeroMQ drop the connection. */
#define NAS_WIRE_MAX_FRAME (256LL << 20)
/* Largest frame the master's control and status sockets accept: their
 * messages are one envelope, and a few times its limit still reaches the
 * decoder, which answers it with Error; ZeroMQ drops a peer announcing more
 * (it would set the whole announced size aside, master/campaign_net.c). */
#define NAS_WIRE_MAX_CONTROL_FRAME (4LL << 20)
/* Raw frames after one envelope, at most. */
#define NAS_WIRE_MAX_FRAMES 64
/* ROUTER identities are at most 255 bytes (ZeroMQ's own limit). */
#define NAS_WIRE_ID_MAX 255

#define NAS_WIRE_NAME_MAX   64   /* worker names, data set names, versions */
#define NAS_WIRE_HOST_MAX   256  /* host names */
#define NAS_WIRE_PATH_MAX   1024 /* data directory hints */
#define NAS_WIRE_TEXT_MAX   512  /* genome text (equals NAS_GENOME_TEXT_MAX) */
#define NAS_WIRE_REASON_MAX 256  /* failure reasons and error messages */
#define NAS_WIRE_MAX_HELD   64   /* results a Register may announce */
#define NAS_WIRE_MAX_CURVE  1024 /* epochs in a learning curve */
#define NAS_WIRE_MAX_EPOCHS 100000

/* Message types: the values of naspb MsgType. */
enum nas_msg_type {
    NAS_MSG_NONE = 0,
    NAS_MSG_REGISTER = 1,
    NAS_MSG_READY = 2,
    NAS_MSG_HEARTBEAT = 3,
    NAS_MSG_TASK = 4,
    NAS_MSG_PROGRESS = 5,
    NAS_MSG_RESULT = 6,
    NAS_MSG_FAILURE = 7,
    NAS_MSG_CANCEL = 8,
    NAS_MSG_ACK = 9,
    NAS_MSG_ERROR = 10,
    NAS_MSG_DISCONNECT = 11,
    NAS_MSG_STATUS_REQUEST = 12,
    NAS_MSG_STATUS_REPLY = 13,
    NAS_MSG_COUNT = 14,
};

/* How a worker evaluates a task: the values of naspb EvalMode. */
enum nas_eval_mode {
    NAS_EVAL_TRAIN = 0,
    NAS_EVAL_TABULAR = 1,
    NAS_EVAL_SYNTHETIC = 2,
    NAS_EVAL_MODE_COUNT = 3,
};

/* The key of a lease. */
typedef struct nas_task_ref {
    uint64_t task_id;
    uint32_t attempt; /* 1-based */
} nas_task_ref;

/* What a worker computes on, from its Register; empty / 0 from workers
 * older than these fields. */
typedef struct nas_wire_engine {
    char blas[NAS_WIRE_NAME_MAX];         /* library and version, "OpenBLAS 0.3.21" */
    char blas_kernels[NAS_WIRE_NAME_MAX]; /* its kernel set, "SkylakeX" */
    char isa[NAS_WIRE_NAME_MAX];          /* the CPU's vector ISA, "avx512+bf16" */
    uint32_t blas_threads;                /* threads per BLAS call */
    char gemm[NAS_WIRE_NAME_MAX];         /* what runs the GEMMs, nas_gemm_describe() */
} nas_wire_engine;

typedef struct nas_wire_register {
    char name[NAS_WIRE_NAME_MAX];
    char host[NAS_WIRE_HOST_MAX];
    uint32_t cores;
    char version[NAS_WIRE_NAME_MAX];
    uint32_t protocol;
    int n_held;                           /* 0..NAS_WIRE_MAX_HELD */
    nas_task_ref held[NAS_WIRE_MAX_HELD]; /* finished, not yet acknowledged */
    int has_running;                      /* 1: still evaluating `running` */
    nas_task_ref running;
    nas_wire_engine engine;
    uint64_t incarnation; /* random per worker process; 0 = not sent */
} nas_wire_register;

typedef struct nas_wire_task {
    uint64_t task_id;
    uint32_t attempt;
    char genome[NAS_WIRE_TEXT_MAX];   /* text form, non-empty */
    nas_fidelity fidelity;            /* passes nas_fidelity_validate() */
    char dataset[NAS_WIRE_NAME_MAX];  /* may be empty (tabular, synthetic) */
    char data_dir[NAS_WIRE_PATH_MAX]; /* may be empty */
    int has_parent;
    uint64_t parent_hash;
    int mode;         /* enum nas_eval_mode */
    int push_weights; /* 1: push the trained weights (docs/PROTOCOL.md s7) */
} nas_wire_task;

typedef struct nas_wire_progress {
    uint64_t task_id;
    uint32_t attempt;
    int epoch;         /* 1..epochs */
    int epochs;        /* 1..NAS_WIRE_MAX_EPOCHS */
    double train_loss; /* finite, >= 0 */
    double val_loss;   /* finite, >= 0 */
    double val_acc;    /* [0, 1] */
} nas_wire_progress;

typedef struct nas_wire_result {
    uint64_t task_id;
    uint32_t attempt;
    double val_acc;  /* [0, 1]: the search signal */
    double val_loss; /* finite, >= 0 */
    int has_test;
    double test_acc;                 /* [0, 1] when has_test */
    int n_curve;                     /* 0..NAS_WIRE_MAX_CURVE */
    float curve[NAS_WIRE_MAX_CURVE]; /* validation accuracy per epoch, each in [0, 1] */
    int64_t params;                  /* >= 0 */
    int64_t macs;                    /* >= 0 */
    double seconds;                  /* finite, >= 0 */
    double images_per_s;             /* finite, >= 0 */
    char worker[NAS_WIRE_NAME_MAX];
} nas_wire_result;

typedef struct nas_wire_failure {
    uint64_t task_id;
    uint32_t attempt;
    int code; /* negative nas_err */
    char reason[NAS_WIRE_REASON_MAX];
    int give_back;   /* 1: shutdown, not counted as an attempt */
    int environment; /* 1: the worker's environment failed, not the architecture */
} nas_wire_failure;

typedef struct nas_wire_ack {
    uint64_t task_id;
    uint32_t attempt;
    int duplicate;
} nas_wire_ack;

/* A Heartbeat's body: empty, except in the master's answer to Register,
 * which names the weight store's endpoint (docs/PROTOCOL.md). */
typedef struct nas_wire_heartbeat {
    char weights[NAS_WIRE_NAME_MAX * 4]; /* "" or an endpoint, e.g. tcp://0.0.0.0:5556 */
} nas_wire_heartbeat;

typedef struct nas_wire_error {
    int code; /* negative nas_err */
    char message[NAS_WIRE_REASON_MAX];
} nas_wire_error;

/* One message of any type.  Only the member named by `type` is meaningful;
 * Ready has no body; a Heartbeat may carry the weights endpoint. */
typedef struct nas_wire_msg {
    int type;        /* enum nas_msg_type */
    uint64_t seq;    /* sender's sequence number, 0 if unused */
    uint32_t frames; /* raw frames that follow the envelope */
    union {
        nas_wire_register reg;
        nas_wire_task task;
        nas_wire_progress progress;
        nas_wire_result result;
        nas_wire_failure failure;
        nas_task_ref cancel;
        nas_wire_ack ack;
        nas_wire_error error;
        nas_wire_heartbeat heartbeat;
        struct {
            char disconnect[NAS_WIRE_REASON_MAX]; /* reason */
            int disconnect_done;                  /* master: the campaign is over */
        };
        char status_what[NAS_WIRE_NAME_MAX]; /* StatusRequest */
        char *status_json;                   /* StatusReply, heap, may be NULL */
    } u;
} nas_wire_msg;

/* ---- messages ------------------------------------------------------------ */

/* Zero a message and set its type (the body is all zeros / empty). */
void nas_wire_msg_init(nas_wire_msg *m, int type);

/* Free what a decoded (or hand-built) message owns: the StatusReply JSON.
 * Safe to call twice and on a zeroed message. */
void nas_wire_msg_fini(nas_wire_msg *m);

/* "register", "task", ...; "unknown" for values outside the enum. */
const char *nas_wire_type_name(int type);
const char *nas_eval_mode_name(int mode);
/* Parse "train", "tabular", "synthetic"; -1 otherwise. */
int nas_eval_mode_parse(const char *s);

/* Check every field of m as decode would.  NAS_OK, or NAS_ERANGE /
 * NAS_EINVAL with err naming the message and field ("result.val_acc = 1.5
 * is outside [0, 1]"). */
int nas_wire_validate(const nas_wire_msg *m, char *err);

/* Encode m into a new buffer *out (free with nas_free), length *len.
 * Validates first; returns NAS_OK or a negative error with err filled. */
int nas_wire_encode(const nas_wire_msg *m, uint8_t **out, size_t *len, char *err);

/* Decode one envelope.  Pure and size-bounded: refuses more than
 * NAS_WIRE_MAX_ENVELOPE bytes, a truncated or malformed protobuf
 * (NAS_EFORMAT), another protocol version (NAS_EVERSION), an unknown type
 * (NAS_EPROTO) and any invalid field (NAS_ERANGE/NAS_EINVAL), always with
 * err naming the problem.  On success *m owns its heap parts (see fini);
 * on failure *m is left zeroed. */
int nas_wire_decode(const void *buf, size_t len, nas_wire_msg *m, char *err);

/* ---- fidelity <-> protobuf helpers shared by tests ------------------------- */

/* Field-by-field equality of two fidelities (floats compared exactly). */
int nas_wire_fidelity_equal(const nas_fidelity *a, const nas_fidelity *b);

/* ---- ZeroMQ ---------------------------------------------------------------- */

/* Apply nasd's socket limits: ZMQ_MAXMSGSIZE = NAS_WIRE_MAX_FRAME, linger
 * 0 (a dead peer must never block shutdown). */
int nas_wire_socket_setup(void *sock, char *err);

/* The frame-level steps both codecs (this one and wire_weights.h) share.
 * send_frame: one zmq_send, NAS_EAGAIN kept apart from other failures so a
 * caller can tell a full pipe (or a peer that stopped reading) from a
 * broken socket.  more_parts: does the message being read have another
 * part?  drain_parts: read the message to its end, so the next recv starts
 * at the next message whatever went wrong in this one. */
int nas_wire_send_frame(void *sock, const void *data, size_t len, int flags, char *err);
int nas_wire_more_parts(void *sock);
void nas_wire_drain_parts(void *sock);

/* A raw frame: bytes and length (not owned by the frame). */
typedef struct nas_wire_frame {
    const void *data;
    size_t len;
} nas_wire_frame;

/* Send [identity] + envelope(m) + frames on sock.  identity may be NULL
 * (DEALER); m->frames is set from nframes.  Non-blocking when
 * dontwait != 0 (NAS_EAGAIN when the pipe is full). */
int nas_wire_send(void *sock, const void *identity, size_t id_len, const nas_wire_msg *m,
                  const nas_wire_frame *frames, size_t nframes, int dontwait, char *err);

/* A received multipart message. */
typedef struct nas_wire_packet {
    uint8_t identity[NAS_WIRE_ID_MAX]; /* ROUTER only */
    size_t id_len;
    char user_id[NAS_WIRE_NAME_MAX]; /* ZAP User-Id (CurveZMQ: the key's name), "" if none */
    nas_wire_msg msg;                /* valid when nas_wire_recv returned NAS_OK */
    size_t n_frames;                 /* raw frames received after the envelope */
    void *frame_data[NAS_WIRE_MAX_FRAMES];
    size_t frame_len[NAS_WIRE_MAX_FRAMES];
} nas_wire_packet;

/* Receive one whole multipart message (identity first when router != 0).
 * Returns NAS_OK with pkt->msg decoded; NAS_EAGAIN when dontwait and
 * nothing is waiting; NAS_EIO on a socket error; or the decode error with
 * err filled and pkt->identity still set, so the caller can answer the
 * sender with an Error.  Every frame of the message is consumed either
 * way.  Release with nas_wire_packet_fini(). */
int nas_wire_recv(void *sock, int router, int dontwait, nas_wire_packet *pkt, char *err);
void nas_wire_packet_fini(nas_wire_packet *pkt);

#endif
