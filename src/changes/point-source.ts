import { compareKeys, hasPrefix } from '../archive/keys';
import { scanArchive } from '../archive/read';
import type { ArchiveFormat, ArchiveHeader, ArchiveItem, LeaseRecord, RecordRef } from '../archive/types';
import type { ArchiveSummary } from '../archive/verify';
import { ArchiveError } from '../errors';
import { checkStamp, type FileStamp, type Put, type RecordSource, stampFile } from '../restore/source';
import type { ChangeFold } from './fold';

/** Changed values read back per batch: about one archive chunk's worth. */
const BATCH_BYTES = 256 * 1024;

export interface Point {
  revision: number;
  /** When the change log had seen it (absent: the backup's own time). */
  time?: Date;
}

const NONE = -1;
const EMPTY = Buffer.alloc(0);

/** Walks the changed keys, in order, alongside the backup's. */
class ChangedCursor {
  private j = 0;
  private readonly order: Int32Array;
  private nextKey: Buffer | undefined;
  /** The key of the entry nextUpTo gave last, and whether it is the very key it was given. */
  key: Buffer = EMPTY;
  replaces = false;

  constructor(private readonly fold: ChangeFold) {
    this.order = fold.finish();
  }

  /** The next changed entry if its key sorts at or before `key` (without one: any left), then consumed; else NONE. */
  nextUpTo(key?: Buffer): number {
    if (this.j === this.order.length) return NONE;
    const n = this.order[this.j]!;
    const next = (this.nextKey ??= this.fold.key(n));
    const order = key ? compareKeys(next, key) : -1;
    if (order > 0) return NONE;
    this.key = next;
    this.replaces = order === 0;
    this.j++;
    this.nextKey = undefined;
    return n;
  }
}

/**
 * Counts the merged keyspace, as verify() reports it, from the backup's
 * items and records in order: on the fold's own pass over the backup, or
 * on the download's (VerifyingStage's observer), which spares a pass.
 */
export class PointTally {
  private readonly scopeKey: Buffer;
  private readonly changed: ChangedCursor;
  private readonly counts = { records: 0, inScope: 0, keyBytes: 0, valueBytes: 0 };
  private readonly usedLeases = new Set<string>();
  private readonly backupLeases = new Map<string, LeaseRecord>();
  private header: ArchiveHeader | undefined;

  constructor(
    private readonly fold: ChangeFold,
    private readonly point: Point,
    readonly scope: string,
  ) {
    this.scopeKey = Buffer.from(scope);
    this.changed = new ChangedCursor(fold);
  }

  /** Counts a key of the merged state; `lease` only for a key in scope. */
  private count(keyLength: number, valueLength: number, lease: string | undefined): void {
    const c = this.counts;
    c.records++;
    c.keyBytes += keyLength;
    c.valueBytes += valueLength;
    if (lease === undefined) return;
    c.inScope++;
    if (lease !== '0') this.usedLeases.add(lease);
  }

  private countChanged(n: number): void {
    const key = this.changed.key;
    if (this.fold.isPut(n)) this.count(key.length, this.fold.valueLength(n), hasPrefix(key, this.scopeKey) ? this.fold.lease(n) : undefined);
  }

  readonly items = (items: ArchiveItem[]): void => {
    for (const item of items) {
      if (item.kind === 'header') this.header = item.header;
      else if (item.kind === 'lease') this.backupLeases.set(item.lease.id, item.lease);
    }
  };

  readonly record = (r: RecordRef): void => {
    const key = r.key();
    let replaced = false;
    for (let n = this.changed.nextUpTo(key); n !== NONE; n = this.changed.nextUpTo(key)) {
      this.countChanged(n);
      replaced = this.changed.replaces;
    }
    if (!replaced) this.count(r.keyLength, r.valueLength, r.hasPrefix(this.scopeKey) ? r.lease() : undefined);
  };

  /** After the backup's last record: the merged state's summary. */
  summary(format: ArchiveFormat, bytes: number): ArchiveSummary {
    for (let n = this.changed.nextUpTo(); n !== NONE; n = this.changed.nextUpTo()) this.countChanged(n);
    const header = this.header;
    if (format !== 'etcd-shield' || !header) throw new ArchiveError('the backup is not an etcd-shield archive', 'restore to a point from a store that etcd-shield backed up');
    const leases: LeaseRecord[] = [];
    for (const id of this.usedLeases) {
      // A lease the change log saw granted is granted anew with its TTL; else as the backup had it.
      const granted = this.fold.leases.get(id);
      const l = granted !== undefined ? { id, grantedTtl: granted, remainingTtl: granted } : this.backupLeases.get(id);
      if (!l) throw new ArchiveError(`a key at revision ${this.point.revision} points at lease ${id}, which neither the backup nor the change log records`, 'the change log is inconsistent; restore to another revision');
      leases.push(l);
    }
    return {
      format,
      // The backup's bytes and the change log's, as decoded.
      bytes: bytes + this.fold.spooled,
      header: { ...header, revision: String(this.point.revision), createdAt: (this.point.time ?? new Date(header.createdAt)).toISOString() },
      ...this.counts,
      leases,
      usedLeases: this.usedLeases,
    };
  }
}

/**
 * The keyspace at a point: a backup archive merged, as it streams, with the
 * final states of a change fold. A changed key takes the place of the
 * backup's (or leaves it out, if deleted), a new one comes in key order.
 * Nothing merged is written: changed values are read back from the fold's
 * spool as they are needed. The backup is read once to restore, and once
 * before to verify it and count the merge, unless the download did that
 * already (`counted`: a PointTally's summary, for that scope).
 */
export class PointSource implements RecordSource {
  private stamp: FileStamp | undefined;

  constructor(
    private readonly backupPath: string,
    private readonly fold: ChangeFold,
    private readonly point: Point,
    private readonly counted?: { scope: string; summary: ArchiveSummary },
  ) {}

  async verify(scope: string, signal?: AbortSignal): Promise<ArchiveSummary> {
    this.stamp = await stampFile(this.backupPath);
    if (this.counted?.scope === scope) return this.counted.summary;
    const tally = new PointTally(this.fold, this.point, scope);
    const { format, bytes } = await scanArchive(this.backupPath, tally.items, signal, tally.record);
    return tally.summary(format, bytes);
  }

  async records(scope: string, onBatch: (puts: Put[]) => Promise<void>, signal?: AbortSignal): Promise<void> {
    const scopeKey = Buffer.from(scope);
    const fold = this.fold;
    const changed = new ChangedCursor(fold);
    let pending: Put[] = [];
    let out: Put[] = [];
    // Changed puts in `out` (and their entries) whose values are read at send(), all into one buffer.
    let reads: Put[] = [];
    let readEntries: number[] = [];
    let readBytes = 0;
    // Values are read into one buffer, reused once a batch's callback is done with it.
    let valueBuffer = EMPTY;
    const send = async () => {
      if (valueBuffer.length < readBytes) valueBuffer = Buffer.allocUnsafe(Math.max(readBytes, BATCH_BYTES));
      const values = fold.values(readEntries, valueBuffer);
      for (let i = 0; i < reads.length; i++) reads[i]!.value = values[i]!;
      const batch = out;
      out = [];
      reads = [];
      readEntries = [];
      readBytes = 0;
      await onBatch(batch);
    };
    // Puts a changed key's final state, if it is a put in scope; sends a batch once it holds enough values.
    const take = async (n: number, key: Buffer) => {
      if (!fold.isPut(n) || !hasPrefix(key, scopeKey)) return;
      const put = { key, value: EMPTY, lease: fold.lease(n) };
      out.push(put);
      reads.push(put);
      readEntries.push(n);
      readBytes += fold.valueLength(n);
      if (readBytes >= BATCH_BYTES) await send();
    };
    await scanArchive(
      this.backupPath,
      async () => {
        for (const p of pending) {
          let replaced = false;
          for (let n = changed.nextUpTo(p.key); n !== NONE; n = changed.nextUpTo(p.key)) {
            replaced = changed.replaces;
            await take(n, changed.key);
          }
          if (!replaced) out.push(p);
        }
        pending = [];
        await send();
      },
      signal,
      (r) => {
        if (r.hasPrefix(scopeKey)) pending.push({ key: r.key(), value: r.value(), lease: r.lease() });
      },
    );
    for (let n = changed.nextUpTo(); n !== NONE; n = changed.nextUpTo()) await take(n, changed.key);
    await send();
    if (this.stamp) await checkStamp(this.stamp);
  }
}
