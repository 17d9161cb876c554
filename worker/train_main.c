/*
 * nas-train - trains one architecture at one fidelity, standalone.
 *
 * Loads a data set through the data module's recipe (resize, validation
 * split, subset, normalise), builds the network named by --arch, trains it
 * with the engine's trainer and reports a progress line per epoch on
 * stderr, and with --json one JSON object on stdout.  Exit status: 0 on
 * success, 1 when training or loading fails, 2 for a usage error.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/blas.h"
#include "common/dataset.h"
#include "common/builder.h"
#include "common/cli.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/net.h"
#include "common/refnets.h"
#include "common/trainer.h"

typedef struct options {
    const char *arch, *data, *data_dir, *save, *load;
    int json, resolution_set;
    nas_fidelity fid;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: nas-train [options]\n"
            "\n"
            "Trains one architecture at one fidelity, standalone.\n"
            "\n"
            "  --arch ARCH          a reference net (small | small14 | resnet20), a preset\n"
            "                       (nasnet_a | amoebanet_a | pnasnet5 | resnet | nb201_resnet)\n"
            "                       or genome text, e.g. 'n=sep3x3:1+max3x3:0 r=avg3x3:0+id:1'\n"
            "                       (docs/GENOME.md); default small\n"
            "  --data NAME          fashion-mnist | mnist | cifar10 (default fashion-mnist)\n"
            "  --data-dir DIR       data files (default /usr/share/datasets/fashion-mnist)\n"
            "  --epochs N           training epochs (default 2)\n"
            "  --batch N            batch size (default 128)\n"
            "  --lr F               peak learning rate, cosine schedule (default 0.1)\n"
            "  --warmup F           warm-up epochs (default 0)\n"
            "  --train-subset N     training images per epoch, 0 = all (default 10000)\n"
            "  --val-size N         images held out for validation (default 5000)\n"
            "  --resolution N       input side after downsampling, 0 = native\n"
            "                       (default: the architecture's own, 28 or 14)\n"
            "  --channels N         first-stage channels (genome architectures; default 8)\n"
            "  --cells N            normal cells per stage (genome architectures; default 1)\n"
            "  --width-mult F       MBConv genomes: continuous width multiplier on F, whole\n"
            "                       channels (the final size target's; default 0, off)\n"
            "  --label-smoothing F  (default 0)\n"
            "  --drop-path F        drop-path probability at the end of training (default 0)\n"
            "  --cutout N           zero an N x N square of each training image (default 0)\n"
            "  --progressive-start N  progressive resizing: the first epoch trains on N x N\n"
            "                       images, growing to the resolution by the last\n"
            "                       (default 0, off)\n"
            "  --aux-weight F       auxiliary head's loss weight, 0 = none (genomes; default 0)\n"
            "  --time-limit S       stop with an error after S seconds, 0 = none (default 0)\n"
            "  --seed N             seed of every random choice (default 1)\n"
            "  --threads N          compute threads (default 1)\n"
            "  --augment            random crop (and flip, except for digits)\n"
            "  --test               evaluate the test set at the end\n"
            "  --save-weights FILE  write the trained weights (safetensors)\n"
            "  --load-weights FILE  start from these weights instead of a fresh init\n"
            "  --json               print one JSON object with the results on stdout\n"
            "  --help               this text\n"
            "  --version            the version\n"
            "\n"
            "Options may be written --opt VALUE or --opt=VALUE.\n");
}

// ----------------------------------------------------------------------------
// argument parsing

// Numbers are parsed strictly (whole string, range-checked) so that "--epochs 1O" is an error
// naming the flag, never a silent 1.
static int parse_long(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "nas-train: %s expects an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_float(const char *flag, const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "nas-train: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

// Integer-valued flags and where they go.
typedef struct int_flag {
    const char *name;
    long lo, hi;
    size_t offset; /* into nas_fidelity, of an int */
} int_flag;

static const int_flag INT_FLAGS[] = {
    {"--epochs", 1, 100000, offsetof(nas_fidelity, epochs)},
    {"--batch", 1, 65536, offsetof(nas_fidelity, batch)},
    {"--train-subset", 0, 100000000, offsetof(nas_fidelity, train_subset)},
    {"--val-size", 0, 100000000, offsetof(nas_fidelity, val_size)},
    {"--resolution", 0, 1024, offsetof(nas_fidelity, resolution)},
    {"--channels", 1, 4096, offsetof(nas_fidelity, channels)},
    {"--cells", 0, 64, offsetof(nas_fidelity, cells)},
    {"--threads", 1, 256, offsetof(nas_fidelity, threads)},
    {"--cutout", 0, 1024, offsetof(nas_fidelity, cutout)},
    {"--progressive-start", 0, 1024, offsetof(nas_fidelity, progressive_start)},
};

typedef struct float_flag {
    const char *name;
    double lo, hi;
    size_t offset; /* into nas_fidelity, of a float */
} float_flag;

static const float_flag FLOAT_FLAGS[] = {
    {"--lr", 0, 100, offsetof(nas_fidelity, lr)},
    {"--warmup", 0, 100000, offsetof(nas_fidelity, warmup_epochs)},
    {"--label-smoothing", 0, 0.999, offsetof(nas_fidelity, label_smoothing)},
    {"--drop-path", 0, 0.999, offsetof(nas_fidelity, drop_path)},
    {"--aux-weight", 0, 10, offsetof(nas_fidelity, aux_weight)},
    {"--width-mult", 0, 64, offsetof(nas_fidelity, width_mult)},
};

static const char *const STR_FLAGS[] = {"--arch", "--data", "--data-dir", "--save-weights",
                                        "--load-weights", "--seed", "--time-limit"};

// Returns 1 to go on, or 0 to exit with *status (after --help, --version or a usage error,
// already reported).  The tables above become getopt_long's options (common/cli.h), so
// --epochs=3 and --epochs 3 both work.
enum { OPT_INT = 1000, OPT_FLOAT = 2000, OPT_STR = 3000 };
static int parse_args(int argc, char **argv, options *o, int *status) {
    o->arch = "small", o->data = "fashion-mnist", o->data_dir = "/usr/share/datasets/fashion-mnist";
    o->fid = nas_fidelity_default();
    struct option lo[NAS_ARRAY_LEN(INT_FLAGS) + NAS_ARRAY_LEN(FLOAT_FLAGS) +
                     NAS_ARRAY_LEN(STR_FLAGS) + 6];
    size_t n = 0;
    for (size_t k = 0; k < NAS_ARRAY_LEN(INT_FLAGS); k++)
        lo[n++] = (struct option){INT_FLAGS[k].name + 2, required_argument, NULL, OPT_INT + (int)k};
    for (size_t k = 0; k < NAS_ARRAY_LEN(FLOAT_FLAGS); k++)
        lo[n++] =
            (struct option){FLOAT_FLAGS[k].name + 2, required_argument, NULL, OPT_FLOAT + (int)k};
    for (size_t k = 0; k < NAS_ARRAY_LEN(STR_FLAGS); k++)
        lo[n++] = (struct option){STR_FLAGS[k] + 2, required_argument, NULL, OPT_STR + (int)k};
    lo[n++] = (struct option){"augment", no_argument, NULL, 'a'};
    lo[n++] = (struct option){"test", no_argument, NULL, 't'};
    lo[n++] = (struct option){"json", no_argument, NULL, 'j'};
    lo[n++] = (struct option){"help", no_argument, NULL, NAS_CLI_HELP};
    lo[n++] = (struct option){"version", no_argument, NULL, NAS_CLI_VERSION};
    lo[n] = (struct option){NULL, 0, NULL, 0};
    int c;
    while ((c = nas_cli_next(argc, argv, lo, "nas-train", usage, status)) != -1) {
        const char *v = optarg;
        if (c == NAS_CLI_EXIT) return 0;
        *status = NAS_EXIT_USAGE; /* for the bad values refused below */
        if (c == 'a') { o->fid.augment = 1; continue; }
        if (c == 't') { o->fid.test = 1; continue; }
        if (c == 'j') { o->json = 1; continue; }
        if (c >= OPT_INT && c < OPT_FLOAT) {
            const int_flag *f = &INT_FLAGS[c - OPT_INT];
            long x;
            if (parse_long(f->name, v, f->lo, f->hi, &x) < 0) return 0;
            *(int *)((char *)&o->fid + f->offset) = (int)x;
            if (!strcmp(f->name, "--resolution")) o->resolution_set = 1;
            continue;
        }
        if (c >= OPT_FLOAT && c < OPT_STR) {
            const float_flag *f = &FLOAT_FLAGS[c - OPT_FLOAT];
            if (parse_float(f->name, v, f->lo, f->hi, (float *)((char *)&o->fid + f->offset)) < 0)
                return 0;
            continue;
        }
        const char *name = STR_FLAGS[c - OPT_STR];
        if (!strcmp(name, "--arch")) o->arch = v;
        else if (!strcmp(name, "--data")) o->data = v;
        else if (!strcmp(name, "--data-dir")) o->data_dir = v;
        else if (!strcmp(name, "--save-weights")) o->save = v;
        else if (!strcmp(name, "--load-weights")) o->load = v;
        else if (!strcmp(name, "--seed")) {
            long x;
            if (parse_long(name, v, 0, LONG_MAX, &x) < 0) return 0;
            o->fid.seed = (uint64_t)x;
        } else {
            float t;
            if (parse_float(name, v, 0, 1e9, &t) < 0) return 0;
            o->fid.time_limit_s = t;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nas-train: unexpected argument '%s' (try --help)\n", argv[optind]);
        *status = NAS_EXIT_USAGE;
        return 0;
    }
    return 1;
}

// ----------------------------------------------------------------------------
// architecture resolution: the one place that maps --arch to a network

/* Native input side for `arch` (0 = keep the data set's). */
static int arch_resolution(const char *arch) { return nas_refnet_resolution(arch); }

/* Build `arch` into the empty net.  Reference nets come from refnets.c;
 * genome text and presets are to be added here (the genome builder). */
static int build_arch(nas_net *net, const char *arch, const nas_fidelity *f, int classes,
                      int *logits, char *err) {
    /* Reference nets by name, then genome presets, then genome text; the
     * fidelity's channels and cells shape genome networks only. */
    return nas_builder_build_arch(net, arch, f, classes, logits, NULL, NULL, err);
}

// ----------------------------------------------------------------------------
// weights

/* Weights go through the net's safetensors save/load, keyed by parameter path. */
static int weights_save(nas_net *net, const char *path, const char *arch, char *err) {
    return nas_net_save(net, path, arch, err);
}

static int weights_load(nas_net *net, const char *path, char *err) {
    return nas_net_load(net, path, err);
}

// ----------------------------------------------------------------------------
// reporting

// Progress goes to stderr so that stdout carries only the --json object.
static int on_epoch(void *user, const nas_train_epoch *e) {
    (void)user;
    fprintf(stderr,
            "epoch %d/%d  train_loss %.4f  train_acc %.4f  val_loss %.4f  val_acc %.4f  lr %.4g  "
            "%.1fs\n",
            e->epoch + 1, e->epochs, (double)e->train_loss, (double)e->train_acc,
            (double)e->val_loss, (double)e->val_acc, (double)e->lr, e->seconds);
    return 0;
}

// NaN is not JSON: absent figures are written as null.
static void json_num(nas_json_buf *b, const char *key, double v) {
    nas_json_buf_key(b, key);
    if (isfinite(v)) nas_json_buf_f64(b, v);
    else nas_json_buf_null(b);
}

static void print_json(const options *o, const nas_train_result *r) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "arch"), nas_json_buf_str(&b, o->arch);
    nas_json_buf_key(&b, "data"), nas_json_buf_str(&b, o->data);
    json_num(&b, "val_acc", r->val_acc);
    json_num(&b, "val_loss", r->val_loss);
    json_num(&b, "test_acc", r->test_acc);
    json_num(&b, "test_loss", r->test_loss);
    nas_json_buf_key(&b, "loss_curve");
    nas_json_buf_arr_begin(&b);
    for (int e = 0; e < r->epochs_done; e++) nas_json_buf_f32(&b, r->train_loss_curve[e]);
    nas_json_buf_arr_end(&b);
    nas_json_buf_key(&b, "val_acc_curve");
    nas_json_buf_arr_begin(&b);
    for (int e = 0; e < r->epochs_done; e++) {
        if (isfinite(r->val_acc_curve[e])) nas_json_buf_f32(&b, r->val_acc_curve[e]);
        else nas_json_buf_null(&b);
    }
    nas_json_buf_arr_end(&b);
    nas_json_buf_key(&b, "epochs"), nas_json_buf_i64(&b, r->epochs_done);
    nas_json_buf_key(&b, "params"), nas_json_buf_i64(&b, r->params);
    nas_json_buf_key(&b, "macs"), nas_json_buf_i64(&b, r->macs);
    json_num(&b, "seconds", r->seconds);
    json_num(&b, "images_per_s", r->images_per_s);
    nas_json_buf_key(&b, "seed"), nas_json_buf_u64(&b, o->fid.seed);
    nas_json_buf_key(&b, "threads"), nas_json_buf_i64(&b, o->fid.threads);
    nas_blas_info_json(&b);
    nas_json_buf_obj_end(&b);
    size_t len;
    char *s = nas_json_buf_take(&b, &len);
    if (s) printf("%s\n", s);
    free(s);
    nas_json_buf_fini(&b);
}

// ----------------------------------------------------------------------------
// main

// The whole command: data through the data module's recipe, the network for its shape, then
// training; every failure funnels to one cleanup with a message in err.
static int run(const options *o, char *err) {
    nas_dataset_splits data;
    memset(&data, 0, sizeof(data));
    nas_net *net = NULL;
    nas_train_result res;
    memset(&res, 0, sizeof(res));
    nas_fidelity f = o->fid;
    if (!o->resolution_set) f.resolution = arch_resolution(o->arch);
    int rc = nas_fidelity_validate(&f, err);
    if (rc < 0) goto fail;
    nas_dataset_config dc = {.name = o->data, .dir = o->data_dir, .resolution = f.resolution,
                             .val_size = f.val_size, .train_subset = f.train_subset,
                             .load_test = f.test, .seed = f.seed};
    if ((rc = nas_dataset_prepare(&data, &dc, err)) < 0) goto fail;
    const nas_dataset *tr = &data.train;
    if ((rc = nas_net_create(&net, tr->c, tr->h, tr->w, err)) < 0) goto fail;
    int logits;
    if ((rc = build_arch(net, o->arch, &f, tr->classes, &logits, err)) < 0) goto fail;
    if ((rc = nas_net_compile(net, logits, f.batch, err)) < 0) goto fail;
    nas_train_config tc = nas_train_config_default();
    tc.fid = f;
    tc.train = tr;
    tc.val = &data.val;
    tc.test = &data.test;
    tc.flip = strcmp(o->data, "mnist") != 0; /* flipped digits are other digits */
    tc.on_epoch = on_epoch;
    nas_builder_arch again = {o->arch, f, tr->classes}; /* progressive resizing */
    tc.build = nas_builder_arch_cb;
    tc.build_user = &again;
    if (o->load) {
        if ((rc = weights_load(net, o->load, err)) < 0) goto fail;
        tc.init_params = 0;
    }
    nas_info("training %s on %s: %d train / %d val images of %dx%dx%d, %lld params, %lld MACs/img",
             o->arch, o->data, tr->n, data.val.n, tr->c, tr->h, tr->w,
             (long long)nas_net_param_count(net), (long long)nas_net_macs(net));
    if ((rc = nas_trainer_run(net, &tc, &res, err)) < 0) goto fail;
    if (f.test)
        fprintf(stderr, "test_loss %.4f  test_acc %.4f\n", (double)res.test_loss, (double)res.test_acc);
    fprintf(stderr, "%.1f s, %.0f images/s\n", res.seconds, res.images_per_s);
    if (o->save && (rc = weights_save(net, o->save, o->arch, err)) < 0) goto fail;
    if (o->json) print_json(o, &res);
    rc = NAS_OK;
fail:
    nas_train_result_fini(&res);
    nas_net_destroy(&net);
    nas_dataset_splits_fini(&data);
    return rc;
}

int main(int argc, char **argv) {
    nas_log_set_prog("nas-train");
    /* May restart the binary on other BLAS kernels; fails on wrong ones. */
    if (nas_blas_prepare(argv) < 0) return 1;
    options o;
    memset(&o, 0, sizeof(o));
    int status = 0;
    if (!parse_args(argc, argv, &o, &status)) return status;
    char err[NAS_ERR_LEN] = "";
    int rc = run(&o, err);
    if (rc < 0) {
        fprintf(stderr, "nas-train: %s\n", err[0] ? err : nas_strerror(rc));
        return 1;
    }
    return 0;
}
