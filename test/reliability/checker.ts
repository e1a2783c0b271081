// Checks a history for what a database that keeps its promises never
// shows. Pure: a history in, anomalies out, each with the few operations
// that prove it (the smallest failing history), so a failure reads in one
// screen.
//
// - lost write: an acknowledged write missing from a read that began after
//   it was acknowledged (list-append, registers), or from the final state;
// - phantom write: a value in the data whose write certainly failed;
// - value never written: a value no operation wrote;
// - stale read: a read that misses what an earlier completed read saw;
// - bank: a read whose balances do not add up to the total, or a negative
//   balance;
// - two writers: two writer incarnations whose acknowledged writes overlap
//   in time (one acknowledged a commit after the other had already
//   acknowledged a later one), i.e. two primaries committing at once.
import type { AppendOp, History, Op, ReadBankOp, ReadListOp, ReadRegisterOp, WriteRegisterOp } from './history.js';

export type AnomalyKind = 'lost-write' | 'phantom-write' | 'never-written' | 'stale-read' | 'duplicate' | 'bank-total' | 'bank-negative' | 'two-writers';

export interface Anomaly {
  readonly kind: AnomalyKind;
  readonly message: string;
  /** The operations that show it. */
  readonly ops: readonly Op[];
}

export interface CheckResult {
  readonly anomalies: readonly Anomaly[];
  readonly counts: { readonly ok: number; readonly fail: number; readonly unknown: number; readonly acknowledgedWrites: number };
}

const ANOMALIES_PER_KIND_MAX = 5;

class Findings {
  readonly all: Anomaly[] = [];
  private readonly perKind = new Map<AnomalyKind, number>();
  add(kind: AnomalyKind, message: string, ops: readonly Op[]): void {
    const n = this.perKind.get(kind) ?? 0;
    this.perKind.set(kind, n + 1);
    if (n < ANOMALIES_PER_KIND_MAX) this.all.push({ kind, message, ops });
  }
}

export function checkHistory(history: History, opts: { readonly bankTotal?: number } = {}): CheckResult {
  const found = new Findings();
  checkLists(history, found);
  checkRegisters(history, found);
  checkBank(history, opts.bankTotal, found);
  checkWriters(history, found);
  const counts = { ok: 0, fail: 0, unknown: 0, acknowledgedWrites: 0 };
  for (const op of history) {
    counts[op.outcome]++;
    if (op.outcome === 'ok' && (op.f === 'append' || op.f === 'write' || op.f === 'transfer')) counts.acknowledgedWrites++;
  }
  return { anomalies: found.all, counts };
}

function checkLists(history: History, found: Findings): void {
  const appends = new Map<number, AppendOp>();
  for (const op of history) if (op.f === 'append') appends.set(op.value, op);
  const reads = history.filter((op): op is ReadListOp & { values: readonly number[] } => op.f === 'read-list' && op.outcome === 'ok' && op.values !== undefined);
  for (const r of reads) {
    const seen = new Set<number>();
    for (const v of r.values) {
      if (seen.has(v)) found.add('duplicate', `list ${r.key}: value ${v} appears twice in one read`, [r, ...(appends.has(v) ? [appends.get(v)!] : [])]);
      seen.add(v);
      const w = appends.get(v);
      if (!w || w.key !== r.key) found.add('never-written', `list ${r.key}: read value ${v}, which no append to it wrote`, [r]);
      else if (w.outcome === 'fail') found.add('phantom-write', `list ${r.key}: value ${v} is present though its append failed (${w.error ?? 'no detail'})`, [w, r]);
      else if (w.invokeMs > r.completeMs) found.add('never-written', `list ${r.key}: read value ${v} before its append began`, [r, w]);
    }
    // Every append acknowledged before this read began must be in it.
    for (const w of appends.values()) {
      if (w.key === r.key && w.outcome === 'ok' && w.completeMs < r.invokeMs && !seen.has(w.value)) {
        found.add('lost-write', `list ${r.key}: acknowledged append of ${w.value} (done at ${w.completeMs} ms) is missing from a read begun at ${r.invokeMs} ms`, [w, r]);
      }
    }
  }
  // A read that began after another read completed sees at least what it saw.
  const byKey = new Map<number, Array<ReadListOp & { values: readonly number[] }>>();
  for (const r of reads) {
    const list = byKey.get(r.key) ?? [];
    list.push(r);
    byKey.set(r.key, list);
  }
  for (const list of byKey.values()) {
    list.sort((a, b) => a.completeMs - b.completeMs);
    for (const later of list) {
      const laterSet = new Set(later.values);
      // The latest earlier read that finished before this one began is enough (the others are its prefixes).
      let earlier: (typeof list)[number] | undefined;
      for (const e of list) if (e.completeMs < later.invokeMs && (!earlier || e.completeMs > earlier.completeMs)) earlier = e;
      if (!earlier) continue;
      const missing = earlier.values.filter((v) => !laterSet.has(v));
      if (missing.length > 0) found.add('stale-read', `list ${later.key}: a read misses ${missing.slice(0, 5).join(', ')} that an earlier completed read saw`, [earlier, later]);
    }
  }
}

function checkRegisters(history: History, found: Findings): void {
  const writes = new Map<number, WriteRegisterOp>();
  for (const op of history) if (op.f === 'write') writes.set(op.value, op);
  const reads = history.filter((op): op is ReadRegisterOp => op.f === 'read' && op.outcome === 'ok' && op.value !== undefined);
  for (const r of reads) {
    if (r.value === null || r.value === undefined) {
      const w = [...writes.values()].find((x) => x.key === r.key && x.outcome === 'ok' && x.completeMs < r.invokeMs);
      if (w) found.add('lost-write', `register ${r.key}: read nothing after the acknowledged write of ${w.value}`, [w, r]);
      continue;
    }
    const w = writes.get(r.value);
    if (!w || w.key !== r.key) {
      found.add('never-written', `register ${r.key}: read ${r.value}, which no write to it wrote`, [r]);
      continue;
    }
    if (w.outcome === 'fail') found.add('phantom-write', `register ${r.key}: read ${r.value} though its write failed`, [w, r]);
    // Stale: some acknowledged write to this key began after w completed and was done before r began.
    const newer = [...writes.values()].find((x) => x.key === r.key && x.outcome === 'ok' && x.invokeMs > w.completeMs && x.completeMs < r.invokeMs);
    if (newer) found.add('lost-write', `register ${r.key}: read ${r.value}, overwritten by the acknowledged ${newer.value} before the read began`, [w, newer, r]);
  }
}

function checkBank(history: History, total: number | undefined, found: Findings): void {
  if (total === undefined) return;
  for (const op of history) {
    if (op.f !== 'read-bank' || op.outcome !== 'ok' || !op.balances) continue;
    const r = op as ReadBankOp & { balances: readonly number[] };
    const sum = r.balances.reduce((a, b) => a + b, 0);
    if (sum !== total) found.add('bank-total', `balances add up to ${sum}, not ${total}`, [r]);
    const negative = r.balances.findIndex((b) => b < 0);
    if (negative >= 0) found.add('bank-negative', `account ${negative} reads ${r.balances[negative]}`, [r]);
  }
}

function checkWriters(history: History, found: Findings): void {
  // Per incarnation: its acknowledged writes, earliest completion and latest invocation.
  const spans = new Map<string, { first: Op; last: Op }>();
  for (const op of history) {
    if (op.outcome !== 'ok' || !op.writer || !(op.f === 'append' || op.f === 'write' || op.f === 'transfer')) continue;
    const id = op.writer.incarnation;
    const s = spans.get(id);
    if (!s) spans.set(id, { first: op, last: op });
    else {
      if (op.completeMs < s.first.completeMs) s.first = op;
      if (op.invokeMs > s.last.invokeMs) s.last = op;
    }
  }
  const list = [...spans.entries()];
  for (let i = 0; i < list.length; i++) {
    for (let j = 0; j < list.length; j++) {
      if (i === j) continue;
      const [a, sa] = list[i]!;
      const [b, sb] = list[j]!;
      // a's first acknowledgement came back before b's last write was even sent, and b's first
      // before a's last: both committed within each other's span.
      if (sa.first.completeMs < sb.last.invokeMs && sb.first.completeMs < sa.last.invokeMs && a < b) {
        found.add('two-writers', `writers ${a} (term ${sa.first.writer!.term}) and ${b} (term ${sb.first.writer!.term}) both acknowledged commits in overlapping intervals`, [sa.first, sa.last, sb.first, sb.last]);
      }
    }
  }
}

/** One line per anomaly, with its operations, for a failure message. */
export function describeAnomalies(anomalies: readonly Anomaly[]): string {
  return anomalies.map((a) => `${a.kind}: ${a.message}\n${a.ops.map((o) => `    ${JSON.stringify(o)}`).join('\n')}`).join('\n');
}
