// Borealis's own client for PostgreSQL's physical-replication connection:
// startup with replication=true, SCRAM (or trust), simple replication
// commands (IDENTIFY_SYSTEM, SHOW, TIMELINE_HISTORY, CREATE_REPLICATION_SLOT),
// START_REPLICATION in CopyBoth mode and BASE_BACKUP in CopyOut mode.
// https://www.postgresql.org/docs/17/protocol-replication.html
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { ScramClientExchange } from '../auth/scram-client.js';
import { Auth, Backend } from '../pgwire/codes.js';
import { FrameReader, ProtocolViolation, type Frame } from '../pgwire/frame-reader.js';
import { parseAuthentication, parseDataRow, parseErrorFields, parseRowDescription, passwordMessage, saslInitialResponse } from '../pgwire/messages.js';
import { parseLsn } from '../pgwire/replication.js';
import { COPY_DONE } from '../pgwire/replication.js';
import { queryMessage } from '../pgwire/extended.js';
import { serializeStartupMessage } from '../pgwire/startup.js';

export interface ReplicationTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly applicationName: string;
}

/** A walsender's CopyData can carry up to a WAL segment's worth; bound it. */
const REPLICATION_FRAME_BYTES_MAX = 64 * 1024 * 1024;

const CopyBothResponse = 0x57; // 'W'
const CopyOutResponse = 0x48; // 'H'
const CopyData = 0x64; // 'd'
const CopyDone = 0x63; // 'c'
const RowDescription = 0x54; // 'T'
const DataRow = 0x44; // 'D'
const CommandComplete = 0x43; // 'C'

export class ReplicationError extends Error {
  override readonly name = 'ReplicationError';
  constructor(
    message: string,
    readonly sqlstate: string | null,
  ) {
    super(message);
  }
}

export interface ResultSet {
  readonly columns: string[];
  readonly rows: Array<Array<string | null>>;
}

export interface StreamEnd {
  /** Set when the server ended the timeline it was streaming. */
  readonly nextTimeline: number | null;
  readonly nextStart: bigint | null;
}

export interface BaseBackupSink {
  onArchive(name: string): void;
  onData(chunk: Buffer): void;
}

export interface BaseBackupResult {
  readonly startLsn: bigint;
  readonly endLsn: bigint;
  readonly timeline: number;
}

export class ReplicationClient {
  private readonly reader = new FrameReader('typed', REPLICATION_FRAME_BYTES_MAX);
  private handler: ((frame: Frame) => void) | null = null;
  private failWith: ((err: Error) => void) | null = null;
  private closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      try {
        for (let frame = this.reader.next(); frame && !this.closed; frame = this.reader.next()) this.dispatch(frame);
      } catch (err) {
        this.fail(err as Error);
      }
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new ReplicationError('connection to the writer closed', null)));
  }

  static async connect(target: ReplicationTarget, timeoutMs: number): Promise<ReplicationClient> {
    // A host that is a directory means the server's Unix socket in it, as libpq has it.
    const socket = target.host.startsWith('/') ? net.connect(`${target.host}/.s.PGSQL.${target.port}`) : net.connect(target.port, target.host);
    const client = new ReplicationClient(socket);
    const timer = setTimeout(() => client.fail(new ReplicationError(`startup did not finish within ${timeoutMs} ms`, null)), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      await client.startup(target);
      return client;
    } catch (err) {
      client.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.fail(new ReplicationError('connection closed', null));
  }

  send(message: Buffer): void {
    if (!this.closed) this.socket.write(message);
  }

  private dispatch(frame: Frame): void {
    if (frame.code === Backend.NoticeResponse || frame.code === Backend.ParameterStatus) return;
    if (!this.handler) throw new ProtocolViolation(`unexpected message '${String.fromCharCode(frame.code ?? 0)}' from the writer`);
    this.handler(frame);
  }

  private fail(err: Error): void {
    const f = this.failWith;
    this.failWith = null;
    this.handler = null;
    if (!this.closed) {
      this.closed = true;
      this.socket.destroy();
    }
    f?.(err);
  }

  /** Runs one exchange: handler gets frames until it calls done or fails. */
  private exchange<T>(first: Buffer | null, handle: (frame: Frame, done: (value: T) => void) => void): Promise<T> {
    if (this.closed) return Promise.reject(new ReplicationError('connection closed', null));
    if (this.handler) return Promise.reject(new Error('replication client: one exchange at a time'));
    return new Promise<T>((resolve, reject) => {
      let error: ReplicationError | null = null;
      const done = (value: T): void => {
        this.handler = null;
        this.failWith = null;
        if (error) reject(error);
        else resolve(value);
      };
      this.failWith = reject;
      this.handler = (frame) => {
        if (frame.code === Backend.ErrorResponse) {
          const f = parseErrorFields(frame.body);
          error = new ReplicationError(f.get('M') ?? 'writer reported an error', f.get('C') ?? null);
          return;
        }
        // After an error the server still ends with ReadyForQuery.
        if (error && frame.code !== Backend.ReadyForQuery) return;
        if (error && frame.code === Backend.ReadyForQuery) {
          done(undefined as T);
          return;
        }
        handle(frame, done);
      };
      if (first) this.socket.write(first);
    });
  }

  private startup(target: ReplicationTarget): Promise<void> {
    const params = new Map([
      ['user', target.user],
      ['database', 'replication'],
      ['replication', 'true'],
      ['application_name', target.applicationName],
    ]);
    let scram: ScramClientExchange | null = null;
    return this.exchange<void>(serializeStartupMessage(params), (frame, done) => {
      switch (frame.code) {
        case Backend.Authentication: {
          const auth = parseAuthentication(frame.body);
          if (auth.code === Auth.Ok) return;
          if (auth.code === Auth.CleartextPassword) return void this.socket.write(passwordMessage(target.password, true));
          if (auth.code === Auth.SASL) {
            const mechanisms = auth.data.toString('utf8').split('\0');
            if (!mechanisms.includes('SCRAM-SHA-256')) throw new ProtocolViolation('writer offers no SCRAM-SHA-256');
            scram = new ScramClientExchange(target.password, randomBytes(18).toString('base64'));
            return void this.socket.write(saslInitialResponse('SCRAM-SHA-256', scram.clientFirst()));
          }
          if (auth.code === Auth.SASLContinue && scram) return void this.socket.write(passwordMessage(scram.serverFirst(auth.data.toString('utf8')), false));
          if (auth.code === Auth.SASLFinal && scram) return void scram.serverFinal(auth.data.toString('utf8'));
          throw new ProtocolViolation(`writer asked for unsupported authentication method ${auth.code}`);
        }
        case Backend.BackendKeyData:
          return;
        case Backend.ReadyForQuery:
          return done();
        default:
          throw new ProtocolViolation(`unexpected message '${String.fromCharCode(frame.code ?? 0)}' during startup`);
      }
    });
  }

  /** A simple-query replication command; its result sets in order. */
  query(sql: string): Promise<ResultSet[]> {
    const sets: ResultSet[] = [];
    let current: ResultSet | null = null;
    return this.exchange<ResultSet[]>(queryMessage(sql), (frame, done) => {
      if (frame.code === RowDescription) sets.push((current = { columns: parseRowDescription(frame.body), rows: [] }));
      else if (frame.code === DataRow) {
        if (!current) throw new ProtocolViolation('DataRow before RowDescription');
        current.rows.push(parseDataRow(frame.body));
      } else if (frame.code === CommandComplete) current = null;
      else if (frame.code === Backend.ReadyForQuery) done(sets);
    });
  }

  /**
   * START_REPLICATION: each CopyData payload goes to onMessage, synchronously
   * and in order. Resolves when the server ends the stream (end of its
   * timeline) or rejects when the connection fails.
   */
  startReplication(sql: string, onMessage: (payload: Buffer) => void): Promise<StreamEnd> {
    let phase: 'starting' | 'copy' | 'after' = 'starting';
    let next: StreamEnd = { nextTimeline: null, nextStart: null };
    return this.exchange<StreamEnd>(queryMessage(sql), (frame, done) => {
      if (phase === 'starting') {
        if (frame.code !== CopyBothResponse) throw new ProtocolViolation('START_REPLICATION did not enter CopyBoth mode');
        phase = 'copy';
      } else if (phase === 'copy') {
        if (frame.code === CopyData) onMessage(frame.body);
        else if (frame.code === CopyDone) {
          this.socket.write(COPY_DONE);
          phase = 'after';
        } else throw new ProtocolViolation(`unexpected message '${String.fromCharCode(frame.code ?? 0)}' while streaming`);
      } else if (frame.code === DataRow) {
        const [tli, start] = parseDataRow(frame.body);
        next = { nextTimeline: Number(tli), nextStart: start ? parseLsn(start) : null };
      } else if (frame.code === Backend.ReadyForQuery) done(next);
    });
  }

  /** BASE_BACKUP (PostgreSQL 15+ form): archives go to the sink as they arrive. */
  baseBackup(sql: string, sink: BaseBackupSink): Promise<BaseBackupResult> {
    let resultSet = 0;
    let startLsn = 0n;
    let timeline = 0;
    let endLsn = 0n;
    return this.exchange<BaseBackupResult>(queryMessage(sql), (frame, done) => {
      switch (frame.code) {
        case RowDescription:
          resultSet++;
          return;
        case DataRow: {
          const row = parseDataRow(frame.body);
          if (resultSet === 1) {
            startLsn = parseLsn(row[0] ?? '');
            timeline = Number(row[1]);
          } else if (resultSet === 3) endLsn = parseLsn(row[0] ?? '');
          return;
        }
        case CopyOutResponse:
          return;
        case CopyData: {
          const kind = frame.body[0];
          if (kind === 0x6e /* 'n' */) {
            const end = frame.body.indexOf(0, 1);
            sink.onArchive(frame.body.toString('utf8', 1, end < 0 ? frame.body.length : end));
          } else if (kind === 0x64 /* 'd' */) sink.onData(frame.body.subarray(1));
          else if (kind !== 0x70 /* 'p' progress */ && kind !== 0x6d /* 'm' manifest */) throw new ProtocolViolation('unknown BASE_BACKUP archive message');
          return;
        }
        case CopyDone:
        case CommandComplete:
          return;
        case Backend.ReadyForQuery:
          if (timeline < 1 || endLsn < startLsn) throw new ProtocolViolation('BASE_BACKUP ended without its positions');
          return done({ startLsn, endLsn, timeline });
        default:
          throw new ProtocolViolation(`unexpected message '${String.fromCharCode(frame.code ?? 0)}' during BASE_BACKUP`);
      }
    });
  }
}
