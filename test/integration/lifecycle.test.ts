// The supervisor's promises: data survives `down`/`up`, a killed postgres is
// restarted (and recorded), clients are held while the writer is away, and
// `down` leaves nothing running.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis, processesMentioning } from '../helpers/borealis.js';
import { isAlive } from '../../src/cli/api-client.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({ BOREALIS_RESTART_BACKOFF_MS_MAX: '400', BOREALIS_CLIENT_WAIT_FOR_WRITER_MS: '2000' });
});
after(async () => {
  await b?.destroy();
});

async function query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client(b.pgConfig());
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

interface Event {
  id: number;
  sourceId: string;
  kind: string;
  message: string;
}

async function events(): Promise<Event[]> {
  const r = await b.cli(['events', '--json', '--limit', '200']);
  return JSON.parse(r.stdout) as Event[];
}

test('status --json has the documented shape', async () => {
  const s = await b.status();
  assert.equal(s.version, 1);
  assert.equal(s.home, b.home);
  assert.match(s.engine.version, /^17\./);
  assert.equal(s.services.api.url, `http://127.0.0.1:${b.apiPort}`);
  const c = s.clusters.find((x) => x.name === 'default');
  assert.ok(c, 'the default cluster exists');
  assert.equal(c.status, 'available');
  assert.equal(c.instances.length, 1);
  assert.deepEqual(
    { role: c.instances[0]!.role, state: c.instances[0]!.state, kind: c.instances[0]!.kind },
    { role: 'writer', state: 'available', kind: 'serverless' },
  );
  assert.ok(c.instances[0]!.pid! > 0);
  // The default scaling configuration: auto-pause enabled, 0.5 ACU to start.
  assert.deepEqual(c.scaling, { minCapacity: 0, maxCapacity: 4, secondsUntilAutoPause: 300 });
  assert.equal(c.instances[0]!.capacityAcu, 0.5);
  assert.match(s.capacity.enforcement, /^(cgroup v[12]|degraded: .+)$/);
  const writer = c.endpoints.find((e) => e.type === 'writer');
  assert.deepEqual(writer, { type: 'writer', name: '', host: '127.0.0.1', port: b.proxyPort, serverName: 'default.cluster.borealis.localhost', url: `postgres://postgres@127.0.0.1:${b.proxyPort}/postgres` });
  // A reader endpoint and one endpoint per instance, each on its own port.
  assert.deepEqual(
    c.endpoints.map((e) => [e.type, e.name, e.serverName]),
    [
      ['writer', '', 'default.cluster.borealis.localhost'],
      ['reader', '', 'default.cluster-ro.borealis.localhost'],
      ['instance', 'default-instance-1', 'default-instance-1.instance.borealis.localhost'],
    ],
  );
  assert.equal(new Set(c.endpoints.map((e) => e.port)).size, 3);
});

test('up again while running reports the running instance and changes nothing', async () => {
  const pid = await b.writerPid();
  const r = await b.up();
  assert.match(r.stdout, /already running/);
  assert.equal(await b.writerPid(), pid);
});

test('kill -9 of postgres: restarted, recorded, clients reconnect and are held meanwhile', async () => {
  await query('CREATE TABLE IF NOT EXISTS survivors (id int primary key)');
  await query('INSERT INTO survivors VALUES (1) ON CONFLICT DO NOTHING');
  const before = await b.writerPid();
  assert.ok(before);
  const lastEvent = Math.max(0, ...(await events()).map((e) => e.id));
  process.kill(before, 'SIGKILL');
  // Connecting right away: the proxy holds the client until the restart.
  const rows = await query<{ n: number }>('SELECT count(*)::int AS n FROM survivors');
  assert.equal(rows[0]!.n, 1);
  const after = await b.waitFor('a new writer pid', async () => {
    const pid = await b.writerPid();
    return pid && pid !== before ? pid : null;
  });
  assert.ok(isAlive(after));
  const recent = (await events()).filter((e) => e.id > lastEvent && e.sourceId === 'default-instance-1');
  assert.ok(recent.some((e) => e.kind === 'restarting' && /signal SIGKILL/.test(e.message)), JSON.stringify(recent));
  assert.ok(recent.some((e) => e.kind === 'available'), JSON.stringify(recent));
});

test('a writer that cannot start: clients wait, then get 57P03; it recovers by itself', async () => {
  const status = await b.status();
  const pid = status.clusters[0]!.instances[0]!.pid!;
  const pgVersion = path.join(b.home, 'instances', 'default-instance-1', 'data', 'PG_VERSION');
  const hidden = `${pgVersion}.hidden`;
  // Without PG_VERSION postgres refuses to start, so every restart fails.
  fs.renameSync(pgVersion, hidden);
  try {
    process.kill(pid, 'SIGKILL');
    await b.waitFor('the writer to fail', async () => (await b.status()).clusters[0]!.status === 'failed');
    // The pool already knows the server's parameters, so the client is
    // welcomed at once; its first query is the one that waits for a server.
    const held = new pg.Client(b.pgConfig());
    held.on('error', () => undefined);
    await held.connect();
    const started = Date.now();
    const refused = await held.query('SELECT 1').then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    assert.ok(refused, 'the query was refused');
    assert.equal(refused.code, '57P03');
    assert.match(refused.message, /starting up/);
    assert.ok(Date.now() - started >= 1_500, 'the client was held first');
  } finally {
    fs.renameSync(hidden, pgVersion);
  }
  await b.waitFor('the writer to recover', async () => (await b.status()).clusters[0]!.status === 'available', 90_000);
  assert.equal((await query<{ n: number }>('SELECT count(*)::int AS n FROM survivors'))[0]!.n, 1);
});

test('down leaves no process behind; up again keeps the data', async () => {
  const supervisorPid = (await b.status()).supervisor.pid;
  const pgPid = await b.writerPid();
  const down = await b.down();
  assert.equal(down.code, 0, down.stderr);
  assert.equal(isAlive(supervisorPid), false);
  assert.equal(isAlive(pgPid!), false);
  assert.deepEqual(processesMentioning(b.home), []);
  const status = await b.cli(['status']);
  assert.equal(status.code, 3);
  assert.match(status.stderr, /not running/);
  await b.up();
  assert.equal((await query<{ n: number }>('SELECT count(*)::int AS n FROM survivors'))[0]!.n, 1);
});
