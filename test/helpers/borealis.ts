// Starts a real Borealis (supervisor, PostgreSQL, proxy) in a temporary home
// on free loopback ports, through the same CLI a user runs.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { StatusDocument } from '../../src/control/status.js';

export const BIN = fileURLToPath(new URL('../../bin/borealis.js', import.meta.url));
export const PASSWORD = 'correct-horse-battery';

/** Ports below which the kernel picks no local end of an outgoing connection. */
function ephemeralLow(): number {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768; // Not Linux: the usual low end.
  }
}

const PORTS_FROM = 10_000;
/** Runs of ports handed out by portBase() in this process, which freePort() stays out of. */
const spans: Array<{ from: number; to: number }> = [];
/** Ports freePort() has handed out in this process: two calls in a row never get the same one. */
const issued = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A free port for something a test's Borealis listens on and must listen on
 * again after a restart (endpoints, the API, the Data API). Picked below the
 * kernel's ephemeral range: a port in that range can be taken at any moment
 * as the local end of some outgoing connection, and then the restarted
 * supervisor cannot listen on it (EADDRINUSE). Outside every portBase() run,
 * and never one handed out before in this process.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  for (let i = 0; i < 1000; i++) {
    const port = PORTS_FROM + Math.floor(Math.random() * (low - PORTS_FROM));
    if (issued.has(port) || spans.some((r) => port >= r.from && port < r.to)) continue;
    if (await bindable(port)) {
      issued.add(port);
      return port;
    }
  }
  throw new Error(`no free port between ${PORTS_FROM} and ${low}`);
}

/**
 * The first of a run of ports a test's Borealis listens on (storage nodes,
 * engines), picked at random below the kernel's ephemeral range for the
 * same reason as freePort(); freePort() then keeps out of it.
 */
export function portBase(span = 200): number {
  const from = PORTS_FROM + Math.floor(Math.random() * Math.max(1, ephemeralLow() - PORTS_FROM - span));
  spans.push({ from, to: from + span });
  return from;
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class Borealis {
  private constructor(
    readonly home: string,
    readonly proxyPort: number,
    readonly apiPort: number,
    readonly enginePortBase: number,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  static async start(extraEnv: Record<string, string> = {}): Promise<Borealis> {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-test-'));
    const engines = portBase();
    const b = new Borealis(home, await freePort(), await freePort(), engines, {
      ...process.env,
      BOREALIS_PASSWORD: PASSWORD,
      BOREALIS_DATA_API_PORT: String(await freePort()),
      ...extraEnv,
    });
    await b.up();
    return b;
  }

  cli(args: readonly string[], timeoutMs = 180_000): Promise<CliResult> {
    return new Promise((resolve) => {
      // BENCH_SUPERVISOR_PROFILE_DIR: a CPU profile of the supervisor (written when it stops).
      const profile = args[0] === 'up' && process.env.BENCH_SUPERVISOR_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_SUPERVISOR_PROFILE_DIR}`] : [];
      execFile(process.execPath, [...profile, BIN, '--home', this.home, ...args], { env: this.env, timeout: timeoutMs }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  async up(): Promise<CliResult> {
    const r = await this.cli(['up', '--detach', '--proxy-port', String(this.proxyPort), '--api-port', String(this.apiPort), '--engine-port-base', String(this.enginePortBase)]);
    if (r.code !== 0) throw new Error(`borealis up failed (${r.code}): ${r.stdout}\n${r.stderr}\n${this.logTail()}`);
    return r;
  }

  async down(): Promise<CliResult> {
    return this.cli(['down']);
  }

  async status(): Promise<StatusDocument> {
    const r = await this.cli(['status', '--json']);
    if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusDocument;
  }

  /** The Data API's port, as given at start. */
  get dataApiPort(): number {
    return Number(this.env.BOREALIS_DATA_API_PORT);
  }

  async writerPid(cluster = 'default'): Promise<number | null> {
    const s = await this.status();
    return s.clusters.find((c) => c.name === cluster)?.instances.find((i) => i.role === 'writer')?.pid ?? null;
  }

  async waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  url(opts: { user?: string; password?: string; database?: string; sslmode?: string } = {}): string {
    const user = encodeURIComponent(opts.user ?? 'postgres');
    const password = encodeURIComponent(opts.password ?? PASSWORD);
    return `postgres://${user}:${password}@127.0.0.1:${this.proxyPort}/${opts.database ?? 'postgres'}?sslmode=${opts.sslmode ?? 'require'}`;
  }

  /** Connection settings for node-postgres; TLS unless `tls: false`. */
  pgConfig(opts: { user?: string; password?: string; database?: string; tls?: boolean } = {}): import('pg').ClientConfig {
    return {
      host: '127.0.0.1',
      port: this.proxyPort,
      user: opts.user ?? 'postgres',
      password: opts.password ?? PASSWORD,
      database: opts.database ?? 'postgres',
      ssl: opts.tls === false ? false : { rejectUnauthorized: false },
    };
  }

  /** One statement on a fresh connection (TLS unless `tls: false`; `port` picks an endpoint; `params` its $1, $2…); its rows. */
  async sql<T extends import('pg').QueryResultRow>(text: string, opts: { port?: number; tls?: boolean; params?: readonly unknown[] } = {}): Promise<T[]> {
    const { default: pg } = await import('pg');
    const c = new pg.Client({ ...this.pgConfig(opts.tls === false ? { tls: false } : {}), ...(opts.port ? { port: opts.port } : {}), connectionTimeoutMillis: 60_000 });
    await c.connect();
    try {
      return (await c.query<T>(text, opts.params ? [...opts.params] : undefined)).rows;
    } finally {
      await c.end();
    }
  }

  /**
   * Logs in on a fresh connection (TLS unless `tls: false`; `port` picks an
   * endpoint, `serverName` the TLS server name sent) and returns
   * current_user, or the error the login ended with.
   */
  async login(user: string, password: string, opts: { port?: number; tls?: boolean; serverName?: string } = {}): Promise<string | import('pg').DatabaseError> {
    const { default: pg } = await import('pg');
    const c = new pg.Client({
      ...this.pgConfig({ user, password, tls: opts.tls ?? true }),
      ...(opts.port ? { port: opts.port } : {}),
      ...(opts.serverName ? { ssl: { rejectUnauthorized: false, servername: opts.serverName } } : {}),
    });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const r = await c.query<{ u: string }>('SELECT current_user AS u');
      await c.end();
      return r.rows[0]!.u;
    } catch (e) {
      return e as import('pg').DatabaseError;
    }
  }

  /**
   * Waits until `text` commits through the writer endpoint. Each try has
   * 10 s: a commit that hangs (storage refusing the writer's term, say)
   * counts as not committed.
   */
  async waitForCommit(what: string, text: string, timeoutMs = 120_000): Promise<void> {
    const { default: pg } = await import('pg');
    await this.waitFor(what, async () => {
      const c = new pg.Client({ ...this.pgConfig({ tls: false }), connectionTimeoutMillis: 10_000, query_timeout: 10_000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.query(text);
        return true;
      } catch {
        return false;
      } finally {
        await c.end().catch(() => undefined);
      }
    }, timeoutMs);
  }

  /** A CLI call that must succeed; its standard output. */
  async cliOk(...args: string[]): Promise<string> {
    const r = await this.cli(args);
    if (r.code !== 0) throw new Error(`borealis ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  logTail(): string {
    try {
      return fs.readFileSync(path.join(this.home, 'logs', 'borealis.log'), 'utf8').trim().split('\n').slice(-20).join('\n');
    } catch {
      return '';
    }
  }

  /** Stops everything and removes the home. */
  async destroy(): Promise<void> {
    await this.down();
    fs.rmSync(this.home, { recursive: true, force: true });
  }
}

/** pids of live processes whose command line mentions `needle`. */
export function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(needle)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

export function rssKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}
