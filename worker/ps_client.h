/*
 * ps_client.h - the worker's side of the parameter server: pull a parent's
 * trained tensors before training, push the child's after (ARCHITECTURE.md, Weight store,
 * docs/PROTOCOL.md "Weights").
 *
 * The client owns one DEALER connected to the master's bulk ROUTER
 * (listen.weights), separate from the agent's control socket, so a
 * transfer never delays a heartbeat.  Each call is one request and one
 * answer, matched by sequence number: an answer that arrives after its
 * call timed out is recognised as stale and dropped by the next call.
 *
 * Inheritance never makes a task fail: a parent the master no longer
 * holds, a timeout, a corrupted frame or a manifest of the wrong
 * architecture all end in fresh initialisation, logged with the reason.
 * The client is used by one thread (the worker's task thread).
 */
#ifndef NAS_PS_CLIENT_H
#define NAS_PS_CLIENT_H

#include "common/genome.h"
#include "common/inherit.h"
#include "common/keys.h"
#include "common/net.h"
#include "common/safetensors.h"

#include <stddef.h>
#include <stdint.h>

typedef struct nas_ps_client nas_ps_client;

/* Received weights: tensors point into the received frame. */
typedef struct nas_ps_weights nas_ps_weights;

/* Connect a DEALER to `endpoint` on the caller's ZeroMQ context (which
 * must outlive the client).  timeout_ms bounds every call (default 30000
 * when <= 0).  A NULL or empty endpoint makes a client that waits for one
 * (nas_ps_client_set_endpoint); until then pulls and pushes fail with
 * NAS_ESTATE.  NAS_EINVAL (no context, endpoint too long), NAS_EIO
 * (socket), NAS_ENOMEM. */
int nas_ps_client_create(nas_ps_client **out, void *zctx, const char *endpoint, int timeout_ms,
                         char *err);
/* The same over CurveZMQ (docs/SECURITY.md): the worker's key pair and the
 * master's public key (Z85), as for the control socket.  NAS_EINVAL when
 * either is missing or malformed. */
int nas_ps_client_create_curve(nas_ps_client **out, void *zctx, const char *endpoint,
                               int timeout_ms, const nas_keypair *keys, const char *server_key,
                               char *err);
void nas_ps_client_destroy(nas_ps_client **cp);

/* Use `endpoint` from the next pull or push on (callable from any thread:
 * the agent learns the endpoint while the task thread owns the socket,
 * which moves there at its next call).  NAS_EINVAL if empty or too long. */
int nas_ps_client_set_endpoint(nas_ps_client *c, const char *endpoint, char *err);

/* The endpoint a worker should use for an announced one: unchanged,
 * except that a wildcard host (0.0.0.0, "*" or [::] in a tcp endpoint)
 * becomes the host of `master` (the control endpoint the worker
 * connected to), its port kept.  NAS_EINVAL when a wildcard cannot be
 * replaced (master not tcp://), NAS_ERANGE when out is too small. */
int nas_ps_endpoint_resolve(const char *announced, const char *master, char *out, size_t cap,
                            char *err);

/* Pull architecture `arch`.  NAS_OK with *out; NAS_ENOTFOUND when the
 * store does not hold it; NAS_ETIMEDOUT; NAS_EFORMAT when the frame fails
 * its checks (a checksum, a shape against its byte count: err names the
 * tensor); NAS_EPROTO when the answer names another architecture or is
 * an error from the master (err carries its message). */
int nas_ps_client_pull(nas_ps_client *c, uint64_t arch, nas_ps_weights **out, char *err);

/* The tensors of pulled weights (valid while w lives); *n gets the count. */
const nas_safetensors_tensor *nas_ps_weights_tensors(const nas_ps_weights *w, size_t *n);
void nas_ps_weights_destroy(nas_ps_weights **wp);

/* Push every tensor of the compiled `net` as architecture `arch`'s
 * weights and wait for the master's ACK.  NAS_OK once stored;
 * NAS_ETIMEDOUT; NAS_EINVAL for a net without parameters; or the master's
 * refusal code with its message in err (NAS_EVERSION from a master of
 * another weights protocol).
 *
 * Zero copy, and the lifetime contract that comes with it: the net's
 * parameter block is checksummed in place and lent to ZeroMQ as the data
 * frame (zmq_msg_init_data), so ZeroMQ's I/O thread reads it after
 * zmq_msg_send returns.  The call therefore returns only once ZeroMQ has
 * released the block (its free callback ran):
 *   - after an answer, it waits for the release (at most timeout_ms; it
 *     follows within one turn of the I/O thread, since the answer means
 *     every byte was sent), and past that treats the push as failed below;
 *   - after a timeout, a send error or a failed handshake, the block may
 *     still be queued or half sent: the socket is closed (linger 0, so
 *     libzmq drops the queued message) and the call waits for the release,
 *     without a bound, warning every 5 s, before it opens and connects a
 *     new socket.  A stalled peer therefore costs at most timeout_ms plus
 *     the close.
 * So when the call returns, whatever it returns, nothing of ZeroMQ's
 * refers to the block: the caller may train, change or free the net.  The
 * net must not change while the call runs (it is const, and the client is
 * one thread's). */
int nas_ps_client_push(nas_ps_client *c, uint64_t arch, const nas_net *net, char *err);

/* For tests of that contract: 1 while a pushed block is lent to ZeroMQ
 * (never after nas_ps_client_push returned), and how many loans ZeroMQ
 * has ended since the client was made (one per push that got as far as
 * lending its block). */
int nas_ps_client_block_lent(const nas_ps_client *c);
uint64_t nas_ps_client_block_releases(const nas_ps_client *c);

/* The worker's whole inheritance step: initialise the compiled `net`
 * fresh for `seed` (nas_inherit_init), pull `parent` and apply what
 * matches.  Returns the number of inherited tensors (>= 1), or 0 when the
 * net stays fresh, with the reason in err (not found, timeout, corrupted
 * frame, nothing matched); both outcomes are logged.  *st (may be NULL)
 * gets the match counts.  The net is always in a trainable state after
 * the call; train it with init_params = 0. */
int nas_ps_client_inherit(nas_ps_client *c, uint64_t parent, nas_net *net, uint64_t seed,
                          nas_inherit_stats *st, char *err);

/* The same for a chain genome `child` built at F channels: the parent's
 * tensors go in through the network-morphism rule (common/morph.h), so a
 * morphism child computes its parent's function at birth; `noise` breaks
 * the symmetry of copied units (0: none). */
int nas_ps_client_inherit_chain(nas_ps_client *c, uint64_t parent, nas_net *net,
                                const nas_genome *child, int F, uint64_t seed, float noise,
                                nas_inherit_stats *st, char *err);

#endif
