// Promotion follows timelines, not LSNs alone. A reader that replayed WAL
// the storage quorum never acknowledged (storage stalled during a bulk
// insert) is left on an abandoned branch once the writer is rebuilt from
// storage onto a new timeline. A failover to it must not promote that
// branch: every commit acknowledged on the rebuilt writer would be lost.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { INTERNAL_SUPERUSER } from '../../src/control/identity.js';
import { Borealis, portBase } from '../helpers/borealis.js';
import { nemeses } from '../reliability/nemesis.js';

let b: Borealis;

before(async () => {
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()), BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5' });
  await b.cliOk('instance', 'add', 'default', '--promotion-tier', '0');
});
after(async () => {
  if (process.env.BOREALIS_TEST_KEEP) await b?.down();
  else await b?.destroy();
});

const READER = 'default-instance-2';
const WRITER = 'default-instance-1';

/** A statement as Borealis's own superuser over an instance's private socket (CHECKPOINT needs it). */
async function asAdmin(instance: string, sql: string): Promise<void> {
  const socketDir = path.join(b.home, 'instances', instance, 'run');
  const socket = fs.readdirSync(socketDir).find((f) => /^\.s\.PGSQL\.\d+$/.test(f))!;
  const c = new pg.Client({ host: socketDir, port: Number(socket.split('.').pop()), user: INTERNAL_SUPERUSER, database: 'postgres' });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

const instancePort = async (id: string): Promise<number> => (await b.status()).clusters[0]!.endpoints.find((e) => e.type === 'instance' && e.name === id)!.port;
const count = async (port: number, table: string): Promise<number> => (await b.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`, { port, tls: false }))[0]!.n;

test('a reader left on a branch storage did not keep is never promoted; acknowledged commits survive', async () => {
  await b.sql('CREATE TABLE acked (n int)', { tls: false });
  await b.sql('CREATE TABLE unacked (n int)', { tls: false });
  await b.sql('INSERT INTO acked SELECT generate_series(1, 10)', { tls: false });
  const readerPort = await instancePort(READER);
  await b.waitFor('the reader to replay the first rows', async () => (await count(readerPort, 'acked')) === 10, 60_000);

  // Storage stalls: a bulk insert's WAL reaches the reader, and of storage at most what its sockets buffer.
  const heal = await nemeses.pauseStorageNodes(b, ['sn1', 'sn2', 'sn3', 'sn4', 'sn5', 'sn6']).apply();
  let healed = false;
  try {
    const bulk = new pg.Client({ ...b.pgConfig({ tls: false }) });
    bulk.on('error', () => undefined);
    await bulk.connect();
    const hung = bulk.query('INSERT INTO unacked SELECT generate_series(1, 500000)').then(
      () => 'acknowledged',
      () => 'failed',
    );
    await b.waitFor('the reader to replay the unacknowledged insert', async () => (await count(readerPort, 'unacked')) === 500_000, 180_000);
    // The reader's own restartpoint writes those pages: what it flushed now lies past the branch point.
    await asAdmin(WRITER, 'CHECKPOINT');
    await new Promise((r) => setTimeout(r, 1_000));
    await asAdmin(READER, 'CHECKPOINT');

    // The writer loses its disk and dies: it is rebuilt from what storage holds, once storage answers.
    const w = (await b.status()).clusters[0]!.instances.find((i) => i.id === WRITER)!;
    fs.rmSync(path.join(b.home, 'instances', WRITER, 'data'), { recursive: true, force: true });
    process.kill(w.pid!, 'SIGKILL');
    await b.waitFor('the writer to go down', async () => (await b.status()).clusters[0]!.instances.find((i) => i.id === WRITER)!.state !== 'available', 60_000);
    await heal();
    healed = true;
    assert.equal(await hung, 'failed', 'the insert storage never held was not acknowledged');
    await bulk.end().catch(() => undefined);
  } finally {
    if (!healed) await heal();
  }
  // Commits acknowledged on the rebuilt writer, on its new timeline.
  await b.waitForCommit('the rebuilt writer to commit', 'INSERT INTO acked SELECT generate_series(11, 20)', 180_000);
  const [tl] = await b.sql<{ tl: string }>('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tl', { tls: false });
  assert.notEqual(tl!.tl, '00000001', 'the rebuilt writer runs on a new timeline');
  assert.equal(await count((await b.status()).clusters[0]!.endpoints.find((e) => e.type === 'writer')!.port, 'unacked'), 0, 'the rebuilt writer has none of the unacknowledged insert');

  const r = await b.cli(['cluster', 'failover', 'default', '--target', READER], 300_000);
  const s = (await b.status()).clusters[0]!;
  const writer = s.instances.find((i) => i.role === 'writer')!.id;
  if (r.code === 0) {
    // Also right: PostgreSQL found nothing of the branch flushed and replayed the chain storage holds.
    assert.equal(writer, READER);
  } else {
    assert.match(r.stderr, /cannot be promoted/, r.stderr);
    assert.equal(writer, WRITER, 'a refused failover leaves the writer in place');
    // The reader is cloned afresh and follows the writer again.
    await b.waitFor('the reader to be cloned afresh', async () => {
      try {
        return (await count(readerPort, 'acked')) === 20;
      } catch {
        return false;
      }
    }, 180_000);
  }
  const writerPort = (await b.status()).clusters[0]!.endpoints.find((e) => e.type === 'writer')!.port;
  await b.waitForCommit('the writer endpoint to take writes', 'INSERT INTO acked VALUES (21)');
  assert.deepEqual(await b.sql('SELECT min(n) AS lo, max(n) AS hi, count(*)::int AS n FROM acked', { port: writerPort, tls: false }), [{ lo: 1, hi: 21, n: 21 }], 'every acknowledged row is on the writer');
  assert.equal(await count(writerPort, 'unacked'), 0, 'nothing of the abandoned branch is on the writer');
  const outOfRecovery: string[] = [];
  for (const i of (await b.status()).clusters[0]!.instances) {
    const [row] = await b.sql<{ r: boolean }>('SELECT pg_is_in_recovery() AS r', { port: await instancePort(i.id), tls: false });
    if (!row!.r) outOfRecovery.push(i.id);
  }
  assert.equal(outOfRecovery.length, 1, `exactly one instance is out of recovery: ${outOfRecovery.join(', ')}`);
});
