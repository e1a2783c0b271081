import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Signer } from '@aws-sdk/rds-signer';
import { verifyIamToken, type IamTokenCheck } from '../../src/auth/sigv4.js';

const credentials = { accessKeyId: 'BKIATESTKEY0001', secretAccessKey: 'test/secret+key=value' };

async function token(opts: { username?: string; hostname?: string; port?: number } = {}): Promise<string> {
  return new Signer({ hostname: opts.hostname ?? '127.0.0.1', port: opts.port ?? 6543, username: opts.username ?? 'app_iam', region: 'eu-west-1', credentials }).getAuthToken();
}

const check = (overrides: Partial<IamTokenCheck> = {}): IamTokenCheck => ({
  user: 'app_iam',
  hosts: new Set(['127.0.0.1:6543', 'localhost:6543']),
  now: Date.now(),
  clockSkewMs: 300_000,
  secretFor: (id) => (id === credentials.accessKeyId ? credentials.secretAccessKey : null),
  ...overrides,
});

test('a token from @aws-sdk/rds-signer verifies', async () => {
  assert.deepEqual(verifyIamToken(await token(), check()), { ok: true, accessKeyId: credentials.accessKeyId });
  assert.equal(verifyIamToken(await token({ hostname: 'localhost' }), check()).ok, true);
});

test('each way a token can be wrong has its own reason', async () => {
  const t = await token();
  assert.deepEqual(verifyIamToken(t, check({ user: 'other' })), { ok: false, reason: 'wrong-user' });
  assert.deepEqual(verifyIamToken(await token({ port: 7000 }), check()), { ok: false, reason: 'wrong-host' });
  assert.deepEqual(verifyIamToken(t, check({ now: Date.now() + 901_000 })), { ok: false, reason: 'expired' });
  assert.deepEqual(verifyIamToken(t, check({ now: Date.now() - 600_000 })), { ok: false, reason: 'not-yet-valid' });
  assert.deepEqual(verifyIamToken(t, check({ secretFor: () => null })), { ok: false, reason: 'unknown-access-key' });
  assert.deepEqual(verifyIamToken(t, check({ secretFor: () => 'another secret' })), { ok: false, reason: 'bad-signature' });
  const flipped = t.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
  assert.deepEqual(verifyIamToken(flipped, check()), { ok: false, reason: 'bad-signature' });
  assert.deepEqual(verifyIamToken(t.replace('DBUser=app_iam', 'DBUser=app_iam&DBUser=x'), check()), { ok: false, reason: 'wrong-user' });
  assert.deepEqual(verifyIamToken(t.replace('Action=connect', 'Action=other'), check()), { ok: false, reason: 'wrong-action' });
  for (const junk of ['', 'not a token', 'http://x/?a=b', '127.0.0.1:6543/path?Action=connect', 'x'.repeat(5000)]) {
    assert.equal(verifyIamToken(junk, check()).ok, false, junk.slice(0, 30));
  }
});
