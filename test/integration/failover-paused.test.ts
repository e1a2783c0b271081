// A failover to a reader of promotion tier 0 or 1 that auto-paused resumes
// it first instead of failing with "no available reader".
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis, portBase } from '../helpers/borealis.js';

let b: Borealis;

before(async () => {
  // Storage ports of their own: other Borealis homes on this machine take the default range at the same time.
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()) });
});
after(async () => {
  await b?.destroy();
});

async function api(method: string, route: string): Promise<number> {
  const token = fs.readFileSync(path.join(b.home, 'run', 'api-token'), 'utf8').trim();
  const res = await fetch(`http://127.0.0.1:${b.apiPort}${route}`, { method, headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

test('failover to a paused tier-1 reader resumes it and promotes it with every row', async () => {
  const c = new pg.Client(b.pgConfig());
  await c.connect();
  await c.query('CREATE TABLE kept (n int)');
  await c.query('INSERT INTO kept SELECT generate_series(1, 50)');
  await c.end();
  const added = await b.cli(['instance', 'add', 'default', '--promotion-tier', '1']);
  assert.equal(added.code, 0, added.stderr);
  assert.equal(await api('POST', '/v1/instances/default-instance-2/pause'), 200);
  const paused = (await b.status()).clusters[0]!.instances.find((i) => i.id === 'default-instance-2');
  assert.equal(paused?.state, 'paused');
  const r = await b.cli(['cluster', 'failover', 'default']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /default-instance-2 is the writer of default/);
  const s = (await b.status()).clusters[0]!;
  assert.equal(s.instances.find((i) => i.id === 'default-instance-2')?.role, 'writer');
  const w = new pg.Client(b.pgConfig());
  await w.connect();
  try {
    assert.deepEqual((await w.query('SELECT count(*)::int AS n FROM kept')).rows, [{ n: 50 }]);
    await w.query('INSERT INTO kept VALUES (51)');
  } finally {
    await w.end();
  }
});
