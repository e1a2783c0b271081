// Health probes of running instances: a session on the private socket that
// must answer `SELECT 1` within a deadline. A postgres that is alive but
// answers nothing (its process group stopped, a host frozen) never exits, so
// the crash handling never sees it; after `failuresMax` probes in a row ran
// out of time it is killed (its whole process group) and from there handled
// like one that died: restarted in place, and failed over if that fails.
import pg from 'pg';

export type ProbeResult = 'ok' | 'timeout' | 'error';

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
  const timeouts = result === 'timeout' ? prev.timeouts + 1 : 0;
  return { state: { timeouts }, hung: timeouts >= failuresMax };
}

/** One probe: connect and `SELECT 1` on the instance's socket within `timeoutMs`. */
export async function probeOnce(target: { socketDir: string; port: number; user: string }, timeoutMs: number): Promise<ProbeResult> {
  const client = new pg.Client({ host: target.socketDir, port: target.port, user: target.user, database: 'postgres', application_name: 'borealis-probe' });
  client.on('error', () => undefined);
  let timer: NodeJS.Timeout | null = null;
  const deadline = new Promise<ProbeResult>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
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
  if (result === 'timeout') (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  else void client.end().catch(() => undefined);
  return result;
}
