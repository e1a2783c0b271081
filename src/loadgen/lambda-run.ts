// `borealis bench lambda`: runs the fleet against a cluster through its
// writer endpoint, samples the cluster's capacity every second from the
// control API, shows a live progress line, and writes the per-second records
// (CSV and JSON) and the chart (SVG).
import fs from 'node:fs';
import path from 'node:path';
import type { ApiClient } from '../cli/api-client.js';
import type { ClusterStatus, StatusDocument } from '../control/status.js';
import { lambdaChart } from './chart.js';
import { runFleet, type ConnectionMode, type FleetSummary, type SecondRecord } from './lambda-fleet.js';
import { parseRamp, rampDurationS } from './ramp.js';

export interface LambdaRunOptions {
  readonly cluster: string;
  readonly handlerFile: string;
  readonly ramp: string;
  readonly mode: ConnectionMode;
  readonly outDir: string;
  readonly idleReapMs: number;
  readonly invocationTimeoutMs: number;
}

export interface LambdaRecord extends SecondRecord {
  /** The cluster's total capacity (all instances) at the end of the second. */
  readonly capacityAcu: number;
  readonly writerCpuPercent: number | null;
  readonly instances: Record<string, number>;
}

export async function runLambdaBench(api: ApiClient, o: LambdaRunOptions, progress: (line: string) => void): Promise<{ records: LambdaRecord[]; summary: FleetSummary; files: string[] }> {
  const ramp = parseRamp(o.ramp);
  if (!fs.existsSync(o.handlerFile)) throw new Error(`no handler module at ${o.handlerFile}`);
  const cluster = await api.request<ClusterStatus>('GET', `/v1/clusters/${encodeURIComponent(o.cluster)}`);
  const creds = await api.request<{ username: string; password: string }>('GET', `/v1/clusters/${encodeURIComponent(o.cluster)}/credentials`);
  const writer = cluster.endpoints.find((e) => e.type === 'writer');
  if (!writer) throw new Error(`cluster ${o.cluster} has no writer endpoint`);
  const records: LambdaRecord[] = [];
  const total = rampDurationS(ramp);
  const accessKeyId = o.mode === 'data-api' ? await prepareDataApi(api, cluster, creds) : null;
  let summary: FleetSummary;
  try {
    summary = await runFleet({
      handlerFile: path.resolve(o.handlerFile),
      ramp,
      mode: o.mode,
      db: { host: writer.host, port: writer.port, user: creds.username, password: creds.password, database: 'postgres', ssl: { rejectUnauthorized: false } },
      idleReapMs: o.idleReapMs,
      invocationTimeoutMs: o.invocationTimeoutMs,
      onSecond: async (r) => {
        const c = await api.request<ClusterStatus>('GET', `/v1/clusters/${encodeURIComponent(o.cluster)}`).catch(() => null);
        const instances = Object.fromEntries((c?.instances ?? []).map((i) => [i.id, i.capacityAcu]));
        const w = c?.instances.find((i) => i.role === 'writer');
        const rec: LambdaRecord = { ...r, capacityAcu: Object.values(instances).reduce((a, b) => a + b, 0), writerCpuPercent: w?.metrics?.cpuUtilizationPercent ?? null, instances };
        records.push(rec);
        progress(`${String(rec.second).padStart(4)}/${total} s  concurrency ${rec.inFlight}/${rec.targetConcurrency}  ${rec.invocations}/s  cold ${rec.coldStarts}  errors ${rec.errors}  p50 ${rec.latencyP50Ms ?? '-'} ms  p99 ${rec.latencyP99Ms ?? '-'} ms  capacity ${rec.capacityAcu} ACU`);
      },
    });
  } finally {
    if (accessKeyId) await api.request('DELETE', `/v1/access-keys/${encodeURIComponent(accessKeyId)}`).catch(() => undefined);
  }
  fs.mkdirSync(o.outDir, { recursive: true });
  const header = ['second', 'target_concurrency', 'in_flight', 'containers', 'invocations', 'cold_starts', 'errors', 'latency_p50_ms', 'latency_p99_ms', 'capacity_acu', 'writer_cpu_percent'];
  const csv = [header.join(','), ...records.map((r) => [r.second, r.targetConcurrency, r.inFlight, r.containers, r.invocations, r.coldStarts, r.errors, r.latencyP50Ms ?? '', r.latencyP99Ms ?? '', r.capacityAcu, r.writerCpuPercent ?? ''].join(','))].join('\n') + '\n';
  const files = [path.join(o.outDir, 'records.csv'), path.join(o.outDir, 'records.json'), path.join(o.outDir, 'chart.svg')];
  fs.writeFileSync(files[0]!, csv);
  fs.writeFileSync(files[1]!, JSON.stringify({ cluster: o.cluster, ramp: o.ramp, mode: o.mode, handler: o.handlerFile, summary, records }, null, 2));
  fs.writeFileSync(files[2]!, lambdaChart(records, `bench lambda: ${path.basename(o.handlerFile)}, ramp ${o.ramp}, ${o.mode === 'data-api' ? 'the Data API' : `${o.mode} connections`}`));
  return { records, summary, files };
}

/**
 * For the Data API, functions get what a Lambda has in its environment:
 * credentials, the cluster's ARN and a secret's ARN, from an access key and
 * a secret made for this run. Returns the key's id, to delete afterwards.
 */
async function prepareDataApi(api: ApiClient, cluster: ClusterStatus, creds: { username: string; password: string }): Promise<string> {
  if (!cluster.dataApi.enabled) throw new Error(`the Data API is disabled for cluster ${cluster.name} (borealis cluster modify ${cluster.name} --data-api)`);
  const status = await api.request<StatusDocument>('GET', '/v1/status');
  const key = await api.request<{ accessKeyId: string; secretAccessKey: string }>('POST', '/v1/access-keys', { description: 'borealis bench lambda' });
  const secret = await api.request<{ arn: string }>('POST', `/v1/clusters/${encodeURIComponent(cluster.name)}/secrets`, { username: creds.username, password: creds.password });
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: key.accessKeyId,
    AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
    AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
    BOREALIS_DATA_API_URL: status.services.dataApi.url,
    BOREALIS_RESOURCE_ARN: cluster.dataApi.resourceArn,
    BOREALIS_SECRET_ARN: secret.arn,
  });
  return key.accessKeyId;
}
