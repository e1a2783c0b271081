import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { JSON_DEPTH_MAX, JsonSyntaxError, parseJson, stringifyJson } from '../../src/dataapi/json.js';
import { bindParameter, ParameterError, toField } from '../../src/dataapi/fields.js';

const OPTIONS = { decimalReturnType: 'STRING', longReturnType: 'LONG' } as const;

/** Integers past 2^53 are where parseJson differs from JSON.parse, by design. */
function hasUnsafeInteger(v: unknown): boolean {
  if (typeof v === 'number') return Number.isInteger(v) && !Number.isSafeInteger(v);
  if (typeof v !== 'object' || v === null) return false;
  return Object.values(v).some(hasUnsafeInteger);
}
const ordinaryJson = fc.jsonValue().filter((v) => !hasUnsafeInteger(v));

test('64-bit integers cross the JSON both ways with every digit', () => {
  for (const digits of ['9007199254740993', '-9007199254740993', '9223372036854775807', '-9223372036854775808', '18446744073709551616']) {
    const parsed = parseJson(`{"longValue": ${digits}}`) as { longValue: unknown };
    assert.equal(typeof parsed.longValue, 'bigint');
    assert.equal(String(parsed.longValue), digits);
    assert.equal(stringifyJson(parsed), `{"longValue":${digits}}`);
  }
  // Safe integers, fractions and exponents stay numbers, as JSON.parse has them.
  assert.deepEqual(parseJson('[9007199254740991, 1.5, 1e300, -0, 12345678901234567.5, "12345678901234567890"]'), [9007199254740991, 1.5, 1e300, -0, 12345678901234567.5, '12345678901234567890']);
});

test('without long integers, parseJson and stringifyJson agree with JSON.parse and JSON.stringify', () => {
  fc.assert(
    fc.property(ordinaryJson, (v) => {
      const text = JSON.stringify(v);
      assert.deepEqual(parseJson(text), JSON.parse(text));
      assert.equal(stringifyJson(JSON.parse(text)), text);
    }),
    { numRuns: 500 },
  );
  // The slow path (a 16-digit run anywhere) parses the same values too.
  fc.assert(
    fc.property(ordinaryJson, (v) => {
      const text = JSON.stringify([v, '1234567890123456']);
      assert.deepEqual(parseJson(text), JSON.parse(text));
    }),
    { numRuns: 500 },
  );
});

test('bad JSON and runaway nesting are refused', () => {
  for (const bad of ['{', '[1,]', '{"a" 1}', '01', '-', '"unterminated', '[1] x', '{"a":1,}', 'tru', '1234567890123456 7']) {
    assert.throws(() => parseJson(bad), JsonSyntaxError, bad);
  }
  const deep = '['.repeat(JSON_DEPTH_MAX + 2) + '1234567890123456' + ']'.repeat(JSON_DEPTH_MAX + 2);
  assert.throws(() => parseJson(deep), /nesting deeper/);
  const proto = parseJson('{"__proto__": {"polluted": 1}, "n": 12345678901234567890}') as Record<string, unknown>;
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(Object.keys(proto), ['__proto__', 'n']);
});

test('int8 results are exact Fields; longValue parameters keep every digit and the 64-bit range', () => {
  assert.deepEqual(toField(20, '9007199254740993', OPTIONS), { longValue: 9007199254740993n });
  assert.deepEqual(toField(20, '42', OPTIONS), { longValue: 42 });
  assert.deepEqual(toField(1016, '{9223372036854775807,1}', OPTIONS), { arrayValue: { longValues: [9223372036854775807n, 1] } });
  assert.deepEqual(toField(1700, '9223372036854775807', { ...OPTIONS, decimalReturnType: 'DOUBLE_OR_LONG' }), { longValue: 9223372036854775807n });
  assert.equal(bindParameter({ name: 'x', value: { longValue: 9223372036854775807n } }).value, '9223372036854775807');
  assert.equal(bindParameter({ name: 'x', value: { longValue: -9223372036854775808n } }).value, '-9223372036854775808');
  assert.throws(() => bindParameter({ name: 'x', value: { longValue: 9223372036854775808n } }), ParameterError);
  assert.throws(() => bindParameter({ name: 'x', value: { longValue: 1e20 } }), ParameterError);
});

test('blobValue must be valid base64', () => {
  assert.deepEqual(bindParameter({ name: 'b', value: { blobValue: Buffer.from('hello').toString('base64') } }).value, Buffer.from('hello'));
  assert.deepEqual(bindParameter({ name: 'b', value: { blobValue: '' } }).value, Buffer.alloc(0));
  for (const bad of ['not base64!', 'aGVsbG8', 'aGVsbG8=x', '====']) {
    assert.throws(() => bindParameter({ name: 'b', value: { blobValue: bad } }), /blobValue is not valid base64/, bad);
  }
});
