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
  private readonly byKey = new Map<string, BackendKey | null>();
  private nextProcessId = 1;

  /** Allocates a client-facing key, attached to no backend yet. */
  allocate(): ClientKey {
    const processId = this.nextProcessId;
    this.nextProcessId = this.nextProcessId >= 0x7fffffff ? 1 : this.nextProcessId + 1;
    const key = { processId, secretKey: randomInt(-0x80000000, 0x7fffffff) };
    this.byKey.set(`${key.processId}:${key.secretKey}`, null);
    return key;
  }

  /** Points the key at a backend, or at none (between transactions). */
  attach(key: ClientKey, backend: BackendKey | null): void {
    this.byKey.set(`${key.processId}:${key.secretKey}`, backend);
  }

  release(key: ClientKey): void {
    this.byKey.delete(`${key.processId}:${key.secretKey}`);
  }

  lookup(processId: number, secretKey: number): BackendKey | null {
    return this.byKey.get(`${processId}:${secretKey}`) ?? null;
  }

  get size(): number {
    return this.byKey.size;
  }
}
