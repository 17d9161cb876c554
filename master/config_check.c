/*
 * config_check.c - the second half of loading a campaign file: resolve
 * values that depend on other keys (space.ops needs space.kind), fill
 * derived defaults, check keys against each other, and compute the
 * canonical text and hash that identify the campaign in its store.
 *
 * A cross-key error is reported at the line of the key that has to change
 * (the one the user wrote, when only one of the two was written).
 */
#include "master/config_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

// ---- op names ----------------------------------------------------------------------------------

/* Op names of a space, in enum order, NULL-terminated, from the genome
 * module that owns them (the values are append-only). */
static void op_names(int kind, const char *names[NAS_OP_COUNT + 1]) {
    int n = nas_space_op_count(kind);
    for (int i = 0; i < n; i++)
        names[i] = nas_space_op_name(kind, i);
    names[n] = NULL;
}

static int resolve_ops(nas__cfg_ctx *cx, nas_config *cfg) {
    nas_space *sp = &cfg->strategy.space;
    const char *kind = nas_space_kind_name(sp->kind);
    const char *names[NAS_OP_COUNT + 1];
    op_names(sp->kind, names);
    if (!cx->ops_node) {
        sp->op_mask = nas_space_default_ops(sp->kind);
        return NAS_OK;
    }
    uint32_t mask = 0;
    yaml_node_t *seq = cx->ops_node;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(cx->doc, *it);
        int line = item ? (int)item->start_mark.line + 1 : 0;
        if (!item || item->type != YAML_SCALAR_NODE)
            return nas__cfg_error(cx, line, "space.ops", "each op must be a name");
        const char *v = (const char *)item->data.scalar.value;
        int found = -1;
        for (int i = 0; names[i]; i++)
            if (strcmp(v, names[i]) == 0) found = i;
        if (found < 0) {
            char hint[200];
            nas__cfg_suggest(v, names, sizeof(char *), hint, sizeof hint);
            return nas__cfg_error(cx, line, "space.ops", "'%s' is not an op of the %s space%s", v,
                                  kind, hint);
        }
        mask |= 1u << found;
    }
    int line = (int)seq->start_mark.line + 1;
    /* "zero" / "none" alone would make every architecture output nothing. */
    uint32_t nothing = sp->kind == NAS_SPACE_NB201   ? 1u << NAS_NB201_NONE
                       : sp->kind == NAS_SPACE_HIER  ? 1u << NAS_HIER_NONE
                       : sp->kind == NAS_SPACE_CHAIN ? 0u
                                                     : 1u << NAS_OP_ZERO;
    if ((mask & ~nothing) == 0)
        return nas__cfg_error(
            cx, line, "space.ops", "needs at least one op other than %s",
            sp->kind == NAS_SPACE_NB201 || sp->kind == NAS_SPACE_HIER ? "none" : "zero");
    sp->op_mask = mask;
    return NAS_OK;
}

// ---- checks between keys -----------------------------------------------------------------------

/* Line of the first of two keys that was written (the one to change). */
static int line_either(const nas__cfg_ctx *cx, const char *a, const char *b) {
    int l = nas__cfg_line_of(cx, a);
    return l ? l : nas__cfg_line_of(cx, b);
}

typedef struct data_shape {
    const char *name;
    int side, train;
} data_shape;

static const data_shape shapes[] = {
    {"fashion-mnist", 28, 60000}, {"mnist", 28, 60000}, {"cifar10", 32, 50000}};

/* Dataset-dependent limits: the resolution cannot exceed the images' side
 * and the subset plus the validation split must fit in the training set. */
static int check_fidelity(nas__cfg_ctx *cx, const nas_fidelity *f, const char *prefix,
                          const data_shape *d) {
    char path[64];
    snprintf(path, sizeof path, "%s.resolution", prefix);
    if (f->resolution > d->side)
        return nas__cfg_error(cx, nas__cfg_line_of(cx, path), path,
                              "must be <= %d, the side of %s images, got %d", d->side, d->name,
                              f->resolution);
    if (f->resolution != 0 && f->resolution < 4)
        return nas__cfg_error(cx, nas__cfg_line_of(cx, path), path,
                              "must be 0 (native) or >= 4, got %d", f->resolution);
    int side = f->resolution ? f->resolution : d->side;
    snprintf(path, sizeof path, "%s.progressive_start", prefix);
    if (f->progressive_start && (f->progressive_start < 4 || f->progressive_start >= side))
        return nas__cfg_error(cx, nas__cfg_line_of(cx, path), path,
                              "must be 0 (off) or 4..%d, below the side it grows to (%d), got %d",
                              side - 1, side, f->progressive_start);
    snprintf(path, sizeof path, "%s.cutout", prefix);
    if (f->cutout > side)
        return nas__cfg_error(cx, nas__cfg_line_of(cx, path), path,
                              "must be <= %d, the side of the images it trains on, got %d", side,
                              f->cutout);
    char sub[64], val[64];
    snprintf(sub, sizeof sub, "%s.train_subset", prefix);
    snprintf(val, sizeof val, "%s.val_size", prefix);
    if ((long)f->train_subset + f->val_size > d->train)
        return nas__cfg_error(cx, line_either(cx, sub, val), sub,
                              "train_subset + val_size = %ld exceeds the %d training images of %s",
                              (long)f->train_subset + f->val_size, d->train, d->name);
    if (f->val_size >= d->train)
        return nas__cfg_error(cx, nas__cfg_line_of(cx, val), val,
                              "must leave training images: %d of %d", f->val_size, d->train);
    char msg[NAS_ERR_LEN];
    if (nas_fidelity_validate(f, msg) != NAS_OK) /* backstop for ranges the table missed */
        return nas__cfg_error(cx, 0, prefix, "%s", msg);
    return NAS_OK;
}

/* Only the form is checked here; whether the address can be bound is the
 * dispatcher's business, at bind time. */
static int check_endpoint(nas__cfg_ctx *cx, const char *key, const char *v) {
    char path[32];
    snprintf(path, sizeof path, "listen.%s", key);
    if (!strstr(v, "://") || strstr(v, "://")[3] == '\0')
        return nas__cfg_error(cx, nas__cfg_line_of(cx, path), path,
                              "'%s' is not an endpoint such as tcp://127.0.0.1:5555", v);
    return NAS_OK;
}

/* The name ends up in file names (<name>.db) and log lines, so it is kept
 * to characters that are safe in both. */
static int check_name(nas__cfg_ctx *cx, const char *name) {
    if (!*name) return nas__cfg_error(cx, nas__cfg_line_of(cx, "name"), "name", "is empty");
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return nas__cfg_error(cx, nas__cfg_line_of(cx, "name"), "name",
                                  "'%s' may hold only letters, digits, '.', '_' and '-'", name);
    return NAS_OK;
}

/* Strategy parameters that constrain each other, and the derived values
 * (max_blocks default, budget) the strategy reads from its config. */
static int check_strategy(nas__cfg_ctx *cx, nas_config *c) {
    nas_strategy_config *s = &c->strategy;
    if (s->sample > s->population)
        return nas__cfg_error(cx, line_either(cx, "strategy.sample", "strategy.population"),
                              "strategy.sample", "must be <= strategy.population (%d), got %d",
                              s->population, s->sample);
    if (strcmp(s->name, "evolution") == 0 && s->population > c->budget.evaluations)
        return nas__cfg_error(cx, line_either(cx, "strategy.population", "budget.evaluations"),
                              "strategy.population",
                              "must be <= budget.evaluations (%d), got %d: evolution would "
                              "never finish its first population",
                              c->budget.evaluations, s->population);
    /* The MBConv space has stages, not levels (docs/GENOME.md s8). */
    if (s->space.kind == NAS_SPACE_MBCONV) {
        if (s->space.n_blocks > NAS_MB_MAX_STAGES)
            return nas__cfg_error(cx, nas__cfg_line_of(cx, "space.blocks"), "space.blocks",
                                  "the mbconv space has at most %d stages, got %d",
                                  NAS_MB_MAX_STAGES, s->space.n_blocks);
        if (strcmp(s->name, "pnas") == 0)
            return nas__cfg_error(cx, nas__cfg_line_of(cx, "strategy.name"), "strategy.name",
                                  "pnas needs a space with levels (cell or nb201), not mbconv; "
                                  "use random or evolution");
    }
    /* The chain space (docs/GENOME.md): no PNAS levels; morphisms are
     * chain moves that only evolution makes. */
    int chain = s->space.kind == NAS_SPACE_CHAIN, hier = s->space.kind == NAS_SPACE_HIER;
    if ((chain || hier) && strcmp(s->name, "pnas") == 0)
        return nas__cfg_error(cx, line_either(cx, "strategy.name", "space.kind"), "strategy.name",
                              "pnas needs a space with levels (cell or nb201), not %s",
                              chain ? "chain" : "hierarchical");
    if (s->space.morphisms && (!chain || strcmp(s->name, "evolution") != 0))
        return nas__cfg_error(cx, nas__cfg_line_of(cx, "strategy.mutations"), "strategy.mutations",
                              "morphism needs space.kind: chain and strategy.name: evolution");
    if (s->space.depth_min && s->space.depth_max && s->space.depth_min > s->space.depth_max)
        return nas__cfg_error(cx, line_either(cx, "space.depth_min", "space.depth_max"),
                              "space.depth_min", "must be <= space.depth_max (%d), got %d",
                              s->space.depth_max, s->space.depth_min);
    if (chain || hier) s->max_blocks = 1; /* unused: PNAS is refused above */
    /* PNAS levels: blocks of a cell, or the intermediate nodes an NB201
     * cell can use (two: genome.h's node levels). */
    int nb201 = s->space.kind == NAS_SPACE_NB201;
    int max_b = nb201 ? 2 : s->space.n_blocks;
    if (s->max_blocks == 0) s->max_blocks = max_b;
    if (s->max_blocks > max_b)
        return nas__cfg_error(cx, line_either(cx, "strategy.max_blocks", "space.blocks"),
                              "strategy.max_blocks", "must be <= %s (%d), got %d",
                              nb201 ? "2 for the nb201 space" : "space.blocks", max_b,
                              s->max_blocks);
    if (s->ensemble + s->use_lstm < 1)
        return nas__cfg_error(cx, line_either(cx, "strategy.ensemble", "strategy.lstm"),
                              "strategy.ensemble",
                              "the predictor needs a model: ensemble >= 1 or lstm: true");
    s->budget = c->budget.evaluations;
    return NAS_OK;
}

/* Cross-key checks in the order a person would fix them. */
static int check_all(nas__cfg_ctx *cx, nas_config *c) {
    int rc = check_name(cx, c->name);
    if (rc == NAS_OK) rc = resolve_ops(cx, c);
    if (rc == NAS_OK) rc = check_strategy(cx, c);
    if (rc != NAS_OK) return rc;
    if (c->final.top_k > c->budget.evaluations)
        return nas__cfg_error(cx, line_either(cx, "final.top_k", "budget.evaluations"),
                              "final.top_k", "must be <= budget.evaluations (%d), got %d",
                              c->budget.evaluations, c->final.top_k);
    /* data.set was checked against the same list, so a match exists. */
    const data_shape *d = &shapes[0];
    for (size_t i = 0; i < NAS_ARRAY_LEN(shapes); i++)
        if (strcmp(c->data.set, shapes[i].name) == 0) d = &shapes[i];
    if (c->evaluation.mode == NAS_CONFIG_EVAL_TRAIN) {
        if (c->fidelity.val_size < 1)
            return nas__cfg_error(cx, nas__cfg_line_of(cx, "fidelity.val_size"),
                                  "fidelity.val_size",
                                  "must be >= 1 when evaluation.mode is train: the search ranks "
                                  "architectures by validation accuracy");
        rc = check_fidelity(cx, &c->fidelity, "fidelity", d);
        if (rc == NAS_OK && c->final.top_k > 0)
            rc = check_fidelity(cx, &c->final.fidelity, "final.fidelity", d);
        if (rc != NAS_OK) return rc;
    } else if (!c->evaluation.table[0]) {
        return nas__cfg_error(cx, nas__cfg_line_of(cx, "evaluation.mode"), "evaluation.table",
                              "is required when evaluation.mode is table");
    }
    rc = check_endpoint(cx, "control", c->listen.control);
    if (rc == NAS_OK) rc = check_endpoint(cx, "weights", c->listen.weights);
    if (rc == NAS_OK) rc = check_endpoint(cx, "status", c->listen.status);
    if (rc != NAS_OK) return rc;
    if (strcmp(c->listen.control, c->listen.weights) == 0 ||
        strcmp(c->listen.control, c->listen.status) == 0 ||
        strcmp(c->listen.weights, c->listen.status) == 0)
        return nas__cfg_error(cx, line_either(cx, "listen.weights", "listen.status"), "listen",
                              "control, weights and status need three different endpoints");
    /* The default store is named after the campaign, in the working
     * directory, so two campaigns never share a file by accident. */
    if (!c->store[0]) snprintf(c->store, sizeof c->store, "%s.db", c->name);
    /* Where Debian-style installs and nas-train look for datasets. */
    if (!c->data.dir[0])
        snprintf(c->data.dir, sizeof c->data.dir, "/usr/share/datasets/%s", c->data.set);
    return NAS_OK;
}

// ---- canonical text ----------------------------------------------------------------------------

typedef struct buf {
    char *p;
    size_t n, cap;
    int oom;
} buf;

/* printf into a growing buffer; an allocation failure is remembered and
 * reported once at the end instead of after every call. */
static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)n < b->cap) {
            b->n += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
        char *grown = nas_realloc(b->p, cap);
        if (!grown) {
            b->oom = 1;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
}

/* Strings are written with \ and newlines escaped so each key is one line. */
static void put_escaped(buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\')
            put(b, "\\\\");
        else if (*s == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *s);
    }
}

/* One value in its canonical spelling: floats at round-trip precision,
 * enums as words, op masks as names in enum order (so the order in which
 * the file lists ops does not matter). */
static void put_leaf(buf *b, const nas__cfg_field *f, const char *p, const nas_config *c) {
    switch (f->type) {
    case NAS__T_INT:
    case NAS__T_BOOL:
        put(b, "%d", *(const int *)p);
        break;
    case NAS__T_I64:
    case NAS__T_DURATION_MS:
        put(b, "%lld", (long long)*(const int64_t *)p);
        break;
    case NAS__T_SIZE:
        put(b, "%lld", (long long)*(const int64_t *)p);
        break;
    case NAS__T_U64:
        put(b, "%llu", (unsigned long long)*(const uint64_t *)p);
        break;
    case NAS__T_FLOAT:
        put(b, "%.9g", (double)*(const float *)p);
        break;
    case NAS__T_DOUBLE:
    case NAS__T_DURATION:
        put(b, "%.17g", *(const double *)p);
        break;
    case NAS__T_ENUM:
        put(b, "%s", f->names[*(const int *)p]);
        break;
    case NAS__T_OPS: {
        const char *names[NAS_OP_COUNT + 1];
        op_names(c->strategy.space.kind, names);
        put(b, "[");
        for (int i = 0, first = 1; names[i]; i++)
            if (c->strategy.space.op_mask & (1u << i)) {
                put(b, "%s%s", first ? "" : ", ", names[i]);
                first = 0;
            }
        put(b, "]");
        break;
    }
    case NAS__T_SEEDS:
        put(b, "[");
        for (int i = 0; i < c->strategy.n_seeds; i++)
            put(b, "%s%s", i ? ", " : "", c->strategy.seeds[i]);
        put(b, "]");
        break;
    default:
        put_escaped(b, p);
        break;
    }
}

/* A leaf holds its default when its bytes equal those at the same place in
 * nas_config_default() (every table's base lies inside the config). */
static int is_default(const nas__cfg_field *f, const char *base, const nas_config *c) {
    static const size_t sizes[] = {
        [NAS__T_INT] = sizeof(int),     [NAS__T_I64] = sizeof(int64_t),
        [NAS__T_U64] = sizeof(uint64_t), [NAS__T_FLOAT] = sizeof(float),
        [NAS__T_DOUBLE] = sizeof(double), [NAS__T_BOOL] = sizeof(int),
        [NAS__T_ENUM] = sizeof(int),
    };
    if (f->type < 0 || (size_t)f->type >= NAS_ARRAY_LEN(sizes) || sizes[f->type] == 0) return 0;
    nas_config def = nas_config_default();
    size_t at = (size_t)(base - (const char *)c) + f->off;
    return memcmp((const char *)&def + at, (const char *)c + at, sizes[f->type]) == 0;
}

/* Walk the key table in order, skipping keys that are not recorded
 * (ident 0); extensible keys (ident 2) are written but not hashed. */
static void put_table(buf *b, const nas__cfg_field *table, const char *base, const char *prefix,
                      const nas_config *c) {
    for (const nas__cfg_field *f = table; f->key; f++) {
        if (!f->ident) continue;
        char path[96];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", f->key);
        if (f->type == NAS__T_MAP) {
            put_table(b, f->sub, base + f->off, path, c);
            continue;
        }
        if (f->type == NAS__T_RUNGS) { /* every field of every rung, as `fidelity` */
            for (int k = 0; k < c->schedule.n_rungs; k++) {
                snprintf(path, sizeof path, "schedule.rungs[%d]", k);
                put_table(b, nas__fidelity_fields, (const char *)&c->schedule.rungs[k], path, c);
            }
            continue;
        }
        if (f->ident == 3 && is_default(f, base, c)) continue;
        put(b, "%s: ", path);
        put_leaf(b, f, base + f->off, c);
        put(b, "\n");
    }
}

/* FNV-1a: simple, stable across machines and builds, and good enough to
 * tell configs apart (this is an identity check, not a security one). */
static uint64_t fnv1a64(const char *s, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

int nas__cfg_finish(nas__cfg_ctx *cx, nas_config *cfg, const char *text, size_t len) {
    int rc = check_all(cx, cfg);
    if (rc == NAS_OK) rc = nas__cfg_schedule_finish(cx, cfg);
    if (rc != NAS_OK) return rc;
    buf b = {0};
    put_table(&b, nas__config_fields, (const char *)cfg, "", cfg);
    if (cfg->schedule.kind || cfg->early_stop.rule)
        put_table(&b, nas__schedule_identity, (const char *)cfg, "", cfg);
    if (cfg->fidelity_check.samples > 0)
        put_table(&b, nas__fidelity_check_identity, (const char *)cfg, "", cfg);
    cfg->text = nas_malloc(len + 1);
    /* Both allocations are checked together so the error path is one. */
    if (b.oom || !b.p || !cfg->text) {
        nas_free(b.p);
        nas_free(cfg->text);
        cfg->text = NULL;
        return nas_set_err(cx->err, NAS_ENOMEM, "%s: out of memory", cx->source);
    }
    if (len) memcpy(cfg->text, text, len); /* text may be NULL when len is 0 */
    cfg->text[len] = '\0';
    cfg->text_len = len;
    cfg->canonical = b.p;
    /* The hash covers the canonical identity lines only, never the raw
     * bytes, nor the lines a resume may change. */
    uint64_t h = fnv1a64("", 0);
    for (const char *p = b.p; *p;) {
        size_t n = strcspn(p, "\n");
        if (!nas_config_line_extensible(p, n)) {
            for (size_t i = 0; i <= n; i++) {
                h ^= (unsigned char)(i < n ? p[i] : '\n');
                h *= 1099511628211ull;
            }
        }
        p += n + (p[n] == '\n');
    }
    cfg->hash = h;
    return NAS_OK;
}

/* Follow a canonical line's key path ("fidelity.threads: 2") through the
 * key tables to its field. */
int nas_config_line_extensible(const char *line, size_t len) {
    const nas__cfg_field *table = nas__config_fields;
    const char *p = line, *end = line + len;
    for (;;) {
        size_t seg = 0;
        while (p + seg < end && p[seg] != '.' && p[seg] != ':')
            seg++;
        const nas__cfg_field *f = table;
        while (f->key && (strlen(f->key) != seg || memcmp(f->key, p, seg) != 0))
            f++;
        if (!f->key || p + seg >= end) return 0;
        if (p[seg] == ':') return f->ident == 2;
        if (f->type != NAS__T_MAP) return 0;
        table = f->sub;
        p += seg + 1;
    }
}
