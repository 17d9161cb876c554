/*
 * earlystop.h - stopping a training run early from its learning curve:
 * the median stopping rule and learning-curve extrapolation, as pure
 * functions of the curves (no clock, no state), so the master can ask them
 * at every Progress message and a test can pin their answers.
 *
 * Curves are validation accuracy per epoch (higher is better), epoch 1
 * first, as the store keeps them (docs/SCHEMA.md, task.curve).
 */
#ifndef NAS_EARLYSTOP_H
#define NAS_EARLYSTOP_H

#include <stddef.h>

// ---- median stopping rule -----------------------------------------------------------------------

/* The median stopping rule (Golovin et al., "Google Vizier", 2017): stop a
 * run after epoch t if its best value so far is strictly below the median,
 * over the finished runs that reached epoch t, of their running averages
 * over epochs 1..t.  It needs no model and no tuning beyond two guards:
 * no decision before `min_epochs` epochs, nor with fewer than `min_runs`
 * finished runs that reached epoch t.
 *
 * done[i] is the curve of finished run i (done_len[i] epochs); cur is the
 * running one, t epochs long.  Returns 1 stop, 0 go on, NAS_EINVAL on bad
 * arguments (a NaN in a curve counts as that run's failure: it is skipped
 * among the finished ones and stops the running one). */
int nas_stop_median(const float *const *done, const int *done_len, int n_done, const float *cur,
                    int t, int min_epochs, int min_runs);

// ---- learning-curve extrapolation ---------------------------------------------------------------

/* Parametric families (Domhan et al., "Speeding up Automatic
 * Hyperparameter Optimization of Deep Neural Networks by Extrapolation of
 * Learning Curves", IJCAI 2015), x the epoch (1, 2, ...):
 *   pow3       y = c - a x^-alpha                         asymptote c
 *   log-power  y = a / (1 + (x / e^b)^c)                  asymptote a (c < 0)
 *   exp3       y = c - exp(b - a x)                       asymptote c
 *   janoschek  y = alpha - (alpha - beta) exp(-k x^delta) asymptote alpha */
enum nas_curve_model {
    NAS_CURVE_POW3 = 0,
    NAS_CURVE_LOGPOWER = 1,
    NAS_CURVE_EXP3 = 2,
    NAS_CURVE_JANOSCHEK = 3,
    NAS_CURVE_N_MODELS = 4,
};

#define NAS_CURVE_MAX_PARAMS 4

/* Parameters of one family (NAS_CURVE_MAX_PARAMS at most). */
int nas_curve_model_params(int model);
const char *nas_curve_model_name(int model);

/* The family's value at epoch x. */
double nas_curve_model_eval(int model, const double *p, double x);

/* Least-squares fit (Levenberg-Marquardt from a few data-driven starts) of
 * one family to y[0..n) at epochs 1..n.  *sse is the residual sum of
 * squares.  NAS_ERANGE when no start converges to finite values,
 * NAS_EINVAL when n is below the family's parameter count + 1. */
int nas_curve_fit(int model, const float *y, int n, double *p, double *sse);

typedef struct nas_curve_forecast {
    double mean;     /* predicted value at the target epoch, averaged over the families */
    double sd;       /* its spread: the families' disagreement and their residual noise */
    double p_exceed; /* probability that the value at the target epoch exceeds `best` */
    int n_models;    /* families that fitted and passed the sanity checks */
} nas_curve_forecast;

/* Fit every family to y[0..n), drop those whose forecast at `target`
 * leaves [lo, hi] or falls below the curve's start (a learning curve that
 * ends lower than it began is not one of these families), weight the rest
 * by their BIC, and forecast the value at epoch `target` (> n) as a mixture
 * of normals, one per family.  NAS_ERANGE when no family is left (the caller
 * keeps training: no evidence is not evidence for stopping), NAS_EINVAL for
 * n < 5, target <= n or a NaN in y. */
int nas_curve_extrapolate(const float *y, int n, int target, double best, double lo, double hi,
                          nas_curve_forecast *out);

/* Domhan et al.'s rule: stop when the forecast's probability of beating
 * `best` at epoch `target` is below `delta` (they use 0.05).  Returns 1 stop,
 * 0 go on (also when no family fits or the curve is too short), and fills
 * *out when not NULL (n_models 0 when nothing was fitted). */
int nas_stop_extrapolate(const float *y, int n, int target, double best, double delta,
                         nas_curve_forecast *out);

// ---- gradient statistics ------------------------------------------------------------------------

/* The evidence-based criterion of Mahsereci et al. ("Early Stopping without
 * a Validation Set", 2017), for the gradient: with g the mean gradient of a
 * batch of b examples and var[k] the variance of the individual examples'
 * gradients in coordinate k,
 *     EB = 1 - (b / D) sum_k g[k]^2 / var[k]
 * is about 0 when the mean gradient is no larger than its own sampling noise
 * (nothing left to learn that the batch can tell from noise) and strongly
 * negative while the gradient is real.  Training may stop once EB > 0
 * (the paper smooths it over a few steps).  Coordinates with var[k] = 0
 * carry no evidence and are left out of D.  Returns NAN when no coordinate
 * is left or b < 2.  The worker must compute var (per-example gradients),
 * which the training engine does not do yet. */
double nas_stop_eb_criterion(const float *g, const float *var, size_t d, int b);

#endif
