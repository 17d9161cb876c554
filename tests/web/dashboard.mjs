// dashboard.mjs - drives the nasd dashboard in a real headless Chromium
// (Debian's, through playwright-core from master/web/node_modules) for
// tests/test_serve_browser.c and bench/dashboard:
//   node dashboard.mjs URL OUTDIR [--bench]
// Checks, each failing the run with a message: the page loads with no
// console error; a result committed after the load appears without a
// reload (the C side commits it when OUTDIR/loaded appears, and names its
// task in OUTDIR/committed); sorting by a column orders the rows; the
// genome filter keeps only matching rows; clicking a row draws its
// learning curve and its cell; a circuit-breaker halt logged with that
// result shows in the summary.  Screenshots go to OUTDIR; timings
// (interactive, sort, filter) are printed as one JSON line.
// --bench skips the live-update step (no one commits) and sorts 5 times.
// --hold S only loads the page, writes OUTDIR/loaded, keeps it open and
// live for S seconds (or until OUTDIR/stop appears), and prints how many
// rows it holds then (bench/dashboard's dispatch run with a browser).
import { createRequire } from 'node:module';
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../../master/web/package.json'));
const { chromium } = require('playwright-core');

const [url, out] = process.argv.slice(2);
const bench = process.argv.includes('--bench');
const holdAt = process.argv.indexOf('--hold');
const hold = holdAt > 0 ? Number(process.argv[holdAt + 1]) : 0;
const errors = [];
const fail = (msg) => {
  console.error('FAIL ' + msg + (errors.length ? ' (console: ' + errors.join(' | ') + ')' : ''));
  process.exitCode = 1;
  throw new Error(msg);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// page.waitForFunction evaluates a string in the page, which the page's
// Content-Security-Policy forbids (and reports as a console error): poll
// with page.evaluate instead, which runs through the DevTools protocol.
async function until(page, fn, arg, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await page.evaluate(fn, arg)) return;
    await sleep(25);
  }
  fail(what);
}

const browser = await chromium.launch({
  executablePath: process.env.NAS_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const result = {};

async function drive() {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('requestfailed', (r) => { if (!r.url().endsWith('/events')) errors.push('request failed: ' + r.url()); });

  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
  result.load_ms = Date.now() - t0;
  result.interactive_ms = await page.evaluate(() => window.nasDashboard.perf.interactiveMs);
  // Where it went: until the page's script started, and the first rows'
  // fetch from there.
  result.script_ms = await page.evaluate(() => window.nasDashboard.perf.scriptStartMs);
  result.rows_ms = await page.evaluate(() => window.nasDashboard.perf.rowsMs);
  const rows0 = await page.evaluate(() => window.nasDashboard.n);
  result.rows = rows0;
  await page.waitForSelector('#live.on', { timeout: 30000 });
  await until(page, () => window.nasDashboard.archLoaded, null, 60000, 'the genome texts never loaded');
  result.arch_ms = await page.evaluate(() => window.nasDashboard.perf.archMs);
  // Every row in the table (the page is interactive with the newest ones).
  result.all_rows_ms = await page.evaluate(() => window.nasDashboard.perf.allRowsMs);
  if (hold) {
    writeFileSync(join(out, 'loaded'), String(rows0));
    const end = Date.now() + hold * 1000;
    while (Date.now() < end && !existsSync(join(out, 'stop'))) await sleep(100);
    result.rows_at_end = await page.evaluate(() => window.nasDashboard.n);
    // What the last live update cost the page, and its charts.
    result.live = await page.evaluate(() => {
      const p = window.nasDashboard.perf;
      return { update_ms: p.updateMs, extend_ms: p.extendMs, charts_ms: p.chartsDrawMs };
    });
    if (errors.length) fail('console errors: ' + errors.join(' | '));
    result.ok = true;
    return;
  }
  await sleep(300);
  await page.screenshot({ path: join(out, 'dashboard.png'), fullPage: true });

  if (!bench) {
    // A result committed now must appear without a reload.
    writeFileSync(join(out, 'loaded'), String(rows0));
    const deadline = Date.now() + 15000;
    while (!existsSync(join(out, 'committed')) && Date.now() < deadline) await sleep(50);
    const task = Number(readFileSync(join(out, 'committed'), 'utf8'));
    const tc = Date.now();
    await until(page, (t) => window.nasDashboard.c.task.includes(t), task, 10000,
      'the committed task ' + task + ' never reached the page');
    result.live_ms = Date.now() - tc;
    const text = await page.textContent('#table-count');
    if (!text.includes((rows0 + 1).toLocaleString('en-US'))) fail('table count did not grow: ' + text);
    // The C side logged a circuit-breaker halt with that result: the summary says so.
    await until(page, () => {
      const h = document.getElementById('halted');
      return h !== null && h.textContent.includes('tasks failed in a row');
    }, null, 10000, 'the halt in the event log never showed in the summary');
  }

  // Sorting: accuracy descending, then ascending.
  const visible = () => page.$$eval('#tbody .trow', (rs) => rs
    .filter((r) => r.style.display !== 'none')
    .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
    .map((r) => Array.from(r.children).map((c) => c.textContent)));
  const sorts = [];
  for (let i = 0; i < (bench ? 5 : 1); i++) {
    await page.click('#thead div[data-col="acc"]');
    let head = await page.getAttribute('#thead div[data-col="acc"]', 'class');
    if (head !== 'desc') { await page.click('#thead div[data-col="acc"]'); head = 'desc'; }
    sorts.push(await page.evaluate(() => window.nasDashboard.perf.sortMs));
    const rows = await visible();
    const accs = rows.map((r) => parseFloat(r[2]));
    for (let j = 1; j < accs.length; j++) if (accs[j] > accs[j - 1]) fail('not sorted descending: ' + accs.join(','));
    const max = await page.evaluate(() => Math.max(...window.nasDashboard.c.acc));
    if (Math.abs(accs[0] - max) > 1e-4) fail('first row ' + accs[0] + ' is not the best ' + max);
    await page.click('#thead div[data-col="acc"]');
    sorts.push(await page.evaluate(() => window.nasDashboard.perf.sortMs));
    const up = (await visible()).map((r) => parseFloat(r[2]));
    for (let j = 1; j < up.length; j++) if (up[j] < up[j - 1]) fail('not sorted ascending: ' + up.join(','));
  }
  result.sort_ms = sorts.sort((a, b) => a - b)[sorts.length >> 1];
  await page.screenshot({ path: join(out, 'sorted.png') });

  // Filtering by genome text.
  const total = await page.evaluate(() => window.nasDashboard.n);
  await page.fill('#f-text', 'avg_pool_3x3~1');
  await until(page, (n) => window.nasDashboard.view.length < n, total, 5000, 'the filter kept every row');
  result.filter_ms = await page.evaluate(() => window.nasDashboard.perf.sortMs);
  const kept = await visible();
  if (!kept.length) fail('the filter kept no row');
  for (const r of kept) if (!r[8].includes('avg_pool_3x3~1')) fail('row without the filter text: ' + r[8]);
  const expect = await page.evaluate(() => window.nasDashboard.c.arch.filter((a) => a.includes('avg_pool_3x3~1')).length);
  const shown = await page.evaluate(() => window.nasDashboard.view.length);
  if (shown !== expect) fail('filter shows ' + shown + ' rows, ' + expect + ' match');

  // A row's learning curve and cell.
  const task = Number(kept[0][1]);
  await page.click('#tbody .trow:not([style*="display: none"])');
  await page.waitForSelector('#cell-svg', { timeout: 5000 }).catch(() => fail('no cell drawn'));
  await until(page, (t) => (window.nasDashboard.curves[t] || []).length > 0 &&
    document.getElementById('curve-tasks').textContent.includes(String(t)), task, 5000,
  'no learning curve for task ' + task);
  const nodes = await page.$$eval('#cell-svg rect, #cell-svg circle', (n) => n.length);
  if (nodes < 3) fail('cell has ' + nodes + ' nodes');
  await sleep(200);
  await page.screenshot({ path: join(out, 'task.png'), fullPage: true });
  if (errors.length) fail('console errors: ' + errors.join(' | '));
  result.ok = true;
}

try {
  await drive();
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
}
