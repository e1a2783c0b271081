// One client of the front door, from its first byte to its last: startup
// packet, optional TLS, SCRAM-SHA-256 against the stored verifier, a held
// wait for the writer, then a session on the writer.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { SCRAM_SHA_256, ScramFailure, ScramServerExchange, mockVerifier, type ScramVerifier } from '../auth/scram.js';
import { Frontend } from '../pgwire/codes.js';
import { FrameReader, ProtocolViolation, type Frame } from '../pgwire/frame-reader.js';
import {
  authenticationOk,
  authenticationSasl,
  authenticationSaslContinue,
  authenticationSaslFinal,
  backendKeyData,
  errorResponse,
  parseSaslInitialResponse,
  readyForQuery,
} from '../pgwire/messages.js';
import { parseStartupPacket, serializeCancelRequest, type StartupPacket } from '../pgwire/startup.js';
import type { Logger } from '../util/logger.js';
import type { CancelRegistry } from './cancel-registry.js';
import { toErrorFields, type ProxyFailure } from './errors.js';
import { openServerSession, ServerStartupError, type ServerSession } from './server-connection.js';

export type ClientState = 'startup' | 'tls-handshake' | 'authenticating' | 'connecting' | 'forwarding' | 'closed';

export interface WriterTarget {
  readonly socketPath: string;
}

/** What the front door needs to know from the control plane. */
export interface ProxyDirectory {
  userVerifier(cluster: string, user: string): ScramVerifier | null;
  /** Resolves when the cluster's writer is available, or null at the deadline. */
  awaitWriter(cluster: string, timeoutMs: number): Promise<WriterTarget | null>;
}

export interface ProxyLimits {
  readonly startupPacketBytesMax: number;
  readonly messageBytesMax: number;
  readonly clientAuthTimeoutMs: number;
  readonly clientWaitForWriterMs: number;
}

export interface ClientContext {
  readonly cluster: string;
  readonly limits: ProxyLimits;
  readonly secureContext: tls.SecureContext;
  readonly cancels: CancelRegistry;
  readonly directory: ProxyDirectory;
  /** Keys the fake verifiers of unknown users. */
  readonly mockSecret: Buffer;
  readonly log: Logger;
  readonly onStateChange: (from: ClientState, to: ClientState) => void;
}

/** Pause between attempts to reach a writer that is restarting. */
const WRITER_RETRY_MS = 100;
/** How long a refused client may take to read its error before it is cut off. */
const ERROR_LINGER_MS = 1_000;

export class ClientConnection {
  private stateValue: ClientState = 'startup';
  private socket: net.Socket;
  private readonly reader: FrameReader;
  private readonly authTimer: NodeJS.Timeout;
  private params: ReadonlyMap<string, string> = new Map();
  private exchange: ScramServerExchange | null = null;
  private server: ServerSession | null = null;
  private cancelKey: { processId: number; secretKey: number } | null = null;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);

  constructor(
    private readonly raw: net.Socket,
    private readonly ctx: ClientContext,
  ) {
    this.socket = raw;
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
        this.fail(err.kind === 'auth' ? { kind: 'auth-failed', user: this.params.get('user') ?? '' } : { kind: 'protocol-violation', detail: err.message });
      } else throw err;
    }
  }

  /** TLS or the writer wait owns the stream now. */
  private handedOff(): boolean {
    return this.stateValue === 'tls-handshake' || this.stateValue === 'connecting';
  }

  private onStartupPacket(packet: StartupPacket): void {
    switch (packet.type) {
      case 'ssl-request':
        if (this.socket !== this.raw) throw new ProtocolViolation('SSLRequest inside TLS');
        // Bytes sent after the SSLRequest but before the handshake could have
        // been injected by a man in the middle (CVE-2021-23214).
        if (this.reader.bufferedBytes > 0) return this.fail({ kind: 'unencrypted-after-ssl-request' });
        this.startTls();
        return;
      case 'gssenc-request':
        this.socket.write('N');
        return;
      case 'cancel-request':
        this.forwardCancel(packet.processId, packet.secretKey);
        this.close();
        return;
      case 'startup': {
        if (packet.params.has('replication')) return this.fail({ kind: 'unsupported', what: 'a replication connection' });
        const params = new Map(packet.params);
        if (!params.get('database')) params.set('database', params.get('user')!);
        this.params = params;
        const user = params.get('user')!;
        const verifier = this.ctx.directory.userVerifier(this.ctx.cluster, user) ?? mockVerifier(user, this.ctx.mockSecret);
        this.exchange = new ScramServerExchange(verifier, randomBytes(18).toString('base64'));
        this.reader.setFraming('typed', this.ctx.limits.messageBytesMax);
        this.setState('authenticating');
        this.socket.write(authenticationSasl([SCRAM_SHA_256]));
        return;
      }
    }
  }

  private startTls(): void {
    this.raw.off('data', this.onData);
    this.setState('tls-handshake');
    this.raw.write('S');
    const secure = new tls.TLSSocket(this.raw, { isServer: true, secureContext: this.ctx.secureContext });
    this.socket = secure;
    secure.on('error', () => this.close());
    secure.once('secure', () => {
      if (this.stateValue !== 'tls-handshake') return;
      this.setState('startup');
      secure.on('data', this.onData);
    });
  }

  private onAuthMessage(frame: Frame): void {
    if (frame.code === Frontend.Terminate) return this.close();
    if (frame.code !== Frontend.Password) throw new ProtocolViolation(`expected SASL response, got message type ${String.fromCharCode(frame.code!)}`);
    const exchange = this.exchange!;
    if (!exchange.started) {
      const initial = parseSaslInitialResponse(frame.body);
      if (initial.mechanism !== SCRAM_SHA_256) throw new ProtocolViolation(`SASL mechanism ${initial.mechanism} was not offered`);
      this.socket.write(authenticationSaslContinue(Buffer.from(exchange.clientFirst(initial.data.toString('utf8')), 'utf8')));
      return;
    }
    const serverFinal = exchange.clientFinal(frame.body.toString('utf8'));
    this.socket.write(Buffer.concat([authenticationSaslFinal(Buffer.from(serverFinal, 'utf8')), authenticationOk()]));
    this.setState('connecting');
    this.socket.pause();
    void this.connectToWriter();
  }

  /** Holds the client until the writer is available, within the deadline. */
  private async connectToWriter(): Promise<void> {
    const { cluster, limits, directory, log } = this.ctx;
    const started = Date.now();
    const deadline = started + limits.clientWaitForWriterMs;
    let reachedWriter = false;
    while (this.stateValue === 'connecting') {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const target = await directory.awaitWriter(cluster, remaining);
      if (!target || this.stateValue !== 'connecting') break;
      reachedWriter = true;
      try {
        const session = await openServerSession(target.socketPath, this.params, Math.max(1, deadline - Date.now()));
        if (this.stateValue !== 'connecting') {
          session.socket.destroy();
          return;
        }
        this.startForwarding(session, target);
        return;
      } catch (err) {
        if (!(err instanceof ServerStartupError)) throw err;
        const transient = err.errorFrame === null || err.sqlstate === '57P03' || err.sqlstate === '57P01';
        if (!transient) {
          // The backend's own refusal (unknown database, bad option...) is the
          // client's answer, word for word.
          return this.refuse(err.errorFrame);
        }
        log.debug('writer not reachable yet; retrying', { cluster, error: err.message });
        await new Promise((r) => setTimeout(r, WRITER_RETRY_MS));
      }
    }
    if (this.stateValue !== 'connecting') return;
    const waitedMs = Date.now() - started;
    this.fail(reachedWriter ? { kind: 'writer-unreachable', cluster } : { kind: 'writer-not-ready', cluster, waitedMs });
  }

  private startForwarding(session: ServerSession, target: WriterTarget): void {
    clearTimeout(this.authTimer);
    this.server = session;
    const key = this.ctx.cancels.allocate();
    this.cancelKey = key;
    this.ctx.cancels.attach(key.processId, key.secretKey, { socketPath: target.socketPath, processId: session.processId, secretKey: session.secretKey });
    const server = session.socket;
    server.setNoDelay?.(true);
    this.socket.write(Buffer.concat([...session.parameterFrames, backendKeyData(key.processId, key.secretKey), readyForQuery('I'), session.leftover]));
    const pending = this.reader.drain();
    if (pending.length > 0) server.write(pending);
    this.setState('forwarding');
    server.on('error', () => this.close());
    server.on('close', () => this.close());
    this.socket.off('data', this.onData);
    this.socket.pipe(server);
    server.pipe(this.socket);
    server.resume();
    this.socket.resume();
  }

  private forwardCancel(processId: number, secretKey: number): void {
    const backend = this.ctx.cancels.lookup(processId, secretKey);
    if (!backend) return; // As PostgreSQL does: say nothing about unknown keys.
    const s = net.connect(backend.socketPath, () => s.end(serializeCancelRequest(backend.processId, backend.secretKey)));
    s.on('error', () => s.destroy());
    s.setTimeout(5_000, () => s.destroy());
  }

  /** Sends an ErrorResponse and closes; the client gets a moment to read it. */
  fail(failure: ProxyFailure): void {
    if (this.stateValue === 'closed') return;
    if (this.stateValue === 'forwarding') return this.close();
    if (failure.kind !== 'auth-failed') this.ctx.log.info('client refused', { cluster: this.ctx.cluster, reason: failure.kind });
    else this.ctx.log.info('client authentication failed', { cluster: this.ctx.cluster, user: failure.user });
    this.refuse(errorResponse(toErrorFields(failure)));
  }

  private refuse(errorFrame: Buffer): void {
    const socket = this.socket;
    this.close(false);
    // Read nothing more from a refused client: whatever it still sends stays
    // in kernel buffers until the socket is destroyed.
    socket.pause();
    socket.end(errorFrame);
    setTimeout(() => socket.destroy(), ERROR_LINGER_MS).unref();
  }

  close(destroy = true): void {
    if (this.stateValue === 'closed') return;
    this.setState('closed');
    clearTimeout(this.authTimer);
    if (this.cancelKey) this.ctx.cancels.release(this.cancelKey.processId, this.cancelKey.secretKey);
    this.server?.socket.destroy();
    this.socket.off('data', this.onData);
    if (destroy) {
      this.socket.destroy();
      this.raw.destroy();
    }
  }
}
