// Bad bytes at the front door: each offending connection is closed with a
// protocol error, memory stays bounded, and other clients keep working.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { serializeSslRequest, serializeStartupMessage } from '../../src/pgwire/startup.js';
import { parseErrorFields } from '../../src/pgwire/messages.js';
import { Borealis, rssKiB } from '../helpers/borealis.js';

let b: Borealis;
let bystander: pg.Client;
before(async () => {
  b = await Borealis.start({ BOREALIS_CLIENT_AUTH_TIMEOUT_MS: '2000' });
  bystander = new pg.Client(b.pgConfig());
  await bystander.connect();
  await bystander.query('SET application_name = bystander');
});
after(async () => {
  await bystander?.end();
  await b?.destroy();
});

interface Outcome {
  /** Everything the proxy sent before closing. */
  readonly received: Buffer;
  /** How the socket ended. */
  readonly closed: boolean;
}

/** Sends `chunks` (then `afterReply`, once the proxy has answered), then waits for the proxy to close the connection. */
function exchange(chunks: Buffer[], opts: { endAfterWrite?: boolean; timeoutMs?: number; afterReply?: Buffer[] } = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = net.connect(b.proxyPort, '127.0.0.1');
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ received: Buffer.concat(got), closed: false });
    }, opts.timeoutMs ?? 10_000);
    let replied = false;
    s.on('data', (d) => {
      got.push(d);
      if (replied || !opts.afterReply) return;
      replied = true;
      for (const c of opts.afterReply) s.write(c);
      if (opts.endAfterWrite) s.end();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(got), closed: true });
    });
    s.on('connect', () => {
      for (const c of chunks) s.write(c);
      if (opts.endAfterWrite && !opts.afterReply) s.end();
    });
  });
}

function errorCode(received: Buffer): string | undefined {
  const at = received.indexOf(0x45); // 'E'
  if (at < 0) return undefined;
  return parseErrorFields(received.subarray(at + 5)).get('C');
}

async function bystanderStillWorks(): Promise<void> {
  const r = await bystander.query<{ name: string }>('SELECT current_setting($1) AS name', ['application_name']);
  assert.equal(r.rows[0]!.name, 'bystander');
}

test('random bytes get 08P01 and a closed connection', async () => {
  let seed = 0x2545f491;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (let i = 0; i < 40; i++) {
    const bytes = Buffer.from(Array.from({ length: 8 + (i % 7) * 31 }, random));
    // A plausible length word is possible; make it a bad one so the outcome is known.
    bytes.writeInt32BE(2 + (i % 2) * 0x7ffff000, 0);
    const out = await exchange([bytes]);
    assert.equal(out.closed, true, `stream ${i} closed`);
    assert.equal(errorCode(out.received), '08P01', `stream ${i}`);
  }
  await bystanderStillWorks();
});

test('a startup packet claiming 1 GB is refused without buffering it', async () => {
  const pid = (await b.status()).supervisor.pid;
  const rssBefore = rssKiB(pid);
  const header = Buffer.alloc(8);
  header.writeInt32BE(1_000_000_000, 0);
  header.writeInt32BE(196608, 4);
  const junk = Buffer.alloc(1024 * 1024, 0x41);
  const out = await exchange([header, ...Array.from({ length: 32 }, () => junk)]);
  assert.equal(out.closed, true);
  assert.equal(errorCode(out.received), '08P01');
  assert.match(out.received.toString('latin1'), /exceeds the limit of 10000 bytes/);
  const grownKiB = rssKiB(pid) - rssBefore;
  assert.ok(grownKiB < 24 * 1024, `supervisor RSS grew by ${grownKiB} KiB`);
  await bystanderStillWorks();
});

test('a truncated startup packet is dropped when the client goes away, and at the auth timeout otherwise', async () => {
  const startup = serializeStartupMessage(new Map([['user', 'postgres'], ['database', 'postgres']]));
  const ended = await exchange([startup.subarray(0, startup.length - 5)], { endAfterWrite: true });
  assert.equal(ended.closed, true);
  const stalled = await exchange([startup.subarray(0, startup.length - 5)], { timeoutMs: 15_000 });
  assert.equal(stalled.closed, true, 'closed by the proxy at clientAuthTimeoutMs');
  assert.equal(errorCode(stalled.received), '08006');
  await bystanderStillWorks();
});

test('a truncated typed message mid-authentication is dropped', async () => {
  const startup = serializeStartupMessage(new Map([['user', 'postgres']]));
  const partial = Buffer.from([0x70, 0, 0, 0, 200, 1, 2, 3]);
  // The proxy reads the role from pg_authid before it answers the startup packet.
  const out = await exchange([startup], { afterReply: [partial], endAfterWrite: true });
  assert.equal(out.closed, true);
  assert.equal(out.received[0], 0x52, 'the proxy had asked for SASL');
  await bystanderStillWorks();
});

test('an oversized message during authentication gets 08P01', async () => {
  const startup = serializeStartupMessage(new Map([['user', 'postgres']]));
  const huge = Buffer.alloc(5);
  huge[0] = 0x70;
  huge.writeInt32BE(50_000_000, 1);
  const out = await exchange([startup, huge]);
  assert.equal(out.closed, true);
  assert.equal(errorCode(out.received), '08P01');
});

test('plaintext bytes after an SSLRequest are refused (CVE-2021-23214)', async () => {
  const startup = serializeStartupMessage(new Map([['user', 'postgres']]));
  const out = await exchange([Buffer.concat([serializeSslRequest(), startup])]);
  assert.equal(out.closed, true);
  assert.notEqual(out.received[0], 0x53, 'no TLS was offered');
  assert.equal(errorCode(out.received), '08P01');
  assert.match(out.received.toString('latin1'), /unencrypted data after SSL request/);
  await bystanderStillWorks();
});

test('GSSENCRequest is declined and the client may go on in plaintext', async () => {
  const gss = Buffer.alloc(8);
  gss.writeInt32BE(8, 0);
  gss.writeInt32BE(80877104, 4);
  const out = await exchange([gss, serializeStartupMessage(new Map([['user', 'postgres']]))], { timeoutMs: 1_000 });
  assert.equal(out.received.subarray(0, 1).toString(), 'N');
  assert.equal(out.received[1], 0x52, 'then the SASL request');
});

test('a replication connection through the proxy gets 0A000', async () => {
  const out = await exchange([serializeStartupMessage(new Map([['user', 'postgres'], ['replication', 'true']]))]);
  assert.equal(errorCode(out.received), '0A000');
});

test('a cancel request with an unknown key is ignored and harms nothing', async () => {
  const cancel = Buffer.alloc(16);
  cancel.writeInt32BE(16, 0);
  cancel.writeInt32BE(80877102, 4);
  cancel.writeInt32BE(1, 8);
  cancel.writeInt32BE(12345, 12);
  const out = await exchange([cancel]);
  assert.equal(out.closed, true);
  assert.equal(out.received.length, 0);
  await bystanderStillWorks();
});
