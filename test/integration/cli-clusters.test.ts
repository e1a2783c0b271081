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
  // node-postgres's own sslmode=require verifies the chain against the system's CAs and fails;
  // libpq's meaning (encrypt, do not verify) is uselibpqcompat=true (docs/security.md).
  const plain = url.slice(0, url.indexOf('?'));
  await assert.rejects(new pg.Client({ connectionString: `${plain}?sslmode=require` }).connect(), /self[- ]signed|unable to verify|local issuer/);
  const compat = new pg.Client({ connectionString: `${plain}?uselibpqcompat=true&sslmode=require` });
  await compat.connect();
  await compat.end();
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

test('a command without a cluster acts on "default"; users, secrets and endpoints can be listed and deleted', async () => {
  const created = await b.cli(['user', 'create', 'reporter', '--password', 'reporter-pass-1']);
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /in cluster default/);
  const users = JSON.parse((await b.cli(['user', 'list', '--json'])).stdout) as Array<{ name: string }>;
  assert.ok(users.some((u) => u.name === 'reporter'));
  const inOrders = JSON.parse((await b.cli(['user', 'list', '--cluster', 'orders', '--json'])).stdout) as Array<{ name: string }>;
  assert.ok(!inOrders.some((u) => u.name === 'reporter'), 'the user was made in default only');
  assert.equal((await b.cli(['user', 'delete', 'reporter'])).code, 0);

  const endpoints = JSON.parse((await b.cli(['endpoint', 'list', '--cluster', 'orders', '--json'])).stdout) as Array<{ type: string; port: number }>;
  assert.deepEqual(endpoints.map((e) => e.type).sort(), ['instance', 'reader', 'writer']);

  type Secret = { arn: string; username: string; master: boolean };
  const secrets = async (): Promise<Secret[]> => JSON.parse((await b.cli(['secret', 'list', '--cluster', 'orders', '--json'])).stdout) as Secret[];
  const [master] = await secrets();
  assert.equal(master?.username, 'app');
  assert.equal(master?.master, true);
  const arn = (await b.cli(['secret', 'create', '--cluster', 'orders', '--username', 'app', '--password', 'orders-secret-1'])).stdout.trim();
  assert.deepEqual((await secrets()).map((x) => [x.arn, x.master]), [[master.arn, true], [arn, false]]);
  const keep = await b.cli(['secret', 'delete', master.arn, '--cluster', 'orders']);
  assert.equal(keep.code, 1);
  assert.match(keep.stderr, /master user's password/);
  assert.equal((await b.cli(['secret', 'delete', arn, '--cluster', 'orders'])).code, 0);
  assert.deepEqual((await secrets()).map((x) => x.arn), [master.arn]);

  const noCluster = await b.cli(['storage', 'backup', 'nosuch']);
  assert.equal(noCluster.code, 1);
  assert.match(noCluster.stderr, /cluster "nosuch" does not exist/);
});

test('--auto-pause with a minimum above 0 is accepted but said to have no effect; internal commands stay out of --help', async () => {
  const r = await b.cli(['cluster', 'modify', 'orders', '--min', '1', '--auto-pause', '600']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /--auto-pause has no effect while the minimum capacity is 1 ACU/);
  const quiet = await b.cli(['cluster', 'modify', 'orders', '--min', '0', '--auto-pause', '600']);
  assert.equal(quiet.stderr, '');
  const help = await b.cli(['--help']);
  assert.match(help.stdout, /^ {2}storage /m);
  assert.doesNotMatch(help.stdout, /storage-node/);
});

test('the up banner names the Data API and each cluster\'s resource and secret ARNs', async () => {
  const r = await b.cli(['up']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /already running/);
  assert.match(r.stdout, new RegExp(`Data API +http://127\\.0\\.0\\.1:${b.dataApiPort}`));
  assert.match(r.stdout, /resourceArn arn:aws:rds:local:000000000000:cluster:orders, secretArn arn:aws:secretsmanager:local:000000000000:secret:borealis\/orders\/app-[0-9a-f]{6}/);
});

test('cluster delete needs --yes, then stops the instance and removes its data', async () => {
  const refused = await b.cli(['cluster', 'delete', 'orders']);
  assert.notEqual(refused.code, 0);
  const pid = await b.writerPid('orders');
  const r = await b.cli(['cluster', 'delete', 'orders', '--yes']);
  assert.equal(r.code, 0, r.stderr);
  assert.throws(() => process.kill(pid!, 0));
  assert.equal(fs.existsSync(path.join(b.home, 'instances', 'orders-instance-1')), false);
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
