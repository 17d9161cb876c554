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

#define nas_debug(...) nas_log(NAS_LOG_DEBUG, __VA_ARGS__)
#define nas_info(...) nas_log(NAS_LOG_INFO, __VA_ARGS__)
#define nas_warn(...) nas_log(NAS_LOG_WARN, __VA_ARGS__)
#define nas_error(...) nas_log(NAS_LOG_ERROR, __VA_ARGS__)

#endif
