// The supervisor: one per Borealis home. It owns the state store, the
// compute instances, the proxy and the control API; it creates clusters,
// restarts crashed instances and records every transition as an event.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { deriveVerifier, formatVerifier, SCRAM_ITERATIONS_DEFAULT } from '../auth/scram.js';
import { Autoscaler, type InstanceMetrics } from '../autoscaler/autoscaler.js';
import { clamp, DEFAULT_TUNING, validateScalingConfig, type ScalingConfig } from '../autoscaler/policy.js';
import { detectCgroups, type CgroupSupport } from '../compute/cgroups.js';
import { LocalInstance, RestoreDeferred, type LocalInstanceOptions } from '../compute/local-instance.js';
import { cloneWriter, readerSlotName } from '../compute/reader-clone.js';
import type { Settings } from '../config/settings.js';
import { resolveBinaries, type EngineBinaries } from '../engine/binaries.js';
import { prepareEngineTree } from '../engine/engine-tree.js';
import { canAccess, clusterServiceUserName, ensureOwned, ensureServiceUser, type ProcessIdentity } from '../engine/service-user.js';
import { compileAccessPolicy, OPEN_POLICY, type AccessPolicy } from '../proxy/access-policy.js';
import type { EndpointRef, ProxyDirectory } from '../proxy/client-connection.js';
import { loginMethod, type LoginMethod, type RoleRecord } from '../proxy/role-directory.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import { DataApiServer, type DataApiDirectory } from '../dataapi/data-api-server.js';
import { ensureTlsMaterial } from '../proxy/tls-material.js';
import type { Logger } from '../util/logger.js';
import { adminOf, endpointServerName, validateCidr, validateClusterName, validateUsername, type ClusterAccess, type ClusterRecord, type EndpointType, type InstanceRecord } from './model.js';
import { ensureHome, homePaths, type HomePaths, type SupervisorInfo } from './paths.js';
import { checkPortsFree, portIsFree, portsToCheck } from './ports.js';
import type { ClusterStatus, StatusDocument } from './status.js';
import type { MetricFamily } from '../metrics/prometheus.js';
import { metricFamilies } from './observability.js';
import { catchUpFromStorage, waitReplayed, type CatchUpDeps } from './catch-up.js';
import { CatchUpError, FailoverError, finishFailover, recoverFailover, runFailover, type FailoverWorld } from './failover.js';
import { crashPoint } from './crash-points.js';
import { EndpointDirectory } from './directory.js';
import { promotionOrder } from './failover-steps.js';
import { withInstanceSession } from './instance-session.js';
import { InstanceProber } from './instance-probe.js';
import { Identity, IdentityError, INTERNAL_SUPERUSER, RDS_IAM, RDS_SUPERUSER, type UserView } from './identity.js';
import { REPLICATION_USER, StorageFleet, StorageWait, type StorageNodeView } from './storage-fleet.js';
import { LOOPBACK, singleAddressCidr } from '../storage/placement.js';
import type { PgValue } from '../engine/pg-settings.js';
import { Store } from './store.js';

export class ControlError extends Error {
  override readonly name = 'ControlError';
  constructor(
    readonly kind: 'invalid' | 'not-found' | 'conflict' | 'unavailable',
    message: string,
  ) {
    super(message);
  }
}

export interface CreateClusterInput {
  readonly name: string;
  readonly masterUsername?: string;
  readonly masterPassword?: string;
  readonly scaling?: Partial<ScalingConfig>;
  /** The writer endpoint's port exactly (the default cluster's is the proxyPort setting); otherwise the next free one. */
  readonly writerPort?: number;
}

export interface ClusterCredentials {
  readonly cluster: string;
  readonly username: string;
  readonly password: string;
  readonly secretArn: string;
}

const SECRET_ARN_PREFIX = 'arn:aws:secretsmanager:local:000000000000:secret:borealis';
const PASSWORD_BYTES = 18;
/** Aurora allows 15 readers per cluster. */
const READERS_MAX = 15;
const REPLICA_LAG_SAMPLE_MS = 1_000;

/** How often a client waiting for a writer mid-failover looks again. */
const WRITER_POLL_MS = 50;

export class Supervisor implements ProxyDirectory {
  readonly paths: HomePaths;
  private store!: Store;
  /** The clusters' roles: lookups for the proxy, `borealis user` (src/control/identity.ts). */
  private roles!: Identity;
  private binaries!: EngineBinaries;
  /** The base service user (null when Borealis does not run as root); each cluster runs as one of its own, see identityOf. */
  private identity: ProcessIdentity | null = null;
  private readonly identities = new Map<string, ProcessIdentity | null>();
  private proxy!: ProxyServer;
  private readonly instances = new Map<string, LocalInstance>();
  private readonly fleets = new Map<string, StorageFleet>();
  private readonly accessPolicies = new Map<string, AccessPolicy>();
  private cgroups: CgroupSupport = { kind: 'none', reason: 'not detected yet' };
  private autoscaler: Autoscaler | null = null;
  /** ACU-seconds metered but not yet written to the store. */
  private readonly unmetered = new Map<string, number>();
  private meterFlushTimer: NodeJS.Timeout | null = null;
  private dataApi: DataApiServer | null = null;
  private dataApiUrl = '';
  /** Data API requests and transactions in flight, per cluster. */
  private readonly dataApiActive = new Map<string, number>();
  /** Secret passwords already checked against a verifier (key: cluster, user, password hash, verifier). */
  private readonly checkedPasswords = new Set<string>();
  private readonly startedAt = new Date().toISOString();
  private apiUrl = '';
  private shuttingDown = false;

  constructor(
    readonly settings: Settings,
    private readonly log: Logger,
  ) {
    this.paths = homePaths(settings.home);
  }

  /** Prepares the home, engine, store and proxy; starts every instance. */
  async start(onProgress: (step: string) => void = () => undefined): Promise<void> {
    const p = this.paths;
    ensureHome(p);
    fs.mkdirSync(p.instancesDir, { recursive: true, mode: 0o711 });
    this.store = new Store(p.stateDb, p.secretKey);
    this.directory = new EndpointDirectory(this.store, this.settings.endpointDomain, (id) => this.instances.get(id)?.state === 'available');
    fs.chmodSync(p.stateDb, 0o600);
    // Before anything slow: a port in use is reported now, with the setting that chose it.
    const firstStart = this.store.listClusters().length === 0;
    await checkPortsFree(this.settings.listenHost, portsToCheck(this.settings, firstStart ? null : this.store.listEndpoints()));
    onProgress('checking the PostgreSQL engine');
    this.identity = ensureServiceUser(this.settings.serviceUser);
    if (!this.identity) this.log.warn('Borealis does not run as root: every cluster\'s PostgreSQL runs as this user, so clusters are not isolated from each other by the operating system (docs/security.md)');
    const found = resolveBinaries(this.settings.engineBinDir);
    // The embedded engine runs from Borealis's own copy (with the extensions the master user may create); a configured one as it is.
    this.binaries = this.settings.engineBinDir === '' ? prepareEngineTree(found, p.engineDir, this.log) : this.prepareBinaries(found);
    if (!canAccess(this.identity, '-x', p.instancesDir)) {
      throw new ControlError('invalid', `the user that runs PostgreSQL (${this.identity?.name ?? 'current user'}) cannot reach ${p.instancesDir}; choose a --home it can traverse, such as /var/lib/borealis`);
    }
    if (this.settings.storageNodeCount !== 0 && this.settings.storageNodeCount !== 6) {
      throw new ControlError('invalid', `storageNodeCount must be 6 (the 4-of-6 quorum) or 0 (no storage nodes), not ${this.settings.storageNodeCount}`);
    }
    this.roles = new Identity({
      store: this.store,
      writer: (cluster) => {
        const w = this.writerOf(cluster);
        if (!w) return null;
        const asleep = w.state === 'paused' || w.state === 'pausing' || w.state === 'resuming';
        return {
          instanceId: w.id,
          socketDir: w.server.options.socketDir,
          port: w.options.record.enginePort,
          available: w.state === 'available',
          asleep,
          // Checked again by the caller: never resume a paused writer to read its roles.
          waitAvailable: (timeoutMs) => (w.state === 'paused' ? Promise.resolve(false) : w.waitAvailable(timeoutMs)),
        };
      },
      superuser: (cluster) => this.adminOfCluster(cluster),
      masterUser: (cluster) => this.store.getCluster(cluster)?.masterUsername ?? 'postgres',
      withWriterSession: (cluster, fn) => this.withWriterSession(cluster, fn),
      reservedRoles: (cluster) => new Set([this.store.getCluster(cluster)?.masterUsername ?? 'postgres', this.adminOfCluster(cluster), RDS_IAM, RDS_SUPERUSER, REPLICATION_USER]),
      lookupTimeoutMs: this.settings.roleLookupTimeoutMs,
      writerWaitMs: this.settings.clientWaitForWriterMs,
      log: this.log.child('identity'),
    });
    this.cgroups = process.getuid?.() === 0 ? detectCgroups(this.settings.cgroupRoot) : { kind: 'none', reason: 'Borealis is not running as root' };
    if (this.cgroups.kind === 'none') {
      this.log.warn(`capacity is not enforced with cgroups (${this.cgroups.reason}); degraded mode: PostgreSQL settings and pool size follow capacity, CPU and memory are not capped`);
    } else this.log.info('capacity enforced with cgroups', { cgroups: this.cgroups.kind });
    onProgress('preparing TLS');
    const d = this.settings.endpointDomain;
    // The address clients are told to connect to (status, `connect --print`) is verifiable too.
    const listen = this.settings.listenHost;
    const addresses = ['127.0.0.1', ...(net.isIP(listen) && !['127.0.0.1', '0.0.0.0', '::'].includes(listen) ? [listen] : [])];
    const tlsMaterial = await ensureTlsMaterial(p.tlsDir, ['localhost', `*.cluster.${d}`, `*.cluster-ro.${d}`, `*.instance.${d}`, `*.cluster-custom.${d}`], addresses);
    this.proxy = new ProxyServer(tlsMaterial, this, this.settings, this.log.child('proxy'));
    this.autoscaler = new Autoscaler(
      {
        instances: () =>
          this.store.listInstances().flatMap((r) => {
            const instance = this.instances.get(r.id);
            return instance && r.kind === 'serverless' ? [{ instance, cluster: r.cluster, role: r.role, promotionTier: r.promotionTier }] : [];
          }),
        scaling: (cluster) => this.scaling(cluster),
        load: (s) => {
          const l = this.proxy.instanceLoad(s.instance.id);
          const viaDataApi = s.role === 'writer' ? (this.dataApiActive.get(s.cluster) ?? 0) : 0;
          return { connections: l.connections + viaDataApi, queuedClients: l.queuedClients, transactionsTotal: l.transactionsTotal };
        },
        onCapacityChange: (id, acu, reason) => {
          // A pause is recorded by the instance's own transitions.
          if (acu === 0) return;
          this.proxy.setInstancePoolSize(id, this.poolServersFor(acu));
          this.event('instance', id, 'scaled', reason);
        },
        meter: (id, acuSeconds) => this.unmetered.set(id, (this.unmetered.get(id) ?? 0) + acuSeconds),
      },
      { acuMemoryMiB: this.settings.acuMemoryMiB, acuCpuCores: this.settings.acuCpuCores },
      { ...DEFAULT_TUNING, quietPeriodMs: this.settings.scaleDownQuietPeriodMs, stepDownIntervalMs: this.settings.scaleDownStepIntervalMs },
      this.settings.autoscalerIntervalMs,
      this.log.child('autoscaler'),
    );
    this.meterFlushTimer = setInterval(() => this.flushMeter(), 10_000);
    this.meterFlushTimer.unref();
    if (this.store.listClusters().length === 0) {
      onProgress('creating cluster "default"');
      await this.createCluster({ name: 'default', writerPort: this.settings.proxyPort, ...(process.env.BOREALIS_PASSWORD ? { masterPassword: process.env.BOREALIS_PASSWORD } : {}) });
    } else {
      for (const cluster of this.store.listClusters()) {
        onProgress(`starting cluster "${cluster.name}"`);
        await this.startCluster(cluster);
      }
    }
    this.autoscaler.start();
    let sampling = false;
    this.replicaLagTimer = setInterval(() => {
      if (sampling) return;
      sampling = true;
      void this.sampleReplicaLag().finally(() => (sampling = false));
    }, REPLICA_LAG_SAMPLE_MS);
    this.replicaLagTimer.unref();
    if (this.settings.instanceProbeIntervalMs > 0) {
      this.prober = new InstanceProber({
        instances: () => this.instances.values(),
        timeoutMs: this.settings.instanceProbeTimeoutMs,
        failuresMax: this.settings.instanceProbeFailuresMax,
        onKill: (id, kind, message) => this.event('instance', id, kind, message),
      });
      this.prober.start(this.settings.instanceProbeIntervalMs);
    }
    onProgress('starting the Data API');
    this.dataApi = new DataApiServer(this.dataApiDirectory(), {
      requestBytesMax: this.settings.dataApiRequestBytesMax,
      responseBytesMax: this.settings.dataApiResponseBytesMax,
      statementTimeoutMs: this.settings.dataApiStatementTimeoutMs,
      transactionIdleMs: this.settings.dataApiTransactionIdleMs,
      transactionMaxMs: this.settings.dataApiTransactionMaxMs,
      resumeWaitMs: this.settings.dataApiResumeWaitMs,
      poolSizeMax: this.settings.dataApiPoolSizeMax,
    }, this.log.child('data-api'));
    this.dataApiUrl = await this.dataApi.listen(this.settings.dataApiPort, this.settings.listenHost);
  }

  /** Endpoints to instances, and the look-ups cached against the store's version (directory.ts). */
  private directory!: EndpointDirectory;

  routesVersion(): number {
    return this.directory.version();
  }

  private cached<T>(key: string, compute: () => T): T {
    return this.directory.cache.get(key, compute);
  }

  /** What the Data API needs from the control plane. */
  private dataApiDirectory(): DataApiDirectory {
    return {
      clusterFromArn: (arn) =>
        this.cached(`arn\0${arn}`, () => {
          const m = /^arn:aws:rds:[a-z0-9-]*:\d*:cluster:([a-z][a-z0-9-]{0,62})$/.exec(arn);
          return m && this.store.getCluster(m[1]!) ? m[1]! : null;
        }),
      dataApiEnabled: (cluster) => this.cached(`http\0${cluster}`, () => this.store.httpEndpointEnabled(cluster)),
      secret: (arn) =>
        this.cached(`secret\0${arn}`, () => {
          const s = this.store.getSecret(arn);
          if (!s || typeof s.value.password !== 'string') return null;
          return { cluster: s.cluster, username: s.username, password: s.value.password, ...(typeof s.value.dbname === 'string' && s.value.dbname !== '' ? { dbname: s.value.dbname } : {}) };
        }),
      // Read as for a proxy login: fresh when the writer answers, the last-known row while it is paused.
      passwordMatches: async (cluster, username, password) => this.passwordMatches(await this.roles.lookup(cluster, username), cluster, username, password),
      awaitWriterSocket: async (cluster, timeoutMs) => {
        const writer = this.writerOf(cluster);
        if (!writer || !(await writer.waitAvailable(timeoutMs))) return null;
        return { socketDir: writer.server.options.socketDir, port: writer.options.record.enginePort };
      },
      accessKeySecret: (id) => this.cached(`key\0${id}`, () => this.store.getAccessKeySecret(id)),
      activity: (cluster, delta) => this.dataApiActive.set(cluster, (this.dataApiActive.get(cluster) ?? 0) + delta),
    };
  }

  /** Whether a password is the SCRAM password of a role that may log in. */
  private passwordMatches(row: RoleRecord | null, cluster: string, username: string, password: string): boolean {
    const role = loginMethod(row, Date.now());
    if (role.method !== 'scram' || !role.canLogin) return false;
    const v = role.verifier;
    const key = `${cluster}\0${username}\0${createHash('sha256').update(password).digest('hex')}\0${v.storedKey.toString('base64')}`;
    if (this.checkedPasswords.has(key)) return true;
    const ok = deriveVerifier(password, v.salt, v.iterations).storedKey.equals(v.storedKey);
    if (ok) {
      if (this.checkedPasswords.size > 10_000) this.checkedPasswords.clear();
      this.checkedPasswords.add(key);
    }
    return ok;
  }

  /** A Secrets Manager-style secret holding a database login, for the Data API's secretArn. */
  /** `dbname`: the database the Data API uses when a call names none (as in an RDS secret). */
  async createSecret(cluster: string, username: string, password: string, dbname?: string): Promise<{ arn: string }> {
    if (!this.store.getCluster(cluster)) throw new ControlError('not-found', `cluster "${cluster}" does not exist`);
    // Read now, so a role made or changed by SQL a moment ago counts.
    const row = await this.roles.lookup(cluster, username);
    if (loginMethod(row, Date.now()).method !== 'scram') throw new ControlError('invalid', `cluster "${cluster}" has no password user "${username}"`);
    if (!this.passwordMatches(row, cluster, username, password)) throw new ControlError('invalid', `the password does not match user "${username}"`);
    const arn = `${SECRET_ARN_PREFIX}/${cluster}/${username}-${randomBytes(3).toString('hex')}`;
    if (dbname !== undefined && !/^[^\0]{1,63}$/.test(dbname)) throw new ControlError('invalid', 'dbname must be 1 to 63 characters');
    this.store.insertSecret(arn, cluster, username, { username, password, engine: 'postgres', dbClusterIdentifier: cluster, ...(dbname !== undefined ? { dbname } : {}) });
    this.event('cluster', cluster, 'secret-created', `secret for ${username} created`);
    return { arn };
  }

  /** The cluster's secrets (values left out); `master`: the one Borealis made for the master user at creation. */
  listSecrets(cluster: string): Array<{ arn: string; username: string; createdAt: string; master: boolean }> {
    const record = this.store.getCluster(cluster);
    if (!record) throw new ControlError('not-found', `cluster "${cluster}" does not exist`);
    const secrets = this.store.listSecrets(cluster);
    const masterArn = secrets.find((s) => s.username === record.masterUsername)?.arn;
    return secrets.map((s) => ({ ...s, master: s.arn === masterArn }));
  }

  /** Deletes a secret: Data API calls naming it are refused from now on. The master user's goes only with its cluster. */
  deleteSecret(cluster: string, arn: string): void {
    const secret = this.listSecrets(cluster).find((s) => s.arn === arn);
    if (!secret) throw new ControlError('not-found', `cluster "${cluster}" has no secret ${arn}`);
    if (secret.master) throw new ControlError('invalid', `${arn} holds the master user's password (\`borealis connect\` and the up banner read it); it is deleted with its cluster`);
    this.store.deleteSecret(arn);
    this.event('cluster', cluster, 'secret-deleted', `secret for ${secret.username} deleted`);
  }

  /** Aurora's EnableHttpEndpoint. */
  setDataApiEnabled(name: string, enabled: boolean): void {
    if (!this.store.getCluster(name)) throw new ControlError('not-found', `cluster "${name}" does not exist`);
    this.store.setHttpEndpointEnabled(name, enabled);
    this.event('cluster', name, 'modified', `Data API ${enabled ? 'enabled' : 'disabled'}`);
  }

  private scaling(cluster: string): ScalingConfig {
    return this.store.getScaling(cluster) ?? { minAcu: 0.5, maxAcu: 1, secondsUntilAutoPause: 300 };
  }

  /** Server connections per pool for a capacity. */
  private poolServersFor(acu: number): number {
    return Math.min(this.settings.serverPoolSizeMax, Math.max(2, Math.ceil(acu * this.settings.serverPoolServersPerAcu)));
  }

  private flushMeter(): void {
    for (const [id, acuSeconds] of this.unmetered) if (acuSeconds > 0) this.store.addAcuSeconds(id, acuSeconds);
    this.unmetered.clear();
  }

  /**
   * Changes a cluster's scaling configuration live: capacity moves into the
   * new range at once; restart-time settings follow max at the next start.
   */
  modifyScaling(name: string, change: Partial<ScalingConfig>): ScalingConfig {
    const current = this.store.getScaling(name);
    if (!current) throw new ControlError('not-found', `cluster "${name}" does not exist`);
    const next: ScalingConfig = { ...current, ...change };
    const error = validateScalingConfig(next);
    if (error) throw new ControlError('invalid', error);
    this.store.setScaling(name, next);
    this.event('cluster', name, 'modified', `scaling: ${next.minAcu}-${next.maxAcu} ACU, auto-pause after ${next.secondsUntilAutoPause} s${next.minAcu === 0 ? '' : ' (off: min > 0)'}`);
    for (const r of this.store.listInstances(name)) {
      const instance = this.instances.get(r.id);
      if (!instance || r.kind !== 'serverless' || instance.state !== 'available') continue;
      const inRange = clamp(instance.capacityAcu, next);
      if (inRange === instance.capacityAcu) continue;
      instance.setCapacity(inRange);
      this.proxy.setInstancePoolSize(r.id, this.poolServersFor(inRange));
      this.event('instance', r.id, 'scaled', `→ ${inRange} ACU (scaling configuration changed)`);
    }
    return next;
  }

  /** Records where the API listens, for the CLI. */
  announce(apiUrl: string): void {
    this.apiUrl = apiUrl;
    const info: SupervisorInfo = { pid: process.pid, apiUrl, startedAt: this.startedAt };
    fs.writeFileSync(this.paths.supervisorFile, JSON.stringify(info) + '\n', { mode: 0o600 });
  }

  /**
   * The embedded binaries may sit where the service user cannot reach them
   * (a checkout under /root); then a copy in the home serves instead.
   */
  private prepareBinaries(found: EngineBinaries): EngineBinaries {
    if (canAccess(this.identity, '-x', path.join(found.binDir, 'postgres'))) return found;
    const root = path.dirname(found.binDir);
    const copy = path.join(this.paths.engineDir, `postgresql-${found.version}`);
    if (!fs.existsSync(path.join(copy, 'bin', 'postgres'))) {
      this.log.info('copying PostgreSQL binaries where the service user can reach them', { from: root, to: copy });
      fs.mkdirSync(this.paths.engineDir, { recursive: true, mode: 0o755 });
      fs.cpSync(root, copy + '.partial', { recursive: true, verbatimSymlinks: true });
      fs.renameSync(copy + '.partial', copy);
    }
    const binaries = { ...found, binDir: path.join(copy, 'bin') };
    if (!canAccess(this.identity, '-x', path.join(binaries.binDir, 'postgres'))) {
      throw new ControlError('invalid', `the user that runs PostgreSQL cannot execute ${binaries.binDir}/postgres; choose a --home it can traverse`);
    }
    return binaries;
  }

  async createCluster(input: CreateClusterInput): Promise<ClusterCredentials> {
    const nameError = validateClusterName(input.name);
    if (nameError) throw new ControlError('invalid', nameError);
    const username = input.masterUsername ?? 'postgres';
    const userError = validateUsername(username);
    if (userError) throw new ControlError('invalid', userError);
    if ([INTERNAL_SUPERUSER, RDS_IAM, RDS_SUPERUSER, REPLICATION_USER].includes(username) || username.startsWith('pg_')) {
      throw new ControlError('invalid', `"${username}" is reserved; choose another master user name`);
    }
    if (input.masterPassword !== undefined && (input.masterPassword.length < 8 || input.masterPassword.length > 128)) {
      throw new ControlError('invalid', 'the master password must be 8 to 128 characters');
    }
    if (this.store.getCluster(input.name)) throw new ControlError('conflict', `cluster "${input.name}" already exists`);
    const scaling: ScalingConfig = {
      minAcu: this.settings.defaultMinCapacityAcu,
      maxAcu: this.settings.defaultMaxCapacityAcu,
      secondsUntilAutoPause: this.settings.defaultSecondsUntilAutoPause,
      ...input.scaling,
    };
    const scalingError = validateScalingConfig(scaling);
    if (scalingError) throw new ControlError('invalid', scalingError);
    const password = input.masterPassword ?? randomBytes(PASSWORD_BYTES).toString('base64url');
    const verifier = formatVerifier(deriveVerifier(password, randomBytes(16), SCRAM_ITERATIONS_DEFAULT));
    const secretArn = `${SECRET_ARN_PREFIX}/${input.name}/${username}-${randomBytes(3).toString('hex')}`;
    const now = new Date().toISOString();
    // The master user is no superuser (as on Aurora): Borealis keeps its own, reachable only over the private socket.
    const cluster: ClusterRecord = { name: input.name, engineVersion: this.binaries.version, masterUsername: username, adminUsername: INTERNAL_SUPERUSER, systemId: null, createdAt: now };
    const endpointPort = input.writerPort ?? (await this.allocatePort(this.settings.proxyPort));
    if (input.writerPort !== undefined) await checkPortsFree(this.settings.listenHost, [{ port: input.writerPort, what: `the writer endpoint of cluster ${input.name}`, setting: 'proxyPort' }]);
    const enginePort = await this.allocatePort(this.settings.enginePortBase, new Set([endpointPort]));
    this.store.transaction(() => {
      this.store.insertCluster(cluster);
      this.store.setScaling(input.name, scaling);
      this.store.insertInstance({
        // Ids name no role: a failover swaps roles, and an id stays true (the role is shown beside it).
        id: `${input.name}-instance-1`,
        cluster: input.name,
        role: 'writer',
        kind: 'serverless',
        promotionTier: 1,
        capacityAcu: clamp(0.5, scaling),
        enginePort,
        createdAt: now,
      });
      this.store.insertEndpoint({ cluster: input.name, type: 'writer', name: '', port: endpointPort, customType: null, staticMembers: [], excludedMembers: [] });
      this.store.insertSecret(secretArn, input.name, username, { username, password, engine: 'postgres', host: this.settings.listenHost, port: String(endpointPort), dbClusterIdentifier: input.name });
    });
    if (this.settings.storageNodeCount > 0) {
      await StorageFleet.create(this.store, this.settings, input.name, (taken) => this.allocatePort(this.settings.storagePortBase, new Set([...taken, endpointPort, enginePort, ...this.store.usedStoragePorts()])));
    }
    this.event('cluster', input.name, 'created', `cluster created with master user ${username}`);
    await this.startCluster(cluster);
    await this.roles.prepare(input.name);
    // Its row is known before anyone logs in (or the cluster pauses).
    await this.roles.createMaster(input.name, username, verifier);
    const fleet = this.fleets.get(input.name);
    if (fleet) {
      try {
        await fleet.baseBackup();
      } catch (err) {
        this.event('cluster', input.name, 'backup-failed', `first base backup failed (retried by the health check): ${(err as Error).message}`);
      }
    }
    return { cluster: input.name, username, password, secretArn };
  }

  private async startCluster(cluster: ClusterRecord): Promise<void> {
    await this.ensureEndpoints(cluster.name);
    // Listen first: clients that arrive while the instances start are held.
    for (const e of this.store.listEndpoints(cluster.name)) {
      await this.proxy.listen({ cluster: cluster.name, type: e.type, name: e.name, host: this.settings.listenHost, port: e.port });
    }
    let fleet: StorageFleet | null = null;
    if (this.store.getStorage(cluster.name)) {
      fleet = new StorageFleet({
        cluster: cluster.name,
        store: this.store,
        settings: this.settings,
        dir: path.join(this.paths.home, 'storage', cluster.name),
        token: this.storageToken(),
        // Whichever instance is the writer now (a failover moves it).
        writer: () => ({ host: this.store.getStorage(cluster.name)!.writerHost, port: this.directory.writerPort(cluster.name) }),
        identity: this.identityOf(cluster.name),
        log: this.log.child(`storage:${cluster.name}`),
        event: (kind, message) => this.event('cluster', cluster.name, kind, message),
        writerRunning: () => this.writerOf(cluster.name)?.state === 'available' && !this.failingOver.has(cluster.name),
      });
      this.fleets.set(cluster.name, fleet);
      await fleet.start();
    }
    await recoverFailover(this.failoverWorld(cluster));
    // The writer first: readers clone it and stream from it.
    const records = this.store.listInstances(cluster.name).sort((x, y) => (x.role === y.role ? 0 : x.role === 'writer' ? -1 : 1));
    for (const record of records) {
      await this.startInstance(cluster, record);
      // A failover rolled forward promotes the writer before any reader clones or follows it.
      if (record.role === 'writer') await this.finishing.get(cluster.name);
    }
  }

  /**
   * The system user a cluster's PostgreSQL runs as, its own (created when
   * first needed), so that one cluster's server cannot read another's files
   * (COPY … PROGRAM in one cluster runs as that cluster's user). Null when
   * Borealis does not run as root: everything then runs as we do.
   */
  private identityOf(cluster: string): ProcessIdentity | null {
    if (!this.identity) return null;
    let who = this.identities.get(cluster);
    if (who === undefined) {
      who = ensureServiceUser(clusterServiceUserName(this.settings.serviceUser, cluster));
      this.identities.set(cluster, who);
    }
    return who;
  }

  /** An instance's role now: a failover swaps them, so hooks ask each time. */
  private roleOf(id: string): 'writer' | 'reader' | null {
    return this.store.listInstances().find((r) => r.id === id)?.role ?? null;
  }

  /**
   * Creates an instance's driver and starts it. What it runs as comes from
   * its role at each start: a writer (with the cluster's storage, if any) or
   * a reader of the writer.
   */
  private async startInstance(cluster: ClusterRecord, record: InstanceRecord): Promise<void> {
    // Homes made before clusters had users of their own: the data goes to the cluster's user.
    const who = this.identityOf(cluster.name);
    if (ensureOwned(who, this.paths.instanceDir(record.id))) this.log.info('gave the instance directory to its cluster\'s system user', { instance: record.id, user: who!.name });
    const storage = (): StorageFleet | null => this.fleets.get(cluster.name) ?? null;
    const reader = this.readerHooks(cluster, record);
    const instance = new LocalInstance({
      record,
      dir: this.paths.instanceDir(record.id),
      binaries: this.binaries,
      identity: who,
      superuser: adminOf(cluster),
      acuMemoryMiB: this.settings.acuMemoryMiB,
      acuCpuCores: this.settings.acuCpuCores,
      cgroups: this.cgroups,
      maxCapacityAcu: () => (record.kind === 'serverless' ? this.scaling(cluster.name).maxAcu : record.capacityAcu),
      startTimeoutMs: this.settings.engineStartTimeoutMs,
      stopTimeoutMs: this.settings.engineStopTimeoutMs,
      restartBackoffMsMax: this.settings.restartBackoffMsMax,
      extraSettings: () => ({ ...this.storageListenSettings(cluster.name), ...(this.roleOf(record.id) === 'reader' ? reader.extraSettings() : (storage()?.writerSettings() ?? {})) }),
      replicationSources: () => ({ user: REPLICATION_USER, cidrs: StorageFleet.replicationSources(this.store, cluster.name).map(singleAddressCidr) }),
      standbyOnly: () => this.roleOf(record.id) === 'reader',
      restoreData: async (dataDir: string) => {
        if (this.roleOf(record.id) === 'reader') return reader.restoreData(dataDir);
        const fleet = storage();
        if (!fleet) {
          const system = this.store.getCluster(cluster.name)?.systemId;
          // Nothing to rebuild from: an empty database in its place would look available and hold none of the data.
          if (system) {
            throw new Error(
              `the data directory is gone and cluster "${cluster.name}" has no storage nodes (storageNodeCount 0) to rebuild system ${system} from: the writer stays down rather than start empty; put the directory back, or fail over to a reader`,
            );
          }
          return false;
        }
        const requested = this.rebuildRequested.has(record.id);
        if (!requested && fs.existsSync(dataDir) && fs.readdirSync(dataDir).length > 0) {
          // Damaged rather than gone (or a mount not there yet): never rebuilt over on its own.
          throw new Error(`${dataDir} is not a PostgreSQL data directory (no PG_VERSION); repair it, or run \`borealis instance rebuild ${record.id}\``);
        }
        if (!this.settings.storageAutoRebuild && !requested) throw new Error('the data directory is gone and automatic rebuild is off; run `borealis instance rebuild`');
        try {
          // Once the cluster has a system, only from storage: fleet.restore waits rather than initdb.
          return await fleet.restore(dataDir);
        } catch (err) {
          if (err instanceof StorageWait) throw new RestoreDeferred(`waiting for storage: ${err.message}`);
          throw err;
        }
      },
      // While it is paused nothing can change its roles: the rows read now are exact until it resumes.
      beforePause: async () => {
        if (this.roleOf(record.id) !== 'writer') return;
        await this.roles.snapshot(cluster.name).catch((err: Error) => this.log.warn('could not keep the roles of a pausing writer', { cluster: cluster.name, error: err.message }));
      },
      log: this.log.child(`instance:${record.id}`),
    });
    instance.on('transition', (t) => {
      this.event('instance', record.id, t.to, t.to === 'available' && t.from === 'resuming' && instance.lastResume ? `${t.reason} (resumed in ${instance.lastResume.totalMs} ms)` : t.reason);
      if (t.to === 'available') this.proxy.setInstancePoolSize(record.id, this.poolServersFor(instance.capacityAcu));
      if (t.to === 'available' && this.roleOf(record.id) === 'writer') this.afterWriterAvailable(cluster.name);
      if (t.to === 'failed' && this.roleOf(record.id) === 'writer') void this.failoverAutomatically(cluster.name, record.id, t.reason);
    });
    this.instances.set(record.id, instance);
    try {
      await instance.start();
    } catch (err) {
      // It waits for its storage quorum and retries on its own (its transition is the event).
      if (err instanceof RestoreDeferred) return;
      this.event('instance', record.id, 'failed', `start failed: ${(err as Error).message}`);
      throw err;
    }
    const fleet = storage();
    if (fleet && this.roleOf(record.id) === 'writer') await this.afterWriterStart(cluster.name, fleet);
  }

  /** A writer became available: its readers' slots exist, and storage follows it. */
  private afterWriterAvailable(cluster: string): void {
    const op = this.store.getOperation(cluster);
    const writer = this.writerOf(cluster);
    if (op && writer && op.target === writer.id && !this.failingOver.has(cluster)) {
      // A failover finished only as far as the role swap: promoted first.
      void this.finishFailover(this.store.getCluster(cluster)!, writer);
      return;
    }
    void this.ensureReaderSlots(cluster);
    void this.roles.prepare(cluster).catch((err: Error) => this.log.warn('could not prepare the cluster\'s roles', { cluster, error: err.message }));
    const fleet = this.fleets.get(cluster);
    if (fleet) void this.afterWriterStart(cluster, fleet);
    else if (!this.store.getCluster(cluster)?.systemId) void this.recordSystem(cluster);
  }

  /**
   * A cluster without storage nodes records its system once its writer has
   * run (with storage, pointStorageAtWriter does): from then on a lost data
   * directory is never replaced by an empty one.
   */
  private async recordSystem(cluster: string): Promise<void> {
    try {
      const systemId = await this.withWriterSession(cluster, async (client) => (await client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id);
      this.store.recordClusterSystemId(cluster, systemId);
    } catch (err) {
      this.log.warn('could not record the cluster\'s system identifier yet', { cluster, error: (err as Error).message });
    }
  }

  private readonly rebuildRequested = new Set<string>();

  /** A reader's data comes from its writer (a clone), and it streams from the writer's socket through its own slot. */
  /**
   * Storage nodes placed on other addresses reach the writer at the
   * cluster's recorded writer host, so every instance (any may become the
   * writer) listens there too.
   */
  private storageListenSettings(cluster: string): Record<string, PgValue> {
    const host = this.store.getStorage(cluster)?.writerHost;
    return host && host !== LOOPBACK ? { listen_addresses: `${LOOPBACK},${host}` } : {};
  }

  private readerHooks(cluster: ClusterRecord, record: InstanceRecord): Required<Pick<LocalInstanceOptions, 'restoreData' | 'extraSettings'>> {
    const writerSocket = (): { socketDir: string; port: number } | null => {
      const writer = this.writerOf(cluster.name);
      return writer ? { socketDir: writer.server.options.socketDir, port: writer.options.record.enginePort } : null;
    };
    return {
      restoreData: async (dataDir) => {
        const writer = this.writerOf(cluster.name);
        if (!writer || !(await writer.waitAvailable(this.settings.clientWaitForWriterMs))) throw new Error(`the writer of cluster "${cluster.name}" is not available to clone`);
        const socket = { socketDir: writer.server.options.socketDir, port: writer.options.record.enginePort, superuser: adminOf(cluster) };
        await cloneWriter(socket, record.id, dataDir, this.identityOf(cluster.name), this.log.child(`instance:${record.id}`), this.settings.engineStartTimeoutMs);
        return true;
      },
      extraSettings: () => {
        const w = writerSocket();
        return {
          hot_standby: true,
          hot_standby_feedback: true,
          wal_retrieve_retry_interval: 1000,
          primary_slot_name: readerSlotName(record.id),
          ...(this.pinnedTimelines.has(record.id) ? { recovery_target_timeline: String(this.pinnedTimelines.get(record.id)) } : {}),
          ...(w ? { primary_conninfo: `host=${w.socketDir} port=${w.port} user=${adminOf(cluster)} dbname=postgres application_name=${record.id}` } : {}),
        };
      },
    };
  }

  /**
   * Every reader's slot exists on the writer: after a writer is rebuilt from
   * storage it has none, and readers would wait for them forever.
   */
  private async ensureReaderSlots(cluster: string): Promise<void> {
    // A reader being cloned makes its own slot.
    const state = (id: string): string | undefined => this.instances.get(id)?.state;
    const readers = this.store.listInstances(cluster).filter((r) => r.role === 'reader' && (state(r.id) === 'available' || state(r.id) === 'paused'));
    if (readers.length === 0) return;
    try {
      await this.withWriterSession(cluster, async (client) => {
        for (const r of readers) {
          await client
            .query('SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)', [readerSlotName(r.id)])
            .catch((err: Error) => this.log.warn('could not make a reader\'s replication slot on the writer', { cluster, instance: r.id, error: err.message }));
        }
      });
    } catch (err) {
      this.log.warn('could not check the readers\' replication slots on the writer', { cluster, error: (err as Error).message });
    }
  }

  /** Aurora's CreateDBInstance for a reader: a clone of the writer that streams from it, with its own instance endpoint. */
  async addReader(clusterName: string, input: { promotionTier?: number }): Promise<InstanceRecord> {
    const cluster = this.store.getCluster(clusterName);
    if (!cluster) throw new ControlError('not-found', `cluster "${clusterName}" does not exist`);
    const tier = input.promotionTier ?? 1;
    if (!Number.isInteger(tier) || tier < 0 || tier > 15) throw new ControlError('invalid', 'the promotion tier is an integer from 0 to 15');
    const existing = this.store.listInstances(clusterName);
    const writer = existing.find((r) => r.role === 'writer');
    if (!writer) throw new ControlError('unavailable', `cluster "${clusterName}" has no writer`);
    if (existing.length >= READERS_MAX + 1) throw new ControlError('invalid', `a cluster has at most ${READERS_MAX} readers`);
    let n = 1;
    while (existing.some((r) => r.id === `${clusterName}-instance-${n}`)) n++;
    const enginePort = await this.allocatePort(this.settings.enginePortBase);
    const record: InstanceRecord = {
      id: `${clusterName}-instance-${n}`,
      cluster: clusterName,
      role: 'reader',
      kind: writer.kind,
      promotionTier: tier,
      capacityAcu: writer.kind === 'serverless' ? clamp(Math.max(0.5, this.instances.get(writer.id)?.capacityAcu ?? 0.5), this.scaling(clusterName)) : writer.capacityAcu,
      enginePort,
      createdAt: new Date().toISOString(),
    };
    this.store.insertInstance(record);
    await this.ensureEndpoints(clusterName);
    const endpoint = this.store.listEndpoints(clusterName).find((e) => e.type === 'instance' && e.name === record.id)!;
    await this.proxy.listen({ cluster: clusterName, type: 'instance', name: record.id, host: this.settings.listenHost, port: endpoint.port });
    this.event('cluster', clusterName, 'instance-created', `reader ${record.id} (promotion tier ${tier}) created`);
    await this.startInstance(cluster, record);
    return record;
  }

  /** Failovers per cluster since the supervisor started. */
  private readonly failovers = new Map<string, number>();
  private readonly failingOver = new Set<string>();

  /**
   * Aurora's FailoverDBCluster: a reader becomes the writer (the one asked
   * for, or the first by promotion tier, then capacity; a paused reader of
   * tier 0 or 1 is resumed for it), and the old writer comes back as a
   * reader of it. The order of the steps is failover.ts's; clients of the
   * old writer lose their connections, as in Aurora, and new ones reach the
   * new writer through the same endpoints.
   */
  async failover(clusterName: string, targetId?: string): Promise<{ writer: string; previous: string; tookMs: number }> {
    const cluster = this.store.getCluster(clusterName);
    if (!cluster) throw new ControlError('not-found', `cluster "${clusterName}" does not exist`);
    if (this.failingOver.has(clusterName)) throw new ControlError('conflict', `cluster "${clusterName}" is already failing over`);
    const records = this.store.listInstances(clusterName);
    const oldRecord = records.find((r) => r.role === 'writer');
    if (!oldRecord || !this.instances.get(oldRecord.id)) throw new ControlError('unavailable', `cluster "${clusterName}" has no writer`);
    const candidates = this.promotionCandidates(records);
    const targetRecord = targetId ? candidates.find((r) => r.id === targetId) : candidates[0];
    if (!targetRecord) {
      throw new ControlError('invalid', targetId ? `${targetId} is not an available reader of cluster "${clusterName}"` : `cluster "${clusterName}" has no available reader to fail over to`);
    }
    if (this.store.getOperation(clusterName)) throw new ControlError('conflict', `cluster "${clusterName}" is still finishing an earlier failover`);
    this.failingOver.add(clusterName);
    try {
      const tookMs = await runFailover(this.failoverWorld(cluster), oldRecord.id, targetRecord.id);
      return { writer: targetRecord.id, previous: oldRecord.id, tookMs };
    } catch (err) {
      throw err instanceof CatchUpError || err instanceof FailoverError ? new ControlError('unavailable', err.message) : err;
    } finally {
      this.failingOver.delete(clusterName);
    }
  }

  /** The effects of a failover of `cluster`, as failover.ts runs them. */
  private failoverWorld(cluster: ClusterRecord): FailoverWorld {
    const name = cluster.name;
    const instance = (id: string): LocalInstance => {
      const i = this.instances.get(id);
      if (!i) throw new ControlError('unavailable', `instance ${id} is not running under this supervisor`);
      return i;
    };
    const enginePort = (id: string): number => this.store.listInstances(name).find((r) => r.id === id)?.enginePort ?? 0;
    const fleet = this.fleets.get(name);
    const { engineStartTimeoutMs } = this.settings;
    return {
      record: {
        begin: (oldWriter, target) => this.store.beginOperation({ cluster: name, kind: 'failover', oldWriter, target, step: 'begun' }),
        advance: (step) => this.store.advanceOperation(name, step),
        swap: (oldWriter, target) => {
          this.store.transaction(() => {
            this.store.setInstanceRole(target, 'writer');
            this.store.setInstanceRole(oldWriter, 'reader');
            this.store.advanceOperation(name, 'swapped');
          });
        },
        current: () => this.store.getOperation(name),
        writer: () => this.store.listInstances(name).find((r) => r.role === 'writer')?.id ?? null,
        end: () => this.store.endOperation(name),
      },
      storage: fleet
        ? {
            fence: async (target) => {
              const fence = await fleet.fence({ host: this.store.getStorage(name)!.writerHost, port: enginePort(target) });
              return { term: fence.term, terms: fence.statuses.map((s) => s.term) };
            },
            terms: async () => (await fleet.follow()).map((s) => s.term),
            endFence: () => fleet.endFence(),
            raiseTerm: async () => void (await fleet.raiseTerm()),
          }
        : null,
      fenceTimeoutMs: this.settings.storageFenceTimeoutMs,
      crashPoint,
      resume: async (id) => {
        const target = instance(id);
        if (target.state !== 'paused') return true;
        const tier = this.store.listInstances(name).find((r) => r.id === id)?.promotionTier;
        this.event('instance', id, 'resuming', `resuming paused reader ${id} (promotion tier ${tier}) to fail over to it`);
        return target.waitAvailable(engineStartTimeoutMs);
      },
      stop: (id) => instance(id).stop(),
      start: (id) => instance(id).start(),
      catchUp: (id) => this.catchUp(cluster, instance(id)),
      // The new writer runs with the fenced term once its configuration is rewritten.
      promote: (id) => instance(id).promote(engineStartTimeoutMs),
      inRecovery: (id) => withInstanceSession(instance(id), adminOf(cluster), async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r),
      afterPromotion: (writer, oldWriter) => {
        this.afterWriterAvailable(name);
        if (oldWriter === null) return;
        // Other readers stream from the new writer from now on.
        for (const r of this.store.listInstances(name)) if (r.role === 'reader' && r.id !== oldWriter) this.instances.get(r.id)?.reconfigure();
        this.failovers.set(name, (this.failovers.get(name) ?? 0) + 1);
        // The old writer's data may hold WAL the new writer never had: it is
        // cloned afresh (and would be on any start: a reader's directory must be a standby's).
        this.instances.get(oldWriter)?.rebuild().catch((err: Error) => this.event('instance', oldWriter, 'failed', `could not come back as a reader: ${err.message}`));
      },
      reclone: (id, why) => {
        this.event('instance', id, 'off-timeline', why);
        void this.instances.get(id)?.rebuild().catch((e: Error) => this.event('instance', id, 'failed', `could not be cloned afresh: ${e.message}`));
      },
      restartLater: (id, why) => this.instances.get(id)?.restartLater(why),
      event: (kind, message, id) => (id ? this.event('instance', id, kind, message) : this.event('cluster', name, kind, message)),
      shuttingDown: () => this.shuttingDown,
      now: () => Date.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    };
  }

  /** Per reader, the recovery target timeline of its next start while a failover catches it up (catch-up.ts). */
  private readonly pinnedTimelines = new Map<string, number>();

  /** The target has replayed all it received and all the storage quorum holds (catch-up.ts). */
  private async catchUp(cluster: ClusterRecord, target: LocalInstance): Promise<void> {
    const fleet = this.fleets.get(cluster.name);
    const deps: CatchUpDeps = {
      superuser: adminOf(cluster),
      timeoutMs: this.settings.engineStartTimeoutMs,
      event: (id, kind, message) => this.event('instance', id, kind, message),
      shuttingDown: () => this.shuttingDown,
      pinTimeline: (id, timeline) => (timeline === null ? this.pinnedTimelines.delete(id) : this.pinnedTimelines.set(id, timeline)),
    };
    await waitReplayed(target, deps);
    if (fleet) await catchUpFromStorage(target, fleet, deps);
  }

  /**
   * The writer of record is running and a recorded failover names it as the
   * target: the failover got as far as the role swap (failover.ts).
   */
  private finishFailover(cluster: ClusterRecord, writer: LocalInstance): Promise<void> {
    const running = this.finishing.get(cluster.name);
    if (running) return running;
    const p = this.finishPromotion(cluster, writer).finally(() => this.finishing.delete(cluster.name));
    this.finishing.set(cluster.name, p);
    return p;
  }

  private readonly finishing = new Map<string, Promise<void>>();

  private async finishPromotion(cluster: ClusterRecord, writer: LocalInstance): Promise<void> {
    if (this.failingOver.has(cluster.name)) return;
    this.failingOver.add(cluster.name);
    try {
      await finishFailover(this.failoverWorld(cluster), writer.id);
    } finally {
      this.failingOver.delete(cluster.name);
    }
  }

  /**
   * A writer that crashed and could not be restarted where it is (its
   * restart failed) hands over to its best available reader, as Aurora fails
   * over on its own. Without a reader it keeps being restarted.
   */
  private async failoverAutomatically(cluster: string, writerId: string, why: string): Promise<void> {
    if (this.shuttingDown || this.failingOver.has(cluster) || this.promotionCandidates(this.store.listInstances(cluster)).length === 0) return;
    this.event('cluster', cluster, 'failover-automatic', `the writer ${writerId} failed (${why}); failing over to a reader`);
    // failover() records its own failure, and the old writer keeps restarting.
    await this.failover(cluster).catch(() => undefined);
  }

  /** Readers a failover may pick, in its order (failover-steps.ts): available ones, and paused ones of tier 0 or 1. */
  private promotionCandidates(records: readonly InstanceRecord[]): InstanceRecord[] {
    const readers = records.flatMap((r) => {
      const live = this.instances.get(r.id);
      return r.role === 'reader' && live ? [{ ...r, state: live.state, capacityAcu: live.capacityAcu }] : [];
    });
    const order = promotionOrder(readers).map((c) => c.id);
    return order.map((id) => records.find((r) => r.id === id)!);
  }

  /** Aurora's DeleteDBInstance, for readers (a writer goes with its cluster). */
  async deleteInstance(id: string): Promise<void> {
    const record = this.store.listInstances().find((r) => r.id === id);
    if (!record) throw new ControlError('not-found', `instance "${id}" does not exist`);
    if (record.role === 'writer') throw new ControlError('invalid', `${id} is the writer; delete the cluster instead`);
    const instance = this.instances.get(id);
    const endpoint = this.store.listEndpoints(record.cluster).find((e) => e.type === 'instance' && e.name === id);
    if (endpoint) {
      this.proxy.unlisten(endpoint.port);
      this.store.deleteEndpoint(record.cluster, 'instance', id);
    }
    this.proxy.closePools({ instanceId: id });
    await instance?.stop();
    this.instances.delete(id);
    this.store.deleteInstance(id);
    this.replicaLag.delete(id);
    fs.rmSync(this.paths.instanceDir(id), { recursive: true, force: true });
    await this.withWriterSession(record.cluster, (client) => client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [readerSlotName(id)])).catch((err: Error) =>
      this.log.warn('could not drop the reader\'s slot on the writer', { instance: id, error: err.message }),
    );
    this.event('cluster', record.cluster, 'instance-deleted', `reader ${id} deleted`);
  }

  /** Per reader: how far its replay is behind its writer, sampled every second from the writer. */
  private readonly replicaLag = new Map<string, { seconds: number; bytes: number }>();
  private replicaLagTimer: NodeJS.Timeout | null = null;
  private readonly aheadReported = new Set<string>();

  private async sampleReplicaLag(): Promise<void> {
    for (const cluster of this.store.listClusters()) {
      const readers = this.store.listInstances(cluster.name).filter((r) => r.role === 'reader');
      const writer = this.writerOf(cluster.name);
      // A paused writer is not woken to be measured.
      if (readers.length === 0 || writer?.state !== 'available') continue;
      try {
        const rows = await this.withSession(writer, adminOf(cluster), async (client) =>
          (
            await client.query<{ name: string; seconds: number | null; bytes: string | null }>(
              `SELECT application_name AS name, EXTRACT(EPOCH FROM replay_lag)::float8 AS seconds, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS bytes FROM pg_stat_replication`,
            )
          ).rows,
        );
        for (const r of readers) {
          const row = rows.find((x) => x.name === r.id);
          if (!row) continue;
          const bytes = Number(row.bytes ?? 0);
          // replay_lag is NULL once the reader has replayed everything and nothing new came.
          // Negative: the reader has replayed past the writer's end of WAL,
          // which a reader of this writer cannot (it is on a branch the
          // writer does not have). Shown as it is, and recorded once.
          this.replicaLag.set(r.id, { seconds: bytes <= 0 ? 0 : (row.seconds ?? 0), bytes });
          if (bytes < 0 && !this.aheadReported.has(r.id)) {
            this.aheadReported.add(r.id);
            this.event('instance', r.id, 'replica-ahead', `${r.id} has replayed ${-bytes} bytes past its writer's end of WAL: it is on a timeline branch its writer does not have`);
          } else if (bytes >= 0) this.aheadReported.delete(r.id);
        }
      } catch (err) {
        this.log.debug('could not sample replica lag', { cluster: cluster.name, error: (err as Error).message });
      }
    }
  }

  private prober: InstanceProber | null = null;

  /**
   * Once a writer runs: the replication role exists, and every storage node
   * follows it. Its own settings (synchronous_commit = local) keep this from
   * waiting on the very quorum it sets up.
   */
  private readonly writerStarts = new Map<string, Promise<void>>();
  private afterWriterStart(cluster: string, fleet: StorageFleet): Promise<void> {
    const running = this.writerStarts.get(cluster);
    if (running) return running;
    const p = this.pointStorageAtWriter(cluster, fleet).finally(() => this.writerStarts.delete(cluster));
    this.writerStarts.set(cluster, p);
    return p;
  }

  private async pointStorageAtWriter(cluster: string, fleet: StorageFleet): Promise<void> {
    try {
      const { user, password } = fleet.credentials();
      await this.withWriterSession(cluster, async (client) => {
        await client.query('SET synchronous_commit = local');
        const systemId = (await client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id;
        this.store.recordClusterSystemId(cluster, systemId);
        if (!fleet.recordSystemId(systemId)) {
          this.event('cluster', cluster, 'system-mismatch', `the writer runs system ${systemId}, but the cluster is system ${fleet.systemId}; storage nodes will refuse it`);
        }
        const exists = (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user])).rowCount === 1;
        const verb = exists ? 'ALTER' : 'CREATE';
        await client.query(`${verb} ROLE ${client.escapeIdentifier(user)} WITH REPLICATION LOGIN PASSWORD ${client.escapeLiteral(password)}`);
      });
      const accepted = await fleet.follow();
      fleet.wake();
      if (accepted.length < 4) this.log.warn('fewer than four storage nodes follow the writer; commits wait until four do', { following: accepted.length });
    } catch (err) {
      this.log.warn('could not point storage nodes at the writer yet', { cluster, error: (err as Error).message });
    }
  }

  private storageToken(): string {
    const file = path.join(this.paths.home, 'run', 'storage-token');
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      const token = randomBytes(24).toString('base64url');
      fs.writeFileSync(file, token, { mode: 0o600 });
      return token;
    }
  }

  /** One point per second (the last sample of each), oldest first, at most `seconds` back. */
  instanceSeries(id: string, seconds: number): InstanceMetrics[] {
    if (!this.store.listInstances().some((r) => r.id === id)) throw new ControlError('not-found', `instance "${id}" does not exist`);
    const windowS = Number.isFinite(seconds) ? Math.min(600, Math.max(1, Math.floor(seconds))) : 300;
    const since = Date.now() - windowS * 1000;
    const bySecond = new Map<number, InstanceMetrics>();
    for (const m of this.autoscaler?.series(id) ?? []) if (m.at >= since) bySecond.set(Math.floor(m.at / 1000), m);
    return [...bySecond.values()];
  }

  /** GET /v1/clusters/:name/storage */
  storageStatus(cluster: string): { cluster: string; term: number; writeQuorum: number; writeQuorumLost: boolean; rebuilds: number; nodes: StorageNodeView[]; backups: unknown[] } {
    const fleet = this.fleets.get(cluster);
    if (!this.store.getCluster(cluster)) throw new ControlError('not-found', `cluster "${cluster}" does not exist`);
    if (!fleet) return { cluster, term: 0, writeQuorum: 0, writeQuorumLost: false, rebuilds: 0, nodes: [], backups: [] };
    return { cluster, term: fleet.term, writeQuorum: 4, writeQuorumLost: fleet.writeQuorumLost, rebuilds: fleet.rebuilds, nodes: fleet.views(), backups: fleet.knownBackups() };
  }

  private fleetOf(cluster: string): StorageFleet {
    const fleet = this.fleets.get(cluster);
    if (!fleet) throw new ControlError('not-found', this.store.getCluster(cluster) ? `cluster "${cluster}" has no storage nodes (storageNodeCount is 0)` : `cluster "${cluster}" does not exist`);
    return fleet;
  }

  async storageBackup(cluster: string): Promise<{ id: string; bytes: number }> {
    return this.fleetOf(cluster).baseBackup();
  }

  async storageNodeAction(cluster: string, node: string, action: 'stop' | 'start'): Promise<void> {
    const fleet = this.fleetOf(cluster);
    try {
      if (action === 'stop') await fleet.stopNode(node);
      else await fleet.startNode(node);
    } catch (err) {
      throw new ControlError('not-found', (err as Error).message);
    }
    this.event('cluster', cluster, `storage-node-${action}`, `storage node ${node} ${action === 'stop' ? 'stopped' : 'started'} by request`);
  }

  /** Pause (stop, capacity 0) or resume an instance on request, as auto-pause and a first client would. */
  async pauseOrResume(id: string, action: 'pause' | 'resume'): Promise<void> {
    const instance = this.instances.get(id);
    if (!instance) throw new ControlError('not-found', `instance "${id}" does not exist`);
    if (action === 'pause') {
      if (instance.state !== 'available') throw new ControlError('conflict', `instance "${id}" is ${instance.state}, not available`);
      await instance.pause('paused on request');
    } else {
      if (instance.state !== 'paused') throw new ControlError('conflict', `instance "${id}" is ${instance.state}, not paused`);
      await instance.resume('resumed on request');
    }
  }

  /** Replaces an instance's data directory: a writer's rebuilt from storage, a reader's cloned from its writer again. */
  async rebuildInstance(id: string): Promise<void> {
    const instance = this.instances.get(id);
    const record = this.store.listInstances().find((r) => r.id === id);
    if (!instance || !record) throw new ControlError('not-found', `instance "${id}" does not exist`);
    if (record.role === 'reader') return instance.rebuild();
    const fleet = this.fleetOf(record.cluster);
    if (!(await fleet.hasBackups())) throw new ControlError('unavailable', 'no reachable storage node holds a base backup (none taken yet, or the nodes that hold one do not answer)');
    this.rebuildRequested.add(id);
    try {
      await instance.rebuild();
    } finally {
      this.rebuildRequested.delete(id);
    }
  }

  /** Every cluster has a writer and a reader endpoint, and one per instance. */
  private async ensureEndpoints(cluster: string): Promise<void> {
    const have = this.store.listEndpoints(cluster);
    const wanted: Array<{ type: EndpointType; name: string }> = [
      { type: 'writer', name: '' },
      { type: 'reader', name: '' },
      ...this.store.listInstances(cluster).map((i) => ({ type: 'instance' as const, name: i.id })),
    ];
    for (const w of wanted) {
      if (have.some((e) => e.type === w.type && e.name === w.name)) continue;
      const port = await this.allocatePort(this.settings.proxyPort);
      this.store.insertEndpoint({ cluster, ...w, port, customType: null, staticMembers: [], excludedMembers: [] });
    }
  }

  /** A custom endpoint (Aurora's CreateDBClusterEndpoint): a subset of instances on its own port. */
  async createCustomEndpoint(cluster: string, input: { name: string; customType: 'READER' | 'ANY'; staticMembers: readonly string[]; excludedMembers: readonly string[] }): Promise<void> {
    if (!this.store.getCluster(cluster)) throw new ControlError('not-found', `cluster "${cluster}" does not exist`);
    const nameError = validateClusterName(input.name);
    if (nameError) throw new ControlError('invalid', nameError.replace('cluster names', 'endpoint names'));
    if (input.customType !== 'READER' && input.customType !== 'ANY') throw new ControlError('invalid', 'the endpoint type is READER or ANY');
    if (input.staticMembers.length > 0 && input.excludedMembers.length > 0) throw new ControlError('invalid', 'give static members or excluded members, not both');
    const ids = new Set(this.store.listInstances(cluster).map((i) => i.id));
    for (const m of [...input.staticMembers, ...input.excludedMembers]) {
      if (!ids.has(m)) throw new ControlError('invalid', `instance "${m}" is not in cluster "${cluster}"`);
    }
    if (this.store.listEndpoints().some((e) => e.type === 'custom' && e.name === input.name)) throw new ControlError('conflict', `endpoint "${input.name}" already exists`);
    const port = await this.allocatePort(this.settings.proxyPort);
    const record = { cluster, type: 'custom' as const, name: input.name, port, customType: input.customType, staticMembers: input.staticMembers, excludedMembers: input.excludedMembers };
    this.store.insertEndpoint(record);
    await this.proxy.listen({ cluster, type: 'custom', name: input.name, host: this.settings.listenHost, port });
    this.event('cluster', cluster, 'endpoint-created', `custom endpoint ${input.name} (${input.customType}) on port ${port}`);
  }

  deleteCustomEndpoint(cluster: string, name: string): void {
    const e = this.store.listEndpoints(cluster).find((x) => x.type === 'custom' && x.name === name);
    if (!e) throw new ControlError('not-found', `custom endpoint "${name}" does not exist in cluster "${cluster}"`);
    this.proxy.unlisten(e.port);
    this.store.deleteEndpoint(cluster, 'custom', name);
    this.event('cluster', cluster, 'endpoint-deleted', `custom endpoint ${name} deleted`);
  }

  private adminOfCluster(cluster: string): string {
    const record = this.store.getCluster(cluster);
    return record ? adminOf(record) : 'postgres';
  }

  /** Runs administrative SQL as Borealis's superuser on the writer's private socket. */
  private async withWriterSession<T>(cluster: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const writer = this.writerOf(cluster);
    const record = this.store.getCluster(cluster);
    // A paused writer is resumed for the change, as for any client.
    if (!writer || !record || !(await writer.waitAvailable(this.settings.clientWaitForWriterMs))) {
      throw new ControlError('unavailable', `the writer of cluster "${cluster}" is not available`);
    }
    return this.withSession(writer, adminOf(record), fn);
  }

  /** A session on an instance's private socket as the cluster's superuser, for the length of fn. */
  private withSession<T>(instance: LocalInstance, superuser: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    return withInstanceSession(instance, superuser, fn);
  }

  async deleteCluster(name: string): Promise<void> {
    const cluster = this.store.getCluster(name);
    if (!cluster) throw new ControlError('not-found', `cluster "${name}" does not exist`);
    for (const endpoint of this.store.listEndpoints(name)) this.proxy.unlisten(endpoint.port);
    this.proxy.closePools({ cluster: name });
    for (const record of this.store.listInstances(name)) {
      const instance = this.instances.get(record.id);
      this.roles.forget(record.id);
      if (instance) {
        await instance.stop();
        this.instances.delete(record.id);
      }
      fs.rmSync(this.paths.instanceDir(record.id), { recursive: true, force: true });
    }
    const fleet = this.fleets.get(name);
    if (fleet) {
      await fleet.stop();
      this.fleets.delete(name);
      fs.rmSync(path.join(this.paths.home, 'storage', name), { recursive: true, force: true });
    }
    this.store.deleteCluster(name);
    this.accessPolicies.delete(name);
    this.event('cluster', name, 'deleted', 'cluster deleted');
  }

  credentials(cluster: string): ClusterCredentials {
    const secret = this.listSecrets(cluster).find((s) => s.master);
    const value = secret ? this.store.getSecret(secret.arn) : null;
    if (!secret || !value) throw new ControlError('not-found', `no secret holds the master password of cluster "${cluster}"`);
    return { cluster, username: secret.username, password: value.value.password ?? '', secretArn: secret.arn };
  }

  // ProxyDirectory
  accessPolicy(cluster: string): AccessPolicy {
    let policy = this.accessPolicies.get(cluster);
    if (!policy) {
      const access = this.store.getClusterAccess(cluster);
      policy = access ? compileAccessPolicy(access) : OPEN_POLICY;
      this.accessPolicies.set(cluster, policy);
    }
    return policy;
  }

  /** Changes who may connect; applies to the next connection. */
  modifyClusterAccess(name: string, change: { allowedCidrs?: readonly string[]; requireTls?: boolean }): ClusterAccess {
    const current = this.store.getClusterAccess(name);
    if (!current) throw new ControlError('not-found', `cluster "${name}" does not exist`);
    for (const cidr of change.allowedCidrs ?? []) {
      const error = validateCidr(cidr);
      if (error) throw new ControlError('invalid', error);
    }
    const next: ClusterAccess = { allowedCidrs: change.allowedCidrs ?? current.allowedCidrs, requireTls: change.requireTls ?? current.requireTls };
    this.store.setClusterAccess(name, next);
    this.accessPolicies.delete(name);
    const cidrs = next.allowedCidrs.length ? next.allowedCidrs.join(', ') : 'any source';
    this.event('cluster', name, 'modified', `access: ${cidrs}; TLS ${next.requireTls ? 'required' : 'optional'}`);
    return next;
  }

  async login(cluster: string, user: string): Promise<LoginMethod> {
    // Borealis's own superuser never logs in through the proxy, whatever its row says.
    const record = this.cached(`cluster\0${cluster}`, () => this.store.getCluster(cluster));
    if (record?.adminUsername === user) return { method: 'none' };
    return loginMethod(await this.roles.lookup(cluster, user), Date.now());
  }

  lastKnownPassword(cluster: string, user: string): boolean {
    const role = this.store.getRole(cluster, user);
    return role !== null && !role.iam && role.password?.startsWith('SCRAM-SHA-256$') === true;
  }

  accessKeySecret(accessKeyId: string): string | null {
    return this.store.getAccessKeySecret(accessKeyId);
  }

  /** A Borealis access key (AWS-style id and secret) for SigV4: IAM tokens, the Data API. */
  createAccessKey(description: string): { accessKeyId: string; secretAccessKey: string } {
    if (description.length > 256) throw new ControlError('invalid', 'descriptions are at most 256 characters');
    const accessKeyId = 'BKIA' + base32(randomBytes(10));
    const secretAccessKey = randomBytes(30).toString('base64');
    this.store.insertAccessKey(accessKeyId, secretAccessKey, description);
    this.log.info('access key created', { accessKeyId });
    return { accessKeyId, secretAccessKey };
  }

  listAccessKeys(): Array<{ id: string; description: string; createdAt: string }> {
    return this.store.listAccessKeys();
  }

  deleteAccessKey(id: string): void {
    if (!this.store.deleteAccessKey(id)) throw new ControlError('not-found', `access key ${id} does not exist`);
  }

  /**
   * A database user is a role of the cluster: `borealis user` runs CREATE,
   * ALTER and DROP ROLE on its writer. With a password (SCRAM), or for IAM
   * authentication (a member of rds_iam; tokens signed with a Borealis
   * access key; TLS required), as on RDS.
   */
  async createUser(cluster: string, name: string, auth: { password: string } | { iam: true }): Promise<void> {
    if (!this.store.getCluster(cluster)) throw new ControlError('not-found', `cluster "${cluster}" does not exist`);
    const userError = validateUsername(name);
    if (userError) throw new ControlError('invalid', userError);
    await this.identityCall(() => this.roles.createUser(cluster, name, auth));
    this.event('cluster', cluster, 'user-created', `user ${name} created (${'password' in auth ? 'password' : 'IAM'} authentication)`);
  }

  async rotateUserPassword(cluster: string, name: string, password: string): Promise<void> {
    if (!this.store.getCluster(cluster)) throw new ControlError('not-found', `cluster "${cluster}" does not exist`);
    await this.identityCall(() => this.roles.rotatePassword(cluster, name, password));
    this.event('cluster', cluster, 'user-modified', `password of user ${name} changed`);
  }

  async deleteUser(cluster: string, name: string): Promise<void> {
    if (!this.store.getCluster(cluster)) throw new ControlError('not-found', `cluster "${cluster}" does not exist`);
    await this.identityCall(() => this.roles.deleteUser(cluster, name));
    this.event('cluster', cluster, 'user-deleted', `user ${name} deleted`);
  }

  /** The cluster's roles (without PostgreSQL's built-in ones); a paused cluster is not woken for it. */
  async listUsers(cluster: string): Promise<UserView[]> {
    if (!this.store.getCluster(cluster)) throw new ControlError('not-found', `cluster "${cluster}" does not exist`);
    return this.identityCall(() => this.roles.listUsers(cluster));
  }

  private async identityCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof IdentityError) throw new ControlError(err.kind, err.message);
      throw err;
    }
  }

  /** The instance for a new connection on an endpoint (round robin among equals). */
  route(endpoint: EndpointRef): { instanceId: string } | null {
    return this.directory.route(endpoint);
  }

  serverNameOf(endpoint: EndpointRef): string {
    return this.directory.serverNameOf(endpoint);
  }

  endpointByServerName(serverName: string): EndpointRef | null {
    return this.directory.endpointByServerName(serverName);
  }

  async awaitInstance(instanceId: string, timeoutMs: number, asWriter = false): Promise<{ socketPath: string } | 'moved' | null> {
    const instance = this.instances.get(instanceId);
    if (!instance || this.shuttingDown) return null;
    if (!asWriter) return (await instance.waitAvailable(timeoutMs)) ? { socketPath: instance.server.socketPath } : null;
    // A writer endpoint's server: never from an instance mid-failover (the
    // old writer stopping, the target not yet promoted), never from one that
    // is a reader now.
    const cluster = instance.options.record.cluster;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.shuttingDown) return null;
      if (this.writerOf(cluster) !== instance) return 'moved';
      const settled = !this.failingOver.has(cluster) && !this.store.getOperation(cluster);
      if (settled && instance.state === 'available') return { socketPath: instance.server.socketPath };
      const left = deadline - Date.now();
      if (left <= 0) return null;
      if (settled) await instance.waitAvailable(Math.min(left, WRITER_POLL_MS));
      else await new Promise((r) => setTimeout(r, Math.min(left, WRITER_POLL_MS)));
    }
  }

  private writerOf(cluster: string): LocalInstance | null {
    const id = this.directory.writerId(cluster);
    return id === null ? null : (this.instances.get(id) ?? null);
  }

  listEvents(opts: { sinceId?: number; limit: number; sourceId?: string }) {
    return this.store.listEvents(opts);
  }

  status(): StatusDocument {
    const host = this.settings.listenHost;
    const clusters: ClusterStatus[] = this.store.listClusters().map((c) => {
      const instances = this.store.listInstances(c.name).map((r) => {
        const live = this.instances.get(r.id);
        const m: InstanceMetrics | null = this.autoscaler?.latest(r.id) ?? null;
        const acuSeconds = this.store.getAcuSeconds(r.id) + (this.unmetered.get(r.id) ?? 0);
        return {
          id: r.id,
          role: r.role,
          kind: r.kind,
          state: live?.state ?? 'stopped',
          promotionTier: r.promotionTier,
          capacityAcu: live ? live.capacityAcu : 0,
          pid: live?.server.pid ?? null,
          metrics: m && {
            cpuUtilizationPercent: round2(m.cpuUtilizationPercent),
            acuUtilizationPercent: round2(m.acuUtilizationPercent),
            cpuCores: round2(m.cpuCores),
            memoryMiB: Math.round(m.memoryMiB),
            connections: m.connections,
            queuedClients: m.queuedClients,
          },
          replicaLag: r.role === 'reader' ? (this.replicaLag.get(r.id) ?? null) : null,
          acuSeconds: round2(acuSeconds),
          estimatedCost: Math.round((acuSeconds / 3600) * this.settings.pricePerAcuHour * 1e6) / 1e6,
        };
      });
      const writer = instances.find((i) => i.role === 'writer');
      return {
        name: c.name,
        engineVersion: c.engineVersion,
        masterUsername: c.masterUsername,
        systemId: c.systemId,
        status: writer ? writer.state : 'no-writer',
        instances,
        endpoints: this.store.listEndpoints(c.name).map((e) => ({
          type: e.type,
          name: e.name,
          host,
          port: e.port,
          serverName: endpointServerName(e, this.settings.endpointDomain),
          url: `postgres://${encodeURIComponent(c.masterUsername)}@${host}:${e.port}/postgres`,
          ...(e.type === 'custom' ? { customType: e.customType ?? 'ANY', staticMembers: e.staticMembers, excludedMembers: e.excludedMembers } : {}),
        })),
        access: this.store.getClusterAccess(c.name) ?? { allowedCidrs: [], requireTls: false },
        dataApi: { enabled: this.store.httpEndpointEnabled(c.name), resourceArn: `arn:aws:rds:local:000000000000:cluster:${c.name}` },
        scaling: (({ minAcu, maxAcu, secondsUntilAutoPause }) => ({ minCapacity: minAcu, maxCapacity: maxAcu, secondsUntilAutoPause }))(this.scaling(c.name)),
        storage: (({ term, writeQuorum, writeQuorumLost, rebuilds, nodes, backups }) => ({ term, writeQuorum, writeQuorumLost, rebuilds, nodes, backups: backups.length }))(this.storageStatus(c.name)),
      };
    });
    return {
      version: 1,
      home: this.paths.home,
      supervisor: { pid: process.pid, startedAt: this.startedAt },
      services: { api: { url: this.apiUrl }, dataApi: { url: this.dataApiUrl } },
      engine: { version: this.binaries.version, binDir: this.binaries.binDir },
      proxy: this.proxy.stats(),
      capacity: {
        acu: { memoryMiB: this.settings.acuMemoryMiB, cpuCores: this.settings.acuCpuCores },
        enforcement: this.cgroups.kind === 'none' ? `degraded: ${this.cgroups.reason}` : `cgroup ${this.cgroups.kind}`,
        pricePerAcuHour: this.settings.pricePerAcuHour,
      },
      clusters,
    };
  }

  /** Per-instance, per-second figures with CloudWatch's names, for /metrics (observability.ts). */
  metrics(): MetricFamily[] {
    return metricFamilies(this.status(), {
      failovers: (cluster) => this.failovers.get(cluster) ?? 0,
      commitLatency: (id) => this.proxy.instanceCommitLatency(id),
      resumes: (id) => {
        const i = this.instances.get(id);
        return { count: i?.resumeCount ?? 0, lastMs: i?.lastResume?.totalMs ?? null };
      },
    });
  }

  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.log.info('shutting down');
    this.autoscaler?.stop();
    if (this.replicaLagTimer) clearInterval(this.replicaLagTimer);
    this.prober?.stop();
    await this.dataApi?.close();
    if (this.meterFlushTimer) clearInterval(this.meterFlushTimer);
    this.proxy?.close();
    await this.roles?.close();
    await Promise.all([...this.instances.values()].map((i) => i.stop()));
    await Promise.all([...this.fleets.values()].map((f) => f.stop()));
    if (this.store) this.flushMeter();
    this.store?.close();
    fs.rmSync(this.paths.supervisorFile, { force: true });
  }

  private event(sourceType: 'cluster' | 'instance', sourceId: string, kind: string, message: string): void {
    const e = this.store.addEvent({ sourceType, sourceId, kind, message });
    this.log.info(message, { event: e.id, sourceType, sourceId, kind });
  }

  /**
   * The first port at or above `from` that no endpoint, instance or the API
   * has (bound yet or not) and that nothing else has bound.
   */
  private async allocatePort(from: number, alsoTaken: ReadonlySet<number> = new Set()): Promise<number> {
    const taken = new Set([...this.store.listEndpoints().map((e) => e.port), ...this.store.usedEnginePorts(), ...this.store.usedStoragePorts(), this.settings.apiPort, this.settings.dataApiPort, ...alsoTaken]);
    for (let port = from; port <= 65535; port++) {
      if (taken.has(port)) continue;
      if (await portIsFree(this.settings.listenHost, port)) return port;
    }
    throw new ControlError('unavailable', `no free port at or above ${from}`);
  }
}

/** RFC 4648 base32 without padding: access key ids look like AWS's (upper case, digits). */
function base32(bytes: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
