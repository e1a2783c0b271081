// A rebuild is verified: the rebuilt writer must replay the WAL storage
// vouches for up to its last whole record, or it never opens. Here every
// storage node holds a record that PostgreSQL's own checksum rejects (a byte
// flipped in a row, with storage's page checksums made to match, as a bad
// disk or a bug upstream of storage would leave it). Without the check,
// recovery stops quietly at that record, the writer opens on a new timeline
// and every commit after it is gone; with it, PostgreSQL refuses to open.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { parseWalFileName } from '../../src/pgwire/replication.js';
import { SegmentStore } from '../../src/storage/segment-store.js';
import { Borealis, portBase } from '../helpers/borealis.js';

let b: Borealis;

before(async () => {
  b = await Borealis.start({ BOREALIS_STORAGE_PORT_BASE: String(portBase()) });
});
after(async () => {
  await b?.destroy();
});

const query = <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => b.sql<T>(sql);
const NODES = ['sn1', 'sn2', 'sn3', 'sn4', 'sn5', 'sn6'];
const MARKER = 'borealis-rebuild-marker-7f3a9c';

async function writer() {
  return (await b.status()).clusters[0]!.instances.find((i) => i.role === 'writer')!;
}

/** Flips one byte of MARKER in every stored copy of the segment that holds it; returns how many copies. */
function corruptMarker(): number {
  let copies = 0;
  for (const node of NODES) {
    const dir = path.join(b.home, 'storage', 'default', node, 'wal');
    const store = new SegmentStore(dir);
    for (const name of fs.readdirSync(dir)) {
      const id = parseWalFileName(name);
      if (!id) continue;
      const bytes = Buffer.from(store.readSegment(id.timeline, id.segment));
      const at = bytes.indexOf(MARKER);
      if (at < 0) continue;
      const owner = fs.statSync(path.join(dir, name));
      bytes[at + 3] = bytes[at + 3]! ^ 0x20;
      // A copy whose storage checksums match the changed bytes: only PostgreSQL's record CRC can tell.
      store.installSegment(id.timeline, id.segment, bytes);
      fs.chownSync(path.join(dir, name), owner.uid, owner.gid);
      copies++;
    }
  }
  return copies;
}

test('a rebuild whose WAL replays short of what storage holds never opens; acknowledged commits are not quietly dropped', async () => {
  await query('CREATE TABLE kept (n int, note text)');
  await query('INSERT INTO kept SELECT g, null FROM generate_series(1, 100) g');
  await b.waitFor('a base backup on every node', async () => (await b.status()).clusters[0]!.storage.nodes.every((n) => (n.backups ?? 0) >= 1 && n.state === 'streaming'));
  // After the backup: the marked row, then fifty acknowledged commits after it.
  await query(`INSERT INTO kept VALUES (101, '${MARKER}')`);
  for (let i = 102; i <= 151; i++) await query(`INSERT INTO kept VALUES (${i}, null)`);
  const lsn = (await query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn'))[0]!.lsn;
  await b.waitFor('every node to hold the last commit', async () => {
    const nodes = (await b.status()).clusters[0]!.storage.nodes;
    return nodes.every((n) => n.flushLsn != null && compareLsn(n.flushLsn, lsn) >= 0);
  });
  for (const n of NODES) await b.cliOk('storage', 'stop-node', n);
  assert.equal(corruptMarker(), NODES.length, 'every node held the marked record');
  const w = await writer();
  assert.ok(w.pid);
  process.kill(w.pid, 'SIGKILL');
  fs.rmSync(path.join(b.home, 'instances', w.id, 'data'), { recursive: true, force: true });
  for (const n of NODES) await b.cliOk('storage', 'start-node', n);
  // The rebuild runs; either PostgreSQL refuses the short replay or (the fault) the writer opens without the rows after the mark.
  const outcome = await b.waitFor('the rebuild to end', async () => {
    if (logsMention(/recovery ended before configured recovery target was reached/)) return 'refused';
    return (await writer()).state === 'available' ? 'opened' : null;
  }, 120_000);
  if (outcome === 'opened') {
    const rows = (await query<{ n: number }>('SELECT count(*)::int AS n FROM kept'))[0]!.n;
    assert.fail(`the rebuilt writer opened with ${rows} of 151 acknowledged rows`);
  }
  for (let i = 0; i < 10; i++) {
    assert.notEqual((await writer()).state, 'available', 'the writer opened a database missing acknowledged commits');
    await sleep(1000);
  }
});

function compareLsn(a: string, c: string): number {
  const v = (s: string): bigint => {
    const [hi, lo] = s.split('/');
    return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
  };
  const d = v(a) - v(c);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** True when some log under the home (Borealis's or an instance's PostgreSQL log) matches. */
function logsMention(pattern: RegExp): boolean {
  const walk = (dir: string): boolean => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'storage' && walk(p)) return true;
      } else if (e.name.endsWith('.log') || e.name === 'supervisor.out') {
        if (pattern.test(fs.readFileSync(p, 'utf8'))) return true;
      }
    }
    return false;
  };
  return walk(b.home);
}
