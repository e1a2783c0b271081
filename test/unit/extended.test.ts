import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtocolViolation } from '../../src/pgwire/frame-reader.js';
import { parseParse, serializeParse } from '../../src/pgwire/extended.js';
import { CancelRegistry, CLIENT_PROCESS_ID_MIN } from '../../src/proxy/cancel-registry.js';

function parseWithTypes(count: number, declared = count): Buffer {
  const types = Buffer.alloc(2 + declared * 4);
  types.writeUInt16BE(count, 0);
  for (let i = 0; i < declared; i++) types.writeUInt32BE(23, 2 + i * 4);
  return serializeParse('s', 'SELECT 1', types).subarray(5);
}

test('Parse reads its parameter-type count unsigned, as PostgreSQL does', () => {
  for (const count of [0, 1, 32_767, 32_768, 40_000, 65_535]) {
    const p = parseParse(parseWithTypes(count));
    assert.equal(p.paramTypes.readUInt16BE(0), count);
    assert.equal(p.paramTypes.length, 2 + count * 4);
  }
  assert.throws(() => parseParse(parseWithTypes(40_000, 39_999)), ProtocolViolation);
});

test('client-facing process ids are never possible Linux pids, and stay unique', () => {
  const reg = new CancelRegistry();
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    const k = reg.allocate();
    assert.ok(k.processId >= CLIENT_PROCESS_ID_MIN && k.processId <= 0x7fffffff);
    assert.ok(!seen.has(k.processId));
    seen.add(k.processId);
  }
});
