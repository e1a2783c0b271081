// The reliability suite's checker finds each anomaly in a small history
// that has it, and nothing in histories that are clean.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkHistory } from '../reliability/checker.js';
import type { Op } from '../reliability/history.js';

const A = { incarnation: 'a', term: '1', timeline: '00000001' };
const B = { incarnation: 'b', term: '2', timeline: '00000002' };
const kinds = (ops: Op[], bankTotal?: number): string[] => checkHistory(ops, { bankTotal }).anomalies.map((a) => a.kind);

test('a clean list-append history passes, unknown appends may or may not appear', () => {
  const ops: Op[] = [
    { f: 'append', process: 0, key: 1, value: 10, invokeMs: 0, completeMs: 5, outcome: 'ok', writer: A },
    { f: 'append', process: 1, key: 1, value: 11, invokeMs: 1, completeMs: 9, outcome: 'unknown' },
    { f: 'append', process: 1, key: 1, value: 12, invokeMs: 10, completeMs: 12, outcome: 'fail' },
    { f: 'read-list', process: 2, key: 1, values: [10], invokeMs: 6, completeMs: 7, outcome: 'ok' },
    { f: 'read-list', process: 2, key: 1, values: [10, 11], invokeMs: 20, completeMs: 21, outcome: 'ok' },
  ];
  assert.deepEqual(kinds(ops), []);
});

test('an acknowledged append missing from a later read is a lost write', () => {
  const ops: Op[] = [
    { f: 'append', process: 0, key: 1, value: 10, invokeMs: 0, completeMs: 5, outcome: 'ok', writer: A },
    { f: 'read-list', process: 2, key: 1, values: [], invokeMs: 6, completeMs: 7, outcome: 'ok' },
  ];
  assert.deepEqual(kinds(ops), ['lost-write']);
  // Concurrent with the read, it may be missing.
  assert.deepEqual(kinds([{ ...ops[0]!, completeMs: 6.5 }, ops[1]!]), []);
});

test('a failed append that shows up is a phantom; a value nobody wrote is flagged; duplicates too', () => {
  assert.deepEqual(
    kinds([
      { f: 'append', process: 0, key: 1, value: 10, invokeMs: 0, completeMs: 5, outcome: 'fail' },
      { f: 'read-list', process: 2, key: 1, values: [10], invokeMs: 6, completeMs: 7, outcome: 'ok' },
    ]),
    ['phantom-write'],
  );
  assert.deepEqual(kinds([{ f: 'read-list', process: 2, key: 1, values: [99], invokeMs: 6, completeMs: 7, outcome: 'ok' }]), ['never-written']);
  assert.deepEqual(
    kinds([
      { f: 'append', process: 0, key: 1, value: 10, invokeMs: 0, completeMs: 5, outcome: 'ok', writer: A },
      { f: 'read-list', process: 2, key: 1, values: [10, 10], invokeMs: 6, completeMs: 7, outcome: 'ok' },
    ]),
    ['duplicate'],
  );
});

test('a read that misses what an earlier completed read saw is stale', () => {
  const ops: Op[] = [
    { f: 'append', process: 0, key: 1, value: 10, invokeMs: 0, completeMs: 50, outcome: 'unknown' },
    { f: 'read-list', process: 2, key: 1, values: [10], invokeMs: 6, completeMs: 7, outcome: 'ok' },
    { f: 'read-list', process: 3, key: 1, values: [], invokeMs: 8, completeMs: 9, outcome: 'ok' },
  ];
  assert.deepEqual(kinds(ops), ['stale-read']);
});

test('registers: a stale value after an acknowledged overwrite, and a lost first write', () => {
  assert.deepEqual(
    kinds([
      { f: 'write', process: 0, key: 1, value: 1, invokeMs: 0, completeMs: 2, outcome: 'ok', writer: A },
      { f: 'write', process: 0, key: 1, value: 2, invokeMs: 3, completeMs: 4, outcome: 'ok', writer: A },
      { f: 'read', process: 1, key: 1, value: 1, invokeMs: 5, completeMs: 6, outcome: 'ok' },
    ]),
    ['lost-write'],
  );
  assert.deepEqual(
    kinds([
      { f: 'write', process: 0, key: 1, value: 1, invokeMs: 0, completeMs: 2, outcome: 'ok', writer: A },
      { f: 'read', process: 1, key: 1, value: null, invokeMs: 5, completeMs: 6, outcome: 'ok' },
    ]),
    ['lost-write'],
  );
  // Overlapping writes may land in either order.
  assert.deepEqual(
    kinds([
      { f: 'write', process: 0, key: 1, value: 1, invokeMs: 0, completeMs: 4, outcome: 'ok', writer: A },
      { f: 'write', process: 1, key: 1, value: 2, invokeMs: 1, completeMs: 3, outcome: 'ok', writer: A },
      { f: 'read', process: 2, key: 1, value: 1, invokeMs: 5, completeMs: 6, outcome: 'ok' },
    ]),
    [],
  );
});

test('bank: totals and negative balances', () => {
  assert.deepEqual(kinds([{ f: 'read-bank', process: 0, balances: [50, 50], invokeMs: 0, completeMs: 1, outcome: 'ok' }], 100), []);
  assert.deepEqual(kinds([{ f: 'read-bank', process: 0, balances: [50, 49], invokeMs: 0, completeMs: 1, outcome: 'ok' }], 100), ['bank-total']);
  assert.deepEqual(kinds([{ f: 'read-bank', process: 0, balances: [101, -1], invokeMs: 0, completeMs: 1, outcome: 'ok' }], 100), ['bank-negative']);
});

test('two writers acknowledging in overlapping intervals are caught; a clean hand-over is not', () => {
  const w = (process: number, writer: typeof A, invokeMs: number, completeMs: number, value: number): Op => ({ f: 'append', process, key: 1, value, invokeMs, completeMs, outcome: 'ok', writer });
  assert.deepEqual(kinds([w(0, A, 0, 1, 1), w(0, A, 10, 11, 2), w(1, B, 12, 13, 3), w(1, B, 20, 21, 4)]), []);
  assert.deepEqual(kinds([w(0, A, 0, 1, 1), w(1, B, 2, 3, 2), w(0, A, 10, 11, 3), w(1, B, 20, 21, 4)]), ['two-writers']);
});
