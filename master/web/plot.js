/*
 * plot.js - small canvas plots for the nasd dashboard: points, lines and
 * steps on linear or log axes.  The scatter (up to every evaluation) is
 * always drawn here; the line charts use uPlot when the build embedded it
 * (see app.js) and this otherwise, so the page works without npm.
 */
'use strict';

const NasPlot = (() => {
  const PAD = { l: 56, r: 12, t: 8, b: 30 };

  // Round tick steps (1, 2, 5 x 10^k) across [lo, hi].
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }

  function fmt(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toPrecision(3) + 'G';
    if (a >= 1e6) return (v / 1e6).toPrecision(3) + 'M';
    if (a >= 1e4) return (v / 1e3).toPrecision(3) + 'k';
    return Number(v.toPrecision(4)).toString();
  }

  function create(el, opts) {
    const canvas = document.createElement('canvas');
    el.appendChild(canvas);
    let series = [];
    const o = Object.assign({ logx: false, xlabel: '', ylabel: '' }, opts);

    function draw() {
      const w = el.clientWidth, h = el.clientHeight, dpr = window.devicePixelRatio || 1;
      if (w <= 0 || h <= 0) return;
      canvas.width = w * dpr;
      canvas.height = h * dpr;
      canvas.style.width = w + 'px';
      canvas.style.height = h + 'px';
      const g = canvas.getContext('2d');
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, h);
      const tx = (v) => (o.logx ? Math.log10(Math.max(v, 1e-12)) : v);
      let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      for (const s of series) {
        for (let i = 0; i < s.xs.length; i++) {
          const x = tx(s.xs[i]), y = s.ys[i];
          if (!isFinite(x) || y == null || !isFinite(y)) continue;
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
      if (!isFinite(x0)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
      if (x1 === x0) { x1 = x0 + 1; }
      if (y1 === y0) { y0 -= 0.01; y1 += 0.01; }
      const pw = w - PAD.l - PAD.r, ph = h - PAD.t - PAD.b;
      const px = (v) => PAD.l + ((tx(v) - x0) / (x1 - x0)) * pw;
      const py = (v) => PAD.t + (1 - (v - y0) / (y1 - y0)) * ph;
      g.strokeStyle = '#ccd';
      g.fillStyle = '#556';
      g.font = '11px system-ui, sans-serif';
      g.lineWidth = 1;
      for (const v of ticks(y0, y1, 5)) {
        const y = py(v);
        g.beginPath(); g.moveTo(PAD.l, y); g.lineTo(w - PAD.r, y); g.stroke();
        g.textAlign = 'right'; g.fillText(fmt(v), PAD.l - 4, y + 4);
      }
      for (const v of ticks(x0, x1, 6)) {
        const x = PAD.l + ((v - x0) / (x1 - x0)) * pw;
        g.beginPath(); g.moveTo(x, PAD.t); g.lineTo(x, h - PAD.b); g.stroke();
        g.textAlign = 'center';
        g.fillText(o.logx ? fmt(Math.pow(10, v)) : o.xfmt ? o.xfmt(v) : fmt(v), x, h - PAD.b + 14);
      }
      g.textAlign = 'center';
      g.fillText(o.xlabel, PAD.l + pw / 2, h - 2);
      for (const s of series) {
        g.strokeStyle = g.fillStyle = s.color || '#3366cc';
        if (s.mode === 'points') {
          g.globalAlpha = s.alpha || 0.5;
          const r = s.size || 2;
          // Every point costs a draw, and 100,000 of them on a few
          // hundred pixels mostly cover each other: after three at
          // alpha 0.5 a pixel is nearly opaque, so later ones on the same
          // pixel are skipped.  The picture stays the same; a redraw costs
          // the pixels, not the evaluations.
          const hits = new Uint8Array(Math.ceil(w) * Math.ceil(h) + 1), cw = Math.ceil(w);
          for (let i = 0; i < s.xs.length; i++) {
            if (s.ys[i] == null) continue;
            const x = px(s.xs[i]), y = py(s.ys[i]);
            const cell = Math.round(y) * cw + Math.round(x);
            if (cell >= 0 && cell < hits.length && hits[cell]++ >= 3) continue;
            g.fillRect(x - r / 2, y - r / 2, r, r);
          }
          g.globalAlpha = 1;
          continue;
        }
        g.lineWidth = s.width || 1.5;
        g.beginPath();
        let started = false, lastY = 0;
        for (let i = 0; i < s.xs.length; i++) {
          if (s.ys[i] == null) { started = false; continue; }
          const x = px(s.xs[i]), y = py(s.ys[i]);
          if (!started) { g.moveTo(x, y); started = true; }
          else { if (s.mode === 'step') g.lineTo(x, lastY); g.lineTo(x, y); }
          lastY = y;
        }
        g.stroke();
      }
    }

    const ro = new ResizeObserver(() => draw());
    ro.observe(el);
    return {
      set(s) { series = s; draw(); },
    };
  }

  return { create, fmt };
})();
