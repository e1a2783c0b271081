// The proxy's TLS material: a local CA that signs the server certificate,
// kept across starts, and made anew where it no longer fits.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { clusterServiceUserName } from '../../src/engine/service-user.js';
import { ensureTlsMaterial } from '../../src/proxy/tls-material.js';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-tls-'));

test('the server certificate is signed by the home\'s CA, for the names asked, and kept across starts', async () => {
  const dir = tmp();
  try {
    const first = await ensureTlsMaterial(dir, ['localhost', '*.cluster.example.test'], ['127.0.0.1', '10.1.2.3']);
    const ca = new X509Certificate(fs.readFileSync(first.caFile));
    const cert = new X509Certificate(first.cert);
    assert.equal(ca.ca, true);
    assert.equal(cert.ca, false);
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'signed by the CA');
    assert.equal(cert.checkHost('db.cluster.example.test'), '*.cluster.example.test');
    assert.equal(cert.checkIP('10.1.2.3'), '10.1.2.3');
    assert.equal(cert.checkHost('elsewhere.test'), undefined);
    for (const f of ['ca.key', 'server.key']) assert.equal((fs.statSync(path.join(dir, f)).mode & 0o777).toString(8), '600', f);
    assert.equal((fs.statSync(first.caFile).mode & 0o777).toString(8), '644');
    // The next start keeps everything.
    const again = await ensureTlsMaterial(dir, ['localhost', '*.cluster.example.test'], ['127.0.0.1', '10.1.2.3']);
    assert.equal(again.cert, first.cert);
    assert.equal(again.key, first.key);
    // A name the certificate lacks: a new server certificate from the same CA.
    const wider = await ensureTlsMaterial(dir, ['localhost', '*.cluster.example.test', '*.cluster.other.test'], ['127.0.0.1']);
    assert.notEqual(wider.cert, first.cert);
    assert.equal(fs.readFileSync(wider.caFile, 'utf8'), ca.toString());
    assert.ok(new X509Certificate(wider.cert).checkIssued(ca));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a home from before the CA (a self-signed server certificate) gets a CA and a certificate it signs', async () => {
  const dir = tmp();
  try {
    const made = await ensureTlsMaterial(dir);
    // What an old home had: server.key and server.crt only, the certificate issued by nobody here.
    fs.rmSync(path.join(dir, 'ca.key'));
    fs.rmSync(path.join(dir, 'ca.crt'));
    const upgraded = await ensureTlsMaterial(dir);
    assert.notEqual(upgraded.cert, made.cert);
    assert.ok(new X509Certificate(upgraded.cert).checkIssued(new X509Certificate(fs.readFileSync(upgraded.caFile))));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('each cluster gets a system user name of its own, within Linux\'s 32 characters', () => {
  assert.equal(clusterServiceUserName('borealis', 'default'), 'borealis-default');
  const long = 'a'.repeat(40);
  const other = `${'a'.repeat(39)}b`;
  assert.equal(clusterServiceUserName('borealis', long).length, 32);
  assert.notEqual(clusterServiceUserName('borealis', long), clusterServiceUserName('borealis', other));
  assert.match(clusterServiceUserName('borealis', long), /^[a-z_][a-z0-9_-]{0,31}$/);
});
