import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, initialState, validateScalingConfig, type PolicyState, type Resources, type Sample, type ScalingConfig } from '../../src/autoscaler/policy.js';

const resources: Resources = { acuMemoryMiB: 2048, acuCpuCores: 0.25, writer: null };
const config: ScalingConfig = { minAcu: 0.5, maxAcu: 8, secondsUntilAutoPause: 300 };
const idle: Sample = { cpuCores: 0.01, memoryMiB: 200, connections: 1, queuedClients: 0 };

/** Runs the policy once a second over a load profile; returns capacity per second. */
function simulate(load: (second: number) => Sample, seconds: number, cfg: ScalingConfig = config, start = 0.5): number[] {
  let state: PolicyState = initialState(start, 0);
  const out: number[] = [];
  for (let s = 1; s <= seconds; s++) {
    const d = decide(cfg, state, load(s), s * 1000, resources);
    state = d.state;
    out.push(d.capacityAcu);
  }
  return out;
}

test('a step to CPU-heavy load scales up at once, in proportion', () => {
  // 1.4 cores wanted = 1.4 / (0.25 * 0.7) = 8 ACUs.
  const caps = simulate((s) => (s >= 3 ? { ...idle, cpuCores: 1.4 } : idle), 5);
  assert.deepEqual(caps.slice(0, 3), [0.5, 0.5, 8]);
});

test('a ramp is followed upwards step by step', () => {
  const caps = simulate((s) => ({ ...idle, cpuCores: 0.05 * s }), 20);
  for (let i = 1; i < caps.length; i++) assert.ok(caps[i]! >= caps[i - 1]!, `no drop during a ramp at ${i}`);
  assert.ok(caps[19]! > 4);
});

test('after load stops capacity steps down after the quiet period, never below min', () => {
  const caps = simulate((s) => (s <= 5 ? { ...idle, cpuCores: 1.4 } : idle), 80);
  assert.equal(caps[4], 8);
  assert.equal(caps[10], 8, 'holds during the quiet period');
  const firstDrop = caps.findIndex((c, i) => i > 5 && c < 8);
  assert.equal(firstDrop, 14, 'last busy at second 5, quiet period 10 s: first step down at second 15');
  for (let i = firstDrop + 1; i < caps.length; i++) assert.ok(caps[i - 1]! - caps[i]! <= 0.5, 'one step at a time');
  assert.equal(caps.at(-1), 0.5);
});

test('a spike is served and then released', () => {
  const caps = simulate((s) => (s === 10 ? { ...idle, cpuCores: 0.7 } : idle), 60);
  assert.equal(caps[9], 4);
  assert.equal(caps.at(-1), 0.5);
});

test('steady load does not flap', () => {
  const caps = simulate(() => ({ ...idle, cpuCores: 0.5 }), 120);
  const settled = caps.slice(5);
  assert.equal(new Set(settled).size, 1, `capacity moved: ${[...new Set(settled)].join(', ')}`);
});

test('memory in use is a floor: never scaled below it', () => {
  const caps = simulate((s) => (s <= 3 ? { ...idle, cpuCores: 1.4, memoryMiB: 5000 } : { ...idle, memoryMiB: 5000 }), 90);
  // 5000 MiB / (2048 * 0.75) = 3.26 → 3.5 ACUs.
  assert.equal(caps.at(-1), 3.5);
  assert.ok(caps.every((c) => c >= 3.5));
});

test('queued clients raise capacity', () => {
  const caps = simulate((s) => (s >= 2 ? { ...idle, queuedClients: 8 } : idle), 3);
  assert.equal(caps[1], 2.5);
});

test('min and max clamp every decision', () => {
  const narrow = { minAcu: 2, maxAcu: 3, secondsUntilAutoPause: 300 };
  const caps = simulate((s) => (s < 10 ? { ...idle, cpuCores: 5 } : idle), 60, narrow, 2);
  assert.ok(caps.every((c) => c >= 2 && c <= 3), caps.join(','));
  assert.equal(caps[0], 3);
  assert.equal(caps.at(-1), 2);
});

test('a configuration change moves capacity into the new range at once', () => {
  let state = initialState(6, 0);
  const d = decide({ minAcu: 0.5, maxAcu: 2, secondsUntilAutoPause: 300 }, state, idle, 1000, resources);
  assert.equal(d.capacityAcu, 2);
  state = initialState(0.5, 0);
  assert.equal(decide({ minAcu: 4, maxAcu: 8, secondsUntilAutoPause: 300 }, state, idle, 1000, resources).capacityAcu, 4);
});

test('min 0: pause after secondsUntilAutoPause without connections, not before', () => {
  const cfg = { minAcu: 0, maxAcu: 4, secondsUntilAutoPause: 30 };
  let state = initialState(0.5, 0);
  let paused = -1;
  for (let s = 1; s <= 60 && paused < 0; s++) {
    const sample = s <= 10 ? idle : { ...idle, connections: 0 };
    const d = decide(cfg, state, sample, s * 1000, resources);
    state = d.state;
    if (d.pause) paused = s;
  }
  assert.equal(paused, 40, 'last connection at 10 s, paused 30 s later');
  const withMin = decide({ ...cfg, minAcu: 0.5 }, initialState(0.5, 0), { ...idle, connections: 0 }, 1_000_000, resources);
  assert.equal(withMin.pause, false, 'no auto-pause unless min is 0');
});

test('tier 0-1 readers never go below the writer', () => {
  const d = decide(config, initialState(0.5, 0), idle, 1000, { ...resources, writer: { id: 'w', capacityAcu: 6 } });
  assert.equal(d.capacityAcu, 6);
});

test('a scale-up names the term that set the target', () => {
  const reason = (cfg: ScalingConfig, current: number, sample: Sample, writer: Resources['writer'] = null): string => decide(cfg, initialState(current, 0), sample, 1000, { ...resources, writer }).reason;
  const light = { ...idle, memoryMiB: 78 };
  assert.equal(reason(config, 3, light, { id: 'default-instance-1', capacityAcu: 4 }), 'scale up: follows writer default-instance-1 at 4 ACU');
  assert.equal(reason(config, 0.5, { ...light, cpuCores: 1.4 }, { id: 'default-instance-1', capacityAcu: 4 }), 'scale up: CPU 1.40 cores');
  assert.equal(reason(config, 0.5, { ...light, memoryMiB: 5000 }), 'scale up: memory 5000 MiB in use');
  assert.equal(reason(config, 0.5, { ...light, cpuCores: 0.2, queuedClients: 20 }), 'scale up: 20 clients queued');
  assert.equal(reason({ minAcu: 4, maxAcu: 8, secondsUntilAutoPause: 300 }, 0.5, light), 'scale up: minimum capacity 4 ACU');
  assert.equal(reason({ minAcu: 0.5, maxAcu: 3, secondsUntilAutoPause: 300 }, 0.5, { ...light, cpuCores: 5 }), 'scale up: CPU 5.00 cores, held at maximum 3 ACU');
});

test('scaling configuration follows Aurora\'s rules', () => {
  assert.equal(validateScalingConfig({ minAcu: 0, maxAcu: 1, secondsUntilAutoPause: 300 }), null);
  assert.equal(validateScalingConfig({ minAcu: 0.5, maxAcu: 256, secondsUntilAutoPause: 5 }), null);
  assert.match(validateScalingConfig({ minAcu: 0.3, maxAcu: 2, secondsUntilAutoPause: 300 })!, /steps of 0.5/);
  assert.match(validateScalingConfig({ minAcu: 2, maxAcu: 1, secondsUntilAutoPause: 300 })!, /at least the minimum/);
  assert.match(validateScalingConfig({ minAcu: 0, maxAcu: 0.5, secondsUntilAutoPause: 300 })!, /maximum capacity is 1 to 256/);
  assert.match(validateScalingConfig({ minAcu: 0, maxAcu: 300, secondsUntilAutoPause: 300 })!, /maximum/);
  assert.match(validateScalingConfig({ minAcu: 0, maxAcu: 2, secondsUntilAutoPause: 0 })!, /secondsUntilAutoPause/);
});
