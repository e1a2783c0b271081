// A client's session after authentication, in transaction pooling: the
// client holds a server only while a transaction (or an extended-protocol
// pipeline) is open, or for good once its session state pins it. Named
// prepared statements are the client's own: they are renamed per query text
// and prepared on whichever server the client gets, as needed.
import { createHash } from 'node:crypto';
import type net from 'node:net';
import { Frontend } from '../pgwire/codes.js';
import { CLOSE_COMPLETE, PARSE_COMPLETE, parseBind, parseParse, parseTarget, queryMessage, serializeBind, serializeParse, serializeTarget } from '../pgwire/extended.js';
import { ProtocolViolation, type Frame, type FrameReader } from '../pgwire/frame-reader.js';
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
}

export type SessionEnd =
  | { readonly kind: 'client-left' }
  | { readonly kind: 'server-lost' }
  | { readonly kind: 'acquire-failed'; readonly error: unknown }
  | { readonly kind: 'protocol-violation'; readonly detail: string }
  | { readonly kind: 'message-too-large'; readonly detail: string };

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
  /** When a COMMIT went to the server, until its ReadyForQuery (performance.now() ms). */
  private commitSentAt: number | null = null;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);

  constructor(
    private readonly socket: net.Socket,
    private readonly reader: FrameReader,
    private readonly pool: ServerPool,
    private readonly startupParams: ReadonlyMap<string, string>,
    private readonly cancelKey: ClientKey,
    private readonly cancels: CancelRegistry,
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

  private process(): void {
    if (this.ended) return;
    try {
      const out: Buffer[] = [];
      for (;;) {
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
        this.translate(frame, server, out);
      }
      const server = this.server;
      if (server) {
        this.flushToServer(out);
        server.queue.flushSynthetic((b) => this.toClient.push(b));
        this.flushToClient();
      }
    } catch (err) {
      if (err instanceof ProtocolViolation) {
        const tooLarge = /exceeds the limit/.test(err.message);
        this.end(tooLarge ? { kind: 'message-too-large', detail: err.message } : { kind: 'protocol-violation', detail: err.message });
      } else throw err;
    }
  }

  private flushToServer(out: Buffer[]): void {
    if (out.length === 0 || !this.server) return;
    this.server.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    out.length = 0;
  }

  private acquire(): void {
    if (this.acquiring) return;
    this.acquiring = true;
    this.socket.pause();
    this.pool.acquire().then(
      (server) => {
        this.acquiring = false;
        if (this.ended) return this.pool.release(server);
        this.attach(server);
        this.socket.resume();
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
    // Align the server with the client's startup parameters, quietly.
    const sets: string[] = [];
    for (const [name, value] of this.startupParams) {
      if (SYNCED_PARAMS.has(name) && server.params.get(name) !== value) sets.push(`SET ${name} TO '${value.replace(/'/g, "''")}'`);
    }
    if (sets.length > 0) {
      server.queue.expect('query', false);
      server.socket.write(queryMessage(sets.join('; ')));
    }
  }

  /** Rewrites one client message for the attached server. */
  private translate(frame: Frame, server: PooledServer, out: Buffer[]): void {
    switch (frame.code) {
      case Frontend.Query: {
        const sql = frame.body.toString('utf8', 0, Math.max(0, frame.body.length - 1));
        this.pin(pinReasons(sql));
        if (COMMIT.test(sql)) this.commitSentAt = performance.now();
        server.queue.expect('query');
        out.push(frame.raw);
        return;
      }
      case FRONTEND_PARSE: {
        const p = parseParse(frame.body);
        this.pin(pinReasons(p.query));
        if (COMMIT.test(p.query)) this.commitSentAt = performance.now();
        if (p.statement === '') {
          server.queue.expect('parse');
          out.push(frame.raw);
          return;
        }
        const st: ClientStatement = { serverName: serverStatementName(p.query, p.paramTypes), query: p.query, paramTypes: p.paramTypes };
        this.statements.set(p.statement, st);
        if (server.prepared.has(st.serverName)) {
          server.queue.synthesize(PARSE_COMPLETE);
        } else {
          server.prepared.add(st.serverName);
          server.queue.expect('parse', true, () => server.prepared.delete(st.serverName));
          out.push(serializeParse(st.serverName, st.query, st.paramTypes));
        }
        return;
      }
      case FRONTEND_BIND: {
        const b = parseBind(frame.body);
        const st = b.statement === '' ? undefined : this.statements.get(b.statement);
        if (st && COMMIT.test(st.query)) this.commitSentAt = performance.now();
        if (st) {
          this.ensurePrepared(st, server, out);
          out.push(serializeBind(b.portal, st.serverName, b.rest));
        } else out.push(frame.raw); // unnamed, or unknown: the server answers
        server.queue.expect('bind');
        return;
      }
      case FRONTEND_DESCRIBE: {
        const t = parseTarget(frame.body);
        const st = t.target === 'S' && t.name !== '' ? this.statements.get(t.name) : undefined;
        if (st) {
          this.ensurePrepared(st, server, out);
          out.push(serializeTarget(FRONTEND_DESCRIBE, 'S', st.serverName));
        } else out.push(frame.raw);
        server.queue.expect('describe');
        return;
      }
      case FRONTEND_CLOSE: {
        const t = parseTarget(frame.body);
        if (t.target === 'S' && t.name !== '') {
          // The server keeps it for other clients; this client forgets it.
          this.statements.delete(t.name);
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
      case FRONTEND_SYNC:
        server.queue.expect('sync');
        out.push(frame.raw);
        return;
      case FRONTEND_FUNCTION_CALL:
        server.queue.expect('function-call');
        out.push(frame.raw);
        return;
      case Frontend.Password:
        throw new ProtocolViolation('unexpected password message after authentication');
      default:
        // Flush, CopyData, CopyDone, CopyFail: no reply of their own.
        out.push(frame.raw);
    }
  }

  /** Prepares a client's statement on this server if it lacks it. */
  private ensurePrepared(st: ClientStatement, server: PooledServer, out: Buffer[]): void {
    if (server.prepared.has(st.serverName)) return;
    server.prepared.add(st.serverName);
    server.queue.expect('parse', false, () => server.prepared.delete(st.serverName));
    out.push(serializeParse(st.serverName, st.query, st.paramTypes));
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
    this.maybeDetach();
  }

  private readonly collectForClient = (bytes: Buffer): void => {
    this.toClient.push(bytes);
  };

  onServerClosed(): void {
    this.server = null;
    this.end({ kind: 'server-lost' });
  }

  private flushToClient(): void {
    if (this.toClient.length === 0) return;
    this.socket.write(this.toClient.length === 1 ? this.toClient[0]! : Buffer.concat(this.toClient));
    this.toClient.length = 0;
  }

  /** Between transactions, an unpinned client gives its server back. */
  private maybeDetach(): void {
    const server = this.server;
    if (!server || this.pinned || server.txStatus !== 0x49 || !server.queue.isEmpty || !server.scanner.atBoundary) return;
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
    const server = this.server;
    this.server = null;
    if (server && server.state !== 'closed') {
      server.owner = null;
      if (!server.queue.isEmpty || !server.scanner.atBoundary) this.pool.discard(server);
      else this.pool.resetAndRelease(server, server.txStatus !== 0x49, this.pinned);
    }
    this.hooks.onEnd(how);
  }
}

/** The server-side name of a statement: the same text and types share one. */
function serverStatementName(query: string, paramTypes: Buffer): string {
  return 'borealis_' + createHash('sha1').update(query).update(paramTypes).digest('base64url').slice(0, 22);
}
