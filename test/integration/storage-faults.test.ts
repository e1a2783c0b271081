// Storage faults below the protocol, on real processes and real disks: a
// byte flipped in every copy of the newest base backup (a rebuild must not
// use it, and must still bring back every acknowledged commit), and one
// node's disk filling up (a small tmpfs mounted on its directory: commits
// go on with the other five, and the node rejoins once there is room).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { parseLsn } from '../../src/pgwire/replication.js';
import { Borealis, portBase } from '../helpers/borealis.js';

interface NodeView {
  name: string;
  state?: string;
  flushLsn?: string | null;
  lastError?: string | null;
  diskBytes?: number;
}
interface StorageStatus {
  term: number;
  nodes: NodeView[];
  backups: Array<{ id: string; startLsn: string; timeline: number }>;
}

let b: Borealis;
/** Mount points this file made: unmounted at the end whatever happens. */
const mounts: string[] = [];

before(async () => {
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()) });
  await query('CREATE TABLE acked (id int PRIMARY KEY, pad text)');
});
after(async () => {
  // Stopped first (nothing holds the mount), unmounted, then the home is removed.
  await b?.down().catch(() => undefined);
  for (const m of mounts.reverse()) execFileSync('umount', [m]);
  await b?.destroy();
});

const query = <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> => b.sql<T>(sql, { params });

async function storage(): Promise<StorageStatus> {
  const r = await b.cli(['storage', 'status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StorageStatus;
}

async function cli(...args: string[]): Promise<string> {
  const r = await b.cli(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const nodeDir = (name: string): string => path.join(b.home, 'storage', 'default', name);
const lsn = (text: string | null | undefined): bigint => parseLsn(text ?? '0/0');

async function writerFlush(): Promise<bigint> {
  return lsn((await query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l'))[0]!.l);
}

/** Inserts `count` rows from `from` in one commit; returns their ids once acknowledged. */
async function insertAcked(from: number, count: number, padBytes = 10): Promise<number[]> {
  await query('INSERT INTO acked SELECT g, repeat($3, $4) FROM generate_series($1::int, $1::int + $2::int - 1) g', [from, count, 'x', padBytes]);
  return Array.from({ length: count }, (_, i) => from + i);
}

async function missing(acked: readonly number[]): Promise<number[]> {
  const present = new Set((await query<{ id: number }>('SELECT id FROM acked')).map((r) => r.id));
  return acked.filter((id) => !present.has(id));
}

test('every copy of the newest base backup damaged: the rebuild refuses it, uses the older one, and keeps every acknowledged commit', async () => {
  const acked: number[] = [];
  acked.push(...(await insertAcked(1, 1000)));
  await cli('storage', 'backup');
  await query('SELECT pg_switch_wal()');
  acked.push(...(await insertAcked(2001, 1000)));
  await cli('storage', 'backup');
  const s = await storage();
  assert.equal(s.backups.length, 2);
  const newest = s.backups[s.backups.length - 1]!.id;
  // One byte flipped in the middle of the tar on every node: its SHA-256 no longer matches.
  for (const n of s.nodes) {
    const file = path.join(nodeDir(n.name), 'backups', `${newest}.tar`);
    const fd = fs.openSync(file, 'r+');
    try {
      const at = Math.floor(fs.fstatSync(fd).size / 2);
      const one = Buffer.alloc(1);
      fs.readSync(fd, one, 0, 1, at);
      one[0] = one[0]! ^ 0x01;
      fs.writeSync(fd, one, 0, 1, at);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  acked.push(...(await insertAcked(4001, 1000)));
  const pid = await b.writerPid();
  assert.ok(pid);
  process.kill(pid, 'SIGKILL');
  fs.rmSync(path.join(b.home, 'instances', 'default-instance-1', 'data'), { recursive: true, force: true, maxRetries: 10 });
  await b.waitFor('the writer to be rebuilt', async () => {
    const w = (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
    return w.state === 'available' && w.pid !== pid;
  }, 240_000);
  assert.deepEqual(await missing(acked), [], 'acknowledged commits lost');
  type Event = { kind: string; message: string };
  const events = JSON.parse(await cli('events', '--json', '--limit', '300')) as Event[];
  const refused = events.find((e) => e.kind === 'backup-unusable');
  assert.ok(refused, JSON.stringify(events.slice(-10)));
  // Each node checks a copy before it serves it, and the rebuild checks what it received.
  assert.match(refused.message, new RegExp(`verified copy of base backup ${newest} \\(sn1: (no verified backup|its copy does not match).*trying an older base backup`));
  assert.ok(events.some((e) => e.kind === 'rebuild' && e.message.includes(s.backups[0]!.id)), 'rebuilt from the older backup');
});

test('one node\'s disk fills up: commits go on with the other five, and the node catches up once there is room', async (t) => {
  const victim = 'sn2';
  await cli('storage', 'stop-node', victim);
  const dir = nodeDir(victim);
  const aside = `${dir}.aside`;
  fs.renameSync(dir, aside);
  fs.mkdirSync(dir);
  const used = Number(execFileSync('du', ['-sb', aside]).toString().split('\t')[0]);
  // Room for what it holds and a little more: the next WAL segments do not fit.
  const sizeMiB = Math.ceil(used / 1024 / 1024) + 20;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir]);
  } catch (err) {
    fs.rmdirSync(dir);
    fs.renameSync(aside, dir);
    t.skip(`cannot mount a tmpfs here: ${(err as Error).message}`);
    return;
  }
  mounts.push(dir);
  execFileSync('cp', ['-a', `${aside}/.`, dir]);
  fs.rmSync(aside, { recursive: true, force: true });
  await cli('storage', 'start-node', victim);

  // About 60 MB of WAL in commits of ~2 MB: the node's disk is full part-way, the commits are acknowledged anyway.
  const acked: number[] = [];
  const started = Date.now();
  for (let i = 0; i < 30; i++) acked.push(...(await insertAcked(100_000 + i * 1000, 1000, 2000)));
  const wroteMs = Date.now() - started;
  const full = await b.waitFor('the node to say its disk is full', async () => {
    const n = (await storage()).nodes.find((x) => x.name === victim)!;
    return n.lastError && /ENOSPC|no space/i.test(n.lastError) ? n : null;
  }, 60_000);
  assert.ok(lsn(full.flushLsn) < (await writerFlush()), 'the full node is behind the writer');
  const others = (await storage()).nodes.filter((n) => n.name !== victim);
  assert.ok(others.every((n) => n.state === 'streaming'), JSON.stringify(others));

  // Room again: it catches up to the writer and streams.
  execFileSync('mount', ['-o', 'remount,size=2g', dir]);
  const target = await writerFlush();
  await b.waitFor('the node to catch up', async () => {
    const n = (await storage()).nodes.find((x) => x.name === victim)!;
    return n.state === 'streaming' && lsn(n.flushLsn) >= target;
  }, 120_000);
  // Its WAL is whole: with two other nodes down, commits need it (four of the remaining four).
  await cli('storage', 'stop-node', 'sn1');
  await cli('storage', 'stop-node', 'sn3');
  try {
    acked.push(...(await insertAcked(200_000, 100)));
  } finally {
    await cli('storage', 'start-node', 'sn1');
    await cli('storage', 'start-node', 'sn3');
  }
  assert.deepEqual(await missing(acked), [], 'acknowledged commits lost');
  t.diagnostic(`60 MB of commits took ${wroteMs} ms with one node's disk full`);
});
