// Clients that run the three workloads through Borealis's writer endpoint
// and record every operation (history.ts). Each client reconnects when its
// connection dies; every loop is bounded by a deadline and a count.
import pg from 'pg';
import type { History, Op, Outcome, WriterTag } from './history.js';

export { seededRandom } from '../helpers/random.js';

export const LIST_KEYS = 8;
export const REGISTER_KEYS = 8;
export const BANK_ACCOUNTS = 5;
export const BANK_INITIAL = 100;

export interface WorkloadOptions {
  readonly connection: pg.ClientConfig;
  readonly clients: number;
  /** Every client stops at this time (Date.now()) or after opsPerClientMax operations. */
  readonly deadline: number;
  readonly opsPerClientMax: number;
  /** A seeded random source, so a run can be replayed. */
  readonly random: () => number;
  /** Longest one operation may take before it counts as unknown (and its connection is dropped). */
  readonly opTimeoutMs: number;
  /** Asked before each operation: true ends the client early. */
  readonly stop?: () => boolean;
}

/** SQLSTATEs after which a write certainly did not happen. */
const DEFINITE_FAILURES = new Set(['25006', '53300', '57P03', '40001', '40P01', '28P01', '3D000', '42P01', '08P01']);

export async function setUpSchema(connection: pg.ClientConfig): Promise<void> {
  const c = new pg.Client(connection);
  await c.connect();
  try {
    await c.query('CREATE TABLE IF NOT EXISTS rel_list (k int NOT NULL, v int PRIMARY KEY)');
    await c.query('CREATE TABLE IF NOT EXISTS rel_register (k int PRIMARY KEY, v int NOT NULL)');
    await c.query('CREATE TABLE IF NOT EXISTS rel_bank (id int PRIMARY KEY, balance int NOT NULL)');
    await c.query('TRUNCATE rel_list, rel_register, rel_bank');
    await c.query(`INSERT INTO rel_bank SELECT g, ${BANK_INITIAL} FROM generate_series(0, ${BANK_ACCOUNTS - 1}) g`);
  } finally {
    await c.end();
  }
}

/** What each write reports about the writer that committed it. */
const WRITER_TAG_SQL = "current_setting('borealis.term', true) AS term, pg_postmaster_start_time()::text AS incarnation, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS timeline";

interface TagRow {
  term: string | null;
  incarnation: string;
  timeline: string;
}

const tagOf = (r: TagRow): WriterTag => ({ term: r.term ?? '', incarnation: r.incarnation, timeline: r.timeline });

export class Recorder {
  readonly ops: Op[] = [];
  readonly startedAt = Date.now();
  private nextValue = 1;

  now(): number {
    return Date.now() - this.startedAt;
  }

  uniqueValue(): number {
    return this.nextValue++;
  }

  get history(): History {
    return this.ops;
  }
}

function outcomeOf(err: unknown, isWrite: boolean): { outcome: Outcome; error: string } {
  const e = err as { code?: string; message?: string };
  const error = `${e.code ?? 'no-sqlstate'}: ${e.message ?? String(err)}`;
  if (!isWrite) return { outcome: 'fail', error };
  return { outcome: e.code && DEFINITE_FAILURES.has(e.code) ? 'fail' : 'unknown', error };
}

/**
 * One client's loop: even-numbered clients run the mixed workload, odd ones
 * only read, so that reads are measured apart from writes that stall.
 */
async function runClient(process: number, opts: WorkloadOptions, rec: Recorder): Promise<void> {
  const readsOnly = process % 2 === 1;
  let client: pg.Client | null = null;
  for (let n = 0; n < opts.opsPerClientMax && Date.now() < opts.deadline && !opts.stop?.(); n++) {
    if (!client) {
      const c = new pg.Client({ ...opts.connection, connectionTimeoutMillis: opts.opTimeoutMs, query_timeout: opts.opTimeoutMs });
      c.on('error', () => undefined);
      try {
        await c.connect();
        client = c;
      } catch {
        await c.end().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
    }
    const dice = opts.random();
    // Reads only: list reads, register reads, bank reads.
    const ok = await step(client, process, readsOnly ? [0.3, 0.65, 0.9][Math.floor(dice * 3)]! + 0.01 : dice, opts, rec);
    if (!ok) {
      // Whatever state this session is in, a fresh one is simpler.
      await client.end().catch(() => undefined);
      client = null;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await client?.end().catch(() => undefined);
}

/** Runs one operation and records it; false when the connection should be dropped. */
async function step(c: pg.Client, process: number, dice: number, opts: WorkloadOptions, rec: Recorder): Promise<boolean> {
  const invokeMs = rec.now();
  const pick = (n: number): number => Math.floor(opts.random() * n);
  if (dice < 0.3) {
    const key = pick(LIST_KEYS);
    const value = rec.uniqueValue();
    try {
      const r = await c.query<TagRow>(`INSERT INTO rel_list (k, v) VALUES ($1, $2) RETURNING ${WRITER_TAG_SQL}`, [key, value]);
      rec.ops.push({ f: 'append', process, key, value, invokeMs, completeMs: rec.now(), outcome: 'ok', writer: tagOf(r.rows[0]!) });
      return true;
    } catch (err) {
      rec.ops.push({ f: 'append', process, key, value, invokeMs, completeMs: rec.now(), ...outcomeOf(err, true) });
      return false;
    }
  }
  if (dice < 0.5) {
    const key = pick(LIST_KEYS);
    try {
      const r = await c.query<{ v: number }>('SELECT v FROM rel_list WHERE k = $1 ORDER BY v', [key]);
      rec.ops.push({ f: 'read-list', process, key, values: r.rows.map((x) => x.v), invokeMs, completeMs: rec.now(), outcome: 'ok' });
      return true;
    } catch (err) {
      rec.ops.push({ f: 'read-list', process, key, invokeMs, completeMs: rec.now(), ...outcomeOf(err, false) });
      return false;
    }
  }
  if (dice < 0.65) {
    const key = pick(REGISTER_KEYS);
    const value = rec.uniqueValue();
    try {
      const r = await c.query<TagRow>(`INSERT INTO rel_register (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v RETURNING ${WRITER_TAG_SQL}`, [key, value]);
      rec.ops.push({ f: 'write', process, key, value, invokeMs, completeMs: rec.now(), outcome: 'ok', writer: tagOf(r.rows[0]!) });
      return true;
    } catch (err) {
      rec.ops.push({ f: 'write', process, key, value, invokeMs, completeMs: rec.now(), ...outcomeOf(err, true) });
      return false;
    }
  }
  if (dice < 0.75) {
    const key = pick(REGISTER_KEYS);
    try {
      const r = await c.query<{ v: number }>('SELECT v FROM rel_register WHERE k = $1', [key]);
      rec.ops.push({ f: 'read', process, key, value: r.rows[0]?.v ?? null, invokeMs, completeMs: rec.now(), outcome: 'ok' });
      return true;
    } catch (err) {
      rec.ops.push({ f: 'read', process, key, invokeMs, completeMs: rec.now(), ...outcomeOf(err, false) });
      return false;
    }
  }
  if (dice < 0.9) {
    const from = pick(BANK_ACCOUNTS);
    const to = (from + 1 + pick(BANK_ACCOUNTS - 1)) % BANK_ACCOUNTS;
    const amount = 1 + pick(10);
    let committing = false;
    try {
      await c.query('BEGIN');
      const debit = await c.query('UPDATE rel_bank SET balance = balance - $2 WHERE id = $1 AND balance >= $2', [from, amount]);
      if (debit.rowCount !== 1) {
        await c.query('ROLLBACK');
        rec.ops.push({ f: 'transfer', process, from, to, amount, invokeMs, completeMs: rec.now(), outcome: 'fail', error: 'insufficient funds' });
        return true;
      }
      await c.query('UPDATE rel_bank SET balance = balance + $2 WHERE id = $1', [to, amount]);
      const tag = await c.query<TagRow>(`SELECT ${WRITER_TAG_SQL}`);
      committing = true;
      await c.query('COMMIT');
      rec.ops.push({ f: 'transfer', process, from, to, amount, invokeMs, completeMs: rec.now(), outcome: 'ok', writer: tagOf(tag.rows[0]!) });
      return true;
    } catch (err) {
      // Before COMMIT was sent the transaction certainly did not commit.
      const o = committing ? outcomeOf(err, true) : { outcome: 'fail' as const, error: (err as Error).message };
      rec.ops.push({ f: 'transfer', process, from, to, amount, invokeMs, completeMs: rec.now(), ...o });
      return false;
    }
  }
  try {
    const r = await c.query<{ balance: number }>('SELECT balance FROM rel_bank ORDER BY id');
    rec.ops.push({ f: 'read-bank', process, balances: r.rows.map((x) => x.balance), invokeMs, completeMs: rec.now(), outcome: 'ok' });
    return true;
  } catch (err) {
    rec.ops.push({ f: 'read-bank', process, invokeMs, completeMs: rec.now(), ...outcomeOf(err, false) });
    return false;
  }
}

export async function runWorkload(opts: WorkloadOptions, rec: Recorder): Promise<void> {
  await Promise.all(Array.from({ length: opts.clients }, (_, i) => runClient(i, opts, rec)));
}

/**
 * After the faults are healed: waits (bounded) until a write succeeds, then
 * reads every list, register and the bank once, into the history.
 */
export async function finalReads(connection: pg.ClientConfig, rec: Recorder, deadline: number): Promise<boolean> {
  for (;;) {
    const c = new pg.Client({ ...connection, connectionTimeoutMillis: 5_000, query_timeout: 10_000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('INSERT INTO rel_list (k, v) VALUES (-1, $1)', [-rec.uniqueValue()]);
      const process = -1;
      for (let key = 0; key < LIST_KEYS; key++) {
        const invokeMs = rec.now();
        const r = await c.query<{ v: number }>('SELECT v FROM rel_list WHERE k = $1 ORDER BY v', [key]);
        rec.ops.push({ f: 'read-list', process, key, values: r.rows.map((x) => x.v), invokeMs, completeMs: rec.now(), outcome: 'ok' });
      }
      for (let key = 0; key < REGISTER_KEYS; key++) {
        const invokeMs = rec.now();
        const r = await c.query<{ v: number }>('SELECT v FROM rel_register WHERE k = $1', [key]);
        rec.ops.push({ f: 'read', process, key, value: r.rows[0]?.v ?? null, invokeMs, completeMs: rec.now(), outcome: 'ok' });
      }
      const invokeMs = rec.now();
      const bank = await c.query<{ balance: number }>('SELECT balance FROM rel_bank ORDER BY id');
      rec.ops.push({ f: 'read-bank', process, balances: bank.rows.map((x) => x.balance), invokeMs, completeMs: rec.now(), outcome: 'ok' });
      await c.end();
      return true;
    } catch {
      await c.end().catch(() => undefined);
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** The longest stretch within [fromMs, toMs] with no successful operation of the kind, and when it ended (ms). */
export function longestGap(history: History, kind: 'write' | 'read', fromMs: number, toMs: number): { gapMs: number; endMs: number } {
  const times = history
    .filter((op) => op.outcome === 'ok' && (kind === 'write' ? op.f === 'append' || op.f === 'write' || op.f === 'transfer' : op.f === 'read-list' || op.f === 'read' || op.f === 'read-bank'))
    .map((op) => op.completeMs)
    .filter((t) => t >= fromMs && t <= toMs)
    .sort((a, b) => a - b);
  let gap = { gapMs: 0, endMs: fromMs };
  let last = fromMs;
  for (const t of times) {
    if (t - last > gap.gapMs) gap = { gapMs: t - last, endMs: t };
    last = t;
  }
  if (toMs - last > gap.gapMs) gap = { gapMs: toMs - last, endMs: toMs };
  return gap;
}
