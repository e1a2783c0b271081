// The failover's order (src/control/failover.ts), run against a seeded
// simulation of a cluster: a writer and readers that replicate from it, six
// storage nodes that follow the storage protocol's rules
// (src/storage/protocol.ts), a state store that survives the supervisor,
// and a supervisor that is killed at random between any two of its effects
// and started again, as `kill -9` and `borealis up` would. Writers keep
// writing throughout, a stopped writer sometimes keeps running unseen (its
// host cut off), nodes go down and come back.
//
// Checked in every run: every acknowledged commit is on the final writer
// (and on every writer promoted after it was acknowledged); acknowledged
// commits never go back to an older term (no two writers' acknowledged
// intervals overlap); no reader of record acknowledges anything; at the end
// exactly one instance takes writes, the writer of record, and it can
// commit.
//
// Two deliberately broken variants (no fence, with catch-up reading nodes
// as if they had been fenced; a catch-up that skips storage) must be
// caught: the checks can fail.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { finishFailover, recoverFailover, runFailover, CatchUpError, type FailoverWorld, type RecordedFailover } from '../../src/control/failover.js';
import { promotionOrder, timelinePlace } from '../../src/control/failover-steps.js';
import { rebuildSource } from '../../src/control/rebuild-steps.js';
import { STORAGE_NODES, acceptTerm, acceptWriter, durablePosition, recoveryPoint, timelineOfPoint, type NodeReport, type NodeTerm } from '../../src/storage/protocol.js';
import { seededRandom } from '../helpers/random.js';

type Mutation = 'none' | 'no-fence' | 'catch-up-skips-storage';

interface Instance {
  readonly id: string;
  /** Its WAL: record ids; a position is a length. */
  log: string[];
  /** The timeline its log ends on. */
  timeline: number;
  /** What its data directory is ('lost': deleted, with the disk). */
  data: 'primary' | 'standby' | 'lost';
  /** Its process. */
  mode: 'primary' | 'standby' | 'down';
  /** The storage term it runs with, as a primary. */
  term: number;
  /** How far this process has acknowledged commits. */
  acked: number;
  /** Cloned afresh from the writer at its next start. */
  reclone: boolean;
}

interface StorageNode {
  term: NodeTerm;
  log: string[];
  /** The timeline of the writer it last followed. */
  timeline: number;
  up: boolean;
}

interface Ack {
  readonly id: string;
  readonly lsn: number;
  readonly writer: string;
  readonly term: number;
}

/** The supervisor process: once killed, nothing it started has any effect. */
interface Incarnation {
  alive: boolean;
  /** StorageFleet's pending fence: kept in memory only. */
  fenceTarget: string | null;
}

class Crash extends Error {
  override readonly name = 'Crash';
}

const SYSTEM = 'sys';
const ref = (id: string): { host: string; port: number } => ({ host: id, port: 5432 });

interface RunResult {
  readonly violation: string | null;
  readonly acked: number;
  readonly crashes: number;
  readonly promoted: number;
  readonly rolledBack: number;
  readonly rebuilt: number;
}

async function run(seed: number, rounds: number, mutation: Mutation): Promise<RunResult> {
  const rnd = seededRandom(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  // SIM_TRACE=<seed> prints that run's events, to replay a failure.
  const trace = process.env.SIM_TRACE === String(seed) ? (m: string): void => console.log(m) : (): void => undefined;
  let violation: string | null = null;
  const fail = (m: string): void => {
    violation ??= `seed ${seed}: ${m}`;
  };

  // The state store, which survives the supervisor.
  const roles = new Map<string, 'writer' | 'reader'>([['i1', 'writer'], ['i2', 'reader'], ['i3', 'reader']]);
  let operation: RecordedFailover | null = null;
  let storageTerm = 1;

  const histories = new Map<number, Map<number, number>>([[1, new Map()]]);
  let timelines = 1;
  const historyOf = (t: number): Map<number, bigint> => new Map([...(histories.get(t) ?? new Map<number, number>())].map(([k, v]) => [k, BigInt(v)]));

  const instances = new Map<string, Instance>(
    [...roles].map(([id, role]) => [id, { id, log: [], timeline: 1, data: role === 'writer' ? 'primary' : 'standby', mode: role === 'writer' ? 'primary' : 'standby', term: 1, acked: 0, reclone: false }]),
  );
  const nodes: StorageNode[] = Array.from({ length: STORAGE_NODES }, () => ({ term: { term: 1, writer: ref('i1'), systemId: SYSTEM }, log: [], timeline: 1, up: true }));
  const acks: Ack[] = [];
  const ackedIds = new Set<string>();
  let seq = 0;
  let crashes = 0;
  let promoted = 0;
  let rolledBack = 0;
  let rebuilt = 0;
  /** Raised for the last part of a run, so that the cluster settles. */
  let crashChance = 0.03;
  let sup: Incarnation = { alive: true, fenceTarget: null };

  const writerOfRecord = (): string => [...roles].find(([, r]) => r === 'writer')![0];
  const inst = (id: string): Instance => instances.get(id)!;
  const commonPrefix = (a: readonly string[], b: readonly string[]): number => {
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return i;
  };

  /** Every acknowledged commit must be in a log that is promoted or served. */
  const checkHolds = (who: string, log: readonly string[]): void => {
    for (const a of acks) if (log[a.lsn - 1] !== a.id) fail(`${who} lacks ${a.id}, acknowledged at ${a.lsn} by ${a.writer} in term ${a.term}`);
  };

  const acknowledge = (p: Instance): void => {
    const flushes = nodes.filter((n) => n.up && n.term.term === p.term && n.term.writer?.host === p.id).map((n) => BigInt(commonPrefix(n.log, p.log)));
    const durable = Number(durablePosition(flushes));
    for (let lsn = p.acked + 1; lsn <= durable; lsn++) {
      const id = p.log[lsn - 1]!;
      if (ackedIds.has(id)) continue;
      const last = acks[acks.length - 1];
      if (last && last.term > p.term) fail(`${p.id} acknowledged ${id} in term ${p.term} after ${last.writer} acknowledged in term ${last.term}`);
      if (last && last.term === p.term && last.writer !== p.id) fail(`${p.id} and ${last.writer} both acknowledged commits in term ${p.term}`);
      if (roles.get(p.id) !== 'writer') fail(`${p.id}, a reader of record, acknowledged ${id}`);
      acks.push({ id, lsn, writer: p.id, term: p.term });
      ackedIds.add(id);
      trace(`${p.id} (term ${p.term}) acknowledges ${id} at ${lsn}`);
    }
    p.acked = Math.max(p.acked, durable);
  };

  /** What goes on while the supervisor works: writes, replication, node faults. */
  const background = (): void => {
    const roll = rnd();
    const primaries = [...instances.values()].filter((i) => i.mode === 'primary');
    if (roll < 0.3 && primaries.length > 0) {
      const p = pick(primaries);
      p.log.push(`${p.id}.t${p.term}.${++seq}`);
    } else if (roll < 0.65) {
      // A node pulls from the writer its term names, if that writer runs in the same term.
      const n = pick(nodes);
      const w = n.term.writer ? instances.get(n.term.writer.host) : undefined;
      if (!n.up || !w || w.mode !== 'primary' || !acceptWriter(n.term, w.term, SYSTEM).ok) return;
      const keep = commonPrefix(n.log, w.log);
      n.log = w.log.slice(0, keep + 1 + Math.floor(rnd() * 3));
      n.timeline = w.timeline;
      acknowledge(w);
    } else if (roll < 0.8) {
      // A reader streams from the writer of record while its history allows.
      const w = inst(writerOfRecord());
      const standbys = [...instances.values()].filter((i) => i.mode === 'standby' && i.id !== w.id);
      if (w.mode !== 'primary' || standbys.length === 0) return;
      const s = pick(standbys);
      if (commonPrefix(s.log, w.log) < s.log.length) return;
      s.log = w.log.slice(0, s.log.length + 1 + Math.floor(rnd() * 3));
      s.timeline = w.timeline;
    } else if (roll < 0.84) {
      // At most three nodes down at once: sometimes too many for a fence.
      if (nodes.filter((n) => !n.up).length < 3) pick(nodes).up = false;
    } else if (roll < 0.92) {
      const down = nodes.filter((n) => !n.up);
      if (down.length > 0) pick(down).up = true;
    }
  };

  /** A step of the supervisor: the world moves on, and the supervisor may be killed here. */
  const tick = (me: Incarnation): void => {
    if (!me.alive) throw new Crash('killed');
    for (let k = Math.floor(rnd() * 4); k > 0; k--) background();
    // StorageFleet's health loop sends the current term to nodes again.
    if (rnd() < 0.1 && !(mutation === 'no-fence' && me.fenceTarget)) follow(me);
    if (rnd() < crashChance) {
      me.alive = false;
      crashes++;
      trace('supervisor killed');
      throw new Crash('killed');
    }
  };

  const nextTerm = (): number => {
    const seen = nodes.filter((n) => n.up).map((n) => n.term.term);
    storageTerm = Math.max(storageTerm, ...seen) + 1;
    return storageTerm;
  };
  /** The current term, naming the pending fence's target or else the writer of record, sent to every reachable node. */
  const follow = (me: Incarnation): number[] => {
    const named = me.fenceTarget ?? writerOfRecord();
    for (const n of nodes) {
      if (!n.up) continue;
      const d = acceptTerm(n.term, storageTerm, ref(named));
      if (d.ok) n.term = d.value;
    }
    return nodes.filter((n) => n.up).map((n) => n.term.term);
  };

  /** What the reachable nodes report: term, the timeline their end of WAL lies on, and that end. */
  const nodeReports = (): NodeReport[] =>
    nodes.flatMap((n, k) => (n.up ? [{ node: String(k), term: n.term.term, timeline: timelineOfPoint(BigInt(n.log.length), n.timeline, historyOf(n.timeline)), flushLsn: BigInt(n.log.length) }] : []));

  const startPrimary = (i: Instance): void => {
    i.mode = 'primary';
    i.term = storageTerm;
    i.acked = 0;
  };

  /**
   * A writer whose data directory is gone, rebuilt from storage as
   * StorageFleet.restore does it, with its decisions: the source
   * (rebuildSource), a new term sent to the nodes, the recovery point on
   * the read quorum that accepted it (recoveryPoint), then the copy, which
   * is installed whole or not at all. Recovery ends on a new timeline.
   */
  const rebuild = (me: Incarnation, w: Instance): void => {
    const reports = nodes.filter((n) => n.up).map((n, k) => ({ name: String(k), systemId: n.log.length > 0 ? SYSTEM : null, flushLsn: n.log.length > 0 ? BigInt(n.log.length) : null }));
    const source = rebuildSource(SYSTEM, reports, [SYSTEM]);
    if (source.kind !== 'restore') {
      if (source.kind === 'initdb') fail('a writer of a cluster with a system would be initialised empty');
      trace(`${w.id} waits to be rebuilt: ${source.kind === 'wait' ? source.reason : ''}`);
      return;
    }
    const term = nextTerm();
    follow(me);
    tick(me);
    const point = recoveryPoint(nodeReports(), term, historyOf);
    if (!point.ok) {
      trace(`${w.id} waits to be rebuilt: ${point.reason}`);
      return;
    }
    const lsn = Number(point.value.lsn);
    const log = nodes[Number(point.value.source)]!.log.slice(0, lsn);
    tick(me);
    checkHolds(`${w.id}, rebuilt from storage`, log);
    histories.set(++timelines, new Map([...(histories.get(point.value.timeline) ?? []), [point.value.timeline, lsn]]));
    Object.assign(w, { log, timeline: timelines, data: 'primary' });
    rebuilt++;
    startPrimary(w);
    follow(me);
    trace(`${w.id} rebuilt to ${lsn} on timeline ${timelines} in term ${term}`);
  };

  /** An instance started as its recorded role says (a postmaster left running is stopped first). */
  const startAsRecorded = (me: Incarnation, id: string): void => {
    tick(me);
    const i = inst(id);
    i.mode = 'down';
    if (roles.get(id) === 'writer') {
      if (i.data === 'lost') rebuild(me, i);
      else if (i.data === 'primary') {
        checkHolds(`${id}, started as the writer`, i.log);
        startPrimary(i);
        follow(me);
      } else i.mode = 'standby';
    } else if (i.data === 'primary' || i.reclone) {
      // A reader's directory must be a standby's: cloned afresh from the writer.
      const w = inst(writerOfRecord());
      if (w.mode !== 'primary') return;
      Object.assign(i, { log: [...w.log], timeline: w.timeline, data: 'standby', mode: 'standby', reclone: false });
    } else i.mode = 'standby';
    trace(`${id} started as ${i.mode} (${roles.get(id)} of record)`);
  };

  /** Instances handed to their restart loop, with the supervisor that did so. */
  const restartQueue: Array<{ id: string; me: Incarnation }> = [];
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    const q = p.catch(() => undefined).finally(() => pending.delete(q));
    pending.add(q);
  };

  const worldOf = (me: Incarnation): FailoverWorld => {
    const effect = async <T,>(fn: () => T): Promise<T> => {
      await Promise.resolve();
      tick(me);
      const out = fn();
      tick(me);
      return out;
    };
    const alive = (): void => {
      if (!me.alive) throw new Crash('killed');
    };
    return {
      record: {
        begin: (oldWriter, target) => {
          alive();
          operation = { oldWriter, target, step: 'begun' };
        },
        advance: (step) => {
          alive();
          if (operation) operation = { ...operation, step };
        },
        swap: (oldWriter, target) => {
          alive();
          roles.set(target, 'writer');
          roles.set(oldWriter, 'reader');
          operation = { ...operation!, step: 'swapped' };
        },
        current: () => operation,
        writer: () => writerOfRecord(),
        end: () => {
          alive();
          operation = null;
        },
      },
      storage: {
        fence: (target) =>
          effect(() => {
            const term = nextTerm();
            me.fenceTarget = target;
            trace(`fence: term ${term} for ${target}`);
            if (mutation === 'no-fence') return { term, terms: nodes.filter((n) => n.up).map(() => term) };
            return { term, terms: follow(me) };
          }),
        terms: () => effect(() => follow(me)),
        endFence: () => {
          alive();
          me.fenceTarget = null;
        },
        // Recorded only: the health loop and the writer's start send it.
        raiseTerm: () =>
          effect(() => {
            me.fenceTarget = null;
            trace(`term raised to ${nextTerm()} for ${writerOfRecord()}`);
          }),
      },
      fenceTimeoutMs: 3000,
      crashPoint: () => tick(me),
      resume: () => effect(() => true),
      stop: (id) =>
        effect(() => {
          const i = inst(id);
          // Its host cut off: the supervisor's stop returns, the process goes on writing.
          if (i.mode === 'primary' && rnd() < 0.15) {
            trace(`${id} keeps running unseen`);
            return;
          }
          i.mode = 'down';
        }),
      start: (id) => effect(() => startAsRecorded(me, id)),
      catchUp: (id) =>
        effect(() => {
          const t = inst(id);
          if (t.mode !== 'standby') throw new Error(`${id} is not running as a standby`);
          if (mutation === 'catch-up-skips-storage') return;
          const reports = nodeReports();
          // Without a fence, every reachable node is taken as if it had been fenced.
          const point = recoveryPoint(mutation === 'no-fence' ? reports.map((r) => ({ ...r, term: storageTerm })) : reports, storageTerm, historyOf);
          if (!point.ok) throw new Error(point.reason);
          const lsn = Number(point.value.lsn);
          const durable = nodes[Number(point.value.source)]!.log.slice(0, lsn);
          const history = [...historyOf(point.value.timeline)].map(([timeline, switchLsn]) => ({ timeline, switchLsn }));
          const place = timelinePlace(history, point.value.timeline, t.timeline, BigInt(t.log.length));
          if (place.kind !== 'on-chain') throw new CatchUpError(`${id}: ${place.reason}`, { offTimeline: true });
          if (commonPrefix(t.log, durable) < Math.min(t.log.length, lsn)) fail(`${id} was judged on storage's timeline chain but its WAL differs from storage's below ${lsn}`);
          if (t.log.length >= lsn) return;
          t.log = durable;
          t.timeline = point.value.timeline;
        }),
      promote: (id) =>
        effect(() => {
          const t = inst(id);
          if (t.mode !== 'standby') throw new Error(`${id} is not running as a standby`);
          checkHolds(`${id}, promoted`, t.log);
          histories.set(++timelines, new Map([...(histories.get(t.timeline) ?? []), [t.timeline, t.log.length]]));
          t.timeline = timelines;
          t.data = 'primary';
          startPrimary(t);
          promoted++;
          trace(`${id} promoted in term ${t.term} on timeline ${t.timeline}`);
        }),
      inRecovery: (id) =>
        effect(() => {
          const t = inst(id);
          if (t.mode === 'down') throw new Error(`${id} is not running`);
          return t.mode === 'standby';
        }),
      afterPromotion: (_writer, oldWriter) => {
        alive();
        // Storage follows the new writer (the supervisor's pointStorageAtWriter).
        follow(me);
        if (oldWriter) {
          inst(oldWriter).reclone = true;
          restartQueue.push({ id: oldWriter, me });
        }
      },
      reclone: (id) => {
        inst(id).reclone = true;
        restartQueue.push({ id, me });
      },
      restartLater: (id) => restartQueue.push({ id, me }),
      event: (kind, message) => trace(`event ${kind}: ${message}`),
      shuttingDown: () => !me.alive,
      now: () => 0,
      sleep: () => effect(() => undefined),
    };
  };

  /** A start of the supervisor: storage follows the writer of record, a recorded failover is resolved, instances start writer first. */
  const startSupervisor = async (): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      sup = { alive: true, fenceTarget: null };
      const me = sup;
      const w = worldOf(me);
      try {
        tick(me);
        follow(me);
        const plan = await recoverFailover(w);
        if (plan?.kind === 'roll-back') rolledBack++;
        const writer = writerOfRecord();
        startAsRecorded(me, writer);
        if (operation?.target === writer) await finishFailover(w, writer);
        for (const id of roles.keys()) if (id !== writer) startAsRecorded(me, id);
        return;
      } catch (err) {
        if (!(err instanceof Crash)) throw err;
        if (attempt > 50) crashChance = 0;
      }
    }
  };

  /** The restart loops, then background work the failover left running; a killed supervisor is started again. */
  const settle = async (): Promise<void> => {
    for (let guard = 0; guard < 100; guard++) {
      while (pending.size > 0) await Promise.all([...pending]);
      if (!sup.alive) await startSupervisor();
      const me = sup;
      const next = restartQueue.shift();
      if (!next) break;
      if (!next.me.alive) continue;
      try {
        startAsRecorded(me, next.id);
        if (roles.get(next.id) === 'writer' && operation?.target === next.id && inst(next.id).mode === 'standby') await finishFailover(worldOf(me), next.id);
      } catch (err) {
        if (!(err instanceof Crash)) throw err;
      }
    }
  };

  {
    for (let round = 0; round < rounds && !violation; round++) {
      for (let k = 0; k < 30; k++) background();
      const me = sup;
      const oldWriter = writerOfRecord();
      if (rnd() < 0.15) {
        // The writer loses its disk: it is rebuilt from storage by its restart loop.
        Object.assign(inst(oldWriter), { mode: 'down', data: 'lost', log: [] });
        restartQueue.push({ id: oldWriter, me });
        trace(`round ${round}: ${oldWriter} loses its data directory`);
        await settle();
        continue;
      }
      // Half the time the writer crashed first: what it acknowledged may be on storage only.
      if (rnd() < 0.5) inst(oldWriter).mode = 'down';
      const candidates = promotionOrder([...roles].filter(([id, r]) => r === 'reader' && inst(id).mode === 'standby').map(([id]) => ({ id, promotionTier: 1, state: 'available' as const, capacityAcu: 1 })));
      if (candidates.length === 0) {
        if (inst(oldWriter).mode === 'down') restartQueue.push({ id: oldWriter, me });
        for (const [id] of roles) if (inst(id).mode === 'down' && id !== oldWriter) restartQueue.push({ id, me });
      } else {
        const target = pick(candidates).id;
        trace(`round ${round}: failover from ${oldWriter} to ${target}`);
        const run = runFailover(worldOf(me), oldWriter, target);
        track(run);
        await run.catch((err: Error) => {
          trace(`failover ended: ${err.name} ${err.message}`);
          if (!(err instanceof Crash) && inst(oldWriter).mode === 'down' && !operation) restartQueue.push({ id: oldWriter, me });
        });
      }
      await settle();
    }
    // The end: every node back, the supervisor started once more without crashing, the cluster settled.
    crashChance = 0;
    for (const n of nodes) n.up = true;
    sup.alive = false;
    await settle();
    const ackedBefore = acks.length;
    for (let k = 0; k < 300; k++) background();
    // And the cluster can commit: storage follows the writer of record.
    if (acks.length === ackedBefore) fail(`the final writer ${writerOfRecord()} acknowledges nothing: storage does not follow it (node terms ${nodes.map((n) => `${n.term.term}:${n.term.writer?.host}`).join(' ')}, its term ${inst(writerOfRecord()).term})`);
    const primaries = [...instances.values()].filter((i) => i.mode === 'primary');
    if (operation) fail(`a failover is still recorded at the end: ${JSON.stringify(operation)}`);
    if (primaries.length !== 1 || primaries[0]!.id !== writerOfRecord()) fail(`at the end ${primaries.map((p) => p.id).join(', ') || 'no instance'} takes writes; the writer of record is ${writerOfRecord()}`);
    checkHolds(`the final writer ${writerOfRecord()}`, inst(writerOfRecord()).log);
    return { violation, acked: acks.length, crashes, promoted, rolledBack, rebuilt };
  }
}

test('simulation: over 300 seeds, failovers and rebuilds with supervisor crashes between any two effects lose no acknowledged commit and leave one writer', async () => {
  const totals = { acked: 0, crashes: 0, promoted: 0, rolledBack: 0, rebuilt: 0 };
  for (let seed = 1; seed <= Number(process.env.SIM_SEEDS ?? 300); seed++) {
    const r = await run(seed, 8, 'none');
    assert.equal(r.violation, null, r.violation ?? '');
    totals.acked += r.acked;
    totals.crashes += r.crashes;
    totals.promoted += r.promoted;
    totals.rolledBack += r.rolledBack;
    totals.rebuilt += r.rebuilt;
  }
  if (process.env.SIM_TOTALS) console.log(totals);
  // The runs must exercise something: commits acknowledged, crashes, promotions, roll-backs.
  assert.ok(totals.acked > 3000, `only ${totals.acked} commits acknowledged`);
  assert.ok(totals.crashes > 300, `only ${totals.crashes} supervisor crashes`);
  assert.ok(totals.promoted > 600, `only ${totals.promoted} promotions`);
  assert.ok(totals.rolledBack > 50, `only ${totals.rolledBack} failovers rolled back after a crash`);
  assert.ok(totals.rebuilt > 100, `only ${totals.rebuilt} writers rebuilt from storage`);
});

test('simulation: without a fence the old writer acknowledges commits the new one lacks', async () => {
  let found: string | null = null;
  for (let seed = 1; seed <= 300 && !found; seed++) found = (await run(seed, 8, 'no-fence')).violation;
  assert.ok(found, 'the simulation should catch an old writer that is never fenced');
  assert.match(found, /acknowledged .* after|both acknowledged|reader of record|lacks/);
});

test('simulation: a catch-up that skips storage loses acknowledged commits', async () => {
  let found: string | null = null;
  for (let seed = 1; seed <= 300 && !found; seed++) found = (await run(seed, 8, 'catch-up-skips-storage')).violation;
  assert.ok(found, 'the simulation should catch a target promoted without what storage acknowledged');
  assert.match(found, /lacks/);
});
