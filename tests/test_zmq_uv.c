/*
 * test_zmq_uv.c - the ZeroMQ/libuv bridge with a real loop and real
 * sockets: a burst of 10,000 messages all arrives while a timer keeps
 * running between batches; messages that arrive while the loop is busy
 * are not stranded; and sends from a timer (which consume the edge of
 * ZMQ_FD) never strand replies.
 */
#include "common/clock.h"
#include "common/err.h"
#include "master/zmq_uv.h"
#include "tests/harness.h"

#include <pthread.h>
#include <string.h>
#include <uv.h>
#include <zmq.h>

typedef struct state {
    nas_zmq_uv *bridge;
    uv_timer_t timer, guard;
    size_t got, want;
    size_t got_at_first_tick;
    int ticks;
    int timed_out;
    void *out; /* socket the timer sends on (echo test) */
    int sent, to_send;
    size_t empties; /* eager reader: calls that found nothing */
} state;

static void read_one(nas_zmq_uv *z, void *sock, void *data) {
    state *s = data;
    char buf[64];
    while (zmq_recv(sock, buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
        int more = 0;
        size_t sz = sizeof more;
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
        if (!more) break;
    }
    s->got++;
    if (s->got == s->want) uv_stop(uv_handle_get_loop((uv_handle_t *)&s->timer));
}

static void on_guard(uv_timer_t *t) {
    state *s = t->data;
    s->timed_out = 1;
    uv_stop(uv_handle_get_loop((uv_handle_t *)t));
}

static void close_all(uv_loop_t *loop, state *s) {
    nas_zmq_uv_close(&s->bridge);
    uv_close((uv_handle_t *)&s->timer, NULL);
    uv_close((uv_handle_t *)&s->guard, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

static void setup(uv_loop_t *loop, state *s, void *sock, int batch) {
    ck_assert_int_eq(uv_loop_init(loop), 0);
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_zmq_uv_create(&s->bridge, loop, sock, batch, read_one, s, err), NAS_OK);
    uv_timer_init(loop, &s->timer);
    uv_timer_init(loop, &s->guard);
    s->timer.data = s->guard.data = s;
    uv_timer_start(&s->guard, on_guard, 10000, 0);
}

// ---- burst -----------------------------------------------------------------------------------

static void on_tick(uv_timer_t *t) {
    state *s = t->data;
    if (s->ticks++ == 0) s->got_at_first_tick = s->got;
}

/* A PULL bound at `ep` and a PUSH connected to it, without high-water
 * marks, with `count` one-byte messages `m` already queued. */
static void queued_pair(void *ctx, const char *ep, int count, const char *m, void **pull,
                        void **push) {
    *pull = zmq_socket(ctx, ZMQ_PULL);
    *push = zmq_socket(ctx, ZMQ_PUSH);
    int zero = 0;
    zmq_setsockopt(*pull, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(*push, ZMQ_SNDHWM, &zero, sizeof zero);
    ck_assert_int_eq(zmq_bind(*pull, ep), 0);
    ck_assert_int_eq(zmq_connect(*push, ep), 0);
    for (int i = 0; i < count; i++)
        ck_assert_int_eq(zmq_send(*push, m, 1, 0), 1);
}

START_TEST(test_zmq_uv_burst_of_10000_with_timers_running) {
    void *ctx = zmq_ctx_new();
    void *pull, *push;
    /* The whole burst is queued before the loop starts. */
    queued_pair(ctx, "inproc://burst", 10000, "m", &pull, &push);
    uv_loop_t loop;
    state s;
    memset(&s, 0, sizeof s);
    s.want = 10000;
    setup(&loop, &s, pull, 64);
    uv_timer_start(&s.timer, on_tick, 0, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(s.timed_out, 0);
    ck_assert_uint_eq(s.got, 10000);
    /* The timer ran before the burst was drained: batches are capped. */
    ck_assert_uint_lt(s.got_at_first_tick, 10000);
    nas_zmq_uv_stats st;
    nas_zmq_uv_stats_get(s.bridge, &st);
    ck_assert_uint_eq(st.messages, 10000);
    ck_assert_uint_ge(st.capped, 10000 / 64 - 1);
    close_all(&loop, &s);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
}
END_TEST

// ---- busy loop -----------------------------------------------------------------------------

typedef struct sender {
    void *ctx;
    const char *endpoint;
    int n;
    int delay_ms;
} sender;

static void *send_later(void *arg) {
    sender *p = arg;
    void *push = zmq_socket(p->ctx, ZMQ_PUSH);
    zmq_connect(push, p->endpoint);
    nas_sleep_ms(p->delay_ms);
    for (int i = 0; i < p->n; i++)
        zmq_send(push, "x", 1, 0);
    int linger = 1000;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(push);
    return NULL;
}

static void on_block(uv_timer_t *t) {
    /* The loop is busy (a slow callback) while messages arrive. */
    nas_sleep_ms(150);
}

// ---- eager reading ---------------------------------------------------------------------------

/* One receive per call, as the master's control reader does; EAGAIN is
 * reported, which lets the bridge skip ZMQ_EVENTS between messages. */
static void read_eager(nas_zmq_uv *z, void *sock, void *data) {
    state *s = data;
    char buf[64];
    if (zmq_recv(sock, buf, sizeof buf, ZMQ_DONTWAIT) < 0) {
        s->empties++;
        nas_zmq_uv_report_empty(z);
        return;
    }
    s->got++;
    if (s->got == s->want) uv_stop(uv_handle_get_loop((uv_handle_t *)&s->timer));
}

/* A queued burst and then a late trickle from another thread (arriving
 * while the loop is busy): everything is read, batches stay capped, and
 * only calls that took a message count as messages. */
START_TEST(test_zmq_uv_eager_reader_reads_everything) {
    void *ctx = zmq_ctx_new();
    void *pull, *push;
    queued_pair(ctx, "inproc://eager", 1000, "m", &pull, &push);
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    state s;
    memset(&s, 0, sizeof s);
    s.want = 1050;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_zmq_uv_create(&s.bridge, &loop, pull, 64, read_eager, &s, err), NAS_OK);
    nas_zmq_uv_set_eager(s.bridge);
    uv_timer_init(&loop, &s.timer);
    uv_timer_init(&loop, &s.guard);
    s.timer.data = s.guard.data = &s;
    uv_timer_start(&s.guard, on_guard, 10000, 0);
    uv_timer_start(&s.timer, on_block, 20, 0);
    sender p = {ctx, "inproc://eager", 50, 60};
    pthread_t th;
    pthread_create(&th, NULL, send_later, &p);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    ck_assert_int_eq(s.timed_out, 0);
    ck_assert_uint_eq(s.got, 1050);
    nas_zmq_uv_stats st;
    nas_zmq_uv_stats_get(s.bridge, &st);
    ck_assert_uint_eq(st.messages, 1050);
    ck_assert_uint_ge(st.capped, 1000 / 64 - 1);
    /* An empty read ends a run of reads; there are never more of them
     * than turns that read (no spinning on an empty socket). */
    ck_assert_uint_le(s.empties, 1050 / 2);
    close_all(&loop, &s);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
}
END_TEST

START_TEST(test_zmq_uv_messages_arriving_while_busy_are_not_stranded) {
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    ck_assert_int_eq(zmq_bind(pull, "tcp://127.0.0.1:*"), 0);
    char ep[256];
    size_t n = sizeof ep;
    zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ep, &n);
    uv_loop_t loop;
    state s;
    memset(&s, 0, sizeof s);
    s.want = 50;
    setup(&loop, &s, pull, 8);
    uv_timer_start(&s.timer, on_block, 20, 0);
    sender p = {ctx, ep, 50, 60};
    pthread_t th;
    pthread_create(&th, NULL, send_later, &p);
    int64_t t0 = nas_now_ms();
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    ck_assert_int_eq(s.timed_out, 0);
    ck_assert_uint_eq(s.got, 50);
    ck_assert_int_lt(nas_now_ms() - t0, 3000);
    close_all(&loop, &s);
    zmq_close(pull);
    zmq_ctx_term(ctx);
}
END_TEST

// ---- sends from a timer -----------------------------------------------------------------------

static void *echo_main(void *arg) {
    void *router = arg;
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, router, 0) < 0) break;
        zmq_msg_recv(&body, router, 0);
        int stop = zmq_msg_size(&body) == 4 && memcmp(zmq_msg_data(&body), "stop", 4) == 0;
        if (!stop) {
            zmq_msg_send(&id, router, ZMQ_SNDMORE);
            zmq_msg_send(&body, router, 0);
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
        if (stop) break;
    }
    return NULL;
}

static void on_send_tick(uv_timer_t *t) {
    state *s = t->data;
    /* Several sends per tick: each may swallow the ZMQ_FD edge of replies
     * already queued for us. */
    for (int i = 0; i < 5 && s->sent < s->to_send; i++, s->sent++)
        zmq_send(s->out, "ping", 4, 0);
    if (s->sent == s->to_send) uv_timer_stop(t);
}

START_TEST(test_zmq_uv_sends_from_timer_never_strand_replies) {
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    ck_assert_int_eq(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    char ep[256];
    size_t n = sizeof ep;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &n);
    ck_assert_int_eq(zmq_connect(dealer, ep), 0);
    pthread_t th;
    pthread_create(&th, NULL, echo_main, router);
    uv_loop_t loop;
    state s;
    memset(&s, 0, sizeof s);
    s.want = 2000;
    s.to_send = 2000;
    s.out = dealer;
    setup(&loop, &s, dealer, 16);
    uv_timer_start(&s.timer, on_send_tick, 0, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(s.timed_out, 0);
    ck_assert_uint_eq(s.got, 2000);
    zmq_send(dealer, "stop", 4, 0);
    pthread_join(th, NULL);
    close_all(&loop, &s);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
}
END_TEST

// ---- a consumed edge ----------------------------------------------------------------------------

START_TEST(test_zmq_uv_consumed_edge_does_not_strand) {
    /* Messages wait, but ZMQ_FD is no longer readable because another call
     * on the socket (here: reading ZMQ_EVENTS) consumed the signal.  Only
     * the prepare-phase re-check can find them. */
    void *ctx = zmq_ctx_new();
    void *pull, *push;
    queued_pair(ctx, "inproc://edge", 10, "e", &pull, &push);
    int events = 0;
    size_t sz = sizeof events;
    zmq_getsockopt(pull, ZMQ_EVENTS, &events, &sz);
    ck_assert(events & ZMQ_POLLIN);
    uv_loop_t loop;
    state s;
    memset(&s, 0, sizeof s);
    s.want = 10;
    setup(&loop, &s, pull, 4);
    uv_timer_start(&s.guard, on_guard, 1000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(s.timed_out, 0);
    ck_assert_uint_eq(s.got, 10);
    close_all(&loop, &s);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
}
END_TEST

// ---- closing from the reader ----------------------------------------------------------------

static void read_then_close(nas_zmq_uv *z, void *sock, void *data) {
    state *s = data;
    char buf[8];
    zmq_recv(sock, buf, sizeof buf, ZMQ_DONTWAIT);
    if (++s->got == s->want) nas_zmq_uv_close(&s->bridge); /* the reader closes its own bridge */
}

START_TEST(test_zmq_uv_close_from_the_reader) {
    void *ctx = zmq_ctx_new();
    void *pull, *push;
    queued_pair(ctx, "inproc://close", 20, "c", &pull, &push);
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    state s;
    memset(&s, 0, sizeof s);
    s.want = 5;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_zmq_uv_create(&s.bridge, &loop, pull, 100, read_then_close, &s, err),
                     NAS_OK);
    /* With the bridge closed nothing keeps the loop alive: uv_run returns. */
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_uint_eq(s.got, 5);
    ck_assert_ptr_null(s.bridge);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
}
END_TEST

// ---- burst hooks (group commit) ---------------------------------------------------------

/* What the hooks saw: bursts opened and closed, messages read inside an
 * open burst, and the largest burst. */
typedef struct bursts {
    state s;
    int open, begins, ends, inside, largest, cur;
} bursts;

static void burst_begin(void *data) {
    bursts *b = data;
    ck_assert_int_eq(b->open, 0); /* never nested */
    b->open = 1;
    b->begins++;
    b->cur = 0;
}

static void burst_end(void *data) {
    bursts *b = data;
    ck_assert_int_eq(b->open, 1);
    b->open = 0;
    b->ends++;
    if (b->cur > b->largest) b->largest = b->cur;
}

static void read_in_burst(nas_zmq_uv *z, void *sock, void *data) {
    bursts *b = data;
    char buf[8];
    zmq_recv(sock, buf, sizeof buf, ZMQ_DONTWAIT);
    b->inside += b->open;
    b->cur++;
    if (++b->s.got == b->s.want) nas_zmq_uv_close(&b->s.bridge);
}

/* 1000 queued messages with a cap of 64: every message is read inside a
 * burst, no burst is larger than the cap, every burst that began ended
 * (the last one too, although its reader closed the bridge), and the
 * messages came in few bursts, not one per message. */
START_TEST(test_zmq_uv_batch_hooks_frame_each_burst) {
    void *ctx = zmq_ctx_new();
    void *pull, *push;
    queued_pair(ctx, "inproc://hooks", 1000, "h", &pull, &push);
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    bursts b;
    memset(&b, 0, sizeof b);
    b.s.want = 1000;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_zmq_uv_create(&b.s.bridge, &loop, pull, 64, read_in_burst, &b, err),
                     NAS_OK);
    nas_zmq_uv_set_batch(b.s.bridge, burst_begin, burst_end);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_uint_eq(b.s.got, 1000);
    ck_assert_int_eq(b.inside, 1000);
    ck_assert_int_eq(b.begins, b.ends);
    ck_assert_int_eq(b.open, 0);
    ck_assert_int_le(b.largest, 64);
    ck_assert_int_ge(b.begins, 1000 / 64);
    ck_assert_int_le(b.begins, 100);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("zmq_uv");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_zmq_uv_burst_of_10000_with_timers_running);
    tcase_add_test(tc, test_zmq_uv_messages_arriving_while_busy_are_not_stranded);
    tcase_add_test(tc, test_zmq_uv_eager_reader_reads_everything);
    tcase_add_test(tc, test_zmq_uv_sends_from_timer_never_strand_replies);
    tcase_add_test(tc, test_zmq_uv_consumed_edge_does_not_strand);
    tcase_add_test(tc, test_zmq_uv_close_from_the_reader);
    tcase_add_test(tc, test_zmq_uv_batch_hooks_frame_each_burst);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
