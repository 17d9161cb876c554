/*
 * status_fidelity.c - resources spent and fidelity rank correlation in the
 * status document (status_fidelity.h).
 */
#include "master/status_fidelity.h"

#include "common/alloc.h"
#include "common/err.h"
#include "master/fidelity_rank.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t nas_status_epochs_of(int n_curve) {
    return n_curve > 0 ? n_curve : 1;
}

int nas_status_epochs_spent(nas_store *st, int64_t *epochs, char *err) {
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    if (n < 0) return n;
    int64_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += nas_status_epochs_of(r[i].n_curve);
    nas_store_records_free(r, n);
    *epochs = sum;
    return NAS_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int nas_status_stopped_tasks(nas_store *st, int64_t **ids, char *err) {
    enum { PAGE = 1000 };
    int64_t *arr = NULL, after = 0;
    int n = 0, cap = 0, ne;
    *ids = NULL;
    do {
        nas_store_event_info *ev = NULL;
        ne = nas_store_event_list(st, after, PAGE, &ev, err);
        if (ne < 0) {
            nas_free(arr);
            return ne;
        }
        for (int i = 0; i < ne; i++) {
            after = ev[i].id;
            int64_t id;
            if (strcmp(ev[i].kind, "task-stopped") != 0 ||
                sscanf(ev[i].text, "task %" SCNd64 " stopped", &id) != 1)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                int64_t *grown = nas_realloc(arr, (size_t)cap * sizeof *arr);
                if (!grown) {
                    nas_free(ev);
                    nas_free(arr);
                    return nas_set_err(err, NAS_ENOMEM, "status: out of memory");
                }
                arr = grown;
            }
            arr[n++] = id;
        }
        nas_free(ev);
    } while (ne == PAGE);
    if (n > 1) qsort(arr, (size_t)n, sizeof *arr, cmp_i64);
    *ids = arr;
    return n;
}

int nas_status_is_stopped(const int64_t *ids, int n, int64_t task) {
    return n > 0 && bsearch(&task, ids, (size_t)n, sizeof *ids, cmp_i64) != NULL;
}

static void num_or_null(nas_json_buf *b, const char *key, double v) {
    nas_json_buf_key(b, key);
    if (v < 0)
        nas_json_buf_null(b);
    else
        nas_json_buf_f64(b, v);
}

void nas_status_json_fidelity_of(nas_json_buf *b, int64_t epochs, int64_t epochs_budget,
                                 double wall_budget_s, int64_t created_ms, int64_t now_wall_ms,
                                 int64_t stopped, const nas_fidelity_ranks *fr) {
    nas_json_buf_key(b, "resources");
    nas_json_buf_obj_begin(b);
    num_or_null(b, "epochs", (double)epochs);
    num_or_null(b, "epochs_budget", (double)epochs_budget);
    num_or_null(b, "wall_s", created_ms > 0 ? (double)(now_wall_ms - created_ms) / 1000.0 : -1);
    num_or_null(b, "wall_budget_s", wall_budget_s);
    num_or_null(b, "stopped", (double)stopped);
    nas_json_buf_obj_end(b);
    nas_json_buf_key(b, "fidelity_ranks");
    if (fr)
        nas_fidelity_ranks_json(b, fr);
    else
        nas_json_buf_null(b);
}

void nas_status_json_fidelity(nas_json_buf *b, nas_store *st, int64_t epochs_budget,
                              double wall_budget_s, int64_t created_ms, int64_t now_wall_ms) {
    char err[NAS_ERR_LEN];
    int64_t spent = 0;
    if (nas_status_epochs_spent(st, &spent, err) != NAS_OK) spent = -1;
    int64_t *stopped = NULL;
    int n_stopped = nas_status_stopped_tasks(st, &stopped, err);
    nas_free(stopped);
    nas_fidelity_ranks fr;
    int ok = nas_fidelity_ranks_read(st, &fr, err) == NAS_OK;
    nas_status_json_fidelity_of(b, spent, epochs_budget, wall_budget_s, created_ms, now_wall_ms,
                                n_stopped, ok ? &fr : NULL);
    nas_fidelity_ranks_fini(&fr);
}

static double num(const nas_json *o, const char *k) {
    const nas_json *v = o ? nas_json_get(o, k) : NULL;
    return v && v->type == NAS_JSON_NUMBER ? v->number : NAN;
}

static const char *group_label(const nas_json *groups, double i) {
    const nas_json *g = NULL;
    if (groups && groups->type == NAS_JSON_ARRAY && i >= 0 && (size_t)i < groups->len)
        g = &groups->items[(size_t)i];
    const nas_json *f = g ? nas_json_get(g, "fidelity") : NULL;
    return f && f->type == NAS_JSON_STRING ? f->str : "?";
}

void nas_status_print_fidelity(const nas_json *doc, FILE *f) {
    const nas_json *res = nas_json_get(doc, "resources");
    if (res && res->type == NAS_JSON_OBJECT) {
        double ep = num(res, "epochs"), eb = num(res, "epochs_budget");
        double ws = num(res, "wall_s"), wb = num(res, "wall_budget_s");
        double stopped = num(res, "stopped");
        fprintf(f, "resources     %.0f epochs trained", ep);
        if (stopped > 0) fprintf(f, " (%.0f run(s) stopped early)", stopped);
        if (eb > 0) fprintf(f, " of %.0f (%.0f left)", eb, fmax(0, eb - ep));
        if (!isnan(ws)) fprintf(f, "; %.0f s since creation", ws);
        if (wb > 0) fprintf(f, " of %.0f s (%.0f s left)", wb, fmax(0, wb - ws));
        fprintf(f, "\n");
    }
    const nas_json *fr = nas_json_get(doc, "fidelity_ranks");
    const nas_json *pairs = fr ? nas_json_get(fr, "pairs") : NULL;
    if (!pairs || pairs->type != NAS_JSON_ARRAY || pairs->len == 0) return;
    const nas_json *groups = nas_json_get(fr, "groups");
    for (size_t i = 0; i < pairs->len; i++) {
        const nas_json *p = &pairs->items[i];
        const nas_json *v = nas_json_get(p, "validation");
        double n = num(v, "n"), rho = num(v, "spearman"), tau = num(v, "kendall");
        char r[16] = "-", t[16] = "-";
        if (!isnan(rho)) snprintf(r, sizeof r, "%+.2f", rho);
        if (!isnan(tau)) snprintf(t, sizeof t, "%+.2f", tau);
        fprintf(f, "%s %s -> %s: Spearman %s, Kendall %s (n=%.0f%s)\n",
                i == 0 ? "fidelity rank" : "             ", group_label(groups, num(p, "from")),
                group_label(groups, num(p, "to")), r, t, n,
                n < num(fr, "min_n") ? ", too few to judge" : "");
        const nas_json *weak = nas_json_get(v, "weak");
        if (weak && weak->type == NAS_JSON_BOOL && weak->boolean)
            fprintf(f,
                    "warning       the cheaper fidelity ranks poorly (Spearman below %.2f): its "
                    "best are not reliably the best at the next (docs/CAMPAIGN.md)\n",
                    num(fr, "threshold"));
    }
}
