// Synthetic WAL with PostgreSQL 17's page layout, for codec and store tests.
import { WAL_PAGE_BYTES, WAL_SEGMENT_BYTES } from '../../src/pgwire/replication.js';

export const SYSTEM_ID = 7_345_678_901_234_567_890n;

/** WAL as PostgreSQL 17 lays it out: a header on every page, a long one on a segment's first. */
export function fakeWal(start: bigint, length: number, timeline = 1, systemId = SYSTEM_ID): Buffer {
  const out = Buffer.alloc(length, 0x5a);
  const page = BigInt(WAL_PAGE_BYTES);
  for (let p = ((start + page - 1n) / page) * page; p < start + BigInt(length); p += page) {
    const at = Number(p - start);
    const header = Buffer.alloc(40);
    header.writeUInt16LE(0xd116, 0);
    header.writeUInt32LE(timeline, 4);
    header.writeBigUInt64LE(p, 8);
    const long = p % BigInt(WAL_SEGMENT_BYTES) === 0n;
    if (long) {
      header.writeBigUInt64LE(systemId, 24);
      header.writeUInt32LE(WAL_SEGMENT_BYTES, 32);
      header.writeUInt32LE(WAL_PAGE_BYTES, 36);
    }
    header.copy(out, at, 0, Math.min(long ? 40 : 24, length - at));
  }
  return out;
}

