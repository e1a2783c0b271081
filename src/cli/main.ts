// The `borealis` command line.
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { loadSettings, SettingsError, UP_FLAGS, type SettingKey, type UpFlagKey } from '../config/settings.js';
import { homePaths } from '../control/paths.js';
import type { ClusterStatus, StatusDocument } from '../control/status.js';
import { ApiClient, ApiError, isAlive, NotRunning, readSupervisorInfo } from './api-client.js';
import { upDetached, upForeground } from './up.js';

const program = new Command('borealis')
  .description('Self-hosted serverless PostgreSQL: real PostgreSQL behind a front door, capacity that follows load.')
  .addOption(new Option('--home <dir>', 'where state, data and logs live').env('BOREALIS_HOME'))
  .showHelpAfterError();

const CLUSTER_HELP = 'cluster (default: "default", or the only cluster there is)';

const home = (): string => loadSettings({ home: program.opts<{ home?: string }>().home }).home;

const up = program
  .command('up')
  .description('start Borealis (the default cluster is created on first start)')
  .option('-d, --detach', 'start in the background and return once ready');
for (const { flag, help } of Object.values(UP_FLAGS)) up.option(flag, help);
up.action(async (opts: { detach?: boolean } & Partial<Record<UpFlagKey, string>>) => {
  const overrides: Partial<Record<SettingKey, string | undefined>> = { home: program.opts<{ home?: string }>().home };
  // commander names each option after its flag: --data-api-port is opts.dataApiPort, the setting's own key.
  for (const key of Object.keys(UP_FLAGS) as UpFlagKey[]) overrides[key] = opts[key];
  const settings = loadSettings(overrides);
  if (opts.detach) await upDetached(settings, process.argv.slice(2));
  else await upForeground(settings);
});

program
  .command('down')
  .description('stop Borealis and every PostgreSQL it runs')
  .action(async () => {
    const info = readSupervisorInfo(home());
    if (!info) {
      process.stdout.write('Borealis is not running.\n');
      return;
    }
    await ApiClient.connect(home()).request('POST', '/v1/shutdown');
    process.stdout.write(`Stopping Borealis (pid ${info.pid})...\n`);
    const deadline = Date.now() + 90_000;
    while (isAlive(info.pid)) {
      if (Date.now() > deadline) {
        process.kill(info.pid, 'SIGKILL');
        throw new Error(`the supervisor (pid ${info.pid}) did not stop within 90 s and was killed`);
      }
      await sleep(50);
    }
    process.stdout.write('Stopped.\n');
  });

program
  .command('status')
  .description('clusters, instances, endpoints and services')
  .option('--json', 'print the stable JSON document (see docs/status-json.md)')
  .action(async (opts: { json?: boolean }) => {
    const status = await ApiClient.connect(home()).request<StatusDocument>('GET', '/v1/status');
    if (opts.json) {
      process.stdout.write(JSON.stringify(status, null, 2) + '\n');
      return;
    }
    process.stdout.write(`Borealis (pid ${status.supervisor.pid}), PostgreSQL ${status.engine.version}, API ${status.services.api.url}, Data API ${status.services.dataApi.url}, capacity ${status.capacity.enforcement}\n`);
    for (const c of status.clusters) process.stdout.write(describeCluster(c));
  });

const cluster = program.command('cluster').description('manage clusters');
cluster
  .command('create <name>')
  .description('create a cluster with one writer instance')
  .option('--master-username <name>', 'master user name', 'postgres')
  .option('--master-password <password>', 'master password (generated when omitted)')
  .option('--min <acu>', 'minimum capacity in ACUs (0 = auto-pause)')
  .option('--max <acu>', 'maximum capacity in ACUs')
  .option('--auto-pause <seconds>', 'seconds without connections before pausing (with --min 0)')
  .action(async (name: string, opts: { masterUsername: string; masterPassword?: string; min?: string; max?: string; autoPause?: string }) => {
    const result = await ApiClient.connect(home()).request<{ cluster: ClusterStatus; credentials: { username: string; password: string; secretArn: string } }>('POST', '/v1/clusters', {
      name,
      masterUsername: opts.masterUsername,
      ...(opts.masterPassword ? { masterPassword: opts.masterPassword } : {}),
      ...scalingFlags(opts),
    });
    process.stdout.write(describeCluster(result.cluster));
    noteAutoPause(opts, result.cluster);
    const e = result.cluster.endpoints[0];
    if (e) process.stdout.write(`  connect: postgres://${encodeURIComponent(result.credentials.username)}:${encodeURIComponent(result.credentials.password)}@${e.host}:${e.port}/postgres\n`);
    process.stdout.write(`  secret:  ${result.credentials.secretArn}\n`);
  });
cluster
  .command('list')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const { clusters } = await ApiClient.connect(home()).request<{ clusters: ClusterStatus[] }>('GET', '/v1/clusters');
    if (opts.json) process.stdout.write(JSON.stringify(clusters, null, 2) + '\n');
    else for (const c of clusters) process.stdout.write(`${c.name}\t${c.status}\t${c.endpoints.map((e) => `${e.type}:${e.port}`).join(',')}\n`);
  });
cluster
  .command('describe <name>')
  .option('--json', 'print JSON')
  .action(async (name: string, opts: { json?: boolean }) => {
    const c = await ApiClient.connect(home()).request<ClusterStatus>('GET', `/v1/clusters/${encodeURIComponent(name)}`);
    process.stdout.write(opts.json ? JSON.stringify(c, null, 2) + '\n' : describeCluster(c));
  });
cluster
  .command('failover <name>')
  .description('make a reader the writer (the first by promotion tier, or --target); the old writer comes back as a reader')
  .option('--target <instance>', 'the reader to promote')
  .action(async (name: string, opts: { target?: string }) => {
    const r = await ApiClient.connect(home()).request<{ writer: string; previous: string; tookMs: number }>('POST', `/v1/clusters/${encodeURIComponent(name)}/failover`, opts.target ? { targetInstance: opts.target } : {});
    process.stdout.write(`${r.writer} is the writer of ${name} (failover took ${r.tookMs} ms); ${r.previous} comes back as a reader\n`);
  });
cluster
  .command('modify <name>')
  .description("change a cluster's access rules (applies to new connections)")
  .option('--allow <cidrs>', 'comma-separated CIDR ranges allowed to connect (replaces the list)')
  .option('--allow-any', 'allow every source address (empty allow-list)')
  .option('--require-tls', 'refuse plaintext connections')
  .option('--no-require-tls', 'accept plaintext connections')
  .option('--min <acu>', 'minimum capacity in ACUs (0 = auto-pause)')
  .option('--max <acu>', 'maximum capacity in ACUs')
  .option('--auto-pause <seconds>', 'seconds without connections before pausing (with --min 0)')
  .option('--data-api', 'enable the Data API (HTTP endpoint)')
  .option('--no-data-api', 'disable the Data API')
  .action(async (name: string, opts: { allow?: string; allowAny?: boolean; requireTls?: boolean; min?: string; max?: string; autoPause?: string; dataApi?: boolean }) => {
    const body: { allowedCidrs?: string[]; requireTls?: boolean; dataApi?: boolean } = { ...scalingFlags(opts) };
    if (opts.dataApi !== undefined) body.dataApi = opts.dataApi;
    if (opts.allow !== undefined && opts.allowAny) throw new Error('--allow and --allow-any contradict each other');
    if (opts.allow !== undefined) body.allowedCidrs = opts.allow.split(',').map((c) => c.trim()).filter((c) => c !== '');
    if (opts.allowAny) body.allowedCidrs = [];
    if (opts.requireTls !== undefined) body.requireTls = opts.requireTls;
    const c = await ApiClient.connect(home()).request<ClusterStatus>('PATCH', `/v1/clusters/${encodeURIComponent(name)}`, body);
    process.stdout.write(describeCluster(c));
    noteAutoPause(opts, c);
  });
cluster
  .command('delete <name>')
  .description('delete a cluster and all of its data')
  .requiredOption('--yes', 'confirm that the data is to be destroyed')
  .action(async (name: string) => {
    await ApiClient.connect(home()).request('DELETE', `/v1/clusters/${encodeURIComponent(name)}`);
    process.stdout.write(`Deleted cluster ${name}.\n`);
  });

const endpoint = program.command('endpoint').description('custom endpoints (writer, reader and instance endpoints exist for every cluster)');
endpoint
  .command('list')
  .description("a cluster's endpoints: writer, reader, one per instance, and custom ones")
  .option('--cluster <cluster>', CLUSTER_HELP)
  .option('--json', 'print JSON')
  .action(async (opts: { cluster?: string; json?: boolean }) => {
    const { api, cluster } = await onCluster(opts.cluster);
    const { endpoints } = await api.request<{ endpoints: ClusterStatus['endpoints'] }>('GET', `/v1/clusters/${encodeURIComponent(cluster)}/endpoints`);
    if (opts.json) process.stdout.write(JSON.stringify(endpoints, null, 2) + '\n');
    else for (const e of endpoints) process.stdout.write(`${(e.type + (e.name ? ` ${e.name}` : '')).padEnd(28)} ${e.host}:${e.port}  ${e.serverName}\n`);
  });
endpoint
  .command('create <name>')
  .option('--cluster <cluster>', CLUSTER_HELP)
  .option('--type <type>', 'READER (readers only) or ANY', 'ANY')
  .option('--static <ids>', 'comma-separated member instance ids')
  .option('--excluded <ids>', 'comma-separated instance ids to leave out (all others are members)')
  .action(async (name: string, opts: { cluster?: string; type: string; static?: string; excluded?: string }) => {
    const list = (v?: string): string[] => (v ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '');
    const { api, cluster } = await onCluster(opts.cluster);
    const e = await api.request<{ port: number; serverName: string }>('POST', `/v1/clusters/${encodeURIComponent(cluster)}/endpoints`, {
      name,
      type: opts.type.toUpperCase(),
      staticMembers: list(opts.static),
      excludedMembers: list(opts.excluded),
    });
    process.stdout.write(`Created endpoint ${name} on port ${e.port} (TLS server name ${e.serverName}).\n`);
  });
endpoint
  .command('delete <name>')
  .option('--cluster <cluster>', CLUSTER_HELP)
  .action(async (name: string, opts: { cluster?: string }) => {
    const { api, cluster } = await onCluster(opts.cluster);
    await api.request('DELETE', `/v1/clusters/${encodeURIComponent(cluster)}/endpoints/${encodeURIComponent(name)}`);
    process.stdout.write(`Deleted endpoint ${name}.\n`);
  });

const user = program.command('user').description('database users');
user
  .command('create <name>')
  .description('create a database user with a password, or for IAM authentication')
  .option('--cluster <cluster>', CLUSTER_HELP)
  .option('--password <password>', 'password (SCRAM-SHA-256)')
  .option('--iam', 'authenticate with IAM tokens signed by a Borealis access key (TLS required)')
  .action(async (name: string, opts: { cluster?: string; password?: string; iam?: boolean }) => {
    if (Boolean(opts.iam) === (opts.password !== undefined)) throw new Error('give exactly one of --password or --iam');
    const { api, cluster } = await onCluster(opts.cluster);
    await api.request('POST', `/v1/clusters/${encodeURIComponent(cluster)}/users`, opts.iam ? { name, iam: true } : { name, password: opts.password });
    process.stdout.write(`Created user ${name} in cluster ${cluster} (${opts.iam ? 'IAM' : 'password'} authentication).\n`);
  });
user
  .command('list')
  .description("the cluster's roles (PostgreSQL's built-in pg_* roles left out)")
  .option('--cluster <cluster>', CLUSTER_HELP)
  .option('--json', 'print JSON')
  .action(async (opts: { cluster?: string; json?: boolean }) => {
    const { api, cluster } = await onCluster(opts.cluster);
    const { users } = await api.request<{ users: Array<{ name: string; auth: string; canLogin: boolean }> }>('GET', `/v1/clusters/${encodeURIComponent(cluster)}/users`);
    if (opts.json) process.stdout.write(JSON.stringify(users) + '\n');
    else for (const u of users) process.stdout.write(`${u.name}\t${u.auth}${u.canLogin ? '' : '\tNOLOGIN'}\n`);
  });
user
  .command('rotate <name>')
  .description("change a user's password (ALTER ROLE … PASSWORD); the next connection needs the new one")
  .option('--cluster <cluster>', CLUSTER_HELP)
  .requiredOption('--password <password>', 'the new password (SCRAM-SHA-256)')
  .action(async (name: string, opts: { cluster?: string; password: string }) => {
    const { api, cluster } = await onCluster(opts.cluster);
    await api.request('POST', `/v1/clusters/${encodeURIComponent(cluster)}/users/${encodeURIComponent(name)}/password`, { password: opts.password });
    process.stdout.write(`Changed the password of user ${name} in cluster ${cluster}.\n`);
  });
user
  .command('delete <name>')
  .description('drop a user (DROP ROLE; refused while it owns objects)')
  .option('--cluster <cluster>', CLUSTER_HELP)
  .action(async (name: string, opts: { cluster?: string }) => {
    const { api, cluster } = await onCluster(opts.cluster);
    await api.request('DELETE', `/v1/clusters/${encodeURIComponent(cluster)}/users/${encodeURIComponent(name)}`);
    process.stdout.write(`Deleted user ${name} from cluster ${cluster}.\n`);
  });

const accessKey = program.command('access-key').description('access keys for SigV4 (IAM database tokens, the Data API)');
accessKey
  .command('create')
  .option('--description <text>', 'what the key is for', '')
  .option('--json', 'print JSON')
  .action(async (opts: { description: string; json?: boolean }) => {
    const key = await ApiClient.connect(home()).request<{ accessKeyId: string; secretAccessKey: string }>('POST', '/v1/access-keys', { description: opts.description });
    if (opts.json) process.stdout.write(JSON.stringify(key) + '\n');
    else process.stdout.write(`AccessKeyId:     ${key.accessKeyId}\nSecretAccessKey: ${key.secretAccessKey}\n(the secret is shown only now)\n`);
  });
accessKey.command('list').action(async () => {
  const { accessKeys } = await ApiClient.connect(home()).request<{ accessKeys: Array<{ id: string; description: string; createdAt: string }> }>('GET', '/v1/access-keys');
  for (const k of accessKeys) process.stdout.write(`${k.id}\t${k.createdAt}\t${k.description}\n`);
});
accessKey.command('delete <id>').action(async (id: string) => {
  await ApiClient.connect(home()).request('DELETE', `/v1/access-keys/${encodeURIComponent(id)}`);
  process.stdout.write(`Deleted access key ${id}.\n`);
});

const secret = program.command('secret').description('secrets (Secrets Manager style) for the Data API\'s secretArn');
secret
  .command('create')
  .description('store a login for the Data API; prints its ARN')
  .option('--cluster <cluster>', CLUSTER_HELP)
  .requiredOption('--username <name>', 'database user the secret logs in as')
  .requiredOption('--password <password>', "the user's password")
  .option('--dbname <database>', 'database the Data API uses when a call names none (default: the user\'s name)')
  .action(async (opts: { cluster?: string; username: string; password: string; dbname?: string }) => {
    const { api, cluster } = await onCluster(opts.cluster);
    const r = await api.request<{ arn: string }>('POST', `/v1/clusters/${encodeURIComponent(cluster)}/secrets`, { username: opts.username, password: opts.password, ...(opts.dbname ? { dbname: opts.dbname } : {}) });
    process.stdout.write(r.arn + '\n');
  });
secret
  .command('list')
  .description("a cluster's secrets: ARN, user, creation time (the values stay hidden)")
  .option('--cluster <cluster>', CLUSTER_HELP)
  .option('--json', 'print JSON')
  .action(async (opts: { cluster?: string; json?: boolean }) => {
    const { api, cluster } = await onCluster(opts.cluster);
    const { secrets } = await api.request<{ secrets: Array<{ arn: string; username: string; createdAt: string; master: boolean }> }>('GET', `/v1/clusters/${encodeURIComponent(cluster)}/secrets`);
    if (opts.json) process.stdout.write(JSON.stringify(secrets, null, 2) + '\n');
    else for (const x of secrets) process.stdout.write(`${x.arn}\t${x.username}\t${x.createdAt}${x.master ? '\tmaster' : ''}\n`);
  });
secret
  .command('delete <arn>')
  .description('delete a secret (the master user\'s goes only with its cluster)')
  .option('--cluster <cluster>', CLUSTER_HELP)
  .action(async (arn: string, opts: { cluster?: string }) => {
    const { api, cluster } = await onCluster(opts.cluster);
    await api.request('DELETE', `/v1/clusters/${encodeURIComponent(cluster)}/secrets/${encodeURIComponent(arn)}`);
    process.stdout.write(`Deleted secret ${arn}.\n`);
  });

program
  .command('events')
  .description('recent events, newest first')
  .option('--limit <n>', 'how many', '20')
  .option('--json', 'print JSON')
  .action(async (opts: { limit: string; json?: boolean }) => {
    const { events } = await ApiClient.connect(home()).request<{ events: Array<{ time: string; sourceId: string; kind: string; message: string }> }>('GET', `/v1/events?limit=${encodeURIComponent(opts.limit)}`);
    if (opts.json) process.stdout.write(JSON.stringify(events, null, 2) + '\n');
    else for (const e of events) process.stdout.write(`${e.time}  ${e.sourceId.padEnd(24)} ${e.kind.padEnd(11)} ${e.message}\n`);
  });

program
  .command('connect [cluster]')
  .description('open psql on a cluster (or print its connection URL)')
  .option('--print', 'print the URL instead of running psql')
  .action(async (name: string | undefined, opts: { print?: boolean }) => {
    const { api, cluster: clusterName } = await onCluster(name);
    const c = await api.request<ClusterStatus>('GET', `/v1/clusters/${encodeURIComponent(clusterName)}`);
    const creds = await api.request<{ username: string; password: string }>('GET', `/v1/clusters/${encodeURIComponent(clusterName)}/credentials`);
    const e = c.endpoints.find((x) => x.type === 'writer');
    if (!e) throw new Error(`cluster ${clusterName} has no writer endpoint`);
    // Verified against the home's own CA: the server is who it says it is.
    const ca = path.join(homePaths(home()).tlsDir, 'ca.crt');
    // A wildcard listen address is reached (and verified) as loopback.
    const host = e.host === '0.0.0.0' || e.host === '::' ? '127.0.0.1' : e.host;
    const url = `postgres://${encodeURIComponent(creds.username)}:${encodeURIComponent(creds.password)}@${host}:${e.port}/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`;
    const hasPsql = spawnSync('psql', ['--version']).status === 0;
    if (opts.print || !hasPsql) {
      process.stdout.write(url + '\n');
      if (!hasPsql && !opts.print) process.stderr.write('(psql not found: install postgresql-client to open a session)\n');
      return;
    }
    const child = spawn('psql', [url], { stdio: 'inherit' });
    await new Promise<void>((resolve) => child.once('exit', (code) => ((process.exitCode = code ?? 1), resolve())));
  });

program
  .command('bench')
  .description('load experiments')
  .command('lambda')
  .description('a fleet of simulated serverless functions against a cluster, with per-second records and a chart')
  .option('--handler <file>', 'module exporting handler(event, context) (default: examples/lambda/insert-order.mjs, or insert-order-data-api.mjs with --mode data-api)')
  .option('--ramp <points>', 'concurrency profile, seconds:concurrency points', '0:1,60:300,90:300,120:0')
  .option('--mode <mode>', 'pooled (a connection per container), fresh (one per invocation) or data-api (the RDS Data API through the AWS SDK)', 'pooled')
  .option('--cluster <name>', CLUSTER_HELP)
  .option('--out <dir>', 'where records and the chart go (default: a new folder under <home>/bench)')
  .option('--idle-reap-s <s>', 'seconds before an idle container is reaped', '10')
  .option('--timeout-ms <ms>', 'invocation timeout', '30000')
  .action(async (opts: { handler?: string; ramp: string; mode: string; cluster?: string; out?: string; idleReapS: string; timeoutMs: string }) => {
    if (opts.mode !== 'pooled' && opts.mode !== 'fresh' && opts.mode !== 'data-api') throw new Error('--mode is pooled, fresh or data-api');
    const handler = opts.handler ?? fileURLToPath(new URL(`../../examples/lambda/${opts.mode === 'data-api' ? 'insert-order-data-api.mjs' : 'insert-order.mjs'}`, import.meta.url));
    const { runLambdaBench } = await import('../loadgen/lambda-run.js');
    const tty = process.stderr.isTTY;
    const { api, cluster } = await onCluster(opts.cluster);
    const outDir = opts.out ?? path.join(home(), 'bench', `lambda-run-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    process.stderr.write(`records and the chart go to ${outDir}\n`);
    const result = await runLambdaBench(
      api,
      { cluster, handlerFile: handler, ramp: opts.ramp, mode: opts.mode, outDir, idleReapMs: Number(opts.idleReapS) * 1000, invocationTimeoutMs: Number(opts.timeoutMs) },
      (line) => process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`),
    );
    if (tty) process.stderr.write('\n');
    const s = result.summary;
    process.stdout.write(`${s.invocations} invocations, ${s.coldStarts} cold starts, ${s.errors} errors; capacity ${Math.min(...result.records.map((r) => r.capacityAcu))}–${Math.max(...result.records.map((r) => r.capacityAcu))} ACU\n`);
    for (const e of s.firstErrors) process.stdout.write(`  error: ${e}\n`);
    for (const f of result.files) process.stdout.write(`wrote ${f}\n`);
    if (s.errors > 0) process.exitCode = 1;
  });

program
  .command('dashboard')
  .description('print the address of the live dashboard (with its access token)')
  .action(() => {
    process.stdout.write(ApiClient.connect(home()).dashboardUrl() + '\n');
  });

program
  .command('storage-node', { hidden: true })
  .description('run one storage node (started by the supervisor; the token comes from BOREALIS_STORAGE_TOKEN)')
  .requiredOption('--name <name>', 'node name, e.g. sn1')
  .requiredOption('--zone <zone>', 'zone, e.g. a')
  .requiredOption('--dir <dir>', 'where the node keeps WAL and backups')
  .requiredOption('--port <port>', 'port of its HTTP API')
  .option('--host <host>', 'address of its HTTP API', '127.0.0.1')
  .action(async (opts: { name: string; zone: string; dir: string; port: string; host: string }) => {
    const { runStorageNode } = await import('../storage/main.js');
    await runStorageNode({ ...opts, port: Number(opts.port) });
  });

const storage = program.command('storage').description('storage nodes: WAL quorum and base backups');
storage
  .command('status [cluster]')
  .description('each storage node: zone, state, term, flush position, lag, disk use')
  .option('--json', 'print JSON')
  .action(async (name: string | undefined, opts: { json?: boolean }) => {
    const { api, cluster } = await onCluster(name);
    const s = await api.request<StorageStatus>('GET', `/v1/clusters/${encodeURIComponent(cluster)}/storage`);
    if (opts.json) return void process.stdout.write(JSON.stringify(s, null, 2) + '\n');
    const lines = [`storage of ${s.cluster}: term ${s.term}, ${s.nodes.filter((n) => n.state === 'streaming').length} of ${s.nodes.length} nodes streaming, write quorum ${s.writeQuorum}, ${s.backups.length} base backups`];
    for (const n of s.nodes) {
      const lag = n.lagBytes === null || n.lagBytes === undefined ? '-' : `${n.lagBytes} B`;
      lines.push(`  ${n.name}  zone ${n.zone}  ${(n.state ?? (n.reachable ? '?' : 'unreachable')).padEnd(12)} term ${n.term ?? '-'}  tl ${n.timeline ?? '-'}  flush ${(n.flushLsn ?? '-').padEnd(12)} lag ${lag.padEnd(10)} disk ${Math.round((n.diskBytes ?? 0) / 1048576)} MiB  ${n.process}${n.pid ? ` pid ${n.pid}` : ''}`);
    }
    for (const b of s.backups) lines.push(`  backup ${b.id}  ${b.bytes} B  WAL ${b.startLsn}..${b.endLsn}  ${b.createdAt}`);
    process.stdout.write(lines.join('\n') + '\n');
  });
storage
  .command('backup [cluster]')
  .description('take a base backup now and store it on the nodes')
  .action(async (name: string | undefined) => {
    const { api, cluster } = await onCluster(name);
    const b = await api.request<{ id: string; bytes: number }>('POST', `/v1/clusters/${encodeURIComponent(cluster)}/storage/backups`, {});
    process.stdout.write(`base backup ${b.id} stored (${b.bytes} bytes)\n`);
  });
for (const action of ['stop', 'start'] as const) {
  storage
    .command(`${action}-node <node> [cluster]`)
    .description(action === 'stop' ? 'stop a storage node and keep it down' : 'start a stopped storage node')
    .action(async (node: string, name: string | undefined) => {
      const { api, cluster } = await onCluster(name);
      await api.request('POST', `/v1/clusters/${encodeURIComponent(cluster)}/storage/nodes/${encodeURIComponent(node)}/${action}`, {});
      process.stdout.write(`storage node ${node} ${action === 'stop' ? 'stopped' : 'started'}\n`);
    });
}

const instanceCommand = program.command('instance').description('compute instances');
instanceCommand
  .command('add [cluster]')
  .description('add a reader: a clone of the writer that replays its WAL and serves the reader endpoint')
  .option('--promotion-tier <n>', 'failover priority, 0 (first) to 15; readers in tiers 0 and 1 scale with the writer', '1')
  .action(async (name: string | undefined, opts: { promotionTier: string }) => {
    const tier = Number(opts.promotionTier);
    if (!Number.isInteger(tier)) throw new SettingsError('--promotion-tier must be an integer from 0 to 15');
    const { api, cluster } = await onCluster(name);
    process.stdout.write(`cloning the writer of ${cluster} for a new reader...\n`);
    const r = await api.request<{ instance: { id: string } }>('POST', `/v1/clusters/${encodeURIComponent(cluster)}/instances`, { promotionTier: tier });
    process.stdout.write(`reader ${r.instance.id} available\n`);
  });
instanceCommand
  .command('delete <instance>')
  .description('delete a reader (a writer goes with its cluster)')
  .action(async (id: string) => {
    const api = ApiClient.connect(home());
    await api.request('DELETE', `/v1/instances/${encodeURIComponent(id)}`);
    process.stdout.write(`instance ${id} deleted\n`);
  });
instanceCommand
  .command('rebuild <instance>')
  .description('rebuild an instance\'s data directory: a writer\'s from storage (base backup + WAL from a read quorum), a reader\'s by cloning the writer again')
  .action(async (id: string) => {
    const api = ApiClient.connect(home());
    await api.request('POST', `/v1/instances/${encodeURIComponent(id)}/rebuild`, {});
    process.stdout.write(`instance ${id} rebuilt and available\n`);
  });

interface StorageStatus {
  cluster: string;
  term: number;
  writeQuorum: number;
  nodes: Array<{ name: string; zone: string; state?: string; reachable: boolean; term?: number; timeline?: number; flushLsn?: string | null; lagBytes?: number | null; diskBytes?: number; process: string; pid: number | null }>;
  backups: Array<{ id: string; bytes: number; startLsn: string; endLsn: string; createdAt: string }>;
}

/**
 * The control API, and the cluster a command acts on. When none is named,
 * the same rule for every command: "default" when it exists, else the only
 * cluster; with several and none of them "default", the user must say which.
 */
async function onCluster(given: string | undefined): Promise<{ api: ApiClient; cluster: string }> {
  const api = ApiClient.connect(home());
  if (given !== undefined) return { api, cluster: given };
  const { clusters } = await api.request<{ clusters: ClusterStatus[] }>('GET', '/v1/clusters');
  if (clusters.some((c) => c.name === 'default') || clusters.length === 0) return { api, cluster: 'default' };
  if (clusters.length === 1) return { api, cluster: clusters[0]!.name };
  throw new SettingsError(`name a cluster: there are ${clusters.length} (${clusters.map((c) => c.name).join(', ')}) and none is "default"`);
}

/** An auto-pause delay only matters with a minimum of 0 ACU: say so rather than accept it silently. */
function noteAutoPause(opts: { autoPause?: string }, c: ClusterStatus): void {
  if (opts.autoPause !== undefined && c.scaling.minCapacity > 0) {
    process.stderr.write(`note: --auto-pause has no effect while the minimum capacity is ${c.scaling.minCapacity} ACU; it applies once --min is 0\n`);
  }
}

function scalingFlags(opts: { min?: string; max?: string; autoPause?: string }): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [flag, field] of [['min', 'minCapacity'], ['max', 'maxCapacity'], ['autoPause', 'secondsUntilAutoPause']] as const) {
    const v = opts[flag];
    if (v === undefined) continue;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`--${flag === 'autoPause' ? 'auto-pause' : flag} takes a number, got "${v}"`);
    out[field] = n;
  }
  return out;
}

function describeCluster(c: ClusterStatus): string {
  const lines = [`cluster ${c.name}: ${c.status} (PostgreSQL ${c.engineVersion}, master user ${c.masterUsername})`];
  lines.push(`  scaling  ${c.scaling.minCapacity}-${c.scaling.maxCapacity} ACU${c.scaling.minCapacity === 0 ? `, auto-pause after ${c.scaling.secondsUntilAutoPause} s` : ''}`);
  for (const i of c.instances) {
    const m = i.metrics ? `  CPU ${i.metrics.cpuUtilizationPercent}%  ACU ${i.metrics.acuUtilizationPercent}%  ${i.metrics.connections} conn` : '';
    lines.push(`  instance ${i.id}  ${i.role}  ${i.kind}  ${i.state}  ${i.capacityAcu} ACU${m}${i.pid ? `  pid ${i.pid}` : ''}  ${i.acuSeconds} ACU-s ($${i.estimatedCost})${i.replicaLag ? `  lag ${i.replicaLag.seconds.toFixed(3)} s / ${i.replicaLag.bytes} B` : ''}`);
  }
  for (const e of c.endpoints) lines.push(`  endpoint ${(e.type + (e.name ? ` ${e.name}` : '')).padEnd(28)} port ${e.port}  ${e.serverName}`);
  if (c.storage.nodes.length > 0) {
    const streaming = c.storage.nodes.filter((n) => n.state === 'streaming' && n.term === c.storage.term).length;
    const disk = c.storage.nodes.reduce((sum, n) => sum + (n.diskBytes ?? 0), 0);
    lines.push(`  storage  term ${c.storage.term}, ${streaming} of ${c.storage.nodes.length} nodes streaming, ${Math.round(disk / 1048576)} MiB on disk (all nodes)${c.storage.writeQuorumLost ? `, write quorum LOST (commits wait for ${c.storage.writeQuorum})` : ''}`);
  }
  lines.push(`  access   ${c.access.allowedCidrs.length ? c.access.allowedCidrs.join(', ') : 'any source'}; TLS ${c.access.requireTls ? 'required' : 'optional'}`);
  return lines.join('\n') + '\n';
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof NotRunning || err instanceof SettingsError || err instanceof ApiError) {
    process.stderr.write(`borealis: ${err.message}\n`);
    process.exit(err instanceof NotRunning ? 3 : 1);
  }
  process.stderr.write(`borealis: ${(err as Error).message}\n`);
  process.exit(1);
}
