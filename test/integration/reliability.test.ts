// The short form of `npm run reliability`: every scenario of the table,
// each with the three workloads under one fault, checked for lost and
// phantom writes and every other anomaly the history checker knows.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeAnomalies } from '../reliability/checker.js';
import { runScenario, SCENARIOS } from '../reliability/scenarios.js';

const SECONDS = Number(process.env.BOREALIS_RELIABILITY_SECONDS ?? 10);

for (const [i, s] of SCENARIOS.entries()) {
  test(`${s.name}: ${s.description} — no acknowledged write lost, no phantom, no anomaly`, async () => {
    const r = await runScenario(s, { durationMs: SECONDS * 1000, clients: 4, seed: 1000 + i, log: () => undefined });
    assert.equal(r.error, undefined, r.error);
    assert.ok(r.check.counts.acknowledgedWrites > 0, 'the workload made progress');
    assert.equal(r.finalReadsDone, true, 'the data could be read back after healing');
    assert.deepEqual(r.check.anomalies.map((a) => a.kind), [], describeAnomalies(r.check.anomalies));
  });
}
