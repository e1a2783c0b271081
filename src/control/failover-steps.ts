// A failover's decisions, pure. The order is: stop the old writer, fence
// storage (a new term on a write quorum of nodes, naming the reader that is
// about to take over), find the durable point on the fenced nodes and bring
// the reader to it, and only then promote it. docs/storage-protocol.md
// describes the protocol; the supervisor runs the steps.
import type { InstanceState } from './model.js';
import { STORAGE_NODES, WRITE_QUORUM, type Decision } from '../storage/protocol.js';

/**
 * Storage is fenced for a new writer once WRITE_QUORUM nodes hold its term.
 * Three would already cut the old writer off (it can reach at most three of
 * its term, never four), but the new writer could not commit with fewer than
 * four: promoting it then would only trade one stalled writer for another,
 * so the failover waits instead.
 */
export function fenceVerdict(reportedTerms: readonly number[], term: number): Decision<number> {
  const accepted = reportedTerms.filter((t) => t === term).length;
  if (accepted < WRITE_QUORUM) return { ok: false, reason: `only ${accepted} of ${STORAGE_NODES} storage nodes accepted term ${term}; ${WRITE_QUORUM} are needed before a reader may be promoted` };
  return { ok: true, value: accepted };
}

export interface Candidate {
  readonly id: string;
  readonly promotionTier: number;
  readonly state: InstanceState;
  readonly capacityAcu: number;
}

/** Tiers whose readers keep the writer's capacity (Aurora's 0 and 1), and are resumed for a failover when paused. */
export const PROMOTION_TIER_RESUMED_MAX = 1;

/**
 * Readers in the order a failover picks them: promotion tier, then the
 * larger capacity, a running reader before a paused one. A reader of tier 0
 * or 1 that auto-paused is a candidate (it is resumed first); other paused or
 * broken readers are not.
 */
export function promotionOrder<C extends Candidate>(readers: readonly C[]): C[] {
  const eligible = (r: C): boolean => r.state === 'available' || (r.state === 'paused' && r.promotionTier <= PROMOTION_TIER_RESUMED_MAX);
  return readers
    .filter(eligible)
    .sort((x, y) => x.promotionTier - y.promotionTier || Number(x.state === 'paused') - Number(y.state === 'paused') || y.capacityAcu - x.capacityAcu);
}
