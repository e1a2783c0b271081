// Security checks over a whole run: every kind of credential is used (a
// password login, a wrong one, a user made and rotated, an IAM token, a
// Data API secret, the control API's token), then every log Borealis and
// its PostgreSQL and storage processes wrote is searched for each of them;
// files holding data, keys or secrets must be private and owned by the
// right user; PostgreSQL never runs as root.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import { Signer } from '@aws-sdk/rds-signer';
import pg from 'pg';
import { processTree } from '../../src/util/process-tree.js';
import { Borealis, PASSWORD, portBase } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()) });
});
after(async () => {
  await b?.destroy();
});

/** Regular files under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** current_user of a login, or `refused: <why>`. */
async function attempt(user: string, password: string, tls = true): Promise<string> {
  const r = await b.login(user, password, { tls });
  return typeof r === 'string' ? r : `refused: ${r.message}`;
}

function uidOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
}

test('no password, verifier, token, key or signature appears in any log; key and data files are private; PostgreSQL never runs as root', async () => {
  const secrets: Array<[string, string]> = [['the master password', PASSWORD]];
  // Password logins, right and wrong.
  assert.equal(await attempt('postgres', PASSWORD), 'postgres');
  const wrong = 'wrong-password-Zq81';
  secrets.push(['a wrong password', wrong]);
  assert.match(await attempt('postgres', wrong), /^refused: password authentication failed/);
  // A user made, rotated and logged in through the CLI, with TLS and without.
  const first = 'first-secret-Pw-4417';
  const second = 'second-secret-Pw-9023';
  secrets.push(['a created user password', first], ['a rotated password', second]);
  await b.cliOk('user', 'create', 'app', '--cluster', 'default', '--password', first);
  assert.equal(await attempt('app', first, false), 'app');
  await b.cliOk('user', 'rotate', 'app', '--cluster', 'default', '--password', second);
  assert.equal(await attempt('app', second), 'app');
  // Its SCRAM verifier: the stored key and salt must not be logged either.
  const [row] = await b.sql<{ v: string }>("SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'app'");
  const keys = /^SCRAM-SHA-256\$\d+:[^$]+\$(.+)$/.exec(row!.v)?.[1];
  assert.ok(keys, row!.v.slice(0, 14));
  for (const part of [row!.v, ...(keys ?? '').split(':')]) secrets.push(['a SCRAM verifier', part]);
  // An access key, an IAM token signed with it, and its signature.
  const key = JSON.parse(await b.cliOk('access-key', 'create', '--json')) as { accessKeyId: string; secretAccessKey: string };
  secrets.push(['an access key secret', key.secretAccessKey]);
  await b.cliOk('user', 'create', 'app_iam', '--cluster', 'default', '--iam');
  const token = await new Signer({ hostname: '127.0.0.1', port: b.proxyPort, username: 'app_iam', region: 'us-east-1', credentials: key }).getAuthToken();
  const signature = new URL(`https://${token}`).searchParams.get('X-Amz-Signature')!;
  secrets.push(['an IAM token', token], ['an IAM token signature', signature]);
  assert.equal(await attempt('app_iam', token), 'app_iam');
  // A Data API secret, used by a call whose own signature is logged nowhere either.
  const secretArn = (await b.cliOk('secret', 'create', '--cluster', 'default', '--username', 'app', '--password', second)).trim();
  const resourceArn = (JSON.parse(await b.cliOk('cluster', 'describe', 'default', '--json')) as { dataApi: { resourceArn: string } }).dataApi.resourceArn;
  const data = new RDSDataClient({ endpoint: `http://127.0.0.1:${b.dataApiPort}`, region: 'us-east-1', credentials: key, maxAttempts: 1 });
  try {
    const r = await data.send(new ExecuteStatementCommand({ resourceArn, secretArn, database: 'postgres', sql: 'SELECT current_user' }));
    assert.deepEqual(r.records, [[{ stringValue: 'app' }]]);
  } finally {
    data.destroy();
  }
  // A statement that fails: PostgreSQL logs its text, which the search below must find.
  const canary = `canary-${Date.now()}`;
  await assert.rejects(b.sql(`SELECT '${canary}'::int`), /invalid input syntax/);
  // The control API's bearer token and the storage nodes' token.
  secrets.push(['the control API token', fs.readFileSync(path.join(b.home, 'run', 'api-token'), 'utf8').trim()]);
  secrets.push(['the storage token', fs.readFileSync(path.join(b.home, 'run', 'storage-token'), 'utf8').trim()]);

  // PostgreSQL runs as the service user, never as root, and so do its children.
  const status = await b.status();
  const pids = status.clusters.flatMap((c) => c.instances.map((i) => i.pid)).filter((p): p is number => p !== null);
  assert.ok(pids.length > 0);
  for (const pid of pids.flatMap(processTree)) assert.notEqual(uidOf(pid), 0, `process ${pid} (${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')}) runs as root`);
  const serviceUid = uidOf(pids[0]!);

  // Private files: the state store, the sealing key, TLS keys, the API token; data and storage directories.
  const mode = (p: string): number => fs.statSync(p).mode & 0o777;
  for (const file of ['state.db', 'secrets.key', 'run/api-token', 'run/storage-token']) assert.equal(mode(path.join(b.home, file)).toString(8), '600', file);
  const tlsKeys = filesUnder(path.join(b.home, 'tls')).filter((f) => /key/.test(path.basename(f)));
  assert.ok(tlsKeys.length > 0, 'a TLS private key');
  for (const f of tlsKeys) assert.equal(mode(f).toString(8), '600', f);
  for (const i of status.clusters.flatMap((c) => c.instances)) {
    const dataDir = path.join(b.home, 'instances', i.id, 'data');
    assert.equal(mode(dataDir).toString(8), '700', dataDir);
    assert.equal(fs.statSync(dataDir).uid, serviceUid, `${dataDir} is owned by the user PostgreSQL runs as`);
  }
  const storageDirs = fs.readdirSync(path.join(b.home, 'storage'), { withFileTypes: true, recursive: true }).filter((e) => e.isDirectory() && /^sn\d$/.test(e.name));
  assert.ok(storageDirs.length >= 6, 'the storage nodes\' directories');
  for (const e of storageDirs) assert.equal(mode(path.join(e.parentPath, e.name)).toString(8), '700', path.join(e.parentPath, e.name));

  // Every log of the run, after everything has stopped and flushed.
  await b.down();
  const logs = filesUnder(b.home).filter((f) => /\.(log|out)$|\/log\/|\/logs\//.test(f) && !/\/pg_wal\//.test(f));
  assert.ok(logs.some((f) => f.endsWith('borealis.log')), 'the supervisor log');
  assert.ok(logs.some((f) => f.endsWith('postgres.log')), `a PostgreSQL log among ${logs.join(', ')}`);
  // The search does reach what PostgreSQL logs: a failing statement's text is there.
  assert.ok(logs.some((f) => fs.readFileSync(f, 'utf8').includes(canary)), 'the canary statement in a log');
  const found: string[] = [];
  for (const f of logs) {
    const text = fs.readFileSync(f, 'utf8');
    for (const [what, value] of secrets) if (value.length >= 8 && text.includes(value)) found.push(`${what} in ${path.relative(b.home, f)}`);
  }
  assert.deepEqual(found, []);
  await b.up();
});

/** A session as a cluster's own superuser over its writer's private socket (what only Borealis reaches). */
async function asSuperuser<T>(instanceId: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const dir = path.join(b.home, 'instances', instanceId);
  const port = Number(/^port = (\d+)$/m.exec(fs.readFileSync(path.join(dir, 'data', 'postgresql.conf'), 'utf8'))![1]);
  const c = new pg.Client({ host: path.join(dir, 'run'), port, user: 'borealis_admin', database: 'postgres' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

test('clusters are isolated by the operating system: even a superuser of one cannot read another\'s files', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('only as root does Borealis run each cluster as a system user of its own');
  await b.cliOk('cluster', 'create', 'other', '--master-username', 'app', '--master-password', 'other-secret-1');
  const status = await b.status();
  const writerOf = (cluster: string) => status.clusters.find((c) => c.name === cluster)!.instances.find((i) => i.role === 'writer')!;
  const mine = writerOf('default');
  const theirs = writerOf('other');
  assert.notEqual(uidOf(mine.pid!), uidOf(theirs.pid!), 'each cluster\'s PostgreSQL runs as its own user');
  for (const i of [mine, theirs]) assert.notEqual(uidOf(i.pid!), 0);
  const theirFile = path.join(b.home, 'instances', theirs.id, 'data', 'PG_VERSION');
  const myFile = path.join(b.home, 'instances', mine.id, 'data', 'PG_VERSION');
  await asSuperuser(mine.id, async (c) => {
    // Its own files it reads (so the refusal below is about whose file it is).
    const own = await c.query<{ v: string }>('SELECT pg_read_file($1) AS v', [myFile]);
    assert.match(own.rows[0]!.v, /^17/);
    await assert.rejects(c.query('SELECT pg_read_file($1)', [theirFile]), /Permission denied/);
    // A program it runs runs as its cluster's user too.
    await c.query('CREATE TEMP TABLE out (line text)');
    await assert.rejects(c.query(`COPY out FROM PROGRAM 'cat ${theirFile}'`), /program "cat .*" failed/);
    // Nor can it reach the other cluster's private socket.
    await assert.rejects(c.query(`COPY out FROM PROGRAM 'ls ${path.join(b.home, 'instances', theirs.id, 'run')}'`), /failed/);
  });
  await b.cliOk('cluster', 'delete', 'other', '--yes');
});

test('links the cluster\'s user plants where the supervisor (root) writes redirect nothing', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('only as root does Borealis run each cluster as a system user of its own');
  const victim = path.join(b.home, 'victim');
  fs.writeFileSync(victim, 'root only\n', { mode: 0o600 });
  const w = (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
  const dir = path.join(b.home, 'instances', w.id);
  // Code running as the cluster's user (here its own superuser's COPY … PROGRAM) plants the links.
  await asSuperuser(w.id, async (c) => {
    await c.query('CREATE TEMP TABLE out (line text)');
    for (const link of [path.join(dir, 'data', 'postgresql.conf'), path.join(dir, 'data', 'pg_hba.conf'), path.join(dir, 'postgres.log')]) {
      await c.query(`COPY out FROM PROGRAM 'ln -sfn ${victim} ${link} && echo ok'`);
    }
  });
  assert.ok(fs.lstatSync(path.join(dir, 'data', 'postgresql.conf')).isSymbolicLink());
  // The supervisor restarts the killed writer: it rewrites the configuration and reopens the log.
  process.kill(w.pid!, 'SIGKILL');
  const back = await b
    .waitFor('the writer back', async () => {
      const x = (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
      return x.state === 'available' && x.pid !== w.pid;
    }, 90_000)
    .then(() => true, () => false);
  assert.equal(fs.readFileSync(victim, 'utf8'), 'root only\n', 'nothing was written through a link');
  const st = fs.statSync(victim);
  assert.equal(st.uid, 0, 'nothing was chowned through a link');
  assert.equal(st.mode & 0o777, 0o600);
  assert.ok(back, 'the writer came back');
  for (const f of [path.join(dir, 'data', 'postgresql.conf'), path.join(dir, 'postgres.log')]) assert.ok(!fs.lstatSync(f).isSymbolicLink(), `${f} is a file of its own again`);
  assert.deepEqual(await b.sql('SELECT 1 AS one'), [{ one: 1 }]);
});
