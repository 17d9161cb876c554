/*
 * dataset.c - see dataset.h: lifecycle, the named-loader dispatch, file
 * reading shared by the format readers, transforms, the per-task recipe and
 * the batch iterator.  The format readers live in dataset_idx.c and
 * dataset_cifar.c.
 *
 * Seeded choices use fixed nas_rng streams so that, e.g., changing the
 * training subset never changes the validation split:
 *   stream 1: validation split, stream 2: subset,
 *   stream 3: per-epoch shuffle, stream 4: per-epoch augmentation.
 */
#include "common/dataset.h"

#include "common/alloc.h"
#include "common/err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define STREAM_SPLIT   1
#define STREAM_SUBSET  2
#define STREAM_SHUFFLE 3
#define STREAM_AUGMENT 4

// ----------------------------------------------------------------------------
// Lifecycle

/* Images are one aligned block so kernels can read batches with vector
 * loads; a zero-image set is valid (an empty validation split). */
int nas_dataset_alloc(nas_dataset *ds, int n, int c, int h, int w, int classes, char *err) {
    memset(ds, 0, sizeof *ds);
    if (n < 0 || c < 1 || c > NAS_DATASET_MAX_CHANNELS || h < 1 || h > NAS_DATASET_MAX_SIDE ||
        w < 1 || w > NAS_DATASET_MAX_SIDE || classes < 1 || classes > NAS_DATASET_MAX_CLASSES)
        return nas_set_err(
            err, NAS_EINVAL,
            "dataset: bad dimensions n=%d c=%d h=%d w=%d classes=%d (limits: c 1..%d,"
            " sides 1..%d, classes 1..%d)",
            n, c, h, w, classes, NAS_DATASET_MAX_CHANNELS, NAS_DATASET_MAX_SIDE,
            NAS_DATASET_MAX_CLASSES);
    size_t pix, bytes;
    if (nas_mul_size((size_t)n, (size_t)c * (size_t)h * (size_t)w, &pix) < 0 ||
        nas_mul_size(pix, sizeof(float), &bytes) < 0)
        return nas_set_err(err, NAS_ENOMEM, "dataset: %d images of %dx%dx%d overflow size_t", n, c,
                           h, w);
    ds->images = nas_aligned_alloc(bytes);
    ds->labels = nas_calloc(n ? (size_t)n : 1, 1);
    if (!ds->images || !ds->labels) {
        nas_dataset_fini(ds);
        return nas_set_err(err, NAS_ENOMEM, "dataset: out of memory for %d images of %dx%dx%d", n,
                           c, h, w);
    }
    ds->n = n, ds->c = c, ds->h = h, ds->w = w, ds->classes = classes;
    return 0;
}

void nas_dataset_fini(nas_dataset *ds) {
    if (!ds) return;
    nas_aligned_free(ds->images);
    nas_free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

/* FNV-1a over 64-bit words (a multiply per 8 bytes keeps 60000 images at
 * tens of milliseconds), finished with nas_mix64 to spread the bits. */
uint64_t nas_dataset_fingerprint(const nas_dataset *ds) {
    const uint64_t prime = 0x100000001b3ULL;
    uint64_t h = 0xcbf29ce484222325ULL;
    const int dims[5] = {ds->n, ds->c, ds->h, ds->w, ds->classes};
    for (int i = 0; i < 5; i++)
        h = (h ^ (uint64_t)(uint32_t)dims[i]) * prime;
    for (int i = 0; i < ds->n; i++)
        h = (h ^ ds->labels[i]) * prime;
    size_t nf = (size_t)ds->n * (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    const float *p = ds->images;
    size_t i = 0;
    for (; i + 2 <= nf; i += 2) {
        uint64_t wv;
        memcpy(&wv, p + i, 8);
        h = (h ^ wv) * prime;
    }
    if (i < nf) {
        uint32_t last;
        memcpy(&last, p + i, 4);
        h = (h ^ last) * prime;
    }
    return nas_mix64(h);
}

// ----------------------------------------------------------------------------
// File reading shared by the format readers

const char *nas__dataset_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Report a zlib read error; zlib prefixes its message with the path,
 * which the message already names. */
static int gz_fail(gzFile g, const char *path, const char *base, size_t at, char *err) {
    int zerr;
    const char *msg = gzerror(g, &zerr);
    size_t pl = strlen(path);
    if (zerr == Z_ERRNO)
        msg = strerror(errno);
    else if (strncmp(msg, path, pl) == 0 && msg[pl] == ':' && msg[pl + 1] == ' ')
        msg += pl + 2;
    return nas_set_err(err, zerr == Z_ERRNO ? NAS_EIO : NAS_EFORMAT,
                       "%s: offset %zu: gzip: %s (offset counts decompressed bytes)", base, at,
                       msg);
}

/* Read a whole file, transparently gunzipping it (zlib reads plain files
 * as they are).  `max` bounds the decompressed size so that a gzip bomb or
 * a wrong path to a huge file fails cleanly instead of exhausting memory. */
int nas__dataset_read_all(const char *path, size_t max, uint8_t **out, size_t *out_len, char *err) {
    const char *base = nas__dataset_basename(path);
    gzFile g = gzopen(path, "rb");
    if (!g) {
        int e = errno;
        return nas_set_err(err, e == ENOENT ? NAS_ENOTFOUND : NAS_EIO, "%s: open: %s", path,
                           e ? strerror(e) : "out of memory");
    }
    gzbuffer(g, 1 << 17); /* bigger than the 8 KiB default: fewer syscalls */
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = nas_malloc(cap);
    int rc = 0;
    if (!buf) {
        rc = nas_set_err(err, NAS_ENOMEM, "%s: out of memory", base);
        goto fail;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= max) {
                rc = nas_set_err(err, NAS_EFORMAT, "%s: offset %zu: file larger than %zu bytes",
                                 base, len, max);
                goto fail;
            }
            size_t ncap = cap * 2 > max ? max : cap * 2;
            uint8_t *nb = nas_realloc(buf, ncap);
            if (!nb) {
                rc = nas_set_err(err, NAS_ENOMEM, "%s: out of memory at %zu bytes", base, ncap);
                goto fail;
            }
            buf = nb, cap = ncap;
        }
        /* Modest chunks: when zlib fails mid-chunk the chunk is lost, so
         * the reported offset is accurate to 64 KiB of decompressed data. */
        size_t want = cap - len > (1u << 16) ? (1u << 16) : cap - len;
        int r = gzread(g, buf + len, (unsigned)want);
        if (r < 0) {
            rc = gz_fail(g, path, base, len, err);
            goto fail;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    /* zlib may report a gzip stream cut short only through gzerror. */
    int zerr;
    gzerror(g, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        rc = gz_fail(g, path, base, len, err);
        goto fail;
    }
    gzclose(g);
    *out = buf;
    *out_len = len;
    return 0;
fail:
    nas_free(buf);
    gzclose(g);
    return rc;
}

/* u8 -> [0, 1] through a table: one load per pixel, identical everywhere. */
void nas__dataset_u8_to_float(float *dst, const uint8_t *src, size_t n) {
    float lut[256];
    for (int i = 0; i < 256; i++)
        lut[i] = (float)i / 255.0f;
    for (size_t i = 0; i < n; i++)
        dst[i] = lut[src[i]];
}

// ----------------------------------------------------------------------------
// Named loaders

/* First of dir/name and dir/name.gz that exists, into buf. */
/* Plain first: an unpacked copy, when someone made one, loads faster. */
static int find_file(char *buf, size_t n, const char *dir, const char *name, char *err) {
    static const char *const suffixes[] = {"", ".gz"};
    for (size_t i = 0; i < NAS_ARRAY_LEN(suffixes); i++) {
        if (snprintf(buf, n, "%s/%s%s", dir, name, suffixes[i]) >= (int)n)
            return nas_set_err(err, NAS_EINVAL, "dataset: path too long: %.100s/%s", dir, name);
        FILE *f = fopen(buf, "rb");
        if (f) {
            fclose(f);
            return 0;
        }
    }
    return nas_set_err(err, NAS_ENOTFOUND, "dataset: neither %s/%s nor %s/%s.gz exists", dir, name,
                       dir, name);
}

/* MNIST and Fashion-MNIST share file names and format: 28x28, 10 classes. */
static int load_idx_named(nas_dataset *ds, const char *dir, nas_split split, char *err) {
    const char *prefix = split == NAS_SPLIT_TRAIN ? "train" : "t10k";
    char iname[64], lname[64], ipath[4096], lpath[4096];
    snprintf(iname, sizeof iname, "%s-images-idx3-ubyte", prefix);
    snprintf(lname, sizeof lname, "%s-labels-idx1-ubyte", prefix);
    int rc = find_file(ipath, sizeof ipath, dir, iname, err);
    if (rc == 0) rc = find_file(lpath, sizeof lpath, dir, lname, err);
    if (rc == 0) rc = nas_dataset_load_idx(ds, ipath, lpath, 10, 28, 28, err);
    return rc;
}

static int load_cifar_named(nas_dataset *ds, const char *dir, nas_split split, char *err) {
    char paths[5][4096];
    const char *ptrs[5];
    int np = split == NAS_SPLIT_TRAIN ? 5 : 1;
    for (int i = 0; i < np; i++) {
        char name[64], sub[4096];
        if (split == NAS_SPLIT_TRAIN)
            snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
        else
            snprintf(name, sizeof name, "test_batch.bin");
        /* The archive unpacks into cifar-10-batches-bin/; accept both. */
        snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
        if (find_file(paths[i], sizeof paths[i], dir, name, err) < 0 &&
            find_file(paths[i], sizeof paths[i], sub, name, err) < 0)
            return nas_set_err(err, NAS_ENOTFOUND, "cifar10: %s not found in %s or %s", name, dir,
                               sub);
        ptrs[i] = paths[i];
    }
    return nas_dataset_load_cifar(ds, ptrs, np, err);
}

int nas_dataset_load(nas_dataset *ds, const char *name, const char *dir, nas_split split,
                     char *err) {
    memset(ds, 0, sizeof *ds);
    if (!name || !dir)
        return nas_set_err(err, NAS_EINVAL, "dataset: name and directory are required");
    if (split != NAS_SPLIT_TRAIN && split != NAS_SPLIT_TEST)
        return nas_set_err(err, NAS_EINVAL, "dataset: unknown split %d", (int)split);
    int rc;
    if (strcmp(name, "fashion-mnist") == 0 || strcmp(name, "mnist") == 0)
        rc = load_idx_named(ds, dir, split, err);
    else if (strcmp(name, "cifar10") == 0)
        rc = load_cifar_named(ds, dir, split, err);
    else
        return nas_set_err(err, NAS_EINVAL,
                           "dataset: unknown data set \"%s\" (fashion-mnist, mnist, cifar10)",
                           name);
    if (rc == 0) snprintf(ds->name, sizeof ds->name, "%s", name);
    return rc;
}

// ----------------------------------------------------------------------------
// Resize by area averaging

/* One output coordinate's taps along an axis: first source index, count and
 * weights.  Working in units of 1/out, output pixel o covers [o*in,
 * (o+1)*in) and source pixel i covers [i*out, (i+1)*out); the overlap is an
 * integer and the weight overlap/in is exact up to float rounding. */
typedef struct taps {
    int start, count;
} taps;

static int build_taps(int in, int out, taps *t, float *wt, int maxtaps) {
    for (int o = 0; o < out; o++) {
        long lo = (long)o * in, hi = (long)(o + 1) * in;
        int first = (int)(lo / out), last = (int)((hi - 1) / out);
        t[o].start = first;
        t[o].count = last - first + 1;
        NAS_ASSERT(t[o].count <= maxtaps);
        for (int i = first; i <= last; i++) {
            long a = (long)i * out, b = a + out;
            long ov = (hi < b ? hi : b) - (lo > a ? lo : a);
            wt[o * maxtaps + (i - first)] = (float)((double)ov / (double)in);
        }
    }
    return 0;
}

/* Area-resize every plane of src into dst, a buffer of src->n * src->c *
 * out_h * out_w floats.  Sizes were validated by the caller. */
static int resize_into(const nas_dataset *src, float *dst, int out_h, int out_w, char *err) {
    int h = src->h, w = src->w;
    int mty = h / out_h + 2, mtx = w / out_w + 2; /* taps per output, upper bound */
    size_t planes = (size_t)src->n * (size_t)src->c;
    taps *ty = nas_malloc((size_t)out_h * sizeof *ty), *tx = nas_malloc((size_t)out_w * sizeof *tx);
    float *wy = nas_malloc((size_t)out_h * (size_t)mty * sizeof *wy);
    float *wx = nas_malloc((size_t)out_w * (size_t)mtx * sizeof *wx);
    float *tmp = nas_malloc((size_t)h * (size_t)out_w * sizeof *tmp);
    int rc = 0;
    if (!ty || !tx || !wy || !wx || !tmp) {
        rc = nas_set_err(err, NAS_ENOMEM, "dataset: out of memory resizing to %dx%d", out_h, out_w);
        goto done;
    }
    build_taps(h, out_h, ty, wy, mty);
    build_taps(w, out_w, tx, wx, mtx);
    for (size_t p = 0; p < planes; p++) {
        const float *sp = src->images + p * (size_t)h * (size_t)w;
        float *o = dst + p * (size_t)out_h * (size_t)out_w;
        /* Horizontal pass into tmp (h x out_w), then vertical into o. */
        for (int y = 0; y < h; y++) {
            const float *row = sp + (size_t)y * w;
            for (int x = 0; x < out_w; x++) {
                const float *wt = wx + x * mtx;
                const float *r = row + tx[x].start;
                float acc = 0;
                for (int k = 0; k < tx[x].count; k++)
                    acc += wt[k] * r[k];
                tmp[(size_t)y * out_w + x] = acc;
            }
        }
        for (int y = 0; y < out_h; y++) {
            float *orow = o + (size_t)y * out_w;
            const float *wt = wy + y * mty;
            for (int x = 0; x < out_w; x++)
                orow[x] = 0;
            for (int k = 0; k < ty[y].count; k++) {
                const float *trow = tmp + (size_t)(ty[y].start + k) * out_w;
                for (int x = 0; x < out_w; x++)
                    orow[x] += wt[k] * trow[x];
            }
        }
    }
done:
    nas_free(ty), nas_free(tx), nas_free(wy), nas_free(wx), nas_free(tmp);
    return rc;
}

static int check_resize(const nas_dataset *ds, int out_h, int out_w, char *err) {
    if (out_h < 1 || out_w < 1 || out_h > ds->h || out_w > ds->w)
        return nas_set_err(err, NAS_EINVAL,
                           "dataset: cannot resize %dx%d images to %dx%d (area averaging only"
                           " downsamples)",
                           ds->h, ds->w, out_h, out_w);
    return 0;
}

int nas_dataset_resize(nas_dataset *ds, int out_h, int out_w, char *err) {
    if (out_h == ds->h && out_w == ds->w) return 0;
    int rc = check_resize(ds, out_h, out_w, err);
    if (rc < 0) return rc;
    size_t planes = (size_t)ds->n * (size_t)ds->c;
    float *dst = nas_aligned_alloc(planes * (size_t)out_h * (size_t)out_w * sizeof(float));
    if (!dst)
        return nas_set_err(err, NAS_ENOMEM, "dataset: out of memory resizing to %dx%d", out_h,
                           out_w);
    if ((rc = resize_into(ds, dst, out_h, out_w, err)) < 0) {
        nas_aligned_free(dst);
        return rc;
    }
    nas_aligned_free(ds->images);
    ds->images = dst;
    ds->h = out_h, ds->w = out_w;
    return 0;
}

/* *dst = src at out_h x out_w: a copy, or a resized copy. */
static int derive(nas_dataset *dst, const nas_dataset *src, int out_h, int out_w, char *err) {
    int rc = check_resize(src, out_h, out_w, err);
    if (rc < 0) return rc;
    if ((rc = nas_dataset_alloc(dst, src->n, src->c, out_h, out_w, src->classes, err)) < 0)
        return rc;
    if (out_h == src->h && out_w == src->w)
        memcpy(dst->images, src->images,
               (size_t)src->n * src->c * (size_t)src->h * src->w * sizeof(float));
    else if ((rc = resize_into(src, dst->images, out_h, out_w, err)) < 0) {
        nas_dataset_fini(dst);
        return rc;
    }
    memcpy(dst->labels, src->labels, (size_t)src->n);
    memcpy(dst->name, src->name, sizeof dst->name);
    return 0;
}

int nas_dataset_copy(nas_dataset *dst, const nas_dataset *src, char *err) {
    return derive(dst, src, src->h, src->w, err);
}

// ----------------------------------------------------------------------------
// Normalisation

/* Population statistics (divide by the count, not count - 1): with
 * millions of pixels the difference is nil, and these are the figures
 * usually quoted (Fashion-MNIST: mean 0.2860, std 0.3530). */
void nas_dataset_channel_stats(const nas_dataset *ds, float *mean, float *std) {
    size_t hw = (size_t)ds->h * (size_t)ds->w;
    for (int ch = 0; ch < ds->c; ch++) {
        /* Two passes in double: the one-pass E[x^2]-E[x]^2 form loses
         * digits over 47M pixels. */
        double sum = 0, sq = 0;
        for (int i = 0; i < ds->n; i++) {
            const float *p = nas_dataset_image(ds, i) + (size_t)ch * hw;
            for (size_t k = 0; k < hw; k++)
                sum += p[k];
        }
        double cnt = (double)ds->n * (double)hw;
        double m = cnt > 0 ? sum / cnt : 0;
        for (int i = 0; i < ds->n; i++) {
            const float *p = nas_dataset_image(ds, i) + (size_t)ch * hw;
            for (size_t k = 0; k < hw; k++)
                sq += (p[k] - m) * (p[k] - m);
        }
        double sd = cnt > 0 ? sqrt(sq / cnt) : 0;
        mean[ch] = (float)m;
        std[ch] = sd > 1e-12 ? (float)sd : 1.0f;
    }
}

/* Multiply by the reciprocal: one division per channel instead of per pixel. */
void nas_dataset_normalize(nas_dataset *ds, const float *mean, const float *std) {
    size_t hw = (size_t)ds->h * (size_t)ds->w;
    for (int i = 0; i < ds->n; i++) {
        float *img = nas_dataset_image(ds, i);
        for (int ch = 0; ch < ds->c; ch++) {
            float m = mean[ch], inv = 1.0f / std[ch];
            float *p = img + (size_t)ch * hw;
            for (size_t k = 0; k < hw; k++)
                p[k] = (p[k] - m) * inv;
        }
    }
}

// ----------------------------------------------------------------------------
// Split and subset

/* New set holding the images whose keep[i] == want, in original order. */
static int take(const nas_dataset *src, const uint8_t *keep, uint8_t want, int count,
                nas_dataset *out, char *err) {
    int rc = nas_dataset_alloc(out, count, src->c, src->h, src->w, src->classes, err);
    if (rc < 0) return rc;
    size_t isz = (size_t)src->c * (size_t)src->h * (size_t)src->w;
    int j = 0;
    for (int i = 0; i < src->n; i++) {
        if (keep[i] != want) continue;
        NAS_ASSERT(j < count);
        memcpy(nas_dataset_image(out, j), nas_dataset_image(src, i), isz * sizeof(float));
        out->labels[j++] = src->labels[i];
    }
    NAS_ASSERT(j == count);
    memcpy(out->name, src->name, sizeof out->name);
    return 0;
}

/* mark[i] = 1 for `count` images chosen by a seeded shuffle (or the last
 * `count` when random == 0). */
static int choose(int n, int count, int random, uint64_t seed, uint64_t stream, uint8_t *mark) {
    memset(mark, 0, (size_t)n);
    if (!random) {
        for (int i = n - count; i < n; i++)
            mark[i] = 1;
        return 0;
    }
    int *perm = nas_malloc((size_t)n * sizeof *perm);
    if (!perm) return NAS_ENOMEM;
    for (int i = 0; i < n; i++)
        perm[i] = i;
    nas_rng r;
    nas_rng_init(&r, seed, stream);
    nas_rng_shuffle_int(&r, perm, (size_t)n);
    for (int i = 0; i < count; i++)
        mark[perm[i]] = 1;
    nas_free(perm);
    return 0;
}

/* Split *ds by choice into (*ds without the chosen, *chosen). */
static int partition(nas_dataset *ds, int count, int random, uint64_t seed, uint64_t stream,
                     nas_dataset *chosen, char *err) {
    nas_dataset rest = {0};
    memset(chosen, 0, sizeof *chosen);
    uint8_t *mark = nas_malloc((size_t)ds->n + 1);
    int rc = NAS_ENOMEM;
    if (!mark || choose(ds->n, count, random, seed, stream, mark) < 0) {
        nas_set_err(err, rc, "dataset: out of memory splitting %d images", ds->n);
        goto fail;
    }
    if ((rc = take(ds, mark, 1, count, chosen, err)) < 0) goto fail;
    if ((rc = take(ds, mark, 0, ds->n - count, &rest, err)) < 0) {
        nas_dataset_fini(chosen);
        goto fail;
    }
    nas_free(mark);
    nas_dataset_fini(ds);
    *ds = rest;
    return 0;
fail:
    nas_free(mark);
    return rc;
}

int nas_dataset_split(nas_dataset *ds, int val_size, int random, uint64_t seed, nas_dataset *val,
                      char *err) {
    memset(val, 0, sizeof *val);
    if (val_size < 0 || val_size >= ds->n)
        return nas_set_err(err, NAS_EINVAL,
                           "dataset: validation size %d must be in 0..%d (the set has %d images)",
                           val_size, ds->n - 1, ds->n);
    return partition(ds, val_size, random, seed, STREAM_SPLIT, val, err);
}

/* The subset uses its own stream (2), so a subset of n images is the same
 * whatever validation split preceded it with the same seed. */
int nas_dataset_subset(nas_dataset *ds, int n, uint64_t seed, char *err) {
    if (n < 0) return nas_set_err(err, NAS_EINVAL, "dataset: subset size %d is negative", n);
    if (n == 0 || n >= ds->n) return 0;
    /* Choose the images to drop, so the kept ones stay in *ds. */
    nas_dataset dropped;
    int rc = partition(ds, ds->n - n, 1, seed, STREAM_SUBSET, &dropped, err);
    nas_dataset_fini(&dropped);
    return rc;
}

// ----------------------------------------------------------------------------
// The per-task recipe

/* Safe on a zeroed struct, as every failure path of the recipe leaves one. */
void nas_dataset_splits_fini(nas_dataset_splits *s) {
    nas_dataset_fini(&s->train);
    nas_dataset_fini(&s->val);
    nas_dataset_fini(&s->test);
    memset(s, 0, sizeof *s);
}

static int check_config(const nas_dataset_config *cfg, char *err) {
    if (cfg->resolution < 0 || cfg->val_size < 0 || cfg->train_subset < 0)
        return nas_set_err(err, NAS_EINVAL,
                           "dataset: resolution %d, val_size %d and train_subset %d must be >= 0",
                           cfg->resolution, cfg->val_size, cfg->train_subset);
    return 0;
}

/* The recipe proper (dataset.h), from raw sets.  A raw set whose size does
 * not change is moved into the result when `own` is set (it is the
 * caller's temporary) and copied otherwise. */
static int recipe(nas_dataset_splits *out, const nas_dataset_config *cfg, nas_dataset *train,
                  nas_dataset *test, int own, char *err) {
    nas_dataset_splits s;
    memset(&s, 0, sizeof s);
    int rh = cfg->resolution ? cfg->resolution : train->h;
    int rw = cfg->resolution ? cfg->resolution : train->w;
    int rc;
    if (own && rh == train->h && rw == train->w) {
        s.train = *train;
        memset(train, 0, sizeof *train);
    } else if ((rc = derive(&s.train, train, rh, rw, err)) < 0) {
        goto fail;
    }
    if ((rc = nas_dataset_split(&s.train, cfg->val_size, cfg->val_random, cfg->seed, &s.val, err)) <
        0)
        goto fail;
    nas_dataset_channel_stats(&s.train, s.mean, s.std);
    if ((rc = nas_dataset_subset(&s.train, cfg->train_subset, cfg->seed, err)) < 0) goto fail;
    nas_dataset_normalize(&s.train, s.mean, s.std);
    nas_dataset_normalize(&s.val, s.mean, s.std);
    if (cfg->load_test) {
        if (own && rh == test->h && rw == test->w) {
            s.test = *test;
            memset(test, 0, sizeof *test);
        } else if ((rc = derive(&s.test, test, rh, rw, err)) < 0) {
            goto fail;
        }
        nas_dataset_normalize(&s.test, s.mean, s.std);
    }
    *out = s;
    return 0;
fail:
    nas_dataset_splits_fini(&s);
    return rc;
}

int nas_dataset_prepare(nas_dataset_splits *out, const nas_dataset_config *cfg, char *err) {
    nas_dataset train = {0}, test = {0};
    memset(out, 0, sizeof *out);
    int rc = check_config(cfg, err);
    if (rc < 0) return rc;
    if ((rc = nas_dataset_load(&train, cfg->name, cfg->dir, NAS_SPLIT_TRAIN, err)) < 0) goto done;
    if (cfg->load_test &&
        (rc = nas_dataset_load(&test, cfg->name, cfg->dir, NAS_SPLIT_TEST, err)) < 0)
        goto done;
    rc = recipe(out, cfg, &train, &test, 1, err);
done:
    nas_dataset_fini(&train);
    nas_dataset_fini(&test);
    return rc;
}

int nas_dataset_prepare_from(nas_dataset_splits *out, const nas_dataset_config *cfg,
                             const nas_dataset *train, const nas_dataset *test, char *err) {
    memset(out, 0, sizeof *out);
    int rc = check_config(cfg, err);
    if (rc < 0) return rc;
    if (!train || (cfg->load_test && !test))
        return nas_set_err(err, NAS_EINVAL, "dataset: prepare_from needs a training set%s",
                           cfg->load_test ? " and a test set" : "");
    if (test && cfg->load_test &&
        (test->c != train->c || test->h != train->h || test->w != train->w ||
         test->classes != train->classes))
        return nas_set_err(err, NAS_EINVAL,
                           "dataset: test images %dx%dx%d (%d classes) do not match training"
                           " images %dx%dx%d (%d classes)",
                           test->c, test->h, test->w, test->classes, train->c, train->h, train->w,
                           train->classes);
    /* recipe() never modifies its inputs when own == 0. */
    return recipe(out, cfg, (nas_dataset *)train, (nas_dataset *)test, 0, err);
}

nas_dataset_config nas_dataset_config_from_fidelity(const nas_fidelity *f, const char *name,
                                                    const char *dir) {
    nas_dataset_config c = {.name = name,
                            .dir = dir,
                            .resolution = f->resolution,
                            .val_size = f->val_size,
                            .val_random = 0,
                            .train_subset = f->train_subset,
                            .load_test = f->test,
                            .seed = f->seed};
    return c;
}

int nas_dataset_default_flip(const char *name) {
    return name && (strcmp(name, "fashion-mnist") == 0 || strcmp(name, "cifar10") == 0);
}

// ----------------------------------------------------------------------------
// Batch iterator

/* Padding is capped at half the side: beyond that a crop can be all zeros,
 * which teaches nothing. */
int nas_dataset_iter_init(nas_dataset_iter *it, const nas_dataset *ds,
                          const nas_dataset_iter_config *cfg, char *err) {
    memset(it, 0, sizeof *it);
    int side = ds->h < ds->w ? ds->h : ds->w;
    if (cfg->batch < 1)
        return nas_set_err(err, NAS_EINVAL, "dataset iterator: batch %d must be >= 1", cfg->batch);
    if (cfg->pad < 0 || cfg->pad > side / 2)
        return nas_set_err(err, NAS_EINVAL, "dataset iterator: crop padding %d outside 0..%d",
                           cfg->pad, side / 2);
    int big = ds->h > ds->w ? ds->h : ds->w;
    if (cfg->cutout < 0 || cfg->cutout > big)
        return nas_set_err(err, NAS_EINVAL, "dataset iterator: cutout %d outside 0..%d",
                           cfg->cutout, big);
    it->order = nas_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *it->order);
    if (!it->order) return nas_set_err(err, NAS_ENOMEM, "dataset iterator: out of memory");
    it->ds = ds;
    it->cfg = *cfg;
    nas_dataset_iter_begin_epoch(it, 0);
    return 0;
}

void nas_dataset_iter_fini(nas_dataset_iter *it) {
    nas_free(it->order);
    memset(it, 0, sizeof *it);
}

void nas_dataset_iter_begin_epoch(nas_dataset_iter *it, int epoch) {
    /* Derive the epoch's seed by mixing, so epochs e and e+1 are unrelated
     * streams rather than neighbouring states of one stream. */
    uint64_t s = nas_mix64(it->cfg.seed ^ nas_mix64((uint64_t)epoch + 1));
    nas_rng_init(&it->shuffle_rng, s, STREAM_SHUFFLE);
    nas_rng_init(&it->aug_rng, s, STREAM_AUGMENT);
    it->epoch = epoch;
    it->pos = 0;
    for (int i = 0; i < it->ds->n; i++)
        it->order[i] = i;
    if (it->cfg.shuffle) nas_rng_shuffle_int(&it->shuffle_rng, it->order, (size_t)it->ds->n);
}

/* Copy one c x h x w image into dst, shifted by (oy, ox) - pad with zeros
 * where the shifted window leaves the image (random crop of the zero-padded
 * image), and mirrored left-right when flip is set. */
static void copy_augmented(float *dst, const float *src, int c, int h, int w, int dy, int dx,
                           int flip) {
    for (int ch = 0; ch < c; ch++) {
        const float *sp = src + (size_t)ch * h * w;
        float *dp = dst + (size_t)ch * h * w;
        for (int y = 0; y < h; y++) {
            int sy = y + dy;
            float *drow = dp + (size_t)y * w;
            if (sy < 0 || sy >= h) {
                memset(drow, 0, (size_t)w * sizeof *drow);
                continue;
            }
            const float *srow = sp + (size_t)sy * w;
            for (int x = 0; x < w; x++) {
                int sx = (flip ? w - 1 - x : x) + dx;
                drow[x] = sx >= 0 && sx < w ? srow[sx] : 0.0f;
            }
        }
    }
}

int nas_dataset_iter_next(nas_dataset_iter *it, float *x, uint8_t *y) {
    const nas_dataset *ds = it->ds;
    int left = ds->n - it->pos;
    int k = left < it->cfg.batch ? left : it->cfg.batch;
    if (k <= 0 || (it->cfg.drop_last && k < it->cfg.batch)) return 0;
    size_t isz = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    int pad = it->cfg.pad;
    for (int j = 0; j < k; j++) {
        int idx = it->order[it->pos + j];
        const float *src = nas_dataset_image(ds, idx);
        float *dst = x + (size_t)j * isz;
        y[j] = ds->labels[idx];
        /* Draws happen in a fixed order per image (dy, dx, flip), so the
         * stream is the same whatever the batch size. */
        int dy = 0, dx = 0, flip = 0;
        if (pad > 0) {
            dy = (int)nas_rng_below(&it->aug_rng, (uint32_t)(2 * pad + 1)) - pad;
            dx = (int)nas_rng_below(&it->aug_rng, (uint32_t)(2 * pad + 1)) - pad;
        }
        if (it->cfg.flip) flip = (int)nas_rng_below(&it->aug_rng, 2);
        if (dy == 0 && dx == 0 && !flip)
            memcpy(dst, src, isz * sizeof *dst);
        else
            copy_augmented(dst, src, ds->c, ds->h, ds->w, dy, dx, flip);
        /* Drawn after the crop and flip, so turning cutout on leaves their draws alone.  The
         * images are normalised, so a zeroed square is the mean image there. */
        if (it->cfg.cutout > 0) {
            int cy = (int)nas_rng_below(&it->aug_rng, (uint32_t)ds->h);
            int cx = (int)nas_rng_below(&it->aug_rng, (uint32_t)ds->w);
            nas_dataset_cutout(dst, ds->c, ds->h, ds->w, cy, cx, it->cfg.cutout);
        }
    }
    it->pos += k;
    return k;
}

void nas_dataset_cutout(float *img, int c, int h, int w, int cy, int cx, int size) {
    int y0 = cy - size / 2, x0 = cx - size / 2;
    int y1 = y0 + size < h ? y0 + size : h, x1 = x0 + size < w ? x0 + size : w;
    y0 = y0 > 0 ? y0 : 0;
    x0 = x0 > 0 ? x0 : 0;
    if (y0 >= y1 || x0 >= x1) return;
    for (int ch = 0; ch < c; ch++)
        for (int y = y0; y < y1; y++)
            memset(img + ((size_t)ch * h + y) * w + x0, 0, sizeof(float) * (size_t)(x1 - x0));
}

/* Steps per epoch, for learning-rate schedules that need the total. */
int nas_dataset_iter_batches(const nas_dataset_iter *it) {
    int n = it->ds->n, b = it->cfg.batch;
    return it->cfg.drop_last ? n / b : (n + b - 1) / b;
}
