// A server connection owned by a pool: a PostgreSQL session on the writer's
// private socket, lent to one client at a time.
import type net from 'node:net';
import type { BackendKey } from './cancel-registry.js';

export type PooledServerState = 'idle' | 'active' | 'resetting' | 'closed';

/** Who receives a server's bytes while it is lent out. */
export interface ServerOwner {
  onServerData(chunk: Buffer): void;
  onServerClosed(): void;
}

export class PooledServer {
  state: PooledServerState = 'idle';
  owner: ServerOwner | null = null;
  /** Values the server reported with ParameterStatus. */
  readonly params = new Map<string, string>();
  /** Statement names prepared on this server (Borealis's names, not clients'). */
  readonly prepared = new Set<string>();
  idleSince = Date.now();
  private readonly closeListeners: Array<() => void> = [];

  constructor(
    readonly socket: net.Socket,
    readonly key: BackendKey,
  ) {
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.owner) this.owner.onServerData(chunk);
      // Nothing is owed to an idle server's nobody: it is broken.
      else this.close();
    });
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    socket.resume();
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.socket.destroy();
    const owner = this.owner;
    this.owner = null;
    owner?.onServerClosed();
    for (const l of this.closeListeners) l();
  }
}
