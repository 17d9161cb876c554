/*
 * config.c - campaign files: defaults, the key table, and the YAML walk.
 *
 * The whole schema is one table of keys (name, type, where the value goes,
 * allowed range or words, whether it belongs to the campaign's identity).
 * The walker checks each YAML mapping against its table, so an unknown key,
 * a duplicate, a wrong type or a value out of range is caught where it is,
 * with its line.  A scalar's parsing and range check are config_scalar.c;
 * checks that involve several keys, the canonical text and the hash live
 * in config_check.c.
 */
#include "master/config_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- defaults ----------------------------------------------------------------------------------

/* The final stage trains few architectures thoroughly: native resolution,
 * all training images, more channels and cells, augmentation, test set. */
static nas_fidelity final_fidelity_default(void) {
    nas_fidelity f = nas_fidelity_default();
    f.resolution = 0;
    f.train_subset = 0;
    f.epochs = 20;
    f.channels = 16;
    f.cells = 2;
    f.warmup_epochs = 1.0f;
    f.augment = 1;
    f.test = 1;
    return f;
}

nas_config nas_config_default(void) {
    nas_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "nasd");
    c.seed = 1;
    snprintf(c.data.set, sizeof c.data.set, "fashion-mnist");
    c.data.dir[0] = '\0'; /* "" = /usr/share/datasets/<set>, resolved after parsing */

    nas_strategy_config_default(&c.strategy);
    c.strategy.space.op_mask = 0; /* resolved to the kind's default set after parsing */
    c.strategy.max_blocks = 0;    /* 0 = space.blocks, resolved after parsing */

    c.budget.evaluations = 100;
    c.fidelity = nas_fidelity_default();
    c.final.top_k = 0;
    c.final.fidelity = final_fidelity_default();
    c.final.seeds = 1;
    snprintf(c.listen.control, sizeof c.listen.control, "tcp://127.0.0.1:5555");
    snprintf(c.listen.weights, sizeof c.listen.weights, "tcp://127.0.0.1:5556");
    snprintf(c.listen.status, sizeof c.listen.status, "tcp://127.0.0.1:5557");
    c.workers.heartbeat_ms = 1000;
    c.workers.liveness = 5;
    c.workers.max_attempts = 3;
    c.workers.max_failed_in_a_row = 10;
    c.workers.lease_grace_ms = 30000;
    c.weights.inherit = 1;
    c.weights.memory_budget = 256ll << 20;
    c.evaluation.mode = NAS_CONFIG_EVAL_TRAIN;
    snprintf(c.evaluation.signal_column, sizeof c.evaluation.signal_column, "valid_accuracy");
    snprintf(c.evaluation.report_column, sizeof c.evaluation.report_column, "test_accuracy");
    c.store[0] = '\0'; /* "" = "<name>.db", resolved after parsing */
    c.schedule.eta = 3;
    c.early_stop.min_epochs = 2;
    c.early_stop.min_runs = 5;
    c.early_stop.delta = 0.05;
    snprintf(c.source, sizeof c.source, "<config>");
    return c;
}

// ---- the key table -----------------------------------------------------------------------------

static const char *const data_sets[] = {"fashion-mnist", "mnist", "cifar10", NULL};
/* = enum nas_space_kind */
static const char *const space_kinds[] = {"cell", "nb201", "mbconv", "chain", "hierarchical", NULL};
static const char *const mutation_modes[] = {"plain", "morphism", NULL}; /* = nas_space.morphisms */
static const char *const strategy_names[] = {"random", "evolution", "pnas", NULL};
static const char *const eval_modes[] = {"train", "table", NULL}; /* = nas_config_eval_mode */

#define CO(member) offsetof(nas_config, member)
#define FO(member) offsetof(nas_fidelity, member)
#define BIG        1e15

/* Leaves of the fidelity table: offsets relative to a nas_fidelity.  The
 * ranges repeat nas_fidelity_validate() so errors can carry a line. */
const nas__cfg_field nas__fidelity_fields[] = {
    {"resolution", NAS__T_INT, FO(resolution), 0, 0, 1024, NULL, NULL, 1},
    {"train_subset", NAS__T_INT, FO(train_subset), 0, 0, 1e8, NULL, NULL, 1},
    {"val_size", NAS__T_INT, FO(val_size), 0, 0, 1e8, NULL, NULL, 1},
    {"epochs", NAS__T_INT, FO(epochs), 0, 1, 100000, NULL, NULL, 1},
    {"batch", NAS__T_INT, FO(batch), 0, 1, 65536, NULL, NULL, 1},
    {"channels", NAS__T_INT, FO(channels), 0, 1, 4096, NULL, NULL, 1},
    {"cells", NAS__T_INT, FO(cells), 0, 0, 64, NULL, NULL, 1},
    {"lr", NAS__T_FLOAT, FO(lr), 0, 0, 100, NULL, NULL, 1},
    {"warmup_epochs", NAS__T_FLOAT, FO(warmup_epochs), 0, 0, 100000, NULL, NULL, 1},
    {"momentum", NAS__T_FLOAT, FO(momentum), 0, 0, 0.9999, NULL, NULL, 1},
    {"nesterov", NAS__T_BOOL, FO(nesterov), 0, 0, 1, NULL, NULL, 1},
    {"weight_decay", NAS__T_FLOAT, FO(weight_decay), 0, 0, 1, NULL, NULL, 1},
    {"grad_clip", NAS__T_FLOAT, FO(grad_clip), 0, 0, 1e9, NULL, NULL, 1},
    {"label_smoothing", NAS__T_FLOAT, FO(label_smoothing), 0, 0, 0.999, NULL, NULL, 1},
    {"drop_path", NAS__T_FLOAT, FO(drop_path), 0, 0, 0.999, NULL, NULL, 1},
    {"augment", NAS__T_BOOL, FO(augment), 0, 0, 1, NULL, NULL, 1},
    {"test", NAS__T_BOOL, FO(test), 0, 0, 1, NULL, NULL, 1},
    {"seed", NAS__T_U64, FO(seed), 0, 0, 0, NULL, NULL, 1},
    {"time_limit", NAS__T_DURATION, FO(time_limit_s), 0, 0, 1e9, NULL, NULL, 1},
    /* Threads change how fast, and only the rounding of what is computed:
     * recorded, but a resume may change them. */
    {"threads", NAS__T_INT, FO(threads), 0, 1, 256, NULL, NULL, 2},
    /* Added later: in the identity only when set, so older files keep their hash. */
    {"cutout", NAS__T_INT, FO(cutout), 0, 0, 1024, NULL, NULL, 3},
    {"aux_weight", NAS__T_FLOAT, FO(aux_weight), 0, 0, 10, NULL, NULL, 3},
    {"progressive_start", NAS__T_INT, FO(progressive_start), 0, 0, 1024, NULL, NULL, 3},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

static const nas__cfg_field data_fields[] = {
    {"set", NAS__T_STR, CO(data.set), sizeof(((nas_config *)0)->data.set), 0, 0, NULL, data_sets,
     1},
    /* Where the files lie does not change what is computed. */
    {"dir", NAS__T_STR, CO(data.dir), NAS_CONFIG_PATH_MAX, 0, 0, NULL, NULL, 0},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

static const nas__cfg_field space_fields[] = {
    {"kind", NAS__T_ENUM, CO(strategy.space.kind), 0, 0, 0, NULL, space_kinds, 1},
    {"blocks", NAS__T_INT, CO(strategy.space.n_blocks), 0, 1, NAS_MAX_BLOCKS, NULL, NULL, 1},
    {"ops", NAS__T_OPS, CO(strategy.space.op_mask), 0, 0, 0, NULL, NULL, 1},
    {"shared", NAS__T_BOOL, CO(strategy.space.shared), 0, 0, 1, NULL, NULL, 1},
    /* Added later: in the identity only when set, so older files keep their hash. */
    {"depth_min", NAS__T_INT, CO(strategy.space.depth_min), 0, 1, NAS_CHAIN_MAX_LAYERS, NULL, NULL,
     3},
    {"depth_max", NAS__T_INT, CO(strategy.space.depth_max), 0, 1, NAS_CHAIN_MAX_LAYERS, NULL, NULL,
     3},
    {"motifs", NAS__T_INT, CO(strategy.space.motifs), 0, 1, NAS_HIER_MAX_MOTIFS, NULL, NULL, 3},
    {"motif_nodes", NAS__T_INT, CO(strategy.space.motif_nodes), 0, 2, NAS_HIER_MAX_NODES, NULL,
     NULL, 3},
    {"top_nodes", NAS__T_INT, CO(strategy.space.top_nodes), 0, 2, NAS_HIER_MAX_NODES, NULL, NULL,
     3},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

static const nas__cfg_field objective_fields[] = {
    {"target_params", NAS__T_I64, CO(strategy.target_params), 0, 0, BIG, NULL, NULL, 1},
    {"target_macs", NAS__T_I64, CO(strategy.target_macs), 0, 0, BIG, NULL, NULL, 1},
    {"weight", NAS__T_FLOAT, CO(strategy.mo_weight), 0, -10, 0, NULL, NULL, 1},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

/* Ranges agree with the strategy module's own checks (strategy.c), so a
 * file accepted here is never refused later without a line number. */
static const nas__cfg_field strategy_fields[] = {
    {"name", NAS__T_STR, CO(strategy.name), 32, 0, 0, NULL, strategy_names, 1},
    {"population", NAS__T_INT, CO(strategy.population), 0, 2, 4096, NULL, NULL, 1},
    {"sample", NAS__T_INT, CO(strategy.sample), 0, 1, 4096, NULL, NULL, 1},
    {"p_identity", NAS__T_FLOAT, CO(strategy.p_identity), 0, 0, 1, NULL, NULL, 1},
    {"mutations", NAS__T_ENUM, CO(strategy.space.morphisms), 0, 0, 0, NULL, mutation_modes, 3},
    {"seeds", NAS__T_SEEDS, CO(strategy.seeds), 0, 0, 0, NULL, NULL, 1},
    {"beam", NAS__T_INT, CO(strategy.beam), 0, 1, 100000, NULL, NULL, 1},
    {"max_blocks", NAS__T_INT, CO(strategy.max_blocks), 0, 1, NAS_MAX_BLOCKS, NULL, NULL, 1},
    {"ensemble", NAS__T_INT, CO(strategy.ensemble), 0, 0, 32, NULL, NULL, 1},
    {"lstm", NAS__T_BOOL, CO(strategy.use_lstm), 0, 0, 1, NULL, NULL, 1},
    {"objective", NAS__T_MAP, 0, 0, 0, 0, objective_fields, NULL, 1},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

/* A budget says how long the same search goes on, not what it computes:
 * recorded, and a resume may raise it (an extension). */
static const nas__cfg_field budget_fields[] = {
    {"evaluations", NAS__T_INT, CO(budget.evaluations), 0, 1, 1e9, NULL, NULL, 2},
    {"wall_time", NAS__T_DURATION, CO(budget.wall_time_s), 0, 0, 1e9, NULL, NULL, 2},
    {"epochs", NAS__T_INT, CO(budget.epochs), 0, 0, 1e9, NULL, NULL, 2},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

static const nas__cfg_field final_fields[] = {
    {"top_k", NAS__T_INT, CO(final.top_k), 0, 0, 100000, NULL, NULL, 1},
    {"fidelity", NAS__T_MAP, CO(final.fidelity), 0, 0, 0, nas__fidelity_fields, NULL, 1},
    {"target_params", NAS__T_I64, CO(final.target_params), 0, 0, BIG, NULL, NULL, 3},
    {"target_macs", NAS__T_I64, CO(final.target_macs), 0, 0, BIG, NULL, NULL, 3},
    {"seeds", NAS__T_INT, CO(final.seeds), 0, 1, NAS_CONFIG_MAX_SEEDS, NULL, NULL, 3},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

static const nas__cfg_field listen_fields[] = {
    {"control", NAS__T_STR, CO(listen.control), NAS_CONFIG_ENDPOINT_MAX, 0, 0, NULL, NULL, 0},
    {"weights", NAS__T_STR, CO(listen.weights), NAS_CONFIG_ENDPOINT_MAX, 0, 0, NULL, NULL, 0},
    {"status", NAS__T_STR, CO(listen.status), NAS_CONFIG_ENDPOINT_MAX, 0, 0, NULL, NULL, 0},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

static const nas__cfg_field workers_fields[] = {
    {"heartbeat_ms", NAS__T_INT, CO(workers.heartbeat_ms), 0, 10, 600000, NULL, NULL, 0},
    {"liveness", NAS__T_INT, CO(workers.liveness), 0, 1, 1000, NULL, NULL, 0},
    {"max_attempts", NAS__T_INT, CO(workers.max_attempts), 0, 1, 100, NULL, NULL, 0},
    /* The circuit breaker (master/breaker.h): not the campaign's identity, so
     * that a restart after the fix may raise it. */
    {"max_failed_in_a_row", NAS__T_INT, CO(workers.max_failed_in_a_row), 0, 0, 1e9, NULL, NULL, 0},
    {"lease_grace", NAS__T_DURATION_MS, CO(workers.lease_grace_ms), 0, 0, 1e9, NULL, NULL, 0},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

static const nas__cfg_field weights_fields[] = {
    /* Inheritance changes the trained numbers, so it is part of identity;
     * the memory budget only changes where weights wait. */
    {"inherit", NAS__T_BOOL, CO(weights.inherit), 0, 0, 1, NULL, NULL, 1},
    {"memory_budget", NAS__T_SIZE, CO(weights.memory_budget), 0, 0, BIG, NULL, NULL, 0},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

static const nas__cfg_field evaluation_fields[] = {
    {"mode", NAS__T_ENUM, CO(evaluation.mode), 0, 0, 0, NULL, eval_modes, 1},
    {"table", NAS__T_STR, CO(evaluation.table), NAS_CONFIG_PATH_MAX, 0, 0, NULL, NULL, 0},
    {"signal_column", NAS__T_STR, CO(evaluation.signal_column), 64, 0, 0, NULL, NULL, 1},
    {"report_column", NAS__T_STR, CO(evaluation.report_column), 64, 0, 0, NULL, NULL, 1},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

/* Grouping maps that do not move the base carry offset 0: their leaves
 * hold offsets into nas_config itself.  Fidelity maps move the base to the
 * nas_fidelity they describe. */
const nas__cfg_field nas__config_fields[] = {
    {"name", NAS__T_STR, CO(name), NAS_CONFIG_NAME_MAX, 0, 0, NULL, NULL, 1},
    {"seed", NAS__T_U64, CO(seed), 0, 0, 0, NULL, NULL, 1},
    {"data", NAS__T_MAP, 0, 0, 0, 0, data_fields, NULL, 1},
    {"space", NAS__T_MAP, 0, 0, 0, 0, space_fields, NULL, 1},
    {"strategy", NAS__T_MAP, 0, 0, 0, 0, strategy_fields, NULL, 1},
    {"budget", NAS__T_MAP, 0, 0, 0, 0, budget_fields, NULL, 1},
    {"fidelity", NAS__T_MAP, CO(fidelity), 0, 0, 0, nas__fidelity_fields, NULL, 1},
    {"final", NAS__T_MAP, 0, 0, 0, 0, final_fields, NULL, 1},
    {"listen", NAS__T_MAP, 0, 0, 0, 0, listen_fields, NULL, 0},
    {"workers", NAS__T_MAP, 0, 0, 0, 0, workers_fields, NULL, 0},
    {"weights", NAS__T_MAP, 0, 0, 0, 0, weights_fields, NULL, 1},
    {"evaluation", NAS__T_MAP, 0, 0, 0, 0, evaluation_fields, NULL, 1},
    {"store", NAS__T_STR, CO(store), NAS_CONFIG_PATH_MAX, 0, 0, NULL, NULL, 0},
    {"schedule", NAS__T_MAP, 0, 0, 0, 0, nas__schedule_fields, NULL, 0},
    {"early_stop", NAS__T_MAP, 0, 0, 0, 0, nas__early_stop_fields, NULL, 0},
    {"fidelity_check", NAS__T_MAP, 0, 0, 0, 0, nas__fidelity_check_fields, NULL, 0},
    {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0},
};

// ---- errors ------------------------------------------------------------------------------------

int nas__cfg_error(nas__cfg_ctx *cx, int line, const char *path, const char *fmt, ...) {
    char msg[NAS_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        return nas_set_err(cx->err, NAS_ECONFIG, "%s:%d: %s: %s", cx->source, line, path, msg);
    return nas_set_err(cx->err, NAS_ECONFIG, "%s: %s: %s", cx->source, path, msg);
}

int nas__cfg_line_of(const nas__cfg_ctx *cx, const char *path) {
    for (int i = 0; i < cx->n_seen; i++)
        if (strcmp(cx->seen[i].path, path) == 0) return cx->seen[i].line;
    return 0;
}

/* Levenshtein distance, capped: enough to suggest "epochs" for "epoch". */
static int distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* " (did you mean 'epochs'?)" or the list of words, into buf. */
void nas__cfg_suggest(const char *got, const char *const *words, size_t stride, char *buf,
                      size_t cap) {
    const char *best = NULL;
    int best_d = 99;
    size_t at = 0;
    buf[0] = '\0';
    for (const char *const *w = words; *w; w = (const char *const *)((const char *)w + stride)) {
        /* A typo is one edit away in a short word, two in a longer one;
         * beyond that a suggestion would be a guess. */
        int limit = strlen(*w) >= 6 ? 2 : 1;
        int d = distance(got, *w);
        if (d <= limit && d < best_d) {
            best_d = d;
            best = *w;
        }
    }
    if (best) {
        snprintf(buf, cap, "; did you mean '%s'?", best);
        return;
    }
    at += (size_t)snprintf(buf, cap, "; expected one of:");
    for (const char *const *w = words; *w && at < cap;
         w = (const char *const *)((const char *)w + stride))
        at += (size_t)snprintf(buf + at, cap - at, " %s", *w);
}

// ---- the walk ----------------------------------------------------------------------------------

/* What the user wrote instead, for type errors. */
static const char *node_words(const yaml_node_t *n) {
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

static int node_line(const yaml_node_t *n) {
    return (int)n->start_mark.line + 1;
}

/* Record where each key was set: duplicate keys are refused (libyaml would
 * silently keep both), and cross-key checks report the right line. */
static int remember(nas__cfg_ctx *cx, const char *path, int line) {
    int first = nas__cfg_line_of(cx, path);
    if (first) return nas__cfg_error(cx, line, path, "duplicate key (first set at line %d)", first);
    if (cx->n_seen == (int)NAS_ARRAY_LEN(cx->seen))
        return nas__cfg_error(cx, line, path, "too many keys in one file");
    snprintf(cx->seen[cx->n_seen].path, sizeof cx->seen[0].path, "%s", path);
    cx->seen[cx->n_seen++].line = line;
    return NAS_OK;
}

/* seeds: [nasnet_a, amoebanet_a]: names of preset cells. */
static int set_seeds(nas__cfg_ctx *cx, yaml_node_t *node, const char *path, nas_config *cfg) {
    nas_strategy_config *s = &cfg->strategy;
    s->n_seeds = 0;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(cx->doc, *it);
        if (!item || item->type != YAML_SCALAR_NODE)
            return nas__cfg_error(cx, item ? node_line(item) : node_line(node), path,
                                  "each seed must be a preset name");
        const char *v = (const char *)item->data.scalar.value;
        if (s->n_seeds == (int)NAS_ARRAY_LEN(s->seeds))
            return nas__cfg_error(cx, node_line(item), path, "at most %d seeds",
                                  (int)NAS_ARRAY_LEN(s->seeds));
        if (!*v || strlen(v) >= sizeof s->seeds[0])
            return nas__cfg_error(cx, node_line(item), path, "seed name '%s' must be 1..%zu bytes",
                                  v, sizeof s->seeds[0] - 1);
        snprintf(s->seeds[s->n_seeds++], sizeof s->seeds[0], "%s", v);
    }
    return NAS_OK;
}

/* One mapping against its table; base is where the table's offsets point. */
int nas__cfg_walk(nas__cfg_ctx *cx, yaml_node_t *map, const nas__cfg_field *table, char *base,
                  const char *prefix, nas_config *cfg) {
    if (map->type != YAML_MAPPING_NODE)
        return nas__cfg_error(cx, node_line(map), *prefix ? prefix : "(top level)",
                              "expected a mapping of keys, got %s", node_words(map));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(cx->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(cx->doc, p->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE)
            return nas__cfg_error(cx, k ? node_line(k) : 0, *prefix ? prefix : "(top level)",
                                  "keys must be plain words");
        const char *key = (const char *)k->data.scalar.value;
        char path[96];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
        /* Tables are a dozen keys at most; a linear search is the clearest. */
        const nas__cfg_field *f = table;
        while (f->key && strcmp(f->key, key) != 0)
            f++;
        if (!f->key) {
            char hint[200];
            nas__cfg_suggest(key, &table[0].key, sizeof *table, hint, sizeof hint);
            return nas__cfg_error(cx, node_line(k), path, "unknown key%s", hint);
        }
        int rc = remember(cx, path, node_line(k));
        if (rc != NAS_OK) return rc;
        /* Maps recurse with a moved base; lists are special-cased; every
         * other key must hold a scalar. */
        if (f->type == NAS__T_MAP) {
            rc = nas__cfg_walk(cx, v, f->sub, base + f->off, path, cfg);
        } else if (f->type == NAS__T_OPS || f->type == NAS__T_SEEDS) {
            if (v->type != YAML_SEQUENCE_NODE)
                return nas__cfg_error(cx, node_line(v), path,
                                      "expected a list such as "
                                      "[a, b], got %s",
                                      node_words(v));
            if (f->type == NAS__T_OPS)
                cx->ops_node = v; /* needs space.kind, which may come later */
            else
                rc = set_seeds(cx, v, path, cfg);
        } else if (f->type == NAS__T_RUNGS) {
            rc = nas__cfg_set_rungs(cx, v, path, cfg);
        } else if (v->type != YAML_SCALAR_NODE) {
            return nas__cfg_error(cx, node_line(v), path, "expected %s, got %s",
                                  nas__cfg_type_words(f->type), node_words(v));
        } else {
            int quoted = v->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                         v->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
            rc = nas__cfg_set_scalar(cx, f, node_line(v), path, (const char *)v->data.scalar.value,
                                     quoted, base + f->off);
        }
        if (rc != NAS_OK) return rc;
    }
    return NAS_OK;
}

// ---- entry points ------------------------------------------------------------------------------

/* libyaml slows down quadratically with flow nesting ("[[[[..."): 200000
 * brackets take over a minute.  A campaign needs three levels, so refuse
 * more than NEST_MAX before libyaml sees the text.  Quotes and comments are
 * skipped roughly; a miss only lets libyaml do the (slow) refusing. */
enum { NEST_MAX = 32 };
static int flow_too_deep(const char *t, size_t n, int *line) {
    int depth = 0, ln = 1;
    char quote = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i], prev = i ? t[i - 1] : '\n';
        if (c == '\n') ln++;
        if (quote) {
            if (c == quote) quote = 0;
            continue;
        }
        int at_start = strchr(" \t\n[{,:", prev) != NULL;
        if ((c == '\'' || c == '"') && at_start) {
            quote = c;
        } else if (c == '#' && (prev == ' ' || prev == '\t' || prev == '\n')) {
            while (i + 1 < n && t[i + 1] != '\n')
                i++;
        } else if (c == '[' || c == '{') {
            if (++depth > NEST_MAX) {
                *line = ln;
                return 1;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

/* Load one YAML document, walk it against the key table, then finish
 * (cross-key checks, canonical text).  cfg is written only on success. */
/* final.fidelity is "as fidelity but" the final stage's own defaults
 * (docs/CAMPAIGN.md): a key the file sets under final.fidelity wins, then
 * a final default that differs from the search default (epochs 20, ...),
 * and every other key is the one `fidelity` has, so `fidelity.lr: 0.05`
 * retrains the winners at lr 0.05 too. */
static void inherit_final(const nas__cfg_ctx *cx, nas_config *c) {
    const nas_fidelity search_def = nas_fidelity_default(), final_def = final_fidelity_default();
    for (const nas__cfg_field *f = nas__fidelity_fields; f->key; f++) {
        char path[96];
        snprintf(path, sizeof path, "final.fidelity.%s", f->key);
        if (nas__cfg_line_of(cx, path) > 0) continue;
        size_t n = f->type == NAS__T_U64 || f->type == NAS__T_DURATION ? 8 : 4;
        if (memcmp((const char *)&search_def + f->off, (const char *)&final_def + f->off, n) != 0)
            continue;
        memcpy((char *)&c->final.fidelity + f->off, (const char *)&c->fidelity + f->off, n);
    }
}

int nas_config_parse(const char *text, size_t len, const char *source, nas_config *cfg, char *err) {
    /* Work on a local copy: *cfg is written only when everything passed. */
    if (!cfg || (!text && len))
        return nas_set_err(err, NAS_EINVAL, "%s: no config text given",
                           source ? source : "<config>");
    nas_config c = nas_config_default();
    snprintf(c.source, sizeof c.source, "%s", source ? source : "<config>");
    nas__cfg_ctx cx = {.source = c.source, .err = err};
    int deep_line = 0;
    if (flow_too_deep(text, len, &deep_line))
        return nas_set_err(err, NAS_ECONFIG, "%s:%d: brackets nested deeper than %d levels",
                           c.source, deep_line, NEST_MAX);
    yaml_parser_t parser;
    yaml_document_t doc;
    int have_doc = 0, rc = NAS_OK;
    if (!yaml_parser_initialize(&parser))
        return nas_set_err(err, NAS_ENOMEM, "%s: out of memory", c.source);
    /* The document API builds the whole tree first; a campaign file is a
     * few KB, and a tree makes line numbers and duplicate checks simple. */
    /* libyaml asserts on a NULL input, even an empty one. */
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = nas_set_err(err, NAS_ECONFIG, "%s:%d: YAML syntax error: %s%s%s", c.source,
                         (int)parser.problem_mark.line + 1,
                         parser.problem ? parser.problem : "unreadable", parser.context ? " " : "",
                         parser.context ? parser.context : "");
        goto done;
    }
    have_doc = 1;
    cx.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        rc = nas__cfg_walk(&cx, root, nas__config_fields, (char *)&c, "", &c);
        if (rc != NAS_OK) goto done;
        inherit_final(&cx, &c);
        /* A second document would be silently ignored by a one-document
         * loader; refuse it, since its keys were surely meant to count. */
        yaml_document_t extra;
        if (yaml_parser_load(&parser, &extra)) {
            int more = yaml_document_get_root_node(&extra) != NULL;
            int line = more ? node_line(yaml_document_get_root_node(&extra)) : 0;
            yaml_document_delete(&extra);
            if (more) {
                rc = nas_set_err(err, NAS_ECONFIG,
                                 "%s:%d: a campaign file holds one YAML "
                                 "document; remove everything after '---'",
                                 c.source, line);
                goto done;
            }
        }
    }
    rc = nas__cfg_finish(&cx, &c, text, len);
done:
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc != NAS_OK) {
        nas_config_fini(&c);
        return rc;
    }
    *cfg = c;
    return NAS_OK;
}

/* Read the whole file first: errors about its content then all come from
 * nas_config_parse(), with the path as their source. */
int nas_config_load(const char *path, nas_config *cfg, char *err) {
    enum { MAX_BYTES = 1 << 20 }; /* a campaign file is a few KB; more is a mistake */
    FILE *fp = fopen(path, "rb");
    if (!fp) return nas_set_err(err, NAS_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = nas_malloc(MAX_BYTES + 1);
    if (!buf) {
        fclose(fp);
        return nas_set_err(err, NAS_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_BYTES + 1, fp);
    int bad = ferror(fp);
    fclose(fp);
    int rc;
    if (bad)
        rc = nas_set_err(err, NAS_EIO, "%s: read error", path);
    else if (n > MAX_BYTES)
        rc = nas_set_err(err, NAS_ECONFIG, "%s: larger than %d bytes: not a campaign file", path,
                         MAX_BYTES);
    else
        rc = nas_config_parse(buf, n, path, cfg, err);
    nas_free(buf);
    return rc;
}

void nas_config_fini(nas_config *cfg) {
    if (!cfg) return;
    nas_free(cfg->text);
    nas_free(cfg->canonical);
    cfg->text = cfg->canonical = NULL;
    cfg->text_len = 0;
}
