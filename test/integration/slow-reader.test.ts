// Backpressure at the front door: a client that reads a 200 MB result at
// 1 KiB/s costs the proxy a bounded amount of memory (its server is paused,
// not drained into the proxy), while 32 other clients run at full speed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis, PASSWORD, rssKiB } from '../helpers/borealis.js';
import { msg, WireClient } from '../helpers/wire-client.js';

/** What the proxy may grow by while the slow reader holds its 200 MB result (the bound, with room for the 32 clients' own buffers). */
const RSS_GROWTH_KIB_MAX = 64 * 1024;
const MEASURE_MS = 6_000;

let b: Borealis;
before(async () => {
  // SLOW_READER_NO_BACKPRESSURE=1 lifts the bound, to see this test fail as it did before backpressure.
  b = await Borealis.start(process.env.SLOW_READER_NO_BACKPRESSURE ? { BOREALIS_PROXY_WRITE_BUFFER_BYTES_MAX: String(4 * 1024 ** 3) } : {});
});
after(async () => {
  await b?.destroy();
});

test('a client reading a 200 MB result at 1 KiB/s keeps the proxy within its memory bound; 32 others run meanwhile', async () => {
  const supervisorPid = (await b.status()).supervisor.pid;
  const others = await Promise.all(
    Array.from({ length: 32 }, async () => {
      const c = new pg.Client(b.pgConfig({ tls: false }));
      await c.connect();
      return c;
    }),
  );
  const slow = await WireClient.connect({ port: b.proxyPort, user: 'postgres', password: PASSWORD });
  // From here on the test reads the socket itself, 1 KiB a second.
  slow.socket.removeAllListeners('data');
  slow.socket.pause();
  const rssBefore = rssKiB(supervisorPid);
  slow.send(msg.query("SELECT repeat('x', 1024) FROM generate_series(1, 200000)"));
  let slowRead = 0;
  const reader = setInterval(() => {
    const chunk = slow.socket.read(1024) as Buffer | null;
    if (chunk) slowRead += chunk.length;
  }, 1_000);
  let peakGrowth = 0;
  const sampler = setInterval(() => {
    peakGrowth = Math.max(peakGrowth, rssKiB(supervisorPid) - rssBefore);
  }, 200);
  const deadline = Date.now() + MEASURE_MS;
  const done = await Promise.all(
    others.map(async (c) => {
      let n = 0;
      while (Date.now() < deadline && n < 5_000) {
        const r = await c.query<{ n: number }>('SELECT $1::int AS n', [n]);
        assert.equal(r.rows[0]!.n, n);
        n++;
      }
      return n;
    }),
  );
  clearInterval(sampler);
  clearInterval(reader);
  peakGrowth = Math.max(peakGrowth, rssKiB(supervisorPid) - rssBefore);
  assert.ok(slowRead > 0, 'the slow client did receive its result, slowly');
  assert.ok(
    done.every((n) => n > 0),
    'every other client made progress',
  );
  assert.ok(peakGrowth < RSS_GROWTH_KIB_MAX, `proxy RSS grew by ${Math.round(peakGrowth / 1024)} MiB while a 200 MB result waited for a slow reader (bound ${RSS_GROWTH_KIB_MAX / 1024} MiB)`);
  slow.socket.destroy();
  await Promise.all(others.map((c) => c.end()));
  // The slow reader's server was closed or reset; the pool still serves.
  const after = new pg.Client(b.pgConfig({ tls: false }));
  await after.connect();
  assert.equal((await after.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
  await after.end();
});
