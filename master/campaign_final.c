/*
 * campaign_final.c - the end of a campaign: the final stage (retrain the
 * top-k search architectures at the final fidelity, test accuracy kept
 * apart from the search results), the summary printed on exit, and the
 * status document served to nasctl.
 *
 * Entering the final stage is idempotent: the top-k list is a pure function
 * of the finished search history, and only (architecture, seed) pairs
 * without a final-stage task get one, so a crash half-way through adding
 * them is repaired by the next run.
 *
 * Each architecture is sized for final.target_params / target_macs
 * (master/final_size.h) and trained final.seeds times, with seeds
 * final.fidelity.seed + 0, 1, ...; only the first seed's run keeps its
 * weights (the weight store holds one file per architecture), and the
 * summary reports the mean and standard deviation over the seeds.
 */
#include "master/campaign_internal.h"
#include "master/final_size.h"
#include "master/status.h"
#include "master/status_fidelity.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

// ---- final stage ---------------------------------------------------------------------------

/* ", width x0.734" for a size the final stage reached through MBConv's
 * width multiplier (docs/GENOME.md s8), "" otherwise: F alone does not
 * say how wide such a net is. */
static const char *width_text(const nas_fidelity *f, char *buf, size_t cap) {
    buf[0] = '\0';
    if (f->width_mult > 0) snprintf(buf, cap, ", width x%.3f", (double)f->width_mult);
    return buf;
}

/* The k best distinct architectures of the search stage, best first.
 * *out malloc'd; returns the count. */
static int top_k(nas_campaign *c, int k, nas_store_record **out, char *err) {
    nas_store_record *recs = NULL;
    int n = nas_store_best(c->store, NAS_STORE_STAGE_SEARCH, k * 4 + 8, &recs, err);
    if (n < 0) return n;
    int m = 0;
    for (int i = 0; i < n && m < k; i++) {
        int dup = 0;
        for (int j = 0; j < m; j++)
            dup |= recs[j].arch_hash == recs[i].arch_hash;
        if (dup) continue;
        if (m != i) {
            nas_free(recs[m].curve);
            recs[m] = recs[i];
            recs[i].curve = NULL;
        }
        m++;
    }
    for (int i = m; i < n; i++)
        nas_free(recs[i].curve), recs[i].curve = NULL;
    *out = recs;
    return m;
}

/* Switch to the final stage and add a final task for each of the top-k
 * search architectures that has none yet.  Final tasks carry no strategy
 * state: the strategy's search is over and its last state is already
 * committed with the last search result. */
int nas__campaign_enter_final(nas_campaign *c, int64_t now_ms, char *err) {
    c->phase = NAS__PHASE_FINAL;
    int k = c->cfg->final.top_k;
    if (k <= 0) return NAS_OK;
    nas_store_record *best = NULL;
    int n = top_k(c, k, &best, err);
    if (n < 0) return n;
    nas_store_task_info *have = NULL;
    int nh = nas_store_task_list(c->store, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_FINAL, &have, err);
    int rc = nh < 0 ? nh : NAS_OK;
    int added = 0;
    const nas_config *cfg = c->cfg;
    int ch, side;
    nas__campaign_data_shape(cfg, &ch, &side);
    if (cfg->final.fidelity.resolution > 0) side = cfg->final.fidelity.resolution;
    for (int i = 0; i < n && rc == NAS_OK; i++) {
        nas_genome g;
        nas_fidelity f;
        nas_cost cost;
        rc = nas_genome_parse(best[i].arch_text, strlen(best[i].arch_text), &g, err);
        if (rc == NAS_OK)
            rc = nas_final_fit_size(&g, &cfg->final.fidelity, ch, side, 10,
                                    cfg->final.target_params, cfg->final.target_macs, &f, &cost,
                                    err);
        if (rc < 0) {
            /* One architecture that cannot be made small enough is skipped, not fatal. */
            nas_warn("campaign: final stage skips %s: %s", best[i].arch_text, err);
            rc = NAS_OK;
            continue;
        }
        char wbuf[40];
        if (cfg->final.target_params > 0 || cfg->final.target_macs > 0)
            nas_info("campaign: final size of %s: F %d, N %d%s: %" PRId64 " params, %" PRId64
                     " MACs",
                     best[i].arch_text, f.channels, f.cells, width_text(&f, wbuf, sizeof wbuf),
                     cost.params, cost.macs);
        for (int s = 0; s < cfg->final.seeds && rc == NAS_OK; s++) {
            f.seed = cfg->final.fidelity.seed + (uint64_t)s;
            int present = 0;
            for (int j = 0; j < nh; j++)
                present |=
                    have[j].arch_hash == best[i].arch_hash && have[j].fidelity.seed == f.seed;
            if (present) continue;
            rc = nas__campaign_add_task(c, &g, NAS_STORE_STAGE_FINAL, &f, NULL, 0, now_ms, err);
            added += rc == NAS_OK;
        }
    }
    nas_free(have);
    nas_store_records_free(best, n);
    if (rc == NAS_OK)
        nas_info("campaign: search over; final stage retrains the top %d, %d seed(s) each (%d "
                 "new task(s))", n, cfg->final.seeds, added);
    return rc;
}

// ---- summary ---------------------------------------------------------------------------------

/* One result in the summary: text, then the figures a person compares. */
static void print_record(FILE *f, const char *label, const nas_store_record *r) {
    fprintf(f, "%s %s\n", label, r->arch_text);
    fprintf(f, "  val_acc %.4f", r->accuracy);
    if (!isnan(r->test_accuracy)) fprintf(f, "  test_acc %.4f", r->test_accuracy);
    fprintf(f, "  params %" PRId64 "  MACs %" PRId64 "  task %" PRId64 "\n", r->params, r->macs,
            r->task_id);
}

/* Mean and sample standard deviation of the finite values of v[0..n). */
static int mean_std(const double *v, int n, double *mean, double *sd) {
    double s = 0.0, q = 0.0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) s += v[i], k++;
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = k > 1 ? sqrt(q / (k - 1)) : 0.0;
    return k;
}

/* One line per retrained architecture: its size (F, N as the final stage chose them) and the
 * mean +- standard deviation of its accuracies over the seeds that finished. */
static void print_final_groups(FILE *f, nas_campaign *c, const nas_store_record *r, int n) {
    double *val = nas_malloc(sizeof(double) * (size_t)n);
    double *test = nas_malloc(sizeof(double) * (size_t)n);
    unsigned char *done = nas_calloc((size_t)n, 1);
    if (!val || !test || !done) goto out;
    fprintf(f, "final stage by architecture (mean +- std over seeds):\n");
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        int k = 0;
        for (int j = i; j < n; j++) {
            if (done[j] || r[j].arch_hash != r[i].arch_hash) continue;
            done[j] = 1;
            val[k] = r[j].accuracy;
            test[k++] = r[j].test_accuracy;
        }
        double vm, vs, tm, ts;
        mean_std(val, k, &vm, &vs);
        int kt = mean_std(test, k, &tm, &ts);
        nas_store_task_info t;
        char err[NAS_ERR_LEN];
        nas_fidelity tf = {0};
        char wbuf[40];
        if (nas_store_task_get(c->store, r[i].task_id, &t, err) == NAS_OK) tf = t.fidelity;
        fprintf(f,
                "  %s\n    F %d N %d%s  params %" PRId64 "  MACs %" PRId64
                "  seeds %d  val_acc %.4f +- %.4f",
                r[i].arch_text, tf.channels, tf.cells, width_text(&tf, wbuf, sizeof wbuf),
                r[i].params, r[i].macs, k, vm, vs);
        if (kt > 0) fprintf(f, "  test_acc %.4f +- %.4f", tm, ts);
        fprintf(f, "\n");
    }
out:
    nas_free(val);
    nas_free(test);
    nas_free(done);
}

/* Read everything back from the store rather than from memory, so the
 * summary of a resumed campaign covers every run, not just this one. */
void nas_campaign_summary(nas_campaign *c, FILE *f) {
    char err[NAS_ERR_LEN];
    nas_store_counts s = {0}, fin = {0};
    nas_store_task_counts(c->store, NAS_STORE_STAGE_SEARCH, &s, err);
    nas_store_task_counts(c->store, NAS_STORE_STAGE_FINAL, &fin, err);
    fprintf(f, "campaign %s (%s): %s\n", c->cfg->name, nas_strategy_name(c->strategy),
            c->phase == NAS__PHASE_DONE ? "done"
            : c->fatal                  ? "stopped by an error"
                                        : "stopped");
    fprintf(f,
            "search: %" PRId64 " evaluated, %" PRId64 " failed, %" PRId64
            " queued or in flight (budget %d)\n",
            s.done, s.failed, s.queued + s.leased, c->cfg->budget.evaluations);
    nas_store_record *r = NULL;
    int n = nas_store_best(c->store, NAS_STORE_STAGE_SEARCH, 1, &r, err);
    if (n > 0) print_record(f, "best (search):", &r[0]);
    nas_store_records_free(r, n > 0 ? n : 0);
    r = NULL;
    n = nas_store_history(c->store, NAS_STORE_STAGE_FINAL, &r, err);
    if (n > 0) {
        fprintf(f, "final stage (%d retrained at the final fidelity):\n", n);
        for (int i = 0; i < n; i++)
            print_record(f, "  final:", &r[i]);
        print_final_groups(f, c, r, n);
    }
    nas_store_records_free(r, n > 0 ? n : 0);
    fprintf(f, "database: %s  (nasctl best --db %s)\n", c->db_path, c->db_path);
}

// ---- status document -------------------------------------------------------------------------

/* The phase nasctl shows; an error or a stop in progress wins over the
 * stage, because that is what the operator needs to know first. */
static const char *phase_name(const nas_campaign *c) {
    if (c->fatal) return "failed";
    if (c->stopping) return "stopping";
    static const char *const names[] = {"search", "final", "done"};
    return names[c->phase];
}

/* How the master's sockets are protected, so that an operator sees a
 * plaintext master reachable from other machines (--insecure) in every
 * `nasctl status`: "insecure" is true exactly when some endpoint is off
 * the loopback without CurveZMQ. */
static void json_security(nas_json_buf *b, nas_campaign *c) {
    const nas_config *cfg = c->cfg;
    int exposed = !nas_auth_is_loopback(cfg->listen.control) ||
                  !nas_auth_is_loopback(cfg->listen.status) ||
                  !nas_auth_is_loopback(cfg->listen.weights);
    nas_json_buf_key(b, "insecure");
    nas_json_buf_bool(b, !c->curve && exposed);
    nas_json_buf_key(b, "security");
    nas_json_buf_obj_begin(b);
    nas_json_buf_key(b, "curve");
    nas_json_buf_bool(b, c->curve);
    nas_json_buf_key(b, "loopback_only");
    nas_json_buf_bool(b, !exposed);
    if (c->auth) {
        nas_auth_stats st;
        nas_auth_stats_get(c->auth, &st);
        nas_json_buf_key(b, "authorized_keys");
        nas_json_buf_i64(b, nas_auth_key_count(c->auth));
        nas_json_buf_key(b, "handshakes_accepted");
        nas_json_buf_i64(b, st.accepted);
        nas_json_buf_key(b, "handshakes_rejected");
        nas_json_buf_i64(b, st.rejected);
    }
    nas_json_buf_obj_end(b);
}

/* Counts come from the store (every run), worker details from the
 * dispatcher (only the live master knows epochs and current tasks).
 * Built on the loop that answers workers, so nothing in it reads more than
 * the live tasks' rows: the rest is kept up to date as results come in
 * (status_live.h). */
int nas__campaign_status_counts(nas_campaign *c, nas_store_counts *s, nas_store_counts *fin,
                                char *err) {
    int64_t oldest = INT64_MAX;
    for (int i = 0; i < c->n_tasks; i++)
        if (c->tasks[i].id < oldest) oldest = c->tasks[i].id;
    return nas_status_live_counts(c->live, c->store, oldest, s, fin, err);
}

char *nas_campaign_status_json(nas_campaign *c) {
    char err[NAS_ERR_LEN];
    nas_store_counts s = {0}, fin = {0};
    if (nas__campaign_status_counts(c, &s, &fin, err) < 0)
        nas_warn("campaign: status counts: %s", err);
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "source");
    nas_json_buf_str(&b, "master");
    nas_json_buf_key(&b, "campaign");
    nas_json_buf_str(&b, c->cfg->name);
    nas_json_buf_key(&b, "strategy");
    nas_json_buf_str(&b, nas_strategy_name(c->strategy));
    char desc[256] = "";
    nas_strategy_describe(c->strategy, desc, sizeof desc);
    nas_json_buf_key(&b, "strategy_state");
    nas_json_buf_str(&b, desc);
    nas_json_buf_key(&b, "phase");
    nas_json_buf_str(&b, phase_name(c));
    nas_json_buf_key(&b, "db");
    nas_json_buf_str(&b, c->db_path);
    json_security(&b, c);
    nas_json_buf_key(&b, "budget");
    nas_json_buf_i64(&b, c->cfg->budget.evaluations);
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
    if (c->env_problem[0]) {
        nas_json_buf_key(&b, "problem");
        nas_json_buf_str(&b, c->env_problem);
    }
    if (c->breaker.tripped) {
        nas_json_buf_key(&b, "halted");
        nas_json_buf_str(&b, c->breaker.message);
    }
    /* Rate of this process only: earlier runs' time is unknown. */
    double hours = (double)(nas_now_ms() - c->started_mono) / 3600000.0;
    nas_json_buf_key(&b, "evaluations_per_hour");
    nas_json_buf_f64(&b, hours > 0 ? (double)(s.done - c->done_at_start) / hours : 0.0);
    double rho = nas_strategy_rank_correlation(c->strategy);
    nas_json_buf_key(&b, "rank_correlation");
    if (isnan(rho))
        nas_json_buf_null(&b);
    else
        nas_json_buf_f64(&b, rho);
    nas_status_live_json_best(c->live, c->store, &b);
    size_t cap = 8192 + 1024 * (size_t)nas_dispatcher_workers(c->disp, NULL, 0);
    char *dj = nas_malloc(cap);
    if (dj && nas_dispatcher_status_json(c->disp, nas_now_ms(), dj, cap) >= 0) {
        nas_json_buf_key(&b, "dispatcher");
        nas_json_buf_raw(&b, dj, strlen(dj));
    }
    nas_free(dj);
    char wj[512];
    nas__campaign_weights_json(c, wj, sizeof wj);
    nas_json_buf_key(&b, "weights");
    nas_json_buf_raw(&b, wj, strlen(wj));
    nas_status_live_json_fidelity(c->live, &b, c->cfg->budget.epochs, c->cfg->budget.wall_time_s,
                                  c->created_wall, nas_wall_ms());
    nas_store_commit_stats cs;
    nas_store_commit_stats_get(c->store, &cs);
    nas_status_json_commits(&b, &cs);
    nas_json_buf_obj_end(&b);
    return nas_json_buf_take(&b, NULL);
}
