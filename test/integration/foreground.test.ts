// `borealis up` in the foreground: it prints the connection string, serves
// clients, and Ctrl-C (SIGINT) stops everything it started.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { BIN, freePort, PASSWORD, portBase, processesMentioning } from '../helpers/borealis.js';

test('foreground up prints a working URL and Ctrl-C leaves no process behind', async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-fg-'));
  const proxyPort = await freePort();
  const child = spawn(process.execPath, [BIN, '--home', home, 'up', '--proxy-port', String(proxyPort), '--api-port', String(await freePort()), '--engine-port-base', String(portBase())], {
    env: { ...process.env, BOREALIS_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 120_000;
    while (!/Borealis is up/.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`up did not come up:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const url = new RegExp(`postgres://postgres:([^@]+)@127\\.0\\.0\\.1:${proxyPort}/postgres`).exec(out);
    assert.ok(url, out);
    assert.equal(decodeURIComponent(url[1]!), PASSWORD);
    const client = new pg.Client({ host: '127.0.0.1', port: proxyPort, user: 'postgres', password: PASSWORD, database: 'postgres' });
    await client.connect();
    assert.equal((await client.query<{ n: number }>('SELECT 7 AS n')).rows[0]!.n, 7);
    const clientClosed = new Promise<void>((resolve) => client.once('end', () => resolve()));
    client.on('error', () => undefined);
    assert.ok(processesMentioning(home).length >= 2, 'the supervisor and postgres run');
    child.kill('SIGINT');
    assert.equal(await exited, 0, out);
    await clientClosed;
    assert.match(out, /Stopped\./);
    assert.deepEqual(processesMentioning(home), []);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(home, { recursive: true, force: true });
  }
});
