// A writer whose data directory is deleted under it keeps running on the
// files it has open, and its pooled sessions keep committing, until
// PostgreSQL notices by itself: when it next needs a new file (a WAL
// segment) or rechecks its lock file, up to a minute later. The health probe
// finds the directory gone within its interval: the writer is killed at
// once, so nothing more is acknowledged on a directory that no longer
// exists, and it is rebuilt from storage with every acknowledged commit.
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
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

/** How long after the removal the old writer may still acknowledge a commit: a probe interval, with room for a loaded machine. */
const STALE_ACKS_MS = 10_000;

test('a writer whose data directory is deleted stops acknowledging within seconds and is rebuilt from storage with every acknowledged commit', async () => {
  await b.sql('CREATE TABLE acked (id int PRIMARY KEY)');
  const oldStart = (await b.sql<{ t: Date }>('SELECT pg_postmaster_start_time() AS t'))[0]!.t.getTime();
  const oldPid = await b.writerPid();
  assert.ok(oldPid);
  const acked: Array<{ id: number; at: number; byOldWriter: boolean }> = [];
  let next = 1;
  let stop = false;
  // One client, a commit every 100 ms, served on the sessions the proxy pooled before the removal (a new backend could not start).
  const worker = async (): Promise<void> => {
    while (!stop) {
      const id = next++;
      const c = new pg.Client({ ...b.pgConfig(), connectionTimeoutMillis: 60_000, query_timeout: 30_000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        const r = await c.query<{ t: Date }>('INSERT INTO acked VALUES ($1) RETURNING pg_postmaster_start_time() AS t', [id]);
        acked.push({ id, at: Date.now(), byOldWriter: r.rows[0]!.t.getTime() === oldStart });
      } catch {
        // not acknowledged: may or may not be there
      } finally {
        await c.end().catch(() => undefined);
      }
      await sleep(100);
    }
  };
  const workers = [worker()];
  await b.waitFor('some commits', () => Promise.resolve(acked.length >= 20));

  const dataDir = path.join(b.home, 'instances', 'default-instance-1', 'data');
  assert.ok(fs.existsSync(path.join(dataDir, 'global', 'pg_control')));
  // Retries: the live postgres may add a file to a directory as it is emptied.
  fs.rmSync(dataDir, { recursive: true, force: true, maxRetries: 10 });
  const removedAt = Date.now();

  await b.waitFor('the writer to be back with another postgres', async () => {
    const w = (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
    return w.state === 'available' && w.pid !== null && w.pid !== oldPid;
  }, 180_000);
  const ackedBack = acked.length;
  await b.waitFor('commits after the rebuild', () => Promise.resolve(acked.length >= ackedBack + 20), 60_000);
  stop = true;
  await Promise.all(workers);

  const lastOld = Math.max(...acked.filter((a) => a.byOldWriter).map((a) => a.at));
  assert.ok(lastOld - removedAt < STALE_ACKS_MS, `the old writer acknowledged commits for ${lastOld - removedAt} ms after its data directory was deleted`);
  assert.ok(acked.some((a) => !a.byOldWriter), 'the rebuilt writer acknowledges commits');
  const present = new Set((await b.sql<{ id: number }>('SELECT id FROM acked')).map((r) => r.id));
  const lost = acked.filter((a) => !present.has(a.id)).map((a) => a.id);
  assert.deepEqual(lost, [], `acknowledged commits lost: ${lost.length} of ${acked.length}`);

  type Event = { sourceId: string; kind: string; message: string };
  const events = JSON.parse((await b.cli(['events', '--json', '--limit', '500'])).stdout) as Event[];
  const writerEvents = events.filter((e) => e.sourceId === 'default-instance-1');
  assert.ok(writerEvents.some((e) => e.kind === 'data-dir-lost' && e.message.includes(dataDir)), JSON.stringify(writerEvents.slice(-8)));
  assert.ok(writerEvents.some((e) => e.kind === 'rebuilding'), JSON.stringify(writerEvents.slice(-8)));
});

test('without storage nodes, a writer whose data directory is lost stays down instead of starting empty', async () => {
  const local = await Borealis.start({ BOREALIS_STORAGE_NODE_COUNT: '0' });
  try {
    await local.sql('CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (1)');
    // The cluster's system is recorded once its writer has run.
    await local.waitFor('the system to be recorded', async () => (await local.status()).clusters[0]!.systemId ?? null);
    const dataDir = path.join(local.home, 'instances', 'default-instance-1', 'data');
    fs.rmSync(dataDir, { recursive: true, force: true, maxRetries: 10 });
    type Event = { sourceId: string; kind: string; message: string };
    const refusal = await local.waitFor('the writer to refuse to start empty (or, wrongly, to start)', async () => {
      const w = (await local.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
      if (w.state === 'available') return 'started';
      const events = JSON.parse((await local.cli(['events', '--json', '--limit', '200'])).stdout) as Event[];
      return events.find((e) => e.sourceId === 'default-instance-1' && /no storage nodes/.test(e.message))?.message ?? null;
    }, 120_000);
    assert.notEqual(refusal, 'started', 'the writer came back on a new, empty data directory');
    assert.match(refusal, /stays down rather than start empty/);
    assert.ok(!fs.existsSync(path.join(dataDir, 'PG_VERSION')), 'initdb ran');
    const w = (await local.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
    assert.notEqual(w.state, 'available');
  } finally {
    await local.destroy();
  }
});
