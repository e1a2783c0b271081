// CPU time of processes from /proc, for benchmarks that report a process's
// CPU per transaction.
import fs from 'node:fs';

/** CPU seconds these processes have used so far, user and system; /proc counts in USER_HZ (100 on Linux). */
export function cpuSeconds(pids: readonly number[]): { user: number; system: number } {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    user += Number(fields[11]) / 100;
    system += Number(fields[12]) / 100;
  }
  return { user, system };
}
