/*
 * e2e_util.c - the e2e suites' process, file and database helpers (see
 * e2e_util.h).  Every wait polls with a deadline (20 ms steps), so a test
 * that goes wrong fails at its own timeout instead of hanging the suite.
 */
#include "tests/e2e_util.h"

#include "common/alloc.h"
#include "common/rng.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zmq.h>

void e2e_env_init(e2e_env *e, int slot) {
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s", nas_tmpdir_make());
    nas_path_join(e->cfg, sizeof e->cfg, e->dir, "campaign.yaml");
    nas_path_join(e->db, sizeof e->db, e->dir, "campaign.db");
    nas_path_join(e->mlog, sizeof e->mlog, e->dir, "master.log");
    nas_path_join(e->table, sizeof e->table, e->dir, "nb201.csv");
    e->port = e2e_port(slot);
    snprintf(e->ctl, sizeof e->ctl, "tcp://127.0.0.1:%d", e->port);
    snprintf(e->sts, sizeof e->sts, "tcp://127.0.0.1:%d", e->port + 2);
}

void e2e_log_path(const e2e_env *e, const char *name, char *out, size_t cap) {
    char lname[128];
    snprintf(lname, sizeof lname, "%s.log", name);
    nas_path_join(out, cap, e->dir, lname);
}

/* Every process a test starts is noted in the file named by
 * $NAS_E2E_PIDFILE, so that e2e_reap_all() (an unchecked teardown, run in
 * the suite's own process) can end them even when a failed assertion
 * ended the test process first. */
static void e2e_note_pid(pid_t pid) {
    const char *pf = getenv("NAS_E2E_PIDFILE");
    FILE *f = pf ? fopen(pf, "a") : NULL;
    if (!f) return;
    fprintf(f, "%d\n", (int)pid);
    fclose(f);
}

/* The pid file is named after the suite process. */
void e2e_reap_setup(void) {
    char pf[64];
    snprintf(pf, sizeof pf, "/tmp/nas_e2e_%d.pids", (int)getpid());
    setenv("NAS_E2E_PIDFILE", pf, 1);
}

/* A recycled pid that now runs something else is left alone. */
void e2e_reap_all(void) {
    const char *pf = getenv("NAS_E2E_PIDFILE");
    FILE *f = pf ? fopen(pf, "r") : NULL;
    if (!f) return;
    int pid;
    while (fscanf(f, "%d", &pid) == 1) {
        char path[64], cmd[256] = "";
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        FILE *c = fopen(path, "r");
        if (!c) continue;
        size_t n = fread(cmd, 1, sizeof cmd - 1, c);
        fclose(c);
        for (size_t i = 0; i < n; i++)
            if (!cmd[i]) cmd[i] = ' ';
        if (strstr(cmd, "nas-master") || strstr(cmd, "nas-worker")) kill(pid, SIGKILL);
    }
    fclose(f);
    unlink(pf);
}

/* The child opens the log itself, so the parent holds no descriptor of
 * it; exec failure is exit status 127, as a shell reports it. */
pid_t e2e_spawn(const char *log, const char *netns, char *const argv[]) {
    pid_t pid = fork();
    if (pid > 0) e2e_note_pid(pid);
    if (pid != 0) return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    if (netns) {
        char *nv[64] = {"ip", "netns", "exec", (char *)netns};
        int n = 4;
        for (int i = 0; argv[i] && n < 63; i++)
            nv[n++] = argv[i];
        nv[n] = NULL;
        execvp("ip", nv);
    } else {
        execv(argv[0], argv);
    }
    _exit(127);
}

/* Wait up to timeout_ms for pid; returns its exit status (128+signal when
 * killed) or -1 on timeout (the process is left running). */
int e2e_wait(pid_t pid, int64_t timeout_ms) {
    int64_t end = nas_now_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -2;
        if (nas_now_ms() >= end) return -1;
        nas_sleep_ms(20);
    }
}

int e2e_wait_exit(pid_t pid, int64_t timeout_ms) {
    int rc = e2e_wait(pid, timeout_ms);
    ck_assert_msg(rc != -1, "process %d still runs after %lld ms", (int)pid, (long long)timeout_ms);
    return rc;
}

/* Kill and reap (no-op for pid <= 0). */
void e2e_kill(pid_t pid, int sig) {
    if (pid <= 0) return;
    kill(pid, sig);
    if (sig == SIGKILL || e2e_wait(pid, 5000) == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* Write a file from a format. */
void e2e_write(const char *path, const char *fmt, ...) {
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ck_assert_int_lt(n, (int)sizeof buf);
    ck_assert_int_eq(nas_write_file(path, buf, (size_t)n, 0), 0);
}

/* The whole NAS-Bench-201 space (15625 cells) as a CSV table whose
 * accuracies are a hash of the cell: every architecture any strategy can
 * propose is in it. */
static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes the IDX pair PREFIX-images-idx3-ubyte / -labels-idx1-ubyte of n
 * 28x28 images into `dir`, filling pixels and labels with fill(i, image,
 * seed) (which returns image i's label). */
static void write_idx_pair(const char *dir, const char *prefix, int n, uint64_t seed,
                           int (*fill)(int i, uint8_t *image, nas_rng *r)) {
    size_t isz = 16 + (size_t)n * 784, lsz = 8 + (size_t)n;
    uint8_t *img = calloc(isz, 1), *lab = calloc(lsz, 1);
    ck_assert_ptr_nonnull(img);
    ck_assert_ptr_nonnull(lab);
    put_be32(img, 0x803), put_be32(img + 4, (uint32_t)n), put_be32(img + 8, 28);
    put_be32(img + 12, 28);
    put_be32(lab, 0x801), put_be32(lab + 4, (uint32_t)n);
    nas_rng r;
    nas_rng_init(&r, seed, 0);
    for (int i = 0; i < n; i++)
        lab[8 + i] = (uint8_t)fill(i, img + 16 + (size_t)i * 784, &r);
    char path[PATH_MAX], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    ck_assert_int_eq(nas_write_file(nas_path_join(path, sizeof path, dir, name), img, isz, 0), 0);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    ck_assert_int_eq(nas_write_file(nas_path_join(path, sizeof path, dir, name), lab, lsz, 0), 0);
    free(img);
    free(lab);
}

static int bar_image(int i, uint8_t *im, nas_rng *r) {
    (void)r;
    int k = (i * 7) % 10;
    for (int p = 0; p < 784; p++)
        im[p] = (uint8_t)((p * 3 + i * 17) % 40);
    for (int y = 4; y < 24; y++)
        im[y * 28 + 2 + 2 * k] = 250;
    return k;
}

static int square_image(int i, uint8_t *im, nas_rng *r) {
    (void)i;
    int k = (int)nas_rng_below(r, 10);
    for (int p = 0; p < 784; p++)
        im[p] = (uint8_t)nas_rng_below(r, 60);
    int oy = 2 + (k / 5) * 14, ox = 2 + (k % 5) * 5;
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 4; x++)
            im[(oy + y) * 28 + ox + x] = 255;
    return k;
}

void e2e_write_bar_idx(const char *dir, const char *prefix, int n) {
    write_idx_pair(dir, prefix, n, 0, bar_image);
}

void e2e_write_noisy_idx(const char *dir, const char *prefix, int n, uint64_t seed) {
    write_idx_pair(dir, prefix, n, seed, square_image);
}

void e2e_write_nb201_table(const char *path) {
    static const char *const ops[] = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                      "avg_pool_3x3"};
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "arch,val_acc,test_acc,params\n");
    for (int code = 0; code < 15625; code++) {
        int e[6], c = code;
        for (int i = 0; i < 6; i++)
            e[i] = c % 5, c /= 5;
        char arch[256];
        snprintf(arch, sizeof arch, "|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|", ops[e[0]], ops[e[1]],
                 ops[e[2]], ops[e[3]], ops[e[4]], ops[e[5]]);
        uint64_t h = 1469598103934665603ULL;
        for (const char *p = arch; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        double acc = 0.5 + 0.45 * (double)(h % 10000) / 10000.0;
        fprintf(f, "%s,%.4f,%.4f,%d\n", arch, acc, acc - 0.01, 1000 + (int)(h % 5000));
    }
    fclose(f);
}

/* A campaign on the NB201 space; `extra` is appended (more keys). */
void e2e_write_campaign(const char *path, const char *name, int budget, int port, const char *host,
                        const char *db, const char *extra) {
    e2e_write(path,
              "name: %s\nseed: 7\nspace:\n  kind: nb201\n"
              "strategy:\n  name: evolution\n  population: 4\n  sample: 2\n"
              "budget:\n  evaluations: %d\n"
              "fidelity:\n  epochs: 2\n"
              "listen:\n  control: tcp://%s:%d\n  weights: tcp://%s:%d\n  status: tcp://%s:%d\n"
              "store: %s\n%s",
              name, budget, host, port, host, port + 1, host, port + 2, db, extra ? extra : "");
}

/* 1 if a TCP port on 127.0.0.1 can be bound right now. */
static int e2e_port_free(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Reserve a port for the life of this process: an flock on a file named
 * after it, shared by every test on the machine.  A port that is free now
 * may be bound only later (a master restarted after kill -9 binds its port
 * again), and a test running in parallel must not take it meanwhile, so
 * "free right now" is not enough.  The descriptor stays open on purpose:
 * the kernel drops the lock when the test process, and every child forked
 * from it, has exited. */
static int e2e_port_reserve(int port) {
    const char *dir = "/tmp/nasd-e2e-ports";
    mkdir(dir, 0777);
    char path[64];
    snprintf(path, sizeof path, "%s/%d", dir, port);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return INT_MAX; /* no reservations here: "free right now" must do */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    close(fd);
    return -1;
}

/* A base of three free TCP ports (control, weights, status) for a test's
 * master.  Ports stay below 32768, the start of Linux's ephemeral range, so
 * the outgoing connections of other tests cannot take them; the base
 * derives from the pid and slot so suites running in parallel start apart,
 * a base another test has reserved (e2e_port_reserve) or whose ports are
 * taken right now is skipped, and the base returned is reserved.  A slot
 * asked for again in the same process gets its base again while it is
 * free (a suite that runs hundreds of campaigns one after another holds
 * one reservation, not hundreds). */
int e2e_port(int slot) {
    /* Bases are lo + 3i, so two reserved bases never share a port. */
    const int lo = 10000, bases = (32000 - lo) / 3;
    static struct {
        pid_t pid;
        int slot, port;
    } known[64];
    static int n_known;
    for (int i = 0; i < n_known; i++)
        if (known[i].pid == getpid() && known[i].slot == slot && e2e_port_free(known[i].port) &&
            e2e_port_free(known[i].port + 1) && e2e_port_free(known[i].port + 2))
            return known[i].port;
    int first = (int)((getpid() * 97 + slot) % bases);
    for (int tries = 0; tries < 2000; tries++) {
        int p = lo + 3 * ((first + tries) % bases);
        int fd = e2e_port_reserve(p);
        if (fd < 0) continue;
        if (e2e_port_free(p) && e2e_port_free(p + 1) && e2e_port_free(p + 2)) {
            if (n_known < (int)NAS_ARRAY_LEN(known)) {
                known[n_known].pid = getpid();
                known[n_known].slot = slot;
                known[n_known++].port = p;
            }
            return p;
        }
        if (fd != INT_MAX) close(fd);
    }
    return lo + 3 * first;
}

/* Counts of the search stage (and the final stage into *fin if not NULL). */
void e2e_counts(const char *db, nas_store_counts *s, nas_store_counts *fin) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    memset(s, 0, sizeof *s);
    if (nas_store_open_ro(&st, db, err) != NAS_OK) return;
    nas_store_task_counts(st, NAS_STORE_STAGE_SEARCH, s, err);
    if (fin) nas_store_task_counts(st, NAS_STORE_STAGE_FINAL, fin, err);
    nas_store_close(&st);
}

/* Wait until the search stage has >= done results and >= leased leases. */
int e2e_wait_counts(const char *db, int64_t done, int64_t leased, int64_t timeout_ms) {
    int64_t end = nas_now_ms() + timeout_ms;
    while (nas_now_ms() < end) {
        nas_store_counts s;
        e2e_counts(db, &s, NULL);
        if (s.done >= done && s.leased >= leased) return 1;
        nas_sleep_ms(20);
    }
    return 0;
}

/* Check the exactly-once invariants of a finished search stage: `budget`
 * results, one per task, every task done. */
void e2e_check_exactly_once(const char *db, int budget) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    ck_assert_int_eq(n, budget);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            ck_assert_int_ne(r[i].task_id, r[j].task_id);
    nas_store_task_info *t = NULL;
    int nt = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, &t, err);
    ck_assert_int_eq(nt, budget);
    for (int i = 0; i < nt; i++)
        ck_assert_int_eq(t[i].state, NAS_STORE_TASK_DONE);
    nas_free(t);
    nas_store_records_free(r, n);
    nas_store_close(&st);
}

void e2e_read_history(const char *db, e2e_history *h) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    ck_assert_int_ge(n, 0);
    ck_assert_int_le(n, E2E_HISTORY_MAX);
    h->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(h->arch[i], sizeof h->arch[i], "%s", r[i].arch_text);
        h->acc[i] = r[i].accuracy;
    }
    nas_store_records_free(r, n);
    nas_store_close(&st);
}

int e2e_history_diff(const e2e_history *a, const e2e_history *b) {
    for (int i = 0; i < a->n || i < b->n; i++)
        if (i >= a->n || i >= b->n || strcmp(a->arch[i], b->arch[i]) != 0 || a->acc[i] != b->acc[i])
            return i;
    return -1;
}

/* Occurrences of `needle` in a file. */
int e2e_count_in_file(const char *path, const char *needle) {
    size_t len = 0;
    char *s = nas_read_file(path, &len);
    int n = 0;
    for (char *p = s; p && (p = strstr(p, needle)); p++)
        n++;
    free(s);
    return n;
}

/* Room for the base arguments and any test's extras; more is a test bug. */
#define E2E_ARGV_MAX 64

pid_t e2e_start_worker(const char *log, const char *netns, const char *master, const char *name,
                       const char *epoch_ms, const char *const *extra) {
    const char *base[] = {nas_bin("nas-worker"),
                          "--master",
                          master,
                          "--name",
                          name,
                          "--heartbeat-ms",
                          "100",
                          "--liveness",
                          "3",
                          "--reconnect-min-ms",
                          "50",
                          "--reconnect-max-ms",
                          "200",
                          "--synthetic-epoch-ms",
                          epoch_ms};
    char *argv[E2E_ARGV_MAX];
    int n = 0;
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        argv[n++] = (char *)base[i];
    for (int i = 0; extra && extra[i]; i++) {
        ck_assert_int_lt(n, E2E_ARGV_MAX - 1);
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    return e2e_spawn(log, netns, argv);
}

pid_t e2e_start_master(const char *log, const char *netns, const char *cfg,
                       const char *const *extra) {
    char *argv[E2E_ARGV_MAX] = {(char *)nas_bin("nas-master"), (char *)cfg};
    int n = 2;
    for (int i = 0; extra && extra[i]; i++) {
        ck_assert_int_lt(n, E2E_ARGV_MAX - 1);
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    return e2e_spawn(log, netns, argv);
}

int e2e_wait_in_file(const char *path, const char *needle, int64_t timeout_ms) {
    int64_t end = nas_now_ms() + timeout_ms;
    while (nas_now_ms() < end) {
        if (e2e_count_in_file(path, needle) > 0) return 1;
        nas_sleep_ms(20);
    }
    return 0;
}

/* The store lists tasks by id, so the first match has the lowest id. */
int64_t e2e_leased_task(const char *db, const char *to, char *worker, size_t cap) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    if (nas_store_open_ro(&st, db, err) != NAS_OK) return 0;
    nas_store_task_info *t = NULL;
    int n = nas_store_task_list(st, NAS_STORE_TASK_LEASED, NAS_STORE_STAGE_SEARCH, &t, err);
    int64_t id = 0;
    for (int i = 0; i < n && !id; i++) {
        if (to && strcmp(t[i].worker, to) != 0) continue;
        id = t[i].id;
        if (worker) snprintf(worker, cap, "%s", t[i].worker);
    }
    nas_free(t);
    nas_store_close(&st);
    return id;
}

static void *agent_main(void *arg) {
    e2e_agent *t = arg;
    char err[NAS_ERR_LEN];
    nas_agent_run(t->agent, err);
    return NULL;
}

/* Start the agent on `ec`'s evaluator with Paranoid Pirate settings. */
static void agent_start(e2e_agent *t, nas_evaluator_config *ec, const char *endpoint,
                        const char *name, int heartbeat_ms, int liveness) {
    char err[NAS_ERR_LEN];
    snprintf(ec->worker, sizeof ec->worker, "%s", name);
    ck_assert_int_eq(nas_evaluator_create(&t->eval, ec, err), NAS_OK);
    nas_agent_config ac;
    nas_agent_config_default(&ac);
    ac.endpoint = endpoint;
    ac.name = name;
    ac.heartbeat_ms = heartbeat_ms;
    ac.liveness = liveness;
    ac.reconnect_min_ms = 20;
    ac.reconnect_max_ms = 100;
    ac.eval = t->eval;
    ck_assert_int_eq(nas_agent_create(&t->agent, &ac, err), NAS_OK);
    ck_assert_int_eq(pthread_create(&t->thread, NULL, agent_main, t), 0);
}

void e2e_agent_start(e2e_agent *t, const char *endpoint, const char *name, int epoch_ms) {
    memset(t, 0, sizeof *t);
    nas_evaluator_config ec;
    nas_evaluator_config_default(&ec);
    ec.synthetic_epoch_ms = epoch_ms;
    agent_start(t, &ec, endpoint, name, 100, 3);
}

/* Training blocks the agent's thread between messages: a slower
 * heartbeat and more liveness than the synthetic worker's. */
void e2e_agent_start_training(e2e_agent *t, const char *endpoint, const char *weights,
                              const char *data, const char *name) {
    char err[NAS_ERR_LEN];
    memset(t, 0, sizeof *t);
    t->zctx = zmq_ctx_new();
    ck_assert_int_eq(nas_ps_client_create(&t->ps, t->zctx, weights, 10000, err), NAS_OK);
    nas_evaluator_config ec;
    nas_evaluator_config_default(&ec);
    ec.data_dir = data;
    ec.ps = t->ps;
    agent_start(t, &ec, endpoint, name, 200, 10);
}

/* The counters are read after run() returned (agent.h's rule). */
int e2e_agent_stop(e2e_agent *t) {
    nas_agent_request_stop(t->agent);
    pthread_join(t->thread, NULL);
    nas_agent_stats st;
    nas_agent_stats_get(t->agent, &st);
    nas_agent_destroy(&t->agent);
    nas_evaluator_destroy(&t->eval);
    nas_ps_client_destroy(&t->ps);
    if (t->zctx) zmq_ctx_term(t->zctx);
    return st.results_acked;
}

void e2e_inproc_run(e2e_inproc *r, const char *cfg_path, const char *data, const char *worker) {
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_config_load(cfg_path, &r->cfg, err) == NAS_OK, "%s", err);
    nas_campaign_options opt;
    nas_campaign_options_default(&opt);
    ck_assert_int_eq(uv_loop_init(&r->loop), 0);
    r->c = NULL;
    ck_assert_msg(nas_campaign_create(&r->c, &r->cfg, &opt, &r->loop, err) == NAS_OK, "%s", err);
    ck_assert_msg(nas_campaign_start(r->c, err) == NAS_OK, "%s", err);
    e2e_agent_start_training(&r->agent, r->cfg.listen.control, r->cfg.listen.weights, data,
                             worker);
    ck_assert_int_eq(uv_run(&r->loop, UV_RUN_DEFAULT), 0);
    ck_assert_msg(nas_campaign_status(r->c, err) == NAS_OK, "%s", err);
    ck_assert(nas_campaign_done(r->c));
}

void e2e_inproc_close(e2e_inproc *r) {
    nas_campaign_destroy(&r->c);
    ck_assert_int_eq(uv_loop_close(&r->loop), 0);
    e2e_agent_stop(&r->agent);
    nas_config_fini(&r->cfg);
}
