/*
 * net_internal.h - private layout of nas_net shared by net.c (builder,
 * planning) and net_run.c (forward/backward).  Not part of the public API.
 */
#ifndef NAS_NET_INTERNAL_H
#define NAS_NET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/conv.h"
#include "common/net.h"
#include "common/ops.h"
#include "common/workpool.h"

enum nas__op {
    NAS__OP_INPUT,
    NAS__OP_CONV,
    NAS__OP_BN,
    NAS__OP_RELU,
    NAS__OP_ADD,
    NAS__OP_CONCAT,
    NAS__OP_MAXPOOL,
    NAS__OP_AVGPOOL,
    NAS__OP_GAP,
    NAS__OP_LINEAR,
    NAS__OP_DROP_PATH,
    NAS__OP_DROPOUT,
    NAS__OP_SHIFT, /* x[:, :, 1:, 1:] zero-padded back to (H, W): factorized reduce */
    NAS__OP_ZERO,
    NAS__OP_AUX, /* in[0] passed through; in[1] auxiliary logits whose loss joins the gradient */
    NAS__OP_SILU,    /* x * sigmoid(x) */
    NAS__OP_SIGMOID,
    NAS__OP_SCALE,   /* in[0] (C,H,W) times the per-channel gate in[1] (C,1,1) */
};

typedef struct nas__node {
    int op;             /* enum nas__op */
    nas_shape shape;    /* output shape per image */
    int in[2];          /* input node ids (add uses both) */
    int *cat;           /* concat: the n_in input ids (owned) */
    int n_in;           /* number of inputs */
    int p[4];           /* parameter indices: weight, bias, running mean, running var; -1 none */
    int k, stride, pad; /* pooling window */
    float prob;         /* dropout probability; AUX: the auxiliary loss's weight */
    nas_conv_shape cs;  /* convolution geometry (n = 1; set per call) */
    int live;           /* 1 if the output depends on it */
    int fused;          /* BN/add: a following ReLU is applied in place; ReLU: done by its
                           producer (1) or by its depthwise-conv consumers (2) */
    int relu_node;      /* conv: the ReLU node fused in front (then in[0] is that ReLU's input
                           and cs.relu is set); 0 when none */
    int bn_into;        /* BN: the add that applies it on the way (its only reader; the BN
                           writes no output, net_compile.c's fuse_bn_add); 0 when none */
    int bn_in;          /* add: bit k set when input k is such a BN */
    int add_into;       /* add: the add that sums its terms in its own pass (its only reader;
                           fuse_add_add); 0 when none */
    int add_in;         /* add: 1 + the input that is such an add, 0 when none */
    int cat_into;       /* add: the concat, its only reader, whose slot it writes its output
                           into (fuse_add_cat), at cat_off floats into each image; 0 when none */
    long cat_off;
    int zero_at;        /* backward step that zeroes this node's gradient first */
    size_t act_off;     /* output offset in the activation arena (floats) */
    size_t aux_off;     /* BN mean/rstd or dropout mask offset (floats) */
    size_t grad_off;    /* gradient offset in the gradient arena (floats) */
    int fwd_phase;      /* with a pool, the forward phase it runs in (training BN: its sums;
                           it applies in the next); set by nas__net_plan_sync */
    int bn_off;         /* training BN: its forward sums' place in a member's BN scratch, in
                           channels (2 doubles each) */
    int bwd_phase;      /* the backward phase it runs in (BN: its sums; its input gradient in
                           the next); set by nas__net_plan_backward */
} nas__node;

// Mark the backward steps that need a barrier before them when a pool splits the batch
// (net->bwd_sync; net_run.c).  Called by nas_net_set_threads once the pool exists.
void nas__net_plan_sync(nas_net *net);

// The backward runs in phases with one barrier after each (net_run.c): node->bwd_phase and
// net->bwd_last.  Every thread count runs this order, so the gradient memory plan (net.c)
// follows it.  Called by nas_net_compile before planning the gradient buffers.
void nas__net_plan_backward(nas_net *net);

// What node nd does in backward phase ph: nothing, its whole step, a training BN's partial
// sums or its input gradient, or (a ReLU fused into its BN) hand its gradient buffer to the BN.
enum { NAS__BWD_NONE, NAS__BWD_STEP, NAS__BWD_SUMS, NAS__BWD_DX, NAS__BWD_ALIAS };

static inline int nas__bwd_event(const nas__node *nd, int ph) {
    if (!nd->live || (nd->op == NAS__OP_RELU && nd->fused == 2)) return NAS__BWD_NONE;
    if (nd->op == NAS__OP_RELU && nd->fused)
        return nd->bwd_phase == ph ? NAS__BWD_ALIAS : NAS__BWD_NONE;
    if (nd->op == NAS__OP_BN)
        return nd->bwd_phase == ph ? NAS__BWD_SUMS
               : nd->bwd_phase + 1 == ph ? NAS__BWD_DX
                                         : NAS__BWD_NONE;
    return nd->bwd_phase == ph ? NAS__BWD_STEP : NAS__BWD_NONE;
}

static inline int nas__input(const nas__node *nd, int k) { return nd->cat ? nd->cat[k] : nd->in[k]; }

struct nas_net {
    nas_shape in_shape;
    nas__node *nodes;
    int n_nodes, cap_nodes;
    nas_param *params;
    int n_params, cap_params;
    int64_t macs;
    int err_code;               /* first builder error (sticky), 0 if none */
    char errmsg[NAS_ERR_LEN];
    // compiled state
    int compiled, output, batch;
    size_t n_trainable, n_total;
    float *param_block, *grad_block, *optim_block;
    float *act_arena, *grad_arena, *workspace;
    size_t act_floats, grad_arena_floats, workspace_floats;
    float drop_path;            /* current drop-path probability */
    int no_fusion;              /* tests: compile without fusing ReLUs, the reference that the
                                   fused nets must match bit for bit */
    int train_only;             /* parameters added now belong to an auxiliary head */
    int64_t macs_train_only;    /* MACs of those heads (not in macs) */
    // threads
    int threads;                /* members of pool (1 = no pool) */
    nas_workpool *pool;         /* NULL when single-threaded */
    float *tscratch;            /* per extra thread: a workspace, then a shadow of the
                                   trainable gradients (n_trainable floats) for its share of
                                   the conv weight gradients */
    size_t tscratch_stride;
    double *tbn;             /* per thread, four quarters of 2 * bn_c doubles: two BN
                                partial-sum buffers (alternating), the totals, and the
                                per-channel coefficients (4 * bn_c floats) */
    size_t tbn_stride;       /* doubles per thread in tbn (8 * bn_c) */
    int bn_c, tbn_members;   /* channels of all BNs, + 1; members tbn has room for */
    unsigned char *bwd_sync; /* per node: a barrier before its backward step or BN sums (bit
                                0), before its BN input gradient (bit 1): a gradient buffer
                                reused with another layout, see net_run.c */
    int bwd_last;            /* the last backward phase */
    // per-forward state
    const float *input;         /* the caller's images of the last forward */
    int cur_n, cur_train;
    const uint8_t *labels;      /* the last nas_net_loss's labels (AUX's backward reads them) */
    float smoothing;            /* and its label smoothing */
    float aux_loss;             /* weighted auxiliary losses of the last nas_net_loss */
};

#endif
