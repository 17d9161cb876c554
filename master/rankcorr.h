/*
 * rankcorr.h - how well one fidelity ranks architectures the way another
 * does: Spearman's rho and Kendall's tau-b (both with ties), and the
 * pairing of two sets of results by architecture.
 *
 * A cheap search fidelity is only useful if it orders candidates as the
 * expensive one would; these figures say whether it does.  Both
 * coefficients follow the textbook definitions that scipy.stats also
 * implements (spearmanr: Pearson's r of mid-ranks; kendalltau: tau-b), and
 * the tests check them against hand-worked values and, where Debian's
 * python3-scipy is installed, against scipy itself.
 */
#ifndef NAS_RANKCORR_H
#define NAS_RANKCORR_H

#include <stdint.h>

/* Below this Spearman's rho, nasctl warns that the search fidelity ranks
 * architectures poorly (docs/CAMPAIGN.md, *Fidelity rank correlation*).
 * 0.6 is where surveys of low-fidelity proxies start calling the ranking
 * "moderate": above it the top of the search still holds most of the top
 * of the final ranking. */
#define NAS_RANKCORR_WARN_RHO 0.6

/* Fewer pairs than this and the figures are shown but called too few to
 * judge: with 4 pairs a rho of 0.8 is not distinguishable from chance. */
#define NAS_RANKCORR_MIN_N 5

/* Mid-ranks of x[0..n) into rank[0..n): the smallest value has rank 1,
 * tied values share the mean of the ranks they span (1, 2.5, 2.5, 4).
 * NAS_EINVAL on a NaN, NAS_ENOMEM. */
int nas_rank_midranks(const double *x, int n, double *rank);

/* Spearman's rho of paired samples: Pearson's correlation of their
 * mid-ranks.  *rho is NAN when n < 2 or either side is constant (the
 * coefficient is undefined there, as in scipy).  NAS_EINVAL on a NaN. */
int nas_rank_spearman(const double *x, const double *y, int n, double *rho);

/* Kendall's tau-b: (concordant - discordant) / sqrt((n0 - tx)(n0 - ty))
 * over the n0 = n(n-1)/2 pairs, tx and ty the pairs tied in x and in y.
 * NAN when n < 2 or either side is constant.  O(n log n) (Knight's
 * algorithm: a sort and a merge sort counting inversions). */
int nas_rank_kendall(const double *x, const double *y, int n, double *tau);

/* One result of an architecture at some fidelity. */
typedef struct nas_rank_obs {
    uint64_t arch;
    double value;
} nas_rank_obs;

/* The correlation between two fidelities. */
typedef struct nas_rank_report {
    int n;           /* architectures with results at both */
    double rho, tau; /* NAN when undefined (n < 2, constant side) */
    int weak;        /* 1: n >= NAS_RANKCORR_MIN_N and rho < NAS_RANKCORR_WARN_RHO */
} nas_rank_report;

/* Pair results at fidelity a with those at fidelity b by architecture (an
 * architecture evaluated several times at one fidelity counts with the mean
 * of its values) and correlate them.  NAS_ENOMEM, NAS_EINVAL on a NaN. */
int nas_rank_compare(const nas_rank_obs *a, int na, const nas_rank_obs *b, int nb,
                     nas_rank_report *out);

#endif
