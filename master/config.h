/*
 * config.h - the campaign file: YAML (libyaml) into a typed struct.
 *
 * A campaign file says what to search (space, strategy), on what data, how
 * cheaply to train each candidate (fidelity), how long to search (budget),
 * how to retrain the best at the end (final), and where the master listens.
 * docs/CAMPAIGN.md documents every key and its default; deploy/examples/
 * holds complete files.
 *
 * Every problem is an error that names the file, the line and the key path
 * ("campaign.yaml:12: fidelity.epochs: must be >= 1, got -3"): unknown keys
 * (with a suggestion), wrong types, impossible values and contradictions
 * between keys.  Nothing in a config file can crash the master.
 *
 * Identity: the config keeps its original bytes (for people) and a
 * canonical text of the keys that decide what the search computes, one
 * "key.path: value" line each, with every default filled in.  Its hash is
 * what the store compares when a campaign is resumed, so comments, key
 * order, spelling out a default, or moving the master to another port do
 * not count as a different campaign, while changing an epoch count does.
 */
#ifndef NAS_CONFIG_H
#define NAS_CONFIG_H

#include "master/schedule.h"
#include "master/strategy.h"

#include <stddef.h>
#include <stdint.h>

#define NAS_CONFIG_PATH_MAX     256
#define NAS_CONFIG_ENDPOINT_MAX 128
#define NAS_CONFIG_NAME_MAX     64
#define NAS_CONFIG_MAX_SEEDS    32 /* final.seeds */

/* schedule.kind (docs/CAMPAIGN.md, *schedule*). */
enum nas_config_schedule_kind {
    NAS_CONFIG_SCHEDULE_NONE = 0, /* one fidelity, as without a schedule key */
    NAS_CONFIG_SCHEDULE_ASHA = 1,
    NAS_CONFIG_SCHEDULE_HYPERBAND = 2,
    NAS_CONFIG_SCHEDULE_SHA = 3,
};

/* early_stop.rule. */
enum nas_config_stop_rule {
    NAS_CONFIG_STOP_NONE = 0,
    NAS_CONFIG_STOP_MEDIAN = 1,
    NAS_CONFIG_STOP_EXTRAPOLATE = 2,
};

enum nas_config_eval_mode {
    NAS_CONFIG_EVAL_TRAIN = 0, /* workers train every candidate */
    NAS_CONFIG_EVAL_TABLE = 1, /* look results up in a benchmark table (NAS-Bench style) */
};

typedef struct nas_config {
    char name[NAS_CONFIG_NAME_MAX]; /* campaign name: letters, digits, '.', '_', '-' */
    uint64_t seed;                  /* root of every random choice of the campaign */
    struct {
        char set[32];                  /* "fashion-mnist", "mnist", "cifar10" */
        char dir[NAS_CONFIG_PATH_MAX]; /* where the dataset files are */
    } data;
    /* Space, strategy parameters and budget.evaluations (as strategy.budget). */
    nas_strategy_config strategy;
    struct {
        int evaluations;    /* search-stage evaluations (>= 1) */
        double wall_time_s; /* stop proposing after this long; 0 = no limit */
        int epochs;         /* stop proposing after this many epochs trained; 0 = no limit */
    } budget;
    nas_fidelity fidelity; /* search-stage training */
    struct {
        int top_k;             /* architectures retrained at the end; 0 = no final stage */
        nas_fidelity fidelity; /* final-stage training */
        /* Size targets of the final network (0 = off): F and N are chosen per
         * architecture so that it has at most this many parameters / MACs. */
        int64_t target_params, target_macs;
        int seeds; /* training runs per architecture (seeds fidelity.seed + 0..seeds-1) */
    } final;
    struct {
        char control[NAS_CONFIG_ENDPOINT_MAX]; /* ROUTER for workers */
        char weights[NAS_CONFIG_ENDPOINT_MAX]; /* ROUTER for weight transfers */
        char status[NAS_CONFIG_ENDPOINT_MAX];  /* read-only status endpoint */
    } listen;
    struct {
        int heartbeat_ms;       /* heartbeat interval */
        int liveness;           /* beats missed before a peer counts as dead */
        int max_attempts;       /* attempts before a task is failed for good */
        int max_failed_in_a_row; /* tasks failed for good in a row that stop the campaign; 0: off */
        int64_t lease_grace_ms; /* slack added to a lease beyond the fidelity's time limit */
    } workers;
    struct {
        int inherit;           /* 1 = children start from their parent's weights */
        int64_t memory_budget; /* bytes of weights kept in memory before spilling */
    } weights;
    struct {
        int mode;                        /* enum nas_config_eval_mode */
        char table[NAS_CONFIG_PATH_MAX]; /* benchmark table file (mode table) */
        char signal_column[64];          /* column used as the search signal */
        char report_column[64];          /* column reported as test accuracy */
    } evaluation;
    char store[NAS_CONFIG_PATH_MAX]; /* SQLite file of the campaign */
    /* Multi-fidelity search (master/campaign_sched.c). */
    struct {
        int kind; /* enum nas_config_schedule_kind */
        int eta, n0, max_open;
        int n_rungs;
        nas_fidelity rungs[NAS_SCHED_MAX_RUNGS]; /* `fidelity` with each rung's keys over it */
    } schedule;
    struct {
        int rule; /* enum nas_config_stop_rule */
        int min_epochs, min_runs;
        double delta;
    } early_stop;
    /* Extra top-rung evaluations that measure the rank correlation early. */
    struct {
        int samples;
    } fidelity_check;

    /* Filled by load/parse; owned, freed by nas_config_fini(). */
    char source[NAS_CONFIG_PATH_MAX]; /* file name used in messages */
    char *text;                       /* the original bytes, NUL-terminated */
    size_t text_len;
    char *canonical; /* identity lines (see above) */
    uint64_t hash;   /* FNV-1a 64 of canonical */
} nas_config;

/* Every default (docs/CAMPAIGN.md).  The owned pointers are NULL. */
nas_config nas_config_default(void);

/* Read and parse a campaign file.  On success *cfg owns its text and
 * canonical form (release with nas_config_fini()); on failure *cfg holds
 * nothing to free and err says file:line: key: problem. NAS_EIO when the
 * file cannot be read, NAS_ECONFIG for everything about its content. */
int nas_config_load(const char *path, nas_config *cfg, char *err);

/* The same from bytes in memory; `source` names them in messages (NULL
 * gives "<config>"). */
int nas_config_parse(const char *text, size_t len, const char *source, nas_config *cfg, char *err);

/* Free what load/parse allocated; safe on a default or zeroed config and
 * twice in a row. */
void nas_config_fini(nas_config *cfg);

/* 1 when a line of the canonical text names a key that is recorded but
 * not part of the identity (budget.*, fidelity.threads): a resume may
 * change it (docs/CAMPAIGN.md, "Identity"). */
int nas_config_line_extensible(const char *line, size_t len);

/* Parse a duration ("90", "90s", "10m", "2h", "1h30m", "500ms", "1d") into
 * seconds, or a size ("256MB", "1GiB", "4096") into bytes (K/M/G/T with or
 * without "B" or "iB" are all powers of 1024).  NAS_EINVAL on anything
 * else, including negative values. */
int nas_config_parse_duration(const char *s, double *seconds);
int nas_config_parse_size(const char *s, int64_t *bytes);

#endif
