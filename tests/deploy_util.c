/*
 * deploy_util.c - runs a deployment test script and turns its exit status
 * into a Check result (tests/deploy_util.h).
 */
#include "tests/deploy_util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void nas_deploy_check(const char *script) {
    const char *src = getenv("NAS_SOURCE_DIR");
    ck_assert_msg(src && getenv("NAS_BIN_DIR"),
                  "NAS_SOURCE_DIR and NAS_BIN_DIR must be set (CTest does)");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "bash '%s/tests/deploy/%s' 2>&1", src, script);
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    /* The output goes on as it comes, so a slow script shows where it is;
     * the last line is kept for the verdict. */
    char line[4096], last[4096] = "";
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        fflush(stdout);
        if (line[0] != '\n') snprintf(last, sizeof last, "%s", line);
    }
    int st = pclose(p);
    int rc = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (rc == NAS_DEPLOY_SKIP) {
        printf("SKIP %s: %s", script, strncmp(last, "SKIP: ", 6) == 0 ? last + 6 : last);
        return;
    }
    ck_assert_msg(rc == 0, "%s failed (exit %d): %s", script, rc, last);
}
