/*
 * net.h - the network graph: build a DAG of layers, compile it once for a
 * batch size, then run forward/backward over flat, preallocated memory.
 *
 * A builder (common/refnets.c, common/builder.c for genomes) adds nodes in
 * topological order.  Every builder call takes node ids returned by earlier
 * calls and returns the new node's id (>= 0), or a negative nas_err.  Errors
 * are sticky: a call given a negative id returns that id unchanged, and the
 * first error's message is kept (nas_net_errmsg()), so a builder may chain
 * many calls and check once, at nas_net_compile().
 *
 * Every node knows its output shape (C,H,W) per image (nas_net_shape()).
 * Parameters are named by stable paths: a conv at "cell3/block1/a/pw" owns
 * "cell3/block1/a/pw/weight" (OC, C/groups, KH, KW) and, with bias,
 * ".../bias" (OC); a batch norm owns ".../weight", ".../bias" (C) and the
 * non-trainable buffers ".../running_mean", ".../running_var" (C); a linear
 * layer owns ".../weight" (OUT, IN) and ".../bias" (OUT).  The weight store
 * transfers tensors by (name, shape).
 *
 * Memory after nas_net_compile(): one 64-byte aligned block holds every
 * parameter (trainable ones first, then buffers), one holds the gradients
 * with the same layout, one the optimizer state (momentum) alike, one arena
 * the activations (and their gradients) for the compiled batch, and one
 * im2col scratch workspace is shared by all convolutions.  Nothing is
 * allocated per step.
 *
 * Layout is NCHW float32.  Gradients accumulate with += and are zeroed once
 * per step by nas_net_zero_grad().  A net is not thread-safe; one trainer
 * thread owns it.
 */
#ifndef NAS_NET_H
#define NAS_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/rng.h"

typedef struct nas_net nas_net;

/* Output shape of one node, per image. */
typedef struct nas_shape {
    int c; /* channels */
    int h; /* height */
    int w; /* width */
} nas_shape;

/* One named tensor of the parameter block (a parameter or a buffer). */
typedef struct nas_param {
    const char *name; /* stable path, e.g. "stem/conv/weight"; owned by the net */
    int ndim;         /* 1, 2 or 4 */
    int shape[4];     /* sizes of the first ndim dimensions */
    size_t size;      /* number of floats */
    size_t offset;    /* offset in floats into the parameter block */
    float *data;      /* points into the parameter block (NULL before compile) */
    float *grad;      /* same offset in the gradient block (NULL for buffers) */
    int trainable;    /* 0 for batch-norm running statistics */
    int train_only;   /* 1 for an auxiliary head's tensors: trained, not deployed */
} nas_param;

// ----------------------------------------------------------------------------
// lifecycle

/* Create an empty net whose input images are (in_c, in_h, in_w).  Returns
 * NAS_OK, or NAS_EINVAL for non-positive sizes, NAS_ENOMEM. */
int nas_net_create(nas_net **out, int in_c, int in_h, int in_w, char *err);

/* Free a net and everything it allocated; accepts NULL and nulls *np. */
void nas_net_destroy(nas_net **np);

/* Message of the first builder error ("" when none). */
const char *nas_net_errmsg(const nas_net *net);

// ----------------------------------------------------------------------------
// builder: every call returns a node id >= 0 or a negative nas_err

/* The input node (always id 0; calling it again returns 0). */
int nas_net_input(nas_net *net);

/* 2-D convolution of x.  Output side = (side + 2*pad - dilation*(k-1) - 1) /
 * stride + 1.  groups must divide both channel counts.  He-initialised. */
int nas_net_conv(nas_net *net, const char *path, int x, int out_c, int kh, int kw, int stride,
                 int pad, int dilation, int groups, int bias);
/* The same with its own padding of rows (pad_h) and of columns (pad_w), e.g. (0, 3) for a 1x7
 * conv that keeps the side. */
int nas_net_conv_hw(nas_net *net, const char *path, int x, int out_c, int kh, int kw, int stride,
                    int pad_h, int pad_w, int dilation, int groups, int bias);

/* Batch normalisation over (N,H,W) per channel, affine, eps 1e-5, running
 * statistics updated with momentum 0.1 in training mode. */
int nas_net_bn(nas_net *net, const char *path, int x);

int nas_net_relu(nas_net *net, int x);

/* Elementwise sum of two nodes of equal shape. */
int nas_net_add(nas_net *net, int a, int b);

/* Concatenation along channels of n >= 1 nodes of equal H and W. */
int nas_net_concat(nas_net *net, const int *inputs, int n);

/* k x k pooling.  Average pooling does not count padding in the divisor. */
int nas_net_maxpool(nas_net *net, int x, int k, int stride, int pad);
int nas_net_avgpool(nas_net *net, int x, int k, int stride, int pad);

/* Global average pooling: (C,H,W) -> (C,1,1). */
int nas_net_gap(nas_net *net, int x);

/* Fully connected layer on the flattened node: (C*H*W) -> (out,1,1). */
int nas_net_linear(nas_net *net, const char *path, int x, int out);

/* Drop-path (per-sample, whole-branch dropout): in training each image's
 * branch is zeroed with probability p and scaled by 1/(1-p) otherwise; the
 * identity in eval mode.  p is set per step by nas_net_set_drop_path(). */
int nas_net_drop_path(nas_net *net, int x);

/* Element dropout with a fixed probability p in [0, 1). */
int nas_net_dropout(nas_net *net, int x, float p);

/* DARTS' factorized reduce: ReLU, then two 1x1 stride-2 convs producing
 * out_c/2 and out_c - out_c/2 channels, the second on the input shifted by
 * one pixel (x[:, :, 1:, 1:], zero-padded), concatenated, then BN.  The
 * parameters live under path + "/conv1", "/conv2", "/bn". */
int nas_net_factorized_reduce(nas_net *net, const char *path, int x, int out_c);

/* An auxiliary head's loss (Szegedy et al. 2015; DARTS): returns a node that passes x
 * through unchanged, while in training nas_net_loss adds weight * softmax cross-entropy of
 * `logits` (a (K,1,1) node computed from x by the head) to the loss's gradient, with the same
 * labels and smoothing.  The head's own layers should be built between
 * nas_net_set_train_only(net, 1) and (net, 0). */
int nas_net_aux_loss(nas_net *net, int x, int logits, float weight);

/* While on, added parameters are marked train_only and their MACs are kept apart: an
 * auxiliary head is trained but not part of the deployed network, so nas_net_param_count()
 * and nas_net_macs() leave it out. */
void nas_net_set_train_only(nas_net *net, int on);

/* The zero operation: zeros of x's channels at side ceil(side/stride). */
int nas_net_zero(nas_net *net, int x, int stride);

/* SiLU (swish), x * sigmoid(x), and the logistic sigmoid (common/act.h). */
int nas_net_silu(nas_net *net, int x);
int nas_net_sigmoid(nas_net *net, int x);

/* Channel scale: x (C,H,W) times gate (C,1,1), per image and channel. */
int nas_net_scale(nas_net *net, int x, int gate);

/* Squeeze-and-excitation (Hu et al.; EfficientNet's form): GAP, 1x1 conv to
 * mid_c with bias ("path/reduce"), SiLU, 1x1 conv back to C with bias
 * ("path/expand"), sigmoid, and x scaled by that gate. */
int nas_net_se(nas_net *net, const char *path, int x, int mid_c);

/* Shape of a node's output; {0,0,0} for an invalid id. */
nas_shape nas_net_shape(const nas_net *net, int node);

/* Number of nodes added so far. */
int nas_net_node_count(const nas_net *net);

// ----------------------------------------------------------------------------
// compile and run

/* Freeze the graph with `output` as the logits node (its shape must be
 * (K,1,1), K >= 2) and allocate all memory for batches of up to `batch`
 * images.  Returns the first builder error if there was one, NAS_ENOMEM,
 * or NAS_ESTATE if already compiled.  Parameters start He-initialised from
 * a fixed seed; call nas_net_init_params() to choose the seed. */
int nas_net_compile(nas_net *net, int output, int batch, char *err);

/* (Re)initialise every parameter: conv and linear weights He-normal
 * (fan-in, gain sqrt(2)), biases 0, BN weight 1 / bias 0, running mean 0 /
 * var 1.  Optimizer state is zeroed. */
void nas_net_init_params(nas_net *net, nas_rng *rng);

/* Compute threads for forward/backward of a compiled net (>= 1; default 1).  With more than
 * one, the net splits each batch's images over its own worker threads and
 * keeps OpenBLAS single-threaded, so BLAS threads never nest inside ours.
 * Results are bit-identical for a given thread count.  Returns NAS_OK or
 * NAS_ENOMEM / NAS_EIO when threads cannot be started (the net then stays
 * single-threaded). */
int nas_net_set_threads(nas_net *net, int threads, char *err);

/* Set the drop-path probability used by every drop-path node. */
void nas_net_set_drop_path(nas_net *net, float p);

/* Forward pass over n <= batch images x (n, C, H, W).  train != 0 uses
 * batch statistics (and updates running ones), dropout and drop-path
 * (drawing from rng, which may be NULL in eval mode).  Returns a pointer to
 * the logits (n, K), valid until the next forward. */
const float *nas_net_forward(nas_net *net, const float *x, int n, int train, nas_rng *rng);

/* Softmax cross-entropy of the last forward's logits against labels
 * (n values in [0, K)); mean over n, with label smoothing eps.  Also seeds
 * the backward pass with d(loss)/d(logits).  correct (may be NULL) receives
 * the number of arg-max hits. */
float nas_net_loss(nas_net *net, const uint8_t *labels, int n, float smoothing, int *correct);

/* The weighted auxiliary losses of the last nas_net_loss() (0 without an auxiliary head),
 * which its return value leaves out; their gradients flow in nas_net_backward(), which reads
 * the labels given to nas_net_loss(), so they must stay valid until then. */
float nas_net_aux_loss_value(const nas_net *net);

/* Backward pass of the last training forward; accumulates (+=) into the
 * parameter gradients.  Call after nas_net_loss(). */
void nas_net_backward(nas_net *net);

/* Zero every parameter gradient. */
void nas_net_zero_grad(nas_net *net);

// ----------------------------------------------------------------------------
// parameters and cost

/* Number of named tensors (parameters and buffers); nas_net_param(net, i)
 * for i in [0, n) describes each, in creation order. */
int nas_net_param_n(const nas_net *net);
const nas_param *nas_net_param(const nas_net *net, int i);

/* Find a tensor by name; NULL if absent. */
const nas_param *nas_net_param_find(const nas_net *net, const char *name);

/* The flat blocks (valid after compile): parameters (n_total floats, the
 * first n_trainable trainable), gradients and optimizer state (n_trainable
 * floats each). */
float *nas_net_params_data(nas_net *net, size_t *n_trainable, size_t *n_total);
float *nas_net_grads_data(nas_net *net);
float *nas_net_optim_state(nas_net *net);

/* Trainable parameter count (buffers and auxiliary heads excluded), known before compile. */
int64_t nas_net_param_count(const nas_net *net);

/* Multiply-accumulates per image of every conv and linear layer (auxiliary heads excluded). */
int64_t nas_net_macs(const nas_net *net);

/* The compiled batch size, or 0 before compile. */
int nas_net_batch(const nas_net *net);

/* Number of logits K of the output node (after compile). */
int nas_net_classes(const nas_net *net);

// ----------------------------------------------------------------------------
// weights on disk (safetensors, common/net_weights.c)

/* Write every named tensor (parameters and buffers) of a compiled net to
 * `path` as safetensors, atomically; metadata `arch` (may be NULL) is
 * stored under "arch".  Returns NAS_OK or the safetensors error. */
int nas_net_save(const nas_net *net, const char *path, const char *arch, char *err);

/* Load every named tensor of a compiled net from a safetensors file.  Each
 * must be present with the same shape (err names the first that is missing
 * or differs: NAS_ENOTFOUND / NAS_EFORMAT); tensors the net does not have
 * are ignored.  On failure the net's weights are unchanged. */
int nas_net_load(nas_net *net, const char *path, char *err);

// ----------------------------------------------------------------------------
// the graph for other tools (common/net_graph.c)

/* The compiled net's live nodes as JSON, for rebuilding it outside nasd:
 * {"input":[C,H,W],"output":ID,"nodes":[{"id":..,"op":"conv","in":[..],
 * "shape":[C,H,W],"weight":PATH,"bias":PATH|null,"kernel":[KH,KW],...},..]}
 * (docs/EXPORT.md lists every op and attribute).  Malloc'd (nas_free);
 * NULL before compile, when out of memory, or for a node op the graph
 * format does not describe. */
char *nas_net_graph_json(const nas_net *net);

#endif
