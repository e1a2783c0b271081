// One client of the front door, from its first byte to its last: startup
// packet, optional TLS, SCRAM-SHA-256 against the role's verifier in the
// cluster's pg_authid (or an IAM token for members of rds_iam), a held
// wait for the writer, then a session on the writer.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { SCRAM_SHA_256, SCRAM_SHA_256_PLUS, ScramFailure, ScramServerExchange, mockVerifier } from '../auth/scram.js';
import { Frontend } from '../pgwire/codes.js';
import { FrameReader, ProtocolViolation, type Frame } from '../pgwire/frame-reader.js';
import {
  authenticationCleartextPassword,
  authenticationOk,
  authenticationSasl,
  authenticationSaslContinue,
  authenticationSaslFinal,
  backendKeyData,
  errorResponse,
  parameterStatus,
  parseSaslInitialResponse,
  readyForQuery,
} from '../pgwire/messages.js';
import { parseStartupPacket, serializeCancelRequest, type StartupPacket } from '../pgwire/startup.js';
import type { Logger } from '../util/logger.js';
import { verifyIamToken } from '../auth/sigv4.js';
import type { AccessPolicy } from './access-policy.js';
import type { LoginThrottle } from './auth-throttle.js';
import type { CancelRegistry, ClientKey } from './cancel-registry.js';
import { toErrorFields, type ProxyFailure } from './errors.js';
import { PooledSession, SYNCED_PARAMS, WRITER_MOVES_MAX, type SessionLimits } from './pooled-session.js';
import { OpenError, type InstanceLocator } from './server-connection.js';
import type { LoginMethod } from './role-directory.js';
import { AcquireError, PoolLimitError, type ServerPool } from './server-pool.js';

export type ClientState = 'startup' | 'tls-handshake' | 'authenticating' | 'connecting' | 'session' | 'closed';

/** Which endpoint a client came in on: its listener's, or the one its TLS server name names. */
export interface EndpointRef {
  readonly cluster: string;
  readonly type: 'writer' | 'reader' | 'instance' | 'custom';
  readonly name: string;
}

/** What the front door needs to know from the control plane. */
export interface ProxyDirectory extends InstanceLocator {
  route(endpoint: EndpointRef): { readonly instanceId: string } | null;
  /** Changes whenever an endpoint may route elsewhere (roles swapped, members changed). */
  routesVersion(): number;
  endpointByServerName(serverName: string): EndpointRef | null;
  /** The endpoint's advertised host name (`<cluster>.cluster.<domain>`, …), which IAM tokens may be signed for. */
  serverNameOf(endpoint: EndpointRef): string;
  /** How the user must authenticate, from the cluster's pg_authid as read after the login began (see role-directory.ts). */
  login(cluster: string, user: string): Promise<LoginMethod>;
  /** Whether the role logged in with a SCRAM password when last read (a guess: login() decides). */
  lastKnownPassword(cluster: string, user: string): boolean;
  /** Secret of a Borealis access key, for IAM token signatures. */
  accessKeySecret(accessKeyId: string): string | null;
  accessPolicy(cluster: string): AccessPolicy;
}

export interface ProxyLimits extends SessionLimits {
  readonly startupPacketBytesMax: number;
  readonly messageBytesMax: number;
  readonly clientMessageBytesMax: number;
  readonly clientIdleTimeoutMs: number;
  readonly clientAuthTimeoutMs: number;
  readonly clientWaitForWriterMs: number;
  readonly poolsMax: number;
}

export interface PoolDirectory {
  poolFor(cluster: string, instanceId: string, startupParams: ReadonlyMap<string, string>, asWriter?: boolean): ServerPool;
}

export interface ClientContext {
  /** The endpoint of the listener the client reached. */
  readonly endpoint: EndpointRef;
  readonly limits: ProxyLimits;
  readonly secureContext: tls.SecureContext;
  /** tls-server-end-point channel binding data: the SHA-256 of the certificate. */
  readonly certificateHash: Buffer;
  readonly throttle: LoginThrottle;
  /** host:port names an IAM token may be signed for: this endpoint's. */
  readonly endpointHosts: ReadonlySet<string>;
  readonly cancels: CancelRegistry;
  readonly directory: ProxyDirectory;
  readonly pools: PoolDirectory;
  readonly onPinChange: (delta: 1 | -1) => void;
  /** Keys the fake verifiers of unknown users. */
  readonly mockSecret: Buffer;
  readonly log: Logger;
  readonly onStateChange: (from: ClientState, to: ClientState) => void;
}

/** AWS's tolerance for a token dated slightly in the future. */
const IAM_CLOCK_SKEW_MS = 5 * 60_000;
/** How long a refused client may take to read its error before it is cut off. */
const ERROR_LINGER_MS = 1_000;
/** How long a client refused for an oversized message may go on sending it (read and dropped) before it is cut off. */
const OVERSIZED_DRAIN_MS = 10_000;
/** The first byte of a TLS record carrying a handshake: a ClientHello without SSLRequest (PostgreSQL 17's sslnegotiation=direct). */
const TLS_HANDSHAKE_RECORD = 0x16;
/** Longest a cancel request to a backend may take to be delivered. */
const CANCEL_DELIVERY_TIMEOUT_MS = 5_000;
/** ALPN protocol id PostgreSQL registered; direct TLS requires it. */
const ALPN_POSTGRESQL = 'postgresql';
/** A Terminate message ('X', length 4). */
const TERMINATE_MESSAGE = Buffer.from([0x58, 0, 0, 0, 4]);

export class ClientConnection {
  private stateValue: ClientState = 'startup';
  private socket: net.Socket;
  private readonly reader: FrameReader;
  private readonly authTimer: NodeJS.Timeout;
  private params: ReadonlyMap<string, string> = new Map();
  private exchange: ScramServerExchange | null = null;
  /** Waiting for an IAM token in a PasswordMessage. */
  private iamPending = false;
  /** The role's pg_authid row is being read: frames wait in the reader. */
  private lookingUp = false;
  /** rolcanlogin, checked once the password or token is proven (28000 after, as PostgreSQL does). */
  private canLogin = false;
  /** SASLFinal and AuthenticationOk, held to go out with the welcome (or before a refusal). */
  private authReply: Buffer | null = null;
  private session: PooledSession | null = null;
  private cancelKey: ClientKey | null = null;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  private policy: AccessPolicy;
  /** Whether the source address passes the cluster's allow-list. */
  private sourceAllowed: boolean;
  private readonly source: string;
  private endpoint: EndpointRef;
  /** A startup packet (or SSLRequest) has been read. */
  private startupSeen = false;

  constructor(
    private readonly raw: net.Socket,
    private readonly ctx: ClientContext,
  ) {
    this.socket = raw;
    this.source = raw.remoteAddress ?? 'unknown';
    this.endpoint = ctx.endpoint;
    this.policy = ctx.directory.accessPolicy(ctx.endpoint.cluster);
    this.sourceAllowed = this.policy.allows(raw.remoteAddress);
    this.reader = new FrameReader('startup', ctx.limits.startupPacketBytesMax);
    this.authTimer = setTimeout(() => this.fail({ kind: 'auth-timeout' }), ctx.limits.clientAuthTimeoutMs);
    raw.setNoDelay(true);
    raw.on('data', this.onData);
    raw.on('error', () => this.close());
    raw.on('close', () => this.close());
  }

  get state(): ClientState {
    return this.stateValue;
  }

  private setState(next: ClientState): void {
    const from = this.stateValue;
    if (from === next) return;
    this.stateValue = next;
    this.ctx.onStateChange(from, next);
  }

  private receive(chunk: Buffer): void {
    this.reader.push(chunk);
    if (this.stateValue === 'startup' && this.socket === this.raw && !this.startupSeen) {
      const first = this.reader.peekBytes(1);
      if (first?.[0] === TLS_HANDSHAKE_RECORD) return this.startTls({ direct: true });
      // Terminate before any startup packet: PostgreSQL closes without a word.
      const head = this.reader.peekBytes(TERMINATE_MESSAGE.length);
      if (head?.equals(TERMINATE_MESSAGE)) return this.close();
    }
    try {
      for (let frame = this.reader.next(); frame && this.stateValue !== 'closed'; frame = this.reader.next()) {
        if (this.stateValue === 'startup') this.onStartupPacket(parseStartupPacket(frame.body));
        else if (this.stateValue === 'authenticating') this.onAuthMessage(frame);
        else break;
        // TLS or a backend wait takes over the stream: leave the rest buffered.
        if (this.handedOff()) break;
      }
    } catch (err) {
      if (err instanceof ProtocolViolation) this.fail({ kind: 'protocol-violation', detail: err.message });
      else if (err instanceof ScramFailure) {
        if (err.kind === 'auth') {
          this.ctx.throttle.recordFailure(this.source, this.params.get('user') ?? '', Date.now());
          this.fail({ kind: 'auth-failed', user: this.params.get('user') ?? '' });
        } else this.fail({ kind: 'protocol-violation', detail: err.message });
      } else throw err;
    }
  }

  /** TLS or the writer wait owns the stream now. */
  private handedOff(): boolean {
    return this.stateValue === 'tls-handshake' || this.stateValue === 'connecting' || this.lookingUp;
  }

  private onStartupPacket(packet: StartupPacket): void {
    this.startupSeen = true;
    switch (packet.type) {
      case 'ssl-request':
        if (this.socket !== this.raw) throw new ProtocolViolation('SSLRequest inside TLS');
        // Bytes sent after the SSLRequest but before the handshake could have
        // been injected by a man in the middle (CVE-2021-23214).
        if (this.reader.bufferedBytes > 0) return this.fail({ kind: 'unencrypted-after-ssl-request' });
        this.startTls({ direct: false });
        return;
      case 'gssenc-request':
        this.socket.write('N');
        return;
      case 'cancel-request':
        this.forwardCancel(packet.processId, packet.secretKey);
        this.close();
        return;
      case 'startup': {
        const cluster = this.endpoint.cluster;
        // Refused sources still get their TLS handshake first, so that a
        // client requiring TLS sees this refusal and not a TLS failure.
        if (!this.sourceAllowed) return this.fail({ kind: 'source-not-allowed', cluster, source: this.source });
        if (this.policy.requireTls && this.socket === this.raw) return this.fail({ kind: 'tls-required', cluster });
        const throttled = this.ctx.throttle.check(this.source, packet.params.get('user')!, Date.now());
        if (throttled) {
          const user = throttled.scope === 'user' ? packet.params.get('user')! : null;
          return this.fail({ kind: 'auth-throttled', source: this.source, user, retryAfterMs: throttled.retryAfterMs });
        }
        if (packet.params.has('replication')) return this.fail({ kind: 'unsupported', what: 'a replication connection' });
        const params = new Map(packet.params);
        if (!params.get('database')) params.set('database', params.get('user')!);
        this.params = params;
        const user = params.get('user')!;
        this.reader.setFraming('typed', this.ctx.limits.messageBytesMax);
        this.setState('authenticating');
        this.lookingUp = true;
        this.socket.pause();
        // A password login's first challenge names only the SASL mechanisms,
        // so for a role last known to use a password it goes out at once,
        // while the role is read; the client's answer waits in the buffer
        // until the read is back. Any other role (unknown yet, an IAM user,
        // no password) waits for the read first.
        const saslSent = this.ctx.directory.lastKnownPassword(cluster, user);
        if (saslSent) this.offerSasl();
        void this.ctx.directory.login(cluster, user).then(
          (method) => this.challenge(user, method, saslSent),
          (err: unknown) => {
            this.ctx.log.error('could not look up the role', { cluster, error: (err as Error).message });
            this.fail({ kind: 'instance-unreachable', cluster, instanceId: '' });
          },
        );
        return;
      }
    }
  }

  /** AuthenticationSASL: over TLS, -PLUS (channel binding) is offered first. */
  private offerSasl(): void {
    this.socket.write(authenticationSasl(this.socket !== this.raw ? [SCRAM_SHA_256_PLUS, SCRAM_SHA_256] : [SCRAM_SHA_256]));
  }

  /**
   * The role is known: ask for its IAM token, or begin SCRAM (against a
   * mock verifier for a role that cannot use a password). `saslSent`: the
   * SASL challenge went out before the read; a role made an IAM user since
   * it was last read then fails like a wrong password, once (its next
   * login is asked for a token).
   */
  private challenge(user: string, method: LoginMethod, saslSent: boolean): void {
    this.lookingUp = false;
    if (this.stateValue !== 'authenticating') return;
    const tlsUp = this.socket !== this.raw;
    if (method.method === 'iam' && saslSent) return this.fail({ kind: 'auth-failed', user });
    if (method.method === 'iam') {
      // As RDS does: the token travels as a cleartext password, so only over TLS.
      if (!tlsUp) return this.fail({ kind: 'iam-requires-tls', user });
      this.canLogin = method.canLogin;
      this.iamPending = true;
      this.socket.write(authenticationCleartextPassword());
    } else {
      this.canLogin = method.method === 'scram' && method.canLogin;
      const verifier = method.method === 'scram' ? method.verifier : mockVerifier(user, this.ctx.mockSecret);
      this.exchange = new ScramServerExchange(verifier, randomBytes(18).toString('base64'), tlsUp ? this.ctx.certificateHash : null);
      if (!saslSent) this.offerSasl();
    }
    this.socket.resume();
    // Anything the client sent meanwhile is still buffered.
    this.receive(Buffer.alloc(0));
  }

  /**
   * TLS after an SSLRequest (answered 'S'), or direct: the client's first
   * bytes were a ClientHello, already read, so the handshake runs over a
   * stream that replays them before the rest of the socket.
   */
  private startTls(how: { direct: boolean }): void {
    this.raw.off('data', this.onData);
    this.setState('tls-handshake');
    let transport: net.Socket | Duplex = this.raw;
    if (how.direct) transport = replayThen(this.reader.drain(), this.raw);
    else this.raw.write('S');
    const secure = new tls.TLSSocket(transport, { isServer: true, secureContext: this.ctx.secureContext, ALPNProtocols: [ALPN_POSTGRESQL] });
    this.socket = secure;
    secure.on('error', () => this.close());
    secure.once('secure', () => {
      if (this.stateValue !== 'tls-handshake') return;
      // As PostgreSQL 17: direct TLS must negotiate the postgresql protocol.
      if (how.direct && secure.alpnProtocol !== ALPN_POSTGRESQL) return this.close();
      // A TLS server name picks the endpoint, whichever port was reached.
      const sni = (secure as tls.TLSSocket & { servername?: string | false }).servername;
      const named = typeof sni === 'string' && sni !== '' ? this.ctx.directory.endpointByServerName(sni) : null;
      if (named) {
        this.endpoint = named;
        this.policy = this.ctx.directory.accessPolicy(named.cluster);
        this.sourceAllowed = this.policy.allows(this.raw.remoteAddress);
      }
      this.setState('startup');
      secure.on('data', this.onData);
    });
  }

  private onAuthMessage(frame: Frame): void {
    if (frame.code === Frontend.Terminate) return this.close();
    if (frame.code !== Frontend.Password) throw new ProtocolViolation(`expected a password or SASL response, got message type ${String.fromCharCode(frame.code!)}`);
    if (this.iamPending) return this.onIamToken(frame.body);
    const exchange = this.exchange!;
    if (!exchange.started) {
      const initial = parseSaslInitialResponse(frame.body);
      const offered = initial.mechanism === SCRAM_SHA_256 || (initial.mechanism === SCRAM_SHA_256_PLUS && this.socket !== this.raw);
      if (!offered) throw new ProtocolViolation(`SASL mechanism ${initial.mechanism} was not offered`);
      this.socket.write(authenticationSaslContinue(Buffer.from(exchange.clientFirst(initial.data.toString('utf8'), initial.mechanism), 'utf8')));
      return;
    }
    const serverFinal = exchange.clientFinal(frame.body.toString('utf8'));
    this.exchange = null;
    if (!this.canLogin) return this.fail({ kind: 'login-not-permitted', user: this.params.get('user')! });
    this.authenticated(authenticationSaslFinal(Buffer.from(serverFinal, 'utf8')));
  }

  /** PasswordMessage carrying an RDS IAM token (a presigned connect URL). */
  private onIamToken(body: Buffer): void {
    this.iamPending = false;
    const end = body.indexOf(0);
    if (end !== body.length - 1) throw new ProtocolViolation('malformed password message');
    const user = this.params.get('user')!;
    // Signed for the host:port the client connected by: a loopback name, or
    // the endpoint's advertised name (the one its TLS server name chose, if
    // any) with the port it reached.
    const hosts = new Set(this.ctx.endpointHosts);
    hosts.add(`${this.ctx.directory.serverNameOf(this.endpoint)}:${this.raw.localPort}`);
    const verdict = verifyIamToken(body.toString('utf8', 0, end), {
      user,
      hosts,
      now: Date.now(),
      clockSkewMs: IAM_CLOCK_SKEW_MS,
      secretFor: (id) => this.ctx.directory.accessKeySecret(id),
    });
    if (!verdict.ok) {
      this.ctx.throttle.recordFailure(this.source, user, Date.now());
      return this.fail({ kind: 'iam-auth-failed', user, reason: verdict.reason });
    }
    this.ctx.log.info('IAM authentication', { cluster: this.endpoint.cluster, user, accessKeyId: verdict.accessKeyId });
    if (!this.canLogin) return this.fail({ kind: 'login-not-permitted', user });
    this.authenticated();
  }

  private authenticated(saslFinal?: Buffer): void {
    // Sent with the welcome, in one write.
    this.authReply = saslFinal ? Buffer.concat([saslFinal, authenticationOk()]) : authenticationOk();
    this.setState('connecting');
    this.socket.pause();
    void this.startSession();
  }

  /**
   * Welcomes an authenticated client: the pool's server parameters (opening
   * a first server if the pool has none, which is where a client waits for a
   * starting writer), a cancel key, ReadyForQuery; then the pooled session.
   */
  private async startSession(): Promise<void> {
    // A writer endpoint's servers are the writer of record's only; when a
    // failover moves the writer, the session follows it between transactions.
    const asWriter = this.endpoint.type === 'writer';
    let pool: ServerPool | null = null;
    let routedAt = this.ctx.directory.routesVersion();
    const poolNow = (): ServerPool | null => {
      const route = this.ctx.directory.route(this.endpoint);
      if (!route) {
        this.fail({ kind: 'no-route', cluster: this.endpoint.cluster, endpoint: this.endpoint.name || this.endpoint.type });
        return null;
      }
      try {
        return this.ctx.pools.poolFor(this.endpoint.cluster, route.instanceId, this.params, asWriter);
      } catch (err) {
        if (err instanceof PoolLimitError) this.fail({ kind: 'too-many-pools', limit: this.ctx.limits.poolsMax });
        else throw err;
        return null;
      }
    };
    for (let moves = 0; ; moves++) {
      routedAt = this.ctx.directory.routesVersion();
      pool = poolNow();
      if (!pool) return;
      if (pool.welcomeParams) break;
      try {
        const first = await pool.acquire();
        pool.release(first);
        break;
      } catch (err) {
        if (moves < WRITER_MOVES_MAX && err instanceof OpenError && err.failure.kind === 'writer-moved') continue;
        return this.failAcquire(err, pool.instanceId);
      }
    }
    if (this.stateValue !== 'connecting') return;
    clearTimeout(this.authTimer);
    const params = new Map(pool.welcomeParams);
    for (const [name, value] of this.params) if (SYNCED_PARAMS.has(name)) params.set(name, value);
    const key = this.ctx.cancels.allocate();
    this.cancelKey = key;
    const welcome = [this.authReply ?? authenticationOk(), ...[...params].map(([n, v]) => parameterStatus(n, v)), backendKeyData(key.processId, key.secretKey), readyForQuery('I')];
    this.authReply = null;
    this.socket.write(Buffer.concat(welcome));
    this.reader.setFraming('typed', this.ctx.limits.clientMessageBytesMax);
    this.setState('session');
    this.session = new PooledSession(this.socket, this.reader, pool, this.params, key, this.ctx.cancels, this.ctx.limits, {
      onPinned: () => this.ctx.onPinChange(+1),
      ...(asWriter
        ? {
            repool: (moved: boolean) => {
              const version = this.ctx.directory.routesVersion();
              if (version === routedAt && !moved) return null;
              routedAt = version;
              return poolNow();
            },
          }
        : {}),
      onEnd: (end) => {
        if (this.session?.pinned) this.ctx.onPinChange(-1);
        switch (end.kind) {
          case 'client-left':
            return this.close();
          case 'commit-not-durable':
            return this.fail({ kind: 'commit-not-durable', cluster: this.endpoint.cluster });
          case 'server-lost':
            // One error for one death: the server's own FATAL if it sent one.
            if (end.fatalSent) return this.refuse(Buffer.alloc(0));
            return this.fail({ kind: 'server-lost', cluster: this.endpoint.cluster });
          case 'acquire-failed':
            return this.failAcquire(end.error, end.instanceId);
          case 'protocol-violation':
            return this.fail({ kind: 'protocol-violation', detail: end.detail });
          case 'message-too-large':
            return this.fail({ kind: 'message-too-large', detail: end.detail }, end.unreadBytes);
        }
      },
    });
    this.socket.off('data', this.onData);
    if (this.ctx.limits.clientIdleTimeoutMs > 0) {
      this.socket.setTimeout(this.ctx.limits.clientIdleTimeoutMs, () => {
        // A client waiting in the queue has asked for something: it is not idle.
        if (!this.session?.busy) this.fail({ kind: 'client-idle-timeout' });
      });
    }
    this.session.start();
  }

  private failAcquire(err: unknown, instanceId: string): void {
    const cluster = this.endpoint.cluster;
    if (err instanceof OpenError) {
      const f = err.failure;
      if (f.kind === 'backend-refused') return this.refuse(f.errorFrame);
      if (f.kind === 'writer-moved') return this.fail({ kind: 'writer-moved', cluster });
      return this.fail(f.kind === 'instance-not-ready' ? { kind: 'instance-not-ready', cluster, instanceId, waitedMs: f.waitedMs } : { kind: 'instance-unreachable', cluster, instanceId });
    }
    if (err instanceof AcquireError) {
      const f = err.failure;
      return this.fail(f.kind === 'queue-full' ? { kind: 'queue-full', cluster } : { kind: 'queue-timeout', cluster, waitedMs: f.waitedMs });
    }
    this.ctx.log.error('unexpected error while acquiring a server', { error: (err as Error).message });
    this.fail({ kind: 'instance-unreachable', cluster, instanceId });
  }

  private forwardCancel(processId: number, secretKey: number): void {
    const found = this.ctx.cancels.lookup(processId, secretKey);
    if (!found) return; // As PostgreSQL does: say nothing about unknown keys.
    const { backend, target } = found;
    // The server stays with no other client until PostgreSQL has the cancel.
    target?.cancelStarted();
    const s = net.connect(backend.socketPath, () => s.end(serializeCancelRequest(backend.processId, backend.secretKey)));
    s.on('error', () => s.destroy());
    s.on('close', () => target?.cancelEnded());
    s.setTimeout(CANCEL_DELIVERY_TIMEOUT_MS, () => s.destroy());
  }

  /** Sends an ErrorResponse and closes; the client gets a moment to read it. */
  /** `unreadBytes`: the rest of an oversized message, read and dropped before the connection closes. */
  fail(failure: ProxyFailure, unreadBytes = 0): void {
    if (this.stateValue === 'closed') return;
    if (failure.kind !== 'auth-failed') this.ctx.log.info('client refused', { cluster: this.endpoint.cluster, reason: failure.kind });
    else this.ctx.log.info('client authentication failed', { cluster: this.endpoint.cluster, user: failure.user });
    this.refuse(errorResponse(toErrorFields(failure)), unreadBytes);
  }

  private refuse(errorFrame: Buffer, unreadBytes = 0): void {
    const socket = this.socket;
    const reply = this.authReply ? Buffer.concat([this.authReply, errorFrame]) : errorFrame;
    this.authReply = null;
    this.close(false);
    if (unreadBytes > 0) {
      // A client still sending its oversized message would lose the error if
      // the connection closed now: a reset discards what it has not read,
      // and libpq, reading while it writes, takes an early end of stream for
      // a crash. So the error goes out at once, the rest of the message is
      // read and dropped (no memory kept), and only then the connection ends.
      this.reader.drain();
      let left = unreadBytes;
      socket.write(reply);
      const cut = setTimeout(() => socket.destroy(), OVERSIZED_DRAIN_MS);
      cut.unref();
      socket.on('data', (chunk: Buffer) => {
        left -= chunk.length;
        if (left > 0) return;
        socket.pause();
        socket.end();
        clearTimeout(cut);
        setTimeout(() => socket.destroy(), ERROR_LINGER_MS).unref();
      });
      socket.resume();
      return;
    }
    socket.end(reply);
    // Read nothing more from a refused client: whatever it still sends stays
    // in kernel buffers until the socket is destroyed.
    socket.pause();
    setTimeout(() => socket.destroy(), ERROR_LINGER_MS).unref();
  }

  close(destroy = true): void {
    if (this.stateValue === 'closed') return;
    this.setState('closed');
    clearTimeout(this.authTimer);
    if (this.cancelKey) this.ctx.cancels.release(this.cancelKey);
    this.session?.end({ kind: 'client-left' });
    this.socket.off('data', this.onData);
    if (destroy) {
      this.socket.destroy();
      this.raw.destroy();
    }
  }
}

/** A duplex over `socket` whose readable side yields `first` before the socket's own bytes. */
function replayThen(first: Buffer, socket: net.Socket): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  stream.push(first);
  socket.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  socket.on('error', (err) => stream.destroy(err));
  return stream;
}
