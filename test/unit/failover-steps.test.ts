// The failover's pure decisions: storage is fenced on a write quorum before
// anything is promoted, and which readers may be promoted (a paused reader
// of promotion tier 0 or 1 is resumed for it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FAILOVER_STEPS, failoverRecovery, fenceVerdict, promotionOrder, timelinePlace, type Candidate } from '../../src/control/failover-steps.js';

test('fencing holds only once a write quorum of nodes accepted the new term', () => {
  assert.ok(fenceVerdict([5, 5, 5, 5, 4, 4], 5).ok);
  assert.ok(fenceVerdict([5, 5, 5, 5], 5).ok, 'two nodes unreachable');
  const three = fenceVerdict([5, 5, 5, 4, 4, 4], 5);
  assert.equal(three.ok, false, 'three of six: the old writer is cut off, but nothing could commit after the promotion');
  assert.match((three as { reason: string }).reason, /3 of 6 storage nodes accepted term 5; 4 are needed/);
  // A node that reports a higher term than the one just given did not accept it.
  assert.equal(fenceVerdict([5, 5, 5, 6, 6, 6], 5).ok, false);
  assert.equal(fenceVerdict([], 1).ok, false);
});

test('promotion order: tier, then capacity; paused readers of tier 0 and 1 count, other paused or broken ones do not', () => {
  const c = (id: string, promotionTier: number, state: Candidate['state'], capacityAcu = 1): Candidate => ({ id, promotionTier, state, capacityAcu });
  assert.deepEqual(promotionOrder([c('r2', 2, 'available'), c('r1', 1, 'available', 1), c('r1b', 1, 'available', 4), c('r0', 0, 'failed')]).map((x) => x.id), ['r1b', 'r1', 'r2']);
  // Auto-paused tier-0/1 readers are resumed for a failover (capacity 0 while paused: tier decides).
  assert.deepEqual(promotionOrder([c('p1', 1, 'paused', 0), c('r3', 3, 'available')]).map((x) => x.id), ['p1', 'r3']);
  assert.deepEqual(promotionOrder([c('p2', 2, 'paused', 0)]).map((x) => x.id), [], 'a paused tier-2 reader is not woken');
  assert.deepEqual(promotionOrder([c('a', 1, 'available', 0.5), c('p', 1, 'paused', 0)]).map((x) => x.id), ['a', 'p'], 'among equals, the running one first');
});

test('a target on the durable timeline is compared by LSN; one past where the chain left its timeline is not known to be on it', () => {
  const history = [
    { timeline: 1, switchLsn: 0x3000000n },
    { timeline: 2, switchLsn: 0x5000000n },
  ];
  assert.deepEqual(timelinePlace(history, 3, 3, 0x9000000n), { kind: 'on-chain' });
  // Replayed past the switch out of timeline 2 with nothing to show it followed: not known to be on the chain.
  assert.equal(timelinePlace(history, 3, 2, 0x6000000n).kind, 'unknown');
  // Not yet at the switch out of its timeline: on the chain.
  assert.deepEqual(timelinePlace(history, 3, 1, 0x1000000n), { kind: 'on-chain' });
  assert.deepEqual(timelinePlace(history, 3, 2, 0x5000000n), { kind: 'on-chain' }, 'exactly at the switch');
  assert.equal(timelinePlace(history, 3, 4, 0x1000000n).kind, 'off-chain', 'a timeline newer than storage holds');
  assert.equal(timelinePlace([{ timeline: 1, switchLsn: 0x3000000n }], 2, 5, 0x1000000n).kind, 'off-chain');
  const sibling = timelinePlace([{ timeline: 1, switchLsn: 0x3000000n }, { timeline: 3, switchLsn: 0x4000000n }], 4, 2, 0x3800000n);
  assert.equal(sibling.kind, 'off-chain', 'timeline 2 is a sibling branch, not an ancestor of 4');
  assert.match((sibling as { reason: string }).reason, /timeline 2 is not in the history of timeline 4/);
});

test('a failover found unfinished is rolled forward exactly when roles were swapped', () => {
  for (const step of FAILOVER_STEPS) {
    assert.equal(failoverRecovery(step, 'w1', 'r1').kind, 'roll-back', `${step}, old writer still the writer`);
    assert.equal(failoverRecovery(step, 'r1', 'r1').kind, 'roll-forward', `${step}, the target is the writer`);
  }
  assert.equal(failoverRecovery('swapped', null, 'r1').kind, 'roll-back');
});
