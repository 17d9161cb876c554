/*
 * genome_internal.h - helpers shared by the genome_*.c files, not public API.
 *
 * Internal cross-file symbols use the nas__ prefix (house style rule 1).
 */
#ifndef NAS_GENOME_INTERNAL_H
#define NAS_GENOME_INTERNAL_H

#include "common/genome.h"

/* 1 if the first n_blocks blocks of both cells are byte-identical. */
int nas__cell_equal(const nas_cell *a, const nas_cell *b);

/* Liveness of a valid cell's blocks (docs/GENOME.md s2): live[k] if no
 * block reads k, or a live block reads it through a non-zero half;
 * output[k] (may be NULL) if no block reads k at all. Shared by the
 * canonical form and the builder, so what is dropped is what is not built. */
void nas__cell_live(const nas_cell *c, int *live, int *output);

/* Canonical form of a valid cell (see nas_genome_canonical). */
void nas__cell_canonical(const nas_cell *in, nas_cell *out);

/* NB201: dead edges set to none and the node-1/node-2 symmetry resolved. */
void nas__nb201_canonical(const uint8_t in[NAS_NB201_EDGES], uint8_t out[NAS_NB201_EDGES]);

/* NB201: every edge that cannot carry a signal from node 0 to node 3 set to none. */
void nas__nb201_prune(const uint8_t in[NAS_NB201_EDGES], uint8_t out[NAS_NB201_EDGES]);

/* NB201: number of intermediate nodes (0..2) that carry a live edge. */
int nas__nb201_level(const uint8_t edges[NAS_NB201_EDGES]);

/* Chain space (genome_chain.c). */
int nas__chain_validate(const nas_chain *c, char *err);
/* Parse layers from s[*pos] (after "chain="); *pos moves past them. */
int nas__chain_parse(const char *s, size_t len, size_t *pos, nas_chain *out, char *err);
void nas__chain_canonical(const nas_chain *in, nas_chain *out);
/* Id-free byte encoding of a chain (at most 1 + 5 * NAS_CHAIN_MAX_LAYERS bytes). */
int nas__chain_encode(const nas_chain *c, uint8_t *buf);
/* Width units of h[0..n_layers] (h[0], the stem, is 16 units). */
void nas__chain_units(const nas_chain *c, int *units);
int nas__chain_sample(const nas_space *sp, const int *ops, int n_ops, nas_rng *rng,
                      nas_genome *out);
int nas__chain_mutate(const nas_genome *parent, const nas_space *sp, const int *ops, int n_ops,
                      nas_rng *rng, nas_genome *child, nas_mutation *what);
int nas__chain_mutation_format(const nas_mutation *m, char *buf, size_t cap);

/* The ops a space allows, resolved (0 -> default) and clipped to the space. */
uint32_t nas__space_ops(const nas_space *sp);

/* Collect the op indices set in mask into ops[]; returns how many. */
int nas__mask_list(uint32_t mask, int n_ops, int *ops);

/* Bounded text appender for the writers: n counts every byte that would
 * have been written; nas__text_finish returns the length or NAS_ERANGE. */
typedef struct nas__text {
    char *buf;
    size_t cap, n;
} nas__text;
void nas__text_put(nas__text *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int nas__text_finish(nas__text *o);

/* MBConv space (genome_mbconv.c). */
int nas__mb_validate(const nas_mbconv *m, char *err);
/* Parse from s[*pos] (after "mbconv="); *pos moves past the genome. */
int nas__mb_parse(const char *s, size_t len, size_t *pos, nas_mbconv *out, char *err);
/* One stage token ("mb3x6se-24r2s2"), the whole of s[0..len). */
int nas__mb_parse_stage(const char *s, size_t len, nas_mb_stage *out, char *err);
void nas__mb_format(const nas_mbconv *m, nas__text *o);
void nas__mb_format_stage(const nas_mb_stage *st, nas__text *o);
void nas__mb_canonical(const nas_mbconv *in, nas_mbconv *out);
/* Byte encoding for the hash (at most 5 + 8 * NAS_MB_MAX_STAGES bytes). */
int nas__mb_encode(const nas_mbconv *m, uint8_t *buf);
int nas__mb_sample(const nas_space *sp, nas_rng *rng, nas_genome *out);
int nas__mb_mutate(const nas_genome *parent, const nas_space *sp, nas_rng *rng, nas_genome *child,
                   nas_mutation *what);
int nas__mb_mutation_format(const nas_mutation *m, char *buf, size_t cap);
void nas__mb_dot(const nas_mbconv *m, nas__text *o);
/* Channels of `units` width units at fidelity f: 16 units are F channels, rounded to a
 * multiple of 4; with f->width_mult > 0, F * width_mult channels, rounded to a whole
 * channel; at least 4 either way (docs/GENOME.md s8). */
int nas__mb_channels(int units, const nas_fidelity *f);
/* What changed from chain p to chain c, by layer id (nas_genome_lineage). */
void nas__chain_lineage(const nas_chain *p, const nas_chain *c, nas__text *o);
/* Chain text form ("chain=..."), appended to o. */
void nas__chain_format(const nas_chain *c, nas__text *o);

/* Hierarchical space (genome_hier.c). */
#define NAS__HIER_ENC_MAX   (1 + (NAS_HIER_MAX_MOTIFS + 1) * (1 + NAS_HIER_MAX_EDGES))
int nas__hier_validate(const nas_hier *h, char *err);
/* Parse from s[*pos] (after "hier="); *pos moves past the genome. */
int nas__hier_parse(const char *s, size_t len, size_t *pos, nas_hier *out, char *err);
/* One motif token ("c/sd/i-m"), the whole of s[0..len): level 2, or level
 * 3 over n_motifs motifs.  Errors count positions from `base`. */
int nas__hier_parse_motif(const char *s, size_t len, size_t base, int level, int n_motifs,
                          nas_hier_motif *out, char *err);
void nas__hier_format(const nas_hier *h, nas__text *o);
void nas__hier_format_motif(const nas_hier_motif *m, int level, nas__text *o);
void nas__hier_canonical(const nas_hier *in, nas_hier *out);
/* Byte encoding of the network a canonical genome builds (at most NAS__HIER_ENC_MAX). */
int nas__hier_encode(const nas_hier *canonical, uint8_t *buf);
/* A motif with the edges that carry no signal from input to output set to none. */
void nas__hier_prune(const nas_hier_motif *in, nas_hier_motif *out);
int nas__hier_sample(const nas_space *sp, const int *ops, int n_ops, nas_rng *rng,
                     nas_genome *out);
int nas__hier_mutate(const nas_genome *parent, const nas_space *sp, const int *ops, int n_ops,
                     nas_rng *rng, nas_genome *child, nas_mutation *what);
int nas__hier_mutation_format(const nas_mutation *m, char *buf, size_t cap);
void nas__hier_dot(const nas_hier *h, nas__text *o);

#endif
