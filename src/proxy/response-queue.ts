// The responses a server owes a client, in order. The pooler sometimes
// answers a request itself (a Parse for a statement the server already
// has) or sends requests the client never made (a Parse re-created on a
// new server, a SET that aligns a server with the client's startup
// parameters). This queue keeps the client's view exactly what a dedicated
// server would have sent. Pure: no sockets.
// https://www.postgresql.org/docs/17/protocol-flow.html

export type RequestKind = 'parse' | 'bind' | 'describe' | 'close' | 'execute' | 'sync' | 'query' | 'function-call';

type Entry =
  | { readonly type: 'server'; readonly request: RequestKind; readonly forward: boolean; readonly onError?: () => void }
  | { readonly type: 'synthetic'; readonly bytes: Buffer };

const ERROR = 0x45; // 'E'
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

  /** A request sent to the server; `forward: false` hides its responses from the client. */
  expect(request: RequestKind, forward = true, onError?: () => void): void {
    if (this.discardingToSync) {
      if (request !== 'sync') {
        // The server will skip it, as it skips everything up to Sync.
        onError?.();
        return;
      }
      this.discardingToSync = false;
    }
    this.entries.push(onError ? { type: 'server', request, forward, onError } : { type: 'server', request, forward });
  }

  /** A reply the pooler gives itself, delivered once everything before it is. */
  synthesize(bytes: Buffer): void {
    // A message the server would skip gets no reply from the pooler either.
    if (this.discardingToSync) return;
    this.entries.push({ type: 'synthetic', bytes });
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
   */
  onServerMessage(code: number): boolean {
    if (ASYNC.has(code)) return true;
    const e = this.entries[this.head];
    if (!e || e.type !== 'server') return true;
    if (code === ERROR) {
      // Errors always reach the client, even for requests it did not make.
      if (e.request === 'query' || e.request === 'function-call' || e.request === 'sync') return true;
      // In the extended protocol the server now skips everything up to Sync.
      this.shift();
      e.onError?.();
      for (let next = this.entries[this.head]; next && !(next.type === 'server' && next.request === 'sync'); next = this.entries[this.head]) {
        this.shift();
        if (next.type === 'server') next.onError?.();
      }
      // No Sync sent yet: what the client sends until its Sync is skipped too.
      if (this.isEmpty) this.discardingToSync = true;
      return true;
    }
    if (isTerminal(e.request, code)) this.shift();
    return e.forward;
  }

  private shift(): void {
    this.head++;
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.head > 1024) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
