/*
 * bandwidth.c - one thread's memory bandwidth, the yardstick of the cells'
 * memory-bandwidth bound (docs/PERFORMANCE.md): the three access patterns a
 * training step's elementwise passes make (read one tensor; read one, write
 * one; read two, write one), over arrays of MB megabytes each, the best of
 * REPS sweeps after one untimed warm-up.  Bytes count what the loop reads
 * and writes (a write's read-for-ownership is not counted, as STREAM does).
 *
 * Built with -O3 -march=native -ffast-math (bench/cells/run) so that the
 * loops are vector loops and the read sum is not one serial chain.
 *
 * usage: bandwidth MB REPS  ->  prints "read=GB/s copy=GB/s add=GB/s"
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bandwidth MB REPS\n");
        return 2;
    }
    size_t n = (size_t)(atof(argv[1]) * 1e6 / sizeof(float));
    int reps = atoi(argv[2]);
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    float *c = malloc(n * sizeof(float));
    if (!a || !b || !c || n == 0 || reps < 1) {
        fprintf(stderr, "bandwidth: cannot allocate 3 x %s MB\n", argv[1]);
        return 1;
    }
    for (size_t i = 0; i < n; i++) a[i] = (float)(i % 7), b[i] = 1.0f, c[i] = 0.0f;
    double best[3] = {0, 0, 0}, sink = 0.0;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 4 <= n; i += 4)
            s0 += a[i], s1 += a[i + 1], s2 += a[i + 2], s3 += a[i + 3];
        double t1 = now();
        for (size_t i = 0; i < n; i++) c[i] = a[i] > 0.0f ? a[i] : 0.0f;
        double t2 = now();
        for (size_t i = 0; i < n; i++) c[i] = a[i] + b[i];
        double t3 = now();
        sink += s0 + s1 + s2 + s3 + c[n / 2];
        if (r == 0) continue; /* warm-up: page faults, clocks */
        double gb = (double)n * sizeof(float) / 1e9, v[3] = {gb / (t1 - t0), 2 * gb / (t2 - t1),
                                                             3 * gb / (t3 - t2)};
        for (int k = 0; k < 3; k++)
            if (v[k] > best[k]) best[k] = v[k];
    }
    printf("read=%.1f copy=%.1f add=%.1f (check %g)\n", best[0], best[1], best[2],
           sink > 0 ? 1.0 : 0.0);
    free(a), free(b), free(c);
    return 0;
}
