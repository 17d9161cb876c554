/*
 * core.c - the dispatcher's own work per result, without sockets or a
 * store: bench/dispatch/run's in-process companion (the master's CPU per
 * task there also counts ZeroMQ, SQLite and the strategy, and moves with
 * the machine's load by more than the dispatcher's part).
 *
 *   bench-dispatch-core --workers W --tasks N [--flood F]
 *
 * A dispatcher with the default configuration (4096 worker slots) and a
 * send hook that does nothing; --flood F registrations from F identities
 * that then fall silent and expire; then W workers register and say Ready,
 * and N tasks go through one at a time as a campaign pushes them (push,
 * lease, Result).  Prints one line:
 *   workers=W tasks=N flood=F us_per_result=U
 * where U is the process's CPU time for the N tasks divided by N.
 */
#include "common/err.h"
#include "common/log.h"
#include "master/dispatcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int no_send(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *m) {
    (void)ctx, (void)id, (void)id_len, (void)m;
    return NAS_OK;
}

static void from(nas_dispatcher *d, const char *id, const nas_wire_msg *m, int64_t now) {
    nas_dispatcher_on_message(d, (const uint8_t *)id, strlen(id), m, now);
}

static void reg(nas_dispatcher *d, const char *id, int64_t now) {
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_REGISTER);
    snprintf(m.u.reg.name, sizeof m.u.reg.name, "%s", id);
    snprintf(m.u.reg.host, sizeof m.u.reg.host, "bench");
    m.u.reg.protocol = NAS_PROTOCOL_VERSION;
    m.u.reg.cores = 1;
    from(d, id, &m, now);
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int workers = 8, tasks = 100000, flood = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--workers") == 0)
            workers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--tasks") == 0)
            tasks = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--flood") == 0)
            flood = atoi(argv[i + 1]);
    }
    if (workers < 1 || tasks < 1 || flood < 0 || argc % 2 == 0) {
        fprintf(stderr, "usage: bench-dispatch-core --workers W --tasks N [--flood F]\n");
        return 2;
    }
    nas_log_set_level(NAS_LOG_ERROR);
    nas_dispatcher_config cfg;
    nas_dispatcher_config_default(&cfg);
    nas_dispatcher_hooks h = {.send = no_send};
    nas_dispatcher *d = NULL;
    char err[NAS_ERR_LEN];
    if (nas_dispatcher_create(&d, &cfg, &h, err) < 0) {
        fprintf(stderr, "core: %s\n", err);
        return 1;
    }
    char id[32];
    for (int i = 0; i < flood; i++) {
        snprintf(id, sizeof id, "f%d", i);
        reg(d, id, 0);
    }
    /* Past the flood's liveness window: every flooded peer expires. */
    int64_t now = cfg.heartbeat_ms * cfg.liveness + 1;
    nas_dispatcher_tick(d, now);
    nas_wire_msg ready;
    nas_wire_msg_init(&ready, NAS_MSG_READY);
    for (int i = 0; i < workers; i++) {
        snprintf(id, sizeof id, "w%d", i);
        reg(d, id, now);
        from(d, id, &ready, now);
    }
    nas_wire_task t;
    memset(&t, 0, sizeof t);
    t.attempt = 1;
    t.fidelity = nas_fidelity_default();
    snprintf(t.genome, sizeof t.genome, "n=sep3x3:0+id:1 r=max3x3:0+id:1");
    nas_wire_msg res;
    nas_wire_msg_init(&res, NAS_MSG_RESULT);
    res.u.result.attempt = 1;
    res.u.result.val_acc = 0.5;
    double t0 = cpu_s();
    for (int i = 1; i <= tasks; i++) {
        /* A millisecond a task: the worker idle longest is then the one
         * that delivered W results ago, so the W workers take turns. */
        now++;
        t.task_id = (uint64_t)i;
        if (nas_dispatcher_push(d, &t, now, err) < 0) {
            fprintf(stderr, "core: %s\n", err);
            return 1;
        }
        snprintf(id, sizeof id, "w%d", (i - 1) % workers);
        res.u.result.task_id = (uint64_t)i;
        from(d, id, &res, now);
    }
    double us = (cpu_s() - t0) * 1e6 / tasks;
    nas_dispatcher_counts c;
    nas_dispatcher_counts_get(d, &c);
    if (c.done != (size_t)tasks) {
        fprintf(stderr, "core: %zu of %d tasks done\n", c.done, tasks);
        return 1;
    }
    nas_dispatcher_destroy(&d);
    printf("workers=%d tasks=%d flood=%d us_per_result=%.3f\n", workers, tasks, flood, us);
    return 0;
}
