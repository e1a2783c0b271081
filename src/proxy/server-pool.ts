// A bounded pool of server connections for one (cluster, user, database,
// startup options) key, with a bounded, deadline-ordered queue of clients
// waiting for one. Idle servers are reused last-in first-out (warm caches)
// and closed after serverIdleTimeoutMs.
import { LatencyHistogram } from '../metrics/histogram.js';
import { queryMessage } from '../pgwire/extended.js';
import type { PooledServer } from './pooled-server.js';

export interface PoolLimits {
  /** Servers this pool may open. */
  serversMax: number;
  /** Clients that may wait for a server (per pool). */
  readonly queueMax: number;
  readonly queueTimeoutMs: number;
  readonly serverIdleTimeoutMs: number;
}

export type AcquireFailure = { readonly kind: 'queue-full' } | { readonly kind: 'queue-timeout'; readonly waitedMs: number };

export class AcquireError extends Error {
  override readonly name = 'AcquireError';
  constructor(readonly failure: AcquireFailure) {
    super(failure.kind);
  }
}

/** Longest a ROLLBACK / DISCARD ALL before reuse may take. */
const RESET_TIMEOUT_MS = 10_000;

/** A client whose startup options would need a pool beyond poolsMax. */
export class PoolLimitError extends Error {
  override readonly name = 'PoolLimitError';
  constructor(readonly limit: number) {
    super(`too many distinct connection pools (limit ${limit})`);
  }
}

interface Waiter {
  readonly since: number;
  readonly resolve: (s: PooledServer) => void;
  readonly reject: (e: unknown) => void;
  timer: NodeJS.Timeout | null;
}

export interface PoolStats {
  /** Servers this pool may open now (follows the instance's capacity). */
  readonly serversMax: number;
  /** Client sessions using the pool. */
  readonly sessions: number;
  /** Servers open (idle + active). */
  readonly servers: number;
  readonly idle: number;
  /** Lent to a client, or being reset. */
  readonly active: number;
  readonly opening: number;
  /** Clients queued for a server, and the longest wait so far. */
  readonly waiting: number;
  readonly waitedMsMax: number;
}

export class ServerPool {
  private readonly idle: PooledServer[] = [];
  private readonly all = new Set<PooledServer>();
  private opening = 0;
  private readonly waiters: Waiter[] = [];
  private readonly sweepTimer: NodeJS.Timeout;
  /** ParameterStatus values of the first server opened: what clients are welcomed with. */
  welcomeParams: ReadonlyMap<string, string> | null = null;
  /** Client sessions using this pool (the autoscaler's connection count). */
  sessions = 0;
  /** Servers lent so far: one per transaction (or pinned stretch) served. */
  lends = 0;
  /** Explicit COMMITs, from the client's message to the server's ReadyForQuery (CloudWatch CommitLatency). */
  readonly commitLatency = new LatencyHistogram();

  constructor(
    readonly key: string,
    /** The instance whose servers it holds. */
    readonly instanceId: string,
    private readonly open: () => Promise<PooledServer>,
    readonly limits: PoolLimits,
  ) {
    this.sweepTimer = setInterval(() => this.closeIdle(), Math.max(1_000, Math.min(limits.serverIdleTimeoutMs, 10_000)));
    this.sweepTimer.unref();
  }

  stats(): PoolStats {
    const now = Date.now();
    return {
      serversMax: this.limits.serversMax,
      sessions: this.sessions,
      servers: this.all.size,
      idle: this.idle.length,
      active: this.all.size - this.idle.length,
      opening: this.opening,
      waiting: this.waiters.length,
      waitedMsMax: this.waiters.length ? now - this.waiters[0]!.since : 0,
    };
  }

  /** No session, waiter or lent server (idle servers may be closed): the pool can be dropped. */
  get unused(): boolean {
    return this.sessions === 0 && this.opening === 0 && this.waiters.length === 0 && this.idle.length === this.all.size;
  }

  /** An idle server at once, or null: the hot path, with no promise. */
  tryAcquire(): PooledServer | null {
    const s = this.idle.pop();
    return s ? this.lend(s) : null;
  }

  /** A server for one client. Throws AcquireError or the opener's error. */
  acquire(): Promise<PooledServer> {
    const s = this.idle.pop();
    if (s) return Promise.resolve(this.lend(s));
    if (this.all.size + this.opening < this.limits.serversMax) return this.openOne();
    if (this.waiters.length >= this.limits.queueMax) return Promise.reject(new AcquireError({ kind: 'queue-full' }));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { since: Date.now(), resolve, reject, timer: null };
      waiter.timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new AcquireError({ kind: 'queue-timeout', waitedMs: Date.now() - waiter.since }));
      }, this.limits.queueTimeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Gives a clean, idle-in-transaction-free server back. */
  release(server: PooledServer): void {
    if (server.state === 'closed') return;
    server.owner = null;
    server.resumeReading();
    // A cancel on its way to this backend must not reach the next client's query.
    if (!server.whenNoCancelPending(() => this.release(server))) return;
    // The pool shrank (capacity went down): retire servers above the cap.
    if (this.all.size > this.limits.serversMax) return server.close();
    const waiter = this.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer!);
      waiter.resolve(this.lend(server));
      return;
    }
    server.state = 'idle';
    server.idleSince = Date.now();
    this.idle.push(server);
  }

  /**
   * Returns a server whose session may hold state: rolls back an open
   * transaction and, for a pinned session, discards all session state first.
   */
  resetAndRelease(server: PooledServer, rollback: boolean, discardAll: boolean): void {
    const queries = [...(rollback ? ['ROLLBACK'] : []), ...(discardAll ? ['DISCARD ALL'] : [])];
    if (queries.length === 0) return this.release(server);
    server.state = 'resetting';
    server.resumeReading();
    for (let i = 0; i < queries.length; i++) server.queue.expect('query', { forward: false });
    // A reset that does not finish in time leaves a server in an unknown state: close it.
    const timer = setTimeout(() => {
      if (server.state === 'resetting') server.close();
    }, RESET_TIMEOUT_MS);
    timer.unref();
    server.owner = {
      onServerData: (chunk) => {
        // Nobody reads the replies; an error shows in the final status.
        server.scanner.scan(chunk, () => undefined);
        if (!server.queue.isEmpty || !server.scanner.atBoundary) return;
        clearTimeout(timer);
        if (server.txStatus !== 0x49) return server.close();
        if (discardAll) server.forgetStatements();
        this.release(server);
      },
      onServerClosed: () => undefined,
    };
    server.socket.write(Buffer.concat(queries.map(queryMessage)));
  }

  /** Closes a server whose state is unknown; a waiting client gets a new one. */
  discard(server: PooledServer): void {
    server.close();
  }

  /** Sets the server cap; a larger cap serves waiting clients at once. */
  resize(serversMax: number): void {
    this.limits.serversMax = serversMax;
    while (this.waiters.length > 0 && this.all.size + this.opening < serversMax) {
      const waiter = this.waiters.shift()!;
      clearTimeout(waiter.timer!);
      this.openOne().then(waiter.resolve, waiter.reject);
    }
  }

  close(): void {
    clearInterval(this.sweepTimer);
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer!);
      w.reject(new AcquireError({ kind: 'queue-timeout', waitedMs: Date.now() - w.since }));
    }
    for (const s of [...this.all]) s.close();
  }

  private lend(server: PooledServer): PooledServer {
    this.lends++;
    server.state = 'active';
    return server;
  }

  private async openOne(): Promise<PooledServer> {
    this.opening++;
    let server: PooledServer;
    try {
      server = await this.open();
    } finally {
      this.opening--;
    }
    this.all.add(server);
    this.welcomeParams ??= new Map(server.params);
    server.onClose(() => this.forget(server));
    return this.lend(server);
  }

  private forget(server: PooledServer): void {
    this.all.delete(server);
    const at = this.idle.indexOf(server);
    if (at >= 0) this.idle.splice(at, 1);
    // Room for one more: serve the longest waiter.
    const waiter = this.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer!);
      this.openOne().then(waiter.resolve, waiter.reject);
    }
  }

  private closeIdle(): void {
    const cutoff = Date.now() - this.limits.serverIdleTimeoutMs;
    for (const s of [...this.idle]) if (s.idleSince < cutoff) s.close();
  }
}
