// The client side of SCRAM-SHA-256 (no channel binding), for Borealis's own
// connections to PostgreSQL: storage nodes streaming WAL, base backups.
import { createHash, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { ScramFailure } from './scram.js';

const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text, 'utf8').digest();

export class ScramClientExchange {
  private readonly clientFirstBare: string;
  private expectedServerSignature: Buffer | null = null;

  constructor(
    private readonly password: string,
    nonce: string,
  ) {
    this.clientFirstBare = `n=,r=${nonce}`;
  }

  clientFirst(): string {
    return `n,,${this.clientFirstBare}`;
  }

  /** Takes server-first-message; returns client-final-message. */
  serverFirst(message: string): string {
    const match = /^r=([^,]+),s=([A-Za-z0-9+/=]+),i=(\d+)/.exec(message);
    if (!match) throw new ScramFailure('protocol', 'malformed SCRAM server-first-message');
    const [, nonce, salt, iterations] = match as unknown as [string, string, string, string];
    if (!nonce.startsWith(this.clientFirstBare.slice(5))) throw new ScramFailure('protocol', 'SCRAM server nonce does not extend ours');
    const count = Number(iterations);
    if (count < 1 || count > 1_000_000) throw new ScramFailure('protocol', 'SCRAM iteration count out of range');
    const salted = pbkdf2Sync(Buffer.from(this.password.normalize('NFKC'), 'utf8'), Buffer.from(salt, 'base64'), count, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${message},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks server-final-message: the server proves it knew the verifier. */
  serverFinal(message: string): void {
    const match = /^v=([A-Za-z0-9+/=]+)$/.exec(message.trim());
    if (!match || !this.expectedServerSignature) throw new ScramFailure('protocol', 'malformed SCRAM server-final-message');
    const got = Buffer.from(match[1]!, 'base64');
    if (got.length !== 32 || !timingSafeEqual(got, this.expectedServerSignature)) throw new ScramFailure('auth', 'server signature does not match');
  }
}
