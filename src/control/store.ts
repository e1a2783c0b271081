// Persistent control-plane state in SQLite (better-sqlite3, synchronous and
// transactional). Roles are kept as their SCRAM verifiers only; secret values
// (which must be given back, like Secrets Manager's) are encrypted at rest
// with a key kept in a 0600 file beside the database.
import Database from 'better-sqlite3';
import type { ScalingConfig } from '../autoscaler/policy.js';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { RoleRecord } from '../proxy/role-directory.js';
import type { ClusterAccess, ClusterRecord, EndpointRecord, EndpointType, EventRecord, InstanceRecord } from './model.js';

export interface OperationRecord {
  readonly cluster: string;
  readonly kind: 'failover';
  readonly oldWriter: string;
  readonly target: string;
  readonly step: string;
  readonly startedAt: string;
}

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE clusters (
     name TEXT PRIMARY KEY,
     engine_version TEXT NOT NULL,
     master_username TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE instances (
     id TEXT PRIMARY KEY,
     cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
     role TEXT NOT NULL CHECK (role IN ('writer', 'reader')),
     kind TEXT NOT NULL CHECK (kind IN ('provisioned', 'serverless')),
     promotion_tier INTEGER NOT NULL CHECK (promotion_tier BETWEEN 0 AND 15),
     capacity_acu REAL NOT NULL,
     engine_port INTEGER NOT NULL UNIQUE,
     created_at TEXT NOT NULL
   );
   CREATE TABLE endpoints (
     cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
     type TEXT NOT NULL,
     port INTEGER NOT NULL UNIQUE,
     PRIMARY KEY (cluster, type)
   );
   CREATE TABLE users (
     cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
     name TEXT NOT NULL,
     scram_verifier TEXT NOT NULL,
     PRIMARY KEY (cluster, name)
   );
   CREATE TABLE secrets (
     arn TEXT PRIMARY KEY,
     cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
     username TEXT NOT NULL,
     sealed TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     time TEXT NOT NULL,
     source_type TEXT NOT NULL,
     source_id TEXT NOT NULL,
     kind TEXT NOT NULL,
     message TEXT NOT NULL
   );`,
  `ALTER TABLE clusters ADD COLUMN allowed_cidrs TEXT NOT NULL DEFAULT '[]';
   ALTER TABLE clusters ADD COLUMN require_tls INTEGER NOT NULL DEFAULT 0;`,
  `ALTER TABLE users ADD COLUMN auth TEXT NOT NULL DEFAULT 'password' CHECK (auth IN ('password', 'iam'));
   CREATE TABLE access_keys (
     id TEXT PRIMARY KEY,
     sealed_secret TEXT NOT NULL,
     description TEXT NOT NULL,
     created_at TEXT NOT NULL
   );`,
  `CREATE TABLE endpoints_v2 (
     cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
     type TEXT NOT NULL CHECK (type IN ('writer', 'reader', 'instance', 'custom')),
     name TEXT NOT NULL DEFAULT '',
     port INTEGER NOT NULL UNIQUE,
     custom_type TEXT CHECK (custom_type IN ('READER', 'ANY')),
     static_members TEXT NOT NULL DEFAULT '[]',
     excluded_members TEXT NOT NULL DEFAULT '[]',
     PRIMARY KEY (cluster, type, name)
   );
   INSERT INTO endpoints_v2 (cluster, type, name, port) SELECT cluster, type, '', port FROM endpoints;
   DROP TABLE endpoints;
   ALTER TABLE endpoints_v2 RENAME TO endpoints;
   CREATE UNIQUE INDEX custom_endpoint_names ON endpoints (name) WHERE type = 'custom';`,
  `ALTER TABLE clusters ADD COLUMN min_capacity_acu REAL NOT NULL DEFAULT 0.5;
   ALTER TABLE clusters ADD COLUMN max_capacity_acu REAL NOT NULL DEFAULT 1;
   ALTER TABLE clusters ADD COLUMN seconds_until_auto_pause INTEGER NOT NULL DEFAULT 300;
   ALTER TABLE instances ADD COLUMN acu_seconds REAL NOT NULL DEFAULT 0;`,
  `ALTER TABLE clusters ADD COLUMN http_endpoint_enabled INTEGER NOT NULL DEFAULT 1;`,
  `CREATE TABLE storage (
     cluster TEXT PRIMARY KEY REFERENCES clusters(name) ON DELETE CASCADE,
     term INTEGER NOT NULL,
     sealed_replication_password TEXT NOT NULL
   );
   CREATE TABLE storage_nodes (
     cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
     name TEXT NOT NULL,
     zone TEXT NOT NULL,
     port INTEGER NOT NULL UNIQUE,
     PRIMARY KEY (cluster, name)
   );`,
  // The cluster's PostgreSQL system identifier, recorded at its writer's first start.
  `ALTER TABLE storage ADD COLUMN system_id TEXT;`,
  // Per node and timeline, the highest flush position it reported (16 hex digits: text order is LSN order).
  `CREATE TABLE storage_node_marks (
     cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
     name TEXT NOT NULL,
     timeline INTEGER NOT NULL,
     flush_lsn TEXT NOT NULL,
     PRIMARY KEY (cluster, name, timeline)
   );`,
  // The last-known pg_authid rows of each cluster, for logins while it is
  // paused (see docs/security.md). The users table before it is kept only
  // to migrate IAM users made before roles were read from the cluster.
  // Clusters made since the master user stopped being a superuser have an
  // internal superuser of their own; NULL for older ones (their master user
  // is the bootstrap superuser, which cannot be demoted).
  `ALTER TABLE clusters ADD COLUMN admin_username TEXT;`,
  `CREATE TABLE roles (
     cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
     name TEXT NOT NULL,
     can_login INTEGER NOT NULL,
     password TEXT,
     valid_until_ms REAL,
     iam INTEGER NOT NULL,
     PRIMARY KEY (cluster, name)
   );`,
  // A failover in progress, one per cluster: its intent and the last step it
  // finished, so that a supervisor restarted mid-way resumes or rolls it back
  // (src/control/failover-steps.ts).
  `CREATE TABLE operations (
     cluster TEXT PRIMARY KEY REFERENCES clusters(name) ON DELETE CASCADE,
     kind TEXT NOT NULL CHECK (kind IN ('failover')),
     old_writer TEXT NOT NULL,
     target TEXT NOT NULL,
     step TEXT NOT NULL,
     started_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );`,
  // The PostgreSQL system identifier of every cluster whose writer has run,
  // storage nodes or not: a cluster that has one never gets a fresh initdb
  // (a writer without storage whose data directory is lost stays down).
  `ALTER TABLE clusters ADD COLUMN system_id TEXT;`,
  // Where storage runs (storage/placement.ts): each node's address and the
  // network namespace it runs in, and the address the nodes reach the
  // writer at. Fixed when the cluster is made.
  `ALTER TABLE storage_nodes ADD COLUMN host TEXT NOT NULL DEFAULT '127.0.0.1';
   ALTER TABLE storage_nodes ADD COLUMN netns TEXT;
   ALTER TABLE storage ADD COLUMN writer_host TEXT NOT NULL DEFAULT '127.0.0.1';`,
];

/** A storage node as recorded: its zone, and where it listens (storage/placement.ts). */
export interface StorageNodeRecord {
  readonly name: string;
  readonly zone: string;
  readonly port: number;
  readonly host: string;
  /** The network namespace it runs in; null: the supervisor's own. */
  readonly netns: string | null;
}

/** Events kept; older ones are trimmed so the store stays bounded. */
const EVENTS_KEPT_MAX = 10_000;

export class Store {
  private readonly db: Database.Database;
  private readonly key: Buffer;
  /** Prepared statements by SQL text: every text here is a constant, so this stays small. */
  private readonly statements = new Map<string, Database.Statement>();

  constructor(file: string, keyFile: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    this.key = loadOrCreateKey(keyFile);
  }

  close(): void {
    this.db.close();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private prepare(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      if (!stmt.reader) {
        // Every write that changes a row moves the version (see `version`).
        const run = stmt.run.bind(stmt);
        stmt.run = (...params: unknown[]) => {
          const result = run(...params);
          if (result.changes > 0) this.changes++;
          return result;
        };
      }
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private changes = 0;

  /**
   * Moves with every statement that changed a row (in a transaction, with
   * each of its statements): what was read from the store before is stale
   * once it differs. The control plane's cached look-ups (directory.ts) are
   * kept against it.
   */
  get version(): number {
    return this.changes;
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  listClusters(): ClusterRecord[] {
    return this.prepare('SELECT name, engine_version AS engineVersion, master_username AS masterUsername, admin_username AS adminUsername, system_id AS systemId, created_at AS createdAt FROM clusters ORDER BY created_at, name')
      .all() as ClusterRecord[];
  }

  getCluster(name: string): ClusterRecord | null {
    return (this.prepare('SELECT name, engine_version AS engineVersion, master_username AS masterUsername, admin_username AS adminUsername, system_id AS systemId, created_at AS createdAt FROM clusters WHERE name = ?')
      .get(name) as ClusterRecord | undefined) ?? null;
  }

  /** Records the system a cluster's writer runs, the first time; true if the recorded one is `systemId`. */
  recordClusterSystemId(name: string, systemId: string): boolean {
    this.prepare('UPDATE clusters SET system_id = ? WHERE name = ? AND system_id IS NULL').run(systemId, name);
    return this.getCluster(name)?.systemId === systemId;
  }

  getClusterAccess(name: string): ClusterAccess | null {
    const row = this.prepare('SELECT allowed_cidrs AS cidrs, require_tls AS tls FROM clusters WHERE name = ?').get(name) as { cidrs: string; tls: number } | undefined;
    return row ? { allowedCidrs: JSON.parse(row.cidrs) as string[], requireTls: row.tls === 1 } : null;
  }

  setClusterAccess(name: string, access: ClusterAccess): void {
    this.prepare('UPDATE clusters SET allowed_cidrs = ?, require_tls = ? WHERE name = ?').run(JSON.stringify(access.allowedCidrs), access.requireTls ? 1 : 0, name);
  }

  getScaling(name: string): ScalingConfig | null {
    const row = this.prepare('SELECT min_capacity_acu AS minAcu, max_capacity_acu AS maxAcu, seconds_until_auto_pause AS secondsUntilAutoPause FROM clusters WHERE name = ?').get(name) as ScalingConfig | undefined;
    return row ?? null;
  }

  setScaling(name: string, c: ScalingConfig): void {
    this.prepare('UPDATE clusters SET min_capacity_acu = ?, max_capacity_acu = ?, seconds_until_auto_pause = ? WHERE name = ?').run(c.minAcu, c.maxAcu, c.secondsUntilAutoPause, name);
  }

  httpEndpointEnabled(name: string): boolean {
    return (this.prepare('SELECT http_endpoint_enabled AS e FROM clusters WHERE name = ?').get(name) as { e: number } | undefined)?.e === 1;
  }

  setHttpEndpointEnabled(name: string, enabled: boolean): void {
    this.prepare('UPDATE clusters SET http_endpoint_enabled = ? WHERE name = ?').run(enabled ? 1 : 0, name);
  }

  addAcuSeconds(instanceId: string, acuSeconds: number): void {
    this.prepare('UPDATE instances SET acu_seconds = acu_seconds + ? WHERE id = ?').run(acuSeconds, instanceId);
  }

  getAcuSeconds(instanceId: string): number {
    return (this.prepare('SELECT acu_seconds AS a FROM instances WHERE id = ?').get(instanceId) as { a: number } | undefined)?.a ?? 0;
  }

  insertCluster(c: ClusterRecord): void {
    this.prepare('INSERT INTO clusters (name, engine_version, master_username, admin_username, created_at) VALUES (?, ?, ?, ?, ?)').run(c.name, c.engineVersion, c.masterUsername, c.adminUsername, c.createdAt);
  }

  deleteCluster(name: string): void {
    this.prepare('DELETE FROM clusters WHERE name = ?').run(name);
  }

  listInstances(cluster?: string): InstanceRecord[] {
    const sql = `SELECT id, cluster, role, kind, promotion_tier AS promotionTier, capacity_acu AS capacityAcu, engine_port AS enginePort, created_at AS createdAt
                 FROM instances ${cluster === undefined ? '' : 'WHERE cluster = ?'} ORDER BY created_at, id`;
    const stmt = this.prepare(sql);
    return (cluster === undefined ? stmt.all() : stmt.all(cluster)) as InstanceRecord[];
  }

  insertInstance(i: InstanceRecord): void {
    this.prepare('INSERT INTO instances (id, cluster, role, kind, promotion_tier, capacity_acu, engine_port, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(i.id, i.cluster, i.role, i.kind, i.promotionTier, i.capacityAcu, i.enginePort, i.createdAt);
  }

  setInstanceRole(id: string, role: 'writer' | 'reader'): void {
    this.prepare('UPDATE instances SET role = ? WHERE id = ?').run(role, id);
  }

  /** A failover's intent, recorded before its first step; fails if one is recorded already. */
  beginOperation(op: Omit<OperationRecord, 'startedAt'>): void {
    const now = new Date().toISOString();
    this.prepare('INSERT INTO operations (cluster, kind, old_writer, target, step, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(op.cluster, op.kind, op.oldWriter, op.target, op.step, now, now);
  }

  /** The step just finished; run inside the transaction that made that step's own change, where it has one. */
  advanceOperation(cluster: string, step: string): void {
    const changed = this.prepare('UPDATE operations SET step = ?, updated_at = ? WHERE cluster = ?').run(step, new Date().toISOString(), cluster).changes;
    if (changed !== 1) throw new Error(`no operation of cluster ${cluster} is recorded`);
  }

  getOperation(cluster: string): OperationRecord | null {
    return (this.prepare('SELECT cluster, kind, old_writer AS oldWriter, target, step, started_at AS startedAt FROM operations WHERE cluster = ?').get(cluster) as OperationRecord | undefined) ?? null;
  }

  endOperation(cluster: string): void {
    this.prepare('DELETE FROM operations WHERE cluster = ?').run(cluster);
  }

  deleteInstance(id: string): boolean {
    return this.prepare('DELETE FROM instances WHERE id = ?').run(id).changes > 0;
  }

  usedEnginePorts(): Set<number> {
    return new Set((this.prepare('SELECT engine_port AS p FROM instances').all() as Array<{ p: number }>).map((r) => r.p));
  }

  listEndpoints(cluster?: string): EndpointRecord[] {
    const sql = `SELECT cluster, type, name, port, custom_type AS customType, static_members AS staticMembers, excluded_members AS excludedMembers
                 FROM endpoints ${cluster === undefined ? '' : 'WHERE cluster = ?'} ORDER BY port`;
    const stmt = this.prepare(sql);
    const rows = (cluster === undefined ? stmt.all() : stmt.all(cluster)) as Array<Omit<EndpointRecord, 'staticMembers' | 'excludedMembers'> & { staticMembers: string; excludedMembers: string }>;
    return rows.map((r) => ({ ...r, staticMembers: JSON.parse(r.staticMembers) as string[], excludedMembers: JSON.parse(r.excludedMembers) as string[] }));
  }

  insertEndpoint(e: EndpointRecord): void {
    this.prepare('INSERT INTO endpoints (cluster, type, name, port, custom_type, static_members, excluded_members) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(e.cluster, e.type, e.name, e.port, e.customType, JSON.stringify(e.staticMembers), JSON.stringify(e.excludedMembers));
  }

  deleteEndpoint(cluster: string, type: EndpointType, name: string): boolean {
    return this.prepare('DELETE FROM endpoints WHERE cluster = ? AND type = ? AND name = ?').run(cluster, type, name).changes > 0;
  }

  /** Users made by Borealis before roles were read from the cluster (for their one-time migration). */
  listLegacyUsers(cluster: string): Array<{ name: string; auth: 'password' | 'iam' }> {
    return this.prepare('SELECT name, auth FROM users WHERE cluster = ? ORDER BY name').all(cluster) as Array<{ name: string; auth: 'password' | 'iam' }>;
  }

  deleteLegacyUsers(cluster: string): void {
    this.prepare('DELETE FROM users WHERE cluster = ?').run(cluster);
  }

  /** Replaces a cluster's last-known roles with a full read of pg_authid. */
  replaceRoles(cluster: string, roles: readonly RoleRecord[]): void {
    this.transaction(() => {
      this.prepare('DELETE FROM roles WHERE cluster = ?').run(cluster);
      for (const r of roles) this.upsertRole(cluster, r);
    });
  }

  upsertRole(cluster: string, r: RoleRecord): void {
    this.prepare(
      'INSERT INTO roles (cluster, name, can_login, password, valid_until_ms, iam) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cluster, name) DO UPDATE SET can_login = excluded.can_login, password = excluded.password, valid_until_ms = excluded.valid_until_ms, iam = excluded.iam',
    ).run(cluster, r.name, r.canLogin ? 1 : 0, r.password, r.validUntilMs, r.iam ? 1 : 0);
  }

  deleteRole(cluster: string, name: string): void {
    this.prepare('DELETE FROM roles WHERE cluster = ? AND name = ?').run(cluster, name);
  }

  getRole(cluster: string, name: string): RoleRecord | null {
    const row = this.prepare('SELECT name, can_login, password, valid_until_ms, iam FROM roles WHERE cluster = ? AND name = ?').get(cluster, name) as RoleRow | undefined;
    return row ? roleFromRow(row) : null;
  }

  listRoles(cluster: string): RoleRecord[] {
    return (this.prepare('SELECT name, can_login, password, valid_until_ms, iam FROM roles WHERE cluster = ? ORDER BY name').all(cluster) as RoleRow[]).map(roleFromRow);
  }

  insertAccessKey(id: string, secret: string, description: string): void {
    this.prepare('INSERT INTO access_keys (id, sealed_secret, description, created_at) VALUES (?, ?, ?, ?)').run(id, this.seal(secret), description, new Date().toISOString());
  }

  getAccessKeySecret(id: string): string | null {
    const row = this.prepare('SELECT sealed_secret AS s FROM access_keys WHERE id = ?').get(id) as { s: string } | undefined;
    return row ? this.unseal(row.s) : null;
  }

  listAccessKeys(): Array<{ id: string; description: string; createdAt: string }> {
    return this.prepare('SELECT id, description, created_at AS createdAt FROM access_keys ORDER BY created_at').all() as Array<{ id: string; description: string; createdAt: string }>;
  }

  deleteAccessKey(id: string): boolean {
    return this.prepare('DELETE FROM access_keys WHERE id = ?').run(id).changes > 0;
  }

  getStorage(cluster: string): { term: number; replicationPassword: string; systemId: string | null; writerHost: string } | null {
    const row = this.prepare('SELECT term, sealed_replication_password AS sealed, system_id AS systemId, writer_host AS writerHost FROM storage WHERE cluster = ?').get(cluster) as { term: number; sealed: string; systemId: string | null; writerHost: string } | undefined;
    return row ? { term: row.term, replicationPassword: this.unseal(row.sealed), systemId: row.systemId, writerHost: row.writerHost } : null;
  }

  /** A cluster's system identifier is set once and never changes; false if another is recorded. */
  recordSystemId(cluster: string, systemId: string): boolean {
    this.prepare('UPDATE storage SET system_id = ? WHERE cluster = ? AND system_id IS NULL').run(systemId, cluster);
    return this.getStorage(cluster)?.systemId === systemId;
  }

  insertStorage(cluster: string, replicationPassword: string, writerHost: string, nodes: readonly StorageNodeRecord[]): void {
    this.transaction(() => {
      this.prepare('INSERT INTO storage (cluster, term, sealed_replication_password, writer_host) VALUES (?, 1, ?, ?)').run(cluster, this.seal(replicationPassword), writerHost);
      const insert = this.prepare('INSERT INTO storage_nodes (cluster, name, zone, port, host, netns) VALUES (?, ?, ?, ?, ?, ?)');
      for (const n of nodes) insert.run(cluster, n.name, n.zone, n.port, n.host, n.netns);
    });
  }

  /** Terms only grow. */
  raiseStorageTerm(cluster: string, term: number): void {
    const changed = this.prepare('UPDATE storage SET term = ? WHERE cluster = ? AND term < ?').run(term, cluster, term).changes;
    if (changed !== 1) throw new Error(`storage term of ${cluster} must grow to ${term}`);
  }

  storageMarks(cluster: string): Map<string, Map<number, bigint>> {
    const out = new Map<string, Map<number, bigint>>();
    const rows = this.prepare('SELECT name, timeline, flush_lsn AS flush FROM storage_node_marks WHERE cluster = ?').all(cluster) as Array<{ name: string; timeline: number; flush: string }>;
    for (const r of rows) {
      const m = out.get(r.name) ?? new Map<number, bigint>();
      m.set(r.timeline, BigInt(`0x${r.flush}`));
      out.set(r.name, m);
    }
    return out;
  }

  /** Marks only rise. */
  raiseStorageMarks(cluster: string, marks: ReadonlyArray<{ name: string; timeline: number; flushLsn: bigint }>): void {
    const upsert = this.prepare('INSERT INTO storage_node_marks (cluster, name, timeline, flush_lsn) VALUES (?, ?, ?, ?) ON CONFLICT (cluster, name, timeline) DO UPDATE SET flush_lsn = excluded.flush_lsn WHERE excluded.flush_lsn > storage_node_marks.flush_lsn');
    this.transaction(() => {
      for (const m of marks) upsert.run(cluster, m.name, m.timeline, m.flushLsn.toString(16).padStart(16, '0'));
    });
  }

  listStorageNodes(cluster: string): StorageNodeRecord[] {
    return this.prepare('SELECT name, zone, port, host, netns FROM storage_nodes WHERE cluster = ? ORDER BY name').all(cluster) as StorageNodeRecord[];
  }

  usedStoragePorts(): Set<number> {
    return new Set((this.prepare('SELECT port FROM storage_nodes').all() as Array<{ port: number }>).map((r) => r.port));
  }

  insertSecret(arn: string, cluster: string, username: string, value: Record<string, string>): void {
    this.prepare('INSERT INTO secrets (arn, cluster, username, sealed, created_at) VALUES (?, ?, ?, ?, ?)').run(arn, cluster, username, this.seal(JSON.stringify(value)), new Date().toISOString());
  }

  getSecret(arn: string): { cluster: string; username: string; value: Record<string, string> } | null {
    const row = this.prepare('SELECT cluster, username, sealed FROM secrets WHERE arn = ?').get(arn) as { cluster: string; username: string; sealed: string } | undefined;
    if (!row) return null;
    return { cluster: row.cluster, username: row.username, value: JSON.parse(this.unseal(row.sealed)) as Record<string, string> };
  }

  listSecrets(cluster: string): Array<{ arn: string; username: string; createdAt: string }> {
    return this.prepare('SELECT arn, username, created_at AS createdAt FROM secrets WHERE cluster = ? ORDER BY created_at').all(cluster) as Array<{ arn: string; username: string; createdAt: string }>;
  }

  deleteSecret(arn: string): boolean {
    return this.prepare('DELETE FROM secrets WHERE arn = ?').run(arn).changes > 0;
  }

  addEvent(e: Omit<EventRecord, 'id' | 'time'>): EventRecord {
    const time = new Date().toISOString();
    const info = this.prepare('INSERT INTO events (time, source_type, source_id, kind, message) VALUES (?, ?, ?, ?, ?)').run(time, e.sourceType, e.sourceId, e.kind, e.message);
    const id = Number(info.lastInsertRowid);
    if (id % 1000 === 0) this.prepare('DELETE FROM events WHERE id <= ?').run(id - EVENTS_KEPT_MAX);
    return { id, time, ...e };
  }

  listEvents(opts: { sinceId?: number; limit: number; sourceId?: string }): EventRecord[] {
    return this.prepare(
      `SELECT id, time, source_type AS sourceType, source_id AS sourceId, kind, message FROM events
       WHERE id > ? AND (? IS NULL OR source_id = ?) ORDER BY id DESC LIMIT ?`,
    ).all(opts.sinceId ?? 0, opts.sourceId ?? null, opts.sourceId ?? null, opts.limit) as EventRecord[];
  }

  private seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
  }

  private unseal(sealed: string): string {
    const raw = Buffer.from(sealed, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  }
}

function loadOrCreateKey(file: string): Buffer {
  try {
    const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new Error(`${file} does not hold a 256-bit key`);
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const key = randomBytes(32);
    fs.writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    return key;
  }
}

interface RoleRow {
  name: string;
  can_login: number;
  password: string | null;
  valid_until_ms: number | null;
  iam: number;
}

function roleFromRow(r: RoleRow): RoleRecord {
  return { name: r.name, canLogin: r.can_login === 1, password: r.password, validUntilMs: r.valid_until_ms, iam: r.iam === 1 };
}
