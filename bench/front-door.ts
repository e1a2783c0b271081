// Front-door benchmark, everything in one run so ratios hold on a noisy
// machine: pgbench through Borealis's proxy, through PgBouncer (Debian's,
// transaction mode, pool 20) and directly against the same PostgreSQL.
//
//   npm run bench:front-door [-- --seconds 10 --rounds 2 --idle-clients 5000]
//
// Parts: (1) pgbench -S -c 32 -j 2, also through a Node byte forwarder
// (bench/node-forwarder.ts: no parsing, no pooling), the floor for a pooler
// on Node's sockets; (2) pgbench -S -C -c 16 -j 2 (a new connection per
// transaction, the serverless pattern); (3) memory per idle client (proxy
// RSS growth with N authenticated idle clients).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { clusterServiceUserName } from '../src/engine/service-user.js';
import { Borealis, freePort, PASSWORD, rssKiB } from '../test/helpers/borealis.js';
import { cpuSeconds } from './proc-stat.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    scale: { type: 'string', default: '10' },
    'idle-clients': { type: 'string', default: '5000' },
    'skip-pgbouncer': { type: 'boolean', default: false },
  },
});

const log = (msg: string): boolean => process.stderr.write(msg + '\n');

function pgbench(args: string[], port: number): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], { env: { ...process.env, PGPASSWORD: PASSWORD, PGSSLMODE: 'disable' }, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`pgbench failed: ${stderr}`)) : resolve(stdout + stderr),
    ),
  );
}

function tps(output: string): number {
  const m = /tps = ([\d.]+) \((?:without initial connection time|including reconnection times)\)/.exec(output);
  if (!m) throw new Error(`no tps in pgbench output:\n${output}`);
  return Number(m[1]);
}

/** PgBouncer as the service user, reaching postgres on its private socket. */
async function startPgBouncer(socketDir: string, enginePort: number, verifier: string): Promise<{ port: number; child: ChildProcess; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-pgbouncer-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'userlist.txt'), `"postgres" "${verifier}"\n`);
  fs.writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `postgres = host=${socketDir} port=${enginePort} dbname=postgres user=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      "unix_socket_dir = ''",
      'auth_type = scram-sha-256',
      `auth_file = ${dir}/userlist.txt`,
      'pool_mode = transaction',
      'default_pool_size = 20',
      'max_client_conn = 10000',
      `logfile = ${dir}/pgbouncer.log`,
      '',
    ].join('\n'),
  );
  // As the cluster's own system user: only it may reach the instance's private socket.
  const ids = spawnSync('id', [clusterServiceUserName('borealis', 'default')], { encoding: 'utf8' }).stdout;
  const uid = Number(/uid=(\d+)/.exec(ids)?.[1]);
  const gid = Number(/gid=(\d+)/.exec(ids)?.[1]);
  for (const f of ['', 'userlist.txt', 'pgbouncer.ini']) fs.chownSync(path.join(dir, f), uid, gid);
  const child = spawn('pgbouncer', [path.join(dir, 'pgbouncer.ini')], { uid, gid, stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: PASSWORD, database: 'postgres' });
    try {
      await c.connect();
      await c.end();
      return { port, child, dir };
    } catch {
      await sleep(100);
    }
  }
  throw new Error('PgBouncer did not start');
}

/** The Node byte forwarder in front of postgres's private socket. */
async function startForwarder(socketDir: string, enginePort: number): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const script = fileURLToPath(new URL('./node-forwarder.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, String(port), socketDir, String(enginePort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the Node forwarder exited (${code})`)));
  });
  return { port, child };
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)]!;

// Capacity pinned at 8 ACUs (2 cores, the whole machine): this benchmark
// measures the front door, not the autoscaler, so the CPU quota must not
// differ between rounds.
const b = await Borealis.start({ BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '8', BOREALIS_DEFAULT_MAX_CAPACITY_ACU: '8' });
let bouncer: Awaited<ReturnType<typeof startPgBouncer>> | null = null;
let forwarder: Awaited<ReturnType<typeof startForwarder>> | null = null;
try {
  const status = await b.status();
  const instance = status.clusters[0]!.instances[0]!;
  const instanceDir = path.join(b.home, 'instances', instance.id);
  const enginePort = Number(/^port = (\d+)$/m.exec(fs.readFileSync(path.join(instanceDir, 'data', 'postgresql.conf'), 'utf8'))![1]);
  log(`init pgbench scale ${values.scale} on port ${enginePort}...`);
  await pgbench(['-i', '-q', '-s', values.scale], enginePort);
  const targets: Array<[string, number]> = [['direct', enginePort], ['borealis', b.proxyPort]];
  /** The pooler's own process, whose CPU per transaction is reported. */
  const poolerPid = new Map<string, number>([['borealis', status.supervisor.pid]]);
  if (!values['skip-pgbouncer']) {
    // pg_authid is for superusers: Borealis's own (borealis_admin), over the instance's private socket.
    const admin = new pg.Client({ host: path.join(instanceDir, 'run'), port: enginePort, user: 'borealis_admin', database: 'postgres' });
    await admin.connect();
    const verifier = (await admin.query<{ v: string }>("SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'postgres'")).rows[0]!.v;
    await admin.end();
    bouncer = await startPgBouncer(path.join(instanceDir, 'run'), enginePort, verifier);
    targets.splice(1, 0, ['pgbouncer', bouncer.port]);
    poolerPid.set('pgbouncer', bouncer.child.pid!);
  }
  forwarder = await startForwarder(path.join(instanceDir, 'run'), enginePort);
  poolerPid.set('forwarder', forwarder.child.pid!);
  // The forwarder only in part 1: with a new connection per transaction it
  // is direct plus a hop (a backend forked per connection).
  const parts: Array<[string, string[], Array<[string, number]>]> = [
    ['pgbench -S -c 32 -j 2', ['-S', '-c', '32', '-j', '2', '-T', values.seconds, '-n'], [...targets, ['forwarder', forwarder.port]]],
    ['pgbench -S -C -c 16 -j 2', ['-S', '-C', '-c', '16', '-j', '2', '-T', values.seconds, '-n'], targets],
  ];
  const report: string[] = [`${os.cpus().length} cores, PostgreSQL ${status.engine.version}, ${values.rounds} interleaved rounds of ${values.seconds} s`];
  for (const [name, args, partTargets] of parts) {
    const results = new Map<string, number[]>(partTargets.map(([t]) => [t, []]));
    const cpuPerTransaction = new Map<string, string[]>();
    for (let round = 1; round <= Number(values.rounds); round++) {
      for (const [target, port] of partTargets) {
        log(`${name}: round ${round}, ${target}...`);
        const pid = poolerPid.get(target);
        const cpuBefore = pid ? cpuSeconds([pid]) : null;
        const rate = tps(await pgbench(args, port));
        results.get(target)!.push(rate);
        if (pid && cpuBefore) {
          const after = cpuSeconds([pid]);
          const µs = (seconds: number): number => (seconds / (rate * Number(values.seconds))) * 1e6;
          const user = µs(after.user - cpuBefore.user);
          const system = µs(after.system - cpuBefore.system);
          cpuPerTransaction.set(target, [...(cpuPerTransaction.get(target) ?? []), `${(user + system).toFixed(0)} (user ${user.toFixed(0)}, system ${system.toFixed(0)})`]);
        }
      }
    }
    const med = new Map([...results].map(([t, xs]) => [t, median(xs)]));
    report.push(`${name}:`);
    for (const [t, xs] of results) report.push(`  ${t.padEnd(10)} ${xs.map((x) => x.toFixed(0)).join(' / ')} tps (median ${med.get(t)!.toFixed(0)})`);
    const borealis = med.get('borealis')!;
    const ratios = [`borealis/direct ${(borealis / med.get('direct')!).toFixed(2)}`];
    if (med.has('pgbouncer')) ratios.push(`borealis/pgbouncer ${(borealis / med.get('pgbouncer')!).toFixed(2)}`, `pgbouncer/direct ${(med.get('pgbouncer')! / med.get('direct')!).toFixed(2)}`);
    if (med.has('forwarder')) ratios.push(`borealis/forwarder ${(borealis / med.get('forwarder')!).toFixed(2)}`);
    report.push(`  ratios: ${ratios.join(', ')}`);
    for (const [t, xs] of cpuPerTransaction) report.push(`  ${t} process CPU per transaction, µs: ${xs.join(' / ')}`);
  }
  // Idle clients: authenticated, in a session, holding no server.
  const n = Number(values['idle-clients']);
  if (n > 0) {
    const pid = status.supervisor.pid;
    const before = rssKiB(pid);
    const clients: pg.Client[] = [];
    log(`opening ${n} idle clients...`);
    for (let i = 0; i < n; i += 250) {
      const batch = Array.from({ length: Math.min(250, n - i) }, () => new pg.Client(b.pgConfig({ tls: false })));
      await Promise.all(batch.map((c) => c.connect()));
      clients.push(...batch);
    }
    await sleep(2_000);
    const after = rssKiB(pid);
    const perClient = ((after - before) * 1024) / n;
    report.push(`idle clients: ${n} connected; proxy RSS ${Math.round(before / 1024)} MiB → ${Math.round(after / 1024)} MiB = ${(perClient / 1024).toFixed(1)} KiB per idle client`);
    await Promise.all(clients.map((c) => c.end()));
  }
  process.stdout.write(report.join('\n') + '\n');
} finally {
  forwarder?.child.kill('SIGTERM');
  if (bouncer) {
    bouncer.child.kill('SIGINT');
    fs.rmSync(bouncer.dir, { recursive: true, force: true });
  }
  await b.destroy();
}
