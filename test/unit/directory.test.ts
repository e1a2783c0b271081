// The control plane's cached look-ups follow the state store by its
// version: a role swap, a new endpoint or a deleted instance is seen by the
// next look-up with no explicit invalidation; reads alone keep the cache.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { EndpointDirectory, LookupCache } from '../../src/control/directory.js';
import { StorageFleet } from '../../src/control/storage-fleet.js';
import { Store } from '../../src/control/store.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-directory-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function storeWithCluster(name: string): Store {
  const store = new Store(path.join(dir, `${name}.db`), path.join(dir, `${name}.key`));
  store.insertCluster({ name: 'c', engineVersion: '17', masterUsername: 'postgres', adminUsername: 'borealis_admin', systemId: null, createdAt: new Date().toISOString() });
  const instance = (id: string, role: 'writer' | 'reader', enginePort: number) => ({ id, cluster: 'c', role, kind: 'serverless' as const, promotionTier: 1, capacityAcu: 1, enginePort, createdAt: new Date().toISOString() });
  store.insertInstance(instance('c-instance-1', 'writer', 11001));
  store.insertInstance(instance('c-instance-2', 'reader', 11002));
  store.insertEndpoint({ cluster: 'c', type: 'writer', name: '', port: 12001, customType: null, staticMembers: [], excludedMembers: [] });
  return store;
}

test('the version moves with every change that touches a row, not with reads or no-op writes', () => {
  const store = storeWithCluster('version');
  const v0 = store.version;
  store.listInstances('c');
  store.getCluster('c');
  assert.equal(store.version, v0, 'reads do not move it');
  store.setInstanceRole('nosuch', 'writer');
  assert.equal(store.version, v0, 'an UPDATE that matched no row does not move it');
  store.setInstanceRole('c-instance-2', 'reader');
  assert.ok(store.version > v0, 'an UPDATE that matched a row does, even if the value is the same');
  store.close();
});

test('a cached look-up is read again after any store change, and only then', () => {
  const store = storeWithCluster('cache');
  const cache = new LookupCache(() => store.version);
  let reads = 0;
  const writer = (): string | undefined => cache.get('writer', () => (reads++, store.listInstances('c').find((i) => i.role === 'writer')?.id));
  assert.equal(writer(), 'c-instance-1');
  assert.equal(writer(), 'c-instance-1');
  assert.equal(reads, 1, 'kept while nothing changed');
  store.transaction(() => {
    store.setInstanceRole('c-instance-2', 'writer');
    store.setInstanceRole('c-instance-1', 'reader');
  });
  assert.equal(writer(), 'c-instance-2', 'the swap is seen without an invalidation');
  assert.equal(reads, 2);
  store.close();
});

test('the writer endpoint routes to the writer of record after a swap, and its version tells writer sessions to re-route', () => {
  const store = storeWithCluster('route');
  const directory = new EndpointDirectory(store, 'borealis.localhost', () => true);
  const endpoint = { cluster: 'c', type: 'writer' as const, name: '' };
  assert.deepEqual(directory.route(endpoint), { instanceId: 'c-instance-1' });
  assert.equal(directory.writerPort('c'), 11001);
  const before = directory.version();
  store.transaction(() => {
    store.setInstanceRole('c-instance-2', 'writer');
    store.setInstanceRole('c-instance-1', 'reader');
  });
  assert.notEqual(directory.version(), before);
  assert.deepEqual(directory.route(endpoint), { instanceId: 'c-instance-2' });
  assert.equal(directory.writerId('c'), 'c-instance-2');
  assert.equal(directory.writerPort('c'), 11002);
  assert.equal(directory.route({ cluster: 'c', type: 'reader', name: '' }), null, 'no reader endpoint recorded');
  store.close();
});

test('replication is admitted from every placed zone address, and from the writer host itself when some node stays on loopback', () => {
  const store = storeWithCluster('placement');
  const node = (name: string, host: string) => ({ name, zone: 'a', port: 13000 + Number(name.slice(2)), host, netns: null });
  store.insertStorage('c', 'pw', '10.20.0.1', [node('sn1', '10.20.0.11'), node('sn2', '10.20.0.11'), node('sn3', '127.0.0.1')]);
  // sn3 dials 10.20.0.1 from this machine: its source address is 10.20.0.1, not loopback.
  assert.deepEqual(StorageFleet.replicationSources(store, 'c').sort(), ['10.20.0.1', '10.20.0.11']);
  const all = storeWithCluster('placement-all');
  all.insertStorage('c', 'pw', '10.20.0.1', [node('sn1', '10.20.0.11'), node('sn2', '10.20.0.12')]);
  assert.deepEqual(StorageFleet.replicationSources(all, 'c').sort(), ['10.20.0.11', '10.20.0.12']);
  const none = storeWithCluster('placement-none');
  none.insertStorage('c', 'pw', '127.0.0.1', [node('sn1', '127.0.0.1')]);
  assert.deepEqual(StorageFleet.replicationSources(none, 'c'), [], 'the default: loopback only');
  for (const s of [store, all, none]) s.close();
});
