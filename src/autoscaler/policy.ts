// The autoscaler's decision: a pure function of the instance's scaling
// configuration, its last decision state, one sample and the clock. No I/O,
// so every rule is unit-tested with a fake clock.
//
// Rules (Aurora Serverless v2's behaviour, as documented):
// - capacity moves in 0.5-ACU steps within [min, max];
// - up: at once and in proportion to the excess: CPU above the target
//   utilisation, memory above its target share, clients queued for a server;
// - down: one step at a time, only after a quiet period, never below what
//   memory in use needs;
// - readers in promotion tiers 0-1 stay at least at the writer's capacity;
// - min 0: pause after secondsUntilAutoPause with no user connections.
// https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2.how-it-works.html

export const ACU_STEP = 0.5;

export interface ScalingConfig {
  readonly minAcu: number;
  readonly maxAcu: number;
  /** Used only when minAcu is 0. */
  readonly secondsUntilAutoPause: number;
}

export interface PolicyTuning {
  /** CPU use (of the capacity's quota) the policy aims for. */
  readonly cpuTarget: number;
  /** Share of the capacity's memory that may be in use before scaling up. */
  readonly memoryTarget: number;
  /** How long every signal must be low before a step down. */
  readonly quietPeriodMs: number;
  /** Time between two steps down. */
  readonly stepDownIntervalMs: number;
  /** Extra ACUs per client waiting for a server connection. */
  readonly acuPerQueuedClient: number;
}

export const DEFAULT_TUNING: PolicyTuning = {
  cpuTarget: 0.7,
  memoryTarget: 0.75,
  quietPeriodMs: 10_000,
  stepDownIntervalMs: 2_000,
  acuPerQueuedClient: 0.25,
};

export interface Sample {
  /** CPU used, in cores, over the last interval. */
  readonly cpuCores: number;
  /** Memory in use by the instance, MiB. */
  readonly memoryMiB: number;
  /** Client sessions attached to the instance (through the proxy) plus direct backends. */
  readonly connections: number;
  /** Clients waiting for a server connection to the instance. */
  readonly queuedClients: number;
}

export interface PolicyState {
  readonly capacityAcu: number;
  /** When a signal last asked for at least the current capacity. */
  readonly busySince: number;
  readonly lastChangeAt: number;
  /** When the instance last had a connection. */
  readonly lastConnectionAt: number;
}

export interface Decision {
  readonly capacityAcu: number;
  readonly pause: boolean;
  readonly reason: string;
  readonly state: PolicyState;
}

export interface Resources {
  readonly acuMemoryMiB: number;
  readonly acuCpuCores: number;
  /** The writer a tier 0-1 reader follows (its capacity is a floor); null for any other instance. */
  readonly writer: { readonly id: string; readonly capacityAcu: number } | null;
}

export function roundUpToStep(acu: number): number {
  return Math.ceil(acu / ACU_STEP - 1e-9) * ACU_STEP;
}

export function clamp(acu: number, config: ScalingConfig): number {
  const min = Math.max(config.minAcu, ACU_STEP);
  return Math.min(config.maxAcu, Math.max(min, acu));
}

export function initialState(capacityAcu: number, now: number): PolicyState {
  return { capacityAcu, busySince: now, lastChangeAt: now, lastConnectionAt: now };
}

export function decide(config: ScalingConfig, state: PolicyState, sample: Sample, now: number, resources: Resources, tuning: PolicyTuning = DEFAULT_TUNING): Decision {
  const current = state.capacityAcu;
  const lastConnectionAt = sample.connections > 0 ? now : state.lastConnectionAt;
  // What each signal needs, in ACUs, and how an event names it when it sets the target.
  const needs = [
    { acu: sample.cpuCores / (resources.acuCpuCores * tuning.cpuTarget), why: `CPU ${sample.cpuCores.toFixed(2)} cores` },
    { acu: sample.memoryMiB / (resources.acuMemoryMiB * tuning.memoryTarget), why: `memory ${Math.round(sample.memoryMiB)} MiB in use` },
    { acu: sample.queuedClients > 0 ? current + sample.queuedClients * tuning.acuPerQueuedClient : 0, why: `${sample.queuedClients} clients queued` },
  ];
  if (resources.writer) needs.push({ acu: resources.writer.capacityAcu, why: `follows writer ${resources.writer.id} at ${resources.writer.capacityAcu} ACU` });
  const top = needs.reduce((a, b) => (b.acu > a.acu ? b : a));
  const wanted = roundUpToStep(top.acu);
  const target = clamp(wanted, config);
  const base = { ...state, lastConnectionAt };

  if (config.minAcu === 0 && sample.connections === 0 && now - lastConnectionAt >= config.secondsUntilAutoPause * 1000) {
    return { capacityAcu: 0, pause: true, reason: `no connections for ${config.secondsUntilAutoPause} s`, state: { ...base, capacityAcu: 0, lastChangeAt: now } };
  }
  if (target > current) {
    // A target the range moved names the bound; otherwise the largest need set it.
    const why = target > wanted ? `minimum capacity ${target} ACU` : target < wanted ? `${top.why}, held at maximum ${config.maxAcu} ACU` : top.why;
    return { capacityAcu: target, pause: false, reason: `scale up: ${why}`, state: { ...base, capacityAcu: target, busySince: now, lastChangeAt: now } };
  }
  // Out of range after a configuration change: follow it at once.
  const inRange = clamp(current, config);
  if (inRange !== current) {
    return { capacityAcu: inRange, pause: false, reason: 'scaling configuration changed', state: { ...base, capacityAcu: inRange, busySince: now, lastChangeAt: now } };
  }
  const busy = target >= current;
  const busySince = busy ? now : state.busySince;
  if (!busy && now - busySince >= tuning.quietPeriodMs && now - state.lastChangeAt >= tuning.stepDownIntervalMs) {
    const next = Math.max(target, current - ACU_STEP);
    return { capacityAcu: next, pause: false, reason: 'scale down: quiet', state: { ...base, capacityAcu: next, busySince, lastChangeAt: now } };
  }
  return { capacityAcu: current, pause: false, reason: 'steady', state: { ...base, busySince } };
}

export function validateScalingConfig(c: ScalingConfig): string | null {
  const isStep = (x: number): boolean => Number.isFinite(x) && Math.abs(x / ACU_STEP - Math.round(x / ACU_STEP)) < 1e-9;
  if (!isStep(c.minAcu) || !isStep(c.maxAcu)) return 'capacities move in steps of 0.5 ACU';
  if (c.minAcu < 0 || c.minAcu > 256) return 'minimum capacity is 0 (auto-pause) or 0.5 to 256 ACUs';
  if (c.maxAcu < 1 || c.maxAcu > 256) return 'maximum capacity is 1 to 256 ACUs';
  if (c.maxAcu < c.minAcu) return 'maximum capacity must be at least the minimum';
  if (!Number.isInteger(c.secondsUntilAutoPause) || c.secondsUntilAutoPause < 1 || c.secondsUntilAutoPause > 86_400) return 'secondsUntilAutoPause is 1 to 86,400 seconds';
  return null;
}
