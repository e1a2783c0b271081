// The responses a server owes a client, in order. The pooler sometimes
// answers a request itself (a Close for a statement the server never had,
// an error of its own) or sends requests the client never made (a Parse
// re-created on a new server, a SET that aligns a server with the client's
// startup parameters). This queue keeps the client's view exactly what a
// dedicated server would have sent. Pure: no sockets.
// https://www.postgresql.org/docs/17/protocol-flow.html

export type RequestKind = 'parse' | 'bind' | 'describe' | 'close' | 'execute' | 'sync' | 'query' | 'function-call';

export interface ExpectOptions {
  /** false hides the request's replies from the client (a request the pooler made). Errors still show. */
  readonly forward?: boolean;
  /** The server skipped the request (an error came before it, up to Sync). */
  readonly onError?: () => void;
  /** Its last reply arrived: the request ran (a simple query, even if it failed). */
  readonly onDone?: () => void;
  /**
   * The pooler refuses the client's message itself but needs the server to
   * fail too (so that it aborts the transaction and skips to Sync as it
   * would have): the server's error to this request is replaced by these bytes.
   */
  readonly replaceError?: Buffer;
  /** The request must fail for the client even though it succeeds on the server: its last reply is replaced by these bytes. */
  readonly replaceSuccess?: Buffer;
}

type Entry =
  | ({ readonly type: 'server'; readonly request: RequestKind } & ExpectOptions)
  | { readonly type: 'synthetic'; readonly bytes: Buffer }
  /** Where the client's CopyDone or CopyFail went: Syncs before it were sent during COPY. */
  | { readonly type: 'copy-end' };

const ERROR = 0x45; // 'E'
const COPY_IN_RESPONSE = 0x47; // 'G'
/** Messages a server may send at any time; they answer no request. */
const ASYNC = new Set([0x4e /* N */, 0x53 /* S */, 0x41 /* A */]);

function isTerminal(request: RequestKind, code: number): boolean {
  switch (request) {
    case 'parse':
      return code === 0x31; // '1' ParseComplete
    case 'bind':
      return code === 0x32; // '2' BindComplete
    case 'close':
      return code === 0x33; // '3' CloseComplete
    case 'describe':
      return code === 0x54 || code === 0x6e; // 'T' RowDescription, 'n' NoData
    case 'execute':
      return code === 0x43 || code === 0x49 || code === 0x73; // 'C', 'I' EmptyQuery, 's' PortalSuspended
    case 'sync':
    case 'query':
    case 'function-call':
      return code === 0x5a; // 'Z' ReadyForQuery
  }
}

export class ResponseQueue {
  private entries: Entry[] = [];
  private head = 0;
  /**
   * An extended-protocol error arrived and no Sync was sent after it yet:
   * the server discards every message up to the next Sync without a reply,
   * so requests sent meanwhile are owed nothing.
   */
  private discardingToSync = false;
  /**
   * The server is in COPY FROM STDIN and the client's CopyDone/CopyFail has
   * not been sent yet: PostgreSQL ignores Sync (and Flush) during COPY, so
   * a Sync sent now is owed nothing.
   */
  private inCopyIn = false;

  get isEmpty(): boolean {
    return this.head === this.entries.length;
  }

  get length(): number {
    return this.entries.length - this.head;
  }

  /** Whether the server is skipping messages until the next Sync. */
  get skippingToSync(): boolean {
    return this.discardingToSync;
  }

  /** A request sent to the server. */
  expect(request: RequestKind, opts: ExpectOptions = {}): void {
    if (request === 'sync' && this.inCopyIn) return;
    if (this.discardingToSync) {
      if (request !== 'sync') {
        // The server will skip it, as it skips everything up to Sync.
        opts.onError?.();
        return;
      }
      this.discardingToSync = false;
    }
    this.entries.push({ type: 'server', request, ...opts });
  }

  /** A reply the pooler gives itself, delivered once everything before it is. */
  synthesize(bytes: Buffer): void {
    // A message the server would skip gets no reply from the pooler either.
    if (this.discardingToSync) return;
    this.entries.push({ type: 'synthetic', bytes });
  }

  /** The client sent CopyDone or CopyFail. */
  copyEnded(): void {
    this.inCopyIn = false;
    if (!this.isEmpty) this.entries.push({ type: 'copy-end' });
  }

  /** Emits replies that are due now (at the head of the queue). */
  flushSynthetic(emit: (bytes: Buffer) => void): void {
    for (;;) {
      const e = this.entries[this.head];
      if (!e || e.type !== 'synthetic') break;
      this.shift();
      emit(e.bytes);
    }
  }

  /**
   * Called at each server message header (after flushSynthetic): returns
   * whether the client should see it, and consumes the request it completes.
   * `emit` inserts bytes before the message (a replaced error).
   */
  onServerMessage(code: number, emit?: (bytes: Buffer) => void): boolean {
    if (ASYNC.has(code)) return true;
    const e = this.entries[this.head];
    if (!e || e.type !== 'server') return true;
    if (code === COPY_IN_RESPONSE) {
      this.startCopyIn();
      return e.forward !== false;
    }
    if (code === ERROR) {
      // A failed simple query still ends at its ReadyForQuery.
      if (e.request === 'query' || e.request === 'function-call' || e.request === 'sync') {
        this.inCopyIn = false;
        return true;
      }
      // In the extended protocol the server now skips everything up to Sync;
      // what the pooler recorded for the skipped requests is undone, last first.
      const undo: Array<() => void> = [];
      this.shift();
      if (e.onError) undo.push(e.onError);
      for (let next = this.entries[this.head]; next && !(next.type === 'server' && next.request === 'sync'); next = this.entries[this.head]) {
        this.shift();
        if (next.type === 'server' && next.onError) undo.push(next.onError);
      }
      for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
      // No Sync sent yet: what the client sends until its Sync is skipped too.
      if (this.isEmpty) this.discardingToSync = true;
      this.inCopyIn = false;
      if (e.replaceError) {
        // Errors always reach the client; a refusal of the pooler's own replaces the server's.
        emit?.(e.replaceError);
        return false;
      }
      return true;
    }
    if (isTerminal(e.request, code)) {
      this.shift();
      e.onDone?.();
      if (e.replaceSuccess) {
        emit?.(e.replaceSuccess);
        return false;
      }
    }
    return e.forward !== false;
  }

  /** CopyInResponse: Syncs the client sent before its CopyDone are ignored by the server. */
  private startCopyIn(): void {
    let at = this.head + 1;
    while (at < this.entries.length) {
      const e = this.entries[at]!;
      if (e.type === 'copy-end') return;
      if (e.type === 'server' && e.request === 'sync') this.entries.splice(at, 1);
      else at++;
    }
    this.inCopyIn = true;
  }

  private shift(): void {
    this.head++;
    // Copy-end marks are only positions; they owe nothing.
    while (this.entries[this.head]?.type === 'copy-end') this.head++;
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.head > 1024) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
