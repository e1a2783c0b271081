// Generated requests against the Data API (fast-check, fixed seed so a
// failure replays), each signed by the AWS SDK's own SigV4 signer so that it
// reaches the request handling itself: random JSON, requests of the right
// shape with wrong field types and values, cut and flipped bodies, deep
// nesting. Every answer must be a 200 or an AWS error shape with a 4xx
// status (never a 5xx, never a hang); the supervisor's memory stays
// bounded; a bystander's calls keep working.
//
// A longer run: FUZZ_DATAAPI_RUNS=5000 FUZZ_SEED=7 node --import tsx --test test/integration/fuzz-dataapi.test.ts
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import fc from 'fast-check';
import { Borealis, rssKiB, portBase } from '../helpers/borealis.js';
import { rawDataApiClient, type RawAnswer, type RawDataApiClient, type RawOperation } from '../helpers/data-api-raw.js';

const RUNS = Number(process.env.FUZZ_DATAAPI_RUNS ?? 200);
const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
/** Longest a generated request may take to be answered. */
const ANSWER_MS = 20_000;

let b: Borealis;
let key: { accessKeyId: string; secretAccessKey: string };
let resourceArn: string;
let secretArn: string;
let bystander: RDSDataClient;
let raw: RawDataApiClient;

before(async () => {
  b = await Borealis.start({
    BOREALIS_STORAGE_PORT_BASE: String(portBase()),
    BOREALIS_DATA_API_STATEMENT_TIMEOUT_MS: '2000',
    BOREALIS_DATA_API_REQUEST_BYTES_MAX: '200000',
  });
  key = JSON.parse(await b.cliOk('access-key', 'create', '--json')) as typeof key;
  resourceArn = (JSON.parse(await b.cliOk('cluster', 'describe', 'default', '--json')) as { dataApi: { resourceArn: string } }).dataApi.resourceArn;
  secretArn = (await b.cliOk('secret', 'create', '--cluster', 'default', '--username', 'postgres', '--password', 'correct-horse-battery')).trim();
  raw = rawDataApiClient(b.dataApiPort, key, ANSWER_MS);
  bystander = new RDSDataClient({ endpoint: `http://127.0.0.1:${b.dataApiPort}`, region: 'us-east-1', credentials: key, maxAttempts: 1 });
  await bystander.send(new ExecuteStatementCommand({ resourceArn, secretArn, sql: 'CREATE TABLE fuzz_t (id int PRIMARY KEY, v text)' }));
});
after(async () => {
  bystander?.destroy();
  raw?.destroy();
  await b?.destroy();
});

/** What every answer must be: success, or an AWS error the SDKs can raise. */
function checkAnswer(a: RawAnswer, what: string): void {
  if (a.status === 200) {
    assert.doesNotThrow(() => JSON.parse(a.text), `a 200 answer is JSON (${what}): ${a.text.slice(0, 200)}`);
    return;
  }
  assert.ok(a.status >= 400 && a.status < 500, `a 4xx, not ${a.status} (${what}): ${a.type} ${a.text.slice(0, 300)}`);
  assert.ok(a.type && /^[A-Za-z]+Exception$/.test(a.type), `an x-amzn-ErrorType header (${what}): ${a.text.slice(0, 200)}`);
  const parsed = JSON.parse(a.text) as { message?: unknown };
  assert.equal(typeof parsed.message, 'string', `a message (${what})`);
}

// ---- generators ----

const sqlText = fc.oneof(
  fc.constantFrom(
    'SELECT 1',
    'SELECT :a',
    'SELECT :a::int8, :b::text',
    'INSERT INTO fuzz_t VALUES (:a, :b) ON CONFLICT (id) DO UPDATE SET v = excluded.v',
    'SELECT * FROM fuzz_t ORDER BY id LIMIT 5',
    'SELECT repeat(\'x\', 300000)',
    'SELECT pg_sleep(3)',
    'BEGIN',
    'COMMIT',
    'SET search_path = nowhere',
    'SELECT 1; SELECT 2',
    'COPY fuzz_t TO STDOUT',
    'SELECT \'\\x00\'::bytea, E\'\\\\u0000\'',
    'SELECT ::',
  ),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary',  maxLength: 60 }),
);

/** Mostly the right kind of value, sometimes anything at all. */
const mostly = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 8, arbitrary: good }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });
const sometimes = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.oneof({ weight: 9, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: a });

const fieldValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    fc.record({ longValue: mostly(fc.integer()) }),
    fc.record({ stringValue: mostly(fc.string({ unit: 'binary', maxLength: 50 })) }),
    fc.record({ doubleValue: mostly(fc.double({ noNaN: true, noDefaultInfinity: true })) }),
    fc.record({ booleanValue: mostly(fc.boolean()) }),
    fc.record({ blobValue: mostly(fc.base64String({ maxLength: 40 })) }),
    fc.record({ isNull: mostly(fc.constant(true)) }),
    fc.record({ arrayValue: mostly(fc.oneof(fc.record({ longValues: fc.array(fc.integer(), { maxLength: 4 }) }), fc.record({ stringValues: fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }) }), fc.record({ arrayValues: fc.array(tie('value'), { maxLength: 2 }) }))) }),
    fc.record({ longValue: fc.integer(), stringValue: fc.string({ maxLength: 3 }) }),
    fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  ),
})).value;

const parameter = fc.record(
  {
    name: mostly(fc.oneof(fc.constantFrom('a', 'b', 'c'), fc.string({ maxLength: 10 }))),
    value: fieldValue,
    typeHint: mostly(fc.oneof(fc.constantFrom('DATE', 'DECIMAL', 'JSON', 'TIME', 'TIMESTAMP', 'UUID'), fc.string({ maxLength: 8 }))),
  },
  { requiredKeys: ['name', 'value'] },
);

/** Present in about one request in `n`. */
const oneIn = <T>(n: number, a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.oneof({ weight: n - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });

const statementRequest = fc
  .record({
    resourceArn: fc.oneof({ weight: 20, arbitrary: fc.constant('REAL_RESOURCE') }, { weight: 1, arbitrary: fc.string({ maxLength: 80 }) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
    secretArn: fc.oneof({ weight: 20, arbitrary: fc.constant('REAL_SECRET') }, { weight: 1, arbitrary: fc.string({ maxLength: 80 }) }, { weight: 1, arbitrary: fc.integer() }),
    sql: fc.oneof({ weight: 20, arbitrary: sqlText }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
    database: oneIn(2, mostly(fc.oneof({ weight: 6, arbitrary: fc.constant('postgres') }, { weight: 1, arbitrary: fc.string({ maxLength: 20 }) }))),
    parameters: oneIn(2, fc.oneof({ weight: 10, arbitrary: fc.array(parameter, { maxLength: 4 }) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) })),
    parameterSets: oneIn(6, mostly(fc.array(fc.array(parameter, { maxLength: 3 }), { maxLength: 3 }))),
    includeResultMetadata: oneIn(3, mostly(fc.boolean())),
    formatRecordsAs: oneIn(5, mostly(fc.constantFrom('NONE', 'JSON', 'CSV'))),
    continueAfterTimeout: oneIn(8, mostly(fc.boolean())),
    transactionId: oneIn(8, mostly(fc.string({ maxLength: 40 }))),
    resultSetOptions: oneIn(8, mostly(fc.record({ decimalReturnType: fc.constantFrom('STRING', 'DOUBLE_OR_LONG', 'X'), longReturnType: fc.constantFrom('LONG', 'STRING', 'Y') }, { requiredKeys: [] }))),
    extra: oneIn(10, fc.tuple(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }))),
  })
  .map(({ extra, ...fields }) => {
    const out: Record<string, unknown> = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
    if (extra) out[extra[0]] = extra[1];
    return out;
  });

const OPERATIONS: RawOperation[] = ['Execute', 'Execute', 'Execute', 'BatchExecute', 'BeginTransaction', 'CommitTransaction', 'RollbackTransaction', 'ExecuteSql'];

/** A body, as bytes: shaped requests (then perhaps cut or flipped), arbitrary JSON, or deep nesting. */
const body = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(statementRequest, sometimes(fc.tuple(fc.nat(), fc.nat(255))), sometimes(fc.nat())).map(([r, flip, cut]) => ({ r, flip, cut })) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => ({ raw: JSON.stringify(v) ?? 'null' })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((depth) => ({ raw: `{"sql":"SELECT 1","parameters":${'['.repeat(depth)}${']'.repeat(depth)}}` })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ bytes })) },
);

interface Generated {
  readonly r?: unknown;
  readonly flip?: [number, number] | null;
  readonly cut?: number | null;
  readonly raw?: string;
  readonly bytes?: Uint8Array;
}

function render(g: Generated): Buffer {
  if (g.bytes) return Buffer.from(g.bytes);
  if (g.raw !== undefined) return Buffer.from(g.raw);
  const text = JSON.stringify(g.r).replaceAll('"REAL_RESOURCE"', JSON.stringify(resourceArn)).replaceAll('"REAL_SECRET"', JSON.stringify(secretArn));
  let out = Buffer.from(text);
  if (g.cut !== null && g.cut !== undefined) out = out.subarray(0, g.cut % (out.length + 1));
  if (g.flip && out.length > 0) {
    out = Buffer.from(out);
    out[g.flip[0] % out.length] = g.flip[1];
  }
  return out;
}

test('generated requests get a 200 or an AWS 4xx error; memory stays bounded; a bystander is unharmed', { timeout: 600_000 }, async (t) => {
  const pid = (await b.status()).supervisor.pid;
  const rssBefore = rssKiB(pid);
  let answered = 0;
  const seen = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...OPERATIONS), body, async (operation, g) => {
      const bytes = render(g);
      const answer = await raw.send(bytes, operation);
      checkAnswer(answer, `${operation} ${bytes.subarray(0, 300).toString('utf8')}`);
      const kind = answer.status === 200 ? '200' : answer.type!;
      seen.set(kind, (seen.get(kind) ?? 0) + 1);
      answered++;
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
  assert.equal(answered, RUNS);
  t.diagnostic(`answers: ${[...seen].sort((x, y) => y[1] - x[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  // The generators reach past validation: some statements run.
  assert.ok((seen.get('200') ?? 0) > 0 && (seen.get('DatabaseErrorException') ?? 0) > 0, 'some requests run statements, and some statements fail in PostgreSQL');
  // Oversized and unsigned requests are answered the same way.
  checkAnswer(await raw.send(Buffer.alloc(300_000, 0x20)), 'an oversized body');
  const r = await bystander.send(new ExecuteStatementCommand({ resourceArn, secretArn, sql: 'SELECT count(*) AS n FROM fuzz_t' }));
  assert.equal(r.records?.length, 1);
  const grownMiB = (rssKiB(pid) - rssBefore) / 1024;
  assert.ok(grownMiB < 150, `the supervisor grew by ${grownMiB.toFixed(0)} MiB`);
});
