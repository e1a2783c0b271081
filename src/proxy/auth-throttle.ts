// Rate-limits failed authentications per source address: past the limit in
// a sliding window, a source is refused before authentication until its
// oldest failure leaves the window. Pure: the clock is passed in.

export interface ThrottleLimits {
  /** Failures allowed per source within the window; 0 disables throttling. */
  readonly failuresMax: number;
  readonly windowMs: number;
  /** Sources remembered at once; the least recently failing is forgotten first. */
  readonly sourcesMax: number;
}

export class AuthThrottle {
  /** Failure times per source, oldest first. Map order = least recently failing first. */
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limits: ThrottleLimits) {}

  /** Milliseconds until the source may try again, or 0 if it may now. */
  retryAfterMs(source: string, now: number): number {
    if (this.limits.failuresMax === 0) return 0;
    const times = this.prune(source, now);
    if (times.length < this.limits.failuresMax) return 0;
    return times[times.length - this.limits.failuresMax]! + this.limits.windowMs - now;
  }

  recordFailure(source: string, now: number): void {
    if (this.limits.failuresMax === 0) return;
    const times = this.prune(source, now);
    times.push(now);
    // Keep only what the decision needs, and move the source to the back.
    if (times.length > this.limits.failuresMax) times.splice(0, times.length - this.limits.failuresMax);
    this.failures.delete(source);
    this.failures.set(source, times);
    if (this.failures.size > this.limits.sourcesMax) this.failures.delete(this.failures.keys().next().value!);
  }

  get sources(): number {
    return this.failures.size;
  }

  private prune(source: string, now: number): number[] {
    const times = this.failures.get(source) ?? [];
    while (times.length > 0 && times[0]! <= now - this.limits.windowMs) times.shift();
    if (times.length === 0) this.failures.delete(source);
    return times;
  }
}
