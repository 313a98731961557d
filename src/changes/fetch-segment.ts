import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EncryptionError, ArchiveError, CancelledError, ShieldError, StoreError } from '../errors';
import { openStored } from '../pipeline/stages';
import type { ObjectStore } from '../store/types';
import type { SegmentEntry } from './chain';
import { decodeSegment } from './segment-decode';
import type { Segment } from './segment-format';

const FIRST_CAPACITY = 64 * 1024;

/**
 * Downloads, decrypts, decompresses and decodes segments one at a time, each
 * whole (a segment is bounded by the follower's size limit) and checked
 * against its name. The bytes go into one buffer that grows to the largest
 * segment and is reused: a Segment is valid only until the next fetch, and
 * reading a log leaves no segment-sized garbage behind.
 */
export class SegmentFetcher {
  private buf = Buffer.alloc(0);

  constructor(
    private readonly store: ObjectStore,
    private readonly identities: string[],
    private readonly signal?: AbortSignal,
  ) {}

  async fetch(s: SegmentEntry): Promise<Segment> {
    const key = s.object.key;
    const where = `${key} in ${this.store.url}`;
    if (s.form.encrypted && this.identities.length === 0) {
      throw new EncryptionError(`change segment ${where} is encrypted with age`, 'give the identity file whose recipient it was encrypted to: --identity FILE');
    }
    let size = 0;
    // Each chunk is copied as it comes (an async iterator would join buffered chunks first).
    const collect = new Writable({
      write: (c: Buffer, _encoding, done) => {
        this.room(size + c.length, size);
        size += c.copy(this.buf, size);
        done();
      },
    });
    try {
      const plain = await openStored(await this.store.read(key, this.signal), { identities: this.identities, name: `change segment ${where}`, form: s.form });
      await pipeline(plain, collect, { signal: this.signal });
    } catch (err) {
      if (this.signal?.aborted) throw new CancelledError(`stopped while reading change segment ${where}; nothing was written to etcd`);
      if (err instanceof ShieldError) throw err;
      throw new StoreError(`cannot read change segment ${where}: ${(err as Error).message}`);
    }
    const seg = decodeSegment(this.buf.subarray(0, size), where);
    if (seg.first !== s.first || seg.last !== s.last) {
      throw new ArchiveError(`change segment ${where} holds revisions ${seg.first} to ${seg.last}, not what its name says`, 'the segment was renamed or replaced; it cannot be trusted');
    }
    return seg;
  }

  /** Grows the buffer to hold `needed` bytes, keeping the first `filled`. */
  private room(needed: number, filled: number): void {
    if (needed <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, FIRST_CAPACITY, Math.ceil(this.buf.length * 1.5)));
    this.buf.copy(grown, 0, 0, filled);
    this.buf = grown;
  }
}
