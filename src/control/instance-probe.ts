// Health probes of running instances: a session on the private socket that
// must answer `SELECT 1` within a deadline. A postgres that is alive but
// answers nothing (its process group stopped, a host frozen) never exits, so
// the crash handling never sees it; after `failuresMax` probes in a row ran
// out of time it is killed (its whole process group) and from there handled
// like one that died: restarted in place, and failed over if that fails.
// Each probe first checks that the instance's data directory is still
// there: a postgres whose directory was deleted answers, and commits, for
// up to a minute more. It is killed at once and handled the same way (a
// restart finds no data directory and rebuilds it).
import pg from 'pg';
import { INTERNAL_SESSION_OPTIONS } from '../engine/postgres-server.js';
import type { LocalInstance } from '../compute/local-instance.js';

/** 'stalled': the deadline fired late, so the supervisor's own event loop was held up; the probe says nothing about the instance. */
export type ProbeResult = 'ok' | 'timeout' | 'error' | 'stalled';

export interface ProbeState {
  readonly timeouts: number;
}

export const PROBE_START: ProbeState = { timeouts: 0 };

/**
 * Pure: only timeouts count toward hung. A refused connection means
 * postgres is not there (its exit is handled elsewhere), and an error
 * answer means it is alive.
 */
export function nextProbeState(prev: ProbeState, result: ProbeResult, failuresMax: number): { state: ProbeState; hung: boolean } {
  if (result === 'stalled') return { state: prev, hung: false };
  const timeouts = result === 'timeout' ? prev.timeouts + 1 : 0;
  return { state: { timeouts }, hung: timeouts >= failuresMax };
}

/** One probe: connect and `SELECT 1` on the instance's socket within `timeoutMs`. */
export async function probeOnce(target: { socketDir: string; port: number; user: string }, timeoutMs: number): Promise<ProbeResult> {
  const client = new pg.Client({ host: target.socketDir, port: target.port, user: target.user, database: 'postgres', application_name: 'borealis-probe', options: INTERNAL_SESSION_OPTIONS });
  client.on('error', () => undefined);
  let timer: NodeJS.Timeout | null = null;
  const started = Date.now();
  // A deadline that fires well after its time means the supervisor itself was stalled (a long synchronous step): not the instance's fault.
  const deadline = new Promise<ProbeResult>((resolve) => (timer = setTimeout(() => resolve(Date.now() - started > timeoutMs * 1.5 ? 'stalled' : 'timeout'), timeoutMs)));
  const attempt = (async (): Promise<ProbeResult> => {
    try {
      await client.connect();
      await client.query('SELECT 1');
      return 'ok';
    } catch {
      return 'error';
    }
  })();
  const result = await Promise.race([attempt, deadline]);
  if (timer) clearTimeout(timer);
  // A hung server never answers the goodbye either: the socket is dropped, not awaited.
  if (result === 'timeout' || result === 'stalled') (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  else void client.end().catch(() => undefined);
  return result;
}

export interface ProberDeps {
  readonly instances: () => Iterable<LocalInstance>;
  readonly timeoutMs: number;
  readonly failuresMax: number;
  /** Records why (an event) before the process group is killed. */
  readonly onKill: (instanceId: string, kind: 'hung' | 'data-dir-lost', message: string) => void;
}

/** Probes every available instance each interval; kills the process group of one that is hung or lost its data directory. */
export class InstanceProber {
  private timer: NodeJS.Timeout | null = null;
  private readonly states = new Map<string, ProbeState>();
  private probing = false;
  private stopped = false;

  constructor(private readonly deps: ProberDeps) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.round(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** One round over every instance; a round still running makes the next one wait for the interval after. */
  async round(): Promise<void> {
    if (this.probing || this.stopped) return;
    this.probing = true;
    const { timeoutMs, failuresMax } = this.deps;
    try {
      // allSettled: the round runs unattended, and one instance's trouble must not end the supervisor.
      await Promise.allSettled(
        [...this.deps.instances()].map(async (i) => {
          if (i.state !== 'available') return void this.states.delete(i.id);
          const pid = i.server.pid;
          const lost = i.server.dataDirLost();
          if (lost) {
            this.states.delete(i.id);
            this.deps.onKill(i.id, 'data-dir-lost', `postgres (pid ${pid}): ${lost}; killing its process group so that it acknowledges no more commits, and handling it like one that died`);
            return void i.server.killGroup();
          }
          const result = await probeOnce({ socketDir: i.server.options.socketDir, port: i.options.record.enginePort, user: i.options.superuser }, timeoutMs);
          // Stopped, paused or restarted meanwhile: this probe says nothing about the new process.
          if (this.stopped || i.state !== 'available' || i.server.pid !== pid) return void this.states.delete(i.id);
          const { state, hung } = nextProbeState(this.states.get(i.id) ?? PROBE_START, result, failuresMax);
          this.states.set(i.id, state);
          if (!hung) return;
          this.states.delete(i.id);
          this.deps.onKill(i.id, 'hung', `postgres (pid ${pid}) answered no health probe within ${timeoutMs} ms, ${failuresMax} times in a row; killing its process group so that it is handled like one that died`);
          i.server.killGroup();
        }),
      );
    } finally {
      this.probing = false;
    }
  }
}
