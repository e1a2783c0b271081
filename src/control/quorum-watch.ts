// Whether a cluster's writer can commit: it needs WRITE_QUORUM storage
// nodes streaming from it in the current term. Pure: the fleet's health
// loop feeds it a sample each round and records the events it returns.
import { WRITE_QUORUM } from '../storage/protocol.js';

export interface QuorumSample {
  /** Nodes streaming from the writer in the current term. */
  readonly streaming: number;
  /** The writer runs (not paused, stopped or failing over): only then do nodes stream. */
  readonly writerRunning: boolean;
  readonly atMs: number;
}

export interface QuorumState {
  readonly lost: boolean;
  /** Since when fewer than WRITE_QUORUM nodes stream, while the writer runs. */
  readonly belowSinceMs: number | null;
  readonly streaming: number;
}

export const QUORUM_START: QuorumState = { lost: false, belowSinceMs: null, streaming: 0 };

/**
 * The next state and the event to record, if any. The quorum counts as lost
 * once fewer than WRITE_QUORUM nodes have streamed for `graceMs` while the
 * writer runs (nodes reconnect for a moment after every writer start); it is
 * back as soon as WRITE_QUORUM stream again. While the writer does not run
 * nothing changes: nodes cannot stream from a paused writer.
 */
export function nextQuorumState(prev: QuorumState, sample: QuorumSample, graceMs: number): { state: QuorumState; event: 'write-quorum-lost' | 'write-quorum-restored' | null } {
  if (!sample.writerRunning) return { state: { ...prev, belowSinceMs: null }, event: null };
  if (sample.streaming >= WRITE_QUORUM) {
    return { state: { lost: false, belowSinceMs: null, streaming: sample.streaming }, event: prev.lost ? 'write-quorum-restored' : null };
  }
  const belowSinceMs = prev.belowSinceMs ?? sample.atMs;
  const lost = prev.lost || sample.atMs - belowSinceMs >= graceMs;
  return { state: { lost, belowSinceMs, streaming: sample.streaming }, event: lost && !prev.lost ? 'write-quorum-lost' : null };
}
