// Data API benchmark: ExecuteStatement of a one-row primary-key SELECT at
// concurrency 32 through @aws-sdk/client-rds-data (real SigV4 signing), against
// the same query through the proxy with `pgbench -S -c 32`, in one run.
//
//   npm run bench:data-api [-- --seconds 10]
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import autocannon from 'autocannon';
import { Borealis, PASSWORD } from '../test/helpers/borealis.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '32' } } });
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const log = (m: string): boolean => process.stderr.write(m + '\n');

function pgbench(args: string[], port: number): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], { env: { ...process.env, PGPASSWORD: PASSWORD, PGSSLMODE: 'disable' } }, (err, out, errOut) =>
      err ? reject(new Error(errOut)) : resolve(out + errOut),
    ),
  );
}

const b = await Borealis.start({ BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '8', BOREALIS_DEFAULT_MAX_CAPACITY_ACU: '8' });
try {
  const enginePort = Number(/^port = (\d+)$/m.exec(fs.readFileSync(path.join(b.home, 'instances', 'default-instance-1', 'data', 'postgresql.conf'), 'utf8'))![1]);
  await pgbench(['-i', '-q', '-s', '10'], enginePort);
  const key = JSON.parse((await b.cli(['access-key', 'create', '--json'])).stdout) as { accessKeyId: string; secretAccessKey: string };
  const secretArn = (await b.cli(['secret', 'create', '--cluster', 'default', '--username', 'postgres', '--password', PASSWORD])).stdout.trim();
  const resourceArn = 'arn:aws:rds:local:000000000000:cluster:default';
  const client = new RDSDataClient({ endpoint: `http://127.0.0.1:${b.dataApiPort}`, region: 'us-east-1', credentials: key, maxAttempts: 1 });
  const rounds: string[] = [];
  for (let round = 1; round <= 2; round++) {
    log(`round ${round}: pgbench -S -c ${concurrency} through the proxy...`);
    const out = await pgbench(['-S', '-n', '-c', String(concurrency), '-j', '2', '-T', String(seconds)], b.proxyPort);
    const pgTps = Number(/tps = ([\d.]+) \(without/.exec(out)![1]);
    const pgLat = Number(/latency average = ([\d.]+) ms/.exec(out)![1]);
    log(`round ${round}: Data API ExecuteStatement at concurrency ${concurrency}...`);
    const latencies: number[] = [];
    let errors = 0;
    const deadline = Date.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < deadline) {
          const aid = 1 + Math.floor(Math.random() * 1_000_000);
          const t0 = performance.now();
          try {
            await client.send(new ExecuteStatementCommand({ resourceArn, secretArn, sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = :aid', parameters: [{ name: 'aid', value: { longValue: aid } }] }));
            latencies.push(performance.now() - t0);
          } catch {
            errors++;
          }
        }
      }),
    );
    latencies.sort((x, y) => x - y);
    const rps = latencies.length / seconds;
    const p = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
    rounds.push(
      `round ${round}: pgbench -S via proxy ${pgTps.toFixed(0)} tps (avg ${pgLat} ms) | Data API ${rps.toFixed(0)} req/s, p50 ${p(0.5).toFixed(1)} ms, p99 ${p(0.99).toFixed(1)} ms, ${errors} errors | ratio ${(rps / pgTps).toFixed(2)} (goal ≥ 0.5)`,
    );
  }
  // The server alone: one request signed by the SDK, replayed by autocannon
  // (valid for the 5 minutes of allowed clock skew), so client-side signing
  // and SDK middleware cost nothing.
  let captured: { headers: Record<string, string>; body: string } | null = null;
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers: Record<string, string>; body: string | Uint8Array };
      captured ??= { headers: { ...request.headers }, body: typeof request.body === 'string' ? request.body : Buffer.from(request.body).toString('utf8') };
      return next(args);
    },
    { step: 'deserialize', name: 'captureSignedRequest' },
  );
  await client.send(new ExecuteStatementCommand({ resourceArn, secretArn, sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = :aid', parameters: [{ name: 'aid', value: { longValue: 4242 } }] }));
  const signed = captured as { headers: Record<string, string>; body: string } | null;
  if (!signed) throw new Error('no signed request captured');
  const check = await fetch(`http://127.0.0.1:${b.dataApiPort}/Execute`, { method: 'POST', headers: signed.headers, body: signed.body });
  if (check.status !== 200) throw new Error(`a replayed signed request got HTTP ${check.status}`);
  log(`autocannon: replaying one signed ExecuteStatement at ${concurrency} connections...`);
  // autocannon writes its own content-length; two would make the request invalid.
  const replayHeaders = Object.fromEntries(Object.entries(signed.headers).filter(([name]) => name !== 'content-length'));
  const replay = await autocannon({
    url: `http://127.0.0.1:${b.dataApiPort}/Execute`,
    method: 'POST',
    headers: replayHeaders,
    body: signed.body,
    connections: concurrency,
    duration: seconds,
  });
  const pgOut = await pgbench(['-S', '-n', '-c', String(concurrency), '-j', '2', '-T', String(seconds)], b.proxyPort);
  const pgTps = Number(/tps = ([\d.]+) \(without/.exec(pgOut)![1]);
  rounds.push(
    `server alone (autocannon replay): ${replay.requests.average.toFixed(0)} req/s, p50 ${replay.latency.p50} ms, p99 ${replay.latency.p99} ms, ${replay.non2xx} non-2xx, ${replay.errors} errors | pgbench -S via proxy right after: ${pgTps.toFixed(0)} tps | ratio ${(replay.requests.average / pgTps).toFixed(2)}`,
  );
  client.destroy();
  process.stdout.write(rounds.join('\n') + '\n');
} finally {
  await b.destroy();
}
