// Faults, applied to a Borealis the run started itself, by pid (the
// processes it started and their children), never by name.
import fs from 'node:fs';
import path from 'node:path';
import { signalTree } from '../../src/util/process-tree.js';
import type { Borealis } from '../helpers/borealis.js';
import type { ZoneNetwork } from './zones.js';

async function writerPidOf(b: Borealis, cluster: string): Promise<number> {
  const pid = await b.waitFor('a running writer', () => b.writerPid(cluster), 120_000);
  return pid;
}

async function storageNode(b: Borealis, cluster: string, name: string): Promise<{ pid: number | null }> {
  const s = await b.status();
  const node = s.clusters.find((c) => c.name === cluster)?.storage.nodes.find((n) => n.name === name);
  if (!node) throw new Error(`no storage node ${name}`);
  return { pid: node.pid };
}

const NO_HEAL = (): Promise<void> => Promise.resolve();

export interface Nemesis {
  /** Applies the fault; returns the heal (a no-op for faults that heal themselves). */
  apply(): Promise<() => Promise<void>>;
}

export const nemeses = {
  /** kill -9 of the writer's postmaster (its backends die with it). */
  killWriter: (b: Borealis, cluster = 'default'): Nemesis => ({
    async apply() {
      process.kill(await writerPidOf(b, cluster), 'SIGKILL');
      return NO_HEAL;
    },
  }),
  /** SIGSTOP of the writer's whole process tree for `ms`, then SIGCONT. */
  pauseWriter: (b: Borealis, ms: number, cluster = 'default'): Nemesis => ({
    async apply() {
      const pid = await writerPidOf(b, cluster);
      signalTree(pid, 'SIGSTOP');
      const timer = setTimeout(() => signalTree(pid, 'SIGCONT'), ms);
      return () => {
        clearTimeout(timer);
        signalTree(pid, 'SIGCONT');
        return Promise.resolve();
      };
    },
  }),
  /** Storage nodes held down (one node, a zone, a zone and one more), started again at heal. */
  stopStorageNodes: (b: Borealis, names: readonly string[], cluster = 'default'): Nemesis => ({
    async apply() {
      for (const n of names) {
        const r = await b.cli(['storage', 'stop-node', n, cluster]);
        if (r.code !== 0) throw new Error(`stop-node ${n}: ${r.stderr}`);
      }
      return async () => {
        for (const n of names) await b.cli(['storage', 'start-node', n, cluster]);
      };
    },
  }),
  /** SIGSTOP of storage node processes, SIGCONT at heal. */
  pauseStorageNodes: (b: Borealis, names: readonly string[], cluster = 'default'): Nemesis => ({
    async apply() {
      const pids = (await Promise.all(names.map((n) => storageNode(b, cluster, n)))).map((n) => n.pid).filter((p): p is number => p !== null);
      for (const p of pids) signalTree(p, 'SIGSTOP');
      return () => {
        for (const p of pids) signalTree(p, 'SIGCONT');
        return Promise.resolve();
      };
    },
  }),
  /** A storage node's disk lost: stopped, its directory removed, started empty. */
  wipeStorageNode: (b: Borealis, name: string, cluster = 'default'): Nemesis => ({
    async apply() {
      const r = await b.cli(['storage', 'stop-node', name, cluster]);
      if (r.code !== 0) throw new Error(`stop-node ${name}: ${r.stderr}`);
      fs.rmSync(path.join(b.home, 'storage', cluster, name), { recursive: true, force: true });
      await b.cli(['storage', 'start-node', name, cluster]);
      return NO_HEAL;
    },
  }),
  /** kill -9 of the supervisor (control plane, proxy), then `borealis up` again. */
  killSupervisor: (b: Borealis): Nemesis => ({
    async apply() {
      const pid = (await b.status()).supervisor.pid;
      process.kill(pid, 'SIGKILL');
      return async () => {
        await b.waitFor('the supervisor to exit', () => Promise.resolve(!fs.existsSync(`/proc/${pid}`)), 30_000);
        await b.up();
      };
    },
  }),
  /** A requested failover to the cluster's best reader (one must exist). */
  failover: (b: Borealis, cluster = 'default'): Nemesis => ({
    async apply() {
      const r = await b.cli(['cluster', 'failover', cluster], 300_000);
      if (r.code !== 0) throw new Error(`failover: ${r.stderr}`);
      return NO_HEAL;
    },
  }),
  /** A network fault between the zones' hosts (zones.ts), undone at heal. */
  network: (net: ZoneNetwork, cut: (net: ZoneNetwork) => Promise<void>): Nemesis => ({
    async apply() {
      await cut(net);
      return () => net.heal();
    },
  }),
};
