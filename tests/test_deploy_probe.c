// nas-test: label=e2e timeout=120
/*
 * test_deploy_probe.c - what a service manager relies on, with real
 * processes (issue 17):
 *  - the worker's liveness probe: --health-file is rewritten while the
 *    worker runs, `nas-worker --check` answers 0 with its line, 1 once the
 *    worker was killed (stale), for a missing file and for a file that is
 *    not a health line; a worker whose master died is alive but says
 *    "connected 0";
 *  - systemd's notify protocol on a real AF_UNIX datagram socket:
 *    READY=1 first, then WATCHDOG=1 again and again;
 *  - --advertise-weights: the endpoint the master announces is the one
 *    the worker uses; a wildcard is refused as a usage error (exit 2);
 *  - the master's exit status 2 for configuration errors a restart cannot
 *    cure (a campaign file that does not parse or cannot be read).
 */
#include "tests/e2e_util.h"

#include <limits.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

/* A bound datagram socket standing in for systemd's $NOTIFY_SOCKET. */
static int notify_socket(const char *path) {
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 10};
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    return fd;
}

static void recv_notify(int fd, char *buf, size_t cap) {
    ssize_t n = recv(fd, buf, cap - 1, 0);
    ck_assert_msg(n > 0, "no sd_notify message within 10 s");
    buf[n] = '\0';
}

static int check(const char *health, const char *max_age, char *out, size_t cap) {
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd, "%s --check %s --max-age-ms %s", nas_bin("nas-worker"), health,
             max_age);
    return nas_run_cmd(cmd, out, cap);
}

START_TEST(test_probe_health_file_and_watchdog) {
    e2e_env e;
    e2e_env_init(&e, 0);
    /* Long enough that the campaign is still running while we probe. */
    e2e_write_campaign(e.cfg, "probe", 400, e.port, "127.0.0.1", e.db, "");
    char health[PATH_MAX], sock[PATH_MAX], wlog[PATH_MAX], out[4096], msg[256];
    nas_path_join(health, sizeof health, e.dir, "worker.health");
    nas_path_join(sock, sizeof sock, e.dir, "notify");
    e2e_log_path(&e, "w", wlog, sizeof wlog);
    int nfd = notify_socket(sock);
    const char *mx[] = {"--synthetic", NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, mx);
    ck_assert(e2e_wait_in_file(e.mlog, "listening for workers", 20000));
    const char *wx[] = {"--health-file", health, NULL};
    setenv("NOTIFY_SOCKET", sock, 1);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w", "50", wx);
    unsetenv("NOTIFY_SOCKET");

    recv_notify(nfd, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "READY=1") != NULL, "first message: %s", msg);
    for (int i = 0; i < 3; i++) {
        recv_notify(nfd, msg, sizeof msg);
        ck_assert_str_eq(msg, "WATCHDOG=1");
    }
    ck_assert(e2e_wait_counts(e.db, 1, 0, 20000));
    int connected = 0;
    for (int i = 0; i < 100 && !connected; i++) {
        ck_assert_int_eq(check(health, "5000", out, sizeof out), 0);
        connected = strstr(out, "connected 1") != NULL;
        if (!connected) usleep(100 * 1000);
    }
    ck_assert_msg(connected, "the worker never said it is connected: %s", out);

    /* The master dies: the worker is alive (a restart would not bring the
     * master back) and says it is not connected. */
    e2e_kill(m, SIGKILL);
    int lost = 0;
    for (int i = 0; i < 100 && !lost; i++) {
        usleep(100 * 1000);
        ck_assert_int_eq(check(health, "5000", out, sizeof out), 0);
        lost = strstr(out, "connected 0") != NULL;
    }
    ck_assert_msg(lost, "a worker without its master still says connected: %s", out);

    /* The worker dies: the file goes stale and the probe fails. */
    e2e_kill(w, SIGKILL);
    usleep(400 * 1000);
    ck_assert_int_eq(check(health, "300", out, sizeof out), 1);
    ck_assert_msg(strstr(out, "ms ago"), "%s", out);
    ck_assert_int_eq(check(e.dir, "300", out, sizeof out), 1);
    char missing[PATH_MAX];
    nas_path_join(missing, sizeof missing, e.dir, "none");
    ck_assert_int_eq(check(missing, "300", out, sizeof out), 1);
    ck_assert_msg(strstr(out, "none"), "%s", out);
    e2e_write(health, "hello\n");
    ck_assert_int_eq(check(health, "300", out, sizeof out), 1);
    ck_assert_msg(strstr(out, "not a nas-worker health line"), "%s", out);
    close(nfd);
    nas_tmpdir_rm(e.dir);
}
END_TEST

START_TEST(test_advertise_weights_and_exit_status) {
    e2e_env e;
    e2e_env_init(&e, 1);
    e2e_write_campaign(e.cfg, "adv", 6, e.port, "127.0.0.1", e.db, "");
    char adv[64], wlog[PATH_MAX], want[128], out[4096], cmd[PATH_MAX * 2];
    snprintf(adv, sizeof adv, "tcp://localhost:%d", e.port + 1);
    e2e_log_path(&e, "w", wlog, sizeof wlog);
    const char *mx[] = {"--synthetic", "--advertise-weights", adv, NULL};
    pid_t m = e2e_start_master(e.mlog, NULL, e.cfg, mx);
    pid_t w = e2e_start_worker(wlog, NULL, e.ctl, "w", "0", NULL);
    ck_assert_int_eq(e2e_wait_exit(m, 30000), 0);
    ck_assert_int_eq(e2e_wait_exit(w, 10000), 0);
    snprintf(want, sizeof want, "weight store is at %s", adv);
    ck_assert_msg(e2e_count_in_file(wlog, want) == 1, "the worker did not use %s", adv);

    /* Usage and configuration errors: 2, so systemd stops retrying. */
    snprintf(cmd, sizeof cmd, "%s %s --advertise-weights tcp://0.0.0.0:5556",
             nas_bin("nas-master"), e.cfg);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--advertise-weights"), "%s", out);
    char bad[PATH_MAX];
    nas_path_join(bad, sizeof bad, e.dir, "bad.yaml");
    e2e_write(bad, "name: bad\nbudget:\n  evaluations: lots\n");
    snprintf(cmd, sizeof cmd, "%s %s --synthetic", nas_bin("nas-master"), bad);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "budget.evaluations"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s %s/none.yaml --synthetic", nas_bin("nas-master"), e.dir);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "none.yaml"), "%s", out);
    nas_tmpdir_rm(e.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("deploy_probe");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 100);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_probe_health_file_and_watchdog);
    tcase_add_test(tc, test_advertise_weights_and_exit_status);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
