// Fault injection for the crash-point tests: with BOREALIS_CRASH_AFTER set
// to a step's name (e.g. `failover:fenced`), the supervisor kills itself
// with SIGKILL the moment that step has been recorded, which is a kill -9
// between two steps at an exact point rather than wherever a timer lands.
// Unset (always, outside those tests) it does nothing.
const crashAfter = process.env.BOREALIS_CRASH_AFTER ?? '';

export function crashPoint(name: string): void {
  if (crashAfter !== name) return;
  process.kill(process.pid, 'SIGKILL');
  // Nothing after the step may run while the signal lands.
  for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
}
