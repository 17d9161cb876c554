/*
 * store.h - the master's SQLite store: one file per campaign (ARCHITECTURE.md, The store).
 *
 * Everything the master must not forget lives here: the campaign (its
 * config and seed), every architecture and task, every result with its
 * learning curve, the strategy's serialised state, the workers seen, an
 * event log and the index of weight files on disk.  docs/SCHEMA.md
 * describes the tables column by column.
 *
 * Invariants the API keeps:
 *  - every state change is one SQLite transaction, so a crash between any
 *    two statements leaves the file as it was before the call or after it
 *    (inside a group transaction, before the batch or after it);
 *  - a result is recorded at most once per task (the first one wins; a
 *    later one is acknowledged with NAS_STORE_DUPLICATE and dropped), and
 *    it is committed together with the strategy state that observed it;
 *  - only bound parameters reach SQL, through statements prepared once and
 *    cached for the life of the handle;
 *  - time comes in as `now_ms` (milliseconds, any epoch the caller likes),
 *    so tests and resumed campaigns are deterministic.
 *
 * A writer (nas-master) opens with nas_store_open(); readers such as
 * nasctl open the same file with nas_store_open_ro() while the master runs:
 * WAL mode lets them read a consistent snapshot without blocking it.  A
 * handle caches its statements, so it is used by one thread at a time
 * (the master's loop thread, or one uv_queue_work job at a time); the
 * connection is opened without SQLite's per-connection mutex, which
 * relies on exactly that.
 *
 * Functions return NAS_OK (or a count >= 0, or an enum nas_store_outcome)
 * and a negative nas_err on failure with a message in err[NAS_ERR_LEN]:
 * NAS_ENOSPC when the disk or the file's size limit is full, NAS_EIO for
 * an unreadable or read-only file, NAS_EFORMAT for a file that is not a
 * nasd store, NAS_EVERSION for a schema newer than this binary, NAS_EAGAIN
 * when another writer held the lock past the busy timeout, NAS_EDB else.
 */
#ifndef NAS_STORE_H
#define NAS_STORE_H

#include "common/fidelity.h"

#include <stddef.h>
#include <stdint.h>

/* Schema version this binary writes (PRAGMA user_version). */
#define NAS_STORE_SCHEMA_VERSION 6
/* How long a statement waits for another connection's lock. */
#define NAS_STORE_BUSY_TIMEOUT_MS 5000

#define NAS_STORE_TEXT_MAX   512 /* genome text form, as NAS_GENOME_TEXT_MAX */
#define NAS_STORE_NAME_MAX   64  /* worker names, campaign names, event kinds */
#define NAS_STORE_HOST_MAX   256 /* a lease holder's host, as NAS_WIRE_HOST_MAX */
#define NAS_STORE_REASON_MAX 256 /* failure reasons */

typedef struct nas_store nas_store;

/* Outcomes of calls that may legitimately do nothing (all >= 0). */
enum nas_store_outcome {
    NAS_STORE_APPLIED = 0,      /* the change was recorded */
    NAS_STORE_DUPLICATE = 1,    /* the task already has a result: acknowledged, dropped */
    NAS_STORE_STALE = 2,        /* the attempt is no longer current (or the task is
                                   finished): acknowledged, dropped */
    NAS_STORE_FAILED_FINAL = 3, /* failure recorded and the task is failed for good */
};

enum nas_store_stage {
    NAS_STORE_STAGE_SEARCH = 0, /* low-fidelity search evaluations */
    NAS_STORE_STAGE_FINAL = 1,  /* high-fidelity retraining of the top-k */
    NAS_STORE_STAGE_ANY = -1,   /* filter value: both stages */
};

enum nas_store_task_state {
    NAS_STORE_TASK_QUEUED = 0,
    NAS_STORE_TASK_LEASED = 1,
    NAS_STORE_TASK_DONE = 2,
    NAS_STORE_TASK_FAILED = 3,
    NAS_STORE_TASK_ANY = -1, /* filter value */
};

enum nas_store_failure_kind {
    NAS_STORE_FAIL_TRAINING = 0,      /* the worker reported a failure (NaN, OOM, bad genome) */
    NAS_STORE_FAIL_LEASE_EXPIRED = 1, /* the worker went silent past its lease */
};

enum nas_store_campaign_state {
    NAS_STORE_CAMPAIGN_RUNNING = 0,
    NAS_STORE_CAMPAIGN_DRAINING = 1, /* budget spent, waiting for leased tasks */
    NAS_STORE_CAMPAIGN_DONE = 2,
};

/* ---- opening ---------------------------------------------------------------- */

/* Open (creating if needed) the store at `path` for writing, apply pending
 * schema migrations, and set WAL mode, foreign keys, synchronous=NORMAL and
 * the busy timeout.  ":memory:" gives a private in-memory store.  A file
 * written by a newer nasd (unknown user_version) is refused with
 * NAS_EVERSION, a file that is not SQLite or not a nasd store with
 * NAS_EFORMAT. */
int nas_store_open(nas_store **out, const char *path, char *err);

/* nas_store_open() for the one master of a campaign: first takes an
 * exclusive lock on STORE.lock, a file beside the store naming the holder
 * (pid, host, since when), held until nas_store_close().  A second process
 * gets NAS_EEXIST with the holder in err; the kernel releases the lock of a
 * process that died, so a crashed master never blocks the next one.
 * Readers (nas_store_open_ro) do not take it. */
int nas_store_open_exclusive(nas_store **out, const char *path, char *err);

/* Open an existing store read-only (nasctl).  Never creates or migrates;
 * write calls on the handle fail with NAS_EIO. */
int nas_store_open_ro(nas_store **out, const char *path, char *err);

/* Close and free; accepts NULL and nulls the pointer. */
void nas_store_close(nas_store **stp);

/* The path the store was opened with. */
const char *nas_store_path(const nas_store *st);

/* ---- campaign ------------------------------------------------------------------ */

typedef struct nas_store_campaign {
    const char *name;      /* campaign name */
    const char *text;      /* the config file's bytes, for people (NUL-terminated) */
    const char *canonical; /* the config's canonical "key: value" lines (what is hashed) */
    uint64_t hash;         /* hash of `canonical`'s identity lines: the campaign's identity */
    uint64_t seed;
    /* 1 for a canonical line that is recorded but may change on resume
     * (a budget, a thread count); NULL: every line is identity. */
    int (*extensible)(const char *line, size_t len);
} nas_store_campaign;

/* Bind the store to a campaign: on an empty store record it (and set
 * *created = 1); on a store that already holds a campaign check that the
 * identity lines of the canonical texts agree (*created = 0), and record
 * the given config when only extensible lines changed (an extension).  A
 * different identity is refused with NAS_ECONFIG and a message naming the
 * file and the first identity line that differs.  There is deliberately
 * no override: a store is one campaign's history, and mixing configs would
 * make it a lie. */
int nas_store_campaign_bind(nas_store *st, const nas_store_campaign *c, int64_t now_ms,
                            int *created, char *err);

/* The stored campaign.  Strings are malloc'd copies; free with
 * nas_store_campaign_info_fini().  NAS_ENOTFOUND on an unbound store. */
typedef struct nas_store_campaign_info {
    char *name, *text, *canonical;
    uint64_t hash, seed;
    int state; /* enum nas_store_campaign_state */
    int64_t created_ms, updated_ms;
    int64_t ran_ms; /* time masters have run the campaign (schema v4; checkpointed) */
} nas_store_campaign_info;
int nas_store_campaign_get(nas_store *st, nas_store_campaign_info *out, char *err);
void nas_store_campaign_info_fini(nas_store_campaign_info *info);

int nas_store_campaign_set_state(nas_store *st, int state, int64_t now_ms, char *err);

/* Record how long masters have run the campaign so far (the wall-time
 * budget counts that, not the time since creation). */
int nas_store_campaign_set_ran(nas_store *st, int64_t ran_ms, char *err);

/* Put every task that failed for good back in the queue with fresh
 * attempts (nas-master --retry-failed).  Their observation by the strategy
 * stays: a retried search task's result is recorded and ranked, but the
 * search has moved on from it.  Returns how many went back. */
int nas_store_task_retry_failed(nas_store *st, int64_t now_ms, char *err);

/* ---- tasks ---------------------------------------------------------------------- */

/* A task to add: the architecture (upserted by hash) and how to train it. */
typedef struct nas_store_new_task {
    uint64_t arch_hash;    /* canonical genome hash */
    const char *arch_text; /* canonical text form */
    const void *genome;    /* encoded genome (caller's format), may be NULL */
    size_t genome_len;
    int64_t params, macs; /* cost at the task's fidelity */
    int stage;            /* enum nas_store_stage */
    nas_fidelity fidelity;
    int has_parent;
    uint64_t parent_hash; /* architecture whose weights the child inherits */
    /* Already leased (optional): when lease_worker is not NULL the task is
     * written leased to it as attempt 1 until lease_expiry_ms, exactly as
     * nas_store_task_add followed by nas_store_task_lease(.., 1, ..) would
     * leave it, in one statement instead of two (the master knows at
     * proposal time whether an idle worker takes the task at once). */
    const char *lease_worker;
    const char *lease_host, *lease_key; /* the lessee's host and CurveZMQ key ("" without) */
    int64_t lease_expiry_ms;
} nas_store_new_task;

/* Add a queued (or, with lease_worker, leased) task, upsert its
 * architecture and, when `strategy_blob` is not NULL, write the strategy's
 * state: one transaction, so a proposal and the strategy state that made
 * it are never seen apart.  *task_id gets the new id (ids increase in
 * insertion order).  NAS_EINVAL for a lease worker name that is empty or
 * too long. */
int nas_store_task_add(nas_store *st, const nas_store_new_task *t, const void *strategy_blob,
                       size_t blob_len, int64_t now_ms, int64_t *task_id, char *err);

/* Lease a queued task to `worker` on `host` with CurveZMQ key `key` (""
 * without; the three together are who holds the lease, PROTOCOL.md s4.8)
 * until `expiry_ms` as `attempt`: (task id, attempt) then names this lease.  The attempt comes from
 * the caller (the dispatcher counts them) and never goes down: a task re-queued by a give-back is
 * leased again with the same attempt, one re-queued after a failure with a higher one.  NAS_ESTATE
 * if the task is not queued, NAS_EINVAL for an attempt below the task's, NAS_ENOTFOUND for no task.
 */
int nas_store_task_lease(nas_store *st, int64_t task_id, int attempt, const char *worker,
                         const char *host, const char *key, int64_t expiry_ms, int64_t now_ms,
                         char *err);

/* Lease the oldest queued task of `stage` (or NAS_STORE_STAGE_ANY) to
 * `worker` as its next attempt (the stored attempt + 1): returns 1 with
 * *task_id and *attempt set, or 0 when no task is queued.  The pick and the
 * lease are one statement.  For callers that let the store count attempts;
 * the lessee's host and key are not known to it (NULL). */
int nas_store_task_lease_next(nas_store *st, int stage, const char *worker, int64_t expiry_ms,
                              int64_t now_ms, int64_t *task_id, int *attempt, char *err);

/* Push a live lease's expiry forward (progress or heartbeat from its
 * worker).  NAS_STORE_STALE if (task, attempt) is no longer leased. */
int nas_store_task_extend(nas_store *st, int64_t task_id, int attempt, int64_t expiry_ms,
                          char *err);

/* Put a leased task back in the queue without counting a failure (the
 * master shuts down, or the campaign resumes).  NAS_STORE_STALE if that
 * lease is gone. */
int nas_store_task_requeue(nas_store *st, int64_t task_id, int attempt, int64_t now_ms, char *err);

/* Resume: put every leased task back in the queue (one transaction) and
 * return how many there were. */
int nas_store_task_requeue_all(nas_store *st, int64_t now_ms, char *err);

/* A finished evaluation. */
typedef struct nas_store_result {
    double accuracy;      /* validation accuracy in [0, 1]: the search signal */
    double loss;          /* final validation loss */
    double test_accuracy; /* NAN when the test set was not evaluated */
    const float *curve;   /* validation accuracy per epoch, may be NULL */
    int n_curve;
    int64_t params, macs;
    double seconds;     /* training wall time on the worker */
    const char *worker; /* who trained it */
    /* The strategy observes this result as its observation number `seq`
     * (what nas_store_task_observed() records, folded into the same
     * UPDATE); 0 = not observed (final-stage results). */
    int observed;
    int64_t seq;
} nas_store_result;

/* Record the result of (task, attempt), mark the task done and, when
 * `strategy_blob` is not NULL, write the strategy state, all in one
 * transaction (the worker's tasks_done is counted from these rows).  The first
 * result of a task wins whatever its attempt (a slow worker whose lease
 * expired may still finish first); later ones return NAS_STORE_DUPLICATE and
 * change nothing.  A result for a task failed for good returns
 * NAS_STORE_STALE.  An attempt that was never leased is NAS_EINVAL. */
int nas_store_put_result(nas_store *st, int64_t task_id, int attempt, const nas_store_result *r,
                         const void *strategy_blob, size_t blob_len, int64_t now_ms, char *err);

/* Record a failed attempt.  If the task has used `max_attempts` attempts
 * it is failed for good with `reason` (NAS_STORE_FAILED_FINAL; the
 * strategy blob, if any, is written in the same transaction), otherwise
 * it goes back to the queue (NAS_STORE_APPLIED; the blob is ignored).
 * `kind` tells a lease that expired from a failure the worker reported; both
 * count as attempts, so an architecture that kills its workers cannot loop
 * forever.  A failure of an attempt that is not the live lease is
 * NAS_STORE_STALE. */
int nas_store_put_failure(nas_store *st, int64_t task_id, int attempt, int kind, const char *reason,
                          int max_attempts, const void *strategy_blob, size_t blob_len,
                          int64_t now_ms, char *err);

/* ---- group commit ------------------------------------------------------------------ */

/* Open a group transaction: until nas_store_batch_commit() every call that
 * would be its own transaction becomes a savepoint inside this one, so it
 * still applies all or nothing (a refused call leaves the batch as it was)
 * but nothing is durable before the batch commits.  The master's loop
 * handles every message it can read in one batch (docs/ARCHITECTURE.md,
 * "group commit") and sends the replies that depend on durability only
 * after the commit.  NAS_ESTATE if a batch is already open. */
int nas_store_batch_begin(nas_store *st, char *err);
/* The same, all or nothing as a whole: calls inside take no savepoint
 * (cheaper by two statements per call).  A call refused before it wrote
 * anything (duplicate, stale, bad argument) still leaves the batch as it
 * was; a call that fails after writing poisons the batch, and its commit
 * then fails with NAS_EIO and rolls every call of it back.  For a caller
 * that abandons the batch on any error anyway (the campaign). */
int nas_store_batch_begin_whole(nas_store *st, char *err);
/* Commit the batch (one WAL append for all of it); on failure the batch is
 * rolled back as a whole and the error returned. */
int nas_store_batch_commit(nas_store *st, char *err);
/* Roll the whole batch back (nothing of it was acknowledged). No-op
 * without a batch. */
void nas_store_batch_abort(nas_store *st);
/* 1 while a batch is open. */
int nas_store_in_batch(const nas_store *st);

/* ---- commit latency ------------------------------------------------------------------ */

/* How long this handle's COMMITs took, measured around the COMMIT itself
 * (the WAL append and any checkpoint SQLite runs there), so that an
 * operator sees whether the master's writes slow down (a slow disk, a
 * reader holding back checkpoints).  Buckets are cumulative, as in a
 * Prometheus histogram: le[i] counts the commits of at most
 * nas_store_commit_bounds_s[i] seconds; count includes the slower ones. */
#define NAS_STORE_COMMIT_BUCKETS 12
extern const double nas_store_commit_bounds_s[NAS_STORE_COMMIT_BUCKETS];

typedef struct nas_store_commit_stats {
    int64_t count;                          /* commits that succeeded */
    double sum_s, max_s;                    /* their total and longest time */
    int64_t le[NAS_STORE_COMMIT_BUCKETS];   /* cumulative counts per bound */
} nas_store_commit_stats;

/* The handle's figures since it was opened (all zero for a reader). */
void nas_store_commit_stats_get(const nas_store *st, nas_store_commit_stats *out);

/* ---- strategy history (incremental strategy state) ---------------------------------- */

/* Mark a search task as the strategy's observation number `seq` (0, 1, 2,
 * ...: its index in the strategy's history), `ok` saying whether it was
 * observed as a success.  Written in the same transaction as the result or
 * failure it observed, it lets the strategy's history be rebuilt from the
 * store on resume (nas_store_search_each) instead of being rewritten into
 * the state blob at every step.  NAS_ENOTFOUND for no such search task,
 * NAS_ESTATE when `seq` is taken by another task. */
int nas_store_task_observed(nas_store *st, int64_t task_id, int64_t seq, int ok, char *err);

/* One search task as the strategy's history sees it. */
typedef struct nas_store_search_row {
    int64_t task_id;
    uint64_t arch_hash;
    const char *text; /* canonical genome text, valid during the callback */
    int has_parent;
    uint64_t parent_hash;
    /* observations only: */
    int64_t seq;     /* observation number */
    int ok;          /* observed as a success (then the result's fields follow) */
    int has_result;  /* the task has a result row */
    double accuracy; /* result accuracy (0 without a result) */
    int64_t params, macs;
} nas_store_search_row;

typedef int (*nas_store_search_fn)(void *ctx, const nas_store_search_row *row, char *err);

/* Walk the search stage's proposals (observed = 0: every search task in
 * the order it was added) or observations (observed = 1: every observed
 * task by observation number).  A negative return from fn stops the walk
 * and is returned. */
int nas_store_search_each(nas_store *st, int observed, nas_store_search_fn fn, void *ctx,
                          char *err);

/* ---- reading back ---------------------------------------------------------------- */

typedef struct nas_store_task_info {
    int64_t id;
    uint64_t arch_hash;
    char arch_text[NAS_STORE_TEXT_MAX];
    int stage, state, attempt;
    char worker[NAS_STORE_NAME_MAX]; /* last lessee, "" if never leased */
    /* The last lessee's host and key, when the lease recorded them (from
     * schema version 5 on, and nas_store_task_lease); else unknown. */
    int lease_ident_known;
    char lease_host[NAS_STORE_HOST_MAX];
    char lease_key[NAS_STORE_NAME_MAX];
    int64_t lease_expiry_ms; /* 0 unless leased */
    nas_fidelity fidelity;
    int has_parent;
    uint64_t parent_hash;
    int64_t created_ms, finished_ms;    /* finished_ms is 0 until done or failed */
    int failure_kind;                   /* enum nas_store_failure_kind, -1 if none */
    char failure[NAS_STORE_REASON_MAX]; /* last failure reason, "" if none */
} nas_store_task_info;

/* Tasks in `state` (or NAS_STORE_TASK_ANY) and `stage` (or ANY), ordered by
 * id.  *out is malloc'd (nas_free); returns the count. */
int nas_store_task_list(nas_store *st, int state, int stage, nas_store_task_info **out, char *err);

/* One task by id; NAS_ENOTFOUND if absent. */
int nas_store_task_get(nas_store *st, int64_t task_id, nas_store_task_info *out, char *err);

/* An architecture as first recorded.  `genome` is malloc'd (nas_free; NULL
 * when none was given), e.g. to rebuild a queued task's genome on resume. */
typedef struct nas_store_arch_info {
    uint64_t hash;
    char text[NAS_STORE_TEXT_MAX];
    uint8_t *genome;
    size_t genome_len;
    int64_t params, macs, created_ms;
} nas_store_arch_info;
/* NAS_ENOTFOUND if the store never saw the hash. */
int nas_store_arch_get(nas_store *st, uint64_t hash, nas_store_arch_info *out, char *err);

typedef struct nas_store_counts {
    int64_t queued, leased, done, failed;
} nas_store_counts;
int nas_store_task_counts(nas_store *st, int stage, nas_store_counts *out, char *err);
/* The same over the tasks with lo <= id < hi only (a range of the table:
 * the live master's status counts the tasks after its oldest live one). */
int nas_store_task_counts_range(nas_store *st, int stage, int64_t lo, int64_t hi,
                                nas_store_counts *out, char *err);

/* A result joined with its task and architecture. */
typedef struct nas_store_record {
    int64_t task_id;
    int64_t seq; /* order of completion, from 1 */
    uint64_t arch_hash;
    char arch_text[NAS_STORE_TEXT_MAX];
    int stage, attempt;
    double accuracy, loss, test_accuracy; /* test_accuracy NAN if absent */
    float *curve;                         /* n_curve values, owned by the array */
    int n_curve;
    int64_t params, macs;
    double seconds;
    char worker[NAS_STORE_NAME_MAX];
    int64_t finished_ms;
    int has_parent;                        /* a child of an earlier architecture (evolution) */
    uint64_t parent_hash;                  /* whose weights it inherited */
    char parent_text[NAS_STORE_TEXT_MAX];  /* the parent's text ("" if unknown) */
} nas_store_record;

/* Free an array returned by the functions below (NULL allowed). */
void nas_store_records_free(nas_store_record *recs, int n);

/* The k best results of `stage` by validation accuracy (ties: the earlier
 * result first).  Returns the count (<= k). */
int nas_store_best(nas_store *st, int stage, int k, nas_store_record **out, char *err);

/* The result of one task: 1 with *out (one record, nas_store_records_free),
 * 0 when it has none. */
int nas_store_result_get(nas_store *st, int64_t task_id, nas_store_record **out, char *err);

/* Every result of `stage` in the order it was recorded. */
int nas_store_history(nas_store *st, int stage, nas_store_record **out, char *err);

/* A result as nas_store_result_scan reads it: the figures a summary of the
 * whole history needs (status, fidelity ranks), without the architecture's
 * text or the curve's values, whose copying and parsing made a read of
 * 100,000 results take seconds. */
typedef struct nas_store_result_row {
    int64_t task_id;
    int64_t seq; /* order of completion, from 1 */
    int stage, state;
    const nas_fidelity *fidelity; /* the task's, valid during the call only */
    uint64_t arch_hash;
    double accuracy, test_accuracy; /* as nas_store_history reads them (test NAN if absent) */
    int n_curve;                    /* the learning curve's length */
    int64_t finished_ms;
} nas_store_result_row;

/* Every result, both stages, in task order, given to fn one by one (a
 * negative return stops the scan and is returned, err filled by fn).
 * Nothing is allocated per result.  NAS_OK or the store's error. */
typedef int (*nas_store_result_fn)(void *ctx, const nas_store_result_row *r, char *err);
int nas_store_result_scan(nas_store *st, nas_store_result_fn fn, void *ctx, char *err);

/* The strategy state: *blob malloc'd (nas_free), *seq counts the writes.
 * NAS_ENOTFOUND when none was written yet. */
int nas_store_strategy_load(nas_store *st, uint8_t **blob, size_t *len, int64_t *seq, char *err);

/* Write the strategy state alone (e.g. after a load-time migration). */
int nas_store_strategy_save(nas_store *st, const void *blob, size_t len, int64_t now_ms, char *err);

/* ---- workers, events, weights ------------------------------------------------------ */

/* A worker registered or sent a heartbeat: insert it or update host, cores,
 * version and last_seen (first_seen is kept). */
int nas_store_worker_seen(nas_store *st, const char *name, const char *host, int cores,
                          const char *version, int64_t now_ms, char *err);

/* Bind a worker's name to its CurveZMQ key name: the first key recorded
 * keeps the name for good (a later call with another key changes nothing).
 * The worker's row must exist (nas_store_worker_seen). */
int nas_store_worker_bind(nas_store *st, const char *name, const char *key, char *err);

/* The key name `name` is bound to, into key[cap]: 1 when bound, 0 when the
 * name is unknown or bound to no key, negative on a store error. */
int nas_store_worker_key(nas_store *st, const char *name, char *key, size_t cap, char *err);

typedef struct nas_store_worker_info {
    char name[NAS_STORE_NAME_MAX], host[NAS_STORE_NAME_MAX], version[NAS_STORE_NAME_MAX];
    int cores;
    int64_t first_seen_ms, last_seen_ms, tasks_done;
} nas_store_worker_info;
/* Every worker, by name. *out malloc'd (nas_free); returns the count. */
int nas_store_worker_list(nas_store *st, nas_store_worker_info **out, char *err);

/* Append an event ("lease-expired", "worker-joined", ...) to the log. */
int nas_store_event_append(nas_store *st, int64_t now_ms, const char *kind, const char *text,
                           char *err);

/* The circuit breaker's events: a master that halts the campaign appends the first, and
 * a master that opens a halted campaign the second, so the log alone tells whether the
 * campaign stands halted (nas_store_halted) without a master to ask. */
#define NAS_STORE_EVENT_HALTED  "campaign-halted"
#define NAS_STORE_EVENT_RESUMED "campaign-resumed"
/* 1 with the halt's text in text (cap bytes) when the log's last breaker event is a halt, 0
 * when there is none or a resume came after it, negative on error. */
int nas_store_halted(nas_store *st, char *text, size_t cap, char *err);

typedef struct nas_store_event_info {
    int64_t id, time_ms;
    char kind[NAS_STORE_NAME_MAX];
    char text[NAS_STORE_REASON_MAX];
} nas_store_event_info;
/* Events with id > after_id, oldest first, at most `limit`. */
int nas_store_event_list(nas_store *st, int64_t after_id, int limit, nas_store_event_info **out,
                         char *err);

/* Weights index: where an architecture's trained weights lie on disk. */
int nas_store_weights_put(nas_store *st, uint64_t arch_hash, const char *path, int64_t bytes,
                          int64_t now_ms, char *err);
/* NAS_ENOTFOUND if none; path is copied into buf (cap bytes). */
int nas_store_weights_get(nas_store *st, uint64_t arch_hash, char *path, size_t cap, int64_t *bytes,
                          char *err);
int nas_store_weights_drop(nas_store *st, uint64_t arch_hash, char *err);
/* Totals of the weights index (architectures with a file, their bytes on
 * disk), for nasctl status with the master down.  NAS_EDB on failure. */
int nas_store_weights_totals(nas_store *st, int64_t *archs, int64_t *bytes, char *err);

/* ---- integrity ---------------------------------------------------------------------- */

/* Check the file and the store's own invariants: SQLite's quick_check and
 * foreign keys, every done task has its one result and every result a done
 * task, leases carry a worker, an expiry and an attempt >= 1, no finished
 * task holds a lease, no result names an attempt that was never leased.
 * NAS_OK, or NAS_EFORMAT naming the first broken rule and a row.  For
 * nasctl and for tests after a crash; it reads every table. */
int nas_store_check(nas_store *st, char *err);

/* ---- encodings shared with nasctl --------------------------------------------------- */

/* The fidelity as a flat JSON object with every field; returns the length
 * or NAS_ERANGE when cap is too small. */
int nas_store_fidelity_to_json(const nas_fidelity *f, char *buf, size_t cap);
/* Parse it back.  Missing keys keep their nas_fidelity_default() values
 * and unknown keys are skipped, so older rows stay readable. */
int nas_store_fidelity_from_json(const char *json, nas_fidelity *f, char *err);

/* One result as a JSON object (for nasctl history/best/export):
 * {"task":3,"seq":1,"arch":"00000000000000ff","text":"n=...","stage":"search",
 *  "attempt":1,"accuracy":0.9,"loss":0.3,"test_accuracy":null,"curve":[0.5,0.9],
 *  "params":1000,"macs":20000,"seconds":1.5,"worker":"w1","finished_ms":4000}
 * Hashes are 16 hex digits (JSON numbers lose bits above 2^53), absent
 * numbers are null, strings are escaped.  Returns the length or NAS_ERANGE
 * when cap is too small. */
int nas_store_record_to_json(const nas_store_record *r, char *buf, size_t cap);

const char *nas_store_stage_name(int stage);
const char *nas_store_task_state_name(int state);

/* ---- testing -------------------------------------------------------------------------- */

/* Fault injection: the n-th statement step from now (1-based) fails as a
 * disk I/O error would; 0 disables.  Lets tests check that every state
 * change is atomic at every statement.  Per handle, so no globals. */
void nas_store_fail_after(nas_store *st, int n);

#endif
