// nas-test: label=e2e timeout=300
/*
 * test_chain_campaign.c - the chain space in whole campaigns, in-process:
 * a real libuv loop with the campaign's ROUTERs, a real SQLite file, a
 * worker agent on a thread that trains every chain (tiny MNIST-format
 * data) and talks to the weight store.  Random search and regularized
 * evolution (plain mutations, and morphisms) run to their budget; every
 * task is a chain that trained, and evolution's children named parents.
 * Then morphism evolution with real nas-master and nas-worker processes.
 */
#include "common/alloc.h"
#include "master/campaign_internal.h"
#include "tests/e2e_util.h"

#include <limits.h>
#include <math.h>

/* Run one campaign over the chain space with `strategy` (YAML lines of
 * the strategy map) to its budget; returns the search tasks (nas_free). */
static int run_campaign(const char *strategy, int slot, nas_store_task_info **out,
                        nas_weights_stats *ws) {
    const char *dir = nas_tmpdir_make();
    char cfgp[PATH_MAX], db[PATH_MAX];
    nas_path_join(cfgp, sizeof cfgp, dir, "c.yaml");
    nas_path_join(db, sizeof db, dir, "c.db");
    e2e_write_bar_idx(dir, "train", 200);
    e2e_write_bar_idx(dir, "t10k", 20);
    int port = e2e_port(slot);
    e2e_write(cfgp,
              "name: chain\nseed: 3\n"
              "data:\n  set: mnist\n  dir: %s\n"
              "space:\n  kind: chain\n  depth_min: 2\n  depth_max: 5\n"
              "strategy:\n%s"
              "budget:\n  evaluations: 8\n"
              "fidelity:\n  resolution: 14\n  train_subset: 0\n  val_size: 40\n  epochs: 1\n"
              "  batch: 16\n  channels: 4\n"
              "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n"
              "workers:\n  heartbeat_ms: 200\n  liveness: 10\n"
              "store: %s\n",
              dir, strategy, port, port + 1, port + 2, db);
    e2e_inproc r;
    e2e_inproc_run(&r, cfgp, dir, "w-chain");
    char err[NAS_ERR_LEN];
    int n = nas_store_task_list(r.c->store, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, out, err);
    nas_weights_stats_get(r.c->weights, ws);
    e2e_inproc_close(&r);
    nas_tmpdir_rm(dir);
    return n;
}

/* Every task is a chain that trained; returns how many named a parent. */
static int check_tasks(const nas_store_task_info *ti, int n) {
    ck_assert_int_eq(n, 8);
    int with_parent = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_msg(strncmp(ti[i].arch_text, "chain=", 6) == 0, "%s", ti[i].arch_text);
        ck_assert_msg(ti[i].state == NAS_STORE_TASK_DONE, "task %d: %s", i, ti[i].failure);
        nas_genome g;
        char err[NAS_ERR_LEN];
        ck_assert_msg(nas_genome_parse(ti[i].arch_text, strlen(ti[i].arch_text), &g, err) == NAS_OK,
                      "%s", err);
        ck_assert(g.chain.n_layers >= 1 && g.chain.n_layers <= 6);
        with_parent += ti[i].has_parent;
    }
    return with_parent;
}

START_TEST(test_chain_campaign_random) {
    nas_store_task_info *ti = NULL;
    nas_weights_stats ws;
    int n = run_campaign("  name: random\n", 1, &ti, &ws);
    ck_assert_int_eq(check_tasks(ti, n), 0);
    nas_free(ti);
}
END_TEST

START_TEST(test_chain_campaign_evolution) {
    nas_store_task_info *ti = NULL;
    nas_weights_stats ws;
    int n = run_campaign("  name: evolution\n  population: 3\n  sample: 2\n", 2, &ti, &ws);
    ck_assert_int_ge(check_tasks(ti, n), 4);
    nas_free(ti);
}
END_TEST

START_TEST(test_chain_campaign_morphism) {
    nas_store_task_info *ti = NULL;
    nas_weights_stats ws;
    int n = run_campaign("  name: evolution\n  population: 3\n  sample: 2\n  mutations: morphism\n",
                         3, &ti, &ws);
    ck_assert_int_ge(check_tasks(ti, n), 4);
    /* Every child pulled its parent's weights from the store. */
    ck_assert_int_ge(ws.hits + ws.disk_reads, 4);
    /* A morphism child grows its parent: never fewer layers or weights. */
    for (int i = 0; i < n; i++) {
        if (!ti[i].has_parent) continue;
        int found = 0;
        for (int j = 0; j < n; j++) {
            if (ti[j].arch_hash != ti[i].parent_hash) continue;
            nas_genome p, c;
            ck_assert_int_eq(nas_genome_parse(ti[j].arch_text, strlen(ti[j].arch_text), &p, NULL),
                             NAS_OK);
            ck_assert_int_eq(nas_genome_parse(ti[i].arch_text, strlen(ti[i].arch_text), &c, NULL),
                             NAS_OK);
            ck_assert_int_ge(c.chain.n_layers, p.chain.n_layers);
            found = 1;
        }
        ck_assert(found);
    }
    nas_free(ti);
}
END_TEST

/* Real processes: nas-master and two nas-worker processes run morphism
 * evolution over TCP; the workers pull parents from the master's weight
 * store and apply the morphisms (their logs say which tensors were
 * widened, set to the identity or zeroed), and every task finishes. */
START_TEST(test_chain_campaign_morphism_processes) {
    e2e_env e;
    e2e_env_init(&e, 4);
    e2e_write_bar_idx(e.dir, "train", 200);
    e2e_write_bar_idx(e.dir, "t10k", 20);
    e2e_write(e.cfg,
              "name: morph\nseed: 4\n"
              "data:\n  set: mnist\n  dir: %s\n"
              "space:\n  kind: chain\n  depth_min: 2\n  depth_max: 6\n"
              "strategy:\n  name: evolution\n  population: 3\n  sample: 2\n"
              "  mutations: morphism\n"
              "budget:\n  evaluations: 12\n"
              "fidelity:\n  resolution: 14\n  train_subset: 0\n  val_size: 40\n  epochs: 1\n"
              "  batch: 16\n  channels: 4\n"
              "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n"
              "workers:\n  heartbeat_ms: 100\n  liveness: 10\n"
              "store: %s\n",
              e.dir, e.port, e.port + 1, e.port + 2, e.db);
    const char *mextra[] = {"--log-level", "info", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, mextra);
    const char *wextra[] = {"--data-dir", e.dir, "--log-level", "info", NULL};
    char wlog[2][PATH_MAX];
    pid_t w[2];
    for (int i = 0; i < 2; i++) {
        char name[16];
        snprintf(name, sizeof name, "mw%d", i);
        e2e_log_path(&e, name, wlog[i], sizeof wlog[i]);
        w[i] = e2e_start_worker(wlog[i], NULL, e.ctl, name, "0", wextra);
    }
    int m_rc = e2e_wait(m, 200000);
    for (int i = 0; i < 2; i++)
        e2e_kill(w[i], SIGTERM);
    ck_assert_msg(m_rc == 0, "master exited %d", m_rc);
    e2e_check_exactly_once(e.db, 12);
    int morphs = 0, grown = 0;
    for (int i = 0; i < 2; i++) {
        morphs += e2e_count_in_file(wlog[i], "inherit: morph:");
        grown += e2e_count_in_file(wlog[i], "widened") - e2e_count_in_file(wlog[i], " 0 widened") +
                 e2e_count_in_file(wlog[i], "identity") -
                 e2e_count_in_file(wlog[i], " 0 identity") + e2e_count_in_file(wlog[i], "zeroed") -
                 e2e_count_in_file(wlog[i], " 0 zeroed");
    }
    ck_assert_int_ge(morphs, 6);
    ck_assert_int_ge(grown, 6);
    /* Function kept through the processes and the store: a child's
     * accuracy at birth is its parent's recorded final accuracy (the same
     * 40 validation images through the pushed weights). */
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    int births = 0;
    for (int i = 0; i < 2; i++) {
        char *log = nas_read_file(wlog[i], NULL);
        ck_assert_ptr_nonnull(log);
        for (const char *p = log; (p = strstr(p, "inherit: chain child of ")) != NULL; p++) {
            unsigned long long parent = 0;
            double acc = -1;
            ck_assert_int_eq(
                sscanf(p, "inherit: chain child of %llx at birth: val acc %lf", &parent, &acc), 2);
            for (int k = 0; k < n; k++) {
                if (r[k].arch_hash != (uint64_t)parent) continue;
                ck_assert_msg(fabs(r[k].accuracy - acc) < 1e-6,
                              "child of %016llx: %.6f at birth, parent %.6f", parent, acc,
                              r[k].accuracy);
                births++;
            }
        }
        nas_free(log);
    }
    ck_assert_int_ge(births, 6);
    nas_store_records_free(r, n);
    nas_store_close(&st);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("chain_campaign");
    TCase *tc = tcase_create("campaign");
    tcase_set_timeout(tc, 280);
    tcase_add_test(tc, test_chain_campaign_random);
    tcase_add_test(tc, test_chain_campaign_evolution);
    tcase_add_test(tc, test_chain_campaign_morphism);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_chain_campaign_morphism_processes);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
