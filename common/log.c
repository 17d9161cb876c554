/*
 * log.c - see log.h.
 */
#include "common/log.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum nas_log_level g_level = NAS_LOG_INFO; /* set once in main() */
static const char *g_prog = "nasd";               /* set once in main() */

void nas_log_set_level(enum nas_log_level level) { g_level = level; }
void nas_log_set_prog(const char *prog) { g_prog = prog ? prog : "nasd"; }
enum nas_log_level nas_log_get_level(void) { return g_level; }

int nas_log_parse_level(const char *s, enum nas_log_level *out) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < (int)NAS_ARRAY_LEN(names); i++) {
        if (s && strcasecmp(s, names[i]) == 0) {
            *out = (enum nas_log_level)i;
            return NAS_OK;
        }
    }
    return NAS_EINVAL;
}

void nas_log(enum nas_log_level level, const char *fmt, ...) {
    if (level < g_level || level >= NAS_LOG_OFF) return;
    static const char letters[] = "DIWE";
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %c %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, letters[level], g_prog);
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2; /* truncated message */
    line[len++] = '\n';
    /* One write() per line keeps lines from concurrent threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
