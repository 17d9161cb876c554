/*
 * plane_kern.h - the body of the vectorized plane kernels, included by
 * plane.c once per instruction set.  The includer defines the vector type VT
 * of V lanes, its operations (LD/ST, the masked tails LDN/STN, SET1, ZERO,
 * ADD, MUL, DIV, MAX(a, b) = a > b ? a : b), a lane-mask type MT with EQ, GT(a, b) = a > b,
 * GTZ(v) = v > 0, BLEND(m, a, b) = m ? a : b and MSEL(m, v) = v where m else 0, TR(r) transposing
 * the V x V floats of the vectors r[0..V-1] in registers (for plane_lanes.h), the function
 * attribute KATTR and the name suffix FN(x).
 *
 * Each output element is computed by the same operations in the same order
 * at every V: vectors run across the columns of one output row, and lanes
 * past a row's end are computed but never stored or summed.  The file
 * undefines the includer's macros at its end, ready for the next level.
 */

// The correlation of nr (1 or 4) output rows: out[r][ox] = bias + sum over taps t, in order,
// of w[t] * buf[r*rs + off[t] + ox] (with add, out[r][ox] + that).  Four rows at once give four
// independent addition chains, so the adds' latency does not bound the loop.  sel, when not
// NULL, makes it the max-pool gradient instead: tap t adds buf's value only where the plane
// sel (same layout) holds the window's arg-max tap nt - 1 - t (see pool_bwd).  mask, when not
// NULL, is a plane laid out like out whose non-positive pixels zero the result (the gradient
// through a fused ReLU, whose input mask is): out = mask > 0 ? result : 0, or out + that.
KATTR __attribute__((always_inline)) static inline void
FN(corr_rows)(int nr, float *out, int ldo, int ow, const float *buf, const float *sel, size_t rs,
              const int *off, const float *w, int nt, float bias, int add, const float *mask) {
    for (int c0 = 0; c0 < ow; c0 += V) {
        VT a[4];
        for (int r = 0; r < nr; r++) a[r] = SET1(bias);
        for (int t = 0; t < nt; t++) {
            const float *b = buf + off[t] + c0;
            if (sel) {
                const float *q = sel + off[t] + c0;
                VT tv = SET1((float)(nt - 1 - t));
                for (int r = 0; r < nr; r++)
                    a[r] = ADD(a[r], MSEL(EQ(LD(q + r * rs), tv), LD(b + r * rs)));
                continue;
            }
            VT wv = SET1(w[t]);
            for (int r = 0; r < nr; r++) a[r] = ADD(a[r], MUL(wv, LD(b + r * rs)));
        }
        for (int r = 0; r < nr; r++) {
            float *o = out + (size_t)r * ldo + c0;
            const float *m = mask ? mask + (size_t)r * ldo + c0 : NULL;
            if (ow - c0 >= V) {
                VT v = m ? MSEL(GTZ(LD(m)), a[r]) : a[r];
                ST(o, add ? ADD(LD(o), v) : v);
            } else {
                int n = ow - c0;
                VT v = m ? MSEL(GTZ(LDN(m, n)), a[r]) : a[r];
                STN(o, add ? ADD(LDN(o, n), v) : v, n);
            }
        }
    }
}

// A whole plane of oh x ow outputs, row oy reading buf + oy*rs.
KATTR static void FN(corr)(float *out, int oh, int ow, const float *buf, const float *sel,
                           size_t rs, const int *off, const float *w, int nt, float bias, int add,
                           const float *mask) {
    int oy = 0;
    for (; oy + 4 <= oh; oy += 4)
        FN(corr_rows)(4, out + (size_t)oy * ow, ow, ow, buf + oy * rs, sel ? sel + oy * rs : NULL,
                      rs, off, w, nt, bias, add, mask ? mask + (size_t)oy * ow : NULL);
    for (; oy < oh; oy++)
        FN(corr_rows)(1, out + (size_t)oy * ow, ow, ow, buf + oy * rs, sel ? sel + oy * rs : NULL,
                      rs, off, w, nt, bias, add, mask ? mask + (size_t)oy * ow : NULL);
}

// A fused ReLU, x > 0 ? x : 0 as nas_relu_forward writes it, over the input rows of a filled
// buffer (whole rows: the padding and slack are zeros, which it keeps), vector by vector.
KATTR static void FN(relu_rows)(const pgeom *g, float *buf) {
    for (int ph = 0; ph < g->s; ph++)
        for (int r = g->p; r < g->p + g->h; r++) {
            float *row = buf + ((size_t)ph * g->rows + r) * g->wq;
            for (int c0 = 0; c0 < g->wq; c0 += V) {
                VT v = LD(row + c0);
                ST(row + c0, MSEL(GTZ(v), v));
            }
        }
}

KATTR static void FN(dw_fwd)(const pgeom *g, const scratch *sc, float *out, const float *inp,
                             const float *weight, const float *bias, long planes, int c,
                             int relu) {
    int nt = g->kh * g->kw;
    for (long p = 0; p < planes; p++) {
        int ch = (int)(p % c);
        plane_fill(g, sc->xb, inp + p * g->h * g->w);
        if (relu) FN(relu_rows)(g, sc->xb);
        FN(corr)(out + p * g->oh * g->ow, g->oh, g->ow, sc->xb, NULL, (size_t)g->s * g->wq,
                 sc->off, weight + (size_t)ch * nt, nt, bias ? bias[ch] : 0.0f, 0, NULL);
    }
}

// The weight-gradient sums of nb taps t0.. (nb <= 9: one accumulator each and the output
// gradient's vector in registers) for the columns c0..: sum over output rows, in order, of
// dout * the input the tap reads, stored to the taps' rows of acc.
KATTR __attribute__((always_inline)) static inline void
FN(wgrad_taps)(int nb, const pgeom *g, const scratch *sc, const float *go, int t0, int c0) {
    int n = g->ow - c0, off[9];
    size_t rs = (size_t)g->s * g->wq;
    VT a[9];
    for (int b = 0; b < nb; b++)
        a[b] = ZERO(), off[b] = sc->off[t0 + b];
    for (int oy = 0; oy < g->oh; oy++) {
        const float *gr = go + (size_t)oy * g->ow + c0, *xr = sc->xb + oy * rs + c0;
        VT gv = n >= V ? LD(gr) : LDN(gr, n);
        for (int b = 0; b < nb; b++)
            a[b] = ADD(a[b], MUL(gv, LD(xr + off[b])));
    }
    for (int b = 0; b < nb; b++)
        ST(sc->acc + (size_t)(t0 + b) * g->owv + c0, a[b]);
}

// The weight gradient of one plane: dW[t] = sum over pixels of dout * the input tap t reads,
// kept as one partial sum per output column and summed in column order at the end.  Up to nine
// taps share one pass over the rows (a 3x3 kernel one pass, 5x5 three, 7x7 six), each its own
// chain; how taps are grouped does not change any tap's sums.
KATTR static void FN(dw_wgrad)(const pgeom *g, const scratch *sc, float *dw, const float *go) {
    int nt = g->kh * g->kw;
    for (int c0 = 0; c0 < g->ow; c0 += V) {
        for (int t = 0; t < nt; t += 9) {
            switch (nt - t < 9 ? nt - t : 9) {
            case 9:
                FN(wgrad_taps)(9, g, sc, go, t, c0);
                break;
            case 8:
                FN(wgrad_taps)(8, g, sc, go, t, c0);
                break;
            case 7:
                FN(wgrad_taps)(7, g, sc, go, t, c0);
                break;
            case 6:
                FN(wgrad_taps)(6, g, sc, go, t, c0);
                break;
            case 5:
                FN(wgrad_taps)(5, g, sc, go, t, c0);
                break;
            case 4:
                FN(wgrad_taps)(4, g, sc, go, t, c0);
                break;
            case 3:
                FN(wgrad_taps)(3, g, sc, go, t, c0);
                break;
            case 2:
                FN(wgrad_taps)(2, g, sc, go, t, c0);
                break;
            default:
                FN(wgrad_taps)(1, g, sc, go, t, c0);
                break;
            }
        }
    }
    for (int t = 0; t < nt; t++) dw[t] += plane_sum(sc->acc + (size_t)t * g->owv, g->ow);
}

// The depthwise backward: the weight gradient as above, and the input gradient as the
// stride-1 correlation of dout spread into the buffer gb (gpad_spread) with the flipped kernel,
// masked by the input's sign when a ReLU is fused in front.
KATTR static void FN(dw_bwd)(const pgeom *g, const scratch *sc, float *dinp, int store,
                             float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, long planes, int c, int relu) {
    int nt = g->kh * g->kw, ohw = g->oh * g->ow;
    for (long p = 0; p < planes; p++) {
        int ch = (int)(p % c);
        const float *go = dout + p * ohw, *w = weight + (size_t)ch * nt;
        const float *x = inp + p * g->h * g->w;
        plane_fill(g, sc->xb, x);
        if (relu) FN(relu_rows)(g, sc->xb);
        if (dbias) dbias[ch] += plane_sum(go, ohw);
        FN(dw_wgrad)(g, sc, dweight + (size_t)ch * nt, go);
        if (!dinp) continue;
        for (int t = 0; t < nt; t++) sc->wt[t] = w[nt - 1 - t];
        gpad_spread(g, sc->gb, go, g->ow, NULL);
        FN(corr)(dinp + p * g->h * g->w, g->h, g->w, sc->gb, NULL, (size_t)g->wq2, sc->offt,
                 sc->wt, nt, 0.0f, !store, relu ? x : NULL);
    }
}

// The window's maximum (taps in order, the first of equals kept) or average (taps summed in
// order, divided by the count of real pixels in cnt) for columns c0.. of one output row.
KATTR static inline VT FN(pool_window)(int kind, const float *row, const int *off, int nt,
                                       const float *cnt, int c0) {
    if (kind == NAS__POOL_MAX) {
        VT best = LD(row + off[0] + c0);
        for (int t = 1; t < nt; t++) best = MAX(LD(row + off[t] + c0), best);
        return best;
    }
    VT acc = ZERO();
    for (int t = 0; t < nt; t++) acc = ADD(acc, LD(row + off[t] + c0));
    return DIV(acc, LD(cnt + c0));
}

KATTR static void FN(pool_fwd)(int kind, const pgeom *g, const scratch *sc, float *out,
                               const float *inp, long planes) {
    int nt = g->kh * g->kw, ow = g->ow;
    for (long p = 0; p < planes; p++) {
        plane_fill(g, sc->xb, inp + p * g->h * g->w);
        float *o = out + p * g->oh * ow;
        for (int oy = 0; oy < g->oh; oy++) {
            const float *row = sc->xb + (size_t)oy * g->s * g->wq;
            const float *cr = sc->cnt + (size_t)oy * g->owv;
            for (int c0 = 0; c0 < ow; c0 += V) {
                VT v = FN(pool_window)(kind, row, sc->off, nt, cr, c0);
                if (ow - c0 >= V)
                    ST(o + oy * ow + c0, v);
                else
                    STN(o + oy * ow + c0, v, ow - c0);
            }
        }
    }
}

// Pool backward as a correlation, like the depthwise input gradient: an average spreads
// dout / count (gpad_spread divides) with unit taps; a maximum first records each window's
// arg-max tap (the first tap equal to its maximum) in the plane sel, spread into sb beside
// dout in gb, and a tap adds dout only where it was the arg-max.
KATTR static void FN(pool_bwd)(int kind, const pgeom *g, const scratch *sc, float *dinp,
                               int store, const float *dout, const float *inp, long planes) {
    int nt = g->kh * g->kw, ow = g->ow;
    for (long p = 0; p < planes; p++) {
        const float *go = dout + p * g->oh * ow;
        if (kind == NAS__POOL_MAX) {
            plane_fill(g, sc->xb, inp + p * g->h * g->w);
            for (int oy = 0; oy < g->oh; oy++) {
                const float *row = sc->xb + (size_t)oy * g->s * g->wq;
                for (int c0 = 0; c0 < ow; c0 += V) {
                    ST(sc->acc + (size_t)oy * g->owv + c0,
                       FN(window_argmax)(row + c0, sc->off, nt));
                }
            }
            gpad_spread(g, sc->sb, sc->acc, g->owv, NULL);
        }
        gpad_spread(g, sc->gb, go, g->ow, kind == NAS__POOL_AVG ? sc->cnt : NULL);
        FN(corr)(dinp + p * g->h * g->w, g->h, g->w, sc->gb,
                 kind == NAS__POOL_MAX ? sc->sb : NULL, (size_t)g->wq2, sc->offt, sc->ones, nt,
                 0.0f, !store, NULL);
    }
}

#undef KATTR
#undef FN
#undef VT
#undef V
#undef LD
#undef LDN
#undef ST
#undef STN
#undef SET1
#undef ZERO
#undef ADD
#undef MUL
#undef DIV
#undef MAX
#undef MT
#undef EQ
#undef GTZ
#undef GT
#undef BLEND
#undef MSEL
#undef TR
