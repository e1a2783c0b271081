import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackendScanner } from '../../src/pgwire/backend-scanner.js';
import { ResponseQueue } from '../../src/proxy/response-queue.js';

function msg(code: string, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out.write(code, 0, 'latin1');
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

const big = Buffer.alloc(3000, 7);
const messages = [msg('1'), msg('2'), msg('T', 'rowdesc'), msg('D', big), msg('S', 'application_name\0x\0'), msg('C', 'SELECT 1\0'), msg('Z', 'I')];
const stream = Buffer.concat(messages);

function run(chunks: Buffer[], drop: (code: string) => boolean, insertBefore?: string) {
  const out: Buffer[] = [];
  const inspected: string[] = [];
  const scanner = new BackendScanner({
    onMessage: (start, emit) => {
      const code = String.fromCharCode(start.code);
      if (code === insertBefore) emit(Buffer.from('<ins>'));
      return !drop(code);
    },
    onInspected: (code, body) => inspected.push(String.fromCharCode(code) + ':' + body.toString('latin1')),
  });
  for (const c of chunks) scanner.scan(c, (s) => out.push(Buffer.from(s)));
  assert.equal(scanner.atBoundary, true);
  return { out: Buffer.concat(out), inspected };
}

test('forwarded bytes and inspected bodies are the same at every split', () => {
  const dropTwo = (c: string): boolean => c === '2';
  const expected = Buffer.concat([msg('1'), Buffer.from('<ins>'), ...messages.slice(2)]);
  for (let cut = 0; cut <= stream.length; cut += cut < 40 || cut > stream.length - 40 ? 1 : 97) {
    const r = run([stream.subarray(0, cut), stream.subarray(cut)], dropTwo, 'T');
    assert.deepEqual(r.out, expected, `split at ${cut}`);
    assert.deepEqual(r.inspected, ['S:application_name\0x\0', 'Z:I'], `split at ${cut}`);
  }
  const bytewise = run([...stream].map((b) => Buffer.from([b])), dropTwo, 'T');
  assert.deepEqual(bytewise.out, expected);
});

test('a dropped large message is skipped without being buffered', () => {
  const r = run([stream.subarray(0, 100), stream.subarray(100, 2000), stream.subarray(2000)], (c) => c === 'D');
  assert.deepEqual(r.out, Buffer.concat(messages.filter((m) => m[0] !== 0x44)));
});

test('response queue: a synthetic ParseComplete lands between the right server replies', () => {
  const q = new ResponseQueue();
  const out: string[] = [];
  q.expect('bind');
  q.synthesize(Buffer.from('1'));
  q.expect('execute');
  q.expect('sync');
  const server = ['2', 'D', 'C', 'Z'];
  for (const code of server) {
    q.flushSynthetic((b) => out.push(`syn:${b.toString()}`));
    if (q.onServerMessage(code.charCodeAt(0))) out.push(code);
  }
  assert.deepEqual(out, ['2', 'syn:1', 'D', 'C', 'Z']);
  assert.equal(q.isEmpty, true);
});

test('response queue: replies to requests the pooler made are hidden, errors are not', () => {
  const q = new ResponseQueue();
  let failed = 0;
  q.expect('parse', { forward: false, onError: () => failed++ });
  q.expect('bind');
  q.synthesize(Buffer.from('3'));
  q.expect('execute');
  q.expect('sync');
  const seen = ['1', '2', 'C', 'Z'].filter((c) => (q.flushSynthetic(() => undefined), q.onServerMessage(c.charCodeAt(0))));
  assert.deepEqual(seen, ['2', 'C', 'Z']);
  // An error in the extended protocol skips everything up to Sync.
  q.expect('parse', { forward: false, onError: () => failed++ });
  q.expect('bind');
  q.synthesize(Buffer.from('x'));
  q.expect('execute');
  q.expect('sync');
  const out: string[] = [];
  for (const c of ['E', 'Z']) {
    q.flushSynthetic((b) => out.push(b.toString()));
    if (q.onServerMessage(c.charCodeAt(0))) out.push(c);
  }
  assert.deepEqual(out, ['E', 'Z']);
  assert.equal(failed, 1);
  assert.equal(q.isEmpty, true);
});

test('response queue: a simple query ends only at ReadyForQuery, even after an error', () => {
  const q = new ResponseQueue();
  q.expect('query', { forward: false });
  assert.equal(q.onServerMessage('E'.charCodeAt(0)), true);
  assert.equal(q.onServerMessage('Z'.charCodeAt(0)), false);
  assert.equal(q.isEmpty, true);
  assert.equal(q.onServerMessage('A'.charCodeAt(0)), true, 'notifications pass');
});

test('response queue: after an error with no Sync sent yet, requests up to the Sync are owed nothing', () => {
  const q = new ResponseQueue();
  const skipped: string[] = [];
  q.expect('parse');
  q.expect('bind');
  q.expect('execute');
  // The client flushed without Sync; the server reports an error.
  assert.equal(q.onServerMessage('1'.charCodeAt(0)), true);
  assert.equal(q.onServerMessage('E'.charCodeAt(0)), true);
  assert.equal(q.isEmpty, true);
  assert.equal(q.skippingToSync, true);
  // Sent after the error: the server skips them without a reply.
  q.expect('parse', { onError: () => skipped.push('parse') });
  q.synthesize(Buffer.from('3'));
  q.expect('execute', { onError: () => skipped.push('execute') });
  assert.deepEqual(skipped, ['parse', 'execute']);
  assert.equal(q.isEmpty, true);
  q.expect('sync');
  assert.equal(q.skippingToSync, false);
  const out: string[] = [];
  q.flushSynthetic((b) => out.push(b.toString()));
  assert.deepEqual(out, [], 'no synthetic reply for a skipped message');
  assert.equal(q.onServerMessage('Z'.charCodeAt(0)), true);
  assert.equal(q.isEmpty, true);
  // The next exchange is answered normally.
  q.expect('parse');
  assert.equal(q.onServerMessage('1'.charCodeAt(0)), true);
  assert.equal(q.isEmpty, true);
});
