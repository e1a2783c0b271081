// The RDS Data API through AWS's own client (@aws-sdk/client-rds-data),
// with real SigV4 signing, against a real cluster.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import {
  BatchExecuteStatementCommand,
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  RDSDataClient,
  RollbackTransactionCommand,
  type SqlParameter,
} from '@aws-sdk/client-rds-data';
import { Borealis } from '../helpers/borealis.js';
import { rawDataApiClient } from '../helpers/data-api-raw.js';

let b: Borealis;
let client: RDSDataClient;
let key: { accessKeyId: string; secretAccessKey: string };
let resourceArn: string;
let secretArn: string;

before(async () => {
  b = await Borealis.start({
    BOREALIS_DATA_API_RESPONSE_BYTES_MAX: '200000',
    BOREALIS_DATA_API_TRANSACTION_IDLE_MS: '3000',
    BOREALIS_DATA_API_REQUEST_BYTES_MAX: '100000',
    BOREALIS_DATA_API_STATEMENT_TIMEOUT_MS: '2000',
  });
  key = JSON.parse((await b.cli(['access-key', 'create', '--json'])).stdout) as typeof key;
  const creds = JSON.parse((await b.cli(['cluster', 'describe', 'default', '--json'])).stdout) as { dataApi: { resourceArn: string } };
  resourceArn = creds.dataApi.resourceArn;
  secretArn = (await b.cli(['secret', 'create', '--cluster', 'default', '--username', 'postgres', '--password', 'correct-horse-battery'])).stdout.trim();
  client = new RDSDataClient({ endpoint: `http://127.0.0.1:${b.dataApiPort}`, region: 'us-east-1', credentials: key, maxAttempts: 1 });
});
after(async () => {
  client?.destroy();
  await b?.destroy();
});

const exec = (sql: string, extra: Partial<ConstructorParameters<typeof ExecuteStatementCommand>[0]> = {}) => client.send(new ExecuteStatementCommand({ resourceArn, secretArn, sql, ...extra }));

test('every type comes back in AWS\'s Field shapes, with metadata', async () => {
  const r = await exec(
    `SELECT 1::int4 AS i4, 9007199254740991::int8 AS i8, 1.5::float8 AS f8, 12.345::numeric(10,3) AS num, true AS b, 'hi'::text AS t,
            '\\xdeadbeef'::bytea AS bin, '2024-01-02 03:04:05.678'::timestamp AS ts, '2024-01-02 03:04:05+02'::timestamptz AS tstz,
            '2024-01-02'::date AS d, '12:34:56'::time AS tm, '{"a":1}'::jsonb AS j, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u,
            ARRAY[1,2,3]::int4[] AS ai, ARRAY['x','y'] AS at, NULL::text AS n`,
    { includeResultMetadata: true },
  );
  const row = r.records![0]!;
  assert.deepEqual(row[0], { longValue: 1 });
  assert.deepEqual(row[1], { longValue: 9007199254740991 });
  assert.deepEqual(row[2], { doubleValue: 1.5 });
  assert.deepEqual(row[3], { stringValue: '12.345' });
  assert.deepEqual(row[4], { booleanValue: true });
  assert.deepEqual(row[5], { stringValue: 'hi' });
  assert.deepEqual(Buffer.from(row[6]!.blobValue!).toString('hex'), 'deadbeef');
  assert.deepEqual(row[7], { stringValue: '2024-01-02 03:04:05.678' });
  assert.deepEqual(row[8], { stringValue: '2024-01-02 01:04:05' });
  assert.deepEqual(row[9], { stringValue: '2024-01-02' });
  assert.deepEqual(row[10], { stringValue: '12:34:56' });
  assert.deepEqual(row[11], { stringValue: '{"a": 1}' });
  assert.deepEqual(row[12], { stringValue: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' });
  assert.deepEqual(row[13], { arrayValue: { longValues: [1, 2, 3] } });
  assert.deepEqual(row[14], { arrayValue: { stringValues: ['x', 'y'] } });
  assert.deepEqual(row[15], { isNull: true });
  const meta = r.columnMetadata!;
  assert.deepEqual(meta.map((m) => m.name).slice(0, 3), ['i4', 'i8', 'f8']);
  assert.deepEqual([meta[0]!.typeName, meta[0]!.type], ['int4', 4]);
  assert.deepEqual([meta[1]!.typeName, meta[1]!.type], ['int8', -5]);
  assert.deepEqual([meta[13]!.typeName, meta[13]!.type, meta[13]!.arrayBaseColumnType], ['_int4', 2003, 4]);
});

test('parameters of every kind bind as real parameters; injection is inert', async () => {
  await exec('CREATE TABLE things (id bigint PRIMARY KEY, name text, price numeric, born date, at timestamp, doc json, uid uuid, blob bytea, ok boolean, score float8)');
  const params: SqlParameter[] = [
    { name: 'id', value: { longValue: 1 } },
    { name: 'name', value: { stringValue: "Robert'); DROP TABLE things; --" } },
    { name: 'price', value: { stringValue: '10.50' }, typeHint: 'DECIMAL' },
    { name: 'born', value: { stringValue: '2020-02-29' }, typeHint: 'DATE' },
    { name: 'at', value: { stringValue: '2024-05-06 07:08:09' }, typeHint: 'TIMESTAMP' },
    { name: 'doc', value: { stringValue: '{"k": [1, 2]}' }, typeHint: 'JSON' },
    { name: 'uid', value: { stringValue: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' }, typeHint: 'UUID' },
    { name: 'blob', value: { blobValue: Buffer.from([1, 2, 3]) } },
    { name: 'ok', value: { booleanValue: false } },
    { name: 'score', value: { doubleValue: 2.25 } },
  ];
  const ins = await exec('INSERT INTO things VALUES (:id, :name, :price, :born, :at, :doc, :uid, :blob, :ok, :score)', { parameters: params });
  assert.equal(ins.numberOfRecordsUpdated, 1);
  const r = await exec("SELECT name, price, born, doc::text, blob, ok, score, ':not_a_param' AS lit FROM things WHERE id = :id", { parameters: [{ name: 'id', value: { longValue: 1 } }] });
  const row = r.records![0]!;
  assert.equal(row[0]!.stringValue, "Robert'); DROP TABLE things; --");
  assert.equal(row[1]!.stringValue, '10.50');
  assert.equal(row[2]!.stringValue, '2020-02-29');
  assert.equal(row[3]!.stringValue, '{"k": [1, 2]}');
  assert.deepEqual([...row[4]!.blobValue!], [1, 2, 3]);
  assert.equal(row[5]!.booleanValue, false);
  assert.equal(row[6]!.doubleValue, 2.25);
  assert.equal(row[7]!.stringValue, ':not_a_param');
  const nulls = await exec('SELECT :v::text IS NULL AS is_null', { parameters: [{ name: 'v', value: { isNull: true } }] });
  assert.equal(nulls.records![0]![0]!.booleanValue, true);
});

test('formatRecordsAs JSON and resultSetOptions', async () => {
  const r = await exec('SELECT id, name, price FROM things', { formatRecordsAs: 'JSON' });
  assert.equal(r.records, undefined);
  assert.deepEqual(JSON.parse(r.formattedRecords!), [{ id: 1, name: "Robert'); DROP TABLE things; --", price: '10.50' }]);
  const s = await exec('SELECT id, price FROM things', { resultSetOptions: { longReturnType: 'STRING', decimalReturnType: 'DOUBLE_OR_LONG' } });
  assert.deepEqual(s.records![0], [{ stringValue: '1' }, { doubleValue: 10.5 }]);
});

test('transactions commit, roll back and expire', async () => {
  const t1 = (await client.send(new BeginTransactionCommand({ resourceArn, secretArn }))).transactionId!;
  await exec("INSERT INTO things (id, name) VALUES (2, 'two')", { transactionId: t1 });
  assert.equal((await client.send(new CommitTransactionCommand({ resourceArn, secretArn, transactionId: t1 }))).transactionStatus, 'Transaction Committed');
  const t2 = (await client.send(new BeginTransactionCommand({ resourceArn, secretArn }))).transactionId!;
  await exec("INSERT INTO things (id, name) VALUES (3, 'three')", { transactionId: t2 });
  // Outside the transaction the row is not visible.
  assert.equal((await exec('SELECT count(*) FROM things WHERE id = 3')).records![0]![0]!.longValue, 0);
  assert.equal((await client.send(new RollbackTransactionCommand({ resourceArn, secretArn, transactionId: t2 }))).transactionStatus, 'Rollback Complete');
  assert.equal((await exec('SELECT count(*) FROM things')).records![0]![0]!.longValue, 2);
  await assert.rejects(client.send(new CommitTransactionCommand({ resourceArn, secretArn, transactionId: t2 })), { name: 'TransactionNotFoundException' });
  const t3 = (await client.send(new BeginTransactionCommand({ resourceArn, secretArn }))).transactionId!;
  await exec("INSERT INTO things (id, name) VALUES (4, 'four')", { transactionId: t3 });
  // Idle past the 3 s limit set for this test (AWS: 3 minutes): rolled back.
  await new Promise((r) => setTimeout(r, 4_500));
  await assert.rejects(exec('SELECT 1', { transactionId: t3 }), { name: 'TransactionNotFoundException' });
  assert.equal((await exec('SELECT count(*) FROM things WHERE id = 4')).records![0]![0]!.longValue, 0);
});

test('BatchExecute runs each parameter set and reports update results', async () => {
  const r = await client.send(
    new BatchExecuteStatementCommand({
      resourceArn,
      secretArn,
      sql: 'INSERT INTO things (id, name) VALUES (:id, :name) RETURNING id',
      parameterSets: [10, 11, 12].map((id) => [
        { name: 'id', value: { longValue: id } },
        { name: 'name', value: { stringValue: `n${id}` } },
      ]),
    }),
  );
  assert.deepEqual(r.updateResults!.map((u) => u.generatedFields), [[{ longValue: 10 }], [{ longValue: 11 }], [{ longValue: 12 }]]);
});

test('bad SQL → DatabaseErrorException with PostgreSQL\'s message, position and SQLSTATE as Aurora words them', async () => {
  await assert.rejects(exec('SELEC 1'), (e: Error) => e.name === 'DatabaseErrorException' && /^ERROR: syntax error at or near "SELEC"\n {2}Position: 1; SQLState: 42601$/.test(e.message));
  await assert.rejects(exec('SELECT * FROM no_such_table'), (e: Error) => e.name === 'DatabaseErrorException' && /^ERROR: relation "no_such_table" does not exist\n {2}Position: 15; SQLState: 42P01$/.test(e.message));
  await assert.rejects(exec('SELECT 1/0'), (e: Error) => e.name === 'DatabaseErrorException' && /^ERROR: division by zero; SQLState: 22012$/.test(e.message));
});

test('64-bit integers cross the Data API exactly, both ways (raw JSON, signed by the SDK)', async () => {
  const raw = rawDataApiClient(b.dataApiPort, key);
  try {
    const r = await raw.send(
      `{"resourceArn":${JSON.stringify(resourceArn)},"secretArn":${JSON.stringify(secretArn)},"sql":"SELECT 9007199254740993::int8 AS a, :p::int8 AS p, :p::int8 - 1 AS q, ARRAY[-9223372036854775808]::int8[] AS arr","parameters":[{"name":"p","value":{"longValue":9223372036854775807}}]}`,
    );
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /"records":\[\[\{"longValue":9007199254740993\},\{"longValue":9223372036854775807\},\{"longValue":9223372036854775806\},\{"arrayValue":\{"longValues":\[-9223372036854775808\]\}\}\]\]/);
    // formatRecordsAs JSON: the string inside keeps the digits too.
    const j = await raw.send(`{"resourceArn":${JSON.stringify(resourceArn)},"secretArn":${JSON.stringify(secretArn)},"sql":"SELECT 9007199254740993::int8 AS a","formatRecordsAs":"JSON"}`);
    assert.match((JSON.parse(j.text) as { formattedRecords: string }).formattedRecords, /^\[\{"a":9007199254740993\}\]$/);
    // Past the 64-bit range: refused as AWS does.
    const over = await raw.send(`{"resourceArn":${JSON.stringify(resourceArn)},"secretArn":${JSON.stringify(secretArn)},"sql":"SELECT :p","parameters":[{"name":"p","value":{"longValue":9223372036854775808}}]}`);
    assert.equal(over.type, 'BadRequestException');
    // A blobValue that is not base64 is refused, not truncated.
    const blob = await raw.send(`{"resourceArn":${JSON.stringify(resourceArn)},"secretArn":${JSON.stringify(secretArn)},"sql":"SELECT :b","parameters":[{"name":"b","value":{"blobValue":"not base64!"}}]}`);
    assert.equal(blob.type, 'BadRequestException');
    assert.match((JSON.parse(blob.text) as { message: string }).message, /blobValue is not valid base64/);
  } finally {
    raw.destroy();
  }
});

test('the AWS CLI (botocore, a client no one here wrote) runs statements and keeps 64-bit integers exact', async () => {
  const aws = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        'aws',
        ['rds-data', ...args, '--endpoint-url', `http://127.0.0.1:${b.dataApiPort}`, '--resource-arn', resourceArn, '--secret-arn', secretArn, '--output', 'json'],
        { env: { ...process.env, AWS_ACCESS_KEY_ID: key.accessKeyId, AWS_SECRET_ACCESS_KEY: key.secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1', AWS_MAX_ATTEMPTS: '1', AWS_PAGER: '' } },
        (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
      ),
    );
  const r = await aws(['execute-statement', '--sql', 'SELECT 9007199254740993::int8 AS a, :p::int8 AS p', '--parameters', '[{"name":"p","value":{"longValue":9223372036854775807}}]']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /"longValue": 9007199254740993\b/);
  assert.match(r.stdout, /"longValue": 9223372036854775807\b/);
  const bad = await aws(['execute-statement', '--sql', 'SELECT * FROM no_such_table']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /DatabaseErrorException/);
  assert.match(bad.stderr, /SQLState: 42P01/);
  const tx = await aws(['begin-transaction']);
  assert.equal(tx.code, 0, tx.stderr);
  const transactionId = (JSON.parse(tx.stdout) as { transactionId: string }).transactionId;
  const commit = await aws(['commit-transaction', '--transaction-id', transactionId]);
  assert.equal(commit.code, 0, commit.stderr);
  assert.match(commit.stdout, /Transaction Committed/);
});

test("with no database in the call, the secret's dbname is used, as AWS does; without one, the user's name", async () => {
  await exec('CREATE DATABASE app_db');
  const made = await b.cli(['secret', 'create', '--cluster', 'default', '--username', 'postgres', '--password', 'correct-horse-battery', '--dbname', 'app_db']);
  assert.equal(made.code, 0, made.stderr);
  const withDb = made.stdout.trim();
  const r = await client.send(new ExecuteStatementCommand({ resourceArn, secretArn: withDb, sql: 'SELECT current_database()' }));
  assert.equal(r.records![0]![0]!.stringValue, 'app_db');
  // The call's own database wins.
  const named = await client.send(new ExecuteStatementCommand({ resourceArn, secretArn: withDb, sql: 'SELECT current_database()', database: 'postgres' }));
  assert.equal(named.records![0]![0]!.stringValue, 'postgres');
  assert.equal((await exec('SELECT current_database()')).records![0]![0]!.stringValue, 'postgres');
});

test('bad credentials, resources and payloads get the AWS errors the SDK expects; the server keeps serving', async () => {
  const wrongSecret = new RDSDataClient({ endpoint: `http://127.0.0.1:${b.dataApiPort}`, region: 'us-east-1', credentials: { ...key, secretAccessKey: 'wrong' }, maxAttempts: 1 });
  await assert.rejects(wrongSecret.send(new ExecuteStatementCommand({ resourceArn, secretArn, sql: 'SELECT 1' })), { name: 'InvalidSignatureException' });
  const unknownKey = new RDSDataClient({ endpoint: `http://127.0.0.1:${b.dataApiPort}`, region: 'us-east-1', credentials: { accessKeyId: 'BKIAUNKNOWN000000000', secretAccessKey: 'x' }, maxAttempts: 1 });
  await assert.rejects(unknownKey.send(new ExecuteStatementCommand({ resourceArn, secretArn, sql: 'SELECT 1' })), { name: 'UnrecognizedClientException' });
  await assert.rejects(exec('SELECT 1', { secretArn: secretArn + 'x' }), { name: 'SecretsErrorException' });
  await assert.rejects(exec('SELECT 1', { resourceArn: 'arn:aws:rds:local:000000000000:cluster:nope' }), { name: 'NotFoundException' });
  await assert.rejects(exec('SELECT 1', { transactionId: 'bm90LWEtdHJhbnNhY3Rpb24=' }), { name: 'TransactionNotFoundException' });
  await assert.rejects(exec("SELECT repeat('x', 300000)"), (e: Error) => e.name === 'BadRequestException' && /response size limit/.test(e.message));
  await assert.rejects(exec("SELECT repeat('x', 1000) FROM generate_series(1, 300)"), (e: Error) => e.name === 'BadRequestException' && /response size limit/.test(e.message));
  await assert.rejects(exec(`SELECT '${'y'.repeat(150_000)}'`), (e: Error) => e.name === 'BadRequestException' && /exceeds the limit/.test(e.message));
  await assert.rejects(exec('SELECT :missing'), (e: Error) => e.name === 'BadRequestException' && /No value specified for parameter: missing/.test(e.message));
  // Malformed JSON, sent signed by hand through the same client's signer.
  const raw = await fetch(`http://127.0.0.1:${b.dataApiPort}/Execute`, { method: 'POST', body: '{not json' });
  assert.equal(raw.status, 403, 'unsigned requests are refused first');
  assert.equal(raw.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
  // Still serving.
  assert.equal((await exec('SELECT 42')).records![0]![0]!.longValue, 42);
  wrongSecret.destroy();
  unknownKey.destroy();
});

test('many concurrent calls each get their own answer; one failing statement harms none of the others', async () => {
  const calls = Array.from({ length: 300 }, (_, i) =>
    i % 50 === 7
      ? exec('SELECT 1 / (:n - :n)', { parameters: [{ name: 'n', value: { longValue: i } }] }).then(
          () => 'no error',
          (e: Error) => e.name,
        )
      : exec('SELECT :n::int8 * 2 AS twice, :s::text AS s', { parameters: [{ name: 'n', value: { longValue: i } }, { name: 's', value: { stringValue: `call ${i}` } }] }).then((r) => r.records![0]!),
  );
  const answers = await Promise.all(calls);
  answers.forEach((a, i) => {
    if (i % 50 === 7) assert.equal(a, 'DatabaseErrorException');
    else assert.deepEqual(a, [{ longValue: 2 * i }, { stringValue: `call ${i}` }]);
  });
});

test('session state set by one call never reaches another', async () => {
  await exec('SET search_path TO nowhere');
  await exec("SELECT set_config('application_name', 'leaked', false)");
  await exec('BEGIN');
  const seen = await Promise.all(Array.from({ length: 40 }, () => exec("SELECT current_setting('search_path'), current_setting('application_name')")));
  for (const r of seen) {
    assert.equal(r.records![0]![0]!.stringValue, '"$user", public');
    assert.equal(r.records![0]![1]!.stringValue, 'borealis-data-api');
  }
  // No session was left inside the transaction the BEGIN above opened.
  const open = await exec("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'borealis-data-api' AND state LIKE 'idle in transaction%'");
  assert.equal(open.records![0]![0]!.longValue, 0);
});

test('sessions that die are replaced: the calls on them fail cleanly, later calls succeed', async () => {
  await Promise.all(Array.from({ length: 20 }, () => exec('SELECT 1')));
  const killed = await exec("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'borealis-data-api' AND pid <> pg_backend_pid()");
  assert.ok(killed.records![0]![0]!.longValue! >= 1);
  const after = await Promise.all(Array.from({ length: 20 }, (_, i) => exec('SELECT :i::int', { parameters: [{ name: 'i', value: { longValue: i } }] }).then((r) => r.records![0]![0]!.longValue, (e: Error) => e.name)));
  for (const [i, a] of after.entries()) assert.ok(a === i || a === 'DatabaseUnavailableException', `call ${i} got ${String(a)}`);
  assert.equal((await exec('SELECT 5')).records![0]![0]!.longValue, 5);
});

test('the statement timeout cancels a slow statement and holds up no other call; continueAfterTimeout lets it finish', async () => {
  await exec('CREATE TABLE late (id int)');
  const slow = exec('INSERT INTO late SELECT 1 FROM pg_sleep(4)').then(
    () => 'no error',
    (e: Error) => e.name,
  );
  const started = Date.now();
  const fast = await Promise.all(Array.from({ length: 20 }, (_, i) => exec('SELECT :i::int', { parameters: [{ name: 'i', value: { longValue: i } }] })));
  assert.deepEqual(fast.map((r) => r.records![0]![0]!.longValue), [...Array(20).keys()]);
  assert.ok(Date.now() - started < 1_500, 'fast calls were not queued behind the slow one');
  assert.equal(await slow, 'StatementTimeoutException');
  await assert.rejects(exec('INSERT INTO late SELECT 2 FROM pg_sleep(3)', { continueAfterTimeout: true }), { name: 'StatementTimeoutException' });
  // The first was cancelled; the second goes on and commits.
  await b.waitFor('the continued statement', async () => (await exec('SELECT count(*) FROM late WHERE id = 2')).records![0]![0]!.longValue === 1, 10_000);
  assert.equal((await exec('SELECT count(*) FROM late WHERE id = 1')).records![0]![0]!.longValue, 0);
});

test('a secret follows its role: made by SQL it works; after ALTER ROLE … PASSWORD or DROP ROLE by SQL it is refused', async () => {
  await exec("CREATE ROLE api_user LOGIN PASSWORD 'api-pass-1'");
  const made = await b.cli(['secret', 'create', '--cluster', 'default', '--username', 'api_user', '--password', 'api-pass-1']);
  assert.equal(made.code, 0, made.stderr);
  const apiSecret = made.stdout.trim();
  const asApiUser = () => client.send(new ExecuteStatementCommand({ resourceArn, secretArn: apiSecret, database: 'postgres', sql: 'SELECT current_user AS u' }));
  assert.deepEqual((await asApiUser()).records, [[{ stringValue: 'api_user' }]]);
  await exec("ALTER ROLE api_user PASSWORD 'api-pass-2'");
  await assert.rejects(asApiUser(), { name: 'AccessDeniedException' });
  await exec("ALTER ROLE api_user PASSWORD 'api-pass-1'");
  assert.deepEqual((await asApiUser()).records, [[{ stringValue: 'api_user' }]]);
  await exec('DROP ROLE api_user');
  await assert.rejects(asApiUser(), { name: 'AccessDeniedException' });
});

test('the Data API can be disabled per cluster (EnableHttpEndpoint)', async () => {
  await b.cli(['cluster', 'modify', 'default', '--no-data-api']);
  await assert.rejects(exec('SELECT 1'), { name: 'HttpEndpointNotEnabledException' });
  await b.cli(['cluster', 'modify', 'default', '--data-api']);
  assert.equal((await exec('SELECT 1')).records![0]![0]!.longValue, 1);
});

test('ExecuteSql answers as AWS does for Serverless v2', async () => {
  const { ExecuteSqlCommand } = await import('@aws-sdk/client-rds-data');
  await assert.rejects(client.send(new ExecuteSqlCommand({ dbClusterOrInstanceArn: resourceArn, awsSecretStoreArn: secretArn, sqlStatements: 'SELECT 1' })), { name: 'BadRequestException' });
});

test('a call to a paused cluster wakes it and gets its answer', async () => {
  const created = await b.cli(['cluster', 'create', 'sleepy', '--master-password', 'sleepy-pass-1', '--min', '0', '--max', '1', '--auto-pause', '2']);
  const sleepySecret = /secret: {2}(\S+)/.exec(created.stdout)![1]!;
  const sleepyArn = 'arn:aws:rds:us-east-1:123456789012:cluster:sleepy';
  await b.waitFor('auto-pause', async () => (await b.status()).clusters.find((c) => c.name === 'sleepy')!.instances[0]!.state === 'paused', 30_000);
  const r = await exec('SELECT 7', { resourceArn: sleepyArn, secretArn: sleepySecret });
  assert.equal(r.records![0]![0]!.longValue, 7);
  assert.equal((await b.status()).clusters.find((c) => c.name === 'sleepy')!.instances[0]!.state, 'available');
});
