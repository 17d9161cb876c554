/*
 * dataset_cifar.c - the CIFAR-10 binary reader behind dataset.h.
 *
 * Each batch file (data_batch_1..5.bin, test_batch.bin) is a sequence of
 * 3073-byte records: one label byte (0..9), then 1024 red, 1024 green and
 * 1024 blue bytes of a 32x32 image in row-major order.  The planes are
 * already NCHW, so a record converts to floats with no reordering.  The
 * official files hold 10000 records each; any whole number of records is
 * accepted so tests can use small files, but a partial record or a label
 * outside 0..9 is an error naming the file and the record's offset.
 */
#include "common/alloc.h"
#include "common/dataset.h"
#include "common/err.h"

#include <stdio.h>
#include <string.h>

#define CIFAR_SIDE        32
#define CIFAR_PIXELS      (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD      (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES     10
#define CIFAR_MAX_RECORDS 1000000 /* per file; the real ones have 10000 */

/* Check one batch file's bytes and return its record count (> 0). */
static int validate_batch(const char *base, const uint8_t *b, size_t len, char *err) {
    if (len == 0) return nas_set_err(err, NAS_EFORMAT, "%s: offset 0: empty file", base);
    if (len % CIFAR_RECORD != 0)
        return nas_set_err(err, NAS_EFORMAT,
                           "%s: offset %zu: truncated record (%zu bytes is not a multiple of the"
                           " %d-byte record)",
                           base, len - len % CIFAR_RECORD, len, CIFAR_RECORD);
    size_t n = len / CIFAR_RECORD;
    if (n > CIFAR_MAX_RECORDS)
        return nas_set_err(err, NAS_EFORMAT, "%s: offset 0: %zu records, more than %d", base, n,
                           CIFAR_MAX_RECORDS);
    for (size_t i = 0; i < n; i++) {
        uint8_t label = b[i * CIFAR_RECORD];
        if (label >= CIFAR_CLASSES)
            return nas_set_err(err, NAS_EFORMAT, "%s: offset %zu: label %u out of range 0..%d",
                               base, i * CIFAR_RECORD, label, CIFAR_CLASSES - 1);
    }
    return (int)n;
}

int nas_dataset_load_cifar(nas_dataset *ds, const char *const *paths, int npaths, char *err) {
    memset(ds, 0, sizeof *ds);
    if (npaths < 1 || npaths > 64)
        return nas_set_err(err, NAS_EINVAL, "cifar10: %d batch files (expected 1..64)", npaths);
    /* Read and validate every file first, so nothing is allocated for the
     * images when any of them is bad. */
    uint8_t *raw[64] = {0};
    int counts[64] = {0};
    long total = 0;
    int rc = 0;
    for (int f = 0; f < npaths; f++) {
        size_t len = 0;
        const char *base = nas__dataset_basename(paths[f]);
        rc = nas__dataset_read_all(paths[f], (size_t)CIFAR_MAX_RECORDS * CIFAR_RECORD + 1, &raw[f],
                                   &len, err);
        if (rc < 0) goto done;
        if ((rc = validate_batch(base, raw[f], len, err)) < 0) goto done;
        counts[f] = rc;
        total += rc;
        if (total > INT32_MAX) {
            rc = nas_set_err(err, NAS_EFORMAT, "cifar10: more than %d images in total", INT32_MAX);
            goto done;
        }
    }
    if ((rc = nas_dataset_alloc(ds, (int)total, 3, CIFAR_SIDE, CIFAR_SIDE, CIFAR_CLASSES, err)) < 0)
        goto done;
    int k = 0;
    for (int f = 0; f < npaths; f++) {
        for (int i = 0; i < counts[f]; i++, k++) {
            const uint8_t *rec = raw[f] + (size_t)i * CIFAR_RECORD;
            ds->labels[k] = rec[0];
            nas__dataset_u8_to_float(nas_dataset_image(ds, k), rec + 1, CIFAR_PIXELS);
        }
    }
    snprintf(ds->name, sizeof ds->name, "cifar10");
    rc = 0;
done:
    for (int f = 0; f < npaths; f++)
        nas_free(raw[f]);
    if (rc < 0) nas_dataset_fini(ds);
    return rc;
}
