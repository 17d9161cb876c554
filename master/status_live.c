/*
 * status_live.c - the live master's status figures, kept up to date
 * result by result (status_live.h).
 */
#include "master/status_live.h"

#include "common/alloc.h"
#include "common/err.h"
#include "master/fidelity_rank.h"
#include "master/status.h"
#include "master/status_fidelity.h"

#include <math.h>
#include <string.h>

struct nas_status_live {
    int64_t epochs;  /* search epochs, nas_status_epochs_of per result */
    int64_t stopped; /* task-stopped events */
    int64_t max_task; /* the highest task id with a result */

    /* The search results read at open: how many, and the first and last
     * recorded (by seq) with their finish times (nas_status_live_rate). */
    int64_t n_search, first_seq, last_seq, first_ms, last_ms;

    /* Counts of the tasks below prefix_end, all done or failed for good. */
    int64_t prefix_end;
    nas_store_counts prefix[2];

    /* The best search result: its task and accuracy (NaN ranks below every
     * number, as the store's NULL does), and its JSON once read. */
    int has_best;
    int64_t best_task;
    double best_val;
    char *best_json; /* NULL: to be read */

    nas_fidelity_acc *acc;
    int64_t version;       /* results added to acc */
    int64_t ranks_version; /* what `ranks` was computed from (-1: nothing) */
    nas_fidelity_ranks ranks;
    int ranks_ok;
};

static void add_epochs(void *ctx, const nas_store_result_row *r) {
    nas_status_live *l = ctx;
    if (r->task_id > l->max_task) l->max_task = r->task_id;
    if (r->stage != NAS_STORE_STAGE_SEARCH) return;
    l->epochs += nas_status_epochs_of(r->n_curve);
    if (l->n_search++ == 0 || r->seq < l->first_seq) {
        l->first_seq = r->seq;
        l->first_ms = r->finished_ms;
    }
    if (l->n_search == 1 || r->seq > l->last_seq) {
        l->last_seq = r->seq;
        l->last_ms = r->finished_ms;
    }
}

int nas_status_live_open(nas_status_live **out, nas_store *st, char *err) {
    *out = NULL;
    nas_status_live *l = nas_calloc(1, sizeof *l);
    if (!l || nas_fidelity_acc_new(&l->acc) < 0) {
        nas_free(l);
        return nas_set_err(err, NAS_ENOMEM, "status: out of memory");
    }
    l->ranks_version = -1;
    int rc = nas_fidelity_acc_read(l->acc, st, add_epochs, l, err);
    int64_t *ids = NULL;
    int n = rc < 0 ? rc : nas_status_stopped_tasks(st, &ids, err);
    nas_free(ids);
    if (n >= 0) l->stopped = n;
    nas_store_record *best = NULL;
    if (n >= 0 && (n = nas_store_best(st, NAS_STORE_STAGE_SEARCH, 1, &best, err)) > 0) {
        l->has_best = 1;
        l->best_task = best[0].task_id;
        l->best_val = best[0].accuracy;
    }
    nas_store_records_free(best, n > 0 ? n : 0);
    if (n < 0) {
        nas_status_live_free(&l);
        return n;
    }
    l->version = 1;
    *out = l;
    return NAS_OK;
}

void nas_status_live_free(nas_status_live **lp) {
    if (!lp || !*lp) return;
    nas_status_live *l = *lp;
    nas_fidelity_acc_free(&l->acc);
    nas_fidelity_ranks_fini(&l->ranks);
    nas_free(l->best_json);
    nas_free(l);
    *lp = NULL;
}

int nas_status_live_result(nas_status_live *l, int64_t task_id, int stage, const nas_fidelity *f,
                           uint64_t arch, double val, double test, int n_curve, char *err) {
    if (task_id > l->max_task) l->max_task = task_id;
    if (stage == NAS_STORE_STAGE_SEARCH) {
        l->epochs += nas_status_epochs_of(n_curve);
        /* The store orders by accuracy, then the earlier result: a later
         * one replaces the best only when strictly better. */
        if (!l->has_best || (!isnan(val) && (isnan(l->best_val) || val > l->best_val))) {
            l->has_best = 1;
            l->best_task = task_id;
            l->best_val = val;
            nas_free(l->best_json);
            l->best_json = NULL;
        }
    }
    l->version++;
    /* SQLite keeps a NaN as NULL, which reads back as 0 (store_query.c):
     * the accumulator gets what a read of the store would give it. */
    return nas_fidelity_acc_add(l->acc, task_id, stage, f, arch, isnan(val) ? 0.0 : val, test,
                                err);
}

void nas_status_live_stopped(nas_status_live *l) {
    l->stopped++;
}

int64_t nas_status_live_epochs(const nas_status_live *l) {
    return l->epochs;
}

double nas_status_live_rate(const nas_status_live *l) {
    double h = (double)(l->last_ms - l->first_ms) / 3600000.0;
    return l->n_search >= 2 && h > 0 ? (double)(l->n_search - 1) / h : 0.0;
}

static void counts_add(nas_store_counts *a, const nas_store_counts *b) {
    a->queued += b->queued;
    a->leased += b->leased;
    a->done += b->done;
    a->failed += b->failed;
}

/* Both stages' counts over [lo, hi), added to out[2]. */
static int count_range(nas_store *st, int64_t lo, int64_t hi, nas_store_counts *out, char *err) {
    for (int stage = NAS_STORE_STAGE_SEARCH; stage <= NAS_STORE_STAGE_FINAL; stage++) {
        nas_store_counts k;
        int rc = nas_store_task_counts_range(st, stage, lo, hi, &k, err);
        if (rc < 0) return rc;
        counts_add(&out[stage], &k);
    }
    return NAS_OK;
}

int nas_status_live_counts(nas_status_live *l, nas_store *st, int64_t oldest_live,
                           nas_store_counts *search, nas_store_counts *final, char *err) {
    /* Without a live task every task up to the last result is finished. */
    int64_t end = oldest_live != INT64_MAX ? oldest_live : l->max_task + 1;
    if (end > l->prefix_end) {
        nas_store_counts more[2] = {{0}, {0}};
        int rc = count_range(st, l->prefix_end, end, more, err);
        if (rc < 0) return rc;
        counts_add(&l->prefix[0], &more[0]);
        counts_add(&l->prefix[1], &more[1]);
        l->prefix_end = end;
    }
    nas_store_counts k[2] = {l->prefix[0], l->prefix[1]};
    int rc = count_range(st, l->prefix_end, INT64_MAX, k, err);
    if (rc < 0) return rc;
    *search = k[NAS_STORE_STAGE_SEARCH];
    *final = k[NAS_STORE_STAGE_FINAL];
    return NAS_OK;
}

void nas_status_live_json_best(nas_status_live *l, nas_store *st, nas_json_buf *b) {
    nas_json_buf_key(b, "best");
    if (l->has_best && !l->best_json) {
        nas_store_record *r = NULL;
        char err[NAS_ERR_LEN];
        int n = nas_store_result_get(st, l->best_task, &r, err);
        if (n > 0) {
            nas_json_buf one;
            nas_json_buf_init(&one);
            nas_status_json_record(&one, r);
            l->best_json = nas_json_buf_take(&one, NULL);
        }
        nas_store_records_free(r, n > 0 ? n : 0);
    }
    if (l->best_json)
        nas_json_buf_raw(b, l->best_json, strlen(l->best_json));
    else
        nas_json_buf_null(b);
}

void nas_status_live_json_fidelity(nas_status_live *l, nas_json_buf *b, int64_t epochs_budget,
                                   double wall_budget_s, int64_t created_ms, int64_t now_wall_ms) {
    /* The correlations are computed again only when results came since. */
    if (l->ranks_version != l->version) {
        char err[NAS_ERR_LEN];
        nas_fidelity_ranks_fini(&l->ranks);
        l->ranks_ok = nas_fidelity_acc_ranks(l->acc, &l->ranks, err) == NAS_OK;
        l->ranks_version = l->version;
    }
    nas_status_json_fidelity_of(b, l->epochs, epochs_budget, wall_budget_s, created_ms,
                                now_wall_ms, l->stopped, l->ranks_ok ? &l->ranks : NULL);
}
