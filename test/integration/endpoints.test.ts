// Endpoints: reader (falls back to the writer while there are no readers),
// instance and custom endpoints on their own ports, and TLS server names
// (SNI) that reach any endpoint through any proxy port.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { EndpointStatus } from '../../src/control/status.js';
import { Borealis, PASSWORD } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start();
  const r = await b.cli(['cluster', 'create', 'other', '--master-password', 'other-secret-1']);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await b?.destroy();
});

async function endpoints(cluster = 'default'): Promise<readonly EndpointStatus[]> {
  return (await b.status()).clusters.find((c) => c.name === cluster)!.endpoints;
}

/** Connects and reports which instance's server answered (its data directory). */
async function whereAmI(config: pg.ClientConfig): Promise<string> {
  const c = new pg.Client(config);
  await c.connect();
  try {
    return (await c.query<{ d: string }>("SELECT current_setting('data_directory') AS d")).rows[0]!.d.split('/').at(-2)!;
  } finally {
    await c.end();
  }
}

test('the reader endpoint falls back to the writer when the cluster has no readers', async () => {
  const reader = (await endpoints()).find((e) => e.type === 'reader')!;
  assert.equal(await whereAmI({ ...b.pgConfig({ tls: false }), port: reader.port }), 'default-instance-1');
});

test('an instance endpoint reaches its instance', async () => {
  const inst = (await endpoints()).find((e) => e.type === 'instance')!;
  assert.equal(inst.name, 'default-instance-1');
  assert.equal(await whereAmI({ ...b.pgConfig(), port: inst.port }), 'default-instance-1');
});

test('custom endpoints: create, route to static members, refuse bad members, delete', async () => {
  const created = await b.cli(['endpoint', 'create', 'analytics', '--cluster', 'default', '--type', 'ANY', '--static', 'default-instance-1']);
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /analytics\.cluster-custom\.borealis\.localhost/);
  const custom = (await endpoints()).find((e) => e.type === 'custom')!;
  assert.deepEqual({ name: custom.name, customType: custom.customType, staticMembers: custom.staticMembers }, { name: 'analytics', customType: 'ANY', staticMembers: ['default-instance-1'] });
  assert.equal(await whereAmI({ ...b.pgConfig(), port: custom.port }), 'default-instance-1');
  // A READER endpoint whose only member is the writer has no instance to offer.
  await b.cli(['endpoint', 'create', 'readers-only', '--cluster', 'default', '--type', 'READER', '--static', 'default-instance-1']);
  const readersOnly = (await endpoints()).find((e) => e.name === 'readers-only')!;
  const c = new pg.Client({ ...b.pgConfig(), port: readersOnly.port });
  await assert.rejects(c.connect(), (e: pg.DatabaseError) => e.code === '08006' && /has no member instance/.test(e.message));
  const bad = await b.cli(['endpoint', 'create', 'broken', '--cluster', 'default', '--static', 'other-instance-1']);
  assert.match(bad.stderr, /not in cluster "default"/);
  const both = await b.cli(['endpoint', 'create', 'broken', '--cluster', 'default', '--static', 'default-instance-1', '--excluded', 'default-instance-1']);
  assert.match(both.stderr, /not both/);
  assert.equal((await b.cli(['endpoint', 'delete', 'analytics', '--cluster', 'default'])).code, 0);
  assert.equal((await endpoints()).some((e) => e.name === 'analytics'), false);
  const gone = new pg.Client({ ...b.pgConfig(), port: custom.port, connectionTimeoutMillis: 2_000 });
  await assert.rejects(gone.connect());
});

test('a TLS server name routes to its endpoint through any proxy port', async () => {
  // The default cluster's writer port, but SNI names the other cluster.
  const viaSni = await whereAmI({ ...b.pgConfig({ password: 'other-secret-1' }), ssl: { rejectUnauthorized: false, servername: 'other.cluster.borealis.localhost' } });
  assert.equal(viaSni, 'other-instance-1');
  // Without SNI the port decides, and the other cluster's password is wrong here.
  const c = new pg.Client({ ...b.pgConfig({ password: 'other-secret-1' }) });
  await assert.rejects(c.connect(), (e: pg.DatabaseError) => e.code === '28P01');
  // libpq sends the host name as SNI; hostaddr keeps the connection on loopback.
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      'psql',
      [`host=default-instance-1.instance.borealis.localhost hostaddr=127.0.0.1 port=${b.proxyPort} user=postgres dbname=postgres sslmode=require`, '-Atc', "SELECT current_setting('data_directory')"],
      { env: { ...process.env, PGPASSWORD: PASSWORD } },
      (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)),
    ),
  );
  assert.match(out, /default-instance-1\/data/);
});

test('the certificate covers the endpoint names', async () => {
  const fs = await import('node:fs');
  const { X509Certificate } = await import('node:crypto');
  const cert = new X509Certificate(fs.readFileSync(`${b.home}/tls/server.crt`));
  // checkHost answers with the certificate name that matched (the wildcard).
  assert.equal(cert.checkHost('other.cluster.borealis.localhost'), '*.cluster.borealis.localhost');
  assert.equal(cert.checkHost('x.cluster-custom.borealis.localhost'), '*.cluster-custom.borealis.localhost');
  assert.equal(cert.checkHost('default-instance-1.instance.borealis.localhost'), '*.instance.borealis.localhost');
  assert.equal(cert.checkHost('evil.example.com'), undefined);
});
