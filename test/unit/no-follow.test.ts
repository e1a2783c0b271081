// Root's file steps inside directories a cluster's user can write: a link
// planted where root writes, appends or chowns redirects nothing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CHOWN_DEPTH_MAX, LinkRefused, TreeTooDeep, chownTreeNoFollow, openAppendNoFollow, ownDirectory, stagingFor, writeFileNoFollow } from '../../src/util/no-follow.js';

const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;

function setup(): { dir: string; victim: string; victimDir: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-nofollow-'));
  const victim = path.join(root, 'victim');
  fs.writeFileSync(victim, 'secret', { mode: 0o600 });
  const victimDir = path.join(root, 'victim-dir');
  fs.mkdirSync(victimDir);
  fs.writeFileSync(path.join(victimDir, 'inside'), 'x');
  const dir = path.join(root, 'cluster');
  fs.mkdirSync(path.join(dir, 'data', 'pg_wal'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'data', 'PG_VERSION'), '17\n');
  return { dir, victim, victimDir };
}

test('a tree is given away without following links to a file or a directory', { skip: !isRoot && 'needs root to chown' }, () => {
  const { dir, victim, victimDir } = setup();
  fs.symlinkSync(victim, path.join(dir, 'data', 'postgresql.conf'));
  fs.symlinkSync(victimDir, path.join(dir, 'data', 'pg_wal', 'archive'));
  chownTreeNoFollow(dir, NOBODY);
  assert.equal(fs.statSync(path.join(dir, 'data', 'PG_VERSION')).uid, NOBODY.uid);
  assert.equal(fs.statSync(path.join(dir, 'data', 'pg_wal')).uid, NOBODY.uid);
  assert.equal(fs.lstatSync(path.join(dir, 'data', 'postgresql.conf')).uid, NOBODY.uid, 'the link itself changes hands');
  assert.equal(fs.statSync(victim).uid, 0, 'what a link points at is not chowned');
  assert.equal(fs.statSync(victimDir).uid, 0);
  assert.equal(fs.statSync(path.join(victimDir, 'inside')).uid, 0, 'a linked directory is not walked');
  // A tree whose root is a link is refused outright.
  const linked = path.join(path.dirname(dir), 'linked');
  fs.symlinkSync(victimDir, linked);
  assert.throws(() => chownTreeNoFollow(linked, NOBODY), LinkRefused);
  assert.throws(() => ownDirectory(linked, 0o700, NOBODY), LinkRefused);
  assert.equal(fs.statSync(victimDir).uid, 0);
});

test('a tree deeper than any data directory is refused, not walked until descriptors or the stack run out', { skip: !isRoot && 'needs root to chown' }, () => {
  const { dir } = setup();
  let deep = path.join(dir, 'data');
  for (let i = 0; i < CHOWN_DEPTH_MAX + 5; i++) deep = path.join(deep, 'd');
  fs.mkdirSync(deep, { recursive: true });
  assert.throws(() => chownTreeNoFollow(dir, NOBODY), TreeTooDeep);
  let shallow = path.join(dir, 'data');
  fs.rmSync(path.join(shallow, 'd'), { recursive: true });
  for (let i = 0; i < CHOWN_DEPTH_MAX - 2; i++) shallow = path.join(shallow, 'd');
  fs.mkdirSync(shallow, { recursive: true });
  chownTreeNoFollow(dir, NOBODY);
  assert.equal(fs.statSync(shallow).uid, NOBODY.uid, 'a tree within the bound is given away whole');
});

test('a whole-file write and an append replace a link instead of writing through it', () => {
  const { dir, victim } = setup();
  const conf = path.join(dir, 'data', 'postgresql.conf');
  fs.symlinkSync(victim, conf);
  writeFileNoFollow(conf, 'port = 5432\n', 0o600, isRoot ? NOBODY : null);
  assert.equal(fs.readFileSync(victim, 'utf8'), 'secret');
  assert.ok(!fs.lstatSync(conf).isSymbolicLink());
  assert.equal(fs.readFileSync(conf, 'utf8'), 'port = 5432\n');
  assert.equal(fs.statSync(conf).mode & 0o777, 0o600);
  if (isRoot) assert.equal(fs.statSync(conf).uid, NOBODY.uid);
  // A temporary name planted as a link beforehand is removed, not followed.
  fs.symlinkSync(victim, `${conf}.borealis-tmp`);
  writeFileNoFollow(conf, 'port = 5433\n', 0o600);
  assert.equal(fs.readFileSync(victim, 'utf8'), 'secret');
  assert.equal(fs.readFileSync(conf, 'utf8'), 'port = 5433\n');
  const log = path.join(dir, 'postgres.log');
  fs.symlinkSync(victim, log);
  const fd = openAppendNoFollow(log, 0o640);
  fs.writeSync(fd, 'appended');
  fs.closeSync(fd);
  assert.equal(fs.readFileSync(victim, 'utf8'), 'secret', 'the link is replaced by a file of its own');
  assert.ok(!fs.lstatSync(log).isSymbolicLink());
  assert.equal(fs.readFileSync(log, 'utf8'), 'appended');
  const fresh = openAppendNoFollow(path.join(dir, 'other.log'), 0o640);
  fs.writeSync(fresh, 'a');
  fs.closeSync(fresh);
});

test('a data directory is staged beside its instance directory, not inside it', () => {
  assert.equal(stagingFor('/home/b/instances/default-instance-1/data', 'restore'), '/home/b/instances/.default-instance-1.restore');
});

test('a write or an append beneath a linked directory (pg_wal, or the data directory above it) is refused', () => {
  const { dir, victimDir } = setup();
  const data = path.join(dir, 'data');
  fs.rmSync(path.join(data, 'pg_wal'), { recursive: true });
  fs.symlinkSync(victimDir, path.join(data, 'pg_wal'));
  assert.throws(() => writeFileNoFollow(path.join(data, 'pg_wal', '00000002.history'), 'x', 0o600), LinkRefused);
  assert.throws(() => openAppendNoFollow(path.join(data, 'pg_wal', 'log'), 0o600), LinkRefused);
  // The data directory itself a link: a file two levels below it is refused too.
  const moved = path.join(dir, 'data-real');
  fs.renameSync(data, moved);
  fs.mkdirSync(path.join(moved, 'sub'));
  fs.symlinkSync(moved, data);
  assert.throws(() => writeFileNoFollow(path.join(data, 'sub', 'postgresql.conf'), 'x', 0o600), LinkRefused);
  assert.deepEqual(fs.readdirSync(victimDir), ['inside'], 'nothing was written into the linked directory');
  assert.deepEqual(fs.readdirSync(path.join(moved, 'sub')), []);
});
