/*
 * export.h - a finished task's network taken out of nasd: `nasctl export`
 * (docs/EXPORT.md).
 *
 * The export directory holds:
 *   genome.txt, genome.json     the architecture (text form, JSON form)
 *   weights.safetensors         every tensor by its parameter path, with metadata: genome,
 *                               fidelity, input shape, normalisation, class names,
 *                               validation and test accuracy, params, MACs, task, campaign
 *   model.py                    a PyTorch module that rebuilds the network from the layer graph
 *                               nasd built and loads weights.safetensors (no nasd code)
 *   check.safetensors           test images and the logits nasd's engine computed for them,
 *                               for `python3 model.py --check`
 *   model.onnx                  written by model.py (torch.onnx.export) when the interpreter
 *                               has PyTorch; otherwise the report says how to make it
 *
 * Weights come from the campaign's weight store ("<db>.weights/"), where
 * the final stage keeps every winner, or from a safetensors file given
 * with `weights` (e.g. `nas-train --save-weights` for a task whose weights
 * were not kept).  Stored weights are used only when they were written
 * after the task was created (an earlier file of the same architecture is
 * another task's) and match the task's network tensor for tensor; anything
 * else is an error that says what is missing and how to retrain.
 */
#ifndef NAS_EXPORT_H
#define NAS_EXPORT_H

#include <stdint.h>

typedef struct nas_export_options {
    const char *db;       /* campaign database */
    int64_t task_id;      /* > 0: that task; 0: the best (final stage first, else search) */
    const char *out_dir;  /* created if missing */
    const char *data_dir; /* NULL: the campaign's data.dir */
    const char *weights;  /* NULL: the weight store; else a safetensors file */
    int check_images;     /* test images in check.safetensors (0: none), default 16 */
    const char *python;   /* interpreter for model.onnx; NULL or "" skips ONNX */
} nas_export_options;

void nas_export_options_default(nas_export_options *o);

typedef struct nas_export_report {
    int64_t task_id;
    char arch[512];         /* genome text (may be cut short) */
    int stage;              /* enum nas_store_stage */
    int64_t params, macs;
    double accuracy;        /* validation */
    double test_accuracy;   /* NAN when the task did not evaluate the test set */
    char weights_from[1100]; /* the file the weights were read from */
    int onnx;               /* 1 when model.onnx was written */
    char onnx_note[1400];   /* why not, when it was not */
    char retrain[3072];     /* when the weights are missing: the nas-train command that makes
                             * them and the export that uses them */
} nas_export_report;

/* Export one task (see the file comment).  NAS_ENOTFOUND (no such task, no
 * result, no weights: err says which and how to get them), NAS_ESTATE (the
 * task is not done), NAS_EFORMAT (weights that do not fit the network),
 * NAS_EIO, NAS_ENOMEM, or the store's and the data set's errors. */
int nas_export(const nas_export_options *o, nas_export_report *rep, char *err);

/* `nasctl export ARGS`: argv[0] is "export"; returns the exit status
 * (0, 1 failure, 2 usage).  master/nasctl_export.c */
int nas_nasctl_export(int argc, char **argv);

#endif
