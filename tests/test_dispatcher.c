/*
 * test_dispatcher.c - the dispatcher state machine with a fake clock and
 * scripted messages: leasing, heartbeats, expiry and re-queue, duplicate
 * results, K failures, give-back, cancel, late delivery after a worker
 * reconnects, refusal of unregistered peers, and the status snapshot.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/rng.h"
#include "master/dispatcher.h"
#include "master/dispatcher_internal.h"
#include "master/status.h"
#include "tests/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- a recording fake of the campaign and the socket ---------------------------------

#define MAX_SENT 256

typedef struct sent {
    char to[8];
    nas_wire_msg m;
} sent;

typedef struct rec {
    sent out[MAX_SENT];
    int n_out;
    int leases, results, requeues, failed, progress;
    char last_lease_worker[64];
    int64_t last_lease_expiry;
    nas_task_ref last_requeue, last_failed;
    char last_reason[256];
    char events[512];
    int refuse_results;
} rec;

static int fake_send(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *m) {
    rec *r = ctx;
    ck_assert_int_lt(r->n_out, MAX_SENT);
    sent *s = &r->out[r->n_out++];
    snprintf(s->to, sizeof s->to, "%.*s", (int)id_len, (const char *)id);
    s->m = *m;
    if (m->type == NAS_MSG_STATUS_REPLY) s->m.u.status_json = NULL; /* not owned */
    return NAS_OK;
}
static void fake_lease(void *ctx, const nas_task_ref *ref, const nas_worker_ident *w, int64_t exp) {
    rec *r = ctx;
    r->leases++;
    snprintf(r->last_lease_worker, sizeof r->last_lease_worker, "%s", w->name);
    r->last_lease_expiry = exp;
}
static int fake_result(void *ctx, const nas_wire_result *r, const char *w) {
    rec *c = ctx;
    if (c->refuse_results) return NAS_EDB;
    c->results++;
    return NAS_OK;
}
static void fake_requeue(void *ctx, const nas_task_ref *next, const char *reason) {
    rec *r = ctx;
    r->requeues++;
    r->last_requeue = *next;
    snprintf(r->last_reason, sizeof r->last_reason, "%s", reason);
}
static void fake_failed(void *ctx, const nas_task_ref *ref, int code, const char *reason) {
    rec *r = ctx;
    r->failed++;
    r->last_failed = *ref;
    snprintf(r->last_reason, sizeof r->last_reason, "%s", reason);
}
static void fake_progress(void *ctx, const nas_wire_progress *p, const char *w) {
    ((rec *)ctx)->progress++;
}
static void fake_worker(void *ctx, const nas_worker_info *wi, const char *event) {
    const char *w = wi->name;
    rec *r = ctx;
    size_t n = strlen(r->events);
    snprintf(r->events + n, sizeof r->events - n, "%s:%s ", w, event);
}

static nas_dispatcher *make(rec *r) {
    memset(r, 0, sizeof *r);
    nas_dispatcher_config cfg;
    nas_dispatcher_config_default(&cfg);
    cfg.heartbeat_ms = 100;
    cfg.liveness = 5;
    cfg.max_attempts = 3;
    nas_dispatcher_hooks h = {r,           fake_send,     fake_lease,  fake_result, fake_requeue,
                              fake_failed, fake_progress, fake_worker, NULL};
    nas_dispatcher *d = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dispatcher_create(&d, &cfg, &h, err), NAS_OK);
    return d;
}

/* Deliver a message from worker `id` (the identity doubles as its name, up
 * to a '#': "w1#b" is worker w1 on a new socket after a reconnection). */
static void from(nas_dispatcher *d, const char *id, nas_wire_msg *m, int64_t now) {
    nas_dispatcher_on_message(d, (const uint8_t *)id, strlen(id), m, now);
}

/* Register from `host`; reg() is from "localhost". */
static void reg_on(nas_dispatcher *d, const char *id, const char *host, int64_t now,
                   const nas_task_ref *held_running) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_REGISTER);
    snprintf(m.u.reg.name, sizeof m.u.reg.name, "%.*s", (int)strcspn(id, "#"), id);
    snprintf(m.u.reg.host, sizeof m.u.reg.host, "%s", host);
    m.u.reg.protocol = NAS_PROTOCOL_VERSION;
    m.u.reg.cores = 2;
    strcpy(m.u.reg.engine.blas, "OpenBLAS 0.3.21");
    strcpy(m.u.reg.engine.blas_kernels, "SkylakeX");
    strcpy(m.u.reg.engine.isa, "avx512");
    m.u.reg.engine.blas_threads = 1;
    strcpy(m.u.reg.engine.gemm, "own avx512");
    if (held_running) m.u.reg.has_running = 1, m.u.reg.running = *held_running;
    from(d, id, &m, now);
}

static void reg(nas_dispatcher *d, const char *id, int64_t now, const nas_task_ref *held_running) {
    reg_on(d, id, "localhost", now, held_running);
}

static void simple(nas_dispatcher *d, const char *id, int type, int64_t now) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, type);
    from(d, id, &m, now);
}

static void push(nas_dispatcher *d, uint64_t task_id, int64_t now) {
    nas_wire_task t;
    memset(&t, 0, sizeof t);
    t.task_id = task_id;
    t.attempt = 1;
    snprintf(t.genome, sizeof t.genome, "n=sep3x3:0+id:1 r=max3x3:0+id:1");
    t.fidelity = nas_fidelity_default();
    t.mode = NAS_EVAL_SYNTHETIC;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dispatcher_push(d, &t, now, err), NAS_OK);
}

static void result(nas_dispatcher *d, const char *id, uint64_t task, uint32_t attempt,
                   int64_t now) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_RESULT);
    m.u.result.task_id = task;
    m.u.result.attempt = attempt;
    m.u.result.val_acc = 0.9;
    from(d, id, &m, now);
}

static void failure(nas_dispatcher *d, const char *id, uint64_t task, uint32_t attempt,
                    int give_back, int64_t now) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_FAILURE);
    m.u.failure.task_id = task;
    m.u.failure.attempt = attempt;
    m.u.failure.code = give_back ? NAS_ECANCELED : NAS_EDIVERGED;
    m.u.failure.give_back = give_back;
    strcpy(m.u.failure.reason, give_back ? "shutting down" : "loss is NaN");
    from(d, id, &m, now);
}

/* The last message of `type` sent to `to` (NULL if none). */
static const nas_wire_msg *last_to(const rec *r, const char *to, int type) {
    for (int i = r->n_out - 1; i >= 0; i--)
        if (r->out[i].m.type == type && strcmp(r->out[i].to, to) == 0) return &r->out[i].m;
    return NULL;
}

static int count_to(const rec *r, const char *to, int type) {
    int n = 0;
    for (int i = 0; i < r->n_out; i++)
        n += r->out[i].m.type == type && strcmp(r->out[i].to, to) == 0;
    return n;
}

// ---- tests -----------------------------------------------------------------------------

START_TEST(test_dispatcher_leases_to_ready_worker_only) {
    rec r;
    nas_dispatcher *d = make(&r);
    push(d, 1, 0);
    reg(d, "w1", 0, NULL);
    ck_assert_int_eq(count_to(&r, "w1", NAS_MSG_HEARTBEAT), 1); /* register answered */
    ck_assert_ptr_null(last_to(&r, "w1", NAS_MSG_TASK));        /* not Ready yet */
    simple(d, "w1", NAS_MSG_READY, 10);
    const nas_wire_msg *t = last_to(&r, "w1", NAS_MSG_TASK);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->u.task.task_id, 1);
    ck_assert_uint_eq(t->u.task.attempt, 1);
    ck_assert_int_eq(r.leases, 1);
    uint32_t attempt;
    ck_assert_int_eq(nas_dispatcher_task_state(d, 1, &attempt), NAS_DISPATCH_TASK_LEASED);
    /* Pushing the same id again is refused. */
    nas_wire_task dup = t->u.task;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dispatcher_push(d, &dup, 20, err), NAS_EEXIST);
    nas_dispatcher_destroy(&d);
    ck_assert_ptr_null(d);
}
END_TEST

/* peek_lease names the worker the next push leases to, and only when it
 * leases at once: the campaign stores such a task already leased. */
START_TEST(test_dispatcher_peek_lease_predicts_push) {
    rec r;
    nas_dispatcher *d = make(&r);
    nas_worker_ident w;
    int64_t exp = -1;
    ck_assert_int_eq(nas_dispatcher_peek_lease(d, &w, &exp), 0); /* no workers */
    reg(d, "w1", 0, NULL);
    ck_assert_int_eq(nas_dispatcher_peek_lease(d, &w, &exp), 0); /* not Ready */
    simple(d, "w1", NAS_MSG_READY, 10);
    reg(d, "w2", 20, NULL);
    simple(d, "w2", NAS_MSG_READY, 30);
    /* Both idle: the one idle longest (w1) is next. */
    ck_assert_int_eq(nas_dispatcher_peek_lease(d, &w, &exp), 1);
    ck_assert_str_eq(w.name, "w1");
    ck_assert_str_eq(w.host, "localhost");
    push(d, 1, 40);
    ck_assert_int_eq(r.leases, 1);
    ck_assert_str_eq(r.last_lease_worker, "w1");
    ck_assert_int_eq(r.last_lease_expiry, exp);
    ck_assert_int_eq(nas_dispatcher_peek_lease(d, &w, &exp), 1);
    ck_assert_str_eq(w.name, "w2");
    push(d, 2, 50);
    ck_assert_str_eq(r.last_lease_worker, "w2");
    /* Nobody idle: a pushed task waits in the queue, and while one waits a
     * new task would not be leased at once either. */
    ck_assert_int_eq(nas_dispatcher_peek_lease(d, &w, &exp), 0);
    push(d, 3, 60);
    ck_assert_int_eq(r.leases, 2);
    result(d, "w1", 1, 1, 70); /* w1 takes task 3 from the queue */
    ck_assert_int_eq(r.leases, 3);
    ck_assert_int_eq(nas_dispatcher_peek_lease(d, &w, &exp), 0);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_heartbeats_and_expiry_requeue) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 7, 0);
    ck_assert_ptr_nonnull(last_to(&r, "w1", NAS_MSG_TASK));
    /* One interval of master silence: a heartbeat goes out. */
    int before = count_to(&r, "w1", NAS_MSG_HEARTBEAT);
    nas_dispatcher_tick(d, 100);
    ck_assert_int_eq(count_to(&r, "w1", NAS_MSG_HEARTBEAT), before + 1);
    /* The worker heartbeats at 300: still alive at 700, dead at 800. */
    simple(d, "w1", NAS_MSG_HEARTBEAT, 300);
    nas_dispatcher_tick(d, 799);
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    ck_assert_int_eq(c.workers, 1);
    ck_assert_int_eq(nas_dispatcher_next_deadline(d) <= 800, 1);
    nas_dispatcher_tick(d, 800);
    nas_dispatcher_counts_get(d, &c);
    ck_assert_int_eq(c.workers, 0);
    ck_assert_int_eq(r.requeues, 1);
    ck_assert_uint_eq(r.last_requeue.attempt, 2);
    ck_assert_str_eq(r.last_reason, "lease expired");
    ck_assert_ptr_nonnull(strstr(r.events, "w1:lost"));
    /* Another worker picks it up with attempt 2. */
    reg(d, "w2", 900, NULL);
    simple(d, "w2", NAS_MSG_READY, 900);
    const nas_wire_msg *t = last_to(&r, "w2", NAS_MSG_TASK);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->u.task.task_id, 7);
    ck_assert_uint_eq(t->u.task.attempt, 2);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_duplicate_result_recorded_once) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 3, 0);
    result(d, "w1", 3, 1, 50);
    ck_assert_int_eq(r.results, 1);
    const nas_wire_msg *a = last_to(&r, "w1", NAS_MSG_ACK);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->u.ack.duplicate, 0);
    result(d, "w1", 3, 1, 60);
    ck_assert_int_eq(r.results, 1);
    a = last_to(&r, "w1", NAS_MSG_ACK);
    ck_assert_int_eq(a->u.ack.duplicate, 1);
    /* A result for a task nobody pushed is acknowledged as a duplicate too. */
    result(d, "w1", 999, 1, 70);
    ck_assert_int_eq(r.results, 1);
    ck_assert_int_eq(last_to(&r, "w1", NAS_MSG_ACK)->u.ack.duplicate, 1);
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    ck_assert_uint_eq(c.done, 1);
    ck_assert_int_eq(c.idle, 1);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_refused_persistence_keeps_task) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 3, 0);
    r.refuse_results = 1;
    result(d, "w1", 3, 1, 50);
    ck_assert_ptr_nonnull(last_to(&r, "w1", NAS_MSG_ERROR));
    ck_assert_ptr_null(last_to(&r, "w1", NAS_MSG_ACK));
    ck_assert_int_eq(nas_dispatcher_task_state(d, 3, NULL), NAS_DISPATCH_TASK_LEASED);
    r.refuse_results = 0;
    result(d, "w1", 3, 1, 60);
    ck_assert_int_eq(r.results, 1);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 3, NULL), NAS_DISPATCH_TASK_DONE);
    nas_dispatcher_destroy(&d);
}
END_TEST

/* Held (the campaign's circuit breaker): nothing queued or re-queued is
 * given out, leases out still end as usual; released, the queue moves. */
START_TEST(test_dispatcher_hold_keeps_the_queue) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    reg(d, "w2", 0, NULL);
    simple(d, "w2", NAS_MSG_READY, 0);
    push(d, 1, 10);
    push(d, 2, 10);
    ck_assert_int_eq(r.leases, 2);
    nas_dispatcher_hold(d, 1);
    result(d, "w1", 1, 1, 20);
    ck_assert_int_eq(r.results, 1);
    failure(d, "w2", 2, 1, 0, 30);
    ck_assert_int_eq(r.requeues, 1);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 2, NULL), NAS_DISPATCH_TASK_QUEUED);
    nas_worker_ident w;
    int64_t exp;
    ck_assert_int_eq(nas_dispatcher_peek_lease(d, &w, &exp), 0);
    push(d, 3, 40);
    nas_dispatcher_tick(d, 50);
    ck_assert_int_eq(r.leases, 2);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 3, NULL), NAS_DISPATCH_TASK_QUEUED);
    nas_dispatcher_hold(d, 0);
    nas_dispatcher_tick(d, 60);
    ck_assert_int_eq(r.leases, 4);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 2, NULL), NAS_DISPATCH_TASK_LEASED);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 3, NULL), NAS_DISPATCH_TASK_LEASED);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_k_failures_fail_for_good) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 5, 0);
    for (uint32_t a = 1; a <= 3; a++) {
        const nas_wire_msg *t = last_to(&r, "w1", NAS_MSG_TASK);
        ck_assert_uint_eq(t->u.task.attempt, a);
        failure(d, "w1", 5, a, 0, 10 * a);
    }
    ck_assert_int_eq(r.requeues, 2);
    ck_assert_int_eq(r.failed, 1);
    ck_assert_uint_eq(r.last_failed.attempt, 3);
    ck_assert_str_eq(r.last_reason, "loss is NaN");
    ck_assert_int_eq(nas_dispatcher_task_state(d, 5, NULL), NAS_DISPATCH_TASK_FAILED);
    ck_assert_int_eq(count_to(&r, "w1", NAS_MSG_TASK), 3);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_give_back_does_not_count) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 8, 0);
    failure(d, "w1", 8, 1, 1, 10);
    ck_assert_int_eq(r.requeues, 1);
    ck_assert_uint_eq(r.last_requeue.attempt, 1);
    ck_assert_str_eq(r.last_reason, "given back");
    /* The leaving worker is not offered the task again. */
    ck_assert_int_eq(count_to(&r, "w1", NAS_MSG_TASK), 1);
    simple(d, "w1", NAS_MSG_DISCONNECT, 20);
    ck_assert_ptr_nonnull(strstr(r.events, "w1:left"));
    reg(d, "w2", 30, NULL);
    simple(d, "w2", NAS_MSG_READY, 30);
    ck_assert_uint_eq(last_to(&r, "w2", NAS_MSG_TASK)->u.task.attempt, 1);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_late_delivery_after_reconnect) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 9, 0);
    /* w1 loses the master; its lease expires and w2 takes attempt 2. */
    nas_dispatcher_tick(d, 600);
    reg(d, "w2", 600, NULL);
    simple(d, "w2", NAS_MSG_READY, 600);
    ck_assert_uint_eq(last_to(&r, "w2", NAS_MSG_TASK)->u.task.attempt, 2);
    /* w1 comes back on a new socket ("w1#b") holding attempt 1's result. */
    reg(d, "w1#b", 700, NULL);
    result(d, "w1#b", 9, 1, 710);
    ck_assert_int_eq(r.results, 1);
    ck_assert_int_eq(last_to(&r, "w1#b", NAS_MSG_ACK)->u.ack.duplicate, 0);
    /* w2 is told to stop, and its own result later is a duplicate. */
    const nas_wire_msg *c = last_to(&r, "w2", NAS_MSG_CANCEL);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->u.cancel.task_id, 9);
    result(d, "w2", 9, 2, 720);
    ck_assert_int_eq(r.results, 1);
    ck_assert_int_eq(last_to(&r, "w2", NAS_MSG_ACK)->u.ack.duplicate, 1);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_reconnect_while_running_reattaches) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 4, 0);
    nas_dispatcher_tick(d, 600); /* w1 expires, task 4 queued as attempt 2 */
    ck_assert_int_eq(nas_dispatcher_task_state(d, 4, NULL), NAS_DISPATCH_TASK_QUEUED);
    nas_task_ref running = {4, 1};
    reg(d, "w1#b", 650, &running);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 4, NULL), NAS_DISPATCH_TASK_LEASED);
    ck_assert_ptr_null(last_to(&r, "w1#b", NAS_MSG_CANCEL));
    /* A new worker does not get task 4: it is running again. */
    reg(d, "w2", 660, NULL);
    simple(d, "w2", NAS_MSG_READY, 660);
    ck_assert_ptr_null(last_to(&r, "w2", NAS_MSG_TASK));
    /* Running a task that is already over gets a Cancel. */
    result(d, "w1#b", 4, 1, 670);
    nas_task_ref stale = {4, 1};
    reg(d, "w3", 680, &stale);
    ck_assert_ptr_nonnull(last_to(&r, "w3", NAS_MSG_CANCEL));
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_reattached_worker_failure_releases_lease) {
    /* Regression: a worker re-attached to attempt 2's lease while running
     * attempt 1 reports Failure(attempt 1); the lease must not be orphaned. */
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 4, 0);
    nas_dispatcher_tick(d, 600); /* queued again as attempt 2 */
    nas_task_ref running = {4, 1};
    reg(d, "w1#b", 650, &running);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 4, NULL), NAS_DISPATCH_TASK_LEASED);
    failure(d, "w1#b", 4, 1, 0, 660);
    /* Re-queued as attempt 3 and, w1#b being idle now, leased again. */
    uint32_t attempt = 0;
    ck_assert_int_eq(nas_dispatcher_task_state(d, 4, &attempt), NAS_DISPATCH_TASK_LEASED);
    ck_assert_uint_eq(attempt, 3);
    ck_assert_uint_eq(last_to(&r, "w1#b", NAS_MSG_TASK)->u.task.attempt, 3);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_stuck_task_is_cancelled_and_requeued) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    nas_wire_task t;
    memset(&t, 0, sizeof t);
    t.task_id = 21, t.attempt = 1, t.mode = NAS_EVAL_SYNTHETIC;
    strcpy(t.genome, "x");
    t.fidelity = nas_fidelity_default();
    t.fidelity.time_limit_s = 1.0;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dispatcher_push(d, &t, 0, err), NAS_OK);
    /* Deadline: 1.5 x 1000 ms + 5 x 100 ms = 2000 ms; w1 stays alive. */
    for (int64_t now = 100; now < 2000; now += 100) {
        simple(d, "w1", NAS_MSG_HEARTBEAT, now);
        nas_dispatcher_tick(d, now);
    }
    ck_assert_ptr_null(last_to(&r, "w1", NAS_MSG_CANCEL));
    ck_assert_int_eq(nas_dispatcher_next_deadline(d) <= 2000, 1);
    simple(d, "w1", NAS_MSG_HEARTBEAT, 2000);
    nas_dispatcher_tick(d, 2000);
    ck_assert_ptr_nonnull(last_to(&r, "w1", NAS_MSG_CANCEL));
    ck_assert_int_eq(r.requeues, 1);
    ck_assert_uint_eq(r.last_requeue.attempt, 2);
    ck_assert_ptr_nonnull(strstr(r.last_reason, "deadline"));
    /* The worker confirms; it is idle again and takes attempt 2. */
    failure(d, "w1", 21, 1, 0, 2010);
    ck_assert_uint_eq(last_to(&r, "w1", NAS_MSG_TASK)->u.task.attempt, 2);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_reconnect_takes_over_the_lease) {
    /* w1 loses its master link while training task 6 and comes back on a
     * new socket before its old entry expires: the lease moves over, the
     * old entry goes, and nothing is re-queued or run twice. */
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 6, 0);
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_REGISTER);
    strcpy(m.u.reg.name, "w1"); /* same name and host, new identity */
    strcpy(m.u.reg.host, "localhost");
    m.u.reg.protocol = NAS_PROTOCOL_VERSION;
    m.u.reg.has_running = 1;
    m.u.reg.running = (nas_task_ref){6, 1};
    from(d, "w1-new", &m, 300);
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    ck_assert_int_eq(c.workers, 1);
    ck_assert_ptr_nonnull(strstr(r.events, "w1:replaced"));
    /* The lease (task, attempt, worker) is unchanged: only the socket
     * moved, so the store is not asked to lease it again. */
    ck_assert_int_eq(r.leases, 1);
    nas_dispatcher_tick(d, 600); /* the old entry would have expired by now */
    ck_assert_int_eq(r.requeues, 0);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 6, NULL), NAS_DISPATCH_TASK_LEASED);
    result(d, "w1-new", 6, 1, 650);
    ck_assert_int_eq(r.results, 1);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 6, NULL), NAS_DISPATCH_TASK_DONE);
    /* A different worker that merely claims to run task 7 takes nothing. */
    reg(d, "w2", 700, NULL);
    simple(d, "w2", NAS_MSG_READY, 700);
    push(d, 7, 700);
    nas_task_ref claim = {7, 1};
    reg(d, "w3", 710, &claim);
    nas_dispatcher_counts_get(d, &c);
    ck_assert_int_eq(c.workers, 3);
    nas_dispatcher_destroy(&d);
}
END_TEST

/* w1 comes back on a new socket (a new process under its name and host)
 * without task 6 that it held: the lease goes back to the head of the
 * queue at once, uncounted, and the idle w2 gets (6, 1), before task 7.
 * The lost process's late Result(6, 1) (it had finished after all and
 * its successor holds it) still counts, as an earlier holder's may
 * (PROTOCOL.md s4.8): first result wins, w2 is told to cancel, and w2's
 * own result later is a duplicate. */
START_TEST(test_dispatcher_register_without_its_lease_releases_it) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    push(d, 6, 0);
    reg(d, "w2", 10, NULL);
    push(d, 7, 10);
    simple(d, "w2", NAS_MSG_READY, 20);
    ck_assert_uint_eq(last_to(&r, "w2", NAS_MSG_TASK)->u.task.task_id, 7);
    push(d, 8, 30);
    reg(d, "w1#b", 100, NULL); /* w1 again, running nothing, holding nothing */
    ck_assert_int_eq(r.requeues, 1);
    ck_assert_uint_eq(r.last_requeue.task_id, 6);
    ck_assert_uint_eq(r.last_requeue.attempt, 1);
    ck_assert_ptr_nonnull(strstr(r.events, "w1:replaced"));
    result(d, "w2", 7, 1, 150);
    ck_assert_uint_eq(last_to(&r, "w2", NAS_MSG_TASK)->u.task.task_id, 6);
    ck_assert_uint_eq(last_to(&r, "w2", NAS_MSG_TASK)->u.task.attempt, 1);
    nas_dispatcher_tick(d, 160);
    ck_assert_int_eq(r.requeues, 1);
    result(d, "w1#b", 6, 1, 200);
    ck_assert_int_eq(r.results, 2);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 6, NULL), NAS_DISPATCH_TASK_DONE);
    ck_assert_ptr_nonnull(last_to(&r, "w2", NAS_MSG_CANCEL));
    result(d, "w2", 6, 1, 250);
    ck_assert_int_eq(r.results, 2);
    ck_assert_int_eq(last_to(&r, "w2", NAS_MSG_ACK)->u.ack.duplicate, 1);
    nas_dispatcher_destroy(&d);
}
END_TEST

/* A task that kills the process training it (the kernel's out-of-memory
 * killer in the worker's cgroup): the worker, restarted under its name each
 * time, comes back without it.  The first max_attempts (3) losses are free,
 * as for an operator's kill -9; each one after counts, so the task fails
 * for good after 6 instead of going round forever. */
START_TEST(test_dispatcher_task_lost_again_and_again_counts) {
    rec r;
    nas_dispatcher *d = make(&r);
    static const char *const ids[] = {"w1", "w1#b", "w1#c", "w1#d", "w1#e", "w1#f", "w1#g"};
    static const uint32_t attempt[] = {1, 1, 1, 1, 2, 3};
    push(d, 9, 0);
    for (int k = 0; k < 7; k++) {
        reg(d, ids[k], 100 * k, NULL);
        ck_assert_int_eq(r.requeues, k < 6 ? k : 5);
        if (k == 6) break;
        simple(d, ids[k], NAS_MSG_READY, 100 * k + 1);
        const nas_wire_msg *t = last_to(&r, ids[k], NAS_MSG_TASK);
        ck_assert_ptr_nonnull(t);
        ck_assert_uint_eq(t->u.task.task_id, 9);
        ck_assert_uint_eq(t->u.task.attempt, attempt[k]);
    }
    ck_assert_int_eq(r.failed, 1);
    ck_assert_uint_eq(r.last_failed.attempt, 3);
    ck_assert_ptr_nonnull(strstr(r.last_reason, "came back without it 6 times"));
    ck_assert_int_eq(nas_dispatcher_task_state(d, 9, NULL), NAS_DISPATCH_TASK_FAILED);
    nas_dispatcher_destroy(&d);
}
END_TEST

/* A lease belongs to its worker's name, host and key together: a peer
 * registering the holder's name from another host can neither claim the
 * task as running, nor deliver its result, nor report its progress; nor can
 * it claim a lease resumed from a previous master, which waits for its own
 * worker.  A lease from a store that kept only the name matches the name. */
START_TEST(test_dispatcher_lease_belongs_to_name_host_and_key) {
    rec r;
    nas_dispatcher *d = make(&r);
    push(d, 1, 0);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 10);
    ck_assert_int_eq(r.leases, 1);
    nas_task_ref one = {1, 1};
    reg_on(d, "w1#x", "elsewhere", 20, &one);
    ck_assert_ptr_nonnull(last_to(&r, "w1#x", NAS_MSG_CANCEL));
    nas_wire_msg p;
    nas_wire_msg_init(&p, NAS_MSG_PROGRESS);
    p.u.progress = (nas_wire_progress){.task_id = 1, .attempt = 1, .epoch = 1, .epochs = 2};
    from(d, "w1#x", &p, 25);
    ck_assert_int_eq(r.progress, 0);
    result(d, "w1#x", 1, 1, 30);
    ck_assert_int_eq(r.results, 0);
    ck_assert_int_eq(last_to(&r, "w1#x", NAS_MSG_ERROR)->u.error.code, NAS_EAUTH);
    from(d, "w1", &p, 35);
    ck_assert_int_eq(r.progress, 1);
    result(d, "w1", 1, 1, 40);
    ck_assert_int_eq(r.results, 1);

    nas_wire_task t;
    memset(&t, 0, sizeof t);
    t.task_id = 2;
    t.attempt = 1;
    snprintf(t.genome, sizeof t.genome, "n=sep3x3:0+id:1 r=max3x3:0+id:1");
    t.fidelity = nas_fidelity_default();
    t.mode = NAS_EVAL_SYNTHETIC;
    nas_worker_ident holder = {"w2", "hostA", ""};
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dispatcher_push_held(d, &t, &holder, 0, err), NAS_OK);
    nas_task_ref two = {2, 1};
    reg_on(d, "w2#x", "elsewhere", 50, &two);
    ck_assert_ptr_nonnull(last_to(&r, "w2#x", NAS_MSG_CANCEL));
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    ck_assert_uint_eq(c.held, 1);
    /* The peer is lost; the held lease stays held. */
    reg_on(d, "w2", "hostA", 700, &two);
    ck_assert_ptr_null(last_to(&r, "w2", NAS_MSG_CANCEL));
    nas_dispatcher_tick(d, 700);
    nas_dispatcher_counts_get(d, &c);
    ck_assert_uint_eq(c.held, 0);
    ck_assert_uint_eq(c.leased, 1);
    ck_assert_int_eq(r.requeues, 0);
    ck_assert_str_eq(r.last_lease_worker, "w2");

    t.task_id = 3;
    nas_worker_ident old = {"w3", "", ""};
    ck_assert_int_eq(nas_dispatcher_push_held(d, &t, &old, 1, err), NAS_OK);
    nas_task_ref three = {3, 1};
    reg_on(d, "w3", "anyhost", 710, &three);
    ck_assert_ptr_null(last_to(&r, "w3", NAS_MSG_CANCEL));
    nas_dispatcher_counts_get(d, &c);
    ck_assert_uint_eq(c.held, 0);
    ck_assert_uint_eq(c.leased, 2);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_cancel_queued_and_leased) {
    rec r;
    nas_dispatcher *d = make(&r);
    push(d, 1, 0);
    push(d, 2, 0);
    ck_assert_int_eq(nas_dispatcher_cancel(d, 1, 0), NAS_OK);
    ck_assert_int_eq(nas_dispatcher_cancel(d, 1, 0), NAS_ESTATE);
    ck_assert_int_eq(nas_dispatcher_cancel(d, 77, 0), NAS_ENOTFOUND);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    ck_assert_uint_eq(last_to(&r, "w1", NAS_MSG_TASK)->u.task.task_id, 2); /* 1 skipped */
    ck_assert_int_eq(nas_dispatcher_cancel(d, 2, 10), NAS_OK);
    ck_assert_uint_eq(last_to(&r, "w1", NAS_MSG_CANCEL)->u.cancel.task_id, 2);
    /* The worker confirms with a Failure: no re-queue, worker idle again. */
    failure(d, "w1", 2, 1, 0, 20);
    ck_assert_int_eq(r.requeues, 0);
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    ck_assert_uint_eq(c.cancelled, 2);
    ck_assert_uint_eq(c.queued, 0);
    ck_assert_int_eq(c.idle, 1);
    nas_dispatcher_destroy(&d);
}
END_TEST

/* The identity map (a small open-addressing table) under churn: with six
 * slots the map has 16 entries, so identities collide and removals move
 * entries back.  After every step each registered identity is found (a
 * heartbeat gets no Error) and every other one is not (it gets one). */
START_TEST(test_dispatcher_identity_map_churn) {
    rec r;
    memset(&r, 0, sizeof r);
    nas_dispatcher_config cfg;
    nas_dispatcher_config_default(&cfg);
    cfg.max_workers = 6;
    nas_dispatcher_hooks h = {.ctx = &r, .send = fake_send};
    nas_dispatcher *d = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dispatcher_create(&d, &cfg, &h, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 42, 1);
    int in[40] = {0}, n_in = 0;
    for (int step = 0; step < 400; step++) { /* 16k messages: seconds under ASan */
        int k = (int)nas_rng_below(&rng, 40);
        char id[8];
        snprintf(id, sizeof id, "w%d", k);
        if (!in[k] && n_in < cfg.max_workers) {
            reg(d, id, step, NULL);
            in[k] = 1, n_in++;
        } else if (in[k]) {
            simple(d, id, NAS_MSG_DISCONNECT, step);
            in[k] = 0, n_in--;
        }
        nas_dispatcher_counts c;
        nas_dispatcher_counts_get(d, &c);
        ck_assert_int_eq(c.workers, n_in);
        ck_assert_int_eq(nas_dispatcher_workers(d, NULL, 0), n_in); /* walks the list */
        for (int j = 0; j < 40; j++) {
            snprintf(id, sizeof id, "w%d", j);
            r.n_out = 0;
            simple(d, id, NAS_MSG_HEARTBEAT, step);
            ck_assert_msg((count_to(&r, id, NAS_MSG_ERROR) == 0) == (in[j] != 0),
                          "step %d: %s registered %d", step, id, in[j]);
        }
    }
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_unregistered_and_bad_peers_get_errors) {
    rec r;
    nas_dispatcher *d = make(&r);
    simple(d, "zz", NAS_MSG_HEARTBEAT, 0);
    const nas_wire_msg *e = last_to(&r, "zz", NAS_MSG_ERROR);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->u.error.code, NAS_ESTATE);
    ck_assert_ptr_nonnull(strstr(e->u.error.message, "Register"));
    /* A worker may not send a Task. */
    reg(d, "w1", 0, NULL);
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_TASK);
    from(d, "w1", &m, 10);
    ck_assert_int_eq(last_to(&r, "w1", NAS_MSG_ERROR)->u.error.code, NAS_EPROTO);
    /* An undecodable message counts as a heartbeat and gets an Error. */
    nas_dispatcher_on_bad_message(d, (const uint8_t *)"w1", 2, NAS_EFORMAT, "garbage", 400);
    nas_dispatcher_tick(d, 800); /* alive: last seen at 400 */
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    ck_assert_int_eq(c.workers, 1);
    ck_assert_int_eq(last_to(&r, "w1", NAS_MSG_ERROR)->u.error.code, NAS_EFORMAT);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_packets_record_the_key_name) {
    rec r;
    nas_dispatcher *d = make(&r);
    nas_wire_packet pkt;
    memset(&pkt, 0, sizeof pkt);
    memcpy(pkt.identity, "id1", 3);
    pkt.id_len = 3;
    strcpy(pkt.user_id, "w7"); /* what the ZAP handler named the key */
    nas_wire_msg_init(&pkt.msg, NAS_MSG_REGISTER);
    strcpy(pkt.msg.u.reg.name, "claims-to-be-w1");
    pkt.msg.u.reg.protocol = NAS_PROTOCOL_VERSION;
    nas_dispatcher_on_packet(d, &pkt, NAS_OK, NULL, 0);
    nas_worker_info info[2];
    ck_assert_int_eq(nas_dispatcher_workers(d, info, 2), 1);
    ck_assert_str_eq(info[0].key, "w7");
    ck_assert_str_eq(info[0].name, "claims-to-be-w1");
    char json[1024];
    ck_assert_int_gt(nas_dispatcher_status_json(d, 0, json, sizeof json), 0);
    ck_assert_ptr_nonnull(strstr(json, "\"key\":\"w7\""));
    /* A failed receive is answered; a would-block one is not. */
    nas_dispatcher_on_packet(d, &pkt, NAS_EFORMAT, "envelope: garbage", 10);
    ck_assert_str_eq(last_to(&r, "id1", NAS_MSG_ERROR)->u.error.message, "envelope: garbage");
    int before = r.n_out;
    nas_dispatcher_on_packet(d, &pkt, NAS_EAGAIN, NULL, 20);
    ck_assert_int_eq(r.n_out, before);
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_status_snapshot) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    reg(d, "w2", 0, NULL);
    push(d, 11, 5);
    push(d, 12, 5);
    nas_wire_msg p;
    nas_wire_msg_init(&p, NAS_MSG_PROGRESS);
    p.u.progress = (nas_wire_progress){11, 1, 2, 4, 0.5, 0.6, 0.7};
    from(d, "w1", &p, 50);
    ck_assert_int_eq(r.progress, 1);
    nas_worker_info info[4];
    ck_assert_int_eq(nas_dispatcher_workers(d, info, 4), 2);
    ck_assert_str_eq(info[0].name, "w1");
    ck_assert_int_eq(info[0].state, NAS_WORKER_STATE_BUSY);
    ck_assert_int_eq(info[0].epoch, 2);
    ck_assert_int_eq(info[1].state, NAS_WORKER_STATE_REGISTERED);
    char json[2048];
    int n = nas_dispatcher_status_json(d, 100, json, sizeof json);
    ck_assert_int_gt(n, 0);
    ck_assert_ptr_nonnull(strstr(json, "\"name\":\"w1\""));
    ck_assert_ptr_nonnull(strstr(json, "\"task\":11"));
    ck_assert_ptr_nonnull(strstr(json, "\"queued\":1"));
    ck_assert_ptr_nonnull(strstr(json, "\"last_seen_ms_ago\":50"));
    /* What each worker computes on, from its Register, as nasctl shows it. */
    ck_assert_str_eq(info[0].engine.blas_kernels, "SkylakeX");
    ck_assert_ptr_nonnull(strstr(json, "\"engine\":{\"blas\":\"OpenBLAS 0.3.21\","
                                       "\"blas_kernels\":\"SkylakeX\",\"isa\":\"avx512\""));
    char doc[2100], *text = NULL;
    size_t text_len = 0;
    snprintf(doc, sizeof doc, "{\"campaign\":\"c\",\"dispatcher\":%s}", json);
    FILE *f = open_memstream(&text, &text_len);
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_status_print(doc, f, err), NAS_OK);
    fclose(f);
    ck_assert_msg(strstr(text, "OpenBLAS 0.3.21, SkylakeX kernels, CPU avx512, 1 BLAS thread(s)"),
                  "%s", text);
    ck_assert_msg(strstr(text, "core(s), GEMMs on own avx512\n"), "%s", text);
    free(text);
    ck_assert_int_eq(nas_dispatcher_status_json(d, 100, json, 20), NAS_ERANGE);
    /* Status requests are answered even from unregistered clients. */
    simple(d, "ctl", NAS_MSG_STATUS_REQUEST, 100);
    ck_assert_ptr_nonnull(last_to(&r, "ctl", NAS_MSG_STATUS_REPLY));
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_many_tasks_grow_tables) {
    rec r;
    nas_dispatcher *d = make(&r);
    for (uint64_t i = 1; i <= 5000; i++)
        push(d, i, 0);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    for (uint64_t i = 1; i <= 5000; i++) {
        r.n_out = 0;
        ck_assert_int_eq(nas_dispatcher_task_state(d, i, NULL), NAS_DISPATCH_TASK_LEASED);
        result(d, "w1", i, 1, (int64_t)i);
    }
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    ck_assert_uint_eq(c.done, 5000);
    ck_assert_int_eq(r.results, 5000);
    nas_dispatcher_destroy(&d);
}
END_TEST

/* Memory follows what is live, not the campaign's length: tasks pushed and
 * finished one at a time (as a campaign does) leave the map at a constant
 * size; the last DONE_KEEP finished keep their state, older ones are
 * forgotten, and a late result for one of those is still acknowledged as
 * a duplicate and never recorded.  And after a flood of registrations has
 * expired, the scans walk only the worker still there. */
START_TEST(test_dispatcher_memory_bounded_by_live_tasks) {
    rec r;
    nas_dispatcher *d = make(&r);
    reg(d, "w1", 0, NULL);
    simple(d, "w1", NAS_MSG_READY, 0);
    size_t cap = 0;
    for (uint64_t i = 1; i <= 6 * DONE_KEEP; i++) {
        r.n_out = 0;
        push(d, i, (int64_t)i);
        result(d, "w1", i, 1, (int64_t)i);
        ck_assert_ptr_nonnull(last_to(&r, "w1", NAS_MSG_ACK));
        ck_assert_int_eq(last_to(&r, "w1", NAS_MSG_ACK)->u.ack.duplicate, 0);
        if (i == 3 * DONE_KEEP) cap = d->cap_tasks;
    }
    ck_assert_uint_eq(d->cap_tasks, cap); /* no growth over the second half */
    ck_assert_uint_le(d->n_tasks, DONE_KEEP);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 6 * DONE_KEEP, NULL), NAS_DISPATCH_TASK_DONE);
    ck_assert_int_eq(nas_dispatcher_task_state(d, 1, NULL), NAS_DISPATCH_TASK_UNKNOWN);
    r.n_out = 0;
    result(d, "w1", 1, 1, 100000);
    ck_assert_int_eq(last_to(&r, "w1", NAS_MSG_ACK)->u.ack.duplicate, 1);
    ck_assert_int_eq(r.results, 6 * DONE_KEEP);
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    ck_assert_uint_eq(c.done, 6 * DONE_KEEP);
    /* A flood of 300 registrations, silent afterwards, expires; the worker
     * list is then w1 alone, which still gets the next task. */
    for (int k = 0; k < 300; k++) {
        char id[8];
        snprintf(id, sizeof id, "f%d", k);
        reg(d, id, 100000, NULL);
        r.n_out = 0;
    }
    simple(d, "w1", NAS_MSG_HEARTBEAT, 100400);
    nas_dispatcher_tick(d, 100600);
    ck_assert_int_eq(nas_dispatcher_workers(d, NULL, 0), 1);
    ck_assert_int_eq(d->live_head, d->live_tail);
    r.n_out = 0;
    push(d, 6 * DONE_KEEP + 1, 100600);
    ck_assert_ptr_nonnull(last_to(&r, "w1", NAS_MSG_TASK));
    nas_dispatcher_destroy(&d);
}
END_TEST

START_TEST(test_dispatcher_allocation_failures_are_errors) {
    /* Fail the n-th allocation for every n until a full run succeeds: each
     * failure must come back as NAS_ENOMEM, without a crash or a leak. */
    int enomem = 0;
    for (long n = 1;; n++) {
        rec r;
        memset(&r, 0, sizeof r);
        nas_dispatcher_config cfg;
        nas_dispatcher_config_default(&cfg);
        cfg.max_workers = 8;
        nas_dispatcher_hooks h = {.ctx = &r, .send = fake_send};
        nas_dispatcher *d = NULL;
        char err[NAS_ERR_LEN];
        nas_alloc_fail_after(n);
        int rc = nas_dispatcher_create(&d, &cfg, &h, err);
        for (uint64_t i = 1; rc == NAS_OK && i <= 1100; i++) {
            nas_wire_task t;
            memset(&t, 0, sizeof t);
            t.task_id = i, t.attempt = 1, t.fidelity = nas_fidelity_default();
            strcpy(t.genome, "x");
            rc = nas_dispatcher_push(d, &t, 0, err);
        }
        nas_alloc_fail_reset();
        nas_dispatcher_destroy(&d);
        if (rc == NAS_OK) break;
        ck_assert_int_eq(rc, NAS_ENOMEM);
        ck_assert_ptr_nonnull(strstr(err, "memory"));
        enomem++;
    }
    ck_assert_int_gt(enomem, 3);
}
END_TEST

// ---- random scripts -----------------------------------------------------------------------

typedef struct chaos {
    int results[64]; /* recorded results per task id */
    int failed[64];
    int sends;
} chaos;

static int chaos_send(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *m) {
    ((chaos *)ctx)->sends++;
    return NAS_OK;
}
static int chaos_result(void *ctx, const nas_wire_result *r, const char *w) {
    ((chaos *)ctx)->results[r->task_id]++;
    return NAS_OK;
}
static void chaos_failed(void *ctx, const nas_task_ref *ref, int code, const char *reason) {
    ((chaos *)ctx)->failed[ref->task_id]++;
}

START_TEST(test_dispatcher_random_scripts_keep_invariants) {
    /* Thousands of random events from eight workers that crash, reconnect,
     * deliver late, fail and give back: no task is ever recorded twice, the
     * task counts always add up, and every lease has a busy worker. */
    nas_log_set_level(NAS_LOG_ERROR); /* thousands of expected warnings */
    for (uint64_t seed = 1; seed <= 5; seed++) {
        chaos c;
        memset(&c, 0, sizeof c);
        nas_dispatcher_config cfg;
        nas_dispatcher_config_default(&cfg);
        cfg.heartbeat_ms = 100;
        nas_dispatcher_hooks h = {
            .ctx = &c, .send = chaos_send, .on_result = chaos_result, .on_failed = chaos_failed};
        nas_dispatcher *d = NULL;
        char err[NAS_ERR_LEN];
        ck_assert_int_eq(nas_dispatcher_create(&d, &cfg, &h, err), NAS_OK);
        nas_rng rng;
        nas_rng_init(&rng, seed, 7);
        int64_t now = 0;
        int gen[8] = {0}, pushed = 0;
        for (int step = 0; step < 1500; step++) {
            int w = (int)nas_rng_below(&rng, 8);
            char id[16];
            snprintf(id, sizeof id, "w%d.%d", w, gen[w]);
            nas_wire_msg m;
            uint64_t task = 1 + nas_rng_below(&rng, 60);
            uint32_t attempt = 1 + nas_rng_below(&rng, 3);
            switch (nas_rng_below(&rng, 10)) {
            case 0:
                gen[w]++;
                snprintf(id, sizeof id, "w%d.%d", w, gen[w]);
                reg(d, id, now,
                    nas_rng_below(&rng, 3) == 0 ? &(nas_task_ref){task, attempt} : NULL);
                break;
            case 1:
                simple(d, id, NAS_MSG_READY, now);
                break;
            case 2:
                simple(d, id, NAS_MSG_HEARTBEAT, now);
                break;
            case 3:
                result(d, id, task, attempt, now);
                break;
            case 4:
                failure(d, id, task, attempt, (int)nas_rng_below(&rng, 2), now);
                break;
            case 5:
                simple(d, id, NAS_MSG_DISCONNECT, now);
                break;
            case 6:
                now += nas_rng_below(&rng, 300);
                nas_dispatcher_tick(d, now);
                break;
            case 7:
                if (pushed < 60) push(d, (uint64_t)++pushed, now);
                break;
            case 8:
                nas_dispatcher_cancel(d, task, now);
                break;
            default: {
                /* A worker answers its real lease, as a well-behaved one would. */
                nas_worker_info info[64];
                int n = nas_dispatcher_workers(d, info, 64);
                if (n > 64) n = 64;
                if (n == 0) break;
                nas_worker_info *wi = &info[nas_rng_below(&rng, (uint32_t)n)];
                if (!wi->has_task) break;
                nas_wire_msg_init(&m, NAS_MSG_RESULT);
                m.u.result.task_id = wi->task.task_id;
                m.u.result.attempt = wi->task.attempt;
                m.u.result.val_acc = 0.5;
                from(d, wi->name, &m, now);
                break;
            }
            }
            nas_dispatcher_counts k;
            nas_dispatcher_counts_get(d, &k);
            ck_assert_uint_eq(k.queued + k.leased + k.done + k.failed + k.cancelled,
                              (size_t)pushed);
            for (int t = 0; t < 64; t++)
                ck_assert_int_le(c.results[t] + c.failed[t], 1);
            nas_worker_info info[64];
            int n = nas_dispatcher_workers(d, info, 64);
            ck_assert_int_le(n, 64);
            for (uint64_t t = 1; t <= (uint64_t)pushed; t++) {
                if (nas_dispatcher_task_state(d, t, NULL) != NAS_DISPATCH_TASK_LEASED) continue;
                int holders = 0;
                for (int i = 0; i < n; i++)
                    holders += info[i].has_task && info[i].task.task_id == t &&
                               info[i].state == NAS_WORKER_STATE_BUSY;
                ck_assert_int_ge(holders, 1);
            }
        }
        nas_dispatcher_destroy(&d);
    }
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("dispatcher");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_dispatcher_leases_to_ready_worker_only);
    tcase_add_test(tc, test_dispatcher_task_lost_again_and_again_counts);
    tcase_add_test(tc, test_dispatcher_peek_lease_predicts_push);
    tcase_add_test(tc, test_dispatcher_hold_keeps_the_queue);
    tcase_add_test(tc, test_dispatcher_heartbeats_and_expiry_requeue);
    tcase_add_test(tc, test_dispatcher_duplicate_result_recorded_once);
    tcase_add_test(tc, test_dispatcher_refused_persistence_keeps_task);
    tcase_add_test(tc, test_dispatcher_k_failures_fail_for_good);
    tcase_add_test(tc, test_dispatcher_give_back_does_not_count);
    tcase_add_test(tc, test_dispatcher_late_delivery_after_reconnect);
    tcase_add_test(tc, test_dispatcher_reconnect_while_running_reattaches);
    tcase_add_test(tc, test_dispatcher_reattached_worker_failure_releases_lease);
    tcase_add_test(tc, test_dispatcher_stuck_task_is_cancelled_and_requeued);
    tcase_add_test(tc, test_dispatcher_reconnect_takes_over_the_lease);
    tcase_add_test(tc, test_dispatcher_register_without_its_lease_releases_it);
    tcase_add_test(tc, test_dispatcher_lease_belongs_to_name_host_and_key);
    tcase_add_test(tc, test_dispatcher_cancel_queued_and_leased);
    tcase_add_test(tc, test_dispatcher_unregistered_and_bad_peers_get_errors);
    tcase_add_test(tc, test_dispatcher_identity_map_churn);
    tcase_add_test(tc, test_dispatcher_status_snapshot);
    tcase_add_test(tc, test_dispatcher_packets_record_the_key_name);
    tcase_add_test(tc, test_dispatcher_many_tasks_grow_tables);
    tcase_add_test(tc, test_dispatcher_memory_bounded_by_live_tasks);
    suite_add_tcase(s, tc);
    /* The sweeps run thousands of steps under ASan: a longer timeout. */
    TCase *props = tcase_create("props");
    tcase_set_timeout(props, 90);
    tcase_add_test(props, test_dispatcher_allocation_failures_are_errors);
    tcase_add_test(props, test_dispatcher_random_scripts_keep_invariants);
    suite_add_tcase(s, props);
    return s;
}

NAS_TEST_MAIN(make_suite)
