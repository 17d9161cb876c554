/*
 * builder.c - genome -> network (see builder.h for the skeleton and the
 * parameter path scheme).
 *
 * The walk is written once against the emitter of builder_emit.h, so the
 * same code builds a real nas_net and counts parameters and MACs for
 * nas_genome_cost() without allocating a single tensor.  The counter's
 * layer formulas mirror common/net.c: a conv has OC*(C/groups)*KH*KW
 * weights (no bias here), a BN 2*C trainable values, a linear OUT*IN+OUT;
 * MACs are counted for convs and the linear layer only, as net.c does.
 *
 * conv1x7_7x1 is a 1x7 conv padded by 3 columns on each side and a 7x1 conv padded by 3 rows,
 * so neither computes a row or column the other does not read.
 */
#include "common/builder.h"
#include "common/alloc.h"
#include "common/builder_emit.h"
#include "common/conv.h"
#include "common/err.h"
#include "common/genome_internal.h"
#include "common/ops.h"
#include "common/refnets.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* snprintf for parameter paths, into a real net only.  The counter never
 * reads a path, and formatting one per tensor was about a quarter of the
 * master's instructions per proposed task (nas_genome_cost), so in count
 * mode the buffer is just emptied.  Paths here are far below the buffers'
 * size; a truncated one is emptied, which the net refuses by name. */
static void path_fmt(const nas__emit *e, char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void path_fmt(const nas__emit *e, char *buf, size_t cap, const char *fmt, ...) {
    buf[0] = '\0';
    if (e->net == NULL) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) buf[0] = '\0';
}

// ---------------------------------------------------------------------------
// Emitter: every call returns a node id >= 0 or a negative error (sticky).

static int em_fail(nas__emit *e, int code, const char *what) {
    if (e->status == 0) {
        e->status = code;
        nas_set_err(e->err, code, "%s", what);
    }
    return e->status;
}

/* Count mode: record a node's shape.  Node ids must match the real net's
 * one for one (the walk passes ids around), so every emitter call adds
 * exactly the nodes the corresponding nas_net call adds. */
static int em_node(nas__emit *e, nas_shape s) {
    if (e->n == e->cap) {
        int nc = e->cap ? e->cap * 2 : 256;
        nas_shape *ns = nas_realloc(e->shapes, sizeof(nas_shape) * (size_t)nc);
        if (ns == NULL) return em_fail(e, NAS_ENOMEM, "out of memory counting the network");
        e->shapes = ns;
        e->cap = nc;
    }
    e->shapes[e->n] = s;
    return e->n++;
}

static nas_shape em_shape(const nas__emit *e, int x) {
    if (e->net) return nas_net_shape(e->net, x);
    if (x < 0 || x >= e->n) return (nas_shape){0, 0, 0};
    return e->shapes[x];
}

/* Turn a real net's negative return into the emitter's sticky status. */
static int em_net(nas__emit *e, int id) {
    if (id < 0 && e->status == 0) {
        e->status = id;
        nas_set_err(e->err, id, "%s", nas_net_errmsg(e->net));
    }
    return id;
}

/* Count mode: add p params and m MACs, refusing sums that overflow int64
 * (F = 4096 at 4096 px and 64 cells gets there; signed overflow is UB). */
static int em_count(nas__emit *e, int64_t p, int64_t m) {
    int64_t np, nm;
    if (__builtin_add_overflow(e->params, p, &np) || __builtin_add_overflow(e->macs, m, &nm))
        return em_fail(e, NAS_ERANGE, "network too large to count (int64 overflow)");
    e->params = np;
    e->macs = nm;
    return NAS_OK;
}

static int em_input(nas__emit *e, nas_shape in) {
    if (e->net) return em_net(e, nas_net_input(e->net));
    return em_node(e, in);
}

// A conv padded by pad_h rows and pad_w columns on each side.
static int em_conv_hw(nas__emit *e, const char *path, int x, int oc, int kh, int kw, int stride,
                      int pad_h, int pad_w, int dil, int groups) {
    if (x < 0) return x;
    if (e->net)
        return em_net(e, nas_net_conv_hw(e->net, path, x, oc, kh, kw, stride, pad_h, pad_w, dil,
                                         groups, 0));
    nas_shape in = em_shape(e, x);
    nas_conv_shape cs;
    char msg[NAS_ERR_LEN];
    if (nas_conv_shape_init_hw(&cs, 1, in.c, in.h, in.w, oc, kh, kw, stride, pad_h, pad_w, dil,
                               groups, msg) < 0)
        return em_fail(e, NAS_EINVAL, msg);
    /* Each factor is at most 16384 (channels) or 4096 (side, kernel): the
     * products stay below 2^63 before the overflow-checked sum. */
    int64_t w = (int64_t)oc * (in.c / groups) * kh * kw;
    int rc = em_count(e, w, w * cs.oh * cs.ow);
    if (rc < 0) return rc;
    return em_node(e, (nas_shape){oc, cs.oh, cs.ow});
}

static int em_conv(nas__emit *e, const char *path, int x, int oc, int kh, int kw, int stride,
                   int pad, int dil, int groups) {
    return em_conv_hw(e, path, x, oc, kh, kw, stride, pad, pad, dil, groups);
}

static int em_bn(nas__emit *e, const char *path, int x) {
    if (x < 0) return x;
    if (e->net) return em_net(e, nas_net_bn(e->net, path, x));
    nas_shape s = em_shape(e, x);
    int rc = em_count(e, 2 * (int64_t)s.c, 0);
    if (rc < 0) return rc;
    return em_node(e, s);
}

static int em_relu(nas__emit *e, int x) {
    if (x < 0) return x;
    if (e->net) return em_net(e, nas_net_relu(e->net, x));
    return em_node(e, em_shape(e, x));
}

static int em_add(nas__emit *e, int a, int b) {
    if (a < 0) return a;
    if (b < 0) return b;
    if (e->net) return em_net(e, nas_net_add(e->net, a, b));
    nas_shape sa = em_shape(e, a), sb = em_shape(e, b);
    if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)
        return em_fail(e, NAS_EINVAL, "add of differently shaped nodes");
    return em_node(e, sa);
}

static int em_concat(nas__emit *e, const int *xs, int n) {
    for (int i = 0; i < n; i++)
        if (xs[i] < 0) return xs[i];
    if (e->net) return em_net(e, nas_net_concat(e->net, xs, n));
    nas_shape s = em_shape(e, xs[0]);
    s.c = 0;
    for (int i = 0; i < n; i++)
        s.c += em_shape(e, xs[i]).c;
    return em_node(e, s);
}

static int em_pool(nas__emit *e, int max, int x, int k, int stride, int pad) {
    if (x < 0) return x;
    if (e->net)
        return em_net(e, max ? nas_net_maxpool(e->net, x, k, stride, pad)
                             : nas_net_avgpool(e->net, x, k, stride, pad));
    nas_shape s = em_shape(e, x);
    s.h = nas_pool_out(s.h, k, stride, pad);
    s.w = nas_pool_out(s.w, k, stride, pad);
    if (s.h < 1 || s.w < 1) return em_fail(e, NAS_EINVAL, "pool window does not fit");
    return em_node(e, s);
}

static int em_gap(nas__emit *e, int x) {
    if (x < 0) return x;
    if (e->net) return em_net(e, nas_net_gap(e->net, x));
    return em_node(e, (nas_shape){em_shape(e, x).c, 1, 1});
}

static int em_linear(nas__emit *e, const char *path, int x, int out) {
    if (x < 0) return x;
    if (e->net) return em_net(e, nas_net_linear(e->net, path, x, out));
    nas_shape s = em_shape(e, x);
    int64_t in = (int64_t)s.c * s.h * s.w;
    int rc = em_count(e, in * out + out, in * out);
    if (rc < 0) return rc;
    return em_node(e, (nas_shape){out, 1, 1});
}

static int em_drop_path(nas__emit *e, int x) {
    if (x < 0) return x;
    if (e->net) return em_net(e, nas_net_drop_path(e->net, x));
    return em_node(e, em_shape(e, x));
}

static int em_zero(nas__emit *e, int x, int stride) {
    if (x < 0) return x;
    if (e->net) return em_net(e, nas_net_zero(e->net, x, stride));
    nas_shape s = em_shape(e, x);
    s.h = (s.h + stride - 1) / stride;
    s.w = (s.w + stride - 1) / stride;
    return em_node(e, s);
}

static int em_silu(nas__emit *e, int x) {
    if (x < 0) return x;
    if (e->net) return em_net(e, nas_net_silu(e->net, x));
    return em_node(e, em_shape(e, x));
}

/* Squeeze-and-excitation (net.h): count mode adds the same six nodes as
 * nas_net_se (GAP, conv, SiLU, conv, sigmoid, scale) and the two biased
 * 1x1 convs' weights, biases and MACs. */
static int em_se(nas__emit *e, const char *path, int x, int mid) {
    if (x < 0) return x;
    if (e->net) return em_net(e, nas_net_se(e->net, path, x, mid));
    nas_shape s = em_shape(e, x);
    int64_t w = 2 * (int64_t)s.c * mid;
    int rc = em_count(e, w + mid + s.c, w);
    if (rc < 0) return rc;
    nas_shape g = {s.c, 1, 1}, h = {mid, 1, 1};
    const nas_shape chain[5] = {g, h, h, g, g};
    for (int i = 0; i < 5; i++)
        if ((rc = em_node(e, chain[i])) < 0) return rc;
    return em_node(e, s);
}

/* Factorized reduction (net.h): ReLU, two 1x1 stride-2 convs (the second
 * on the input shifted by a pixel), concat, BN.  The shift is a node of
 * its own in the net, so count mode adds a node for it too, keeping the
 * node numbering equal in both modes. */
static int em_factorized_reduce(nas__emit *e, const char *path, int x, int oc) {
    if (x < 0) return x;
    if (e->net) return em_net(e, nas_net_factorized_reduce(e->net, path, x, oc));
    if (oc < 2) return em_fail(e, NAS_EINVAL, "factorized reduce needs >= 2 channels");
    char sub[96];
    int r = em_relu(e, x);
    path_fmt(e, sub, sizeof sub, "%s/conv1", path);
    int a = em_conv(e, sub, r, oc / 2, 1, 1, 2, 0, 1, 1);
    int s = em_node(e, em_shape(e, r));
    path_fmt(e, sub, sizeof sub, "%s/conv2", path);
    int b = em_conv(e, sub, s, oc - oc / 2, 1, 1, 2, 0, 1, 1);
    int ab[2] = {a, b};
    int cat = em_concat(e, ab, 2);
    path_fmt(e, sub, sizeof sub, "%s/bn", path);
    return em_bn(e, sub, cat);
}

// ---------------------------------------------------------------------------
// Cell-space ops

/* ReLU - conv - BN under path/conv and path/bn: the NASNet op pattern
 * (pre-activation, so a cell's output BN feeds the next cell's ReLU). */
static int relu_conv_bn(nas__emit *e, const char *path, int x, int oc, int k, int stride, int pad) {
    char p1[96], p2[96];
    path_fmt(e, p1, sizeof p1, "%s/conv", path);
    path_fmt(e, p2, sizeof p2, "%s/bn", path);
    return em_bn(e, p2, em_conv(e, p1, em_relu(e, x), oc, k, k, stride, pad, 1, 1));
}

/* One half's op on x (C channels in and out). */
static int build_op(nas__emit *e, const char *path, int op, int x, int c, int stride) {
    char a[96], b[96], d[96];
    switch (op) {
    case NAS_OP_ID:
        if (stride == 1) return x;
        return em_factorized_reduce(e, path, x, c);
    case NAS_OP_AVG3X3:
        return em_pool(e, 0, x, 3, stride, 1);
    case NAS_OP_MAX3X3:
        return em_pool(e, 1, x, 3, stride, 1);
    case NAS_OP_SEP3X3:
    case NAS_OP_SEP5X5:
    case NAS_OP_SEP7X7: {
        int k = op == NAS_OP_SEP3X3 ? 3 : op == NAS_OP_SEP5X5 ? 5 : 7;
        /* Applied twice as in NASNet; only the first depthwise strides. */
        for (int rep = 1; rep <= 2; rep++) {
            path_fmt(e, a, sizeof a, "%s/dw%d", path, rep);
            path_fmt(e, b, sizeof b, "%s/pw%d", path, rep);
            path_fmt(e, d, sizeof d, "%s/bn%d", path, rep);
            x = em_conv(e, a, em_relu(e, x), c, k, k, rep == 1 ? stride : 1, k / 2, 1, c);
            x = em_bn(e, d, em_conv(e, b, x, c, 1, 1, 1, 0, 1, 1));
        }
        return x;
    }
    case NAS_OP_DIL3X3:
        path_fmt(e, a, sizeof a, "%s/dw", path);
        path_fmt(e, b, sizeof b, "%s/pw", path);
        path_fmt(e, d, sizeof d, "%s/bn", path);
        x = em_conv(e, a, em_relu(e, x), c, 3, 3, stride, 2, 2, c);
        return em_bn(e, d, em_conv(e, b, x, c, 1, 1, 1, 0, 1, 1));
    case NAS_OP_CONV1X7_7X1:
        path_fmt(e, a, sizeof a, "%s/conv1x7", path);
        path_fmt(e, b, sizeof b, "%s/conv7x1", path);
        path_fmt(e, d, sizeof d, "%s/bn", path);
        x = em_conv_hw(e, a, em_relu(e, x), c, 1, 7, 1, 0, 3, 1, 1);
        return em_bn(e, d, em_conv_hw(e, b, x, c, 7, 1, stride, 3, 0, 1, 1));
    case NAS_OP_CONV3X3:
        return relu_conv_bn(e, path, x, c, 3, stride, 1);
    case NAS_OP_CONV1X1:
        return relu_conv_bn(e, path, x, c, 1, stride, 0);
    default:
        return em_fail(e, NAS_EGENOME, "unknown op in a validated genome");
    }
}

/* One cell: inputs s0 = h[i-2], s1 = h[i-1]; returns the output node.
 * After the cell both inputs have its side and C channels; block outputs
 * inherit that, so every add and the final concat are shape-consistent. */
static int build_cell(nas__emit *e, const nas_cell *cell, int idx, int reduce, int s0, int s1,
                      int c, int drop_path) {
    char path[96], p2[96];
    nas_shape a0 = em_shape(e, s0), a1 = em_shape(e, s1);
    int st[NAS_MAX_BLOCKS + 2];
    path_fmt(e, path, sizeof path, "cell%d/pre0", idx);
    if (a0.h != a1.h || a0.w != a1.w)
        st[0] = em_factorized_reduce(e, path, s0, c);
    else
        st[0] = relu_conv_bn(e, path, s0, c, 1, 1, 0);
    path_fmt(e, path, sizeof path, "cell%d/pre1", idx);
    st[1] = relu_conv_bn(e, path, s1, c, 1, 1, 0);
    int live[NAS_MAX_BLOCKS], output[NAS_MAX_BLOCKS], outs[NAS_MAX_BLOCKS], n_out = 0;
    nas__cell_live(cell, live, output); /* the canonical form's rule: dead blocks not built */
    for (int k = 0; k < cell->n_blocks; k++) {
        st[k + 2] = -1;
        if (!live[k]) continue;
        const nas_block *b = &cell->blocks[k];
        int half[2] = {NAS_EGENOME, NAS_EGENOME}, n_half = 0;
        for (int h = 0; h < 2; h++) {
            int op = h ? b->op_b : b->op_a, in = h ? b->in_b : b->in_a;
            if (op == NAS_OP_ZERO) continue;
            int stride = reduce && in < 2 ? 2 : 1;
            path_fmt(e, p2, sizeof p2, "cell%d/block%d/%c", idx, k, h ? 'b' : 'a');
            int y = build_op(e, p2, op, st[in], c, stride);
            if (drop_path && !(op == NAS_OP_ID && stride == 1)) y = em_drop_path(e, y);
            half[n_half++] = y;
        }
        if (n_half == 0) /* validate forbids zero+zero; kept for -O2's flow analysis */
            return em_fail(e, NAS_EGENOME, "a block with two zero halves");
        st[k + 2] = n_half == 2 ? em_add(e, half[0], half[1]) : half[0];
        if (output[k]) outs[n_out++] = st[k + 2];
    }
    int cat = em_concat(e, outs, n_out);
    path_fmt(e, path, sizeof path, "cell%d/out/conv", idx);
    path_fmt(e, p2, sizeof p2, "cell%d/out/bn", idx);
    return em_bn(e, p2, em_conv(e, path, cat, c, 1, 1, 1, 0, 1, 1));
}

/* The auxiliary head of DARTS scaled to our networks (its 128 and 768 channels would outweigh a
 * 100K-parameter net): ReLU, 5x5 average pool with stride 3 where the side allows, 1x1 conv to
 * the stage's C channels, BN, ReLU, global pool, linear.  It trains only: built into a real net
 * alone (the counter leaves it out, as nas_net_param_count and nas_net_macs do) and dropped by
 * nasctl export.  Returns the node that carries x on with the head's loss attached. */
static int aux_head(nas__emit *e, int x, int classes, float weight) {
    if (weight <= 0.0f || e->net == NULL || x < 0) return x;
    nas_net *net = e->net;
    nas_shape s = nas_net_shape(net, x);
    nas_net_set_train_only(net, 1);
    int y = nas_net_relu(net, x);
    if (s.h >= 5 && s.w >= 5) y = nas_net_avgpool(net, y, 5, 3, 0);
    y = nas_net_conv(net, "aux/conv", y, s.c, 1, 1, 1, 0, 1, 1, 0);
    y = nas_net_relu(net, nas_net_bn(net, "aux/bn", y));
    y = nas_net_linear(net, "aux/linear", nas_net_gap(net, y), classes);
    nas_net_set_train_only(net, 0);
    return em_net(e, nas_net_aux_loss(net, x, y, weight));
}

/* The macro skeleton of ARCHITECTURE.md, Search space.  The stem has no ReLU of its own: each
 * cell's preprocessing starts with one.  An auxiliary head, when asked for, reads the second
 * reduction cell (two thirds of the way, as in NASNet and DARTS). */
static int walk_cells(nas__emit *e, const nas_genome *g, const nas_fidelity *f, int x,
                      int classes) {
    int F = f->channels, N = f->cells, idx = 0;
    int stem = em_bn(e, "stem/bn", em_conv(e, "stem/conv", x, F, 3, 3, 1, 1, 1, 1));
    int s0 = stem, s1 = stem;
    int c = F;
    for (int stage = 0; stage < 3; stage++) {
        if (stage > 0) { /* a reduction cell doubles the channels */
            c *= 2;
            int out = build_cell(e, &g->reduce, idx++, 1, s0, s1, c, f->drop_path > 0);
            if (stage == 2) out = aux_head(e, out, classes, f->aux_weight);
            s0 = s1;
            s1 = out;
        }
        for (int i = 0; i < N; i++) {
            int out = build_cell(e, &g->normal, idx++, 0, s0, s1, c, f->drop_path > 0);
            s0 = s1;
            s1 = out;
        }
    }
    return s1;
}

// ---------------------------------------------------------------------------
// NB201 (Dong & Yang 2020, fig. 1): cells of 4 nodes, residual reductions.

static int nb201_cell(nas__emit *e, const uint8_t *edges, int idx, int x, int c) {
    /* Only edges that carry a signal from the input to the output are
     * built (the same pruning as the canonical form, without its node swap,
     * so edge paths follow the genome as written). */
    uint8_t live[NAS_NB201_EDGES];
    nas__nb201_prune(edges, live);
    static const int src[NAS_NB201_EDGES] = {0, 0, 1, 0, 1, 2};
    static const int dst[NAS_NB201_EDGES] = {1, 2, 2, 3, 3, 3};
    int node[4] = {x, -1, -1, -1};
    char path[96];
    for (int i = 0; i < NAS_NB201_EDGES; i++) {
        int op = live[i];
        if (op == NAS_NB201_NONE) continue;
        int in = node[src[i]], y;
        path_fmt(e, path, sizeof path, "cell%d/edge%d%d", idx, src[i], dst[i]);
        switch (op) {
        case NAS_NB201_SKIP:
            y = in;
            break;
        case NAS_NB201_CONV1X1:
            y = relu_conv_bn(e, path, in, c, 1, 1, 0);
            break;
        case NAS_NB201_CONV3X3:
            y = relu_conv_bn(e, path, in, c, 3, 1, 1);
            break;
        default:
            y = em_pool(e, 0, in, 3, 1, 1);
            break;
        }
        node[dst[i]] = node[dst[i]] < 0 ? y : em_add(e, node[dst[i]], y);
    }
    return node[3] >= 0 ? node[3] : em_zero(e, x, 1);
}

/* NB201's ResNet basic block with stride 2: ReLU-conv3x3/2-BN,
 * ReLU-conv3x3-BN, shortcut avgpool + 1x1 conv.  The benchmark's 2x2 pool
 * loses a row on odd sides; a 3x3 pool with padding 1 matches the conv's
 * output side for every input side. */
static int nb201_residual(nas__emit *e, int stage, int x, int c) {
    char p[96];
    path_fmt(e, p, sizeof p, "res%d/a", stage);
    int y = relu_conv_bn(e, p, x, c, 3, 2, 1);
    path_fmt(e, p, sizeof p, "res%d/b", stage);
    y = relu_conv_bn(e, p, y, c, 3, 1, 1);
    path_fmt(e, p, sizeof p, "res%d/short/conv", stage);
    int s = em_conv(e, p, em_pool(e, 0, x, 3, 2, 1), c, 1, 1, 1, 0, 1, 1);
    return em_add(e, y, s);
}

static int walk_nb201(nas__emit *e, const nas_genome *g, const nas_fidelity *f, int x,
                      int classes) {
    int c = f->channels, idx = 0;
    x = em_bn(e, "stem/bn", em_conv(e, "stem/conv", x, c, 3, 3, 1, 1, 1, 1));
    for (int stage = 0; stage < 3; stage++) {
        if (stage > 0) {
            c *= 2;
            x = nb201_residual(e, stage, x, c);
            if (stage == 2) x = aux_head(e, x, classes, f->aux_weight);
        }
        for (int i = 0; i < f->cells; i++)
            x = nb201_cell(e, g->nb201, idx++, x, c);
    }
    return em_relu(e, em_bn(e, "lastbn", x));
}

// ---------------------------------------------------------------------------
// Chain space (genome_chain.c): stem, layers with skips, GAP, linear.

/* Where skip j of a layer comes from, for its parameter path. */
static void chain_source(const nas_chain *c, int j, char *buf, size_t cap) {
    if (j == 0)
        snprintf(buf, cap, "stem");
    else
        snprintf(buf, cap, "%d", c->layers[j - 1].id);
}

/* Layer k (1-based) of the chain on h[k-1]: its op, then each skip h[j]
 * through a 1x1 conv (strided down to the layer's side) and a BN, added,
 * then ReLU.  An `id` layer without skips is the identity and adds nothing
 * (every h is non-negative, so a ReLU there would be one too). */
static int chain_layer(nas__emit *e, const nas_chain *c, int k, const int *h, const int *units,
                       int F) {
    const nas_chain_layer *l = &c->layers[k - 1];
    int in = h[k - 1], oc = nas_chain_channels(units[k], F), y;
    int ic = em_shape(e, in).c;
    char p[96], q[96], src[16];
    switch (l->op) {
    case NAS_CHAIN_CONV3X3:
    case NAS_CHAIN_CONV5X5:
    case NAS_CHAIN_CONV1X1: {
        int ks = l->op == NAS_CHAIN_CONV3X3 ? 3 : l->op == NAS_CHAIN_CONV5X5 ? 5 : 1;
        path_fmt(e, p, sizeof p, "L%d/conv", l->id);
        path_fmt(e, q, sizeof q, "L%d/bn", l->id);
        y = em_bn(e, q, em_conv(e, p, in, oc, ks, ks, 1, ks / 2, 1, 1));
        break;
    }
    case NAS_CHAIN_SEP3X3:
    case NAS_CHAIN_SEP5X5: {
        int ks = l->op == NAS_CHAIN_SEP3X3 ? 3 : 5;
        path_fmt(e, p, sizeof p, "L%d/dw", l->id);
        y = em_conv(e, p, in, ic, ks, ks, 1, ks / 2, 1, ic);
        path_fmt(e, p, sizeof p, "L%d/pw", l->id);
        path_fmt(e, q, sizeof q, "L%d/bn", l->id);
        y = em_bn(e, q, em_conv(e, p, y, oc, 1, 1, 1, 0, 1, 1));
        break;
    }
    case NAS_CHAIN_MAX3X3:
    case NAS_CHAIN_AVG3X3:
        y = em_pool(e, l->op == NAS_CHAIN_MAX3X3, in, 3, 2, 1);
        break;
    case NAS_CHAIN_ID:
        if (l->skips == 0) return in;
        y = in;
        break;
    default:
        return em_fail(e, NAS_EGENOME, "unknown chain op in a validated genome");
    }
    for (int j = 0; j < k; j++) {
        if (!(l->skips & (1u << j))) continue;
        nas_shape from = em_shape(e, h[j]), to = em_shape(e, y);
        int stride = 1; /* pools halve with rounding up, as a strided 1x1 conv does */
        while (stride < 4096 && (from.h + stride - 1) / stride > to.h)
            stride *= 2;
        chain_source(c, j, src, sizeof src);
        path_fmt(e, p, sizeof p, "L%d/from%s/conv", l->id, src);
        path_fmt(e, q, sizeof q, "L%d/from%s/bn", l->id, src);
        y = em_add(e, y, em_bn(e, q, em_conv(e, p, h[j], to.c, 1, 1, stride, 0, 1, 1)));
    }
    return em_relu(e, y);
}

static int walk_chain(nas__emit *e, const nas_genome *g, const nas_fidelity *f, int x) {
    const nas_chain *c = &g->chain;
    int h[NAS_CHAIN_MAX_LAYERS + 1], units[NAS_CHAIN_MAX_LAYERS + 1];
    nas__chain_units(c, units);
    h[0] =
        em_relu(e, em_bn(e, "stem/bn", em_conv(e, "stem/conv", x, f->channels, 3, 3, 1, 1, 1, 1)));
    for (int k = 1; k <= c->n_layers; k++)
        h[k] = chain_layer(e, c, k, h, units, f->channels);
    return h[c->n_layers];
}

int nas__builder_walk(nas__emit *e, const nas_genome *g, const nas_fidelity *f, nas_shape in,
                      int classes, int *logits) {
    int rc = nas_genome_validate(g, e->err);
    if (rc < 0) return rc;
    if (f == NULL || f->channels < 1 || f->channels > 4096 || f->cells < 0 || f->cells > 64)
        return nas_set_err(e->err, NAS_EINVAL,
                           "builder: channels (F) must be 1..4096 and cells (N) 0..64");
    if (classes < 2)
        return nas_set_err(e->err, NAS_EINVAL, "builder: classes = %d, need >= 2", classes);
    if (in.c < 1 || in.h < 1 || in.w < 1)
        return nas_set_err(e->err, NAS_EINVAL, "builder: input shape %dx%dx%d", in.c, in.h, in.w);
    if (g->space == NAS_SPACE_CELL && f->channels < 1)
        return nas_set_err(e->err, NAS_EINVAL, "builder: F must be >= 1");
    int x = em_input(e, in);
    x = g->space == NAS_SPACE_MBCONV  ? nas__walk_mbconv(e, g, f, x)
        : g->space == NAS_SPACE_NB201 ? walk_nb201(e, g, f, x, classes)
        : g->space == NAS_SPACE_CHAIN ? walk_chain(e, g, f, x)
        : g->space == NAS_SPACE_HIER  ? nas__walk_hier(e, g, f, x)
                                      : walk_cells(e, g, f, x, classes);
    x = em_linear(e, "head/linear", em_gap(e, x), classes);
    if (e->status < 0) return e->status;
    *logits = x;
    return NAS_OK;
}

// ---------------------------------------------------------------------------
// The emitter for walks in other files (builder_emit.h)

int nas__em_conv(nas__emit *e, const char *path, int x, int oc, int k, int stride, int groups) {
    return em_conv(e, path, x, oc, k, k, stride, k / 2, 1, groups);
}
int nas__em_bn(nas__emit *e, const char *path, int x) { return em_bn(e, path, x); }
int nas__em_add(nas__emit *e, int a, int b) { return em_add(e, a, b); }
int nas__em_relu(nas__emit *e, int x) { return em_relu(e, x); }
int nas__em_pool(nas__emit *e, int max, int x, int k, int stride, int pad) {
    return em_pool(e, max, x, k, stride, pad);
}
int nas__em_silu(nas__emit *e, int x) { return em_silu(e, x); }
int nas__em_se(nas__emit *e, const char *path, int x, int mid) { return em_se(e, path, x, mid); }
int nas__em_drop_path(nas__emit *e, int x) { return em_drop_path(e, x); }
nas_shape nas__em_shape(const nas__emit *e, int x) { return em_shape(e, x); }

// ---------------------------------------------------------------------------
// Public entry points

int nas_builder_build(nas_net *net, const nas_genome *g, const nas_fidelity *f, int classes,
                      int *logits, char *err) {
    if (net == NULL || g == NULL || logits == NULL)
        return nas_set_err(err, NAS_EINVAL, "builder: NULL argument");
    if (nas_net_node_count(net) != 0)
        return nas_set_err(err, NAS_EINVAL, "builder: the net is not empty");
    nas__emit e = {.net = net, .err = err};
    /* The net's input shape: nas_net_input() creates node 0 with it. */
    int in = nas_net_input(net);
    if (in < 0) return nas_set_err(err, in, "builder: %s", nas_net_errmsg(net));
    nas_shape s = nas_net_shape(net, in);
    /* The walk calls nas_net_input() again, which returns node 0. */
    return nas__builder_walk(&e, g, f, s, classes, logits);
}

int nas_builder_arch_cb(void *arch, nas_net *net, int *logits, char *err) {
    const nas_builder_arch *a = arch;
    return nas_builder_build_arch(net, a->arch, &a->fid, a->classes, logits, NULL, NULL, err);
}

int nas_builder_resolve_genome(const char *arch, nas_genome *out, char *err) {
    if (arch == NULL || out == NULL) return nas_set_err(err, NAS_EINVAL, "architecture is NULL");
    if (nas_genome_preset(arch, out, NULL) == NAS_OK) return NAS_OK;
    char perr[NAS_ERR_LEN] = "";
    int rc = nas_genome_parse(arch, strlen(arch), out, perr);
    if (rc == NAS_OK) return NAS_OK;
    /* A bare word that is no genome is most likely a mistyped name. */
    int word = arch[0] != '\0' && strchr(arch, '=') == NULL && strchr(arch, '|') == NULL;
    if (word) {
        char names[160] = "";
        const char *const *p = nas_genome_preset_names();
        for (int i = 0; p[i] != NULL; i++) {
            if (i) strncat(names, ", ", sizeof names - strlen(names) - 1);
            strncat(names, p[i], sizeof names - strlen(names) - 1);
        }
        return nas_set_err(err, NAS_ENOTFOUND, "unknown architecture '%.40s' (presets: %s)", arch,
                           names);
    }
    return nas_set_err(err, rc, "architecture '%.40s': %s", arch, perr);
}

/* Reference nets come first so that a preset or genome can never shadow the
 * engine's benchmark names (they are plain words, as are preset names). */
int nas_builder_build_arch(nas_net *net, const char *arch, const nas_fidelity *f, int classes,
                           int *logits, nas_genome *g_out, int *is_genome, char *err) {
    if (net == NULL || arch == NULL || logits == NULL)
        return nas_set_err(err, NAS_EINVAL, "builder: NULL argument");
    const char *const *refs = nas_refnet_names();
    for (int i = 0; refs[i] != NULL; i++) {
        if (strcmp(refs[i], arch) != 0) continue;
        if (is_genome) *is_genome = 0;
        return nas_refnet_build(net, arch, classes, logits, err);
    }
    nas_genome g;
    char gerr[NAS_ERR_LEN] = "";
    int rc = nas_builder_resolve_genome(arch, &g, gerr);
    if (rc == NAS_ENOTFOUND) {
        char names[128] = "";
        for (int i = 0; refs[i] != NULL; i++) {
            if (i) strncat(names, ", ", sizeof names - strlen(names) - 1);
            strncat(names, refs[i], sizeof names - strlen(names) - 1);
        }
        return nas_set_err(err, rc, "%s; reference nets: %s", gerr, names);
    }
    if (rc < 0) return nas_set_err(err, rc, "%s", gerr);
    if (g_out) *g_out = g;
    if (is_genome) *is_genome = 1;
    return nas_builder_build(net, &g, f, classes, logits, err);
}
