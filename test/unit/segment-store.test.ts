import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { WAL_PAGE_BYTES, WAL_SEGMENT_BYTES, formatLsn, segmentStart, walFileName } from '../../src/pgwire/replication.js';
import { CorruptSegment, SegmentStore } from '../../src/storage/segment-store.js';
import { fakeWal } from '../helpers/wal.js';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-store-'));
const SEG = BigInt(WAL_SEGMENT_BYTES);

test('written and flushed WAL survives a reopen; unflushed WAL does not count', async () => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  const wal = fakeWal(SEG, 3 * WAL_PAGE_BYTES + 100);
  store.write(SEG, wal.subarray(0, 5000));
  store.write(SEG + 5000n, wal.subarray(5000, 3 * WAL_PAGE_BYTES + 50));
  assert.equal(await store.flush(), SEG + BigInt(3 * WAL_PAGE_BYTES + 50));
  // Written but never flushed: its checksum entries never reach the disk.
  store.write(SEG + BigInt(3 * WAL_PAGE_BYTES + 50), wal.subarray(3 * WAL_PAGE_BYTES + 50));
  store.close();
  const again = new SegmentStore(dir);
  const pos = again.open();
  assert.deepEqual(pos, { timeline: 1, startLsn: SEG, flushLsn: SEG + BigInt(3 * WAL_PAGE_BYTES + 50) });
  assert.deepEqual(again.readSegment(1, 1), wal.subarray(0, 3 * WAL_PAGE_BYTES + 50));
  assert.throws(() => again.write(SEG, Buffer.alloc(1)), /contiguous/);
  // Appending after a reopen continues the partial page's checksum.
  again.write(pos.flushLsn, wal.subarray(3 * WAL_PAGE_BYTES + 50));
  await again.flush();
  assert.deepEqual(new SegmentStore(dir).readSegment(1, 1), wal);
});

test('a torn rewrite of a page falls back to the entry that described it before', async () => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  const wal = fakeWal(SEG, 6000);
  store.write(SEG, wal.subarray(0, 3000));
  await store.flush();
  store.write(SEG + 3000n, wal.subarray(3000));
  await store.flush();
  store.close();
  // The newer entry now fails (as if its data write was lost); the older one still holds.
  const file = path.join(dir, walFileName(1, 1));
  const bytes = fs.readFileSync(file);
  bytes[4000] = bytes[4000]! ^ 0xff;
  fs.writeFileSync(file, bytes);
  const again = new SegmentStore(dir);
  assert.equal(again.open()?.flushLsn, SEG + 3000n);
});

test('a flipped byte is detected on read and by the scrub', async () => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  const wal = fakeWal(SEG, WAL_SEGMENT_BYTES + 4 * WAL_PAGE_BYTES);
  store.write(SEG, wal);
  await store.flush();
  store.close();
  const file = path.join(dir, walFileName(1, 1));
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from([0xa5]), 0, 1, 3 * WAL_PAGE_BYTES + 100);
  fs.closeSync(fd);
  const again = new SegmentStore(dir);
  assert.deepEqual(again.scrub(), [{ timeline: 1, segment: 1, page: 3 }]);
  assert.throws(() => again.readSegment(1, 1), CorruptSegment);
  // The verified prefix before the bad page can still be read.
  assert.equal(again.readSegment(1, 1, 3 * WAL_PAGE_BYTES).length, 3 * WAL_PAGE_BYTES);
  assert.equal(again.readSegment(1, 2).length, 4 * WAL_PAGE_BYTES);
  // A repaired copy replaces it.
  again.installSegment(1, 1, wal.subarray(0, WAL_SEGMENT_BYTES));
  assert.deepEqual(again.scrub(), []);
});

test('a new timeline starts with a copy of the old segment up to the switch point', async () => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  const wal = fakeWal(SEG, 20_000);
  store.write(SEG, wal);
  await store.flush();
  // Timeline 2 forks at 12,000: what timeline 1 held beyond it is left behind.
  store.begin(2, SEG + 12_000n);
  const tl2 = fakeWal(SEG + 12_000n, 9000, 2);
  store.write(SEG + 12_000n, tl2);
  await store.flush();
  store.close();
  const again = new SegmentStore(dir);
  assert.deepEqual(again.open(), { timeline: 2, startLsn: SEG, flushLsn: SEG + 21_000n });
  const seg = again.readSegment(2, 1);
  assert.deepEqual(seg.subarray(0, 12_000), wal.subarray(0, 12_000));
  assert.deepEqual(seg.subarray(12_000), tl2);
  assert.equal(again.readSegment(1, 1).length, 20_000);
  assert.ok(segmentStart(1) === SEG);
});

/** Timeline `child`'s history file text: its parent ended at `switchLsn`. */
const historyText = (parent: number, switchLsn: bigint): string => `${parent}\t${formatLsn(switchLsn)}\tno recovery target specified\n`;

test('what a dead branch held past the switch point is removed, and a reopen never counts it', async () => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  // Timeline 1 runs two and a half segments; timeline 2 forks early in the first.
  const tl1 = fakeWal(SEG, 2 * WAL_SEGMENT_BYTES + 5000);
  store.write(SEG, tl1);
  await store.flush();
  store.saveHistory(2, historyText(1, SEG + 12_000n));
  store.begin(2, SEG + 12_000n);
  const tl2 = fakeWal(SEG + 12_000n, 9000, 2);
  store.write(SEG + 12_000n, tl2);
  await store.flush();
  store.close();
  assert.deepEqual(
    fs.readdirSync(dir).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort(),
    [walFileName(1, 1), walFileName(2, 1)],
  );
  const again = new SegmentStore(dir);
  assert.deepEqual(again.open(), { timeline: 2, startLsn: SEG, flushLsn: SEG + 21_000n });
});

test('a crash between the switch segment\'s copy and the removal of the dead branch: the reopen follows the history', async () => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  store.write(SEG, fakeWal(SEG, 20_000));
  await store.flush();
  store.saveHistory(2, historyText(1, SEG + 12_000n));
  store.begin(2, SEG + 12_000n);
  store.write(SEG + 12_000n, fakeWal(SEG + 12_000n, 3000, 2));
  await store.flush();
  store.close();
  // As if the old branch's later segments had survived: timeline 1's segments 2 and 3, full.
  const side = new SegmentStore(dir);
  side.installSegment(1, 2, fakeWal(2n * SEG, WAL_SEGMENT_BYTES));
  side.installSegment(1, 3, fakeWal(3n * SEG, WAL_SEGMENT_BYTES));
  const again = new SegmentStore(dir);
  assert.deepEqual(again.open(), { timeline: 2, startLsn: SEG, flushLsn: SEG + 15_000n });
  // And new WAL lands right after what timeline 2 holds.
  again.write(SEG + 15_000n, fakeWal(SEG + 15_000n, 100, 2));
  assert.equal(await again.flush(), SEG + 15_100n);
});

test('moving back on the same timeline (to a page boundary) is durable: a reopen does not find the old end', async () => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  const wal = fakeWal(SEG, WAL_SEGMENT_BYTES + 20_000);
  store.write(SEG, wal);
  await store.flush();
  store.begin(1, SEG + BigInt(2 * WAL_PAGE_BYTES));
  store.close();
  const again = new SegmentStore(dir);
  assert.deepEqual(again.open(), { timeline: 1, startLsn: SEG, flushLsn: SEG + BigInt(2 * WAL_PAGE_BYTES) });
  assert.deepEqual(again.readSegment(1, 1), wal.subarray(0, 2 * WAL_PAGE_BYTES));
});

test('a segment that ends short ends the chain: a later one (a flush that never completed) is not counted', async () => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  store.write(SEG, fakeWal(SEG, 30_000));
  await store.flush();
  store.close();
  new SegmentStore(dir).installSegment(1, 2, fakeWal(2n * SEG, 4 * WAL_PAGE_BYTES));
  assert.deepEqual(new SegmentStore(dir).open(), { timeline: 1, startLsn: SEG, flushLsn: SEG + 30_000n });
});

test('held WAL runs unbroken from the first segment: a missing, empty or torn segment ends it, whatever lies past', () => {
  const full = (seg: number): Buffer => fakeWal(BigInt(seg) * SEG, WAL_SEGMENT_BYTES);
  const cases: Array<[string, (store: SegmentStore, dir: string) => void]> = [
    ['a missing segment', () => undefined],
    ['an empty segment file', (store) => store.installSegment(1, 2, Buffer.alloc(0))],
    [
      'a segment whose first page is torn',
      (store, dir) => {
        store.installSegment(1, 2, full(2).subarray(0, 3 * WAL_PAGE_BYTES));
        const file = path.join(dir, walFileName(1, 2));
        const bytes = fs.readFileSync(file);
        bytes[100] = bytes[100]! ^ 0xff;
        fs.writeFileSync(file, bytes);
      },
    ],
  ];
  for (const [what, make] of cases) {
    const dir = tmp();
    const store = new SegmentStore(dir);
    store.installSegment(1, 1, full(1));
    make(store, dir);
    store.installSegment(1, 3, full(3));
    assert.deepEqual(new SegmentStore(dir).open(), { timeline: 1, startLsn: SEG, flushLsn: 2n * SEG }, what);
  }
});

test('moving back to a segment boundary removes that segment first: a crash before the rest leaves a break', async () => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  store.write(SEG, fakeWal(SEG, 3 * WAL_SEGMENT_BYTES));
  await store.flush();
  store.begin(1, 2n * SEG);
  store.close();
  assert.deepEqual(fs.readdirSync(dir).filter((n) => /^[0-9A-F]{24}$/.test(n)), [walFileName(1, 1)]);
  // As if only the boundary segment had gone before a crash: the later one is past a break.
  new SegmentStore(dir).installSegment(1, 3, fakeWal(3n * SEG, WAL_SEGMENT_BYTES));
  assert.deepEqual(new SegmentStore(dir).open(), { timeline: 1, startLsn: SEG, flushLsn: 2n * SEG });
});

test('old WAL goes oldest segment first: a crash midway leaves what is held unbroken', async (t) => {
  const dir = tmp();
  const store = new SegmentStore(dir);
  store.begin(1, SEG);
  store.write(SEG, fakeWal(SEG, 4 * WAL_SEGMENT_BYTES + 1000));
  await store.flush();
  store.close();
  const end = 5n * SEG + 1000n;
  // The crash: the second removal never happens. The directory is listed
  // newest first, as a file system may: the order must not come from it.
  let removals = 0;
  const realRm = fs.rmSync;
  const realReaddir = fs.readdirSync;
  t.mock.method(fs, 'readdirSync', (...args: Parameters<typeof fs.readdirSync>) => {
    const names = realReaddir(...args);
    return args[0] === dir ? [...names].sort().reverse() : names;
  });
  t.mock.method(fs, 'rmSync', (...args: Parameters<typeof fs.rmSync>) => {
    if (++removals > 1) throw new Error('crashed');
    return realRm(...args);
  });
  assert.throws(() => new SegmentStore(dir).dropBefore(4), /crashed/);
  t.mock.restoreAll();
  assert.deepEqual(new SegmentStore(dir).open(), { timeline: 1, startLsn: 2n * SEG, flushLsn: end });
  const again = new SegmentStore(dir);
  again.open();
  assert.equal(again.dropBefore(4), 2);
  assert.deepEqual(new SegmentStore(dir).open(), { timeline: 1, startLsn: 4n * SEG, flushLsn: end });
});
