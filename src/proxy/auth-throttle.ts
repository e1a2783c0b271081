// Rate-limits failed authentications in sliding windows: past the limit, a
// key is refused before authentication until its oldest failure leaves the
// window. A login is keyed twice: by user and source address (so that one
// user's wrong passwords do not lock the other users of a shared address
// out), and by source address alone with a higher limit (so that guessing
// over many user names is bounded too). Pure: the clock is passed in.

export interface ThrottleLimits {
  /** Failures allowed per key within the window; 0 disables throttling. */
  readonly failuresMax: number;
  readonly windowMs: number;
  /** Keys remembered at once; the least recently failing is forgotten first. */
  readonly sourcesMax: number;
}

export class AuthThrottle {
  /** Failure times per key, oldest first. Map order = least recently failing first. */
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limits: ThrottleLimits) {}

  /** Milliseconds until the key may try again, or 0 if it may now. */
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
    // Keep only what the decision needs, and move the key to the back.
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

export interface LoginThrottleLimits {
  /** Failures of one user from one source within the window; 0 disables. */
  readonly perUserSourceMax: number;
  /** Failures of all users from one source within the window; 0 disables. */
  readonly perSourceMax: number;
  readonly windowMs: number;
  /** Keys each window remembers at once. */
  readonly keysMax: number;
}

export type ThrottleVerdict = { readonly scope: 'user'; readonly retryAfterMs: number } | { readonly scope: 'source'; readonly retryAfterMs: number } | null;

export class LoginThrottle {
  private readonly byUserSource: AuthThrottle;
  private readonly bySource: AuthThrottle;

  constructor(limits: LoginThrottleLimits) {
    this.byUserSource = new AuthThrottle({ failuresMax: limits.perUserSourceMax, windowMs: limits.windowMs, sourcesMax: limits.keysMax });
    this.bySource = new AuthThrottle({ failuresMax: limits.perSourceMax, windowMs: limits.windowMs, sourcesMax: limits.keysMax });
  }

  /** Whether a login of `user` from `source` must wait; the address as a whole first. */
  check(source: string, user: string, now: number): ThrottleVerdict {
    const sourceMs = this.bySource.retryAfterMs(source, now);
    if (sourceMs > 0) return { scope: 'source', retryAfterMs: sourceMs };
    const userMs = this.byUserSource.retryAfterMs(userKey(source, user), now);
    return userMs > 0 ? { scope: 'user', retryAfterMs: userMs } : null;
  }

  recordFailure(source: string, user: string, now: number): void {
    this.bySource.recordFailure(source, now);
    this.byUserSource.recordFailure(userKey(source, user), now);
  }
}

const userKey = (source: string, user: string): string => `${source}\0${user}`;
