// Losing and regaining the write quorum, with a grace for reconnects and no
// alarm while the writer is paused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QUORUM_START, nextQuorumState, type QuorumState } from '../../src/control/quorum-watch.js';

function run(samples: Array<[number, number, boolean?]>, graceMs = 5_000): Array<string | null> {
  let s: QuorumState = QUORUM_START;
  return samples.map(([atMs, streaming, writerRunning = true]) => {
    const next = nextQuorumState(s, { atMs, streaming, writerRunning }, graceMs);
    s = next.state;
    return next.event;
  });
}

test('three nodes streaming for longer than the grace: lost, once; four again: restored, once', () => {
  assert.deepEqual(run([[0, 6], [1_000, 3], [3_000, 3], [6_000, 3], [7_000, 2], [8_000, 4], [9_000, 6]]), [null, null, null, 'write-quorum-lost', null, 'write-quorum-restored', null]);
});

test('a short dip (nodes reconnecting after a writer start) is not a loss', () => {
  assert.deepEqual(run([[0, 0], [1_000, 2], [2_000, 6], [10_000, 6]]), [null, null, null, null]);
});

test('a paused writer has no streaming nodes and no alarm; a loss stays until the quorum is seen again', () => {
  assert.deepEqual(run([[0, 6], [1_000, 0, false], [60_000, 0, false]]), [null, null, null]);
  assert.deepEqual(run([[0, 3], [6_000, 3], [7_000, 0, false], [8_000, 5]]), [null, 'write-quorum-lost', null, 'write-quorum-restored']);
});
