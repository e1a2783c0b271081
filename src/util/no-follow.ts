// File operations the supervisor (root) performs inside directories a
// cluster's own system user can write: its data directory, pg_wal, its
// instance directory. Code running as that user (a PostgreSQL bug, an
// extension) could leave a symbolic link where root is about to write,
// chown or append, and turn root's next step into a write to /etc/shadow or
// a chown of /etc. Every step here acts on the directory entry itself and
// never follows a link in the last component; a tree is walked through
// directory descriptors (/proc/self/fd), so swapping a directory for a link
// midway redirects nothing.
import fs from 'node:fs';
import path from 'node:path';

const { O_CREAT, O_EXCL, O_WRONLY, O_APPEND, O_NOFOLLOW, O_RDONLY, O_DIRECTORY } = fs.constants;

/** Refuses a path whose last component is a symbolic link. */
export class LinkRefused extends Error {
  override readonly name = 'LinkRefused';
}

/** A tree deeper than CHOWN_DEPTH_MAX, not walked. */
export class TreeTooDeep extends Error {
  override readonly name = 'TreeTooDeep';
}

/**
 * Writes `file` whole through a fresh temporary name (created exclusively,
 * never through a link) renamed over it: a link at `file` is replaced, not
 * followed. Owned by `owner` when given.
 */
export function writeFileNoFollow(file: string, data: string | Buffer, mode: number, owner?: { uid: number; gid: number } | null): void {
  refuseLinkedParents(file);
  const tmp = `${file}.borealis-tmp`;
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, mode);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/**
 * O_NOFOLLOW guards only a path's last component. The two directories above
 * a file root writes (pg_wal and the data directory, or the data and the
 * instance directory) are the cluster user's too, so either could be a link
 * to a directory root owns: both are refused when they are links. Above
 * them lies the instances directory, which is root's.
 */
function refuseLinkedParents(file: string): void {
  for (const dir of [path.dirname(file), path.dirname(path.dirname(file))]) {
    let linked = false;
    try {
      linked = fs.lstatSync(dir).isSymbolicLink();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (linked) throw new LinkRefused(`${dir} is a symbolic link; refusing to write beneath it`);
  }
}

/**
 * Where to build `dataDir` (an instance's data directory) before it is
 * renamed into place: beside the instance directory, in the instances
 * directory, which is root's. Inside the instance directory (its cluster's
 * user's) that user could swap the staging path for a link between root's
 * removing it and extracting into it.
 */
export function stagingFor(dataDir: string, suffix: string): string {
  const instanceDir = path.dirname(dataDir);
  return path.join(path.dirname(instanceDir), `.${path.basename(instanceDir)}.${suffix}`);
}

/**
 * Opens `file` for appending (creating it), never through a link. A link
 * found there is removed (the entry itself) and the open tried once more;
 * one planted again meanwhile is refused.
 */
export function openAppendNoFollow(file: string, mode: number): number {
  refuseLinkedParents(file);
  for (let attempt = 1; ; attempt++) {
    try {
      return fs.openSync(file, O_CREAT | O_WRONLY | O_APPEND | O_NOFOLLOW, mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOOP') throw err;
      if (attempt > 1) throw new LinkRefused(`${file} is a symbolic link; refusing to write through it`);
      fs.rmSync(file, { force: true });
    }
  }
}

/** Makes `dir` (a directory, not a link) owned by `owner`, creating it if missing. */
export function ownDirectory(dir: string, mode: number, owner: { uid: number; gid: number } | null): void {
  fs.mkdirSync(dir, { recursive: true, mode });
  const fd = openDirectory(dir);
  try {
    if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Gives a whole tree to `owner`: every directory through a descriptor
 * opened without following links, every other entry (links included) by
 * lchown, which changes a link itself and never what it points at.
 */
export function chownTreeNoFollow(dir: string, owner: { uid: number; gid: number }, depth = 0): void {
  // Each level holds a descriptor: a tree deeper than any data directory
  // (which the cluster's user could make to exhaust descriptors or the
  // stack) is refused rather than walked.
  if (depth > CHOWN_DEPTH_MAX) throw new TreeTooDeep(`${dir} lies more than ${CHOWN_DEPTH_MAX} directories deep; refusing to walk further`);
  const fd = openDirectory(dir);
  try {
    fs.fchownSync(fd, owner.uid, owner.gid);
    // The descriptor's own path: the directory opened, whatever `dir` names now.
    const here = `/proc/self/fd/${fd}`;
    for (const entry of fs.readdirSync(here, { withFileTypes: true })) {
      const p = path.join(here, entry.name);
      if (entry.isDirectory()) chownTreeNoFollow(p, owner, depth + 1);
      else fs.lchownSync(p, owner.uid, owner.gid);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Far deeper than PostgreSQL's data directory (about 5 levels) or a storage node's. */
export const CHOWN_DEPTH_MAX = 64;

function openDirectory(dir: string): number {
  try {
    return fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') throw new LinkRefused(`${dir} is not a directory (a symbolic link?); refusing to walk it`);
    throw err;
  }
}
