/*
 * export.c - a finished task's network out of nasd (see export.h and
 * docs/EXPORT.md): pick the task, rebuild its network at its fidelity,
 * load the weights the campaign kept, and write what a user needs to run
 * it elsewhere.
 */
#include "master/export.h"

#include "common/alloc.h"
#include "common/builder.h"
#include "common/dataset.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/json.h"
#include "common/net.h"
#include "common/safetensors.h"
#include "master/config.h"
#include "master/store.h"
#include "master/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern const char nas_export_model_py[]; /* master/export_model.py, embedded by CMake */

void nas_export_options_default(nas_export_options *o) {
    memset(o, 0, sizeof *o);
    o->check_images = 16;
    o->python = "/usr/bin/python3";
}

/* Everything one export holds while it runs; export_fini frees it. */
typedef struct export_job {
    const nas_export_options *o;
    nas_export_report *rep;
    nas_store *store;
    nas_config cfg;
    int have_cfg;
    nas_store_task_info task;
    nas_dataset_splits data;
    nas_net *net;
    nas_genome genome;
    int is_genome;
} export_job;

static void export_fini(export_job *j) {
    nas_net_destroy(&j->net);
    nas_dataset_splits_fini(&j->data);
    if (j->have_cfg) nas_config_fini(&j->cfg);
    nas_store_close(&j->store);
}

// ---- the task ---------------------------------------------------------------------------------

/* The result of `id` among a stage's results; NAS_ENOTFOUND if it has none. */
static int find_record(export_job *j, int64_t id, int stage, char *err) {
    nas_store_record *r = NULL;
    int n = nas_store_history(j->store, stage, &r, err);
    if (n < 0) return n;
    int rc = nas_set_err(err, NAS_ENOTFOUND, "task %" PRId64 " has no result", id);
    for (int i = 0; i < n; i++) {
        if (r[i].task_id != id) continue;
        j->rep->accuracy = r[i].accuracy;
        j->rep->test_accuracy = r[i].test_accuracy;
        j->rep->params = r[i].params;
        j->rep->macs = r[i].macs;
        rc = NAS_OK;
    }
    nas_store_records_free(r, n);
    return rc;
}

/* Whether a task's run is the one whose weights the campaign kept: of a final stage trained
 * with several seeds, only the first seed's run pushes its weights (campaign_final.c). */
static int keeps_weights(const export_job *j, const nas_store_task_info *t) {
    return t->stage != NAS_STORE_STAGE_FINAL || !j->have_cfg ||
           t->fidelity.seed == j->cfg.final.fidelity.seed;
}

/* --best: the final stage's best by validation accuracy among the runs that kept their
 * weights, else the search's best. */
static int pick_best(export_job *j, int64_t *id, char *err) {
    for (int stage = NAS_STORE_STAGE_FINAL; stage >= NAS_STORE_STAGE_SEARCH; stage--) {
        nas_store_record *r = NULL;
        int n = nas_store_best(j->store, stage, 100000, &r, err);
        if (n < 0) return n;
        *id = 0;
        for (int i = 0; i < n && *id == 0; i++) {
            nas_store_task_info t;
            if (nas_store_task_get(j->store, r[i].task_id, &t, err) == NAS_OK &&
                keeps_weights(j, &t))
                *id = r[i].task_id;
        }
        nas_store_records_free(r, n);
        if (*id > 0) return NAS_OK;
    }
    return nas_set_err(err, NAS_ENOTFOUND, "%s: no finished task to export", j->o->db);
}

static int open_task(export_job *j, char *err) {
    int rc = nas_store_open_ro(&j->store, j->o->db, err);
    if (rc < 0) return rc;
    nas_store_campaign_info info = {0};
    rc = nas_store_campaign_get(j->store, &info, err);
    if (rc == NAS_OK) {
        rc = nas_config_parse(info.text, strlen(info.text), j->o->db, &j->cfg, err);
        j->have_cfg = rc == NAS_OK;
    }
    nas_store_campaign_info_fini(&info);
    if (rc < 0) return rc;
    int64_t id = j->o->task_id;
    if (id <= 0 && (rc = pick_best(j, &id, err)) < 0) return rc;
    rc = nas_store_task_get(j->store, id, &j->task, err);
    if (rc < 0) return rc;
    if (j->task.state != NAS_STORE_TASK_DONE)
        return nas_set_err(err, NAS_ESTATE, "task %" PRId64 " is %s, not done: nothing to export",
                           id, nas_store_task_state_name(j->task.state));
    j->rep->task_id = id;
    j->rep->stage = j->task.stage;
    snprintf(j->rep->arch, sizeof j->rep->arch, "%s", j->task.arch_text);
    return find_record(j, id, j->task.stage, err);
}

// ---- network and data -------------------------------------------------------------------------

static int build(export_job *j, char *err) {
    /* The auxiliary head trains only: the exported network is built without it, and its
     * tensors in the weight file are left unread. */
    nas_fidelity fid = j->task.fidelity;
    fid.aux_weight = 0.0f;
    const nas_fidelity *f = &fid;
    const char *dir = j->o->data_dir ? j->o->data_dir : j->cfg.data.dir;
    nas_dataset_config dc = nas_dataset_config_from_fidelity(f, j->cfg.data.set, dir);
    dc.load_test = 1;
    char derr[NAS_ERR_LEN];
    int rc = nas_dataset_prepare(&j->data, &dc, derr);
    if (rc < 0)
        return nas_set_err(err, rc, "data set %s in %s (for the input normalisation and the "
                           "check images; --data DIR names another copy): %s",
                           j->cfg.data.set, dir, derr);
    const nas_dataset *tr = &j->data.train;
    rc = nas_net_create(&j->net, tr->c, tr->h, tr->w, err);
    int logits = -1;
    if (rc == NAS_OK)
        rc = nas_builder_build_arch(j->net, j->task.arch_text, f, tr->classes, &logits, &j->genome,
                                    &j->is_genome, err);
    int batch = j->o->check_images > 0 ? j->o->check_images : 1;
    if (batch > j->data.test.n) batch = j->data.test.n > 0 ? j->data.test.n : 1;
    if (rc == NAS_OK) rc = nas_net_compile(j->net, logits, batch, err);
    return rc;
}

// ---- weights ----------------------------------------------------------------------------------

/* How to get weights the store does not have: the nas-train command that
 * retrains the task at its fidelity goes into the report (it is longer
 * than an error message), and err says why and where to look. */
static int no_weights(export_job *j, const char *why, char *err) {
    const nas_fidelity *f = &j->task.fidelity;
    char wm[48] = ""; /* MBConv's size target only (docs/GENOME.md s8) */
    if (f->width_mult > 0) snprintf(wm, sizeof wm, "--width-mult %.9g ", (double)f->width_mult);
    snprintf(j->rep->retrain, sizeof j->rep->retrain,
             "nas-train --arch '%s' --data %s --data-dir '%s' --epochs %d --batch %d "
             "--train-subset %d --val-size %d --resolution %d --channels %d --cells %d --lr %g "
             "--warmup %g --label-smoothing %g --drop-path %g --cutout %d --aux-weight %g "
             "%s--seed %" PRIu64 "%s%s "
             "--save-weights W.safetensors && nasctl export --db %s --task %" PRId64
             " --weights W.safetensors --out DIR",
             j->task.arch_text, j->cfg.data.set, j->o->data_dir ? j->o->data_dir : j->cfg.data.dir,
             f->epochs, f->batch, f->train_subset, f->val_size, f->resolution, f->channels,
             f->cells, (double)f->lr, (double)f->warmup_epochs, (double)f->label_smoothing,
             (double)f->drop_path, f->cutout, (double)f->aux_weight, wm, f->seed,
             f->augment ? " --augment" : "", f->test ? " --test" : "", j->o->db, j->task.id);
    return nas_set_err(err, NAS_ENOTFOUND,
                       "task %" PRId64 ": %s; retrain it with nas-train and pass the file with "
                       "--weights", j->task.id, why);
}

/* The task whose push wrote a weight file last modified at mtime_ms: the
 * latest task of that architecture created before it. */
static int file_owner(export_job *j, int64_t mtime_ms, int64_t *owner, char *err) {
    nas_store_task_info *ti = NULL;
    int n = nas_store_task_list(j->store, NAS_STORE_TASK_ANY, NAS_STORE_STAGE_ANY, &ti, err);
    if (n < 0) return n;
    *owner = 0;
    int64_t best = INT64_MIN;
    for (int i = 0; i < n; i++)
        if (ti[i].arch_hash == j->task.arch_hash && ti[i].created_ms <= mtime_ms &&
            ti[i].created_ms >= best && keeps_weights(j, &ti[i])) {
            best = ti[i].created_ms;
            *owner = ti[i].id;
        }
    nas_free(ti);
    return NAS_OK;
}

static int load_weights(export_job *j, char *err) {
    if (j->o->weights) {
        snprintf(j->rep->weights_from, sizeof j->rep->weights_from, "%s", j->o->weights);
        return nas_net_load(j->net, j->o->weights, err);
    }
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s.weights", j->o->db);
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".safetensors", dir, j->task.arch_hash);
    struct stat sb;
    if (stat(path, &sb) != 0) return no_weights(j, "the campaign kept no weights for it", err);
    /* Verify the checksums the file was written with, as the weight store does. */
    nas_weights *w = NULL;
    nas_weights_config wc = {.dir = dir, .memory_budget = 0};
    int rc = nas_weights_create(&w, &wc, err);
    nas_weights_view view;
    if (rc == NAS_OK) rc = nas_weights_get(w, j->task.arch_hash, &view, err);
    nas_weights_destroy(&w);
    if (rc == NAS_ENOTFOUND) return no_weights(j, "its kept weights are not in the store", err);
    if (rc < 0) return rc;
    int64_t mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    int64_t owner = 0;
    if ((rc = file_owner(j, mtime_ms, &owner, err)) < 0) return rc;
    if (owner != j->task.id) {
        char why[160];
        snprintf(why, sizeof why,
                 "the weights kept for its architecture are task %" PRId64 "'s (export that one)",
                 owner);
        return no_weights(j, why, err);
    }
    snprintf(j->rep->weights_from, sizeof j->rep->weights_from, "%s", path);
    char lerr[NAS_ERR_LEN];
    rc = nas_net_load(j->net, path, lerr);
    if (rc < 0) return nas_set_err(err, NAS_EFORMAT, "%s does not fit task %" PRId64 "'s network "
                                   "(%s)", path, j->task.id, lerr);
    return NAS_OK;
}

// ---- files ------------------------------------------------------------------------------------

static int write_file(const char *dir, const char *name, const char *text, char *err) {
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return nas_set_err(err, NAS_EIO, "%s: %s", path, strerror(errno));
    int ok = fputs(text, f) >= 0;
    ok &= fclose(f) == 0;
    return ok ? NAS_OK : nas_set_err(err, NAS_EIO, "%s: write failed", path);
}

static const char *const FMNIST_CLASSES[] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                             "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                             "Bag",         "Ankle boot"};
static const char *const CIFAR_CLASSES[] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                            "dog",      "frog",       "horse", "ship", "truck"};

static char *class_names_json(const char *set, int classes) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_arr_begin(&b);
    for (int i = 0; i < classes; i++) {
        if (classes == 10 && strcmp(set, "fashion-mnist") == 0)
            nas_json_buf_str(&b, FMNIST_CLASSES[i]);
        else if (classes == 10 && strcmp(set, "cifar10") == 0)
            nas_json_buf_str(&b, CIFAR_CLASSES[i]);
        else {
            char num[16];
            snprintf(num, sizeof num, "%d", i);
            nas_json_buf_str(&b, num);
        }
    }
    nas_json_buf_arr_end(&b);
    return nas_json_buf_take(&b, NULL);
}

static char *norm_json(const nas_dataset_splits *d) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    for (int k = 0; k < 2; k++) {
        nas_json_buf_key(&b, k ? "std" : "mean");
        nas_json_buf_arr_begin(&b);
        for (int ch = 0; ch < d->train.c; ch++)
            nas_json_buf_f32(&b, k ? d->std[ch] : d->mean[ch]);
        nas_json_buf_arr_end(&b);
    }
    nas_json_buf_obj_end(&b);
    return nas_json_buf_take(&b, NULL);
}

enum { N_META = 15 };

/* weights.safetensors: every tensor by path, and the metadata export.h lists. */
static int write_weights(export_job *j, const char *genome_json, char *err) {
    int n = nas_net_param_n(j->net);
    nas_safetensors_tensor *t = nas_calloc((size_t)n, sizeof *t);
    char *cls = class_names_json(j->cfg.data.set, j->data.train.classes);
    char *norm = norm_json(&j->data);
    if (!t || !cls || !norm) {
        nas_free(t), nas_free(cls), nas_free(norm);
        return nas_set_err(err, NAS_ENOMEM, "export: metadata");
    }
    for (int i = 0; i < n; i++) {
        const nas_param *p = nas_net_param(j->net, i);
        t[i].name = p->name;
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++)
            t[i].shape[d] = p->shape[d];
        t[i].data = p->data;
    }
    char fid[1024], shape[64], acc[32], tacc[32], params[32], macs[32], task[32], hash[20];
    nas_store_fidelity_to_json(&j->task.fidelity, fid, sizeof fid);
    snprintf(shape, sizeof shape, "[%d, %d, %d]", j->data.train.c, j->data.train.h,
             j->data.train.w);
    snprintf(acc, sizeof acc, "%.6f", j->rep->accuracy);
    snprintf(tacc, sizeof tacc, "%.6f", j->rep->test_accuracy);
    snprintf(params, sizeof params, "%" PRId64, nas_net_param_count(j->net));
    snprintf(macs, sizeof macs, "%" PRId64, nas_net_macs(j->net));
    snprintf(task, sizeof task, "%" PRId64, j->task.id);
    snprintf(hash, sizeof hash, "%016" PRIx64, j->task.arch_hash);
    nas_safetensors_meta meta[N_META] = {
        {"format", "nasd-export-1"},
        {"genome", j->task.arch_text},
        {"genome_json", genome_json},
        {"arch_hash", hash},
        {"fidelity", fid},
        {"dataset", j->cfg.data.set},
        {"input_shape", shape},
        {"input_range", "[0, 1] before normalisation"},
        {"normalisation", norm},
        {"class_names", cls},
        {"val_accuracy", acc},
        {"test_accuracy", isnan(j->rep->test_accuracy) ? "nan" : tacc},
        {"params", params},
        {"macs", macs},
        {"task", task},
    };
    char path[1100];
    snprintf(path, sizeof path, "%s/weights.safetensors", j->o->out_dir);
    int rc = nas_safetensors_save(path, t, (size_t)n, meta, N_META, err);
    nas_free(t), nas_free(cls), nas_free(norm);
    return rc;
}

/* check.safetensors: the first test images in [0, 1] (the normalisation
 * undone) and the logits nasd's engine computes for them. */
static int write_check(export_job *j, char *err) {
    int n = nas_net_batch(j->net);
    const nas_dataset *te = &j->data.test;
    if (j->o->check_images <= 0 || te->n == 0) return NAS_OK;
    size_t per = (size_t)te->c * te->h * te->w;
    float *raw = nas_malloc((size_t)n * per * sizeof(float));
    float *lab = nas_malloc((size_t)n * sizeof(float));
    if (!raw || !lab) {
        nas_free(raw), nas_free(lab);
        return nas_set_err(err, NAS_ENOMEM, "export: check images");
    }
    const float *logits = nas_net_forward(j->net, te->images, n, 0, NULL);
    int k = nas_net_classes(j->net);
    for (int i = 0; i < n; i++) {
        lab[i] = te->labels[i];
        for (size_t q = 0; q < per; q++) {
            int ch = (int)(q / ((size_t)te->h * te->w));
            raw[(size_t)i * per + q] = te->images[(size_t)i * per + q] * j->data.std[ch] +
                                       j->data.mean[ch];
        }
    }
    nas_safetensors_tensor t[3] = {
        {.name = "images", .ndim = 4, .shape = {n, te->c, te->h, te->w}, .data = raw},
        {.name = "labels", .ndim = 1, .shape = {n}, .data = lab},
        {.name = "logits", .ndim = 2, .shape = {n, k}, .data = logits},
    };
    nas_safetensors_meta meta[1] = {{"about", "nasd engine logits for these images in [0, 1]"}};
    char path[1100];
    snprintf(path, sizeof path, "%s/check.safetensors", j->o->out_dir);
    int rc = nas_safetensors_save(path, t, 3, meta, 1, err);
    nas_free(raw), nas_free(lab);
    return rc;
}

/* model.py: the embedded template with the layer graph put in. */
static int write_model(export_job *j, char *err) {
    char *graph = nas_net_graph_json(j->net);
    if (!graph)
        return nas_set_err(err, NAS_ENOMEM, "export: no layer graph for model.py (out of memory, "
                           "or the network has an op docs/EXPORT.md does not describe)");
    const char *mark = strstr(nas_export_model_py, "@GRAPH@");
    size_t head = mark ? (size_t)(mark - nas_export_model_py) : strlen(nas_export_model_py);
    size_t gl = strlen(graph), tl = strlen(nas_export_model_py);
    char *text = nas_malloc(tl + gl + 1);
    int rc = text ? NAS_OK : nas_set_err(err, NAS_ENOMEM, "export: model.py");
    if (text) {
        memcpy(text, nas_export_model_py, head);
        memcpy(text + head, graph, gl);
        size_t tail = mark ? tl - head - 7 : 0;
        memcpy(text + head + gl, mark ? mark + 7 : "", tail);
        text[head + gl + tail] = '\0';
        rc = write_file(j->o->out_dir, "model.py", text, err);
    }
    nas_free(text);
    nas_free(graph);
    return rc;
}

/* model.onnx through model.py and PyTorch, its output in onnx.log. */
static void write_onnx(export_job *j) {
    nas_export_report *r = j->rep;
    if (!j->o->python || !j->o->python[0]) {
        snprintf(r->onnx_note, sizeof r->onnx_note, "not asked for (--no-onnx)");
        return;
    }
    char model[1100], onnx[1100], log[1100];
    snprintf(model, sizeof model, "%s/model.py", j->o->out_dir);
    snprintf(onnx, sizeof onnx, "%s/model.onnx", j->o->out_dir);
    snprintf(log, sizeof log, "%s/onnx.log", j->o->out_dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        execl(j->o->python, j->o->python, model, "--onnx", onnx, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(r->onnx_note, sizeof r->onnx_note,
                 "%s could not write it (status %d; see %s): run `python3 model.py --onnx "
                 "model.onnx` where PyTorch is installed",
                 j->o->python, WIFEXITED(st) ? WEXITSTATUS(st) : -1, log);
        unlink(onnx);
        return;
    }
    r->onnx = 1;
}

int nas_export(const nas_export_options *o, nas_export_report *rep, char *err) {
    if (!o || !o->db || !o->out_dir || !rep)
        return nas_set_err(err, NAS_EINVAL, "export: need a database and an output directory");
    memset(rep, 0, sizeof *rep);
    rep->test_accuracy = NAN;
    export_job j = {.o = o, .rep = rep};
    int rc = open_task(&j, err);
    if (rc == NAS_OK) rc = build(&j, err);
    if (rc == NAS_OK) rc = load_weights(&j, err);
    if (rc == NAS_OK && mkdir(o->out_dir, 0755) != 0 && errno != EEXIST)
        rc = nas_set_err(err, NAS_EIO, "%s: %s", o->out_dir, strerror(errno));
    char gj[4096] = "null", gt[NAS_STORE_TEXT_MAX + 2];
    if (rc == NAS_OK && j.is_genome && nas_genome_to_json(&j.genome, gj, sizeof gj) < 0)
        snprintf(gj, sizeof gj, "null");
    snprintf(gt, sizeof gt, "%s\n", j.task.arch_text);
    if (rc == NAS_OK) rc = write_file(o->out_dir, "genome.txt", gt, err);
    if (rc == NAS_OK) {
        size_t l = strlen(gj);
        if (l + 1 < sizeof gj) gj[l] = '\n', gj[l + 1] = '\0';
        rc = write_file(o->out_dir, "genome.json", gj, err);
        gj[l] = '\0';
    }
    if (rc == NAS_OK) rc = write_weights(&j, gj, err);
    if (rc == NAS_OK) rc = write_check(&j, err);
    if (rc == NAS_OK) rc = write_model(&j, err);
    if (rc == NAS_OK) write_onnx(&j);
    if (rc == NAS_OK) {
        rep->params = nas_net_param_count(j.net);
        rep->macs = nas_net_macs(j.net);
    }
    export_fini(&j);
    return rc;
}
