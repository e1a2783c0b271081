// The pure parts of role lookups: how a pg_authid row must authenticate,
// and reads that are fresh for every caller yet shared by callers at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deriveVerifier, formatVerifier } from '../../src/auth/scram.js';
import { FreshReads, loginMethod, type RoleRecord } from '../../src/proxy/role-directory.js';

const scram = formatVerifier(deriveVerifier('pass-word-1', Buffer.alloc(16, 7), 4096));
const role = (r: Partial<RoleRecord>): RoleRecord => ({ name: 'app', canLogin: true, password: scram, validUntilMs: null, iam: false, ...r });
const NOW = Date.UTC(2026, 0, 1);

test('a SCRAM verifier is used; NOLOGIN still authenticates first (28000 comes after the proof)', () => {
  const m = loginMethod(role({}), NOW);
  assert.equal(m.method, 'scram');
  assert.equal(m.method === 'scram' && m.canLogin, true);
  const nologin = loginMethod(role({ canLogin: false }), NOW);
  assert.equal(nologin.method === 'scram' && nologin.canLogin, false);
});

test('no role, no password, an md5 hash, a malformed verifier or an expired VALID UNTIL look like a wrong password', () => {
  assert.equal(loginMethod(null, NOW).method, 'none');
  assert.equal(loginMethod(role({ password: null }), NOW).method, 'none');
  assert.equal(loginMethod(role({ password: 'md5' + 'a'.repeat(32) }), NOW).method, 'none');
  assert.equal(loginMethod(role({ password: 'SCRAM-SHA-256$4096:AAAA$short:short' }), NOW).method, 'none');
  assert.equal(loginMethod(role({ validUntilMs: NOW - 1 }), NOW).method, 'none');
  assert.equal(loginMethod(role({ validUntilMs: NOW + 1 }), NOW).method, 'scram');
});

test('members of rds_iam use IAM tokens, whatever their password', () => {
  assert.deepEqual(loginMethod(role({ iam: true }), NOW), { method: 'iam', canLogin: true });
  assert.deepEqual(loginMethod(role({ iam: true, password: null, canLogin: false }), NOW), { method: 'iam', canLogin: false });
});

test('FreshReads: a caller never gets a read that began before it asked; callers at once share one', async () => {
  let version = 0;
  const started: number[] = [];
  const pending: Array<() => void> = [];
  const reads = new FreshReads<number>(async () => {
    started.push(version);
    const seen = version;
    await new Promise<void>((resolve) => pending.push(resolve));
    return seen;
  });
  const first = reads.get('k');
  version = 1; // a change committed while the first read runs
  const second = reads.get('k');
  const third = reads.get('k');
  assert.equal(started.length, 1, 'the second read waits for the first');
  pending.shift()!();
  assert.equal(await first, 0);
  await new Promise((r) => setImmediate(r));
  assert.equal(started.length, 2, 'one more read, shared by the two callers that came during the first');
  pending.shift()!();
  assert.equal(await second, 1);
  assert.equal(await third, 1);
  assert.equal(reads.size, 0);
  const other = reads.get('other');
  assert.equal(started.length, 3);
  pending.shift()!();
  assert.equal(await other, 1);
});

test('FreshReads: a failed read fails its callers and the next caller reads again', async () => {
  let calls = 0;
  const reads = new FreshReads<number>(() => {
    calls++;
    return calls === 1 ? Promise.reject(new Error('writer restarting')) : Promise.resolve(calls);
  });
  await assert.rejects(reads.get('k'), /writer restarting/);
  assert.equal(await reads.get('k'), 2);
});
