// Capacity that follows load (cgroups and reloadable settings), live
// scaling changes, auto-pause to zero and resume on the first connection.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { InstanceStatus, StatusDocument } from '../../src/control/status.js';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({
    BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5',
    BOREALIS_DEFAULT_MAX_CAPACITY_ACU: '4',
    BOREALIS_SCALE_DOWN_QUIET_PERIOD_MS: '2000',
    BOREALIS_SCALE_DOWN_STEP_INTERVAL_MS: '300',
  });
});
after(async () => {
  await b?.destroy();
});

async function instance(cluster = 'default'): Promise<InstanceStatus & { enforcement: string }> {
  const s: StatusDocument = await b.status();
  return { ...s.clusters.find((c) => c.name === cluster)!.instances[0]!, enforcement: s.capacity.enforcement };
}

/** The instance's CPU quota in cores, read from its cgroup (named after the home and the instance). */
function cpuQuotaCores(instanceId: string): number | null {
  const group = `${createHash('sha256').update(path.join(b.home, 'instances', instanceId)).digest('hex').slice(0, 10)}-${instanceId}`;
  const v1 = `/sys/fs/cgroup/cpu/borealis/${group}/cpu.cfs_quota_us`;
  if (fs.existsSync(v1)) return Number(fs.readFileSync(v1, 'utf8')) / Number(fs.readFileSync(path.dirname(v1) + '/cpu.cfs_period_us', 'utf8'));
  const v2 = `/sys/fs/cgroup/borealis/${group}/cpu.max`;
  if (fs.existsSync(v2)) {
    const [q, p] = fs.readFileSync(v2, 'utf8').trim().split(' ');
    return Number(q) / Number(p);
  }
  return null;
}

/** Scrapes /metrics and checks every line against the exposition grammar. */
async function scrape(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${b.apiPort}/metrics`)).text();
  const samples = new Map<string, number>();
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})?) (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}

const CAPACITY = 'borealis_serverless_database_capacity_acu{cluster="default",instance="default-instance-1",role="writer"}';

async function workSetting(): Promise<string> {
  const c = new pg.Client(b.pgConfig({ tls: false }));
  await c.connect();
  try {
    return (await c.query<{ work_mem: string }>('SHOW work_mem')).rows[0]!.work_mem;
  } finally {
    await c.end();
  }
}

test('CPU-heavy load raises capacity within 2 s, the quota follows, then capacity steps back to min', async () => {
  const start = await instance();
  assert.equal(start.capacityAcu, 0.5);
  assert.equal(start.kind, 'serverless');
  const enforced = start.enforcement.startsWith('cgroup');
  if (enforced) assert.equal(cpuQuotaCores(start.id), 0.125);
  const workMemBefore = await workSetting();
  assert.equal((await scrape()).get(CAPACITY), 0.5);
  const clients = await Promise.all(Array.from({ length: 3 }, async () => {
    const c = new pg.Client(b.pgConfig({ tls: false }));
    await c.connect();
    return c;
  }));
  const began = Date.now();
  const load = Promise.all(clients.map((c) => c.query('SELECT count(*) FROM generate_series(1, 40000000)').finally(() => c.end())));
  const risen = await b.waitFor('capacity to rise', async () => ((await instance()).capacityAcu > 0.5 ? Date.now() : null), 10_000);
  assert.ok(risen - began <= 2_500, `capacity rose after ${risen - began} ms`);
  const peak = await b.waitFor('capacity to reach 2 ACU', async () => ((await instance()).capacityAcu >= 2 ? await instance() : null), 10_000);
  if (enforced) assert.equal(cpuQuotaCores(peak.id), peak.capacityAcu * 0.25);
  const scraped = await scrape();
  assert.ok(scraped.get(CAPACITY)! >= 2, '/metrics moves with capacity');
  assert.ok(scraped.get('borealis_cpu_utilization_percent{cluster="default",instance="default-instance-1",role="writer"}')! > 0);
  assert.notEqual(await workSetting(), workMemBefore, 'reloadable settings follow capacity');
  await load;
  // Back down one step at a time: every value seen lies on the 0.5 grid and ends at min.
  const seen = new Set<number>();
  await b.waitFor('capacity back at min', async () => {
    const c = (await instance()).capacityAcu;
    seen.add(c);
    return c === 0.5;
  }, 60_000);
  assert.ok([...seen].every((c) => c * 2 === Math.round(c * 2)));
  const events = JSON.parse((await b.cli(['events', '--json', '--limit', '100'])).stdout) as Array<{ kind: string; message: string }>;
  assert.ok(events.some((e) => e.kind === 'scaled' && /scale up: CPU/.test(e.message)));
  assert.ok(events.some((e) => e.kind === 'scaled' && /scale down: quiet/.test(e.message)));
});

test('changing min and max live takes effect at once', async () => {
  const r = await b.cli(['cluster', 'modify', 'default', '--min', '2', '--max', '3']);
  assert.equal(r.code, 0, r.stderr);
  const i = await instance();
  assert.equal(i.capacityAcu, 2);
  if (i.enforcement.startsWith('cgroup')) assert.equal(cpuQuotaCores(i.id), 0.5);
  const bad = await b.cli(['cluster', 'modify', 'default', '--min', '3.3']);
  assert.match(bad.stderr, /steps of 0.5/);
  const worse = await b.cli(['cluster', 'modify', 'default', '--max', '1']);
  assert.match(worse.stderr, /at least the minimum/);
  await b.cli(['cluster', 'modify', 'default', '--min', '0.5', '--max', '4']);
});

test('idle with min 0: paused at capacity 0, resumed by the first client; ten at once cause one resume', async () => {
  const created = await b.cli(['cluster', 'create', 'sleepy', '--master-password', 'sleepy-pass-1', '--min', '0', '--max', '2', '--auto-pause', '2']);
  assert.equal(created.code, 0, created.stderr);
  const port = (await b.status()).clusters.find((c) => c.name === 'sleepy')!.endpoints.find((e) => e.type === 'writer')!.port;
  const config = { ...b.pgConfig({ password: 'sleepy-pass-1', tls: false }), port };
  const paused = await b.waitFor('auto-pause', async () => {
    const i = await instance('sleepy');
    return i.state === 'paused' ? i : null;
  }, 30_000);
  assert.equal(paused.capacityAcu, 0);
  assert.equal(paused.pid, null);
  const one = new pg.Client(config);
  await one.connect();
  assert.equal((await one.query<{ n: number }>('SELECT 7 AS n')).rows[0]!.n, 7);
  await one.end();
  assert.equal((await instance('sleepy')).state, 'available');
  await b.waitFor('auto-pause again', async () => (await instance('sleepy')).state === 'paused', 30_000);
  const before = JSON.parse((await b.cli(['events', '--json', '--limit', '500'])).stdout) as Array<{ id: number }>;
  const lastId = Math.max(...before.map((e) => e.id));
  const answers = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      const c = new pg.Client(config);
      await c.connect();
      const r = await c.query<{ n: number }>('SELECT $1::int AS n', [i]);
      await c.end();
      return r.rows[0]!.n;
    }),
  );
  assert.deepEqual(answers, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const after = JSON.parse((await b.cli(['events', '--json', '--limit', '500'])).stdout) as Array<{ id: number; sourceId: string; kind: string }>;
  const resumes = after.filter((e) => e.id > lastId && e.sourceId === 'sleepy-instance-1' && e.kind === 'resuming');
  assert.equal(resumes.length, 1);
  // Control-plane work on a paused cluster resumes it too.
  await b.waitFor('auto-pause before user create', async () => (await instance('sleepy')).state === 'paused', 30_000);
  const created2 = await b.cli(['user', 'create', 'late_user', '--cluster', 'sleepy', '--password', 'late-pass-1']);
  assert.equal(created2.code, 0, created2.stderr);
});

test('status reports ACU-seconds and their estimated cost', async () => {
  const i = await instance();
  assert.ok(i.acuSeconds > 0);
  assert.ok(Math.abs(i.estimatedCost - (i.acuSeconds / 3600) * 0.12) < 1e-5);
  assert.ok(i.metrics && i.metrics.connections >= 0);
});
