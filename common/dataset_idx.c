/*
 * dataset_idx.c - the IDX reader behind dataset.h (MNIST, Fashion-MNIST).
 *
 * IDX (LeCun's format): a 4-byte magic 0x00 0x00 <type> <ndims>, then ndims
 * big-endian uint32 sizes, then the data in row-major order.  nasd reads
 * type 0x08 (unsigned byte) only: images are N x H x W (magic 0x00000803),
 * labels are N (magic 0x00000801).  Files may be gzip-compressed; zlib
 * reads plain files unchanged, so one code path serves both.
 *
 * Everything in the header is checked before it is used, every size is
 * overflow-checked, and every error names the file and byte offset.
 */
#define _XOPEN_SOURCE 700 /* mkstemp, fsync */
#include "common/alloc.h"
#include "common/dataset.h"
#include "common/err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAX_BYTES ((size_t)1 << 32) /* 4 GiB: far above any real IDX file */

typedef struct idx_header {
    int ndims;
    uint32_t dims[3];
    size_t data_offset; /* first byte after the header */
    size_t data_bytes;  /* product of dims */
} idx_header;

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Validate the header of an IDX file of `want_dims` dimensions and check the
 * file holds exactly the data it announces. */
static int parse_header(const char *base, const uint8_t *b, size_t len, int want_dims,
                        const char *what, idx_header *h, char *err) {
    uint32_t want_magic = 0x800u | (uint32_t)want_dims;
    if (len < 4)
        return nas_set_err(err, NAS_EFORMAT, "%s: offset %zu: file too short for an IDX header",
                           base, len);
    if (b[0] != 0 || b[1] != 0 || (b[3] != want_dims && b[2] == 0x08))
        return nas_set_err(err, NAS_EFORMAT,
                           "%s: offset 0: bad magic 0x%08X (expected 0x%08X for IDX %s)", base,
                           be32(b), want_magic, what);
    if (b[2] != 0x08)
        return nas_set_err(
            err, NAS_EFORMAT,
            "%s: offset 2: data type 0x%02X not supported (only 0x08, unsigned byte)", base, b[2]);
    h->ndims = want_dims;
    h->data_offset = 4 + 4 * (size_t)want_dims;
    if (len < h->data_offset)
        return nas_set_err(err, NAS_EFORMAT,
                           "%s: offset %zu: truncated header (%d dimensions need %zu bytes)", base,
                           len, want_dims, h->data_offset);
    size_t total = 1;
    for (int d = 0; d < want_dims; d++) {
        h->dims[d] = be32(b + 4 + 4 * d);
        if (nas_mul_size(total, h->dims[d], &total) < 0 || total > IDX_MAX_BYTES)
            return nas_set_err(err, NAS_EFORMAT, "%s: offset %d: dimensions overflow (%u)", base,
                               4 + 4 * d, h->dims[d]);
    }
    h->data_bytes = total;
    size_t need = h->data_offset + total;
    if (len < need)
        return nas_set_err(err, NAS_EFORMAT,
                           "%s: offset %zu: truncated: header announces %zu data bytes, file ends"
                           " %zu bytes short",
                           base, len, total, need - len);
    if (len > need)
        return nas_set_err(err, NAS_EFORMAT,
                           "%s: offset %zu: %zu trailing bytes after the announced data", base,
                           need, len - need);
    return 0;
}

int nas_dataset_load_idx(nas_dataset *ds, const char *images_path, const char *labels_path,
                         int classes, int expect_h, int expect_w, char *err) {
    memset(ds, 0, sizeof *ds);
    if (classes < 1 || classes > NAS_DATASET_MAX_CLASSES)
        return nas_set_err(err, NAS_EINVAL, "idx: classes %d outside 1..%d", classes,
                           NAS_DATASET_MAX_CLASSES);
    const char *ibase = nas__dataset_basename(images_path);
    const char *lbase = nas__dataset_basename(labels_path);
    uint8_t *ib = NULL, *lb = NULL;
    size_t ilen = 0, llen = 0;
    idx_header ih = {0}, lh = {0};
    int rc = nas__dataset_read_all(images_path, IDX_MAX_BYTES + 64, &ib, &ilen, err);
    if (rc < 0) goto fail;
    if ((rc = parse_header(ibase, ib, ilen, 3, "images", &ih, err)) < 0) goto fail;
    uint32_t n = ih.dims[0], h = ih.dims[1], w = ih.dims[2];
    rc = NAS_EFORMAT;
    if (n == 0 || n > INT32_MAX) {
        nas_set_err(err, rc, "%s: offset 4: image count %u outside 1..%d", ibase, n, INT32_MAX);
        goto fail;
    }
    if (h < 1 || h > NAS_DATASET_MAX_SIDE || w < 1 || w > NAS_DATASET_MAX_SIDE) {
        nas_set_err(err, rc, "%s: offset 8: image size %ux%u outside 1..%d", ibase, h, w,
                    NAS_DATASET_MAX_SIDE);
        goto fail;
    }
    if ((expect_h > 0 && (int)h != expect_h) || (expect_w > 0 && (int)w != expect_w)) {
        nas_set_err(err, rc, "%s: offset 8: images are %ux%u, expected %dx%d", ibase, h, w,
                    expect_h, expect_w);
        goto fail;
    }
    if ((rc = nas__dataset_read_all(labels_path, IDX_MAX_BYTES, &lb, &llen, err)) < 0) goto fail;
    if ((rc = parse_header(lbase, lb, llen, 1, "labels", &lh, err)) < 0) goto fail;
    rc = NAS_EFORMAT;
    if (lh.dims[0] != n) {
        nas_set_err(err, rc, "%s: offset 4: %u labels but %s has %u images", lbase, lh.dims[0],
                    ibase, n);
        goto fail;
    }
    const uint8_t *labels = lb + lh.data_offset;
    for (uint32_t i = 0; i < n; i++) {
        if (labels[i] >= classes) {
            nas_set_err(err, rc, "%s: offset %zu: label %u out of range 0..%d", lbase,
                        lh.data_offset + i, labels[i], classes - 1);
            goto fail;
        }
    }
    if ((rc = nas_dataset_alloc(ds, (int)n, 1, (int)h, (int)w, classes, err)) < 0) goto fail;
    nas__dataset_u8_to_float(ds->images, ib + ih.data_offset, ih.data_bytes);
    memcpy(ds->labels, labels, n);
    nas_free(ib);
    nas_free(lb);
    return 0;
fail:
    nas_free(ib);
    nas_free(lb);
    nas_dataset_fini(ds);
    return rc;
}

// ----------------------------------------------------------------------------
// Writer

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Write bytes to dir/name atomically: a temporary file beside it (gzip
 * through zlib when gz), fsync, rename.  A reader never sees half a file. */
static int write_atomic(const char *dir, const char *name, const uint8_t *b, size_t n, int gz,
                        char *err) {
    char path[4096], tmp[4096 + 16];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return nas_set_err(err, NAS_EINVAL, "idx: path too long: %.100s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return nas_set_err(err, NAS_EIO, "%s: create: %s", tmp, strerror(errno));
    const char *step = "write";
    int ok;
    if (gz) {
        /* zlib closes the descriptor it is given; keep ours for fsync. */
        int zfd = dup(fd);
        gzFile g = zfd >= 0 ? gzdopen(zfd, "wb6") : NULL;
        if (!g && zfd >= 0) close(zfd);
        ok = g != NULL;
        for (size_t off = 0; ok && off < n;) {
            unsigned chunk = n - off > (1u << 30) ? (1u << 30) : (unsigned)(n - off);
            int w = gzwrite(g, b + off, chunk);
            ok = w > 0;
            off += ok ? (size_t)w : 0;
        }
        if (g && gzclose(g) != Z_OK) ok = 0;
    } else {
        ok = 1;
        for (size_t off = 0; ok && off < n;) {
            ssize_t w = write(fd, b + off, n - off);
            if (w < 0 && errno == EINTR) continue;
            ok = w > 0;
            off += ok ? (size_t)w : 0;
        }
    }
    if (ok) {
        step = "fsync";
        ok = fsync(fd) == 0;
    }
    if (close(fd) != 0 && ok) step = "close", ok = 0;
    if (ok) {
        step = "rename";
        ok = rename(tmp, path) == 0;
    }
    if (!ok) {
        int e = errno;
        unlink(tmp);
        return nas_set_err(err, NAS_EIO, "%s: %s: %s", path, step, e ? strerror(e) : "failed");
    }
    return 0;
}

int nas_dataset_save_idx(const nas_dataset *ds, const char *dir, nas_split split, int gz,
                         char *err) {
    if (ds->c != 1)
        return nas_set_err(err, NAS_EINVAL, "idx: %d channels; IDX images have one", ds->c);
    if (split != NAS_SPLIT_TRAIN && split != NAS_SPLIT_TEST)
        return nas_set_err(err, NAS_EINVAL, "idx: unknown split %d", (int)split);
    const char *prefix = split == NAS_SPLIT_TRAIN ? "train" : "t10k";
    size_t pix = (size_t)ds->n * (size_t)ds->h * (size_t)ds->w;
    uint8_t *ib = nas_malloc(16 + pix), *lb = nas_malloc(8 + (size_t)ds->n);
    int rc;
    if (!ib || !lb) {
        rc = nas_set_err(err, NAS_ENOMEM, "idx: out of memory for %d images", ds->n);
        goto done;
    }
    put_be32(ib, 0x803);
    put_be32(ib + 4, (uint32_t)ds->n), put_be32(ib + 8, (uint32_t)ds->h);
    put_be32(ib + 12, (uint32_t)ds->w);
    for (size_t i = 0; i < pix; i++) {
        float x = ds->images[i];
        /* NaN compares false both ways and lands on 0. */
        x = x > 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f);
        ib[16 + i] = (uint8_t)lrintf(x * 255.0f);
    }
    put_be32(lb, 0x801);
    put_be32(lb + 4, (uint32_t)ds->n);
    memcpy(lb + 8, ds->labels, (size_t)ds->n);
    char iname[64], lname[64];
    snprintf(iname, sizeof iname, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    snprintf(lname, sizeof lname, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    if ((rc = write_atomic(dir, iname, ib, 16 + pix, gz, err)) == 0)
        rc = write_atomic(dir, lname, lb, 8 + (size_t)ds->n, gz, err);
done:
    nas_free(ib);
    nas_free(lb);
    return rc;
}
