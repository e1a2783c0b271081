// RDS IAM database authentication: tokens from @aws-sdk/rds-signer, signed
// with a Borealis access key, accepted as passwords for IAM users over TLS.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Signer } from '@aws-sdk/rds-signer';
import pg from 'pg';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
let key: { accessKeyId: string; secretAccessKey: string };
before(async () => {
  b = await Borealis.start({ BOREALIS_AUTH_FAILURES_PER_SOURCE_MAX: '0', BOREALIS_AUTH_FAILURES_PER_USER_SOURCE_MAX: '0' });
  const created = await b.cli(['access-key', 'create', '--description', 'iam test', '--json']);
  assert.equal(created.code, 0, created.stderr);
  key = JSON.parse(created.stdout) as typeof key;
  const u = await b.cli(['user', 'create', 'app_iam', '--cluster', 'default', '--iam']);
  assert.equal(u.code, 0, u.stderr);
});
after(async () => {
  await b?.destroy();
});

function token(opts: { username?: string; hostname?: string; port?: number; secret?: string; accessKeyId?: string } = {}): Promise<string> {
  return new Signer({
    hostname: opts.hostname ?? '127.0.0.1',
    port: opts.port ?? b.proxyPort,
    username: opts.username ?? 'app_iam',
    region: 'us-east-1',
    credentials: { accessKeyId: opts.accessKeyId ?? key.accessKeyId, secretAccessKey: opts.secret ?? key.secretAccessKey },
  }).getAuthToken();
}

/** Logs in as the IAM user (unless told) and returns current_user, or the refusal. */
function attempt(password: string, opts: { tls?: boolean; user?: string; port?: number; serverName?: string } = {}): Promise<pg.DatabaseError | string> {
  // The name a client would connect by is sent as the TLS server name (the test resolves it to 127.0.0.1 itself).
  return b.login(opts.user ?? 'app_iam', password, opts);
}

function refused(result: pg.DatabaseError | string, code: string, message: RegExp): void {
  assert.notEqual(typeof result, 'string', 'connection should have been refused');
  const e = result as pg.DatabaseError;
  assert.equal(e.code, code, e.message);
  assert.match(e.message, message);
}

test('a valid token logs the IAM user in', async () => {
  assert.equal(await attempt(await token()), 'app_iam');
});

test('expired, wrong-user, wrong-host and badly signed tokens are refused with 28P01', async () => {
  // A token really signed 20 minutes ago (past its 15-minute validity): the
  // signer takes its date from `new Date()`, so the clock is set back meanwhile.
  const RealDate = Date;
  const offsetMs = -20 * 60_000;
  class PastDate extends RealDate {
    constructor(...args: [] | [number | string | Date]) {
      super(args.length === 0 ? RealDate.now() + offsetMs : args[0]);
    }
    static override now(): number {
      return RealDate.now() + offsetMs;
    }
  }
  globalThis.Date = PastDate as DateConstructor;
  let old: string;
  try {
    old = await token();
  } finally {
    globalThis.Date = RealDate;
  }
  refused(await attempt(old), '28P01', /token has expired/);
  refused(await attempt(await token({ username: 'someone_else' })), '28P01', /generated for another user/);
  refused(await attempt(await token({ port: b.proxyPort + 1 })), '28P01', /another host or port/);
  refused(await attempt(await token({ secret: 'not-the-secret' })), '28P01', /signature does not match/);
  refused(await attempt(await token({ accessKeyId: 'BKIAUNKNOWNKEY000000' })), '28P01', /unknown access key/);
  refused(await attempt('just-a-password'), '28P01', /not an IAM authentication token/);
});

test('IAM users need TLS; password users are unaffected', async () => {
  refused(await attempt(await token(), { tls: false }), '28000', /requires TLS/);
  assert.equal(await attempt('correct-horse-battery', { user: 'postgres', tls: false }), 'postgres');
});

test('a role granted rds_iam by SQL logs in with IAM tokens only; revoking it brings its password back', async () => {
  const c = new pg.Client(b.pgConfig());
  await c.connect();
  try {
    await c.query("CREATE ROLE sql_iam LOGIN PASSWORD 'sql-iam-pass-1'; GRANT rds_iam TO sql_iam");
    assert.equal(await attempt(await token({ username: 'sql_iam' }), { user: 'sql_iam' }), 'sql_iam');
    refused(await attempt('sql-iam-pass-1', { user: 'sql_iam' }), '28P01', /IAM authentication failed for user "sql_iam"/);
    refused(await attempt(await token({ username: 'sql_iam' }), { user: 'sql_iam', tls: false }), '28000', /requires TLS/);
    await c.query('REVOKE rds_iam FROM sql_iam');
    assert.equal(await attempt('sql-iam-pass-1', { user: 'sql_iam' }), 'sql_iam');
    refused(await attempt(await token({ username: 'sql_iam' }), { user: 'sql_iam' }), '28P01', /password authentication failed for user "sql_iam"/);
    // `user create --iam` made app_iam a member of rds_iam, without a password.
    const r = await c.query<{ member: boolean; password: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = 'rds_iam' AND m.member = a.oid) AS member, a.rolpassword IS NOT NULL AS password FROM pg_authid a WHERE a.rolname = 'app_iam'",
    );
    assert.deepEqual(r.rows, [{ member: true, password: false }]);
  } finally {
    await c.end();
  }
});

test('tokens signed for the advertised endpoint names and ports are accepted: writer, reader, instance and custom endpoints', async () => {
  const created = await b.cli(['endpoint', 'create', 'analytics', '--cluster', 'default', '--type', 'ANY']);
  assert.equal(created.code, 0, created.stderr);
  const endpoints = (await b.status()).clusters.find((c) => c.name === 'default')!.endpoints;
  assert.deepEqual(endpoints.map((e) => e.type).sort(), ['custom', 'instance', 'reader', 'writer']);
  for (const e of endpoints) {
    const t = await token({ hostname: e.serverName, port: e.port });
    // By the endpoint's own port, with and without its name as the TLS server name.
    assert.equal(await attempt(t, { port: e.port }), 'app_iam', `${e.serverName}:${e.port} without SNI`);
    assert.equal(await attempt(t, { port: e.port, serverName: e.serverName }), 'app_iam', `${e.serverName}:${e.port} with SNI`);
  }
  const writer = endpoints.find((e) => e.type === 'writer')!;
  const reader = endpoints.find((e) => e.type === 'reader')!;
  // Another endpoint's name with this port, or this name with another port, is another host.
  refused(await attempt(await token({ hostname: reader.serverName, port: writer.port }), { port: writer.port }), '28P01', /another host or port/);
  refused(await attempt(await token({ hostname: writer.serverName, port: reader.port }), { port: writer.port }), '28P01', /another host or port/);
  refused(await attempt(await token({ hostname: `elsewhere.cluster.borealis.localhost`, port: writer.port }), { port: writer.port }), '28P01', /another host or port/);
});

test('a deleted access key no longer signs valid tokens', async () => {
  const t = await token();
  assert.equal((await b.cli(['access-key', 'delete', key.accessKeyId])).code, 0);
  refused(await attempt(t), '28P01', /unknown access key/);
});

test('user create --password makes a SCRAM user; duplicates and bad input are refused', async () => {
  assert.equal((await b.cli(['user', 'create', 'reporter', '--cluster', 'default', '--password', 'reporter-pass-1'])).code, 0);
  assert.equal(await attempt('reporter-pass-1', { user: 'reporter' }), 'reporter');
  refused(await attempt('wrong-password', { user: 'reporter' }), '28P01', /password authentication failed/);
  assert.match((await b.cli(['user', 'create', 'reporter', '--cluster', 'default', '--password', 'reporter-pass-2'])).stderr, /already exists/);
  assert.match((await b.cli(['user', 'create', 'x', '--cluster', 'default'])).stderr, /exactly one of --password or --iam/);
  assert.match((await b.cli(['user', 'create', 'Bad-Name', '--cluster', 'default', '--iam'])).stderr, /user names are/);
});
