// Where a lost writer's data comes from: initdb only for a cluster that
// never had a system; otherwise a read quorum of nodes holding that
// system's WAL, or wait.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rebuildSource, regressedNodes, type NodeSystemReport } from '../../src/control/rebuild-steps.js';

const n = (name: string, systemId: string | null, flushLsn: bigint | null): NodeSystemReport => ({ name, systemId, flushLsn });

test('a cluster no one has heard of starts with initdb', () => {
  assert.deepEqual(rebuildSource(null, [n('sn1', null, null), n('sn2', null, null)], []), { kind: 'initdb' });
  assert.deepEqual(rebuildSource(null, [], []), { kind: 'initdb' });
});

test('a recorded system is never initialised again: fewer than three nodes holding its WAL means waiting', () => {
  const three = [n('sn4', '7', 100n), n('sn5', '7', 90n), n('sn6', '7', 100n)];
  assert.deepEqual(rebuildSource('7', three, ['7']), { kind: 'restore', systemId: '7', nodes: ['sn4', 'sn5', 'sn6'] });
  const two = rebuildSource('7', three.slice(1), ['7']);
  assert.equal(two.kind, 'wait');
  assert.match((two as { reason: string }).reason, /only 2 of 6 storage nodes hold WAL of system 7; 3 are needed/);
  // No node reachable at all: still no initdb.
  assert.equal(rebuildSource('7', [], []).kind, 'wait');
});

test('wiped nodes, nodes of another system and nodes without WAL do not make a quorum', () => {
  const r = rebuildSource('7', [n('sn1', '7', 100n), n('sn2', '7', 100n), n('sn3', null, null), n('sn4', '8', 500n), n('sn5', '7', 0n), n('sn6', '7', null)], ['7']);
  assert.equal(r.kind, 'wait');
});

test('an unrecorded system that the nodes know still counts (a store from before it was recorded)', () => {
  assert.equal(rebuildSource(null, [n('sn1', '7', 10n)], ['7']).kind, 'wait');
  assert.deepEqual(rebuildSource(null, [n('sn1', '7', 10n), n('sn2', '7', 10n), n('sn3', '7', 10n)], ['7']).kind, 'restore');
});

test('without a base backup of the system on a reachable node it waits', () => {
  const r = rebuildSource('7', [n('sn1', '7', 10n), n('sn2', '7', 10n), n('sn3', '7', 10n)], ['8']);
  assert.equal(r.kind, 'wait');
  assert.match((r as { reason: string }).reason, /no reachable storage node holds a base backup of system 7/);
});

test('a node holding less than it once reported, or on an older timeline, has regressed', () => {
  const marks = new Map([
    ['sn1', new Map([[1, 500n]])],
    ['sn2', new Map([[1, 500n], [2, 900n]])],
    ['sn3', new Map([[1, 500n]])],
  ]);
  const r = regressedNodes(
    [
      { name: 'sn1', timeline: 1, flushLsn: 400n }, // put back from an old copy
      { name: 'sn2', timeline: 1, flushLsn: 500n }, // back on timeline 1 after reporting 2
      { name: 'sn3', timeline: 2, flushLsn: 100n }, // moved on to a newer timeline: fine
      { name: 'sn4', timeline: 1, flushLsn: 50n }, // never seen before: fine
      { name: 'sn5', timeline: 0, flushLsn: null }, // wiped: no WAL, not counted anyway
    ],
    marks,
  );
  assert.deepEqual([...r.keys()].sort(), ['sn1', 'sn2']);
  assert.match(r.get('sn1')!, /holds WAL to 190 of the 1f4 it reported on timeline 1/);
  assert.equal(regressedNodes([{ name: 'sn1', timeline: 1, flushLsn: 500n }], marks).size, 0, 'back at its mark: counts again');
});
