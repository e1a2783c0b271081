// Which instance an endpoint sends a new connection to. Pure: the caller
// passes the instances and their states. Aurora's rules:
// - cluster (writer) endpoint: the writer;
// - reader endpoint: the available readers in turn, the writer when none;
// - instance endpoint: that instance;
// - custom endpoint: its members (static members, or every instance not
//   excluded), of type READER (readers only) or ANY.
// https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Aurora.Overview.Endpoints.html

export type EndpointTarget =
  | { readonly type: 'writer' }
  | { readonly type: 'reader' }
  | { readonly type: 'instance'; readonly instanceId: string }
  | { readonly type: 'custom'; readonly customType: 'READER' | 'ANY'; readonly staticMembers: readonly string[]; readonly excludedMembers: readonly string[] };

export interface RoutableInstance {
  readonly id: string;
  readonly role: 'writer' | 'reader';
  readonly available: boolean;
}

/**
 * The instance for the next connection, or null when the endpoint has no
 * member at all. An unavailable choice is still returned when nothing better
 * exists: the client then waits for it (it may be starting or resuming).
 * `turn` rotates among equally good members (round robin).
 */
export function routeConnection(target: EndpointTarget, instances: readonly RoutableInstance[], turn: number): RoutableInstance | null {
  const writer = instances.find((i) => i.role === 'writer') ?? null;
  switch (target.type) {
    case 'writer':
      return writer;
    case 'instance':
      return instances.find((i) => i.id === target.instanceId) ?? null;
    case 'reader':
      return pick(instances.filter((i) => i.role === 'reader'), turn) ?? writer;
    case 'custom': {
      const members = target.staticMembers.length > 0 ? instances.filter((i) => target.staticMembers.includes(i.id)) : instances.filter((i) => !target.excludedMembers.includes(i.id));
      return pick(target.customType === 'READER' ? members.filter((i) => i.role === 'reader') : members, turn);
    }
  }
}

/** Round robin over the available members; an unavailable one only if none is. */
function pick(members: readonly RoutableInstance[], turn: number): RoutableInstance | null {
  const available = members.filter((m) => m.available);
  const from = available.length > 0 ? available : members;
  return from.length === 0 ? null : from[turn % from.length]!;
}
