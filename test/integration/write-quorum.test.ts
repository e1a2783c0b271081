// Losing the write quorum is visible: with three of six storage nodes down
// commits wait, and status, events and /metrics say why; they say so again
// when the quorum is back.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Borealis, portBase } from '../helpers/borealis.js';

let b: Borealis;

before(async () => {
  // Storage ports of their own: other Borealis homes on this machine take the default range at the same time.
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()) });
});
after(async () => {
  await b?.destroy();
});

async function cli(...args: string[]): Promise<string> {
  const r = await b.cli(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

type Event = { id: number; sourceId: string; kind: string; message: string };
const events = async (): Promise<Event[]> => JSON.parse(await cli('events', '--json', '--limit', '200')) as Event[];
const metric = async (): Promise<string | null> => /^borealis_storage_write_quorum_available\{cluster="default"\} (\d)$/m.exec(await (await fetch(`http://127.0.0.1:${b.apiPort}/metrics`)).text())?.[1] ?? null;

test('three storage nodes down: status, an event and a metric say the write quorum is lost; one back: restored', async () => {
  await b.waitFor('all six nodes streaming', async () => (await b.status()).clusters[0]!.storage.nodes.every((n) => n.state === 'streaming'));
  const first = (await b.status()).clusters[0]!;
  assert.equal(first.status, 'available');
  assert.equal(first.storage.writeQuorumLost, false);
  assert.equal(await metric(), '1');
  for (const n of ['sn1', 'sn2', 'sn3']) await cli('storage', 'stop-node', n);
  // A commit now waits for a fourth node.
  const c = new pg.Client(b.pgConfig());
  await c.connect();
  const pending = c.query('CREATE TABLE waits (n int)');
  const lost = await b.waitFor('the write quorum to be reported lost', async () => {
    const s = (await b.status()).clusters[0]!;
    return s.storage.writeQuorumLost ? s : null;
  }, 60_000);
  assert.equal(lost.storage.writeQuorumLost, true);
  assert.ok((await events()).some((e) => e.sourceId === 'default' && e.kind === 'write-quorum-lost' && /3 of 6 storage nodes/.test(e.message)));
  assert.equal(await metric(), '0');
  assert.match(await cli('status'), /write quorum LOST/);
  await cli('storage', 'start-node', 'sn3');
  await pending;
  await c.end();
  await b.waitFor('the write quorum to be reported back', async () => !(await b.status()).clusters[0]!.storage.writeQuorumLost, 60_000);
  assert.ok((await events()).some((e) => e.sourceId === 'default' && e.kind === 'write-quorum-restored'));
  assert.equal(await metric(), '1');
  for (const n of ['sn1', 'sn2']) await cli('storage', 'start-node', n);
});
