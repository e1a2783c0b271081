// A server connection owned by a pool: a PostgreSQL session on the writer's
// private socket, lent to one client at a time.
import type net from 'node:net';
import { BackendScanner } from '../pgwire/backend-scanner.js';
import { isSyncRepCancelled } from '../pgwire/messages.js';
import type { BackendKey, CancelTarget } from './cancel-registry.js';
import { ResponseQueue } from './response-queue.js';

export type PooledServerState = 'idle' | 'active' | 'resetting' | 'closed';

/** Who receives a server's bytes while it is lent out. */
export interface ServerOwner {
  onServerData(chunk: Buffer): void;
  onServerClosed(): void;
}

export class PooledServer implements CancelTarget {
  state: PooledServerState = 'idle';
  owner: ServerOwner | null = null;
  /** Values the server reported with ParameterStatus. */
  readonly params = new Map<string, string>();
  /**
   * Statement names prepared on this server (Borealis's names, unique per
   * client statement, never clients'), least recently used first.
   */
  readonly prepared = new Set<string>();
  /** Statements whose client closed them or left: closed here before the server's next use. */
  readonly doomed: string[] = [];
  /** A token of the client session whose unnamed statement this server holds, if any. */
  unnamedOwner: object | null = null;
  /**
   * PostgreSQL stopped waiting for the storage quorum on a commit (a cancel,
   * a statement timeout) and is about to report it as committed, although
   * only the writer has it: the client must not take that as an
   * acknowledgement.
   */
  commitNotDurable = false;
  /** Type byte of the last message header the server sent, and who owned the server then. */
  lastMessageCode = 0;
  lastMessageOwner: ServerOwner | null = null;
  private readingPaused = false;
  /** Cancel requests on their way to this backend; while any are, it is lent to no one new. */
  private cancelsInFlight = 0;
  /** What to do with the server once they have arrived (the pool's release). */
  private afterCancels: (() => void) | null = null;
  /** Replies this server still owes; empty whenever it is idle in the pool. */
  readonly queue = new ResponseQueue();
  /** Transaction status from the last ReadyForQuery: 'I', 'T' or 'E'. */
  txStatus = 0x49;
  /**
   * Walks the server's output. It lives with the server, not the client, so
   * that a transaction costs no allocation and an idle client holds none.
   */
  readonly scanner = new BackendScanner({
    onMessage: ({ code }, emit) => {
      this.lastMessageCode = code;
      this.lastMessageOwner = this.owner;
      this.queue.flushSynthetic(emit);
      return this.queue.onServerMessage(code, emit);
    },
    onInspected: (code, body) => {
      if (code === 0x5a) this.txStatus = body[0] ?? 0x49; // 'Z'
      else if (code === 0x53) setParam(this.params, body); // 'S'
      else if (isSyncRepCancelled(body)) this.commitNotDurable = true; // 'N'
    },
  });
  idleSince = Date.now();
  private readonly closeListeners: Array<() => void> = [];

  constructor(
    readonly socket: net.Socket,
    readonly key: BackendKey,
  ) {
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.owner) this.owner.onServerData(chunk);
      // Nothing is owed to an idle server's nobody: it is broken.
      else this.close();
    });
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    socket.resume();
  }

  cancelStarted(): void {
    this.cancelsInFlight++;
  }

  cancelEnded(): void {
    this.cancelsInFlight = Math.max(0, this.cancelsInFlight - 1);
    if (this.cancelsInFlight > 0) return;
    const then = this.afterCancels;
    this.afterCancels = null;
    then?.();
  }

  /** Runs `release` now, or once no cancel is on its way to this backend. */
  whenNoCancelPending(release: () => void): boolean {
    if (this.cancelsInFlight === 0) return true;
    this.afterCancels = release;
    return false;
  }

  /** Backpressure: stop reading while the reader of this server's output lags. */
  pauseReading(): void {
    if (this.readingPaused || this.state === 'closed') return;
    this.readingPaused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readingPaused) return;
    this.readingPaused = false;
    this.socket.resume();
  }

  /** Forgets every session's statements (after DISCARD ALL). */
  forgetStatements(): void {
    this.prepared.clear();
    this.doomed.length = 0;
    this.unnamedOwner = null;
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.socket.destroy();
    const owner = this.owner;
    this.owner = null;
    owner?.onServerClosed();
    for (const l of this.closeListeners) l();
  }
}

/** Records a ParameterStatus body (name NUL value NUL). */
export function setParam(params: Map<string, string>, body: Buffer): void {
  const nameEnd = body.indexOf(0);
  if (nameEnd < 0) return;
  const valueEnd = body.indexOf(0, nameEnd + 1);
  params.set(body.toString('utf8', 0, nameEnd), body.toString('utf8', nameEnd + 1, valueEnd < 0 ? body.length : valueEnd));
}
