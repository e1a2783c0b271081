// PostgreSQL's roles are the users: the proxy authenticates against the
// cluster's own pg_authid, so CREATE/ALTER/DROP ROLE take effect on the next
// connection, refusals carry PostgreSQL's own SQLSTATEs, a paused cluster
// still checks passwords (without waking for a wrong one), and `borealis
// user` is a convenience over the same roles.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({ BOREALIS_AUTH_FAILURES_PER_SOURCE_MAX: '0', BOREALIS_AUTH_FAILURES_PER_USER_SOURCE_MAX: '0' });
});
after(async () => {
  await b?.destroy();
});

/** Runs SQL as the master user through the proxy. */
async function asMaster(sql: string, port?: number, password?: string): Promise<void> {
  const c = new pg.Client({ ...b.pgConfig(password ? { password } : {}), ...(port ? { port } : {}) });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** Logs in and returns current_user, or the refusal. */
const login = (user: string, password: string, opts: { port?: number; tls?: boolean } = {}): Promise<string | pg.DatabaseError> => b.login(user, password, opts);

function refused(result: string | pg.DatabaseError, code: string, message: RegExp): void {
  assert.notEqual(typeof result, 'string', `the login should have been refused, but it logged in as ${String(result)}`);
  const e = result as pg.DatabaseError;
  assert.equal(e.code, code, e.message);
  assert.match(e.message, message);
}

test('a role made with CREATE ROLE … LOGIN PASSWORD logs in through the proxy (pg and psql)', async () => {
  await asMaster("CREATE ROLE app LOGIN PASSWORD 'app-pass-1'");
  assert.equal(await login('app', 'app-pass-1'), 'app');
  assert.equal(await login('app', 'app-pass-1', { tls: false }), 'app');
  refused(await login('app', 'wrong-pass'), '28P01', /password authentication failed for user "app"/);
  const out = await new Promise<string>((resolve, reject) =>
    execFile('psql', [b.url({ user: 'app', password: 'app-pass-1' }), '-Atc', 'SELECT current_user'], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))),
  );
  assert.equal(out.trim(), 'app');
});

test('ALTER ROLE … PASSWORD: the new password works and the old one is refused on the next connection', async () => {
  assert.equal(await login('app', 'app-pass-1'), 'app');
  await asMaster("ALTER ROLE app PASSWORD 'app-pass-2'");
  assert.equal(await login('app', 'app-pass-2'), 'app');
  refused(await login('app', 'app-pass-1'), '28P01', /password authentication failed for user "app"/);
});

test('NOLOGIN is refused with 28000; an expired VALID UNTIL, an md5 or no password with 28P01', async () => {
  await asMaster('ALTER ROLE app NOLOGIN');
  refused(await login('app', 'app-pass-2'), '28000', /role "app" is not permitted to log in/);
  await asMaster('ALTER ROLE app LOGIN');
  assert.equal(await login('app', 'app-pass-2'), 'app');
  await asMaster("ALTER ROLE app VALID UNTIL '2001-01-01'");
  refused(await login('app', 'app-pass-2'), '28P01', /password authentication failed for user "app"/);
  await asMaster("ALTER ROLE app VALID UNTIL 'infinity'");
  assert.equal(await login('app', 'app-pass-2'), 'app');
  await asMaster("SET password_encryption = 'md5'; ALTER ROLE app PASSWORD 'app-pass-md5'");
  refused(await login('app', 'app-pass-md5'), '28P01', /password authentication failed for user "app"/);
  await asMaster('ALTER ROLE app PASSWORD NULL');
  refused(await login('app', 'app-pass-md5'), '28P01', /password authentication failed for user "app"/);
  await asMaster("ALTER ROLE app PASSWORD 'app-pass-3'");
  assert.equal(await login('app', 'app-pass-3'), 'app');
});

test('DROP ROLE: the role can no longer log in, even with its pooled servers still idle', async () => {
  assert.equal(await login('app', 'app-pass-3'), 'app');
  // The pool of app's servers keeps one idle; dropping needs them gone.
  await asMaster("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'; DROP ROLE app");
  refused(await login('app', 'app-pass-3'), '28P01', /password authentication failed for user "app"/);
});

test('a role changed just before its writer crashed is checked against pg_authid once the writer is back, not against a stale copy', async () => {
  await asMaster("CREATE ROLE crashy LOGIN PASSWORD 'crashy-pass-1'");
  assert.equal(await login('crashy', 'crashy-pass-1'), 'crashy');
  // No login since this change: Borealis's last-known row still holds the old verifier.
  await asMaster("ALTER ROLE crashy PASSWORD 'crashy-pass-2'");
  const pid = await b.writerPid();
  assert.ok(pid);
  process.kill(pid, 'SIGKILL');
  refused(await login('crashy', 'crashy-pass-1'), '28P01', /password authentication failed for user "crashy"/);
  assert.equal(await login('crashy', 'crashy-pass-2'), 'crashy');
});

test('borealis user create/list/rotate/delete work on the cluster\'s roles', async () => {
  const created = await b.cli(['user', 'create', 'reporter', '--cluster', 'default', '--password', 'reporter-pass-1']);
  assert.equal(created.code, 0, created.stderr);
  assert.equal(await login('reporter', 'reporter-pass-1'), 'reporter');
  await asMaster("CREATE ROLE by_sql LOGIN PASSWORD 'by-sql-pass-1'");
  const listed = await b.cli(['user', 'list', '--cluster', 'default', '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const users = JSON.parse(listed.stdout) as Array<{ name: string; auth: string; canLogin: boolean }>;
  assert.deepEqual(users.find((u) => u.name === 'reporter'), { name: 'reporter', auth: 'password', canLogin: true });
  assert.deepEqual(users.find((u) => u.name === 'by_sql'), { name: 'by_sql', auth: 'password', canLogin: true });
  assert.ok(users.some((u) => u.name === 'postgres'));
  assert.ok(!users.some((u) => u.name.startsWith('pg_')), 'built-in roles are not listed');
  const rotated = await b.cli(['user', 'rotate', 'by_sql', '--cluster', 'default', '--password', 'by-sql-pass-2']);
  assert.equal(rotated.code, 0, rotated.stderr);
  assert.equal(await login('by_sql', 'by-sql-pass-2'), 'by_sql');
  refused(await login('by_sql', 'by-sql-pass-1'), '28P01', /password authentication failed/);
  const deleted = await b.cli(['user', 'delete', 'by_sql', '--cluster', 'default']);
  assert.equal(deleted.code, 0, deleted.stderr);
  refused(await login('by_sql', 'by-sql-pass-2'), '28P01', /password authentication failed/);
  assert.match((await b.cli(['user', 'delete', 'by_sql', '--cluster', 'default'])).stderr, /does not exist/);
  assert.match((await b.cli(['user', 'rotate', 'nobody', '--cluster', 'default', '--password', 'nobody-pass-1'])).stderr, /does not exist/);
});

test('a paused cluster checks passwords without waking for a wrong one, and resumes for a right one', async () => {
  const created = await b.cli(['cluster', 'create', 'sleepy', '--master-password', 'sleepy-pass-1', '--min', '0', '--max', '1', '--auto-pause', '2']);
  assert.equal(created.code, 0, created.stderr);
  const port = (await b.status()).clusters.find((c) => c.name === 'sleepy')!.endpoints.find((e) => e.type === 'writer')!.port;
  await asMaster("CREATE ROLE night_owl LOGIN PASSWORD 'owl-pass-1'", port, 'sleepy-pass-1');
  const writerState = async (): Promise<string> => (await b.status()).clusters.find((c) => c.name === 'sleepy')!.instances.find((i) => i.role === 'writer')!.state;
  await b.waitFor('auto-pause', async () => (await writerState()) === 'paused', 60_000);
  refused(await login('night_owl', 'not-the-pass', { port }), '28P01', /password authentication failed for user "night_owl"/);
  refused(await login('nobody_here', 'not-the-pass', { port }), '28P01', /password authentication failed for user "nobody_here"/);
  assert.equal(await writerState(), 'paused', 'a refused login does not resume the cluster');
  assert.equal(await login('night_owl', 'owl-pass-1', { port }), 'night_owl');
});

test('the master user is no superuser but a member of rds_superuser; what only a superuser may do is refused with 42501', async () => {
  const c = new pg.Client(b.pgConfig());
  await c.connect();
  try {
    const me = await c.query<{ rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean }>('SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user');
    assert.deepEqual(me.rows, [{ rolsuper: false, rolcreaterole: true, rolcreatedb: true }]);
    const granted = await c.query<{ role: string; member: boolean }>(
      "SELECT r AS role, pg_has_role(current_user, r, 'USAGE') AS member FROM unnest(ARRAY['rds_superuser', 'pg_read_all_data', 'pg_write_all_data', 'pg_monitor', 'pg_signal_backend']) AS r",
    );
    assert.deepEqual(granted.rows.filter((r) => !r.member), [], 'the master user holds each of these');
    const denied = async (sql: string, message: RegExp): Promise<void> =>
      assert.rejects(c.query(sql), (e: pg.DatabaseError) => {
        assert.equal(e.code, '42501', `${sql}: ${e.message}`);
        assert.match(e.message, message);
        return true;
      });
    await c.query('CREATE TABLE IF NOT EXISTS mine (n int)');
    await denied("COPY mine TO PROGRAM 'cat > /dev/null'", /permission denied to COPY to or from an external program/);
    await denied('GRANT pg_read_server_files TO CURRENT_USER', /permission denied to grant role "pg_read_server_files"/);
    await denied('CREATE LANGUAGE plpython3u', /permission denied to create extension "plpython3u"/);
    await denied('ALTER ROLE CURRENT_USER SUPERUSER', /permission denied to alter role/);
    // What the master user is for still works: roles, databases, data.
    await c.query("CREATE ROLE helper LOGIN PASSWORD 'helper-pass-1'; GRANT rds_iam TO helper; REVOKE rds_iam FROM helper; DROP ROLE helper");
    await c.query('CREATE DATABASE master_made');
  } finally {
    await c.end();
  }
  // Borealis's own superuser is never reachable through the proxy.
  refused(await login('borealis_admin', 'anything-at-all'), '28P01', /password authentication failed for user "borealis_admin"/);
  assert.equal(await login('postgres', 'correct-horse-battery'), 'postgres');
});

test('the master user creates the extensions Aurora lets rds_superuser create (pg_stat_statements preloaded); superuser-only ones stay refused', async () => {
  const c = new pg.Client(b.pgConfig());
  await c.connect();
  try {
    for (const ext of ['pg_stat_statements', 'pg_buffercache', 'pgstattuple', 'pgcrypto']) await c.query(`CREATE EXTENSION IF NOT EXISTS ${ext}`);
    // Preloaded, so its view answers (it needs shared_preload_libraries).
    await c.query('SELECT 42 AS borealis_probe');
    const seen = await c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_statements WHERE query LIKE '%borealis_probe%'");
    assert.ok(seen.rows[0]!.n >= 1, 'pg_stat_statements records statements');
    assert.ok((await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_buffercache')).rows[0]!.n > 0);
    // Created by the master user, it is the extension's owner and may drop it.
    assert.deepEqual((await c.query("SELECT extowner::regrole::text AS owner FROM pg_extension WHERE extname = 'pg_buffercache'")).rows, [{ owner: 'postgres' }]);
    await c.query('DROP EXTENSION pg_buffercache');
    for (const [sql, message] of [
      ['CREATE EXTENSION file_fdw', /permission denied to create extension "file_fdw"/],
      ['CREATE EXTENSION plpython3u', /permission denied to create extension "plpython3u"/],
      ['CREATE EXTENSION pg_surgery', /permission denied to create extension "pg_surgery"/],
    ] as const) {
      await assert.rejects(c.query(sql), (e: pg.DatabaseError) => {
        assert.equal(e.code, '42501', `${sql}: ${e.message}`);
        assert.match(e.message, message);
        return true;
      });
    }
    // Marked trusted, not open to all: a role without CREATE on the database is refused.
    await c.query("CREATE ROLE ext_app LOGIN PASSWORD 'ext-app-pass-1'");
  } finally {
    await c.end();
  }
  const app = new pg.Client({ ...b.pgConfig({ user: 'ext_app', password: 'ext-app-pass-1' }) });
  await app.connect();
  try {
    await assert.rejects(app.query('CREATE EXTENSION pgrowlocks'), (e: pg.DatabaseError) => e.code === '42501');
  } finally {
    await app.end();
  }
});

test('the master user cannot lower synchronous_commit for the cluster (ALTER DATABASE/ROLE SET); a session still may for itself', async () => {
  // Each check is the first session of its user and database, so its server is a new backend.
  const show = async (opts: { user?: string; password?: string; database?: string; options?: string } = {}): Promise<string> => {
    const c = new pg.Client({ ...b.pgConfig({ tls: false, ...(opts.user ? { user: opts.user, password: opts.password } : {}), ...(opts.database ? { database: opts.database } : {}) }), ...(opts.options ? { options: opts.options } : {}) });
    await c.connect();
    try {
      return (await c.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit;
    } finally {
      await c.end();
    }
  };
  await asMaster("CREATE ROLE lax LOGIN PASSWORD 'lax-pass-1'");
  await asMaster('CREATE DATABASE laxdb');
  try {
    // Each is in the master user's reach in PostgreSQL, and would make every later session skip the storage quorum.
    await asMaster('ALTER DATABASE laxdb SET synchronous_commit = off');
    await asMaster('ALTER ROLE lax SET synchronous_commit = local');
    assert.equal(await show({ database: 'laxdb' }), 'on', 'a new session in a database with its own setting');
    assert.equal(await show({ user: 'lax', password: 'lax-pass-1' }), 'on', 'a new session of a role with its own setting');
    // The Data API's sessions too.
    const { RDSDataClient, ExecuteStatementCommand } = await import('@aws-sdk/client-rds-data');
    const key = JSON.parse(await b.cliOk('access-key', 'create', '--json')) as { accessKeyId: string; secretAccessKey: string };
    const resourceArn = (JSON.parse(await b.cliOk('cluster', 'describe', 'default', '--json')) as { dataApi: { resourceArn: string } }).dataApi.resourceArn;
    const secretArn = (await b.cliOk('secret', 'create', '--cluster', 'default', '--username', 'lax', '--password', 'lax-pass-1')).trim();
    const data = new RDSDataClient({ endpoint: `http://127.0.0.1:${b.dataApiPort}`, region: 'us-east-1', credentials: key, maxAttempts: 1 });
    try {
      const r = await data.send(new ExecuteStatementCommand({ resourceArn, secretArn, database: 'postgres', sql: 'SHOW synchronous_commit' }));
      assert.deepEqual(r.records, [[{ stringValue: 'on' }]]);
    } finally {
      data.destroy();
    }
    // A session's own choice stands (docs/security.md says what it costs).
    assert.equal(await show({ options: '-c synchronous_commit=local' }), 'local');
  } finally {
    await asMaster('DROP ROLE lax');
    await asMaster('DROP DATABASE laxdb WITH (FORCE)').catch(() => undefined);
  }
});

test('the master user cannot shadow the catalogs Borealis reads as superuser (ALTER DATABASE postgres SET search_path)', async () => {
  // A view named pg_authid that records each use, put before pg_catalog for every new session of the postgres database.
  await asMaster(`CREATE TABLE public.shadow_calls (at timestamptz DEFAULT now());
    CREATE FUNCTION public.shadow() RETURNS SETOF pg_catalog.pg_authid LANGUAGE sql AS $$ INSERT INTO public.shadow_calls DEFAULT VALUES; SELECT * FROM pg_catalog.pg_authid $$;
    CREATE VIEW public.pg_authid AS SELECT * FROM public.shadow();
    ALTER DATABASE postgres SET search_path = public, pg_catalog`);
  try {
    // Borealis's own sessions are new after a restart.
    await b.down();
    await b.up();
    await asMaster("CREATE ROLE shadowed LOGIN PASSWORD 'shadowed-pass-1'");
    assert.equal(await login('shadowed', 'shadowed-pass-1'), 'shadowed');
    refused(await login('shadowed', 'not-the-password'), '28P01', /password authentication failed/);
    const [calls] = await b.sql<{ n: number }>('SELECT count(*)::int AS n FROM public.shadow_calls');
    assert.equal(calls!.n, 0, 'the role reads went to pg_catalog.pg_authid, never through the view');
  } finally {
    await asMaster('ALTER DATABASE postgres RESET search_path; DROP VIEW public.pg_authid; DROP FUNCTION public.shadow(); DROP TABLE public.shadow_calls; DROP ROLE IF EXISTS shadowed');
  }
});
