// Serverless benchmarks, each against a baseline measured in the same run:
//  1. reaction: from idle at min capacity, a step to a CPU-saturating load;
//     time until capacity first rises, and until the load is no longer
//     CPU-throttled; per-second capacity against throughput, drawn as SVG;
//  2. resume: connect + SELECT 1 against an auto-paused instance, 20 tries,
//     against the floor: starting the same data directory directly with
//     postgres and running the first query.
//
//   npm run bench:serverless [-- --tries 20 --load-seconds 20]
import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { StatusDocument } from '../src/control/status.js';
import { embeddedBinDir } from '../src/engine/binaries.js';
import { clusterServiceUserName } from '../src/engine/service-user.js';
import { Borealis, PASSWORD } from '../test/helpers/borealis.js';

const { values } = parseArgs({ options: { tries: { type: 'string', default: '20' }, 'load-seconds': { type: 'string', default: '20' } } });
const log = (m: string): boolean => process.stderr.write(m + '\n');
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function instanceOf(b: Borealis, cluster: string) {
  const s: StatusDocument = await b.status();
  return s.clusters.find((c) => c.name === cluster)!.instances[0]!;
}

// ---- 1. reaction ----
const b = await Borealis.start({ BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5', BOREALIS_DEFAULT_MAX_CAPACITY_ACU: '8' });
const report: string[] = [];
try {
  const script = path.join(b.home, 'cpu.sql');
  fs.writeFileSync(script, 'SELECT count(*) FROM generate_series(1, 300000);\n');
  await sleep(2_000);
  const seconds = Number(values['load-seconds']);
  log(`reaction: pgbench -f cpu.sql -c 8 -j 2 -T ${seconds} -P 1 from idle at 0.5 ACU...`);
  const started = Date.now();
  const bench = new Promise<string>((resolve, reject) =>
    execFile('pgbench', ['-h', '127.0.0.1', '-p', String(b.proxyPort), '-U', 'postgres', '-n', '-f', script, '-c', '8', '-j', '2', '-T', String(seconds), '-P', '1', 'postgres'], { env: { ...process.env, PGPASSWORD: PASSWORD, PGSSLMODE: 'disable' } }, (err, out, errOut) =>
      err ? reject(new Error(errOut)) : resolve(out + errOut),
    ),
  );
  const samples: Array<{ t: number; capacity: number; cpu: number }> = [];
  let firstRise: number | null = null;
  let unthrottled: number | null = null;
  let done = false;
  void bench.finally(() => (done = true));
  while (!done) {
    const i = await instanceOf(b, 'default');
    const t = Date.now() - started;
    samples.push({ t, capacity: i.capacityAcu, cpu: i.metrics?.cpuUtilizationPercent ?? 0 });
    if (firstRise === null && i.capacityAcu > 0.5) firstRise = t;
    await sleep(100);
  }
  // The level where the load is no longer CPU-throttled: the plateau capacity
  // settles at; reached when capacity first gets there.
  const plateau = Math.max(...samples.map((s) => s.capacity));
  unthrottled = samples.find((s) => s.capacity >= plateau)?.t ?? null;
  const progress = [...(await bench).matchAll(/progress: ([\d.]+) s, ([\d.]+) tps/g)].map((m) => ({ s: Number(m[1]), tps: Number(m[2]) }));
  const perSecond = progress.map(({ s, tps }) => ({ s, tps, capacity: Math.max(0, ...samples.filter((x) => x.t <= s * 1000 && x.t > (s - 1) * 1000).map((x) => x.capacity)) }));
  fs.writeFileSync('docs/img/capacity-vs-load.csv', 'second,tps,capacity_acu\n' + perSecond.map((r) => `${r.s},${r.tps},${r.capacity}`).join('\n') + '\n');
  fs.writeFileSync('docs/img/capacity-vs-load.svg', chart(perSecond));
  report.push(
    `reaction (pgbench CPU-heavy, 8 clients, step from idle at 0.5 ACU, max 8 ACU = 2 cores):`,
    `  capacity first rose after ${firstRise ?? 'never'} ms (goal ≤ 1000 ms)`,
    `  capacity reached its plateau (${plateau} ACU, where the load stops being CPU-throttled) after ${unthrottled ?? 'never'} ms`,
    `  per second: ${perSecond.map((r) => `${r.s}s ${r.tps.toFixed(0)}tps@${r.capacity}`).join(', ')}`,
  );

  // ---- 2. resume ----
  const created = await b.cli(['cluster', 'create', 'sleepy', '--master-password', 'sleepy-pass-1', '--min', '0', '--max', '2', '--auto-pause', '1']);
  if (created.code !== 0) throw new Error(created.stderr);
  const port = (await b.status()).clusters.find((c) => c.name === 'sleepy')!.endpoints.find((e) => e.type === 'writer')!.port;
  const resumeMs: number[] = [];
  for (let i = 0; i < Number(values.tries); i++) {
    await b.waitFor('pause', async () => (await instanceOf(b, 'sleepy')).state === 'paused', 30_000);
    const t0 = process.hrtime.bigint();
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: 'sleepy-pass-1', database: 'postgres' });
    await c.connect();
    await c.query('SELECT 1');
    resumeMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await c.end();
  }
  await b.down();
  // Floor: the same data directory started directly, first query answered.
  const dataDir = path.join(b.home, 'instances', 'sleepy-instance-1', 'data');
  const socketDir = path.join(b.home, 'instances', 'sleepy-instance-1', 'run');
  const conf = fs.readFileSync(path.join(dataDir, 'postgresql.conf'), 'utf8');
  const enginePort = Number(/^port = (\d+)$/m.exec(conf)![1]);
  const binDir = embeddedBinDir();
  // The cluster's own system user owns its data directory.
  const ids = spawnSync('id', [clusterServiceUserName('borealis', 'sleepy')], { encoding: 'utf8' }).stdout;
  const uid = Number(/uid=(\d+)/.exec(ids)?.[1]);
  const gid = Number(/gid=(\d+)/.exec(ids)?.[1]);
  const floorMs: number[] = [];
  for (let i = 0; i < Number(values.tries); i++) {
    const t0 = process.hrtime.bigint();
    const pgProc = spawn(path.join(binDir, 'postgres'), ['-D', dataDir], { uid, gid, stdio: 'ignore' });
    for (;;) {
      const c = new pg.Client({ host: socketDir, port: enginePort, user: 'postgres', database: 'postgres' });
      try {
        await c.connect();
        await c.query('SELECT 1');
        await c.end();
        break;
      } catch {
        await sleep(5);
      }
    }
    floorMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const exited = new Promise((r) => pgProc.once('exit', r));
    pgProc.kill('SIGINT');
    await exited;
  }
  const p50 = pct(resumeMs, 50);
  const floor50 = pct(floorMs, 50);
  report.push(
    `resume (connect + SELECT 1 on an auto-paused instance, ${resumeMs.length} tries):`,
    `  Borealis resume: p50 ${p50.toFixed(0)} ms, p95 ${pct(resumeMs, 95).toFixed(0)} ms`,
    `  floor (postgres started directly on the same data directory + first query): p50 ${floor50.toFixed(0)} ms, p95 ${pct(floorMs, 95).toFixed(0)} ms`,
    `  ratio p50 resume / floor: ${(p50 / floor50).toFixed(2)} (goal ≤ 1.5)`,
  );
  process.stdout.write(report.join('\n') + '\n');
} finally {
  await b.destroy();
}

/** A small SVG: throughput (bars) and capacity (line) per second. */
function chart(rows: Array<{ s: number; tps: number; capacity: number }>): string {
  const w = 720;
  const h = 300;
  const pad = 40;
  const maxTps = Math.max(1, ...rows.map((r) => r.tps));
  const maxCap = Math.max(1, ...rows.map((r) => r.capacity));
  const x = (s: number): number => pad + ((s - 1) / Math.max(1, rows.length - 1)) * (w - 2 * pad);
  const bars = rows.map((r) => `<rect x="${(x(r.s) - 6).toFixed(1)}" y="${(h - pad - (r.tps / maxTps) * (h - 2 * pad)).toFixed(1)}" width="12" height="${((r.tps / maxTps) * (h - 2 * pad)).toFixed(1)}" fill="#9ecae1"/>`).join('');
  const line = rows.map((r, i) => `${i === 0 ? 'M' : 'L'}${x(r.s).toFixed(1)},${(h - pad - (r.capacity / maxCap) * (h - 2 * pad)).toFixed(1)}`).join(' ');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">
<rect width="${w}" height="${h}" fill="white"/>
<text x="${pad}" y="20">Throughput (bars, max ${maxTps.toFixed(0)} tps) and capacity (line, max ${maxCap} ACU) per second</text>
${bars}
<path d="${line}" fill="none" stroke="#d62728" stroke-width="2"/>
<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="black"/>
<text x="${pad}" y="${h - 10}">1 s</text><text x="${w - pad - 20}" y="${h - 10}">${rows.length} s</text>
</svg>
`;
}
