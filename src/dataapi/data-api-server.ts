// The RDS Data API over HTTP (restJson1): ExecuteStatement, BatchExecuteStatement,
// BeginTransaction, CommitTransaction, RollbackTransaction; requests signed
// with SigV4 for service rds-data, credentials from Borealis's secret store.
// https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/Welcome.html
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { verifyRequestSignature, type RequestSignatureFailure } from '../auth/sigv4.js';
import { pinReasons } from '../pgwire/session-state.js';
import { ServerStartupError } from '../proxy/server-connection.js';
import type { Logger } from '../util/logger.js';
import { readBounded } from '../util/read-bounded.js';
import { listenOn } from '../util/listen.js';
import { ConnectionSet, ConnectionWaitTimeout } from './connection-set.js';
import { DataApiError } from './errors.js';
import { bindParameter, jsonValue, ParameterError, toField, typeInfo, type Field, type ResultOptions } from './fields.js';
import { parseJson, stringifyJson } from './json.js';
import { rewriteNamedParameters } from './named-params.js';
import { ConnectionLost, DatabaseError, ResultTooLarge, SqlConnection, type ColumnInfo, type ParameterValue, type StatementOptions, type StatementResult } from './sql-connection.js';

export interface DataApiDirectory {
  /** The cluster an ARN names (arn:aws:rds:<region>:<account>:cluster:<name>), or null. */
  clusterFromArn(arn: string): string | null;
  dataApiEnabled(cluster: string): boolean;
  /** `dbname`: the secret's database, used when a call names none (as AWS does). */
  secret(arn: string): { cluster: string; username: string; password: string; dbname?: string } | null;
  /** Whether the password is the role's, as the cluster's pg_authid has it now (its last-known row while paused). */
  passwordMatches(cluster: string, username: string, password: string): Promise<boolean>;
  /** Resumes a paused writer; resolves its socket, or null at the deadline. */
  awaitWriterSocket(cluster: string, timeoutMs: number): Promise<{ socketDir: string; port: number } | null>;
  accessKeySecret(accessKeyId: string): string | null;
  /** A request is using the cluster's writer (+1) or done (-1); counts as a connection. */
  activity(cluster: string, delta: 1 | -1): void;
}

export interface DataApiLimits {
  readonly requestBytesMax: number;
  readonly responseBytesMax: number;
  readonly statementTimeoutMs: number;
  readonly transactionIdleMs: number;
  readonly transactionMaxMs: number;
  readonly resumeWaitMs: number;
  readonly poolSizeMax: number;
}

interface OpenTransaction {
  readonly connection: SqlConnection;
  readonly set: ConnectionSet;
  readonly cluster: string;
  readonly secretArn: string;
  readonly startedAt: number;
  lastUsedAt: number;
  busy: boolean;
  /** A statement in it may have left session state: the connection is not reused. */
  sessionChanged: boolean;
}

const CLOCK_SKEW_MS = 5 * 60_000;
/** Connecting to the instance's private socket takes milliseconds; this is a safety net. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A shared connection closes after this long without a statement. */
const CONNECTION_IDLE_MS = 10_000;
/** Autocommit statements queued on one shared connection at most. */
const PIPELINE_DEPTH_MAX = 16;
/** A shared connection whose current statement has run this long takes no more behind it. */
const PIPELINE_HEAD_AGE_MAX_MS = 20;
/** A statement whose recent runs averaged at most this long may be pipelined. */
const QUICK_STATEMENT_MS = 10;
/** Statement texts whose running time is remembered, and the longest text remembered (longer ones always run alone). */
const STATEMENT_TIMES_MAX = 10_000;
const STATEMENT_TEXT_TIMED_MAX = 4_096;
/** Statements that can run on a shared connection: they start with one of these words… */
const PLAIN_STATEMENT = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*(?:[^*]|\*(?!\/))*\*\/)*(?:select|insert|update|delete|with|values|table)\b/i;
const SIGNATURE_ERRORS: Record<RequestSignatureFailure, [ConstructorParameters<typeof DataApiError>[0], string]> = {
  missing: ['MissingAuthenticationTokenException', 'Missing Authentication Token'],
  malformed: ['InvalidSignatureException', 'The request signature is malformed.'],
  'wrong-service': ['InvalidSignatureException', 'Credential should be scoped to correct service: \'rds-data\'.'],
  expired: ['InvalidSignatureException', 'Signature expired: the request time is too far from the server time.'],
  'unknown-access-key': ['UnrecognizedClientException', 'The security token included in the request is invalid.'],
  'bad-signature': ['InvalidSignatureException', 'The request signature we calculated does not match the signature you provided.'],
  'body-hash-mismatch': ['InvalidSignatureException', 'The provided x-amz-content-sha256 header does not match what was computed.'],
};

export class DataApiServer {
  private readonly server: http.Server;
  private readonly sets = new Map<string, { set: ConnectionSet; socketPath: string }>();
  private readonly transactions = new Map<string, OpenTransaction>();
  /** Recent running time per statement text (ms, a moving average): which ones are quick. */
  private readonly statementTimes = new Map<string, number>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly directory: DataApiDirectory,
    private readonly limits: DataApiLimits,
    private readonly log: Logger,
  ) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.sweeper = setInterval(() => {
      this.expireTransactions();
      for (const [key, { set }] of this.sets) {
        set.closeIdle(CONNECTION_IDLE_MS);
        // Sets for databases that never answered (a wrong name) do not pile up.
        if (set.unused) this.sets.delete(key);
      }
    }, Math.max(250, Math.min(5_000, limits.transactionIdleMs / 4)));
    this.sweeper.unref();
  }

  async listen(port: number, host: string): Promise<string> {
    await listenOn(this.server, port, host);
    return `http://${host}:${port}`;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.transactions.clear();
    for (const { set } of this.sets.values()) set.closeAll();
    this.sets.clear();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // The path and query exactly as sent: that is what the client signed.
    const target = req.url ?? '/';
    const queryAt = target.indexOf('?');
    const url = { pathname: queryAt < 0 ? target : target.slice(0, queryAt), query: queryAt < 0 ? '' : target.slice(queryAt + 1) };
    try {
      const body = await this.readBody(req);
      const verdict = verifyRequestSignature(
        { method: req.method ?? 'GET', path: url.pathname, query: url.query, headers: req.headers, body },
        { service: 'rds-data', now: Date.now(), clockSkewMs: CLOCK_SKEW_MS, secretFor: (id) => this.directory.accessKeySecret(id) },
      );
      if (!verdict.ok) {
        const [type, message] = SIGNATURE_ERRORS[verdict.reason];
        throw new DataApiError(type, message);
      }
      if (req.method !== 'POST') throw new DataApiError('BadRequestException', `${req.method} is not supported; the Data API takes POST`);
      let input: Record<string, unknown>;
      try {
        const parsed: unknown = body.length ? parseJson(body.toString('utf8')) : {};
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
        input = parsed as Record<string, unknown>;
      } catch {
        throw new DataApiError('SerializationException', 'The request body is not a valid JSON object.');
      }
      const output = await this.dispatch(url.pathname, input);
      const text = stringifyJson(output);
      if (Buffer.byteLength(text) > this.limits.responseBytesMax) {
        throw new DataApiError('BadRequestException', `Database returned more than the allowed response size limit (${this.limits.responseBytesMax} bytes).`);
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    } catch (err) {
      const e = err instanceof DataApiError ? err : new DataApiError('InternalServerErrorException', 'Internal error.');
      if (!(err instanceof DataApiError)) this.log.error('Data API request failed', { path: url.pathname, error: (err as Error).message });
      const text = JSON.stringify({ message: e.message });
      if (!res.headersSent) {
        res.writeHead(e.status, { 'content-type': 'application/json', 'x-amzn-errortype': e.type, 'content-length': Buffer.byteLength(text) });
        res.end(text);
      }
    }
  }

  private async readBody(req: http.IncomingMessage): Promise<Buffer> {
    const max = this.limits.requestBytesMax;
    if (Number(req.headers['content-length'] ?? 0) > max) {
      req.resume();
      throw new DataApiError('BadRequestException', `Request body exceeds the limit of ${max} bytes.`);
    }
    return readBounded(req, max, () => new DataApiError('BadRequestException', `Request body exceeds the limit of ${max} bytes.`));
  }

  private dispatch(path: string, input: Record<string, unknown>): Promise<unknown> {
    switch (path) {
      case '/Execute':
        return this.execute(input);
      case '/BatchExecute':
        return this.batchExecute(input);
      case '/BeginTransaction':
        return this.beginTransaction(input);
      case '/CommitTransaction':
        return this.endTransaction(input, 'COMMIT');
      case '/RollbackTransaction':
        return this.endTransaction(input, 'ROLLBACK');
      case '/ExecuteSql':
        throw new DataApiError('BadRequestException', 'ExecuteSql is not supported for Aurora Serverless v2 and provisioned clusters; use ExecuteStatement.');
      default:
        throw new DataApiError('BadRequestException', `Unknown operation ${path}.`);
    }
  }

  /** resourceArn + secretArn → the cluster and a database login checked against its user. */
  private async authorize(input: Record<string, unknown>): Promise<{ cluster: string; username: string; password: string; secretArn: string; dbname?: string }> {
    const resourceArn = requiredString(input, 'resourceArn');
    const secretArn = requiredString(input, 'secretArn');
    const cluster = this.directory.clusterFromArn(resourceArn);
    if (!cluster) throw new DataApiError('NotFoundException', `DB cluster ${resourceArn} was not found.`);
    if (!this.directory.dataApiEnabled(cluster)) throw new DataApiError('HttpEndpointNotEnabledException', `HttpEndpoint is not enabled for cluster ${cluster}.`);
    const secret = this.directory.secret(secretArn);
    if (!secret) throw new DataApiError('SecretsErrorException', `Secrets Manager can't find the specified secret: ${secretArn}.`);
    if (secret.cluster !== cluster || !(await this.directory.passwordMatches(cluster, secret.username, secret.password))) {
      throw new DataApiError('AccessDeniedException', 'The secret does not authenticate to this DB cluster.');
    }
    return { cluster, username: secret.username, password: secret.password, secretArn, ...(secret.dbname !== undefined ? { dbname: secret.dbname } : {}) };
  }

  /** The connections for this cluster, user and database; resumes a paused writer first. */
  private async connectionSet(cluster: string, username: string, database: string): Promise<ConnectionSet> {
    const socket = await this.directory.awaitWriterSocket(cluster, this.limits.resumeWaitMs);
    if (!socket) throw new DataApiError('DatabaseResumingException', `The Aurora DB instance of cluster ${cluster} is resuming after being auto-paused. Please wait a few seconds and try again.`);
    const socketPath = `${socket.socketDir}/.s.PGSQL.${socket.port}`;
    const key = `${cluster}\0${username}\0${database}`;
    let entry = this.sets.get(key);
    if (!entry) {
      const params = new Map([
        ['user', username],
        ['database', database],
        ['application_name', 'borealis-data-api'],
        // Every statement ends at the Data API's timeout unless a call asks otherwise (continueAfterTimeout).
        ['options', `-c TimeZone=UTC -c statement_timeout=${this.limits.statementTimeoutMs}`],
      ]);
      const created: { set: ConnectionSet; socketPath: string } = {
        socketPath,
        set: new ConnectionSet({
          open: (onSettled) => this.open(created.socketPath, params, onSettled),
          sizeMax: this.limits.poolSizeMax,
          pipelineDepthMax: PIPELINE_DEPTH_MAX,
          pipelineHeadAgeMaxMs: PIPELINE_HEAD_AGE_MAX_MS,
        }),
      };
      entry = created;
      this.sets.set(key, entry);
    }
    // The writer may have moved since (a rebuild): new connections go to where it is now.
    entry.socketPath = socketPath;
    return entry.set;
  }

  private async open(socketPath: string, params: ReadonlyMap<string, string>, onSettled: () => void): Promise<SqlConnection> {
    try {
      return await SqlConnection.open(socketPath, params, CONNECT_TIMEOUT_MS, onSettled);
    } catch (err) {
      if (err instanceof ServerStartupError && err.sqlstate === '3D000') throw new DataApiError('DatabaseNotFoundException', err.message);
      throw new DataApiError('DatabaseUnavailableException', 'The database did not accept a connection.');
    }
  }

  /** A connection from the set, or the Data API's error for why there is none. */
  private async acquire(set: ConnectionSet, how: 'shared' | 'shared-quick' | 'lease'): Promise<SqlConnection> {
    const deadline = Date.now() + this.limits.statementTimeoutMs;
    try {
      return await (how === 'lease' ? set.lease(deadline) : set.shared(deadline, how === 'shared-quick'));
    } catch (err) {
      if (err instanceof ConnectionWaitTimeout) throw new DataApiError('StatementTimeoutException', `No database connection became free within ${this.limits.statementTimeoutMs} ms.`);
      throw err;
    }
  }

  private async execute(input: Record<string, unknown>): Promise<unknown> {
    const auth = await this.authorize(input);
    const sql = requiredString(input, 'sql');
    const options = resultOptions(input.resultSetOptions);
    const includeMetadata = input.includeResultMetadata === true;
    const json = input.formatRecordsAs === 'JSON';
    if (input.formatRecordsAs !== undefined && input.formatRecordsAs !== 'JSON' && input.formatRecordsAs !== 'NONE') throw new DataApiError('BadRequestException', 'formatRecordsAs must be JSON or NONE.');
    const { text, values } = prepare(sql, input.parameters);
    const result = await this.statement(auth, input, sql, text, (c, inTransaction, shared) => this.run(c, text, values, input.continueAfterTimeout === true, inTransaction, shared));
    const fields = result.fields;
    const records = result.rows.map((row) => row.map((v, i) => toField(fields[i]!.dataTypeID, v, options)));
    const isSelect = fields.length > 0;
    const out: Record<string, unknown> = { numberOfRecordsUpdated: isSelect ? 0 : result.rowCount, generatedFields: [] };
    if (json) out.formattedRecords = stringifyJson(records.map((r) => Object.fromEntries(r.map((f, i) => [fields[i]!.name, jsonValue(f)]))));
    else if (isSelect) out.records = records;
    if (includeMetadata && isSelect) out.columnMetadata = fields.map(columnMetadata);
    return out;
  }

  private async batchExecute(input: Record<string, unknown>): Promise<unknown> {
    const auth = await this.authorize(input);
    const sql = requiredString(input, 'sql');
    const sets = input.parameterSets ?? [];
    if (!Array.isArray(sets)) throw new DataApiError('BadRequestException', 'parameterSets must be a list of parameter lists.');
    const prepared = sets.length === 0 ? [prepare(sql, [])] : sets.map((set) => prepare(sql, set));
    const runAll = async (c: SqlConnection): Promise<{ updateResults: Array<{ generatedFields: Field[] }> }> => {
      const updateResults: Array<{ generatedFields: Field[] }> = [];
      for (const p of prepared) {
        const r = await this.run(c, p.text, p.values, false, true);
        const row = r.rows[0];
        updateResults.push({ generatedFields: row ? row.map((v, i) => toField(r.fields[i]!.dataTypeID, v, resultOptions(undefined))) : [] });
      }
      return { updateResults };
    };
    const transactionId = optionalString(input, 'transactionId');
    if (transactionId) return this.inTransaction(transactionId, auth, sql, runAll);
    return this.leased(auth, input, sql, async (c) => {
      await this.run(c, 'BEGIN', [], false, false);
      try {
        const out = await runAll(c);
        await this.run(c, 'COMMIT', [], false, true);
        return out;
      } catch (err) {
        if (!c.closed) await c.execute('ROLLBACK', [], { resultBytesMax: 0 }).catch(() => undefined);
        throw err;
      }
    });
  }

  private async beginTransaction(input: Record<string, unknown>): Promise<unknown> {
    const auth = await this.authorize(input);
    const database = optionalString(input, 'database') ?? auth.dbname ?? auth.username;
    const set = await this.connectionSet(auth.cluster, auth.username, database);
    const connection = await this.acquire(set, 'lease');
    try {
      await this.run(connection, 'BEGIN', [], false, false);
    } catch (err) {
      set.release(connection, false);
      throw err;
    }
    const id = randomBytes(24).toString('base64');
    const now = Date.now();
    this.transactions.set(id, { connection, set, cluster: auth.cluster, secretArn: auth.secretArn, startedAt: now, lastUsedAt: now, busy: false, sessionChanged: false });
    this.directory.activity(auth.cluster, 1);
    return { transactionId: id };
  }

  private async endTransaction(input: Record<string, unknown>, verb: 'COMMIT' | 'ROLLBACK'): Promise<unknown> {
    const auth = await this.authorize(input);
    const id = requiredString(input, 'transactionId');
    const t = this.takeTransaction(id, auth);
    this.transactions.delete(id);
    let ended = false;
    try {
      await this.run(t.connection, verb, [], false, true);
      ended = true;
    } finally {
      t.set.release(t.connection, ended && !t.sessionChanged);
      this.directory.activity(t.cluster, -1);
    }
    return { transactionStatus: verb === 'COMMIT' ? 'Transaction Committed' : 'Rollback Complete' };
  }

  private takeTransaction(id: string, auth: { cluster: string; secretArn: string }): OpenTransaction {
    const t = this.transactions.get(id);
    if (t?.connection.closed) {
      // Its connection is gone, and the transaction with it.
      this.transactions.delete(id);
      this.directory.activity(t.cluster, -1);
      t.set.release(t.connection, false);
    }
    if (!t || t.connection.closed || t.cluster !== auth.cluster || t.secretArn !== auth.secretArn) throw new DataApiError('TransactionNotFoundException', `Transaction ${id} is not found.`);
    if (t.busy) throw new DataApiError('BadRequestException', 'Another statement is running in this transaction.');
    return t;
  }

  /** Runs one statement of a call: in its transaction, on a shared connection, or on one of its own. */
  private async statement<T>(
    auth: { cluster: string; username: string; secretArn: string; dbname?: string },
    input: Record<string, unknown>,
    sql: string,
    text: string,
    fn: (c: SqlConnection, inTransaction: boolean, shared: Partial<StatementOptions> | null) => Promise<T>,
  ): Promise<T> {
    const transactionId = optionalString(input, 'transactionId');
    if (transactionId) return this.inTransaction(transactionId, auth, sql, (c) => fn(c, true, null));
    if (input.continueAfterTimeout === true || !PLAIN_STATEMENT.test(sql) || pinReasons(sql).length > 0) return this.leased(auth, input, sql, (c) => fn(c, false, null));
    const database = optionalString(input, 'database') ?? auth.dbname ?? auth.username;
    const known = text.length <= STATEMENT_TEXT_TIMED_MAX ? this.statementTimes.get(text) : undefined;
    const quick = known !== undefined && known <= QUICK_STATEMENT_MS;
    const timed = (ms: number): void => {
      if (text.length > STATEMENT_TEXT_TIMED_MAX) return;
      if (known === undefined && this.statementTimes.size >= STATEMENT_TIMES_MAX) this.statementTimes.clear();
      const before = this.statementTimes.get(text);
      this.statementTimes.set(text, before === undefined ? ms : before * 0.8 + ms * 0.2);
    };
    this.directory.activity(auth.cluster, 1);
    try {
      const set = await this.connectionSet(auth.cluster, auth.username, database);
      return await fn(await this.acquire(set, quick ? 'shared-quick' : 'shared'), false, { solo: !quick, timed });
    } finally {
      this.directory.activity(auth.cluster, -1);
    }
  }

  private async inTransaction<T>(id: string, auth: { cluster: string; secretArn: string }, sql: string, fn: (c: SqlConnection) => Promise<T>): Promise<T> {
    const t = this.takeTransaction(id, auth);
    t.busy = true;
    if (pinReasons(sql).length > 0) t.sessionChanged = true;
    try {
      return await fn(t.connection);
    } finally {
      t.busy = false;
      t.lastUsedAt = Date.now();
    }
  }

  /**
   * Runs fn on a connection of its own. The connection goes back for reuse
   * only if the statement cannot have left state in the session; a statement
   * still running after its call answered (continueAfterTimeout) keeps it
   * until it ends.
   */
  private async leased<T>(auth: { cluster: string; username: string; dbname?: string }, input: Record<string, unknown>, sql: string, fn: (c: SqlConnection) => Promise<T>): Promise<T> {
    const database = optionalString(input, 'database') ?? auth.dbname ?? auth.username;
    const reusable = input.continueAfterTimeout !== true && pinReasons(sql).length === 0;
    this.directory.activity(auth.cluster, 1);
    try {
      const set = await this.connectionSet(auth.cluster, auth.username, database);
      const c = await this.acquire(set, 'lease');
      try {
        return await fn(c);
      } finally {
        // Statements still queued (a call that answered at its timeout) finish first.
        void c.idle().then(() => set.release(c, reusable));
      }
    } finally {
      this.directory.activity(auth.cluster, -1);
    }
  }

  /**
   * One statement. PostgreSQL ends it at the Data API's statement timeout
   * (a setting of every Data API session); with continueAfterTimeout the
   * limit is lifted for it, and the call answers at the timeout while the
   * statement runs on.
   */
  private async run(
    c: SqlConnection,
    text: string,
    values: readonly ParameterValue[],
    continueAfterTimeout: boolean,
    inTransaction: boolean,
    shared: Partial<StatementOptions> | null = null,
  ): Promise<StatementResult> {
    const limit = { resultBytesMax: this.limits.responseBytesMax };
    if (!continueAfterTimeout) {
      try {
        return await c.execute(text, values, { ...limit, ...shared });
      } catch (err) {
        throw statementError(err, this.limits.statementTimeoutMs);
      }
    }
    const lifted = c.execute(inTransaction ? 'SET LOCAL statement_timeout = 0' : 'SET statement_timeout = 0', [], limit);
    const statement = c.execute(text, values, limit);
    statement.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DataApiError('StatementTimeoutException', `The statement ran longer than ${this.limits.statementTimeoutMs} ms; it goes on running (continueAfterTimeout).`)), this.limits.statementTimeoutMs);
    });
    try {
      await lifted;
      return await Promise.race([statement, timeout]);
    } catch (err) {
      throw statementError(err, this.limits.statementTimeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }

  private expireTransactions(): void {
    const now = Date.now();
    for (const [id, t] of this.transactions) {
      if (t.busy) continue;
      if (now - t.lastUsedAt > this.limits.transactionIdleMs || now - t.startedAt > this.limits.transactionMaxMs) {
        this.transactions.delete(id);
        this.directory.activity(t.cluster, -1);
        t.connection.execute('ROLLBACK', [], { resultBytesMax: 0 }).then(
          () => t.set.release(t.connection, !t.sessionChanged),
          () => t.set.release(t.connection, false),
        );
        this.log.info('Data API transaction expired and rolled back', { cluster: t.cluster });
      }
    }
  }
}

/** A statement's failure as the Data API reports it. */
function statementError(err: unknown, timeoutMs: number): Error {
  if (err instanceof DataApiError) return err;
  if (err instanceof DatabaseError) {
    if (err.code === '57014' && /statement timeout/.test(err.message)) return new DataApiError('StatementTimeoutException', `The statement ran longer than ${timeoutMs} ms and was cancelled.`);
    // As Aurora words it; libraries read the SQLSTATE from the end.
    const position = err.position !== null ? `\n  Position: ${err.position}` : '';
    return new DataApiError('DatabaseErrorException', `${err.severity}: ${err.message}${position}; SQLState: ${err.code}`);
  }
  if (err instanceof ResultTooLarge) return new DataApiError('BadRequestException', `Database returned more than the allowed response size limit (${err.limitBytes} bytes).`);
  if (err instanceof ConnectionLost) return new DataApiError('DatabaseUnavailableException', 'The connection to the database was lost.');
  return err as Error;
}

function prepare(sql: string, parameters: unknown): { text: string; values: ParameterValue[] } {
  const list = parameters === undefined || parameters === null ? [] : parameters;
  if (!Array.isArray(list)) throw new DataApiError('BadRequestException', 'parameters must be a list.');
  const bound = new Map<string, { value: ParameterValue; cast: string | null }>();
  for (const p of list as Array<Record<string, unknown>>) {
    if (typeof p !== 'object' || p === null || typeof p.name !== 'string') throw new DataApiError('BadRequestException', 'every parameter needs a name.');
    try {
      bound.set(p.name, bindParameter(p));
    } catch (err) {
      if (err instanceof ParameterError) throw new DataApiError('BadRequestException', err.message);
      throw err;
    }
  }
  const rewritten = rewriteNamedParameters(sql, (index, name) => {
    const cast = bound.get(name)?.cast;
    return cast ? `($${index}::${cast})` : `$${index}`;
  });
  const values = rewritten.names.map((name) => {
    const b = bound.get(name);
    if (!b) throw new DataApiError('BadRequestException', `No value specified for parameter: ${name}.`);
    return b.value;
  });
  return { text: rewritten.sql, values };
}

function columnMetadata(f: ColumnInfo): Record<string, unknown> {
  const info = typeInfo(f.dataTypeID);
  const numeric = [-5, 4, 5, 2, 6, 7, 8].includes(info.jdbc);
  return {
    name: f.name,
    label: f.name,
    typeName: info.name,
    type: info.jdbc,
    isSigned: numeric,
    isCaseSensitive: info.jdbc === 12 || info.jdbc === 1,
    isCurrency: false,
    isAutoIncrement: false,
    nullable: 2,
    precision: f.dataTypeSize > 0 ? f.dataTypeSize : 0,
    scale: info.name === 'numeric' && f.dataTypeModifier > 4 ? (f.dataTypeModifier - 4) & 0xffff : 0,
    schemaName: '',
    tableName: '',
    arrayBaseColumnType: info.element !== undefined ? typeInfo(info.element).jdbc : 0,
  };
}

function resultOptions(v: unknown): ResultOptions {
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const decimal = o.decimalReturnType ?? 'STRING';
  const long = o.longReturnType ?? 'LONG';
  if (decimal !== 'STRING' && decimal !== 'DOUBLE_OR_LONG') throw new DataApiError('BadRequestException', 'decimalReturnType must be STRING or DOUBLE_OR_LONG.');
  if (long !== 'LONG' && long !== 'STRING') throw new DataApiError('BadRequestException', 'longReturnType must be LONG or STRING.');
  return { decimalReturnType: decimal, longReturnType: long };
}

function requiredString(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw new DataApiError('BadRequestException', `${key} is required.`);
  return v;
}

function optionalString(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new DataApiError('BadRequestException', `${key} must be a string.`);
  return v;
}
