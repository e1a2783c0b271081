// An automatic failover after the writer crashed in the middle of a bulk
// write: storage's durable end of WAL then lies inside a record (the writer
// flushes whole pages), which no replay can reach. The reader is brought to
// the last whole record before it instead, and promoted.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis, portBase } from '../helpers/borealis.js';
import { parseLsn } from '../../src/pgwire/replication.js';

let b: Borealis;

before(async () => {
  b = await Borealis.start({
    // Storage ports of their own: other Borealis homes on this machine take the default range at the same time.
    BOREALIS_STORAGE_PORT_BASE: String(portBase()),
    // The catch-up gives up after this long (the default, 120 s, only makes a failure slower to see).
    BOREALIS_ENGINE_START_TIMEOUT_MS: '30000',
  });
});
after(async () => {
  await b?.destroy();
});

const query = <T extends pg.QueryResultRow>(port: number, sql: string): Promise<T[]> => b.sql<T>(sql, { port, tls: false });

async function endpointPort(type: string, name = ''): Promise<number> {
  const e = (await b.status()).clusters[0]!.endpoints.find((x) => x.type === type && x.name === name);
  assert.ok(e, `no ${type} endpoint ${name}`);
  return e.port;
}


const durable = async (): Promise<bigint> => {
  const flushes = (await b.status()).clusters[0]!.storage.nodes.map((n) => parseLsn(n.flushLsn ?? '0/0')).sort((x, y) => (x > y ? -1 : x < y ? 1 : 0));
  return flushes[3] ?? 0n;
};

test('a writer killed during a bulk write fails over to its reader, which catches up to the last whole record storage holds', async () => {
  const writer = await endpointPort('writer');
  await query(writer, 'CREATE TABLE acked (n int)');
  await query(writer, 'CREATE TABLE bulk (n int, body text)');
  await query(writer, 'INSERT INTO acked SELECT generate_series(1, 100)');
  const added = await b.cli(['instance', 'add', 'default', '--promotion-tier', '1']);
  assert.equal(added.code, 0, added.stderr);
  const target = 'default-instance-2';
  const targetPort = await endpointPort('instance', target);
  await b.waitFor('the reader to replay the rows', async () => (await query<{ n: number }>(targetPort, 'SELECT count(*)::int AS n FROM acked'))[0]!.n === 100, 30_000);
  // The writer's sender to the reader stops (as in a partition); storage's senders go on.
  const [sender] = await query<{ pid: number }>(writer, `SELECT pid FROM pg_stat_replication WHERE application_name = '${target}'`);
  assert.ok(sender);
  process.kill(sender.pid, 'SIGSTOP');
  type Event = { id: number; sourceId: string; kind: string; message: string };
  const allEvents = async (): Promise<Event[]> => JSON.parse((await b.cli(['events', '--json', '--limit', '300'])).stdout) as Event[];
  const lastEvent = Math.max(0, ...(await allEvents()).map((e) => e.id));
  const since = async (): Promise<Event[]> => (await allEvents()).filter((e) => e.id > lastEvent);
  const bulk = new pg.Client({ ...b.pgConfig({ tls: false }), port: writer });
  bulk.on('error', () => undefined);
  try {
    await bulk.connect();
    const start = await durable();
    // One long transaction: WAL goes to storage a page at a time, records cut at page ends.
    // Never acknowledged: the writer dies under it (and the front door may hold the client meanwhile).
    void bulk.query("INSERT INTO bulk SELECT g, repeat(md5(g::text), 12) FROM generate_series(1, 20000000) g").catch(() => undefined);
    await b.waitFor('the bulk write to reach storage', async () => (await durable()) - start > 48n * 1024n * 1024n, 120_000);
    const pid = await b.writerPid();
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await b.waitFor('an automatic failover', async () => (await since()).some((e) => e.kind === 'failover'), 120_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${JSON.stringify((await since()).slice(-8), null, 1)}`);
    });
  } finally {
    process.kill(sender.pid, 'SIGKILL');
    void bulk.end().catch(() => undefined);
  }
  const events = await since();
  assert.ok(events.some((e) => e.sourceId === target && e.kind === 'catching-up'), JSON.stringify(events));
  assert.equal((await b.status()).clusters[0]!.instances.find((i) => i.id === target)?.role, 'writer');
  assert.deepEqual(await query(writer, 'SELECT count(*)::int AS n FROM acked'), [{ n: 100 }]);
  await query(writer, 'INSERT INTO acked VALUES (101)');
});
