// Ports are checked before `up` sets anything up: one in use is reported at
// once with the flag and environment variable that choose it, and a port
// asked for is never quietly swapped for another — at first start and at a
// restart alike.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, Borealis, freePort, portBase } from '../helpers/borealis.js';

/** Holds a loopback port until closed. */
async function occupy(port: number): Promise<net.Server> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server;
}

function up(home: string, ports: Record<string, number>): Promise<{ code: number; stdout: string; stderr: string }> {
  const args = [BIN, '--home', home, 'up', ...Object.entries(ports).flatMap(([flag, port]) => [`--${flag}`, String(port)])];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: 60_000, env: { ...process.env, BOREALIS_PASSWORD: 'correct-horse-battery' } }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

test('a port in use at first start names its setting, and nothing is set up', async () => {
  const base = portBase();
  const ports = { 'proxy-port': await freePort(), 'api-port': await freePort(), 'data-api-port': await freePort(), 'engine-port-base': base, 'storage-port-base': base + 100 };
  for (const [flag, env, what] of [
    ['data-api-port', 'BOREALIS_DATA_API_PORT', 'the Data API'],
    ['proxy-port', 'BOREALIS_PROXY_PORT', "the default cluster's writer endpoint"],
    ['api-port', 'BOREALIS_API_PORT', 'the control API'],
  ] as const) {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-ports-'));
    const held = await occupy(ports[flag]);
    try {
      const r = await up(home, ports);
      assert.equal(r.code, 1, r.stdout);
      assert.ok(r.stderr.includes(`port ${ports[flag]} for ${what} is in use on 127.0.0.1 (choose another with --${flag} or ${env})`), r.stderr);
      assert.equal(fs.existsSync(path.join(home, 'instances', 'default-instance-1')), false, 'no instance was made');
      assert.equal(fs.existsSync(path.join(home, 'storage')), false, 'no storage node was made');
    } finally {
      held.close();
      fs.rmSync(home, { recursive: true, force: true });
    }
  }
});

test('at a restart a recorded endpoint port in use is reported, not moved; once free, the cluster comes back on it', async () => {
  const b = await Borealis.start();
  try {
    const before = (await b.status()).clusters[0]!.endpoints.map((e) => [e.type, e.port]);
    await b.down();
    const held = await occupy(b.proxyPort);
    try {
      const r = await b.cli(['up', '--detach', '--proxy-port', String(b.proxyPort), '--api-port', String(b.apiPort), '--engine-port-base', String(b.enginePortBase)]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, new RegExp(`port ${b.proxyPort} for the writer endpoint of cluster default is in use`));
    } finally {
      held.close();
    }
    await b.up();
    assert.deepEqual((await b.status()).clusters[0]!.endpoints.map((e) => [e.type, e.port]), before);
    assert.deepEqual(await b.sql('SELECT 1 AS one'), [{ one: 1 }]);
  } finally {
    await b.destroy();
  }
});
