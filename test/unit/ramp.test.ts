import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RampError, concurrencyAt, parseRamp, rampDurationS } from '../../src/loadgen/ramp.js';

test('a ramp interpolates between its points and holds after the last', () => {
  const r = parseRamp('0:0,60:300,90:300,120:0');
  assert.equal(rampDurationS(r), 120);
  assert.equal(concurrencyAt(r, 0), 0);
  assert.equal(concurrencyAt(r, 30), 150);
  assert.equal(concurrencyAt(r, 75), 300);
  assert.equal(concurrencyAt(r, 105), 150);
  assert.equal(concurrencyAt(r, 500), 0);
  assert.equal(concurrencyAt(parseRamp('0:1, 10:2'), 5), 2);
});

test('bad ramps are refused with the reason', () => {
  assert.throws(() => parseRamp('0:1'), /at least two points/);
  assert.throws(() => parseRamp('1:1,2:2'), /starts at second 0/);
  assert.throws(() => parseRamp('0:1,5:2,5:3'), /must increase/);
  assert.throws(() => parseRamp('0:1,5:x'), RampError);
  assert.throws(() => parseRamp('0:1,5:6000'), /limited to 5000/);
  assert.throws(() => parseRamp('0:1,4000:6'), /at most 3600 s/);
});
