/*
 * wire_weights.h - weight transfers on the bulk socket: pull, reply, push
 * and ack (proto/nas.proto "weight transfers", docs/PROTOCOL.md "Weights").
 *
 * The control socket (common/wire.h) carries small envelopes and must
 * never wait behind megabytes of tensors, so weights travel on a second
 * ROUTER/DEALER pair (config listen.weights).  A transfer is an Envelope
 * whose payload is a manifest (architecture, then per tensor: path, shape,
 * byte offset, checksum) followed by exactly one raw data frame holding the
 * float32 tensors back to back in manifest order.  The data frame is never
 * re-encoded: the sender hands ZeroMQ the bytes it already has (a net's
 * parameter block, the store's buffer), and the receiver reads them in
 * place from the received frame.
 *
 * Every tensor carries a checksum made by the function the message names
 * (checksum_kind): XXH3-64 for everything written now, FNV4 (the first
 * protocol's function) for messages and files from before the field
 * existed.  One helper, nas_wire_weights_verify(kind, ...), checks either,
 * so old files and old peers verify on the same path as new ones.
 *
 * Nothing received is trusted: nas_wire_weights_recv() checks the
 * envelope, the manifest (paths non-empty, unique and short; shapes
 * non-negative and overflow-free; offsets contiguous from 0; the sum equal
 * to the frame length) and every tensor's checksum before it returns
 * NAS_OK.  The caller checks the fourth item, that the architecture is the
 * one it asked for.
 */
#ifndef NAS_WIRE_WEIGHTS_H
#define NAS_WIRE_WEIGHTS_H

#include "common/safetensors.h"
#include "common/wire.h"

#include <stddef.h>
#include <stdint.h>

/* Message types of the bulk socket (naspb MsgType values). */
enum nas_weights_msg_type {
    NAS_MSG_WEIGHTS_PULL = 14,
    NAS_MSG_WEIGHTS_REPLY = 15,
    NAS_MSG_WEIGHTS_PUSH = 16,
    NAS_MSG_WEIGHTS_ACK = 17,
};

/* Checksum functions (naspb ChecksumKind; the wire field and the file
 * metadata say which one made a manifest's checksums). */
enum nas_checksum_kind {
    NAS_CHECKSUM_FNV4 = 0, /* four FNV-1a 64 lanes: the value of an absent field */
    NAS_CHECKSUM_XXH3 = 1, /* XXH3-64, seed 0 (libxxhash): what new messages use */
    NAS_CHECKSUM_KINDS,
};

/* What a new manifest is checksummed with. */
#define NAS_CHECKSUM_DEFAULT NAS_CHECKSUM_XXH3

/* Envelope.protocol on the bulk socket (docs/PROTOCOL.md 7.1).  Version 1
 * is the first release's: FNV4 checksums only, no checksum_kind.  Version
 * 2 added checksum_kind (XXH3).  Pulls and pushes go out as version 2;
 * a reply in the version of the pull it answers (FNV4 for version 1);
 * ACK and Error, the same in both, as version 1.  Decoders accept both,
 * so an old worker is served what it verifies, and an old master refuses
 * a version-2 request with an Error naming the version instead of a
 * checksum mismatch. */
#define NAS_WEIGHTS_PROTOCOL_V1 1
#define NAS_WEIGHTS_PROTOCOL    2

/* Tensors in one transfer, at most: a cell network has a few hundred. */
#define NAS_WIRE_WEIGHTS_MAX_TENSORS 8192

/* One tensor of a manifest.  name is owned by the message. */
typedef struct nas_wire_weights_tensor {
    char *name;
    int ndim;
    int64_t shape[NAS_SAFETENSORS_MAX_DIMS];
    uint64_t offset;   /* bytes into the data frame */
    uint64_t nbytes;   /* 4 * numel, derived from the shape */
    uint64_t checksum; /* the message's checksum_kind of the tensor's bytes */
} nas_wire_weights_tensor;

/* One bulk message.  PULL uses arch; REPLY and PUSH use arch, found (REPLY
 * only; a PUSH is always found) and the manifest; ACK uses arch, code and
 * message; a refusal is the control protocol's Error (type NAS_MSG_ERROR,
 * code < 0 and message), so that any peer, even one that does not speak
 * the bulk messages, can read why it was refused. */
typedef struct nas_wire_weights_msg {
    int type; /* enum nas_weights_msg_type */
    uint64_t seq;
    uint64_t arch;
    int found;
    size_t n;                         /* tensors */
    nas_wire_weights_tensor *tensors; /* n entries, heap (nas_free via fini) */
    uint64_t total_bytes;             /* sum of nbytes == data frame length */
    int checksum_kind;                /* enum nas_checksum_kind of every tensor's checksum */
    int protocol;                     /* Envelope.protocol: NAS_WEIGHTS_PROTOCOL or _V1 */
    int code;                         /* ACK: 0 or a negative nas_err */
    char message[NAS_WIRE_REASON_MAX];
} nas_wire_weights_msg;

/* Zero m, set its type, the default checksum kind and this peer's
 * protocol version (set m->protocol = NAS_WEIGHTS_PROTOCOL_V1 and
 * checksum_kind = NAS_CHECKSUM_FNV4 to answer a version-1 peer). */
void nas_wire_weights_msg_init(nas_wire_weights_msg *m, int type);

/* Free the manifest; safe on a zeroed message and twice. */
void nas_wire_weights_msg_fini(nas_wire_weights_msg *m);

/* Fill m's manifest (type REPLY or PUSH, found = 1) from n tensors whose
 * data lie back to back starting at `base` in tensor order (as in a net's
 * parameter block or the store's buffer): names are copied, offsets
 * computed, checksums computed with m->checksum_kind unless `checksums`
 * (n values of that kind) is given.  NAS_EINVAL when a tensor does not
 * start where the previous one ended, has an invalid shape or name, or
 * m->checksum_kind is unknown (err names it), NAS_ENOMEM. */
int nas_wire_weights_manifest(nas_wire_weights_msg *m, const nas_safetensors_tensor *t, size_t n,
                              const void *base, const uint64_t *checksums, char *err);

/* The checksum of a tensor's len bytes with function `kind`:
 *   NAS_CHECKSUM_XXH3: XXH3-64 with seed 0 (libxxhash), SIMD-fast;
 *   NAS_CHECKSUM_FNV4: FNV-1a 64 over little-endian 64-bit words in four
 *     interleaved lanes, the tail bytewise, the lanes folded together with
 *     the length (kept so that files and peers of the first protocol
 *     still verify).
 * Any single changed bit changes either.  kind must be a valid
 * enum nas_checksum_kind (decoders check it before it gets here). */
uint64_t nas_wire_weights_checksum(int kind, const void *data, size_t len);

/* 1 when `want` is the checksum of kind `kind` of the len bytes at data,
 * else 0 (also for an unknown kind): the one check every receiver and the
 * store's file reader make, whichever function wrote the checksum. */
int nas_wire_weights_verify(int kind, const void *data, size_t len, uint64_t want);

/* Copy len bytes from src to dst (not overlapping) and return
 * nas_wire_weights_checksum(kind, src, len), with the data read from
 * memory once: for a sender that copies its tensors into an outgoing
 * frame anyway. */
uint64_t nas_wire_weights_checksum_copy(int kind, void *dst, const void *src, size_t len);

/* The kind's name in files and messages ("xxh3", "fnv4"), and back:
 * parse returns the kind or NAS_EFORMAT for a name it does not know. */
const char *nas_wire_weights_checksum_name(int kind);
int nas_wire_weights_checksum_parse(const char *name);

/* Encode m into a new envelope *out (nas_free), with frames = 1 when it has
 * a manifest with bytes, in version m->protocol (ACK and Error: 1).  NAS_EINVAL for a message
 * decode would refuse, a version this peer does not speak, or a version-1
 * message with checksums other than FNV4 (its receiver could not verify
 * them). */
int nas_wire_weights_encode(const nas_wire_weights_msg *m, uint8_t **out, size_t *len, char *err);

/* Decode and validate an envelope (not the data frame) of version 1 or 2.
 * NAS_EFORMAT for malformed protobuf or manifest, NAS_EVERSION for another
 * version (err names both), NAS_EPROTO for a type that is not a bulk
 * message, with err naming the problem.  m is zeroed on failure except
 * m->protocol, the envelope's version when it could be read (0 if not),
 * so that a refusal can be answered in a version the sender reads. */
int nas_wire_weights_decode(const void *buf, size_t len, nas_wire_weights_msg *m, char *err);

/* Send [identity] + envelope(m) + the data frame (m->total_bytes bytes at
 * data; data may be NULL when there are none).  ZeroMQ copies the frame
 * once into its own buffer; nothing else copies it. */
int nas_wire_weights_send(void *sock, const void *identity, size_t id_len,
                          const nas_wire_weights_msg *m, const void *data, int dontwait, char *err);

/* A received bulk message; data points into the received frame, which the
 * packet owns until nas_wire_weights_packet_fini(). */
typedef struct nas_wire_weights_packet {
    uint8_t identity[NAS_WIRE_ID_MAX];
    size_t id_len;
    nas_wire_weights_msg msg;
    const uint8_t *data; /* msg.total_bytes bytes, NULL when none */
    void *frame;         /* the zmq_msg_t holding data (internal) */
} nas_wire_weights_packet;

/* Receive one whole multipart message (identity first when router != 0),
 * decode it and verify the data frame against the manifest: length,
 * offsets and every checksum (NAS_EFORMAT naming the tensor).  NAS_EAGAIN
 * when dontwait and nothing waits, NAS_EIO on a socket error.  Every frame
 * of the message is consumed either way; on a decode or verify error the
 * identity and msg.protocol are still set so the caller can answer in a
 * version the sender reads. */
int nas_wire_weights_recv(void *sock, int router, int dontwait, nas_wire_weights_packet *pkt,
                          char *err);
void nas_wire_weights_packet_fini(nas_wire_weights_packet *pkt);

/* The received tensors as safetensors tensors pointing into pkt->data (no
 * copy): *out is a nas_malloc'd array of pkt->msg.n entries, names
 * borrowed from the message.  Data pointers may be unaligned for float;
 * read them with memcpy (common/inherit.c does).  NAS_ENOMEM. */
int nas_wire_weights_view(const nas_wire_weights_packet *pkt, nas_safetensors_tensor **out,
                          char *err);

#endif
