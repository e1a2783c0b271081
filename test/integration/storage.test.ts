// Storage nodes against real PostgreSQL and real processes: the 4-of-6
// quorum, outages of nodes and of a zone, repair of wiped and corrupt nodes,
// refusal of bad input, and a writer rebuilt from storage after its data
// directory is lost, with every acknowledged commit kept.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { embeddedBinDir, resolveBinaries } from '../../src/engine/binaries.js';
import { baseSettings } from '../../src/engine/pg-settings.js';
import { PostgresServer } from '../../src/engine/postgres-server.js';
import { parseLsn } from '../../src/pgwire/replication.js';
import { ensureServiceUser } from '../../src/engine/service-user.js';
import { silentLogger } from '../../src/util/logger.js';
import { Borealis, freePort } from '../helpers/borealis.js';

interface NodeView {
  name: string;
  zone: string;
  state?: string;
  term?: number;
  timeline?: number;
  flushLsn?: string | null;
  port: number;
  pid: number | null;
  backups?: number;
}
interface StorageStatus {
  term: number;
  writeQuorum: number;
  nodes: NodeView[];
  backups: Array<{ id: string; startLsn: string; timeline: number }>;
}

const SEGMENT_BYTES = 16 * 1024 * 1024;
let b: Borealis;
let token = '';
const extra: PostgresServer[] = [];

before(async () => {
  b = await Borealis.start();
  token = fs.readFileSync(path.join(b.home, 'run', 'storage-token'), 'utf8').trim();
});
after(async () => {
  for (const s of extra) await s.stop(10_000);
  // BOREALIS_TEST_KEEP=1 keeps the home (logs, node directories) for a post-mortem.
  if (process.env.BOREALIS_TEST_KEEP) await b.down();
  else await b.destroy();
});

async function storage(): Promise<StorageStatus> {
  const r = await b.cli(['storage', 'status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StorageStatus;
}

async function node(name: string): Promise<NodeView> {
  return (await storage()).nodes.find((n) => n.name === name)!;
}

async function cli(...args: string[]): Promise<void> {
  const r = await b.cli(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
}

const lsnValue = (lsn: string | null | undefined): bigint => parseLsn(lsn ?? '0/0');

/** The writer's current WAL end, once four nodes have it (the commit path waits for that). */
async function writerLsn(): Promise<bigint> {
  const c = new pg.Client(b.pgConfig());
  await c.connect();
  try {
    return lsnValue((await c.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l')).rows[0]!.l);
  } finally {
    await c.end();
  }
}

async function allStreamingAt(lsn: bigint, names?: string[]): Promise<StorageStatus> {
  return b.waitFor(`storage nodes streaming past ${lsn}`, async () => {
    const s = await storage();
    const nodes = s.nodes.filter((n) => !names || names.includes(n.name));
    return nodes.every((n) => n.state === 'streaming' && lsnValue(n.flushLsn) >= lsn) ? s : null;
  });
}

const query = <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> => b.sql<T>(sql, { params });

function nodeLog(name: string): string {
  return fs.readFileSync(path.join(b.home, 'storage', 'default', `${name}.log`), 'utf8');
}

async function nodeApi(name: string, method: string, route: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; json: { error?: string; message?: string; term?: number } }> {
  const n = await node(name);
  const res = await fetch(`http://127.0.0.1:${n.port}${route}`, { method, headers: { authorization: `Bearer ${token}`, ...headers }, ...(body !== undefined ? { body } : {}) });
  return { status: res.status, json: (await res.json()) as { error?: string; message?: string; term?: number } };
}

test('six storage nodes in three zones follow the writer, which commits on ANY 4 of them', async () => {
  await query('CREATE TABLE acked (id int PRIMARY KEY)');
  const s = await allStreamingAt(await writerLsn());
  assert.deepEqual(
    s.nodes.map((n) => `${n.name}:${n.zone}`),
    ['sn1:a', 'sn2:a', 'sn3:b', 'sn4:b', 'sn5:c', 'sn6:c'],
  );
  assert.equal(s.term, 1);
  assert.equal(s.writeQuorum, 4);
  assert.ok(s.backups.length >= 1, 'a base backup is taken at cluster creation');
  const names = (await query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s"))[0]!.s;
  assert.equal(names, 'ANY 4 (sn1, sn2, sn3, sn4, sn5, sn6)');
  const repl = await query<{ application_name: string; sync_state: string }>("SELECT application_name, sync_state FROM pg_stat_replication WHERE application_name LIKE 'sn%' ORDER BY 1");
  assert.deepEqual(repl.map((r) => `${r.application_name}:${r.sync_state}`), ['sn1:quorum', 'sn2:quorum', 'sn3:quorum', 'sn4:quorum', 'sn5:quorum', 'sn6:quorum']);
  const human = await b.cli(['storage', 'status']);
  assert.match(human.stdout, /sn3 +zone b +streaming +term 1/);
  const status = await b.status();
  assert.equal(status.clusters[0]!.storage.nodes.length, 6);
  // Each node holds its own copy: PostgreSQL-named segments with a checksum trailer.
  for (const n of s.nodes) {
    const wal = path.join(b.home, 'storage', 'default', n.name, 'wal');
    assert.ok(fs.readdirSync(wal).some((f) => /^[0-9A-F]{24}$/.test(f) && fs.statSync(path.join(wal, f)).size > SEGMENT_BYTES));
  }
});

test('two nodes down (a whole zone): commits go on; a third down: they wait; one back: they complete', async () => {
  await cli('storage', 'stop-node', 'sn1');
  await cli('storage', 'stop-node', 'sn2');
  await query('INSERT INTO acked VALUES (1)');
  await cli('storage', 'stop-node', 'sn3');
  const c = new pg.Client(b.pgConfig());
  await c.connect();
  let settled: 'pending' | 'ok' | 'error' = 'pending';
  const insert = c.query('INSERT INTO acked VALUES (2)').then(
    () => (settled = 'ok'),
    () => (settled = 'error'),
  );
  await sleep(2000);
  assert.equal(settled, 'pending', 'with three nodes down a commit is neither acknowledged nor failed');
  await cli('storage', 'start-node', 'sn3');
  await insert;
  assert.equal(settled, 'ok');
  await c.end();
  await cli('storage', 'start-node', 'sn1');
  await cli('storage', 'start-node', 'sn2');
  await allStreamingAt(await writerLsn());
  assert.deepEqual((await query<{ id: number }>('SELECT id FROM acked ORDER BY id')).map((r) => r.id), [1, 2]);
});

test('a wiped node refills from its peers and rejoins', async () => {
  await cli('storage', 'stop-node', 'sn4');
  await query('INSERT INTO acked SELECT generate_series(10, 5000)');
  fs.rmSync(path.join(b.home, 'storage', 'default', 'sn4'), { recursive: true, force: true });
  await cli('storage', 'start-node', 'sn4');
  const s = await allStreamingAt(await writerLsn(), ['sn4']);
  const sn4 = s.nodes.find((n) => n.name === 'sn4')!;
  assert.equal(sn4.term, s.term);
  assert.ok((sn4.backups ?? 0) >= 1, 'the base backups come back too');
  assert.match(nodeLog('sn4'), /repairing from a peer.*this node holds no WAL/);
});

test('a corrupt byte in a segment is found, repaired from peers, and the node rejoins', async () => {
  const walDir = (name: string): string => path.join(b.home, 'storage', 'default', name, 'wal');
  // A segment that is complete (the writer has moved past it) and kept by retention.
  await query('SELECT pg_switch_wal()');
  await query('INSERT INTO acked VALUES (5001)');
  await allStreamingAt(await writerLsn());
  await cli('storage', 'stop-node', 'sn5');
  const segments = fs.readdirSync(walDir('sn5')).filter((f) => /^[0-9A-F]{24}$/.test(f) && fs.existsSync(path.join(walDir('sn6'), f))).sort();
  const victim = segments[segments.length - 2]!;
  const file = path.join(walDir('sn5'), victim);
  const bytes = fs.readFileSync(file);
  bytes[100_000] = bytes[100_000]! ^ 0x5a;
  fs.writeFileSync(file, bytes);
  const wal = (f: string): Buffer => fs.readFileSync(f).subarray(0, SEGMENT_BYTES);
  assert.notDeepEqual(wal(file), wal(path.join(walDir('sn6'), victim)));
  await cli('storage', 'start-node', 'sn5');
  await allStreamingAt(await writerLsn(), ['sn5']);
  const log = nodeLog('sn5');
  assert.match(log, /fails its checksum; it will be repaired from peers/);
  assert.match(log, /repair finished/);
  assert.ok(wal(file).equals(wal(path.join(walDir('sn6'), victim))), 'the segment is the peers\' again');
});

test('base backups on demand; WAL older than the oldest kept backup is dropped from every node', async () => {
  for (let i = 0; i < 3; i++) {
    await query('SELECT pg_switch_wal()');
    await query('INSERT INTO acked SELECT generate_series($1::int, $1::int + 500)', [7000 + i * 1000]);
    const r = await b.cli(['storage', 'backup']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /base backup b-[a-z0-9-]+ stored/);
  }
  const s = await storage();
  assert.equal(s.backups.length, 2, 'storageBackupsKept (2) are kept');
  const oldest = s.backups[0]!.startLsn;
  const keepFrom = Number(lsnValue(oldest) / BigInt(SEGMENT_BYTES));
  await b.waitFor('old WAL to be dropped', async () => {
    for (const n of (await storage()).nodes) {
      const segments = fs.readdirSync(path.join(b.home, 'storage', 'default', n.name, 'wal')).filter((f) => /^[0-9A-F]{24}$/.test(f)).map((f) => parseInt(f.slice(8, 16), 16) * 256 + parseInt(f.slice(16), 16));
      if (segments.length === 0 || Math.min(...segments) < keepFrom) return false;
    }
    return true;
  });
  for (const n of s.nodes) assert.equal((await node(n.name)).backups, 2);
});

test('bad input: wrong token, garbage, an older term, a bad backup, another system: refused, nothing harmed', async () => {
  const before = await node('sn6');
  const noToken = await fetch(`http://127.0.0.1:${before.port}/status`);
  assert.equal(noToken.status, 401);
  assert.equal((await nodeApi('sn6', 'POST', '/term', '{not json')).status, 400);
  assert.equal((await nodeApi('sn6', 'POST', '/term', JSON.stringify({ term: 'x' }))).status, 400);
  const old = await nodeApi('sn6', 'POST', '/term', JSON.stringify({ term: 0, writer: { host: '127.0.0.1', port: 1 }, credentials: { user: 'x', password: 'y' }, peers: [], retainFromLsn: null }));
  assert.equal(old.status, 400, 'term 0 is not a term');
  const sameTermOtherWriter = await nodeApi('sn6', 'POST', '/term', JSON.stringify({ term: before.term, writer: { host: '127.0.0.1', port: 1 }, credentials: { user: 'x', password: 'y' }, peers: [], retainFromLsn: null }));
  assert.equal(sameTermOtherWriter.status, 409);
  assert.equal(sameTermOtherWriter.json.error, 'StaleTerm');
  assert.equal((await nodeApi('sn6', 'GET', '/wal/not-a-segment')).status, 400);
  const info = { id: 'b-bogus', systemId: 'x', timeline: 1, startLsn: '0/0', endLsn: '0/0', sha256: '0'.repeat(64), bytes: 5, createdAt: new Date().toISOString() };
  const bad = await nodeApi('sn6', 'PUT', '/backups/b-bogus', 'hello', { 'x-borealis-backup': JSON.stringify(info), 'content-type': 'application/x-tar' });
  assert.ok(bad.status === 400 || bad.status === 409, `bogus backup refused (${bad.status})`);
  assert.ok(!fs.existsSync(path.join(b.home, 'storage', 'default', 'sn6', 'backups', 'b-bogus.tar')));

  // A writer of another system, offered in a newer term: refused, its WAL never written.
  const identity = ensureServiceUser('borealis');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-foreign-'));
  fs.chmodSync(dir, 0o711);
  const port = await freePort();
  const foreign = new PostgresServer({ binaries: resolveBinaries(embeddedBinDir()), dataDir: path.join(dir, 'data'), socketDir: path.join(dir, 'run'), port, logFile: path.join(dir, 'pg.log'), identity, superuser: 'postgres', log: silentLogger });
  extra.push(foreign);
  await foreign.initdb();
  foreign.writeConfig({ ...baseSettings(port, path.join(dir, 'run'), foreign.options.binaries.majorVersion), 'borealis.term': String(before.term! + 1) });
  await foreign.start(60_000);
  const c = new pg.Client({ host: path.join(dir, 'run'), port, user: 'postgres', database: 'postgres' });
  await c.connect();
  await c.query("ALTER ROLE postgres PASSWORD 'foreign-pass'");
  await c.end();
  const peers = (await storage()).nodes.map((n) => ({ name: n.name, url: `http://127.0.0.1:${n.port}` }));
  const moved = await nodeApi('sn6', 'POST', '/term', JSON.stringify({ term: before.term! + 1, writer: { host: '127.0.0.1', port }, credentials: { user: 'postgres', password: 'foreign-pass' }, peers, retainFromLsn: null }));
  assert.equal(moved.status, 200);
  await b.waitFor('sn6 to refuse the foreign writer', async () => /refusing the writer.*belongs to system/.test(nodeLog('sn6')) && (await node('sn6')).state === 'refused');
  // Terms never go back: the old term is refused now.
  const stale = await nodeApi('sn6', 'POST', '/term', JSON.stringify({ term: before.term, writer: { host: '127.0.0.1', port: 1 }, credentials: { user: 'x', password: 'y' }, peers, retainFromLsn: null }));
  assert.equal(stale.status, 409);
  assert.match(stale.json.message ?? '', /older than this node's term/);
  // From now on it takes nothing: neither the foreign WAL nor, in a term it left, the real writer's.
  const flushBefore = (await node('sn6')).flushLsn;
  const walDir = path.join(b.home, 'storage', 'default', 'sn6', 'wal');
  const filesBefore = fs.readdirSync(walDir).sort();
  // The real writer still commits on the other five.
  await query('INSERT INTO acked VALUES (6000)');
  await sleep(1000);
  assert.equal((await node('sn6')).state, 'refused');
  assert.equal((await node('sn6')).flushLsn, flushBefore);
  assert.deepEqual(fs.readdirSync(walDir).sort(), filesBefore);
});

test('kill -9 the writer and delete its data: it is rebuilt from storage with every acknowledged commit', async () => {
  const acked: number[] = [];
  let next = 100_000;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      const id = next++;
      const c = new pg.Client({ ...b.pgConfig(), connectionTimeoutMillis: 60_000 });
      try {
        await c.connect();
        c.on('error', () => undefined);
        await c.query('INSERT INTO acked VALUES ($1)', [id]);
        acked.push(id);
      } catch {
        // not acknowledged: may or may not be there
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  };
  const workers = Array.from({ length: 6 }, () => worker());
  await b.waitFor('some commits', () => Promise.resolve(acked.length >= 50));
  const pid = await b.writerPid();
  assert.ok(pid);
  const ackedBeforeKill = acked.length;
  process.kill(pid, 'SIGKILL');
  fs.rmSync(path.join(b.home, 'instances', 'default-instance-1', 'data'), { recursive: true, force: true });
  await b.waitFor('the writer to be rebuilt', async () => {
    const s = await b.status();
    const w = s.clusters[0]!.instances.find((i) => i.role === 'writer')!;
    return w.state === 'available' && w.pid !== pid;
  }, 120_000);
  await b.waitFor('commits after the rebuild', () => Promise.resolve(acked.length >= ackedBeforeKill + 50), 60_000);
  stop = true;
  await Promise.all(workers);
  const present = new Set((await query<{ id: number }>('SELECT id FROM acked')).map((r) => r.id));
  const lost = acked.filter((id) => !present.has(id));
  assert.deepEqual(lost, [], `acknowledged commits lost: ${lost.length} of ${acked.length}`);
  for (const id of [1, 2, 6000]) assert.ok(present.has(id));
  const events = await b.cli(['events', '--json', '--limit', '500']);
  assert.match(events.stdout, /rebuilding from base backup/);
  const metrics = await (await fetch(`http://127.0.0.1:${b.apiPort}/metrics`)).text();
  assert.match(metrics, /^borealis_storage_rebuilds_total\{cluster="default"\} 1$/m);
  const timeline = (await query<{ t: number }>('SELECT timeline_id AS t FROM pg_control_checkpoint()'))[0]!.t;
  assert.ok(timeline >= 2, 'the rebuilt writer runs on a new timeline');
  // All six follow the new writer in the new term, sn6 included (its stray term was passed).
  const s = await allStreamingAt(await writerLsn());
  assert.ok(s.term >= 3);
  assert.ok(s.nodes.every((n) => n.term === s.term && n.timeline === timeline));
  // The backups the nodes hold still count (the rebuild used one), and the new timeline gets its own.
  assert.ok(s.backups.length >= 1, 'the kept base backups are still shown after the rebuild');
  await b.waitFor('a base backup of the new timeline', async () => (await storage()).backups.some((x) => x.timeline === timeline), 60_000);
});
