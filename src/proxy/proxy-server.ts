// The front door's listeners: one TCP port per endpoint. Each accepted
// socket becomes a ClientConnection; counts per state are kept for status
// and metrics.
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../util/logger.js';
import { CancelRegistry } from './cancel-registry.js';
import { ClientConnection, type ClientState, type ProxyDirectory, type ProxyLimits } from './client-connection.js';
import { randomBytes } from 'node:crypto';

export interface EndpointBinding {
  readonly cluster: string;
  readonly type: string;
  readonly host: string;
  readonly port: number;
}

export class ProxyServer {
  private readonly listeners = new Map<number, { server: net.Server; binding: EndpointBinding }>();
  private readonly clients = new Set<ClientConnection>();
  private readonly cancels = new CancelRegistry();
  private readonly secureContext: tls.SecureContext;
  private readonly mockSecret = randomBytes(32);
  readonly clientsByState: Record<ClientState, number> = { startup: 0, 'tls-handshake': 0, authenticating: 0, connecting: 0, forwarding: 0, closed: 0 };

  constructor(
    tlsMaterial: { key: string; cert: string },
    private readonly directory: ProxyDirectory,
    private readonly limits: ProxyLimits,
    private readonly log: Logger,
  ) {
    this.secureContext = tls.createSecureContext({ key: tlsMaterial.key, cert: tlsMaterial.cert, minVersion: 'TLSv1.2' });
  }

  async listen(binding: EndpointBinding): Promise<void> {
    if (this.listeners.has(binding.port)) return;
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket, binding));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(binding.port, binding.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error('endpoint listener failed', { port: binding.port, error: err.message }));
    this.listeners.set(binding.port, { server, binding });
    this.log.info('endpoint listening', { cluster: binding.cluster, type: binding.type, host: binding.host, port: binding.port });
  }

  /**
   * Stops accepting on a port. Sessions already forwarded stay up until their
   * backend ends them (close()'s callback would wait for them, so it is not
   * awaited).
   */
  unlisten(port: number): void {
    const entry = this.listeners.get(port);
    if (!entry) return;
    this.listeners.delete(port);
    entry.server.close();
  }

  private accept(socket: net.Socket, binding: EndpointBinding): void {
    const client = new ClientConnection(socket, {
      cluster: binding.cluster,
      limits: this.limits,
      secureContext: this.secureContext,
      cancels: this.cancels,
      directory: this.directory,
      mockSecret: this.mockSecret,
      log: this.log,
      onStateChange: (from, to) => {
        this.clientsByState[from]--;
        if (to === 'closed') this.clients.delete(client);
        else this.clientsByState[to]++;
      },
    });
    this.clientsByState.startup++;
    this.clients.add(client);
  }

  /** Stops accepting and ends every client that has not reached a backend. */
  close(): void {
    for (const port of [...this.listeners.keys()]) this.unlisten(port);
    for (const client of this.clients) client.fail({ kind: 'shutting-down' });
  }

  get clientCount(): number {
    return this.clients.size;
  }
}
