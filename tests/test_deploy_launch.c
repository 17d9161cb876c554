// nas-test: label=e2e timeout=600
/*
 * test_deploy_launch.c - deploy/launch.sh, the ssh path, against a real
 * sshd on this machine: keys copied over ssh, workers on two ssh hosts, a
 * kill -9 of the master and a worker, the resume, the stop
 * (tests/deploy/ssh.sh).
 */
#include "tests/deploy_util.h"
#include "tests/harness.h"

START_TEST(test_deploy_launch_ssh) { nas_deploy_check("ssh.sh"); }
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("deploy_launch");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_deploy_launch_ssh);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
