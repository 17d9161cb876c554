/*
 * err.h - error codes, messages and assertions shared by every nasd binary.
 *
 * Runtime outcomes are negative ints (NAS_OK == 0), generated from one
 * X-macro so that the enum, nas_strerror() and nas_err_name() never drift
 * apart.  Functions that return a count return >= 0 on success and a
 * negative nas_err on failure.  Detail meant for a person goes into a
 * caller-supplied char err[NAS_ERR_LEN] (see nas_set_err()).
 *
 * Broken invariants (bugs) use NAS_ASSERT, which aborts with a location.
 * Nothing the outside world can cause (files, peers, genomes, NaNs) may
 * trip an assertion: those are return codes.
 */
#ifndef NAS_ERR_H
#define NAS_ERR_H

#include <stddef.h>

#define NAS_ERR_LEN 256

/* XX(NAME, value, message) */
#define NAS_ERR_MAP(XX)                                                        \
    XX(OK, 0, "success")                                                       \
    XX(ENOMEM, -1, "out of memory")                                            \
    XX(EINVAL, -2, "invalid argument")                                         \
    XX(EIO, -3, "input/output error")                                          \
    XX(EPROTO, -4, "protocol error")                                           \
    XX(EGENOME, -5, "invalid genome")                                          \
    XX(EDIVERGED, -6, "training diverged")                                     \
    XX(ETIMEDOUT, -7, "timed out")                                             \
    XX(ECANCELED, -8, "canceled")                                              \
    XX(EDB, -9, "database error")                                              \
    XX(EFORMAT, -10, "malformed data")                                         \
    XX(ENOTFOUND, -11, "not found")                                            \
    XX(ECONFIG, -12, "invalid configuration")                                  \
    XX(ERANGE, -13, "value out of range")                                      \
    XX(EVERSION, -14, "version mismatch")                                      \
    XX(EEXIST, -15, "already exists")                                          \
    XX(EAGAIN, -16, "try again")                                               \
    XX(EAUTH, -17, "authentication failed")                                    \
    XX(ENOSPC, -18, "no space left on device")                                 \
    XX(ESTATE, -19, "operation not valid in this state")                       \
    XX(EUNSUPPORTED, -20, "not supported")

enum nas_err {
#define NAS__ERR_ENUM(name, value, msg) NAS_##name = value,
    NAS_ERR_MAP(NAS__ERR_ENUM)
#undef NAS__ERR_ENUM
};

/* Human-readable message for an error code; never NULL ("unknown error N"
 * for codes outside the map is rendered into a static const fallback). */
const char *nas_strerror(int err);

/* Symbolic name of an error code ("NAS_EIO"); "NAS_UNKNOWN" if unmapped. */
const char *nas_err_name(int err);

/* printf-style fill of a caller-supplied buffer of NAS_ERR_LEN bytes.
 * A NULL buffer is allowed and ignored. Returns `code`, so callers can write
 * `return nas_set_err(err, NAS_EIO, "read %s: %s", path, strerror(errno));`. */
int nas_set_err(char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Abort with a file:line location and message. Used by NAS_ASSERT only. */
_Noreturn void nas_abort(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define NAS_ASSERT(x)                                                          \
    do {                                                                       \
        if (!(x)) nas_abort(__FILE__, __LINE__, "assertion failed: %s", #x);   \
    } while (0)

#define NAS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
