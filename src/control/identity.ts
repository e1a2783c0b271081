// A cluster's users are its PostgreSQL roles. This reads them from the
// writer's pg_authid for the proxy (as PgBouncer's auth_query does: a
// privileged lookup over the private socket, never through the proxy),
// keeps the last-known rows in the state store for logins while the cluster
// is paused, and carries out `borealis user …` as CREATE/ALTER/DROP ROLE.
// Decisions and their reasons: docs/security.md.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { deriveVerifier, formatVerifier, SCRAM_ITERATIONS_DEFAULT } from '../auth/scram.js';
import { INTERNAL_SESSION_OPTIONS } from '../engine/postgres-server.js';
import { FreshReads, type RoleRecord } from '../proxy/role-directory.js';
import type { Logger } from '../util/logger.js';
import type { Store } from './store.js';

/** RDS's role for IAM database authentication: its members log in with IAM tokens only. */
export const RDS_IAM = 'rds_iam';
/** RDS's role for the master user: everything but superuser. */
export const RDS_SUPERUSER = 'rds_superuser';
/** Borealis's own superuser in clusters made since the master user stopped being one. */
export const INTERNAL_SUPERUSER = 'borealis_admin';

/** The writer of a cluster as the lookup sees it. */
export interface WriterSocket {
  readonly instanceId: string;
  readonly socketDir: string;
  readonly port: number;
  /** Answers now (not paused, resuming, restarting or failing over). */
  readonly available: boolean;
  /** Paused, or pausing or resuming from a pause: pg_authid cannot have changed since its rows were taken. */
  readonly asleep: boolean;
  /** Resolves true once it answers, false at the deadline (never resumes a paused writer). */
  readonly waitAvailable: (timeoutMs: number) => Promise<boolean>;
}

export interface IdentityDeps {
  readonly store: Store;
  readonly writer: (cluster: string) => WriterSocket | null;
  /** The role Borealis manages the cluster as (a superuser, over the private socket). */
  readonly superuser: (cluster: string) => string;
  /** The cluster's master user (the superuser itself in clusters made before it had its own). */
  readonly masterUser: (cluster: string) => string;
  /** A session on the writer as the superuser; a paused writer is resumed for it. */
  readonly withWriterSession: <T>(cluster: string, fn: (client: pg.Client) => Promise<T>) => Promise<T>;
  /** Roles no one may create, alter or drop through `borealis user`. */
  readonly reservedRoles: (cluster: string) => ReadonlySet<string>;
  /** How long a login waits for pg_authid before it falls back to the last-known row. */
  readonly lookupTimeoutMs: number;
  /** How long a login waits for a restarting or failing-over writer (it would wait that long for a server anyway). */
  readonly writerWaitMs: number;
  readonly log: Logger;
}

export type IdentityErrorKind = 'invalid' | 'not-found' | 'conflict';

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
  constructor(
    readonly kind: IdentityErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export interface UserView {
  readonly name: string;
  readonly auth: 'password' | 'iam' | 'none';
  readonly canLogin: boolean;
}

/**
 * The rows authentication needs. rds_iam membership is followed through
 * pg_auth_members, not pg_has_role, which says yes for every superuser;
 * only through grants that inherit, so that the ADMIN-only grants
 * PostgreSQL 16+ gives a role's creator (and rds_superuser's ADMIN on
 * rds_iam) do not make the master user an IAM user.
 */
const ROLES_SQL = `
SELECT a.rolname AS name, a.rolcanlogin AS "canLogin", a.rolpassword AS password,
       (extract(epoch FROM a.rolvaliduntil) * 1000)::float8 AS "validUntilMs",
       EXISTS (
         WITH RECURSIVE up(roleid) AS (
           SELECT m.roleid FROM pg_auth_members m WHERE m.member = a.oid AND m.inherit_option
           UNION SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.roleid WHERE m.inherit_option)
         SELECT 1 FROM up JOIN pg_authid g ON g.oid = up.roleid WHERE g.rolname = '${RDS_IAM}') AS iam
  FROM pg_authid a
 WHERE ($1::text IS NULL OR a.rolname = $1) AND a.rolname !~ '^pg_'`;

const ENSURE_RDS_IAM_SQL = `DO $$BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${RDS_IAM}') THEN CREATE ROLE ${RDS_IAM} NOLOGIN; END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END$$`;

interface RoleRow {
  name: string;
  canLogin: boolean;
  password: string | null;
  validUntilMs: number | null;
  iam: boolean;
}

function toRecord(r: RoleRow): RoleRecord {
  const until = r.validUntilMs === null ? null : Number(r.validUntilMs);
  // 'infinity' is forever; '-infinity' is long expired.
  return { name: r.name, canLogin: r.canLogin, password: r.password, validUntilMs: until === Infinity ? null : until === -Infinity ? 0 : until, iam: r.iam };
}

function sameRole(a: RoleRecord | null, b: RoleRecord): boolean {
  return a !== null && a.canLogin === b.canLogin && a.password === b.password && a.validUntilMs === b.validUntilMs && a.iam === b.iam;
}

const PASSWORD_LENGTH = { min: 8, max: 128 };
/** Between reads of pg_authid that failed while the writer still looked up. */
const READ_RETRY_INTERVAL_MS = 200;

export class Identity {
  /** One small pool per writer instance, as the superuser over its private socket. */
  private readonly pools = new Map<string, pg.Pool>();
  private readonly reads: FreshReads<RoleRecord | null>;

  constructor(private readonly deps: IdentityDeps) {
    this.reads = new FreshReads((key) => {
      const [cluster, user] = key.split('\0') as [string, string];
      return this.readLive(cluster, user);
    });
  }

  /**
   * The role a login is checked against: read from the writer after the
   * login began. A paused writer is not woken for it: its last-known rows,
   * taken as it paused, are exact. A writer that is restarting or failing
   * over may have had its roles changed since they were last read, so the
   * login waits for it (as it would for a server) and reads then; only if
   * it does not come back is the last-known row used.
   */
  async lookup(cluster: string, user: string): Promise<RoleRecord | null> {
    const deadline = Date.now() + this.deps.writerWaitMs;
    let failure = 'the writer did not come back in time';
    for (;;) {
      const writer = this.deps.writer(cluster);
      // Paused (perhaps meanwhile): its rows were taken as it paused.
      if (!writer || writer.asleep) return this.deps.store.getRole(cluster, user);
      if (!writer.available && !(await writer.waitAvailable(Math.max(0, deadline - Date.now())))) break;
      try {
        return await this.readWithin(cluster, user);
      } catch (err) {
        failure = (err as Error).message;
      }
      // A writer that crashed a moment ago may not look down yet: try again shortly.
      if (Date.now() + READ_RETRY_INTERVAL_MS >= deadline) break;
      await sleep(READ_RETRY_INTERVAL_MS);
    }
    this.deps.log.warn('could not read pg_authid; using the last-known role', { cluster, error: failure });
    return this.deps.store.getRole(cluster, user);
  }

  /** A fresh read, or throws (also when it takes longer than lookupTimeoutMs). */
  private async readWithin(cluster: string, user: string): Promise<RoleRecord | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.deps.lookupTimeoutMs)));
    try {
      const found = await Promise.race([this.reads.get(`${cluster}\0${user}`), timeout]);
      if (found === 'timeout') throw new Error(`pg_authid did not answer within ${this.deps.lookupTimeoutMs} ms`);
      return found;
    } finally {
      clearTimeout(timer);
    }
  }

  private async readLive(cluster: string, user: string): Promise<RoleRecord | null> {
    const rows = await this.query(cluster, user);
    const role = rows[0] ?? null;
    // Written through, so the last-known rows follow every login; only when
    // changed, so a storm of logins costs the state store no fsyncs.
    const known = this.deps.store.getRole(cluster, user);
    if (role && !sameRole(known, role)) this.deps.store.upsertRole(cluster, role);
    else if (!role && known) this.deps.store.deleteRole(cluster, user);
    return role;
  }

  private async query(cluster: string, user: string | null): Promise<RoleRecord[]> {
    const writer = this.deps.writer(cluster);
    if (!writer) throw new Error(`cluster "${cluster}" has no writer`);
    // Named: parsed and planned once per pooled session, not at every login.
    const result = await this.pool(cluster, writer).query<RoleRow>({ name: 'borealis_roles', text: ROLES_SQL, values: [user] });
    return result.rows.map(toRecord);
  }

  private pool(cluster: string, writer: WriterSocket): pg.Pool {
    let pool = this.pools.get(writer.instanceId);
    if (!pool) {
      pool = new pg.Pool({
        host: writer.socketDir,
        port: writer.port,
        user: this.deps.superuser(cluster),
        database: 'postgres',
        application_name: 'borealis-identity',
        options: INTERNAL_SESSION_OPTIONS,
        max: 2,
        idleTimeoutMillis: 30_000,
        connectionTimeoutMillis: this.deps.lookupTimeoutMs,
      });
      // An idle connection ended by a pause or restart is just dropped.
      pool.on('error', () => undefined);
      this.pools.set(writer.instanceId, pool);
    }
    return pool;
  }

  /** Drops the pool of an instance that stopped being a writer or went away. */
  forget(instanceId: string): void {
    const pool = this.pools.get(instanceId);
    if (!pool) return;
    this.pools.delete(instanceId);
    void pool.end().catch(() => undefined);
  }

  /** Replaces the last-known rows with a full read of the writer's pg_authid. */
  async snapshot(cluster: string, client?: pg.Client): Promise<void> {
    const rows = client ? (await client.query<RoleRow>(ROLES_SQL, [null])).rows.map(toRecord) : await this.query(cluster, null);
    this.deps.store.replaceRoles(cluster, rows);
  }

  /**
   * Once a writer runs: rds_iam exists, users made as IAM users before
   * roles were read from the cluster are granted it, and the last-known
   * rows are refreshed.
   */
  async prepare(cluster: string): Promise<void> {
    await this.deps.withWriterSession(cluster, async (client) => {
      // Not worth waiting on the storage quorum for: it is done again at every start.
      await client.query('SET synchronous_commit = local');
      await client.query(ENSURE_RDS_IAM_SQL);
      const legacy = this.deps.store.listLegacyUsers(cluster);
      for (const u of legacy.filter((x) => x.auth === 'iam')) {
        await client.query(`DO $$BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${client.escapeLiteral(u.name)}) THEN GRANT ${RDS_IAM} TO ${client.escapeIdentifier(u.name)}; END IF; END$$`);
      }
      if (legacy.length > 0) this.deps.store.deleteLegacyUsers(cluster);
      await this.snapshot(cluster, client);
    });
  }

  /**
   * The master user of a cluster with an internal superuser: a login role
   * with CREATEROLE and CREATEDB, a member of rds_superuser (which holds
   * pg_read_all_data, pg_write_all_data, pg_monitor and pg_signal_backend,
   * and may grant rds_iam), and the owner of the postgres database (so it
   * may create in its public schema, as PostgreSQL 15+ requires). Run once,
   * when the cluster is made.
   */
  async createMaster(cluster: string, name: string, verifier: string): Promise<void> {
    await this.deps.withWriterSession(cluster, async (client) => {
      const master = client.escapeIdentifier(name);
      await client.query(ENSURE_RDS_IAM_SQL);
      await client.query(
        [
          'BEGIN',
          `CREATE ROLE ${RDS_SUPERUSER} NOLOGIN`,
          `GRANT pg_read_all_data, pg_write_all_data, pg_monitor, pg_signal_backend TO ${RDS_SUPERUSER} WITH ADMIN OPTION`,
          // ADMIN only: granting rds_iam must not make rds_superuser's members IAM users.
          `GRANT ${RDS_IAM} TO ${RDS_SUPERUSER} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE`,
          // Closing a WAL segment early harms no one; storage tests and operators push a segment to storage with it.
          `GRANT EXECUTE ON FUNCTION pg_switch_wal() TO ${RDS_SUPERUSER}`,
          `CREATE ROLE ${master} LOGIN CREATEROLE CREATEDB PASSWORD ${client.escapeLiteral(verifier)}`,
          `GRANT ${RDS_SUPERUSER} TO ${master} WITH ADMIN OPTION`,
          `ALTER DATABASE postgres OWNER TO ${master}`,
          'COMMIT',
        ].join('; '),
      );
      await this.snapshot(cluster, client);
    });
  }

  /** CREATE ROLE … LOGIN with a SCRAM verifier made here (the password never reaches the server), or IAM. */
  async createUser(cluster: string, name: string, auth: { password: string } | { iam: true }): Promise<void> {
    this.checkReserved(cluster, name);
    const verifier = 'password' in auth ? scramVerifier(auth.password) : null;
    await this.deps.withWriterSession(cluster, async (client) => {
      const role = client.escapeIdentifier(name);
      try {
        const master = this.deps.masterUser(cluster);
        // What PostgreSQL 16+ gives a role's creator: had the master user made
        // it, it could alter and drop it; made by Borealis's superuser, it can too.
        const adminToMaster = master !== this.deps.superuser(cluster) ? `; GRANT ${role} TO ${client.escapeIdentifier(master)} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE` : '';
        if (!verifier) await client.query(ENSURE_RDS_IAM_SQL);
        const create = verifier ? `CREATE ROLE ${role} LOGIN PASSWORD ${client.escapeLiteral(verifier)}` : `CREATE ROLE ${role} LOGIN; GRANT ${RDS_IAM} TO ${role}`;
        await client.query(`BEGIN; ${create}${adminToMaster}; COMMIT`);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw roleError(err, cluster, name);
      }
      await this.refresh(cluster, name, client);
    });
  }

  /** ALTER ROLE … PASSWORD: the next connection needs the new password. */
  async rotatePassword(cluster: string, name: string, password: string): Promise<void> {
    this.checkReserved(cluster, name);
    const verifier = scramVerifier(password);
    await this.deps.withWriterSession(cluster, async (client) => {
      const current = (await client.query<RoleRow>(ROLES_SQL, [name])).rows[0];
      if (!current) throw new IdentityError('not-found', `user "${name}" does not exist in cluster "${cluster}"`);
      if (current.iam) throw new IdentityError('invalid', `user "${name}" authenticates with IAM tokens (a member of ${RDS_IAM}); it has no password to rotate`);
      await client.query(`ALTER ROLE ${client.escapeIdentifier(name)} PASSWORD ${client.escapeLiteral(verifier)}`).catch((err: unknown) => {
        throw roleError(err, cluster, name);
      });
      await this.refresh(cluster, name, client);
    });
  }

  /** DROP ROLE; PostgreSQL refuses while the role owns objects. */
  async deleteUser(cluster: string, name: string): Promise<void> {
    this.checkReserved(cluster, name);
    await this.deps.withWriterSession(cluster, async (client) => {
      await client.query(`DROP ROLE ${client.escapeIdentifier(name)}`).catch((err: unknown) => {
        throw roleError(err, cluster, name);
      });
      await this.refresh(cluster, name, client);
    });
  }

  /** The cluster's roles: read now when the writer answers, the last-known ones while it is paused. */
  async listUsers(cluster: string): Promise<UserView[]> {
    const writer = this.deps.writer(cluster);
    const roles = writer?.available ? await this.query(cluster, null) : this.deps.store.listRoles(cluster);
    const reserved = this.deps.reservedRoles(cluster);
    return roles
      .filter((r) => !reserved.has(r.name) || r.name === this.deps.masterUser(cluster))
      .map((r) => ({ name: r.name, auth: r.iam ? 'iam' : r.password?.startsWith('SCRAM-SHA-256$') ? 'password' : 'none', canLogin: r.canLogin }) as const)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private async refresh(cluster: string, name: string, client: pg.Client): Promise<void> {
    const role = (await client.query<RoleRow>(ROLES_SQL, [name])).rows[0];
    if (role) this.deps.store.upsertRole(cluster, toRecord(role));
    else this.deps.store.deleteRole(cluster, name);
  }

  private checkReserved(cluster: string, name: string): void {
    if (this.deps.reservedRoles(cluster).has(name)) throw new IdentityError('invalid', `"${name}" is managed by Borealis and cannot be changed with borealis user`);
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  }
}

function scramVerifier(password: string): string {
  if (password.length < PASSWORD_LENGTH.min || password.length > PASSWORD_LENGTH.max) {
    throw new IdentityError('invalid', `passwords must be ${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max} characters`);
  }
  return formatVerifier(deriveVerifier(password, randomBytes(16), SCRAM_ITERATIONS_DEFAULT));
}

/** PostgreSQL's refusals of a role change, as control-plane errors. https://www.postgresql.org/docs/17/errcodes-appendix.html */
function roleError(err: unknown, cluster: string, name: string): Error {
  if (err instanceof IdentityError) return err;
  const code = (err as { code?: string }).code;
  switch (code) {
    case '42710': // duplicate_object
      return new IdentityError('conflict', `user "${name}" already exists in cluster "${cluster}"`);
    case '42704': // undefined_object
      return new IdentityError('not-found', `user "${name}" does not exist in cluster "${cluster}"`);
    case '2BP01': // dependent_objects_still_exist
      return new IdentityError('conflict', `user "${name}" cannot be dropped: ${(err as Error).message}`);
    default:
      return err as Error;
  }
}
