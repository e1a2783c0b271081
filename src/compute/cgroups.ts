// Capacity made real on this host: CPU quota and memory limits through
// cgroups, v1 (separate cpu, cpuacct and memory hierarchies) or v2 (one
// unified tree), and a degraded mode with a clear reason where neither is
// writable. Memory uses a soft limit at the current capacity (reclaim
// pressure, never an OOM kill) and a hard limit at the maximum capacity.
import fs from 'node:fs';
import path from 'node:path';

export type CgroupKind = 'v1' | 'v2' | 'none';

export interface CgroupLimits {
  /** CPU cores the instance may use (quota / period). */
  readonly cpuCores: number;
  /** Soft memory limit: the current capacity's memory. */
  readonly memorySoftBytes: number;
  /** Hard memory limit: the maximum capacity's memory. */
  readonly memoryHardBytes: number;
}

const CPU_PERIOD_US = 100_000;
const DEFAULT_ROOT = '/sys/fs/cgroup';

export interface CgroupSupport {
  readonly kind: CgroupKind;
  /** Why enforcement is off (kind 'none'). */
  readonly reason: string;
  /** Where the hierarchies are mounted. */
  readonly root?: string;
}

export function detectCgroups(root: string): CgroupSupport {
  try {
    if (fs.existsSync(path.join(root, 'cgroup.controllers'))) {
      const controllers = fs.readFileSync(path.join(root, 'cgroup.controllers'), 'utf8');
      if (!/\bcpu\b/.test(controllers) || !/\bmemory\b/.test(controllers)) return { kind: 'none', reason: 'cgroup v2 without the cpu and memory controllers' };
      fs.mkdirSync(path.join(root, 'borealis'), { recursive: true });
      return { kind: 'v2', reason: '', root };
    }
    if (fs.existsSync(path.join(root, 'cpu', 'cpu.cfs_quota_us')) && fs.existsSync(path.join(root, 'memory', 'memory.limit_in_bytes'))) {
      for (const h of ['cpu', 'cpuacct', 'memory']) fs.mkdirSync(path.join(root, h, 'borealis'), { recursive: true });
      return { kind: 'v1', reason: '', root };
    }
    return { kind: 'none', reason: `no cgroup v1 cpu/memory hierarchy or cgroup v2 tree under ${root}` };
  } catch (err) {
    return { kind: 'none', reason: `cgroups are not writable here (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
}

/** One instance's group(s). All methods are no-ops in degraded mode. */
export class InstanceCgroup {
  private readonly dirs: { cpu: string; cpuacct: string; memory: string } | { unified: string } | null;

  constructor(
    readonly support: CgroupSupport,
    /** Unique on this host: several Borealis homes may share one machine. */
    readonly groupName: string,
  ) {
    const root = support.root ?? DEFAULT_ROOT;
    const instanceId = groupName;
    if (support.kind === 'v1') this.dirs = { cpu: path.join(root, 'cpu', 'borealis', instanceId), cpuacct: path.join(root, 'cpuacct', 'borealis', instanceId), memory: path.join(root, 'memory', 'borealis', instanceId) };
    else if (support.kind === 'v2') this.dirs = { unified: path.join(root, 'borealis', instanceId) };
    else this.dirs = null;
  }

  get enforced(): boolean {
    return this.dirs !== null;
  }

  /** Creates the group(s); returns the cgroup.procs files a process writes its pid to. */
  create(): string[] {
    const d = this.dirs;
    if (!d) return [];
    if ('unified' in d) {
      const parent = path.dirname(d.unified);
      // Controllers must be enabled for the children of borealis/.
      fs.writeFileSync(path.join(path.dirname(parent), 'cgroup.subtree_control'), '+cpu +memory');
      fs.writeFileSync(path.join(parent, 'cgroup.subtree_control'), '+cpu +memory');
      fs.mkdirSync(d.unified, { recursive: true });
      return [path.join(d.unified, 'cgroup.procs')];
    }
    for (const dir of [d.cpu, d.cpuacct, d.memory]) fs.mkdirSync(dir, { recursive: true });
    return [d.cpu, d.cpuacct, d.memory].map((dir) => path.join(dir, 'cgroup.procs'));
  }

  /**
   * Applies limits. The soft memory limit never goes below what is in use:
   * shrinking memory must not push a running backend out.
   */
  apply(limits: CgroupLimits): { memorySoftBytes: number } {
    const d = this.dirs;
    if (!d) return { memorySoftBytes: limits.memorySoftBytes };
    const inUse = this.memoryUsageBytes() ?? 0;
    const soft = Math.max(limits.memorySoftBytes, inUse);
    const hard = Math.max(limits.memoryHardBytes, soft);
    const quotaUs = Math.max(1000, Math.round(limits.cpuCores * CPU_PERIOD_US));
    if ('unified' in d) {
      fs.writeFileSync(path.join(d.unified, 'cpu.max'), `${quotaUs} ${CPU_PERIOD_US}`);
      fs.writeFileSync(path.join(d.unified, 'memory.max'), String(hard));
      fs.writeFileSync(path.join(d.unified, 'memory.high'), String(soft));
    } else {
      fs.writeFileSync(path.join(d.cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
      fs.writeFileSync(path.join(d.cpu, 'cpu.cfs_quota_us'), String(quotaUs));
      // v1 refuses a hard limit below the soft one in some kernels: hard first.
      fs.writeFileSync(path.join(d.memory, 'memory.limit_in_bytes'), String(hard));
      fs.writeFileSync(path.join(d.memory, 'memory.soft_limit_in_bytes'), String(soft));
    }
    return { memorySoftBytes: soft };
  }

  /** The CPU quota in force, in cores (null in degraded mode). */
  cpuQuotaCores(): number | null {
    const d = this.dirs;
    if (!d) return null;
    if ('unified' in d) {
      const [quota, period] = fs.readFileSync(path.join(d.unified, 'cpu.max'), 'utf8').trim().split(' ');
      return quota === 'max' ? null : Number(quota) / Number(period);
    }
    const quota = Number(fs.readFileSync(path.join(d.cpu, 'cpu.cfs_quota_us'), 'utf8'));
    return quota < 0 ? null : quota / Number(fs.readFileSync(path.join(d.cpu, 'cpu.cfs_period_us'), 'utf8'));
  }

  /** Cumulative CPU time of the group, nanoseconds. */
  cpuUsageNs(): number | null {
    const d = this.dirs;
    if (!d) return null;
    if ('unified' in d) {
      const m = /usage_usec (\d+)/.exec(fs.readFileSync(path.join(d.unified, 'cpu.stat'), 'utf8'));
      return m ? Number(m[1]) * 1000 : null;
    }
    return Number(fs.readFileSync(path.join(d.cpuacct, 'cpuacct.usage'), 'utf8'));
  }

  /** Memory in use, without reclaimable file cache. */
  memoryUsageBytes(): number | null {
    const d = this.dirs;
    if (!d) return null;
    try {
      if ('unified' in d) {
        const current = Number(fs.readFileSync(path.join(d.unified, 'memory.current'), 'utf8'));
        const inactive = /inactive_file (\d+)/.exec(fs.readFileSync(path.join(d.unified, 'memory.stat'), 'utf8'));
        return current - Number(inactive?.[1] ?? 0);
      }
      const usage = Number(fs.readFileSync(path.join(d.memory, 'memory.usage_in_bytes'), 'utf8'));
      const inactive = /total_inactive_file (\d+)/.exec(fs.readFileSync(path.join(d.memory, 'memory.stat'), 'utf8'));
      return usage - Number(inactive?.[1] ?? 0);
    } catch {
      return null;
    }
  }

  /** Removes the group(s) once no process is left in them. */
  remove(): void {
    const d = this.dirs;
    if (!d) return;
    for (const dir of 'unified' in d ? [d.unified] : [d.cpu, d.cpuacct, d.memory]) {
      try {
        fs.rmdirSync(dir);
      } catch {
        // still populated or already gone
      }
    }
  }
}

/**
 * Command prefix that moves the new process into the groups before it
 * execs postgres (so every backend it forks is inside), dropping to the
 * service user with setpriv when Borealis runs as root.
 */
export function launchPrefix(procsFiles: readonly string[], identity: { uid: number; gid: number } | null): string[] {
  const script = 'for f in $BOREALIS_CGROUP_PROCS; do echo $$ > "$f" || exit 97; done; exec "$@"';
  const drop = identity ? ['setpriv', `--reuid=${identity.uid}`, `--regid=${identity.gid}`, '--clear-groups', '--'] : [];
  return ['/bin/sh', '-c', script, 'borealis-launch', ...drop];
}
