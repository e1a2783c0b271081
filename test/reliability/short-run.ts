// The short form of `npm run reliability` that `npm test` runs: each named
// scenario with the three workloads under its fault, checked for lost and
// phantom writes and every other anomaly the history checker knows. Split
// over a few test files so that each stays within the runner's timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeAnomalies } from './checker.js';
import { runScenario, SCENARIOS } from './scenarios.js';

const SECONDS = Number(process.env.BOREALIS_RELIABILITY_SECONDS ?? 8);

export function shortScenarioTests(names: readonly string[]): void {
  for (const name of names) {
    const i = SCENARIOS.findIndex((s) => s.name === name);
    const s = SCENARIOS[i];
    if (!s) throw new Error(`no scenario ${name}`);
    test(`${s.name}: ${s.description}: no acknowledged write lost, no phantom, no anomaly`, async (t) => {
      const r = await runScenario(s, { durationMs: SECONDS * 1000, clients: 4, seed: 1000 + i, log: () => undefined });
      if (r.skipped) {
        t.skip(r.skipped);
        return;
      }
      assert.equal(r.error, undefined, r.error);
      assert.ok(r.check.counts.acknowledgedWrites > 0, 'the workload made progress');
      assert.equal(r.finalReadsDone, true, 'the data could be read back after healing');
      assert.deepEqual(
        r.check.anomalies.map((a) => a.kind),
        [],
        describeAnomalies(r.check.anomalies),
      );
    });
  }
}
