// A fleet of simulated serverless functions. Each container imports the
// handler module on its cold start (its own module instance) and, in pooled
// mode, opens its own connection then; a warm container reuses both; an idle
// container is reaped after idleReapMs. Concurrency follows a ramp: every
// tick, the number of invocations in flight is brought up to the target,
// and invocations beyond it finish without starting another. Every second
// is recorded: invocations, in flight, cold starts, errors, latency.
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { concurrencyAt, rampDurationS, type RampPoint } from './ramp.js';

/** pooled: a connection per container; fresh: one per invocation; data-api: none (the handler calls the Data API). */
export type ConnectionMode = 'pooled' | 'fresh' | 'data-api';

export interface FleetOptions {
  readonly handlerFile: string;
  readonly ramp: readonly RampPoint[];
  readonly mode: ConnectionMode;
  readonly db: pg.ClientConfig;
  readonly idleReapMs: number;
  readonly invocationTimeoutMs: number;
  /** Called once a second with the second just finished. */
  readonly onSecond: (record: SecondRecord) => void | Promise<void>;
}

export interface SecondRecord {
  readonly second: number;
  readonly targetConcurrency: number;
  readonly inFlight: number;
  readonly containers: number;
  readonly invocations: number;
  readonly coldStarts: number;
  readonly errors: number;
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
}

type Handler = (event: unknown, context: unknown) => Promise<unknown>;

interface Container {
  readonly id: number;
  readonly handler: Handler;
  readonly db: pg.Client | null;
  lastUsed: number;
}

const TICK_MS = 50;

export interface FleetSummary {
  readonly invocations: number;
  readonly errors: number;
  readonly coldStarts: number;
  readonly firstErrors: string[];
}

export async function runFleet(o: FleetOptions): Promise<FleetSummary> {
  const handlerUrl = pathToFileURL(o.handlerFile).href;
  const idle: Container[] = [];
  let containers = 0;
  let nextContainer = 1;
  let inFlight = 0;
  let sequence = 0;
  const totals = { invocations: 0, errors: 0, coldStarts: 0 };
  const firstErrors: string[] = [];
  let window = { invocations: 0, coldStarts: 0, errors: 0, latencies: [] as number[] };
  const started = Date.now();
  const durationMs = rampDurationS(o.ramp) * 1000;
  const target = (): number => concurrencyAt(o.ramp, (Date.now() - started) / 1000);

  const coldStart = async (): Promise<Container> => {
    const id = nextContainer++;
    containers++;
    try {
      // A fresh module instance per container, as a new runtime would load it.
      const mod = (await import(`${handlerUrl}?container=${id}`)) as { handler?: Handler };
      if (typeof mod.handler !== 'function') throw new Error(`${o.handlerFile} exports no handler(event, context)`);
      let db: pg.Client | null = null;
      if (o.mode === 'pooled') {
        db = new pg.Client(o.db);
        db.on('error', () => undefined);
        await db.connect();
      }
      return { id, handler: mod.handler, db, lastUsed: Date.now() };
    } catch (err) {
      containers--;
      throw err;
    }
  };

  const retire = (c: Container): void => {
    containers--;
    void c.db?.end().catch(() => undefined);
  };

  const invoke = async (): Promise<void> => {
    inFlight++;
    const began = Date.now();
    let container: Container | null = idle.pop() ?? null;
    let cold = false;
    let broken = false;
    try {
      if (!container) {
        cold = true;
        window.coldStarts++;
        totals.coldStarts++;
        container = await coldStart();
      }
      let db = container.db;
      if (!db && o.mode === 'fresh') {
        db = new pg.Client(o.db);
        db.on('error', () => undefined);
        await db.connect();
      }
      try {
        const event = { sequence: sequence++, at: new Date().toISOString() };
        const context = { db, containerId: container.id, coldStart: cold };
        await withTimeout(container.handler(event, context), o.invocationTimeoutMs);
      } finally {
        if (db && !container.db) await db.end().catch(() => undefined);
      }
      window.latencies.push(Date.now() - began);
    } catch (err) {
      broken = true;
      window.errors++;
      totals.errors++;
      if (firstErrors.length < 5) firstErrors.push((err as Error).message);
    } finally {
      inFlight--;
      window.invocations++;
      totals.invocations++;
      if (container) {
        // A container whose invocation failed is not reused: its connection may be gone.
        if (broken) retire(container);
        else {
          container.lastUsed = Date.now();
          idle.push(container);
        }
      }
    }
  };

  const running = new Set<Promise<void>>();
  const loop = async (): Promise<void> => {
    // One "caller" keeps invoking while the fleet needs its slot.
    while (Date.now() - started < durationMs && running.size <= target()) await invoke();
  };

  let second = 0;
  let nextSecondAt = started + 1000;
  while (Date.now() - started < durationMs || running.size > 0) {
    const now = Date.now();
    if (now - started < durationMs) {
      const want = target();
      while (running.size < want) {
        const p: Promise<void> = loop().finally(() => running.delete(p));
        running.add(p);
      }
    }
    // Reap containers idle too long (the oldest sit at the bottom).
    while (idle.length > 0 && now - idle[0]!.lastUsed > o.idleReapMs) retire(idle.shift()!);
    if (now >= nextSecondAt) {
      second++;
      nextSecondAt += 1000;
      const sorted = window.latencies.sort((a, b) => a - b);
      const pct = (q: number): number | null => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : null);
      await o.onSecond({
        second,
        targetConcurrency: target(),
        inFlight,
        containers,
        invocations: window.invocations,
        coldStarts: window.coldStarts,
        errors: window.errors,
        latencyP50Ms: pct(0.5),
        latencyP99Ms: pct(0.99),
      });
      window = { invocations: 0, coldStarts: 0, errors: 0, latencies: [] };
    }
    await new Promise((r) => setTimeout(r, TICK_MS));
  }
  for (const c of idle.splice(0)) retire(c);
  return { ...totals, firstErrors };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`invocation timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
