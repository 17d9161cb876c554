/*
 * fidelity_rank.c - rank correlation between a campaign's fidelities,
 * from its store (fidelity_rank.h).
 *
 * Two reads (every done task with its fidelity, every result) joined on
 * the task id in memory: nasctl runs this now and then, and a campaign's
 * few thousand rows take milliseconds.
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

static int cmp_record_task(const void *pa, const void *pb) {
    const nas_store_record *a = pa, *b = pb;
    return a->task_id < b->task_id ? -1 : a->task_id > b->task_id;
}

/* Sort the tasks into groups: gid[i] for task i, the groups in out. */
static int assign_groups(const nas_store_task_info *t, int nt, int *gid, nas_fidelity_ranks *out,
                         char *err) {
    char(*keys)[KEY_LEN] = nt ? nas_malloc((size_t)nt * KEY_LEN) : NULL;
    out->groups = nt ? nas_calloc((size_t)nt, sizeof *out->groups) : NULL;
    if (nt && (!keys || !out->groups)) {
        nas_free(keys);
        return nas_set_err(err, NAS_ENOMEM, "fidelity ranks: out of memory");
    }
    /* Search groups first, each stage in order of first appearance. */
    for (int stage = NAS_STORE_STAGE_SEARCH; stage <= NAS_STORE_STAGE_FINAL; stage++)
        for (int i = 0; i < nt; i++) {
            if (t[i].stage != stage) continue;
            char key[KEY_LEN];
            if (group_key(&t[i].fidelity, stage, key) < 0) {
                nas_free(keys);
                return nas_set_err(err, NAS_ERANGE,
                                   "fidelity ranks: task %lld's fidelity is "
                                   "too long to compare",
                                   (long long)t[i].id);
            }
            int g = 0;
            while (g < out->n_groups && strcmp(keys[g], key) != 0)
                g++;
            if (g == out->n_groups) {
                memcpy(keys[g], key, KEY_LEN);
                out->groups[g] = (nas_fidelity_group){stage, t[i].fidelity, 0};
                out->n_groups++;
            }
            gid[i] = g;
        }
    nas_free(keys);
    return NAS_OK;
}

/* The results of group g as observations, test accuracy or validation. */
static int group_obs(const nas_store_task_info *t, const nas_store_record *const *rec, int nt,
                     const int *gid, int g, int test, nas_rank_obs *obs) {
    int n = 0;
    for (int i = 0; i < nt; i++) {
        if (gid[i] != g || !rec[i]) continue;
        double v = test ? rec[i]->test_accuracy : rec[i]->accuracy;
        if (!isnan(v)) obs[n++] = (nas_rank_obs){t[i].arch_hash, v};
    }
    return n;
}

static int add_pair(nas_fidelity_ranks *out, const nas_store_task_info *t,
                    const nas_store_record *const *rec, int nt, const int *gid, int from, int to,
                    nas_rank_obs *a, nas_rank_obs *b) {
    nas_fidelity_pair *p = &out->pairs[out->n_pairs++];
    p->from = from;
    p->to = to;
    int na = group_obs(t, rec, nt, gid, from, 0, a);
    int nb = group_obs(t, rec, nt, gid, to, 0, b);
    int rc = nas_rank_compare(a, na, b, nb, &p->val);
    if (rc == NAS_OK) {
        nb = group_obs(t, rec, nt, gid, to, 1, b);
        rc = nas_rank_compare(a, na, b, nb, &p->test);
    }
    return rc;
}

int nas_fidelity_ranks_read(nas_store *st, nas_fidelity_ranks *out, char *err) {
    memset(out, 0, sizeof *out);
    nas_store_task_info *t = NULL;
    nas_store_record *r = NULL;
    const nas_store_record **rec = NULL;
    int *gid = NULL;
    nas_rank_obs *a = NULL, *b = NULL;
    int nr = 0, rc;
    int nt = nas_store_task_list(st, NAS_STORE_TASK_DONE, NAS_STORE_STAGE_ANY, &t, err);
    if (nt < 0) return nt;
    nr = nas_store_history(st, NAS_STORE_STAGE_ANY, &r, err);
    if (nr < 0) {
        rc = nr;
        nr = 0;
        goto done;
    }
    size_t m = nt > 0 ? (size_t)nt : 1;
    rec = nas_calloc(m, sizeof *rec);
    gid = nas_calloc(m, sizeof *gid);
    a = nas_malloc(m * sizeof *a);
    b = nas_malloc(m * sizeof *b);
    if (!rec || !gid || !a || !b) {
        rc = nas_set_err(err, NAS_ENOMEM, "fidelity ranks: out of memory");
        goto done;
    }
    /* Tasks come in id order: sort the results the same way and merge. */
    if (nr > 0) qsort(r, (size_t)nr, sizeof *r, cmp_record_task);
    for (int i = 0, j = 0; i < nt && j < nr;) {
        if (t[i].id < r[j].task_id)
            i++;
        else if (t[i].id > r[j].task_id)
            j++;
        else
            rec[i++] = &r[j++];
    }
    rc = assign_groups(t, nt, gid, out, err);
    if (rc < 0) goto done;
    /* At most one pair per group and search group: n_groups^2 bounds it. */
    out->pairs = out->n_groups
                     ? nas_calloc((size_t)out->n_groups * (size_t)out->n_groups, sizeof *out->pairs)
                     : NULL;
    if (out->n_groups && !out->pairs) {
        rc = nas_set_err(err, NAS_ENOMEM, "fidelity ranks: out of memory");
        goto done;
    }
    for (int g = 0; g < out->n_groups && rc == NAS_OK; g++) {
        if (out->groups[g].stage != NAS_STORE_STAGE_SEARCH) continue;
        for (int h = g + 1; h < out->n_groups && rc == NAS_OK; h++) {
            /* The next search fidelity (the next rung), and every final one. */
            int adjacent = out->groups[h].stage == NAS_STORE_STAGE_SEARCH && h == g + 1;
            if (adjacent || out->groups[h].stage == NAS_STORE_STAGE_FINAL)
                rc = add_pair(out, t, rec, nt, gid, g, h, a, b);
        }
    }
    for (int i = 0; i < nt; i++)
        if (rec[i]) out->groups[gid[i]].n++;
    if (rc < 0) nas_set_err(err, rc, "fidelity ranks: %s", nas_strerror(rc));
done:
    nas_free(t);
    nas_store_records_free(r, nr);
    nas_free(rec);
    nas_free(gid);
    nas_free(a);
    nas_free(b);
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
