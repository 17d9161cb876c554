/*
 * nasctl_fidelity.h - the nasctl commands about fidelity, read from a
 * campaign store:
 *   curve TASK --db FILE [--json]   a task's validation accuracy per epoch
 *   fidelity --db FILE [--json]     Spearman's rho and Kendall's tau between
 *                                   the campaign's fidelities, with n, and a
 *                                   warning where the cheaper one ranks poorly
 */
#ifndef NAS_NASCTL_FIDELITY_H
#define NAS_NASCTL_FIDELITY_H

/* Run `cmd` ("curve" or "fidelity") on the store `db`, as JSON or text;
 * `task` is curve's TASK argument (nasctl.c parses the command line).
 * Returns the process exit status: 0 success, 1 failure (a message on
 * stderr), 2 usage. */
int nas_nasctl_fidelity(const char *cmd, const char *db, int json, const char *task);

#endif
