// nas-test: label=e2e timeout=900
/*
 * test_hostile_peer.c - a registered peer that lies, against a real
 * nas-master and a real nas-worker (docs/PROTOCOL.md s4.8):
 *  - every wrong message (a Result, Progress or Failure for a task never
 *    leased to it, an attempt of 0 or 2^32-1, an unknown task, a Register
 *    whose `running` names a queued task or another worker's lease) is
 *    refused with Error or Cancel, and the master keeps going to the end
 *    of the campaign, every result the honest worker's;
 *  - a worker that refuses a Task (busy with another) does not keep the
 *    lease: it goes back to the queue and is finished elsewhere;
 *  - names that are not UTF-8 or hold control characters are refused,
 *    and what a peer sends reaches the log escaped; a burst of frames
 *    that are no message grows the log by a bounded number of lines;
 *  - with CurveZMQ a name belongs to its key: another key cannot register
 *    under it, nor deliver its results, even after a master kill -9;
 *  - after a master restart, a task its worker still runs is given to no
 *    other worker;
 *  - thousands of registrations leave the master's memory and the
 *    store's worker rows bounded while the real worker is served;
 *  - a peer that announces a frame larger than any message of the control
 *    or status socket is dropped as the frame's header arrives (ZeroMQ
 *    would otherwise set its whole size aside and fill it as it came);
 *  - idle connections cannot take the master's descriptors: started with
 *    a soft limit of 256, it raises it to the hard one, and answers status
 *    while 400 connections sit idle on its status port.
 * The peer is a real DEALER socket speaking the protocol through
 * common/wire (raw protobuf only where the encoder would refuse).
 */
#include "common/alloc.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/wire.h"
#include "proto/nas.pb-c.h"
#include "tests/e2e_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <zmq.h>

// ---- the fake peer ---------------------------------------------------------------------------

typedef struct peer {
    void *ctx, *s;
} peer;

/* A DEALER on `ep`; with keys, a CurveZMQ client of the master key. */
static void peer_open(peer *p, const char *ep, const nas_keypair *kp, const char *server_pub) {
    p->ctx = zmq_ctx_new();
    p->s = zmq_socket(p->ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(p->s, ZMQ_LINGER, &linger, sizeof linger);
    char err[NAS_ERR_LEN];
    if (kp) ck_assert_int_eq(nas_keys_curve_client(p->s, kp, server_pub, err), NAS_OK);
    ck_assert_int_eq(zmq_connect(p->s, ep), 0);
}

static void peer_close(peer *p) {
    zmq_close(p->s);
    zmq_ctx_term(p->ctx);
}

static void peer_send(peer *p, const nas_wire_msg *m) {
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_wire_send(p->s, NULL, 0, m, NULL, 0, 0, err) == NAS_OK, "%s", err);
}

/* The next message within ms into *out (its type), Heartbeats skipped
 * unless `hb`; 0 when none came. */
static int peer_next_hb(peer *p, int64_t ms, nas_wire_msg *out, int hb) {
    int64_t end = nas_now_ms() + ms;
    nas_wire_packet *pkt = nas_malloc(sizeof *pkt);
    int type = 0;
    while (!type && nas_now_ms() < end) {
        zmq_pollitem_t it = {p->s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0) continue;
        char err[NAS_ERR_LEN];
        if (nas_wire_recv(p->s, 0, 1, pkt, err) == NAS_OK &&
            (hb || pkt->msg.type != NAS_MSG_HEARTBEAT)) {
            type = pkt->msg.type;
            if (out) *out = pkt->msg;
        }
        nas_wire_packet_fini(pkt);
    }
    nas_free(pkt);
    return type;
}

static int peer_next(peer *p, int64_t ms, nas_wire_msg *out) {
    return peer_next_hb(p, ms, out, 0);
}

/* Send m and expect an answer of `type` (for an Error, its code in *code). */
static void expect(peer *p, const nas_wire_msg *m, int type, int *code) {
    peer_send(p, m);
    nas_wire_msg got;
    int t = peer_next_hb(p, 5000, &got, type == NAS_MSG_HEARTBEAT);
    ck_assert_msg(t == type, "%s answered with %s, expected %s", nas_wire_type_name(m->type),
                  t ? nas_wire_type_name(t) : "nothing", nas_wire_type_name(type));
    if (code) *code = t == NAS_MSG_ERROR ? got.u.error.code : 0;
}

static void reg_msg(nas_wire_msg *m, const char *name, const nas_task_ref *running) {
    nas_wire_msg_init(m, NAS_MSG_REGISTER);
    snprintf(m->u.reg.name, sizeof m->u.reg.name, "%s", name);
    snprintf(m->u.reg.host, sizeof m->u.reg.host, "nowhere");
    snprintf(m->u.reg.version, sizeof m->u.reg.version, "0");
    m->u.reg.protocol = NAS_PROTOCOL_VERSION;
    m->u.reg.cores = 1;
    if (running) m->u.reg.has_running = 1, m->u.reg.running = *running;
}

static void result_msg(nas_wire_msg *m, uint64_t task, uint32_t attempt) {
    nas_wire_msg_init(m, NAS_MSG_RESULT);
    m->u.result.task_id = task;
    m->u.result.attempt = attempt;
    m->u.result.val_acc = 0.99;
    m->u.result.val_loss = 0.01;
    m->u.result.seconds = 1;
}

/* One envelope around a payload packed by hand, so that what the encoder
 * refuses still goes out. */
static void raw_send(peer *p, int type, const uint8_t *payload, size_t plen) {
    uint8_t buf[1024];
    Naspb__Envelope env = NASPB__ENVELOPE__INIT;
    env.has_protocol = env.has_type = env.has_payload = 1;
    env.protocol = NAS_PROTOCOL_VERSION;
    env.type = type;
    env.payload.data = (uint8_t *)payload;
    env.payload.len = plen;
    size_t len = naspb__envelope__pack(&env, buf);
    ck_assert_int_ge(zmq_send(p->s, buf, len, 0), 0);
}

static void raw_register(peer *p, const char *name) {
    Naspb__Register r = NASPB__REGISTER__INIT;
    r.name = (char *)name;
    r.host = (char *)"nowhere";
    r.has_protocol = 1;
    r.protocol = NAS_PROTOCOL_VERSION;
    uint8_t payload[512];
    raw_send(p, NAS_MSG_REGISTER, payload, naspb__register__pack(&r, payload));
}

static void raw_result(peer *p, uint64_t task, uint32_t attempt) {
    Naspb__Result r = NASPB__RESULT__INIT;
    r.has_task_id = r.has_attempt = 1;
    r.task_id = task;
    r.attempt = attempt;
    uint8_t payload[512];
    raw_send(p, NAS_MSG_RESULT, payload, naspb__result__pack(&r, payload));
}

// ---- the campaign ----------------------------------------------------------------------------

static pid_t master(const e2e_env *e, const char *log, const char *const *more) {
    const char *extra[16] = {"--synthetic", "--db", e->db, "--resume-grace-ms", "10000"};
    int n = 5;
    for (int i = 0; more && more[i]; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    return e2e_start_master(log, NULL, e->cfg, extra);
}

/* The first queued search task, or 0. */
static int64_t queued_task(const char *db) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    if (nas_store_open_ro(&st, db, err) != NAS_OK) return 0;
    nas_store_task_info *ti = NULL;
    int n = nas_store_task_list(st, NAS_STORE_TASK_QUEUED, NAS_STORE_STAGE_SEARCH, &ti, err);
    int64_t id = n > 0 ? ti[0].id : 0;
    nas_free(ti);
    nas_store_close(&st);
    return id;
}

/* Every search result came from `who`; returns the attempt of task k. */
static int all_results_from(const char *db, const char *who, int64_t k) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    int attempt = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(r[i].worker, who);
        if (r[i].task_id == k) attempt = r[i].attempt;
    }
    nas_store_records_free(r, n);
    nas_store_close(&st);
    return attempt;
}

/* Keep the peer alive (heartbeats) until the master exits; its status. */
static int serve_until_exit(peer *p, pid_t m, int64_t ms) {
    int64_t end = nas_now_ms() + ms;
    nas_wire_msg hb;
    nas_wire_msg_init(&hb, NAS_MSG_HEARTBEAT);
    while (nas_now_ms() < end) {
        int rc = e2e_wait(m, 0);
        if (rc != -1) return rc;
        peer_send(p, &hb);
        peer_next(p, 100, NULL);
    }
    return -1;
}

// ---- wrong messages -----------------------------------------------------------------------------

START_TEST(test_hostile_wrong_messages_never_stop_the_master) {
    e2e_env e;
    e2e_env_init(&e, 40);
    const int budget = 8;
    e2e_write_campaign(e.cfg, "hostile", budget, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    char wlog[PATH_MAX];
    e2e_log_path(&e, "honest", wlog, sizeof wlog);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "honest", "300", NULL);
    pid_t m = master(&e, e.mlog, NULL);
    ck_assert(e2e_wait_counts(e.db, 0, 1, 30000));
    int64_t k = e2e_leased_task(e.db, "honest", NULL, 0);
    ck_assert_int_gt(k, 0);

    /* A second worker, bob, makes the campaign propose a second task, q;
     * he leaves as soon as he is given it, and q goes back to the queue,
     * where it stays while the honest worker is busy (a peer that only
     * registers, as mallory, is not proposed for). */
    peer p, bob;
    peer_open(&bob, e.ctl, NULL, NULL);
    nas_wire_msg msg;
    int code;
    reg_msg(&msg, "bob", NULL);
    expect(&bob, &msg, NAS_MSG_HEARTBEAT, NULL);
    nas_wire_msg_init(&msg, NAS_MSG_READY);
    expect(&bob, &msg, NAS_MSG_TASK, NULL);
    nas_wire_msg_init(&msg, NAS_MSG_DISCONNECT);
    peer_send(&bob, &msg);
    int64_t q = 0, end = nas_now_ms() + 10000;
    while (!(q = queued_task(e.db)) && nas_now_ms() < end)
        nas_sleep_ms(20);
    peer_close(&bob);
    ck_assert_int_gt(q, 0);
    peer_open(&p, e.ctl, NULL, NULL);
    reg_msg(&msg, "mallory", NULL);
    expect(&p, &msg, NAS_MSG_HEARTBEAT, NULL);

    /* Results for a lease it never held: refused, whatever the attempt. */
    const uint32_t attempts[] = {1, 2, 4294967295u};
    for (int i = 0; i < 3; i++) {
        result_msg(&msg, (uint64_t)q, attempts[i]);
        expect(&p, &msg, NAS_MSG_ERROR, &code);
        ck_assert_int_eq(code, NAS_EAUTH);
        result_msg(&msg, (uint64_t)k, attempts[i]);
        expect(&p, &msg, NAS_MSG_ERROR, &code);
        ck_assert_int_eq(code, NAS_EAUTH);
    }
    raw_result(&p, (uint64_t)k, 0); /* attempts count from 1: the decoder refuses it */
    ck_assert_int_eq(peer_next(&p, 5000, &msg), NAS_MSG_ERROR);
    ck_assert_int_lt(msg.u.error.code, 0);
    result_msg(&msg, 999999, 1); /* unknown: acknowledged as a duplicate, dropped */
    expect(&p, &msg, NAS_MSG_ACK, NULL);
    /* Progress and Failures for another worker's lease change nothing. */
    nas_wire_msg_init(&msg, NAS_MSG_PROGRESS);
    msg.u.progress = (nas_wire_progress){
        .task_id = (uint64_t)k, .attempt = 1, .epoch = 1, .epochs = 2, .val_acc = 0.5};
    peer_send(&p, &msg);
    nas_wire_msg_init(&msg, NAS_MSG_FAILURE);
    msg.u.failure.task_id = (uint64_t)k;
    msg.u.failure.attempt = 1;
    msg.u.failure.code = NAS_EDIVERGED;
    snprintf(msg.u.failure.reason, sizeof msg.u.failure.reason, "forged");
    peer_send(&p, &msg);
    msg.u.failure.task_id = (uint64_t)q;
    msg.u.failure.give_back = 1;
    peer_send(&p, &msg);
    /* Register claiming to run a queued task, or another's lease: Cancel. */
    nas_task_ref bogus = {(uint64_t)q, 4294967295u}, theirs = {(uint64_t)k, 1};
    reg_msg(&msg, "mallory", &bogus);
    expect(&p, &msg, NAS_MSG_CANCEL, NULL);
    reg_msg(&msg, "mallory", &theirs);
    expect(&p, &msg, NAS_MSG_CANCEL, NULL);
    /* Names that are not UTF-8 or carry control characters. */
    raw_register(&p, "\x9d\xff\xfe"
                     "A");
    ck_assert_int_eq(peer_next(&p, 5000, &msg), NAS_MSG_ERROR);
    ck_assert_int_eq(msg.u.error.code, NAS_EFORMAT);
    raw_register(&p, "evil\n2026-12-07T00:00:00.000Z E nas-master: FORGED-NAME");
    ck_assert_int_eq(peer_next(&p, 5000, &msg), NAS_MSG_ERROR);
    ck_assert_int_eq(msg.u.error.code, NAS_EFORMAT);
    /* What else a peer says reaches the log escaped. */
    reg_msg(&msg, "mallory", NULL);
    expect(&p, &msg, NAS_MSG_HEARTBEAT, NULL);
    nas_wire_msg_init(&msg, NAS_MSG_ERROR);
    msg.u.error.code = NAS_EIO;
    snprintf(msg.u.error.message, sizeof msg.u.error.message, "x\nFORGED-LINE \x1b[31mred");
    peer_send(&p, &msg);
    /* Ready, then refuse the Task it is given as the agent does when busy:
     * the lease goes back to the queue (it must not sit on mallory). */
    nas_wire_msg_init(&msg, NAS_MSG_READY);
    peer_send(&p, &msg);
    ck_assert_int_eq(peer_next(&p, 10000, &msg), NAS_MSG_TASK);
    nas_wire_msg_init(&msg, NAS_MSG_ERROR);
    msg.u.error.code = NAS_ESTATE;
    snprintf(msg.u.error.message, sizeof msg.u.error.message, "busy with task 22");
    peer_send(&p, &msg);
    /* A burst of 500 frames that are no message at all: each is answered
     * with Error, but the master's log grows by at most its limit's lines
     * per window (the burst spans one or two), not by one per frame. */
    for (int i = 0; i < 500; i++) {
        uint8_t junk[17];
        for (size_t b = 0; b < sizeof junk; b++)
            junk[b] = (uint8_t)(i * 31 + b * 7 + 1);
        ck_assert_int_eq(zmq_send(p.s, junk, sizeof junk, 0), (int)sizeof junk);
    }

    int rc = serve_until_exit(&p, m, 120000);
    peer_close(&p);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(e.db, budget);
    ck_assert_int_eq(all_results_from(e.db, "honest", k), 1);
    int bad_lines = e2e_count_in_file(e.mlog, "dispatcher: bad message from");
    ck_assert_msg(bad_lines >= 1 && bad_lines <= 3 * NAS_LOG_LIMIT_LINES,
                  "%d 'bad message' lines for about 500 bad messages", bad_lines);
    ck_assert_int_ge(e2e_count_in_file(e.mlog, "refused task"), 1);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "\nFORGED"), 0);
    ck_assert_int_ge(e2e_count_in_file(e.mlog, "x\\x0aFORGED-LINE \\x1b[31mred"), 1);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "stopping"), 0);
    nas_tmpdir_rm(e.dir);
}
END_TEST

// ---- CurveZMQ: a name belongs to its key --------------------------------------------------------

static void keygen(const e2e_env *e, const char *name, const char *authdir, nas_keypair *kp) {
    char base[PATH_MAX], cmd[3 * PATH_MAX], err[NAS_ERR_LEN];
    nas_path_join(base, sizeof base, e->dir, name);
    ck_assert_int_eq(nas_keys_generate_files(base, 0, kp, err), NAS_OK);
    if (authdir) {
        snprintf(cmd, sizeof cmd, "cp %s.key %s/%s.key", base, authdir, name);
        ck_assert_int_eq(nas_run_cmd(cmd, NULL, 0), 0);
    }
}

/* The master's keypair, and alice's and mallory's, both authorized, with
 * the command-line arguments that use them. */
typedef struct curve3 {
    char auth[PATH_MAX], mbase[PATH_MAX], abase[PATH_MAX], mkey[PATH_MAX + 8];
    nas_keypair mk, ak, xk;
    const char *wextra[5], *mextra[5];
} curve3;

static void curve3_init(curve3 *k, const e2e_env *e) {
    nas_path_join(k->auth, sizeof k->auth, e->dir, "authorized");
    ck_assert_int_eq(mkdir(k->auth, 0755), 0);
    keygen(e, "master", NULL, &k->mk);
    keygen(e, "alice", k->auth, &k->ak);
    keygen(e, "mallory", k->auth, &k->xk);
    nas_path_join(k->mbase, sizeof k->mbase, e->dir, "master");
    nas_path_join(k->abase, sizeof k->abase, e->dir, "alice");
    snprintf(k->mkey, sizeof k->mkey, "%s.key", k->mbase);
    const char *w[] = {"--key", k->abase, "--master-key", k->mkey, NULL};
    const char *m[] = {"--key", k->mbase, "--authorized", k->auth, NULL};
    memcpy(k->wextra, w, sizeof w);
    memcpy(k->mextra, m, sizeof m);
}

static void curve3_fini(curve3 *k) {
    explicit_bzero(&k->mk, sizeof k->mk);
    explicit_bzero(&k->ak, sizeof k->ak);
    explicit_bzero(&k->xk, sizeof k->xk);
}

START_TEST(test_hostile_name_bound_to_curve_key) {
    e2e_env e;
    e2e_env_init(&e, 43);
    const int budget = 5;
    e2e_write_campaign(e.cfg, "curvename", budget, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    curve3 k3;
    curve3_init(&k3, &e);
    char wlog[PATH_MAX];
    e2e_log_path(&e, "w1", wlog, sizeof wlog);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w1", "300", k3.wextra);
    pid_t m = master(&e, e.mlog, k3.mextra);
    ck_assert(e2e_wait_counts(e.db, 0, 1, 30000));
    int64_t k = e2e_leased_task(e.db, "w1", NULL, 0);
    ck_assert_int_gt(k, 0);

    /* Mallory's key is authorized, but w1 is alice's name. */
    peer p;
    peer_open(&p, e.ctl, &k3.xk, k3.mk.public_z85);
    nas_wire_msg msg;
    int code;
    nas_task_ref theirs = {(uint64_t)k, 1};
    reg_msg(&msg, "w1", &theirs);
    expect(&p, &msg, NAS_MSG_ERROR, &code);
    ck_assert_int_eq(code, NAS_EAUTH);
    reg_msg(&msg, "m", NULL);
    expect(&p, &msg, NAS_MSG_HEARTBEAT, NULL);
    result_msg(&msg, (uint64_t)k, 1);
    expect(&p, &msg, NAS_MSG_ERROR, &code);
    ck_assert_int_eq(code, NAS_EAUTH);

    int rc = serve_until_exit(&p, m, 60000);
    peer_close(&p);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(e.db, budget);
    ck_assert_int_eq(all_results_from(e.db, "w1", k), 1);
    ck_assert_int_ge(e2e_count_in_file(e.mlog, "belongs to another key"), 1);
    curve3_fini(&k3);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* The key w1's row in the store is bound to, "" when none. */
static void stored_key(const char *db, const char *name, char *key, size_t cap) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    key[0] = '\0';
    if (nas_store_open_ro(&st, db, err) != NAS_OK) return;
    if (nas_store_worker_key(st, name, key, cap, err) <= 0) key[0] = '\0';
    nas_store_close(&st);
}

/* The binding outlives the master: alice's w1 takes work, then the master
 * is killed with -9 (and alice with it, so nobody holds the name), and
 * mallory, authorized too, registers as w1 at the new master first.  She
 * is refused there as she would have been at the old one; alice comes
 * back under her name and finishes the campaign. */
START_TEST(test_hostile_name_binding_survives_master_kill) {
    e2e_env e;
    e2e_env_init(&e, 44);
    const int budget = 4;
    e2e_write_campaign(e.cfg, "curvekill", budget, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    curve3 k3;
    curve3_init(&k3, &e);
    char wlog[PATH_MAX], wlog2[PATH_MAX], m2log[PATH_MAX], key[NAS_WIRE_NAME_MAX];
    e2e_log_path(&e, "w1", wlog, sizeof wlog);
    e2e_log_path(&e, "w1-again", wlog2, sizeof wlog2);
    nas_path_join(m2log, sizeof m2log, e.dir, "master2.log");
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w1", "300", k3.wextra);
    pid_t m = master(&e, e.mlog, k3.mextra);
    int64_t end = nas_now_ms() + 30000;
    do {
        nas_sleep_ms(50);
        stored_key(e.db, "w1", key, sizeof key);
    } while (!key[0] && nas_now_ms() < end);
    ck_assert_str_eq(key, "alice");
    e2e_kill(w, SIGKILL);
    e2e_kill(m, SIGKILL);
    m = master(&e, m2log, k3.mextra);
    ck_assert(e2e_wait_in_file(m2log, "listening for workers", 10000));

    /* Twice, from two sockets: neither takes the name. */
    for (int i = 0; i < 2; i++) {
        peer p;
        peer_open(&p, e.ctl, &k3.xk, k3.mk.public_z85);
        nas_wire_msg msg;
        int code;
        reg_msg(&msg, "w1", NULL);
        expect(&p, &msg, NAS_MSG_ERROR, &code);
        ck_assert_int_eq(code, NAS_EAUTH);
        peer_close(&p);
    }
    w = e2e_start_worker(wlog2, NULL, e.ctl, "w1", "50", k3.wextra);
    int rc = e2e_wait(m, 60000);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(e.db, budget);
    ck_assert_int_eq(e2e_count_in_file(m2log, "Register as w1 with key mallory refused"), 2);
    stored_key(e.db, "w1", key, sizeof key);
    ck_assert_str_eq(key, "alice");
    curve3_fini(&k3);
    nas_tmpdir_rm(e.dir);
}
END_TEST

// ---- a restart does not start a running task again
// ------------------------------------------------

/* w1 trains task k, w2 does the rest of the budget and idles; w1 is
 * stopped, the master is killed and restarted, and w2 is registered and
 * idle at the new master before w1 comes back with task k still running. */
typedef struct restart {
    e2e_env e;
    pid_t m, w1, w2;
    int64_t k;
    char l1[PATH_MAX], l2[PATH_MAX], m2log[PATH_MAX];
} restart;

#define RESTART_BUDGET 4

static void restart_with_w1_running(restart *r, int slot) {
    e2e_env_init(&r->e, slot);
    /* A 1 s liveness window: w1 must not look dead to the master merely
     * because a loaded machine starved it (that expiry would rightly give
     * task k to w2, and the test would fail for the wrong reason). */
    e2e_write_campaign(r->e.cfg, "keep", RESTART_BUDGET, r->e.port, "127.0.0.1", r->e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 10\n");
    e2e_log_path(&r->e, "w1", r->l1, sizeof r->l1);
    e2e_log_path(&r->e, "w2", r->l2, sizeof r->l2);
    nas_path_join(r->m2log, sizeof r->m2log, r->e.dir, "master2.log");
    r->w1 = e2e_start_worker(r->l1, NULL, r->e.ctl, "w1", "2500", NULL);
    r->m = master(&r->e, r->e.mlog, NULL);
    ck_assert(e2e_wait_counts(r->e.db, 0, 1, 30000));
    r->k = e2e_leased_task(r->e.db, "w1", NULL, 0);
    ck_assert_int_gt(r->k, 0);
    r->w2 = e2e_start_worker(r->l2, NULL, r->e.ctl, "w2", "50", NULL);
    ck_assert(e2e_wait_counts(r->e.db, RESTART_BUDGET - 1, 1, 30000));
    kill(r->w1, SIGSTOP);
    e2e_kill(r->m, SIGKILL);
    r->m = master(&r->e, r->m2log, NULL);
    ck_assert(e2e_wait_in_file(r->m2log, "listening for workers", 10000));
}

/* w1 resumes after ms: the campaign ends with task k trained once, by w1
 * only, which took its lease back. */
static void restart_finish(restart *r, int64_t ms) {
    nas_sleep_ms(ms);
    kill(r->w1, SIGCONT);
    int rc = e2e_wait(r->m, 60000);
    e2e_kill(r->w1, SIGTERM);
    e2e_kill(r->w2, SIGTERM);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(r->e.db, RESTART_BUDGET);
    char line[64];
    snprintf(line, sizeof line, "agent: task %lld attempt", (long long)r->k);
    ck_assert_int_eq(e2e_count_in_file(r->l1, line), 1);
    ck_assert_int_eq(e2e_count_in_file(r->l2, line), 0);
    ck_assert_int_ge(e2e_count_in_file(r->m2log, "is back with its worker w1"), 1);
}

START_TEST(test_hostile_restart_keeps_running_task_on_its_worker) {
    restart r;
    restart_with_w1_running(&r, 46);
    restart_finish(&r, 1000);
    nas_tmpdir_rm(r.e.dir);
}
END_TEST

/* As above, but before w1 comes back a peer registers under w1's name from
 * another host, claims w1's running task, and goes silent.  A lease holder
 * is its name, host and key together: the peer is told to cancel, and when
 * it is lost, nothing of w1's lease goes back to the queue for w2. */
START_TEST(test_hostile_same_name_other_host_cannot_take_a_resumed_lease) {
    restart r;
    restart_with_w1_running(&r, 48);
    peer p;
    peer_open(&p, r.e.ctl, NULL, NULL);
    nas_wire_msg reg;
    nas_task_ref run = {(uint64_t)r.k, 1};
    reg_msg(&reg, "w1", &run);
    peer_send(&p, &reg);
    nas_wire_msg got;
    int answer = peer_next(&p, 2000, &got);
    peer_close(&p);
    /* The peer is lost after 1 s; w1 stays away well past that. */
    restart_finish(&r, 2500);
    ck_assert_int_eq(answer, NAS_MSG_CANCEL);
    ck_assert_int_ge(e2e_count_in_file(r.m2log, "never leased to it"), 1);
    nas_tmpdir_rm(r.e.dir);
}
END_TEST

// ---- registration floods -----------------------------------------------------------------------

/* The first number on the line of /proc/PID/FILE that starts with `key`, or -1. */
static long proc_number(pid_t pid, const char *file, const char *key) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0 && sscanf(line + strlen(key), "%ld", &v) == 1)
            break;
    if (f) fclose(f);
    return v;
}

static long rss_kb(pid_t pid) {
    return proc_number(pid, "status", "VmRSS:");
}

/* n registrations, each from a socket of its own (a new identity), in
 * waves of 100 connections. */
static void flood(const char *ep, int n, int round) {
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, 8192); /* closed ones are reaped later */
    for (int done = 0; done < n; done += 100) {
        void *s[100];
        for (int i = 0; i < 100; i++) {
            s[i] = zmq_socket(ctx, ZMQ_DEALER);
            int linger = 0;
            zmq_setsockopt(s[i], ZMQ_LINGER, &linger, sizeof linger);
            ck_assert_int_eq(zmq_connect(s[i], ep), 0);
            char name[64];
            snprintf(name, sizeof name, "flood-%d-%d", round, done + i);
            nas_wire_msg m;
            reg_msg(&m, name, NULL);
            char err[NAS_ERR_LEN];
            ck_assert_int_eq(nas_wire_send(s[i], NULL, 0, &m, NULL, 0, 0, err), NAS_OK);
        }
        /* Answers are awaited for 2 s per wave at most: a loaded master
         * slows the flood down, never the test past its timeout. */
        int64_t end = nas_now_ms() + 2000;
        for (int i = 0; i < 100; i++) {
            zmq_pollitem_t it = {s[i], 0, ZMQ_POLLIN, 0};
            int64_t left = end - nas_now_ms();
            zmq_poll(&it, 1, left > 0 ? (long)left : 0);
            zmq_close(s[i]);
        }
    }
    zmq_ctx_term(ctx);
}

static int worker_rows(const char *db) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_worker_info *wi = NULL;
    int n = nas_store_worker_list(st, &wi, err);
    nas_free(wi);
    nas_store_close(&st);
    return n;
}

/* Four floods of 1000 registrations while one honest worker trains: the
 * campaign's budget is out of reach, so the master is measured while it
 * serves the worker, then stopped with SIGINT. */
START_TEST(test_hostile_registration_flood_bounded) {
    e2e_env e;
    e2e_env_init(&e, 49);
    e2e_write_campaign(e.cfg, "flood", 1000, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    char wlog[PATH_MAX];
    e2e_log_path(&e, "honest", wlog, sizeof wlog);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "honest", "100", NULL);
    const char *more[] = {"--log-level", "info", NULL};
    /* Under AddressSanitizer freed memory waits in a quarantine (256 MB by
     * default) before it is reused, which would read as growth here: the
     * master measured runs without it. */
    char asan[512];
    const char *was = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%squarantine_size_mb=0", was ? was : "", was ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    pid_t m = master(&e, e.mlog, more);
    if (was)
        setenv("ASAN_OPTIONS", was, 1);
    else
        unsetenv("ASAN_OPTIONS");
    ck_assert(e2e_wait_counts(e.db, 1, 0, 30000));
    nas_store_counts before;
    e2e_counts(e.db, &before, NULL);
    long rss[4];
    for (int round = 0; round < 4; round++) {
        flood(e.ctl, 1000, round);
        nas_sleep_ms(300);
        rss[round] = rss_kb(m);
        ck_assert_msg(rss[round] > 0, "the master is gone after flood %d", round);
        fprintf(stderr, "flood round %d: master RSS %ld kB\n", round, rss[round]);
        /* Registered peers that never said Ready are not workers to
         * propose for: the campaign keeps one task in flight for the one
         * honest worker (a new proposal may be queued as it delivers). */
        nas_store_counts now;
        e2e_counts(e.db, &now, NULL);
        ck_assert_msg(now.queued + now.leased <= 2, "flood %d: %lld queued and %lld leased", round,
                      (long long)now.queued, (long long)now.leased);
    }
    /* The honest worker was served all along. */
    ck_assert(e2e_wait_counts(e.db, before.done + 2, 0, 30000));
    kill(m, SIGINT);
    int rc = e2e_wait(m, 60000);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    /* After the first flood, memory stays put: later floods reuse slots. */
    ck_assert_msg(rss[3] < rss[0] + rss[0] / 5, "RSS grew from %ld to %ld kB", rss[0], rss[3]);
    ck_assert_int_eq(worker_rows(e.db), 1);
    /* Nor does the log: the 4000 peers that registered and went silent
     * are not a line each (20 per 10-s window, the rest counted). */
    int silent = e2e_count_in_file(e.mlog, "silent for");
    ck_assert_msg(silent <= 200, "%d lines about silent peers", silent);
    nas_tmpdir_rm(e.dir);
}
END_TEST

// ---- oversized frames --------------------------------------------------------------------------

/* Speak ZMTP 3.0 by hand as a DEALER with the NULL mechanism, announce one
 * frame of 200 MiB on 127.0.0.1:port and send up to 4 MiB of it.  Returns 1
 * when the master closed the connection within 5 s, 0 when it kept it. */
static int big_frame_dropped(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    uint8_t hello[64 + 64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    static const char ready[] = "\x05READY\x0bSocket-Type\0\0\0\x06"
                                "DEALER";
    size_t n = 64, rlen = sizeof ready - 1;
    hello[n++] = 0x04; /* a short command */
    hello[n++] = (uint8_t)rlen;
    memcpy(hello + n, ready, rlen);
    n += rlen;
    hello[n++] = 0x02; /* a long message frame, the last */
    for (int i = 7; i >= 0; i--)
        hello[n++] = (uint8_t)(((uint64_t)200 << 20) >> (8 * i));
    ck_assert_int_eq(send(fd, hello, n, MSG_NOSIGNAL), (ssize_t)n);
    static uint8_t chunk[1 << 16];
    for (int i = 0; i < 64; i++)
        if (send(fd, chunk, sizeof chunk, MSG_NOSIGNAL) < 0) break;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t buf[512];
    ssize_t got;
    while ((got = recv(fd, buf, sizeof buf, 0)) > 0)
        ; /* the master's greeting and READY */
    int closed = got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    close(fd);
    return closed;
}

START_TEST(test_hostile_oversized_frame_dropped) {
    e2e_env e;
    e2e_env_init(&e, 50);
    e2e_write_campaign(e.cfg, "big", 1000, e.port, "127.0.0.1", e.db, "");
    char out[8192], cmd[PATH_MAX + 128];
    pid_t m = master(&e, e.mlog, NULL);
    ck_assert(e2e_wait_in_file(e.mlog, "listening for weights", 20000));
    ck_assert_msg(big_frame_dropped(e.port + 2), "the status socket kept a 200 MiB frame");
    ck_assert_msg(big_frame_dropped(e.port), "the control socket kept a 200 MiB frame");
    snprintf(cmd, sizeof cmd, "%s status --master %s", nas_bin("nasctl"), e.sts);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    kill(m, SIGINT);
    ck_assert_int_eq(e2e_wait_exit(m, 20000), 0);
    nas_tmpdir_rm(e.dir);
}
END_TEST

START_TEST(test_hostile_idle_connections_leave_descriptors) {
    e2e_env e;
    e2e_env_init(&e, 51);
    e2e_write_campaign(e.cfg, "fds", 1000, e.port, "127.0.0.1", e.db, "");
    struct rlimit was, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &was), 0);
    low = was;
    low.rlim_cur = was.rlim_max < 256 ? was.rlim_max : 256; /* a service's 1024, scaled down */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    pid_t m = master(&e, e.mlog, NULL);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &was), 0);
    ck_assert(e2e_wait_in_file(e.mlog, "listening for weights", 20000));
    long want = was.rlim_max < 65536 ? (long)was.rlim_max : 65536;
    ck_assert_int_eq(proc_number(m, "limits", "Max open files"), want);
    enum { IDLE = 400 };
    if (want > IDLE + 100 && was.rlim_cur > IDLE + 100) {
        int fds[IDLE];
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(e.port + 2))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (int i = 0; i < IDLE; i++) {
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            ck_assert_int_ge(fds[i], 0);
            ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
        }
        nas_sleep_ms(500); /* accepted by now: each holds a descriptor of the master */
        char out[8192], cmd[PATH_MAX + 128];
        snprintf(cmd, sizeof cmd, "%s status --master %s", nas_bin("nasctl"), e.sts);
        ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
        for (int i = 0; i < IDLE; i++)
            close(fds[i]);
    }
    kill(m, SIGINT);
    ck_assert_int_eq(e2e_wait_exit(m, 20000), 0);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("hostile_peer");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_hostile_wrong_messages_never_stop_the_master);
    tcase_add_test(tc, test_hostile_name_bound_to_curve_key);
    tcase_add_test(tc, test_hostile_name_binding_survives_master_kill);
    tcase_add_test(tc, test_hostile_restart_keeps_running_task_on_its_worker);
    tcase_add_test(tc, test_hostile_registration_flood_bounded);
    tcase_add_test(tc, test_hostile_oversized_frame_dropped);
    tcase_add_test(tc, test_hostile_idle_connections_leave_descriptors);
    suite_add_tcase(s, tc);
    /* A case of its own, so that `CK_RUN_CASE=identity` replays it alone. */
    TCase *id = tcase_create("identity");
    tcase_set_timeout(id, 300);
    tcase_add_unchecked_fixture(id, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(id, test_hostile_same_name_other_host_cannot_take_a_resumed_lease);
    suite_add_tcase(s, id);
    return s;
}

NAS_TEST_MAIN(make_suite)
