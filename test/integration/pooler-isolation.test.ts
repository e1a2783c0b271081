// Invariant 4 at the level of single protocol messages: with one server in
// the pool, a client in the middle of an extended-protocol exchange keeps
// that server until a ReadyForQuery ends everything it sent; what follows an
// error up to Sync is answered as PostgreSQL answers it; prepared statements
// stay each client's own; the process id a client sees names no backend.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import pg from 'pg';
import { parseErrorFields } from '../../src/pgwire/messages.js';
import { serializeParse } from '../../src/pgwire/extended.js';
import { Borealis, PASSWORD, rssKiB } from '../helpers/borealis.js';
import { errorCodeOf, msg, WireClient, dataRow } from '../helpers/wire-client.js';
import { typedMessage } from '../../src/pgwire/messages.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({ BOREALIS_SERVER_POOL_SIZE_MAX: '1', BOREALIS_CLIENT_QUEUE_TIMEOUT_MS: '30000', BOREALIS_SERVER_PREPARED_STATEMENTS_MAX: '10' });
  const admin = new pg.Client(b.pgConfig({ tls: false }));
  await admin.connect();
  await admin.query('CREATE TABLE iso (x int)');
  await admin.query('CREATE TABLE shape (a int)');
  await admin.query('INSERT INTO shape VALUES (1)');
  await admin.end();
});
after(async () => {
  await b?.destroy();
});

function wire(params?: Record<string, string>): Promise<WireClient> {
  return WireClient.connect({ port: b.proxyPort, user: 'postgres', password: PASSWORD, ...(params ? { params } : {}) });
}

const rowsOf = (ms: Array<{ code: string; body: Buffer }>): Array<Array<string | null>> => ms.filter((m) => m.code === 'D').map((m) => dataRow(m.body));
const codesOf = (ms: Array<{ code: string; body: Buffer }>): string[] => ms.map((m) => (m.code === 'E' ? `E:${errorCodeOf(m)}` : m.code));

async function pgClient(): Promise<pg.Client> {
  const c = new pg.Client(b.pgConfig({ tls: false }));
  await c.connect();
  return c;
}

test('a suspended portal keeps its server: another client waits and never runs inside that transaction', async () => {
  const a = await wire();
  a.send(msg.parse('', 'INSERT INTO iso VALUES (1)'), msg.bind('', ''), msg.execute(''));
  a.send(msg.parse('', 'SELECT g FROM generate_series(1, 3) g'), msg.bind('cur', ''), msg.execute('cur', 1), msg.flush());
  const first = await a.until('s');
  assert.deepEqual(
    first.filter((m) => m.code === 'D').map((m) => dataRow(m.body)),
    [['1']],
  );
  // A holds an implicit transaction with an INSERT in it. B asks for the only server.
  const other = await pgClient();
  const bQuery = other.query<{ xid: string | null }>('SELECT txid_current_if_assigned()::text AS xid');
  const early = await a.drain(300);
  assert.deepEqual(early, [], 'nothing more for A meanwhile');
  // A's cursor is intact: the rest of its rows, then Sync ends its transaction.
  a.send(msg.execute('cur', 0), msg.sync());
  const rest = await a.until('Z');
  assert.deepEqual(
    rest.filter((m) => m.code === 'D').map((m) => dataRow(m.body)),
    [['2'], ['3']],
  );
  assert.equal(rest.find((m) => m.code === 'E'), undefined, 'no error for A');
  const bResult = await bQuery;
  assert.equal(bResult.rows[0]!.xid, null, "B ran in a transaction of its own, not in A's");
  assert.equal(Number((await other.query<{ n: string }>('SELECT count(*) AS n FROM iso')).rows[0]!.n), 1, "A's INSERT committed at its Sync");
  await other.end();
  a.close();
});

test("an error before Sync: the messages up to Sync get no reply, the session stays in step, and B's error never touches A", async () => {
  const a = await wire();
  a.send(msg.parse('', 'SELECT 1/0'), msg.bind('', ''), msg.execute(''), msg.flush());
  const err = await a.until('E');
  assert.equal(errorCodeOf(err.at(-1)!), '22012');
  // Sent after the error arrived, before Sync: PostgreSQL ignores them.
  const other = await pgClient();
  const bQuery = other.query<{ answer: number }>('SELECT 42 AS answer');
  a.send(msg.parse('named_after_error', 'SELECT 2'), msg.bind('', 'named_after_error'), msg.execute(''));
  assert.deepEqual(await a.drain(300), [], 'no replies to messages the server skips');
  a.send(msg.sync());
  const afterSync = await a.until('Z');
  assert.deepEqual(
    afterSync.map((m) => m.code),
    ['Z'],
  );
  assert.equal((await bQuery).rows[0]!.answer, 42);
  // The statement named after the error was never prepared, for A.
  a.send(msg.parse('named_after_error', 'SELECT 3'), msg.bind('', 'named_after_error'), msg.execute(''), msg.sync());
  const third = await a.until('Z');
  assert.deepEqual(
    third.filter((m) => m.code === 'D').map((m) => dataRow(m.body)),
    [['3']],
  );
  assert.deepEqual(await a.query('SELECT 4'), [['4']]);
  // The server went back to the pool: another client gets it.
  assert.equal((await other.query<{ n: number }>('SELECT 5 AS n')).rows[0]!.n, 5);
  await other.end();
  a.close();
});

test('prepared statements are per client: a fresh prepare after a table change works, and Close then re-prepare recovers', async () => {
  const a = await wire();
  a.send(msg.parse('s1', 'SELECT * FROM shape'), msg.bind('', 's1'), msg.execute(''), msg.sync());
  assert.deepEqual(
    (await a.until('Z')).filter((m) => m.code === 'D').map((m) => dataRow(m.body)),
    [['1']],
  );
  const admin = await pgClient();
  await admin.query('ALTER TABLE shape ADD COLUMN b int DEFAULT 7');
  await admin.end();
  // A client that never prepared this text before the change.
  const c = await wire();
  c.send(msg.parse('s1', 'SELECT * FROM shape'), msg.bind('', 's1'), msg.execute(''), msg.sync());
  const fresh = await c.until('Z');
  assert.equal(fresh.find((m) => m.code === 'E') && parseErrorFields(fresh.find((m) => m.code === 'E')!.body).get('M'), undefined, 'no error for a fresh prepare');
  assert.deepEqual(
    fresh.filter((m) => m.code === 'D').map((m) => dataRow(m.body)),
    [['1', '7']],
  );
  // A prepared before the change: PostgreSQL refuses the old plan (0A000) ...
  a.send(msg.bind('', 's1'), msg.execute(''), msg.sync());
  const stale = await a.until('Z');
  assert.equal(errorCodeOf(stale.find((m) => m.code === 'E')!), '0A000');
  // ... and the driver's recovery, Close and prepare again, works.
  a.send(msg.closeStatement('s1'), msg.parse('s1', 'SELECT * FROM shape'), msg.bind('', 's1'), msg.execute(''), msg.sync());
  const recovered = await a.until('Z');
  assert.equal(recovered.find((m) => m.code === 'E'), undefined, 'no error after re-prepare');
  assert.deepEqual(
    recovered.filter((m) => m.code === 'D').map((m) => dataRow(m.body)),
    [['1', '7']],
  );
  // What a client closed is closed for it.
  a.send(msg.closeStatement('s1'), msg.bind('', 's1'), msg.execute(''), msg.sync());
  const closed = await a.until('Z');
  assert.equal(errorCodeOf(closed.find((m) => m.code === 'E')!), '26000');
  // Preparing a name twice is refused, as by PostgreSQL.
  c.send(msg.parse('s1', 'SELECT 1'), msg.sync());
  assert.equal(errorCodeOf((await c.until('Z')).find((m) => m.code === 'E')!), '42P05');
  a.close();
  c.close();
});

test('the process id a client sees can never be a backend pid; terminating it hits nobody; cancel still works', async () => {
  const a = await pgClient();
  const victim = await pgClient();
  await victim.query('BEGIN');
  const realPid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const seen = (a as unknown as { processID: number }).processID;
  // Linux pids are at most 2^22 (PID_MAX_LIMIT).
  assert.ok(seen > 4_194_304, `client-facing pid ${seen} lies above every possible pid`);
  await victim.query('COMMIT');
  // Out of every client-facing pid handed out, none terminates a backend.
  const victims = await Promise.all(Array.from({ length: 3 }, pgClient));
  for (const v of victims) {
    const pid = (v as unknown as { processID: number }).processID;
    const r = await a.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
    assert.equal(r.rows[0]!.ok, false);
  }
  for (const v of victims) assert.equal((await v.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
  assert.notEqual(realPid, seen);
  // Cancel by the client-facing key still reaches the backend running the query.
  const sleeping = a.query('SELECT pg_sleep(20)');
  await new Promise((r) => setTimeout(r, 300));
  // node-postgres's Client.cancel sends a CancelRequest with the key from BackendKeyData.
  const canceller = new pg.Client(b.pgConfig({ tls: false })) as pg.Client & { cancel(client: pg.Client, query: unknown): void };
  canceller.cancel(a, (a as unknown as { activeQuery: unknown }).activeQuery);
  await assert.rejects(sleeping, (e: Error & { code?: string }) => e.code === '57014');
  await a.end();
  await victim.end();
  await Promise.all(victims.map((v) => v.end()));
});

test('a backend that dies sends its client one FATAL, the server’s own', async () => {
  const a = await wire();
  a.send(msg.query('SELECT pg_terminate_backend(pg_backend_pid())'));
  const got: string[] = [];
  for (;;) {
    try {
      const m = await a.next(5_000);
      if (m.code === 'E') got.push(errorCodeOf(m)!);
    } catch {
      break;
    }
  }
  assert.deepEqual(got, ['57P01']);
});

test('Terminate before any startup packet: the connection closes without a word, as PostgreSQL does', async () => {
  const received = await new Promise<Buffer>((resolve) => {
    const s = net.connect(b.proxyPort, '127.0.0.1', () => s.write(Buffer.from([0x58, 0, 0, 0, 4])));
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Buffer.concat(got)));
  });
  assert.equal(received.length, 0);
});

test('direct TLS (PostgreSQL 17 sslnegotiation=direct): a ClientHello first, ALPN postgresql, then SCRAM', async () => {
  const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ port: b.proxyPort, host: '127.0.0.1', ALPNProtocols: ['postgresql'], rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
  assert.equal(secure.alpnProtocol, 'postgresql');
  const c = await WireClient.connect({ socket: secure, user: 'postgres', password: PASSWORD });
  assert.deepEqual(await c.query("SELECT 'direct'"), [['direct']]);
  c.close();
  // Without ALPN, direct TLS is refused (PostgreSQL 17 requires it).
  const refused = await new Promise<string>((resolve) => {
    const s = tls.connect({ port: b.proxyPort, host: '127.0.0.1', rejectUnauthorized: false }, () => {
      s.write(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]));
    });
    s.on('error', () => resolve('closed'));
    s.on('close', () => resolve('closed'));
    s.on('data', () => resolve('answered'));
  });
  assert.equal(refused, 'closed');
});

test('a Parse declaring 40,000 parameter types (more than a signed 16-bit count) reaches PostgreSQL', async () => {
  const c = await wire();
  const types = Buffer.alloc(2 + 40_000 * 4);
  types.writeUInt16BE(40_000, 0);
  for (let i = 0; i < 40_000; i++) types.writeUInt32BE(23, 2 + i * 4);
  c.send(serializeParse('many', 'SELECT $1::int AS first', types), msg.describeStatement('many'), msg.sync());
  const got = await c.until('Z');
  assert.equal(got.find((m) => m.code === 'E'), undefined, 'no error');
  assert.equal(got[0]!.code, '1');
  const params = got.find((m) => m.code === 't')!;
  assert.equal(params.body.readUInt16BE(0), 40_000);
  assert.deepEqual(await c.query('SELECT 1'), [['1']]);
  c.close();
});

// The cases below came from an adversarial review of the pooler; each failed before its fix.

test('a simple Query after an extended-protocol error is skipped by PostgreSQL; the server stays with its client until Sync', async () => {
  const a = await wire();
  a.send(msg.parse('', 'SELECT 1/0'), msg.bind('', ''), msg.execute(''), msg.flush());
  assert.equal(errorCodeOf((await a.until('E')).at(-1)!), '22012');
  a.send(msg.query('SELECT 1'));
  assert.deepEqual(await a.drain(300), [], 'PostgreSQL skips a Query until Sync');
  const other = await wire();
  other.send(msg.query("SELECT 'B sees this'"));
  assert.deepEqual(await other.drain(300), [], 'the only server is still A\'s');
  a.send(msg.sync());
  assert.deepEqual(codesOf(await a.until('Z')), ['Z']);
  assert.deepEqual(rowsOf(await other.until('Z')), [['B sees this']]);
  other.send(msg.parse('', "SELECT 'B extended'"), msg.bind('', ''), msg.execute(''), msg.sync());
  assert.deepEqual(rowsOf(await other.until('Z')), [['B extended']]);
  a.close();
  other.close();
});

test("the reported settings a client did not send are the pool's defaults, never the previous client's", async () => {
  const a = await wire({ client_encoding: 'LATIN1', TimeZone: 'Asia/Tokyo', DateStyle: 'SQL, DMY', standard_conforming_strings: 'off' });
  assert.deepEqual(await a.query("SELECT current_setting('TimeZone')"), [['Asia/Tokyo']]);
  a.close();
  await new Promise((r) => setTimeout(r, 200));
  const c = await pgClient();
  const r = await c.query<{ tz: string; ds: string; scs: string; enc: string }>(
    "SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds, current_setting('standard_conforming_strings') AS scs, current_setting('client_encoding') AS enc",
  );
  assert.deepEqual(r.rows[0], { tz: 'UTC', ds: 'ISO, MDY', scs: 'on', enc: 'UTF8' });
  await c.query('CREATE TEMP TABLE IF NOT EXISTS enc_probe (t text)').catch(() => undefined);
  const e = await c.query<{ hex: string }>("SELECT encode(convert_to('é', 'UTF8'), 'hex') AS hex");
  assert.equal(e.rows[0]!.hex, 'c3a9', 'text arrives as the UTF-8 it was sent in');
  await c.end();
});

test('the hidden alignment SET cannot be injected through a startup value, whatever the server was left with', async () => {
  const a = await wire({ standard_conforming_strings: 'off' });
  await a.query('SELECT 1');
  a.close();
  await new Promise((r) => setTimeout(r, 200));
  const hostile = "\\'; SET search_path TO pwned, public; SET statement_timeout TO 1234; --";
  const c = await wire({ application_name: hostile });
  // PostgreSQL keeps the first 63 bytes (NAMEDATALEN), as a plain value.
  assert.deepEqual(await c.query("SELECT current_setting('application_name')"), [[hostile.slice(0, 63)]]);
  c.close();
  await new Promise((r) => setTimeout(r, 200));
  const d = await pgClient();
  const r = await d.query<{ sp: string; st: string }>("SELECT current_setting('search_path') AS sp, current_setting('statement_timeout') AS st");
  assert.deepEqual(r.rows[0], { sp: '"$user", public', st: '0' });
  await d.end();
});

test("the pooler's own refusals abort the transaction as PostgreSQL's would", async () => {
  const a = await wire();
  await a.query('CREATE TABLE IF NOT EXISTS refusal (x int)');
  a.send(msg.parse('', 'INSERT INTO refusal VALUES (1)'), msg.bind('', ''), msg.execute(''), msg.bind('', 'no_such_statement'), msg.execute(''), msg.sync());
  const implicit = await a.until('Z');
  assert.deepEqual(codesOf(implicit), ['1', '2', 'C', 'E:26000', 'Z']);
  assert.deepEqual(await a.query('SELECT count(*) FROM refusal'), [['0']], 'the exchange was rolled back');
  await a.query('BEGIN');
  a.send(msg.parse('', 'INSERT INTO refusal VALUES (2)'), msg.bind('', ''), msg.execute(''), msg.sync());
  await a.until('Z');
  a.send(msg.parse('dup', 'SELECT 1'), msg.parse('dup', 'SELECT 2'), msg.sync());
  const dup = await a.until('Z');
  assert.deepEqual(codesOf(dup), ['1', 'E:42P05', 'Z']);
  assert.equal(dup.at(-1)!.body.toString('latin1'), 'E', 'the transaction is aborted');
  a.send(msg.query('COMMIT'));
  const commit = await a.until('Z');
  assert.equal(commit.find((m) => m.code === 'C')!.body.toString('utf8').replace(/\0$/, ''), 'ROLLBACK');
  assert.deepEqual(await a.query('SELECT count(*) FROM refusal'), [['0']]);
  a.close();
});

test('extended-protocol COPY FROM STDIN (libpq: a Sync before the data) gets one ReadyForQuery, and the server goes back', async () => {
  const a = await wire();
  await a.query('CREATE TABLE IF NOT EXISTS copied (x int)');
  a.send(msg.parse('', 'COPY copied FROM STDIN'), msg.bind('', ''), msg.execute(''), msg.sync());
  await a.until('G');
  a.send(typedMessage(0x64, Buffer.from('3\n')), typedMessage(0x63), msg.sync());
  assert.deepEqual(codesOf(await a.until('Z')), ['C', 'Z']);
  assert.deepEqual(await a.drain(200), []);
  const other = await pgClient();
  assert.equal((await other.query<{ n: string }>('SELECT count(*) AS n FROM copied')).rows[0]!.n, '1');
  await other.end();
  assert.deepEqual(await a.query("SELECT 'A next'"), [['A next']]);
  a.close();
});

test("an unknown message type ends only its sender's connection; bytes a client sends after its COMMIT never reach the next client", async () => {
  const a = await wire();
  await a.query('BEGIN');
  const other = await wire();
  other.send(msg.query("SELECT 'B'"));
  await new Promise((r) => setTimeout(r, 200));
  const copyData = typedMessage(0x64, Buffer.alloc(8 * 1024, 0x61));
  a.send(msg.query('COMMIT'), copyData, copyData, typedMessage(0x71));
  const got: string[] = [];
  for (;;) {
    try {
      const m = await a.next(3_000);
      got.push(m.code === 'E' ? `E:${errorCodeOf(m)}` : m.code);
    } catch {
      break;
    }
  }
  assert.ok(got.includes('E:08P01'), `A is told its message is invalid: ${got.join(' ')}`);
  assert.deepEqual(rowsOf(await other.until('Z')), [['B']]);
  assert.deepEqual(await other.query("SELECT 'B again'"), [['B again']]);
  other.close();
});

test('a statement evicted from a full server, or closed and re-parsed, in an exchange that fails, lives on as on PostgreSQL', async () => {
  // The server's statement cache holds 10 here (BOREALIS_SERVER_PREPARED_STATEMENTS_MAX).
  const a = await wire();
  a.send(...Array.from({ length: 10 }, (_, i) => msg.parse(`s${i + 1}`, `SELECT ${i + 1}`)), msg.sync());
  await a.until('Z');
  a.send(msg.parse('', 'SELECT 1/0'), msg.bind('', ''), msg.execute(''), msg.parse('s11', 'SELECT 11'), msg.sync());
  assert.deepEqual(codesOf(await a.until('Z')), ['1', 'E:22012', 'Z']);
  a.send(msg.bind('', 's1'), msg.execute(''), msg.sync());
  assert.deepEqual(rowsOf(await a.until('Z')), [['1']]);
  a.send(msg.parse('', 'SELECT 1/0'), msg.bind('', ''), msg.execute(''), msg.closeStatement('s2'), msg.parse('s2', 'SELECT 22'), msg.sync());
  assert.deepEqual(codesOf(await a.until('Z')), ['1', 'E:22012', 'Z']);
  a.send(msg.bind('', 's2'), msg.execute(''), msg.sync());
  assert.deepEqual(rowsOf(await a.until('Z')), [['2']], 'the original s2');
  a.close();
});

test('temporary tables made without CREATE TEMP, DEALLOCATE and DO blocks pin the client', async () => {
  for (const sql of ['CREATE TABLE pg_temp.sneaky AS SELECT 1 AS x', 'SELECT 1 AS x INTO TEMP sneaky2', 'DEALLOCATE ALL', "DO $$ BEGIN PERFORM set_config('search_path', 'pwned', false); END $$"]) {
    const a = await pgClient();
    await a.query(sql);
    assert.equal((await b.status()).proxy.pinnedClients, 1, sql);
    await a.end();
    await b.waitFor('the pin to end', async () => (await b.status()).proxy.pinnedClients === 0);
  }
});

test("a client that reads none of the pooler's own replies is not read either: proxy memory stays bounded", async () => {
  const pid = (await b.status()).supervisor.pid;
  const a = await wire();
  a.socket.removeAllListeners('data');
  a.socket.pause();
  const before = rssKiB(pid);
  // 400,000 Closes of unknown statements: 400,000 CloseCompletes from the pooler itself.
  const closes = Buffer.concat(Array.from({ length: 1000 }, () => msg.closeStatement('nope')));
  for (let i = 0; i < 400; i++) a.socket.write(closes);
  await new Promise((r) => setTimeout(r, 2_000));
  const grown = rssKiB(pid) - before;
  assert.ok(grown < 48 * 1024, `proxy RSS grew ${Math.round(grown / 1024)} MiB`);
  a.socket.destroy();
});
