/*
 * err.c - the tables behind nas_strerror() and nas_err_name().
 */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *nas_strerror(int err) {
    switch (err) {
#define NAS__ERR_MSG(name, value, msg)                                         \
    case NAS_##name:                                                           \
        return msg;
        NAS_ERR_MAP(NAS__ERR_MSG)
#undef NAS__ERR_MSG
    }
    return "unknown error";
}

const char *nas_err_name(int err) {
    switch (err) {
#define NAS__ERR_NAME(name, value, msg)                                        \
    case NAS_##name:                                                           \
        return "NAS_" #name;
        NAS_ERR_MAP(NAS__ERR_NAME)
#undef NAS__ERR_NAME
    }
    return "NAS_UNKNOWN";
}

int nas_set_err(char *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, NAS_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return code;
}

void nas_abort(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "nasd: fatal: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}
