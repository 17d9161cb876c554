/*
 * rankcorr.c - Spearman's rho, Kendall's tau-b and the pairing of results
 * by architecture (rankcorr.h).
 */
#include "master/rankcorr.h"

#include "common/alloc.h"
#include "common/err.h"

#include <math.h>
#include <stdlib.h>

// ---- ranks --------------------------------------------------------------------------------------

typedef struct idx_val {
    double v;
    int i;
} idx_val;

static int cmp_idx_val(const void *pa, const void *pb) {
    const idx_val *a = pa, *b = pb;
    if (a->v < b->v) return -1;
    if (a->v > b->v) return 1;
    return a->i - b->i; /* stable, so the result never depends on qsort's order */
}

int nas_rank_midranks(const double *x, int n, double *rank) {
    if (n <= 0) return NAS_OK;
    for (int i = 0; i < n; i++)
        if (isnan(x[i])) return NAS_EINVAL;
    idx_val *s = nas_malloc((size_t)n * sizeof *s);
    if (!s) return NAS_ENOMEM;
    for (int i = 0; i < n; i++)
        s[i] = (idx_val){x[i], i};
    qsort(s, (size_t)n, sizeof *s, cmp_idx_val);
    /* A run of equal values at sorted positions [i, j) holds ranks i+1..j,
     * whose mean is (i + 1 + j) / 2. */
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && s[j].v == s[i].v)
            j++;
        double r = 0.5 * (double)(i + 1 + j);
        for (int k = i; k < j; k++)
            rank[s[k].i] = r;
        i = j;
    }
    nas_free(s);
    return NAS_OK;
}

/* Pearson's r; NAN when either side has no spread. */
static double pearson(const double *x, const double *y, int n) {
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx <= 0 || syy <= 0) return NAN;
    double r = sxy / sqrt(sxx * syy);
    /* Rounding can put a perfect correlation a hair outside [-1, 1]. */
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

int nas_rank_spearman(const double *x, const double *y, int n, double *rho) {
    *rho = NAN;
    for (int i = 0; i < n; i++)
        if (isnan(x[i]) || isnan(y[i])) return NAS_EINVAL;
    if (n < 2) return NAS_OK;
    double *rx = nas_malloc(2 * (size_t)n * sizeof *rx);
    if (!rx) return NAS_ENOMEM;
    double *ry = rx + n;
    int rc = nas_rank_midranks(x, n, rx);
    if (rc == NAS_OK) rc = nas_rank_midranks(y, n, ry);
    if (rc == NAS_OK) *rho = pearson(rx, ry, n);
    nas_free(rx);
    return rc;
}

typedef struct xy {
    double x, y;
} xy;

static int cmp_xy(const void *pa, const void *pb) {
    const xy *a = pa, *b = pb;
    if (a->x != b->x) return a->x < b->x ? -1 : 1;
    return a->y < b->y ? -1 : a->y > b->y;
}

/* Pairs tied within runs of equal values of a sorted array: sum t(t-1)/2. */
static int64_t tied_pairs(const double *v, int n, size_t stride) {
    int64_t ties = 0;
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && *(const double *)((const char *)v + (size_t)j * stride) ==
                            *(const double *)((const char *)v + (size_t)i * stride))
            j++;
        ties += (int64_t)(j - i) * (j - i - 1) / 2;
        i = j;
    }
    return ties;
}

/* Sort y[lo, hi) ascending through tmp and count its inversions (pairs
 * i < j with y[i] > y[j]). */
static int64_t merge_count(double *y, double *tmp, int lo, int hi) {
    if (hi - lo < 2) return 0;
    int mid = lo + (hi - lo) / 2;
    int64_t inv = merge_count(y, tmp, lo, mid) + merge_count(y, tmp, mid, hi);
    int i = lo, j = mid, k = lo;
    while (i < mid && j < hi) {
        if (y[j] < y[i]) {
            inv += mid - i; /* y[j] is below every one left in the first half */
            tmp[k++] = y[j++];
        } else {
            tmp[k++] = y[i++];
        }
    }
    while (i < mid)
        tmp[k++] = y[i++];
    while (j < hi)
        tmp[k++] = y[j++];
    for (k = lo; k < hi; k++)
        y[k] = tmp[k];
    return inv;
}

/* Knight's O(n log n) count: sorted by (x, y), a discordant pair is an
 * inversion of y, and concordant - discordant = n0 - tx - ty + txy - 2
 * inversions (txy: pairs tied in both, counted in tx and in ty).  Every
 * count is an exact integer, so tau is the same double as the pair by pair
 * definition gives; the O(n^2) loop took seconds at 50,000 pairs, which the
 * live master's status document cannot afford. */
int nas_rank_kendall(const double *x, const double *y, int n, double *tau) {
    *tau = NAN;
    for (int i = 0; i < n; i++)
        if (isnan(x[i]) || isnan(y[i])) return NAS_EINVAL;
    if (n < 2) return NAS_OK;
    xy *p = nas_malloc((size_t)n * sizeof *p);
    double *ys = nas_malloc(2 * (size_t)n * sizeof *ys);
    if (!p || !ys) {
        nas_free(p);
        nas_free(ys);
        return NAS_ENOMEM;
    }
    for (int i = 0; i < n; i++)
        p[i] = (xy){x[i], y[i]};
    qsort(p, (size_t)n, sizeof *p, cmp_xy);
    int64_t tx = tied_pairs(&p[0].x, n, sizeof *p), txy = 0;
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && p[j].x == p[i].x && p[j].y == p[i].y)
            j++;
        txy += (int64_t)(j - i) * (j - i - 1) / 2;
        i = j;
    }
    for (int i = 0; i < n; i++)
        ys[i] = p[i].y;
    int64_t disc = merge_count(ys, ys + n, 0, n); /* leaves ys sorted */
    int64_t ty = tied_pairs(ys, n, sizeof *ys);
    int64_t pairs = (int64_t)n * (n - 1) / 2;
    int64_t diff = pairs - tx - ty + txy - 2 * disc;
    nas_free(p);
    nas_free(ys);
    double n0 = 0.5 * (double)n * (double)(n - 1);
    double den = sqrt((n0 - (double)tx) * (n0 - (double)ty));
    if (den <= 0) return NAS_OK;
    double t = (double)diff / den;
    *tau = t > 1 ? 1 : t < -1 ? -1 : t;
    return NAS_OK;
}

// ---- pairing by architecture --------------------------------------------------------------------

/* By architecture, then value: the repeats of an architecture are summed
 * in one order whatever order they came in, so the mean (and every figure
 * after it) is the same bit for bit for a live master that added results
 * as they came and for a read of the store in task order. */
static int cmp_obs(const void *pa, const void *pb) {
    const nas_rank_obs *a = pa, *b = pb;
    if (a->arch != b->arch) return a->arch < b->arch ? -1 : 1;
    return a->value < b->value ? -1 : a->value > b->value;
}

/* Sort a copy of the observations by architecture and fold repeats into
 * their mean; returns the number of distinct architectures or NAS_ENOMEM. */
static int fold_by_arch(const nas_rank_obs *in, int n, nas_rank_obs **out) {
    *out = NULL;
    if (n <= 0) return 0;
    nas_rank_obs *s = nas_malloc((size_t)n * sizeof *s);
    if (!s) return NAS_ENOMEM;
    for (int i = 0; i < n; i++)
        s[i] = in[i];
    qsort(s, (size_t)n, sizeof *s, cmp_obs);
    int m = 0;
    for (int i = 0; i < n;) {
        int j = i;
        double sum = 0;
        while (j < n && s[j].arch == s[i].arch)
            sum += s[j++].value;
        s[m++] = (nas_rank_obs){s[i].arch, sum / (j - i)};
        i = j;
    }
    *out = s;
    return m;
}

int nas_rank_compare(const nas_rank_obs *a, int na, const nas_rank_obs *b, int nb,
                     nas_rank_report *out) {
    *out = (nas_rank_report){0, NAN, NAN, 0};
    for (int i = 0; i < na; i++)
        if (isnan(a[i].value)) return NAS_EINVAL;
    for (int i = 0; i < nb; i++)
        if (isnan(b[i].value)) return NAS_EINVAL;
    nas_rank_obs *fa = NULL, *fb = NULL;
    double *x = NULL;
    int ma = fold_by_arch(a, na, &fa);
    int mb = ma < 0 ? 0 : fold_by_arch(b, nb, &fb);
    int rc = ma < 0 ? ma : mb < 0 ? mb : NAS_OK;
    int cap = ma < mb ? ma : mb;
    if (rc == NAS_OK && cap > 0 && !(x = nas_malloc(2 * (size_t)cap * sizeof *x))) rc = NAS_ENOMEM;
    if (rc < 0 || cap <= 0) goto done;
    /* Merge-join the two sorted lists on the architecture. */
    double *y = x + cap;
    int n = 0;
    for (int i = 0, j = 0; i < ma && j < mb;) {
        if (fa[i].arch < fb[j].arch)
            i++;
        else if (fa[i].arch > fb[j].arch)
            j++;
        else {
            x[n] = fa[i++].value;
            y[n++] = fb[j++].value;
        }
    }
    out->n = n;
    rc = nas_rank_spearman(x, y, n, &out->rho);
    if (rc == NAS_OK) rc = nas_rank_kendall(x, y, n, &out->tau);
    out->weak = n >= NAS_RANKCORR_MIN_N && !isnan(out->rho) && out->rho < NAS_RANKCORR_WARN_RHO;
done:
    nas_free(fa);
    nas_free(fb);
    nas_free(x);
    return rc;
}
