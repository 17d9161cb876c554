/*
 * nasctl_scale.c - `nasctl scale`: EfficientNet's compound scaling of an
 * MBConv base network (docs/GENOME.md s9).
 *
 * With --search, every point of the small (alpha, beta, gamma) grid
 * (common/scaling.h) is tried at phi = 1: the base scaled by it is trained
 * at the given low fidelity, on the side the point's gamma gives, and the
 * point with the best validation accuracy wins, as in Tan & Le's step 1.
 * Then (step 2) the base is scaled at each --phi target with the chosen
 * coefficients, and each model's genome, width multiplier, input side,
 * parameters and MACs are printed with the nas-train flags that train it
 * (with --train, trained here at the search fidelity too).  Without --search
 * the coefficients are --alpha/--beta/--gamma (EfficientNet's 1.2, 1.1, 1.15
 * by default).  Widths scale through fidelity.width_mult, not the genome's
 * 8-unit widths (nas_scale_model).
 */
#include "master/nasctl_scale.h"

#include "common/builder.h"
#include "common/dataset.h"
#include "common/err.h"
#include "common/net.h"
#include "common/scaling.h"
#include "common/trainer.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void scale_usage(FILE *f) {
    fprintf(
        f,
        "usage: nasctl scale ARCH [options]\n"
        "\n"
        "Compound scaling of an mbconv genome (text or preset name): depth alpha^phi,\n"
        "width beta^phi, resolution gamma^phi with alpha * beta^2 * gamma^2 ~ 2.\n"
        "\n"
        "  --phi LIST        comma-separated targets (default 1,2,3)\n"
        "  --alpha A --beta B --gamma G   coefficients (default 1.2, 1.1, 1.15)\n"
        "  --search          grid-search the coefficients first, training each point\n"
        "  --train           train every scaled model too and print its accuracy\n"
        "  --data DIR        Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)\n"
        "  --side N          the base input side (default 14)\n"
        "  --channels F      F of the base (default 16: widths as written)\n"
        "  --epochs N --subset N   the search's training fidelity (default 2, 5000 images)\n"
        "  --val-size N      training images held out for validation (default 5000)\n"
        "  --seeds N         trainings per model, seeds 1..N, accuracies averaged (default 1)\n"
        "  --classes K       outputs for counting without --search/--train (default 10)\n"
        "\n"
        "Exit status: 0 done, 1 failure (the message says why), 2 usage.\n");
}

typedef struct scale_opts {
    const char *arch, *data;
    double phi[8];
    int n_phi, search, train, side, channels, epochs, subset, val_size, seeds, classes;
    nas_scale_coef coef;
} scale_opts;

static int parse_phi(const char *s, scale_opts *o) {
    o->n_phi = 0;
    while (*s) {
        char *end = NULL;
        double v = strtod(s, &end);
        if (end == s || !(v >= 0 && v <= 8) || o->n_phi == 8) return -1;
        o->phi[o->n_phi++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return o->n_phi > 0 ? 0 : -1;
}

static int num(const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* The base's fidelity: the search fidelity on side x side images. */
static nas_fidelity base_fidelity(const scale_opts *o, int side) {
    nas_fidelity f = nas_fidelity_default();
    f.resolution = side;
    f.channels = o->channels;
    f.epochs = o->epochs;
    f.train_subset = o->subset;
    f.val_size = o->val_size;
    f.test = 0;
    return f;
}

/* The base scaled by d, w on side x side images. */
static int scaled(const scale_opts *o, const nas_genome *base, double d, double w, int side,
                  nas_genome *g, nas_fidelity *f, nas_cost *c, char *err) {
    nas_fidelity b = base_fidelity(o, side);
    int rc = nas_scale_model(base, &b, d, w, g, f, err);
    if (rc < 0) return rc;
    return nas_genome_cost(g, f, 1, side, o->classes, c, err);
}

/* Validation accuracy of g trained at fidelity f. */
static int train_once(const scale_opts *o, const nas_genome *g, const nas_fidelity *fid, float *acc,
                      char *err) {
    nas_fidelity f = *fid;
    nas_dataset_config dc = nas_dataset_config_from_fidelity(&f, "fashion-mnist", o->data);
    nas_dataset_splits data;
    nas_net *net = NULL;
    nas_train_result res;
    memset(&res, 0, sizeof res);
    int logits, rc = nas_dataset_prepare(&data, &dc, err);
    if (rc < 0) return rc;
    const nas_dataset *tr = &data.train;
    if ((rc = nas_net_create(&net, tr->c, tr->h, tr->w, err)) < 0) goto out;
    if ((rc = nas_builder_build(net, g, &f, tr->classes, &logits, err)) < 0) goto out;
    if ((rc = nas_net_compile(net, logits, f.batch, err)) < 0) goto out;
    nas_train_config tc = nas_train_config_default();
    tc.fid = f;
    tc.train = tr;
    tc.val = &data.val;
    tc.flip = 1;
    if ((rc = nas_trainer_run(net, &tc, &res, err)) < 0) goto out;
    *acc = res.val_acc;
out:
    nas_train_result_fini(&res);
    nas_net_destroy(&net);
    nas_dataset_splits_fini(&data);
    return rc;
}

/* The mean validation accuracy over seeds 1..--seeds: one short training
 * varies by about 1.5 points from seed to seed (docs/PERFORMANCE.md), as
 * much as the grid's points differ. */
static int train_point(const scale_opts *o, const nas_genome *g, const nas_fidelity *fid,
                       float *acc, char *err) {
    nas_fidelity f = *fid;
    double sum = 0;
    for (int s = 1; s <= o->seeds; s++) {
        float a = 0.0f;
        f.seed = (uint64_t)s;
        int rc = train_once(o, g, &f, &a, err);
        if (rc < 0) return rc;
        sum += a;
    }
    *acc = (float)(sum / o->seeds);
    return NAS_OK;
}

/* Step 1: the grid point whose phi = 1 model validates best. */
static int search(scale_opts *o, const nas_genome *base, char *err) {
    nas_scale_coef grid[32];
    int n = nas_scale_grid(grid, 32);
    float best = -1.0f;
    printf("%-6s %-6s %-6s %-5s %-10s %-12s %s\n", "alpha", "beta", "gamma", "side", "params",
           "macs", "val_acc");
    for (int i = 0; i < n; i++) {
        nas_genome g;
        nas_fidelity f;
        nas_cost c;
        int side = nas_scale_side(o->side, grid[i].gamma, 1.0);
        int rc = scaled(o, base, grid[i].alpha, grid[i].beta, side, &g, &f, &c, err);
        if (rc < 0) return rc;
        float acc = 0.0f;
        if ((rc = train_point(o, &g, &f, &acc, err)) < 0) return rc;
        printf("%-6.2f %-6.2f %-6.2f %-5d %-10lld %-12lld %.4f\n", grid[i].alpha, grid[i].beta,
               grid[i].gamma, side, (long long)c.params, (long long)c.macs, (double)acc);
        fflush(stdout);
        if (acc > best) best = acc, o->coef = grid[i];
    }
    printf("chosen: alpha %.2f beta %.2f gamma %.2f (val_acc %.4f)\n\n", o->coef.alpha,
           o->coef.beta, o->coef.gamma, (double)best);
    return NAS_OK;
}

/* Step 2: the base scaled at every target. */
static int report(const scale_opts *o, const nas_genome *base, char *err) {
    printf("%-5s %-7s %-7s %-5s %-10s %-12s %s%s\n", "phi", "depth", "width", "side", "params",
           "macs", o->train ? "val_acc " : "", "genome");
    for (int i = 0; i < o->n_phi; i++) {
        double d = pow(o->coef.alpha, o->phi[i]), w = pow(o->coef.beta, o->phi[i]);
        int side = nas_scale_side(o->side, o->coef.gamma, o->phi[i]);
        nas_genome g;
        nas_fidelity f;
        nas_cost c;
        int rc = scaled(o, base, d, w, side, &g, &f, &c, err);
        if (rc < 0) return rc;
        char text[NAS_GENOME_TEXT_MAX], acc_text[16] = "";
        nas_genome_format(&g, text, sizeof text);
        float acc = 0.0f;
        if (o->train) {
            if ((rc = train_point(o, &g, &f, &acc, err)) < 0) return rc;
            snprintf(acc_text, sizeof acc_text, "%.4f  ", (double)acc);
        }
        printf("%-5g %-7.3f %-7.3f %-5d %-10lld %-12lld %s%s\n", o->phi[i], d, w, side,
               (long long)c.params, (long long)c.macs, acc_text, text);
        /* %.9g: the float the fidelity holds, so nas-train builds this very network. */
        printf("      nas-train --arch '%s' --channels %d --width-mult %.9g --resolution %d\n",
               text, f.channels, (double)f.width_mult, side);
        fflush(stdout);
    }
    return NAS_OK;
}

int nas_nasctl_scale(int argc, char **argv) {
    static const struct option opts[] = {
        {"phi", required_argument, NULL, 'p'},     {"alpha", required_argument, NULL, 'a'},
        {"beta", required_argument, NULL, 'b'},    {"gamma", required_argument, NULL, 'g'},
        {"search", no_argument, NULL, 's'},        {"data", required_argument, NULL, 'D'},
        {"side", required_argument, NULL, 'S'},    {"channels", required_argument, NULL, 'F'},
        {"epochs", required_argument, NULL, 'e'},  {"subset", required_argument, NULL, 'n'},
        {"classes", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'},
        {"train", no_argument, NULL, 't'},         {"val-size", required_argument, NULL, 'V'},
        {"seeds", required_argument, NULL, 'R'},   {NULL, 0, NULL, 0},
    };
    scale_opts o = {.data = "/usr/share/datasets/fashion-mnist",
                    .phi = {1, 2, 3},
                    .n_phi = 3,
                    .side = 14,
                    .channels = 16,
                    .epochs = 2,
                    .subset = 5000,
                    .val_size = 5000,
                    .seeds = 1,
                    .classes = 10,
                    .coef = nas_scale_efficientnet()};
    optind = 1;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'p': bad = parse_phi(optarg, &o); break;
        case 'a': bad = num(optarg, 0.5, 4, &o.coef.alpha); break;
        case 'b': bad = num(optarg, 0.5, 4, &o.coef.beta); break;
        case 'g': bad = num(optarg, 0.5, 4, &o.coef.gamma); break;
        case 's': o.search = 1; break;
        case 't':
            o.train = 1;
            break;
        case 'D': o.data = optarg; break;
        case 'S': bad = num(optarg, 4, 1024, &v), o.side = (int)v; break;
        case 'F': bad = num(optarg, 1, 4096, &v), o.channels = (int)v; break;
        case 'e': bad = num(optarg, 1, 1000, &v), o.epochs = (int)v; break;
        case 'n': bad = num(optarg, 0, 1e7, &v), o.subset = (int)v; break;
        case 'V':
            bad = num(optarg, 1, 1e7, &v), o.val_size = (int)v;
            break;
        case 'R':
            bad = num(optarg, 1, 32, &v), o.seeds = (int)v;
            break;
        case 'k': bad = num(optarg, 2, 100000, &v), o.classes = (int)v; break;
        case 'h': scale_usage(stdout); return 0;
        default: scale_usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "nasctl scale: bad value '%s' (nasctl scale --help)\n", optarg);
            return 2;
        }
    }
    if (optind != argc - 1) {
        scale_usage(stderr);
        return 2;
    }
    if ((o.search || o.train) && o.classes != 10) {
        fprintf(stderr, "nasctl scale: --classes counts without training; --search and --train "
                        "train on Fashion-MNIST's 10\n");
        return 2;
    }
    o.arch = argv[optind];
    char err[NAS_ERR_LEN] = "";
    nas_genome base;
    if (nas_builder_resolve_genome(o.arch, &base, err) < 0 ||
        (base.space != NAS_SPACE_MBCONV &&
         nas_set_err(err, NAS_EGENOME, "'%.40s' is not an mbconv genome", o.arch) < 0)) {
        fprintf(stderr, "nasctl scale: %s\n", err);
        return 1;
    }
    if ((o.search && search(&o, &base, err) < 0) || report(&o, &base, err) < 0) {
        fprintf(stderr, "nasctl scale: %s\n", err);
        return 1;
    }
    return 0;
}
