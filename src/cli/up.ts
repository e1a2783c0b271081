// `borealis up`: run the supervisor in the foreground (Ctrl-C stops
// everything), or with --detach start it in the background and return once
// it is ready.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiServer } from '../control/api-server.js';
import { ensureHome, homePaths } from '../control/paths.js';
import type { StatusDocument } from '../control/status.js';
import { Supervisor } from '../control/supervisor.js';
import type { Settings } from '../config/settings.js';
import { fileSink, Logger, type LogSink } from '../util/logger.js';
import { ApiClient, readSupervisorInfo } from './api-client.js';

const BIN = fileURLToPath(new URL('../../bin/borealis.js', import.meta.url));
const STATUS_REFRESH_MS = 1_000;

export async function upForeground(settings: Settings): Promise<void> {
  const paths = homePaths(settings.home);
  if (readSupervisorInfo(settings.home)) {
    await printSummary(settings.home, 'Borealis is already running.');
    return;
  }
  const detachedChild = process.env.BOREALIS_DETACHED === '1';
  ensureHome(paths);
  const sinks: LogSink[] = [fileSink(paths.logFile)];
  if (!detachedChild) sinks.push(warningsToStderr());
  const log = new Logger(sinks);
  const supervisor = new Supervisor(settings, log);
  let api: ApiServer | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info('stopping', { why });
      if (!detachedChild) process.stdout.write(`\nStopping Borealis (${why})...\n`);
      await api?.close();
      await supervisor.shutdown();
      if (!detachedChild) process.stdout.write('Stopped.\n');
    })();
    return stopping;
  };
  let signals = 0;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (++signals > 1 && signal === 'SIGINT') process.stdout.write('Still stopping; PostgreSQL is finishing a fast shutdown.\n');
      void stop(signal).then(() => process.exit(0));
    });
  }
  try {
    await supervisor.start((step) => {
      log.info(step);
      if (!detachedChild) process.stdout.write(`  ${step}...\n`);
    });
    const token = randomBytes(24).toString('base64url');
    fs.writeFileSync(paths.apiTokenFile, token + '\n', { mode: 0o600 });
    api = new ApiServer(supervisor, token, log.child('api'), () => void stop('shutdown requested').then(() => process.exit(0)));
    supervisor.announce(await api.listen(settings.apiPort, settings.listenHost));
  } catch (err) {
    log.error('start failed', { error: (err as Error).message });
    process.stderr.write(`borealis up: ${(err as Error).message}\n`);
    await stop('start failed');
    process.exit(1);
  }
  if (detachedChild) return;
  await printSummary(settings.home, 'Borealis is up. Press Ctrl-C to stop.');
  if (process.stdout.isTTY) {
    const timer = setInterval(() => process.stdout.write(`\r${liveLine(supervisor.status())}\x1b[K`), STATUS_REFRESH_MS);
    timer.unref();
  }
}

/** Starts the supervisor in the background; resolves once it is ready. */
export async function upDetached(settings: Settings, argv: readonly string[]): Promise<void> {
  if (readSupervisorInfo(settings.home)) {
    await printSummary(settings.home, 'Borealis is already running.');
    return;
  }
  const paths = homePaths(settings.home);
  ensureHome(paths);
  const out = fs.openSync(paths.detachedLogFile, 'a', 0o600);
  const args = argv.filter((a) => a !== '--detach' && a !== '-d');
  const child = spawn(process.execPath, [...process.execArgv, BIN, ...args], {
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, BOREALIS_DETACHED: '1', BOREALIS_HOME: settings.home },
  });
  fs.closeSync(out);
  const child_ = { exitCode: null as number | null };
  child.once('exit', (code) => (child_.exitCode = code ?? 1));
  child.unref();
  process.stdout.write(`Starting Borealis in the background (pid ${child.pid}, log ${paths.logFile})...\n`);
  const deadline = Date.now() + settings.engineStartTimeoutMs + 60_000;
  while (Date.now() < deadline) {
    if (child_.exitCode !== null) {
      process.stderr.write(`borealis up: the supervisor exited with code ${child_.exitCode}:\n${tail(paths.detachedLogFile)}\n`);
      process.exit(1);
    }
    const info = readSupervisorInfo(settings.home);
    if (info?.pid === child.pid) {
      await printSummary(settings.home, 'Borealis is up (detached). Stop it with `borealis down`.');
      return;
    }
    await sleep(50);
  }
  process.stderr.write('borealis up: the supervisor did not become ready in time; see the log\n');
  process.exit(1);
}

async function printSummary(home: string, headline: string): Promise<void> {
  const api = ApiClient.connect(home);
  const status = await api.request<StatusDocument>('GET', '/v1/status');
  const lines = [headline, ''];
  for (const cluster of status.clusters) {
    const creds = await api.request<{ username: string; password: string; secretArn: string }>('GET', `/v1/clusters/${encodeURIComponent(cluster.name)}/credentials`).catch(() => null);
    lines.push(`cluster ${cluster.name} (PostgreSQL ${cluster.engineVersion}): ${cluster.status}`);
    for (const e of cluster.endpoints) {
      const auth = creds ? `${encodeURIComponent(creds.username)}:${encodeURIComponent(creds.password)}` : encodeURIComponent(cluster.masterUsername);
      lines.push(`  ${e.type.padEnd(8)} postgres://${auth}@${e.host}:${e.port}/postgres`);
    }
    for (const i of cluster.instances) lines.push(`  instance ${i.id}: ${i.role}, ${i.state}, ${i.capacityAcu} ACU${i.pid ? `, pid ${i.pid}` : ''}`);
    lines.push(`  Data API resourceArn ${cluster.dataApi.resourceArn}${creds ? `, secretArn ${creds.secretArn}` : ''}${cluster.dataApi.enabled ? '' : ' (disabled: borealis cluster modify --data-api)'}`);
  }
  lines.push(
    '',
    `TLS CA       ${path.join(homePaths(home).tlsDir, 'ca.crt')} (verify the server: sslmode=verify-full sslrootcert=<this file>)`,
    `Data API     ${status.services.dataApi.url} (the AWS SDK's endpoint)`,
    `control API  ${status.services.api.url}`,
    `home         ${status.home}`,
    '',
  );
  process.stdout.write(lines.join('\n') + '\n');
}

function liveLine(status: StatusDocument): string {
  const time = new Date().toISOString().slice(11, 19);
  const parts = status.clusters.map((c) => `${c.name}: ${c.status}`);
  return `[${time}] ${parts.join(' · ')}`;
}

function warningsToStderr(): LogSink {
  return {
    write(line) {
      const entry = JSON.parse(line) as { level: string; msg: string; component: string };
      if (entry.level === 'warn' || entry.level === 'error') process.stderr.write(`\n${entry.level}: [${entry.component}] ${entry.msg}\n`);
    },
  };
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}
