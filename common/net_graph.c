/*
 * net_graph.c - a compiled net's graph as JSON, for tools that rebuild the
 * same network elsewhere (`nasctl export` writes it into a PyTorch module).
 *
 * Only live nodes are listed (those the logits depend on), by their node
 * id, in topological order.  Each names its op, its inputs and what the op
 * needs to be recomputed exactly: kernel geometry, parameter paths (the
 * safetensors names), pooling windows.  Dropout and drop-path are listed as
 * ops so that a reader sees them, and they are the identity at inference.
 */
#include "common/json.h"
#include "common/net.h"
#include "common/net_internal.h"

#include <string.h>

static const char *const OP_NAMES[] = {
    [NAS__OP_INPUT] = "input",       [NAS__OP_CONV] = "conv",       [NAS__OP_BN] = "bn",
    [NAS__OP_RELU] = "relu",         [NAS__OP_ADD] = "add",         [NAS__OP_CONCAT] = "concat",
    [NAS__OP_MAXPOOL] = "maxpool",   [NAS__OP_AVGPOOL] = "avgpool", [NAS__OP_GAP] = "gap",
    [NAS__OP_LINEAR] = "linear",     [NAS__OP_DROP_PATH] = "drop_path",
    [NAS__OP_DROPOUT] = "dropout",   [NAS__OP_SHIFT] = "shift",     [NAS__OP_ZERO] = "zero",
    [NAS__OP_AUX] = "aux",
    [NAS__OP_SILU] = "silu",         [NAS__OP_SIGMOID] = "sigmoid", [NAS__OP_SCALE] = "scale",
};

static void param_key(nas_json_buf *b, const nas_net *net, const char *key, int idx) {
    nas_json_buf_key(b, key);
    nas_json_buf_str(b, idx >= 0 ? net->params[idx].name : NULL);
}

static void shape3(nas_json_buf *b, nas_shape s) {
    nas_json_buf_arr_begin(b);
    nas_json_buf_i64(b, s.c);
    nas_json_buf_i64(b, s.h);
    nas_json_buf_i64(b, s.w);
    nas_json_buf_arr_end(b);
}

/* The attributes of one node beyond op, inputs and shape. */
static void node_attrs(nas_json_buf *b, const nas_net *net, const nas__node *nd) {
    switch (nd->op) {
    case NAS__OP_CONV:
        param_key(b, net, "weight", nd->p[0]);
        param_key(b, net, "bias", nd->p[1]);
        nas_json_buf_key(b, "kernel");
        nas_json_buf_arr_begin(b);
        nas_json_buf_i64(b, nd->cs.kh);
        nas_json_buf_i64(b, nd->cs.kw);
        nas_json_buf_arr_end(b);
        nas_json_buf_key(b, "stride");
        nas_json_buf_i64(b, nd->cs.stride);
        nas_json_buf_key(b, "pad");
        nas_json_buf_arr_begin(b);
        nas_json_buf_i64(b, nd->cs.pad_h);
        nas_json_buf_i64(b, nd->cs.pad_w);
        nas_json_buf_arr_end(b);
        nas_json_buf_key(b, "dilation");
        nas_json_buf_i64(b, nd->cs.dil);
        nas_json_buf_key(b, "groups");
        nas_json_buf_i64(b, nd->cs.groups);
        break;
    case NAS__OP_BN:
        param_key(b, net, "weight", nd->p[0]);
        param_key(b, net, "bias", nd->p[1]);
        param_key(b, net, "running_mean", nd->p[2]);
        param_key(b, net, "running_var", nd->p[3]);
        nas_json_buf_key(b, "eps");
        nas_json_buf_f64(b, 1e-5);
        break;
    case NAS__OP_LINEAR:
        param_key(b, net, "weight", nd->p[0]);
        param_key(b, net, "bias", nd->p[1]);
        break;
    case NAS__OP_MAXPOOL:
    case NAS__OP_AVGPOOL:
        nas_json_buf_key(b, "kernel");
        nas_json_buf_i64(b, nd->k);
        nas_json_buf_key(b, "stride");
        nas_json_buf_i64(b, nd->stride);
        nas_json_buf_key(b, "pad");
        nas_json_buf_i64(b, nd->pad);
        break;
    case NAS__OP_ZERO: {
        /* The node keeps only its output side, ceil(side / stride). */
        int in_h = net->nodes[nd->in[0]].shape.h, oh = nd->shape.h;
        nas_json_buf_key(b, "stride");
        nas_json_buf_i64(b, (in_h + oh - 1) / oh);
        break;
    }
    case NAS__OP_DROPOUT:
        nas_json_buf_key(b, "p");
        nas_json_buf_f32(b, nd->prob);
        break;
    default:
        break;
    }
}

char *nas_net_graph_json(const nas_net *net) {
    if (net == NULL || !net->compiled) return NULL;
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "input");
    shape3(&b, net->in_shape);
    nas_json_buf_key(&b, "output");
    nas_json_buf_i64(&b, net->output);
    nas_json_buf_key(&b, "nodes");
    nas_json_buf_arr_begin(&b);
    for (int i = 0; i < net->n_nodes; i++) {
        const nas__node *nd = &net->nodes[i];
        if (!nd->live) continue;
        /* An op added to the engine but not here must not become a graph
         * that other tools misread. */
        if (nd->op < 0 || (size_t)nd->op >= sizeof OP_NAMES / sizeof *OP_NAMES ||
            !OP_NAMES[nd->op]) {
            nas_json_buf_fini(&b);
            return NULL;
        }
        nas_json_buf_obj_begin(&b);
        nas_json_buf_key(&b, "id");
        nas_json_buf_i64(&b, i);
        nas_json_buf_key(&b, "op");
        nas_json_buf_str(&b, OP_NAMES[nd->op]);
        nas_json_buf_key(&b, "in");
        nas_json_buf_arr_begin(&b);
        for (int k = 0; k < nd->n_in; k++) /* a fused ReLU is still the conv's input */
            nas_json_buf_i64(&b, k == 0 && nd->relu_node ? nd->relu_node : nas__input(nd, k));
        nas_json_buf_arr_end(&b);
        nas_json_buf_key(&b, "shape");
        shape3(&b, nd->shape);
        node_attrs(&b, net, nd);
        nas_json_buf_obj_end(&b);
    }
    nas_json_buf_arr_end(&b);
    nas_json_buf_obj_end(&b);
    return nas_json_buf_take(&b, NULL);
}
