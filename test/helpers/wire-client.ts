// A PostgreSQL frontend at the level of single protocol messages, for tests
// that must send exact sequences (a Flush without a Sync, an Execute with a
// row limit, messages after an error) that drivers never expose. Speaks
// SCRAM-SHA-256 over plaintext or over a socket the test has set up (direct TLS).
import net from 'node:net';
import { ScramClientExchange } from '../../src/auth/scram-client.js';
import { FrameReader, type Frame } from '../../src/pgwire/frame-reader.js';
import { typedMessage, parseErrorFields, parseBackendKeyData, passwordMessage, saslInitialResponse } from '../../src/pgwire/messages.js';
import { serializeParse, serializeBind, serializeTarget, queryMessage } from '../../src/pgwire/extended.js';
import { serializeStartupMessage } from '../../src/pgwire/startup.js';

export interface WireMessage {
  readonly code: string;
  readonly body: Buffer;
}

export class WireClient {
  private readonly reader = new FrameReader('typed', 256 * 1024 * 1024);
  private readonly queue: WireMessage[] = [];
  private waiter: (() => void) | null = null;
  closed = false;
  processId = 0;
  secretKey = 0;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let f: Frame | null = this.reader.next(); f; f = this.reader.next()) this.queue.push({ code: String.fromCharCode(f.code!), body: Buffer.from(f.body) });
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Connects (or uses `socket`, already connected) and authenticates. */
  static async connect(opts: { port?: number; socket?: net.Socket; user: string; password: string; database?: string; params?: Record<string, string> }): Promise<WireClient> {
    const socket =
      opts.socket ??
      (await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(opts.port!, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      }));
    const c = new WireClient(socket);
    socket.write(serializeStartupMessage(new Map([['user', opts.user], ['database', opts.database ?? 'postgres'], ...Object.entries(opts.params ?? {})])));
    const scram = new ScramClientExchange(opts.password, 'wireclientnonce' + Math.random().toString(36).slice(2));
    for (;;) {
      const m = await c.next(10_000);
      if (m.code === 'E') throw new Error(`startup refused: ${parseErrorFields(m.body).get('M')}`);
      if (m.code === 'R') {
        const kind = m.body.readInt32BE(0);
        if (kind === 10) socket.write(saslInitialResponse('SCRAM-SHA-256', scram.clientFirst()));
        else if (kind === 11) socket.write(passwordMessage(scram.serverFirst(m.body.toString('utf8', 4)), false));
        else if (kind === 12) scram.serverFinal(m.body.toString('utf8', 4));
      }
      if (m.code === 'K') ({ processId: c.processId, secretKey: c.secretKey } = parseBackendKeyData(m.body));
      if (m.code === 'Z') return c;
    }
  }

  send(...messages: Buffer[]): void {
    this.socket.write(Buffer.concat(messages));
  }

  /** The next message; throws if none arrives in time or the socket closed. */
  async next(timeoutMs = 10_000): Promise<WireMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.queue.shift();
      if (m) return m;
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no message in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Messages up to and including the first with one of `codes`. */
  async until(codes: string, timeoutMs = 10_000): Promise<WireMessage[]> {
    const got: WireMessage[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      got.push(m);
      if (codes.includes(m.code)) return got;
    }
  }

  /** Whatever has arrived within `ms` (for checking that nothing more does). */
  async drain(ms: number): Promise<WireMessage[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.splice(0);
  }

  /** A simple query's rows (text) up to ReadyForQuery; throws on an error. */
  async query(sql: string): Promise<Array<Array<string | null>>> {
    this.send(queryMessage(sql));
    const rows: Array<Array<string | null>> = [];
    let error: string | null = null;
    for (const m of await this.until('Z')) {
      if (m.code === 'D') rows.push(dataRow(m.body));
      if (m.code === 'E') error = `${parseErrorFields(m.body).get('C')}: ${parseErrorFields(m.body).get('M')}`;
    }
    if (error) throw new Error(error);
    return rows;
  }

  close(): void {
    this.socket.end(typedMessage(0x58));
  }
}

export function dataRow(body: Buffer): Array<string | null> {
  const n = body.readInt16BE(0);
  const out: Array<string | null> = [];
  let at = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(at);
    at += 4;
    if (len < 0) out.push(null);
    else {
      out.push(body.toString('utf8', at, at + len));
      at += len;
    }
  }
  return out;
}

export const msg = {
  parse: (name: string, sql: string): Buffer => serializeParse(name, sql, Buffer.from([0, 0])),
  /** Bind with no parameters, text results. */
  bind: (portal: string, statement: string): Buffer => serializeBind(portal, statement, Buffer.alloc(6)),
  execute: (portal: string, maxRows = 0): Buffer => {
    const name = Buffer.from(portal + '\0', 'utf8');
    const limit = Buffer.alloc(4);
    limit.writeInt32BE(maxRows);
    return typedMessage(0x45, name, limit);
  },
  describeStatement: (name: string): Buffer => serializeTarget(0x44, 'S', name),
  closeStatement: (name: string): Buffer => serializeTarget(0x43, 'S', name),
  sync: (): Buffer => typedMessage(0x53),
  flush: (): Buffer => typedMessage(0x48),
  query: queryMessage,
};

export function errorCodeOf(m: WireMessage): string | undefined {
  return m.code === 'E' || m.code === 'N' ? parseErrorFields(m.body).get('C') : undefined;
}
