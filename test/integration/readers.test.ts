// Readers: clones of the writer that replay its WAL, behind the reader
// endpoint, scaling with the writer in promotion tiers 0 and 1.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis, portBase } from '../helpers/borealis.js';

let b: Borealis;

before(async () => {
  // Storage ports of their own: other Borealis homes on this machine take the default range at the same time,
  // and a restart ("readers come back...") must find its nodes' ports free.
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()) });
});
after(async () => {
  await b?.destroy();
});

async function endpointPort(type: string, name = ''): Promise<number> {
  const s = await b.status();
  const e = s.clusters.find((c) => c.name === 'default')!.endpoints.find((x) => x.type === type && x.name === name);
  assert.ok(e, `no ${type} endpoint ${name}`);
  return e.port;
}

async function query<T extends pg.QueryResultRow>(port: number, sql: string): Promise<T[]> {
  const c = new pg.Client({ ...b.pgConfig({ tls: false }), port });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

async function instance(id: string) {
  return (await b.status()).clusters.find((c) => c.name === 'default')!.instances.find((i) => i.id === id);
}

test('a reader clones the writer, replays its writes, and serves the reader endpoint read-only', async () => {
  const writer = await endpointPort('writer');
  await query(writer, 'CREATE TABLE notes (id int PRIMARY KEY, body text)');
  await query(writer, "INSERT INTO notes SELECT g, 'before' FROM generate_series(1, 100) g");
  const added = await b.cli(['instance', 'add', 'default']);
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, /reader default-instance-2 available/);
  const r = await instance('default-instance-2');
  assert.equal(r?.role, 'reader');
  assert.equal(r?.state, 'available');
  assert.equal(r?.promotionTier, 1);

  const reader = await endpointPort('reader');
  assert.deepEqual(await query(reader, 'SELECT pg_is_in_recovery() AS r'), [{ r: true }]);
  assert.deepEqual(await query(await endpointPort('instance', 'default-instance-2'), 'SELECT pg_is_in_recovery() AS r'), [{ r: true }]);
  assert.deepEqual(await query(reader, 'SELECT count(*)::int AS n FROM notes'), [{ n: 100 }]);
  // Writes on the writer reach the reader.
  await query(writer, "INSERT INTO notes SELECT g, 'after' FROM generate_series(101, 150) g");
  await b.waitFor('the reader to replay new rows', async () => (await query<{ n: number }>(reader, 'SELECT count(*)::int AS n FROM notes'))[0]!.n === 150, 20_000);
  // A reader refuses writes in PostgreSQL's own terms.
  await assert.rejects(query(reader, "INSERT INTO notes VALUES (999, 'no')"), (e: Error & { code?: string }) => e.code === '25006');
  // Its lag is measured, in status and on /metrics.
  const lagged = await b.waitFor('a replica lag sample', async () => (await instance('default-instance-2'))?.replicaLag ?? null, 10_000);
  assert.ok(lagged.seconds >= 0 && lagged.bytes >= 0);
  const metrics = await (await fetch(`http://127.0.0.1:${b.apiPort}/metrics`)).text();
  assert.match(metrics, /borealis_replica_lag_seconds\{cluster="default",instance="default-instance-2",role="reader"\} [0-9.e-]+/);
});

test('readers in promotion tiers 0 and 1 scale with the writer; a tier-2 reader does not', async () => {
  const added = await b.cli(['instance', 'add', 'default', '--promotion-tier', '2']);
  assert.equal(added.code, 0, added.stderr);
  const writer = await endpointPort('writer');
  // CPU-heavy queries on the writer alone, bounded in time, stopped once seen.
  const until = Date.now() + 25_000;
  let stop = false;
  const load = Array.from({ length: 2 }, async () => {
    const c = new pg.Client({ ...b.pgConfig({ tls: false }), port: writer });
    await c.connect();
    try {
      while (!stop && Date.now() < until) await c.query('SELECT count(*) FROM generate_series(1, 3000000)');
    } finally {
      await c.end();
    }
  });
  try {
    const seen = await b.waitFor(
      'the writer to scale up and its tier-1 reader with it',
      async () => {
        const [w, r1, r2] = [await instance('default-instance-1'), await instance('default-instance-2'), await instance('default-instance-3')];
        // Well above what a reader's own start-up and replay may need.
        return w && r1 && r2 && w.capacityAcu >= 3 && r1.capacityAcu >= w.capacityAcu ? { w: w.capacityAcu, r1: r1.capacityAcu, r2: r2.capacityAcu } : null;
      },
      20_000,
    );
    assert.ok(seen.r2 < seen.w, `the tier-2 reader (${seen.r2} ACU) has no load and stays below the writer (${seen.w} ACU)`);
  } finally {
    stop = true;
    await Promise.allSettled(load);
  }
});

test('readers come back as readers when Borealis restarts', async () => {
  await b.down();
  const up = await b.up();
  assert.equal(up.code, 0, up.stderr);
  assert.equal((await instance('default-instance-2'))?.state, 'available');
  const reader = await endpointPort('instance', 'default-instance-2');
  assert.deepEqual(await query(reader, 'SELECT pg_is_in_recovery() AS r'), [{ r: true }]);
  await query(await endpointPort('writer'), "INSERT INTO notes VALUES (151, 'after the restart')");
  await b.waitFor('the reader to stream again', async () => (await query<{ n: number }>(reader, 'SELECT count(*)::int AS n FROM notes'))[0]!.n === 151, 20_000);
});

test('failover: the reader becomes the writer with every acknowledged row, storage follows it, the old writer comes back as a reader', async () => {
  const writer = await endpointPort('writer');
  await query(writer, 'CREATE TABLE acked (n int)');
  // Commits acknowledged right up to the failover.
  const c = new pg.Client({ ...b.pgConfig({ tls: false }), port: writer });
  c.on('error', () => undefined);
  await c.connect();
  const acked: number[] = [];
  let writing = true;
  const writes = (async () => {
    for (let n = 1; writing; n++) {
      try {
        await c.query('INSERT INTO acked VALUES ($1)', [n]);
        acked.push(n);
      } catch {
        return; // the old writer went away
      }
    }
  })();
  await b.waitFor('some acknowledged commits', () => Promise.resolve(acked.length >= 20), 10_000);
  const termBefore = (await b.status()).clusters[0]!.storage.term;
  const r = await b.cli(['cluster', 'failover', 'default', '--target', 'default-instance-2']);
  writing = false;
  await writes;
  await c.end().catch(() => undefined);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /default-instance-2 is the writer of default/);

  const s = (await b.status()).clusters[0]!;
  assert.equal(s.instances.find((i) => i.id === 'default-instance-2')?.role, 'writer');
  assert.equal(s.instances.find((i) => i.id === 'default-instance-1')?.role, 'reader');
  assert.ok(s.storage.term > termBefore, 'the storage term went up (the old writer is fenced)');
  // Every acknowledged row is on the new writer, and it takes writes (which need four storage nodes).
  assert.deepEqual(await query(writer, 'SELECT pg_is_in_recovery() AS r'), [{ r: false }]);
  const have = new Set((await query<{ n: number }>(writer, 'SELECT n FROM acked')).map((x) => x.n));
  assert.deepEqual(acked.filter((n) => !have.has(n)), [], 'no acknowledged commit is lost');
  await query(writer, 'INSERT INTO acked VALUES (-1)');
  await b.waitFor('storage nodes to follow the new writer', async () => (await b.status()).clusters[0]!.storage.nodes.filter((n) => n.state === 'streaming').length >= 4, 30_000);
  // The old writer comes back as a reader of the new one.
  await b.waitFor('the old writer to come back as a reader', async () => (await instance('default-instance-1'))?.state === 'available', 60_000);
  const old = await endpointPort('instance', 'default-instance-1');
  assert.deepEqual(await query(old, 'SELECT pg_is_in_recovery() AS r'), [{ r: true }]);
  await b.waitFor('the old writer to replay the new writer\'s rows', async () => (await query<{ n: number }>(old, 'SELECT count(*)::int AS n FROM acked WHERE n = -1'))[0]!.n === 1, 20_000);
  const metrics = await (await fetch(`http://127.0.0.1:${b.apiPort}/metrics`)).text();
  assert.match(metrics, /^borealis_failovers_total\{cluster="default"\} 1$/m);
  // No reader to fail over to but the one given? A clear refusal.
  const bad = await b.cli(['cluster', 'failover', 'default', '--target', 'nope']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /nope is not an available reader/);
});

test('a writer that cannot be restarted fails over on its own, after acknowledged WAL the reader never received is copied from storage', async () => {
  // Now default-instance-2 writes; default-instance-1 (tier 1) and default-instance-3 (tier 2) read.
  const writer = await endpointPort('writer');
  const target = 'default-instance-1';
  const targetPort = await endpointPort('instance', target);
  await query(writer, 'CREATE TABLE crash_acked (n int)');
  await b.waitFor('the target to replay the new table', async () => (await query<{ n: number }>(targetPort, "SELECT count(*)::int AS n FROM pg_class WHERE relname = 'crash_acked'"))[0]!.n === 1, 20_000);
  // The writer's WAL sender for the target stops sending (as a partition
  // would); the storage nodes' senders go on, so commits are acknowledged.
  const [sender] = await query<{ pid: number }>(writer, `SELECT pid FROM pg_stat_replication WHERE application_name = '${target}'`);
  assert.ok(sender);
  process.kill(sender.pid, 'SIGSTOP');
  const acked: number[] = [];
  type Event = { id: number; sourceId: string; kind: string; message: string };
  const allEvents = async (): Promise<Event[]> => JSON.parse((await b.cli(['events', '--json', '--limit', '200'])).stdout) as Event[];
  const lastEvent = Math.max(0, ...(await allEvents()).map((e) => e.id));
  const since = async (): Promise<Event[]> => (await allEvents()).filter((e) => e.id > lastEvent);
  try {
    for (let n = 1; n <= 40; n++) {
      await query(writer, `INSERT INTO crash_acked VALUES (${n})`);
      acked.push(n);
    }
    assert.deepEqual(await query(targetPort, 'SELECT count(*)::int AS n FROM crash_acked'), [{ n: 0 }]);
    // The writer dies. The stopped sender keeps its shared memory attached,
    // so PostgreSQL refuses to restart it there, as if its host were gone:
    // the restart fails and Borealis fails over to the tier-1 reader.
    const pid = await b.writerPid();
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await b.waitFor('an automatic failover', async () => (await since()).some((e) => e.kind === 'failover'), 60_000).catch((e: Error) => {
      throw new Error(e.message + '\n' + b.logTail());
    });
  } finally {
    process.kill(sender.pid, 'SIGKILL');
  }
  const events = await since();
  assert.ok(events.some((e) => e.sourceId === 'default-instance-2' && e.kind === 'failed'), JSON.stringify(events));
  assert.ok(events.some((e) => e.sourceId === 'default' && e.kind === 'failover-automatic'), JSON.stringify(events));
  assert.ok(events.some((e) => e.sourceId === target && e.kind === 'catching-up' && /from storage node/.test(e.message)), JSON.stringify(events));
  // Every acknowledged row is on the new writer, which takes writes.
  assert.equal((await instance(target))?.role, 'writer');
  const have = new Set((await query<{ n: number }>(writer, 'SELECT n FROM crash_acked')).map((x) => x.n));
  assert.deepEqual(acked.filter((n) => !have.has(n)), [], 'no acknowledged commit is lost');
  await query(writer, 'INSERT INTO crash_acked VALUES (-1)');
  await b.waitFor('the crashed writer to come back as a reader', async () => (await instance('default-instance-2'))?.state === 'available', 60_000);
});

test('deleting readers: the reader endpoint falls back to the writer and their slots go; bad requests are refused', async () => {
  const refused = await b.cli(['instance', 'delete', 'default-instance-1']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /is the writer; delete the cluster instead/);
  const badTier = await b.cli(['instance', 'add', 'default', '--promotion-tier', '16']);
  assert.notEqual(badTier.code, 0);
  assert.match(badTier.stderr, /promotion tier is an integer from 0 to 15/);
  const noCluster = await b.cli(['instance', 'add', 'nowhere']);
  assert.notEqual(noCluster.code, 0);
  assert.match(noCluster.stderr, /cluster "nowhere" does not exist/);

  for (const id of ['default-instance-2', 'default-instance-3']) {
    const r = await b.cli(['instance', 'delete', id]);
    assert.equal(r.code, 0, r.stderr);
  }
  const left = (await b.status()).clusters.find((c) => c.name === 'default')!;
  assert.deepEqual(left.instances.map((i) => i.id), ['default-instance-1']);
  assert.deepEqual(left.endpoints.filter((e) => e.type === 'instance').map((e) => e.name), ['default-instance-1']);
  assert.deepEqual(await query(await endpointPort('reader'), 'SELECT pg_is_in_recovery() AS r'), [{ r: false }]);
  assert.deepEqual(await query(await endpointPort('writer'), "SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name LIKE 'default_%'"), [{ n: 0 }]);
});
