/*
 * planes.c - per-layer times of the plane kernels (common/plane.c) on the shapes of the NAS
 * cells: one depthwise conv (ReLU fused) or 3x3 pool, forward or backward, batch 128, at the
 * best instruction level in the layout the kernels pick (or one forced: the scratch is then
 * allocated per call).  Prints the median and the minimum process CPU time of one call in
 * microseconds over REPS calls; the tensors (several MB) leave L2 between calls, as in a net.
 * PLANES_BATCH sets another batch (4 keeps a 28x28 16-channel layer in L2).
 *
 * usage: planes OP C SIDE K STRIDE [REPS [LAYOUT]]
 *   OP: dwf dwb (depthwise, "same" padding), maxf maxb avgf avgb (pool, padding K/2)
 *   LAYOUT: 0 (the kernels' choice), rows, lanes
 *
 * Built by hand: cc -O2 -std=c11 -D_GNU_SOURCE -I. bench/cells/planes.c -o planes
 *   -Lbuild-bench/lib -lnascommon $(pkg-config --libs openblas) -lm -lpthread
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/plane.h"
#include "common/simd.h"

static double cpu_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: planes OP C SIDE K STRIDE [REPS [LAYOUT]]\n");
        return 2;
    }
    const char *op = argv[1];
    int c = atoi(argv[2]), side = atoi(argv[3]), k = atoi(argv[4]), st = atoi(argv[5]);
    int n = getenv("PLANES_BATCH") ? atoi(getenv("PLANES_BATCH")) : 128;
    int reps = argc > 6 ? atoi(argv[6]) : 21, isa = nas_simd_best();
    if (argc > 7 && strcmp(argv[7], "rows") == 0) isa |= NAS__PLANE_ROWS;
    if (argc > 7 && strcmp(argv[7], "lanes") == 0) isa |= NAS__PLANE_LANES;
    nas_conv_shape s;
    char err[256];
    if (nas_conv_shape_init(&s, n, c, side, side, c, k, k, st, k / 2, 1, c, err) < 0) {
        fprintf(stderr, "planes: %s\n", err);
        return 1;
    }
    s.relu = 1;
    size_t ni = (size_t)n * c * side * side, no = (size_t)n * c * s.oh * s.ow;
    float *x = malloc(sizeof(float) * ni), *dx = malloc(sizeof(float) * ni);
    float *y = malloc(sizeof(float) * no), *dy = malloc(sizeof(float) * no);
    float *w = malloc(sizeof(float) * c * k * k), *dw = calloc((size_t)c * k * k, sizeof(float));
    size_t nws = nas__dw_workspace(&s), npw = nas__pool_workspace(side, side, k, st, k / 2);
    // A forced layout may need more scratch than the kernels' choice: allocated per call then.
    float *ws = argc > 7 ? NULL : malloc(sizeof(float) * (nws > npw ? nws : npw));
    double *t = malloc(sizeof(double) * reps);
    if (!x || !dx || !y || !dy || !w || !dw || !t) return 1;
    srand(1);
    for (size_t i = 0; i < ni; i++)
        x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < no; i++)
        dy[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < c * k * k; i++)
        w[i] = (float)rand() / RAND_MAX - 0.5f;
    int kind = op[0] == 'm' ? NAS__POOL_MAX : NAS__POOL_AVG, bwd = op[strlen(op) - 1] == 'b';
    for (int r = 0; r < reps; r++) {
        double t0 = cpu_us();
        if (op[0] == 'd' && !bwd) nas__dw_forward(isa, y, x, w, NULL, &s, ws);
        if (op[0] == 'd' && bwd) nas__dw_backward(isa, dx, 1, dw, NULL, dy, x, w, &s, ws);
        if (op[0] != 'd' && !bwd)
            nas__pool_forward(isa, kind, y, x, n, c, side, side, k, st, k / 2, ws);
        if (op[0] != 'd' && bwd)
            nas__pool_backward(isa, kind, dx, 1, dy, x, n, c, side, side, k, st, k / 2, ws);
        t[r] = cpu_us() - t0;
    }
    qsort(t, reps, sizeof(double), cmp_d);
    printf("%s c%d %dx%d k%d s%d: %.0f us (min %.0f)\n", op, c, side, side, k, st, t[reps / 2],
           t[0]);
    free(x), free(dx), free(y), free(dy), free(w), free(dw), free(ws), free(t);
    return 0;
}
