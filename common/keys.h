/*
 * keys.h - CurveZMQ keypairs in files, and the socket options that use
 * them (ARCHITECTURE.md, Security, docs/SECURITY.md).
 *
 * A keypair is two text files next to each other:
 *
 *   NAME.key         the public key, mode 0644: safe to copy anywhere (the
 *                    master's authorized directory, a worker's config)
 *   NAME.key_secret  the secret key, mode 0600: never leaves the machine
 *
 * Each holds '#' comment lines and one key line of 40 Z85 characters
 * (ZeroMQ's text form of a 32-byte Curve25519 key).  The loader also
 * accepts czmq's certificate form (`public-key = "..."` / `secret-key =
 * "..."`), so keys made by zcert can be used as they are.
 *
 * Invariants:
 *  - The secret file is created with O_EXCL and mode 0600 from the first
 *    byte; it is never world- or group-readable, not even for an instant,
 *    and a secret file that is (someone chmod'ed it) is refused on load.
 *  - Nothing is overwritten unless the caller asks; a pair is written as
 *    a whole or not at all (temporary files, then link/rename).
 *  - Every error names the file and what is wrong with it.
 */
#ifndef NAS_KEYS_H
#define NAS_KEYS_H

#include <stddef.h>

#define NAS_KEY_Z85_LEN 40 /* Z85 characters of a 32-byte key */
#define NAS_KEY_BIN_LEN 32 /* bytes of a Curve25519 key */
#define NAS_KEY_FP_LEN  9  /* fingerprint buffer: 8 characters and a NUL */

/* A keypair in Z85 text, each NUL-terminated.  `secret_z85` is empty for a
 * public key alone (what the master knows of a worker, what a worker
 * knows of the master). */
typedef struct nas_keypair {
    char public_z85[NAS_KEY_Z85_LEN + 1];
    char secret_z85[NAS_KEY_Z85_LEN + 1];
} nas_keypair;

/* Make a fresh keypair with zmq_curve_keypair().  NAS_EUNSUPPORTED + err
 * when libzmq was built without CURVE (libsodium). */
int nas_keys_generate(nas_keypair *kp, char *err);

/* Write kp as BASE.key (0644) and BASE.key_secret (0600).  BASE is a path
 * without extension ("keys/worker1").  With overwrite == 0 an existing
 * file of either name is NAS_EEXIST and nothing is written.  NAS_EIO +
 * err (naming the path) for a file system failure. */
int nas_keys_save(const nas_keypair *kp, const char *base, int overwrite, char *err);

/* Generate and save in one call (what `nasctl keygen NAME` does); kp may
 * be NULL when the caller does not need the keys. */
int nas_keys_generate_files(const char *base, int overwrite, nas_keypair *kp, char *err);

/* Check that s[0..len) is exactly one Z85-encoded 32-byte key: 40
 * characters of the Z85 alphabet whose 5-character groups fit 32 bits.
 * NAS_EFORMAT + err saying which character or group is wrong. */
int nas_keys_check_z85(const char *s, size_t len, char *err);

/* Parse the text of a key file (comments, one key line; see above).
 * `what` is "public" or "secret" (which czmq field to take) and `name`
 * names the text in messages.  out gets the 40 characters and a NUL. */
int nas_keys_parse(const char *text, size_t len, const char *what, const char *name,
                   char out[NAS_KEY_Z85_LEN + 1], char *err);

/* Load one public key file (e.g. "keys/master.key") into out.
 * NAS_ENOTFOUND, NAS_EIO or NAS_EFORMAT, with err naming the file. */
int nas_keys_load_public(const char *path, char out[NAS_KEY_Z85_LEN + 1], char *err);

/* Load the keypair BASE.key_secret (+ BASE.key if present).  The public
 * key is derived from the secret one; if BASE.key exists it must match
 * (NAS_EFORMAT otherwise, naming both files).  A secret file that group
 * or others may read is refused with NAS_EAUTH ("chmod 600 ..."). */
int nas_keys_load_pair(const char *base, nas_keypair *kp, char *err);

/* A short, stable name for a public key in logs: its first 8 Z85
 * characters (so an operator can grep the key files for it). */
void nas_keys_fingerprint(const char *public_z85, char out[NAS_KEY_FP_LEN]);

/* The same from a raw 32-byte key (as ZAP delivers it). */
void nas_keys_fingerprint_bin(const unsigned char key[NAS_KEY_BIN_LEN], char out[NAS_KEY_FP_LEN]);

/* Configure sock as a CURVE server (the master's ROUTERs): CURVE_SERVER=1,
 * the secret key and ZAP_DOMAIN `domain` (NULL gives "nasd").  Call
 * before bind, after the ZAP handler exists (master/auth.h): a CURVE
 * socket without a ZAP handler admits every client that knows the
 * server's public key. */
int nas_keys_curve_server(void *sock, const nas_keypair *kp, const char *domain, char *err);

/* Configure sock as a CURVE client (worker, nasctl): its own keypair and
 * the server's public key.  Call before connect. */
int nas_keys_curve_client(void *sock, const nas_keypair *kp, const char *server_public_z85,
                          char *err);

#endif
