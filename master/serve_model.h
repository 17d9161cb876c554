/*
 * serve_model.h - what `nasctl serve`, `top` and `watch` know about a
 * campaign: an in-memory copy of its results, task counts, workers and
 * event log, read from the store through a read-only SQLite connection and
 * brought up to date incrementally.
 *
 * Why a copy: the dashboard must answer in milliseconds at 100,000
 * evaluations, and a scan of the task table per request (what
 * nas_store_history does) costs tens of milliseconds and holds a read
 * snapshot that long.  A refresh instead asks SQLite `PRAGMA data_version`
 * (has anyone committed since?) and, only when someone has, reads the tasks
 * from the "frontier" on: the lowest task id that was still queued or
 * leased at the last refresh.  Tasks below it are finished and never change
 * again (docs/SCHEMA.md, life cycle), so a refresh reads the in-flight
 * window, not the history.  Results are new exactly when their result_id
 * (order of completion) exceeds the largest one seen, which holds because
 * every refresh reads one consistent snapshot.
 *
 * The connection is opened SQLITE_OPEN_READONLY on a WAL store: a reader
 * never takes the write lock, so the master's commits never wait for it
 * (tests/test_serve.c checks this with a writer committing while a reader
 * refreshes in a loop).
 *
 * A model is used by one thread at a time; the server guards it with a
 * mutex.  Errors are negative nas_err with a message in err[NAS_ERR_LEN].
 */
#ifndef NAS_SERVE_MODEL_H
#define NAS_SERVE_MODEL_H

#include "common/json.h"

#include <stddef.h>
#include <stdint.h>

/* One result (a done task), in order of completion. */
typedef struct nas_serve_row {
    int64_t task, seq; /* task id, result number (1, 2, ...) */
    uint64_t hash;
    double accuracy, test_accuracy, loss, seconds; /* test_accuracy NAN when absent */
    int64_t params, macs, finished_ms;
    int stage;     /* enum nas_store_stage */
    int attempt;   /* the lease that produced the result */
    int worker;    /* index into the model's worker names */
    uint32_t text; /* offset of the genome text in the model's text pool */
} nas_serve_row;

/* A worker as the store knows it, plus what the results say of it. */
typedef struct nas_serve_worker {
    char *name, *host, *version;
    int cores;
    int64_t first_seen_ms, last_seen_ms;
    int64_t tasks_done;  /* results it trained */
    double busy_seconds; /* sum of their training times */
    int64_t task;        /* task leased to it now, -1 if none */
    int in_table;        /* has a row in the worker table (not only results) */
} nas_serve_worker;

/* One entry of the event stream: an SSE event name and a JSON payload.
 * A result's payload is written only when a reader asks for it
 * (nas_serve_model_event_json): a refresh that brings thousands of results
 * formats none of them unless a client follows the whole stream. */
typedef struct nas_serve_event {
    int64_t id; /* 1, 2, ... for the life of the model */
    char kind[16];
    char *json; /* NULL until asked, for a result */
    int row;    /* the result's row (kind "result"), else -1 */
} nas_serve_event;

#define NAS_SERVE_EVENT_RING 4096

typedef struct nas_serve_model nas_serve_model;

/* Open `path` read-only and load everything (one snapshot).  NAS_EIO when
 * the file cannot be opened, NAS_EFORMAT when it is not a nasd store,
 * NAS_EVERSION for a schema this binary does not know. */
int nas_serve_model_open(nas_serve_model **out, const char *path, char *err);
void nas_serve_model_close(nas_serve_model **mp);

/* Bring the copy up to date: returns 1 when something changed, 0 when no
 * one committed since the last call (one PRAGMA), negative on error. */
int nas_serve_model_refresh(nas_serve_model *m, int64_t now_ms, char *err);

/* ---- reading (valid until the next refresh) ---------------------------------------- */

typedef struct nas_serve_summary {
    const char *campaign, *strategy, *state, *path;
    const char *halted; /* the circuit breaker's standing halt (the event log), or NULL */
    int64_t budget;                       /* 0 when unknown */
    int64_t counts[2][4];                 /* [stage][enum nas_store_task_state] */
    int64_t weights_archs, weights_bytes; /* weight files on disk */
    int64_t created_ms, first_result_ms, last_result_ms;
    int best;               /* row index of the best search result, -1 before any */
    int64_t refreshes;      /* refreshes that found a change */
    double last_refresh_ms; /* how long the last changing refresh took */
} nas_serve_summary;
void nas_serve_model_summary(const nas_serve_model *m, nas_serve_summary *s);

int nas_serve_model_rows(const nas_serve_model *m, const nas_serve_row **rows);
const char *nas_serve_model_text(const nas_serve_model *m, const nas_serve_row *r);
int nas_serve_model_workers(const nas_serve_model *m, const nas_serve_worker **w);

/* Failed attempts by reason (the event log's failure kinds). */
typedef struct nas_serve_count {
    const char *name;
    int64_t n;
} nas_serve_count;
int nas_serve_model_failures(const nas_serve_model *m, const nas_serve_count **c);

/* Events after `after` (oldest first) into out[0..cap): returns the count.
 * *lost is set when events after `after` were dropped from the ring (the
 * client fell behind and should reload). */
int nas_serve_model_events(const nas_serve_model *m, int64_t after, const nas_serve_event **out,
                           int cap, int *lost);
/* An event's payload, formatted on first use and kept with the event
 * (valid while the event is in the ring); NULL when out of memory. */
const char *nas_serve_model_event_json(nas_serve_model *m, const nas_serve_event *e);
/* The id of the newest event (0 before any). */
int64_t nas_serve_model_last_event(const nas_serve_model *m);

/* Evaluations per second over the last `window_ms` before `now_ms`. */
double nas_serve_model_rate(const nas_serve_model *m, int64_t now_ms, int64_t window_ms);

/* The page's table as text, column by column, kept across requests: rows
 * are only ever appended, so each column's comma-separated values for rows
 * [0, n) are formatted once and the whole-table answer is a copy
 * (serve_api.c fills it; the model only owns it, so it is freed with it). */
#define NAS_SERVE_COLUMNS 10
typedef struct nas_serve_colcache {
    nas_json_buf col[NAS_SERVE_COLUMNS];
    int n;
    char *pareto; /* the /api/pareto answer for pareto_n rows, or NULL */
    size_t pareto_len;
    int pareto_n;
} nas_serve_colcache;
nas_serve_colcache *nas_serve_model_colcache(nas_serve_model *m);

/* One result as a JSON object, in the shape of nas_status_json_record
 * (the status document's "best", nasctl history --json). */
void nas_serve_row_json(const nas_serve_model *m, const nas_serve_row *r, nas_json_buf *b);

/* One task as a JSON object read from the store now: its task row, its
 * result with the learning curve, and its genome drawn in DOT.
 * NAS_ENOTFOUND for no such task.  Returns a malloc'd string or NULL. */
char *nas_serve_model_task_json(nas_serve_model *m, int64_t task, char *err);

#endif
