/*
 * cli.c - the shared option conventions (cli.h).
 *
 * getopt_long's own messages are turned off (opterr = 0) and replaced by
 * one wording for all binaries, which names the option and points at
 * --help.  The leading ':' in the short-option string makes a missing
 * value come back as ':' rather than '?', so the two get different
 * messages.
 */
#include "common/cli.h"

int nas_cli_next(int argc, char **argv, const struct option *options, const char *prog,
                 void (*usage)(FILE *), int *status) {
    opterr = 0;
    int c = getopt_long(argc, argv, ":h", options, NULL);
    const char *at = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    *status = NAS_EXIT_USAGE;
    switch (c) {
    case NAS_CLI_HELP:
        if (usage) usage(stdout);
        *status = NAS_EXIT_OK;
        return NAS_CLI_EXIT;
    case NAS_CLI_VERSION:
        printf("%s (nasd) %s\n", prog, NAS_VERSION);
        *status = NAS_EXIT_OK;
        return NAS_CLI_EXIT;
    case ':':
        fprintf(stderr, "%s: %s needs a value (try --help)\n", prog, at);
        return NAS_CLI_EXIT;
    case '?':
        fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, at);
        return NAS_CLI_EXIT;
    default:
        *status = NAS_EXIT_OK;
        return c;
    }
}
