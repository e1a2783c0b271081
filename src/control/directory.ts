// The control plane's answers to what every new proxy connection and every
// Data API request asks (which endpoint, which instance, which secret), read
// from the state store and kept until the store changes: each look-up is
// cached against the store's version, so no change can be missed by a
// caller that forgot to invalidate.
import { routeConnection, type EndpointTarget } from '../proxy/routing.js';
import type { EndpointRef } from '../proxy/client-connection.js';
import { endpointServerName } from './model.js';
import type { Store } from './store.js';

/** Cached values, all dropped when the store's version moves. */
export class LookupCache {
  private readonly values = new Map<string, unknown>();
  private seen = -1;

  constructor(private readonly version: () => number) {}

  get<T>(key: string, compute: () => T): T {
    const now = this.version();
    if (now !== this.seen) {
      this.values.clear();
      this.seen = now;
    }
    if (this.values.has(key)) return this.values.get(key) as T;
    const value = compute();
    // Bounded: past it everything is read again.
    if (this.values.size > LOOKUPS_MAX) this.values.clear();
    this.values.set(key, value);
    return value;
  }
}

const LOOKUPS_MAX = 10_000;

/** Endpoints to instances, as the proxy asks. */
export class EndpointDirectory {
  readonly cache: LookupCache;
  /** Per endpoint, how many connections it has routed (round robin among equals). */
  private readonly turns = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly endpointDomain: string,
    /** Whether the instance accepts connections now (never cached). */
    private readonly available: (instanceId: string) => boolean,
  ) {
    this.cache = new LookupCache(() => store.version);
  }

  /** Moves whenever an endpoint's instance may have changed (a failover swaps roles): writer sessions re-route then. */
  version(): number {
    return this.store.version;
  }

  route(endpoint: EndpointRef): { instanceId: string } | null {
    const record = this.cache.get(`endpoints\0${endpoint.cluster}`, () => this.store.listEndpoints(endpoint.cluster)).find((e) => e.type === endpoint.type && e.name === endpoint.name);
    if (!record) return null;
    const target: EndpointTarget =
      record.type === 'instance'
        ? { type: 'instance', instanceId: record.name }
        : record.type === 'custom'
          ? { type: 'custom', customType: record.customType ?? 'ANY', staticMembers: record.staticMembers, excludedMembers: record.excludedMembers }
          : { type: record.type };
    const instances = this.cache.get(`instances\0${endpoint.cluster}`, () => this.store.listInstances(endpoint.cluster)).map((i) => ({ id: i.id, role: i.role, available: this.available(i.id) }));
    const key = `${endpoint.cluster}/${endpoint.type}/${endpoint.name}`;
    const turn = this.turns.get(key) ?? 0;
    this.turns.set(key, turn + 1);
    const chosen = routeConnection(target, instances, turn);
    return chosen ? { instanceId: chosen.id } : null;
  }

  /** The writer of record's id, null for a cluster without one. */
  writerId(cluster: string): string | null {
    return this.cache.get(`writer\0${cluster}`, () => this.store.listInstances(cluster).find((i) => i.role === 'writer')?.id ?? null);
  }

  /** The writer of record's engine port (0 without one): where storage nodes stream from. */
  writerPort(cluster: string): number {
    return this.cache.get(`writer-port\0${cluster}`, () => this.store.listInstances(cluster).find((r) => r.role === 'writer')?.enginePort ?? 0);
  }

  serverNameOf(endpoint: EndpointRef): string {
    return endpointServerName(endpoint, this.endpointDomain);
  }

  endpointByServerName(serverName: string): EndpointRef | null {
    const e = this.store.listEndpoints().find((x) => endpointServerName(x, this.endpointDomain) === serverName.toLowerCase());
    return e ? { cluster: e.cluster, type: e.type, name: e.name } : null;
  }
}
