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
import { OpenError } from './server-connection.js';
import type { ServerPool } from './server-pool.js';

/** Times a writer endpoint's session follows a moving writer before one acquire gives up. */
export const WRITER_MOVES_MAX = 3;

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
  /** Bytes of statement text and parameter types one client's statements may hold. */
  readonly clientPreparedStatementBytesMax: number;
  readonly serverPreparedStatementsMax: number;
  /** Bytes queued on a socket before the other side stops being read. */
  readonly proxyWriteBufferBytesMax: number;
  readonly pipelineRequestsMax: number;
}

export type SessionEnd =
  | { readonly kind: 'client-left' }
  /** A commit stopped waiting for the storage quorum: its outcome is unknown to the client. */
  | { readonly kind: 'commit-not-durable' }
  /** `fatalSent`: the server's own FATAL reached this client before it closed. */
  | { readonly kind: 'server-lost'; readonly fatalSent: boolean }
  | { readonly kind: 'acquire-failed'; readonly error: unknown; readonly instanceId: string }
  | { readonly kind: 'protocol-violation'; readonly detail: string }
  /** `unreadBytes`: how much of the oversized message the client has yet to send. */
  | { readonly kind: 'message-too-large'; readonly detail: string; readonly unreadBytes: number };

export interface SessionHooks {
  onPinned(reasons: readonly PinReason[]): void;
  onEnd(end: SessionEnd): void;
  /**
   * Asked before a server is taken (at a transaction's start): the pool the
   * session's endpoint routes to now if that may have changed, else null.
   * `moved`: the pool's instance is known to be the writer no more.
   */
  repool?(moved: boolean): ServerPool | null;
}

const FRONTEND_PARSE = 0x50; // 'P'
const FRONTEND_BIND = 0x42; // 'B'
const FRONTEND_DESCRIBE = 0x44; // 'D'
const FRONTEND_CLOSE = 0x43; // 'C'
const FRONTEND_EXECUTE = 0x45; // 'E'
const FRONTEND_SYNC = 0x53; // 'S'
const FRONTEND_FUNCTION_CALL = 0x46; // 'F'
const FRONTEND_FLUSH = 0x48; // 'H'
const FRONTEND_COPY_DATA = 0x64; // 'd'
const FRONTEND_COPY_DONE = 0x63; // 'c'
const FRONTEND_COPY_FAIL = 0x66; // 'f'
const BACKEND_ERROR = 0x45; // 'E'
/** Server-side statement names: a prefix and a counter, unique for the life of the proxy. */
let statementSerial = 0;
/** A statement that ends a transaction by committing it. */
const COMMIT = /^\s*(?:commit|end)\b/i;
/** What the pooler sends when it refuses a message itself: PostgreSQL fails it at Parse, and so aborts and skips to Sync as it would have. */
const REFUSAL_PARSE = serializeParse('borealis_refused', 'borealis refused this message', Buffer.from([0, 0]));
const NO_OPTIONS = {};
const FLUSH_MESSAGE = Buffer.from([FRONTEND_FLUSH, 0, 0, 0, 4]);
/** translate()'s answer when a message must wait for the replies to earlier ones. */
const WAIT = 'wait';
type Translated = void | typeof WAIT;
/** SQL that drops every prepared statement of the session. */
const DROPS_ALL_STATEMENTS = /\b(?:deallocate\s+(?:prepare\s+)?all|discard\s+all)\b/i;
const PORTALS_REMEMBERED_MAX = 64;
/** Encoding names are plain identifiers; anything else is not sent to a server. */
const ENCODING_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** A SQL string literal that means the same whatever standard_conforming_strings says. */
function literal(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export class PooledSession implements ServerOwner {
  private server: PooledServer | null = null;
  private acquiring = false;
  private held: Frame | null = null;
  private ended = false;
  private readonly statements = new Map<string, ClientStatement>();
  private statementBytes = 0;
  private readonly pins = new Set<PinReason>();
  private readonly toClient: Buffer[] = [];
  /**
   * The client sent extended-protocol messages since the last Sync, Query
   * or FunctionCall that PostgreSQL completed: it is inside that exchange's
   * implicit transaction even when every reply has arrived (a suspended
   * portal, Describe + Flush, an error before Sync), so the server stays
   * with this client. Cleared when such a message's ReadyForQuery arrives
   * with nothing sent after it (one the server skipped or ignored during
   * COPY never clears it).
   */
  private exchangeOpen = false;
  private exchangeSerial = 0;
  /**
   * Client statement names with a Parse or Close still unanswered. Whether a
   * later Parse of the name is a duplicate, or a Bind of it refers to
   * nothing, depends on how those end (a Parse that fails, a Close skipped
   * after an error), so such a message waits for them.
   */
  private readonly pendingNames = new Map<string, number>();
  private waitingForReplies = false;
  private resumeWanted = false;
  /** The pooler refused a message itself: like the server, it skips the client's messages up to Sync. */
  private skippingToSync = false;
  /** Reading the client stops while the server's input is full, too many replies are owed, or the client reads its own too slowly. */
  private waitingForServerDrain = false;
  private pipelineFull = false;
  private clientOutputFull = false;
  /** The server whose reading was paused because this client reads slowly. */
  private pausedServer: PooledServer | null = null;
  /** SQL of the client's unnamed statement and of its named portals, to see what an Execute runs. */
  private unnamedSql = '';
  private readonly portalSql = new Map<string, string>();
  /** Stands for this session as owner of a server's unnamed statement (holds nothing of it). */
  private readonly unnamedToken = {};
  /** When a COMMIT went to the server, until its ReadyForQuery (performance.now() ms). */
  private commitSentAt: number | null = null;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  private readonly onClientDrain = (): void => {
    this.clientOutputFull = false;
    const s = this.pausedServer;
    this.pausedServer = null;
    s?.resumeReading();
    this.updateReading();
    this.process();
  };
  private readonly onServerDrain = (): void => {
    this.waitingForServerDrain = false;
    this.updateReading();
    this.process();
  };

  constructor(
    private readonly socket: net.Socket,
    private readonly reader: FrameReader,
    private pool: ServerPool,
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

  private get readingHeld(): boolean {
    return this.acquiring || this.waitingForServerDrain || this.pipelineFull || this.clientOutputFull || this.waitingForReplies;
  }

  private updateReading(): void {
    if (this.ended) return;
    if (this.readingHeld) this.socket.pause();
    else this.socket.resume();
  }

  private process(): void {
    if (this.ended) return;
    const out: Buffer[] = [];
    try {
      for (;;) {
        if (this.waitingForServerDrain || this.pipelineFull || this.clientOutputFull || this.waitingForReplies) break;
        const frame = this.held ?? this.reader.next();
        if (!frame) break;
        this.held = null;
        if (frame.code === Frontend.Terminate) {
          this.flushToServer(out);
          return this.end({ kind: 'client-left' });
        }
        let server = this.server;
        if (!server) {
          this.repool(false);
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
        if (this.translate(frame, server, out) === WAIT) {
          // It depends on how an earlier Parse or Close of the same name ends.
          this.held = frame;
          this.waitingForReplies = true;
          this.updateReading();
          // PostgreSQL holds its replies until a Sync or Flush: ask for them.
          out.push(FLUSH_MESSAGE);
          break;
        }
      }
      const server = this.server;
      if (server) {
        this.flushToServer(out);
        server.queue.flushSynthetic((b) => this.toClient.push(b));
        this.flushToClient();
        this.maybeDetach();
      }
    } catch (err) {
      // What came before the offending message goes out, as PostgreSQL would have run it.
      this.flushToServer(out);
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
    if (!this.waitingForServerDrain && server.socket.writableLength > Math.max(this.limits.proxyWriteBufferBytesMax, server.socket.writableHighWaterMark)) {
      // The server reads slower than the client sends (a large COPY): wait for it.
      this.waitingForServerDrain = true;
      this.updateReading();
      server.socket.once('drain', this.onServerDrain);
    }
  }

  private acquire(moves = 0): void {
    if (this.acquiring) return;
    this.acquiring = true;
    this.updateReading();
    const pool = this.pool;
    pool.acquire().then(
      (server) => {
        this.acquiring = false;
        if (this.ended) return pool.release(server);
        this.attach(server);
        this.updateReading();
        this.process();
      },
      (error: unknown) => {
        this.acquiring = false;
        if (this.ended) return;
        // The writer moved while this transaction waited for it: it waits for the new one instead.
        if (error instanceof OpenError && error.failure.kind === 'writer-moved' && moves < WRITER_MOVES_MAX && this.repool(true)) return this.acquire(moves + 1);
        this.end({ kind: 'acquire-failed', error, instanceId: pool.instanceId });
      },
    );
  }

  /** Moves an idle session (no server held or awaited) to the pool its endpoint routes to now; true if it moved. */
  private repool(moved: boolean): boolean {
    if (this.server || this.acquiring) return false;
    const next = this.hooks.repool?.(moved);
    if (!next || next === this.pool) return false;
    this.pool.sessions--;
    next.sessions++;
    this.pool = next;
    return true;
  }

  private attach(server: PooledServer): void {
    this.server = server;
    server.owner = this;
    this.cancels.attach(this.cancelKey, server.key, server);
    const hidden: Buffer[] = [];
    // Statements other clients dropped are closed before anything else runs.
    for (const name of server.doomed.splice(0)) {
      server.queue.expect('close', { forward: false });
      hidden.push(serializeTarget(FRONTEND_CLOSE, 'S', name));
    }
    hidden.push(...this.alignment(server));
    if (hidden.length > 0) server.socket.write(Buffer.concat(hidden));
  }

  /**
   * Hidden SETs that give the server the reported settings this client was
   * welcomed with: its own startup values, or the pool's defaults for those
   * it did not send (never the previous client's). Values are E'' literals,
   * sent while the server's client_encoding is UTF8, so no setting a
   * previous client left (standard_conforming_strings, an encoding) changes
   * how they read.
   */
  private alignment(server: PooledServer): Buffer[] {
    const sets: string[] = [];
    let wantEncoding: string | undefined;
    for (const name of SYNCED_PARAMS) {
      const desired = this.startupParams.get(name) ?? this.pool.welcomeParams?.get(name);
      if (name === 'client_encoding') {
        if (desired !== undefined && ENCODING_NAME.test(desired)) wantEncoding = desired;
        continue;
      }
      if (desired !== undefined && server.params.get(name) !== desired) sets.push(`SET ${name} TO ${literal(desired)}`);
    }
    const queries: string[] = [];
    let encoding = server.params.get('client_encoding');
    if (sets.length > 0) {
      if (encoding !== 'UTF8') {
        queries.push("SET client_encoding TO 'UTF8'");
        encoding = 'UTF8';
      }
      queries.push(sets.join('; '));
    }
    if (wantEncoding !== undefined && wantEncoding !== encoding) queries.push(`SET client_encoding TO '${wantEncoding}'`);
    return queries.map((q) => {
      server.queue.expect('query', { forward: false });
      return queryMessage(q);
    });
  }

  /**
   * Refuses a client's message with an error of the pooler's own, in
   * PostgreSQL's place: the server gets a Parse certain to fail, so that it
   * aborts the transaction and skips to Sync exactly as it would have, and
   * its error is replaced by this one. The pooler skips the client's
   * messages up to Sync too.
   */
  private refuseMessage(server: PooledServer, out: Buffer[], fields: Omit<ErrorFields, 'severity'>): void {
    server.queue.expect('parse', { forward: false, replaceError: errorResponse({ severity: 'ERROR', ...fields }) });
    out.push(REFUSAL_PARSE);
    this.skippingToSync = true;
  }

  /**
   * A Parse of a name the client already uses. PostgreSQL parses and
   * analyses the statement before it finds the name taken, so its errors
   * (a syntax error, an aborted transaction) come first: the statement is
   * parsed under a throw-away name, and only if that succeeds does the
   * client get 42P05, with the server then failed as for any refusal.
   */
  private refuseDuplicate(name: string, query: string, paramTypes: Buffer, server: PooledServer, out: Buffer[]): void {
    const probe = `borealis_${(statementSerial++).toString(36)}`;
    server.queue.expect('parse', { replaceSuccess: errorResponse({ severity: 'ERROR', code: '42P05', message: `prepared statement "${name}" already exists` }) });
    out.push(serializeParse(probe, query, paramTypes));
    server.queue.expect('close', { forward: false });
    out.push(serializeTarget(FRONTEND_CLOSE, 'S', probe));
    server.queue.expect('parse', { forward: false, replaceError: Buffer.alloc(0) });
    out.push(REFUSAL_PARSE);
    this.skippingToSync = true;
  }

  /** A Sync, Query or FunctionCall: its ReadyForQuery ends an open exchange unless more was sent after it. */
  private endsExchange(): { onDone?: () => void } {
    // The hot path (no exchange open, e.g. simple queries) allocates nothing.
    if (!this.exchangeOpen) return NO_OPTIONS;
    const serial = this.exchangeSerial;
    return {
      onDone: () => {
        if (this.exchangeSerial === serial) this.exchangeOpen = false;
      },
    };
  }

  /** Rewrites one client message for the attached server. */
  private translate(frame: Frame, server: PooledServer, out: Buffer[]): Translated {
    if (frame.code === FRONTEND_SYNC) {
      this.skippingToSync = false;
      server.queue.expect('sync', this.endsExchange());
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
        if (DROPS_ALL_STATEMENTS.test(sql)) this.forgetAllStatements(server);
        // A simple query ends an open extended exchange's implicit transaction too, once it runs.
        server.queue.expect('query', this.endsExchange());
        out.push(frame.raw);
        return;
      }
      case FRONTEND_FUNCTION_CALL:
        server.queue.expect('function-call', this.endsExchange());
        out.push(frame.raw);
        return;
      case FRONTEND_COPY_DATA:
        out.push(frame.raw);
        return;
      case FRONTEND_COPY_DONE:
      case FRONTEND_COPY_FAIL:
        out.push(frame.raw);
        server.queue.copyEnded();
        return;
      case Frontend.Password:
        throw new ProtocolViolation('unexpected password message after authentication');
      case FRONTEND_PARSE:
      case FRONTEND_BIND:
      case FRONTEND_DESCRIBE:
      case FRONTEND_CLOSE:
      case FRONTEND_EXECUTE:
      case FRONTEND_FLUSH:
        this.exchangeOpen = true;
        this.exchangeSerial++;
        return this.translateExtended(frame, server, out);
      default:
        // As PostgreSQL: a message type it does not know ends the connection (never forwarded).
        throw new ProtocolViolation(`invalid frontend message type ${frame.code}`);
    }
  }

  private translateExtended(frame: Frame, server: PooledServer, out: Buffer[]): Translated {
    switch (frame.code) {
      case FRONTEND_PARSE:
        return this.translateParse(frame, server, out);
      case FRONTEND_BIND: {
        const b = parseBind(frame.body);
        if (b.statement === '') {
          if (server.unnamedOwner !== this.unnamedToken) return this.refuseMessage(server, out, { code: '26000', message: 'unnamed prepared statement does not exist' });
          this.rememberPortal(b.portal, this.unnamedSql);
          server.queue.expect('bind');
          out.push(frame.raw);
          return;
        }
        const st = this.statements.get(b.statement);
        if (!st && this.pendingNames.has(b.statement)) return WAIT;
        if (!st) return this.refuseMessage(server, out, { code: '26000', message: `prepared statement "${b.statement}" does not exist` });
        if (COMMIT.test(st.query)) this.commitSentAt = performance.now();
        this.rememberPortal(b.portal, st.query);
        this.ensurePrepared(st, server, out);
        out.push(serializeBind(b.portal, st.serverName, b.rest));
        server.queue.expect('bind');
        return;
      }
      case FRONTEND_DESCRIBE: {
        const t = parseTarget(frame.body);
        if (t.target === 'S') {
          if (t.name === '') {
            if (server.unnamedOwner !== this.unnamedToken) return this.refuseMessage(server, out, { code: '26000', message: 'unnamed prepared statement does not exist' });
          } else {
            const st = this.statements.get(t.name);
            if (!st && this.pendingNames.has(t.name)) return WAIT;
            if (!st) return this.refuseMessage(server, out, { code: '26000', message: `prepared statement "${t.name}" does not exist` });
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
        if (t.target === 'S' && server.unnamedOwner !== this.unnamedToken) {
          // Closing a statement that does not exist is no error.
          server.queue.synthesize(CLOSE_COMPLETE);
          return;
        }
        server.queue.expect('close');
        out.push(frame.raw);
        return;
      }
      case FRONTEND_EXECUTE: {
        const portal = frame.body.toString('utf8', 0, Math.max(0, frame.body.indexOf(0)));
        const sql = this.portalSql.get(portal);
        if (sql !== undefined && DROPS_ALL_STATEMENTS.test(sql)) this.forgetAllStatements(server);
        server.queue.expect('execute');
        out.push(frame.raw);
        return;
      }
      default:
        // Flush: no reply of its own.
        out.push(frame.raw);
    }
  }

  private translateParse(frame: Frame, server: PooledServer, out: Buffer[]): Translated {
    const p = parseParse(frame.body);
    this.pin(pinReasons(p.query));
    if (COMMIT.test(p.query)) this.commitSentAt = performance.now();
    if (p.statement === '') {
      this.unnamedSql = p.query;
      server.unnamedOwner = this.unnamedToken;
      // A failed Parse leaves no unnamed statement (PostgreSQL drops the old one first).
      server.queue.expect('parse', {
        onError: () => {
          if (server.unnamedOwner === this.unnamedToken) server.unnamedOwner = null;
        },
      });
      out.push(frame.raw);
      return;
    }
    if (this.pendingNames.has(p.statement)) return WAIT;
    if (this.statements.has(p.statement)) return this.refuseDuplicate(p.statement, p.query, p.paramTypes, server, out);
    const bytes = Buffer.byteLength(p.query) + p.paramTypes.length;
    if (this.statements.size >= this.limits.clientPreparedStatementsMax || this.statementBytes + bytes > this.limits.clientPreparedStatementBytesMax) {
      return this.refuseMessage(server, out, {
        code: '54000',
        message: `too many prepared statements in this session (the limits are ${this.limits.clientPreparedStatementsMax} statements and ${this.limits.clientPreparedStatementBytesMax} bytes)`,
        hint: 'Close prepared statements the session no longer needs.',
      });
    }
    // Copied: a view would keep the whole received chunk alive.
    const st: ClientStatement = { serverName: `borealis_${(statementSerial++).toString(36)}`, query: p.query, paramTypes: Buffer.from(p.paramTypes), servers: new Set() };
    this.addStatement(p.statement, st);
    this.pendingStarted(p.statement);
    this.prepareOn(st, server, out, true, {
      onDone: () => this.pendingEnded(p.statement),
      onError: () => {
        // The server refused or skipped it: it does not exist for the client either.
        if (this.statements.get(p.statement) === st) this.removeStatement(p.statement);
        this.pendingEnded(p.statement);
      },
    });
  }

  private pendingStarted(name: string): void {
    this.pendingNames.set(name, (this.pendingNames.get(name) ?? 0) + 1);
  }

  private pendingEnded(name: string): void {
    const n = (this.pendingNames.get(name) ?? 1) - 1;
    if (n <= 0) this.pendingNames.delete(name);
    else this.pendingNames.set(name, n);
    if (this.waitingForReplies) this.resumeWanted = true;
  }

  /** Portals live until their transaction ends; a bound: the latest few names. */
  private rememberPortal(portal: string, sql: string): void {
    if (this.portalSql.size >= PORTALS_REMEMBERED_MAX && !this.portalSql.has(portal)) this.portalSql.clear();
    this.portalSql.set(portal, sql);
  }

  /**
   * DEALLOCATE ALL or DISCARD ALL ran (the client is pinned by it): every
   * prepared statement of the server session is gone, this client's
   * included, as on a dedicated connection; its copies on other servers are
   * closed there too.
   */
  private forgetAllStatements(server: PooledServer): void {
    for (const st of this.statements.values()) this.doomElsewhere(st);
    this.statements.clear();
    this.statementBytes = 0;
    server.prepared.clear();
  }

  private addStatement(name: string, st: ClientStatement): void {
    this.statements.set(name, st);
    this.statementBytes += Buffer.byteLength(st.query) + st.paramTypes.length;
  }

  private removeStatement(name: string): ClientStatement | undefined {
    const st = this.statements.get(name);
    if (!st) return undefined;
    this.statements.delete(name);
    this.statementBytes -= Buffer.byteLength(st.query) + st.paramTypes.length;
    return st;
  }

  private closeStatement(name: string, server: PooledServer, out: Buffer[]): Translated {
    if (!this.statements.has(name) && this.pendingNames.has(name)) return WAIT;
    const st = this.removeStatement(name);
    if (!st) {
      server.queue.synthesize(CLOSE_COMPLETE);
      return;
    }
    this.pendingStarted(name);
    const wasHere = server.prepared.delete(st.serverName);
    st.servers.delete(server);
    this.doomElsewhere(st);
    server.queue.expect('close', {
      onDone: () => this.pendingEnded(name),
      onError: () => {
        // Skipped after an error: the statement lives on, for the client and here.
        if (!this.statements.has(name)) this.addStatement(name, st);
        if (wasHere) {
          server.prepared.add(st.serverName);
          st.servers.add(server);
        }
        this.pendingEnded(name);
      },
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
  private prepareOn(st: ClientStatement, server: PooledServer, out: Buffer[], forward: boolean, outcome: { onDone?: () => void; onError?: () => void } = {}): void {
    while (server.prepared.size >= Math.max(10, this.limits.serverPreparedStatementsMax)) {
      const oldest = server.prepared.values().next().value as string;
      server.prepared.delete(oldest);
      server.queue.expect('close', {
        forward: false,
        // Skipped after an error: it is still there.
        onError: () => server.prepared.add(oldest),
      });
      out.push(serializeTarget(FRONTEND_CLOSE, 'S', oldest));
    }
    for (const s of st.servers) if (s.state === 'closed') st.servers.delete(s);
    server.prepared.add(st.serverName);
    st.servers.add(server);
    server.queue.expect('parse', {
      forward,
      ...(outcome.onDone ? { onDone: outcome.onDone } : {}),
      onError: () => {
        server.prepared.delete(st.serverName);
        st.servers.delete(server);
        outcome.onError?.();
      },
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
    if (server.commitNotDurable) {
      // Never pass on a commit the storage quorum does not hold: what was
      // about to go out is dropped and the client learns its commit's
      // outcome is unknown (the writer has it, storage may not).
      this.toClient.length = 0;
      this.end({ kind: 'commit-not-durable' });
      return;
    }
    if (server.scanner.atBoundary) server.queue.flushSynthetic(this.collectForClient);
    // One write per server chunk: usually the chunk itself, untouched.
    this.flushToClient();
    if (this.commitSentAt !== null && server.queue.isEmpty && server.scanner.atBoundary) {
      this.pool.commitLatency.observe((performance.now() - this.commitSentAt) / 1000);
      this.commitSentAt = null;
    }
    // Reading the client again: replies caught up with a full pipeline, or arrived for a message that waits on them.
    let resume = false;
    if (this.pipelineFull && server.queue.length < this.limits.pipelineRequestsMax / 2) {
      this.pipelineFull = false;
      resume = true;
    }
    if (this.resumeWanted) {
      this.resumeWanted = false;
      this.waitingForReplies = false;
      resume = true;
    }
    if (resume) {
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
    // A server that ended with an ErrorResponse (FATAL) to this client told it why itself.
    const fatalSent = server !== null && server.lastMessageCode === BACKEND_ERROR && server.lastMessageOwner === this && server.scanner.atBoundary;
    this.end({ kind: 'server-lost', fatalSent });
  }

  private flushToClient(): void {
    if (this.toClient.length === 0) return;
    this.socket.write(this.toClient.length === 1 ? this.toClient[0]! : Buffer.concat(this.toClient));
    this.toClient.length = 0;
    if (this.clientOutputFull || this.socket.writableLength <= Math.max(this.limits.proxyWriteBufferBytesMax, this.socket.writableHighWaterMark)) return;
    // A slow reader: read neither it nor its server until it catches up.
    this.clientOutputFull = true;
    this.updateReading();
    const server = this.server;
    if (server) {
      this.pausedServer = server;
      server.pauseReading();
    }
    this.socket.once('drain', this.onClientDrain);
  }

  /** Between transactions, an unpinned client gives its server back. */
  private maybeDetach(): void {
    const server = this.server;
    if (!server || this.pinned || this.exchangeOpen || this.held || server.txStatus !== 0x49 || !server.queue.isEmpty || server.queue.skippingToSync || !server.scanner.atBoundary) return;
    if (this.pausedServer === server) {
      // The reply is whole; the client reads it at its own pace. release() resumes the server.
      this.pausedServer = null;
    }
    server.socket.off('drain', this.onServerDrain);
    this.waitingForServerDrain = false;
    this.server = null;
    this.cancels.attach(this.cancelKey, null);
    this.pool.release(server);
    this.updateReading();
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
      if (server.unnamedOwner === this.unnamedToken) server.unnamedOwner = null;
      if (!server.queue.isEmpty || server.queue.skippingToSync || !server.scanner.atBoundary || this.exchangeOpen || server.commitNotDurable) this.pool.discard(server);
      else this.pool.resetAndRelease(server, server.txStatus !== 0x49, this.pinned);
    }
    this.hooks.onEnd(how);
  }
}
