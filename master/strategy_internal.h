/*
 * strategy_internal.h - what the strategy implementations share and the
 * campaign never sees: the base object with its vtable, the evaluation
 * history, the set of proposed hashes, the in-flight list, reward
 * computation, and a bounds-checked little-endian blob writer/reader.
 *
 * Invariants of the base object:
 *  - every proposal's canonical hash is in `seen` from the moment it is
 *    proposed, so no strategy proposes the same network twice (but where it
 *    says so, as evolution's last resort);
 *  - `inflight` holds exactly the proposals not yet observed;
 *  - `hist` holds the observations in arrival order (index = age), from
 *    number `hist_off` on: all of them (hist_off 0) unless the history is
 *    bounded (nas_strategy_bound_history), when the records no strategy
 *    step can read again are dropped.  Indices are always history numbers;
 *    nas__hist() maps one to its record.
 */
#ifndef NAS_STRATEGY_INTERNAL_H
#define NAS_STRATEGY_INTERNAL_H

#include "common/err.h"
#include "master/strategy.h"

#include <stddef.h>
#include <stdint.h>

/* ---- blob writer / reader ------------------------------------------------------ */

/* A growable byte buffer. On allocation failure `oom` is set and later
 * writes are ignored, so a save path checks once at the end. */
typedef struct nas__wbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} nas__wbuf;

void nas__w_bytes(nas__wbuf *w, const void *src, size_t n);
void nas__w_u8(nas__wbuf *w, uint8_t v);
void nas__w_u32(nas__wbuf *w, uint32_t v);
void nas__w_u64(nas__wbuf *w, uint64_t v);
void nas__w_i32(nas__wbuf *w, int32_t v);
void nas__w_f32(nas__wbuf *w, float v);
void nas__w_f64(nas__wbuf *w, double v);
void nas__w_genome(nas__wbuf *w, const nas_genome *g);

/* A reader over a blob. The first failure (short read, bad value) records
 * a message in `err` and sets `bad`; later reads return zeros, so a load
 * path checks `bad` once per section without crashing on any input. */
typedef struct nas__rbuf {
    const uint8_t *p;
    size_t n, off;
    int bad;
    char err[NAS_ERR_LEN];
} nas__rbuf;

void nas__r_fail(nas__rbuf *r, const char *what);
void nas__r_bytes(nas__rbuf *r, void *dst, size_t n, const char *what);
uint8_t nas__r_u8(nas__rbuf *r, const char *what);
uint32_t nas__r_u32(nas__rbuf *r, const char *what);
uint64_t nas__r_u64(nas__rbuf *r, const char *what);
/* A signed count that must lie in [lo, hi]. */
int32_t nas__r_i32(nas__rbuf *r, int32_t lo, int32_t hi, const char *what);
float nas__r_f32(nas__rbuf *r, const char *what);
double nas__r_f64(nas__rbuf *r, const char *what);
/* A genome, validated (a corrupted genome marks the reader bad). */
void nas__r_genome(nas__rbuf *r, nas_genome *g, const char *what);

/* ---- the base object ---------------------------------------------------------- */

/* One finished evaluation as the strategies see it. */
typedef struct nas__record {
    nas_genome genome;
    uint64_t hash;
    int ok;
    double accuracy;
    double reward; /* the ranking signal: accuracy, or the MnasNet reward */
    int64_t params, macs;
} nas__record;

/* Open-addressing set of 64-bit hashes (0 is stored out of band). */
typedef struct nas__hashset {
    uint64_t *slot;
    size_t cap, count;
    int has_zero;
} nas__hashset;

int nas__hashset_add(nas__hashset *h, uint64_t key); /* 1 added, 0 present, NAS_ENOMEM */
int nas__hashset_has(const nas__hashset *h, uint64_t key);
void nas__hashset_free(nas__hashset *h);

typedef struct nas__strategy_vtable {
    const char *name;
    int (*init)(nas_strategy *s, char *err);
    void (*fini)(nas_strategy *s);
    int (*propose)(nas_strategy *s, nas_proposal *out, char *err);
    /* Called after the base recorded the observation as hist[idx]. */
    int (*observe)(nas_strategy *s, int idx, int was_inflight, char *err);
    /* The oldest history number the strategy may still read (evolution:
     * its oldest member); NULL: every record (PNAS fits its predictor on
     * all of them). */
    int (*keep_from)(const nas_strategy *s);
    /* 1 when the strategy has nothing more to propose (beyond the budget). */
    int (*finished)(const nas_strategy *s);
    void (*save)(const nas_strategy *s, nas__wbuf *w);
    int (*load)(nas_strategy *s, nas__rbuf *r);
    int (*describe)(const nas_strategy *s, char *buf, size_t cap);
} nas__strategy_vtable;

struct nas_strategy {
    const nas__strategy_vtable *vt;
    nas_strategy_config cfg;
    uint64_t seed;
    nas_rng rng;
    int proposed;      /* proposals made (counted against the budget) */
    nas__record *hist; /* observations hist_off .. n_hist - 1, oldest first */
    int n_hist, cap_hist;
    int hist_off; /* history number of hist[0] */
    int bounded;  /* drop records below keep_from() (campaigns); format 1 cannot be saved */
    nas_proposal *inflight; /* proposals not yet observed */
    uint64_t *inflight_hash;
    int n_inflight, cap_inflight;
    uint64_t *seen_list; /* proposed hashes in order (serialised; the set is rebuilt) */
    int n_seen, cap_seen;
    nas__hashset seen;
    int best;           /* history number of the best ok record, -1 if none */
    double best_reward; /* its reward (the record itself may have been dropped) */
    double rank_corr;   /* PNAS: last measured Spearman correlation, NAN if none */
    void *impl;         /* the strategy's own state */
};

/* The record of history number i (hist_off <= i < n_hist). */
static inline nas__record *nas__hist(const nas_strategy *s, int i) {
    return &s->hist[i - s->hist_off];
}

extern const nas__strategy_vtable nas__strategy_random_vt;
extern const nas__strategy_vtable nas__strategy_evo_vt;
extern const nas__strategy_vtable nas__strategy_pnas_vt;

/* Evolution's population, oldest first (see nas_strategy_population). */
int nas__strategy_evo_population(const nas_strategy *s, nas_observation *out, int cap);

/* PNAS's between-level step (see nas_strategy_prepare). */
int nas__strategy_pnas_needs_prepare(const nas_strategy *s);
int nas__strategy_pnas_prepare(nas_strategy *s, char *err);

/* The reward of an observation under cfg (accuracy when no target is set). */
double nas__strategy_reward(const nas_strategy_config *cfg, const nas_observation *obs);

/* Record a proposal as made: counts it, adds its hash to `seen`, and puts it
 * in flight. The caller has filled `p`. */
int nas__strategy_commit(nas_strategy *s, const nas_proposal *p);

/* 1 if a genome with this canonical hash was proposed before. */
int nas__strategy_seen(const nas_strategy *s, uint64_t hash);

/* Shared with strategy_core.c (the format-2 core blob). */
uint64_t nas__strategy_fingerprint_v(const nas_strategy *s, int with_budget);
/* The fingerprint blobs are written with (without the budget). */
static inline uint64_t nas__strategy_fingerprint(const nas_strategy *s) {
    return nas__strategy_fingerprint_v(s, 0);
}
int nas__strategy_kind_id(const nas_strategy *s);
int nas__strategy_seen_add(nas_strategy *s, uint64_t hash); /* 1 added, 0 known, NAS_ENOMEM */
/* Validate an observation from the outside world (genome, space, ranges). */
int nas__strategy_check_observation(const nas_strategy *s, const nas_observation *obs, char *err);
/* Fill a history record from a checked observation (computes the reward). */
void nas__strategy_record_fill(const nas_strategy *s, const nas_observation *obs, uint64_t hash,
                               nas__record *r);
/* Wrap a payload in the blob frame (magic, version, strategy id, config
 * fingerprint, length, checksum); frees the payload. */
int nas__strategy_frame(const nas_strategy *s, uint32_t version, nas__wbuf *body, uint8_t **blob,
                        size_t *n);
/* Check a blob's frame for `want` and return a reader over its payload;
 * NAS_EVERSION names the other format, NAS_EFORMAT any damage. */
int nas__strategy_open_blob(const nas_strategy *s, const uint8_t *blob, size_t n, uint32_t want,
                            nas__rbuf *out, char *err);

/* The end of a blob load into the fresh strategy `t` (rc: how its base
 * part went): the strategy's own part, a check for trailing bytes, then
 * `t` swapped into `s` and freed; on any error `t` is freed and `s` is
 * left as it was. */
int nas__strategy_finish_load(nas_strategy *s, nas_strategy *t, nas__rbuf *r, int rc, char *err);

/* A fresh uniformly random genome not proposed before, trying at most
 * `tries` samples. NAS_OK, NAS_ENOTFOUND when every try was a duplicate. */
int nas__strategy_sample_new(nas_strategy *s, int tries, nas_genome *out);

#endif
