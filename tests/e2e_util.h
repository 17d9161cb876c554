/*
 * e2e_util.h - helpers of the suites that drive the real binaries
 * (test_e2e.c, test_fault.c, test_security_e2e.c, test_netns.c, the
 * test_ps_* and test_campaign* suites): start nas-master and nas-worker as
 * child processes with their output in log files, wait for them, a log
 * line or a database state with a deadline, write the campaign files and
 * the small benchmark table they use, and read the campaign's database
 * back.  Built once into the test library (tests/CMakeLists.txt), next to
 * harness.c.
 *
 * Nothing here is a mock: the processes are nas-master and nas-worker, the
 * sockets are TCP, the database is a SQLite file.
 */
#ifndef NAS_E2E_UTIL_H
#define NAS_E2E_UTIL_H

#include "common/clock.h"
#include "common/err.h"
#include "master/campaign.h"
#include "master/config.h"
#include "master/store.h"
#include "tests/harness.h"
#include "worker/agent.h"
#include "worker/evaluate.h"
#include "worker/ps_client.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

// ---- one test's files and ports ---------------------------------------------------------------

/* Where one test's campaign lives: a fresh temporary directory with the
 * conventional file names, and a base of three free ports (control,
 * weights, status) on 127.0.0.1. */
typedef struct e2e_env {
    char dir[PATH_MAX];
    char cfg[PATH_MAX];   /* DIR/campaign.yaml */
    char db[PATH_MAX];    /* DIR/campaign.db */
    char mlog[PATH_MAX];  /* DIR/master.log */
    char table[PATH_MAX]; /* DIR/nb201.csv (written only by e2e_write_nb201_table) */
    char ctl[64];         /* tcp://127.0.0.1:PORT */
    char sts[64];         /* tcp://127.0.0.1:PORT+2 */
    int port;
} e2e_env;

/* Make the directory and pick the ports; `slot` keeps the tests of one
 * suite apart (see e2e_port). */
void e2e_env_init(e2e_env *e, int slot);

/* DIR/NAME.log: where e2e suites put the output of the process NAME. */
void e2e_log_path(const e2e_env *e, const char *name, char *out, size_t cap);

// ---- processes -------------------------------------------------------------------------------

/* Every process a test starts is noted in the file named by
 * $NAS_E2E_PIDFILE, so that e2e_reap_all() (an unchecked teardown, run in
 * the suite's own process) can end them even when a failed assertion
 * ended the test process first.  e2e_reap_setup is the unchecked setup
 * that names that file after the suite process. */
void e2e_reap_setup(void);

/* SIGKILL whatever noted process still runs one of our binaries (the
 * command line is checked, so a recycled pid is left alone). */
void e2e_reap_all(void);

/* Start argv[0] (a path) with stdout and stderr appended to `log`; an
 * optional `netns` runs it through `ip netns exec NAME`.  Returns the pid. */
pid_t e2e_spawn(const char *log, const char *netns, char *const argv[]);

/* nas-worker against `master` named `name`, with the fast Paranoid Pirate
 * settings every e2e suite uses (heartbeat 100 ms, liveness 3, reconnect
 * 50-200 ms) and synthetic epochs of `epoch_ms`; `extra` (NULL or a
 * NULL-terminated list) is appended, e.g. {"--log-level", "info", NULL}. */
pid_t e2e_start_worker(const char *log, const char *netns, const char *master, const char *name,
                       const char *epoch_ms, const char *const *extra);

/* nas-master CFG followed by `extra` (NULL-terminated, may be NULL). */
pid_t e2e_start_master(const char *log, const char *netns, const char *cfg,
                       const char *const *extra);

/* Wait up to timeout_ms for pid; returns its exit status (128+signal when
 * killed) or -1 on timeout (the process is left running). */
int e2e_wait(pid_t pid, int64_t timeout_ms);

/* e2e_wait() for a process that must end: the test fails, naming it, if
 * it still runs after timeout_ms. */
int e2e_wait_exit(pid_t pid, int64_t timeout_ms);

/* Kill and reap (no-op for pid <= 0); SIGKILL after 5 s if it lingers. */
void e2e_kill(pid_t pid, int sig);

/* A worker in this process: the real agent and a synthetic evaluator on a
 * thread of their own (the in-process campaign suites, which run the
 * master's loop on the test thread). */
typedef struct e2e_agent {
    nas_agent *agent;
    nas_evaluator *eval;
    nas_ps_client *ps; /* the training worker's weight store client (else NULL) */
    void *zctx;        /* its ZeroMQ context */
    pthread_t thread;
} e2e_agent;

/* Start it against `endpoint` as `name`, with synthetic epochs of
 * epoch_ms and the fast settings (heartbeat 100 ms, liveness 3, reconnect
 * 20-100 ms). */
void e2e_agent_start(e2e_agent *t, const char *endpoint, const char *name, int epoch_ms);

/* A worker in this process that really trains on the IDX files in `data`
 * and talks to the weight store at `weights` (heartbeat 200 ms, liveness
 * 10: a training step holds the thread). */
void e2e_agent_start_training(e2e_agent *t, const char *endpoint, const char *weights,
                              const char *data, const char *name);

/* Stop it gracefully, free it, and return how many of its results the
 * master acknowledged. */
int e2e_agent_stop(e2e_agent *t);

/* A campaign from the file cfg_path, run to its end on a libuv loop of this
 * thread with one training worker in this process (named `worker`, on the
 * IDX files in `data`, at the file's listen.control and listen.weights).
 * The campaign stays open so that the caller can read its store, weights
 * and status; e2e_inproc_close then ends the campaign, the loop and the
 * worker. */
typedef struct e2e_inproc {
    nas_config cfg;
    uv_loop_t loop;
    nas_campaign *c;
    e2e_agent agent;
} e2e_inproc;

void e2e_inproc_run(e2e_inproc *r, const char *cfg_path, const char *data, const char *worker);
void e2e_inproc_close(e2e_inproc *r);

// ---- files -------------------------------------------------------------------------------------

/* Write a file from a format (asserts it fits 8 KiB and was written). */
void e2e_write(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* `dir`/PREFIX-images-idx3-ubyte and -labels-idx1-ubyte with n MNIST-format
 * 28x28 images: a bright bar whose position is the label, on a faint
 * pattern, so a real network learns it in a few steps (asserts success). */
void e2e_write_bar_idx(const char *dir, const char *prefix, int n);
/* The same files with n noisy images (random pixels from `seed`): class k is
 * a bright 6x4 block at a place set by k, harder than the bars. */
void e2e_write_noisy_idx(const char *dir, const char *prefix, int n, uint64_t seed);

/* The whole NAS-Bench-201 space (15625 cells) as a CSV table whose
 * accuracies are a hash of the cell: every architecture any strategy can
 * propose is in it. */
void e2e_write_nb201_table(const char *path);

/* A campaign on the NB201 space; `extra` is appended (more keys). */
void e2e_write_campaign(const char *path, const char *name, int budget, int port, const char *host,
                        const char *db, const char *extra);

/* Occurrences of `needle` in a file (0 if it cannot be read). */
int e2e_count_in_file(const char *path, const char *needle);

/* Wait until `needle` appears in a file (1) or timeout_ms passes (0). */
int e2e_wait_in_file(const char *path, const char *needle, int64_t timeout_ms);

// ---- ports -----------------------------------------------------------------------------------

/* A base of three free TCP ports (control, weights, status) for a test's
 * master, below Linux's ephemeral range; see e2e_util.c. */
int e2e_port(int slot);

// ---- the campaign's database -----------------------------------------------------------------

/* Counts of the search stage (and the final stage into *fin if not NULL);
 * zeros when the database cannot be opened yet. */
void e2e_counts(const char *db, nas_store_counts *s, nas_store_counts *fin);

/* Wait until the search stage has >= done results and >= leased leases. */
int e2e_wait_counts(const char *db, int64_t done, int64_t leased, int64_t timeout_ms);

/* The leased search task with the lowest id, leased to `to` (NULL: to
 * anyone); its worker's name into worker (if not NULL).  0 if none. */
int64_t e2e_leased_task(const char *db, const char *to, char *worker, size_t cap);

/* Check the exactly-once invariants of a finished search stage: `budget`
 * results, one per task, every task done. */
void e2e_check_exactly_once(const char *db, int budget);

/* The search stage's history as the exact-resume promise compares it
 * (USER-GUIDE.md s3): each result's architecture and accuracy, in order. */
#define E2E_HISTORY_MAX 16
typedef struct e2e_history {
    int n;
    char arch[E2E_HISTORY_MAX][NAS_STORE_TEXT_MAX];
    double acc[E2E_HISTORY_MAX];
} e2e_history;

/* Read it (asserts the database opens and holds at most E2E_HISTORY_MAX). */
void e2e_read_history(const char *db, e2e_history *h);

/* The index of the first result where two histories differ, or -1 when
 * they are the same. */
int e2e_history_diff(const e2e_history *a, const e2e_history *b);

#endif
