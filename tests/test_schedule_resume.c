// nas-test: label=e2e timeout=300
/*
 * test_schedule_resume.c - exact resume of a multi-fidelity campaign after
 * kill -9 of the master, with the real binaries (nas-master, nas-worker
 * over TCP, a SQLite file), for each scheduler (ASHA, SHA, Hyperband):
 * the same campaign runs once uninterrupted and once with the master
 * killed while its only worker trains, and the two histories must be the
 * same result for result (architecture, rung, accuracy, in order).  A
 * promotion or a start decided before the kill is then taken exactly once:
 * one taken twice, or lost, or decided differently after the restart,
 * would shift every later entry.  One worker makes the order of results,
 * and so every scheduling decision, a function of the campaign alone.
 */
#include "common/alloc.h"
#include "tests/e2e_util.h"

#include <inttypes.h>
#include <limits.h>

static const char *const kinds[] = {"asha", "sha", "hyperband"};

/* A search result as the comparison needs it: the architecture, how many
 * epochs the task trained at (its rung) and the value, in completion order. */
typedef struct entry {
    char arch[NAS_STORE_TEXT_MAX];
    int epochs, promoted;
    double acc;
} entry;

#define MAX_ENTRIES 32

static int read_entries(const char *db, entry *out) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, MAX_ENTRIES);
    nas_store_task_info *t = NULL;
    int nt = nas_store_task_list(st, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_SEARCH, &t, err);
    /* One result per task, every task done: nothing lost, nothing twice. */
    ck_assert_int_eq(nt, n);
    for (int i = 0; i < n; i++) {
        snprintf(out[i].arch, sizeof out[i].arch, "%s", r[i].arch_text);
        out[i].acc = r[i].accuracy;
        int found = 0;
        for (int j = 0; j < nt; j++) {
            if (t[j].id != r[i].task_id) continue;
            found = 1;
            ck_assert_int_eq(t[j].state, NAS_STORE_TASK_DONE);
            out[i].epochs = t[j].fidelity.epochs;
            out[i].promoted = t[j].has_parent && t[j].parent_hash == t[j].arch_hash;
        }
        ck_assert(found);
        for (int j = 0; j < i; j++)
            ck_assert_int_ne(r[i].task_id, r[j].task_id);
    }
    nas_free(t);
    nas_store_records_free(r, n);
    nas_store_close(&st);
    return n;
}

static pid_t master(const e2e_env *e, const char *db, const char *log) {
    const char *extra[] = {"--synthetic", "--db", db, "--resume-grace-ms", "10000",
                           "--log-level", "info", NULL};
    return e2e_start_master(log, NULL, e->cfg, extra);
}

START_TEST(test_schedule_resume_after_master_kill_9) {
    e2e_reap_setup();
    e2e_env e;
    e2e_env_init(&e, _i);
    char sched[256];
    /* Two rungs, eta 2: SHA brackets of two (one promoted each), Hyperband
     * brackets of two at rung 0 and two at rung 1.  A promotion trains two
     * more epochs, so its accuracy differs from its rung-0 result. */
    snprintf(sched, sizeof sched,
             "schedule:\n  kind: %s\n  eta: 2\n  rungs: [{epochs: 1}, {epochs: 3}]\n"
             "workers:\n  heartbeat_ms: 100\n  liveness: 3\n",
             kinds[_i]);
    e2e_write_campaign(e.cfg, "sresume", 6, e.port, "127.0.0.1", e.db, sched);
    char ref[PATH_MAX], rlog[PATH_MAX], m2log[PATH_MAX], wlog[PATH_MAX];
    nas_path_join(ref, sizeof ref, e.dir, "reference.db");
    nas_path_join(rlog, sizeof rlog, e.dir, "reference.log");
    nas_path_join(m2log, sizeof m2log, e.dir, "master2.log");
    e2e_log_path(&e, "ref", wlog, sizeof wlog);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "ref", "30", NULL);
    pid_t m = master(&e, ref, rlog);
    ck_assert_int_eq(e2e_wait(m, 60000), 0);
    e2e_kill(w, SIGTERM);
    entry want[MAX_ENTRIES], got[MAX_ENTRIES];
    int nw = read_entries(ref, want);
    int promoted = 0;
    for (int i = 0; i < nw; i++)
        promoted += want[i].promoted;
    ck_assert_msg(promoted >= 1, "%s: no promotion in the reference run", kinds[_i]);

    /* Interrupted: kill -9 while the worker trains, after a few results
     * (decisions at the first rung barrier are on disk by then). */
    e2e_log_path(&e, "solo", wlog, sizeof wlog);
    w = e2e_start_worker(wlog, NULL, e.ctl, "solo", "150", NULL);
    m = master(&e, e.db, e.mlog);
    ck_assert(e2e_wait_counts(e.db, 3, 1, 30000));
    e2e_kill(m, SIGKILL);
    nas_sleep_ms(300);
    m = master(&e, e.db, m2log);
    int rc = e2e_wait(m, 60000);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(e2e_count_in_file(m2log, "schedule: state restored"), 1);
    int ng = read_entries(e.db, got);
    ck_assert_int_eq(ng, nw);
    for (int i = 0; i < nw; i++) {
        ck_assert_msg(strcmp(got[i].arch, want[i].arch) == 0 && got[i].epochs == want[i].epochs &&
                          got[i].promoted == want[i].promoted && got[i].acc == want[i].acc,
                      "%s: result %d differs after the restart: %s at %d epochs (%s) %.4f, "
                      "uninterrupted %s at %d epochs (%s) %.4f",
                      kinds[_i], i, got[i].arch, got[i].epochs,
                      got[i].promoted ? "promoted" : "new", got[i].acc, want[i].arch,
                      want[i].epochs, want[i].promoted ? "promoted" : "new", want[i].acc);
    }
    e2e_reap_all();
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("schedule_resume");
    TCase *tc = tcase_create("e2e");
    tcase_set_timeout(tc, 290);
    tcase_add_loop_test(tc, test_schedule_resume_after_master_kill_9, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
