/*
 * test_fuzz_regress.c - replay every committed fuzz input through the
 * fuzz targets under the normal ASan/UBSan build, so a crash found once
 * stays fixed (tests/fuzz/README in docs/SECURITY.md).
 *
 * For each target NAME it reads tests/fuzz/corpus/NAME/ and
 * tests/fuzz/regress/NAME/ (the latter may be absent).  Every file must
 * run without a crash or a broken round-trip property; a corpus file
 * whose name starts with "ok_" must also be accepted by the decoder, so
 * the seeds stay valid inputs as the formats evolve.  The targets are
 * compiled into this suite from their one source file, as llm.c's test
 * includes its trainer.
 */
#include "tests/fuzz/fuzz_targets.c"

#include "common/log.h"
#include "tests/harness.h"

#include <dirent.h>
#include <stdlib.h>

static const char *source_dir(void) {
    const char *s = getenv("NAS_SOURCE_DIR");
    return s != NULL && s[0] != '\0' ? s : ".";
}

/* Replay dir/NAME/ *; returns the number of files, fills accepted and
 * ok_refused (an "ok_" file the decoder refused: its name in bad). */
static int replay(const char *kind, const nas_fuzz_target *t, int *accepted, char *bad,
                  size_t bad_cap) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/%s/%s", source_dir(), kind, t->name);
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t n = 0;
        char *data = nas_read_file(path, &n);
        ck_assert_msg(data != NULL, "cannot read %s", path);
        int ok = t->fn((const uint8_t *)data, n);
        free(data);
        files++;
        *accepted += ok;
        if (!ok && strncmp(de->d_name, "ok_", 3) == 0 && bad[0] == '\0')
            snprintf(bad, bad_cap, "%s", path);
    }
    closedir(d);
    return files;
}

START_TEST(test_fuzz_regress_target) {
    nas_log_set_level(NAS_LOG_OFF);
    const nas_fuzz_target *t = &nas_fuzz_targets[_i];
    char bad[4400] = "";
    int accepted = 0;
    int corpus = replay("corpus", t, &accepted, bad, sizeof bad);
    ck_assert_msg(corpus >= 2, "%s: %d seed files in tests/fuzz/corpus/%s (want a few)", t->name,
                  corpus, t->name);
    ck_assert_msg(bad[0] == '\0', "%s: seed %s is no longer accepted by the decoder", t->name, bad);
    ck_assert_msg(accepted >= 1, "%s: no seed is accepted", t->name);
    int regress_accepted = 0;
    char unused[4400] = "";
    replay("regress", t, &regress_accepted, unused, sizeof unused);
}
END_TEST

/* The targets really refuse garbage and really check what they accept. */
START_TEST(test_fuzz_targets_refuse_garbage) {
    nas_log_set_level(NAS_LOG_OFF);
    static const uint8_t junk[] = {0xff, 0x00, 0x13, 0x37, '{', '|', '=', '"', 0x80};
    for (const nas_fuzz_target *t = nas_fuzz_targets; t->name != NULL; t++) {
        ck_assert_msg(t->fn(junk, sizeof junk) == 0, "%s accepted junk", t->name);
        /* An empty campaign file is all defaults, a valid campaign. */
        if (strcmp(t->name, "config") != 0)
            ck_assert_msg(t->fn(junk, 0) == 0, "%s accepted nothing", t->name);
        ck_assert_ptr_eq(nas_fuzz_find(t->name), t->fn);
    }
    ck_assert_ptr_null(nas_fuzz_find("nope"));
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("fuzz_regress");
    TCase *tc = tcase_create("core");
    int n = 0;
    while (nas_fuzz_targets[n].name != NULL)
        n++;
    tcase_add_loop_test(tc, test_fuzz_regress_target, 0, n);
    tcase_add_test(tc, test_fuzz_targets_refuse_garbage);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
