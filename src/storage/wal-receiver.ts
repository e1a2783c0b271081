// A storage node's stream from the writer: connects as a physical standby,
// checks the writer's system and term, follows timeline switches, appends
// XLogData to the segment store and reports write/flush positions. Fsyncs
// are batched: one is in flight at a time and takes everything that arrived
// while the previous one ran (group commit). Keepalives are answered at once.
import { ProtocolViolation } from '../pgwire/frame-reader.js';
import { WalPageChecker, formatLsn, parseLsn, parseReplicationMessage, parseTimelineHistory, segmentOf, segmentStart, standbyStatusUpdate } from '../pgwire/replication.js';
import type { Logger } from '../util/logger.js';
import { acceptWriter, divergence, timelineOfPoint, type NodeTerm } from './protocol.js';
import { ReplicationClient, ReplicationError } from './replication-client.js';
import { CorruptSegment, type SegmentStore } from './segment-store.js';

export type ReceiverState = 'idle' | 'connecting' | 'streaming' | 'refused' | 'catching-up' | 'stopped';

export interface ReceiverHost {
  /** The node's term and writer, read at each connection attempt. */
  termState(): NodeTerm & { readonly credentials: { user: string; password: string } | null };
  /** Records the system identifier learned at first contact. */
  adoptSystem(systemId: string): void;
  /** Runs before each connection: pending repairs. */
  beforeSession(): Promise<void>;
  /** Fetches WAL the writer no longer has from peers; true if anything was added. */
  catchUpFromPeers(): Promise<boolean>;
  /** A held segment failed its checks while the stream was set up: it is repaired before the next session. */
  segmentCorrupt(timeline: number, segment: number): void;
}

export interface ReceiverOptions {
  readonly name: string;
  readonly connectTimeoutMs: number;
  readonly statusIntervalMs: number;
  readonly retryMsMax: number;
}

const RETRY_MS_MIN = 100;
const SQLSTATE_DUPLICATE_OBJECT = '42710';
const SQLSTATE_UNDEFINED_FILE = '58P01';

export class WalReceiver {
  private stateValue: ReceiverState = 'idle';
  private stopped = false;
  private client: ReplicationClient | null = null;
  private wakeUp: (() => void) | null = null;
  private flushing = false;
  /** Set when an fsync failed: written but unrecorded bytes must be re-read from disk. */
  private flushFailed = false;
  private serverEnd: bigint | null = null;
  lastError: string | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: SegmentStore,
    private readonly host: ReceiverHost,
    private readonly options: ReceiverOptions,
    private readonly log: Logger,
  ) {}

  get state(): ReceiverState {
    return this.stateValue;
  }

  /** The writer's end of WAL as last reported, for lag. */
  get writerEndLsn(): bigint | null {
    return this.serverEnd;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Drops the current connection and reconnects at once (new term, resume). */
  wake(): void {
    this.client?.close();
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.running;
    this.stateValue = 'stopped';
  }

  private async loop(): Promise<void> {
    let retryMs = RETRY_MS_MIN;
    while (!this.stopped) {
      const began = Date.now();
      try {
        await this.host.beforeSession();
        await this.session();
        retryMs = RETRY_MS_MIN;
      } catch (err) {
        const message = (err as Error).message;
        // Bytes that fail the WAL checks are refused loudly; nothing of them was written.
        if (err instanceof ProtocolViolation) this.log.error('refusing WAL from the writer', { error: message });
        else if (err instanceof CorruptSegment) {
          // Moving onto the writer's timeline needs this segment's verified
          // bytes: without a repair every retry would fail the same way.
          this.log.error('a held segment fails its checks; repairing it from peers before streaming again', { error: message });
          this.host.segmentCorrupt(err.timeline, err.segment);
        } else if (message !== this.lastError) this.log.warn('WAL stream ended', { error: message });
        this.lastError = message;
        if (this.stateValue !== 'refused') this.stateValue = 'idle';
      }
      this.client = null;
      if (this.stopped) break;
      // A long healthy session resets the backoff.
      if (Date.now() - began > 10_000) retryMs = RETRY_MS_MIN;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, retryMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = null;
      retryMs = Math.min(this.options.retryMsMax, retryMs * 2);
    }
  }

  private async session(): Promise<void> {
    const t = this.host.termState();
    if (!t.writer || !t.credentials) {
      this.stateValue = 'idle';
      throw new Error('no writer assigned yet');
    }
    this.stateValue = 'connecting';
    const client = await ReplicationClient.connect({ host: t.writer.host, port: t.writer.port, ...t.credentials, applicationName: this.options.name }, this.options.connectTimeoutMs);
    this.client = client;
    if (this.stopped) return client.close();
    try {
      const [ident] = await client.query('IDENTIFY_SYSTEM');
      const row = ident?.rows[0];
      if (!row) throw new ProtocolViolation('IDENTIFY_SYSTEM returned no row');
      const systemId = row[0] ?? '';
      const timeline = Number(row[1]);
      const [termSet] = await client.query('SHOW borealis.term');
      const writerTerm = Number(termSet?.rows[0]?.[0] ?? 0);
      // A new term may have come while this connection was being made (its
      // stream could not be dropped yet: there was none). The fence holds
      // only if the term is checked again now that the connection is up;
      // from here on a new term closes this.client.
      const now = this.host.termState();
      if (now.term !== t.term || now.writer?.host !== t.writer.host || now.writer?.port !== t.writer.port) {
        throw new Error(`the term changed while connecting (term ${t.term} → ${now.term}); reconnecting`);
      }
      const verdict = acceptWriter(t, writerTerm, systemId);
      if (!verdict.ok) {
        this.stateValue = 'refused';
        this.log.error('refusing the writer', { reason: verdict.reason, writer: `${t.writer.host}:${t.writer.port}` });
        throw new Error(verdict.reason);
      }
      if (t.systemId === null) this.host.adoptSystem(systemId);
      const streamTimeline = await this.followTimeline(client, timeline, row[2] ?? '');
      const slot = `borealis_${this.options.name.replace(/[^a-z0-9_]/g, '_')}`;
      try {
        await client.query(`CREATE_REPLICATION_SLOT ${slot} PHYSICAL RESERVE_WAL`);
      } catch (err) {
        if (!(err instanceof ReplicationError && err.sqlstate === SQLSTATE_DUPLICATE_OBJECT)) throw err;
      }
      const pos = this.store.state!;
      const checker = new WalPageChecker({ systemId: BigInt(systemId), timeline });
      this.stateValue = 'streaming';
      this.lastError = null;
      this.log.info('streaming WAL', { timeline: streamTimeline, writerTimeline: timeline, from: formatLsn(pos.flushLsn), writerTerm });
      const statusTimer = setInterval(() => this.sendStatus(false), this.options.statusIntervalMs);
      try {
        const end = await client.startReplication(`START_REPLICATION SLOT ${slot} PHYSICAL ${formatLsn(pos.flushLsn)} TIMELINE ${streamTimeline}`, (payload) => this.onMessage(payload, checker));
        this.log.info('the writer ended its timeline', { nextTimeline: end.nextTimeline });
      } catch (err) {
        if (err instanceof ReplicationError && err.sqlstate === SQLSTATE_UNDEFINED_FILE) {
          this.stateValue = 'catching-up';
          this.log.info('the writer no longer has the WAL this node needs; fetching it from peers', { from: formatLsn(pos.flushLsn) });
          const added = await this.host.catchUpFromPeers();
          if (!added) throw new Error(`no peer holds WAL from ${formatLsn(pos.flushLsn)} either`, { cause: err });
          return;
        }
        throw err;
      } finally {
        clearInterval(statusTimer);
      }
    } finally {
      client.close();
      await this.drain();
      if (this.flushFailed) {
        this.flushFailed = false;
        this.store.open();
      }
    }
  }

  /**
   * Positions the store on the writer's chain of timelines and returns the
   * timeline to stream. A node behind a timeline switch streams its own
   * (historic) timeline up to the switch point first, as a PostgreSQL
   * standby does; WAL it holds beyond where its timeline leaves the writer's
   * history was never acknowledged and is dropped.
   */
  private async followTimeline(client: ReplicationClient, timeline: number, xlogpos: string): Promise<number> {
    const pos = this.store.state;
    if (!pos) {
      this.store.begin(timeline, segmentStart(segmentOf(parseLsn(xlogpos))));
      return timeline;
    }
    if (pos.timeline > timeline) throw new Error(`writer is on timeline ${timeline}, behind this node's ${pos.timeline}`);
    const writerHistory = await this.history(client, timeline);
    if (pos.timeline === timeline) return timeline;
    const mine = await this.history(client, pos.timeline);
    const split = divergence(timeline, writerHistory, pos.timeline, mine) ?? pos.flushLsn;
    const at = split < pos.flushLsn ? split : pos.flushLsn;
    const onto = timelineOfPoint(at, timeline, writerHistory);
    if (onto === pos.timeline && at === pos.flushLsn) return pos.timeline;
    if (at < pos.flushLsn) this.log.warn('dropping WAL the writer\'s history left behind', { timeline: pos.timeline, from: formatLsn(at), to: formatLsn(pos.flushLsn) });
    this.store.begin(onto, at);
    return onto;
  }

  /** A timeline's history as ancestor → end; kept on disk, fetched from the writer once. */
  private async history(client: ReplicationClient, timeline: number): Promise<Map<number, bigint>> {
    if (timeline === 1) return new Map();
    let text = this.store.readHistory(timeline);
    if (text === null) {
      const [hist] = await client.query(`TIMELINE_HISTORY ${timeline}`);
      const content = hist?.rows[0]?.[1];
      if (typeof content !== 'string') throw new ProtocolViolation('TIMELINE_HISTORY returned no content');
      parseTimelineHistory(content);
      this.store.saveHistory(timeline, content);
      text = content;
    }
    return new Map(parseTimelineHistory(text).map((s) => [s.timeline, s.switchLsn]));
  }

  private onMessage(payload: Buffer, checker: WalPageChecker): void {
    const msg = parseReplicationMessage(payload);
    this.serverEnd = msg.serverEnd;
    if (msg.type === 'keepalive') {
      if (msg.replyRequested) this.sendStatus(false);
      return;
    }
    let { start, data } = msg;
    const expected = this.store.writeLsn;
    if (start < expected) {
      // A resend after reconnecting: skip what is already written.
      const skip = Number(expected - start);
      if (skip >= data.length) return;
      data = data.subarray(skip);
      start = expected;
    }
    if (start !== expected) throw new ProtocolViolation(`writer skipped WAL: sent ${formatLsn(start)}, expected ${formatLsn(expected)}`);
    checker.check(start, data);
    this.store.write(start, data);
    this.stats.messages++;
    this.stats.bytesReceived += data.length;
    this.kickFlush();
  }

  /** Flushes done, their total time, and WAL bytes received: for status and metrics. */
  readonly stats = { flushes: 0, flushMsTotal: 0, bytesReceived: 0, messages: 0 };

  private kickFlush(): void {
    if (this.flushing) return;
    this.flushing = true;
    const began = performance.now();
    // After the rest of this read's messages: they share the fsync.
    new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.store.flush())
      .then(
        () => {
          this.stats.flushes++;
          this.stats.flushMsTotal += performance.now() - began;
          this.flushing = false;
          this.sendStatus(false);
          if (this.store.hasUnflushed) this.kickFlush();
        },
        (err: Error) => {
          this.flushing = false;
          this.flushFailed = true;
          this.log.error('WAL fsync failed; dropping the stream', { error: err.message });
          this.client?.close();
        },
      );
  }

  private async drain(): Promise<void> {
    while (this.flushing || this.store.hasUnflushed) {
      if (!this.flushing) this.kickFlush();
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private sendStatus(replyRequested: boolean): void {
    const pos = this.store.state;
    if (!pos || !this.client) return;
    this.client.send(standbyStatusUpdate(this.store.writeLsn, pos.flushLsn, pos.flushLsn, Date.now(), replyRequested));
  }
}
