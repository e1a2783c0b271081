// Base backups a storage node keeps: one tar archive of the data directory
// (without WAL) per backup, beside a JSON description with its SHA-256. An
// archive is hashed as it arrives and again before it is served.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import { Transform } from 'node:stream';
import { writeDurably } from './segment-store.js';

export interface BackupInfo {
  readonly id: string;
  readonly systemId: string;
  readonly timeline: number;
  /** WAL from startLsn (the checkpoint's redo point) to endLsn makes it consistent. */
  readonly startLsn: string;
  readonly endLsn: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly createdAt: string;
}

export class BackupRejected extends Error {
  override readonly name = 'BackupRejected';
}

const ID_PATTERN = /^[a-z0-9-]{1,64}$/;

export class BackupStore {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  static validId(id: string): boolean {
    return ID_PATTERN.test(id);
  }

  list(): BackupInfo[] {
    const out: BackupInfo[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8')) as BackupInfo);
      } catch {
        // a torn description: the backup is not listed
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Receives an archive; it is kept only if its length and hash match. */
  async receive(info: BackupInfo, body: Readable, bytesMax: number): Promise<void> {
    if (!BackupStore.validId(info.id)) throw new BackupRejected('invalid backup id');
    const file = path.join(this.dir, `${info.id}.tar`);
    const tmp = `${file}.part`;
    const hash = createHash('sha256');
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > bytesMax) return done(new BackupRejected(`backup larger than ${bytesMax} bytes`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    const out = fs.createWriteStream(tmp, { mode: 0o600 });
    try {
      await pipeline(body, counter, out);
      if (bytes !== info.bytes) throw new BackupRejected(`backup has ${bytes} bytes, ${info.bytes} were announced`);
      if (hash.digest('hex') !== info.sha256) throw new BackupRejected('backup does not match its SHA-256');
      const fd = fs.openSync(tmp, 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(tmp, file);
      writeDurably(path.join(this.dir, `${info.id}.json`), Buffer.from(JSON.stringify(info)), 0);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
  }

  /** Checks the archive against its hash; null when it does not verify. */
  async verified(id: string): Promise<{ info: BackupInfo; file: string } | null> {
    const info = this.list().find((b) => b.id === id);
    if (!info) return null;
    const file = path.join(this.dir, `${id}.tar`);
    const hash = createHash('sha256');
    try {
      await pipeline(fs.createReadStream(file), hash as unknown as Writable);
    } catch {
      return null;
    }
    return hash.digest('hex') === info.sha256 ? { info, file } : null;
  }

  remove(id: string): void {
    fs.rmSync(path.join(this.dir, `${id}.json`), { force: true });
    fs.rmSync(path.join(this.dir, `${id}.tar`), { force: true });
  }

  diskBytes(): number {
    let total = 0;
    for (const name of fs.readdirSync(this.dir)) total += fs.statSync(path.join(this.dir, name)).size;
    return total;
  }
}
