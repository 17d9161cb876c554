/*
 * harness.c - see harness.h.
 */
#define _XOPEN_SOURCE 700
#include "tests/harness.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static char g_tmpdir[4096];

const char *nas_tmpdir_make(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/nastest.XXXXXX", base);
    if (!mkdtemp(g_tmpdir)) {
        fprintf(stderr, "mkdtemp(%s): %s\n", g_tmpdir, strerror(errno));
        abort();
    }
    return g_tmpdir;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void nas_tmpdir_rm(const char *dir) {
    if (dir && *dir) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *nas_path_join(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

int nas_write_file(const char *path, const void *data, size_t n, int gz) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (!g) return -1;
        int ok = n == 0 || gzwrite(g, data, (unsigned)n) == (int)n;
        return (gzclose(g) == Z_OK && ok) ? 0 : -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

char *nas_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        if (r == 0) break;
        len += r;
    }
    fclose(f);
    buf[len] = 0;
    if (n) *n = len;
    return buf;
}

int nas_allclose(const float *a, const float *b, size_t n, float atol, float rtol,
                 const char *label) {
    size_t worst = 0;
    double worst_excess = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double lim = atol + rtol * fabs((double)b[i]);
        if (!(d <= lim) && (d - lim > worst_excess || !isfinite(d) || worst_excess == 0)) {
            worst = i;
            worst_excess = isfinite(d) ? d - lim : INFINITY;
        }
    }
    if (worst_excess == 0) return 1;
    fprintf(stderr, "%s: mismatch at %zu: %g vs %g (atol %g rtol %g)\n", label ? label : "allclose",
            worst, (double)a[worst], (double)b[worst], (double)atol, (double)rtol);
    for (size_t i = 0; i < n && i < 5; i++)
        fprintf(stderr, "  [%zu] %g %g\n", i, (double)a[i], (double)b[i]);
    return 0;
}

const char *nas_bin(const char *name) {
    static char buf[4096];
    const char *dir = getenv("NAS_BIN_DIR");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : "./bin", name);
    return buf;
}

int nas_run_cmd(const char *cmd, char *out, size_t cap) {
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t len = 0;
    char tmp[4096];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, p)) > 0) {
        if (out && len + 1 < cap) {
            size_t k = r < cap - 1 - len ? r : cap - 1 - len;
            memcpy(out + len, tmp, k);
            len += k;
        }
    }
    if (out && cap) out[len] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int nas_json_same(const nas_json *a, const nas_json *b) {
    if (!a || !b) return a == b;
    if (a->type != b->type) return 0;
    switch (a->type) {
    case NAS_JSON_NULL:
        return 1;
    case NAS_JSON_BOOL:
        return a->boolean == b->boolean;
    case NAS_JSON_NUMBER:
        return a->number == b->number;
    case NAS_JSON_STRING:
        return strcmp(a->str, b->str) == 0;
    case NAS_JSON_ARRAY:
        if (a->len != b->len) return 0;
        for (size_t i = 0; i < a->len; i++)
            if (!nas_json_same(&a->items[i], &b->items[i])) return 0;
        return 1;
    default:
        if (a->len != b->len) return 0;
        for (size_t i = 0; i < a->len; i++)
            if (strcmp(a->members[i].key, b->members[i].key) != 0 ||
                !nas_json_same(&a->members[i].value, &b->members[i].value))
                return 0;
        return 1;
    }
}
