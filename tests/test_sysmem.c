/*
 * test_sysmem.c - the memory a process may take: the machine's figures are
 * read and consistent, NAS_MEM_LIMIT caps them and is parsed strictly, an
 * rlimit in a child caps them, and nas_sysmem_check tells "never fits"
 * (ERANGE) from "does not fit now" (ENOMEM).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/sysmem.h"
#include "tests/harness.h"

START_TEST(test_sysmem_reads_the_machine) {
    unsetenv(NAS_MEM_LIMIT_ENV);
    nas_sysmem m;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_sysmem_read(&m, err), NAS_OK);
    // Every Linux machine this runs on has /proc/meminfo: a limit of some MB, and no more
    // available than the limit.
    ck_assert_msg(m.limit > ((uint64_t)64 << 20) && m.limit < UINT64_MAX, "limit %llu",
                  (unsigned long long)m.limit);
    ck_assert(m.avail > 0 && m.avail <= m.limit);
    ck_assert(strcmp(m.by, NAS_MEM_LIMIT_ENV) != 0);
    ck_assert_int_eq(nas_sysmem_check(1 << 20, "x", "y", err), NAS_OK);
}
END_TEST

START_TEST(test_sysmem_env_limit) {
    static const struct {
        const char *v;
        uint64_t bytes;
    } ok[] = {{"64M", (uint64_t)64 << 20},     {"1.5G", (uint64_t)3 << 29},
              {"512MiB", (uint64_t)512 << 20}, {"2gb", (uint64_t)2 << 30},
              {"1048576", (uint64_t)1 << 20},  {"3k", 3072}};
    nas_sysmem m;
    char err[NAS_ERR_LEN];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ck_assert_int_eq(setenv(NAS_MEM_LIMIT_ENV, ok[i].v, 1), 0);
        ck_assert_msg(nas_sysmem_read(&m, err) == NAS_OK, "%s: %s", ok[i].v, err);
        ck_assert_msg(m.limit == ok[i].bytes, "%s: %llu", ok[i].v, (unsigned long long)m.limit);
        ck_assert_str_eq(m.by, NAS_MEM_LIMIT_ENV);
        ck_assert(m.avail <= m.limit);
    }
    static const char *bad[] = {"lots", "-3G", "0", "5X", "6G6", "G", "1e30"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(setenv(NAS_MEM_LIMIT_ENV, bad[i], 1), 0);
        ck_assert_msg(nas_sysmem_read(&m, err) == NAS_ECONFIG, "%s accepted", bad[i]);
        ck_assert_msg(strstr(err, NAS_MEM_LIMIT_ENV) && strstr(err, bad[i]), "%s", err);
        ck_assert_int_eq(nas_sysmem_check(1, "x", "y", err), NAS_ECONFIG);
    }
    // Set but empty: as if unset.
    ck_assert_int_eq(setenv(NAS_MEM_LIMIT_ENV, "", 1), 0);
    ck_assert_int_eq(nas_sysmem_read(&m, err), NAS_OK);
    ck_assert(strcmp(m.by, NAS_MEM_LIMIT_ENV) != 0);
    // Past the limit: ERANGE, with both figures, what sets the limit and the remedy.
    ck_assert_int_eq(setenv(NAS_MEM_LIMIT_ENV, "100M", 1), 0);
    ck_assert_int_eq(nas_sysmem_check((uint64_t)3 << 30, "net (batch 9)", "lower it", err),
                     NAS_ERANGE);
    ck_assert_str_eq(err, "net (batch 9) needs 3.00 GB, more than the 100.0 MB this process may "
                          "use (NAS_MEM_LIMIT): lower it");
    ck_assert_int_eq(nas_sysmem_check((uint64_t)99 << 20, "x", "y", err), NAS_OK);
    unsetenv(NAS_MEM_LIMIT_ENV);
}
END_TEST

// An address-space rlimit is a limit too: checked in a child, whose rlimit dies with it (the
// sanitizers reserve terabytes of address space, so only a figure is compared, no allocation).
START_TEST(test_sysmem_rlimit) {
    unsetenv(NAS_MEM_LIMIT_ENV);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_DATA, &rl) != 0) _exit(2);
        rl.rlim_cur = (rlim_t)1 << 44; /* 16 TB: no allocation of this test comes near it */
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur) _exit(3);
        if (setrlimit(RLIMIT_DATA, &rl) != 0) _exit(4);
        nas_sysmem m;
        char err[NAS_ERR_LEN];
        if (nas_sysmem_read(&m, err) != NAS_OK) _exit(5);
        // The machine's memory is far below 16 TB, so MemTotal (or a cgroup) still sets it...
        if (m.limit >= ((uint64_t)1 << 44) || strcmp(m.by, "RLIMIT_DATA") == 0) _exit(6);
        // ...and an rlimit below the machine's memory sets it.
        rl.rlim_cur = (rlim_t)(m.limit / 2);
        if (setrlimit(RLIMIT_DATA, &rl) != 0) _exit(7);
        if (nas_sysmem_read(&m, err) != NAS_OK) _exit(8);
        if (m.limit != (uint64_t)rl.rlim_cur || strcmp(m.by, "RLIMIT_DATA") != 0) _exit(9);
        _exit(0);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("sysmem");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_sysmem_reads_the_machine);
    tcase_add_test(tc, test_sysmem_env_limit);
    tcase_add_test(tc, test_sysmem_rlimit);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
