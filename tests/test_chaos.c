// nas-test: label=e2e timeout=1800
/*
 * test_chaos.c - randomized fault sequences against a real master, real
 * workers and a lying peer, seeded and replayable.
 *
 * Each sequence is a tiny campaign (budget 6, synthetic evaluation, 20 ms
 * heartbeats) on a fresh SQLite file.  The master and the workers are
 * processes forked from this one (the real campaign, agent and evaluator
 * code on real TCP sockets, without an exec, so that hundreds of
 * sequences fit in CI); a handful of random events hit them: kill -9 and
 * restart of the master, SIGINT or SIGTERM (graceful stop), two signals
 * (exit at once), restarts with --cancel-on-stop, kill -9 and SIGSTOP of
 * workers, and bursts of wrong messages from a fake peer (every message
 * type, unknown tasks, wrong attempts, other workers' leases, refused
 * Tasks).  Then everything is let run to the end, and the invariants are
 * checked:
 *  - every task has exactly one outcome, the budget is met exactly, one
 *    result per task (failures only where workers were killed);
 *  - the campaign ends (no lease left on an idle worker: a stuck lease
 *    would hang it past the deadline);
 *  - no master exits 1 (only its own store failing may stop it);
 *  - without worker faults and --cancel-on-stop, no task is started twice
 *    on the workers, across any number of master restarts, unless the
 *    master found the worker running it silent past the liveness window
 *    (a lease expiry, which a stall of a loaded machine can cause; one of
 *    a lease the lying peer held never counts);
 *  - with one worker and master faults only, the history equals an
 *    uninterrupted run's (USER-GUIDE.md s3).
 *
 * NAS_CHAOS_SEQUENCES (default 500) sets how many; sequence i runs with
 * seed NAS_CHAOS_SEED + i (default seed 1300), so a failure names the
 * seed that replays it alone: NAS_CHAOS_SEED=S NAS_CHAOS_SEQUENCES=1.
 * NAS_CHAOS_JOBS (default 3) sequences run at once, each in a runner
 * process of its own.  bench/chaos runs the long setting.
 */
#include "common/alloc.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/wire.h"
#include "master/campaign.h"
#include "master/config.h"
#include "tests/e2e_util.h"

#include <fcntl.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <uv.h>
#include <zmq.h>

#define BUDGET      6
#define MAX_WORKERS 2
#define MAX_LOGS    16

// ---- the processes ----------------------------------------------------------------------------

/* fork() with the signals the test sends held until the child has put
 * back their default actions: Check's own handlers, inherited through
 * fork, would kill the whole test.  In the child everything it writes goes
 * to `log`, and it dies with the test. */
static pid_t fork_child(const char *log) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGALRM, SIGHUP};
    sigset_t set, old;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, &old);
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    ck_assert_int_ge(pid, 0);
    return pid;
}

typedef struct master_proc {
    nas_campaign *campaign;
    uv_signal_t sig[2];
    int signals;
} master_proc;

/* As nas-master does: the first signal stops gracefully, a second at once. */
static void on_signal(uv_signal_t *h, int signum) {
    (void)signum;
    master_proc *m = h->data;
    if (++m->signals == 1)
        nas_campaign_stop(m->campaign);
    else
        nas_campaign_abort(m->campaign);
}

/* The master's life in a child: 0 done or stopped, 130 after two
 * signals, 1 when the campaign failed (which the checks refuse). */
static int master_main(const char *cfg_path, const char *db, int cancel_on_stop) {
    nas_log_set_prog("nas-master");
    nas_campaign_options opt;
    nas_campaign_options_default(&opt);
    opt.db_path = db;
    opt.eval_mode = NAS_EVAL_SYNTHETIC;
    opt.cancel_on_stop = cancel_on_stop;
    opt.resume_grace_ms = 2000;
    char err[NAS_ERR_LEN] = "";
    nas_config cfg;
    if (nas_config_load(cfg_path, &cfg, err) < 0) {
        fprintf(stderr, "chaos master: %s\n", err);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    master_proc m = {0};
    int rc = nas_campaign_create(&m.campaign, &cfg, &opt, &loop, err);
    if (rc == NAS_OK) {
        for (int i = 0; i < 2; i++) {
            uv_signal_init(&loop, &m.sig[i]);
            m.sig[i].data = &m;
            uv_signal_start(&m.sig[i], on_signal, i ? SIGTERM : SIGINT);
            uv_unref((uv_handle_t *)&m.sig[i]);
        }
        rc = nas_campaign_start(m.campaign, err);
        if (rc < 0) nas_campaign_abort(m.campaign);
        uv_run(&loop, UV_RUN_DEFAULT);
        for (int i = 0; i < 2; i++)
            uv_close((uv_handle_t *)&m.sig[i], NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        if (rc == NAS_OK) rc = nas_campaign_status(m.campaign, err);
    }
    if (rc < 0) fprintf(stderr, "chaos master: %s\n", err);
    nas_campaign_destroy(&m.campaign);
    uv_loop_close(&loop);
    nas_config_fini(&cfg);
    return rc < 0 ? 1 : m.signals >= 2 ? 130 : 0;
}

static int worker_main(const char *ep, const char *name) {
    nas_log_set_prog("nas-worker");
    char err[NAS_ERR_LEN];
    nas_evaluator_config ec;
    nas_evaluator_config_default(&ec);
    ec.synthetic_epoch_ms = 10;
    snprintf(ec.worker, sizeof ec.worker, "%s", name);
    nas_evaluator *ev = NULL;
    nas_agent *a = NULL;
    nas_agent_config ac;
    nas_agent_config_default(&ac);
    ac.endpoint = ep;
    ac.name = name;
    ac.heartbeat_ms = 20;
    ac.liveness = 10;
    ac.reconnect_min_ms = 10;
    ac.reconnect_max_ms = 50;
    if (nas_evaluator_create(&ev, &ec, err) < 0) return 1;
    ac.eval = ev;
    if (nas_agent_create(&a, &ac, err) < 0) return 1;
    nas_agent_run(a, err);
    return 0;
}

// ---- one sequence ----------------------------------------------------------------------------

typedef struct seq {
    nas_rng rng;
    uint64_t seed;
    e2e_env e;
    int mode; /* 0: one worker, master faults; 1: two workers and the peer, no worker
               * faults, no --cancel-on-stop; 2: everything */
    pid_t master;
    int master_cancel; /* the running master was started with --cancel-on-stop */
    int n_masters;
    pid_t workers[MAX_WORKERS];
    int stopped[MAX_WORKERS];
    int n_worker_logs;
    char worker_logs[MAX_LOGS][PATH_MAX];
    char trace[2048]; /* what happened, for the failure message */
} seq;

static void trace(seq *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(seq *s, const char *fmt, ...) {
    size_t n = strlen(s->trace);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->trace + n, sizeof s->trace - n, fmt, ap);
    va_end(ap);
    if (getenv("NAS_CHAOS_VERBOSE")) fprintf(stderr, "%s\n", s->trace + n);
}

static uint32_t pick(seq *s, uint32_t n) {
    return nas_rng_below(&s->rng, n);
}

/* DIR/KINDi.log */
static void log_path(const seq *s, const char *kind, int i, char *out) {
    char name[32];
    snprintf(name, sizeof name, "%s%d", kind, i);
    e2e_log_path(&s->e, name, out, PATH_MAX);
}

static void start_master(seq *s) {
    char log[PATH_MAX];
    log_path(s, "master", s->n_masters++, log);
    s->master_cancel = s->mode == 2 && pick(s, 2);
    pid_t pid = fork_child(log);
    if (pid == 0) {
        _exit(master_main(s->e.cfg, s->e.db, s->master_cancel));
    }
    s->master = pid;
    trace(s, " M%s", s->master_cancel ? "(cancel-on-stop)" : "");
}

static void start_worker(seq *s, int i) {
    ck_assert_int_lt(s->n_worker_logs, MAX_LOGS);
    char *log = s->worker_logs[s->n_worker_logs];
    /* A restarted worker comes back under its own name or as a new one. */
    char name[32];
    snprintf(name, sizeof name, "w%d%s", i,
             s->n_worker_logs >= MAX_WORKERS && pick(s, 2) ? "n" : "");
    log_path(s, "worker", s->n_worker_logs++, log);
    pid_t pid = fork_child(log);
    if (pid == 0) {
        _exit(worker_main(s->e.ctl, name));
    }
    s->workers[i] = pid;
    s->stopped[i] = 0;
}

/* The master's exit: anything but a store failure (1) is expected. */
static void master_exited(seq *s, int status) {
    ck_assert_msg(status != 1 && status >= 0, "seed %llu: master exited with %d (%s); trace:%s",
                  (unsigned long long)s->seed, status, s->e.dir, s->trace);
    s->master = 0;
}

/* Has the master ended by itself (the campaign is complete)? */
static int master_gone(seq *s) {
    if (!s->master) return 1;
    int rc = e2e_wait(s->master, 0);
    if (rc == -1) return 0;
    trace(s, " exit%d", rc);
    master_exited(s, rc);
    return 1;
}

// ---- the lying peer ----------------------------------------------------------------------------

static void peer_send(void *sock, const nas_wire_msg *m) {
    char err[NAS_ERR_LEN];
    nas_wire_send(sock, NULL, 0, m, NULL, 0, 0, err);
}

/* The first Task the master sends within ms, or 0. */
static uint64_t peer_task(void *sock, int64_t ms, uint32_t *attempt) {
    int64_t end = nas_now_ms() + ms;
    nas_wire_packet *pkt = nas_malloc(sizeof *pkt);
    uint64_t id = 0;
    while (!id && nas_now_ms() < end) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 10) <= 0) continue;
        char err[NAS_ERR_LEN];
        if (nas_wire_recv(sock, 0, 1, pkt, err) == NAS_OK && pkt->msg.type == NAS_MSG_TASK) {
            id = pkt->msg.u.task.task_id;
            *attempt = pkt->msg.u.task.attempt;
        }
        nas_wire_packet_fini(pkt);
    }
    nas_free(pkt);
    return id;
}

/* A burst of messages no honest worker sends: for tasks never leased to
 * it, unknown ones, absurd attempts, a claim of another worker's running
 * task; in mode 2 it may also take a lease and then vanish, or deliver it. */
static void peer_burst(seq *s) {
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(sock, s->e.ctl);
    static const uint32_t attempts[] = {1, 2, 3, 4294967295u};
    int n = 2 + (int)pick(s, 5);
    trace(s, " P[");
    for (int i = 0; i < n; i++) {
        nas_wire_msg m;
        uint64_t task = 1 + pick(s, BUDGET + 2);
        uint32_t attempt = attempts[pick(s, 4)];
        int what = (int)pick(s, s->mode == 2 ? 11 : 10);
        trace(s, "%d", what);
        switch (what) {
        case 0:
        case 1:
            nas_wire_msg_init(&m, NAS_MSG_REGISTER);
            snprintf(m.u.reg.name, sizeof m.u.reg.name, "%s", pick(s, 2) ? "mallory" : "w0");
            snprintf(m.u.reg.host, sizeof m.u.reg.host, "nowhere");
            m.u.reg.protocol = NAS_PROTOCOL_VERSION;
            m.u.reg.cores = 1;
            if (what == 1) m.u.reg.has_running = 1, m.u.reg.running = (nas_task_ref){task, attempt};
            break;
        case 2:
            nas_wire_msg_init(&m, NAS_MSG_RESULT);
            m.u.result = (nas_wire_result){.task_id = task, .attempt = attempt, .val_acc = 0.99};
            break;
        case 3:
            nas_wire_msg_init(&m, NAS_MSG_FAILURE);
            m.u.failure.task_id = task;
            m.u.failure.attempt = attempt;
            m.u.failure.code = NAS_EDIVERGED;
            m.u.failure.give_back = (int)pick(s, 2);
            snprintf(m.u.failure.reason, sizeof m.u.failure.reason, "forged");
            break;
        case 4:
            nas_wire_msg_init(&m, NAS_MSG_PROGRESS);
            m.u.progress = (nas_wire_progress){
                .task_id = task, .attempt = attempt, .epoch = 1, .epochs = 2, .val_acc = 0.5};
            break;
        case 5:
            nas_wire_msg_init(&m, NAS_MSG_HEARTBEAT);
            break;
        case 6:
            nas_wire_msg_init(&m, NAS_MSG_DISCONNECT);
            break;
        case 8: /* what only the master sends */
            if (pick(s, 2)) {
                nas_wire_msg_init(&m, NAS_MSG_ACK);
                m.u.ack = (nas_wire_ack){task, attempt, 0};
            } else {
                nas_wire_msg_init(&m, NAS_MSG_CANCEL);
                m.u.cancel = (nas_task_ref){task, attempt};
            }
            break;
        case 9:
            nas_wire_msg_init(&m, NAS_MSG_STATUS_REQUEST);
            break;
        case 7:
        case 10: {
            /* Ready: the Task that comes is refused as a busy worker does
             * (7), or, in mode 2, delivered (it is a lease holder then) or
             * dropped by vanishing (10). */
            nas_wire_msg_init(&m, NAS_MSG_READY);
            peer_send(sock, &m);
            uint32_t att = 0;
            uint64_t got = peer_task(sock, 200, &att);
            if (!got) continue;
            if (what == 7) {
                nas_wire_msg_init(&m, NAS_MSG_ERROR);
                m.u.error.code = NAS_ESTATE;
                snprintf(m.u.error.message, sizeof m.u.error.message, "busy");
            } else if (pick(s, 2)) {
                nas_wire_msg_init(&m, NAS_MSG_RESULT);
                m.u.result = (nas_wire_result){.task_id = got, .attempt = att, .val_acc = 0.5};
            } else {
                i = n; /* gone with the lease */
                continue;
            }
            break;
        }
        }
        peer_send(sock, &m);
        nas_sleep_ms(2);
    }
    trace(s, "]");
    nas_sleep_ms(20);
    zmq_close(sock);
    zmq_ctx_term(ctx);
}

// ---- the events
// ----------------------------------------------------------------------------------

static void master_event(seq *s) {
    if (master_gone(s)) {
        start_master(s);
        return;
    }
    int what = (int)pick(s, 4);
    if (what == 0) { /* kill -9 */
        trace(s, " kill-M");
        e2e_kill(s->master, SIGKILL);
        s->master = 0;
    } else if (what == 1) { /* graceful stop, then wait for it */
        int sig = pick(s, 2) ? SIGINT : SIGTERM;
        trace(s, " %s-M", sig == SIGINT ? "INT" : "TERM");
        kill(s->master, sig);
        int rc = e2e_wait(s->master, 20000);
        trace(s, "=%d", rc);
        master_exited(s, rc);
    } else if (what == 2) { /* two signals: out at once */
        trace(s, " 2INT-M");
        kill(s->master, SIGINT);
        nas_sleep_ms(pick(s, 20));
        kill(s->master, SIGINT);
        int rc = e2e_wait(s->master, 20000);
        trace(s, "=%d", rc);
        master_exited(s, rc);
    } else {
        return; /* left alone this time */
    }
    if (pick(s, 2)) nas_sleep_ms(pick(s, 150));
    start_master(s);
}

static void worker_event(seq *s) {
    int i = (int)pick(s, MAX_WORKERS);
    if (!s->workers[i]) return;
    if (s->stopped[i]) {
        trace(s, " CONT-w%d", i);
        kill(s->workers[i], SIGCONT);
        s->stopped[i] = 0;
    } else if (pick(s, 2)) {
        trace(s, " STOP-w%d", i);
        kill(s->workers[i], SIGSTOP);
        s->stopped[i] = 1;
    } else {
        trace(s, " kill-w%d", i);
        e2e_kill(s->workers[i], SIGKILL);
        start_worker(s, i);
    }
}

// ---- checks
// ----------------------------------------------------------------------------------------

/* The history, and how many tasks failed for good; every task has an
 * outcome (one result per task is the schema's UNIQUE constraint). */
static void read_history(const char *db, e2e_history *h, int *failed) {
    e2e_read_history(db, h);
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_task_info *t = NULL;
    int nt = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, &t, err);
    ck_assert_int_eq(nt, BUDGET);
    *failed = 0;
    for (int i = 0; i < nt; i++) {
        ck_assert(t[i].state == NAS_STORE_TASK_DONE || t[i].state == NAS_STORE_TASK_FAILED);
        *failed += t[i].state == NAS_STORE_TASK_FAILED;
    }
    nas_free(t);
    nas_store_close(&st);
}

/* How many times the workers started task k (any attempt). */
static int starts(const seq *s, int64_t k) {
    char line[64];
    snprintf(line, sizeof line, "agent: task %lld attempt", (long long)k);
    int n = 0;
    for (int i = 0; i < s->n_worker_logs; i++)
        n += e2e_count_in_file(s->worker_logs[i], line);
    return n;
}

/* How many leases of task k the masters let expire because a real worker
 * was silent (the lying peer registers from host "nowhere"): each may
 * start the task once more, as the liveness rule says it must. */
static int expired(const seq *s, int64_t k) {
    char want[64];
    snprintf(want, sizeof want, "its lease of task %lld expired", (long long)k);
    int n = 0;
    for (int i = 0; i < s->n_masters; i++) {
        char log[PATH_MAX], line[1024];
        log_path(s, "master", i, log);
        FILE *f = fopen(log, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f))
            n += strstr(line, want) && !strstr(line, "(host nowhere)");
        fclose(f);
    }
    return n;
}

static void write_config(const e2e_env *e) {
    e2e_write_campaign(e->cfg, "chaos", BUDGET, e->port, "127.0.0.1", e->db,
                       "workers:\n  heartbeat_ms: 20\n  liveness: 10\n");
}

/* The uninterrupted run of mode 0, once per process. */
static e2e_history g_reference;

static void reference(void) {
    if (g_reference.n) return;
    seq s = {0};
    e2e_env_init(&s.e, 70);
    write_config(&s.e);
    start_worker(&s, 0);
    start_master(&s);
    ck_assert_int_eq(e2e_wait(s.master, 60000), 0);
    e2e_kill(s.workers[0], SIGKILL);
    int failed = 0;
    read_history(s.e.db, &g_reference, &failed);
    ck_assert_int_eq(g_reference.n, BUDGET);
    nas_tmpdir_rm(s.e.dir);
}

static void run_sequence(uint64_t seed) {
    seq s = {0};
    s.seed = seed;
    nas_rng_init(&s.rng, seed, 13);
    s.mode = (int)pick(&s, 3);
    if (s.mode == 0) reference();
    e2e_env_init(&s.e, 70);
    write_config(&s.e);
    trace(&s, " mode%d", s.mode);
    int nw = s.mode == 0 ? 1 : MAX_WORKERS;
    for (int i = 0; i < nw; i++)
        start_worker(&s, i);
    start_master(&s);
    int events = 1 + (int)pick(&s, 4);
    for (int ev = 0; ev < events; ev++) {
        nas_sleep_ms(5 + pick(&s, 80));
        int what = (int)pick(&s, 3);
        if (what == 0 || s.mode == 0)
            master_event(&s);
        else if (what == 1 && s.mode == 2)
            worker_event(&s);
        else
            peer_burst(&s);
    }
    /* Let everything run to the end. */
    for (int i = 0; i < nw; i++)
        if (s.stopped[i]) kill(s.workers[i], SIGCONT);
    for (int round = 0; round < 3; round++) {
        if (!s.master) start_master(&s);
        int rc = e2e_wait(s.master, 30000);
        trace(&s, " end=%d", rc);
        master_exited(&s, rc);
        int failed = 0;
        e2e_history h = {0};
        read_history(s.e.db, &h, &failed);
        if (h.n + failed == BUDGET) break;
    }
    for (int i = 0; i < nw; i++)
        e2e_kill(s.workers[i], SIGKILL);

    e2e_history h = {0};
    int failed = 0;
    read_history(s.e.db, &h, &failed);
    ck_assert_msg(h.n + failed == BUDGET,
                  "seed %llu: %d results + %d failed for a budget of %d "
                  "(%s); trace:%s",
                  (unsigned long long)seed, h.n, failed, BUDGET, s.e.dir, s.trace);
    if (s.mode < 2) {
        ck_assert_msg(failed == 0, "seed %llu: %d failed without worker faults; trace:%s",
                      (unsigned long long)seed, failed, s.trace);
        for (int64_t k = 1; k <= BUDGET; k++)
            ck_assert_msg(starts(&s, k) >= 1 && starts(&s, k) <= 1 + expired(&s, k),
                          "seed %llu: task %lld started %d times after %d lease expiries (%s); "
                          "trace:%s",
                          (unsigned long long)seed, (long long)k, starts(&s, k), expired(&s, k),
                          s.e.dir, s.trace);
    }
    int at = s.mode == 0 ? e2e_history_diff(&h, &g_reference) : -1;
    ck_assert_msg(at == -1,
                  "seed %llu: history differs from the uninterrupted run at %d (%s); "
                  "trace:%s",
                  (unsigned long long)seed, at, s.e.dir, s.trace);
    for (int i = 1; i <= s.n_masters; i++) {
        char log[PATH_MAX];
        log_path(&s, "master", i - 1, log);
        ck_assert_msg(e2e_count_in_file(log, "the database stays consistent") == 0,
                      "seed %llu: a master stopped on a store failure (%s)",
                      (unsigned long long)seed, log);
    }
    nas_tmpdir_rm(s.e.dir);
}

static uint64_t env_u64(const char *name, uint64_t dflt) {
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

/* Sequences are independent (each has its own directory, ports and
 * processes), and most of a sequence's time is waiting on its processes,
 * so NAS_CHAOS_JOBS runners (default 3) each run every JOBS-th sequence at
 * once.  A runner is a forked child of the test: a failed check in it is
 * reported through Check as in the test itself, and the runner exits
 * non-zero.  Without Check's fork mode (CK_FORK=no, under a debugger) the
 * sequences run here, one after another. */
START_TEST(test_chaos_random_sequences) {
    uint64_t seed = env_u64("NAS_CHAOS_SEED", 1300);
    uint64_t n = env_u64("NAS_CHAOS_SEQUENCES", 500);
    uint64_t jobs = env_u64("NAS_CHAOS_JOBS", 3);
    const char *fork_mode = getenv("CK_FORK");
    if (jobs < 1 || (fork_mode && strcmp(fork_mode, "no") == 0)) jobs = 1;
    if (jobs > n) jobs = n ? n : 1;
    int64_t t0 = nas_now_ms();
    reference(); /* once, before the runners fork: each inherits it */
    pid_t runner[16];
    if (jobs > 16) jobs = 16;
    for (uint64_t r = 0; r < jobs; r++) {
        runner[r] = jobs == 1 ? 0 : fork();
        ck_assert_int_ge(runner[r], 0);
        if (runner[r] > 0) continue;
        for (uint64_t i = r; i < n; i += jobs)
            run_sequence(seed + i);
        if (jobs == 1) break;
#ifdef __SANITIZE_ADDRESS__
        __lsan_do_leak_check(); /* _exit skips the check at exit; leaks fail the runner */
#endif
        _exit(0);
    }
    int failed = 0;
    for (uint64_t r = 0; jobs > 1 && r < jobs; r++) {
        int st = 0;
        ck_assert_int_eq(waitpid(runner[r], &st, 0), runner[r]);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    ck_assert_msg(failed == 0, "%d of %llu chaos runners failed (the first failure is above)",
                  failed, (unsigned long long)jobs);
    fprintf(stderr, "chaos: %llu sequences from seed %llu in %.1f s (%llu at once)\n",
            (unsigned long long)n, (unsigned long long)seed, (double)(nas_now_ms() - t0) / 1000.0,
            (unsigned long long)jobs);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("chaos");
    TCase *tc = tcase_create("sequences");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, test_chaos_random_sequences);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
