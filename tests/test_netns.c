// nas-test: label=e2e timeout=300
/*
 * test_netns.c - several hosts: the master and two workers each in a
 * network namespace of their own, joined by veth pairs to a bridge in the
 * master's namespace, talking TCP over 10.x.0.0/24.  One worker's link is
 * cut (ip link set down) for longer than the liveness timeout: its task is
 * re-leased to the other worker, and when the link returns the worker
 * registers again and takes work.  The campaign still records every task
 * exactly once.
 *
 * Needs root and network namespaces; where `ip netns add` is refused the
 * test prints "SKIP: <reason>" and passes that case only (it claims
 * nothing about the behaviour).
 */
#include "common/alloc.h"
#include "tests/e2e_util.h"

#include <limits.h>
#include <stdarg.h>

typedef struct topo {
    char ns_m[32], ns_a[32], ns_b[32];
    int net; /* second octet of 10.net.0.0/24 */
    int id;
} topo;

static void topo_names(topo *t, int id) {
    t->id = id;
    snprintf(t->ns_m, sizeof t->ns_m, "nasm%d", id);
    snprintf(t->ns_a, sizeof t->ns_a, "nasa%d", id);
    snprintf(t->ns_b, sizeof t->ns_b, "nasb%d", id);
    t->net = 20 + id % 200;
}

/* Run a shell command; 0 on success, else the output is printed. */
static int sh(const char *fmt, ...) {
    char cmd[1024], out[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = nas_run_cmd(cmd, out, sizeof out);
    if (rc != 0) fprintf(stderr, "netns: '%s' failed (%d): %s\n", cmd, rc, out);
    return rc;
}

static void topo_down(const topo *t) {
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; "
             "ip netns del %s 2>/dev/null; true",
             t->ns_m, t->ns_a, t->ns_b);
    nas_run_cmd(cmd, NULL, 0);
}

/* Master namespace with a bridge at 10.net.0.1; each worker namespace has
 * one end of a veth pair (10.net.0.2, .3), the other end on the bridge. */
static int topo_up(const topo *t, char *why, size_t cap) {
    if (sh("ip netns add %s", t->ns_m) != 0) {
        snprintf(why, cap, "cannot create network namespaces here (ip netns add refused)");
        return -1;
    }
    const char *ws[2] = {t->ns_a, t->ns_b};
    int rc = sh("ip -n %s link set lo up && ip -n %s link add br%d type bridge && "
                "ip -n %s addr add 10.%d.0.1/24 dev br%d && ip -n %s link set br%d up",
                t->ns_m, t->ns_m, t->id, t->ns_m, t->net, t->id, t->ns_m, t->id);
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = sh("ip netns add %s && ip -n %s link set lo up && "
                "ip link add v%c%d netns %s type veth peer name h%c%d netns %s && "
                "ip -n %s link set h%c%d master br%d && ip -n %s link set h%c%d up && "
                "ip -n %s addr add 10.%d.0.%d/24 dev v%c%d && ip -n %s link set v%c%d up",
                ws[i], ws[i], 'a' + i, t->id, ws[i], 'a' + i, t->id, t->ns_m, t->ns_m, 'a' + i,
                t->id, t->id, t->ns_m, 'a' + i, t->id, ws[i], t->net, 2 + i, 'a' + i, t->id, ws[i],
                'a' + i, t->id);
    }
    if (rc != 0) snprintf(why, cap, "veth/bridge setup failed (see stderr)");
    return rc == 0 ? 0 : -1;
}

START_TEST(test_netns_link_cut_releases_and_rejoins) {
    topo t;
    topo_names(&t, (int)(getppid() % 100000));
    topo_down(&t);
    char why[256];
    if (topo_up(&t, why, sizeof why) != 0) {
        topo_down(&t);
        printf("SKIP: %s\n", why);
        return;
    }
    char dir[PATH_MAX], cfg[PATH_MAX], db[PATH_MAX], mlog[PATH_MAX], la[PATH_MAX], lb[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", nas_tmpdir_make());
    nas_path_join(cfg, sizeof cfg, dir, "campaign.yaml");
    nas_path_join(db, sizeof db, dir, "campaign.db");
    nas_path_join(mlog, sizeof mlog, dir, "master.log");
    nas_path_join(la, sizeof la, dir, "hosta.log");
    nas_path_join(lb, sizeof lb, dir, "hostb.log");
    char host[32], ep[64];
    snprintf(host, sizeof host, "10.%d.0.1", t.net);
    snprintf(ep, sizeof ep, "tcp://%s:5555", host);
    e2e_write_campaign(cfg, "netns", 14, 5555, host, db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    const char *mextra[] = {"--synthetic", "--insecure", NULL};
    pid_t m = e2e_start_master(mlog, t.ns_m, cfg, mextra);
    pid_t a = e2e_start_worker(la, t.ns_a, ep, "hosta", "400", NULL);
    pid_t b = e2e_start_worker(lb, t.ns_b, ep, "hostb", "150", NULL);

    /* Cut host a's link while it trains. */
    int64_t task = 0, end = nas_now_ms() + 30000;
    while (!task && nas_now_ms() < end) {
        task = e2e_leased_task(db, "hosta", NULL, 0);
        if (!task) nas_sleep_ms(20);
    }
    ck_assert_int_gt(task, 0);
    ck_assert_int_eq(sh("ip -n %s link set va%d down", t.ns_a, t.id), 0);
    nas_sleep_ms(1500); /* five times the liveness timeout of 300 ms */
    int64_t back_wall = nas_wall_ms();
    ck_assert_int_eq(sh("ip -n %s link set va%d up", t.ns_a, t.id), 0);

    int rc = e2e_wait(m, 90000);
    e2e_kill(a, SIGTERM);
    e2e_kill(b, SIGTERM);
    topo_down(&t);
    ck_assert_int_eq(rc, 0);
    e2e_check_exactly_once(db, 14);
    /* The cut task was re-leased and finished by host b. */
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    int cut_done_by_b = 0, a_after = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].task_id == task && strcmp(r[i].worker, "hostb") == 0 && r[i].attempt >= 2)
            cut_done_by_b = 1;
        if (strcmp(r[i].worker, "hosta") == 0 && r[i].finished_ms > back_wall) a_after = 1;
    }
    nas_store_records_free(r, n);
    nas_store_close(&st);
    ck_assert_msg(cut_done_by_b, "task %lld was not re-leased to host b", (long long)task);
    ck_assert_int_ge(e2e_count_in_file(mlog, "worker hosta silent"), 1);
    ck_assert_int_ge(e2e_count_in_file(mlog, "worker hosta ("), 2); /* registered twice */
    ck_assert_msg(a_after, "host a did not take work after its link came back");
    nas_tmpdir_rm(dir);
}
END_TEST

static void netns_teardown(void) {
    e2e_reap_all();
    topo t;
    topo_names(&t, (int)(getpid() % 100000));
    topo_down(&t);
}

static Suite *make_suite(void) {
    Suite *s = suite_create("netns");
    TCase *tc = tcase_create("hosts");
    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, netns_teardown);
    tcase_add_test(tc, test_netns_link_cut_releases_and_rejoins);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
