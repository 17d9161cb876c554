/*
 * fidelity.c - defaults and range checks for nas_fidelity.
 */
#include "common/fidelity.h"
#include "common/err.h"

#include <math.h>

nas_fidelity nas_fidelity_default(void) {
    nas_fidelity f = {
        .resolution = 14,
        .train_subset = 10000,
        .val_size = 5000,
        .epochs = 2,
        .batch = 128,
        .channels = 8,
        .cells = 1,
        .lr = 0.1f,
        .warmup_epochs = 0.0f,
        .momentum = 0.9f,
        .nesterov = 1,
        .weight_decay = 5e-4f,
        .grad_clip = 5.0f,
        .label_smoothing = 0.0f,
        .drop_path = 0.0f,
        .augment = 0,
        .test = 0,
        .seed = 1,
        .time_limit_s = 0,
        .threads = 1,
        .cutout = 0,
        .aux_weight = 0.0f,
        .progressive_start = 0,
        .width_mult = 0.0f,
    };
    return f;
}

#define CHECK_RANGE(field, lo, hi)                                                                 \
    do {                                                                                           \
        if (!((f->field) >= (lo) && (f->field) <= (hi)))                                           \
            return nas_set_err(err, NAS_ERANGE, "fidelity: %s = %g is out of range [%g, %g]",      \
                               #field, (double)(f->field), (double)(lo), (double)(hi));            \
    } while (0)

int nas_fidelity_validate(const nas_fidelity *f, char *err) {
    CHECK_RANGE(resolution, 0, 1024);
    CHECK_RANGE(train_subset, 0, 100000000);
    CHECK_RANGE(val_size, 0, 100000000);
    CHECK_RANGE(epochs, 1, 100000);
    CHECK_RANGE(batch, 1, 65536);
    CHECK_RANGE(channels, 1, 4096);
    CHECK_RANGE(cells, 0, 64);
    CHECK_RANGE(lr, 0.0f, 100.0f);
    CHECK_RANGE(warmup_epochs, 0.0f, 100000.0f);
    CHECK_RANGE(momentum, 0.0f, 0.9999f);
    CHECK_RANGE(nesterov, 0, 1);
    CHECK_RANGE(weight_decay, 0.0f, 1.0f);
    CHECK_RANGE(grad_clip, 0.0f, 1e9f);
    CHECK_RANGE(label_smoothing, 0.0f, 0.999f);
    CHECK_RANGE(drop_path, 0.0f, 0.999f);
    CHECK_RANGE(augment, 0, 1);
    CHECK_RANGE(test, 0, 1);
    CHECK_RANGE(time_limit_s, 0.0, 1e9);
    CHECK_RANGE(threads, 1, 256);
    CHECK_RANGE(cutout, 0, 1024);
    CHECK_RANGE(aux_weight, 0.0f, 10.0f);
    CHECK_RANGE(progressive_start, 0, 1024);
    CHECK_RANGE(width_mult, 0.0f, 64.0f);
    if (f->progressive_start != 0 && f->progressive_start < 4)
        return nas_set_err(err, NAS_ERANGE, "fidelity: progressive_start = %d is below 4 pixels",
                           f->progressive_start);
    if (f->resolution != 0 && f->resolution < 4)
        return nas_set_err(err, NAS_ERANGE, "fidelity: resolution = %d is below 4 pixels",
                           f->resolution);
    return NAS_OK;
}
