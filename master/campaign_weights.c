/*
 * campaign_weights.c - the campaign's use of the weight store
 * (master/weights.h), kept apart from the campaign's own files so that
 * they only make a few calls:
 *
 *  - open: the store lives next to the database ("<db>.weights/", one
 *    safetensors file per architecture), memory under weights.memory_budget,
 *    files written in the loop's thread pool; a resumed campaign finds its
 *    files again;
 *  - task: a search task names its parent when weights.inherit is on, and
 *    asks the worker to push its trained weights when the strategy may use
 *    the child as a parent (evolution); a final-stage task always asks for
 *    them: the winners are kept, under their architecture's hash (the
 *    final network replaces whatever the search stage left for it), so
 *    that `nasctl export` needs no retraining;
 *  - advertise: the bulk socket's endpoint goes into the answer to every
 *    Register, so workers find the weight store without --weights;
 *  - read: the bulk ROUTER's reader (zmq_uv) hands each message to
 *    nas_weights_serve_one();
 *  - sweep: after each observed result, weights that can no longer be a
 *    parent are dropped (evolution: members that aged out), except those
 *    of tasks still outstanding (a child's weights arrive before its
 *    result; a queued child still needs its parent); from the final stage
 *    on nothing is dropped, because what is left is what a user keeps;
 *  - json: the store's figures for the status document (nasctl status).
 */
#include "master/campaign_internal.h"

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

int nas__campaign_weights_open(nas_campaign *c, char *err) {
    char dir[NAS_CONFIG_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s.weights", c->db_path);
    /* The loop: pushed files are written in its thread pool, so a large
     * spill never delays a heartbeat or a dispatch. */
    nas_weights_config wc = {.dir = dir,
                             .memory_budget = c->cfg->weights.memory_budget,
                             .store = c->store,
                             .loop = c->loop};
    return nas_weights_create(&c->weights, &wc, err);
}

void nas__campaign_weights_close(nas_campaign *c) {
    nas_weights_destroy(&c->weights);
}

void nas__campaign_weights_task(const nas_campaign *c, const nas__ctask *t, nas_wire_task *w) {
    if (!c->weights || c->eval_mode != NAS_EVAL_TRAIN) return; /* nothing is trained */
    if (t->stage == NAS_STORE_STAGE_FINAL) {
        /* A winner is kept whether or not the search inherits; of several seeds, the first's
         * (the store holds one file per architecture, and nasctl export finds it by seed). */
        w->push_weights = w->fidelity.seed == c->cfg->final.fidelity.seed;
        return;
    }
    /* A rung below the top may be promoted: its weights are pushed, and a
     * promotion continues from them whatever weights.inherit says. */
    int continues = nas__campaign_sched_pushes(c, t);
    int inherit = c->cfg->weights.inherit;
    if (t->has_parent && (inherit || t->promoted)) {
        w->has_parent = 1;
        w->parent_hash = t->parent_hash;
    }
    w->push_weights = (inherit && nas_strategy_uses_parents(c->strategy)) || continues;
}

/* The endpoint as bound (ZMQ_LAST_ENDPOINT: a port given as '*' is
 * resolved); a wildcard host stays a wildcard, which the worker replaces
 * with the host it reached the master on (worker/ps_client.h
 * nas_ps_endpoint_resolve).  --advertise-weights overrides both where the
 * address the master binds is not the one workers reach (NAT, a proxy). */
void nas__campaign_weights_advertise(nas_campaign *c) {
    char ep[256] = "", err[NAS_ERR_LEN] = "";
    size_t n = sizeof ep;
    if (c->opt.weights_advertise)
        snprintf(ep, sizeof ep, "%s", c->opt.weights_advertise);
    else if (!c->sock_wts || zmq_getsockopt(c->sock_wts, ZMQ_LAST_ENDPOINT, ep, &n) != 0 || !ep[0])
        snprintf(ep, sizeof ep, "%s", c->cfg->listen.weights);
    if (nas_dispatcher_set_weights_endpoint(c->disp, ep, err) < 0)
        nas_warn("weights: workers will need --weights: %s", err);
    else
        nas_info("weights: announcing %s to workers", ep);
}

void nas__campaign_weights_read(nas_zmq_uv *z, void *sock, void *data) {
    (void)z;
    nas_campaign *c = data;
    char err[NAS_ERR_LEN] = "";
    if (!c->weights) return;
    int rc = nas_weights_serve_one(c->weights, sock, nas_wall_ms(), err);
    if (rc == NAS_EIO) nas_warn("weights: %s", err);
}

/* Keep what may still be a parent and what outstanding tasks need. */
static int keep(void *ctx, uint64_t arch) {
    const nas_campaign *c = ctx;
    if (c->phase != NAS__PHASE_SEARCH) return 1;
    if (nas_strategy_is_live_parent(c->strategy, arch)) return 1;
    if (nas__campaign_sched_keeps(c, arch)) return 1;
    for (int i = 0; i < c->n_tasks; i++)
        if (c->tasks[i].hash == arch || (c->tasks[i].has_parent && c->tasks[i].parent_hash == arch))
            return 1;
    return 0;
}

void nas__campaign_weights_sweep(nas_campaign *c) {
    if (!c->weights) return;
    char err[NAS_ERR_LEN] = "";
    if (nas_weights_sweep(c->weights, keep, c, err) < 0) nas_warn("weights: sweep: %s", err);
}

void nas__campaign_weights_json(const nas_campaign *c, char *buf, size_t cap) {
    if (c->weights)
        nas_weights_stats_json(c->weights, buf, cap);
    else
        snprintf(buf, cap, "null");
}
