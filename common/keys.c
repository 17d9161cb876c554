/*
 * keys.c - CurveZMQ keypairs in files (see keys.h for the file format and
 * the invariants).
 *
 * The one subtle part is writing a secret key safely.  Both files are
 * first written to temporary names made by mkostemp(), which creates them
 * with O_EXCL and mode 0600, so the secret bytes are never in a file that
 * anyone else could open.  The public temporary file is then widened to
 * 0644 with fchmod (which, unlike open's mode, ignores the umask, so the
 * result does not depend on the caller's environment).  The finished
 * files are put in place with link() when overwriting is not allowed
 * (link fails with EEXIST atomically, so two concurrent keygens cannot
 * clobber each other) or rename() when it is.
 */
#include "common/keys.h"

#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* Key files are a few lines; anything bigger is not a key file, and the
 * cap keeps a mistaken path (a data set, /dev/zero) from being read. */
#define KEYS_FILE_MAX 4096

static const char z85_alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

// ----------------------------------------------------------------------------
// Z85 text

int nas_keys_check_z85(const char *s, size_t len, char *err) {
    if (s == NULL) return nas_set_err(err, NAS_EINVAL, "key: NULL");
    if (len != NAS_KEY_Z85_LEN)
        return nas_set_err(err, NAS_EFORMAT,
                           "key has %zu characters, a Z85 CURVE key has exactly %d", len,
                           NAS_KEY_Z85_LEN);
    for (size_t g = 0; g < len; g += 5) {
        uint64_t value = 0;
        for (size_t i = g; i < g + 5; i++) {
            const char *p = s[i] != '\0' ? strchr(z85_alphabet, s[i]) : NULL;
            if (p == NULL)
                return nas_set_err(err, NAS_EFORMAT,
                                   "key character %zu (0x%02x) is not in the Z85 alphabet", i + 1,
                                   (unsigned char)s[i]);
            value = value * 85 + (uint64_t)(p - z85_alphabet);
        }
        /* 85^5 > 2^32: five valid characters can still spell a value that
         * is no 4-byte group, which zmq_z85_decode would silently wrap. */
        if (value > 0xffffffffu)
            return nas_set_err(err, NAS_EFORMAT,
                               "key characters %zu-%zu do not encode a 32-bit group", g + 1, g + 5);
    }
    return NAS_OK;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trim [*b, *e) of blanks in place. */
static void trim(const char **b, const char **e) {
    while (*b < *e && is_space(**b))
        (*b)++;
    while (*e > *b && is_space((*e)[-1]))
        (*e)--;
}

/* 1 if [b, e) looks like `name = ...` with a lower-case name (czmq's
 * form), as opposed to a damaged key that happens to contain '='. */
static int is_field_line(const char *b, const char *e) {
    const char *p = b;
    while (p < e && ((*p >= 'a' && *p <= 'z') || *p == '-' || *p == '_'))
        p++;
    if (p == b) return 0;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    return p < e && *p == '=';
}

/* One `name = "value"` line of a czmq certificate.  Returns 1 and the
 * value's bounds when the line names `field`, 0 for another field, or
 * NAS_EFORMAT for a line with the field but no quoted value. */
static int parse_field(const char *b, const char *e, const char *field, const char **vb,
                       const char **ve) {
    const char *eq = memchr(b, '=', (size_t)(e - b));
    const char *kb = b, *ke = eq;
    trim(&kb, &ke);
    size_t flen = strlen(field);
    if ((size_t)(ke - kb) != flen || memcmp(kb, field, flen) != 0) return 0;
    const char *v = eq + 1, *w = e;
    trim(&v, &w);
    if (w - v < 2 || *v != '"' || w[-1] != '"') return NAS_EFORMAT;
    *vb = v + 1;
    *ve = w - 1;
    return 1;
}

int nas_keys_parse(const char *text, size_t len, const char *what, const char *name,
                   char out[NAS_KEY_Z85_LEN + 1], char *err) {
    NAS_ASSERT(what != NULL && out != NULL);
    if (name == NULL) name = "<key>";
    if (text == NULL && len > 0) return nas_set_err(err, NAS_EINVAL, "%s: NULL text", name);
    char field[32];
    snprintf(field, sizeof field, "%s-key", what);
    /* A secret key where a public one is expected means the secret has
     * already been copied somewhere it should not be (the authorized
     * directory, a worker's config): refuse loudly instead of using it. */
    if (strcmp(what, "public") == 0 && text != NULL &&
        (memmem(text, len, "CURVE secret key", 16) != NULL ||
         memmem(text, len, "secret-key", 10) != NULL))
        return nas_set_err(err, NAS_EFORMAT,
                           "%s holds a secret key; only the public NAME.key file may be "
                           "copied, and this secret should be replaced",
                           name);
    const char *key_b = NULL, *key_e = NULL;
    int key_line = 0, line = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *b = p, *e = nl != NULL ? nl : end;
        p = nl != NULL ? nl + 1 : end;
        line++;
        trim(&b, &e);
        if (b == e) continue;
        if (memchr(b, '\0', (size_t)(e - b)) != NULL)
            return nas_set_err(err, NAS_EFORMAT, "%s:%d: NUL byte in a key file", name, line);
        const char *vb = NULL, *ve = NULL;
        /* '#' and '=' are Z85 characters too, so a line that is exactly a
         * key is recognised first; comments always contain a space. */
        int bare = (e - b) == NAS_KEY_Z85_LEN && nas_keys_check_z85(b, NAS_KEY_Z85_LEN, NULL) == 0;
        if (bare) {
            vb = b;
            ve = e;
        } else if (*b == '#') {
            continue;
        } else if (is_field_line(b, e)) {
            /* czmq form; other fields (metadata, the other key) are skipped. */
            int rc = parse_field(b, e, field, &vb, &ve);
            if (rc < 0)
                return nas_set_err(err, NAS_EFORMAT, "%s:%d: %s needs a quoted value", name, line,
                                   field);
            if (rc == 0) continue;
        } else if ((e - b == 8 && memcmp(b, "metadata", 8) == 0) ||
                   (e - b == 5 && memcmp(b, "curve", 5) == 0)) {
            continue; /* czmq section headers */
        } else {
            vb = b;
            ve = e;
        }
        if (key_b != NULL)
            return nas_set_err(err, NAS_EFORMAT, "%s:%d: a second key (the first is on line %d)",
                               name, line, key_line);
        key_b = vb;
        key_e = ve;
        key_line = line;
    }
    if (key_b == NULL)
        return nas_set_err(err, NAS_EFORMAT, "%s: no %s key in the file", name, what);
    char detail[NAS_ERR_LEN];
    if (nas_keys_check_z85(key_b, (size_t)(key_e - key_b), detail) != NAS_OK)
        return nas_set_err(err, NAS_EFORMAT, "%s:%d: %s", name, key_line, detail);
    memcpy(out, key_b, NAS_KEY_Z85_LEN);
    out[NAS_KEY_Z85_LEN] = '\0';
    return NAS_OK;
}

// ----------------------------------------------------------------------------
// Generating and fingerprinting

/* libzmq draws the key from libsodium's CSPRNG, never from nas_rng: keys
 * must not be reproducible from a campaign seed. */
int nas_keys_generate(nas_keypair *kp, char *err) {
    NAS_ASSERT(kp != NULL);
    memset(kp, 0, sizeof *kp);
    if (!zmq_has("curve"))
        return nas_set_err(err, NAS_EUNSUPPORTED, "this libzmq was built without CURVE support");
    if (zmq_curve_keypair(kp->public_z85, kp->secret_z85) != 0)
        return nas_set_err(err, NAS_EIO, "zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
    return NAS_OK;
}

void nas_keys_fingerprint(const char *public_z85, char out[NAS_KEY_FP_LEN]) {
    size_t n = public_z85 != NULL ? strnlen(public_z85, NAS_KEY_FP_LEN - 1) : 0;
    memcpy(out, public_z85 != NULL ? public_z85 : "", n);
    out[n] = '\0';
}

void nas_keys_fingerprint_bin(const unsigned char key[NAS_KEY_BIN_LEN], char out[NAS_KEY_FP_LEN]) {
    char z85[NAS_KEY_Z85_LEN + 1];
    if (zmq_z85_encode(z85, key, NAS_KEY_BIN_LEN) == NULL) z85[0] = '\0';
    nas_keys_fingerprint(z85, out);
}

// ----------------------------------------------------------------------------
// Writing

/* Write `text` to a fresh temporary file next to `final` (mode 0600 from
 * creation), widen it to `mode`, fsync it, and return its name in tmp. */
static int write_tmp(const char *final, const char *text, mode_t mode, char *tmp, size_t cap,
                     char *err) {
    if ((size_t)snprintf(tmp, cap, "%s.tmpXXXXXX", final) >= cap)
        return nas_set_err(err, NAS_EINVAL, "key path too long: %s", final);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        tmp[0] = '\0';
        return nas_set_err(err, NAS_EIO, "create %s: %s", final, strerror(errno));
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) goto fail;
        off += (size_t)w;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0) goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    return NAS_OK;
fail:;
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    tmp[0] = '\0';
    return nas_set_err(err, NAS_EIO, "write %s: %s", final, strerror(e));
}

/* Best effort: make the new directory entries durable. */
static void sync_dir_of(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0) n = 1;
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int nas_keys_save(const nas_keypair *kp, const char *base, int overwrite, char *err) {
    NAS_ASSERT(kp != NULL);
    if (base == NULL || base[0] == '\0') return nas_set_err(err, NAS_EINVAL, "empty key name");
    char detail[NAS_ERR_LEN];
    if (nas_keys_check_z85(kp->public_z85, strlen(kp->public_z85), detail) != NAS_OK ||
        nas_keys_check_z85(kp->secret_z85, strlen(kp->secret_z85), detail) != NAS_OK)
        return nas_set_err(err, NAS_EINVAL, "keypair to save for %s: %s", base, detail);

    char pub_path[4096], sec_path[4096], pub_tmp[4200] = "", sec_tmp[4200] = "";
    if ((size_t)snprintf(pub_path, sizeof pub_path, "%s.key", base) >= sizeof pub_path ||
        (size_t)snprintf(sec_path, sizeof sec_path, "%s.key_secret", base) >= sizeof sec_path)
        return nas_set_err(err, NAS_EINVAL, "key path too long: %s", base);
    /* lstat, not stat: a dangling symlink under the key's name is still
     * something we refuse to replace without being asked. */
    struct stat st;
    if (!overwrite) {
        /* Checked up front so that an existing half of a pair leaves
         * nothing new behind; link() below still refuses atomically. */
        if (lstat(sec_path, &st) == 0)
            return nas_set_err(err, NAS_EEXIST, "%s exists (refusing to overwrite a key)",
                               sec_path);
        if (lstat(pub_path, &st) == 0)
            return nas_set_err(err, NAS_EEXIST, "%s exists (refusing to overwrite a key)",
                               pub_path);
    }

    char sec_text[256], pub_text[256];
    snprintf(sec_text, sizeof sec_text,
             "# nasd CURVE secret key (ZeroMQ Z85).  Keep it on this machine, mode 0600.\n"
             "# Public half: %s.key\n%s\n",
             base, kp->secret_z85);
    snprintf(pub_text, sizeof pub_text,
             "# nasd CURVE public key (ZeroMQ Z85).  Safe to share: copy it into the\n"
             "# master's authorized directory (workers) or to the workers (master).\n%s\n",
             kp->public_z85);
    int rc = write_tmp(sec_path, sec_text, 0600, sec_tmp, sizeof sec_tmp, err);
    /* explicit_bzero, unlike memset, is not optimised away before return. */
    explicit_bzero(sec_text, sizeof sec_text);
    if (rc != NAS_OK) goto fail;
    rc = write_tmp(pub_path, pub_text, 0644, pub_tmp, sizeof pub_tmp, err);
    if (rc != NAS_OK) goto fail;

    /* The secret goes in first.  A crash between the two steps leaves
     * the new secret beside the old public file, which load_pair reports
     * as a mismatch; never a new public key handed out without its secret. */
    if (overwrite) {
        if (rename(sec_tmp, sec_path) != 0) {
            rc = nas_set_err(err, NAS_EIO, "rename to %s: %s", sec_path, strerror(errno));
            goto fail;
        }
        sec_tmp[0] = '\0';
        if (rename(pub_tmp, pub_path) != 0) {
            rc = nas_set_err(err, NAS_EIO, "rename to %s: %s", pub_path, strerror(errno));
            goto fail;
        }
        pub_tmp[0] = '\0';
    } else {
        if (link(sec_tmp, sec_path) != 0) {
            rc = errno == EEXIST
                     ? nas_set_err(err, NAS_EEXIST, "%s exists (refusing to overwrite a key)",
                                   sec_path)
                     : nas_set_err(err, NAS_EIO, "link %s: %s", sec_path, strerror(errno));
            goto fail;
        }
        if (link(pub_tmp, pub_path) != 0) {
            int e = errno;
            unlink(sec_path); /* ours: created by the link just above */
            rc = e == EEXIST ? nas_set_err(err, NAS_EEXIST,
                                           "%s exists (refusing to overwrite a key)", pub_path)
                             : nas_set_err(err, NAS_EIO, "link %s: %s", pub_path, strerror(e));
            goto fail;
        }
        unlink(sec_tmp);
        unlink(pub_tmp);
        sec_tmp[0] = pub_tmp[0] = '\0';
    }
    sync_dir_of(pub_path);
    return NAS_OK;
fail:
    if (sec_tmp[0] != '\0') unlink(sec_tmp);
    if (pub_tmp[0] != '\0') unlink(pub_tmp);
    return rc;
}

int nas_keys_generate_files(const char *base, int overwrite, nas_keypair *kp, char *err) {
    nas_keypair local;
    int rc = nas_keys_generate(&local, err);
    if (rc == NAS_OK) rc = nas_keys_save(&local, base, overwrite, err);
    if (rc == NAS_OK && kp != NULL) *kp = local;
    /* The secret does not outlive this call unless the caller asked. */
    explicit_bzero(&local, sizeof local);
    return rc;
}

// ----------------------------------------------------------------------------
// Loading

/* Read a small key file.  secret != 0 refuses a file group or others may
 * read.  The text is NUL-terminated in buf (KEYS_FILE_MAX + 1 bytes). */
static int read_key_file(const char *path, int secret, char *buf, size_t *len, char *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nas_set_err(err, errno == ENOENT ? NAS_ENOTFOUND : NAS_EIO, "%s: %s", path,
                           strerror(errno));
    struct stat st;
    int rc = NAS_OK;
    if (fstat(fd, &st) != 0) {
        rc = nas_set_err(err, NAS_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = nas_set_err(err, NAS_EFORMAT, "%s: not a regular file", path);
        goto done;
    }
    /* As ssh does for identity files: a readable secret may already be
     * copied, so refusing it forces the operator to notice. */
    if (secret && (st.st_mode & 077) != 0) {
        rc = nas_set_err(err, NAS_EAUTH,
                         "%s: secret key is readable by others (mode %04o); run chmod 600 %s", path,
                         (unsigned)(st.st_mode & 07777), path);
        goto done;
    }
    if (st.st_size > KEYS_FILE_MAX) {
        rc = nas_set_err(err, NAS_EFORMAT, "%s: %lld bytes is too big for a key file", path,
                         (long long)st.st_size);
        goto done;
    }
    size_t off = 0;
    for (;;) {
        ssize_t r = read(fd, buf + off, KEYS_FILE_MAX - off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = nas_set_err(err, NAS_EIO, "%s: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0) break;
        off += (size_t)r;
        if (off == KEYS_FILE_MAX) break;
    }
    buf[off] = '\0';
    *len = off;
done:
    close(fd);
    return rc;
}

int nas_keys_load_public(const char *path, char out[NAS_KEY_Z85_LEN + 1], char *err) {
    if (path == NULL) return nas_set_err(err, NAS_EINVAL, "public key: no path");
    char buf[KEYS_FILE_MAX + 1];
    size_t len = 0;
    int rc = read_key_file(path, 0, buf, &len, err);
    if (rc != NAS_OK) return rc;
    return nas_keys_parse(buf, len, "public", path, out, err);
}

int nas_keys_load_pair(const char *base, nas_keypair *kp, char *err) {
    NAS_ASSERT(kp != NULL);
    if (base == NULL || base[0] == '\0') return nas_set_err(err, NAS_EINVAL, "empty key name");
    memset(kp, 0, sizeof *kp);
    char pub_path[4096], sec_path[4096];
    if ((size_t)snprintf(pub_path, sizeof pub_path, "%s.key", base) >= sizeof pub_path ||
        (size_t)snprintf(sec_path, sizeof sec_path, "%s.key_secret", base) >= sizeof sec_path)
        return nas_set_err(err, NAS_EINVAL, "key path too long: %s", base);

    char buf[KEYS_FILE_MAX + 1];
    size_t len = 0;
    nas_keypair k;
    memset(&k, 0, sizeof k);
    int rc = read_key_file(sec_path, 1, buf, &len, err);
    if (rc == NAS_OK) rc = nas_keys_parse(buf, len, "secret", sec_path, k.secret_z85, err);
    explicit_bzero(buf, sizeof buf);
    if (rc != NAS_OK) goto fail;
    if (zmq_curve_public(k.public_z85, k.secret_z85) != 0) {
        rc = nas_set_err(err, NAS_EUNSUPPORTED, "%s: cannot derive the public key: %s", sec_path,
                         zmq_strerror(zmq_errno()));
        goto fail;
    }
    /* The secret is the truth; a stale NAME.key next to it (a keygen
     * --force that copied only one file) would make the operator hand out
     * the wrong public key, so a mismatch is an error. */
    char on_disk[NAS_KEY_Z85_LEN + 1];
    rc = nas_keys_load_public(pub_path, on_disk, err);
    if (rc == NAS_ENOTFOUND) {
        rc = NAS_OK; /* the secret alone is enough */
    } else if (rc != NAS_OK) {
        goto fail;
    } else if (strcmp(on_disk, k.public_z85) != 0) {
        rc = nas_set_err(err, NAS_EFORMAT, "%s does not belong to %s (public keys differ)",
                         pub_path, sec_path);
        goto fail;
    }
    *kp = k;
    explicit_bzero(&k, sizeof k);
    return NAS_OK;
fail:
    explicit_bzero(&k, sizeof k);
    return rc;
}

// ----------------------------------------------------------------------------
// Sockets

/* Decode a checked Z85 key and set it as a 32-byte binary option. */
static int set_key(void *sock, int option, const char *z85, const char *what, char *err) {
    char detail[NAS_ERR_LEN];
    if (z85 == NULL || nas_keys_check_z85(z85, strlen(z85), detail) != NAS_OK)
        return nas_set_err(err, NAS_EINVAL, "%s: %s", what, z85 == NULL ? "missing" : detail);
    /* Binary form: libzmq accepts 40 or 41 bytes of Z85 too, but passing
     * 32 decoded bytes leaves no doubt about a trailing NUL. */
    uint8_t bin[NAS_KEY_BIN_LEN];
    if (zmq_z85_decode(bin, z85) == NULL)
        return nas_set_err(err, NAS_EINVAL, "%s: Z85 decode failed", what);
    int rc = zmq_setsockopt(sock, option, bin, sizeof bin);
    explicit_bzero(bin, sizeof bin);
    if (rc != 0)
        return nas_set_err(err, NAS_EIO, "setsockopt %s: %s", what, zmq_strerror(zmq_errno()));
    return NAS_OK;
}

int nas_keys_curve_server(void *sock, const nas_keypair *kp, const char *domain, char *err) {
    NAS_ASSERT(sock != NULL && kp != NULL);
    if (!zmq_has("curve"))
        return nas_set_err(err, NAS_EUNSUPPORTED, "this libzmq was built without CURVE support");
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0)
        return nas_set_err(err, NAS_EIO, "setsockopt CURVE_SERVER: %s", zmq_strerror(zmq_errno()));
    int rc = set_key(sock, ZMQ_CURVE_SECRETKEY, kp->secret_z85, "server secret key", err);
    if (rc != NAS_OK) return rc;
    if (domain == NULL) domain = "nasd";
    if (zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0)
        return nas_set_err(err, NAS_EIO, "setsockopt ZAP_DOMAIN: %s", zmq_strerror(zmq_errno()));
    return NAS_OK;
}

int nas_keys_curve_client(void *sock, const nas_keypair *kp, const char *server_public_z85,
                          char *err) {
    NAS_ASSERT(sock != NULL && kp != NULL);
    if (!zmq_has("curve"))
        return nas_set_err(err, NAS_EUNSUPPORTED, "this libzmq was built without CURVE support");
    int rc = set_key(sock, ZMQ_CURVE_SERVERKEY, server_public_z85, "server public key", err);
    if (rc == NAS_OK)
        rc = set_key(sock, ZMQ_CURVE_PUBLICKEY, kp->public_z85, "client public key", err);
    if (rc == NAS_OK)
        rc = set_key(sock, ZMQ_CURVE_SECRETKEY, kp->secret_z85, "client secret key", err);
    return rc;
}
