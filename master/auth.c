/*
 * auth.c - the master's ZAP handler and the loopback rule (see auth.h).
 *
 * The authorized keys are held as a sorted array of 32-byte binary keys,
 * because that is the form ZAP delivers them in: a lookup is one bsearch
 * and never decodes text on the hot path.  The array is replaced as a
 * whole by a reload under a mutex, so a handler thread always sees either
 * the old set or the new one.
 *
 * A ZAP request (RFC 27) is a multipart message of at least six frames:
 * version "1.0", request id, domain, peer address, routing id, mechanism,
 * then the mechanism's credentials (one frame: the client's 32-byte
 * public key for CURVE).  The reply has six frames: version, the same
 * request id, status code ("200", "400", "500"), status text, user id and
 * metadata.  The REP socket requires exactly one reply per request, so a
 * malformed request is still answered (500) rather than dropped.
 */
#include "master/auth.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/keys.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zmq.h>

#define AUTH_USER_MAX   128 /* file stem used as the ZAP User-Id */
#define AUTH_MAX_FRAMES 16  /* more than any valid request has */
#define AUTH_POLL_MS    100 /* thread mode: how soon a stop request is seen */

typedef struct auth_key {
    uint8_t bin[NAS_KEY_BIN_LEN];
    char user[AUTH_USER_MAX];
} auth_key;

struct nas_auth {
    void *sock;         /* REP bound to NAS_AUTH_ENDPOINT */
    char dir[4096];     /* authorized directory */
    char domain[256];   /* ZAP domain we answer for */
    pthread_mutex_t mu; /* guards keys, n_keys and stats */
    auth_key *keys;     /* sorted by bin */
    int n_keys;
    nas_auth_stats stats;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    /* Rejection log throttling (handler side only, no lock needed). */
    uint8_t last_id[NAS_KEY_BIN_LEN + 16];
    size_t last_id_len;
    char last_addr[64];
    long last_repeats;
};

static int key_cmp(const void *a, const void *b) {
    return memcmp(((const auth_key *)a)->bin, ((const auth_key *)b)->bin, NAS_KEY_BIN_LEN);
}

// ----------------------------------------------------------------------------
// The key set

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Read every *.key file of dir into a fresh sorted array. */
static int load_dir(const char *dir, auth_key **out, int *count, char *err) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return nas_set_err(err, errno == ENOENT ? NAS_ENOTFOUND : NAS_EIO,
                           "authorized key directory %s: %s", dir, strerror(errno));
    auth_key *keys = NULL;
    int n = 0, cap = 0, rc = NAS_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.') continue;
        if (ends_with(name, ".key_secret")) {
            nas_warn("auth: %s/%s is a secret key; it does not belong in the authorized "
                     "directory (only public *.key files are read)",
                     dir, name);
            continue;
        }
        /* Only NAME.key counts, so editor backups (w1.key~), notes and
         * disabled keys (w1.key.off) can sit in the directory harmlessly. */
        if (!ends_with(name, ".key") || strlen(name) == 4) continue;
        if (n == NAS_AUTH_MAX_KEYS) {
            rc = nas_set_err(err, NAS_ERANGE, "%s: more than %d keys", dir, NAS_AUTH_MAX_KEYS);
            goto fail;
        }
        if (n == cap) {
            int ncap = cap == 0 ? 16 : cap * 2;
            auth_key *nk = nas_realloc(keys, (size_t)ncap * sizeof *nk);
            if (nk == NULL) {
                rc = nas_set_err(err, NAS_ENOMEM, "%s: out of memory", dir);
                goto fail;
            }
            keys = nk;
            cap = ncap;
        }
        char path[4096 + 256], z85[NAS_KEY_Z85_LEN + 1];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = nas_keys_load_public(path, z85, err);
        if (rc != NAS_OK) goto fail;
        auth_key *k = &keys[n];
        memset(k, 0, sizeof *k);
        if (zmq_z85_decode(k->bin, z85) == NULL) {
            rc = nas_set_err(err, NAS_EFORMAT, "%s: Z85 decode failed", path);
            goto fail;
        }
        size_t stem = strlen(name) - 4;
        if (stem >= AUTH_USER_MAX) stem = AUTH_USER_MAX - 1;
        memcpy(k->user, name, stem);
        k->user[stem] = '\0';
        n++;
    }
    closedir(d);
    d = NULL;
    if (n > 1) qsort(keys, (size_t)n, sizeof *keys, key_cmp);
    for (int i = 1; i < n; i++)
        if (key_cmp(&keys[i - 1], &keys[i]) == 0)
            nas_warn("auth: %s and %s in %s hold the same key", keys[i - 1].user, keys[i].user,
                     dir);
    *out = keys;
    *count = n;
    return NAS_OK;
fail:
    if (d != NULL) closedir(d);
    nas_free(keys);
    return rc;
}

int nas_auth_reload(nas_auth *a, char *err) {
    NAS_ASSERT(a != NULL);
    auth_key *keys = NULL;
    int n = 0;
    int rc = load_dir(a->dir, &keys, &n, err);
    if (rc != NAS_OK) return rc;
    pthread_mutex_lock(&a->mu);
    auth_key *old = a->keys;
    a->keys = keys;
    a->n_keys = n;
    pthread_mutex_unlock(&a->mu);
    nas_free(old);
    if (n == 0)
        nas_warn("auth: no keys in %s: no worker can connect until keys are added and reloaded",
                 a->dir);
    else
        nas_info("auth: %d authorized key%s from %s", n, n == 1 ? "" : "s", a->dir);
    return n;
}

int nas_auth_key_count(nas_auth *a) {
    pthread_mutex_lock(&a->mu);
    int n = a->n_keys;
    pthread_mutex_unlock(&a->mu);
    return n;
}

// ----------------------------------------------------------------------------
// Lifecycle

int nas_auth_create(nas_auth **out, void *ctx, const char *authorized_dir, const char *domain,
                    char *err) {
    NAS_ASSERT(out != NULL && ctx != NULL);
    if (authorized_dir == NULL || authorized_dir[0] == '\0')
        return nas_set_err(err, NAS_EINVAL, "no authorized key directory given");
    if (domain == NULL) domain = "nasd";
    if (strlen(authorized_dir) >= sizeof(((nas_auth *)0)->dir) ||
        strlen(domain) >= sizeof(((nas_auth *)0)->domain))
        return nas_set_err(err, NAS_EINVAL, "authorized directory or ZAP domain too long");
    nas_auth *a = nas_calloc(1, sizeof *a);
    if (a == NULL) return nas_set_err(err, NAS_ENOMEM, "auth: out of memory");
    int rc;
    snprintf(a->dir, sizeof a->dir, "%s", authorized_dir);
    snprintf(a->domain, sizeof a->domain, "%s", domain);
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        nas_free(a);
        return nas_set_err(err, NAS_ENOMEM, "auth: mutex");
    }
    /* Keys first, socket second: if the directory is unusable the caller
     * learns it before libzmq can route a single handshake to us. */
    rc = nas_auth_reload(a, err);
    if (rc < 0) goto fail;
    a->sock = zmq_socket(ctx, ZMQ_REP);
    if (a->sock == NULL) {
        rc = nas_set_err(err, NAS_EIO, "ZAP socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    /* Replies to handshakes that died meanwhile must not hold up close. */
    int zero = 0;
    zmq_setsockopt(a->sock, ZMQ_LINGER, &zero, sizeof zero);
    /* A second handler in one context gets EADDRINUSE: two policies for
     * the same sockets would be a configuration bug worth refusing. */
    if (zmq_bind(a->sock, NAS_AUTH_ENDPOINT) != 0) {
        int e = zmq_errno();
        rc = nas_set_err(err, e == EADDRINUSE ? NAS_EEXIST : NAS_EIO, "bind %s: %s",
                         NAS_AUTH_ENDPOINT, zmq_strerror(e));
        goto fail;
    }
    *out = a;
    return NAS_OK;
fail:
    if (a->sock != NULL) zmq_close(a->sock);
    nas_free(a->keys);
    pthread_mutex_destroy(&a->mu);
    nas_free(a);
    return rc;
}

void nas_auth_destroy(nas_auth **ap) {
    if (ap == NULL || *ap == NULL) return;
    nas_auth *a = *ap;
    if (a->thread_started) {
        atomic_store(&a->stop, 1);
        pthread_join(a->thread, NULL);
    }
    zmq_close(a->sock);
    nas_free(a->keys);
    pthread_mutex_destroy(&a->mu);
    nas_free(a);
    *ap = NULL;
}

void *nas_auth_socket(nas_auth *a) {
    return a->sock;
}

void nas_auth_stats_get(nas_auth *a, nas_auth_stats *out) {
    pthread_mutex_lock(&a->mu);
    *out = a->stats;
    pthread_mutex_unlock(&a->mu);
}

// ----------------------------------------------------------------------------
// Answering requests

/* Copy a frame into a printable, NUL-terminated string for logs. */
static void frame_str(zmq_msg_t *m, char *buf, size_t cap) {
    size_t n = zmq_msg_size(m);
    const unsigned char *p = zmq_msg_data(m);
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    buf[n] = '\0';
}

static int frame_is(zmq_msg_t *m, const char *s) {
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

static int send_reply(void *sock, zmq_msg_t *req_id, const char *code, const char *text,
                      const char *user) {
    const char *parts[6] = {"1.0", NULL, code, text, user, ""};
    for (int i = 0; i < 6; i++) {
        int flags = i < 5 ? ZMQ_SNDMORE : 0;
        int rc;
        if (i == 1)
            rc = zmq_send(sock, req_id != NULL ? zmq_msg_data(req_id) : "",
                          req_id != NULL ? zmq_msg_size(req_id) : 0, flags);
        else
            rc = zmq_send(sock, parts[i], strlen(parts[i]), flags);
        if (rc < 0) return NAS_EIO;
    }
    return NAS_OK;
}

/* Log a rejection, throttled per (credential, address): the 1st, 2nd,
 * 4th, 8th, ... consecutive identical attempt is logged. */
static void log_reject(nas_auth *a, const void *id, size_t id_len, const char *fp, const char *addr,
                       const char *why) {
    if (id_len > sizeof a->last_id) id_len = sizeof a->last_id;
    if (id_len == a->last_id_len && memcmp(id, a->last_id, id_len) == 0 &&
        strcmp(addr, a->last_addr) == 0) {
        a->last_repeats++;
    } else {
        memcpy(a->last_id, id, id_len);
        a->last_id_len = id_len;
        snprintf(a->last_addr, sizeof a->last_addr, "%s", addr);
        a->last_repeats = 1;
    }
    /* Powers of two: a retry loop costs O(log n) lines, and the counts in
     * the log still say how long it has been going on. */
    long r = a->last_repeats;
    if ((r & (r - 1)) != 0) return;
    if (r == 1)
        nas_warn("auth: rejected %s from %s: %s", fp, addr, why);
    else
        nas_warn("auth: rejected %s from %s: %s (%ld attempts so far)", fp, addr, why, r);
}

/* Decide one well-formed request: "200" with user filled, or "400". */
static const char *decide(nas_auth *a, zmq_msg_t *f, int nf, char user[AUTH_USER_MAX],
                          const char **text) {
    char addr[64], mech[32], fp[NAS_KEY_FP_LEN];
    frame_str(&f[3], addr, sizeof addr);
    frame_str(&f[5], mech, sizeof mech);
    /* The domain is checked first: a socket of another domain in the same
     * context (a future status socket, say) must not inherit this policy. */
    if (!frame_is(&f[2], a->domain)) {
        *text = "wrong ZAP domain";
        log_reject(a, zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), mech, addr,
                   "ZAP domain is not the master's");
        return "400";
    }
    /* NULL and PLAIN carry no proof of a key; PLAIN would even send a
     * password in clear text.  Only CURVE is ever admitted. */
    if (!frame_is(&f[5], "CURVE")) {
        *text = "CURVE required";
        log_reject(a, zmq_msg_data(&f[5]), zmq_msg_size(&f[5]), mech, addr,
                   "mechanism is not CURVE");
        return "400";
    }
    if (nf != 7 || zmq_msg_size(&f[6]) != NAS_KEY_BIN_LEN) {
        *text = "bad CURVE credentials";
        log_reject(a, "", 0, "CURVE", addr, "malformed CURVE credentials");
        return "400";
    }
    auth_key probe;
    memcpy(probe.bin, zmq_msg_data(&f[6]), NAS_KEY_BIN_LEN);
    int found = 0;
    pthread_mutex_lock(&a->mu);
    const auth_key *k = a->n_keys > 0
                            ? bsearch(&probe, a->keys, (size_t)a->n_keys, sizeof *a->keys, key_cmp)
                            : NULL;
    if (k != NULL) {
        /* Copied under the lock: a reload may free the array right after. */
        snprintf(user, AUTH_USER_MAX, "%s", k->user);
        found = 1;
    }
    pthread_mutex_unlock(&a->mu);
    if (found) {
        *text = "OK";
        return "200";
    }
    nas_keys_fingerprint_bin(probe.bin, fp);
    *text = "unknown key";
    log_reject(a, probe.bin, NAS_KEY_BIN_LEN, fp, addr, "key not in the authorized directory");
    return "400";
}

/* Receive and answer one request.  Returns 1 when one was answered, 0
 * when none was waiting, NAS_EIO on a socket error. */
static int handle_one(nas_auth *a) {
    zmq_msg_t f[AUTH_MAX_FRAMES];
    int nf = 0, extra = 0, rc = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        /* Only the first frame may be absent: ZeroMQ delivers a multipart
         * message whole or not at all, so the later frames never block. */
        if (zmq_msg_recv(&m, a->sock, nf == 0 && extra == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&m);
            if (nf == 0 && extra == 0 && e == EAGAIN) return 0;
            rc = NAS_EIO;
            goto done;
        }
        int more = zmq_msg_more(&m);
        if (nf < AUTH_MAX_FRAMES) {
            f[nf++] = m;
        } else {
            extra++; /* consumed and dropped; the request is malformed */
            zmq_msg_close(&m);
        }
        if (!more) break;
    }
    /* RFC 27 says a handler that cannot parse a request answers 500; the
     * peer's handshake then fails, which is the safe outcome. */
    const char *code, *text;
    char user[AUTH_USER_MAX] = "";
    if (nf < 6 || extra > 0 || !frame_is(&f[0], "1.0")) {
        code = "500";
        text = "malformed ZAP request";
        pthread_mutex_lock(&a->mu);
        a->stats.malformed++;
        pthread_mutex_unlock(&a->mu);
        nas_warn("auth: malformed ZAP request (%d frames)", nf + extra);
    } else {
        code = decide(a, f, nf, user, &text);
        pthread_mutex_lock(&a->mu);
        if (code[0] == '2')
            a->stats.accepted++;
        else
            a->stats.rejected++;
        pthread_mutex_unlock(&a->mu);
    }
    rc = send_reply(a->sock, nf > 1 ? &f[1] : NULL, code, text, user) == NAS_OK ? 1 : NAS_EIO;
done:
    for (int i = 0; i < nf; i++)
        zmq_msg_close(&f[i]);
    return rc;
}

int nas_auth_handle(nas_auth *a) {
    NAS_ASSERT(a != NULL);
    int n = 0;
    for (;;) {
        int rc = handle_one(a);
        if (rc < 0) return rc;
        if (rc == 0) return n;
        n++;
    }
}

/* Thread mode.  The socket was created by the thread that called create;
 * handing it to this thread is allowed because pthread_create is a full
 * memory barrier and nobody else touches it until destroy joins us.  The
 * poll timeout bounds how long destroy waits for the stop flag. */
static void *auth_thread(void *arg) {
    nas_auth *a = arg;
    while (!atomic_load(&a->stop)) {
        zmq_pollitem_t item = {.socket = a->sock, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&item, 1, AUTH_POLL_MS);
        if (rc < 0) {
            if (zmq_errno() == EINTR) continue;
            break; /* ETERM: the context is going away */
        }
        if (rc > 0 && nas_auth_handle(a) < 0) {
            nas_error("auth: ZAP socket failed: %s", zmq_strerror(zmq_errno()));
            break;
        }
    }
    return NULL;
}

int nas_auth_start(nas_auth *a, char *err) {
    NAS_ASSERT(a != NULL);
    if (a->thread_started) return nas_set_err(err, NAS_ESTATE, "auth thread already running");
    atomic_store(&a->stop, 0);
    if (pthread_create(&a->thread, NULL, auth_thread, a) != 0)
        return nas_set_err(err, NAS_EIO, "auth thread: %s", strerror(errno));
    a->thread_started = 1;
    return NAS_OK;
}

// ----------------------------------------------------------------------------
// The loopback rule

/* 1 if s[0..n) is a dotted IPv4 address whose first octet is 127. */
static int is_ipv4_loopback(const char *s, size_t n) {
    int octets[4], k = 0;
    size_t i = 0;
    while (k < 4) {
        size_t start = i;
        int v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            v = v * 10 + (s[i++] - '0');
        if (i == start || v > 255) return 0;
        octets[k++] = v;
        if (k < 4) {
            if (i >= n || s[i] != '.') return 0;
            i++;
        }
    }
    return i == n && octets[0] == 127;
}

/* Parsing is deliberately strict and answers "not local" whenever in
 * doubt: a false "local" would let the master listen on the network
 * without keys, a false "not local" only asks the operator for a flag. */
int nas_auth_is_loopback(const char *endpoint) {
    if (endpoint == NULL) return 0;
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0) return 1;
    if (strncmp(endpoint, "tcp://", 6) != 0) return 0;
    const char *rest = endpoint + 6;
    /* "src;dst" names a source address (connect only): not a plain bind. */
    if (strchr(rest, ';') != NULL) return 0;
    const char *host, *host_end, *port;
    if (rest[0] == '[') {
        host = rest + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL || host_end[1] != ':') return 0;
        port = host_end + 2;
    } else {
        host = rest;
        host_end = strrchr(rest, ':');
        if (host_end == NULL) return 0;
        port = host_end + 1;
    }
    if (port[0] == '\0') return 0;
    size_t n = (size_t)(host_end - host);
    if (n == 9 && strncasecmp(host, "localhost", 9) == 0) return 1;
    if (rest[0] == '[') return n == 3 && memcmp(host, "::1", 3) == 0;
    return is_ipv4_loopback(host, n);
}

int nas_auth_check_bind(const char *endpoint, int have_keys, int insecure, char *err) {
    if (endpoint == NULL) return nas_set_err(err, NAS_EINVAL, "no endpoint to bind");
    if (have_keys || nas_auth_is_loopback(endpoint)) return NAS_OK;
    if (insecure) {
        nas_warn("binding %s without CURVE keys (--insecure): anyone who can reach it can take "
                 "tasks, push results and read status",
                 endpoint);
        return NAS_OK;
    }
    return nas_set_err(err, NAS_EAUTH,
                       "refusing to bind %s without CURVE keys: it is reachable from other "
                       "machines; give the master a keypair and an authorized directory "
                       "(docs/SECURITY.md), bind a loopback address, or pass --insecure",
                       endpoint);
}
