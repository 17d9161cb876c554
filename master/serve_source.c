/*
 * serve_source.c - the source options of nasctl serve, top and watch
 * (serve_source.h).
 */
#include "master/serve_source.h"

#include "common/cli.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

enum { OPT_DB = 256, OPT_MASTER, OPT_KEY, OPT_MASTER_KEY, OPT_REFRESH };

static const struct option source_options[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"master", required_argument, NULL, OPT_MASTER},
    {"key", required_argument, NULL, OPT_KEY},
    {"master-key", required_argument, NULL, OPT_MASTER_KEY},
    {"refresh-ms", required_argument, NULL, OPT_REFRESH},
    {"help", no_argument, NULL, NAS_CLI_HELP},
    {"version", no_argument, NULL, NAS_CLI_VERSION},
};

#define N_SOURCE  (sizeof source_options / sizeof *source_options)
#define MAX_OWN   16

int nas_serve_source_long(const char *prog, const char *name, const char *arg, long lo, long hi,
                          long *out) {
    char *end;
    long v = strtol(arg, &end, 10);
    if (*end || end == arg || v < lo || v > hi) {
        fprintf(stderr, "%s: --%s wants %ld..%ld, got '%s'\n", prog, name, lo, hi, arg);
        return NAS_EXIT_USAGE;
    }
    *out = v;
    return 0;
}

int nas_serve_source_parse(int argc, char **argv, const char *prog, void (*usage)(FILE *),
                           const struct option *own, nas_serve_source_take_fn take, void *ctx,
                           nas_serve_source *src) {
    struct option longs[N_SOURCE + MAX_OWN + 1];
    size_t n = 0;
    for (; n < N_SOURCE; n++)
        longs[n] = source_options[n];
    for (size_t i = 0; own && own[i].name && n < N_SOURCE + MAX_OWN; i++)
        longs[n++] = own[i];
    memset(&longs[n], 0, sizeof longs[n]);
    src->db = src->master = src->key = src->master_key = NULL;
    optind = 0; /* glibc: a fresh scan of this argument vector */
    int ch, status;
    while ((ch = nas_cli_next(argc, argv, longs, prog, usage, &status)) != -1) {
        if (ch == NAS_CLI_EXIT) return status == NAS_EXIT_OK ? -1 : status;
        int rc = 0;
        switch (ch) {
        case OPT_DB:
            src->db = optarg;
            break;
        case OPT_MASTER:
            src->master = optarg;
            break;
        case OPT_KEY:
            src->key = optarg;
            break;
        case OPT_MASTER_KEY:
            src->master_key = optarg;
            break;
        case OPT_REFRESH:
            rc = nas_serve_source_long(prog, "refresh-ms", optarg, 10, 3600000, &src->refresh_ms);
            break;
        default:
            rc = take ? take(ctx, ch, optarg) : NAS_EXIT_USAGE;
        }
        if (rc) return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (try --help)\n", prog, argv[optind]);
        return NAS_EXIT_USAGE;
    }
    if (!src->db) {
        fprintf(stderr, "%s: --db FILE is required (try --help)\n", prog);
        return NAS_EXIT_USAGE;
    }
    return 0;
}

int nas_serve_source_open(const char *prog, const nas_serve_source *src, nas_serve_model **model,
                          nas_serve_master **master) {
    char err[NAS_ERR_LEN];
    *model = NULL;
    if (master) *master = NULL;
    if (nas_serve_model_open(model, src->db, err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    if (master && src->master &&
        nas_serve_master_open(master, src->master, src->key, src->master_key, err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        nas_serve_model_close(model);
        return 1;
    }
    return 0;
}
