/*
 * status.h - the campaign status document when no master answers: the same
 * JSON shape nas-master serves on its status endpoint
 * (nas_campaign_status_json), rebuilt from the campaign's database alone,
 * and the human-readable rendering nasctl prints for either.
 *
 * Fields of the document: source ("master" or "database"), campaign,
 * strategy, phase, db, budget, done, queued, in_flight, failed, final_done,
 * evaluations_per_hour, rank_correlation (null when unknown), best (null or
 * {task, arch, accuracy, test_accuracy, params, macs}), and
 * dispatcher.workers[] ({name, host, cores, state, task, epoch, epochs,
 * tasks_done, last_seen_ms_ago}, and from a live master engine: {blas,
 * blas_kernels, isa, blas_threads}, what the worker said it computes on in
 * its Register), and weights (the live store's figures,
 * master/weights.h nas_weights_stats_json, with "live": true; from the
 * database {live: false, bytes_disk, archs_disk, bytes_memory: null,
 * archs_memory: null}, or null), and resources and fidelity_ranks
 * (master/status_fidelity.h).  From the database, worker states are
 * "busy" (a task is leased to it) or "seen", and epochs are unknown (0).
 * A live master adds "insecure" (true when a plaintext socket is reachable
 * from other machines) and "security" ({curve, loopback_only, and with
 * keys authorized_keys, handshakes_accepted, handshakes_rejected}) and
 * "commits" (nas_status_json_commits); the database cannot know them and
 * leaves them out.
 */
#ifndef NAS_STATUS_H
#define NAS_STATUS_H

#include "common/json.h"
#include "master/store.h"

#include <stdio.h>

/* Write one result as a JSON object ({seq, task, stage, arch, hash,
 * accuracy, test_accuracy, params, macs, seconds, worker, attempt, parent,
 * lineage}): the
 * status document's "best", the live master's answer and `nasctl best` /
 * `history --json` all use it, so their shapes cannot drift apart. */
void nas_status_json_record(nas_json_buf *b, const nas_store_record *r);

/* The same object with a last key "status" ("done", "stopped") when status
 * is not NULL: `nasctl history --json`, whose CSV has that column too. */
void nas_status_json_record_status(nas_json_buf *b, const nas_store_record *r,
                                   const char *status);

/* The "commits" member of a live master's document: its store's commit
 * latency (nas_store_commit_stats) as {count, sum_seconds, max_seconds,
 * buckets: [[le_seconds, cumulative count], ...]}.  The database alone
 * cannot know it, so nas_status_from_store leaves it out. */
void nas_status_json_commits(nas_json_buf *b, const nas_store_commit_stats *c);

/* A result's lineage: "" without a parent, else what changed from the
 * parent (nas_genome_lineage: the morphism of a chain child), or "child of
 * <parent hash>" when a genome does not parse. */
void nas_status_lineage(const nas_store_record *r, char *buf, size_t cap);

/* The value of "key: value" in a campaign's canonical config lines
 * (nas_store_campaign_info.canonical) into out, or "" when absent. */
void nas_status_canonical_value(const char *canon, const char *key, char *out, size_t cap);

/* Build the document from an open store (read-only is fine).  Returns a
 * malloc'd string (nas_free) or NULL with err filled. */
char *nas_status_from_store(nas_store *st, int64_t now_wall_ms, char *err);

/* Print a status document for people.  NAS_EFORMAT + err if `json` is not
 * a status document. */
int nas_status_print(const char *json, FILE *f, char *err);

#endif
