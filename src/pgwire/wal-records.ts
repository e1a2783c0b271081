// Record boundaries in PostgreSQL's WAL byte stream, pure (bytes come in
// through a function). Storage's durable end of WAL may fall in the middle of
// a record (the writer flushes whole pages during a bulk write); a standby
// replays only whole records, so it stops at the last record that ends at or
// before that point. lastRecordEnd finds that record by walking the chain
// of record headers from a known record end, checking each record's link to
// the one before it (xl_prev).
//
// Layout (PostgreSQL 17, src/include/access/xlogrecord.h, xlog_internal.h):
// every 8 KiB page starts with a header (24 bytes, 40 on a segment's first
// page); records start MAXALIGNed (8 bytes) and continue across pages; a
// record header is xl_tot_len u32, xl_xid u32, xl_prev u64, xl_info u8,
// xl_rmid u8, 2 bytes padding, xl_crc u32. An XLOG_SWITCH record ends its
// segment: the next record starts in the next segment.
import { WAL_PAGE_BYTES, WAL_SEGMENT_BYTES } from './replication.js';

const PAGE = BigInt(WAL_PAGE_BYTES);
const SEGMENT = BigInt(WAL_SEGMENT_BYTES);
export const RECORD_HEADER_BYTES = 24;
/** PostgreSQL's XLogRecordMaxSize (1020 MiB): a longer xl_tot_len is garbage. */
const RECORD_BYTES_MAX = 1020 * 1024 * 1024;
const RM_XLOG_ID = 0;
const XLOG_SWITCH = 0x40;
/** xlp_info flags: the page starts with the rest of a record; that record was abandoned (a crash) and this page does not continue it. */
const XLP_FIRST_IS_CONTRECORD = 0x0001;
const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008;

/** `n` bytes of the WAL stream at `lsn` (never crossing a page), or null when not held. */
export type WalBytes = (lsn: bigint, n: number) => Buffer | null;

function pageHeaderBytes(pageStart: bigint): bigint {
  return pageStart % SEGMENT === 0n ? 40n : 24n;
}

/** Where the record after one ending at `end` starts: MAXALIGN, past a page header. */
export function nextRecordStart(end: bigint): bigint {
  let p = (end + 7n) & ~7n;
  if (p % PAGE === 0n) p += pageHeaderBytes(p);
  return p;
}

/** The position `n` record bytes after `p`, skipping the page headers in between. */
export function advance(p: bigint, n: number): bigint {
  let pos = p;
  let left = BigInt(n);
  while (left > 0n) {
    const pageEnd = (pos / PAGE + 1n) * PAGE;
    const room = pageEnd - pos;
    if (left <= room) return pos + left;
    left -= room;
    pos = pageEnd + pageHeaderBytes(pageEnd);
  }
  return pos;
}

function readRecordBytes(wal: WalBytes, p: bigint, n: number): Buffer | null {
  const parts: Buffer[] = [];
  let pos = p;
  let left = n;
  while (left > 0) {
    const pageEnd = (pos / PAGE + 1n) * PAGE;
    const take = Math.min(left, Number(pageEnd - pos));
    const chunk = wal(pos, take);
    if (!chunk || chunk.length < take) return null;
    parts.push(chunk.subarray(0, take));
    left -= take;
    pos = pageEnd + pageHeaderBytes(pageEnd);
  }
  return Buffer.concat(parts);
}

/**
 * Whether the pages a record of `totLen` bytes from `start` runs into (up to
 * the limit) carry the rest of it: each must have the contrecord flag and
 * the remaining length in its header. After a crash in the middle of a
 * record PostgreSQL abandons it: the next page starts afresh, flagged as
 * overwriting it, with an XLOG_OVERWRITE_CONTRECORD record; the answer is
 * then that page, where the walk goes on. 'broken': neither.
 */
function continuation(wal: WalBytes, start: bigint, totLen: number, limit: bigint): 'whole' | 'broken' | { readonly overwrittenAt: bigint } {
  let pos = start;
  let left = BigInt(totLen);
  for (;;) {
    const pageEnd = (pos / PAGE + 1n) * PAGE;
    if (left <= pageEnd - pos) return 'whole';
    left -= pageEnd - pos;
    const header = pageHeaderBytes(pageEnd);
    // A page header not yet within the limit vouches for nothing either way, and nothing after it counts.
    if (pageEnd + header > limit) return 'whole';
    const h = wal(pageEnd, 24);
    if (!h) return 'broken';
    const info = h.readUInt16LE(2);
    if ((info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0) return { overwrittenAt: pageEnd + header };
    if ((info & XLP_FIRST_IS_CONTRECORD) === 0 || BigInt(h.readUInt32LE(16)) !== left) return 'broken';
    pos = pageEnd + header;
  }
}

export interface RecordWalk {
  /** End of the last whole record at or before the limit. */
  readonly end: bigint;
  /** Where that record starts (null when the walk passed no record). */
  readonly lastStart: bigint | null;
  /** Records walked past `from`. */
  readonly records: number;
  /**
   * Why the walk stopped: 'limit' (the next record does not end by the
   * limit: `end` is where a replay of WAL up to the limit stops) or
   * 'invalid' (no valid record follows: what lies beyond is not WAL this
   * walk can vouch for).
   */
  readonly stop: 'limit' | 'invalid';
}

/**
 * Walks from `from` (the end of a record, such as pg_last_wal_replay_lsn)
 * to the last record that ends at or before `limit`.
 */
export function lastRecordEnd(wal: WalBytes, from: bigint, limit: bigint): RecordWalk {
  // `end`/`lastStart`: the last whole record; `cursor`: where the next one is looked for; `link`: what its xl_prev must be.
  let end = from;
  let lastStart: bigint | null = null;
  let cursor = from;
  let link: bigint | null = null;
  let records = 0;
  const stop = (why: 'limit' | 'invalid'): RecordWalk => ({ end, lastStart, records, stop: why });
  for (;;) {
    if (cursor >= limit) return stop('limit');
    const start = nextRecordStart(cursor);
    // A header cut by the limit: the record cannot end by it, but a page
    // past it must still be this record's, carrying the rest of xl_tot_len
    // (its first field, which never crosses a page: records start 8-aligned).
    if (advance(start, RECORD_HEADER_BYTES) > limit) {
      if (start + 4n > limit) return stop('limit');
      const lenBytes = wal(start, 4);
      if (!lenBytes || lenBytes.length < 4) return stop('invalid');
      const cutLen = lenBytes.readUInt32LE(0);
      if (cutLen < RECORD_HEADER_BYTES || cutLen > RECORD_BYTES_MAX) return stop('invalid');
      const c = continuation(wal, start, cutLen, limit);
      if (c === 'whole') return stop('limit');
      if (c === 'broken') return stop('invalid');
      cursor = c.overwrittenAt;
      link = null;
      continue;
    }
    const header = readRecordBytes(wal, start, RECORD_HEADER_BYTES);
    if (!header) return stop('invalid');
    const totLen = header.readUInt32LE(0);
    const prev = header.readBigUInt64LE(8);
    if (totLen < RECORD_HEADER_BYTES || totLen > RECORD_BYTES_MAX) return stop('invalid');
    // The first record's predecessor is not known here (nor that of the record overwriting an abandoned one); every later one must link back.
    if (link !== null && prev !== link) return stop('invalid');
    const c = continuation(wal, start, totLen, limit);
    if (c === 'broken') return stop('invalid');
    if (c !== 'whole') {
      // Abandoned: the walk goes on from the record that overwrites it.
      cursor = c.overwrittenAt;
      link = null;
      continue;
    }
    let recordEnd = advance(start, totLen);
    if (recordEnd > limit) return stop('limit');
    if (header[17] === RM_XLOG_ID && (header[16]! & 0xf0) === XLOG_SWITCH) recordEnd = ((recordEnd + SEGMENT - 1n) / SEGMENT) * SEGMENT;
    link = start;
    lastStart = start;
    end = recordEnd;
    cursor = recordEnd;
    records++;
  }
}
