// The dashboard in real headless Chromium (Debian's, driven by
// playwright-core): it loads with no console errors and no request outside
// Borealis, its capacity chart gains points while load runs, the storage map
// shows six nodes, changing max capacity from the page takes effect, and
// the event list shows its numbers whole past 9.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { chromium, type Browser } from 'playwright-core';
import { Borealis, portBase } from '../helpers/borealis.js';

const CHROMIUM = process.env.BOREALIS_CHROMIUM ?? '/usr/bin/chromium';
let b: Borealis;
let browser: Browser;

before(async () => {
  // Storage ports of their own: other Borealis homes on this machine take the default range at the same time.
  b = await Borealis.start({ BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5', BOREALIS_STORAGE_PORT_BASE: String(portBase()) });
  // Root needs --no-sandbox; the page itself is all Borealis's.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
});
after(async () => {
  await browser?.close();
  await b?.destroy();
});

test('the dashboard shows the cluster live and its actions take effect', async () => {
  const r = await b.cli(['dashboard']);
  assert.equal(r.code, 0, r.stderr);
  const url = r.stdout.trim();
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/dashboard#token=/);
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  const problems: string[] = [];
  const outside: string[] = [];
  page.on('console', (m) => (m.type() === 'error' ? problems.push(m.text()) : undefined));
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('request', (req) => (new URL(req.url()).host === new URL(url).host || req.url().startsWith('data:') ? undefined : outside.push(req.url())));
  await page.goto(url);
  await page.waitForSelector('[data-instance="default-instance-1"]');
  await page.waitForSelector('[data-node="sn6"]');
  assert.equal(await page.locator('.node').count(), 6, 'the storage map shows six nodes');
  assert.equal(await page.locator('.zone').count(), 3, 'in three zones');

  // Load for a few seconds: the chart gains points and shows transactions.
  const points = async (): Promise<number> => Number((await page.locator('[data-chart="default-instance-1"] .uplot').getAttribute('data-points')) ?? 0);
  const before = await points();
  const deadline = Date.now() + 5000;
  const clients = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const c = new pg.Client(b.pgConfig());
      await c.connect();
      return c;
    }),
  );
  await Promise.all(clients.map(async (c) => {
    while (Date.now() < deadline) await c.query('SELECT count(*) FROM pg_class');
  }));
  await Promise.all(clients.map((c) => c.end()));
  await b.waitFor('the chart to gain points', async () => (await points()) > before + 2, 20_000);

  // An action: max capacity from the page.
  await page.fill('form.scaling[data-cluster="default"] input[name="maxCapacity"]', '6');
  await page.click('form.scaling[data-cluster="default"] button[type="submit"]');
  await page.waitForSelector('form.scaling[data-cluster="default"] .result:has-text("applied")');
  const status = await b.status();
  assert.equal(status.clusters[0]!.scaling.maxCapacity, 6);

  // Pause from the page, then resume from it.
  await page.click('[data-action="pause:default-instance-1"]');
  await b.waitFor('the writer to pause', async () => (await b.status()).clusters[0]!.instances[0]!.state === 'paused');
  await page.waitForSelector('[data-instance="default-instance-1"] .state:has-text("paused")');
  await page.click('[data-action="resume:default-instance-1"]:not([disabled])');
  await b.waitFor('the writer to resume', async () => (await b.status()).clusters[0]!.instances[0]!.state === 'available');

  // Add a reader from the page: it appears with its replica lag and its own chart.
  await page.click('[data-action="add-reader:default"]');
  await page.waitForSelector('[data-instance="default-instance-2"] .load:has-text("lag")', { timeout: 60_000 });
  await page.waitForSelector('[data-chart="default-instance-2"]');

  const shot = path.join(os.tmpdir(), 'borealis-dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 10_000, `screenshot saved at ${shot}`);

  // Fail over from the page: the reader becomes the writer, the old writer a reader.
  await page.click('[data-action="failover:default"]');
  await page.waitForSelector('.cluster-actions .result:has-text("default-instance-2 is the writer")', { timeout: 60_000 });
  await page.waitForSelector('#events :text("failover")');
  await b.waitFor('the old writer to come back as a reader', async () => (await b.status()).clusters[0]!.instances.find((i) => i.id === 'default-instance-1')?.state === 'available', 60_000);

  // Delete that reader from the page: row and chart go.
  await page.waitForSelector('[data-action="delete:default-instance-1"]');
  await page.click('[data-action="delete:default-instance-1"]');
  await b.waitFor('the reader to be deleted', async () => !(await b.status()).clusters[0]!.instances.some((i) => i.id === 'default-instance-1'));
  await page.waitForSelector('[data-instance="default-instance-1"]', { state: 'detached' });
  await page.waitForSelector('[data-chart="default-instance-1"]', { state: 'detached' });
  assert.deepEqual(problems, [], 'no console errors');
  assert.deepEqual(outside, [], 'no request leaves Borealis');
});

test('the dashboard page is public, its data is not', async () => {
  const s = await b.status();
  const base = s.services.api.url;
  const page = await fetch(`${base}/dashboard`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<script src="\/dashboard\/uplot.js">/);
  assert.equal((await fetch(`${base}/dashboard/uplot.js`)).status, 200);
  assert.equal((await fetch(`${base}/dashboard/../v1/status`)).status, 401);
  assert.equal((await fetch(`${base}/dashboard/nothing-here`)).status, 404);
  assert.equal((await fetch(`${base}/v1/instances/default-instance-1/series`)).status, 401);
});

test('the event list shows every number whole, two digits too', async () => {
  const token = fs.readFileSync(path.join(b.home, 'run', 'api-token'), 'utf8').trim();
  // Events enough for two-digit numbers: each scaling change records one.
  for (let n = 0; n < 12; n++) {
    const res = await fetch(`http://127.0.0.1:${b.apiPort}/v1/clusters/default`, { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ maxCapacity: 4 + (n % 2) }) });
    assert.equal(res.status, 200, await res.text());
  }
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  await page.goto((await b.cliOk('dashboard')).trim());
  await page.waitForSelector('#events li:nth-child(12)');
  // The list scrolls, so it clips what lies outside it: its numbers must look the same with the clipping off.
  // (All items shown, so that turning the clipping off moves nothing.)
  await page.addStyleTag({ content: '#events { max-height: none; }' });
  const clip = await page.$eval('#events', (list) => {
    list.scrollIntoView();
    const twelfth = list.querySelector('li:nth-child(12)')!.getBoundingClientRect();
    const top = list.getBoundingClientRect().top;
    return { x: 0, y: top, width: twelfth.left, height: twelfth.bottom - top };
  });
  const clipped = await page.screenshot({ clip });
  await page.addStyleTag({ content: '#events { overflow: visible; }' });
  const whole = await page.screenshot({ clip });
  if (!clipped.equals(whole)) fs.writeFileSync(path.join(os.tmpdir(), 'borealis-dashboard-events.png'), clipped);
  assert.ok(clipped.equals(whole), `the event list cuts its numbers off (as shown: ${path.join(os.tmpdir(), 'borealis-dashboard-events.png')})`);
  await page.close();
});
