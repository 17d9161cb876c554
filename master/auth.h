/*
 * auth.h - the master's ZAP handler (ZeroMQ RFC 27) and the loopback rule
 * (ARCHITECTURE.md, Security, docs/SECURITY.md).
 *
 * libzmq asks a ZAP handler, over a REP socket bound to
 * inproc://zeromq.zap.01 in the same context, whether to admit each peer
 * that completes a CURVE handshake with one of the master's server
 * sockets.  This handler admits a client whose public key is one of the
 * `*.key` files of an authorized directory (one file per worker or
 * operator; the file's name without ".key" becomes the ZAP User-Id, which
 * the master can read from any message with zmq_msg_gets(msg, "User-Id")).
 * Everything else gets status 400: unknown keys, other mechanisms (NULL,
 * PLAIN), other ZAP domains.  Each rejection is logged at WARN with the
 * key's fingerprint and the peer's address; a peer retrying in a loop is
 * logged on its 1st, 2nd, 4th, 8th, ... attempt, so the log cannot be
 * flooded.
 *
 * Two ways to serve it (pick one per handler):
 *  - From the master's libuv loop: watch nas_auth_socket() with a zmq_uv
 *    bridge whose reader calls nas_auth_handle() (it answers every
 *    pending request without blocking, so one call per wakeup is right).
 *  - From a thread: nas_auth_start() runs a small thread that does the
 *    same; nas_auth_destroy() stops it.
 * In both cases nas_auth_reload() may be called from the master's thread
 * at any time (it swaps the key set under a mutex).
 *
 * The handler must exist before any CURVE server socket binds: a socket
 * whose context has no ZAP handler admits every client that knows the
 * server's public key.
 */
#ifndef NAS_AUTH_H
#define NAS_AUTH_H

#include <stddef.h>

#define NAS_AUTH_ENDPOINT "inproc://zeromq.zap.01"
#define NAS_AUTH_MAX_KEYS 4096 /* authorized keys per directory */

typedef struct nas_auth nas_auth;

/* Bind the ZAP endpoint in zmq context `ctx` and load `authorized_dir`.
 * `domain` is the ZAP domain the master's sockets use (NULL = "nasd",
 * as nas_keys_curve_server); requests for other domains are refused.
 * An empty directory is allowed (nobody gets in until a reload) and
 * logged.  NAS_ENOTFOUND / NAS_EFORMAT / NAS_EIO + err for a directory or
 * key file that cannot be used; NAS_EEXIST if the context already has a
 * ZAP handler. */
int nas_auth_create(nas_auth **out, void *ctx, const char *authorized_dir, const char *domain,
                    char *err);

/* Stop the thread if one runs, close the socket, free everything. */
void nas_auth_destroy(nas_auth **ap);

/* Re-read the authorized directory and swap the key set atomically.
 * Returns the number of keys, or an error (the old set stays in force).
 * A file that is not a valid public key makes the whole reload fail, so
 * a typo never silently locks a worker out. */
int nas_auth_reload(nas_auth *a, char *err);

/* Number of keys in force. */
int nas_auth_key_count(nas_auth *a);

/* The REP socket, for a zmq_uv watch (reader: nas_auth_handle). */
void *nas_auth_socket(nas_auth *a);

/* Answer every ZAP request waiting on the socket, without blocking.
 * Returns how many were answered (>= 0) or NAS_EIO on a socket error.
 * Must not be called while the thread of nas_auth_start() runs. */
int nas_auth_handle(nas_auth *a);

/* Serve from a thread of its own until nas_auth_destroy(). */
int nas_auth_start(nas_auth *a, char *err);

typedef struct nas_auth_stats {
    long accepted;  /* 200 replies */
    long rejected;  /* 400 replies: unknown key, wrong mechanism/domain */
    long malformed; /* requests that broke RFC 27 (500 or dropped) */
} nas_auth_stats;

void nas_auth_stats_get(nas_auth *a, nas_auth_stats *out);

/* ---- the loopback rule ---------------------------------------------------- */

/* 1 if a bind to `endpoint` can only be reached from this machine:
 * ipc://, inproc://, tcp://127.x.y.z, tcp://localhost, tcp://[::1].
 * 0 for everything else, including the wildcard host ("*"), tcp://0.0.0.0, tcp://[::],
 * interface names and anything unparseable (the safe answer). */
int nas_auth_is_loopback(const char *endpoint);

/* The master's bind rule: NAS_OK for a loopback endpoint or when CURVE
 * keys are in use; with `insecure` set, NAS_OK after a WARN log line;
 * otherwise NAS_EAUTH with err telling the operator what to pass. */
int nas_auth_check_bind(const char *endpoint, int have_keys, int insecure, char *err);

#endif
