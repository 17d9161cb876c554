/*
 * weights.h - the master's weight store, the parameter server of weight
 * inheritance (ARCHITECTURE.md, Weight store).
 *
 * Trained tensors are kept per architecture (canonical genome hash), each
 * as a manifest (path, shape, byte offset, checksum per tensor) plus one
 * contiguous float32 buffer, which is exactly what a pull reply sends.
 *
 * Memory and disk:
 *  - Every put is written through to disk first (one safetensors file per
 *    architecture, "<dir>/<hash>.safetensors", written to a temporary file,
 *    fsync'd and renamed; the checksums ride in its metadata) and indexed
 *    in the store's weights table.  A master killed with -9 therefore
 *    finds every pushed architecture again on resume.
 *  - Memory is a cache over those files under a byte budget
 *    (weights.memory_budget): beyond it the least recently used
 *    architectures leave memory (they stay on disk) until the total is
 *    within the budget again.  The architecture just put or loaded is never
 *    the one evicted, so memory exceeds the budget by at most one
 *    architecture's weights.
 *  - drop() forgets an architecture everywhere (memory, file, index):
 *    the campaign calls it when the strategy says it can no longer be a
 *    parent (regularized evolution: it aged out of the population).
 *
 * A file read back from disk is checked against the checksums it was
 * written with, by the function its "checksum_kind" metadata names (XXH3;
 * absent in files from before it, whose FNV4 checksums still verify and
 * are served as they are); a damaged file is reported and treated as
 * absent, so the child trains from fresh weights rather than from garbage.
 *
 * The store is used from one thread (the master's loop).  Given that
 * loop (nas_weights_config.loop), a pushed architecture's file is written
 * in the loop's thread pool (uv_queue_work): the temporary file, its
 * fsync, the rename and the directory fsync never block heartbeats or
 * dispatch.  The guarantees stay those of the synchronous store:
 *  - the index row is written (on the loop thread) only after the rename
 *    completed, so the index never names a file that is not there;
 *  - the pusher is acknowledged only then (put_packet_async's callback):
 *    an ACK still means "on disk, survives kill -9";
 *  - weights being written are served to pulls at once, count in
 *    bytes_memory and cannot be evicted (the writer thread reads them);
 *  - writes run one at a time in arrival order, so two pushes of one
 *    architecture reach the disk in the order they arrived;
 *  - the loop does not end while a write is pending (a uv_work_t keeps it
 *    alive), so a master that shuts down finishes its writes first.
 * Without a loop (tests, benches, tools) every write happens inside the
 * put call.
 */
#ifndef NAS_WEIGHTS_H
#define NAS_WEIGHTS_H

#include "common/log.h"
#include "common/wire_weights.h"
#include "master/store.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct nas_weights nas_weights;

typedef struct nas_weights_config {
    const char *dir;       /* directory of the weight files, created if missing; NULL: memory
                              only (nothing survives the process, nothing is spilled) */
    int64_t memory_budget; /* bytes of tensors kept in memory, >= 0 */
    nas_store *store;      /* the campaign's store for the weights index; may be NULL */
    uv_loop_t *loop;       /* NULL: files are written inside put; else in this loop's thread
                              pool (put_packet_async), and every call is made on its thread */
} nas_weights_config;

/* Counters for nasctl status and the benches. */
typedef struct nas_weights_stats {
    int64_t bytes_memory; /* tensor bytes held in memory */
    int64_t bytes_disk;   /* bytes of weight files on disk */
    int64_t archs_memory; /* architectures in memory */
    int64_t archs_disk;   /* architectures with a file */
    int64_t hits;         /* gets served from memory */
    int64_t misses;       /* gets not in memory (then read from disk, or not found) */
    int64_t disk_reads;   /* misses served from disk */
    int64_t not_found;    /* gets for an architecture the store does not have */
    int64_t puts, drops, evictions;
    int64_t writes_pending; /* files being written in the thread pool, not yet acknowledged */
} nas_weights_stats;

/* A read-only view of one architecture's weights, valid until the next
 * call that may change the store (put, get, drop, destroy). */
typedef struct nas_weights_view {
    uint64_t arch;
    size_t n;
    const nas_wire_weights_tensor *tensors; /* manifest: paths, shapes, offsets, checksums */
    int checksum_kind;                      /* enum nas_checksum_kind of those checksums */
    const uint8_t *data;                    /* total_bytes bytes, at least 8-byte aligned */
    uint64_t total_bytes;
} nas_weights_view;

/* Create a store.  With a directory, the files already there (a resumed
 * campaign) are counted and served on demand.  NAS_EINVAL for a negative
 * budget, NAS_EIO when the directory cannot be created, NAS_ENOMEM. */
int nas_weights_create(nas_weights **out, const nas_weights_config *cfg, char *err);

/* Free everything held in memory (files stay); accepts NULL, nulls *wp.
 * Writes still pending are finished first (the loop is run until they
 * are, which is why destroy must not be called from one of its
 * callbacks); their callbacks run as usual. */
void nas_weights_destroy(nas_weights **wp);

/* Keep architecture `arch`'s tensors: `manifest` describes them (a
 * validated PUSH, or one made by nas_wire_weights_manifest) and `data`
 * holds manifest->total_bytes bytes.  Both are copied.  An architecture
 * already held is replaced.  The file is written and indexed before the
 * call returns; then the budget is enforced.  NAS_EINVAL (an empty
 * manifest), NAS_EIO (the file), NAS_EDB (the index: e.g. an architecture
 * the store does not know), NAS_ENOMEM, NAS_ESTATE (a write of the same
 * architecture is still pending in the thread pool: it would land after
 * this one); on error nothing changed. */
int nas_weights_put(nas_weights *w, uint64_t arch, const nas_wire_weights_msg *manifest,
                    const void *data, int64_t now_ms, char *err);

/* The same for a verified PUSH packet (nas_wire_weights_recv): the
 * store adopts the packet's manifest and received frame instead of
 * copying them, and the packet is left empty (fini is still safe).
 * Same errors. */
int nas_weights_put_packet(nas_weights *w, nas_wire_weights_packet *pkt, int64_t now_ms, char *err);

/* Outcome of an asynchronous put: rc is NAS_OK once the file is renamed
 * into place and indexed (or, for an architecture dropped meanwhile, once
 * the write finished), else the error with msg naming it.  Called once, on
 * the loop thread. */
typedef void (*nas_weights_done_fn)(void *ctx, uint64_t arch, int rc, const char *msg);

/* put_packet for the loop: with a directory and a loop the packet's
 * tensors are adopted at once (pulls see them, the budget counts them)
 * and the file is written in the thread pool; returns 1 and calls
 * done(ctx, ...) when the write and the index row are done.  A store
 * without a loop or without a directory stores synchronously and returns
 * NAS_OK (done is not called).  Refusals before anything is queued are
 * returned as with put_packet (done is not called). */
int nas_weights_put_packet_async(nas_weights *w, nas_wire_weights_packet *pkt, int64_t now_ms,
                                 nas_weights_done_fn done, void *ctx, char *err);

/* Run the loop until no write is pending (tests, shutdown).  Must not be
 * called from one of the loop's callbacks. */
void nas_weights_wait(nas_weights *w);

/* Look up `arch`: from memory (a hit), else from its file (a miss that
 * loads it into memory, possibly evicting others).  NAS_OK with *view
 * filled, NAS_ENOTFOUND when neither has it (err says so; a damaged file
 * counts as absent and is named in err), NAS_ENOMEM. */
int nas_weights_get(nas_weights *w, uint64_t arch, nas_weights_view *view, char *err);

/* 1 if `arch` is in memory or on disk, else 0 (touches nothing). */
int nas_weights_has(const nas_weights *w, uint64_t arch);

/* Forget `arch` in memory, on disk and in the index.  Returns 1 if it was
 * held, 0 if not, or NAS_EIO / NAS_EDB. */
int nas_weights_drop(nas_weights *w, uint64_t arch, char *err);

/* Architectures held (memory or disk), written into out (up to cap);
 * returns the total count.  For the campaign's drop sweep. */
size_t nas_weights_list(const nas_weights *w, uint64_t *out, size_t cap);

/* Drop every held architecture for which keep(ctx, arch) answers 0; the
 * campaign calls it after each observed result with a predicate that keeps
 * the strategy's live parents (nas_strategy_is_live_parent) and the
 * architectures of outstanding tasks (a child's weights arrive before its
 * result, and a queued child still needs its parent).  Returns the number
 * dropped, or the first drop error. */
int nas_weights_sweep(nas_weights *w, int (*keep)(void *ctx, uint64_t arch), void *ctx, char *err);

void nas_weights_stats_get(const nas_weights *w, nas_weights_stats *out);

/* The stats as a JSON object for the status document:
 * {"bytes_memory":...,"bytes_disk":...,"hits":...,...}. */
void nas_weights_stats_json(const nas_weights *w, char *buf, size_t cap);

// ----------------------------------------------------------------------------
// serving (master/weights_serve.c)

/* Take one message off the bulk ROUTER (ZMQ_DONTWAIT) and answer it: a
 * pull gets a REPLY with the tensors (or found = false), a push is
 * verified (nas_wire_weights_recv checks paths, shapes, checksums) and
 * put, then ACKed with the outcome (for a store with a loop, when its file
 * is written: the router must stay open until the loop has ended).  Anything refused is answered
 * with an ACK carrying the error code and message, and logged; a bad peer never stops the loop.
 * Returns NAS_OK after handling a message, NAS_EAGAIN when none waited, NAS_EIO when the socket
 * failed. */
int nas_weights_serve_one(nas_weights *w, void *router, int64_t now_ms, char *err);

/* The limit on the lines that peers' malformed or refused messages may
 * write (common/log.h), kept with the store for weights_serve.c. */
nas_log_limit *nas__weights_peer_log(nas_weights *w);

#endif
