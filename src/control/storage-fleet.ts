// The control plane's side of one cluster's storage: runs its six storage
// node processes (two per zone), tells them which writer to follow in which
// term, takes base backups and spreads them over the nodes, and rebuilds a
// writer's data directory from storage alone.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Settings } from '../config/settings.js';
import { renderPostgresqlConf, type PgValue } from '../engine/pg-settings.js';
import { RECOVERY_CONF } from '../engine/postgres-server.js';
import { chownTree, type ProcessIdentity } from '../engine/service-user.js';
import { WAL_SEGMENT_BYTES, formatLsn, historyFileName, parseLsn, parseTimelineHistory, segmentOf, segmentStart, timelineOfSegment } from '../pgwire/replication.js';
import { lastRecordEnd, type WalBytes } from '../pgwire/wal-records.js';
import type { BackupInfo } from '../storage/backup-store.js';
import { STORAGE_NODE_V8_FLAGS } from '../storage/main.js';
import { StorageNodeClient, type NodeStatus } from '../storage/node-client.js';
import { READ_QUORUM, WRITE_QUORUM, durablePosition, recoveryPoint, type NodeReport, type RecoveryPoint, type WriterRef } from '../storage/protocol.js';
import { baseBackupToFile, unpackBaseBackup } from '../storage/base-backup-file.js';
import { QUORUM_START, nextQuorumState, type QuorumState } from './quorum-watch.js';
import { rebuildSource, regressedNodes, type NodeSystemReport } from './rebuild-steps.js';
import { ReplicationClient } from '../storage/replication-client.js';
import type { Logger } from '../util/logger.js';
import { crashPoint } from './crash-points.js';
import { stagingFor, writeFileNoFollow } from '../util/no-follow.js';
import type { StorageNodeRecord, Store } from './store.js';
import { LOOPBACK, NODE_ZONES, STORAGE_ZONES, parseZoneHosts, urlHost } from '../storage/placement.js';

export const REPLICATION_USER = 'borealis_storage';
const BIN = fileURLToPath(new URL('../../bin/borealis.js', import.meta.url));
const NODE_RESTART_MS = 1000;

export interface StorageNodeView extends Partial<NodeStatus> {
  readonly name: string;
  readonly zone: string;
  readonly port: number;
  /** Where the node's HTTP API is reached. */
  readonly url: string;
  readonly pid: number | null;
  readonly process: 'running' | 'stopped' | 'restarting';
  readonly reachable: boolean;
}

interface NodeProcess extends StorageNodeRecord {
  readonly client: StorageNodeClient;
  child: ChildProcess | null;
  /** Stopped on purpose (operator or shutdown): not restarted. */
  held: boolean;
  restartTimer: NodeJS.Timeout | null;
  last: NodeStatus | null;
}

export interface FleetDeps {
  readonly cluster: string;
  readonly store: Store;
  readonly settings: Settings;
  readonly dir: string;
  readonly token: string;
  readonly writer: () => { host: string; port: number };
  readonly identity: ProcessIdentity | null;
  readonly log: Logger;
  readonly event: (kind: string, message: string) => void;
  /** The writer runs and is not being failed over: only then can nodes stream from it. */
  readonly writerRunning: () => boolean;
}

export class StorageError extends Error {
  override readonly name = 'StorageError';
}

/** Storage cannot rebuild the writer yet (too few nodes hold the system's WAL); try again later, never initdb. */
export class StorageWait extends StorageError {}

/** No node served a copy of a base backup that matches its SHA-256 (every copy damaged, or unreachable). */
class UnverifiedBackup extends StorageError {}

/** A file's SHA-256, read in chunks (a base backup can be larger than memory). */
async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A read quorum's recovery point, with the timeline histories the nodes hold. */
export interface DurablePoint extends RecoveryPoint {
  readonly histories: ReadonlyMap<number, string>;
}

function nodeReport(s: NodeStatus): NodeReport {
  return { node: s.name, term: s.term, timeline: s.timeline, flushLsn: s.flushLsn ? parseLsn(s.flushLsn) : 0n };
}

/** Reads WAL from the segment files just written (one segment held in memory at a time). */
function walBytesOf(files: ReadonlyMap<number, string>): WalBytes {
  let cached: { segment: number; bytes: Buffer } | null = null;
  return (lsn, n) => {
    const segment = segmentOf(lsn);
    const file = files.get(segment);
    if (!file) return null;
    if (cached?.segment !== segment) cached = { segment, bytes: fs.readFileSync(file) };
    const at = Number(lsn - segmentStart(segment));
    return at + n <= cached.bytes.length ? cached.bytes.subarray(at, at + n) : null;
  };
}

/**
 * How a rebuilt writer recovers: along the quorum's timeline, from the WAL
 * put in pg_wal only, and (when the WAL could be walked) to the last whole
 * record storage holds, or not at all.
 */
function recoverySettings(timeline: number, targetLsn: bigint | null): Record<string, PgValue> {
  const target: Record<string, PgValue> = targetLsn !== null ? { recovery_target_lsn: formatLsn(targetLsn), recovery_target_inclusive: 'on', recovery_target_action: 'promote' } : {};
  return { restore_command: '/bin/false', recovery_target_timeline: String(timeline), ...target };
}

function systemReport(s: NodeStatus): NodeSystemReport {
  return { name: s.name, systemId: s.systemId, flushLsn: s.flushLsn ? parseLsn(s.flushLsn) : null };
}

export class StorageFleet {
  private readonly nodes: NodeProcess[] = [];
  private healthTimer: NodeJS.Timeout | null = null;
  private backingUp: Promise<BackupInfo> | null = null;
  private stopping = false;

  constructor(private readonly deps: FleetDeps) {}

  /**
   * Records the nodes (zones, where each listens), the address they reach
   * the writer at and the replication password, the first time.
   */
  static async create(store: Store, settings: Settings, cluster: string, allocatePort: (taken: Set<number>) => Promise<number>): Promise<void> {
    if (store.getStorage(cluster)) return;
    const placement = parseZoneHosts(settings.storageZoneHosts, STORAGE_ZONES);
    const taken = new Set<number>();
    const nodes: StorageNodeRecord[] = [];
    for (const [i, zone] of NODE_ZONES.entries()) {
      const port = await allocatePort(taken);
      taken.add(port);
      const at = placement.get(zone);
      nodes.push({ name: `sn${i + 1}`, zone, port, host: at?.address ?? LOOPBACK, netns: at?.netns ?? null });
    }
    store.insertStorage(cluster, randomBytes(24).toString('base64url'), settings.storageWriterHost, nodes);
  }

  /**
   * Addresses other than loopback that storage nodes connect to the writer
   * from (pg_hba.conf admits them for replication). A node left on loopback
   * that dials a writer host of this machine connects from that address.
   */
  static replicationSources(store: Store, cluster: string): string[] {
    const hosts = new Set(store.listStorageNodes(cluster).map((n) => n.host));
    const writerHost = store.getStorage(cluster)?.writerHost ?? LOOPBACK;
    if (hosts.has(LOOPBACK)) hosts.add(writerHost);
    return [...hosts].filter((h) => h !== LOOPBACK);
  }

  get term(): number {
    return this.deps.store.getStorage(this.deps.cluster)!.term;
  }

  /** The cluster's PostgreSQL system identifier, once its writer has run. */
  get systemId(): string | null {
    return this.deps.store.getStorage(this.deps.cluster)!.systemId;
  }

  /** Records the writer's system identifier the first time; false if the cluster already has another. */
  recordSystemId(systemId: string): boolean {
    return this.deps.store.recordSystemId(this.deps.cluster, systemId);
  }

  /**
   * Reports that may count toward a read quorum: nodes that hold WAL of the
   * cluster's system. A wiped node (no WAL, or no system yet) or a node of
   * another system knows nothing of the acknowledged commits, and counting
   * it could let a quorum miss them.
   */
  private quorumReports(statuses: readonly NodeStatus[]): NodeReport[] {
    const system = this.systemId ?? statuses.find((s) => s.systemId !== null)?.systemId ?? null;
    const regressed = this.regressed(statuses);
    return statuses.filter((s) => s.flushLsn !== null && parseLsn(s.flushLsn) > 0n && s.systemId !== null && s.systemId === system && !regressed.has(s.name)).map(nodeReport);
  }

  /** Per node and timeline, the highest flush seen (persisted: a supervisor restart keeps them). */
  private marks: Map<string, Map<number, bigint>> | null = null;

  private flushMarks(): Map<string, Map<number, bigint>> {
    this.marks ??= this.deps.store.storageMarks(this.deps.cluster);
    return this.marks;
  }

  /** Nodes that hold less WAL than they once reported (rebuild-steps.ts decides), with why. */
  private regressed(statuses: readonly NodeStatus[]): Map<string, string> {
    return regressedNodes(statuses.map((s) => ({ name: s.name, timeline: s.timeline, flushLsn: s.flushLsn ? parseLsn(s.flushLsn) : null })), this.flushMarks());
  }

  /** Raises the marks to what the nodes of the cluster's system report now. */
  private recordMarks(statuses: readonly NodeStatus[]): void {
    const marks = this.flushMarks();
    const system = this.systemId;
    const raised: Array<{ name: string; timeline: number; flushLsn: bigint }> = [];
    for (const s of statuses) {
      if (!s.flushLsn || s.systemId === null || (system !== null && s.systemId !== system)) continue;
      const flushLsn = parseLsn(s.flushLsn);
      const mine = marks.get(s.name) ?? new Map<number, bigint>();
      if (flushLsn <= (mine.get(s.timeline) ?? 0n)) continue;
      mine.set(s.timeline, flushLsn);
      marks.set(s.name, mine);
      raised.push({ name: s.name, timeline: s.timeline, flushLsn });
    }
    if (raised.length > 0) this.deps.store.raiseStorageMarks(this.deps.cluster, raised);
  }

  credentials(): { user: string; password: string } {
    return { user: REPLICATION_USER, password: this.deps.store.getStorage(this.deps.cluster)!.replicationPassword };
  }

  /** Settings the writer runs with: the ANY 4 quorum and its term (a rebuilt one's recovery settings are in its data directory). */
  writerSettings(): Record<string, PgValue> {
    const names = this.deps.store.listStorageNodes(this.deps.cluster).map((n) => n.name);
    return { synchronous_standby_names: `ANY ${WRITE_QUORUM} (${names.join(', ')})`, 'borealis.term': String(this.term), max_slot_wal_keep_size: 1024, wal_keep_size: 256 };
  }

  async start(): Promise<void> {
    for (const r of this.deps.store.listStorageNodes(this.deps.cluster)) {
      this.nodes.push({ ...r, client: new StorageNodeClient(`http://${urlHost(r.host)}:${r.port}`, this.deps.token, this.deps.settings.storageRequestTimeoutMs), child: null, held: false, restartTimer: null, last: null });
    }
    for (const n of this.nodes) this.spawnNode(n);
    await Promise.all(this.nodes.map((n) => this.waitReachable(n, 30_000)));
    this.healthTimer = setInterval(() => void this.health(), this.deps.settings.storageHealthIntervalMs);
    this.healthTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    await Promise.all(this.nodes.map((n) => this.stopNode(n.name)));
  }

  private nodeDir(name: string): string {
    return path.join(this.deps.dir, name);
  }

  private spawnNode(n: NodeProcess): void {
    fs.mkdirSync(this.nodeDir(n.name), { recursive: true, mode: 0o700 });
    const logFd = fs.openSync(path.join(this.deps.dir, `${n.name}.log`), 'a', 0o600);
    const args = [...STORAGE_NODE_V8_FLAGS, BIN, 'storage-node', '--name', n.name, '--zone', n.zone, '--dir', this.nodeDir(n.name), '--host', n.host, '--port', String(n.port)];
    // A node placed in a network namespace: `ip netns exec` enters it and
    // execs node, so the child's pid is the node's own.
    const [command, argv] = n.netns ? ['ip', ['netns', 'exec', n.netns, process.execPath, ...args]] : [process.execPath, args];
    // stdin is a pipe the node watches: it stops when this process dies, however.
    const child = spawn(command, argv, { stdio: ['pipe', logFd, logFd], env: { ...process.env, BOREALIS_STORAGE_PARENT_PIPE: '1', BOREALIS_STORAGE_TOKEN: this.deps.token, BOREALIS_STORAGE_BACKUP_BYTES_MAX: String(this.deps.settings.storageBackupBytesMax), BOREALIS_STORAGE_REQUEST_TIMEOUT_MS: String(this.deps.settings.storageRequestTimeoutMs) } });
    fs.closeSync(logFd);
    n.child = child;
    n.held = false;
    child.once('exit', (code, signal) => {
      if (n.child !== child) return;
      n.child = null;
      n.last = null;
      if (this.stopping || n.held) return;
      const said = signal ? '' : lastLine(path.join(this.deps.dir, `${n.name}.log`));
      this.deps.event('storage-node-down', `storage node ${n.name} (zone ${n.zone}) exited (${signal ?? `code ${code}`})${said ? `, its log ending "${said}"` : ''}; restarting`);
      n.restartTimer = setTimeout(() => {
        n.restartTimer = null;
        if (!this.stopping && !n.held && !n.child) this.spawnNode(n);
      }, NODE_RESTART_MS);
    });
  }

  /** Stops one node and keeps it down (an operator action, or a test's outage). */
  async stopNode(name: string): Promise<void> {
    const n = this.node(name);
    n.held = true;
    if (n.restartTimer) clearTimeout(n.restartTimer);
    const child = n.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  async startNode(name: string): Promise<void> {
    const n = this.node(name);
    if (n.child) return;
    this.spawnNode(n);
    await this.waitReachable(n, 30_000);
    await this.followOne(n).catch(() => undefined);
  }

  private node(name: string): NodeProcess {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new StorageError(`no storage node ${name} in cluster ${this.deps.cluster}`);
    return n;
  }

  private async waitReachable(n: NodeProcess, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        n.last = await n.client.status();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new StorageError(`storage node ${n.name} did not start: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Set by fence(): the reader about to be promoted, which the new term names before it is the writer of record. */
  private fencedFor: WriterRef | null = null;

  private followBody(): Parameters<StorageNodeClient['follow']>[0] {
    const backups = this.knownBackups();
    return {
      term: this.term,
      writer: this.fencedFor ?? this.deps.writer(),
      credentials: this.credentials(),
      peers: this.nodes.map((n) => ({ name: n.name, url: n.client.url })),
      retainFromLsn: backups[0]?.startLsn ?? null,
    };
  }

  private async followOne(n: NodeProcess): Promise<NodeStatus> {
    n.last = await n.client.follow(this.followBody());
    return n.last;
  }

  /** Sends the current term and writer to every node; resolves with those that accepted. */
  async follow(): Promise<NodeStatus[]> {
    const results = await Promise.allSettled(this.nodes.map((n) => this.followOne(n)));
    return results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  /** After a resume: nodes reconnect now instead of at their next retry. */
  wake(): void {
    for (const n of this.nodes) void n.client.wake().catch(() => undefined);
  }

  /** The health loop: refresh statuses, re-send the term to nodes that lost or lack it, back up when due. */
  private async health(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (n) => {
        if (!n.child) return;
        try {
          n.last = await n.client.status();
          if (n.last.term < this.term) await this.followOne(n);
        } catch {
          n.last = null;
        }
      }),
    );
    try {
      this.recordMarks(this.nodes.flatMap((n) => (n.last ? [n.last] : [])));
      this.watchQuorum();
    } catch (err) {
      // The loop runs unattended (a rejection here would end the supervisor): the next round tries again.
      this.deps.log.warn('storage health bookkeeping failed', { error: (err as Error).message });
    }
    if (this.backupDue()) void this.baseBackup().catch((err: Error) => this.deps.log.warn('base backup failed', { error: err.message }));
  }

  private quorum: QuorumState = QUORUM_START;

  /** True while fewer than WRITE_QUORUM nodes stream from the running writer: its commits wait. */
  get writeQuorumLost(): boolean {
    return this.quorum.lost;
  }

  /** Records the loss of the write quorum, and its return, as events (quorum-watch.ts decides). */
  private watchQuorum(): void {
    const term = this.term;
    const streaming = this.nodes.filter((n) => n.last?.state === 'streaming' && n.last.term === term).length;
    const { state, event } = nextQuorumState(this.quorum, { streaming, writerRunning: this.deps.writerRunning(), atMs: Date.now() }, this.deps.settings.storageWriteQuorumGraceMs);
    this.quorum = state;
    if (event === 'write-quorum-lost') {
      this.deps.event(event, `write quorum lost: only ${streaming} of ${this.nodes.length} storage nodes stream from the writer in term ${term}; ${WRITE_QUORUM} are needed, so commits wait`);
    } else if (event === 'write-quorum-restored') {
      this.deps.event(event, `write quorum restored: ${streaming} of ${this.nodes.length} storage nodes stream from the writer in term ${term}`);
    }
  }

  views(): StorageNodeView[] {
    return this.nodes.map((n) => ({
      ...(n.last ?? {}),
      name: n.name,
      zone: n.zone,
      port: n.port,
      url: n.client.url,
      pid: n.child?.pid ?? null,
      process: n.child ? 'running' : n.held ? 'stopped' : 'restarting',
      reachable: n.last !== null,
    }));
  }

  /** Newest-last backups that at least WRITE_QUORUM nodes hold, from the last statuses. */
  private knownBackupsCache: BackupInfo[] = [];
  knownBackups(): BackupInfo[] {
    return this.knownBackupsCache;
  }

  private async refreshBackups(): Promise<BackupInfo[]> {
    const lists = await Promise.allSettled(this.nodes.map((n) => n.client.backups()));
    const count = new Map<string, { info: BackupInfo; holders: number }>();
    for (const l of lists) {
      if (l.status !== 'fulfilled') continue;
      for (const b of l.value) count.set(b.id, { info: b, holders: (count.get(b.id)?.holders ?? 0) + 1 });
    }
    this.knownBackupsCache = [...count.values()]
      .filter((c) => c.holders >= WRITE_QUORUM)
      .map((c) => c.info)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    return this.knownBackupsCache;
  }

  private lastBackupCheck = 0;
  private rebuiltSinceBackup = false;
  private backupDue(): boolean {
    if (this.backingUp || Date.now() - this.lastBackupCheck < 10_000) return false;
    if (this.lastBackupCheck === 0) {
      // First look after a start: learn what the nodes hold before deciding.
      this.lastBackupCheck = Date.now();
      void this.refreshBackups().catch(() => undefined);
      return false;
    }
    this.lastBackupCheck = Date.now();
    const newest = this.knownBackupsCache[this.knownBackupsCache.length - 1];
    // After a rebuild the WAL runs on a new timeline: it gets a backup of its own (older ones stay usable).
    if (!newest || this.rebuiltSinceBackup) return true;
    const flushes = this.nodes.flatMap((n) => (n.last?.flushLsn ? [parseLsn(n.last.flushLsn)] : []));
    const durable = durablePosition(flushes);
    const walSince = durable - parseLsn(newest.endLsn);
    const ageMs = Date.now() - Date.parse(newest.createdAt);
    return walSince >= BigInt(this.deps.settings.storageBackupWalBytes) || (ageMs >= this.deps.settings.storageBackupIntervalMs && walSince > 0n);
  }

  /**
   * Takes a base backup of the writer over the replication protocol, waits
   * until a write quorum holds the WAL that makes it consistent, and stores
   * it on every node that takes it (at least WRITE_QUORUM, verified).
   */
  baseBackup(): Promise<BackupInfo> {
    this.backingUp ??= this.baseBackupOnce().finally(() => (this.backingUp = null));
    return this.backingUp;
  }

  private async baseBackupOnce(): Promise<BackupInfo> {
    const log = this.deps.log;
    const id = `b-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const file = path.join(this.deps.dir, `${id}.tar`);
    const writer = this.deps.writer();
    const client = await ReplicationClient.connect({ ...writer, ...this.credentials(), applicationName: 'borealis-backup' }, this.deps.settings.storageRequestTimeoutMs);
    const hash = createHash('sha256');
    try {
      const [ident] = await client.query('IDENTIFY_SYSTEM');
      const systemId = ident?.rows[0]?.[0] ?? '';
      log.info('taking a base backup', { backup: id });
      const result = await baseBackupToFile(client, id, file, (chunk) => hash.update(chunk));
      const bytes = result.bytes;
      const info: BackupInfo = { id, systemId, timeline: result.timeline, startLsn: formatLsn(result.startLsn), endLsn: formatLsn(result.endLsn), sha256: hash.digest('hex'), bytes, createdAt: new Date().toISOString() };
      await this.waitDurable(result.endLsn, 60_000);
      const stored = await Promise.allSettled(this.nodes.map((n) => n.client.putBackup(info, file)));
      const ok = stored.filter((s) => s.status === 'fulfilled').length;
      if (ok < WRITE_QUORUM) throw new StorageError(`base backup stored on ${ok} nodes, ${WRITE_QUORUM} are needed`);
      this.deps.event('backup', `base backup ${id} (${bytes} bytes, from ${info.startLsn}) stored on ${ok} storage nodes`);
      this.rebuiltSinceBackup = false;
      await this.prune(await this.refreshBackups());
      return info;
    } finally {
      fs.rmSync(file, { force: true });
      client.close();
    }
  }

  private async prune(backups: BackupInfo[]): Promise<void> {
    const drop = backups.slice(0, Math.max(0, backups.length - this.deps.settings.storageBackupsKept));
    for (const b of drop) {
      await Promise.allSettled(this.nodes.map((n) => n.client.deleteBackup(b.id)));
    }
    if (drop.length > 0) {
      await this.refreshBackups();
      // The same term and writer again, with the new retention start: nodes drop older WAL.
      await this.follow();
    }
  }

  private async waitDurable(lsn: bigint, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const flushes = (await this.reachableStatuses()).flatMap((s) => (s.flushLsn ? [parseLsn(s.flushLsn)] : []));
      if (durablePosition(flushes) >= lsn) return;
      if (Date.now() > deadline) throw new StorageError(`fewer than ${WRITE_QUORUM} storage nodes reached ${formatLsn(lsn)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Fences storage before a failover promotes anything: a term above every
   * term any node has seen goes to every reachable node, naming `writer`
   * (the reader about to take over). Each node that accepts has dropped the
   * old writer's stream, so the old writer can never again gather four
   * acknowledgements, whatever it does next. Nodes that accept try the new
   * writer and refuse it until it runs with the new term (after promotion).
   * Resolves with the statuses of the nodes that answered.
   */
  async fence(writer: WriterRef): Promise<{ term: number; statuses: NodeStatus[] }> {
    const term = await this.nextTerm();
    this.fencedFor = writer;
    return { term, statuses: await this.follow() };
  }

  /** The fenced-for reader is now the writer of record (or the failover gave up): nodes follow the writer of record again. */
  endFence(): void {
    this.fencedFor = null;
  }

  /**
   * A failover that fenced storage and then failed: the old writer comes
   * back in a newer term of its own, since the fenced term names the reader.
   */
  async raiseTerm(): Promise<number> {
    this.fencedFor = null;
    const term = await this.nextTerm();
    return term;
  }

  /** Records a term above every term any reachable node reports, so that every reachable node accepts it. */
  private async nextTerm(): Promise<number> {
    const seen = await this.reachableStatuses();
    const term = Math.max(this.term, ...seen.map((s) => s.term)) + 1;
    this.deps.store.raiseStorageTerm(this.deps.cluster, term);
    return term;
  }

  private async reachableStatuses(): Promise<NodeStatus[]> {
    const seen = await Promise.allSettled(this.nodes.map((n) => n.client.status()));
    return seen.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  /**
   * The highest position a read quorum of nodes holds on the current term:
   * every commit the writer acknowledged lies at or before it. With the
   * writer stopped, nothing moves it. The timeline histories the nodes hold
   * come with it, for copyWalTo.
   */
  async durablePoint(): Promise<DurablePoint> {
    const reports = this.quorumReports(await this.reachableStatuses());
    const histories = await this.gatherHistories();
    const point = recoveryPoint(reports, this.term, this.historyLookup(histories));
    if (!point.ok) throw new StorageError(point.reason);
    return { ...point.value, histories };
  }

  /**
   * Puts the WAL from `from` up to `point` into a standby's pg_wal (the
   * segments it already has are rewritten with the same bytes and more),
   * with every timeline history, so that it can follow the timeline the WAL
   * is on.
   */
  async copyWalTo(walDir: string, point: DurablePoint, from: bigint): Promise<WalBytes> {
    const files = await this.copyWal(point.source, point.timeline, point.histories, point.lsn, from, walDir);
    for (const [t, text] of point.histories) writeFileNoFollow(path.join(walDir, historyFileName(t)), text, 0o600);
    chownTree(this.deps.identity, walDir);
    return walBytesOf(files);
  }

  /**
   * Every base backup some reachable node holds (oldest first). A rebuild
   * may use one that fewer than WRITE_QUORUM nodes hold: its copy is
   * verified against its SHA-256 before it is used, and it was stored only
   * after the WAL that makes it consistent was durable.
   */
  private async reachableBackups(): Promise<BackupInfo[]> {
    const lists = await Promise.allSettled(this.nodes.map((n) => n.client.backups()));
    const byId = new Map<string, BackupInfo>();
    for (const l of lists) if (l.status === 'fulfilled') for (const b of l.value) byId.set(b.id, b);
    return [...byId.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** True when storage holds something to rebuild from: a base backup on any reachable node (restore verifies its copy, as it does for every rebuild). */
  async hasBackups(): Promise<boolean> {
    return (await this.reachableBackups()).length > 0;
  }

  /**
   * Builds a writer's data directory from storage: raises the term on the
   * nodes (fencing any old writer), finds the highest durable position on a
   * read quorum, restores the newest base backup before it and puts the WAL
   * up to that position into pg_wal. PostgreSQL then recovers to the end of
   * that WAL and starts a new timeline.
   */
  async restore(dataDir: string): Promise<boolean> {
    const log = this.deps.log;
    const held = await this.reachableBackups();
    const statuses = await this.reachableStatuses();
    const regressed = this.regressed(statuses);
    const decision = rebuildSource(this.systemId, statuses.filter((s) => !regressed.has(s.name)).map(systemReport), held.map((b) => b.systemId));
    // Resolving false means initdb: only for a cluster that never had a system.
    if (decision.kind === 'initdb') return false;
    if (decision.kind === 'wait') {
      const reason = decision.reason + [...regressed].map(([n, why]) => `; ${n} regressed: ${why}`).join('');
      // Once per new reason: the writer retries this every few seconds.
      if (reason !== this.lastWait) this.deps.event('waiting-for-storage', `the writer waits for storage: ${reason}`);
      this.lastWait = reason;
      throw new StorageWait(reason);
    }
    this.lastWait = null;
    const backups = held.filter((b) => b.systemId === decision.systemId);
    const term = await this.nextTerm();
    const accepted = await this.follow();
    crashPoint('rebuild:fenced');
    const reports = this.quorumReports(accepted);
    const histories = await this.gatherHistories();
    const point = recoveryPoint(reports, term, this.historyLookup(histories));
    if (!point.ok) throw new StorageWait(point.reason);
    const { source, timeline, lsn } = point.value;
    // Newest first; an older one (its WAL is kept from its start) when no node holds a copy of a newer one that verifies.
    const usable = [...backups].reverse().filter((b) => parseLsn(b.endLsn) <= lsn && b.timeline <= timeline);
    if (usable.length === 0) throw new StorageError(`no base backup ends before ${formatLsn(lsn)}`);
    // Built aside and renamed into place only when whole: a copy that fails,
    // or a supervisor killed mid-way, leaves no data directory that
    // PostgreSQL would open read-write with part of the data.
    const staging = stagingFor(dataDir, 'restore');
    let targetLsn: bigint | null = null;
    try {
      // Where an older Borealis built it (inside the instance directory).
      fs.rmSync(`${dataDir}.restore`, { recursive: true, force: true });
      let backup: BackupInfo | null = null;
      for (const candidate of usable) {
        fs.rmSync(staging, { recursive: true, force: true });
        log.info('rebuilding the writer from storage', { term, source, timeline, to: formatLsn(lsn), backup: candidate.id, fenced: accepted.length });
        this.deps.event('rebuild', `rebuilding from base backup ${candidate.id} and WAL to ${formatLsn(lsn)} on timeline ${timeline} (term ${term}, ${accepted.length} of ${this.nodes.length} nodes fenced, read quorum ${READ_QUORUM})`);
        try {
          // From the nodes that just answered first: one that is stopped or paused would hold each try to its timeout.
          await this.extractBackup(candidate, staging, new Set(accepted.map((a) => a.name)));
          backup = candidate;
          break;
        } catch (err) {
          if (!(err instanceof UnverifiedBackup)) throw err;
          this.deps.event('backup-unusable', `${err.message}; ${candidate === usable[usable.length - 1] ? 'no older base backup is kept' : 'trying an older base backup'}`);
        }
      }
      if (!backup) throw new StorageError(`no storage node served a verified copy of any base backup that ends before ${formatLsn(lsn)}`);
      const wal = await this.copyWal(source, timeline, histories, lsn, parseLsn(backup.startLsn), path.join(staging, 'pg_wal'));
      targetLsn = this.recoveryTarget(wal, backup, lsn);
      // Every history any node knows: PostgreSQL then never reuses a timeline number.
      for (const [t, text] of histories) writeFileNoFollow(path.join(staging, 'pg_wal', historyFileName(t)), text, 0o600);
      writeFileNoFollow(path.join(staging, 'recovery.signal'), '', 0o600);
      writeFileNoFollow(path.join(staging, RECOVERY_CONF), renderPostgresqlConf(recoverySettings(timeline, targetLsn)), 0o600);
      chownTree(this.deps.identity, staging);
      crashPoint('rebuild:staged');
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.renameSync(staging, dataDir);
    } finally {
      fs.rmSync(staging, { recursive: true, force: true });
    }
    this.rebuilds++;
    // A new timeline starts: its first base backup is taken once it runs.
    this.lastBackupCheck = 1;
    this.rebuiltSinceBackup = true;
    return true;
  }

  private historyLookup(histories: ReadonlyMap<number, string>): (timeline: number) => Map<number, bigint> {
    return (t) => {
      const text = histories.get(t);
      if (t === 1) return new Map();
      if (text === undefined) throw new StorageError(`no storage node holds the history of timeline ${t}`);
      return new Map(parseTimelineHistory(text).map((h) => [h.timeline, h.switchLsn]));
    };
  }

  /** The text of every timeline history file any reachable node holds. */
  private async gatherHistories(): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    for (const n of this.nodes) {
      let held: number[];
      try {
        held = (await n.client.listWal()).histories;
      } catch {
        continue;
      }
      for (const t of held) if (!out.has(t)) out.set(t, await n.client.history(t));
    }
    return out;
  }

  private lastWait: string | null = null;

  /** Writer rebuilds from storage since the supervisor started. */
  rebuilds = 0;

  /**
   * The start of the last whole record in the WAL copied for a rebuild: the
   * rebuilt writer's recovery must reach it (recovery_target_lsn) or
   * PostgreSQL refuses to open, so a copy that replays short is never
   * served. Walked from the backup's start; null (no target, recovery runs
   * to the end of WAL as before) when the walk cannot vouch for the records.
   */
  private recoveryTarget(wal: ReadonlyMap<number, string>, backup: BackupInfo, lsn: bigint): bigint | null {
    const walk = lastRecordEnd(walBytesOf(wal), parseLsn(backup.startLsn), lsn);
    if (walk.stop === 'invalid' || walk.lastStart === null || walk.end < parseLsn(backup.endLsn)) {
      this.deps.log.warn('the rebuild\'s WAL could not be walked to its last record; recovery runs to its end unverified', { from: backup.startLsn, to: formatLsn(lsn), reachedLsn: formatLsn(walk.end), records: walk.records });
      return null;
    }
    this.deps.log.info('the rebuilt writer must replay to the last whole record storage holds', { recordLsn: formatLsn(walk.lastStart), endLsn: formatLsn(walk.end), records: walk.records });
    return walk.lastStart;
  }

  private async extractBackup(backup: BackupInfo, dataDir: string, answering: ReadonlySet<string>): Promise<void> {
    const tar = path.join(this.deps.dir, `${backup.id}.restore.tar`);
    try {
      let got = false;
      const failed: string[] = [];
      const order = [...this.nodes.filter((n) => answering.has(n.name)), ...this.nodes.filter((n) => !answering.has(n.name))];
      for (const n of order) {
        try {
          await n.client.getBackup(backup.id, tar);
          if ((await sha256OfFile(tar)) === backup.sha256) {
            got = true;
            break;
          }
          failed.push(`${n.name}: its copy does not match the backup's SHA-256`);
          this.deps.log.warn('a base backup copy does not verify; trying another node', { node: n.name, backup: backup.id });
        } catch (err) {
          failed.push(`${n.name}: ${(err as Error).message}`);
          this.deps.log.warn('could not fetch the base backup', { node: n.name, error: (err as Error).message });
        }
      }
      if (!got) throw new UnverifiedBackup(`no storage node served a verified copy of base backup ${backup.id} (${failed.join('; ')})`);
      await unpackBaseBackup(tar, dataDir);
    } finally {
      fs.rmSync(tar, { force: true });
    }
  }

  /** Copies the WAL from `start` to `end` into walDir; resolves with the file written for each segment. */
  private async copyWal(source: string, timeline: number, histories: ReadonlyMap<number, string>, end: bigint, start: bigint, walDir: string): Promise<Map<number, string>> {
    const written = new Map<number, string>();
    const primary = this.node(source);
    const { files } = await primary.client.listWal();
    // An end exactly at a segment boundary needs nothing of the next segment (the node may not have it yet).
    const lastSeg = end > start ? segmentOf(end - 1n) : segmentOf(end);
    // For each segment, the file of the timeline that holds it on the chosen
    // chain (by its history): another timeline's file there is a dead branch's.
    const text = histories.get(timeline);
    const history = timeline === 1 ? [] : text === undefined ? null : parseTimelineHistory(text);
    if (history === null) throw new StorageError(`no storage node holds the history of timeline ${timeline}`);
    const pick = new Map<number, (typeof files)[number]>();
    for (const f of files) {
      if (f.timeline > timeline || f.segment < segmentOf(start) || f.segment > lastSeg || f.validBytes === 0) continue;
      if (f.timeline !== timelineOfSegment(f.segment, timeline, history)) continue;
      const have = pick.get(f.segment);
      if (!have || f.timeline > have.timeline) pick.set(f.segment, f);
    }
    for (let seg = segmentOf(start); seg <= lastSeg; seg++) {
      const f = pick.get(seg);
      if (!f) throw new StorageError(`storage node ${source} lacks WAL segment ${seg}`);
      // Every byte up to `end` must come from some node: a copy that stops
      // short (a peer behind the source) would end recovery early without a
      // word and lose what lies after it, so such a copy is never used.
      const needed = seg === lastSeg ? Number(end - segmentStart(seg)) : WAL_SEGMENT_BYTES;
      let bytes: Buffer | null = null;
      for (const n of [primary, ...this.nodes.filter((x) => x !== primary)]) {
        try {
          const got = await n.client.walFile(f.name);
          if (got.length >= needed) {
            bytes = got;
            break;
          }
        } catch {
          // try the next node
        }
      }
      if (!bytes) throw new StorageError(`no storage node served WAL ${f.name} up to ${needed} bytes`);
      const whole = Buffer.alloc(WAL_SEGMENT_BYTES);
      const keep = needed;
      bytes.copy(whole, 0, 0, keep);
      // Through a temporary name: a standby's own segment is never left half written.
      const file = path.join(walDir, f.name);
      writeFileNoFollow(file, whole, 0o600);
      written.set(seg, file);
    }
    return written;
  }
}

/** The last non-empty line of a log file (its last 4 KiB read), cut to 300 characters; '' when there is none. */
function lastLine(file: string): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const length = Math.min(size, 4096);
      const buf = Buffer.alloc(length);
      fs.readSync(fd, buf, 0, length, size - length);
      const lines = buf.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
      return (lines.at(-1) ?? '').slice(0, 300);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}
