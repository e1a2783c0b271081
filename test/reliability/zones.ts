// Zones as hosts: each storage zone in its own network namespace, joined by
// a veth pair to a bridge in the supervisor's namespace (the compute host),
// so that storage nodes are reached by address over a path that can be cut.
//
// Faults, all silent drops as a real partition is (no error reaches the
// sender; its packets vanish and it waits out its timeouts):
// - isolate(zone): the zone's link goes down: nothing in or out.
// - drop(from, to): packets from one host to another vanish, the other way
//   still works. This kernel has no netfilter and no tc drop action, so the
//   sender's neighbour entry for the address is pinned to a MAC no host has:
//   its frames are flooded by the bridge and discarded by every host.
// Latency between zones needs tc netem, which this kernel does not have; the
// harness adds it where netem exists and reports that it could not otherwise.
//
// Only this harness's own namespaces and links are touched: their names carry
// the pid of the process that made them. They are removed by destroy(), at
// process exit, and, when a run was killed before either, by the next run
// (a name whose pid is no longer alive).
import { execFile, execFileSync } from 'node:child_process';

/** 'compute' (the supervisor's and writer's host) or a zone's name. */
export type Host = string;

/** The harness cannot run here (not root, no `ip`, no network namespaces); the message says why. */
export class ZonesUnavailable extends Error {}

const COMMAND_TIMEOUT_MS = 10_000;
const NOWHERE_MAC = '02:00:5e:00:de:ad';
/** Exactly the names this harness makes: namespaces bz<pid>-<n>-<zone>, the bridge bz<pid>-<n>br, links bz<pid>-<n><zone>. */
const NAME = /^bz(\d+)-\d+(?:-[a-z][a-z0-9-]*|br|[a-z][a-z0-9]*)$/;

let made = 0;
const live = new Set<ZoneNetwork>();
process.once('exit', () => {
  for (const z of live) z.destroySync();
});
// Interrupted (Ctrl-C, a timeout's SIGTERM): clean up, then end as the signal would have.
const onSignal = (signal: NodeJS.Signals): void => {
  for (const z of live) z.destroySync();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.kill(process.pid, signal);
};
function watchSignals(on: boolean): void {
  if (on && process.listenerCount('SIGINT') === 0 && process.listenerCount('SIGTERM') === 0) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  } else if (!on) {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: COMMAND_TIMEOUT_MS }, (err, stdout, stderr) => (err ? reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(stdout)));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Namespaces and links of earlier runs that were killed before they could remove them. */
async function sweepLeftovers(): Promise<void> {
  const stale = (name: string): boolean => {
    const m = NAME.exec(name);
    return m !== null && Number(m[1]) !== process.pid && !alive(Number(m[1]));
  };
  for (const line of (await ip(['netns', 'list'])).split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (stale(name)) await ip(['netns', 'del', name]).catch(() => undefined);
  }
  for (const line of (await ip(['-o', 'link', 'show'])).split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '';
    if (stale(name)) await ip(['link', 'del', name]).catch(() => undefined);
  }
}

export class ZoneNetwork {
  private readonly faults: Array<() => Promise<void>> = [];
  private destroyed = false;
  readonly notes: string[] = [];

  private constructor(
    private readonly prefix: string,
    private readonly subnet: string,
    readonly zones: readonly string[],
  ) {}

  /** Makes the bridge, one namespace per zone and their links; throws ZonesUnavailable where that cannot be done. */
  static async create(zones: readonly string[], latencyMs = 1): Promise<ZoneNetwork> {
    if (process.getuid?.() !== 0) throw new ZonesUnavailable('network namespaces need root');
    try {
      await ip(['netns', 'list']);
    } catch (err) {
      throw new ZonesUnavailable(`ip netns is not usable here: ${(err as Error).message}`);
    }
    await sweepLeftovers();
    made += 1;
    const z = new ZoneNetwork(`bz${process.pid}-${made}`, await freeSubnet(), zones);
    live.add(z);
    watchSignals(true);
    try {
      await z.build(latencyMs);
    } catch (err) {
      await z.destroy();
      throw new ZonesUnavailable(`could not build the zones' network: ${(err as Error).message}`);
    }
    return z;
  }

  /** The compute host's (the supervisor's and the writer's) address on the bridge. */
  get computeAddress(): string {
    return `${this.subnet}.1`;
  }

  address(host: Host): string {
    if (host === 'compute') return this.computeAddress;
    const i = this.zones.indexOf(host);
    if (i < 0) throw new Error(`no zone ${host}`);
    return `${this.subnet}.${11 + i}`;
  }

  netns(zone: string): string {
    return `${this.prefix}-${zone}`;
  }

  private bridge(): string {
    return `${this.prefix}br`;
  }

  private link(zone: string): string {
    return `${this.prefix}${zone}`;
  }

  /** The settings that place each zone's storage nodes in its namespace. */
  env(): Record<string, string> {
    return {
      BOREALIS_STORAGE_ZONE_HOSTS: this.zones.map((zone) => `${zone}=${this.address(zone)}@${this.netns(zone)}`).join(','),
      BOREALIS_STORAGE_WRITER_HOST: this.computeAddress,
    };
  }

  private async build(latencyMs: number): Promise<void> {
    const br = this.bridge();
    await ip(['link', 'add', br, 'type', 'bridge']);
    await ip(['addr', 'add', `${this.computeAddress}/24`, 'dev', br]);
    await ip(['link', 'set', br, 'up']);
    let netem = true;
    for (const zone of this.zones) {
      const ns = this.netns(zone);
      const link = this.link(zone);
      await ip(['netns', 'add', ns]);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      await ip(['link', 'add', link, 'type', 'veth', 'peer', 'name', `${link}.p`]);
      await ip(['link', 'set', `${link}.p`, 'netns', ns]);
      await ip(['-n', ns, 'link', 'set', `${link}.p`, 'name', 'eth0']);
      await ip(['-n', ns, 'addr', 'add', `${this.address(zone)}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['link', 'set', link, 'master', br]);
      await ip(['link', 'set', link, 'up']);
      if (netem && latencyMs > 0) {
        // Each way through the zone's link: half the round trip.
        netem = await tc(['qdisc', 'add', 'dev', link, 'root', 'netem', 'delay', `${latencyMs / 2}ms`]) && (await tc(['-n', ns, 'qdisc', 'add', 'dev', 'eth0', 'root', 'netem', 'delay', `${latencyMs / 2}ms`]));
      }
    }
    if (!netem && latencyMs > 0) this.notes.push('no latency between zones: this kernel has no tc netem');
  }

  /** The zone's link down: nothing in or out until healed. */
  async isolate(zone: string): Promise<void> {
    await ip(['link', 'set', this.link(zone), 'down']);
    this.faults.push(() => ip(['link', 'set', this.link(zone), 'up']).then(() => undefined));
  }

  /** Packets from `from` to `to` vanish; the other way is untouched. */
  async drop(from: Host, to: Host): Promise<void> {
    const [ns, dev] = from === 'compute' ? [null, this.bridge()] : [this.netns(from), 'eth0'];
    const at = (args: string[]): string[] => (ns ? ['-n', ns, ...args] : args);
    const addr = this.address(to);
    await ip(at(['neigh', 'replace', addr, 'lladdr', NOWHERE_MAC, 'dev', dev, 'nud', 'permanent']));
    this.faults.push(() => ip(at(['neigh', 'del', addr, 'dev', dev])).then(() => undefined));
  }

  /** Both ways between two hosts. */
  async partition(a: Host, b: Host): Promise<void> {
    await this.drop(a, b);
    await this.drop(b, a);
  }

  /** Undoes every fault, newest first. */
  async heal(): Promise<void> {
    while (this.faults.length > 0) await this.faults.pop()!().catch(() => undefined);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    if (live.size === 0) watchSignals(false);
    for (const zone of this.zones) await ip(['netns', 'del', this.netns(zone)]).catch(() => undefined);
    for (const zone of this.zones) await ip(['link', 'del', this.link(zone)]).catch(() => undefined);
    await ip(['link', 'del', this.bridge()]).catch(() => undefined);
  }

  /** At process exit, when nothing asynchronous runs any more. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const run = (args: string[]): void => {
      try {
        execFileSync('ip', args, { timeout: COMMAND_TIMEOUT_MS, stdio: 'ignore' });
      } catch {
        // Already gone.
      }
    };
    for (const zone of this.zones) run(['netns', 'del', this.netns(zone)]);
    for (const zone of this.zones) run(['link', 'del', this.link(zone)]);
    run(['link', 'del', this.bridge()]);
  }
}

function tc(args: readonly string[]): Promise<boolean> {
  return new Promise((resolve) => execFile('tc', args, { timeout: COMMAND_TIMEOUT_MS }, (err) => resolve(!err)));
}

/** A /24 in 10.200.0.0/13 that no interface of this machine has an address in ("10.a.b"). */
async function freeSubnet(): Promise<string> {
  const used = (await ip(['-4', '-o', 'addr', 'show'])) + (await ip(['-4', 'route', 'show']));
  for (let i = 0; i < 100; i++) {
    const subnet = `10.${200 + Math.floor(Math.random() * 8)}.${Math.floor(Math.random() * 256)}`;
    if (!used.includes(`${subnet}.`)) return subnet;
  }
  throw new ZonesUnavailable('no free 10.200.0.0/13 subnet');
}
