/*
 * app.js - the nasd dashboard (served by `nasctl serve`).
 *
 * Data: /api/columns for the newest FIRST_ROWS results (the page is
 * interactive once they are in the table), then the older ones behind them,
 * then the genome texts; after that only the rows after the last one each
 * time the event stream (/events) announces a result.  The table is virtual: it keeps an index array of the rows
 * that pass the filters, in sort order, and creates DOM rows only for the
 * ~30 visible ones, so 100,000 results scroll like 100.
 */
'use strict';

const ROW_H = 22;
const FIRST_ROWS = 2000; // the newest results, loaded before anything else
const PACK_ROWS = 1 << 20; // rows the native sort handles (a comparator sorts more)
const KEY_STEPS = 2 ** 33; // 2^33 * 2^20 < 2^53: the packed doubles are exact
const S = {
  c: null, n: 0, base: 0, end: 0, workers: [], view: new Int32Array(0), viewN: 0, sort: 'seq', desc: true,
  sel: [], curves: {}, status: null, fresh: new Set(), perf: {}, front: [], frontN: 0,
};

async function getJSON(url) {
  const r = await fetch(url, { credentials: 'same-origin' });
  if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
  return r.json();
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  return e;
}

// ---- charts: uPlot where the build embedded it, plot.js otherwise ------------------------

function lineChart(node, opts) {
  if (typeof window.uPlot !== 'function') return NasPlot.create(node, opts);
  let u = null;
  let shape = '';
  const make = (data, nseries) => {
    // Same series as drawn: new data only (a new chart costs far more).
    const key = nseries + ':' + (opts.labels || []).join(',');
    if (u && key === shape) { u.setData(data); return; }
    shape = key;
    if (u) u.destroy();
    const series = [{}];
    for (let i = 0; i < nseries; i++) {
      series.push({ stroke: ['#3366cc', '#dc3912', '#ff9900', '#109618', '#990099', '#0099c6'][i % 6],
        width: 1.5, spanGaps: true, label: opts.labels ? opts.labels[i] : 'y' + i });
    }
    u = new window.uPlot({
      width: node.clientWidth || 400, height: (node.clientHeight || 240) - 30,
      scales: { x: { time: !!opts.time } }, series,
      axes: [{ label: opts.xlabel }, { label: opts.ylabel }],
      legend: { show: !!opts.labels },
    }, data, node);
  };
  new ResizeObserver(() => { if (u) u.setSize({ width: node.clientWidth, height: node.clientHeight - 30 }); })
    .observe(node);
  return {
    // Same input as NasPlot: series of {xs, ys}; uPlot wants one shared x.
    set(series) {
      if (series.length === 1) { make([series[0].xs, series[0].ys], 1); return; }
      const xs = [...new Set(series.flatMap((s) => Array.from(s.xs)))].sort((a, b) => a - b);
      const data = [xs];
      for (const s of series) {
        const m = new Map();
        s.xs.forEach((x, i) => m.set(x, s.ys[i]));
        data.push(xs.map((x) => (m.has(x) ? m.get(x) : null)));
      }
      opts.labels = series.map((s) => s.label);
      make(data, series.length);
    },
  };
}

const charts = {};

// uPlot arrives on its own (an async script): the first screen is the
// table, and nothing waits for the charting library until the charts are
// first drawn, once every row is in.
const uplotReady = new Promise((resolve) => {
  const tag = document.getElementById('uplot-js');
  if (typeof window.uPlot === 'function' || !tag) { resolve(); return; }
  tag.addEventListener('load', resolve);
  tag.addEventListener('error', resolve);
});
let chartsMade = null;
function makeCharts() {
  chartsMade ||= uplotReady.then(() => {
    charts.evals = lineChart(document.getElementById('best-evals'), { xlabel: 'evaluations', ylabel: 'accuracy' });
    charts.time = lineChart(document.getElementById('best-time'), { xlabel: 'time', ylabel: 'accuracy', time: true });
    charts.scatter = NasPlot.create(document.getElementById('scatter'), { xlabel: 'parameters', ylabel: 'accuracy', logx: true });
    charts.curves = lineChart(document.getElementById('curves'), { xlabel: 'epoch', ylabel: 'validation accuracy' });
  });
  return chartsMade;
}

function bestSoFar() {
  const c = S.c, xs = [], ts = [], ys = [];
  let best = -Infinity, k = 0;
  for (let i = 0; i < S.n; i++) {
    if (c.stage[i] !== 0) continue;
    k++;
    if (c.acc[i] > best || i === S.n - 1) {
      best = Math.max(best, c.acc[i]);
      xs.push(k); ts.push(c.t[i] / 1000); ys.push(best);
    }
  }
  return { xs, ts, ys };
}

// Front of (accuracy up, parameters down): by params ascending, a point
// is on it when it beats every smaller model.  Kept between draws: the
// front of all rows is the front of the last front and the rows since
// (S.front holds its row numbers for rows 0..S.frontN - 1; fetchOlder,
// which renumbers the rows, clears it).
function paretoFront() {
  const c = S.c, idx = S.front.slice();
  for (let i = S.frontN; i < S.n; i++) if (c.stage[i] === 0) idx.push(i);
  idx.sort((a, b) => c.params[a] - c.params[b] || c.acc[b] - c.acc[a]);
  const xs = [], ys = [], front = [];
  let best = -Infinity;
  for (const i of idx) if (c.acc[i] > best) { best = c.acc[i]; front.push(i); xs.push(c.params[i]); ys.push(c.acc[i]); }
  S.front = front;
  S.frontN = S.n;
  return { xs, ys };
}

function drawCharts() {
  const b = bestSoFar();
  charts.evals.set([{ xs: b.xs, ys: b.ys, mode: 'step', label: 'best' }]);
  charts.time.set([{ xs: b.ts, ys: b.ys, mode: 'step', label: 'best' }]);
  const c = S.c, sx = [], sy = [];
  for (let i = 0; i < S.n; i++) if (c.stage[i] === 0) { sx.push(c.params[i]); sy.push(c.acc[i]); }
  const f = paretoFront();
  charts.scatter.set([
    { xs: sx, ys: sy, mode: 'points', color: '#3366cc', alpha: 0.5, size: 3 },
    { xs: f.xs, ys: f.ys, mode: 'step', color: '#d62728', width: 2 },
  ]);
}

function drawCurves() {
  const series = S.sel.filter((t) => S.curves[t]).map((t) => {
    const y = S.curves[t];
    return { xs: y.map((_, i) => i + 1), ys: y, mode: 'line', label: 'task ' + t };
  });
  charts.curves.set(series);
  document.getElementById('curve-tasks').textContent =
    S.sel.length ? '(tasks ' + S.sel.join(', ') + ')' : '(click rows of the table)';
}

// ---- the cell: our DOT dialect, laid out in columns by longest path ------------------

function drawCell(dot, task) {
  const box = document.getElementById('cell');
  box.textContent = '';
  document.getElementById('cell-task').textContent = task != null ? '(task ' + task + ')' : '';
  if (!dot) { box.textContent = 'no drawing for this genome'; return; }
  const nodes = new Map(), edges = [], clusters = [];
  let cluster = null;
  for (const line of dot.split('\n')) {
    let m;
    if ((m = line.match(/^\s*subgraph (\w+)/))) { cluster = { id: m[1], label: m[1], nodes: [] }; clusters.push(cluster); }
    else if ((m = line.match(/^\s*label="([^"]*)";/)) && cluster) cluster.label = m[1];
    else if ((m = line.match(/^\s*(\w+) -> (\w+)(?: \[label="([^"]*)"\])?;/))) edges.push({ a: m[1], b: m[2], label: m[3] || '' });
    else if ((m = line.match(/^\s*(\w+) \[label="([^"]*)", shape=(\w+)\];/))) {
      nodes.set(m[1], { id: m[1], label: m[2], shape: m[3], layer: 0 });
      if (cluster) cluster.nodes.push(m[1]);
    }
  }
  for (let pass = 0; pass < nodes.size; pass++)
    for (const e of edges) {
      const a = nodes.get(e.a), b = nodes.get(e.b);
      if (a && b && b.layer < a.layer + 1) b.layer = a.layer + 1;
    }
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('id', 'cell-svg');
  const W = 110, H = 46, pos = new Map();
  let y0 = 10, width = 0;
  for (const cl of clusters) {
    const layers = [];
    for (const id of cl.nodes) (layers[nodes.get(id).layer] ||= []).push(id);
    let rows = 0;
    layers.forEach((ids, l) => ids.forEach((id, r) => { pos.set(id, [30 + l * W, y0 + 36 + r * H]); rows = Math.max(rows, r + 1); }));
    const t = document.createElementNS(NS, 'text');
    t.setAttribute('x', 4); t.setAttribute('y', y0 + 8); t.textContent = cl.label;
    svg.appendChild(t);
    width = Math.max(width, 40 + layers.length * W);
    y0 += 40 + rows * H;
  }
  // An edge between neighbouring layers is a straight line; one that
  // skips layers arcs above the row, higher the more it skips, so that
  // the edges of a dense cell (NB201: every pair) and their labels stay
  // apart.
  const arcs = [];
  for (const e of edges) {
    const a = pos.get(e.a), b = pos.get(e.b);
    if (!a || !b) continue;
    const span = Math.max(1, Math.round(Math.abs(b[0] - a[0]) / W));
    const lift = 26 * (span - 1);
    const mx = (a[0] + b[0]) / 2, my = (a[1] + b[1]) / 2 - lift;
    arcs.push(my);
    const path = document.createElementNS(NS, 'path');
    path.setAttribute('d', 'M' + (a[0] + 16) + ' ' + a[1] + ' Q' + mx + ' ' + (my - lift) + ' ' + (b[0] - 16) + ' ' + b[1]);
    path.setAttribute('stroke', '#889');
    path.setAttribute('fill', 'none');
    svg.appendChild(path);
    if (e.label) {
      const t = document.createElementNS(NS, 'text');
      t.setAttribute('x', mx); t.setAttribute('y', my - 3);
      t.setAttribute('text-anchor', 'middle'); t.setAttribute('fill', '#335');
      t.textContent = e.label;
      svg.appendChild(t);
    }
  }
  for (const [id, p] of pos) {
    const n = nodes.get(id);
    const shape = document.createElementNS(NS, n.shape === 'circle' ? 'circle' : 'rect');
    if (n.shape === 'circle') { shape.setAttribute('cx', p[0]); shape.setAttribute('cy', p[1]); shape.setAttribute('r', 14); }
    else { shape.setAttribute('x', p[0] - 20); shape.setAttribute('y', p[1] - 11); shape.setAttribute('width', 40); shape.setAttribute('height', 22); }
    shape.setAttribute('fill', '#eef3ff'); shape.setAttribute('stroke', '#3366cc');
    svg.appendChild(shape);
    const t = document.createElementNS(NS, 'text');
    t.setAttribute('x', p[0]); t.setAttribute('y', p[1] + 4); t.setAttribute('text-anchor', 'middle');
    t.textContent = n.label;
    svg.appendChild(t);
  }
  const top = Math.min(0, ...arcs.map((y) => y - 16));
  svg.setAttribute('viewBox', '0 ' + top + ' ' + width + ' ' + (y0 - top));
  box.appendChild(svg);
}

async function selectTask(task) {
  const i = S.sel.indexOf(task);
  if (i >= 0) S.sel.splice(i, 1);
  else { S.sel.push(task); if (S.sel.length > 6) S.sel.shift(); }
  renderRows();
  const t = await getJSON('/api/task/' + task);
  await makeCharts();
  S.curves[task] = t.curve || [];
  drawCurves();
  drawCell(t.dot, task);
}

// ---- the virtual table -------------------------------------------------------------------

const COLS = [
  { k: 'seq', label: 'seq' }, { k: 'task', label: 'task' },
  { k: 'acc', label: 'accuracy', f: (v) => v.toFixed(4) },
  { k: 'params', label: 'params', f: (v) => v.toLocaleString() },
  { k: 'macs', label: 'MACs', f: (v) => v.toLocaleString() },
  { k: 'sec', label: 'seconds', f: (v) => v.toFixed(1) },
  { k: 'worker', label: 'worker', f: (v) => S.workers[v] || '?' },
  { k: 'stage', label: 'stage', f: (v) => (v ? 'final' : 'search') },
  { k: 'arch', label: 'genome' },
];

function buildHead() {
  const head = document.getElementById('thead');
  head.textContent = '';
  for (const col of COLS) {
    const d = el('div', { 'data-col': col.k }, col.label);
    if (col.k === S.sort) d.className = S.desc ? 'desc' : 'asc';
    d.addEventListener('click', () => {
      if (S.sort === col.k) S.desc = !S.desc; else { S.sort = col.k; S.desc = col.k !== 'params' && col.k !== 'macs'; }
      buildHead();
      applyView();
    });
    head.appendChild(d);
  }
}

// The filters as they stand, as one predicate over row numbers.
function rowFilter() {
  const c = S.c, text = document.getElementById('f-text').value.trim();
  const w = document.getElementById('f-worker').value, st = document.getElementById('f-stage').value;
  const minAcc = parseFloat(document.getElementById('f-acc').value);
  const wi = w === '' ? -1 : S.workers.indexOf(w), si = st === '' ? -1 : +st;
  return (i) => !((wi >= 0 && c.worker[i] !== wi) || (si >= 0 && c.stage[i] !== si) ||
    (minAcc >= 0 && !(c.acc[i] >= minAcc)) || (text && c.arch[i].indexOf(text) < 0));
}

// The table's order as a comparator: the sort column, then completion
// order (what the full sort below gives ties).
function rowOrder() {
  const key = S.c[S.sort], sign = S.desc ? -1 : 1;
  if (S.sort === 'worker') {
    return (a, b) => { const x = S.workers[key[a]], y = S.workers[key[b]]; return x < y ? -sign : x > y ? sign : a - b; };
  }
  if (S.sort === 'arch') return (a, b) => (key[a] < key[b] ? -sign : key[a] > key[b] ? sign : a - b);
  return (a, b) => sign * (key[a] - key[b]) || a - b;
}

// Rows S.viewN..S.n - 1 (new results) into the sorted view without sorting
// it again: the new rows that pass the filters are sorted among
// themselves and each is placed by binary search, the held view copied
// around them.  A live update then costs its new rows, not the table.
function extendView() {
  const t0 = performance.now(), from = S.viewN;
  const ok = rowFilter(), cmp = rowOrder(), add = [];
  for (let i = from; i < S.n; i++) if (ok(i)) add.push(i);
  add.sort(cmp);
  const v = S.view, out = new Int32Array(v.length + add.length);
  let i = 0, k = 0;
  for (const x of add) {
    let lo = i, hi = v.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cmp(v[mid], x) <= 0) lo = mid + 1; else hi = mid; }
    out.set(v.subarray(i, lo), k);
    k += lo - i;
    i = lo;
    out[k++] = x;
  }
  out.set(v.subarray(i), k);
  S.view = out;
  S.viewN = S.n;
  S.perf.extendMs = performance.now() - t0;
  showCount();
  renderRows();
}

function showCount() {
  const k = S.view.length;
  document.getElementById('table-count').textContent = '(' + k.toLocaleString() + ' of ' + S.n.toLocaleString() +
    (S.base ? '; loading ' + S.base.toLocaleString() + ' older' : '') + ')';
  document.getElementById('tspacer').style.height = k * ROW_H + 'px';
}

// Filter, then sort the surviving row numbers by the chosen column.
function applyView() {
  const t0 = performance.now();
  const c = S.c, ok = rowFilter();
  const view = new Int32Array(S.n);
  let k = 0;
  for (let i = 0; i < S.n; i++) if (ok(i)) view[k++] = i;
  let v = view.subarray(0, k);
  const key = c[S.sort], sign = S.desc ? -1 : 1;
  if (S.sort === 'arch' || S.sort === 'worker') {
    const name = S.sort === 'worker' ? (i) => S.workers[key[i]] : (i) => key[i];
    v = Int32Array.from(Array.from(v).sort((a, b) => {
      const x = name(a), y = name(b);
      return x < y ? -sign : x > y ? sign : a - b;
    }));
  } else if (k < PACK_ROWS) {
    // Numbers sort natively, without a comparator: each row becomes one
    // double holding its key, mapped onto 0..2^33 in order (reversed for
    // descending), times 2^20, plus its position in the view, which both
    // breaks ties in completion order and says which row it was.  The
    // mapping keeps order exactly for integers up to 2^33 apart and to
    // 1e-10 for accuracies: far finer than anything shown.
    let lo = Infinity, hi = -Infinity;
    for (let j = 0; j < k; j++) { const x = key[v[j]]; if (x < lo) lo = x; if (x > hi) hi = x; }
    const span = hi > lo ? hi - lo : 1, top = KEY_STEPS - 1;
    const scale = span <= top && Number.isInteger(lo) && Number.isInteger(hi) ? 1 : top / span;
    const packed = new Float64Array(k);
    for (let j = 0; j < k; j++) {
      let q = Math.floor((key[v[j]] - lo) * scale);
      if (!(q >= 0)) q = 0; else if (q > top) q = top;
      packed[j] = (S.desc ? top - q : q) * PACK_ROWS + j;
    }
    packed.sort();
    const out = new Int32Array(k);
    for (let j = 0; j < k; j++) out[j] = v[packed[j] % PACK_ROWS];
    v = out;
  } else {
    const keys = new Float64Array(k);
    for (let j = 0; j < k; j++) keys[j] = sign * key[v[j]];
    const order = new Int32Array(k);
    for (let j = 0; j < k; j++) order[j] = j;
    order.sort((a, b) => keys[a] - keys[b] || a - b);
    const out = new Int32Array(k);
    for (let j = 0; j < k; j++) out[j] = v[order[j]];
    v = out;
  }
  S.view = v;
  S.viewN = S.n; // the rows the view has considered
  S.perf.sortMs = performance.now() - t0;
  document.getElementById('sort-time').textContent = 'sorted in ' + S.perf.sortMs.toFixed(0) + ' ms';
  showCount();
  renderRows();
}

const pool = [];
function renderRows() {
  const body = document.getElementById('tbody');
  const first = Math.max(0, Math.floor(body.scrollTop / ROW_H) - 5);
  const count = Math.ceil(body.clientHeight / ROW_H) + 10;
  while (pool.length < count) {
    const r = el('div', { class: 'trow' });
    for (let j = 0; j < COLS.length; j++) r.appendChild(el('div'));
    r.addEventListener('click', () => selectTask(+r.dataset.task));
    body.appendChild(r);
    pool.push(r);
  }
  const c = S.c;
  for (let j = 0; j < pool.length; j++) {
    const r = pool[j], idx = first + j;
    if (idx >= S.view.length || j >= count) { r.style.display = 'none'; continue; }
    const i = S.view[idx];
    r.style.display = '';
    r.style.top = idx * ROW_H + 'px';
    r.dataset.task = c.task[i];
    r.className = 'trow' + (S.sel.includes(c.task[i]) ? ' sel' : '') + (S.fresh.has(c.task[i]) ? ' fresh' : '');
    COLS.forEach((col, k) => {
      const v = c[col.k][i];
      r.children[k].textContent = col.f ? col.f(v) : v;
    });
  }
}

// ---- summary, workers, live updates ------------------------------------------------------

function renderStatus() {
  const s = S.status;
  if (!s) return;
  document.getElementById('title').textContent = 'nasd · ' + s.campaign;
  const box = document.getElementById('summary');
  box.textContent = '';
  const add = (k, v) => { const sp = el('span'); sp.append(k + ' '); sp.appendChild(el('b', null, v)); box.appendChild(sp); };
  add('strategy', s.strategy);
  add('state', s.state);
  add('done', s.done + (s.budget ? ' / ' + s.budget : ''));
  add('in flight', String(s.in_flight));
  add('failed', String(s.failed));
  add('rate', s.evaluations_per_second.toFixed(2) + '/s');
  add('best', s.best ? s.best.accuracy.toFixed(4) + ' (task ' + s.best.task + ')' : '-');
  // The circuit breaker's halt stands until a master restarts the campaign: say why, in full.
  if (s.halted) {
    add('halted', s.halted);
    box.lastChild.id = 'halted';
    box.lastChild.className = 'halted';
  }
  document.getElementById('progress-bar').style.width =
    (s.budget ? Math.min(100, (100 * s.done) / s.budget) : 0) + '%';
}

function renderWorkers(ws) {
  const t = el('table', { class: 'workers', id: 'workers-table' });
  const h = el('tr');
  for (const k of ['worker', 'state', 'task', 'epoch', 'results', 'busy s', 'kernels']) h.appendChild(el('th', null, k));
  t.appendChild(h);
  for (const w of ws) {
    const r = el('tr');
    const live = w.live || {};
    const epoch = live.epochs ? live.epoch + '/' + live.epochs : '-';
    const kernels = live.kernels || live.blas || live.isa || '-';
    for (const v of [w.name, w.state, w.task == null ? '-' : w.task, epoch, w.tasks_done,
      w.busy_seconds.toFixed(0), typeof kernels === 'string' ? kernels : JSON.stringify(kernels)])
      r.appendChild(el('td', null, String(v)));
    t.appendChild(r);
  }
  const box = document.getElementById('workers');
  box.textContent = '';
  box.appendChild(t);
}

async function refreshSide() {
  S.status = await getJSON('/api/status');
  renderStatus();
  renderWorkers(await getJSON('/api/workers'));
}

// The first load asks for the numbers of the newest FIRST_ROWS results only,
// so the page is interactive sooner whatever the campaign's size; the older
// rows follow in fetchOlder and the genome texts (half the bytes) in
// fetchArch.  S.c holds the server's rows S.base .. S.end - 1; S.n of them.
const KEYS = () => COLS.map((col) => col.k).concat(['t']);
async function fetchRows() {
  const first = !S.c;
  const d = await getJSON(first ? '/api/columns?last=' + FIRST_ROWS + '&fields=numbers'
    : '/api/columns?from=' + S.end);
  if (first) { d.arch = new Array(d.to - d.from).fill(''); S.base = d.from; }
  S.workers = d.workers;
  const sel = document.getElementById('f-worker');
  for (const w of S.workers) if (![...sel.options].some((o) => o.value === w)) sel.appendChild(el('option', { value: w }, w));
  const keys = KEYS();
  if (first) {
    // The whole table: take the parsed arrays as they are (no copy).
    S.c = {};
    for (const k of keys) S.c[k] = d[k];
  } else {
    for (const k of keys) { const a = S.c[k], v = d[k]; for (let i = 0; i < v.length; i++) a.push(v[i]); }
  }
  if (!first) for (const t of d.task) S.fresh.add(t);
  S.end = d.to;
  S.n = S.c.task.length;
}

// The rows older than the first screen, put in front of those held.
async function fetchOlder() {
  if (!S.base) return;
  const d = await getJSON('/api/columns?from=0&to=' + S.base + '&fields=numbers');
  d.arch = new Array(d.to - d.from).fill('');
  for (const k of KEYS()) S.c[k] = d[k].concat(S.c[k]);
  S.base = 0;
  S.front = [];
  S.frontN = 0;
  S.n = S.c.task.length;
  applyView();
}

async function fetchArch() {
  const d = await getJSON('/api/columns?from=0&to=' + S.n + '&fields=arch');
  for (let i = 0; i < S.n && i < d.arch.length; i++) S.c.arch[i] = d.arch[i];
  S.archLoaded = true;
  applyView();
}

// At most one update in flight, however fast results come; news that
// arrives during an update schedules one more after it.  An update adds
// only the new rows to the table (extendView) and asks for the workers at
// most once a second; the charts, which draw every point, are redrawn at
// most every CHART_MS and never take more than a tenth of the page's time;
// updates come at most once a second (UPDATE_MS): each costs fetches that
// cross three of Chromium's processes, and on a machine shared with the
// master their wake-ups cost it more than their CPU time.
// With results arriving by the thousand per second the page stays idle
// most of the time, and so costs the machine it shares with the master
// little.
const CHART_MS = 5000, UPDATE_MS = 1000;
let pending = null, again = false, chartsAt = 0, sideAt = 0;
function scheduleUpdate() {
  if (pending) { again = true; return; }
  again = false;
  pending = setTimeout(async () => {
    const t0 = performance.now();
    try {
      await fetchRows();
      if (S.n > S.viewN) extendView();
      if (charts.evals && t0 - chartsAt >= Math.max(CHART_MS, 10 * (S.perf.chartsDrawMs || 0))) {
        const c0 = performance.now();
        drawCharts();
        chartsAt = performance.now();
        S.perf.chartsDrawMs = chartsAt - c0;
      }
      S.perf.updateMs = performance.now() - t0;
      if (t0 - sideAt >= 1000) { sideAt = t0; await refreshSide(); }
    } finally {
      pending = null;
      if (again) scheduleUpdate();
    }
  }, Math.max(UPDATE_MS, 3 * (S.perf.updateMs || 0)));
}

function connect() {
  // brief: one `results` event per batch of committed results.
  const es = new EventSource('/events?brief=1');
  const live = document.getElementById('live');
  es.onopen = () => { live.className = 'live on'; };
  es.onerror = () => { live.className = 'live off'; };
  es.addEventListener('results', scheduleUpdate);
  es.addEventListener('log', scheduleUpdate);
  es.addEventListener('worker', scheduleUpdate);
  es.addEventListener('campaign', scheduleUpdate);
  // Events only say that something changed; the rows come from
  // /api/columns after the last one held (results are only ever
  // appended), so a client that fell behind the server's event ring
  // (`reset`) loses nothing and need not reload everything.
  es.addEventListener('reset', scheduleUpdate);
}

async function main() {
  const t0 = performance.now();
  buildHead();
  let timer = null;
  for (const id of ['f-text', 'f-worker', 'f-stage', 'f-acc'])
    document.getElementById(id).addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(applyView, 120); });
  document.getElementById('tbody').addEventListener('scroll', renderRows, { passive: true });
  await Promise.all([fetchRows().then(() => { S.perf.rowsMs = performance.now() - t0; }), refreshSide()]);
  applyView();
  // From the start of the navigation (performance's time origin): the
  // page's own loading is part of being interactive.
  S.perf.interactiveMs = performance.now();
  S.perf.scriptStartMs = t0;
  document.body.dataset.ready = '1';
  connect();
  setInterval(() => refreshSide().catch(() => {}), 5000);
  await fetchOlder();
  S.perf.allRowsMs = performance.now();
  await makeCharts();
  drawCharts();
  S.perf.chartsMs = chartsAt = performance.now();
  await fetchArch();
  S.perf.archMs = performance.now();
}

window.nasDashboard = S;
main().catch((e) => { document.getElementById('summary').textContent = 'error: ' + e.message; });
