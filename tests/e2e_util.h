/*
 * e2e_util.h - helpers of the end-to-end suites (test_e2e*.c,
 * test_netns.c): start the real binaries as child processes with their
 * output in log files, wait for them with a deadline, write the campaign
 * files and the small benchmark table they use, and read the campaign's
 * database back.  Header-only (static functions) so that each suite stays
 * one file and the shared harness is not touched.
 *
 * Nothing here is a mock: the processes are nas-master and nas-worker, the
 * sockets are TCP, the database is a SQLite file.
 */
#ifndef NAS_E2E_UTIL_H
#define NAS_E2E_UTIL_H

#include "common/clock.h"
#include "common/err.h"
#include "master/store.h"
#include "tests/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Start argv[0] (a path) with stdout and stderr appended to `log`; an
 * optional `netns` runs it through `ip netns exec NAME`.  Returns the pid. */
/* Every process a test starts is noted in the file named by
 * $NAS_E2E_PIDFILE, so that e2e_reap_all() (an unchecked teardown, run in
 * the suite's own process) can end them even when a failed assertion
 * ended the test process first. */
__attribute__((unused)) static void e2e_note_pid(pid_t pid) {
    const char *pf = getenv("NAS_E2E_PIDFILE");
    FILE *f = pf ? fopen(pf, "a") : NULL;
    if (!f) return;
    fprintf(f, "%d\n", (int)pid);
    fclose(f);
}

/* Unchecked setup: name the pid file after the suite process. */
__attribute__((unused)) static void e2e_reap_setup(void) {
    char pf[64];
    snprintf(pf, sizeof pf, "/tmp/nas_e2e_%d.pids", (int)getpid());
    setenv("NAS_E2E_PIDFILE", pf, 1);
}

/* Unchecked teardown: SIGKILL whatever noted process still runs one of our
 * binaries (the command line is checked, so a recycled pid is left alone). */
__attribute__((unused)) static void e2e_reap_all(void) {
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

__attribute__((unused)) static pid_t e2e_spawn(const char *log, const char *netns,
                                               char *const argv[]) {
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
__attribute__((unused)) static int e2e_wait(pid_t pid, int64_t timeout_ms) {
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

/* Kill and reap (no-op for pid <= 0). */
__attribute__((unused)) static void e2e_kill(pid_t pid, int sig) {
    if (pid <= 0) return;
    kill(pid, sig);
    if (sig == SIGKILL || e2e_wait(pid, 5000) == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* Write a file from a format. */
__attribute__((unused)) static void e2e_write(const char *path, const char *fmt, ...) {
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
__attribute__((unused)) static void e2e_write_nb201_table(const char *path) {
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
__attribute__((unused)) static void e2e_write_campaign(const char *path, const char *name,
                                                       int budget, int port, const char *host,
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
__attribute__((unused)) static int e2e_port_free(int port) {
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

/* A base of three free TCP ports (control, weights, status) for a test's
 * master.  Ports stay below 32768, the start of Linux's ephemeral range, so
 * the outgoing connections of other tests cannot take them; the base
 * derives from the pid and slot so suites running in parallel start apart,
 * and a base whose ports are taken right now is skipped. */
__attribute__((unused)) static int e2e_port(int slot) {
    const int lo = 10000, span = 32000 - lo;
    int base = lo + (int)((getpid() * 97 + slot * 3) % span);
    for (int tries = 0; tries < 2000; tries++) {
        int p = lo + (base - lo + tries * 7) % (span - 3);
        if (e2e_port_free(p) && e2e_port_free(p + 1) && e2e_port_free(p + 2)) return p;
    }
    return base;
}

/* Counts of the search stage (and the final stage into *fin if not NULL). */
__attribute__((unused)) static void e2e_counts(const char *db, nas_store_counts *s,
                                               nas_store_counts *fin) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    memset(s, 0, sizeof *s);
    if (nas_store_open_ro(&st, db, err) != NAS_OK) return;
    nas_store_task_counts(st, NAS_STORE_STAGE_SEARCH, s, err);
    if (fin) nas_store_task_counts(st, NAS_STORE_STAGE_FINAL, fin, err);
    nas_store_close(&st);
}

/* Wait until the search stage has >= done results and >= leased leases. */
__attribute__((unused)) static int e2e_wait_counts(const char *db, int64_t done, int64_t leased,
                                                   int64_t timeout_ms) {
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
__attribute__((unused)) static void e2e_check_exactly_once(const char *db, int budget) {
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

/* Occurrences of `needle` in a file. */
__attribute__((unused)) static int e2e_count_in_file(const char *path, const char *needle) {
    size_t len = 0;
    char *s = nas_read_file(path, &len);
    int n = 0;
    for (char *p = s; p && (p = strstr(p, needle)); p++)
        n++;
    free(s);
    return n;
}

#endif
