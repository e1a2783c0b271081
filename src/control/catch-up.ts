// Bringing a failover's target to everything storage holds before it may
// be promoted: it replays what it received, and WAL it never received (the
// old writer crashed, or its sender to the target was cut off) is copied
// from the fenced nodes' durable point into its pg_wal and replayed.
import path from 'node:path';
import type pg from 'pg';
import type { LocalInstance } from '../compute/local-instance.js';
import { formatLsn, parseLsn } from '../pgwire/replication.js';
import { lastRecordEnd } from '../pgwire/wal-records.js';
import { withInstanceSession } from './instance-session.js';
import type { StorageFleet } from './storage-fleet.js';

export class CatchUpError extends Error {
  override readonly name = 'CatchUpError';
}

export interface CatchUpDeps {
  readonly superuser: string;
  /** How long replay may take. */
  readonly timeoutMs: number;
  readonly event: (instanceId: string, kind: string, message: string) => void;
  /** True once the supervisor shuts down: nothing is restarted then. */
  readonly shuttingDown: () => boolean;
}

const replayedOn = async (client: pg.Client): Promise<bigint> => parseLsn((await client.query<{ lsn: string }>('SELECT pg_last_wal_replay_lsn()::text AS lsn')).rows[0]!.lsn);

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
  const replayed = await withInstanceSession(target, deps.superuser, replayedOn);
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
    await target.start();
  } catch (err) {
    // It stays a reader: back into its restart loop.
    if (!deps.shuttingDown()) target.restartLater(`restart after catching up from storage failed: ${(err as Error).message}`);
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
