/*
 * net_run.c - forward and backward passes over a compiled nas_net.
 *
 * Forward visits live nodes in creation (topological) order and writes
 * each output into its arena slot.  Backward visits them in reverse; each
 * node reads its output gradient and accumulates (+=) into its inputs'
 * gradients, which the memory plan zeroes just before their first writer.
 */
#include <string.h>

#include "common/net_internal.h"

#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

static float *act(nas_net *net, int id) {
    return id == 0 ? (float *)net->input : net->act_arena + net->nodes[id].act_off;
}

static float *grad(nas_net *net, int id) { return net->grad_arena + net->nodes[id].grad_off; }

static float *pdata(nas_net *net, int idx) { return idx < 0 ? NULL : net->params[idx].data; }
static float *pgrad(nas_net *net, int idx) { return idx < 0 ? NULL : net->params[idx].grad; }

static long per_image(nas_shape s) { return (long)s.c * s.h * s.w; }

// ----------------------------------------------------------------------------
// forward

static void forward_node(nas_net *net, nas__node *nd, int id, int n, int train, nas_rng *rng) {
    float *out = act(net, id), *aux = net->act_arena + nd->aux_off;
    nas_shape is = nd->n_in ? net->nodes[nas__input(nd, 0)].shape : nd->shape;
    const float *in = nd->n_in ? act(net, nas__input(nd, 0)) : NULL;
    long size = n * per_image(nd->shape);
    switch (nd->op) {
    case NAS__OP_CONV: {
        nas_conv_shape cs = nd->cs;
        cs.n = n;
        nas_conv2d_forward(out, in, pdata(net, nd->p[0]), pdata(net, nd->p[1]), &cs, net->workspace);
        break;
    }
    case NAS__OP_BN:
        if (train)
            nas_bn_forward_train(out, aux, aux + is.c, in, pdata(net, nd->p[0]), pdata(net, nd->p[1]),
                                 pdata(net, nd->p[2]), pdata(net, nd->p[3]), n, is.c, is.h * is.w,
                                 BN_MOMENTUM, BN_EPS);
        else
            nas_bn_forward_eval(out, in, pdata(net, nd->p[0]), pdata(net, nd->p[1]),
                                pdata(net, nd->p[2]), pdata(net, nd->p[3]), n, is.c, is.h * is.w,
                                BN_EPS);
        break;
    case NAS__OP_RELU: nas_relu_forward(out, in, size); break;
    case NAS__OP_ADD: {
        const float *b = act(net, nd->in[1]);
        for (long i = 0; i < size; i++) out[i] = in[i] + b[i];
        break;
    }
    case NAS__OP_CONCAT: {
        // Each image's output is the inputs' channel blocks one after another.
        long per = per_image(nd->shape), off = 0;
        for (int k = 0; k < nd->n_in; k++) {
            int src = nas__input(nd, k);
            long pk = per_image(net->nodes[src].shape);
            const float *a = act(net, src);
            for (int b = 0; b < n; b++) memcpy(out + b * per + off, a + b * pk, sizeof(float) * pk);
            off += pk;
        }
        break;
    }
    case NAS__OP_MAXPOOL:
        nas_maxpool_forward(out, in, n, is.c, is.h, is.w, nd->k, nd->stride, nd->pad);
        break;
    case NAS__OP_AVGPOOL:
        nas_avgpool_forward(out, in, n, is.c, is.h, is.w, nd->k, nd->stride, nd->pad);
        break;
    case NAS__OP_GAP: nas_gap_forward(out, in, n, is.c, is.h * is.w); break;
    case NAS__OP_LINEAR:
        nas_linear_forward(out, in, pdata(net, nd->p[0]), pdata(net, nd->p[1]), n,
                           (int)per_image(is), nd->shape.c);
        break;
    case NAS__OP_DROP_PATH:
        if (train && net->drop_path > 0.0f) {
            nas_drop_path_forward(out, aux, in, n, per_image(is), net->drop_path, rng);
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
        for (long p = 0; p < (long)n * is.c; p++) {
            const float *src = in + p * h * w;
            float *dst = out + p * h * w;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    dst[y * w + x] = (y + 1 < h && x + 1 < w) ? src[(y + 1) * w + x + 1] : 0.0f;
        }
        break;
    }
    case NAS__OP_ZERO: memset(out, 0, sizeof(float) * size); break;
    default: NAS_ASSERT(!"unknown op");
    }
}

const float *nas_net_forward(nas_net *net, const float *x, int n, int train, nas_rng *rng) {
    NAS_ASSERT(net->compiled);
    NAS_ASSERT(n >= 1 && n <= net->batch);
    NAS_ASSERT(!train || rng);
    net->input = x;
    net->cur_n = n;
    net->cur_train = train;
    for (int i = 1; i <= net->output; i++)
        if (net->nodes[i].live) forward_node(net, &net->nodes[i], i, n, train, rng);
    return act(net, net->output);
}

float nas_net_loss(nas_net *net, const uint8_t *labels, int n, float smoothing, int *correct) {
    NAS_ASSERT(net->compiled && n == net->cur_n);
    int k = net->nodes[net->output].shape.c;
    return (float)nas_softmax_xent(grad(net, net->output), act(net, net->output), labels, n, k,
                                   smoothing, correct);
}

// ----------------------------------------------------------------------------
// backward

static void backward_node(nas_net *net, nas__node *nd, int id, int n) {
    const float *dout = grad(net, id), *out = act(net, id);
    float *aux = net->act_arena + nd->aux_off;
    int src = nd->n_in ? nas__input(nd, 0) : -1;
    nas_shape is = src >= 0 ? net->nodes[src].shape : nd->shape;
    const float *in = src >= 0 ? act(net, src) : NULL;
    // The network input needs no gradient; conv and linear skip computing it.
    float *din = src >= 0 ? grad(net, src) : NULL, *din_skip = src > 0 ? din : NULL;
    long size = n * per_image(nd->shape);
    switch (nd->op) {
    case NAS__OP_CONV: {
        nas_conv_shape cs = nd->cs;
        cs.n = n;
        nas_conv2d_backward(din_skip, pgrad(net, nd->p[0]), pgrad(net, nd->p[1]), dout, in,
                            pdata(net, nd->p[0]), &cs, net->workspace);
        break;
    }
    case NAS__OP_BN:
        nas_bn_backward(din, pgrad(net, nd->p[0]), pgrad(net, nd->p[1]), dout, in, aux,
                        aux + is.c, pdata(net, nd->p[0]), n, is.c, is.h * is.w);
        break;
    case NAS__OP_RELU: nas_relu_backward(din, dout, out, size); break;
    case NAS__OP_ADD: {
        // forward was: out = a + b
        float *db = grad(net, nd->in[1]);
        for (long i = 0; i < size; i++) din[i] += dout[i];
        for (long i = 0; i < size; i++) db[i] += dout[i];
        break;
    }
    case NAS__OP_CONCAT: {
        long per = per_image(nd->shape), off = 0;
        for (int k = 0; k < nd->n_in; k++) {
            int s = nas__input(nd, k);
            long pk = per_image(net->nodes[s].shape);
            float *g = grad(net, s);
            for (int b = 0; b < n; b++) {
                const float *d = dout + b * per + off;
                float *gb = g + b * pk;
                for (long i = 0; i < pk; i++) gb[i] += d[i];
            }
            off += pk;
        }
        break;
    }
    case NAS__OP_MAXPOOL:
        nas_maxpool_backward(din, dout, in, n, is.c, is.h, is.w, nd->k, nd->stride, nd->pad);
        break;
    case NAS__OP_AVGPOOL:
        nas_avgpool_backward(din, dout, n, is.c, is.h, is.w, nd->k, nd->stride, nd->pad);
        break;
    case NAS__OP_GAP: nas_gap_backward(din, dout, n, is.c, is.h * is.w); break;
    case NAS__OP_LINEAR:
        nas_linear_backward(din_skip, pgrad(net, nd->p[0]), pgrad(net, nd->p[1]), dout, in,
                            pdata(net, nd->p[0]), n, (int)per_image(is), nd->shape.c);
        break;
    case NAS__OP_DROP_PATH: nas_drop_path_backward(din, dout, aux, n, per_image(is)); break;
    case NAS__OP_DROPOUT: nas_dropout_backward(din, dout, aux, size); break;
    case NAS__OP_SHIFT: {
        // forward was: out[y, x] = in[y+1, x+1]
        int h = is.h, w = is.w;
        for (long p = 0; p < (long)n * is.c; p++) {
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

void nas_net_backward(nas_net *net) {
    NAS_ASSERT(net->compiled && net->cur_train);
    int n = net->cur_n;
    for (int j = net->output; j > 0; j--) {
        nas__node *nd = &net->nodes[j];
        if (!nd->live) continue;
        for (int k = 0; k < nd->n_in; k++) {
            int i = nas__input(nd, k);
            if (net->nodes[i].zero_at == j)
                memset(grad(net, i), 0, sizeof(float) * n * per_image(net->nodes[i].shape));
        }
        backward_node(net, nd, j, n);
    }
}

void nas_net_zero_grad(nas_net *net) {
    NAS_ASSERT(net->compiled);
    memset(net->grad_block, 0, sizeof(float) * net->n_trainable);
}
