/*
 * fidelity_rank.c - rank correlation between a campaign's fidelities,
 * from its store (fidelity_rank.h).
 *
 * The figures come from an accumulator of every result's group,
 * architecture and accuracies: filled from a store by two reads (every
 * done task with its fidelity, every result, joined on the task id in
 * memory) for nasctl, or kept up to date result by result by the live
 * master (status_live.c), so that its status document never reads the
 * history again.  Both go through nas_fidelity_acc_add and
 * nas_fidelity_acc_ranks, so their figures cannot differ.
 */
#include "master/fidelity_rank.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN 1024

void nas_fidelity_ranks_fini(nas_fidelity_ranks *r) {
    nas_free(r->groups);
    nas_free(r->pairs);
    memset(r, 0, sizeof *r);
}

void nas_fidelity_label(const nas_fidelity *f, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "%d epoch%s", f->epochs, f->epochs == 1 ? "" : "s");
    if (n < cap && f->resolution) n += (size_t)snprintf(buf + n, cap - n, ", %d px", f->resolution);
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, ", F=%d N=%d", f->channels, f->cells);
    if (n < cap && f->train_subset) snprintf(buf + n, cap - n, ", subset %d", f->train_subset);
}

/* What tells fidelity groups apart: the fidelity's JSON without the
 * fields that do not change what is measured. */
static int group_key(const nas_fidelity *f, int stage, char *key) {
    nas_fidelity g = *f;
    g.seed = 0;
    g.test = 0;
    g.time_limit_s = 0;
    key[0] = (char)('0' + stage);
    return nas_store_fidelity_to_json(&g, key + 1, KEY_LEN - 1);
}

// ---- the accumulator ---------------------------------------------------------------------------

/* One fidelity group: its key, the lowest task id in it (groups are
 * ordered by first appearance in task order, whatever order results come
 * in), and its observations. */
typedef struct acc_group {
    char key[KEY_LEN];
    nas_fidelity_group g;
    int64_t first_task;
    nas_rank_obs *val, *test;
    int n_val, n_test, cap_val, cap_test;
} acc_group;

struct nas_fidelity_acc {
    acc_group *groups;
    int n_groups, cap_groups;
    int last; /* the group of the last result: consecutive results mostly share it */
    /* ... and the fidelity and stage it came with: the same bytes need no
     * key, whose JSON formatting was most of a 100,000-result read. */
    int has_last;
    int last_stage;
    nas_fidelity last_fid;
};

int nas_fidelity_acc_new(nas_fidelity_acc **out) {
    *out = nas_calloc(1, sizeof **out);
    return *out ? NAS_OK : NAS_ENOMEM;
}

void nas_fidelity_acc_free(nas_fidelity_acc **ap) {
    if (!ap || !*ap) return;
    nas_fidelity_acc *a = *ap;
    for (int i = 0; i < a->n_groups; i++) {
        nas_free(a->groups[i].val);
        nas_free(a->groups[i].test);
    }
    nas_free(a->groups);
    nas_free(a);
    *ap = NULL;
}

static int push_obs(nas_rank_obs **arr, int *n, int *cap, uint64_t arch, double v) {
    if (*n == *cap) {
        int grown_cap = *cap ? *cap * 2 : 64;
        nas_rank_obs *grown = nas_realloc(*arr, (size_t)grown_cap * sizeof **arr);
        if (!grown) return NAS_ENOMEM;
        *arr = grown;
        *cap = grown_cap;
    }
    (*arr)[(*n)++] = (nas_rank_obs){arch, v};
    return NAS_OK;
}

static int remember(nas_fidelity_acc *a, int g, int stage, const nas_fidelity *f) {
    a->has_last = 1;
    a->last_stage = stage;
    a->last_fid = *f;
    return a->last = g;
}

static int find_group(nas_fidelity_acc *a, int64_t task_id, int stage, const nas_fidelity *f,
                      char *err) {
    if (a->has_last && a->last_stage == stage && memcmp(&a->last_fid, f, sizeof *f) == 0)
        return a->last;
    a->has_last = 0;
    char key[KEY_LEN];
    if (group_key(f, stage, key) < 0)
        return nas_set_err(err, NAS_ERANGE, "fidelity ranks: task %lld's fidelity is too long "
                                            "to compare",
                           (long long)task_id);
    int gi = a->last < a->n_groups && strcmp(a->groups[a->last].key, key) == 0 ? a->last : 0;
    while (gi < a->n_groups && strcmp(a->groups[gi].key, key) != 0)
        gi++;
    if (gi < a->n_groups) return remember(a, gi, stage, f);
    if (a->n_groups == a->cap_groups) {
        int cap = a->cap_groups ? a->cap_groups * 2 : 4;
        acc_group *grown = nas_realloc(a->groups, (size_t)cap * sizeof *grown);
        if (!grown) return nas_set_err(err, NAS_ENOMEM, "fidelity ranks: out of memory");
        a->groups = grown;
        a->cap_groups = cap;
    }
    acc_group *g = &a->groups[a->n_groups];
    memset(g, 0, sizeof *g);
    memcpy(g->key, key, KEY_LEN);
    g->g = (nas_fidelity_group){stage, *f, 0};
    g->first_task = task_id;
    return remember(a, a->n_groups++, stage, f);
}

int nas_fidelity_acc_add(nas_fidelity_acc *a, int64_t task_id, int stage, const nas_fidelity *f,
                         uint64_t arch, double val, double test, char *err) {
    if (stage != NAS_STORE_STAGE_SEARCH && stage != NAS_STORE_STAGE_FINAL) return NAS_OK;
    int gi = find_group(a, task_id, stage, f, err);
    if (gi < 0) return gi;
    acc_group *g = &a->groups[gi];
    /* The group keeps the fidelity of its first task, as a read in task
     * order would. */
    if (task_id < g->first_task) {
        g->first_task = task_id;
        g->g.fidelity = *f;
    }
    g->g.n++;
    int rc = NAS_OK;
    if (!isnan(val)) rc = push_obs(&g->val, &g->n_val, &g->cap_val, arch, val);
    if (rc == NAS_OK && !isnan(test)) rc = push_obs(&g->test, &g->n_test, &g->cap_test, arch, test);
    return rc < 0 ? nas_set_err(err, rc, "fidelity ranks: out of memory") : NAS_OK;
}

typedef struct acc_read_ctx {
    nas_fidelity_acc *a;
    nas_fidelity_acc_each fn;
    void *ctx;
} acc_read_ctx;

/* Only a done task's result counts (as a read of the done tasks joined
 * with their results would give); fn sees every result. */
static int acc_row(void *ctx, const nas_store_result_row *r, char *err) {
    acc_read_ctx *c = ctx;
    if (c->fn) c->fn(c->ctx, r);
    if (r->state != NAS_STORE_TASK_DONE) return NAS_OK;
    return nas_fidelity_acc_add(c->a, r->task_id, r->stage, r->fidelity, r->arch_hash, r->accuracy,
                                r->test_accuracy, err);
}

int nas_fidelity_acc_read(nas_fidelity_acc *a, nas_store *st, nas_fidelity_acc_each fn, void *ctx,
                          char *err) {
    acc_read_ctx c = {a, fn, ctx};
    return nas_store_result_scan(st, acc_row, &c, err);
}

/* Group indices in report order: search groups, then final ones, each
 * by the first task id in it (an insertion sort: a campaign has a few). */
static void group_order(const acc_group *g, int n, int *order) {
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && (g[order[j - 1]].g.stage > g[i].g.stage ||
                         (g[order[j - 1]].g.stage == g[i].g.stage &&
                          g[order[j - 1]].first_task > g[i].first_task))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

int nas_fidelity_acc_ranks(const nas_fidelity_acc *a, nas_fidelity_ranks *out, char *err) {
    memset(out, 0, sizeof *out);
    int ng = a->n_groups, rc = NAS_OK;
    if (ng == 0) return NAS_OK;
    int *order = nas_malloc((size_t)ng * sizeof *order);
    out->groups = nas_calloc((size_t)ng, sizeof *out->groups);
    /* At most one pair per group and search group: n_groups^2 bounds it. */
    out->pairs = nas_calloc((size_t)ng * (size_t)ng, sizeof *out->pairs);
    if (!order || !out->groups || !out->pairs) {
        nas_free(order);
        return nas_set_err(err, NAS_ENOMEM, "fidelity ranks: out of memory");
    }
    group_order(a->groups, ng, order);
    out->n_groups = ng;
    for (int i = 0; i < ng; i++)
        out->groups[i] = a->groups[order[i]].g;
    for (int g = 0; g < ng && rc == NAS_OK; g++) {
        if (out->groups[g].stage != NAS_STORE_STAGE_SEARCH) continue;
        const acc_group *from = &a->groups[order[g]];
        for (int h = g + 1; h < ng && rc == NAS_OK; h++) {
            /* The next search fidelity (the next rung), and every final one. */
            int adjacent = out->groups[h].stage == NAS_STORE_STAGE_SEARCH && h == g + 1;
            if (!adjacent && out->groups[h].stage != NAS_STORE_STAGE_FINAL) continue;
            const acc_group *to = &a->groups[order[h]];
            nas_fidelity_pair *p = &out->pairs[out->n_pairs++];
            p->from = g;
            p->to = h;
            rc = nas_rank_compare(from->val, from->n_val, to->val, to->n_val, &p->val);
            if (rc == NAS_OK)
                rc = nas_rank_compare(from->val, from->n_val, to->test, to->n_test, &p->test);
        }
    }
    nas_free(order);
    if (rc < 0) nas_set_err(err, rc, "fidelity ranks: %s", nas_strerror(rc));
    return rc;
}

int nas_fidelity_ranks_read(nas_store *st, nas_fidelity_ranks *out, char *err) {
    memset(out, 0, sizeof *out);
    nas_fidelity_acc *a = NULL;
    if (nas_fidelity_acc_new(&a) < 0)
        return nas_set_err(err, NAS_ENOMEM, "fidelity ranks: out of memory");
    int rc = nas_fidelity_acc_read(a, st, NULL, NULL, err);
    if (rc == NAS_OK) rc = nas_fidelity_acc_ranks(a, out, err);
    nas_fidelity_acc_free(&a);
    return rc;
}

// ---- JSON ---------------------------------------------------------------------------------------

static void report_json(nas_json_buf *b, const nas_rank_report *r) {
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "n");
    nas_json_buf_i64(b, r->n);
    nas_json_buf_key(b, "spearman");
    nas_json_buf_f64(b, r->rho);
    nas_json_buf_key(b, "kendall");
    nas_json_buf_f64(b, r->tau);
    nas_json_buf_key(b, "weak");
    nas_json_buf_bool(b, r->weak);
    nas_json_buf_obj_end(b);
}

static void group_json(nas_json_buf *b, const nas_fidelity_group *g) {
    char fid[128];
    nas_fidelity_label(&g->fidelity, fid, sizeof fid);
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "stage");
    nas_json_buf_str(b, nas_store_stage_name(g->stage));
    nas_json_buf_key(b, "fidelity");
    nas_json_buf_str(b, fid);
    nas_json_buf_key(b, "results");
    nas_json_buf_i64(b, g->n);
    nas_json_buf_obj_end(b);
}

void nas_fidelity_ranks_json(nas_json_buf *b, const nas_fidelity_ranks *fr) {
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "threshold");
    nas_json_buf_f64(b, NAS_RANKCORR_WARN_RHO);
    nas_json_buf_key(b, "min_n");
    nas_json_buf_i64(b, NAS_RANKCORR_MIN_N);
    nas_json_buf_key(b, "groups");
    nas_json_buf_arr_begin(b);
    for (int i = 0; i < fr->n_groups; i++)
        group_json(b, &fr->groups[i]);
    nas_json_buf_arr_end(b);
    nas_json_buf_key(b, "pairs");
    nas_json_buf_arr_begin(b);
    for (int i = 0; i < fr->n_pairs; i++) {
        const nas_fidelity_pair *p = &fr->pairs[i];
        nas_json_buf_obj_begin(b);
        nas_json_buf_key(b, "from");
        nas_json_buf_i64(b, p->from);
        nas_json_buf_key(b, "to");
        nas_json_buf_i64(b, p->to);
        nas_json_buf_key(b, "validation");
        report_json(b, &p->val);
        nas_json_buf_key(b, "test");
        report_json(b, &p->test);
        nas_json_buf_obj_end(b);
    }
    nas_json_buf_arr_end(b);
    nas_json_buf_obj_end(b);
}
