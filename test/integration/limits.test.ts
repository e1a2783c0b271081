// Each of the front door's limits, with its own setting and its own error.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({
    BOREALIS_SERVER_POOL_SIZE_MAX: '1',
    BOREALIS_CLIENT_QUEUE_MAX: '2',
    // Long enough that the queue-full test's status polling cannot outlast it.
    BOREALIS_CLIENT_QUEUE_TIMEOUT_MS: '3000',
    BOREALIS_CLIENT_CONNECTIONS_MAX: '12',
    BOREALIS_CLIENT_MESSAGE_BYTES_MAX: '100000',
    BOREALIS_CLIENT_IDLE_TIMEOUT_MS: '1500',
    BOREALIS_POOLS_MAX: '3',
  });
});
after(async () => {
  await b?.destroy();
});

async function connect(): Promise<pg.Client> {
  const c = new pg.Client(b.pgConfig({ tls: false }));
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

test('a client waiting longer than clientQueueTimeoutMs for a server gets 53300', async () => {
  const holder = await connect();
  await holder.query('BEGIN'); // holds the only server
  const waiter = await connect();
  const started = Date.now();
  await assert.rejects(waiter.query('SELECT 1'), (e: pg.DatabaseError) => e.code === '53300' && /became free within/.test(e.message));
  assert.ok(Date.now() - started >= 2_900);
  await holder.query('COMMIT');
  // Once the transaction ends the server serves others again.
  const next = await connect();
  assert.equal((await next.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
  await Promise.all([holder.end(), next.end()]);
});

test('past clientQueueMax waiting clients, the next one is refused at once', async () => {
  const holder = await connect();
  const others: pg.Client[] = [];
  try {
    await holder.query('BEGIN');
    const waiters = await Promise.all([connect(), connect()]);
    others.push(...waiters);
    const waiting = waiters.map((w) => w.query('SELECT 1').then(() => 'ok', (e: pg.DatabaseError) => e.code));
    await b.waitFor('two queued clients', async () => (await b.status()).proxy.pools[0]!.waiting === 2);
    const extra = await connect();
    others.push(extra);
    const started = Date.now();
    await assert.rejects(extra.query('SELECT 1'), (e: pg.DatabaseError) => e.code === '53300' && /too many clients are waiting/.test(e.message));
    assert.ok(Date.now() - started < 500, 'refused without waiting');
    await holder.query('COMMIT');
    // The queued clients are served in turn once the server is free.
    assert.deepEqual(await Promise.all(waiting), ['ok', 'ok']);
  } finally {
    // Whatever happened, no session is left holding the only server.
    await Promise.all([holder, ...others].map((c) => c.end().catch(() => undefined)));
  }
});

test('clientConnectionsMax caps client connections with 53300', async () => {
  const clients: pg.Client[] = [];
  try {
    let refused: pg.DatabaseError | null = null;
    for (let i = 0; i < 14 && !refused; i++) {
      try {
        clients.push(await connect());
      } catch (e) {
        refused = e as pg.DatabaseError;
      }
    }
    assert.ok(refused, 'a client was refused');
    assert.equal(refused.code, '53300');
    assert.match(refused.message, /too many clients already \(limit 12\)/);
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  await b.waitFor('clients to go', async () => (await b.status()).proxy.clientsByState.session === 0);
});

test('a message over clientMessageBytesMax gets 54000; other clients are unharmed', async () => {
  const bystander = await connect();
  const big = await connect();
  await assert.rejects(big.query(`SELECT '${'x'.repeat(200_000)}'`), (e: pg.DatabaseError) => e.code === '54000' && /exceeds the limit of 100000 bytes/.test(e.message));
  assert.equal((await bystander.query<{ n: number }>('SELECT 2 AS n')).rows[0]!.n, 2);
  await bystander.end();
});

test('a message far larger than socket buffers still gets its 54000, plaintext and TLS (the proxy reads and drops the rest)', async () => {
  const huge = 'y'.repeat(30 * 1024 * 1024);
  for (const tls of [false, true]) {
    const big = new pg.Client(b.pgConfig({ tls }));
    big.on('error', () => undefined);
    await big.connect();
    await assert.rejects(big.query(`SELECT '${huge}'`), (e: pg.DatabaseError) => e.code === '54000' && /exceeds the limit of 100000 bytes/.test(e.message), `tls: ${tls}`);
  }
  // psql (libpq) writes the whole query before it reads anything.
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-big-')), 'big.sql');
  fs.writeFileSync(file, `SELECT '${huge}';\n`);
  for (const sslmode of ['disable', 'require']) {
    const stderr = await new Promise<string>((resolve) => execFile('psql', [b.url({ sslmode }), '-X', '-f', file], { maxBuffer: 1 << 20 }, (_err, _out, err) => resolve(err)));
    assert.match(stderr, /exceeds the limit of 100000 bytes/, `psql sslmode=${sslmode}: ${stderr.slice(0, 300)}`);
  }
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

test('a client that needs a pool beyond poolsMax gets 53300; pools nobody uses make room', async () => {
  const withOptions = async (options: string): Promise<pg.Client> => {
    const c = new pg.Client({ ...b.pgConfig({ tls: false }), options });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  const plain = await connect();
  await plain.query('BEGIN');
  const first = await withOptions('-c work_mem=1111kB');
  await first.query('BEGIN');
  const second = await withOptions('-c work_mem=2222kB');
  await second.query('BEGIN');
  await assert.rejects(withOptions('-c work_mem=3333kB'), (e: pg.DatabaseError) => e.code === '53300' && /too many distinct connection pools in use \(limit 3\)/.test(e.message));
  // Once a pool has no session left, a new one may take its place.
  await second.query('COMMIT');
  await second.end();
  await b.waitFor('the session to end', async () => (await b.status()).proxy.pools.find((p) => p.sessions === 0 && p.active === 0));
  const third = await withOptions('-c work_mem=3333kB');
  assert.equal((await third.query<{ w: string }>("SELECT current_setting('work_mem') AS w")).rows[0]!.w, '3333kB');
  await third.end();
  await plain.query('COMMIT');
  await first.query('COMMIT');
  await Promise.all([plain.end(), first.end()]);
});

test('an idle client is closed after clientIdleTimeoutMs with 57P05', async () => {
  const idle = await connect();
  const ended = new Promise<pg.DatabaseError>((resolve) => idle.once('error', (e) => resolve(e as pg.DatabaseError)));
  const e = await ended;
  assert.equal(e.code, '57P05');
});
