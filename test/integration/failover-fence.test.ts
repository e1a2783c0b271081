// Fence first, then promote: a failover that cannot put its new term on a
// write quorum of storage nodes promotes nothing, and the old writer takes
// writes again once storage is back.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis, portBase } from '../helpers/borealis.js';

let b: Borealis;

before(async () => {
  // Storage ports of their own: other Borealis homes on this machine take the default range at the same time.
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()) });
});
after(async () => {
  if (process.env.BOREALIS_TEST_KEEP) await b?.down();
  else await b?.destroy();
});

const query = <T extends pg.QueryResultRow>(port: number, sql: string): Promise<T[]> => b.sql<T>(sql, { port, tls: false });
const cli = (...args: string[]): Promise<string> => b.cliOk(...args);

async function endpointPort(type: string, name = ''): Promise<number> {
  const e = (await b.status()).clusters[0]!.endpoints.find((x) => x.type === type && x.name === name);
  assert.ok(e, `no ${type} endpoint ${name}`);
  return e.port;
}



test('with three of six storage nodes down a failover is refused before anything is promoted', async () => {
  const writer = await endpointPort('writer');
  await query(writer, 'CREATE TABLE kept (n int)');
  await query(writer, 'INSERT INTO kept SELECT generate_series(1, 10)');
  await cli('instance', 'add', 'default', '--promotion-tier', '1');
  const readerPort = await endpointPort('instance', 'default-instance-2');
  await b.waitFor('the reader to replay the rows', async () => (await query<{ n: number }>(readerPort, 'SELECT count(*)::int AS n FROM kept'))[0]!.n === 10, 30_000);
  for (const n of ['sn1', 'sn2', 'sn3']) await cli('storage', 'stop-node', n);
  const r = await b.cli(['cluster', 'failover', 'default', '--target', 'default-instance-2']);
  assert.notEqual(r.code, 0, 'a failover with only three storage nodes reachable must not complete');
  assert.match(r.stderr, /only 3 of 6 storage nodes accepted term \d+; 4 are needed/);
  const s = (await b.status()).clusters[0]!;
  assert.equal(s.instances.find((i) => i.id === 'default-instance-1')?.role, 'writer');
  assert.equal(s.instances.find((i) => i.id === 'default-instance-2')?.role, 'reader');
  assert.deepEqual(await query(readerPort, 'SELECT pg_is_in_recovery() AS r'), [{ r: true }], 'the reader was never promoted');
  // The old writer comes back in a term of its own; with a fourth node back it commits.
  await b.waitFor('the old writer to run again', async () => (await b.status()).clusters[0]!.instances.find((i) => i.id === 'default-instance-1')?.state === 'available', 60_000);
  await cli('storage', 'start-node', 'sn3');
  await query(writer, 'INSERT INTO kept VALUES (11)');
  assert.deepEqual(await query(writer, 'SELECT count(*)::int AS n FROM kept'), [{ n: 11 }]);
  await b.waitFor('the reader to replay the new row', async () => (await query<{ n: number }>(readerPort, 'SELECT count(*)::int AS n FROM kept'))[0]!.n === 11, 30_000);
});
