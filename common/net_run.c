/*
 * net_run.c - forward and backward passes over a compiled nas_net.
 *
 * Forward visits live nodes in creation (topological) order and writes
 * each output into its arena slot.  Backward visits them in reverse; each
 * node reads its output gradient and accumulates (+=) into its inputs'
 * gradients, which the memory plan zeroes just before their first writer.
 *
 * With a thread pool, a node's work is split by (tid, nthreads) alone:
 * convolutions, pooling, concat and shift by image; batch norm by channel;
 * elementwise ops by range.  A convolution's weight gradient is summed per
 * thread (member 0 straight into the gradient, the others into scratch)
 * and reduced in member order afterwards, so a given thread count always
 * gives the same bits.  Linear, dropout and drop-path (which draw random
 * numbers in order) stay on the calling thread.
 */
#include <string.h>

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

// Ops whose work this file splits across threads.
static int splittable(const nas__node *nd) {
    return nd->op != NAS__OP_LINEAR && nd->op != NAS__OP_DROP_PATH && nd->op != NAS__OP_DROPOUT;
}

// Member tid's scratch: the im2col workspace (member 0 uses the net's own).
static float *workspace(nas_net *net, int tid) {
    return tid == 0 ? net->workspace : net->tscratch + (size_t)(tid - 1) * net->tscratch_stride;
}

// Member tid's weight-gradient accumulator (tid >= 1).
static float *wgrad(nas_net *net, int tid) {
    return net->tscratch + (size_t)(tid - 1) * net->tscratch_stride + net->workspace_floats;
}

// ----------------------------------------------------------------------------
// forward

typedef struct job {
    nas_net *net;
    nas__node *nd;
    int id, n, train;
    nas_rng *rng;
    int overwrite; /* backward: bit k set = store input k's gradient (see nas_net_backward) */
} job;

// Run member tid's share of one node's forward.  Shares are contiguous ranges: b0..b1 of the
// images, e0..e1 of the elements, c0..c1 of the channels; each op uses the one that keeps its
// writes disjoint between members.
static void forward_part(nas_net *net, nas__node *nd, int id, int n, int train, nas_rng *rng,
                         int tid, int nt) {
    float *out = act(net, id), *aux = net->act_arena + nd->aux_off;
    nas_shape is = nd->n_in ? net->nodes[nas__input(nd, 0)].shape : nd->shape;
    const float *in = nd->n_in ? act(net, nas__input(nd, 0)) : NULL;
    long pin = per_image(is), pout = per_image(nd->shape), size = n * pout, b0, b1, e0, e1, c0, c1;
    nas_workpool_split(n, tid, nt, &b0, &b1);
    nas_workpool_split(size, tid, nt, &e0, &e1);
    nas_workpool_split(is.c, tid, nt, &c0, &c1);
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
        if (train)
            nas_bn_forward_train_part(out, aux, aux + is.c, in, pdata(net, nd->p[0]),
                                      pdata(net, nd->p[1]), pdata(net, nd->p[2]),
                                      pdata(net, nd->p[3]), n, is.c, is.h * is.w, BN_MOMENTUM,
                                      BN_EPS, nd->fused, (int)c0, (int)c1);
        else
            nas_bn_forward_eval_part(out, in, pdata(net, nd->p[0]), pdata(net, nd->p[1]),
                                     pdata(net, nd->p[2]), pdata(net, nd->p[3]), n, is.c,
                                     is.h * is.w, BN_EPS, nd->fused, (int)c0, (int)c1);
        break;
    case NAS__OP_RELU:
        if (!nd->fused) nas_relu_forward(out + e0, in + e0, e1 - e0); /* fused: BN did it */
        break;
    case NAS__OP_ADD: {
        const float *b = act(net, nd->in[1]);
        if (nd->fused) {
            for (long i = e0; i < e1; i++) {
                float v = in[i] + b[i];
                out[i] = v > 0.0f ? v : 0.0f; /* the following ReLU, fused */
            }
        } else {
            for (long i = e0; i < e1; i++) out[i] = in[i] + b[i];
        }
        break;
    }
    case NAS__OP_CONCAT: {
        // Each image's output is the inputs' channel blocks one after another.
        long off = 0;
        for (int k = 0; k < nd->n_in; k++) {
            int src = nas__input(nd, k);
            long pk = per_image(net->nodes[src].shape);
            const float *a = act(net, src);
            for (long b = b0; b < b1; b++) memcpy(out + b * pout + off, a + b * pk, sizeof(float) * pk);
            off += pk;
        }
        break;
    }
    case NAS__OP_MAXPOOL:
        nas_maxpool_forward(out + b0 * pout, in + b0 * pin, nb, is.c, is.h, is.w, nd->k, nd->stride,
                            nd->pad);
        break;
    case NAS__OP_AVGPOOL:
        nas_avgpool_forward(out + b0 * pout, in + b0 * pin, nb, is.c, is.h, is.w, nd->k, nd->stride,
                            nd->pad);
        break;
    case NAS__OP_GAP: nas_gap_forward(out + b0 * pout, in + b0 * pin, nb, is.c, is.h * is.w); break;
    case NAS__OP_LINEAR:
        nas_linear_forward(out, in, pdata(net, nd->p[0]), pdata(net, nd->p[1]), n, (int)pin,
                           nd->shape.c);
        break;
    case NAS__OP_DROP_PATH:
        if (train && net->drop_path > 0.0f) {
            nas_drop_path_forward(out, aux, in, n, pin, net->drop_path, rng);
        } else {
            // A mask of ones keeps backward uniform when nothing is dropped.
            for (int b = 0; b < n; b++) aux[b] = 1.0f;
            memcpy(out, in, sizeof(float) * size);
        }
        break;
    case NAS__OP_DROPOUT:
        if (train && nd->prob > 0.0f) {
            nas_dropout_forward(out, aux, in, size, nd->prob, rng);
        } else {
            for (long i = 0; i < size; i++) aux[i] = 1.0f;
            memcpy(out, in, sizeof(float) * size);
        }
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
    default: NAS_ASSERT(!"unknown op");
    }
}

static void forward_job(void *ctx, int tid, int nt) {
    job *j = ctx;
    forward_part(j->net, j->nd, j->id, j->n, j->train, j->rng, tid, nt);
}

// Fused ReLUs are skipped outright: their BN already wrote max(y, 0) into the shared slot.
const float *nas_net_forward(nas_net *net, const float *x, int n, int train, nas_rng *rng) {
    NAS_ASSERT(net->compiled);
    NAS_ASSERT(n >= 1 && n <= net->batch);
    NAS_ASSERT(!train || rng);
    net->input = x;
    net->cur_n = n;
    net->cur_train = train;
    for (int i = 1; i <= net->output; i++) {
        nas__node *nd = &net->nodes[i];
        if (!nd->live || (nd->op == NAS__OP_RELU && nd->fused)) continue;
        job j = {net, nd, i, n, train, rng, 0};
        if (net->pool && splittable(nd))
            nas_workpool_run(net->pool, forward_job, &j);
        else
            forward_part(net, nd, i, n, train, rng, 0, 1);
    }
    return act(net, net->output);
}

// The loss node is implicit: softmax cross-entropy on the output writes the output's gradient
// (overwriting, so the output needs no zeroing) and seeds the backward pass.
float nas_net_loss(nas_net *net, const uint8_t *labels, int n, float smoothing, int *correct) {
    NAS_ASSERT(net->compiled && n == net->cur_n);
    int k = net->nodes[net->output].shape.c;
    return (float)nas_softmax_xent(grad(net, net->output), act(net, net->output), labels, n, k,
                                   smoothing, correct);
}

// ----------------------------------------------------------------------------
// backward

// Member tid's share of one node's backward; see forward_part for the split.
static void backward_part(nas_net *net, nas__node *nd, int id, int n, int tid, int nt,
                          int overwrite) {
    const float *dout = grad(net, id), *out = act(net, id);
    float *aux = net->act_arena + nd->aux_off;
    int src = nd->n_in ? nas__input(nd, 0) : -1;
    nas_shape is = src >= 0 ? net->nodes[src].shape : nd->shape;
    const float *in = src >= 0 ? act(net, src) : NULL;
    // The network input needs no gradient; conv and linear skip computing it.
    float *din = src >= 0 ? grad(net, src) : NULL, *din_skip = src > 0 ? din : NULL;
    long pin = per_image(is), pout = per_image(nd->shape), size = n * pout, b0, b1, e0, e1, c0, c1;
    nas_workpool_split(n, tid, nt, &b0, &b1);
    nas_workpool_split(size, tid, nt, &e0, &e1);
    nas_workpool_split(is.c, tid, nt, &c0, &c1);
    int nb = (int)(b1 - b0);
    switch (nd->op) {
    case NAS__OP_CONV: {
        nas_conv_shape cs = nd->cs;
        cs.n = nb;
        float *dw = pgrad(net, nd->p[0]), *db = pgrad(net, nd->p[1]);
        if (tid > 0) {
            // Private accumulators, reduced in member order by the caller.
            size_t nw = net->params[nd->p[0]].size;
            dw = wgrad(net, tid);
            memset(dw, 0, sizeof(float) * (nw + (size_t)nd->shape.c));
            db = db ? dw + nw : NULL;
        }
        if (nb > 0 && (overwrite & 1) && din_skip)
            nas_conv2d_backward_store(din_skip + b0 * pin, dw, db, dout + b0 * pout, in + b0 * pin,
                                      pdata(net, nd->p[0]), &cs, workspace(net, tid));
        else if (nb > 0)
            nas_conv2d_backward(din_skip ? din_skip + b0 * pin : NULL, dw, db, dout + b0 * pout,
                                in + b0 * pin, pdata(net, nd->p[0]), &cs, workspace(net, tid));
        break;
    }
    case NAS__OP_BN:
        nas_bn_backward_part(din, pgrad(net, nd->p[0]), pgrad(net, nd->p[1]), dout, out, in, aux,
                             aux + is.c, pdata(net, nd->p[0]), n, is.c, is.h * is.w, nd->fused,
                             overwrite & 1, (int)c0, (int)c1);
        break;
    case NAS__OP_RELU:
        if (overwrite & 1) {
            for (long i = e0; i < e1; i++) {
                float d = dout[i];
                din[i] = out[i] > 0.0f ? d : 0.0f;
            }
        } else {
            nas_relu_backward(din + e0, dout + e0, out + e0, e1 - e0);
        }
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
        if (overwrite & 1)
            memcpy(din + e0, dout + e0, sizeof(float) * (e1 - e0));
        else
            for (long i = e0; i < e1; i++) din[i] += dout[i];
        if (overwrite & 2)
            memcpy(db + e0, dout + e0, sizeof(float) * (e1 - e0));
        else
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
                for (long i = 0; i < pk; i++) gb[i] += d[i];
            }
            off += pk;
        }
        break;
    }
    case NAS__OP_MAXPOOL:
        nas_maxpool_backward(din + b0 * pin, dout + b0 * pout, in + b0 * pin, nb, is.c, is.h, is.w,
                             nd->k, nd->stride, nd->pad);
        break;
    case NAS__OP_AVGPOOL:
        nas_avgpool_backward(din + b0 * pin, dout + b0 * pout, nb, is.c, is.h, is.w, nd->k,
                             nd->stride, nd->pad);
        break;
    case NAS__OP_GAP: nas_gap_backward(din + b0 * pin, dout + b0 * pout, nb, is.c, is.h * is.w); break;
    case NAS__OP_LINEAR:
        nas_linear_backward(din_skip, pgrad(net, nd->p[0]), pgrad(net, nd->p[1]), dout, in,
                            pdata(net, nd->p[0]), n, (int)pin, nd->shape.c);
        break;
    case NAS__OP_DROP_PATH: nas_drop_path_backward(din, dout, aux, n, pin); break;
    case NAS__OP_DROPOUT: nas_dropout_backward(din, dout, aux, size); break;
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
    default: NAS_ASSERT(!"unknown op");
    }
}

static void backward_job(void *ctx, int tid, int nt) {
    job *j = ctx;
    backward_part(j->net, j->nd, j->id, j->n, tid, nt, j->overwrite);
}

// Add the helpers' private conv weight gradients into the real ones, in member order.
static void reduce_conv_grads(nas_net *net, nas__node *nd) {
    const nas_param *w = &net->params[nd->p[0]];
    size_t nw = w->size, nbias = nd->p[1] >= 0 ? (size_t)nd->shape.c : 0;
    for (int t = 1; t < net->threads; t++) {
        const float *src = wgrad(net, t);
        for (size_t i = 0; i < nw; i++) w->grad[i] += src[i];
        float *db = pgrad(net, nd->p[1]);
        for (size_t i = 0; i < nbias; i++) db[i] += src[nw + i];
    }
}

void nas_net_backward(nas_net *net) {
    NAS_ASSERT(net->compiled && net->cur_train);
    int n = net->cur_n;
    for (int j = net->output; j > 0; j--) {
        nas__node *nd = &net->nodes[j];
        if (!nd->live || (nd->op == NAS__OP_RELU && nd->fused)) continue;
        // BN, ReLU, add and conv nodes that are an input gradient's first writer store instead
        // of adding, so that gradient needs no zeroing pass (a conv zeroes each image's share
        // while it is hot); other first writers get a zeroed one.
        int overwrite = 0;
        if (nd->op == NAS__OP_BN || nd->op == NAS__OP_RELU || nd->op == NAS__OP_ADD ||
            nd->op == NAS__OP_CONV) {
            for (int k = 0; k < nd->n_in; k++)
                if (net->nodes[nd->in[k]].zero_at == j) overwrite |= 1 << k;
            if (nd->n_in == 2 && nd->in[0] == nd->in[1]) overwrite &= 1; /* add(x, x): add twice */
            // A conv does not compute the network input's gradient, so it cannot be its store.
            if (nd->op == NAS__OP_CONV && nas__input(nd, 0) == 0) overwrite = 0;
        }
        for (int k = 0; k < nd->n_in; k++) {
            int i = nas__input(nd, k);
            if (net->nodes[i].zero_at == j && !(overwrite & (1 << k)))
                memset(grad(net, i), 0, sizeof(float) * n * per_image(net->nodes[i].shape));
        }
        job jb = {net, nd, j, n, 1, NULL, overwrite};
        if (net->pool && splittable(nd)) {
            nas_workpool_run(net->pool, backward_job, &jb);
            if (nd->op == NAS__OP_CONV) reduce_conv_grads(net, nd);
        } else {
            backward_part(net, nd, j, n, 0, 1, overwrite);
        }
    }
}

void nas_net_zero_grad(nas_net *net) {
    NAS_ASSERT(net->compiled);
    memset(net->grad_block, 0, sizeof(float) * net->n_trainable);
}
