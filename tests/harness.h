/*
 * harness.h - helpers shared by the Check suites: temporary directories,
 * generated fixture files, float comparison, running the built binaries.
 *
 * Every suite ends with NAS_TEST_MAIN(make_suite), which runs the suite
 * under CK_FORK (each test in its own process) and exits non-zero if any
 * test failed.
 */
#ifndef NAS_TEST_HARNESS_H
#define NAS_TEST_HARNESS_H

#include "common/json.h"

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* Create a fresh temporary directory (under $TMPDIR or /tmp) and return its
 * path in a static buffer owned by the harness; removed by nas_tmpdir_rm(). */
const char *nas_tmpdir_make(void);
/* Recursively remove a directory made by nas_tmpdir_make(). */
void nas_tmpdir_rm(const char *dir);

/* Join dir and name into buf (size PATH_MAX assumed by callers: 4096). */
char *nas_path_join(char *buf, size_t n, const char *dir, const char *name);

/* Write bytes to a file; gz != 0 writes it gzip-compressed. Returns 0/-1. */
int nas_write_file(const char *path, const void *data, size_t n, int gz);

/* Read a whole file into a malloc'd buffer (NUL-terminated); NULL on error. */
char *nas_read_file(const char *path, size_t *n);

/* Maximum absolute difference over n floats; prints the first values of
 * both when it exceeds tol (llm.c's check_tensor) and returns 0 on mismatch. */
int nas_allclose(const float *a, const float *b, size_t n, float atol, float rtol,
                 const char *label);

/* Path of a built binary (from $NAS_BIN_DIR, set by CTest). */
const char *nas_bin(const char *name);

/* Run a shell command, capture up to cap-1 bytes of combined stdout+stderr
 * into out (may be NULL), and return its exit status (or -1). */
int nas_run_cmd(const char *cmd, char *out, size_t cap);

/* Two parsed JSON values are the same (numbers exactly, members in the
 * same order); two NULLs (absent keys) are the same. */
int nas_json_same(const nas_json *a, const nas_json *b);

#define NAS_TEST_MAIN(make_suite)                                              \
    int main(void) {                                                           \
        SRunner *sr = srunner_create(make_suite());                            \
        srunner_set_fork_status(sr, CK_FORK);                                  \
        srunner_run_all(sr, CK_NORMAL);                                        \
        int failed = srunner_ntests_failed(sr);                                \
        srunner_free(sr);                                                      \
        return failed == 0 ? 0 : 1;                                            \
    }

#endif
