// nas-test: label=slow timeout=180
/*
 * test_serve_browser.c - the dashboard in a real headless Chromium against
 * a live store: tests/web/dashboard.mjs (playwright-core driving Debian's
 * chromium) loads the page served by a real `nasctl serve`, fails on any
 * console error, waits for a result this test commits after the load to
 * appear without a reload, and a circuit-breaker halt logged with it in the
 * summary, sorts, filters, and opens a task's learning curve and cell.  Its screenshots are kept as
 * test artifacts in build-dir/test-artifacts/dashboard/.  Skips with a SKIP line naming what is
 * missing (node, chromium, or master/web/node_modules from `npm ci`).
 */
#include "tests/serve_fixtures.h"

#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *g_dir;
static pid_t g_pid = -1;

static void setup(void) {
    g_dir = nas_tmpdir_make();
}

static void teardown(void) {
    fx_serve_stop(g_pid);
    g_pid = -1;
    nas_tmpdir_rm(g_dir);
}

/* What the browser test needs, or why it cannot run. */
static const char *missing(char *driver, size_t cap) {
    const char *src = getenv("NAS_SOURCE_DIR");
    if (!src) return "NAS_SOURCE_DIR is not set (run through ctest)";
    snprintf(driver, cap, "%s/master/web/node_modules/playwright-core/package.json", src);
    if (access(driver, R_OK) != 0)
        return "master/web/node_modules lacks playwright-core (npm ci in master/web)";
    const char *chromium = getenv("NAS_CHROMIUM");
    if (access(chromium ? chromium : "/usr/bin/chromium", X_OK) != 0)
        return "no chromium (apt-get install chromium)";
    if (nas_run_cmd("node --version >/dev/null 2>&1", NULL, 0) != 0)
        return "no node (apt-get install nodejs)";
    snprintf(driver, cap, "%s/tests/web/dashboard.mjs", src);
    return NULL;
}

START_TEST(test_serve_browser_dashboard) {
    char driver[PATH_MAX];
    const char *why = missing(driver, sizeof driver);
    if (why) {
        printf("SKIP test_serve_browser_dashboard: %s\n", why);
        return;
    }
    char db[PATH_MAX], log[PATH_MAX], out[PATH_MAX];
    nas_path_join(db, sizeof db, g_dir, "c.db");
    nas_path_join(log, sizeof log, g_dir, "serve.log");
    /* Artifacts outlive the test: beside the binaries' directory. */
    snprintf(out, sizeof out, "%s/../test-artifacts", nas_bin(""));
    mkdir(out, 0755);
    snprintf(out, sizeof out, "%s/../test-artifacts/dashboard", nas_bin(""));
    mkdir(out, 0755);
    char stale[PATH_MAX + 32];
    snprintf(stale, sizeof stale, "%s/loaded", out);
    unlink(stale);
    snprintf(stale, sizeof stale, "%s/committed", out);
    unlink(stale);

    nas_store *st = fx_store(db, 300);
    int port;
    static const char *const fast[] = {"--refresh-ms", "50", NULL};
    g_pid = fx_serve_start(db, log, fast, &port);
    char res_path[PATH_MAX], url[64];
    nas_path_join(res_path, sizeof res_path, g_dir, "browser.out");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    pid_t node = fork();
    ck_assert_int_ge(node, 0);
    if (node == 0) {
        FILE *f = freopen(res_path, "w", stdout);
        if (f) dup2(fileno(f), 2);
        execlp("node", "node", driver, url, out, (char *)NULL);
        _exit(127);
    }
    /* Once the page has loaded (the driver writes OUT/loaded), commit a
     * result and name its task in OUT/committed (renamed into place, so
     * the driver never reads half a number). */
    char flag[PATH_MAX + 32], final[PATH_MAX + 32];
    snprintf(flag, sizeof flag, "%s/loaded", out);
    int st_node = -1, exited = 0;
    for (int i = 0; i < 1200 && access(flag, R_OK) != 0 && !exited; i++) {
        exited = waitpid(node, &st_node, WNOHANG) == node;
        if (!exited) usleep(50000);
    }
    if (!exited) {
        char err[NAS_ERR_LEN];
        ck_assert_int_eq(nas_store_event_append(st, 70500, NAS_STORE_EVENT_HALTED,
                                                "3 tasks failed in a row (test)", err),
                         NAS_OK);
        int64_t id = fx_add(st, 900, "w2", 70000);
        fx_result(st, id, 900, "w2", 71000);
        char num[32];
        int n = snprintf(num, sizeof num, "%lld", (long long)id);
        snprintf(flag, sizeof flag, "%s/committed.tmp", out);
        snprintf(final, sizeof final, "%s/committed", out);
        ck_assert_int_eq(nas_write_file(flag, num, (size_t)n, 0), 0);
        ck_assert_int_eq(rename(flag, final), 0);
    }
    for (int i = 0; i < 2400 && !exited; i++) {
        exited = waitpid(node, &st_node, WNOHANG) == node;
        if (!exited) usleep(50000);
    }
    if (!exited) {
        kill(node, SIGKILL);
        waitpid(node, NULL, 0);
    }
    char *text = nas_read_file(res_path, NULL);
    ck_assert_msg(exited && WIFEXITED(st_node) && WEXITSTATUS(st_node) == 0 && text &&
                      strstr(text, "\"ok\":true"),
                  "browser test failed: %s", text ? text : "(no output)");
    printf("browser: %s", text);
    free(text);
    nas_store_close(&st);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("serve_browser");
    TCase *tc = tcase_create("browser");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, test_serve_browser_dashboard);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
