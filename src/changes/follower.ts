import type { IWatchResponse } from 'etcd3';
import { readCatalogue } from '../catalogue/catalogue';
import type { Config } from '../config/config';
import { CancelledError, ConfigError, ShieldError } from '../errors';
import type { Connection } from '../etcd/connect';
import { explainEtcdError } from '../etcd/explain';
import { prefixRange } from '../etcd/pages';
import { requestedProgressOrder } from '../etcd/progress-order';
import { BufferPool } from '../io/buffer-pool';
import type { StoredForm } from '../pipeline/types';
import type { ObjectStore } from '../store/types';
import { TOOL_NAME, TOOL_VERSION } from '../version';
import { chainFrom, type GapMarker, pointBases, readChangeCatalogue } from './chain';
import { gapKey, segmentKey } from './naming';
import { SEGMENT_BLOCK_BYTES, SegmentBuilder } from './segment-encode';
import type { SegmentLease } from './segment-format';
import { storedStream } from './stored-bytes';
import { sleep } from '../util/sleep';

export interface FollowerSettings {
  flushMs: number;
  /** With no events, how often an empty segment records that the log is still current. */
  idleFlushMs: number;
  /** A segment is flushed early once its events reach this many bytes. */
  maxSegmentBytes: number;
  form: StoredForm;
  recipients: string[];
  signal?: AbortSignal;
  warn: (message: string) => void;
  onEvent: (e: FollowEvent) => void;
  /** Takes a full backup into the store; returns its revision and name. */
  fullBackup: (signal?: AbortSignal) => Promise<{ name: string; revision: string; clusterId: string; prefix: string }>;
}

export type FollowEvent =
  | { kind: 'start'; from: number; backup: string }
  | { kind: 'segment'; key: string; first: number; last: number; events: number; bytes: number; coveredAt: Date }
  | { kind: 'gap'; from: number; compactRevision: number; key: string }
  | { kind: 'backup'; name: string; revision: number };

class Compacted extends Error {
  constructor(readonly compactRevision: number) {
    super(`etcd compacted the history the follower needs (oldest revision left: ${compactRevision})`);
  }
}

/** What one watch stream knows about the progress answers it may trust. */
interface StreamState {
  /** Ours, from the created answer: etcd's own progress notifications carry it. */
  watchId?: string;
  /** etcd answers our progress requests in order with the events (not before 3.4.25 / 3.5.8). */
  requestedInOrder: boolean;
}

const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5000;
const LEASE_CACHE_MAX = 100_000;

/**
 * Records every change under the prefix as segments in the store, from the
 * revision after the newest full backup (or after the segments that already
 * continue it). Every event is recorded once: the watch always resumes from
 * the revision after the last one received, and a segment is handed to
 * the store whole, retried until it is stored, before the next one.
 */
export class Follower {
  private covered = 0;
  /** Blocks for segment frames: one segment's worth is kept for the next once stored. */
  private readonly blocks: BufferPool;
  private builder: SegmentBuilder;
  private lastAt = 0;
  private lastWrite = Date.now();
  private clusterId = '';
  private flushing: Promise<void> | undefined;
  private readonly leaseTtl = new Map<string, string>();
  private sizeFlush = false;
  private warnedProgress = false;

  constructor(
    private readonly conn: Connection,
    private readonly store: ObjectStore,
    private readonly config: Config,
    private readonly s: FollowerSettings,
  ) {
    this.blocks = new BufferPool(Math.ceil(s.maxSegmentBytes / SEGMENT_BLOCK_BYTES) + 1, SEGMENT_BLOCK_BYTES);
    this.builder = new SegmentBuilder(1, this.blocks);
  }

  async run(): Promise<void> {
    await this.resume();
    const timer = setInterval(() => void this.flush(false).catch(() => undefined), this.s.flushMs);
    let pause = RETRY_FIRST_MS;
    try {
      while (!this.s.signal?.aborted) {
        try {
          await this.watch(() => (pause = RETRY_FIRST_MS));
        } catch (err) {
          if (this.s.signal?.aborted) break;
          if (err instanceof Compacted) {
            await this.gap(err.compactRevision);
            continue;
          }
          const e = err instanceof ShieldError ? err : explainEtcdError(err, { config: this.config, action: 'watch', prefix: this.config.prefix });
          if (['auth', 'permission', 'tls', 'config'].includes(e.kind)) throw e;
          this.s.warn(`the watch on ${this.config.endpoints.join(',')} failed (${e.message}); resuming from revision ${this.covered + 1} in ${pause} ms`);
          await sleep(pause, this.s.signal);
          pause = Math.min(RETRY_MAX_MS, pause * 2);
        }
      }
    } finally {
      clearInterval(timer);
    }
    // Stopping: what was received is stored before the process ends.
    await this.flush(true);
  }

  /** Where to start: after the chain of segments that continues the newest backup; a store without a backup gets one first. */
  private async resume(): Promise<void> {
    const cat = await readCatalogue(this.store, this.s.signal);
    const bases = pointBases(cat.backups);
    let newest = bases[bases.length - 1];
    let start: { name: string; revision: string; clusterId: string; prefix: string };
    if (!newest) {
      start = await this.s.fullBackup(this.s.signal);
      this.s.onEvent({ kind: 'backup', name: start.name, revision: Number(start.revision) });
    } else {
      start = newest.manifest;
    }
    if (start.prefix !== this.config.prefix) {
      throw new ConfigError(
        `${this.store.url} holds backups of prefix ${JSON.stringify(start.prefix)}, not ${JSON.stringify(this.config.prefix)}`,
        'follow into the store that holds this prefix\'s backups (each cluster and prefix has its own store path)',
      );
    }
    const live = BigInt((await this.conn.client.kv.range({ ...prefixRange(this.config.prefix), limit: 1, keys_only: true })).header.cluster_id).toString(16);
    if (live !== start.clusterId) {
      throw new ConfigError(`${this.store.url} holds backups of etcd cluster ${start.clusterId}, but the endpoints belong to cluster ${live}`, 'follow into a store path of its own for each cluster');
    }
    this.clusterId = start.clusterId;
    const chain = chainFrom((await readChangeCatalogue(this.store, this.s.signal)).segments, Number(start.revision));
    this.covered = chain.length ? chain[chain.length - 1]!.last : Number(start.revision);
    this.builder = new SegmentBuilder(this.covered + 1, this.blocks);
    this.s.onEvent({ kind: 'start', from: this.covered + 1, backup: start.name });
  }

  /** One watch stream, from the revision after the last one received; settles when it fails or the run stops. */
  private async watch(onHealthy: () => void): Promise<void> {
    const stream = await this.conn.client.watchClient.watch();
    const state: StreamState = { requestedInOrder: false };
    let ticker: NodeJS.Timeout | undefined;
    let open = true;
    try {
      await new Promise<void>((resolve, reject) => {
        const stop = () => resolve();
        this.s.signal?.addEventListener('abort', stop, { once: true });
        stream.on('data', (res: IWatchResponse) => {
          try {
            this.onResponse(res, state);
            onHealthy();
          } catch (err) {
            reject(err);
          }
        });
        stream.on('error', reject);
        stream.on('end', () => reject(new Error('the watch stream ended')));
        stream.write({ create_request: { ...prefixRange(this.config.prefix), start_revision: this.covered + 1, progress_notify: true } });
        // An idle prefix still moves "covered up to": ask etcd where the watch stands, if its answer keeps its place among the events.
        void this.progressInOrder().then((ordered) => {
          if (!ordered || !open) return;
          state.requestedInOrder = true;
          ticker = setInterval(() => stream.write({ progress_request: {} }), this.s.flushMs);
        });
      });
    } finally {
      open = false;
      clearInterval(ticker);
      (stream as unknown as NodeJS.EventEmitter).removeAllListeners('data');
      stream.on('error', () => undefined);
      stream.cancel();
    }
  }

  /** Whether the members run an etcd that answers progress requests in order; said once if not. */
  private async progressInOrder(): Promise<boolean> {
    const { ordered, versions } = await requestedProgressOrder(this.config).catch(() => ({ ordered: false, versions: [] as string[] }));
    if (!ordered && !this.warnedProgress) {
      this.warnedProgress = true;
      const which = versions.length ? `etcd ${versions.join(', ')} answers a progress request ahead of events it has still to send (fixed in 3.4.25 and 3.5.8)` : 'no member told its etcd version';
      this.s.warn(
        `${which}, so the change log advances with the events and etcd's own progress notifications only: on an idle prefix the recorded position lags by up to etcd's --experimental-watch-progress-notify-interval (10 minutes by default); upgrade etcd to keep it current`,
      );
    }
    return ordered;
  }

  private onResponse(res: IWatchResponse, state: StreamState): void {
    const compact = Number(res.compact_revision ?? 0);
    if (compact > 0) throw new Compacted(compact);
    if (res.canceled) throw new Error(`etcd cancelled the watch: ${res.cancel_reason || 'no reason given'}`);
    if (res.created) {
      state.watchId = res.watch_id;
      return;
    }
    const now = Date.now();
    let last = this.covered;
    for (const ev of res.events ?? []) {
      const kv = ev.kv;
      const rev = Number(kv.mod_revision);
      // A response repeated across a reconnect is taken once.
      if (rev <= this.covered) continue;
      this.builder.event({
        op: String(ev.type).toLowerCase() === 'delete' ? 'delete' : 'put',
        key: kv.key,
        value: kv.value ?? Buffer.alloc(0),
        createRevision: String(kv.create_revision ?? '0'),
        modRevision: String(kv.mod_revision),
        version: String(kv.version ?? '0'),
        lease: String(kv.lease ?? '0'),
      });
      last = rev;
    }
    // Without events, the header says every event up to it was sent, when etcd keeps that answer in order: its own notifications
    // to this watch always do (sent only once caught up); answers to our requests only where etcd was fixed to.
    if (!res.events?.length && (state.requestedInOrder || (state.watchId !== undefined && res.watch_id === state.watchId))) last = Math.max(last, Number(res.header.revision));
    if (last > this.covered) {
      this.covered = last;
      this.lastAt = now;
      this.builder.clock(last, now);
    }
    if (this.builder.bytes >= this.s.maxSegmentBytes && !this.sizeFlush) {
      this.sizeFlush = true;
      void this.flush(false).catch(() => undefined);
    }
  }

  /** Stores what was received; one flush at a time, each retried until stored (or the run stops). */
  flush(final: boolean): Promise<void> {
    const run = async () => {
      while (this.flushing) await this.flushing.catch(() => undefined);
      const b = this.builder;
      const idle = b.events === 0 && !final && Date.now() - this.lastWrite < this.s.idleFlushMs;
      if (this.covered < b.first || idle) return;
      const last = this.covered;
      const at = new Date(this.lastAt);
      this.builder = new SegmentBuilder(last + 1, this.blocks);
      this.sizeFlush = false;
      const write = this.write(b, last, at, final);
      this.flushing = write;
      try {
        await write;
      } finally {
        this.flushing = undefined;
      }
    };
    return run();
  }

  private async write(b: SegmentBuilder, last: number, at: Date, final: boolean): Promise<void> {
    const leases: SegmentLease[] = [];
    for (const id of b.leaseIds) leases.push({ id, grantedTtl: await this.grantedTtl(id) });
    const parts = b.seal({ tool: `${TOOL_NAME} ${TOOL_VERSION}`, clusterId: this.clusterId, prefix: this.config.prefix, createdAt: new Date().toISOString() }, leases, last);
    const key = segmentKey(b.first, last, at, this.s.form);
    let pause = RETRY_FIRST_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.store.put(key, storedStream(parts, this.s.form, this.s.recipients));
        break;
      } catch (err) {
        // A stop still gets a few tries at the last segment; a run keeps trying until the store is back.
        if ((final && attempt >= 5) || (!final && this.s.signal?.aborted && attempt >= 5)) throw err;
        this.s.warn(`cannot store change segment ${key} in ${this.store.url} (${(err as Error).message}); retrying in ${pause} ms`);
        await sleep(pause);
        pause = Math.min(RETRY_MAX_MS, pause * 2);
      }
    }
    const bytes = parts.reduce((n, p) => n + p.length, 0);
    b.release();
    this.lastWrite = Date.now();
    this.s.onEvent({ kind: 'segment', key, first: b.first, last, events: b.events, bytes, coveredAt: at });
  }

  /** The TTL a lease was granted with, asked once per lease id; an expired lease has 0. */
  private async grantedTtl(id: string): Promise<string> {
    const known = this.leaseTtl.get(id);
    if (known !== undefined) return known;
    const r = await this.conn.client.leaseClient.leaseTimeToLive({ ID: id });
    const ttl = String(r.grantedTTL ?? '0');
    if (this.leaseTtl.size >= LEASE_CACHE_MAX) this.leaseTtl.clear();
    this.leaseTtl.set(id, ttl);
    return ttl;
  }

  /** The history the watch needs is gone: mark the gap, take a full backup at once, continue after it. */
  private async gap(compactRevision: number): Promise<void> {
    await this.flush(true);
    const from = this.covered + 1;
    const marker: GapMarker = { kind: 'etcd-shield-gap', from, compactRevision, detectedAt: new Date().toISOString() };
    const key = gapKey(from, new Date());
    await this.store.putBytes(key, Buffer.from(`${JSON.stringify(marker, null, 2)}\n`), this.s.signal);
    this.s.onEvent({ kind: 'gap', from, compactRevision, key });
    this.s.warn(`etcd compacted revisions ${from} to ${compactRevision - 1} before the follower read them: recorded gap ${key}; taking a full backup now`);
    const b = await this.s.fullBackup(this.s.signal);
    if (this.s.signal?.aborted) throw new CancelledError('stopped while taking the full backup after a gap');
    this.covered = Number(b.revision);
    this.lastAt = Date.now();
    this.builder = new SegmentBuilder(this.covered + 1, this.blocks);
    this.s.onEvent({ kind: 'backup', name: b.name, revision: this.covered });
  }
}
