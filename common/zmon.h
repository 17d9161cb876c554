/*
 * zmon.h - why a ZeroMQ client cannot get through: handshake diagnostics
 * from libzmq's socket monitor (docs/SECURITY.md, "When a worker is not
 * admitted").
 *
 * A DEALER whose CURVE handshake fails never says so: libzmq retries the
 * connection every 100 ms and the socket just stays silent, so a worker
 * the master refuses looks exactly like a worker whose master is down.
 * The socket monitor does see the handshake, and this module turns its
 * events into one clear, rate-limited log line naming the cause and the
 * fix:
 *
 *   HANDSHAKE_FAILED_AUTH      the ZAP handler refused our key (status 400)
 *   HANDSHAKE_FAILED_PROTOCOL  a security mismatch (CURVE against plain)
 *   HANDSHAKE_FAILED_NO_DETAIL the server hung up mid-handshake: with keys,
 *                              almost always the wrong server public key
 *   HANDSHAKE_SUCCEEDED        admitted (logged once after failures)
 *
 * One nas_zmon lives as long as its owner (the agent, the weights client)
 * and follows the owner's socket as it is replaced on reconnects
 * (attach/detach), so the rate limit spans reconnects.  Not thread-safe:
 * use it on the thread that owns the monitored socket.
 */
#ifndef NAS_ZMON_H
#define NAS_ZMON_H

#include <stdint.h>

/* What the last handshake event said. */
enum nas_zmon_state {
    NAS_ZMON_NONE = 0, /* no handshake seen yet */
    NAS_ZMON_OK,       /* handshake succeeded */
    NAS_ZMON_REFUSED,  /* ZAP refused our key */
    NAS_ZMON_PROTOCOL, /* security mechanism mismatch */
    NAS_ZMON_DROPPED,  /* server hung up mid-handshake (wrong server key?) */
};

typedef struct nas_zmon nas_zmon;

typedef struct nas_zmon_config {
    const char *what;            /* the peer in messages: "master", "weight store" */
    const char *self;            /* who we are in messages; NULL: "this worker" */
    int curve;                   /* 1: the client uses CurveZMQ */
    const char *public_z85;      /* our public key (curve), for its fingerprint */
    const char *key_file;        /* our public key file, or NULL ("this client's .key file") */
    const char *server_key_file; /* the server's public key file, or NULL */
    const char *key_option;      /* option naming the server key, e.g. "--master-key" */
    int64_t repeat_ms;           /* a repeated diagnosis is logged at most this often */
} nas_zmon_config;

/* Counters and the last diagnosis, for status lines and exit messages. */
typedef struct nas_zmon_stats {
    enum nas_zmon_state state; /* the last handshake's outcome */
    int failures;              /* failed handshakes in a row (0 after a success) */
    int total_failures;        /* failed handshakes since create */
    int successes;             /* handshakes that succeeded */
    uint32_t zap_status;       /* the ZAP status of the last refusal (400, 500) */
    char message[1024];        /* the last failure, as logged; "" if none */
} nas_zmon_stats;

/* Create a monitor in context zctx (the one the watched sockets live in).
 * The strings of cfg are copied.  NAS_EINVAL + err for a bad config. */
int nas_zmon_create(nas_zmon **out, void *zctx, const nas_zmon_config *cfg, char *err);

/* Detach and free; NULL-safe. */
void nas_zmon_destroy(nas_zmon **mp);

/* Watch sock's handshakes with `endpoint` (as connected to; used in
 * messages).  Call before zmq_connect so the first handshake is seen.
 * A socket already attached is detached first.  NAS_EIO + err when the
 * monitor cannot be set up; the caller may go on without diagnostics. */
int nas_zmon_attach(nas_zmon *m, void *sock, const char *endpoint, char *err);

/* Stop watching the attached socket.  Call before closing it. */
void nas_zmon_detach(nas_zmon *m);

/* The socket to add to zmq_poll (ZMQ_POLLIN), NULL while detached. */
void *nas_zmon_socket(const nas_zmon *m);

/* Read every pending event without blocking, log what they mean (a new
 * cause at once, the same cause again at most every repeat_ms, "admitted"
 * once after failures) and return the latest state. */
enum nas_zmon_state nas_zmon_poll(nas_zmon *m, int64_t now_ms);

/* Feed one event as the monitor would deliver it (tests, and poll). */
enum nas_zmon_state nas_zmon_event(nas_zmon *m, uint16_t event, uint32_t value, int64_t now_ms);

void nas_zmon_stats_get(const nas_zmon *m, nas_zmon_stats *out);

/* 1 when the handshakes fail for a reason worth reporting: a refusal, a
 * protocol mismatch, or the server dropping two handshakes in a row (a
 * single drop may be a restart).  What nas_zmon_poll logs at ERROR. */
int nas_zmon_failing(const nas_zmon *m);

/* The last failure's message ("" if none), valid until the next event. */
const char *nas_zmon_message(const nas_zmon *m);

/* The name of a state ("refused", ...), for logs and status. */
const char *nas_zmon_state_name(enum nas_zmon_state s);

#endif
