/*
 * serve_source.h - where nasctl's watching commands (serve, top, watch)
 * read a campaign from, and their command lines.
 *
 * All three take the same source options: --db FILE (the store, read
 * through serve_model.h), --master EP with --key BASE and --master-key FILE
 * (a live master's status socket, CurveZMQ where it has keys), and
 * --refresh-ms N (how often to look for commits).  They are parsed here,
 * once, with the shared conventions of common/cli.h; each command adds
 * its own options and handles them in a callback.
 */
#ifndef NAS_SERVE_SOURCE_H
#define NAS_SERVE_SOURCE_H

#include "master/serve_live.h"
#include "master/serve_model.h"

#include <getopt.h>
#include <stdio.h>

typedef struct nas_serve_source {
    const char *db;                       /* required */
    const char *master, *key, *master_key; /* optional: NULL when not given */
    long refresh_ms;                      /* the caller's default until --refresh-ms */
} nas_serve_source;

/* A command's own option, as getopt_long returned it (`ch` is the option's
 * val, `arg` its value or NULL).  Returns 0, or 2 after printing "PROG:
 * ..." for a bad value. */
typedef int (*nas_serve_source_take_fn)(void *ctx, int ch, const char *arg);

/* Parse argv (argv[0] is the command's name; "PROG" in messages is
 * `prog`, e.g. "nasctl serve").  `own` lists the command's own options
 * (terminated by a zeroed entry; their vals must be below 256) and `take`
 * receives them.  Fills *src, keeping src->refresh_ms unless given.
 * Returns 0 to go on, -1 after --help or --version (exit 0), or 2 after a
 * usage error it printed: an unknown option, a missing value, an
 * operand, a bad number, or no --db. */
int nas_serve_source_parse(int argc, char **argv, const char *prog, void (*usage)(FILE *),
                           const struct option *own, nas_serve_source_take_fn take, void *ctx,
                           nas_serve_source *src);

/* An integer option's value in lo..hi into *out; otherwise prints "PROG:
 * --NAME wants LO..HI, got 'ARG'" and returns 2. */
int nas_serve_source_long(const char *prog, const char *name, const char *arg, long lo, long hi,
                          long *out);

/* Open what *src names: the store's model, and with --master the master's
 * status connection (*master stays NULL without it; master may be NULL
 * for a command that never asks the master).  Returns 0, or 1 after
 * printing "PROG: reason" with nothing left open. */
int nas_serve_source_open(const char *prog, const nas_serve_source *src, nas_serve_model **model,
                          nas_serve_master **master);

#endif
