// Entry point of a storage node process (`borealis storage-node`).
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '../util/logger.js';
import { StorageNode } from './storage-node.js';

/**
 * Node flags a storage node process runs with. A small young generation:
 * with V8's default (up to 16 MB of semi-space) the node's small old
 * generation always looks near its limit, and V8 runs a full mark-compact
 * every few hundred milliseconds (14–22 ms each); with 1 MB, short-lived
 * per-message objects die in cheap scavenges instead. Measured with
 * `npm run bench:storage`: the six nodes' CPU per commit about 25% lower,
 * commit p99 about half (docs/benchmarks.md).
 */
export const STORAGE_NODE_V8_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/** Longest a stopping node waits for its stream and flushes to end. */
const STOP_MS_MAX = 5_000;

/** A base backup beyond this is refused; the supervisor passes its setting. */
const BACKUP_BYTES_MAX_DEFAULT = 64 * 1024 * 1024 * 1024;

export async function runStorageNode(opts: { name: string; zone: string; dir: string; port: number; host: string }): Promise<void> {
  const token = process.env.BOREALIS_STORAGE_TOKEN;
  if (!token) throw new Error('BOREALIS_STORAGE_TOKEN must be set');
  const log = new Logger([process.stdout], `storage:${opts.name}`);
  const node = new StorageNode({
    ...opts,
    dir: path.resolve(opts.dir),
    token,
    backupBytesMax: Number(process.env.BOREALIS_STORAGE_BACKUP_BYTES_MAX ?? BACKUP_BYTES_MAX_DEFAULT),
    requestTimeoutMs: Number(process.env.BOREALIS_STORAGE_REQUEST_TIMEOUT_MS ?? 5000),
    log,
  });
  await node.start();
  log.info('storage node ready', { url: node.url });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
    // Started by a supervisor, the node's stdin is a pipe from it: when the
    // supervisor dies (even by SIGKILL) the pipe closes and the node stops,
    // so that no node outlives it and holds its port against the next `up`.
    if (process.env.BOREALIS_STORAGE_PARENT_PIPE === '1') {
      process.stdin.on('data', () => undefined);
      process.stdin.once('close', resolve);
      process.stdin.once('end', resolve);
    }
  });
  // Bounded: a node whose WAL stream or flush hangs must still give up its
  // port to the next supervisor's node. What it had not flushed it had not
  // acknowledged either.
  const stopped = await Promise.race([node.stop().then(() => true), sleep(STOP_MS_MAX).then(() => false)]);
  if (stopped) log.info('storage node stopped');
  else log.warn('storage node did not stop in time; exiting anyway', { waitedMs: STOP_MS_MAX });
  process.exit(0);
}
