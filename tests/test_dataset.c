/*
 * test_dataset.c - the IDX and CIFAR-10 readers on small generated files
 * (plain and gzip), every format error with its file and byte offset, the
 * transforms (area resize, normalisation, split, subset), the per-task
 * recipe and the batch iterator's determinism and augmentation.
 */
#include "common/alloc.h"
#include "common/dataset.h"
#include "common/err.h"
#include "tests/harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ----------------------------------------------------------------------------
// Fixture builders

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Pixel value of image i at (y, x): distinct enough to identify images. */
static uint8_t pix(int i, int y, int x) {
    return (uint8_t)((i * 31 + y * 7 + x * 3) & 0xff);
}

/* IDX image file bytes for n images of h x w; *len receives the size. */
static uint8_t *idx_images(int n, int h, int w, size_t *len) {
    *len = 16 + (size_t)n * h * w;
    uint8_t *b = calloc(1, *len);
    put_be32(b, 0x803);
    put_be32(b + 4, (uint32_t)n), put_be32(b + 8, (uint32_t)h), put_be32(b + 12, (uint32_t)w);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                b[16 + ((size_t)i * h + y) * w + x] = pix(i, y, x);
    return b;
}

/* IDX label file with label i % 10 for image i. */
static uint8_t *idx_labels(int n, size_t *len) {
    *len = 8 + (size_t)n;
    uint8_t *b = calloc(1, *len);
    put_be32(b, 0x801);
    put_be32(b + 4, (uint32_t)n);
    for (int i = 0; i < n; i++)
        b[8 + i] = (uint8_t)(i % 10);
    return b;
}

static void write_or_die(const char *dir, const char *name, const void *data, size_t n, int gz) {
    char path[4096];
    nas_path_join(path, sizeof path, dir, name);
    ck_assert_msg(nas_write_file(path, data, n, gz) == 0, "writing %s", path);
}

/* Write an (images, labels) IDX pair named name_i / name_l into dir. */
static void write_idx_pair(const char *dir, const char *iname, const char *lname, int n, int h,
                           int w, int gz) {
    size_t il, ll;
    uint8_t *ib = idx_images(n, h, w, &il), *lb = idx_labels(n, &ll);
    write_or_die(dir, iname, ib, il, gz);
    write_or_die(dir, lname, lb, ll, gz);
    free(ib);
    free(lb);
}

/* Load an IDX pair from dir and expect failure containing `want`. */
static void idx_expect_error(const char *dir, const char *iname, const char *lname, int eh, int ew,
                             int code, const char *want) {
    char ip[4096], lp[4096], err[NAS_ERR_LEN] = "";
    nas_dataset ds;
    nas_path_join(ip, sizeof ip, dir, iname);
    nas_path_join(lp, sizeof lp, dir, lname);
    int rc = nas_dataset_load_idx(&ds, ip, lp, 10, eh, ew, err);
    ck_assert_msg(rc == code, "expected %d, got %d (%s)", code, rc, err);
    ck_assert_msg(strstr(err, want), "message \"%s\" lacks \"%s\"", err, want);
    ck_assert_ptr_null(ds.images);
}

static void make_set(nas_dataset *ds, int n, int c, int h, int w, float (*f)(int, int, int, int));
static float f_ident(int i, int ch, int y, int x);

// ----------------------------------------------------------------------------
// IDX

static void check_idx_content(const nas_dataset *ds, int n, int h, int w) {
    ck_assert_int_eq(ds->n, n);
    ck_assert_int_eq(ds->c, 1);
    ck_assert_int_eq(ds->h, h);
    ck_assert_int_eq(ds->w, w);
    ck_assert_int_eq(ds->classes, 10);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(ds->labels[i], i % 10);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                ck_assert(nas_dataset_image(ds, i)[y * w + x] == (float)pix(i, y, x) / 255.0f);
    }
}

START_TEST(test_dataset_idx_plain_and_gz) {
    const char *dir = nas_tmpdir_make();
    for (int gz = 0; gz <= 1; gz++) {
        write_idx_pair(dir, "img", "lab", 13, 5, 3, gz);
        char ip[4096], lp[4096], err[NAS_ERR_LEN];
        nas_dataset ds;
        int rc = nas_dataset_load_idx(&ds, nas_path_join(ip, sizeof ip, dir, "img"),
                                      nas_path_join(lp, sizeof lp, dir, "lab"), 10, 0, 0, err);
        ck_assert_msg(rc == 0, "gz=%d: %s", gz, err);
        check_idx_content(&ds, 13, 5, 3);
        nas_dataset_fini(&ds);
        nas_dataset_fini(&ds); /* twice is fine */
    }
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_dataset_named_fashion_mnist) {
    /* Train files gzip, test files plain: the loader finds either. */
    const char *dir = nas_tmpdir_make();
    write_idx_pair(dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 12, 28, 28, 1);
    write_idx_pair(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 4, 28, 28, 0);
    char err[NAS_ERR_LEN];
    nas_dataset tr, te;
    ck_assert_msg(nas_dataset_load(&tr, "fashion-mnist", dir, NAS_SPLIT_TRAIN, err) == 0, "%s",
                  err);
    ck_assert_msg(nas_dataset_load(&te, "mnist", dir, NAS_SPLIT_TEST, err) == 0, "%s", err);
    check_idx_content(&tr, 12, 28, 28);
    check_idx_content(&te, 4, 28, 28);
    ck_assert_str_eq(tr.name, "fashion-mnist");
    nas_dataset_fini(&tr);
    nas_dataset_fini(&te);
    /* Unknown names and missing files are reported, not crashed on. */
    ck_assert_int_eq(nas_dataset_load(&tr, "imagenet", dir, NAS_SPLIT_TRAIN, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "unknown data set \"imagenet\""));
    ck_assert_int_eq(nas_dataset_load(&tr, "cifar10", dir, NAS_SPLIT_TRAIN, err), NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "data_batch_1.bin not found"));
    ck_assert_int_eq(nas_dataset_load(&tr, "mnist", "/nonexistent", NAS_SPLIT_TRAIN, err),
                     NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "train-images-idx3-ubyte.gz"));
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_dataset_idx_errors) {
    const char *dir = nas_tmpdir_make();
    size_t il, ll;
    uint8_t *ib = idx_images(10, 28, 28, &il), *lb = idx_labels(10, &ll);
    uint8_t *tmp = calloc(1, il + 16);

    /* A label out of range names the label file and the label's offset. */
    memcpy(tmp, lb, ll);
    tmp[8 + 3] = 12;
    write_or_die(dir, "img.gz", ib, il, 1);
    write_or_die(dir, "train-labels-idx1-ubyte.gz", tmp, ll, 1);
    idx_expect_error(dir, "img.gz", "train-labels-idx1-ubyte.gz", 0, 0, NAS_EFORMAT,
                     "train-labels-idx1-ubyte.gz: offset 11: label 12 out of range 0..9");

    /* Wrong magic: a label file passed as images. */
    write_or_die(dir, "lab", lb, ll, 0);
    idx_expect_error(dir, "lab", "lab", 0, 0, NAS_EFORMAT,
                     "lab: offset 0: bad magic 0x00000801 (expected 0x00000803 for IDX images)");
    memcpy(tmp, ib, il);
    tmp[0] = 0x1f;
    write_or_die(dir, "img", tmp, il, 0);
    idx_expect_error(dir, "img", "lab", 0, 0, NAS_EFORMAT, "img: offset 0: bad magic");

    /* Unsupported element type (0x0D = float). */
    memcpy(tmp, ib, il);
    tmp[2] = 0x0D;
    write_or_die(dir, "img", tmp, il, 0);
    idx_expect_error(dir, "img", "lab", 0, 0, NAS_EFORMAT, "img: offset 2: data type 0x0D");

    /* Truncated header and truncated pixel data. */
    write_or_die(dir, "img", ib, 10, 0);
    idx_expect_error(dir, "img", "lab", 0, 0, NAS_EFORMAT, "img: offset 10: truncated header");
    write_or_die(dir, "img", ib, il - 5, 1);
    idx_expect_error(dir, "img", "lab", 0, 0, NAS_EFORMAT, "img: offset 7851: truncated");

    /* Trailing garbage after the announced data. */
    memcpy(tmp, ib, il);
    write_or_die(dir, "img", tmp, il + 3, 0);
    idx_expect_error(dir, "img", "lab", 0, 0, NAS_EFORMAT, "img: offset 7856: 3 trailing bytes");

    /* Count mismatch between the two files. */
    write_or_die(dir, "img", ib, il, 0);
    size_t l9;
    uint8_t *lb9 = idx_labels(9, &l9);
    write_or_die(dir, "lab9", lb9, l9, 0);
    idx_expect_error(dir, "img", "lab9", 0, 0, NAS_EFORMAT,
                     "lab9: offset 4: 9 labels but img has 10 images");
    free(lb9);

    /* Wrong dimensions for the named format, and a zero-sized image. */
    idx_expect_error(dir, "img", "lab", 32, 32, NAS_EFORMAT,
                     "img: offset 8: images are 28x28, expected 32x32");
    memcpy(tmp, ib, 16);
    put_be32(tmp + 8, 0);
    write_or_die(dir, "img0", tmp, 16, 0);
    idx_expect_error(dir, "img0", "lab", 0, 0, NAS_EFORMAT, "img0: offset 8: image size 0x28");

    /* Absurd dimensions overflow-checked before anything is allocated. */
    memcpy(tmp, ib, 16);
    put_be32(tmp + 4, 0xffffffffu), put_be32(tmp + 8, 0xffffffffu);
    write_or_die(dir, "huge", tmp, 16, 0);
    idx_expect_error(dir, "huge", "lab", 0, 0, NAS_EFORMAT, "huge: offset 8: dimensions overflow");

    /* A gzip stream cut in the middle is a format error, not a short read. */
    write_or_die(dir, "full.gz", ib, il, 1);
    char path[4096];
    size_t gzlen;
    char *gzb = nas_read_file(nas_path_join(path, sizeof path, dir, "full.gz"), &gzlen);
    write_or_die(dir, "cut.gz", gzb, gzlen / 2, 0);
    idx_expect_error(dir, "cut.gz", "lab", 0, 0, NAS_EFORMAT, "cut.gz: offset");
    free(gzb);

    idx_expect_error(dir, "absent", "lab", 0, 0, NAS_ENOTFOUND, "absent: open");
    free(ib), free(lb), free(tmp);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_dataset_save_idx_round_trip) {
    const char *dir = nas_tmpdir_make();
    char err[NAS_ERR_LEN];
    write_idx_pair(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", 9, 28, 28, 0);
    nas_dataset a, b;
    ck_assert_int_eq(nas_dataset_load(&a, "mnist", dir, NAS_SPLIT_TRAIN, err), 0);
    uint64_t fa = nas_dataset_fingerprint(&a);
    /* Written back under the test split's names, gzip: loads bit-identical. */
    ck_assert_msg(nas_dataset_save_idx(&a, dir, NAS_SPLIT_TEST, 1, err) == 0, "%s", err);
    ck_assert_int_eq(nas_dataset_load(&b, "mnist", dir, NAS_SPLIT_TEST, err), 0);
    ck_assert_int_eq(b.n, 9);
    ck_assert_mem_eq(a.images, b.images, (size_t)9 * 28 * 28 * sizeof(float));
    ck_assert_mem_eq(a.labels, b.labels, 9);
    ck_assert_uint_eq(nas_dataset_fingerprint(&b), fa);
    char path[4096];
    size_t n;
    char *raw =
        nas_read_file(nas_path_join(path, sizeof path, dir, "t10k-images-idx3-ubyte.gz"), &n);
    ck_assert(raw && (uint8_t)raw[0] == 0x1f && (uint8_t)raw[1] == 0x8b); /* gzip magic */
    free(raw);
    nas_dataset_fini(&b);
    /* The fingerprint sees a single changed bit and a single changed label. */
    uint32_t bits;
    memcpy(&bits, &a.images[777], 4);
    bits ^= 1;
    memcpy(&a.images[777], &bits, 4);
    ck_assert_uint_ne(nas_dataset_fingerprint(&a), fa);
    bits ^= 1;
    memcpy(&a.images[777], &bits, 4);
    ck_assert_uint_eq(nas_dataset_fingerprint(&a), fa);
    a.labels[3] ^= 1;
    ck_assert_uint_ne(nas_dataset_fingerprint(&a), fa);
    nas_dataset_fini(&a);

    /* Other sizes round-trip through the generic reader; values outside
     * [0, 1] are clamped; several channels are refused. */
    make_set(&a, 4, 1, 5, 3, f_ident);
    a.images[0] = -2.0f, a.images[1] = 0.5f, a.images[2] = NAN;
    ck_assert_int_eq(nas_dataset_save_idx(&a, dir, NAS_SPLIT_TRAIN, 0, err), 0);
    char ip[4096], lp[4096];
    nas_path_join(ip, sizeof ip, dir, "train-images-idx3-ubyte");
    nas_path_join(lp, sizeof lp, dir, "train-labels-idx1-ubyte");
    ck_assert_int_eq(nas_dataset_load_idx(&b, ip, lp, 10, 0, 0, err), 0);
    ck_assert(b.n == 4 && b.h == 5 && b.w == 3);
    ck_assert(b.images[0] == 0.0f && b.images[1] == 128.0f / 255.0f && b.images[2] == 0.0f);
    ck_assert(b.images[3] == 1.0f); /* 10 clamps to 1 */
    nas_dataset_fini(&b);
    ck_assert_int_eq(nas_dataset_save_idx(&a, "/nonexistent/dir", NAS_SPLIT_TRAIN, 0, err),
                     NAS_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/dir/train-images-idx3-ubyte"));
    nas_dataset_fini(&a);
    make_set(&a, 2, 3, 4, 4, f_ident);
    ck_assert_int_eq(nas_dataset_save_idx(&a, dir, NAS_SPLIT_TRAIN, 0, err), NAS_EINVAL);
    nas_dataset_fini(&a);
    nas_tmpdir_rm(dir);
}
END_TEST

// ----------------------------------------------------------------------------
// CIFAR-10

/* n records; label (first + i) % 10; pixel bytes identify (i, plane, k). */
static uint8_t *cifar_file(int n, int first, size_t *len) {
    *len = (size_t)n * 3073;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + (size_t)i * 3073;
        r[0] = (uint8_t)((first + i) % 10);
        for (int k = 0; k < 3072; k++)
            r[1 + k] = (uint8_t)((first + i) * 13 + k);
    }
    return b;
}

START_TEST(test_dataset_cifar_load_and_errors) {
    const char *dir = nas_tmpdir_make();
    char err[NAS_ERR_LEN];
    nas_dataset ds;
    /* data_batch_k holds 2 + k records, so the concatenation is checkable. */
    int first = 0;
    for (int k = 1; k <= 5; k++) {
        char name[64];
        size_t len;
        snprintf(name, sizeof name, "data_batch_%d.bin", k);
        uint8_t *b = cifar_file(2 + k, first, &len);
        write_or_die(dir, name, b, len, k == 3); /* one gzip file among them */
        free(b);
        first += 2 + k;
    }
    size_t tl;
    uint8_t *tb = cifar_file(3, 100, &tl);
    write_or_die(dir, "test_batch.bin", tb, tl, 0);
    ck_assert_msg(nas_dataset_load(&ds, "cifar10", dir, NAS_SPLIT_TRAIN, err) == 0, "%s", err);
    ck_assert_int_eq(ds.n, first);
    ck_assert_int_eq(ds.c, 3);
    ck_assert_int_eq(ds.h, 32);
    for (int i = 0; i < ds.n; i++) {
        ck_assert_int_eq(ds.labels[i], i % 10);
        const float *img = nas_dataset_image(&ds, i);
        /* Green plane, row 2, column 5 sits at 1024 + 2*32 + 5 in NCHW. */
        int k = 1024 + 2 * 32 + 5;
        ck_assert(img[k] == (float)(uint8_t)(i * 13 + k) / 255.0f);
    }
    nas_dataset_fini(&ds);
    ck_assert_msg(nas_dataset_load(&ds, "cifar10", dir, NAS_SPLIT_TEST, err) == 0, "%s", err);
    ck_assert_int_eq(ds.n, 3);
    ck_assert_int_eq(ds.labels[0], 0);
    nas_dataset_fini(&ds);

    /* A partial record names the offset where it starts. */
    write_or_die(dir, "test_batch.bin", tb, tl - 100, 0);
    ck_assert_int_eq(nas_dataset_load(&ds, "cifar10", dir, NAS_SPLIT_TEST, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "test_batch.bin: offset 6146: truncated record"));
    /* A label of 10 names the record's offset. */
    tb[3073] = 10;
    write_or_die(dir, "test_batch.bin", tb, tl, 0);
    ck_assert_int_eq(nas_dataset_load(&ds, "cifar10", dir, NAS_SPLIT_TEST, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "test_batch.bin: offset 3073: label 10 out of range 0..9"));
    write_or_die(dir, "test_batch.bin", tb, 0, 0);
    ck_assert_int_eq(nas_dataset_load(&ds, "cifar10", dir, NAS_SPLIT_TEST, err), NAS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "offset 0: empty file"));
    ck_assert_ptr_null(ds.images);
    /* The archive's own layout, dir/cifar-10-batches-bin/, is found too. */
    char sub[4096], name[4096];
    nas_path_join(sub, sizeof sub, dir, "cifar-10-batches-bin");
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    tb[3073] = 1;
    nas_path_join(name, sizeof name, sub, "test_batch.bin");
    ck_assert_int_eq(nas_write_file(name, tb, tl, 0), 0);
    nas_path_join(name, sizeof name, dir, "test_batch.bin");
    ck_assert_int_eq(remove(name), 0);
    ck_assert_msg(nas_dataset_load(&ds, "cifar10", dir, NAS_SPLIT_TEST, err) == 0, "%s", err);
    ck_assert_int_eq(ds.n, 3);
    ck_assert_int_eq(ds.labels[1], 1);
    nas_dataset_fini(&ds);
    free(tb);
    nas_tmpdir_rm(dir);
}
END_TEST

// ----------------------------------------------------------------------------
// Transforms

/* A synthetic set whose pixel values are given by f(i, ch, y, x). */
static void make_set(nas_dataset *ds, int n, int c, int h, int w, float (*f)(int, int, int, int)) {
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_dataset_alloc(ds, n, c, h, w, 10, err) == 0, "%s", err);
    for (int i = 0; i < n; i++) {
        ds->labels[i] = (uint8_t)(i % 10);
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    nas_dataset_image(ds, i)[(ch * h + y) * w + x] = f(i, ch, y, x);
    }
}

static float f_ident(int i, int ch, int y, int x) {
    return (float)(i * 1000 + ch * 100 + y * 10 + x);
}

static float f_rand(int i, int ch, int y, int x) {
    uint64_t h =
        nas_mix64((uint64_t)i << 32 ^ (uint64_t)ch << 24 ^ (uint64_t)y << 12 ^ (uint64_t)x);
    return (float)(h % 1000) / 1000.0f * (float)(ch + 1) + (float)ch;
}

START_TEST(test_dataset_resize_area) {
    nas_dataset ds;
    char err[NAS_ERR_LEN];
    /* Integer factor: 4x4 -> 2x2 is the mean of each 2x2 block. */
    make_set(&ds, 2, 1, 4, 4, f_ident);
    ck_assert_int_eq(nas_dataset_resize(&ds, 2, 2, err), 0);
    ck_assert_int_eq(ds.h, 2);
    const float *o = nas_dataset_image(&ds, 1);
    ck_assert(fabsf(o[0] - (1000 + 5.5f)) < 1e-3f);  /* mean of 0,1,10,11 */
    ck_assert(fabsf(o[3] - (1000 + 27.5f)) < 1e-3f); /* mean of 22,23,32,33 */
    nas_dataset_fini(&ds);

    /* Non-integer factor: 3 -> 2; output 0 covers source [0, 1.5): weights
     * 2/3 and 1/3 on each axis. */
    make_set(&ds, 1, 1, 3, 3, f_ident);
    const float *s = ds.images;
    float want = 0;
    const float wt[2] = {2.0f / 3, 1.0f / 3};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            want += wt[y] * wt[x] * s[y * 3 + x];
    float want_last = 0; /* output (1,1) covers [1.5, 3): weights 1/3, 2/3 on 1 and 2 */
    for (int y = 1; y < 3; y++)
        for (int x = 1; x < 3; x++)
            want_last += wt[2 - y] * wt[2 - x] * s[y * 3 + x];
    ck_assert_int_eq(nas_dataset_resize(&ds, 2, 2, err), 0);
    ck_assert(fabsf(ds.images[0] - want) < 1e-4f);
    ck_assert(fabsf(ds.images[3] - want_last) < 1e-4f);
    nas_dataset_fini(&ds);

    /* 28 -> 10 (factor 2.8) and 28 -> 14 keep every channel's mean exactly
     * (area weights sum to one and cover each source pixel equally). */
    int sides[2] = {10, 14};
    for (int t = 0; t < 2; t++) {
        make_set(&ds, 3, 3, 28, 28, f_rand);
        float m0[3], s0[3], m1[3], s1[3];
        nas_dataset_channel_stats(&ds, m0, s0);
        ck_assert_int_eq(nas_dataset_resize(&ds, sides[t], sides[t], err), 0);
        nas_dataset_channel_stats(&ds, m1, s1);
        for (int ch = 0; ch < 3; ch++) {
            ck_assert_msg(fabsf(m0[ch] - m1[ch]) < 1e-4f, "ch %d: %f vs %f", ch, m0[ch], m1[ch]);
            ck_assert(s1[ch] < s0[ch]); /* averaging smooths */
        }
        nas_dataset_fini(&ds);
    }

    /* Upsampling and nonsense sizes are refused; same size is a no-op. */
    make_set(&ds, 1, 1, 8, 8, f_ident);
    ck_assert_int_eq(nas_dataset_resize(&ds, 16, 16, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "only downsamples"));
    ck_assert_int_eq(nas_dataset_resize(&ds, 0, 4, err), NAS_EINVAL);
    ck_assert_int_eq(nas_dataset_resize(&ds, 8, 8, err), 0);
    ck_assert(ds.images[9] == f_ident(0, 0, 1, 1));
    nas_dataset_fini(&ds);
}
END_TEST

START_TEST(test_dataset_normalize) {
    nas_dataset ds, other;
    make_set(&ds, 20, 3, 6, 6, f_rand);
    make_set(&other, 5, 3, 6, 6, f_rand);
    float mean[3], std[3];
    nas_dataset_channel_stats(&ds, mean, std);
    for (int ch = 0; ch < 3; ch++)
        ck_assert(mean[ch] > (float)ch); /* f_rand offsets by ch */
    float before = other.images[7];
    nas_dataset_normalize(&ds, mean, std);
    nas_dataset_normalize(&other, mean, std);
    float m2[3], s2[3];
    nas_dataset_channel_stats(&ds, m2, s2);
    for (int ch = 0; ch < 3; ch++) {
        ck_assert(fabsf(m2[ch]) < 1e-5f);
        ck_assert(fabsf(s2[ch] - 1.0f) < 1e-4f);
    }
    /* The other split gets the training statistics, not its own. */
    ck_assert(fabsf(other.images[7] - (before - mean[0]) / std[0]) < 1e-5f);
    nas_dataset_fini(&ds);
    nas_dataset_fini(&other);

    /* A constant channel reports std 1 so nothing divides by zero. */
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dataset_alloc(&ds, 3, 1, 2, 2, 10, err), 0);
    nas_dataset_channel_stats(&ds, mean, std);
    ck_assert(mean[0] == 0.0f && std[0] == 1.0f);
    nas_dataset_fini(&ds);
    ck_assert_int_eq(nas_dataset_alloc(&ds, 3, 5, 2, 2, 10, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "c=5"));
}
END_TEST

/* The id of image i in a set made with f_ident: its pixel (0,0,0) / 1000. */
static int image_id(const nas_dataset *ds, int i) {
    return (int)(nas_dataset_image(ds, i)[0] / 1000.0f + 0.5f);
}

START_TEST(test_dataset_split_and_subset) {
    nas_dataset ds, val;
    char err[NAS_ERR_LEN];
    /* Last-k split: the tail moves to val, in order. */
    make_set(&ds, 30, 1, 2, 2, f_ident);
    ck_assert_int_eq(nas_dataset_split(&ds, 7, 0, 0, &val, err), 0);
    ck_assert_int_eq(ds.n, 23);
    ck_assert_int_eq(val.n, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(image_id(&val, i), 23 + i);
    for (int i = 0; i < 23; i++) {
        ck_assert_int_eq(image_id(&ds, i), i);
        ck_assert_int_eq(ds.labels[i], i % 10);
    }
    nas_dataset_fini(&ds);
    nas_dataset_fini(&val);

    /* Random split: disjoint, complete, ordered, reproducible per seed. */
    int first_ids[2][8];
    for (int run = 0; run < 2; run++) {
        make_set(&ds, 30, 1, 2, 2, f_ident);
        ck_assert_int_eq(nas_dataset_split(&ds, 8, 1, 42, &val, err), 0);
        int seen[30] = {0};
        for (int i = 0; i < ds.n; i++)
            seen[image_id(&ds, i)]++;
        for (int i = 0; i < val.n; i++) {
            seen[image_id(&val, i)]++;
            first_ids[run][i] = image_id(&val, i);
            if (i) ck_assert_int_lt(image_id(&val, i - 1), image_id(&val, i));
            ck_assert_int_eq(val.labels[i], image_id(&val, i) % 10);
        }
        for (int i = 0; i < 30; i++)
            ck_assert_int_eq(seen[i], 1);
        nas_dataset_fini(&ds);
        nas_dataset_fini(&val);
    }
    ck_assert_mem_eq(first_ids[0], first_ids[1], sizeof first_ids[0]);
    int last_k = 1;
    for (int i = 0; i < 8; i++)
        last_k &= first_ids[0][i] == 22 + i;
    ck_assert_msg(!last_k, "a random split should not equal the tail");
    make_set(&ds, 30, 1, 2, 2, f_ident);
    ck_assert_int_eq(nas_dataset_split(&ds, 8, 1, 43, &val, err), 0);
    int same = 1;
    for (int i = 0; i < 8; i++)
        same &= image_id(&val, i) == first_ids[0][i];
    ck_assert_msg(!same, "seeds 42 and 43 chose the same validation set");
    nas_dataset_fini(&val);

    /* Subset: seeded, ordered, the requested size. */
    ck_assert_int_eq(nas_dataset_subset(&ds, 5, 9, err), 0);
    ck_assert_int_eq(ds.n, 5);
    for (int i = 1; i < 5; i++)
        ck_assert_int_lt(image_id(&ds, i - 1), image_id(&ds, i));
    ck_assert_int_eq(nas_dataset_subset(&ds, 0, 9, err), 0);
    ck_assert_int_eq(ds.n, 5);
    ck_assert_int_eq(nas_dataset_subset(&ds, -1, 9, err), NAS_EINVAL);
    ck_assert_int_eq(nas_dataset_split(&ds, 5, 0, 0, &val, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "validation size 5 must be in 0..4"));
    ck_assert_int_eq(nas_dataset_split(&ds, 0, 0, 0, &val, err), 0);
    ck_assert_int_eq(val.n, 0);
    nas_dataset_fini(&val);
    nas_dataset_fini(&ds);
}
END_TEST

START_TEST(test_dataset_prepare_recipe) {
    const char *dir = nas_tmpdir_make();
    write_idx_pair(dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 50, 28, 28, 1);
    write_idx_pair(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10, 28, 28, 1);
    nas_dataset_config cfg = {.name = "fashion-mnist",
                              .dir = dir,
                              .resolution = 14,
                              .val_size = 10,
                              .val_random = 1,
                              .train_subset = 20,
                              .load_test = 1,
                              .seed = 5};
    nas_dataset_splits a, b;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_dataset_prepare(&a, &cfg, err) == 0, "%s", err);
    ck_assert_int_eq(a.train.n, 20);
    ck_assert_int_eq(a.val.n, 10);
    ck_assert_int_eq(a.test.n, 10);
    ck_assert_int_eq(a.train.h, 14);
    ck_assert_int_eq(a.test.w, 14);
    ck_assert(a.std[0] > 0);
    /* Statistics and validation set do not depend on the subset size. */
    cfg.train_subset = 0;
    ck_assert_msg(nas_dataset_prepare(&b, &cfg, err) == 0, "%s", err);
    ck_assert_int_eq(b.train.n, 40);
    ck_assert(a.mean[0] == b.mean[0] && a.std[0] == b.std[0]);
    ck_assert_mem_eq(a.val.images, b.val.images, (size_t)10 * 14 * 14 * sizeof(float));
    ck_assert_mem_eq(a.test.images, b.test.images, (size_t)10 * 14 * 14 * sizeof(float));
    nas_dataset_splits_fini(&b);

    /* From sets already in memory: bit-identical results, inputs untouched. */
    nas_dataset rtr, rte, keep;
    ck_assert_int_eq(nas_dataset_load(&rtr, "fashion-mnist", dir, NAS_SPLIT_TRAIN, err), 0);
    ck_assert_int_eq(nas_dataset_load(&rte, "fashion-mnist", dir, NAS_SPLIT_TEST, err), 0);
    ck_assert_int_eq(nas_dataset_copy(&keep, &rtr, err), 0);
    cfg.train_subset = 20;
    ck_assert_msg(nas_dataset_prepare_from(&b, &cfg, &rtr, &rte, err) == 0, "%s", err);
    ck_assert(a.train.n == b.train.n && a.mean[0] == b.mean[0] && a.std[0] == b.std[0]);
    ck_assert_mem_eq(a.train.images, b.train.images, (size_t)20 * 14 * 14 * sizeof(float));
    ck_assert_mem_eq(a.train.labels, b.train.labels, 20);
    ck_assert_mem_eq(a.val.images, b.val.images, (size_t)10 * 14 * 14 * sizeof(float));
    ck_assert_mem_eq(a.test.images, b.test.images, (size_t)10 * 14 * 14 * sizeof(float));
    ck_assert(rtr.n == 50 && rtr.h == 28);
    ck_assert_mem_eq(rtr.images, keep.images, (size_t)50 * 28 * 28 * sizeof(float));
    nas_dataset_splits_fini(&b);
    /* Native resolution copies rather than resizes; still untouched. */
    cfg.resolution = 0;
    ck_assert_int_eq(nas_dataset_prepare_from(&b, &cfg, &rtr, &rte, err), 0);
    ck_assert_int_eq(b.train.h, 28);
    ck_assert_mem_eq(rtr.images, keep.images, (size_t)50 * 28 * 28 * sizeof(float));
    nas_dataset_splits_fini(&b);
    ck_assert_int_eq(nas_dataset_prepare_from(&b, &cfg, &rtr, NULL, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "and a test set"));
    nas_dataset_fini(&keep);
    ck_assert_int_eq(nas_dataset_alloc(&keep, 3, 1, 14, 14, 10, err), 0);
    ck_assert_int_eq(nas_dataset_prepare_from(&b, &cfg, &rtr, &keep, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "do not match"));
    nas_dataset_fini(&keep);
    nas_dataset_fini(&rtr);
    nas_dataset_fini(&rte);
    cfg.resolution = 14;
    nas_dataset_splits_fini(&a);
    /* Errors leave nothing behind. */
    cfg.val_size = 50;
    ck_assert_int_eq(nas_dataset_prepare(&a, &cfg, err), NAS_EINVAL);
    ck_assert_ptr_null(a.train.images);
    cfg.val_size = 0, cfg.resolution = 32;
    ck_assert_int_eq(nas_dataset_prepare(&a, &cfg, err), NAS_EINVAL);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_dataset_from_fidelity) {
    nas_fidelity f = nas_fidelity_default();
    f.resolution = 14, f.val_size = 123, f.train_subset = 456, f.test = 1, f.seed = 99;
    nas_dataset_config c = nas_dataset_config_from_fidelity(&f, "cifar10", "/d");
    ck_assert_str_eq(c.name, "cifar10");
    ck_assert_str_eq(c.dir, "/d");
    ck_assert(c.resolution == 14 && c.val_size == 123 && c.train_subset == 456);
    ck_assert(c.load_test == 1 && c.seed == 99 && c.val_random == 0);
    ck_assert_int_eq(nas_dataset_default_flip("mnist"), 0);
    ck_assert_int_eq(nas_dataset_default_flip("fashion-mnist"), 1);
    ck_assert_int_eq(nas_dataset_default_flip("cifar10"), 1);
    ck_assert_int_eq(nas_dataset_default_flip(NULL), 0);
}
END_TEST

START_TEST(test_dataset_oom_is_clean) {
    const char *dir = nas_tmpdir_make();
    write_idx_pair(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", 20, 28, 28, 1);
    nas_dataset_config cfg = {.name = "mnist",
                              .dir = dir,
                              .resolution = 10,
                              .val_size = 4,
                              .val_random = 1,
                              .train_subset = 8,
                              .seed = 1};
    int saw_ok = 0;
    for (long k = 1; k < 200 && !saw_ok; k++) {
        nas_dataset_splits s;
        char err[NAS_ERR_LEN];
        nas_alloc_fail_after(k);
        int rc = nas_dataset_prepare(&s, &cfg, err);
        nas_alloc_fail_reset();
        if (rc == 0) {
            saw_ok = 1;
            nas_dataset_splits_fini(&s);
        } else {
            ck_assert_msg(rc == NAS_ENOMEM || rc == NAS_EIO, "k=%ld rc=%d %s", k, rc, err);
            ck_assert_ptr_null(s.train.images);
        }
    }
    ck_assert(saw_ok);
    nas_tmpdir_rm(dir);
}
END_TEST

// ----------------------------------------------------------------------------
// Iterator

/* Ids of one full epoch into ids[]; returns the number of batches. */
static int run_epoch(nas_dataset_iter *it, int *ids, float *x, uint8_t *y) {
    int nb = 0, k, total = 0;
    size_t isz = (size_t)it->ds->c * it->ds->h * it->ds->w;
    while ((k = nas_dataset_iter_next(it, x, y)) > 0) {
        for (int j = 0; j < k; j++) {
            /* With augmentation off the pixel at (0,0,0) identifies the image. */
            ids[total++] = (int)(x[j * isz] / 1000.0f + 0.5f);
            ck_assert_int_eq(y[j], ids[total - 1] % 10);
        }
        nb++;
    }
    ck_assert_int_eq(total, it->cfg.drop_last ? nb * it->cfg.batch : it->ds->n);
    return nb;
}

START_TEST(test_dataset_iter_shuffle) {
    nas_dataset ds;
    make_set(&ds, 23, 1, 3, 3, f_ident);
    nas_dataset_iter_config cfg = {.batch = 5, .shuffle = 1, .seed = 77};
    nas_dataset_iter it, it2;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dataset_iter_init(&it, &ds, &cfg, err), 0);
    ck_assert_int_eq(nas_dataset_iter_init(&it2, &ds, &cfg, err), 0);
    float x[5 * 9];
    uint8_t y[5];
    int e0[23], e1[23], again[23];
    ck_assert_int_eq(run_epoch(&it, e0, x, y), 5);
    ck_assert_int_eq(nas_dataset_iter_batches(&it), 5);
    nas_dataset_iter_begin_epoch(&it, 1);
    run_epoch(&it, e1, x, y);
    /* Every image exactly once per epoch, and epochs differ. */
    int seen[23] = {0};
    for (int i = 0; i < 23; i++)
        seen[e0[i]]++;
    for (int i = 0; i < 23; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert(memcmp(e0, e1, sizeof e0) != 0);
    /* A second iterator jumping straight to epoch 1 sees the same order. */
    nas_dataset_iter_begin_epoch(&it2, 1);
    run_epoch(&it2, again, x, y);
    ck_assert_mem_eq(e1, again, sizeof e1);
    nas_dataset_iter_fini(&it2);
    nas_dataset_iter_fini(&it);

    /* Without shuffle the order is the identity; drop_last drops the tail. */
    cfg.shuffle = 0, cfg.drop_last = 1;
    ck_assert_int_eq(nas_dataset_iter_init(&it, &ds, &cfg, err), 0);
    ck_assert_int_eq(run_epoch(&it, e0, x, y), 4);
    ck_assert_int_eq(nas_dataset_iter_batches(&it), 4);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(e0[i], i);
    nas_dataset_iter_fini(&it);
    cfg.batch = 0;
    ck_assert_int_eq(nas_dataset_iter_init(&it, &ds, &cfg, err), NAS_EINVAL);
    cfg.batch = 4, cfg.pad = 2;
    ck_assert_int_eq(nas_dataset_iter_init(&it, &ds, &cfg, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "padding 2 outside 0..1"));
    nas_dataset_fini(&ds);
}
END_TEST

START_TEST(test_dataset_iter_augment) {
    /* One 2-channel 6x6 image, repeated: every output must be the image
     * shifted by (dy, dx) in -2..2 with zero fill, possibly mirrored. */
    enum { N = 64, C = 2, H = 6, W = 6, P = 2 };
    nas_dataset ds;
    make_set(&ds, N, C, H, W, f_ident);
    for (int i = 0; i < N; i++)
        memcpy(nas_dataset_image(&ds, i), ds.images, sizeof(float) * C * H * W);
    for (int i = 0; i < N * C * H * W; i++)
        ds.images[i] += 1.0f; /* no real pixel is 0 */
    nas_dataset_iter_config cfg = {.batch = N, .shuffle = 1, .pad = P, .flip = 1, .seed = 3};
    nas_dataset_iter it;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dataset_iter_init(&it, &ds, &cfg, err), 0);
    static float x[N * C * H * W], x2[N * C * H * W];
    uint8_t y[N];
    ck_assert_int_eq(nas_dataset_iter_next(&it, x, y), N);
    int flips = 0, shifted = 0;
    const float *src = ds.images;
    for (int j = 0; j < N; j++) {
        const float *o = x + (size_t)j * C * H * W;
        int found = 0;
        for (int fl = 0; fl < 2 && !found; fl++)
            for (int dy = -P; dy <= P && !found; dy++)
                for (int dx = -P; dx <= P && !found; dx++) {
                    int ok = 1;
                    for (int ch = 0; ch < C && ok; ch++)
                        for (int yy = 0; yy < H && ok; yy++)
                            for (int xx = 0; xx < W && ok; xx++) {
                                int sy = yy + dy, sx = (fl ? W - 1 - xx : xx) + dx;
                                float want = sy >= 0 && sy < H && sx >= 0 && sx < W
                                                 ? src[(ch * H + sy) * W + sx]
                                                 : 0.0f;
                                ok = o[(ch * H + yy) * W + xx] == want;
                            }
                    if (ok) {
                        found = 1;
                        flips += fl;
                        shifted += dy != 0 || dx != 0;
                    }
                }
        ck_assert_msg(found, "output %d is not a shifted/flipped copy", j);
    }
    /* With 64 draws both branches must occur (chance of failure ~1e-19). */
    ck_assert_int_gt(flips, 0);
    ck_assert_int_lt(flips, N);
    ck_assert_int_gt(shifted, 0);
    /* Reproducible: the same epoch again gives identical bytes. */
    nas_dataset_iter_begin_epoch(&it, 0);
    ck_assert_int_eq(nas_dataset_iter_next(&it, x2, y), N);
    ck_assert_mem_eq(x, x2, sizeof x);
    nas_dataset_iter_fini(&it);
    nas_dataset_fini(&ds);
}
END_TEST

START_TEST(test_dataset_cutout) {
    /* The helper zeroes exactly the clipped square in every channel, nothing else. */
    enum { C = 2, H = 7, W = 9 };
    float img[C * H * W];
    static const int cases[][3] = {{3, 4, 4}, {0, 0, 4}, {6, 8, 3}, {2, 5, 1}, {3, 3, 20}};
    for (size_t k = 0; k < NAS_ARRAY_LEN(cases); k++) {
        int cy = cases[k][0], cx = cases[k][1], s = cases[k][2];
        for (int i = 0; i < C * H * W; i++)
            img[i] = 1.0f + (float)i;
        nas_dataset_cutout(img, C, H, W, cy, cx, s);
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int in = y >= cy - s / 2 && y < cy - s / 2 + s && x >= cx - s / 2 &&
                             x < cx - s / 2 + s;
                    float v = img[(ch * H + y) * W + x];
                    ck_assert_msg(in ? v == 0.0f : v == 1.0f + (float)((ch * H + y) * W + x),
                                  "case %zu: pixel (%d,%d,%d) = %g", k, ch, y, x, (double)v);
                }
    }
    /* Through the iterator: each image differs from its source in one square of side <= S
     * (clipped at the border), the same in both channels, zero there; the squares move. */
    enum { N = 32, S = 3 };
    nas_dataset ds;
    make_set(&ds, N, C, H, W, f_ident);
    for (int i = 0; i < N * C * H * W; i++)
        ds.images[i] += 1.0f;
    nas_dataset_iter_config cfg = {.batch = N, .shuffle = 0, .cutout = S, .seed = 5};
    nas_dataset_iter it;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dataset_iter_init(&it, &ds, &cfg, err), 0);
    static float x[N * C * H * W];
    uint8_t y[N];
    ck_assert_int_eq(nas_dataset_iter_next(&it, x, y), N);
    int corners = 0, first_y0 = -1, moved = 0;
    for (int j = 0; j < N; j++) {
        const float *o = x + (size_t)j * C * H * W, *src = nas_dataset_image(&ds, j);
        int y0 = H, y1 = -1, x0 = W, x1 = -1, zeros = 0;
        for (int yy = 0; yy < H; yy++)
            for (int xx = 0; xx < W; xx++) {
                int z = o[yy * W + xx] == 0.0f;
                ck_assert_int_eq(z, o[(H + yy) * W + xx] == 0.0f); /* both channels */
                if (!z) {
                    ck_assert(o[yy * W + xx] == src[yy * W + xx]);
                    continue;
                }
                zeros++;
                y0 = yy < y0 ? yy : y0, y1 = yy > y1 ? yy : y1;
                x0 = xx < x0 ? xx : x0, x1 = xx > x1 ? xx : x1;
            }
        ck_assert_int_gt(zeros, 0);
        ck_assert_int_eq(zeros, (y1 - y0 + 1) * (x1 - x0 + 1)); /* a filled rectangle */
        ck_assert_int_le(y1 - y0 + 1, S);
        ck_assert_int_le(x1 - x0 + 1, S);
        corners += zeros < S * S;
        if (first_y0 < 0) first_y0 = y0 * W + x0;
        moved |= y0 * W + x0 != first_y0;
    }
    ck_assert(moved);
    ck_assert_int_gt(corners, 0); /* centres near the border are clipped (P ~ 1 - 1e-4) */
    nas_dataset_iter_fini(&it);
    cfg.cutout = W + 1;
    ck_assert_int_eq(nas_dataset_iter_init(&it, &ds, &cfg, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "cutout"));
    nas_dataset_fini(&ds);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_dataset_idx_plain_and_gz);
    tcase_add_test(tc, test_dataset_named_fashion_mnist);
    tcase_add_test(tc, test_dataset_idx_errors);
    tcase_add_test(tc, test_dataset_save_idx_round_trip);
    tcase_add_test(tc, test_dataset_cifar_load_and_errors);
    tcase_add_test(tc, test_dataset_resize_area);
    tcase_add_test(tc, test_dataset_normalize);
    tcase_add_test(tc, test_dataset_split_and_subset);
    tcase_add_test(tc, test_dataset_prepare_recipe);
    tcase_add_test(tc, test_dataset_from_fidelity);
    tcase_add_test(tc, test_dataset_oom_is_clean);
    tcase_add_test(tc, test_dataset_iter_shuffle);
    tcase_add_test(tc, test_dataset_iter_augment);
    tcase_add_test(tc, test_dataset_cutout);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
