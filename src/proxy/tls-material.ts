// The proxy's TLS material, kept in the Borealis home: a local certificate
// authority made at first start, and the server certificate it signs
// (ECDSA P-256, for the endpoint names, localhost, 127.0.0.1 and the
// address the proxy listens on). Clients
// verify the server with the CA file (`sslmode=verify-full
// sslrootcert=<home>/tls/ca.crt`); the CA's key never leaves the home.
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  readonly certFile: string;
  /** The CA certificate clients verify the server with (public, mode 0644). */
  readonly caFile: string;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600_000;
const SERVER_CERT_DAYS = 3650;
/** A server certificate this close to its end is made anew at start. */
const RENEW_BEFORE_DAYS = 30;
type X509 = typeof import('@peculiar/x509');

export async function ensureTlsMaterial(dir: string, hostNames: readonly string[] = ['localhost'], addresses: readonly string[] = ['127.0.0.1']): Promise<TlsMaterial> {
  const files = { caKey: path.join(dir, 'ca.key'), caCert: path.join(dir, 'ca.crt'), key: path.join(dir, 'server.key'), cert: path.join(dir, 'server.crt') };
  // Traversable, so that any local user can name the CA file; the keys stay 0600.
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  fs.chmodSync(dir, 0o711);
  if (Object.values(files).every((f) => fs.existsSync(f))) {
    const cert = fs.readFileSync(files.cert, 'utf8');
    if (stillGood(cert, fs.readFileSync(files.key, 'utf8'), fs.readFileSync(files.caCert, 'utf8'), hostNames, addresses)) return { key: fs.readFileSync(files.key, 'utf8'), cert, certFile: files.cert, caFile: files.caCert };
  }
  // Loaded only when material is made: the X.509 library needs the
  // reflect-metadata polyfill, and nothing else in Borealis does.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  // A home from before the CA has a self-signed server certificate: both are made anew.
  const ca = fs.existsSync(files.caKey) && fs.existsSync(files.caCert) ? await loadCa(x509, files) : await makeCa(x509, files);
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=Borealis proxy',
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + SERVER_CERT_DAYS * DAY_MS),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      new x509.SubjectAlternativeNameExtension([...hostNames.map((value) => ({ type: 'dns' as const, value })), ...addresses.map((value) => ({ type: 'ip' as const, value }))]),
    ],
  });
  const key = pemKey(Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)));
  const pem = cert.toString('pem') + '\n';
  writeAtomically(files.key, key, 0o600);
  writeAtomically(files.cert, pem, 0o644);
  return { key, cert: pem, certFile: files.cert, caFile: files.caCert };
}

/** Signed by this CA, matching its key, for every name asked for, and not near its end. */
function stillGood(certPem: string, keyPem: string, caPem: string, hostNames: readonly string[], addresses: readonly string[]): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    // A crash between writing the key and the certificate leaves a pair that does not match.
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey) || !cert.checkPrivateKey(createPrivateKey(keyPem))) return false;
    if (new Date(cert.validTo).getTime() - Date.now() < RENEW_BEFORE_DAYS * DAY_MS) return false;
    const names = (cert.subjectAltName ?? '').split(', ');
    return hostNames.every((h) => names.includes(`DNS:${h}`)) && addresses.every((a) => names.includes(`IP Address:${a}`));
  } catch {
    return false;
  }
}

interface Ca {
  readonly key: CryptoKey;
  readonly cert: InstanceType<X509['X509Certificate']>;
}

async function makeCa(x509: X509, files: { caKey: string; caCert: string }): Promise<Ca> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  // A name of its own per home: two homes' CAs are never mistaken for each other.
  const id = Buffer.from(webcrypto.getRandomValues(new Uint8Array(6))).toString('hex');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Borealis local CA ${id}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 10 * 365 * DAY_MS),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writeAtomically(files.caKey, pemKey(Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))), 0o600);
  writeAtomically(files.caCert, cert.toString('pem') + '\n', 0o644);
  return { key: keys.privateKey, cert };
}

async function loadCa(x509: X509, files: { caKey: string; caCert: string }): Promise<Ca> {
  const der = Buffer.from(fs.readFileSync(files.caKey, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const key = await webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
  return { key, cert: new x509.X509Certificate(fs.readFileSync(files.caCert, 'utf8')) };
}

function serial(): string {
  // Positive, 16 random bytes.
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');
}

function pemKey(pkcs8: Buffer): string {
  return `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').trim()}\n-----END PRIVATE KEY-----\n`;
}

/** Whole or not at all: a crash while writing leaves the old file (or none). */
function writeAtomically(file: string, text: string, mode: number): void {
  const tmp = `${file}.borealis-tmp`;
  fs.writeFileSync(tmp, text, { mode });
  fs.renameSync(tmp, file);
}
