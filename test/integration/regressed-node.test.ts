// A storage node that regressed (its disk put back from an old copy) after
// it had acknowledged commits must not stand in for them in a read quorum:
// with it and two nodes that never had those commits, a writer that lost its
// disk waits instead of being rebuilt without them.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { parseLsn } from '../../src/pgwire/replication.js';
import { Borealis, portBase } from '../helpers/borealis.js';

let b: Borealis;

before(async () => {
  // Storage ports of their own: other Borealis homes on this machine take the default range at the same time.
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()), BOREALIS_RESTART_BACKOFF_MS_MAX: '1000' });
});
after(async () => {
  if (process.env.BOREALIS_TEST_KEEP) await b.down();
  else await b.destroy();
});

const query = <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => b.sql<T>(sql);
const cli = (...args: string[]): Promise<string> => b.cliOk(...args);



const nodeDir = (name: string): string => path.join(b.home, 'storage', 'default', name);
const flushOf = async (name: string): Promise<bigint> => parseLsn((await b.status()).clusters[0]!.storage.nodes.find((n) => n.name === name)?.flushLsn ?? '0/0');

test('a node put back from an old copy does not count toward the read quorum a rebuild needs', async () => {
  await query('CREATE TABLE acked (n int)');
  await query('INSERT INTO acked SELECT generate_series(1, 10)');
  await b.waitFor('every node streaming with a backup', async () => (await b.status()).clusters[0]!.storage.nodes.every((n) => n.state === 'streaming' && (n.backups ?? 0) >= 1));
  // An old copy of sn1's disk.
  await cli('storage', 'stop-node', 'sn1');
  const copy = `${nodeDir('sn1')}.old`;
  fs.cpSync(nodeDir('sn1'), copy, { recursive: true });
  await cli('storage', 'start-node', 'sn1');
  // sn5 and sn6 go down; commits then need sn1 to sn4, all four.
  await cli('storage', 'stop-node', 'sn5');
  await cli('storage', 'stop-node', 'sn6');
  await query('INSERT INTO acked SELECT generate_series(11, 2000)');
  const end = parseLsn((await query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l'))[0]!.l);
  await b.waitFor('sn1 to report the new commits', async () => (await flushOf('sn1')) >= end);
  // Every node goes down, and the writer loses its disk: it waits for storage.
  for (const n of ['sn1', 'sn2', 'sn3', 'sn4']) await cli('storage', 'stop-node', n);
  const w = (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
  process.kill(w.pid!, 'SIGKILL');
  fs.rmSync(path.join(b.home, 'instances', w.id, 'data'), { recursive: true, force: true });
  await b.waitFor('the writer to wait for storage', async () => String((await b.status()).clusters[0]!.status) === 'waiting-for-storage', 120_000);
  // sn1's disk goes back to the old copy; sn1, sn5 and sn6 come back: three nodes, none holding rows 11-2000.
  fs.rmSync(nodeDir('sn1'), { recursive: true, force: true });
  fs.renameSync(copy, nodeDir('sn1'));
  for (const n of ['sn1', 'sn5', 'sn6']) await cli('storage', 'start-node', n);
  type Event = { kind: string; message: string };
  const outcome = await b.waitFor('the writer to be rebuilt, or to wait without sn1', async () => {
    const s = (await b.status()).clusters[0]!;
    if (s.instances.find((i) => i.role === 'writer')!.state === 'available') return 'rebuilt';
    const events = JSON.parse((await b.cli(['events', '--json', '--limit', '100'])).stdout) as Event[];
    return events.some((e) => e.kind === 'waiting-for-storage' && /only 2 of 6 storage nodes/.test(e.message) && /sn1 regressed/.test(e.message)) ? 'waiting' : null;
  }, 120_000);
  assert.equal(outcome, 'waiting', 'rebuilt from a read quorum that misses acknowledged commits');
  // With the nodes that hold them back, it is rebuilt with every row.
  for (const n of ['sn2', 'sn3', 'sn4']) await cli('storage', 'start-node', n);
  await b.waitFor('the writer to be rebuilt', async () => (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!.state === 'available', 180_000);
  assert.deepEqual(await query('SELECT count(*)::int AS n FROM acked'), [{ n: 2000 }]);
});
