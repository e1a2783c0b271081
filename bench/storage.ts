// Commit-durability benchmark, all in one run so the ratios hold on a noisy
// machine. The same PostgreSQL (Debian's 15, since pg_receivewal 15 refuses
// 17) in four set-ups:
//   (a) local fsync, no standbys;
//   (b) six `pg_receivewal --synchronous`, synchronous_standby_names = ANY 4;
//   (c) six Borealis storage nodes (separate processes), ANY 4;
//   (d) six copies of the least a Node standby can do
//       (bench/minimal-wal-receiver.ts), ANY 4: the ceiling for Node here.
// Each runs pgbench -N -c 8 -j 2 (throughput) and -N -c 1 with a per-
// transaction log (commit latency p50/p99).
//
//   npm run bench:storage [-- --seconds 15 --rounds 2 --bin-dir /usr/lib/postgresql/15/bin --only borealis]
//
// For diagnosis: BENCH_PROFILE_DIR=<dir> writes a CPU profile of each storage
// node; BENCH_NODE_LOG=<prefix> keeps their logs in <prefix>.snN.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { STORAGE_NODE_V8_FLAGS } from '../src/storage/main.js';
import { freePort } from '../test/helpers/borealis.js';
import { cpuSeconds } from './proc-stat.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    'latency-seconds': { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    scale: { type: 'string', default: '10' },
    'bin-dir': { type: 'string', default: '/usr/lib/postgresql/15/bin' },
    only: { type: 'string', default: '' },
  },
});
const seconds = Number(values.seconds);
const latencySeconds = Number(values['latency-seconds']);
const binDir = values['bin-dir'];
const BIN = fileURLToPath(new URL('../bin/borealis.js', import.meta.url));
const log = (msg: string): boolean => process.stderr.write(msg + '\n');

const ids = spawnSync('id', ['borealis'], { encoding: 'utf8' }).stdout;
const uid = Number(/uid=(\d+)/.exec(ids)?.[1]);
const gid = Number(/gid=(\d+)/.exec(ids)?.[1]);
if (!Number.isInteger(uid)) throw new Error('the borealis system user is missing: run `borealis up` once (it creates it)');
const children: ChildProcess[] = [];
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-bench-storage-'));
fs.chmodSync(root, 0o755);
fs.chownSync(root, uid, gid);

function run(cmd: string, args: string[], opts: { asService?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { ...(opts.asService ? { uid, gid } : {}), env: { ...process.env, ...opts.env }, maxBuffer: 64 << 20, cwd: root }, (err, stdout, stderr) =>
      err ? reject(new Error(`${path.basename(cmd)} failed: ${stderr}`)) : resolve(stdout + stderr),
    ),
  );
}

async function startPostgres(port: number): Promise<{ dataDir: string; child: ChildProcess }> {
  const dataDir = path.join(root, `pg-${port}`);
  await run(path.join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C'], { asService: true });
  fs.appendFileSync(
    path.join(dataDir, 'postgresql.conf'),
    [`port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dataDir}'`, 'wal_level = replica', 'max_wal_senders = 16', 'max_replication_slots = 16', 'fsync = on', 'shared_buffers = 256MB', "borealis.term = '1'", ''].join('\n'),
  );
  fs.appendFileSync(path.join(dataDir, 'pg_hba.conf'), 'host replication all 127.0.0.1/32 trust\n');
  const child = spawn(path.join(binDir, 'postgres'), ['-D', dataDir], { uid, gid, stdio: 'ignore' });
  children.push(child);
  for (let i = 0; i < 200; i++) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    try {
      await c.connect();
      await c.end();
      return { dataDir, child };
    } catch {
      await sleep(50);
    }
  }
  throw new Error('postgres 15 did not start');
}

async function sql(port: number, text: string): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await c.connect();
  await c.query(text);
  await c.end();
}

async function pgbench(port: number, args: string[]): Promise<string> {
  return run('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], { env: { PGSSLMODE: 'disable' } });
}

function tps(output: string): number {
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(output);
  if (!m) throw new Error(`no tps in pgbench output:\n${output}`);
  return Number(m[1]);
}

/** p50/p99 commit latency (ms) from pgbench's per-transaction log. */
async function latency(port: number): Promise<{ p50: number; p99: number }> {
  const prefix = path.join(root, `lat-${port}-${Date.now()}`);
  await pgbench(port, ['-N', '-c', '1', '-j', '1', '-T', String(latencySeconds), '-l', `--log-prefix=${prefix}`]);
  const file = fs.readdirSync(root).map((f) => path.join(root, f)).find((f) => f.startsWith(prefix))!;
  const us = fs.readFileSync(file, 'utf8').trim().split('\n').map((line) => Number(line.split(' ')[2])).sort((a, b) => a - b);
  fs.rmSync(file);
  const at = (q: number): number => Math.round(us[Math.min(us.length - 1, Math.floor(q * us.length))]! / 10) / 100;
  return { p50: at(0.5), p99: at(0.99) };
}

const NAMES = ['sn1', 'sn2', 'sn3', 'sn4', 'sn5', 'sn6'];
const ZONES = ['a', 'a', 'b', 'b', 'c', 'c'];

interface Standbys {
  readonly pids: number[];
  stop(): void;
}

function standbys(started: ChildProcess[]): Standbys {
  return { pids: started.map((c) => c.pid!), stop: () => started.forEach((c) => c.kill('SIGTERM')) };
}

function withReceivers(port: number): Standbys {
  const started: ChildProcess[] = [];
  for (const name of NAMES) {
    const dir = path.join(root, `recv-${port}-${name}`);
    fs.mkdirSync(dir);
    const child = spawn('pg_receivewal', ['-D', dir, '--synchronous', '-n', '-d', `host=127.0.0.1 port=${port} user=postgres application_name=${name}`], { stdio: 'ignore' });
    started.push(child);
    children.push(child);
  }
  return standbys(started);
}

function withMinimalReceivers(port: number): Standbys {
  const started: ChildProcess[] = [];
  const script = fileURLToPath(new URL('./minimal-wal-receiver.ts', import.meta.url));
  for (const name of NAMES) {
    // The storage node's V8 flags too: the ceiling for Node, tuned as well.
    const child = spawn(process.execPath, [...STORAGE_NODE_V8_FLAGS, '--import', 'tsx', script, String(port), name, path.join(root, `min-${port}-${name}`)], { stdio: ['ignore', 'ignore', 'inherit'] });
    started.push(child);
    children.push(child);
  }
  return standbys(started);
}

async function withStorageNodes(port: number): Promise<Standbys> {
  const token = randomBytes(16).toString('hex');
  const started: ChildProcess[] = [];
  const peers: Array<{ name: string; url: string }> = [];
  for (let i = 0; i < NAMES.length; i++) {
    const nodePort = await freePort();
    const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
    const child = spawn(process.execPath, [...STORAGE_NODE_V8_FLAGS, ...profile, BIN, 'storage-node', '--name', NAMES[i]!, '--zone', ZONES[i]!, '--dir', path.join(root, `sn-${port}-${NAMES[i]}`), '--port', String(nodePort)], { stdio: process.env.BENCH_NODE_LOG ? ['ignore', fs.openSync(`${process.env.BENCH_NODE_LOG}.${NAMES[i]}`, 'a'), 'inherit'] : 'ignore', env: { ...process.env, BOREALIS_STORAGE_TOKEN: token } });
    started.push(child);
    children.push(child);
    peers.push({ name: NAMES[i]!, url: `http://127.0.0.1:${nodePort}` });
  }
  for (const p of peers) {
    for (let i = 0; ; i++) {
      try {
        const res = await fetch(`${p.url}/term`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ term: 1, writer: { host: '127.0.0.1', port }, credentials: { user: 'postgres', password: '' }, peers, retainFromLsn: null }),
        });
        if (res.ok) break;
      } catch {
        if (i > 200) throw new Error(`storage node ${p.name} did not start`);
      }
      await sleep(50);
    }
  }
  return standbys(started);
}

async function waitStreaming(port: number, count: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await c.connect();
    const n = (await c.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'sn%'")).rows[0]!.n;
    await c.end();
    if (Number(n) >= count) return;
    await sleep(50);
  }
  throw new Error(`fewer than ${count} standbys streaming`);
}

type Setup = 'local' | 'pg_receivewal' | 'borealis' | 'node-minimal';

interface Result {
  readonly tps: number;
  readonly p50: number;
  readonly p99: number;
  /** CPU the six standby processes used per transaction during the throughput run, µs. */
  readonly standbyCpuUs: number;
  /** Of which in user mode. */
  readonly standbyUserUs: number;
}

async function measure(setup: Setup): Promise<Result> {
  const port = await freePort();
  const pgProc = await startPostgres(port);
  await pgbench(port, ['-i', '-q', '-s', values.scale]);
  let six: Standbys = { pids: [], stop: () => undefined };
  if (setup !== 'local') {
    six = setup === 'pg_receivewal' ? withReceivers(port) : setup === 'node-minimal' ? withMinimalReceivers(port) : await withStorageNodes(port);
    await waitStreaming(port, 6);
    await sql(port, `ALTER SYSTEM SET synchronous_standby_names = 'ANY 4 (${NAMES.join(', ')})'`);
    await sql(port, 'SELECT pg_reload_conf()');
    await sleep(300);
  }
  await sql(port, 'CHECKPOINT');
  const cpuBefore = cpuSeconds(six.pids);
  const t = tps(await pgbench(port, ['-N', '-c', '8', '-j', '2', '-T', String(seconds)]));
  const cpuAfter = cpuSeconds(six.pids);
  const perTransaction = (s: number): number => (s / (t * seconds)) * 1e6;
  const standbyUserUs = perTransaction(cpuAfter.user - cpuBefore.user);
  const standbyCpuUs = standbyUserUs + perTransaction(cpuAfter.system - cpuBefore.system);
  const l = await latency(port);
  six.stop();
  await sleep(process.env.BENCH_PROFILE_DIR ? 3000 : 0);
  pgProc.child.kill('SIGINT');
  await new Promise((r) => pgProc.child.once('exit', r));
  return { tps: t, ...l, standbyCpuUs, standbyUserUs };
}

const results: Record<Setup, Result[]> = { local: [], pg_receivewal: [], borealis: [], 'node-minimal': [] };
try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const setup of ['local', 'pg_receivewal', 'borealis', 'node-minimal'] as const) {
      if (values.only && values.only !== setup) continue;
      log(`round ${round}: ${setup}...`);
      const r = await measure(setup);
      results[setup].push(r);
      log(`  ${r.tps.toFixed(0)} tps, commit latency p50 ${r.p50} ms, p99 ${r.p99} ms, standbys' CPU ${r.standbyCpuUs.toFixed(0)} µs per transaction (user ${r.standbyUserUs.toFixed(0)})`);
    }
  }
} finally {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const m = (s: Setup): Result => ({
  tps: median(results[s].map((r) => r.tps)),
  p50: median(results[s].map((r) => r.p50)),
  p99: median(results[s].map((r) => r.p99)),
  standbyCpuUs: median(results[s].map((r) => r.standbyCpuUs)),
  standbyUserUs: median(results[s].map((r) => r.standbyUserUs)),
});
const cpu = (r: Result): string => `${r.standbyCpuUs.toFixed(0)} (user ${r.standbyUserUs.toFixed(0)})`;
if (values.only) process.exit(0);
const a = m('local');
const b = m('pg_receivewal');
const c = m('borealis');
const d = m('node-minimal');
const lines = [
  `| set-up | pgbench -N -c 8 -j 2 -T ${seconds} (tps) | commit latency at -c 1, p50 / p99 (ms) | the six standbys' CPU per transaction (µs) |`,
  '|---|---|---|---|',
  `| (a) local fsync, no standbys | ${a.tps.toFixed(0)} | ${a.p50} / ${a.p99} | |`,
  `| (b) 6× pg_receivewal --synchronous, ANY 4 | ${b.tps.toFixed(0)} (${(b.tps / a.tps).toFixed(2)}× a) | ${b.p50} / ${b.p99} | ${cpu(b)} |`,
  `| (c) 6 Borealis storage nodes, ANY 4 | ${c.tps.toFixed(0)} (${(c.tps / a.tps).toFixed(2)}× a, ${(c.tps / b.tps).toFixed(2)}× b) | ${c.p50} / ${c.p99} | ${cpu(c)} |`,
  `| (d) 6 minimal Node receivers, ANY 4 | ${d.tps.toFixed(0)} (${(d.tps / a.tps).toFixed(2)}× a, ${(d.tps / b.tps).toFixed(2)}× b; c/d = ${(c.tps / d.tps).toFixed(2)}) | ${d.p50} / ${d.p99} | ${cpu(d)} |`,
  '',
  `rounds: ${Object.entries(results).map(([k, v]) => `${k} ${v.map((r) => r.tps.toFixed(0)).join('/')}`).join('; ')} (medians above)`,
];
process.stdout.write(lines.join('\n') + '\n');
