// Benchmark: pgbench -S through the Borealis proxy against the same
// PostgreSQL directly, in one run, so the ratio holds on a noisy machine.
//
//   npm run bench:proxy [-- --seconds 10 --clients 32 --scale 10]
//
// Starts its own Borealis in a temporary home and stops it afterwards.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Borealis, PASSWORD } from '../test/helpers/borealis.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    clients: { type: 'string', default: '32' },
    scale: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
  },
});

function pgbench(args: string[], port: number, sslmode: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], { env: { ...process.env, PGPASSWORD: PASSWORD, PGSSLMODE: sslmode }, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`pgbench failed: ${stderr}`)) : resolve(stdout + stderr),
    ),
  );
}

function tps(output: string): number {
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(output);
  if (!m) throw new Error(`no tps in pgbench output:\n${output}`);
  return Number(m[1]);
}

const b = await Borealis.start();
try {
  const status = await b.status();
  const instance = status.clusters[0]!.instances[0]!;
  const record = JSON.parse(fs.readFileSync(path.join(b.home, 'run', 'supervisor.json'), 'utf8')) as { pid: number };
  const directPort = Number(/port = (\d+)/.exec(fs.readFileSync(path.join(b.home, 'instances', instance.id, 'data', 'postgresql.conf'), 'utf8'))![1]);
  process.stderr.write(`borealis supervisor pid ${record.pid}, postgres pid ${instance.pid}, direct port ${directPort}, proxy port ${b.proxyPort}\n`);
  process.stderr.write(`initializing pgbench scale ${values.scale}...\n`);
  await pgbench(['-i', '-q', '-s', values.scale], directPort, 'disable');
  const run = ['-S', '-c', values.clients, '-j', '2', '-T', values.seconds, '-n'];
  const rows: Array<{ round: number; direct: number; proxy: number; proxyTls: number }> = [];
  for (let round = 1; round <= Number(values.rounds); round++) {
    // Interleaved so drift on a shared machine hits all three alike.
    process.stderr.write(`round ${round}: direct...\n`);
    const direct = tps(await pgbench(run, directPort, 'disable'));
    process.stderr.write(`round ${round}: proxy (plaintext)...\n`);
    const proxy = tps(await pgbench(run, b.proxyPort, 'disable'));
    process.stderr.write(`round ${round}: proxy (TLS)...\n`);
    const proxyTls = tps(await pgbench(run, b.proxyPort, 'require'));
    rows.push({ round, direct, proxy, proxyTls });
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const direct = median(rows.map((r) => r.direct));
  const proxy = median(rows.map((r) => r.proxy));
  const proxyTls = median(rows.map((r) => r.proxyTls));
  const lines = [
    `pgbench -S -c ${values.clients} -j 2 -T ${values.seconds}, scale ${values.scale}, ${rows.length} interleaved rounds, ${os.cpus().length} cores`,
    ...rows.map((r) => `  round ${r.round}: direct ${r.direct.toFixed(0)} tps, proxy ${r.proxy.toFixed(0)} tps, proxy+TLS ${r.proxyTls.toFixed(0)} tps`),
    `median: direct ${direct.toFixed(0)} tps | proxy ${proxy.toFixed(0)} tps = ${(proxy / direct).toFixed(2)}x direct | proxy+TLS ${proxyTls.toFixed(0)} tps = ${(proxyTls / direct).toFixed(2)}x direct`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  await b.destroy();
}
