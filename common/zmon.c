/*
 * zmon.c - handshake diagnostics from libzmq's socket monitor (see
 * zmon.h for what each event means).
 *
 * zmq_socket_monitor() makes the watched socket publish its events on an
 * inproc PAIR that it binds; we connect our own PAIR to it.  Each watched
 * socket gets a fresh inproc address (a generation counter): the old
 * address may still be bound for a moment after a detach, because libzmq
 * closes the monitor's socket asynchronously.
 *
 * Rate limit.  libzmq retries a refused connection every 100 ms, so the
 * same failure arrives ten times a second for as long as the operator
 * takes to fix it.  A new cause is logged at once; the same cause again
 * at most every repeat_ms, with the count of attempts in between, so the
 * log stays readable and still shows the worker is alive and retrying.
 */
#include "common/zmon.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/keys.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define ZMON_EVENTS                                                                                \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |                  \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
#define ZMON_DEFAULT_REPEAT_MS 30000

struct nas_zmon {
    void *zctx;
    void *sock; /* the watched socket, NULL while detached */
    void *pair; /* our end of the monitor pipe */
    unsigned gen;
    int curve;
    int64_t repeat_ms;
    char what[32];
    char self[32];
    char fp[NAS_KEY_FP_LEN];
    char key_file[256];
    char server_key_file[256];
    char key_option[32];
    char endpoint[256];
    nas_zmon_stats st;
    int logged;          /* a failure of the current kind has been logged */
    int64_t logged_at;   /* when it was last logged */
    int since_logged;    /* failures of that kind since it was logged */
    int logged_failures; /* 1 once any failure was logged (so success is worth a line) */
};

const char *nas_zmon_state_name(enum nas_zmon_state s) {
    switch (s) {
    case NAS_ZMON_NONE:
        return "none";
    case NAS_ZMON_OK:
        return "admitted";
    case NAS_ZMON_REFUSED:
        return "refused";
    case NAS_ZMON_PROTOCOL:
        return "protocol mismatch";
    case NAS_ZMON_DROPPED:
        return "dropped";
    }
    return "unknown";
}

/* Strings are copied so that the owner's config (often argv and stack
 * buffers in main) need not outlive it; missing file names get general
 * words rather than an empty quote in the message. */
int nas_zmon_create(nas_zmon **out, void *zctx, const nas_zmon_config *cfg, char *err) {
    if (!zctx || !cfg) return nas_set_err(err, NAS_EINVAL, "zmon: a context and config are needed");
    if (cfg->curve && !cfg->public_z85)
        return nas_set_err(err, NAS_EINVAL, "zmon: CurveZMQ without our public key");
    if (cfg->repeat_ms < 0) return nas_set_err(err, NAS_EINVAL, "zmon: repeat_ms is negative");
    nas_zmon *m = nas_calloc(1, sizeof *m);
    if (!m) return nas_set_err(err, NAS_ENOMEM, "zmon: out of memory");
    m->zctx = zctx;
    m->curve = cfg->curve;
    m->repeat_ms = cfg->repeat_ms ? cfg->repeat_ms : ZMON_DEFAULT_REPEAT_MS;
    snprintf(m->what, sizeof m->what, "%s", cfg->what ? cfg->what : "server");
    snprintf(m->self, sizeof m->self, "%s", cfg->self ? cfg->self : "this worker");
    if (cfg->key_file)
        snprintf(m->key_file, sizeof m->key_file, "%s", cfg->key_file);
    else
        snprintf(m->key_file, sizeof m->key_file, "%s's .key file", m->self);
    snprintf(m->server_key_file, sizeof m->server_key_file, "%s",
             cfg->server_key_file ? cfg->server_key_file : "the server key file");
    snprintf(m->key_option, sizeof m->key_option, "%s",
             cfg->key_option ? cfg->key_option : "--master-key");
    if (cfg->curve) nas_keys_fingerprint(cfg->public_z85, m->fp);
    *out = m;
    return NAS_OK;
}

void nas_zmon_destroy(nas_zmon **mp) {
    if (!mp || !*mp) return;
    nas_zmon_detach(*mp);
    nas_free(*mp);
    *mp = NULL;
}

int nas_zmon_attach(nas_zmon *m, void *sock, const char *endpoint, char *err) {
    nas_zmon_detach(m);
    /* The pipe's name must be new each time: libzmq's reaper closes a
     * closed socket's monitor later, so an old name can still be bound
     * when a new zmon is allocated at a freed one's address (pointer and
     * counter alike); the monotonic clock in ns tells them apart. */
    char addr[96];
    snprintf(addr, sizeof addr, "inproc://nas-zmon-%p-%u-%lld", (void *)m, ++m->gen,
             (long long)nas_now_ns());
    snprintf(m->endpoint, sizeof m->endpoint, "%s", endpoint ? endpoint : "?");
    if (zmq_socket_monitor(sock, addr, ZMON_EVENTS) != 0)
        return nas_set_err(err, NAS_EIO, "zmon: zmq_socket_monitor: %s", zmq_strerror(zmq_errno()));
    /* Linger 0: events still queued when we detach are worthless, and
     * must not hold up zmq_ctx_term. */
    m->pair = zmq_socket(m->zctx, ZMQ_PAIR);
    int zero = 0;
    if (!m->pair || zmq_setsockopt(m->pair, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(m->pair, addr) != 0) {
        nas_set_err(err, NAS_EIO, "zmon: monitor pipe %s: %s", addr, zmq_strerror(zmq_errno()));
        if (m->pair) zmq_close(m->pair);
        m->pair = NULL;
        zmq_socket_monitor(sock, NULL, 0);
        return NAS_EIO;
    }
    m->sock = sock;
    return NAS_OK;
}

/* Stopping the monitor first: libzmq then closes its end of the pipe, and
 * no event can be sent into a pipe nobody reads. */
void nas_zmon_detach(nas_zmon *m) {
    if (!m || !m->sock) return;
    zmq_socket_monitor(m->sock, NULL, 0);
    zmq_close(m->pair);
    m->pair = NULL;
    m->sock = NULL;
}

void *nas_zmon_socket(const nas_zmon *m) {
    return m ? m->pair : NULL;
}

void nas_zmon_stats_get(const nas_zmon *m, nas_zmon_stats *out) {
    *out = m->st;
}

int nas_zmon_failing(const nas_zmon *m) {
    switch (m->st.state) {
    case NAS_ZMON_REFUSED:
    case NAS_ZMON_PROTOCOL:
        return 1;
    case NAS_ZMON_DROPPED:
        return m->st.failures >= 2;
    default:
        return 0;
    }
}

const char *nas_zmon_message(const nas_zmon *m) {
    return m->st.message;
}

/* The cause and the fix, in the words an operator needs.  A client that
 * used the wrong server key cannot be told so by the server (it cannot
 * even read our hello), so it sees a connection dropped mid-handshake. */
static enum nas_zmon_state describe(nas_zmon *m, uint16_t event, uint32_t value) {
    char *msg = m->st.message;
    size_t cap = sizeof m->st.message;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        m->st.zap_status = value;
        if (m->curve)
            snprintf(msg, cap,
                     "%s %s refused %s's key %s (ZAP status %u): add the public key in %s to "
                     "the master's --authorized directory and send the master SIGHUP",
                     m->what, m->endpoint, m->self, m->fp, (unsigned)value, m->key_file);
        else
            snprintf(msg, cap,
                     "%s %s refused %s (ZAP status %u): the master requires CurveZMQ (give "
                     "--key BASE and %s FILE)",
                     m->what, m->endpoint, m->self, (unsigned)value, m->key_option);
        return NAS_ZMON_REFUSED;
    }
    /* A mechanism mismatch names the side that lacks CurveZMQ; any other
     * protocol error under CURVE is most likely a key that does not fit. */
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        if (!m->curve)
            snprintf(msg, cap,
                     "handshake with %s %s failed (protocol error 0x%08x): the master requires "
                     "CurveZMQ (give --key BASE and %s FILE)",
                     m->what, m->endpoint, (unsigned)value, m->key_option);
        else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            snprintf(msg, cap,
                     "CURVE handshake with %s %s failed: the master does not use CurveZMQ (it "
                     "runs without --key); drop --key and %s",
                     m->what, m->endpoint, m->key_option);
        else
            snprintf(msg, cap,
                     "CURVE handshake with %s %s failed (protocol error 0x%08x): is %s (%s) the "
                     "master's public key?",
                     m->what, m->endpoint, (unsigned)value, m->server_key_file, m->key_option);
        return NAS_ZMON_PROTOCOL;
    }
    if (m->curve)
        snprintf(msg, cap,
                 "CURVE handshake with %s %s failed (%s): is %s (%s) the master's public key, "
                 "and does the master run with --key?",
                 m->what, m->endpoint, zmq_strerror((int)value), m->server_key_file, m->key_option);
    else
        snprintf(msg, cap,
                 "handshake with %s %s failed (%s): the master dropped the connection; it "
                 "probably requires CurveZMQ (give --key BASE and %s FILE)",
                 m->what, m->endpoint, zmq_strerror((int)value), m->key_option);
    return NAS_ZMON_DROPPED;
}

/* Success is worth a line only when failures were reported: the operator
 * who fixed the key wants to see that it worked; everybody else does not. */
enum nas_zmon_state nas_zmon_event(nas_zmon *m, uint16_t event, uint32_t value, int64_t now_ms) {
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        if (m->logged_failures && m->st.state != NAS_ZMON_OK)
            nas_info("%s %s admitted %s after %d failed handshake(s)", m->what, m->endpoint,
                     m->self, m->st.failures);
        m->st.state = NAS_ZMON_OK;
        m->st.failures = 0;
        m->st.successes++;
        m->logged = 0;
        return m->st.state;
    }
    if (!(event & ZMON_EVENTS)) return m->st.state; /* not a handshake event */
    enum nas_zmon_state prev = m->st.state;
    enum nas_zmon_state s = describe(m, event, value);
    m->st.state = s;
    m->st.failures++;
    m->st.total_failures++;
    /* One dropped handshake is also what a master that restarts or
     * closes at the wrong moment looks like; a wrong server key drops
     * every one (libzmq retries in 100 ms), so wait for the second. */
    if (!nas_zmon_failing(m)) {
        nas_debug("%s (once so far)", m->st.message);
        return s;
    }
    if (!m->logged || s != prev) {
        nas_error("%s", m->st.message);
        m->logged = 1;
        m->logged_failures = 1;
        m->logged_at = now_ms;
        m->since_logged = 0;
    } else if (now_ms - m->logged_at >= m->repeat_ms) {
        nas_error("%s (%d more failed handshake(s) since the last report)", m->st.message,
                  m->since_logged + 1);
        m->logged_at = now_ms;
        m->since_logged = 0;
    } else {
        m->since_logged++;
    }
    return s;
}

/* One event is two frames: 2 bytes of event id and 4 of value, then the
 * endpoint (which we know already). */
static int read_event(void *pair, uint16_t *event, uint32_t *value) {
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, pair, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f);
        return -1;
    }
    int ok = zmq_msg_size(&f) >= 6;
    if (ok) {
        const uint8_t *d = zmq_msg_data(&f);
        memcpy(event, d, 2);
        memcpy(value, d + 2, 4);
    }
    int more = zmq_msg_more(&f);
    zmq_msg_close(&f);
    while (more) {
        zmq_msg_init(&f);
        more = zmq_msg_recv(&f, pair, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&f);
        zmq_msg_close(&f);
    }
    return ok ? 0 : 1;
}

/* Bounded, like every drain in the worker: a storm of events cannot keep
 * the caller from its other sockets. */
enum nas_zmon_state nas_zmon_poll(nas_zmon *m, int64_t now_ms) {
    for (int n = 0; m->pair && n < 100; n++) {
        uint16_t ev = 0;
        uint32_t val = 0;
        int rc = read_event(m->pair, &ev, &val);
        if (rc < 0) break;
        if (rc == 0) nas_zmon_event(m, ev, val, now_ms);
    }
    return m->st.state;
}
