/*
 * config_schedule.c - the `schedule` and `early_stop` sections of a
 * campaign file (docs/CAMPAIGN.md, *schedule*): their key tables, the list
 * of rungs, and the checks of the ladder.
 *
 * A rung is a partial `fidelity` mapping: rung k trains at the search
 * fidelity with rung k's keys over it, wherever in the file `fidelity`
 * is.  The walk therefore stores each rung's own keys (the rest zero) and
 * remembers which were written; the finish step, once `fidelity` is
 * known, lays them over it.  A promoted candidate continues from its own
 * weights, so the fields that would break continuation or comparability
 * (resolution, channels, cells, val_size, seed) may not change between
 * rungs, and epochs must grow.
 *
 * The campaign runs them in master/campaign_sched.c.
 */
#include "master/config_internal.h"

#include "common/err.h"
#include "master/schedule.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define CO(member) offsetof(nas_config, member)

static const char *const schedule_kinds[] = {"none", "asha", "hyperband", "sha", NULL};
static const char *const stop_rules[] = {"none", "median", "extrapolate", NULL};

const nas__cfg_field nas__schedule_fields[] = {
    {"kind", NAS__T_ENUM, CO(schedule.kind), 0, 0, 0, NULL, schedule_kinds, 1},
    {"eta", NAS__T_INT, CO(schedule.eta), 0, 2, 100, NULL, NULL, 1},
    {"rungs", NAS__T_RUNGS, CO(schedule.rungs), 0, 0, 0, NULL, NULL, 1},
    {"n0", NAS__T_INT, CO(schedule.n0), 0, 0, 1000000, NULL, NULL, 1},
    {"max_open", NAS__T_INT, CO(schedule.max_open), 0, 0, 1000, NULL, NULL, 1},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

const nas__cfg_field nas__early_stop_fields[] = {
    {"rule", NAS__T_ENUM, CO(early_stop.rule), 0, 0, 0, NULL, stop_rules, 1},
    {"min_epochs", NAS__T_INT, CO(early_stop.min_epochs), 0, 1, 100000, NULL, NULL, 1},
    {"min_runs", NAS__T_INT, CO(early_stop.min_runs), 0, 1, 1000000, NULL, NULL, 1},
    {"delta", NAS__T_DOUBLE, CO(early_stop.delta), 0, 0, 1, NULL, NULL, 1},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

const nas__cfg_field nas__fidelity_check_fields[] = {
    {"samples", NAS__T_INT, CO(fidelity_check.samples), 0, 0, 1000000, NULL, NULL, 1},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

/* In the identity only when set, so a file without the key keeps the
 * hash it always had. */
const nas__cfg_field nas__fidelity_check_identity[] = {
    {"fidelity_check", NAS__T_MAP, 0, 0, 0, 0, nas__fidelity_check_fields, NULL, 1},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

const nas__cfg_field nas__schedule_identity[] = {
    {"schedule", NAS__T_MAP, 0, 0, 0, 0, nas__schedule_fields, NULL, 1},
    {"early_stop", NAS__T_MAP, 0, 0, 0, 0, nas__early_stop_fields, NULL, 1},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

static int line_of_node(const yaml_node_t *n) {
    return (int)n->start_mark.line + 1;
}

int nas__cfg_set_rungs(nas__cfg_ctx *cx, yaml_node_t *list, const char *path, nas_config *cfg) {
    if (list->type != YAML_SEQUENCE_NODE)
        return nas__cfg_error(cx, line_of_node(list), path,
                              "expected a list of fidelity mappings such as "
                              "[{epochs: 1}, {epochs: 3}]");
    int n = 0;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++, n++) {
        yaml_node_t *item = yaml_document_get_node(cx->doc, *it);
        if (!item) return nas__cfg_error(cx, line_of_node(list), path, "unreadable rung");
        if (n == NAS_SCHED_MAX_RUNGS)
            return nas__cfg_error(cx, line_of_node(item), path, "at most %d rungs",
                                  NAS_SCHED_MAX_RUNGS);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s[%d]", path, n);
        memset(&cfg->schedule.rungs[n], 0, sizeof cfg->schedule.rungs[n]);
        int rc = nas__cfg_walk(cx, item, nas__fidelity_fields, (char *)&cfg->schedule.rungs[n],
                               prefix, cfg);
        if (rc != NAS_OK) return rc;
    }
    cfg->schedule.n_rungs = n;
    return NAS_OK;
}

/* Bytes of a fidelity leaf of this type. */
static size_t leaf_size(int type) {
    switch (type) {
    case NAS__T_U64:
        return sizeof(uint64_t);
    case NAS__T_DURATION:
    case NAS__T_DOUBLE:
        return sizeof(double);
    case NAS__T_FLOAT:
        return sizeof(float);
    default:
        return sizeof(int);
    }
}

/* Fields a rung may not change: continuation loads the candidate's own
 * tensors (same F, N), at the same input scale, validated on the same
 * images, with the same training seed. */
static const char *const fixed_fields[] = {"resolution", "channels", "cells",
                                           "val_size",   "seed",     NULL};

/* Rung k = `fidelity` with the keys written under rungs[k] laid over it. */
static int build_rung(nas__cfg_ctx *cx, nas_config *cfg, int k) {
    nas_fidelity f = cfg->fidelity;
    const char *rung = (const char *)&cfg->schedule.rungs[k];
    char path[96];
    for (const nas__cfg_field *fd = nas__fidelity_fields; fd->key; fd++) {
        snprintf(path, sizeof path, "schedule.rungs[%d].%s", k, fd->key);
        int line = nas__cfg_line_of(cx, path);
        if (!line) continue;
        memcpy((char *)&f + fd->off, rung + fd->off, leaf_size(fd->type));
        for (const char *const *x = fixed_fields; *x; x++)
            if (strcmp(*x, fd->key) == 0 &&
                memcmp((char *)&f + fd->off, (const char *)&cfg->fidelity + fd->off,
                       leaf_size(fd->type)) != 0)
                return nas__cfg_error(cx, line, path,
                                      "may not differ from fidelity.%s: a promoted candidate "
                                      "continues from its own weights, trained at that value "
                                      "(docs/CAMPAIGN.md, schedule)",
                                      fd->key);
    }
    char err[NAS_ERR_LEN];
    snprintf(path, sizeof path, "schedule.rungs[%d]", k);
    if (nas_fidelity_validate(&f, err) < 0)
        return nas__cfg_error(cx, nas__cfg_line_of(cx, "schedule.rungs"), path, "%s", err);
    if (k > 0 && f.epochs <= cfg->schedule.rungs[k - 1].epochs) {
        snprintf(path, sizeof path, "schedule.rungs[%d].epochs", k);
        int line = nas__cfg_line_of(cx, path);
        return nas__cfg_error(cx, line ? line : nas__cfg_line_of(cx, "schedule.rungs"), path,
                              "must be above rung %d's (%d), got %d: a promotion trains longer",
                              k - 1, cfg->schedule.rungs[k - 1].epochs, f.epochs);
    }
    cfg->schedule.rungs[k] = f;
    return NAS_OK;
}

int nas__cfg_schedule_finish(nas__cfg_ctx *cx, nas_config *cfg) {
    int kind_line = nas__cfg_line_of(cx, "schedule.kind");
    int any = 0;
    for (const nas__cfg_field *f = nas__schedule_fields; f->key; f++) {
        char path[64];
        snprintf(path, sizeof path, "schedule.%s", f->key);
        any |= nas__cfg_line_of(cx, path) != 0;
    }
    if (any && cfg->schedule.kind == NAS_CONFIG_SCHEDULE_NONE)
        return nas__cfg_error(cx, kind_line ? kind_line : nas__cfg_line_of(cx, "schedule"),
                              "schedule.kind",
                              "is required with other schedule keys (asha, "
                              "hyperband or sha)");
    if (cfg->fidelity_check.samples > 0 && cfg->schedule.kind == NAS_CONFIG_SCHEDULE_NONE)
        return nas__cfg_error(cx, nas__cfg_line_of(cx, "fidelity_check.samples"),
                              "fidelity_check.samples",
                              "needs a schedule: its samples train at the top rung");
    if (cfg->schedule.kind != NAS_CONFIG_SCHEDULE_NONE) {
        if (cfg->schedule.n_rungs < 2)
            return nas__cfg_error(cx, kind_line, "schedule.rungs",
                                  "needs at least two rungs (cheapest first), got %d",
                                  cfg->schedule.n_rungs);
        for (int k = 0; k < cfg->schedule.n_rungs; k++) {
            int rc = build_rung(cx, cfg, k);
            if (rc != NAS_OK) return rc;
        }
        /* The scheduler checks what only it knows (bracket sizes). */
        static const int kinds[] = {0, NAS_SCHED_ASHA, NAS_SCHED_HYPERBAND, NAS_SCHED_SHA};
        nas_sched_config sc = {kinds[cfg->schedule.kind], cfg->schedule.eta, cfg->schedule.n_rungs,
                               cfg->schedule.n0, cfg->schedule.max_open};
        nas_sched *s = NULL;
        char err[NAS_ERR_LEN];
        if (nas_sched_create(&s, &sc, err) < 0)
            return nas__cfg_error(cx, kind_line, "schedule", "%s", err);
        nas_sched_destroy(&s);
    }
    return NAS_OK;
}
