// A compute instance run by the local driver: one PostgreSQL process tree on
// this machine inside its cgroups, restarted with backoff when it crashes,
// paused (stopped, memory freed) and resumed on demand. Every transition
// goes through setState, which emits it for events and waiters.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { InstanceRecord, InstanceState } from '../control/model.js';
import type { EngineBinaries } from '../engine/binaries.js';
import { hasLibrary } from '../engine/engine-tree.js';
import { baseSettings, byContext, sizedSettings, type PgValue } from '../engine/pg-settings.js';
import { PostgresServer, type PostgresExit } from '../engine/postgres-server.js';
import type { ProcessIdentity } from '../engine/service-user.js';
import type { Logger } from '../util/logger.js';
import { InstanceCgroup, launchPrefix, type CgroupSupport } from './cgroups.js';

export interface LocalInstanceOptions {
  readonly record: InstanceRecord;
  readonly dir: string;
  readonly binaries: EngineBinaries;
  readonly identity: ProcessIdentity | null;
  readonly superuser: string;
  readonly acuMemoryMiB: number;
  readonly acuCpuCores: number;
  readonly cgroups: CgroupSupport;
  /** Restart-time settings (shared_buffers, max_connections) come from here. */
  readonly maxCapacityAcu: () => number;
  readonly startTimeoutMs: number;
  readonly stopTimeoutMs: number;
  readonly restartBackoffMsMax: number;
  /** Settings beyond the base and capacity ones (storage quorum, term, the address storage reaches it at). */
  readonly extraSettings?: () => Record<string, PgValue>;
  /** Who may connect for replication from other hosts than loopback (storage nodes placed elsewhere). */
  readonly replicationSources?: () => { user: string; cidrs: readonly string[] };
  /**
   * Called when the data directory is missing: restores it (from storage)
   * and resolves true, or resolves false for a fresh initdb. Throws when
   * data exists elsewhere but cannot be restored yet.
   */
  readonly restoreData?: (dataDir: string) => Promise<boolean>;
  /**
   * True when the instance runs as a reader now. A reader's data directory
   * must be a standby's: one without standby.signal was a writer's (the old
   * writer after a failover) and may hold WAL the new writer never had, so
   * it is dropped and cloned afresh rather than started, writable, as is.
   */
  readonly standbyOnly?: () => boolean;
  /** Runs as an auto-pause begins, while postgres still answers (it must not throw). */
  readonly beforePause?: () => Promise<void>;
  readonly log: Logger;
}

export interface InstanceTransition {
  readonly from: InstanceState;
  readonly to: InstanceState;
  readonly reason: string;
}

/**
 * Thrown by restoreData when the data cannot be restored yet and must not be
 * created either (a writer waiting for its storage quorum): the instance
 * waits in 'waiting-for-storage' and tries again, backing off.
 */
export class RestoreDeferred extends Error {
  override readonly name = 'RestoreDeferred';
}

/** A restart counts as a fresh start again after this long up. */
const STABLE_AFTER_MS = 10_000;
const RESTART_BACKOFF_MS_MIN = 200;

export class LocalInstance extends EventEmitter<{ transition: [InstanceTransition] }> {
  readonly server: PostgresServer;
  readonly cgroup: InstanceCgroup;
  private stateValue: InstanceState = 'creating';
  private restartTimer: NodeJS.Timeout | null = null;
  /** Bumped by every stop(): a restart or start begun before it must not bring the instance back. */
  private stops = 0;
  private consecutiveCrashes = 0;
  private readySince = 0;
  private capacity: number;
  private resuming: Promise<void> | null = null;
  /** How long the last resume took, from the request to postgres answering. */
  lastResume: { readonly totalMs: number } | null = null;
  private resumeBegan: number | null = null;
  resumeCount = 0;

  constructor(readonly options: LocalInstanceOptions) {
    super();
    this.setMaxListeners(0);
    const { record, dir, binaries, identity, superuser, log } = options;
    this.capacity = record.capacityAcu;
    // The home's hash keeps groups of different Borealis homes apart.
    const homeTag = createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 10);
    this.cgroup = new InstanceCgroup(options.cgroups, `${homeTag}-${record.id}`);
    const procs = this.cgroup.create();
    this.server = new PostgresServer({
      binaries,
      dataDir: path.join(dir, 'data'),
      socketDir: path.join(dir, 'run'),
      port: record.enginePort,
      logFile: path.join(dir, 'postgres.log'),
      identity,
      superuser,
      log: log.child(`postgres:${record.id}`),
      ...(procs.length > 0 ? { launch: { prefix: launchPrefix(procs, identity), env: { BOREALIS_CGROUP_PROCS: procs.join(' ') } } } : {}),
    });
    this.server.on('exit', (exit) => this.onExit(exit));
  }

  get id(): string {
    return this.options.record.id;
  }

  get state(): InstanceState {
    return this.stateValue;
  }

  /** Current capacity in ACUs; 0 while paused. */
  get capacityAcu(): number {
    return this.stateValue === 'paused' ? 0 : this.capacity;
  }

  private setState(to: InstanceState, reason: string): void {
    const from = this.stateValue;
    if (from === to) return;
    this.stateValue = to;
    this.emit('transition', { from, to, reason });
  }

  /** Creates the data directory if needed, then starts postgres. */
  async start(): Promise<void> {
    const { startTimeoutMs } = this.options;
    const stops = this.stops;
    const dataDir = this.server.options.dataDir;
    if (this.server.isInitialized() && this.options.standbyOnly?.() && !fs.existsSync(path.join(dataDir, 'standby.signal'))) {
      this.setState('rebuilding', 'its data directory is not a standby\'s (it was a writer\'s); a reader never starts writable, so it is cloned afresh');
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
    if (!this.server.isInitialized()) {
      const restore = this.options.restoreData;
      if (restore && this.stateValue !== 'creating' && this.stateValue !== 'waiting-for-storage') this.setState('rebuilding', 'the data directory is gone; rebuilding it');
      let restored = false;
      try {
        restored = restore ? await restore(dataDir) : false;
      } catch (err) {
        if (err instanceof RestoreDeferred && stops === this.stops) this.scheduleRestart('waiting-for-storage', err.message);
        throw err;
      }
      if (!restored) {
        this.setState('creating', 'initializing the data directory');
        await this.server.initdb();
      }
    }
    // Stopped meanwhile (a failover took over): it stays down.
    if (stops !== this.stops) throw new Error(`${this.id} was stopped while it started`);
    this.writeConfig();
    // A stop removed the groups; they are made again (creating is idempotent).
    this.cgroup.create();
    this.writeCapacity(this.capacity);
    // Start (and resume) with the maximum capacity's CPU: recovery and
    // startup under a 0.5-ACU quota would take several times longer. The
    // real capacity applies as soon as postgres answers.
    this.applyLimits(this.capacity, this.options.maxCapacityAcu());
    await this.server.start(startTimeoutMs);
    if (stops !== this.stops) {
      // A stop came while postgres was starting (it could not stop what had not spawned yet): it stays down.
      await this.server.stop(this.options.stopTimeoutMs);
      throw new Error(`${this.id} was stopped while it started`);
    }
    this.applyLimits(this.capacity);
    this.readySince = Date.now();
    if (this.resumeBegan !== null) {
      this.lastResume = { totalMs: this.readySince - this.resumeBegan };
      this.resumeBegan = null;
    }
    this.setState('available', 'postgres is accepting connections');
  }

  private writeConfig(): void {
    const { record, acuMemoryMiB } = this.options;
    const restartTime = byContext(sizedSettings({ capacityAcu: this.options.maxCapacityAcu(), acuMemoryMiB })).restart;
    const binaries = this.server.options.binaries;
    // Preloaded when the installation has it, as on Aurora: its view works as soon as the extension is created.
    const preload: Record<string, PgValue> = hasLibrary(binaries, 'pg_stat_statements') ? { shared_preload_libraries: 'pg_stat_statements' } : {};
    this.server.writeConfig({ ...baseSettings(record.enginePort, this.server.options.socketDir, binaries.majorVersion), ...preload, ...restartTime, ...this.options.extraSettings?.() }, this.options.replicationSources?.());
  }

  /**
   * A standby becomes a writer. Its configuration is rewritten from its
   * hooks, which see it as a writer by now, and reloaded *before* it is
   * promoted: the storage quorum (synchronous_standby_names) and the term
   * must hold from its first commit, not from whenever a reload after the
   * promotion lands. They are harmless on a standby. Rewritten and reloaded
   * again after, whether the promotion returned or timed out (PostgreSQL
   * may still finish it).
   */
  async promote(timeoutMs: number): Promise<void> {
    if (this.stateValue !== 'available') throw new Error(`${this.id} is ${this.stateValue}, not available`);
    this.reconfigure();
    try {
      await this.server.promote(timeoutMs);
    } finally {
      this.reconfigure();
    }
  }

  /** Rewrites the configuration from the hooks (a reader's writer moved) and reloads it. */
  reconfigure(): void {
    this.writeConfig();
    if (this.stateValue === 'available') this.server.reload();
  }

  /**
   * Moves capacity: cgroup limits and reload-time settings. Nothing is
   * restarted and no backend is touched.
   */
  setCapacity(acu: number): void {
    this.capacity = acu;
    if (this.stateValue !== 'available') return;
    this.applyLimits(acu);
    this.writeCapacity(acu);
    this.server.reload();
  }

  private applyLimits(acu: number, cpuAcu = acu): void {
    const { acuMemoryMiB, acuCpuCores } = this.options;
    this.cgroup.apply({
      cpuCores: cpuAcu * acuCpuCores,
      memorySoftBytes: acu * acuMemoryMiB * 1024 * 1024,
      memoryHardBytes: this.options.maxCapacityAcu() * acuMemoryMiB * 1024 * 1024,
    });
  }

  private writeCapacity(acu: number): void {
    this.server.writeCapacityConfig(byContext(sizedSettings({ capacityAcu: acu, acuMemoryMiB: this.options.acuMemoryMiB })).reload);
  }

  /** Auto-pause: a fast shutdown (which checkpoints) frees all of its memory. */
  async pause(reason: string): Promise<void> {
    if (this.stateValue !== 'available') return;
    this.setState('pausing', reason);
    await this.options.beforePause?.();
    await this.server.stop(this.options.stopTimeoutMs);
    this.setState('paused', 'postgres stopped; capacity 0');
  }

  /** Starts a paused instance; concurrent callers share one resume. */
  resume(why: string): Promise<void> {
    if (this.stateValue !== 'paused') return Promise.resolve();
    this.resuming ??= (async () => {
      this.resumeBegan = Date.now();
      this.resumeCount++;
      this.setState('resuming', why);
      try {
        await this.start();
      } catch (err) {
        if (!(err instanceof RestoreDeferred)) this.scheduleRestart('failed', `resume failed: ${(err as Error).message}`);
      } finally {
        this.resuming = null;
      }
    })();
    return this.resuming;
  }

  /** Stops (if running), drops the data directory and starts again: restoreData builds a new one. */
  async rebuild(): Promise<void> {
    if (this.stateValue !== 'stopped') await this.stop();
    fs.rmSync(this.server.options.dataDir, { recursive: true, force: true });
    await this.start();
  }

  async stop(): Promise<void> {
    this.stops++;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.setState('stopping', 'stop requested');
    await this.server.stop(this.options.stopTimeoutMs);
    this.setState('stopped', 'postgres stopped');
    this.cgroup.remove();
  }

  /** Resolves true once available, false at the deadline. A paused instance is resumed. */
  waitAvailable(timeoutMs: number): Promise<boolean> {
    if (this.stateValue === 'available') return Promise.resolve(true);
    if (this.stateValue === 'paused') void this.resume('a client connected');
    return new Promise((resolve) => {
      const onTransition = (t: InstanceTransition): void => {
        if (t.to !== 'available') return;
        clearTimeout(timer);
        this.off('transition', onTransition);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.off('transition', onTransition);
        resolve(false);
      }, timeoutMs);
      this.on('transition', onTransition);
    });
  }

  private onExit(exit: PostgresExit): void {
    // Exits during start() are reported by start() itself; only a running
    // instance that dies on its own is a crash.
    if (exit.expected || this.stateValue !== 'available') return;
    const how = exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
    if (Date.now() - this.readySince > STABLE_AFTER_MS) this.consecutiveCrashes = 0;
    this.scheduleRestart('restarting', `postgres exited unexpectedly (${how})`);
  }

  /** A start that failed outside the crash loop (after a failed failover) joins it, backing off. */
  restartLater(why: string): void {
    if (this.restartTimer) return;
    this.scheduleRestart('failed', why);
  }

  private scheduleRestart(state: 'restarting' | 'failed' | 'waiting-for-storage', why: string): void {
    this.consecutiveCrashes++;
    const delayMs = Math.min(this.options.restartBackoffMsMax, RESTART_BACKOFF_MS_MIN * 2 ** (this.consecutiveCrashes - 1));
    const stops = this.stops;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    // The timer is stored before the transition is announced: a listener
    // that stops the instance (a failover does) must find it and clear it.
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (stops !== this.stops) return;
      // A crash loop backs off; it never gives up on an instance.
      this.start().catch((err: Error) => {
        // A deferred restore has scheduled its own retry.
        if (err instanceof RestoreDeferred || stops !== this.stops || this.stateValue === 'stopping' || this.stateValue === 'stopped') return;
        this.scheduleRestart('failed', `restart failed: ${err.message}`);
      });
    }, delayMs);
    this.setState(state, `${why}; restarting in ${delayMs} ms`);
  }
}
