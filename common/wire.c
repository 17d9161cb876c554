/*
 * wire.c - typed nasd messages to and from protobuf Envelopes (see wire.h
 * for the contract; their framing on ZeroMQ sockets is wire_zmq.c).
 *
 * Decoding goes in three steps, and nothing the peer sent is used before
 * the last one passes: unpack the Envelope (size-bounded, version and type
 * checked), unpack the payload of that type into a protobuf-c struct and
 * copy it into the fixed-size C struct (strings bounded, required fields
 * present), then run the same validation the encoder runs.
 */
#include "common/wire.h"
#include "common/utf8.h"
#include "common/alloc.h"
#include "common/err.h"
#include "proto/nas.pb-c.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ---- names -------------------------------------------------------------------

/* Indexed by enum nas_msg_type, which mirrors naspb MsgType value for value;
 * logs and error messages use these names. */
static const char *const type_names[NAS_MSG_COUNT] = {
    "none",    "register", "ready", "heartbeat", "task",       "progress",       "result",
    "failure", "cancel",   "ack",   "error",     "disconnect", "status_request", "status_reply",
};

/* Never NULL: a peer may put any number in Envelope.type, and that number
 * ends up in log lines. */
const char *nas_wire_type_name(int type) {
    if (type < 0 || type >= NAS_MSG_COUNT) return "unknown";
    return type_names[type];
}

/* The names nas-master's campaign files and nas-worker use for the modes. */
static const char *const mode_names[NAS_EVAL_MODE_COUNT] = {"train", "tabular", "synthetic"};

const char *nas_eval_mode_name(int mode) {
    if (mode < 0 || mode >= NAS_EVAL_MODE_COUNT) return "unknown";
    return mode_names[mode];
}

int nas_eval_mode_parse(const char *s) {
    for (int i = 0; s && i < NAS_EVAL_MODE_COUNT; i++)
        if (strcmp(s, mode_names[i]) == 0) return i;
    return -1;
}

/* Zeroing the whole union matters: absent optional fields must read as 0,
 * and strings as empty, whichever member the caller fills in afterwards. */
void nas_wire_msg_init(nas_wire_msg *m, int type) {
    memset(m, 0, sizeof *m);
    m->type = type;
}

/* Only StatusReply owns heap memory; every other body is fixed-size. */
void nas_wire_msg_fini(nas_wire_msg *m) {
    if (!m) return;
    if (m->type == NAS_MSG_STATUS_REPLY && m->u.status_json) {
        nas_free(m->u.status_json);
        m->u.status_json = NULL;
    }
}

/* Compared field by field rather than with memcmp, because the struct has
 * padding bytes whose contents are not defined. */
int nas_wire_fidelity_equal(const nas_fidelity *a, const nas_fidelity *b) {
    return a->resolution == b->resolution && a->train_subset == b->train_subset &&
           a->val_size == b->val_size && a->epochs == b->epochs && a->batch == b->batch &&
           a->channels == b->channels && a->cells == b->cells && a->lr == b->lr &&
           a->warmup_epochs == b->warmup_epochs && a->momentum == b->momentum &&
           a->nesterov == b->nesterov && a->weight_decay == b->weight_decay &&
           a->grad_clip == b->grad_clip && a->label_smoothing == b->label_smoothing &&
           a->drop_path == b->drop_path && a->augment == b->augment && a->test == b->test &&
           a->seed == b->seed && a->time_limit_s == b->time_limit_s && a->threads == b->threads &&
           a->cutout == b->cutout && a->aux_weight == b->aux_weight &&
           a->progressive_start == b->progressive_start && a->width_mult == b->width_mult;
}

// ---- encoding --------------------------------------------------------------------

/* Every field is written, present, even when it equals the default: the
 * worker must train with the master's numbers, not its own defaults. */
static void fidelity_to_pb(const nas_fidelity *f, Naspb__Fidelity *p) {
#define SET(field, val) (p->has_##field = 1, p->field = (val))
    SET(resolution, f->resolution);
    SET(train_subset, f->train_subset);
    SET(val_size, f->val_size);
    SET(epochs, f->epochs);
    SET(batch, f->batch);
    SET(channels, f->channels);
    SET(cells, f->cells);
    SET(lr, f->lr);
    SET(warmup_epochs, f->warmup_epochs);
    SET(momentum, f->momentum);
    SET(nesterov, f->nesterov != 0);
    SET(weight_decay, f->weight_decay);
    SET(grad_clip, f->grad_clip);
    SET(label_smoothing, f->label_smoothing);
    SET(drop_path, f->drop_path);
    SET(augment, f->augment != 0);
    SET(test, f->test != 0);
    SET(seed, f->seed);
    SET(time_limit_s, f->time_limit_s);
    SET(threads, f->threads);
    SET(cutout, f->cutout);
    SET(aux_weight, f->aux_weight);
    SET(progressive_start, f->progressive_start);
    SET(width_mult, f->width_mult);
}

/* Pack a protobuf-c message into a new heap buffer. */
/* protobuf-c packs into a caller buffer of the exact packed size; one byte
 * is allocated for an empty message so the pointer is never NULL. */
static int pack_pb(const ProtobufCMessage *pb, uint8_t **out, size_t *len) {
    size_t n = protobuf_c_message_get_packed_size(pb);
    uint8_t *buf = nas_malloc(n ? n : 1);
    if (!buf) return NAS_ENOMEM;
    *len = protobuf_c_message_pack(pb, buf);
    *out = buf;
    return NAS_OK;
}

/* Pack the body of m (everything but the envelope). */
/* Build the protobuf-c struct of m's type on the stack, pointing at m's own
 * strings and arrays (nothing is copied), and pack it. */
static int pack_body(const nas_wire_msg *m, uint8_t **out, size_t *len) {
    switch (m->type) {
    case NAS_MSG_REGISTER: {
        const nas_wire_register *r = &m->u.reg;
        Naspb__Register p = NASPB__REGISTER__INIT;
        Naspb__TaskRef refs[NAS_WIRE_MAX_HELD], *ptrs[NAS_WIRE_MAX_HELD], running;
        p.name = (char *)r->name;
        p.host = (char *)r->host;
        p.version = (char *)r->version;
        p.has_cores = 1, p.cores = r->cores;
        p.has_protocol = 1, p.protocol = r->protocol;
        p.blas = (char *)r->engine.blas;
        p.blas_kernels = (char *)r->engine.blas_kernels;
        p.isa = (char *)r->engine.isa;
        p.gemm = (char *)r->engine.gemm;
        p.has_blas_threads = 1, p.blas_threads = r->engine.blas_threads;
        p.has_incarnation = r->incarnation != 0, p.incarnation = r->incarnation;
        for (int i = 0; i < r->n_held; i++) {
            naspb__task_ref__init(&refs[i]);
            refs[i].has_task_id = refs[i].has_attempt = 1;
            refs[i].task_id = r->held[i].task_id;
            refs[i].attempt = r->held[i].attempt;
            ptrs[i] = &refs[i];
        }
        p.n_held = (size_t)r->n_held;
        p.held = ptrs;
        if (r->has_running) {
            naspb__task_ref__init(&running);
            running.has_task_id = running.has_attempt = 1;
            running.task_id = r->running.task_id;
            running.attempt = r->running.attempt;
            p.running = &running;
        }
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_READY: {
        Naspb__Ready p = NASPB__READY__INIT;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_HEARTBEAT: {
        Naspb__Heartbeat p = NASPB__HEARTBEAT__INIT;
        /* Only when announced: every other heartbeat stays empty. */
        if (m->u.heartbeat.weights[0]) p.weights = (char *)m->u.heartbeat.weights;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_TASK: {
        const nas_wire_task *t = &m->u.task;
        Naspb__Task p = NASPB__TASK__INIT;
        Naspb__Fidelity f = NASPB__FIDELITY__INIT;
        fidelity_to_pb(&t->fidelity, &f);
        p.has_task_id = 1, p.task_id = t->task_id;
        p.has_attempt = 1, p.attempt = t->attempt;
        p.genome = (char *)t->genome;
        p.fidelity = &f;
        p.dataset = (char *)t->dataset;
        p.data_dir = (char *)t->data_dir;
        if (t->has_parent) p.has_parent_hash = 1, p.parent_hash = t->parent_hash;
        if (t->push_weights) p.has_push_weights = 1, p.push_weights = 1;
        p.has_mode = 1, p.mode = (uint32_t)t->mode;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_PROGRESS: {
        const nas_wire_progress *g = &m->u.progress;
        Naspb__Progress p = NASPB__PROGRESS__INIT;
        p.has_task_id = 1, p.task_id = g->task_id;
        p.has_attempt = 1, p.attempt = g->attempt;
        p.has_epoch = 1, p.epoch = g->epoch;
        p.has_epochs = 1, p.epochs = g->epochs;
        p.has_train_loss = 1, p.train_loss = g->train_loss;
        p.has_val_loss = 1, p.val_loss = g->val_loss;
        p.has_val_acc = 1, p.val_acc = g->val_acc;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_RESULT: {
        const nas_wire_result *r = &m->u.result;
        Naspb__Result p = NASPB__RESULT__INIT;
        p.has_task_id = 1, p.task_id = r->task_id;
        p.has_attempt = 1, p.attempt = r->attempt;
        p.has_val_acc = 1, p.val_acc = r->val_acc;
        p.has_val_loss = 1, p.val_loss = r->val_loss;
        if (r->has_test) p.has_test_acc = 1, p.test_acc = r->test_acc;
        p.n_curve = (size_t)r->n_curve;
        p.curve = (float *)r->curve;
        p.has_params = 1, p.params = r->params;
        p.has_macs = 1, p.macs = r->macs;
        p.has_seconds = 1, p.seconds = r->seconds;
        p.has_images_per_s = 1, p.images_per_s = r->images_per_s;
        p.worker = (char *)r->worker;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_FAILURE: {
        const nas_wire_failure *f = &m->u.failure;
        Naspb__Failure p = NASPB__FAILURE__INIT;
        p.has_task_id = 1, p.task_id = f->task_id;
        p.has_attempt = 1, p.attempt = f->attempt;
        p.has_code = 1, p.code = f->code;
        p.reason = (char *)f->reason;
        p.has_give_back = 1, p.give_back = f->give_back != 0;
        if (f->environment) p.has_environment = 1, p.environment = 1;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_CANCEL: {
        Naspb__Cancel p = NASPB__CANCEL__INIT;
        p.has_task_id = 1, p.task_id = m->u.cancel.task_id;
        p.has_attempt = 1, p.attempt = m->u.cancel.attempt;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_ACK: {
        Naspb__Ack p = NASPB__ACK__INIT;
        p.has_task_id = 1, p.task_id = m->u.ack.task_id;
        p.has_attempt = 1, p.attempt = m->u.ack.attempt;
        p.has_duplicate = 1, p.duplicate = m->u.ack.duplicate != 0;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_ERROR: {
        Naspb__Error p = NASPB__ERROR__INIT;
        p.has_code = 1, p.code = m->u.error.code;
        p.message = (char *)m->u.error.message;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_DISCONNECT: {
        Naspb__Disconnect p = NASPB__DISCONNECT__INIT;
        p.reason = (char *)m->u.disconnect;
        if (m->u.disconnect_done) p.has_done = 1, p.done = 1;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_STATUS_REQUEST: {
        Naspb__StatusRequest p = NASPB__STATUS_REQUEST__INIT;
        p.what = (char *)m->u.status_what;
        return pack_pb(&p.base, out, len);
    }
    case NAS_MSG_STATUS_REPLY: {
        Naspb__StatusReply p = NASPB__STATUS_REPLY__INIT;
        p.json = m->u.status_json;
        return pack_pb(&p.base, out, len);
    }
    default:
        return NAS_EPROTO;
    }
}

/* The body is packed first and then wrapped, so the envelope size check
 * sees the real size of what would go on the wire. */
int nas_wire_encode(const nas_wire_msg *m, uint8_t **out, size_t *len, char *err) {
    int rc = nas_wire_validate(m, err);
    if (rc < 0) return rc;
    uint8_t *body = NULL;
    size_t body_len = 0;
    rc = pack_body(m, &body, &body_len);
    if (rc < 0)
        return nas_set_err(err, rc, "encoding %s: %s", nas_wire_type_name(m->type),
                           nas_strerror(rc));
    Naspb__Envelope env = NASPB__ENVELOPE__INIT;
    env.has_protocol = 1, env.protocol = NAS_PROTOCOL_VERSION;
    env.has_type = 1, env.type = (uint32_t)m->type;
    env.has_payload = 1, env.payload.data = body, env.payload.len = body_len;
    env.has_seq = m->seq != 0, env.seq = m->seq;
    env.has_frames = m->frames != 0, env.frames = m->frames;
    rc = pack_pb(&env.base, out, len);
    nas_free(body);
    if (rc < 0) return nas_set_err(err, rc, "encoding envelope: out of memory");
    if (*len > NAS_WIRE_MAX_ENVELOPE) {
        nas_free(*out);
        *out = NULL;
        return nas_set_err(err, NAS_ERANGE, "%s envelope of %zu bytes exceeds the %u-byte limit",
                           nas_wire_type_name(m->type), *len, NAS_WIRE_MAX_ENVELOPE);
    }
    return NAS_OK;
}

// ---- decoding ---------------------------------------------------------------------

/* Copy a decoded protobuf string into a bounded buffer. */
/* protobuf-c has already NUL-terminated the string; only its length is
 * checked against the C buffer here. */
static int copy_str(char *dst, size_t cap, const char *src, const char *field, int required,
                    char *err) {
    if (!src) src = "";
    size_t n = strlen(src);
    if (n >= cap)
        return nas_set_err(err, NAS_ERANGE, "%s has %zu bytes (at most %zu)", field, n, cap - 1);
    if (required && n == 0) return nas_set_err(err, NAS_EINVAL, "%s is missing or empty", field);
    memcpy(dst, src, n + 1);
    return NAS_OK;
}

#define NEED(p, field, msg)                                                                        \
    do {                                                                                           \
        if (!(p)->has_##field)                                                                     \
            return nas_set_err(err, NAS_EINVAL, "%s.%s is missing", msg, #field);                  \
    } while (0)

/* The fidelity is required as a whole but individual fields may be absent
 * (see the comment below); ranges are checked afterwards by validate. */
static int from_fidelity(const Naspb__Fidelity *p, nas_fidelity *f, char *err) {
    if (!p) return nas_set_err(err, NAS_EINVAL, "task.fidelity is missing");
    /* Absent fields keep the defaults, so a newer master may omit knobs an
     * older worker would not understand anyway. */
    *f = nas_fidelity_default();
#define GET(field)                                                                                 \
    if (p->has_##field) f->field = p->field
    GET(resolution);
    GET(train_subset);
    GET(val_size);
    GET(epochs);
    GET(batch);
    GET(channels);
    GET(cells);
    GET(lr);
    GET(warmup_epochs);
    GET(momentum);
    GET(nesterov);
    GET(weight_decay);
    GET(grad_clip);
    GET(label_smoothing);
    GET(drop_path);
    GET(augment);
    GET(test);
    GET(seed);
    GET(time_limit_s);
    GET(threads);
    GET(cutout);
    GET(aux_weight);
    GET(progressive_start);
    GET(width_mult);
#undef GET
    return NAS_OK;
}

/* A TaskRef with a missing half is useless as a lease key: refuse it. */
static int from_ref(const Naspb__TaskRef *p, nas_task_ref *r, const char *msg, char *err) {
    if (!p->has_task_id) return nas_set_err(err, NAS_EINVAL, "%s.task_id is missing", msg);
    if (!p->has_attempt) return nas_set_err(err, NAS_EINVAL, "%s.attempt is missing", msg);
    r->task_id = p->task_id;
    r->attempt = p->attempt;
    return NAS_OK;
}

/* Every unpack_* function follows the same pattern: unpack with the
 * system allocator, copy into the bounded C struct while checking presence
 * and lengths, free the protobuf-c struct on every path, return the first
 * problem found. */
static int unpack_register(const ProtobufCBinaryData *d, nas_wire_register *r, char *err) {
    Naspb__Register *p = naspb__register__unpack(NULL, d->len, d->data);
    if (!p) return nas_set_err(err, NAS_EFORMAT, "register: truncated or malformed protobuf");
    int rc = copy_str(r->name, sizeof r->name, p->name, "register.name", 1, err);
    if (rc == NAS_OK) rc = copy_str(r->host, sizeof r->host, p->host, "register.host", 0, err);
    if (rc == NAS_OK)
        rc = copy_str(r->version, sizeof r->version, p->version, "register.version", 0, err);
    nas_wire_engine *e = &r->engine;
    if (rc == NAS_OK) rc = copy_str(e->blas, sizeof e->blas, p->blas, "register.blas", 0, err);
    if (rc == NAS_OK)
        rc = copy_str(e->blas_kernels, sizeof e->blas_kernels, p->blas_kernels,
                      "register.blas_kernels", 0, err);
    if (rc == NAS_OK) rc = copy_str(e->isa, sizeof e->isa, p->isa, "register.isa", 0, err);
    if (rc == NAS_OK) rc = copy_str(e->gemm, sizeof e->gemm, p->gemm, "register.gemm", 0, err);
    e->blas_threads = p->blas_threads;
    r->incarnation = p->incarnation;
    if (rc == NAS_OK && !p->has_protocol)
        rc = nas_set_err(err, NAS_EINVAL, "register.protocol is missing");
    if (rc == NAS_OK && p->n_held > NAS_WIRE_MAX_HELD)
        rc = nas_set_err(err, NAS_ERANGE, "register.held has %zu entries (at most %d)", p->n_held,
                         NAS_WIRE_MAX_HELD);
    r->protocol = p->protocol;
    r->cores = p->cores;
    for (size_t i = 0; rc == NAS_OK && i < p->n_held; i++)
        rc = from_ref(p->held[i], &r->held[i], "register.held", err);
    if (rc == NAS_OK) r->n_held = (int)p->n_held;
    if (rc == NAS_OK && p->running) {
        rc = from_ref(p->running, &r->running, "register.running", err);
        r->has_running = 1;
    }
    naspb__register__free_unpacked(p, NULL);
    return rc;
}

/* The mode is clamped to a value outside the enum rather than cast, so
 * that a huge number cannot wrap into a valid mode. */
static int unpack_task(const ProtobufCBinaryData *d, nas_wire_task *t, char *err) {
    Naspb__Task *p = naspb__task__unpack(NULL, d->len, d->data);
    if (!p) return nas_set_err(err, NAS_EFORMAT, "task: truncated or malformed protobuf");
    int rc = NAS_OK;
    if (!p->has_task_id)
        rc = nas_set_err(err, NAS_EINVAL, "task.task_id is missing");
    else if (!p->has_attempt)
        rc = nas_set_err(err, NAS_EINVAL, "task.attempt is missing");
    t->task_id = p->task_id;
    t->attempt = p->attempt;
    if (rc == NAS_OK) rc = copy_str(t->genome, sizeof t->genome, p->genome, "task.genome", 1, err);
    if (rc == NAS_OK) rc = from_fidelity(p->fidelity, &t->fidelity, err);
    if (rc == NAS_OK)
        rc = copy_str(t->dataset, sizeof t->dataset, p->dataset, "task.dataset", 0, err);
    if (rc == NAS_OK)
        rc = copy_str(t->data_dir, sizeof t->data_dir, p->data_dir, "task.data_dir", 0, err);
    t->has_parent = p->has_parent_hash;
    t->parent_hash = p->parent_hash;
    t->push_weights = p->has_push_weights && p->push_weights;
    /* Absent mode means training; an out-of-range one fails validation. */
    t->mode = p->has_mode ? (p->mode > 1000 ? 1000 : (int)p->mode) : NAS_EVAL_TRAIN;
    naspb__task__free_unpacked(p, NULL);
    return rc;
}

/* Losses may be absent (a tabular evaluation has none); the epoch counters
 * and the accuracy may not. */
static int unpack_progress(const ProtobufCBinaryData *d, nas_wire_progress *g, char *err) {
    Naspb__Progress *p = naspb__progress__unpack(NULL, d->len, d->data);
    if (!p) return nas_set_err(err, NAS_EFORMAT, "progress: truncated or malformed protobuf");
    int rc = NAS_OK;
    const char *missing = !p->has_task_id   ? "task_id"
                          : !p->has_attempt ? "attempt"
                          : !p->has_epoch   ? "epoch"
                          : !p->has_epochs  ? "epochs"
                          : !p->has_val_acc ? "val_acc"
                                            : NULL;
    if (missing) rc = nas_set_err(err, NAS_EINVAL, "progress.%s is missing", missing);
    g->task_id = p->task_id;
    g->attempt = p->attempt;
    g->epoch = p->epoch;
    g->epochs = p->epochs;
    g->train_loss = p->train_loss;
    g->val_loss = p->val_loss;
    g->val_acc = p->val_acc;
    naspb__progress__free_unpacked(p, NULL);
    return rc;
}

/* The curve length is checked before the copy into the fixed array. */
static int unpack_result(const ProtobufCBinaryData *d, nas_wire_result *r, char *err) {
    Naspb__Result *p = naspb__result__unpack(NULL, d->len, d->data);
    if (!p) return nas_set_err(err, NAS_EFORMAT, "result: truncated or malformed protobuf");
    int rc = NAS_OK;
    const char *missing = !p->has_task_id   ? "task_id"
                          : !p->has_attempt ? "attempt"
                          : !p->has_val_acc ? "val_acc"
                                            : NULL;
    if (missing)
        rc = nas_set_err(err, NAS_EINVAL, "result.%s is missing", missing);
    else if (p->n_curve > NAS_WIRE_MAX_CURVE)
        rc = nas_set_err(err, NAS_ERANGE, "result.curve has %zu points (at most %d)", p->n_curve,
                         NAS_WIRE_MAX_CURVE);
    r->task_id = p->task_id;
    r->attempt = p->attempt;
    r->val_acc = p->val_acc;
    r->val_loss = p->val_loss;
    r->has_test = p->has_test_acc;
    r->test_acc = p->test_acc;
    if (rc == NAS_OK) {
        r->n_curve = (int)p->n_curve;
        if (p->n_curve) memcpy(r->curve, p->curve, p->n_curve * sizeof(float));
    }
    r->params = p->params;
    r->macs = p->macs;
    r->seconds = p->seconds;
    r->images_per_s = p->images_per_s;
    if (rc == NAS_OK)
        rc = copy_str(r->worker, sizeof r->worker, p->worker, "result.worker", 0, err);
    naspb__result__free_unpacked(p, NULL);
    return rc;
}

/* give_back defaults to false: a Failure that does not say otherwise
 * spends an attempt. */
static int unpack_failure(const ProtobufCBinaryData *d, nas_wire_failure *f, char *err) {
    Naspb__Failure *p = naspb__failure__unpack(NULL, d->len, d->data);
    if (!p) return nas_set_err(err, NAS_EFORMAT, "failure: truncated or malformed protobuf");
    int rc = NAS_OK;
    const char *missing = !p->has_task_id   ? "task_id"
                          : !p->has_attempt ? "attempt"
                          : !p->has_code    ? "code"
                                            : NULL;
    if (missing) rc = nas_set_err(err, NAS_EINVAL, "failure.%s is missing", missing);
    f->task_id = p->task_id;
    f->attempt = p->attempt;
    f->code = p->code;
    f->give_back = p->give_back;
    f->environment = p->environment;
    if (rc == NAS_OK)
        rc = copy_str(f->reason, sizeof f->reason, p->reason, "failure.reason", 0, err);
    naspb__failure__free_unpacked(p, NULL);
    return rc;
}

/* Cancel and Ack share a shape: task id, attempt (and Ack's flag). */
static int unpack_ref_msg(int type, const ProtobufCBinaryData *d, nas_wire_msg *m, char *err) {
    if (type == NAS_MSG_CANCEL) {
        Naspb__Cancel *p = naspb__cancel__unpack(NULL, d->len, d->data);
        if (!p) return nas_set_err(err, NAS_EFORMAT, "cancel: truncated or malformed protobuf");
        int rc = NAS_OK;
        if (!p->has_task_id || !p->has_attempt)
            rc = nas_set_err(err, NAS_EINVAL, "cancel.%s is missing",
                             p->has_task_id ? "attempt" : "task_id");
        m->u.cancel.task_id = p->task_id;
        m->u.cancel.attempt = p->attempt;
        naspb__cancel__free_unpacked(p, NULL);
        return rc;
    }
    Naspb__Ack *p = naspb__ack__unpack(NULL, d->len, d->data);
    if (!p) return nas_set_err(err, NAS_EFORMAT, "ack: truncated or malformed protobuf");
    int rc = NAS_OK;
    if (!p->has_task_id || !p->has_attempt)
        rc = nas_set_err(err, NAS_EINVAL, "ack.%s is missing",
                         p->has_task_id ? "attempt" : "task_id");
    m->u.ack.task_id = p->task_id;
    m->u.ack.attempt = p->attempt;
    m->u.ack.duplicate = p->duplicate;
    naspb__ack__free_unpacked(p, NULL);
    return rc;
}

/* The small string-only messages. */
static int unpack_simple(int type, const ProtobufCBinaryData *d, nas_wire_msg *m, char *err) {
    int rc = NAS_OK;
    switch (type) {
    case NAS_MSG_READY: {
        Naspb__Ready *p = naspb__ready__unpack(NULL, d->len, d->data);
        if (!p) return nas_set_err(err, NAS_EFORMAT, "ready: truncated or malformed protobuf");
        naspb__ready__free_unpacked(p, NULL);
        return NAS_OK;
    }
    case NAS_MSG_HEARTBEAT: {
        Naspb__Heartbeat *p = naspb__heartbeat__unpack(NULL, d->len, d->data);
        if (!p) return nas_set_err(err, NAS_EFORMAT, "heartbeat: truncated or malformed protobuf");
        rc = copy_str(m->u.heartbeat.weights, sizeof m->u.heartbeat.weights, p->weights,
                      "heartbeat.weights", 0, err);
        naspb__heartbeat__free_unpacked(p, NULL);
        return rc;
    }
    case NAS_MSG_ERROR: {
        Naspb__Error *p = naspb__error__unpack(NULL, d->len, d->data);
        if (!p) return nas_set_err(err, NAS_EFORMAT, "error: truncated or malformed protobuf");
        if (!p->has_code) rc = nas_set_err(err, NAS_EINVAL, "error.code is missing");
        m->u.error.code = p->code;
        if (rc == NAS_OK)
            rc = copy_str(m->u.error.message, sizeof m->u.error.message, p->message,
                          "error.message", 0, err);
        naspb__error__free_unpacked(p, NULL);
        return rc;
    }
    case NAS_MSG_DISCONNECT: {
        Naspb__Disconnect *p = naspb__disconnect__unpack(NULL, d->len, d->data);
        if (!p) return nas_set_err(err, NAS_EFORMAT, "disconnect: truncated or malformed protobuf");
        rc = copy_str(m->u.disconnect, sizeof m->u.disconnect, p->reason, "disconnect.reason", 0,
                      err);
        m->u.disconnect_done = p->done;
        naspb__disconnect__free_unpacked(p, NULL);
        return rc;
    }
    case NAS_MSG_STATUS_REQUEST: {
        Naspb__StatusRequest *p = naspb__status_request__unpack(NULL, d->len, d->data);
        if (!p)
            return nas_set_err(err, NAS_EFORMAT, "status_request: truncated or malformed protobuf");
        rc = copy_str(m->u.status_what, sizeof m->u.status_what, p->what, "status_request.what", 0,
                      err);
        naspb__status_request__free_unpacked(p, NULL);
        return rc;
    }
    case NAS_MSG_STATUS_REPLY: {
        Naspb__StatusReply *p = naspb__status_reply__unpack(NULL, d->len, d->data);
        if (!p)
            return nas_set_err(err, NAS_EFORMAT, "status_reply: truncated or malformed protobuf");
        if (p->json) {
            m->u.status_json = nas_strdup(p->json);
            if (!m->u.status_json) rc = nas_set_err(err, NAS_ENOMEM, "status_reply: out of memory");
        }
        naspb__status_reply__free_unpacked(p, NULL);
        return rc;
    }
    default:
        return nas_set_err(err, NAS_EPROTO, "unknown message type %d", type);
    }
}

/* Dispatch on the envelope's type; the type was range-checked already. */
static int decode_body(int type, const ProtobufCBinaryData *d, nas_wire_msg *m, char *err) {
    switch (type) {
    case NAS_MSG_REGISTER:
        return unpack_register(d, &m->u.reg, err);
    case NAS_MSG_TASK:
        return unpack_task(d, &m->u.task, err);
    case NAS_MSG_PROGRESS:
        return unpack_progress(d, &m->u.progress, err);
    case NAS_MSG_RESULT:
        return unpack_result(d, &m->u.result, err);
    case NAS_MSG_FAILURE:
        return unpack_failure(d, &m->u.failure, err);
    case NAS_MSG_CANCEL:
    case NAS_MSG_ACK:
        return unpack_ref_msg(type, d, m, err);
    default:
        return unpack_simple(type, d, m, err);
    }
}

/* The size bound comes first, before protobuf-c sees a byte: a peer
 * cannot make us allocate for a giant message. */
int nas_wire_decode(const void *buf, size_t len, nas_wire_msg *m, char *err) {
    memset(m, 0, sizeof *m);
    if (len > NAS_WIRE_MAX_ENVELOPE)
        return nas_set_err(err, NAS_EFORMAT, "envelope of %zu bytes exceeds the %u-byte limit", len,
                           NAS_WIRE_MAX_ENVELOPE);
    if (len == 0 || !buf) return nas_set_err(err, NAS_EFORMAT, "empty envelope");
    Naspb__Envelope *env = naspb__envelope__unpack(NULL, len, buf);
    if (!env) return nas_set_err(err, NAS_EFORMAT, "envelope: truncated or malformed protobuf");
    int rc = NAS_OK;
    if (!env->has_protocol)
        rc = nas_set_err(err, NAS_EVERSION, "envelope.protocol is missing");
    else if (env->protocol != NAS_PROTOCOL_VERSION)
        rc = nas_set_err(err, NAS_EVERSION, "envelope.protocol = %u, this peer speaks %d",
                         env->protocol, NAS_PROTOCOL_VERSION);
    else if (!env->has_type || env->type == NAS_MSG_NONE || env->type >= NAS_MSG_COUNT)
        rc = nas_set_err(err, NAS_EPROTO, "envelope.type = %u is not a known message type",
                         env->type);
    else if (env->has_frames && env->frames > NAS_WIRE_MAX_FRAMES)
        rc = nas_set_err(err, NAS_ERANGE, "envelope.frames = %u exceeds %d", env->frames,
                         NAS_WIRE_MAX_FRAMES);
    if (rc == NAS_OK) {
        m->type = (int)env->type;
        m->seq = env->seq;
        m->frames = env->frames;
        ProtobufCBinaryData empty = {0, NULL};
        rc = decode_body(m->type, env->has_payload ? &env->payload : &empty, m, err);
        if (rc == NAS_OK) rc = nas_wire_validate(m, err);
    }
    naspb__envelope__free_unpacked(env, NULL);
    if (rc < 0) {
        nas_wire_msg_fini(m);
        memset(m, 0, sizeof *m);
    }
    return rc;
}
