// Where a writer that lost its data directory comes from, pure. Once a
// cluster has a system identifier (recorded in the state store at the
// writer's first start), its data comes only from its storage quorum:
// never from initdb, never from a node that holds no WAL of that system.
// With fewer than a read quorum of such nodes the writer waits.
import { READ_QUORUM, STORAGE_NODES } from '../storage/protocol.js';

export interface NodeSystemReport {
  readonly name: string;
  /** The system the node learned at first contact; null for a fresh or wiped node. */
  readonly systemId: string | null;
  /** The node's durable end of WAL; null when it holds none. */
  readonly flushLsn: bigint | null;
}

export type RebuildSource =
  /** A cluster that never had a writer with data: a fresh initdb is right. */
  | { readonly kind: 'initdb' }
  | { readonly kind: 'wait'; readonly reason: string }
  | { readonly kind: 'restore'; readonly systemId: string; readonly nodes: readonly string[] };

/**
 * `recorded` is the system the control plane recorded (null if it never
 * saw one); `backups` the systems of the base backups reachable nodes hold.
 * Without a recorded system, one that nodes know still counts: initdb only
 * for a cluster no node and no backup has heard of.
 */
export function rebuildSource(recorded: string | null, nodes: readonly NodeSystemReport[], backups: readonly string[], readQuorum = READ_QUORUM): RebuildSource {
  const system = recorded ?? nodes.find((n) => n.systemId !== null)?.systemId ?? backups[0] ?? null;
  if (system === null) return { kind: 'initdb' };
  const knowing = nodes.filter((n) => n.systemId === system && n.flushLsn !== null && n.flushLsn > 0n).map((n) => n.name);
  if (knowing.length < readQuorum) {
    return { kind: 'wait', reason: `only ${knowing.length} of ${STORAGE_NODES} storage nodes hold WAL of system ${system}; ${readQuorum} are needed to rebuild the writer` };
  }
  if (!backups.includes(system)) return { kind: 'wait', reason: `no reachable storage node holds a base backup of system ${system}` };
  return { kind: 'restore', systemId: system, nodes: knowing };
}

/** Per node, per timeline: the highest flush position the control plane has seen the node report. */
export type FlushMarks = ReadonlyMap<string, ReadonlyMap<number, bigint>>;

export interface NodePosition {
  readonly name: string;
  readonly timeline: number;
  readonly flushLsn: bigint | null;
}

/**
 * Nodes that lost WAL they once reported durable (a disk put back from an
 * old copy, a partial refill): each with why. Such a node may have been one
 * of the four that acknowledged a commit it no longer holds, so it must not
 * count toward a read quorum until it is past its mark again. Nodes only
 * move forward along timelines, so a node on an older timeline than one it
 * reported before has regressed too.
 */
export function regressedNodes(nodes: readonly NodePosition[], marks: FlushMarks): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of nodes) {
    const mine = marks.get(n.name);
    if (!mine || n.flushLsn === null) continue;
    for (const [timeline, mark] of mine) {
      if (timeline > n.timeline) out.set(n.name, `it is on timeline ${n.timeline} but reported timeline ${timeline} before`);
      else if (timeline === n.timeline && n.flushLsn < mark) out.set(n.name, `it holds WAL to ${n.flushLsn.toString(16)} of the ${mark.toString(16)} it reported on timeline ${timeline}`);
    }
  }
  return out;
}
