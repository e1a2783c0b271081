// The crash-point test: the supervisor is killed (SIGKILL, at an exact
// point: BOREALIS_CRASH_AFTER, src/control/crash-points.ts) right after each
// recorded step of a failover and of a rebuild from storage, and started
// again. A workload runs through the writer endpoint the whole time, every
// acknowledged write tagged with the writer's incarnation, term and
// timeline. After each restart: exactly one instance is out of recovery,
// no reader endpoint takes a write, and at the end no acknowledged write is
// lost and no two writers' acknowledged commits interleave.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { FAILOVER_STEPS } from '../../src/control/failover-steps.js';
import { Borealis, portBase } from '../helpers/borealis.js';
import { checkHistory, describeAnomalies } from '../reliability/checker.js';
import { BANK_ACCOUNTS, BANK_INITIAL, finalReads, Recorder, runWorkload, seededRandom, setUpSchema } from '../reliability/workloads.js';

let b: Borealis;
const rec = new Recorder();
let stopWorkload = false;
let workload: Promise<void> = Promise.resolve();

before(async () => {
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()), BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5' });
  await b.cliOk('instance', 'add', 'default', '--promotion-tier', '0');
  const connection = b.pgConfig({ tls: false });
  await setUpSchema(connection);
  await b.sql('CREATE TABLE crash_probe (n int)', { tls: false });
  // Bounded in time and count whatever happens to the test.
  workload = runWorkload({ connection, clients: 2, deadline: Date.now() + 20 * 60_000, opsPerClientMax: 200_000, random: seededRandom(4242), opTimeoutMs: 10_000, stop: () => stopWorkload }, rec);
});
after(async () => {
  stopWorkload = true;
  await workload;
  if (process.env.BOREALIS_TEST_KEEP) await b?.down();
  else await b?.destroy();
});

interface InstanceView {
  id: string;
  role: string;
  state: string;
  port: number;
}

async function instances(): Promise<InstanceView[]> {
  const c = (await b.status()).clusters[0]!;
  return c.instances.map((i) => ({ id: i.id, role: i.role, state: i.state, port: c.endpoints.find((e) => e.type === 'instance' && e.name === i.id)!.port }));
}

/** Runs `action`, which must end with the supervisor killed at `point`; then starts it again (without the crash). */
async function crashAt(point: string, action: () => Promise<void>): Promise<void> {
  const pid = (await b.status()).supervisor.pid;
  b.env.BOREALIS_CRASH_AFTER = point;
  try {
    // The supervisor reads the variable at its start.
    process.kill(pid, 'SIGKILL');
    await b.waitFor('the supervisor to exit', () => Promise.resolve(!fs.existsSync(`/proc/${pid}`)), 30_000);
    await b.up();
    const armed = (await b.status()).supervisor.pid;
    await action();
    await b.waitFor(`the supervisor to die at ${point}`, () => Promise.resolve(!fs.existsSync(`/proc/${armed}`)), 120_000);
  } finally {
    delete b.env.BOREALIS_CRASH_AFTER;
  }
  await b.up();
}

/** Everything runs, exactly one instance is out of recovery, and readers refuse writes. */
async function checkOneWriter(point: string): Promise<void> {
  await b.waitFor(`every instance available after ${point}`, async () => (await instances()).every((i) => i.state === 'available'), 240_000);
  const all = await instances();
  const writers: string[] = [];
  for (const i of all) {
    const [row] = await b.sql<{ r: boolean }>('SELECT pg_is_in_recovery() AS r', { port: i.port, tls: false });
    if (!row!.r) writers.push(i.id);
  }
  assert.deepEqual(writers, [all.find((i) => i.role === 'writer')!.id], `after a crash at ${point}, only the writer of record is out of recovery`);
  for (const i of all.filter((x) => x.role === 'reader')) {
    const c = new pg.Client({ ...b.pgConfig({ tls: false }), port: i.port });
    await c.connect();
    try {
      await assert.rejects(c.query('INSERT INTO crash_probe VALUES (1)'), (err: { code?: string }) => err.code === '25006', `after a crash at ${point}, reader ${i.id} must refuse a write`);
    } finally {
      await c.end();
    }
  }
  // The writer endpoint commits again.
  await b.waitForCommit(`a commit through the writer endpoint after ${point}`, 'INSERT INTO crash_probe VALUES (2)');
}

test('a supervisor killed after any step of a failover leaves one writer and loses no acknowledged write', async () => {
  for (const step of FAILOVER_STEPS) {
    const point = `failover:${step}`;
    const before = (await instances()).find((i) => i.role === 'writer')!.id;
    await crashAt(point, async () => {
      const r = await b.cli(['cluster', 'failover', 'default'], 300_000);
      assert.notEqual(r.code, 0, `the failover must not report success: the supervisor dies at ${point}`);
    });
    await checkOneWriter(point);
    const writer = (await instances()).find((i) => i.role === 'writer')!.id;
    // Rolled back before the role swap, rolled forward from it.
    const swapped = FAILOVER_STEPS.indexOf(step) >= FAILOVER_STEPS.indexOf('swapped');
    assert.equal(writer !== before, swapped, `after a crash at ${point} the writer is ${writer} (was ${before})`);
  }
});

test('a supervisor killed mid-rebuild from storage rebuilds again and loses no acknowledged write', async () => {
  for (const point of ['rebuild:fenced', 'rebuild:staged']) {
    const writer = (await instances()).find((i) => i.role === 'writer')!.id;
    await crashAt(point, async () => {
      const r = await b.cli(['instance', 'rebuild', writer], 300_000);
      assert.notEqual(r.code, 0, `the rebuild must not report success: the supervisor dies at ${point}`);
    });
    await checkOneWriter(point);
  }
});

test('the history across every crash has no lost write, no phantom and no interleaved writers', async () => {
  stopWorkload = true;
  await workload;
  assert.equal(await finalReads(b.pgConfig({ tls: false }), rec, Date.now() + 120_000), true, 'the data could be read back');
  const check = checkHistory(rec.history, { bankTotal: BANK_ACCOUNTS * BANK_INITIAL });
  assert.ok(check.counts.acknowledgedWrites > 0, 'the workload made progress');
  assert.deepEqual(
    check.anomalies.map((a) => a.kind),
    [],
    describeAnomalies(check.anomalies),
  );
});
