// A writer that hangs (the postmaster and every backend stopped, as on a
// frozen host) never exits, so only a health probe with a deadline finds
// it: it is then killed, children and all (a stopped backend left behind
// would hold the shared memory and refuse every restart), and handled like
// a writer that died.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { processTree, signalTree } from '../../src/util/process-tree.js';
import { Borealis, portBase } from '../helpers/borealis.js';

let b: Borealis;

before(async () => {
  b = await Borealis.start({
    // Storage ports of their own: other Borealis homes on this machine take the default range at the same time.
    BOREALIS_STORAGE_PORT_BASE: String(portBase()),
    BOREALIS_INSTANCE_PROBE_INTERVAL_MS: '500',
    BOREALIS_INSTANCE_PROBE_TIMEOUT_MS: '2000',
    BOREALIS_INSTANCE_PROBE_FAILURES_MAX: '2',
  });
});
after(async () => {
  await b?.destroy();
});

const query = <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => b.sql<T>(sql);


test('a writer whose processes are all stopped (SIGSTOP) is found by the probe, killed with its backends and restarted with its data', async () => {
  await query('CREATE TABLE kept (n int)');
  await query('INSERT INTO kept SELECT generate_series(1, 10)');
  const pid = await b.writerPid();
  assert.ok(pid);
  // A session that stays open: its backend is stopped with the rest.
  const idle = new pg.Client(b.pgConfig({ tls: false }));
  idle.on('error', () => undefined);
  await idle.connect();
  await idle.query('SELECT 1');
  const tree = processTree(pid);
  assert.ok(tree.length > 3, 'the postmaster and its children');
  signalTree(pid, 'SIGSTOP');
  try {
    await b.waitFor('the hung writer to be replaced', async () => {
      const w = (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
      return w.state === 'available' && w.pid !== null && w.pid !== pid;
    }, 120_000);
  } finally {
    for (const p of tree) {
      try {
        process.kill(p, 'SIGCONT');
      } catch {
        // killed, as it should be
      }
    }
    await idle.end().catch(() => undefined);
  }
  assert.deepEqual(tree.filter((p) => fs.existsSync(`/proc/${p}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${p}/status`, 'utf8'))), [], 'none of the hung processes is left');
  type Event = { sourceId: string; kind: string; message: string };
  const events = JSON.parse((await b.cli(['events', '--json', '--limit', '200'])).stdout) as Event[];
  assert.ok(events.some((e) => e.sourceId === 'default-instance-1' && e.kind === 'hung' && /answered no health probe/.test(e.message)), JSON.stringify(events.slice(-8)));
  assert.deepEqual(await query('SELECT count(*)::int AS n FROM kept'), [{ n: 10 }]);
  await query('INSERT INTO kept VALUES (11)');
});
