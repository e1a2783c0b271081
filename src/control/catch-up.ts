// Bringing a failover's target to everything storage holds before it may
// be promoted: it replays what it received, and WAL it never received (the
// old writer crashed, or its sender to the target was cut off) is copied
// from the fenced nodes' durable point into its pg_wal and replayed.
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import type { LocalInstance } from '../compute/local-instance.js';
import { formatLsn, parseLsn, parseTimelineHistory } from '../pgwire/replication.js';
import { lastRecordEnd } from '../pgwire/wal-records.js';
import { OFF_TIMELINE_STARTUP, timelinePlace } from './failover-steps.js';
import { CatchUpError } from './failover.js';
import { withInstanceSession } from './instance-session.js';
import type { StorageFleet } from './storage-fleet.js';

export interface CatchUpDeps {
  readonly superuser: string;
  /** How long replay may take. */
  readonly timeoutMs: number;
  readonly event: (instanceId: string, kind: string, message: string) => void;
  /** True once the supervisor shuts down: nothing is restarted then. */
  readonly shuttingDown: () => boolean;
  /** Sets (or clears, with null) the recovery target timeline the target's next start uses. */
  readonly pinTimeline: (instanceId: string, timeline: number | null) => void;
}

/** The end of a log file (its last 8 KiB): PostgreSQL's FATAL at startup comes a few lines before its last. */
function logTail(file: string): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(size, 8192));
      fs.readSync(fd, buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

const replayedOn = async (client: pg.Client): Promise<bigint> => parseLsn((await client.query<{ lsn: string }>('SELECT pg_last_wal_replay_lsn()::text AS lsn')).rows[0]!.lsn);

/**
 * Where a standby's replay stands, and the lowest timeline it can be on:
 * its control file's minimum-recovery-point and restartpoint timelines
 * (replay only ever moves to newer timelines).
 */
const replayState = async (client: pg.Client): Promise<{ replayed: bigint; floor: number }> => {
  const row = (
    await client.query<{ lsn: string; floor: number }>(
      'SELECT pg_last_wal_replay_lsn()::text AS lsn, greatest(r.min_recovery_end_timeline, c.timeline_id)::int AS floor FROM pg_control_recovery() r, pg_control_checkpoint() c',
    )
  ).rows[0]!;
  return { replayed: parseLsn(row.lsn), floor: row.floor };
};

/** Waits until a standby has replayed everything it received and nothing more arrives. */
export async function waitReplayed(standby: LocalInstance, deps: CatchUpDeps): Promise<void> {
  await withInstanceSession(standby, deps.superuser, async (client) => {
    const deadline = Date.now() + deps.timeoutMs;
    let last = '';
    for (;;) {
      const row = (await client.query<{ received: string | null; replayed: string | null }>('SELECT pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed')).rows[0]!;
      const now = `${row.received}/${row.replayed}`;
      if (row.replayed !== null && (row.received === null || parseLsn(row.replayed) >= parseLsn(row.received)) && now === last) return;
      if (Date.now() > deadline) throw new CatchUpError(`${standby.id} did not finish replaying in time`);
      last = now;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

/**
 * A writer that stopped cleanly sent its standbys all of its WAL; one that
 * crashed, or whose stop timed out, may have had commits acknowledged by
 * storage that the reader never received. Those are copied from storage
 * into the reader's pg_wal and replayed before it may be promoted.
 */
export async function catchUpFromStorage(target: LocalInstance, fleet: StorageFleet, deps: CatchUpDeps): Promise<void> {
  const point = await fleet.durablePoint();
  const historyText = point.histories.get(point.timeline);
  const history = point.timeline === 1 || historyText === undefined ? [] : parseTimelineHistory(historyText);
  let { replayed, floor } = await withInstanceSession(target, deps.superuser, replayState);
  let place = timelinePlace(history, point.timeline, floor, replayed);
  if (place.kind === 'unknown') {
    // A restartpoint brings its control file up to where replay stands (timeline included), then look again.
    ({ replayed, floor } = await withInstanceSession(target, deps.superuser, async (client) => {
      await client.query('CHECKPOINT');
      return replayState(client);
    }));
    place = timelinePlace(history, point.timeline, floor, replayed);
  }
  if (place.kind !== 'on-chain') throw new CatchUpError(`${target.id} cannot be promoted: ${place.reason}; promoting it would risk losing acknowledged commits`, { offTimeline: true });
  if (replayed >= point.lsn) return;
  deps.event(target.id, 'catching-up', `replayed to ${formatLsn(replayed)}; copying WAL up to ${formatLsn(point.lsn)} from storage node ${point.source} before promotion`);
  await target.stop();
  let goal = point.lsn;
  try {
    const wal = await fleet.copyWalTo(path.join(target.server.options.dataDir, 'pg_wal'), point, replayed);
    // Storage's durable end may lie inside a record (a crash during a bulk
    // write): replay stops at the last whole record before it, found by
    // walking the record chain from where the target stood.
    const walk = lastRecordEnd(wal, replayed, point.lsn);
    if (walk.stop === 'limit' && walk.end < point.lsn) {
      goal = walk.end;
      deps.event(target.id, 'catching-up', `storage's durable end ${formatLsn(point.lsn)} lies inside a record; the last whole record before it ends at ${formatLsn(goal)} (${walk.records} records checked)`);
    }
    // Along the chain to the durable point, never to some other branch the standby saw.
    deps.pinTimeline(target.id, point.timeline);
    try {
      await target.start();
    } finally {
      deps.pinTimeline(target.id, null);
    }
  } catch (err) {
    const message = (err as Error).message;
    if (OFF_TIMELINE_STARTUP.test(message) || OFF_TIMELINE_STARTUP.test(logTail(target.server.options.logFile))) {
      throw new CatchUpError(`${target.id} cannot be promoted: it has replayed WAL off the history of timeline ${point.timeline} that storage's quorum holds (${message}); promoting it would lose acknowledged commits`, { offTimeline: true });
    }
    // It stays a reader: back into its restart loop.
    if (!deps.shuttingDown()) target.restartLater(`restart after catching up from storage failed: ${message}`);
    throw err;
  }
  await withInstanceSession(target, deps.superuser, async (client) => {
    const deadline = Date.now() + deps.timeoutMs;
    for (;;) {
      const now = await replayedOn(client);
      if (now >= goal) return;
      // PostgreSQL refuses WAL that is not on its timeline's history: then it never gets there.
      if (Date.now() > deadline) throw new CatchUpError(`${target.id} replayed only to ${formatLsn(now)} of the ${formatLsn(point.lsn)} storage holds (timeline ${point.timeline}); promoting it would lose acknowledged commits`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });
}
