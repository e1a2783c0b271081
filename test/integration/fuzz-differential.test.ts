// Differential fuzzing of the front door: the same generated sequence of
// protocol messages goes to PostgreSQL directly and through Borealis's
// writer endpoint (one server in the pool, so the pooler's choices are
// all exercised), and the two answer streams must match message by
// message: type, SQLSTATE, rows, command tags, transaction status.
// fast-check with a fixed seed, so a failure replays; the shrunk sequence
// is the smallest one that differs. BOREALIS_FUZZ_RUNS and BOREALIS_FUZZ_SEED set the length and the seed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import { typedMessage } from '../../src/pgwire/messages.js';
import { Borealis, PASSWORD } from '../helpers/borealis.js';
import { dataRow, errorCodeOf, msg, WireClient, type WireMessage } from '../helpers/wire-client.js';

const RUNS = Number(process.env.BOREALIS_FUZZ_RUNS ?? 150);

let b: Borealis;
let enginePort = 0;
let admin: pg.Client;
before(async () => {
  b = await Borealis.start({ BOREALIS_SERVER_POOL_SIZE_MAX: '1', BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5' });
  const s = await b.status();
  const writer = s.clusters[0]!.instances.find((i) => i.role === 'writer')!;
  const conf = fs.readFileSync(path.join(b.home, 'instances', writer.id, 'data', 'postgresql.conf'), 'utf8');
  enginePort = Number(/^port = (\d+)$/m.exec(conf)![1]);
  // Directly on the engine, so it never holds the proxy's only server.
  admin = new pg.Client({ host: '127.0.0.1', port: enginePort, user: 'postgres', password: PASSWORD, database: 'postgres' });
  await admin.connect();
  await admin.query('CREATE TABLE fz (x int)');
});
after(async () => {
  await admin?.end();
  await b?.destroy();
});

const SQL = [
  'SELECT 1',
  'SELECT g FROM generate_series(1, 3) g',
  'SELEC',
  'SELECT 1/0',
  'SELECT $1::int',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'INSERT INTO fz VALUES (1)',
  'SELECT count(*) FROM fz',
  'SET search_path = public',
  "SELECT current_setting('search_path')",
  'DEALLOCATE ALL',
  'SELECT 1; SELECT 2',
  '',
];
const NAMES = ['', 's1', 's2'];

type Step =
  | { k: 'parse'; name: string; sql: string }
  | { k: 'bind'; portal: string; name: string }
  | { k: 'describe'; target: 'S' | 'P'; name: string }
  | { k: 'execute'; portal: string; rows: number }
  | { k: 'close'; target: 'S' | 'P'; name: string }
  | { k: 'flush' }
  | { k: 'sync' }
  | { k: 'query'; sql: string };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ k: fc.constant('parse' as const), name: fc.constantFrom(...NAMES), sql: fc.constantFrom(...SQL) }),
  fc.record({ k: fc.constant('bind' as const), portal: fc.constantFrom('', 'p1'), name: fc.constantFrom(...NAMES, 'nope') }),
  fc.record({ k: fc.constant('describe' as const), target: fc.constantFrom('S' as const, 'P' as const), name: fc.constantFrom('', 's1', 'p1') }),
  fc.record({ k: fc.constant('execute' as const), portal: fc.constantFrom('', 'p1'), rows: fc.constantFrom(0, 1) }),
  fc.record({ k: fc.constant('close' as const), target: fc.constantFrom('S' as const, 'P' as const), name: fc.constantFrom('', 's1', 'p1') }),
  fc.constant({ k: 'flush' as const }),
  fc.constant({ k: 'sync' as const }),
  fc.record({ k: fc.constant('query' as const), sql: fc.constantFrom('SELECT 2', 'BEGIN', 'COMMIT', 'SELEC', 'SELECT count(*) FROM fz', 'SELECT 1; SELECT 1/0', '', 'SET LOCAL search_path = pg_catalog', "SELECT current_setting('search_path')") }),
);

function encode(s: Step): Buffer {
  switch (s.k) {
    case 'parse':
      return msg.parse(s.name, s.sql);
    case 'bind':
      return msg.bind(s.portal, s.name);
    case 'describe':
      return typedMessage(0x44, Buffer.from(`${s.target}${s.name}\0`));
    case 'execute':
      return msg.execute(s.portal, s.rows);
    case 'close':
      return typedMessage(0x43, Buffer.from(`${s.target}${s.name}\0`));
    case 'flush':
      return msg.flush();
    case 'sync':
      return msg.sync();
    case 'query':
      return msg.query(s.sql);
  }
}

/** What must match: message types, SQLSTATEs, rows, tags and statuses; not texts, notices or parameter reports. */
function normalise(ms: readonly WireMessage[]): string[] {
  return ms
    .filter((m) => m.code !== 'S' && m.code !== 'N' && m.code !== 'K')
    .map((m) => {
      if (m.code === 'E') return `E:${errorCodeOf(m)}`;
      if (m.code === 'D') return `D:${JSON.stringify(dataRow(m.body))}`;
      if (m.code === 'C') return `C:${m.body.toString('utf8', 0, m.body.length - 1)}`;
      if (m.code === 'Z') return `Z:${m.body.toString('latin1')}`;
      return m.code;
    });
}

/** Runs the steps on a fresh session, then a Sync, a ROLLBACK (the steps may leave a transaction open) and an end marker; returns everything up to the marker's ReadyForQuery. */
async function run(port: number, steps: readonly Step[]): Promise<string[]> {
  const c = await WireClient.connect({ port, user: 'postgres', password: PASSWORD });
  try {
    c.send(...steps.map(encode), msg.sync(), msg.query('ROLLBACK'), msg.query("SELECT 'end-of-run'"));
    const got: WireMessage[] = [];
    for (;;) {
      const m = await c.next(5_000);
      got.push(m);
      if (m.code === 'D' && dataRow(m.body)[0] === 'end-of-run') {
        got.push(...(await c.until('Z')));
        return normalise(got);
      }
    }
  } finally {
    c.close();
  }
}

test('random extended- and simple-protocol sequences: Borealis answers exactly as PostgreSQL does', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 10 }), async (steps) => {
      // Both paths start from the same data.
      await admin.query('TRUNCATE fz');
      const direct = await run(enginePort, steps);
      await admin.query('TRUNCATE fz');
      const proxied = await run(b.proxyPort, steps);
      assert.deepEqual(proxied, direct, JSON.stringify(steps));
    }),
    { seed: Number(process.env.BOREALIS_FUZZ_SEED ?? 20261202), numRuns: RUNS, endOnFailure: process.env.BOREALIS_FUZZ_NO_SHRINK === "1" },
  );
});
