import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameReader, ProtocolViolation, type Frame } from '../../src/pgwire/frame-reader.js';
import { parseStartupPacket, serializeCancelRequest, serializeSslRequest, serializeStartupMessage } from '../../src/pgwire/startup.js';
import { errorResponse, parseErrorFields, parseSaslInitialResponse } from '../../src/pgwire/messages.js';

function typed(code: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.write(code, 0, 'latin1');
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

const startup = serializeStartupMessage(new Map([['user', 'alice'], ['database', 'app'], ['application_name', 'tést']]));
const messages = [typed('p', Buffer.from('SCRAM-SHA-256\0\0\0\0\x05n,,ab')), typed('Q', Buffer.from('select 1\0')), typed('X', Buffer.alloc(0))];
const stream = Buffer.concat([startup, ...messages]);

/** Feeds chunks, switching framing after the first frame as the proxy does. */
function readAll(chunks: Buffer[]): Array<{ code: number | null; body: string }> {
  const reader = new FrameReader('startup', 10_000);
  const out: Array<{ code: number | null; body: string }> = [];
  for (const chunk of chunks) {
    reader.push(chunk);
    for (let f: Frame | null = reader.next(); f; f = reader.next()) {
      out.push({ code: f.code, body: f.body.toString('hex') });
      if (f.code === null) reader.setFraming('typed', 10_000);
    }
  }
  assert.equal(reader.bufferedBytes, 0);
  return out;
}

test('frames are identical whatever byte offset the stream is split at', () => {
  const whole = readAll([stream]);
  assert.equal(whole.length, 4);
  for (let cut = 0; cut <= stream.length; cut++) {
    assert.deepEqual(readAll([stream.subarray(0, cut), stream.subarray(cut)]), whole, `split at ${cut}`);
  }
  for (let a = 1; a < stream.length; a += 3) {
    for (let b = a; b < stream.length; b += 5) {
      assert.deepEqual(readAll([stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]), whole, `split at ${a},${b}`);
    }
  }
});

test('byte-by-byte delivery yields the same frames', () => {
  const bytes = [...stream].map((b) => Buffer.from([b]));
  assert.deepEqual(readAll(bytes), readAll([stream]));
});

test('a length over the limit is refused from the header alone', () => {
  const reader = new FrameReader('startup', 10_000);
  const header = Buffer.alloc(4);
  header.writeInt32BE(1_000_000_000, 0);
  reader.push(header);
  assert.throws(() => reader.next(), ProtocolViolation);
  const typedReader = new FrameReader('typed', 100);
  typedReader.push(Buffer.from([0x51, 0, 0, 0, 101]));
  assert.throws(() => typedReader.next(), /exceeds the limit of 100 bytes/);
});

test('lengths too small to be a message are refused', () => {
  for (const [framing, bytes] of [
    ['startup', [0, 0, 0, 3]],
    ['startup', [0xff, 0xff, 0xff, 0xff]],
    ['typed', [0x51, 0, 0, 0, 3]],
  ] as const) {
    const reader = new FrameReader(framing, 10_000);
    reader.push(Buffer.from(bytes));
    assert.throws(() => reader.next(), /invalid message length/);
  }
});

test('an incomplete frame waits for more bytes', () => {
  const reader = new FrameReader('typed', 10_000);
  reader.push(messages[1]!.subarray(0, 7));
  assert.equal(reader.next(), null);
  reader.push(messages[1]!.subarray(7));
  assert.equal(reader.next()?.body.toString(), 'select 1\0');
});

test('startup packets of every kind parse', () => {
  const body = (b: Buffer): Buffer => b.subarray(4);
  assert.deepEqual(parseStartupPacket(body(serializeSslRequest())), { type: 'ssl-request' });
  assert.deepEqual(parseStartupPacket(body(serializeCancelRequest(42, -7))), { type: 'cancel-request', processId: 42, secretKey: -7 });
  const parsed = parseStartupPacket(body(startup));
  assert.equal(parsed.type, 'startup');
  assert.deepEqual(parsed.type === 'startup' ? Object.fromEntries(parsed.params) : null, { user: 'alice', database: 'app', application_name: 'tést' });
});

test('malformed startup packets are protocol violations', () => {
  const v2 = Buffer.alloc(4);
  v2.writeInt32BE(2 << 16, 0);
  assert.throws(() => parseStartupPacket(v2), /unsupported frontend protocol 2.0/);
  const noUser = serializeStartupMessage(new Map([['database', 'x']])).subarray(4);
  assert.throws(() => parseStartupPacket(noUser), /no PostgreSQL user name/);
  const unterminated = Buffer.concat([startup.subarray(4, startup.length - 1)]);
  assert.throws(() => parseStartupPacket(unterminated), ProtocolViolation);
  const trailing = Buffer.concat([startup.subarray(4), Buffer.from('x')]);
  assert.throws(() => parseStartupPacket(trailing), ProtocolViolation);
  assert.throws(() => parseStartupPacket(Buffer.from([0x04, 0xd2, 0x16, 0x2f, 1])), /malformed SSLRequest/);
});

test('SASLInitialResponse length must match its data', () => {
  assert.equal(parseSaslInitialResponse(Buffer.from('SCRAM-SHA-256\0\0\0\0\x03abc')).data.toString(), 'abc');
  assert.throws(() => parseSaslInitialResponse(Buffer.from('SCRAM-SHA-256\0\0\0\0\x09abc')), ProtocolViolation);
  assert.throws(() => parseSaslInitialResponse(Buffer.from('SCRAM-SHA-256')), ProtocolViolation);
});

test('ErrorResponse carries severity, SQLSTATE and message', () => {
  const frame = errorResponse({ severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "x"' });
  assert.equal(frame[0], 0x45);
  assert.equal(frame.readInt32BE(1), frame.length - 1);
  const fields = parseErrorFields(frame.subarray(5));
  assert.equal(fields.get('S'), 'FATAL');
  assert.equal(fields.get('C'), '28P01');
  assert.equal(fields.get('M'), 'password authentication failed for user "x"');
});
