/*
 * swarm.c - load generator of bench/dispatch: one nas-master (started
 * here, so that its CPU time can be read with wait4()) and N worker agents
 * in this process, each a real nas_agent (Paranoid Pirate client, task
 * thread, DEALER over TCP) with a synthetic evaluator that returns at once.
 *
 *   bench-dispatch-swarm --agents N --db FILE [--io-threads K] [--before CMD]
 *                        -- nas-master CAMPAIGN.yaml ...
 *
 * Prints one line:
 *   agents=N tasks=T seconds=S tasks_per_s=R master_cpu_us_per_task=C swarm_cpu_us_per_task=W
 * where T is the number of search results durably committed in FILE, S the
 * time between the first and the last of them (store timestamps), C the
 * master's user+system CPU divided by T, and W the same for this process
 * (all its agents) while the master ran.  The agents share one ZeroMQ
 * context with K I/O threads (default 1; 0: a context per agent).
 * --before CMD runs CMD (sh -c) once the master is started and before the
 * agents are (bench/dispatch/run: a registration flood, then its expiry);
 * the master's CPU until CMD ended is not counted in C.
 */
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "master/store.h"
#include "worker/agent.h"
#include "worker/evaluate.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

typedef struct slot {
    nas_agent *agent;
    nas_evaluator *eval;
    pthread_t thread;
    char name[32];
} slot;

/* User plus system time of a rusage, in microseconds. */
static double cpu_us_of(const struct rusage *ru) {
    return (double)ru->ru_utime.tv_sec * 1e6 + (double)ru->ru_utime.tv_usec +
           (double)ru->ru_stime.tv_sec * 1e6 + (double)ru->ru_stime.tv_usec;
}

/* User plus system time a live process has used so far, in microseconds
 * (/proc/PID/stat, clock ticks); 0 if it cannot be read. */
static double proc_cpu_us(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static void *run_agent(void *arg) {
    slot *s = arg;
    char err[NAS_ERR_LEN];
    if (nas_agent_run(s->agent, err) < 0) fprintf(stderr, "swarm: %s: %s\n", s->name, err);
    return NULL;
}

int main(int argc, char **argv) {
    int n = 1, cmd = -1, io_threads = 1;
    const char *db = NULL, *endpoint = "tcp://127.0.0.1:5555", *before = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            cmd = i + 1;
            break;
        } else if (strcmp(argv[i], "--agents") == 0 && i + 1 < argc) {
            n = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db = argv[++i];
        } else if (strcmp(argv[i], "--io-threads") == 0 && i + 1 < argc) {
            io_threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--master") == 0 && i + 1 < argc) {
            endpoint = argv[++i];
        } else if (strcmp(argv[i], "--before") == 0 && i + 1 < argc) {
            before = argv[++i];
        } else {
            fprintf(stderr, "usage: bench-dispatch-swarm --agents N --db FILE [--master EP] "
                            "[--io-threads K] [--before CMD] -- nas-master ARGS...\n");
            return 2;
        }
    }
    if (n < 1 || !db || cmd < 0 || cmd >= argc) {
        fprintf(stderr, "swarm: --agents N >= 1, --db FILE and -- MASTER COMMAND are required\n");
        return 2;
    }
    nas_log_set_level(NAS_LOG_ERROR);
    /* The swarm's own CPU over the run (all its agents' threads), so that
     * the bench says whether its other side, not the master, is the limit. */
    struct rusage self0, self1;
    getrusage(RUSAGE_SELF, &self0);
    pid_t master = fork();
    if (master == 0) {
        /* The master's summary would mix with our one line. */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 1);
        execv(argv[cmd], argv + cmd);
        _exit(127);
    }
    slot *slots = calloc((size_t)n, sizeof *slots);
    char err[NAS_ERR_LEN];
    double master_pre_us = 0;
    if (before) {
        int rc = system(before);
        if (rc != 0) {
            snprintf(err, sizeof err, "--before '%s' failed (status %d)", before, rc);
            goto fail;
        }
        master_pre_us = proc_cpu_us(master);
    }
    /* One ZeroMQ context for all agents (--io-threads 0: one each, as
     * separate nas-worker processes would have): its I/O thread serves
     * every agent's connection in one wake-up. */
    void *zctx = NULL;
    if (io_threads > 0) {
        zctx = zmq_ctx_new();
        /* Five sockets an agent (DEALER, the task pipe's two ends, the
         * monitor's two); ZeroMQ's default cap is 1023. */
        if (!zctx || zmq_ctx_set(zctx, ZMQ_IO_THREADS, io_threads) != 0 ||
            zmq_ctx_set(zctx, ZMQ_MAX_SOCKETS, 8 * n + 64) != 0) {
            snprintf(err, sizeof err, "cannot make a ZeroMQ context");
            goto fail;
        }
    }
    for (int i = 0; i < n; i++) {
        slot *s = &slots[i];
        snprintf(s->name, sizeof s->name, "swarm-%d", i);
        nas_evaluator_config ec;
        nas_evaluator_config_default(&ec);
        snprintf(ec.worker, sizeof ec.worker, "%s", s->name);
        nas_agent_config ac;
        nas_agent_config_default(&ac);
        ac.endpoint = endpoint;
        ac.name = s->name;
        ac.reconnect_min_ms = 50;
        ac.reconnect_max_ms = 500;
        ac.zmq_context = zctx;
        if (nas_evaluator_create(&s->eval, &ec, err) < 0) goto fail;
        ac.eval = s->eval;
        if (nas_agent_create(&s->agent, &ac, err) < 0) goto fail;
        if (pthread_create(&s->thread, NULL, run_agent, s) != 0) {
            snprintf(err, sizeof err, "pthread_create failed");
            goto fail;
        }
    }
    int status = 0;
    struct rusage ru;
    if (wait4(master, &status, 0, &ru) != master) {
        snprintf(err, sizeof err, "wait4 failed");
        goto fail;
    }
    getrusage(RUSAGE_SELF, &self1);
    for (int i = 0; i < n; i++)
        nas_agent_request_stop(slots[i].agent);
    for (int i = 0; i < n; i++)
        pthread_join(slots[i].thread, NULL);
    for (int i = 0; i < n; i++) {
        nas_agent_destroy(&slots[i].agent);
        nas_evaluator_destroy(&slots[i].eval);
    }
    free(slots);
    if (zctx) zmq_ctx_term(zctx);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "swarm: the master failed (status %d)\n", status);
        return 1;
    }
    nas_store *st = NULL;
    nas_store_record *r = NULL;
    if (nas_store_open_ro(&st, db, err) < 0) {
        fprintf(stderr, "swarm: %s\n", err);
        return 1;
    }
    int t = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    if (t < 2) {
        fprintf(stderr, "swarm: only %d results in %s\n", t, db);
        return 1;
    }
    double secs = (double)(r[t - 1].finished_ms - r[0].finished_ms) / 1000.0;
    double swarm_us = cpu_us_of(&self1) - cpu_us_of(&self0);
    printf("agents=%d tasks=%d seconds=%.3f tasks_per_s=%.1f master_cpu_us_per_task=%.1f "
           "swarm_cpu_us_per_task=%.1f\n",
           n, t, secs, secs > 0 ? (t - 1) / secs : 0.0, (cpu_us_of(&ru) - master_pre_us) / t,
           swarm_us / t);
    nas_store_records_free(r, t);
    nas_store_close(&st);
    return 0;
fail:
    fprintf(stderr, "swarm: %s\n", err);
    kill(master, SIGKILL);
    waitpid(master, NULL, 0);
    return 1;
}
