// The storage quorum's decisions, pure: which term a node accepts, which
// writer it may stream from, when a commit is durable, and where a rebuilt
// writer must start. docs/storage-protocol.md describes the protocol; the
// real node, the control plane and the seeded simulation all call these.

export const STORAGE_NODES = 6;
/** A commit is acknowledged once this many nodes have flushed it. */
export const WRITE_QUORUM = 4;
/** Any this many nodes include at least one of every write quorum. */
export const READ_QUORUM = STORAGE_NODES - WRITE_QUORUM + 1;

export interface WriterRef {
  readonly host: string;
  readonly port: number;
}

export interface NodeTerm {
  readonly term: number;
  readonly writer: WriterRef | null;
  /** PostgreSQL system identifier of the cluster, fixed at first contact. */
  readonly systemId: string | null;
}

export type Decision<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

const sameWriter = (a: WriterRef | null, b: WriterRef | null): boolean => a?.host === b?.host && a?.port === b?.port;

/**
 * A request to follow `writer` in `term`. Terms only grow; one term has one
 * writer. Accepting a higher term makes the node drop the old writer before
 * it answers, which is what fences it.
 */
export function acceptTerm(node: NodeTerm, term: number, writer: WriterRef): Decision<NodeTerm> {
  if (!Number.isInteger(term) || term < 1) return { ok: false, reason: `term ${term} is not a positive integer` };
  if (term < node.term) return { ok: false, reason: `term ${term} is older than this node's term ${node.term}` };
  if (term === node.term && node.writer && !sameWriter(node.writer, writer)) {
    return { ok: false, reason: `term ${term} already has writer ${node.writer.host}:${node.writer.port}` };
  }
  return { ok: true, value: { ...node, term, writer } };
}

/** What a node learns from a writer before it streams: its term and system. */
export function acceptWriter(node: NodeTerm, writerTerm: number, systemId: string): Decision<NodeTerm> {
  if (node.systemId !== null && node.systemId !== systemId) return { ok: false, reason: `writer belongs to system ${systemId}, this node to ${node.systemId}` };
  if (writerTerm < node.term) return { ok: false, reason: `writer runs in term ${writerTerm}, older than this node's term ${node.term}` };
  if (writerTerm > node.term) return { ok: false, reason: `writer runs in term ${writerTerm}, which this node has not been given` };
  return { ok: true, value: { ...node, systemId } };
}

/** A commit at `lsn` is durable once WRITE_QUORUM nodes report flushing past it. */
export function isDurable(flushes: readonly bigint[], lsn: bigint): boolean {
  return flushes.filter((f) => f >= lsn).length >= WRITE_QUORUM;
}

/** The position a writer may acknowledge: the WRITE_QUORUM-th highest flush. */
export function durablePosition(flushes: readonly bigint[]): bigint {
  if (flushes.length < WRITE_QUORUM) return 0n;
  const sorted = [...flushes].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
  return sorted[WRITE_QUORUM - 1]!;
}

export interface NodeReport {
  readonly node: string;
  readonly term: number;
  readonly timeline: number;
  readonly flushLsn: bigint;
}

export interface RecoveryPoint {
  readonly source: string;
  readonly timeline: number;
  readonly lsn: bigint;
}

/** A timeline's history: each ancestor timeline and the position where it ended. */
export type TimelineHistory = ReadonlyMap<number, bigint>;

/**
 * The position up to which timeline `b`'s WAL equals timeline `a`'s: the end
 * of their latest common ancestor, as the two histories record it.
 */
export function divergence(a: number, historyA: TimelineHistory, b: number, historyB: TimelineHistory): bigint | null {
  if (a === b) return null;
  const endA = chainEnds(a, historyA);
  const endB = chainEnds(b, historyB);
  let best = 0n;
  for (const [c, ea] of endA) {
    const eb = endB.get(c);
    if (eb === undefined) continue;
    const end = ea === null ? eb : eb === null ? ea : ea < eb ? ea : eb;
    if (end !== null && end > best) best = end;
  }
  return best;
}

/**
 * Each timeline of a chain with the position where the chain leaves it
 * (null: never, the chain's own timeline). An ancestor's end is capped by
 * every later one's, so a history that switched early is read correctly.
 */
function chainEnds(timeline: number, history: TimelineHistory): Map<number, bigint | null> {
  const out = new Map<number, bigint | null>([[timeline, null]]);
  let cap: bigint | null = null;
  for (const t of [...history.keys()].sort((x, y) => y - x)) {
    const end = history.get(t)!;
    cap = cap === null || end < cap ? end : cap;
    out.set(t, cap);
  }
  return out;
}

/** The timeline a position belongs to on `timeline`'s chain (PostgreSQL's tliOfPointInHistory). */
export function timelineOfPoint(lsn: bigint, timeline: number, history: TimelineHistory): number {
  for (const t of [...history.keys()].sort((x, y) => x - y)) if (lsn < history.get(t)!) return t;
  return timeline;
}

/**
 * Where a writer rebuilt in `term` must start. At least `readQuorum` nodes
 * must have accepted `term` (and so stopped acknowledging any older writer);
 * every acknowledged commit is on one of them. The newest timeline among them
 * holds every acknowledged commit; a node's WAL counts up to where its
 * timeline leaves the newest one's history (WAL beyond that was never
 * acknowledged). The highest such position wins; ties go to the newer timeline.
 */
export function recoveryPoint(reports: readonly NodeReport[], term: number, historyOf: (timeline: number) => TimelineHistory, readQuorum = READ_QUORUM): Decision<RecoveryPoint> {
  const fenced = reports.filter((r) => r.term === term);
  if (fenced.length < readQuorum) return { ok: false, reason: `only ${fenced.length} of ${STORAGE_NODES} storage nodes accepted term ${term}; ${readQuorum} are needed` };
  const newest = Math.max(...fenced.map((r) => r.timeline));
  const newestHistory = historyOf(newest);
  const effective = (r: NodeReport): bigint => {
    const end = divergence(newest, newestHistory, r.timeline, historyOf(r.timeline));
    return end !== null && end < r.flushLsn ? end : r.flushLsn;
  };
  let best = fenced[0]!;
  for (const r of fenced) {
    const e = effective(r);
    const b = effective(best);
    if (e > b || (e === b && r.timeline > best.timeline)) best = r;
  }
  // The position may lie before the source's own timeline began (it left the
  // newest chain earlier): recovery then follows the timeline it lies on.
  const lsn = effective(best);
  return { ok: true, value: { source: best.node, timeline: timelineOfPoint(lsn, best.timeline, historyOf(best.timeline)), lsn } };
}
