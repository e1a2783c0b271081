// The PostgreSQL installation clusters run from. For the embedded engine it
// is Borealis's own copy in the home (PostgreSQL finds its share and lib
// directories relative to the binary it runs, so a copy is a complete,
// separate installation): there a short list of extensions that PostgreSQL
// ships as superuser-only is marked `trusted`, so that a cluster's master
// user — not a superuser — can `CREATE EXTENSION` them, as Aurora's
// rds_superuser can. An engine configured by path is used as it is.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../util/logger.js';
import type { EngineBinaries } from './binaries.js';

/**
 * Extensions PostgreSQL ships untrusted that a cluster's master user may
 * create (its own, on Aurora PostgreSQL too). Each either checks privileges
 * in its functions (pageinspect, pg_walinspect, amcheck revoke or require
 * superuser/predefined roles themselves) or grants nothing beyond reading
 * statistics, and none runs code or reaches files as the server. Left out:
 * untrusted languages, file_fdw and adminpack (server files), pg_surgery
 * (damages data on purpose), postgres_fdw (its wrapper, owned by the
 * bootstrap superuser, would be unusable without a grant only it can make).
 */
export const EXTRA_TRUSTED_EXTENSIONS: readonly string[] = [
  'amcheck',
  'autoinc',
  'bloom',
  'dblink',
  'dict_xsyn',
  'earthdistance',
  'insert_username',
  'intagg',
  'moddatetime',
  'pageinspect',
  'pg_buffercache',
  'pg_freespacemap',
  'pg_prewarm',
  'pg_stat_statements',
  'pg_visibility',
  'pg_walinspect',
  'pgrowlocks',
  'pgstattuple',
  'refint',
  'sslinfo',
];

const MARK = '# Borealis: creatable by a cluster\'s master user (rds_superuser), as on Aurora PostgreSQL';

/**
 * Makes (once) Borealis's copy of the embedded installation under
 * `engineDir`, with the extensions above marked trusted, and returns its
 * binaries. The copy's name covers the source and the list, so a new
 * engine or list gets a new copy; it is built aside and renamed into place.
 */
export function prepareEngineTree(found: EngineBinaries, engineDir: string, log: Logger): EngineBinaries {
  const root = path.dirname(found.binDir);
  const tag = createHash('sha256').update(JSON.stringify({ root: fs.realpathSync(root), version: found.version, trusted: EXTRA_TRUSTED_EXTENSIONS })).digest('hex').slice(0, 10);
  const copy = path.join(engineDir, `postgresql-${found.version}-${tag}`);
  if (!fs.existsSync(path.join(copy, 'bin', 'postgres'))) {
    log.info('preparing the PostgreSQL installation clusters run from', { from: root, to: copy });
    fs.mkdirSync(engineDir, { recursive: true, mode: 0o755 });
    const partial = `${copy}.partial`;
    fs.rmSync(partial, { recursive: true, force: true });
    fs.cpSync(root, partial, { recursive: true, verbatimSymlinks: true });
    const marked = markTrusted(path.join(partial, 'share', 'postgresql', 'extension'), EXTRA_TRUSTED_EXTENSIONS);
    fs.renameSync(partial, copy);
    log.info('PostgreSQL installation ready', { at: copy, trustedExtensionsAdded: marked });
  }
  return { ...found, binDir: path.join(copy, 'bin') };
}

/** Adds `trusted = true` to each named extension's control file that lacks a trusted line; returns those marked. */
export function markTrusted(extensionDir: string, names: readonly string[]): string[] {
  const marked: string[] = [];
  for (const name of names) {
    const file = path.join(extensionDir, `${name}.control`);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    if (/^\s*trusted\s*=/m.test(text)) continue;
    fs.writeFileSync(file, `${text.endsWith('\n') ? text : `${text}\n`}${MARK}\ntrusted = true\n`);
    marked.push(name);
  }
  return marked;
}

/** True when the installation has the library a preloaded extension needs. */
export function hasLibrary(binaries: EngineBinaries, name: string): boolean {
  const root = path.dirname(binaries.binDir);
  return [path.join(root, 'lib', 'postgresql', `${name}.so`), path.join(root, 'lib', `${name}.so`)].some((f) => fs.existsSync(f));
}
