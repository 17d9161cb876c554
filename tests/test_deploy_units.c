// nas-test: label=slow timeout=600
/*
 * test_deploy_units.c - the deployment files that this machine can check
 * without running a cluster: the systemd units (systemd-analyze verify),
 * the Kubernetes base (rendered with kubectl kustomize, checked object by
 * object, its probe run against a real master) and the Dockerfile (its
 * structure; built and run where a container engine works).  Each check is
 * a script in tests/deploy/.
 */
#include "tests/deploy_util.h"
#include "tests/harness.h"

START_TEST(test_deploy_systemd_units) { nas_deploy_check("systemd.sh"); }
END_TEST

START_TEST(test_deploy_k8s_base) { nas_deploy_check("k8s.sh"); }
END_TEST

START_TEST(test_deploy_dockerfile) { nas_deploy_check("docker.sh"); }
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("deploy_units");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_deploy_systemd_units);
    tcase_add_test(tc, test_deploy_k8s_base);
    tcase_add_test(tc, test_deploy_dockerfile);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
