// The Data API's connections to one cluster as one user on one database.
//
// An autocommit statement that cannot change session state runs on a shared
// connection: an idle one if there is one, a new one while the set is below
// its size, and otherwise — only if it is known to be quick — pipelined
// behind the fewest statements on a connection that runs only quick ones and
// whose current statement started a moment ago. A statement not known to be
// quick goes out alone, and nothing is queued behind it. Everything else —
// transactions, batches, statements that may leave state in the session —
// leases a connection for itself.
import { SqlConnection } from './sql-connection.js';

export interface ConnectionSetOptions {
  /** Opens a connection; `onSettled` must run whenever one of its statements finishes. */
  readonly open: (onSettled: () => void) => Promise<SqlConnection>;
  readonly sizeMax: number;
  /** Statements in flight on one shared connection at most. */
  readonly pipelineDepthMax: number;
  /** A shared connection whose current statement has run longer than this takes no more. */
  readonly pipelineHeadAgeMaxMs: number;
}

export class ConnectionWaitTimeout extends Error {
  override readonly name = 'ConnectionWaitTimeout';
}

export class ConnectionSet {
  private readonly connections = new Set<SqlConnection>();
  private readonly leased = new Set<SqlConnection>();
  private opening = 0;
  private waiters: Array<() => void> = [];

  constructor(private readonly options: ConnectionSetOptions) {}

  /** Nothing open, opening or waiting: the set can be dropped. */
  get unused(): boolean {
    return this.connections.size === 0 && this.opening === 0 && this.waiters.length === 0;
  }

  /**
   * A connection to put one autocommit statement on: behind others' only if
   * `quick` (then it must be sent with `solo: false`, otherwise `solo: true`).
   */
  async shared(deadline: number, quick: boolean): Promise<SqlConnection> {
    for (;;) {
      const now = Date.now();
      let idle: SqlConnection | null = null;
      let best: SqlConnection | null = null;
      for (const c of this.connections) {
        if (this.leased.has(c) || c.closed) continue;
        const depth = c.statementsInFlight;
        // Joining statements about to go out together costs no write of its own.
        if (quick && c.collecting && c.soloStatementsInFlight === 0 && depth < this.options.pipelineDepthMax && c.headAgeMs(now) <= this.options.pipelineHeadAgeMaxMs) return c;
        if (depth === 0 && !idle) idle = c;
        if (quick && c.soloStatementsInFlight === 0 && depth < this.options.pipelineDepthMax && c.headAgeMs(now) <= this.options.pipelineHeadAgeMaxMs && (!best || depth < best.statementsInFlight)) best = c;
      }
      if (idle) return idle;
      if (this.connections.size + this.opening < this.options.sizeMax) return this.openOne(false);
      if (best) return best;
      await this.waitForChange(deadline);
    }
  }

  /** A connection for the caller alone, until `release`. */
  async lease(deadline: number): Promise<SqlConnection> {
    for (;;) {
      for (const c of this.connections) {
        if (!this.leased.has(c) && !c.closed && c.statementsInFlight === 0) {
          this.leased.add(c);
          return c;
        }
      }
      if (this.connections.size + this.opening < this.options.sizeMax) return this.openOne(true);
      await this.waitForChange(deadline);
    }
  }

  /** Gives a leased connection back; it is closed unless `reusable` and idle outside a transaction. */
  release(c: SqlConnection, reusable: boolean): void {
    this.leased.delete(c);
    if (!reusable || c.closed || c.transactionStatus !== 'I') this.discard(c);
    this.notify();
  }

  /** Closes shared connections idle for longer than `idleMs`. */
  closeIdle(idleMs: number, now = Date.now()): void {
    for (const c of this.connections) {
      if (!this.leased.has(c) && c.statementsInFlight === 0 && now - c.lastUsedAt > idleMs) this.discard(c);
    }
  }

  closeAll(): void {
    for (const c of this.connections) c.close();
    this.connections.clear();
    this.leased.clear();
    this.notify();
  }

  private discard(c: SqlConnection): void {
    this.connections.delete(c);
    this.leased.delete(c);
    c.close();
  }

  private async openOne(lease: boolean): Promise<SqlConnection> {
    this.opening++;
    let c: SqlConnection | undefined;
    try {
      c = await this.options.open(() => this.settled(c));
    } finally {
      this.opening--;
    }
    if (lease) this.leased.add(c);
    this.connections.add(c);
    return c;
  }

  private settled(c: SqlConnection | undefined): void {
    if (c?.closed) {
      this.connections.delete(c);
      this.leased.delete(c);
    }
    this.notify();
  }

  private notify(): void {
    if (this.waiters.length === 0) return;
    const woken = this.waiters;
    this.waiters = [];
    for (const wake of woken) wake();
  }

  private waitForChange(deadline: number): Promise<void> {
    const remaining = deadline - Date.now();
    if (remaining <= 0) return Promise.reject(new ConnectionWaitTimeout('no database connection became free in time'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        reject(new ConnectionWaitTimeout('no database connection became free in time'));
      }, remaining);
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(wake);
    });
  }
}
