/*
 * wire_validate.c - the rules every nasd message obeys (wire.h,
 * nas_wire_validate): the encoder checks a message before it goes out and
 * the decoder checks what a peer sent after it is unpacked, with the same
 * code, so a message one side accepts the other cannot refuse.
 */
#include "common/err.h"
#include "common/utf8.h"
#include "common/wire.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A string field of a hand-built message must be NUL-terminated inside its
 * buffer; decoded ones always are. */
static int check_str(const char *s, size_t cap, const char *field, int required, char *err) {
    size_t n = strnlen(s, cap);
    if (n == cap)
        return nas_set_err(err, NAS_ERANGE, "%s is longer than %zu bytes", field, cap - 1);
    if (required && n == 0) return nas_set_err(err, NAS_EINVAL, "%s is missing or empty", field);
    return NAS_OK;
}

/* A name a peer is known by (worker, host, version) is shown in logs,
 * status documents and CSV: valid UTF-8 without control characters, so
 * that it cannot forge a log line or break a JSON reader. */
static int check_name(const char *s, const char *field, char *err) {
    for (size_t at = 0; s[at];) {
        uint32_t cp;
        int n = nas_utf8_decode(s + at, &cp);
        if (n < 0)
            return nas_set_err(err, NAS_EFORMAT, "%s is not valid UTF-8 (byte %zu)", field, at);
        if (nas_utf8_is_control(cp))
            return nas_set_err(err, NAS_EFORMAT, "%s has control character U+%04X at byte %zu",
                               field, (unsigned)cp, at);
        at += (size_t)n;
    }
    return NAS_OK;
}

/* Written as a positive range test so that NaN fails it too. */
static int check_unit(double v, const char *field, char *err) {
    if (!(v >= 0.0 && v <= 1.0))
        return nas_set_err(err, NAS_ERANGE, "%s = %g is outside [0, 1]", field, v);
    return NAS_OK;
}

/* Losses, times and rates: finite and not negative.  Infinity is refused
 * because the store and the strategies would compare against it. */
static int check_nonneg(double v, const char *field, char *err) {
    if (!isfinite(v) || v < 0.0)
        return nas_set_err(err, NAS_ERANGE, "%s = %g is not a finite number >= 0", field, v);
    return NAS_OK;
}

/* Attempts count from 1, so 0 always means the sender forgot to set it. */
static int check_attempt(uint32_t attempt, const char *msg, char *err) {
    if (attempt < 1)
        return nas_set_err(err, NAS_ERANGE, "%s.attempt = 0 (attempts count from 1)", msg);
    return NAS_OK;
}

/* Return the first failed check; the message it wrote names the field. */
#define TRY(x)                                                                                     \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_ < 0) return rc_;                                                                   \
    } while (0)

/* The version is checked in Register as well as in the Envelope so that a
 * worker built for another protocol is told in words which one it speaks. */
static int validate_register(const nas_wire_register *r, char *err) {
    TRY(check_str(r->name, sizeof r->name, "register.name", 1, err));
    TRY(check_str(r->host, sizeof r->host, "register.host", 0, err));
    TRY(check_str(r->version, sizeof r->version, "register.version", 0, err));
    TRY(check_name(r->name, "register.name", err));
    TRY(check_name(r->host, "register.host", err));
    TRY(check_name(r->version, "register.version", err));
    const nas_wire_engine *e = &r->engine;
    TRY(check_str(e->blas, sizeof e->blas, "register.blas", 0, err));
    TRY(check_str(e->blas_kernels, sizeof e->blas_kernels, "register.blas_kernels", 0, err));
    TRY(check_str(e->isa, sizeof e->isa, "register.isa", 0, err));
    TRY(check_name(e->blas, "register.blas", err));
    TRY(check_name(e->blas_kernels, "register.blas_kernels", err));
    TRY(check_name(e->isa, "register.isa", err));
    TRY(check_str(e->gemm, sizeof e->gemm, "register.gemm", 0, err));
    TRY(check_name(e->gemm, "register.gemm", err));
    if (e->blas_threads > 4096)
        return nas_set_err(err, NAS_ERANGE, "register.blas_threads = %u is outside [0, 4096]",
                           e->blas_threads);
    if (r->protocol != NAS_PROTOCOL_VERSION)
        return nas_set_err(err, NAS_EVERSION, "register.protocol = %u, this peer speaks %d",
                           r->protocol, NAS_PROTOCOL_VERSION);
    if (r->cores > 4096)
        return nas_set_err(err, NAS_ERANGE, "register.cores = %u is outside [0, 4096]", r->cores);
    if (r->n_held < 0 || r->n_held > NAS_WIRE_MAX_HELD)
        return nas_set_err(err, NAS_ERANGE, "register.held has %d entries (at most %d)", r->n_held,
                           NAS_WIRE_MAX_HELD);
    for (int i = 0; i < r->n_held; i++)
        TRY(check_attempt(r->held[i].attempt, "register.held", err));
    if (r->has_running) TRY(check_attempt(r->running.attempt, "register.running", err));
    return NAS_OK;
}

/* A Task is checked on the master before it is sent (encode) and on the
 * worker when it arrives (decode), with the fidelity's own range checks. */
static int validate_task(const nas_wire_task *t, char *err) {
    TRY(check_attempt(t->attempt, "task", err));
    TRY(check_str(t->genome, sizeof t->genome, "task.genome", 1, err));
    TRY(check_str(t->dataset, sizeof t->dataset, "task.dataset", 0, err));
    TRY(check_str(t->data_dir, sizeof t->data_dir, "task.data_dir", 0, err));
    if (t->mode < 0 || t->mode >= NAS_EVAL_MODE_COUNT)
        return nas_set_err(err, NAS_ERANGE, "task.mode = %d is not an evaluation mode", t->mode);
    char ferr[NAS_ERR_LEN];
    int rc = nas_fidelity_validate(&t->fidelity, ferr);
    if (rc < 0) return nas_set_err(err, rc, "task.%s", ferr);
    return NAS_OK;
}

/* epoch must lie within epochs: nasctl shows epoch/epochs and early
 * stopping compares them. */
static int validate_progress(const nas_wire_progress *p, char *err) {
    TRY(check_attempt(p->attempt, "progress", err));
    if (p->epochs < 1 || p->epochs > NAS_WIRE_MAX_EPOCHS)
        return nas_set_err(err, NAS_ERANGE, "progress.epochs = %d is outside [1, %d]", p->epochs,
                           NAS_WIRE_MAX_EPOCHS);
    if (p->epoch < 1 || p->epoch > p->epochs)
        return nas_set_err(err, NAS_ERANGE, "progress.epoch = %d is outside [1, %d]", p->epoch,
                           p->epochs);
    TRY(check_nonneg(p->train_loss, "progress.train_loss", err));
    TRY(check_nonneg(p->val_loss, "progress.val_loss", err));
    return check_unit(p->val_acc, "progress.val_acc", err);
}

/* A Result becomes a row in the store and an observation of the strategy;
 * nothing in it may be out of range, since neither side re-checks it. */
static int validate_result(const nas_wire_result *r, char *err) {
    TRY(check_attempt(r->attempt, "result", err));
    TRY(check_unit(r->val_acc, "result.val_acc", err));
    TRY(check_nonneg(r->val_loss, "result.val_loss", err));
    if (r->has_test) TRY(check_unit(r->test_acc, "result.test_acc", err));
    if (r->n_curve < 0 || r->n_curve > NAS_WIRE_MAX_CURVE)
        return nas_set_err(err, NAS_ERANGE, "result.curve has %d points (at most %d)", r->n_curve,
                           NAS_WIRE_MAX_CURVE);
    for (int i = 0; i < r->n_curve; i++)
        if (!(r->curve[i] >= 0.0f && r->curve[i] <= 1.0f))
            return nas_set_err(err, NAS_ERANGE, "result.curve[%d] = %g is outside [0, 1]", i,
                               (double)r->curve[i]);
    if (r->params < 0)
        return nas_set_err(err, NAS_ERANGE, "result.params = %lld is negative",
                           (long long)r->params);
    if (r->macs < 0)
        return nas_set_err(err, NAS_ERANGE, "result.macs = %lld is negative", (long long)r->macs);
    TRY(check_nonneg(r->seconds, "result.seconds", err));
    TRY(check_nonneg(r->images_per_s, "result.images_per_s", err));
    TRY(check_str(r->worker, sizeof r->worker, "result.worker", 0, err));
    return check_name(r->worker, "result.worker", err);
}

/* Error codes are negative nas_err values; the bound keeps a garbage code
 * from being printed as if it meant something. */
static int check_code(int code, const char *field, char *err) {
    if (code >= 0 || code < -10000)
        return nas_set_err(err, NAS_ERANGE, "%s = %d is not a negative error code", field, code);
    return NAS_OK;
}

/* One switch over the types, shared by encode and decode. */
int nas_wire_validate(const nas_wire_msg *m, char *err) {
    switch (m->type) {
    case NAS_MSG_REGISTER:
        return validate_register(&m->u.reg, err);
    case NAS_MSG_HEARTBEAT:
        if (strnlen(m->u.heartbeat.weights, sizeof m->u.heartbeat.weights) >=
            sizeof m->u.heartbeat.weights)
            return nas_set_err(err, NAS_ERANGE, "heartbeat.weights is not terminated");
        return NAS_OK;
    case NAS_MSG_READY:
    case NAS_MSG_STATUS_REPLY:
        return NAS_OK;
    case NAS_MSG_TASK:
        return validate_task(&m->u.task, err);
    case NAS_MSG_PROGRESS:
        return validate_progress(&m->u.progress, err);
    case NAS_MSG_RESULT:
        return validate_result(&m->u.result, err);
    case NAS_MSG_FAILURE:
        TRY(check_attempt(m->u.failure.attempt, "failure", err));
        TRY(check_code(m->u.failure.code, "failure.code", err));
        return check_str(m->u.failure.reason, sizeof m->u.failure.reason, "failure.reason", 0, err);
    case NAS_MSG_CANCEL:
        return check_attempt(m->u.cancel.attempt, "cancel", err);
    case NAS_MSG_ACK:
        return check_attempt(m->u.ack.attempt, "ack", err);
    case NAS_MSG_ERROR:
        TRY(check_code(m->u.error.code, "error.code", err));
        return check_str(m->u.error.message, sizeof m->u.error.message, "error.message", 0, err);
    case NAS_MSG_DISCONNECT:
        return check_str(m->u.disconnect, sizeof m->u.disconnect, "disconnect.reason", 0, err);
    case NAS_MSG_STATUS_REQUEST:
        return check_str(m->u.status_what, sizeof m->u.status_what, "status_request.what", 0, err);
    default:
        return nas_set_err(err, NAS_EPROTO, "unknown message type %d", m->type);
    }
}
