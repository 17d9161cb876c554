/*
 * agent_internal.h - what the agent's two threads share (agent.c, the
 * agent thread that talks to the master; agent_task.c, the task thread
 * that evaluates): the agent itself and the mailbox between them.  Not a
 * public interface: agent.h is.
 */
#ifndef NAS_AGENT_INTERNAL_H
#define NAS_AGENT_INTERNAL_H

#include "common/err.h"
#include "common/keys.h"
#include "common/wire.h"
#include "common/zmon.h"
#include "worker/agent.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Between the two threads, under mu (see the file comment). */
typedef struct mailbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* the task thread waits here for task_ready or quit */
    int task_ready;          /* task holds a Task the task thread has not taken */
    nas_wire_task *task;     /* heap: the task thread copies it out */
    int quit;                /* the task thread should return */
    nas_wire_progress *prog; /* Progress not yet taken by the agent thread */
    int n_prog, cap_prog;
    int has_end;       /* end holds the task's Result or Failure */
    nas_wire_msg *end; /* heap: a Result carries a 4 KiB curve */
    int signaled;      /* wake_fd written since the agent last took the output */
} mailbox;

struct nas_agent {
    nas_agent_config cfg;
    char name[NAS_WIRE_NAME_MAX];
    char host[NAS_WIRE_HOST_MAX];
    char endpoint[512];
    void *zctx;
    int own_zctx;  /* 1: zctx is ours to terminate */
    void *sock;    /* DEALER to the master, NULL while disconnected */
    nas_zmon *mon; /* handshake diagnostics of sock */
    mailbox mb;
    int mb_init;                   /* mu and cv initialised */
    int wake_fd;                   /* eventfd: the task thread has output for us */
    nas_wire_task *running;        /* the task thread's copy of its task */
    nas_wire_msg *result;          /* the task thread's Result being built */
    nas_wire_progress *prog_taken; /* the agent thread's side of the Progress swap */
    int cap_taken;
    nas_wire_msg *end_taken; /* the agent thread's copy of the Result or Failure */
    nas_wire_packet *pkt;    /* receive buffer of the agent thread */
    void *mon_armed; /* the monitor socket whose ZMQ_FD is armed (nas_agent_run); NULL: none */
    pthread_t thread;
    int thread_started;
    int stop_pipe[2];  /* nas_agent_request_stop() writes a byte */
    atomic_int cancel; /* 1: the running task should stop */
    int busy;          /* a task is running on the task thread */
    nas_task_ref current;
    int stopping;     /* graceful stop under way */
    int stops;        /* stop requests seen */
    int curve;        /* 1: connect with CurveZMQ */
    nas_keypair keys; /* wiped on destroy */
    char server_key[NAS_KEY_Z85_LEN + 1];
    nas_wire_result *held; /* NAS_WIRE_MAX_HELD results awaiting an Ack */
    int n_held;
    int64_t backoff;
    int64_t heartbeat_at, silent_at, reconnect_at, resend_at;
    int64_t heard_at, alive_at; /* the master's last message (0: none); next on_alive */
    int heard;                  /* the master has answered on the current connection */
    int handshakes;             /* zmon's successful handshakes when the connection began */
    char said[1024];            /* the last problem logged: the same one is not said again */
    int done;                   /* the master said the campaign is over */
    /* Why this worker leaves for good (0: it does not): its environment
     * failed a task (NAS_EIO), or a newer process took its name
     * (NAS_EEXIST).  run() returns it with leave_why. */
    int leave_rc;
    char leave_why[NAS_ERR_LEN];
    uint64_t incarnation; /* random, drawn at create: Register's incarnation */
    uint64_t seq;
    nas_agent_stats stats;
};

/* The task thread's body (pthread_create's start routine; arg: the
 * agent): wait for a Task in the mailbox, evaluate it, hand back its
 * Result or Failure, until told to quit. */
void *nas__agent_task_main(void *arg);

#endif
