// Physical-replication messages and WAL layout facts, pure. LSNs are bigint
// byte positions. Replication messages travel inside CopyData; WAL pages are
// in the server's byte order (little-endian on the machines Borealis runs on).
// https://www.postgresql.org/docs/17/protocol-replication.html
import { ProtocolViolation } from './frame-reader.js';
import { typedMessage } from './messages.js';

export const WAL_PAGE_BYTES = 8192;
/** The only WAL segment size Borealis accepts (PostgreSQL's default). */
export const WAL_SEGMENT_BYTES = 16 * 1024 * 1024;
const SEGMENTS_PER_XLOG_ID = 0x1_0000_0000 / WAL_SEGMENT_BYTES;

/** Backend replication codes (inside CopyData). */
export const Replication = {
  XLogData: 0x77, // 'w'
  Keepalive: 0x6b, // 'k'
  StandbyStatus: 0x72, // 'r'
} as const;

export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!match) throw new ProtocolViolation(`malformed LSN "${text.slice(0, 40)}"`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function segmentOf(lsn: bigint): number {
  return Number(lsn / BigInt(WAL_SEGMENT_BYTES));
}

export function segmentStart(segment: number): bigint {
  return BigInt(segment) * BigInt(WAL_SEGMENT_BYTES);
}

/** PostgreSQL's WAL file name: timeline, then the segment number in two halves. */
export function walFileName(timeline: number, segment: number): string {
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(8, '0');
  return hex(timeline) + hex(Math.floor(segment / SEGMENTS_PER_XLOG_ID)) + hex(segment % SEGMENTS_PER_XLOG_ID);
}

export function parseWalFileName(name: string): { timeline: number; segment: number } | null {
  if (!/^[0-9A-F]{24}$/.test(name)) return null;
  const timeline = parseInt(name.slice(0, 8), 16);
  const segment = parseInt(name.slice(8, 16), 16) * SEGMENTS_PER_XLOG_ID + parseInt(name.slice(16, 24), 16);
  return timeline > 0 ? { timeline, segment } : null;
}

export function historyFileName(timeline: number): string {
  return `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

export type ReplicationMessage =
  | { readonly type: 'xlogdata'; readonly start: bigint; readonly serverEnd: bigint; readonly data: Buffer }
  | { readonly type: 'keepalive'; readonly serverEnd: bigint; readonly replyRequested: boolean };

/** One CopyData payload from a walsender. */
export function parseReplicationMessage(payload: Buffer): ReplicationMessage {
  const code = payload[0];
  if (code === Replication.XLogData) {
    if (payload.length < 25) throw new ProtocolViolation('XLogData shorter than its header');
    return { type: 'xlogdata', start: payload.readBigUInt64BE(1), serverEnd: payload.readBigUInt64BE(9), data: payload.subarray(25) };
  }
  if (code === Replication.Keepalive) {
    if (payload.length !== 18) throw new ProtocolViolation('malformed primary keepalive');
    return { type: 'keepalive', serverEnd: payload.readBigUInt64BE(1), replyRequested: payload[17] === 1 };
  }
  throw new ProtocolViolation(`unknown replication message 0x${(code ?? 0).toString(16)}`);
}

/** Microseconds since 2000-01-01, PostgreSQL's timestamp epoch. */
export function pgNowMicros(nowMs: number): bigint {
  return BigInt(nowMs - 946_684_800_000) * 1000n;
}

/** Standby status update ('r') wrapped in CopyData, ready to send. */
export function standbyStatusUpdate(write: bigint, flush: bigint, apply: bigint, nowMs: number, replyRequested = false): Buffer {
  const body = Buffer.allocUnsafe(34);
  body[0] = Replication.StandbyStatus;
  body.writeBigUInt64BE(write, 1);
  body.writeBigUInt64BE(flush, 9);
  body.writeBigUInt64BE(apply, 17);
  body.writeBigInt64BE(pgNowMicros(nowMs), 25);
  body[33] = replyRequested ? 1 : 0;
  return copyData(body);
}

export function copyData(payload: Buffer): Buffer {
  return typedMessage(0x64, payload); // 'd'
}

export const COPY_DONE = typedMessage(0x63); // 'c'

/** Timeline history file lines: "<tli>\t<switch LSN>\t<reason>". */
export interface TimelineSwitch {
  readonly timeline: number;
  readonly switchLsn: bigint;
}

export function parseTimelineHistory(text: string): TimelineSwitch[] {
  const out: TimelineSwitch[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [tli, lsn] = trimmed.split(/\s+/);
    const timeline = Number(tli);
    if (!Number.isInteger(timeline) || timeline < 1 || lsn === undefined) throw new ProtocolViolation(`malformed timeline history line "${trimmed.slice(0, 60)}"`);
    out.push({ timeline, switchLsn: parseLsn(lsn) });
  }
  for (let i = 1; i < out.length; i++) {
    if (out[i]!.timeline <= out[i - 1]!.timeline || out[i]!.switchLsn < out[i - 1]!.switchLsn) throw new ProtocolViolation('timeline history is not in order');
  }
  return out;
}

/**
 * Which timeline's file holds `segment` on the chain that ends in
 * `timeline` (its history given as parsed from its history file): a
 * timeline's files hold its segments from the one its parent switched in
 * (a copy of the parent's bytes up to the switch point, then its own) on.
 * A file of any other timeline for that segment is a dead branch's.
 */
export function timelineOfSegment(segment: number, timeline: number, history: readonly TimelineSwitch[]): number {
  for (const s of history) if (segment < segmentOf(s.switchLsn)) return s.timeline;
  return timeline;
}

/** Page magic numbers of the WAL formats Borealis understands (15, 16, 17). */
export const WAL_PAGE_MAGIC: ReadonlyMap<number, string> = new Map([
  [0xd110, '15'],
  [0xd113, '16'],
  [0xd116, '17'],
]);
const SHORT_HEADER_BYTES = 24;
const LONG_HEADER_BYTES = 40;

export interface WalIdentity {
  readonly systemId: bigint;
  /** The latest timeline a page may carry. */
  readonly timeline: number;
}

/**
 * Checks the header of every WAL page a stream of bytes crosses: magic,
 * timeline, the page's own address and, on a segment's first page, the
 * system identifier and sizes. Header bytes split across chunks are held
 * until complete. This is the check before bytes are written: misplaced,
 * foreign or garbage WAL fails here.
 */
export class WalPageChecker {
  private pending: Buffer | null = null;
  private pendingAt = 0n;
  magic: number | null = null;

  constructor(private identity: WalIdentity) {}

  setIdentity(identity: WalIdentity): void {
    this.identity = identity;
    this.pending = null;
  }

  /** Throws ProtocolViolation describing the first bad page header. */
  check(start: bigint, data: Buffer): void {
    if (this.pending && this.pendingAt + BigInt(this.pending.length) === start) {
      const joined = Buffer.concat([this.pending, data]);
      const from = this.pendingAt;
      this.pending = null;
      this.scan(from, joined);
      return;
    }
    this.pending = null;
    this.scan(start, data);
  }

  private scan(start: bigint, data: Buffer): void {
    const end = start + BigInt(data.length);
    const pageBytes = BigInt(WAL_PAGE_BYTES);
    let page = ((start + pageBytes - 1n) / pageBytes) * pageBytes;
    for (; page < end; page += pageBytes) {
      const offset = Number(page - start);
      const long = page % BigInt(WAL_SEGMENT_BYTES) === 0n;
      const need = long ? LONG_HEADER_BYTES : SHORT_HEADER_BYTES;
      if (data.length - offset < need) {
        this.pending = Buffer.from(data.subarray(offset));
        this.pendingAt = page;
        return;
      }
      this.checkHeader(page, data.subarray(offset, offset + need), long);
    }
  }

  private checkHeader(page: bigint, h: Buffer, long: boolean): void {
    // After a segment switch PostgreSQL leaves the rest of the segment as
    // zeros, headers included; readers skip it.
    if (h.every((b) => b === 0)) return;
    const magic = h.readUInt16LE(0);
    if (!WAL_PAGE_MAGIC.has(magic)) throw new ProtocolViolation(`WAL page at ${formatLsn(page)} has unknown magic 0x${magic.toString(16)}`);
    if (this.magic !== null && magic !== this.magic) throw new ProtocolViolation(`WAL page at ${formatLsn(page)} changes format (magic 0x${magic.toString(16)})`);
    this.magic = magic;
    const tli = h.readUInt32LE(4);
    if (tli < 1 || tli > this.identity.timeline) throw new ProtocolViolation(`WAL page at ${formatLsn(page)} claims timeline ${tli}, beyond ${this.identity.timeline}`);
    const address = h.readBigUInt64LE(8);
    if (address !== page) throw new ProtocolViolation(`WAL page at ${formatLsn(page)} says it belongs at ${formatLsn(address)}`);
    if (long) {
      const systemId = h.readBigUInt64LE(24);
      if (systemId !== this.identity.systemId) throw new ProtocolViolation(`WAL segment at ${formatLsn(page)} belongs to system ${systemId}, not ${this.identity.systemId}`);
      if (h.readUInt32LE(32) !== WAL_SEGMENT_BYTES || h.readUInt32LE(36) !== WAL_PAGE_BYTES) throw new ProtocolViolation(`WAL segment at ${formatLsn(page)} has unsupported segment or page size`);
    }
  }
}
