// The control plane's records. Names follow Aurora's where one exists.

export type InstanceRole = 'writer' | 'reader';
export type InstanceKind = 'provisioned' | 'serverless';
export type InstanceState =
  | 'creating'
  | 'available'
  | 'restarting'
  | 'rebuilding'
  | 'failed'
  /** A writer whose data is gone, waiting for a read quorum of storage nodes to rebuild from. */
  | 'waiting-for-storage'
  | 'pausing'
  | 'paused'
  | 'resuming'
  | 'stopping'
  | 'stopped'
  | 'deleting';

export interface ClusterRecord {
  readonly name: string;
  readonly engineVersion: string;
  readonly masterUsername: string;
  /**
   * The superuser Borealis manages the cluster as, over the private socket
   * only (never through the proxy); null for clusters made when the master
   * user was the superuser.
   */
  readonly adminUsername: string | null;
  /** The PostgreSQL system identifier, recorded once the writer has run; null before. */
  readonly systemId: string | null;
  readonly createdAt: string;
}

/** The role Borealis manages a cluster as. */
export function adminOf(c: Pick<ClusterRecord, 'masterUsername' | 'adminUsername'>): string {
  return c.adminUsername ?? c.masterUsername;
}

/** Who may connect to a cluster (Aurora's security group and TLS requirement). */
export interface ClusterAccess {
  /** CIDR ranges allowed to connect; empty allows every source. */
  readonly allowedCidrs: readonly string[];
  readonly requireTls: boolean;
}

export interface InstanceRecord {
  readonly id: string;
  readonly cluster: string;
  readonly role: InstanceRole;
  readonly kind: InstanceKind;
  readonly promotionTier: number;
  readonly capacityAcu: number;
  readonly enginePort: number;
  readonly createdAt: string;
}

export type EndpointType = 'writer' | 'reader' | 'instance' | 'custom';

export interface EndpointRecord {
  readonly cluster: string;
  readonly type: EndpointType;
  /** '' for writer and reader; the instance id for instance endpoints; the custom endpoint's name. */
  readonly name: string;
  readonly port: number;
  /** Custom endpoints only. */
  readonly customType: 'READER' | 'ANY' | null;
  readonly staticMembers: readonly string[];
  readonly excludedMembers: readonly string[];
}

/** The TLS server name (SNI) that reaches an endpoint on any proxy port. */
export function endpointServerName(e: Pick<EndpointRecord, 'cluster' | 'type' | 'name'>, domain: string): string {
  switch (e.type) {
    case 'writer':
      return `${e.cluster}.cluster.${domain}`;
    case 'reader':
      return `${e.cluster}.cluster-ro.${domain}`;
    case 'instance':
      return `${e.name}.instance.${domain}`;
    case 'custom':
      return `${e.name}.cluster-custom.${domain}`;
  }
}

export interface EventRecord {
  readonly id: number;
  readonly time: string;
  readonly sourceType: 'cluster' | 'instance' | 'system';
  readonly sourceId: string;
  readonly kind: string;
  readonly message: string;
}

/** Cluster names follow Aurora's DB cluster identifier rules. */
export function validateClusterName(name: string): string | null {
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) return 'cluster names are 1-63 lowercase letters, digits or hyphens, starting with a letter';
  if (name.endsWith('-') || name.includes('--')) return 'cluster names cannot end with a hyphen or contain two hyphens in a row';
  return null;
}

/** PostgreSQL role names Borealis accepts for users it manages. */
export function validateUsername(name: string): string | null {
  return /^[a-z_][a-z0-9_]{0,62}$/.test(name) ? null : 'user names are 1-63 lowercase letters, digits or underscores, not starting with a digit';
}

/** Validates an IPv4 or IPv6 CIDR range such as 10.0.0.0/8 or ::1/128. */
export function validateCidr(cidr: string): string | null {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) return `"${cidr}" is not a CIDR range (address/prefix)`;
  const isV4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(m[1]!) && m[1]!.split('.').every((o) => Number(o) <= 255);
  const isV6 = !isV4 && m[1]!.includes(':');
  const prefix = Number(m[2]);
  if (!isV4 && !isV6) return `"${cidr}" has no valid address`;
  if (prefix > (isV4 ? 32 : 128)) return `"${cidr}" has a prefix longer than the address`;
  return null;
}
