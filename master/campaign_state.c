/*
 * campaign_state.c - how the campaign keeps its strategy durable, and its
 * group commit.
 *
 * Strategy state.  The store holds the strategy's core blob (format 2,
 * master/strategy_core.c) and, in its own rows, the history: every search
 * task is a proposal (in id order) and every observed task carries its
 * observation number (store.h: nas_store_task_observed).  On resume the
 * history is read back and handed to nas_strategy_load_core().  A store
 * written before format 2 holds a whole-history blob: it is loaded as it
 * is, the observation numbers are filled in from it, and the core replaces
 * it, all in one transaction.
 *
 * Group commit.  Every turn of the loop that may change the store (a burst
 * of control messages, a timer, the end of the strategy's step) runs
 * between nas__campaign_batch_begin() and nas__campaign_batch_end(): the
 * store calls in between share one SQLite transaction, the core blob is
 * written once at the end if the strategy moved, and the messages to
 * workers wait in the outbox until the commit.  So nothing a worker is
 * told (a task, an acknowledgement) is ever ahead of the disk: a task it
 * receives exists in the store, a result it sees acknowledged is in the
 * store together with the strategy state that observed it.  A batch that
 * fails to commit is rolled back whole and its messages are dropped; the
 * workers still hold their results and deliver them again.
 */
#include "master/campaign_internal.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

// ---- history from the store ---------------------------------------------------------------------

typedef struct history_buf {
    const nas_campaign *c; /* promotions of its schedule are not proposals */
    nas_proposal *p;
    int n_p, cap_p;
    nas_observation *o;
    int n_o, cap_o;
} history_buf;

/* Double an array's capacity when full; NAS_ENOMEM leaves it as it was. */
static int grow(void **arr, int *cap, int n, size_t size) {
    if (n < *cap) return NAS_OK;
    int c = *cap ? *cap * 2 : 256;
    void *p = nas_realloc(*arr, (size_t)c * size);
    if (!p) return NAS_ENOMEM;
    *arr = p;
    *cap = c;
    return NAS_OK;
}

/* The genome a row names, exactly as the uninterrupted run held it: the
 * canonical form of the stored canonical text, checked against the hash
 * the row was stored under. */
static int row_genome(const nas_store_search_row *row, nas_genome *g, char *err) {
    nas_genome parsed;
    char perr[NAS_ERR_LEN];
    if (nas_genome_parse(row->text, strlen(row->text), &parsed, perr) != NAS_OK)
        return nas_set_err(err, NAS_EFORMAT, "task %lld: stored architecture: %s",
                           (long long)row->task_id, perr);
    nas_genome_canonical(&parsed, g);
    if (nas_genome_hash(g) != row->arch_hash)
        return nas_set_err(err, NAS_EFORMAT,
                           "task %lld: stored architecture does not hash to %016llx",
                           (long long)row->task_id, (unsigned long long)row->arch_hash);
    return NAS_OK;
}

static int on_proposal(void *ctx, const nas_store_search_row *row, char *err) {
    history_buf *h = ctx;
    if (h->c && nas__campaign_sched_skip(h->c, row->task_id)) return NAS_OK;
    if (grow((void **)&h->p, &h->cap_p, h->n_p, sizeof *h->p))
        return nas_set_err(err, NAS_ENOMEM, "campaign: out of memory");
    nas_proposal *p = &h->p[h->n_p];
    memset(p, 0, sizeof *p);
    int rc = row_genome(row, &p->genome, err);
    if (rc) return rc;
    p->has_parent = row->has_parent;
    p->parent_hash = row->parent_hash;
    h->n_p++;
    return NAS_OK;
}

/* Observation numbers run 0, 1, 2, ... without gaps: they were written as
 * the strategy's history indices, in the transactions that observed. A
 * success must have its result; a failure has no cost in the history
 * (hook_failed observes it with zero params and MACs). */
static int on_observation(void *ctx, const nas_store_search_row *row, char *err) {
    history_buf *h = ctx;
    if (row->seq != h->n_o)
        return nas_set_err(err, NAS_EFORMAT,
                           "task %lld is observation %lld, expected %d (observations missing)",
                           (long long)row->task_id, (long long)row->seq, h->n_o);
    if (row->ok && !row->has_result)
        return nas_set_err(err, NAS_EFORMAT,
                           "task %lld was observed as a success but has no result",
                           (long long)row->task_id);
    if (grow((void **)&h->o, &h->cap_o, h->n_o, sizeof *h->o))
        return nas_set_err(err, NAS_ENOMEM, "campaign: out of memory");
    nas_observation *o = &h->o[h->n_o];
    memset(o, 0, sizeof *o);
    int rc = row_genome(row, &o->genome, err);
    if (rc) return rc;
    o->hash = row->arch_hash;
    o->ok = row->ok;
    o->accuracy = row->ok ? row->accuracy : 0.0;
    o->params = row->ok ? row->params : 0;
    o->macs = row->ok ? row->macs : 0;
    h->n_o++;
    return NAS_OK;
}

/* Format 1 -> 2: give every record of the loaded history its task.  The
 * k-th success is the k-th search result (format 1 committed each result
 * with the state that observed it, so their order is the history's); a
 * failure is the oldest failed search task of the same network not yet
 * taken.  Anything that does not line up is refused, not guessed. */
static int number_legacy(nas_store *st, nas_strategy *s, char *err) {
    nas_store_record *res = NULL;
    nas_store_task_info *failed = NULL;
    int n_res = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &res, err);
    if (n_res < 0) return n_res;
    int n_failed =
        nas_store_task_list(st, NAS_STORE_TASK_FAILED, NAS_STORE_STAGE_SEARCH, &failed, err);
    int rc = n_failed < 0 ? n_failed : NAS_OK;
    int n = nas_strategy_history_len(s), k = 0;
    for (int i = 0; rc == NAS_OK && i < n; i++) {
        nas_observation o;
        nas_strategy_history_get(s, i, &o);
        int64_t task = -1;
        if (o.ok && k < n_res && res[k].arch_hash == o.hash) {
            task = res[k++].task_id;
        } else if (!o.ok) {
            for (int j = 0; j < n_failed && task < 0; j++)
                if (failed[j].arch_hash == o.hash && failed[j].id > 0) {
                    task = failed[j].id;
                    failed[j].id = -1; /* taken */
                }
        }
        if (task < 0)
            rc = nas_set_err(err, NAS_EFORMAT,
                             "strategy state (format 1): observation %d (%016llx, %s) matches no "
                             "task of the store; the campaign cannot be moved to format 2",
                             i, (unsigned long long)o.hash, o.ok ? "result" : "failure");
        else
            rc = nas_store_task_observed(st, task, i, o.ok, err);
    }
    nas_store_records_free(res, n_res);
    nas_free(failed);
    return rc;
}

/* Load a format-1 blob, number the history in the store and write the
 * core, in one transaction: a crash half-way leaves the old format. */
static int load_legacy(nas_store *st, nas_strategy *s, const uint8_t *blob, size_t n, char *err) {
    int rc = nas_strategy_load(s, blob, n, err);
    if (rc) return rc;
    rc = nas_store_batch_begin(st, err);
    if (rc) return rc;
    rc = number_legacy(st, s, err);
    uint8_t *core = NULL;
    size_t len = 0;
    if (rc == NAS_OK && nas_strategy_save_core(s, &core, &len) != NAS_OK)
        rc = nas_set_err(err, NAS_ENOMEM, "cannot serialise the strategy state");
    if (rc == NAS_OK) rc = nas_store_strategy_save(st, core, len, nas_wall_ms(), err);
    nas_free(core);
    if (rc == NAS_OK) rc = nas_store_batch_commit(st, err);
    if (rc) {
        nas_store_batch_abort(st);
        return rc;
    }
    nas_info("campaign: strategy state moved from format 1 (whole history) to format 2 (core, "
             "%d observations numbered in the store)",
             nas_strategy_history_len(s));
    return NAS_OK;
}

/* A new campaign starts its strategy from the seed; a resumed one loads
 * the last committed core and the history (none yet if the first proposal
 * never committed, which is the same as a new start). */
/* c (NULL: no schedule) also restores the schedule wrapped around the core. */
static int state_load(nas_store *st, nas_strategy *s, nas_campaign *c, char *err) {
    uint8_t *whole = NULL, *blob;
    size_t n = 0;
    int64_t seq = 0;
    int rc = nas_store_strategy_load(st, &whole, &n, &seq, err);
    if (rc == NAS_ENOTFOUND) return NAS_OK;
    if (rc < 0) return rc;
    /* The schedule's state, if any, wraps the strategy's (campaign_sched.c). */
    const uint8_t *core = whole;
    rc = nas__campaign_sched_unwrap(c, whole, n, &core, &n, err);
    if (rc < 0) {
        nas_free(whole);
        return rc;
    }
    blob = (uint8_t *)core;
    int version = nas_strategy_blob_version(blob, n);
    if (version == 1) {
        rc = load_legacy(st, s, blob, n, err);
        nas_free(whole);
        return rc;
    }
    history_buf h = {.c = c};
    rc = nas_store_search_each(st, 0, on_proposal, &h, err);
    if (rc == NAS_OK) rc = nas_store_search_each(st, 1, on_observation, &h, err);
    if (rc == NAS_OK) {
        nas_strategy_history hist = {
            .proposals = h.p, .n_proposals = h.n_p, .observations = h.o, .n_observations = h.n_o};
        rc = nas_strategy_load_core(s, blob, n, &hist, err);
    }
    if (rc == NAS_OK)
        nas_info("campaign: strategy state restored (%zu bytes of core, %d proposals and %d "
                 "observations from the store)",
                 n, h.n_p, h.n_o);
    nas_free(h.p);
    nas_free(h.o);
    nas_free(whole);
    return rc;
}

/* Observe a search-stage outcome and number it in the store, inside the
 * caller's batch; the core is written when the batch ends.  A result has
 * its number written with it (nas_store_result.observed, one UPDATE
 * fewer): `numbered` says so, and the number must be the one observe()
 * gives. */
int nas__campaign_state_observe(nas_campaign *c, const nas__ctask *t, int ok, double acc,
                                int64_t params, int64_t macs, int numbered, char *err) {
    nas_observation o = {.genome = t->genome,
                         .hash = t->hash,
                         .ok = ok,
                         .accuracy = ok ? acc : 0,
                         .params = params,
                         .macs = macs};
    int rc = nas_strategy_observe(c->strategy, &o, err);
    if (rc < 0) return rc;
    c->state_dirty = 1;
    if (numbered) return NAS_OK;
    return nas_store_task_observed(c->store, t->id, nas_strategy_history_len(c->strategy) - 1, ok,
                                   err);
}

int nas__campaign_state_load(nas_store *st, nas_strategy *s, char *err) {
    return state_load(st, s, NULL, err);
}

int nas__campaign_state_restore(nas_campaign *c, char *err) {
    return state_load(c->store, c->strategy, c, err);
}

// ---- group commit -------------------------------------------------------------------------------

/* Nested calls (a hook inside a loop turn) join the outer batch. */
void nas__campaign_batch_begin(nas_campaign *c) {
    if (c->batch_depth++ > 0 || c->fatal || !c->store) return;
    char err[NAS_ERR_LEN];
    /* Whole: any store error makes the campaign fatal and aborts the batch,
     * so per-call savepoints would only cost (store.h). */
    if (nas_store_batch_begin_whole(c->store, err) < 0) nas__campaign_fail(c, err);
}

/* Send what waited for the commit.  Non-blocking, as every send to a
 * worker: one that stopped reading loses the message and the liveness
 * rules recover it. */
static void outbox_flush(nas_campaign *c) {
    for (int i = 0; i < c->n_out; i++) {
        nas__outmsg *m = &c->outbox[i];
        if (c->sock_ctl &&
            zmq_send(c->sock_ctl, m->id, m->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
            zmq_send(c->sock_ctl, m->buf, m->len, ZMQ_DONTWAIT) < 0)
            nas_debug("campaign: send after commit: %s", zmq_strerror(zmq_errno()));
        nas_free(m->buf);
    }
    c->n_out = 0;
}

void nas__campaign_outbox_free(nas_campaign *c) {
    for (int i = 0; i < c->n_out; i++)
        nas_free(c->outbox[i].buf);
    nas_free(c->outbox);
    c->outbox = NULL;
    c->n_out = c->cap_out = 0;
}

/* The strategy's core goes into the same transaction as the results and
 * proposals that moved it; then one commit; then the messages. */
void nas__campaign_batch_end(nas_campaign *c) {
    NAS_ASSERT(c->batch_depth > 0);
    if (--c->batch_depth > 0) return;
    char err[NAS_ERR_LEN];
    if (!c->fatal && c->state_dirty) {
        uint8_t *blob = NULL;
        size_t n = 0;
        uint8_t *wrapped = NULL;
        size_t wn = 0;
        if (nas_strategy_save_core(c->strategy, &blob, &n) != NAS_OK)
            nas__campaign_fail(c, "cannot serialise the strategy state");
        else if (nas__campaign_sched_wrap(c, blob, n, &wrapped, &wn) == NAS_ENOMEM)
            nas__campaign_fail(c, "cannot serialise the schedule state");
        else if (nas_store_strategy_save(c->store, wrapped ? wrapped : blob, wrapped ? wn : n,
                                         nas_wall_ms(), err) < 0)
            nas__campaign_fail(c, err);
        nas_free(blob);
        nas_free(wrapped);
        c->state_dirty = 0;
    }
    if (!c->fatal && nas_store_in_batch(c->store) && nas_store_batch_commit(c->store, err) < 0)
        nas__campaign_fail(c, err);
    if (c->fatal) {
        /* Nothing of the batch reached the disk: nobody may hear of it. */
        nas_store_batch_abort(c->store);
        for (int i = 0; i < c->n_out; i++)
            nas_free(c->outbox[i].buf);
        c->n_out = 0;
        return;
    }
    outbox_flush(c);
}

/* The dispatcher's send hook inside a batch: encode now (the message is
 * the dispatcher's stack memory), send after the commit. */
int nas__campaign_outbox_put(nas_campaign *c, const uint8_t *id, size_t id_len,
                             const nas_wire_msg *m) {
    if (id_len > sizeof c->outbox[0].id) return NAS_EINVAL;
    if (grow((void **)&c->outbox, &c->cap_out, c->n_out, sizeof *c->outbox)) return NAS_ENOMEM;
    nas__outmsg *o = &c->outbox[c->n_out];
    char err[NAS_ERR_LEN];
    nas_wire_msg copy = *m;
    copy.frames = 0;
    int rc = nas_wire_encode(&copy, &o->buf, &o->len, err);
    if (rc < 0) {
        nas_debug("campaign: %s not encoded: %s", nas_wire_type_name(m->type), err);
        return rc;
    }
    memcpy(o->id, id, id_len);
    o->id_len = id_len;
    c->n_out++;
    return NAS_OK;
}
