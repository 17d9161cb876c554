/*
 * log.h - leveled logging, one line per event, to stderr.
 *
 * Format: "2026-11-28T13:50:00.123Z I nas-master: message".  The level and
 * program name are the one sanctioned piece of global state in nasd: they
 * are set once, in main(), before any thread starts.  Each line is written
 * with a single write() so that lines from different threads never
 * interleave.
 */
#ifndef NAS_LOG_H
#define NAS_LOG_H

#include <stdint.h>

enum nas_log_level {
    NAS_LOG_DEBUG = 0,
    NAS_LOG_INFO = 1,
    NAS_LOG_WARN = 2,
    NAS_LOG_ERROR = 3,
    NAS_LOG_OFF = 4,
};

/* Set the minimum level printed (default NAS_LOG_INFO) and the program
 * name shown on each line (default "nasd"). `prog` must outlive logging. */
void nas_log_set_level(enum nas_log_level level);
void nas_log_set_prog(const char *prog);
enum nas_log_level nas_log_get_level(void);

/* Parse "debug", "info", "warn", "error", "off". Returns 0 or NAS_EINVAL. */
int nas_log_parse_level(const char *s, enum nas_log_level *out);

void nas_log(enum nas_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A limit on the lines one source of events may write: at most
 * NAS_LOG_LIMIT_LINES per NAS_LOG_LIMIT_WINDOW_MS.  Events a peer can cause
 * at will (malformed messages, refused requests) go through one, so that a
 * hostile or broken peer cannot fill the disk with the master's log; what
 * is held back is counted and reported in one line when the next window
 * opens.  Zero-initialise; one owner thread (no locking). */
#define NAS_LOG_LIMIT_LINES     20
#define NAS_LOG_LIMIT_WINDOW_MS 10000

typedef struct {
    int64_t window_ms; /* start of the current window */
    int lines;         /* lines written in it */
    long held;         /* events not written in it */
} nas_log_limit;

/* 1 when the caller may log this event now, 0 when it is over the limit
 * (then counted).  Opening a new window first reports how many events of
 * `what` the last one held back, at `level`. */
int nas_log_limit_pass(nas_log_limit *l, int64_t now_ms, enum nas_log_level level,
                       const char *what);

#define nas_debug(...) nas_log(NAS_LOG_DEBUG, __VA_ARGS__)
#define nas_info(...) nas_log(NAS_LOG_INFO, __VA_ARGS__)
#define nas_warn(...) nas_log(NAS_LOG_WARN, __VA_ARGS__)
#define nas_error(...) nas_log(NAS_LOG_ERROR, __VA_ARGS__)

#endif
