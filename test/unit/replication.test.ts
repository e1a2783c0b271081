import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtocolViolation } from '../../src/pgwire/frame-reader.js';
import {
  WAL_PAGE_BYTES,
  WAL_SEGMENT_BYTES,
  WalPageChecker,
  formatLsn,
  parseLsn,
  parseReplicationMessage,
  parseTimelineHistory,
  parseWalFileName,
  standbyStatusUpdate,
  walFileName,
} from '../../src/pgwire/replication.js';
import { ScramClientExchange } from '../../src/auth/scram-client.js';
import { ScramServerExchange, deriveVerifier } from '../../src/auth/scram.js';

import { SYSTEM_ID, fakeWal } from '../helpers/wal.js';

test('LSNs and WAL file names round-trip', () => {
  for (const text of ['0/0', '0/16B3748', 'FFFFFFFF/FFFFFFFF', '1/0']) assert.equal(formatLsn(parseLsn(text)), text);
  assert.throws(() => parseLsn('16B3748'), ProtocolViolation);
  assert.equal(walFileName(1, 1), '000000010000000000000001');
  assert.equal(walFileName(2, 256 + 3), '000000020000000100000003');
  assert.deepEqual(parseWalFileName('000000020000000100000003'), { timeline: 2, segment: 259 });
  assert.equal(parseWalFileName('00000002.history'), null);
  assert.equal(parseWalFileName('000000000000000000000001'), null);
});

test('XLogData and keepalives parse; a status update carries the positions', () => {
  const x = Buffer.alloc(25 + 3);
  x[0] = 0x77;
  x.writeBigUInt64BE(0x1000n, 1);
  x.writeBigUInt64BE(0x2000n, 9);
  x.write('abc', 25);
  const m = parseReplicationMessage(x);
  assert.equal(m.type, 'xlogdata');
  assert.equal(m.type === 'xlogdata' && m.data.toString(), 'abc');
  const k = Buffer.alloc(18);
  k[0] = 0x6b;
  k.writeBigUInt64BE(0x3000n, 1);
  k[17] = 1;
  assert.deepEqual(parseReplicationMessage(k), { type: 'keepalive', serverEnd: 0x3000n, replyRequested: true });
  assert.throws(() => parseReplicationMessage(Buffer.from('w')), ProtocolViolation);
  assert.throws(() => parseReplicationMessage(Buffer.from('zzz')), ProtocolViolation);
  const r = standbyStatusUpdate(10n, 9n, 8n, Date.UTC(2000, 0, 1, 0, 0, 1));
  assert.equal(r[0], 0x64);
  assert.equal(r[5], 0x72);
  assert.equal(r.readBigUInt64BE(6), 10n);
  assert.equal(r.readBigUInt64BE(14), 9n);
  assert.equal(r.readBigInt64BE(30), 1_000_000n);
});

test('timeline history files parse and must be ordered', () => {
  assert.deepEqual(parseTimelineHistory('1\t0/3D94B90\tno recovery target specified\n\n2\t0/5000000\treason\n'), [
    { timeline: 1, switchLsn: 0x3d94b90n },
    { timeline: 2, switchLsn: 0x5000000n },
  ]);
  assert.throws(() => parseTimelineHistory('2\t0/5\n1\t0/6\n'), ProtocolViolation);
  assert.throws(() => parseTimelineHistory('x\ty\n'), ProtocolViolation);
});

test('the page checker accepts real-shaped WAL split at every offset around page headers', () => {
  const start = BigInt(WAL_SEGMENT_BYTES) - 100n;
  const wal = fakeWal(start, 100 + 2 * WAL_PAGE_BYTES + 50);
  for (let split = 1; split < wal.length; split += split < 200 ? 1 : 997) {
    const c = new WalPageChecker({ systemId: SYSTEM_ID, timeline: 1 });
    c.check(start, wal.subarray(0, split));
    c.check(start + BigInt(split), wal.subarray(split));
  }
});

test('the page checker refuses garbage, misplaced pages, another system and future timelines', () => {
  const start = BigInt(WAL_SEGMENT_BYTES);
  const check = (bytes: Buffer, at = start, timeline = 1): void => new WalPageChecker({ systemId: SYSTEM_ID, timeline }).check(at, bytes);
  check(fakeWal(start, 3 * WAL_PAGE_BYTES));
  assert.throws(() => check(Buffer.alloc(WAL_PAGE_BYTES, 0x41)), /unknown magic/);
  assert.throws(() => check(fakeWal(start, WAL_PAGE_BYTES), start + BigInt(WAL_SEGMENT_BYTES)), /belongs at/);
  assert.throws(() => check(fakeWal(start, WAL_PAGE_BYTES, 1, 42n)), /belongs to system 42/);
  assert.throws(() => check(fakeWal(start, WAL_PAGE_BYTES, 3)), /timeline 3/);
  // Zeroed pages after a segment switch are padding.
  check(Buffer.alloc(2 * WAL_PAGE_BYTES), start + BigInt(WAL_PAGE_BYTES));
});

test('the SCRAM client completes an exchange with the server side and checks its signature', () => {
  const verifier = deriveVerifier('s3cret-pass', Buffer.from('0123456789abcdef'), 4096);
  const client = new ScramClientExchange('s3cret-pass', 'clientnonce');
  const server = new ScramServerExchange(verifier, 'servernonce');
  const serverFirst = server.clientFirst(client.clientFirst());
  const final = server.clientFinal(client.serverFirst(serverFirst));
  client.serverFinal(final);
  const wrong = new ScramClientExchange('not-the-pass', 'clientnonce');
  const server2 = new ScramServerExchange(verifier, 'servernonce');
  const first2 = server2.clientFirst(wrong.clientFirst());
  assert.throws(() => server2.clientFinal(wrong.serverFirst(first2)), /password authentication failed/);
  const c3 = new ScramClientExchange('s3cret-pass', 'clientnonce');
  const s3 = new ScramServerExchange(verifier, 'servernonce');
  c3.serverFirst(s3.clientFirst(c3.clientFirst()));
  assert.throws(() => c3.serverFinal(`v=${Buffer.alloc(32).toString('base64')}`), /server signature/);
});
