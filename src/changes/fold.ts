import { open, type FileHandle } from 'node:fs/promises';
import { readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { hasPrefix, showKey } from '../archive/keys';
import { FileError } from '../errors';
import { TEMP_ROOM_HINT } from '../io/tempdir';
import { doubled, KeyIndex } from '../util/key-index';
import { EventView } from './segment-decode';
import type { Segment } from './segment-format';

const FIRST_CAPACITY = 1024;
const DELETED = -1;
const SPOOL_HINT = 'check the disk that holds the temporary directory ($TMPDIR), or point TMPDIR elsewhere, then run the restore again; the keys not yet written keep their current values';

/**
 * The net effect of a run of events: per key, its state after the last
 * event seen (a put, or absent). Values stay on disk: each segment that
 * changes a key is appended whole to a spool file, and a key keeps only
 * where its last value lies there. Memory grows with the distinct keys
 * changed (the key's bytes plus about 50 bytes: KeyIndex and three typed
 * arrays), never with the number of events or the size of the values.
 *
 * Changed keys are entries, numbered in the order first seen; finish()
 * gives them in key order.
 */
export class ChangeFold {
  private readonly index = new KeyIndex();
  // Per entry: where its value is in the spool, its length (DELETED for a delete), its CRC-32, its lease (into leaseIds).
  private at = new Float64Array(FIRST_CAPACITY);
  private lengths = new Int32Array(FIRST_CAPACITY);
  private sums = new Uint32Array(FIRST_CAPACITY);
  private leaseOf = new Int32Array(FIRST_CAPACITY);
  // Keys point at few distinct leases: each id is kept once.
  private readonly leaseIds = ['0'];
  private readonly leaseNumbers = new Map<string, number>([['0', 0]]);
  private order: Int32Array | undefined;
  /** Lease id -> granted TTL, for leases first seen in the change log. */
  readonly leases = new Map<string, string>();
  events = 0;
  /** Bytes of segments in the spool. */
  spooled = 0;

  private constructor(
    private readonly prefix: Buffer,
    private readonly spool: FileHandle,
    private readonly path: string,
  ) {}

  /** A fold whose spool is a new private file at path (in a private directory: withTempDir). */
  static async create(prefix: Buffer, path: string): Promise<ChangeFold> {
    const fh = await open(path, 'wx+', 0o600).catch((err: NodeJS.ErrnoException) => {
      throw new FileError(`cannot create ${path}: ${err.code ?? err.message}`, TEMP_ROOM_HINT);
    });
    return new ChangeFold(prefix, fh, path);
  }

  /** Applies the events of a segment with modRevision in (after, upTo], spooling the segment if any counts. */
  async apply(seg: Segment, after: number, upTo: number): Promise<void> {
    for (const l of seg.leases) this.leases.set(l.id, l.grantedTtl);
    const base = this.spooled;
    let used = false;
    const e = new EventView(seg.data);
    for (const start of seg.events) {
      const rev = e.at(start).modRevision;
      if (rev <= after) continue;
      if (rev > upTo) break;
      const key = e.key();
      if (!hasPrefix(key, this.prefix)) continue;
      this.events++;
      used = true;
      const n = this.entry(key);
      this.at[n] = base + e.valueAt;
      this.lengths[n] = e.isPut ? e.valueLength : DELETED;
      // The segment was verified; its copy on disk is checked again when read back (values()).
      this.sums[n] = e.isPut ? crc32(e.value()) : 0;
      this.leaseOf[n] = this.leaseNumber(e.lease());
    }
    if (!used) return;
    // Appended in order, so the handle's own position is `base`.
    await this.spool.writeFile(seg.data).catch((err: NodeJS.ErrnoException) => {
      throw new FileError(`cannot write the change log to ${this.path}: ${err.code ?? err.message}`, TEMP_ROOM_HINT);
    });
    this.spooled += seg.data.length;
  }

  private entry(key: Buffer): number {
    const known = this.index.get(key);
    if (known >= 0) return known;
    const n = this.index.size;
    if (n === this.at.length) {
      this.at = doubled(this.at);
      this.lengths = doubled(this.lengths);
      this.sums = doubled(this.sums);
      this.leaseOf = doubled(this.leaseOf);
    }
    this.index.set(key, n);
    return n;
  }

  private leaseNumber(id: string): number {
    let n = this.leaseNumbers.get(id);
    if (n === undefined) {
      n = this.leaseIds.push(id) - 1;
      this.leaseNumbers.set(id, n);
    }
    return n;
  }

  /** Distinct keys changed. */
  get keys(): number {
    return this.index.size;
  }

  /** The entries in ascending byte order of key; the fold takes no more events after. */
  finish(): Int32Array {
    if (!this.order) {
      // latin1 strings compare as their bytes; made once here, dropped after the sort.
      const names = Array.from({ length: this.index.size }, (_, n) => this.index.key(n).toString('latin1'));
      const order = Array.from({ length: names.length }, (_, n) => n).sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
      this.order = Int32Array.from(order);
    }
    return this.order;
  }

  key(n: number): Buffer {
    return this.index.key(n);
  }

  /** False: the key was deleted. */
  isPut(n: number): boolean {
    return this.lengths[n] !== DELETED;
  }

  lease(n: number): string {
    return this.leaseIds[this.leaseOf[n]!]!;
  }

  valueLength(n: number): number {
    return Math.max(0, this.lengths[n]!);
  }

  /**
   * The values of puts, read back from the spool into `into`, which must
   * hold them all (their valueLengths). The spool is a private local file: a
   * positioned read is quicker than a trip through the thread pool. A value
   * that differs from what was spooled is refused, as a damaged archive is.
   */
  values(entries: number[], into: Buffer): Buffer[] {
    let o = 0;
    return entries.map((n) => {
      const length = this.valueLength(n);
      for (let got = 0; got < length; ) {
        const r = readSync(this.spool.fd, into, o + got, length - got, this.at[n]! + got);
        if (r === 0) throw new FileError(`the change log spool ${this.path} is shorter than what was written to it`, SPOOL_HINT);
        got += r;
      }
      const value = into.subarray(o, o + length);
      o += length;
      if (this.isPut(n) && crc32(value) !== this.sums[n]) {
        throw new FileError(`the change log spool ${this.path} changed after it was written: the value of key ${showKey(this.key(n))} read back differs from the one spooled`, SPOOL_HINT);
      }
      return value;
    });
  }

  async close(): Promise<void> {
    await this.spool.close();
  }
}
