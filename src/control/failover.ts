// A failover's order, apart from how each step is carried out. The
// supervisor runs it against real instances, storage nodes and the state
// store; test/unit/failover-simulation.test.ts runs the same code against a
// seeded simulation of them that kills the supervisor between any two
// effects. docs/storage-protocol.md ("Failover") gives the reasons for the
// order: stop the old writer, fence storage on a write quorum, bring the
// target to storage's durable point, swap roles, and only then promote.
import { failoverRecovery, fenceVerdict, type FailoverRecovery, type FailoverStep } from './failover-steps.js';

/** A failover that could not go on (its target did not resume, storage could not be fenced); nothing was promoted. */
export class FailoverError extends Error {
  override readonly name = 'FailoverError';
}

/** Why a target can never be promoted: it is on a branch storage's quorum did not keep. */
export class CatchUpError extends Error {
  override readonly name = 'CatchUpError';
  /** The target is on a branch off storage's timeline chain: it can never be promoted, only cloned afresh. */
  readonly offTimeline: boolean;
  constructor(message: string, opts: { offTimeline?: boolean } = {}) {
    super(message);
    this.offTimeline = opts.offTimeline ?? false;
  }
}

export interface RecordedFailover {
  readonly oldWriter: string;
  readonly target: string;
  readonly step: string;
}

/** The failover's record in the state store. Each call is durable when it returns. */
export interface FailoverRecord {
  begin(oldWriter: string, target: string): void;
  advance(step: FailoverStep): void;
  /** The target becomes the writer of record and the old writer a reader, with the step 'swapped', in one transaction. */
  swap(oldWriter: string, target: string): void;
  current(): RecordedFailover | null;
  /** The writer of record. */
  writer(): string | null;
  end(): void;
}

/** The storage quorum's part. */
export interface FailoverStorage {
  /** Records a term above every term a node has seen, naming `target`, and sends it; the terms the nodes then report. */
  fence(target: string): Promise<{ term: number; terms: readonly number[] }>;
  /** Sends the current term again; the terms the nodes report. */
  terms(): Promise<readonly number[]>;
  /** The fenced term names the writer of record from now on (the target, after the swap). */
  endFence(): void;
  /** A new term for the writer of record, above any a fence may have left on the nodes. */
  raiseTerm(): Promise<void>;
}

/** What a failover acts on, for one cluster. */
export interface FailoverWorld {
  readonly record: FailoverRecord;
  /** Null for a cluster without storage nodes. */
  readonly storage: FailoverStorage | null;
  /** How long the fence may take to reach a write quorum. */
  readonly fenceTimeoutMs: number;
  /** Where the crash-point tests kill the supervisor: `failover:<step>`. */
  crashPoint(name: string): void;
  /** Resumes a paused target (a running one is left as it is); false if it did not come back in time. */
  resume(id: string): Promise<boolean>;
  /** Stops an instance and every process it started, verified gone. */
  stop(id: string): Promise<void>;
  /** Starts an instance as its recorded role says. */
  start(id: string): Promise<void>;
  /** Replays all the instance received, then all storage's quorum holds (throws CatchUpError when it cannot be). */
  catchUp(id: string): Promise<void>;
  /** Ends recovery: the instance takes writes, in the current term. */
  promote(id: string): Promise<void>;
  inRecovery(id: string): Promise<boolean>;
  /** The new writer is promoted: it takes its duties, other readers follow it; the old writer (null if unknown) is cloned afresh as a reader. */
  afterPromotion(writer: string, oldWriter: string | null): void;
  /** Clones an instance afresh from the writer once one runs. */
  reclone(id: string, why: string): void;
  /** Hands an instance to its restart loop. */
  restartLater(id: string, why: string): void;
  event(kind: string, message: string, instance?: string): void;
  shuttingDown(): boolean;
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** How often the fence is sent again to nodes that did not take it. */
const FENCE_RETRY_MS = 500;

/**
 * Fails `oldWriter` over to `target`, each step recorded as it finishes, so
 * that a supervisor killed between any two of them resumes or rolls back on
 * its next start (recoverFailover). Resolves with the time it took. A
 * failure before the role swap gives the old writer its writes back in a
 * term of its own; one after it leaves the target to finish its promotion.
 */
export async function runFailover(w: FailoverWorld, oldWriter: string, target: string): Promise<number> {
  const started = w.now();
  let swapped = false;
  /** The old writer was stopped (a failure before that leaves it running, untouched). */
  let stopped = false;
  w.record.begin(oldWriter, target);
  w.crashPoint('failover:begun');
  const step = (name: FailoverStep): void => {
    w.record.advance(name);
    w.crashPoint(`failover:${name}`);
  };
  w.event('failover-started', `failing over from ${oldWriter} to ${target}`);
  try {
    if (!(await w.resume(target))) throw new FailoverError(`${target} did not resume`);
    await w.stop(oldWriter);
    stopped = true;
    step('old-writer-stopped');
    if (w.storage) {
      const fence = await w.storage.fence(target);
      let verdict = fenceVerdict(fence.terms, fence.term);
      // A node that is slow to answer (or restarting) gets the same term again, until the deadline.
      const deadline = w.now() + w.fenceTimeoutMs;
      while (!verdict.ok && w.now() < deadline) {
        await w.sleep(FENCE_RETRY_MS);
        verdict = fenceVerdict(await w.storage.terms(), fence.term);
      }
      if (!verdict.ok) throw new FailoverError(verdict.reason);
      step('fenced');
      w.event('fenced', `storage term ${fence.term} accepted by ${verdict.value} storage nodes for ${target}; ${oldWriter} can no longer commit`);
    }
    await w.catchUp(target);
    step('caught-up');
    w.record.swap(oldWriter, target);
    swapped = true;
    w.crashPoint('failover:swapped');
    w.storage?.endFence();
    await w.promote(target);
    step('promoted');
    w.record.end();
    const tookMs = w.now() - started;
    w.event('failover', `${target} is the writer (failover took ${tookMs} ms); ${oldWriter} comes back as a reader`);
    w.afterPromotion(target, oldWriter);
    return tookMs;
  } catch (err) {
    const message = (err as Error).message;
    w.event('failover-failed', `failover to ${target} failed: ${message}`);
    if (err instanceof CatchUpError && err.offTimeline && !swapped && !w.shuttingDown()) {
      w.reclone(target, `${target} is on a branch storage did not keep; cloning it afresh from the writer`);
    }
    if (swapped) {
      // The target is the writer of record: its promotion is finished by its restart loop, or on the supervisor's next start.
      w.restartLater(target, `promotion failed: ${message}`);
    } else if (!stopped) {
      // Nothing was touched.
      w.record.end();
    } else if (!w.shuttingDown()) {
      // Nothing changed hands: the old writer takes writes again, in a
      // term of its own (the fence, if it got anywhere, names the target).
      void rollBack(w, oldWriter).catch((e: Error) => {
        if (!w.shuttingDown()) w.restartLater(oldWriter, `restart after a failed failover failed: ${e.message}`);
      });
    }
    throw err;
  }
}

/** A failover that did not swap roles is undone: a new term for the old writer, which starts again. */
async function rollBack(w: FailoverWorld, oldWriter: string): Promise<void> {
  await w.storage?.raiseTerm();
  w.record.end();
  await w.start(oldWriter);
}

/**
 * A failover the last supervisor left unfinished (killed between two
 * steps), found before the cluster's instances start. Rolled back when
 * roles were not swapped: the old writer gets a new term before it starts.
 * Rolled forward when they were: the target, now the writer of record, is
 * promoted once it runs (finishFailover). Null when none was recorded.
 */
export async function recoverFailover(w: FailoverWorld): Promise<FailoverRecovery | null> {
  const op = w.record.current();
  if (!op) return null;
  const plan = failoverRecovery(op.step, w.record.writer(), op.target);
  w.event(plan.kind === 'roll-back' ? 'failover-rolled-back' : 'failover-resumed', `an unfinished failover from ${op.oldWriter} to ${op.target} was found: ${plan.reason}`);
  if (plan.kind === 'roll-back') {
    await w.storage?.raiseTerm();
    w.record.end();
  }
  return plan;
}

/**
 * The writer of record runs and a recorded failover names it as the
 * target: the failover got as far as the role swap. It catches up from
 * storage (again: harmless if it had) and is promoted if it is still a
 * standby; then the failover is over. False if that failed (its restart
 * loop tries again).
 */
export async function finishFailover(w: FailoverWorld, writer: string): Promise<boolean> {
  try {
    if (await w.inRecovery(writer)) {
      await w.catchUp(writer);
      await w.promote(writer);
    }
    w.record.advance('promoted');
    w.record.end();
    w.event('failover', `${writer} is the writer (the failover was finished after a supervisor restart)`);
  } catch (err) {
    w.event('failover-failed', `finishing the failover to ${writer} failed (retried when it restarts): ${(err as Error).message}`);
    if (!w.shuttingDown()) w.restartLater(writer, `finishing its promotion failed: ${(err as Error).message}`);
    return false;
  }
  w.afterPromotion(writer, null);
  return true;
}
