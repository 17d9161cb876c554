// nas-test: label=e2e timeout=300
/*
 * test_ps_campaign.c - weight inheritance through a whole campaign
 * in-process: a real libuv loop with the campaign's three ROUTERs, a real
 * SQLite file, a worker agent on a thread whose evaluator trains every
 * genome (tiny MNIST-format data) and talks to the bulk socket through
 * worker/ps_client.h.  Regularized evolution proposes mutated children;
 * checked at the end:
 *  - children named their parents in the store, pulled them (store hits)
 *    and every trained child was pushed (files indexed in SQLite);
 *  - dead parents were swept: what is left on disk is the population;
 *  - the status document and `nasctl status` show the store's figures.
 */
#include "common/alloc.h"
#include "common/json.h"
#include "master/campaign_internal.h"
#include "master/status.h"
#include "tests/e2e_util.h"

#include <dirent.h>
#include <limits.h>

static int count_files(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), s = strlen(suffix);
        if (l > s && strcmp(de->d_name + l - s, suffix) == 0) n++;
    }
    closedir(d);
    return n;
}

/* Write the campaign file: evolution over 2-block cells, tiny training;
 * `extra` is appended (more keys). */
static void write_config(const char *cfgp, const char *dir, const char *db, int port,
                         const char *extra) {
    e2e_write(cfgp,
              "name: inherit\nseed: 5\n"
              "data:\n  set: mnist\n  dir: %s\n"
              "space:\n  kind: cell\n  blocks: 2\n  ops: [id, max3x3, sep3x3, conv1x1]\n"
              "strategy:\n  name: evolution\n  population: 3\n  sample: 2\n"
              "budget:\n  evaluations: 9\n"
              "fidelity:\n  resolution: 14\n  train_subset: 0\n  val_size: 40\n  epochs: 1\n"
              "  batch: 16\n  channels: 4\n  cells: 1\n"
              "listen:\n  control: tcp://127.0.0.1:%d\n  weights: tcp://127.0.0.1:%d\n"
              "  status: tcp://127.0.0.1:%d\n"
              "workers:\n  heartbeat_ms: 200\n  liveness: 10\n"
              "store: %s\n%s",
              dir, port, port + 1, port + 2, db, extra);
}

START_TEST(test_ps_campaign_children_inherit_and_dead_parents_are_swept) {
    const char *dir = nas_tmpdir_make();
    char cfgp[PATH_MAX], db[PATH_MAX], wdir[PATH_MAX + 16];
    nas_path_join(cfgp, sizeof cfgp, dir, "c.yaml");
    nas_path_join(db, sizeof db, dir, "c.db");
    e2e_write_bar_idx(dir, "train", 200);
    e2e_write_bar_idx(dir, "t10k", 20);
    int port = e2e_port(1);
    write_config(cfgp, dir, db, port, "");
    e2e_inproc r;
    e2e_inproc_run(&r, cfgp, dir, "w-inherit");
    nas_campaign *c = r.c;
    char err[NAS_ERR_LEN];

    /* The store's own view. */
    nas_weights_stats ws;
    nas_weights_stats_get(c->weights, &ws);
    ck_assert_int_eq(ws.puts, 9);                 /* every child may become a parent */
    ck_assert_int_ge(ws.hits + ws.disk_reads, 5); /* the children after the first 3 pulled */
    ck_assert_int_ge(ws.drops, 1);
    ck_assert_int_le(ws.archs_disk, 3);
    snprintf(wdir, sizeof wdir, "%s.weights", db);
    ck_assert_int_eq(count_files(wdir, ".safetensors"), (int)ws.archs_disk);

    /* Status document and nasctl's rendering. */
    char *json = nas_campaign_status_json(c);
    nas_json *doc = NULL;
    ck_assert_int_eq(nas_json_parse(json, strlen(json), 0, &doc, err), NAS_OK);
    const nas_json *w = nas_json_get(doc, "weights");
    ck_assert_ptr_nonnull(w);
    ck_assert(nas_json_get(w, "hits")->number == (double)ws.hits);
    ck_assert(nas_json_get(w, "bytes_disk")->number > 0);
    nas_json_free(&doc);
    char out[4096] = "";
    FILE *f = fmemopen(out, sizeof out, "w");
    ck_assert_int_eq(nas_status_print(json, f, err), NAS_OK);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(out, "weights "));
    ck_assert_ptr_nonnull(strstr(out, "hits"));
    nas_free(json);

    /* Children named their parents in the store; what is on disk is indexed. */
    nas_store_task_info *ti = NULL;
    int n = nas_store_task_list(c->store, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, &ti, err);
    ck_assert_int_eq(n, 9);
    int with_parent = 0;
    for (int i = 0; i < n; i++)
        with_parent += ti[i].has_parent;
    nas_free(ti);
    ck_assert_int_ge(with_parent, 5);
    uint64_t held[8];
    size_t nh = nas_weights_list(c->weights, held, 8);
    for (size_t i = 0; i < nh && i < 8; i++) {
        char path[PATH_MAX];
        int64_t bytes = 0;
        ck_assert_int_eq(nas_store_weights_get(c->store, held[i], path, sizeof path, &bytes, err),
                         NAS_OK);
        ck_assert(nas_strategy_is_live_parent(c->strategy, held[i]));
    }
    e2e_inproc_close(&r);
    nas_tmpdir_rm(dir);
}
END_TEST

/* weights.inherit: false switches it off: tasks carry no parent and no push
 * flag, so the store stays empty and nobody pulls. */
START_TEST(test_ps_campaign_inherit_off) {
    const char *dir = nas_tmpdir_make();
    char cfgp[PATH_MAX], db[PATH_MAX];
    nas_path_join(cfgp, sizeof cfgp, dir, "c.yaml");
    nas_path_join(db, sizeof db, dir, "c.db");
    e2e_write_bar_idx(dir, "train", 200);
    e2e_write_bar_idx(dir, "t10k", 20);
    int port = e2e_port(4);
    write_config(cfgp, dir, db, port, "weights:\n  inherit: false\n");
    e2e_inproc r;
    e2e_inproc_run(&r, cfgp, dir, "w-inherit");
    ck_assert_int_eq(r.cfg.weights.inherit, 0);
    nas_weights_stats ws;
    nas_weights_stats_get(r.c->weights, &ws);
    ck_assert_int_eq(ws.puts, 0);
    ck_assert_int_eq(ws.hits + ws.misses, 0);
    e2e_inproc_close(&r);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("ps_campaign");
    TCase *tc = tcase_create("campaign");
    tcase_set_timeout(tc, 280);
    tcase_add_test(tc, test_ps_campaign_children_inherit_and_dead_parents_are_swept);
    tcase_add_test(tc, test_ps_campaign_inherit_off);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
