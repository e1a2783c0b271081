// The scenarios of the reliability table: each runs the workloads through
// the writer endpoint, applies one fault part-way, heals it, reads
// everything back and checks the history. One Borealis per scenario, in a
// temporary home, removed afterwards.
import { Borealis } from '../helpers/borealis.js';
import { checkHistory, type CheckResult } from './checker.js';
import { nemeses, type Nemesis } from './nemesis.js';
import { ZoneNetwork, ZonesUnavailable } from './zones.js';
import { STORAGE_ZONES } from '../../src/storage/placement.js';
import { BANK_ACCOUNTS, BANK_INITIAL, finalReads, longestGap, Recorder, runWorkload, seededRandom, setUpSchema } from './workloads.js';

export interface ScenarioOptions {
  /** How long the workload runs (ms); the fault comes at a quarter of it and heals at three quarters. */
  readonly durationMs: number;
  readonly clients: number;
  readonly seed: number;
  readonly log: (line: string) => void;
}

export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  readonly check: CheckResult;
  /** Longest stretch without a successful write / read from the fault to the end of the run (ms). */
  readonly writeUnavailableMs: number;
  readonly readUnavailableMs: number;
  /** From the fault to the end of the longest stretch without writes: when writes were back for good (ms). */
  readonly recoveryMs: number;
  /** The final reads after healing succeeded. */
  readonly finalReadsDone: boolean;
  readonly error?: string;
  /** Why the scenario could not run on this machine (zones need network namespaces). */
  readonly skipped?: string;
  /** What the run could not reproduce of the scenario (e.g. no latency between zones). */
  readonly notes?: readonly string[];
}

interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Borealis settings for this scenario. */
  readonly env?: Record<string, string>;
  /** Run before the workload (e.g. add a reader). */
  readonly prepare?: (b: Borealis) => Promise<void>;
  /** Each storage zone in its own network namespace (zones.ts); the nemesis gets the network. */
  readonly zones?: boolean;
  readonly nemesis: (b: Borealis, net: ZoneNetwork | null) => Nemesis;
  /** Heal right after applying (faults that are one event, not a state). */
  readonly instant?: boolean;
}

export const SCENARIOS: readonly Scenario[] = [
  { name: 'writer-kill', description: 'kill -9 of the writer postmaster', nemesis: (b) => nemeses.killWriter(b), instant: true },
  { name: 'writer-pause', description: 'writer process tree SIGSTOPped for 5 s, then resumed', nemesis: (b) => nemeses.pauseWriter(b, 5_000) },
  { name: 'storage-node-kill', description: 'one storage node (sn1) held down', nemesis: (b) => nemeses.stopStorageNodes(b, ['sn1']) },
  { name: 'storage-node-pause', description: 'one storage node (sn3) SIGSTOPped', nemesis: (b) => nemeses.pauseStorageNodes(b, ['sn3']) },
  { name: 'zone-loss', description: 'zone a (sn1, sn2) held down', nemesis: (b) => nemeses.stopStorageNodes(b, ['sn1', 'sn2']) },
  { name: 'zone-plus-one', description: 'zone a and sn3 held down: writes stall, nothing is lost', nemesis: (b) => nemeses.stopStorageNodes(b, ['sn1', 'sn2', 'sn3']) },
  { name: 'storage-node-wipe', description: "one storage node's disk (sn4) lost", nemesis: (b) => nemeses.wipeStorageNode(b, 'sn4'), instant: true },
  { name: 'supervisor-kill', description: 'kill -9 of the supervisor (proxy and control plane), then up again', nemesis: (b) => nemeses.killSupervisor(b) },
  {
    name: 'failover',
    description: 'requested failover to a tier-0 reader',
    env: { BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5' },
    prepare: async (b) => {
      const r = await b.cli(['instance', 'add', 'default', '--promotion-tier', '0'], 300_000);
      if (r.code !== 0) throw new Error(`instance add: ${r.stderr}`);
    },
    nemesis: (b) => nemeses.failover(b),
    instant: true,
  },
  { name: 'zone-partition', description: "zone a's hosts cut off from the writer and the other zones (both ways)", zones: true, nemesis: (_b, net) => nemeses.network(net!, (n) => n.isolate('a')) },
  {
    name: 'writer-storage-partition',
    description: 'the writer\'s host cut off from every storage zone (both ways; the zones still reach each other): writes stall, nothing is lost',
    zones: true,
    nemesis: (_b, net) => nemeses.network(net!, async (n) => {
      for (const zone of n.zones) await n.partition('compute', zone);
    }),
  },
  {
    name: 'one-way-partition',
    description: "packets from the writer's host to zones b and c dropped; theirs still arrive",
    zones: true,
    nemesis: (_b, net) => nemeses.network(net!, async (n) => {
      await n.drop('compute', 'b');
      await n.drop('compute', 'c');
    }),
  },
];

export async function runScenario(s: Scenario, opts: ScenarioOptions): Promise<ScenarioResult> {
  let net: ZoneNetwork | null = null;
  if (s.zones) {
    try {
      net = await ZoneNetwork.create(STORAGE_ZONES);
    } catch (err) {
      if (!(err instanceof ZonesUnavailable)) throw err;
      return { name: s.name, description: s.description, check: checkHistory([], {}), writeUnavailableMs: 0, readUnavailableMs: 0, recoveryMs: 0, finalReadsDone: false, skipped: err.message };
    }
  }
  try {
    return await runOn(s, net, opts);
  } finally {
    await net?.destroy();
  }
}

async function runOn(s: Scenario, net: ZoneNetwork | null, opts: ScenarioOptions): Promise<ScenarioResult> {
  const b = await Borealis.start({ BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5', ...net?.env(), ...s.env });
  const connection = b.pgConfig({ tls: false });
  try {
    await s.prepare?.(b);
    await setUpSchema(connection);
    const rec = new Recorder();
    const deadline = Date.now() + opts.durationMs;
    const workload = runWorkload({ connection, clients: opts.clients, deadline, opsPerClientMax: 100_000, random: seededRandom(opts.seed), opTimeoutMs: 10_000 }, rec);
    await new Promise((r) => setTimeout(r, opts.durationMs / 4));
    const faultAt = rec.now();
    opts.log(`${s.name}: fault at ${faultAt} ms (${s.description})`);
    let error: string | undefined;
    let heal: () => Promise<void> = () => Promise.resolve();
    try {
      heal = await s.nemesis(b, net).apply();
    } catch (err) {
      error = `fault could not be applied: ${(err as Error).message}`;
    }
    if (s.instant) await heal();
    else {
      await new Promise((r) => setTimeout(r, Math.max(0, deadline - opts.durationMs / 4 - Date.now())));
      opts.log(`${s.name}: heal at ${rec.now()} ms`);
      await heal().catch((err: Error) => (error ??= `heal failed: ${err.message}`));
    }
    await workload;
    const endMs = rec.now();
    const finalReadsDone = await finalReads(connection, rec, Date.now() + 120_000);
    const check = checkHistory(rec.history, { bankTotal: BANK_ACCOUNTS * BANK_INITIAL });
    const writeGap = longestGap(rec.history, 'write', faultAt, endMs);
    return {
      name: s.name,
      description: s.description,
      check,
      writeUnavailableMs: writeGap.gapMs,
      readUnavailableMs: longestGap(rec.history, 'read', faultAt, endMs).gapMs,
      recoveryMs: writeGap.endMs - faultAt,
      finalReadsDone,
      ...(error ? { error } : {}),
      ...(net && net.notes.length > 0 ? { notes: net.notes } : {}),
    };
  } finally {
    await b.destroy();
  }
}
