// Maps the cancel keys Borealis hands to clients onto the backend each
// client is using at that moment (in transaction pooling that changes from
// one transaction to the next). Clients never learn a backend's pid or key.
import { randomInt } from 'node:crypto';

export interface BackendKey {
  readonly socketPath: string;
  readonly processId: number;
  readonly secretKey: number;
}

export interface ClientKey {
  readonly processId: number;
  readonly secretKey: number;
}

export class CancelRegistry {
  /** By client-facing process id (unique while allocated); the secret is checked on lookup. */
  private readonly byProcessId = new Map<number, { secretKey: number; backend: BackendKey | null }>();
  private nextProcessId = 1;

  /** Allocates a client-facing key, attached to no backend yet. */
  allocate(): ClientKey {
    let processId = this.nextProcessId;
    while (this.byProcessId.has(processId)) processId = processId >= 0x7fffffff ? 1 : processId + 1;
    this.nextProcessId = processId >= 0x7fffffff ? 1 : processId + 1;
    const secretKey = randomInt(-0x80000000, 0x7fffffff);
    this.byProcessId.set(processId, { secretKey, backend: null });
    return { processId, secretKey };
  }

  /** Points the key at a backend, or at none (between transactions). */
  attach(key: ClientKey, backend: BackendKey | null): void {
    const entry = this.byProcessId.get(key.processId);
    if (entry) entry.backend = backend;
  }

  release(key: ClientKey): void {
    this.byProcessId.delete(key.processId);
  }

  lookup(processId: number, secretKey: number): BackendKey | null {
    const entry = this.byProcessId.get(processId);
    return entry && entry.secretKey === secretKey ? entry.backend : null;
  }

  get size(): number {
    return this.byProcessId.size;
  }
}
