/*
 * log.c - see log.h.
 */
#include "common/log.h"
#include "common/err.h"
#include "common/utf8.h"

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

/* Append msg to line[at..cap) with every control character and every byte
 * that is not UTF-8 written as \xNN: messages quote what peers send
 * (names, reasons), and one line of the log must stay one event, free of
 * forged newlines and terminal escape sequences.  Returns the new length. */
static size_t escape(char *line, size_t at, size_t cap, const char *msg) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; msg[i] && at < cap;) {
        uint32_t cp;
        int n = nas_utf8_decode(msg + i, &cp);
        if (n > 0 && !nas_utf8_is_control(cp)) {
            if (at + (size_t)n > cap) break;
            memcpy(line + at, msg + i, (size_t)n);
            at += (size_t)n;
            i += (size_t)n;
            continue;
        }
        if (n < 0) n = 1; /* one bad byte at a time */
        for (int k = 0; k < n && at + 4 <= cap; k++) {
            unsigned char b = (unsigned char)msg[i + (size_t)k];
            line[at++] = '\\';
            line[at++] = 'x';
            line[at++] = hex[b >> 4];
            line[at++] = hex[b & 15];
        }
        i += (size_t)n;
    }
    return at;
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
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0) msg[0] = '\0';
    size_t len = escape(line, (size_t)n, sizeof line - 1, msg);
    line[len++] = '\n';
    /* One write() per line keeps lines from concurrent threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

int nas_log_limit_pass(nas_log_limit *l, int64_t now_ms, enum nas_log_level level,
                       const char *what) {
    if (l->lines == 0 && l->held == 0) l->window_ms = now_ms;
    if (now_ms - l->window_ms >= NAS_LOG_LIMIT_WINDOW_MS || now_ms < l->window_ms) {
        if (l->held > 0)
            nas_log(level, "%s: %ld more like these in %lld s not logged", what, l->held,
                    (long long)((now_ms - l->window_ms) / 1000));
        l->window_ms = now_ms;
        l->lines = 0;
        l->held = 0;
    }
    if (l->lines < NAS_LOG_LIMIT_LINES) {
        l->lines++;
        return 1;
    }
    l->held++;
    return 0;
}
