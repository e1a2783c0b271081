// The storage protocol's decisions, alone and inside a seeded simulation of
// six nodes, writers old and new, crashes, lost fsyncs and partitions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { READ_QUORUM, STORAGE_NODES, acceptTerm, acceptWriter, divergence, durablePosition, isDurable, recoveryPoint, timelineOfPoint, type NodeReport, type NodeTerm } from '../../src/storage/protocol.js';
import { seededRandom } from '../helpers/random.js';

const W1 = { host: '127.0.0.1', port: 15432 };
const W2 = { host: '127.0.0.1', port: 15433 };

test('terms only grow and one term has one writer', () => {
  const fresh: NodeTerm = { term: 0, writer: null, systemId: null };
  const t1 = acceptTerm(fresh, 1, W1);
  assert.ok(t1.ok);
  assert.ok(acceptTerm(t1.value, 1, W1).ok, 'the same term and writer again is fine');
  assert.match(String(!acceptTerm(t1.value, 1, W2).ok && (acceptTerm(t1.value, 1, W2) as { reason: string }).reason), /already has writer/);
  const t3 = acceptTerm(t1.value, 3, W2);
  assert.ok(t3.ok);
  const back = acceptTerm(t3.value, 2, W1);
  assert.equal(back.ok, false);
  assert.match((back as { reason: string }).reason, /older than this node's term 3/);
  assert.equal(acceptTerm(fresh, 0, W1).ok, false);
  assert.equal(acceptTerm(fresh, 1.5, W1).ok, false);
});

test('a node streams only from the writer of its own term and system', () => {
  const node: NodeTerm = { term: 4, writer: W1, systemId: '111' };
  assert.ok(acceptWriter(node, 4, '111').ok);
  assert.match((acceptWriter(node, 3, '111') as { reason: string }).reason, /older than this node's term 4/);
  assert.match((acceptWriter(node, 5, '111') as { reason: string }).reason, /has not been given/);
  assert.match((acceptWriter(node, 4, '222') as { reason: string }).reason, /system 222/);
  const adopted = acceptWriter({ ...node, systemId: null }, 4, '333');
  assert.ok(adopted.ok && adopted.value.systemId === '333');
});

test('durability needs four flushes; the recovery point needs three fenced nodes', () => {
  assert.equal(isDurable([10n, 10n, 10n, 9n, 100n, 0n], 10n), true);
  assert.equal(isDurable([10n, 10n, 10n, 9n, 9n, 0n], 10n), false);
  assert.equal(durablePosition([5n, 9n, 7n, 3n, 8n, 1n]), 5n);
  assert.equal(durablePosition([5n, 9n, 7n]), 0n);
  const r = (node: string, term: number, timeline: number, flushLsn: bigint): NodeReport => ({ node, term, timeline, flushLsn });
  const none = (): Map<number, bigint> => new Map();
  assert.equal(recoveryPoint([r('a', 2, 1, 5n), r('b', 2, 1, 9n), r('c', 1, 1, 50n)], 2, none).ok, false);
  const p = recoveryPoint([r('a', 2, 1, 5n), r('b', 2, 1, 9n), r('c', 2, 1, 7n), r('d', 1, 1, 50n)], 2, none);
  assert.deepEqual(p, { ok: true, value: { source: 'b', timeline: 1, lsn: 9n } });
  // WAL on an old timeline beyond where the newer history left it does not count.
  const histories = new Map<number, Map<number, bigint>>([
    [2, new Map([[1, 200n]])],
    [3, new Map([[1, 150n]])],
    [4, new Map([[1, 200n], [2, 300n]])],
  ]);
  const of = (t: number): Map<number, bigint> => histories.get(t) ?? new Map<number, bigint>();
  const q = recoveryPoint([r('a', 5, 2, 120n), r('b', 5, 1, 250n), r('c', 5, 1, 100n)], 5, of);
  assert.deepEqual(q, { ok: true, value: { source: 'b', timeline: 1, lsn: 200n } });
  const tie = recoveryPoint([r('a', 5, 2, 200n), r('b', 5, 1, 250n), r('c', 5, 1, 100n)], 5, of);
  assert.deepEqual(tie, { ok: true, value: { source: 'a', timeline: 2, lsn: 200n } });
  // A dead branch (3 forked from 1 at 150; the newest, 4, went through 2) counts only up to 150.
  const dead = recoveryPoint([r('a', 5, 4, 310n), r('b', 5, 3, 900n), r('c', 5, 2, 160n)], 5, of);
  assert.deepEqual(dead, { ok: true, value: { source: 'a', timeline: 4, lsn: 310n } });
  // The chosen position says which timeline recovery follows: 250 is still timeline 2's part of 4's chain.
  const early = recoveryPoint([r('a', 5, 4, 900n), r('b', 5, 3, 250n), r('c', 5, 5, 240n)], 5, (t) => (t === 5 ? new Map([[1, 200n], [2, 250n]]) : of(t)));
  assert.deepEqual(early, { ok: true, value: { source: 'a', timeline: 2, lsn: 250n } });
  assert.equal(divergence(4, of(4), 3, of(3)), 150n);
  assert.equal(divergence(4, of(4), 4, of(4)), null);
  assert.equal(divergence(4, of(4), 2, of(2)), 300n);
  // A history that left timeline 2 before timeline 1's end: 2's WAL counts only up to 7.
  assert.equal(divergence(3, new Map([[1, 13n], [2, 7n]]), 2, new Map([[1, 13n]])), 7n);
  assert.equal(timelineOfPoint(150n, 4, of(4)), 1);
  assert.equal(timelineOfPoint(200n, 4, of(4)), 2);
  assert.equal(timelineOfPoint(300n, 4, of(4)), 4);
});

// ---------------------------------------------------------------------------
// Seeded simulation. WAL is a list of record ids; a position is a length.


interface SimWriter {
  readonly term: number;
  readonly log: string[];
  /** Ancestor timeline → where it ended, as PostgreSQL's history file says. */
  readonly history: Map<number, number>;
  readonly acks: Map<number, number>;
  committed: number;
  alive: boolean;
}

interface SimNode {
  term: NodeTerm;
  durable: string[];
  volatile: string[];
  /** The writer it streams from (and reports its flushes to); its WAL is a prefix of that writer's. */
  source: number;
  up: boolean;
  /** Unreachable from writers and the control plane. */
  cut: boolean;
}

interface Acked {
  readonly lsn: number;
  readonly id: string;
}

const bigHistory = (h: ReadonlyMap<number, number>): Map<number, bigint> => new Map([...h].map(([k, v]) => [k, BigInt(v)]));

function simulate(seed: number, steps: number, readQuorum: number): { violation: string | null; acked: number; rebuilds: number } {
  const rnd = seededRandom(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const nodes: SimNode[] = Array.from({ length: STORAGE_NODES }, () => ({ term: { term: 1, writer: { host: 'w', port: 1 }, systemId: 'sys' }, durable: [], volatile: [], source: 1, up: true, cut: false }));
  const writers: SimWriter[] = [{ term: 1, log: [], history: new Map(), acks: new Map(), committed: 0, alive: true }];
  const acked: Acked[] = [];
  const inflightAcks: Array<{ writer: SimWriter; node: number; lsn: number; due: number }> = [];
  let seq = 0;
  let violation: string | null = null;
  // SIM_TRACE=<seed> prints that run's events, to replay a failure.
  const trace = process.env.SIM_TRACE === String(seed) ? (m: string): void => console.log(m) : (): void => undefined;
  const writerOf = (term: number): SimWriter | undefined => writers.find((w) => w.term === term);

  const commit = (w: SimWriter): void => {
    const durable = Number(durablePosition([...w.acks.values()].map(BigInt)));
    for (let lsn = w.committed + 1; lsn <= durable && lsn <= w.log.length; lsn++) {
      const id = w.log[lsn - 1]!;
      acked.push({ lsn, id });
      trace(`w${w.term} acknowledges ${id} at ${lsn}`);
      // Invariant 2: no newer writer may lack what an older one acknowledges.
      for (const newer of writers) if (newer.term > w.term && newer.log[lsn - 1] !== id) violation ??= `seed ${seed}: writer ${w.term} acknowledged ${id} at ${lsn} after writer ${newer.term} started without it`;
    }
    w.committed = Math.max(w.committed, Math.min(durable, w.log.length));
  };

  for (let step = 0; step < steps && !violation; step++) {
    for (const a of inflightAcks.filter((x) => x.due <= step)) {
      trace(`w${a.writer.term} hears n${a.node} flushed ${a.lsn}`);
      if (a.writer.alive) a.writer.acks.set(a.node, Math.max(a.writer.acks.get(a.node) ?? 0, a.lsn));
      commit(a.writer);
    }
    inflightAcks.splice(0, inflightAcks.length, ...inflightAcks.filter((x) => x.due > step));
    const roll = rnd();
    const live = writers.filter((w) => w.alive);
    if (roll < 0.3 && live.length > 0) {
      // A writer appends WAL (old writers keep trying: fencing must stop them).
      const w = pick(live);
      w.log.push(`${w.term}.${++seq}`);
    } else if (roll < 0.6) {
      // A node pulls from the writer of its term and writes (not yet fsynced).
      const i = Math.floor(rnd() * nodes.length);
      const n = nodes[i]!;
      const w = writerOf(n.term.term);
      if (!n.up || n.cut || !w || !w.alive || !acceptWriter(n.term, w.term, 'sys').ok) continue;
      const mine = [...n.durable, ...n.volatile];
      // Following a new timeline: keep only what the writer's history shares.
      let common = 0;
      while (common < mine.length && common < w.log.length && mine[common] === w.log[common]) common++;
      if (common < n.durable.length) n.durable = n.durable.slice(0, common);
      n.volatile = mine.slice(n.durable.length, common);
      n.source = w.term;
      n.volatile.push(...w.log.slice(common, common + 1 + Math.floor(rnd() * 3)));
      trace(`n${i} pulls from w${w.term}: kept ${common}, durable ${n.durable.length}, written ${n.volatile.join(',')}`);
    } else if (roll < 0.8) {
      // fsync, then a flush report that arrives later (or never, if the link is cut).
      const i = Math.floor(rnd() * nodes.length);
      const n = nodes[i]!;
      if (!n.up) continue;
      n.durable = [...n.durable, ...n.volatile];
      n.volatile = [];
      trace(`n${i} fsyncs: durable ${n.durable.length}, term ${n.term.term}`);
      // Reported only to the writer the WAL came from, while the node still follows it.
      const w = writerOf(n.source);
      if (w && w.term === n.term.term && !n.cut) inflightAcks.push({ writer: w, node: i, lsn: n.durable.length, due: step + Math.floor(rnd() * 4) });
    } else if (roll < 0.82) {
      // A crash loses what was not fsynced; a cut link stops reports both ways.
      const n = pick(nodes);
      if (rnd() < 0.5) {
        n.up = false;
        n.volatile = [];
        trace(`n${nodes.indexOf(n)} crashes`);
      } else n.cut = true;
    } else if (roll < 0.87) {
      const sick = nodes.filter((n) => !n.up || n.cut);
      if (sick.length > 0) Object.assign(pick(sick), { up: true, cut: false });
    } else if (roll < 0.875 && live.length > 0) {
      pick(live).alive = false;
    } else if (roll < 0.89) {
      // The control plane rebuilds a writer: new term, fence, read quorum, recover.
      const reachable = nodes.map((n, i) => ({ n, i })).filter(({ n }) => n.up && !n.cut && rnd() < 0.8);
      const term = Math.max(...nodes.filter((n) => n.up && !n.cut).map((n) => n.term.term), ...writers.map((w) => w.term)) + 1;
      const reports: NodeReport[] = [];
      for (const { n, i } of reachable) {
        const d = acceptTerm(n.term, term, { host: 'w', port: term });
        if (!d.ok) continue;
        n.term = d.value;
        // As the real node reports: its durable end and the timeline that end lies on.
        const source = writerOf(n.source)!;
        const timeline = timelineOfPoint(BigInt(n.durable.length), source.term, bigHistory(source.history));
        reports.push({ node: String(i), term, timeline, flushLsn: BigInt(n.durable.length) });
      }
      const historyOf = (t: number): Map<number, bigint> => bigHistory(writerOf(t)?.history ?? new Map());
      const point = recoveryPoint(reports, term, historyOf, readQuorum);
      trace(`rebuild in term ${term}: ${reports.map((r) => `n${r.node} tl${r.timeline}@${r.flushLsn}`).join(' ')} → ${point.ok ? `n${point.value.source} tl${point.value.timeline}@${point.value.lsn}` : point.reason}`);
      if (!point.ok) continue;
      const source = nodes[Number(point.value.source)]!;
      const lsn = Number(point.value.lsn);
      const log = source.durable.slice(0, lsn);
      const history = new Map(writerOf(point.value.timeline)?.history ?? []);
      // PostgreSQL needs switch points in order: a timeline ends after it began.
      if ([...history.values()].some((end) => end > lsn)) violation ??= `seed ${seed}: writer ${term} would fork timeline ${point.value.timeline} at ${lsn}, before it began`;
      history.set(point.value.timeline, lsn);
      const w: SimWriter = { term, log, history, acks: new Map(), committed: lsn, alive: true };
      // Invariant 1: every acknowledged commit is in the rebuilt writer's WAL.
      for (const a of acked) if (log[a.lsn - 1] !== a.id) violation ??= `seed ${seed}: rebuilt writer ${term} lost acknowledged ${a.id} at ${a.lsn}`;
      writers.push(w);
    }
  }
  return { violation, acked: acked.length, rebuilds: writers.length - 1 };
}

test('simulation: over 300 seeds no acknowledged commit is lost and no fenced writer commits', () => {
  let acked = 0;
  let rebuilds = 0;
  for (let seed = 1; seed <= Number(process.env.SIM_SEEDS ?? 300); seed++) {
    const run = simulate(seed, 1000, READ_QUORUM);
    assert.equal(run.violation, null, run.violation ?? '');
    acked += run.acked;
    rebuilds += run.rebuilds;
  }
  // The runs must exercise something: commits acknowledged, writers rebuilt.
  assert.ok(acked > 2000, `only ${acked} commits acknowledged`);
  assert.ok(rebuilds > 300, `only ${rebuilds} rebuilds`);
});

test('simulation: with a read quorum of two (one too few) it finds a lost commit', () => {
  const found = Array.from({ length: 300 }, (_, i) => simulate(i + 1, 1000, READ_QUORUM - 1).violation).find((v) => v !== null);
  assert.ok(found, 'the simulation should catch a quorum that is too small');
});
