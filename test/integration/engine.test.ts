// The engine module on its own, against real PostgreSQL: a configured bin
// directory, initdb + start + stop, and promoting a standby.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { embeddedBinDir, EngineNotFound, resolveBinaries } from '../../src/engine/binaries.js';
import { baseSettings } from '../../src/engine/pg-settings.js';
import type { LocalInstance } from '../../src/compute/local-instance.js';
import { withInstanceSession } from '../../src/control/instance-session.js';
import { PostgresServer } from '../../src/engine/postgres-server.js';
import { chownTree, ensureServiceUser } from '../../src/engine/service-user.js';
import { silentLogger } from '../../src/util/logger.js';
import { freePort } from '../helpers/borealis.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-engine-'));
fs.chmodSync(root, 0o711);
const identity = ensureServiceUser('borealis');
const started: PostgresServer[] = [];
after(async () => {
  for (const s of started) await s.stop(10_000);
  fs.rmSync(root, { recursive: true, force: true });
});

function server(name: string, port: number): PostgresServer {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const s = new PostgresServer({
    binaries: resolveBinaries(embeddedBinDir()),
    dataDir: path.join(dir, 'data'),
    socketDir: path.join(dir, 'run'),
    port,
    logFile: path.join(dir, 'postgres.log'),
    identity,
    superuser: 'postgres',
    log: silentLogger,
  });
  started.push(s);
  return s;
}

async function query<T extends pg.QueryResultRow>(s: PostgresServer, sql: string): Promise<T[]> {
  const c = new pg.Client({ host: s.options.socketDir, port: s.options.port, user: 'postgres', database: 'postgres' });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

test('a configured bin directory is used as given; a wrong one is refused clearly', () => {
  const b = resolveBinaries(embeddedBinDir());
  assert.match(b.version, /^17\.\d+$/);
  assert.equal(b.majorVersion, 17);
  assert.throws(() => resolveBinaries(path.join(root, 'nowhere')), (e: unknown) => e instanceof EngineNotFound && /no executable postgres in/.test(e.message));
});

test('a standby made from the primary\'s files is promoted and takes writes', async () => {
  const primary = server('primary', await freePort());
  await primary.initdb();
  primary.writeConfig(baseSettings(primary.options.port, primary.options.socketDir, primary.options.binaries.majorVersion));
  await primary.start(60_000);
  await query(primary, 'CREATE TABLE before_copy (x int); INSERT INTO before_copy VALUES (1)');
  await primary.stop(10_000);
  // A cold copy of the stopped primary, started in standby mode.
  const standby = server('standby', await freePort());
  fs.cpSync(primary.options.dataDir, standby.options.dataDir, { recursive: true });
  chownTree(identity, path.dirname(standby.options.dataDir));
  standby.writeConfig(baseSettings(standby.options.port, standby.options.socketDir, standby.options.binaries.majorVersion));
  fs.writeFileSync(path.join(standby.options.dataDir, 'standby.signal'), '');
  if (identity) fs.chownSync(path.join(standby.options.dataDir, 'standby.signal'), identity.uid, identity.gid);
  await standby.start(60_000);
  assert.deepEqual(await query(standby, 'SELECT pg_is_in_recovery() AS r'), [{ r: true }]);
  await assert.rejects(query(standby, 'INSERT INTO before_copy VALUES (2)'), /read-only transaction/);
  assert.equal(await standby.promote(30_000), true);
  assert.deepEqual(await query(standby, 'SELECT pg_is_in_recovery() AS r'), [{ r: false }]);
  await query(standby, 'INSERT INTO before_copy VALUES (2)');
  assert.deepEqual(await query(standby, 'SELECT count(*)::int AS n FROM before_copy'), [{ n: 2 }]);
  // Promoting a primary is a no-op that says so.
  assert.equal(await standby.promote(5_000), false);
});

test('a postgres killed under an idle session of the supervisor\'s fails that session\'s next query and nothing else', async () => {
  const s = server('killed', await freePort());
  await s.initdb();
  s.writeConfig(baseSettings(s.options.port, s.options.socketDir, s.options.binaries.majorVersion));
  await s.start(60_000);
  // withInstanceSession reads only these two fields of the instance.
  const instance = { server: s, options: { record: { enginePort: s.options.port } } } as unknown as LocalInstance;
  const uncaught: Error[] = [];
  const onUncaught = (err: Error): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    const outcome = withInstanceSession(instance, 'postgres', async (client) => {
      await client.query('SELECT 1');
      // Idle between two queries when its server dies: PostgreSQL's FATAL reaches an idle client.
      s.killGroup();
      await new Promise((r) => setTimeout(r, 1000));
      await client.query('SELECT 1');
    });
    await assert.rejects(outcome, 'the query on the dead session fails');
    assert.deepEqual(uncaught.map((e) => e.message), [], 'no error escaped to the process');
  } finally {
    process.off('uncaughtException', onUncaught);
  }
});
