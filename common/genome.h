/*
 * genome.h - architectures as data: the search spaces of nasd.
 *
 * The spaces share one value type, nas_genome, tagged by `space`:
 *
 *  - NAS_SPACE_CELL, the NASNet / PNAS / AmoebaNet family (ARCHITECTURE.md, Search space):
 *    a normal cell and a reduction cell of 1..NAS_MAX_BLOCKS blocks.  Block
 *    k reads two inputs (0 = h[i-2], 1 = h[i-1], j+2 = output of block j<k),
 *    applies one op to each and adds the results.  The cell's output is the
 *    concatenation of the blocks no later block uses, brought back to the
 *    stage's channel count by a 1x1 convolution.  With `shared` set (PNAS)
 *    the reduction cell has the normal cell's structure.
 *    Text form:  n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1
 *    (shared mode: a single cell `c=...`).  docs/GENOME.md has the grammar.
 *
 *  - NAS_SPACE_NB201, the NAS-Bench-201 cell (Dong & Yang 2020): 4 nodes, 6
 *    edges j->i (j < i), each one of none/skip_connect/nor_conv_1x1/
 *    nor_conv_3x3/avg_pool_3x3.  Text form: the benchmark's own string,
 *    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|
 *
 *  - NAS_SPACE_MBCONV, MnasNet / EfficientNet(V2) stages of MBConv and
 *    Fused-MBConv blocks (nas_mbconv below; docs/GENOME.md s8).  It has no
 *    PNAS levels: expand, level and enumerate_level1 return NAS_EINVAL.
 *  - NAS_SPACE_CHAIN, the chain-structured space (common/genome_chain.c): a
 *    stem and 1..12 layers, each a conv, separable conv, pool or identity
 *    with a width and skips from earlier outputs.
 *    Text form:  chain=conv3x3/32,sep5x5/48+0,max3x3,conv3x3/64+1+3
 *  - NAS_SPACE_HIER, Liu et al.'s hierarchical representation
 *    (common/genome_hier.c; docs/GENOME.md s11): level-2 motifs, small DAGs
 *    whose edges carry level-1 primitives, and one level-3 motif whose
 *    edges carry level-2 motifs.  It has no PNAS levels either.
 *    Text form:  hier=c/sd/i-m,s/-c/dai;0/1-/-01
 *
 * Every function is a pure function of its inputs (randomness comes from a
 * caller's nas_rng), never crashes on any input, and reports problems in a
 * caller-supplied err[NAS_ERR_LEN] naming what and where.
 */
#ifndef NAS_GENOME_H
#define NAS_GENOME_H

#include "common/fidelity.h"
#include "common/rng.h"

#include <stddef.h>
#include <stdint.h>

#define NAS_MAX_BLOCKS 8
#define NAS_GENOME_TEXT_MAX 512  /* longest text form of any valid genome, with NUL */
#define NAS_GENOME_JSON_MAX 1024 /* longest JSON form, with NUL */
#define NAS_GENOME_DOT_MAX  32768 /* longest DOT form, with NUL */

enum nas_space_kind {
    NAS_SPACE_CELL = 0,
    NAS_SPACE_NB201 = 1,
    NAS_SPACE_MBCONV = 2, /* MnasNet / EfficientNet(V2) stages (common/genome_mbconv.c) */
    NAS_SPACE_CHAIN = 3,  /* chain-structured (common/genome_chain.c) */
    NAS_SPACE_HIER = 4,   /* hierarchical (common/genome_hier.c) */
};

/* Cell-space ops (ARCHITECTURE.md, Search space). The numeric values are stored in
 * databases and on the wire: append only, never renumber. */
enum nas_op {
    NAS_OP_ID = 0,          /* id: identity (a factorized reduction when strided) */
    NAS_OP_AVG3X3 = 1,      /* avg3x3: 3x3 average pool, padding not counted */
    NAS_OP_MAX3X3 = 2,      /* max3x3: 3x3 max pool */
    NAS_OP_SEP3X3 = 3,      /* sep3x3: (ReLU-dw3x3-pw1x1-BN) twice */
    NAS_OP_SEP5X5 = 4,      /* sep5x5 */
    NAS_OP_SEP7X7 = 5,      /* sep7x7 */
    NAS_OP_DIL3X3 = 6,      /* dil3x3: ReLU-dw3x3 (dilation 2)-pw1x1-BN */
    NAS_OP_CONV1X7_7X1 = 7, /* conv1x7_7x1: ReLU-conv1x7-conv7x1-BN */
    NAS_OP_CONV3X3 = 8,     /* conv3x3: ReLU-conv3x3-BN */
    NAS_OP_CONV1X1 = 9,     /* conv1x1: ReLU-conv1x1-BN */
    NAS_OP_ZERO = 10,       /* zero: contributes nothing (search-space option only) */
    NAS_OP_COUNT = 11,
};

/* NAS-Bench-201 edge ops, in the benchmark's order. */
enum nas_nb201_op {
    NAS_NB201_NONE = 0,
    NAS_NB201_SKIP = 1,
    NAS_NB201_CONV1X1 = 2,
    NAS_NB201_CONV3X3 = 3,
    NAS_NB201_AVG3X3 = 4,
    NAS_NB201_OP_COUNT = 5,
};
#define NAS_NB201_EDGES 6 /* edge order: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3 */

typedef struct nas_block {
    uint8_t in_a, op_a; /* first half: input index and op */
    uint8_t in_b, op_b; /* second half */
} nas_block;

typedef struct nas_cell {
    int n_blocks; /* 1..NAS_MAX_BLOCKS */
    nas_block blocks[NAS_MAX_BLOCKS];
} nas_cell;

/* MBConv space (docs/GENOME.md s8): a stem, 1..NAS_MB_MAX_STAGES stages of
 * repeated inverted-residual blocks, a 1x1 head.  Widths are in units where
 * 16 units are F channels (fidelity.channels), so F = 16 builds them as
 * written.  Text form: mbconv=stem16,mb3x6se-24r2s2,fu5x4-48r3s1,head128
 * In nas_space, n_blocks is the stage count of sampled genomes and op_mask
 * the block kinds (bit 0 MBConv, bit 1 Fused-MBConv; 0 = both). */
#define NAS_MB_MAX_STAGES 7
typedef struct nas_mb_stage {
    uint8_t fused;   /* 0 = MBConv (1x1 expand, depthwise kxk), 1 = Fused-MBConv (kxk conv) */
    uint8_t kernel;  /* 3, 5 or 7 */
    uint8_t expand;  /* expansion ratio 1..8 */
    uint8_t se;      /* 1 = squeeze-and-excitation */
    uint8_t repeats; /* blocks in the stage, 1..16 */
    uint8_t stride;  /* the first block's stride, 1 or 2 */
    uint16_t width;  /* output width units, a multiple of 8 in 8..1024 */
} nas_mb_stage;

typedef struct nas_mbconv {
    int n_stages;            /* 1..NAS_MB_MAX_STAGES */
    uint16_t stem, head;     /* width units of the stem conv and the 1x1 head conv */
    nas_mb_stage stages[NAS_MB_MAX_STAGES];
} nas_mbconv;

/* What an MBConv mutation changes (nas_mutation.half; .block is the stage). */
enum nas_mb_field {
    NAS_MB_FIELD_FUSED = 0,
    NAS_MB_FIELD_KERNEL = 1,
    NAS_MB_FIELD_EXPAND = 2,
    NAS_MB_FIELD_SE = 3,
    NAS_MB_FIELD_WIDTH = 4,
    NAS_MB_FIELD_REPEATS = 5,
    NAS_MB_FIELD_COUNT = 6,
};

/* Chain-space layer ops (docs/GENOME.md, Chain space). Stored on disk and on
 * the wire: append only, never renumber. */
enum nas_chain_op {
    NAS_CHAIN_CONV3X3 = 0, /* conv3x3/W: conv3x3 - BN - ReLU */
    NAS_CHAIN_CONV5X5 = 1, /* conv5x5/W */
    NAS_CHAIN_CONV1X1 = 2, /* conv1x1/W */
    NAS_CHAIN_SEP3X3 = 3,  /* sep3x3/W: depthwise 3x3 - pointwise 1x1 - BN - ReLU */
    NAS_CHAIN_SEP5X5 = 4,  /* sep5x5/W */
    NAS_CHAIN_MAX3X3 = 5,  /* max3x3: 3x3 max pool, stride 2 (halves the side) */
    NAS_CHAIN_AVG3X3 = 6,  /* avg3x3: 3x3 average pool, stride 2 */
    NAS_CHAIN_ID = 7,      /* id: the input unchanged (plus its skips) */
    NAS_CHAIN_OP_COUNT = 8,
};
#define NAS_CHAIN_MAX_LAYERS 12 /* layers of one chain */
#define NAS_CHAIN_MAX_SKIPS  4  /* skip connections into one layer */
#define NAS_CHAIN_MAX_WIDTH  512 /* width units of one layer (16 units = F channels) */

/* One layer of a chain. Layer k (1-based) reads h[k-1] and writes h[k];
 * h[0] is the stem's output. Bit j of `skips` adds h[j] (j < k) to the
 * layer's output through a BN (and a 1x1 conv where the shape differs). */
typedef struct nas_chain_layer {
    uint8_t op;     /* enum nas_chain_op */
    uint8_t id;     /* name in parameter paths ("L<id>/..."), unique in the chain */
    uint16_t width; /* width units (conv and sep ops; 0 for pool and id) */
    uint16_t skips; /* bit j: skip from h[j] */
} nas_chain_layer;

typedef struct nas_chain {
    int n_layers; /* 1..NAS_CHAIN_MAX_LAYERS */
    nas_chain_layer layers[NAS_CHAIN_MAX_LAYERS];
} nas_chain;

/* Hierarchical space (docs/GENOME.md s11): level-1 primitives. Stored on
 * disk and on the wire: append only, never renumber.  The letter is the
 * primitive's character in the text form. */
enum nas_hier_op {
    NAS_HIER_NONE = 0,    /* '-' none: no edge */
    NAS_HIER_ID = 1,      /* 'i' id: identity */
    NAS_HIER_CONV1X1 = 2, /* 'c' conv1x1: conv1x1 - BN - ReLU */
    NAS_HIER_DW3X3 = 3,   /* 'd' dw3x3: depthwise 3x3 - BN - ReLU */
    NAS_HIER_SEP3X3 = 4,  /* 's' sep3x3: depthwise 3x3 - pointwise 1x1 - BN - ReLU */
    NAS_HIER_MAX3X3 = 5,  /* 'm' max3x3: 3x3 max pool, stride 1 */
    NAS_HIER_AVG3X3 = 6,  /* 'a' avg3x3: 3x3 average pool, stride 1 */
    NAS_HIER_OP_COUNT = 7,
};
#define NAS_HIER_MAX_MOTIFS 6  /* level-2 motifs of one genome */
#define NAS_HIER_MAX_NODES  11 /* nodes of one motif (11: the paper's flat graph) */
#define NAS_HIER_MAX_EDGES  55 /* NAS_HIER_MAX_NODES * (NAS_HIER_MAX_NODES - 1) / 2 */
#define NAS_HIER_EDGE(j, i) ((i) * ((i) - 1) / 2 + (j)) /* index of edge j -> i, j < i */
#define NAS_HIER_TOKEN_MAX  72 /* one motif's text token ("c/sd/i-m"), with NUL */

/* A motif: a DAG of n_nodes nodes, node 0 its input and node n_nodes-1 its
 * output; edge j -> i (j < i) is ops[NAS_HIER_EDGE(j, i)] (NB201's order).
 * A level-2 motif's ops are enum nas_hier_op; the level-3 motif's are 0
 * (none) or 1 + the index of a level-2 motif.  A node sums its inputs. */
typedef struct nas_hier_motif {
    uint8_t n_nodes; /* 2..NAS_HIER_MAX_NODES */
    uint8_t ops[NAS_HIER_MAX_EDGES];
} nas_hier_motif;

typedef struct nas_hier {
    int n_motifs; /* 1..NAS_HIER_MAX_MOTIFS */
    nas_hier_motif motifs[NAS_HIER_MAX_MOTIFS];
    nas_hier_motif top; /* the level-3 motif: the cell */
} nas_hier;

typedef struct nas_genome {
    int space;      /* enum nas_space_kind */
    int shared;     /* CELL: 1 = reduction cell has the normal cell's structure */
    nas_cell normal;
    nas_cell reduce; /* ignored (kept equal to normal) when shared */
    nas_mbconv mb;   /* MBCONV: the stages */
    uint8_t nb201[NAS_NB201_EDGES]; /* NB201: one enum nas_nb201_op per edge */
    nas_chain chain;                /* CHAIN: the layers */
    nas_hier hier;                  /* HIER: the motifs */
} nas_genome;

/* What a search may use: the space, the block count of sampled genomes,
 * and which ops are allowed (bit i = enum nas_op i, or nas_nb201_op i). */
typedef struct nas_space {
    int kind;         /* enum nas_space_kind */
    int n_blocks;     /* CELL: blocks per cell for sampling; expansion stops here */
    uint32_t op_mask; /* allowed ops; 0 means the default set */
    int shared;       /* CELL: 1 = PNAS mode (one structure for both cells) */
    int depth_min;    /* CHAIN: layers of sampled chains, depth_min..depth_max (0: 2..8) */
    int depth_max;
    int morphisms;    /* CHAIN: 1 = mutate by function-preserving morphisms only */
    int motifs;       /* HIER: level-2 motifs of sampled genomes (0: 6) */
    int motif_nodes;  /* HIER: nodes of a sampled level-2 motif (0: 4) */
    int top_nodes;    /* HIER: nodes of the sampled level-3 motif (0: 5) */
} nas_space;

/* Default ops: every cell op but `zero`; every NB201 op. */
uint32_t nas_space_default_ops(int kind);
/* Parse "cell" / "nb201" / "mbconv" / "chain" / "hierarchical"; NAS_EINVAL otherwise. */
int nas_space_kind_parse(const char *s, int *kind);
/* "cell", "nb201", "mbconv", "chain", "hierarchical"; NULL for an unknown kind. */
const char *nas_space_kind_name(int kind);
/* Ops of a space kind (0 for an unknown kind) and the name of op i. */
int nas_space_op_count(int kind);
const char *nas_space_op_name(int kind, int op);

/* ---- ops ---------------------------------------------------------------- */

const char *nas_op_name(int op);                     /* "sep3x3"; NULL if out of range */
int nas_op_parse(const char *s, size_t len);         /* op or -1 */
const char *nas_nb201_op_name(int op);               /* "nor_conv_3x3"; NULL if out of range */
int nas_nb201_op_parse(const char *s, size_t len);   /* op or -1 */

/* Chain space (docs/GENOME.md, Chain space). */
const char *nas_chain_op_name(int op);               /* "sep3x3"; NULL if out of range */
int nas_chain_op_parse(const char *s, size_t len);   /* op or -1 */
int nas_chain_op_has_width(int op);                  /* 1 for the conv and sep ops */
int nas_chain_channels(int units, int F);            /* channels of `units` at F: ceil(units*F/16) */
int nas_chain_widen_width(int units);                /* what Net2WiderNet widens `units` to */

/* Hierarchical space (docs/GENOME.md s11). */
const char *nas_hier_op_name(int op);                /* "sep3x3"; NULL if out of range */

/* ---- forms that round-trip ------------------------------------------------ */

/* Parse the text form of either space (NB201 strings start with '|').
 * On error returns NAS_EGENOME with err naming the problem and the 0-based
 * character position ("at 14: unknown op 'sep4x4'"). Validates too. */
int nas_genome_parse(const char *text, size_t len, nas_genome *out, char *err);

/* Write the text form into buf (cap bytes, NUL-terminated). Returns the
 * length, or NAS_ERANGE if it does not fit. Does not canonicalise. */
int nas_genome_format(const nas_genome *g, char *buf, size_t cap);

/* JSON: {"space":"cell","shared":false,"normal":[[in_a,"op_a",in_b,"op_b"],...],"reduce":[...]}
 *       ("reduce" is absent when "shared" is true)
 *       {"space":"nb201","edges":["nor_conv_3x3",...]} (edge order as above)
 * to_json returns the length or NAS_ERANGE / NAS_EGENOME; from_json is
 * strict (unknown or missing keys, wrong types) and validates, NAS_EGENOME
 * with err naming the key or block and the byte offset. */
int nas_genome_to_json(const nas_genome *g, char *buf, size_t cap);
int nas_genome_from_json(const char *json, size_t len, nas_genome *out, char *err);

/* Graphviz DOT: one digraph with a cluster per cell. Returns length or NAS_ERANGE. */
int nas_genome_to_dot(const nas_genome *g, char *buf, size_t cap);
/* Read back the DOT dialect nas_genome_to_dot writes (one statement per
 * line, our node names; edited labels and edges are fine). NAS_EGENOME with
 * err naming the line otherwise. */
int nas_genome_from_dot(const char *dot, size_t len, nas_genome *out, char *err);

/* Check structure: block count, op range, inputs in range (a block may use
 * only 0, 1 and earlier blocks), at least one non-`zero` half per block,
 * shared cells equal. NAS_EGENOME + err naming cell, block and half. */
int nas_genome_validate(const nas_genome *g, char *err);

/* ---- identity --------------------------------------------------------------- */

/* Canonical form: halves of each block ordered, blocks that feed nothing
 * dropped (blocks read only through `zero`; a `zero` half's input is
 * written 0), blocks renumbered in a canonical topological order; for
 * NB201, edges that cannot reach the output set to none, and the form
 * chosen up to isomorphism. Idempotent; the shared flag is kept. `out` may
 * equal `in`. `in` must be valid. docs/GENOME.md s2 has the exact rules. */
void nas_genome_canonical(const nas_genome *in, nas_genome *out);

/* Stable 64-bit hash of the canonical form (FNV-1a over a fixed byte
 * encoding; the same on every machine and build). The shared flag is not
 * hashed: shared and unshared genomes with equal cells hash equal. An
 * invalid genome hashes to 0 (and canonical copies it unchanged). */
uint64_t nas_genome_hash(const nas_genome *g);

/* 1 if both build the same network (equal canonical cells, or edges). */
int nas_genome_equivalent(const nas_genome *a, const nas_genome *b);

/* ---- search moves ----------------------------------------------------------- */

enum nas_mutation_kind {
    NAS_MUTATION_IDENTITY = 0,
    NAS_MUTATION_OP = 1,     /* one op changes to another allowed op */
    NAS_MUTATION_HIDDEN = 2, /* one input changes to another valid one */
    /* Chain space (block = 0-based layer index). */
    NAS_MUTATION_WIDTH = 3,  /* a layer's width changes (old_val -> new_val units) */
    NAS_MUTATION_SKIP = 4,   /* a skip h[old_val] into the layer toggles (new_val 1 = added) */
    NAS_MUTATION_INSERT = 5, /* a layer of op new_val is inserted at `block` */
    NAS_MUTATION_REMOVE = 6, /* layer `block` (op old_val) is removed */
    /* Chain-space network morphisms (common/morph.h): the child's weights
     * follow from the parent's so that it computes the same function. */
    NAS_MUTATION_WIDEN = 7,  /* Net2WiderNet: layer `block` old_val -> new_val units */
    NAS_MUTATION_DEEPEN = 8, /* Net2DeeperNet: identity conv3x3 inserted after layer `block` */
    NAS_MUTATION_ADD_SKIP = 9, /* zero-initialised skip from h[new_val] into layer `block` */
};

typedef struct nas_mutation {
    int kind;    /* enum nas_mutation_kind */
    int cell;    /* 0 = normal, 1 = reduction (NB201: 0; HIER: the level, 2 or 3) */
    int block;   /* block index (NB201: edge index; HIER: the level-2 motif) */
    int half;    /* 0 = a, 1 = b (HIER: the edge, NAS_HIER_EDGE(j, i)) */
    int old_val; /* previous op or input */
    int new_val; /* new op or input */
} nas_mutation;

/* Describe a mutation for logs ("op: normal block 1 b sep3x3 -> max3x3"). */
int nas_mutation_format(const nas_mutation *m, const nas_genome *parent, char *buf, size_t cap);

/* What changed from parent to child, for lineage displays: chains are
 * compared by layer id (ids survive every move and morphism), so each
 * change is named ("morph widen: L2 16 -> 24", "morph deepen: identity
 * conv3x3 L5 after L1", "morph skip: stem -> L3", "op: L1 conv3x3 ->
 * sep3x3"; several joined by "; "); other spaces write "mutation".
 * Returns the length, NAS_ERANGE, or NAS_EGENOME for an invalid genome. */
int nas_genome_lineage(const nas_genome *parent, const nas_genome *child, char *buf, size_t cap);

/* Mutate after Real et al. 2019: choose op or hidden-state mutation with
 * equal probability (identity with probability p_identity), apply it so the
 * child stays valid and differs from the parent (but for identity), and
 * record what changed in *what (may be NULL). */
int nas_genome_mutate(const nas_genome *parent, const nas_space *sp, float p_identity,
                      nas_rng *rng, nas_genome *child, nas_mutation *what);

/* Uniformly random valid genome of the space (sp->n_blocks blocks). */
int nas_genome_sample(const nas_space *sp, nas_rng *rng, nas_genome *out);

/* PNAS expansion: every distinct (by canonical hash) child with one more
 * block (CELL) or one more intermediate node (NB201 levels) of g. Allocates
 * *children (free with nas_free; NULL when the count is 0); returns the
 * count or a negative error. CELL children are g with a block appended
 * (shared: to the one cell; unshared: to both cells, every combination,
 * NAS_ERANGE beyond 1,000,000); none once g has sp->n_blocks blocks. NB201
 * children are canonical; the level is the number of intermediate nodes in
 * use (0..2), and none are returned at level 2. */
int nas_genome_expand(const nas_genome *g, const nas_space *sp, nas_genome **children);

/* The PNAS level of a genome: CELL, the live block count of its larger
 * canonical cell (1..8); NB201, the number of intermediate nodes in use
 * (0..2). NAS_EGENOME for an invalid genome. */
int nas_genome_level(const nas_genome *g);

/* PNAS level 1: every distinct 1-block genome of the space (NB201: every
 * genome with exactly one intermediate node in use). Same ownership.
 * Counts for the default ops: 210 shared, 44,100 unshared, NB201 80. */
int nas_genome_enumerate_level1(const nas_space *sp, nas_genome **out);

/* ---- cost ------------------------------------------------------------------- */

typedef struct nas_cost {
    int64_t params; /* trainable parameters, exactly those of the built network */
    int64_t macs;   /* multiply-accumulates of one forward pass of one image */
} nas_cost;

/* Count params and MACs at a fidelity (F, N) for an input of in_channels x
 * side x side (side <= 0: f->resolution) and `classes` outputs, without
 * building: equal to nas_builder_build()'s network exactly (common/builder.h). */
int nas_genome_cost(const nas_genome *g, const nas_fidelity *f, int in_channels, int side,
                    int classes, nas_cost *out, char *err);

/* ---- presets ------------------------------------------------------------------ */

/* Known cells from the papers (nasnet_a, amoebanet_a, pnasnet5, resnet, ...).
 * Returns NAS_OK, or NAS_ENOTFOUND naming the known presets in err. */
int nas_genome_preset(const char *name, nas_genome *out, char *err);
/* NULL-terminated list of preset names. */
const char *const *nas_genome_preset_names(void);

#endif
