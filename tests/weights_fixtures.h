/*
 * weights_fixtures.h - networks and manifests shared by the weight-store
 * suites (test_inherit.c, test_weights.c, test_ps.c).
 *
 * The parent and child genomes differ by one op mutation (block 1, half a:
 * sep5x5 -> sep3x3), so the child keeps every path of the parent and has
 * exactly the mutated half's depthwise kernels in a different shape: the
 * case inheritance exists for.
 */
#ifndef NAS_TEST_WEIGHTS_FIXTURES_H
#define NAS_TEST_WEIGHTS_FIXTURES_H

#include "common/alloc.h"
#include "common/builder.h"
#include "common/err.h"
#include "common/fidelity.h"
#include "common/inherit.h"
#include "common/net.h"
#include "common/rng.h"
#include "common/wire_weights.h"

#include <check.h>
#include <string.h>

#define FIX_PARENT "c=sep3x3:1+max3x3:0,sep5x5:2+id:0"
#define FIX_CHILD  "c=sep3x3:1+max3x3:0,sep3x3:2+id:0"
#define FIX_OTHER  "c=conv3x3:1+avg3x3:0"

/* Build and compile a genome at a tiny fidelity (F = 4, N = 1, 14x14
 * inputs, batch 8), initialised from `seed` as the trainer would. */
static inline nas_net *fix_net(const char *text, uint64_t seed) {
    char err[NAS_ERR_LEN] = "";
    nas_genome g;
    ck_assert_msg(nas_genome_parse(text, strlen(text), &g, err) == NAS_OK, "%s", err);
    nas_fidelity f = nas_fidelity_default();
    f.channels = 4;
    f.cells = 1;
    nas_net *net = NULL;
    ck_assert_int_eq(nas_net_create(&net, 1, 14, 14, err), NAS_OK);
    int logits = -1;
    ck_assert_msg(nas_builder_build(net, &g, &f, 10, &logits, err) == NAS_OK, "%s", err);
    ck_assert_msg(nas_net_compile(net, logits, 8, err) == NAS_OK, "%s", err);
    nas_inherit_init(net, seed);
    return net;
}

/* Perturb every tensor so a net is distinguishable from any fresh one
 * (a stand-in for training: values no initialiser produces). */
static inline void fix_scramble(nas_net *net, uint64_t seed) {
    nas_rng r;
    nas_rng_init(&r, seed, 77);
    for (int i = 0; i < nas_net_param_n(net); i++) {
        const nas_param *p = nas_net_param(net, i);
        for (size_t k = 0; k < p->size; k++)
            p->data[k] += nas_rng_normal(&r) + 0.5f;
    }
}

/* A push manifest of a whole net (the data lie from *base). */
static inline void fix_manifest(const nas_net *net, uint64_t arch, nas_wire_weights_msg *m,
                                const void **base) {
    char err[NAS_ERR_LEN] = "";
    nas_safetensors_tensor *t = NULL;
    int n = nas_inherit_collect(net, &t, base, err);
    ck_assert_msg(n > 0, "%s", err);
    nas_wire_weights_msg_init(m, NAS_MSG_WEIGHTS_PUSH);
    m->arch = arch;
    ck_assert_msg(nas_wire_weights_manifest(m, t, (size_t)n, *base, NULL, err) == NAS_OK, "%s",
                  err);
    m->type = NAS_MSG_WEIGHTS_PUSH;
    nas_free(t);
}

/* 1 when two nets hold bit-identical data in the tensor called name. */
static inline int fix_same(const nas_net *a, const nas_net *b, const char *name) {
    const nas_param *pa = nas_net_param_find(a, name), *pb = nas_net_param_find(b, name);
    if (!pa || !pb || pa->size != pb->size) return 0;
    return memcmp(pa->data, pb->data, pa->size * sizeof(float)) == 0;
}

#endif
