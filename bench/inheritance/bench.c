/*
 * bench.c - does weight inheritance help?  The same mutated child at the
 * same fidelity and seed, trained from fresh weights and from its trained
 * parent's weights (common/inherit.h), on Fashion-MNIST.
 *
 *   bench parent I DIR         sample parent genome I (cell space, 3 blocks,
 *                              quick.yaml's ops), train it at the search
 *                              fidelity, save DIR/parent_I
 *   bench child I J DIR LONG   mutate parent I (mutation J), then train the
 *                              child (a) fresh, (b) inherited from
 *                              DIR/parent_I, (c) fresh for LONG epochs to see
 *                              after how many epochs fresh reaches (b)
 *
 * One line per run on stdout, key=value, for bench/inheritance/run to
 * aggregate.  Parents are trained once and reused by every child.  The
 * search fidelity is deploy/examples/quick.yaml's (14x14, 4000 images, one
 * epoch, validation on 1000), or nas_fidelity_default() (10000 images, two
 * epochs, 5000) with NAS_BENCH_FIDELITY=default.
 *
 * (c) reads its per-epoch validation curve, which runs under a LONG-epoch
 * cosine schedule: epoch e of it is not the same as a run of e epochs, but
 * it is the cheapest honest measure of "how much more training buys the
 * same accuracy" (bench/inheritance/run says so next to the figure).
 */
#include "common/builder.h"
#include "common/dataset.h"
#include "common/err.h"
#include "common/fidelity.h"
#include "common/genome.h"
#include "common/inherit.h"
#include "common/log.h"
#include "common/net.h"
#include "common/rng.h"
#include "common/safetensors.h"
#include "common/trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_DIR "/usr/share/datasets/fashion-mnist"

static void die(const char *what, const char *err) {
    fprintf(stderr, "inheritance bench: %s: %s\n", what, err);
    exit(1);
}

/* The search fidelity: deploy/examples/quick.yaml's (the default of the
 * run script) or nas_fidelity_default() when NAS_BENCH_FIDELITY=default. */
static nas_fidelity bench_fidelity(void) {
    nas_fidelity f = nas_fidelity_default();
    const char *which = getenv("NAS_BENCH_FIDELITY");
    if (which && strcmp(which, "default") == 0) return f;
    f.resolution = 14;
    f.train_subset = 4000;
    f.val_size = 1000;
    f.epochs = 1;
    f.batch = 64;
    f.channels = 8;
    f.cells = 1;
    f.lr = 0.1f;
    return f;
}

static nas_space bench_space(void) {
    nas_space sp = {.kind = NAS_SPACE_CELL, .n_blocks = 3, .shared = 0};
    const char *ops[] = {"id", "avg3x3", "max3x3", "sep3x3", "sep5x5", "dil3x3", "conv1x1"};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        sp.op_mask |= 1u << nas_op_parse(ops[i], strlen(ops[i]));
    return sp;
}

static void parent_genome(int i, nas_genome *g) {
    nas_space sp = bench_space();
    nas_rng r;
    nas_rng_init(&r, 1000 + (uint64_t)i, 11);
    if (nas_genome_sample(&sp, &r, g) < 0) die("sample", "failed");
}

/* The j-th distinct child of parent i: mutations are drawn from one
 * stream per parent, and a child that builds the same network as the
 * parent or an earlier sibling (same canonical hash; e.g. a hidden-state
 * mutation of an unused input) is skipped, so every child is a different
 * architecture. */
static void child_genome(int i, int j, const nas_genome *parent, nas_genome *g, char *what,
                         size_t cap) {
    nas_space sp = bench_space();
    nas_rng r;
    nas_rng_init(&r, 5000 + (uint64_t)i, 13);
    uint64_t seen[64];
    int n_seen = 0;
    seen[n_seen++] = nas_genome_hash(parent);
    for (int tries = 0; tries < 1000; tries++) {
        nas_mutation m;
        if (nas_genome_mutate(parent, &sp, 0.0f, &r, g, &m) < 0) die("mutate", "failed");
        uint64_t h = nas_genome_hash(g);
        int dup = 0;
        for (int k = 0; k < n_seen; k++)
            dup |= seen[k] == h;
        if (dup) continue;
        if (n_seen - 1 == j) {
            nas_mutation_format(&m, parent, what, cap);
            return;
        }
        if (n_seen < 64) seen[n_seen++] = h;
    }
    die("mutate", "not enough distinct children");
}

static nas_net *build(const nas_genome *g, const nas_fidelity *f, const nas_dataset *train) {
    char err[NAS_ERR_LEN];
    nas_net *net = NULL;
    int logits = 0;
    if (nas_net_create(&net, train->c, train->h, train->w, err) < 0) die("net", err);
    if (nas_builder_build(net, g, f, train->classes, &logits, err) < 0) die("build", err);
    if (nas_net_compile(net, logits, f->batch, err) < 0) die("compile", nas_net_errmsg(net));
    return net;
}

/* Train; init: 1 = fresh from f->seed, 0 = keep the net's weights. */
static void train(nas_net *net, const nas_fidelity *f, const nas_dataset_splits *d, int init,
                  nas_train_result *tr) {
    char err[NAS_ERR_LEN];
    nas_train_config tc = nas_train_config_default();
    tc.fid = *f;
    tc.train = &d->train;
    tc.val = &d->val;
    tc.flip = 1;
    tc.init_params = init;
    if (nas_trainer_run(net, &tc, tr, err) < 0) die("train", err);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench parent I DIR | bench child I J DIR LONG\n");
        return 2;
    }
    nas_log_set_level(NAS_LOG_WARN);
    nas_fidelity f = bench_fidelity();
    char err[NAS_ERR_LEN], path[4096], text[NAS_GENOME_TEXT_MAX];
    nas_dataset_config dc = nas_dataset_config_from_fidelity(&f, "fashion-mnist", DATA_DIR);
    nas_dataset_splits data;
    if (nas_dataset_prepare(&data, &dc, err) < 0) die("data", err);
    int i = atoi(argv[2]);
    nas_genome parent;
    parent_genome(i, &parent);
    if (strcmp(argv[1], "parent") == 0) {
        nas_net *net = build(&parent, &f, &data.train);
        nas_train_result tr;
        train(net, &f, &data, 1, &tr);
        snprintf(path, sizeof path, "%s/parent_%d.safetensors", argv[3], i);
        if (nas_net_save(net, path, NULL, err) < 0) die("save", err);
        nas_genome_format(&parent, text, sizeof text);
        printf("parent=%d acc=%.4f seconds=%.1f genome=%s\n", i, tr.val_acc, tr.seconds, text);
        nas_train_result_fini(&tr);
        nas_net_destroy(&net);
    } else if (argc == 6) {
        int j = atoi(argv[3]), longer = atoi(argv[5]);
        nas_genome child;
        char what[160];
        child_genome(i, j, &parent, &child, what, sizeof what);
        /* (a) fresh */
        nas_net *net = build(&child, &f, &data.train);
        nas_train_result fresh, inh, lng;
        train(net, &f, &data, 1, &fresh);
        nas_net_destroy(&net);
        /* (b) inherited: fresh init from the same seed, then the parent */
        net = build(&child, &f, &data.train);
        nas_inherit_init(net, f.seed);
        snprintf(path, sizeof path, "%s/parent_%d.safetensors", argv[4], i);
        nas_safetensors *st = NULL;
        if (nas_safetensors_load(path, &st, err) < 0) die("parent weights", err);
        nas_inherit_stats is;
        if (nas_inherit_apply(net, st->tensors, st->count, &is, err) < 0) die("inherit", err);
        nas_safetensors_destroy(&st);
        train(net, &f, &data, 0, &inh);
        nas_net_destroy(&net);
        /* (c) fresh, longer */
        nas_fidelity fl = f;
        fl.epochs = longer;
        net = build(&child, &fl, &data.train);
        train(net, &fl, &data, 1, &lng);
        nas_net_destroy(&net);
        int match = -1;
        for (int e = 0; e < lng.epochs_done; e++)
            if (lng.val_acc_curve[e] >= inh.val_acc) {
                match = e + 1;
                break;
            }
        nas_genome_format(&child, text, sizeof text);
        printf("child=%d.%d fresh=%.4f inherited=%.4f matched=%d/%d epochs_to_match=%d "
               "long_final=%.4f seconds=%.1f mutation=\"%s\" genome=%s\n",
               i, j, fresh.val_acc, inh.val_acc, is.matched, is.child_tensors, match, lng.val_acc,
               fresh.seconds, what, text);
        nas_train_result_fini(&fresh);
        nas_train_result_fini(&inh);
        nas_train_result_fini(&lng);
    } else {
        fprintf(stderr, "usage: bench parent I DIR | bench child I J DIR LONG\n");
        return 2;
    }
    nas_dataset_splits_fini(&data);
    return 0;
}
