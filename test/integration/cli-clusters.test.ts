// Cluster management through the CLI: create, list, describe, connect, delete.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start();
});
after(async () => {
  await b?.destroy();
});

test('cluster create starts a second cluster on its own endpoint, reachable with its own password', async () => {
  const r = await b.cli(['cluster', 'create', 'orders', '--master-username', 'app', '--master-password', 'orders-secret-1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /cluster orders: available/);
  assert.match(r.stdout, /secret: {2}arn:aws:secretsmanager:local:000000000000:secret:borealis\/orders\/app-[0-9a-f]{6}/);
  const list = JSON.parse((await b.cli(['cluster', 'list', '--json'])).stdout) as Array<{ name: string; endpoints: Array<{ port: number }> }>;
  assert.deepEqual(list.map((c) => c.name).sort(), ['default', 'orders']);
  const port = list.find((c) => c.name === 'orders')!.endpoints[0]!.port;
  assert.notEqual(port, b.proxyPort);
  const client = new pg.Client({ ...b.pgConfig({ user: 'app', password: 'orders-secret-1' }), port });
  await client.connect();
  assert.equal((await client.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u, 'app');
  await client.end();
  // The default cluster's credentials do not open the other cluster.
  const wrong = new pg.Client({ ...b.pgConfig(), port });
  await assert.rejects(wrong.connect(), (e: pg.DatabaseError) => e.code === '28P01');
});

test('describe --json shows the cluster; unknown names fail clearly', async () => {
  const d = JSON.parse((await b.cli(['cluster', 'describe', 'orders', '--json'])).stdout) as { name: string; masterUsername: string; instances: Array<{ role: string }> };
  assert.equal(d.name, 'orders');
  assert.equal(d.masterUsername, 'app');
  assert.deepEqual(d.instances.map((i) => i.role), ['writer']);
  const missing = await b.cli(['cluster', 'describe', 'nope']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cluster "nope" does not exist/);
});

test('invalid names and duplicates are refused', async () => {
  const bad = await b.cli(['cluster', 'create', 'Bad_Name']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /lowercase letters/);
  const dup = await b.cli(['cluster', 'create', 'orders']);
  assert.match(dup.stderr, /already exists/);
  const short = await b.cli(['cluster', 'create', 'tiny', '--master-password', 'short']);
  assert.match(short.stderr, /8 to 128 characters/);
});

test('connect --print gives a verify-full URL that node-postgres and psql accept with the home\'s CA, and refuse without it', async () => {
  const r = await b.cli(['connect', 'orders', '--print']);
  const url = r.stdout.trim();
  const ca = path.join(b.home, 'tls', 'ca.crt');
  assert.equal(url, `postgres://app:orders-secret-1@127.0.0.1:${new URL(url).port}/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`);
  // node-postgres reads sslmode and sslrootcert from the URL and checks the chain and the name.
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  assert.deepEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
  await client.end();
  const psql = (conn: string): Promise<{ code: number; out: string }> =>
    new Promise((resolve) => execFile('psql', [conn, '-Atc', 'SELECT 1'], { env: { ...process.env, HOME: b.home } }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr })));
  assert.deepEqual(await psql(url), { code: 0, out: '1\n' });
  // Another CA (here: the server certificate itself as the root) does not verify it.
  const other = await psql(url.replace(encodeURIComponent(ca), encodeURIComponent(path.join(b.home, 'tls', 'server.crt'))));
  assert.equal(other.code, 1, other.out);
  assert.match(other.out, /certificate verify failed/);
  // Nor does a name the certificate does not carry.
  const wrongName = await psql(url.replace('127.0.0.1', `localhost.${'x'.repeat(3)}.invalid`).replace('?', `?hostaddr=127.0.0.1&`));
  assert.equal(wrongName.code, 1, wrongName.out);
  assert.match(wrongName.out, /does not match host name|server certificate for/);
});

test('cluster delete needs --yes, then stops the instance and removes its data', async () => {
  const refused = await b.cli(['cluster', 'delete', 'orders']);
  assert.notEqual(refused.code, 0);
  const pid = await b.writerPid('orders');
  const r = await b.cli(['cluster', 'delete', 'orders', '--yes']);
  assert.equal(r.code, 0, r.stderr);
  assert.throws(() => process.kill(pid!, 0));
  assert.equal(fs.existsSync(path.join(b.home, 'instances', 'orders-writer-1')), false);
  const names = (JSON.parse((await b.cli(['cluster', 'list', '--json'])).stdout) as Array<{ name: string }>).map((c) => c.name);
  assert.deepEqual(names, ['default']);
});

test('the store never holds a plaintext password', () => {
  const db = fs.readFileSync(path.join(b.home, 'state.db'));
  const wal = fs.existsSync(path.join(b.home, 'state.db-wal')) ? fs.readFileSync(path.join(b.home, 'state.db-wal')) : Buffer.alloc(0);
  for (const secret of ['orders-secret-1', 'correct-horse-battery']) {
    assert.equal(db.includes(secret), false);
    assert.equal(wal.includes(secret), false);
  }
});
