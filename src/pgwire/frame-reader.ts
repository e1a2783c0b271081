// Splits a byte stream into protocol frames. Pure: the caller pushes chunks
// and pulls frames; nothing here touches a socket or a timer.
//
// Two framings exist: the startup packet (int32 length, then payload) and
// every later message (one type byte, int32 length, then payload). The length
// includes itself but not the type byte. Lengths are checked against a
// maximum before any byte of the body is buffered, so a peer that claims a
// gigabyte costs nothing.

export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
}

/** A frame whose length word is over the limit; `frameBytes` is what it claims in all. */
export class FrameTooLarge extends ProtocolViolation {
  constructor(
    message: string,
    readonly frameBytes: number,
  ) {
    super(message);
  }
}

export interface Frame {
  /** Message type byte; null for a startup packet. */
  readonly code: number | null;
  /** The payload after the length word. A view into received memory. */
  readonly body: Buffer;
  /** The whole message, header included, ready to forward as is. */
  readonly raw: Buffer;
}

export type Framing = 'startup' | 'typed';

export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(
    private framing: Framing,
    /** Largest accepted frame length (the length word's value). */
    private frameBytesMax: number,
  ) {}

  /** Switch framing (and its limit) after the startup packet has been read. */
  setFraming(framing: Framing, frameBytesMax: number): void {
    this.framing = framing;
    this.frameBytesMax = frameBytesMax;
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The first n buffered bytes without consuming them, or null if fewer are buffered. */
  peekBytes(n: number): Buffer | null {
    if (this.buffered < n) return null;
    return this.peek(n).subarray(0, n);
  }

  /** Removes and returns everything buffered and not yet framed. */
  drain(): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return all;
  }

  /** Returns the next complete frame, or null when more bytes are needed. */
  next(): Frame | null {
    const headerBytes = this.framing === 'startup' ? 4 : 5;
    if (this.buffered < headerBytes) return null;
    const header = this.peek(headerBytes);
    const code = this.framing === 'startup' ? null : header[0]!;
    const length = header.readInt32BE(headerBytes - 4);
    const lengthMin = this.framing === 'startup' ? 8 : 4;
    if (length < lengthMin) {
      throw new ProtocolViolation(`invalid message length ${length}`);
    }
    if (length > this.frameBytesMax) {
      throw new FrameTooLarge(`message length ${length} exceeds the limit of ${this.frameBytesMax} bytes`, headerBytes - 4 + length);
    }
    const total = headerBytes - 4 + length;
    if (this.buffered < total) return null;
    const raw = this.take(total);
    return { code, body: raw.subarray(headerBytes), raw };
  }

  /** The first n buffered bytes, copying only when they span chunks. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first;
    this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0]!;
  }

  private take(n: number): Buffer {
    const joined = this.peek(n);
    const out = joined.subarray(0, n);
    if (joined.length === n) this.chunks.shift();
    else this.chunks[0] = joined.subarray(n);
    this.buffered -= n;
    return out;
  }
}
