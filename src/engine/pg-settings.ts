// The PostgreSQL settings Borealis manages, in one table. Each says whether
// a reload is enough to change it or a restart is needed; the autoscaler may
// only move the reloadable ones (restart-time ones come from max capacity,
// as Aurora does). https://www.postgresql.org/docs/17/runtime-config.html

export type PgContext = 'reload' | 'restart';
export type PgValue = string | number | boolean;

export interface PgSettingSpec {
  readonly name: string;
  readonly context: PgContext;
  /** Unit of the numeric value as PostgreSQL reads it ('' for none). */
  readonly unit: '' | 'kB' | 'MB' | 'ms' | 's';
  readonly doc: string;
}

export const PG_SETTINGS: readonly PgSettingSpec[] = [
  { name: 'listen_addresses', context: 'restart', unit: '', doc: 'Loopback only: clients come through the proxy.' },
  { name: 'port', context: 'restart', unit: '', doc: 'Instance port, allocated from enginePortBase.' },
  { name: 'unix_socket_directories', context: 'restart', unit: '', doc: 'Private socket directory the proxy uses.' },
  { name: 'unix_socket_permissions', context: 'restart', unit: '', doc: 'Socket readable by the service user only.' },
  { name: 'max_connections', context: 'restart', unit: '', doc: 'From capacity (Aurora sizes it from memory).' },
  { name: 'shared_buffers', context: 'restart', unit: 'MB', doc: 'From capacity.' },
  { name: 'work_mem', context: 'reload', unit: 'kB', doc: 'From capacity.' },
  { name: 'maintenance_work_mem', context: 'reload', unit: 'MB', doc: 'From capacity.' },
  { name: 'effective_cache_size', context: 'reload', unit: 'MB', doc: 'From capacity.' },
  { name: 'password_encryption', context: 'reload', unit: '', doc: 'SCRAM verifiers only.' },
  { name: 'wal_level', context: 'restart', unit: '', doc: 'replica: storage nodes and readers stream WAL.' },
  { name: 'max_wal_senders', context: 'restart', unit: '', doc: 'Room for storage nodes, readers and base backups.' },
  { name: 'max_replication_slots', context: 'restart', unit: '', doc: 'One per storage node and reader.' },
  { name: 'synchronous_standby_names', context: 'reload', unit: '', doc: "ANY 4 of the six storage nodes: a commit is acknowledged once four have flushed it." },
  { name: 'borealis.term', context: 'reload', unit: '', doc: 'Storage term this writer runs in; storage nodes stream only from the writer of their own term.' },
  { name: 'wal_keep_size', context: 'reload', unit: 'MB', doc: 'WAL a writer keeps regardless of slots: a writer just rebuilt from storage has no slots yet, and its nodes must still find the WAL around its switch point.' },
  { name: 'max_slot_wal_keep_size', context: 'reload', unit: 'MB', doc: 'WAL kept for a storage node that is down; beyond it the node catches up from its peers.' },
  { name: 'restore_command', context: 'reload', unit: '', doc: 'During a rebuild: none needed (storage put the WAL in pg_wal), so it always fails.' },
  { name: 'recovery_target_timeline', context: 'restart', unit: '', doc: "During a rebuild, and while a failover catches its target up from storage: the timeline the storage quorum holds (a target whose flushed WAL lies off that timeline's history then refuses to start, and is never promoted)." },
  { name: 'shared_preload_libraries', context: 'restart', unit: '', doc: "pg_stat_statements when the installation has it (as on Aurora), so that the master user's CREATE EXTENSION pg_stat_statements works at once." },
  { name: 'recovery_target_lsn', context: 'restart', unit: '', doc: 'During a rebuild: the start of the last whole record in the WAL storage vouches for. Recovery that ends before it (a copy cut short, a record that fails its checksum) stops PostgreSQL with a FATAL instead of opening a database missing acknowledged commits.' },
  { name: 'recovery_target_inclusive', context: 'restart', unit: '', doc: 'During a rebuild: on, so the record at recovery_target_lsn is replayed too.' },
  { name: 'recovery_target_action', context: 'restart', unit: '', doc: 'During a rebuild: promote, once the target is reached.' },
  { name: 'primary_conninfo', context: 'reload', unit: '', doc: "A reader: its writer's private socket, as the cluster's superuser (the socket trusts)." },
  { name: 'primary_slot_name', context: 'reload', unit: '', doc: 'A reader: the physical slot on the writer that keeps the WAL it still needs.' },
  { name: 'hot_standby', context: 'restart', unit: '', doc: 'A reader answers read-only queries while it replays.' },
  { name: 'hot_standby_feedback', context: 'reload', unit: '', doc: "A reader tells its writer which rows its queries still see, so vacuum does not cancel them." },
  { name: 'wal_retrieve_retry_interval', context: 'reload', unit: 'ms', doc: 'A reader whose writer went away (a pause, a restart) tries again this often.' },
  { name: 'fsync', context: 'reload', unit: '', doc: 'Always on: acknowledged commits are durable.' },
  { name: 'allow_alter_system', context: 'reload', unit: '', doc: "Off (PostgreSQL 17 and later): Borealis owns the configuration, as Aurora's parameter groups do; ALTER SYSTEM would override its storage quorum, term and sizing from postgresql.auto.conf, and reach every reader cloned afterwards." },
  { name: 'logging_collector', context: 'restart', unit: '', doc: 'Off: the supervisor captures stderr.' },
  { name: 'log_line_prefix', context: 'reload', unit: '', doc: 'Time, pid, user, database.' },
  { name: 'log_min_messages', context: 'reload', unit: '', doc: 'Server log level.' },
  { name: 'dynamic_shared_memory_type', context: 'restart', unit: '', doc: 'posix.' },
  { name: 'timezone', context: 'reload', unit: '', doc: 'UTC.' },
  { name: 'lc_messages', context: 'reload', unit: '', doc: 'C: stable messages for the proxy and clients.' },
];

const BY_NAME = new Map(PG_SETTINGS.map((s) => [s.name, s]));

export function pgSetting(name: string): PgSettingSpec {
  const spec = BY_NAME.get(name);
  if (!spec) throw new Error(`setting ${name} is not managed by Borealis`);
  return spec;
}

export interface InstanceSizing {
  readonly capacityAcu: number;
  readonly acuMemoryMiB: number;
}

/** Settings derived from capacity (memory in MiB = ACU × acuMemoryMiB). */
export function sizedSettings(size: InstanceSizing): Record<string, PgValue> {
  const memoryMiB = Math.max(256, Math.round(size.capacityAcu * size.acuMemoryMiB));
  return {
    // A local instance shares its machine; a quarter of its memory in
    // buffers leaves room for the page cache and for backends.
    shared_buffers: Math.max(32, Math.floor(memoryMiB / 8)),
    // 100 per 2 GiB: one ACU gets PostgreSQL's default of 100.
    max_connections: Math.min(5000, Math.max(100, Math.floor((memoryMiB * 100) / 2048))),
    work_mem: Math.max(4096, Math.floor((memoryMiB * 1024) / 512)),
    maintenance_work_mem: Math.max(64, Math.floor(memoryMiB / 16)),
    effective_cache_size: Math.max(128, Math.floor((memoryMiB * 3) / 4)),
  };
}

export function baseSettings(port: number, socketDir: string, majorVersion: number): Record<string, PgValue> {
  return {
    ...(majorVersion >= 17 ? { allow_alter_system: false } : {}),
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: socketDir,
    unix_socket_permissions: '0700',
    password_encryption: 'scram-sha-256',
    wal_level: 'replica',
    max_wal_senders: 16,
    max_replication_slots: 16,
    fsync: true,
    logging_collector: false,
    log_line_prefix: '%m [%p] %q%u@%d ',
    log_min_messages: 'warning',
    dynamic_shared_memory_type: 'posix',
    timezone: 'UTC',
    lc_messages: 'C',
  };
}

function quote(value: PgValue): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value === 'number') return String(value);
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** postgresql.conf text; every name must be in PG_SETTINGS. */
export function renderPostgresqlConf(values: Record<string, PgValue>): string {
  const lines = ['# Written by Borealis; edits are overwritten at the next start.'];
  for (const [name, value] of Object.entries(values)) {
    const spec = pgSetting(name);
    const rendered = typeof value === 'number' && spec.unit !== '' ? `'${value}${spec.unit}'` : quote(value);
    lines.push(`${name} = ${rendered}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * Client authentication: the private socket trusts (only the service user
 * and the proxy can reach it); TCP on loopback requires SCRAM, and
 * replication needs SCRAM too. Storage nodes placed on other addresses
 * (`replication`: user and CIDRs) may connect for replication only, with
 * SCRAM.
 */
export function renderPgHbaConf(replication: { user: string; cidrs: readonly string[] } = { user: 'all', cidrs: [] }): string {
  return [
    '# Written by Borealis.',
    'local all all trust',
    'local replication all trust',
    'host all all 127.0.0.1/32 scram-sha-256',
    'host replication all 127.0.0.1/32 scram-sha-256',
    ...replication.cidrs.map((cidr) => `host replication ${replication.user} ${cidr} scram-sha-256`),
    '',
  ].join('\n');
}

/** Splits settings into those a reload can change and those needing a restart. */
export function byContext(values: Record<string, PgValue>): { reload: Record<string, PgValue>; restart: Record<string, PgValue> } {
  const reload: Record<string, PgValue> = {};
  const restart: Record<string, PgValue> = {};
  for (const [name, value] of Object.entries(values)) (pgSetting(name).context === 'reload' ? reload : restart)[name] = value;
  return { reload, restart };
}
