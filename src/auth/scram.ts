// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: verifiers in
// PostgreSQL's stored format and the server side of the exchange. Pure: the
// caller supplies randomness, and no secret ever leaves in an error message.
// https://www.postgresql.org/docs/17/sasl-authentication.html
import { createHash, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';
export const SCRAM_ITERATIONS_DEFAULT = 4096;

export interface ScramVerifier {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text, 'utf8').digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

export function deriveVerifier(password: string, salt: Buffer, iterations: number): ScramVerifier {
  // PostgreSQL applies SASLprep to the password; for the printable ASCII
  // passwords Borealis generates that is the identity. NFKC covers the
  // common non-ASCII cases in the same way SASLprep's mapping step does.
  const salted = pbkdf2Sync(Buffer.from(password.normalize('NFKC'), 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  return { iterations, salt, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

/** PostgreSQL's text form: SCRAM-SHA-256$iter:salt$StoredKey:ServerKey. */
export function formatVerifier(v: ScramVerifier): string {
  return `${SCRAM_SHA_256}$${v.iterations}:${v.salt.toString('base64')}$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`;
}

export function parseVerifier(text: string): ScramVerifier {
  const match = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (!match) throw new Error('not a SCRAM-SHA-256 verifier');
  const v = {
    iterations: Number(match[1]),
    salt: Buffer.from(match[2]!, 'base64'),
    storedKey: Buffer.from(match[3]!, 'base64'),
    serverKey: Buffer.from(match[4]!, 'base64'),
  };
  if (v.storedKey.length !== 32 || v.serverKey.length !== 32 || v.iterations < 1) {
    throw new Error('malformed SCRAM-SHA-256 verifier');
  }
  return v;
}

export class ScramFailure extends Error {
  override readonly name = 'ScramFailure';
  constructor(
    /** 'protocol': malformed exchange (08P01); 'auth': wrong password (28P01). */
    readonly kind: 'protocol' | 'auth',
    message: string,
  ) {
    super(message);
  }
}

type ExchangeState =
  | { readonly step: 'expect-client-first' }
  | { readonly step: 'expect-client-final'; readonly clientFirstBare: string; readonly serverFirst: string; readonly nonce: string; readonly expectedC: string }
  | { readonly step: 'done' };

/**
 * One server-side SCRAM-SHA-256 exchange. For an unknown user pass a mock
 * verifier (see mockVerifier) so the exchange looks the same and fails only
 * at the proof, as PostgreSQL does, revealing nothing about which users exist.
 */
export class ScramServerExchange {
  private state: ExchangeState = { step: 'expect-client-first' };

  constructor(
    private readonly verifier: ScramVerifier,
    private readonly serverNonce: string,
    /**
     * tls-server-end-point binding data (RFC 5929: the hash of the server
     * certificate) when the connection is TLS and -PLUS was offered; null otherwise.
     */
    private readonly channelBinding: Buffer | null = null,
  ) {}

  /** True once the client-first-message has been taken. */
  get started(): boolean {
    return this.state.step !== 'expect-client-first';
  }

  /** Takes client-first-message for `mechanism`, returns server-first-message. */
  clientFirst(message: string, mechanism: string = SCRAM_SHA_256): string {
    if (this.state.step !== 'expect-client-first') throw new ScramFailure('protocol', 'unexpected SCRAM client-first-message');
    // gs2-header: cbind-flag "," [authzid] ","
    const match = /^(n|y|p=[A-Za-z0-9.-]+),(?:a=[^,]*)?,(.*)$/s.exec(message);
    if (!match) throw new ScramFailure('protocol', 'malformed SCRAM client-first-message');
    const flag = match[1]!;
    if (mechanism === SCRAM_SHA_256_PLUS) {
      if (!this.channelBinding) throw new ScramFailure('protocol', 'SCRAM-SHA-256-PLUS needs a TLS connection');
      if (flag !== 'p=tls-server-end-point') throw new ScramFailure('protocol', 'SCRAM-SHA-256-PLUS requires channel binding type tls-server-end-point');
    } else if (flag.startsWith('p=')) {
      throw new ScramFailure('protocol', 'channel binding requested with a mechanism that does not use it');
    } else if (flag === 'y' && this.channelBinding) {
      // The client thinks the server cannot bind, but it offered -PLUS: a
      // man in the middle removed it from the list (RFC 5802, section 6).
      throw new ScramFailure('protocol', 'SCRAM channel binding negotiation error');
    }
    const clientFirstBare = match[2]!;
    const attrs = /^(?:m=[^,]*,)?n=[^,]*,r=([\x21-\x2b\x2d-\x7e]+)(?:,.*)?$/s.exec(clientFirstBare);
    if (!attrs) throw new ScramFailure('protocol', 'malformed SCRAM client-first-message');
    if (clientFirstBare.startsWith('m=')) throw new ScramFailure('protocol', 'SCRAM extensions are not supported');
    const gs2Header = message.slice(0, message.length - clientFirstBare.length);
    const nonce = attrs[1]! + this.serverNonce;
    const serverFirst = `r=${nonce},s=${this.verifier.salt.toString('base64')},i=${this.verifier.iterations}`;
    const binding = flag.startsWith('p=') ? this.channelBinding! : Buffer.alloc(0);
    const expectedC = Buffer.concat([Buffer.from(gs2Header, 'latin1'), binding]).toString('base64');
    this.state = { step: 'expect-client-final', clientFirstBare, serverFirst, nonce, expectedC };
    return serverFirst;
  }

  /** Takes client-final-message; returns server-final-message or throws. */
  clientFinal(message: string): string {
    const s = this.state;
    if (s.step !== 'expect-client-final') throw new ScramFailure('protocol', 'unexpected SCRAM client-final-message');
    this.state = { step: 'done' };
    const match = /^c=([A-Za-z0-9+/=]*),r=([^,]*)(?:,[^p][^,]*)*,p=([A-Za-z0-9+/=]+)$/s.exec(message);
    if (!match) throw new ScramFailure('protocol', 'malformed SCRAM client-final-message');
    if (match[1] !== s.expectedC) throw new ScramFailure('protocol', 'SCRAM channel binding check failed');
    if (match[2] !== s.nonce) throw new ScramFailure('protocol', 'SCRAM nonce mismatch');
    const proof = Buffer.from(match[3]!, 'base64');
    if (proof.length !== 32) throw new ScramFailure('protocol', 'malformed SCRAM proof');
    const withoutProof = message.slice(0, message.lastIndexOf(',p='));
    const authMessage = `${s.clientFirstBare},${s.serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.verifier.storedKey, authMessage);
    const clientKey = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    if (!timingSafeEqual(sha256(clientKey), this.verifier.storedKey)) {
      throw new ScramFailure('auth', 'password authentication failed');
    }
    return `v=${hmac(this.verifier.serverKey, authMessage).toString('base64')}`;
  }
}

/** A deterministic per-user fake verifier for users that do not exist. */
export function mockVerifier(user: string, secret: Buffer): ScramVerifier {
  const salt = createHmac('sha256', secret).update(`salt:${user}`).digest().subarray(0, 16);
  const key = createHmac('sha256', secret).update(`key:${user}`).digest();
  return { iterations: SCRAM_ITERATIONS_DEFAULT, salt, storedKey: key, serverKey: key };
}
