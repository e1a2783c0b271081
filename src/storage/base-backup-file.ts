// A base backup as a tar file, both ways: streamed from a writer over the
// replication protocol into a file (storage keeps these; a new reader is
// cloned from one), and unpacked into a fresh data directory.
import fs from 'node:fs';
import path from 'node:path';
import { runCommand } from '../util/run-command.js';
import type { BaseBackupResult, ReplicationClient } from './replication-client.js';

/**
 * BASE_BACKUP (fast checkpoint, no WAL, no manifest) of the default
 * tablespace into `file`, fsynced; `onChunk` sees every byte as it arrives.
 */
export async function baseBackupToFile(client: ReplicationClient, label: string, file: string, onChunk: (chunk: Buffer, bytesSoFar: number) => void): Promise<BaseBackupResult & { bytes: number }> {
  const fd = fs.openSync(file, 'w', 0o600);
  try {
    let bytes = 0;
    let archives = 0;
    const result = await client.baseBackup(`BASE_BACKUP ( LABEL '${label}', CHECKPOINT 'fast', WAL false, MANIFEST 'no' )`, {
      onArchive: () => {
        if (++archives > 1) throw new Error('tablespaces other than the default are not supported');
      },
      onData: (chunk) => {
        fs.writeSync(fd, chunk);
        bytes += chunk.length;
        onChunk(chunk, bytes);
      },
    });
    fs.fsyncSync(fd);
    return { ...result, bytes };
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces `dataDir` with the base backup in `tar`, with an empty pg_wal. */
export async function unpackBaseBackup(tar: string, dataDir: string): Promise<void> {
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  await runCommand('tar', ['-xf', tar, '-C', dataDir]);
  fs.mkdirSync(path.join(dataDir, 'pg_wal'), { recursive: true, mode: 0o700 });
}
