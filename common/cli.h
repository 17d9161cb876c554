/*
 * cli.h - the command-line conventions of the four binaries (nas-master,
 * nas-worker, nasctl, nas-train), in one place: options are parsed by
 * getopt_long, so `--opt VALUE` and `--opt=VALUE` both work; --help and
 * --version are answered the same way everywhere; a missing value or an
 * unknown option is named on stderr; and the exit status is 0 for success,
 * 1 for a runtime error, 2 for a usage error.
 */
#ifndef NAS_CLI_H
#define NAS_CLI_H

#include <getopt.h>
#include <stdio.h>

enum { NAS_EXIT_OK = 0, NAS_EXIT_RUNTIME = 1, NAS_EXIT_USAGE = 2 };

/* What a long-option table maps --help and --version to. */
#define NAS_CLI_HELP    'h'
#define NAS_CLI_VERSION 'V'

/* nas_cli_next's answer when the program must exit now: *status holds the
 * exit status (0 after --help or --version, 2 after a usage error). */
#define NAS_CLI_EXIT (-2)

/* The next option as getopt_long returns it (its `val`, or -1 after the
 * last option; the operands are then argv[optind..]), after handling what
 * every binary does alike: --help prints usage(stdout), --version prints
 * "PROG (nasd) VERSION", and a missing value or an unknown option is
 * reported as "PROG: ..." on stderr; those return NAS_CLI_EXIT.  `prog`
 * names the program in messages ("nasctl best").  Set optind = 0 before
 * scanning a second argument vector in one process. */
int nas_cli_next(int argc, char **argv, const struct option *options, const char *prog,
                 void (*usage)(FILE *), int *status);

#endif
