/*
 * earlystop.c - the median stopping rule and learning-curve extrapolation
 * (earlystop.h).
 *
 * Domhan et al. fit eleven families by MCMC and average them; this keeps
 * the idea at the cost a master can pay on every Progress message: four
 * families that cover the shapes our curves take (power law, log-power,
 * exponential saturation, the sigmoid-like Janoschek), each fitted by
 * Levenberg-Marquardt from a few starts, combined by BIC weights, with the
 * forecast's uncertainty from the families' disagreement plus their
 * residual noise, widened with the distance to the target epoch.  Fitting
 * twenty epochs with four families takes well under a millisecond.
 */
#include "master/earlystop.h"

#include "common/alloc.h"
#include "common/err.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- median stopping rule -----------------------------------------------------------------------

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

int nas_stop_median(const float *const *done, const int *done_len, int n_done, const float *cur,
                    int t, int min_epochs, int min_runs) {
    if (t < 1 || !cur || n_done < 0 || (n_done > 0 && (!done || !done_len)) || min_runs < 1)
        return NAS_EINVAL;
    double best = -INFINITY;
    for (int e = 0; e < t; e++) {
        if (isnan(cur[e])) return 1; /* a diverged run has nothing left to show */
        if (cur[e] > best) best = cur[e];
    }
    if (t < min_epochs) return 0;
    double *avg = n_done ? nas_malloc((size_t)n_done * sizeof *avg) : NULL;
    if (n_done && !avg) return NAS_ENOMEM;
    int m = 0;
    for (int i = 0; i < n_done; i++) {
        if (done_len[i] < t || !done[i]) continue;
        double sum = 0;
        for (int e = 0; e < t; e++)
            sum += done[i][e];
        if (!isnan(sum)) avg[m++] = sum / t;
    }
    int stop = 0;
    if (m >= min_runs) {
        qsort(avg, (size_t)m, sizeof *avg, cmp_double);
        double median = m % 2 ? avg[m / 2] : 0.5 * (avg[m / 2 - 1] + avg[m / 2]);
        stop = best < median;
    }
    nas_free(avg);
    return stop;
}

// ---- the families -------------------------------------------------------------------------------

int nas_curve_model_params(int model) {
    return model == NAS_CURVE_JANOSCHEK ? 4 : 3;
}

const char *nas_curve_model_name(int model) {
    static const char *const names[] = {"pow3", "log-power", "exp3", "janoschek"};
    return model >= 0 && model < NAS_CURVE_N_MODELS ? names[model] : "unknown";
}

double nas_curve_model_eval(int model, const double *p, double x) {
    switch (model) {
    case NAS_CURVE_POW3: /* c - a x^-alpha */
        return p[0] - p[1] * pow(x, -p[2]);
    case NAS_CURVE_LOGPOWER: /* a / (1 + (x / e^b)^c) */
        return p[0] / (1 + exp(p[2] * (log(x) - p[1])));
    case NAS_CURVE_EXP3: /* c - exp(b - a x) */
        return p[0] - exp(p[1] - p[2] * x);
    case NAS_CURVE_JANOSCHEK: /* alpha - (alpha - beta) exp(-k x^delta) */
        return p[0] - (p[0] - p[1]) * exp(-p[2] * pow(x, p[3]));
    default:
        return NAN;
    }
}

static double sse_of(int model, const double *p, const float *y, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        double r = y[i] - nas_curve_model_eval(model, p, i + 1);
        s += r * r;
    }
    return isfinite(s) ? s : INFINITY;
}

/* Solve the k x k system a d = g in place (partial pivoting); -1 when
 * singular. */
static int solve(double a[NAS_CURVE_MAX_PARAMS][NAS_CURVE_MAX_PARAMS], double *g, int k,
                 double *d) {
    for (int c = 0; c < k; c++) {
        int piv = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c])) piv = r;
        if (!(fabs(a[piv][c]) > 1e-300)) return -1;
        if (piv != c) {
            for (int j = 0; j < k; j++) {
                double t = a[c][j];
                a[c][j] = a[piv][j];
                a[piv][j] = t;
            }
            double t = g[c];
            g[c] = g[piv];
            g[piv] = t;
        }
        for (int r = c + 1; r < k; r++) {
            double f = a[r][c] / a[c][c];
            for (int j = c; j < k; j++)
                a[r][j] -= f * a[c][j];
            g[r] -= f * g[c];
        }
    }
    for (int r = k - 1; r >= 0; r--) {
        double s = g[r];
        for (int j = r + 1; j < k; j++)
            s -= a[r][j] * d[j];
        d[r] = s / a[r][r];
    }
    return 0;
}

/* Levenberg-Marquardt from p (improved in place); returns the SSE reached.
 * The Jacobian is by central differences: the families are smooth and
 * four parameters make that 8 evaluations per point. */
static double lm_fit(int model, const float *y, int n, double *p) {
    int k = nas_curve_model_params(model);
    double sse = sse_of(model, p, y, n), lambda = 1e-3;
    for (int it = 0; it < 200 && isfinite(sse) && sse > 1e-20; it++) {
        double a[NAS_CURVE_MAX_PARAMS][NAS_CURVE_MAX_PARAMS] = {{0}}, g[NAS_CURVE_MAX_PARAMS] = {0};
        for (int i = 0; i < n; i++) {
            double x = i + 1, jr[NAS_CURVE_MAX_PARAMS];
            for (int j = 0; j < k; j++) {
                double h = 1e-6 * (fabs(p[j]) + 1e-3), save = p[j];
                p[j] = save + h;
                double fp = nas_curve_model_eval(model, p, x);
                p[j] = save - h;
                double fm = nas_curve_model_eval(model, p, x);
                p[j] = save;
                jr[j] = (fp - fm) / (2 * h);
            }
            double r = y[i] - nas_curve_model_eval(model, p, x);
            for (int j = 0; j < k; j++) {
                g[j] += jr[j] * r;
                for (int l = 0; l < k; l++)
                    a[j][l] += jr[j] * jr[l];
            }
        }
        /* Raise the damping until a step lowers the SSE. */
        int moved = 0;
        while (lambda < 1e12 && !moved) {
            double aa[NAS_CURVE_MAX_PARAMS][NAS_CURVE_MAX_PARAMS], gg[NAS_CURVE_MAX_PARAMS];
            double d[NAS_CURVE_MAX_PARAMS], q[NAS_CURVE_MAX_PARAMS];
            memcpy(aa, a, sizeof aa);
            memcpy(gg, g, sizeof gg);
            for (int j = 0; j < k; j++)
                aa[j][j] += lambda * (a[j][j] + 1e-12);
            if (solve(aa, gg, k, d) == 0) {
                for (int j = 0; j < k; j++)
                    q[j] = p[j] + d[j];
                double s = sse_of(model, q, y, n);
                if (s < sse) {
                    moved = 1;
                    int tiny = sse - s < 1e-12 * sse;
                    memcpy(p, q, (size_t)k * sizeof *p);
                    sse = s;
                    lambda = lambda / 3 > 1e-12 ? lambda / 3 : 1e-12;
                    if (tiny) return sse;
                    break;
                }
            }
            lambda *= 4;
        }
        if (!moved) break;
    }
    return sse;
}

/* Starting points from the data: an asymptote a little above the last
 * value, the curve's start at epoch 1, and a few rates. */
static int starts(int model, const float *y, int n, double st[][NAS_CURVE_MAX_PARAMS]) {
    double y0 = y[0], yn = y[n - 1];
    int m = 0;
    static const double lift[] = {0.01, 0.05, 0.2};
    static const double rate[] = {0.3, 1.0};
    for (size_t i = 0; i < NAS_ARRAY_LEN(lift); i++)
        for (size_t j = 0; j < NAS_ARRAY_LEN(rate); j++) {
            double c = (yn > y0 ? yn : y0) + lift[i] * (fabs(yn - y0) + 0.01);
            double gap = c - y0 > 1e-6 ? c - y0 : 1e-6, r = rate[j];
            double *p = st[m++];
            switch (model) {
            case NAS_CURVE_POW3:
                p[0] = c, p[1] = gap, p[2] = r;
                break;
            case NAS_CURVE_LOGPOWER:
                /* y(1) = a / (1 + e^(-b c)) = y0 with c = -r. */
                p[0] = c, p[2] = -r;
                p[1] = y0 > 1e-6 && c > y0 ? log(c / y0 - 1) / r : 0;
                break;
            case NAS_CURVE_EXP3:
                p[0] = c, p[1] = log(gap) + r, p[2] = r; /* y(1) = y0 */
                break;
            default: /* Janoschek: y(0) = beta */
                p[0] = c, p[1] = y0 - 0.5 * gap, p[2] = r, p[3] = 1;
                break;
            }
        }
    return m;
}

int nas_curve_fit(int model, const float *y, int n, double *p, double *sse) {
    if (model < 0 || model >= NAS_CURVE_N_MODELS) return NAS_EINVAL;
    int k = nas_curve_model_params(model);
    if (!y || n < k + 1) return NAS_EINVAL;
    double st[8][NAS_CURVE_MAX_PARAMS], best = INFINITY;
    int m = starts(model, y, n, st);
    for (int i = 0; i < m; i++) {
        double s = lm_fit(model, y, n, st[i]);
        if (s < best) {
            best = s;
            memcpy(p, st[i], (size_t)k * sizeof *p);
        }
    }
    if (!isfinite(best)) return NAS_ERANGE;
    *sse = best;
    return NAS_OK;
}

// ---- forecasting --------------------------------------------------------------------------------

/* A residual noise below this is a perfect fit of synthetic data, not a
 * forecast that certain: validation accuracy on a few thousand images
 * moves by a few tenths of a percent between epochs anyway. */
#define NOISE_FLOOR 0.002

int nas_curve_extrapolate(const float *y, int n, int target, double best, double lo, double hi,
                          nas_curve_forecast *out) {
    *out = (nas_curve_forecast){NAN, NAN, NAN, 0};
    if (!y || n < 5 || target <= n || !(lo < hi)) return NAS_EINVAL;
    for (int i = 0; i < n; i++)
        if (!isfinite(y[i])) return NAS_EINVAL;
    double mu[NAS_CURVE_N_MODELS], sd[NAS_CURVE_N_MODELS], bic[NAS_CURVE_N_MODELS];
    double bic_min = INFINITY;
    int ok[NAS_CURVE_N_MODELS] = {0};
    /* Extrapolation error grows with the horizon; widen each family's
     * noise by sqrt(target / n), a heuristic that keeps a 5-epoch curve
     * from forecasting epoch 50 with its fitting noise alone. */
    double widen = sqrt((double)target / n);
    for (int m = 0; m < NAS_CURVE_N_MODELS; m++) {
        double p[NAS_CURVE_MAX_PARAMS], sse;
        int k = nas_curve_model_params(m);
        if (nas_curve_fit(m, y, n, p, &sse) < 0) continue;
        mu[m] = nas_curve_model_eval(m, p, target);
        if (!isfinite(mu[m]) || mu[m] < lo || mu[m] > hi || mu[m] < y[0]) continue;
        double var = n > k ? sse / (n - k) : sse;
        sd[m] = widen * (sqrt(var) > NOISE_FLOOR ? sqrt(var) : NOISE_FLOOR);
        /* BIC with the noise floored the same way, so that a perfect fit
         * does not take all the weight from families almost as good. */
        double mse = sse / n > NOISE_FLOOR * NOISE_FLOOR ? sse / n : NOISE_FLOOR * NOISE_FLOOR;
        bic[m] = n * log(mse) + k * log((double)n);
        if (bic[m] < bic_min) bic_min = bic[m];
        ok[m] = 1;
        out->n_models++;
    }
    if (out->n_models == 0) return NAS_ERANGE;
    double wsum = 0, mean = 0, second = 0, p = 0;
    for (int m = 0; m < NAS_CURVE_N_MODELS; m++) {
        if (!ok[m]) continue;
        double w = exp(-0.5 * (bic[m] - bic_min));
        wsum += w;
        mean += w * mu[m];
        second += w * (sd[m] * sd[m] + mu[m] * mu[m]);
        p += w * 0.5 * erfc((best - mu[m]) / (sd[m] * sqrt(2.0)));
    }
    out->mean = mean / wsum;
    double var = second / wsum - out->mean * out->mean;
    out->sd = sqrt(var > 0 ? var : 0);
    out->p_exceed = p / wsum;
    return NAS_OK;
}

int nas_stop_extrapolate(const float *y, int n, int target, double best, double delta,
                         nas_curve_forecast *out) {
    nas_curve_forecast f;
    int rc = nas_curve_extrapolate(y, n, target, best, 0.0, 1.0, &f);
    if (out) *out = f;
    return rc == NAS_OK && f.p_exceed < delta;
}

// ---- gradient statistics ------------------------------------------------------------------------

double nas_stop_eb_criterion(const float *g, const float *var, size_t d, int b) {
    if (!g || !var || b < 2) return NAN;
    double sum = 0;
    size_t used = 0;
    for (size_t k = 0; k < d; k++) {
        if (!(var[k] > 0) || !isfinite(g[k])) continue;
        sum += (double)g[k] * g[k] / var[k];
        used++;
    }
    return used ? 1 - (double)b / (double)used * sum : NAN;
}
