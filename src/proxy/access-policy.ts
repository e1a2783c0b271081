// A cluster's network access rules, compiled for the accept path: CIDR
// allow-lists (Aurora's security group) and whether TLS is required.
import net from 'node:net';
import type { ClusterAccess } from '../control/model.js';

export interface AccessPolicy {
  readonly requireTls: boolean;
  allows(remoteAddress: string | undefined): boolean;
}

export const OPEN_POLICY: AccessPolicy = { requireTls: false, allows: () => true };

export function compileAccessPolicy(access: ClusterAccess): AccessPolicy {
  if (access.allowedCidrs.length === 0) return { requireTls: access.requireTls, allows: () => true };
  const list = new net.BlockList();
  for (const cidr of access.allowedCidrs) {
    const [address, prefix] = cidr.split('/') as [string, string];
    list.addSubnet(address, Number(prefix), net.isIPv6(address) ? 'ipv6' : 'ipv4');
  }
  return {
    requireTls: access.requireTls,
    allows(remoteAddress) {
      if (!remoteAddress) return false;
      // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
      const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress)?.[1];
      if (v4) return list.check(v4, 'ipv4');
      return list.check(remoteAddress, net.isIPv6(remoteAddress) ? 'ipv6' : 'ipv4');
    },
  };
}
