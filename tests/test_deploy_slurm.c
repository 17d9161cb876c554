// nas-test: label=e2e timeout=600
/*
 * test_deploy_slurm.c - deploy/slurm/nasd.sbatch on a real single-node
 * Slurm started for the test (munged, slurmctld, slurmd): a campaign
 * through sbatch, `scontrol requeue` midway, the resume on the job's
 * second run (tests/deploy/slurm.sh).
 */
#include "tests/deploy_util.h"
#include "tests/harness.h"

START_TEST(test_deploy_slurm_requeue) { nas_deploy_check("slurm.sh"); }
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("deploy_slurm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_deploy_slurm_requeue);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
