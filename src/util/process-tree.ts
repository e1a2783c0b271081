// Processes by parent, read from /proc. PostgreSQL puts every child of the
// postmaster in a process group of its own (setsid), so a signal to the
// postmaster's group reaches the postmaster alone; its backends, WAL
// senders and workers are found by parent pid instead.
import fs from 'node:fs';

/** `pid` and all its descendants, parents before their children. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** Sends `signal` to `pid` and its descendants (those gone meanwhile are skipped). */
export function signalTree(pid: number, signal: NodeJS.Signals): void {
  // Parents first: a stopped parent reaps no child meanwhile.
  for (const p of processTree(pid)) {
    try {
      process.kill(p, signal);
    } catch {
      // gone already
    }
  }
}
