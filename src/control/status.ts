import type { StorageNodeView } from './storage-fleet.js';
// The documented shape of `borealis status --json` and GET /v1/status.
// Scripts rely on it: add fields, never rename or remove them.
import type { ProxyStats } from '../proxy/proxy-server.js';
import type { ClusterAccess, EndpointType, InstanceKind, InstanceRole, InstanceState } from './model.js';

export interface StatusDocument {
  /** Shape version; bumped only for incompatible changes. */
  readonly version: 1;
  readonly home: string;
  readonly supervisor: { readonly pid: number; readonly startedAt: string };
  readonly services: {
    readonly api: { readonly url: string };
    /** The RDS Data API endpoint (HTTP): the AWS SDK's `endpoint`. */
    readonly dataApi: { readonly url: string };
  };
  readonly engine: { readonly version: string; readonly binDir: string };
  readonly proxy: ProxyStatus;
  readonly capacity: {
    /** What one ACU stands for on this host. */
    readonly acu: { readonly memoryMiB: number; readonly cpuCores: number };
    /** 'cgroup v1', 'cgroup v2', or 'degraded: <reason>' (settings and pool size only). */
    readonly enforcement: string;
    readonly pricePerAcuHour: number;
  };
  readonly clusters: readonly ClusterStatus[];
}

export interface ClusterStatus {
  readonly name: string;
  readonly engineVersion: string;
  readonly masterUsername: string;
  /** PostgreSQL's system identifier, once the writer has run (null before): the cluster's data comes only from it from then on. */
  readonly systemId: string | null;
  /** available when the writer is available; otherwise the writer's state. */
  readonly status: InstanceState | 'no-writer';
  readonly instances: readonly InstanceStatus[];
  readonly endpoints: readonly EndpointStatus[];
  /** Who may connect: CIDR allow-list (empty = any source) and whether TLS is required. */
  readonly access: ClusterAccess;
  /** Aurora's EnableHttpEndpoint, and the ARN Data API calls name the cluster by. */
  readonly dataApi: { readonly enabled: boolean; readonly resourceArn: string };
  /** Aurora's ServerlessV2ScalingConfiguration (MinCapacity, MaxCapacity, SecondsUntilAutoPause). */
  readonly scaling: { readonly minCapacity: number; readonly maxCapacity: number; readonly secondsUntilAutoPause: number };
  /**
   * Storage nodes (empty with storageNodeCount 0): term, quorum, each node's
   * zone, state, positions, lag, disk use; backups held by a write quorum.
   * writeQuorumLost: fewer than writeQuorum nodes have streamed from the
   * running writer for storageWriteQuorumGraceMs, so its commits wait.
   */
  readonly storage: { readonly term: number; readonly writeQuorum: number; readonly writeQuorumLost: boolean; readonly rebuilds: number; readonly nodes: readonly StorageNodeView[]; readonly backups: number };
}

export interface InstanceStatus {
  readonly id: string;
  readonly role: InstanceRole;
  readonly kind: InstanceKind;
  readonly state: InstanceState;
  readonly promotionTier: number;
  /** Capacity in ACUs now (Aurora's ServerlessDatabaseCapacity); 0 while paused. */
  readonly capacityAcu: number;
  /** postmaster pid while running. */
  readonly pid: number | null;
  /** The last per-second sample, null before the first. */
  readonly metrics: {
    readonly cpuUtilizationPercent: number;
    readonly acuUtilizationPercent: number;
    readonly cpuCores: number;
    readonly memoryMiB: number;
    readonly connections: number;
    readonly queuedClients: number;
  } | null;
  /**
   * A reader: how far its replay is behind the writer (Aurora's
   * AuroraReplicaLag, in seconds here, and in WAL bytes); null for a writer
   * or before the first sample.
   */
  readonly replicaLag: { readonly seconds: number; readonly bytes: number } | null;
  /** Capacity used so far, and its price at pricePerAcuHour. */
  readonly acuSeconds: number;
  readonly estimatedCost: number;
}

export interface EndpointStatus {
  readonly type: EndpointType;
  /** '' for writer and reader; the instance id; the custom endpoint's name. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** TLS server name (SNI) that reaches this endpoint through any proxy port. */
  readonly serverName: string;
  /** Custom endpoints only. */
  readonly customType?: 'READER' | 'ANY';
  readonly staticMembers?: readonly string[];
  readonly excludedMembers?: readonly string[];
  /** Connection URL without the password. */
  readonly url: string;
}

/** The proxy's counts; see ProxyStats and PoolStats for each field. */
export type ProxyStatus = ProxyStats;
