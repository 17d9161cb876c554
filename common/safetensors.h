/*
 * safetensors.h - named float32 tensors in the safetensors format.
 *
 * The format (huggingface/safetensors): an 8-byte little-endian header
 * length N, then N bytes of JSON,
 *   {"__metadata__": {"k": "v", ...},
 *    "cell3/block1/a/dw": {"dtype": "F32", "shape": [16, 1, 3, 3],
 *                          "data_offsets": [begin, end]}, ...}
 * then the data buffer, where each tensor's bytes are little-endian values
 * at [begin, end) relative to the start of the buffer.  PyTorch users load
 * it with safetensors.torch.load_file() or a few lines of struct + json.
 *
 * nasd stores model weights keyed by stable parameter paths (ARCHITECTURE.md,
 * Weight store), so weights move between the trainer, the parameter server, disk and
 * the wire in one format.  Only F32 is read or written; any other dtype is
 * refused by name.  Reading validates everything before trusting it:
 * header length bounds, the JSON, dtype, shapes (overflow-checked), that
 * offsets lie inside the buffer, match the shape's byte count and do not
 * overlap.  Writing to disk is atomic: a temporary file in the same
 * directory is written, fsync'd and renamed over the target, so a crash
 * leaves either the old file or the new one, never half of one.
 */
#ifndef NAS_SAFETENSORS_H
#define NAS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define NAS_SAFETENSORS_MAX_DIMS   8
#define NAS_SAFETENSORS_MAX_HEADER ((uint64_t)100 << 20) /* as the reference reader: 100 MB */
#define NAS_SAFETENSORS_MAX_NAME   512                   /* bytes, parameter paths are short */

/* One tensor: the input to encode/save, and what a loaded file holds. */
typedef struct nas_safetensors_tensor {
    const char *name;                        /* parameter path, unique, UTF-8 */
    int ndim;                                /* 0 (scalar) .. NAS_SAFETENSORS_MAX_DIMS */
    int64_t shape[NAS_SAFETENSORS_MAX_DIMS]; /* each >= 0 */
    const float *data;                       /* numel floats (may be NULL if numel == 0) */
} nas_safetensors_tensor;

/* One string pair of the "__metadata__" object. */
typedef struct nas_safetensors_meta {
    const char *key;
    const char *value;
} nas_safetensors_meta;

/* A loaded file.  Everything it points to is owned by it and freed by
 * nas_safetensors_destroy(); tensor data is 64-byte aligned. */
typedef struct nas_safetensors {
    size_t count; /* tensors, in header order */
    nas_safetensors_tensor *tensors;
    size_t nmeta; /* metadata pairs, in header order */
    nas_safetensors_meta *meta;
    void *priv; /* internal storage */
} nas_safetensors;

/* Elements of a tensor (product of the shape; 1 for a scalar), or -1 if
 * the shape is invalid or the product overflows. */
int64_t nas_safetensors_numel(const nas_safetensors_tensor *t);

/* Serialise tensors and metadata into a new buffer (*out, nas_free it).
 * The header is padded with spaces to a multiple of 8 bytes so the data
 * buffer is aligned.  Returns 0, NAS_EINVAL (a bad name, shape, duplicate
 * or NULL data; err names the tensor) or NAS_ENOMEM. */
int nas_safetensors_encode(const nas_safetensors_tensor *tensors, size_t count,
                           const nas_safetensors_meta *meta, size_t nmeta, uint8_t **out,
                           size_t *out_len, char *err);

/* encode, then write atomically to `path` (temporary file in the same
 * directory, fsync, rename, fsync of the directory).  Returns 0, an encode
 * error, or NAS_EIO with the failing step and path in err. */
int nas_safetensors_save(const char *path, const nas_safetensors_tensor *tensors, size_t count,
                         const nas_safetensors_meta *meta, size_t nmeta, char *err);

/* Parse and validate a safetensors image in memory (from disk or the
 * wire); the result copies what it needs, buf may be freed afterwards.
 * Returns 0, NAS_EFORMAT (err: "safetensors: ...", naming the tensor or
 * the byte offset), NAS_EUNSUPPORTED (a dtype other than F32) or
 * NAS_ENOMEM.  *out is untouched on failure. */
int nas_safetensors_parse(const void *buf, size_t len, nas_safetensors **out, char *err);

/* Read `path` and parse it; file errors are NAS_ENOTFOUND / NAS_EIO and
 * format errors are prefixed with the path. */
int nas_safetensors_load(const char *path, nas_safetensors **out, char *err);

/* The tensor called `name`, or NULL. */
const nas_safetensors_tensor *nas_safetensors_find(const nas_safetensors *st, const char *name);

/* The metadata value for `key`, or NULL. */
const char *nas_safetensors_meta_get(const nas_safetensors *st, const char *key);

/* Free a loaded file and null the pointer; NULL is fine. */
void nas_safetensors_destroy(nas_safetensors **st);

#endif
