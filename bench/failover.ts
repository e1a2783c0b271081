// Failover benchmark: consecutive writer faults under a write load, each
// timed from the fault to the first commit acknowledged through the writer
// endpoint, and every acknowledged row checked for on the last writer.
//
// Faults, in turn:
//   kill       kill -9 of the writer's postmaster and every process it started
//              (Borealis restarts it where it is);
//   hung       SIGSTOP of the writer's postmaster and every process it started,
//              as on a frozen host (found by the health probe, killed,
//              restarted where it is);
//   host-gone  kill -9 of the writer's processes but one, which stays stopped and
//              holds its shared memory, so it cannot restart where it is (as if
//              its host were gone): Borealis fails over to the reader.
// A round's time runs from the fault to the first commit acknowledged for
// an INSERT sent after the fault.
//
// Baselines measured in the same run on plain PostgreSQL (same binaries, no
// Borealis): `restart` is kill -9 then start the same data directory at once
// and commit; `promote` is kill -9 of a primary then pg_promote on its
// streaming standby and commit. Neither includes noticing the fault.
//
//   npm run bench:failover [-- --rounds 10 --clients 4 --kinds kill,hung,host-gone]
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { embeddedBinDir } from '../src/engine/binaries.js';
import { processTree, signalTree } from '../src/util/process-tree.js';
import { Borealis, freePort, portBase } from '../test/helpers/borealis.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10' },
    clients: { type: 'string', default: '4' },
    kinds: { type: 'string', default: 'kill,hung,host-gone' },
    'baseline-tries': { type: 'string', default: '3' },
  },
});
const ROUNDS = Number(values.rounds);
const CLIENTS = Number(values.clients);
const KINDS = values.kinds.split(',') as Kind[];
type Kind = 'kill' | 'hung' | 'host-gone';
for (const k of KINDS) if (!['kill', 'hung', 'host-gone'].includes(k)) throw new Error(`unknown fault kind "${k}" (kill, hung, host-gone)`);
/** Longer than local-instance.ts's STABLE_AFTER_MS: a crash after this long up is not a crash loop. */
const STABLE_WAIT_MS = 11_000;
/** No round may take longer than this to recover; the benchmark fails then. */
const ROUND_DEADLINE_MS = 120_000;

const log = (m: string): boolean => process.stderr.write(m + '\n');
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const now = (): number => Number(process.hrtime.bigint() / 1_000_000n);

// ---- Borealis ----

interface Ack {
  readonly client: number;
  readonly seq: number;
  /** When the INSERT was sent, and when its commit was acknowledged. */
  readonly sentAt: number;
  readonly at: number;
}

/** Clients inserting (client, seq) through the writer endpoint, reconnecting after any error. */
function writeLoad(b: Borealis): { acks: Ack[]; stop: () => Promise<void> } {
  const acks: Ack[] = [];
  let running = true;
  const loops = Array.from({ length: CLIENTS }, async (_, client) => {
    let seq = 0;
    while (running) {
      const c = new pg.Client({ ...b.pgConfig({ tls: false }), connectionTimeoutMillis: 10_000, query_timeout: 10_000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        while (running) {
          const n = ++seq;
          const sentAt = now();
          await c.query('INSERT INTO acked (client, seq) VALUES ($1, $2)', [client, n]);
          acks.push({ client, seq: n, sentAt, at: now() });
        }
      } catch {
        await sleep(20);
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  });
  return {
    acks,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function instances(b: Borealis) {
  return (await b.status()).clusters.find((c) => c.name === 'default')!.instances;
}

/** Every instance available, exactly one writer and a reader: ready for the next fault. */
async function settled(b: Borealis): Promise<boolean> {
  const all = await instances(b);
  return all.every((i) => i.state === 'available') && all.filter((i) => i.role === 'writer').length === 1 && all.some((i) => i.role === 'reader');
}

async function writerChildren(b: Borealis, readerId: string): Promise<number> {
  // The writer's WAL sender to the reader: stopped, it keeps the shared memory attached.
  const rows = await b.sql<{ pid: number }>(`SELECT pid FROM pg_stat_replication WHERE application_name = '${readerId}'`, { tls: false });
  if (!rows[0]) throw new Error(`the writer has no WAL sender for ${readerId}`);
  return rows[0].pid;
}

interface Round {
  readonly kind: Kind;
  readonly ms: number;
  readonly outcome: string;
}

async function fault(b: Borealis, kind: Kind, load: { acks: Ack[] }): Promise<Round> {
  const before = await instances(b);
  const writer = before.find((i) => i.role === 'writer')!;
  const reader = before.find((i) => i.role === 'reader')!;
  const pid = writer.pid!;
  let held: number | null = null;
  if (kind === 'host-gone') {
    held = await writerChildren(b, reader.id);
    process.kill(held, 'SIGSTOP');
  }
  const acked = load.acks.length;
  const t0 = now();
  // The postmaster and every process it started (each is in a process group of its own).
  const tree = processTree(pid);
  if (kind === 'hung') signalTree(pid, 'SIGSTOP');
  else if (kind === 'kill') signalTree(pid, 'SIGKILL');
  else for (const p of tree) if (p !== held) process.kill(p, 'SIGKILL');
  try {
    for (;;) {
      const first = load.acks.slice(acked).find((a) => a.sentAt > t0);
      if (first) {
        const after = (await instances(b)).find((i) => i.role === 'writer')!;
        return { kind, ms: first.at - t0, outcome: after.id !== writer.id ? `failed over from ${writer.id} to ${after.id}` : `${writer.id} restarted in place` };
      }
      if (now() - t0 > ROUND_DEADLINE_MS) throw new Error(`no commit ${ROUND_DEADLINE_MS} ms after the ${kind} fault\n${b.logTail()}`);
      await sleep(10);
    }
  } finally {
    if (held !== null) {
      try {
        process.kill(held, 'SIGKILL');
      } catch {
        // gone with its postmaster
      }
    }
    if (kind === 'hung') {
      for (const p of tree) {
        try {
          process.kill(p, 'SIGCONT');
        } catch {
          // the probe killed them, as it should
        }
      }
    }
  }
}

async function borealisRounds(): Promise<{ rounds: Round[]; lost: number; acked: number }> {
  const b = await Borealis.start({
    BOREALIS_STORAGE_PORT_BASE: String(portBase()),
    // Ready for load at once, and a reader that stays up between faults.
    BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '1',
  });
  try {
    await b.sql('CREATE TABLE acked (client int, seq int, PRIMARY KEY (client, seq))', { tls: false });
    await b.cliOk('instance', 'add', 'default');
    const load = writeLoad(b);
    const rounds: Round[] = [];
    try {
      await b.waitFor('commits under load', () => Promise.resolve(load.acks.length >= 50), 30_000);
      for (let i = 0; i < ROUNDS; i++) {
        const kind = KINDS[i % KINDS.length]!;
        await b.waitFor('every instance available with a reader', () => settled(b), ROUND_DEADLINE_MS);
        // Each fault a first crash, not part of a crash loop (which backs off
        // on purpose): an instance up this long restarts at once.
        await sleep(STABLE_WAIT_MS);
        // A little load on the settled cluster before the next fault.
        const base = load.acks.length;
        await b.waitFor('commits before the fault', () => Promise.resolve(load.acks.length >= base + 20), 30_000);
        const r = await fault(b, kind, load);
        rounds.push(r);
        log(`round ${i + 1}/${ROUNDS} ${kind}: first commit after ${r.ms} ms (${r.outcome})`);
      }
    } finally {
      await load.stop();
    }
    const have = new Set((await b.sql<{ k: string }>("SELECT client || ':' || seq AS k FROM acked", { tls: false })).map((r) => r.k));
    const lost = load.acks.filter((a) => !have.has(`${a.client}:${a.seq}`)).length;
    await b.destroy();
    return { rounds, lost, acked: load.acks.length };
  } catch (err) {
    // Kept for a look at what went wrong: its logs, the instances' postgres logs.
    await b.down();
    log(`the run failed; its home (logs in logs/ and instances/*/postgres.log) is kept at ${b.home}`);
    throw err;
  }
}

// ---- plain PostgreSQL baselines ----

const binDir = embeddedBinDir();
const ids = spawnSync('id', ['borealis'], { encoding: 'utf8' }).stdout;
const uid = Number(/uid=(\d+)/.exec(ids)?.[1]);
const gid = Number(/gid=(\d+)/.exec(ids)?.[1]);

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { uid, gid }, (err, stdout, stderr) => (err ? reject(new Error(`${path.basename(cmd)} failed: ${stderr}`)) : resolve(stdout))),
  );
}

function startPg(dataDir: string): ChildProcess {
  return spawn(path.join(binDir, 'postgres'), ['-D', dataDir], { uid, gid, stdio: 'ignore' });
}

/** Time until `text` (an INSERT unless told) commits on `port`, trying every 5 ms. */
async function firstCommit(port: number, t0: number, text = 'INSERT INTO acked VALUES (0, 0) ON CONFLICT DO NOTHING'): Promise<number> {
  for (;;) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5_000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query(text);
      return now() - t0;
    } catch {
      if (now() - t0 > ROUND_DEADLINE_MS) throw new Error(`plain PostgreSQL on ${port} took no commit`);
      await sleep(5);
    } finally {
      await c.end().catch(() => undefined);
    }
  }
}

async function killed(child: ChildProcess): Promise<void> {
  const exit = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exit;
}

async function plainBaselines(tries: number): Promise<{ restart: number[]; promote: number[] }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-bench-failover-'));
  fs.chmodSync(root, 0o755);
  fs.chownSync(root, uid, gid);
  const children: ChildProcess[] = [];
  const restart: number[] = [];
  const promote: number[] = [];
  try {
    const primary = path.join(root, 'primary');
    await run(path.join(binDir, 'initdb'), ['-D', primary, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C']);
    const port = await freePort();
    const conf = (p: number, dir: string): string =>
      [`port = ${p}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`, 'wal_level = replica', 'shared_buffers = 128MB', ''].join('\n');
    fs.appendFileSync(path.join(primary, 'postgresql.conf'), conf(port, primary));
    fs.appendFileSync(path.join(primary, 'pg_hba.conf'), 'host replication all 127.0.0.1/32 trust\n');
    let pgProc = startPg(primary);
    children.push(pgProc);
    await firstCommit(port, now(), 'CREATE TABLE acked (client int, seq int, PRIMARY KEY (client, seq))');
    // restart: kill -9, start again at once, commit.
    for (let i = 0; i < tries; i++) {
      await killed(pgProc);
      const t0 = now();
      pgProc = startPg(primary);
      children.push(pgProc);
      restart.push(await firstCommit(port, t0));
    }
    // promote: a standby made from a cold copy of the primary, streaming from it.
    for (let i = 0; i < tries; i++) {
      const exit = new Promise((r) => pgProc.once('exit', r));
      pgProc.kill('SIGINT');
      await exit;
      const standby = path.join(root, `standby-${i}`);
      await run('cp', ['-a', primary, standby]);
      const standbyPort = await freePort();
      fs.appendFileSync(path.join(standby, 'postgresql.conf'), conf(standbyPort, standby) + `primary_conninfo = 'host=127.0.0.1 port=${port} user=postgres'\n`);
      fs.writeFileSync(path.join(standby, 'standby.signal'), '');
      fs.chownSync(path.join(standby, 'standby.signal'), uid, gid);
      pgProc = startPg(primary);
      const standbyProc = startPg(standby);
      children.push(pgProc, standbyProc);
      await firstCommit(port, now());
      await waitStreaming(port);
      await killed(pgProc);
      const t0 = now();
      const s = new pg.Client({ host: '127.0.0.1', port: standbyPort, user: 'postgres', database: 'postgres' });
      await s.connect();
      await s.query('SELECT pg_promote(true, 60)');
      await s.end();
      promote.push(await firstCommit(standbyPort, t0));
      await killed(standbyProc);
      pgProc = startPg(primary);
      children.push(pgProc);
      await firstCommit(port, now());
    }
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await sleep(200);
    fs.rmSync(root, { recursive: true, force: true });
  }
  return { restart, promote };
}

async function waitStreaming(port: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await c.connect();
    const { rows } = await c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'");
    await c.end();
    if (rows[0]!.n > 0) return;
    await sleep(50);
  }
  throw new Error('the plain standby never streamed');
}

// ---- run ----

log(`plain PostgreSQL baselines (${values['baseline-tries']} tries each)...`);
const plain = await plainBaselines(Number(values['baseline-tries']));
log(`Borealis: ${ROUNDS} writer faults (${KINDS.join(', ')}) under ${CLIENTS} writing clients...`);
const result = await borealisRounds();

const report: string[] = [`failover (${ROUNDS} faults under ${CLIENTS} writing clients; ${result.acked} commits acknowledged):`];
for (const r of result.rounds) report.push(`  ${r.kind.padEnd(9)} ${String(r.ms).padStart(6)} ms  ${r.outcome}`);
const all = result.rounds.map((r) => r.ms);
report.push(`  all faults: p50 ${pct(all, 50)} ms, max ${Math.max(...all)} ms (goal: p50 ≤ 3000, max ≤ 10000)`);
const restartFloor = pct(plain.restart, 50);
const promoteFloor = pct(plain.promote, 50);
for (const kind of KINDS) {
  const ms = result.rounds.filter((r) => r.kind === kind).map((r) => r.ms);
  if (ms.length === 0) continue;
  const floor = kind === 'host-gone' ? promoteFloor : restartFloor;
  report.push(`  ${kind}: p50 ${pct(ms, 50)} ms, max ${Math.max(...ms)} ms; ${(pct(ms, 50) / floor).toFixed(1)}× plain PostgreSQL's ${kind === 'host-gone' ? 'promote' : 'restart'} (${floor} ms)`);
}
report.push(`  plain PostgreSQL: restart p50 ${restartFloor} ms, promote p50 ${promoteFloor} ms (no fault detection in either)`);
report.push(`  acknowledged rows lost: ${result.lost} (must be 0)`);
process.stdout.write(report.join('\n') + '\n');
if (result.lost > 0) process.exitCode = 1;
