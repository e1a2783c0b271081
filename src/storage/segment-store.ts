// A storage node's WAL on disk: one file per segment and timeline, named as
// PostgreSQL names it, holding the segment's 16 MiB followed by a checksum
// trailer with entries for each 8 KiB WAL page. Files are zero-filled to full
// size when created, so a flush is one fdatasync that changes no metadata.
//
// An entry is (valid bytes, CRC-32 of those bytes, sequence number). Each
// page has two entry slots and a write goes to the older one, so the entry
// that described the page before a torn write is still there afterwards:
// after a crash, each page's newest entry that verifies is believed, and the
// held WAL is the run of full pages from the segment start plus the partial
// page that ends it. Bytes are verified against these entries whenever they
// are read; a node never serves bytes it cannot verify.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { WAL_PAGE_BYTES, WAL_SEGMENT_BYTES, historyFileName, parseTimelineHistory, parseWalFileName, segmentOf, segmentStart, timelineOfSegment, walFileName } from '../pgwire/replication.js';

const PAGES_PER_SEGMENT = WAL_SEGMENT_BYTES / WAL_PAGE_BYTES;
const ENTRY_BYTES = 12;
const SUM_BYTES = PAGES_PER_SEGMENT * 2 * ENTRY_BYTES;
const FILE_BYTES = WAL_SEGMENT_BYTES + SUM_BYTES;
const ZEROS = Buffer.alloc(1024 * 1024);

export class CorruptSegment extends Error {
  override readonly name = 'CorruptSegment';
  constructor(
    readonly timeline: number,
    readonly segment: number,
    message: string,
  ) {
    super(message);
  }
}

interface PageEntry {
  valid: number;
  crc: number;
  seq: number;
}

interface OpenSegment {
  readonly timeline: number;
  readonly segment: number;
  readonly fd: number;
  /** The checksum trailer as on disk: entries per page and slot (sequence 0 = never written). */
  readonly trailer: Buffer;
}

export interface HeldSegment {
  readonly timeline: number;
  readonly segment: number;
  /** Verified bytes from the segment's start. */
  readonly validBytes: number;
}

export interface StorePosition {
  readonly timeline: number;
  /** First byte held on this timeline's chain (a segment start). */
  readonly startLsn: bigint;
  /** Durable end of WAL. */
  readonly flushLsn: bigint;
}

export class SegmentStore {
  private position: StorePosition | null = null;
  private writeLsnValue = 0n;
  private seq = 1;
  private current: OpenSegment | null = null;
  /** Page being filled: its running CRC and how many bytes it has. */
  private pageCrc = 0;
  private pageFill = 0;
  private readonly dirty = new Map<string, { seg: OpenSegment; entries: Map<number, PageEntry> }>();
  /** Segments whose fdatasync is in flight: their descriptors stay open. */
  private readonly syncing = new Set<OpenSegment>();

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  get state(): StorePosition | null {
    return this.position;
  }

  /** End of WAL written (maybe not yet durable). */
  get writeLsn(): bigint {
    return this.writeLsnValue;
  }

  /** Finds the held WAL after a start or crash; every page is verified. */
  open(): StorePosition | null {
    const held = this.scan();
    for (const h of held) this.seq = Math.max(this.seq, h.maxSeq + 1);
    this.current = null;
    const timeline = held.length > 0 ? Math.max(...held.map((h) => h.timeline)) : 0;
    const chain = this.chainSegments(held, timeline);
    if (chain.length === 0) {
      this.writeLsnValue = 0n;
      return (this.position = null);
    }
    // Held WAL is what runs unbroken from the first segment held: it ends at
    // the first segment that is not full (short, damaged, or with a missing
    // segment after it). What lies past a break was never acknowledged (a
    // flush that did not complete, a dead branch left by a crash mid-switch)
    // or cannot be served from here (damage, which a repair from peers
    // mends); either way it is not counted.
    let endAt = 0;
    while (endAt + 1 < chain.length && chain[endAt]!.validBytes === WAL_SEGMENT_BYTES && chain[endAt + 1]!.segment === chain[endAt]!.segment + 1) endAt++;
    const last = chain[endAt]!;
    const startSeg = chain[0]!.segment;
    const flushLsn = segmentStart(last.segment) + BigInt(last.validBytes);
    this.position = { timeline, startLsn: segmentStart(startSeg), flushLsn };
    this.writeLsnValue = flushLsn;
    this.resumePage(timeline, flushLsn);
    return this.position;
  }

  /**
   * Segments of a timeline's chain, each from the file its history says
   * holds it (a file of another timeline for the same segment is a dead
   * branch's). Without the history, the newest file at or below the
   * timeline.
   */
  private chainSegments<T extends HeldSegment>(held: readonly T[], timeline: number): T[] {
    const owner = this.chainOwner(timeline);
    const best = new Map<number, T>();
    for (const h of held) {
      if (h.timeline > timeline || h.validBytes === 0) continue;
      if (owner && owner(h.segment) !== h.timeline) continue;
      const have = best.get(h.segment);
      if (!have || h.timeline > have.timeline) best.set(h.segment, h);
    }
    return [...best.values()].sort((a, b) => a.segment - b.segment);
  }

  /** For each segment, the timeline whose file holds it on `timeline`'s chain; null when the history is not held. */
  private chainOwner(timeline: number): ((segment: number) => number) | null {
    if (timeline <= 1) return () => 1;
    const text = this.readHistory(timeline);
    if (text === null) return null;
    const history = parseTimelineHistory(text);
    return (segment) => timelineOfSegment(segment, timeline, history);
  }

  /**
   * Starts an empty store, or moves the store onto `timeline` at `lsn` (at
   * or before its end of WAL). Whatever the store held past `lsn` is a dead
   * branch's and is removed, so that no later open() can count it.
   */
  begin(timeline: number, lsn: bigint): void {
    this.closeCurrent();
    const pos = this.position;
    if (pos && lsn > pos.flushLsn) throw new Error('a timeline cannot start beyond the held WAL');
    const seg = segmentOf(lsn);
    const offset = Number(lsn - segmentStart(seg));
    if (!pos && offset > 0) throw new Error('an empty store starts at a segment boundary');
    if (pos && (timeline !== pos.timeline || lsn < pos.flushLsn)) {
      // As PostgreSQL does, the segment holding `lsn` starts as a copy of the
      // old chain's up to it. It is written (atomically) before anything past
      // it goes: a crash in between leaves only files that open() sees as a
      // dead branch's, never a hole in what was acknowledged.
      const prefix = offset > 0 ? this.readChain(pos.timeline, seg, offset) : null;
      if (prefix && prefix.length < offset) throw new CorruptSegment(pos.timeline, seg, `segment ${walFileName(pos.timeline, seg)} holds ${prefix.length} verified bytes, short of the ${offset} before ${lsn}`);
      this.removeSegments((h) => h.timeline > timeline);
      // First the break that ends the chain at `lsn`, durably: the segment
      // holding it cut to its prefix (atomically), or, at a segment
      // boundary, every file of that segment gone. A crash after this step
      // leaves the files past it beyond a break, where open() does not count them.
      if (prefix) this.installSegment(timeline, seg, prefix);
      else this.removeSegments((h) => h.segment === seg);
      this.removeSegments((h) => h.segment > seg);
    }
    this.position = { timeline, startLsn: pos ? pos.startLsn : lsn, flushLsn: lsn };
    this.writeLsnValue = lsn;
    this.resumePage(timeline, lsn);
  }

  /** Removes the segment files chosen, durably (the directory is synced once any go). */
  private removeSegments(which: (h: { timeline: number; segment: number }) => boolean): void {
    let removed = 0;
    for (const h of this.segmentFiles()) {
      if (!which(h)) continue;
      fs.rmSync(path.join(this.dir, walFileName(h.timeline, h.segment)), { force: true });
      removed++;
    }
    if (removed > 0) syncDirectory(this.dir);
  }

  /** A segment as the chain ending in `timeline` has it: from the file its history names, else the newest at or below it. */
  readChain(timeline: number, segment: number, limit = WAL_SEGMENT_BYTES): Buffer {
    const owner = this.chainOwner(timeline)?.(segment);
    const holders = this.segmentFiles().filter((h) => h.segment === segment && h.timeline <= timeline && (owner === undefined || h.timeline === owner));
    for (const h of holders.sort((a, b) => b.timeline - a.timeline)) {
      const bytes = this.readSegment(h.timeline, segment, limit);
      if (bytes.length > 0) return bytes;
    }
    throw new CorruptSegment(timeline, segment, `segment ${segment} of timeline ${timeline}'s chain is not held`);
  }

  /**
   * Deletes every segment (of any timeline) before `segment`: WAL older than
   * the oldest kept base backup is never needed again. Returns how many.
   */
  dropBefore(segment: number): number {
    // Oldest first: a crash midway leaves held WAL that still runs unbroken
    // from its (new) first segment, never a hole that would end it early.
    const old = this.segmentFiles()
      .filter((h) => h.segment < segment && !(this.current && this.current.timeline === h.timeline && this.current.segment === h.segment))
      .sort((a, b) => a.segment - b.segment || a.timeline - b.timeline);
    for (const h of old) fs.rmSync(path.join(this.dir, walFileName(h.timeline, h.segment)), { force: true });
    const dropped = old.length;
    if (dropped > 0) syncDirectory(this.dir);
    const pos = this.position;
    if (pos && pos.startLsn < segmentStart(segment) && segmentStart(segment) <= pos.flushLsn) this.position = { ...pos, startLsn: segmentStart(segment) };
    return dropped;
  }

  /** Forgets everything (a wiped disk, or a node joining a new system). */
  clear(): void {
    this.closeCurrent();
    for (const name of fs.readdirSync(this.dir)) fs.rmSync(path.join(this.dir, name), { force: true });
    this.position = null;
    this.writeLsnValue = 0n;
  }

  /** Appends WAL at exactly the write position (page cache; flush() makes it durable). */
  write(start: bigint, data: Buffer): void {
    const pos = this.position;
    if (!pos) throw new Error('write before begin');
    if (start !== this.writeLsnValue) throw new Error(`WAL must be contiguous: got ${start}, expected ${this.writeLsnValue}`);
    let at = 0;
    let lsn = start;
    while (at < data.length) {
      const seg = segmentOf(lsn);
      const offsetInSeg = Number(lsn - segmentStart(seg));
      const open = this.openSegment(pos.timeline, seg);
      const n = Math.min(data.length - at, WAL_SEGMENT_BYTES - offsetInSeg, WAL_PAGE_BYTES - (offsetInSeg % WAL_PAGE_BYTES));
      const piece = data.subarray(at, at + n);
      this.queueWrite(open, offsetInSeg, piece);
      const page = Math.floor(offsetInSeg / WAL_PAGE_BYTES);
      this.pageCrc = this.pageFill === 0 ? zlib.crc32(piece) : zlib.crc32(piece, this.pageCrc);
      this.pageFill += n;
      this.markDirty(open, page, { valid: this.pageFill, crc: this.pageCrc, seq: 0 });
      if (this.pageFill === WAL_PAGE_BYTES) {
        this.pageFill = 0;
        this.pageCrc = 0;
      }
      at += n;
      lsn += BigInt(n);
    }
    this.writeLsnValue = lsn;
  }

  /**
   * WAL waits in memory until the next flush writes it with one pwrite per
   * segment: pages are never rewritten while an fdatasync has them under
   * writeback (which would make the write wait for the disk).
   */
  private readonly queued: Array<{ seg: OpenSegment; offset: number; pieces: Buffer[]; bytes: number }> = [];

  private queueWrite(seg: OpenSegment, offset: number, piece: Buffer): void {
    const last = this.queued[this.queued.length - 1];
    if (last && last.seg === seg && last.offset + last.bytes === offset) {
      last.pieces.push(piece);
      last.bytes += piece.length;
    } else this.queued.push({ seg, offset, pieces: [piece], bytes: piece.length });
  }

  /** Makes everything written durable; resolves with the new flush position. */
  async flush(): Promise<bigint> {
    const target = this.writeLsnValue;
    if (this.dirty.size === 0 || !this.position) return this.position?.flushLsn ?? 0n;
    const batch = [...this.dirty.values()];
    this.dirty.clear();
    for (const w of this.queued.splice(0)) {
      const data = w.pieces.length === 1 ? w.pieces[0]! : Buffer.concat(w.pieces, w.bytes);
      fs.writeSync(w.seg.fd, data, 0, data.length, w.offset);
    }
    const seq = this.seq++;
    for (const { seg, entries } of batch) {
      let low = SUM_BYTES;
      let high = 0;
      for (const [page, e] of entries) {
        // The older slot takes the new entry; the other still describes the page as it was.
        const t = seg.trailer;
        const slot = t.readUInt32LE(page * 2 * ENTRY_BYTES + 8) <= t.readUInt32LE((page * 2 + 1) * ENTRY_BYTES + 8) ? 0 : 1;
        const at = (page * 2 + slot) * ENTRY_BYTES;
        t.writeUInt32LE(e.valid, at);
        t.writeUInt32LE(e.crc >>> 0, at + 4);
        t.writeUInt32LE(seq, at + 8);
        low = Math.min(low, at);
        high = Math.max(high, at + ENTRY_BYTES);
      }
      // One write for the touched span (the untouched slots in it are rewritten as they are).
      if (high > low) fs.writeSync(seg.fd, seg.trailer, low, high - low, WAL_SEGMENT_BYTES + low);
    }
    for (const { seg } of batch) this.syncing.add(seg);
    try {
      await Promise.all(batch.map(({ seg }) => fdatasync(seg.fd)));
    } finally {
      for (const { seg } of batch) {
        this.syncing.delete(seg);
        if (seg !== this.current && !this.dirtyHas(seg)) this.closeFds(seg);
      }
    }
    const pos = this.position;
    if (!pos) return 0n;
    this.position = { ...pos, flushLsn: target > pos.flushLsn ? target : pos.flushLsn };
    return this.position.flushLsn;
  }

  get hasUnflushed(): boolean {
    return this.dirty.size > 0;
  }

  /** Verified bytes of a segment, up to `limit` bytes; throws CorruptSegment. */
  readSegment(timeline: number, segment: number, limit = WAL_SEGMENT_BYTES): Buffer {
    const file = path.join(this.dir, walFileName(timeline, segment));
    let data: Buffer;
    let sums: Buffer;
    try {
      [data, sums] = split(fs.readFileSync(file));
    } catch {
      throw new CorruptSegment(timeline, segment, `segment ${walFileName(timeline, segment)} is not held`);
    }
    const valid = validPrefix(data, sums);
    if (valid.corruptPage !== null && valid.bytes < limit) {
      throw new CorruptSegment(timeline, segment, `segment ${walFileName(timeline, segment)} fails its checksum at page ${valid.corruptPage}`);
    }
    return data.subarray(0, Math.min(valid.bytes, limit));
  }

  /** Writes a whole segment (or its prefix) received from a peer; durable on return. */
  installSegment(timeline: number, segment: number, bytes: Buffer): void {
    if (bytes.length > WAL_SEGMENT_BYTES) throw new Error('segment too large');
    const file = path.join(this.dir, walFileName(timeline, segment));
    if (this.current && this.current.timeline === timeline && this.current.segment === segment) this.closeCurrent();
    const whole = Buffer.alloc(FILE_BYTES);
    bytes.copy(whole);
    const sums = whole.subarray(WAL_SEGMENT_BYTES);
    for (let page = 0; page * WAL_PAGE_BYTES < bytes.length; page++) {
      const piece = bytes.subarray(page * WAL_PAGE_BYTES, (page + 1) * WAL_PAGE_BYTES);
      sums.writeUInt32LE(piece.length, page * 2 * ENTRY_BYTES);
      sums.writeUInt32LE(zlib.crc32(piece) >>> 0, page * 2 * ENTRY_BYTES + 4);
      sums.writeUInt32LE(this.seq, page * 2 * ENTRY_BYTES + 8);
    }
    this.seq++;
    writeDurably(file, whole, FILE_BYTES);
  }

  /** Every segment file with its verified length (0 when its first page fails). */
  listSegments(): HeldSegment[] {
    return this.scan().map(({ timeline, segment, validBytes }) => ({ timeline, segment, validBytes }));
  }

  /** Segments whose stored bytes fail their checksums before their verified end would reach. */
  scrub(): Array<{ timeline: number; segment: number; page: number }> {
    return this.scan().flatMap(({ timeline, segment, corruptPage }) => (corruptPage === null ? [] : [{ timeline, segment, page: corruptPage }]));
  }

  /** The segment files present, by name alone (nothing read). */
  private segmentFiles(): Array<{ timeline: number; segment: number }> {
    return fs.readdirSync(this.dir).flatMap((name) => parseWalFileName(name) ?? []);
  }

  /** Reads and verifies every segment file once: its valid length, first bad page, newest entry. */
  private scan(): Array<HeldSegment & { corruptPage: number | null; maxSeq: number }> {
    const out: Array<HeldSegment & { corruptPage: number | null; maxSeq: number }> = [];
    for (const id of this.segmentFiles()) {
      let file: Buffer;
      try {
        file = fs.readFileSync(path.join(this.dir, walFileName(id.timeline, id.segment)));
      } catch {
        out.push({ ...id, validBytes: 0, corruptPage: 0, maxSeq: 0 });
        continue;
      }
      const [data, sums] = split(file);
      const v = validPrefix(data, sums);
      let maxSeq = 0;
      for (let i = 0; i + ENTRY_BYTES <= sums.length; i += ENTRY_BYTES) maxSeq = Math.max(maxSeq, sums.readUInt32LE(i + 8));
      out.push({ ...id, validBytes: v.bytes, corruptPage: v.corruptPage, maxSeq });
    }
    return out.sort((a, b) => a.timeline - b.timeline || a.segment - b.segment);
  }

  saveHistory(timeline: number, text: string): void {
    writeDurably(path.join(this.dir, historyFileName(timeline)), Buffer.from(text, 'utf8'), 0);
  }

  readHistory(timeline: number): string | null {
    try {
      return fs.readFileSync(path.join(this.dir, historyFileName(timeline)), 'utf8');
    } catch {
      return null;
    }
  }

  listHistories(): number[] {
    return fs
      .readdirSync(this.dir)
      .filter((n) => /^[0-9A-F]{8}\.history$/.test(n))
      .map((n) => parseInt(n.slice(0, 8), 16));
  }

  /** Bytes the store occupies on disk. */
  diskBytes(): number {
    let total = 0;
    for (const name of fs.readdirSync(this.dir)) {
      try {
        total += fs.statSync(path.join(this.dir, name)).blocks * 512;
      } catch {
        // removed meanwhile
      }
    }
    return total;
  }

  close(): void {
    this.closeCurrent();
  }

  private resumePage(timeline: number, lsn: bigint): void {
    const offsetInPage = Number(lsn % BigInt(WAL_PAGE_BYTES));
    this.pageFill = offsetInPage;
    this.pageCrc = 0;
    if (offsetInPage > 0) {
      const seg = segmentOf(lsn);
      const segOffset = Number(lsn - segmentStart(seg));
      const prefix = this.readChain(timeline, seg, segOffset);
      this.pageCrc = zlib.crc32(prefix.subarray(segOffset - offsetInPage, segOffset));
    }
  }

  private openSegment(timeline: number, segment: number): OpenSegment {
    const c = this.current;
    if (c && c.timeline === timeline && c.segment === segment) return c;
    const file = path.join(this.dir, walFileName(timeline, segment));
    if (!fs.existsSync(file)) createZeroed(file);
    const fd = fs.openSync(file, fs.constants.O_RDWR, 0o600);
    const trailer = Buffer.alloc(SUM_BYTES);
    fs.readSync(fd, trailer, 0, SUM_BYTES, WAL_SEGMENT_BYTES);
    const open = { timeline, segment, fd, trailer };
    // A segment finished in this batch stays open until the batch is flushed.
    if (c && !this.dirtyHas(c) && !this.syncing.has(c)) this.closeFds(c);
    this.current = open;
    return open;
  }

  private dirtyHas(seg: OpenSegment): boolean {
    return this.dirty.has(`${seg.timeline}:${seg.segment}`);
  }

  private markDirty(seg: OpenSegment, page: number, entry: PageEntry): void {
    const key = `${seg.timeline}:${seg.segment}`;
    let d = this.dirty.get(key);
    if (!d) this.dirty.set(key, (d = { seg, entries: new Map() }));
    d.entries.set(page, entry);
  }

  private closeCurrent(): void {
    if (this.current) this.closeFds(this.current);
    this.current = null;
    this.dirty.clear();
    this.queued.length = 0;
  }

  private closeFds(seg: OpenSegment): void {
    try {
      fs.closeSync(seg.fd);
    } catch {
      // already closed
    }
  }


}

/** A segment file's data and checksum trailer. */
function split(file: Buffer): [Buffer, Buffer] {
  return [file.subarray(0, Math.min(file.length, WAL_SEGMENT_BYTES)), file.subarray(Math.min(file.length, WAL_SEGMENT_BYTES))];
}

/** A new segment file, zero-filled to full size and durable before it is used. */
function createZeroed(file: string): void {
  replaceDurably(file, (fd) => {
    for (let at = 0; at < FILE_BYTES; at += ZEROS.length) fs.writeSync(fd, ZEROS, 0, Math.min(ZEROS.length, FILE_BYTES - at), at);
  });
}

/** Verified prefix of a segment: full pages, then at most one partial page. */
function validPrefix(data: Buffer, sums: Buffer): { bytes: number; corruptPage: number | null } {
  let bytes = 0;
  for (let page = 0; page < PAGES_PER_SEGMENT; page++) {
    let best: PageEntry | null = null;
    let claimed = false;
    for (const slot of [0, 1]) {
      const at = (page * 2 + slot) * ENTRY_BYTES;
      if (at + ENTRY_BYTES > sums.length) continue;
      const e = { valid: sums.readUInt32LE(at), crc: sums.readUInt32LE(at + 4), seq: sums.readUInt32LE(at + 8) };
      if (e.seq === 0 || e.valid === 0 || e.valid > WAL_PAGE_BYTES) continue;
      claimed = true;
      const start = page * WAL_PAGE_BYTES;
      if (start + e.valid > data.length) continue;
      if (zlib.crc32(data.subarray(start, start + e.valid)) >>> 0 !== e.crc) continue;
      if (!best || e.seq > best.seq) best = e;
    }
    if (!best) return { bytes, corruptPage: claimed ? page : null };
    bytes += best.valid;
    if (best.valid < WAL_PAGE_BYTES) return { bytes, corruptPage: null };
  }
  return { bytes, corruptPage: null };
}

/**
 * On the calling thread: a storage node has nothing better to do while its
 * WAL reaches the disk, and skipping the thread-pool round trip measurably
 * shortens every commit (docs/benchmarks.md). WAL arriving meanwhile waits in
 * the socket and goes into the next flush.
 */
function fdatasync(fd: number): Promise<void> {
  try {
    fs.fdatasyncSync(fd);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** Writes a file through a temporary name, fsyncs it and its directory. */
export function writeDurably(file: string, bytes: Buffer, sizeBytes: number): void {
  replaceDurably(file, (fd) => {
    fs.writeSync(fd, bytes, 0, bytes.length, 0);
    if (sizeBytes > bytes.length) fs.ftruncateSync(fd, sizeBytes);
  });
}

/** Fills a temporary file, fsyncs it, renames it over `file` and fsyncs the directory. */
function replaceDurably(file: string, fill: (fd: number) => void): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fill(fd);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  syncDirectory(path.dirname(file));
}

function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
