// What /metrics shows (Prometheus text; docs/architecture.md lists the families), built from
// the status document: one place for every figure's name, help and labels,
// with CloudWatch's names where Aurora has one.
import type { LatencyHistogram } from '../metrics/histogram.js';
import { histogramSamples, type MetricFamily } from '../metrics/prometheus.js';
import { parseLsn } from '../pgwire/replication.js';
import type { InstanceStatus, StatusDocument } from './status.js';
import type { StorageNodeView } from './storage-fleet.js';

/** Figures the status document does not carry. */
export interface MetricExtras {
  /** Failovers of the cluster since the supervisor started. */
  failovers(cluster: string): number;
  /** Explicit COMMITs' latency through the front door, per instance. */
  commitLatency(instanceId: string): LatencyHistogram;
  /** Resumes from auto-pause, and the last one's duration (null before any). */
  resumes(instanceId: string): { count: number; lastMs: number | null };
}

/** The /metrics families, from a status document and the few figures it does not carry. */
export function metricFamilies(status: StatusDocument, extra: MetricExtras): MetricFamily[] {
  const perInstance = (name: string, help: string, type: 'gauge' | 'counter', value: (i: InstanceStatus) => number | null): MetricFamily => ({
    name,
    help,
    type,
    samples: status.clusters.flatMap((c) =>
      c.instances.flatMap((i) => {
        const v = value(i);
        return v === null ? [] : [{ labels: { cluster: c.name, instance: i.id, role: i.role }, value: v }];
      }),
    ),
  });
  const proxy = status.proxy;
  return [
    perInstance('borealis_serverless_database_capacity_acu', 'Capacity in ACUs (CloudWatch ServerlessDatabaseCapacity); 0 while paused.', 'gauge', (i) => i.capacityAcu),
    perInstance('borealis_acu_utilization_percent', 'Largest of CPU and memory use against capacity (CloudWatch ACUUtilization).', 'gauge', (i) => i.metrics?.acuUtilizationPercent ?? null),
    perInstance('borealis_cpu_utilization_percent', 'CPU used against the capacity\'s CPU (CloudWatch CPUUtilization).', 'gauge', (i) => i.metrics?.cpuUtilizationPercent ?? null),
    perInstance('borealis_memory_used_bytes', 'Memory in use by the instance, without reclaimable cache.', 'gauge', (i) => (i.metrics ? i.metrics.memoryMiB * 1024 * 1024 : null)),
    perInstance('borealis_database_connections', 'Client sessions on the instance (CloudWatch DatabaseConnections).', 'gauge', (i) => i.metrics?.connections ?? null),
    perInstance('borealis_queued_clients', 'Clients waiting for a server connection to the instance.', 'gauge', (i) => i.metrics?.queuedClients ?? null),
    perInstance('borealis_acu_seconds_total', 'Capacity consumed, in ACU-seconds.', 'counter', (i) => i.acuSeconds),
    {
      name: 'borealis_failovers_total',
      help: 'Failovers (a reader promoted to writer) since the supervisor started.',
      type: 'counter',
      samples: status.clusters.map((c) => ({ labels: { cluster: c.name }, value: extra.failovers(c.name) })),
    },
    {
      name: 'borealis_commit_latency_seconds',
      help: 'Explicit COMMITs through the front door, from the client\'s message to the server\'s answer (CloudWatch CommitLatency).',
      type: 'histogram',
      samples: histogramSamples(status.clusters.flatMap((c) => c.instances.map((i) => ({ labels: { cluster: c.name, instance: i.id, role: i.role }, histogram: extra.commitLatency(i.id) })))),
    },
    perInstance('borealis_replica_lag_seconds', 'How far a reader\'s replay is behind its writer (CloudWatch AuroraReplicaLag, in seconds).', 'gauge', (i) => i.replicaLag?.seconds ?? null),
    perInstance('borealis_replica_lag_bytes', 'WAL the writer has written that a reader has not replayed yet.', 'gauge', (i) => i.replicaLag?.bytes ?? null),
    perInstance('borealis_instance_available', '1 when the instance accepts connections.', 'gauge', (i) => (i.state === 'available' ? 1 : 0)),
    perInstance('borealis_instance_paused', '1 while the instance is auto-paused.', 'gauge', (i) => (i.state === 'paused' ? 1 : 0)),
    perInstance('borealis_resumes_total', 'Resumes from auto-pause.', 'counter', (i) => extra.resumes(i.id).count),
    perInstance('borealis_resume_duration_seconds', 'Duration of the last resume, from the first client to PostgreSQL answering.', 'gauge', (i) => {
      const last = extra.resumes(i.id).lastMs;
      return last === null ? null : last / 1000;
    }),
    {
      name: 'borealis_proxy_clients',
      help: 'Client connections at the front door, by state.',
      type: 'gauge',
      samples: Object.entries(proxy.clientsByState).filter(([state]) => state !== 'closed').map(([state, value]) => ({ labels: { state }, value })),
    },
    ...storageMetrics(status),
    { name: 'borealis_proxy_pinned_clients', help: 'Clients pinned to a server by session state.', type: 'gauge', samples: [{ value: proxy.pinnedClients }] },
    {
      name: 'borealis_pool_servers',
      help: 'Server connections per pool, by state.',
      type: 'gauge',
      samples: proxy.pools.flatMap((p) => [
        { labels: { cluster: p.cluster, instance: p.instanceId, user: p.user, database: p.database, state: 'idle' }, value: p.idle },
        { labels: { cluster: p.cluster, instance: p.instanceId, user: p.user, database: p.database, state: 'active' }, value: p.active },
      ]),
    },
  ];
}

function storageMetrics(status: StatusDocument): MetricFamily[] {
  const perNode = (name: string, help: string, type: 'gauge' | 'counter', value: (n: StorageNodeView) => number | null | undefined): MetricFamily => ({
    name,
    help,
    type,
    samples: status.clusters.flatMap((c) =>
      c.storage.nodes.flatMap((n) => {
        const v = value(n);
        return v === null || v === undefined ? [] : [{ labels: { cluster: c.name, node: n.name, zone: n.zone }, value: v }];
      }),
    ),
  });
  const lsn = (text: string | null | undefined): number | null => (text ? Number(parseLsn(text)) : null);
  return [
    perNode('borealis_storage_node_streaming', '1 while the storage node streams WAL from its writer.', 'gauge', (n) => (n.state === 'streaming' ? 1 : 0)),
    perNode('borealis_storage_node_term', 'Term the storage node has accepted.', 'gauge', (n) => n.term),
    perNode('borealis_storage_flush_lsn_bytes', 'Durable end of WAL on the node, as a byte position.', 'gauge', (n) => lsn(n.flushLsn)),
    perNode('borealis_storage_lag_bytes', 'WAL the writer has sent or announced that the node has not yet made durable.', 'gauge', (n) => n.lagBytes),
    perNode('borealis_storage_disk_bytes', 'Disk used by the node (WAL and base backups).', 'gauge', (n) => n.diskBytes),
    perNode('borealis_storage_flushes_total', 'WAL flushes (fdatasync) since the node started.', 'counter', (n) => n.flushes),
    {
      name: 'borealis_storage_write_quorum_available',
      help: '1 while at least four storage nodes stream from the writer (commits can be acknowledged); 0 once the write quorum has been lost for storageWriteQuorumGraceMs.',
      type: 'gauge',
      samples: status.clusters.filter((c) => c.storage.nodes.length > 0).map((c) => ({ labels: { cluster: c.name }, value: c.storage.writeQuorumLost ? 0 : 1 })),
    },
    {
      name: 'borealis_storage_rebuilds_total',
      help: 'Writers rebuilt from storage (lost data directory) since the supervisor started.',
      type: 'counter',
      samples: status.clusters.filter((c) => c.storage.nodes.length > 0).map((c) => ({ labels: { cluster: c.name }, value: c.storage.rebuilds })),
    },
    perNode('borealis_storage_flush_seconds_avg', 'Mean duration of a WAL flush since the node started.', 'gauge', (n) => (n.flushMsAvg === undefined ? null : n.flushMsAvg / 1000)),
  ];
}
