/*
 * net_compile.c - compiling a network built with net.c's calls: which nodes are live, the
 * BN+ReLU and ReLU+depthwise fusions, the memory plan that net.c's header describes
 * (activations, the gradient arena's best-fit plan, the kernels' workspace), and the scratch of
 * each thread a net runs on.
 */
#include "common/net.h"

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/gemm.h"
#include "common/net_internal.h"
#include "common/sysmem.h"

// Round a float count up so every buffer starts 64-byte aligned.
static size_t pad16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

// Best-fit allocator over the gradient arena, used only while planning.
typedef struct plan_block {
    size_t off, size;
} plan_block;

typedef struct planner {
    plan_block *free_list;
    int n_free;
    size_t top;
} planner;

// Best fit with splitting, and coalescing on release, keeps the arena small: gradients grow
// toward the input in backward order, so a request often fits only in freed neighbours merged
// together, or in a freed block at the top extended upward.
static size_t plan_take(planner *pl, size_t size) {
    int best = -1;
    for (int i = 0; i < pl->n_free; i++)
        if (pl->free_list[i].size >= size &&
            (best < 0 || pl->free_list[i].size < pl->free_list[best].size))
            best = i;
    if (best < 0) {
        // A free block touching the top grows instead of leaving a hole below new space.
        for (int i = 0; i < pl->n_free; i++)
            if (pl->free_list[i].off + pl->free_list[i].size == pl->top) {
                pl->top += size - pl->free_list[i].size;
                pl->free_list[i].size = size;
                best = i;
                break;
            }
    }
    if (best >= 0) {
        plan_block *blk = &pl->free_list[best];
        size_t off = blk->off;
        if (blk->size > size) {
            blk->off += size, blk->size -= size; /* keep the remainder free */
        } else {
            *blk = pl->free_list[--pl->n_free];
        }
        return off;
    }
    size_t off = pl->top;
    pl->top += size;
    return off;
}

// Return a block, merging it with free neighbours on either side.
static void plan_give(planner *pl, size_t off, size_t size) {
    for (int i = 0; i < pl->n_free;) {
        plan_block *blk = &pl->free_list[i];
        if (blk->off + blk->size == off || off + size == blk->off) {
            if (blk->off < off) off = blk->off;
            size += blk->size;
            *blk = pl->free_list[--pl->n_free];
            continue; /* re-examine the block moved into slot i */
        }
        i++;
    }
    pl->free_list[pl->n_free++] = (plan_block){off, size};
}

// Floats of one node's output (or gradient) for the compiled batch, padded for alignment.
static size_t node_floats(const nas_net *net, const nas__node *nd) {
    return pad16((size_t)net->batch * nd->shape.c * nd->shape.h * nd->shape.w);
}

// Floats of the per-node side data the backward pass needs: BN's batch mean and 1/std, and
// the masks dropout and drop-path drew in forward.
static size_t aux_floats(const nas_net *net, const nas__node *nd) {
    switch (nd->op) {
    case NAS__OP_BN:
        return pad16(2 * (size_t)nd->shape.c);
    case NAS__OP_DROPOUT:
        return node_floats(net, nd);
    case NAS__OP_DROP_PATH:
        return pad16((size_t)net->batch);
    default:
        return 0;
    }
}

// Floats of scratch a node's kernels take from its member's workspace: a conv's im2col columns
// or depthwise planes, a pool's padded planes (planned once here instead of allocated per call).
static size_t node_workspace(const nas_net *net, const nas__node *nd) {
    if (nd->op == NAS__OP_CONV) return nas_conv_workspace(&nd->cs);
    if (nd->op != NAS__OP_MAXPOOL && nd->op != NAS__OP_AVGPOOL) return 0;
    nas_shape in = net->nodes[nas__input(nd, 0)].shape;
    return nas_pool_workspace(in.h, in.w, nd->k, nd->stride, nd->pad);
}

// Mark the nodes the output depends on; others are neither run nor differentiated.
static void mark_live(nas_net *net) {
    net->nodes[net->output].live = 1;
    for (int i = net->output; i >= 0; i--) {
        nas__node *nd = &net->nodes[i];
        if (!nd->live) continue;
        for (int k = 0; k < nd->n_in; k++)
            net->nodes[nas__input(nd, k)].live = 1;
    }
}

// How many live nodes read each node (nas_calloc'd; NULL when out of memory).
static int *count_uses(const nas_net *net) {
    int *uses = nas_calloc((size_t)net->n_nodes, sizeof(int));
    if (!uses) return NULL;
    for (int i = 0; i <= net->output; i++) {
        const nas__node *nd = &net->nodes[i];
        if (!nd->live) continue;
        for (int k = 0; k < nd->n_in; k++)
            uses[nas__input(nd, k)]++;
    }
    return uses;
}

// Fuse each ReLU into the batch norm or add feeding it when that ReLU is its only consumer:
// the producer then writes max(y, 0) into its own slot, the ReLU aliases that slot and its
// gradient, and the producer's backward applies the mask.  This removes a full pass over the
// tensor each way (conv-BN-ReLU stacks, and residual add-ReLU).
static void fuse_bn_relu(nas_net *net) {
    int *uses = count_uses(net);
    if (!uses) return; /* fusion is an optimisation only */
    for (int i = 1; i <= net->output; i++) {
        nas__node *nd = &net->nodes[i];
        if (!nd->live || nd->op != NAS__OP_RELU) continue;
        nas__node *bn = &net->nodes[nd->in[0]];
        if ((bn->op != NAS__OP_BN && bn->op != NAS__OP_ADD) || uses[nd->in[0]] != 1) continue;
        bn->fused = 1;
        nd->fused = 1;
    }
    nas_free(uses);
}

// Fuse each ReLU whose only reader is a depthwise conv (the ReLU -> depthwise head of every
// separable and dilated conv of the cell space, whose input is a cell state with several
// readers, so no producer can take the ReLU) into that conv: it reads the ReLU's input through
// max(x, 0) while it copies its planes and masks the input gradient it writes, so neither the
// ReLU's output nor its gradient is ever written.  The ReLU stays in the graph (net_graph.c
// lists it); the conv is rewired to its input, which the memory plan then follows.  With one
// reader the input's gradient receives the same sums in the same order as unfused, so the
// results are the same bits (a ReLU read by two convs would add their gradients in another
// order, and stays a pass of its own).
static void fuse_relu_dw(nas_net *net) {
    int *uses = count_uses(net);
    if (!uses) return; /* fusion is an optimisation only */
    for (int i = 1; i <= net->output; i++) {
        nas__node *nd = &net->nodes[i];
        const nas_conv_shape *cs = &nd->cs;
        if (!nd->live || nd->op != NAS__OP_CONV || cs->groups != cs->c || cs->oc != cs->c ||
            cs->groups < 2)
            continue;
        nas__node *r = &net->nodes[nd->in[0]];
        if (r->op != NAS__OP_RELU || r->fused || uses[nd->in[0]] != 1) continue;
        r->fused = 2;
        nd->relu_node = nd->in[0];
        nd->in[0] = r->in[0];
        nd->cs.relu = 1;
    }
    nas_free(uses);
}

// Apply each training or inference BN whose only reader is an add (the cells' separable convs
// and the micro-net's blocks end BN -> add) in that add: the add reads the BN's input and
// computes x * scale + shift on the way, with the coefficients the BN left in its member's
// scratch, so the BN's output is neither written nor read (a pass over the tensor each way
// less) and gets no activation slot.  The BN's backward reads its input and output gradient
// only, so it is unchanged.  The add computes the BN's expression then its own, so the results
// are the same bits (test_net compares with no_fusion).  A BN+ReLU keeps its pass: its output is
// its backward's mask.
static void fuse_bn_add(nas_net *net) {
    int *uses = count_uses(net);
    if (!uses) return; /* fusion is an optimisation only */
    for (int i = 1; i <= net->output; i++) {
        nas__node *nd = &net->nodes[i];
        if (!nd->live || nd->op != NAS__OP_ADD) continue;
        for (int k = 0; k < 2; k++) {
            nas__node *bn = &net->nodes[nd->in[k]];
            if (bn->op != NAS__OP_BN || bn->fused || uses[nd->in[k]] != 1) continue;
            bn->bn_into = i;
            nd->bn_in |= 1 << k;
        }
    }
    nas_free(uses);
}

// Sum the terms of an add read only by another add in the outer add's pass: a cell's three
// branches, the micro-net's BN + max-pool + average pool, become one pass that reads three
// tensors and writes one, instead of two that read two and write one each.  The outer add
// computes (inner's terms) + its other input, the order of the two adds, so the bits are the
// same.  The inner add writes no output (its backward, which hands its gradient over, reads
// none) and gets no activation slot.  One inner add per add, which absorbs none itself, and
// none with a fused ReLU.
static void fuse_add_add(nas_net *net) {
    int *uses = count_uses(net);
    if (!uses) return; /* fusion is an optimisation only */
    for (int i = 1; i <= net->output; i++) {
        nas__node *nd = &net->nodes[i];
        if (!nd->live || nd->op != NAS__OP_ADD || nd->add_into) continue;
        for (int k = 0; k < 2 && !nd->add_in; k++) {
            nas__node *in = &net->nodes[nd->in[k]];
            if (in->op != NAS__OP_ADD || in->fused || in->add_in || uses[nd->in[k]] != 1) continue;
            in->add_into = i;
            nd->add_in = 1 + k;
        }
    }
    nas_free(uses);
}

// An add read only by a concat (a cell's block outputs) writes its output straight into its
// part of the concat's slot, which the concat then does not copy: a pass over the tensor less
// forward, and no slot of the add's own.  The same floats land in the same places, so the same
// bits.  Not an add with a fused ReLU (its backward reads its output in its own layout), nor
// one an add absorbs.
static void fuse_add_cat(nas_net *net) {
    int *uses = count_uses(net);
    if (!uses) return; /* fusion is an optimisation only */
    for (int i = 1; i <= net->output; i++) {
        nas__node *nd = &net->nodes[i];
        if (!nd->live || nd->op != NAS__OP_CONCAT) continue;
        long off = 0;
        for (int k = 0; k < nd->n_in; k++) {
            int id = nas__input(nd, k);
            nas__node *in = &net->nodes[id];
            if (in->op == NAS__OP_ADD && !in->fused && !in->add_into && uses[id] == 1)
                in->cat_into = i, in->cat_off = off;
            off += (long)in->shape.c * in->shape.h * in->shape.w;
        }
    }
    nas_free(uses);
}

// An add's input gradients are its output gradient, and no step reads the add's gradient after
// the add's own, so its inputs whose gradient it writes first take its gradient buffer over
// instead of each getting a copy (a read and a write of the tensor per input): every such input
// that no other step writes (one reader: this add) shares the buffer, which is then only read;
// failing those, one input alone takes it, when no one else holds it, and its other readers add
// into it.  The buffer is given back when its last holder has run (plan_grads counts them).
// The same floats reach the same places, so the results are the same bits (test_net compares
// with no_fusion).  A fused add+ReLU keeps the copy (it would mask in place a buffer others may
// share), as do add(x, x), which adds twice into one buffer, and the network input.
static int add_hands_over(const nas_net *net, const nas__node *nd) {
    return !net->no_fusion && nd->op == NAS__OP_ADD && !nd->fused && nd->in[0] != nd->in[1];
}

// Assign gradient buffers by simulating the backward order, phase after phase (see the file
// comment and nas__net_plan_backward): a node's inputs' buffers are taken at the first step that
// writes them (a BN's input gradient at its second half), its own is given back after its last
// reader (a BN: its second half).
static int plan_grads(nas_net *net) {
    // Free blocks are disjoint and non-adjacent, so there are fewer than live gradients + 1;
    // twice the node count bounds that with room to spare.
    planner pl = {nas_calloc(2 * (size_t)net->n_nodes + 2, sizeof(plan_block)), 0, 0};
    if (!pl.free_list) return NAS_ENOMEM;
    nas__net_plan_backward(net);
    for (int i = 0; i < net->n_nodes; i++)
        net->nodes[i].grad_off = SIZE_MAX;
    // Holders of each block: root[i] names the node whose refs[] counts the holders of node i's
    // block (see add_hands_over).
    int *uses = count_uses(net), *root = nas_calloc((size_t)net->n_nodes, sizeof(int));
    int *refs = nas_calloc((size_t)net->n_nodes, sizeof(int));
    if (!uses || !root || !refs) {
        nas_free(pl.free_list), nas_free(uses), nas_free(root), nas_free(refs);
        return NAS_ENOMEM;
    }
    nas__node *out = &net->nodes[net->output];
    out->grad_off = plan_take(&pl, node_floats(net, out));
    out->zero_at = -1; /* the loss overwrites it */
    root[net->output] = net->output, refs[net->output] = 1;
    for (int ph = 0; ph <= net->bwd_last; ph++)
        for (int j = net->output; j > 0; j--) {
            nas__node *nd = &net->nodes[j];
            int ev = nas__bwd_event(nd, ph);
            if (ev == NAS__BWD_NONE || ev == NAS__BWD_SUMS) continue;
            if (ev == NAS__BWD_ALIAS) {
                // The BN inherits this gradient buffer and frees it at its own step.
                nas__node *bn = &net->nodes[nd->in[0]];
                bn->grad_off = nd->grad_off;
                bn->zero_at = -1;
                root[nd->in[0]] = root[j];
                continue;
            }
            int r = root[j], shared = 0;
            int hand = add_hands_over(net, nd);
            for (int pass = 0; pass < 2; pass++) /* read-only sharers, then one sole taker */
                for (int k = 0; k < nd->n_in && hand; k++) {
                    int id = nas__input(nd, k);
                    nas__node *in = &net->nodes[id];
                    if (in->grad_off != SIZE_MAX || id == 0) continue;
                    if (pass == 0 ? uses[id] != 1 : shared || refs[r] != 1) continue;
                    in->grad_off = nd->grad_off, in->zero_at = j;
                    root[id] = r, refs[r]++, shared++;
                }
            for (int k = 0; k < nd->n_in; k++) {
                int id = nas__input(nd, k);
                nas__node *in = &net->nodes[id];
                if (in->grad_off != SIZE_MAX) continue;
                in->grad_off = plan_take(&pl, node_floats(net, in));
                in->zero_at = j;
                root[id] = id, refs[id] = 1;
            }
            if (--refs[r] == 0) plan_give(&pl, nd->grad_off, node_floats(net, nd));
        }
    net->grad_arena_floats = pl.top;
    nas_free(pl.free_list), nas_free(uses), nas_free(root), nas_free(refs);
    return NAS_OK;
}

// Compile validates the output, decides what is live and what fuses, lays out the parameter
// block (trainable prefix so the optimizer is one loop), sizes the arenas and allocates them
// once.  On failure the net stays uncompiled and nas_net_destroy() frees what was allocated.
int nas_net_compile(nas_net *net, int output, int batch, char *err) {
    if (net->err_code) return nas_set_err(err, net->err_code, "%s", net->errmsg);
    if (net->compiled) return nas_set_err(err, NAS_ESTATE, "net: already compiled");
    if (output < 0 || output >= net->n_nodes)
        return nas_set_err(err, NAS_EINVAL, "net: output node %d does not exist", output);
    nas_shape os = net->nodes[output].shape;
    if (os.h != 1 || os.w != 1 || os.c < 2)
        return nas_set_err(err, NAS_EINVAL,
                           "net: output node %d has shape %dx%dx%d, not (K,1,1) with K >= 2",
                           output, os.c, os.h, os.w);
    if (batch < 1) return nas_set_err(err, NAS_EINVAL, "net: batch %d must be >= 1", batch);
    net->output = output;
    net->batch = batch;
    mark_live(net);
    if (!net->no_fusion) {
        fuse_bn_relu(net);
        fuse_relu_dw(net);
        fuse_bn_add(net);
        fuse_add_add(net);
        fuse_add_cat(net);
    }

    // Parameter offsets: the trainable prefix, then buffers.
    size_t off = 0;
    for (int pass = 1; pass >= 0; pass--)
        for (int i = 0; i < net->n_params; i++)
            if (net->params[i].trainable == pass) {
                net->params[i].offset = off;
                off += net->params[i].size;
                if (pass == 1) net->n_trainable = off;
            }
    net->n_total = off;

    // Activations and auxiliaries: one slot per live node, no reuse (backward reads most of them).
    size_t act = 0, ws = 0;
    for (int i = 1; i < net->n_nodes; i++) {
        nas__node *nd = &net->nodes[i];
        if (!nd->live) continue;
        if (nd->op == NAS__OP_RELU && nd->fused) {
            // In place in the producer's slot; a ReLU fused into its convs has no output at all.
            nd->act_off = net->nodes[nd->in[0]].act_off;
            continue;
        }
        nd->act_off = act;
        // A BN or an add applied by its add, an add written into its concat: no output here.
        if (!nd->bn_into && !nd->add_into && !nd->cat_into) act += node_floats(net, nd);
        for (int k = 0; k < nd->n_in && nd->op == NAS__OP_CONCAT; k++)
            if (net->nodes[nas__input(nd, k)].cat_into == i)
                net->nodes[nas__input(nd, k)].act_off = nd->act_off; /* never read as is */
        for (int k = 0; k < 2 && nd->op == NAS__OP_ADD; k++)
            if ((nd->bn_in & (1 << k)) || nd->add_in == 1 + k)
                net->nodes[nd->in[k]].act_off = nd->act_off; /* never read */
        nd->aux_off = act;
        act += aux_floats(net, nd);
        if (node_workspace(net, nd) > ws) ws = node_workspace(net, nd);
    }
    int rc = plan_grads(net);
    if (rc < 0) return nas_set_err(err, rc, "net: out of memory planning gradients");
    net->act_floats = act;
    net->workspace_floats = ws;
    // Refuse a net the machine cannot hold before zeroing its arenas: past the limit the kernel
    // would kill the process halfway through, with no word of why.
    double floats = (double)net->n_total + 2.0 * (double)net->n_trainable + (double)act +
                    (double)net->grad_arena_floats + (double)ws;
    char who[64];
    snprintf(who, sizeof who, "net (batch %d)", batch);
    rc = nas_sysmem_check((uint64_t)(4.0 * floats), who,
                          "lower the batch, the image size, the channels or the cells", err);
    if (rc < 0) return rc;
    net->param_block = nas_aligned_alloc(sizeof(float) * (net->n_total + 1));
    net->grad_block = nas_aligned_alloc(sizeof(float) * (net->n_trainable + 1));
    net->optim_block = nas_aligned_alloc(sizeof(float) * (net->n_trainable + 1));
    net->act_arena = nas_aligned_alloc(sizeof(float) * (act + 1));
    net->grad_arena = nas_aligned_alloc(sizeof(float) * (net->grad_arena_floats + 1));
    net->workspace = nas_aligned_alloc(sizeof(float) * (ws + 1));
    // Training BN runs image-range kernels on every member, the one member of a single thread
    // included: room for one member's BN sums now, grown by nas_net_set_threads.
    // Every BN's forward sums get a place of their own (net_run.c's phases run several BNs'
    // sums before one barrier), so bn_c counts the channels of all BNs together.
    net->bn_c = 1;
    for (int i = 0; i < net->n_nodes; i++) {
        const nas__node *nd = &net->nodes[i];
        if (nd->live && nd->op == NAS__OP_BN) net->bn_c += nd->shape.c;
    }
    net->tbn_stride = (size_t)8 * net->bn_c; /* four quarters of 2 * bn_c doubles */
    net->tbn = nas_calloc(net->tbn_stride, sizeof(double));
    net->tbn_members = 1;
    net->bwd_sync = nas_calloc((size_t)net->n_nodes, 1);
    if (!net->param_block || !net->grad_block || !net->optim_block || !net->act_arena ||
        !net->grad_arena || !net->workspace || !net->tbn || !net->bwd_sync) {
        // Leave the net uncompiled; nas_net_destroy frees whatever did get allocated.
        return nas_set_err(err, NAS_ENOMEM, "net: out of memory allocating %.1f MB",
                           4e-6 * (double)(net->n_total * 3 + act + net->grad_arena_floats + ws));
    }
    for (int i = 0; i < net->n_params; i++) {
        nas_param *p = &net->params[i];
        p->data = net->param_block + p->offset;
        p->grad = p->trainable ? net->grad_block + p->offset : NULL;
    }
    net->compiled = 1;
    net->threads = 1;
    nas_rng rng;
    nas_rng_init(&rng, 0x5eed, 0);
    nas_net_init_params(net, &rng);
    return NAS_OK;
}

// Stop the pool and free its members' scratch (back to one thread; the BN scratch stays, it
// only ever grows).
static void drop_threads(nas_net *net) {
    nas_workpool_destroy(&net->pool);
    nas_aligned_free(net->tscratch);
    net->tscratch = NULL;
    net->threads = 1;
}

int nas_net_set_threads(nas_net *net, int threads, char *err) {
    NAS_ASSERT(net->compiled);
    if (threads < 1) threads = 1;
    // BLAS stays single-threaded: our threads split the batch, and nesting OpenBLAS threads
    // inside them on few cores is several times slower (PERF-ANCHORS.md section 3).
    nas_gemm_set_threads(1);
    if (threads == net->threads) return NAS_OK;
    drop_threads(net);
    if (threads == 1) return NAS_OK;
    // Each extra member needs its own im2col workspace and a shadow of the trainable gradients
    // (it sums its images' conv weight gradients there; net_run.c adds them up at the end);
    // every member needs room for one BN's partial sums and coefficients.
    int rc = NAS_ENOMEM;
    if (threads > net->tbn_members) {
        double *tbn = nas_calloc(net->tbn_stride * (size_t)threads, sizeof(double));
        if (!tbn) goto fail_mem;
        nas_free(net->tbn);
        net->tbn = tbn;
        net->tbn_members = threads;
    }
    net->tscratch_stride = pad16(net->workspace_floats + net->n_trainable);
    net->tscratch = nas_aligned_alloc(sizeof(float) * net->tscratch_stride * (size_t)(threads - 1));
    if (!net->tscratch) goto fail_mem;
    rc = nas_workpool_create(&net->pool, threads, err);
    if (rc < 0) goto fail;
    net->threads = threads;
    nas__net_plan_sync(net);
    return NAS_OK;
fail_mem:
    nas_set_err(err, rc, "net: out of memory for %d threads", threads);
fail:
    drop_threads(net);
    return rc;
}
