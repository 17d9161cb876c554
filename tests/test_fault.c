// nas-test: label=e2e timeout=300
/*
 * test_fault.c - failures of real processes during a campaign:
 *  - kill -9 of a worker mid-task: its lease expires, another worker
 *    finishes the task, nothing is lost or counted twice;
 *  - kill -9 of the master mid-campaign: the restarted master resumes from
 *    the database, the task in flight is delivered by its worker (not
 *    trained again), and the history equals an uninterrupted run's;
 *  - hostile bytes on every master port (garbage, another protocol
 *    version, an oversized envelope, a truncated protobuf): each answered
 *    with Error and logged while the real worker is still served.
 */
#include "common/alloc.h"
#include "common/wire.h"
#include "proto/nas.pb-c.h"
#include "tests/e2e_util.h"

#include <limits.h>
#include <zmq.h>

/* A worker with the default log level; its log path into log. */
static pid_t worker(const e2e_env *e, const char *name, const char *epoch_ms, char *log,
                    size_t cap) {
    e2e_log_path(e, name, log, cap);
    return e2e_start_worker(log, NULL, e->ctl, name, epoch_ms, NULL);
}

/* A master on database `db` whose resumed leases wait 10 s for their worker. */
static pid_t master(const e2e_env *e, const char *db, const char *log) {
    const char *extra[] = {"--synthetic", "--db", db, "--resume-grace-ms", "10000", NULL};
    return e2e_start_master(log, NULL, e->cfg, extra);
}

// ---- worker killed ------------------------------------------------------------------------

START_TEST(test_fault_worker_killed_mid_task) {
    e2e_env e;
    e2e_env_init(&e, 3);
    e2e_write_campaign(e.cfg, "killw", 6, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    char la[PATH_MAX], lb[PATH_MAX];
    pid_t a = worker(&e, "victim", "250", la, sizeof la);
    pid_t m = master(&e, e.db, e.mlog);
    /* Wait until the victim trains something, then start the survivor. */
    int64_t task = 0, end = nas_now_ms() + 30000;
    char who[NAS_STORE_NAME_MAX] = "";
    while (!task && nas_now_ms() < end) {
        task = e2e_leased_task(e.db, NULL, who, sizeof who);
        if (!task) nas_sleep_ms(20);
    }
    ck_assert_int_gt(task, 0);
    ck_assert_str_eq(who, "victim");
    pid_t b = worker(&e, "survivor", "50", lb, sizeof lb);
    nas_sleep_ms(150);
    e2e_kill(a, SIGKILL);
    int rc = e2e_wait(m, 60000);
    e2e_kill(b, SIGTERM);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(e.db, 6);
    /* The victim's task was finished by the survivor as a later attempt. */
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    int found = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].task_id != task) continue;
        found = 1;
        ck_assert_str_eq(r[i].worker, "survivor");
        ck_assert_int_ge(r[i].attempt, 2);
    }
    ck_assert(found);
    nas_store_records_free(r, n);
    nas_store_close(&st);
    ck_assert_int_ge(e2e_count_in_file(e.mlog, "worker victim silent"), 1);
    nas_tmpdir_rm(e.dir);
}
END_TEST

// ---- master killed ------------------------------------------------------------------------

START_TEST(test_fault_master_killed_resumes_exactly) {
    e2e_env e;
    e2e_env_init(&e, 4 + 3 * _i);
    const int budget = 8;
    e2e_write_campaign(e.cfg, "killm", budget, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    /* Reference: the same campaign, uninterrupted, in another database. */
    char ref[PATH_MAX], rlog[PATH_MAX], wlog[PATH_MAX], m2log[PATH_MAX];
    nas_path_join(ref, sizeof ref, e.dir, "reference.db");
    nas_path_join(rlog, sizeof rlog, e.dir, "reference.log");
    nas_path_join(m2log, sizeof m2log, e.dir, "master2.log");
    pid_t w = worker(&e, "ref", "30", wlog, sizeof wlog);
    pid_t m = master(&e, ref, rlog);
    ck_assert_int_eq(e2e_wait(m, 60000), 0);
    e2e_kill(w, SIGTERM);
    e2e_history want;
    e2e_read_history(ref, &want);
    ck_assert_int_eq(want.n, budget);

    /* Interrupted: kill -9 the master while the worker trains task K.  In
     * the first variant the worker finishes K before it notices and holds
     * the result; in the second it is still training when it re-registers
     * and the lease is re-attached. */
    w = worker(&e, "solo", _i == 0 ? "150" : "700", wlog, sizeof wlog);
    m = master(&e, e.db, e.mlog);
    ck_assert(e2e_wait_counts(e.db, 3, 1, 30000));
    int64_t k = e2e_leased_task(e.db, NULL, NULL, 0);
    ck_assert_int_gt(k, 0);
    e2e_kill(m, SIGKILL);
    nas_sleep_ms(300);
    m = master(&e, e.db, m2log);
    int rc = e2e_wait(m, 60000);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(e.db, budget);
    e2e_history got;
    e2e_read_history(e.db, &got);
    ck_assert_int_eq(got.n, want.n);
    ck_assert_int_eq(e2e_history_diff(&got, &want), -1);
    /* Task K was started once on the worker and delivered after the restart. */
    char line[64];
    snprintf(line, sizeof line, "agent: task %lld attempt", (long long)k);
    ck_assert_int_eq(e2e_count_in_file(wlog, line), 1);
    ck_assert_int_ge(e2e_count_in_file(m2log, "is back with its worker"), 1);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* A five-task campaign run by one worker `name` until a task k is leased,
 * then master and worker killed with -9 and the master restarted with a
 * resume grace of grace_ms (its log at m2log).  Returns k; the new
 * master's pid in *m. */
static int64_t kill_both_and_resume(e2e_env *e, int slot, const char *name, const char *grace_ms,
                                    char *m2log, size_t cap, pid_t *m) {
    e2e_env_init(e, slot);
    e2e_write_campaign(e->cfg, name, 5, e->port, "127.0.0.1", e->db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    char wlog[PATH_MAX];
    nas_path_join(m2log, cap, e->dir, "master2.log");
    pid_t w = worker(e, name, "400", wlog, sizeof wlog);
    *m = master(e, e->db, e->mlog);
    ck_assert(e2e_wait_counts(e->db, 1, 1, 30000));
    int64_t k = e2e_leased_task(e->db, NULL, NULL, 0);
    ck_assert_int_gt(k, 0);
    e2e_kill(*m, SIGKILL);
    e2e_kill(w, SIGKILL);
    const char *extra[] = {"--synthetic", "--db", e->db, "--resume-grace-ms", grace_ms, NULL};
    *m = e2e_start_master(m2log, NULL, e->cfg, extra);
    return k;
}

/* Master and worker both killed: the resumed lease waits out its grace,
 * goes back to the queue, and a new worker finishes the campaign.  The
 * new worker is not left idle while the lease waits: it trains the rest
 * of the budget meanwhile, and the waiting task last. */
START_TEST(test_fault_lease_without_worker_requeued_after_grace) {
    e2e_env e;
    char w2log[PATH_MAX], m2log[PATH_MAX];
    pid_t m;
    int64_t k = kill_both_and_resume(&e, 9, "gone", "6000", m2log, sizeof m2log, &m);
    pid_t w = worker(&e, "fresh", "20", w2log, sizeof w2log);
    ck_assert_msg(e2e_wait_counts(e.db, 4, 0, 4000),
                  "the new worker did not train the other tasks while the lease waited");
    nas_store_counts sc;
    e2e_counts(e.db, &sc, NULL);
    ck_assert_int_eq(sc.done, 4); /* task k still waits for its worker */
    int rc = e2e_wait(m, 60000);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(e.db, 5);
    ck_assert_int_eq(e2e_count_in_file(m2log, "was not delivered in time"), 1);
    char line[64];
    snprintf(line, sizeof line, "agent: task %lld attempt", (long long)k);
    ck_assert_int_eq(e2e_count_in_file(w2log, line), 1);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* Whether the first "agent: task " line of the log starts with `line`. */
static int first_task_is(const char *log, const char *line) {
    FILE *f = fopen(log, "r");
    if (!f) return 0;
    char buf[512];
    int ok = 0;
    while (fgets(buf, sizeof buf, f)) {
        const char *at = strstr(buf, "agent: task ");
        if (!at) continue;
        ok = strncmp(at, line, strlen(line)) == 0;
        break;
    }
    fclose(f);
    return ok;
}

/* Master and worker both killed, and the worker restarted under its own
 * name: it registers without the task it held, so the task goes back to
 * the queue at once (not after the grace) and the same worker trains it
 * next, before anything new: a one-worker run keeps its order. */
START_TEST(test_fault_worker_back_without_its_lease_requeued_at_once) {
    e2e_env e;
    char w2log[PATH_MAX], m2log[PATH_MAX];
    pid_t m;
    /* A grace far longer than the rest of the campaign takes. */
    int64_t k = kill_both_and_resume(&e, 10, "same", "60000", m2log, sizeof m2log, &m);
    nas_path_join(w2log, sizeof w2log, e.dir, "same-again.log");
    pid_t w = e2e_start_worker(w2log, NULL, e.ctl, "same", "20", NULL);
    int rc = e2e_wait(m, 30000);
    e2e_kill(w, SIGTERM);
    ck_assert_msg(rc == 0, "the campaign waited for a lease its worker no longer had");
    e2e_check_exactly_once(e.db, 5);
    ck_assert_int_eq(e2e_count_in_file(m2log, "came back without task"), 1);
    ck_assert_int_eq(e2e_count_in_file(m2log, "was not delivered in time"), 0);
    /* Task k is the restarted worker's first. */
    char line[64];
    snprintf(line, sizeof line, "agent: task %lld attempt", (long long)k);
    ck_assert_int_eq(e2e_count_in_file(w2log, line), 1);
    ck_assert_msg(first_task_is(w2log, line), "the restarted worker's first task is not %lld",
                  (long long)k);
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* A worker killed with -9 mid-task and restarted at once under its own
 * name, well inside its silence window (5 s): the new process registers
 * without the task, so the master gives the lease back now, not when the
 * old entry falls silent, and the worker trains it again within a second
 * or two, as the same attempt (nothing was its fault).  Every result is
 * recorded once. */
START_TEST(test_fault_worker_restarted_gets_its_lease_back_at_once) {
    e2e_env e;
    e2e_env_init(&e, 11);
    e2e_write_campaign(e.cfg, "phoenix", 5, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 50\n");
    char la[PATH_MAX], lb[PATH_MAX];
    pid_t a = worker(&e, "phoenix", "400", la, sizeof la);
    pid_t m = master(&e, e.db, e.mlog);
    ck_assert(e2e_wait_counts(e.db, 1, 1, 30000));
    int64_t k = e2e_leased_task(e.db, "phoenix", NULL, 0);
    ck_assert_int_gt(k, 0);
    e2e_kill(a, SIGKILL);
    nas_path_join(lb, sizeof lb, e.dir, "phoenix-again.log");
    int64_t t0 = nas_now_ms();
    pid_t b = e2e_start_worker(lb, NULL, e.ctl, "phoenix", "20", NULL);
    char line[64];
    snprintf(line, sizeof line, "agent: task %lld attempt 1", (long long)k);
    ck_assert_msg(e2e_wait_in_file(lb, line, 4000),
                  "task %lld was not given back to its restarted worker within 4 s", (long long)k);
    int64_t took = nas_now_ms() - t0;
    int rc = e2e_wait(m, 60000);
    e2e_kill(b, SIGTERM);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(took < 2500, "re-leased after %lld ms", (long long)took);
    e2e_check_exactly_once(e.db, 5);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "came back without task"), 1);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "silent for"), 0);
    /* Its first task after the restart is k, as attempt 1: not counted. */
    ck_assert_msg(first_task_is(lb, line), "the restarted worker's first task is not %lld",
                  (long long)k);
    nas_tmpdir_rm(e.dir);
}
END_TEST

// ---- hostile bytes ------------------------------------------------------------------------

/* Send one message (frames as given) from a fresh DEALER and return the
 * answer's type and error code (type 0 when nothing came back in time). */
static int probe(void *ctx, const char *ep, const void *data, size_t len, int *code) {
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    ck_assert_int_eq(zmq_connect(s, ep), 0);
    ck_assert_int_ge(zmq_send(s, data, len, 0), 0);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    int type = 0;
    *code = 0;
    if (zmq_poll(&it, 1, 5000) > 0) {
        nas_wire_packet pkt;
        char err[NAS_ERR_LEN];
        if (nas_wire_recv(s, 0, 1, &pkt, err) == NAS_OK) {
            type = pkt.msg.type;
            if (type == NAS_MSG_ERROR) *code = pkt.msg.u.error.code;
        }
        nas_wire_packet_fini(&pkt);
    }
    zmq_close(s);
    return type;
}

START_TEST(test_fault_hostile_frames_answered) {
    e2e_env e;
    e2e_env_init(&e, 5);
    e2e_write_campaign(e.cfg, "hostile", 6, e.port, "127.0.0.1", e.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    char wlog[PATH_MAX];
    pid_t w = worker(&e, "honest", "300", wlog, sizeof wlog);
    pid_t m = master(&e, e.db, e.mlog);
    ck_assert(e2e_wait_counts(e.db, 1, 0, 30000));

    /* The four kinds of bad input. */
    uint8_t version[64];
    Naspb__Envelope env = NASPB__ENVELOPE__INIT;
    env.has_protocol = env.has_type = 1;
    env.protocol = 99;
    env.type = NAS_MSG_HEARTBEAT;
    size_t vlen = naspb__envelope__pack(&env, version);
    size_t big_len = 2u << 20;
    uint8_t *big = nas_calloc(1, big_len);
    nas_wire_msg reg;
    nas_wire_msg_init(&reg, NAS_MSG_REGISTER);
    snprintf(reg.u.reg.name, sizeof reg.u.reg.name, "intruder");
    snprintf(reg.u.reg.host, sizeof reg.u.reg.host, "nowhere");
    snprintf(reg.u.reg.version, sizeof reg.u.reg.version, "0");
    reg.u.reg.cores = 1;
    reg.u.reg.protocol = NAS_PROTOCOL_VERSION;
    uint8_t *good = NULL;
    size_t good_len = 0;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_wire_encode(&reg, &good, &good_len, err), NAS_OK);
    const char garbage[] = "\xff\xfe this is not a protobuf envelope \x01\x02";

    void *ctx = zmq_ctx_new();
    for (int port = 0; port < 3; port++) {
        char ep[64];
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", e.port + port);
        int code;
        ck_assert_int_eq(probe(ctx, ep, garbage, sizeof garbage - 1, &code), NAS_MSG_ERROR);
        ck_assert_int_lt(code, 0);
        ck_assert_int_eq(probe(ctx, ep, version, vlen, &code), NAS_MSG_ERROR);
        ck_assert_int_eq(code, NAS_EVERSION);
        ck_assert_int_eq(probe(ctx, ep, big, big_len, &code), NAS_MSG_ERROR);
        ck_assert_int_lt(code, 0);
        ck_assert_int_eq(probe(ctx, ep, good, good_len / 2, &code), NAS_MSG_ERROR);
        ck_assert_int_lt(code, 0);
    }
    /* The status endpoint still answers a real request, and refuses others. */
    nas_wire_msg req;
    nas_wire_msg_init(&req, NAS_MSG_STATUS_REQUEST);
    uint8_t *rb = NULL;
    size_t rl = 0;
    ck_assert_int_eq(nas_wire_encode(&req, &rb, &rl, err), NAS_OK);
    char sep[64];
    snprintf(sep, sizeof sep, "tcp://127.0.0.1:%d", e.port + 2);
    int code;
    ck_assert_int_eq(probe(ctx, sep, rb, rl, &code), NAS_MSG_STATUS_REPLY);
    ck_assert_int_eq(probe(ctx, sep, good, good_len, &code), NAS_MSG_ERROR);
    zmq_ctx_term(ctx);
    nas_free(rb);
    nas_free(good);
    nas_free(big);

    int rc = e2e_wait(m, 60000);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(e.db, 6);
    /* Each of the four bad inputs logged once per endpoint (no endpoint's
     * limit is reached by four). */
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "dispatcher: bad message"), 4);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "status: bad message"), 4);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "weights: refused a message"), 4);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("fault");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_fault_worker_killed_mid_task);
    tcase_add_loop_test(tc, test_fault_master_killed_resumes_exactly, 0, 2);
    tcase_add_test(tc, test_fault_lease_without_worker_requeued_after_grace);
    tcase_add_test(tc, test_fault_worker_back_without_its_lease_requeued_at_once);
    tcase_add_test(tc, test_fault_worker_restarted_gets_its_lease_back_at_once);
    tcase_add_test(tc, test_fault_hostile_frames_answered);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
