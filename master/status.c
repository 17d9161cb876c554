/*
 * status.c - the status document from a database, and its rendering for
 * people (status.h).  Reading only: nasctl opens the store read-only and
 * WAL mode gives it a consistent snapshot while a master writes.
 */
#include "master/status.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/json.h"
#include "master/status_fidelity.h"
#include "master/status_live.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- from the database -----------------------------------------------------------------------

/* nasctl has no campaign file, only the database: the campaign's
 * canonical identity lines carry the strategy name and the budget. */
void nas_status_canonical_value(const char *canon, const char *key, char *out, size_t cap) {
    out[0] = 0;
    size_t kl = strlen(key);
    for (const char *p = canon; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n > kl + 1 && strncmp(p, key, kl) == 0 && p[kl] == ':') {
            const char *v = p + kl + 1;
            while (*v == ' ')
                v++;
            size_t vn = n - (size_t)(v - p);
            snprintf(out, cap, "%.*s", (int)(vn < cap ? vn : cap - 1), v);
            return;
        }
        p = eol ? eol + 1 : NULL;
    }
}

void nas_status_json_record(nas_json_buf *b, const nas_store_record *r) {
    nas_status_json_record_status(b, r, NULL);
}

void nas_status_json_record_status(nas_json_buf *b, const nas_store_record *r,
                                   const char *status) {
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "seq");
    nas_json_buf_i64(b, r->seq);
    nas_json_buf_key(b, "task");
    nas_json_buf_i64(b, r->task_id);
    nas_json_buf_key(b, "stage");
    nas_json_buf_str(b, nas_store_stage_name(r->stage));
    nas_json_buf_key(b, "arch");
    nas_json_buf_str(b, r->arch_text);
    // Hashes are unsigned 64-bit: written as such, never as a negative int64.
    nas_json_buf_key(b, "hash");
    nas_json_buf_u64(b, r->arch_hash);
    nas_json_buf_key(b, "accuracy");
    nas_json_buf_f64(b, r->accuracy);
    // A search result has no test accuracy: null, not NaN (which is not JSON).
    nas_json_buf_key(b, "test_accuracy");
    if (isnan(r->test_accuracy))
        nas_json_buf_null(b);
    else
        nas_json_buf_f64(b, r->test_accuracy);
    nas_json_buf_key(b, "params");
    nas_json_buf_i64(b, r->params);
    nas_json_buf_key(b, "macs");
    nas_json_buf_i64(b, r->macs);
    nas_json_buf_key(b, "seconds");
    nas_json_buf_f64(b, r->seconds);
    // Worker names come from the network: the writer escapes them.
    nas_json_buf_key(b, "worker");
    nas_json_buf_str(b, r->worker);
    nas_json_buf_key(b, "attempt");
    nas_json_buf_i64(b, r->attempt);
    // Evolution's children: the parent's hash and what changed (null for others).
    char lineage[256];
    nas_status_lineage(r, lineage, sizeof lineage);
    nas_json_buf_key(b, "parent");
    if (r->has_parent)
        nas_json_buf_u64(b, r->parent_hash);
    else
        nas_json_buf_null(b);
    nas_json_buf_key(b, "lineage");
    nas_json_buf_str(b, r->has_parent ? lineage : NULL);
    if (status) {
        nas_json_buf_key(b, "status");
        nas_json_buf_str(b, status);
    }
    nas_json_buf_obj_end(b);
}

void nas_status_json_commits(nas_json_buf *b, const nas_store_commit_stats *c) {
    nas_json_buf_key(b, "commits");
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "count");
    nas_json_buf_i64(b, c->count);
    nas_json_buf_key(b, "sum_seconds");
    nas_json_buf_f64(b, c->sum_s);
    nas_json_buf_key(b, "max_seconds");
    nas_json_buf_f64(b, c->max_s);
    nas_json_buf_key(b, "buckets");
    nas_json_buf_arr_begin(b);
    for (int i = 0; i < NAS_STORE_COMMIT_BUCKETS; i++) {
        nas_json_buf_arr_begin(b);
        nas_json_buf_f64(b, nas_store_commit_bounds_s[i]);
        nas_json_buf_i64(b, c->le[i]);
        nas_json_buf_arr_end(b);
    }
    nas_json_buf_arr_end(b);
    nas_json_buf_obj_end(b);
}

void nas_status_lineage(const nas_store_record *r, char *buf, size_t cap) {
    buf[0] = '\0';
    if (!r->has_parent) return;
    nas_genome p, c;
    if (nas_genome_parse(r->parent_text, strlen(r->parent_text), &p, NULL) < 0 ||
        nas_genome_parse(r->arch_text, strlen(r->arch_text), &c, NULL) < 0 ||
        nas_genome_lineage(&p, &c, buf, cap) < 0)
        snprintf(buf, cap, "child of %016" PRIx64, r->parent_hash);
}

/* Workers as the master last recorded them.  A worker counts as busy if a
 * task is leased to it in the store; epochs are only known to a live
 * master and are reported as 0. */
static void json_workers(nas_json_buf *b, nas_store *st, int64_t now, char *err) {
    nas_store_worker_info *w = NULL;
    int n = nas_store_worker_list(st, &w, err);
    nas_store_task_info *leased = NULL;
    int nl = nas_store_task_list(st, NAS_STORE_TASK_LEASED, NAS_STORE_STAGE_ANY, &leased, err);
    nas_json_buf_key(b, "dispatcher");
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "workers");
    nas_json_buf_arr_begin(b);
    for (int i = 0; i < n; i++) {
        int64_t task = -1;
        for (int j = 0; j < nl; j++)
            if (strcmp(leased[j].worker, w[i].name) == 0) task = leased[j].id;
        nas_json_buf_obj_begin(b);
        nas_json_buf_key(b, "name");
        nas_json_buf_str(b, w[i].name);
        nas_json_buf_key(b, "host");
        nas_json_buf_str(b, w[i].host);
        nas_json_buf_key(b, "cores");
        nas_json_buf_i64(b, w[i].cores);
        nas_json_buf_key(b, "state");
        nas_json_buf_str(b, task >= 0 ? "busy" : "seen");
        nas_json_buf_key(b, "task");
        if (task >= 0)
            nas_json_buf_i64(b, task);
        else
            nas_json_buf_null(b);
        nas_json_buf_key(b, "epoch");
        nas_json_buf_i64(b, 0);
        nas_json_buf_key(b, "epochs");
        nas_json_buf_i64(b, 0);
        nas_json_buf_key(b, "tasks_done");
        nas_json_buf_i64(b, w[i].tasks_done);
        nas_json_buf_key(b, "last_seen_ms_ago");
        nas_json_buf_i64(b, now - w[i].last_seen_ms);
        nas_json_buf_obj_end(b);
    }
    nas_json_buf_arr_end(b);
    nas_json_buf_obj_end(b);
    nas_free(w);
    nas_free(leased);
}

/* The weight store as the database knows it: the index rows, one per
 * architecture with a file, and their bytes.  What is in memory, hits and
 * misses exist only inside a running master, so they are null here and
 * "live" is false; a database without an index answers null. */
static void json_weights(nas_json_buf *b, nas_store *st) {
    int64_t archs = 0, bytes = 0;
    char err[NAS_ERR_LEN] = "";
    nas_json_buf_key(b, "weights");
    if (nas_store_weights_totals(st, &archs, &bytes, err) < 0) {
        nas_json_buf_null(b);
        return;
    }
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "live");
    nas_json_buf_bool(b, 0);
    nas_json_buf_key(b, "bytes_disk");
    nas_json_buf_i64(b, bytes);
    nas_json_buf_key(b, "archs_disk");
    nas_json_buf_i64(b, archs);
    nas_json_buf_key(b, "bytes_memory");
    nas_json_buf_null(b);
    nas_json_buf_key(b, "archs_memory");
    nas_json_buf_null(b);
    nas_json_buf_obj_end(b);
}

/* The same keys, in the same order, as nas_campaign_status_json(), so that
 * nas_status_print() and scripts reading --json need not care where the
 * document came from; "source" tells them.  The figures that summarize the
 * history are the live master's (status_live.h), built from one light read
 * of the results: the same code gives both documents their numbers, and a
 * status of 100,000 results no longer reads each one whole. */
char *nas_status_from_store(nas_store *st, int64_t now_wall_ms, char *err) {
    nas_store_campaign_info info;
    if (nas_store_campaign_get(st, &info, err) < 0) return NULL;
    nas_status_live *live = NULL;
    nas_store_counts s = {0}, fin = {0};
    if (nas_status_live_open(&live, st, err) < 0 ||
        nas_status_live_counts(live, st, INT64_MAX, &s, &fin, err) < 0) {
        nas_status_live_free(&live);
        nas_store_campaign_info_fini(&info);
        return NULL;
    }
    char strategy[64], budget[32];
    nas_status_canonical_value(info.canonical, "strategy.name", strategy, sizeof strategy);
    nas_status_canonical_value(info.canonical, "budget.evaluations", budget, sizeof budget);
    static const char *const phases[] = {"search", "final", "done"};
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "source");
    nas_json_buf_str(&b, "database");
    nas_json_buf_key(&b, "campaign");
    nas_json_buf_str(&b, info.name);
    nas_json_buf_key(&b, "strategy");
    nas_json_buf_str(&b, strategy);
    nas_json_buf_key(&b, "phase");
    nas_json_buf_str(&b, info.state >= 0 && info.state <= 2 ? phases[info.state] : "unknown");
    nas_json_buf_key(&b, "db");
    nas_json_buf_str(&b, nas_store_path(st));
    nas_json_buf_key(&b, "budget");
    nas_json_buf_i64(&b, atoll(budget));
    nas_json_buf_key(&b, "done");
    nas_json_buf_i64(&b, s.done);
    nas_json_buf_key(&b, "queued");
    nas_json_buf_i64(&b, s.queued + fin.queued);
    nas_json_buf_key(&b, "in_flight");
    nas_json_buf_i64(&b, s.leased + fin.leased);
    nas_json_buf_key(&b, "failed");
    nas_json_buf_i64(&b, s.failed + fin.failed);
    nas_json_buf_key(&b, "final_done");
    nas_json_buf_i64(&b, fin.done);
    /* The log's last breaker event: a halt no master has lifted since. */
    char halt[NAS_STORE_REASON_MAX];
    int halted = nas_store_halted(st, halt, sizeof halt, err);
    if (halted > 0) {
        nas_json_buf_key(&b, "halted");
        nas_json_buf_str(&b, halt);
    }
    nas_json_buf_key(&b, "evaluations_per_hour");
    nas_json_buf_f64(&b, nas_status_live_rate(live));
    /* The predictor's correlation lives in the strategy blob, which only a
     * master (with the campaign's strategy code and config) interprets. */
    nas_json_buf_key(&b, "rank_correlation");
    nas_json_buf_null(&b);
    nas_status_live_json_best(live, st, &b);
    json_workers(&b, st, now_wall_ms, err);
    json_weights(&b, st);
    nas_status_live_json_fidelity(live, &b, -1, -1, info.created_ms, now_wall_ms);
    nas_json_buf_obj_end(&b);
    nas_status_live_free(&live);
    nas_store_campaign_info_fini(&info);
    char *out = nas_json_buf_take(&b, NULL);
    if (!out) nas_set_err(err, NAS_ENOMEM, "status: out of memory");
    return out;
}

// ---- for people --------------------------------------------------------------------------------

/* Lenient accessors: the document may come from an older or newer master,
 * and a missing field prints as "?" or a default rather than failing. */
static const char *str_of(const nas_json *o, const char *k) {
    const nas_json *v = nas_json_get(o, k);
    return v && v->type == NAS_JSON_STRING ? v->str : "?";
}

static double num_of(const nas_json *o, const char *k, double dflt) {
    const nas_json *v = nas_json_get(o, k);
    return v && v->type == NAS_JSON_NUMBER ? v->number : dflt;
}

/* What a worker computes on, under its line: only a live master knows it,
 * and a worker older than the report sends empty strings. */
static void print_engine(const nas_json *e, double cores, FILE *f) {
    const char *blas = str_of(e, "blas");
    if (!e || e->type != NAS_JSON_OBJECT || !strcmp(blas, "?") || !blas[0]) return;
    fprintf(f, "    %s, %s kernels, CPU %s, %.0f BLAS thread(s), %.0f core(s)", str_of(e, "blas"),
            str_of(e, "blas_kernels"), str_of(e, "isa"), num_of(e, "blas_threads", 0), cores);
    // Which kernels run the products (absent from workers older than the field).
    const char *gemm = str_of(e, "gemm");
    if (strcmp(gemm, "?") && gemm[0]) fprintf(f, ", GEMMs on %s", gemm);
    fputc('\n', f);
}

/* One line per worker, in the order the document lists them. */
static void print_workers(const nas_json *doc, FILE *f) {
    const nas_json *ws = nas_json_get(nas_json_get(doc, "dispatcher"), "workers");
    size_t n = ws && ws->type == NAS_JSON_ARRAY ? ws->len : 0;
    fprintf(f, "workers (%zu):\n", n);
    if (n)
        fprintf(f, "  %-24s %-20s %-10s %-8s %-7s %6s %10s\n", "NAME", "HOST", "STATE", "TASK",
                "EPOCH", "DONE", "LAST SEEN");
    for (size_t i = 0; i < n; i++) {
        const nas_json *w = nas_json_at(ws, i);
        char task[32] = "-", epoch[32] = "-";
        double t = num_of(w, "task", -1);
        if (t >= 0) snprintf(task, sizeof task, "%.0f", t);
        if (num_of(w, "epochs", 0) > 0)
            snprintf(epoch, sizeof epoch, "%.0f/%.0f", num_of(w, "epoch", 0),
                     num_of(w, "epochs", 0));
        fprintf(f, "  %-24s %-20s %-10s %-8s %-7s %6.0f %9.1fs\n", str_of(w, "name"),
                str_of(w, "host"), str_of(w, "state"), task, epoch, num_of(w, "tasks_done", 0),
                num_of(w, "last_seen_ms_ago", 0) / 1000.0);
        print_engine(nas_json_get(w, "engine"), num_of(w, "cores", 0), f);
    }
}

/* The master's protection, when the document says (a document read from
 * a database does not: only a live master knows its sockets). */
static void print_security(const nas_json *doc, FILE *f) {
    const nas_json *sec = nas_json_get(doc, "security");
    const nas_json *ins = nas_json_get(doc, "insecure");
    if (!sec || sec->type != NAS_JSON_OBJECT) return;
    const nas_json *curve = nas_json_get(sec, "curve");
    if (ins && ins->type == NAS_JSON_BOOL && ins->boolean)
        fprintf(f, "security      INSECURE: plaintext sockets reachable from other machines "
                   "(--insecure)\n");
    else if (curve && curve->type == NAS_JSON_BOOL && curve->boolean)
        fprintf(f, "security      CurveZMQ, %.0f authorized key(s), %.0f handshake(s) refused\n",
                num_of(sec, "authorized_keys", 0), num_of(sec, "handshakes_rejected", 0));
    else
        fprintf(f, "security      plaintext, loopback only\n");
}

/* Render either document.  Anything that parses as JSON but is not a
 * status document is refused rather than printed as zeros. */
int nas_status_print(const char *json, FILE *f, char *err) {
    nas_json *doc = NULL;
    int rc = nas_json_parse(json, strlen(json), 0, &doc, err);
    if (rc < 0) return rc;
    if (doc->type != NAS_JSON_OBJECT || !nas_json_get(doc, "campaign")) {
        nas_json_free(&doc);
        return nas_set_err(err, NAS_EFORMAT, "not a campaign status document");
    }
    fprintf(f, "campaign      %s (strategy %s, phase %s; from the %s)\n", str_of(doc, "campaign"),
            str_of(doc, "strategy"), str_of(doc, "phase"), str_of(doc, "source"));
    fprintf(f, "database      %s\n", str_of(doc, "db"));
    print_security(doc, f);
    fprintf(f,
            "evaluations   %.0f/%.0f done, %.0f queued, %.0f in flight, %.0f failed; "
            "final stage %.0f done\n",
            num_of(doc, "done", 0), num_of(doc, "budget", 0), num_of(doc, "queued", 0),
            num_of(doc, "in_flight", 0), num_of(doc, "failed", 0), num_of(doc, "final_done", 0));
    fprintf(f, "rate          %.1f evaluations/hour\n", num_of(doc, "evaluations_per_hour", 0));
    const nas_json *problem = nas_json_get(doc, "problem");
    if (problem && problem->type == NAS_JSON_STRING)
        fprintf(f, "problem       %s; waiting for a worker that can evaluate\n", problem->str);
    const nas_json *halted = nas_json_get(doc, "halted");
    if (halted && halted->type == NAS_JSON_STRING) fprintf(f, "halted        %s\n", halted->str);
    const nas_json *rho = nas_json_get(doc, "rank_correlation");
    if (rho && rho->type == NAS_JSON_NUMBER)
        fprintf(f, "predictor     rank correlation %.3f\n", rho->number);
    const nas_json *best = nas_json_get(doc, "best");
    if (best && best->type == NAS_JSON_OBJECT)
        fprintf(f, "best          val_acc %.4f  params %.0f  task %.0f\n              %s\n",
                num_of(best, "accuracy", 0), num_of(best, "params", 0), num_of(best, "task", 0),
                str_of(best, "arch"));
    else
        fprintf(f, "best          (no result yet)\n");
    const nas_json *wt = nas_json_get(doc, "weights");
    const nas_json *live = wt ? nas_json_get(wt, "live") : NULL;
    if (wt && wt->type == NAS_JSON_OBJECT && live && live->type == NAS_JSON_BOOL && !live->boolean)
        fprintf(f,
                "weights       %.0f architecture(s), %.1f MB on disk (the database's index; "
                "memory and hit figures exist only while a master runs)\n",
                num_of(wt, "archs_disk", 0), num_of(wt, "bytes_disk", 0) / 1e6);
    else if (wt && wt->type == NAS_JSON_OBJECT)
        fprintf(f,
                "weights       %.1f MB in memory (budget %.1f MB), %.1f MB on disk; "
                "%.0f hits, %.0f misses (%.0f from disk)\n",
                num_of(wt, "bytes_memory", 0) / 1e6, num_of(wt, "budget", 0) / 1e6,
                num_of(wt, "bytes_disk", 0) / 1e6, num_of(wt, "hits", 0), num_of(wt, "misses", 0),
                num_of(wt, "disk_reads", 0));
    nas_status_print_fidelity(doc, f);
    print_workers(doc, f);
    nas_json_free(&doc);
    return NAS_OK;
}
