// The writer endpoint after a failover: sessions that stay connected reach
// the new writer with their next transaction (their prepared statements
// too); a transaction open on the old writer ends with a connection error,
// and nothing sent through the writer endpoint ever runs on a reader.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis, portBase } from '../helpers/borealis.js';

let b: Borealis;

before(async () => {
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()), BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5' });
  await b.cliOk('instance', 'add', 'default', '--promotion-tier', '0');
  await b.sql('CREATE TABLE routed (who text, n int)', { tls: false });
});
after(async () => {
  if (process.env.BOREALIS_TEST_KEEP) await b?.down();
  else await b?.destroy();
});

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ ...b.pgConfig({ tls: false }), connectionTimeoutMillis: 60_000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const writerId = async (): Promise<string> => (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!.id;

/** SQLSTATE classes that say the connection went away: the client knows its transaction's fate is open or undone. */
const connectionLoss = (err: unknown): boolean => {
  const code = (err as { code?: string }).code;
  return code === undefined || code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03';
};

test('idle sessions on the writer endpoint reach the new writer after a failover; an open transaction is cut off', async () => {
  const before = await writerId();
  const idle = await Promise.all(Array.from({ length: 4 }, connect));
  for (const [i, c] of idle.entries()) {
    await c.query({ name: 'add', text: 'INSERT INTO routed VALUES ($1, $2)', values: [`idle-${i}`, 0] });
  }
  const open = await connect();
  await open.query('BEGIN');
  await open.query("INSERT INTO routed VALUES ('open', 0)");

  const failover = b.cli(['cluster', 'failover', 'default'], 300_000);
  // A transaction that begins during the failover waits for the new writer or is cut off; it never runs on a reader.
  const during = await connect();
  const duringResult = (async () => {
    await new Promise((r) => setTimeout(r, 300));
    try {
      const r = await during.query<{ r: boolean }>("INSERT INTO routed VALUES ('during', 0) RETURNING pg_is_in_recovery() AS r");
      return { ok: true as const, inRecovery: r.rows[0]!.r };
    } catch (err) {
      return { ok: false as const, err };
    }
  })();
  const f = await failover;
  assert.equal(f.code, 0, `failover: ${f.stderr}`);
  const now = await writerId();
  assert.notEqual(now, before, 'the writer moved');

  const d = await duringResult;
  if (d.ok) assert.equal(d.inRecovery, false, 'a write through the writer endpoint during the failover ran on the writer');
  else assert.ok(connectionLoss(d.err), `a write during the failover may only fail as a lost connection, not: ${(d.err as Error).message} (${(d.err as { code?: string }).code})`);

  await assert.rejects(open.query('COMMIT'), (err) => connectionLoss(err), 'the transaction open on the old writer ends with a connection error');

  for (const [i, c] of idle.entries()) {
    const r = await c.query<{ r: boolean }>({ name: 'add', text: 'INSERT INTO routed VALUES ($1, $2)', values: [`idle-${i}`, 1] }).then(() => c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'));
    assert.equal(r.rows[0]!.r, false, `idle session ${i} reached the new writer`);
  }
  const rows = await b.sql<{ who: string; n: number }>("SELECT who, n FROM routed WHERE who LIKE 'idle-%' ORDER BY who, n", { tls: false });
  assert.deepEqual(
    rows,
    idle.flatMap((_, i) => [
      { who: `idle-${i}`, n: 0 },
      { who: `idle-${i}`, n: 1 },
    ]),
  );
  assert.deepEqual(await b.sql("SELECT who FROM routed WHERE who = 'open'", { tls: false }), [], 'the cut-off transaction did not commit');
  for (const c of [...idle, open, during]) await c.end().catch(() => undefined);
});
