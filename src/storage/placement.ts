// Where a cluster's storage nodes run. By default every node listens on
// loopback beside the supervisor. With storageZoneHosts, each named zone's
// nodes listen on that zone's own address, optionally inside a named network
// namespace: one machine standing in for separate hosts per zone, reached
// over a real network path that can be cut (the reliability harness does
// this). Placement is recorded with the cluster's nodes when the cluster is
// made; later changes to the setting apply to clusters made after them.
import net from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** The zone of each of a cluster's six nodes, sn1 to sn6: two per zone. */
export const NODE_ZONES = ['a', 'a', 'b', 'b', 'c', 'c'] as const;
export const STORAGE_ZONES: readonly string[] = [...new Set(NODE_ZONES)];

export interface ZoneHost {
  /** The address the zone's nodes listen on and are reached at. */
  readonly address: string;
  /** The network namespace they run in (ip netns), or null for the supervisor's own. */
  readonly netns: string | null;
}

/** A placement the setting cannot describe; the message names the entry. */
export class PlacementError extends Error {
  override readonly name = 'PlacementError';
}

const ZONE_NAME = /^[a-z][a-z0-9-]{0,31}$/;
/** What `ip netns` accepts as a name, kept to characters that need no quoting. */
const NETNS_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Parses `a=10.0.0.11@ns-a,b=10.0.0.12,...`: zone, then its address, then
 * optionally the network namespace its nodes run in. Every zone named must
 * be one of `zones`, once; zones not named stay on loopback.
 */
export function parseZoneHosts(text: string, zones: readonly string[]): Map<string, ZoneHost> {
  const out = new Map<string, ZoneHost>();
  if (text.trim() === '') return out;
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    const m = /^([^=@\s]+)=([^=@\s]+)(?:@([^=@\s]+))?$/.exec(entry);
    if (!m) throw new PlacementError(`"${entry}" is not zone=address or zone=address@netns`);
    const [, zone, address, netns] = m as unknown as [string, string, string, string | undefined];
    if (!ZONE_NAME.test(zone) || !zones.includes(zone)) throw new PlacementError(`"${entry}": zone ${zone} is not one of the storage zones (${zones.join(', ')})`);
    if (out.has(zone)) throw new PlacementError(`"${entry}": zone ${zone} is placed twice`);
    const bad = unusableAddress(address);
    if (bad) throw new PlacementError(`"${entry}": ${bad}`);
    if (netns !== undefined && !NETNS_NAME.test(netns)) throw new PlacementError(`"${entry}": ${netns} is not a network namespace name (letters, digits, _ . -)`);
    out.set(zone, { address, netns: netns ?? null });
  }
  return out;
}

/**
 * Why an address cannot be one a node or the writer listens on and is
 * reached at, or null: it must be one unicast IP address (not the
 * any-address, which would listen on every interface, not multicast, and
 * without an IPv6 zone, which URLs would need encoded).
 */
export function unusableAddress(address: string): string | null {
  if (address.includes('%')) return `${address} names an IPv6 zone; use an address without one`;
  const family = net.isIP(address);
  if (family === 0) return `${address} is not an IP address`;
  if (address === '0.0.0.0' || /^[0:]+$/.test(address)) return `${address} is the any-address, not one host's`;
  if (family === 4 && Number(address.split('.')[0]) >= 224) return `${address} is not a unicast address`;
  if (family === 6 && /^ff/i.test(address)) return `${address} is a multicast address`;
  return null;
}

/** The host part of an HTTP URL: IPv6 addresses in brackets. */
export function urlHost(address: string): string {
  return net.isIPv6(address) ? `[${address}]` : address;
}

/** A CIDR naming exactly one address, for pg_hba.conf. */
export function singleAddressCidr(address: string): string {
  return `${address}/${net.isIPv6(address) ? 128 : 32}`;
}
