// A writer that loses its disk while storage nodes are down: once the
// cluster has a system identifier its writer is only ever rebuilt from its
// storage quorum. With three of six nodes up (a read quorum) it is rebuilt
// from them; with fewer it waits, visibly, and never runs initdb.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis, portBase } from '../helpers/borealis.js';

let b: Borealis;
let systemId = '';

before(async () => {
  // Storage ports of their own: other Borealis homes on this machine take the default range at the same time.
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()) });
});
after(async () => {
  if (process.env.BOREALIS_TEST_KEEP) await b.down();
  else await b.destroy();
});

const query = <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => b.sql<T>(sql);
const cli = (...args: string[]): Promise<string> => b.cliOk(...args);



const writerSystemId = async (): Promise<string> => (await query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()'))[0]!.id;

async function writer() {
  return (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
}

/** Kills the writer's postgres and removes its data directory: its disk is gone. */
async function loseWriterDisk(): Promise<number> {
  const w = await writer();
  assert.ok(w.pid);
  process.kill(w.pid, 'SIGKILL');
  fs.rmSync(path.join(b.home, 'instances', w.id, 'data'), { recursive: true, force: true });
  return w.pid;
}

test('with three of six storage nodes down, a writer that lost its disk is rebuilt from the other three', async () => {
  await query('CREATE TABLE kept (n int)');
  await query('INSERT INTO kept SELECT generate_series(1, 100)');
  systemId = await writerSystemId();
  await b.waitFor('a base backup on every node', async () => (await b.status()).clusters[0]!.storage.nodes.every((n) => (n.backups ?? 0) >= 1 && n.state === 'streaming'));
  for (const n of ['sn1', 'sn2', 'sn3']) await cli('storage', 'stop-node', n);
  const pid = await loseWriterDisk();
  const w = await b.waitFor('the writer to come back', async () => {
    const x = await writer();
    return x.state === 'available' && x.pid !== pid ? x : null;
  }, 120_000);
  assert.ok(w);
  assert.equal(await writerSystemId(), systemId, 'the same system: rebuilt from storage, not initdb');
  assert.deepEqual(await query('SELECT count(*)::int AS n FROM kept'), [{ n: 100 }]);
  const events = (await b.cli(['events', '--json', '--limit', '200'])).stdout;
  assert.match(events, /rebuilding from base backup/);
});

test('with four of six down it waits for storage (state and event), never initialises, and is rebuilt once nodes return', async () => {
  await cli('storage', 'stop-node', 'sn4');
  await loseWriterDisk();
  const waiting = await b.waitFor('the writer to wait for storage', async () => {
    const s = (await b.status()).clusters[0]!;
    return String(s.status) === 'waiting-for-storage' ? s : null;
  }, 120_000);
  assert.equal(waiting.instances.find((i) => i.role === 'writer')?.pid, null, 'no postgres runs');
  type Event = { sourceId: string; kind: string; message: string };
  const events = JSON.parse((await b.cli(['events', '--json', '--limit', '200'])).stdout) as Event[];
  assert.ok(events.some((e) => e.kind === 'waiting-for-storage' && /2 of 6 storage nodes/.test(e.message)), JSON.stringify(events.slice(-10)));
  assert.ok(!fs.existsSync(path.join(b.home, 'instances', waiting.instances.find((i) => i.role === 'writer')!.id, 'data', 'PG_VERSION')), 'no data directory was initialised');
  for (const n of ['sn1', 'sn2', 'sn3', 'sn4']) await cli('storage', 'start-node', n);
  await b.waitFor('the writer to be rebuilt', async () => (await writer()).state === 'available', 180_000);
  assert.equal(await writerSystemId(), systemId);
  assert.deepEqual(await query('SELECT count(*)::int AS n FROM kept'), [{ n: 100 }]);
  // With the nodes back it takes writes again.
  await query('INSERT INTO kept VALUES (101)');
});
