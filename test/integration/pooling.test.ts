// Transaction pooling with real clients: isolation of session state,
// pinning and its release, and protocol-level prepared statements across
// several servers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import postgres from 'postgres';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({ BOREALIS_SERVER_POOL_SIZE_MAX: '2' });
});
after(async () => {
  await b?.destroy();
});

async function connect(): Promise<pg.Client> {
  const c = new pg.Client(b.pgConfig({ tls: false }));
  await c.connect();
  return c;
}

async function proxyStatus() {
  return (await b.status()).proxy;
}

async function backendPids(n: number): Promise<Set<number>> {
  // Several clients in turn: in transaction mode they share the pool's servers.
  const clients = await Promise.all(Array.from({ length: n }, connect));
  const pids = new Set<number>();
  for (const c of clients) pids.add((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
  await Promise.all(clients.map((c) => c.end()));
  return pids;
}

test('many clients share a bounded pool of servers', async () => {
  const pids = await backendPids(8);
  assert.ok(pids.size >= 1 && pids.size <= 2, `8 clients used ${pids.size} servers`);
  const pool = (await proxyStatus()).pools.find((p) => p.user === 'postgres');
  assert.ok(pool && pool.servers <= 2);
});

test('session SET pins the client; others never see it; the pin ends with the client', async () => {
  const a = await connect();
  await a.query("SET search_path = pinned_schema, public");
  assert.equal((await proxyStatus()).pinnedClients, 1);
  const others = await Promise.all(Array.from({ length: 4 }, connect));
  for (const o of others) {
    const r = await o.query<{ search_path: string }>('SHOW search_path');
    assert.equal(r.rows[0]!.search_path, '"$user", public');
  }
  // The pinned client keeps its setting across transactions.
  await a.query('BEGIN');
  await a.query('COMMIT');
  assert.equal((await a.query<{ search_path: string }>('SHOW search_path')).rows[0]!.search_path, 'pinned_schema, public');
  await a.end();
  await Promise.all(others.map((o) => o.end()));
  await b.waitFor('the pin to end', async () => (await proxyStatus()).pinnedClients === 0);
  // The server it held was reset before reuse: every server shows defaults.
  const fresh = await Promise.all(Array.from({ length: 4 }, connect));
  for (const f of fresh) assert.equal((await f.query<{ search_path: string }>('SHOW search_path')).rows[0]!.search_path, '"$user", public');
  await Promise.all(fresh.map((f) => f.end()));
});

test('temporary tables, SQL PREPARE, LISTEN, advisory locks and WITH HOLD cursors pin', async () => {
  const cases: Array<[string, string]> = [
    ['CREATE TEMP TABLE t_pin (x int)', "SELECT count(*) FROM pg_class WHERE relname = 't_pin' AND relnamespace = pg_my_temp_schema()"],
    ['PREPARE q_pin AS SELECT 1', "SELECT count(*) FROM pg_prepared_statements WHERE name = 'q_pin'"],
    ['LISTEN chan_pin', "SELECT count(*) FROM pg_listening_channels() c WHERE c = 'chan_pin'"],
    ['SELECT pg_advisory_lock(4242)', 'SELECT count(*) FROM pg_locks WHERE locktype = \'advisory\' AND objid = 4242 AND pid = pg_backend_pid()'],
    ["SELECT set_config('statement_timeout', '12345', false)", "SELECT count(*) FROM pg_settings WHERE name = 'statement_timeout' AND setting = '12345'"],
  ];
  for (const [pinning, probe] of cases) {
    const a = await connect();
    await a.query(pinning);
    assert.equal((await proxyStatus()).pinnedClients, 1, pinning);
    // The pinned client still sees its state on later transactions.
    assert.equal(Number((await a.query<{ count: string }>(probe)).rows[0]!.count), 1, `${pinning}: own state kept`);
    const others = await Promise.all(Array.from({ length: 3 }, connect));
    for (const o of others) assert.equal(Number((await o.query<{ count: string }>(probe)).rows[0]!.count), 0, `${pinning}: not visible to others`);
    await Promise.all(others.map((o) => o.end()));
    await a.end();
    await b.waitFor(`unpin after ${pinning}`, async () => (await proxyStatus()).pinnedClients === 0);
    // After the reset, no server carries the state any more.
    const after = await Promise.all(Array.from({ length: 3 }, connect));
    for (const o of after) assert.equal(Number((await o.query<{ count: string }>(probe)).rows[0]!.count), 0, `${pinning}: reset`);
    await Promise.all(after.map((o) => o.end()));
  }
  const c = await connect();
  await c.query('BEGIN');
  await c.query('DECLARE cur CURSOR WITH HOLD FOR SELECT 1');
  await c.query('COMMIT');
  assert.equal((await proxyStatus()).pinnedClients, 1);
  assert.equal((await c.query('FETCH cur')).rowCount, 1);
  await c.end();
});

test('transaction-local state does not pin and does not leak', async () => {
  const a = await connect();
  await a.query('BEGIN');
  await a.query("SET LOCAL search_path = local_only");
  await a.query('COMMIT');
  assert.equal((await proxyStatus()).pinnedClients, 0);
  const o = await connect();
  assert.equal((await o.query<{ search_path: string }>('SHOW search_path')).rows[0]!.search_path, '"$user", public');
  await Promise.all([a.end(), o.end()]);
});

test('a transaction keeps one server from BEGIN to COMMIT', async () => {
  const clients = await Promise.all(Array.from({ length: 4 }, connect));
  await Promise.all(
    clients.map(async (c) => {
      await c.query('BEGIN');
      const first = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await new Promise((r) => setTimeout(r, 20));
      const second = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await c.query('COMMIT');
      assert.equal(first, second);
    }),
  );
  await Promise.all(clients.map((c) => c.end()));
});

test('pg named prepared statements work across servers and clients', async () => {
  const clients = await Promise.all(Array.from({ length: 12 }, connect));
  await Promise.all(
    clients.map(async (c, i) => {
      for (let k = 0; k < 25; k++) {
        const r = await c.query<{ n: number }>({ name: 'add-one', text: 'SELECT $1::int + 1 AS n', values: [i * 100 + k] });
        assert.equal(r.rows[0]!.n, i * 100 + k + 1);
        // Same name on another client with a different text must not collide.
        const r2 = await c.query<{ s: string }>({ name: `own-${i % 3}`, text: `SELECT $1::text || '-${i % 3}' AS s`, values: ['x'] });
        assert.equal(r2.rows[0]!.s, `x-${i % 3}`);
      }
    }),
  );
  await Promise.all(clients.map((c) => c.end()));
});

test('a failing statement in a pipeline does not desynchronise the session', async () => {
  const c = await connect();
  await c.query({ name: 'ok-stmt', text: 'SELECT $1::int AS v', values: [1] });
  await assert.rejects(c.query({ name: 'bad-stmt', text: 'SELECT $1::int / 0 AS v', values: [1] }), (e: pg.DatabaseError) => e.code === '22012');
  await assert.rejects(c.query({ name: 'syntax', text: 'SELEC 1' }), (e: pg.DatabaseError) => e.code === '42601');
  assert.equal((await c.query<{ v: number }>({ name: 'ok-stmt', text: 'SELECT $1::int AS v', values: [7] })).rows[0]!.v, 7);
  await c.end();
});

test('postgres.js with its default settings (prepared statements) works under transaction pooling', async () => {
  const sql = postgres(b.url({ sslmode: 'disable' }), { max: 6 });
  try {
    await sql`CREATE TABLE IF NOT EXISTS pjs_pool (id int primary key, v text)`;
    await Promise.all(Array.from({ length: 60 }, (_, i) => sql`INSERT INTO pjs_pool VALUES (${i}, ${'v' + i}) ON CONFLICT (id) DO UPDATE SET v = excluded.v`));
    const results = await Promise.all(Array.from({ length: 120 }, (_, i) => sql<{ v: string }[]>`SELECT v FROM pjs_pool WHERE id = ${i % 60}`));
    results.forEach((rows, i) => assert.equal(rows[0]!.v, 'v' + (i % 60)));
    const total = await sql.begin(async (tx) => {
      await tx`UPDATE pjs_pool SET v = 'tx' WHERE id = 1`;
      return tx<{ n: number }[]>`SELECT count(*)::int AS n FROM pjs_pool WHERE v = 'tx'`;
    });
    assert.equal(total[0]!.n, 1);
  } finally {
    await sql.end();
  }
});

test('explicit commits are timed per instance, as a Prometheus histogram', async () => {
  const read = async (): Promise<Map<string, number>> => {
    const text = await (await fetch(`http://127.0.0.1:${b.apiPort}/metrics`)).text();
    return new Map(text.split('\n').flatMap((l) => (l.startsWith('borealis_commit_latency_seconds') ? [[l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))] as const] : [])));
  };
  const labels = 'cluster="default",instance="default-instance-1",role="writer"';
  const before = (await read()).get(`borealis_commit_latency_seconds_count{${labels}}`) ?? 0;
  const c = new pg.Client(b.pgConfig({ tls: false }));
  await c.connect();
  try {
    await c.query('CREATE TABLE IF NOT EXISTS commit_timing (n int)');
    for (let i = 0; i < 20; i++) {
      await c.query('BEGIN');
      await c.query('INSERT INTO commit_timing VALUES ($1)', [i]);
      await c.query('COMMIT');
    }
    // An autocommit statement is no explicit commit.
    await c.query('INSERT INTO commit_timing VALUES (-1)');
  } finally {
    await c.end();
  }
  const after = await read();
  const count = after.get(`borealis_commit_latency_seconds_count{${labels}}`)!;
  assert.equal(count - before, 20);
  assert.equal(after.get(`borealis_commit_latency_seconds_bucket{${labels},le="+Inf"}`), count);
  assert.ok(after.get(`borealis_commit_latency_seconds_sum{${labels}}`)! > 0);
  // Buckets are cumulative.
  const buckets = [...after].filter(([k]) => k.startsWith(`borealis_commit_latency_seconds_bucket{${labels}`)).map(([, v]) => v);
  assert.ok(buckets.length >= 10 && buckets.every((v, i) => i === 0 || v >= buckets[i - 1]!));
});
