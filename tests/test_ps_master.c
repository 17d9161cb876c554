// nas-test: label=e2e timeout=300
/*
 * test_ps_master.c - the real binaries: nas-master serving its weight
 * store and nas-worker training real genomes with inheritance, finding
 * the weight store from the master's answer to Register (no --weights).
 * After kill -9 of the master and a resume on the same database, every
 * architecture whose file survived is served again from disk, bit for bit
 * what the file holds, and the resumed campaign finishes with children
 * still inheriting.
 */
#include "common/alloc.h"
#include "common/safetensors.h"
#include "tests/e2e_util.h"
#include "worker/ps_client.h"

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <zmq.h>

/* The architectures with a weight file in dir (up to cap). */
static int list_archs(const char *dir, uint64_t *out, int cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < cap) {
        unsigned long long h;
        char tail[32];
        if (sscanf(de->d_name, "%16llx.%31s", &h, tail) == 2 && strcmp(tail, "safetensors") == 0)
            out[n++] = (uint64_t)h;
    }
    closedir(d);
    return n;
}

static pid_t start_master(const char *cfg, const char *db, const char *log) {
    const char *extra[] = {"--db", db, NULL};
    return e2e_start_master(log, NULL, cfg, extra);
}

START_TEST(test_ps_master_weights_survive_kill_9) {
    e2e_reap_setup();
    const char *dir = nas_tmpdir_make();
    char cfg[PATH_MAX], db[PATH_MAX], mlog[PATH_MAX], wlog[PATH_MAX], wdir[PATH_MAX + 16];
    char ctl[64], wts[64];
    nas_path_join(cfg, sizeof cfg, dir, "c.yaml");
    nas_path_join(db, sizeof db, dir, "c.db");
    nas_path_join(mlog, sizeof mlog, dir, "master.log");
    nas_path_join(wlog, sizeof wlog, dir, "worker.log");
    snprintf(wdir, sizeof wdir, "%s.weights", db);
    e2e_write_bar_idx(dir, "train", 200);
    e2e_write_bar_idx(dir, "t10k", 20);
    int port = e2e_port(2);
    snprintf(ctl, sizeof ctl, "tcp://127.0.0.1:%d", port);
    snprintf(wts, sizeof wts, "tcp://127.0.0.1:%d", port + 1);
    e2e_write(cfg,
              "name: inherit9\nseed: 3\n"
              "data:\n  set: mnist\n  dir: %s\n"
              "space:\n  kind: cell\n  blocks: 2\n  ops: [id, max3x3, sep3x3, conv1x1]\n"
              "strategy:\n  name: evolution\n  population: 3\n  sample: 2\n"
              "budget:\n  evaluations: 12\n"
              "fidelity:\n  resolution: 14\n  train_subset: 0\n  val_size: 40\n  epochs: 1\n"
              "  batch: 16\n  channels: 4\n  cells: 1\n"
              "listen:\n  control: %s\n  weights: %s\n  status: tcp://127.0.0.1:%d\n"
              "workers:\n  heartbeat_ms: 200\n  liveness: 10\n  lease_grace: 1s\n"
              "store: %s\n",
              dir, ctl, wts, port + 2, db);
    pid_t m = start_master(cfg, db, mlog);
    /* No --weights: the master announces its weight store. */
    char *wargv[] = {(char *)nas_bin("nas-worker"),
                     "--master",
                     ctl,
                     "--heartbeat-ms",
                     "200",
                     "--reconnect-min-ms",
                     "50",
                     "--reconnect-max-ms",
                     "200",
                     NULL};
    pid_t w = e2e_spawn(wlog, NULL, wargv);
    ck_assert_msg(e2e_wait_counts(db, 5, 0, 120000), "no 5 results in time");
    e2e_kill(m, SIGKILL);

    /* What is on disk now, read straight from the files. */
    uint64_t archs[16];
    int n = list_archs(wdir, archs, 16);
    ck_assert_int_ge(n, 1);
    pid_t m2 = start_master(cfg, db, mlog);
    void *ctx = zmq_ctx_new();
    nas_ps_client *c = NULL;
    char err[NAS_ERR_LEN] = "";
    ck_assert_int_eq(nas_ps_client_create(&c, ctx, wts, 20000, err), NAS_OK);
    int served = 0;
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%016" PRIx64 ".safetensors", wdir, archs[i]);
        nas_safetensors *st = NULL;
        /* The running worker's master may sweep a dead parent meanwhile. */
        if (nas_safetensors_load(path, &st, err) < 0) continue;
        nas_ps_weights *pw = NULL;
        int rc = nas_ps_client_pull(c, archs[i], &pw, err);
        if (rc == NAS_ENOTFOUND) {
            nas_safetensors_destroy(&st);
            continue;
        }
        ck_assert_msg(rc == NAS_OK, "%s", err);
        size_t nt = 0;
        const nas_safetensors_tensor *t = nas_ps_weights_tensors(pw, &nt);
        ck_assert_uint_eq(nt, st->count);
        for (size_t k = 0; k < nt; k++) {
            const nas_safetensors_tensor *f = nas_safetensors_find(st, t[k].name);
            ck_assert_ptr_nonnull(f);
            int64_t numel = nas_safetensors_numel(f);
            ck_assert_int_eq(memcmp(t[k].data, f->data, (size_t)numel * sizeof(float)), 0);
        }
        served++;
        nas_ps_weights_destroy(&pw);
        nas_safetensors_destroy(&st);
    }
    ck_assert_int_ge(served, 1);
    nas_ps_client_destroy(&c);
    zmq_ctx_term(ctx);
    /* The resumed campaign finishes, and its children still inherit. */
    ck_assert_int_eq(e2e_wait(m2, 180000), 0);
    e2e_kill(w, SIGTERM);
    e2e_check_exactly_once(db, 12);
    ck_assert_int_ge(e2e_count_in_file(wlog, "inherit: parent"), 5);
    ck_assert_int_eq(e2e_count_in_file(wlog, "not pushed"), 0);
    char found[128];
    snprintf(found, sizeof found, "weight store is at %s", wts);
    ck_assert_int_ge(e2e_count_in_file(wlog, found), 1);
    e2e_reap_all();
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("ps_master");
    TCase *tc = tcase_create("master");
    tcase_set_timeout(tc, 290);
    tcase_add_test(tc, test_ps_master_weights_survive_kill_9);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
