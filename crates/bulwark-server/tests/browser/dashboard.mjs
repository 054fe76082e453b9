// Loads the dashboard and the status page of a running daemon in headless Chromium and prints,
// as one JSON object on stdout, what a person would see: the verdicts on the overview, each
// dataset page's verdict, the status page's components, every console error, failed or foreign
// request, and the screenshots written. The Rust test (main.rs beside this file) judges it.
//
// Usage: node dashboard.mjs  (settings in the environment)
//   BULWARK_URL          the daemon's base URL, e.g. http://127.0.0.1:PORT/
//   BULWARK_TOKEN        the API token, sent as an Authorization header
//   BULWARK_BROWSER_DIR  where node_modules/playwright-core is; screenshots go here too
//   BULWARK_CHROMIUM     the Chromium executable
//   BULWARK_SHOTS        a prefix for the screenshots' names

import { createRequire } from 'node:module';
import { join } from 'node:path';

const base = process.env.BULWARK_URL;
const token = process.env.BULWARK_TOKEN;
const dir = process.env.BULWARK_BROWSER_DIR;
const prefix = process.env.BULWARK_SHOTS ?? 'page';
const require = createRequire(join(dir, 'package.json'));
const { chromium } = require('playwright-core');

const browser = await chromium.launch({
  executablePath: process.env.BULWARK_CHROMIUM,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});

const seen = { consoleErrors: [], failedRequests: [], foreignRequests: [], screenshots: [] };

function watch(page) {
  page.on('console', (m) => {
    if (m.type() === 'error') seen.consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => seen.consoleErrors.push(`${page.url()}: ${e.message}`));
  page.on('requestfailed', (r) => seen.failedRequests.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) seen.failedRequests.push(`${r.url()}: HTTP ${r.status()}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith('data:')) seen.foreignRequests.push(r.url());
  });
}

async function visit(page, path, shot) {
  const response = await page.goto(new URL(path, base).href, { waitUntil: 'load' });
  const file = join(dir, `${prefix}-${shot}.png`);
  await page.screenshot({ path: file, fullPage: true });
  seen.screenshots.push(file);
  return response.status();
}

try {
  // The operators' dashboard, with the token.
  const operators = await browser.newContext({
    extraHTTPHeaders: { Authorization: `Bearer ${token}` },
    viewport: { width: 1280, height: 900 },
  });
  const page = await operators.newPage();
  watch(page);
  const status = { overview: await visit(page, '/', 'overview') };
  const overview = await page.evaluate(() => {
    const rows = {};
    for (const tr of document.querySelectorAll('#datasets tr[data-dataset]')) {
      const aspects = {};
      for (const a of tr.querySelectorAll('[data-aspect]')) {
        aspects[a.dataset.aspect] = a.querySelector('[data-verdict]').dataset.verdict;
      }
      rows[tr.dataset.dataset] = {
        verdict: tr.querySelector('td.verdict-cell [data-verdict]').dataset.verdict,
        reason: tr.querySelector('td.reason').textContent.trim(),
        aspects,
      };
    }
    return { overall: document.querySelector('h1 [data-verdict]').dataset.verdict, rows };
  });
  await page.emulateMedia({ media: 'print' });
  await visit(page, '/', 'overview-print');
  await page.emulateMedia({ media: 'screen' });

  const datasets = {};
  for (const name of Object.keys(overview.rows).filter((n) => n !== 'ledger')) {
    status[`dataset ${name}`] = await visit(page, `/datasets/${encodeURIComponent(name)}`, `dataset-${name}`);
    datasets[name] = await page.evaluate(() => ({
      verdict: document.querySelector('h1 [data-verdict]').dataset.verdict,
      charts: document.querySelectorAll('svg.chart').length,
    }));
  }
  status.ledger = await visit(page, '/ledger', 'ledger');
  status.jobs = await visit(page, '/jobs', 'jobs');

  // The customers' page, in a browser that holds no token.
  const customers = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const pub = await customers.newPage();
  watch(pub);
  status.status = await visit(pub, '/status', 'status');
  const components = await pub.evaluate(() => {
    const out = {};
    for (const tr of document.querySelectorAll('#components tr[data-component]')) {
      out[tr.dataset.component] = tr.querySelector('[data-state]').dataset.state;
    }
    return out;
  });
  console.log(JSON.stringify({ status, overview, datasets, components, ...seen }));
} finally {
  await browser.close();
}
