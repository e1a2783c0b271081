// Opens a session on a PostgreSQL backend over its private Unix socket and
// runs it up to the first ReadyForQuery. The backend trusts that socket; the
// client was authenticated by the proxy already.
import net from 'node:net';
import { Auth, Backend } from '../pgwire/codes.js';
import { FrameReader, ProtocolViolation } from '../pgwire/frame-reader.js';
import { parseAuthentication, parseBackendKeyData, parseErrorFields } from '../pgwire/messages.js';
import { serializeStartupMessage } from '../pgwire/startup.js';

export interface ServerSession {
  readonly socket: net.Socket;
  readonly processId: number;
  readonly secretKey: number;
  /** ParameterStatus frames, ready to send to the client. */
  readonly parameterFrames: Buffer[];
  /** Bytes that arrived after ReadyForQuery, if any. */
  readonly leftover: Buffer;
}

export class ServerStartupError extends Error {
  override readonly name = 'ServerStartupError';
  constructor(
    /** The backend's ErrorResponse frame, to relay as is; null if it never answered. */
    readonly errorFrame: Buffer | null,
    message: string,
    readonly sqlstate: string | null,
  ) {
    super(message);
  }
}

/**
 * The startup parameters a session is opened with: the client's, with
 * `-c synchronous_commit=on` put first in `options`. PostgreSQL ranks
 * startup-packet settings above ALTER DATABASE/ROLE … SET, so a setting
 * stored for a database or role (which the master user may make) cannot
 * lower every later session below the storage quorum; a value the client
 * chose itself (later in its `options`, or its own startup key, applied
 * after `options`) still wins, for that session only (docs/security.md,
 * "Durability settings").
 */
export function durableStartup(params: ReadonlyMap<string, string>): ReadonlyMap<string, string> {
  const own = params.get('options');
  return new Map([...params, ['options', own ? `-c synchronous_commit=on ${own}` : '-c synchronous_commit=on']]);
}

/** Backend frames during startup are small; anything bigger is not postgres. */
const SERVER_STARTUP_FRAME_BYTES_MAX = 1024 * 1024;

export function openServerSession(socketPath: string, params: ReadonlyMap<string, string>, timeoutMs: number): Promise<ServerSession> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    const reader = new FrameReader('typed', SERVER_STARTUP_FRAME_BYTES_MAX);
    const parameterFrames: Buffer[] = [];
    let key: { processId: number; secretKey: number } | null = null;
    let settled = false;
    const timer = setTimeout(() => fail(new ServerStartupError(null, `backend did not finish startup within ${timeoutMs} ms`, null)), timeoutMs);
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('connect', () => socket.write(serializeStartupMessage(durableStartup(params))));
    socket.on('error', (err) => fail(new ServerStartupError(null, err.message, null)));
    socket.on('close', () => fail(new ServerStartupError(null, 'backend closed the connection during startup', null)));
    socket.on('data', (chunk: Buffer) => {
      if (settled) return;
      reader.push(chunk);
      try {
        for (let frame = reader.next(); frame; frame = reader.next()) {
          // Kept until the client is welcomed: a copy, so it does not pin the whole chunk.
          const whole = Buffer.from(frame.raw);
          switch (frame.code) {
            case Backend.Authentication: {
              const auth = parseAuthentication(frame.body);
              if (auth.code !== Auth.Ok) throw new ProtocolViolation(`backend asked for authentication method ${auth.code} on the trusted socket`);
              break;
            }
            case Backend.ParameterStatus:
              parameterFrames.push(whole);
              break;
            case Backend.BackendKeyData:
              key = parseBackendKeyData(frame.body);
              break;
            case Backend.NoticeResponse:
              break;
            case Backend.ErrorResponse: {
              const fields = parseErrorFields(frame.body);
              fail(new ServerStartupError(whole, fields.get('M') ?? 'backend refused the session', fields.get('C') ?? null));
              return;
            }
            case Backend.ReadyForQuery: {
              if (!key) throw new ProtocolViolation('backend sent no BackendKeyData');
              settled = true;
              clearTimeout(timer);
              socket.removeAllListeners('data');
              socket.removeAllListeners('close');
              socket.removeAllListeners('error');
              socket.pause();
              resolve({ socket, ...key, parameterFrames, leftover: reader.drain() });
              return;
            }
            default:
              throw new ProtocolViolation(`unexpected backend message ${String.fromCharCode(frame.code!)} during startup`);
          }
        }
      } catch (err) {
        fail(new ServerStartupError(null, (err as Error).message, null));
      }
    });
  });
}


/** Pause between attempts to reach a writer that is restarting. */
const WRITER_RETRY_MS = 100;

export interface InstanceLocator {
  /**
   * Resolves with the instance's socket when it is available, or null at the
   * deadline. `asWriter`: only while it is the writer of record and no
   * failover is under way; 'moved' once it is no longer the writer.
   */
  awaitInstance(instanceId: string, timeoutMs: number, asWriter?: boolean): Promise<{ readonly socketPath: string } | 'moved' | null>;
}

export type OpenFailure =
  | { readonly kind: 'instance-not-ready'; readonly waitedMs: number }
  | { readonly kind: 'instance-unreachable' }
  /** A writer's server was asked for, and the instance is no longer the writer (a failover moved it). */
  | { readonly kind: 'writer-moved' }
  /** The backend refused the session itself (unknown database, bad option): relay its frame. */
  | { readonly kind: 'backend-refused'; readonly errorFrame: Buffer };

export class OpenError extends Error {
  override readonly name = 'OpenError';
  constructor(readonly failure: OpenFailure) {
    super(failure.kind);
  }
}

/**
 * Opens a session on an instance, waiting (until `deadline`) while it
 * starts, restarts or resumes. Throws OpenError.
 */
export async function openInstanceSession(locator: InstanceLocator, instanceId: string, params: ReadonlyMap<string, string>, deadline: number, asWriter = false): Promise<ServerSession & { socketPath: string }> {
  const started = Date.now();
  let reached = false;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const target = await locator.awaitInstance(instanceId, remaining, asWriter);
    if (target === 'moved') throw new OpenError({ kind: 'writer-moved' });
    if (!target) break;
    reached = true;
    try {
      const session = await openServerSession(target.socketPath, params, Math.max(1, deadline - Date.now()));
      return { ...session, socketPath: target.socketPath };
    } catch (err) {
      if (!(err instanceof ServerStartupError)) throw err;
      const transient = err.errorFrame === null || err.sqlstate === '57P03' || err.sqlstate === '57P01';
      if (!transient) throw new OpenError({ kind: 'backend-refused', errorFrame: err.errorFrame });
      await new Promise((r) => setTimeout(r, WRITER_RETRY_MS));
    }
  }
  throw new OpenError(reached ? { kind: 'instance-unreachable' } : { kind: 'instance-not-ready', waitedMs: Date.now() - started });
}
