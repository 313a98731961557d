import { ArchiveError } from '../errors';
import { checkSnapshotFile, type SnapshotCheck } from '../snapshot/verify';
import type { SnapshotFacts, SnapshotMemo } from '../snapshot/scan';
import { Transform, type TransformCallback } from 'node:stream';
import { decoderFor, detectFormat, emptyArchive, FORMAT_HEAD_BYTES, formatOfHead, scanArchive } from './read';
import type { ArchiveDecoder, ArchiveFormat, ArchiveHeader, ArchiveItem, ArchiveTrailer, LeaseRecord, RecordRef } from './types';

export interface ArchiveSummary {
  format: ArchiveFormat;
  bytes: number;
  header?: ArchiveHeader;
  trailer?: ArchiveTrailer;
  records: number;
  /** Records whose key starts with the scope given to verifyArchive. */
  inScope: number;
  keyBytes: number;
  valueBytes: number;
  leases: LeaseRecord[];
  /** Lease ids that in-scope records point at. */
  usedLeases: Set<string>;
  /** For an etcd snapshot: what it holds, and what its checks found. */
  snapshot?: SnapshotFacts & SnapshotCheck;
}

type Counted = Omit<ArchiveSummary, 'format' | 'bytes' | 'snapshot'>;

/** What a decoder hands over: items (header, leases, trailer) and each record in place. */
export interface ArchiveObserver {
  items(items: ArchiveItem[]): void;
  record(r: RecordRef): void;
}

/** What verification adds up from a decoder's items and records. */
class Tally {
  readonly counted: Counted = { records: 0, inScope: 0, keyBytes: 0, valueBytes: 0, leases: [], usedLeases: new Set() };

  constructor(private readonly prefix: Buffer) {}

  readonly items = (items: ArchiveItem[]): void => {
    for (const item of items) {
      if (item.kind === 'header') this.counted.header = item.header;
      else if (item.kind === 'lease') this.counted.leases.push(item.lease);
      else if (item.kind === 'trailer') this.counted.trailer = item.trailer;
    }
  };

  readonly record = (r: RecordRef): void => {
    const c = this.counted;
    c.records++;
    c.keyBytes += r.keyLength;
    c.valueBytes += r.valueLength;
    if (r.hasPrefix(this.prefix)) {
      c.inScope++;
      const lease = r.lease();
      if (lease !== '0') c.usedLeases.add(lease);
    }
  };

  /** Our format lists every lease its records use; a legacy archive has no such list. */
  checkLeases(format: ArchiveFormat): void {
    if (format !== 'etcd-shield') return;
    const listed = new Set(this.counted.leases.map((l) => l.id));
    const missing = [...this.counted.usedLeases].find((id) => !listed.has(id));
    if (missing !== undefined) {
      throw new ArchiveError(`a record points at lease ${missing}, which the archive's lease list lacks`, 'the archive is inconsistent; use another backup');
    }
  }
}

/**
 * Reads a whole archive and checks it end to end without touching etcd.
 * Throws ArchiveError at the first defect; returns what restore needs to know.
 * An etcd snapshot's tree is checked first, then it is read at `revision`
 * (scanArchive) while its sha256 trailer is checked on another thread.
 */
export async function verifyArchive(path: string, scope = '', signal?: AbortSignal, revision?: string, memo?: SnapshotMemo): Promise<ArchiveSummary> {
  const tally = new Tally(Buffer.from(scope));
  const firstPass = { revision, memo: memo ?? {} };
  const scan = () => scanArchive(path, tally.items, signal, tally.record, revision, firstPass.memo);
  const snapshotFile = (await detectFormat(path)) === 'etcd-snapshot';
  const { check, result } = snapshotFile ? await checkSnapshotFile(path, signal, scan, firstPass) : { check: undefined, result: await scan() };
  const { format, bytes, snapshot } = result;
  tally.checkLeases(format);
  return { format, bytes, ...tally.counted, ...(snapshot && check ? { snapshot: { ...snapshot, ...check } } : {}) };
}

/**
 * Checks an archive as it streams through, unchanged, as verifyArchive
 * would check the file (scope likewise), so that a download needs no
 * second pass. The stream itself never fails: the first defect stops the
 * checks and summary() throws it, so that a caller can first compare the
 * bytes with what they should be (a cut download says more than the cut
 * archive). An etcd snapshot is checked only in place, as a file: then
 * summary() is undefined.
 */
export class VerifyingStage extends Transform {
  private head: Buffer[] = [];
  private headBytes = 0;
  private format: ArchiveFormat | undefined;
  private decoder: ArchiveDecoder | undefined;
  private bytes = 0;
  private defect: unknown;
  private result: ArchiveSummary | undefined;
  private readonly tally: Tally;

  /** `observer` sees the same items and records, e.g. to count something of its own on the same pass. */
  constructor(
    scope = '',
    private readonly observer?: ArchiveObserver,
  ) {
    super();
    this.tally = new Tally(Buffer.from(scope));
  }

  /** What verifyArchive would return, once the stream ended; throws the archive's first defect. */
  summary(): ArchiveSummary | undefined {
    if (this.defect) throw this.defect;
    return this.result;
  }

  private check(step: () => void): void {
    if (this.defect) return;
    try {
      step();
    } catch (err) {
      this.defect = err;
      this.decoder = undefined;
    }
  }

  private feed(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.decoder) this.check(() => this.seen(this.decoder!.push(chunk)));
  }

  private seen(items: ArchiveItem[]): void {
    this.tally.items(items);
    this.observer?.items(items);
  }

  private decide(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    this.format = formatOfHead(head);
    const observer = this.observer;
    const onRecord = observer ? (r: RecordRef) => (this.tally.record(r), observer.record(r)) : this.tally.record;
    if (this.format !== 'etcd-snapshot') this.decoder = decoderFor(this.format, onRecord);
    this.feed(head);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    if (this.format) this.feed(chunk);
    else {
      this.head.push(chunk);
      this.headBytes += chunk.length;
      if (this.headBytes >= FORMAT_HEAD_BYTES) this.decide();
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.format) {
      if (this.headBytes === 0) {
        this.defect = emptyArchive('the archive');
        return callback();
      }
      this.decide();
    }
    if (!this.decoder) return callback();
    const format = this.format!;
    this.check(() => {
      this.seen(this.decoder!.end());
      this.tally.checkLeases(format);
      this.result = { format, bytes: this.bytes, ...this.tally.counted };
    });
    callback();
  }
}
