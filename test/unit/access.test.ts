import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateCidr } from '../../src/control/model.js';
import { compileAccessPolicy } from '../../src/proxy/access-policy.js';
import { AuthThrottle, LoginThrottle } from '../../src/proxy/auth-throttle.js';

test('allow-lists match IPv4, IPv4-mapped IPv6 and IPv6 sources', () => {
  const p = compileAccessPolicy({ allowedCidrs: ['10.0.0.0/8', '192.168.1.7/32', 'fd00::/8'], requireTls: false });
  assert.equal(p.allows('10.2.3.4'), true);
  assert.equal(p.allows('::ffff:10.2.3.4'), true);
  assert.equal(p.allows('192.168.1.7'), true);
  assert.equal(p.allows('192.168.1.8'), false);
  assert.equal(p.allows('127.0.0.1'), false);
  assert.equal(p.allows('fd12::1'), true);
  assert.equal(p.allows('::1'), false);
  assert.equal(p.allows(undefined), false);
  assert.equal(compileAccessPolicy({ allowedCidrs: [], requireTls: true }).allows('1.2.3.4'), true);
});

test('CIDR validation', () => {
  for (const ok of ['0.0.0.0/0', '127.0.0.1/32', '::1/128', 'fd00::/8']) assert.equal(validateCidr(ok), null, ok);
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '300.1.1.1/8', 'abc/8', '::1/129', '10.0.0.0/-1']) assert.notEqual(validateCidr(bad), null, bad);
});

test('the throttle refuses a source past its failures in the window, then forgives', () => {
  const t = new AuthThrottle({ failuresMax: 3, windowMs: 60_000, sourcesMax: 100 });
  for (const at of [0, 1_000, 2_000]) {
    assert.equal(t.retryAfterMs('a', at), 0);
    t.recordFailure('a', at);
  }
  assert.equal(t.retryAfterMs('a', 3_000), 57_000);
  assert.equal(t.retryAfterMs('b', 3_000), 0, 'other sources are unaffected');
  assert.equal(t.retryAfterMs('a', 60_001), 0, 'the oldest failure left the window');
  const off = new AuthThrottle({ failuresMax: 0, windowMs: 60_000, sourcesMax: 100 });
  off.recordFailure('a', 0);
  assert.equal(off.retryAfterMs('a', 0), 0);
});

test('the throttle remembers a bounded number of sources', () => {
  const t = new AuthThrottle({ failuresMax: 1, windowMs: 60_000, sourcesMax: 3 });
  for (const s of ['a', 'b', 'c', 'd']) t.recordFailure(s, 0);
  assert.equal(t.sources, 3);
  assert.equal(t.retryAfterMs('a', 1), 0, 'the least recent was forgotten');
  assert.ok(t.retryAfterMs('d', 1) > 0);
});

test('logins are throttled per user and source, and per source over all users', () => {
  const t = new LoginThrottle({ perUserSourceMax: 2, perSourceMax: 4, windowMs: 60_000, keysMax: 100 });
  t.recordFailure('a', 'app', 0);
  t.recordFailure('a', 'app', 1_000);
  assert.deepEqual(t.check('a', 'app', 2_000), { scope: 'user', retryAfterMs: 58_000 });
  assert.equal(t.check('a', 'other', 2_000), null, 'other users of the source are unaffected');
  assert.equal(t.check('b', 'app', 2_000), null, 'the same user from another source is unaffected');
  t.recordFailure('a', 'guess1', 3_000);
  t.recordFailure('a', 'guess2', 4_000);
  assert.deepEqual(t.check('a', 'other', 5_000), { scope: 'source', retryAfterMs: 55_000 });
  assert.equal(t.check('a', 'other', 60_001), null, 'forgiven as failures leave the window');
  const off = new LoginThrottle({ perUserSourceMax: 0, perSourceMax: 0, windowMs: 60_000, keysMax: 100 });
  for (let i = 0; i < 10; i++) off.recordFailure('a', 'app', i);
  assert.equal(off.check('a', 'app', 10), null);
});
