// nas-test: label=slow timeout=600
/*
 * test_deploy_install.c - what an operator installs: `cmake --install` into
 * a scratch root, run from there (tests/deploy/install.sh), and the Debian
 * package built with CPack and taken apart with dpkg-deb
 * (tests/deploy/deb.sh).  Each check is a script in tests/deploy/.
 */
#include "tests/deploy_util.h"
#include "tests/harness.h"

START_TEST(test_deploy_install_tree) { nas_deploy_check("install.sh"); }
END_TEST

START_TEST(test_deploy_debian_package) { nas_deploy_check("deb.sh"); }
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("deploy_install");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_deploy_install_tree);
    tcase_add_test(tc, test_deploy_debian_package);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
