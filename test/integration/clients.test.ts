// Real clients (pg, postgres.js, psql) through the proxy: SCRAM over TLS,
// refusals with the right SQLSTATE, and query cancellation.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import pg from 'pg';
import postgres from 'postgres';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start();
});
after(async () => {
  await b?.destroy();
});

test('pg connects with SCRAM over TLS and runs queries', async () => {
  const client = new pg.Client(b.pgConfig());
  await client.connect();
  try {
    const r = await client.query<{ v: string; n: number }>('SELECT version() AS v, $1::int + 1 AS n', [41]);
    assert.match(r.rows[0]!.v, /^PostgreSQL 17\./);
    assert.equal(r.rows[0]!.n, 42);
    const tls = await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    // The proxy ends TLS; its private socket to postgres is not TLS.
    assert.equal(tls.rows[0]!.ssl, false);
  } finally {
    await client.end();
  }
});

test('the proxy certificate is signed by the CA in the Borealis home', async () => {
  const fs = await import('node:fs');
  const ca = fs.readFileSync(`${b.home}/tls/ca.crt`, 'utf8');
  const client = new pg.Client({ ...b.pgConfig(), host: 'localhost', ssl: { ca } });
  await client.connect();
  await client.end();
});

test('postgres.js connects with TLS and its default prepared statements', async () => {
  const sql = postgres(b.url(), { ssl: 'require', max: 2 });
  try {
    await sql`CREATE TABLE IF NOT EXISTS pjs (id int primary key, note text)`;
    await sql`INSERT INTO pjs ${sql([{ id: 1, note: 'a' }, { id: 2, note: 'b' }])} ON CONFLICT DO NOTHING`;
    const rows = await sql<{ note: string }[]>`SELECT note FROM pjs WHERE id = ${2}`;
    assert.deepEqual(rows.map((r) => r.note), ['b']);
  } finally {
    await sql.end();
  }
});

test('psql connects with sslmode=require and reports TLS', async () => {
  const out = await new Promise<string>((resolve, reject) =>
    execFile('psql', [b.url(), '-Atc', 'SELECT 6 * 7', '-c', '\\conninfo'], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))),
  );
  assert.match(out, /^42$/m);
  assert.match(out, /SSL connection \(protocol: TLSv1\.[23]/);
});

test('plaintext clients are served too when TLS is not required', async () => {
  const client = new pg.Client(b.pgConfig({ tls: false }));
  await client.connect();
  assert.equal((await client.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
  await client.end();
});

test('a wrong password is refused with 28P01', async () => {
  const client = new pg.Client(b.pgConfig({ password: 'not-the-password' }));
  await assert.rejects(client.connect(), (e: pg.DatabaseError) => e.code === '28P01' && /password authentication failed for user "postgres"/.test(e.message));
});

test('an unknown user is refused exactly like a wrong password', async () => {
  const client = new pg.Client(b.pgConfig({ user: 'mallory' }));
  await assert.rejects(client.connect(), (e: pg.DatabaseError) => e.code === '28P01' && /user "mallory"/.test(e.message));
});

test('the backend\'s own refusal reaches the client (unknown database → 3D000)', async () => {
  const client = new pg.Client(b.pgConfig({ database: 'nope' }));
  await assert.rejects(client.connect(), (e: pg.DatabaseError) => e.code === '3D000');
});

test('ALTER SYSTEM is refused: Borealis owns the configuration (its quorum and term cannot be overridden)', async () => {
  const client = new pg.Client(b.pgConfig());
  await client.connect();
  try {
    await assert.rejects(client.query("ALTER SYSTEM SET synchronous_standby_names = ''"), (e: pg.DatabaseError) => e.code === '0A000' && /ALTER SYSTEM is not allowed/.test(e.message));
    assert.match((await client.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s")).rows[0]!.s, /^ANY 4 \(/);
  } finally {
    await client.end();
  }
});

test('a cancel request through the proxy cancels pg_sleep', async () => {
  const sql = postgres(b.url(), { ssl: 'require', max: 1 });
  try {
    const started = Date.now();
    const query = sql`SELECT pg_sleep(30)`;
    const cancelled = assert.rejects(query, (e: { code?: string }) => e.code === '57014');
    await new Promise((r) => setTimeout(r, 500));
    query.cancel();
    await cancelled;
    assert.ok(Date.now() - started < 20_000, 'the sleep was cut short');
    // The session survives a cancel.
    const [row] = await sql<{ ok: number }[]>`SELECT 1 AS ok`;
    assert.equal(row!.ok, 1);
  } finally {
    await sql.end();
  }
});
