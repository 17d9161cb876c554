/*
 * net.c - the network graph: builder calls and parameter bookkeeping.  Compiling it (the
 * memory plan below, the fusions, the threads' scratch) is in net_compile.c, the forward and
 * backward passes in net_run.c; all share the private layout in net_internal.h.
 *
 * Memory plan (nas_net_compile):
 *   - parameters: trainable tensors first, then buffers (BN running stats),
 *     in one aligned block; gradients and optimizer state mirror the
 *     trainable prefix;
 *   - activations: every live node's output for the compiled batch, plus
 *     per-node auxiliaries (BN mean/rstd, dropout masks), in one arena;
 *   - activation gradients: a second arena whose buffers are reused across
 *     nodes.  Backward visits nodes in phases (net_run.c), each in reverse
 *     creation order; node i's gradient is live from its first writer's
 *     step to its own last one, so a best-fit free list assigns buffers and a
 *     node's gradient is zeroed right before its first writer (zero_at);
 *   - one workspace per thread, sized for the largest scratch of a conv or pool kernel.
 */
#include "common/net.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/net_internal.h"

#define NAS_NET_MAX_PATH 200

// ----------------------------------------------------------------------------
// lifecycle

// The net starts empty; nas_net_input() adds node 0 with the image shape given here, so every
// later node can derive its shape from its inputs without a separate shape pass.
int nas_net_create(nas_net **out, int in_c, int in_h, int in_w, char *err) {
    if (in_c < 1 || in_h < 1 || in_w < 1)
        return nas_set_err(err, NAS_EINVAL, "net: input shape %dx%dx%d must be positive", in_c,
                           in_h, in_w);
    nas_net *net = nas_calloc(1, sizeof(*net));
    if (!net) return nas_set_err(err, NAS_ENOMEM, "net: out of memory");
    net->in_shape = (nas_shape){in_c, in_h, in_w};
    net->output = -1;
    *out = net;
    return NAS_OK;
}

// Everything the net owns hangs off this struct: node concat lists, parameter names, the five
// compiled blocks and the thread pool.  Blocks may be NULL (never compiled, or compile failed
// half-way), which the free functions accept.
void nas_net_destroy(nas_net **np) {
    if (!np || !*np) return;
    nas_net *net = *np;
    for (int i = 0; i < net->n_nodes; i++) nas_free(net->nodes[i].cat);
    for (int i = 0; i < net->n_params; i++) nas_free((char *)net->params[i].name);
    nas_free(net->nodes);
    nas_free(net->params);
    nas_aligned_free(net->param_block);
    nas_aligned_free(net->grad_block);
    nas_aligned_free(net->optim_block);
    nas_aligned_free(net->act_arena);
    nas_aligned_free(net->grad_arena);
    nas_aligned_free(net->workspace);
    nas_workpool_destroy(&net->pool);
    nas_aligned_free(net->tscratch);
    nas_free(net->tbn);
    nas_free(net->bwd_sync);
    nas_free(net);
    *np = NULL;
}

const char *nas_net_errmsg(const nas_net *net) { return net->errmsg; }

// Record the first builder error (sticky) and return its code.
__attribute__((format(printf, 3, 4))) static int fail_build(nas_net *net, int code,
                                                             const char *fmt, ...) {
    if (net->err_code == 0) {
        va_list ap;
        va_start(ap, fmt);
        memcpy(net->errmsg, "net: ", 5);
        vsnprintf(net->errmsg + 5, sizeof net->errmsg - 5, fmt, ap);
        va_end(ap);
        net->err_code = code;
    }
    return code;
}

// ----------------------------------------------------------------------------
// builder helpers

// Validate that every input id is a node of this net; propagates earlier errors.
static int check_inputs(nas_net *net, const int *ids, int n) {
    if (net->compiled) return fail_build(net, NAS_ESTATE, "cannot add nodes after compile");
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0) return ids[i];
        if (ids[i] >= net->n_nodes)
            return fail_build(net, NAS_EINVAL, "input node %d does not exist (%d nodes)", ids[i], net->n_nodes);
    }
    return NAS_OK;
}

// Append a node; returns its id or NAS_ENOMEM.
static int add_node(nas_net *net, const nas__node *proto) {
    if (net->n_nodes == net->cap_nodes) {
        int cap = net->cap_nodes ? 2 * net->cap_nodes : 32;
        nas__node *p = nas_realloc(net->nodes, sizeof(*p) * (size_t)cap);
        if (!p) return fail_build(net, NAS_ENOMEM, "out of memory adding a node");
        net->nodes = p;
        net->cap_nodes = cap;
    }
    net->nodes[net->n_nodes] = *proto;
    return net->n_nodes++;
}

// Register a named tensor "path/suffix"; returns its index or a negative error.
static int add_param(nas_net *net, const char *path, const char *suffix, int ndim, const int *shape,
                     int trainable) {
    char name[NAS_NET_MAX_PATH + 32];
    snprintf(name, sizeof name, "%s/%s", path, suffix);
    if (nas_net_param_find(net, name))
        return fail_build(net, NAS_EEXIST, "duplicate parameter path '%s'", name);
    if (net->n_params == net->cap_params) {
        int cap = net->cap_params ? 2 * net->cap_params : 32;
        nas_param *p = nas_realloc(net->params, sizeof(*p) * (size_t)cap);
        if (!p) return fail_build(net, NAS_ENOMEM, "out of memory adding a parameter");
        net->params = p;
        net->cap_params = cap;
    }
    nas_param *p = &net->params[net->n_params];
    memset(p, 0, sizeof(*p));
    p->name = nas_strdup(name);
    if (!p->name) return fail_build(net, NAS_ENOMEM, "out of memory adding a parameter");
    p->ndim = ndim;
    p->size = 1;
    for (int d = 0; d < ndim; d++) {
        p->shape[d] = shape[d];
        p->size *= (size_t)shape[d];
    }
    p->trainable = trainable;
    p->train_only = net->train_only;
    return net->n_params++;
}

// Paths become tensor names in safetensors files and on the wire; an empty one would collide
// with every other empty one, and very long ones would not fit the name buffers.
static int check_path(nas_net *net, const char *path) {
    if (!path || !*path) return fail_build(net, NAS_EINVAL, "a parameter path is empty");
    if (strlen(path) > NAS_NET_MAX_PATH)
        return fail_build(net, NAS_EINVAL, "parameter path '%.40s...' is longer than %d bytes", path, NAS_NET_MAX_PATH);
    return NAS_OK;
}

// A blank node of kind `op` reading x (or nothing when x < 0), with no parameters.
static nas__node node_of(int op, int x, nas_shape shape) {
    nas__node nd;
    memset(&nd, 0, sizeof(nd));
    nd.op = op;
    nd.in[0] = x;
    nd.in[1] = -1;
    nd.n_in = x >= 0 ? 1 : 0;
    nd.shape = shape;
    for (int i = 0; i < 4; i++) nd.p[i] = -1;
    return nd;
}

// ----------------------------------------------------------------------------
// builder

// The input is node 0 by construction, so the run code can special-case it (it has no arena
// slot: forward points it at the caller's images).
int nas_net_input(nas_net *net) {
    if (net->n_nodes > 0) return 0;
    if (net->compiled) return NAS_ESTATE;
    nas__node nd = node_of(NAS__OP_INPUT, -1, net->in_shape);
    return add_node(net, &nd);
}

// Convolutions validate their geometry with the kernel's own shape check, so a genome asking
// for an impossible conv gets the same message the kernel would give, prefixed by its path.
// MACs count multiply-accumulates per image, bias excluded, as the genome's cost model does.
int nas_net_conv(nas_net *net, const char *path, int x, int out_c, int kh, int kw, int stride,
                 int pad, int dilation, int groups, int bias) {
    return nas_net_conv_hw(net, path, x, out_c, kh, kw, stride, pad, pad, dilation, groups, bias);
}

int nas_net_conv_hw(nas_net *net, const char *path, int x, int out_c, int kh, int kw, int stride,
                    int pad_h, int pad_w, int dilation, int groups, int bias) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    if ((rc = check_path(net, path)) < 0) return rc;
    nas_shape in = net->nodes[x].shape;
    nas_conv_shape cs;
    char err[NAS_ERR_LEN];
    if (nas_conv_shape_init_hw(&cs, 1, in.c, in.h, in.w, out_c, kh, kw, stride, pad_h, pad_w,
                               dilation, groups, err) < 0)
        return fail_build(net, NAS_EINVAL, "%s: %s", path, err);
    nas__node nd = node_of(NAS__OP_CONV, x, (nas_shape){out_c, cs.oh, cs.ow});
    nd.cs = cs;
    int wshape[4] = {out_c, in.c / groups, kh, kw};
    if ((nd.p[0] = add_param(net, path, "weight", 4, wshape, 1)) < 0) return nd.p[0];
    if (bias && (nd.p[1] = add_param(net, path, "bias", 1, &out_c, 1)) < 0) return nd.p[1];
    *(net->train_only ? &net->macs_train_only : &net->macs) +=
        (int64_t)out_c * cs.oh * cs.ow * (in.c / groups) * kh * kw;
    return add_node(net, &nd);
}

// Batch norm owns four tensors: the affine weight and bias are trained, the running
// statistics are buffers that travel with the weights but are never decayed or updated by SGD.
int nas_net_bn(nas_net *net, const char *path, int x) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    if ((rc = check_path(net, path)) < 0) return rc;
    nas__node nd = node_of(NAS__OP_BN, x, net->nodes[x].shape);
    int c = nd.shape.c;
    if ((nd.p[0] = add_param(net, path, "weight", 1, &c, 1)) < 0) return nd.p[0];
    if ((nd.p[1] = add_param(net, path, "bias", 1, &c, 1)) < 0) return nd.p[1];
    if ((nd.p[2] = add_param(net, path, "running_mean", 1, &c, 0)) < 0) return nd.p[2];
    if ((nd.p[3] = add_param(net, path, "running_var", 1, &c, 0)) < 0) return nd.p[3];
    return add_node(net, &nd);
}

int nas_net_relu(nas_net *net, int x) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    nas__node nd = node_of(NAS__OP_RELU, x, net->nodes[x].shape);
    return add_node(net, &nd);
}

// Only equal shapes may be added: cells that need a resize do it explicitly (factorized reduce
// or a strided conv), so a shape bug in a builder surfaces here with both channel counts.
int nas_net_add(nas_net *net, int a, int b) {
    int ids[2] = {a, b};
    int rc = check_inputs(net, ids, 2);
    if (rc < 0) return rc;
    nas_shape sa = net->nodes[a].shape, sb = net->nodes[b].shape;
    if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)
        return fail_build(net, NAS_EINVAL, "add: shapes differ (%d channels vs %d, or sides)", sa.c, sb.c);
    nas__node nd = node_of(NAS__OP_ADD, a, sa);
    nd.in[1] = b;
    nd.n_in = 2;
    return add_node(net, &nd);
}

// The input list is copied, so the caller may pass a stack array.
int nas_net_concat(nas_net *net, const int *inputs, int n) {
    if (n < 1 || !inputs) return fail_build(net, NAS_EINVAL, "concat of %d inputs", n);
    int rc = check_inputs(net, inputs, n);
    if (rc < 0) return rc;
    nas_shape s = net->nodes[inputs[0]].shape;
    s.c = 0;
    for (int i = 0; i < n; i++) {
        nas_shape si = net->nodes[inputs[i]].shape;
        if (si.h != s.h || si.w != s.w)
            return fail_build(net, NAS_EINVAL, "concat: input %d has side %d differing from the first", i, si.h);
        s.c += si.c;
    }
    nas__node nd = node_of(NAS__OP_CONCAT, inputs[0], s);
    nd.cat = nas_malloc(sizeof(int) * (size_t)n);
    if (!nd.cat) return fail_build(net, NAS_ENOMEM, "out of memory in concat");
    memcpy(nd.cat, inputs, sizeof(int) * (size_t)n);
    nd.n_in = n;
    int id = add_node(net, &nd);
    if (id < 0) nas_free(nd.cat);
    return id;
}

// Padding must be smaller than the window, otherwise some windows would see only padding
// (max pooling would then emit -FLT_MAX, average pooling a 0 of nothing).
static int add_pool(nas_net *net, int op, int x, int k, int stride, int pad) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    nas_shape in = net->nodes[x].shape;
    if (k < 1 || stride < 1 || pad < 0 || pad >= k)
        return fail_build(net, NAS_EINVAL, "pool: bad window k=%d stride=%d", k, stride);
    int oh = nas_pool_out(in.h, k, stride, pad), ow = nas_pool_out(in.w, k, stride, pad);
    if (oh < 1 || ow < 1)
        return fail_build(net, NAS_EINVAL, "pool: window %d does not fit a side of %d", k, in.h < in.w ? in.h : in.w);
    nas__node nd = node_of(op, x, (nas_shape){in.c, oh, ow});
    nd.k = k, nd.stride = stride, nd.pad = pad;
    return add_node(net, &nd);
}

int nas_net_maxpool(nas_net *net, int x, int k, int stride, int pad) {
    return add_pool(net, NAS__OP_MAXPOOL, x, k, stride, pad);
}

int nas_net_avgpool(nas_net *net, int x, int k, int stride, int pad) {
    return add_pool(net, NAS__OP_AVGPOOL, x, k, stride, pad);
}

int nas_net_gap(nas_net *net, int x) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    nas__node nd = node_of(NAS__OP_GAP, x, (nas_shape){net->nodes[x].shape.c, 1, 1});
    return add_node(net, &nd);
}

// A linear layer flattens its input, so it may follow either GAP or a spatial node.
int nas_net_linear(nas_net *net, const char *path, int x, int out) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    if ((rc = check_path(net, path)) < 0) return rc;
    if (out < 1) return fail_build(net, NAS_EINVAL, "linear '%s': %d outputs", path, out);
    nas_shape in = net->nodes[x].shape;
    int n_in = in.c * in.h * in.w;
    nas__node nd = node_of(NAS__OP_LINEAR, x, (nas_shape){out, 1, 1});
    int wshape[2] = {out, n_in};
    if ((nd.p[0] = add_param(net, path, "weight", 2, wshape, 1)) < 0) return nd.p[0];
    if ((nd.p[1] = add_param(net, path, "bias", 1, &out, 1)) < 0) return nd.p[1];
    *(net->train_only ? &net->macs_train_only : &net->macs) += (int64_t)n_in * out;
    return add_node(net, &nd);
}

// Drop-path probability is not stored per node: the trainer ramps one value for the whole
// network each epoch (nas_net_set_drop_path), as DARTS does.
int nas_net_drop_path(nas_net *net, int x) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    nas__node nd = node_of(NAS__OP_DROP_PATH, x, net->nodes[x].shape);
    return add_node(net, &nd);
}

int nas_net_dropout(nas_net *net, int x, float p) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    if (!(p >= 0.0f && p < 1.0f))
        return fail_build(net, NAS_EINVAL, "dropout probability %g is outside [0, 1)", (double)p);
    nas__node nd = node_of(NAS__OP_DROPOUT, x, net->nodes[x].shape);
    nd.prob = p;
    return add_node(net, &nd);
}

// The auxiliary loss is a node on the trunk rather than a second output, so the planner, the
// threads and the backward order stay those of a single-output graph: the head is live because
// this node reads it, and its gradient is seeded when the backward pass reaches this node.
int nas_net_aux_loss(nas_net *net, int x, int logits, float weight) {
    int ids[2] = {x, logits};
    int rc = check_inputs(net, ids, 2);
    if (rc < 0) return rc;
    nas_shape ls = net->nodes[logits].shape;
    if (ls.h != 1 || ls.w != 1 || ls.c < 2)
        return fail_build(net, NAS_EINVAL, "auxiliary logits have shape %dx%dx%d, not (K,1,1)",
                          ls.c, ls.h, ls.w);
    if (!(weight > 0.0f && weight <= 10.0f))
        return fail_build(net, NAS_EINVAL, "auxiliary loss weight %g is outside (0, 10]",
                          (double)weight);
    nas__node nd = node_of(NAS__OP_AUX, x, net->nodes[x].shape);
    nd.in[1] = logits;
    nd.n_in = 2;
    nd.prob = weight;
    return add_node(net, &nd);
}

void nas_net_set_train_only(nas_net *net, int on) { net->train_only = on != 0; }

// x[:, :, 1:, 1:] padded with a zero last row and column: the second branch of a factorized
// reduce sees the pixels the first branch's stride-2 grid skips.
static int add_shift(nas_net *net, int x) {
    nas__node nd = node_of(NAS__OP_SHIFT, x, net->nodes[x].shape);
    return add_node(net, &nd);
}

// Built from primitive nodes (relu, two convs, shift, concat, bn) so that it needs no kernel of
// its own and its gradient is checked through theirs.
int nas_net_factorized_reduce(nas_net *net, const char *path, int x, int out_c) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    if ((rc = check_path(net, path)) < 0) return rc;
    if (out_c < 2)
        return fail_build(net, NAS_EINVAL, "factorized reduce '%s': out_c=%d must be >= 2", path, out_c);
    char sub[NAS_NET_MAX_PATH + 16];
    int r = nas_net_relu(net, x);
    snprintf(sub, sizeof sub, "%s/conv1", path);
    int a = nas_net_conv(net, sub, r, out_c / 2, 1, 1, 2, 0, 1, 1, 0);
    int s = r >= 0 ? add_shift(net, r) : r;
    snprintf(sub, sizeof sub, "%s/conv2", path);
    int b = nas_net_conv(net, sub, s, out_c - out_c / 2, 1, 1, 2, 0, 1, 1, 0);
    int ab[2] = {a, b};
    int cat = nas_net_concat(net, ab, 2);
    snprintf(sub, sizeof sub, "%s/bn", path);
    return nas_net_bn(net, sub, cat);
}

// The zero op keeps its input as an (unused) dependency so that liveness and shapes stay
// simple; no gradient flows back through it.
int nas_net_zero(nas_net *net, int x, int stride) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    if (stride < 1) return fail_build(net, NAS_EINVAL, "zero: stride %d", stride);
    nas_shape in = net->nodes[x].shape;
    nas_shape s = {in.c, (in.h + stride - 1) / stride, (in.w + stride - 1) / stride};
    nas__node nd = node_of(NAS__OP_ZERO, x, s);
    return add_node(net, &nd);
}

static int add_unary(nas_net *net, int op, int x) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    nas__node nd = node_of(op, x, net->nodes[x].shape);
    return add_node(net, &nd);
}

int nas_net_silu(nas_net *net, int x) { return add_unary(net, NAS__OP_SILU, x); }
int nas_net_sigmoid(nas_net *net, int x) { return add_unary(net, NAS__OP_SIGMOID, x); }

// The gate is per image (it comes from that image's own pooled features), so the op is
// image by image like every other non-serial op and splits over threads unchanged.
int nas_net_scale(nas_net *net, int x, int gate) {
    int ids[2] = {x, gate};
    int rc = check_inputs(net, ids, 2);
    if (rc < 0) return rc;
    nas_shape sx = net->nodes[x].shape, sg = net->nodes[gate].shape;
    if (sg.c != sx.c || sg.h != 1 || sg.w != 1)
        return fail_build(net, NAS_EINVAL, "scale: gate is %dx%dx%d, not (%d,1,1)", sg.c, sg.h,
                          sg.w, sx.c);
    nas__node nd = node_of(NAS__OP_SCALE, x, sx);
    nd.in[1] = gate;
    nd.n_in = 2;
    return add_node(net, &nd);
}

// Built from the primitives, so threads, fusion and export need nothing new; the two 1x1
// convs on a 1x1 map are the paper's two fully connected layers.
int nas_net_se(nas_net *net, const char *path, int x, int mid_c) {
    int rc = check_inputs(net, &x, 1);
    if (rc < 0) return rc;
    if ((rc = check_path(net, path)) < 0) return rc;
    if (mid_c < 1) return fail_build(net, NAS_EINVAL, "%s: squeeze to %d channels", path, mid_c);
    char p[NAS_NET_MAX_PATH + 16];
    int c = net->nodes[x].shape.c;
    int g = nas_net_gap(net, x);
    snprintf(p, sizeof p, "%s/reduce", path);
    g = nas_net_silu(net, nas_net_conv(net, p, g, mid_c, 1, 1, 1, 0, 1, 1, 1));
    snprintf(p, sizeof p, "%s/expand", path);
    g = nas_net_sigmoid(net, nas_net_conv(net, p, g, c, 1, 1, 1, 0, 1, 1, 1));
    return nas_net_scale(net, x, g);
}

nas_shape nas_net_shape(const nas_net *net, int node) {
    if (node < 0 || node >= net->n_nodes) return (nas_shape){0, 0, 0};
    return net->nodes[node].shape;
}

int nas_net_node_count(const nas_net *net) { return net->n_nodes; }

// ----------------------------------------------------------------------------
// parameters

int nas_net_param_n(const nas_net *net) { return net->n_params; }

const nas_param *nas_net_param(const nas_net *net, int i) {
    NAS_ASSERT(i >= 0 && i < net->n_params);
    return &net->params[i];
}

// Linear search: nets have at most a few hundred tensors and lookups happen at load time only.
const nas_param *nas_net_param_find(const nas_net *net, const char *name) {
    for (int i = 0; i < net->n_params; i++)
        if (strcmp(net->params[i].name, name) == 0) return &net->params[i];
    return NULL;
}

float *nas_net_params_data(nas_net *net, size_t *n_trainable, size_t *n_total) {
    if (n_trainable) *n_trainable = net->n_trainable;
    if (n_total) *n_total = net->n_total;
    return net->param_block;
}

float *nas_net_grads_data(nas_net *net) { return net->grad_block; }
float *nas_net_optim_state(nas_net *net) { return net->optim_block; }

int64_t nas_net_param_count(const nas_net *net) {
    int64_t n = 0;
    for (int i = 0; i < net->n_params; i++)
        if (net->params[i].trainable && !net->params[i].train_only)
            n += (int64_t)net->params[i].size;
    return n;
}

int64_t nas_net_macs(const nas_net *net) { return net->macs; }
int nas_net_batch(const nas_net *net) { return net->compiled ? net->batch : 0; }
int nas_net_classes(const nas_net *net) { return net->compiled ? net->nodes[net->output].shape.c : 0; }
void nas_net_set_drop_path(nas_net *net, float p) { net->drop_path = p; }

// Initialisation walks nodes rather than tensors so that each layer can apply its own rule;
// the draw order (node order, then element order) is part of the reproducibility contract.
void nas_net_init_params(nas_net *net, nas_rng *rng) {
    NAS_ASSERT(net->compiled);
    for (int i = 0; i < net->n_nodes; i++) {
        nas__node *nd = &net->nodes[i];
        if (nd->op == NAS__OP_CONV || nd->op == NAS__OP_LINEAR) {
            nas_param *w = &net->params[nd->p[0]];
            // He-normal: fan_in is everything but the output dimension.
            double fan_in = (double)w->size / w->shape[0];
            float std = (float)sqrt(2.0 / fan_in);
            for (size_t j = 0; j < w->size; j++) w->data[j] = std * nas_rng_normal(rng);
            if (nd->p[1] >= 0) memset(net->params[nd->p[1]].data, 0, sizeof(float) * net->params[nd->p[1]].size);
        } else if (nd->op == NAS__OP_BN) {
            for (int k = 0; k < 4; k++) {
                nas_param *p = &net->params[nd->p[k]];
                float v = (k == 0 || k == 3) ? 1.0f : 0.0f; /* weight and running_var start at 1 */
                for (size_t j = 0; j < p->size; j++) p->data[j] = v;
            }
        }
    }
    memset(net->optim_block, 0, sizeof(float) * net->n_trainable);
    memset(net->grad_block, 0, sizeof(float) * net->n_trainable);
}
