// A host without writable cgroups: Borealis says so and everything else
// works; capacity still moves PostgreSQL settings and the pool size.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
const emptyRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-no-cgroups-'));
before(async () => {
  b = await Borealis.start({ BOREALIS_CGROUP_ROOT: emptyRoot, BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5' });
});
after(async () => {
  await b?.destroy();
  fs.rmSync(emptyRoot, { recursive: true, force: true });
});

test('degraded mode is reported, and clients and scaling still work', async () => {
  const s = await b.status();
  assert.match(s.capacity.enforcement, /^degraded: no cgroup v1 cpu\/memory hierarchy or cgroup v2 tree under /);
  const log = fs.readFileSync(path.join(b.home, 'logs', 'borealis.log'), 'utf8');
  assert.match(log, /degraded mode: PostgreSQL settings and pool size follow capacity/);
  const c = new pg.Client(b.pgConfig());
  await c.connect();
  assert.equal((await c.query<{ n: number }>('SELECT 1 AS n')).rows[0]!.n, 1);
  const before = (await c.query<{ w: string }>("SELECT current_setting('work_mem') AS w")).rows[0]!.w;
  await c.end();
  assert.equal((await b.cli(['cluster', 'modify', 'default', '--min', '2'])).code, 0);
  assert.equal((await b.status()).clusters[0]!.instances[0]!.capacityAcu, 2);
  const after = new pg.Client(b.pgConfig());
  await after.connect();
  const w = await b.waitFor('work_mem to follow capacity', async () => {
    const v = (await after.query<{ w: string }>("SELECT current_setting('work_mem') AS w")).rows[0]!.w;
    return v !== before ? v : null;
  }, 10_000);
  assert.notEqual(w, before);
  await after.end();
  const pool = (await b.status()).proxy.pools[0]!;
  assert.equal(pool.serversMax, 20, 'pool size follows capacity (2 ACU × 10, capped at 20)');
});
