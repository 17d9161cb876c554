/*
 * nasctl_fidelity.c - `nasctl curve` and `nasctl fidelity` (nasctl_fidelity.h).
 *
 * Both read a campaign store opened read-only, so they work while the
 * master runs (WAL readers see the last commit).  Curves are recorded with
 * a task's result (docs/SCHEMA.md, task.curve): a task still training has
 * none yet, and `curve` says so rather than printing an empty table.
 */
#include "master/nasctl_fidelity.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"
#include "master/fidelity_rank.h"
#include "master/store.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fid_args {
    const char *db;
    const char *task; /* curve: the one positional argument */
    int json;
} fid_args;

static void print_json(nas_json_buf *b) {
    char *s = nas_json_buf_take(b, NULL);
    if (s)
        printf("%s\n", s);
    else
        fprintf(stderr, "nasctl: out of memory\n");
    nas_free(s);
}

// ---- curve --------------------------------------------------------------------------------------

/* The task's result among its stage's results, or NULL when it has none. */
static const nas_store_record *find_record(const nas_store_record *r, int n, int64_t id) {
    for (int i = 0; i < n; i++)
        if (r[i].task_id == id) return &r[i];
    return NULL;
}

static void curve_json(const nas_store_task_info *t, const nas_store_record *rec) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "task");
    nas_json_buf_i64(&b, t->id);
    nas_json_buf_key(&b, "stage");
    nas_json_buf_str(&b, nas_store_stage_name(t->stage));
    nas_json_buf_key(&b, "state");
    nas_json_buf_str(&b, nas_store_task_state_name(t->state));
    nas_json_buf_key(&b, "text");
    nas_json_buf_str(&b, t->arch_text);
    nas_json_buf_key(&b, "epochs");
    nas_json_buf_i64(&b, t->fidelity.epochs);
    nas_json_buf_key(&b, "curve");
    nas_json_buf_arr_begin(&b);
    for (int i = 0; rec && i < rec->n_curve; i++)
        nas_json_buf_f32(&b, rec->curve[i]);
    nas_json_buf_arr_end(&b);
    nas_json_buf_key(&b, "accuracy");
    nas_json_buf_f64(&b, rec ? rec->accuracy : NAN);
    nas_json_buf_key(&b, "test_accuracy");
    nas_json_buf_f64(&b, rec ? rec->test_accuracy : NAN);
    nas_json_buf_obj_end(&b);
    print_json(&b);
}

static void curve_text(const nas_store_task_info *t, const nas_store_record *rec) {
    char fid[128];
    nas_fidelity_label(&t->fidelity, fid, sizeof fid);
    printf("task %" PRId64 " (%s, %s; %s): %s\n", t->id, nas_store_stage_name(t->stage),
           nas_store_task_state_name(t->state), fid, t->arch_text);
    if (!rec) {
        printf("no curve yet: a task's curve is recorded with its result\n");
        return;
    }
    printf("EPOCH  VAL_ACC\n");
    for (int i = 0; i < rec->n_curve; i++)
        printf("%5d  %.4f\n", i + 1, rec->curve[i]);
    printf("final validation accuracy %.4f", rec->accuracy);
    if (!isnan(rec->test_accuracy)) printf(", test accuracy %.4f", rec->test_accuracy);
    printf("\n");
}

static int cmd_curve(const fid_args *a, nas_store *st) {
    char *end = NULL;
    long long id = a->task ? strtoll(a->task, &end, 10) : 0;
    if (!a->task || *end || id < 1) {
        fprintf(stderr,
                "nasctl curve: a TASK id (a positive integer, as `nasctl history` shows) "
                "is required%s%s%s\n",
                a->task ? ", got '" : "", a->task ? a->task : "", a->task ? "'" : "");
        return 2;
    }
    char err[NAS_ERR_LEN];
    nas_store_task_info t;
    int rc = nas_store_task_get(st, id, &t, err);
    if (rc == NAS_ENOTFOUND) {
        fprintf(stderr, "nasctl curve: %s has no task %lld\n", a->db, id);
        return 1;
    }
    nas_store_record *r = NULL;
    int n = rc < 0 ? rc : nas_store_history(st, t.stage, &r, err);
    if (n < 0) {
        fprintf(stderr, "nasctl curve: %s\n", err);
        return 1;
    }
    const nas_store_record *rec = find_record(r, n, id);
    if (a->json)
        curve_json(&t, rec);
    else
        curve_text(&t, rec);
    nas_store_records_free(r, n);
    return 0;
}

// ---- fidelity -----------------------------------------------------------------------------------

static void ranks_json(const nas_fidelity_ranks *fr) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_fidelity_ranks_json(&b, fr);
    print_json(&b);
}

/* One table row: the figures, or "-" where undefined. */
static void print_report(const char *what, const nas_rank_report *r) {
    char rho[16] = "-", tau[16] = "-";
    if (!isnan(r->rho)) snprintf(rho, sizeof rho, "%+.3f", r->rho);
    if (!isnan(r->tau)) snprintf(tau, sizeof tau, "%+.3f", r->tau);
    printf("  %-28s %5d  %8s  %8s%s\n", what, r->n, rho, tau,
           r->n > 0 && r->n < NAS_RANKCORR_MIN_N ? "  (too few to judge)" : "");
}

static void ranks_text(const nas_fidelity_ranks *fr) {
    printf("fidelities (results at each):\n");
    for (int i = 0; i < fr->n_groups; i++) {
        char fid[128];
        nas_fidelity_label(&fr->groups[i].fidelity, fid, sizeof fid);
        printf("  [%d] %-6s %-40s %d\n", i, nas_store_stage_name(fr->groups[i].stage), fid,
               fr->groups[i].n);
    }
    if (fr->n_pairs == 0) {
        printf("no two fidelities to compare yet (the final stage has not run)\n");
        return;
    }
    int warned = 0;
    printf("rank correlation of the same architectures at two fidelities:\n");
    printf("  %-28s %5s  %8s  %8s\n", "FROM -> TO", "N", "SPEARMAN", "KENDALL");
    for (int i = 0; i < fr->n_pairs; i++) {
        const nas_fidelity_pair *p = &fr->pairs[i];
        char what[64];
        snprintf(what, sizeof what, "[%d] -> [%d] validation", p->from, p->to);
        print_report(what, &p->val);
        if (p->test.n > 0) {
            snprintf(what, sizeof what, "[%d] -> [%d] test", p->from, p->to);
            print_report(what, &p->test);
        }
        warned |= p->val.weak;
    }
    for (int i = 0; i < fr->n_pairs; i++)
        if (fr->pairs[i].val.weak)
            printf("warning: fidelity [%d] ranks architectures poorly against [%d] (Spearman "
                   "%.2f < %.2f over %d architectures): its best are not reliably the best at "
                   "[%d]; consider more epochs or a larger subset at [%d] (docs/CAMPAIGN.md)\n",
                   fr->pairs[i].from, fr->pairs[i].to, fr->pairs[i].val.rho, NAS_RANKCORR_WARN_RHO,
                   fr->pairs[i].val.n, fr->pairs[i].to, fr->pairs[i].from);
    if (!warned)
        printf("no warning (threshold: Spearman below %.2f with %d or more pairs)\n",
               NAS_RANKCORR_WARN_RHO, NAS_RANKCORR_MIN_N);
}

static int cmd_fidelity(const fid_args *a, nas_store *st) {
    char err[NAS_ERR_LEN];
    nas_fidelity_ranks fr;
    int rc = nas_fidelity_ranks_read(st, &fr, err);
    if (rc < 0) {
        fprintf(stderr, "nasctl fidelity: %s\n", err);
        nas_fidelity_ranks_fini(&fr);
        return 1;
    }
    if (a->json)
        ranks_json(&fr);
    else
        ranks_text(&fr);
    nas_fidelity_ranks_fini(&fr);
    return 0;
}

int nas_nasctl_fidelity(const char *cmd, const char *db, int json, const char *task) {
    fid_args a = {.db = db, .task = task, .json = json};
    int rc;
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    if (nas_store_open_ro(&st, a.db, err) < 0) {
        fprintf(stderr, "nasctl %s: %s\n", cmd, err);
        return 1;
    }
    rc = strcmp(cmd, "curve") == 0 ? cmd_curve(&a, st) : cmd_fidelity(&a, st);
    nas_store_close(&st);
    return rc;
}
