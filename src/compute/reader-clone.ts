// A reader's data directory, cloned from its writer: a physical replication
// slot is created first (so the writer keeps every WAL byte the reader will
// need from the backup's start), then a base backup is streamed over the
// replication protocol on the writer's private socket and unpacked, and the
// directory is marked a standby. The reader then streams from the slot.
import fs from 'node:fs';
import path from 'node:path';
import { RECOVERY_CONF } from '../engine/postgres-server.js';
import { chownTree, type ProcessIdentity } from '../engine/service-user.js';
import { baseBackupToFile, unpackBaseBackup } from '../storage/base-backup-file.js';
import { ReplicationClient } from '../storage/replication-client.js';
import type { Logger } from '../util/logger.js';
import { stagingFor, writeFileNoFollow } from '../util/no-follow.js';

export interface WriterSocket {
  readonly socketDir: string;
  readonly port: number;
  readonly superuser: string;
}

/** The slot a reader streams from, named after it (slot names allow [a-z0-9_]). */
export function readerSlotName(instanceId: string): string {
  return instanceId.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

export async function cloneWriter(writer: WriterSocket, readerId: string, dataDir: string, identity: ProcessIdentity | null, log: Logger, timeoutMs: number): Promise<void> {
  const slot = readerSlotName(readerId);
  const client = await ReplicationClient.connect({ host: writer.socketDir, port: writer.port, user: writer.superuser, password: '', applicationName: `${readerId}-clone` }, timeoutMs);
  // The instance directory is new for a new reader; it and the data directory belong to the service user.
  fs.mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o700 });
  chownTree(identity, path.dirname(dataDir));
  const tar = stagingFor(dataDir, 'clone.tar');
  // Built aside and renamed into place whole: a clone cut short (a crash)
  // leaves only the staging directory, never a data directory to start.
  const staging = stagingFor(dataDir, 'clone');
  fs.rmSync(staging, { recursive: true, force: true });
  // Where an older Borealis built it (inside the instance directory).
  fs.rmSync(`${dataDir}.clone`, { recursive: true, force: true });
  fs.rmSync(`${dataDir}.clone.tar`, { force: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
  try {
    // A slot left by an earlier clone of this reader (or made for it by a
    // writer that just started) keeps WAL from another position: start afresh.
    for (let attempt = 1; ; attempt++) {
      await client.query(`DROP_REPLICATION_SLOT ${slot}`).catch(() => undefined);
      try {
        await client.query(`CREATE_REPLICATION_SLOT ${slot} PHYSICAL RESERVE_WAL`);
        break;
      } catch (err) {
        if (attempt >= 3 || !/already exists/.test((err as Error).message)) throw err;
      }
    }
    log.info('cloning the writer for a reader', { reader: readerId, slot });
    let lastReport = Date.now();
    const { bytes } = await baseBackupToFile(client, readerId, tar, (_chunk, bytesSoFar) => {
      if (Date.now() - lastReport > 2_000) {
        lastReport = Date.now();
        log.info('cloning', { reader: readerId, bytes: bytesSoFar });
      }
    });
    await unpackBaseBackup(tar, staging);
    writeFileNoFollow(path.join(staging, 'standby.signal'), '', 0o600);
    // A rebuilt writer's recovery target, should a backup ever carry one, would stop a standby's replay.
    fs.rmSync(path.join(staging, RECOVERY_CONF), { force: true });
    chownTree(identity, staging);
    fs.renameSync(staging, dataDir);
    log.info('reader cloned', { reader: readerId, bytes });
  } finally {
    fs.rmSync(tar, { force: true });
    fs.rmSync(staging, { recursive: true, force: true });
    client.close();
  }
}
