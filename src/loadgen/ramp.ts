// A concurrency profile over time, given on the command line as points
// "seconds:concurrency,…" joined by straight lines, e.g. "0:0,60:300,120:300,150:0"
// (up to 300 in a minute, hold a minute, down in 30 s). Pure.

export interface RampPoint {
  readonly atS: number;
  readonly concurrency: number;
}

/** Bounds that keep a typo from starting a runaway load. */
export const RAMP_CONCURRENCY_MAX = 5000;
export const RAMP_DURATION_S_MAX = 3600;

export class RampError extends Error {
  override readonly name = 'RampError';
}

export function parseRamp(spec: string): RampPoint[] {
  const points = spec.split(',').map((part) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+)\s*$/.exec(part);
    if (!m) throw new RampError(`ramp point "${part}" is not seconds:concurrency`);
    return { atS: Number(m[1]), concurrency: Number(m[2]) };
  });
  if (points.length < 2) throw new RampError('a ramp needs at least two points');
  if (points[0]!.atS !== 0) throw new RampError('a ramp starts at second 0');
  for (let i = 1; i < points.length; i++) if (points[i]!.atS <= points[i - 1]!.atS) throw new RampError('ramp times must increase');
  if (points.some((p) => p.concurrency > RAMP_CONCURRENCY_MAX)) throw new RampError(`concurrency is limited to ${RAMP_CONCURRENCY_MAX}`);
  if (points[points.length - 1]!.atS > RAMP_DURATION_S_MAX) throw new RampError(`a ramp lasts at most ${RAMP_DURATION_S_MAX} s`);
  return points;
}

export function rampDurationS(points: readonly RampPoint[]): number {
  return points[points.length - 1]!.atS;
}

/** Target concurrency at `tS` seconds (rounded to a whole number of functions). */
export function concurrencyAt(points: readonly RampPoint[], tS: number): number {
  if (tS <= 0) return points[0]!.concurrency;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    if (tS <= b.atS) return Math.round(a.concurrency + ((b.concurrency - a.concurrency) * (tS - a.atS)) / (b.atS - a.atS));
  }
  return points[points.length - 1]!.concurrency;
}
