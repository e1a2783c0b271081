// Per-instance resource samples: CPU cores used and memory in use, from the
// instance's cgroup when capacity is enforced, else from /proc (the
// postmaster and its children).
import fs from 'node:fs';
import type { InstanceCgroup } from '../compute/cgroups.js';

/** Linux clock ticks per second for /proc/<pid>/stat times (USER_HZ). */
const CLOCK_TICKS_PER_S = 100;

export interface ResourceSample {
  readonly cpuCores: number;
  readonly memoryMiB: number;
}

export class InstanceSampler {
  private last: { at: number; cpuNs: number } | null = null;

  constructor(
    private readonly cgroup: InstanceCgroup,
    private readonly postmasterPid: () => number | null,
  ) {}

  sample(now: number): ResourceSample {
    const pid = this.postmasterPid();
    let cpuNs: number | null = null;
    let memoryBytes: number | null = null;
    if (this.cgroup.enforced) {
      cpuNs = this.cgroup.cpuUsageNs();
      memoryBytes = this.cgroup.memoryUsageBytes();
    } else if (pid) {
      // One walk of /proc serves both figures.
      const pids = postgresPids(pid);
      cpuNs = procCpuNs(pids);
      memoryBytes = procMemoryBytes(pids);
    }
    let cpuCores = 0;
    if (cpuNs !== null && this.last && now > this.last.at) cpuCores = Math.max(0, (cpuNs - this.last.cpuNs) / ((now - this.last.at) * 1e6));
    this.last = cpuNs === null ? null : { at: now, cpuNs };
    return { cpuCores, memoryMiB: (memoryBytes ?? 0) / (1024 * 1024) };
  }

  reset(): void {
    this.last = null;
  }
}

/** The postmaster and its direct children (every backend and worker). */
function postgresPids(postmaster: number): number[] {
  const pids = [postmaster];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat && Number(stat[1]) === postmaster) pids.push(Number(entry));
  }
  return pids;
}

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, ...]. */
function readStat(pid: number): string[] | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

function procCpuNs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const f = readStat(pid);
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name.
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return (ticks / CLOCK_TICKS_PER_S) * 1e9;
}

/** Private memory of every process plus the shared memory once. */
function procMemoryBytes(pids: readonly number[]): number {
  let anon = 0;
  let shmem = 0;
  for (const pid of pids) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      anon += Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0);
      shmem = Math.max(shmem, Number(/RssShmem:\s+(\d+)/.exec(status)?.[1] ?? 0));
    } catch {
      // exited meanwhile
    }
  }
  return (anon + shmem) * 1024;
}
