// A client's session after authentication, in transaction pooling: the
// client holds a server only while a transaction (or an extended-protocol
// exchange) is open, or for good once its session state pins it. Named
// prepared statements are the client's own: each gets a server-side name no
// other client can use, is prepared on whichever server the client gets, and
// is closed on every server once the client closes it or leaves.
import type net from 'node:net';
import { Frontend } from '../pgwire/codes.js';
import { CLOSE_COMPLETE, parseBind, parseParse, parseTarget, queryMessage, serializeBind, serializeParse, serializeTarget } from '../pgwire/extended.js';
import { FrameTooLarge, ProtocolViolation, type Frame, type FrameReader } from '../pgwire/frame-reader.js';
import { errorResponse, type ErrorFields } from '../pgwire/messages.js';
import { pinReasons, type PinReason } from '../pgwire/session-state.js';
import type { CancelRegistry, ClientKey } from './cancel-registry.js';
import type { PooledServer, ServerOwner } from './pooled-server.js';
import type { ServerPool } from './server-pool.js';

/** Startup parameters a server reports (GUC_REPORT) and the pooler aligns with SET. */
export const SYNCED_PARAMS: ReadonlySet<string> = new Set(['application_name', 'client_encoding', 'DateStyle', 'TimeZone', 'IntervalStyle', 'standard_conforming_strings']);

interface ClientStatement {
  readonly serverName: string;
  readonly query: string;
  readonly paramTypes: Buffer;
  /** Servers it may be prepared on (closed there when the client drops it). */
  readonly servers: Set<PooledServer>;
}

export interface SessionLimits {
  readonly clientPreparedStatementsMax: number;
  readonly serverPreparedStatementsMax: number;
  /** Bytes queued on a socket before the other side stops being read. */
  readonly proxyWriteBufferBytesMax: number;
  readonly pipelineRequestsMax: number;
}

export type SessionEnd =
  | { readonly kind: 'client-left' }
  /** `fatalSent`: the server's own FATAL reached the client before it closed. */
  | { readonly kind: 'server-lost'; readonly fatalSent: boolean }
  | { readonly kind: 'acquire-failed'; readonly error: unknown }
  | { readonly kind: 'protocol-violation'; readonly detail: string }
  /** `unreadBytes`: how much of the oversized message the client has yet to send. */
  | { readonly kind: 'message-too-large'; readonly detail: string; readonly unreadBytes: number };

export interface SessionHooks {
  onPinned(reasons: readonly PinReason[]): void;
  onEnd(end: SessionEnd): void;
}

const FRONTEND_PARSE = 0x50; // 'P'
const FRONTEND_BIND = 0x42; // 'B'
const FRONTEND_DESCRIBE = 0x44; // 'D'
const FRONTEND_CLOSE = 0x43; // 'C'
const FRONTEND_EXECUTE = 0x45; // 'E'
const FRONTEND_SYNC = 0x53; // 'S'
const FRONTEND_FUNCTION_CALL = 0x46; // 'F'
const FRONTEND_FLUSH = 0x48; // 'H'
const BACKEND_ERROR = 0x45; // 'E'
/** Server-side statement names: a prefix and a counter, unique for the life of the proxy. */
let statementSerial = 0;
/** A statement that ends a transaction by committing it. */
const COMMIT = /^\s*(?:commit|end)\b/i;

export class PooledSession implements ServerOwner {
  private server: PooledServer | null = null;
  private acquiring = false;
  private held: Frame | null = null;
  private ended = false;
  private readonly statements = new Map<string, ClientStatement>();
  private readonly pins = new Set<PinReason>();
  private readonly toClient: Buffer[] = [];
  /**
   * The client sent extended-protocol messages after its last Sync (or
   * Query): PostgreSQL is inside that exchange's implicit transaction, even
   * when every reply has arrived (a suspended portal, Describe + Flush, an
   * error before Sync), so the server stays with this client.
   */
  private exchangeOpen = false;
  /** The pooler refused a message itself: like the server, it skips the client's messages up to Sync. */
  private skippingToSync = false;
  /** Reading the client is held back while it waits for a server, while the server's input is full, or while too many replies are owed. */
  private waitingForServerDrain = false;
  private pipelineFull = false;
  /** The server whose reading was paused because this client reads slowly. */
  private pausedServer: PooledServer | null = null;
  /** When a COMMIT went to the server, until its ReadyForQuery (performance.now() ms). */
  private commitSentAt: number | null = null;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  private readonly onClientDrain = (): void => {
    const s = this.pausedServer;
    this.pausedServer = null;
    s?.resumeReading();
  };
  private readonly onServerDrain = (): void => {
    this.waitingForServerDrain = false;
    this.updateReading();
    this.process();
  };

  constructor(
    private readonly socket: net.Socket,
    private readonly reader: FrameReader,
    private readonly pool: ServerPool,
    private readonly startupParams: ReadonlyMap<string, string>,
    private readonly cancelKey: ClientKey,
    private readonly cancels: CancelRegistry,
    private readonly limits: SessionLimits,
    private readonly hooks: SessionHooks,
  ) {}

  get pinned(): boolean {
    return this.pins.size > 0;
  }

  get hasServer(): boolean {
    return this.server !== null;
  }

  /** Holding a server, or queued for one with a request waiting: not idle. */
  get busy(): boolean {
    return this.server !== null || this.acquiring;
  }

  /** Starts reading the client; bytes already buffered are processed first. */
  start(): void {
    this.pool.sessions++;
    this.socket.on('data', this.onData);
    this.socket.resume();
    this.process();
  }

  private receive(chunk: Buffer): void {
    this.reader.push(chunk);
    this.process();
  }

  private updateReading(): void {
    if (this.ended) return;
    if (this.acquiring || this.waitingForServerDrain || this.pipelineFull) this.socket.pause();
    else this.socket.resume();
  }

  private process(): void {
    if (this.ended) return;
    try {
      const out: Buffer[] = [];
      for (;;) {
        if (this.waitingForServerDrain || this.pipelineFull) break;
        const frame = this.held ?? this.reader.next();
        if (!frame) break;
        this.held = null;
        if (frame.code === Frontend.Terminate) {
          this.flushToServer(out);
          return this.end({ kind: 'client-left' });
        }
        let server = this.server;
        if (!server) {
          server = this.pool.tryAcquire();
          if (server) this.attach(server);
          else {
            this.held = frame;
            this.acquire();
            return;
          }
        }
        if (server.queue.length >= this.limits.pipelineRequestsMax) {
          // Replies are not keeping up: read no more until they do.
          this.held = frame;
          this.pipelineFull = true;
          this.updateReading();
          break;
        }
        this.translate(frame, server, out);
      }
      const server = this.server;
      if (server) {
        this.flushToServer(out);
        server.queue.flushSynthetic((b) => this.toClient.push(b));
        this.flushToClient();
        this.maybeDetach();
      }
    } catch (err) {
      if (err instanceof FrameTooLarge) this.end({ kind: 'message-too-large', detail: err.message, unreadBytes: Math.max(0, err.frameBytes - this.reader.bufferedBytes) });
      else if (err instanceof ProtocolViolation) this.end({ kind: 'protocol-violation', detail: err.message });
      else throw err;
    }
  }

  private flushToServer(out: Buffer[]): void {
    const server = this.server;
    if (out.length === 0 || !server) return;
    server.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    out.length = 0;
    if (server.socket.writableLength > this.limits.proxyWriteBufferBytesMax && !this.waitingForServerDrain) {
      // The server reads slower than the client sends (a large COPY): wait for it.
      this.waitingForServerDrain = true;
      this.updateReading();
      server.socket.once('drain', this.onServerDrain);
    }
  }

  private acquire(): void {
    if (this.acquiring) return;
    this.acquiring = true;
    this.updateReading();
    this.pool.acquire().then(
      (server) => {
        this.acquiring = false;
        if (this.ended) return this.pool.release(server);
        this.attach(server);
        this.updateReading();
        this.process();
      },
      (error: unknown) => {
        this.acquiring = false;
        this.end({ kind: 'acquire-failed', error });
      },
    );
  }

  private attach(server: PooledServer): void {
    this.server = server;
    server.owner = this;
    this.cancels.attach(this.cancelKey, server.key);
    const hidden: Buffer[] = [];
    // Statements other clients dropped are closed before anything else runs.
    for (const name of server.doomed.splice(0)) {
      server.queue.expect('close', false);
      hidden.push(serializeTarget(FRONTEND_CLOSE, 'S', name));
    }
    // Align the server with the client's startup parameters, quietly.
    const sets: string[] = [];
    for (const [name, value] of this.startupParams) {
      if (SYNCED_PARAMS.has(name) && server.params.get(name) !== value) sets.push(`SET ${name} TO '${value.replace(/'/g, "''")}'`);
    }
    if (sets.length > 0) {
      server.queue.expect('query', false);
      hidden.push(queryMessage(sets.join('; ')));
    }
    if (hidden.length > 0) server.socket.write(Buffer.concat(hidden));
  }

  /** Answers a message with an error of the pooler's own, as PostgreSQL would; the rest up to Sync is skipped. */
  private refuseMessage(server: PooledServer, fields: Omit<ErrorFields, 'severity'>): void {
    server.queue.synthesize(errorResponse({ severity: 'ERROR', ...fields }));
    this.skippingToSync = true;
  }

  /** Rewrites one client message for the attached server. */
  private translate(frame: Frame, server: PooledServer, out: Buffer[]): void {
    if (frame.code === FRONTEND_SYNC) {
      this.exchangeOpen = false;
      this.skippingToSync = false;
      server.queue.expect('sync');
      out.push(frame.raw);
      return;
    }
    // PostgreSQL skips everything but Sync after an error; so does the pooler after its own.
    if (this.skippingToSync) return;
    switch (frame.code) {
      case Frontend.Query: {
        const sql = frame.body.toString('utf8', 0, Math.max(0, frame.body.length - 1));
        this.pin(pinReasons(sql));
        if (COMMIT.test(sql)) this.commitSentAt = performance.now();
        // A simple query ends an open extended exchange's implicit transaction too.
        this.exchangeOpen = false;
        server.queue.expect('query');
        out.push(frame.raw);
        return;
      }
      case FRONTEND_FUNCTION_CALL:
        this.exchangeOpen = false;
        server.queue.expect('function-call');
        out.push(frame.raw);
        return;
      case Frontend.Password:
        throw new ProtocolViolation('unexpected password message after authentication');
    }
    if (frame.code === FRONTEND_PARSE || frame.code === FRONTEND_BIND || frame.code === FRONTEND_DESCRIBE || frame.code === FRONTEND_CLOSE || frame.code === FRONTEND_EXECUTE || frame.code === FRONTEND_FLUSH) {
      this.exchangeOpen = true;
    }
    switch (frame.code) {
      case FRONTEND_PARSE:
        return this.translateParse(frame, server, out);
      case FRONTEND_BIND: {
        const b = parseBind(frame.body);
        if (b.statement === '') {
          if (server.unnamedOwner !== this) return this.refuseMessage(server, { code: '26000', message: 'unnamed prepared statement does not exist' });
          server.queue.expect('bind');
          out.push(frame.raw);
          return;
        }
        const st = this.statements.get(b.statement);
        if (!st) return this.refuseMessage(server, { code: '26000', message: `prepared statement "${b.statement}" does not exist` });
        if (COMMIT.test(st.query)) this.commitSentAt = performance.now();
        this.ensurePrepared(st, server, out);
        out.push(serializeBind(b.portal, st.serverName, b.rest));
        server.queue.expect('bind');
        return;
      }
      case FRONTEND_DESCRIBE: {
        const t = parseTarget(frame.body);
        if (t.target === 'S') {
          if (t.name === '') {
            if (server.unnamedOwner !== this) return this.refuseMessage(server, { code: '26000', message: 'unnamed prepared statement does not exist' });
          } else {
            const st = this.statements.get(t.name);
            if (!st) return this.refuseMessage(server, { code: '26000', message: `prepared statement "${t.name}" does not exist` });
            this.ensurePrepared(st, server, out);
            out.push(serializeTarget(FRONTEND_DESCRIBE, 'S', st.serverName));
            server.queue.expect('describe');
            return;
          }
        }
        server.queue.expect('describe');
        out.push(frame.raw);
        return;
      }
      case FRONTEND_CLOSE: {
        const t = parseTarget(frame.body);
        if (t.target === 'S' && t.name !== '') return this.closeStatement(t.name, server, out);
        if (t.target === 'S' && server.unnamedOwner !== this) {
          // Closing a statement that does not exist is no error.
          server.queue.synthesize(CLOSE_COMPLETE);
          return;
        }
        server.queue.expect('close');
        out.push(frame.raw);
        return;
      }
      case FRONTEND_EXECUTE:
        server.queue.expect('execute');
        out.push(frame.raw);
        return;
      default:
        // Flush, CopyData, CopyDone, CopyFail: no reply of their own.
        out.push(frame.raw);
    }
  }

  private translateParse(frame: Frame, server: PooledServer, out: Buffer[]): void {
    const p = parseParse(frame.body);
    this.pin(pinReasons(p.query));
    if (COMMIT.test(p.query)) this.commitSentAt = performance.now();
    if (p.statement === '') {
      server.unnamedOwner = this;
      // A failed Parse leaves no unnamed statement (PostgreSQL drops the old one first).
      server.queue.expect('parse', true, () => {
        if (server.unnamedOwner === this) server.unnamedOwner = null;
      });
      out.push(frame.raw);
      return;
    }
    if (this.statements.has(p.statement)) return this.refuseMessage(server, { code: '42P05', message: `prepared statement "${p.statement}" already exists` });
    if (this.statements.size >= this.limits.clientPreparedStatementsMax) {
      return this.refuseMessage(server, {
        code: '54000',
        message: `too many prepared statements in this session (the limit is ${this.limits.clientPreparedStatementsMax})`,
        hint: 'Close prepared statements the session no longer needs.',
      });
    }
    const st: ClientStatement = { serverName: `borealis_${(statementSerial++).toString(36)}`, query: p.query, paramTypes: p.paramTypes, servers: new Set() };
    this.statements.set(p.statement, st);
    this.prepareOn(st, server, out, true, () => {
      // The server refused or skipped it: it does not exist for the client either.
      if (this.statements.get(p.statement) === st) this.statements.delete(p.statement);
    });
  }

  private closeStatement(name: string, server: PooledServer, out: Buffer[]): void {
    const st = this.statements.get(name);
    if (!st) {
      server.queue.synthesize(CLOSE_COMPLETE);
      return;
    }
    this.statements.delete(name);
    const wasHere = server.prepared.delete(st.serverName);
    st.servers.delete(server);
    this.doomElsewhere(st);
    server.queue.expect('close', true, () => {
      // Skipped after an error: the statement lives on, for the client and here.
      if (!this.statements.has(name)) this.statements.set(name, st);
      if (wasHere) {
        server.prepared.add(st.serverName);
        st.servers.add(server);
      }
    });
    out.push(serializeTarget(FRONTEND_CLOSE, 'S', st.serverName));
  }

  /** Marks a statement for closing on the servers it may still be prepared on. */
  private doomElsewhere(st: ClientStatement): void {
    for (const other of st.servers) {
      if (other.state === 'closed') continue;
      if (other.prepared.delete(st.serverName)) other.doomed.push(st.serverName);
    }
    st.servers.clear();
  }

  /** Sends a Parse for a client's statement, making room on the server first. */
  private prepareOn(st: ClientStatement, server: PooledServer, out: Buffer[], forward: boolean, onError?: () => void): void {
    while (server.prepared.size >= Math.max(10, this.limits.serverPreparedStatementsMax)) {
      const oldest = server.prepared.values().next().value as string;
      server.prepared.delete(oldest);
      server.queue.expect('close', false);
      out.push(serializeTarget(FRONTEND_CLOSE, 'S', oldest));
    }
    server.prepared.add(st.serverName);
    st.servers.add(server);
    server.queue.expect('parse', forward, () => {
      server.prepared.delete(st.serverName);
      st.servers.delete(server);
      onError?.();
    });
    out.push(serializeParse(st.serverName, st.query, st.paramTypes));
  }

  /** Prepares a client's statement on this server if it lacks it (unseen by the client). */
  private ensurePrepared(st: ClientStatement, server: PooledServer, out: Buffer[]): void {
    if (server.prepared.delete(st.serverName)) {
      server.prepared.add(st.serverName); // most recently used now
      return;
    }
    this.prepareOn(st, server, out, false);
  }

  private pin(reasons: readonly PinReason[]): void {
    if (reasons.length === 0) return;
    const wasPinned = this.pinned;
    for (const r of reasons) this.pins.add(r);
    if (!wasPinned) this.hooks.onPinned(reasons);
  }

  // ServerOwner
  onServerData(chunk: Buffer): void {
    const server = this.server;
    if (!server) return;
    server.scanner.scan(chunk, this.collectForClient);
    if (server.scanner.atBoundary) server.queue.flushSynthetic(this.collectForClient);
    // One write per server chunk: usually the chunk itself, untouched.
    this.flushToClient();
    if (this.commitSentAt !== null && server.queue.isEmpty && server.scanner.atBoundary) {
      this.pool.commitLatency.observe((performance.now() - this.commitSentAt) / 1000);
      this.commitSentAt = null;
    }
    if (this.pipelineFull && server.queue.length < this.limits.pipelineRequestsMax / 2) {
      this.pipelineFull = false;
      this.updateReading();
      this.process();
      return;
    }
    this.maybeDetach();
  }

  private readonly collectForClient = (bytes: Buffer): void => {
    this.toClient.push(bytes);
  };

  onServerClosed(): void {
    const server = this.server;
    this.server = null;
    // A server that ended with an ErrorResponse (FATAL) told the client why itself.
    const fatalSent = server !== null && server.lastMessageCode === BACKEND_ERROR && server.scanner.atBoundary;
    this.end({ kind: 'server-lost', fatalSent });
  }

  private flushToClient(): void {
    if (this.toClient.length === 0) return;
    this.socket.write(this.toClient.length === 1 ? this.toClient[0]! : Buffer.concat(this.toClient));
    this.toClient.length = 0;
    const server = this.server;
    if (server && this.pausedServer === null && this.socket.writableLength > this.limits.proxyWriteBufferBytesMax) {
      // A slow reader: stop reading its server until the client catches up.
      this.pausedServer = server;
      server.pauseReading();
      this.socket.once('drain', this.onClientDrain);
    }
  }

  /** Between transactions, an unpinned client gives its server back. */
  private maybeDetach(): void {
    const server = this.server;
    if (!server || this.pinned || this.exchangeOpen || this.held || server.txStatus !== 0x49 || !server.queue.isEmpty || !server.scanner.atBoundary) return;
    if (this.pausedServer === server) {
      // The reply is whole; the client reads it at its own pace. release() resumes the server.
      this.socket.off('drain', this.onClientDrain);
      this.pausedServer = null;
    }
    server.socket.off('drain', this.onServerDrain);
    this.waitingForServerDrain = false;
    this.server = null;
    this.cancels.attach(this.cancelKey, null);
    this.pool.release(server);
  }

  /** Ends the session; the server goes back clean or is closed. */
  end(how: SessionEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.pool.sessions--;
    this.socket.off('data', this.onData);
    this.socket.off('drain', this.onClientDrain);
    this.pausedServer?.resumeReading();
    this.pausedServer = null;
    // The client's statements die with it, on every server.
    for (const st of this.statements.values()) this.doomElsewhere(st);
    this.statements.clear();
    const server = this.server;
    this.server = null;
    if (server && server.state !== 'closed') {
      server.owner = null;
      server.socket.off('drain', this.onServerDrain);
      if (server.unnamedOwner === this) server.unnamedOwner = null;
      if (!server.queue.isEmpty || !server.scanner.atBoundary || this.exchangeOpen) this.pool.discard(server);
      else this.pool.resetAndRelease(server, server.txStatus !== 0x49, this.pinned);
    }
    this.hooks.onEnd(how);
  }
}
