/*
 * net_run.c - forward and backward passes over a compiled nas_net.
 *
 * Forward visits live nodes in creation (topological) order and writes
 * each output into its arena slot.  Backward visits them in reverse; each
 * node reads its output gradient and accumulates (+=) into its inputs'
 * gradients, which the memory plan zeroes just before their first writer.
 *
 * With a thread pool, each member owns a contiguous range of the batch's
 * images and runs the whole pass over its range in one job, so most nodes
 * need no barrier at all: every op but three works image by image, and the
 * activation arena is never reused.  The exceptions synchronise inside the
 * job: batch norm in training adds the members' per-channel partial sums
 * (in member order) between a barrier and its apply pass; linear, dropout
 * and drop-path (which mix images or draw random numbers in order) run on
 * member 0 between two barriers.  The training forward runs in phases
 * (forward_phases): the BNs of a cell's parallel branches take their sums
 * in one phase and share its closing barrier, so a NASNet-A cell pays one
 * barrier per BN along its longest chain, not one per BN (68 -> 26 forward
 * barriers per step at F = 8, one cell).  The backward runs in phases on
 * every thread count (nas__net_plan_backward), a BN's input gradient a phase
 * after its sums, and the gradient memory plan follows that order (86 -> 45
 * backward barriers, same net); a step whose gradient buffer the plan
 * reused with another per-image layout within a phase waits for the
 * earlier steps (bwd_sync).  Conv weight gradients go straight into the
 * gradients for member 0 and into a per-member shadow for the others,
 * added in member order at the end, so a given thread count always gives
 * the same bits.  One pool wake-up per pass instead of one per node: at
 * 14x14 inputs a node's share is a few tens of microseconds.  A single
 * thread runs the same code as the one member of a pool, the barriers doing
 * nothing; its BN sums then run over the images in the order of the
 * channel-split kernels (nas_bn_forward_train_part), with the same bits.
 */
#include <string.h>

#include "common/act.h"
#include "common/net_internal.h"

#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

// Node 0 is the caller's input batch; every other node lives at its arena offset.
static float *act(nas_net *net, int id) {
    return id == 0 ? (float *)net->input : net->act_arena + net->nodes[id].act_off;
}

static float *grad(nas_net *net, int id) { return net->grad_arena + net->nodes[id].grad_off; }

static float *pdata(nas_net *net, int idx) { return idx < 0 ? NULL : net->params[idx].data; }
static float *pgrad(nas_net *net, int idx) { return idx < 0 ? NULL : net->params[idx].grad; }

static long per_image(nas_shape s) { return (long)s.c * s.h * s.w; }

// Ops that mix images: member 0 runs them alone.  (Dropout and drop-path draw their random
// numbers in order, all before the pass: draw_masks.)
static int serial(const nas__node *nd) { return nd->op == NAS__OP_LINEAR; }

// A barrier between the pool's members; nothing to wait for on one thread.
static void sync_members(nas_net *net) {
    if (net->pool) nas_workpool_barrier(net->pool);
}

// Member tid's scratch: the workspace of convs and pools (member 0 uses the net's own).
static float *workspace(nas_net *net, int tid) {
    return tid == 0 ? net->workspace : net->tscratch + (size_t)(tid - 1) * net->tscratch_stride;
}

// Member tid's shadow of the trainable gradients (tid >= 1).
static float *shadow(nas_net *net, int tid) {
    return net->tscratch + (size_t)(tid - 1) * net->tscratch_stride + net->workspace_floats;
}

// Member tid's BN scratch: two alternating partial-sum buffers (a member may start the next
// BN's sums while another still reads this one's), the totals, and the coefficients.
static double *bn_part(nas_net *net, int tid, int parity) {
    return net->tbn + (size_t)tid * net->tbn_stride + (size_t)parity * (net->tbn_stride / 4);
}

/* Every member adds up all members' partial sums (2c doubles each, at off doubles into the
 * buffer of the given parity) into its own total, in member order, so all members hold the same
 * bits without a second barrier.  Returns the total. */
static double *bn_sum_parts(nas_net *net, int tid, int nt, int parity, size_t off, int c) {
    double *tot = bn_part(net, tid, 2);
    for (int k = 0; k < 2 * c; k++) {
        double v = 0.0;
        for (int t = 0; t < nt; t++)
            v += bn_part(net, t, parity)[off + k];
        tot[k] = v;
    }
    return tot;
}

// Member tid's forward coefficients of a BN (scale, then shift): a place of its own per BN (at
// its sums' place, bn_off, in floats), so that an add that applies the BN (bn_into) finds them
// however many BNs run between the two.
static float *bn_coef(nas_net *net, int tid, const nas__node *bn) {
    return (float *)bn_part(net, tid, 3) + (size_t)2 * bn->bn_off;
}

// ----------------------------------------------------------------------------
// forward

// Append add nd's inputs as terms of a sum from float e0 on (nas_add_part), but an inner add it
// absorbs (add_in; forward_part adds that one's terms first): a BN applied on the way (bn_in)
// as its input and its member's coefficients.
static void add_terms(nas_net *net, const nas__node *nd, int tid, long e0, const float **x,
                      const float **sc, const float **sh, int *nt) {
    for (int k = 0; k < 2; k++) {
        if (nd->add_in == 1 + k) continue;
        const nas__node *in = &net->nodes[nd->in[k]];
        int bn = nd->bn_in & (1 << k);
        x[*nt] = act(net, bn ? in->in[0] : nd->in[k]) + e0;
        sc[*nt] = bn ? bn_coef(net, tid, in) : NULL;
        sh[*nt] = bn ? sc[*nt] + in->shape.c : NULL;
        ++*nt;
    }
}

// Run one node's forward over images [b0, b1) (serial ops: all n), with member tid's scratch.
// Training BN is not here: it needs the other members' sums (bn_forward_split).
static void forward_part(nas_net *net, nas__node *nd, int id, int n, int train,
                         int tid, long b0, long b1) {
    float *out = act(net, id), *aux = net->act_arena + nd->aux_off;
    nas_shape is = nd->n_in ? net->nodes[nas__input(nd, 0)].shape : nd->shape;
    const float *in = nd->n_in ? act(net, nas__input(nd, 0)) : NULL;
    long pin = per_image(is), pout = per_image(nd->shape);
    long e0 = b0 * pout, e1 = b1 * pout;
    int nb = (int)(b1 - b0);
    switch (nd->op) {
    case NAS__OP_CONV: {
        if (nb == 0) break;
        nas_conv_shape cs = nd->cs;
        cs.n = nb;
        nas_conv2d_forward(out + b0 * pout, in + b0 * pin, pdata(net, nd->p[0]),
                           pdata(net, nd->p[1]), &cs, workspace(net, tid));
        break;
    }
    case NAS__OP_BN:
        NAS_ASSERT(!train); /* training BN runs in bn_forward_split */
        if (nd->bn_into) {  /* its add applies it */
            float *coef = bn_coef(net, tid, nd);
            nas_bn_eval_coef(coef, coef + is.c, pdata(net, nd->p[0]), pdata(net, nd->p[1]),
                             pdata(net, nd->p[2]), pdata(net, nd->p[3]), is.c, BN_EPS);
            break;
        }
        nas_bn_forward_eval_part(out + b0 * pout, in + b0 * pin, pdata(net, nd->p[0]),
                                 pdata(net, nd->p[1]), pdata(net, nd->p[2]),
                                 pdata(net, nd->p[3]), nb, is.c, is.h * is.w, BN_EPS, nd->fused,
                                 0, is.c);
        break;
    case NAS__OP_RELU:
        if (!nd->fused) nas_relu_forward(out + e0, in + e0, e1 - e0); /* fused: BN did it */
        break;
    case NAS__OP_ADD: {
        // The terms: an inner add's two (add_in) first, then the other input; inputs that are BNs
        // applied here (bn_in) are read before their BN.  nd->fused: the following ReLU.
        const float *x[3], *sc[3], *sh[3];
        int nt = 0;
        const nas__node *sub = nd->add_in ? &net->nodes[nd->in[nd->add_in - 1]] : NULL;
        if (sub) add_terms(net, sub, tid, e0, x, sc, sh, &nt);
        add_terms(net, nd, tid, e0, x, sc, sh, &nt);
        float *o = out + e0; /* or its part of the concat that reads it (cat_into) */
        long ldo = pout;
        if (nd->cat_into) {
            ldo = per_image(net->nodes[nd->cat_into].shape);
            o = act(net, nd->cat_into) + b0 * ldo + nd->cat_off;
        }
        nas_add_part(o, ldo, nt, x, sc, sh, nb, nd->shape.c, nd->shape.h * nd->shape.w, nd->fused);
        break;
    }
    case NAS__OP_CONCAT: {
        // Each image's output is the inputs' channel blocks one after another.
        long off = 0;
        for (int k = 0; k < nd->n_in; k++) {
            int src = nas__input(nd, k);
            long pk = per_image(net->nodes[src].shape);
            const float *a = act(net, src);
            if (net->nodes[src].cat_into != id) /* else the add wrote its part */
                for (long b = b0; b < b1; b++)
                    memcpy(out + b * pout + off, a + b * pk, sizeof(float) * pk);
            off += pk;
        }
        break;
    }
    case NAS__OP_MAXPOOL:
    case NAS__OP_AVGPOOL:
        nas_pool_forward_ws(nd->op == NAS__OP_MAXPOOL, out + b0 * pout, in + b0 * pin, nb, is.c,
                            is.h, is.w, nd->k, nd->stride, nd->pad, workspace(net, tid));
        break;
    case NAS__OP_GAP: nas_gap_forward(out + b0 * pout, in + b0 * pin, nb, is.c, is.h * is.w); break;
    case NAS__OP_LINEAR:
        nas_linear_forward(out, in, pdata(net, nd->p[0]), pdata(net, nd->p[1]), n, (int)pin,
                           nd->shape.c);
        break;
    case NAS__OP_DROP_PATH: /* the masks were drawn before the pass (draw_masks) */
        nas_drop_path_apply(out + e0, aux + b0, in + e0, nb, pin);
        break;
    case NAS__OP_DROPOUT:
        for (long i = e0; i < e1; i++) out[i] = in[i] * aux[i];
        break;
    case NAS__OP_SHIFT: {
        int h = is.h, w = is.w;
        for (long p = b0 * is.c; p < b1 * is.c; p++) {
            const float *src = in + p * h * w;
            float *dst = out + p * h * w;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    dst[y * w + x] = (y + 1 < h && x + 1 < w) ? src[(y + 1) * w + x + 1] : 0.0f;
        }
        break;
    }
    case NAS__OP_ZERO: memset(out + e0, 0, sizeof(float) * (e1 - e0)); break;
    case NAS__OP_AUX: memcpy(out + e0, in + e0, sizeof(float) * (e1 - e0)); break;
    case NAS__OP_SILU: nas_silu_forward(out + e0, in + e0, e1 - e0); break;
    case NAS__OP_SIGMOID: nas_sigmoid_forward(out + e0, in + e0, e1 - e0); break;
    case NAS__OP_SCALE:
        nas_chscale_forward(out + e0, in + e0, act(net, nd->in[1]) + b0 * is.c, nb, is.c,
                            is.h * is.w);
        break;
    default: NAS_ASSERT(!"unknown op");
    }
}

// The first half of a training BN's forward: member tid's partial sums over its images [b0, b1),
// off doubles into its BN scratch.
static void bn_forward_sums(nas_net *net, nas__node *nd, int tid, long b0, long b1, size_t off) {
    nas_shape s = nd->shape;
    long per = per_image(s);
    const float *in = act(net, nas__input(nd, 0));
    nas_bn_stats_part(bn_part(net, tid, 0) + off, in + b0 * per, (int)(b1 - b0), s.c, s.h * s.w);
}

// The second half of a training BN's forward, once every member's sums are in: the totals in
// member order, the coefficients, the apply pass.  Member 0 alone stores mean/rstd and the
// running statistics.
static void bn_forward_apply(nas_net *net, nas__node *nd, int id, int n, int tid, int nt, long b0,
                             long b1, size_t off) {
    nas_shape s = nd->shape;
    int c = s.c, hw = s.h * s.w;
    long per = per_image(s);
    const float *in = act(net, nas__input(nd, 0));
    float *out = act(net, id), *aux = net->act_arena + nd->aux_off;
    double *tot = bn_sum_parts(net, tid, nt, 0, off, c);
    float *coef = bn_coef(net, tid, nd);
    int lead = tid == 0;
    nas_bn_finish_stats(coef, coef + c, lead ? aux : NULL, lead ? aux + c : NULL,
                        pdata(net, nd->p[2]), pdata(net, nd->p[3]), tot, pdata(net, nd->p[0]),
                        pdata(net, nd->p[1]), (long)n * hw, c, BN_MOMENTUM, BN_EPS);
    if (nd->bn_into) return; /* its add applies it */
    nas_bn_apply_part(out + b0 * per, in + b0 * per, coef, coef + c, (int)(b1 - b0), c, hw,
                      nd->fused);
}

typedef struct pass {
    nas_net *net;
    int n, train;
    nas_rng *rng;
} pass;

// Nodes the forward pass skips: fused ReLUs (their producer or consumer applied them) and adds
// whose reader sums their terms.
static int skipped(const nas__node *nd) {
    return !nd->live || (nd->op == NAS__OP_RELU && nd->fused) || nd->add_into;
}

// One member's forward pass over its images, node after node: one thread, or inference (whose
// BN is per image).  Serial ops run on member 0 between two barriers.
static void forward_nodes(pass *ps, int tid, int nt, long b0, long b1) {
    nas_net *net = ps->net;
    for (int i = 1; i <= net->output; i++) {
        nas__node *nd = &net->nodes[i];
        if (skipped(nd)) continue;
        if (serial(nd)) {
            sync_members(net);
            if (tid == 0) forward_part(net, nd, i, ps->n, ps->train, 0, 0, ps->n);
            sync_members(net);
        } else if (nd->op == NAS__OP_BN && ps->train) {
            bn_forward_sums(net, nd, tid, b0, b1, 0);
            sync_members(net);
            bn_forward_apply(net, nd, i, ps->n, tid, nt, b0, b1, 0);
        } else {
            forward_part(net, nd, i, ps->n, ps->train, tid, b0, b1);
        }
    }
}

// One member's training forward pass in phases (nas__net_plan_sync): in phase p it runs the
// nodes of phase p in creation order, which apply the BNs whose sums phase p - 1 took and take
// the sums of BNs whose input phase p produces; one barrier ends each phase.  A cell's parallel
// branches thus share their BNs' barriers: one per BN along the longest chain of BNs, not one
// per BN.  Every node computes what it computes node after node, so the bits are the same.
static void forward_phases(pass *ps, int tid, int nt, long b0, long b1) {
    nas_net *net = ps->net;
    int last = 0;
    for (int i = 1; i <= net->output; i++) {
        const nas__node *nd = &net->nodes[i];
        int end = nd->fwd_phase + (nd->op == NAS__OP_BN);
        if (!skipped(nd) && end > last) last = end;
    }
    for (int ph = 0; ph <= last; ph++) {
        for (int i = 1; i <= net->output; i++) {
            nas__node *nd = &net->nodes[i];
            if (skipped(nd)) continue;
            if (nd->op == NAS__OP_BN) {
                size_t off = (size_t)2 * nd->bn_off;
                if (nd->fwd_phase == ph) bn_forward_sums(net, nd, tid, b0, b1, off);
                if (nd->fwd_phase + 1 == ph)
                    bn_forward_apply(net, nd, i, ps->n, tid, nt, b0, b1, off);
            } else if (nd->fwd_phase == ph) {
                if (!serial(nd))
                    forward_part(net, nd, i, ps->n, ps->train, tid, b0, b1);
                else if (tid == 0)
                    forward_part(net, nd, i, ps->n, ps->train, 0, 0, ps->n);
            }
        }
        if (ph < last) sync_members(net);
    }
}

// The masks of every dropout and drop-path node, drawn in node order from the pass's stream (the
// order of the draws when each node drew its own), so that the nodes themselves work by image
// ranges on every member.  Outside training, or at probability 0, the masks are ones.  Returns
// whether the net has such nodes.
static int draw_masks(pass *ps, int draw) {
    nas_net *net = ps->net;
    int any = 0;
    for (int i = 1; i <= net->output; i++) {
        const nas__node *nd = &net->nodes[i];
        if (!nd->live || (nd->op != NAS__OP_DROP_PATH && nd->op != NAS__OP_DROPOUT)) continue;
        any = 1;
        if (!draw) continue;
        float *mask = net->act_arena + nd->aux_off;
        long n = nd->op == NAS__OP_DROPOUT ? ps->n * per_image(nd->shape) : ps->n;
        float p = nd->op == NAS__OP_DROPOUT ? nd->prob : net->drop_path;
        if (ps->train && p > 0.0f)
            nas_drop_mask(mask, n, p, ps->rng);
        else
            for (long k = 0; k < n; k++) mask[k] = 1.0f;
    }
    return any;
}

// One member's whole forward pass over its images.
static void forward_region(void *ctx, int tid, int nt) {
    pass *ps = ctx;
    long b0, b1;
    nas_workpool_split(ps->n, tid, nt, &b0, &b1);
    if (draw_masks(ps, tid == 0)) sync_members(ps->net);
    if (nt > 1 && ps->train)
        forward_phases(ps, tid, nt, b0, b1);
    else
        forward_nodes(ps, tid, nt, b0, b1);
}

// Fused ReLUs are skipped outright: their BN already wrote max(y, 0) into the shared slot.
const float *nas_net_forward(nas_net *net, const float *x, int n, int train, nas_rng *rng) {
    NAS_ASSERT(net->compiled);
    NAS_ASSERT(n >= 1 && n <= net->batch);
    NAS_ASSERT(!train || rng);
    net->input = x;
    net->cur_n = n;
    net->cur_train = train;
    pass ps = {net, n, train, rng};
    if (net->pool)
        nas_workpool_run(net->pool, forward_region, &ps);
    else
        forward_region(&ps, 0, 1);
    return act(net, net->output);
}

// The loss node is implicit: softmax cross-entropy on the output writes the output's gradient
// (overwriting, so the output needs no zeroing) and seeds the backward pass.
// Auxiliary heads only add their (weighted) loss here; their gradients are written when the
// backward pass reaches their node, since their buffers may share floats with the output's.
float nas_net_loss(nas_net *net, const uint8_t *labels, int n, float smoothing, int *correct) {
    NAS_ASSERT(net->compiled && n == net->cur_n);
    net->labels = labels;
    net->smoothing = smoothing;
    net->aux_loss = 0.0f;
    for (int i = 1; i < net->output; i++) {
        const nas__node *nd = &net->nodes[i];
        if (nd->op != NAS__OP_AUX || !nd->live) continue;
        int ka = net->nodes[nd->in[1]].shape.c;
        net->aux_loss += nd->prob * (float)nas_softmax_xent(NULL, act(net, nd->in[1]), labels, n,
                                                             ka, smoothing, NULL);
    }
    int k = net->nodes[net->output].shape.c;
    return (float)nas_softmax_xent(grad(net, net->output), act(net, net->output), labels, n, k,
                                   smoothing, correct);
}

float nas_net_aux_loss_value(const nas_net *net) { return net->aux_loss; }

// ----------------------------------------------------------------------------
// backward

// One node's backward over images [b0, b1) (serial ops: all n) with member tid's scratch; conv
// weight gradients of members other than 0 go to their shadow.  BN is bn_backward_split.
static void backward_part(nas_net *net, nas__node *nd, int id, int n, int tid, long b0, long b1,
                          int overwrite) {
    const float *dout = grad(net, id), *out = act(net, id);
    float *aux = net->act_arena + nd->aux_off;
    int src = nd->n_in ? nas__input(nd, 0) : -1;
    nas_shape is = src >= 0 ? net->nodes[src].shape : nd->shape;
    const float *in = src >= 0 ? act(net, src) : NULL;
    // The network input needs no gradient; conv and linear skip computing it.
    float *din = src >= 0 ? grad(net, src) : NULL, *din_skip = src > 0 ? din : NULL;
    long pin = per_image(is), pout = per_image(nd->shape);
    long e0 = b0 * pout, e1 = b1 * pout;
    int nb = (int)(b1 - b0);
    switch (nd->op) {
    case NAS__OP_CONV: {
        nas_conv_shape cs = nd->cs;
        cs.n = nb;
        float *dw = pgrad(net, nd->p[0]), *db = pgrad(net, nd->p[1]);
        if (tid > 0) {
            dw = shadow(net, tid) + net->params[nd->p[0]].offset;
            db = db ? shadow(net, tid) + net->params[nd->p[1]].offset : NULL;
        }
        if (nb > 0 && (overwrite & 1) && din_skip)
            nas_conv2d_backward_store(din_skip + b0 * pin, dw, db, dout + b0 * pout, in + b0 * pin,
                                      pdata(net, nd->p[0]), &cs, workspace(net, tid));
        else if (nb > 0)
            nas_conv2d_backward(din_skip ? din_skip + b0 * pin : NULL, dw, db, dout + b0 * pout,
                                in + b0 * pin, pdata(net, nd->p[0]), &cs, workspace(net, tid));
        break;
    }
    case NAS__OP_RELU:
        if (overwrite & 1)
            nas_relu_backward_store(din + e0, dout + e0, out + e0, e1 - e0);
        else
            nas_relu_backward(din + e0, dout + e0, out + e0, e1 - e0);
        break;
    case NAS__OP_ADD: {
        // forward was: out = a + b, or max(a + b, 0) with a fused ReLU
        float *db = grad(net, nd->in[1]);
        if (nd->fused) {
            for (long i = e0; i < e1; i++) {
                float d = dout[i];
                float g = out[i] > 0.0f ? d : 0.0f;
                din[i] = (overwrite & 1) ? g : din[i] + g;
            }
            // add(x, x) only overwrites the first time (see nas_net_backward).
            for (long i = e0; i < e1; i++) {
                float d = dout[i];
                float g = out[i] > 0.0f ? d : 0.0f;
                db[i] = (overwrite & 2) ? g : db[i] + g;
            }
            break;
        }
        // An input that took the add's gradient buffer over (add_hands_over in net_compile.c)
        // already holds its gradient.
        if (overwrite & 1) {
            if (din != dout) memcpy(din + e0, dout + e0, sizeof(float) * (e1 - e0));
        } else {
            for (long i = e0; i < e1; i++) din[i] += dout[i];
        }
        if (overwrite & 2) {
            if (db != dout) memcpy(db + e0, dout + e0, sizeof(float) * (e1 - e0));
        } else
            for (long i = e0; i < e1; i++) db[i] += dout[i];
        break;
    }
    case NAS__OP_CONCAT: {
        long off = 0;
        for (int k = 0; k < nd->n_in; k++) {
            int s = nas__input(nd, k);
            long pk = per_image(net->nodes[s].shape);
            float *g = grad(net, s);
            for (long b = b0; b < b1; b++) {
                const float *d = dout + b * pout + off;
                float *gb = g + b * pk;
                if (k < 31 && (overwrite & (1 << k))) /* its first writer: a copy, no zeroing */
                    memcpy(gb, d, sizeof(float) * pk);
                else
                    for (long i = 0; i < pk; i++)
                        gb[i] += d[i];
            }
            off += pk;
        }
        break;
    }
    case NAS__OP_MAXPOOL:
    case NAS__OP_AVGPOOL:
        nas_pool_backward_ws(nd->op == NAS__OP_MAXPOOL, overwrite & 1, din + b0 * pin,
                             dout + b0 * pout, in + b0 * pin, nb, is.c, is.h, is.w, nd->k,
                             nd->stride, nd->pad, workspace(net, tid));
        break;
    case NAS__OP_GAP: nas_gap_backward(din + b0 * pin, dout + b0 * pout, nb, is.c, is.h * is.w); break;
    case NAS__OP_LINEAR:
        nas_linear_backward(din_skip, pgrad(net, nd->p[0]), pgrad(net, nd->p[1]), dout, in,
                            pdata(net, nd->p[0]), n, (int)pin, nd->shape.c);
        break;
    case NAS__OP_DROP_PATH:
        nas_drop_path_backward(din + b0 * pin, dout + b0 * pin, aux + b0, nb, pin);
        break;
    case NAS__OP_DROPOUT: nas_dropout_backward(din + e0, dout + e0, aux + e0, e1 - e0); break;
    case NAS__OP_SHIFT: {
        // forward was: out[y, x] = in[y+1, x+1]
        int h = is.h, w = is.w;
        for (long p = b0 * is.c; p < b1 * is.c; p++) {
            float *dst = din + p * h * w;
            const float *g = dout + p * h * w;
            for (int y = 0; y + 1 < h; y++)
                for (int x = 0; x + 1 < w; x++) dst[(y + 1) * w + x + 1] += g[y * w + x];
        }
        break;
    }
    case NAS__OP_ZERO: break; /* constant output: no gradient flows */
    case NAS__OP_AUX: {
        // Pass-through for the trunk; the head's logits get weight * d(xent)/d(logits) of the
        // images [b0, b1), averaged over the whole batch like the main loss.
        NAS_ASSERT(net->labels != NULL);
        for (long i = e0; i < e1; i++) din[i] += dout[i];
        int k = net->nodes[nd->in[1]].shape.c;
        float *dl = grad(net, nd->in[1]) + b0 * k;
        if (nb == 0) break;
        nas_softmax_xent(dl, act(net, nd->in[1]) + b0 * k, net->labels + b0, nb, k, net->smoothing,
                         NULL);
        float scale = nd->prob * (float)nb / (float)n;
        for (long i = 0; i < (long)nb * k; i++) dl[i] *= scale;
        break;
    }
    case NAS__OP_SILU: nas_silu_backward(din + e0, dout + e0, in + e0, e1 - e0); break;
    case NAS__OP_SIGMOID: nas_sigmoid_backward(din + e0, dout + e0, out + e0, e1 - e0); break;
    case NAS__OP_SCALE: {
        int c = is.c;
        nas_chscale_backward(din_skip ? din + e0 : NULL, grad(net, nd->in[1]) + b0 * c,
                             dout + e0, in + e0, act(net, nd->in[1]) + b0 * c, nb, c, is.h * is.w);
        break;
    }
    default: NAS_ASSERT(!"unknown op");
    }
}

// The first half of a training BN's backward: member tid's partial sums of g and g*x over its
// images, at the BN's place in the second quarter of its scratch (the first holds the forward's).
static void bn_backward_sums(nas_net *net, nas__node *nd, int id, int tid, long b0, long b1) {
    int src = nas__input(nd, 0), c = nd->shape.c, hw = nd->shape.h * nd->shape.w;
    long per = per_image(nd->shape);
    nas_bn_backward_sums_part(bn_part(net, tid, 1) + (size_t)2 * nd->bn_off,
                              grad(net, id) + b0 * per, act(net, id) + b0 * per,
                              act(net, src) + b0 * per, (int)(b1 - b0), c, hw, nd->fused);
}

// The second half, a phase later: the totals in member order, then the input gradient of the
// member's images.  Member 0 alone adds dgamma and dbeta.
static void bn_backward_dx(nas_net *net, nas__node *nd, int id, int n, int tid, int nt, long b0,
                           long b1, int overwrite) {
    int src = nas__input(nd, 0), c = nd->shape.c, hw = nd->shape.h * nd->shape.w;
    long per = per_image(nd->shape);
    const float *aux = net->act_arena + nd->aux_off;
    double *tot = bn_sum_parts(net, tid, nt, 1, (size_t)2 * nd->bn_off, c);
    float *coef = (float *)(bn_part(net, tid, 3));
    nas_bn_finish_backward(coef, tid == 0 ? pgrad(net, nd->p[0]) : NULL, pgrad(net, nd->p[1]), tot,
                           aux, aux + c, pdata(net, nd->p[0]), (long)n * hw, c);
    nas_bn_backward_dx_part(grad(net, src) + b0 * per, grad(net, id) + b0 * per,
                            act(net, id) + b0 * per, act(net, src) + b0 * per, coef,
                            (int)(b1 - b0), c, hw, nd->fused, overwrite);
}

// Which of node j's inputs get their gradient stored rather than added (bit k for input k).
// BN, ReLU, add, concat, conv and pool nodes that are an input gradient's first writer store
// instead of adding, so that gradient needs no zeroing pass (a conv zeroes each image's share while
// it is hot); other first writers get a zeroed one.
static int overwrite_mask(const nas_net *net, const nas__node *nd, int j) {
    int overwrite = 0;
    if (nd->op == NAS__OP_CONCAT) {
        // The first place an input appears in (concat(x, x) adds the second).
        for (int k = 0; k < nd->n_in && k < 31; k++) {
            int id = nas__input(nd, k), first = 1;
            for (int q = 0; q < k; q++)
                first &= nas__input(nd, q) != id;
            if (first && net->nodes[id].zero_at == j) overwrite |= 1 << k;
        }
        return overwrite;
    }
    if (nd->op == NAS__OP_BN || nd->op == NAS__OP_RELU || nd->op == NAS__OP_ADD ||
        nd->op == NAS__OP_CONV || nd->op == NAS__OP_MAXPOOL || nd->op == NAS__OP_AVGPOOL) {
        for (int k = 0; k < nd->n_in; k++)
            if (net->nodes[nd->in[k]].zero_at == j) overwrite |= 1 << k;
        if (nd->n_in == 2 && nd->in[0] == nd->in[1]) overwrite &= 1; /* add(x, x): add twice */
        // A conv does not compute the network input's gradient, so it cannot be its store.
        if (nd->op == NAS__OP_CONV && nas__input(nd, 0) == 0) overwrite = 0;
    }
    return overwrite;
}

// Zero images [b0, b1) of the inputs' gradients that node j writes first without storing.
static void zero_first(nas_net *net, const nas__node *nd, int j, int overwrite, long b0, long b1) {
    for (int k = 0; k < nd->n_in; k++) {
        int i = nas__input(nd, k);
        long per = per_image(net->nodes[i].shape);
        if (net->nodes[i].zero_at == j && !(k < 31 && (overwrite & (1 << k))))
            memset(grad(net, i) + b0 * per, 0, sizeof(float) * (b1 - b0) * per);
    }
}

// One member's whole backward pass over its images, phase after phase (nas__net_plan_backward),
// then its share of adding the members' conv weight gradients (element ranges of each tensor,
// the shadows in member order).
static void backward_region(void *ctx, int tid, int nt) {
    pass *ps = ctx;
    nas_net *net = ps->net;
    int n = ps->n;
    long b0, b1;
    nas_workpool_split(n, tid, nt, &b0, &b1);
    if (tid > 0) memset(shadow(net, tid), 0, sizeof(float) * net->n_trainable);
    for (int ph = 0; ph <= net->bwd_last; ph++) {
        for (int j = net->output; j > 0; j--) {
            nas__node *nd = &net->nodes[j];
            int ev = nas__bwd_event(nd, ph);
            if (ev == NAS__BWD_NONE || ev == NAS__BWD_ALIAS) continue;
            int overwrite = overwrite_mask(net, nd, j);
            if (net->bwd_sync[j] & (ev == NAS__BWD_DX ? 2 : 1)) sync_members(net);
            if (ev == NAS__BWD_SUMS) {
                bn_backward_sums(net, nd, j, tid, b0, b1);
            } else if (ev == NAS__BWD_DX) {
                zero_first(net, nd, j, overwrite, b0, b1);
                bn_backward_dx(net, nd, j, n, tid, nt, b0, b1, overwrite & 1);
            } else if (!serial(nd)) {
                zero_first(net, nd, j, overwrite, b0, b1);
                backward_part(net, nd, j, n, tid, b0, b1, overwrite);
            } else if (tid == 0) { /* alone in its phase, between two barriers */
                zero_first(net, nd, j, overwrite, 0, n);
                backward_part(net, nd, j, n, 0, 0, n, overwrite);
            }
        }
        sync_members(net);
    }
    for (int j = 1; j <= net->output; j++) {
        const nas__node *nd = &net->nodes[j];
        if (!nd->live || nd->op != NAS__OP_CONV) continue;
        for (int k = 0; k < 2; k++) {
            if (nd->p[k] < 0) continue;
            const nas_param *p = &net->params[nd->p[k]];
            long lo, hi;
            nas_workpool_split((long)p->size, tid, nt, &lo, &hi);
            for (int t = 1; t < nt; t++) {
                const float *src = shadow(net, t) + p->offset;
                for (long i = lo; i < hi; i++)
                    p->grad[i] += src[i];
            }
        }
    }
}

void nas_net_backward(nas_net *net) {
    NAS_ASSERT(net->compiled && net->cur_train);
    int n = net->cur_n;
    pass ps = {net, n, 1, NULL};
    if (net->pool)
        nas_workpool_run(net->pool, backward_region, &ps);
    else
        backward_region(&ps, 0, 1);
}

// A gradient buffer seen by the backward steps since the last barrier: its offset and floats
// per image.  Members touch [off + b0 * per, off + b1 * per) of it, so two steps using one
// buffer with the same layout stay within each member's own floats.
typedef struct span {
    size_t off, per;
} span;

// Two members may touch the same floats of two spans only if the spans overlap with
// different layouts.
static int spans_clash(span a, span b, size_t batch) {
    if (a.off == b.off && a.per == b.per) return 0;
    return a.off < b.off + batch * b.per && b.off < a.off + batch * a.per;
}

// The forward phases of forward_phases(): a node runs in the latest phase of its inputs'
// outputs; a training BN's output comes a phase after its sums (a barrier between); a serial
// op runs alone in a phase after everything created before it, and everything created after it
// comes later still (so dropout and drop-path draw their random numbers in the same order).
// Node ids are topological: inputs come first.
static void plan_phases(nas_net *net) {
    int floor = 0, seen = 0;
    for (int j = 1; j <= net->output; j++) {
        nas__node *nd = &net->nodes[j];
        nd->fwd_phase = floor;
        for (int k = 0; k < nd->n_in; k++) {
            const nas__node *in = &net->nodes[nas__input(nd, k)];
            int ready = nas__input(nd, k) == 0 ? 0 : in->fwd_phase + (in->op == NAS__OP_BN);
            if (ready > nd->fwd_phase) nd->fwd_phase = ready;
        }
        if (nd->live && serial(nd)) {
            nd->fwd_phase = seen + 1;
            floor = nd->fwd_phase + 1;
        }
        int end = nd->fwd_phase + (nd->op == NAS__OP_BN || serial(nd));
        if (nd->live && end > seen) seen = end;
    }
}

// The backward phases: a node runs in the first phase after every step that writes its output
// gradient (a consumer's step, or a BN consumer's second half, which comes a phase after its
// sums); a training BN's input gradient comes a phase after its sums.  So the BNs of a cell's
// parallel branches take their sums in one phase and share its barrier.  A serial op comes
// alone in a phase after everything before it.  Node ids are topological, so walking them
// downwards sees every consumer first; bwd_phase holds a node's earliest phase until its turn.
// Also gives each training BN its place in the BN scratch (forward and backward sums).
void nas__net_plan_backward(nas_net *net) {
    int floor = 0, seen = -1, bn_off = 0;
    for (int j = 0; j <= net->output; j++) {
        nas__node *nd = &net->nodes[j];
        nd->bwd_phase = 0;
        if (nd->op == NAS__OP_BN && nd->live) {
            nd->bn_off = bn_off;
            bn_off += nd->shape.c;
        }
    }
    for (int j = net->output; j > 0; j--) {
        nas__node *nd = &net->nodes[j];
        if (!nd->live || (nd->op == NAS__OP_RELU && nd->fused == 2)) continue;
        int ph = nd->bwd_phase > floor ? nd->bwd_phase : floor;
        if (serial(nd)) {
            ph = seen + 1;
            floor = ph + 1;
        }
        nd->bwd_phase = ph;
        // When its input gradients are written: a BN's in its second half.
        int end = ph + (nd->op == NAS__OP_BN);
        if (end > seen) seen = end;
        for (int k = 0; k < nd->n_in; k++) {
            nas__node *in = &net->nodes[nas__input(nd, k)];
            if (in->bwd_phase < end) in->bwd_phase = end;
        }
    }
    net->bwd_last = seen < 0 ? 0 : seen;
}

// Walk the backward as the members will (see backward_region) and mark the steps that touch a
// gradient buffer reused with another layout since the last barrier (the end of a phase).  A
// BN's sums read its output gradient; its second half reads that and writes its input's.
void nas__net_plan_sync(nas_net *net) {
    plan_phases(net);
    span seen[64];
    size_t batch = (size_t)net->batch;
    for (int j = 0; j <= net->output; j++) net->bwd_sync[j] = 0;
    for (int ph = 0; ph <= net->bwd_last; ph++) {
        int n_seen = 0, wide = 0;
        for (int j = net->output; j > 0; j--) {
            nas__node *nd = &net->nodes[j];
            int ev = nas__bwd_event(nd, ph);
            if (ev == NAS__BWD_NONE || ev == NAS__BWD_ALIAS) continue;
            if (ev == NAS__BWD_STEP && serial(nd)) continue; /* alone in its phase */
            span mine[1 + 2 * 8];
            int n_mine = 0;
            mine[n_mine++] = (span){nd->grad_off, (size_t)per_image(nd->shape)};
            // A wide concat, whose input spans the record cannot hold: a barrier before it and
            // one before the next step.
            int clash = wide || nd->n_in > 8;
            wide = nd->n_in > 8;
            for (int k = 0; k < nd->n_in && !clash && ev != NAS__BWD_SUMS; k++) {
                const nas__node *in = &net->nodes[nas__input(nd, k)];
                mine[n_mine++] = (span){in->grad_off, (size_t)per_image(in->shape)};
            }
            for (int a = 0; a < n_mine && !clash; a++)
                for (int b = 0; b < n_seen && !clash; b++)
                    clash = spans_clash(mine[a], seen[b], batch);
            // A full record is forgotten behind a barrier too.
            if (clash || n_seen + n_mine > (int)NAS_ARRAY_LEN(seen)) {
                net->bwd_sync[j] |= ev == NAS__BWD_DX ? 2 : 1;
                n_seen = 0;
            }
            for (int a = 0; a < n_mine; a++)
                seen[n_seen++] = mine[a];
        }
    }
}

void nas_net_zero_grad(nas_net *net) {
    NAS_ASSERT(net->compiled);
    memset(net->grad_block, 0, sizeof(float) * net->n_trainable);
}
