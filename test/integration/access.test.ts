// Who may connect: SCRAM-SHA-256-PLUS channel binding over TLS, per-cluster
// allow-lists and TLS requirement, and throttling of failed authentications
// per user and source address, and per source address over all users.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { serializeSslRequest, serializeStartupMessage } from '../../src/pgwire/startup.js';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({ BOREALIS_AUTH_FAILURES_PER_USER_SOURCE_MAX: '3', BOREALIS_AUTH_FAILURES_PER_SOURCE_MAX: '6', BOREALIS_AUTH_FAILURE_WINDOW_MS: '3000' });
});
after(async () => {
  await b?.destroy();
});

async function tryConnect(config: pg.ClientConfig): Promise<pg.DatabaseError | null> {
  const c = new pg.Client(config);
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    await c.end();
    return null;
  } catch (e) {
    return e as pg.DatabaseError;
  }
}

/** The SASL mechanisms the proxy offers over TLS. */
function mechanismsOverTls(): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const raw = net.connect(b.proxyPort, '127.0.0.1');
    raw.once('connect', () => raw.write(serializeSslRequest()));
    raw.once('data', (answer: Buffer) => {
      if (answer.toString() !== 'S') return reject(new Error('no TLS'));
      const secure = tls.connect({ socket: raw, rejectUnauthorized: false }, () => secure.write(serializeStartupMessage(new Map([['user', 'postgres']]))));
      secure.once('data', (d: Buffer) => {
        secure.destroy();
        // 'R', length, int32 10, then NUL-terminated names.
        resolve(d.subarray(9).toString('latin1').split('\0').filter((x) => x !== ''));
      });
      secure.on('error', reject);
    });
    raw.on('error', reject);
  });
}

test('over TLS SCRAM-SHA-256-PLUS is offered first, and pg with channel binding authenticates', async () => {
  assert.deepEqual(await mechanismsOverTls(), ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
  const c = new pg.Client({ ...b.pgConfig(), enableChannelBinding: true });
  await c.connect();
  assert.equal((await c.query<{ n: number }>('SELECT 1 AS n')).rows[0]!.n, 1);
  await c.end();
});

test('an allow-list that excludes the source refuses it with 28000 before authentication', async () => {
  const r = await b.cli(['cluster', 'modify', 'default', '--allow', '10.0.0.0/8,192.168.0.0/16']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /access {3}10\.0\.0\.0\/8, 192\.168\.0\.0\/16; TLS optional/);
  for (const config of [b.pgConfig(), b.pgConfig({ tls: false }), b.pgConfig({ password: 'wrong-but-irrelevant' })]) {
    const e = await tryConnect(config);
    assert.equal(e?.code, '28000');
    assert.match(e.message, /connections from 127\.0\.0\.1 are not allowed to cluster "default"/);
  }
  // psql with sslmode=require sees the same refusal, not a TLS failure.
  const psql = await new Promise<string>((resolve) => execFile('psql', [b.url(), '-c', 'SELECT 1'], (_e, _o, stderr) => resolve(stderr)));
  assert.match(psql, /not allowed to cluster "default"/);
  await b.cli(['cluster', 'modify', 'default', '--allow', '127.0.0.0/8']);
  assert.equal(await tryConnect(b.pgConfig()), null);
  await b.cli(['cluster', 'modify', 'default', '--allow-any']);
  assert.equal(await tryConnect(b.pgConfig({ tls: false })), null);
});

test('bad CIDR ranges are refused by the API', async () => {
  const r = await b.cli(['cluster', 'modify', 'default', '--allow', '10.0.0.0/40']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /prefix longer than the address/);
});

test('a cluster that requires TLS refuses plaintext with 28000', async () => {
  await b.cli(['cluster', 'modify', 'default', '--require-tls']);
  const e = await tryConnect(b.pgConfig({ tls: false }));
  assert.equal(e?.code, '28000');
  assert.match(e.message, /requires TLS/);
  assert.equal(await tryConnect(b.pgConfig()), null);
  const s = await b.status();
  assert.deepEqual(s.clusters[0]!.access, { allowedCidrs: [], requireTls: true });
  await b.cli(['cluster', 'modify', 'default', '--no-require-tls']);
  assert.equal(await tryConnect(b.pgConfig({ tls: false })), null);
});

test('failed authentications are throttled per user and source: other users of the address still log in, until the address itself is over its limit; then forgiven', async () => {
  const c = new pg.Client(b.pgConfig());
  await c.connect();
  await c.query("CREATE ROLE neighbour LOGIN PASSWORD 'neighbour-pass-1'");
  await c.end();
  const neighbour = b.pgConfig({ user: 'neighbour', password: 'neighbour-pass-1' });
  for (let i = 0; i < 3; i++) assert.equal((await tryConnect(b.pgConfig({ password: 'nope' })))?.code, '28P01');
  const throttled = await tryConnect(b.pgConfig());
  assert.equal(throttled?.code, '28000');
  assert.match(throttled.message, /too many failed authentication attempts for user "postgres" from 127\.0\.0\.1/);
  assert.equal(await tryConnect(neighbour), null, 'another user from the same address is not locked out');
  // Guessing over many user names counts against the address as a whole.
  for (const user of ['guess1', 'guess2', 'guess3']) assert.equal((await tryConnect(b.pgConfig({ user, password: 'nope' })))?.code, '28P01');
  const everyone = await tryConnect(neighbour);
  assert.equal(everyone?.code, '28000');
  assert.match(everyone.message, /too many failed authentication attempts from 127\.0\.0\.1/);
  await b.waitFor('the window to pass', async () => (await tryConnect(b.pgConfig())) === null, 10_000);
  assert.equal(await tryConnect(neighbour), null);
});
