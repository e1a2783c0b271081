import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { test } from 'node:test';
import { deriveVerifier, formatVerifier, mockVerifier, parseVerifier, ScramFailure, ScramServerExchange } from '../../src/auth/scram.js';

// RFC 7677 section 3: the SCRAM-SHA-256 test vector.
const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
const clientFirst = 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO';
const serverNonce = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
const clientFinal = 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';

test('the RFC 7677 exchange verifies and yields the RFC server signature', () => {
  const exchange = new ScramServerExchange(deriveVerifier('pencil', salt, 4096), serverNonce);
  assert.equal(exchange.clientFirst(clientFirst), 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
  assert.equal(exchange.clientFinal(clientFinal), 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
});

test('a wrong password fails as an authentication failure', () => {
  const exchange = new ScramServerExchange(deriveVerifier('pencil2', salt, 4096), serverNonce);
  exchange.clientFirst(clientFirst);
  assert.throws(() => exchange.clientFinal(clientFinal), (e: unknown) => e instanceof ScramFailure && e.kind === 'auth');
});

test('an unknown user, behind a mock verifier, fails the same way', () => {
  const exchange = new ScramServerExchange(mockVerifier('nobody', Buffer.alloc(32, 1)), serverNonce);
  exchange.clientFirst(clientFirst);
  assert.throws(() => exchange.clientFinal(clientFinal), (e: unknown) => e instanceof ScramFailure && e.kind === 'auth');
});

test('a tampered nonce or channel-binding header is a protocol failure', () => {
  const verifier = deriveVerifier('pencil', salt, 4096);
  const a = new ScramServerExchange(verifier, serverNonce);
  a.clientFirst(clientFirst);
  assert.throws(() => a.clientFinal(clientFinal.replace('r=rOpr', 'r=xOpr')), (e: unknown) => e instanceof ScramFailure && e.kind === 'protocol');
  const b = new ScramServerExchange(verifier, serverNonce);
  b.clientFirst(clientFirst);
  assert.throws(() => b.clientFinal(clientFinal.replace('c=biws', 'c=eSws')), /channel binding/);
});

test('malformed client messages and out-of-order calls are refused', () => {
  const verifier = deriveVerifier('pencil', salt, 4096);
  for (const bad of ['', 'n,,', 'x,,n=user,r=abc', 'n,,n=user', 'p=tls-server-end-point,,n=,r=abc', 'n,,m=ext,n=user,r=abc']) {
    assert.throws(() => new ScramServerExchange(verifier, serverNonce).clientFirst(bad), ScramFailure, bad);
  }
  const exchange = new ScramServerExchange(verifier, serverNonce);
  assert.throws(() => exchange.clientFinal(clientFinal), /unexpected/);
  exchange.clientFirst(clientFirst);
  assert.throws(() => exchange.clientFirst(clientFirst), /unexpected/);
});

test('the y gs2 flag (client could bind, server did not offer) is accepted', () => {
  const exchange = new ScramServerExchange(deriveVerifier('pencil', salt, 4096), serverNonce);
  exchange.clientFirst('y,,n=user,r=rOprNGfwEbeRWgbNEkqO');
  // The proof covers c=base64("y,,"), so the RFC proof no longer matches.
  assert.throws(() => exchange.clientFinal(clientFinal.replace('c=biws', 'c=eSws')), (e: unknown) => e instanceof ScramFailure && e.kind === 'auth');
});

test('verifiers round-trip through PostgreSQL\'s text form', () => {
  const v = deriveVerifier('pencil', salt, 4096);
  const text = formatVerifier(v);
  assert.match(text, /^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
  assert.deepEqual(parseVerifier(text), v);
  assert.throws(() => parseVerifier('md5abcdef'), /not a SCRAM-SHA-256 verifier/);
  assert.throws(() => parseVerifier('SCRAM-SHA-256$4096:AAAA$AAAA:AAAA'), /malformed/);
});

/** The client side of SCRAM, enough to produce a proof for any gs2 header. */
function clientFinalFor(password: string, clientFirstBare: string, serverFirst: string, cValue: string): string {
  const attrs = new Map(serverFirst.split(',').map((kv) => [kv[0]!, kv.slice(2)]));
  const salted = pbkdf2Sync(password, Buffer.from(attrs.get('s') ?? '', 'base64'), Number(attrs.get('i')), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const withoutProof = `c=${cValue},r=${attrs.get('r') ?? ''}`;
  const signature = createHmac('sha256', storedKey).update(`${clientFirstBare},${serverFirst},${withoutProof}`).digest();
  const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!));
  return `${withoutProof},p=${proof.toString('base64')}`;
}

test('SCRAM-SHA-256-PLUS verifies the tls-server-end-point binding', () => {
  const certHash = Buffer.alloc(32, 0xab);
  const verifier = deriveVerifier('pencil', salt, 4096);
  const header = 'p=tls-server-end-point,,';
  const bare = 'n=,r=clientnonce';
  const good = new ScramServerExchange(verifier, 'servernonce', certHash);
  const sf = good.clientFirst(header + bare, 'SCRAM-SHA-256-PLUS');
  const c = Buffer.concat([Buffer.from(header), certHash]).toString('base64');
  assert.match(good.clientFinal(clientFinalFor('pencil', bare, sf, c)), /^v=/);
  // Binding data from another certificate (a man in the middle) fails.
  const bad = new ScramServerExchange(verifier, 'servernonce', certHash);
  const sf2 = bad.clientFirst(header + bare, 'SCRAM-SHA-256-PLUS');
  const wrongC = Buffer.concat([Buffer.from(header), Buffer.alloc(32, 0xcd)]).toString('base64');
  assert.throws(() => bad.clientFinal(clientFinalFor('pencil', bare, sf2, wrongC)), /channel binding check failed/);
});

test('channel binding negotiation: downgrade and misuse are refused', () => {
  const verifier = deriveVerifier('pencil', salt, 4096);
  // 'y' while the server offered -PLUS: someone stripped it from the list.
  assert.throws(() => new ScramServerExchange(verifier, 'n', Buffer.alloc(32)).clientFirst('y,,n=,r=abc'), /negotiation error/);
  // -PLUS without TLS, or with another binding type.
  assert.throws(() => new ScramServerExchange(verifier, 'n', null).clientFirst('p=tls-server-end-point,,n=,r=abc', 'SCRAM-SHA-256-PLUS'), /needs a TLS/);
  assert.throws(() => new ScramServerExchange(verifier, 'n', Buffer.alloc(32)).clientFirst('p=tls-unique,,n=,r=abc', 'SCRAM-SHA-256-PLUS'), /tls-server-end-point/);
  assert.throws(() => new ScramServerExchange(verifier, 'n', Buffer.alloc(32)).clientFirst('n,,n=,r=abc', 'SCRAM-SHA-256-PLUS'), /tls-server-end-point/);
});
