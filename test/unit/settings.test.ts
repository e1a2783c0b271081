import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { renderConfigurationDoc } from '../../src/config/config-doc.js';
import { loadSettings, SETTINGS, SettingsError } from '../../src/config/settings.js';
import { renderPgHbaConf, renderPostgresqlConf, sizedSettings } from '../../src/engine/pg-settings.js';
import { parseZoneHosts, PlacementError, singleAddressCidr, STORAGE_ZONES, urlHost } from '../../src/storage/placement.js';

test('docs/configuration.md is the rendering of the settings tables', () => {
  const onDisk = fs.readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  assert.equal(onDisk, renderConfigurationDoc(), 'run `npm run docs:config`');
});

test('every setting has a unit-bearing or plain name, an env var and a default', () => {
  for (const s of SETTINGS) {
    assert.match(s.env, /^BOREALIS_[A-Z0-9_]+$/);
    assert.ok(s.doc.length > 10, s.key);
    if (/Timeout|Wait|Backoff/.test(s.key)) assert.match(s.key, /Ms(Max)?$/, `${s.key} needs a unit`);
  }
});

test('environment and flags override defaults; flags win', () => {
  const s = loadSettings({ proxyPort: '7000' }, { BOREALIS_PROXY_PORT: '6000', BOREALIS_API_PORT: '9000', BOREALIS_HOME: '/tmp/x/../y' });
  assert.equal(s.proxyPort, 7000);
  assert.equal(s.apiPort, 9000);
  assert.equal(s.home, '/tmp/y');
  assert.equal(s.clientWaitForWriterMs, 30_000);
});

test('bad values are refused with the setting named', () => {
  assert.throws(() => loadSettings({}, { BOREALIS_PROXY_PORT: 'abc' }), (e: unknown) => e instanceof SettingsError && /BOREALIS_PROXY_PORT/.test(e.message));
  assert.throws(() => loadSettings({ apiPort: '70000' }, {}), /apiPort must be a TCP port/);
  assert.throws(() => loadSettings({}, { BOREALIS_CLIENT_AUTH_TIMEOUT_MS: '1.5' }), /integer/);
});

test('postgresql.conf renders units and quotes, and refuses unmanaged names', () => {
  const conf = renderPostgresqlConf({ shared_buffers: 256, log_line_prefix: "it's", fsync: true, port: 5 });
  assert.match(conf, /^shared_buffers = '256MB'$/m);
  assert.match(conf, /^log_line_prefix = 'it''s'$/m);
  assert.match(conf, /^fsync = on$/m);
  assert.match(conf, /^port = 5$/m);
  assert.throws(() => renderPostgresqlConf({ not_a_setting: 1 }), /not managed/);
});

test('capacity sizes memory settings monotonically', () => {
  const small = sizedSettings({ capacityAcu: 0.5, acuMemoryMiB: 2048 });
  const big = sizedSettings({ capacityAcu: 8, acuMemoryMiB: 2048 });
  for (const key of ['shared_buffers', 'max_connections', 'work_mem', 'effective_cache_size'] as const) {
    assert.ok(Number(big[key]) > Number(small[key]), key);
  }
});

test('storage placement: zone=address[@netns] per zone, and every mistake named', () => {
  const placed = parseZoneHosts('a=10.20.0.11@zone-a, b=10.20.0.12,c=fd00::13@z.c', STORAGE_ZONES);
  assert.deepEqual([...placed], [
    ['a', { address: '10.20.0.11', netns: 'zone-a' }],
    ['b', { address: '10.20.0.12', netns: null }],
    ['c', { address: 'fd00::13', netns: 'z.c' }],
  ]);
  assert.equal(parseZoneHosts('', STORAGE_ZONES).size, 0);
  assert.throws(() => parseZoneHosts('d=10.0.0.1', STORAGE_ZONES), /zone d is not one of the storage zones \(a, b, c\)/);
  assert.throws(() => parseZoneHosts('a=10.0.0.1,a=10.0.0.2', STORAGE_ZONES), /placed twice/);
  assert.throws(() => parseZoneHosts('a=zone-a.example', STORAGE_ZONES), /not an IP address/);
  assert.throws(() => parseZoneHosts('a=10.0.0.1@$(reboot)', STORAGE_ZONES), /not a network namespace name/);
  assert.throws(() => parseZoneHosts('a10.0.0.1', STORAGE_ZONES), /not zone=address/);
  assert.throws(() => loadSettings({}, { BOREALIS_STORAGE_ZONE_HOSTS: 'a=nowhere' }), (e: unknown) => e instanceof SettingsError && /BOREALIS_STORAGE_ZONE_HOSTS/.test(e.message));
  assert.throws(() => loadSettings({}, { BOREALIS_STORAGE_WRITER_HOST: 'localhost' }), /storageWriterHost .* must be one host's IP address: localhost is not an IP address/);
  assert.throws(() => loadSettings({}, { BOREALIS_STORAGE_WRITER_HOST: '0.0.0.0' }), /any-address/, 'it would listen on every interface');
  for (const address of ['::', '224.0.0.1', 'ff02::1', 'fe80::1%eth0']) assert.throws(() => parseZoneHosts(`a=${address}`, STORAGE_ZONES), PlacementError, address);
  assert.equal(singleAddressCidr('10.0.0.1'), '10.0.0.1/32');
  assert.equal(singleAddressCidr('fd00::1'), 'fd00::1/128');
  assert.equal(urlHost('fd00::1'), '[fd00::1]');
});

test('pg_hba admits replication from placed storage addresses only, for the storage user, with SCRAM', () => {
  const hba = renderPgHbaConf({ user: 'borealis_storage', cidrs: ['10.20.0.11/32'] });
  assert.match(hba, /^host replication borealis_storage 10\.20\.0\.11\/32 scram-sha-256$/m);
  assert.doesNotMatch(hba, /^host all all 10\.20/m);
  assert.doesNotMatch(renderPgHbaConf(), /10\.20/);
});
