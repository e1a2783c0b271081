// When a probed instance counts as hung: only deadlines missed in a row.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROBE_START, nextProbeState, type ProbeResult, type ProbeState } from '../../src/control/instance-probe.js';

function run(results: ProbeResult[], failuresMax = 3): boolean[] {
  let s: ProbeState = PROBE_START;
  return results.map((r) => {
    const next = nextProbeState(s, r, failuresMax);
    s = next.state;
    return next.hung;
  });
}

test('three missed deadlines in a row are a hang; an answer in between resets the count', () => {
  assert.deepEqual(run(['timeout', 'timeout', 'timeout']), [false, false, true]);
  assert.deepEqual(run(['timeout', 'timeout', 'ok', 'timeout', 'timeout']), [false, false, false, false, false]);
});

test('refused connections and error answers are not a hang (postgres is gone, or alive)', () => {
  assert.deepEqual(run(['error', 'error', 'error', 'error']), [false, false, false, false]);
  assert.deepEqual(run(['timeout', 'timeout', 'error', 'timeout']), [false, false, false, false]);
});

test('a probe whose deadline fired late (the supervisor itself stalled) neither counts nor resets', () => {
  assert.deepEqual(run(['stalled', 'stalled', 'stalled', 'stalled']), [false, false, false, false]);
  assert.deepEqual(run(['timeout', 'stalled', 'timeout', 'stalled', 'timeout']), [false, false, false, false, true]);
});
