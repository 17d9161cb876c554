/*
 * nasctl_export.c - `nasctl export`: options and report around nas_export()
 * (master/export.h).  The database is opened read-only; the only files
 * written are those in --out.
 */
#include "master/export.h"

#include "common/err.h"
#include "master/store.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void export_usage(FILE *f) {
    fprintf(f,
            "usage: nasctl export --db FILE [--task N | --best] --out DIR [options]\n"
            "\n"
            "Writes a finished task's network where nasd is not needed to run it:\n"
            "genome.txt, genome.json, weights.safetensors (with metadata), model.py (a\n"
            "PyTorch module), check.safetensors (nasd's logits on test images) and\n"
            "model.onnx (through model.py, when the Python interpreter has PyTorch).\n"
            "\n"
            "  --db FILE         the campaign database\n"
            "  --task N          the task to export\n"
            "  --best            the best final-stage task (else the best search task); default\n"
            "  --out DIR         output directory, created if missing\n"
            "  --data DIR        where the data set is, if not where the campaign read it\n"
            "  --weights FILE    weights from this safetensors file (nas-train --save-weights)\n"
            "                    instead of the campaign's weight store\n"
            "  --check-images N  test images in check.safetensors (default 16, 0 = none)\n"
            "  --python PATH     interpreter that writes model.onnx (default /usr/bin/python3)\n"
            "  --no-onnx         do not write model.onnx\n"
            "\n"
            "Exit status: 0 written, 1 failure (the message says what is missing), 2 usage.\n");
}

static int parse_count(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int nas_nasctl_export(int argc, char **argv) {
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},      {"task", required_argument, NULL, 't'},
        {"best", no_argument, NULL, 'b'},          {"out", required_argument, NULL, 'o'},
        {"data", required_argument, NULL, 'D'},    {"weights", required_argument, NULL, 'w'},
        {"check-images", required_argument, NULL, 'c'},
        {"python", required_argument, NULL, 'p'},  {"no-onnx", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    nas_export_options o;
    nas_export_options_default(&o);
    int best = 0, c;
    long v = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': o.db = optarg; break;
        case 'b': best = 1; break;
        case 'o': o.out_dir = optarg; break;
        case 'D': o.data_dir = optarg; break;
        case 'w': o.weights = optarg; break;
        case 'p': o.python = optarg; break;
        case 'n': o.python = NULL; break;
        case 'h': export_usage(stdout); return 0;
        case 't':
        case 'c':
            if (parse_count(optarg, c == 't' ? 1 : 0, c == 't' ? INT64_MAX : 100000, &v) < 0) {
                fprintf(stderr, "nasctl export: --%s '%s' is not a %s\n",
                        c == 't' ? "task" : "check-images", optarg,
                        c == 't' ? "task id" : "count in 0..100000");
                return 2;
            }
            if (c == 't') o.task_id = v;
            else o.check_images = (int)v;
            break;
        case ':':
            fprintf(stderr, "nasctl export: %s needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "nasctl export: unknown option '%s' (try --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nasctl export: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o.db || !o.out_dir) {
        fprintf(stderr, "nasctl export: --db and --out are required (try --help)\n");
        return 2;
    }
    if (best && o.task_id) {
        fprintf(stderr, "nasctl export: --task and --best exclude each other\n");
        return 2;
    }
    char err[NAS_ERR_LEN] = "";
    nas_export_report r = {0};
    if (nas_export(&o, &r, err) < 0) {
        fprintf(stderr, "nasctl export: %s\n", err);
        if (r.retrain[0]) fprintf(stderr, "  %s\n", r.retrain);
        return 1;
    }
    printf("exported task %" PRId64 " (%s stage) to %s\n", r.task_id, nas_store_stage_name(r.stage),
           o.out_dir);
    printf("  %s\n", r.arch);
    printf("  val_acc %.4f", r.accuracy);
    if (!isnan(r.test_accuracy)) printf("  test_acc %.4f", r.test_accuracy);
    printf("  params %" PRId64 "  MACs %" PRId64 "\n", r.params, r.macs);
    printf("  weights from %s\n", r.weights_from);
    if (r.onnx)
        printf("  model.onnx written\n");
    else
        printf("  model.onnx not written: %s\n", r.onnx_note);
    return 0;
}
