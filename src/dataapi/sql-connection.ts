// The Data API's own PostgreSQL client: one session on an instance's private
// Unix socket, running extended-protocol statements with text results.
//
// Statements are pipelined: several callers may have statements in flight on
// one connection at once. Everything submitted during one turn of the event
// loop goes out in one write, and the answers come back in order, one Sync
// per statement, so an error in one statement never touches another. A
// result larger than the caller's bound is not kept: its rows are counted
// and dropped as they arrive, and the statement fails once it is over.
import type net from 'node:net';
import { ProtocolViolation } from '../pgwire/frame-reader.js';
import { isSyncRepCancelled, parseDataRow, parseErrorFields, parseRowColumns, type RowColumn } from '../pgwire/messages.js';
import { openServerSession } from '../proxy/server-connection.js';

/** A column of a result, named as node-postgres names them. */
export type ColumnInfo = RowColumn;

export interface StatementResult {
  readonly fields: readonly ColumnInfo[];
  readonly rows: ReadonlyArray<ReadonlyArray<string | null>>;
  /** From the command tag: rows inserted, updated, deleted, selected. */
  readonly rowCount: number;
}

/** A parameter value: text, SQL NULL, a boolean (sent as text) or bytes (sent in binary). */
export type ParameterValue = string | null | boolean | Buffer;

/** PostgreSQL answered the statement with an ErrorResponse. */
export class DatabaseError extends Error {
  override readonly name = 'DatabaseError';
  constructor(
    readonly code: string,
    readonly severity: string,
    message: string,
    /** The error's cursor position in the statement (1-based), when PostgreSQL gives one. */
    readonly position: number | null = null,
  ) {
    super(message);
  }
}

/** The session ended before the statement's answer came back. */
export class ConnectionLost extends Error {
  override readonly name = 'ConnectionLost';
}

/** The result was larger than the caller allowed; the statement ran to its end. */
export class ResultTooLarge extends Error {
  override readonly name = 'ResultTooLarge';
  constructor(readonly limitBytes: number) {
    super(`the result is larger than ${limitBytes} bytes`);
  }
}

export interface StatementOptions {
  /** Rows beyond this many bytes are not kept, and the statement fails with ResultTooLarge. */
  readonly resultBytesMax: number;
  /** Nothing else may be pipelined behind this statement while it is in flight. */
  readonly solo?: boolean;
  /** Told how long the statement ran, from its turn on the connection to its end, in ms. */
  readonly timed?: (elapsedMs: number) => void;
}

interface Pending {
  readonly resolve: (r: StatementResult) => void;
  readonly reject: (e: Error) => void;
  readonly resultBytesMax: number;
  readonly solo: boolean;
  readonly timed: ((elapsedMs: number) => void) | undefined;
  fields: ColumnInfo[];
  rows: Array<Array<string | null>>;
  resultBytes: number;
  tooLarge: boolean;
  rowCount: number;
  error: DatabaseError | null;
}

const FRAME_HEADER_BYTES = 5;
/** Any frame other than a DataRow is small; a bigger one is not PostgreSQL talking. */
const CONTROL_FRAME_BYTES_MAX = 1024 * 1024;
const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);
const DESCRIBE_PORTAL = Buffer.from([0x44, 0, 0, 0, 6, 0x50, 0]);
const EXECUTE_ALL = Buffer.from([0x45, 0, 0, 0, 9, 0, 0, 0, 0, 0]);

export class SqlConnection {
  private readonly inFlight: Pending[] = [];
  private outgoing: Buffer[] = [];
  private flushScheduled = false;
  /** When the oldest statement in flight was sent (ms since epoch), or 0. */
  private headSentAt = 0;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  /** Bytes of an oversized DataRow still to be skipped. */
  private skipping = 0;
  private lost: Error | null = null;
  private solos = 0;
  private idleWaiters: Array<() => void> = [];
  /** Transaction status from the last ReadyForQuery: I (idle), T (in a transaction), E (failed transaction). */
  transactionStatus: 'I' | 'T' | 'E' = 'I';
  /** Last time a statement finished or was submitted (ms since epoch). */
  lastUsedAt = Date.now();

  private constructor(
    private readonly socket: net.Socket,
    readonly processId: number,
    private readonly onSettled: () => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.fail(new ConnectionLost(`the database connection failed: ${err.message}`)));
    socket.on('close', () => this.fail(new ConnectionLost('the database closed the connection')));
    socket.resume();
  }

  /**
   * Opens a session as `user` on `database`. `onSettled` runs after every
   * statement that finishes, and once when the connection is lost.
   */
  static async open(socketPath: string, params: ReadonlyMap<string, string>, timeoutMs: number, onSettled: () => void): Promise<SqlConnection> {
    const session = await openServerSession(socketPath, params, timeoutMs);
    const connection = new SqlConnection(session.socket, session.processId, onSettled);
    if (session.leftover.length) connection.receive(session.leftover);
    return connection;
  }

  get statementsInFlight(): number {
    return this.inFlight.length;
  }

  /** Statements are waiting to go out at the end of this turn of the event loop. */
  get collecting(): boolean {
    return this.flushScheduled && this.lost === null;
  }

  /** Statements in flight that nothing may be pipelined behind. */
  get soloStatementsInFlight(): number {
    return this.solos;
  }

  /** How long the oldest statement in flight has been running, in ms (0 when none). */
  headAgeMs(now: number): number {
    return this.inFlight.length ? now - this.headSentAt : 0;
  }

  get closed(): boolean {
    return this.lost !== null;
  }

  /** Runs one statement; `$1…$n` in `text` take `values` in order. */
  execute(text: string, values: readonly ParameterValue[], options: StatementOptions): Promise<StatementResult> {
    if (this.lost) return Promise.reject(this.lost);
    return new Promise((resolve, reject) => {
      if (this.inFlight.length === 0) this.headSentAt = Date.now();
      const solo = options.solo === true;
      if (solo) this.solos++;
      this.inFlight.push({ resolve, reject, resultBytesMax: options.resultBytesMax, solo, timed: options.timed, fields: [], rows: [], resultBytes: 0, tooLarge: false, rowCount: 0, error: null });
      this.outgoing.push(parseMessage(text), bindMessage(values), DESCRIBE_PORTAL, EXECUTE_ALL, SYNC);
      this.lastUsedAt = Date.now();
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Resolves once no statement is in flight (or the connection is gone). */
  idle(): Promise<void> {
    if (this.inFlight.length === 0 || this.lost) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.fail(new ConnectionLost('the connection was closed'));
  }

  private wakeIdleWaiters(): void {
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.lost || this.outgoing.length === 0) return;
    const out = this.outgoing.length === 1 ? this.outgoing[0]! : Buffer.concat(this.outgoing);
    this.outgoing = [];
    this.socket.write(out);
  }

  private fail(err: Error): void {
    if (this.lost) return;
    this.lost = err;
    this.socket.destroy();
    for (const p of this.inFlight.splice(0)) p.reject(err);
    this.solos = 0;
    this.outgoing = [];
    this.wakeIdleWaiters();
    this.onSettled();
  }

  private receive(chunk: Buffer): void {
    if (this.lost) return;
    try {
      let data = chunk;
      if (this.skipping > 0) {
        const skipped = Math.min(this.skipping, data.length);
        this.skipping -= skipped;
        data = data.subarray(skipped);
      }
      if (data.length === 0) return;
      this.buffered.push(data);
      this.bufferedBytes += data.length;
      this.drainFrames();
    } catch (err) {
      this.fail(new ConnectionLost(`the database sent an invalid message: ${(err as Error).message}`));
    }
  }

  private drainFrames(): void {
    while (this.skipping === 0 && this.bufferedBytes >= FRAME_HEADER_BYTES) {
      const head = this.buffered[0]!.length >= FRAME_HEADER_BYTES ? this.buffered[0]! : this.joinBuffered();
      const code = head[0]!;
      const length = head.readInt32BE(1);
      if (length < 4) throw new ProtocolViolation(`invalid message length ${length}`);
      const total = 1 + length;
      const current = this.inFlight[0];
      if (code === 0x44 && current && total > current.resultBytesMax) {
        // A row bigger than the whole allowed result: skip it as it streams in.
        current.tooLarge = true;
        current.rows = [];
        const available = Math.min(total, this.bufferedBytes);
        this.take(available);
        this.skipping = total - available;
        continue;
      }
      if (code !== 0x44 && length > CONTROL_FRAME_BYTES_MAX) throw new ProtocolViolation(`message ${String.fromCharCode(code)} of ${length} bytes`);
      if (this.bufferedBytes < total) return;
      const frame = this.take(total);
      this.handle(code, frame.subarray(FRAME_HEADER_BYTES));
    }
  }

  private joinBuffered(): Buffer {
    const all = Buffer.concat(this.buffered, this.bufferedBytes);
    this.buffered = [all];
    return all;
  }

  /** Removes the first n buffered bytes and returns them (a view when they are in one chunk). */
  private take(n: number): Buffer {
    let first = this.buffered[0]!;
    if (first.length < n) first = this.joinBuffered();
    const out = first.subarray(0, n);
    if (first.length === n) this.buffered.shift();
    else this.buffered[0] = first.subarray(n);
    this.bufferedBytes -= n;
    return out;
  }

  private handle(code: number, body: Buffer): void {
    const p = this.inFlight[0];
    switch (code) {
      case 0x31: // ParseComplete
      case 0x32: // BindComplete
      case 0x6e: // NoData
      case 0x49: // EmptyQueryResponse
      case 0x4e: // NoticeResponse
        // A commit that stopped waiting for the storage quorum is not acknowledged as one.
        if (p && isSyncRepCancelled(body)) p.error = new DatabaseError('40003', 'ERROR', 'the outcome of this transaction is unknown: its commit stopped waiting for the storage quorum, so only the writer holds it');
        return;
      case 0x53: // ParameterStatus
      case 0x41: // NotificationResponse
      case 0x64: // CopyData (COPY TO STDOUT: not returned)
      case 0x63: // CopyDone
        return;
      case 0x54: // RowDescription
        if (p) p.fields = parseRowColumns(body);
        return;
      case 0x44: // DataRow
        if (!p) throw new ProtocolViolation('a row with no statement in flight');
        p.resultBytes += body.length;
        if (p.resultBytes > p.resultBytesMax) p.tooLarge = true;
        if (p.tooLarge) p.rows = [];
        else p.rows.push(parseDataRow(body));
        return;
      case 0x43: // CommandComplete
        if (p) p.rowCount = rowCountOf(body);
        return;
      case 0x45: // ErrorResponse
        if (p) p.error = errorOf(body);
        return;
      case 0x47: // CopyInResponse: no data to give; fail the COPY, then resynchronise.
        this.socket.write(Buffer.concat([copyFail('COPY FROM STDIN is not supported through the Data API'), SYNC]));
        return;
      case 0x48: // CopyOutResponse
        return;
      case 0x5a: {
        // ReadyForQuery: the statement at the head is done.
        const status = String.fromCharCode(body[0] ?? 0x49);
        this.transactionStatus = status === 'T' || status === 'E' ? status : 'I';
        const done = this.inFlight.shift();
        if (!done) throw new ProtocolViolation('ReadyForQuery with no statement in flight');
        const now = Date.now();
        done.timed?.(now - this.headSentAt);
        if (done.solo) this.solos--;
        this.headSentAt = now;
        this.lastUsedAt = now;
        if (done.error) done.reject(done.error);
        else if (done.tooLarge) done.reject(new ResultTooLarge(done.resultBytesMax));
        else done.resolve({ fields: done.fields, rows: done.rows, rowCount: done.rowCount });
        if (this.inFlight.length === 0) this.wakeIdleWaiters();
        this.onSettled();
        return;
      }
      default:
        throw new ProtocolViolation(`unexpected message ${String.fromCharCode(code)}`);
    }
  }
}

function parseMessage(text: string): Buffer {
  const textBytes = Buffer.byteLength(text);
  // 'P', length, unnamed statement (one NUL), query + NUL, zero parameter types.
  const length = 4 + 1 + textBytes + 1 + 2;
  const out = Buffer.allocUnsafe(1 + length);
  out[0] = 0x50;
  out.writeInt32BE(length, 1);
  out[5] = 0;
  out.write(text, 6, 'utf8');
  out[6 + textBytes] = 0;
  out.writeInt16BE(0, 7 + textBytes);
  return out;
}

function bindMessage(values: readonly ParameterValue[]): Buffer {
  const encoded = values.map((v) => (v === null ? null : Buffer.isBuffer(v) ? v : Buffer.from(typeof v === 'boolean' ? (v ? 'true' : 'false') : v, 'utf8')));
  // Length word, portal and statement names, format codes, values, result format codes.
  let length = 4 + 1 + 1 + 2 + 2 * values.length + 2 + 2 + 2;
  for (const e of encoded) length += 4 + (e ? e.length : 0);
  const out = Buffer.allocUnsafe(1 + length);
  out[0] = 0x42;
  out.writeInt32BE(length, 1);
  out[5] = 0; // unnamed portal
  out[6] = 0; // unnamed statement
  let at = out.writeInt16BE(values.length, 7);
  for (const v of values) at = out.writeInt16BE(Buffer.isBuffer(v) ? 1 : 0, at);
  at = out.writeInt16BE(encoded.length, at);
  for (const e of encoded) {
    if (e === null) at = out.writeInt32BE(-1, at);
    else {
      at = out.writeInt32BE(e.length, at);
      at += e.copy(out, at);
    }
  }
  at = out.writeInt16BE(1, at); // one result format code…
  out.writeInt16BE(0, at); // …text for every column
  return out;
}

function copyFail(message: string): Buffer {
  const text = Buffer.from(`${message}\0`, 'utf8');
  const out = Buffer.allocUnsafe(5 + text.length);
  out[0] = 0x66;
  out.writeInt32BE(4 + text.length, 1);
  text.copy(out, 5);
  return out;
}


/** "INSERT 0 3", "UPDATE 3", "SELECT 3" → 3; tags without a count → 0. */
function rowCountOf(body: Buffer): number {
  const tag = body.toString('utf8', 0, Math.max(0, body.length - 1));
  const m = / (\d+)$/.exec(tag);
  return m ? Number(m[1]) : 0;
}

function errorOf(body: Buffer): DatabaseError {
  const fields = parseErrorFields(body);
  const position = fields.get('P');
  return new DatabaseError(fields.get('C') ?? 'XX000', fields.get('S') ?? 'ERROR', fields.get('M') ?? 'error', position ? Number(position) : null);
}
