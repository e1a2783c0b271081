import assert from 'node:assert/strict';
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
