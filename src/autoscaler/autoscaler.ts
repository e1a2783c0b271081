// The per-second loop: for every serverless instance, sample, decide with
// the pure policy, act through the instance (cgroups, reloadable settings)
// and the proxy (pool size), and meter ACU-seconds.
import type { LocalInstance } from '../compute/local-instance.js';
import type { Logger } from '../util/logger.js';
import { decide, initialState, type Decision, type PolicyState, type PolicyTuning, type Resources, type ScalingConfig } from './policy.js';
import { InstanceSampler } from './sampler.js';

export interface ScalableInstance {
  readonly instance: LocalInstance;
  readonly cluster: string;
  readonly role: 'writer' | 'reader';
  readonly promotionTier: number;
}

export interface InstanceLoad {
  /** Client sessions on the instance. */
  readonly connections: number;
  readonly queuedClients: number;
  /** Transactions served through the proxy so far (a counter). */
  readonly transactionsTotal: number;
}

export interface AutoscalerDeps {
  instances(): readonly ScalableInstance[];
  scaling(cluster: string): ScalingConfig;
  load(instance: ScalableInstance): InstanceLoad;
  /** Called after every capacity change (and pause), to resize pools and record an event. */
  onCapacityChange(instanceId: string, capacityAcu: number, reason: string): void;
  /** ACU-seconds consumed since the last call, per instance. */
  meter(instanceId: string, acuSeconds: number): void;
}

export interface InstanceMetrics {
  readonly at: number;
  readonly capacityAcu: number;
  readonly cpuCores: number;
  /** CPU used as a share of the capacity's CPU (CloudWatch CPUUtilization, 0-100). */
  readonly cpuUtilizationPercent: number;
  /** Largest of CPU and memory use against capacity (CloudWatch ACUUtilization, 0-100). */
  readonly acuUtilizationPercent: number;
  readonly memoryMiB: number;
  readonly connections: number;
  readonly queuedClients: number;
  /** Transactions per second through the proxy since the previous sample. */
  readonly transactionsPerSecond: number;
}

/** How far back each instance's samples are kept (for charts and the series API). */
const HISTORY_MS = 600_000;

export class Autoscaler {
  private timer: NodeJS.Timeout | null = null;
  private readonly states = new Map<string, PolicyState>();
  private readonly samplers = new Map<string, InstanceSampler>();
  private readonly history = new Map<string, InstanceMetrics[]>();
  private readonly lastTotals = new Map<string, { at: number; total: number }>();
  private lastTick = Date.now();

  constructor(
    private readonly deps: AutoscalerDeps,
    private readonly resources: { acuMemoryMiB: number; acuCpuCores: number },
    private readonly tuning: PolicyTuning,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.tick(Date.now()), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  latest(instanceId: string): InstanceMetrics | null {
    return this.history.get(instanceId)?.at(-1) ?? null;
  }

  series(instanceId: string): readonly InstanceMetrics[] {
    return this.history.get(instanceId) ?? [];
  }

  /** One round; public so tests and benchmarks can drive it. */
  tick(now: number): void {
    const dtS = Math.max(0, (now - this.lastTick) / 1000);
    this.lastTick = now;
    const all = this.deps.instances();
    const writers = new Map<string, Resources['writer']>();
    for (const s of all) if (s.role === 'writer') writers.set(s.cluster, { id: s.instance.id, capacityAcu: s.instance.capacityAcu });
    for (const s of all) {
      try {
        this.tickOne(s, now, dtS, s.role === 'reader' && s.promotionTier <= 1 ? (writers.get(s.cluster) ?? null) : null);
      } catch (err) {
        this.log.error('autoscaler round failed for an instance', { instance: s.instance.id, error: (err as Error).message });
      }
    }
  }

  private tickOne(s: ScalableInstance, now: number, dtS: number, writer: Resources['writer']): void {
    const { instance } = s;
    const id = instance.id;
    this.deps.meter(id, instance.capacityAcu * dtS);
    if (instance.state !== 'available') {
      this.states.delete(id);
      this.samplers.get(id)?.reset();
      this.record(id, { at: now, capacityAcu: instance.capacityAcu, cpuCores: 0, cpuUtilizationPercent: 0, acuUtilizationPercent: 0, memoryMiB: 0, ...this.loadMetrics(id, now, this.deps.load(s)) });
      return;
    }
    let sampler = this.samplers.get(id);
    if (!sampler) this.samplers.set(id, (sampler = new InstanceSampler(instance.cgroup, () => instance.server.pid)));
    const resources = sampler.sample(now);
    const load = this.deps.load(s);
    const state = this.states.get(id) ?? initialState(instance.capacityAcu, now);
    const config = this.deps.scaling(s.cluster);
    const decision: Decision = decide(config, state, { ...resources, ...load }, now, { ...this.resources, writer }, this.tuning);
    this.states.set(id, decision.state);
    const capacity = instance.capacityAcu;
    const cpuShare = resources.cpuCores / (capacity * this.resources.acuCpuCores);
    const memShare = resources.memoryMiB / (capacity * this.resources.acuMemoryMiB);
    this.record(id, {
      at: now,
      capacityAcu: capacity,
      cpuCores: resources.cpuCores,
      cpuUtilizationPercent: Math.min(100, cpuShare * 100),
      acuUtilizationPercent: Math.min(100, Math.max(cpuShare, memShare) * 100),
      memoryMiB: resources.memoryMiB,
      ...this.loadMetrics(id, now, load),
    });
    if (decision.pause) {
      this.states.delete(id);
      this.deps.onCapacityChange(id, 0, `auto-pause: ${decision.reason}`);
      void instance.pause(decision.reason);
      return;
    }
    if (decision.capacityAcu !== capacity) {
      instance.setCapacity(decision.capacityAcu);
      this.deps.onCapacityChange(id, decision.capacityAcu, `${capacity} → ${decision.capacityAcu} ACU (${decision.reason})`);
    }
  }

  private loadMetrics(id: string, now: number, load: InstanceLoad): Pick<InstanceMetrics, 'connections' | 'queuedClients' | 'transactionsPerSecond'> {
    const last = this.lastTotals.get(id);
    this.lastTotals.set(id, { at: now, total: load.transactionsTotal });
    const rate = last && now > last.at ? ((load.transactionsTotal - last.total) * 1000) / (now - last.at) : 0;
    return { connections: load.connections, queuedClients: load.queuedClients, transactionsPerSecond: Math.max(0, rate) };
  }

  private record(id: string, m: InstanceMetrics): void {
    let h = this.history.get(id);
    if (!h) this.history.set(id, (h = []));
    h.push(m);
    const max = Math.ceil(HISTORY_MS / this.intervalMs);
    if (h.length > max) h.splice(0, h.length - max);
  }
}
