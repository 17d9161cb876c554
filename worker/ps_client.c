/*
 * ps_client.c - pull and push over the bulk DEALER (worker/ps_client.h).
 *
 * One request at a time: send, then poll for the answer with the call's
 * timeout, dropping answers whose sequence number belongs to an earlier
 * call that gave up.  The received frame is verified by
 * nas_wire_weights_recv (manifest, lengths, checksums) before this file
 * looks at it; here only the architecture is checked against the request.
 *
 * A push lends the net's parameter block to ZeroMQ (zmq_msg_init_data):
 * no copy on the sending side.  The loan ends when ZeroMQ's I/O thread
 * calls block_released(); a push returns only after that, and on any
 * failure it closes the socket (linger 0 drops what is queued) and waits
 * for the release before it opens a new one, so the block is never
 * written while ZeroMQ may still read it.
 */
#include "worker/ps_client.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/morph.h"
#include "common/wire_weights.h"
#include "common/zmon.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define NAS_PS_DEFAULT_TIMEOUT_MS 30000
#define NAS_PS_ENDPOINT_MAX       256
/* After a failed push: how often to say that ZeroMQ still holds the block. */
#define NAS_PS_RELEASE_WARN_MS 5000

struct nas_ps_client {
    void *sock;
    void *zctx; /* to open a new socket after a failed push */
    int curve;  /* 1: keys and server_key go on every socket opened */
    nas_keypair keys;
    char server_key[NAS_KEY_Z85_LEN + 1];
    nas_zmon *mon; /* handshake diagnostics: a refused key fails a call at once */
    uint64_t seq;
    int timeout_ms;
    char endpoint[NAS_PS_ENDPOINT_MAX]; /* connected to; "" = not yet */
    int redial; /* 1: a handshake failed; libzmq gave the connection up, so connect anew */
    /* An endpoint announced by another thread (the agent), applied by the
     * thread that uses the socket at its next call. */
    pthread_mutex_t mu;
    char announced[NAS_PS_ENDPOINT_MAX];
    /* The parameter block lent to ZeroMQ by the push in progress: set by
     * the task thread, cleared by ZeroMQ's free callback (any thread). */
    pthread_mutex_t rel_mu;
    pthread_cond_t rel_cv; /* CLOCK_MONOTONIC */
    int lent;
    uint64_t releases; /* loans ended, for nas_ps_client_block_lent's tests */
};

struct nas_ps_weights {
    nas_wire_weights_packet pkt;
    nas_safetensors_tensor *tensors;
};

/* Move the socket to `endpoint`: leaving the old one first, so a master
 * that moved its weight store is not asked twice. */
static int connect_to(nas_ps_client *c, const char *endpoint, char *err) {
    if (c->endpoint[0]) zmq_disconnect(c->sock, c->endpoint);
    c->endpoint[0] = 0;
    /* Re-attached per endpoint so that its messages name the right one;
     * without a monitor a refusal is only slower to report (timeout). */
    char merr[NAS_ERR_LEN];
    if (c->mon && nas_zmon_attach(c->mon, c->sock, endpoint, merr) < 0)
        nas_warn("ps client: no handshake diagnostics: %s", merr);
    if (zmq_connect(c->sock, endpoint) != 0)
        return nas_set_err(err, NAS_EIO, "ps client: connect %s: %s", endpoint,
                           zmq_strerror(zmq_errno()));
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    return NAS_OK;
}

/* A DEALER with the bulk socket's options, and the keys before any
 * connect: CurveZMQ is negotiated in the handshake, so a master that
 * requires it never sees a plaintext frame. */
static int open_socket(nas_ps_client *c, char *err) {
    c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    if (!c->sock)
        return nas_set_err(err, NAS_EIO, "ps client: zmq_socket: %s", zmq_strerror(zmq_errno()));
    int rc = nas_wire_socket_setup(c->sock, err);
    if (rc == NAS_OK && c->curve) rc = nas_keys_curve_client(c->sock, &c->keys, c->server_key, err);
    if (rc < 0) {
        zmq_close(c->sock);
        c->sock = NULL;
    }
    return rc;
}

static int create(nas_ps_client **out, void *zctx, const char *endpoint, int timeout_ms,
                  const nas_keypair *keys, const char *server_key, char *err) {
    if (!zctx) return nas_set_err(err, NAS_EINVAL, "ps client: a ZeroMQ context is required");
    if (endpoint && strlen(endpoint) >= NAS_PS_ENDPOINT_MAX)
        return nas_set_err(err, NAS_EINVAL, "ps client: endpoint '%.40s...' is too long", endpoint);
    if (server_key && strlen(server_key) > NAS_KEY_Z85_LEN)
        return nas_set_err(err, NAS_EINVAL, "ps client: the master's key is longer than %d",
                           NAS_KEY_Z85_LEN);
    nas_ps_client *c = nas_calloc(1, sizeof *c);
    if (!c) return nas_set_err(err, NAS_ENOMEM, "ps client: out of memory");
    int rc = NAS_OK;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->rel_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->rel_cv, &ca);
    pthread_condattr_destroy(&ca);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : NAS_PS_DEFAULT_TIMEOUT_MS;
    c->seq = 1;
    c->zctx = zctx;
    if (keys) {
        c->curve = 1;
        c->keys = *keys;
        snprintf(c->server_key, sizeof c->server_key, "%s", server_key);
    }
    if ((rc = open_socket(c, err)) < 0) goto fail;
    nas_zmon_config mc = {.what = "weight store",
                          .curve = keys != NULL,
                          .public_z85 = keys ? keys->public_z85 : NULL,
                          .key_option = "--master-key"};
    if ((rc = nas_zmon_create(&c->mon, zctx, &mc, err)) < 0) goto fail;
    /* No endpoint yet: the master announces one (nas_ps_client_set_endpoint). */
    if (endpoint && endpoint[0] && (rc = connect_to(c, endpoint, err)) < 0) goto fail;
    *out = c;
    return NAS_OK;
fail:
    nas_ps_client_destroy(&c);
    return rc;
}

/* Plaintext: for loopback and tests (the agent warns about non-loopback
 * plaintext already). */
int nas_ps_client_create(nas_ps_client **out, void *zctx, const char *endpoint, int timeout_ms,
                         char *err) {
    return create(out, zctx, endpoint, timeout_ms, NULL, NULL, err);
}

int nas_ps_client_create_curve(nas_ps_client **out, void *zctx, const char *endpoint,
                               int timeout_ms, const nas_keypair *keys, const char *server_key,
                               char *err) {
    if (!keys || !server_key)
        return nas_set_err(err, NAS_EINVAL,
                           "ps client: CurveZMQ needs a key pair and the "
                           "master's public key");
    return create(out, zctx, endpoint, timeout_ms, keys, server_key, err);
}

/* The socket has linger 0 (nas_wire_socket_setup): an unsent push never
 * holds up the worker's exit. */
void nas_ps_client_destroy(nas_ps_client **cp) {
    if (!cp || !*cp) return;
    nas_ps_client *c = *cp;
    /* A push never returns with its block lent, so nothing of ZeroMQ's can
     * call back into c after this. */
    NAS_ASSERT(!c->lent);
    nas_zmon_destroy(&c->mon); /* detaches: before the socket closes */
    if (c->sock) zmq_close(c->sock);
    memset(&c->keys, 0, sizeof c->keys); /* the secret key */
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->rel_mu);
    pthread_cond_destroy(&c->rel_cv);
    nas_free(c);
    *cp = NULL;
}

/* Any thread: only the string is stored here; the socket is the task
 * thread's and is moved there (ready()). */
int nas_ps_client_set_endpoint(nas_ps_client *c, const char *endpoint, char *err) {
    if (!endpoint || !endpoint[0] || strlen(endpoint) >= NAS_PS_ENDPOINT_MAX)
        return nas_set_err(err, NAS_EINVAL, "ps client: endpoint '%.60s' is empty or too long",
                           endpoint ? endpoint : "");
    pthread_mutex_lock(&c->mu);
    snprintf(c->announced, sizeof c->announced, "%s", endpoint);
    pthread_mutex_unlock(&c->mu);
    return NAS_OK;
}

/* Before every request: follow an announced endpoint, and refuse when
 * none is known yet (the child then trains fresh). */
static int ready(nas_ps_client *c, char *err) {
    char ep[NAS_PS_ENDPOINT_MAX];
    if (!c->sock) {
        /* A failed push closed it and could not open another: try again. */
        int rc = open_socket(c, err);
        if (rc < 0) return rc;
        c->redial = 1; /* and connect it to the endpoint kept by reclaim() */
    }
    pthread_mutex_lock(&c->mu);
    snprintf(ep, sizeof ep, "%s", c->announced);
    pthread_mutex_unlock(&c->mu);
    if (ep[0] && strcmp(ep, c->endpoint) != 0) {
        int rc = connect_to(c, ep, err);
        if (rc < 0) return rc;
        nas_info("ps client: weight store at %s", ep);
    } else if (c->redial && c->endpoint[0]) {
        snprintf(ep, sizeof ep, "%s", c->endpoint);
        int rc = connect_to(c, ep, err);
        if (rc < 0) return rc;
    }
    c->redial = 0;
    if (!c->endpoint[0])
        return nas_set_err(err, NAS_ESTATE,
                           "ps client: no weight store endpoint yet (the master announces it "
                           "when the worker registers; older masters need --weights)");
    return NAS_OK;
}

/* host part of "tcp://HOST:PORT" (brackets kept for IPv6); 0 if the
 * endpoint is not tcp:// with a port. */
static int tcp_host(const char *ep, const char **host, size_t *len, const char **port) {
    if (strncmp(ep, "tcp://", 6) != 0) return 0;
    const char *h = ep + 6;
    const char *colon = strrchr(h, ':');
    if (!colon || colon == h) return 0;
    *host = h;
    *len = (size_t)(colon - h);
    *port = colon + 1;
    return 1;
}

int nas_ps_endpoint_resolve(const char *announced, const char *master, char *out, size_t cap,
                            char *err) {
    const char *h = NULL, *port = NULL, *mh = NULL, *mport = NULL;
    size_t hl = 0, mhl = 0;
    if (!announced || !announced[0])
        return nas_set_err(err, NAS_EINVAL, "weights endpoint: none announced");
    int wild = tcp_host(announced, &h, &hl, &port) &&
               ((hl == 1 && h[0] == '*') || (hl == 7 && strncmp(h, "0.0.0.0", 7) == 0) ||
                (hl == 4 && strncmp(h, "[::]", 4) == 0) || (hl == 2 && strncmp(h, "::", 2) == 0));
    int n;
    if (!wild) {
        n = snprintf(out, cap, "%s", announced);
    } else {
        /* The master listens everywhere: use the host this worker reached
         * it on, which is known to route to it. */
        if (!master || !tcp_host(master, &mh, &mhl, &mport))
            return nas_set_err(err, NAS_EINVAL,
                               "weights endpoint %s: wildcard host, and the master endpoint '%s' "
                               "names no tcp host to use instead (use --weights)",
                               announced, master ? master : "");
        n = snprintf(out, cap, "tcp://%.*s:%s", (int)mhl, mh, port);
    }
    if (n < 0 || (size_t)n >= cap)
        return nas_set_err(err, NAS_ERANGE, "weights endpoint %s: too long", announced);
    return NAS_OK;
}

/* Wait for the answer to request `seq`: stale answers are dropped, a
 * malformed one is an error naming the problem.
 *
 * `resend`, when given, is the request again (an idempotent pull): it goes
 * out anew after 1 s without an answer, then 2, 4, ... s, within the
 * call's timeout.  A DEALER drops what it had queued or written on a
 * connection that breaks, so a pull sent while the master restarts would
 * otherwise wait out the whole timeout although the new master would
 * answer at once; duplicates are harmless (same seq: the first answer
 * counts, later ones are dropped as stale by the next call). */
#define NAS_PS_RESEND_FIRST_MS 1000
static int await(nas_ps_client *c, uint64_t seq, const nas_wire_weights_msg *resend,
                 nas_wire_weights_packet *pkt, char *err) {
    int64_t now = nas_now_ms();
    int64_t deadline = now + c->timeout_ms;
    int64_t step = NAS_PS_RESEND_FIRST_MS, next_send = now + step;
    for (;;) {
        now = nas_now_ms();
        int64_t left = deadline - now;
        if (left <= 0) break;
        if (resend && now >= next_send) {
            nas_debug("ps client: no answer to request %" PRIu64 " in %" PRId64 " ms: sent again",
                      seq, step);
            int rc = nas_wire_weights_send(c->sock, NULL, 0, resend, NULL, 0, err);
            if (rc < 0) return rc;
            step *= 2;
            next_send = now + step;
        }
        long wait = (long)left;
        if (resend && next_send - now < wait) wait = (long)(next_send - now);
        zmq_pollitem_t it[2] = {{c->sock, 0, ZMQ_POLLIN, 0},
                                {nas_zmon_socket(c->mon), 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(it, it[1].socket ? 2 : 1, wait);
        if (n < 0) {
            if (zmq_errno() == EINTR) continue;
            return nas_set_err(err, NAS_EIO, "ps client: poll: %s", zmq_strerror(zmq_errno()));
        }
        if (n == 0) continue;
        /* A failed handshake will not answer within any timeout: say why
         * now (the child trains fresh) rather than after timeout_ms. */
        if (it[1].revents & ZMQ_POLLIN) nas_zmon_poll(c->mon, nas_now_ms());
        if ((it[1].revents & ZMQ_POLLIN) && nas_zmon_failing(c->mon)) {
            c->redial = 1;
            return nas_set_err(err, NAS_EAUTH, "ps client: %s", nas_zmon_message(c->mon));
        }
        if (!(it[0].revents & ZMQ_POLLIN)) continue;
        int rc = nas_wire_weights_recv(c->sock, 0, 1, pkt, err);
        if (rc == NAS_EAGAIN) continue;
        /* A refused frame may be a stale answer; only a current one counts. */
        if (rc < 0) return rc;
        if (pkt->msg.seq == seq) return NAS_OK;
        /* An Error with seq 0 answers a request whose envelope the peer
         * could not read (a master of another protocol version says so
         * this way); with one request at a time it is this call's. */
        if (pkt->msg.seq == 0 && pkt->msg.type == NAS_MSG_ERROR) return NAS_OK;
        nas_debug("ps client: dropped a stale answer (seq %" PRIu64 ")", pkt->msg.seq);
        nas_wire_weights_packet_fini(pkt);
    }
    return nas_set_err(err, NAS_ETIMEDOUT, "ps client: no answer from %s within %d ms", c->endpoint,
                       c->timeout_ms);
}

/* Send the pull, wait for its answer, and check what the receive could
 * not: that it is a reply (not a refusal), for the architecture asked, and
 * found.  The packet (and its frame) then lives in the returned weights. */
int nas_ps_client_pull(nas_ps_client *c, uint64_t arch, nas_ps_weights **out, char *err) {
    nas_wire_weights_msg req;
    nas_wire_weights_msg_init(&req, NAS_MSG_WEIGHTS_PULL);
    req.seq = ++c->seq;
    req.arch = arch;
    int rc = ready(c, err);
    if (rc < 0) return rc;
    rc = nas_wire_weights_send(c->sock, NULL, 0, &req, NULL, 0, err);
    if (rc < 0) return rc;
    nas_ps_weights *w = nas_calloc(1, sizeof *w);
    if (!w) return nas_set_err(err, NAS_ENOMEM, "ps client: out of memory");
    if ((rc = await(c, req.seq, &req, &w->pkt, err)) < 0) goto fail;
    const nas_wire_weights_msg *m = &w->pkt.msg;
    if (m->type == NAS_MSG_ERROR || m->type == NAS_MSG_WEIGHTS_ACK) {
        rc = nas_set_err(err, NAS_EPROTO,
                         "ps client: the master refused the pull of %016" PRIx64 ": %s (%s)", arch,
                         m->message, nas_err_name(m->code));
        goto fail;
    }
    if (m->type != NAS_MSG_WEIGHTS_REPLY) {
        rc = nas_set_err(err, NAS_EPROTO, "ps client: a pull was answered with type %d", m->type);
        goto fail;
    }
    /* The fourth check of a transfer (paths, shapes and checksums were
     * checked on receipt): the tensors are the architecture we asked for. */
    if (m->arch != arch) {
        rc = nas_set_err(err, NAS_EPROTO, "ps client: asked for %016" PRIx64 ", got %016" PRIx64,
                         arch, m->arch);
        goto fail;
    }
    if (!m->found) {
        rc = nas_set_err(err, NAS_ENOTFOUND, "ps client: the master no longer holds %016" PRIx64,
                         arch);
        goto fail;
    }
    if ((rc = nas_wire_weights_view(&w->pkt, &w->tensors, err)) < 0) goto fail;
    *out = w;
    return NAS_OK;
fail:
    nas_ps_weights_destroy(&w);
    return rc;
}

/* Borrowed views into the received frame. */
const nas_safetensors_tensor *nas_ps_weights_tensors(const nas_ps_weights *w, size_t *n) {
    *n = w->pkt.msg.n;
    return w->tensors;
}

void nas_ps_weights_destroy(nas_ps_weights **wp) {
    if (!wp || !*wp) return;
    nas_wire_weights_packet_fini(&(*wp)->pkt);
    nas_free((*wp)->tensors);
    nas_free(*wp);
    *wp = NULL;
}

// ---- the lent parameter block ---------------------------------------------------------

/* ZeroMQ's free callback for the lent block: called once, by whichever
 * thread drops the message's last reference (the I/O thread once the
 * bytes are in the kernel, the reaper after a close, or this thread when
 * a send fails and the message is closed here). */
static void block_released(void *data, void *hint) {
    (void)data;
    nas_ps_client *c = hint;
    pthread_mutex_lock(&c->rel_mu);
    c->lent = 0;
    c->releases++;
    pthread_cond_broadcast(&c->rel_cv);
    pthread_mutex_unlock(&c->rel_mu);
}

/* Wait until the block is released or wait_ms passed; 1 when released. */
static int wait_release(nas_ps_client *c, int64_t wait_ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->rel_mu);
    int rc = 0;
    while (c->lent && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->rel_cv, &c->rel_mu, &until);
    int released = !c->lent;
    pthread_mutex_unlock(&c->rel_mu);
    return released;
}

/* After a push that failed with its block possibly still queued: close
 * the socket (linger 0: libzmq drops its queued messages, which releases
 * the block), wait for the release however long it takes, then open and
 * connect a new socket.  The wait is unbounded on purpose: returning
 * while ZeroMQ may still read the block would let the caller free or
 * overwrite memory another thread reads; libzmq always drops a closed
 * socket's messages, so the warning below means a libzmq fault. */
static void reclaim(nas_ps_client *c) {
    nas_zmon_detach(c->mon);
    zmq_close(c->sock);
    c->sock = NULL;
    int64_t waited = 0;
    while (!wait_release(c, NAS_PS_RELEASE_WARN_MS)) {
        waited += NAS_PS_RELEASE_WARN_MS;
        nas_warn("ps client: ZeroMQ still holds a pushed parameter block after %" PRId64
                 " ms; waiting, the net must not change before it lets go",
                 waited);
    }
    char err[NAS_ERR_LEN], ep[NAS_PS_ENDPOINT_MAX];
    snprintf(ep, sizeof ep, "%s", c->endpoint);
    c->endpoint[0] = 0;
    if (open_socket(c, err) < 0 || (ep[0] && connect_to(c, ep, err) < 0)) {
        /* Keep the endpoint, so that the next call (ready()) opens a
         * socket if there is none and connects it again. */
        snprintf(c->endpoint, sizeof c->endpoint, "%s", ep);
        c->redial = 1;
        nas_warn("ps client: a new socket after a failed push: %s (retried at the next call)", err);
    }
}

int nas_ps_client_block_lent(const nas_ps_client *c) {
    nas_ps_client *m = (nas_ps_client *)c; /* the mutex, not the state, changes */
    pthread_mutex_lock(&m->rel_mu);
    int lent = m->lent;
    pthread_mutex_unlock(&m->rel_mu);
    return lent;
}

uint64_t nas_ps_client_block_releases(const nas_ps_client *c) {
    nas_ps_client *m = (nas_ps_client *)c;
    pthread_mutex_lock(&m->rel_mu);
    uint64_t n = m->releases;
    pthread_mutex_unlock(&m->rel_mu);
    return n;
}

/* The envelope, then the block as a ZeroMQ message that borrows it.
 * *queued is 1 when the envelope went out: the socket then holds a
 * partial message if the frame did not, and must be reclaimed.  On
 * failure the frame is closed here, which releases the block at once. */
static int send_push(nas_ps_client *c, const nas_wire_weights_msg *m, zmq_msg_t *frame, int *queued,
                     char *err) {
    uint8_t *env = NULL;
    size_t len = 0;
    *queued = 0;
    int rc = nas_wire_weights_encode(m, &env, &len, err);
    if (rc == NAS_OK) {
        if (zmq_send(c->sock, env, len, ZMQ_SNDMORE) < 0) {
            rc = NAS_EIO;
        } else {
            *queued = 1;
            if (zmq_msg_send(frame, c->sock, 0) < 0) rc = NAS_EIO;
        }
        if (rc == NAS_EIO)
            nas_set_err(err, rc, "ps client: send to %s: %s", c->endpoint,
                        zmq_strerror(zmq_errno()));
    }
    if (rc < 0) zmq_msg_close(frame);
    nas_free(env);
    return rc;
}

/* Checksums over the net's parameter block in place (one pass, the
 * client's only one), then the block itself goes to ZeroMQ without a copy.
 * The store verifies the checksums once on receipt. */
int nas_ps_client_push(nas_ps_client *c, uint64_t arch, const nas_net *net, char *err) {
    nas_safetensors_tensor *t = NULL;
    const void *base = NULL;
    uint64_t *sums = NULL;
    int n = ready(c, err);
    if (n < 0) return n;
    n = nas_inherit_collect(net, &t, &base, err);
    if (n < 0) return n;
    int rc = NAS_OK;
    nas_wire_weights_msg m;
    nas_wire_weights_msg_init(&m, NAS_MSG_WEIGHTS_PUSH);
    sums = nas_calloc(n ? (size_t)n : 1, sizeof *sums);
    if (!sums) {
        rc = nas_set_err(err, NAS_ENOMEM, "ps client: checksums of %d tensors", n);
        goto done;
    }
    size_t at = 0;
    for (int i = 0; i < n; i++)
        at += (size_t)nas_safetensors_numel(&t[i]) * sizeof(float);
    if (at == 0) {
        /* Nothing to lend, and a store keeps no empty architecture. */
        rc = nas_set_err(err, NAS_EINVAL, "ps client: the net has no parameters to push");
        goto done;
    }
    at = 0;
    for (int i = 0; i < n; i++) {
        size_t nb = (size_t)nas_safetensors_numel(&t[i]) * sizeof(float);
        /* Tensors lie back to back from base (the manifest checks it). */
        sums[i] = nas_wire_weights_checksum(m.checksum_kind, (const uint8_t *)base + at, nb);
        at += nb;
    }
    m.seq = ++c->seq;
    m.arch = arch;
    if ((rc = nas_wire_weights_manifest(&m, t, (size_t)n, base, sums, err)) < 0) goto done;
    m.type = NAS_MSG_WEIGHTS_PUSH;
    /* The loan starts before ZeroMQ can see the block: its callback may
     * run on the I/O thread as soon as the message is sent. */
    zmq_msg_t frame;
    pthread_mutex_lock(&c->rel_mu);
    c->lent = 1;
    pthread_mutex_unlock(&c->rel_mu);
    if (zmq_msg_init_data(&frame, (void *)base, at, block_released, c) != 0) {
        c->lent = 0; /* ZeroMQ never saw it */
        rc = nas_set_err(err, NAS_ENOMEM, "ps client: a %zu-byte push frame", at);
        goto done;
    }
    int queued = 0;
    if ((rc = send_push(c, &m, &frame, &queued, err)) < 0) {
        if (queued) reclaim(c); /* a partial message must not prefix the next one */
        goto done;
    }
    nas_wire_weights_packet pkt;
    if ((rc = await(c, m.seq, NULL, &pkt, err)) < 0) {
        /* No answer: the block may still be queued or half sent. */
        reclaim(c);
        goto done;
    }
    if (pkt.msg.type != NAS_MSG_WEIGHTS_ACK && pkt.msg.type != NAS_MSG_ERROR)
        rc = nas_set_err(err, NAS_EPROTO, "ps client: a push was answered with type %d",
                         pkt.msg.type);
    else if (pkt.msg.code < 0)
        rc = nas_set_err(err, pkt.msg.code,
                         "ps client: the master refused the push of %016" PRIx64 ": %s", arch,
                         pkt.msg.message);
    nas_wire_weights_packet_fini(&pkt);
    /* Answered, so every byte was sent; the release follows within one
     * turn of the I/O thread.  If it does not, the socket goes. */
    if (!wait_release(c, c->timeout_ms)) reclaim(c);
done:
    NAS_ASSERT(!nas_ps_client_block_lent(c));
    nas_wire_weights_msg_fini(&m);
    nas_free(sums);
    nas_free(t);
    return rc;
}

/* How the parent's tensors go into the child: by path and shape
 * (nas_inherit_apply), or through a chain's morphism rule (nas_morph_apply). */
typedef struct inherit_how {
    const nas_genome *chain; /* NULL: by path and shape */
    int F;
    uint64_t seed;
    float noise;
} inherit_how;

static int apply_parent(const inherit_how *how, nas_net *net, const nas_safetensors_tensor *t,
                        size_t n, nas_inherit_stats *s, char *why) {
    if (how->chain == NULL) return nas_inherit_apply(net, t, n, s, why);
    nas_morph_stats ms;
    int rc = nas_morph_apply(net, how->chain, how->F, t, n, how->seed, how->noise, s, &ms, why);
    if (rc >= 0) {
        char line[160];
        nas_morph_describe(&ms, line, sizeof line);
        nas_info("inherit: %s", line);
    }
    return rc;
}

static int inherit(nas_ps_client *c, uint64_t parent, nas_net *net, uint64_t seed,
                   const inherit_how *how, nas_inherit_stats *st, char *err);

/* Fresh first, then the parent: whatever goes wrong after the first line,
 * the net is a valid fresh initialisation for the task's seed. */
int nas_ps_client_inherit(nas_ps_client *c, uint64_t parent, nas_net *net, uint64_t seed,
                          nas_inherit_stats *st, char *err) {
    inherit_how how = {NULL, 0, 0, 0};
    return inherit(c, parent, net, seed, &how, st, err);
}

int nas_ps_client_inherit_chain(nas_ps_client *c, uint64_t parent, nas_net *net,
                                const nas_genome *child, int F, uint64_t seed, float noise,
                                nas_inherit_stats *st, char *err) {
    inherit_how how = {child, F, seed, noise};
    return inherit(c, parent, net, seed, &how, st, err);
}

static int inherit(nas_ps_client *c, uint64_t parent, nas_net *net, uint64_t seed,
                   const inherit_how *how, nas_inherit_stats *st, char *err) {
    if (st) memset(st, 0, sizeof *st);
    if (nas_net_batch(net) <= 0)
        return nas_set_err(err, NAS_ESTATE, "inherit: the child net is not compiled");
    nas_inherit_init(net, seed);
    nas_ps_weights *w = NULL;
    char why[NAS_ERR_LEN] = "";
    int rc = nas_ps_client_pull(c, parent, &w, why);
    if (rc < 0) {
        nas_info("inherit: parent %016" PRIx64 " unavailable, training from fresh weights: %s",
                 parent, why);
        nas_set_err(err, rc, "%s", why);
        return 0;
    }
    size_t n = 0;
    const nas_safetensors_tensor *t = nas_ps_weights_tensors(w, &n);
    nas_inherit_stats s;
    rc = apply_parent(how, net, t, n, &s, why);
    nas_ps_weights_destroy(&w);
    if (rc < 0) {
        /* A partial application would mix two networks: start over fresh. */
        nas_inherit_init(net, seed);
        nas_warn("inherit: parent %016" PRIx64 " not applied, training from fresh weights: %s",
                 parent, why);
        nas_set_err(err, rc, "%s", why);
        return 0;
    }
    char line[160];
    nas_inherit_describe(&s, line, sizeof line);
    nas_info("inherit: parent %016" PRIx64 ": %s", parent, line);
    if (st) *st = s;
    if (rc == 0) nas_set_err(err, NAS_OK, "parent %016" PRIx64 " shares no tensor", parent);
    return rc;
}
