// What the front door knows of a cluster's roles: the row of pg_authid a
// login is checked against, the pure decision of how that login must
// authenticate, and reads that are always fresh yet shared by logins that
// arrive together. The rows themselves come from the control plane (see
// src/control/identity.ts), which reads them from the cluster's writer.
// https://www.postgresql.org/docs/17/catalog-pg-authid.html
import { parseVerifier, type ScramVerifier } from '../auth/scram.js';

/** One role as pg_authid has it (only what authentication needs). */
export interface RoleRecord {
  readonly name: string;
  readonly canLogin: boolean;
  /** rolpassword: a SCRAM-SHA-256 verifier, an md5 hash, or null. Never logged. */
  readonly password: string | null;
  /** rolvaliduntil in epoch ms; null means forever. */
  readonly validUntilMs: number | null;
  /** A member (directly or not) of rds_iam: IAM tokens only, as on RDS. */
  readonly iam: boolean;
}

/**
 * How a login must prove itself. `none` still runs a SCRAM exchange against
 * a mock verifier, so that a missing role, an expired or md5 password, or
 * no password at all look exactly like a wrong password (28P01), as in
 * PostgreSQL's CheckSCRAMAuth.
 */
export type LoginMethod =
  | { readonly method: 'scram'; readonly verifier: ScramVerifier; readonly canLogin: boolean }
  | { readonly method: 'iam'; readonly canLogin: boolean }
  | { readonly method: 'none' };

export function loginMethod(role: RoleRecord | null, now: number): LoginMethod {
  if (!role) return { method: 'none' };
  // rds_iam wins over a password, as on RDS.
  if (role.iam) return { method: 'iam', canLogin: role.canLogin };
  if (role.password === null || !role.password.startsWith('SCRAM-SHA-256$')) return { method: 'none' };
  // PostgreSQL: "User has an expired password" — refused like a wrong one.
  if (role.validUntilMs !== null && role.validUntilMs < now) return { method: 'none' };
  let verifier: ScramVerifier;
  try {
    verifier = parseVerifier(role.password);
  } catch {
    return { method: 'none' };
  }
  return { method: 'scram', verifier, canLogin: role.canLogin };
}

/**
 * Reads by key where every caller gets a read that began after it asked
 * (so a login after ALTER ROLE … PASSWORD sees the new verifier), while
 * callers that ask during one read share the next: at most one read in
 * flight and one waiting per key, however many logins storm in.
 */
export class FreshReads<V> {
  private readonly keys = new Map<string, { running: Promise<V>; next: Promise<V> | null }>();

  constructor(private readonly read: (key: string) => Promise<V>) {}

  get(key: string): Promise<V> {
    const entry = this.keys.get(key);
    if (!entry) return this.start(key);
    // The running read may predate the caller: wait for the one after it.
    entry.next ??= entry.running.then(
      () => this.start(key),
      () => this.start(key),
    );
    return entry.next;
  }

  private start(key: string): Promise<V> {
    const running = this.read(key);
    const entry = { running, next: null as Promise<V> | null };
    this.keys.set(key, entry);
    const done = (): void => {
      // A read queued meanwhile has already replaced this entry.
      if (this.keys.get(key) === entry) this.keys.delete(key);
    };
    running.then(done, done);
    return running;
  }

  /** Keys with a read running (bounded by the logins in progress). */
  get size(): number {
    return this.keys.size;
  }
}
