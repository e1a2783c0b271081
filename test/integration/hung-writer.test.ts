// A writer that hangs (its whole process group stopped, as a frozen host
// would be) never exits, so only a health probe with a deadline finds it:
// it is then killed and handled like a writer that died.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;

before(async () => {
  b = await Borealis.start({
    // Storage ports of their own: other Borealis homes on this machine take the default range at the same time.
    BOREALIS_STORAGE_PORT_BASE: String(50_000 + Math.floor(Math.random() * 10_000)),
    BOREALIS_INSTANCE_PROBE_INTERVAL_MS: '500',
    BOREALIS_INSTANCE_PROBE_TIMEOUT_MS: '2000',
    BOREALIS_INSTANCE_PROBE_FAILURES_MAX: '2',
  });
});
after(async () => {
  await b?.destroy();
});

const query = <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => b.sql<T>(sql);


test('a writer whose process group is stopped (SIGSTOP) is found by the probe, killed and restarted with its data', async () => {
  await query('CREATE TABLE kept (n int)');
  await query('INSERT INTO kept SELECT generate_series(1, 10)');
  const pid = await b.writerPid();
  assert.ok(pid);
  process.kill(-pid, 'SIGSTOP');
  try {
    await b.waitFor('the hung writer to be replaced', async () => {
      const w = (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
      return w.state === 'available' && w.pid !== null && w.pid !== pid;
    }, 120_000);
  } finally {
    try {
      process.kill(-pid, 'SIGCONT');
    } catch {
      // killed, as it should be
    }
  }
  type Event = { sourceId: string; kind: string; message: string };
  const events = JSON.parse((await b.cli(['events', '--json', '--limit', '200'])).stdout) as Event[];
  assert.ok(events.some((e) => e.sourceId === 'default-writer-1' && e.kind === 'hung' && /answered no health probe/.test(e.message)), JSON.stringify(events.slice(-8)));
  assert.deepEqual(await query('SELECT count(*)::int AS n FROM kept'), [{ n: 10 }]);
  await query('INSERT INTO kept VALUES (11)');
});
