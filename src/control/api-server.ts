// The control plane's HTTP JSON API, used by the CLI (and later the
// dashboard). Every request carries the bearer token kept in the home.
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { dashboardAsset } from '../dashboard/assets.js';
import { renderMetrics } from '../metrics/prometheus.js';
import { readBounded } from '../util/read-bounded.js';
import type { Logger } from '../util/logger.js';
import { listenOn } from '../util/listen.js';
import { ControlError, type Supervisor } from './supervisor.js';

/** Request bodies are small JSON documents. */
const REQUEST_BYTES_MAX = 64 * 1024;
const EVENTS_LIMIT_MAX = 1000;

type Handler = (match: RegExpExecArray, body: unknown, url: URL) => Promise<[number, unknown]> | [number, unknown];

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class ApiServer {
  private readonly server: http.Server;
  private readonly routes: Array<{ method: string; pattern: RegExp; handler: Handler }>;

  constructor(
    private readonly supervisor: Supervisor,
    private readonly token: string,
    private readonly log: Logger,
    private readonly onShutdownRequested: () => void,
  ) {
    this.routes = [
      { method: 'GET', pattern: /^\/v1\/status$/, handler: () => [200, supervisor.status()] },
      { method: 'GET', pattern: /^\/v1\/clusters$/, handler: () => [200, { clusters: supervisor.status().clusters }] },
      {
        method: 'POST',
        pattern: /^\/v1\/clusters$/,
        handler: async (_m, body) => {
          const input = asObject(body);
          const name = optionalString(input, 'name');
          if (!name) throw new HttpError(400, 'InvalidParameterValue', 'name is required');
          const username = optionalString(input, 'masterUsername');
          const password = optionalString(input, 'masterPassword');
          const created = await supervisor.createCluster({ name, ...(username ? { masterUsername: username } : {}), ...(password ? { masterPassword: password } : {}), scaling: scalingInput(input) });
          return [201, { cluster: this.findCluster(name), credentials: created }];
        },
      },
      {
        method: 'GET',
        pattern: /^\/v1\/instances\/([^/]+)\/series$/,
        handler: (m, _body, url) => [200, { series: supervisor.instanceSeries(decodeURIComponent(m[1]!), Number(url.searchParams.get('seconds') ?? 300)) }],
      },
      { method: 'GET', pattern: /^\/v1\/clusters\/([^/]+)\/storage$/, handler: (m) => [200, supervisor.storageStatus(decodeURIComponent(m[1]!))] },
      { method: 'POST', pattern: /^\/v1\/clusters\/([^/]+)\/storage\/backups$/, handler: async (m) => [201, await supervisor.storageBackup(decodeURIComponent(m[1]!))] },
      {
        method: 'POST',
        pattern: /^\/v1\/clusters\/([^/]+)\/storage\/nodes\/([^/]+)\/(stop|start)$/,
        handler: async (m) => {
          await supervisor.storageNodeAction(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), m[3] as 'stop' | 'start');
          return [200, { ok: true }];
        },
      },
      {
        method: 'POST',
        pattern: /^\/v1\/instances\/([^/]+)\/(pause|resume)$/,
        handler: async (m) => {
          await supervisor.pauseOrResume(decodeURIComponent(m[1]!), m[2] as 'pause' | 'resume');
          return [200, { ok: true }];
        },
      },
      {
        method: 'POST',
        pattern: /^\/v1\/clusters\/([^/]+)\/instances$/,
        handler: async (m, body) => {
          const input = asObject(body);
          const tier = input.promotionTier;
          if (tier !== undefined && typeof tier !== 'number') throw new HttpError(400, 'InvalidParameterValue', 'promotionTier must be a number');
          const record = await supervisor.addReader(decodeURIComponent(m[1]!), tier === undefined ? {} : { promotionTier: tier });
          return [201, { instance: record }];
        },
      },
      {
        method: 'POST',
        pattern: /^\/v1\/clusters\/([^/]+)\/failover$/,
        handler: async (m, body) => {
          const target = optionalString(asObject(body), 'targetInstance');
          return [200, await supervisor.failover(decodeURIComponent(m[1]!), target)];
        },
      },
      {
        method: 'DELETE',
        pattern: /^\/v1\/instances\/([^/]+)$/,
        handler: async (m) => {
          await supervisor.deleteInstance(decodeURIComponent(m[1]!));
          return [200, { deleted: decodeURIComponent(m[1]!) }];
        },
      },
      {
        method: 'POST',
        pattern: /^\/v1\/instances\/([^/]+)\/rebuild$/,
        handler: async (m) => {
          await supervisor.rebuildInstance(decodeURIComponent(m[1]!));
          return [200, { rebuilt: decodeURIComponent(m[1]!) }];
        },
      },
      { method: 'GET', pattern: /^\/v1\/clusters\/([^/]+)$/, handler: (m) => [200, this.findCluster(decodeURIComponent(m[1]!))] },
      {
        method: 'DELETE',
        pattern: /^\/v1\/clusters\/([^/]+)$/,
        handler: async (m) => {
          await supervisor.deleteCluster(decodeURIComponent(m[1]!));
          return [200, { deleted: decodeURIComponent(m[1]!) }];
        },
      },
      {
        method: 'PATCH',
        pattern: /^\/v1\/clusters\/([^/]+)$/,
        handler: (m, body) => {
          const input = asObject(body);
          const name = decodeURIComponent(m[1]!);
          const cidrs = input.allowedCidrs;
          if (cidrs !== undefined && (!Array.isArray(cidrs) || !cidrs.every((c) => typeof c === 'string'))) {
            throw new HttpError(400, 'InvalidParameterValue', 'allowedCidrs must be an array of CIDR strings');
          }
          const requireTls = input.requireTls;
          if (requireTls !== undefined && typeof requireTls !== 'boolean') throw new HttpError(400, 'InvalidParameterValue', 'requireTls must be a boolean');
          if (cidrs !== undefined || requireTls !== undefined) {
            supervisor.modifyClusterAccess(name, { ...(cidrs ? { allowedCidrs: cidrs } : {}), ...(requireTls !== undefined ? { requireTls } : {}) });
          }
          if (input.dataApi !== undefined) {
            if (typeof input.dataApi !== 'boolean') throw new HttpError(400, 'InvalidParameterValue', 'dataApi must be a boolean');
            supervisor.setDataApiEnabled(name, input.dataApi);
          }
          const scaling = scalingInput(input);
          if (Object.keys(scaling).length > 0) supervisor.modifyScaling(name, scaling);
          return [200, this.findCluster(name)];
        },
      },
      { method: 'GET', pattern: /^\/v1\/clusters\/([^/]+)\/credentials$/, handler: (m) => [200, supervisor.credentials(decodeURIComponent(m[1]!))] },
      {
        method: 'POST',
        pattern: /^\/v1\/clusters\/([^/]+)\/users$/,
        handler: async (m, body) => {
          const input = asObject(body);
          const name = optionalString(input, 'name');
          if (!name) throw new HttpError(400, 'InvalidParameterValue', 'name is required');
          const password = optionalString(input, 'password');
          const iam = input.iam === true;
          if (iam === (password !== undefined)) throw new HttpError(400, 'InvalidParameterValue', 'give exactly one of password or iam: true');
          await supervisor.createUser(decodeURIComponent(m[1]!), name, password !== undefined ? { password } : { iam: true });
          return [201, { name, auth: iam ? 'iam' : 'password' }];
        },
      },
      { method: 'GET', pattern: /^\/v1\/clusters\/([^/]+)\/users$/, handler: async (m) => [200, { users: await supervisor.listUsers(decodeURIComponent(m[1]!)) }] },
      {
        method: 'POST',
        pattern: /^\/v1\/clusters\/([^/]+)\/users\/([^/]+)\/password$/,
        handler: async (m, body) => {
          const password = optionalString(asObject(body), 'password');
          if (!password) throw new HttpError(400, 'InvalidParameterValue', 'password is required');
          await supervisor.rotateUserPassword(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), password);
          return [200, { name: decodeURIComponent(m[2]!) }];
        },
      },
      {
        method: 'DELETE',
        pattern: /^\/v1\/clusters\/([^/]+)\/users\/([^/]+)$/,
        handler: async (m) => {
          await supervisor.deleteUser(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!));
          return [200, { deleted: decodeURIComponent(m[2]!) }];
        },
      },
      {
        method: 'POST',
        pattern: /^\/v1\/clusters\/([^/]+)\/endpoints$/,
        handler: async (m, body) => {
          const input = asObject(body);
          const name = optionalString(input, 'name');
          if (!name) throw new HttpError(400, 'InvalidParameterValue', 'name is required');
          const type = optionalString(input, 'type') ?? 'ANY';
          if (type !== 'READER' && type !== 'ANY') throw new HttpError(400, 'InvalidParameterValue', 'type must be READER or ANY');
          const cluster = decodeURIComponent(m[1]!);
          await supervisor.createCustomEndpoint(cluster, { name, customType: type, staticMembers: stringList(input, 'staticMembers'), excludedMembers: stringList(input, 'excludedMembers') });
          return [201, this.findCluster(cluster).endpoints.find((e) => e.type === 'custom' && e.name === name)];
        },
      },
      {
        method: 'DELETE',
        pattern: /^\/v1\/clusters\/([^/]+)\/endpoints\/([^/]+)$/,
        handler: (m) => {
          supervisor.deleteCustomEndpoint(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!));
          return [200, { deleted: decodeURIComponent(m[2]!) }];
        },
      },
      {
        method: 'POST',
        pattern: /^\/v1\/clusters\/([^/]+)\/secrets$/,
        handler: async (m, body) => {
          const input = asObject(body);
          const username = optionalString(input, 'username');
          const password = optionalString(input, 'password');
          if (!username || !password) throw new HttpError(400, 'InvalidParameterValue', 'username and password are required');
          return [201, await supervisor.createSecret(decodeURIComponent(m[1]!), username, password, optionalString(input, 'dbname'))];
        },
      },
      { method: 'GET', pattern: /^\/v1\/clusters\/([^/]+)\/secrets$/, handler: (m) => [200, { secrets: supervisor.listSecrets(decodeURIComponent(m[1]!)) }] },
      {
        method: 'DELETE',
        pattern: /^\/v1\/clusters\/([^/]+)\/secrets\/([^/]+)$/,
        handler: (m) => {
          supervisor.deleteSecret(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!));
          return [200, { deleted: decodeURIComponent(m[2]!) }];
        },
      },
      { method: 'GET', pattern: /^\/v1\/clusters\/([^/]+)\/endpoints$/, handler: (m) => [200, { endpoints: this.findCluster(decodeURIComponent(m[1]!)).endpoints }] },
      {
        method: 'POST',
        pattern: /^\/v1\/access-keys$/,
        handler: (_m, body) => [201, supervisor.createAccessKey(optionalString(asObject(body), 'description') ?? '')],
      },
      { method: 'GET', pattern: /^\/v1\/access-keys$/, handler: () => [200, { accessKeys: supervisor.listAccessKeys() }] },
      {
        method: 'DELETE',
        pattern: /^\/v1\/access-keys\/([^/]+)$/,
        handler: (m) => {
          supervisor.deleteAccessKey(decodeURIComponent(m[1]!));
          return [200, { deleted: decodeURIComponent(m[1]!) }];
        },
      },
      {
        method: 'GET',
        pattern: /^\/v1\/events$/,
        handler: (_m, _b, url) => {
          const limit = Math.min(EVENTS_LIMIT_MAX, Number(url.searchParams.get('limit') ?? 100) || 100);
          const sinceId = Number(url.searchParams.get('sinceId') ?? 0) || 0;
          const sourceId = url.searchParams.get('sourceId') ?? undefined;
          return [200, { events: supervisor.listEvents({ limit, sinceId, ...(sourceId ? { sourceId } : {}) }) }];
        },
      },
      {
        method: 'POST',
        pattern: /^\/v1\/shutdown$/,
        handler: () => {
          setImmediate(this.onShutdownRequested);
          return [202, { shuttingDown: true }];
        },
      },
    ];
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  private findCluster(name: string) {
    const cluster = this.supervisor.status().clusters.find((c) => c.name === name);
    if (!cluster) throw new ControlError('not-found', `cluster "${name}" does not exist`);
    return cluster;
  }

  async listen(port: number, host: string): Promise<string> {
    await listenOn(this.server, port, host);
    return `http://${host}:${port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://borealis');
    // The dashboard's page and assets are public; its data calls carry the token.
    if (req.method === 'GET' && (url.pathname === '/dashboard' || url.pathname.startsWith('/dashboard/'))) {
      const asset = dashboardAsset(url.pathname);
      if (!asset) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, 'cache-control': 'no-cache' });
      res.end(asset.body);
      return;
    }
    // Prometheus scrapes without the token: figures only, on the API's own address.
    if (req.method === 'GET' && url.pathname === '/metrics') {
      const text = renderMetrics(this.supervisor.metrics());
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    try {
      if (!this.authorized(req.headers.authorization)) throw new HttpError(401, 'Unauthorized', 'missing or wrong API token');
      const route = this.routes.find((r) => r.method === req.method && r.pattern.test(url.pathname));
      if (!route) throw new HttpError(404, 'NotFound', `no route ${req.method} ${url.pathname}`);
      const body = await readJson(req);
      const [status, payload] = await route.handler(route.pattern.exec(url.pathname)!, body, url);
      send(res, status, payload);
    } catch (err) {
      const [status, code] = errorStatus(err);
      if (status >= 500) this.log.error('API request failed', { method: req.method, path: url.pathname, error: (err as Error).message });
      // Control-plane errors are written for the operator (a failover refused for want of storage says why); others stay in the log.
      send(res, status, { error: { code, message: status >= 500 && !(err instanceof ControlError) ? 'internal error; see the supervisor log' : (err as Error).message } });
    }
  }

  private authorized(header: string | undefined): boolean {
    const expected = Buffer.from(`Bearer ${this.token}`);
    const given = Buffer.from(header ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}

function errorStatus(err: unknown): [number, string] {
  if (err instanceof HttpError) return [err.status, err.code];
  if (err instanceof ControlError) {
    switch (err.kind) {
      case 'invalid':
        return [400, 'InvalidParameterValue'];
      case 'not-found':
        return [404, 'NotFound'];
      case 'conflict':
        return [409, 'AlreadyExists'];
      case 'unavailable':
        return [503, 'Unavailable'];
    }
  }
  return [500, 'InternalError'];
}

function send(res: http.ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > REQUEST_BYTES_MAX) throw new HttpError(413, 'PayloadTooLarge', `request body over ${REQUEST_BYTES_MAX} bytes`);
  const body = await readBounded(req, REQUEST_BYTES_MAX, () => new HttpError(413, 'PayloadTooLarge', `request body over ${REQUEST_BYTES_MAX} bytes`));
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'MalformedJson', 'request body is not valid JSON');
  }
}

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'InvalidParameterValue', 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

function optionalString(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new HttpError(400, 'InvalidParameterValue', `${key} must be a string`);
  return v;
}

function stringList(o: Record<string, unknown>, key: string): string[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new HttpError(400, 'InvalidParameterValue', `${key} must be an array of strings`);
  return v;
}

/** Aurora's field names: MinCapacity, MaxCapacity, SecondsUntilAutoPause (camelCase here). */
function scalingInput(o: Record<string, unknown>): { minAcu?: number; maxAcu?: number; secondsUntilAutoPause?: number } {
  const out: { minAcu?: number; maxAcu?: number; secondsUntilAutoPause?: number } = {};
  for (const [field, key] of [['minCapacity', 'minAcu'], ['maxCapacity', 'maxAcu'], ['secondsUntilAutoPause', 'secondsUntilAutoPause']] as const) {
    const v = o[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new HttpError(400, 'InvalidParameterValue', `${field} must be a number`);
    out[key] = v;
  }
  return out;
}
