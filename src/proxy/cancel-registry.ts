// Maps the cancel keys Borealis hands to clients onto the backend each
// client is using at that moment (in transaction pooling that changes from
// one transaction to the next). Clients never learn a backend's pid or key.
//
// The process id a client sees lies above every pid Linux can hand out
// (PID_MAX_LIMIT is 2^22), so `pg_terminate_backend(<that id>)` or
// `pg_cancel_backend` can never name a backend, the client's or another's;
// PostgreSQL answers it with a warning and false. Cancelling goes through
// CancelRequest, which the proxy routes by this key.
import { randomInt } from 'node:crypto';

/** Linux's PID_MAX_LIMIT: no process id is ever above it. */
export const CLIENT_PROCESS_ID_MIN = 4_194_304 + 1;
const CLIENT_PROCESS_ID_MAX = 0x7fffffff;

export interface BackendKey {
  readonly socketPath: string;
  readonly processId: number;
  readonly secretKey: number;
}

export interface ClientKey {
  readonly processId: number;
  readonly secretKey: number;
}

/**
 * The server a cancel is aimed at, held out of circulation while the cancel
 * is on its way: otherwise a client's transaction could end meanwhile, the
 * server go to another client, and the cancel stop that client's query.
 */
export interface CancelTarget {
  cancelStarted(): void;
  cancelEnded(): void;
}

export class CancelRegistry {
  /** By client-facing process id (unique while allocated); the secret is checked on lookup. */
  private readonly byProcessId = new Map<number, { secretKey: number; backend: BackendKey | null; target: CancelTarget | null }>();
  private nextProcessId = CLIENT_PROCESS_ID_MIN;

  /** Allocates a client-facing key, attached to no backend yet. */
  allocate(): ClientKey {
    let processId = this.nextProcessId;
    while (this.byProcessId.has(processId)) processId = processId >= CLIENT_PROCESS_ID_MAX ? CLIENT_PROCESS_ID_MIN : processId + 1;
    this.nextProcessId = processId >= CLIENT_PROCESS_ID_MAX ? CLIENT_PROCESS_ID_MIN : processId + 1;
    const secretKey = randomInt(-0x80000000, 0x7fffffff);
    this.byProcessId.set(processId, { secretKey, backend: null, target: null });
    return { processId, secretKey };
  }

  /** Points the key at a backend, or at none (between transactions). */
  attach(key: ClientKey, backend: BackendKey | null, target: CancelTarget | null = null): void {
    const entry = this.byProcessId.get(key.processId);
    if (entry) {
      entry.backend = backend;
      entry.target = backend ? target : null;
    }
  }

  release(key: ClientKey): void {
    this.byProcessId.delete(key.processId);
  }

  lookup(processId: number, secretKey: number): { backend: BackendKey; target: CancelTarget | null } | null {
    const entry = this.byProcessId.get(processId);
    return entry && entry.secretKey === secretKey && entry.backend ? { backend: entry.backend, target: entry.target } : null;
  }

  get size(): number {
    return this.byProcessId.size;
  }
}
