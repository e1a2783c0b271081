// A latency histogram with fixed buckets, as Prometheus exposes them
// (cumulative counts per upper bound, a sum and a count). Fixed bounds keep
// memory and label sets bounded whatever is observed.

/** Upper bounds in seconds: 0.5 ms to 5 s. */
export const LATENCY_BOUNDS_S: readonly number[] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class LatencyHistogram {
  /** Observations per bucket (not cumulative); the last is above every bound. */
  private readonly counts = new Array<number>(LATENCY_BOUNDS_S.length + 1).fill(0);
  sumSeconds = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BOUNDS_S.length && seconds > LATENCY_BOUNDS_S[i]!) i++;
    this.counts[i]!++;
    this.sumSeconds += seconds;
    this.count++;
  }

  /** Adds another histogram's observations into this one. */
  add(other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.sumSeconds += other.sumSeconds;
    this.count += other.count;
  }

  /** Cumulative counts by upper bound, ending with +Inf (= count). */
  cumulative(): Array<{ le: number; count: number }> {
    let running = 0;
    return this.counts.map((c, i) => {
      running += c;
      return { le: LATENCY_BOUNDS_S[i] ?? Infinity, count: running };
    });
  }
}
