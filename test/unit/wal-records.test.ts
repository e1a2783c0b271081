// Record boundaries in synthetic WAL laid out as PostgreSQL 17 does: records
// across page and segment boundaries, a switch record, and limits that fall
// inside a record header, inside a record's body, and exactly at its end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WAL_PAGE_BYTES, WAL_SEGMENT_BYTES } from '../../src/pgwire/replication.js';
import { advance, lastRecordEnd, nextRecordStart, type WalBytes } from '../../src/pgwire/wal-records.js';
import { fakeWal } from '../helpers/wal.js';

const BASE = 16n * BigInt(WAL_SEGMENT_BYTES); // segment 16, timeline 1
const LENGTH = 2 * WAL_SEGMENT_BYTES;

interface Built {
  readonly wal: WalBytes;
  /** Each record's start and end. */
  readonly records: Array<{ start: bigint; end: bigint }>;
  readonly buf: Buffer;
}

/** Records of the given sizes (header included) from the segment's first record on; `switchAt`: that record is an XLOG_SWITCH. */
function build(sizes: number[], switchAt = -1): Built {
  const buf = fakeWal(BASE, LENGTH);
  const write = (p: bigint, bytes: Buffer): void => {
    let pos = p;
    let off = 0;
    while (off < bytes.length) {
      const pageEnd = (pos / BigInt(WAL_PAGE_BYTES) + 1n) * BigInt(WAL_PAGE_BYTES);
      const take = Math.min(bytes.length - off, Number(pageEnd - pos));
      bytes.copy(buf, Number(pos - BASE), off, off + take);
      off += take;
      if (off < bytes.length && pageEnd - BASE < BigInt(buf.length)) {
        // As PostgreSQL marks a page that starts with the rest of a record: the flag and the remaining length.
        const at = Number(pageEnd - BASE);
        buf.writeUInt16LE(buf.readUInt16LE(at + 2) | 0x0001, at + 2);
        buf.writeUInt32LE(bytes.length - off, at + 16);
      }
      pos = pageEnd + (pageEnd % BigInt(WAL_SEGMENT_BYTES) === 0n ? 40n : 24n);
    }
  };
  const records: Array<{ start: bigint; end: bigint }> = [];
  let end = BASE + 40n;
  let prev = 0n;
  sizes.forEach((size, i) => {
    const start = nextRecordStart(end);
    const rec = Buffer.alloc(size, 0x33);
    rec.writeUInt32LE(size, 0);
    rec.writeBigUInt64LE(prev, 8);
    rec[16] = i === switchAt ? 0x40 : 0x00;
    rec[17] = i === switchAt ? 0 : 10;
    write(start, rec);
    let e = advance(start, size);
    if (i === switchAt) {
      e = ((e + BigInt(WAL_SEGMENT_BYTES) - 1n) / BigInt(WAL_SEGMENT_BYTES)) * BigInt(WAL_SEGMENT_BYTES);
      // PostgreSQL zero-fills the rest of a switched segment.
      buf.fill(0, Number(advance(start, size) - BASE), Number(e - BASE));
      const fresh = fakeWal(e, 40);
      fresh.copy(buf, Number(e - BASE));
    }
    records.push({ start, end: e });
    prev = start;
    end = e;
  });
  // Beyond the last record: zeros, as in a fresh segment.
  const tail = Number(nextRecordStart(end) - BASE);
  for (let page = tail - (tail % WAL_PAGE_BYTES); page < LENGTH; page += WAL_PAGE_BYTES) buf.fill(0, Math.max(tail, page + 40), page + WAL_PAGE_BYTES);
  const wal: WalBytes = (lsn, n) => {
    const at = Number(lsn - BASE);
    return at < 0 || at + n > buf.length ? null : buf.subarray(at, at + n);
  };
  return { wal, records, buf };
}

test('the last whole record before a limit inside a record body, inside a header, and exactly at an end', () => {
  // Sizes that cross page boundaries, one larger than a page, one exactly filling to a page end.
  const sizes = [100, 3000, 9000, 64, 8000, 24, 500, 20_000, 72];
  const { wal, records } = build(sizes);
  const from = records[0]!.end;
  for (let k = 1; k < records.length; k++) {
    const r = records[k]!;
    const mid = (r.start + r.end) / 2n;
    assert.deepEqual(lastRecordEnd(wal, from, mid), { end: records[k - 1]!.end, lastStart: k > 1 ? records[k - 1]!.start : null, records: k - 1, stop: 'limit' }, `limit inside record ${k}`);
    assert.deepEqual(lastRecordEnd(wal, from, r.end), { end: r.end, lastStart: r.start, records: k, stop: 'limit' }, `limit at the end of record ${k}`);
    assert.equal(lastRecordEnd(wal, from, r.start + 10n).end, records[k - 1]!.end, `limit inside the header of record ${k}`);
  }
});

test('a record ending exactly at a page end: the next starts after the next page header', () => {
  const first = BASE + 40n;
  const toPageEnd = Number(BigInt(WAL_PAGE_BYTES) - (first % BigInt(WAL_PAGE_BYTES)));
  const { wal, records } = build([toPageEnd, 200, 300]);
  assert.equal(records[0]!.end % BigInt(WAL_PAGE_BYTES), 0n);
  assert.equal(records[1]!.start, records[0]!.end + 24n);
  assert.equal(lastRecordEnd(wal, records[0]!.end, records[2]!.end).end, records[2]!.end);
});

test('a switch record ends its segment; the walk goes on in the next one', () => {
  const { wal, records } = build([200, 100, 400, 600], 1);
  assert.equal(records[1]!.end, BASE + BigInt(WAL_SEGMENT_BYTES));
  assert.equal(records[2]!.start, records[1]!.end + 40n, 'after the next segment\'s long header');
  assert.deepEqual(lastRecordEnd(wal, records[0]!.end, records[3]!.end), { end: records[3]!.end, lastStart: records[3]!.start, records: 3, stop: 'limit' });
});

test('zeros or a broken chain are not records: the walk says so instead of vouching for them', () => {
  const { wal, records } = build([200, 300, 400]);
  const last = records[2]!.end;
  // Past the last record there are only zeros, up to a limit far beyond.
  assert.deepEqual(lastRecordEnd(wal, records[0]!.end, last + 50_000n), { end: last, lastStart: records[2]!.start, records: 2, stop: 'invalid' });
  // A record whose xl_prev does not point at its predecessor.
  const broken: WalBytes = (lsn, n) => {
    const b = Buffer.from(wal(lsn, n)!);
    if (lsn === records[2]!.start && n >= 16) b.writeBigUInt64LE(1n, 8);
    return b;
  };
  assert.deepEqual(lastRecordEnd(broken, records[0]!.end, last), { end: records[1]!.end, lastStart: records[1]!.start, records: 1, stop: 'invalid' });
});

test('a page that does not carry on the record running into it (no contrecord flag, or the wrong length left) is no continuation', () => {
  const { wal, records, buf } = build([200, 300, 20_000, 100]);
  const r = records[2]!;
  const secondPage = Number(((r.start / BigInt(WAL_PAGE_BYTES)) + 1n) * BigInt(WAL_PAGE_BYTES) - BASE);
  const limit = (r.start + r.end) / 2n;
  assert.equal(lastRecordEnd(wal, records[0]!.end, limit).stop, 'limit', 'intact, the record is cut by the limit');
  const lengthLeft = buf.readUInt32LE(secondPage + 16);
  buf.writeUInt32LE(lengthLeft + 8, secondPage + 16);
  assert.deepEqual(lastRecordEnd(wal, records[0]!.end, limit), { end: records[1]!.end, lastStart: records[1]!.start, records: 1, stop: 'invalid' });
  buf.writeUInt32LE(lengthLeft, secondPage + 16);
  buf.writeUInt16LE(buf.readUInt16LE(secondPage + 2) & ~0x0001, secondPage + 2);
  assert.equal(lastRecordEnd(wal, records[0]!.end, r.end).stop, 'invalid');
});

test('after an abandoned record the walk goes on from the record that overwrites it', () => {
  const { wal, records, buf } = build([200, 300, 20_000]);
  const r = records[2]!;
  const secondPage = ((r.start / BigInt(WAL_PAGE_BYTES)) + 1n) * BigInt(WAL_PAGE_BYTES);
  const at = (lsn: bigint): number => Number(lsn - BASE);
  // The page after the abandoned record's start: flagged as overwriting it, then two new records.
  buf.writeUInt16LE((buf.readUInt16LE(at(secondPage) + 2) & ~0x0001) | 0x0008, at(secondPage) + 2);
  buf.writeUInt32LE(0, at(secondPage) + 16);
  const x = secondPage + 24n;
  const y = nextRecordStart(x + 100n);
  for (const [start, size, prev] of [[x, 100, r.start], [y, 64, x]] as const) {
    const rec = Buffer.alloc(size, 0x44);
    rec.writeUInt32LE(size, 0);
    rec.writeBigUInt64LE(prev, 8);
    rec[17] = 10;
    rec.copy(buf, at(start));
  }
  assert.deepEqual(lastRecordEnd(wal, records[0]!.end, y + 64n), { end: y + 64n, lastStart: y, records: 3, stop: 'limit' });
  // A limit inside the overwriting record: the last whole record is still the one before the abandoned one.
  assert.deepEqual(lastRecordEnd(wal, records[0]!.end, x + 50n), { end: records[1]!.end, lastStart: records[1]!.start, records: 1, stop: 'limit' });
});

test('a header split across pages and cut by the limit: the next page is checked against the record\'s whole length', () => {
  // Record 1 starts 8 bytes before the first page's end: xl_tot_len and
  // xl_xid on that page, the rest of its header after the next page header.
  const first = BASE + 40n;
  const { wal, records } = build([Number(BigInt(WAL_PAGE_BYTES) - 8n - (first % BigInt(WAL_PAGE_BYTES))), 200, 300]);
  const r = records[1]!;
  assert.equal(r.start % BigInt(WAL_PAGE_BYTES), BigInt(WAL_PAGE_BYTES) - 8n);
  const nextPage = r.start + 8n;
  const from = records[0]!.end;
  const cut = { end: from, lastStart: null, records: 0, stop: 'limit' };
  assert.deepEqual(lastRecordEnd(wal, from, nextPage + 24n + 8n), cut, 'inside the header, past the next page header');
  assert.deepEqual(lastRecordEnd(wal, from, r.start + 2n), cut, 'inside xl_tot_len itself');
  assert.deepEqual(lastRecordEnd(wal, from, r.end), { end: r.end, lastStart: r.start, records: 1, stop: 'limit' });
});
