/*
 * genome_proto.h - the genome as a protobuf message (proto/genome.proto).
 *
 * Kept apart from genome.h so that users of the genome value type do not
 * pull in protobuf-c.  nas_genome_to_proto fills caller-owned storage (no
 * allocation), so the message can be embedded in a larger one (a Task) by
 * pointing at &pb->msg; nas_genome_pack/unpack are the byte-level shortcuts.
 */
#ifndef NAS_GENOME_PROTO_H
#define NAS_GENOME_PROTO_H

#include "common/genome.h"
#include "proto/genome.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define NAS_GENOME_PB_VERSION 1

/* Storage for one message; pb->msg is valid while pb lives. */
typedef struct nas_genome_pb {
    Naspb__Genome msg;
    Naspb__Block blocks[2 * NAS_MAX_BLOCKS];
    Naspb__Block *normal[NAS_MAX_BLOCKS];
    Naspb__Block *reduce[NAS_MAX_BLOCKS];
    uint32_t nb201[NAS_NB201_EDGES];
    Naspb__MbStage mb[NAS_MB_MAX_STAGES];
    Naspb__MbStage *mb_ptrs[NAS_MB_MAX_STAGES];
    Naspb__ChainLayer layers[NAS_CHAIN_MAX_LAYERS];
    Naspb__ChainLayer *chain[NAS_CHAIN_MAX_LAYERS];
    char hier_text[NAS_HIER_MAX_MOTIFS + 1][NAS_HIER_TOKEN_MAX]; /* motifs, then the top */
    char *hier_motifs[NAS_HIER_MAX_MOTIFS];
} nas_genome_pb;

/* Fill pb from a valid genome (NAS_EGENOME otherwise). In shared mode the
 * reduce list is left empty. */
int nas_genome_to_proto(const nas_genome *g, nas_genome_pb *pb);

/* Read and validate a message: missing fields, unknown versions and values
 * out of range are NAS_EGENOME with err naming the field. */
int nas_genome_from_proto(const Naspb__Genome *msg, nas_genome *out, char *err);

/* Pack into buf (cap bytes); returns the length or NAS_ERANGE / NAS_EGENOME. */
int nas_genome_pack(const nas_genome *g, uint8_t *buf, size_t cap);

/* Unpack and validate bytes (any bytes: malformed ones are NAS_EGENOME). */
int nas_genome_unpack(const uint8_t *buf, size_t len, nas_genome *out, char *err);

#endif
