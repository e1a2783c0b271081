// One PostgreSQL process tree: initdb, start, readiness, stop, and crash
// detection. The postmaster is spawned directly (not through pg_ctl) so its
// exit is seen at once.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from '../util/logger.js';
import type { EngineBinaries } from './binaries.js';
import { renderPgHbaConf, renderPostgresqlConf, type PgValue } from './pg-settings.js';
import { signalTree } from '../util/process-tree.js';
import { chownTree, type ProcessIdentity } from './service-user.js';
import { openAppendNoFollow, ownDirectory, writeFileNoFollow } from '../util/no-follow.js';

export type PostgresState = 'stopped' | 'starting' | 'ready' | 'stopping';

export interface PostgresServerOptions {
  readonly binaries: EngineBinaries;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  readonly logFile: string;
  readonly identity: ProcessIdentity | null;
  readonly superuser: string;
  readonly log: Logger;
  /**
   * Command that runs before postgres and execs it (entering cgroups,
   * dropping privileges); when set, it is spawned as Borealis itself.
   */
  readonly launch?: { readonly prefix: readonly string[]; readonly env: Readonly<Record<string, string>> };
}

/** Reload-time settings that follow capacity live in this file, included last. */
export const CAPACITY_CONF = 'borealis-capacity.conf';
/**
 * Recovery settings of a rebuilt data directory (written with it, by the
 * rebuild): they belong to that directory, not to whichever supervisor
 * starts it, so a restart or a failover rolled back never starts it without
 * them. Removed once the rebuilt writer is out of recovery.
 */
export const RECOVERY_CONF = 'borealis-recovery.conf';

/**
 * Startup options of every session Borealis opens as the cluster's
 * superuser. The master user owns the postgres database and may store
 * settings for it (ALTER DATABASE … SET); startup options outrank those, so
 * it cannot put a schema of its own before pg_catalog (where a view named
 * pg_authid would run its code as the superuser) nor make these sessions'
 * commits skip the storage quorum. pg_temp comes last: no temporary table
 * shadows a catalog either.
 */
export const INTERNAL_SESSION_OPTIONS = '-c search_path=pg_catalog,pg_temp -c synchronous_commit=on';

export class EngineError extends Error {
  override readonly name = 'EngineError';
}

export interface PostgresExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when Borealis asked it to stop. */
  readonly expected: boolean;
}

export class PostgresServer extends EventEmitter<{ exit: [PostgresExit] }> {
  private child: ChildProcess | null = null;
  private stateValue: PostgresState = 'stopped';
  private exited: Promise<void> = Promise.resolve();
  /** The data directory this postgres became ready in (device and inode). */
  private runsIn: { readonly dev: number; readonly ino: number } | null = null;

  constructor(readonly options: PostgresServerOptions) {
    super();
  }

  get state(): PostgresState {
    return this.stateValue;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get socketPath(): string {
    return path.join(this.options.socketDir, `.s.PGSQL.${this.options.port}`);
  }

  isInitialized(): boolean {
    return fs.existsSync(path.join(this.options.dataDir, 'PG_VERSION'));
  }

  async initdb(): Promise<void> {
    const { dataDir, binaries, identity, superuser } = this.options;
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chownTree(identity, path.dirname(dataDir));
    const args = ['-D', dataDir, '-U', superuser, '-E', 'UTF8', '--locale=C', '--auth-local=trust', '--auth-host=scram-sha-256'];
    const output = await runTool(path.join(binaries.binDir, 'initdb'), args, identity);
    if (output.code !== 0) {
      throw new EngineError(`initdb failed (exit ${output.code}): ${output.text.trim().split('\n').slice(-3).join(' ')}`);
    }
  }

  /** Writes postgresql.conf and pg_hba.conf from Borealis's tables. */
  writeConfig(values: Record<string, PgValue>, replication?: Parameters<typeof renderPgHbaConf>[0]): void {
    this.writeFiles([
      ['postgresql.conf', renderPostgresqlConf(values) + `include_if_exists = '${CAPACITY_CONF}'\ninclude_if_exists = '${RECOVERY_CONF}'\n`],
      ['pg_hba.conf', renderPgHbaConf(replication)],
    ]);
  }

  /** Writes the capacity-dependent settings; reload() applies them. */
  writeCapacityConfig(values: Record<string, PgValue>): void {
    this.writeFiles([[CAPACITY_CONF, renderPostgresqlConf(values)]]);
  }

  /**
   * Promotes a standby to accept writes (pg_promote, waiting for the end of
   * recovery). Resolves false if it was not a standby.
   */
  async promote(timeoutMs: number): Promise<boolean> {
    const client = new pg.Client({ host: this.options.socketDir, port: this.options.port, user: this.options.superuser, database: 'postgres', options: INTERNAL_SESSION_OPTIONS });
    // A server that dies meanwhile fails the query; its FATAL to the idle client must not end the supervisor.
    client.on('error', () => undefined);
    await client.connect();
    try {
      const inRecovery = (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;
      if (!inRecovery) return false;
      const waitS = Math.max(1, Math.ceil(timeoutMs / 1000));
      const done = (await client.query<{ ok: boolean }>('SELECT pg_promote(true, $1) AS ok', [waitS])).rows[0]!.ok;
      if (!done) throw new EngineError(`promotion did not finish within ${waitS} s`);
      return true;
    } finally {
      await client.end();
    }
  }

  /**
   * SIGKILL to the postmaster and every process it started: for a postgres
   * that is stopped or hung and would ignore a shutdown. Its children are
   * not in its process group (PostgreSQL gives each its own), and a stopped
   * one would keep the shared memory attached and refuse every restart, so
   * they are found by parent pid before the postmaster dies. Its exit is
   * then reported as an unexpected one.
   */
  killGroup(): void {
    const pid = this.child?.pid;
    if (!pid) return;
    signalTree(pid, 'SIGKILL');
  }

  /**
   * Why the running postgres's data directory is no longer there, or null.
   * One deleted (or replaced) under it keeps running on the files it has
   * open, and its sessions keep committing, until PostgreSQL's own check of
   * its lock file, up to a minute later.
   */
  dataDirLost(): string | null {
    if (this.stateValue !== 'ready' || !this.runsIn) return null;
    const { dataDir } = this.options;
    const dir = statOrNull(dataDir);
    if (!dir) return `its data directory ${dataDir} is gone`;
    if (dir.dev !== this.runsIn.dev || dir.ino !== this.runsIn.ino) return `its data directory ${dataDir} was replaced by another`;
    if (!statOrNull(path.join(dataDir, 'global', 'pg_control'))) return `its data directory ${dataDir} has no global/pg_control`;
    return null;
  }

  /** SIGHUP: postgres re-reads its configuration (reload-time settings only). */
  reload(): void {
    this.child?.kill('SIGHUP');
  }

  private writeFiles(files: ReadonlyArray<readonly [string, string]>): void {
    const { dataDir, identity } = this.options;
    for (const [file, text] of files) {
      writeFileNoFollow(path.join(dataDir, file), text, 0o600, identity);
    }
  }

  async start(timeoutMs: number): Promise<void> {
    if (this.stateValue !== 'stopped') throw new EngineError(`cannot start: postgres is ${this.stateValue}`);
    const { binaries, dataDir, socketDir, logFile, identity, log } = this.options;
    await this.stopStalePostmaster();
    ownDirectory(socketDir, 0o700, identity);
    const logFd = openAppendNoFollow(logFile, 0o640);
    this.stateValue = 'starting';
    const postgres = path.join(binaries.binDir, 'postgres');
    const launch = this.options.launch;
    const [command, ...args] = launch ? [...launch.prefix, postgres, '-D', dataDir] : [postgres, '-D', dataDir];
    const child = spawn(command, args, {
      stdio: ['ignore', logFd, logFd],
      // Own process group: a Ctrl-C in the terminal reaches the supervisor,
      // which then shuts postgres down in order.
      detached: true,
      ...(launch ? { env: { ...process.env, ...launch.env } } : identity ? { uid: identity.uid, gid: identity.gid } : {}),
    });
    fs.closeSync(logFd);
    this.child = child;
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        const expected = this.stateValue === 'stopping';
        this.child = null;
        this.stateValue = 'stopped';
        resolve();
        this.emit('exit', { code, signal, expected });
      });
    });
    child.once('error', (err) => log.error('postgres could not be spawned', { error: err.message }));
    const deadline = Date.now() + timeoutMs;
    // Archive recovery (a rebuild from storage) ends in promotion; until then
    // the server answers read-only and is not ready to be a writer.
    const untilPromoted = fs.existsSync(path.join(dataDir, 'recovery.signal'));
    while (this.child === child) {
      if (await this.probe(child.pid, untilPromoted)) {
        // Out of recovery: the rebuild's target has been reached and is not for any later start.
        if (untilPromoted) fs.rmSync(path.join(dataDir, RECOVERY_CONF), { force: true });
        const { dev, ino } = fs.statSync(dataDir);
        this.runsIn = { dev, ino };
        this.stateValue = 'ready';
        log.info('postgres ready', { pid: child.pid, port: this.options.port });
        return;
      }
      if (Date.now() > deadline) {
        await this.stop(5_000);
        throw new EngineError(`postgres did not become ready within ${timeoutMs} ms (see ${logFile})`);
      }
      // Short: resume time is what a paused database's first client waits.
      await sleep(2);
    }
    throw new EngineError(`postgres exited during startup (see ${logFile}): ${tail(logFile)}`);
  }

  /** Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL. */
  async stop(timeoutMs: number): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.stateValue = 'stopping';
    const steps: Array<[NodeJS.Signals, number]> = [
      ['SIGINT', timeoutMs],
      ['SIGQUIT', 5_000],
      ['SIGKILL', 5_000],
    ];
    for (const [signal, waitMs] of steps) {
      // The last resort reaches the children too (see killGroup).
      if (signal === 'SIGKILL') this.killGroup();
      else child.kill(signal);
      const done = await Promise.race([this.exited.then(() => true), sleep(waitMs).then(() => false)]);
      if (done) return;
      this.options.log.warn('postgres did not stop in time; escalating', { signal, waitMs });
    }
  }

  /**
   * True once the postmaster accepts sessions on its private socket. It says
   * so itself in postmaster.pid ("ready"; "standby" for a hot standby), so a
   * normal start needs no session of its own: the first client's is the
   * first. The file must be this postmaster's: one that was killed leaves
   * its own behind, still saying "ready". Archive recovery (a rebuild) must
   * also have ended in promotion.
   */
  private async probe(pid: number | undefined, untilPromoted: boolean): Promise<boolean> {
    const pidFile = path.join(this.options.dataDir, 'postmaster.pid');
    let status: string | undefined;
    try {
      const lines = fs.readFileSync(pidFile, 'utf8').split('\n');
      if (Number(lines[0]) !== pid) return false;
      status = lines[7]?.trim();
    } catch {
      return false;
    }
    if (!untilPromoted) return status === 'ready' || status === 'standby';
    if (status !== 'ready' && status !== 'standby') return false;
    const client = new pg.Client({ host: this.options.socketDir, port: this.options.port, user: this.options.superuser, database: 'postgres', options: INTERNAL_SESSION_OPTIONS });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return !(await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /**
   * A postmaster left running by a supervisor that was killed holds the data
   * directory. Stop it, by the pid it wrote, if it is still a postgres.
   */
  private async stopStalePostmaster(): Promise<void> {
    const pidFile = path.join(this.options.dataDir, 'postmaster.pid');
    let pid: number;
    try {
      pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
    } catch {
      return;
    }
    // The file is the cluster user's to write: only a postgres of that same user is signalled (never another cluster's).
    if (!Number.isInteger(pid) || pid <= 0 || !isPostgres(pid, this.options.identity?.uid ?? process.getuid?.() ?? 0)) return;
    this.options.log.warn('stopping a postgres left running from an earlier run', { pid });
    for (const [signal, waitMs] of [['SIGINT', 30_000], ['SIGKILL', 5_000]] as const) {
      try {
        process.kill(pid, signal);
      } catch {
        return;
      }
      const deadline = Date.now() + waitMs;
      while (Date.now() < deadline) {
        if (!isAlive(pid)) return;
        await sleep(50);
      }
    }
  }
}

/** A path's stat, or null when it (or a directory above it) does not exist. */
function statOrNull(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isPostgres(pid: number, uid: number): boolean {
  try {
    return fs.statSync(`/proc/${pid}`).uid === uid && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres');
  } catch {
    return false;
  }
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}

function runTool(file: string, args: string[], identity: ProcessIdentity | null): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(identity ? { uid: identity.uid, gid: identity.gid } : {}) });
    const chunks: Buffer[] = [];
    let kept = 0;
    const keep = (b: Buffer): void => {
      // Bounded: only the tail matters for an error message.
      chunks.push(b);
      kept += b.length;
      while (kept > 64 * 1024 && chunks.length > 1) kept -= chunks.shift()!.length;
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, text: Buffer.concat(chunks).toString('utf8') }));
  });
}
