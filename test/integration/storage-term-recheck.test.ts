// A storage node's WAL receiver against a real PostgreSQL: a new term that
// arrives while the node is still connecting to the old writer (its startup
// and authentication in flight) must win. The node checks its term again
// once the connection is up and never streams from the writer it was just
// told to leave.
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
