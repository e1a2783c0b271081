// Maps the cancel keys Borealis hands to clients onto the backends they are
// attached to. Clients never learn a backend's real pid or secret.
import { randomInt } from 'node:crypto';

export interface BackendKey {
  readonly socketPath: string;
  readonly processId: number;
  readonly secretKey: number;
}

export class CancelRegistry {
  private readonly byKey = new Map<string, BackendKey>();
  private nextProcessId = 1;

  /** Allocates a client-facing key; bind it to a backend with attach(). */
  allocate(): { processId: number; secretKey: number } {
    const processId = this.nextProcessId;
    this.nextProcessId = this.nextProcessId >= 0x7fffffff ? 1 : this.nextProcessId + 1;
    return { processId, secretKey: randomInt(-0x80000000, 0x7fffffff) };
  }

  attach(processId: number, secretKey: number, backend: BackendKey): void {
    this.byKey.set(`${processId}:${secretKey}`, backend);
  }

  release(processId: number, secretKey: number): void {
    this.byKey.delete(`${processId}:${secretKey}`);
  }

  lookup(processId: number, secretKey: number): BackendKey | null {
    return this.byKey.get(`${processId}:${secretKey}`) ?? null;
  }

  get size(): number {
    return this.byKey.size;
  }
}
