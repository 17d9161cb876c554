/*
 * conv_cols.c - the one-row path: convs whose kernel is one row high (1xK: the 1x7 half of the
 * cells' conv1x7_7x1), stride 1, dilation 1, no row padding, without an im2col matrix.
 *
 * Each channel of an image group is copied once into a buffer whose rows start every R floats,
 * with zeros between them (the padding, shared by neighbouring rows).  Output pixel (y, x) of
 * tap kj then reads the buffer at y*R + x + kj, so the whole conv is one small flat product
 * (pointwise.h's nas__pw_mmt) over the C*KW (channel, tap) pairs, reading the buffer at the
 * taps' column offsets, whose rows are then copied out without the gap columns:
 *     out[o][y][x] = P[o][y*R + x],  P[o][p] = sum over c, kj of W[o][c][kj] * E[c][p + kj]
 * (Writing each output row straight from its own product, without P and the copy, measured
 * slower at 7x7 and 14x14, where a row fills one vector at most, and mixed at 28x28.)
 * The input gradient is the same product over an expanded dY with the weights transposed and
 * flipped (padding KW-1-pad_w), and the weight gradient of tap kj is pointwise.h's
 * dout . inp^T product between the expanded dY and the input buffer read kj columns on.
 * Called from conv.c's dispatch (nas__conv_cols_ok); the naive loops are the tests' reference.
 */
#include <string.h>

#include "common/conv.h"
#include "common/conv_internal.h"
#include "common/pointwise.h"

// One conv's buffers: a buffer row every r floats, the first at column off (pad_w for the
// input, pb = KW-1-pad_w for dY), so that the r - w >= off zeros after each row are the padding
// of both that row and the next; ld floats per channel (a multiple of 16), and a zeroed tail of
// KW floats after the last channel (the weight gradient's products read up to KW-1 floats past
// a channel).  Output pixel (y, x) is column y*r + x of a flat product; columns x >= OW of
// each row read across the gap and are dropped.
typedef struct cols_geom {
    int c, oc, h, w, ow, kw, pw, pb, r;
    size_t ld;
} cols_geom;

static cols_geom cols_make(const nas_conv_shape *s) {
    cols_geom g = {.c = s->c / s->groups, .oc = s->oc / s->groups, .h = s->h, .w = s->w};
    g.ow = s->ow, g.kw = s->kw, g.pw = s->pad_w, g.pb = s->kw - 1 - s->pad_w;
    int rf = s->w + g.pw, rb = s->ow + g.pb; /* the forward's and the input gradient's rows */
    g.r = rf > rb ? rf : rb;
    g.ld = ((size_t)g.h * g.r + (size_t)(g.pw > g.pb ? g.pw : g.pb) + 15) & ~(size_t)15;
    return g;
}

static size_t cols_bufsize(const cols_geom *g, int ch) {
    return (size_t)ch * g->ld + g->kw;
}

// kh == 1 with no row padding, stride 1, dilation 1, a padding no wider than the kernel (so the
// input gradient's own padding KW-1-pad_w is >= 0), not depthwise, and 4 to 32 channels per
// group each way (up to 128 on planes of 28x28 and more): measured per layer against im2col +
// GEMM (docs/PERFORMANCE.md, round 8a), the 1x7 at 64 channels ran 7-20 % slower on 14x14 and
// 7x7 planes, about even at 48, and 15-30 % faster at 16-32 channels and at 64 on 28x28.
int nas__conv_cols_ok(const nas_conv_shape *s) {
    int g_c = s->c / s->groups, g_oc = s->oc / s->groups, lim = s->h * s->w >= 784 ? 128 : 32;
    int depthwise = s->groups == s->c && s->oc == s->c && s->groups > 1;
    return s->kh == 1 && s->kw > 1 && s->pad_h == 0 && s->stride == 1 && s->dil == 1 &&
           s->pad_w <= s->kw - 1 && !depthwise && !s->relu && g_c >= 4 && g_oc >= 4 && g_c <= lim &&
           g_oc <= lim;
}

// e (ch, ld) + tail: channel ci's row y at e + ci*ld + off + y*r, zero elsewhere.
static void cols_expand(float *e, const float *img, int ch, int h, int w, int off,
                        const cols_geom *g) {
    for (int ci = 0; ci < ch; ci++) {
        float *d = e + (size_t)ci * g->ld;
        const float *src = img + (size_t)ci * h * w;
        for (int x = 0; x < off; x++)
            d[x] = 0.0f;
        for (int y = 0; y < h; y++) {
            float *row = d + off + (size_t)y * g->r;
            for (int x = 0; x < w; x++)
                row[x] = src[(size_t)y * w + x];
            for (int x = w; x < g->r; x++)
                row[x] = 0.0f;
        }
        memset(d + off + (size_t)h * g->r, 0, sizeof(float) * (g->ld - off - (size_t)h * g->r));
    }
    memset(e + (size_t)ch * g->ld, 0, sizeof(float) * g->kw);
}

// Floats of one weight array, and the workspace: the input's buffer, dY's, the flipped weights
// and the weight gradient's (KW, OC/G, C/G) blocks per group.
static size_t cols_wsize(const nas_conv_shape *s) {
    return (size_t)s->oc * (s->c / s->groups) * s->kw;
}

// The flat product's columns for outputs of h rows of w.
static size_t cols_np(const cols_geom *g, int h, int w) {
    return (size_t)(h - 1) * g->r + w;
}

size_t nas__conv_cols_workspace(const nas_conv_shape *s) {
    cols_geom g = cols_make(s);
    size_t np = cols_np(&g, s->h, s->w > s->ow ? s->w : s->ow);
    int m = g.c > g.oc ? g.c : g.oc;
    return cols_bufsize(&g, g.c) + cols_bufsize(&g, g.oc) + 2 * cols_wsize(s) + (size_t)m * np;
}

// out (m, h, w) (+, add)= the one-row product of a (m, k, KW) over the buffer x of k channels:
// one flat nas__pw_mmt into p (m, np), whose rows are then copied (or added) into out.
static void cols_rows(int isa, float *out, int m, int h, int w, const float *a, const float *x,
                      int k, const cols_geom *g, int add, float *p) {
    size_t hw = (size_t)h * w, np = cols_np(g, h, w);
    nas__pw_mmt(isa, p, np, a, (size_t)k * g->kw, 1, x, g->ld, m, k, g->kw, (int)np, 0);
    for (int i = 0; i < m; i++)
        for (int y = 0; y < h; y++) {
            float *o = out + i * hw + (size_t)y * w;
            const float *q = p + i * np + (size_t)y * g->r;
            if (add)
                for (int j = 0; j < w; j++)
                    o[j] += q[j];
            else
                for (int j = 0; j < w; j++)
                    o[j] = q[j];
        }
}

void nas__conv_cols_forward(int isa, float *out, const float *inp, const float *weight,
                            const float *bias, const nas_conv_shape *s, float *ws) {
    cols_geom g = cols_make(s);
    size_t ohw = (size_t)s->oh * s->ow, hw = (size_t)s->h * s->w;
    float *p = ws + cols_bufsize(&g, g.c) + cols_bufsize(&g, g.oc) + 2 * cols_wsize(s);
    for (int b = 0; b < s->n; b++) {
        for (int gi = 0; gi < s->groups; gi++) {
            cols_expand(ws, inp + ((size_t)b * s->c + (size_t)gi * g.c) * hw, g.c, s->h, s->w, g.pw,
                        &g);
            cols_rows(isa, out + ((size_t)b * s->oc + (size_t)gi * g.oc) * ohw, g.oc, s->oh, s->ow,
                      weight + (size_t)gi * g.oc * g.c * s->kw, ws, g.c, &g, 0, p);
        }
        if (bias) nas__conv_bias_add(out + (size_t)b * s->oc * ohw, bias, s->oc, ohw);
    }
}

void nas__conv_cols_backward(int isa, float *dinp, int store, float *dweight, float *dbias,
                             const float *dout, const float *inp, const float *weight,
                             const nas_conv_shape *s, float *ws) {
    cols_geom g = cols_make(s);
    size_t ohw = (size_t)s->oh * s->ow, hw = (size_t)s->h * s->w;
    size_t blk = (size_t)g.oc * g.c; /* one tap's weight-gradient block of a group */
    float *e = ws, *d = e + cols_bufsize(&g, g.c), *wf = d + cols_bufsize(&g, g.oc);
    float *dwr = wf + cols_wsize(s), *p = dwr + cols_wsize(s);
    // wf (C, OC/G, KW): wf[g*C/G + ci][o][kj] = weight[g*OC/G + o][ci][KW-1-kj]
    if (dinp)
        for (int gi = 0; gi < s->groups; gi++)
            for (int o = 0; o < g.oc; o++)
                for (int ci = 0; ci < g.c; ci++)
                    for (int kj = 0; kj < s->kw; kj++)
                        wf[(((size_t)gi * g.c + ci) * g.oc + o) * s->kw + kj] =
                            weight[(((size_t)gi * g.oc + o) * g.c + ci) * s->kw + s->kw - 1 - kj];
    memset(dwr, 0, sizeof(float) * cols_wsize(s));
    for (int b = 0; b < s->n; b++) {
        for (int gi = 0; gi < s->groups; gi++) {
            const float *dout_g = dout + ((size_t)b * s->oc + (size_t)gi * g.oc) * ohw;
            cols_expand(e, inp + ((size_t)b * s->c + (size_t)gi * g.c) * hw, g.c, s->h, s->w, g.pw,
                        &g);
            cols_expand(d, dout_g, g.oc, s->oh, s->ow, g.pb, &g);
            // dY's pixel (y, ox) lies at d + pb + y*r + ox and met e's column y*r + ox + kj
            // (input column ox + kj - pad_w): dW_kj += (d + pb) . (e + kj)^T over whole
            // channels, d being zero wherever no pixel lies.
            float *dwr_g = dwr + (size_t)gi * s->kw * blk;
            for (int kj = 0; kj < s->kw; kj++)
                nas__pw_dw(isa, dwr_g + kj * blk, d + g.pb, e + kj, g.oc, g.c, (int)g.ld);
            if (dinp)
                cols_rows(isa, dinp + ((size_t)b * s->c + (size_t)gi * g.c) * hw, g.c, s->h, s->w,
                          wf + (size_t)gi * g.c * g.oc * s->kw, d, g.oc, &g, !store, p);
        }
        if (dbias) nas__conv_bias_grad(dbias, dout + (size_t)b * s->oc * ohw, s->oc, ohw);
    }
    // dweight (OC, C/G, 1, KW) += dwr (G, KW, OC/G, C/G)
    for (int gi = 0; gi < s->groups; gi++)
        for (int o = 0; o < g.oc; o++)
            for (int ci = 0; ci < g.c; ci++)
                for (int kj = 0; kj < s->kw; kj++)
                    dweight[(((size_t)gi * g.oc + o) * g.c + ci) * s->kw + kj] +=
                        dwr[(((size_t)gi * s->kw + kj) * g.oc + o) * g.c + ci];
}
