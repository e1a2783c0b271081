// A failover's decisions, pure. The order is: stop the old writer, fence
// storage (a new term on a write quorum of nodes, naming the reader that is
// about to take over), find the durable point on the fenced nodes and bring
// the reader to it, and only then promote it. docs/storage-protocol.md
// describes the protocol; the supervisor runs the steps.
import type { InstanceState } from './model.js';
import { formatLsn, type TimelineSwitch } from '../pgwire/replication.js';
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

/**
 * A failover's steps, in order. Each is recorded in the state store as it
 * finishes ('swapped' in the same transaction as the role swap itself), so
 * that a supervisor killed between any two of them knows on its next start
 * how far the failover got.
 */
export const FAILOVER_STEPS = ['begun', 'old-writer-stopped', 'fenced', 'caught-up', 'swapped', 'promoted'] as const;
export type FailoverStep = (typeof FAILOVER_STEPS)[number];

export type FailoverRecovery =
  /** The old writer stays the writer, in a term above any the fence may have left on the nodes. */
  | { readonly kind: 'roll-back'; readonly reason: string }
  /** The target is the writer of record: it is promoted if it is not yet, after catching up from storage. */
  | { readonly kind: 'roll-forward'; readonly reason: string };

/**
 * What a restarted supervisor does with a failover it finds recorded. The
 * role swap decides, not the step: before it the target was never promoted
 * (promotion comes after the swap), so the old writer may take writes again
 * once it holds a newer term than the fence's; after it the target is the
 * one writer of record and the old writer must never run as one again (it
 * is re-cloned as a reader: see LocalInstance's standby check).
 */
export function failoverRecovery(step: string, writerOfRecord: string | null, target: string): FailoverRecovery {
  if (writerOfRecord === target) return { kind: 'roll-forward', reason: `the failover had swapped roles (last step ${step}): ${target} is the writer` };
  return { kind: 'roll-back', reason: `the failover had not swapped roles (last step ${step}): the old writer stays the writer, in a new term` };
}

export type TimelinePlace =
  /** On the durable point's timeline, or on an ancestor and not past where the chain left it: an LSN comparison decides the rest. */
  | { readonly kind: 'on-chain' }
  /** Past where the chain left the newest timeline it is known to be on: it may have followed the switch, or be on a branch storage did not keep. */
  | { readonly kind: 'unknown'; readonly reason: string }
  /** On a branch that is not on the chain at all: it can never be promoted without losing acknowledged commits. */
  | { readonly kind: 'off-chain'; readonly reason: string };

/**
 * Where a failover's target stands against the timeline chain that leads
 * to storage's durable point (promotion that compares LSNs alone promotes
 * a reader left on an abandoned branch and loses every commit of the
 * branch storage kept). `floor` is a lower bound of the timeline the target
 * replays (from its control file: the timelines of its minimum recovery
 * point and of its last restartpoint; replay only moves to newer
 * timelines); `history` is the durable point timeline's history: each
 * ancestor timeline with the LSN where the chain left it.
 */
export function timelinePlace(history: readonly TimelineSwitch[], pointTimeline: number, floor: number, replayed: bigint): TimelinePlace {
  if (floor === pointTimeline) return { kind: 'on-chain' };
  if (floor > pointTimeline) return { kind: 'off-chain', reason: `it replays timeline ${floor} or later, newer than timeline ${pointTimeline} that storage's quorum holds` };
  const left = history.find((h) => h.timeline === floor);
  if (!left) return { kind: 'off-chain', reason: `its timeline ${floor} is not in the history of timeline ${pointTimeline} that storage's quorum holds` };
  if (replayed <= left.switchLsn) return { kind: 'on-chain' };
  return { kind: 'unknown', reason: `it replayed to ${formatLsn(replayed)}, past ${formatLsn(left.switchLsn)} where the chain to timeline ${pointTimeline} left its timeline ${floor}, and its control file does not show it followed` };
}

/** PostgreSQL's refusals, at startup, of a recovery target timeline that does not contain what the server has already flushed. */
export const OFF_TIMELINE_STARTUP = /is not a child of this server's history|does not contain minimum recovery point|forked off current database system timeline/;
