// A compute instance run by the local driver: one PostgreSQL process tree on
// this machine, restarted with backoff when it crashes. Every transition goes
// through setState, which emits it for events and waiters.
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { InstanceRecord, InstanceState } from '../control/model.js';
import type { EngineBinaries } from '../engine/binaries.js';
import { baseSettings, sizedSettings } from '../engine/pg-settings.js';
import { PostgresServer, type PostgresExit } from '../engine/postgres-server.js';
import type { ProcessIdentity } from '../engine/service-user.js';
import type { Logger } from '../util/logger.js';

export interface LocalInstanceOptions {
  readonly record: InstanceRecord;
  readonly dir: string;
  readonly binaries: EngineBinaries;
  readonly identity: ProcessIdentity | null;
  readonly superuser: string;
  readonly acuMemoryMiB: number;
  readonly startTimeoutMs: number;
  readonly stopTimeoutMs: number;
  readonly restartBackoffMsMax: number;
  readonly log: Logger;
}

export interface InstanceTransition {
  readonly from: InstanceState;
  readonly to: InstanceState;
  readonly reason: string;
}

/** A restart counts as a fresh start again after this long up. */
const STABLE_AFTER_MS = 60_000;
const RESTART_BACKOFF_MS_MIN = 200;

export class LocalInstance extends EventEmitter<{ transition: [InstanceTransition] }> {
  readonly server: PostgresServer;
  private stateValue: InstanceState = 'creating';
  private restartTimer: NodeJS.Timeout | null = null;
  private consecutiveCrashes = 0;
  private readySince = 0;

  constructor(readonly options: LocalInstanceOptions) {
    super();
    this.setMaxListeners(0);
    const { record, dir, binaries, identity, superuser, log } = options;
    this.server = new PostgresServer({
      binaries,
      dataDir: path.join(dir, 'data'),
      socketDir: path.join(dir, 'run'),
      port: record.enginePort,
      logFile: path.join(dir, 'postgres.log'),
      identity,
      superuser,
      log: log.child(`postgres:${record.id}`),
    });
    this.server.on('exit', (exit) => this.onExit(exit));
  }

  get id(): string {
    return this.options.record.id;
  }

  get state(): InstanceState {
    return this.stateValue;
  }

  private setState(to: InstanceState, reason: string): void {
    const from = this.stateValue;
    if (from === to) return;
    this.stateValue = to;
    this.emit('transition', { from, to, reason });
  }

  /** Creates the data directory if needed, then starts postgres. */
  async start(): Promise<void> {
    const { record, acuMemoryMiB, startTimeoutMs } = this.options;
    if (!this.server.isInitialized()) {
      this.setState('creating', 'initializing the data directory');
      await this.server.initdb();
    }
    this.server.writeConfig({
      ...baseSettings(record.enginePort, this.server.options.socketDir),
      ...sizedSettings({ capacityAcu: record.capacityAcu, acuMemoryMiB }),
    });
    await this.server.start(startTimeoutMs);
    this.readySince = Date.now();
    this.setState('available', 'postgres is accepting connections');
  }

  async stop(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.setState('stopping', 'stop requested');
    await this.server.stop(this.options.stopTimeoutMs);
    this.setState('stopped', 'postgres stopped');
  }

  /** Resolves true once available, false at the deadline. */
  waitAvailable(timeoutMs: number): Promise<boolean> {
    if (this.stateValue === 'available') return Promise.resolve(true);
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

  private scheduleRestart(state: 'restarting' | 'failed', why: string): void {
    this.consecutiveCrashes++;
    const delayMs = Math.min(this.options.restartBackoffMsMax, RESTART_BACKOFF_MS_MIN * 2 ** (this.consecutiveCrashes - 1));
    this.setState(state, `${why}; restarting in ${delayMs} ms`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      // A crash loop backs off; it never gives up on an instance.
      this.start().catch((err: Error) => {
        if (this.stateValue === 'stopping' || this.stateValue === 'stopped') return;
        this.scheduleRestart('failed', `restart failed: ${err.message}`);
      });
    }, delayMs);
  }
}
