// nas-test: label=slow timeout=1800
/*
 * test_deploy_clean.c - the Debian package on a clean Debian 12 booted with
 * systemd in systemd-nspawn: dpkg -i, apt-get -f install, systemctl start
 * nas-worker@1 joining a master outside, the watchdog, dpkg -r and -P
 * (tests/deploy/clean.sh).  Opt-in (NAS_DEPLOY_CLEAN=1: root, a Debian
 * mirror, minutes); it skips otherwise, saying so.
 */
#include "tests/deploy_util.h"
#include "tests/harness.h"

START_TEST(test_deploy_clean_debian) { nas_deploy_check("clean.sh"); }
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("deploy_clean");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, test_deploy_clean_debian);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
