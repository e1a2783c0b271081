// The RDS Data API over HTTP (restJson1): ExecuteStatement, BatchExecuteStatement,
// BeginTransaction, CommitTransaction, RollbackTransaction; requests signed
// with SigV4 for service rds-data, credentials from Borealis's secret store.
// https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/Welcome.html
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import pg from 'pg';
import { verifyRequestSignature, type RequestSignatureFailure } from '../auth/sigv4.js';
import type { Logger } from '../util/logger.js';
import { readBounded } from '../util/read-bounded.js';
import { listenOn } from '../util/listen.js';
import { DataApiError } from './errors.js';
import { bindParameter, jsonValue, ParameterError, toField, typeInfo, type Field, type ResultOptions } from './fields.js';
import { rewriteNamedParameters } from './named-params.js';

export interface DataApiDirectory {
  /** The cluster an ARN names (arn:aws:rds:<region>:<account>:cluster:<name>), or null. */
  clusterFromArn(arn: string): string | null;
  dataApiEnabled(cluster: string): boolean;
  secret(arn: string): { cluster: string; username: string; password: string } | null;
  passwordMatches(cluster: string, username: string, password: string): boolean;
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
  readonly client: pg.PoolClient;
  readonly cluster: string;
  readonly secretArn: string;
  readonly startedAt: number;
  lastUsedAt: number;
  busy: boolean;
}

const CLOCK_SKEW_MS = 5 * 60_000;
/** Keep values as PostgreSQL's text: the Field mapping decides their shape. */
const RAW_TYPES = { getTypeParser: () => (value: string) => value };
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
  private readonly pools = new Map<string, pg.Pool>();
  private readonly transactions = new Map<string, OpenTransaction>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly directory: DataApiDirectory,
    private readonly limits: DataApiLimits,
    private readonly log: Logger,
  ) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.sweeper = setInterval(() => this.expireTransactions(), Math.max(250, Math.min(5_000, limits.transactionIdleMs / 4)));
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
    for (const t of this.transactions.values()) t.client.release(true);
    this.transactions.clear();
    await Promise.all([...this.pools.values()].map((p) => p.end().catch(() => undefined)));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://data-api');
    try {
      const body = await this.readBody(req);
      const verdict = verifyRequestSignature(
        { method: req.method ?? 'GET', path: url.pathname, query: url.search.slice(1), headers: req.headers, body },
        { service: 'rds-data', now: Date.now(), clockSkewMs: CLOCK_SKEW_MS, secretFor: (id) => this.directory.accessKeySecret(id) },
      );
      if (!verdict.ok) {
        const [type, message] = SIGNATURE_ERRORS[verdict.reason];
        throw new DataApiError(type, message);
      }
      if (req.method !== 'POST') throw new DataApiError('BadRequestException', `${req.method} is not supported; the Data API takes POST`);
      let input: Record<string, unknown>;
      try {
        const parsed: unknown = body.length ? JSON.parse(body.toString('utf8')) : {};
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
        input = parsed as Record<string, unknown>;
      } catch {
        throw new DataApiError('SerializationException', 'The request body is not a valid JSON object.');
      }
      const output = await this.dispatch(url.pathname, input);
      const text = JSON.stringify(output);
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
  private authorize(input: Record<string, unknown>): { cluster: string; username: string; password: string; secretArn: string } {
    const resourceArn = requiredString(input, 'resourceArn');
    const secretArn = requiredString(input, 'secretArn');
    const cluster = this.directory.clusterFromArn(resourceArn);
    if (!cluster) throw new DataApiError('NotFoundException', `DB cluster ${resourceArn} was not found.`);
    if (!this.directory.dataApiEnabled(cluster)) throw new DataApiError('HttpEndpointNotEnabledException', `HttpEndpoint is not enabled for cluster ${cluster}.`);
    const secret = this.directory.secret(secretArn);
    if (!secret) throw new DataApiError('SecretsErrorException', `Secrets Manager can't find the specified secret: ${secretArn}.`);
    if (secret.cluster !== cluster || !this.directory.passwordMatches(cluster, secret.username, secret.password)) {
      throw new DataApiError('AccessDeniedException', 'The secret does not authenticate to this DB cluster.');
    }
    return { cluster, username: secret.username, password: secret.password, secretArn };
  }

  private async connection(cluster: string, username: string, database: string): Promise<pg.PoolClient> {
    const socket = await this.directory.awaitWriterSocket(cluster, this.limits.resumeWaitMs);
    if (!socket) throw new DataApiError('DatabaseResumingException', `The Aurora DB instance of cluster ${cluster} is resuming after being auto-paused. Please wait a few seconds and try again.`);
    const key = JSON.stringify([cluster, username, database]);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new pg.Pool({ host: socket.socketDir, port: socket.port, user: username, database, max: this.limits.poolSizeMax, idleTimeoutMillis: 10_000, types: RAW_TYPES, options: '-c TimeZone=UTC' });
      // Idle connections die when the instance pauses or restarts; the pool reconnects.
      pool.on('error', () => undefined);
      this.pools.set(key, pool);
    }
    try {
      return await pool.connect();
    } catch (err) {
      const e = err as { code?: string; message: string };
      if (e.code === '3D000') throw new DataApiError('DatabaseNotFoundException', e.message);
      throw new DataApiError('DatabaseUnavailableException', 'The database did not accept a connection.');
    }
  }

  private async execute(input: Record<string, unknown>): Promise<unknown> {
    const auth = this.authorize(input);
    const sql = requiredString(input, 'sql');
    const options = resultOptions(input.resultSetOptions);
    const includeMetadata = input.includeResultMetadata === true;
    const json = input.formatRecordsAs === 'JSON';
    if (input.formatRecordsAs !== undefined && input.formatRecordsAs !== 'JSON' && input.formatRecordsAs !== 'NONE') throw new DataApiError('BadRequestException', 'formatRecordsAs must be JSON or NONE.');
    const { text, values } = prepare(sql, input.parameters);
    return this.withClient(auth, input, async (client) => {
      const result = await this.run(client, text, values, input.continueAfterTimeout === true);
      const fields = result.fields ?? [];
      const rows = (result.rows ?? []) as Array<Array<string | null>>;
      const records = rows.map((row) => row.map((v, i) => toField(fields[i]!.dataTypeID, v, options)));
      const isSelect = fields.length > 0;
      const out: Record<string, unknown> = { numberOfRecordsUpdated: isSelect ? 0 : (result.rowCount ?? 0), generatedFields: [] };
      if (json) out.formattedRecords = JSON.stringify(records.map((r) => Object.fromEntries(r.map((f, i) => [fields[i]!.name, jsonValue(f)]))));
      else if (isSelect) out.records = records;
      if (includeMetadata && isSelect) out.columnMetadata = fields.map(columnMetadata);
      return out;
    });
  }

  private async batchExecute(input: Record<string, unknown>): Promise<unknown> {
    const auth = this.authorize(input);
    const sql = requiredString(input, 'sql');
    const sets = input.parameterSets ?? [];
    if (!Array.isArray(sets)) throw new DataApiError('BadRequestException', 'parameterSets must be a list of parameter lists.');
    const prepared = sets.length === 0 ? [prepare(sql, [])] : sets.map((set) => prepare(sql, set));
    return this.withClient(auth, input, async (client, inTransaction) => {
      if (!inTransaction) await client.query('BEGIN');
      try {
        const updateResults: Array<{ generatedFields: Field[] }> = [];
        for (const p of prepared) {
          const r = await this.run(client, p.text, p.values, false);
          const row = (r.rows as Array<Array<string | null>>)[0];
          updateResults.push({ generatedFields: row ? row.map((v, i) => toField(r.fields[i]!.dataTypeID, v, resultOptions(undefined))) : [] });
        }
        if (!inTransaction) await client.query('COMMIT');
        return { updateResults };
      } catch (err) {
        if (!inTransaction) await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  private async beginTransaction(input: Record<string, unknown>): Promise<unknown> {
    const auth = this.authorize(input);
    const database = optionalString(input, 'database') ?? auth.username;
    const client = await this.connection(auth.cluster, auth.username, database);
    try {
      await client.query('BEGIN');
    } catch (err) {
      client.release(true);
      throw databaseError(err);
    }
    const id = randomBytes(24).toString('base64');
    const now = Date.now();
    this.transactions.set(id, { client, cluster: auth.cluster, secretArn: auth.secretArn, startedAt: now, lastUsedAt: now, busy: false });
    this.directory.activity(auth.cluster, 1);
    return { transactionId: id };
  }

  private async endTransaction(input: Record<string, unknown>, verb: 'COMMIT' | 'ROLLBACK'): Promise<unknown> {
    const auth = this.authorize(input);
    const t = this.takeTransaction(requiredString(input, 'transactionId'), auth);
    this.transactions.delete(requiredString(input, 'transactionId'));
    try {
      await t.client.query(verb);
      t.client.release();
    } catch (err) {
      t.client.release(true);
      throw databaseError(err);
    } finally {
      this.directory.activity(t.cluster, -1);
    }
    return { transactionStatus: verb === 'COMMIT' ? 'Transaction Committed' : 'Rollback Complete' };
  }

  private takeTransaction(id: string, auth: { cluster: string; secretArn: string }): OpenTransaction {
    const t = this.transactions.get(id);
    if (!t || t.cluster !== auth.cluster || t.secretArn !== auth.secretArn) throw new DataApiError('TransactionNotFoundException', `Transaction ${id} is not found.`);
    if (t.busy) throw new DataApiError('BadRequestException', 'Another statement is running in this transaction.');
    return t;
  }

  /** Runs fn on the transaction's connection, or on a pooled one. */
  private async withClient<T>(auth: { cluster: string; username: string; secretArn: string }, input: Record<string, unknown>, fn: (client: pg.PoolClient, inTransaction: boolean) => Promise<T>): Promise<T> {
    const transactionId = optionalString(input, 'transactionId');
    if (transactionId) {
      const t = this.takeTransaction(transactionId, auth);
      t.busy = true;
      try {
        return await fn(t.client, true);
      } finally {
        t.busy = false;
        t.lastUsedAt = Date.now();
      }
    }
    const database = optionalString(input, 'database') ?? auth.username;
    this.directory.activity(auth.cluster, 1);
    try {
      const client = await this.connection(auth.cluster, auth.username, database);
      let broken = false;
      try {
        return await fn(client, false);
      } catch (err) {
        broken = !(err instanceof DataApiError && err.type === 'DatabaseErrorException');
        throw err;
      } finally {
        client.release(broken);
      }
    } finally {
      this.directory.activity(auth.cluster, -1);
    }
  }

  /** One statement, with the Data API's statement timeout. */
  private async run(client: pg.PoolClient, text: string, values: unknown[], continueAfterTimeout: boolean): Promise<pg.QueryResult> {
    const query = client.query({ text, values, rowMode: 'array' });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DataApiError('StatementTimeoutException', `The statement ran longer than ${this.limits.statementTimeoutMs} ms.`)), this.limits.statementTimeoutMs);
    });
    try {
      return await Promise.race([query, timeout]);
    } catch (err) {
      if (err instanceof DataApiError) {
        // Without continueAfterTimeout the statement is cancelled.
        if (!continueAfterTimeout) await cancelBackend(client);
        query.catch(() => undefined);
        throw err;
      }
      throw databaseError(err);
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
        t.client.query('ROLLBACK').then(
          () => t.client.release(),
          () => t.client.release(true),
        );
        this.log.info('Data API transaction expired and rolled back', { cluster: t.cluster });
      }
    }
  }
}

async function cancelBackend(client: pg.PoolClient): Promise<void> {
  const pid = (client as unknown as { processID?: number }).processID;
  const params = (client as unknown as { connectionParameters: pg.ClientConfig }).connectionParameters;
  if (!pid) return;
  const other = new pg.Client({ host: params.host, port: params.port, user: params.user, database: params.database });
  try {
    await other.connect();
    await other.query('SELECT pg_cancel_backend($1)', [pid]);
  } catch {
    // best effort
  } finally {
    await other.end().catch(() => undefined);
  }
}

function databaseError(err: unknown): DataApiError {
  const e = err as { message?: string; code?: string; severity?: string };
  if (e.code && /^[0-9A-Z]{5}$/.test(e.code)) return new DataApiError('DatabaseErrorException', `${e.severity ?? 'ERROR'}: ${e.message ?? 'error'}`);
  return new DataApiError('DatabaseUnavailableException', 'The connection to the database was lost.');
}

function prepare(sql: string, parameters: unknown): { text: string; values: unknown[] } {
  const list = parameters === undefined || parameters === null ? [] : parameters;
  if (!Array.isArray(list)) throw new DataApiError('BadRequestException', 'parameters must be a list.');
  const bound = new Map<string, { value: unknown; cast: string | null }>();
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

function columnMetadata(f: pg.FieldDef): Record<string, unknown> {
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
