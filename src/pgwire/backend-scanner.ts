// Walks the server→client byte stream message by message without buffering
// message bodies: each chunk comes back as slices to forward or drop, so a
// 100 MB row costs no more memory than a 100-byte one. Only the small
// messages whose contents matter to the pooler (ReadyForQuery,
// ParameterStatus, NoticeResponse) are gathered whole. Pure: no sockets.
import { Backend } from './codes.js';
import { ProtocolViolation } from './frame-reader.js';

/** Bodies gathered whole for inspection are tiny; anything bigger is a broken stream. */
const INSPECTED_BODY_BYTES_MAX = 64 * 1024;

export interface MessageStart {
  readonly code: number;
  /** Body length (the length word minus its own four bytes). */
  readonly bodyLength: number;
}

export interface ScannerHooks {
  /**
   * Called at each message header: return true to forward the message,
   * false to drop it. `emit` may be used to insert bytes before it.
   */
  onMessage(start: MessageStart, emit: (bytes: Buffer) => void): boolean;
  /** Called with the whole body of each ReadyForQuery, ParameterStatus and (small) NoticeResponse. */
  onInspected(code: number, body: Buffer): void;
}

export class BackendScanner {
  private header = Buffer.alloc(5);
  private headerFill = 0;
  private bodyRemaining = 0;
  private forwarding = true;
  private inspectCode = 0;
  private inspectParts: Buffer[] | null = null;
  /** The current header began in an earlier chunk and was not emitted yet. */
  private pendingHeaderSplit = false;

  constructor(private readonly hooks: ScannerHooks) {}

  /** True when no message is half-read. */
  get atBoundary(): boolean {
    return this.headerFill === 0 && this.bodyRemaining === 0;
  }

  /** Splits a chunk; `emit` receives the slices to forward, in order. */
  scan(chunk: Buffer, emit: (slice: Buffer) => void): void {
    let at = 0;
    let forwardFrom = -1;
    const flush = (end: number): void => {
      if (forwardFrom >= 0 && end > forwardFrom) emit(chunk.subarray(forwardFrom, end));
      forwardFrom = -1;
    };
    while (at < chunk.length) {
      if (this.bodyRemaining === 0 && this.headerFill < 5) {
        // Reading a header (possibly split across chunks).
        const headerStart = at;
        const n = Math.min(5 - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + n);
        this.headerFill += n;
        at += n;
        if (this.headerFill < 5) {
          // Decide later; keep the partial header out of the output for now.
          flush(headerStart);
          this.pendingHeaderSplit = true;
          break;
        }
        const code = this.header[0]!;
        const length = this.header.readInt32BE(1);
        if (length < 4) throw new ProtocolViolation(`server sent message length ${length}`);
        this.headerFill = 0;
        this.bodyRemaining = length - 4;
        // Everything before this message goes out first, so that bytes the
        // hook inserts land between messages.
        flush(headerStart);
        this.forwarding = this.hooks.onMessage({ code, bodyLength: length - 4 }, emit);
        const split = this.pendingHeaderSplit;
        this.pendingHeaderSplit = false;
        if (this.forwarding) {
          // A header that began in an earlier chunk is emitted whole now.
          if (split) emit(Buffer.from(this.header));
          else forwardFrom = headerStart;
        }
        if (code === Backend.ReadyForQuery || code === Backend.ParameterStatus) {
          if (this.bodyRemaining > INSPECTED_BODY_BYTES_MAX) throw new ProtocolViolation('oversized server status message');
          this.inspectCode = code;
          this.inspectParts = [];
        } else if (code === Backend.NoticeResponse && this.bodyRemaining <= INSPECTED_BODY_BYTES_MAX) {
          // Notices are gathered too (a large one, e.g. RAISE NOTICE of a long text, is not: none of interest is large).
          this.inspectCode = code;
          this.inspectParts = [];
        }
        if (this.bodyRemaining === 0) this.finishMessage();
        continue;
      }
      // Inside a body.
      const n = Math.min(this.bodyRemaining, chunk.length - at);
      if (this.inspectParts) this.inspectParts.push(chunk.subarray(at, at + n));
      if (this.forwarding && forwardFrom < 0) forwardFrom = at;
      if (!this.forwarding) flush(at);
      at += n;
      this.bodyRemaining -= n;
      if (this.bodyRemaining === 0) this.finishMessage();
    }
    flush(at);
  }

  private finishMessage(): void {
    if (this.inspectParts) {
      const parts = this.inspectParts;
      this.inspectParts = null;
      this.hooks.onInspected(this.inspectCode, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    }
  }
}
