/*
 * net_weights.c - save and load a net's named tensors as safetensors.
 *
 * Names are the stable parameter paths ("stage1/block1/a/conv/weight"), so
 * a file written here loads into any net with the same tensors, and into
 * PyTorch with safetensors.torch.load_file().
 */
#include <string.h>

#include "common/alloc.h"
#include "common/net_internal.h"
#include "common/safetensors.h"

int nas_net_save(const nas_net *net, const char *path, const char *arch, char *err) {
    if (!net->compiled) return nas_set_err(err, NAS_ESTATE, "net: save before compile");
    nas_safetensors_tensor *t = nas_calloc((size_t)net->n_params + 1, sizeof(*t));
    if (!t) return nas_set_err(err, NAS_ENOMEM, "net: out of memory saving %s", path);
    for (int i = 0; i < net->n_params; i++) {
        const nas_param *p = &net->params[i];
        t[i].name = p->name;
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) t[i].shape[d] = p->shape[d];
        t[i].data = p->data;
    }
    nas_safetensors_meta meta = {"arch", arch ? arch : ""};
    int rc = nas_safetensors_save(path, t, (size_t)net->n_params, &meta, 1, err);
    nas_free(t);
    return rc;
}

// Does the file tensor have exactly the parameter's shape?
static int same_shape(const nas_safetensors_tensor *t, const nas_param *p) {
    if (t->ndim != p->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (t->shape[d] != p->shape[d]) return 0;
    return 1;
}

int nas_net_load(nas_net *net, const char *path, char *err) {
    if (!net->compiled) return nas_set_err(err, NAS_ESTATE, "net: load before compile");
    nas_safetensors *st = NULL;
    int rc = nas_safetensors_load(path, &st, err);
    if (rc < 0) return rc;
    // Check everything first so that a bad file leaves the weights untouched.
    for (int i = 0; i < net->n_params; i++) {
        const nas_param *p = &net->params[i];
        const nas_safetensors_tensor *t = nas_safetensors_find(st, p->name);
        if (!t) {
            rc = nas_set_err(err, NAS_ENOTFOUND, "%s: tensor '%s' is missing", path, p->name);
            goto fail;
        }
        if (!same_shape(t, p)) {
            rc = nas_set_err(err, NAS_EFORMAT, "%s: tensor '%s' has %d dims, not the network's shape",
                             path, p->name, t->ndim);
            goto fail;
        }
    }
    for (int i = 0; i < net->n_params; i++) {
        const nas_param *p = &net->params[i];
        memcpy(p->data, nas_safetensors_find(st, p->name)->data, sizeof(float) * p->size);
    }
    rc = NAS_OK;
fail:
    nas_safetensors_destroy(&st);
    return rc;
}
