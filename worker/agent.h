/*
 * agent.h - the worker's network side: a Paranoid Pirate client (STYLE
 * rule 15, ARCHITECTURE.md, The wire, docs/PROTOCOL.md).
 *
 * The agent owns a DEALER socket to the master and a task thread that it
 * hands Tasks to through a mutex-guarded mailbox (Progress and the Result
 * come back the same way, announced on an eventfd).  The agent thread only
 * does network work and never blocks for longer than a heartbeat interval,
 * so heartbeats go out while a task trains.  Lifecycle:
 *
 *   connect -> Register (held results, running task) -> held Results ->
 *   Ready -> Task -> Progress per epoch -> Result | Failure -> (idle) ...
 *
 * A socket monitor (common/zmon.h) watches the CURVE handshake: a master
 * that refuses this worker's key, or a --master-key that is not the
 * master's, is logged as such (rate-limited) instead of as a silent
 * master; the agent keeps reconnecting, so a key the operator authorizes
 * later (SIGHUP to the master) gets in without a restart.
 *
 * If nothing arrives from the master for liveness x heartbeat, the agent
 * drops the socket and reconnects after a backoff that starts at
 * reconnect_min_ms and doubles up to reconnect_max_ms (reset when the
 * master is heard again).  A task keeps running meanwhile; its Result is
 * held and delivered after the reconnect, again periodically, until the
 * master acknowledges it.  A stop request gives the current task back at
 * once (Failure with give_back), sends Disconnect and returns; a second
 * stop request returns immediately.
 */
#ifndef NAS_AGENT_H
#define NAS_AGENT_H

#include "common/keys.h"
#include "worker/evaluate.h"

#include <stdint.h>

typedef struct nas_agent nas_agent;

typedef struct nas_agent_config {
    const char *endpoint;     /* master control endpoint, e.g. tcp://host:5555 */
    const char *name;         /* worker name; NULL = "host:pid" */
    int threads;              /* cores announced in Register, default 1 */
    int64_t heartbeat_ms;     /* default 1000 */
    int liveness;             /* silent intervals before reconnecting, default 5 */
    int64_t reconnect_min_ms; /* default 1000 */
    int64_t reconnect_max_ms; /* default 32000 */
    nas_evaluator *eval;      /* borrowed; used by the task thread only */
    /* CurveZMQ (ARCHITECTURE.md, Security, docs/SECURITY.md): both set, or both NULL for a
     * plain connection.  Copied by create. */
    const nas_keypair *curve_keys; /* this worker's keypair */
    const char *curve_server_key;  /* the master's public key, Z85 */
    /* The files those keys came from, named in handshake diagnostics
     * ("add the public key in FILE to the master's --authorized
     * directory"); NULL: described in general words. */
    const char *curve_key_file;        /* this worker's BASE.key */
    const char *curve_server_key_file; /* the --master-key file */
    /* Called on the agent's thread with the weight store endpoint the
     * master announces in its answer to Register (as sent: a wildcard
     * host is the caller's to resolve); NULL: ignored. */
    void (*on_weights)(void *ctx, const char *endpoint);
    void *weights_ctx;
    /* A ZeroMQ context to share, borrowed (it must outlive the agent);
     * NULL: the agent makes its own.  Many agents in one process (the
     * dispatch bench's swarm) then share one I/O thread, which serves all
     * their connections in one wake-up instead of one thread each. */
    void *zmq_context;
    /* 0: nas_agent_run returns NAS_OK when the master says the campaign is
     * done; 1: wait for the next campaign (a service). */
    int stay;
    /* Called on the agent's thread about once per heartbeat, whether or
     * not the master answers: the liveness probe (worker/health.h).
     * connected: the master answered within its liveness window; busy: a
     * task runs; heard_ms_ago: -1 before the master's first message.
     * NULL: not called. */
    void (*on_alive)(void *ctx, int connected, int busy, int64_t heard_ms_ago);
    void *alive_ctx;
} nas_agent_config;

void nas_agent_config_default(nas_agent_config *cfg);

/* Create the agent and start its task thread (no network traffic yet).
 * NAS_EINVAL + err for a bad config. */
int nas_agent_create(nas_agent **out, const nas_agent_config *cfg, char *err);

/* Stop the task thread (cancelling a running task) and free everything. */
void nas_agent_destroy(nas_agent **ap);

/* Run until stopped.  Returns NAS_OK after a graceful stop (task given
 * back, Disconnect sent), NAS_ECANCELED after a second stop request
 * (return at once: the caller should exit without waiting for the task
 * thread), or a negative error with err filled (socket failure). */
int nas_agent_run(nas_agent *a, char *err);

/* Ask run() to stop.  Async-signal-safe and callable from any thread. */
void nas_agent_request_stop(nas_agent *a);

/* Counters for tests and logs; read them after run() returns. */
typedef struct nas_agent_stats {
    int registrations; /* Register messages sent */
    int tasks;         /* tasks started */
    int results_acked; /* results the master acknowledged */
    int held;          /* results still waiting for an Ack */
    int errors_in;     /* Error messages received */
    int bad_in;        /* undecodable messages received */
    /* Handshakes with the master as the socket monitor saw them
     * (common/zmon.h): the last outcome and the failures. */
    int handshake_state;    /* enum nas_zmon_state */
    int handshake_failures; /* failed handshakes since create */
} nas_agent_stats;

void nas_agent_stats_get(const nas_agent *a, nas_agent_stats *out);

/* The last handshake failure with the master as logged ("master tcp://..
 * refused this worker's key ..."), or "" when the last handshake
 * succeeded or none failed: what nas-worker repeats when it exits. */
const char *nas_agent_handshake_problem(const nas_agent *a);

#endif
