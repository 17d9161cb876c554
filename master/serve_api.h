/*
 * serve_api.h - the answers of `nasctl serve`: Prometheus metrics and the
 * JSON API, rendered from the in-memory model (serve_model.h) and, when the
 * server follows a live master, its last status document.  No HTTP here:
 * the server (serve.c) maps a request to nas_serve_api() and sends what it
 * returns, so the answers can be tested without a socket.
 *
 * Routes (GET only; docs/USER-GUIDE.md lists their fields):
 *   /metrics             Prometheus text format 0.0.4
 *   /api/status          the campaign summary
 *   /api/history         paged, sorted, filtered results: offset, limit (<= 10000),
 *                        sort (seq|task|accuracy|params|macs|seconds|finished_ms),
 *                        order (asc|desc), stage (search|final|any), worker,
 *                        min_accuracy, max_params, q (substring of the genome text)
 *   /api/columns         every result from row `from` on, column by column (the
 *                        dashboard's table and plots: one compact answer);
 *                        fields=numbers|arch|all (default all)
 *   /api/task/ID         one task with its learning curve and its cell in DOT
 *   /api/pareto          the front of (accuracy up, parameters down), search stage
 *   /api/workers         workers with state, current task, results, busy time
 */
#ifndef NAS_SERVE_API_H
#define NAS_SERVE_API_H

#include "common/json.h"
#include "master/serve_model.h"

#include <stdint.h>

/* The live master's status document as last fetched (NULL when the server
 * follows none or it has not answered), and when. */
typedef struct nas_serve_live {
    const nas_json *doc;
    int64_t fetched_ms; /* wall clock */
    const char *endpoint;
} nas_serve_live;

/* Query-string lookup: the value of `key`, or NULL. */
typedef const char *(*nas_serve_arg_fn)(void *ctx, const char *key);

typedef struct nas_serve_answer {
    int status;        /* HTTP status */
    const char *ctype; /* content type (static) */
    char *body;        /* malloc'd (nas_free) */
    size_t len;
} nas_serve_answer;

/* Answer GET `path`.  Returns 0 with *a filled, or NAS_ENOTFOUND when the
 * path is not an API route (the server then tries its static files).
 * Bad arguments give a 400 answer whose JSON names the argument. */
/* Format the results added since the last call into the model's column
 * cache, so that the next whole-table answer is a copy.  The server calls
 * it after each refresh that found news (under its mutex). */
void nas_serve_api_prepare(nas_serve_model *m);

int nas_serve_api(nas_serve_model *m, const nas_serve_live *live, const char *path,
                  nas_serve_arg_fn arg, void *ctx, int64_t now_ms, nas_serve_answer *a);

#endif
