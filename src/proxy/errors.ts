// Every way the front door can refuse or drop a client, mapped in one place
// to a client-safe message and a real SQLSTATE.
// https://www.postgresql.org/docs/17/errcodes-appendix.html
import type { IamTokenFailure } from '../auth/sigv4.js';
import type { ErrorFields } from '../pgwire/messages.js';

/** What a client is told about a refused IAM token: enough to fix it, nothing secret. */
const IAM_REASONS: Record<IamTokenFailure, string> = {
  malformed: 'the password is not an IAM authentication token',
  'wrong-action': 'the token is not for Action=connect',
  'wrong-user': 'the token was generated for another user',
  'wrong-host': 'the token was generated for another host or port',
  'unknown-access-key': 'the token was signed with an unknown access key',
  'bad-scope': 'the token is not scoped to the rds-db service',
  expired: 'the token has expired',
  'not-yet-valid': 'the token is dated in the future',
  'bad-signature': 'the token signature does not match',
};

export type ProxyFailure =
  | { readonly kind: 'protocol-violation'; readonly detail: string }
  | { readonly kind: 'unsupported'; readonly what: string }
  | { readonly kind: 'auth-failed'; readonly user: string }
  | { readonly kind: 'login-not-permitted'; readonly user: string }
  | { readonly kind: 'auth-timeout' }
  | { readonly kind: 'unencrypted-after-ssl-request' }
  | { readonly kind: 'instance-not-ready'; readonly cluster: string; readonly instanceId: string; readonly waitedMs: number }
  | { readonly kind: 'instance-unreachable'; readonly cluster: string; readonly instanceId: string }
  | { readonly kind: 'no-route'; readonly cluster: string; readonly endpoint: string }
  | { readonly kind: 'server-lost'; readonly cluster: string }
  | { readonly kind: 'writer-moved'; readonly cluster: string }
  | { readonly kind: 'commit-not-durable'; readonly cluster: string }
  | { readonly kind: 'queue-full'; readonly cluster: string }
  | { readonly kind: 'queue-timeout'; readonly cluster: string; readonly waitedMs: number }
  | { readonly kind: 'too-many-clients'; readonly limit: number }
  | { readonly kind: 'too-many-pools'; readonly limit: number }
  | { readonly kind: 'message-too-large'; readonly detail: string }
  | { readonly kind: 'client-idle-timeout' }
  | { readonly kind: 'source-not-allowed'; readonly cluster: string; readonly source: string }
  | { readonly kind: 'tls-required'; readonly cluster: string }
  /** `user` when one user of the source is throttled; null when the whole source is. */
  | { readonly kind: 'auth-throttled'; readonly source: string; readonly user: string | null; readonly retryAfterMs: number }
  | { readonly kind: 'iam-requires-tls'; readonly user: string }
  | { readonly kind: 'iam-auth-failed'; readonly user: string; readonly reason: IamTokenFailure }
  | { readonly kind: 'shutting-down' };

export function toErrorFields(f: ProxyFailure): ErrorFields {
  switch (f.kind) {
    case 'protocol-violation':
      return { severity: 'FATAL', code: '08P01', message: `invalid frontend message: ${f.detail}` };
    case 'unsupported':
      return { severity: 'FATAL', code: '0A000', message: `${f.what} is not supported by the Borealis proxy` };
    case 'auth-failed':
      return { severity: 'FATAL', code: '28P01', message: `password authentication failed for user "${f.user}"` };
    case 'login-not-permitted':
      // PostgreSQL's words for a NOLOGIN role whose password was right.
      return { severity: 'FATAL', code: '28000', message: `role "${f.user}" is not permitted to log in` };
    case 'auth-timeout':
      return { severity: 'FATAL', code: '08006', message: 'authentication timed out' };
    case 'unencrypted-after-ssl-request':
      return { severity: 'FATAL', code: '08P01', message: 'received unencrypted data after SSL request' };
    case 'instance-not-ready':
      return {
        severity: 'FATAL',
        code: '57P03',
        message: `the database system is starting up: instance "${f.instanceId}" of cluster "${f.cluster}" is not available after ${Math.round(f.waitedMs / 1000)} s`,
        hint: 'Retry shortly; `borealis status` shows the instance state.',
      };
    case 'instance-unreachable':
      return { severity: 'FATAL', code: '08006', message: `could not reach instance "${f.instanceId}" of cluster "${f.cluster}"` };
    case 'no-route':
      return { severity: 'FATAL', code: '08006', message: `endpoint ${f.endpoint} of cluster "${f.cluster}" has no member instance` };
    case 'server-lost':
      return { severity: 'FATAL', code: '08006', message: `the connection to the database server of cluster "${f.cluster}" was lost` };
    case 'writer-moved':
      return { severity: 'FATAL', code: '08006', message: `the writer of cluster "${f.cluster}" moved to another instance (a failover) while this session waited for it`, hint: 'Reconnect: the writer endpoint reaches the new writer.' };
    case 'commit-not-durable':
      return {
        severity: 'FATAL',
        code: '40003',
        message: `the outcome of this transaction is unknown: its commit stopped waiting for the storage quorum of cluster "${f.cluster}" (cancelled or timed out), so it is on the writer only and may be lost if the writer fails`,
        hint: 'Check whether the transaction took effect after reconnecting; a commit is acknowledged only once four storage nodes hold it.',
      };
    case 'queue-full':
      return { severity: 'FATAL', code: '53300', message: `too many clients are waiting for a server connection to cluster "${f.cluster}"` };
    case 'queue-timeout':
      return {
        severity: 'FATAL',
        code: '53300',
        message: `no server connection to cluster "${f.cluster}" became free within ${Math.round(f.waitedMs)} ms`,
        hint: 'The pool is busy: raise serverPoolSizeMax or clientQueueTimeoutMs, or shorten transactions.',
      };
    case 'too-many-clients':
      return { severity: 'FATAL', code: '53300', message: `sorry, too many clients already (limit ${f.limit})` };
    case 'too-many-pools':
      return {
        severity: 'FATAL',
        code: '53300',
        message: `too many distinct connection pools in use (limit ${f.limit})`,
        hint: 'Each user, database and set of startup options needs a pool of its own; fewer distinct options, or raise poolsMax.',
      };
    case 'message-too-large':
      return { severity: 'FATAL', code: '54000', message: f.detail };
    case 'client-idle-timeout':
      return { severity: 'FATAL', code: '57P05', message: 'terminating connection due to idle timeout' };
    case 'source-not-allowed':
      return { severity: 'FATAL', code: '28000', message: `connections from ${f.source} are not allowed to cluster "${f.cluster}"`, hint: 'Add the address to the cluster\'s allow-list: borealis cluster modify --allow CIDR.' };
    case 'tls-required':
      return { severity: 'FATAL', code: '28000', message: `cluster "${f.cluster}" requires TLS`, hint: 'Connect with sslmode=require (or stronger).' };
    case 'auth-throttled':
      return {
        severity: 'FATAL',
        code: '28000',
        message: `too many failed authentication attempts ${f.user === null ? '' : `for user "${f.user}" `}from ${f.source}; try again in ${Math.ceil(f.retryAfterMs / 1000)} s`,
      };
    case 'iam-requires-tls':
      return { severity: 'FATAL', code: '28000', message: `user "${f.user}" uses IAM authentication, which requires TLS`, hint: 'Connect with sslmode=require.' };
    case 'iam-auth-failed':
      return { severity: 'FATAL', code: '28P01', message: `IAM authentication failed for user "${f.user}": ${IAM_REASONS[f.reason]}` };
    case 'shutting-down':
      return { severity: 'FATAL', code: '57P01', message: 'terminating connection because Borealis is shutting down' };
  }
}
