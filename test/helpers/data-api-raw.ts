// A Data API client that signs with AWS's own SDK (its SigV4 signer) but
// sends a body of the test's choosing, to an operation of its choosing, and
// keeps the raw response (the SDK's JSON.parse would round 64-bit integers,
// and would hide what exactly the server answered).
import http from 'node:http';
import { Readable } from 'node:stream';
import {
  BatchExecuteStatementCommand,
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteSqlCommand,
  ExecuteStatementCommand,
  RDSDataClient,
  RollbackTransactionCommand,
} from '@aws-sdk/client-rds-data';

export interface RawAnswer {
  readonly status: number;
  /** x-amzn-ErrorType, as the SDKs read it. */
  readonly type: string | undefined;
  readonly text: string;
}

export type RawOperation = 'Execute' | 'BatchExecute' | 'BeginTransaction' | 'CommitTransaction' | 'RollbackTransaction' | 'ExecuteSql';

export interface RawDataApiClient {
  send(body: string | Uint8Array, operation?: RawOperation): Promise<RawAnswer>;
  destroy(): void;
}

export function rawDataApiClient(port: number, credentials: { accessKeyId: string; secretAccessKey: string }, answerTimeoutMs = 60_000): RawDataApiClient {
  let replacement: string | Uint8Array = '';
  let last: RawAnswer = { status: 0, type: undefined, text: '' };
  const c = new RDSDataClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials,
    maxAttempts: 1,
    requestHandler: {
      handle: (request: { method: string; hostname: string; port?: number; path: string; headers: Record<string, string>; body?: string | Uint8Array }) =>
        new Promise((resolve, reject) => {
          const req = http.request({ host: request.hostname, port: request.port, method: request.method, path: request.path, headers: request.headers }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (d: Buffer) => chunks.push(d));
            res.on('end', () => {
              const body = Buffer.concat(chunks);
              last = { status: res.statusCode ?? 0, type: res.headers['x-amzn-errortype'] as string | undefined, text: body.toString('utf8') };
              resolve({ response: { statusCode: res.statusCode, headers: res.headers, body: Readable.from([body]) } });
            });
          });
          req.setTimeout(answerTimeoutMs, () => req.destroy(new Error(`no answer within ${answerTimeoutMs} ms`)));
          req.on('error', reject);
          req.end(request.body);
        }),
    } as never,
  });
  // Before signing, so the signature covers the replaced body.
  c.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { body?: string | Uint8Array; headers: Record<string, string> };
      req.body = replacement;
      req.headers['content-length'] = String(typeof replacement === 'string' ? Buffer.byteLength(replacement) : replacement.length);
      return next(args);
    },
    { step: 'build', priority: 'low' },
  );
  const placeholder = { resourceArn: 'replaced', secretArn: 'replaced' };
  const commands: Record<RawOperation, () => unknown> = {
    Execute: () => new ExecuteStatementCommand({ ...placeholder, sql: 'replaced' }),
    BatchExecute: () => new BatchExecuteStatementCommand({ ...placeholder, sql: 'replaced' }),
    BeginTransaction: () => new BeginTransactionCommand(placeholder),
    CommitTransaction: () => new CommitTransactionCommand({ ...placeholder, transactionId: 'replaced' }),
    RollbackTransaction: () => new RollbackTransactionCommand({ ...placeholder, transactionId: 'replaced' }),
    ExecuteSql: () => new ExecuteSqlCommand({ dbClusterOrInstanceArn: 'replaced', awsSecretStoreArn: 'replaced', sqlStatements: 'replaced' }),
  };
  return {
    async send(body, operation = 'Execute') {
      replacement = body;
      last = { status: 0, type: undefined, text: '' };
      // The SDK's own parsing of odd answers may throw; the raw answer is what counts.
      await c.send(commands[operation]() as never).catch((err: unknown) => {
        if (last.status === 0) throw err;
      });
      return last;
    },
    destroy: () => c.destroy(),
  };
}
