// The serverless failure mode: thousands of short-lived clients at once
// against a writer whose max_connections is 100. Through the pool every one
// of them succeeds.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis } from '../helpers/borealis.js';

const CLIENTS = 2000;

let b: Borealis;
before(async () => {
  // One ACU at most: max_connections is sized from max capacity (100 per 2 GiB).
  b = await Borealis.start({ BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5', BOREALIS_DEFAULT_MAX_CAPACITY_ACU: '1' });
});
after(async () => {
  await b?.destroy();
});

test(`${CLIENTS} concurrent short-lived clients all succeed with max_connections = 100`, async () => {
  const admin = new pg.Client(b.pgConfig({ tls: false }));
  await admin.connect();
  assert.equal((await admin.query<{ max_connections: string }>('SHOW max_connections')).rows[0]!.max_connections, '100');
  await admin.end();

  const errors: string[] = [];
  let ok = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      const c = new pg.Client({ ...b.pgConfig({ tls: false }), connectionTimeoutMillis: 120_000 });
      try {
        await c.connect();
        const r = await c.query<{ n: number }>('SELECT $1::int AS n', [i]);
        if (r.rows[0]!.n === i) ok++;
        else errors.push(`client ${i}: wrong answer`);
      } catch (err) {
        errors.push(`client ${i}: ${(err as Error).message}`);
      } finally {
        await c.end().catch(() => undefined);
      }
    }),
  );
  assert.deepEqual(errors.slice(0, 5), []);
  assert.equal(ok, CLIENTS);
  const pools = (await b.status()).proxy.pools;
  assert.ok(pools.every((p) => p.servers <= 20), JSON.stringify(pools));
});
