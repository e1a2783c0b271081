// A commit the storage quorum does not hold is never acknowledged. With
// three storage nodes down a commit waits for the quorum; when that wait is
// cancelled (a CancelRequest, a statement timeout), PostgreSQL reports the
// commit as done with only a warning, although only the writer holds it.
// Borealis tells the client instead that the outcome is unknown (40003),
// through the proxy and through the Data API.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import pg from 'pg';
import { Borealis, PASSWORD } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({ BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5' });
  await b.sql('CREATE TABLE durable (n int)');
  for (const n of ['sn1', 'sn2', 'sn3']) await b.cliOk('storage', 'stop-node', n);
});
after(async () => {
  await b?.destroy();
});

test('a commit cancelled while it waits for the storage quorum is not acknowledged through the proxy', async () => {
  const c = new pg.Client(b.pgConfig({ tls: false }));
  c.on('error', () => undefined);
  await c.connect();
  const insert = c.query('INSERT INTO durable VALUES (1)');
  // It waits for four storage nodes; three are down.
  await new Promise((r) => setTimeout(r, 1_500));
  const canceller = new pg.Client(b.pgConfig({ tls: false })) as pg.Client & { cancel(client: pg.Client, query: unknown): void };
  canceller.cancel(c, (c as unknown as { activeQuery: unknown }).activeQuery);
  await assert.rejects(insert, (e: Error & { code?: string }) => e.code === '40003' && /outcome of this transaction is unknown/.test(e.message));
  await c.end().catch(() => undefined);
});

test('a Data API commit whose wait for the quorum is cancelled fails with SQLState 40003, not success', async () => {
  const key = JSON.parse(await b.cliOk('access-key', 'create', '--json')) as { accessKeyId: string; secretAccessKey: string };
  const resourceArn = (JSON.parse(await b.cliOk('cluster', 'describe', 'default', '--json')) as { dataApi: { resourceArn: string } }).dataApi.resourceArn;
  const secretArn = (await b.cliOk('secret', 'create', '--cluster', 'default', '--username', 'postgres', '--password', PASSWORD)).trim();
  const client = new RDSDataClient({ endpoint: `http://127.0.0.1:${b.dataApiPort}`, region: 'us-east-1', credentials: key, maxAttempts: 1 });
  try {
    const call = client.send(new ExecuteStatementCommand({ resourceArn, secretArn, sql: 'INSERT INTO durable VALUES (2)' }));
    call.catch(() => undefined);
    // PostgreSQL's statement timeout does not cover the wait at commit: cancel it as an operator would.
    const waiting = "SELECT pid FROM pg_stat_activity WHERE application_name = 'borealis-data-api' AND wait_event = 'SyncRep'";
    await b.waitFor('the Data API commit to wait for the quorum', async () => (await b.sql<{ pid: number }>(waiting)).length > 0, 30_000);
    await b.sql(`SELECT pg_cancel_backend(pid) FROM (${waiting}) w`);
    await assert.rejects(call, (e: Error) => e.name === 'DatabaseErrorException' && /SQLState: 40003$/.test(e.message));
  } finally {
    client.destroy();
  }
});

test('once the quorum is back, commits are acknowledged again', async () => {
  await b.cliOk('storage', 'start-node', 'sn3');
  await b.sql('INSERT INTO durable VALUES (3)');
  const rows = await b.sql<{ n: number }>('SELECT n FROM durable ORDER BY n');
  assert.ok(rows.some((r) => r.n === 3));
});
