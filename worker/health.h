/*
 * health.h - the worker's liveness, as a service manager probes it.
 *
 * The agent thread reports about once per heartbeat (nas_agent_config's
 * on_alive).  Each report
 *  - rewrites the health file (--health-file), atomically, with one line:
 *    "alive WALL_MS connected 0|1 busy 0|1 heard_ms_ago N" (N = -1 before
 *    the master first answered); `nas-worker --check FILE` reads it back;
 *  - tells systemd, when it started the worker with Type=notify
 *    ($NOTIFY_SOCKET): READY=1 on the first report, WATCHDOG=1 on each, so
 *    that WatchdogSec= restarts a worker whose agent loop hangs.
 * Liveness is the agent loop turning, not the master answering: a worker
 * waiting for a master that is down is alive (restarting it would not
 * bring the master back), and the line says whether it is connected.
 */
#ifndef NAS_WORKER_HEALTH_H
#define NAS_WORKER_HEALTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct nas_health_state {
    int connected;        /* 1: the master answered within its liveness window */
    int busy;             /* 1: a task is running */
    int64_t heard_ms_ago; /* since the master's last message; -1: never */
} nas_health_state;

typedef struct nas_health {
    const char *path; /* the health file; NULL: none */
    int notified;     /* READY=1 has been sent */
    int failing;      /* the last report failed (logged once per run of failures) */
} nas_health;

/* Write the health file (when a path is set) and notify systemd (when
 * $NOTIFY_SOCKET is set).  Never fails the worker: a write that fails is
 * what the probe is for, so it returns the error for the caller to log. */
int nas_health_report(nas_health *h, const nas_health_state *s, int64_t wall_ms, char *err);

/* Read a health file: NAS_OK when it was written within max_age_ms of
 * now_wall_ms, NAS_ETIMEDOUT when older, NAS_EIO when it cannot be read,
 * NAS_EFORMAT when it is not a health line.  `line` (may be NULL) gets the
 * file's line. */
int nas_health_check(const char *path, int64_t max_age_ms, int64_t now_wall_ms, char *line,
                     size_t line_len, char *err);

/* Send one sd_notify(3) message when $NOTIFY_SOCKET is set (a no-op
 * returning NAS_OK otherwise). */
int nas_health_notify(const char *msg, char *err);

#endif
