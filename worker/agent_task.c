/*
 * agent_task.c - the agent's task thread (agent.c's file comment): it takes
 * a Task from the mailbox, runs the evaluator on it, queues its Progress
 * and hands back exactly one Result or Failure, waking the agent thread
 * through the eventfd.  It never touches the master socket (ZeroMQ sockets
 * are not thread-safe) and shares only the mailbox and the cancel flag.
 */
#include "worker/agent_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "worker/evaluate.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Wake the agent thread unless it was woken already and has not yet
 * taken the output (one eventfd write per batch of output, not per
 * message).  Called with mu held. */
static void wake_agent(nas_agent *a) {
    if (a->mb.signaled) return;
    a->mb.signaled = 1;
    uint64_t one = 1;
    ssize_t n = write(a->wake_fd, &one, sizeof one);
    (void)n; /* a full eventfd counter is still readable */
}

/* Runs on the task thread: queue the epoch's figures for the agent thread,
 * which owns the master socket.  A queue that cannot grow drops the
 * report: progress is advisory. */
static void task_progress(void *ctx, const nas_wire_progress *p) {
    nas_agent *a = ctx;
    pthread_mutex_lock(&a->mb.mu);
    if (a->mb.n_prog == a->mb.cap_prog) {
        int cap = a->mb.cap_prog ? 2 * a->mb.cap_prog : 16;
        nas_wire_progress *grown = nas_realloc(a->mb.prog, (size_t)cap * sizeof *grown);
        if (grown) a->mb.prog = grown, a->mb.cap_prog = cap;
    }
    if (a->mb.n_prog < a->mb.cap_prog) {
        a->mb.prog[a->mb.n_prog++] = *p;
        wake_agent(a);
    }
    pthread_mutex_unlock(&a->mb.mu);
}

static int task_cancelled(void *ctx) {
    return atomic_load(&((nas_agent *)ctx)->cancel);
}

/* Evaluate one task and hand exactly one Result or Failure back. */
static void run_one(nas_agent *a, const nas_wire_task *task) {
    nas_eval_hooks hooks = {a, task_progress, task_cancelled, &a->cancel};
    char err[NAS_ERR_LEN] = "";
    nas_wire_msg *m = a->result;
    nas_wire_msg_init(m, NAS_MSG_RESULT);
    int rc = nas_evaluator_run(a->cfg.eval, task, &hooks, &m->u.result, err);
    memcpy(m->u.result.worker, a->name, sizeof m->u.result.worker);
    /* An evaluator bug must become a failure here, not an Error there. */
    if (rc == NAS_OK && nas_wire_validate(m, err) < 0) rc = NAS_EFORMAT;
    if (rc < 0) {
        nas_wire_msg_init(m, NAS_MSG_FAILURE);
        m->u.failure.task_id = task->task_id;
        m->u.failure.attempt = task->attempt;
        m->u.failure.code = rc;
        snprintf(m->u.failure.reason, sizeof m->u.failure.reason, "%s", err);
        /* Not the architecture's fault: the task goes back uncounted. */
        m->u.failure.environment = nas_evaluator_env_failure(a->cfg.eval);
        m->u.failure.give_back = m->u.failure.environment;
    }
    pthread_mutex_lock(&a->mb.mu);
    /* The agent hands out the next task only after taking this one's end. */
    NAS_ASSERT(!a->mb.has_end);
    memcpy(a->mb.end, m, sizeof *m);
    a->mb.has_end = 1;
    wake_agent(a);
    pthread_mutex_unlock(&a->mb.mu);
}

/* The task thread: wait for a Task, evaluate it, repeat until told to
 * quit.  It never touches the master socket (ZeroMQ sockets are not
 * thread-safe) and shares only the mailbox and the cancel flag. */
void *nas__agent_task_main(void *arg) {
    nas_agent *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->mb.mu);
        while (!a->mb.quit && !a->mb.task_ready)
            pthread_cond_wait(&a->mb.cv, &a->mb.mu);
        int quit = a->mb.quit;
        if (!quit) {
            memcpy(a->running, a->mb.task, sizeof *a->running);
            a->mb.task_ready = 0;
        }
        pthread_mutex_unlock(&a->mb.mu);
        if (quit) break;
        run_one(a, a->running);
    }
    return NULL;
}
