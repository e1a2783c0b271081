// AWS Signature Version 4, the verifying side. Pure: keys, clock and input
// come in; a verdict comes out. Used for RDS IAM database authentication
// tokens (presigned `connect` URLs) and, later, the Data API.
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
import { createHmac, hash, timingSafeEqual } from 'node:crypto';

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';

const hmac = (key: Buffer | string, text: string): Buffer => createHmac('sha256', key).update(text, 'utf8').digest();
export const sha256Hex = (data: string | Buffer): string => hash('sha256', data, 'hex');
const EMPTY_SHA256 = sha256Hex('');

/** Derived keys change once a day per key, region and service: derive each once. */
const derivedKeys = new Map<string, Buffer>();
const DERIVED_KEYS_MAX = 1_000;

export function signingKey(secretAccessKey: string, date: string, region: string, service: string): Buffer {
  const id = `${secretAccessKey}\0${date}\0${region}\0${service}`;
  let key = derivedKeys.get(id);
  if (!key) {
    key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, date), region), service), 'aws4_request');
    if (derivedKeys.size >= DERIVED_KEYS_MAX) derivedKeys.clear();
    derivedKeys.set(id, key);
  }
  return key;
}

const UNRESERVED = /^[A-Za-z0-9\-_.~]*$/;

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ */
export function uriEncode(value: string): string {
  if (UNRESERVED.test(value)) return value;
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A path's canonical form: each segment decoded, then encoded as SigV4 wants. */
function canonicalPath(path: string): string {
  if (/^[A-Za-z0-9\-_.~/]*$/.test(path)) return path || '/';
  return path.split('/').map((seg) => uriEncode(decodeURIComponent(seg))).join('/') || '/';
}

/** A header's value as signed: trimmed, inner runs of spaces made one. */
function headerValue(headers: SignedRequest['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

const AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/;

export function canonicalQueryString(params: ReadonlyArray<readonly [string, string]>): string {
  return params
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** X-Amz-Date form (20261128T055134Z) → epoch ms, or NaN. */
export function parseAmzDate(text: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) return NaN;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

export function signatureMatches(expectedHex: string, givenHex: string): boolean {
  const a = Buffer.from(expectedHex, 'utf8');
  const b = Buffer.from(givenHex, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

export type IamTokenFailure =
  | 'malformed'
  | 'wrong-action'
  | 'wrong-user'
  | 'wrong-host'
  | 'unknown-access-key'
  | 'bad-scope'
  | 'expired'
  | 'not-yet-valid'
  | 'bad-signature';

export interface IamTokenCheck {
  /** The startup packet's user; the token's DBUser must match. */
  readonly user: string;
  /** host:port values the token may name (the endpoint's). */
  readonly hosts: ReadonlySet<string>;
  readonly now: number;
  /** Allowed clock difference for a token dated in the future. */
  readonly clockSkewMs: number;
  readonly secretFor: (accessKeyId: string) => string | null;
}

/** Longest validity AWS allows for an IAM database token. */
export const IAM_TOKEN_EXPIRES_MAX_S = 900;

/**
 * Verifies an RDS IAM authentication token:
 * host:port/?Action=connect&DBUser=…&X-Amz-…, presigned for service rds-db.
 */
export function verifyIamToken(token: string, check: IamTokenCheck): { ok: true; accessKeyId: string } | { ok: false; reason: IamTokenFailure } {
  const fail = (reason: IamTokenFailure) => ({ ok: false as const, reason });
  if (token.length > 4096 || /\s/.test(token)) return fail('malformed');
  let url: URL;
  try {
    url = new URL(`https://${token}`);
  } catch {
    return fail('malformed');
  }
  if (url.pathname !== '/' || url.username !== '' || url.hash !== '') return fail('malformed');
  const params = [...url.searchParams];
  const get = (name: string): string | null => {
    const found = params.filter(([k]) => k === name);
    return found.length === 1 ? found[0]![1] : null;
  };
  const signature = get('X-Amz-Signature');
  const credential = get('X-Amz-Credential');
  const amzDate = get('X-Amz-Date');
  const expires = get('X-Amz-Expires');
  if (get('X-Amz-Algorithm') !== SIGV4_ALGORITHM || !signature || !credential || !amzDate || !expires || get('X-Amz-SignedHeaders') !== 'host') return fail('malformed');
  if (get('Action') !== 'connect') return fail('wrong-action');
  if (get('DBUser') !== check.user) return fail('wrong-user');
  const host = url.port ? `${url.hostname}:${url.port}` : url.hostname;
  if (!check.hosts.has(host)) return fail('wrong-host');
  const scope = credential.split('/');
  if (scope.length !== 5 || scope[3] !== 'rds-db' || scope[4] !== 'aws4_request') return fail('bad-scope');
  const [accessKeyId, date, region] = scope as [string, string, string];
  const signedAt = parseAmzDate(amzDate);
  const expiresS = Number(expires);
  if (Number.isNaN(signedAt) || !amzDate.startsWith(date) || !/^\d+$/.test(expires) || expiresS < 1 || expiresS > IAM_TOKEN_EXPIRES_MAX_S) return fail('malformed');
  if (signedAt > check.now + check.clockSkewMs) return fail('not-yet-valid');
  if (check.now > signedAt + expiresS * 1000) return fail('expired');
  const secret = check.secretFor(accessKeyId);
  if (secret === null) return fail('unknown-access-key');
  // The signer hashes an empty body for these GET requests (not UNSIGNED-PAYLOAD).
  const canonicalRequest = ['GET', '/', canonicalQueryString(params.filter(([k]) => k !== 'X-Amz-Signature')), `host:${host}`, '', 'host', EMPTY_SHA256].join('\n');
  const stringToSign = [SIGV4_ALGORITHM, amzDate, `${date}/${region}/rds-db/aws4_request`, sha256Hex(canonicalRequest)].join('\n');
  const expected = createHmac('sha256', signingKey(secret, date, region, 'rds-db')).update(stringToSign).digest('hex');
  if (!signatureMatches(expected, signature)) return fail('bad-signature');
  return { ok: true, accessKeyId };
}

export type RequestSignatureFailure = 'missing' | 'malformed' | 'unknown-access-key' | 'wrong-service' | 'expired' | 'bad-signature' | 'body-hash-mismatch';

export interface SignedRequest {
  readonly method: string;
  /** Path as sent, without the query. */
  readonly path: string;
  readonly query: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/**
 * Verifies a request signed in the Authorization header (SigV4). The body
 * hash is computed here, never taken from x-amz-content-sha256 alone.
 */
export function verifyRequestSignature(
  req: SignedRequest,
  check: { readonly service: string; readonly now: number; readonly clockSkewMs: number; readonly secretFor: (id: string) => string | null },
): { ok: true; accessKeyId: string } | { ok: false; reason: RequestSignatureFailure } {
  const auth = headerValue(req.headers, 'authorization');
  if (!auth) return { ok: false, reason: 'missing' };
  const m = AUTHORIZATION.exec(auth.trim());
  if (!m) return { ok: false, reason: 'malformed' };
  const scope = m[1]!.split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request') return { ok: false, reason: 'malformed' };
  const [accessKeyId, date, region, service] = scope as [string, string, string, string];
  if (service !== check.service) return { ok: false, reason: 'wrong-service' };
  const amzDate = headerValue(req.headers, 'x-amz-date');
  const signedAt = amzDate ? parseAmzDate(amzDate) : NaN;
  if (Number.isNaN(signedAt) || !amzDate!.startsWith(date)) return { ok: false, reason: 'malformed' };
  if (Math.abs(check.now - signedAt) > check.clockSkewMs) return { ok: false, reason: 'expired' };
  const signedHeaders = m[2]!.split(';');
  if (!signedHeaders.includes('host') || signedHeaders.some((h) => h !== h.toLowerCase())) return { ok: false, reason: 'malformed' };
  const bodyHash = sha256Hex(req.body);
  const declared = headerValue(req.headers, 'x-amz-content-sha256');
  if (declared !== undefined && declared !== 'UNSIGNED-PAYLOAD' && declared !== bodyHash) return { ok: false, reason: 'body-hash-mismatch' };
  const secret = check.secretFor(accessKeyId);
  if (secret === null) return { ok: false, reason: 'unknown-access-key' };
  let canonicalHeaders = '';
  for (const h of signedHeaders) canonicalHeaders += `${h}:${(headerValue(req.headers, h) ?? '').trim().replace(/\s+/g, ' ')}\n`;
  const query = req.query === '' ? '' : canonicalQueryString([...new URLSearchParams(req.query)]);
  const canonicalRequest = `${req.method}\n${canonicalPath(req.path)}\n${query}\n${canonicalHeaders}\n${m[2]!}\n${bodyHash}`;
  const stringToSign = `${SIGV4_ALGORITHM}\n${amzDate!}\n${date}/${region}/${service}/aws4_request\n${sha256Hex(canonicalRequest)}`;
  const expected = createHmac('sha256', signingKey(secret, date, region, service)).update(stringToSign).digest('hex');
  if (!signatureMatches(expected, m[3]!)) return { ok: false, reason: 'bad-signature' };
  return { ok: true, accessKeyId };
}
