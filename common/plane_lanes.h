/*
 * plane_lanes.h - the depthwise conv and the pools on lane-interleaved planes, included by
 * plane.c once per instruction set right after plane_kern.h, with the same macros (see there).
 *
 * The NAS cells' depthwise convs run on small planes: 14x14, 7x7 and 4x4 at the search's
 * fidelity.  Vectors across one output row of such a plane leave most lanes idle (7 of 16 at
 * 7x7, 12 of 16 at 4x4).  Here each lane is a plane instead: V consecutive planes of the batch
 * (image-channel pairs, each with its own channel's weights) are interleaved pixel by pixel into
 * a padded buffer, so every tap of every output pixel is one full vector whatever the plane's
 * size, and a stride needs no phase split.  Each lane computes exactly the operations, in the
 * order, of the per-row kernels of plane_kern.h (bias, then w[t] * x summed tap by tap; the
 * weight gradient per output column over rows, then across columns; the input gradient as the
 * flipped correlation of the spread output gradient), so the bits are theirs.
 */

// The channels of the np planes p0.. in ch (one division per group, not one per lane).
KATTR static void FN(lanes_channels)(int *ch, long p0, int np, int c) {
    int k = (int)(p0 % c);
    for (int l = 0; l < np; l++, k = k + 1 == c ? 0 : k + 1) ch[l] = k;
}

// The weights of taps t (flipped when flip is set: tap nt-1-t) of the np planes of channels ch
// as nt vectors of V lanes; lanes past np get zeros.
KATTR static void FN(lanes_weights)(float *wv, const float *weight, int nt, const int *ch, int np,
                                    int flip) {
    for (int l = 0; l < V; l++) {
        const float *w = l < np ? weight + (size_t)ch[l] * nt : NULL;
        for (int t = 0; t < nt; t++) wv[t * V + l] = w ? w[flip ? nt - 1 - t : t] : 0.0f;
    }
}

// Interleave np planes (h x w, consecutive from src) into buf at rows r0 + y*rstep and columns
// c0 + x*cstep of a buffer ld pixels wide; the lanes past np are zeroed.  V pixels of the V
// planes at a time: one vector load per plane, a V x V transpose in registers (TR), one vector
// store per pixel.  With relu, each loaded vector first becomes x > 0 ? x : 0 (a fused ReLU,
// the operation nas_relu_forward does, in registers rather than in a pass over buf).  relu is
// a constant where this is inlined, and a full group's whole blocks load without masks.
KATTR __attribute__((always_inline)) static inline void
FN(lanes_in_body)(float *buf, const float *src, int np, int h, int w, int ld, int r0, int c0,
                  int rstep, int cstep, int relu) {
    int hw = h * w, x = 0;
    size_t rs = (size_t)rstep * ld * V, cs = (size_t)cstep * V;
    float *row = buf + ((size_t)r0 * ld + c0) * V; /* pixel (y, 0) */
    for (int i0 = 0; i0 < hw; i0 += V) {
        int n = hw - i0 < V ? hw - i0 : V;
        VT r[V];
        if (np == V && n == V)
            for (int l = 0; l < V; l++)
                r[l] = LD(src + (size_t)l * hw + i0);
        else
            for (int l = 0; l < V; l++)
                r[l] = l < np ? LDN(src + (size_t)l * hw + i0, n) : ZERO();
        if (relu)
            for (int l = 0; l < V; l++)
                r[l] = MSEL(GTZ(r[l]), r[l]);
        TR(r);
        for (int j = 0; j < V && j < n; j++) {
            ST(row + (size_t)x * cs, r[j]);
            if (++x == w) x = 0, row += rs;
        }
    }
}

// Ask for the next group's planes (those after p0 + V of `planes`, n floats each, from base)
// to be brought into L1 while this group computes.  lanes_in reads V planes at once, a cache
// line of each per vector: more streams than the hardware prefetcher follows, so without this
// its loads waited on L3 (perf annotate: they were its hottest instructions).
KATTR __attribute__((always_inline)) static inline void FN(lanes_prefetch)(const float *base,
                                                                            long p0, long planes,
                                                                            size_t n) {
    long next = p0 + V;
    if (next >= planes) return;
    size_t len = (size_t)(planes - next < V ? planes - next : V) * n;
    const float *p = base + (size_t)next * n;
    for (size_t i = 0; i < len; i += 16) __builtin_prefetch(p + i, 0, 3);
}

KATTR static void FN(lanes_in)(float *buf, const float *src, int np, int h, int w, int ld, int r0,
                               int c0, int rstep, int cstep, int relu) {
    if (relu)
        FN(lanes_in_body)(buf, src, np, h, w, ld, r0, c0, rstep, cstep, 1);
    else
        FN(lanes_in_body)(buf, src, np, h, w, ld, r0, c0, rstep, cstep, 0);
}

// The inverse for n pixels: planes dst (n floats each) from lanes of buf; with add, dst + lane.
KATTR static void FN(lanes_out)(float *dst, const float *buf, int np, size_t n, int add) {
    for (size_t i0 = 0; i0 < n; i0 += V) {
        int m = n - i0 < V ? (int)(n - i0) : V;
        VT r[V];
        for (int j = 0; j < V; j++) r[j] = j < m ? LD(buf + (i0 + j) * V) : ZERO();
        TR(r);
        if (m == V && np == V && !add) {
            for (int l = 0; l < V; l++)
                ST(dst + n * l + i0, r[l]);
            continue;
        }
        for (int l = 0; l < np; l++) {
            float *d = dst + n * l + i0;
            if (m == V)
                ST(d, add ? ADD(LD(d), r[l]) : r[l]);
            else
                STN(d, add ? ADD(LDN(d, m), r[l]) : r[l], m);
        }
    }
}

// nr (1..8) output pixels: out[j] = bias + sum over taps t of wv[t] * px[j][off[t]], the
// pixels' chains independent (eight keep the adders busy).  With mask, out[j] = mask[j] > 0 ?
// that : 0.
KATTR __attribute__((always_inline)) static inline void
FN(lanes_px)(int nr, float *out, const float *const *px, const int *off, const float *wv, int nt,
             VT bias, const float *const *mask) {
    VT a[8];
    for (int j = 0; j < nr; j++) a[j] = bias;
    for (int t = 0; t < nt; t++) {
        VT w = LD(wv + (size_t)t * V);
        for (int j = 0; j < nr; j++) a[j] = ADD(a[j], MUL(w, LD(px[j] + off[t])));
    }
    for (int j = 0; j < nr; j++)
        ST(out + (size_t)j * V, mask ? MSEL(GTZ(LD(mask[j])), a[j]) : a[j]);
}

// The correlation of a whole lane plane: out pixel (y, x) (oh x ow, interleaved) reads in at
// (y*s*ld + x*s)*V + off[t]; mask (when given) is read at ((y + mp)*mld + x + mq)*V.  Pixels go
// eight at a time in raster order, across row ends, so small planes keep eight chains too.
KATTR static void FN(lanes_corr)(float *out, int oh, int ow, const float *in, int ld, int s,
                                 const int *off, const float *wv, int nt, VT bias,
                                 const float *mask, int mld, int mp, int mq) {
    const float *px[8], *mk[8];
    const float *const *m = mask ? mk : NULL;
    int n = 0;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            px[n] = in + ((size_t)y * s * ld + (size_t)x * s) * V;
            mk[n] = mask ? mask + ((size_t)(y + mp) * mld + mq + x) * V : NULL;
            if (++n < 8) continue;
            FN(lanes_px)(8, out, px, off, wv, nt, bias, m);
            out += 8 * V, n = 0;
        }
    switch (n) {
    case 7: FN(lanes_px)(7, out, px, off, wv, nt, bias, m); break;
    case 6: FN(lanes_px)(6, out, px, off, wv, nt, bias, m); break;
    case 5: FN(lanes_px)(5, out, px, off, wv, nt, bias, m); break;
    case 4: FN(lanes_px)(4, out, px, off, wv, nt, bias, m); break;
    case 3: FN(lanes_px)(3, out, px, off, wv, nt, bias, m); break;
    case 2: FN(lanes_px)(2, out, px, off, wv, nt, bias, m); break;
    case 1: FN(lanes_px)(1, out, px, off, wv, nt, bias, m); break;
    default: break;
    }
}

KATTR static void FN(dwl_fwd)(const lgeom *g, const lscratch *sc, float *out, const float *inp,
                              const float *weight, const float *bias, long planes, int c,
                              int relu) {
    int nt = g->kh * g->kw, hw = g->h * g->w, ohw = g->oh * g->ow;
    for (long p0 = 0; p0 < planes; p0 += V) {
        int np = planes - p0 < V ? (int)(planes - p0) : V;
        FN(lanes_in)(sc->xb, inp + p0 * hw, np, g->h, g->w, g->cols, g->p, g->q, 1, 1, relu);
        FN(lanes_prefetch)(inp, p0, planes, (size_t)hw);
        FN(lanes_channels)(sc->ch, p0, np, c);
        FN(lanes_weights)(sc->wv, weight, nt, sc->ch, np, 0);
        for (int l = 0; l < V; l++) sc->bv[l] = bias && l < np ? bias[sc->ch[l]] : 0.0f;
        FN(lanes_corr)(sc->ob, g->oh, g->ow, sc->xb, g->cols, g->s, sc->off, sc->wv, nt,
                       LD(sc->bv), NULL, 0, 0, 0);
        FN(lanes_out)(out + p0 * ohw, sc->ob, np, (size_t)ohw, 0);
    }
}

// For the tb taps (up to five) whose offsets are off[0..tb-1], the sums over rows y, in order,
// of dout(y, x) * the input the tap reads at output columns x0 .. x0 + nr - 1 (1..4, one chain
// each), added to s[b] in column order; dout is read from the spread buffer gb once per row for
// all tb taps.
KATTR __attribute__((always_inline)) static inline void FN(wgrad_block)(int nr, int tb,
                                                                      const lgeom *g,
                                                                      const float *xb,
                                                                      const int *off,
                                                                      const float *gb, int x0,
                                                                      VT *s) {
    size_t xs = (size_t)g->s * V;
    VT a[5][4];
    for (int b = 0; b < tb; b++)
        for (int j = 0; j < nr; j++) a[b][j] = ZERO();
    for (int y = 0; y < g->oh; y++) {
        const float *xr = xb + (size_t)y * g->s * g->cols * V + x0 * xs;
        const float *gr = gb + ((size_t)(y * g->s + g->p2) * g->cols2 + g->q2) * V + x0 * xs;
        VT gv[4];
        for (int j = 0; j < nr; j++) gv[j] = LD(gr + j * xs);
        for (int b = 0; b < tb; b++)
            for (int j = 0; j < nr; j++)
                a[b][j] = ADD(a[b][j], MUL(gv[j], LD(xr + off[b] + j * xs)));
    }
    for (int b = 0; b < tb; b++)
        for (int j = 0; j < nr; j++) s[b] = ADD(s[b], a[b][j]);
}

// The weight gradient of the np planes: dW[t] = sum over output columns x, in order, of the sum
// over rows y, in order, of dout(y, x) * the input tap t reads.  Taps go tb at a time (off has
// spare entries past nt, and wacc rows for them); the per-lane sums land in wacc.
KATTR __attribute__((always_inline)) static inline void FN(dwl_wgrad_by)(int tb, const lgeom *g,
                                                                         const lscratch *sc) {
    int nt = g->kh * g->kw;
    for (int t = 0; t < nt; t += tb) {
        VT s[5];
        for (int b = 0; b < tb; b++)
            s[b] = ZERO();
        int x0 = 0;
        for (; x0 + 4 <= g->ow; x0 += 4)
            FN(wgrad_block)(4, tb, g, sc->xb, sc->off + t, sc->gb, x0, s);
        switch (g->ow - x0) {
        case 3:
            FN(wgrad_block)(3, tb, g, sc->xb, sc->off + t, sc->gb, x0, s);
            break;
        case 2:
            FN(wgrad_block)(2, tb, g, sc->xb, sc->off + t, sc->gb, x0, s);
            break;
        case 1:
            FN(wgrad_block)(1, tb, g, sc->xb, sc->off + t, sc->gb, x0, s);
            break;
        default: break;
        }
        for (int b = 0; b < tb; b++)
            ST(sc->wacc + (size_t)(t + b) * V, s[b]);
    }
}

// The taps per pass: at AVX-512 five where they divide the kernel (5x5: five passes, not seven
// of four with three spare taps; 4-7 % less time per 14x14 and 7x7 layer), else four; two at
// narrower levels (registers).  Grouping changes no tap's sums.  (Three for a 3x3 kernel, no spare
// tap, measured no faster than four.)  The per-lane sums are then added to dweight lane by lane.
KATTR static void FN(dwl_wgrad)(const lgeom *g, const lscratch *sc, float *dweight, int np) {
    int nt = g->kh * g->kw;
    if (V < 16)
        FN(dwl_wgrad_by)(2, g, sc);
    else if (nt % 5 == 0)
        FN(dwl_wgrad_by)(5, g, sc);
    else
        FN(dwl_wgrad_by)(4, g, sc);
    for (int l = 0; l < np; l++)
        for (int t = 0; t < nt; t++) dweight[(size_t)sc->ch[l] * nt + t] += sc->wacc[t * V + l];
}

KATTR static void FN(dwl_bwd)(const lgeom *g, const lscratch *sc, float *dinp, int store,
                              float *dweight, float *dbias, const float *dout, const float *inp,
                              const float *weight, long planes, int c, int relu) {
    int nt = g->kh * g->kw, hw = g->h * g->w, ohw = g->oh * g->ow;
    for (long p0 = 0; p0 < planes; p0 += V) {
        int np = planes - p0 < V ? (int)(planes - p0) : V;
        FN(lanes_in)(sc->xb, inp + p0 * hw, np, g->h, g->w, g->cols, g->p, g->q, 1, 1, relu);
        FN(lanes_in)(sc->gb, dout + p0 * ohw, np, g->oh, g->ow, g->cols2, g->p2, g->q2, g->s,
                     g->s, 0);
        FN(lanes_prefetch)(inp, p0, planes, (size_t)hw);
        FN(lanes_prefetch)(dout, p0, planes, (size_t)ohw);
        FN(lanes_channels)(sc->ch, p0, np, c);
        if (dbias) {
            VT sum = ZERO();
            for (int y = 0; y < g->oh; y++)
                for (int x = 0; x < g->ow; x++)
                    sum = ADD(sum, LD(sc->gb + ((size_t)(y * g->s + g->p2) * g->cols2 + g->q2 +
                                               (size_t)x * g->s) * V));
            ST(sc->bv, sum);
            for (int l = 0; l < np; l++) dbias[sc->ch[l]] += sc->bv[l];
        }
        FN(dwl_wgrad)(g, sc, dweight, np);
        if (!dinp) continue;
        FN(lanes_weights)(sc->wv, weight, nt, sc->ch, np, 1);
        FN(lanes_corr)(sc->ob, g->h, g->w, sc->gb, g->cols2, 1, sc->offt, sc->wv, nt, ZERO(),
                       relu ? sc->xb : NULL, g->cols, g->p, g->q);
        FN(lanes_out)(dinp + p0 * hw, sc->ob, np, (size_t)hw, !store);
    }
}

// ----------------------------------------------------------------------------
// Pools on lanes: the row kernels' window operations (pool_window, pool_bwd in plane_kern.h),
// lane by lane, so the bits are theirs.  xb's padding holds the pool's border value (-inf for a
// maximum, zero for an average); cnt holds each output pixel's divisor.

// The window of output pixel b (its tap 0 at b + off[0]): maximum or average.
KATTR __attribute__((always_inline)) static inline VT FN(lanes_window)(int kind, const float *b,
                                                                       const int *off, int nt,
                                                                       float cnt) {
    if (kind == NAS__POOL_MAX) {
        VT best = LD(b + off[0]);
        for (int t = 1; t < nt; t++) best = MAX(LD(b + off[t]), best);
        return best;
    }
    VT acc = ZERO();
    for (int t = 0; t < nt; t++) acc = ADD(acc, LD(b + off[t]));
    return DIV(acc, SET1(cnt));
}

KATTR static void FN(pooll_fwd)(int kind, const lgeom *g, const lscratch *sc, float *out,
                                const float *inp, long planes) {
    int nt = g->kh * g->kw, hw = g->h * g->w, ohw = g->oh * g->ow;
    for (long p0 = 0; p0 < planes; p0 += V) {
        int np = planes - p0 < V ? (int)(planes - p0) : V;
        FN(lanes_in)(sc->xb, inp + p0 * hw, np, g->h, g->w, g->cols, g->p, g->q, 1, 1, 0);
        FN(lanes_prefetch)(inp, p0, planes, (size_t)hw);
        for (int y = 0; y < g->oh; y++)
            for (int x = 0; x < g->ow; x++)
                ST(sc->ob + ((size_t)y * g->ow + x) * V,
                   FN(lanes_window)(kind, sc->xb + lanes_at(g, y, x, V), sc->off, nt,
                                    sc->cnt[y * g->ow + x]));
        FN(lanes_out)(out + p0 * ohw, sc->ob, np, (size_t)ohw, 0);
    }
}

// The first tap t of the window at b (taps at b + off[t]) that holds its maximum, as the float
// t: the running maximum is MAX(x, best) tap by tap, as the forward computes it, and a tap takes
// the arg-max only when it is strictly greater, so the first of equal taps keeps it (a NaN at
// tap 0 keeps tap 0, later NaNs never take it; the same as searching the first t whose x equals
// the window's maximum).  One compare and two blends per tap, no chain through a mask of taps
// already matched.
KATTR __attribute__((always_inline)) static inline VT FN(window_argmax)(const float *b,
                                                                        const int *off, int nt) {
    VT best = LD(b + off[0]), sel = ZERO();
    for (int t = 1; t < nt; t++) {
        VT x = LD(b + off[t]);
        sel = BLEND(GT(x, best), SET1((float)t), sel);
        best = MAX(x, best);
    }
    return sel;
}

// The max-pool input gradient of the whole lane plane: pixel (y, x) sums, tap by tap, the
// spread gradient where the spread arg-max plane sb names that tap (flipped: nt - 1 - t).
KATTR static void FN(lanes_selcorr)(float *out, const lgeom *g, const float *gb, const float *sb,
                                    const int *offt, int nt) {
    for (int y = 0; y < g->h; y++)
        for (int x = 0; x < g->w; x++) {
            size_t i = ((size_t)y * g->cols2 + x) * V;
            VT a = ZERO();
            for (int t = 0; t < nt; t++)
                a = ADD(a, MSEL(EQ(LD(sb + i + offt[t]), SET1((float)(nt - 1 - t))),
                                LD(gb + i + offt[t])));
            ST(out + ((size_t)y * g->w + x) * V, a);
        }
}

// As pool_bwd: a maximum records each window's first arg-max tap in sb (spread like the
// gradient); an average divides the spread gradient by the counts and correlates with unit
// taps (wv holds ones).
KATTR static void FN(pooll_bwd)(int kind, const lgeom *g, const lscratch *sc, float *dinp,
                                int store, const float *dout, const float *inp, long planes) {
    int nt = g->kh * g->kw, hw = g->h * g->w, ohw = g->oh * g->ow;
    for (long p0 = 0; p0 < planes; p0 += V) {
        int np = planes - p0 < V ? (int)(planes - p0) : V;
        FN(lanes_in)(sc->gb, dout + p0 * ohw, np, g->oh, g->ow, g->cols2, g->p2, g->q2, g->s,
                     g->s, 0);
        FN(lanes_prefetch)(dout, p0, planes, (size_t)ohw);
        if (kind == NAS__POOL_MAX) {
            FN(lanes_in)(sc->xb, inp + p0 * hw, np, g->h, g->w, g->cols, g->p, g->q, 1, 1, 0);
            FN(lanes_prefetch)(inp, p0, planes, (size_t)hw);
            for (int y = 0; y < g->oh; y++)
                for (int x = 0; x < g->ow; x++) {
                    VT sel = FN(window_argmax)(sc->xb + lanes_at(g, y, x, V), sc->off, nt);
                    ST(sc->sb + ((size_t)(y * g->s + g->p2) * g->cols2 + g->q2 +
                                 (size_t)x * g->s) * V, sel);
                }
            FN(lanes_selcorr)(sc->ob, g, sc->gb, sc->sb, sc->offt, nt);
        } else {
            for (int y = 0; y < g->oh; y++)
                for (int x = 0; x < g->ow; x++) {
                    float *q = sc->gb + ((size_t)(y * g->s + g->p2) * g->cols2 + g->q2 +
                                         (size_t)x * g->s) * V;
                    ST(q, DIV(LD(q), SET1(sc->cnt[y * g->ow + x])));
                }
            FN(lanes_corr)(sc->ob, g->h, g->w, sc->gb, g->cols2, 1, sc->offt, sc->wv, nt, ZERO(),
                           NULL, 0, 0, 0);
        }
        FN(lanes_out)(dinp + p0 * hw, sc->ob, np, (size_t)hw, !store);
    }
}
