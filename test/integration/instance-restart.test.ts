// A compute instance's restart loop against real PostgreSQL: a stop asked
// for while the instance announces that it failed (a failover does exactly
// that) leaves no restart behind, so a failed writer never comes back as a
// writer behind its successor's back.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { LocalInstance } from '../../src/compute/local-instance.js';
import type { InstanceTransition } from '../../src/compute/local-instance.js';
import { embeddedBinDir, resolveBinaries } from '../../src/engine/binaries.js';
import { ensureServiceUser } from '../../src/engine/service-user.js';
import { silentLogger } from '../../src/util/logger.js';
import { freePort } from '../helpers/borealis.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-restart-'));
fs.chmodSync(root, 0o711);
const identity = ensureServiceUser('borealis');
const instances: LocalInstance[] = [];
after(async () => {
  for (const i of instances) await i.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

async function instance(name: string): Promise<LocalInstance> {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  const i = new LocalInstance({
    record: { id: name, cluster: 'c', role: 'writer', kind: 'serverless', promotionTier: 1, capacityAcu: 0.5, enginePort: await freePort(), createdAt: new Date().toISOString() },
    dir,
    binaries: resolveBinaries(embeddedBinDir()),
    identity,
    superuser: 'postgres',
    acuMemoryMiB: 256,
    acuCpuCores: 0.25,
    cgroups: { kind: 'none', reason: 'test' },
    maxCapacityAcu: () => 1,
    startTimeoutMs: 60_000,
    stopTimeoutMs: 10_000,
    restartBackoffMsMax: 400,
    log: silentLogger,
  });
  instances.push(i);
  return i;
}

test('a stop requested from the "failed" transition (a failover) cancels the restart that transition announced', async () => {
  const i = await instance('w1');
  await i.start();
  assert.equal(i.state, 'available');
  const seen: InstanceTransition[] = [];
  let stopped = null as Promise<void> | null;
  i.on('transition', (t) => {
    seen.push(t);
    // What the supervisor does: a failed writer is stopped by the failover it starts.
    if (t.to === 'failed') stopped = i.stop();
  });
  i.restartLater('a restart failed');
  assert.ok(stopped, 'the failed transition was announced');
  await stopped;
  assert.equal(i.state, 'stopped');
  // Well past the restart backoff (at most restartBackoffMsMax, 400 ms): nothing may start it again.
  await sleep(2_000);
  assert.equal(i.state, 'stopped', `transitions: ${seen.map((t) => `${t.from}→${t.to}`).join(', ')}`);
  assert.equal(i.server.pid, null, 'no postgres runs');
  assert.ok(!seen.some((t) => t.to === 'available'), 'it never came back');
});
