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
import { Borealis, PASSWORD } from '../helpers/borealis.js';
import { errorCodeOf, msg, WireClient, dataRow } from '../helpers/wire-client.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({ BOREALIS_SERVER_POOL_SIZE_MAX: '1', BOREALIS_CLIENT_QUEUE_TIMEOUT_MS: '30000' });
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

function wire(): Promise<WireClient> {
  return WireClient.connect({ port: b.proxyPort, user: 'postgres', password: PASSWORD });
}

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
