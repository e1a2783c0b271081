import assert from 'node:assert/strict';
import { test } from 'node:test';
import { routeConnection, type RoutableInstance } from '../../src/proxy/routing.js';

const w: RoutableInstance = { id: 'w', role: 'writer', available: true };
const r1: RoutableInstance = { id: 'r1', role: 'reader', available: true };
const r2: RoutableInstance = { id: 'r2', role: 'reader', available: true };
const r3down: RoutableInstance = { id: 'r3', role: 'reader', available: false };

const ids = (target: Parameters<typeof routeConnection>[0], instances: RoutableInstance[], turns = 4): Array<string | null> =>
  Array.from({ length: turns }, (_, t) => routeConnection(target, instances, t)?.id ?? null);

test('the writer endpoint always routes to the writer', () => {
  assert.deepEqual(ids({ type: 'writer' }, [r1, w, r2]), ['w', 'w', 'w', 'w']);
  assert.deepEqual(ids({ type: 'writer' }, [{ ...w, available: false }], 1), ['w'], 'held for a writer that is starting');
});

test('the reader endpoint balances over available readers and falls back to the writer', () => {
  assert.deepEqual(ids({ type: 'reader' }, [w, r1, r2, r3down]), ['r1', 'r2', 'r1', 'r2']);
  assert.deepEqual(ids({ type: 'reader' }, [w]), ['w', 'w', 'w', 'w']);
  assert.deepEqual(ids({ type: 'reader' }, [w, r3down], 2), ['r3', 'r3'], 'a reader that is resuming is waited for');
});

test('instance endpoints reach exactly their instance', () => {
  assert.deepEqual(ids({ type: 'instance', instanceId: 'r2' }, [w, r1, r2], 2), ['r2', 'r2']);
  assert.deepEqual(ids({ type: 'instance', instanceId: 'gone' }, [w], 1), [null]);
});

test('custom endpoints: static members, exclusions, READER versus ANY', () => {
  const all = [w, r1, r2, r3down];
  assert.deepEqual(ids({ type: 'custom', customType: 'ANY', staticMembers: ['w', 'r2'], excludedMembers: [] }, all), ['w', 'r2', 'w', 'r2']);
  assert.deepEqual(ids({ type: 'custom', customType: 'READER', staticMembers: ['w', 'r2'], excludedMembers: [] }, all, 2), ['r2', 'r2']);
  assert.deepEqual(ids({ type: 'custom', customType: 'READER', staticMembers: [], excludedMembers: ['r1'] }, all, 2), ['r2', 'r2']);
  assert.deepEqual(ids({ type: 'custom', customType: 'ANY', staticMembers: [], excludedMembers: ['r1', 'r2'] }, all, 2), ['w', 'w']);
  assert.deepEqual(ids({ type: 'custom', customType: 'READER', staticMembers: ['w'], excludedMembers: [] }, all, 1), [null]);
});
