/*
 * config_internal.h - what config.c (key table, YAML walk) shares with
 * config_scalar.c (one scalar's parsing and range check), config_check.c
 * (cross-key checks, canonical text, hash) and config_schedule.c.
 */
#ifndef NAS_CONFIG_INTERNAL_H
#define NAS_CONFIG_INTERNAL_H

#include "master/config.h"

#include <yaml.h>

enum nas__cfg_type {
    NAS__T_INT,         /* int */
    NAS__T_I64,         /* int64_t */
    NAS__T_U64,         /* uint64_t (seeds) */
    NAS__T_FLOAT,       /* float */
    NAS__T_DOUBLE,      /* double */
    NAS__T_BOOL,        /* int 0/1 */
    NAS__T_STR,         /* char[cap], optionally restricted to `names` */
    NAS__T_ENUM,        /* int index into `names` */
    NAS__T_DURATION,    /* double seconds */
    NAS__T_DURATION_MS, /* int64_t milliseconds */
    NAS__T_SIZE,        /* int64_t bytes */
    NAS__T_MAP,         /* nested table `sub`, base moved by `off` */
    NAS__T_OPS,         /* list of op names -> space.op_mask (resolved after the walk) */
    NAS__T_SEEDS,       /* list of preset names -> strategy.seeds */
    NAS__T_RUNGS,       /* list of partial fidelity mappings -> schedule.rungs */
};

/* One key of a campaign file. */
typedef struct nas__cfg_field {
    const char *key;
    int type;                         /* enum nas__cfg_type */
    size_t off;                       /* where the value goes, from the walk's base */
    size_t cap;                       /* NAS__T_STR: buffer size */
    double lo, hi;                    /* numeric range; 0/0 = unchecked */
    const struct nas__cfg_field *sub; /* NAS__T_MAP: NULL-key-terminated table */
    const char *const *names;         /* allowed words (NULL-terminated) */
    int ident; /* 0 = not recorded; 1 = part of the campaign identity (hash); 2 = recorded, a
                  resume may change it; 3 = in the identity only when it differs from its
                  default (keys added later, so older files keep their hash) */
} nas__cfg_field;

/* The top-level table (NULL-key-terminated). */
extern const nas__cfg_field nas__config_fields[];
/* The leaves of a fidelity mapping (offsets into a nas_fidelity). */
extern const nas__cfg_field nas__fidelity_fields[];
/* schedule and early_stop (config_schedule.c): in the top-level table
 * outside the identity, and in it through nas__schedule_identity only when
 * set, so files without them keep the hash they always had. */
extern const nas__cfg_field nas__schedule_fields[];
extern const nas__cfg_field nas__early_stop_fields[];
extern const nas__cfg_field nas__fidelity_check_fields[];
extern const nas__cfg_field nas__fidelity_check_identity[];
extern const nas__cfg_field nas__schedule_identity[];

/* Parse state: where messages go and which key was set on which line. */
typedef struct nas__cfg_ctx {
    yaml_document_t *doc;
    const char *source;
    char *err;
    yaml_node_t *ops_node; /* space.ops, resolved once space.kind is known */
    struct {
        char path[96];
        int line;
    } seen[256];
    int n_seen;
} nas__cfg_ctx;

/* "source:line: path: message" into cx->err; returns NAS_ECONFIG. */
int nas__cfg_error(nas__cfg_ctx *cx, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Line where `path` was set, 0 if it kept its default. */
int nas__cfg_line_of(const nas__cfg_ctx *cx, const char *path);

/* A suggestion for a misspelt word among `words` (array of strings with a
 * stride, so it also walks the key table). */
void nas__cfg_suggest(const char *got, const char *const *words, size_t stride, char *buf,
                      size_t cap);

int nas__cfg_walk(nas__cfg_ctx *cx, yaml_node_t *map, const nas__cfg_field *table, char *base,
                  const char *prefix, nas_config *cfg);
/* One scalar into dst, checked against f's type and range (config_scalar.c). */
int nas__cfg_set_scalar(nas__cfg_ctx *cx, const nas__cfg_field *f, int line, const char *path,
                        const char *v, int quoted, void *dst);
/* What a key of that type looks like, for "expected ..., got ..." messages. */
const char *nas__cfg_type_words(int type);

/* schedule.rungs: each item a partial fidelity mapping (config_schedule.c). */
int nas__cfg_set_rungs(nas__cfg_ctx *cx, yaml_node_t *list, const char *path, nas_config *cfg);
/* After the cross-key checks: fill each rung from `fidelity` and its own
 * keys and check the ladder (config_schedule.c). */
int nas__cfg_schedule_finish(nas__cfg_ctx *cx, nas_config *cfg);

/* After the walk: resolve ops and derived defaults, check keys against
 * each other, copy the text and build the canonical form and hash. */
int nas__cfg_finish(nas__cfg_ctx *cx, nas_config *cfg, const char *text, size_t len);

#endif
