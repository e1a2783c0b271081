// PostgreSQL refuses to run as root. When Borealis runs as root it runs
// each cluster's postgres as an unprivileged system user of its own,
// creating it if needed, and makes sure that user can reach the binaries
// and its data (and no other cluster's).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chownTreeNoFollow } from '../util/no-follow.js';

export interface ProcessIdentity {
  readonly uid: number;
  readonly gid: number;
  readonly name: string;
}

export class ServiceUserError extends Error {
  override readonly name = 'ServiceUserError';
}

/** Null when Borealis does not run as root: postgres then runs as we do. */
export function ensureServiceUser(name: string): ProcessIdentity | null {
  if (process.getuid?.() !== 0) return null;
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) throw new ServiceUserError(`invalid service user name "${name}"`);
  let ids = lookup(name);
  if (!ids) {
    try {
      execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name], { stdio: 'pipe' });
    } catch (err) {
      throw new ServiceUserError(`cannot create the system user "${name}" that runs PostgreSQL: ${(err as Error).message}`);
    }
    ids = lookup(name);
    if (!ids) throw new ServiceUserError(`system user "${name}" was created but cannot be found`);
  }
  return { ...ids, name };
}

/** Linux's limit on user names (useradd refuses longer ones). */
const USER_NAME_LENGTH_MAX = 32;

/**
 * The system user a cluster's PostgreSQL runs as: `<base>-<cluster>`, or,
 * when that is too long for a user name, a prefix of it, `--` and a hash of
 * the whole cluster name. Cluster names never hold `--`, so no cluster's
 * plain name can be another's hashed one: one user per cluster.
 */
export function clusterServiceUserName(base: string, cluster: string): string {
  const whole = `${base}-${cluster}`;
  if (whole.length <= USER_NAME_LENGTH_MAX) return whole;
  const hash = createHash('sha256').update(cluster).digest('hex').slice(0, 8);
  return `${whole.slice(0, USER_NAME_LENGTH_MAX - hash.length - 2).replace(/-+$/, '')}--${hash}`;
}

function lookup(name: string): { uid: number; gid: number } | null {
  const r = spawnSync('id', [name], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const uid = /uid=(\d+)/.exec(r.stdout);
  const gid = /gid=(\d+)/.exec(r.stdout);
  return uid && gid ? { uid: Number(uid[1]), gid: Number(gid[1]) } : null;
}

/** True when `who` may do `test <flag> target` (e.g. -x on a binary, -w on a dir). */
export function canAccess(who: ProcessIdentity | null, flag: '-x' | '-w' | '-r', target: string): boolean {
  if (!who) {
    const mode = flag === '-x' ? fs.constants.X_OK : flag === '-w' ? fs.constants.W_OK : fs.constants.R_OK;
    try {
      fs.accessSync(target, mode);
      return true;
    } catch {
      return false;
    }
  }
  return spawnSync('test', [flag, target], { uid: who.uid, gid: who.gid }).status === 0;
}

/** Gives a directory (and everything in it) to `who`, unless it owns it already. */
export function ensureOwned(who: ProcessIdentity | null, dir: string): boolean {
  if (!who || !fs.existsSync(dir)) return false;
  // The top first and pg_control too: a migration cut short (the top is chowned first) is finished next time.
  const control = path.join(dir, 'data', 'global', 'pg_control');
  if (fs.statSync(dir).uid === who.uid && (!fs.existsSync(control) || fs.statSync(control).uid === who.uid)) return false;
  chownTree(who, dir);
  return true;
}

/**
 * Gives a directory (and everything in it) to the service user, following
 * no link: the tree may be one that user could change meanwhile.
 */
export function chownTree(who: ProcessIdentity | null, dir: string): void {
  if (who) chownTreeNoFollow(dir, who);
}
