// The front door's listeners (one TCP port per endpoint), its pools, and
// the counts that status and metrics show.
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { LatencyHistogram } from '../metrics/histogram.js';
import { errorResponse } from '../pgwire/messages.js';
import { listenOn } from '../util/listen.js';
import type { Logger } from '../util/logger.js';
import { LoginThrottle } from './auth-throttle.js';
import { CancelRegistry } from './cancel-registry.js';
import { ClientConnection, type ClientState, type EndpointRef, type PoolDirectory, type ProxyDirectory, type ProxyLimits } from './client-connection.js';
import { toErrorFields } from './errors.js';
import { SYNCED_PARAMS } from './pooled-session.js';
import { PooledServer, setParam } from './pooled-server.js';
import { openInstanceSession } from './server-connection.js';
import { PoolLimitError, ServerPool, type PoolStats } from './server-pool.js';

export interface EndpointBinding extends EndpointRef {
  readonly host: string;
  readonly port: number;
}

export interface ProxySettings extends ProxyLimits {
  readonly clientConnectionsMax: number;
  readonly serverPoolSizeMax: number;
  readonly clientQueueMax: number;
  readonly clientQueueTimeoutMs: number;
  readonly serverIdleTimeoutMs: number;
  readonly authFailuresPerUserSourceMax: number;
  readonly authFailuresPerSourceMax: number;
  readonly authFailureWindowMs: number;
}

export interface ProxyStats {
  /** Client connections by state: startup, tls-handshake, authenticating, connecting, session. */
  readonly clientsByState: Readonly<Record<ClientState, number>>;
  /** Clients holding a server for good because of session state. */
  readonly pinnedClients: number;
  /** One per (cluster, user, database, startup options). */
  readonly pools: ReadonlyArray<{ readonly cluster: string; readonly instanceId: string; readonly user: string; readonly database: string } & PoolStats>;
}

/** Startup parameters that never reach a server's startup packet. */
const CLIENT_ONLY_PARAMS = new Set(['user', 'database', ...SYNCED_PARAMS]);

export class ProxyServer implements PoolDirectory {
  private readonly listeners = new Map<number, { server: net.Server; binding: EndpointBinding }>();
  private readonly clients = new Set<ClientConnection>();
  private readonly pools = new Map<string, { pool: ServerPool; cluster: string; instanceId: string; user: string; database: string }>();
  private readonly cancels = new CancelRegistry();
  private readonly secureContext: tls.SecureContext;
  private readonly certificateHash: Buffer;
  private readonly throttle: LoginThrottle;
  private readonly mockSecret = randomBytes(32);
  private readonly clientsByState: Record<ClientState, number> = { startup: 0, 'tls-handshake': 0, authenticating: 0, connecting: 0, session: 0, closed: 0 };
  private pinnedClients = 0;
  /** Server caps per instance, set from capacity by the autoscaler. */
  private readonly poolSizes = new Map<string, number>();

  constructor(
    tlsMaterial: { key: string; cert: string },
    private readonly directory: ProxyDirectory,
    private readonly settings: ProxySettings,
    private readonly log: Logger,
  ) {
    this.secureContext = tls.createSecureContext({ key: tlsMaterial.key, cert: tlsMaterial.cert, minVersion: 'TLSv1.2' });
    // RFC 5929: the certificate's hash with its signature's hash (SHA-256 here).
    this.certificateHash = createHash('sha256').update(new X509Certificate(tlsMaterial.cert).raw).digest();
    this.throttle = new LoginThrottle({
      perUserSourceMax: settings.authFailuresPerUserSourceMax,
      perSourceMax: settings.authFailuresPerSourceMax,
      windowMs: settings.authFailureWindowMs,
      keysMax: 100_000,
    });
  }

  async listen(binding: EndpointBinding): Promise<void> {
    if (this.listeners.has(binding.port)) return;
    const endpointHosts = new Set([`${binding.host}:${binding.port}`, `localhost:${binding.port}`, `127.0.0.1:${binding.port}`]);
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket, binding, endpointHosts));
    await listenOn(server, binding.port, binding.host, 4096);
    server.on('error', (err) => this.log.error('endpoint listener failed', { port: binding.port, error: err.message }));
    this.listeners.set(binding.port, { server, binding });
    this.log.info('endpoint listening', { cluster: binding.cluster, type: binding.type, host: binding.host, port: binding.port });
  }

  /**
   * Stops accepting on a port. Sessions already running stay up until their
   * server ends them (close()'s callback would wait for them, so it is not
   * awaited).
   */
  unlisten(port: number): void {
    const entry = this.listeners.get(port);
    if (!entry) return;
    this.listeners.delete(port);
    entry.server.close();
  }

  /** Drops the pools of a cluster, or of one instance (they are going away). */
  closePools(of: { readonly cluster: string } | { readonly instanceId: string }): void {
    for (const [key, entry] of this.pools) {
      if ('cluster' in of ? entry.cluster !== of.cluster : entry.instanceId !== of.instanceId) continue;
      entry.pool.close();
      this.pools.delete(key);
    }
    if ('instanceId' in of) this.poolSizes.delete(of.instanceId);
  }

  /** `asWriter`: the pool of a writer endpoint, whose servers are opened only on the writer of record (see openInstanceSession). */
  poolFor(cluster: string, instanceId: string, startupParams: ReadonlyMap<string, string>, asWriter = false): ServerPool {
    const user = startupParams.get('user')!;
    const database = startupParams.get('database') ?? user;
    // Parameters a server does not report cannot be re-aligned later, so
    // they are part of the pool's identity and of its servers' startup.
    const fixed = [...startupParams].filter(([name]) => !CLIENT_ONLY_PARAMS.has(name)).sort(([a], [b]) => (a < b ? -1 : 1));
    const key = JSON.stringify([instanceId, asWriter, user, database, fixed]);
    const existing = this.pools.get(key);
    if (existing) return existing.pool;
    if (this.pools.size >= this.settings.poolsMax) {
      // Startup options are the client's to choose: drop pools nobody uses before refusing.
      for (const [k, e] of this.pools) {
        if (!e.pool.unused) continue;
        e.pool.close();
        this.pools.delete(k);
      }
      if (this.pools.size >= this.settings.poolsMax) throw new PoolLimitError(this.settings.poolsMax);
    }
    const serverParams = new Map([['user', user], ['database', database], ...fixed]);
    const pool = new ServerPool(
      key,
      instanceId,
      async () => {
        const s = await openInstanceSession(this.directory, instanceId, serverParams, Date.now() + this.settings.clientWaitForWriterMs, asWriter);
        const server = new PooledServer(s.socket, { socketPath: s.socketPath, processId: s.processId, secretKey: s.secretKey });
        for (const frame of s.parameterFrames) setParam(server.params, frame.subarray(5));
        if (s.leftover.length > 0) server.close();
        return server;
      },
      {
        serversMax: this.poolSizes.get(instanceId) ?? this.settings.serverPoolSizeMax,
        queueMax: this.settings.clientQueueMax,
        queueTimeoutMs: this.settings.clientQueueTimeoutMs,
        serverIdleTimeoutMs: this.settings.serverIdleTimeoutMs,
      },
    );
    this.pools.set(key, { pool, cluster, instanceId, user, database });
    return pool;
  }

  /** Load the autoscaler reads: client sessions and queued clients on an instance. */
  instanceLoad(instanceId: string): { connections: number; queuedClients: number; transactionsTotal: number } {
    let connections = 0;
    let queuedClients = 0;
    let transactionsTotal = 0;
    for (const e of this.pools.values()) {
      if (e.instanceId !== instanceId) continue;
      connections += e.pool.sessions;
      queuedClients += e.pool.stats().waiting;
      transactionsTotal += e.pool.lends;
    }
    return { connections, queuedClients, transactionsTotal };
  }

  /** Commit latency on an instance, over all of its pools. */
  instanceCommitLatency(instanceId: string): LatencyHistogram {
    const total = new LatencyHistogram();
    for (const e of this.pools.values()) if (e.instanceId === instanceId) total.add(e.pool.commitLatency);
    return total;
  }

  /** Pool size follows capacity. */
  setInstancePoolSize(instanceId: string, serversMax: number): void {
    this.poolSizes.set(instanceId, serversMax);
    for (const e of this.pools.values()) if (e.instanceId === instanceId) e.pool.resize(serversMax);
  }

  private accept(socket: net.Socket, binding: EndpointBinding, endpointHosts: ReadonlySet<string>): void {
    if (this.clients.size >= this.settings.clientConnectionsMax) {
      // Refused before reading a byte: the startup packet would say nothing new.
      socket.on('error', () => undefined);
      socket.end(errorResponse(toErrorFields({ kind: 'too-many-clients', limit: this.settings.clientConnectionsMax })));
      setTimeout(() => socket.destroy(), 1_000).unref();
      return;
    }
    const client = new ClientConnection(socket, {
      endpoint: { cluster: binding.cluster, type: binding.type, name: binding.name },
      limits: this.settings,
      secureContext: this.secureContext,
      certificateHash: this.certificateHash,
      throttle: this.throttle,
      endpointHosts,
      cancels: this.cancels,
      directory: this.directory,
      pools: this,
      mockSecret: this.mockSecret,
      log: this.log,
      onStateChange: (from, to) => {
        this.clientsByState[from]--;
        if (to === 'closed') this.clients.delete(client);
        else this.clientsByState[to]++;
      },
      onPinChange: (delta) => (this.pinnedClients += delta),
    });
    this.clientsByState.startup++;
    this.clients.add(client);
  }

  stats(): ProxyStats {
    return {
      clientsByState: { ...this.clientsByState },
      pinnedClients: this.pinnedClients,
      pools: [...this.pools.values()].map(({ pool, cluster, instanceId, user, database }) => ({ cluster, instanceId, user, database, ...pool.stats() })),
    };
  }

  /** Stops accepting, ends clients still starting up, closes idle servers. */
  close(): void {
    for (const port of [...this.listeners.keys()]) this.unlisten(port);
    for (const client of this.clients) if (client.state !== 'session') client.fail({ kind: 'shutting-down' });
    for (const { pool } of this.pools.values()) pool.close();
  }
}
