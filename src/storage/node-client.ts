// HTTP client for a storage node's API, used by the control plane and by
// peers repairing each other. Every call carries the shared bearer token and
// a deadline.
import fs from 'node:fs';
import http from 'node:http';
import { readBounded } from '../util/read-bounded.js';
import type { BackupInfo } from './backup-store.js';

export interface NodeStatus {
  readonly name: string;
  readonly zone: string;
  readonly state: string;
  readonly term: number;
  readonly systemId: string | null;
  readonly timeline: number;
  readonly startLsn: string | null;
  readonly flushLsn: string | null;
  readonly writerEndLsn: string | null;
  readonly lagBytes: number | null;
  readonly diskBytes: number;
  readonly backups: number;
  readonly lastError: string | null;
  /** Since the node started: WAL received, flushes (fdatasyncs), their mean duration. */
  readonly walBytesReceived: number;
  readonly flushes: number;
  readonly flushMsAvg: number;
}

export interface HeldWalFile {
  readonly name: string;
  readonly timeline: number;
  readonly segment: number;
  readonly validBytes: number;
}

export class NodeRequestError extends Error {
  override readonly name = 'NodeRequestError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** JSON answers and WAL segments are small; anything bigger is refused. */
const NODE_RESPONSE_BYTES_MAX = 32 * 1024 * 1024;

export class StorageNodeClient {
  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly timeoutMs: number,
  ) {}

  status(): Promise<NodeStatus> {
    return this.json('GET', '/status');
  }

  follow(body: { term: number; writer: { host: string; port: number }; credentials: { user: string; password: string }; peers: Array<{ name: string; url: string }>; retainFromLsn: string | null }): Promise<NodeStatus> {
    return this.json('POST', '/term', body);
  }

  /** Asks the node to reconnect to its writer now (after a resume). */
  wake(): Promise<unknown> {
    return this.json('POST', '/wake', {});
  }

  listWal(): Promise<{ files: HeldWalFile[]; histories: number[] }> {
    return this.json('GET', '/wal');
  }

  async walFile(name: string): Promise<Buffer> {
    return (await this.request('GET', `/wal/${name}`)).body;
  }

  async history(timeline: number): Promise<string> {
    return (await this.request('GET', `/history/${timeline}`)).body.toString('utf8');
  }

  backups(): Promise<BackupInfo[]> {
    return this.json('GET', '/backups');
  }

  deleteBackup(id: string): Promise<unknown> {
    return this.json('DELETE', `/backups/${id}`);
  }

  /** Streams an archive file to the node; it answers once it is durable and verified. */
  putBackup(info: BackupInfo, file: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = http.request(`${this.url}/backups/${info.id}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/x-tar', 'content-length': info.bytes, 'x-borealis-backup': JSON.stringify(info) },
        timeout: this.timeoutMs * 10,
      });
      req.on('timeout', () => req.destroy(new Error('backup upload timed out')));
      req.on('error', reject);
      req.on('response', (res) => void collect(res).then((body) => (res.statusCode === 200 ? resolve(JSON.parse(body.toString('utf8'))) : reject(new NodeRequestError(errorText(body), res.statusCode ?? 0))), reject));
      fs.createReadStream(file).on('error', reject).pipe(req);
    });
  }

  /** Downloads a verified archive into `file`. */
  getBackup(id: string, file: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = http.request(`${this.url}/backups/${id}`, { headers: { authorization: `Bearer ${this.token}` }, timeout: this.timeoutMs * 10 });
      req.on('timeout', () => req.destroy(new Error('backup download timed out')));
      req.on('error', reject);
      req.on('response', (res) => {
        if (res.statusCode !== 200) return void collect(res).then((b) => reject(new NodeRequestError(errorText(b), res.statusCode ?? 0)), reject);
        const out = fs.createWriteStream(file, { mode: 0o600 });
        res.pipe(out);
        out.on('finish', () => resolve());
        out.on('error', reject);
        res.on('error', reject);
      });
      req.end();
    });
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    return JSON.parse(res.body.toString('utf8')) as T;
  }

  private request(method: string, path: string, body?: unknown): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
        timeout: this.timeoutMs,
      });
      req.on('timeout', () => req.destroy(new Error(`storage node ${this.url} did not answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) =>
        void collect(res).then((b) => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve({ status, body: b });
          else reject(new NodeRequestError(errorText(b), status));
        }, reject),
      );
      req.end(payload);
    });
  }
}

function collect(res: http.IncomingMessage): Promise<Buffer> {
  return readBounded(res, NODE_RESPONSE_BYTES_MAX, () => new Error('storage node answer too large'));
}

function errorText(body: Buffer): string {
  try {
    return (JSON.parse(body.toString('utf8')) as { message?: string }).message ?? 'storage node error';
  } catch {
    return body.toString('utf8').slice(0, 200) || 'storage node error';
  }
}
