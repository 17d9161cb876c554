/*
 * config_scalar.c - one scalar of a campaign file into its place in the
 * config (nas__cfg_set_scalar): integers, numbers, booleans, durations
 * ("90s", "2h"), sizes ("512MB"), words from a list and strings, each
 * checked against its key's type and range, and the "expected ..., got
 * ..." words of the errors (config.c walks the YAML and calls it).
 */
#include "master/config_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a key's type looks like, for "expected ..., got ..." messages. */
const char *nas__cfg_type_words(int type) {
    switch (type) {
    case NAS__T_INT:
    case NAS__T_I64:
    case NAS__T_U64:
        return "an integer";
    case NAS__T_FLOAT:
    case NAS__T_DOUBLE:
        return "a number";
    case NAS__T_BOOL:
        return "true or false";
    case NAS__T_DURATION:
    case NAS__T_DURATION_MS:
        return "a duration such as 90s, 10m or 2h";
    case NAS__T_SIZE:
        return "a size such as 256MB";
    case NAS__T_MAP:
        return "a mapping of keys";
    case NAS__T_OPS:
    case NAS__T_SEEDS:
        return "a list";
    default:
        return "a string";
    }
}

/* Strict integer: optional sign, digits with optional '_' separators.
 * Underscores are allowed as digit separators (YAML 1.1 does the same),
 * so 1_000_000 reads as a person writes it. */
static int parse_i64(const char *s, long long *out) {
    char buf[64];
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '_') continue;
        if (n + 1 >= sizeof buf) return -1;
        buf[n++] = *p;
    }
    buf[n] = '\0';
    if (n == 0) return -1;
    char *end = NULL;
    errno = 0;
    *out = strtoll(buf, &end, 10);
    return (errno || *end || end == buf) ? -1 : 0;
}

static int parse_double(const char *s, double *out) {
    char *end = NULL;
    errno = 0;
    *out = strtod(s, &end);
    /* strtod takes "nan" and "inf"; no range check would catch NaN later. */
    return (errno || end == s || *end || !isfinite(*out)) ? -1 : 0;
}

/* The YAML 1.1 booleans people actually write; anything else is refused
 * rather than guessed. */
static int parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < NAS_ARRAY_LEN(yes); i++) {
        if (strcmp(s, yes[i]) == 0) return *out = 1, 0;
        if (strcmp(s, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

/* Durations are sums of number+unit terms ("1h30m"); a bare number is
 * seconds, but only on its own, since "1h30" is ambiguous. */
int nas_config_parse_duration(const char *s, double *seconds) {
    static const struct {
        const char *unit;
        double scale;
    } units[] = {{"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    double total = 0;
    const char *p = s;
    if (!s || !*s) return NAS_EINVAL;
    while (*p) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || !(v >= 0) || !isfinite(v)) return NAS_EINVAL;
        p = end;
        double scale = 0;
        for (size_t i = 0; i < NAS_ARRAY_LEN(units); i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, n) == 0 &&
                (p[n] == '\0' || (p[n] >= '0' && p[n] <= '9') || p[n] == '.')) {
                scale = units[i].scale;
                p += n;
                break;
            }
        }
        if (scale == 0) {
            if (*p || p != end || total != 0) return NAS_EINVAL;
            scale = 1; /* a bare number is seconds, but only alone */
        }
        total += v * scale;
    }
    *seconds = total;
    return NAS_OK;
}

/* Sizes are memory budgets, so every unit is a power of 1024, whether
 * written K, KB or KiB: one rule, no surprise. */
int nas_config_parse_size(const char *s, int64_t *bytes) {
    static const struct {
        const char *unit;
        int shift;
    } units[] = {{"", 0},     {"B", 0},  {"K", 10},  {"KB", 10},  {"KiB", 10}, {"k", 10},
                 {"kB", 10},  {"M", 20}, {"MB", 20}, {"MiB", 20}, {"G", 30},   {"GB", 30},
                 {"GiB", 30}, {"T", 40}, {"TB", 40}, {"TiB", 40}};
    if (!s || !*s || *s == '-' || *s == '+') return NAS_EINVAL;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || !isfinite(v)) return NAS_EINVAL;
    for (size_t i = 0; i < NAS_ARRAY_LEN(units); i++) {
        if (strcmp(end, units[i].unit) != 0) continue;
        double b = v * (double)(1ull << units[i].shift);
        if (b > 9e18) return NAS_EINVAL;
        *bytes = (int64_t)b;
        return NAS_OK;
    }
    return NAS_EINVAL;
}

/* Range check with the house message; lo/hi of 0/0 means unchecked. */
static int check_range(nas__cfg_ctx *cx, const nas__cfg_field *f, int line, const char *path,
                       double v, const char *shown) {
    if (f->lo == 0 && f->hi == 0) return NAS_OK;
    if (!(v >= f->lo)) return nas__cfg_error(cx, line, path, "must be >= %g, got %s", f->lo, shown);
    if (!(v <= f->hi)) return nas__cfg_error(cx, line, path, "must be <= %g, got %s", f->hi, shown);
    return NAS_OK;
}

/* Words restricted to a list are checked here and, for enums, stored as
 * their index; other strings are copied if they fit. */
static int set_string(nas__cfg_ctx *cx, const nas__cfg_field *f, int line, const char *path,
                      const char *v, void *dst) {
    if (f->names) {
        int found = -1;
        for (int i = 0; f->names[i]; i++)
            if (strcmp(v, f->names[i]) == 0) found = i;
        if (found < 0) {
            char hint[160];
            nas__cfg_suggest(v, f->names, sizeof(char *), hint, sizeof hint);
            return nas__cfg_error(cx, line, path, "'%s' is not allowed%s", v, hint);
        }
        if (f->type == NAS__T_ENUM) {
            *(int *)dst = found;
            return NAS_OK;
        }
    }
    if (strlen(v) >= f->cap)
        return nas__cfg_error(cx, line, path, "is %zu bytes long, the limit is %zu", strlen(v),
                              f->cap - 1);
    memcpy(dst, v, strlen(v) + 1);
    return NAS_OK;
}

/* Convert one scalar by the key's type, range-check it, and store it at
 * dst.  Every failure names the key and shows what was written. */
int nas__cfg_set_scalar(nas__cfg_ctx *cx, const nas__cfg_field *f, int line, const char *path,
                        const char *v, int quoted, void *dst) {
    long long i = 0;
    double d = 0;
    int b = 0;
    int64_t sz = 0;
    if (f->type == NAS__T_STR || f->type == NAS__T_ENUM)
        return set_string(cx, f, line, path, v, dst);
    /* A quoted scalar is a string in YAML: "3" where a number belongs is
     * almost always a template that forgot to substitute, so say so. */
    if (quoted || !*v)
        return nas__cfg_error(cx, line, path, "expected %s, got %s'%s'",
                              nas__cfg_type_words(f->type), quoted ? "the string " : "", v);
    switch (f->type) {
    case NAS__T_INT:
    case NAS__T_I64:
        if (parse_i64(v, &i) != 0) break;
        if (check_range(cx, f, line, path, (double)i, v) != NAS_OK) return NAS_ECONFIG;
        if (f->type == NAS__T_INT)
            *(int *)dst = (int)i;
        else
            *(int64_t *)dst = i;
        return NAS_OK;
    case NAS__T_U64: {
        if (*v == '-') return nas__cfg_error(cx, line, path, "must be >= 0, got %s", v);
        char *end = NULL;
        errno = 0;
        unsigned long long u = strtoull(v, &end, 10);
        if (errno || *end || end == v) break;
        *(uint64_t *)dst = u;
        return NAS_OK;
    }
    case NAS__T_FLOAT:
    case NAS__T_DOUBLE:
        if (parse_double(v, &d) != 0) break;
        if (check_range(cx, f, line, path, d, v) != NAS_OK) return NAS_ECONFIG;
        if (f->type == NAS__T_FLOAT)
            *(float *)dst = (float)d;
        else
            *(double *)dst = d;
        return NAS_OK;
    case NAS__T_BOOL:
        if (parse_bool(v, &b) != 0) break;
        *(int *)dst = b;
        return NAS_OK;
    case NAS__T_DURATION:
    case NAS__T_DURATION_MS:
        if (*v == '-') return nas__cfg_error(cx, line, path, "must be >= 0, got %s", v);
        if (nas_config_parse_duration(v, &d) != NAS_OK) break;
        if (check_range(cx, f, line, path, d, v) != NAS_OK) return NAS_ECONFIG;
        if (f->type == NAS__T_DURATION)
            *(double *)dst = d;
        else
            *(int64_t *)dst = (int64_t)llround(d * 1000.0);
        return NAS_OK;
    case NAS__T_SIZE:
        if (*v == '-') return nas__cfg_error(cx, line, path, "must be >= 0, got %s", v);
        if (nas_config_parse_size(v, &sz) != NAS_OK) break;
        *(int64_t *)dst = sz;
        return NAS_OK;
    default:
        NAS_ASSERT(!"scalar type");
    }
    return nas__cfg_error(cx, line, path, "expected %s, got '%s'", nas__cfg_type_words(f->type), v);
}
