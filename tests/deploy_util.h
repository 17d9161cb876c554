/*
 * deploy_util.h - runs one deployment test script (tests/deploy/NAME.sh)
 * from a Check suite.  The scripts drive real tools (dpkg, sshd, Slurm,
 * systemd-analyze, kubectl); each exits 0 when every check held, 77 with a
 * "SKIP: reason" line when a tool this machine lacks is needed, and
 * anything else on a failure, after saying which check failed.
 */
#ifndef NAS_TEST_DEPLOY_UTIL_H
#define NAS_TEST_DEPLOY_UTIL_H

/* The exit status a script uses to say it was skipped (as in automake). */
#define NAS_DEPLOY_SKIP 77

/* Run tests/deploy/<script> under bash, copying its output to stdout, and
 * fail the current test unless it passed or skipped. */
void nas_deploy_check(const char *script);

#endif
