/*
 * dataset.h - labelled image sets in memory, their loaders, transforms and
 * the batch iterator the trainer consumes.
 *
 * A nas_dataset is a plain, caller-owned struct: n images of c x h x w
 * floats in NCHW order plus one label byte each.  Loaders produce pixels
 * scaled to [0, 1]; the transforms (area downsampling, per-channel
 * normalisation, validation split, seeded subset) then shape it into what
 * one task's fidelity asks for.  nas_dataset_prepare() runs the whole
 * recipe in a fixed order, so a (data set, fidelity) pair gives
 * bit-identical tensors on every machine.
 *
 * Formats (docs/DATA.md):
 *   - IDX (MNIST, Fashion-MNIST), plain or gzip: dataset_idx.c
 *   - CIFAR-10 binary batches: dataset_cifar.c
 * Every loader error names the file and the byte offset of the problem,
 * e.g. "train-labels-idx1-ubyte.gz: offset 8: label 12 out of range 0..9".
 *
 * Randomness (split, subset, shuffle, augmentation) comes only from seeds
 * passed in, through nas_rng, so results are reproducible and resumable.
 */
#ifndef NAS_DATASET_H
#define NAS_DATASET_H

#include "common/fidelity.h"
#include "common/rng.h"

#include <stddef.h>
#include <stdint.h>

#define NAS_DATASET_MAX_CHANNELS 4
#define NAS_DATASET_MAX_SIDE     4096 /* largest accepted image side */
#define NAS_DATASET_MAX_CLASSES  256  /* labels are bytes */

typedef enum nas_split {
    NAS_SPLIT_TRAIN = 0,
    NAS_SPLIT_TEST = 1,
} nas_split;

typedef struct nas_dataset {
    int n, c, h, w;  /* images, channels, height, width */
    int classes;     /* labels lie in 0..classes-1 */
    float *images;   /* n*c*h*w floats, NCHW, 64-byte aligned; owned */
    uint8_t *labels; /* n labels; owned */
    char name[32];   /* "fashion-mnist", "cifar10", ... for messages */
} nas_dataset;

// ----------------------------------------------------------------------------
// Lifecycle

/* Allocate an n x c x h x w set with zeroed pixels and labels (synthetic
 * sets in tests, containers for loaders).  Returns 0, NAS_EINVAL for bad
 * dimensions (err says which) or NAS_ENOMEM.  *ds is overwritten. */
int nas_dataset_alloc(nas_dataset *ds, int n, int c, int h, int w, int classes, char *err);

/* Free the images and labels and zero the struct; safe on a zeroed struct
 * and safe to call twice. */
void nas_dataset_fini(nas_dataset *ds);

/* *dst = a deep copy of src (0, NAS_ENOMEM). */
int nas_dataset_copy(nas_dataset *dst, const nas_dataset *src, char *err);

/* A 64-bit fingerprint of the dimensions, labels and pixel bits.  Workers
 * can report it so that results computed on different copies of a data set
 * (or different preprocessing) are told apart instead of compared. */
uint64_t nas_dataset_fingerprint(const nas_dataset *ds);

/* Pointer to image i (c*h*w floats). */
static inline float *nas_dataset_image(const nas_dataset *ds, int i) {
    return ds->images + (size_t)i * (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
}

// ----------------------------------------------------------------------------
// Loaders (pixels scaled to [0, 1], no other transform)

/* Load a named data set: name is "fashion-mnist", "mnist" or "cifar10";
 * dir holds the distribution's files under their usual names (IDX files
 * plain or .gz; CIFAR-10 *.bin, also found in dir/cifar-10-batches-bin).
 * Returns 0, NAS_ENOTFOUND (missing file: err names the paths tried),
 * NAS_EFORMAT (err: "<file>: offset N: problem"), NAS_EIO, NAS_EINVAL
 * (unknown name) or NAS_ENOMEM.  On failure *ds is zeroed. */
int nas_dataset_load(nas_dataset *ds, const char *name, const char *dir, nas_split split,
                     char *err);

/* Load an IDX image file (magic 0x00000803, u8 pixels, N x H x W) and its
 * IDX label file (0x00000801), plain or gzip.  Every label must be below
 * `classes`, the counts must agree, and when expect_h/expect_w are > 0 the
 * images must have exactly that size. */
int nas_dataset_load_idx(nas_dataset *ds, const char *images_path, const char *labels_path,
                         int classes, int expect_h, int expect_w, char *err);

/* Load CIFAR-10 binary batch files (records of 1 label byte + 3072 pixel
 * bytes, R then G then B planes of 32x32) and concatenate them. */
int nas_dataset_load_cifar(nas_dataset *ds, const char *const *paths, int npaths, char *err);

/* Write ds as an IDX pair in dir under the standard names for `split`
 * (train-images-idx3-ubyte / train-labels-idx1-ubyte, or t10k-*), with
 * ".gz" appended and gzip compression when gz is set, so that
 * nas_dataset_load("mnist" or "fashion-mnist", dir, ...) reads it back when
 * the images are 28x28 (any size reads back with nas_dataset_load_idx).
 * Pixels are stored as round(clamp(x, 0, 1) * 255), which reproduces
 * loader output exactly.  Each file is written atomically (temporary file,
 * fsync, rename).  ds must have one channel (NAS_EINVAL otherwise). */
int nas_dataset_save_idx(const nas_dataset *ds, const char *dir, nas_split split, int gz,
                         char *err);

// ----------------------------------------------------------------------------
// Transforms

/* Downsample every image to out_h x out_w by area averaging: each output
 * pixel is the mean of the input area it covers, with exact fractional
 * weights when the factor is not an integer (28 -> 10).  Sizes equal to the
 * current ones are a no-op; upsampling is refused with NAS_EINVAL. */
int nas_dataset_resize(nas_dataset *ds, int out_h, int out_w, char *err);

/* Per-channel mean and standard deviation over all pixels (accumulated in
 * double).  A constant channel reports std 1 so normalising never divides
 * by zero.  mean/std hold ds->c values. */
void nas_dataset_channel_stats(const nas_dataset *ds, float *mean, float *std);

/* x = (x - mean[ch]) / std[ch] for every pixel.  Apply the training
 * split's statistics to validation and test sets alike. */
void nas_dataset_normalize(nas_dataset *ds, const float *mean, const float *std);

/* Move val_size images out of *ds into *val (freshly allocated).  With
 * random == 0 the last val_size images are taken; otherwise a seeded random
 * choice.  Both sets keep the original relative order.  val_size 0 gives an
 * empty *val.  Returns NAS_EINVAL if val_size is negative or >= ds->n. */
int nas_dataset_split(nas_dataset *ds, int val_size, int random, uint64_t seed, nas_dataset *val,
                      char *err);

/* Keep a seeded random n of the images (original order preserved); n 0 or
 * >= ds->n keeps everything. */
int nas_dataset_subset(nas_dataset *ds, int n, uint64_t seed, char *err);

// ----------------------------------------------------------------------------
// The whole recipe for one task

typedef struct nas_dataset_config {
    const char *name; /* "fashion-mnist" | "mnist" | "cifar10" */
    const char *dir;  /* where the files are */
    int resolution;   /* output side; 0 = native */
    int val_size;     /* held out of the training set; 0 = none */
    int val_random;   /* 0 = the last val_size images, 1 = seeded random */
    int train_subset; /* training images kept after the split; 0 = all */
    int load_test;    /* 1 = also load the test split */
    uint64_t seed;    /* drives val_random and train_subset */
} nas_dataset_config;

typedef struct nas_dataset_splits {
    nas_dataset train, val, test;         /* val/test are empty (n == 0) when not asked for */
    float mean[NAS_DATASET_MAX_CHANNELS]; /* training statistics used to normalise all three */
    float std[NAS_DATASET_MAX_CHANNELS];
} nas_dataset_splits;

/* Load -> resize -> split off validation -> compute statistics on the
 * remaining training images -> subset -> normalise train, val and test
 * with those statistics.  Statistics do not depend on train_subset, and
 * the validation set does not depend on it either, so fidelities that
 * differ only in subset size are evaluated on identical data.  On failure
 * *out is zeroed and err explains. */
int nas_dataset_prepare(nas_dataset_splits *out, const nas_dataset_config *cfg, char *err);

/* The same recipe from data sets already in memory (with pixels as the
 * loaders produce them), which are left untouched: a worker loads its data
 * set once and prepares it per task in a fraction of the load time.
 * cfg->name and cfg->dir are ignored; test may be NULL unless
 * cfg->load_test.  Results are identical to nas_dataset_prepare(). */
int nas_dataset_prepare_from(nas_dataset_splits *out, const nas_dataset_config *cfg,
                             const nas_dataset *train, const nas_dataset *test, char *err);

void nas_dataset_splits_fini(nas_dataset_splits *s);

/* A config for data set `name` in `dir` at a task's fidelity: resolution,
 * val_size, train_subset, test and seed are taken from f.  The validation
 * split is the last val_size training images (val_random 0), so every
 * task of a campaign is scored on the same images whatever its seed.
 * name and dir are borrowed. */
nas_dataset_config nas_dataset_config_from_fidelity(const nas_fidelity *f, const char *name,
                                                    const char *dir);

/* Whether horizontal flips are a label-preserving augmentation for the
 * named data set: no for digits ("mnist": a mirrored 2 is not a 2), yes
 * for "fashion-mnist" and "cifar10".  Unknown names get 0. */
int nas_dataset_default_flip(const char *name);

// ----------------------------------------------------------------------------
// Batch iterator

typedef struct nas_dataset_iter_config {
    int batch;     /* images per batch, >= 1 */
    int shuffle;   /* 1 = a fresh seeded permutation every epoch */
    int drop_last; /* 1 = skip a final partial batch (keeps batch-norm statistics sane) */
    int pad;  /* random crop: zero-pad by `pad` pixels, crop back at a random offset; 0 = off */
    int flip; /* 1 = random horizontal flip with probability 1/2 (off for digits) */
    int cutout; /* side of a square zeroed around a uniformly drawn centre (DeVries & Taylor
                   2017; clipped at the border, so it may cover less); 0 = off */
    uint64_t
        seed; /* shuffle and augmentation stream; epoch e uses a stream derived from (seed, e) */
} nas_dataset_iter_config;

typedef struct nas_dataset_iter {
    const nas_dataset *ds; /* borrowed; must outlive the iterator */
    nas_dataset_iter_config cfg;
    int *order;          /* permutation of 0..n-1 for the current epoch; owned */
    int pos;             /* next index into order */
    int epoch;           /* current epoch */
    nas_rng shuffle_rng; /* reseeded at each epoch from (seed, epoch) */
    nas_rng aug_rng;     /* likewise: augmentation draws for this epoch */
} nas_dataset_iter;

/* Bind an iterator to ds and start epoch 0.  Returns 0, NAS_EINVAL (batch
 * < 1, pad out of 0..h/2, cutout out of 0..max(h, w)) or NAS_ENOMEM. */
int nas_dataset_iter_init(nas_dataset_iter *it, const nas_dataset *ds,
                          const nas_dataset_iter_config *cfg, char *err);
void nas_dataset_iter_fini(nas_dataset_iter *it);

/* Restart at the beginning of `epoch`.  The order and augmentation of an
 * epoch depend only on (seed, epoch), so a resumed run can jump straight to
 * its epoch and see exactly what an uninterrupted run saw. */
void nas_dataset_iter_begin_epoch(nas_dataset_iter *it, int epoch);

/* Fill x (batch*c*h*w floats) and y (batch labels) with the next batch of
 * the epoch, augmented if configured.  Returns the number of images written
 * (< batch only for a final partial batch) or 0 at the end of the epoch. */
int nas_dataset_iter_next(nas_dataset_iter *it, float *x, uint8_t *y);

/* Zero the size x size square centred at (cy, cx) (top-left at cy - size/2, cx - size/2),
 * clipped to the image, in every channel of one c x h x w image. */
void nas_dataset_cutout(float *img, int c, int h, int w, int cy, int cx, int size);

/* Number of batches one epoch yields. */
int nas_dataset_iter_batches(const nas_dataset_iter *it);

// ----------------------------------------------------------------------------
// Internal: shared by dataset.c and the format readers, not for other users

/* The last path component, for messages. */
const char *nas__dataset_basename(const char *path);
/* Read a whole file, gunzipping if needed, at most `max` bytes (more is
 * NAS_EFORMAT); *out is nas_malloc'd. */
int nas__dataset_read_all(const char *path, size_t max, uint8_t **out, size_t *out_len, char *err);
/* dst[i] = src[i] / 255. */
void nas__dataset_u8_to_float(float *dst, const uint8_t *src, size_t n);

#endif
