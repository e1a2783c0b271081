// One storage node: a process (a host, in production) in a zone that keeps
// WAL and base backups for one cluster. It streams WAL from the writer its
// term names, serves WAL and backups over HTTP, and repairs itself from its
// peers when it finds WAL missing or failing its checksums.
import { timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { WalPageChecker, formatLsn, parseLsn, parseWalFileName, segmentOf, segmentStart, walFileName } from '../pgwire/replication.js';
import type { Logger } from '../util/logger.js';
import { listenOn } from '../util/listen.js';
import { readBounded } from '../util/read-bounded.js';
import { BackupRejected, BackupStore, type BackupInfo } from './backup-store.js';
import { StorageNodeClient, type NodeStatus } from './node-client.js';
import { acceptTerm, type NodeTerm, type WriterRef } from './protocol.js';
import { CorruptSegment, SegmentStore, writeDurably } from './segment-store.js';
import { WalReceiver } from './wal-receiver.js';

export interface StorageNodeOptions {
  readonly name: string;
  readonly zone: string;
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly backupBytesMax: number;
  readonly requestTimeoutMs: number;
  readonly log: Logger;
}

interface PersistedNode {
  term: number;
  writer: WriterRef | null;
  systemId: string | null;
  credentials: { user: string; password: string } | null;
  peers: Array<{ name: string; url: string }>;
  retainFromLsn: string | null;
}

const JSON_BODY_BYTES_MAX = 64 * 1024;
const EMPTY: PersistedNode = { term: 0, writer: null, systemId: null, credentials: null, peers: [], retainFromLsn: null };

export class StorageNode {
  private readonly store: SegmentStore;
  private readonly backups: BackupStore;
  private readonly receiver: WalReceiver;
  private persisted: PersistedNode;
  private server: http.Server | null = null;
  /** Segments found corrupt on read; repaired before the next stream. */
  private readonly suspect = new Set<string>();
  private repairing: Promise<boolean> | null = null;
  url = '';

  constructor(private readonly options: StorageNodeOptions) {
    fs.mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    this.store = new SegmentStore(path.join(options.dir, 'wal'));
    this.backups = new BackupStore(path.join(options.dir, 'backups'));
    this.persisted = this.load();
    this.receiver = new WalReceiver(
      this.store,
      {
        termState: () => ({ term: this.persisted.term, writer: this.persisted.writer, systemId: this.persisted.systemId, credentials: this.persisted.credentials }),
        adoptSystem: (systemId) => this.save({ ...this.persisted, systemId }),
        catchUpFromPeers: () => this.repair('the writer no longer has the WAL this node needs'),
        segmentCorrupt: (timeline, segment) => {
          // The chain's file for the segment may be an older timeline's: every held one at or below is suspect.
          const held = this.store.listSegments().filter((h) => h.segment === segment && h.timeline <= timeline);
          for (const h of held.length > 0 ? held : [{ timeline, segment }]) this.suspect.add(`${h.timeline}:${h.segment}`);
        },
        beforeSession: async () => {
          if (this.suspect.size > 0 || (!this.store.state && this.persisted.peers.length > 0)) await this.repair(this.store.state ? 'segments failed their checksums' : 'this node holds no WAL');
        },
      },
      { name: options.name, connectTimeoutMs: options.requestTimeoutMs, statusIntervalMs: 1000, retryMsMax: 2000 },
      options.log.child('receiver'),
    );
  }

  async start(): Promise<void> {
    const pos = this.store.open();
    const bad = this.store.scrub();
    for (const b of bad) {
      this.options.log.error('WAL segment fails its checksum; it will be repaired from peers', { timeline: b.timeline, segment: b.segment, page: b.page });
      this.suspect.add(`${b.timeline}:${b.segment}`);
    }
    this.options.log.info('storage node starting', { name: this.options.name, zone: this.options.zone, term: this.persisted.term, flush: pos ? formatLsn(pos.flushLsn) : null });
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await listenOn(this.server, this.options.port, this.options.host);
    const address = this.server.address();
    this.url = `http://${this.options.host}:${typeof address === 'object' && address ? address.port : this.options.port}`;
    this.receiver.start();
  }

  async stop(): Promise<void> {
    await this.receiver.stop();
    this.store.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  status(): NodeStatus {
    const pos = this.store.state;
    const writerEnd = this.receiver.writerEndLsn;
    return {
      name: this.options.name,
      zone: this.options.zone,
      state: this.repairing ? 'repairing' : this.receiver.state,
      term: this.persisted.term,
      systemId: this.persisted.systemId,
      timeline: pos?.timeline ?? 0,
      startLsn: pos ? formatLsn(pos.startLsn) : null,
      flushLsn: pos ? formatLsn(pos.flushLsn) : null,
      writerEndLsn: writerEnd !== null ? formatLsn(writerEnd) : null,
      lagBytes: writerEnd !== null && pos ? Math.max(0, Number(writerEnd - pos.flushLsn)) : null,
      diskBytes: this.store.diskBytes() + this.backups.diskBytes(),
      backups: this.backups.list().length,
      lastError: this.receiver.lastError,
      walBytesReceived: this.receiver.stats.bytesReceived,
      flushes: this.receiver.stats.flushes,
      flushMsAvg: this.receiver.stats.flushes ? Math.round((this.receiver.stats.flushMsTotal / this.receiver.stats.flushes) * 1000) / 1000 : 0,
    };
  }

  private load(): PersistedNode {
    try {
      return { ...EMPTY, ...(JSON.parse(fs.readFileSync(path.join(this.options.dir, 'node.json'), 'utf8')) as PersistedNode) };
    } catch {
      return { ...EMPTY };
    }
  }

  /** The term is on disk before any answer that depends on it is sent. */
  private save(next: PersistedNode): void {
    if (next.term < this.persisted.term) throw new Error(`term must not go back (${this.persisted.term} → ${next.term})`);
    writeDurably(path.join(this.options.dir, 'node.json'), Buffer.from(JSON.stringify(next)), 0);
    this.persisted = next;
  }

  private peerClients(): StorageNodeClient[] {
    return this.persisted.peers.filter((p) => p.name !== this.options.name).map((p) => new StorageNodeClient(p.url, this.options.token, this.options.requestTimeoutMs));
  }

  /** Fills missing or corrupt WAL (and, when it has none, a base backup) from peers. */
  repair(reason: string): Promise<boolean> {
    this.repairing ??= this.repairOnce(reason).finally(() => (this.repairing = null));
    return this.repairing;
  }

  private async repairOnce(reason: string): Promise<boolean> {
    const log = this.options.log;
    const peers = this.peerClients();
    const statuses = (await Promise.allSettled(peers.map((p) => p.status()))).map((r, i) => (r.status === 'fulfilled' ? { client: peers[i]!, status: r.value } : null)).filter((x) => x !== null);
    const usable = statuses.filter((s) => s.status.systemId !== null && (this.persisted.systemId === null || s.status.systemId === this.persisted.systemId) && s.status.flushLsn !== null);
    if (usable.length === 0) {
      log.warn('no peer can help repair', { reason });
      return false;
    }
    usable.sort((a, b) => b.status.timeline - a.status.timeline || Number(parseLsn(b.status.flushLsn!) - parseLsn(a.status.flushLsn!)));
    const source = usable[0]!;
    log.info('repairing from a peer', { reason, peer: source.status.name });
    const held = new Map(this.store.listSegments().map((h) => [`${h.timeline}:${h.segment}`, h.validBytes]));
    const retainSeg = this.persisted.retainFromLsn ? segmentOf(parseLsn(this.persisted.retainFromLsn)) : 0;
    const { files, histories } = await source.client.listWal();
    for (const tli of histories) if (this.store.readHistory(tli) === null) this.store.saveHistory(tli, await source.client.history(tli));
    const systemId = BigInt(source.status.systemId!);
    let added = 0;
    // Newest first: a crash midway leaves what was installed joined to what
    // the node already held after it, so the WAL it acknowledged still runs
    // unbroken; oldest first would leave a hole before it, and the node
    // would count less than it acknowledged.
    const newestFirst = [...files].sort((a, b) => b.segment - a.segment || b.timeline - a.timeline);
    for (const f of newestFirst) {
      const key = `${f.timeline}:${f.segment}`;
      if (f.segment < retainSeg || f.validBytes === 0) continue;
      if (!this.suspect.has(key) && (held.get(key) ?? 0) >= f.validBytes) continue;
      const bytes = await source.client.walFile(f.name);
      // The same check as for streamed WAL, before anything is written.
      new WalPageChecker({ systemId, timeline: f.timeline }).check(segmentStart(f.segment), bytes);
      this.store.installSegment(f.timeline, f.segment, bytes);
      this.suspect.delete(key);
      added++;
    }
    // What this peer does not hold it cannot mend: forgotten until a read finds it bad again, so that repairs do not repeat for nothing.
    const listed = new Set(files.map((f) => `${f.timeline}:${f.segment}`));
    for (const key of this.suspect) if (!listed.has(key)) this.suspect.delete(key);
    if (this.persisted.systemId === null) this.save({ ...this.persisted, systemId: source.status.systemId });
    if (this.backups.list().length === 0) await this.copyBackups(statuses.map((x) => x.client));
    const pos = this.store.open();
    log.info('repair finished', { segments: added, flush: pos ? formatLsn(pos.flushLsn) : null });
    return added > 0;
  }

  /** A node that lost its backups takes a verified copy of each one some peer holds. */
  private async copyBackups(peers: StorageNodeClient[]): Promise<void> {
    const have = new Set(this.backups.list().map((b) => b.id));
    for (const peer of peers) {
      let theirs: BackupInfo[];
      try {
        theirs = await peer.backups();
      } catch {
        continue;
      }
      for (const b of theirs) {
        if (have.has(b.id) || (this.persisted.systemId !== null && b.systemId !== this.persisted.systemId)) continue;
        const tmp = path.join(os.tmpdir(), `borealis-${this.options.name}-${b.id}.tar`);
        try {
          await peer.getBackup(b.id, tmp);
          await this.backups.receive(b, fs.createReadStream(tmp), this.options.backupBytesMax);
          have.add(b.id);
          this.options.log.info('base backup copied from a peer', { backup: b.id });
        } catch (err) {
          this.options.log.warn('could not copy a base backup from a peer', { backup: b.id, error: (err as Error).message });
        } finally {
          fs.rmSync(tmp, { force: true });
        }
      }
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      if (!this.authorized(req)) return reply(401, { error: 'Unauthorized', message: 'missing or wrong storage token' });
      const url = new URL(req.url ?? '/', 'http://node');
      const parts = url.pathname.split('/').filter(Boolean);
      const route = `${req.method} /${parts[0] ?? ''}`;
      switch (route) {
        case 'GET /status':
          return reply(200, this.status());
        case 'POST /term':
          return reply(...this.onTerm(await readJson(req)));
        case 'POST /wake':
          this.receiver.wake();
          return reply(200, { ok: true });
        case 'POST /repair':
          return reply(200, { added: await this.repair('requested') });
        case 'GET /wal':
          if (parts.length === 1) {
            const files = this.store.listSegments().map((h) => ({ ...h, name: walFileName(h.timeline, h.segment) }));
            return reply(200, { files, histories: this.store.listHistories() });
          }
          return this.serveWal(parts[1] ?? '', res, reply);
        case 'GET /history': {
          const text = this.store.readHistory(Number(parts[1]));
          if (text === null) return reply(404, { error: 'NotFound', message: 'no such timeline history' });
          res.writeHead(200, { 'content-type': 'text/plain' });
          return void res.end(text);
        }
        case 'GET /backups':
          if (parts.length === 1) return reply(200, this.backups.list());
          return this.serveBackup(parts[1] ?? '', res, reply);
        case 'PUT /backups':
          return this.receiveBackup(parts[1] ?? '', req, reply);
        case 'DELETE /backups':
          this.backups.remove(parts[1] ?? '');
          return reply(200, { ok: true });
        default:
          return reply(404, { error: 'NotFound', message: `no route ${route}` });
      }
    } catch (err) {
      if (err instanceof BadRequest) return reply(400, { error: 'BadRequest', message: err.message });
      this.options.log.error('request failed', { url: req.url, error: (err as Error).message });
      if (!res.headersSent) reply(500, { error: 'InternalError', message: 'storage node error' });
      else res.destroy();
    }
  }

  private onTerm(body: unknown): [number, unknown] {
    const b = body as Partial<PersistedNode> & { term?: unknown; writer?: unknown };
    const writer = b.writer as WriterRef | undefined;
    if (typeof b.term !== 'number' || !Number.isInteger(b.term) || b.term < 1 || !writer || typeof writer.host !== 'string' || typeof writer.port !== 'number') throw new BadRequest('term (a positive integer), writer.host and writer.port are required');
    if (!b.credentials || typeof b.credentials.user !== 'string' || typeof b.credentials.password !== 'string') throw new BadRequest('credentials.user and credentials.password are required');
    if (!Array.isArray(b.peers) || b.peers.some((p) => typeof p?.name !== 'string' || typeof p?.url !== 'string')) throw new BadRequest('peers must be a list of {name, url}');
    if (b.retainFromLsn !== null && b.retainFromLsn !== undefined) parseLsnOr400(b.retainFromLsn);
    const current: NodeTerm = { term: this.persisted.term, writer: this.persisted.writer, systemId: this.persisted.systemId };
    const decision = acceptTerm(current, b.term, { host: writer.host, port: writer.port });
    if (!decision.ok) {
      this.options.log.warn('refusing a term', { reason: decision.reason });
      return [409, { error: 'StaleTerm', message: decision.reason, term: this.persisted.term }];
    }
    const changed = b.term !== this.persisted.term || this.persisted.writer?.host !== writer.host || this.persisted.writer?.port !== writer.port;
    this.save({ ...this.persisted, term: b.term, writer: decision.value.writer, credentials: b.credentials, peers: b.peers, retainFromLsn: b.retainFromLsn ?? null });
    this.pruneWal();
    if (changed) {
      this.options.log.info('following a writer', { term: b.term, writer: `${writer.host}:${writer.port}` });
      // Drops the old writer's stream before answering: this is the fence.
      this.receiver.wake();
    }
    return [200, this.status()];
  }

  /** Drops WAL from before the oldest base backup the control plane keeps. */
  private pruneWal(): void {
    const from = this.persisted.retainFromLsn;
    if (!from) return;
    const dropped = this.store.dropBefore(segmentOf(parseLsn(from)));
    if (dropped > 0) this.options.log.info('dropped WAL older than the oldest kept base backup', { segments: dropped, before: from });
  }

  private serveWal(name: string, res: http.ServerResponse, reply: (s: number, b: unknown) => void): void {
    const id = parseWalFileName(name);
    if (!id) return reply(400, { error: 'BadRequest', message: 'not a WAL file name' });
    try {
      const bytes = this.store.readSegment(id.timeline, id.segment);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
      res.end(bytes);
    } catch (err) {
      if (!(err instanceof CorruptSegment)) throw err;
      if (!err.message.includes('not held')) {
        this.options.log.error('refusing to serve a segment that fails its checksum', { segment: name });
        this.suspect.add(`${id.timeline}:${id.segment}`);
        this.receiver.wake();
        return reply(409, { error: 'CorruptSegment', message: err.message });
      }
      reply(404, { error: 'NotFound', message: err.message });
    }
  }

  private async serveBackup(id: string, res: http.ServerResponse, reply: (s: number, b: unknown) => void): Promise<void> {
    const found = await this.backups.verified(id);
    if (!found) return reply(404, { error: 'NotFound', message: `no verified backup ${id}` });
    res.writeHead(200, { 'content-type': 'application/x-tar', 'content-length': found.info.bytes });
    fs.createReadStream(found.file).pipe(res);
  }

  private async receiveBackup(id: string, req: http.IncomingMessage, reply: (s: number, b: unknown) => void): Promise<void> {
    let info: BackupInfo;
    try {
      info = JSON.parse(String(req.headers['x-borealis-backup'] ?? '')) as BackupInfo;
    } catch {
      return reply(400, { error: 'BadRequest', message: 'x-borealis-backup must describe the backup' });
    }
    if (info.id !== id || !BackupStore.validId(id) || typeof info.sha256 !== 'string' || typeof info.bytes !== 'number') return reply(400, { error: 'BadRequest', message: 'backup description does not match' });
    if (this.persisted.systemId !== null && info.systemId !== this.persisted.systemId) {
      this.options.log.error('refusing a base backup of another system', { backup: id, systemId: info.systemId });
      return reply(409, { error: 'WrongSystem', message: `backup belongs to system ${info.systemId}` });
    }
    try {
      await this.backups.receive(info, req, this.options.backupBytesMax);
    } catch (err) {
      if (err instanceof BackupRejected) {
        this.options.log.error('refusing a base backup', { backup: id, reason: err.message });
        return reply(400, { error: 'BadBackup', message: err.message });
      }
      throw err;
    }
    this.options.log.info('base backup stored', { backup: id, bytes: info.bytes });
    reply(200, { ok: true });
  }

  private authorized(req: http.IncomingMessage): boolean {
    const got = Buffer.from(String(req.headers.authorization ?? ''));
    const want = Buffer.from(`Bearer ${this.options.token}`);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

class BadRequest extends Error {}

function parseLsnOr400(text: unknown): bigint {
  try {
    return parseLsn(String(text));
  } catch {
    throw new BadRequest('retainFromLsn must be an LSN such as 0/3000000');
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const body = await readBounded(req, JSON_BODY_BYTES_MAX, () => new BadRequest(`request body larger than ${JSON_BODY_BYTES_MAX} bytes`));
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new BadRequest('request body is not JSON');
  }
}
