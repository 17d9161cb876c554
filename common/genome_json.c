/*
 * genome_json.c - the JSON form of a genome.
 *
 * JSON (docs/GENOME.md):
 *   {"space":"cell","shared":false,"normal":[[1,"sep3x3",0,"max3x3"],...],
 *    "reduce":[...]}            -- "reduce" is absent when shared is true
 *   {"space":"nb201","edges":["nor_conv_3x3",...]}   -- six edges, in order
 *   {"space":"chain","layers":[["conv3x3",32,0,[0]],["max3x3",0,1,[]],...]}
 *                                -- per layer: op, width units (0 for pool, id), id, skips
 *   {"space":"hierarchical","motifs":["c/sd/i-m",...],"top":"0/1-/-01"}
 *                                -- motifs as in the text form
 * The reader (common/json.h does the tokenising) is strict: unknown keys,
 * missing keys, wrong types and bad values are NAS_EGENOME naming the key
 * or block and the byte offset; the result is validated like a parse.
 */
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_internal.h"
#include "common/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Writer (the bounded appender nas__text is shared with the DOT writer)

static void json_cell(nas__text *o, const nas_cell *c) {
    nas__text_put(o, "[");
    for (int k = 0; k < c->n_blocks; k++) {
        const nas_block *b = &c->blocks[k];
        nas__text_put(o, "%s[%d,\"%s\",%d,\"%s\"]", k ? "," : "", b->in_a, nas_op_name(b->op_a),
                      b->in_b, nas_op_name(b->op_b));
    }
    nas__text_put(o, "]");
}

int nas_genome_to_json(const nas_genome *g, char *buf, size_t cap) {
    if (g == NULL || buf == NULL || cap == 0) return NAS_EINVAL;
    if (nas_genome_validate(g, NULL) < 0) return NAS_EGENOME;
    nas__text o = {buf, cap, 0};
    if (g->space == NAS_SPACE_MBCONV) {
        nas__text_put(&o, "{\"space\":\"mbconv\",\"stem\":%d,\"stages\":[", g->mb.stem);
        for (int i = 0; i < g->mb.n_stages; i++) {
            nas__text_put(&o, "%s\"", i ? "," : "");
            nas__mb_format_stage(&g->mb.stages[i], &o);
            nas__text_put(&o, "\"");
        }
        nas__text_put(&o, "],\"head\":%d}", g->mb.head);
        return nas__text_finish(&o);
    }
    if (g->space == NAS_SPACE_HIER) {
        nas__text_put(&o, "{\"space\":\"hierarchical\",\"motifs\":[");
        for (int m = 0; m < g->hier.n_motifs; m++) {
            nas__text_put(&o, "%s\"", m ? "," : "");
            nas__hier_format_motif(&g->hier.motifs[m], 2, &o);
            nas__text_put(&o, "\"");
        }
        nas__text_put(&o, "],\"top\":\"");
        nas__hier_format_motif(&g->hier.top, 3, &o);
        nas__text_put(&o, "\"}");
        return nas__text_finish(&o);
    }
    if (g->space == NAS_SPACE_NB201) {
        nas__text_put(&o, "{\"space\":\"nb201\",\"edges\":[");
        for (int e = 0; e < NAS_NB201_EDGES; e++)
            nas__text_put(&o, "%s\"%s\"", e ? "," : "", nas_nb201_op_name(g->nb201[e]));
        nas__text_put(&o, "]}");
        return nas__text_finish(&o);
    }
    if (g->space == NAS_SPACE_CHAIN) {
        nas__text_put(&o, "{\"space\":\"chain\",\"layers\":[");
        for (int k = 0; k < g->chain.n_layers; k++) {
            const nas_chain_layer *l = &g->chain.layers[k];
            nas__text_put(&o, "%s[\"%s\",%d,%d,[", k ? "," : "", nas_chain_op_name(l->op), l->width,
                          l->id);
            for (int j = 0, n = 0; j <= k; j++)
                if (l->skips & (1u << j)) nas__text_put(&o, "%s%d", n++ ? "," : "", j);
            nas__text_put(&o, "]]");
        }
        nas__text_put(&o, "]}");
        return nas__text_finish(&o);
    }
    nas__text_put(&o,
                  "{\"space\":\"cell\",\"shared\":%s,\"normal\":", g->shared ? "true" : "false");
    json_cell(&o, &g->normal);
    if (!g->shared) {
        nas__text_put(&o, ",\"reduce\":");
        json_cell(&o, &g->reduce);
    }
    nas__text_put(&o, "}");
    return nas__text_finish(&o);
}

// ---------------------------------------------------------------------------
// Reader

static int json_err(char *err, const nas_json *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int json_err(char *err, const nas_json *at, const char *fmt, ...) {
    char msg[NAS_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nas_set_err(err, NAS_EGENOME, "json: offset %zu: %s", at ? at->offset : 0, msg);
}

/* An integer input index in [0, 255].  The structural range check (an
 * earlier block only) is left to nas_genome_validate so that JSON, text and
 * protobuf report it with the same words. */
static int json_index(const nas_json *v, int *out, const char *cell, size_t k, char half,
                      char *err) {
    /* Range first: converting an out-of-range double to int is undefined. */
    if (v->type != NAS_JSON_NUMBER || !(v->number >= 0 && v->number <= 255) ||
        v->number != (double)(int)v->number)
        return json_err(err, v, "%s block %zu %c: input must be an integer 0..255", cell, k, half);
    *out = (int)v->number;
    return NAS_OK;
}

static int json_op(const nas_json *v, int *out, const char *cell, size_t k, char half, char *err) {
    if (v->type != NAS_JSON_STRING)
        return json_err(err, v, "%s block %zu %c: op must be a string", cell, k, half);
    int op = nas_op_parse(v->str, v->len);
    if (op < 0)
        return json_err(err, v, "%s block %zu %c: unknown op '%.40s'", cell, k, half, v->str);
    *out = op;
    return NAS_OK;
}

static int json_cell_read(const nas_json *arr, nas_cell *c, const char *name, char *err) {
    if (arr->type != NAS_JSON_ARRAY) return json_err(err, arr, "\"%s\" must be an array", name);
    if (arr->len == 0) return json_err(err, arr, "%s cell is empty", name);
    if (arr->len > NAS_MAX_BLOCKS)
        return json_err(err, arr, "%s cell has %zu blocks, too many (max %d)", name, arr->len,
                        NAS_MAX_BLOCKS);
    memset(c, 0, sizeof *c);
    c->n_blocks = (int)arr->len;
    for (size_t k = 0; k < arr->len; k++) {
        const nas_json *b = &arr->items[k];
        if (b->type != NAS_JSON_ARRAY || b->len != 4)
            return json_err(err, b, "%s block %zu must be [in_a, \"op_a\", in_b, \"op_b\"]", name,
                            k);
        int ia = 0, oa = 0, ib = 0, ob = 0, rc;
        if ((rc = json_index(&b->items[0], &ia, name, k, 'a', err)) < 0) return rc;
        if ((rc = json_op(&b->items[1], &oa, name, k, 'a', err)) < 0) return rc;
        if ((rc = json_index(&b->items[2], &ib, name, k, 'b', err)) < 0) return rc;
        if ((rc = json_op(&b->items[3], &ob, name, k, 'b', err)) < 0) return rc;
        c->blocks[k] = (nas_block){(uint8_t)ia, (uint8_t)oa, (uint8_t)ib, (uint8_t)ob};
    }
    return NAS_OK;
}

/* {"space":"mbconv","stem":16,"stages":["mb3x6se-24r2s2",...],"head":128}: a stage is
 * its text token, so both forms share one grammar and one set of messages. */
static int json_mbconv(const nas_json *root, nas_genome *g, char *err) {
    static const char *const keys[] = {"space", "stem", "stages", "head"};
    for (size_t i = 0; i < root->len; i++) {
        int known = 0;
        for (size_t j = 0; j < 4; j++) known |= strcmp(root->members[i].key, keys[j]) == 0;
        if (!known)
            return json_err(err, &root->members[i].value, "unknown key \"%.40s\" for space mbconv",
                            root->members[i].key);
    }
    memset(g, 0, sizeof *g);
    g->space = NAS_SPACE_MBCONV;
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "head" : "stem";
        const nas_json *v = nas_json_get(root, key);
        if (v == NULL) return json_err(err, root, "missing key \"%s\"", key);
        if (v->type != NAS_JSON_NUMBER || !(v->number >= 0 && v->number <= 65535) ||
            v->number != (double)(int)v->number)
            return json_err(err, v, "\"%s\" must be an integer width", key);
        *(k ? &g->mb.head : &g->mb.stem) = (uint16_t)v->number;
    }
    const nas_json *st = nas_json_get(root, "stages");
    if (st == NULL) return json_err(err, root, "missing key \"stages\"");
    if (st->type != NAS_JSON_ARRAY || st->len < 1 || st->len > NAS_MB_MAX_STAGES)
        return json_err(err, st, "\"stages\" must be an array of 1..%d stage strings",
                        NAS_MB_MAX_STAGES);
    g->mb.n_stages = (int)st->len;
    for (size_t i = 0; i < st->len; i++) {
        const nas_json *v = &st->items[i];
        if (v->type != NAS_JSON_STRING) return json_err(err, v, "stage %zu must be a string", i);
        char serr[NAS_ERR_LEN];
        if (nas__mb_parse_stage(v->str, v->len, &g->mb.stages[i], serr) < 0)
            return json_err(err, v, "stage %zu: %s", i, serr);
    }
    return NAS_OK;
}

/* A small integer in [lo, hi] or a JSON error naming `what`. */
static int json_small(const nas_json *v, int lo, int hi, const char *what, size_t k, int *out,
                      char *err) {
    if (v->type != NAS_JSON_NUMBER || !(v->number >= lo && v->number <= hi) ||
        v->number != (double)(int)v->number)
        return json_err(err, v, "layer %zu: %s must be an integer %d..%d", k, what, lo, hi);
    *out = (int)v->number;
    return NAS_OK;
}

/* "layers": [[op, width, id, [skips]], ...] */
static int json_chain(const nas_json *root, nas_chain *c, char *err) {
    for (size_t i = 0; i < root->len; i++) {
        const char *key = root->members[i].key;
        if (strcmp(key, "space") && strcmp(key, "layers"))
            return json_err(err, &root->members[i].value, "unknown key \"%.40s\" for space chain",
                            key);
    }
    const nas_json *arr = nas_json_get(root, "layers");
    if (arr == NULL) return json_err(err, root, "missing key \"layers\"");
    if (arr->type != NAS_JSON_ARRAY || arr->len < 1 || arr->len > NAS_CHAIN_MAX_LAYERS)
        return json_err(err, arr, "\"layers\" must be an array of 1..%d layers",
                        NAS_CHAIN_MAX_LAYERS);
    c->n_layers = (int)arr->len;
    for (size_t k = 0; k < arr->len; k++) {
        const nas_json *l = &arr->items[k];
        if (l->type != NAS_JSON_ARRAY || l->len != 4 || l->items[3].type != NAS_JSON_ARRAY)
            return json_err(err, l, "layer %zu must be [\"op\", width, id, [skips]]", k);
        const nas_json *op = &l->items[0];
        int o = op->type == NAS_JSON_STRING ? nas_chain_op_parse(op->str, op->len) : -1;
        if (o < 0) return json_err(err, op, "layer %zu: unknown chain op", k);
        int w = 0, id = 0, rc;
        if ((rc = json_small(&l->items[1], 0, NAS_CHAIN_MAX_WIDTH, "width", k, &w, err)) < 0)
            return rc;
        if ((rc = json_small(&l->items[2], 0, 255, "id", k, &id, err)) < 0) return rc;
        unsigned skips = 0;
        for (size_t s = 0; s < l->items[3].len; s++) {
            int j = 0;
            rc = json_small(&l->items[3].items[s], 0, (int)k, "a skip", k, &j, err);
            if (rc < 0) return rc;
            if (skips & (1u << j)) return json_err(err, &l->items[3], "layer %zu: skip twice", k);
            skips |= 1u << j;
        }
        c->layers[k] = (nas_chain_layer){(uint8_t)o, (uint8_t)id, (uint16_t)w, (uint16_t)skips};
    }
    return NAS_OK;
}

/* {"space":"hierarchical","motifs":["c/sd/i-m",...],"top":"0/1-/-01"}: a
 * motif is its text token, as an MBConv stage is. */
static int json_hier(const nas_json *root, nas_genome *g, char *err) {
    for (size_t i = 0; i < root->len; i++) {
        const char *key = root->members[i].key;
        if (strcmp(key, "space") && strcmp(key, "motifs") && strcmp(key, "top"))
            return json_err(err, &root->members[i].value,
                            "unknown key \"%.40s\" for space hierarchical", key);
    }
    memset(g, 0, sizeof *g);
    g->space = NAS_SPACE_HIER;
    const nas_json *arr = nas_json_get(root, "motifs"), *top = nas_json_get(root, "top");
    if (arr == NULL || top == NULL)
        return json_err(err, root, "missing key \"%s\"", arr == NULL ? "motifs" : "top");
    if (arr->type != NAS_JSON_ARRAY || arr->len < 1 || arr->len > NAS_HIER_MAX_MOTIFS)
        return json_err(err, arr, "\"motifs\" must be an array of 1..%d motif strings",
                        NAS_HIER_MAX_MOTIFS);
    g->hier.n_motifs = (int)arr->len;
    char merr[NAS_ERR_LEN];
    for (size_t i = 0; i <= arr->len; i++) {
        const nas_json *v = i < arr->len ? &arr->items[i] : top;
        int level = i < arr->len ? 2 : 3;
        nas_hier_motif *m = i < arr->len ? &g->hier.motifs[i] : &g->hier.top;
        if (v->type != NAS_JSON_STRING)
            return json_err(err, v, "%s must be a string", level == 3 ? "\"top\"" : "a motif");
        if (nas__hier_parse_motif(v->str, v->len, 0, level, g->hier.n_motifs, m, merr) < 0) {
            if (level == 3) return json_err(err, v, "top: %s", merr);
            return json_err(err, v, "motif %zu: %s", i, merr);
        }
    }
    return NAS_OK;
}

/* Unknown keys are errors, not ignored: a typo such as "reduced" would
 * otherwise silently fall back to a default and search the wrong space. */
static int json_genome(const nas_json *root, nas_genome *g, char *err) {
    if (root->type != NAS_JSON_OBJECT) return json_err(err, root, "a genome must be an object");
    const nas_json *space = nas_json_get(root, "space");
    if (space == NULL) return json_err(err, root, "missing key \"space\"");
    if (space->type == NAS_JSON_STRING && strcmp(space->str, "mbconv") == 0)
        return json_mbconv(root, g, err);
    if (space->type == NAS_JSON_STRING && strcmp(space->str, "chain") == 0) {
        memset(g, 0, sizeof *g);
        g->space = NAS_SPACE_CHAIN;
        return json_chain(root, &g->chain, err);
    }
    if (space->type == NAS_JSON_STRING && strcmp(space->str, "hierarchical") == 0)
        return json_hier(root, g, err);
    if (space->type != NAS_JSON_STRING ||
        (strcmp(space->str, "cell") && strcmp(space->str, "nb201")))
        return json_err(err, space,
                        "\"space\" must be \"cell\", \"nb201\", \"mbconv\", \"chain\" or "
                        "\"hierarchical\"");
    int nb = strcmp(space->str, "nb201") == 0;
    static const char *const cell_keys[] = {"space", "shared", "normal", "reduce"};
    static const char *const nb_keys[] = {"space", "edges"};
    for (size_t i = 0; i < root->len; i++) {
        const char *key = root->members[i].key;
        int known = 0;
        for (size_t j = 0; j < (nb ? 2u : 4u); j++)
            known |= strcmp(key, nb ? nb_keys[j] : cell_keys[j]) == 0;
        if (!known)
            return json_err(err, &root->members[i].value, "unknown key \"%.40s\" for space %s", key,
                            space->str);
    }
    memset(g, 0, sizeof *g);
    if (nb) {
        g->space = NAS_SPACE_NB201;
        const nas_json *edges = nas_json_get(root, "edges");
        if (edges == NULL) return json_err(err, root, "missing key \"edges\"");
        if (edges->type != NAS_JSON_ARRAY || edges->len != NAS_NB201_EDGES)
            return json_err(err, edges, "\"edges\" must be an array of %d op names",
                            NAS_NB201_EDGES);
        for (int e = 0; e < NAS_NB201_EDGES; e++) {
            const nas_json *v = &edges->items[e];
            int op = v->type == NAS_JSON_STRING ? nas_nb201_op_parse(v->str, v->len) : -1;
            if (op < 0) return json_err(err, v, "edge %d: unknown nb201 op", e);
            g->nb201[e] = (uint8_t)op;
        }
        return NAS_OK;
    }
    g->space = NAS_SPACE_CELL;
    const nas_json *shared = nas_json_get(root, "shared");
    if (shared != NULL) {
        if (shared->type != NAS_JSON_BOOL)
            return json_err(err, shared, "\"shared\" must be a boolean");
        g->shared = shared->boolean;
    }
    const nas_json *normal = nas_json_get(root, "normal"), *reduce = nas_json_get(root, "reduce");
    if (normal == NULL) return json_err(err, root, "missing key \"normal\"");
    int rc = json_cell_read(normal, &g->normal, "normal", err);
    if (rc < 0) return rc;
    if (g->shared) {
        if (reduce != NULL) return json_err(err, reduce, "a shared genome has no \"reduce\" cell");
        g->reduce = g->normal;
        return NAS_OK;
    }
    if (reduce == NULL) return json_err(err, root, "missing key \"reduce\" (or \"shared\":true)");
    return json_cell_read(reduce, &g->reduce, "reduce", err);
}

int nas_genome_from_json(const char *json, size_t len, nas_genome *out, char *err) {
    if (out == NULL) return nas_set_err(err, NAS_EINVAL, "output genome is NULL");
    nas_json *root = NULL;
    char jerr[NAS_ERR_LEN] = "";
    /* Depth 8 is plenty (a genome nests 3 deep) and bounds hostile input. */
    int rc = nas_json_parse(json, len, 8, &root, jerr);
    if (rc < 0) return nas_set_err(err, rc == NAS_ENOMEM ? rc : NAS_EGENOME, "%s", jerr);
    nas_genome g;
    rc = json_genome(root, &g, err);
    nas_json_free(&root);
    if (rc < 0) return rc;
    char verr[NAS_ERR_LEN];
    if (nas_genome_validate(&g, verr) < 0) return nas_set_err(err, NAS_EGENOME, "json: %s", verr);
    *out = g;
    return NAS_OK;
}
