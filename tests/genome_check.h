/*
 * genome_check.h - the check every search-space suite runs on its random
 * genomes: the network builds, nas_genome_cost() counts exactly its
 * parameters and MACs, and a forward pass gives finite logits.
 */
#ifndef NAS_TEST_GENOME_CHECK_H
#define NAS_TEST_GENOME_CHECK_H

#include <math.h>

#include "common/builder.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/genome_proto.h"
#include "common/net.h"
#include "tests/harness.h"

/* Field-by-field equality of two genomes of one space. */
typedef int (*genome_same_fn)(const nas_genome *a, const nas_genome *b);

/* The forms of a valid genome: text, JSON and protobuf round-trip to a
 * genome `same` calls equal; the canonical form is valid, idempotent and
 * hashes as g does.  Writes g's text into text[NAS_GENOME_TEXT_MAX] (for
 * the caller's messages) and returns g's hash. */
static inline uint64_t genome_forms_check(const nas_genome *g, genome_same_fn same, char *text) {
    char err[NAS_ERR_LEN] = "";
    int n = nas_genome_format(g, text, NAS_GENOME_TEXT_MAX);
    ck_assert_msg(n > 0, "format %d", n);
    nas_genome back;
    ck_assert_msg(nas_genome_parse(text, (size_t)n, &back, err) == NAS_OK, "%s: %s", text, err);
    ck_assert_msg(same(g, &back), "text round trip of %s", text);
    char json[NAS_GENOME_JSON_MAX];
    int jn = nas_genome_to_json(g, json, sizeof json);
    ck_assert_msg(jn > 0, "to_json %s: %d", text, jn);
    ck_assert_msg(nas_genome_from_json(json, (size_t)jn, &back, err) == NAS_OK, "%s: %s", json,
                  err);
    ck_assert_msg(same(g, &back), "json round trip of %s", json);
    uint8_t pb[1024];
    int pn = nas_genome_pack(g, pb, sizeof pb);
    ck_assert_msg(pn > 0, "pack %s: %d", text, pn);
    ck_assert_msg(nas_genome_unpack(pb, (size_t)pn, &back, err) == NAS_OK, "unpack: %s", err);
    ck_assert_msg(same(g, &back), "proto round trip of %s", text);
    nas_genome c1, c2;
    nas_genome_canonical(g, &c1);
    ck_assert_msg(nas_genome_validate(&c1, err) == NAS_OK, "canonical of %s: %s", text, err);
    nas_genome_canonical(&c1, &c2);
    ck_assert_msg(same(&c1, &c2), "canonical not idempotent for %s", text);
    uint64_t h = nas_genome_hash(g);
    ck_assert_msg(h != 0 && h == nas_genome_hash(&c1), "hash of canonical %s", text);
    return h;
}

/* Build g at fidelity f on a one-channel side x side image (side <= 16)
 * with 10 classes, compare with the counted cost, run forward (batch 2). */
static inline void genome_build_check(const nas_genome *g, const nas_fidelity *f, int side) {
    char err[NAS_ERR_LEN] = "", text[NAS_GENOME_TEXT_MAX];
    nas_genome_format(g, text, sizeof text);
    nas_net *net = NULL;
    ck_assert_msg(nas_net_create(&net, 1, side, side, err) == NAS_OK, "create: %s", err);
    int logits = -1;
    ck_assert_msg(nas_builder_build(net, g, f, 10, &logits, err) == NAS_OK, "build %s: %s", text,
                  err);
    nas_cost cost;
    ck_assert_msg(nas_genome_cost(g, f, 1, side, 10, &cost, err) == NAS_OK, "cost %s: %s", text,
                  err);
    ck_assert_msg(cost.params == nas_net_param_count(net), "%s: counted %lld params, built %lld",
                  text, (long long)cost.params, (long long)nas_net_param_count(net));
    ck_assert_msg(cost.macs == nas_net_macs(net), "%s: counted %lld MACs, built %lld", text,
                  (long long)cost.macs, (long long)nas_net_macs(net));
    ck_assert_msg(nas_net_compile(net, logits, 2, err) == NAS_OK, "compile %s: %s", text, err);
    float x[2 * 16 * 16];
    for (int i = 0; i < 2 * side * side; i++)
        x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    const float *out = nas_net_forward(net, x, 2, 0, NULL);
    ck_assert_msg(out != NULL, "forward %s", text);
    for (int i = 0; i < 20; i++)
        ck_assert_msg(isfinite(out[i]), "logit %d of %s", i, text);
    nas_net_destroy(&net);
}

#endif
