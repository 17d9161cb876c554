// nas-test: label=slow timeout=300
/*
 * test_data_slow.c - the data layer against the outside world: the real
 * Fashion-MNIST files (counts, shapes, class balance, known statistics and
 * load time) and PyTorch reading our safetensors files and writing ones we
 * read.  Each test skips with a message when its dependency is missing, so
 * the suite passes on a machine without the data set or without torch.
 */
#define _POSIX_C_SOURCE 200809L
#include "common/alloc.h"
#include "common/clock.h"
#include "common/dataset.h"
#include "common/err.h"
#include "common/safetensors.h"
#include "tests/harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FMNIST_TRAIN_FINGERPRINT 0x614fbf6a5cb84e28ULL

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The Fashion-MNIST directory: $NAS_FASHION_MNIST_DIR or the system copy. */
static const char *fmnist_dir(void) {
    const char *d = getenv("NAS_FASHION_MNIST_DIR");
    if (!d || !*d) d = "/usr/share/datasets/fashion-mnist";
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", d);
    if (access(probe, R_OK) == 0) return d;
    snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte", d);
    return access(probe, R_OK) == 0 ? d : NULL;
}

START_TEST(test_data_fashion_mnist_full) {
    const char *dir = fmnist_dir();
    if (!dir) {
        printf("SKIP test_data_fashion_mnist_full: Fashion-MNIST not found (set "
               "NAS_FASHION_MNIST_DIR)\n");
        return;
    }
    char err[NAS_ERR_LEN];
    nas_dataset tr, te;
    double t0 = now_s();
    ck_assert_msg(nas_dataset_load(&tr, "fashion-mnist", dir, NAS_SPLIT_TRAIN, err) == 0, "%s",
                  err);
    double t1 = now_s();
    ck_assert_msg(nas_dataset_load(&te, "fashion-mnist", dir, NAS_SPLIT_TEST, err) == 0, "%s", err);
    ck_assert_int_eq(tr.n, 60000);
    ck_assert_int_eq(te.n, 10000);
    ck_assert(tr.c == 1 && tr.h == 28 && tr.w == 28 && tr.classes == 10);
    ck_assert(te.c == 1 && te.h == 28 && te.w == 28);
    /* Pinned: loader output is part of every stored result's meaning, so a
     * change to it (scaling, order) must be deliberate. */
    double tf = now_s();
    uint64_t fp = nas_dataset_fingerprint(&tr);
    tf = now_s() - tf;
    printf("fashion-mnist: train fingerprint %016llx in %.3f s\n", (unsigned long long)fp, tf);
    ck_assert_uint_eq(fp, FMNIST_TRAIN_FINGERPRINT);
    /* Fashion-MNIST is balanced: 6000 and 1000 images per class. */
    int per[10] = {0}, per_te[10] = {0};
    for (int i = 0; i < tr.n; i++)
        per[tr.labels[i]]++;
    for (int i = 0; i < te.n; i++)
        per_te[te.labels[i]]++;
    for (int k = 0; k < 10; k++)
        ck_assert(per[k] == 6000 && per_te[k] == 1000);
    /* The training set's published pixel statistics: mean 0.2860, std 0.3530. */
    float mean, std;
    nas_dataset_channel_stats(&tr, &mean, &std);
    ck_assert_msg(fabsf(mean - 0.2860f) < 5e-4f && fabsf(std - 0.3530f) < 5e-4f, "mean %f std %f",
                  mean, std);
    /* The whole search-fidelity recipe: load, 28->14, split, normalise;
     * once from memory (what a worker does per task), once from disk. */
    nas_dataset_config cfg = {.name = "fashion-mnist",
                              .dir = dir,
                              .resolution = 14,
                              .val_size = 10000,
                              .val_random = 1,
                              .load_test = 1,
                              .seed = 1};
    nas_dataset_splits s, s2;
    double t2 = now_s();
    ck_assert_msg(nas_dataset_prepare_from(&s2, &cfg, &tr, &te, err) == 0, "%s", err);
    double t3 = now_s();
    nas_dataset_fini(&tr);
    nas_dataset_fini(&te);
    ck_assert_msg(nas_dataset_prepare(&s, &cfg, err) == 0, "%s", err);
    double t4 = now_s();
    ck_assert(s.train.n == 50000 && s.val.n == 10000 && s.test.n == 10000 && s.train.h == 14);
    ck_assert_mem_eq(s.train.images, s2.train.images, (size_t)50000 * 14 * 14 * sizeof(float));
    float m2, sd2;
    nas_dataset_channel_stats(&s.train, &m2, &sd2);
    ck_assert(fabsf(m2) < 1e-4f && fabsf(sd2 - 1.0f) < 1e-3f);
    printf("fashion-mnist: load train (60000x28x28, gz) %.3f s; prepare from disk (train+test, "
           "resize to 14, split, normalise) %.3f s; the same from memory %.3f s\n",
           t1 - t0, t4 - t3, t3 - t2);
    nas_dataset_splits_fini(&s2);
    nas_dataset_splits_fini(&s);
}
END_TEST

/* Run a Python script written to dir/name with the given arguments;
 * returns its exit status and leaves its output in out. */
static int run_python(const char *dir, const char *name, const char *script, const char *args,
                      char *out, size_t cap) {
    char path[4096], cmd[8192];
    nas_path_join(path, sizeof path, dir, name);
    ck_assert_int_eq(nas_write_file(path, script, strlen(script), 0), 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s 2>&1", path, args);
    return nas_run_cmd(cmd, out, cap);
}

/* Reads a safetensors file by hand (struct + json + torch.frombuffer) and
 * compares with the values the C side wrote; exit 0 and "OK" if equal. */
static const char *k_py_read =
    "import json, struct, sys, torch\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "n = struct.unpack('<Q', raw[:8])[0]\n"
    "h = json.loads(raw[8:8 + n])\n"
    "meta = h.pop('__metadata__', {})\n"
    "assert meta == {'format': 'pt', 'genome': 'n=sep3x3:1+id:0'}, meta\n"
    "got = {}\n"
    "for name, v in h.items():\n"
    "    assert v['dtype'] == 'F32', v\n"
    "    s, e = v['data_offsets']\n"
    "    t = torch.frombuffer(bytearray(raw[8 + n + s:8 + n + e]), dtype=torch.float32)\n"
    "    got[name] = t.reshape(v['shape'])\n"
    "w = torch.arange(108, dtype=torch.float32).reshape(4, 3, 3, 3) * 0.25 - 3\n"
    "g = torch.tensor([1.5, -0.5, 2.0 ** -126, 3.0 * 2.0 ** 100], dtype=torch.float32)\n"
    "assert torch.equal(got['cell0/block0/a/dw'], w), got['cell0/block0/a/dw']\n"
    "assert torch.equal(got['stem/bn/gamma'], g), got['stem/bn/gamma']\n"
    "assert got['scale'].shape == torch.Size([]) and got['scale'].item() == 0.125\n"
    "print('OK', len(got))\n";

/* Writes a safetensors file by hand from torch tensors for the C side. */
static const char *k_py_write =
    "import json, struct, sys, torch\n"
    "x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.5 - 1\n"
    "y = torch.tensor([[2.0 ** -20, -7.0]], dtype=torch.float32)\n"
    "bx = x.numpy().tobytes(); by = y.numpy().tobytes()\n"
    "h = {'__metadata__': {'by': 'torch ' + torch.__version__},\n"
    "     'x': {'dtype': 'F32', 'shape': [2, 3, 4], 'data_offsets': [0, len(bx)]},\n"
    "     'y': {'dtype': 'F32', 'shape': [1, 2], 'data_offsets': [len(bx), len(bx) + len(by)]}}\n"
    "hs = json.dumps(h).encode()\n"
    "open(sys.argv[1], 'wb').write(struct.pack('<Q', len(hs)) + hs + bx + by)\n"
    "print('WROTE')\n";

START_TEST(test_data_safetensors_pytorch) {
    char out[4096];
    if (nas_run_cmd("/usr/bin/python3 -c 'import torch, numpy' 2>&1", out, sizeof out) != 0) {
        printf("SKIP test_data_safetensors_pytorch: /usr/bin/python3 cannot import torch+numpy\n");
        return;
    }
    const char *dir = nas_tmpdir_make();
    char path[4096], err[NAS_ERR_LEN];
    float w[108], g[4] = {1.5f, -0.5f, ldexpf(1.0f, -126), 3.0f * ldexpf(1.0f, 100)}, sc = 0.125f;
    for (int i = 0; i < 108; i++)
        w[i] = (float)i * 0.25f - 3.0f;
    nas_safetensors_tensor t[3] = {
        {.name = "cell0/block0/a/dw", .ndim = 4, .shape = {4, 3, 3, 3}, .data = w},
        {.name = "stem/bn/gamma", .ndim = 1, .shape = {4}, .data = g},
        {.name = "scale", .ndim = 0, .data = &sc},
    };
    nas_safetensors_meta meta[2] = {{"format", "pt"}, {"genome", "n=sep3x3:1+id:0"}};
    nas_path_join(path, sizeof path, dir, "c.safetensors");
    ck_assert_msg(nas_safetensors_save(path, t, 3, meta, 2, err) == 0, "%s", err);
    int rc = run_python(dir, "read.py", k_py_read, path, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "OK 3"), "python read failed (%d): %s", rc, out);

    /* And the other way: a file PyTorch wrote, read by us. */
    nas_path_join(path, sizeof path, dir, "py.safetensors");
    rc = run_python(dir, "write.py", k_py_write, path, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "WROTE"), "python write failed (%d): %s", rc, out);
    nas_safetensors *st = NULL;
    ck_assert_msg(nas_safetensors_load(path, &st, err) == 0, "%s", err);
    const nas_safetensors_tensor *x = nas_safetensors_find(st, "x");
    const nas_safetensors_tensor *y = nas_safetensors_find(st, "y");
    ck_assert(x && y && x->ndim == 3 && x->shape[2] == 4 && y->shape[1] == 2);
    for (int i = 0; i < 24; i++)
        ck_assert(x->data[i] == (float)i * 0.5f - 1.0f);
    ck_assert(y->data[0] == ldexpf(1.0f, -20) && y->data[1] == -7.0f);
    ck_assert(strncmp(nas_safetensors_meta_get(st, "by"), "torch ", 6) == 0);
    nas_safetensors_destroy(&st);
    printf("safetensors: PyTorch read our file and we read PyTorch's\n");
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("data_slow");
    TCase *tc = tcase_create("external");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_data_fashion_mnist_full);
    tcase_add_test(tc, test_data_safetensors_pytorch);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
