// A storage node's WAL receiver against a real PostgreSQL: a new term that
// arrives while the node is still connecting to the old writer (its startup
// and authentication in flight) must win. The node checks its term again
// once the connection is up and never streams from the writer it was just
// told to leave. And a segment that fails its checks when the node moves
// onto the writer's new timeline is handed over for repair, not retried as
// is for ever.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { embeddedBinDir, resolveBinaries } from '../../src/engine/binaries.js';
import { baseSettings } from '../../src/engine/pg-settings.js';
import { PostgresServer } from '../../src/engine/postgres-server.js';
import { ensureServiceUser } from '../../src/engine/service-user.js';
import { parseLsn, segmentOf, segmentStart, walFileName } from '../../src/pgwire/replication.js';
import { SegmentStore } from '../../src/storage/segment-store.js';
import { WalReceiver } from '../../src/storage/wal-receiver.js';
import type { NodeTerm } from '../../src/storage/protocol.js';
import { silentLogger } from '../../src/util/logger.js';
import { freePort } from '../helpers/borealis.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-recheck-'));
fs.chmodSync(root, 0o711);
let server: PostgresServer;
let port = 0;
const CREDENTIALS = { user: 'postgres', password: 'recheck-pass-1' };

before(async () => {
  port = await freePort();
  server = new PostgresServer({ binaries: resolveBinaries(embeddedBinDir()), dataDir: path.join(root, 'data'), socketDir: path.join(root, 'run'), port, logFile: path.join(root, 'pg.log'), identity: ensureServiceUser('borealis'), superuser: 'postgres', log: silentLogger });
  await server.initdb();
  server.writeConfig({ ...baseSettings(port, path.join(root, 'run'), server.options.binaries.majorVersion), 'borealis.term': '1' });
  await server.start(60_000);
  const c = new pg.Client({ host: path.join(root, 'run'), port, user: 'postgres', database: 'postgres' });
  await c.connect();
  await c.query(`ALTER ROLE postgres PASSWORD '${CREDENTIALS.password}'`);
  await c.end();
});
after(async () => {
  await server?.stop(10_000);
  fs.rmSync(root, { recursive: true, force: true });
});

/** A TCP relay to the writer that holds every connection until released. */
async function heldRelay(target: number): Promise<{ port: number; accepted: Promise<void>; release: () => void; close: () => void }> {
  const held: net.Socket[] = [];
  const upstreams: net.Socket[] = [];
  let released = false;
  let onAccept: () => void = () => undefined;
  const accepted = new Promise<void>((resolve) => (onAccept = resolve));
  const pipe = (s: net.Socket): void => {
    const up = net.connect(target, '127.0.0.1');
    upstreams.push(up);
    s.pipe(up).pipe(s);
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
  };
  const relay = net.createServer((s) => {
    s.pause();
    if (released) pipe(s);
    else held.push(s);
    onAccept();
  });
  const relayPort = await freePort();
  await new Promise<void>((resolve) => relay.listen(relayPort, '127.0.0.1', resolve));
  return {
    port: relayPort,
    accepted,
    release: () => {
      released = true;
      for (const s of held.splice(0)) pipe(s);
    },
    close: () => {
      for (const s of [...held, ...upstreams]) s.destroy();
      relay.close();
    },
  };
}

test('a term that moves on while the node connects is checked again before it streams', async () => {
  const relay = await heldRelay(port);
  const store = new SegmentStore(path.join(root, 'node-wal'));
  store.open();
  let term: NodeTerm & { credentials: typeof CREDENTIALS } = { term: 1, writer: { host: '127.0.0.1', port: relay.port }, systemId: null, credentials: CREDENTIALS };
  const receiver = new WalReceiver(
    store,
    {
      termState: () => term,
      adoptSystem: (systemId) => (term = { ...term, systemId }),
      beforeSession: () => Promise.resolve(),
      catchUpFromPeers: () => Promise.resolve(false),
      segmentCorrupt: () => undefined,
    },
    { name: 'sn1', connectTimeoutMs: 30_000, statusIntervalMs: 1000, retryMsMax: 500 },
    silentLogger,
  );
  try {
    receiver.start();
    await relay.accepted;
    assert.equal(receiver.state, 'connecting');
    // What POST /term does: the new term is persisted, then the stream is dropped (there is none yet).
    const gone = await freePort();
    term = { ...term, term: 2, writer: { host: '127.0.0.1', port: gone } };
    receiver.wake();
    relay.release();
    // The connection to the old writer now completes; the node must not stream from it.
    const deadline = Date.now() + 30_000;
    while (String(receiver.state) !== 'streaming' && !/term changed/.test(receiver.lastError ?? '') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.notEqual(String(receiver.state), 'streaming', 'the node streams from the writer of a term it has left');
    assert.match(receiver.lastError ?? '', /term changed/);
    const c = new pg.Client({ host: path.join(root, 'run'), port, user: 'postgres', database: 'postgres' });
    await c.connect();
    const senders = (await c.query("SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'sn1'")).rows[0] as { n: number };
    await c.end();
    assert.equal(senders.n, 0, 'no WAL sender for the node on the old writer');
  } finally {
    await receiver.stop();
    store.close();
    relay.close();
  }
});

test('a held segment that fails its checks on the move to the writer\'s new timeline is reported for repair', async () => {
  const store = new SegmentStore(path.join(root, 'node-wal-2'));
  store.open();
  let term: NodeTerm & { credentials: typeof CREDENTIALS } = { term: 1, writer: { host: '127.0.0.1', port }, systemId: null, credentials: CREDENTIALS };
  const corrupt: Array<{ timeline: number; segment: number }> = [];
  const host = {
    termState: () => term,
    adoptSystem: (systemId: string) => void (term = { ...term, systemId }),
    beforeSession: () => Promise.resolve(),
    catchUpFromPeers: () => Promise.resolve(false),
    segmentCorrupt: (timeline: number, segment: number) => void corrupt.push({ timeline, segment }),
  };
  const options = { name: 'sn2', connectTimeoutMs: 30_000, statusIntervalMs: 200, retryMsMax: 200 };
  const c = new pg.Client({ host: path.join(root, 'run'), port, user: 'postgres', database: 'postgres' });
  await c.connect();
  // The writer's end of WAL at least 32 KB into a segment and well before its end: the switch will fall in the same segment.
  await c.query('CREATE TABLE filler (g int)');
  for (let i = 0; i < 200; i++) {
    const lsn = parseLsn((await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l);
    const offset = Number(lsn - segmentStart(segmentOf(lsn)));
    if (offset >= 32 * 1024 && offset < 15 * 1024 * 1024) break;
    if (offset >= 15 * 1024 * 1024) await c.query('SELECT pg_switch_wal()');
    await c.query('INSERT INTO filler SELECT generate_series(1, 1000)');
  }
  const end = parseLsn((await c.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l')).rows[0]!.l);
  await c.end();
  let receiver = new WalReceiver(store, host, options, silentLogger);
  try {
    receiver.start();
    const deadline = Date.now() + 30_000;
    while ((store.state?.flushLsn ?? 0n) < end) {
      assert.ok(Date.now() < deadline, `the node never reached the writer's end of WAL: ${receiver.lastError}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await receiver.stop();
    const held = store.state!;
    assert.equal(held.timeline, 1);
    // A bit flips in a whole page before the node's end (the store has it verified and open; nothing reads it again until the switch).
    const seg = segmentOf(held.flushLsn);
    const page = Math.floor(Number(held.flushLsn - segmentStart(seg)) / 8192) - 1;
    const fd = fs.openSync(path.join(root, 'node-wal-2', walFileName(1, seg)), 'r+');
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, page * 8192 + 100);
    byte[0] = byte[0]! ^ 0x40;
    fs.writeSync(fd, byte, 0, 1, page * 8192 + 100);
    fs.closeSync(fd);
    // The writer moves to timeline 2: restarted as a standby and promoted.
    await server.stop(10_000);
    fs.writeFileSync(path.join(root, 'data', 'standby.signal'), '');
    await server.start(60_000);
    assert.equal(await server.promote(30_000), true);
    receiver = new WalReceiver(store, host, options, silentLogger);
    receiver.start();
    const until = Date.now() + 30_000;
    while (corrupt.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(corrupt[0], { timeline: 1, segment: seg }, `the damaged segment was not reported for repair (last error: ${receiver.lastError})`);
    assert.equal(store.state!.timeline, 1, 'the node did not move onto the new timeline over WAL it cannot verify');
  } finally {
    await receiver.stop();
    store.close();
  }
});
