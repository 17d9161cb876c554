/*
 * strategy_random.c - random search, the baseline every other strategy
 * must beat (Li & Talwalkar 2019 show it is a strong one).
 *
 * Each proposal is a uniformly random valid genome of the space whose
 * canonical hash was never proposed before.  Sampling is rejection-based
 * with a bounded number of tries: when every try lands on a known network
 * the space is (nearly) exhausted, the strategy says so in the log and
 * stops proposing, and done() becomes true once the last result is in.
 */
#include "master/strategy_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>

/* Duplicates tolerated in a row before the space counts as exhausted.  At
 * 2000, a space with one unseen network in 300 still yields it with
 * probability 1 - e^-6.7 > 0.998. */
#define NAS_RANDOM_TRIES 2000

typedef struct random_state {
    int exhausted; /* 1 once sampling found nothing new */
} random_state;

static int random_init(nas_strategy *s, char *err) {
    s->impl = nas_calloc(1, sizeof(random_state));
    if (!s->impl) return nas_set_err(err, NAS_ENOMEM, "strategy random: out of memory");
    return NAS_OK;
}

static void random_fini(nas_strategy *s) {
    nas_free(s->impl);
}

static int random_propose(nas_strategy *s, nas_proposal *out, char *err) {
    random_state *st = s->impl;
    int rc = nas__strategy_sample_new(s, NAS_RANDOM_TRIES, &out->genome);
    if (rc == NAS_ENOTFOUND) {
        st->exhausted = 1;
        nas_info("strategy random: space exhausted after %d proposals (%d samples in a row "
                 "were known networks)",
                 s->proposed, NAS_RANDOM_TRIES);
        return nas_set_err(err, nas_strategy_done(s) ? NAS_ESTATE : NAS_EAGAIN,
                           "strategy random: search space exhausted after %d proposals",
                           s->proposed);
    }
    if (rc) return nas_set_err(err, rc, "strategy random: cannot sample the space");
    out->has_parent = 0;
    if (nas__strategy_commit(s, out))
        return nas_set_err(err, NAS_ENOMEM, "strategy: out of memory");
    return NAS_OK;
}

static int random_observe(nas_strategy *s, int idx, int was_inflight, char *err) {
    return NAS_OK;
}

/* Random search reads no record again. */
static int random_keep_from(const nas_strategy *s) {
    return s->n_hist;
}

static int random_finished(const nas_strategy *s) {
    const random_state *st = s->impl;
    return st->exhausted;
}

static void random_save(const nas_strategy *s, nas__wbuf *w) {
    const random_state *st = s->impl;
    nas__w_u8(w, (uint8_t)st->exhausted);
}

static int random_load(nas_strategy *s, nas__rbuf *r) {
    random_state *st = s->impl;
    uint8_t ex = nas__r_u8(r, "random exhausted flag");
    if (ex > 1) nas__r_fail(r, "random exhausted flag");
    if (r->bad) return NAS_EFORMAT;
    st->exhausted = ex;
    return NAS_OK;
}

static int random_describe(const nas_strategy *s, char *buf, size_t cap) {
    const random_state *st = s->impl;
    return snprintf(buf, cap, "random: %d results%s", s->n_hist,
                    st->exhausted ? ", space exhausted" : "");
}

const nas__strategy_vtable nas__strategy_random_vt = {
    .name = "random",
    .init = random_init,
    .fini = random_fini,
    .propose = random_propose,
    .observe = random_observe,
    .keep_from = random_keep_from,
    .finished = random_finished,
    .save = random_save,
    .load = random_load,
    .describe = random_describe,
};
