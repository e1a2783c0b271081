// The control plane's records. Names follow Aurora's where one exists.

export type InstanceRole = 'writer' | 'reader';
export type InstanceKind = 'provisioned' | 'serverless';
export type InstanceState =
  | 'creating'
  | 'available'
  | 'restarting'
  | 'failed'
  | 'stopping'
  | 'stopped'
  | 'deleting';

export interface ClusterRecord {
  readonly name: string;
  readonly engineVersion: string;
  readonly masterUsername: string;
  readonly createdAt: string;
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
  readonly port: number;
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
