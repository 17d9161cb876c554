/*
 * predictor.h - the PNAS accuracy predictor (Liu et al. 2018, section 3.2):
 * an ensemble of small MLPs over a fixed-length encoding of a genome and
 * an LSTM over its sequence of blocks, each trained with Adam on an L2
 * loss, the ensemble mean used for ranking.
 *
 * The predictor knows nothing of genomes: a sample is T tokens of D floats
 * (the strategy encodes a block's inputs and ops as one-hot fields; unused
 * tokens are zeros), of which the first len[i] are real.  The MLP reads
 * all T*D floats; the LSTM reads the first len[i] tokens and predicts from
 * its final hidden state through a sigmoid.  Targets are rescaled into
 * [0.1, 0.9] from the range of the training targets, so the sigmoid's
 * resolution goes to the accuracies that occur.
 *
 * nas_predictor_fit is a pure function of its inputs (data, config, seed):
 * it allocates its own scratch and touches no shared state, so the master
 * may run it on a libuv worker thread.  Single-threaded OpenBLAS makes it
 * bit-reproducible.
 */
#ifndef NAS_PREDICTOR_H
#define NAS_PREDICTOR_H

#include "common/rng.h"

#include <stddef.h>
#include <stdint.h>

enum nas_predictor_model {
    NAS_PREDICTOR_MLP = 0,  /* T*D -> hidden (ReLU) -> hidden (ReLU) -> 1 (sigmoid) */
    NAS_PREDICTOR_LSTM = 1, /* tokens -> LSTM(hidden) -> final h -> 1 (sigmoid) */
};

typedef struct nas_predictor_config {
    int n_mlp;       /* MLPs in the ensemble, default 5 */
    int use_lstm;    /* 1 = add one LSTM, default 1 */
    int hidden;      /* MLP width, default 32 */
    int lstm_hidden; /* LSTM state size, default 32 */
    int steps;       /* full-batch Adam steps per model, default 200 */
    float lr;        /* Adam step size, default 0.01 */
    float l2;        /* decoupled weight decay per step, default 1e-4 */
} nas_predictor_config;

void nas_predictor_config_default(nas_predictor_config *c);

/* Training or query data as plain arrays. */
typedef struct nas_predictor_data {
    int n;          /* samples */
    int T, D;       /* tokens per sample, floats per token */
    const float *x; /* n*T*D, sample-major */
    const int *len; /* tokens used per sample, 1..T; NULL = all T */
    const float *y; /* n targets (accuracy or reward); unused by predict */
} nas_predictor_data;

typedef struct nas_predictor nas_predictor;

/* Fit a fresh ensemble to d (n >= 2) with the given seed. NAS_EINVAL + err
 * for bad shapes or non-finite data, NAS_ENOMEM. */
int nas_predictor_fit(nas_predictor **out, const nas_predictor_config *cfg,
                      const nas_predictor_data *d, uint64_t seed, char *err);
void nas_predictor_destroy(nas_predictor **pp);

/* Ensemble-mean prediction for d->n samples of the fitted T and D into out. */
int nas_predictor_predict(const nas_predictor *p, const nas_predictor_data *d, float *out,
                          char *err);

/* Serialise the fitted weights (versioned little-endian bytes, nas_free the
 * blob) and restore them; import validates sizes and refuses a truncated or
 * inconsistent blob with NAS_EFORMAT + err. */
int nas_predictor_export(const nas_predictor *p, uint8_t **blob, size_t *n);
int nas_predictor_import(nas_predictor **out, const uint8_t *blob, size_t n, char *err);

/* Spearman rank correlation of two series (average ranks for ties); NAN
 * when n < 2 or either series is constant. */
double nas_predictor_spearman(const double *a, const double *b, int n);

/* ---- one model (exposed for gradient checks) ---------------------------------- */

/* Floats of weights of one model. */
size_t nas_predictor_model_size(int kind, int T, int D, int hidden);
/* Seeded initialisation of w (nas_predictor_model_size floats). */
void nas_predictor_model_init(int kind, int T, int D, int hidden, nas_rng *rng, float *w);
/* Forward (and backward when grad != NULL) over d with scaled targets t
 * (NULL: predictions only, into pred). Writes the mean squared error into
 * *loss when t is given. NAS_ENOMEM only. */
int nas_predictor_model_eval(int kind, int hidden, const float *w, const nas_predictor_data *d,
                             const float *t, float *pred, float *grad, double *loss);

#endif
