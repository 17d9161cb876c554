// nas-test: label=e2e timeout=600
/*
 * test_schedule_e2e.c - multi-fidelity search with the real binaries
 * (nas-master, nas-worker over TCP, a SQLite file):
 *  - ASHA over evolution survives kill -9 of the master: every proposal
 *    trains once at rung 0, every promotion is taken exactly once, names
 *    its own architecture as its parent and follows a rung-0 result;
 *  - a promoted candidate continues from its own trained weights on
 *    another worker (real training; the first worker is killed -9 after
 *    its rung-0 results, the second pulls the weights from the store);
 *  - the median stopping rule stops runs from the master: Cancel reaches
 *    the worker in the middle of an epoch, and the run is a result with
 *    its partial curve and a task-stopped event, not a failure;
 *  - learning-curve extrapolation stops runs inside a campaign, with a
 *    predicted final accuracy that matches where the run's curve was
 *    going (the synthetic curves saturate towards a known value), and a
 *    run whose Progress was lost (its worker reconnecting) is not judged
 *    on a curve with holes;
 *  - PNAS proposes under ASHA and under Hyperband: it advances a level on
 *    the results it observed, promotions continue its candidates, and
 *    the campaign ends when PNAS does;
 *  - fidelity_check trains its samples at the top rung from fresh
 *    weights, outside the scheduler and the proposer, and they pair with
 *    the candidates' first results.
 */
#include "common/alloc.h"
#include "tests/e2e_util.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>

/* Search tasks read back: rung-0 tasks have `low` epochs, promotions `high`. */
typedef struct ladder {
    nas_store_task_info *t;
    int n, n_low, n_high;
} ladder;

static void read_ladder(const char *db, int low, int high, ladder *l) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    memset(l, 0, sizeof *l);
    l->n = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, &l->t, err);
    ck_assert_int_ge(l->n, 0);
    nas_store_close(&st);
    for (int i = 0; i < l->n; i++) {
        const nas_store_task_info *t = &l->t[i];
        ck_assert_msg(t->state == NAS_STORE_TASK_DONE, "task %" PRId64 " not done", t->id);
        ck_assert(t->fidelity.epochs == low || t->fidelity.epochs == high);
        if (t->fidelity.epochs == low) {
            l->n_low++;
            continue;
        }
        l->n_high++;
        /* A promotion continues its own architecture ... */
        ck_assert(t->has_parent && t->parent_hash == t->arch_hash);
        /* ... after a rung-0 result of it, and only once. */
        int before = 0, twice = 0;
        for (int j = 0; j < l->n; j++) {
            if (l->t[j].arch_hash != t->arch_hash || j == i) continue;
            if (l->t[j].fidelity.epochs == low && l->t[j].id < t->id) before++;
            if (l->t[j].fidelity.epochs == high) twice++;
        }
        ck_assert_int_ge(before, 1);
        ck_assert_int_eq(twice, 0);
    }
}

START_TEST(test_schedule_asha_survives_master_kill_9) {
    e2e_reap_setup();
    e2e_env e;
    e2e_env_init(&e, 0);
    e2e_write_campaign(e.cfg, "asha9", 12, e.port, "127.0.0.1", e.db,
                       "schedule:\n  kind: asha\n  eta: 2\n"
                       "  rungs: [{epochs: 1}, {epochs: 3}]\n");
    const char *extra[] = {"--synthetic", "--log-level", "info", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, extra);
    char l1[PATH_MAX], l2[PATH_MAX];
    e2e_log_path(&e, "w1", l1, sizeof l1);
    e2e_log_path(&e, "w2", l2, sizeof l2);
    pid_t w1 = e2e_start_worker(l1, NULL, e.ctl, "w1", "60", NULL);
    pid_t w2 = e2e_start_worker(l2, NULL, e.ctl, "w2", "60", NULL);
    ck_assert_msg(e2e_wait_counts(e.db, 6, 0, 60000), "no 6 results in time");
    e2e_kill(m, SIGKILL);
    m = e2e_start_master(e.mlog, NULL, e.cfg, extra);
    ck_assert_int_eq(e2e_wait(m, 120000), 0);
    e2e_kill(w1, SIGTERM);
    e2e_kill(w2, SIGTERM);
    ck_assert_int_ge(e2e_count_in_file(e.mlog, "schedule: state restored"), 1);
    ladder l;
    read_ladder(e.db, 1, 3, &l);
    /* The budget counts proposals: twelve at rung 0.  ASHA promotes at
     * least the best of the first two; it promotes whatever lies in the top
     * half (eta 2) of rung 0 *when asked*, and an early promotion is never
     * taken back, so the total depends on the order results arrive in and
     * may exceed half the rung (it did: 8 of 12).  Each architecture is
     * promoted at most once (read_ladder), so at most twelve. */
    ck_assert_int_eq(l.n_low, 12);
    ck_assert_int_ge(l.n_high, 1);
    ck_assert_int_le(l.n_high, l.n_low);
    nas_free(l.t);
    e2e_reap_all();
    nas_tmpdir_rm(e.dir);
}
END_TEST

START_TEST(test_schedule_promotion_continues_on_another_worker) {
    e2e_reap_setup();
    e2e_env e;
    e2e_env_init(&e, 1);
    e2e_write_bar_idx(e.dir, "train", 300);
    e2e_write_bar_idx(e.dir, "t10k", 20);
    e2e_write(e.cfg,
              "name: promote\nseed: 5\n"
              "data:\n  set: mnist\n  dir: %s\n"
              "space:\n  kind: cell\n  blocks: 2\n  ops: [id, max3x3, sep3x3, conv1x1]\n"
              "strategy:\n  name: random\n"
              "budget:\n  evaluations: 3\n"
              "fidelity:\n  resolution: 14\n  train_subset: 0\n  val_size: 40\n  epochs: 1\n"
              "  batch: 16\n  channels: 4\n  cells: 1\n"
              "schedule:\n  kind: asha\n  eta: 2\n  rungs: [{epochs: 1}, {epochs: 8}]\n"
              "listen:\n  control: %s\n  weights: tcp://127.0.0.1:%d\n  status: %s\n"
              "workers:\n  heartbeat_ms: 200\n  liveness: 5\n"
              "store: %s\n",
              e.dir, e.ctl, e.port + 1, e.sts, e.db);
    const char *mextra[] = {"--log-level", "info", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, mextra);
    char la[PATH_MAX], lb[PATH_MAX];
    e2e_log_path(&e, "wa", la, sizeof la);
    e2e_log_path(&e, "wb", lb, sizeof lb);
    char *aargv[] = {(char *)nas_bin("nas-worker"), "--master", e.ctl, "--name", "wa",
                     "--heartbeat-ms", "200", "--reconnect-min-ms", "50",
                     "--reconnect-max-ms", "200", NULL};
    pid_t wa = e2e_spawn(la, NULL, aargv);
    /* ASHA promotes the better of the first two at once; it trains seven
     * more epochs, long enough to kill its worker in the middle. */
    ck_assert_msg(e2e_wait_counts(e.db, 2, 0, 120000), "no 2 results in time");
    e2e_kill(wa, SIGKILL);
    char *bargv[] = {(char *)nas_bin("nas-worker"), "--master", e.ctl, "--name", "wb",
                     "--heartbeat-ms", "200", "--reconnect-min-ms", "50",
                     "--reconnect-max-ms", "200", NULL};
    pid_t wb = e2e_spawn(lb, NULL, bargv);
    ck_assert_int_eq(e2e_wait(m, 180000), 0);
    e2e_kill(wb, SIGTERM);
    ladder l;
    read_ladder(e.db, 1, 8, &l);
    ck_assert_int_eq(l.n_low, 3);
    ck_assert_int_ge(l.n_high, 1);
    /* The first promotion: trained by wb from the weights wa pushed. */
    const nas_store_task_info *p = NULL, *r0 = NULL;
    for (int i = 0; i < l.n && !p; i++)
        if (l.t[i].fidelity.epochs == 8) p = &l.t[i];
    for (int i = 0; i < l.n && !r0; i++)
        if (l.t[i].arch_hash == p->arch_hash && l.t[i].fidelity.epochs == 1) r0 = &l.t[i];
    ck_assert_str_eq(r0->worker, "wa");
    ck_assert_str_eq(p->worker, "wb");
    char line[96];
    snprintf(line, sizeof line, "inherit: parent %016" PRIx64 ": ", p->arch_hash);
    ck_assert_msg(e2e_count_in_file(lb, line) >= 1, "wb did not continue from %s", line);
    ck_assert_int_eq(e2e_count_in_file(lb, "training from fresh weights"), 0);
    nas_free(l.t);
    e2e_reap_all();
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* The campaign in e->cfg with synthetic training and one worker ("w", its
 * log path into lw) whose epochs take epoch_ms, run to its end. */
static void run_one_worker(const e2e_env *e, const char *epoch_ms, char *lw, size_t cap) {
    const char *extra[] = {"--synthetic", "--log-level", "info", NULL};
    pid_t m = e2e_start_master(e->mlog, NULL, e->cfg, extra);
    e2e_log_path(e, "w", lw, cap);
    pid_t w = e2e_start_worker(lw, NULL, e->ctl, "w", epoch_ms, NULL);
    ck_assert_int_eq(e2e_wait(m, 120000), 0);
    e2e_kill(w, SIGTERM);
}

START_TEST(test_schedule_median_stop_reaches_worker_mid_epoch) {
    e2e_reap_setup();
    e2e_env e;
    e2e_env_init(&e, 2);
    e2e_write_campaign(e.cfg, "stop", 10, e.port, "127.0.0.1", e.db,
                       "early_stop:\n  rule: median\n  min_epochs: 1\n  min_runs: 2\n");
    /* Epochs of 400 ms: the stop decided at the end of epoch 1 arrives
     * while epoch 2 sleeps. */
    char lw[PATH_MAX];
    run_one_worker(&e, "400", lw, sizeof lw);
    int stops = e2e_count_in_file(e.mlog, "stopped by the median rule at epoch 1/2");
    ck_assert_int_ge(stops, 1);
    ck_assert_int_eq(e2e_count_in_file(lw, "canceled by the master"), stops);
    /* Stopped runs are results with their one-epoch curve; nothing failed. */
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    ck_assert_int_eq(n, 10);
    int short_curves = 0;
    for (int i = 0; i < n; i++)
        short_curves += r[i].n_curve == 1;
    ck_assert_int_eq(short_curves, stops);
    nas_store_records_free(r, n);
    nas_store_counts k;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_SEARCH, &k, err), NAS_OK);
    ck_assert_int_eq(k.failed, 0);
    nas_store_event_info *ev = NULL;
    int ne = nas_store_event_list(st, 0, 1000, &ev, err);
    int stopped_events = 0;
    for (int i = 0; i < ne; i++)
        stopped_events += strcmp(ev[i].kind, "task-stopped") == 0;
    ck_assert_int_eq(stopped_events, stops);
    nas_free(ev);
    nas_store_close(&st);
    e2e_reap_all();
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* The stops one campaign's events name: epoch, epochs, val_acc, predicted. */
typedef struct stop_event {
    int epoch, epochs;
    double val, predicted;
} stop_event;

static int read_stops(const char *db, const char *rule, stop_event *out, int cap) {
    char err[NAS_ERR_LEN], fmt[128];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_event_info *ev = NULL;
    int ne = nas_store_event_list(st, 0, 1000, &ev, err);
    ck_assert_int_ge(ne, 0);
    snprintf(fmt, sizeof fmt,
             "task %%*u stopped by the %s rule at epoch %%d/%%d on %%*[^:]: val_acc %%lf, "
             "predicted final %%lf",
             rule);
    int n = 0;
    for (int i = 0; i < ne && n < cap; i++) {
        if (strcmp(ev[i].kind, "task-stopped") != 0) continue;
        stop_event *s = &out[n++];
        ck_assert_msg(sscanf(ev[i].text, fmt, &s->epoch, &s->epochs, &s->val, &s->predicted) == 4,
                      "unexpected task-stopped text: %s", ev[i].text);
    }
    nas_free(ev);
    nas_store_close(&st);
    return n;
}

START_TEST(test_schedule_extrapolation_stops_inside_a_campaign) {
    e2e_reap_setup();
    e2e_env e;
    e2e_env_init(&e, 3 + 3 * _i);
    /* Eight epochs per run; the rule needs five points to fit a curve.
     * _i 1 leaves the master's heartbeat at its default (1 s) while the
     * worker expects one every 100 ms: the worker keeps reconnecting and
     * drops the Progress it reports meanwhile, so curves have holes.  A
     * hole is not an accuracy of 0: such a run must not be judged on it. */
    e2e_write(e.cfg,
              "name: extra\nseed: 7\nspace:\n  kind: nb201\n"
              "strategy:\n  name: evolution\n  population: 4\n  sample: 2\n"
              "budget:\n  evaluations: 10\n"
              "fidelity:\n  epochs: 8\n"
              "early_stop:\n  rule: extrapolate\n  min_epochs: 5\n  delta: 0.05\n"
              "listen:\n  control: %s\n  weights: tcp://127.0.0.1:%d\n  status: %s\n"
              "%s"
              "store: %s\n",
              e.ctl, e.port + 1, e.sts, _i == 0 ? "workers:\n  heartbeat_ms: 100\n" : "", e.db);
    /* Epochs of 150 ms: the stop decided after epoch 5 reaches the worker
     * with three epochs still to go. */
    char lw[PATH_MAX];
    run_one_worker(&e, "150", lw, sizeof lw);
    stop_event stops[16];
    int ns = read_stops(e.db, "extrapolate", stops, 16);
    if (_i == 0) ck_assert_int_ge(ns, 1);
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    ck_assert_int_eq(n, 10);
    double best = 0;
    int short_curves = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].n_curve == 8 && r[i].accuracy > best) best = r[i].accuracy;
        short_curves += r[i].n_curve < 8;
        /* Every recorded epoch was measured (a synthetic curve never is 0). */
        for (int j = 0; j < r[i].n_curve; j++)
            ck_assert_msg(r[i].curve[j] > 0.1f, "task %" PRId64 ": epoch %d recorded as %.4f",
                          r[i].task_id, j + 1, r[i].curve[j]);
    }
    nas_store_records_free(r, n);
    ck_assert_int_eq(short_curves, ns);
    nas_store_counts k;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_SEARCH, &k, err), NAS_OK);
    ck_assert_int_eq(k.failed, 0);
    nas_store_close(&st);
    for (int i = 0; i < ns; i++) {
        /* The synthetic run climbs a * (1 - 2^-e): from its value at the
         * stop, where it would have ended after eight epochs. */
        ck_assert_int_ge(stops[i].epoch, 5);
        ck_assert_int_lt(stops[i].epoch, 8);
        ck_assert_int_eq(stops[i].epochs, 8);
        double a = stops[i].val / (1.0 - pow(0.5, stops[i].epoch));
        double truth = a * (1.0 - pow(0.5, 8));
        ck_assert_msg(fabs(stops[i].predicted - truth) < 0.01,
                      "stop %d: predicted %.4f, the curve ends at %.4f", i, stops[i].predicted,
                      truth);
        /* Stopped because it would not have beaten the best. */
        ck_assert_msg(truth < best, "stop %d ends at %.4f, above the best %.4f", i, truth, best);
    }
    if (_i == 0) ck_assert_int_ge(e2e_count_in_file(lw, "canceled by the master"), 1);
    ck_assert_int_le(e2e_count_in_file(lw, "canceled by the master"), ns);
    /* nasctl shows them as stopped, neither failed nor done. */
    char hist[PATH_MAX], stat[PATH_MAX], line[64];
    e2e_log_path(&e, "history", hist, sizeof hist);
    e2e_log_path(&e, "status", stat, sizeof stat);
    char *hargv[] = {(char *)nas_bin("nasctl"), "history", "--db", e.db, "--csv", NULL};
    char *sargv[] = {(char *)nas_bin("nasctl"), "status", "--db", e.db, NULL};
    ck_assert_int_eq(e2e_wait(e2e_spawn(hist, NULL, hargv), 30000), 0);
    ck_assert_int_eq(e2e_wait(e2e_spawn(stat, NULL, sargv), 30000), 0);
    ck_assert_int_eq(e2e_count_in_file(hist, ",stopped\r\n"), ns);
    ck_assert_int_eq(e2e_count_in_file(hist, ",done\r\n"), 10 - ns);
    snprintf(line, sizeof line, "(%d run(s) stopped early)", ns);
    ck_assert_msg(ns == 0 || e2e_count_in_file(stat, line) == 1, "nasctl status lacks '%s'",
                  line);
    e2e_reap_all();
    nas_tmpdir_rm(e.dir);
}
END_TEST

/* Every search task of the campaign, in id order (nas_free *t). */
static int search_tasks(const char *db, nas_store_task_info **t) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    int n = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, t, err);
    ck_assert_int_ge(n, 0);
    nas_store_close(&st);
    return n;
}

/* PNAS under ASHA (_i 0) and Hyperband (_i 1), synthetic evaluation. */
START_TEST(test_schedule_pnas_as_the_proposer) {
    static const char *const kinds[] = {"asha", "hyperband"};
    e2e_reap_setup();
    e2e_env e;
    e2e_env_init(&e, 4 + _i);
    /* Two blocks over two operations: a small first level, then one level
     * of the beam's expansions; PNAS ends after it. */
    e2e_write(e.cfg,
              "name: pnas-%s\nseed: 3\n"
              "space:\n  kind: cell\n  blocks: 2\n  ops: [id, max3x3]\n"
              "strategy:\n  name: pnas\n  beam: 3\n  ensemble: 2\n"
              "budget:\n  evaluations: 1000\n"
              "fidelity:\n  epochs: 1\n"
              "schedule:\n  kind: %s\n  eta: 2\n  rungs: [{epochs: 1}, {epochs: 3}]\n"
              "listen:\n  control: %s\n  weights: tcp://127.0.0.1:%d\n  status: %s\n"
              "workers:\n  heartbeat_ms: 100\n"
              "store: %s\n",
              kinds[_i], kinds[_i], e.ctl, e.port + 1, e.sts, e.db);
    const char *extra[] = {"--synthetic", "--log-level", "info", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, extra);
    char l1[PATH_MAX], l2[PATH_MAX];
    e2e_log_path(&e, "w1", l1, sizeof l1);
    e2e_log_path(&e, "w2", l2, sizeof l2);
    pid_t w1 = e2e_start_worker(l1, NULL, e.ctl, "w1", "10", NULL);
    pid_t w2 = e2e_start_worker(l2, NULL, e.ctl, "w2", "10", NULL);
    ck_assert_int_eq(e2e_wait(m, 120000), 0);
    e2e_kill(w1, SIGTERM);
    e2e_kill(w2, SIGTERM);
    /* PNAS built level 2 from what it observed, and finished it. */
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "strategy step prepared in the thread pool"), 1);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "level 2 predictor rank correlation"), 1);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "level 2 (the last) complete"), 1);
    nas_store_task_info *t = NULL;
    int nt = search_tasks(e.db, &t);
    int promotions = 0, fresh = 0, level2 = 0;
    for (int i = 0; i < nt; i++) {
        ck_assert_int_eq(t[i].state, NAS_STORE_TASK_DONE);
        int promoted = t[i].has_parent && t[i].parent_hash == t[i].arch_hash;
        if (!promoted) {
            fresh++;
            /* A level-2 genome has two blocks: its text has a ','. */
            level2 += strchr(t[i].arch_text, ',') != NULL;
            continue;
        }
        promotions++;
        ck_assert_int_eq(t[i].fidelity.epochs, 3);
        /* A promotion follows a rung-0 run of the same architecture, once. */
        int before = 0, twice = 0;
        for (int j = 0; j < nt; j++) {
            if (j == i || t[j].arch_hash != t[i].arch_hash) continue;
            if (t[j].fidelity.epochs == 1 && t[j].id < t[i].id) before++;
            if (t[j].fidelity.epochs == 3 && t[j].has_parent) twice++;
        }
        ck_assert_int_ge(before, 1);
        ck_assert_int_eq(twice, 0);
    }
    ck_assert_int_ge(promotions, 1);
    ck_assert_int_ge(level2, 1);
    ck_assert_int_le(level2, 3); /* the beam's K expansions at most */
    ck_assert_int_gt(fresh, level2);
    nas_free(t);
    e2e_reap_all();
    nas_tmpdir_rm(e.dir);
}
END_TEST

START_TEST(test_schedule_fidelity_check_samples) {
    e2e_reap_setup();
    e2e_env e;
    e2e_env_init(&e, 6);
    e2e_write_campaign(e.cfg, "fcheck", 8, e.port, "127.0.0.1", e.db,
                       "schedule:\n  kind: asha\n  eta: 3\n"
                       "  rungs: [{epochs: 1}, {epochs: 3}]\n"
                       "fidelity_check:\n  samples: 3\n");
    char lw[PATH_MAX];
    run_one_worker(&e, "10", lw, sizeof lw);
    ck_assert_int_eq(e2e_count_in_file(e.mlog, "fidelity check of candidate"), 3);
    nas_store_task_info *t = NULL;
    int nt = search_tasks(e.db, &t);
    int low = 0, checks = 0;
    for (int i = 0; i < nt; i++) {
        ck_assert_int_eq(t[i].state, NAS_STORE_TASK_DONE);
        if (t[i].fidelity.epochs == 1) {
            low++;
            continue;
        }
        if (t[i].has_parent) continue; /* ASHA's own promotions */
        /* A sample: the top rung's whole fidelity, from fresh weights,
         * after its candidate's first result, once per architecture. */
        checks++;
        ck_assert_int_eq(t[i].fidelity.epochs, 3);
        int before = 0, twice = 0;
        for (int j = 0; j < nt; j++) {
            if (j == i || t[j].arch_hash != t[i].arch_hash) continue;
            before += t[j].fidelity.epochs == 1 && t[j].id < t[i].id;
            twice += t[j].fidelity.epochs == 3 && !t[j].has_parent;
        }
        ck_assert_int_ge(before, 1);
        ck_assert_int_eq(twice, 0);
    }
    /* The budget counts the proposer's candidates only. */
    ck_assert_int_eq(low, 8);
    ck_assert_int_eq(checks, 3);
    nas_free(t);
    e2e_reap_all();
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("schedule_e2e");
    TCase *tc = tcase_create("e2e");
    tcase_set_timeout(tc, 590);
    tcase_add_test(tc, test_schedule_asha_survives_master_kill_9);
    tcase_add_test(tc, test_schedule_promotion_continues_on_another_worker);
    tcase_add_test(tc, test_schedule_median_stop_reaches_worker_mid_epoch);
    tcase_add_loop_test(tc, test_schedule_extrapolation_stops_inside_a_campaign, 0, 2);
    tcase_add_loop_test(tc, test_schedule_pnas_as_the_proposer, 0, 2);
    tcase_add_test(tc, test_schedule_fidelity_check_samples);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
